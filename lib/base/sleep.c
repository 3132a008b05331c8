#include "base/sleep.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "base/clock.h"

#include "base/banned.h"

static pthread_mutex_t sleep_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleep_cond;
static pthread_once_t sleep_once = PTHREAD_ONCE_INIT;
static uint64_t sleep_gen; /* under sleep_mu: sleep_wake_all calls */

static void sleep_init(void)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sleep_cond, &ca);
    pthread_condattr_destroy(&ca);
}

/* Waits until ms have passed, *stop is true, or (when on_wake) sleep_wake_all has been
 * called since ticket. true only for the last. */
static bool sleep_wait(long ms, const atomic_bool *stop, bool on_wake, uint64_t ticket)
{
    struct timespec deadline;
    bool woken = false;

    if (ms <= 0)
        return false;
    pthread_once(&sleep_once, sleep_init);
    deadline = clock_mono_in(ms);
    pthread_mutex_lock(&sleep_mu);
    while (!(stop && atomic_load(stop))) {
        if (on_wake && sleep_gen != ticket) {
            woken = true;
            break;
        }
        if (pthread_cond_timedwait(&sleep_cond, &sleep_mu, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&sleep_mu);
    return woken;
}

void sleep_unless_stopped(long ms, const atomic_bool *stop)
{
    (void)sleep_wait(ms, stop, false, 0);
}

uint64_t sleep_ticket(void)
{
    uint64_t t;

    pthread_mutex_lock(&sleep_mu);
    t = sleep_gen;
    pthread_mutex_unlock(&sleep_mu);
    return t;
}

bool sleep_until_woken(long ms, const atomic_bool *stop, uint64_t ticket)
{
    return sleep_wait(ms, stop, true, ticket);
}

void sleep_wake_all(void)
{
    pthread_once(&sleep_once, sleep_init);
    pthread_mutex_lock(&sleep_mu);
    sleep_gen++;
    pthread_cond_broadcast(&sleep_cond);
    pthread_mutex_unlock(&sleep_mu);
}
