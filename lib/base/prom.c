#include "base/prom.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/strmap.h"
#include "base/banned.h"

enum prom_type { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM };

struct series {
    char **values;     /* one per label name */
    double value;      /* counter, gauge */
    double sum;        /* histogram */
    uint64_t count;
    uint64_t *buckets; /* histogram: observations per bucket (not cumulative); [nbounds] is +Inf */
};

struct prom_family {
    struct prom *reg;
    enum prom_type type;
    char *name;
    char *help;
    char *labels[PROM_MAX_LABELS];
    size_t nlabels;
    double bounds[PROM_MAX_BUCKETS];
    size_t nbounds;
    struct strmap series; /* series key (see series_key) -> struct series */
    prom_source_fn source; /* series made at scrape time; may be NULL */
    void *source_ctx;
    bool dropped_logged;
    struct prom_family *next;
};

struct collector {
    prom_collect_fn fn;
    void *ctx;
};

struct prom {
    /* mu guards families and series; scrape_mu makes scrapes take turns, so
     * collectors (which update through mu) never run twice at once. */
    pthread_mutex_t mu;
    pthread_mutex_t scrape_mu;
    struct prom_family *first, *last;
    struct collector *collectors;
    size_t ncollectors, collectors_cap;
};

/* ---- Registry ------------------------------------------------------------- */

struct prom *prom_new(void)
{
    struct prom *p = xcalloc(1, sizeof(*p));

    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->scrape_mu, NULL);
    return p;
}

static void series_free(void *v)
{
    struct series *s = v;

    if (!s)
        return;
    for (size_t i = 0; s->values && s->values[i]; i++)
        free(s->values[i]);
    free(s->values);
    free(s->buckets);
    free(s);
}

static void family_free(struct prom_family *f)
{
    strmap_clear(&f->series, series_free);
    free(f->series.buckets);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->name);
    free(f->help);
    free(f);
}

void prom_free(struct prom *p)
{
    struct prom_family *f, *next;

    if (!p)
        return;
    for (f = p->first; f; f = next) {
        next = f->next;
        family_free(f);
    }
    free(p->collectors);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->scrape_mu);
    free(p);
}

static bool name_ok(const char *s, bool colon)
{
    if (!s || !*s)
        return false;
    for (const char *c = s; *c; c++) {
        bool alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
                     (colon && *c == ':');
        if (!alpha && !(c > s && *c >= '0' && *c <= '9'))
            return false;
    }
    return true;
}

static struct prom_family *find_family(const struct prom *p, const char *name)
{
    for (struct prom_family *f = p->first; f; f = f->next)
        if (!strcmp(f->name, name))
            return f;
    return NULL;
}

static int family_new(struct prom_family **out, struct prom *p, enum prom_type type,
                      const char *name, const char *help, const char *const *labels,
                      const double *bounds, size_t nbounds)
{
    struct prom_family *f;
    size_t n = 0;
    int rc = 0;

    if (!name_ok(name, true))
        return err_set(ERR_INVALID, "metric name \"%s\" is not valid", name ? name : "");
    for (; labels && labels[n]; n++) {
        const char *l = labels[n];
        if (n == PROM_MAX_LABELS)
            return err_set(ERR_INVALID, "metric %s: more than %d labels", name, PROM_MAX_LABELS);
        if (!name_ok(l, false) || !strncmp(l, "__", 2))
            return err_set(ERR_INVALID, "metric %s: label name \"%s\" is not valid", name, l);
        if (type == PROM_HISTOGRAM && !strcmp(l, "le"))
            return err_set(ERR_INVALID, "metric %s: label name \"%s\" is reserved", name, l);
        for (size_t j = 0; j < n; j++)
            if (!strcmp(labels[j], l))
                return err_set(ERR_INVALID, "metric %s: label \"%s\" repeated", name, l);
    }
    if (type == PROM_HISTOGRAM) {
        if (nbounds < 1 || nbounds > PROM_MAX_BUCKETS || !bounds)
            return err_set(ERR_INVALID, "metric %s: 1 to %d buckets", name, PROM_MAX_BUCKETS);
        for (size_t i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
                return err_set(ERR_INVALID, "metric %s: bucket bounds must be finite and "
                               "increasing", name);
    }
    pthread_mutex_lock(&p->mu);
    if (find_family(p, name)) {
        rc = err_set(ERR_INVALID, "metric %s is already registered", name);
        goto out;
    }
    f = xcalloc(1, sizeof(*f));
    f->reg = p;
    f->type = type;
    f->name = xstrdup(name);
    f->help = xstrdup(help ? help : "");
    for (size_t i = 0; i < n; i++)
        f->labels[i] = xstrdup(labels[i]);
    f->nlabels = n;
    if (type == PROM_HISTOGRAM) {
        memcpy(f->bounds, bounds, nbounds * sizeof(*bounds));
        f->nbounds = nbounds;
    }
    if (p->last)
        p->last->next = f;
    else
        p->first = f;
    p->last = f;
    *out = f;
out:
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int prom_counter(struct prom_family **out, struct prom *p, const char *name, const char *help,
                 const char *const *labels)
{
    return family_new(out, p, PROM_COUNTER, name, help, labels, NULL, 0);
}

int prom_gauge(struct prom_family **out, struct prom *p, const char *name, const char *help,
               const char *const *labels)
{
    return family_new(out, p, PROM_GAUGE, name, help, labels, NULL, 0);
}

int prom_histogram(struct prom_family **out, struct prom *p, const char *name, const char *help,
                   const char *const *labels, const double *bounds, size_t nbounds)
{
    return family_new(out, p, PROM_HISTOGRAM, name, help, labels, bounds, nbounds);
}

/* An unambiguous key for a combination of label values: each value as its
 * length, ':', the value. ERR_TOOBIG when a value is over
 * PROM_MAX_VALUE_LEN (such updates are dropped). */
static int series_key(struct buf *key, const struct prom_family *f, const char *const *values)
{
    int rc = 0;

    buf_init(key, PROM_MAX_LABELS * (PROM_MAX_VALUE_LEN + 8));
    for (size_t i = 0; i < f->nlabels && rc == 0; i++) {
        /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Branch): values has nlabels entries */
        const char *v = values && values[i] ? values[i] : "";
        size_t n = strlen(v);
        if (n > PROM_MAX_VALUE_LEN)
            return err_set(ERR_TOOBIG, "metric %s: a label value is over %d bytes", f->name,
                           PROM_MAX_VALUE_LEN);
        rc = buf_addf(key, "%zu:", n);
        if (rc == 0)
            rc = buf_add(key, v, n);
    }
    return rc;
}

/* The series for values, created when absent (NULL when a value is too long or
 * the family is full). Called with mu held. */
static struct series *series_get(struct prom_family *f, const char *const *values)
{
    struct buf key;
    struct series *s = NULL;

    if (series_key(&key, f, values) < 0) {
        if (!f->dropped_logged)
            log_warn("metric_series_dropped", LOG_STR("metric", f->name),
                     LOG_STR("detail", err_msg()));
        f->dropped_logged = true;
        goto out;
    }
    s = strmap_get(&f->series, buf_str(&key));
    if (!s) {
        if (f->series.len >= PROM_MAX_SERIES) {
            if (!f->dropped_logged)
                log_warn("metric_series_dropped", LOG_STR("metric", f->name),
                         LOG_I64("max_series", PROM_MAX_SERIES));
            f->dropped_logged = true;
            goto out;
        }
        s = xcalloc(1, sizeof(*s));
        s->values = xcalloc(f->nlabels + 1, sizeof(char *));
        for (size_t i = 0; i < f->nlabels; i++)
            /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Branch): nlabels entries */
            s->values[i] = xstrdup(values && values[i] ? values[i] : "");
        if (f->type == PROM_HISTOGRAM)
            s->buckets = xcalloc(f->nbounds + 1, sizeof(uint64_t));
        strmap_put(&f->series, buf_str(&key), s);
    }
out:
    buf_release(&key);
    return s;
}

/* Counters and gauges: adds v to the series, or sets it to v. */
static void update(struct prom_family *f, const char *const *values, bool add, double v)
{
    struct series *s;

    if (!f || f->type == PROM_HISTOGRAM)
        return;
    if (add && f->type == PROM_COUNTER && !(v >= 0))
        return;
    pthread_mutex_lock(&f->reg->mu);
    if ((s = series_get(f, values)))
        s->value = add ? s->value + v : v;
    pthread_mutex_unlock(&f->reg->mu);
}

void prom_inc(struct prom_family *f, const char *const *values)
{
    update(f, values, true, 1);
}

void prom_add(struct prom_family *f, const char *const *values, double v)
{
    update(f, values, true, v);
}

void prom_set(struct prom_family *f, const char *const *values, double v)
{
    update(f, values, false, v);
}

void prom_set_histogram(struct prom_family *f, const char *const *values, const uint64_t *buckets,
                        size_t nbuckets, double sum)
{
    struct series *s;

    if (!f || f->type != PROM_HISTOGRAM || !buckets || nbuckets != f->nbounds + 1)
        return;
    pthread_mutex_lock(&f->reg->mu);
    if ((s = series_get(f, values))) {
        s->count = 0;
        for (size_t i = 0; i < nbuckets; i++)
            s->count += buckets[i];
        memcpy(s->buckets, buckets, nbuckets * sizeof(*buckets));
        s->sum = sum;
    }
    pthread_mutex_unlock(&f->reg->mu);
}

void prom_source(struct prom_family *f, prom_source_fn fn, void *ctx)
{
    if (!f || f->type == PROM_HISTOGRAM)
        return;
    pthread_mutex_lock(&f->reg->mu);
    f->source = fn;
    f->source_ctx = ctx;
    pthread_mutex_unlock(&f->reg->mu);
}

int prom_collector(struct prom *p, prom_collect_fn fn, void *ctx)
{
    if (!fn)
        return err_set(ERR_INVALID, "metrics collector without a function");
    pthread_mutex_lock(&p->mu);
    XGROW(p->collectors, p->collectors_cap, p->ncollectors + 1);
    p->collectors[p->ncollectors++] = (struct collector){ fn, ctx };
    pthread_mutex_unlock(&p->mu);
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

/* name{l1="v1",...,extra_name="extra_value"} value\n, with values[i] the value
 * of f's i-th label. */
static int add_sample(struct buf *b, const struct prom_family *f, const char *suffix,
                      char *const *values, const char *extra_name, const char *extra_value,
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
        rc |= add_escaped(b, values[i], true);
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

/* What a source emitted during one scrape, a window at a time: the series whose
 * label values sort after `after` (all of them on the first pass), at most
 * SOURCE_WINDOW of the smallest, their values packed in an arena ("v1\0v2\0..."
 * per series). A source of N series is asked N / SOURCE_WINDOW + 1 times per
 * scrape, and a scrape holds one window (about 100 KB) whatever N is. Series
 * with the same label values would be one series twice: the window's boundary
 * keeps only the first. */
#define SOURCE_WINDOW 2048

struct emitted {
    const struct prom_family *f;
    struct buf arena;
    struct emitted_series {
        /* The packed values: their offset in the arena while the source emits
         * (the arena may move), a pointer into it once it is done. */
        union {
            size_t off;
            const char *ptr;
        } vals;
        size_t len; /* bytes packed, the NULs included */
        double v;
    } *list;
    size_t n, cap;
    const char *after;   /* packed values (not owned); NULL: from the start */
    size_t after_len;
    struct buf limit;    /* packed values no kept series reaches once the window is full */
    bool full;           /* more series than the window: another pass follows */
};

/* By label values, as cmp_series orders kept series. Both hold the same number
 * of NUL-terminated values, so comparing the packed bytes compares value by
 * value: the first difference is inside a pair of values, where strcmp would
 * find it too (a NUL sorts before any other byte, as a shorter value before a
 * longer one it begins), and with none the two are equal. */
static int cmp_packed(const char *x, size_t xl, const char *y, size_t yl)
{
    size_t n = xl < yl ? xl : yl;
    int c = n ? memcmp(x, y, n) : 0;

    return c ? c : (xl > yl) - (xl < yl);
}

static int cmp_emitted(const void *a, const void *b)
{
    const struct emitted_series *x = a, *y = b;

    return cmp_packed(x->vals.ptr, x->len, y->vals.ptr, y->len);
}

/* Sorts e's series, keeps the SOURCE_WINDOW smallest and packs their values
 * into a new arena (pointers in, pointers out). */
static void window_trim(struct emitted *e)
{
    struct buf arena = BUF_INIT(PROM_RENDER_MAX);

    qsort(e->list, e->n, sizeof(*e->list), cmp_emitted);
    if (e->n <= SOURCE_WINDOW)
        return;
    e->n = SOURCE_WINDOW;
    e->full = true;
    buf_reset(&e->limit);
    buf_add(&e->limit, e->list[e->n - 1].vals.ptr, e->list[e->n - 1].len);
    for (size_t i = 0; i < e->n; i++) {
        size_t off = arena.len;
        buf_add(&arena, e->list[i].vals.ptr, e->list[i].len); /* fits: it did before */
        e->list[i].vals.off = off;
    }
    for (size_t i = 0; i < e->n; i++)
        e->list[i].vals.ptr = arena.ptr + e->list[i].vals.off;
    buf_release(&e->arena);
    e->arena = arena;
}

static void emit_one(void *ectx, const char *const *values, double v)
{
    struct emitted *e = ectx;
    size_t off = e->arena.len, len;
    const char *packed;

    for (size_t i = 0; i < e->f->nlabels; i++) {
        const char *val = values && values[i] ? values[i] : "";
        if (strlen(val) > PROM_MAX_VALUE_LEN || buf_add(&e->arena, val, strlen(val) + 1) < 0)
            goto drop; /* like an over-long kept series */
    }
    len = e->arena.len - off;
    packed = e->arena.ptr + off;
    if ((e->after && cmp_packed(packed, len, e->after, e->after_len) <= 0) ||
        (e->full && cmp_packed(packed, len, e->limit.ptr, e->limit.len) >= 0))
        goto drop; /* rendered already, or past this window */
    XGROW(e->list, e->cap, e->n + 1);
    e->list[e->n].vals.off = off;
    e->list[e->n].len = len;
    e->list[e->n].v = v;
    if (++e->n == 2 * SOURCE_WINDOW) {
        for (size_t i = 0; i < e->n; i++)
            e->list[i].vals.ptr = e->arena.ptr + e->list[i].vals.off;
        window_trim(e);
        for (size_t i = 0; i < e->n; i++)
            e->list[i].vals.off = (size_t)(e->list[i].vals.ptr - e->arena.ptr);
    }
    return;
drop:
    e->arena.len = off;
    if (e->arena.ptr)
        e->arena.ptr[off] = '\0';
}

/* Collects f's next window of source series (after `after`, packed values of
 * after_len bytes; NULL: the first) into e, sorted (the caller holds mu). */
static void collect_source(struct emitted *e, const struct prom_family *f, const char *after,
                           size_t after_len)
{
    *e = (struct emitted){ f, BUF_INIT(PROM_RENDER_MAX), NULL, 0, 0, after, after_len,
                           BUF_INIT(PROM_RENDER_MAX), false };
    f->source(f->source_ctx, emit_one, e);
    for (size_t i = 0; i < e->n; i++)
        e->list[i].vals.ptr = e->arena.ptr + e->list[i].vals.off;
    if (e->n)
        window_trim(e);
}

static void emitted_release(struct emitted *e)
{
    free(e->list);
    buf_release(&e->arena);
    buf_release(&e->limit);
    *e = (struct emitted){ 0 };
}

/* Renders e's series [*next, *next + count) and advances *next. */
static int render_emitted(struct buf *b, const struct emitted *e, size_t *next, size_t count)
{
    char *vals[PROM_MAX_LABELS] = { NULL };
    int rc = 0;

    for (; *next < e->n && count && rc == 0; (*next)++, count--) {
        const struct emitted_series *es = &e->list[*next];
        const char *p = es->vals.ptr;
        for (size_t i = 0; i < e->f->nlabels; i++) {
            vals[i] = (char *)p;
            p += strlen(p) + 1;
        }
        rc = add_sample(b, e->f, "", vals, NULL, NULL, es->v);
    }
    return rc;
}

static const char *type_name(enum prom_type t)
{
    switch (t) {
    case PROM_COUNTER: return "counter";
    case PROM_GAUGE: return "gauge";
    case PROM_HISTOGRAM: return "histogram";
    }
    return "untyped";
}

/* f's HELP and TYPE lines and its kept series (not its source's). */
static int render_family(struct buf *b, const struct prom_family *f)
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
        if (f->type == PROM_COUNTER || f->type == PROM_GAUGE) {
            rc = add_sample(b, f, "", s->values, NULL, NULL, s->value);
            continue;
        }
        uint64_t cum = 0;
        char le[40];
        for (size_t j = 0; j < f->nbounds && rc == 0; j++) {
            cum += s->buckets[j];
            fmt_value(le, f->bounds[j]);
            rc = add_sample(b, f, "_bucket", s->values, "le", le, (double)cum);
        }
        if (rc == 0)
            rc = add_sample(b, f, "_bucket", s->values, "le", "+Inf", (double)s->count);
        if (rc == 0)
            rc = add_sample(b, f, "_sum", s->values, NULL, NULL, s->sum);
        if (rc == 0)
            rc = add_sample(b, f, "_count", s->values, NULL, NULL, (double)s->count);
    }
    free(all);
    return rc;
}

/* A scrape renders one unit at a time: a family's HELP, TYPE and kept series,
 * or up to SCRAPE_BATCH of its source's series. Each unit is rendered under the
 * locks, which are released between units, so a slow reader never holds up the
 * workers that update the registry, and no more than one unit of text (and one
 * window of a source's sorted label values) is held at once, whatever the number
 * of series. Families are only ever appended, so the cursor stays valid. */
#define SCRAPE_BATCH 128

struct prom_scrape {
    struct prom *p;
    struct prom_family *f; /* the family being rendered; NULL: done */
    bool in_source;        /* f's kept series are done; src holds its source's */
    struct emitted src;
    size_t src_next;
    struct buf after;      /* the last rendered source series' packed values */
    struct buf chunk;      /* rendered, not yet read (prom_scrape_read) */
    size_t chunk_off;
    size_t total;          /* bytes rendered so far */
    int rc;                /* the first error; sticky */
};

struct prom_scrape *prom_scrape_start(struct prom *p)
{
    struct prom_scrape *s = xcalloc(1, sizeof(*s));

    s->p = p;
    buf_init(&s->chunk, PROM_RENDER_MAX);
    buf_init(&s->after, PROM_RENDER_MAX);
    pthread_mutex_lock(&p->scrape_mu);
    for (size_t i = 0; i < p->ncollectors; i++)
        p->collectors[i].fn(p, p->collectors[i].ctx);
    pthread_mutex_lock(&p->mu);
    s->f = p->first;
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->scrape_mu);
    return s;
}

void prom_scrape_free(struct prom_scrape *s)
{
    if (!s)
        return;
    emitted_release(&s->src);
    buf_release(&s->after);
    buf_release(&s->chunk);
    free(s);
}

/* Appends the next unit to b. 1: something was rendered (maybe nothing for a
 * source with no series); 0: the scrape is over; ERR_TOOBIG. */
static int scrape_step(struct prom_scrape *s, struct buf *b)
{
    struct prom *p = s->p;
    size_t before = b->len;
    int rc = 0;

    if (s->rc < 0)
        return s->rc;
    if (!s->f)
        return 0;
    pthread_mutex_lock(&p->scrape_mu);
    pthread_mutex_lock(&p->mu);
    if (!s->in_source) {
        rc = render_family(b, s->f);
        if (rc == 0 && s->f->source) {
            collect_source(&s->src, s->f, NULL, 0);
            s->src_next = 0;
            s->in_source = true;
        }
    } else {
        rc = render_emitted(b, &s->src, &s->src_next, SCRAPE_BATCH);
        if (rc == 0 && s->src_next == s->src.n && s->src.full) { /* the next window */
            const struct emitted_series *last = &s->src.list[s->src.n - 1];
            buf_reset(&s->after);
            buf_add(&s->after, last->vals.ptr, last->len);
            emitted_release(&s->src);
            collect_source(&s->src, s->f, s->after.ptr, s->after.len);
            s->src_next = 0;
        }
    }
    if (rc == 0 && (!s->in_source || s->src_next == s->src.n)) {
        emitted_release(&s->src);
        s->in_source = false;
        s->f = s->f->next;
    }
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->scrape_mu);
    if (rc == 0 && b->len - before > PROM_RENDER_MAX - s->total)
        rc = ERR_TOOBIG;
    if (rc) {
        s->rc = err_set(ERR_TOOBIG, "metrics exposition over %u bytes", PROM_RENDER_MAX);
        return s->rc;
    }
    s->total += b->len - before;
    return 1;
}

long prom_scrape_read(struct prom_scrape *s, char *out, size_t max)
{
    size_t n;
    int rc;

    if (s->rc < 0)
        return s->rc; /* not the rest of the unit that went over the cap */
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
