/* Templates for Secret values: "postgresql://{user}:{password}@{host}:{port}/{database}".
 *
 * Placeholders: {user} {password} {host} {port} {database} {sslmode}, each optionally with a
 * modifier, {user:raw} or {user:url}. "{{" and "}}" are literal braces. Anything else between
 * braces ("{ user }", "{pass}", "{user:x}", nested or unclosed braces) and a single '}' are
 * refused when the template is compiled.
 *
 * Encoding. A template whose literal text before its first placeholder contains "://" (or,
 * with no placeholder, whose text does) is a URL template. Without a modifier:
 *   URL template     {user} {password} {database} percent-encoded (all but A-Z a-z 0-9 - . _ ~);
 *                    {host} as-is, an IPv6 address in brackets; {port} {sslmode} as-is.
 *   other templates  every value as-is.
 * ":url" asks for the URL form in any template, ":raw" for the value as-is in any template.
 * {port} and {sslmode} are never encoded (their values need none); {host} is never
 * percent-encoded: its URL form only adds brackets around an IPv6 address.
 *
 * Values are substituted once: a value that looks like a placeholder is copied, not expanded.
 * Compiling a URL template also renders it with sample values and checks that the result is a
 * URI (see tmpl_check). Error messages name the placeholder or the problem, never a value. */
#ifndef PGTR_TMPL_H
#define PGTR_TMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/sbuf.h"

#define TMPL_TEXT_MAX 4096            /* bytes of template text */
#define TMPL_OUT_MAX (64 * 1024)      /* bytes of one rendered value */
#define TMPL_SAMPLE_PASSWORD_LEN 8192 /* the token size tmpl_check assumes */

enum tmpl_var { TMPL_USER, TMPL_PASSWORD, TMPL_HOST, TMPL_PORT, TMPL_DATABASE, TMPL_SSLMODE };

/* What the placeholders stand for. Strings are NUL-terminated; a NULL for a placeholder the
 * template uses is ERR_INVALID at render time. */
struct tmpl_values {
    const char *user;
    const struct sbuf *password; /* the token */
    const char *host;            /* an IPv6 address without brackets */
    unsigned port;
    const char *database;
    const char *sslmode;
};

struct tmpl;

/* Compiles text (at most TMPL_TEXT_MAX bytes; the caller checks it is UTF-8). Control
 * characters other than tab, CR and LF are refused. 0: *out is the template, which the caller
 * frees with tmpl_free. ERR_INVALID with a message naming the bad placeholder or brace and its
 * byte offset, or saying why the URL would be invalid; the caller adds the annotation name. */
int tmpl_compile(struct tmpl **out, const char *text);

/* Frees t (NULL is fine). */
void tmpl_free(struct tmpl *t);

/* Appends t rendered with v to out, a secret buffer whose max caps the output (TMPL_OUT_MAX
 * is the usual choice). 0; ERR_TOOBIG when out would pass its max; ERR_INVALID when v lacks
 * a value t uses. On error out may hold part of the output: free or clear it. */
int tmpl_render(struct sbuf *out, const struct tmpl *t, const struct tmpl_values *v);

/* Renders t with v into a scratch buffer and checks the result: at most TMPL_OUT_MAX bytes,
 * and for a URL template a URI: a scheme "[a-z][a-z0-9+.-]*" (a compound one such as
 * "jdbc:postgresql" too) then "://"; only URI characters (no space, control character,
 * non-ASCII byte, quote, "<>\^`{|}"), '%' followed by two hex digits; an authority
 * [userinfo@]host[:port] with at most one '@', a non-empty host (a name or a bracketed IPv6
 * address) and a port of 1..65535 if any; '[' and ']' only around an IPv6 host.
 * v->password may be NULL: a JWT-shaped sample token of TMPL_SAMPLE_PASSWORD_LEN bytes is assumed.
 * 0 or ERR_INVALID (the message never holds a value). */
int tmpl_check(const struct tmpl *t, const struct tmpl_values *v);

/* Whether t is a URL template (see above). */
bool tmpl_is_url(const struct tmpl *t);
/* Whether t has a placeholder for var. */
bool tmpl_uses(const struct tmpl *t, enum tmpl_var var);
/* The text t was compiled from; owned by t. */
const char *tmpl_text(const struct tmpl *t);

#endif
