/* anthropic.c: the Anthropic Messages API codec (see anthropic.h and
 * docs/internals/anthropic.md). Sits in chat/, between wire JSON/SSE and the neutral model;
 * depends only on base/ and chat.h. */
#include "base/common.h"

#include "base/json.h"
#include "base/str.h"
#include "base/utf8.h"
#include "chat/anthropic.h"

/* Room for the JSON paths named in error messages: "messages[N]", then ".content[M]",
 * then ".content" (sized so that no number of size_t digits can truncate them). */
#define ANTH_MSG_PATH_MAX 48
#define ANTH_PATH_MAX 96
#define ANTH_SUB_PATH_MAX 112
/* Room for a generated id: prefix + 24 characters + NUL. */
#define ANTH_ID_MAX 48

enum { KIND_NONE = 0, KIND_TEXT, KIND_THINKING, KIND_TOOL };

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
static loco_status put_tool_use(buf *out, const char *id, const char *name, const char *args_json)
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
 * Request parsing
 * ====================================================================== */

typedef struct {
    chat_request *req;
    loco_err *err;
    size_t max_text; /* limit on any joined text: the body size, which it can never exceed */
} parse_ctx;

static loco_status nomem(loco_err *err)
{
    return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory while parsing the request");
}

/* Member key of obj, with JSON null counted as absent. */
static json_t *member(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* Integer value of v (an integer, or a real with an integral value in range). */
static bool int_value(const json_t *v, long *out_v)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < LONG_MIN || x > LONG_MAX)
            return false;
        *out_v = (long)x;
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d > -9007199254740992.0 && d < 9007199254740992.0) || d != (double)(long)d)
            return false;
        *out_v = (long)d;
        return true;
    }
    return false;
}

/* Arena copy of a JSON value's compact text. */
static const char *dup_json(parse_ctx *pc, const json_t *v)
{
    char *s = json_to_string(v);
    if (!s)
        return NULL;
    const char *d = chat_strdup(pc->req, s);
    free(s);
    return d;
}

/* Joins the "text" members of the blocks of arr with sep into *out (arena). Blocks that are
 * images or documents set *has_media (when given); other blocks without text are skipped. */
static loco_status join_texts(parse_ctx *pc, const json_t *arr, const char *sep, const char *path,
                              const char **out, bool *has_media)
{
    buf b;
    buf_init(&b, pc->max_text);
    loco_status rc = LOCO_OK;
    size_t n_text = 0;
    for (size_t i = 0; i < json_array_size(arr) && !rc; i++) {
        const json_t *blk = json_array_get(arr, i);
        if (!json_is_object(blk)) {
            rc = loco_err_set(pc->err, LOCO_ERR_INVALID, "%s[%zu]: expected an object", path, i);
            break;
        }
        const char *type = json_get_str(blk, "type");
        const char *text = json_get_str(blk, "text");
        if (type && has_media && (!strcmp(type, "image") || !strcmp(type, "document")))
            *has_media = true;
        if (!text)
            continue;
        if (n_text++)
            rc = buf_appends(&b, sep);
        if (!rc)
            rc = buf_appends(&b, text);
    }
    if (!rc) {
        *out = chat_strndup(pc->req, buf_str(&b), b.len);
        if (!*out)
            rc = nomem(pc->err);
    } else if (rc != LOCO_ERR_INVALID) {
        rc = nomem(pc->err);
    }
    buf_release(&b);
    return rc;
}

static loco_status parse_tool_use(parse_ctx *pc, chat_message *msg, const json_t *blk,
                                  const char *path)
{
    const char *id = json_get_str(blk, "id");
    const char *name = json_get_str(blk, "name");
    const json_t *input = member(blk, "input");
    if (!id)
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "%s: tool_use block needs a string \"id\"",
                            path);
    if (!name)
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "%s: tool_use block needs a string \"name\"", path);
    if (input && !json_is_object(input))
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "%s: tool_use block needs an object \"input\"", path);
    chat_block *b = chat_message_add_block(pc->req, msg, CHAT_BLOCK_TOOL_CALL);
    if (!b)
        return nomem(pc->err);
    b->id = chat_strdup(pc->req, id);
    b->name = chat_strdup(pc->req, name);
    b->args_json = input ? dup_json(pc, input) : chat_strdup(pc->req, "{}");
    if (!b->id || !b->name || !b->args_json)
        return nomem(pc->err);
    return LOCO_OK;
}

static loco_status parse_tool_result(parse_ctx *pc, chat_message *msg, const json_t *blk,
                                     const char *path)
{
    const char *id = json_get_str(blk, "tool_use_id");
    const json_t *content = member(blk, "content");
    const json_t *is_error = member(blk, "is_error");
    if (!id)
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "%s: tool_result block needs a string \"tool_use_id\"", path);
    if (is_error && !json_is_boolean(is_error))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "%s.is_error: expected a boolean", path);
    if (content && !json_is_string(content) && !json_is_array(content))
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "%s.content: expected a string or an array of blocks", path);
    bool has_media = false;
    const char *text = "";
    if (json_is_string(content)) {
        text = json_string_value(content);
    } else if (content) {
        char sub[ANTH_SUB_PATH_MAX];
        snprintf(sub, sizeof(sub), "%s.content", path);
        loco_status rc = join_texts(pc, content, "\n", sub, &text, &has_media);
        if (rc)
            return rc;
    }
    chat_block *b = chat_message_add_block(pc->req, msg, CHAT_BLOCK_TOOL_RESULT);
    if (!b)
        return nomem(pc->err);
    b->id = chat_strdup(pc->req, id);
    b->text = chat_strdup(pc->req, text);
    b->is_error = json_is_true(is_error);
    b->has_media = has_media;
    if (!b->id || !b->text)
        return nomem(pc->err);
    return LOCO_OK;
}

/* Adds a TEXT or THINKING block holding text. */
static loco_status add_text_block(parse_ctx *pc, chat_message *msg, chat_block_type type,
                                  const char *text)
{
    chat_block *b = chat_message_add_block(pc->req, msg, type);
    if (!b)
        return nomem(pc->err);
    b->text = chat_strdup(pc->req, text);
    return b->text ? LOCO_OK : nomem(pc->err);
}

static loco_status parse_block(parse_ctx *pc, chat_message *msg, const json_t *blk,
                               const char *path)
{
    if (!json_is_object(blk))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "%s: expected an object", path);
    const char *type = json_get_str(blk, "type");
    if (!type)
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "%s: block needs a string \"type\"", path);
    const char *text = json_get_str(blk, "text");
    if (!strcmp(type, "text")) {
        if (!text)
            return loco_err_set(pc->err, LOCO_ERR_INVALID,
                                "%s: text block needs a string \"text\"", path);
        return add_text_block(pc, msg, CHAT_BLOCK_TEXT, text);
    }
    if (!strcmp(type, "image") || !strcmp(type, "document")) {
        chat_block_type t = type[0] == 'i' ? CHAT_BLOCK_IMAGE : CHAT_BLOCK_DOCUMENT;
        return chat_message_add_block(pc->req, msg, t) ? LOCO_OK : nomem(pc->err);
    }
    if (!strcmp(type, "tool_use"))
        return parse_tool_use(pc, msg, blk, path);
    if (!strcmp(type, "tool_result"))
        return parse_tool_result(pc, msg, blk, path);
    if (!strcmp(type, "thinking")) {
        const char *th = json_get_str(blk, "thinking");
        return add_text_block(pc, msg, CHAT_BLOCK_THINKING, th ? th : "");
    }
    if (!strcmp(type, "redacted_thinking"))
        return add_text_block(pc, msg, CHAT_BLOCK_THINKING, "");
    /* server_tool_use, web_search_tool_result, search_result, container_upload, ...:
     * never fail the request; keep what reads as text. */
    return text ? add_text_block(pc, msg, CHAT_BLOCK_TEXT, text) : LOCO_OK;
}

static loco_status parse_role(parse_ctx *pc, const json_t *m, const char *path, chat_role *out)
{
    const char *role = json_get_str(m, "role");
    if (role && !strcmp(role, "user"))
        *out = CHAT_ROLE_USER;
    else if (role && !strcmp(role, "assistant"))
        *out = CHAT_ROLE_ASSISTANT;
    else if (role && !strcmp(role, "system"))
        *out = CHAT_ROLE_SYSTEM;
    else
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "%s.role: expected \"user\", \"assistant\" or \"system\"", path);
    return LOCO_OK;
}

static loco_status parse_message(parse_ctx *pc, const json_t *m, size_t idx)
{
    char path[ANTH_MSG_PATH_MAX];
    snprintf(path, sizeof(path), "messages[%zu]", idx);
    if (!json_is_object(m))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "%s: expected an object", path);
    chat_role role = CHAT_ROLE_USER;
    loco_status rc = parse_role(pc, m, path, &role);
    if (rc)
        return rc;
    const json_t *content = member(m, "content");
    if (!json_is_string(content) && !json_is_array(content))
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "%s.content: expected a string or an array of blocks", path);
    chat_message *msg = chat_request_add_message(pc->req, role);
    if (!msg)
        return nomem(pc->err);
    if (json_is_string(content))
        return add_text_block(pc, msg, CHAT_BLOCK_TEXT, json_string_value(content));
    for (size_t j = 0; j < json_array_size(content) && !rc; j++) {
        char bpath[ANTH_PATH_MAX];
        snprintf(bpath, sizeof(bpath), "%s.content[%zu]", path, j);
        rc = parse_block(pc, msg, json_array_get(content, j), bpath);
    }
    return rc;
}

static loco_status parse_system(parse_ctx *pc, const json_t *sys)
{
    if (!sys)
        return LOCO_OK;
    if (json_is_string(sys)) {
        pc->req->system = chat_strdup(pc->req, json_string_value(sys));
        return pc->req->system ? LOCO_OK : nomem(pc->err);
    }
    if (!json_is_array(sys))
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "system: expected a string or an array of text blocks");
    if (json_array_size(sys) == 0)
        return LOCO_OK;
    return join_texts(pc, sys, "\n\n", "system", &pc->req->system, NULL);
}

static loco_status parse_tool(parse_ctx *pc, const json_t *t, size_t idx)
{
    if (!json_is_object(t))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "tools[%zu]: expected an object", idx);
    const char *name = json_get_str(t, "name");
    const json_t *desc = member(t, "description");
    const json_t *schema = member(t, "input_schema");
    if (!name)
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "tools[%zu]: tool needs a string \"name\"",
                            idx);
    if (desc && !json_is_string(desc))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "tools[%zu].description: expected a string",
                            idx);
    if (schema && !json_is_object(schema))
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "tools[%zu].input_schema: expected an object", idx);
    char *schema_text = NULL;
    if (schema) {
        schema_text = json_to_string(schema);
        if (!schema_text)
            return nomem(pc->err);
    }
    chat_tool *tool = chat_request_add_tool(pc->req, name, desc ? json_string_value(desc) : NULL,
                                            schema_text);
    free(schema_text);
    return tool ? LOCO_OK : nomem(pc->err);
}

static loco_status parse_tool_choice(parse_ctx *pc, const json_t *tc)
{
    if (!tc)
        return LOCO_OK;
    if (!json_is_object(tc))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "tool_choice: expected an object");
    const char *type = json_get_str(tc, "type");
    const json_t *dp = member(tc, "disable_parallel_tool_use");
    chat_request *req = pc->req;
    if (type && !strcmp(type, "auto"))
        req->tool_choice = CHAT_TOOL_CHOICE_AUTO;
    else if (type && !strcmp(type, "any"))
        req->tool_choice = CHAT_TOOL_CHOICE_ANY;
    else if (type && !strcmp(type, "none"))
        req->tool_choice = CHAT_TOOL_CHOICE_NONE;
    else if (type && !strcmp(type, "tool"))
        req->tool_choice = CHAT_TOOL_CHOICE_TOOL;
    else
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "tool_choice.type: expected \"auto\", \"any\", \"tool\" or \"none\"");
    if (req->tool_choice == CHAT_TOOL_CHOICE_TOOL) {
        const char *name = json_get_str(tc, "name");
        if (!name)
            return loco_err_set(pc->err, LOCO_ERR_INVALID,
                                "tool_choice: type \"tool\" needs a string \"name\"");
        req->tool_choice_name = chat_strdup(req, name);
        if (!req->tool_choice_name)
            return nomem(pc->err);
    }
    if (dp && !json_is_boolean(dp))
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "tool_choice.disable_parallel_tool_use: expected a boolean");
    req->parallel_tool_calls = !json_is_true(dp);
    return LOCO_OK;
}

static loco_status parse_stop_sequences(parse_ctx *pc, const json_t *ss)
{
    if (!ss)
        return LOCO_OK;
    if (!json_is_array(ss))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "stop_sequences: expected an array");
    size_t n = json_array_size(ss);
    if (n == 0)
        return LOCO_OK;
    chat_request *req = pc->req;
    req->stop = arena_alloc(&req->mem, n * sizeof(*req->stop));
    if (!req->stop)
        return nomem(pc->err);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(ss, i);
        if (!json_is_string(s))
            return loco_err_set(pc->err, LOCO_ERR_INVALID, "stop_sequences[%zu]: expected a string",
                                i);
        req->stop[i] = chat_strdup(req, json_string_value(s));
        if (!req->stop[i])
            return nomem(pc->err);
        req->n_stop = i + 1;
    }
    return LOCO_OK;
}

/* Optional number member key into *out_v; *out_has tells whether it was there. */
static loco_status parse_number(parse_ctx *pc, const json_t *root, const char *key, bool *out_has,
                                double *out_v)
{
    const json_t *v = member(root, key);
    *out_has = v != NULL;
    if (!v)
        return LOCO_OK;
    if (!json_is_number(v))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "%s: expected a number", key);
    *out_v = json_number_value(v);
    return LOCO_OK;
}

/* Optional integer member key >= min into *out_v (left alone when absent). */
static loco_status parse_int(parse_ctx *pc, const json_t *root, const char *key, long min,
                             long *out_v)
{
    const json_t *v = member(root, key);
    if (!v)
        return LOCO_OK;
    long x;
    if (!int_value(v, &x))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "%s: expected an integer", key);
    if (x < min)
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "%s: must be at least %ld", key, min);
    *out_v = x;
    return LOCO_OK;
}

static loco_status parse_params(parse_ctx *pc, const json_t *root)
{
    chat_request *req = pc->req;
    loco_status rc = parse_int(pc, root, "max_tokens", 1, &req->max_tokens);
    if (!rc)
        rc = parse_int(pc, root, "top_k", 0, &req->top_k);
    if (!rc)
        rc = parse_number(pc, root, "temperature", &req->has_temperature, &req->temperature);
    if (!rc)
        rc = parse_number(pc, root, "top_p", &req->has_top_p, &req->top_p);
    if (!rc)
        rc = parse_stop_sequences(pc, member(root, "stop_sequences"));
    const json_t *stream = member(root, "stream");
    if (!rc && stream && !json_is_boolean(stream))
        rc = loco_err_set(pc->err, LOCO_ERR_INVALID, "stream: expected a boolean");
    req->stream = json_is_true(stream);
    return rc;
}

static loco_status parse_root(parse_ctx *pc, const json_t *root)
{
    if (!json_is_object(root))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "request body: expected a JSON object");
    const char *model = json_get_str(root, "model");
    if (!model)
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "model: expected a string");
    pc->req->model = chat_strdup(pc->req, model);
    if (!pc->req->model)
        return nomem(pc->err);
    const json_t *msgs = member(root, "messages");
    if (!json_is_array(msgs))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "messages: expected an array");
    loco_status rc = parse_system(pc, member(root, "system"));
    for (size_t i = 0; !rc && i < json_array_size(msgs); i++)
        rc = parse_message(pc, json_array_get(msgs, i), i);
    const json_t *tools = member(root, "tools");
    if (!rc && tools && !json_is_array(tools))
        rc = loco_err_set(pc->err, LOCO_ERR_INVALID, "tools: expected an array");
    for (size_t i = 0; !rc && i < json_array_size(tools); i++)
        rc = parse_tool(pc, json_array_get(tools, i), i);
    if (!rc)
        rc = parse_tool_choice(pc, member(root, "tool_choice"));
    if (!rc)
        rc = parse_params(pc, root);
    return rc;
}

loco_status chat_anth_parse_request(const char *body, size_t n, chat_request **out_req,
                                    loco_err *err)
{
    *out_req = NULL;
    json_t *root = json_parse(body, n, err);
    if (!root)
        return LOCO_ERR_INVALID;
    parse_ctx pc = {.req = chat_request_new(), .err = err, .max_text = n};
    loco_status rc = pc.req ? parse_root(&pc, root) : nomem(err);
    json_decref(root);
    if (rc) {
        chat_request_free(pc.req);
        return rc;
    }
    *out_req = pc.req;
    return LOCO_OK;
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
        rc = put_tool_use(out, b->id, b->name, b->args_json);
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
        rc = put_tool_use(out, b->id ? b->id : idbuf, b->name, b->text);
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
    if (int_value(json_object_get(obj, "input_tokens"), &v))
        u->input_tokens = v;
    if (int_value(json_object_get(obj, "output_tokens"), &v))
        u->output_tokens = v;
    if (int_value(json_object_get(obj, "cache_read_input_tokens"), &v))
        u->cache_read_input_tokens = v;
    if (int_value(json_object_get(obj, "cache_creation_input_tokens"), &v))
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
    int_value(json_object_get(root, "index"), &idx);
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
    bool has_idx = int_value(json_object_get(root, "index"), &idx);
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
