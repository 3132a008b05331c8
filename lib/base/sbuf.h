/* Secret bytes: tokens, federated assertions, ServiceAccount tokens, rendered
 * connection strings. The type is opaque; the one way to the bytes is
 * sbuf_expose(), so every place that touches a secret can be found with grep.
 * Freeing wipes the memory (OPENSSL_cleanse); comparison is constant-time.
 * The logging, event, status and error APIs take const char *, never this. */
#ifndef PGTR_SBUF_H
#define PGTR_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct sbuf;

/* A new empty secret buffer that may grow to max bytes. Never NULL. */
struct sbuf *sbuf_new(size_t max);
/* A new secret buffer holding a copy of data[0..len). */
struct sbuf *sbuf_from(const void *data, size_t len);
/* Wipes and frees s (NULL is fine). */
void sbuf_free(struct sbuf *s);
/* Wipes the contents, keeps the allocation. */
void sbuf_clear(struct sbuf *s);

/* 0 or ERR_TOOBIG. */
int sbuf_add(struct sbuf *s, const void *data, size_t len);
int sbuf_addstr(struct sbuf *s, const char *str);
/* Appends another secret buffer's bytes. */
int sbuf_addsb(struct sbuf *s, const struct sbuf *other);

/* The secret bytes, NUL-terminated. Owned by s; do not keep past sbuf_free. */
const char *sbuf_expose(const struct sbuf *s);
size_t sbuf_len(const struct sbuf *s);
/* Constant-time equality (lengths compared first). NULLs equal only NULLs. */
bool sbuf_eq(const struct sbuf *a, const struct sbuf *b);
/* A new buffer with the same bytes. */
struct sbuf *sbuf_dup(const struct sbuf *s);

/* Reads a whole file into *out (a new sbuf). 0; ERR_IO when it cannot be read
 * (message names the path); ERR_TOOBIG over max bytes. Trailing newlines are
 * kept: callers that need a trimmed value call sbuf_rtrim. */
int sbuf_read_file(struct sbuf **out, const char *path, size_t max);
/* Drops trailing whitespace. */
void sbuf_rtrim(struct sbuf *s);

#endif
