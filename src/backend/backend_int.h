/* backend_int.h: helpers shared by the backend implementations only. */
#ifndef LOCO_BACKEND_INT_H
#define LOCO_BACKEND_INT_H

#include "backend/backend.h"
#include "base/buf.h"
#include "net/sse.h"

/* Limit on an upstream error body kept for messages and overflow detection. */
#define BACKEND_ERROR_BODY_MAX ((size_t)64 << 10)
/* Limit on a whole non-stream upstream body. */
#define BACKEND_BODY_MAX ((size_t)64 << 20)
/* Limit on one upstream SSE event. */
#define BACKEND_SSE_EVENT_MAX ((size_t)16 << 20)

/* Per-transfer state shared by the http callbacks of both implementations. */
typedef struct {
    int status;
    bool is_sse;
    buf body;          /* error bodies, or the whole body of a non-stream answer */
    sse_parser sse;
    loco_err *err;
    loco_status cb_status; /* first non-OK status from the event side */
} backend_xfer;

void backend_xfer_init(backend_xfer *x, sse_event_fn on_sse, void *sse_ctx, loco_err *err);
void backend_xfer_release(backend_xfer *x);
/* http_client callbacks; ctx is the backend_xfer. */
loco_status backend_xfer_on_headers(void *ctx, int status, const char *content_type);
loco_status backend_xfer_on_data(void *ctx, const char *p, size_t n);

#endif
