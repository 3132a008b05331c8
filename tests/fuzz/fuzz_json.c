/* json_parse (base/json.h): any bytes in; a tree that prints and parses again; the typed
 * look-ups on every member; json_quote_n of the input read back by cJSON. */
#include <cJSON.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "fuzz.h"

#define MAX_DOC (1u << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

/* An integer json_i64 accepted is what the member says: a whole number, or a string of
 * digits (an optional '-', leading zeros allowed) with exactly that value. */
static void check_i64(const cJSON *v, int64_t n)
{
    char text[32];
    const char *s, *digits;

    if (cJSON_IsNumber(v)) {
        FUZZ_CHECK((double)n == v->valuedouble);
        return;
    }
    FUZZ_CHECK(cJSON_IsString(v));
    s = v->valuestring;
    digits = s + (*s == '-');
    FUZZ_CHECK(*digits && strspn(digits, "0123456789") == strlen(digits));
    while (digits[0] == '0' && digits[1])
        digits++;
    snprintf(text, sizeof(text), "%s%s", *s == '-' && strcmp(digits, "0") ? "-" : "", digits);
    {
        char back[32];
        snprintf(back, sizeof(back), "%lld", (long long)n);
        FUZZ_CHECK(strcmp(text, back) == 0);
    }
}

/* The typed look-ups on each member of every object, recursively (depth <= JSON_MAX_DEPTH). */
static void walk(const cJSON *j)
{
    const cJSON *c;

    cJSON_ArrayForEach(c, j)
    {
        if (cJSON_IsObject(j) && c->string) {
            int64_t n;
            int rc = json_i64(&n, j, c->string);
            FUZZ_CHECK(rc == 0 || rc == ERR_NOTFOUND || rc == ERR_PARSE);
            if (rc == 0 && c == cJSON_GetObjectItemCaseSensitive(j, c->string))
                check_i64(c, n);
            /* Duplicate keys: the look-ups see the first member of that name. */
            (void)json_str(j, c->string);
            (void)json_obj(j, c->string);
            (void)json_arr(j, c->string);
        }
        walk(c);
    }
}

/* json_quote_n(s) parsed back is s (cJSON strings end at a NUL, so only NUL-free input). */
static void quote_roundtrip(const char *s, size_t len)
{
    struct buf b = BUF_INIT(8 * len + 16);
    cJSON *j = NULL;

    if (memchr(s, 0, len))
        return;
    FUZZ_CHECK(json_quote_n(&b, s, len) == 0);
    FUZZ_CHECK(json_parse(&j, b.ptr, b.len, b.len) == 0);
    FUZZ_CHECK(cJSON_IsString(j));
    FUZZ_CHECK(strlen(j->valuestring) == len && memcmp(j->valuestring, s, len) == 0);
    cJSON_Delete(j);
    buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    cJSON *j = NULL, *again = NULL;
    char *text, *text2;
    int rc;

    rc = json_parse(&j, s, size, MAX_DOC);
    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    if (rc == 0) {
        walk(j);
        /* What cJSON prints of a tree we accepted must parse again, to the same text. */
        text = cJSON_PrintUnformatted(j);
        FUZZ_CHECK(text != NULL);
        FUZZ_CHECK(json_parse(&again, text, strlen(text), MAX_DOC * 8) == 0);
        text2 = cJSON_PrintUnformatted(again);
        FUZZ_CHECK(text2 != NULL && strcmp(text, text2) == 0);
        cJSON_free(text2);
        cJSON_free(text);
        cJSON_Delete(again);
        json_wipe_delete(j);
    }
    /* The cap: over it is ERR_TOOBIG and nothing is parsed. */
    if (size > 0) {
        j = NULL;
        FUZZ_CHECK(json_parse(&j, s, size, size - 1) == ERR_TOOBIG && j == NULL);
    }
    quote_roundtrip(s, size);
    return 0;
}
