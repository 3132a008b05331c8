#include "t.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/mem.h"
#include "base/strmap.h"

static void test_put_get_del(void)
{
    struct strmap m = STRMAP_INIT;
    char key[32];
    size_t seen = 0;

    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "ns/secret-%d", i);
        T_CHECK(strmap_put(&m, key, xstrdup(key)) == NULL);
    }
    T_EQ_INT(m.len, 1000);
    T_EQ_STR(strmap_get(&m, "ns/secret-517"), "ns/secret-517");
    T_CHECK(strmap_get(&m, "ns/secret-1000") == NULL);
    free(strmap_put(&m, "ns/secret-5", xstrdup("replaced")));
    T_EQ_STR(strmap_get(&m, "ns/secret-5"), "replaced");
    for (int i = 0; i < 1000; i += 2) {
        snprintf(key, sizeof(key), "ns/secret-%d", i);
        free(strmap_del(&m, key));
    }
    T_EQ_INT(m.len, 500);
    T_CHECK(!strmap_has(&m, "ns/secret-2"));
    T_CHECK(strmap_has(&m, "ns/secret-3"));
    for (struct strmap_entry *e = strmap_first(&m); e; e = strmap_next(&m, e))
        seen++;
    T_EQ_INT(seen, 500);
    strmap_clear(&m, free);
    T_EQ_INT(m.len, 0);
    T_CHECK(strmap_get(&m, "x") == NULL);
    T_CHECK(strmap_del(&m, "x") == NULL);
}

int main(void)
{
    T_RUN(test_put_get_del);
    return t_done();
}
