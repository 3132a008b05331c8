/* The head of an HTTP/1.x request (RFC 9112), for a server that takes no
 * request bodies: where a head ends in the bytes read so far, and a strict
 * parse of its request line and of the header fields such a server acts on
 * (Host, Connection, Content-Length, Transfer-Encoding). Anything malformed is
 * rejected rather than guessed at. Pure: no I/O, no allocation.
 *
 *   struct hreq_scan sc = HREQ_SCAN_INIT;
 *   long n = hreq_head_len(&sc, data, len, HREQ_HEAD_MAX);   // as bytes arrive
 *   if (n > 0 && hreq_parse(&rq, data, (size_t)n) == 0) ...  // rq points into data
 */
#ifndef PGTR_HREQ_H
#define PGTR_HREQ_H

#include <stdbool.h>
#include <stddef.h>

/* The most a request head may take, blank line included. */
#define HREQ_HEAD_MAX (32u << 10)

/* How far hreq_head_len has looked: it resumes there, so bytes arriving one at
 * a time cost linear time, not quadratic. */
struct hreq_scan {
    size_t pos;   /* next byte to look at */
    size_t line;  /* where the current line starts */
    bool started; /* a non-empty line was seen (empty lines before a request are skipped) */
};

#define HREQ_SCAN_INIT { 0, 0, false }

/* Looks for the end of the request head at the start of data[0..len): returns
 * its length (> 0) through the blank line that ends it, empty lines before the
 * request line included; 0 when more bytes are needed; ERR_TOOBIG when none
 * ends within the first max bytes. Lines end in LF or CRLF. sc starts as
 * HREQ_SCAN_INIT for each head and is passed back unchanged while data only
 * grows (bytes appended, none removed). */
long hreq_head_len(struct hreq_scan *sc, const char *data, size_t len, size_t max);

struct hreq {
    const char *method; /* a token (RFC 9110), case-sensitive: "GET", "HEAD", ... */
    const char *path;   /* "/" and the rest of the target up to '?' (absolute-form: its path) */
    const char *query;  /* after the '?', "" when none */
    int minor;          /* HTTP/1.<minor> */
    bool keep_alive;    /* HTTP/1.1 or later and no "Connection: close" (HTTP/1.0 never) */
    bool has_body;      /* Content-Length above 0, or any Transfer-Encoding */
};

/* Parses head[0..len), a complete head as hreq_head_len measured it.
 * NUL-terminates the method, path and query in place (head is modified) and
 * points out's strings into head or at static text. 0; or ERR_PARSE (out
 * undefined) with a message naming what is wrong, never quoting the request:
 * a request line that is not `method SP target SP HTTP/1.x`, a target other
 * than origin-form ("/...") or absolute-form ("http://host/..."), a byte not
 * allowed where it is (control characters, bytes above 0x7E outside field
 * values, a CR not before LF), a folded or nameless header line, whitespace
 * before a colon, a Content-Length that is not digits or differs between two
 * fields, or for HTTP/1.1 a Host field missing or repeated (RFC 9112 3.2). */
int hreq_parse(struct hreq *out, char *head, size_t len);

#endif
