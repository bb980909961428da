/* str.c: checked parsing and small string helpers. */
#include "base/common.h"

#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <pthread.h>

#include "base/os.h"
#include "base/str.h"

loco_status str_parse_long(const char *s, long min, long max, long *out_v)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return LOCO_ERR_INVALID;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return LOCO_ERR_INVALID;
    *out_v = v;
    return LOCO_OK;
}

loco_status str_parse_double(const char *s, double min, double max, double *out_v)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return LOCO_ERR_INVALID;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max)
        return LOCO_ERR_INVALID;
    *out_v = v;
    return LOCO_OK;
}

loco_status str_parse_bool(const char *s, bool *out_v)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(yes); i++) {
        if (!strcasecmp(s, yes[i])) {
            *out_v = true;
            return LOCO_OK;
        }
        if (!strcasecmp(s, no[i])) {
            *out_v = false;
            return LOCO_OK;
        }
    }
    return LOCO_ERR_INVALID;
}

bool str_glob_list_match(const char *patterns, const char *name)
{
    if (!patterns || !name)
        return false;
    const char *p = patterns;
    char pat[256];
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - p);
        while (n && p[n - 1] == ' ')
            n--;
        if (n && n < sizeof(pat)) {
            memcpy(pat, p, n);
            pat[n] = '\0';
            if (fnmatch(pat, name, FNM_CASEFOLD) == 0)
                return true;
        }
        p = e;
    }
    return false;
}

void str_random_id(const char *prefix, char *out, size_t out_size)
{
    static const char alnum[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    unsigned char rnd[24];
    if (!os_random_bytes(rnd, sizeof(rnd))) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof(rnd); i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            rnd[i] = (unsigned char)x;
        }
    }
    size_t pl = strlen(prefix);
    if (out_size == 0)
        return;
    size_t o = 0;
    for (size_t i = 0; i < pl && o + 1 < out_size; i++)
        out[o++] = prefix[i];
    for (size_t i = 0; i < sizeof(rnd) && o + 1 < out_size; i++)
        out[o++] = alnum[rnd[i] % (sizeof(alnum) - 1)];
    out[o] = '\0';
}

loco_status str_shell_quote(buf *b, const char *s)
{
    loco_status rc = buf_appendc(b, '\'');
    for (const char *p = s; *p && !rc; p++) {
        if (*p == '\'')
            rc = buf_appends(b, "'\\''");
        else
            rc = buf_appendc(b, *p);
    }
    if (!rc)
        rc = buf_appendc(b, '\'');
    return rc;
}

char *str_ndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

bool str_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

const char *str_memmem(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    if (m == 0)
        return hay;
    if (m > n)
        return NULL;
    return memmem(hay, n, needle, m);
}

size_t str_partial_suffix(const char *s, size_t n, const char *pat)
{
    size_t m = strlen(pat);
    size_t k = m ? m - 1 : 0;
    if (k > n)
        k = n;
    for (; k > 0; k--) {
        if (memcmp(s + n - k, pat, k) == 0)
            return k;
    }
    return 0;
}

/* ---- text for terminals and logs ---- */

/* Bytes of the character at s[0..n) that may be shown as it is, 0 when it needs escaping. */
static size_t printable_len(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    if (c >= 0x20 && c < 0x7f)
        return 1;
    if (c < 0x80)
        return 0; /* C0 controls and DEL */
    size_t k = utf8_seq_len(s, n);
    if (!k)
        return 0;
    size_t used = 0;
    uint32_t cp = utf8_decode(s, k, &used);
    if ((cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
        (cp >= 0x2066 && cp <= 0x2069))
        return 0;
    return k;
}

bool str_is_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = printable_len(s + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

loco_status str_append_printable(buf *b, const char *s, size_t n)
{
    loco_status rc = LOCO_OK;
    for (size_t i = 0; i < n && !rc;) {
        size_t k = printable_len(s + i, n - i);
        if (k) {
            rc = buf_append(b, s + i, k);
            i += k;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        size_t seq = c >= 0x80 ? utf8_seq_len(s + i, n - i) : 0;
        if (seq) { /* a valid but unsafe character: C1 or bidi */
            size_t used = 0;
            rc = buf_appendf(b, "\\u{%04" PRIX32 "}", utf8_decode(s + i, seq, &used));
            i += seq;
        } else {
            const char *named = c == '\n'   ? "\\n"
                                : c == '\r' ? "\\r"
                                : c == '\t' ? "\\t"
                                : c == 0x1b ? "\\e"
                                            : NULL;
            rc = named ? buf_appends(b, named) : buf_appendf(b, "\\x%02X", c);
            i++;
        }
    }
    return rc;
}

const char *str_printable(const char *s, char *out, size_t size)
{
    if (!size)
        return out;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    size_t n = s ? strlen(s) : 0;
    if (str_append_printable(&b, s ? s : "", n) != LOCO_OK) {
        snprintf(out, size, "?");
    } else {
        size_t k = b.len < size ? b.len : utf8_complete_len(b.data, size - 1);
        memcpy(out, buf_str(&b), k);
        out[k] = '\0';
    }
    buf_release(&b);
    return out;
}
