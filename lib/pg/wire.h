/* PostgreSQL's frontend/backend protocol 3.0, as far as a proxy speaks it
 * itself: the untyped packets a client opens with (SSLRequest, GSSENCRequest,
 * CancelRequest, StartupMessage), the framing of typed messages, and the few
 * messages a proxy reads or writes during a login. Nothing here does I/O:
 * parsers read bytes already received and point into them; builders append
 * whole messages to a buf (a password message to an sbuf). Integers on the
 * wire are big-endian; every length counts itself but not a type byte.
 *
 *   size_t n;
 *   if ((rc = pgw_frame(&n, in, in_len, false, PGW_FIRST_MAX)) <= 0)
 *       return rc;                       (0: not all here yet)
 *   if ((rc = pgw_first_parse(&first, in, n)) < 0)
 *       ...                              (ERR_PARSE, the message says why)
 */
#ifndef PGTR_WIRE_H
#define PGTR_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/sbuf.h"

/* The codes in place of a protocol version that make a first packet a request. */
#define PGW_CODE_CANCEL 80877102u
#define PGW_CODE_SSL 80877103u
#define PGW_CODE_GSSENC 80877104u
#define PGW_PROTO_3_0 0x00030000u
/* The longest first packet the server reads (MAX_STARTUP_PACKET_LENGTH). */
#define PGW_FIRST_MAX 10000u
/* The most parameters a StartupMessage may carry here (libpq sends under ten). */
#define PGW_PARAMS_MAX 48

/* Authentication request codes (the int32 after an 'R'). */
enum {
    PGW_AUTH_OK = 0,
    PGW_AUTH_CLEARTEXT = 3,
    PGW_AUTH_MD5 = 5,
    PGW_AUTH_SASL = 10,
    PGW_AUTH_SASL_CONTINUE = 11,
    PGW_AUTH_SASL_FINAL = 12,
};

enum pgw_kind { PGW_STARTUP = 1, PGW_SSL, PGW_GSSENC, PGW_CANCEL };

struct pgw_param {
    const char *name, *value; /* NUL-terminated, inside the packet */
};

/* A client's first packet. */
struct pgw_first {
    enum pgw_kind kind;
    uint32_t version;  /* PGW_STARTUP: major << 16 | minor (the major is 3) */
    uint32_t pid, key; /* PGW_CANCEL: the BackendKeyData the client was given */
    size_t nparams;    /* PGW_STARTUP */
    struct pgw_param params[PGW_PARAMS_MAX];
};

/* Finds where the packet at data[0..len) ends: a typed message ('X' then an
 * int32 length) when typed, else an untyped one (an int32 length first).
 * 1: whole, *total is its size in bytes (type byte included); 0: more bytes
 * are needed (*total, when the length is already known, is the size it will
 * have; else 0); ERR_PARSE: a length under 4 (or, untyped, under 8);
 * ERR_TOOBIG: a total over max (the message names both). */
int pgw_frame(size_t *total, const void *data, size_t len, bool typed, size_t max);

/* Parses a whole first packet (data[0..len), len as pgw_frame found it). 0, or
 * ERR_PARSE naming what is wrong: a request of the wrong size, an unknown
 * protocol (only 3.x is spoken), a parameter not NUL-terminated, no final NUL,
 * a name twice, more than PGW_PARAMS_MAX. out's strings point
 * into data. */
int pgw_first_parse(struct pgw_first *out, const void *data, size_t len);
/* The value of a StartupMessage parameter, NULL when absent. */
const char *pgw_first_param(const struct pgw_first *f, const char *name);

/* A typed message, as pgw_frame found it whole. */
struct pgw_msg {
    char type;
    const unsigned char *body; /* after the length */
    size_t len;                /* of body */
};
/* Splits a whole typed message (data[0..total)) into m. */
void pgw_msg_split(struct pgw_msg *m, const void *data, size_t total);

/* Readers of one typed message's body. Each returns 0 or ERR_PARSE (the
 * message names the message type). */
/* 'R': the request code, and in *data and *data_len what follows it (SASL payloads). */
int pgw_read_auth(uint32_t *code, const unsigned char **data, size_t *data_len,
                  const struct pgw_msg *m);
/* 'K' */
int pgw_read_backend_key(uint32_t *pid, uint32_t *key, const struct pgw_msg *m);
/* 'Z': 'I', 'T' or 'E'. */
int pgw_read_ready(char *status, const struct pgw_msg *m);
/* 'S': the name and value, pointing into the body. */
int pgw_read_param_status(const char **name, const char **value, const struct pgw_msg *m);
/* 'E' or 'N': checks the fields are well-formed; then pgw_field finds one. */
int pgw_read_fields(const struct pgw_msg *m);
/* The value of field code ('S', 'V', 'C', 'M', 'D', ...) of a checked 'E' or
 * 'N', NULL when absent. */
const char *pgw_field(const struct pgw_msg *m, char code);
/* A client's SASLInitialResponse ('p' in a SASL exchange): the mechanism and
 * the client's first message (*data NULL when it sent none: length -1). */
int pgw_read_sasl_initial(const char **mech, const unsigned char **data, size_t *data_len,
                          const struct pgw_msg *m);

/* Builders. Each appends one whole message: 0 or ERR_TOOBIG from the buf. */
/* Untyped: the StartupMessage of protocol 3.0 with these parameters. */
int pgw_put_startup(struct buf *out, const struct pgw_param *params, size_t n);
int pgw_put_ssl_request(struct buf *out);
int pgw_put_cancel(struct buf *out, uint32_t pid, uint32_t key);
/* 'E' with severity (also as the untranslated 'V'), SQLSTATE, message and,
 * when not NULL, detail. Texts are cut at 1 KiB each. */
int pgw_put_error(struct buf *out, const char *severity, const char *sqlstate, const char *msg,
                  const char *detail);
/* 'R' with code and data[0..len). */
int pgw_put_auth(struct buf *out, uint32_t code, const void *data, size_t len);
/* 'S', 'K', 'Z' */
int pgw_put_param_status(struct buf *out, const char *name, const char *value);
int pgw_put_backend_key(struct buf *out, uint32_t pid, uint32_t key);
int pgw_put_ready(struct buf *out, char status);
/* 'v': the newest minor version spoken here and the options not recognised. */
int pgw_put_negotiate(struct buf *out, uint32_t minor, const char *const *options, size_t n);
/* 'p' holding a password (a token): a new sbuf in *out. 0 or ERR_TOOBIG. */
int pgw_put_password(struct sbuf **out, const struct sbuf *password);

#endif
