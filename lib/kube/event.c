#include "kube/event.h"

#include <pthread.h>
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

#define EVENT_WINDOW_S 600
#define EVENT_MESSAGE_MAX 1024

struct last_event {
    char *name;        /* the Event object's name */
    char *reason;
    char *message;
    int64_t first_s;
    int64_t last_s;
    int count;
};

struct event_recorder {
    char *component;
    char *instance;
    pthread_mutex_t mu;
    struct strmap last; /* "ns/secret" -> struct last_event */
};

static void last_free(void *p)
{
    struct last_event *l = p;

    free(l->name);
    free(l->reason);
    free(l->message);
    free(l);
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

static char *event_name(const char *secret)
{
    unsigned char rnd[8];
    struct buf b = BUF_INIT(512);
    static const char hex[] = "0123456789abcdef";

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        memset(rnd, 0, sizeof(rnd));
    buf_addf(&b, "%.200s.", secret);
    for (size_t i = 0; i < sizeof(rnd); i++) {
        buf_addch(&b, hex[rnd[i] >> 4]);
        buf_addch(&b, hex[rnd[i] & 15]);
    }
    return buf_detach(&b, NULL);
}

static cJSON *event_object(const struct event_recorder *r, const struct kube_secret *s,
                           const struct last_event *l, enum event_type type)
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
    cJSON_AddStringToObject(ev, "reason", l->reason);
    cJSON_AddStringToObject(ev, "message", l->message);
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
    cJSON *resp = NULL;
    int rc;

    buf_addstr(&path, "/api/v1/namespaces/");
    kube_query_escape(&path, ns);
    buf_addstr(&path, "/events");
    if (patch) {
        buf_addch(&path, '/');
        kube_query_escape(&path, name);
    }
    rc = kube_call(&resp, k, patch ? "PATCH" : "POST", path.ptr,
                   patch ? "application/merge-patch+json" : "application/json", body, strlen(body));
    cJSON_Delete(resp);
    free(body);
    buf_release(&path);
    return rc;
}

void event_record(struct event_recorder *r, struct kube_conn *k, const struct kube_secret *s,
                  enum event_type type, const char *reason, const char *message)
{
    struct buf key = BUF_INIT(1024);
    struct last_event snap, *l;
    int64_t now = clock_wall_s();
    char msg[EVENT_MESSAGE_MAX];
    bool bump;
    cJSON *ev;
    int rc;

    snprintf(msg, sizeof(msg), "%s", message);
    buf_addf(&key, "%s/%s", s->ns, s->name);
    pthread_mutex_lock(&r->mu);
    l = strmap_get(&r->last, key.ptr);
    bump = l && !strcmp(l->reason, reason) && !strcmp(l->message, msg) &&
           now - l->last_s < EVENT_WINDOW_S;
    if (bump) {
        l->count++;
        l->last_s = now;
    } else {
        if (l)
            last_free(strmap_del(&r->last, key.ptr));
        l = xcalloc(1, sizeof(*l));
        l->name = event_name(s->name);
        l->reason = xstrdup(reason);
        l->message = xstrdup(msg);
        l->first_s = l->last_s = now;
        l->count = 1;
        strmap_put(&r->last, key.ptr, l);
    }
    snap = *l; /* strings stay valid: only this Secret's worker replaces them */
    ev = event_object(r, s, &snap, type);
    pthread_mutex_unlock(&r->mu);
    rc = send_event(k, s->ns, snap.name, ev, bump);
    if (rc == ERR_NOTFOUND && bump)
        rc = send_event(k, s->ns, snap.name, ev, false); /* the Event expired: create */
    if (rc < 0)
        log_warn("event_not_recorded", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
                 LOG_STR("reason", reason), LOG_ERR(rc));
    cJSON_Delete(ev);
    buf_release(&key);
}
