#include "kube/event.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/oatab.h"
#include "kube/kpath.h"
#include "base/banned.h"

#define EVENT_MESSAGE_MAX 1024

/* One per Secret with an Event, so kept small: a hash of what the last Event
 * said instead of its text, the random part of the Event's name (the rest is
 * the Secret's name), and the Secret's "namespace/name" in the same allocation,
 * which is also the table's key (no map entry or key copy of its own). */
#define EVENT_NAME_RND 16 /* hex characters after "<secret>." */
#define EVENT_NAME_MAX (200 + 1 + EVENT_NAME_RND + 1)

struct last_event {
    uint64_t what;     /* what_hash(reason, message) */
    int64_t first_s;
    int64_t last_s;
    int64_t sent_s;    /* when the count was last sent */
    int32_t count;
    char rnd[EVENT_NAME_RND]; /* not terminated */
    char key[];        /* "namespace/name" */
};

struct event_recorder {
    char *component;
    char *instance;
    pthread_mutex_t mu;
    struct oatab last; /* struct last_event, keyed by their key */
};

static uint64_t key_hash(const void *key, void *ctx)
{
    (void)ctx;
    return hash_fold(fnv1a_str(FNV1A_INIT, key));
}

static uint64_t entry_hash(const void *e, void *ctx)
{
    return key_hash(((const struct last_event *)e)->key, ctx);
}

static bool entry_matches(const void *e, const void *key, void *ctx)
{
    (void)ctx;
    return !strcmp(((const struct last_event *)e)->key, key);
}

static const struct oatab_type last_type = { key_hash, entry_hash, entry_matches };

static struct last_event *last_get(const struct event_recorder *r, const char *key)
{
    return oatab_get(&r->last, &last_type, NULL, key);
}

/* Puts l in the table (its key must not be there yet). */
static void last_put(struct event_recorder *r, struct last_event *l)
{
    oatab_put(&r->last, &last_type, NULL, l);
}

/* Takes key's entry out of the table and returns it (NULL: none). */
static struct last_event *last_del(struct event_recorder *r, const char *key)
{
    return oatab_del(&r->last, &last_type, NULL, key);
}

/* FNV-1a over reason, a NUL and message: equal texts, equal hashes; a collision
 * (2^-64) would only bump a count where a new Event was due. */
static uint64_t what_hash(const char *reason, const char *message)
{
    return fnv1a_str(fnv1a_bytes(FNV1A_INIT, reason, strlen(reason) + 1), message);
}

struct event_recorder *event_recorder_new(const char *component, const char *instance)
{
    struct event_recorder *r = xcalloc(1, sizeof(*r));

    r->component = xstrdup(component);
    r->instance = xstrdup(instance ? instance : component);
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void event_recorder_free(struct event_recorder *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->last.cap; i++)
        free(r->last.slots[i]);
    oatab_release(&r->last);
    pthread_mutex_destroy(&r->mu);
    free(r->component);
    free(r->instance);
    free(r);
}

void event_forget(struct event_recorder *r, const char *ns, const char *name)
{
    char key[KPATH_KEY_SIZE];
    struct last_event *l;

    if (kpath_key_join(key, ns, name) < 0)
        return; /* no Secret has that name: nothing was recorded under it */
    pthread_mutex_lock(&r->mu);
    l = last_del(r, key);
    pthread_mutex_unlock(&r->mu);
    free(l);
}

/* A new struct last_event for key, whose Event will be named "<secret>.<16 random
 * hex>", as client-go names Events. */
static struct last_event *last_new(const char *key)
{
    unsigned char rnd[EVENT_NAME_RND / 2];
    static const char hex[] = "0123456789abcdef";
    size_t len = strlen(key);
    struct last_event *l = xcalloc(1, sizeof(*l) + len + 1);

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        memset(rnd, 0, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++) {
        l->rnd[2 * i] = hex[rnd[i] >> 4];
        l->rnd[2 * i + 1] = hex[rnd[i] & 15];
    }
    memcpy(l->key, key, len + 1);
    return l;
}

/* The Event's name: the Secret's name (at most 200 bytes), a dot, the random part. */
static void event_name(char out[EVENT_NAME_MAX], const struct last_event *l, const char *secret)
{
    snprintf(out, EVENT_NAME_MAX, "%.200s.%.*s", secret, EVENT_NAME_RND, l->rnd);
}

static cJSON *event_object(const struct event_recorder *r, const struct kube_secret *s,
                           const struct last_event *l, enum event_type type, const char *reason,
                           const char *message)
{
    cJSON *ev = cJSON_CreateObject(), *meta, *inv, *src;
    char first[32], last[32], name[EVENT_NAME_MAX];

    event_name(name, l, s->name);
    clock_rfc3339(first, l->first_s);
    clock_rfc3339(last, l->last_s);
    cJSON_AddStringToObject(ev, "apiVersion", "v1");
    cJSON_AddStringToObject(ev, "kind", "Event");
    meta = cJSON_AddObjectToObject(ev, "metadata");
    cJSON_AddStringToObject(meta, "name", name);
    cJSON_AddStringToObject(meta, "namespace", s->ns);
    inv = cJSON_AddObjectToObject(ev, "involvedObject");
    cJSON_AddStringToObject(inv, "apiVersion", "v1");
    cJSON_AddStringToObject(inv, "kind", "Secret");
    cJSON_AddStringToObject(inv, "namespace", s->ns);
    cJSON_AddStringToObject(inv, "name", s->name);
    if (*s->uid)
        cJSON_AddStringToObject(inv, "uid", s->uid);
    cJSON_AddStringToObject(inv, "resourceVersion", s->rv);
    cJSON_AddStringToObject(ev, "reason", reason);
    cJSON_AddStringToObject(ev, "message", message);
    cJSON_AddStringToObject(ev, "type", type == EVENT_WARNING ? "Warning" : "Normal");
    src = cJSON_AddObjectToObject(ev, "source");
    cJSON_AddStringToObject(src, "component", r->component);
    cJSON_AddStringToObject(ev, "firstTimestamp", first);
    cJSON_AddStringToObject(ev, "lastTimestamp", last);
    cJSON_AddNumberToObject(ev, "count", l->count);
    cJSON_AddStringToObject(ev, "reportingComponent", r->component);
    cJSON_AddStringToObject(ev, "reportingInstance", r->instance);
    return ev;
}

static int send_event(struct kube_conn *k, const char *ns, const char *name, cJSON *ev, bool patch)
{
    struct buf path = BUF_INIT(1024);
    char *body = cJSON_PrintUnformatted(ev);
    int rc;

    if (!body) {
        buf_release(&path);
        return err_set(ERR_INVALID, "an Event in namespace %s could not be serialised", ns);
    }
    if ((rc = kpath_add(&path, KPATH_CORE_V1, ns, "events", patch ? name : NULL, NULL)) == 0)
        rc = kube_call(NULL, k, patch ? "PATCH" : "POST", path.ptr,
                       patch ? "application/merge-patch+json" : "application/json", body,
                       strlen(body));
    free(body);
    buf_release(&path);
    return rc;
}

void event_record(struct event_recorder *r, struct kube_conn *k, const struct kube_secret *s,
                  enum event_type type, const char *reason, const char *message)
{
    char key[KPATH_KEY_SIZE];
    struct last_event *l;
    int64_t now = clock_wall_s();
    char msg[EVENT_MESSAGE_MAX];
    uint64_t what;
    const char *name;
    bool bump;
    cJSON *ev;
    int rc;

    snprintf(msg, sizeof(msg), "%s", message);
    what = what_hash(reason, msg);
    (void)kpath_key_join(key, s->ns, s->name); /* cannot fail for a Secret */
    pthread_mutex_lock(&r->mu);
    l = last_get(r, key);
    /* No time limit, as client-go's event logger: a repeat bumps the Event while it
     * exists; once the API server's event TTL (1 h by default) removed it, the PATCH
     * gets 404 and a new one is created below. Rotations every half hour aggregate. */
    bump = l && l->what == what;
    if (bump) {
        l->count++;
        l->last_s = now;
        if (now - l->sent_s < EVENT_REPEAT_MIN_S) {
            /* counted; the next bump sent carries it */
            pthread_mutex_unlock(&r->mu);
            return;
        }
        l->sent_s = now;
    } else {
        if (l)
            free(last_del(r, key));
        l = last_new(key);
        l->what = what;
        l->first_s = l->last_s = l->sent_s = now;
        l->count = 1;
        last_put(r, l);
    }
    ev = event_object(r, s, l, type, reason, msg); /* under the lock: l may be replaced */
    pthread_mutex_unlock(&r->mu);
    name = json_str(json_obj(ev, "metadata"), "name");
    rc = send_event(k, s->ns, name, ev, bump);
    if (rc == ERR_NOTFOUND && bump)
        rc = send_event(k, s->ns, name, ev, false); /* the Event expired: create */
    if (rc < 0)
        log_warn("event_not_recorded", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
                 LOG_STR("reason", reason), LOG_ERR(rc));
    cJSON_Delete(ev);
}
