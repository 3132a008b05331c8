#include "pg/classify.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/sbuf.h"
#include "base/banned.h"

#define PG_MSG_SCAN_MAX 16384   /* libpq messages are short; never scan more than this */
#define PG_REDACT_MIN_PART 16   /* token parts at least this long are redacted on their own */

static const char REDACTED[] = "[REDACTED]";

const char *pg_login_name(enum pg_login login)
{
    switch (login) {
    case PG_LOGIN_OK:
        return "ok";
    case PG_LOGIN_REJECTED:
        return "rejected";
    case PG_LOGIN_UNREACHABLE:
        return "unreachable";
    case PG_LOGIN_TLS:
        return "tls";
    case PG_LOGIN_ERROR:
        break;
    }
    return "error";
}

/* ---- results and their messages ---------------------------------------------------------- */

void classify_result_init(struct pg_check_result *out)
{
    memset(out, 0, sizeof(*out));
    out->login = PG_LOGIN_ERROR;
}

void classify_set_message(struct pg_check_result *out, const char *s, size_t n)
{
    const size_t cap = sizeof(out->message) - 1;
    size_t len = 0;
    bool truncated = false;

    while (n && (*s == ' ' || (unsigned char)*s < 0x20))
        s++, n--;
    for (size_t i = 0; i < n; i++) {
        char ch = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
        if (ch == ' ' && len && out->message[len - 1] == ' ')
            continue;
        if (len == cap) {
            truncated = true;
            break;
        }
        out->message[len++] = ch;
    }
    while (len && out->message[len - 1] == ' ')
        len--;
    if (truncated) {
        len = cap - 3;
        while (len && ((unsigned char)out->message[len] & 0xc0) == 0x80)
            len--; /* do not end inside a UTF-8 sequence */
        memcpy(out->message + len, "...", 3);
        len += 3;
    }
    out->message[len] = '\0';
}

void classify_set_messagef(struct pg_check_result *out, const char *fmt, ...)
{
    char tmp[PG_CHECK_MESSAGE_MAX * 2];
    va_list ap;

    va_start(ap, fmt);
    if (vsnprintf(tmp, sizeof(tmp), fmt, ap) < 0)
        tmp[0] = '\0';
    va_end(ap);
    classify_set_message(out, tmp, strnlen(tmp, sizeof(tmp)));
}

/* ---- classification ------------------------------------------------------------------------ */

/* Copies msg into b with every occurrence of the token, and of each of its dot-separated parts
 * long enough to matter (a JWT's header, payload, signature), replaced by "[REDACTED]".
 * libpq and PostgreSQL never echo a password; this makes sure a peer that does cannot get it
 * into a status, an event or a log. */
static void redact_copy(struct buf *b, const char *msg, size_t len, const struct sbuf *token)
{
    const char *tok = token ? sbuf_expose(token) : NULL;
    size_t tok_len = token ? sbuf_len(token) : 0;

    for (size_t i = 0; i < len;) {
        size_t skip = 0;
        if (tok_len) {
            if (tok_len <= len - i && memcmp(msg + i, tok, tok_len) == 0) {
                skip = tok_len;
            } else {
                for (size_t p = 0; p < tok_len && !skip;) {
                    const char *dot = memchr(tok + p, '.', tok_len - p);
                    size_t plen = (dot ? (size_t)(dot - tok) : tok_len) - p;
                    if (plen >= PG_REDACT_MIN_PART && plen <= len - i &&
                        memcmp(msg + i, tok + p, plen) == 0)
                        skip = plen;
                    p += plen + 1;
                }
            }
        }
        if (skip) {
            buf_addstr(b, REDACTED);
            i += skip;
        } else {
            buf_addch(b, msg[i++]);
        }
    }
}

static bool starts_line(const char *base, const char *p)
{
    return p == base || p[-1] == '\n';
}

/* libpq reports each address it tried as "connection to server at ... failed: ..."; the last
 * report is the outcome. */
static const char *last_attempt(const char *msg)
{
    const char *seg = msg, *p = msg;

    while ((p = strstr(p, "connection to server ")) != NULL) {
        if (starts_line(msg, p))
            seg = p;
        p++;
    }
    return seg;
}

static bool is_sqlstate_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
}

/* With PQERRORS_VERBOSE a server error reads "SEVERITY:  XXXXX: text" (the severity may be
 * translated, the code never is). Returns the code's offset in line, or -1. */
static long find_sqlstate(const char *line, size_t len)
{
    for (size_t i = 0; i + 10 <= len; i++) {
        if (line[i] != ':' || line[i + 1] != ' ' || line[i + 2] != ' ')
            continue;
        bool ok = true;
        for (size_t k = 0; k < 5 && ok; k++)
            ok = is_sqlstate_char(line[i + 3 + k]);
        if (ok && line[i + 8] == ':' && line[i + 9] == ' ')
            return (long)(i + 3);
    }
    return -1;
}

/* Anything between double quotes (host, role and database names as libpq and PostgreSQL quote
 * them) is dropped, so that a name can never look like one of the phrases below. */
static void mask_quoted(struct buf *b, const char *s)
{
    bool in = false;

    for (; *s; s++) {
        if (*s == '"') {
            in = !in;
            buf_addch(b, '"');
        } else if (!in) {
            buf_addch(b, *s);
        }
    }
}

static bool has_any(const char *s, const char *const *phrases)
{
    for (; *phrases; phrases++)
        if (strstr(s, *phrases))
            return true;
    return false;
}

/* The server went away mid-conversation: transient, like a refused connection. */
static const char *const LOST[] = {
    "server closed the connection unexpectedly",
    "SSL connection has been closed unexpectedly",
    NULL,
};

/* libpq 15's TLS failures (fe-secure-openssl.c, fe-connect.c), checked on the masked text. */
static const char *const TLS[] = {
    "SSL error",                                   /* certificate verify failed, alerts, ... */
    "SSL SYSCALL error",                           /* handshake cut short (EOF, reset) */
    "server does not support SSL",                 /* server answered 'N' to SSLRequest */
    "received invalid response to SSL negotiation",/* not a PostgreSQL server */
    "received unencrypted data after SSL response",
    "server sent an error response during SSL exchange",
    "could not send SSL negotiation packet",
    "could not establish SSL connection",
    "could not create SSL context",
    "server certificate for",                      /* host name mismatch */
    "root certificate file",                       /* CA file missing */
    "could not read root certificate file",
    "could not get server's host name from server certificate",
    "SSL certificate's",
    "certificate contains IP address",
    "could not convert certificate's IP address",
    "could not set minimum SSL protocol version",
    "could not set maximum SSL protocol version",
    "SSL protocol version",
    "could not set SSL Server Name Indication",
    "host name must be specified for a verified SSL connection",
    "SSL error code",
    "no SSL error reported",
    "could not determine server certificate signature algorithm",
    "could not generate peer certificate hash",
    "channel binding required, but SSL not in use",
    NULL,
};

static const char *const UNREACHABLE[] = {
    "could not translate host name",               /* DNS */
    "Is the server running on that host",          /* libpq's hint after any connect() error */
    "timeout expired",
    "Connection refused",
    "Connection timed out",
    "Connection reset by peer",
    "No route to host",
    "Network is unreachable",
    "Network is down",
    "Host is down",
    "could not connect to server",
    NULL,
};

/* Server refusals in words, for peers that send no SQLSTATE, and Azure's token messages
 * ("The access token has expired...", "...does not have a valid audience claim...", "An error
 * occurred while validating the access token...") whatever SQLSTATE they come with. */
static const char *const REFUSED_TOKEN[] = {
    "access token",
    "authentication failed for user",
    NULL,
};

static const char *const REFUSED[] = {
    "authentication failed for user",
    "access token",
    "no pg_hba.conf entry",
    "pg_hba.conf rejects connection",
    "is not permitted to log in",
    "permission denied for database",
    "\" does not exist", /* role "x" does not exist (database ones carry a SQLSTATE) */
    NULL,
};

static enum pg_login classify_text(const char *masked, const char *sqlstate)
{
    if (*sqlstate) {
        if (strncmp(sqlstate, "28", 2) == 0 || strcmp(sqlstate, "42501") == 0)
            return PG_LOGIN_REJECTED;
        return has_any(masked, REFUSED_TOKEN) ? PG_LOGIN_REJECTED : PG_LOGIN_ERROR;
    }
    if (has_any(masked, LOST))
        return PG_LOGIN_UNREACHABLE;
    if (has_any(masked, TLS))
        return PG_LOGIN_TLS;
    if (has_any(masked, UNREACHABLE))
        return PG_LOGIN_UNREACHABLE;
    if (has_any(masked, REFUSED))
        return PG_LOGIN_REJECTED;
    return PG_LOGIN_ERROR;
}

void pg_check_classify(struct pg_check_result *out, const char *libpq_message,
                       const struct sbuf *token)
{
    struct buf clean = BUF_INIT(PG_MSG_SCAN_MAX * 2), masked = BUF_INIT(PG_MSG_SCAN_MAX * 2);
    struct buf shown = BUF_INIT(PG_MSG_SCAN_MAX * 2);
    const char *msg = libpq_message ? libpq_message : "";
    const char *seg, *eol, *line;
    size_t first_len;
    long code;

    classify_result_init(out);
    redact_copy(&clean, msg, strnlen(msg, PG_MSG_SCAN_MAX), token);
    seg = last_attempt(buf_str(&clean));
    eol = strchr(seg, '\n');
    first_len = eol ? (size_t)(eol - seg) : strlen(seg);

    /* The first line without the SQLSTATE, then the server's DETAIL and HINT lines (the
     * LOCATION line and libpq's indented hints add nothing for a person). */
    code = find_sqlstate(seg, first_len);
    if (code >= 0) {
        memcpy(out->sqlstate, seg + code, 5);
        out->sqlstate[5] = '\0';
        buf_add(&shown, seg, (size_t)code);
        buf_add(&shown, seg + code + 7, first_len - (size_t)code - 7);
    } else {
        buf_add(&shown, seg, first_len);
    }
    for (line = eol ? eol + 1 : NULL; line && *line; line = eol ? eol + 1 : NULL) {
        eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (strncmp(line, "DETAIL:  ", 9) == 0 || strncmp(line, "HINT:  ", 7) == 0) {
            buf_addch(&shown, ' ');
            buf_add(&shown, line, len);
        }
    }
    if (shown.len == 0)
        buf_addstr(&shown, "no error message from libpq");
    classify_set_message(out, buf_str(&shown), shown.len);

    mask_quoted(&masked, seg);
    out->login = classify_text(buf_str(&masked), out->sqlstate);

    buf_release(&shown);
    buf_release(&masked);
    buf_release(&clean);
}
