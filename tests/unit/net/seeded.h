/* A seeded pseudo-random sequence for the tests' fuzz-like loops: the same
 * numbers on every run and machine (xorshift64*), so a failure repeats. Not
 * for anything that needs unpredictable numbers. Header only. */
#ifndef PGTR_TEST_SEEDED_H
#define PGTR_TEST_SEEDED_H

#include <stdint.h>

/* The next number of the sequence kept in *state (which must not be 0). */
static inline uint32_t seeded_next(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (uint32_t)((*state * 0x2545F4914F6CDD1DULL) >> 32);
}

#endif
