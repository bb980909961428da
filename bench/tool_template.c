/* tool_template.c: prints the prompt that src/engine/template.c renders for one conversation
 * file ({messages, tools?, add_generation_prompt?, enable_thinking?}, OpenAI/HF message form).
 * A driver for tests/engine/template.test.mjs, which compares it with the Jinja reference.
 *   tool_template [--dialect instruct-2507|hybrid] FILE.json */
#include "base/common.h"

#include <jansson.h>

#include "base/buf.h"
#include "engine/template.h"

#define TOOL_TEMPLATE_PROMPT_MAX ((size_t)64 << 20)

/* Everything one conversation needs; the strings point into `root` or into `dumps`. */
typedef struct {
    json_t *root;
    tmpl_message *msgs;
    tmpl_tool_call *calls;
    tmpl_tool *tools;
    char **dumps;
    size_t n_msgs, n_calls, n_tools, n_dumps;
} conversation;

/* Compact JSON text of v; 17 significant digits keep every double exact. */
static const char *dump(conversation *c, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER |
                                JSON_REAL_PRECISION(17));
    if (s)
        c->dumps[c->n_dumps++] = s;
    return s;
}

static int parse_role(const char *r, tmpl_role *out)
{
    static const struct {
        const char *name;
        tmpl_role role;
    } roles[] = {{"system", TMPL_ROLE_SYSTEM},
                 {"user", TMPL_ROLE_USER},
                 {"assistant", TMPL_ROLE_ASSISTANT},
                 {"tool", TMPL_ROLE_TOOL}};
    for (size_t i = 0; r && i < LOCO_ARRAY_LEN(roles); i++) {
        if (strcmp(r, roles[i].name) == 0) {
            *out = roles[i].role;
            return 0;
        }
    }
    return -1;
}

static void read_call(conversation *c, const json_t *tc, tmpl_tool_call *out)
{
    const json_t *fn = json_object_get(tc, "function");
    if (json_is_object(fn) && json_object_size(fn) > 0)
        tc = fn;
    out->name = json_string_value(json_object_get(tc, "name"));
    const json_t *args = json_object_get(tc, "arguments");
    if (json_is_string(args)) {
        out->arguments = json_string_value(args);
        out->arguments_raw = true;
    } else if (args) {
        out->arguments = dump(c, args);
    }
}

static int read_messages(conversation *c, const json_t *msgs)
{
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const json_t *m = json_array_get(msgs, i);
        tmpl_message *out = &c->msgs[c->n_msgs++];
        if (parse_role(json_string_value(json_object_get(m, "role")), &out->role) != 0) {
            fprintf(stderr, "message %zu: unknown role\n", i);
            return -1;
        }
        out->content = json_string_value(json_object_get(m, "content"));
        out->reasoning_content = json_string_value(json_object_get(m, "reasoning_content"));
        const json_t *tcs = json_object_get(m, "tool_calls");
        out->tool_calls = c->calls + c->n_calls;
        for (size_t j = 0; j < json_array_size(tcs); j++)
            read_call(c, json_array_get(tcs, j), &c->calls[c->n_calls++]);
        out->n_tool_calls = json_array_size(tcs);
    }
    return 0;
}

static int load(conversation *c, const char *path)
{
    json_error_t je;
    c->root = json_load_file(path, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &je);
    if (!c->root) {
        fprintf(stderr, "%s:%d:%d: %s\n", path, je.line, je.column, je.text);
        return -1;
    }
    const json_t *msgs = json_object_get(c->root, "messages");
    const json_t *tools = json_object_get(c->root, "tools");
    size_t n_calls = 0;
    for (size_t i = 0; i < json_array_size(msgs); i++)
        n_calls += json_array_size(json_object_get(json_array_get(msgs, i), "tool_calls"));
    c->msgs = calloc(json_array_size(msgs) + 1, sizeof *c->msgs);
    c->calls = calloc(n_calls + 1, sizeof *c->calls);
    c->tools = calloc(json_array_size(tools) + 1, sizeof *c->tools);
    c->dumps = calloc(n_calls + json_array_size(tools) + 1, sizeof *c->dumps);
    if (!c->msgs || !c->calls || !c->tools || !c->dumps)
        return -1;
    for (size_t i = 0; i < json_array_size(tools); i++)
        c->tools[c->n_tools++].json = dump(c, json_array_get(tools, i));
    return read_messages(c, msgs);
}

static void release(conversation *c)
{
    for (size_t i = 0; i < c->n_dumps; i++)
        free(c->dumps[i]);
    free(c->dumps);
    free(c->msgs);
    free(c->calls);
    free(c->tools);
    json_decref(c->root);
}

int main(int argc, char **argv)
{
    tmpl_options o = {TMPL_QWEN3_INSTRUCT_2507, true, false};
    int argi = 1;
    if (argc == 4 && strcmp(argv[1], "--dialect") == 0) {
        o.dialect = strcmp(argv[2], "hybrid") == 0 ? TMPL_QWEN3_HYBRID : TMPL_QWEN3_INSTRUCT_2507;
        argi = 3;
    }
    if (argi != argc - 1) {
        fprintf(stderr, "usage: tool_template [--dialect instruct-2507|hybrid] FILE.json\n");
        return 2;
    }
    conversation c = {0};
    int status = 1;
    buf out;
    buf_init(&out, TOOL_TEMPLATE_PROMPT_MAX);
    if (load(&c, argv[argi]) == 0) {
        const json_t *agp = json_object_get(c.root, "add_generation_prompt");
        o.add_generation_prompt = agp ? json_is_true(agp) : true;
        o.disable_thinking = json_is_false(json_object_get(c.root, "enable_thinking"));
        loco_err err;
        if (tmpl_render_opts(&o, c.msgs, c.n_msgs, c.tools, c.n_tools, &out, &err) != LOCO_OK) {
            fprintf(stderr, "%s: %s\n", argv[argi], err.msg);
        } else {
            fwrite(out.data ? out.data : "", 1, out.len, stdout);
            status = 0;
        }
    }
    buf_release(&out);
    release(&c);
    return status;
}
