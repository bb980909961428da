/* openai_request_write.c: chat_request -> /v1/chat/completions request JSON (to an
 * OpenAI-compatible upstream: llama-server, vLLM, Ollama, another loco). Part of the OpenAI
 * codec (openai.h, docs/internals/openai.md). */
#include "base/common.h"

#include <math.h>

#include "base/json.h"
#include "chat/openai_int.h"

/* ======================================================================================
 * Writing a request (to an OpenAI-compatible upstream)
 * ==================================================================================== */

/* Appends d in the shortest form that reads back as the same double. */
static loco_status append_double(buf *b, double d)
{
    char tmp[40];
    if (!isfinite(d))
        d = 0;
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    return buf_appends(b, tmp);
}

/* Appends the TEXT blocks of m joined with "\n" as one JSON string. */
static loco_status append_joined_text(buf *out, const chat_message *m)
{
    buf t;
    buf_init(&t, BUF_UNLIMITED);
    loco_status rc = LOCO_OK;
    bool any = false;
    for (size_t i = 0; i < m->n_blocks && !rc; i++) {
        const chat_block *b = &m->blocks[i];
        if (b->type != CHAT_BLOCK_TEXT)
            continue;
        if (any)
            rc = buf_appendc(&t, '\n');
        if (!rc && b->text)
            rc = buf_appends(&t, b->text);
        any = true;
    }
    if (!rc)
        rc = json_append_str_lossy(out, buf_str(&t), t.len);
    buf_release(&t);
    return rc;
}

static size_t count_blocks(const chat_message *m, chat_block_type type)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_blocks; i++)
        n += m->blocks[i].type == type;
    return n;
}

/* Opens one message object: separator, {"role":ROLE */
static loco_status open_message(buf *out, bool *first, const char *role)
{
    loco_status rc = buf_appends(out, *first ? "{\"role\":\"" : ",{\"role\":\"");
    *first = false;
    if (!rc)
        rc = buf_appends(out, role);
    if (!rc)
        rc = buf_appendc(out, '"');
    return rc;
}

static loco_status write_text_message(buf *out, bool *first, const char *role,
                                      const chat_message *m)
{
    loco_status rc = open_message(out, first, role);
    if (!rc)
        rc = buf_appends(out, ",\"content\":");
    if (!rc)
        rc = append_joined_text(out, m);
    if (!rc)
        rc = buf_appendc(out, '}');
    return rc;
}

static loco_status write_tool_result(buf *out, bool *first, const chat_block *b)
{
    loco_status rc = open_message(out, first, "tool");
    if (!rc)
        rc = buf_appends(out, ",\"tool_call_id\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, b->id);
    if (!rc)
        rc = buf_appends(out, ",\"content\":");
    if (!rc && b->is_error) {
        buf t;
        buf_init(&t, BUF_UNLIMITED);
        rc = buf_appends(&t, "Error: ");
        if (!rc && b->text)
            rc = buf_appends(&t, b->text);
        if (!rc)
            rc = json_append_str_lossy(out, buf_str(&t), t.len);
        buf_release(&t);
    } else if (!rc) {
        rc = json_append_cstr_lossy(out, b->text);
    }
    if (!rc)
        rc = buf_appendc(out, '}');
    return rc;
}

/* A user message: its tool results as role:"tool" messages, then its text (if any, or if
 * the message held nothing else so that turns keep alternating). */
static loco_status write_user(buf *out, bool *first, const chat_message *m)
{
    loco_status rc = LOCO_OK;
    size_t results = 0;
    for (size_t i = 0; i < m->n_blocks && !rc; i++) {
        if (m->blocks[i].type == CHAT_BLOCK_TOOL_RESULT) {
            rc = write_tool_result(out, first, &m->blocks[i]);
            results++;
        }
    }
    if (!rc && (count_blocks(m, CHAT_BLOCK_TEXT) || !results))
        rc = write_text_message(out, first, "user", m);
    return rc;
}

loco_status chat_oai_put_tool_call(buf *out, bool first, const char *id, const char *name,
                                   const char *args, size_t n)
{
    loco_status rc = buf_appends(out, first ? "{\"id\":" : ",{\"id\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, id);
    if (!rc)
        rc = buf_appends(out, ",\"type\":\"function\",\"function\":{\"name\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, name);
    if (!rc)
        rc = buf_appends(out, ",\"arguments\":");
    if (!rc)
        rc = n ? json_append_str_lossy(out, args, n) : buf_appends(out, "\"{}\"");
    if (!rc)
        rc = buf_appends(out, "}}");
    return rc;
}

static loco_status write_assistant(buf *out, bool *first, const chat_message *m)
{
    size_t n_text = count_blocks(m, CHAT_BLOCK_TEXT);
    size_t n_calls = count_blocks(m, CHAT_BLOCK_TOOL_CALL);
    loco_status rc = open_message(out, first, "assistant");
    if (!rc)
        rc = buf_appends(out, ",\"content\":");
    if (!rc && !n_text && n_calls)
        rc = buf_appends(out, "null");
    else if (!rc)
        rc = append_joined_text(out, m);
    if (!rc && n_calls) {
        rc = buf_appends(out, ",\"tool_calls\":[");
        bool firstc = true;
        for (size_t i = 0; i < m->n_blocks && !rc; i++) {
            const chat_block *b = &m->blocks[i];
            if (b->type != CHAT_BLOCK_TOOL_CALL)
                continue;
            rc = chat_oai_put_tool_call(out, firstc, b->id, b->name, b->args_json,
                                        b->args_json ? strlen(b->args_json) : 0);
            firstc = false;
        }
        if (!rc)
            rc = buf_appendc(out, ']');
    }
    if (!rc)
        rc = buf_appendc(out, '}');
    return rc;
}

static loco_status write_messages(buf *out, const chat_request *req)
{
    bool first = true;
    loco_status rc = buf_appends(out, ",\"messages\":[");
    if (!rc && req->system) {
        rc = open_message(out, &first, "system");
        if (!rc)
            rc = buf_appends(out, ",\"content\":");
        if (!rc)
            rc = json_append_cstr_lossy(out, req->system);
        if (!rc)
            rc = buf_appendc(out, '}');
    }
    for (size_t i = 0; i < req->n_msgs && !rc; i++) {
        const chat_message *m = &req->msgs[i];
        if (m->role == CHAT_ROLE_SYSTEM)
            rc = write_text_message(out, &first, "system", m);
        else if (m->role == CHAT_ROLE_USER)
            rc = write_user(out, &first, m);
        else
            rc = write_assistant(out, &first, m);
    }
    if (!rc)
        rc = buf_appendc(out, ']');
    return rc;
}

/* Appends schema_json after checking it is a JSON object (it is embedded verbatim). */
static loco_status append_schema(buf *out, const char *schema)
{
    if (!schema)
        return buf_appends(out, "{\"type\":\"object\",\"properties\":{}}");
    json_t *v = json_parse(schema, strlen(schema), NULL);
    bool ok = json_is_object(v);
    json_decref(v);
    if (!ok)
        return LOCO_ERR_INVALID;
    return buf_appends(out, schema);
}

static loco_status write_tool_choice(buf *out, const chat_request *req)
{
    switch (req->tool_choice) {
    case CHAT_TOOL_CHOICE_NONE: return buf_appends(out, ",\"tool_choice\":\"none\"");
    case CHAT_TOOL_CHOICE_ANY: return buf_appends(out, ",\"tool_choice\":\"required\"");
    case CHAT_TOOL_CHOICE_TOOL:
        if (req->tool_choice_name) {
            loco_status rc = buf_appends(
                out, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":");
            if (!rc)
                rc = json_append_cstr_lossy(out, req->tool_choice_name);
            if (!rc)
                rc = buf_appends(out, "}}");
            return rc;
        }
        return buf_appends(out, ",\"tool_choice\":\"required\"");
    case CHAT_TOOL_CHOICE_AUTO: break;
    }
    return buf_appends(out, ",\"tool_choice\":\"auto\"");
}

static loco_status write_tools(buf *out, const chat_request *req)
{
    loco_status rc = buf_appends(out, ",\"tools\":[");
    for (size_t i = 0; i < req->n_tools && !rc; i++) {
        const chat_tool *t = &req->tools[i];
        rc = buf_appends(out, i ? ",{\"type\":\"function\",\"function\":{\"name\":"
                                : "{\"type\":\"function\",\"function\":{\"name\":");
        if (!rc)
            rc = json_append_cstr_lossy(out, t->name);
        if (!rc && t->description) {
            rc = buf_appends(out, ",\"description\":");
            if (!rc)
                rc = json_append_cstr_lossy(out, t->description);
        }
        if (!rc)
            rc = buf_appends(out, ",\"parameters\":");
        if (!rc)
            rc = append_schema(out, t->schema_json);
        if (!rc)
            rc = buf_appends(out, "}}");
    }
    if (!rc)
        rc = buf_appendc(out, ']');
    if (!rc)
        rc = write_tool_choice(out, req);
    if (!rc && !req->parallel_tool_calls)
        rc = buf_appends(out, ",\"parallel_tool_calls\":false");
    return rc;
}

static loco_status write_sampling(buf *out, const chat_request *req)
{
    loco_status rc = LOCO_OK;
    if (req->max_tokens > 0)
        rc = buf_appendf(out, ",\"max_tokens\":%ld", req->max_tokens);
    if (!rc && req->has_temperature) {
        rc = buf_appends(out, ",\"temperature\":");
        if (!rc)
            rc = append_double(out, req->temperature);
    }
    if (!rc && req->has_top_p) {
        rc = buf_appends(out, ",\"top_p\":");
        if (!rc)
            rc = append_double(out, req->top_p);
    }
    if (!rc && req->top_k > 0)
        rc = buf_appendf(out, ",\"top_k\":%ld", req->top_k);
    if (!rc && req->n_stop) {
        rc = buf_appends(out, ",\"stop\":[");
        for (size_t i = 0; i < req->n_stop && !rc; i++) {
            if (i)
                rc = buf_appendc(out, ',');
            if (!rc)
                rc = json_append_cstr_lossy(out, req->stop[i]);
        }
        if (!rc)
            rc = buf_appendc(out, ']');
    }
    return rc;
}

loco_status chat_oai_write_request(const chat_request *req, const chat_oai_write_opts *opts, buf *out)
{
    const char *model = opts && opts->model ? opts->model : req->model;
    loco_status rc = buf_appends(out, "{\"model\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, model);
    if (!rc)
        rc = write_messages(out, req);
    if (!rc && opts && opts->native_tools && req->n_tools)
        rc = write_tools(out, req);
    if (!rc)
        rc = write_sampling(out, req);
    if (!rc && opts && opts->stream)
        rc = buf_appends(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    if (!rc)
        rc = buf_appendc(out, '}');
    return rc;
}
