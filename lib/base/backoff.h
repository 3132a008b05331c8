/* Exponential backoff with jitter: base * 2^attempt, capped, then scaled by a
 * jitter factor in [0.5, 1.0] so that many failing objects spread out. */
#ifndef PGTR_BACKOFF_H
#define PGTR_BACKOFF_H

#include <stdint.h>

/* Delay before retry number attempt (0-based). jitter01 in [0, 1) picks the
 * point in the jitter range (pass backoff_rand() in production, a constant in
 * tests). Never negative, never above cap_ms. */
int64_t backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms, double jitter01);
/* A uniform value in [0, 1) from a thread-local generator seeded once. */
double backoff_rand(void);

#endif
