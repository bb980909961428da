/* openai_request_parse.c: /v1/chat/completions request JSON -> chat_request (the gateway's
 * OpenAI front). Part of the OpenAI codec (openai.h, docs/internals/openai.md). */
#include "base/common.h"

#include "base/json.h"
#include "base/str.h"
#include "chat/openai_int.h"

/* ======================================================================================
 * Parsing a request (the OpenAI front)
 * ==================================================================================== */

typedef struct {
    chat_request *req;
    loco_err *err;
    bool folding; /* the last message is a user message built from role:"tool" messages */
    buf sys;      /* leading system/developer text joined with "\n\n" */
    chat_check check;
} oai_parser;

/* snprintf for JSON paths in error messages (truncation is harmless there). */
static void path_fmt(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void path_fmt(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, size, fmt, ap);
    va_end(ap);
}

static loco_status bad(oai_parser *p, const char *path, const char *what)
{
    return loco_err_set(p->err, LOCO_ERR_INVALID, "%s: %s", path, what);
}

static loco_status nomem(oai_parser *p)
{
    return loco_err_set(p->err, LOCO_ERR_NOMEM, "out of memory parsing the request");
}

/* A JSON member that is present and not null, else NULL. */
static json_t *member(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static const char *dup_json_str(oai_parser *p, const json_t *s)
{
    return chat_strndup(p->req, json_string_value(s), json_string_length(s));
}

/* Flattens content (a string or an array of text parts) into out, parts joined with "\n". */
static loco_status content_text(oai_parser *p, const json_t *content, const char *path, buf *out)
{
    if (!content)
        return LOCO_OK;
    if (json_is_string(content))
        return buf_append(out, json_string_value(content), json_string_length(content));
    if (!json_is_array(content))
        return bad(p, path, "expected a string or an array of parts");
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        char ppath[160];
        path_fmt(ppath, sizeof(ppath), "%s[%zu]", path, i);
        const char *type = json_get_str(part, "type");
        const json_t *text = NULL;
        if (type && !strcmp(type, "text"))
            text = json_object_get(part, "text");
        else if (type && !strcmp(type, "refusal"))
            text = json_object_get(part, "refusal");
        if (!json_is_string(text))
            return bad(p, ppath, "expected a text part {\"type\":\"text\",\"text\":...}");
        if (out->len && buf_appendc(out, '\n'))
            return nomem(p);
        if (buf_append(out, json_string_value(text), json_string_length(text)))
            return nomem(p);
    }
    return LOCO_OK;
}

static loco_status add_text_block(oai_parser *p, chat_message *m, const char *s, size_t n)
{
    chat_block *b = chat_message_add_block(p->req, m, CHAT_BLOCK_TEXT);
    if (!b)
        return nomem(p);
    b->text = chat_strndup(p->req, s, n);
    return b->text ? LOCO_OK : nomem(p);
}

static loco_status parse_system(oai_parser *p, const json_t *msg, const char *path)
{
    char cpath[160];
    path_fmt(cpath, sizeof(cpath), "%s.content", path);
    buf text;
    buf_init(&text, BUF_UNLIMITED);
    loco_status rc = content_text(p, member(msg, "content"), cpath, &text);
    if (!rc && p->req->n_msgs == 0) {
        if (p->sys.len && buf_appends(&p->sys, "\n\n"))
            rc = nomem(p);
        if (!rc && buf_append(&p->sys, buf_str(&text), text.len))
            rc = nomem(p);
    } else if (!rc) {
        chat_message *m = chat_request_add_message(p->req, CHAT_ROLE_SYSTEM);
        rc = m ? add_text_block(p, m, buf_str(&text), text.len) : nomem(p);
        p->folding = false;
    }
    buf_release(&text);
    return rc;
}

/* One user content part: text, image_url, input_audio or file. */
static loco_status parse_user_part(oai_parser *p, chat_message *m, const json_t *part,
                                   const char *path)
{
    const char *type = json_get_str(part, "type");
    if (!type)
        return bad(p, path, "expected a part with a string \"type\"");
    if (!strcmp(type, "text")) {
        const json_t *t = json_object_get(part, "text");
        if (!json_is_string(t))
            return bad(p, path, "text part needs a string \"text\"");
        return add_text_block(p, m, json_string_value(t), json_string_length(t));
    }
    chat_block_type bt;
    if (!strcmp(type, "image_url"))
        bt = CHAT_BLOCK_IMAGE;
    else if (!strcmp(type, "input_audio") || !strcmp(type, "file"))
        bt = CHAT_BLOCK_DOCUMENT;
    else
        return bad(p, path, "unsupported part type (text, image_url, input_audio, file)");
    return chat_message_add_block(p->req, m, bt) ? LOCO_OK : nomem(p);
}

/* The message a user turn goes into: the tool-result message just built, or a new one. */
static chat_message *user_target(oai_parser *p)
{
    if (p->folding && p->req->n_msgs)
        return &p->req->msgs[p->req->n_msgs - 1];
    return chat_request_add_message(p->req, CHAT_ROLE_USER);
}

static loco_status parse_user(oai_parser *p, const json_t *msg, const char *path)
{
    const json_t *content = member(msg, "content");
    char cpath[160];
    path_fmt(cpath, sizeof(cpath), "%s.content", path);
    if (content && !json_is_string(content) && !json_is_array(content))
        return bad(p, cpath, "expected a string or an array of parts");
    chat_message *m = user_target(p);
    p->folding = false;
    if (!m)
        return nomem(p);
    if (json_is_string(content))
        return add_text_block(p, m, json_string_value(content), json_string_length(content));
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        char ppath[180];
        path_fmt(ppath, sizeof(ppath), "%s[%zu]", cpath, i);
        loco_status rc = parse_user_part(p, m, part, ppath);
        if (rc)
            return rc;
    }
    return LOCO_OK;
}

/* function.arguments: a string kept as given, or (non-standard) an object made compact. */
static const char *arguments_text(oai_parser *p, const json_t *args)
{
    if (!args)
        return chat_strdup(p->req, "{}");
    if (json_is_string(args))
        return dup_json_str(p, args);
    char *s = json_is_object(args) ? json_to_string(args) : NULL;
    const char *r = s ? chat_strdup(p->req, s) : NULL;
    free(s);
    return r;
}

static loco_status add_tool_call(oai_parser *p, chat_message *m, const char *id,
                                 const json_t *fn, const char *path)
{
    char fpath[200];
    path_fmt(fpath, sizeof(fpath), "%s.name", path);
    const json_t *name = json_is_object(fn) ? json_object_get(fn, "name") : NULL;
    if (!json_is_string(name) || !json_string_length(name))
        return bad(p, fpath, "expected a non-empty string");
    const json_t *args = member(fn, "arguments");
    if (args && !json_is_string(args) && !json_is_object(args)) {
        path_fmt(fpath, sizeof(fpath), "%s.arguments", path);
        return bad(p, fpath, "expected a string");
    }
    if (p->check != CHAT_CHECK_SHAPE && json_is_string(args)) {
        json_t *v = json_parse(json_string_value(args), json_string_length(args), NULL);
        bool object = json_is_object(v);
        json_decref(v);
        if (!object) {
            path_fmt(fpath, sizeof(fpath), "%s.arguments", path);
            return bad(p, fpath, "expected a JSON object in a string (the text is not one)");
        }
    }
    chat_block *b = chat_message_add_block(p->req, m, CHAT_BLOCK_TOOL_CALL);
    if (!b)
        return nomem(p);
    char gen[64];
    if (!id) {
        str_random_id("call_", gen, sizeof(gen));
        id = gen;
    }
    b->id = chat_strdup(p->req, id);
    b->name = dup_json_str(p, name);
    b->args_json = arguments_text(p, args);
    return b->id && b->name && b->args_json ? LOCO_OK : nomem(p);
}

static loco_status parse_assistant_calls(oai_parser *p, chat_message *m, const json_t *msg,
                                         const char *path)
{
    const json_t *calls = member(msg, "tool_calls");
    char cpath[200];
    if (calls && !json_is_array(calls)) {
        path_fmt(cpath, sizeof(cpath), "%s.tool_calls", path);
        return bad(p, cpath, "expected an array");
    }
    size_t i;
    json_t *tc;
    json_array_foreach(calls, i, tc) {
        path_fmt(cpath, sizeof(cpath), "%s.tool_calls[%zu]", path, i);
        if (!json_is_object(tc))
            return bad(p, cpath, "expected an object");
        const char *id = json_get_str(tc, "id");
        char fpath[220];
        path_fmt(fpath, sizeof(fpath), "%s.function", cpath);
        loco_status rc = add_tool_call(p, m, id, member(tc, "function"), fpath);
        if (rc)
            return rc;
    }
    const json_t *fc = member(msg, "function_call"); /* legacy: id derived from the name */
    if (!fc)
        return LOCO_OK;
    path_fmt(cpath, sizeof(cpath), "%s.function_call", path);
    const char *fname = json_get_str(fc, "name");
    char id[CHAT_OAI_MAX_ID];
    snprintf(id, sizeof(id), "call_%s", fname ? fname : "");
    return add_tool_call(p, m, id, fc, cpath);
}

static loco_status parse_assistant(oai_parser *p, const json_t *msg, const char *path)
{
    char cpath[160];
    path_fmt(cpath, sizeof(cpath), "%s.content", path);
    buf text;
    buf_init(&text, BUF_UNLIMITED);
    const json_t *content = member(msg, "content");
    loco_status rc = content_text(p, content, cpath, &text);
    chat_message *m = rc ? NULL : chat_request_add_message(p->req, CHAT_ROLE_ASSISTANT);
    p->folding = false;
    if (!rc && !m)
        rc = nomem(p);
    bool calls = member(msg, "tool_calls") || member(msg, "function_call");
    if (!rc && content && (text.len || !calls))
        rc = add_text_block(p, m, buf_str(&text), text.len);
    if (!rc)
        rc = parse_assistant_calls(p, m, msg, path);
    buf_release(&text);
    return rc;
}

/* role "tool" (and legacy "function"): a TOOL_RESULT in the current tool-result message. */
static loco_status parse_tool(oai_parser *p, const json_t *msg, const char *path, bool legacy)
{
    char ipath[160];
    const char *id = json_get_str(msg, legacy ? "name" : "tool_call_id");
    if (!id) {
        path_fmt(ipath, sizeof(ipath), "%s.%s", path, legacy ? "name" : "tool_call_id");
        return bad(p, ipath, "expected a string");
    }
    char legacy_id[CHAT_OAI_MAX_ID];
    if (legacy) {
        snprintf(legacy_id, sizeof(legacy_id), "call_%s", id);
        id = legacy_id;
    }
    path_fmt(ipath, sizeof(ipath), "%s.content", path);
    buf text;
    buf_init(&text, BUF_UNLIMITED);
    loco_status rc = content_text(p, member(msg, "content"), ipath, &text);
    chat_message *m = NULL;
    if (!rc) {
        m = user_target(p);
        rc = m ? LOCO_OK : nomem(p);
    }
    chat_block *b = rc ? NULL : chat_message_add_block(p->req, m, CHAT_BLOCK_TOOL_RESULT);
    if (!rc && !b)
        rc = nomem(p);
    if (!rc) {
        b->id = chat_strdup(p->req, id);
        b->text = chat_strndup(p->req, buf_str(&text), text.len);
        rc = b->id && b->text ? LOCO_OK : nomem(p);
        p->folding = true;
    }
    buf_release(&text);
    return rc;
}

static loco_status parse_message(oai_parser *p, const json_t *msg, size_t i)
{
    char path[64];
    path_fmt(path, sizeof(path), "messages[%zu]", i);
    if (!json_is_object(msg))
        return bad(p, path, "expected an object");
    const char *role = json_get_str(msg, "role");
    if (!role) {
        path_fmt(path, sizeof(path), "messages[%zu].role", i);
        return bad(p, path, "expected a string");
    }
    if (!strcmp(role, "system") || !strcmp(role, "developer"))
        return parse_system(p, msg, path);
    if (!strcmp(role, "user"))
        return parse_user(p, msg, path);
    if (!strcmp(role, "assistant"))
        return parse_assistant(p, msg, path);
    if (!strcmp(role, "tool"))
        return parse_tool(p, msg, path, false);
    if (!strcmp(role, "function"))
        return parse_tool(p, msg, path, true);
    path_fmt(path, sizeof(path), "messages[%zu].role", i);
    return bad(p, path, "unknown role (system, developer, user, assistant, tool, function)");
}

static loco_status parse_one_tool(oai_parser *p, const json_t *fn, const char *path)
{
    char fpath[96];
    path_fmt(fpath, sizeof(fpath), "%s.name", path);
    const char *name = json_get_str(fn, "name");
    if (!name || !*name)
        return bad(p, fpath, "expected a non-empty string");
    const json_t *params = member(fn, "parameters");
    if (params && !json_is_object(params)) {
        path_fmt(fpath, sizeof(fpath), "%s.parameters", path);
        return bad(p, fpath, "expected a JSON Schema object");
    }
    char *schema = params ? json_to_string(params) : NULL;
    if (params && !schema)
        return nomem(p);
    chat_tool *t = chat_request_add_tool(p->req, name, json_get_str(fn, "description"), schema);
    free(schema);
    return t ? LOCO_OK : nomem(p);
}

static loco_status parse_tools(oai_parser *p, const json_t *root)
{
    const json_t *tools = member(root, "tools");
    if (tools && !json_is_array(tools))
        return bad(p, "tools", "expected an array");
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        char path[64];
        path_fmt(path, sizeof(path), "tools[%zu]", i);
        const char *type = json_get_str(t, "type");
        if (!type || strcmp(type, "function")) {
            path_fmt(path, sizeof(path), "tools[%zu].type", i);
            return bad(p, path, "only \"function\" tools are supported");
        }
        const json_t *fn = member(t, "function");
        path_fmt(path, sizeof(path), "tools[%zu].function", i);
        if (!json_is_object(fn))
            return bad(p, path, "expected an object");
        loco_status rc = parse_one_tool(p, fn, path);
        if (rc)
            return rc;
    }
    const json_t *fns = member(root, "functions"); /* legacy */
    if (fns && !json_is_array(fns))
        return bad(p, "functions", "expected an array");
    json_array_foreach(fns, i, t) {
        char path[64];
        path_fmt(path, sizeof(path), "functions[%zu]", i);
        if (!json_is_object(t))
            return bad(p, path, "expected an object");
        loco_status rc = parse_one_tool(p, t, path);
        if (rc)
            return rc;
    }
    return LOCO_OK;
}

static loco_status parse_tool_choice(oai_parser *p, const json_t *root)
{
    const char *key = "tool_choice";
    const json_t *tc = member(root, key);
    if (!tc) {
        key = "function_call"; /* legacy: "auto" | "none" | {"name"} */
        tc = member(root, key);
    }
    if (!tc)
        return LOCO_OK;
    chat_request *req = p->req;
    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        if (!strcmp(s, "auto"))
            req->tool_choice = CHAT_TOOL_CHOICE_AUTO;
        else if (!strcmp(s, "none"))
            req->tool_choice = CHAT_TOOL_CHOICE_NONE;
        else if (!strcmp(s, "required"))
            req->tool_choice = CHAT_TOOL_CHOICE_ANY;
        else
            return bad(p, key, "expected \"auto\", \"none\", \"required\" or a named function");
        return LOCO_OK;
    }
    const json_t *fn = json_is_object(tc) ? member(tc, "function") : NULL;
    const char *name = json_get_str(fn ? fn : tc, "name");
    if (!name) {
        char path[64];
        path_fmt(path, sizeof(path), "%s%s.name", key, fn ? ".function" : "");
        return bad(p, json_is_object(tc) ? path : key, "expected a named function");
    }
    req->tool_choice = CHAT_TOOL_CHOICE_TOOL;
    req->tool_choice_name = chat_strdup(req, name);
    return req->tool_choice_name ? LOCO_OK : nomem(p);
}

static loco_status parse_stop(oai_parser *p, const json_t *root)
{
    const json_t *stop = member(root, "stop");
    if (!stop)
        return LOCO_OK;
    size_t n = json_is_string(stop) ? 1 : json_is_array(stop) ? json_array_size(stop) : 0;
    if (!json_is_string(stop) && !json_is_array(stop))
        return bad(p, "stop", "expected a string or an array of strings");
    if (n > CHAT_OAI_MAX_STOP)
        return loco_err_set(p->err, LOCO_ERR_INVALID, "stop: at most %d sequences",
                            CHAT_OAI_MAX_STOP);
    chat_request *req = p->req;
    req->stop = n ? arena_alloc(&req->mem, n * sizeof(char *)) : NULL;
    if (n && !req->stop)
        return nomem(p);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_string(stop) ? stop : json_array_get(stop, i);
        if (!json_is_string(s)) {
            char path[32];
            path_fmt(path, sizeof(path), "stop[%zu]", i);
            return bad(p, path, "expected a string");
        }
        req->stop[i] = dup_json_str(p, s);
        if (!req->stop[i])
            return nomem(p);
        req->n_stop = i + 1;
    }
    return LOCO_OK;
}

/* A number member: absent/null leaves *out alone; otherwise it must be a number. */
static loco_status opt_number(oai_parser *p, const json_t *root, const char *key, bool *has,
                              double *out)
{
    const json_t *v = member(root, key);
    if (!v)
        return LOCO_OK;
    if (!json_is_number(v))
        return bad(p, key, "expected a number");
    *out = json_number_value(v);
    *has = true;
    return LOCO_OK;
}

static loco_status opt_long(oai_parser *p, const json_t *root, const char *key, long min, long *out)
{
    const json_t *v = member(root, key);
    if (!v)
        return LOCO_OK;
    long x;
    if (!json_get_long(root, key, &x) || x < min)
        return loco_err_set(p->err, LOCO_ERR_INVALID, "%s: expected an integer >= %ld", key, min);
    *out = x;
    return LOCO_OK;
}

static loco_status opt_bool(oai_parser *p, const json_t *root, const char *key, bool *out)
{
    const json_t *v = member(root, key);
    if (!v)
        return LOCO_OK;
    if (!json_is_boolean(v))
        return bad(p, key, "expected true or false");
    *out = json_is_true(v);
    return LOCO_OK;
}

static loco_status parse_params(oai_parser *p, const json_t *root)
{
    chat_request *req = p->req;
    long max_tokens = 0, max_completion = 0;
    loco_status rc = opt_long(p, root, "max_tokens", 1, &max_tokens);
    if (!rc)
        rc = opt_long(p, root, "max_completion_tokens", 1, &max_completion);
    req->max_tokens = max_completion ? max_completion : max_tokens;
    if (!rc)
        rc = opt_number(p, root, "temperature", &req->has_temperature, &req->temperature);
    if (!rc)
        rc = opt_number(p, root, "top_p", &req->has_top_p, &req->top_p);
    if (!rc)
        rc = opt_long(p, root, "top_k", 0, &req->top_k);
    if (!rc)
        rc = opt_bool(p, root, "stream", &req->stream);
    if (!rc)
        rc = opt_bool(p, root, "parallel_tool_calls", &req->parallel_tool_calls);
    if (!rc)
        rc = parse_stop(p, root);
    if (!rc)
        rc = parse_tool_choice(p, root);
    return rc;
}

static loco_status parse_root(oai_parser *p, const json_t *root)
{
    if (!json_is_object(root))
        return bad(p, "body", "expected a JSON object");
    const json_t *model = member(root, "model");
    if (!json_is_string(model))
        return bad(p, "model", "expected a string");
    p->req->model = dup_json_str(p, model);
    if (!p->req->model)
        return nomem(p);
    const json_t *msgs = member(root, "messages");
    if (!json_is_array(msgs))
        return bad(p, "messages", "expected an array");
    size_t i;
    json_t *msg;
    json_array_foreach(msgs, i, msg) {
        loco_status rc = parse_message(p, msg, i);
        if (rc)
            return rc;
    }
    if (p->sys.len) {
        p->req->system = chat_strndup(p->req, buf_str(&p->sys), p->sys.len);
        if (!p->req->system)
            return nomem(p);
    }
    loco_status rc = parse_tools(p, root);
    if (!rc)
        rc = parse_params(p, root);
    return rc;
}

static loco_status check_api(oai_parser *p, const json_t *root)
{
    const chat_request *req = p->req;
    if (json_array_size(member(root, "messages")) == 0)
        return bad(p, "messages", "at least one message is required");
    if (req->max_tokens > CHAT_MAX_TOKENS_LIMIT)
        return loco_err_set(p->err, LOCO_ERR_INVALID, "%s: must be at most %ld",
                            member(root, "max_completion_tokens") ? "max_completion_tokens"
                                                                  : "max_tokens",
                            CHAT_MAX_TOKENS_LIMIT);
    if (req->has_temperature && !(req->temperature >= 0.0 && req->temperature <= 2.0))
        return bad(p, "temperature", "must be between 0 and 2");
    if (req->has_top_p && !(req->top_p >= 0.0 && req->top_p <= 1.0))
        return bad(p, "top_p", "must be between 0 and 1");
    return LOCO_OK;
}

loco_status chat_oai_parse_request(const char *body, size_t n, chat_request **out_req, loco_err *err)
{
    return chat_oai_parse_request_checked(body, n, CHAT_CHECK_SHAPE, out_req, err);
}

loco_status chat_oai_parse_request_checked(const char *body, size_t n, chat_check check,
                                           chat_request **out_req, loco_err *err)
{
    *out_req = NULL;
    json_t *root = json_parse(body, n, err);
    if (!root)
        return LOCO_ERR_INVALID;
    oai_parser p;
    memset(&p, 0, sizeof(p));
    p.err = err;
    p.check = check;
    buf_init(&p.sys, BUF_UNLIMITED);
    p.req = chat_request_new();
    loco_status rc = p.req ? parse_root(&p, root) : nomem(&p);
    if (!rc && check != CHAT_CHECK_SHAPE)
        rc = check_api(&p, root);
    buf_release(&p.sys);
    json_decref(root);
    if (rc) {
        chat_request_free(p.req);
        return rc;
    }
    *out_req = p.req;
    return LOCO_OK;
}

bool chat_oai_request_wants_usage(const char *body, size_t n)
{
    json_t *root = json_parse(body, n, NULL);
    const json_t *so = json_is_object(root) ? json_object_get(root, "stream_options") : NULL;
    bool yes = false;
    if (!json_get_bool(so, "include_usage", &yes))
        yes = false;
    json_decref(root);
    return yes;
}
