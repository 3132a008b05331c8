/* The auth proxy's metrics (app/pxmetrics.h). */
#include "app/pxmetrics.h"

#include "base/err.h"
#include "base/mem.h"
#include "base/prom.h"
#include <stdlib.h>

#include "base/banned.h"

#define P METRICS_PREFIX "proxy_"

struct pxmetrics {
    struct proxy_server_stats *ps;
    struct keeper_stats *ks;
    struct prom_family *conns, *open, *over, *cancels, *bytes, *login, *expiry, *tokens;
};

static void collect(struct prom *p, void *ctx)
{
    struct pxmetrics *x = ctx;
    struct latency_hist_snapshot snap;

    (void)p;
    for (int r = SES_R_OK; r <= SES_R_CANCEL; r++)
        prom_set(x->conns, PROM_LABELS(session_result_name((enum session_result)r)),
                 (double)atomic_load(&x->ps->results[r]));
    prom_set(x->open, NULL, (double)atomic_load(&x->ps->active));
    prom_set(x->over, NULL, (double)atomic_load(&x->ps->over_limit));
    prom_set(x->cancels, NULL, (double)atomic_load(&x->ps->cancels_sent));
    prom_set(x->bytes, PROM_LABELS("upstream"), (double)atomic_load(&x->ps->bytes_up));
    prom_set(x->bytes, PROM_LABELS("client"), (double)atomic_load(&x->ps->bytes_down));
    latency_hist_read(&snap, &x->ps->login);
    prom_set_histogram(x->login, NULL, snap.buckets, LATENCY_HIST_NBOUNDS + 1, snap.sum_s);
    prom_set(x->expiry, NULL, (double)atomic_load(&x->ks->token_expires_at));
    prom_set(x->tokens, PROM_LABELS("ok"), (double)atomic_load(&x->ks->mints));
    prom_set(x->tokens, PROM_LABELS("error"), (double)atomic_load(&x->ks->mint_failures));
}

int pxmetrics_register(struct pxmetrics **out, struct metrics *m, struct proxy_server_stats *ps,
                       struct keeper_stats *ks)
{
    static const char *const result[] = { "result", NULL }, *const dir[] = { "direction", NULL };
    struct prom *reg = metrics_registry(m);
    struct pxmetrics *x = xcalloc(1, sizeof(*x));
    int rc;

    x->ps = ps;
    x->ks = ks;
    if ((rc = prom_counter(&x->conns, reg, P "connections_total",
                           "Client connections by how their login ended: ok (relayed), client, "
                           "refused, no_token, unreachable, tls, rejected, error, cancel.",
                           result)) < 0 ||
        (rc = prom_gauge(&x->open, reg, P "connections_open", "Client connections open now.",
                         NULL)) < 0 ||
        (rc = prom_counter(&x->over, reg, P "connections_over_limit_total",
                           "Client connections closed at once: --max-connections were open.",
                           NULL)) < 0 ||
        (rc = prom_counter(&x->cancels, reg, P "cancels_total",
                           "CancelRequests sent to the server for a client.", NULL)) < 0 ||
        (rc = prom_counter(&x->bytes, reg, P "bytes_total",
                           "Bytes relayed after the logins, to the upstream server or to clients.",
                           dir)) < 0 ||
        (rc = prom_histogram(&x->login, reg, P "login_duration_seconds",
                             "From a client's connection to its welcome: both logins.", NULL,
                             latency_hist_bounds_s, LATENCY_HIST_NBOUNDS)) < 0 ||
        (rc = prom_gauge(&x->expiry, reg, P "token_expiry_timestamp_seconds",
                         "When the token new logins use expires (Unix time); 0 before the first.",
                         NULL)) < 0 ||
        (rc = prom_counter(&x->tokens, reg, P "token_requests_total",
                           "Token requests to the identity provider, by result (ok, error).",
                           result)) < 0 ||
        (rc = prom_collector(reg, collect, x)) < 0) {
        free(x);
        return rc;
    }
    *out = x;
    return 0;
}

void pxmetrics_free(struct pxmetrics *x)
{
    free(x);
}
