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
