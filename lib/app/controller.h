/* The controller: ties the Kubernetes watch, the work queue, the reconcile
 * workers, the identity and the login check together.
 *
 * Threads: one watch per namespace (or one for all namespaces) feeding the
 * store and the queue; `workers` reconcile threads, each with its own API
 * connection, so that one slow PostgreSQL or token endpoint holds up only the
 * worker that waits on it. Shutdown: set *stop and call sleep_wake_all()
 * (base/sleep.h): every thread notices at once (a watch stream within a
 * second) and returns. Nothing polls: at rest the main loop wakes once a
 * second for /healthz, the watch when its stream speaks, workers when a
 * rotation is due. */
#ifndef PGTR_CONTROLLER_H
#define PGTR_CONTROLLER_H

#include <stdatomic.h>
#include <stdbool.h>

#include "app/config.h"

struct controller;

/* Loads the Kubernetes configuration and the identity, checks what can be
 * checked without a request. 0, or ERR_INVALID / ERR_IO with a message that
 * says what to fix. */
int controller_new(struct controller **out, const struct config *cfg);
void controller_free(struct controller *c);

/* Runs until *stop becomes true (its setter calls sleep_wake_all(); without
 * that, the main loop still sees it within a second). Returns 0 after a clean
 * shutdown; what httpd_start returns when the metrics listener cannot start;
 * ERR_UNAVAILABLE when a thread cannot start (it then sets *stop itself, stops
 * and joins the threads already started, and logs thread_start_failed). */
int controller_run(struct controller *c, atomic_bool *stop);

/* True once every watch has completed its first list. */
bool controller_synced(struct controller *c);

#endif
