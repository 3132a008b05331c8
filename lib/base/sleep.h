/* Timed sleeps that a stop flag can cut short, for every thread of the process: one
 * process-wide condition variable on CLOCK_MONOTONIC. Stops are rare, so a broadcast that
 * wakes sleepers who are not concerned costs nothing, and any stop flag works with it. */
#ifndef PGTR_SLEEP_H
#define PGTR_SLEEP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Sleeps ms, or less when *stop becomes true and sleep_wake_all() is called: whoever sets a
 * stop flag calls sleep_wake_all() after it. One blocking wait on a CLOCK_MONOTONIC condition
 * variable (no polling: an idle process does not wake up). A NULL stop sleeps the full time. */
void sleep_unless_stopped(long ms, const atomic_bool *stop);
/* A ticket for sleep_until_woken: take it before checking the state you are about to wait
 * for, so that a sleep_wake_all() between the check and the sleep is not lost. */
uint64_t sleep_ticket(void);
/* The same as sleep_unless_stopped, but also returns (true) as soon as sleep_wake_all() has
 * been called since ticket was taken: for a thread that waits for a change of some other state
 * (e.g. leadership) and re-checks it. false when ms passed or *stop is true. */
bool sleep_until_woken(long ms, const atomic_bool *stop, uint64_t ticket);
/* Wakes every sleeper of this process to re-check its stop flag (and sleep_until_woken
 * callers to return). Cheap; safe from any thread, not from a signal handler. */
void sleep_wake_all(void);

#endif
