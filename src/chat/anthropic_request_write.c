/* anthropic_request_write.c: chat_request -> Messages API request JSON (the anthropic-http
 * backend, talking to the cloud). Part of the Anthropic codec (anthropic.h,
 * docs/internals/anthropic.md). */
#include "base/common.h"

#include "base/json.h"
#include "chat/anthropic_int.h"

/* ======================================================================
 * JSON output helpers
 * ====================================================================== */

/* Parses text (NULL or "" count as {}) and appends it compactly; LOCO_ERR_INVALID unless it
 * is a JSON object. */
static loco_status put_json_object(buf *b, const char *text)
{
    if (!text || !*text)
        return buf_appends(b, "{}");
    loco_err jerr;
    json_t *v = json_parse(text, strlen(text), &jerr);
    loco_status rc = json_is_object(v) ? json_append(b, v) : LOCO_ERR_INVALID;
    json_decref(v);
    return rc;
}

/* {"type":"tool_use","id":ID,"name":NAME,"input":ARGS (without the closing brace) */
loco_status chat_anth_put_tool_use(buf *out, const char *id, const char *name,
                                   const char *args_json)
{
    loco_status rc = buf_appends(out, "{\"type\":\"tool_use\",\"id\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, id);
    if (!rc)
        rc = buf_appends(out, ",\"name\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, name);
    if (!rc)
        rc = buf_appends(out, ",\"input\":");
    if (!rc)
        rc = put_json_object(out, args_json);
    return rc;
}

/* ======================================================================
 * Request writing
 * ====================================================================== */

static const char *role_str(chat_role role)
{
    switch (role) {
    case CHAT_ROLE_SYSTEM: return "system";
    case CHAT_ROLE_ASSISTANT: return "assistant";
    case CHAT_ROLE_USER: break;
    }
    return "user";
}

/* Whether a block is sent upstream at all (see chat_anth_write_request). */
static bool block_written(const chat_block *b)
{
    if (b->type == CHAT_BLOCK_THINKING)
        return false;
    if (b->type == CHAT_BLOCK_TEXT)
        return b->text && *b->text;
    return true;
}

static loco_status write_block(buf *out, const chat_block *b)
{
    loco_status rc = LOCO_OK;
    switch (b->type) {
    case CHAT_BLOCK_TEXT:
        rc = buf_appends(out, "{\"type\":\"text\",\"text\":");
        if (!rc)
            rc = json_append_cstr_lossy(out, b->text);
        break;
    case CHAT_BLOCK_IMAGE:
    case CHAT_BLOCK_DOCUMENT:
        rc = buf_appendf(out, "{\"type\":\"text\",\"text\":\"[%s omitted]\"",
                         b->type == CHAT_BLOCK_IMAGE ? "image" : "document");
        break;
    case CHAT_BLOCK_TOOL_CALL:
        rc = chat_anth_put_tool_use(out, b->id, b->name, b->args_json);
        break;
    case CHAT_BLOCK_TOOL_RESULT:
        rc = buf_appends(out, "{\"type\":\"tool_result\",\"tool_use_id\":");
        if (!rc)
            rc = json_append_cstr_lossy(out, b->id);
        if (!rc)
            rc = buf_appends(out, ",\"content\":");
        if (!rc)
            rc = json_append_cstr_lossy(out, b->text);
        if (!rc && b->is_error)
            rc = buf_appends(out, ",\"is_error\":true");
        break;
    case CHAT_BLOCK_THINKING:
        return LOCO_OK;
    }
    return rc ? rc : buf_appendc(out, '}');
}

static loco_status write_messages(const chat_request *req, buf *out)
{
    loco_status rc = buf_appends(out, ",\"messages\":[");
    bool first_msg = true;
    for (size_t i = 0; !rc && i < req->n_msgs; i++) {
        const chat_message *m = &req->msgs[i];
        size_t n_written = 0;
        for (size_t j = 0; j < m->n_blocks; j++)
            n_written += block_written(&m->blocks[j]);
        if (!n_written)
            continue;
        rc = buf_appendf(out, "%s{\"role\":\"%s\",\"content\":[", first_msg ? "" : ",",
                         role_str(m->role));
        first_msg = false;
        bool first_blk = true;
        for (size_t j = 0; !rc && j < m->n_blocks; j++) {
            if (!block_written(&m->blocks[j]))
                continue;
            if (!first_blk)
                rc = buf_appendc(out, ',');
            first_blk = false;
            if (!rc)
                rc = write_block(out, &m->blocks[j]);
        }
        if (!rc)
            rc = buf_appends(out, "]}");
    }
    return rc ? rc : buf_appendc(out, ']');
}

/* Writes tools (those with a schema) and, when any was written, tool_choice. */
static loco_status write_tools(const chat_request *req, buf *out)
{
    loco_status rc = LOCO_OK;
    size_t n = 0;
    for (size_t i = 0; !rc && i < req->n_tools; i++) {
        const chat_tool *t = &req->tools[i];
        if (!t->schema_json)
            continue;
        rc = buf_appends(out, n++ ? ",{\"name\":" : ",\"tools\":[{\"name\":");
        if (!rc)
            rc = json_append_cstr_lossy(out, t->name);
        if (!rc && t->description) {
            rc = buf_appends(out, ",\"description\":");
            if (!rc)
                rc = json_append_cstr_lossy(out, t->description);
        }
        if (!rc)
            rc = buf_appends(out, ",\"input_schema\":");
        if (!rc)
            rc = put_json_object(out, t->schema_json);
        if (!rc)
            rc = buf_appendc(out, '}');
    }
    if (rc || !n)
        return rc;
    rc = buf_appendc(out, ']');
    if (rc || (req->tool_choice == CHAT_TOOL_CHOICE_AUTO && req->parallel_tool_calls))
        return rc;
    static const char *const names[] = {"auto", "any", "none", "tool"};
    rc = buf_appendf(out, ",\"tool_choice\":{\"type\":\"%s\"", names[req->tool_choice]);
    if (!rc && req->tool_choice == CHAT_TOOL_CHOICE_TOOL) {
        rc = buf_appends(out, ",\"name\":");
        if (!rc)
            rc = json_append_cstr_lossy(out, req->tool_choice_name);
    }
    if (!rc && !req->parallel_tool_calls && req->tool_choice != CHAT_TOOL_CHOICE_NONE)
        rc = buf_appends(out, ",\"disable_parallel_tool_use\":true");
    return rc ? rc : buf_appendc(out, '}');
}

/* Appends ,"key":v with the shortest of %.15g/%.17g that reads back as v. */
static loco_status put_double(buf *b, const char *key, double v)
{
    char tmp[40];
    if (v == 0)
        v = 0; /* -0 would read back as the integer 0 */
    snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (strtod(tmp, NULL) != v)
        snprintf(tmp, sizeof(tmp), "%.17g", v);
    return buf_appendf(b, ",\"%s\":%s", key, tmp);
}

static loco_status write_params(const chat_request *req, buf *out)
{
    long max_tokens = req->max_tokens > 0 ? req->max_tokens : CHAT_ANTH_DEFAULT_MAX_TOKENS;
    loco_status rc = buf_appendf(out, ",\"max_tokens\":%ld", max_tokens);
    if (!rc && req->has_temperature)
        rc = put_double(out, "temperature", req->temperature);
    if (!rc && req->has_top_p)
        rc = put_double(out, "top_p", req->top_p);
    if (!rc && req->top_k > 0)
        rc = buf_appendf(out, ",\"top_k\":%ld", req->top_k);
    for (size_t i = 0; !rc && i < req->n_stop; i++) {
        rc = buf_appends(out, i ? "," : ",\"stop_sequences\":[");
        if (!rc)
            rc = json_append_cstr_lossy(out, req->stop[i]);
        if (!rc && i + 1 == req->n_stop)
            rc = buf_appendc(out, ']');
    }
    if (!rc)
        rc = buf_appendf(out, ",\"stream\":%s", req->stream ? "true" : "false");
    return rc;
}

loco_status chat_anth_write_request(const chat_request *req, buf *out)
{
    loco_status rc = buf_appends(out, "{\"model\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, req->model);
    if (!rc && req->system) {
        rc = buf_appends(out, ",\"system\":");
        if (!rc)
            rc = json_append_cstr_lossy(out, req->system);
    }
    if (!rc)
        rc = write_messages(req, out);
    if (!rc)
        rc = write_tools(req, out);
    if (!rc)
        rc = write_params(req, out);
    return rc ? rc : buf_appendc(out, '}');
}
