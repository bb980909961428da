/* anthropic_http.c: backend for Anthropic-compatible servers (the cloud: OpenRouter's
 * /api/v1/messages, Anthropic itself). The conversation is sent as a Messages API body and the
 * streamed answer is read back into neutral events. */
#include "base/common.h"

#include "backend/backend_int.h"
#include "chat/anthropic.h"

typedef struct {
    backend base;
    http_client *client;
    char *messages_url;
    char *models_url;
    char *auth_header;
    char *key_header;
} backend_anthropic;

typedef struct {
    chat_anth_stream_reader reader;
    chat_event_fn cb;
    void *ctx;
    backend_result *out;
    loco_err *err;
} anthropic_call;

static loco_status on_event(void *ctx, const chat_event *ev)
{
    anthropic_call *c = ctx;
    c->out->got_events = true;
    return c->cb(c->ctx, ev);
}

static loco_status on_sse(void *ctx, const char *event, const char *data, size_t len)
{
    anthropic_call *c = ctx;
    return chat_anth_stream_feed(&c->reader, event, data, len, c->err);
}

static loco_status anthropic_complete(backend *base, const chat_request *req,
                                      const backend_call *call, chat_event_fn cb, void *ctx,
                                      backend_result *out, loco_err *err)
{
    backend_anthropic *b = (backend_anthropic *)base;
    anthropic_call c;
    memset(&c, 0, sizeof(c));
    c.cb = cb;
    c.ctx = ctx;
    c.out = out;
    c.err = err;
    chat_anth_stream_init(&c.reader, on_event, &c);
    backend_xfer x;
    backend_xfer_init(&x, on_sse, &c, err);
    buf body;
    buf_init(&body, BUF_UNLIMITED);
    chat_request *copy = NULL;
    loco_status rc = LOCO_OK;

    const chat_request *send = req;
    if ((call->model && strcmp(call->model, req->model)) || !req->stream) {
        copy = chat_request_clone(req);
        if (!copy) {
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (call->model)
            copy->model = chat_strdup(copy, call->model);
        copy->stream = true;
        send = copy;
    }
    rc = chat_anth_write_request(send, &body);
    if (rc) {
        loco_err_set(err, rc, "cannot encode the request for %s", b->messages_url);
        goto out;
    }
    const char *headers[24];
    size_t nh = 0;
    headers[nh++] = "Content-Type: application/json";
    headers[nh++] = "Accept: text/event-stream";
    bool has_version = false;
    for (size_t i = 0; call->headers && call->headers[i] && nh < 20; i++) {
        if (!strncasecmp(call->headers[i], "anthropic-version:", 18))
            has_version = true;
        headers[nh++] = call->headers[i];
    }
    if (!has_version)
        headers[nh++] = "anthropic-version: 2023-06-01";
    if (b->auth_header) {
        headers[nh++] = b->auth_header;
        headers[nh++] = b->key_header;
    }
    headers[nh] = NULL;

    http_client_request hr;
    memset(&hr, 0, sizeof(hr));
    hr.method = "POST";
    hr.url = b->messages_url;
    hr.headers = headers;
    hr.body = buf_str(&body);
    hr.body_len = body.len;
    hr.connect_timeout_ms = call->connect_timeout_ms ? call->connect_timeout_ms : 10000;
    hr.idle_timeout_ms = call->idle_timeout_ms ? call->idle_timeout_ms : 600000;
    hr.cancel = call->cancel;
    hr.on_headers = backend_xfer_on_headers;
    hr.on_data = backend_xfer_on_data;
    hr.ctx = &x;
    int status = 0;
    rc = http_client_do(b->client, &hr, &status, err);
    out->http_status = status;
    if (x.cb_status && (rc == LOCO_OK || rc == x.cb_status)) {
        rc = x.cb_status;
        goto out;
    }
    if (rc)
        goto out;
    if (status >= 300) {
        const char *msg = buf_str(&x.body);
        out->context_overflow = strstr(msg, "prompt is too long") != NULL;
        rc = loco_err_set(err, out->context_overflow ? LOCO_ERR_OVERFLOW : LOCO_ERR_UPSTREAM,
                          "%s answered HTTP %d: %.300s", b->messages_url, status, msg);
        goto out;
    }
    if (!x.is_sse) {
        rc = chat_anth_parse_message(buf_str(&x.body), x.body.len, on_event, &c, err);
        goto out;
    }
    bool leftover = false;
    rc = sse_parser_finish(&x.sse, &leftover, err);
    if (!rc && !chat_anth_stream_done(&c.reader))
        rc = loco_err_set(err, LOCO_ERR_UPSTREAM, "%s ended the stream before message_stop",
                          b->messages_url);
out:
    buf_release(&body);
    chat_request_free(copy);
    backend_xfer_release(&x);
    chat_anth_stream_release(&c.reader);
    return rc;
}

static loco_status anthropic_health(backend *base, loco_err *err)
{
    LOCO_UNUSED(base);
    LOCO_UNUSED(err);
    /* Cloud APIs have no cheap unauthenticated probe; failures are seen per request. */
    return LOCO_OK;
}

static void anthropic_free(backend *base)
{
    backend_anthropic *b = (backend_anthropic *)base;
    free(b->base.url);
    free(b->messages_url);
    free(b->models_url);
    free(b->auth_header);
    free(b->key_header);
    free(b);
}

static const backend_ops anthropic_ops = {
    .kind = "anthropic",
    .complete = anthropic_complete,
    .health = anthropic_health,
    .free = anthropic_free,
};

loco_status backend_anthropic_new(http_client *client, const char *base_url, const char *api_key,
                                  backend **out, loco_err *err)
{
    backend_anthropic *b = calloc(1, sizeof(*b));
    if (!b)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    b->base.ops = &anthropic_ops;
    b->client = client;
    b->base.url = strdup(base_url);
    b->messages_url = backend_join_url(base_url, "/v1/messages");
    b->models_url = backend_join_url(base_url, "/v1/models");
    bool ok = b->base.url && b->messages_url && b->models_url;
    if (ok && api_key && *api_key) {
        size_t n = strlen(api_key) + 32;
        b->auth_header = malloc(n);
        b->key_header = malloc(n);
        ok = b->auth_header && b->key_header;
        if (ok) {
            snprintf(b->auth_header, n, "Authorization: Bearer %s", api_key);
            snprintf(b->key_header, n, "x-api-key: %s", api_key);
        }
    }
    if (!ok) {
        anthropic_free(&b->base);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    *out = &b->base;
    return LOCO_OK;
}
