/* Percent-encoding (RFC 3986). Everything but the unreserved characters
 * (ALPHA DIGIT - . _ ~) is encoded, which is valid in every URI component
 * (userinfo, path segment, query value), so one function serves them all. */
#ifndef PGTR_URLENC_H
#define PGTR_URLENC_H

#include <stddef.h>

#include "base/buf.h"
#include "base/sbuf.h"

int url_encode(struct buf *b, const char *s, size_t len);
/* Same, into a secret buffer (a password or a URL that will hold one). */
int url_encode_sb(struct sbuf *out, const char *s, size_t len);
/* Decodes %XX sequences of s[0..len) into b; ERR_PARSE on a bad escape. */
int url_decode(struct buf *b, const char *s, size_t len);

#endif
