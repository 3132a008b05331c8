#include "kube/watch.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/backoff.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sleep.h"
#include "kube/kpath.h"
#include "base/banned.h"

#define WATCH_PATH_MAX 4096
#define WATCH_EVENT_MAX (4u << 20)

struct watch_state {
    struct kube_conn *k;
    struct store *st;
    const struct watch_opts *o;
    const struct watch_handler *h;
    struct watch_stats *stats;
    const atomic_bool *stop;
    char rv[WATCH_RV_MAX];
    bool gone;      /* the stream said 410: relist */
    int error_code; /* another ERROR event */
    bool relisting; /* a periodic relist: count what the cache lacked */
    long found;     /* Secrets this relist found that the cache lacked */
};

/* Secrets a relist names in the log, one line each; a summary line gives the count. */
#define WATCH_FOUND_LOGGED 20

/* The Secrets of o->ns (all namespaces when NULL) with the label selector. */
static int base_path(struct buf *b, const struct watch_opts *o)
{
    int rc;

    buf_init(b, WATCH_PATH_MAX);
    if ((rc = kpath_add(b, KPATH_CORE_V1, o->ns, "secrets", NULL, NULL)) == 0 && o->label_selector)
        rc = kpath_add_query(b, "labelSelector", o->label_selector);
    return rc;
}

/* Caches one object. A malformed one is skipped (with its error left in err_msg) and
 * returns < 0: the caller logs it, once per event or once per list page. */
static int upsert(struct watch_state *w, const cJSON *obj)
{
    struct kube_secret *s = NULL;
    char *key;
    bool changed;
    int rc;

    if ((rc = kube_secret_from_json_keep(&s, obj, w->o ? w->o->keep : NULL)) < 0)
        return rc;
    key = kube_secret_key(s);
    if (w->relisting && !store_has(w->st, key) && w->found++ < WATCH_FOUND_LOGGED)
        log_warn("secret_found_by_relist", LOG_STR("key", key),
                 LOG_STR("detail", "listed now but not cached before: an earlier list or the "
                                   "watch missed it, or it was created just now"));
    changed = store_upsert(w->st, s);
    if (w->h->on_upsert)
        w->h->on_upsert(w->h->ctx, key, changed);
    free(key);
    return 0;
}

static void on_removed(void *ctx, const char *key)
{
    const struct watch_state *w = ctx;

    if (w->h->on_delete)
        w->h->on_delete(w->h->ctx, key);
}

static void set_rv(struct watch_state *w, const cJSON *obj)
{
    const char *rv = json_str(json_obj(obj, "metadata"), "resourceVersion");

    if (rv && strlen(rv) < sizeof(w->rv))
        memcpy(w->rv, rv, strlen(rv) + 1);
}

/* The page's items and continue token, once its shape is that of a list: a reply that is
 * not (an empty body, "items" not an array, "metadata" not an object, a continue token we
 * cannot hold) fails the list, which is retried; taken as empty, it would drop every
 * cached Secret. */
static int list_page(const cJSON *list, const cJSON **items, const char **cont, size_t cont_max)
{
    const cJSON *meta = list ? cJSON_GetObjectItemCaseSensitive(list, "metadata") : NULL;
    const cJSON *c;

    *cont = NULL;
    *items = list ? cJSON_GetObjectItemCaseSensitive(list, "items") : NULL;
    if (!cJSON_IsObject(list))
        return err_set(ERR_PARSE, "list reply is not a JSON object");
    if (!cJSON_IsArray(*items) && !cJSON_IsNull(*items) && *items)
        return err_set(ERR_PARSE, "list reply's items is not an array");
    if (!cJSON_IsObject(meta))
        return err_set(ERR_PARSE, "list reply has no metadata object");
    if (!json_str(meta, "resourceVersion"))
        return err_set(ERR_PARSE, "list reply has no resourceVersion");
    c = cJSON_GetObjectItemCaseSensitive(meta, "continue");
    if (c && !cJSON_IsString(c) && !cJSON_IsNull(c))
        return err_set(ERR_PARSE, "list reply's continue is not a string");
    *cont = c && cJSON_IsString(c) ? c->valuestring : NULL;
    if (*cont && strlen(*cont) >= cont_max)
        return err_set(ERR_PARSE, "list reply's continue token is over %zu bytes", cont_max - 1);
    return 0;
}

/* One complete list, all pages. Only a complete list sweeps the cache. */
static int list_all(struct watch_state *w)
{
    char cont[4096] = "";
    int rc = 0;

    store_mark(w->st, w->o->ns);
    do {
        struct buf path;
        cJSON *list = NULL;
        const cJSON *items, *item;
        const char *c = NULL;
        size_t bad = 0;
        if ((rc = base_path(&path, w->o)) == 0 &&
            (rc = kpath_add_query_i64(&path, "limit", w->o->page_size)) == 0 &&
            (!*cont || (rc = kpath_add_query(&path, "continue", cont)) == 0))
            rc = kube_call(&list, w->k, "GET", path.ptr, NULL, NULL, 0);
        buf_release(&path);
        if (rc < 0)
            return rc;
        if ((rc = list_page(list, &items, &c, sizeof(cont))) < 0) {
            json_wipe_delete(list);
            return rc;
        }
        cJSON_ArrayForEach(item, items) {
            if (atomic_load(w->stop))
                break;
            int urc = upsert(w, item);
            if (urc < 0 && bad++ == 0)
                log_warn("watch_bad_object", LOG_ERR(urc)); /* the first; a count below */
        }
        if (bad > 1)
            log_warn("list_bad_objects", LOG_I64("skipped", (int64_t)bad),
                     LOG_STR("detail", "objects in one list page that are not valid Secrets"));
        set_rv(w, list);
        if (c && *c)
            memcpy(cont, c, strlen(c) + 1);
        else
            cont[0] = '\0';
        json_wipe_delete(list);
        if (atomic_load(w->stop))
            return err_set(ERR_UNAVAILABLE, "stopped during a list");
    } while (*cont);
    store_sweep(w->st, on_removed, w);
    atomic_fetch_add(&w->stats->lists, 1);
    /* The pages' JSON trees were many small blocks that glibc keeps after they are
     * freed; hand them back, or a (re)list would raise RSS for good. */
    malloc_trim(0);
    return 0;
}

static int on_event(void *ctx, const char *line, size_t len)
{
    struct watch_state *w = ctx;
    cJSON *ev = NULL, *obj;
    const char *type;
    int rc;

    if ((rc = json_parse(&ev, line, len, WATCH_EVENT_MAX)) < 0) {
        log_warn("watch_bad_event", LOG_ERR(rc));
        return rc; /* a stream we cannot frame: reconnect */
    }
    type = json_str(ev, "type");
    obj = json_obj(ev, "object");
    atomic_fetch_add(&w->stats->events, 1);
    if (!type || !obj) {
        rc = err_set(ERR_PARSE, "watch event without type or object");
    } else if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED")) {
        if ((rc = upsert(w, obj)) < 0) {
            log_warn("watch_bad_object", LOG_ERR(rc));
            rc = 0; /* one bad object: skip it, keep the stream */
        }
        set_rv(w, obj);
    } else if (!strcmp(type, "DELETED")) {
        const cJSON *meta = json_obj(obj, "metadata");
        const char *ns = json_str(meta, "namespace"), *name = json_str(meta, "name");
        /* The same checks as an upsert's: a key names one Secret or none. */
        if (ns && name && kube_secret_check_ref(ns, name) == 0 &&
            json_str(meta, "resourceVersion")) {
            char key[KPATH_KEY_SIZE];
            if (kpath_key_join(key, ns, name) == 0 && store_delete(w->st, key))
                on_removed(w, key);
        }
        set_rv(w, obj);
    } else if (!strcmp(type, "BOOKMARK")) {
        set_rv(w, obj);
    } else if (!strcmp(type, "ERROR")) {
        int64_t code = 0;
        json_i64(&code, obj, "code");
        if (code == 410) {
            w->gone = true;
            rc = ERR_GONE;
        } else {
            rc = err_set(ERR_UNAVAILABLE, "watch ERROR event: %lld %s", (long long)code,
                         json_str(obj, "message") ? json_str(obj, "message") : "");
        }
    }
    json_wipe_delete(ev);
    return rc;
}

int watch_parse_event(struct store *st, const struct watch_handler *h, struct watch_stats *stats,
                      char rv[WATCH_RV_MAX], const char *line, size_t len)
{
    struct watch_state w = { .st = st, .h = h, .stats = stats };
    int rc;

    memcpy(w.rv, rv, strnlen(rv, WATCH_RV_MAX - 1));
    rc = on_event(&w, line, len);
    memcpy(rv, w.rv, WATCH_RV_MAX);
    return rc;
}

/* Runs one watch; with periodic relists, the server ends it by the next one. */
static int watch_once(struct watch_state *w, int64_t relist_at_ms)
{
    struct buf path;
    long timeout = w->o->timeout_s + (long)(backoff_rand() * (double)w->o->timeout_s / 5);
    int rc;

    if (relist_at_ms) {
        int64_t left_s = (relist_at_ms - clock_mono_ms() + 999) / 1000;
        if (left_s < timeout)
            timeout = left_s < 1 ? 1 : (long)left_s;
    }
    if ((rc = base_path(&path, w->o)) == 0 && (rc = kpath_add_query(&path, "watch", "1")) == 0 &&
        (rc = kpath_add_query(&path, "allowWatchBookmarks", "true")) == 0 &&
        (rc = kpath_add_query(&path, "resourceVersion", w->rv)) == 0 &&
        (rc = kpath_add_query_i64(&path, "timeoutSeconds", timeout)) == 0)
        rc = kube_watch(w->k, path.ptr, on_event, w, w->stop, w->o->idle_timeout_s);
    buf_release(&path);
    return rc;
}

int watch_run(struct kube_conn *k, struct store *st, const struct watch_opts *opts,
              const struct watch_handler *h, const atomic_bool *stop, struct watch_stats *stats)
{
    struct watch_opts o = *opts;
    struct watch_state w = { .k = k, .st = st, .o = &o, .h = h, .stats = stats, .stop = stop };
    bool listed = false, synced = false;
    unsigned failures = 0;
    int64_t relist_at = 0; /* when the next periodic relist is due; 0: never */
    int rc;

    if (!o.timeout_s)
        o.timeout_s = 300;
    if (!o.idle_timeout_s)
        o.idle_timeout_s = 120;
    if (!o.page_size)
        o.page_size = 100; /* a page of filled Secrets is ~250 KB of JSON: peak RSS */
    if (!o.backoff_base_ms)
        o.backoff_base_ms = 500;
    if (!o.backoff_cap_ms)
        o.backoff_cap_ms = 30000;
    while (!atomic_load(stop)) {
        if (!listed) {
            w.found = 0;
            rc = list_all(&w);
            if (rc == 0) {
                listed = true;
                w.relisting = false;
                failures = 0;
                if (o.relist_s > 0)
                    relist_at = clock_mono_ms() + (int64_t)o.relist_s * 1000;
                log_info("secrets_listed", LOG_STR("namespace", o.ns ? o.ns : "*"),
                         LOG_STR("resource_version", w.rv), LOG_I64("cached", store_len(st)));
                if (w.found > 0) {
                    atomic_fetch_add(&stats->relist_found, w.found);
                    log_warn("relist_found", LOG_STR("namespace", o.ns ? o.ns : "*"),
                             LOG_I64("found", (int64_t)w.found),
                             LOG_STR("detail", "Secrets the cache lacked, now queued"));
                }
                if (h->on_listed)
                    h->on_listed(h->ctx);
                if (!synced && h->on_synced)
                    h->on_synced(h->ctx);
                synced = true;
            }
        } else if (relist_at && clock_mono_ms() >= relist_at) {
            listed = false; /* the periodic relist: what a list or watch missed is found */
            w.relisting = true; /* not after a 410: there the watch misses changes by design */
            continue;
        } else {
            w.gone = false;
            rc = watch_once(&w, relist_at);
            atomic_fetch_add(&stats->restarts, 1);
            if (rc == ERR_GONE || w.gone) {
                atomic_fetch_add(&stats->gone, 1);
                log_info("watch_expired_relisting", LOG_STR("namespace", o.ns ? o.ns : "*"),
                         LOG_STR("resource_version", w.rv));
                listed = false;
                w.relisting = false;
                continue; /* relist at once: 410 is not a failure */
            }
            if (rc == 0) {
                failures = 0;
                continue; /* the server ended the watch: resume from w.rv */
            }
        }
        if (rc < 0 && !atomic_load(stop)) {
            long delay = backoff_ms(failures++, o.backoff_base_ms, o.backoff_cap_ms, backoff_rand());
            if (err_retry_after_s() * 1000 > delay)
                delay = err_retry_after_s() * 1000;
            log_warn(listed ? "watch_failed" : "list_failed",
                     LOG_STR("namespace", o.ns ? o.ns : "*"), LOG_ERR(rc),
                     LOG_I64("retry_in_ms", delay));
            sleep_unless_stopped(delay, stop);
        }
    }
    return 0;
}
