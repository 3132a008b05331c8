#include "app/metrics.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/latency_hist.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/proc.h"
#include "base/strmap.h"
#include "idp/tokcache.h"
#include "kube/kclient.h"
#include "kube/lease.h"
#include "kube/queue.h"
#include "kube/secret.h"
#include "kube/store.h"
#include "kube/watch.h"
#include "pg/pgcheck.h"
#include "rot/reconcile.h"
#include "base/banned.h"

#ifndef PGTR_VERSION
#define PGTR_VERSION "unknown"
#endif
#ifndef PGTR_GIT_REV
#define PGTR_GIT_REV "unknown"
#endif

struct series {
    char **values;     /* one per label name */
    double value;      /* counter, gauge */
    double sum;        /* histogram */
    uint64_t count;
    uint64_t *buckets; /* histogram: observations per bucket (not cumulative); [nbounds] is +Inf */
};

struct metric {
    struct metrics *reg;
    enum metric_type type;
    char *name;
    char *help;
    char *labels[METRICS_MAX_LABELS];
    size_t nlabels;
    double bounds[METRICS_MAX_BUCKETS];
    size_t nbounds;
    struct strmap series; /* series key (see series_key) -> struct series */
    metrics_source_fn source; /* series made at scrape time; may be NULL */
    void *source_ctx;
    bool dropped_logged;
    struct metric *next;
};

struct collector {
    metrics_collect_fn fn;
    void *ctx;
};

struct app;

struct metrics {
    /* mu guards families and series; scrape_mu makes scrapes take turns, so
     * collectors (which update through mu) never run twice at once. */
    pthread_mutex_t mu;
    pthread_mutex_t scrape_mu;
    struct metric *first, *last;
    struct collector *collectors;
    size_t ncollectors, collectors_cap;
    struct app *app;
};

/* ---- Registry ------------------------------------------------------------- */

struct metrics *metrics_new(void)
{
    struct metrics *m = xcalloc(1, sizeof(*m));

    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->scrape_mu, NULL);
    return m;
}

static void series_free(void *p)
{
    struct series *s = p;
    size_t i;

    if (!s)
        return;
    for (i = 0; s->values && s->values[i]; i++)
        free(s->values[i]);
    free(s->values);
    free(s->buckets);
    free(s);
}

static void family_free(struct metric *f)
{
    strmap_clear(&f->series, series_free);
    free(f->series.buckets);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->name);
    free(f->help);
    free(f);
}

static void app_free(struct app *a);

void metrics_free(struct metrics *m)
{
    struct metric *f, *next;

    if (!m)
        return;
    for (f = m->first; f; f = next) {
        next = f->next;
        family_free(f);
    }
    app_free(m->app);
    free(m->collectors);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->scrape_mu);
    free(m);
}

static bool name_ok(const char *s, bool colon)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                     (colon && c == ':');
        if (!alpha && !(p > s && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static struct metric *find_family(const struct metrics *m, const char *name)
{
    for (struct metric *f = m->first; f; f = f->next)
        if (!strcmp(f->name, name))
            return f;
    return NULL;
}

static int family_new(struct metric **out, struct metrics *m, enum metric_type type,
                      const char *name, const char *help, const char *const *labels,
                      const double *bounds, size_t nbounds)
{
    struct metric *f;
    size_t n = 0;
    int rc = 0;

    if (!name_ok(name, true))
        return err_set(ERR_INVALID, "metric name \"%s\" is not valid", name ? name : "");
    for (; labels && labels[n]; n++) {
        const char *l = labels[n];
        if (n == METRICS_MAX_LABELS)
            return err_set(ERR_INVALID, "metric %s: more than %d labels", name,
                           METRICS_MAX_LABELS);
        if (!name_ok(l, false) || !strncmp(l, "__", 2))
            return err_set(ERR_INVALID, "metric %s: label name \"%s\" is not valid", name, l);
        if (type == METRIC_HISTOGRAM && !strcmp(l, "le"))
            return err_set(ERR_INVALID, "metric %s: label name \"%s\" is reserved", name, l);
        for (size_t j = 0; j < n; j++)
            if (!strcmp(labels[j], l))
                return err_set(ERR_INVALID, "metric %s: label \"%s\" repeated", name, l);
    }
    if (type == METRIC_HISTOGRAM) {
        if (nbounds < 1 || nbounds > METRICS_MAX_BUCKETS || !bounds)
            return err_set(ERR_INVALID, "metric %s: 1 to %d buckets", name, METRICS_MAX_BUCKETS);
        for (size_t i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
                return err_set(ERR_INVALID, "metric %s: bucket bounds must be finite and "
                               "increasing", name);
    }
    pthread_mutex_lock(&m->mu);
    if (find_family(m, name)) {
        rc = err_set(ERR_INVALID, "metric %s is already registered", name);
        goto out;
    }
    f = xcalloc(1, sizeof(*f));
    f->reg = m;
    f->type = type;
    f->name = xstrdup(name);
    f->help = xstrdup(help ? help : "");
    for (size_t i = 0; i < n; i++)
        f->labels[i] = xstrdup(labels[i]);
    f->nlabels = n;
    if (type == METRIC_HISTOGRAM) {
        memcpy(f->bounds, bounds, nbounds * sizeof(*bounds));
        f->nbounds = nbounds;
    }
    if (m->last)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    *out = f;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int metrics_counter(struct metric **out, struct metrics *m, const char *name, const char *help,
                    const char *const *labels)
{
    return family_new(out, m, METRIC_COUNTER, name, help, labels, NULL, 0);
}

int metrics_gauge(struct metric **out, struct metrics *m, const char *name, const char *help,
                  const char *const *labels)
{
    return family_new(out, m, METRIC_GAUGE, name, help, labels, NULL, 0);
}

int metrics_histogram(struct metric **out, struct metrics *m, const char *name, const char *help,
                      const char *const *labels, const double *bounds, size_t nbounds)
{
    return family_new(out, m, METRIC_HISTOGRAM, name, help, labels, bounds, nbounds);
}

/* An unambiguous key for a combination of label values: each value as its
 * length, ':', the value. ERR_TOOBIG when a value is over
 * METRICS_MAX_VALUE_LEN (such updates are dropped). */
static int series_key(struct buf *key, const struct metric *f, const char *const *values)
{
    int rc = 0;

    buf_init(key, METRICS_MAX_LABELS * (METRICS_MAX_VALUE_LEN + 8));
    for (size_t i = 0; i < f->nlabels && rc == 0; i++) {
        /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Branch): values has nlabels entries */
        const char *v = values && values[i] ? values[i] : "";
        size_t n = strlen(v);
        if (n > METRICS_MAX_VALUE_LEN)
            return err_set(ERR_TOOBIG, "metric %s: a label value is over %d bytes", f->name,
                           METRICS_MAX_VALUE_LEN);
        rc = buf_addf(key, "%zu:", n);
        if (rc == 0)
            rc = buf_add(key, v, n);
    }
    return rc;
}

/* The series for values, created when create is set (NULL when absent or
 * when the family is full). Called with mu held. */
static struct series *series_get(struct metric *f, const char *const *values, bool create)
{
    struct buf key;
    struct series *s = NULL;

    if (series_key(&key, f, values) < 0) {
        if (create && !f->dropped_logged)
            log_warn("metric_series_dropped", LOG_STR("metric", f->name),
                     LOG_STR("detail", err_msg()));
        f->dropped_logged = true;
        goto out;
    }
    s = strmap_get(&f->series, buf_str(&key));
    if (!s && create) {
        if (f->series.len >= METRICS_MAX_SERIES) {
            if (!f->dropped_logged)
                log_warn("metric_series_dropped", LOG_STR("metric", f->name),
                         LOG_I64("max_series", METRICS_MAX_SERIES));
            f->dropped_logged = true;
            goto out;
        }
        s = xcalloc(1, sizeof(*s));
        s->values = xcalloc(f->nlabels + 1, sizeof(char *));
        for (size_t i = 0; i < f->nlabels; i++)
            /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Branch): nlabels entries */
            s->values[i] = xstrdup(values && values[i] ? values[i] : "");
        if (f->type == METRIC_HISTOGRAM)
            s->buckets = xcalloc(f->nbounds + 1, sizeof(uint64_t));
        strmap_put(&f->series, buf_str(&key), s);
    }
out:
    buf_release(&key);
    return s;
}

enum op { OP_ADD, OP_SET, OP_OBSERVE };

static void update(struct metric *f, const char *const *values, enum op op, double v)
{
    struct series *s;

    if (!f)
        return;
    if ((op == OP_OBSERVE) != (f->type == METRIC_HISTOGRAM))
        return;
    if (op == OP_ADD && f->type == METRIC_COUNTER && !(v >= 0))
        return;
    pthread_mutex_lock(&f->reg->mu);
    if ((s = series_get(f, values, true))) {
        if (op == OP_ADD) {
            s->value += v;
        } else if (op == OP_SET) {
            s->value = v;
        } else {
            size_t i = 0;
            s->sum += v;
            s->count++;
            while (i < f->nbounds && !(v <= f->bounds[i]))
                i++;
            s->buckets[i]++;
        }
    }
    pthread_mutex_unlock(&f->reg->mu);
}

void metric_inc(struct metric *f, const char *const *values)
{
    update(f, values, OP_ADD, 1);
}

void metric_add(struct metric *f, const char *const *values, double v)
{
    update(f, values, OP_ADD, v);
}

void metric_set(struct metric *f, const char *const *values, double v)
{
    update(f, values, OP_SET, v);
}

void metric_observe(struct metric *f, const char *const *values, double v)
{
    update(f, values, OP_OBSERVE, v);
}

void metric_set_histogram(struct metric *f, const char *const *values, const uint64_t *buckets,
                          size_t nbuckets, double sum)
{
    struct series *s;

    if (!f || f->type != METRIC_HISTOGRAM || !buckets || nbuckets != f->nbounds + 1)
        return;
    pthread_mutex_lock(&f->reg->mu);
    if ((s = series_get(f, values, true))) {
        s->count = 0;
        for (size_t i = 0; i < nbuckets; i++)
            s->count += buckets[i];
        memcpy(s->buckets, buckets, nbuckets * sizeof(*buckets));
        s->sum = sum;
    }
    pthread_mutex_unlock(&f->reg->mu);
}

void metric_remove(struct metric *f, const char *const *values)
{
    struct buf key;

    if (!f)
        return;
    if (series_key(&key, f, values) == 0) {
        pthread_mutex_lock(&f->reg->mu);
        series_free(strmap_del(&f->series, buf_str(&key)));
        pthread_mutex_unlock(&f->reg->mu);
    }
    buf_release(&key);
}

void metric_clear(struct metric *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->reg->mu);
    strmap_clear(&f->series, series_free);
    pthread_mutex_unlock(&f->reg->mu);
}

double metric_value(struct metric *f, const char *const *values)
{
    struct series *s;
    double v = 0;

    if (!f)
        return 0;
    pthread_mutex_lock(&f->reg->mu);
    if ((s = series_get(f, values, false)))
        v = f->type == METRIC_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&f->reg->mu);
    return v;
}

int metrics_collector(struct metrics *m, metrics_collect_fn fn, void *ctx)
{
    if (!fn)
        return err_set(ERR_INVALID, "metrics collector without a function");
    pthread_mutex_lock(&m->mu);
    XGROW(m->collectors, m->collectors_cap, m->ncollectors + 1);
    m->collectors[m->ncollectors++] = (struct collector){ fn, ctx };
    pthread_mutex_unlock(&m->mu);
    return 0;
}

/* ---- Rendering ------------------------------------------------------------ */

/* A sample value as Go's strconv.FormatFloat(v, 'g', -1, 64) would write it,
 * near enough: the shortest of %.15g/%.17g that reads back as v. */
static void fmt_value(char out[40], double v)
{
    if (isnan(v)) {
        snprintf(out, 40, "NaN");
    } else if (isinf(v)) {
        snprintf(out, 40, v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(out, 40, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, 40, "%.17g", v);
    }
}

/* HELP text escapes backslash and newline; label values also the double quote. */
static int add_escaped(struct buf *b, const char *s, bool quote)
{
    int rc = 0;

    for (; *s && rc == 0; s++) {
        if (*s == '\\')
            rc = buf_addstr(b, "\\\\");
        else if (*s == '\n')
            rc = buf_addstr(b, "\\n");
        else if (*s == '"' && quote)
            rc = buf_addstr(b, "\\\"");
        else
            rc = buf_addch(b, *s);
    }
    return rc;
}

/* name{l1="v1",...,extra_name="extra_value"} value\n */
static int add_sample(struct buf *b, const struct metric *f, const char *suffix,
                      const struct series *s, const char *extra_name, const char *extra_value,
                      double v)
{
    char num[40];
    bool braces = f->nlabels || extra_name;
    int rc = 0;

    rc |= buf_addstr(b, f->name);
    rc |= buf_addstr(b, suffix);
    if (braces)
        rc |= buf_addch(b, '{');
    for (size_t i = 0; i < f->nlabels; i++) {
        rc |= buf_addf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
        rc |= add_escaped(b, s->values[i], true);
        rc |= buf_addch(b, '"');
    }
    if (extra_name && extra_value) {
        rc |= buf_addf(b, "%s%s=\"", f->nlabels ? "," : "", extra_name);
        rc |= add_escaped(b, extra_value, true);
        rc |= buf_addch(b, '"');
    }
    if (braces)
        rc |= buf_addch(b, '}');
    fmt_value(num, v);
    rc |= buf_addf(b, " %s\n", num);
    return rc ? ERR_TOOBIG : 0;
}

static int cmp_series(const void *a, const void *b)
{
    const struct series *x = *(const struct series *const *)a;
    const struct series *y = *(const struct series *const *)b;

    for (size_t i = 0; x->values[i] && y->values[i]; i++) {
        int c = strcmp(x->values[i], y->values[i]);
        if (c)
            return c;
    }
    return 0;
}

/* What a source emitted during one render: label values packed in an arena
 * ("v1\0v2\0..." per series), so that 10,000 series cost a few hundred KB for
 * the length of a scrape and nothing after it. */
struct emitted {
    const struct metric *f;
    struct buf arena;
    struct emitted_series {
        size_t off;
        double v;
    } *list;
    size_t n, cap;
};

static void emit_one(void *ectx, const char *const *values, double v)
{
    struct emitted *e = ectx;
    size_t off = e->arena.len;

    for (size_t i = 0; i < e->f->nlabels; i++) {
        const char *val = values && values[i] ? values[i] : "";
        if (strlen(val) > METRICS_MAX_VALUE_LEN || buf_add(&e->arena, val, strlen(val) + 1) < 0) {
            e->arena.len = off; /* dropped, like an over-long kept series */
            if (e->arena.ptr)
                e->arena.ptr[off] = '\0';
            return;
        }
    }
    XGROW(e->list, e->cap, e->n + 1);
    e->list[e->n].off = off;
    e->list[e->n].v = v;
    e->n++;
}

/* Points vals at the label values of series at arena offset off. */
static void emitted_values(char **vals, const struct emitted *e, size_t off)
{
    const char *p = e->arena.ptr + off;

    for (size_t i = 0; i < e->f->nlabels; i++) {
        vals[i] = (char *)p;
        p += strlen(p) + 1;
    }
}

static const struct emitted *sort_ctx; /* qsort has no context: one render at a time */

static int cmp_emitted(const void *a, const void *b)
{
    const struct emitted_series *x = a, *y = b;
    const char *p = sort_ctx->arena.ptr + x->off, *q = sort_ctx->arena.ptr + y->off;

    for (size_t i = 0; i < sort_ctx->f->nlabels; i++) {
        int c = strcmp(p, q);
        if (c)
            return c;
        p += strlen(p) + 1;
        q += strlen(q) + 1;
    }
    return 0;
}

/* Collects and sorts f's source series into e (the caller holds scrape_mu and
 * mu, so sort_ctx is ours). */
static void collect_source(struct emitted *e, const struct metric *f)
{
    *e = (struct emitted){ f, BUF_INIT(METRICS_RENDER_MAX), NULL, 0, 0 };
    f->source(f->source_ctx, emit_one, e);
    sort_ctx = e;
    if (e->n)
        qsort(e->list, e->n, sizeof(*e->list), cmp_emitted);
    sort_ctx = NULL;
}

static void emitted_release(struct emitted *e)
{
    free(e->list);
    buf_release(&e->arena);
    *e = (struct emitted){ 0 };
}

/* Renders e's series [*next, *next + count) and advances *next. */
static int render_emitted(struct buf *b, const struct emitted *e, size_t *next, size_t count)
{
    static char empty[] = "";
    char *vals[METRICS_MAX_LABELS + 1];
    int rc = 0;

    for (size_t i = 0; i <= METRICS_MAX_LABELS; i++)
        vals[i] = empty; /* emitted_values sets the first nlabels */
    for (; *next < e->n && count && rc == 0; (*next)++, count--) {
        struct series s = { vals, e->list[*next].v, 0, 0, NULL };
        emitted_values(vals, e, e->list[*next].off);
        rc = add_sample(b, e->f, "", &s, NULL, NULL, s.value);
    }
    return rc;
}

void metric_source(struct metric *f, metrics_source_fn fn, void *ctx)
{
    if (!f || (f->type != METRIC_COUNTER && f->type != METRIC_GAUGE))
        return;
    pthread_mutex_lock(&f->reg->mu);
    f->source = fn;
    f->source_ctx = ctx;
    pthread_mutex_unlock(&f->reg->mu);
}

static const char *type_name(enum metric_type t)
{
    switch (t) {
    case METRIC_COUNTER: return "counter";
    case METRIC_GAUGE: return "gauge";
    case METRIC_HISTOGRAM: return "histogram";
    }
    return "untyped";
}

/* f's HELP and TYPE lines and its kept series (not its source's). */
static int render_family(struct buf *b, const struct metric *f)
{
    struct series **all = NULL;
    size_t n = 0;
    int rc = 0;

    rc |= buf_addf(b, "# HELP %s ", f->name);
    rc |= add_escaped(b, f->help, false);
    rc |= buf_addf(b, "\n# TYPE %s %s\n", f->name, type_name(f->type));
    if (rc)
        return ERR_TOOBIG;
    if (f->series.len) {
        all = xcalloc(f->series.len, sizeof(struct series *));
        for (struct strmap_entry *e = strmap_first(&f->series); e; e = strmap_next(&f->series, e))
            all[n++] = e->value;
        qsort(all, n, sizeof(struct series *), cmp_series);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct series *s = all[i];
        if (f->type == METRIC_COUNTER || f->type == METRIC_GAUGE) {
            rc = add_sample(b, f, "", s, NULL, NULL, s->value);
            continue;
        }
        uint64_t cum = 0;
        char le[40];
        for (size_t j = 0; j < f->nbounds && rc == 0; j++) {
            cum += s->buckets[j];
            fmt_value(le, f->bounds[j]);
            rc = add_sample(b, f, "_bucket", s, "le", le, (double)cum);
        }
        if (rc == 0)
            rc = add_sample(b, f, "_bucket", s, "le", "+Inf", (double)s->count);
        if (rc == 0)
            rc = add_sample(b, f, "_sum", s, NULL, NULL, s->sum);
        if (rc == 0)
            rc = add_sample(b, f, "_count", s, NULL, NULL, (double)s->count);
    }
    free(all);
    return rc;
}

/* A scrape renders one unit at a time: a family's HELP, TYPE and kept series,
 * or up to SCRAPE_BATCH of its source's series. Each unit is rendered under the
 * locks, which are released between units, so a slow reader never holds up the
 * workers that update the registry, and no more than one unit of text (and the
 * sorted label values of one source) is held at once, whatever the number of
 * series. Families are only ever appended, so the cursor stays valid. */
#define SCRAPE_BATCH 128

struct metrics_scrape {
    struct metrics *m;
    struct metric *f;      /* the family being rendered; NULL: done */
    bool in_source;        /* f's kept series are done; src holds its source's */
    struct emitted src;
    size_t src_next;
    struct buf chunk;      /* rendered, not yet read (metrics_scrape_read) */
    size_t chunk_off;
    size_t total;          /* bytes rendered so far */
    int rc;                /* the first error; sticky */
};

struct metrics_scrape *metrics_scrape_start(struct metrics *m)
{
    struct metrics_scrape *s = xcalloc(1, sizeof(*s));

    s->m = m;
    buf_init(&s->chunk, METRICS_RENDER_MAX);
    pthread_mutex_lock(&m->scrape_mu);
    for (size_t i = 0; i < m->ncollectors; i++)
        m->collectors[i].fn(m, m->collectors[i].ctx);
    pthread_mutex_lock(&m->mu);
    s->f = m->first;
    pthread_mutex_unlock(&m->mu);
    pthread_mutex_unlock(&m->scrape_mu);
    return s;
}

void metrics_scrape_free(struct metrics_scrape *s)
{
    if (!s)
        return;
    emitted_release(&s->src);
    buf_release(&s->chunk);
    free(s);
}

/* Appends the next unit to b. 1: something was rendered (maybe nothing for a
 * source with no series); 0: the scrape is over; ERR_TOOBIG. */
static int scrape_step(struct metrics_scrape *s, struct buf *b)
{
    struct metrics *m = s->m;
    size_t before = b->len;
    int rc = 0;

    if (s->rc < 0)
        return s->rc;
    if (!s->f)
        return 0;
    pthread_mutex_lock(&m->scrape_mu);
    pthread_mutex_lock(&m->mu);
    if (!s->in_source) {
        rc = render_family(b, s->f);
        if (rc == 0 && s->f->source) {
            collect_source(&s->src, s->f);
            s->src_next = 0;
            s->in_source = true;
        }
    } else {
        rc = render_emitted(b, &s->src, &s->src_next, SCRAPE_BATCH);
    }
    if (rc == 0 && (!s->in_source || s->src_next == s->src.n)) {
        emitted_release(&s->src);
        s->in_source = false;
        s->f = s->f->next;
    }
    pthread_mutex_unlock(&m->mu);
    pthread_mutex_unlock(&m->scrape_mu);
    if (rc == 0 && b->len - before > METRICS_RENDER_MAX - s->total)
        rc = ERR_TOOBIG;
    if (rc) {
        s->rc = err_set(ERR_TOOBIG, "metrics exposition over %u bytes", METRICS_RENDER_MAX);
        return s->rc;
    }
    s->total += b->len - before;
    return 1;
}

long metrics_scrape_read(struct metrics_scrape *s, char *out, size_t max)
{
    size_t n;
    int rc;

    while (s->chunk_off == s->chunk.len) {
        buf_reset(&s->chunk);
        s->chunk_off = 0;
        if ((rc = scrape_step(s, &s->chunk)) <= 0)
            return rc;
    }
    n = s->chunk.len - s->chunk_off;
    if (n > max)
        n = max;
    if (n > (size_t)LONG_MAX)
        n = (size_t)LONG_MAX;
    memcpy(out, s->chunk.ptr + s->chunk_off, n);
    s->chunk_off += n;
    return (long)n;
}

int metrics_render(struct buf *out, struct metrics *m)
{
    struct metrics_scrape *s;
    size_t saved_max = out->max;
    int rc;

    if (!out->max || out->max > METRICS_RENDER_MAX)
        out->max = METRICS_RENDER_MAX;
    s = metrics_scrape_start(m);
    while ((rc = scrape_step(s, out)) > 0)
        ;
    metrics_scrape_free(s);
    out->max = saved_max;
    if (rc)
        return err_set(ERR_TOOBIG, "metrics exposition over %u bytes", METRICS_RENDER_MAX);
    return 0;
}

/* ---- The controller's families ---------------------------------------------- */

static const char *const login_results[] = { "ok", "rejected", "unreachable", "tls", "error" };
static const char *const failure_reasons[] = { "TokenFailed", "LoginFailed", "InvalidConfig",
                                               "WriteFailed", "Other" };
#define N_REASONS (sizeof(failure_reasons) / sizeof(failure_reasons[0]))
enum { VERB_GET, VERB_POST, VERB_PUT, VERB_PATCH, VERB_DELETE, VERB_WATCH, VERB_OTHER, N_VERBS };
static const char *const api_verbs[N_VERBS] = {
    [VERB_GET] = "get",       [VERB_POST] = "post",   [VERB_PUT] = "put",
    [VERB_PATCH] = "patch",   [VERB_DELETE] = "delete", [VERB_WATCH] = "watch",
    [VERB_OTHER] = "other",
};

struct app {
    struct metrics_sources src;
    char *version, *revision;
    struct metric *build_info;
    struct metric *rotations, *failures, *conflicts, *restarts;
    struct metric *token_requests, *token_hits, *token_latency;
    struct metric *logins, *login_latency;
    struct metric *pg_hits, *pg_failures_shared, *pg_shared, *pg_evicted, *pg_entries;
    struct metric *expiry, *next_rotation, *secret_ready, *managed;
    struct metric *watch_lists, *watch_restarts, *watch_events, *watch_gone, *relist_found;
    struct metric *api_requests, *api_latency, *api_errors, *api_conflicts, *api_throttled;
    struct metric *queue_depth, *queue_delayed;
    struct metric *leader, *ready;
    struct metric *overdue, *resync_requeued;
    struct metric *cpu, *rss, *vsize, *open_fds, *max_fds, *start_time;
    /* API request latency by verb (api_verbs; watches are not timed), observed
     * without a lock by the workers' metrics_api_request, copied at scrape time. */
    struct latency_hist api_hist[N_VERBS];
};

static void app_free(struct app *a)
{
    if (!a)
        return;
    free(a->version);
    free(a->revision);
    free(a);
}

static double ld(atomic_long *v)
{
    return (double)atomic_load(v);
}

static void set_histogram(struct metric *f, const char *const *values,
                          const struct latency_hist *h)
{
    struct latency_hist_snapshot snap;

    latency_hist_read(&snap, h);
    metric_set_histogram(f, values, snap.buckets, LATENCY_HIST_NBOUNDS + 1, snap.sum_s);
}

/* The process families, as the Prometheus client libraries' process collector
 * exports them. Without /proc (not Linux) they are described with no series. */
static void collect_process(struct app *a)
{
    struct proc_stats ps;

    if (proc_stats_read(&ps) < 0)
        return;
    metric_set(a->cpu, NULL, ps.cpu_seconds);
    metric_set(a->rss, NULL, ps.resident_bytes);
    metric_set(a->vsize, NULL, ps.virtual_bytes);
    metric_set(a->open_fds, NULL, ps.open_fds);
    metric_set(a->max_fds, NULL, ps.max_fds);
    metric_set(a->start_time, NULL, ps.start_time);
}

static void collect_app(struct metrics *m, void *ctx)
{
    struct app *a = ctx;
    const struct metrics_sources *src = &a->src;

    (void)m;
    if (src->rot) {
        struct rot_stats *r = src->rot;
        metric_set(a->rotations, METRIC_LABELS("success"), ld(&r->rotations));
        metric_set(a->rotations, METRIC_LABELS("failure"), ld(&r->rotation_failures));
        metric_set(a->rotations, METRIC_LABELS("noop"), ld(&r->noop));
        metric_set(a->conflicts, NULL, ld(&r->conflicts));
        metric_set(a->restarts, NULL, ld(&r->restarts));
        for (size_t i = 0; i < 5; i++)
            metric_set(a->logins, METRIC_LABELS(login_results[i]), ld(&r->login[i]));
        set_histogram(a->login_latency, NULL, &r->login_latency);
    }
    if (src->tokens) {
        struct tokcache_stats *t = tokcache_stats(src->tokens);
        long req = atomic_load(&t->requests), fail = atomic_load(&t->failures);
        metric_set(a->token_requests, METRIC_LABELS("success"), (double)(req - fail));
        metric_set(a->token_requests, METRIC_LABELS("failure"), (double)fail);
        metric_set(a->token_hits, NULL, ld(&t->hits));
        set_histogram(a->token_latency, NULL, &t->latency);
    }
    if (src->pg) {
        struct pg_check_cache_stats st;
        pg_check_cache_stats(&st, src->pg);
        metric_set(a->pg_hits, NULL, (double)st.hits);
        metric_set(a->pg_failures_shared, NULL, (double)st.failures_shared);
        metric_set(a->pg_shared, NULL, (double)st.shared);
        metric_set(a->pg_evicted, NULL, (double)st.evicted);
        metric_set(a->pg_entries, NULL, (double)st.entries);
    }
    if (src->store)
        metric_set(a->managed, NULL, (double)store_len(src->store));
    if (src->watch) {
        metric_set(a->watch_lists, NULL, ld(&src->watch->lists));
        metric_set(a->watch_restarts, NULL, ld(&src->watch->restarts));
        metric_set(a->watch_events, NULL, ld(&src->watch->events));
        metric_set(a->watch_gone, NULL, ld(&src->watch->gone));
        metric_set(a->relist_found, NULL, ld(&src->watch->relist_found));
    }
    if (src->kube) {
        metric_set(a->api_errors, NULL, ld(&src->kube->errors));
        metric_set(a->api_conflicts, NULL, ld(&src->kube->conflicts));
        metric_set(a->api_throttled, NULL, ld(&src->kube->throttled));
    }
    if (src->queue) {
        metric_set(a->queue_depth, NULL, (double)queue_len(src->queue));
        metric_set(a->queue_delayed, NULL, (double)queue_delayed(src->queue));
    }
    metric_set(a->leader, NULL, !src->lease || lease_is_leader(src->lease) ? 1 : 0);
    if (src->ready)
        metric_set(a->ready, NULL, src->ready(src->ready_ctx) ? 1 : 0);
    if (src->overdue)
        metric_set(a->overdue, NULL, (double)src->overdue(src->overdue_ctx));
    if (src->resync_requeued)
        metric_set(a->resync_requeued, NULL, ld(src->resync_requeued));
    for (size_t i = 0; i < N_VERBS; i++) {
        struct latency_hist_snapshot snap;
        latency_hist_read(&snap, &a->api_hist[i]);
        if (snap.count) /* a verb's series appears with its first timed request */
            metric_set_histogram(a->api_latency, METRIC_LABELS(api_verbs[i]), snap.buckets,
                                 LATENCY_HIST_NBOUNDS + 1, snap.sum_s);
    }
    collect_process(a);
}

static void source_expiry(void *ctx, metrics_emit_fn emit, void *ectx);
static void source_next_rotation(void *ctx, metrics_emit_fn emit, void *ectx);
static void source_ready(void *ctx, metrics_emit_fn emit, void *ectx);

struct family_def {
    struct metric **out;
    enum metric_type type;
    const char *name;
    const char *help;
    const char *labels[METRICS_MAX_LABELS];
};

int metrics_register_app(struct metrics *m, const struct metrics_sources *src)
{
    struct app *a;
    int rc = 0;

    pthread_mutex_lock(&m->mu);
    a = m->app;
    pthread_mutex_unlock(&m->mu);
    if (a)
        return err_set(ERR_INVALID, "the controller's metrics are already registered");
    a = xcalloc(1, sizeof(*a));
    a->src = *src;
    a->version = xstrdup(src->version ? src->version : PGTR_VERSION);
    a->revision = xstrdup(src->revision ? src->revision : PGTR_GIT_REV);
    a->src.version = a->version;
    a->src.revision = a->revision;

#define P METRICS_PREFIX
    const struct family_def defs[] = {
        { &a->build_info, METRIC_GAUGE, P "build_info",
          "Always 1; the labels say which build is running.", { "version", "revision" } },
        { &a->rotations, METRIC_COUNTER, P "rotations_total",
          "Rotation attempts by result: success (a new token written), failure, noop (the "
          "Secret already held the values).", { "result" } },
        { &a->failures, METRIC_COUNTER, P "rotation_failures_total",
          "Failed reconciles by reason (the Warning Event's reason).", { "reason" } },
        { &a->conflicts, METRIC_COUNTER, P "secret_write_conflicts_total",
          "Secret writes refused with 409 Conflict (re-read and decided again).", { NULL } },
        { &a->restarts, METRIC_COUNTER, P "workload_restarts_total",
          "Deployments and StatefulSets restarted after a write (pgtoken.io/restart).", { NULL } },
        { &a->token_requests, METRIC_COUNTER, P "token_requests_total",
          "Token requests sent to the identity provider, by result.", { "result" } },
        { &a->token_hits, METRIC_COUNTER, P "token_cache_hits_total",
          "Token requests answered from the shared token cache.", { NULL } },
        { &a->token_latency, METRIC_HISTOGRAM, P "token_request_duration_seconds",
          "Time spent on token requests to the identity provider.", { NULL } },
        { &a->logins, METRIC_COUNTER, P "login_checks_total",
          "PostgreSQL login checks made, by result.", { "result" } },
        { &a->login_latency, METRIC_HISTOGRAM, P "login_check_duration_seconds",
          "Time spent on PostgreSQL login checks (cached results excluded).", { NULL } },
        { &a->pg_hits, METRIC_COUNTER, P "login_check_cache_hits_total",
          "Login checks answered from a kept successful check.", { NULL } },
        { &a->pg_failures_shared, METRIC_COUNTER, P "login_check_cache_failures_shared_total",
          "Login checks answered from a kept failed check (one cause, many Secrets).", { NULL } },
        { &a->pg_shared, METRIC_COUNTER, P "login_check_cache_shared_total",
          "Login checks that waited for an identical check in progress.", { NULL } },
        { &a->pg_evicted, METRIC_COUNTER, P "login_check_cache_evictions_total",
          "Kept login checks dropped to make room.", { NULL } },
        { &a->pg_entries, METRIC_GAUGE, P "login_check_cache_entries",
          "Login checks kept now (successful ones, and failed ones for a while).", { NULL } },
        { &a->expiry, METRIC_GAUGE, P "secret_token_expiry_timestamp_seconds",
          "When the token written in the Secret expires (Unix time).",
          { "namespace", "secret" } },
        { &a->next_rotation, METRIC_GAUGE, P "secret_next_rotation_timestamp_seconds",
          "When the next rotation of the Secret is planned (Unix time).",
          { "namespace", "secret" } },
        { &a->secret_ready, METRIC_GAUGE, P "secret_ready",
          "1 when the Secret holds an unexpired token and no error (reason Ready); else 0 "
          "with the reason: the last error's (InvalidConfig, TokenFailed, LoginFailed, "
          "WriteFailed, ...), Expired or Pending.", { "namespace", "secret", "reason" } },
        { &a->managed, METRIC_GAUGE, P "managed_secrets",
          "Secrets selected by the label selector and held in the cache.", { NULL } },
        { &a->watch_lists, METRIC_COUNTER, P "watch_lists_total",
          "Complete lists of the managed Secrets (the first one, and every relist).", { NULL } },
        { &a->watch_restarts, METRIC_COUNTER, P "watch_restarts_total",
          "Watch streams opened after the first one.", { NULL } },
        { &a->watch_events, METRIC_COUNTER, P "watch_events_total",
          "Watch events received.", { NULL } },
        { &a->watch_gone, METRIC_COUNTER, P "watch_expired_total",
          "Watches the API server ended with 410 Gone (resourceVersion too old), forcing a "
          "relist.", { NULL } },
        { &a->relist_found, METRIC_COUNTER, P "relist_found_total",
          "Secrets a periodic relist found that the cache lacked (an earlier list or the watch "
          "missed them, or they were created just then), and queued.", { NULL } },
        { &a->api_requests, METRIC_COUNTER, P "kube_api_requests_total",
          "Kubernetes API requests by verb (HTTP method, or watch) and HTTP status code "
          "(error: no response).", { "verb", "code" } },
        { &a->api_latency, METRIC_HISTOGRAM, P "kube_api_request_duration_seconds",
          "Kubernetes API request latency by verb (watches excluded).", { "verb" } },
        { &a->api_errors, METRIC_COUNTER, P "kube_api_errors_total",
          "Kubernetes API requests that failed (any error status or no response).", { NULL } },
        { &a->api_conflicts, METRIC_COUNTER, P "kube_api_conflicts_total",
          "Kubernetes API requests answered 409 Conflict.", { NULL } },
        { &a->api_throttled, METRIC_COUNTER, P "kube_api_throttled_total",
          "Kubernetes API requests answered 429 Too Many Requests.", { NULL } },
        { &a->queue_depth, METRIC_GAUGE, P "workqueue_depth",
          "Secrets waiting in the work queue, ready now.", { NULL } },
        { &a->queue_delayed, METRIC_GAUGE, P "workqueue_delayed",
          "Secrets scheduled in the work queue for later (next rotation, retry).", { NULL } },
        { &a->leader, METRIC_GAUGE, P "leader",
          "1 when this replica is the leader (always 1 without leader election).", { NULL } },
        { &a->ready, METRIC_GAUGE, P "ready",
          "1 once the initial list of Secrets is synced (what /readyz reports).", { NULL } },
        { &a->overdue, METRIC_GAUGE, P "secrets_overdue",
          "Cached Secrets more than a minute past their planned reconcile (0 on a standby "
          "replica).", { NULL } },
        { &a->resync_requeued, METRIC_COUNTER, P "resync_requeued_total",
          "Secrets a resync found past their planned time and in no queue, and queued again.",
          { NULL } },
        /* The standard process families: no prefix, client_golang's names and help. */
        { &a->cpu, METRIC_COUNTER, "process_cpu_seconds_total",
          "Total user and system CPU time spent in seconds.", { NULL } },
        { &a->open_fds, METRIC_GAUGE, "process_open_fds", "Number of open file descriptors.",
          { NULL } },
        { &a->max_fds, METRIC_GAUGE, "process_max_fds",
          "Maximum number of open file descriptors.", { NULL } },
        { &a->vsize, METRIC_GAUGE, "process_virtual_memory_bytes",
          "Virtual memory size in bytes.", { NULL } },
        { &a->rss, METRIC_GAUGE, "process_resident_memory_bytes",
          "Resident memory size in bytes.", { NULL } },
        { &a->start_time, METRIC_GAUGE, "process_start_time_seconds",
          "Start time of the process since unix epoch in seconds.", { NULL } },
    };
#undef P
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]) && rc == 0; i++) {
        const struct family_def *d = &defs[i];
        if ((d->out == &a->ready && !src->ready) || (d->out == &a->overdue && !src->overdue) ||
            (d->out == &a->resync_requeued && !src->resync_requeued) ||
            (d->out == &a->secret_ready && !src->secret_status))
            continue;
        if (d->type == METRIC_HISTOGRAM)
            rc = metrics_histogram(d->out, m, d->name, d->help, d->labels, latency_hist_bounds_s,
                                   LATENCY_HIST_NBOUNDS);
        else
            rc = family_new(d->out, m, d->type, d->name, d->help, d->labels, NULL, 0);
    }
    if (rc < 0) {
        app_free(a);
        return rc;
    }
    metric_set(a->build_info, METRIC_LABELS(a->version, a->revision), 1);
    if (src->secret_status) {
        metric_source(a->expiry, source_expiry, src->secret_status);
        metric_source(a->next_rotation, source_next_rotation, src->secret_status);
        metric_source(a->secret_ready, source_ready, src->secret_status);
    }
    /* Series that alerts rate() over exist from the start, at 0. */
    for (size_t i = 0; i < N_REASONS; i++)
        metric_add(a->failures, METRIC_LABELS(failure_reasons[i]), 0);
    pthread_mutex_lock(&m->mu);
    m->app = a;
    pthread_mutex_unlock(&m->mu);
    return metrics_collector(m, collect_app, a);
}

/* m->app is set once, before the controller's threads start. */
static struct app *app_of(struct metrics *m)
{
    struct app *a;

    if (!m)
        return NULL;
    pthread_mutex_lock(&m->mu);
    a = m->app;
    pthread_mutex_unlock(&m->mu);
    return a;
}

static int64_t annotation_time(const struct kube_secret *s, const char *name)
{
    const char *v = kube_secret_annotation(s, name);
    int64_t t;

    return v && clock_parse_rfc3339(&t, v) == 0 ? t : 0;
}

struct status_emit {
    const char *annotation;
    metrics_emit_fn emit;
    void *ectx;
};

static void emit_status(void *ctx, const struct kube_secret *s)
{
    const struct status_emit *se = ctx;
    int64_t t;

    if (s->deleting || (t = annotation_time(s, se->annotation)) <= 0)
        return; /* unknown: no series (no 0 that would fire alerts) */
    se->emit(se->ectx, METRIC_LABELS(s->ns, s->name), (double)t);
}

static void source_expiry(void *ctx, metrics_emit_fn emit, void *ectx)
{
    struct status_emit se = { STATUS_EXPIRES_AT, emit, ectx };

    store_each(ctx, emit_status, &se);
}

static void source_next_rotation(void *ctx, metrics_emit_fn emit, void *ectx)
{
    struct status_emit se = { STATUS_ROTATE_AT, emit, ectx };

    store_each(ctx, emit_status, &se);
}

bool metrics_secret_readiness(char reason[METRICS_READY_REASON_MAX + 1],
                              const struct kube_secret *s, int64_t now)
{
    const char *err = kube_secret_annotation(s, STATUS_LAST_ERROR);
    int64_t expires_at = annotation_time(s, STATUS_EXPIRES_AT);
    size_t n = 0;

    if (err) {
        /* The reconciler writes "Reason: message"; anything else is someone else's text,
         * and a label value made of it could be anything. */
        while (n <= METRICS_READY_REASON_MAX &&
               ((err[n] >= 'A' && err[n] <= 'Z') || (err[n] >= 'a' && err[n] <= 'z')))
            n++;
        if (n == 0 || n > METRICS_READY_REASON_MAX || err[n] != ':')
            snprintf(reason, METRICS_READY_REASON_MAX + 1, "Other");
        else
            snprintf(reason, METRICS_READY_REASON_MAX + 1, "%.*s", (int)n, err);
        return false;
    }
    if (expires_at <= 0) {
        snprintf(reason, METRICS_READY_REASON_MAX + 1, "Pending");
        return false;
    }
    if (expires_at <= now) {
        snprintf(reason, METRICS_READY_REASON_MAX + 1, "Expired");
        return false;
    }
    snprintf(reason, METRICS_READY_REASON_MAX + 1, "Ready");
    return true;
}

struct ready_emit {
    int64_t now;
    metrics_emit_fn emit;
    void *ectx;
};

static void emit_ready(void *ctx, const struct kube_secret *s)
{
    const struct ready_emit *re = ctx;
    char reason[METRICS_READY_REASON_MAX + 1];
    bool ready;

    if (s->deleting)
        return; /* going: no series, as the other per-Secret gauges */
    ready = metrics_secret_readiness(reason, s, re->now);
    re->emit(re->ectx, METRIC_LABELS(s->ns, s->name, reason), ready ? 1 : 0);
}

/* One series per cached Secret, from the moment it is cached: a Secret that never
 * got a token shows here (Pending, or its error) when the timestamp gauges have
 * nothing to say about it. */
static void source_ready(void *ctx, metrics_emit_fn emit, void *ectx)
{
    struct ready_emit re = { clock_wall_s(), emit, ectx };

    store_each(ctx, emit_ready, &re);
}

void metrics_api_request(struct metrics *m, const char *verb, long status, int64_t latency_ms)
{
    struct app *a = app_of(m);
    size_t v = VERB_OTHER; /* the verbs before it are HTTP methods, or "watch" */
    char code[8] = "error";

    if (!a)
        return;
    for (size_t i = 0; verb && i < VERB_OTHER; i++)
        if (!strcasecmp(verb, api_verbs[i]))
            v = i;
    if (status >= 100 && status <= 599) /* at most 500 codes: the series stay few */
        snprintf(code, sizeof(code), "%ld", status);
    metric_inc(a->api_requests, METRIC_LABELS(api_verbs[v], code));
    if (v != VERB_WATCH && latency_ms >= 0)
        latency_hist_observe_ms(&a->api_hist[v], latency_ms);
}

void metrics_rotation_failure(struct metrics *m, const char *reason)
{
    struct app *a = app_of(m);
    const char *r = "Other";

    if (!a)
        return;
    for (size_t i = 0; reason && i < N_REASONS; i++)
        if (!strcmp(reason, failure_reasons[i]))
            r = failure_reasons[i];
    metric_inc(a->failures, METRIC_LABELS(r));
}
