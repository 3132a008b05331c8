/* lib/base/prom: the registry and its scrape, checked through the strict
 * parser of the exposition format in expo.h (written apart from the renderer),
 * and byte for byte where the format leaves a choice (value formatting,
 * ordering). */
#include "t.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "base/prom.h"
#include "expo.h"

/* A whole scrape of p read into text (emptied first), piece bytes at a time.
 * 0, or the negative code a read returned. */
static int scrape(struct buf *text, struct prom *p, size_t piece)
{
    struct prom_scrape *s = prom_scrape_start(p);
    char *chunk = malloc(piece);
    long n;

    buf_release(text);
    buf_init(text, PROM_RENDER_MAX);
    while ((n = prom_scrape_read(s, chunk, piece)) > 0 && buf_add(text, chunk, (size_t)n) == 0)
        ;
    prom_scrape_free(s);
    free(chunk);
    return n > 0 ? ERR_TOOBIG : (int)n;
}

/* Scrapes p and parses the text strictly; the test fails with the reason. */
static bool scrape_parse(struct expo *x, struct prom *p, struct buf *text)
{
    int rc = scrape(text, p, 1 << 16);

    return expo_parse_scraped(x, rc, buf_str(text));
}

/* ---- The parser itself is strict ------------------------------------------ */

static void test_parser_rejects_malformed(void)
{
    static const char *const bad[] = {
        "a 1",                                               /* no final newline */
        "a 1\n",                                             /* no TYPE */
        "# HELP a x\n# TYPE a counter\na 1\na 2\n",          /* duplicate series */
        "# HELP a x\n# TYPE a counter\na{l=\"\\t\"} 1\n",    /* bad escape */
        "# HELP a x\n# TYPE a counter\na{l=\"x\",l=\"y\"} 1\n", /* repeated label */
        "# HELP a x\n# TYPE a counter\na{0l=\"x\"} 1\n",     /* bad label name */
        "# HELP a x\n# TYPE a counter\na -1\n",              /* negative counter */
        "# HELP a x\n# TYPE a gauge\na 1 1700000000\n",      /* timestamp */
        "# HELP a x\n# TYPE a gauge\na one\n",               /* bad value */
        "# HELP a x\n# TYPE a gauge\nb 1\n",                 /* outside its family */
        "# HELP a x\n# TYPE a gauge\na 1\n# HELP a y\n",     /* HELP after samples */
        "# HELP a x\n# TYPE a wibble\n",                     /* unknown type */
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n",                              /* not cumulative */
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", /* no +Inf */
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
        "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",     /* bounds not increasing */
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", /* no _sum */
        "# HELP s x\n# TYPE s summary\ns_sum 1\n",           /* no _count */
        "# HELP a x\n# TYPE a gauge\n\na 1\n",               /* empty line */
        "# HELP a x\n# TYPE a gauge\na{l=\"x} 1\n",          /* unterminated value */
    };
    static const char *const good =
        "# HELP a x \\\\ y\\n z\n# TYPE a counter\na{l=\"q\\\"\\\\\\n\"} 1\na{l=\"\"} 0\n"
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
        "h_sum 3.5\nh_count 2\n# HELP e empty\n# TYPE e gauge\n";
    struct expo x;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (expo_parse(&x, bad[i]) == 0)
            t_fail(__FILE__, __LINE__, "accepted bad exposition #%zu", i);
        expo_free(&x);
    }
    T_RC(expo_parse(&x, good), 0);
    T_EQ_INT(x.n, 6);
    T_CHECK(expo_get(&x, "a", "l=q\"\\\n") == 1);
    T_EQ_STR(fam_help(&x, "a"), "x \\ y\n z");
    expo_free(&x);
}

/* ---- Registry -------------------------------------------------------------- */

static void test_register_validation(void)
{
    struct prom *p = prom_new();
    struct prom_family *f = NULL;
    const char *const bad_label[] = { "0x", NULL };
    const char *const reserved[] = { "__name", NULL };
    const char *const repeated[] = { "a", "a", NULL };
    const char *const le[] = { "le", NULL };
    const char *const four[] = { "a", "b", "c", "d", NULL };
    const char *const five[] = { "a", "b", "c", "d", "e", NULL };
    const double decreasing[] = { 1, 0.5 }, inf[] = { 1, INFINITY }, ok[] = { 1 };
    double many[PROM_MAX_BUCKETS + 1];

    for (size_t i = 0; i <= PROM_MAX_BUCKETS; i++)
        many[i] = (double)i;
    T_RC(prom_counter(&f, p, "", "h", NULL), ERR_INVALID);
    T_RC(prom_counter(&f, p, NULL, "h", NULL), ERR_INVALID);
    T_RC(prom_counter(&f, p, "9lives_total", "h", NULL), ERR_INVALID);
    T_RC(prom_counter(&f, p, "a-b", "h", NULL), ERR_INVALID);
    T_RC(prom_counter(&f, p, "x_total", "h", bad_label), ERR_INVALID);
    T_RC(prom_counter(&f, p, "x_total", "h", reserved), ERR_INVALID);
    T_RC(prom_counter(&f, p, "x_total", "h", repeated), ERR_INVALID);
    T_RC(prom_counter(&f, p, "x_total", "h", five), ERR_INVALID);
    T_RC(prom_gauge(&f, p, "x:le", "h", le), 0); /* "le" is reserved on histograms only */
    T_RC(prom_histogram(&f, p, "h_seconds", "h", le, ok, 1), ERR_INVALID);
    T_RC(prom_histogram(&f, p, "h_seconds", "h", NULL, decreasing, 2), ERR_INVALID);
    T_RC(prom_histogram(&f, p, "h_seconds", "h", NULL, inf, 2), ERR_INVALID);
    T_RC(prom_histogram(&f, p, "h_seconds", "h", NULL, ok, 0), ERR_INVALID);
    T_RC(prom_histogram(&f, p, "h_seconds", "h", NULL, NULL, 1), ERR_INVALID);
    T_RC(prom_histogram(&f, p, "h_seconds", "h", NULL, many, PROM_MAX_BUCKETS + 1), ERR_INVALID);
    T_RC(prom_histogram(&f, p, "h_seconds", "h", NULL, many, PROM_MAX_BUCKETS), 0);
    T_RC(prom_counter(&f, p, "x4_total", "h", four), 0);
    T_RC(prom_counter(&f, p, "ns:x_total", "h", NULL), 0);
    T_RC(prom_gauge(&f, p, "ns:x_total", "h", NULL), ERR_INVALID); /* already registered */
    T_RC(prom_histogram(&f, p, "ns:x_total", "h", NULL, ok, 1), ERR_INVALID);
    T_RC(prom_collector(p, NULL, NULL), ERR_INVALID);
    prom_free(p);
    prom_free(NULL);
}

static void collect_scrapes(struct prom *p, void *ctx)
{
    struct prom_family *g = ctx;
    (void)p;
    prom_add(g, NULL, 1); /* counts scrapes */
}

static void test_render_types_and_escaping(void)
{
    struct prom *p = prom_new();
    struct prom_family *c, *g, *h, *hs, *empty, *scrapes;
    const char *const cl[] = { "path", "code", NULL };
    const char *const hl[] = { "verb", NULL };
    const double bounds[] = { 0.1, 0.5, 1, 2.5 };
    struct buf text = BUF_INIT(0);
    struct expo x = { 0 };

    T_RC(prom_counter(&c, p, "t_requests_total", "Requests \\ with\nnewline.", cl), 0);
    T_RC(prom_gauge(&g, p, "t_temperature", "A gauge.", NULL), 0);
    T_RC(prom_histogram(&h, p, "t_latency_seconds", "A histogram.", hl, bounds, 4), 0);
    T_RC(prom_histogram(&hs, p, "t_set_seconds", "A histogram set by a collector.", NULL,
                        bounds, 4), 0);
    T_RC(prom_gauge(&empty, p, "t_empty", "Never set.", hl), 0);
    T_RC(prom_gauge(&scrapes, p, "t_scrapes", "Collector runs.", NULL), 0);
    T_RC(prom_collector(p, collect_scrapes, scrapes), 0);

    prom_inc(c, PROM_LABELS("/a", "200"));
    prom_add(c, PROM_LABELS("/a", "200"), 2.5);
    prom_add(c, PROM_LABELS("/a", "200"), -7);  /* ignored: counters only go up */
    prom_add(c, PROM_LABELS("/a", "200"), NAN); /* ignored too */
    prom_inc(c, PROM_LABELS("we\"ird\\pa\nth", "é"));
    prom_inc(c, PROM_LABELS(NULL, ""));
    prom_set(g, NULL, 2);
    prom_add(g, NULL, -5.25); /* gauges go down */
    /* per bucket, the last one +Inf: rendered cumulative, the count their total */
    prom_set_histogram(h, PROM_LABELS("get"), (const uint64_t[]){ 1, 0, 1, 0, 1 }, 5, 100.8);
    prom_set_histogram(h, PROM_LABELS("put"), (const uint64_t[]){ 1, 0, 0, 0, 0 }, 5, 0.01);
    prom_set_histogram(hs, NULL, (const uint64_t[]){ 9, 9, 9, 9, 9 }, 5, 1);
    prom_set_histogram(hs, NULL, (const uint64_t[]){ 1, 0, 2, 0, 3 }, 5, 12.5); /* replaces */
    prom_set_histogram(hs, NULL, (const uint64_t[]){ 1, 1, 1, 1 }, 4, 7);  /* not 4 + 1 */
    prom_set_histogram(hs, NULL, NULL, 5, 7);
    /* the wrong type: ignored */
    prom_set_histogram(c, PROM_LABELS("/a", "200"), (const uint64_t[]){ 1 }, 1, 7);
    prom_set_histogram(g, NULL, (const uint64_t[]){ 1 }, 1, 7);
    prom_set(h, PROM_LABELS("get"), 5);
    prom_inc(h, PROM_LABELS("get"));
    prom_set_histogram(NULL, NULL, NULL, 0, 0);
    prom_inc(NULL, NULL);
    prom_set(NULL, NULL, 1);

    if (!scrape_parse(&x, p, &text))
        goto out;
    T_CHECK(expo_get(&x, "t_requests_total", "path=/a,code=200") == 3.5);
    T_CHECK(expo_get(&x, "t_requests_total", "code=é,path=we\"ird\\pa\nth") == 1);
    T_CHECK(expo_get(&x, "t_requests_total", "path=,code=") == 1);
    T_EQ_INT(expo_count(&x, "t_requests_total"), 3);
    T_CHECK(strstr(buf_str(&text), "path=\"we\\\"ird\\\\pa\\nth\"") != NULL);
    T_EQ_STR(fam_help(&x, "t_requests_total"), "Requests \\ with\nnewline.");
    T_CHECK(strstr(buf_str(&text), "# HELP t_requests_total Requests \\\\ with\\nnewline.\n"));
    T_EQ_STR(fam_type(&x, "t_requests_total"), "counter");
    T_CHECK(expo_get(&x, "t_temperature", "") == -3.25);
    T_EQ_STR(fam_type(&x, "t_temperature"), "gauge");
    T_EQ_STR(fam_type(&x, "t_latency_seconds"), "histogram");
    T_CHECK(expo_get(&x, "t_latency_seconds_bucket", "verb=get,le=0.1") == 1);
    T_CHECK(expo_get(&x, "t_latency_seconds_bucket", "verb=get,le=0.5") == 1);
    T_CHECK(expo_get(&x, "t_latency_seconds_bucket", "verb=get,le=1") == 2);
    T_CHECK(expo_get(&x, "t_latency_seconds_bucket", "verb=get,le=2.5") == 2);
    T_CHECK(expo_get(&x, "t_latency_seconds_bucket", "verb=get,le=+Inf") == 3);
    T_CHECK(expo_get(&x, "t_latency_seconds_sum", "verb=get") == 100.8);
    T_CHECK(expo_get(&x, "t_latency_seconds_count", "verb=get") == 3);
    T_CHECK(expo_get(&x, "t_latency_seconds_bucket", "verb=put,le=0.1") == 1);
    T_CHECK(expo_get(&x, "t_latency_seconds_count", "verb=put") == 1);
    T_EQ_INT(expo_count(&x, "t_latency_seconds_count"), 2);
    T_EQ_STR(fam_type(&x, "t_set_seconds"), "histogram");
    T_CHECK(expo_get(&x, "t_set_seconds_bucket", "le=0.1") == 1);
    T_CHECK(expo_get(&x, "t_set_seconds_bucket", "le=0.5") == 1);
    T_CHECK(expo_get(&x, "t_set_seconds_bucket", "le=1") == 3);
    T_CHECK(expo_get(&x, "t_set_seconds_bucket", "le=2.5") == 3);
    T_CHECK(expo_get(&x, "t_set_seconds_bucket", "le=+Inf") == 6);
    T_CHECK(expo_get(&x, "t_set_seconds_count", "") == 6);
    T_CHECK(expo_get(&x, "t_set_seconds_sum", "") == 12.5);
    T_CHECK(expo_family(&x, "t_empty") != NULL);
    T_EQ_INT(expo_count(&x, "t_empty"), 0);
    T_CHECK(expo_get(&x, "t_scrapes", "") == 1);
    /* families come out in registration order */
    T_CHECK(strstr(buf_str(&text), "t_requests_total") < strstr(buf_str(&text), "t_temperature"));
    T_CHECK(strstr(buf_str(&text), "t_empty") < strstr(buf_str(&text), "t_scrapes"));
    expo_free(&x);

    /* values move; the collector runs at every scrape */
    prom_inc(c, PROM_LABELS("/a", "200"));
    prom_set_histogram(h, PROM_LABELS("get"), (const uint64_t[]){ 0, 0, 0, 0, 4 }, 5, 40);
    if (!scrape_parse(&x, p, &text))
        goto out;
    T_CHECK(expo_get(&x, "t_requests_total", "path=/a,code=200") == 4.5);
    T_CHECK(expo_get(&x, "t_latency_seconds_bucket", "verb=get,le=2.5") == 0);
    T_CHECK(expo_get(&x, "t_latency_seconds_count", "verb=get") == 4);
    T_CHECK(expo_get(&x, "t_scrapes", "") == 2);
out:
    expo_free(&x);
    buf_release(&text);
    prom_free(p);
}

/* The exact text of a small registry: the layout the format leaves to us
 * (order, spacing, number formatting) is what dashboards and tests read. */
static void test_exact_text(void)
{
    struct prom *p = prom_new();
    struct prom_family *c, *g, *h;
    const char *const l[] = { "b", "a", NULL };
    const double bounds[] = { 0.005, 1 };
    struct buf text = BUF_INIT(0);

    T_RC(prom_counter(&c, p, "x_total", "Counts \"x\".", l), 0); /* HELP keeps quotes */
    T_RC(prom_gauge(&g, p, "y", "", NULL), 0);
    T_RC(prom_histogram(&h, p, "z_seconds", "Times.", l, bounds, 2), 0);
    prom_inc(c, PROM_LABELS("2", "z"));
    prom_inc(c, PROM_LABELS("10", "a"));
    prom_inc(c, PROM_LABELS("1", "b"));
    prom_set(g, NULL, 0.5);
    prom_set_histogram(h, PROM_LABELS("q", ""), (const uint64_t[]){ 1, 2, 3 }, 3, 7.25);
    T_RC(scrape(&text, p, 4096), 0);
    T_EQ_STR(buf_str(&text),
             "# HELP x_total Counts \"x\".\n"
             "# TYPE x_total counter\n"
             "x_total{b=\"1\",a=\"b\"} 1\n"
             "x_total{b=\"10\",a=\"a\"} 1\n"
             "x_total{b=\"2\",a=\"z\"} 1\n"
             "# HELP y \n"
             "# TYPE y gauge\n"
             "y 0.5\n"
             "# HELP z_seconds Times.\n"
             "# TYPE z_seconds histogram\n"
             "z_seconds_bucket{b=\"q\",a=\"\",le=\"0.005\"} 1\n"
             "z_seconds_bucket{b=\"q\",a=\"\",le=\"1\"} 3\n"
             "z_seconds_bucket{b=\"q\",a=\"\",le=\"+Inf\"} 6\n"
             "z_seconds_sum{b=\"q\",a=\"\"} 7.25\n"
             "z_seconds_count{b=\"q\",a=\"\"} 6\n");
    buf_release(&text);
    prom_free(p);
}

static void test_values_format(void)
{
    struct prom *p = prom_new();
    struct prom_family *g;
    const char *const l[] = { "v", NULL };
    struct buf text = BUF_INIT(0);

    T_RC(prom_gauge(&g, p, "g", "h", l), 0);
    prom_set(g, PROM_LABELS("a"), 0.1);
    prom_set(g, PROM_LABELS("b"), 1e21);
    prom_set(g, PROM_LABELS("c"), NAN);
    prom_set(g, PROM_LABELS("d"), -INFINITY);
    prom_set(g, PROM_LABELS("e"), 1700000000);
    prom_set(g, PROM_LABELS("f"), 1.0 / 3);
    prom_set(g, PROM_LABELS("g"), INFINITY);
    prom_set(g, PROM_LABELS("h"), -0.0);
    T_RC(scrape(&text, p, 4096), 0);
    T_CHECK(strstr(buf_str(&text), "g{v=\"a\"} 0.1\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "g{v=\"b\"} 1e+21\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "g{v=\"c\"} NaN\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "g{v=\"d\"} -Inf\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "g{v=\"e\"} 1700000000\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "g{v=\"f\"} 0.33333333333333331\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "g{v=\"g\"} +Inf\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "g{v=\"h\"} -0\n") != NULL);
    buf_release(&text);
    prom_free(p);
}

/* A label value over PROM_MAX_VALUE_LEN is dropped, and a family stops growing
 * at PROM_MAX_SERIES series; the series it has keep moving. */
static void test_series_limits(void)
{
    struct prom *p = prom_new();
    struct prom_family *g, *c;
    const char *const l[] = { "v", NULL };
    char *longest = malloc(PROM_MAX_VALUE_LEN + 2), name[16];
    struct buf text = BUF_INIT(0);
    size_t lines = 0;

    T_RC(prom_gauge(&g, p, "g", "h", l), 0);
    T_RC(prom_counter(&c, p, "c_total", "h", l), 0);
    memset(longest, 'x', PROM_MAX_VALUE_LEN + 1);
    longest[PROM_MAX_VALUE_LEN + 1] = '\0';
    prom_set(g, PROM_LABELS(longest), 1); /* one byte too many */
    longest[PROM_MAX_VALUE_LEN] = '\0';
    prom_set(g, PROM_LABELS(longest), 2);
    for (int i = 0; i < PROM_MAX_SERIES + 10; i++) {
        snprintf(name, sizeof(name), "%d", i);
        prom_inc(c, PROM_LABELS(name));
    }
    prom_inc(c, PROM_LABELS("0"));
    T_RC(scrape(&text, p, 1 << 16), 0);
    for (const char *s = buf_str(&text); (s = strstr(s, "\nc_total{")); s++)
        lines++;
    T_EQ_INT(lines, PROM_MAX_SERIES);
    T_CHECK(strstr(buf_str(&text), "c_total{v=\"0\"} 2\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "c_total{v=\"65535\"} 1\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "c_total{v=\"65536\"}") == NULL);
    T_CHECK(strstr(buf_str(&text), "xxxxxxxx\"} 2\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "xxxxxxxx\"} 1\n") == NULL);
    buf_release(&text);
    free(longest);
    prom_free(p);
}

/* ---- Series made at scrape time ---------------------------------------------- */

struct pair {
    const char *a, *b;
    double v;
};

struct pairs {
    const struct pair *list;
    size_t n;
    int calls;
};

static void emit_pairs(void *ctx, prom_emit_fn emit, void *ectx)
{
    struct pairs *ps = ctx;

    ps->calls++;
    for (size_t i = 0; i < ps->n; i++)
        emit(ectx, PROM_LABELS(ps->list[i].a, ps->list[i].b), ps->list[i].v);
}

/* A source's series come after the kept ones, sorted as kept series are: value
 * by value, a value before a longer one it begins; escaped the same way; an
 * over-long value drops its series. */
static void test_source_series(void)
{
    static const struct pair unsorted[] = {
        { "b", "", 1 }, { "ab", "", 2 }, { "a", "b", 3 }, { "a", "", 4 }, { "a", "a\"\n", 5 },
        { "\xc3\xa9", "x", 6 }, { "c", NULL, 7 }, { "", "z", 8 },
    };
    struct pairs ps = { unsorted, sizeof(unsorted) / sizeof(unsorted[0]), 0 };
    struct pair with_long[2] = { { "k", "kept", 1 }, { "k", NULL, 2 } };
    struct pairs ps_long = { with_long, 2, 0 };
    struct prom *p = prom_new();
    struct prom_family *g, *c, *h;
    const char *const l[] = { "x", "y", NULL };
    const double b[] = { 1 };
    char *longest = malloc(PROM_MAX_VALUE_LEN + 2);
    struct buf text = BUF_INIT(0);
    struct expo x = { 0 };

    T_RC(prom_gauge(&g, p, "g", "h", l), 0);
    T_RC(prom_counter(&c, p, "c_total", "h", l), 0);
    T_RC(prom_histogram(&h, p, "h", "h", NULL, b, 1), 0);
    prom_set(g, PROM_LABELS("zz", "kept"), 9); /* kept: before the source's, whatever its labels */
    prom_source(g, emit_pairs, &ps);
    prom_source(h, emit_pairs, &ps); /* histograms take no source */
    memset(longest, 'x', PROM_MAX_VALUE_LEN + 1);
    longest[PROM_MAX_VALUE_LEN + 1] = '\0';
    with_long[1].b = longest;
    prom_source(c, emit_pairs, &ps_long);
    T_RC(scrape(&text, p, 1 << 16), 0);
    T_EQ_STR(buf_str(&text),
             "# HELP g h\n"
             "# TYPE g gauge\n"
             "g{x=\"zz\",y=\"kept\"} 9\n"
             "g{x=\"\",y=\"z\"} 8\n"
             "g{x=\"a\",y=\"\"} 4\n"
             "g{x=\"a\",y=\"a\\\"\\n\"} 5\n"
             "g{x=\"a\",y=\"b\"} 3\n"
             "g{x=\"ab\",y=\"\"} 2\n"
             "g{x=\"b\",y=\"\"} 1\n"
             "g{x=\"c\",y=\"\"} 7\n"
             "g{x=\"\xc3\xa9\",y=\"x\"} 6\n"
             "# HELP c_total h\n"
             "# TYPE c_total counter\n"
             "c_total{x=\"k\",y=\"kept\"} 1\n"
             "# HELP h h\n"
             "# TYPE h histogram\n");
    T_EQ_INT(ps.calls, 1);
    T_EQ_INT(ps_long.calls, 1);

    /* a source runs at every scrape; NULL removes it */
    with_long[1].b = "back";
    if (!scrape_parse(&x, p, &text))
        goto out;
    T_EQ_INT(ps.calls, 2);
    T_CHECK(expo_get(&x, "c_total", "x=k,y=back") == 2);
    expo_free(&x);
    prom_source(g, NULL, NULL);
    if (!scrape_parse(&x, p, &text))
        goto out;
    T_EQ_INT(ps.calls, 2);
    T_EQ_INT(expo_count(&x, "g"), 1);
    T_CHECK(expo_get(&x, "g", "x=zz,y=kept") == 9);
out:
    expo_free(&x);
    buf_release(&text);
    free(longest);
    prom_free(p);
}

struct many {
    int n;
    size_t value_len; /* of each label value */
    int calls;
};

static void emit_many(void *ctx, prom_emit_fn emit, void *ectx)
{
    struct many *mn = ctx;
    char *v = malloc(mn->value_len + 1);

    mn->calls++;
    memset(v, 'v', mn->value_len);
    v[mn->value_len] = '\0';
    for (int i = 0; i < mn->n; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%05d", mn->n - 1 - i);
        memcpy(v, id, strlen(id) < mn->value_len ? strlen(id) : mn->value_len);
        emit(ectx, PROM_LABELS(v, v, v, v), i);
    }
    free(v);
}

/* Read a piece at a time (the listener's way), a scrape gives the same bytes
 * whatever the size of the pieces, across the batches a source's series are
 * rendered in, and then stays over. */
static void test_scrape_in_pieces(void)
{
    struct many mn = { 1000, 8, 0 };
    struct prom *p = prom_new();
    struct prom_family *g, *c;
    const char *const l[] = { "a", "b", "c", "d", NULL };
    struct buf whole = BUF_INIT(0), pieces = BUF_INIT(0);
    struct prom_scrape *s;
    const char *first, *last;
    char piece[7];
    long n;

    T_RC(prom_counter(&c, p, "c_total", "h", NULL), 0);
    T_RC(prom_gauge(&g, p, "g", "h", l), 0);
    prom_inc(c, NULL);
    prom_source(g, emit_many, &mn);
    T_RC(scrape(&whole, p, 1 << 20), 0);
    T_RC(scrape(&pieces, p, 1), 0);
    T_EQ_INT(pieces.len, whole.len);
    T_CHECK(pieces.len == whole.len && !memcmp(pieces.ptr, whole.ptr, whole.len));
    T_RC(scrape(&pieces, p, sizeof(piece)), 0);
    T_CHECK(pieces.len == whole.len && !memcmp(pieces.ptr, whole.ptr, whole.len));
    first = strstr(buf_str(&whole), "\ng{a=\"00000vvv\",");
    last = strstr(buf_str(&whole), "\ng{a=\"00999vvv\",");
    T_CHECK(first && last && first < last);
    s = prom_scrape_start(p);
    while ((n = prom_scrape_read(s, piece, sizeof(piece))) > 0)
        T_CHECK(n <= (long)sizeof(piece));
    T_EQ_INT(n, 0);
    T_EQ_INT(prom_scrape_read(s, piece, sizeof(piece)), 0); /* and stays over */
    prom_scrape_free(s);
    prom_scrape_free(NULL);
    buf_release(&whole);
    buf_release(&pieces);
    prom_free(p);
}

/* A source of more series than one window (2,048) is asked once per window:
 * every series comes out once, in order, and the scrape holds one window. */
static void test_source_windows(void)
{
    struct many mn = { 5000, 5, 0 };
    struct prom *p = prom_new();
    struct prom_family *g;
    const char *const l[] = { "a", "b", "c", "d", NULL };
    struct buf text = BUF_INIT(0);
    const char *at;
    int seen = 0, prev = -1;

    T_RC(prom_gauge(&g, p, "g", "h", l), 0);
    prom_source(g, emit_many, &mn);
    T_RC(scrape(&text, p, 4096), 0);
    T_EQ_INT(mn.calls, 3); /* 2,048 + 2,048 + 904 */
    for (at = strstr(buf_str(&text), "\ng{a=\""); at; at = strstr(at + 1, "\ng{a=\"")) {
        int id = atoi(at + 6);
        T_CHECK(id == prev + 1);
        prev = id;
        seen++;
    }
    T_EQ_INT(seen, 5000);
    buf_release(&text);
    prom_free(p);
}

/* A scrape whose text would pass PROM_RENDER_MAX fails with ERR_TOOBIG before
 * passing it, and keeps failing. */
static void test_scrape_cap(void)
{
    struct many mn = { 1000, PROM_MAX_VALUE_LEN, 0 };
    struct prom *p = prom_new();
    struct prom_family *g;
    const char *const l[] = { "a", "b", "c", "d", NULL };
    char name[16], *piece = malloc(1 << 16);
    struct prom_scrape *s;
    size_t total = 0;
    long n;

    /* 5 families of 1000 series of 4 KB: 20 MB */
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "g%d", i);
        T_RC(prom_gauge(&g, p, name, "h", l), 0);
        prom_source(g, emit_many, &mn);
    }
    s = prom_scrape_start(p);
    while ((n = prom_scrape_read(s, piece, 1 << 16)) > 0)
        total += (size_t)n;
    T_EQ_INT(n, ERR_TOOBIG);
    T_CHECK(total > PROM_RENDER_MAX / 2 && total <= PROM_RENDER_MAX);
    T_EQ_INT(prom_scrape_read(s, piece, 1 << 16), ERR_TOOBIG);
    prom_scrape_free(s);
    free(piece);
    prom_free(p);
}

/* ---- Threads ------------------------------------------------------------------ */

struct hammer {
    struct prom_family *c, *h;
    int id;
};

static void *hammer_main(void *arg)
{
    struct hammer *hm = arg;
    char who[16];
    uint64_t buckets[4] = { 0 };

    snprintf(who, sizeof(who), "w%d", hm->id);
    for (int i = 0; i < 2000; i++) {
        prom_inc(hm->c, PROM_LABELS(who));
        buckets[i % 4]++;
        prom_set_histogram(hm->h, PROM_LABELS(who), buckets, 4, i + 1);
    }
    return NULL;
}

static void test_concurrent_updates_and_scrapes(void)
{
    struct prom *p = prom_new();
    const char *const l[] = { "worker", NULL };
    const double b[] = { 1, 3, 5 };
    struct hammer hm[4];
    pthread_t th[4];
    int started = 0;
    struct buf text = BUF_INIT(0);
    struct expo x = { 0 };
    bool ok = true;

    T_RC(prom_counter(&hm[0].c, p, "ops_total", "h", l), 0);
    T_RC(prom_histogram(&hm[0].h, p, "op_size", "h", l, b, 3), 0);
    for (int i = 0; i < 4; i++) {
        hm[i] = hm[0];
        hm[i].id = i;
        if (pthread_create(&th[i], NULL, hammer_main, &hm[i]) != 0)
            break;
        started++;
    }
    T_EQ_INT(started, 4);
    for (int i = 0; i < 20 && ok; i++) { /* every intermediate scrape is consistent */
        ok = scrape_parse(&x, p, &text);
        expo_free(&x);
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (ok && scrape_parse(&x, p, &text)) {
        T_CHECK(expo_get(&x, "ops_total", "worker=w0") == 2000);
        T_CHECK(expo_get(&x, "ops_total", "worker=w3") == 2000);
        T_CHECK(expo_get(&x, "op_size_count", "worker=w1") == 2000);
        T_CHECK(expo_get(&x, "op_size_bucket", "worker=w2,le=1") == 500);
        T_CHECK(expo_get(&x, "op_size_sum", "worker=w3") == 2000);
    }
    expo_free(&x);
    buf_release(&text);
    prom_free(p);
}

int main(void)
{
    log_set_level(LOG_OFF);
    T_RUN(test_parser_rejects_malformed);
    T_RUN(test_register_validation);
    T_RUN(test_render_types_and_escaping);
    T_RUN(test_exact_text);
    T_RUN(test_values_format);
    T_RUN(test_series_limits);
    T_RUN(test_source_series);
    T_RUN(test_scrape_in_pieces);
    T_RUN(test_source_windows);
    T_RUN(test_scrape_cap);
    T_RUN(test_concurrent_updates_and_scrapes);
    return t_done();
}
