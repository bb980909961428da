/* utf8.h: the one home of UTF-8 rules (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF): sequence lengths, validation, decoding, encoding, lossy repair with U+FFFD
 * and cutting on a character boundary. Pure functions; the small ones are inline because the
 * tokenizer's pre-tokenizer and streaming decoder call them once per byte. */
#ifndef LOCO_UTF8_H
#define LOCO_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/status.h"

/* What utf8_decode returns for a byte that does not start a valid, complete sequence. */
#define UTF8_INVALID 0xFFFFFFFEu
/* U+FFFD REPLACEMENT CHARACTER, encoded (3 bytes). */
#define UTF8_REPLACEMENT "\xEF\xBF\xBD"

/* True for a continuation byte (10xxxxxx). */
static inline bool utf8_is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* Length of the sequence lead byte c starts (1 to 4), or 0 for a byte that can start none
 * (a continuation byte, C0, C1 or F5..FF). */
static inline size_t utf8_lead_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0;
}

/* True when c may follow lead byte `lead` as the second byte of a sequence. The range is
 * narrower after E0 (no overlongs), ED (no surrogates), F0 (no overlongs) and F4 (nothing
 * above U+10FFFF); after any other lead it is 80..BF. */
static inline bool utf8_second_ok(unsigned char lead, unsigned char c)
{
    if (lead == 0xE0)
        return c >= 0xA0 && c <= 0xBF;
    if (lead == 0xED)
        return c >= 0x80 && c <= 0x9F;
    if (lead == 0xF0)
        return c >= 0x90 && c <= 0xBF;
    if (lead == 0xF4)
        return c >= 0x80 && c <= 0x8F;
    return utf8_is_cont(c);
}

/* Length of the valid, complete sequence at s[0..n) (n >= 1), or 0 when the bytes there are
 * invalid or the sequence is cut short by n. */
static inline size_t utf8_seq_len(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = utf8_lead_len(u[0]);
    if (len <= 1)
        return len;
    if (n < len || !utf8_second_ok(u[0], u[1]))
        return 0;
    for (size_t i = 2; i < len; i++) {
        if (!utf8_is_cont(u[i]))
            return 0;
    }
    return len;
}

/* Decodes the code point at s[0..n) (n >= 1) and sets *out_len to its byte length. A byte
 * that does not start a valid, complete sequence gives UTF8_INVALID with *out_len 1. */
static inline uint32_t utf8_decode(const char *s, size_t n, size_t *out_len)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[0];
    *out_len = 1;
    if (c < 0x80)
        return c;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07u, min = 0x10000;
    } else {
        return UTF8_INVALID;
    }
    if (len > n)
        return UTF8_INVALID;
    for (size_t i = 1; i < len; i++) {
        if (!utf8_is_cont(u[i]))
            return UTF8_INVALID;
        cp = (cp << 6) | (u[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return UTF8_INVALID;
    *out_len = len;
    return cp;
}

/* Writes the UTF-8 form of cp (<= 0x10FFFF, not checked) into out; returns its length. */
static inline size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* True when s[0..n) is valid UTF-8. */
bool utf8_valid(const char *s, size_t n);

/* Length of the longest prefix of s[0..n) that does not end inside a UTF-8 sequence: a lead
 * byte in the last three bytes whose sequence needs more bytes than are left is cut off with
 * what follows it (for holding back the tail of a stream until the next chunk). */
size_t utf8_complete_len(const char *s, size_t n);

/* Appends s[0..n) to b with every byte that does not start a valid, complete sequence
 * replaced by U+FFFD (one per byte: "\xE2\x82" becomes two). Valid input is copied as is.
 * Returns LOCO_OK or buf_append's error. */
loco_status utf8_append_lossy(buf *b, const char *s, size_t n);

#endif
