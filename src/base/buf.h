/* buf.h: growable NUL-terminated byte buffer with a per-instance maximum size.
 * Every buffer fed by untrusted bytes is given a named limit at init. */
#ifndef LOCO_BUF_H
#define LOCO_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "base/status.h"

typedef struct {
    char *data;   /* NUL-terminated when non-NULL; may contain NULs before len */
    size_t len;   /* bytes used, excluding the terminator */
    size_t cap;   /* bytes allocated */
    size_t max;   /* appends that would make len exceed max fail with LOCO_ERR_LIMIT */
} buf;

#define BUF_UNLIMITED ((size_t)-1)

/* Initialises an empty buffer (allocates nothing). */
void buf_init(buf *b, size_t max);
/* Frees the storage and leaves b empty and reusable with the same max. */
void buf_release(buf *b);
/* Sets len to 0, keeping storage. */
void buf_reset(buf *b);
/* Appends n bytes; LOCO_ERR_LIMIT past max, LOCO_ERR_NOMEM on allocation failure.
 * Invalidates pointers into b->data. */
loco_status buf_append(buf *b, const void *p, size_t n);
loco_status buf_appends(buf *b, const char *s);
loco_status buf_appendc(buf *b, char c);
loco_status buf_appendf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
loco_status buf_vappendf(buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends s as a JSON string literal (quotes included), escaping as RFC 8259 says. */
loco_status buf_append_json_str(buf *b, const char *s, size_t n);
/* Removes the first n bytes (n <= len). */
void buf_consume(buf *b, size_t n);
/* Hands the storage to the caller (free() it); b becomes empty. Never returns NULL
 * unless allocation fails: an empty buffer yields an allocated "". */
char *buf_take(buf *b, size_t *out_len);
/* Returns b->data or "" when nothing was ever appended; borrowed. */
const char *buf_str(const buf *b);

#endif
