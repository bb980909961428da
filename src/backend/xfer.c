/* xfer.c: the HTTP transfer plumbing both backends share: status, SSE or whole body. */
#include "base/common.h"

#include "backend/backend_int.h"

void backend_xfer_init(backend_xfer *x, sse_event_fn on_sse, void *sse_ctx, loco_err *err)
{
    memset(x, 0, sizeof(*x));
    buf_init(&x->body, BACKEND_BODY_MAX);
    sse_parser_init(&x->sse, BACKEND_SSE_EVENT_MAX, on_sse, sse_ctx);
    x->err = err;
}

void backend_xfer_release(backend_xfer *x)
{
    buf_release(&x->body);
    sse_parser_release(&x->sse);
}

loco_status backend_xfer_on_headers(void *ctx, int status, const char *content_type)
{
    backend_xfer *x = ctx;
    x->status = status;
    x->is_sse = status < 300 && content_type && strstr(content_type, "text/event-stream");
    if (status >= 300)
        x->body.max = BACKEND_ERROR_BODY_MAX;
    return LOCO_OK;
}

loco_status backend_xfer_on_data(void *ctx, const char *p, size_t n)
{
    backend_xfer *x = ctx;
    if (x->is_sse) {
        loco_status rc = sse_parser_feed(&x->sse, p, n, x->err);
        if (rc && !x->cb_status)
            x->cb_status = rc;
        return rc;
    }
    loco_status rc = buf_append(&x->body, p, n);
    if (rc == LOCO_ERR_LIMIT && x->status >= 300)
        return LOCO_OK; /* keep the head of an error body, drop the rest */
    return rc;
}
