/* The login check as callers use it: a cache in front of pg_check_login, so that each distinct
 * server, role and token is checked once and concurrent identical checks share one login.
 * Including this header gives the whole login-check API:
 *   pg/classify.h  enum pg_login, struct pg_check_result, pg_login_name, pg_check_classify
 *   pg/login.h     struct pg_target, struct pg_check_opts, pg_check_login (how the login is
 *                  made, and why it cannot be redirected)
 *   this file      struct pg_check_cache, pg_check_cached, pg_check_fresh
 *
 *   struct pg_check_result res;
 *   if ((rc = pg_check_cached(&res, cache, &target, token, expires_at, &opts)) < 0)
 *       return rc;                                  (bad arguments: ERR_INVALID)
 *   if (res.login != PG_LOGIN_OK)
 *       log_warn("login_check_failed", LOG_STR("class", pg_login_name(res.login)),
 *                LOG_STR("reason", res.message), LOG_BOOL("cached", res.cached));
 */
#ifndef PGTR_PGCHECK_H
#define PGTR_PGCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "pg/classify.h"
#include "pg/login.h"

struct sbuf;

/* Each distinct (host, port, database, user, effective sslmode and CA file, SHA-256 of the
 * token) is checked once: an OK result is kept until the token's expiry (expires_at, epoch
 * seconds, from the token). A failed login (rejected, unreachable, TLS, error) is kept a short
 * while, PG_CHECK_FAIL_KEEP_MIN_S doubling with each failure of the same key in a row up to
 * PG_CHECK_FAIL_KEEP_MAX_S (never past the token's expiry), so that many Secrets failing for
 * one cause cost one login per while, not one each; a login refused for want of a grant is
 * tried again at most that late once the DBA grants it. Concurrent identical calls share one
 * login and its result, whatever it is. Bounded: when full, expired entries go first, then the
 * oldest. Thread-safe; no lock is held during a login. The token itself is never stored. */
#define PG_CHECK_FAIL_KEEP_MIN_S 5
#define PG_CHECK_FAIL_KEEP_MAX_S 300
struct pg_check_cache;

/* The login function, replaceable for tests (arg is the hooks' arg). */
typedef int pg_check_fn(struct pg_check_result *out, const struct pg_target *t,
                        const struct sbuf *token, const struct pg_check_opts *o, void *arg);

struct pg_check_cache_hooks {
    pg_check_fn *check;         /* NULL: pg_check_login */
    int64_t (*now_s)(void *arg); /* NULL: clock_wall_s */
    void *arg;
};

#define PG_CHECK_CACHE_DEFAULT_ENTRIES 1024

/* max_entries 0: PG_CHECK_CACHE_DEFAULT_ENTRIES. hooks: NULL for the real login and clock
 * (copied). Never NULL. Free with pg_check_cache_free (no call may be in progress). */
struct pg_check_cache *pg_check_cache_new(size_t max_entries,
                                          const struct pg_check_cache_hooks *hooks);
void pg_check_cache_free(struct pg_check_cache *c);

/* The kept result for this target and token (out->cached true: an OK, or a failure still in
 * its keep), or the result of a new pg_check_login (kept as above). Returns as
 * pg_check_login. */
int pg_check_cached(struct pg_check_result *out, struct pg_check_cache *c,
                    const struct pg_target *t, const struct sbuf *token, int64_t expires_at,
                    const struct pg_check_opts *o);

/* As pg_check_cached, but a kept result (OK or failure) does not count: a login is made now
 * (or an identical one in progress is joined), and its result replaces what was kept. For a forced rotation, which
 * must prove its token with a login of its own. */
int pg_check_fresh(struct pg_check_result *out, struct pg_check_cache *c,
                   const struct pg_target *t, const struct sbuf *token, int64_t expires_at,
                   const struct pg_check_opts *o);

struct pg_check_cache_stats {
    uint64_t hits;     /* answered from a kept OK */
    uint64_t failures_shared; /* answered from a kept failure, with no login */
    uint64_t shared;   /* waited for an identical login already in progress */
    uint64_t checks;   /* logins made */
    uint64_t evicted;  /* entries dropped to make room */
    size_t entries;    /* kept now (expired ones included until they are dropped) */
};

void pg_check_cache_stats(struct pg_check_cache_stats *out, struct pg_check_cache *c);

#endif
