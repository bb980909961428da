/* anthropic_answer_read.c: upstream Anthropic answers (SSE events or a whole message body)
 * -> neutral events (the anthropic-http backend). Part of the Anthropic codec (anthropic.h,
 * docs/internals/anthropic.md). */
#include "base/common.h"

#include "base/json.h"
#include "chat/anthropic_int.h"

/* ======================================================================
 * Reading upstream answers
 * ====================================================================== */

static void ev_init(chat_event *ev, chat_event_type type)
{
    memset(ev, 0, sizeof(*ev));
    chat_usage_init(&ev->usage);
    ev->type = type;
}

/* Reads the usage members present in obj into u (absent ones are left alone). */
static void read_usage(const json_t *obj, chat_usage *u)
{
    long v;
    if (!json_is_object(obj))
        return;
    if (chat_anth_int_value(json_object_get(obj, "input_tokens"), &v))
        u->input_tokens = v;
    if (chat_anth_int_value(json_object_get(obj, "output_tokens"), &v))
        u->output_tokens = v;
    if (chat_anth_int_value(json_object_get(obj, "cache_read_input_tokens"), &v))
        u->cache_read_input_tokens = v;
    if (chat_anth_int_value(json_object_get(obj, "cache_creation_input_tokens"), &v))
        u->cache_creation_input_tokens = v;
}

static loco_status emit_text(chat_event_fn cb, void *ctx, chat_event_type type, const char *s)
{
    if (!s || !*s)
        return LOCO_OK;
    chat_event ev;
    ev_init(&ev, type);
    ev.text = s;
    ev.len = strlen(s);
    return cb(ctx, &ev);
}

static loco_status emit_simple(chat_event_fn cb, void *ctx, chat_event_type type, int index)
{
    chat_event ev;
    ev_init(&ev, type);
    ev.index = index;
    return cb(ctx, &ev);
}

static loco_status emit_error(chat_event_fn cb, void *ctx, const json_t *root)
{
    const json_t *e = json_object_get(root, "error");
    const char *type = json_get_str(e, "type");
    const char *msg = json_get_str(e, "message");
    chat_event ev;
    ev_init(&ev, CHAT_EV_ERROR);
    ev.error_type = type ? type : "api_error";
    ev.text = msg ? msg : "";
    ev.len = strlen(ev.text);
    return cb(ctx, &ev);
}

void chat_anth_stream_init(chat_anth_stream_reader *r, chat_event_fn cb, void *ctx)
{
    memset(r, 0, sizeof(*r));
    r->cb = cb;
    r->ctx = ctx;
    r->block_index = -1;
    chat_usage_init(&r->usage);
}

void chat_anth_stream_release(chat_anth_stream_reader *r)
{
    free(r->tool_initial);
    free(r->stop_sequence);
    r->tool_initial = NULL;
    r->stop_sequence = NULL;
}

bool chat_anth_stream_done(const chat_anth_stream_reader *r)
{
    return r->done;
}

static loco_status rd_emit_start(chat_anth_stream_reader *r, const char *id, const char *model)
{
    chat_event ev;
    ev_init(&ev, CHAT_EV_MESSAGE_START);
    ev.id = id;
    ev.model = model;
    ev.usage = r->usage;
    ev.usage.output_tokens = -1;
    r->started = true;
    return r->cb(r->ctx, &ev);
}

static loco_status rd_ensure_started(chat_anth_stream_reader *r)
{
    return r->started ? LOCO_OK : rd_emit_start(r, NULL, NULL);
}

static loco_status rd_message_start(chat_anth_stream_reader *r, const json_t *root, loco_err *err)
{
    const json_t *msg = json_object_get(root, "message");
    if (!json_is_object(msg))
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "event 'message_start': needs a \"message\" object");
    if (r->started)
        return LOCO_OK;
    read_usage(json_object_get(msg, "usage"), &r->usage);
    r->usage.output_tokens = -1;
    return rd_emit_start(r, json_get_str(msg, "id"), json_get_str(msg, "model"));
}

/* Ends the open tool block: its start input as the arguments when no delta came. */
static loco_status rd_close_tool(chat_anth_stream_reader *r)
{
    if (r->block_kind != KIND_TOOL)
        return LOCO_OK;
    int idx = r->n_tools - 1;
    loco_status rc = LOCO_OK;
    if (!r->tool_had_delta && r->tool_initial) {
        chat_event ev;
        ev_init(&ev, CHAT_EV_TOOL_ARGS_DELTA);
        ev.index = idx;
        ev.text = r->tool_initial;
        ev.len = strlen(r->tool_initial);
        rc = r->cb(r->ctx, &ev);
    }
    free(r->tool_initial);
    r->tool_initial = NULL;
    r->block_kind = KIND_NONE;
    r->block_index = -1;
    return rc ? rc : emit_simple(r->cb, r->ctx, CHAT_EV_TOOL_CALL_END, idx);
}

static loco_status rd_tool_start(chat_anth_stream_reader *r, const json_t *cb_json, loco_err *err)
{
    const char *name = json_get_str(cb_json, "name");
    if (!name)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "event 'content_block_start': tool_use block needs a string \"name\"");
    const json_t *input = json_object_get(cb_json, "input");
    if (json_is_object(input) && json_object_size(input) > 0) {
        r->tool_initial = json_to_string(input);
        if (!r->tool_initial)
            return LOCO_ERR_NOMEM;
    }
    chat_event ev;
    ev_init(&ev, CHAT_EV_TOOL_CALL_START);
    ev.index = r->n_tools++;
    ev.id = json_get_str(cb_json, "id");
    ev.name = name;
    r->block_kind = KIND_TOOL;
    r->tool_had_delta = false;
    return r->cb(r->ctx, &ev);
}

static loco_status rd_block_start(chat_anth_stream_reader *r, const json_t *root, loco_err *err)
{
    const json_t *blk = json_object_get(root, "content_block");
    if (!json_is_object(blk))
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "event 'content_block_start': needs a \"content_block\" object");
    loco_status rc = rd_close_tool(r); /* a tool block left open (no stop seen) */
    if (!rc)
        rc = rd_ensure_started(r);
    if (rc)
        return rc;
    long idx = -1;
    chat_anth_int_value(json_object_get(root, "index"), &idx);
    const char *type = json_get_str(blk, "type");
    r->block_index = idx;
    r->block_kind = KIND_NONE;
    if (type && !strcmp(type, "text")) {
        r->block_kind = KIND_TEXT;
        return emit_text(r->cb, r->ctx, CHAT_EV_TEXT_DELTA, json_get_str(blk, "text"));
    }
    if (type && !strcmp(type, "thinking")) {
        r->block_kind = KIND_THINKING;
        return emit_text(r->cb, r->ctx, CHAT_EV_THINKING_DELTA, json_get_str(blk, "thinking"));
    }
    if (type && !strcmp(type, "tool_use"))
        return rd_tool_start(r, blk, err);
    return LOCO_OK; /* server_tool_use, web_search_tool_result, redacted_thinking, ... */
}

static loco_status rd_delta_str(const json_t *delta, const char *key, const char *dtype,
                                const char **out, loco_err *err)
{
    *out = json_get_str(delta, key);
    if (*out)
        return LOCO_OK;
    return loco_err_set(err, LOCO_ERR_INVALID,
                        "event 'content_block_delta': %s needs a string \"%s\"", dtype, key);
}

static loco_status rd_block_delta(chat_anth_stream_reader *r, const json_t *root, loco_err *err)
{
    const json_t *delta = json_object_get(root, "delta");
    const char *type = json_get_str(delta, "type");
    if (!type)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "event 'content_block_delta': needs a \"delta\" object with a \"type\"");
    const char *s;
    loco_status rc = LOCO_OK;
    if (!strcmp(type, "text_delta")) {
        rc = rd_delta_str(delta, "text", type, &s, err);
        if (!rc)
            rc = rd_ensure_started(r);
        return rc ? rc : emit_text(r->cb, r->ctx, CHAT_EV_TEXT_DELTA, s);
    }
    if (!strcmp(type, "thinking_delta")) {
        rc = rd_delta_str(delta, "thinking", type, &s, err);
        if (!rc)
            rc = rd_ensure_started(r);
        return rc ? rc : emit_text(r->cb, r->ctx, CHAT_EV_THINKING_DELTA, s);
    }
    if (!strcmp(type, "input_json_delta")) {
        rc = rd_delta_str(delta, "partial_json", type, &s, err);
        if (rc || r->block_kind != KIND_TOOL || !*s)
            return rc; /* server_tool_use input, or the empty opening fragment */
        r->tool_had_delta = true;
        chat_event ev;
        ev_init(&ev, CHAT_EV_TOOL_ARGS_DELTA);
        ev.index = r->n_tools - 1;
        ev.text = s;
        ev.len = strlen(s);
        return r->cb(r->ctx, &ev);
    }
    return LOCO_OK; /* signature_delta, citations_delta, ... */
}

static loco_status rd_block_stop(chat_anth_stream_reader *r, const json_t *root)
{
    long idx = -1;
    bool has_idx = chat_anth_int_value(json_object_get(root, "index"), &idx);
    if (has_idx && r->block_index >= 0 && idx != r->block_index)
        return LOCO_OK;
    if (r->block_kind == KIND_TOOL)
        return rd_close_tool(r);
    r->block_kind = KIND_NONE;
    r->block_index = -1;
    return LOCO_OK;
}

static loco_status rd_message_delta(chat_anth_stream_reader *r, const json_t *root)
{
    const json_t *delta = json_object_get(root, "delta");
    const char *stop = json_get_str(delta, "stop_reason");
    const char *seq = json_get_str(delta, "stop_sequence");
    if (stop)
        r->stop = chat_stop_parse(stop);
    if (seq) {
        char *s = strdup(seq);
        if (!s)
            return LOCO_ERR_NOMEM;
        free(r->stop_sequence);
        r->stop_sequence = s;
    }
    read_usage(json_object_get(root, "usage"), &r->usage);
    return LOCO_OK;
}

static loco_status rd_message_stop(chat_anth_stream_reader *r)
{
    loco_status rc = rd_close_tool(r);
    if (!rc)
        rc = rd_ensure_started(r);
    r->done = true;
    if (rc)
        return rc;
    chat_event ev;
    ev_init(&ev, CHAT_EV_MESSAGE_END);
    ev.stop = r->stop;
    ev.stop_sequence = r->stop == CHAT_STOP_STOP_SEQUENCE ? r->stop_sequence : NULL;
    ev.usage = r->usage;
    return r->cb(r->ctx, &ev);
}

static loco_status rd_dispatch(chat_anth_stream_reader *r, const char *name, const json_t *root,
                               loco_err *err)
{
    if (!strcmp(name, "message_start"))
        return rd_message_start(r, root, err);
    if (!strcmp(name, "content_block_start"))
        return rd_block_start(r, root, err);
    if (!strcmp(name, "content_block_delta"))
        return rd_block_delta(r, root, err);
    if (!strcmp(name, "content_block_stop"))
        return rd_block_stop(r, root);
    if (!strcmp(name, "message_delta"))
        return rd_message_delta(r, root);
    if (!strcmp(name, "message_stop"))
        return rd_message_stop(r);
    if (!strcmp(name, "error")) {
        r->done = true;
        return emit_error(r->cb, r->ctx, root);
    }
    if (!strcmp(name, "ping"))
        return emit_simple(r->cb, r->ctx, CHAT_EV_PING, 0);
    return LOCO_OK;
}

loco_status chat_anth_stream_feed(chat_anth_stream_reader *r, const char *event, const char *data,
                                  size_t n, loco_err *err)
{
    if (r->done)
        return LOCO_OK;
    bool named = event && *event && strcmp(event, "message") != 0;
    loco_err jerr;
    json_t *root = json_parse(data, n, &jerr);
    if (!root)
        return loco_err_set(err, LOCO_ERR_INVALID, "event '%s': %s", named ? event : "?", jerr.msg);
    loco_status rc;
    const char *name = named ? event : json_get_str(root, "type");
    if (!json_is_object(root))
        rc = loco_err_set(err, LOCO_ERR_INVALID, "event '%s': data is not a JSON object",
                          named ? event : "?");
    else if (!name)
        rc = loco_err_set(err, LOCO_ERR_INVALID, "SSE event without a name or a \"type\"");
    else
        rc = rd_dispatch(r, name, root, err);
    json_decref(root);
    return rc;
}

/* ---- whole non-stream message ---- */

static loco_status pm_tool(const json_t *blk, int idx, chat_event_fn cb, void *ctx, loco_err *err,
                           size_t bi)
{
    const char *name = json_get_str(blk, "name");
    if (!name)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "content[%zu]: tool_use block needs a string \"name\"", bi);
    chat_event ev;
    ev_init(&ev, CHAT_EV_TOOL_CALL_START);
    ev.index = idx;
    ev.id = json_get_str(blk, "id");
    ev.name = name;
    loco_status rc = cb(ctx, &ev);
    const json_t *input = json_object_get(blk, "input");
    if (!rc && json_is_object(input) && json_object_size(input) > 0) {
        char *args = json_to_string(input);
        if (!args)
            return LOCO_ERR_NOMEM;
        ev_init(&ev, CHAT_EV_TOOL_ARGS_DELTA);
        ev.index = idx;
        ev.text = args;
        ev.len = strlen(args);
        rc = cb(ctx, &ev);
        free(args);
    }
    return rc ? rc : emit_simple(cb, ctx, CHAT_EV_TOOL_CALL_END, idx);
}

static loco_status pm_content(const json_t *content, chat_event_fn cb, void *ctx, loco_err *err)
{
    loco_status rc = LOCO_OK;
    int n_tools = 0;
    for (size_t i = 0; !rc && i < json_array_size(content); i++) {
        const json_t *blk = json_array_get(content, i);
        const char *type = json_get_str(blk, "type");
        if (!type)
            continue;
        if (!strcmp(type, "text"))
            rc = emit_text(cb, ctx, CHAT_EV_TEXT_DELTA, json_get_str(blk, "text"));
        else if (!strcmp(type, "thinking"))
            rc = emit_text(cb, ctx, CHAT_EV_THINKING_DELTA, json_get_str(blk, "thinking"));
        else if (!strcmp(type, "tool_use"))
            rc = pm_tool(blk, n_tools++, cb, ctx, err, i);
    }
    return rc;
}

static loco_status pm_root(const json_t *root, chat_event_fn cb, void *ctx, loco_err *err)
{
    if (!json_is_object(root))
        return loco_err_set(err, LOCO_ERR_INVALID, "response body: expected a JSON object");
    const char *type = json_get_str(root, "type");
    if (type && !strcmp(type, "error"))
        return emit_error(cb, ctx, root);
    const json_t *content = json_object_get(root, "content");
    if (!json_is_array(content))
        return loco_err_set(err, LOCO_ERR_INVALID, "response body: \"content\" must be an array");
    chat_usage usage;
    chat_usage_init(&usage);
    read_usage(json_object_get(root, "usage"), &usage);
    chat_event ev;
    ev_init(&ev, CHAT_EV_MESSAGE_START);
    ev.id = json_get_str(root, "id");
    ev.model = json_get_str(root, "model");
    ev.usage = usage;
    ev.usage.output_tokens = -1;
    loco_status rc = cb(ctx, &ev);
    if (!rc)
        rc = pm_content(content, cb, ctx, err);
    if (rc)
        return rc;
    ev_init(&ev, CHAT_EV_MESSAGE_END);
    ev.stop = chat_stop_parse(json_get_str(root, "stop_reason"));
    ev.stop_sequence =
        ev.stop == CHAT_STOP_STOP_SEQUENCE ? json_get_str(root, "stop_sequence") : NULL;
    ev.usage = usage;
    return cb(ctx, &ev);
}

loco_status chat_anth_parse_message(const char *body, size_t n, chat_event_fn cb, void *ctx,
                                    loco_err *err)
{
    json_t *root = json_parse(body, n, err);
    if (!root)
        return LOCO_ERR_INVALID;
    loco_status rc = pm_root(root, cb, ctx, err);
    json_decref(root);
    return rc;
}
