/* Time. Wall-clock seconds for token expiry (tokens carry epoch seconds);
 * a monotonic clock for timers, so a clock step never fires or stalls one. */
#ifndef PGTR_CLOCK_H
#define PGTR_CLOCK_H

#include <stdint.h>
#include <time.h>

int64_t clock_wall_s(void);
int64_t clock_wall_ms(void);
int64_t clock_mono_ms(void);
/* The CLOCK_MONOTONIC time ms from now: the deadline of a pthread_cond_timedwait on a
 * condition variable set to that clock. */
struct timespec clock_mono_in(long ms);
/* RFC 3339 UTC ("2026-11-23T17:34:11Z") of epoch seconds t into out. */
void clock_rfc3339(char out[32], int64_t t);
/* Parses RFC 3339 UTC ("...Z" or "+00:00", fraction ignored). 0 or ERR_PARSE. */
int clock_parse_rfc3339(int64_t *out, const char *s);
/* The same with any offset ("...+02:00", "...-05:30"), converted to UTC: what Kubernetes
 * clients may send (an ExecCredential's expirationTimestamp). 0 or ERR_PARSE. */
int clock_parse_rfc3339_any(int64_t *out, const char *s);

#endif
