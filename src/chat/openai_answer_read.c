/* openai_answer_read.c: upstream answers (chat.completion.chunk stream payloads or a whole
 * chat.completion body) -> neutral events, and the error-body helpers. Part of the OpenAI
 * codec (openai.h, docs/internals/openai.md). */
#include "base/common.h"

#include "base/json.h"
#include "base/str.h"
#include "base/utf8.h"
#include "chat/openai_int.h"

/* ======================================================================================
 * Error bodies
 * ==================================================================================== */

/* Case-insensitive search of needle in hay[0..n). */
static bool contains_ci(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; m <= n && i <= n - m; i++) {
        if (!strncasecmp(hay + i, needle, m))
            return true;
    }
    return false;
}

/* Phrases servers use when a prompt does not fit (llama-server, vLLM, Ollama, OpenAI). */
bool chat_oai_text_says_overflow(const char *s, size_t n)
{
    static const char *const phrases[] = {
        "exceed_context_size",  "context_length_exceeded", "maximum context length",
        "context length",       "context window",          "context size",
        "maximum context",      "too many tokens",         "prompt is too long",
        "prompt too long",      "n_ctx",
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(phrases); i++) {
        if (contains_ci(s, n, phrases[i]))
            return true;
    }
    return false;
}

/* The object describing an error in a parsed body, or NULL when v is not an error:
 * {"error":{...}}, {"error":"text"} (returns v), vLLM's {"object":"error",...} (returns v). */
static const json_t *error_object(const json_t *v)
{
    if (!json_is_object(v))
        return NULL;
    const json_t *e = json_object_get(v, "error");
    if (json_is_object(e))
        return e;
    if (json_is_string(e))
        return v;
    const char *obj = json_get_str(v, "object");
    if (obj && !strcmp(obj, "error"))
        return v;
    return NULL;
}

/* Copies s[0..n) into out[0..size), cut on a UTF-8 boundary. */
static void copy_truncated(const char *s, size_t n, char *out, size_t size)
{
    if (!size)
        return;
    if (n >= size)
        n = utf8_complete_len(s, size - 1);
    memcpy(out, s, n);
    out[n] = '\0';
}

/* The human message of a parsed error body, or NULL. Borrowed from v. */
static const char *error_message_json(const json_t *v)
{
    const json_t *e = json_is_object(v) ? json_object_get(v, "error") : NULL;
    if (json_is_object(e) && json_get_str(e, "message"))
        return json_get_str(e, "message");
    if (json_is_string(e))
        return json_string_value(e);
    if (json_get_str(v, "message"))
        return json_get_str(v, "message");
    return json_get_str(v, "detail");
}

static bool json_overflow(const json_t *v)
{
    const json_t *e = error_object(v);
    if (!e)
        e = v;
    const char *type = json_get_str(e, "type");
    const char *code = json_get_str(e, "code");
    if (type && !strcmp(type, "exceed_context_size_error"))
        return true;
    if (code && !strcmp(code, "context_length_exceeded"))
        return true;
    const char *msg = error_message_json(v);
    return msg && chat_oai_text_says_overflow(msg, strlen(msg));
}

bool chat_oai_error_is_context_overflow(const char *body, size_t n)
{
    if (!body || !n)
        return false;
    json_t *v = json_parse(body, n, NULL);
    bool yes;
    if (json_is_object(v))
        yes = json_overflow(v);
    else
        yes = chat_oai_text_says_overflow(body, n);
    json_decref(v);
    return yes;
}

void chat_oai_error_message(const char *body, size_t n, char *out, size_t size)
{
    if (!size)
        return;
    out[0] = '\0';
    if (!body || !n)
        return;
    json_t *v = json_parse(body, n, NULL);
    if (json_is_object(v)) {
        const char *m = error_message_json(v);
        if (m)
            copy_truncated(m, strlen(m), out, size);
    } else if (!v) {
        while (n && (*body == ' ' || *body == '\n' || *body == '\r' || *body == '\t')) {
            body++;
            n--;
        }
        while (n && (body[n - 1] == ' ' || body[n - 1] == '\n' || body[n - 1] == '\r' ||
                     body[n - 1] == '\t'))
            n--;
        if (utf8_valid(body, n) && !memchr(body, '\0', n))
            copy_truncated(body, n, out, size);
    }
    json_decref(v);
}

/* ======================================================================================
 * Reading an upstream answer (stream chunks or a whole body)
 * ==================================================================================== */

static void ev_init(chat_event *ev, chat_event_type type)
{
    memset(ev, 0, sizeof(*ev));
    chat_usage_init(&ev->usage);
    ev->type = type;
}

void chat_oai_stream_init(chat_oai_stream_reader *r, chat_event_fn cb, void *ctx)
{
    memset(r, 0, sizeof(*r));
    r->cb = cb;
    r->ctx = ctx;
    chat_usage_init(&r->usage);
}

void chat_oai_stream_release(chat_oai_stream_reader *r)
{
    for (size_t i = 0; i < r->n_calls; i++) {
        free(r->calls[i].id);
        free(r->calls[i].name);
        buf_release(&r->calls[i].pending);
    }
    free(r->calls);
    chat_event_fn cb = r->cb;
    void *ctx = r->ctx;
    chat_oai_stream_init(r, cb, ctx);
}

bool chat_oai_stream_done(const chat_oai_stream_reader *r)
{
    return r->ended;
}

static loco_status emit_start(chat_oai_stream_reader *r, const json_t *chunk)
{
    if (r->started)
        return LOCO_OK;
    r->started = true;
    chat_event ev;
    ev_init(&ev, CHAT_EV_MESSAGE_START);
    ev.id = json_get_str(chunk, "id");
    ev.model = json_get_str(chunk, "model");
    return r->cb(r->ctx, &ev);
}

static loco_status emit_text(chat_oai_stream_reader *r, chat_event_type type, const json_t *s)
{
    if (!json_is_string(s) || !json_string_length(s))
        return LOCO_OK;
    chat_event ev;
    ev_init(&ev, type);
    ev.text = json_string_value(s);
    ev.len = json_string_length(s);
    return r->cb(r->ctx, &ev);
}

static loco_status emit_call_event(chat_oai_stream_reader *r, chat_event_type type,
                                   const chat_oai_stream_call *c)
{
    chat_event ev;
    ev_init(&ev, type);
    ev.index = c->event_index;
    if (type == CHAT_EV_TOOL_CALL_START) {
        ev.id = c->id;
        ev.name = c->name;
    } else if (type == CHAT_EV_TOOL_ARGS_DELTA) {
        ev.text = buf_str(&c->pending);
        ev.len = c->pending.len;
    }
    return r->cb(r->ctx, &ev);
}

/* Moves the calls that can be emitted now into the event stream, in the order they first
 * appeared. A call is known to be complete when the stream is closing or when two later
 * fragments have gone to other calls (a single fragment of the next call may still be
 * followed by more of this one on servers that interleave). */
static loco_status pump(chat_oai_stream_reader *r, bool closing)
{
    closing = closing || r->finished;
    while (r->next < r->n_calls) {
        chat_oai_stream_call *c = &r->calls[r->next];
        loco_status rc = LOCO_OK;
        if (!c->started) {
            if (!c->name && !closing)
                return LOCO_OK;
            if (!c->name) { /* never named: nothing a client could call */
                c->ended = true;
                r->next++;
                continue;
            }
            if (!c->id) {
                char gen[64];
                str_random_id("toolu_", gen, sizeof(gen));
                c->id = strdup(gen);
                if (!c->id)
                    return LOCO_ERR_NOMEM;
            }
            c->event_index = r->n_emitted++;
            c->started = true;
            rc = emit_call_event(r, CHAT_EV_TOOL_CALL_START, c);
        }
        if (!rc && c->pending.len)
            rc = emit_call_event(r, CHAT_EV_TOOL_ARGS_DELTA, c);
        buf_reset(&c->pending);
        if (rc)
            return rc;
        if (!closing && r->seq - c->last_seq < 2)
            return LOCO_OK;
        c->ended = true;
        r->next++;
        rc = emit_call_event(r, CHAT_EV_TOOL_CALL_END, c);
        if (rc)
            return rc;
    }
    return LOCO_OK;
}

/* The slot for a fragment: by "index", else by id, else a new one when it names a call,
 * else the latest. */
static loco_status find_call(chat_oai_stream_reader *r, const json_t *tc,
                             chat_oai_stream_call **out, loco_err *err)
{
    long idx = -1;
    bool has_idx = json_get_long(tc, "index", &idx) && idx >= 0;
    const char *id = json_get_str(tc, "id");
    const json_t *fn = json_object_get(tc, "function");
    for (size_t i = r->n_calls; i-- > 0;) {
        chat_oai_stream_call *c = &r->calls[i];
        if (has_idx ? c->server_index == idx : (id && c->id && !strcmp(c->id, id))) {
            *out = c;
            return LOCO_OK;
        }
    }
    if (!has_idx && !id && !json_get_str(fn, "name") && r->n_calls) {
        *out = &r->calls[r->n_calls - 1];
        return LOCO_OK;
    }
    if (r->n_calls >= CHAT_OAI_MAX_STREAM_CALLS)
        return loco_err_set(err, LOCO_ERR_LIMIT, "more than %d tool calls in one answer",
                            CHAT_OAI_MAX_STREAM_CALLS);
    if (r->n_calls == r->cap_calls) {
        size_t ncap = r->cap_calls ? r->cap_calls * 2 : 4;
        chat_oai_stream_call *nc = realloc(r->calls, ncap * sizeof(*nc));
        if (!nc)
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory reading tool calls");
        r->calls = nc;
        r->cap_calls = ncap;
    }
    chat_oai_stream_call *c = &r->calls[r->n_calls++];
    memset(c, 0, sizeof(*c));
    c->server_index = has_idx ? idx : -1;
    buf_init(&c->pending, CHAT_OAI_MAX_PENDING_ARGS);
    *out = c;
    return LOCO_OK;
}

static loco_status set_once(char **slot, const char *s, loco_err *err)
{
    if (*slot || !s || !*s)
        return LOCO_OK;
    *slot = str_ndup(s, strnlen(s, CHAT_OAI_MAX_ID));
    return *slot ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
}

/* Appends function.arguments (a string fragment, or an object some servers send whole). */
static loco_status append_args(chat_oai_stream_call *c, const json_t *args, loco_err *err)
{
    loco_status rc = LOCO_OK;
    if (json_is_string(args))
        rc = buf_append(&c->pending, json_string_value(args), json_string_length(args));
    else if (json_is_object(args))
        rc = json_append(&c->pending, args);
    if (rc == LOCO_ERR_LIMIT)
        return loco_err_set(err, rc, "tool call arguments longer than %u bytes",
                            CHAT_OAI_MAX_PENDING_ARGS);
    if (rc)
        return loco_err_set(err, rc, "out of memory reading tool call arguments");
    return LOCO_OK;
}

static loco_status tool_fragment(chat_oai_stream_reader *r, const json_t *tc, loco_err *err)
{
    if (!json_is_object(tc))
        return loco_err_set(err, LOCO_ERR_INVALID, "stream chunk: tool_calls entry is not an object");
    chat_oai_stream_call *c = NULL;
    loco_status rc = find_call(r, tc, &c, err);
    if (rc)
        return rc;
    if (c->ended)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "stream chunk: arguments for tool call %ld after it was closed",
                            c->server_index);
    const json_t *fn = json_object_get(tc, "function");
    rc = set_once(&c->id, json_get_str(tc, "id"), err);
    if (!rc)
        rc = set_once(&c->name, json_get_str(fn, "name"), err);
    if (!rc)
        rc = append_args(c, json_is_object(fn) ? json_object_get(fn, "arguments") : NULL, err);
    if (rc)
        return rc;
    c->last_seq = ++r->seq;
    return pump(r, false);
}

static chat_stop map_finish(const char *fr)
{
    if (!strcmp(fr, "length"))
        return CHAT_STOP_MAX_TOKENS;
    if (!strcmp(fr, "tool_calls") || !strcmp(fr, "function_call"))
        return CHAT_STOP_TOOL_USE;
    return CHAT_STOP_END_TURN; /* stop, content_filter, anything else */
}

static void read_usage(chat_oai_stream_reader *r, const json_t *u)
{
    if (!json_is_object(u))
        return;
    long v;
    if (json_get_long(u, "prompt_tokens", &v))
        r->usage.input_tokens = v;
    if (json_get_long(u, "completion_tokens", &v))
        r->usage.output_tokens = v;
    if (json_get_long(json_object_get(u, "prompt_tokens_details"), "cached_tokens", &v))
        r->usage.cache_read_input_tokens = v;
}

/* A delta (stream) or message (whole body) of choice 0. */
static loco_status read_delta(chat_oai_stream_reader *r, const json_t *d, loco_err *err)
{
    if (!json_is_object(d))
        return LOCO_OK;
    const json_t *reasoning = json_object_get(d, "reasoning_content");
    if (!json_is_string(reasoning))
        reasoning = json_object_get(d, "reasoning");
    loco_status rc = emit_text(r, CHAT_EV_THINKING_DELTA, reasoning);
    const json_t *content = json_object_get(d, "content");
    if (!rc && json_is_array(content)) { /* content parts (rare in answers) */
        size_t i;
        json_t *part;
        json_array_foreach(content, i, part) {
            rc = emit_text(r, CHAT_EV_TEXT_DELTA, json_object_get(part, "text"));
            if (rc)
                break;
        }
    } else if (!rc) {
        rc = emit_text(r, CHAT_EV_TEXT_DELTA, content);
    }
    const json_t *calls = json_object_get(d, "tool_calls");
    size_t i;
    json_t *tc;
    json_array_foreach(calls, i, tc) {
        if (rc)
            break;
        rc = tool_fragment(r, tc, err);
    }
    const json_t *fc = json_object_get(d, "function_call"); /* legacy single call */
    if (!rc && json_is_object(fc)) {
        json_t *wrap = json_pack("{s:i,s:O}", "index", 0, "function", fc);
        rc = wrap ? tool_fragment(r, wrap, err) : LOCO_ERR_NOMEM;
        json_decref(wrap);
    }
    return rc;
}

static loco_status emit_error(chat_oai_stream_reader *r, const json_t *v)
{
    const char *msg = error_message_json(v);
    chat_event ev;
    ev_init(&ev, CHAT_EV_ERROR);
    ev.error_type = json_overflow(v) ? "invalid_request_error" : "api_error";
    ev.text = msg ? msg : "upstream error";
    ev.len = strlen(ev.text);
    r->done = true;
    r->ended = true;
    return r->cb(r->ctx, &ev);
}

/* One parsed chunk (or whole body, with key "message"). */
static loco_status read_chunk(chat_oai_stream_reader *r, const json_t *v, const char *key,
                              loco_err *err)
{
    if (error_object(v))
        return emit_error(r, v);
    loco_status rc = emit_start(r, v);
    const json_t *choices = json_object_get(v, "choices");
    const json_t *choice = json_array_get(choices, 0);
    if (!rc && json_is_object(choice)) {
        rc = read_delta(r, json_object_get(choice, key), err);
        const char *fr = json_get_str(choice, "finish_reason");
        if (!rc && fr && *fr) { /* some servers send "" while not finished */
            r->stop = map_finish(fr);
            r->finished = true;
            rc = pump(r, true);
        }
    }
    read_usage(r, json_object_get(v, "usage"));
    return rc;
}

static loco_status end_message(chat_oai_stream_reader *r)
{
    loco_status rc = pump(r, true);
    if (rc || r->ended)
        return rc;
    r->ended = true;
    chat_event ev;
    ev_init(&ev, CHAT_EV_MESSAGE_END);
    ev.stop = r->stop == CHAT_STOP_NONE ? CHAT_STOP_END_TURN : r->stop;
    if (ev.stop == CHAT_STOP_END_TURN && r->n_emitted > 0)
        ev.stop = CHAT_STOP_TOOL_USE;
    ev.usage = r->usage;
    return r->cb(r->ctx, &ev);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

loco_status chat_oai_stream_feed(chat_oai_stream_reader *r, const char *data, size_t n, loco_err *err)
{
    while (n && is_space(*data)) {
        data++;
        n--;
    }
    while (n && is_space(data[n - 1]))
        n--;
    if (r->done || !n)
        return LOCO_OK;
    if (n == 6 && !memcmp(data, "[DONE]", 6)) {
        r->done = true;
        return r->started ? end_message(r) : LOCO_OK;
    }
    json_t *v = json_parse(data, n, err);
    if (!v) {
        loco_err_wrap(err, "stream chunk");
        return LOCO_ERR_INVALID;
    }
    loco_status rc;
    if (!json_is_object(v))
        rc = loco_err_set(err, LOCO_ERR_INVALID, "stream chunk: expected a JSON object");
    else
        rc = read_chunk(r, v, "delta", err);
    json_decref(v);
    return rc;
}

loco_status chat_oai_stream_finish(chat_oai_stream_reader *r, loco_err *err)
{
    if (r->ended)
        return LOCO_OK;
    if (!r->started)
        return loco_err_set(err, LOCO_ERR_UPSTREAM, "the stream ended before any chunk");
    return end_message(r);
}

loco_status chat_oai_parse_response(const char *body, size_t n, chat_event_fn cb, void *ctx,
                                    loco_err *err)
{
    json_t *v = json_parse(body, n, err);
    if (!v) {
        loco_err_wrap(err, "chat.completion body");
        return LOCO_ERR_INVALID;
    }
    chat_oai_stream_reader r;
    chat_oai_stream_init(&r, cb, ctx);
    loco_status rc = LOCO_OK;
    const json_t *choices = json_object_get(v, "choices");
    if (!error_object(v) && (!json_is_array(choices) || !json_is_object(json_array_get(choices, 0))))
        rc = loco_err_set(err, LOCO_ERR_INVALID, "chat.completion body: choices: expected a "
                                                 "non-empty array");
    if (!rc)
        rc = read_chunk(&r, v, "message", err);
    if (!rc && !r.ended)
        rc = end_message(&r);
    chat_oai_stream_release(&r);
    json_decref(v);
    return rc;
}
