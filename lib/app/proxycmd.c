/* `pgtoken-rotator proxy` (app/proxycmd.h): flags, wiring, and the run. */
#include "app/proxycmd.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "app/cli.h"
#include "app/httpd.h"
#include "app/pxmetrics.h"
#include "base/err.h"
#include "base/flag.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "idp/idp.h"
#include "net/http.h"
#include "net/tls.h"
#include "base/banned.h"

#define PASSWORD_FILE_MAX 4096

void proxycmd_usage(FILE *f)
{
    fprintf(f,
        "usage: pgtoken-rotator proxy --host H --user ROLE --database DB [--port P]\n"
        "                             [--listen 127.0.0.1:5432] [flags] [identity flags]\n\n"
        "A local PostgreSQL auth proxy: the app connects to --listen as ROLE to DB with no\n"
        "token (postgresql://ROLE@127.0.0.1:5432/DB?sslmode=disable), and every new connection\n"
        "is logged in upstream over verified TLS with a fresh token of this pod's identity.\n"
        "Connections already open are never touched; the app is never restarted.\n\n"
        "flags:\n"
        "  --listen ADDR:PORT              default 127.0.0.1:5432 (an IP address)\n"
        "  --host H, --port P              the server (port 5432)\n"
        "  --user ROLE, --database DB      the only role and database served\n"
        "  --db-ca-file FILE               CA bundle for the server (default: system)\n"
        "  --insecure-skip-db-tls-verify   INSECURE: do not verify the server's certificate\n"
        "  --client-password-file FILE     clients log in with this password (SCRAM-SHA-256);\n"
        "                                  the file holds it or its SCRAM verifier; required\n"
        "                                  when --listen is not a loopback address\n"
        "  --client-tls-cert FILE, --client-tls-key FILE\n"
        "                                  TLS for clients that ask (sslmode=require)\n"
        "  --login-timeout S               both logins of a connection (default 30)\n"
        "  --max-connections N             clients at once (default 1000)\n"
        "  --drain-timeout S               on SIGTERM, time left to open connections (30)\n"
        "  --token-refresh-ratio R         a new token after R of its life (default 0.5)\n"
        "  --metrics-addr ADDR             /metrics and /healthz (default 127.0.0.1:9188;\n"
        "                                  \"\" for none)\n"
        "  --log-level L, --log-format F   as for run\n\n"
        "identity flags: --scope, --authority-host, --identity-ca-file, --identity-source,\n"
        "--client-id, --insecure-allow-http-authority, as for `pgtoken-rotator token --help`.\n\n"
        "exit status: 0 stopped by SIGTERM or SIGINT; 2 usage or configuration; 1 a failure.\n");
}

enum {
    PF_LISTEN, PF_HOST, PF_PORT, PF_USER, PF_DATABASE, PF_DB_CA, PF_INSECURE_DB, PF_PASSWORD,
    PF_TLS_CERT, PF_TLS_KEY, PF_LOGIN_TIMEOUT, PF_MAX_CONNS, PF_DRAIN, PF_REFRESH, PF_METRICS,
    PF_SCOPE, PF_AUTHORITY, PF_IDENTITY_CA, PF_IDENTITY_SOURCE, PF_CLIENT_ID, PF_INSECURE_HTTP,
    PF_LOG_LEVEL, PF_LOG_FORMAT,
};

static const struct flag FLAGS[] = {
    { "--listen", FLAG_VALUE, PF_LISTEN, false },
    { "--host", FLAG_VALUE, PF_HOST, false },
    { "--port", FLAG_VALUE, PF_PORT, false },
    { "--user", FLAG_VALUE, PF_USER, false },
    { "--database", FLAG_VALUE, PF_DATABASE, false },
    { "--db-ca-file", FLAG_VALUE, PF_DB_CA, false },
    { "--insecure-skip-db-tls-verify", FLAG_BOOL, PF_INSECURE_DB, false },
    { "--client-password-file", FLAG_VALUE, PF_PASSWORD, false },
    { "--client-tls-cert", FLAG_VALUE, PF_TLS_CERT, false },
    { "--client-tls-key", FLAG_VALUE, PF_TLS_KEY, false },
    { "--login-timeout", FLAG_VALUE, PF_LOGIN_TIMEOUT, false },
    { "--max-connections", FLAG_VALUE, PF_MAX_CONNS, false },
    { "--drain-timeout", FLAG_VALUE, PF_DRAIN, false },
    { "--token-refresh-ratio", FLAG_VALUE, PF_REFRESH, false },
    { "--metrics-addr", FLAG_VALUE, PF_METRICS, false },
    { "--scope", FLAG_VALUE, PF_SCOPE, false },
    { "--authority-host", FLAG_VALUE, PF_AUTHORITY, false },
    { "--identity-ca-file", FLAG_VALUE, PF_IDENTITY_CA, false },
    { "--identity-source", FLAG_VALUE, PF_IDENTITY_SOURCE, false },
    { "--client-id", FLAG_VALUE, PF_CLIENT_ID, false },
    { "--insecure-allow-http-authority", FLAG_BOOL, PF_INSECURE_HTTP, false },
    { "--log-level", FLAG_VALUE, PF_LOG_LEVEL, false },
    { "--log-format", FLAG_VALUE, PF_LOG_FORMAT, false },
};

static int number(long *out, const char *flag, const char *v, long min, long max)
{
    char *end;
    long n = strtol(v, &end, 10);

    if (!*v || *end || n < min || n > max)
        return err_set(ERR_INVALID, "%s wants a whole number from %ld to %ld", flag, min, max);
    *out = n;
    return 0;
}

static int set_flag(void *ctx, const struct flag *f, const char *v)
{
    struct proxycmd_opts *o = ctx;
    bool on = !strcmp(v, "true");
    long n = 0;
    int rc;

    switch (f->id) {
    case PF_LISTEN: o->listen = v; break;
    case PF_HOST: o->host = v; break;
    case PF_PORT:
        if ((rc = number(&n, f->name, v, 1, 65535)) < 0)
            return rc;
        o->port = (unsigned)n;
        break;
    case PF_USER: o->user = v; break;
    case PF_DATABASE: o->database = v; break;
    case PF_DB_CA: o->db_ca_file = v; break;
    case PF_INSECURE_DB: o->insecure_db = on; break;
    case PF_PASSWORD: o->client_password_file = v; break;
    case PF_TLS_CERT: o->client_tls_cert = v; break;
    case PF_TLS_KEY: o->client_tls_key = v; break;
    case PF_LOGIN_TIMEOUT: return number(&o->login_timeout_s, f->name, v, 1, 3600);
    case PF_DRAIN: return number(&o->drain_timeout_s, f->name, v, 0, 3600);
    case PF_MAX_CONNS:
        if ((rc = number(&n, f->name, v, 1, PROXY_MAX_CONNS_MAX)) < 0)
            return rc;
        o->max_connections = (int)n;
        break;
    case PF_REFRESH: {
        char *end;
        double r = strtod(v, &end);
        if (!*v || *end || !(r >= 0.1 && r <= 0.9))
            return err_set(ERR_INVALID, "--token-refresh-ratio wants a number from 0.1 to 0.9");
        o->refresh_ratio = r;
        break;
    }
    case PF_METRICS: o->metrics_addr = v; break;
    case PF_SCOPE: o->scope = v; break;
    case PF_AUTHORITY: o->authority_host = v; break;
    case PF_IDENTITY_CA: o->identity_ca_file = v; break;
    case PF_IDENTITY_SOURCE:
        if (strcmp(v, "workload-identity") && strcmp(v, "imds"))
            return err_set(ERR_INVALID, "--identity-source wants workload-identity or imds");
        o->identity_source = v;
        break;
    case PF_CLIENT_ID: o->client_id = v; break;
    case PF_INSECURE_HTTP: o->insecure_http_authority = on; break;
    case PF_LOG_LEVEL: o->log_level = v; break;
    case PF_LOG_FORMAT: o->log_format = v; break;
    default: break;
    }
    return 0;
}

/* Splits "host:port" or "[v6]:port" into host (in buf) and port. */
static int split_listen(char *host, size_t cap, unsigned *port, const char *v)
{
    const char *colon = strrchr(v, ':'), *h = v;
    size_t hl;
    long n;
    char *end;

    if (!colon)
        return err_set(ERR_INVALID, "--listen wants ADDRESS:PORT, got \"%s\"", v);
    hl = (size_t)(colon - v);
    if (hl >= 2 && v[0] == '[' && v[hl - 1] == ']')
        h = v + 1, hl -= 2;
    n = strtol(colon + 1, &end, 10);
    if (!hl || hl >= cap || *end || !colon[1] || n < 0 || n > 65535)
        return err_set(ERR_INVALID, "--listen wants ADDRESS:PORT, got \"%s\"", v);
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (unsigned)n;
    return 0;
}

static bool loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

int proxycmd_parse(struct proxycmd_opts *out, int argc, char **argv)
{
    struct proxycmd_opts o = { .listen = "127.0.0.1:5432", .port = 5432, .login_timeout_s = 30,
                               .drain_timeout_s = 30, .max_connections = PROXY_DEFAULT_MAX_CONNS,
                               .metrics_addr = "127.0.0.1:9188", .scope = IDP_DEFAULT_SCOPE,
                               .refresh_ratio = 0.5, .log_level = "info", .log_format = "json" };
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = flag_parse(FLAGS, sizeof(FLAGS) / sizeof(FLAGS[0]), argc, argv, set_flag, &o)) != 0)
        return rc;
    if (!o.host || !*o.host)
        return err_set(ERR_INVALID, "--host is required (the PostgreSQL server)");
    if (!o.user || !*o.user)
        return err_set(ERR_INVALID, "--user is required (the role to log in as)");
    if (!o.database || !*o.database)
        return err_set(ERR_INVALID, "--database is required");
    if ((rc = split_listen(o.listen_host, sizeof(o.listen_host), &o.listen_port, o.listen)) < 0)
        return rc;
    if (!loopback(o.listen_host) && !o.client_password_file)
        return err_set(ERR_INVALID, "--listen %s is not a loopback address: set "
                                    "--client-password-file so that clients prove a password",
                       o.listen);
    if (!o.client_tls_cert != !o.client_tls_key)
        return err_set(ERR_INVALID, "--client-tls-cert and --client-tls-key go together");
    if (log_parse_level(o.log_level) < 0 || log_parse_format(o.log_format) < 0)
        return err_set(ERR_INVALID, "--log-level wants debug, info, warn or error; "
                                    "--log-format json or text");
    *out = o;
    return 0;
}

/* The keeper's mint: one http client on the keeper's thread. */
struct minter {
    struct idp *who;
    struct http_client *http;
    const char *scope;
};

static int mint_cb(void *ctx, struct idp_token *out)
{
    struct minter *m = ctx;

    return idp_mint(out, m->who, m->http, m->scope);
}

static void heartbeat(void *ctx)
{
    httpd_heartbeat(ctx);
}

/* The local password: its text, or a SCRAM verifier as PostgreSQL stores it. */
static int load_password(struct scram_secret *out, const char *path)
{
    struct sbuf *pw = NULL;
    unsigned char salt[16];
    int rc;

    if ((rc = sbuf_read_file(&pw, path, PASSWORD_FILE_MAX)) < 0)
        return rc;
    sbuf_rtrim(pw);
    if (!strncmp(sbuf_expose(pw), "SCRAM-SHA-256$", 14))
        rc = scram_secret_parse(out, sbuf_expose(pw));
    else if (RAND_bytes(salt, sizeof(salt)) != 1)
        rc = err_set(ERR_IO, "no randomness for a salt");
    else
        rc = scram_secret_make(out, pw, SCRAM_ITERATIONS, salt, sizeof(salt));
    sbuf_free(pw);
    return rc < 0 ? err_wrap(rc, "--client-password-file %s", path) : 0;
}

int proxycmd_run(const struct proxycmd_opts *o, const atomic_bool *stop)
{
    struct tls_opts up = { .ca_file = o->db_ca_file, .insecure_skip_tls_verify = o->insecure_db };
    struct tls_opts cl = { .cert_file = o->client_tls_cert, .key_file = o->client_tls_key };
    struct http_opts ho = { .tls = { .ca_file = o->identity_ca_file } };
    struct minter m = { .scope = o->scope };
    struct scram_secret secret;
    struct proxy_server_opts so = { 0 };
    struct keeper_opts ko = { .host = o->host, .port = o->port, .mint = mint_cb, .mint_ctx = &m,
                              .refresh_ratio = o->refresh_ratio };
    struct proxy_server *srv = NULL;
    struct keeper *k = NULL;
    struct httpd *h = NULL;
    struct httpd_opts hopts = { .addr = o->metrics_addr };
    struct metrics *metrics = NULL;
    struct pxmetrics *pxm = NULL;
    SSL_CTX *up_ctx = NULL, *cl_ctx = NULL;
    int rc, status = 2;

    so.listen_host = o->listen_host;
    so.listen_port = o->listen_port;
    so.upstream_host = o->host;
    so.upstream_port = o->port;
    so.role = o->user;
    so.database = o->database;
    so.upstream_verify = !o->insecure_db;
    so.login_timeout_ms = o->login_timeout_s * 1000;
    so.max_conns = o->max_connections;
    if (o->insecure_db)
        log_warn("insecure_db_tls", LOG_STR("detail", "--insecure-skip-db-tls-verify: the "
                                                      "server's certificate is not verified"));
    if ((rc = cli_identity(&m.who, o->identity_source, o->client_id, o->authority_host,
                           o->insecure_http_authority)) < 0 ||
        (rc = http_client_new(&m.http, &ho)) < 0 ||
        (rc = tls_client_ctx(&up_ctx, &up, NULL, 0)) < 0 ||
        (o->client_tls_cert && (rc = tls_server_ctx(&cl_ctx, &cl)) < 0) ||
        (o->client_password_file && (rc = load_password(&secret, o->client_password_file)) < 0))
        goto out;
    so.upstream_tls = up_ctx;
    so.client_tls = cl_ctx;
    so.password = o->client_password_file ? &secret : NULL;
    status = 1;
    if ((rc = keeper_start(&k, &ko)) < 0)
        goto out;
    so.keeper = k;
    if ((rc = proxy_server_new(&srv, &so)) < 0) {
        status = 2;
        goto out;
    }
    if (!httpd_addr_off(o->metrics_addr)) {
        metrics = metrics_new();
        if ((rc = pxmetrics_register(&pxm, metrics, proxy_server_stats(srv),
                                     keeper_stats(k))) < 0)
            goto out;
        hopts.metrics = metrics;
    }
    if ((rc = httpd_start(&h, &hopts)) < 0) {
        status = 2;
        goto out;
    }
    proxy_server_on_tick(srv, heartbeat, h);
    log_info("proxy_listening", LOG_STR("listen", o->listen), LOG_I64("port",
             proxy_server_port(srv)), LOG_STR("upstream", o->host), LOG_I64("upstream_port",
             o->port), LOG_STR("user", o->user), LOG_STR("database", o->database),
             LOG_STR("client_auth", so.password ? "scram-sha-256" : "trust"),
             LOG_STR("identity", m.who->id));
    rc = proxy_server_run(srv, stop, o->drain_timeout_s * 1000);
    status = rc < 0 ? 1 : 0;
out:
    if (rc < 0)
        log_error(status == 2 ? "invalid_configuration" : "proxy_failed", LOG_ERR(rc));
    httpd_stop(h);
    metrics_free(metrics);
    pxmetrics_free(pxm);
    proxy_server_free(srv);
    keeper_stop(k);
    if (so.password)
        scram_secret_clear(&secret);
    SSL_CTX_free(cl_ctx);
    SSL_CTX_free(up_ctx);
    http_client_free(m.http);
    idp_free(m.who);
    return status;
}
