/* Kubernetes Events on the Secrets we manage (core/v1 Event, as kubectl
 * describe shows them). A repeat of the same reason and message on the same
 * object bumps the existing Event's count instead of creating another, as
 * client-go's recorder does (a new one once the old one has expired), and the
 * bump is sent at most once per EVENT_REPEAT_MIN_S: repeats in between are
 * counted and carried by the next one sent, so a failure that repeats on every
 * retry costs one write per Secret per minute, not one per retry (client-go's
 * correlator rate-limits repeats too). Messages must never hold a secret:
 * callers pass text built from names and error messages. */
#ifndef PGTR_EVENT_H
#define PGTR_EVENT_H

#include <stdbool.h>

#include "kube/kclient.h"
#include "kube/secret.h"

enum event_type { EVENT_NORMAL, EVENT_WARNING };

#define EVENT_REPEAT_MIN_S 60

struct event_recorder;

/* component: source.component and reportingController ("pgtoken-rotator");
 * instance: reportingInstance (the pod name). */
struct event_recorder *event_recorder_new(const char *component, const char *instance);
void event_recorder_free(struct event_recorder *r);

/* Records an Event about s. Failures are logged, not returned: an Event is
 * best-effort and never blocks a rotation. */
void event_record(struct event_recorder *r, struct kube_conn *k, const struct kube_secret *s,
                  enum event_type type, const char *reason, const char *message);

/* Forgets aggregation state for a Secret that is gone. */
void event_forget(struct event_recorder *r, const char *ns, const char *name);

#endif
