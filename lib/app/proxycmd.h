/* `pgtoken-rotator proxy`: a local PostgreSQL auth proxy for apps that read one
 * database URL at start. It listens (127.0.0.1:5432 by default) for the app's
 * connections as the configured role and database, and logs each new one in
 * upstream with a fresh token of the pod's own identity, over verified TLS.
 * The app's URL holds no token and never changes, e.g.
 * postgresql://role@127.0.0.1:5432/db?sslmode=disable. See proxycmd_usage
 * for the flags; the README says when to choose it. */
#ifndef PGTR_PROXYCMD_H
#define PGTR_PROXYCMD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include "proxy/server.h"

/* The flags as parsed (strings point into argv or at constants). */
struct proxycmd_opts {
    const char *listen;           /* "host:port"; default 127.0.0.1:5432 */
    char listen_host[128];        /* its address and port, split by proxycmd_parse */
    unsigned listen_port;
    const char *host;             /* the server (required) */
    unsigned port;                /* 5432 */
    const char *user, *database;  /* required */
    const char *db_ca_file;
    bool insecure_db;
    const char *client_password_file; /* a password or a SCRAM verifier; required beyond loopback */
    const char *client_tls_cert, *client_tls_key;
    long login_timeout_s;         /* 30 */
    long drain_timeout_s;         /* 30 */
    int max_connections;          /* 1000 */
    const char *metrics_addr;     /* /metrics and /healthz; "" off; default 127.0.0.1:9188 */
    const char *scope;
    const char *authority_host, *identity_ca_file, *identity_source, *client_id;
    bool insecure_http_authority;
    double refresh_ratio;         /* 0.5 */
    const char *log_level, *log_format;
};

void proxycmd_usage(FILE *f);
/* Parses the flags (argv[0] is "proxy") and checks them together. 0; 1 for --help;
 * ERR_INVALID naming the flag. */
int proxycmd_parse(struct proxycmd_opts *out, int argc, char **argv);
/* Runs the proxy until *stop. Returns the exit status: 0 after a clean stop; 2 for a
 * configuration that cannot start (logged); 1 for a failure while running. */
int proxycmd_run(const struct proxycmd_opts *o, const atomic_bool *stop);

#endif
