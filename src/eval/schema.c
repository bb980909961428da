/* schema.c: argument syntax of a tool call: the built-in schemas of Claude Code's explorer
 * tools and the check of required arguments and their JSON types against a JSON Schema.
 * Part of eval/. */
#include "base/common.h"

#include "base/json.h"
#include "eval/eval.h"

/* Claude Code's argument names, types and required fields (Task as Claude Code 1.x/2.0 sent
 * it, the form LocoOperator-4B was trained on). */
static const chat_tool builtin[] = {
    {"Read", "Read a file",
     "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"},"
     "\"offset\":{\"type\":\"number\"},\"limit\":{\"type\":\"number\"}},"
     "\"required\":[\"file_path\"]}"},
    {"Grep", "Search file contents",
     "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\"},"
     "\"path\":{\"type\":\"string\"},\"glob\":{\"type\":\"string\"},"
     "\"output_mode\":{\"type\":\"string\"},\"-B\":{\"type\":\"number\"},"
     "\"-A\":{\"type\":\"number\"},\"-C\":{\"type\":\"number\"},\"-n\":{\"type\":\"boolean\"},"
     "\"-i\":{\"type\":\"boolean\"},\"type\":{\"type\":\"string\"},"
     "\"head_limit\":{\"type\":\"number\"},\"multiline\":{\"type\":\"boolean\"}},"
     "\"required\":[\"pattern\"]}"},
    {"Glob", "Find files by pattern",
     "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\"},"
     "\"path\":{\"type\":\"string\"}},\"required\":[\"pattern\"]}"},
    {"Bash", "Run a shell command",
     "{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\"},"
     "\"timeout\":{\"type\":\"number\"},\"description\":{\"type\":\"string\"},"
     "\"run_in_background\":{\"type\":\"boolean\"}},\"required\":[\"command\"]}"},
    {"Write", "Write a file",
     "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"},"
     "\"content\":{\"type\":\"string\"}},\"required\":[\"file_path\",\"content\"]}"},
    {"Edit", "Replace text in a file",
     "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"},"
     "\"old_string\":{\"type\":\"string\"},\"new_string\":{\"type\":\"string\"},"
     "\"replace_all\":{\"type\":\"boolean\"}},"
     "\"required\":[\"file_path\",\"old_string\",\"new_string\"]}"},
    {"Task", "Run a sub-agent",
     "{\"type\":\"object\",\"properties\":{\"description\":{\"type\":\"string\"},"
     "\"prompt\":{\"type\":\"string\"},\"subagent_type\":{\"type\":\"string\"}},"
     "\"required\":[\"description\",\"prompt\",\"subagent_type\"]}"},
};

const chat_tool *eval_builtin_tools(size_t *out_n)
{
    *out_n = LOCO_ARRAY_LEN(builtin);
    return builtin;
}

static bool type_is(const json_t *v, const char *type)
{
    if (!strcmp(type, "string"))
        return json_is_string(v);
    if (!strcmp(type, "number"))
        return json_is_number(v);
    if (!strcmp(type, "integer")) {
        if (json_is_integer(v))
            return true;
        double d = json_is_real(v) ? json_real_value(v) : 0.5;
        return d == (double)(long long)d;
    }
    if (!strcmp(type, "boolean"))
        return json_is_boolean(v);
    if (!strcmp(type, "object"))
        return json_is_object(v);
    if (!strcmp(type, "array"))
        return json_is_array(v);
    if (!strcmp(type, "null"))
        return json_is_null(v);
    return true; /* a type this check does not know */
}

/* True when v has the JSON type that prop (a property schema) asks for. */
static bool value_ok(const json_t *prop, const json_t *v)
{
    const json_t *type = json_object_get(prop, "type");
    if (json_is_string(type))
        return type_is(v, json_string_value(type));
    if (!json_is_array(type) || !json_array_size(type))
        return true;
    size_t i;
    const json_t *t;
    json_array_foreach(type, i, t) {
        if (json_is_string(t) && type_is(v, json_string_value(t)))
            return true;
    }
    return false;
}

static const chat_tool *find_tool(const chat_tool *tools, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (tools[i].name && !strcmp(tools[i].name, name))
            return &tools[i];
    }
    return NULL;
}

/* Required properties present with the right types; properties present but not required are
 * type-checked too. */
static bool args_match(const json_t *schema, const json_t *args, const char **why)
{
    const json_t *props = json_object_get(schema, "properties");
    const json_t *req = json_object_get(schema, "required");
    size_t i;
    const json_t *r;
    json_array_foreach(req, i, r) {
        if (json_is_string(r) && !json_object_get(args, json_string_value(r))) {
            *why = "a required argument is missing";
            return false;
        }
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)args, key, v) {
        const json_t *prop = json_object_get(props, key);
        if (prop && !value_ok(prop, v)) {
            *why = "an argument has the wrong JSON type";
            return false;
        }
    }
    return true;
}

/* Parses text as JSON when it is an object; NULL otherwise. */
static json_t *parse_object(const char *text)
{
    json_t *v = text ? json_parse(text, strlen(text), NULL) : NULL;
    if (json_is_object(v))
        return v;
    json_decref(v);
    return NULL;
}

static bool check(const eval_call *c, const chat_tool *tools, size_t n, const char **why)
{
    if (!c->json_valid) {
        *why = "the call is not valid JSON";
        return false;
    }
    if (!c->name) {
        *why = "the call names no tool";
        return false;
    }
    const chat_tool *t = find_tool(tools, n, c->name);
    if (!t) {
        *why = "unknown tool";
        return false;
    }
    json_t *args = parse_object(c->args_json);
    if (!args) {
        *why = "the arguments are not a JSON object";
        return false;
    }
    json_t *schema = parse_object(t->schema_json); /* none or unreadable: checks nothing */
    bool ok = !schema || args_match(schema, args, why);
    json_decref(args);
    json_decref(schema);
    return ok;
}

bool eval_args_ok(const eval_call *c, const chat_tool *tools, size_t n, const char **out_reason)
{
    const char *why = NULL;
    bool ok = check(c, tools, n, &why);
    if (out_reason)
        *out_reason = ok ? NULL : why;
    return ok;
}
