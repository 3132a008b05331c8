/* Base64 (RFC 4648): the standard alphabet with padding (Kubernetes Secret
 * data) and the URL-safe alphabet without padding (JWT). */
#ifndef PGTR_B64_H
#define PGTR_B64_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/sbuf.h"

/* Bytes needed to decode len characters (an upper bound). */
#define B64_DECODED_MAX(len) (((len) / 4 + 1) * 3)

/* Decodes src[0..len) into dst (at least B64_DECODED_MAX(len) bytes).
 * url selects the URL-safe alphabet; padding is optional in both. Whitespace
 * is not allowed. 0 and *dst_len set, or ERR_PARSE. */
int b64_decode(unsigned char *dst, size_t *dst_len, const char *src, size_t len, bool url);
/* Decodes into a new secret buffer (for Secret values). */
int b64_decode_sb(struct sbuf **out, const char *src, size_t len);

/* Whether src[0..len) is the standard, padded encoding of some bytes, exactly
 * as b64_encode would write it: what b64_decode accepts with url false and
 * the padding present, without decoding. */
bool b64_canonical(const char *src, size_t len);

/* Appends the standard, padded encoding of data to b (or to a secret buffer). */
int b64_encode(struct buf *b, const void *data, size_t len);
int b64_encode_sb(struct sbuf *s, const void *data, size_t len);

#endif
