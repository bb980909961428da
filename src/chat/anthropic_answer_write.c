/* anthropic_answer_write.c: neutral answers -> Anthropic wire: the streaming SSE writer, the
 * non-stream message writer and error bodies (the gateway's Anthropic front). Part of the
 * Anthropic codec (anthropic.h, docs/internals/anthropic.md). */
#include "base/common.h"

#include "base/json.h"
#include "base/str.h"
#include "base/utf8.h"
#include "chat/anthropic_int.h"

/* Room for a generated id: prefix + 24 characters + NUL. */
#define ANTH_ID_MAX 48

/* ======================================================================
 * JSON output helpers
 * ====================================================================== */

/* Appends "usage" members shared by the message writers: the cache counts when nonzero. */
static loco_status put_cache_usage(buf *b, const chat_usage *u)
{
    loco_status rc = LOCO_OK;
    if (u->cache_creation_input_tokens > 0)
        rc = buf_appendf(b, ",\"cache_creation_input_tokens\":%ld", u->cache_creation_input_tokens);
    if (!rc && u->cache_read_input_tokens > 0)
        rc = buf_appendf(b, ",\"cache_read_input_tokens\":%ld", u->cache_read_input_tokens);
    return rc;
}

static const char *stop_or_default(chat_stop stop, bool had_tools)
{
    const char *s = chat_stop_str(stop);
    if (s)
        return s;
    return had_tools ? "tool_use" : "end_turn";
}

/* ======================================================================
 * Errors
 * ====================================================================== */

loco_status chat_anth_write_error(buf *out, const char *type, const char *message)
{
    loco_status rc = buf_appends(out, "{\"type\":\"error\",\"error\":{\"type\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, type ? type : "api_error");
    if (!rc)
        rc = buf_appends(out, ",\"message\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, message);
    return rc ? rc : buf_appends(out, "}}");
}

const char *chat_anth_error_type(int http_status)
{
    switch (http_status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: /* "temporarily unavailable": Claude Code retries overloaded_error */
    case 529: return "overloaded_error";
    default: break;
    }
    if (http_status >= 400 && http_status < 500)
        return "invalid_request_error"; /* the API's own choice for other 4xx */
    return "api_error";
}

/* ======================================================================
 * SSE writer
 * ====================================================================== */

void chat_anth_sse_init(chat_anth_sse_writer *w, const char *model, buf *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->model = model;
    w->input_tokens = -1;
}

bool chat_anth_sse_started(const chat_anth_sse_writer *w)
{
    return w->started;
}

static loco_status sse_begin(chat_anth_sse_writer *w, const char *name)
{
    return buf_appendf(w->out, "event: %s\ndata: ", name);
}

static loco_status sse_end(chat_anth_sse_writer *w)
{
    return buf_appends(w->out, "\n\n");
}

/* message_start; ev may be NULL (synthesised). */
static loco_status sse_message_start(chat_anth_sse_writer *w, const chat_event *ev)
{
    char idbuf[ANTH_ID_MAX];
    const char *id = ev ? ev->id : NULL;
    if (!id) {
        str_random_id("msg_", idbuf, sizeof(idbuf));
        id = idbuf;
    }
    const char *model = w->model ? w->model : ev && ev->model ? ev->model : "";
    chat_usage u;
    chat_usage_init(&u);
    if (ev)
        u = ev->usage;
    w->input_tokens = u.input_tokens;
    w->started = true;
    buf *out = w->out;
    loco_status rc = sse_begin(w, "message_start");
    if (!rc)
        rc = buf_appends(out, "{\"type\":\"message_start\",\"message\":{\"id\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, id);
    if (!rc)
        rc = buf_appends(out, ",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],"
                              "\"model\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, model);
    if (!rc)
        rc = buf_appendf(out, ",\"stop_reason\":null,\"stop_sequence\":null,"
                              "\"usage\":{\"input_tokens\":%ld",
                         u.input_tokens > 0 ? u.input_tokens : 0);
    if (!rc)
        rc = put_cache_usage(out, &u);
    if (!rc)
        rc = buf_appends(out, ",\"output_tokens\":1}}}");
    return rc ? rc : sse_end(w);
}

static loco_status sse_ensure_started(chat_anth_sse_writer *w)
{
    return w->started ? LOCO_OK : sse_message_start(w, NULL);
}

/* One content_block_delta of the open block carrying s[0..n) (already complete UTF-8). */
static loco_status sse_delta_raw(chat_anth_sse_writer *w, const char *s, size_t n)
{
    static const char *const heads[] = {
        [KIND_TEXT] = "\"text_delta\",\"text\":",
        [KIND_THINKING] = "\"thinking_delta\",\"thinking\":",
        [KIND_TOOL] = "\"input_json_delta\",\"partial_json\":",
    };
    loco_status rc = sse_begin(w, "content_block_delta");
    if (!rc)
        rc = buf_appendf(w->out, "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":%s",
                         w->next_index, heads[w->open_kind]);
    if (!rc)
        rc = json_append_str_lossy(w->out, s, n);
    if (!rc)
        rc = buf_appends(w->out, "}}");
    return rc ? rc : sse_end(w);
}

/* Delta of the open block; a UTF-8 sequence cut at the end of p is held back until the
 * next delta of the block (or its close). */
static loco_status sse_delta(chat_anth_sse_writer *w, const char *p, size_t n)
{
    char *joined = NULL;
    const char *s = p;
    size_t len = n;
    if (w->n_pending) {
        joined = malloc(w->n_pending + n);
        if (!joined)
            return LOCO_ERR_NOMEM;
        memcpy(joined, w->pending, w->n_pending);
        memcpy(joined + w->n_pending, p, n);
        s = joined;
        len = w->n_pending + n;
        w->n_pending = 0;
    }
    size_t k = utf8_complete_len(s, len);
    loco_status rc = k ? sse_delta_raw(w, s, k) : LOCO_OK;
    if (!rc) {
        w->n_pending = len - k;
        memcpy(w->pending, s + k, w->n_pending);
    }
    free(joined);
    return rc;
}

static loco_status sse_close_block(chat_anth_sse_writer *w)
{
    if (w->open_kind == KIND_NONE)
        return LOCO_OK;
    loco_status rc = LOCO_OK;
    if (w->n_pending) { /* an unfinished UTF-8 sequence: json_append_str_lossy makes it U+FFFD */
        rc = sse_delta_raw(w, w->pending, w->n_pending);
        w->n_pending = 0;
    }
    if (!rc && w->open_kind == KIND_THINKING) {
        rc = sse_begin(w, "content_block_delta");
        if (!rc)
            rc = buf_appendf(w->out, "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":"
                                     "{\"type\":\"signature_delta\",\"signature\":\"\"}}",
                             w->next_index);
        if (!rc)
            rc = sse_end(w);
    }
    if (!rc)
        rc = sse_begin(w, "content_block_stop");
    if (!rc)
        rc = buf_appendf(w->out, "{\"type\":\"content_block_stop\",\"index\":%d}", w->next_index);
    if (!rc)
        rc = sse_end(w);
    w->open_kind = KIND_NONE;
    w->next_index++;
    return rc;
}

/* Opens a text or thinking block unless one of that kind is open. */
static loco_status sse_open_text(chat_anth_sse_writer *w, int kind)
{
    if (w->open_kind == kind)
        return LOCO_OK;
    loco_status rc = sse_close_block(w);
    if (!rc)
        rc = sse_begin(w, "content_block_start");
    if (!rc)
        rc = buf_appendf(w->out,
                         "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":%s}",
                         w->next_index,
                         kind == KIND_TEXT ? "{\"type\":\"text\",\"text\":\"\"}"
                                           : "{\"type\":\"thinking\",\"thinking\":\"\"}");
    if (!rc)
        rc = sse_end(w);
    w->open_kind = kind;
    return rc;
}

static loco_status sse_tool_start(chat_anth_sse_writer *w, const chat_event *ev)
{
    char idbuf[ANTH_ID_MAX];
    const char *id = ev->id;
    if (!id) {
        str_random_id("toolu_", idbuf, sizeof(idbuf));
        id = idbuf;
    }
    loco_status rc = sse_close_block(w);
    if (!rc)
        rc = sse_begin(w, "content_block_start");
    if (!rc)
        rc = buf_appendf(w->out, "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":"
                                 "{\"type\":\"tool_use\",\"id\":",
                         w->next_index);
    if (!rc)
        rc = json_append_cstr_lossy(w->out, id);
    if (!rc)
        rc = buf_appends(w->out, ",\"name\":");
    if (!rc)
        rc = json_append_cstr_lossy(w->out, ev->name);
    if (!rc)
        rc = buf_appends(w->out, ",\"input\":{}}}");
    if (!rc)
        rc = sse_end(w);
    w->open_kind = KIND_TOOL;
    w->open_tool = ev->index;
    w->tool_blocks++;
    return rc;
}

static loco_status sse_message_end(chat_anth_sse_writer *w, const chat_event *ev)
{
    loco_status rc = sse_close_block(w);
    const chat_usage *u = &ev->usage;
    long input = u->input_tokens >= 0 ? u->input_tokens : w->input_tokens;
    const char *seq = ev->stop == CHAT_STOP_STOP_SEQUENCE ? ev->stop_sequence : NULL;
    if (!rc)
        rc = sse_begin(w, "message_delta");
    if (!rc)
        rc = buf_appendf(w->out, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\","
                                 "\"stop_sequence\":",
                         stop_or_default(ev->stop, w->tool_blocks > 0));
    if (!rc)
        rc = seq ? json_append_cstr_lossy(w->out, seq) : buf_appends(w->out, "null");
    if (!rc)
        rc = buf_appendf(w->out, "},\"usage\":{\"output_tokens\":%ld",
                         u->output_tokens > 0 ? u->output_tokens : 0);
    if (!rc && input >= 0)
        rc = buf_appendf(w->out, ",\"input_tokens\":%ld", input);
    if (!rc)
        rc = put_cache_usage(w->out, u);
    if (!rc)
        rc = buf_appends(w->out, "}}");
    if (!rc)
        rc = sse_end(w);
    if (!rc)
        rc = buf_appends(w->out, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    w->finished = true;
    return rc;
}

static loco_status sse_error(chat_anth_sse_writer *w, const chat_event *ev)
{
    buf msg;
    buf_init(&msg, BUF_UNLIMITED);
    loco_status rc = buf_append(&msg, ev->text ? ev->text : "", ev->text ? ev->len : 0);
    if (!rc)
        rc = sse_begin(w, "error");
    if (!rc)
        rc = chat_anth_write_error(w->out, ev->error_type, buf_str(&msg));
    if (!rc)
        rc = sse_end(w);
    buf_release(&msg);
    w->finished = true;
    return rc;
}

static loco_status sse_text_like(chat_anth_sse_writer *w, const chat_event *ev, int kind)
{
    if (ev->len == 0)
        return LOCO_OK;
    loco_status rc = sse_ensure_started(w);
    if (!rc)
        rc = sse_open_text(w, kind);
    return rc ? rc : sse_delta(w, ev->text, ev->len);
}

loco_status chat_anth_sse_on_event(void *ctx, const chat_event *ev)
{
    chat_anth_sse_writer *w = ctx;
    if (w->finished)
        return LOCO_OK;
    loco_status rc = LOCO_OK;
    switch (ev->type) {
    case CHAT_EV_MESSAGE_START:
        return w->started ? LOCO_OK : sse_message_start(w, ev);
    case CHAT_EV_TEXT_DELTA:
        return sse_text_like(w, ev, KIND_TEXT);
    case CHAT_EV_THINKING_DELTA:
        return sse_text_like(w, ev, KIND_THINKING);
    case CHAT_EV_TOOL_CALL_START:
        rc = sse_ensure_started(w);
        return rc ? rc : sse_tool_start(w, ev);
    case CHAT_EV_TOOL_ARGS_DELTA:
        if (w->open_kind != KIND_TOOL || w->open_tool != ev->index)
            return LOCO_ERR_INVALID; /* Anthropic blocks cannot be reopened */
        return ev->len ? sse_delta(w, ev->text, ev->len) : LOCO_OK;
    case CHAT_EV_TOOL_CALL_END:
        if (w->open_kind != KIND_TOOL || w->open_tool != ev->index)
            return LOCO_OK;
        return sse_close_block(w);
    case CHAT_EV_MESSAGE_END:
        rc = sse_ensure_started(w);
        return rc ? rc : sse_message_end(w, ev);
    case CHAT_EV_ERROR:
        return sse_error(w, ev);
    case CHAT_EV_PING:
        return buf_appends(w->out, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
    }
    return LOCO_OK;
}

/* ======================================================================
 * Non-stream message writer
 * ====================================================================== */

static loco_status put_answer_block(buf *out, const chat_answer_block *b)
{
    loco_status rc;
    char idbuf[ANTH_ID_MAX];
    switch (b->type) {
    case CHAT_BLOCK_TOOL_CALL:
        if (!b->id)
            str_random_id("toolu_", idbuf, sizeof(idbuf));
        rc = chat_anth_put_tool_use(out, b->id ? b->id : idbuf, b->name, b->text);
        break;
    case CHAT_BLOCK_THINKING:
        rc = buf_appends(out, "{\"type\":\"thinking\",\"thinking\":");
        if (!rc)
            rc = json_append_str_lossy(out, b->text ? b->text : "", b->len);
        if (!rc)
            rc = buf_appends(out, ",\"signature\":\"\"");
        break;
    default:
        rc = buf_appends(out, "{\"type\":\"text\",\"text\":");
        if (!rc)
            rc = json_append_str_lossy(out, b->text ? b->text : "", b->len);
        break;
    }
    return rc ? rc : buf_appendc(out, '}');
}

loco_status chat_anth_write_message(const chat_answer *a, const char *model, buf *out)
{
    char idbuf[ANTH_ID_MAX];
    const char *id = a->id;
    if (!id) {
        str_random_id("msg_", idbuf, sizeof(idbuf));
        id = idbuf;
    }
    if (!model)
        model = a->model ? a->model : "";
    loco_status rc = buf_appends(out, "{\"id\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, id);
    if (!rc)
        rc = buf_appends(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, model);
    if (!rc)
        rc = buf_appends(out, ",\"content\":[");
    size_t n = 0;
    for (size_t i = 0; !rc && i < a->n_blocks; i++) {
        const chat_answer_block *b = &a->blocks[i];
        if (b->type != CHAT_BLOCK_TOOL_CALL && b->len == 0)
            continue;
        if (n++)
            rc = buf_appendc(out, ',');
        if (!rc)
            rc = put_answer_block(out, b);
    }
    const char *seq = a->stop == CHAT_STOP_STOP_SEQUENCE ? a->stop_sequence : NULL;
    if (!rc)
        rc = buf_appendf(out, "],\"stop_reason\":\"%s\",\"stop_sequence\":",
                         stop_or_default(a->stop, chat_answer_tool_calls(a) > 0));
    if (!rc)
        rc = seq ? json_append_cstr_lossy(out, seq) : buf_appends(out, "null");
    if (!rc)
        rc = buf_appendf(out, ",\"usage\":{\"input_tokens\":%ld,\"output_tokens\":%ld",
                         a->usage.input_tokens > 0 ? a->usage.input_tokens : 0,
                         a->usage.output_tokens > 0 ? a->usage.output_tokens : 0);
    if (!rc)
        rc = put_cache_usage(out, &a->usage);
    return rc ? rc : buf_appends(out, "}}");
}
