/* http_parse.c: request head and chunked body grammar of HTTP/1.1 (RFC 9112), strict where
 * a lenient reading would let two parsers disagree (request smuggling: Content-Length with
 * Transfer-Encoding, differing lengths, folded lines), lenient about bare LF line ends. */
#include "base/common.h"

#include "net/http_parse.h"

/* RFC 9110 tchar: the characters of a token (method, header name). */
static bool is_tchar(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (!is_tchar((unsigned char)*s))
            return false;
    }
    return true;
}

size_t http_parse_head_len(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n')
            continue;
        size_t j = i + 1;
        if (j < n && p[j] == '\r')
            j++;
        if (j < n && p[j] == '\n')
            return j + 1;
    }
    return 0;
}

/* Cuts p at the end of the current line (CRLF or LF), returns the line (NUL-terminated)
 * and advances *pos past it; NULL when a bare CR is inside the line. */
static char *next_line(char *p, size_t n, size_t *pos)
{
    size_t i = *pos;
    char *line = p + i;
    while (i < n && p[i] != '\n')
        i++;
    size_t end = i;
    if (end > *pos && p[end - 1] == '\r')
        end--;
    *pos = i < n ? i + 1 : n;
    if (memchr(line, '\r', (size_t)(p + end - line)))
        return NULL;
    p[end] = '\0';
    return line;
}

static void trim_blanks(char **s)
{
    char *v = *s;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t k = strlen(v);
    while (k > 0 && (v[k - 1] == ' ' || v[k - 1] == '\t'))
        v[--k] = '\0';
    *s = v;
}

static int fail(const char **out_why, int status, const char *why)
{
    *out_why = why;
    return status;
}

static int parse_request_line(char *line, http_parse_head *out, const char **out_why)
{
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strchr(sp2 + 1, ' '))
        return fail(out_why, 400, "malformed request line");
    *sp1 = '\0';
    *sp2 = '\0';
    out->method = line;
    out->target = sp1 + 1;
    const char *v = sp2 + 1;
    if (!is_token(out->method) || !out->target[0])
        return fail(out_why, 400, "malformed request line");
    for (const unsigned char *t = (const unsigned char *)out->target; *t; t++) {
        if (*t < 0x21 || *t == 0x7f)
            return fail(out_why, 400, "control character in the request target");
    }
    if (strncmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' || v[7] < '0' ||
        v[7] > '9' || v[8])
        return fail(out_why, 400, "malformed HTTP version");
    if (v[5] != '1')
        return fail(out_why, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    out->minor = v[7] == '0' ? 0 : 1;
    return 0;
}

/* Parses a Content-Length value; false when it is not 1*DIGIT that fits. */
static bool parse_length(const char *s, uint64_t *out)
{
    if (!*s)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

/* True when the comma-separated list s contains token tok (case-insensitive). */
static bool list_has(const char *s, const char *tok)
{
    size_t k = strlen(tok);
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        const char *e = s;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - s) == k && strncasecmp(s, tok, k) == 0)
            return true;
        s = e;
    }
    return false;
}

/* The header fields that frame the message or the connection. */
static int apply_header(http_parse_head *out, const http_parse_header *h, bool *seen_host,
                        const char **out_why)
{
    if (!strcasecmp(h->name, "content-length")) {
        uint64_t v;
        if (!parse_length(h->value, &v))
            return fail(out_why, 400, "malformed Content-Length");
        if (out->has_length && v != out->length)
            return fail(out_why, 400, "conflicting Content-Length headers");
        out->has_length = true;
        out->length = v;
    } else if (!strcasecmp(h->name, "transfer-encoding")) {
        if (out->chunked || strcasecmp(h->value, "chunked") != 0)
            return fail(out_why, 501, "unsupported Transfer-Encoding (only chunked is)");
        out->chunked = true;
    } else if (!strcasecmp(h->name, "connection")) {
        if (list_has(h->value, "close"))
            out->close = true;
    } else if (!strcasecmp(h->name, "expect")) {
        if (strcasecmp(h->value, "100-continue") != 0)
            return fail(out_why, 417, "unsupported Expect (only 100-continue is)");
        out->expect_continue = true;
    } else if (!strcasecmp(h->name, "host")) {
        if (*seen_host)
            return fail(out_why, 400, "more than one Host header");
        *seen_host = true;
    }
    return 0;
}

static int parse_header_line(char *line, http_parse_head *out, bool *seen_host,
                             const char **out_why)
{
    if (line[0] == ' ' || line[0] == '\t')
        return fail(out_why, 400, "folded header line");
    char *colon = strchr(line, ':');
    if (!colon)
        return fail(out_why, 400, "header line without a colon");
    *colon = '\0';
    if (!is_token(line))
        return fail(out_why, 400, "malformed header name");
    char *value = colon + 1;
    for (const unsigned char *c = (const unsigned char *)value; *c; c++) {
        if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
            return fail(out_why, 400, "control character in a header value");
    }
    if (out->n_headers == HTTP_PARSE_MAX_HEADERS)
        return fail(out_why, 431, "too many header fields");
    trim_blanks(&value);
    http_parse_header *h = &out->headers[out->n_headers++];
    h->name = line;
    h->value = value;
    return apply_header(out, h, seen_host, out_why);
}

int http_parse_head_parse(char *p, size_t n, http_parse_head *out, const char **out_why)
{
    memset(out, 0, sizeof(*out));
    *out_why = "";
    size_t pos = 0;
    while (pos < n && (p[pos] == '\r' || p[pos] == '\n'))
        pos++;
    if (memchr(p + pos, '\0', n - pos))
        return fail(out_why, 400, "NUL byte in the request head");
    char *line = next_line(p, n, &pos);
    if (!line)
        return fail(out_why, 400, "bare CR in the request line");
    int st = parse_request_line(line, out, out_why);
    if (st)
        return st;
    bool seen_host = false;
    for (;;) {
        line = next_line(p, n, &pos);
        if (!line)
            return fail(out_why, 400, "bare CR in a header line");
        if (!line[0])
            break;
        st = parse_header_line(line, out, &seen_host, out_why);
        if (st)
            return st;
    }
    if (out->chunked && (out->has_length || out->minor == 0))
        return fail(out_why, 400, "Transfer-Encoding with Content-Length or HTTP/1.0");
    if (out->minor == 1 && !seen_host)
        return fail(out_why, 400, "HTTP/1.1 request without a Host header");
    if (out->minor == 0)
        out->close = true;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int http_parse_target(char *target, char **out_path, char **out_query, const char **out_why)
{
    char *t = target;
    if (!strcmp(t, "*")) {
        *out_path = t;
        *out_query = t + 1; /* "" */
        return 0;
    }
    if (!strncasecmp(t, "http://", 7) || !strncasecmp(t, "https://", 8)) {
        /* absolute form: drop scheme and authority; the authority's last byte becomes the
         * path's '/' when the path is empty ("http://h?q" -> "/?q") */
        char *auth = strstr(t, "//") + 2;
        char *s = auth + strcspn(auth, "/?#");
        if (s == auth)
            return fail(out_why, 400, "request target without a host");
        if (*s != '/') {
            s--;
            *s = '/';
        }
        t = s;
    }
    if (t[0] != '/')
        return fail(out_why, 400, "request target is not a path");
    char *q = strchr(t, '?');
    char *hash = strchr(t, '#');
    if (hash && (!q || hash < q)) /* a fragment is never sent; drop it if it is */
        *hash = '\0';
    if (q) {
        *q = '\0';
        *out_query = q + 1;
        char *h = strchr(*out_query, '#');
        if (h)
            *h = '\0';
    } else {
        *out_query = t + strlen(t);
    }
    char *w = t;
    for (char *r = t; *r; r++) {
        int hi, lo;
        if (*r == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
            char c = (char)(hi * 16 + lo);
            if (!c)
                return fail(out_why, 400, "request path decodes to a NUL byte");
            *w++ = c;
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    *out_path = t;
    return 0;
}

/* ---- chunked body ---- */

enum {
    CH_SIZE = 0, /* hex digits of a chunk size */
    CH_EXT,      /* after the size: chunk extensions up to the line end */
    CH_DATA,
    CH_DATA_CR, /* CRLF after the data */
    CH_DATA_LF,
    CH_TRAILER, /* start of a trailer line (an empty one ends the body) */
    CH_TRAILER_LINE,
    CH_TRAILER_END_LF,
    CH_DONE,
};

void http_chunked_init(http_chunked *c)
{
    memset(c, 0, sizeof(*c));
}

static int ch_size_byte(http_chunked *c, char ch, const char **out_why)
{
    int v = hexval(ch);
    if (v >= 0) {
        if (c->digits == 15)
            return fail(out_why, 413, "chunk size too large");
        c->left = c->left * 16 + (uint64_t)v;
        c->digits++;
        return 0;
    }
    if (!c->digits)
        return fail(out_why, 400, "malformed chunk size");
    c->state = CH_EXT;
    c->line = 0;
    return -1; /* reprocess ch in CH_EXT */
}

/* After the size line: a data chunk, or the last chunk and its trailers. */
static void ch_end_size_line(http_chunked *c)
{
    c->state = c->left ? CH_DATA : CH_TRAILER;
    c->line = 0;
    c->digits = 0;
}

int http_chunked_feed(http_chunked *c, const char *p, size_t n, buf *body, size_t *out_used,
                      const char **out_why)
{
    *out_why = "";
    size_t i = 0;
    int st = 0;
    while (i < n && c->state != CH_DONE && !st) {
        char ch = p[i];
        switch (c->state) {
        case CH_SIZE:
            st = ch_size_byte(c, ch, out_why);
            if (st < 0) {
                st = 0;
                continue;
            }
            break;
        case CH_EXT:
            if (ch == '\n')
                ch_end_size_line(c);
            else if (++c->line > HTTP_PARSE_CHUNK_LINE_MAX)
                st = fail(out_why, 400, "chunk extension too long");
            else if (((unsigned char)ch < 0x20 && ch != '\t' && ch != '\r') || ch == 0x7f)
                st = fail(out_why, 400, "malformed chunk size line");
            break;
        case CH_DATA: {
            size_t k = n - i;
            if ((uint64_t)k > c->left)
                k = (size_t)c->left;
            loco_status bs = buf_append(body, p + i, k);
            if (bs == LOCO_ERR_LIMIT)
                st = fail(out_why, 413, "request body too large");
            else if (bs)
                st = fail(out_why, 500, "out of memory");
            c->left -= k;
            i += k;
            if (!c->left)
                c->state = CH_DATA_CR;
            continue;
        }
        case CH_DATA_CR:
            if (ch == '\r')
                c->state = CH_DATA_LF;
            else if (ch == '\n')
                c->state = CH_SIZE;
            else
                st = fail(out_why, 400, "chunk data longer than its size");
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                st = fail(out_why, 400, "chunk data longer than its size");
            c->state = CH_SIZE;
            break;
        case CH_TRAILER:
            if (ch == '\n')
                c->state = CH_DONE;
            else if (ch == '\r')
                c->state = CH_TRAILER_END_LF;
            else
                c->state = CH_TRAILER_LINE;
            break;
        case CH_TRAILER_END_LF:
            if (ch != '\n')
                st = fail(out_why, 400, "malformed trailer section");
            c->state = CH_DONE;
            break;
        case CH_TRAILER_LINE:
            if (ch == '\n')
                c->state = CH_TRAILER;
            break;
        default: break;
        }
        i++;
        if (c->state == CH_TRAILER || c->state == CH_TRAILER_LINE ||
            c->state == CH_TRAILER_END_LF) {
            if (++c->line > HTTP_PARSE_TRAILERS_MAX)
                st = fail(out_why, 431, "trailer section too large");
        }
    }
    *out_used = i;
    if (st)
        return st;
    return c->state == CH_DONE ? 1 : 0;
}
