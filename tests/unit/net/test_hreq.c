/* lib/net/hreq: finding the end of a request head and parsing it, table-driven,
 * with every head copied to a heap block of its exact size so that a read past
 * its end is caught by AddressSanitizer; then a deterministic loop of random
 * and mutated heads that must never crash or yield an impossible result. */
#include "t.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "net/hreq.h"
#include "seeded.h"

#define H11 "Host: t\r\n"

/* Finds and parses s whole: hreq_head_len must measure all of it. */
static int parse(struct hreq *out, char **copy, const char *s)
{
    struct hreq_scan sc = HREQ_SCAN_INIT;
    size_t n = strlen(s);
    long hl;

    free(*copy);
    *copy = malloc(n ? n : 1);
    memcpy(*copy, s, n);
    hl = hreq_head_len(&sc, *copy, n, HREQ_HEAD_MAX);
    if (hl != (long)n) {
        t_fail(__FILE__, __LINE__, "head of \"%.40s\": length %ld, want %zu", s, hl, n);
        return -100;
    }
    return hreq_parse(out, *copy, n);
}

struct good {
    const char *head;
    const char *method, *path, *query;
    int minor;
    bool keep_alive, has_body;
};

static void test_parse_good(void)
{
    static const struct good cases[] = {
        { "GET / HTTP/1.1\r\n" H11 "\r\n", "GET", "/", "", 1, true, false },
        { "HEAD /metrics?a=1&b HTTP/1.1\r\nHost: h:9090\r\n\r\n", "HEAD", "/metrics", "a=1&b", 1,
          true, false },
        { "GET /readyz? HTTP/1.1\r\n" H11 "\r\n", "GET", "/readyz", "", 1, true, false },
        { "GET /a/b/../c?x?y HTTP/1.1\r\n" H11 "\r\n", "GET", "/a/b/../c", "x?y", 1, true, false },
        /* bare LF line ends, empty lines first (RFC 9112 2.2) */
        { "GET /x HTTP/1.1\nHost: t\n\n", "GET", "/x", "", 1, true, false },
        { "\r\n\nGET /x HTTP/1.1\r\n" H11 "\r\n", "GET", "/x", "", 1, true, false },
        /* HTTP/1.0: no Host needed, never kept alive */
        { "GET /h HTTP/1.0\r\n\r\n", "GET", "/h", "", 0, false, false },
        { "GET /h HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET", "/h", "", 0, false, false },
        { "GET / HTTP/1.9\r\n" H11 "\r\n", "GET", "/", "", 9, true, false },
        /* Connection: close anywhere in the list, any case */
        { "GET / HTTP/1.1\r\n" H11 "Connection: keep-alive, Close\r\n\r\n", "GET", "/", "", 1,
          false, false },
        { "GET / HTTP/1.1\r\n" H11 "connection:close\r\n\r\n", "GET", "/", "", 1, false, false },
        { "GET / HTTP/1.1\r\n" H11 "Connection: closed, upgrade\r\n\r\n", "GET", "/", "", 1, true,
          false },
        /* absolute-form */
        { "GET http://h:1/readyz?q HTTP/1.1\r\n" H11 "\r\n", "GET", "/readyz", "q", 1, true,
          false },
        { "GET HTTPS://h HTTP/1.1\r\n" H11 "\r\n", "GET", "/", "", 1, true, false },
        { "GET http://h?a=b HTTP/1.1\r\n" H11 "\r\n", "GET", "/", "a=b", 1, true, false },
        /* bodies */
        { "GET / HTTP/1.1\r\n" H11 "Content-Length: 0\r\n\r\n", "GET", "/", "", 1, true, false },
        { "POST /m HTTP/1.1\r\n" H11 "Content-Length: 3\r\n\r\n", "POST", "/m", "", 1, true,
          true },
        { "GET / HTTP/1.1\r\n" H11 "Content-Length: 7\r\ncontent-length:7\r\n\r\n", "GET", "/", "",
          1, true, true },
        { "GET / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n", "GET", "/", "", 1, true,
          true },
        { "GET / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", "/", "", 0, false, true },
        /* any token is a method; values may hold obs-text and inner spaces, OWS trimmed */
        { "M-SEARCH / HTTP/1.1\r\n" H11 "\r\n", "M-SEARCH", "/", "", 1, true, false },
        { "GET / HTTP/1.1\r\nHost:\t[::1]:80 \t\r\nX-A: caf\xc3\xa9  b\r\nX-B:\r\n\r\n", "GET",
          "/", "", 1, true, false },
        { "GET / HTTP/1.1\r\nHost: \r\n\r\n", "GET", "/", "", 1, true, false },
    };
    char *copy = NULL;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct good *g = &cases[i];
        struct hreq rq;
        int rc = parse(&rq, &copy, g->head);

        if (rc != 0) {
            t_fail(__FILE__, __LINE__, "case %zu: %d (%s)", i, rc, err_msg());
            continue;
        }
        if (strcmp(rq.method, g->method) || strcmp(rq.path, g->path) ||
            strcmp(rq.query, g->query) || rq.minor != g->minor ||
            rq.keep_alive != g->keep_alive || rq.has_body != g->has_body)
            t_fail(__FILE__, __LINE__,
                   "case %zu: %s %s ? %s 1.%d keep_alive=%d has_body=%d, "
                   "want %s %s ? %s 1.%d %d %d",
                   i, rq.method, rq.path, rq.query, rq.minor, rq.keep_alive, rq.has_body, g->method,
                   g->path, g->query, g->minor, g->keep_alive, g->has_body);
    }
    free(copy);
}

static void test_parse_bad(void)
{
    static const char *const cases[] = {
        "GET  / HTTP/1.1\r\n" H11 "\r\n",           /* two spaces */
        " GET / HTTP/1.1\r\n" H11 "\r\n",           /* leading space */
        "GET / HTTP/1.1 \r\n" H11 "\r\n",           /* trailing space */
        "GET /  HTTP/1.1\r\n" H11 "\r\n",
        "GET\t/ HTTP/1.1\r\n" H11 "\r\n",
        "GET/ HTTP/1.1\r\n" H11 "\r\n",
        "GET / HTTP/2.0\r\n" H11 "\r\n",
        "GET / HTTP/1.10\r\n" H11 "\r\n",
        "GET / http/1.1\r\n" H11 "\r\n",
        "GET / HTTP/1.x\r\n" H11 "\r\n",
        "GET / HTTP/1\r\n" H11 "\r\n",
        "GET /\r\n\r\n",                            /* HTTP/0.9 */
        "GET\r\n\r\n",
        "G\x01T / HTTP/1.1\r\n" H11 "\r\n",
        "G(T / HTTP/1.1\r\n" H11 "\r\n",            /* '(' is no tchar */
        "GET foo HTTP/1.1\r\n" H11 "\r\n",          /* neither form */
        "GET * HTTP/1.1\r\n" H11 "\r\n",
        "GET ftp://h/ HTTP/1.1\r\n" H11 "\r\n",
        "GET http:///x HTTP/1.1\r\n" H11 "\r\n",    /* no host */
        "GET /a b HTTP/1.1\r\n" H11 "\r\n",
        "GET /a\x7f HTTP/1.1\r\n" H11 "\r\n",
        "GET /\xc3\xa9 HTTP/1.1\r\n" H11 "\r\n",
        "GET /#frag HTTP/1.1\r\n" H11 "\r\n",
        "GET / HTTP/1.1\r\rHost: t\r\n\r\n",        /* a CR not before LF */
        "GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",                   /* HTTP/1.1 without Host */
        "GET / HTTP/1.1\r\n" H11 H11 "\r\n",        /* Host twice */
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\n\tHost: t\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : t\r\n\r\n",       /* space before the colon */
        "GET / HTTP/1.1\r\n" H11 ": v\r\n\r\n",     /* no name */
        "GET / HTTP/1.1\r\n" H11 "NoColon\r\n\r\n",
        "GET / HTTP/1.1\r\n" H11 "X(y): v\r\n\r\n",
        "GET / HTTP/1.1\r\n" H11 "X: a\x01" "b\r\n\r\n",
        "GET / HTTP/1.1\r\n" H11 "X: a\x7f\r\n\r\n",
        "GET / HTTP/1.1\r\n" H11 "Content-Length: abc\r\n\r\n",
        "GET / HTTP/1.1\r\n" H11 "Content-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\n" H11 "Content-Length: +5\r\n\r\n",
        "GET / HTTP/1.1\r\n" H11 "Content-Length: 1 2\r\n\r\n",
        "GET / HTTP/1.1\r\n" H11 "Content-Length:\r\n\r\n",
        "GET / HTTP/1.1\r\n" H11 "Content-Length: 1234567890123456789\r\n\r\n",
        "GET / HTTP/1.1\r\n" H11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
    };
    char *copy = NULL;
    struct hreq rq;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = parse(&rq, &copy, cases[i]);
        if (rc != ERR_PARSE)
            t_fail(__FILE__, __LINE__, "case %zu (\"%.30s\"): %d, want ERR_PARSE", i, cases[i], rc);
        else if (!*err_msg())
            t_fail(__FILE__, __LINE__, "case %zu: no message", i);
    }
    /* a NUL inside a line, and bytes after the blank line, are refused too */
    {
        static const char nul[] = "GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n";
        char *c = malloc(sizeof(nul) - 1);
        memcpy(c, nul, sizeof(nul) - 1);
        T_RC(hreq_parse(&rq, c, sizeof(nul) - 1), ERR_PARSE);
        free(c);
    }
    {
        static const char extra[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET";
        char *c = malloc(sizeof(extra) - 1);
        memcpy(c, extra, sizeof(extra) - 1);
        T_RC(hreq_parse(&rq, c, sizeof(extra) - 1), ERR_PARSE);
        free(c);
    }
    /* the message says what is wrong */
    T_RC(parse(&rq, &copy, "GET / HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n"), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "folded") != NULL);
    T_RC(parse(&rq, &copy, "GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n"), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "CR") != NULL);
    /* the message never quotes the request */
    T_RC(parse(&rq, &copy, "GET / HTTP/1.1\r\nHost: secret-value/x\r\n\r\n"), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "secret-value") == NULL);
    free(copy);
}

/* Fed one byte at a time, the head is found exactly where it ends, whatever
 * follows it (a pipelined request). */
static void test_head_len_incremental(void)
{
    static const struct {
        const char *data;
        long want;
    } cases[] = {
        { "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\n", 27 },
        { "GET / HTTP/1.1\nHost: t\n\nxyz", 24 },
        { "\r\n\r\n\nGET / HTTP/1.0\r\n\r\n", 23 },
        { "GET / HTTP/1.0\r\n\n", 17 },           /* CRLF then LF */
        { "GET / HTTP/1.1\r\nHost: t\r\n\r", 0 },  /* not yet */
        { "\r\n\r\n\r\n", 0 },                     /* empty lines only */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].data);
        char *d = malloc(n);
        struct hreq_scan sc = HREQ_SCAN_INIT;
        long got = 0;
        size_t k;

        memcpy(d, cases[i].data, n);
        for (k = 1; k <= n && got == 0; k++)
            got = hreq_head_len(&sc, d, k, HREQ_HEAD_MAX);
        if (got != cases[i].want)
            t_fail(__FILE__, __LINE__, "case %zu: %ld, want %ld", i, got, cases[i].want);
        else if (got && k - 1 != (size_t)got)
            t_fail(__FILE__, __LINE__, "case %zu: found after %zu bytes, want %ld", i, k - 1, got);
        /* all at once: the same */
        sc = (struct hreq_scan)HREQ_SCAN_INIT;
        T_EQ_INT(hreq_head_len(&sc, d, n, HREQ_HEAD_MAX), cases[i].want);
        free(d);
    }
}

static void test_head_len_cap(void)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n"; /* 27 bytes */
    struct hreq_scan sc = HREQ_SCAN_INIT;
    char big[64];

    T_EQ_INT(hreq_head_len(&sc, req, 27, 27), 27); /* ends exactly at the cap */
    sc = (struct hreq_scan)HREQ_SCAN_INIT;
    T_EQ_INT(hreq_head_len(&sc, req, 27, 26), ERR_TOOBIG);
    sc = (struct hreq_scan)HREQ_SCAN_INIT;
    T_EQ_INT(hreq_head_len(&sc, req, 20, 26), 0); /* under the cap: wait */
    memset(big, 'a', sizeof(big));
    sc = (struct hreq_scan)HREQ_SCAN_INIT;
    T_EQ_INT(hreq_head_len(&sc, big, sizeof(big), 32), ERR_TOOBIG);
    sc = (struct hreq_scan)HREQ_SCAN_INIT;
    T_EQ_INT(hreq_head_len(&sc, big, 31, 32), 0);
}

static uint64_t rnd_state;

static uint32_t rnd(void)
{
    return seeded_next(&rnd_state);
}

/* What a successful parse promises, checked on whatever parsed. */
static bool sane(const struct hreq *rq)
{
    return rq->method && *rq->method && rq->path && rq->path[0] == '/' && rq->query &&
           rq->minor >= 0 && rq->minor <= 9 && !strpbrk(rq->path, " \r\n?") &&
           !strpbrk(rq->method, " \r\n:/") && (!rq->keep_alive || rq->minor >= 1);
}

/* Random bytes, and valid heads with random bytes changed, inserted or cut:
 * no crash (ASan and UBSan watch the sanitizer build), and every accepted
 * head sane. Both kinds must be seen, or the loop tested nothing. */
static void test_fuzz(void)
{
    static const char *const seeds[] = {
        "GET /metrics?x=1 HTTP/1.1\r\nHost: h:9\r\nConnection: close\r\n\r\n",
        "HEAD http://h/readyz HTTP/1.0\r\nContent-Length: 0\r\nX: a\r\n\r\n",
        "\r\nGET / HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n\n",
    };
    static const char alphabet[] = "\r\n :/?#\t\x01\x7f\x80" "GETHOST0123456789ahtp.[]";
    int accepted = 0, rejected = 0, incomplete = 0;

    rnd_state = 0x9E3779B97F4A7C15ULL;
    for (int it = 0; it < 20000; it++) {
        char tmp[256];
        size_t n;
        struct hreq_scan sc = HREQ_SCAN_INIT;
        struct hreq rq;
        char *d;
        long hl;

        if (it % 4 == 0) {
            n = rnd() % sizeof(tmp);
            for (size_t i = 0; i < n; i++)
                tmp[i] = (char)(rnd() & 0xff);
        } else {
            const char *s = seeds[rnd() % 3];
            n = strlen(s);
            memcpy(tmp, s, n);
            for (int k = (int)(rnd() % 4); k >= 0; k--) {
                size_t at = rnd() % n;
                switch (rnd() % 3) {
                case 0:
                    tmp[at] = alphabet[rnd() % (sizeof(alphabet) - 1)];
                    break;
                case 1:
                    if (n < sizeof(tmp)) {
                        memmove(tmp + at + 1, tmp + at, n - at);
                        tmp[at] = alphabet[rnd() % (sizeof(alphabet) - 1)];
                        n++;
                    }
                    break;
                default:
                    memmove(tmp + at, tmp + at + 1, n - at - 1);
                    n--;
                    break;
                }
            }
        }
        d = malloc(n ? n : 1);
        memcpy(d, tmp, n);
        hl = hreq_head_len(&sc, d, n, 128);
        if (hl > 0 && (size_t)hl > n)
            t_fail(__FILE__, __LINE__, "iteration %d: head length %ld of %zu bytes", it, hl, n);
        if (hl > 0) {
            if (hreq_parse(&rq, d, (size_t)hl) == 0) {
                accepted++;
                if (!sane(&rq))
                    t_fail(__FILE__, __LINE__, "iteration %d: accepted an impossible head", it);
            } else {
                rejected++;
            }
        } else {
            incomplete++;
        }
        free(d);
    }
    if (accepted < 100 || rejected < 100 || incomplete < 100)
        t_fail(__FILE__, __LINE__, "accepted %d, rejected %d, incomplete %d: too few of one",
               accepted, rejected, incomplete);
}

int main(void)
{
    T_RUN(test_parse_good);
    T_RUN(test_parse_bad);
    T_RUN(test_head_len_incremental);
    T_RUN(test_head_len_cap);
    T_RUN(test_fuzz);
    return t_done();
}
