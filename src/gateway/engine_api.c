/* engine_api.c: the endpoints that speak to the in-process engine directly, so tools written
 * for llama-server work against `loco serve --model`: llama-server's POST /tokenize and
 * POST /detokenize, and OpenAI's POST /v1/completions (a raw prompt, no chat template). */
#include "base/common.h"

#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "gateway/gateway_int.h"

/* Most token ids one /detokenize call takes. */
#define GW_DETOKENIZE_MAX ((size_t)1 << 22)
/* Stop sequences one /v1/completions call may give. */
#define GW_MAX_STOP 16

/* llama-server's error shape: {"error":{"code":N,"message":"…","type":"…"}}. */
static void send_error(http_response *resp, int status, const char *type, const char *msg)
{
    json_t *e = json_pack("{s:{s:i, s:s, s:s}}", "error", "code", status, "message", msg, "type",
                          type);
    char *s = json_to_string(e);
    http_response_send(resp, status, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
    json_decref(e);
}

static void send_json(http_response *resp, json_t *root)
{
    char *s = json_to_string(root);
    if (s)
        http_response_send(resp, 200, "application/json", s, strlen(s));
    else
        send_error(resp, 500, "server_error", "out of memory");
    free(s);
    json_decref(root);
}

static bool need_engine(gateway *gw, http_response *resp)
{
    if (gw->engine)
        return true;
    send_error(resp, 501, "not_supported_error",
               "this endpoint needs the in-process engine: start loco serve with --model "
               "FILE.gguf");
    return false;
}

static json_t *parse_object(const http_request *hreq, http_response *resp)
{
    loco_err err;
    loco_err_clear(&err);
    json_t *root = json_parse(hreq->body, hreq->body_len, &err);
    if (!json_is_object(root)) {
        send_error(resp, 400, "invalid_request_error",
                   root ? "the body must be a JSON object" : err.msg);
        json_decref(root);
        return NULL;
    }
    return root;
}

/* A piece as llama-server gives it: a string when the bytes are valid UTF-8 (they always are
 * here: the detokenizer replaces a split sequence with U+FFFD). */
static json_t *piece_of(gateway *gw, int32_t id)
{
    char *text = NULL;
    if (backend_engine_detokenize(gw->engine, &id, 1, &text, NULL))
        return json_null();
    json_t *s = json_string(text);
    free(text);
    return s ? s : json_null();
}

void gw_handle_tokenize(gateway *gw, const http_request *hreq, http_response *resp)
{
    if (!need_engine(gw, resp))
        return;
    json_t *root = parse_object(hreq, resp);
    if (!root)
        return;
    json_t *content = json_object_get(root, "content");
    bool special = true, pieces = false;
    json_get_bool(root, "parse_special", &special);
    json_get_bool(root, "with_pieces", &pieces);
    if (!json_is_string(content)) {
        send_error(resp, 400, "invalid_request_error", "\"content\" must be a string");
        json_decref(root);
        return;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    loco_err err;
    loco_err_clear(&err);
    if (backend_engine_tokenize(gw->engine, json_string_value(content),
                                json_string_length(content), special, &ids, &n, &err)) {
        send_error(resp, err.code == LOCO_ERR_LIMIT ? 413 : 500, "server_error", err.msg);
        json_decref(root);
        return;
    }
    json_t *tokens = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!pieces) {
            json_array_append_new(tokens, json_integer(ids[i]));
            continue;
        }
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(ids[i]));
        json_object_set_new(o, "piece", piece_of(gw, ids[i]));
        json_array_append_new(tokens, o);
    }
    free(ids);
    json_decref(root);
    json_t *out = json_object();
    json_object_set_new(out, "tokens", tokens);
    send_json(resp, out);
}

void gw_handle_detokenize(gateway *gw, const http_request *hreq, http_response *resp)
{
    if (!need_engine(gw, resp))
        return;
    json_t *root = parse_object(hreq, resp);
    if (!root)
        return;
    json_t *tokens = json_object_get(root, "tokens");
    size_t n = json_is_array(tokens) ? json_array_size(tokens) : 0;
    if (tokens && !json_is_array(tokens)) {
        send_error(resp, 400, "invalid_request_error", "\"tokens\" must be an array of ids");
        json_decref(root);
        return;
    }
    if (n > GW_DETOKENIZE_MAX) {
        send_error(resp, 413, "invalid_request_error", "too many tokens");
        json_decref(root);
        return;
    }
    int32_t *ids = malloc((n ? n : 1) * sizeof(*ids));
    bool ok = ids != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *v = json_array_get(tokens, i);
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        ok = id >= 0 && id <= INT32_MAX;
        if (ok)
            ids[i] = (int32_t)id;
    }
    json_decref(root);
    char *text = NULL;
    loco_err err;
    loco_err_clear(&err);
    if (!ok) {
        send_error(resp, 400, "invalid_request_error",
                   "\"tokens\" must be an array of non-negative integer ids");
    } else if (backend_engine_detokenize(gw->engine, ids, n, &text, &err)) {
        send_error(resp, err.code == LOCO_ERR_INVALID ? 400 : 500, "invalid_request_error",
                   err.msg);
    } else {
        json_t *out = json_object();
        json_object_set_new(out, "content", json_string(text));
        send_json(resp, out);
    }
    free(text);
    free(ids);
}

/* ---- POST /v1/completions ---- */

typedef struct {
    exchange *ex;
    char id[48];
    long created;
    const char *model;
    buf text;         /* non-stream: the whole text */
    buf chunk;
    chat_stop stop;
    long in_tokens, out_tokens;
    bool include_usage;
} completion;

/* One chat.completion-like chunk of a text completion. */
static loco_status completion_chunk(completion *c, const char *text, size_t n,
                                    const char *finish)
{
    buf_reset(&c->chunk);
    loco_status rc = buf_appendf(&c->chunk,
                                 "data: {\"id\":\"%s\",\"object\":\"text_completion\","
                                 "\"created\":%ld,\"model\":",
                                 c->id, c->created);
    if (!rc)
        rc = buf_append_json_str(&c->chunk, c->model, strlen(c->model));
    if (!rc)
        rc = buf_appends(&c->chunk, ",\"choices\":[{\"text\":");
    if (!rc)
        rc = buf_append_json_str(&c->chunk, text, n);
    if (!rc)
        rc = buf_appendf(&c->chunk, ",\"index\":0,\"logprobs\":null,\"finish_reason\":%s%s%s}]}\n\n",
                         finish ? "\"" : "", finish ? finish : "null", finish ? "\"" : "");
    if (!rc)
        rc = ex_raw_write(c->ex, c->chunk.data, c->chunk.len);
    return rc;
}

static const char *finish_reason(chat_stop stop)
{
    return stop == CHAT_STOP_MAX_TOKENS ? "length" : "stop";
}

static loco_status completion_event(void *ctx, const chat_event *ev)
{
    completion *c = ctx;
    exchange *ex = c->ex;
    if (ev->type == CHAT_EV_MESSAGE_START) {
        if (ex->stream)
            return ex_raw_start(ex, 200, "text/event-stream");
        return LOCO_OK;
    }
    if (ev->type == CHAT_EV_TEXT_DELTA) {
        if (!ex->t_first_token)
            ex->t_first_token = clock_now_ms();
        if (ex->stream)
            return completion_chunk(c, ev->text, ev->len, NULL);
        return buf_append(&c->text, ev->text, ev->len);
    }
    if (ev->type == CHAT_EV_MESSAGE_END) {
        c->stop = ev->stop;
        c->in_tokens = ev->usage.input_tokens;
        c->out_tokens = ev->usage.output_tokens;
        if (ex->stream)
            return completion_chunk(c, "", 0, finish_reason(ev->stop));
    }
    return LOCO_OK;
}

static void usage_json(buf *b, long in, long out)
{
    buf_appendf(b, "\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,"
                   "\"total_tokens\":%ld}",
                in < 0 ? 0 : in, out < 0 ? 0 : out, (in < 0 ? 0 : in) + (out < 0 ? 0 : out));
}

/* Reads the sampling parameters of a completions body into params; NULL or a message. */
static const char *read_params(json_t *root, chat_request *params, const char **out_prompt)
{
    json_t *prompt = json_object_get(root, "prompt");
    if (json_is_array(prompt) && json_array_size(prompt) == 1)
        prompt = json_array_get(prompt, 0);
    if (!json_is_string(prompt))
        return "\"prompt\" must be a string (or a list of one string)";
    *out_prompt = json_string_value(prompt);
    long n = 1;
    if (json_get_long(root, "n", &n) && n != 1)
        return "only n = 1 is supported";
    bool echo = false;
    if (json_get_bool(root, "echo", &echo) && echo)
        return "echo is not supported";
    long v;
    if (json_get_long(root, "max_tokens", &v) && v > 0)
        params->max_tokens = v;
    double d;
    if (json_get_double(root, "temperature", &d)) {
        params->has_temperature = true;
        params->temperature = d;
    }
    if (json_get_double(root, "top_p", &d)) {
        params->has_top_p = true;
        params->top_p = d;
    }
    if (json_get_long(root, "top_k", &v) && v > 0)
        params->top_k = v;
    json_get_bool(root, "stream", &params->stream);
    json_t *stop = json_object_get(root, "stop");
    size_t n_stop = json_is_string(stop) ? 1 : json_is_array(stop) ? json_array_size(stop) : 0;
    if (n_stop > GW_MAX_STOP)
        return "too many stop sequences";
    if (n_stop) {
        params->stop = arena_alloc(&params->mem, n_stop * sizeof(char *));
        if (!params->stop)
            return "out of memory";
        for (size_t i = 0; i < n_stop; i++) {
            json_t *s = json_is_string(stop) ? stop : json_array_get(stop, i);
            if (!json_is_string(s))
                return "\"stop\" must be a string or a list of strings";
            params->stop[params->n_stop] = chat_strdup(params, json_string_value(s));
            if (!params->stop[params->n_stop++])
                return "out of memory";
        }
    }
    return NULL;
}

void gw_handle_completions(gateway *gw, const http_request *hreq, http_response *resp)
{
    if (!need_engine(gw, resp))
        return;
    json_t *root = parse_object(hreq, resp);
    if (!root)
        return;
    exchange ex;
    ex_init(&ex, gw, hreq, resp, FRONT_OPENAI, "completions");
    metrics_inflight(gw->metrics, 1);
    chat_request *params = chat_request_new();
    const char *prompt = NULL;
    const char *why = params ? read_params(root, params, &prompt) : "out of memory";
    completion c;
    memset(&c, 0, sizeof(c));
    c.ex = &ex;
    str_random_id("cmpl-", c.id, sizeof(c.id));
    c.created = (long)time(NULL);
    c.in_tokens = c.out_tokens = -1;
    buf_init(&c.text, GW_ANSWER_MAX);
    buf_init(&c.chunk, BUF_UNLIMITED);
    const char *model = json_get_str(root, "model");
    c.model = model ? model : gw->model_id;
    ex.model = c.model;
    ex.route = "local";
    if (why) {
        ex_send_error(&ex, 400, "invalid_request_error", why);
    } else {
        ex.stream = params->stream;
        backend_call call;
        memset(&call, 0, sizeof(call));
        call.cancel = &ex.cancel;
        call.cache_key = gw_cache_key(hreq);
        backend_result res;
        memset(&res, 0, sizeof(res));
        loco_err err;
        loco_err_clear(&err);
        ex_start_pinger(&ex);
        loco_status rc = backend_engine_complete_text(gw->engine, prompt, params, &call,
                                                      completion_event, &c, &res, &err);
        ex.in_tokens = c.in_tokens;
        ex.out_tokens = c.out_tokens;
        if (rc == LOCO_OK && ex.stream) {
            buf_reset(&c.chunk);
            buf_appends(&c.chunk, "data: [DONE]\n\n");
            ex_raw_write(&ex, c.chunk.data, c.chunk.len);
        } else if (rc == LOCO_OK) {
            buf_reset(&c.chunk);
            buf_appendf(&c.chunk, "{\"id\":\"%s\",\"object\":\"text_completion\",\"created\":%ld,"
                                  "\"model\":",
                        c.id, c.created);
            buf_append_json_str(&c.chunk, c.model, strlen(c.model));
            buf_appends(&c.chunk, ",\"choices\":[{\"text\":");
            buf_append_json_str(&c.chunk, c.text.data ? c.text.data : "", c.text.len);
            buf_appendf(&c.chunk, ",\"index\":0,\"logprobs\":null,\"finish_reason\":\"%s\"}],",
                        finish_reason(c.stop));
            usage_json(&c.chunk, c.in_tokens, c.out_tokens);
            buf_appendc(&c.chunk, '}');
            ex_send_json(&ex, 200, c.chunk.data, c.chunk.len);
        } else if (rc == LOCO_ERR_CANCELLED || __atomic_load_n(&ex.cancel, __ATOMIC_ACQUIRE)) {
            snprintf(ex.reason, sizeof(ex.reason), "client_gone");
        } else if (rc == LOCO_ERR_BUSY) {
            ex_send_busy(&ex);
        } else {
            int st = rc == LOCO_ERR_OVERFLOW      ? 400
                     : rc == LOCO_ERR_UNSUPPORTED ? 501
                     : rc == LOCO_ERR_INVALID     ? 400
                                                  : 500;
            log_msg(gw->cfg.log, LOG_WARN, "req=%s completion failed: %s", ex.id, err.msg);
            ex_send_error(&ex, st, st == 400 ? "invalid_request_error" : "api_error", err.msg);
        }
    }
    ex_finish(&ex);
    metrics_inflight(gw->metrics, -1);
    buf_release(&c.text);
    buf_release(&c.chunk);
    chat_request_free(params);
    json_decref(root);
    ex_release(&ex);
}
