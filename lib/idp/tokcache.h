/* One token per (identity, scope), shared by every Secret that uses it.
 * A cached token is served while it is younger than serve_ratio of its
 * lifetime (default 0.25), so a Secret that rotates at half its token's
 * lifetime always receives a token with at least three quarters left; older
 * tokens are renewed on demand, by one caller while the others wait. After a
 * failure, callers get the same error without a new request until the
 * backoff (or the server's Retry-After) has passed. Thread-safe. */
#ifndef PGTR_TOKCACHE_H
#define PGTR_TOKCACHE_H

#include <stdatomic.h>

#include "base/latency_hist.h"
#include "idp/idp.h"

struct tokcache;

struct tokcache_stats {
    atomic_long requests;  /* token requests sent */
    atomic_long failures;
    atomic_long hits;
    struct latency_hist latency; /* of the requests sent */
};

/* http_opts: TLS for the identity endpoints (CA bundle). */
int tokcache_new(struct tokcache **out, const struct http_opts *http_opts, double serve_ratio);
void tokcache_free(struct tokcache *c);
struct tokcache_stats *tokcache_stats(struct tokcache *c);

/* 0: *out is a copy of a fresh token (caller releases). Errors as idp_mint;
 * after any failure err_retry_after_s() says when this identity will be
 * asked again, so that callers wait for that instead of backing off alone. */
/* max_age_ratio (0: the cache's serve_ratio) lowers the age a served token may
 * have, for callers that rotate earlier than usual. */
int tokcache_get(struct idp_token *out, struct tokcache *c, struct idp *p, const char *scope,
                 double max_age_ratio);

/* As tokcache_get, but never serves the cached token: asks the identity
 * provider for a new one (for a forced rotation), which then replaces the
 * cached one. A failure still being replayed for this identity is returned
 * as by tokcache_get, without a request. */
int tokcache_refresh(struct idp_token *out, struct tokcache *c, struct idp *p,
                     const char *scope);

#endif
