#include "t.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/urlenc.h"
#include "kube/kpath.h"

/* kpath_add into a fresh buffer; the path, or "ERR <code>" when it failed. */
static const char *path(const char *gv, const char *ns, const char *resource, const char *name,
                        const char *sub)
{
    static char out[4096];
    struct buf b = BUF_INIT(4096);
    int rc = kpath_add(&b, gv, ns, resource, name, sub);

    if (rc < 0)
        snprintf(out, sizeof(out), "ERR %d", rc);
    else
        snprintf(out, sizeof(out), "%s", buf_str(&b));
    buf_release(&b);
    return out;
}

/* Every path form the controller sends, byte for byte as it sent them before kpath; and
 * odd characters, percent-encoded so that no input adds a segment, a query or a fragment. */
static void test_paths(void)
{
    static const struct {
        const char *gv, *ns, *resource, *name, *sub;
        const char *want;
    } cases[] = {
        { KPATH_CORE_V1, "team-a", "secrets", NULL, NULL, "/api/v1/namespaces/team-a/secrets" },
        { KPATH_CORE_V1, NULL, "secrets", NULL, NULL, "/api/v1/secrets" },
        { KPATH_CORE_V1, "team-a", "secrets", "db-token", NULL,
          "/api/v1/namespaces/team-a/secrets/db-token" },
        { KPATH_CORE_V1, "team-a", "events", NULL, NULL, "/api/v1/namespaces/team-a/events" },
        { KPATH_CORE_V1, "team-a", "events", "db-token.0123456789abcdef", NULL,
          "/api/v1/namespaces/team-a/events/db-token.0123456789abcdef" },
        { KPATH_CORE_V1, "team-a", "serviceaccounts", "app", NULL,
          "/api/v1/namespaces/team-a/serviceaccounts/app" },
        { KPATH_CORE_V1, "team-a", "serviceaccounts", "app", "token",
          "/api/v1/namespaces/team-a/serviceaccounts/app/token" },
        { KPATH_APPS_V1, "team-a", "deployments", "web", NULL,
          "/apis/apps/v1/namespaces/team-a/deployments/web" },
        { KPATH_APPS_V1, "team-a", "statefulsets", "db", NULL,
          "/apis/apps/v1/namespaces/team-a/statefulsets/db" },
        { KPATH_COORDINATION_V1, "kube-system", "leases", NULL, NULL,
          "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases" },
        { KPATH_COORDINATION_V1, "kube-system", "leases", "pgtoken-rotator", NULL,
          "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/pgtoken-rotator" },
        /* odd characters */
        { KPATH_CORE_V1, "a/b", "secrets", "../x?y#z", NULL,
          "/api/v1/namespaces/a%2Fb/secrets/..%2Fx%3Fy%23z" },
        { KPATH_CORE_V1, "sp ace", "secrets", "100%&=+", "st/atus",
          "/api/v1/namespaces/sp%20ace/secrets/100%25%26%3D%2B/st%2Fatus" },
        { KPATH_CORE_V1, "n", "secrets", "\xc3\xa9\x01\x7f~._-", NULL,
          "/api/v1/namespaces/n/secrets/%C3%A9%01%7F~._-" },
        { "apis/gr oup/v1", "n", "things", NULL, NULL, "/apis/gr%20oup/v1/namespaces/n/things" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        T_EQ_STR(path(cases[i].gv, cases[i].ns, cases[i].resource, cases[i].name, cases[i].sub),
                 cases[i].want);
}

/* The list and watch requests of kube/watch.c, queries included. */
static void test_list_and_watch_queries(void)
{
    struct buf b = BUF_INIT(4096);

    T_RC(kpath_add(&b, KPATH_CORE_V1, "team-a", "secrets", NULL, NULL), 0);
    T_RC(kpath_add_query(&b, "labelSelector", "pgtoken.io/managed=true"), 0);
    T_RC(kpath_add_query_i64(&b, "limit", 100), 0);
    T_RC(kpath_add_query(&b, "continue", "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ=="), 0);
    T_EQ_STR(buf_str(&b), "/api/v1/namespaces/team-a/secrets"
                          "?labelSelector=pgtoken.io%2Fmanaged%3Dtrue"
                          "&limit=100&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ%3D%3D");
    buf_reset(&b);
    T_RC(kpath_add(&b, KPATH_CORE_V1, NULL, "secrets", NULL, NULL), 0);
    T_RC(kpath_add_query(&b, "watch", "1"), 0);
    T_RC(kpath_add_query(&b, "allowWatchBookmarks", "true"), 0);
    T_RC(kpath_add_query(&b, "resourceVersion", "12345"), 0);
    T_RC(kpath_add_query_i64(&b, "timeoutSeconds", 317), 0);
    T_EQ_STR(buf_str(&b), "/api/v1/secrets?watch=1&allowWatchBookmarks=true&resourceVersion=12345"
                          "&timeoutSeconds=317");
    buf_reset(&b);
    T_RC(kpath_add(&b, KPATH_CORE_V1, NULL, "secrets", NULL, NULL), 0);
    T_RC(kpath_add_query(&b, "resourceVersion", ""), 0);
    T_RC(kpath_add_query_i64(&b, "n", INT64_MIN), 0);
    T_EQ_STR(buf_str(&b), "/api/v1/secrets?resourceVersion=&n=-9223372036854775808");
    buf_release(&b);
}

/* Query names and values are percent-encoded, and a '?' inside a segment (encoded) does
 * not count as the query's start. */
static void test_odd_characters_in_queries(void)
{
    struct buf b = BUF_INIT(4096);

    T_RC(kpath_add(&b, KPATH_CORE_V1, "q?", "secrets", "n?", NULL), 0);
    T_RC(kpath_add_query(&b, "a b", "c&d=e?"), 0);
    T_RC(kpath_add_query(&b, "f", "/"), 0);
    T_EQ_STR(buf_str(&b), "/api/v1/namespaces/q%3F/secrets/n%3F?a%20b=c%26d%3De%3F&f=%2F");
    buf_release(&b);
}

/* The encoding is the one the hand-built paths had (url_encode of each segment): for
 * every byte in a namespace and a name, the old construction and kpath_add agree. */
static void test_same_bytes_as_before(void)
{
    for (int c = 1; c < 256; c++) {
        char seg[4] = { 'x', (char)c, 'y', '\0' };
        struct buf old = BUF_INIT(256);
        buf_addstr(&old, "/api/v1/namespaces/");
        url_encode(&old, seg, strlen(seg));
        buf_addstr(&old, "/events/");
        url_encode(&old, seg, strlen(seg));
        T_EQ_STR(path(KPATH_CORE_V1, seg, "events", seg, NULL), buf_str(&old));
        buf_release(&old);
    }
}

/* A bad argument or the buffer's cap: an error, and b as it was (here "keep"). */
static void test_errors_leave_the_buffer_unchanged(void)
{
    static const struct {
        const char *gv, *ns, *resource, *name, *sub;
        int want;
    } cases[] = {
        { NULL, "n", "secrets", NULL, NULL, ERR_INVALID },
        { "", "n", "secrets", NULL, NULL, ERR_INVALID },
        { "api//v1", "n", "secrets", NULL, NULL, ERR_INVALID },
        { "/api/v1", "n", "secrets", NULL, NULL, ERR_INVALID },
        { "api/v1/", "n", "secrets", NULL, NULL, ERR_INVALID },
        { "api/v1", "n", NULL, NULL, NULL, ERR_INVALID },
        { "api/v1", "n", "", NULL, NULL, ERR_INVALID },
        { "api/v1", "", "secrets", NULL, NULL, ERR_INVALID },
        { "api/v1", "n", "secrets", "", NULL, ERR_INVALID },
        { "api/v1", "n", "secrets", "x", "", ERR_INVALID },
        { "api/v1", "n", "secrets", NULL, "status", ERR_INVALID },
    };
    struct buf b = BUF_INIT(4096), small = BUF_INIT(40);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf_reset(&b);
        buf_addstr(&b, "keep");
        T_RC(kpath_add(&b, cases[i].gv, cases[i].ns, cases[i].resource, cases[i].name,
                       cases[i].sub), cases[i].want);
        T_EQ_INT(b.len, 4);
        T_EQ_STR(buf_str(&b), "keep");
    }
    buf_reset(&b);
    buf_addstr(&b, "keep");
    T_RC(kpath_add_query(&b, "", "v"), ERR_INVALID);
    T_EQ_STR(buf_str(&b), "keep");

    /* 40 bytes: the path up to the name fits, the name does not: what was appended is
     * taken back */
    buf_addstr(&small, "keep");
    T_RC(kpath_add(&small, KPATH_CORE_V1, "ns", "secrets", "a-name-that-is-long", NULL),
         ERR_TOOBIG);
    T_EQ_INT(small.len, 4);
    T_EQ_STR(buf_str(&small), "keep");
    T_RC(kpath_add(&small, KPATH_CORE_V1, "ns", "secrets", "n", NULL), 0);
    T_EQ_STR(buf_str(&small), "keep/api/v1/namespaces/ns/secrets/n"); /* 35 bytes */
    T_RC(kpath_add_query(&small, "limit", "100"), ERR_TOOBIG);       /* fails after the '?' */
    T_EQ_STR(buf_str(&small), "keep/api/v1/namespaces/ns/secrets/n");
    T_RC(kpath_add_query(&small, "m", "%"), ERR_TOOBIG);             /* fails at the "%25" */
    T_EQ_STR(buf_str(&small), "keep/api/v1/namespaces/ns/secrets/n");
    T_RC(kpath_add_query_i64(&small, "l", 1), 0);
    T_EQ_STR(buf_str(&small), "keep/api/v1/namespaces/ns/secrets/n?l=1");
    buf_release(&small);
    buf_release(&b);
}

/* A string of n copies of c. */
static const char *rep(char *out, char c, size_t n)
{
    memset(out, c, n);
    out[n] = '\0';
    return out;
}

static void test_key_round_trips(void)
{
    char ns63[64], name253[254], key[KPATH_KEY_SIZE];
    struct kpath_key k;
    static const char *const parts[][2] = {
        { "a", "b" }, { "team-a", "db-token" }, { "kube-system", "x.y.z" }, { "n", "with:colon" },
    };

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        char want[KPATH_KEY_SIZE];
        snprintf(want, sizeof(want), "%s/%s", parts[i][0], parts[i][1]);
        T_RC(kpath_key_join(key, parts[i][0], parts[i][1]), 0);
        T_EQ_STR(key, want);
        memset(&k, 'Z', sizeof(k));
        T_RC(kpath_key_split(&k, key), 0);
        T_EQ_STR(k.ns, parts[i][0]);
        T_EQ_STR(k.name, parts[i][1]);
        memset(&k, 'Z', sizeof(k));
        T_RC(kpath_key_set(&k, parts[i][0], parts[i][1]), 0);
        T_EQ_STR(k.ns, parts[i][0]);
        T_EQ_STR(k.name, parts[i][1]);
    }
    /* the longest parts fill the key exactly */
    rep(ns63, 'n', 63);
    rep(name253, 'm', 253);
    T_RC(kpath_key_join(key, ns63, name253), 0);
    T_EQ_INT(strlen(key), KPATH_KEY_SIZE - 1);
    T_EQ_INT(key[63], '/');
    T_RC(kpath_key_split(&k, key), 0);
    T_EQ_STR(k.ns, ns63);
    T_EQ_STR(k.name, name253);
    T_RC(kpath_key_set(&k, ns63, name253), 0);
    T_EQ_STR(k.ns, ns63);
    T_EQ_STR(k.name, name253);
}

static void test_bad_keys(void)
{
    char ns64[65], name254[255], long_key[400], key[KPATH_KEY_SIZE];
    struct kpath_key k, before;
    static const char *const bad[] = { "", "no-slash", "/name", "ns/", "/", "a/b/c", "ns//n" };

    memset(&before, 'Z', sizeof(before));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        k = before;
        T_RC(kpath_key_split(&k, bad[i]), ERR_INVALID);
        T_CHECK(!memcmp(&k, &before, sizeof(k))); /* *out unchanged */
    }
    rep(ns64, 'n', 64);
    rep(name254, 'm', 254);
    snprintf(long_key, sizeof(long_key), "%s/x", ns64);
    k = before;
    T_RC(kpath_key_split(&k, long_key), ERR_INVALID);
    T_CHECK(!memcmp(&k, &before, sizeof(k)));
    snprintf(long_key, sizeof(long_key), "x/%s", name254);
    T_RC(kpath_key_split(&k, long_key), ERR_INVALID);
    T_CHECK(!memcmp(&k, &before, sizeof(k)));

    static const char *const bad_parts[][2] = {
        { "", "n" }, { "ns", "" }, { "a/b", "n" }, { "ns", "a/b" }, { "/", "n" },
    };
    for (size_t i = 0; i < sizeof(bad_parts) / sizeof(bad_parts[0]); i++) {
        memset(key, 'Z', sizeof(key));
        T_RC(kpath_key_join(key, bad_parts[i][0], bad_parts[i][1]), ERR_INVALID);
        T_EQ_STR(key, "");
        k = before;
        T_RC(kpath_key_set(&k, bad_parts[i][0], bad_parts[i][1]), ERR_INVALID);
        T_CHECK(!memcmp(&k, &before, sizeof(k)));
    }
    T_RC(kpath_key_join(key, ns64, "n"), ERR_INVALID);
    T_RC(kpath_key_join(key, "ns", name254), ERR_INVALID);
    T_RC(kpath_key_set(&k, ns64, "n"), ERR_INVALID);
    T_RC(kpath_key_set(&k, "ns", name254), ERR_INVALID);
    T_CHECK(!memcmp(&k, &before, sizeof(k)));
}

int main(void)
{
    T_RUN(test_paths);
    T_RUN(test_list_and_watch_queries);
    T_RUN(test_odd_characters_in_queries);
    T_RUN(test_same_bytes_as_before);
    T_RUN(test_errors_leave_the_buffer_unchanged);
    T_RUN(test_key_round_trips);
    T_RUN(test_bad_keys);
    return t_done();
}
