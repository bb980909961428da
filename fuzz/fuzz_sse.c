/* fuzz_sse.c: libFuzzer target for net/sse. Feeds the input whole and split at a point
 * chosen by its first byte, and aborts when the two disagree on the events seen, the
 * status or the leftover flag; every event must also survive sse_write_event + re-parse. */
#include "base/common.h"

#include "net/sse.h"

#define FUZZ_SSE_LIMIT 4096

typedef struct {
    buf log; /* every event as: name, NUL, decimal length, NUL, data */
} fuzz_rec;

static loco_status fuzz_record(void *ctx, const char *event, const char *data, size_t len)
{
    fuzz_rec *r = ctx;
    if (buf_appends(&r->log, event) || buf_appendc(&r->log, '\0') ||
        buf_appendf(&r->log, "%zu", len) || buf_appendc(&r->log, '\0') ||
        buf_append(&r->log, data, len))
        abort();
    if (len == 4 && memcmp(data, "STOP", 4) == 0)
        return LOCO_ERR_CANCELLED;
    return LOCO_OK;
}

typedef struct {
    loco_status st;
    bool leftover;
} fuzz_result;

static fuzz_result fuzz_run(fuzz_rec *r, const char *s, size_t n, size_t split)
{
    sse_parser p;
    sse_parser_init(&p, FUZZ_SSE_LIMIT, fuzz_record, r);
    loco_err err;
    fuzz_result res = {LOCO_OK, false};
    res.st = sse_parser_feed(&p, s, split, &err);
    if (res.st == LOCO_OK)
        res.st = sse_parser_feed(&p, s + split, n - split, &err);
    loco_status fin = sse_parser_finish(&p, &res.leftover, &err);
    if (fin != res.st)
        abort();
    if (res.st != LOCO_OK)
        res.leftover = false; /* unspecified after a failure */
    sse_parser_release(&p);
    return res;
}

typedef struct {
    const char *event;
    const char *data;
    size_t len;
    int seen;
} fuzz_expect;

static loco_status fuzz_check_one(void *ctx, const char *event, const char *data, size_t len)
{
    fuzz_expect *e = ctx;
    e->seen++;
    if (strcmp(event, e->event) != 0 || len != e->len || memcmp(data, e->data, len) != 0)
        abort();
    return LOCO_OK;
}

/* Writes each recorded event back out and parses it again. */
static void fuzz_round_trip(const buf *log)
{
    size_t i = 0;
    while (i < log->len) {
        const char *event = log->data + i;
        i += strlen(event) + 1;
        size_t len = (size_t)strtoull(log->data + i, NULL, 10);
        i += strlen(log->data + i) + 1;
        fuzz_expect e = {event, log->data + i, len, 0};
        i += len;
        buf out;
        buf_init(&out, BUF_UNLIMITED);
        if (sse_write_event(&out, event, e.data, len))
            abort();
        sse_parser p;
        sse_parser_init(&p, 0, fuzz_check_one, &e);
        bool left = true;
        if (sse_parser_feed(&p, out.data, out.len, NULL) || sse_parser_finish(&p, &left, NULL) ||
            left || e.seen != 1)
            abort();
        sse_parser_release(&p);
        buf_release(&out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    size_t split = n ? (size_t)data[0] * n / 255 : 0;
    fuzz_rec whole, parts;
    buf_init(&whole.log, BUF_UNLIMITED);
    buf_init(&parts.log, BUF_UNLIMITED);
    fuzz_result a = fuzz_run(&whole, s, n, n);
    fuzz_result b = fuzz_run(&parts, s, n, split);
    if (a.st != b.st || a.leftover != b.leftover || whole.log.len != parts.log.len ||
        (whole.log.len && memcmp(whole.log.data, parts.log.data, whole.log.len) != 0))
        abort();
    fuzz_round_trip(&whole.log);
    buf_release(&whole.log);
    buf_release(&parts.log);
    return 0;
}
