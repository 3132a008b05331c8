/* A growable byte buffer with a maximum size fixed at creation. Its bytes are
 * always NUL-terminated (the NUL is not counted in len). For bytes that are
 * secret use struct sbuf instead. */
#ifndef PGTR_BUF_H
#define PGTR_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *ptr;
    size_t len;
    size_t cap;
    size_t max; /* appends that would pass it fail with ERR_TOOBIG */
};

#define BUF_INIT(max_) { NULL, 0, 0, (max_) }

void buf_init(struct buf *b, size_t max);
/* Frees the bytes and leaves b empty with the same max. */
void buf_release(struct buf *b);
/* Empties b, keeping its allocation. */
void buf_reset(struct buf *b);

/* 0, or ERR_TOOBIG (b unchanged) when the result would exceed b->max. */
int buf_add(struct buf *b, const void *data, size_t len);
int buf_addstr(struct buf *b, const char *s);
int buf_addch(struct buf *b, char c);
int buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vaddf(struct buf *b, const char *fmt, va_list ap);

/* The bytes as a C string ("" for an empty buffer); owned by b. */
const char *buf_str(const struct buf *b);
/* Hands the bytes to the caller (free()) and leaves b empty. */
char *buf_detach(struct buf *b, size_t *len);
/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);

#endif
