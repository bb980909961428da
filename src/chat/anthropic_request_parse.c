/* anthropic_request_parse.c: Messages API request JSON -> chat_request (the gateway's
 * Anthropic front). Part of the Anthropic codec (anthropic.h, docs/internals/anthropic.md). */
#include "base/common.h"

#include "base/json.h"
#include "chat/anthropic_int.h"

/* Room for the JSON paths named in error messages: "messages[N]", then ".content[M]",
 * then ".content" (sized so that no number of size_t digits can truncate them). */
#define ANTH_MSG_PATH_MAX 48
#define ANTH_PATH_MAX 96
#define ANTH_SUB_PATH_MAX 112

/* ======================================================================
 * Request parsing
 * ====================================================================== */

typedef struct {
    chat_request *req;
    loco_err *err;
    size_t max_text; /* limit on any joined text: the body size, which it can never exceed */
    chat_check check;
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

/* The content block types the Messages API defines (requests may carry any of them back). */
static bool known_block_type(const char *type)
{
    static const char *const known[] = {"text",
                                        "image",
                                        "document",
                                        "search_result",
                                        "tool_use",
                                        "tool_result",
                                        "thinking",
                                        "redacted_thinking",
                                        "server_tool_use",
                                        "web_search_tool_result",
                                        "web_fetch_tool_result",
                                        "code_execution_tool_result",
                                        "bash_code_execution_tool_result",
                                        "text_editor_code_execution_tool_result",
                                        "tool_search_tool_result",
                                        "tool_reference",
                                        "mcp_tool_use",
                                        "mcp_tool_result",
                                        "container_upload"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(known); i++) {
        if (!strcmp(type, known[i]))
            return true;
    }
    return false;
}

static loco_status parse_block(parse_ctx *pc, chat_message *msg, const json_t *blk,
                               const char *path)
{
    if (!json_is_object(blk))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "%s: expected an object", path);
    const char *type = json_get_str(blk, "type");
    if (!type)
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "%s: block needs a string \"type\"", path);
    if (pc->check != CHAT_CHECK_SHAPE && !known_block_type(type))
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "%s.type: unknown content block type '%.64s'", path, type);
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
    if (!chat_anth_int_value(v, &x))
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

/* ---- the API's own checks (CHAT_CHECK_API) ---- */

static loco_status check_unit_range(parse_ctx *pc, const char *key, bool has, double v)
{
    if (has && !(v >= 0.0 && v <= 1.0))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "%s: must be between 0 and 1", key);
    return LOCO_OK;
}

static loco_status check_metadata(parse_ctx *pc, const json_t *md)
{
    if (!md)
        return LOCO_OK;
    if (!json_is_object(md))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "metadata: expected an object");
    const json_t *uid = member(md, "user_id");
    if (uid && !json_is_string(uid))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "metadata.user_id: expected a string");
    return LOCO_OK;
}

static loco_status check_thinking(parse_ctx *pc, const json_t *th)
{
    if (!th)
        return LOCO_OK;
    if (!json_is_object(th))
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "thinking: expected an object");
    const char *type = json_get_str(th, "type");
    if (!type)
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "thinking.type: expected a string");
    const json_t *budget = member(th, "budget_tokens");
    long b = 0;
    if (budget && !chat_anth_int_value(budget, &b))
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "thinking.budget_tokens: expected an integer");
    if (strcmp(type, "enabled") != 0)
        return LOCO_OK;
    if (!budget)
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "thinking.budget_tokens: required when thinking is enabled");
    if (b < 1024)
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "thinking.budget_tokens: must be at least 1024");
    if (pc->req->max_tokens && b >= pc->req->max_tokens)
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "thinking.budget_tokens: must be less than max_tokens (%ld)",
                            pc->req->max_tokens);
    return LOCO_OK;
}

/* True when the content of message m has a tool_use block with this id. */
static bool has_tool_use(const json_t *m, const char *id)
{
    const json_t *content = member(m, "content");
    for (size_t i = 0; i < json_array_size(content); i++) {
        const json_t *b = json_array_get(content, i);
        const char *type = json_get_str(b, "type");
        const char *bid = json_get_str(b, "id");
        if (type && bid && !strcmp(type, "tool_use") && !strcmp(bid, id))
            return true;
    }
    return false;
}

/* Every tool_result answers a tool_use of the previous assistant message. */
static loco_status check_tool_results(parse_ctx *pc, const json_t *msgs)
{
    const json_t *prev = NULL; /* the previous message that is not role "system" */
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const json_t *m = json_array_get(msgs, i);
        const char *role = json_get_str(m, "role");
        const json_t *content = member(m, "content");
        for (size_t j = 0; j < json_array_size(content); j++) {
            const json_t *b = json_array_get(content, j);
            const char *type = json_get_str(b, "type");
            const char *id = json_get_str(b, "tool_use_id");
            if (!type || strcmp(type, "tool_result") != 0 || !id)
                continue;
            const char *prole = prev ? json_get_str(prev, "role") : NULL;
            if (!prole || strcmp(prole, "assistant") != 0 || !has_tool_use(prev, id))
                return loco_err_set(pc->err, LOCO_ERR_INVALID,
                                    "messages[%zu].content[%zu]: tool_result for tool_use_id "
                                    "'%.100s' has no tool_use block with that id in the "
                                    "previous assistant message",
                                    i, j, id);
        }
        if (!role || strcmp(role, "system") != 0)
            prev = m;
    }
    return LOCO_OK;
}

static loco_status check_api(parse_ctx *pc, const json_t *root)
{
    chat_request *req = pc->req;
    const json_t *msgs = member(root, "messages");
    if (json_array_size(msgs) == 0)
        return loco_err_set(pc->err, LOCO_ERR_INVALID,
                            "messages: at least one message is required");
    if (!member(root, "max_tokens") && pc->check == CHAT_CHECK_API)
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "max_tokens: field required");
    if (req->max_tokens > CHAT_MAX_TOKENS_LIMIT)
        return loco_err_set(pc->err, LOCO_ERR_INVALID, "max_tokens: must be at most %ld",
                            CHAT_MAX_TOKENS_LIMIT);
    loco_status rc = check_unit_range(pc, "temperature", req->has_temperature, req->temperature);
    if (!rc)
        rc = check_unit_range(pc, "top_p", req->has_top_p, req->top_p);
    if (!rc)
        rc = check_metadata(pc, member(root, "metadata"));
    if (!rc)
        rc = check_thinking(pc, member(root, "thinking"));
    if (!rc)
        rc = check_tool_results(pc, msgs);
    return rc;
}

loco_status chat_anth_parse_request(const char *body, size_t n, chat_request **out_req,
                                    loco_err *err)
{
    return chat_anth_parse_request_checked(body, n, CHAT_CHECK_SHAPE, out_req, err);
}

loco_status chat_anth_parse_request_checked(const char *body, size_t n, chat_check check,
                                            chat_request **out_req, loco_err *err)
{
    *out_req = NULL;
    json_t *root = json_parse(body, n, err);
    if (!root)
        return LOCO_ERR_INVALID;
    parse_ctx pc = {.req = chat_request_new(), .err = err, .max_text = n, .check = check};
    loco_status rc = pc.req ? parse_root(&pc, root) : nomem(err);
    if (!rc && check != CHAT_CHECK_SHAPE)
        rc = check_api(&pc, root);
    json_decref(root);
    if (rc) {
        chat_request_free(pc.req);
        return rc;
    }
    *out_req = pc.req;
    return LOCO_OK;
}
