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
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/strmap.h"
#include "base/banned.h"

#define EVENT_MESSAGE_MAX 1024

/* One per Secret with an Event, so kept small: a hash of what the last Event
 * said instead of its text, and the Event's name in the same allocation. */
struct last_event {
    uint64_t what;     /* what_hash(reason, message) */
    int64_t first_s;
    int64_t last_s;
    int count;
    char name[];       /* the Event object's name */
};

struct event_recorder {
    char *component;
    char *instance;
    pthread_mutex_t mu;
    struct strmap last; /* "ns/secret" -> struct last_event */
};

static void last_free(void *p)
{
    free(p);
}

/* FNV-1a over reason, a NUL and message: equal texts, equal hashes; a collision
 * (2^-64) would only bump a count where a new Event was due. */
static uint64_t what_hash(const char *reason, const char *message)
{
    uint64_t h = 1469598103934665603ull;

    for (const char *p = reason;; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
        if (!*p)
            break;
    }
    for (const char *p = message; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
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
    strmap_clear(&r->last, last_free);
    pthread_mutex_destroy(&r->mu);
    free(r->component);
    free(r->instance);
    free(r);
}

void event_forget(struct event_recorder *r, const char *ns, const char *name)
{
    struct buf key = BUF_INIT(1024);

    buf_addf(&key, "%s/%s", ns, name);
    pthread_mutex_lock(&r->mu);
    struct last_event *l = strmap_del(&r->last, buf_str(&key));
    pthread_mutex_unlock(&r->mu);
    if (l)
        last_free(l);
    buf_release(&key);
}

/* A new struct last_event named "<secret>.<16 random hex>", as client-go names Events. */
static struct last_event *last_new(const char *secret)
{
    unsigned char rnd[8];
    struct buf b = BUF_INIT(512);
    static const char hex[] = "0123456789abcdef";
    struct last_event *l;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        memset(rnd, 0, sizeof(rnd));
    buf_addf(&b, "%.200s.", secret);
    for (size_t i = 0; i < sizeof(rnd); i++) {
        buf_addch(&b, hex[rnd[i] >> 4]);
        buf_addch(&b, hex[rnd[i] & 15]);
    }
    l = xcalloc(1, sizeof(*l) + b.len + 1);
    memcpy(l->name, b.ptr, b.len + 1);
    buf_release(&b);
    return l;
}

static cJSON *event_object(const struct event_recorder *r, const struct kube_secret *s,
                           const struct last_event *l, enum event_type type, const char *reason,
                           const char *message)
{
    cJSON *ev = cJSON_CreateObject(), *meta, *inv, *src;
    char first[32], last[32];

    clock_rfc3339(first, l->first_s);
    clock_rfc3339(last, l->last_s);
    cJSON_AddStringToObject(ev, "apiVersion", "v1");
    cJSON_AddStringToObject(ev, "kind", "Event");
    meta = cJSON_AddObjectToObject(ev, "metadata");
    cJSON_AddStringToObject(meta, "name", l->name);
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

    buf_addstr(&path, "/api/v1/namespaces/");
    kube_query_escape(&path, ns);
    buf_addstr(&path, "/events");
    if (patch) {
        buf_addch(&path, '/');
        kube_query_escape(&path, name);
    }
    rc = kube_call(NULL, k, patch ? "PATCH" : "POST", path.ptr,
                   patch ? "application/merge-patch+json" : "application/json", body, strlen(body));
    free(body);
    buf_release(&path);
    return rc;
}

void event_record(struct event_recorder *r, struct kube_conn *k, const struct kube_secret *s,
                  enum event_type type, const char *reason, const char *message)
{
    struct buf key = BUF_INIT(1024);
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
    buf_addf(&key, "%s/%s", s->ns, s->name);
    pthread_mutex_lock(&r->mu);
    l = strmap_get(&r->last, key.ptr);
    /* No time limit, as client-go's event logger: a repeat bumps the Event while it
     * exists; once the API server's event TTL (1 h by default) removed it, the PATCH
     * gets 404 and a new one is created below. Rotations every half hour aggregate. */
    bump = l && l->what == what;
    if (bump) {
        l->count++;
        l->last_s = now;
    } else {
        if (l)
            last_free(strmap_del(&r->last, key.ptr));
        l = last_new(s->name);
        l->what = what;
        l->first_s = l->last_s = now;
        l->count = 1;
        strmap_put(&r->last, key.ptr, l);
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
    buf_release(&key);
}
