/* sse.h: Server-Sent Events, both ways: an incremental parser for text/event-stream bodies
 * (WHATWG EventSource rules) and a writer. Part of net/; used by the backends that read
 * upstream streams and by the gateway that writes them. Pure: no I/O, no threads. */
#ifndef LOCO_SSE_H
#define LOCO_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/status.h"

/* Called once per dispatched event. event is the `event:` field, "" when absent (the
 * spec's "message"); data is the data lines joined with "\n", NUL-terminated, len bytes
 * (it may contain NULs). Both are borrowed for the duration of the call only.
 * A non-OK return stops the parser and is returned by sse_parser_feed. */
typedef loco_status (*sse_event_fn)(void *ctx, const char *event, const char *data, size_t len);

/* Default per-event limit when 0 is passed to sse_parser_init. */
#define SSE_EVENT_MAX_DEFAULT ((size_t)16 << 20)

/* Caller-owned parser state; treat the fields as private. */
typedef struct {
    sse_event_fn fn;
    void *ctx;
    size_t max_event; /* limit on the bytes of one event (pending line + event name + data) */
    buf line;         /* the current, unterminated line */
    buf event;        /* the `event:` field of the event being built */
    buf data;         /* the data lines of the event being built, each followed by "\n" */
    bool have_data;   /* at least one data line seen since the last dispatch */
    bool after_cr;    /* the last byte fed was '\r' (a following '\n' belongs to it) */
    bool first_line;  /* no line finished yet (a leading UTF-8 BOM is dropped) */
    loco_status failed; /* sticky status after an error or a callback's non-OK return */
} sse_parser;

/* Initialises p. max_event bounds the size of one event (SSE_EVENT_MAX_DEFAULT when 0);
 * fn (required) and ctx are borrowed and must outlive the parser. Allocates nothing. */
void sse_parser_init(sse_parser *p, size_t max_event, sse_event_fn fn, void *ctx);
/* Frees p's buffers; p may be initialised again afterwards. */
void sse_parser_release(sse_parser *p);

/* Feeds n bytes (any split: inside a line, between '\r' and '\n', ...). Dispatches every
 * event completed by a blank line. Returns LOCO_OK, LOCO_ERR_LIMIT (with a message) when
 * an event grows past max_event, LOCO_ERR_NOMEM, or the first non-OK status returned by
 * the callback (err is then left as the callback filled it or not at all). After a non-OK
 * return every later feed returns the same status without parsing. */
loco_status sse_parser_feed(sse_parser *p, const char *s, size_t n, loco_err *err);

/* Ends the stream. Per the spec an event that was not followed by a blank line is NOT
 * dispatched; *out_leftover (may be NULL) says whether any unterminated line or pending
 * event fields were discarded. Resets the parser so it can read a new stream. Returns
 * the sticky error if the parser had failed, else LOCO_OK. */
loco_status sse_parser_finish(sse_parser *p, bool *out_leftover, loco_err *err);

/* Appends one event to out: "event: <event>\n" (omitted when event is NULL or ""), then one
 * "data: <line>\n" per line of data (split on "\r\n", "\n" and "\r"; len 0 gives one empty
 * data line), then "\n". A parser gives back data with every line end turned into "\n".
 * LOCO_ERR_INVALID when event contains '\r' or '\n'; buffer errors from buf_append (out
 * may then hold part of the event). */
loco_status sse_write_event(buf *out, const char *event, const char *data, size_t len);

#endif
