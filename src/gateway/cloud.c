/* cloud.c: the cloud route. Anthropic-front requests are passed through byte for byte (the
 * model rewritten only on fallback) and streamed back as they arrive, with a tap that reads
 * usage and the answer for the log and the recording; OpenAI-front requests go through the
 * anthropic backend as neutral events. */
#include "base/common.h"

#include "base/json.h"
#include "base/log.h"
#include "gateway/gateway_int.h"
#include "net/sse.h"

/* Limit on a cloud error body relayed inside a stream. */
#define CLOUD_ERROR_MAX ((size_t)64 << 10)

typedef struct {
    exchange *ex;
    int status;
    bool sse;
    bool relay_error;   /* committed stream + error status: turn the body into an error event */
    buf err_body;
    buf json_body;      /* non-stream body kept for the tap */
    sse_parser tap;
    chat_anth_stream_reader reader;
    bool tap_ok;
} passthru;

static loco_status tap_event(void *ctx, const chat_event *ev)
{
    passthru *p = ctx;
    return chat_answer_on_event(&p->ex->answer, ev);
}

static loco_status tap_sse(void *ctx, const char *event, const char *data, size_t len)
{
    passthru *p = ctx;
    if (p->tap_ok && chat_anth_stream_feed(&p->reader, event, data, len, NULL))
        p->tap_ok = false; /* the tap is best effort: never disturb the relay */
    return LOCO_OK;
}

static loco_status pt_headers(void *ctx, int status, const char *content_type)
{
    passthru *p = ctx;
    p->status = status;
    p->sse = content_type && strstr(content_type, "text/event-stream");
    exchange *ex = p->ex;
    pthread_mutex_lock(&ex->mu);
    bool committed = ex->committed;
    pthread_mutex_unlock(&ex->mu);
    if (committed && status >= 300) {
        p->relay_error = true; /* pings went out already: report the error in-stream */
        return LOCO_OK;
    }
    ex_stop_pinger(ex);
    return ex_raw_start(ex, status, content_type);
}

static loco_status pt_data(void *ctx, const char *d, size_t n)
{
    passthru *p = ctx;
    if (p->relay_error) {
        if (buf_append(&p->err_body, d, n) == LOCO_ERR_LIMIT)
            return LOCO_OK;
        return LOCO_OK;
    }
    if (p->sse)
        sse_parser_feed(&p->tap, d, n, NULL);
    else if (p->status < 300)
        buf_append(&p->json_body, d, n);
    return ex_raw_write(p->ex, d, n);
}

/* Rewrites the "model" of an Anthropic body; malloc'd result or NULL. */
static char *rewrite_model(const char *body, size_t len, const char *model, size_t *out_len)
{
    json_t *root = json_parse(body, len, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    json_object_set_new(root, "model", json_string(model));
    char *s = json_to_string(root);
    json_decref(root);
    if (s)
        *out_len = strlen(s);
    return s;
}

/* Copies the request header name into the upstream header list as "name: value". */
static void forward_header(const exchange *ex, const char *name, char *slot, size_t size,
                           const char **list, size_t *n)
{
    const char *v = http_request_header(ex->hreq, name);
    if (!v)
        return;
    snprintf(slot, size, "%s: %s", name, v);
    list[(*n)++] = slot;
}

void gw_cloud_passthrough(exchange *ex, const char *body, size_t len, const char *model)
{
    gateway *gw = ex->gw;
    char *rewritten = NULL;
    if (model) {
        size_t n = 0;
        rewritten = rewrite_model(body, len, model, &n);
        if (!rewritten) {
            ex_send_error(ex, 500, "api_error", "cannot rewrite the request for the cloud");
            return;
        }
        body = rewritten;
        len = n;
    }
    passthru p;
    memset(&p, 0, sizeof(p));
    p.ex = ex;
    p.tap_ok = true;
    buf_init(&p.err_body, CLOUD_ERROR_MAX);
    buf_init(&p.json_body, GW_ANSWER_MAX);
    sse_parser_init(&p.tap, 0, tap_sse, &p);
    chat_anth_stream_init(&p.reader, tap_event, &p);

    char version[512], beta[4096];
    const char *headers[8];
    size_t nh = 0;
    headers[nh++] = "Content-Type: application/json";
    headers[nh++] = gw->bearer_header;
    headers[nh++] = gw->key_header;
    forward_header(ex, "anthropic-beta", beta, sizeof(beta), headers, &nh);
    version[0] = '\0';
    forward_header(ex, "anthropic-version", version, sizeof(version), headers, &nh);
    if (!version[0])
        headers[nh++] = "anthropic-version: 2023-06-01";
    headers[nh] = NULL;

    http_client_request hr;
    memset(&hr, 0, sizeof(hr));
    hr.method = "POST";
    hr.url = gw->cloud_messages_url;
    hr.headers = headers;
    hr.body = body;
    hr.body_len = len;
    hr.connect_timeout_ms = 10000;
    hr.idle_timeout_ms = 600000;
    hr.cancel = &ex->cancel;
    hr.on_headers = pt_headers;
    hr.on_data = pt_data;
    hr.ctx = &p;
    int status = 0;
    loco_err err;
    loco_err_clear(&err);
    ex_start_pinger(ex); /* pings until the cloud's first byte; notices a client gone */
    loco_status rc = http_client_do(gw->client, &hr, &status, &err);
    ex_stop_pinger(ex);
    if (rc == LOCO_OK && p.relay_error) {
        char msg[400];
        json_t *j = json_parse(buf_str(&p.err_body), p.err_body.len, NULL);
        json_t *e = json_is_object(j) ? json_object_get(j, "error") : NULL;
        const char *m = json_get_str(e, "message");
        const char *t = json_get_str(e, "type");
        snprintf(msg, sizeof(msg), "cloud answered HTTP %d: %s", status,
                 m ? m : buf_str(&p.err_body));
        ex_send_error(ex, status, t ? t : chat_anth_error_type(status), msg);
        json_decref(j);
    } else if (rc == LOCO_OK) {
        if (!p.sse && status < 300)
            chat_anth_parse_message(buf_str(&p.json_body), p.json_body.len, tap_event, &p, NULL);
        ex->answer_ok = status < 300 && !ex->answer.failed;
        ex->in_tokens = ex->answer.usage.input_tokens;
        ex->out_tokens = ex->answer.usage.output_tokens;
    } else if (rc == LOCO_ERR_CANCELLED || __atomic_load_n(&ex->cancel, __ATOMIC_ACQUIRE)) {
        snprintf(ex->reason + strlen(ex->reason), sizeof(ex->reason) - strlen(ex->reason), "%s",
                 ex->reason[0] ? ",client_gone" : "client_gone");
    } else {
        log_msg(gw->cfg.log, LOG_WARN, "req=%s cloud request failed: %s", ex->id, err.msg);
        int st = rc == LOCO_ERR_TIMEOUT ? 504 : 502;
        char msg[LOCO_ERR_MSG_MAX + 32];
        snprintf(msg, sizeof(msg), "cloud unreachable: %s", err.msg);
        pthread_mutex_lock(&ex->mu);
        bool raw = ex->raw_mode;
        pthread_mutex_unlock(&ex->mu);
        if (raw) {
            /* bytes of the cloud's own stream went out: end it with an error event */
            ex->raw_mode = false;
        }
        ex_send_error(ex, st, "api_error", msg);
    }
    sse_parser_release(&p.tap);
    chat_anth_stream_release(&p.reader);
    buf_release(&p.err_body);
    buf_release(&p.json_body);
    free(rewritten);
}

/* The cloud route through the anthropic backend: OpenAI-front requests. */
void gw_cloud_events(exchange *ex, const chat_request *req, const char *model)
{
    gateway *gw = ex->gw;
    gw_sink s;
    gw_sink_init(&s, ex);
    backend_call call;
    memset(&call, 0, sizeof(call));
    call.cancel = &ex->cancel;
    call.model = model;
    backend_result res;
    loco_err err;
    loco_err_clear(&err);
    ex_start_pinger(ex);
    loco_status rc = backend_complete(gw->cloud, req, &call, gw_sink_event, &s, &res, &err);
    ex_stop_pinger(ex);
    if (rc == LOCO_OK) {
        gw_sink_finish(&s);
        ex->answer_ok = true;
    } else if (rc == LOCO_ERR_CANCELLED || __atomic_load_n(&ex->cancel, __ATOMIC_ACQUIRE)) {
        snprintf(ex->reason, sizeof(ex->reason), "client_gone");
    } else {
        log_msg(gw->cfg.log, LOG_WARN, "req=%s cloud request failed: %s", ex->id, err.msg);
        int st = res.http_status >= 400 ? res.http_status
                 : rc == LOCO_ERR_TIMEOUT ? 504
                                          : 502;
        ex_send_error(ex, st, chat_anth_error_type(st), err.msg);
    }
    gw_sink_release(&s);
}
