/* A managed Secret's spec: what its pgtoken.io/ annotations ask for.
 *
 *   pgtoken.io/host              required: a host name (labels of 1..63 [A-Za-z0-9-], not
 *                                starting or ending with '-', joined by '.', at most 253; no
 *                                trailing dot), an IPv4 address (dotted quad) or an IPv6 address
 *                                with or without brackets (no zone); kept without brackets
 *   pgtoken.io/user              required: the PostgreSQL role (UPN, group or identity name):
 *                                1..63 bytes of UTF-8, no control character (C0, DEL, C1), no
 *                                leading or trailing space
 *   pgtoken.io/database          default "postgres"; same rules as user
 *   pgtoken.io/port              default 5432; 1..5 ASCII digits, 1..65535 ("05432" is 5432)
 *   pgtoken.io/sslmode           default "require"; require | verify-ca | verify-full
 *   pgtoken.io/format            comma list of presets (spaces around items allowed), below
 *   pgtoken.io/template.KEY      Secret key KEY from a template (rot/tmpl.h); KEY is 1..253 of
 *                                [-._a-zA-Z0-9], not "." or "..*", not "pgtoken*" (any case)
 *   pgtoken.io/login-check       required | best-effort | off
 *   pgtoken.io/refresh-ratio     a decimal in (0, 1): "0.5", ".25"; at most 9 decimals
 *   pgtoken.io/restart           comma list of deployment/NAME or statefulset/NAME (NAME a
 *                                DNS-1123 subdomain), at most 16, duplicates dropped
 *   pgtoken.io/service-account   a ServiceAccount name (DNS-1123 subdomain) in the Secret's
 *                                namespace
 *   pgtoken.io/force-rotate      1..SPEC_FORCE_MAX bytes, no control character (a time stamp,
 *                                say): a value other than the last one handled
 *                                (pgtoken.io/status.force-rotate) asks for a new token now
 *                                (rot/policy.h); not part of spec_hash
 *   pgtoken.io/status.*          written by the controller; ignored here
 *
 * Outputs: with neither templates nor format, the "url" preset. With templates and no format,
 * only the templates. Presets and templates combine; a template overrides a preset key of the
 * same name. Two presets that write the same key (url and prisma: DATABASE_URL) are refused
 * unless a template gives that key. Outputs are sorted by key. The presets (U is
 * "{user}:{password}@{host}:{port}/{database}", rendered as a URL template: user, password
 * and database percent-encoded, an IPv6 host in brackets):
 *
 *   url      DATABASE_URL  postgresql://U?sslmode={sslmode}       (libpq, psycopg, asyncpg)
 *            password      {password}
 *   prisma   DATABASE_URL  for node-postgres (Prisma 7's @prisma/adapter-pg): version 8 takes
 *                          sslmode=require as verify-full unless uselibpqcompat=true, 9 will
 *                          take libpq's meaning; these values mean the same in both:
 *                          require      postgresql://U?sslmode=require&uselibpqcompat=true
 *                          verify-ca    postgresql://U?sslmode=verify-full  (node-postgres
 *                          verify-full  checks a chain without the host only against a CA file
 *                                       named in the URL, which the preset cannot know)
 *   prefect  PREFECT_SERVER_DATABASE_CONNECTION_URL (Prefect 3 reads it before the older
 *                          PREFECT_API_DATABASE_CONNECTION_URL); SQLAlchemy passes URL
 *                          parameters to asyncpg.connect, which has no sslmode, so TLS is
 *                          asyncpg's ssl=require or Prefect's TLS settings (a context from the
 *                          system CA store, or its ..._TLS_CA_FILE, that checks the chain):
 *                          require      postgresql+asyncpg://U?ssl=require
 *                          verify-*     postgresql+asyncpg://U
 *            PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_ENABLED
 *                          "false" for require, else "true"
 *            PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_CHECK_HOSTNAME
 *                          "true" for verify-full, else "false"
 *            connection-string  the same URL, under the key Prefect's Helm chart
 *                          (prefect-server) reads from an existing Secret
 *   pgenv    PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD PGSSLMODE: the raw values (for envFrom;
 *            an IPv6 host without brackets)
 *   pgpass   pgpass        "{host}:{port}:{database}:{user}:{password}\n", a .pgpass line:
 *                          each ':' and backslash in a field escaped by a backslash
 *   jdbc     JDBC_URL      jdbc:postgresql://{host}:{port}/{database}?sslmode={sslmode}
 *                          (pgJDBC decodes the percent-encoded database)
 *            JDBC_USER     {user}
 *            JDBC_PASSWORD {password}
 *
 * Every value is at most SPEC_VALUE_MAX bytes of UTF-8. Any other pgtoken.io/ annotation is
 * refused. Messages name the annotation and never quote a host, user, database, template or
 * service account; they quote only a short keyword-like value of sslmode, login-check or format
 * (so a typo is shown) and a bad template placeholder (rot/tmpl.h). */
#ifndef PGTR_SPEC_H
#define PGTR_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "base/sbuf.h"
#include "rot/tmpl.h"

struct kube_secret;

#define SPEC_PREFIX "pgtoken.io/"
#define SPEC_VALUE_MAX 4096   /* bytes of one annotation value (templates included) */
#define SPEC_NAME_MAX 63      /* bytes of a user or database name (NAMEDATALEN - 1) */
#define SPEC_KEY_MAX 253      /* bytes of a Secret data key */
#define SPEC_OUTPUTS_MAX 32   /* template annotations per Secret */
#define SPEC_RESTARTS_MAX 16  /* entries of pgtoken.io/restart */
#define SPEC_FORCE_MAX 128    /* bytes of pgtoken.io/force-rotate */

enum spec_sslmode { SPEC_SSL_REQUIRE, SPEC_SSL_VERIFY_CA, SPEC_SSL_VERIFY_FULL };

/* SPEC_LOGIN_UNSET: the annotation is absent; the controller's default applies. */
enum spec_login_check {
    SPEC_LOGIN_UNSET, SPEC_LOGIN_REQUIRED, SPEC_LOGIN_BEST_EFFORT, SPEC_LOGIN_OFF
};

enum spec_restart_kind { SPEC_RESTART_DEPLOYMENT, SPEC_RESTART_STATEFULSET };

/* What spec_render does to each value before the template sees it (after it, a URL
 * template still percent-encodes). Only presets set one; templates get SPEC_ESCAPE_NONE. */
enum spec_escape {
    SPEC_ESCAPE_NONE,
    SPEC_ESCAPE_PGPASS, /* a backslash before each ':' and backslash (a .pgpass field) */
};

/* Every preset name, for messages. */
#define SPEC_FORMATS "url, prisma, prefect, pgenv, pgpass, jdbc"

struct spec_output {
    char *key;          /* the Secret data key */
    struct tmpl *tmpl;  /* owned by the spec */
    enum spec_escape escape;
};

struct spec_restart {
    enum spec_restart_kind kind;
    char *name;
};

struct spec {
    char *host;                 /* an IPv6 address is kept without brackets */
    unsigned port;
    char *user;
    char *database;
    enum spec_sslmode sslmode;
    struct spec_output *outputs; /* n_outputs >= 1, sorted by key, keys unique */
    size_t n_outputs;
    enum spec_login_check login_check;
    double refresh_ratio;       /* 0 when unset (the controller's default applies) */
    struct spec_restart *restarts; /* in the order written, duplicates dropped */
    size_t n_restarts;
    char *service_account;      /* NULL when unset */
    char *force_rotate;         /* pgtoken.io/force-rotate; NULL when unset */
};

#define SPEC_INIT { 0 }

void spec_init(struct spec *s);

/* Reads the pgtoken.io/ annotations of a Secret (metadata.annotations, an object of strings;
 * NULL means none). out must be initialised (SPEC_INIT) and is set only on success; release it
 * with spec_release. 0, or ERR_INVALID with a message naming the annotation ("pgtoken.io/port:
 * must be a number from 1 to 65535"): a missing required annotation, a bad or oversized value,
 * an unknown pgtoken.io/ annotation, a template that does not compile or that renders an
 * invalid URL with this spec's values, or outputs none of which has {password}. */
int spec_parse(struct spec *out, const cJSON *annotations);

/* As spec_parse, from the annotations a cached Secret kept (kube/secret.h), in their order. */
int spec_parse_secret(struct spec *out, const struct kube_secret *secret);

/* Frees everything s owns and leaves it as SPEC_INIT. */
void spec_release(struct spec *s);

/* A stable fingerprint of everything that changes the written values: host, port, database,
 * user, sslmode, the outputs (keys, template texts and escapes) and the service account (it
 * changes the principal the token is minted for). 16 hex characters of SHA-256 and a NUL into
 * out. */
void spec_hash(char out[17], const struct spec *s);

/* Fills *out with s's values and password (borrowed: both must outlive *out). */
void spec_values(struct tmpl_values *out, const struct spec *s, const struct sbuf *password);

/* Renders output i with password, applying its escape. 0: *out is a new secret buffer (the
 * caller frees it); ERR_TOOBIG over TMPL_OUT_MAX. */
int spec_render(struct sbuf **out, const struct spec *s, size_t i, const struct sbuf *password);

/* "require", "verify-ca", "verify-full". */
const char *spec_sslmode_name(enum spec_sslmode m);
/* "", "required", "best-effort", "off". */
const char *spec_login_check_name(enum spec_login_check c);
/* "deployment", "statefulset". */
const char *spec_restart_kind_name(enum spec_restart_kind k);

#endif
