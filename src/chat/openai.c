/* openai.c: the OpenAI Chat Completions codec (chat/ layer): request parse/write, the
 * upstream stream and body readers, error-body helpers, and the front's SSE and JSON writers.
 * Sits between wire JSON/SSE and the neutral model of chat.h; see docs/internals/openai.md. */
#include "base/common.h"

#include <math.h>

#include "base/json.h"
#include "base/str.h"
#include "base/utf8.h"
#include "chat/openai.h"

/* ======================================================================================
 * Shared helpers
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
static bool text_says_overflow(const char *s, size_t n)
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
    return msg && text_says_overflow(msg, strlen(msg));
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
        yes = text_says_overflow(body, n);
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
 * Parsing a request (the OpenAI front)
 * ==================================================================================== */

typedef struct {
    chat_request *req;
    loco_err *err;
    bool folding; /* the last message is a user message built from role:"tool" messages */
    buf sys;      /* leading system/developer text joined with "\n\n" */
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

loco_status chat_oai_parse_request(const char *body, size_t n, chat_request **out_req, loco_err *err)
{
    *out_req = NULL;
    json_t *root = json_parse(body, n, err);
    if (!root)
        return LOCO_ERR_INVALID;
    oai_parser p;
    memset(&p, 0, sizeof(p));
    p.err = err;
    buf_init(&p.sys, BUF_UNLIMITED);
    p.req = chat_request_new();
    loco_status rc = p.req ? parse_root(&p, root) : nomem(&p);
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

/* ======================================================================================
 * Writing a request (to an OpenAI-compatible upstream)
 * ==================================================================================== */

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

static loco_status write_tool_call(buf *out, const chat_block *b, bool first)
{
    loco_status rc = buf_appends(out, first ? "{\"id\":" : ",{\"id\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, b->id);
    if (!rc)
        rc = buf_appends(out, ",\"type\":\"function\",\"function\":{\"name\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, b->name);
    if (!rc)
        rc = buf_appends(out, ",\"arguments\":");
    if (!rc)
        rc = json_append_cstr_lossy(out, b->args_json && *b->args_json ? b->args_json : "{}");
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
            if (m->blocks[i].type != CHAT_BLOCK_TOOL_CALL)
                continue;
            rc = write_tool_call(out, &m->blocks[i], firstc);
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
        rc = buf_appends(out, first ? "{\"id\":" : ",{\"id\":");
        first = false;
        if (!rc)
            rc = json_append_cstr_lossy(out, b->id);
        if (!rc)
            rc = buf_appends(out, ",\"type\":\"function\",\"function\":{\"name\":");
        if (!rc)
            rc = json_append_cstr_lossy(out, b->name);
        if (!rc)
            rc = buf_appends(out, ",\"arguments\":");
        if (!rc)
            rc = b->len ? json_append_str_lossy(out, b->text, b->len) : buf_appends(out, "\"{}\"");
        if (!rc)
            rc = buf_appends(out, "}}");
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
        rc = buf_appends(out, text_says_overflow(msg, strlen(msg))
                                  ? ",\"code\":\"context_length_exceeded\"}}"
                                  : ",\"code\":null}}");
    return rc;
}
