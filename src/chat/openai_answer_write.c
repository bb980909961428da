/* openai_answer_write.c: neutral answers -> the OpenAI front's wire: chat.completion.chunk
 * SSE, a whole chat.completion and error bodies. Part of the OpenAI codec (openai.h,
 * docs/internals/openai.md). */
#include "base/common.h"

#include "base/json.h"
#include "base/str.h"
#include "base/utf8.h"
#include "chat/openai_int.h"

/* ======================================================================================
 * Writing answers (the OpenAI front)
 * ==================================================================================== */

static void copy_str(char *dst, size_t size, const char *s)
{
    snprintf(dst, size, "%s", s ? s : "");
}

void chat_oai_sse_init(chat_oai_sse_writer *w, const char *model, bool include_usage, buf *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    copy_str(w->model, sizeof(w->model), model);
    w->include_usage = include_usage;
    w->created = (long)time(NULL);
}

/* {"id":..,"object":"chat.completion.chunk","created":..,"model":.., */
static loco_status chunk_head(chat_oai_sse_writer *w)
{
    loco_status rc = buf_appends(w->out, "data: {\"id\":");
    if (!rc)
        rc = json_append_cstr_lossy(w->out, w->id);
    if (!rc)
        rc = buf_appendf(w->out, ",\"object\":\"chat.completion.chunk\",\"created\":%ld,\"model\":",
                         w->created);
    if (!rc)
        rc = json_append_cstr_lossy(w->out, w->model);
    return rc;
}

/* A whole chunk whose choice 0 has the given delta JSON (prefix, optional string, suffix). */
static loco_status chunk(chat_oai_sse_writer *w, const char *delta_pre, const char *s, size_t n,
                         const char *delta_post, const char *finish)
{
    loco_status rc = chunk_head(w);
    if (!rc)
        rc = buf_appends(w->out, ",\"choices\":[{\"index\":0,\"delta\":");
    if (!rc)
        rc = buf_appends(w->out, delta_pre);
    if (!rc && s)
        rc = json_append_str_lossy(w->out, s, n);
    if (!rc)
        rc = buf_appends(w->out, delta_post);
    if (!rc)
        rc = buf_appendf(w->out, ",\"finish_reason\":%s%s%s}]}\n\n", finish ? "\"" : "",
                         finish ? finish : "null", finish ? "\"" : "");
    return rc;
}

static loco_status sse_start(chat_oai_sse_writer *w, const chat_event *ev)
{
    w->started = true;
    if (ev->type == CHAT_EV_MESSAGE_START && ev->id && *ev->id)
        copy_str(w->id, sizeof(w->id), ev->id);
    else
        str_random_id("chatcmpl-", w->id, sizeof(w->id));
    if (!w->model[0] && ev->type == CHAT_EV_MESSAGE_START)
        copy_str(w->model, sizeof(w->model), ev->model);
    return chunk(w, "{\"role\":\"assistant\",\"content\":\"\"}", NULL, 0, "", NULL);
}

/* Writes s[0..n) as a delta of the given kind (1 text, 2 thinking, 3 tool args). */
static loco_status kind_chunk(chat_oai_sse_writer *w, int kind, int index, const char *s, size_t n)
{
    if (kind == 1)
        return chunk(w, "{\"content\":", s, n, "}", NULL);
    if (kind == 2)
        return chunk(w, "{\"reasoning_content\":", s, n, "}", NULL);
    char pre[96];
    snprintf(pre, sizeof(pre), "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":", index);
    return chunk(w, pre, s, n, "}}]}", NULL);
}

/* Writes what is held back from the previous delta (an unfinished UTF-8 sequence). */
static loco_status flush_pending(chat_oai_sse_writer *w)
{
    if (!w->n_pending)
        return LOCO_OK;
    size_t n = w->n_pending;
    w->n_pending = 0;
    return kind_chunk(w, w->pending_kind, w->pending_index, w->pending, n);
}

static loco_status sse_delta(chat_oai_sse_writer *w, int kind, int index, const char *s, size_t n)
{
    loco_status rc = LOCO_OK;
    if (w->n_pending && (w->pending_kind != kind || w->pending_index != index))
        rc = flush_pending(w);
    if (rc || !n)
        return rc;
    buf joined;
    buf_init(&joined, BUF_UNLIMITED);
    rc = buf_append(&joined, w->pending, w->n_pending);
    if (!rc)
        rc = buf_append(&joined, s, n);
    if (!rc) {
        size_t whole = utf8_complete_len(buf_str(&joined), joined.len);
        w->n_pending = joined.len - whole;
        memcpy(w->pending, buf_str(&joined) + whole, w->n_pending);
        w->pending_kind = kind;
        w->pending_index = index;
        if (whole)
            rc = kind_chunk(w, kind, index, buf_str(&joined), whole);
    }
    buf_release(&joined);
    return rc;
}

static const char *finish_reason(chat_stop stop)
{
    switch (stop) {
    case CHAT_STOP_MAX_TOKENS: return "length";
    case CHAT_STOP_TOOL_USE: return "tool_calls";
    case CHAT_STOP_END_TURN:
    case CHAT_STOP_STOP_SEQUENCE:
    case CHAT_STOP_NONE: break;
    }
    return "stop";
}

/* "usage":{...} in OpenAI terms; unknown counts are written as 0. */
static loco_status append_usage(buf *out, const chat_usage *u)
{
    long in = u->input_tokens > 0 ? u->input_tokens : 0;
    long outp = u->output_tokens > 0 ? u->output_tokens : 0;
    loco_status rc = buf_appendf(out, "\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,"
                                      "\"total_tokens\":%ld",
                                 in, outp, in + outp);
    if (!rc && u->cache_read_input_tokens > 0)
        rc = buf_appendf(out, ",\"prompt_tokens_details\":{\"cached_tokens\":%ld}",
                         u->cache_read_input_tokens);
    if (!rc)
        rc = buf_appendc(out, '}');
    return rc;
}

static loco_status sse_end(chat_oai_sse_writer *w, const chat_event *ev)
{
    w->done = true;
    loco_status rc = chunk(w, "{}", NULL, 0, "", finish_reason(ev->stop));
    if (!rc && w->include_usage) {
        rc = chunk_head(w);
        if (!rc)
            rc = buf_appends(w->out, ",\"choices\":[],");
        if (!rc)
            rc = append_usage(w->out, &ev->usage);
        if (!rc)
            rc = buf_appends(w->out, "}\n\n");
    }
    if (!rc)
        rc = buf_appends(w->out, "data: [DONE]\n\n");
    return rc;
}

static loco_status sse_error(chat_oai_sse_writer *w, const chat_event *ev)
{
    w->done = true;
    buf msg;
    buf_init(&msg, BUF_UNLIMITED);
    loco_status rc = buf_append(&msg, ev->text ? ev->text : "", ev->text ? ev->len : 0);
    if (!rc)
        rc = buf_appends(w->out, "data: ");
    if (!rc)
        rc = chat_oai_write_error(w->out, ev->error_type ? ev->error_type : "api_error",
                                  buf_str(&msg));
    if (!rc)
        rc = buf_appends(w->out, "\n\ndata: [DONE]\n\n");
    buf_release(&msg);
    return rc;
}

static loco_status sse_tool_start(chat_oai_sse_writer *w, const chat_event *ev)
{
    char pre[64];
    snprintf(pre, sizeof(pre), "{\"tool_calls\":[{\"index\":%d,\"id\":", ev->index);
    loco_status rc = chunk_head(w);
    if (!rc)
        rc = buf_appends(w->out, ",\"choices\":[{\"index\":0,\"delta\":");
    if (!rc)
        rc = buf_appends(w->out, pre);
    if (!rc)
        rc = json_append_cstr_lossy(w->out, ev->id);
    if (!rc)
        rc = buf_appends(w->out, ",\"type\":\"function\",\"function\":{\"name\":");
    if (!rc)
        rc = json_append_cstr_lossy(w->out, ev->name);
    if (!rc)
        rc = buf_appends(w->out, ",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n");
    return rc;
}

loco_status chat_oai_sse_on_event(void *ctx, const chat_event *ev)
{
    chat_oai_sse_writer *w = ctx;
    if (w->done)
        return LOCO_OK;
    if (ev->type == CHAT_EV_PING)
        return buf_appends(w->out, ": ping\n\n");
    loco_status rc = LOCO_OK;
    if (!w->started && ev->type != CHAT_EV_ERROR)
        rc = sse_start(w, ev);
    if (rc || ev->type == CHAT_EV_MESSAGE_START)
        return rc;
    switch (ev->type) {
    case CHAT_EV_TEXT_DELTA: return sse_delta(w, 1, 0, ev->text, ev->len);
    case CHAT_EV_THINKING_DELTA: return sse_delta(w, 2, 0, ev->text, ev->len);
    case CHAT_EV_TOOL_ARGS_DELTA: return sse_delta(w, 3, ev->index, ev->text, ev->len);
    default: break;
    }
    rc = flush_pending(w);
    if (rc)
        return rc;
    switch (ev->type) {
    case CHAT_EV_TOOL_CALL_START: return sse_tool_start(w, ev);
    case CHAT_EV_MESSAGE_END: return sse_end(w, ev);
    case CHAT_EV_ERROR: return sse_error(w, ev);
    default: break;
    }
    return LOCO_OK;
}

/* Appends the concatenated blocks of one type as a JSON string. */
static loco_status append_answer_text(buf *out, const chat_answer *a, chat_block_type type)
{
    buf t;
    buf_init(&t, BUF_UNLIMITED);
    loco_status rc = LOCO_OK;
    for (size_t i = 0; i < a->n_blocks && !rc; i++) {
        if (a->blocks[i].type == type)
            rc = buf_append(&t, a->blocks[i].text, a->blocks[i].len);
    }
    if (!rc)
        rc = json_append_str_lossy(out, buf_str(&t), t.len);
    buf_release(&t);
    return rc;
}

static loco_status append_answer_calls(buf *out, const chat_answer *a)
{
    loco_status rc = buf_appends(out, ",\"tool_calls\":[");
    bool first = true;
    for (size_t i = 0; i < a->n_blocks && !rc; i++) {
        const chat_answer_block *b = &a->blocks[i];
        if (b->type != CHAT_BLOCK_TOOL_CALL)
            continue;
        rc = chat_oai_put_tool_call(out, first, b->id, b->name, b->text, b->len);
        first = false;
    }
    if (!rc)
        rc = buf_appendc(out, ']');
    return rc;
}

static bool answer_has(const chat_answer *a, chat_block_type type)
{
    for (size_t i = 0; i < a->n_blocks; i++) {
        if (a->blocks[i].type == type)
            return true;
    }
    return false;
}

static loco_status append_answer_message(buf *out, const chat_answer *a)
{
    bool calls = chat_answer_tool_calls(a) > 0;
    loco_status rc = buf_appends(out, "{\"role\":\"assistant\",\"content\":");
    if (!rc && calls && !answer_has(a, CHAT_BLOCK_TEXT))
        rc = buf_appends(out, "null");
    else if (!rc)
        rc = append_answer_text(out, a, CHAT_BLOCK_TEXT);
    if (!rc && answer_has(a, CHAT_BLOCK_THINKING)) {
        rc = buf_appends(out, ",\"reasoning_content\":");
        if (!rc)
            rc = append_answer_text(out, a, CHAT_BLOCK_THINKING);
    }
    if (!rc && calls)
        rc = append_answer_calls(out, a);
    if (!rc)
        rc = buf_appendc(out, '}');
    return rc;
}

loco_status chat_oai_write_response(const chat_answer *a, const char *model, buf *out)
{
    if (a->failed)
        return chat_oai_write_error(out, a->error_type ? a->error_type : "api_error",
                                    a->error_message ? a->error_message : "upstream error");
    char gen[64];
    const char *id = a->id;
    if (!id || !*id) {
        str_random_id("chatcmpl-", gen, sizeof(gen));
        id = gen;
    }
    loco_status rc = buf_appends(out, "{\"id\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, id);
    if (!rc)
        rc = buf_appendf(out, ",\"object\":\"chat.completion\",\"created\":%ld,\"model\":",
                         (long)time(NULL));
    if (!rc)
        rc = json_append_cstr_lossy(out, model ? model : a->model);
    if (!rc)
        rc = buf_appends(out, ",\"choices\":[{\"index\":0,\"message\":");
    if (!rc)
        rc = append_answer_message(out, a);
    chat_stop stop = a->stop;
    if (stop == CHAT_STOP_END_TURN && chat_answer_tool_calls(a))
        stop = CHAT_STOP_TOOL_USE;
    if (!rc)
        rc = buf_appendf(out, ",\"finish_reason\":\"%s\"}],", finish_reason(stop));
    if (!rc)
        rc = append_usage(out, &a->usage);
    if (!rc)
        rc = buf_appendc(out, '}');
    return rc;
}

loco_status chat_oai_write_error(buf *out, const char *type, const char *message)
{
    const char *msg = message ? message : "";
    loco_status rc = buf_appends(out, "{\"error\":{\"message\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, msg);
    if (!rc)
        rc = buf_appends(out, ",\"type\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, type ? type : "api_error");
    if (!rc)
        rc = buf_appends(out, chat_oai_text_says_overflow(msg, strlen(msg))
                                  ? ",\"code\":\"context_length_exceeded\"}}"
                                  : ",\"code\":null}}");
    return rc;
}
