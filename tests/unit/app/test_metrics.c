/* lib/app/metrics and lib/app/httpd: the registry, the controller's families,
 * and the listener, checked through a strict parser of the text exposition
 * format 0.0.4 written here (independent of the renderer), and over HTTP with
 * libcurl on 127.0.0.1:0. */
#include "t.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <curl/curl.h>

#include "app/httpd.h"
#include "app/metrics.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "idp/tokcache.h"
#include "kube/kclient.h"
#include "kube/queue.h"
#include "kube/secret.h"
#include "kube/store.h"
#include "kube/watch.h"
#include "pg/pgcheck.h"
#include "rot/reconcile.h"

/* ---- A strict parser of the exposition format ---------------------------- */

#define X_MAX_SAMPLES 4096
#define X_MAX_FAMILIES 256
#define X_MAX_LABELS 8

struct x_label {
    char name[64];
    char value[256]; /* unescaped */
};

struct x_sample {
    char name[128];
    struct x_label labels[X_MAX_LABELS];
    int nlabels;
    double value;
    int family;
    char key[1024]; /* name + labels sorted by name, unescaped, for duplicates and look-ups */
};

struct x_family {
    char name[128];
    char type[16];
    char help[512];
    bool has_help, has_type;
};

struct expo {
    struct x_sample *s;
    int n;
    struct x_family f[X_MAX_FAMILIES];
    int nf;
    char why[512];
};

static int x_fail(struct expo *x, int line, const char *msg, const char *text)
{
    snprintf(x->why, sizeof(x->why), "line %d: %s: %.80s", line, msg, text);
    return -1;
}

static bool x_name(const char *s, size_t n, bool colon)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool a = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
        if (!a && !(i && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static bool x_float(double *out, const char *s)
{
    char *end;

    if (!strcmp(s, "NaN")) {
        *out = NAN;
        return true;
    }
    if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf")) {
        *out = s[0] == '+' ? INFINITY : -INFINITY;
        return true;
    }
    if (!*s || strspn(s, "0123456789+-.eE") != strlen(s))
        return false; /* no "inf", "nan", hex, spaces */
    *out = strtod(s, &end);
    return *end == '\0';
}

/* Unescapes a HELP text (\\ and \n only) or a label value (also \"). */
static bool x_unescape(char *out, size_t max, const char **p, bool quoted)
{
    size_t n = 0;

    while (**p && (!quoted || **p != '"')) {
        char c = *(*p)++;
        if (c == '\n')
            return false;
        if (c == '\\') {
            char e = *(*p)++;
            if (e == '\\')
                c = '\\';
            else if (e == 'n')
                c = '\n';
            else if (e == '"' && quoted)
                c = '"';
            else
                return false;
        }
        if (n + 1 >= max)
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return !quoted || **p == '"';
}

static int x_cmp_label(const void *a, const void *b)
{
    return strcmp(((const struct x_label *)a)->name, ((const struct x_label *)b)->name);
}

static void x_key(char *out, size_t max, const char *name, const struct x_label *ls, int n,
                  const char *skip)
{
    struct x_label sorted[X_MAX_LABELS];
    size_t len;

    memcpy(sorted, ls, (size_t)n * sizeof(*ls));
    qsort(sorted, (size_t)n, sizeof(*sorted), x_cmp_label);
    len = (size_t)snprintf(out, max, "%s{", name);
    for (int i = 0; i < n && len < max; i++) {
        if (skip && !strcmp(sorted[i].name, skip))
            continue;
        len += (size_t)snprintf(out + len, max - len, "%s=%s\x1f", sorted[i].name, sorted[i].value);
    }
    if (len < max)
        snprintf(out + len, max - len, "}");
}

static int x_find_family(const struct expo *x, const char *name)
{
    for (int i = 0; i < x->nf; i++)
        if (!strcmp(x->f[i].name, name))
            return i;
    return -1;
}

static bool has_suffix(const char *s, const char *base, const char *suffix)
{
    size_t bl = strlen(base);
    return !strncmp(s, base, bl) && !strcmp(s + bl, suffix);
}

/* The family a sample name belongs to, given the current family. */
static bool x_belongs(const struct x_family *f, const char *name)
{
    if (!strcmp(f->type, "histogram"))
        return has_suffix(name, f->name, "_bucket") || has_suffix(name, f->name, "_sum") ||
               has_suffix(name, f->name, "_count");
    if (!strcmp(f->type, "summary"))
        return !strcmp(name, f->name) || has_suffix(name, f->name, "_sum") ||
               has_suffix(name, f->name, "_count");
    return !strcmp(name, f->name);
}

static const char *x_label_value(const struct x_sample *s, const char *name)
{
    for (int i = 0; i < s->nlabels; i++)
        if (!strcmp(s->labels[i].name, name))
            return s->labels[i].value;
    return NULL;
}

/* Histograms and summaries: per series (labels without le/quantile), buckets
 * increasing in le and in count, ending with +Inf == _count, and a _sum. */
static int x_check_family(struct expo *x, int fi)
{
    const struct x_family *f = &x->f[fi];
    bool hist = !strcmp(f->type, "histogram"), summ = !strcmp(f->type, "summary");
    char base[1024], other[1024], name[160];

    if (!hist && !summ)
        return 0;
    for (int i = 0; i < x->n; i++) {
        const struct x_sample *s = &x->s[i];
        double last_le = -INFINITY, last_count = 0;
        bool seen_inf = false, has_sum = false, has_count = false, first_of_group = true;
        double count = -1;

        if (s->family != fi)
            continue;
        x_key(base, sizeof(base), "", s->labels, s->nlabels, hist ? "le" : "quantile");
        /* handle each group once: at its first sample */
        for (int j = 0; j < i; j++) {
            if (x->s[j].family != fi)
                continue;
            x_key(other, sizeof(other), "", x->s[j].labels, x->s[j].nlabels,
                  hist ? "le" : "quantile");
            if (!strcmp(base, other))
                first_of_group = false;
        }
        if (!first_of_group)
            continue;
        for (int j = i; j < x->n; j++) {
            const struct x_sample *t = &x->s[j];
            if (t->family != fi)
                continue;
            x_key(other, sizeof(other), "", t->labels, t->nlabels, hist ? "le" : "quantile");
            if (strcmp(base, other))
                continue;
            snprintf(name, sizeof(name), "%s_bucket", f->name);
            if (hist && !strcmp(t->name, name)) {
                const char *le = x_label_value(t, "le");
                double lev;
                if (!le || !x_float(&lev, le) || isnan(lev))
                    return x_fail(x, 0, "bucket without a valid le", t->key);
                if (seen_inf || lev <= last_le)
                    return x_fail(x, 0, "bucket bounds not increasing", t->key);
                if (t->value < last_count || isnan(t->value))
                    return x_fail(x, 0, "bucket counts not cumulative", t->key);
                last_le = lev;
                last_count = t->value;
                seen_inf = isinf(lev) && lev > 0;
                continue;
            }
            if (x_label_value(t, hist ? "le" : "quantile"))
                return x_fail(x, 0, "le/quantile on a _sum or _count", t->key);
            snprintf(name, sizeof(name), "%s_sum", f->name);
            if (!strcmp(t->name, name)) {
                has_sum = true;
                continue;
            }
            snprintf(name, sizeof(name), "%s_count", f->name);
            if (!strcmp(t->name, name)) {
                has_count = true;
                count = t->value;
            }
        }
        if (!has_sum || !has_count)
            return x_fail(x, 0, "series without _sum or _count", s->key);
        if (hist && !seen_inf)
            return x_fail(x, 0, "histogram without a +Inf bucket", s->key);
        if (hist && count != last_count)
            return x_fail(x, 0, "_count differs from the +Inf bucket", s->key);
    }
    return 0;
}

static void expo_free(struct expo *x)
{
    free(x->s);
    x->s = NULL;
}

static int expo_parse(struct expo *x, const char *text)
{
    const char *p = text;
    int line = 0, cur = -1;

    memset(x, 0, sizeof(*x));
    x->s = calloc(X_MAX_SAMPLES, sizeof(*x->s));
    if (*text && text[strlen(text) - 1] != '\n')
        return x_fail(x, 0, "the text does not end with a newline", "");
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = (size_t)(nl - p);
        char ln[4096];

        line++;
        if (len >= sizeof(ln))
            return x_fail(x, line, "line too long", p);
        memcpy(ln, p, len);
        ln[len] = '\0';
        p = nl + 1;
        if (!len)
            return x_fail(x, line, "empty line", "");
        if (ln[0] == '#') {
            char kind[8] = "", name[160] = "";
            const char *q = ln + 2, *rest;
            size_t kl, nl2;
            int fi;
            if (ln[1] != ' ')
                return x_fail(x, line, "comment not in '# KIND name ...' form", ln);
            kl = strcspn(q, " ");
            if (kl >= sizeof(kind) || q[kl] != ' ')
                return x_fail(x, line, "comment not in '# KIND name ...' form", ln);
            memcpy(kind, q, kl);
            q += kl + 1;
            nl2 = strcspn(q, " ");
            if (nl2 >= sizeof(name) || !x_name(q, nl2, true))
                return x_fail(x, line, "bad metric name in comment", ln);
            memcpy(name, q, nl2);
            q += nl2;
            if (*q == ' ')
                q++;
            else if (*q)
                return x_fail(x, line, "malformed comment", ln);
            rest = q;
            if ((fi = x_find_family(x, name)) < 0) {
                if (x->nf == X_MAX_FAMILIES)
                    return x_fail(x, line, "too many families", ln);
                fi = x->nf++;
                snprintf(x->f[fi].name, sizeof(x->f[fi].name), "%s", name);
            } else if (fi != cur) {
                return x_fail(x, line, "family described twice (not contiguous)", ln);
            }
            for (int i = 0; i < x->n; i++)
                if (x->s[i].family == fi)
                    return x_fail(x, line, "HELP/TYPE after the family's samples", ln);
            cur = fi;
            if (!strcmp(kind, "HELP")) {
                q = rest;
                if (x->f[fi].has_help)
                    return x_fail(x, line, "second HELP", ln);
                if (!x_unescape(x->f[fi].help, sizeof(x->f[fi].help), &q, false))
                    return x_fail(x, line, "bad escape in HELP", ln);
                x->f[fi].has_help = true;
            } else if (!strcmp(kind, "TYPE")) {
                if (x->f[fi].has_type)
                    return x_fail(x, line, "second TYPE", ln);
                if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
                    strcmp(rest, "summary") && strcmp(rest, "untyped"))
                    return x_fail(x, line, "unknown TYPE", ln);
                snprintf(x->f[fi].type, sizeof(x->f[fi].type), "%s", rest);
                x->f[fi].has_type = true;
            } else {
                return x_fail(x, line, "comment other than HELP/TYPE", ln);
            }
            continue;
        }
        /* a sample: name{l="v",...} value */
        if (x->n == X_MAX_SAMPLES)
            return x_fail(x, line, "too many samples", ln);
        struct x_sample *s = &x->s[x->n];
        const char *q = ln;
        size_t nl_len = strcspn(q, "{ ");
        if (!x_name(q, nl_len, true) || nl_len >= sizeof(s->name))
            return x_fail(x, line, "bad metric name", ln);
        memcpy(s->name, q, nl_len);
        q += nl_len;
        if (*q == '{') {
            q++;
            while (*q != '}') {
                struct x_label *l = &s->labels[s->nlabels];
                size_t ll = strcspn(q, "=");
                if (s->nlabels == X_MAX_LABELS || !x_name(q, ll, false) || ll >= sizeof(l->name))
                    return x_fail(x, line, "bad label name", ln);
                memcpy(l->name, q, ll);
                l->name[ll] = '\0';
                q += ll;
                if (q[0] != '=' || q[1] != '"')
                    return x_fail(x, line, "label without =\"", ln);
                q += 2;
                if (!x_unescape(l->value, sizeof(l->value), &q, true))
                    return x_fail(x, line, "bad label value escape", ln);
                q++; /* closing quote */
                for (int i = 0; i < s->nlabels; i++)
                    if (!strcmp(s->labels[i].name, l->name))
                        return x_fail(x, line, "label repeated", ln);
                s->nlabels++;
                if (*q == ',' && q[1] != '}')
                    q++;
                else if (*q != '}')
                    return x_fail(x, line, "labels not separated by ','", ln);
            }
            q++;
        }
        if (*q != ' ' || strchr(q + 1, ' '))
            return x_fail(x, line, "want exactly one space then the value (no timestamp)", ln);
        if (!x_float(&s->value, q + 1))
            return x_fail(x, line, "bad value", ln);
        if (cur < 0 || !x->f[cur].has_type || !x_belongs(&x->f[cur], s->name))
            return x_fail(x, line, "sample outside its family's TYPE block", ln);
        s->family = cur;
        if (!strcmp(x->f[cur].type, "counter") && (isnan(s->value) || s->value < 0))
            return x_fail(x, line, "counter value negative or NaN", ln);
        x_key(s->key, sizeof(s->key), s->name, s->labels, s->nlabels, NULL);
        for (int i = 0; i < x->n; i++)
            if (!strcmp(x->s[i].key, s->key))
                return x_fail(x, line, "duplicate series", ln);
        x->n++;
    }
    for (int i = 0; i < x->nf; i++) {
        if (!x->f[i].has_help || !x->f[i].has_type)
            return x_fail(x, 0, "family without HELP and TYPE", x->f[i].name);
        if (x_check_family(x, i) < 0)
            return -1;
    }
    return 0;
}

/* The value of name{labels} (labels: "k=v,k=v" in any order, "" for none);
 * -12345 when absent. */
static double expo_get(const struct expo *x, const char *name, const char *labels)
{
    struct x_label ls[X_MAX_LABELS];
    char copy[512], key[1024], *save = NULL;
    int n = 0;

    snprintf(copy, sizeof(copy), "%s", labels);
    for (char *tok = strtok_r(copy, ",", &save); tok && n < X_MAX_LABELS;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        snprintf(ls[n].name, sizeof(ls[n].name), "%s", tok);
        snprintf(ls[n].value, sizeof(ls[n].value), "%s", eq + 1);
        n++;
    }
    x_key(key, sizeof(key), name, ls, n, NULL);
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->s[i].key, key))
            return x->s[i].value;
    return -12345;
}

static int expo_count(const struct expo *x, const char *name)
{
    int c = 0;
    for (int i = 0; i < x->n; i++)
        c += !strcmp(x->s[i].name, name);
    return c;
}

static const struct x_family *expo_family(const struct expo *x, const char *name)
{
    int i = x_find_family(x, name);
    return i < 0 ? NULL : &x->f[i];
}

static const char *fam_help(const struct expo *x, const char *name)
{
    const struct x_family *f = expo_family(x, name);
    return f ? f->help : "(no family)";
}

static const char *fam_type(const struct expo *x, const char *name)
{
    const struct x_family *f = expo_family(x, name);
    return f ? f->type : "(no family)";
}

/* Renders m and parses it strictly; the test fails with the parser's reason. */
static bool render_parse(struct expo *x, struct metrics *m, struct buf *text)
{
    int rc;

    buf_init(text, 0);
    if ((rc = metrics_render(text, m)) < 0) {
        t_fail(__FILE__, __LINE__, "metrics_render: %d %s", rc, err_msg());
        return false;
    }
    if (expo_parse(x, buf_str(text)) < 0) {
        t_fail(__FILE__, __LINE__, "exposition rejected: %s\n%s", x->why, buf_str(text));
        return false;
    }
    return true;
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
    struct metrics *m = metrics_new();
    struct metric *f = NULL;
    const char *const bad_label[] = { "0x", NULL };
    const char *const reserved[] = { "__name", NULL };
    const char *const repeated[] = { "a", "a", NULL };
    const char *const le[] = { "le", NULL };
    const char *const five[] = { "a", "b", "c", "d", "e", NULL };
    const double decreasing[] = { 1, 0.5 }, inf[] = { 1, INFINITY }, ok[] = { 1 };

    T_RC(metrics_counter(&f, m, "", "h", NULL), ERR_INVALID);
    T_RC(metrics_counter(&f, m, "9lives_total", "h", NULL), ERR_INVALID);
    T_RC(metrics_counter(&f, m, "a-b", "h", NULL), ERR_INVALID);
    T_RC(metrics_counter(&f, m, "x_total", "h", bad_label), ERR_INVALID);
    T_RC(metrics_counter(&f, m, "x_total", "h", reserved), ERR_INVALID);
    T_RC(metrics_counter(&f, m, "x_total", "h", repeated), ERR_INVALID);
    T_RC(metrics_counter(&f, m, "x_total", "h", five), ERR_INVALID);
    T_RC(metrics_histogram(&f, m, "h_seconds", "h", le, ok, 1), ERR_INVALID);
    T_RC(metrics_histogram(&f, m, "h_seconds", "h", NULL, decreasing, 2), ERR_INVALID);
    T_RC(metrics_histogram(&f, m, "h_seconds", "h", NULL, inf, 2), ERR_INVALID);
    T_RC(metrics_histogram(&f, m, "h_seconds", "h", NULL, ok, 0), ERR_INVALID);
    T_RC(metrics_counter(&f, m, "ns:x_total", "h", NULL), 0);
    T_RC(metrics_gauge(&f, m, "ns:x_total", "h", NULL), ERR_INVALID); /* already registered */
    T_RC(metrics_collector(m, NULL, NULL), ERR_INVALID);
    metrics_free(m);
    metrics_free(NULL);
}

static void collect_gauge(struct metrics *m, void *ctx)
{
    struct metric *g = ctx;
    (void)m;
    metric_add(g, NULL, 1); /* counts scrapes */
}

static void test_render_types_and_escaping(void)
{
    struct metrics *m = metrics_new();
    struct metric *c, *g, *h, *hs, *empty, *scrapes;
    const char *const cl[] = { "path", "code", NULL };
    const char *const hl[] = { "verb", NULL };
    const double bounds[] = { 0.1, 0.5, 1, 2.5 };
    struct buf text;
    struct expo x;

    T_RC(metrics_counter(&c, m, "t_requests_total", "Requests \\ with\nnewline.", cl), 0);
    T_RC(metrics_gauge(&g, m, "t_temperature", "A gauge.", NULL), 0);
    T_RC(metrics_histogram(&h, m, "t_latency_seconds", "A histogram.", hl, bounds, 4), 0);
    T_RC(metrics_histogram(&hs, m, "t_set_seconds", "A histogram set by a collector.", NULL,
                           bounds, 4), 0);
    T_RC(metrics_gauge(&empty, m, "t_empty", "Never set.", hl), 0);
    T_RC(metrics_gauge(&scrapes, m, "t_scrapes", "Collector runs.", NULL), 0);
    T_RC(metrics_collector(m, collect_gauge, scrapes), 0);

    metric_inc(c, METRIC_LABELS("/a", "200"));
    metric_add(c, METRIC_LABELS("/a", "200"), 2.5);
    metric_add(c, METRIC_LABELS("/a", "200"), -7); /* ignored: counters only go up */
    metric_inc(c, METRIC_LABELS("we\"ird\\pa\nth", "é"));
    metric_inc(c, METRIC_LABELS(NULL, ""));
    metric_set(g, NULL, -3.25);
    metric_observe(h, METRIC_LABELS("get"), 0.1); /* on a bound: that bucket */
    metric_observe(h, METRIC_LABELS("get"), 0.7);
    metric_observe(h, METRIC_LABELS("get"), 100);
    metric_observe(h, METRIC_LABELS("put"), 0.01);
    metric_observe(g, NULL, 5);                   /* wrong type: ignored */
    metric_set(h, METRIC_LABELS("get"), 5);       /* wrong type: ignored */
    /* per bucket, the last one +Inf: rendered cumulative, the count their total */
    metric_set_histogram(hs, NULL, (const uint64_t[]){ 9, 9, 9, 9, 9 }, 5, 1);
    metric_set_histogram(hs, NULL, (const uint64_t[]){ 1, 0, 2, 0, 3 }, 5, 12.5); /* replaces */
    metric_set_histogram(hs, NULL, (const uint64_t[]){ 1, 1, 1, 1 }, 4, 7);  /* not 4 + 1 */
    metric_set_histogram(c, METRIC_LABELS("/a", "200"), (const uint64_t[]){ 1 }, 1, 7);
    metric_set_histogram(NULL, NULL, NULL, 0, 0);
    metric_inc(NULL, NULL);

    if (!render_parse(&x, m, &text))
        goto out;
    T_CHECK(expo_get(&x, "t_requests_total", "path=/a,code=200") == 3.5);
    T_CHECK(expo_get(&x, "t_requests_total", "code=é,path=we\"ird\\pa\nth") == 1);
    T_CHECK(expo_get(&x, "t_requests_total", "path=,code=") == 1);
    T_CHECK(strstr(buf_str(&text), "path=\"we\\\"ird\\\\pa\\nth\"") != NULL);
    T_EQ_STR(fam_help(&x, "t_requests_total"), "Requests \\ with\nnewline.");
    T_EQ_STR(fam_type(&x, "t_requests_total"), "counter");
    T_CHECK(expo_get(&x, "t_temperature", "") == -3.25);
    T_EQ_STR(fam_type(&x, "t_latency_seconds"), "histogram");
    T_CHECK(expo_get(&x, "t_latency_seconds_bucket", "verb=get,le=0.1") == 1);
    T_CHECK(expo_get(&x, "t_latency_seconds_bucket", "verb=get,le=0.5") == 1);
    T_CHECK(expo_get(&x, "t_latency_seconds_bucket", "verb=get,le=1") == 2);
    T_CHECK(expo_get(&x, "t_latency_seconds_bucket", "verb=get,le=2.5") == 2);
    T_CHECK(expo_get(&x, "t_latency_seconds_bucket", "verb=get,le=+Inf") == 3);
    T_CHECK(fabs(expo_get(&x, "t_latency_seconds_sum", "verb=get") - 100.8) < 1e-9);
    T_CHECK(expo_get(&x, "t_latency_seconds_count", "verb=get") == 3);
    T_CHECK(expo_get(&x, "t_latency_seconds_bucket", "verb=put,le=0.1") == 1);
    T_EQ_STR(fam_type(&x, "t_set_seconds"), "histogram");
    T_CHECK(expo_get(&x, "t_set_seconds_bucket", "le=0.1") == 1);
    T_CHECK(expo_get(&x, "t_set_seconds_bucket", "le=0.5") == 1);
    T_CHECK(expo_get(&x, "t_set_seconds_bucket", "le=1") == 3);
    T_CHECK(expo_get(&x, "t_set_seconds_bucket", "le=2.5") == 3);
    T_CHECK(expo_get(&x, "t_set_seconds_bucket", "le=+Inf") == 6);
    T_CHECK(expo_get(&x, "t_set_seconds_count", "") == 6);
    T_CHECK(expo_get(&x, "t_set_seconds_sum", "") == 12.5);
    T_CHECK(metric_value(hs, NULL) == 6);
    T_CHECK(expo_family(&x, "t_empty") != NULL);
    T_EQ_INT(expo_count(&x, "t_empty"), 0);
    T_CHECK(expo_get(&x, "t_scrapes", "") == 1);
    T_CHECK(metric_value(c, METRIC_LABELS("/a", "200")) == 3.5);
    T_CHECK(metric_value(h, METRIC_LABELS("get")) == 3);
    T_CHECK(metric_value(c, METRIC_LABELS("/none", "200")) == 0);
    /* families come out in registration order */
    T_CHECK(strstr(buf_str(&text), "t_requests_total") < strstr(buf_str(&text), "t_temperature"));
    expo_free(&x);
    buf_release(&text);

    /* values move; removed series go */
    metric_inc(c, METRIC_LABELS("/a", "200"));
    metric_remove(c, METRIC_LABELS(NULL, ""));
    metric_clear(h);
    if (!render_parse(&x, m, &text))
        goto out;
    T_CHECK(expo_get(&x, "t_requests_total", "path=/a,code=200") == 4.5);
    T_CHECK(expo_get(&x, "t_requests_total", "path=,code=") == -12345);
    T_EQ_INT(expo_count(&x, "t_latency_seconds_bucket"), 0);
    T_CHECK(expo_get(&x, "t_scrapes", "") == 2);
out:
    expo_free(&x);
    buf_release(&text);
    metrics_free(m);
}

static void test_values_format(void)
{
    struct metrics *m = metrics_new();
    struct metric *g;
    const char *const l[] = { "v", NULL };
    struct buf text = BUF_INIT(0);

    T_RC(metrics_gauge(&g, m, "g", "h", l), 0);
    metric_set(g, METRIC_LABELS("a"), 0.1);
    metric_set(g, METRIC_LABELS("b"), 1e21);
    metric_set(g, METRIC_LABELS("c"), NAN);
    metric_set(g, METRIC_LABELS("d"), -INFINITY);
    metric_set(g, METRIC_LABELS("e"), 1700000000);
    metric_set(g, METRIC_LABELS("f"), 1.0 / 3);
    T_RC(metrics_render(&text, m), 0);
    T_CHECK(strstr(buf_str(&text), "g{v=\"a\"} 0.1\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "g{v=\"b\"} 1e+21\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "g{v=\"c\"} NaN\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "g{v=\"d\"} -Inf\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "g{v=\"e\"} 1700000000\n") != NULL);
    T_CHECK(strstr(buf_str(&text), "g{v=\"f\"} 0.33333333333333331\n") != NULL);
    /* a cap that the text passes */
    buf_release(&text);
    buf_init(&text, 16);
    T_RC(metrics_render(&text, m), ERR_TOOBIG);
    buf_release(&text);
    metrics_free(m);
}

struct hammer {
    struct metric *c, *h;
    int id;
};

static void *hammer_main(void *arg)
{
    struct hammer *hm = arg;
    char who[16];

    snprintf(who, sizeof(who), "w%d", hm->id);
    for (int i = 0; i < 2000; i++) {
        metric_inc(hm->c, METRIC_LABELS(who));
        metric_observe(hm->h, NULL, (double)(i % 7));
    }
    return NULL;
}

static void test_concurrent_updates_and_scrapes(void)
{
    struct metrics *m = metrics_new();
    const char *const l[] = { "worker", NULL };
    const double b[] = { 1, 3, 5 };
    struct hammer hm[4];
    pthread_t th[4];
    struct buf text;
    struct expo x;
    bool ok = true;

    T_RC(metrics_counter(&hm[0].c, m, "ops_total", "h", l), 0);
    T_RC(metrics_histogram(&hm[0].h, m, "op_size", "h", NULL, b, 3), 0);
    for (int i = 0; i < 4; i++) {
        hm[i] = hm[0];
        hm[i].id = i;
        pthread_create(&th[i], NULL, hammer_main, &hm[i]);
    }
    for (int i = 0; i < 20 && ok; i++) { /* every intermediate scrape is consistent */
        ok = render_parse(&x, m, &text);
        expo_free(&x);
        buf_release(&text);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    if (ok && render_parse(&x, m, &text)) {
        T_CHECK(expo_get(&x, "ops_total", "worker=w0") == 2000);
        T_CHECK(expo_get(&x, "ops_total", "worker=w3") == 2000);
        T_CHECK(expo_get(&x, "op_size_count", "") == 8000);
        expo_free(&x);
        buf_release(&text);
    }
    metrics_free(m);
}

/* ---- The controller's families ----------------------------------------------- */

static int fake_check(struct pg_check_result *out, const struct pg_target *t,
                      const struct sbuf *token, const struct pg_check_opts *o, void *arg)
{
    (void)token, (void)o, (void)arg;
    memset(out, 0, sizeof(*out));
    out->login = strcmp(t->user, "refused") ? PG_LOGIN_OK : PG_LOGIN_REJECTED;
    return 0;
}

static struct kube_secret *secret(const char *ns, const char *name, const char *exp,
                                  const char *rot, bool deleting)
{
    char text[1024];
    cJSON *j = NULL;
    struct kube_secret *s = NULL;

    snprintf(text, sizeof(text),
             "{\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\",\"resourceVersion\":\"1\"%s,"
             "\"annotations\":{\"%s\":\"%s\",\"%s\":\"%s\"}},\"data\":{}}",
             ns, name, deleting ? ",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"" : "",
             STATUS_EXPIRES_AT, exp, STATUS_ROTATE_AT, rot);
    if (json_parse(&j, text, strlen(text), 1 << 20) == 0)
        kube_secret_from_json(&s, j);
    cJSON_Delete(j);
    return s;
}

static bool ready_flag(void *ctx)
{
    return atomic_load((atomic_bool *)ctx);
}

struct app_fixture {
    struct metrics *m;
    struct rot_stats rot;
    struct watch_stats watch;
    struct kube_client *kc;
    struct tokcache *tc;
    struct pg_check_cache *pg;
    struct store *st;
    struct queue *q;
    atomic_bool ready;
    atomic_long overdue, requeued;
};

static size_t overdue_count(void *ctx)
{
    return (size_t)atomic_load((atomic_long *)ctx);
}

static int fixture_init(struct app_fixture *f)
{
    struct kube_client_opts ko = { .server = "https://127.0.0.1:1" };
    struct http_opts ho = { 0 };
    struct pg_check_cache_hooks hooks = { .check = fake_check };
    int rc;

    memset(f, 0, sizeof(*f));
    if ((rc = kube_client_new(&f->kc, &ko)) < 0 || (rc = tokcache_new(&f->tc, &ho, 0.25)) < 0)
        return rc;
    f->pg = pg_check_cache_new(0, &hooks);
    f->st = store_new();
    f->q = queue_new();
    f->m = metrics_new();
    struct metrics_sources src = {
        .rot = &f->rot, .watch = &f->watch, .kube = kube_client_stats(f->kc), .tokens = f->tc,
        .pg = f->pg, .store = f->st, .secret_status = f->st, .queue = f->q, .lease = NULL,
        .ready = ready_flag, .ready_ctx = &f->ready, .version = "1.2.3", .revision = "abc\"def",
        .overdue = overdue_count, .overdue_ctx = &f->overdue, .resync_requeued = &f->requeued,
    };
    return metrics_register_app(f->m, &src);
}

static void fixture_release(struct app_fixture *f)
{
    metrics_free(f->m);
    queue_free(f->q);
    store_free(f->st);
    pg_check_cache_free(f->pg);
    tokcache_free(f->tc);
    kube_client_free(f->kc);
}

static void test_app_families(void)
{
    static const char *const names[] = {
        "build_info", "rotations_total", "rotation_failures_total", "secret_write_conflicts_total",
        "workload_restarts_total",
        "token_requests_total", "token_cache_hits_total", "token_request_duration_seconds",
        "login_checks_total", "login_check_duration_seconds", "login_check_cache_hits_total",
        "login_check_cache_failures_shared_total",
        "login_check_cache_shared_total", "login_check_cache_evictions_total",
        "login_check_cache_entries", "secret_token_expiry_timestamp_seconds", "secret_ready",
        "secret_next_rotation_timestamp_seconds", "managed_secrets", "watch_lists_total",
        "watch_restarts_total", "watch_events_total", "watch_expired_total",
        "relist_found_total", "kube_api_requests_total", "kube_api_request_duration_seconds", "kube_api_errors_total",
        "kube_api_conflicts_total", "kube_api_throttled_total", "workqueue_depth",
        "workqueue_delayed", "leader", "ready", "secrets_overdue", "resync_requeued_total",
    };
    /* the standard ones, without the prefix */
    static const char *const process[] = {
        "process_cpu_seconds_total", "process_open_fds", "process_max_fds",
        "process_virtual_memory_bytes", "process_resident_memory_bytes",
        "process_start_time_seconds",
    };
    struct app_fixture f;
    struct buf text = BUF_INIT(0);
    struct expo x = { 0 };
    char full[160];

    if (fixture_init(&f) < 0) {
        t_fail(__FILE__, __LINE__, "fixture: %s", err_msg());
        goto out;
    }
    if (!render_parse(&x, f.m, &text))
        goto out;
    T_EQ_INT(x.nf, (int)(sizeof(names) / sizeof(names[0]) + sizeof(process) / sizeof(process[0])));
    for (size_t i = 0; i < sizeof(process) / sizeof(process[0]); i++) {
        /* one series each, read from /proc at the scrape */
        if (expo_count(&x, process[i]) != 1)
            t_fail(__FILE__, __LINE__, "%s: %d series", process[i], expo_count(&x, process[i]));
        else if (!(expo_get(&x, process[i], "") >= 0))
            t_fail(__FILE__, __LINE__, "%s is %g", process[i], expo_get(&x, process[i], ""));
    }
    T_EQ_STR(fam_type(&x, "process_cpu_seconds_total"), "counter");
    T_EQ_STR(fam_type(&x, "process_start_time_seconds"), "gauge");
    T_CHECK(expo_get(&x, "process_open_fds", "") >= 3);
    T_CHECK(expo_get(&x, "process_max_fds", "") >= expo_get(&x, "process_open_fds", ""));
    T_CHECK(expo_get(&x, "process_start_time_seconds", "") > 1.7e9);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct x_family *fam;
        snprintf(full, sizeof(full), METRICS_PREFIX "%s", names[i]);
        fam = expo_family(&x, full);
        if (!fam) {
            t_fail(__FILE__, __LINE__, "family %s missing", full);
            continue;
        }
        /* counters are named _total, nothing else is */
        if ((strcmp(fam->type, "counter") == 0) != (strstr(full, "_total") != NULL))
            t_fail(__FILE__, __LINE__, "%s is a %s", full, fam->type);
        if (!*fam->help)
            t_fail(__FILE__, __LINE__, "%s has no help", full);
    }
    T_CHECK(expo_get(&x, "pgtoken_rotator_build_info", "version=1.2.3,revision=abc\"def") == 1);
    T_CHECK(expo_get(&x, "pgtoken_rotator_rotations_total", "result=success") == 0);
    T_CHECK(expo_get(&x, "pgtoken_rotator_rotation_failures_total", "reason=LoginFailed") == 0);
    T_CHECK(expo_get(&x, "pgtoken_rotator_leader", "") == 1); /* no election: leads */
    T_CHECK(expo_get(&x, "pgtoken_rotator_ready", "") == 0);
    T_CHECK(expo_get(&x, "pgtoken_rotator_managed_secrets", "") == 0);
    T_CHECK(expo_get(&x, "pgtoken_rotator_secrets_overdue", "") == 0);
    T_CHECK(expo_get(&x, "pgtoken_rotator_resync_requeued_total", "") == 0);
    /* the latency histograms exist from the start, empty (rate() has a series) */
    T_CHECK(expo_get(&x, "pgtoken_rotator_login_check_duration_seconds_bucket", "le=+Inf") == 0);
    T_CHECK(expo_get(&x, "pgtoken_rotator_token_request_duration_seconds_count", "") == 0);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_token_request_duration_seconds_bucket"), 13);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_kube_api_request_duration_seconds_count"), 0);
    T_RC(metrics_register_app(f.m, &(struct metrics_sources){ 0 }), ERR_INVALID);
out:
    expo_free(&x);
    buf_release(&text);
    fixture_release(&f);
}

static void test_app_values_move(void)
{
    struct app_fixture f;
    struct buf text = BUF_INIT(0);
    struct expo x = { 0 };
    struct kube_secret *s1 = NULL, *s2 = NULL, *s3 = NULL;
    struct pg_check_result res;
    struct pg_target t = { "db.example.test", 5432, "app", "role" };
    struct sbuf *tok = sbuf_from("header.payload.signature", 24);
    struct tokcache_stats *ts;
    struct kube_stats *ks;

    if (fixture_init(&f) < 0) {
        t_fail(__FILE__, __LINE__, "fixture: %s", err_msg());
        goto out;
    }
    /* what the modules count */
    atomic_fetch_add(&f.rot.rotations, 3);
    atomic_fetch_add(&f.rot.rotation_failures, 2);
    atomic_fetch_add(&f.rot.noop, 1);
    atomic_fetch_add(&f.rot.conflicts, 4);
    atomic_fetch_add(&f.rot.restarts, 2);
    atomic_fetch_add(&f.rot.login[PG_LOGIN_OK], 3);
    atomic_fetch_add(&f.rot.login[PG_LOGIN_TLS], 1);
    /* four checks: 3 ms, 40 ms, 1.2 s, 1.257 s */
    latency_hist_observe_ms(&f.rot.login_latency, 3);
    latency_hist_observe_ms(&f.rot.login_latency, 40);
    latency_hist_observe_ms(&f.rot.login_latency, 1200);
    latency_hist_observe_ms(&f.rot.login_latency, 1257);
    atomic_fetch_add(&f.watch.lists, 2);
    atomic_fetch_add(&f.watch.restarts, 5);
    atomic_fetch_add(&f.watch.events, 40);
    atomic_fetch_add(&f.watch.gone, 1);
    atomic_fetch_add(&f.watch.relist_found, 3);
    ts = tokcache_stats(f.tc);
    atomic_fetch_add(&ts->requests, 4);
    atomic_fetch_add(&ts->failures, 1);
    atomic_fetch_add(&ts->hits, 9);
    for (int i = 0; i < 4; i++) /* four requests: 300 ms each */
        latency_hist_observe_ms(&ts->latency, 300);
    ks = kube_client_stats(f.kc);
    atomic_fetch_add(&ks->errors, 6);
    atomic_fetch_add(&ks->conflicts, 2);
    atomic_fetch_add(&ks->throttled, 1);
    pg_check_cached(&res, f.pg, &t, tok, 4102444800, NULL);
    pg_check_cached(&res, f.pg, &t, tok, 4102444800, NULL);
    t.user = "refused"; /* a failure, kept: the second call is answered with it */
    pg_check_cached(&res, f.pg, &t, tok, 4102444800, NULL);
    pg_check_cached(&res, f.pg, &t, tok, 4102444800, NULL);
    queue_add(f.q, "ns/a");
    queue_add_after(f.q, "ns/b", 60000);
    s1 = secret("team-a", "db", "2026-11-23T18:00:00Z", "2026-11-23T17:30:00Z", false);
    s2 = secret("team-b", "db", "garbage", "2026-11-23T17:30:00.5Z", false);
    store_upsert(f.st, kube_secret_dup(s1));
    store_upsert(f.st, kube_secret_dup(s2));
    atomic_store(&f.ready, true);
    atomic_store(&f.overdue, 7);
    atomic_store(&f.requeued, 3);
    /* per-Secret series come from the store's status annotations at the scrape */
    store_upsert(f.st, secret("team-c", "x", "2027-01-15T08:00:00Z", "2027-01-15T05:13:20Z",
                              false));
    metrics_api_request(f.m, "GET", 200, 12);
    metrics_api_request(f.m, "get", 404, 3);
    metrics_api_request(f.m, "PUT", 409, 40);
    metrics_api_request(f.m, "PATCH", 0, 30000);
    metrics_api_request(f.m, "WATCH", 200, 300000);
    metrics_api_request(f.m, "BREW", 418, 1);
    metrics_api_request(f.m, "POST", 201, 5);
    metrics_api_request(f.m, "post", 201, 5);
    metrics_api_request(f.m, "DELETE", 99, 5);   /* not a status: no answer */
    metrics_api_request(f.m, "DELETE", 600, 5);
    metrics_rotation_failure(f.m, "LoginFailed");
    metrics_rotation_failure(f.m, "LoginFailed");
    metrics_rotation_failure(f.m, "TokenFailed");
    metrics_rotation_failure(f.m, "Surprise");

    if (!render_parse(&x, f.m, &text))
        goto out;
#define G(name, labels) expo_get(&x, "pgtoken_rotator_" name, labels)
    T_CHECK(G("rotations_total", "result=success") == 3);
    T_CHECK(G("rotations_total", "result=failure") == 2);
    T_CHECK(G("rotations_total", "result=noop") == 1);
    T_CHECK(G("secret_write_conflicts_total", "") == 4);
    T_CHECK(G("workload_restarts_total", "") == 2);
    T_CHECK(G("rotation_failures_total", "reason=LoginFailed") == 2);
    T_CHECK(G("rotation_failures_total", "reason=TokenFailed") == 1);
    T_CHECK(G("rotation_failures_total", "reason=WriteFailed") == 0);
    T_CHECK(G("rotation_failures_total", "reason=Other") == 1);
    T_CHECK(G("login_checks_total", "result=ok") == 3);
    T_CHECK(G("login_checks_total", "result=tls") == 1);
    T_CHECK(G("login_checks_total", "result=unreachable") == 0);
    T_CHECK(G("login_check_duration_seconds_sum", "") == 2.5);
    T_CHECK(G("login_check_duration_seconds_count", "") == 4);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=0.005") == 1);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=0.025") == 1);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=0.1") == 2);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=1") == 2);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=2") == 4);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=60") == 4);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=+Inf") == 4);
    T_CHECK(G("token_requests_total", "result=success") == 3);
    T_CHECK(G("token_requests_total", "result=failure") == 1);
    T_CHECK(G("token_cache_hits_total", "") == 9);
    T_CHECK(G("token_request_duration_seconds_sum", "") == 1.2);
    T_CHECK(G("token_request_duration_seconds_count", "") == 4);
    T_CHECK(G("token_request_duration_seconds_bucket", "le=0.25") == 0);
    T_CHECK(G("token_request_duration_seconds_bucket", "le=0.5") == 4);
    T_CHECK(G("token_request_duration_seconds_bucket", "le=+Inf") == 4);
    T_EQ_STR(fam_type(&x, "pgtoken_rotator_token_request_duration_seconds"), "histogram");
    T_CHECK(G("login_check_cache_hits_total", "") == 1);
    T_CHECK(G("login_check_cache_failures_shared_total", "") == 1);
    T_CHECK(G("login_check_cache_entries", "") == 2);
    T_CHECK(G("watch_lists_total", "") == 2);
    T_CHECK(G("watch_restarts_total", "") == 5);
    T_CHECK(G("watch_events_total", "") == 40);
    T_CHECK(G("watch_expired_total", "") == 1);
    T_CHECK(G("relist_found_total", "") == 3);
    T_CHECK(G("kube_api_errors_total", "") == 6);
    T_CHECK(G("kube_api_conflicts_total", "") == 2);
    T_CHECK(G("kube_api_throttled_total", "") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=get,code=200") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=get,code=404") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=put,code=409") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=patch,code=error") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=watch,code=200") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=other,code=418") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=post,code=201") == 2);
    T_CHECK(G("kube_api_requests_total", "verb=delete,code=error") == 2);
    T_CHECK(G("kube_api_requests_total", "verb=get,code=4xx") == -12345); /* no classes */
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_kube_api_requests_total"), 8);
    T_CHECK(G("kube_api_request_duration_seconds_count", "verb=get") == 2);
    T_CHECK(G("kube_api_request_duration_seconds_bucket", "verb=get,le=0.005") == 1);
    T_CHECK(G("kube_api_request_duration_seconds_bucket", "verb=get,le=0.025") == 2);
    T_CHECK(G("kube_api_request_duration_seconds_bucket", "verb=patch,le=30") == 1);
    T_CHECK(G("kube_api_request_duration_seconds_count", "verb=watch") == -12345);
    T_CHECK(G("managed_secrets", "") == 3);
    T_CHECK(G("workqueue_depth", "") == 1);
    T_CHECK(G("workqueue_delayed", "") == 1);
    T_CHECK(G("ready", "") == 1);
    T_CHECK(G("secrets_overdue", "") == 7);
    T_CHECK(G("resync_requeued_total", "") == 3);
    /* 2026-11-23T18:00:00Z = 1795456800 */
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-a,secret=db") ==
            1795456800);
    T_CHECK(G("secret_next_rotation_timestamp_seconds", "namespace=team-a,secret=db") ==
            1795456800 - 1800);
    /* an unparsable expiry is no series at all, not a 0 that would fire alerts */
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-b,secret=db") == -12345);
    T_CHECK(G("secret_next_rotation_timestamp_seconds", "namespace=team-b,secret=db") ==
            1795456800 - 1800);
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-c,secret=x") == 1.8e9);
    T_CHECK(G("secret_next_rotation_timestamp_seconds", "namespace=team-c,secret=x") ==
            1.8e9 - 10000);
    T_CHECK(strstr(buf_str(&text), "header.payload") == NULL); /* nothing secret */
    expo_free(&x);
    buf_release(&text);

    /* counters move on, Secrets go */
    atomic_fetch_add(&f.rot.rotations, 1);
    atomic_fetch_add(&f.watch.restarts, 1);
    store_delete(f.st, "team-b/db");
    s3 = secret("team-a", "db", "2026-11-23T18:00:00Z", "2026-11-23T17:30:00Z", true);
    store_upsert(f.st, kube_secret_dup(s3)); /* being deleted: no series */
    store_upsert(f.st, secret("team-c", "x", "2027-01-15T08:00:00Z", "", false));
    if (!render_parse(&x, f.m, &text))
        goto out;
    T_CHECK(G("rotations_total", "result=success") == 4);
    T_CHECK(G("watch_restarts_total", "") == 6);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_token_expiry_timestamp_seconds"), 1);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_next_rotation_timestamp_seconds"), 0);
    store_delete(f.st, "team-a/db");
    store_delete(f.st, "team-c/x");
    expo_free(&x);
    buf_release(&text);
    if (!render_parse(&x, f.m, &text))
        goto out;
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_token_expiry_timestamp_seconds"), 0);
#undef G
    /* every call takes NULL */
    metrics_api_request(NULL, "GET", 200, 1);
    metrics_rotation_failure(NULL, "TokenFailed");
out:
    expo_free(&x);
    buf_release(&text);
    kube_secret_free(s1);
    kube_secret_free(s2);
    kube_secret_free(s3);
    sbuf_free(tok);
    fixture_release(&f);
}

/* Drops the samples of the process_* families (they move between two scrapes). */
static void strip_process(struct buf *b)
{
    size_t w = 0;

    for (size_t r = 0; r < b->len;) {
        const char *nl = memchr(b->ptr + r, '\n', b->len - r);
        size_t n = nl ? (size_t)(nl - (b->ptr + r)) + 1 : b->len - r;
        if (strncmp(b->ptr + r, "process_", 8)) {
            memmove(b->ptr + w, b->ptr + r, n);
            w += n;
        }
        r += n;
    }
    b->len = w;
    if (b->ptr)
        b->ptr[w] = '\0';
}

/* With secret_status, the per-Secret gauges come from the store at scrape time:
 * nothing is kept per Secret in the registry, and a Secret gone from the store
 * is gone from the next scrape without any call. */
static void test_app_secret_gauges_from_store(void)
{
    struct metrics *m = metrics_new();
    struct store *st = store_new();
    struct buf text = BUF_INIT(0);
    struct expo x = { 0 };
    struct metrics_sources src = { .store = st, .secret_status = st };
    const char *body;
    char name[32];

    T_RC(metrics_register_app(m, &src), 0);
    store_upsert(st, secret("team-b", "db", "garbage", "2026-11-23T17:30:00Z", false));
    store_upsert(st, secret("team-a", "db", "2026-11-23T18:00:00Z", "2026-11-23T17:30:00Z", false));
    store_upsert(st, secret("team-a", "old", "2026-11-23T18:00:00Z", "2026-11-23T17:30:00Z", true));
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "s-%03d", 299 - i);
        store_upsert(st, secret("bulk", name, "2026-11-23T18:00:00Z", "2026-11-23T17:30:00Z",
                                false));
    }
    if (!render_parse(&x, m, &text))
        goto out;
#define G(name, labels) expo_get(&x, "pgtoken_rotator_" name, labels)
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-a,secret=db") ==
            1795456800);
    T_CHECK(G("secret_next_rotation_timestamp_seconds", "namespace=team-a,secret=db") ==
            1795456800 - 1800);
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-b,secret=db") == -12345);
    T_CHECK(G("secret_next_rotation_timestamp_seconds", "namespace=team-b,secret=db") ==
            1795456800 - 1800);
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-a,secret=old") == -12345);
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=bulk,secret=s-123") ==
            1795456800);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_token_expiry_timestamp_seconds"), 301);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_next_rotation_timestamp_seconds"), 302);
    /* sorted by label values */
    body = buf_str(&text);
    T_CHECK(strstr(body, "namespace=\"bulk\",secret=\"s-000\"") <
            strstr(body, "namespace=\"bulk\",secret=\"s-001\""));
    T_CHECK(strstr(body, "namespace=\"bulk\",secret=\"s-299\"") <
            strstr(body, "namespace=\"team-a\",secret=\"db\""));
    expo_free(&x);
    buf_release(&text);
    /* gone from the store: gone from the scrape */
    T_CHECK(store_delete(st, "team-a/db"));
    if (!render_parse(&x, m, &text))
        goto out;
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-a,secret=db") == -12345);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_token_expiry_timestamp_seconds"), 300);
#undef G
    /* read a piece at a time (the listener's way): the same bytes, over several
     * batches of source series */
    {
        struct metrics_scrape *sc = metrics_scrape_start(m);
        struct buf pieces = BUF_INIT(METRICS_RENDER_MAX);
        char piece[7];
        long n;
        while ((n = metrics_scrape_read(sc, piece, sizeof(piece))) > 0)
            T_RC(buf_add(&pieces, piece, (size_t)n), 0);
        T_EQ_INT(n, 0);
        T_EQ_INT(metrics_scrape_read(sc, piece, sizeof(piece)), 0); /* and stays over */
        metrics_scrape_free(sc);
        strip_process(&pieces);
        strip_process(&text);
        T_EQ_INT(pieces.len, text.len);
        T_CHECK(pieces.len == text.len && !memcmp(pieces.ptr, text.ptr, text.len));
        buf_release(&pieces);
    }
out:
    expo_free(&x);
    buf_release(&text);
    metrics_free(m);
    store_free(st);
}

/* A Secret with the given annotations (a JSON object's members, may be ""),
 * kept as the controller keeps it: only pgtoken.io/ annotations. */
static struct kube_secret *secret_ann(const char *ns, const char *name, const char *ann,
                                      bool deleting)
{
    static const char *const skip[] = { STATUS_LAST_ERROR_AT, NULL };
    static const struct kube_secret_keep keep = { "pgtoken.io/", skip };
    char text[2048];
    cJSON *j = NULL;
    struct kube_secret *s = NULL;

    snprintf(text, sizeof(text),
             "{\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\",\"resourceVersion\":\"1\"%s,"
             "\"annotations\":{\"other.example/x\":\"InvalidConfig: not ours\"%s%s}},"
             "\"data\":{}}",
             ns, name, deleting ? ",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"" : "",
             *ann ? "," : "", ann);
    if (json_parse(&j, text, strlen(text), 1 << 20) == 0)
        kube_secret_from_json_keep(&s, j, &keep);
    cJSON_Delete(j);
    return s;
}

#define EXP_FUTURE "\"pgtoken.io/status.expires-at\":\"2099-01-01T00:00:00Z\""
#define EXP_PAST "\"pgtoken.io/status.expires-at\":\"2001-01-01T00:00:00Z\""
#define LAST_ERROR(text) "\"pgtoken.io/status.last-error\":\"" text "\""

/* The readiness of one Secret, each way it can be, at a fixed now. */
static void test_secret_readiness(void)
{
    static const struct {
        const char *ann;
        bool ready;
        const char *reason;
    } cases[] = {
        { EXP_FUTURE, true, "Ready" },
        { EXP_FUTURE ",\"pgtoken.io/status.rotate-at\":\"2001-01-01T00:00:00Z\"", true, "Ready" },
        { EXP_PAST, false, "Expired" },
        { "\"pgtoken.io/status.expires-at\":\"2026-11-23T18:00:00Z\"", false, "Expired" }, /* == now */
        { "\"pgtoken.io/status.expires-at\":\"2026-11-23T18:00:01Z\"", true, "Ready" },
        { "", false, "Pending" },
        { "\"pgtoken.io/host\":\"db.example.test\"", false, "Pending" },
        { "\"pgtoken.io/status.expires-at\":\"garbage\"", false, "Pending" },
        /* an error wins over a good token: the Secret is not what its user asked for */
        { EXP_FUTURE "," LAST_ERROR("InvalidConfig: unknown annotation pgtoken.io/hots; did you "
                                    "mean pgtoken.io/host?; nothing was written"),
          false, "InvalidConfig" },
        { EXP_PAST "," LAST_ERROR("TokenFailed: token endpoint answered 401"), false,
          "TokenFailed" },
        { LAST_ERROR("LoginFailed: password authentication failed for user \\\"app\\\""), false,
          "LoginFailed" },
        { EXP_FUTURE "," LAST_ERROR("WriteFailed: 403 Forbidden"), false, "WriteFailed" },
        { LAST_ERROR("SomethingNew: x"), false, "SomethingNew" },
        { LAST_ERROR("Abcdefghijklmnopqrstuvwxyzabcdef: 32 letters"), false,
          "Abcdefghijklmnopqrstuvwxyzabcdef" },
        { LAST_ERROR("Abcdefghijklmnopqrstuvwxyzabcdefg: 33 letters"), false, "Other" },
        { LAST_ERROR("no colon at all"), false, "Other" },
        { LAST_ERROR("Two words: x"), false, "Other" },
        { LAST_ERROR("Tok3n: x"), false, "Other" },
        { LAST_ERROR(": x"), false, "Other" },
        { LAST_ERROR("Token\\\"Failed\\\": x"), false, "Other" },
        { LAST_ERROR("Tokén: x"), false, "Other" },
        { EXP_FUTURE "," LAST_ERROR(""), false, "Other" },
    };
    const int64_t now = 1795456800; /* 2026-11-23T18:00:00Z */
    char reason[METRICS_READY_REASON_MAX + 1];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kube_secret *s = secret_ann("ns", "s", cases[i].ann, false);
        if (!s) {
            t_fail(__FILE__, __LINE__, "case %zu: no Secret (%s)", i, err_msg());
            continue;
        }
        memset(reason, 'x', sizeof(reason));
        if (metrics_secret_readiness(reason, s, now) != cases[i].ready)
            t_fail(__FILE__, __LINE__, "case %zu (%s): ready is not %d", i, cases[i].ann,
                   cases[i].ready);
        if (memchr(reason, '\0', sizeof(reason)) == NULL || strcmp(reason, cases[i].reason))
            t_fail(__FILE__, __LINE__, "case %zu (%s): reason \"%.*s\", want \"%s\"", i,
                   cases[i].ann, (int)sizeof(reason), reason, cases[i].reason);
        kube_secret_free(s);
    }
}

/* pgtoken_rotator_secret_ready: one series per cached Secret, made at scrape
 * time from the store, whatever its state; none for a Secret being deleted, or
 * once it is gone from the store. */
static void test_app_secret_ready(void)
{
    struct metrics *m = metrics_new(), *m2 = metrics_new();
    struct store *st = store_new();
    struct buf text = BUF_INIT(0);
    struct expo x = { 0 };
    struct metrics_sources src = { .store = st, .secret_status = st };
    struct metrics_sources no_status = { .store = st };

    T_RC(metrics_register_app(m, &src), 0);
    store_upsert(st, secret_ann("team-a", "good", EXP_FUTURE, false));
    store_upsert(st, secret_ann("team-a", "new", "", false));
    store_upsert(st, secret_ann("team-a", "old", EXP_PAST, false));
    store_upsert(st, secret_ann("team-b", "typo",
                                LAST_ERROR("InvalidConfig: unknown annotation pgtoken.io/hots"),
                                false));
    store_upsert(st, secret_ann("team-b", "denied",
                                EXP_FUTURE "," LAST_ERROR("LoginFailed: role \\\"app\\\""), false));
    store_upsert(st, secret_ann("team-b", "odd", LAST_ERROR("who knows"), false));
    store_upsert(st, secret_ann("team-b", "going", EXP_FUTURE, true));
    if (!render_parse(&x, m, &text))
        goto out;
#define G(labels) expo_get(&x, "pgtoken_rotator_secret_ready", labels)
    T_EQ_STR(fam_type(&x, "pgtoken_rotator_secret_ready"), "gauge");
    T_CHECK(*fam_help(&x, "pgtoken_rotator_secret_ready") != '\0');
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_ready"), 6);
    T_CHECK(G("namespace=team-a,secret=good,reason=Ready") == 1);
    T_CHECK(G("namespace=team-a,secret=new,reason=Pending") == 0);
    T_CHECK(G("namespace=team-a,secret=old,reason=Expired") == 0);
    T_CHECK(G("namespace=team-b,secret=typo,reason=InvalidConfig") == 0);
    T_CHECK(G("namespace=team-b,secret=denied,reason=LoginFailed") == 0);
    T_CHECK(G("namespace=team-b,secret=odd,reason=Other") == 0);
    T_CHECK(G("namespace=team-b,secret=going,reason=Ready") == -12345);
    expo_free(&x);
    buf_release(&text);
    /* the error is cleared and a token written: the series changes its reason */
    store_upsert(st, secret_ann("team-b", "typo", EXP_FUTURE, false));
    T_CHECK(store_delete(st, "team-a/old"));
    if (!render_parse(&x, m, &text))
        goto out;
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_ready"), 5);
    T_CHECK(G("namespace=team-b,secret=typo,reason=Ready") == 1);
    T_CHECK(G("namespace=team-b,secret=typo,reason=InvalidConfig") == -12345);
    T_CHECK(G("namespace=team-a,secret=old,reason=Expired") == -12345);
#undef G
    expo_free(&x);
    buf_release(&text);
    /* without secret_status there is nothing to read it from: no family */
    T_RC(metrics_register_app(m2, &no_status), 0);
    if (!render_parse(&x, m2, &text))
        goto out;
    T_CHECK(expo_family(&x, "pgtoken_rotator_secret_ready") == NULL);
    T_CHECK(expo_get(&x, "pgtoken_rotator_managed_secrets", "") == 6);
out:
    expo_free(&x);
    buf_release(&text);
    metrics_free(m);
    metrics_free(m2);
    store_free(st);
}

/* ---- The listener ------------------------------------------------------------ */

struct fetched {
    long status;
    char body[1 << 16];
    size_t len;
    char content_type[128];
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    struct fetched *r = ctx;
    size_t len = size * n;

    if (r->len + len >= sizeof(r->body))
        return 0;
    memcpy(r->body + r->len, p, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

static int fetch(struct fetched *out, const char *method, int port, const char *path)
{
    CURL *c = curl_easy_init();
    char url[256];
    char *ct = NULL;
    CURLcode cc;

    memset(out, 0, sizeof(*out));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (!strcmp(method, "POST"))
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    cc = curl_easy_perform(c);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
            snprintf(out->content_type, sizeof(out->content_type), "%s", ct);
    }
    curl_easy_cleanup(c);
    return cc == CURLE_OK ? 0 : -1;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void test_httpd_endpoints(void)
{
    struct app_fixture f;
    struct httpd *h = NULL;
    struct fetched *r = calloc(1, sizeof(*r));
    struct expo x = { 0 };
    int fds_before = count_fds(), port;

    if (fixture_init(&f) < 0) {
        t_fail(__FILE__, __LINE__, "fixture: %s", err_msg());
        goto out;
    }
    struct httpd_opts o = { .addr = "127.0.0.1:0", .metrics = f.m, .heartbeat_timeout_ms = 400,
                            .ready = ready_flag, .ready_ctx = &f.ready };
    T_RC(httpd_start(&h, &o), 0);
    if (!h)
        goto out;
    port = httpd_port(h);
    T_CHECK(port > 0 && port < 65536);

    atomic_fetch_add(&f.rot.rotations, 7);
    store_upsert(f.st, secret("ns", "s", "2027-01-15T08:00:00Z", "2027-01-15T05:13:20Z", false));
    T_RC(fetch(r, "GET", port, "/metrics"), 0);
    T_EQ_INT(r->status, 200);
    T_EQ_STR(r->content_type, "text/plain; version=0.0.4; charset=utf-8");
    if (expo_parse(&x, r->body) < 0)
        t_fail(__FILE__, __LINE__, "exposition over HTTP rejected: %s", x.why);
    T_CHECK(expo_get(&x, "pgtoken_rotator_rotations_total", "result=success") == 7);
    T_CHECK(expo_get(&x, "pgtoken_rotator_secret_token_expiry_timestamp_seconds",
                     "namespace=ns,secret=s") == 1.8e9);
    expo_free(&x);

    T_RC(fetch(r, "GET", port, "/healthz"), 0);
    T_EQ_INT(r->status, 200);
    T_EQ_STR(r->body, "ok\n");
    T_RC(fetch(r, "GET", port, "/readyz"), 0);
    T_EQ_INT(r->status, 503);
    atomic_store(&f.ready, true);
    T_RC(fetch(r, "GET", port, "/readyz?verbose=1"), 0);
    T_EQ_INT(r->status, 200);
    T_RC(fetch(r, "HEAD", port, "/metrics"), 0);
    T_EQ_INT(r->status, 200);
    T_EQ_INT(r->len, 0);
    T_RC(fetch(r, "POST", port, "/metrics"), 0);
    T_EQ_INT(r->status, 405);
    T_RC(fetch(r, "GET", port, "/"), 0);
    T_EQ_INT(r->status, 404);
    T_RC(fetch(r, "GET", port, "/metrics/../healthz"), 0);
    T_CHECK(r->status == 404 || r->status == 200); /* never anything else */

    /* a stale heartbeat fails /healthz, a new one heals it */
    usleep(600 * 1000);
    T_RC(fetch(r, "GET", port, "/healthz"), 0);
    T_EQ_INT(r->status, 500);
    T_CHECK(strstr(r->body, "main loop") != NULL);
    httpd_heartbeat(h);
    T_RC(fetch(r, "GET", port, "/healthz"), 0);
    T_EQ_INT(r->status, 200);

    /* the port is taken while it runs */
    {
        char addr[32];
        struct httpd *h2 = NULL;
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        struct httpd_opts o2 = { .addr = addr };
        T_RC(httpd_start(&h2, &o2), ERR_IO);
        T_CHECK(h2 == NULL);
    }
    httpd_stop(h);
    h = NULL;
    T_CHECK(fetch(r, "GET", port, "/healthz") < 0); /* closed */
out:
    httpd_stop(h);
    fixture_release(&f);
    free(r);
    T_EQ_INT(count_fds(), fds_before);
}

static void test_httpd_addresses(void)
{
    static const char *const bad[] = { "9090", "localhost", ":", ":99999", ":90a", "::1:80",
                                       "[::1]80", "[::1", "host:-1", "a b:80" };
    struct httpd *h = (struct httpd *)1;
    struct fetched *r = calloc(1, sizeof(*r));

    T_CHECK(httpd_addr_off(NULL) && httpd_addr_off("") && httpd_addr_off("0"));
    T_CHECK(!httpd_addr_off(":9090"));
    T_RC(httpd_start(&h, &(struct httpd_opts){ .addr = "" }), 0);
    T_CHECK(h == NULL);
    T_RC(httpd_start(&h, &(struct httpd_opts){ .addr = "0" }), 0);
    T_CHECK(h == NULL);
    httpd_heartbeat(NULL);
    httpd_stop(NULL);
    T_EQ_INT(httpd_port(NULL), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = httpd_start(&h, &(struct httpd_opts){ .addr = bad[i] });
        if (rc != ERR_INVALID)
            t_fail(__FILE__, __LINE__, "address \"%s\": %d, want ERR_INVALID", bad[i], rc);
        httpd_stop(h);
    }
    /* every address (dual stack), then reached over IPv4 loopback; no registry: 404 */
    T_RC(httpd_start(&h, &(struct httpd_opts){ .addr = ":0" }), 0);
    if (h) {
        T_RC(fetch(r, "GET", httpd_port(h), "/metrics"), 0);
        T_EQ_INT(r->status, 404);
        T_RC(fetch(r, "GET", httpd_port(h), "/readyz"), 0);
        T_EQ_INT(r->status, 200); /* no ready callback: ready */
        httpd_stop(h);
    }
    T_RC(httpd_start(&h, &(struct httpd_opts){ .addr = "localhost:0" }), 0);
    httpd_stop(h);
    T_RC(httpd_start(&h, &(struct httpd_opts){ .addr = "192.0.2.1:0" }), ERR_IO); /* not ours */
    free(r);
}

int main(void)
{
    log_set_level(LOG_OFF);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    T_RUN(test_parser_rejects_malformed);
    T_RUN(test_register_validation);
    T_RUN(test_render_types_and_escaping);
    T_RUN(test_values_format);
    T_RUN(test_concurrent_updates_and_scrapes);
    T_RUN(test_app_families);
    T_RUN(test_app_values_move);
    T_RUN(test_app_secret_gauges_from_store);
    T_RUN(test_secret_readiness);
    T_RUN(test_app_secret_ready);
    T_RUN(test_httpd_endpoints);
    T_RUN(test_httpd_addresses);
    curl_global_cleanup();
    return t_done();
}
