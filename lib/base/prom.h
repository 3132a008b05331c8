/* A registry of metrics and its rendering in the Prometheus text exposition
 * format (version 0.0.4). Knows nothing of what is measured: lib/app/metrics
 * defines the controller's families on one.
 *
 * A registry (struct prom) holds metric families: counters, gauges and
 * histograms with fixed buckets, each with up to PROM_MAX_LABELS label names.
 * A series is one combination of label values; it appears on its first update.
 * Values are either updated directly (prom_inc, prom_add, prom_set) or set at
 * scrape time by collectors (prom_collector) that copy them from the atomic
 * stats structs the modules keep (prom_set, prom_set_histogram); series of
 * objects a cache already holds are made at scrape time by a source
 * (prom_source). Thread-safe: any thread may update any family while another
 * scrapes.
 *
 *      const char *const labels[] = { "result", NULL };
 *      struct prom_family *f;
 *      prom_counter(&f, p, "app_rotations_total", "Rotations.", labels);
 *      prom_inc(f, PROM_LABELS("success"));
 *
 * Label values are namespaces, names, verbs, results: the functions take
 * const char *, never a struct sbuf. Label values and help texts are escaped
 * as the format requires. */
#ifndef PGTR_PROM_H
#define PGTR_PROM_H

#include <stddef.h>
#include <stdint.h>

#define PROM_MAX_LABELS 4
/* Series per family; updates that would create more are dropped (and logged
 * once), so a flood of names cannot grow memory without bound. */
#define PROM_MAX_SERIES 65536
#define PROM_MAX_BUCKETS 32
/* Longest label value kept; updates (and source series) with a longer one are
 * dropped (updates logged once). */
#define PROM_MAX_VALUE_LEN 1024
/* Cap on one scrape's text. */
#define PROM_RENDER_MAX (16u << 20)
/* The Content-Type of a scrape's text. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Label values for an update, in the order of the family's label names:
 * prom_inc(f, PROM_LABELS("get", "200")). A family without labels takes NULL. */
#define PROM_LABELS(...) ((const char *const[]){ __VA_ARGS__ })

struct prom;
struct prom_family; /* owned by its registry */

/* A new empty registry. Never NULL. Free with prom_free once no thread
 * updates or scrapes it (NULL is fine). */
struct prom *prom_new(void);
void prom_free(struct prom *p);

/* Register a family. name: [a-zA-Z_:][a-zA-Z0-9_:]*; help: one line (any
 * text; escaped when rendered); labels: NULL-terminated label names
 * ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", no repeats, at most
 * PROM_MAX_LABELS; "le" not on a histogram), or NULL for none. Families are
 * rendered in registration order.
 * 0: *out is the family (owned by p); ERR_INVALID naming the bad name, label
 * or bucket, or when name is already registered. */
int prom_counter(struct prom_family **out, struct prom *p, const char *name, const char *help,
                 const char *const *labels);
int prom_gauge(struct prom_family **out, struct prom *p, const char *name, const char *help,
               const char *const *labels);
/* bounds: the buckets' upper bounds, finite and strictly increasing, 1 to
 * PROM_MAX_BUCKETS of them (copied); the +Inf bucket is implied. */
int prom_histogram(struct prom_family **out, struct prom *p, const char *name, const char *help,
                   const char *const *labels, const double *bounds, size_t nbounds);

/* Updates of counters and gauges (nothing happens on a histogram). values: one
 * per label name of f (NULL for a family without labels); a NULL value counts
 * as "". f may be NULL (nothing happens).
 * prom_add: a negative or NaN v on a counter is ignored.
 * prom_set: gauges, and counters set by a collector from a monotonic source. */
void prom_inc(struct prom_family *f, const char *const *values);
void prom_add(struct prom_family *f, const char *const *values, double v);
void prom_set(struct prom_family *f, const char *const *values, double v);
/* Histograms only: sets a series as a collector read it from a stats struct
 * (struct latency_hist): buckets holds the observations per bucket, not
 * cumulative, nbuckets of them, one per bound of f and the last for +Inf (any
 * other nbuckets: nothing happens); the count is their total; sum is the sum
 * of the observations. */
void prom_set_histogram(struct prom_family *f, const char *const *values, const uint64_t *buckets,
                        size_t nbuckets, double sum);

/* Series produced at scrape time instead of kept (counters and gauges only), for
 * families with one series per object of a cache that already holds the value:
 * fn calls emit once per series with its label values (one per label name,
 * borrowed for the call) and value. They are rendered after the family's kept
 * series, sorted by label values; the caller must not emit a kept series'
 * labels again. fn runs during a scrape with the registry locked: it must not
 * call prom functions. A later call replaces fn; NULL removes it. */
typedef void (*prom_emit_fn)(void *ectx, const char *const *values, double v);
typedef void (*prom_source_fn)(void *ctx, prom_emit_fn emit, void *ectx);
void prom_source(struct prom_family *f, prom_source_fn fn, void *ctx);

/* fn runs at the start of every scrape, one scrape at a time, and may update
 * any family of p (not register new ones). 0, or ERR_INVALID when fn is NULL. */
typedef void (*prom_collect_fn)(struct prom *p, void *ctx);
int prom_collector(struct prom *p, prom_collect_fn fn, void *ctx);

/* The exposition, a piece at a time, for serving it without holding all of it:
 * for every family in registration order its HELP and TYPE lines, then its
 * kept series sorted by label values, then its source's (a family with no
 * series is still described).
 * prom_scrape_start runs the collectors (never NULL; free with
 * prom_scrape_free, NULL is fine); each prom_scrape_read copies the next bytes
 * of the exposition to out (at most max, at least 1 while any remain) and
 * returns how many, 0 at the end, or ERR_TOOBIG when the text would pass
 * PROM_RENDER_MAX (what was read must then not be served as complete).
 * The registry is locked only while each piece (one family's kept series, or a
 * batch of its source's series) is rendered, so a scrape read slowly never
 * delays updates; a series updated during a scrape shows its old or new value.
 * p must outlive the scrape. */
struct prom_scrape;
struct prom_scrape *prom_scrape_start(struct prom *p);
long prom_scrape_read(struct prom_scrape *s, char *out, size_t max);
void prom_scrape_free(struct prom_scrape *s);

#endif
