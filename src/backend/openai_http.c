/* openai_http.c: backend for OpenAI-compatible servers (llama-server, vLLM, Ollama, loco).
 * In qwen-text mode the conversation is rendered as <tool_call>/<tool_response> text and tool
 * calls are parsed back out of the streamed answer as they complete. */
#include "base/common.h"

#include "backend/backend_int.h"
#include "base/json.h"
#include "chat/openai.h"
#include "chat/qwen.h"

typedef struct {
    backend base;
    http_client *client;
    char *chat_url;
    char *health_url;
    char *models_url;
    char *tokenize_url;
    char *system_prompt;
    char *auth_header;
    bool qwen_text;
    long idle_timeout_ms;
} backend_openai;

/* Per-call state: upstream SSE -> openai reader -> (qwen parser for text) -> caller. */
typedef struct {
    backend_openai *b;
    const backend_call *call;
    chat_event_fn cb;
    void *ctx;
    backend_result *out;
    chat_oai_stream_reader reader;
    chat_qwen_parser *qwen;
    size_t qwen_calls_seen;
    bool ended;
    loco_err *err;
} openai_call;

static loco_status forward(openai_call *c, const chat_event *ev)
{
    c->out->got_events = true;
    return c->cb(c->ctx, ev);
}

/* Events coming out of the qwen parser: tool calls and text found in the model's text. */
static loco_status on_qwen_event(void *ctx, const chat_event *ev)
{
    return forward(ctx, ev);
}

static loco_status on_bad_call(void *ctx, const char *raw, size_t n, const char *reason)
{
    openai_call *c = ctx;
    c->out->bad_calls++;
    if (c->call->on_bad_call)
        return c->call->on_bad_call(c->call->bad_call_ctx, raw, n, reason);
    return LOCO_OK;
}

/* Events from the OpenAI stream reader. */
static loco_status on_reader_event(void *ctx, const chat_event *ev)
{
    openai_call *c = ctx;
    if (c->ended)
        return LOCO_OK;
    if (c->qwen && ev->type == CHAT_EV_TEXT_DELTA)
        return chat_qwen_parser_feed(c->qwen, ev->text, ev->len);
    if (ev->type == CHAT_EV_MESSAGE_END) {
        chat_event end = *ev;
        if (c->qwen) {
            loco_status rc = chat_qwen_parser_finish(c->qwen);
            if (rc)
                return rc;
            c->out->repaired_calls = chat_qwen_parser_repaired(c->qwen);
            if (chat_qwen_parser_calls(c->qwen) > 0 && end.stop != CHAT_STOP_MAX_TOKENS)
                end.stop = CHAT_STOP_TOOL_USE;
        }
        c->ended = true;
        return forward(c, &end);
    }
    if (ev->type == CHAT_EV_ERROR) {
        c->ended = true;
        return forward(c, ev);
    }
    return forward(c, ev);
}

static loco_status on_sse(void *ctx, const char *event, const char *data, size_t len)
{
    openai_call *c = ctx;
    LOCO_UNUSED(event);
    return chat_oai_stream_feed(&c->reader, data, len, c->err);
}

/* llama-server's overflow error carries the sizes: {"error":{"n_prompt_tokens":N,"n_ctx":M}} */
static void overflow_sizes(const char *body, size_t n, backend_result *out)
{
    json_t *root = json_parse(body, n, NULL);
    json_t *e = json_is_object(root) ? json_object_get(root, "error") : NULL;
    long v;
    if (json_get_long(e, "n_prompt_tokens", &v) && v > 0)
        out->prompt_tokens = v;
    if (json_get_long(e, "n_ctx", &v) && v > 0)
        out->context_tokens = v;
    json_decref(root);
}

static loco_status openai_complete(backend *base, const chat_request *req,
                                   const backend_call *call, chat_event_fn cb, void *ctx,
                                   backend_result *out, loco_err *err)
{
    backend_openai *b = (backend_openai *)base;
    chat_request *rendered = NULL;
    buf body;
    buf_init(&body, BUF_UNLIMITED);
    openai_call c;
    memset(&c, 0, sizeof(c));
    c.b = b;
    c.call = call;
    c.cb = cb;
    c.ctx = ctx;
    c.out = out;
    c.err = err;
    chat_oai_stream_init(&c.reader, on_reader_event, &c);
    backend_xfer x;
    backend_xfer_init(&x, on_sse, &c, err);
    loco_status rc = LOCO_OK;

    const chat_request *send = req;
    if (b->qwen_text) {
        rc = chat_qwen_render(req, b->system_prompt, &rendered, err);
        if (rc)
            goto out;
        send = rendered;
        chat_qwen_parser_opts po;
        memset(&po, 0, sizeof(po));
        po.on_event = on_qwen_event;
        po.ctx = &c;
        po.on_bad_call = on_bad_call;
        po.tools = req->tools;
        po.n_tools = req->n_tools;
        rc = chat_qwen_parser_new(&po, &c.qwen);
        if (rc) {
            loco_err_set(err, rc, "cannot create the tool-call parser");
            goto out;
        }
    }
    chat_oai_write_opts wo = {
        .model = call->model ? call->model : req->model,
        .stream = true,
        .native_tools = !b->qwen_text,
    };
    rc = chat_oai_write_request(send, &wo, &body);
    if (rc) {
        loco_err_set(err, rc, "cannot encode the request for %s", b->chat_url);
        goto out;
    }

    const char *headers[8];
    size_t nh = 0;
    headers[nh++] = "Content-Type: application/json";
    headers[nh++] = "Accept: text/event-stream";
    if (b->auth_header)
        headers[nh++] = b->auth_header;
    headers[nh] = NULL;

    http_client_request hr;
    memset(&hr, 0, sizeof(hr));
    hr.method = "POST";
    hr.url = b->chat_url;
    hr.headers = headers;
    hr.body = buf_str(&body);
    hr.body_len = body.len;
    hr.connect_timeout_ms = call->connect_timeout_ms ? call->connect_timeout_ms : 5000;
    hr.idle_timeout_ms = call->idle_timeout_ms ? call->idle_timeout_ms : b->idle_timeout_ms;
    hr.cancel = call->cancel;
    hr.on_headers = backend_xfer_on_headers;
    hr.on_data = backend_xfer_on_data;
    hr.ctx = &x;
    int status = 0;
    rc = http_client_do(b->client, &hr, &status, err);
    out->http_status = status;
    if (x.cb_status && (rc == LOCO_OK || rc == x.cb_status)) {
        rc = x.cb_status; /* the event side stopped the transfer: keep its reason */
        goto out;
    }
    if (rc)
        goto out;
    if (status >= 300) {
        out->context_overflow = chat_oai_error_is_context_overflow(buf_str(&x.body), x.body.len);
        if (out->context_overflow)
            overflow_sizes(buf_str(&x.body), x.body.len, out);
        char msg[300];
        chat_oai_error_message(buf_str(&x.body), x.body.len, msg, sizeof(msg));
        rc = loco_err_set(err, out->context_overflow ? LOCO_ERR_OVERFLOW : LOCO_ERR_UPSTREAM,
                          "%s answered HTTP %d%s%s", b->chat_url, status, msg[0] ? ": " : "",
                          msg);
        goto out;
    }
    if (!x.is_sse) {
        rc = chat_oai_parse_response(buf_str(&x.body), x.body.len, on_reader_event, &c, err);
        if (rc)
            goto out;
    } else {
        bool leftover = false;
        rc = sse_parser_finish(&x.sse, &leftover, err);
        if (!rc)
            rc = chat_oai_stream_finish(&c.reader, err);
        if (rc)
            goto out;
    }
    if (!c.ended)
        rc = loco_err_set(err, LOCO_ERR_UPSTREAM, "%s ended the stream without finishing the answer",
                          b->chat_url);
out:
    backend_xfer_release(&x);
    chat_oai_stream_release(&c.reader);
    chat_qwen_parser_free(c.qwen);
    chat_request_free(rendered);
    buf_release(&body);
    return rc;
}

static loco_status get_ok(backend_openai *b, const char *url, loco_err *err)
{
    backend_xfer x;
    backend_xfer_init(&x, NULL, NULL, err);
    x.body.max = BACKEND_ERROR_BODY_MAX;
    const char *headers[2] = {b->auth_header, NULL};
    http_client_request hr;
    memset(&hr, 0, sizeof(hr));
    hr.method = "GET";
    hr.url = url;
    hr.headers = b->auth_header ? headers : NULL;
    hr.connect_timeout_ms = 2000;
    hr.total_timeout_ms = 5000;
    hr.on_headers = backend_xfer_on_headers;
    hr.on_data = backend_xfer_on_data;
    hr.ctx = &x;
    x.is_sse = false;
    int status = 0;
    loco_status rc = http_client_do(b->client, &hr, &status, err);
    backend_xfer_release(&x);
    if (rc)
        return rc;
    if (status != 200)
        return loco_err_set(err, LOCO_ERR_UPSTREAM, "%s answered HTTP %d", url, status);
    return LOCO_OK;
}

static loco_status openai_health(backend *base, loco_err *err)
{
    backend_openai *b = (backend_openai *)base;
    /* llama-server and loco answer /health (503 while loading); vLLM and Ollama /v1/models */
    loco_status rc = get_ok(b, b->health_url, err);
    if (rc == LOCO_ERR_UPSTREAM)
        rc = get_ok(b, b->models_url, err);
    return rc;
}

/* The prompt as ChatML text, the way a Qwen chat template lays out a text-only conversation. */
static loco_status chatml(const chat_request *r, buf *out)
{
    static const char *roles[] = {"system", "user", "assistant"};
    loco_status rc = LOCO_OK;
    if (r->system)
        rc = buf_appendf(out, "<|im_start|>system\n%s<|im_end|>\n", r->system);
    for (size_t i = 0; !rc && i < r->n_msgs; i++) {
        const chat_message *m = &r->msgs[i];
        rc = buf_appendf(out, "<|im_start|>%s\n", roles[m->role]);
        for (size_t j = 0; !rc && j < m->n_blocks; j++) {
            if (m->blocks[j].text)
                rc = buf_appends(out, m->blocks[j].text);
        }
        if (!rc)
            rc = buf_appends(out, "<|im_end|>\n");
    }
    if (!rc)
        rc = buf_appends(out, "<|im_start|>assistant\n");
    return rc;
}

/* llama-server's POST /tokenize on the rendered prompt: exact for the model it serves. */
static loco_status openai_count_tokens(backend *base, const chat_request *req, long *out_n,
                                       loco_err *err)
{
    backend_openai *b = (backend_openai *)base;
    if (!b->qwen_text)
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED, "token counts need the qwen dialect");
    chat_request *rendered = NULL;
    loco_status rc = chat_qwen_render(req, b->system_prompt, &rendered, err);
    if (rc)
        return rc;
    buf text, body;
    buf_init(&text, BUF_UNLIMITED);
    buf_init(&body, BUF_UNLIMITED);
    rc = chatml(rendered, &text);
    if (!rc)
        rc = buf_appends(&body, "{\"add_special\":false,\"parse_special\":true,\"content\":");
    if (!rc)
        rc = buf_append_json_str(&body, text.data ? text.data : "", text.len);
    if (!rc)
        rc = buf_appendc(&body, '}');
    chat_request_free(rendered);
    buf_release(&text);
    if (rc) {
        buf_release(&body);
        return loco_err_set(err, rc, "cannot build the tokenize request");
    }
    backend_xfer x;
    backend_xfer_init(&x, NULL, NULL, err);
    const char *headers[3] = {"Content-Type: application/json", b->auth_header, NULL};
    http_client_request hr;
    memset(&hr, 0, sizeof(hr));
    hr.method = "POST";
    hr.url = b->tokenize_url;
    hr.headers = headers;
    hr.body = buf_str(&body);
    hr.body_len = body.len;
    hr.connect_timeout_ms = 2000;
    hr.total_timeout_ms = 30000;
    hr.on_headers = backend_xfer_on_headers;
    hr.on_data = backend_xfer_on_data;
    hr.ctx = &x;
    int status = 0;
    rc = http_client_do(b->client, &hr, &status, err);
    if (!rc && status != 200)
        rc = loco_err_set(err, LOCO_ERR_UNSUPPORTED, "%s answered HTTP %d", b->tokenize_url,
                          status);
    if (!rc) {
        json_t *root = json_parse(buf_str(&x.body), x.body.len, err);
        json_t *tokens = json_is_object(root) ? json_object_get(root, "tokens") : NULL;
        if (json_is_array(tokens))
            *out_n = (long)json_array_size(tokens);
        else
            rc = loco_err_set(err, LOCO_ERR_UNSUPPORTED, "%s gave no token list",
                              b->tokenize_url);
        json_decref(root);
    }
    backend_xfer_release(&x);
    buf_release(&body);
    return rc;
}

static void openai_free(backend *base)
{
    backend_openai *b = (backend_openai *)base;
    free(b->base.url);
    free(b->chat_url);
    free(b->health_url);
    free(b->models_url);
    free(b->tokenize_url);
    free(b->system_prompt);
    free(b->auth_header);
    free(b);
}

static const backend_ops openai_ops = {
    .kind = "openai",
    .complete = openai_complete,
    .health = openai_health,
    .count_tokens = openai_count_tokens,
    .free = openai_free,
};

loco_status backend_openai_new(http_client *client, const char *base_url,
                               const backend_openai_opts *opts, backend **out, loco_err *err)
{
    backend_openai *b = calloc(1, sizeof(*b));
    if (!b)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    b->base.ops = &openai_ops;
    b->client = client;
    b->base.url = strdup(base_url);
    b->chat_url = backend_join_url(base_url, "/v1/chat/completions");
    b->health_url = backend_join_url(base_url, "/health");
    b->models_url = backend_join_url(base_url, "/v1/models");
    b->tokenize_url = backend_join_url(base_url, "/tokenize");
    b->qwen_text = opts && opts->qwen_text;
    b->idle_timeout_ms = opts && opts->default_idle_timeout_ms ? opts->default_idle_timeout_ms
                                                                : 600000;
    bool ok = b->base.url && b->chat_url && b->health_url && b->models_url && b->tokenize_url;
    if (ok && opts && opts->system_prompt) {
        b->system_prompt = strdup(opts->system_prompt);
        ok = b->system_prompt != NULL;
    }
    if (ok && opts && opts->api_key && *opts->api_key) {
        size_t n = strlen(opts->api_key) + 32;
        b->auth_header = malloc(n);
        ok = b->auth_header != NULL;
        if (ok)
            snprintf(b->auth_header, n, "Authorization: Bearer %s", opts->api_key);
    }
    if (!ok) {
        openai_free(&b->base);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    *out = &b->base;
    return LOCO_OK;
}
