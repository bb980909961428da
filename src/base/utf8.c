/* utf8.c: UTF-8 validation, stream-tail detection and lossy repair (see utf8.h). Part of
 * base/; the inline helpers of utf8.h do the per-sequence work. */
#include "base/common.h"

#include "base/utf8.h"

/* Length of the longest valid prefix of s[0..n). */
static size_t valid_prefix(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_seq_len(s + i, n - i);
        if (!l)
            break;
        i += l;
    }
    return i;
}

bool utf8_valid(const char *s, size_t n)
{
    return valid_prefix(s, n) == n;
}

size_t utf8_complete_len(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    /* look back at most 3 bytes for the start of an unfinished sequence */
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char c = u[n - back];
        if (utf8_is_cont(c))
            continue; /* continuation byte: keep looking for the lead */
        if (utf8_lead_len(c) > back)
            return n - back; /* lead byte whose sequence is not complete yet */
        return n;
    }
    return n;
}

loco_status utf8_append_lossy(buf *b, const char *s, size_t n)
{
    size_t run = 0; /* start of the pending run of bytes copied as they are */
    size_t i = valid_prefix(s, n);
    while (i < n) {
        loco_status rc = buf_append(b, s + run, i - run);
        if (!rc)
            rc = buf_append(b, UTF8_REPLACEMENT, 3);
        if (rc)
            return rc;
        run = ++i;
        i += valid_prefix(s + i, n - i);
    }
    return buf_append(b, s + run, n - run);
}
