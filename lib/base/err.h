/* Error codes and the per-thread error message.
 *
 * A function that can fail returns 0 (or a non-negative count) on success and
 * one of the negative ERR_* codes below on failure, after setting a message
 * with err_set(). Each code means one thing to the caller:
 *
 *   ERR_INVALID      bad input (config, annotation): wait for the user to fix it
 *   ERR_NOTFOUND     the object does not exist
 *   ERR_CONFLICT     stale resourceVersion: re-read and retry
 *   ERR_GONE         resourceVersion too old (410): relist
 *   ERR_DENIED       authentication or authorization refused (401/403)
 *   ERR_UNAVAILABLE  transient: connection failed, 5xx, 429, timeout: back off
 *   ERR_TLS          TLS handshake or certificate verification failed
 *   ERR_PARSE        a peer sent something malformed
 *   ERR_TOOBIG       input over its cap
 *   ERR_REJECTED     the peer understood and refused (a login, a token request)
 *   ERR_IO           local file or system call failure
 *
 * Messages never hold secret values: name the field, not its content. */
#ifndef PGTR_ERR_H
#define PGTR_ERR_H

#include <stdint.h>

enum {
    ERR_INVALID = -1,
    ERR_NOTFOUND = -2,
    ERR_CONFLICT = -3,
    ERR_GONE = -4,
    ERR_DENIED = -5,
    ERR_UNAVAILABLE = -6,
    ERR_TLS = -7,
    ERR_PARSE = -8,
    ERR_TOOBIG = -9,
    ERR_REJECTED = -10,
    ERR_IO = -11,
};

/* Sets this thread's message (printf-style) and returns code, so that
 * `return err_set(ERR_INVALID, "port %d out of range", p);` reads naturally. */
int err_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the current message with "prefix: " and returns code unchanged. */
int err_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The current thread's last message ("" if none). Valid until the next err_set. */
const char *err_msg(void);

/* A stable lower-case name for a code ("invalid", "conflict", ...). */
const char *err_name(int code);

/* Seconds a peer asked us to wait (Retry-After) with the last ERR_UNAVAILABLE;
 * 0 when it did not say. Every err_set resets it: set it right after the
 * err_set of the error it came with. Set by the HTTP layer, read by whoever
 * backs off. */
int64_t err_retry_after_s(void);
void err_set_retry_after_s(int64_t s);

#endif
