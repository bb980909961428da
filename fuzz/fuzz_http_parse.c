/* fuzz_http_parse.c: libFuzzer target for net/http_parse. The input is a request head (up
 * to the first blank line) followed by a chunked body. Aborts when a parsed head breaks its
 * own rules (tokens, limits, Content-Length with chunked), when a target splits into a path
 * that is not a decoded absolute path, or when the chunked decoder gives a different result
 * (status; body and bytes used unless it failed) for the body fed whole and fed split at a
 * point chosen by the first byte. */
#include "base/common.h"

#include "net/http_parse.h"

#define FUZZ_BODY_MAX 4096

static void check_head(const char *data, size_t size)
{
    size_t n = http_parse_head_len(data, size);
    if (n > size)
        abort();
    if (!n)
        return;
    char *p = malloc(n + 1);
    if (!p)
        return;
    memcpy(p, data, n);
    p[n] = '\0';
    http_parse_head h;
    const char *why = NULL;
    int st = http_parse_head_parse(p, n, &h, &why);
    if (st == 0) {
        if (h.n_headers > HTTP_PARSE_MAX_HEADERS || (h.chunked && h.has_length) ||
            (h.minor != 0 && h.minor != 1) || !h.method[0] || strpbrk(h.method, " \r\n"))
            abort();
        for (size_t i = 0; i < h.n_headers; i++) {
            if (!h.headers[i].name[0] || strpbrk(h.headers[i].name, " :\r\n") ||
                strpbrk(h.headers[i].value, "\r\n"))
                abort();
        }
        char *path = NULL, *query = NULL;
        if (http_parse_target(h.target, &path, &query, &why) == 0 &&
            (path[0] != '/' && path[0] != '*'))
            abort();
    } else if ((st != 400 && st != 417 && st != 431 && st != 501 && st != 505) || !why || !why[0]) {
        abort();
    }
    free(p);
}

typedef struct {
    int st;
    size_t used;
    buf body;
} chunk_result;

static void feed(const char *p, size_t n, size_t split, chunk_result *r)
{
    http_chunked c;
    http_chunked_init(&c);
    buf_init(&r->body, FUZZ_BODY_MAX);
    const char *why = NULL;
    size_t used = 0;
    r->st = http_chunked_feed(&c, p, split, &r->body, &used, &why);
    r->used = used;
    if (r->st == 0) {
        r->st = http_chunked_feed(&c, p + split, n - split, &r->body, &used, &why);
        r->used += used;
    }
    if (r->st != 0 && r->st != 1 && (!why || !why[0]))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    check_head(s, size);
    size_t head = http_parse_head_len(s, size);
    const char *body = s + head;
    size_t n = size - head;
    size_t split = n ? (size ? data[0] : 0) % (n + 1) : 0;
    chunk_result whole, parts;
    feed(body, n, n, &whole);
    feed(body, n, split, &parts);
    if (whole.st != parts.st)
        abort();
    /* after an error the body is thrown away: what got in before it may differ (an append
     * past the limit is all or nothing, so the split decides how much came first) */
    if ((whole.st == 0 || whole.st == 1) &&
        (whole.body.len != parts.body.len ||
         (whole.body.len && memcmp(whole.body.data, parts.body.data, whole.body.len))))
        abort();
    if (whole.st == 1 && whole.used != parts.used)
        abort();
    if (whole.used > n)
        abort();
    buf_release(&whole.body);
    buf_release(&parts.body);
    return 0;
}
