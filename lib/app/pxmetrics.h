/* The auth proxy's metrics (pgtoken_rotator_proxy_*, listed in docs/metrics.md),
 * read at scrape time from the proxy's and its keeper's stats. */
#ifndef PGTR_PXMETRICS_H
#define PGTR_PXMETRICS_H

#include "app/metrics.h"
#include "proxy/keeper.h"
#include "proxy/server.h"

struct pxmetrics;

/* Registers the families on m and a collector reading ps and ks, which must
 * outlive every scrape. 0 and *out (the collector's state: free it with
 * pxmetrics_free after metrics_free(m)), or ERR_INVALID when they are already
 * there. */
int pxmetrics_register(struct pxmetrics **out, struct metrics *m, struct proxy_server_stats *ps,
                       struct keeper_stats *ks);
void pxmetrics_free(struct pxmetrics *x);

#endif
