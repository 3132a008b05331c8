#include "t.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cJSON.h>

#include "base/clock.h"
#include "base/json.h"
#include "kube/resync.h"

static void add(struct store *st, const char *ns, const char *name, const char *rv)
{
    char json[256];
    struct kube_secret *s = NULL;
    cJSON *obj = NULL;

    snprintf(json, sizeof(json),
             "{\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\",\"resourceVersion\":\"%s\"}}",
             ns, name, rv);
    T_RC(json_parse(&obj, json, strlen(json), 1u << 16), 0);
    T_RC(kube_secret_from_json(&s, obj), 0);
    cJSON_Delete(obj);
    if (s)
        store_upsert(st, s);
}

struct lost {
    size_t n;
    char keys[8][64];
};

static void on_lost(void *ctx, const char *key)
{
    struct lost *l = ctx;

    if (l->n < 8)
        snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", key);
    l->n++;
}

/* Drains what the queue hands out now, marking each done. */
static size_t drain(struct queue *q)
{
    size_t n = 0;
    char *k;

    while (queue_len(q) > 0 && queue_get(q, &k)) {
        queue_done(q, k);
        free(k);
        n++;
    }
    return n;
}

/* The cases a resync meets: keys waiting in the queue (a backlog), in progress,
 * scheduled for later while planned now (the queue's schedule is wrong), held
 * nowhere (lost), and keys planned later or never (left alone). */
static void test_finds_what_was_lost(void)
{
    struct store *st = store_new();
    struct queue *q = queue_new();
    struct resync_result r;
    struct lost lost = { 0 };
    int64_t now;
    char *k;

    add(st, "a", "queued", "1");
    add(st, "a", "busy", "1");
    add(st, "a", "lost", "1");
    add(st, "a", "misscheduled", "1");
    add(st, "a", "later", "1");
    add(st, "a", "never", "1");
    now = clock_mono_ms();
    store_set_due(st, "a/later", now + 3600000);
    store_set_due(st, "a/never", STORE_DUE_NEVER);
    queue_add(q, "a/busy");
    T_CHECK(queue_get(q, &k)); /* a worker has it */
    queue_add(q, "a/queued");
    queue_add_after(q, "a/misscheduled", 3600000);
    queue_add_after(q, "a/later", 3600000);

    resync_run(&r, st, q, now, on_lost, &lost);
    T_EQ_INT(r.due, 4);
    T_EQ_INT(r.lost, 2);
    T_EQ_INT(lost.n, 2);
    T_CHECK((!strcmp(lost.keys[0], "a/lost") && !strcmp(lost.keys[1], "a/misscheduled")) ||
            (!strcmp(lost.keys[1], "a/lost") && !strcmp(lost.keys[0], "a/misscheduled")));
    T_EQ_INT(queue_len(q), 3);     /* queued, lost, misscheduled */
    T_EQ_INT(queue_delayed(q), 1); /* later, untouched */
    queue_done(q, k);              /* the worker's key was not marked to run again */
    free(k);
    T_EQ_INT(drain(q), 3);

    /* Once planned again (what a worker does after each reconcile), nothing is due. */
    store_set_due(st, "a/queued", now + 1000);
    store_set_due(st, "a/busy", now + 1000);
    store_set_due(st, "a/lost", now + 1000);
    store_set_due(st, "a/misscheduled", now + 1000);
    resync_run(&r, st, q, now, NULL, NULL);
    T_EQ_INT(r.due, 0);
    T_EQ_INT(r.lost, 0);
    /* Later, those four are due and held nowhere (the queue here never had them
     * scheduled): lost, and queued again. */
    resync_run(&r, st, q, now + 1000, NULL, NULL);
    T_EQ_INT(r.due, 4);
    T_EQ_INT(r.lost, 4);
    T_EQ_INT(queue_len(q), 4);
    queue_free(q);
    store_free(st);
}

/* A worker plans a key in the store and the queue with one time (queue_add_at): once that
 * time has come, a resync finds the key due in both and leaves it to the queue. */
static void test_one_planned_time(void)
{
    struct store *st = store_new();
    struct queue *q = queue_new();
    struct resync_result r;
    int64_t due = clock_mono_ms() + 20;
    char *k;

    add(st, "a", "x", "1");
    store_set_due(st, "a/x", due);
    queue_add_at(q, "a/x", due);
    T_EQ_INT(queue_delayed(q), 1);
    while (clock_mono_ms() < due)
        usleep(2000);
    resync_run(&r, st, q, clock_mono_ms(), NULL, NULL);
    T_EQ_INT(r.due, 1);
    T_EQ_INT(r.lost, 0);
    T_CHECK(queue_get(q, &k)); /* the queue's own timer hands it out */
    T_EQ_STR(k, "a/x");
    queue_done(q, k);
    free(k);
    /* A time already passed is now. */
    queue_add_at(q, "a/y", clock_mono_ms() - 5);
    T_EQ_INT(queue_len(q), 1);
    T_EQ_INT(queue_delayed(q), 0);
    queue_free(q);
    store_free(st);
}

int main(void)
{
    T_RUN(test_finds_what_was_lost);
    T_RUN(test_one_planned_time);
    return t_done();
}
