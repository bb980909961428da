/* sse.c: Server-Sent Events parser (WHATWG "interpret an event stream") and writer.
 * The parser keeps one pending line and the event being built; nothing else. */
#include "base/common.h"

#include "net/sse.h"

void sse_parser_init(sse_parser *p, size_t max_event, sse_event_fn fn, void *ctx)
{
    p->fn = fn;
    p->ctx = ctx;
    p->max_event = max_event ? max_event : SSE_EVENT_MAX_DEFAULT;
    /* The running total is checked before every append; the per-buffer maxima are a
     * second fence (data holds one extra "\n"). */
    size_t cap = p->max_event < SIZE_MAX - 1 ? p->max_event + 1 : p->max_event;
    buf_init(&p->line, cap);
    buf_init(&p->event, cap);
    buf_init(&p->data, cap);
    p->have_data = false;
    p->after_cr = false;
    p->first_line = true;
    p->failed = LOCO_OK;
}

void sse_parser_release(sse_parser *p)
{
    buf_release(&p->line);
    buf_release(&p->event);
    buf_release(&p->data);
}

static loco_status sse_fail(sse_parser *p, loco_status st, loco_err *err)
{
    p->failed = st;
    if (st == LOCO_ERR_LIMIT)
        return loco_err_set(err, st, "SSE event larger than the %zu-byte limit", p->max_event);
    if (st == LOCO_ERR_NOMEM)
        return loco_err_set(err, st, "out of memory while reading an SSE stream");
    return st;
}

static void sse_reset_event(sse_parser *p)
{
    buf_reset(&p->event);
    buf_reset(&p->data);
    p->have_data = false;
}

/* Blank line: hand the built event to the callback if it has data lines. */
static loco_status sse_dispatch(sse_parser *p)
{
    if (!p->have_data) {
        sse_reset_event(p);
        return LOCO_OK;
    }
    size_t len = p->data.len - 1; /* drop the last "\n" */
    p->data.data[len] = '\0';
    loco_status st = p->fn(p->ctx, buf_str(&p->event), p->data.data, len);
    sse_reset_event(p);
    return st;
}

static bool sse_field_is(const char *f, size_t n, const char *name)
{
    return strlen(name) == n && memcmp(f, name, n) == 0;
}

/* One complete line (without its terminator), already bounded by max_event. */
static loco_status sse_process_line(sse_parser *p, const char *s, size_t n)
{
    if (p->first_line) {
        p->first_line = false;
        if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
            s += 3;
            n -= 3;
        }
    }
    if (n == 0)
        return sse_dispatch(p);
    if (s[0] == ':')
        return LOCO_OK; /* comment */
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *val = colon ? colon + 1 : s + n;
    size_t vlen = (size_t)(s + n - val);
    if (vlen > 0 && val[0] == ' ') {
        val++;
        vlen--;
    }
    if (sse_field_is(s, flen, "event")) {
        buf_reset(&p->event);
        return buf_append(&p->event, val, vlen);
    }
    if (sse_field_is(s, flen, "data")) {
        loco_status st = buf_append(&p->data, val, vlen);
        if (st == LOCO_OK)
            st = buf_appendc(&p->data, '\n');
        p->have_data = true;
        return st;
    }
    return LOCO_OK; /* id, retry and unknown fields are ignored */
}

static loco_status sse_end_line(sse_parser *p)
{
    loco_status st = sse_process_line(p, buf_str(&p->line), p->line.len);
    buf_reset(&p->line);
    return st;
}

static loco_status sse_add_to_line(sse_parser *p, const char *s, size_t n)
{
    size_t used = p->line.len + p->event.len + p->data.len;
    if (n > p->max_event || used > p->max_event - n)
        return LOCO_ERR_LIMIT;
    return buf_append(&p->line, s, n);
}

static size_t sse_span_len(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] != '\n' && s[i] != '\r')
        i++;
    return i;
}

loco_status sse_parser_feed(sse_parser *p, const char *s, size_t n, loco_err *err)
{
    if (p->failed)
        return p->failed;
    size_t i = 0;
    while (i < n) {
        if (p->after_cr) {
            p->after_cr = false;
            if (s[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t k = sse_span_len(s + i, n - i);
        loco_status st = k ? sse_add_to_line(p, s + i, k) : LOCO_OK;
        if (st)
            return sse_fail(p, st, err);
        i += k;
        if (i == n)
            break;
        p->after_cr = s[i] == '\r';
        i++;
        st = sse_end_line(p);
        if (st)
            return sse_fail(p, st, err);
    }
    return LOCO_OK;
}

loco_status sse_parser_finish(sse_parser *p, bool *out_leftover, loco_err *err)
{
    LOCO_UNUSED(err);
    bool left = p->line.len > 0 || p->event.len > 0 || p->have_data;
    if (out_leftover)
        *out_leftover = left;
    loco_status st = p->failed;
    buf_reset(&p->line);
    sse_reset_event(p);
    p->after_cr = false;
    p->first_line = true;
    p->failed = LOCO_OK;
    return st;
}

static loco_status sse_write_data_line(buf *out, const char *s, size_t n)
{
    loco_status st = buf_append(out, "data: ", 6);
    if (st == LOCO_OK)
        st = buf_append(out, s, n);
    if (st == LOCO_OK)
        st = buf_appendc(out, '\n');
    return st;
}

loco_status sse_write_event(buf *out, const char *event, const char *data, size_t len)
{
    loco_status st = LOCO_OK;
    if (!data)
        data = "";
    if (event && event[0]) {
        if (strpbrk(event, "\r\n"))
            return LOCO_ERR_INVALID;
        st = buf_appendf(out, "event: %s\n", event);
    }
    size_t i = 0;
    while (st == LOCO_OK) {
        size_t k = sse_span_len(data + i, len - i);
        st = sse_write_data_line(out, data + i, k);
        i += k;
        if (i == len)
            break;
        i += (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n') ? 2 : 1;
    }
    if (st == LOCO_OK)
        st = buf_appendc(out, '\n');
    return st;
}
