/* buf.c: growable byte buffer with a maximum size. */
#include "base/common.h"

#include "base/buf.h"

void buf_init(buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void buf_release(buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_reset(buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static loco_status buf_grow(buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return LOCO_ERR_LIMIT;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return LOCO_OK;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) {
            ncap = need;
            break;
        }
        ncap *= 2;
    }
    char *p = realloc(b->data, ncap);
    if (!p)
        return LOCO_ERR_NOMEM;
    b->data = p;
    b->cap = ncap;
    return LOCO_OK;
}

loco_status buf_append(buf *b, const void *p, size_t n)
{
    loco_status rc = buf_grow(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return LOCO_OK;
}

loco_status buf_appends(buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

loco_status buf_appendc(buf *b, char c)
{
    return buf_append(b, &c, 1);
}

loco_status buf_vappendf(buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return LOCO_ERR_INVALID;
    loco_status rc = buf_grow(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return LOCO_OK;
}

loco_status buf_appendf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    loco_status rc = buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

loco_status buf_append_json_str(buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    loco_status rc = buf_appendc(b, '"');
    size_t run = 0; /* start of the pending run of bytes needing no escape */
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                u[0] = '\\';
                u[1] = 'u';
                u[2] = '0';
                u[3] = '0';
                u[4] = hex[c >> 4];
                u[5] = hex[c & 15];
                u[6] = '\0';
                esc = u;
            }
        }
        if (esc) {
            rc = buf_append(b, s + run, i - run);
            if (!rc)
                rc = buf_appends(b, esc);
            run = i + 1;
        }
    }
    if (!rc)
        rc = buf_append(b, s + run, n - run);
    if (!rc)
        rc = buf_appendc(b, '"');
    return rc;
}

void buf_consume(buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *buf_take(buf *b, size_t *out_len)
{
    char *p = b->data;
    size_t n = b->len;
    if (!p) {
        p = malloc(1);
        if (!p)
            return NULL;
        p[0] = '\0';
        n = 0;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    if (out_len)
        *out_len = n;
    return p;
}

const char *buf_str(const buf *b)
{
    return b->data ? b->data : "";
}
