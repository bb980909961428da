/* template.c: the Qwen3 ChatML chat template (engine layer), mirroring the model's Jinja
 * template as @huggingface/jinja renders it, including its `tojson` filter byte for byte.
 * tests/engine/template.test.mjs compares the two on the conversations in tests/engine/. */
#include "base/common.h"

#include <jansson.h>
#include <math.h>

#include "engine/template.h"

#define TOOLS_HEAD                                                                                 \
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are "     \
    "provided with function signatures within <tools></tools> XML tags:\n<tools>"
#define TOOLS_TAIL                                                                                 \
    "\n</tools>\n\nFor each function call, return a json object with function name and "          \
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "                \
    "<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"

/* A borrowed byte range. */
typedef struct {
    const char *p;
    size_t n;
} span;

static span span_of(const char *s)
{
    span sp = {s ? s : "", s ? strlen(s) : 0};
    return sp;
}

/* ---------------------------------------------------------------- tojson */

/* Appends d as JavaScript's Number.prototype.toString writes it (ECMA-262 Number::toString):
 * the shortest digits that read back as d, plain notation for exponents in [-7, 21), else
 * d.ddde+N. -0 prints "0"; non-finite values print "null" as JSON.stringify does. */
static loco_status js_number(buf *out, double d)
{
    if (!isfinite(d))
        return buf_appends(out, "null");
    if (d == 0)
        return buf_appendc(out, '0');
    char tmp[40];
    double a = fabs(d);
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, a);
        if (strtod(tmp, NULL) == a)
            break;
    }
    char dig[24];
    int k = 0;
    const char *p = tmp;
    for (; *p && *p != 'e' && k < (int)sizeof dig; p++)
        if (*p != '.')
            dig[k++] = *p;
    long e10 = *p == 'e' ? strtol(p + 1, NULL, 10) : 0;
    while (k > 1 && dig[k - 1] == '0')
        k--;
    long n = e10 + 1; /* d = 0.dig * 10^n */
    loco_status rc = d < 0 ? buf_appendc(out, '-') : LOCO_OK;
    if (rc)
        return rc;
    if (k <= n && n <= 21) {
        rc = buf_append(out, dig, (size_t)k);
        for (long i = k; i < n && !rc; i++)
            rc = buf_appendc(out, '0');
    } else if (0 < n && n <= 21) {
        rc = buf_appendf(out, "%.*s.%.*s", (int)n, dig, (int)(k - n), dig + n);
    } else if (-6 < n && n <= 0) {
        rc = buf_appends(out, "0.");
        for (long i = 0; i < -n && !rc; i++)
            rc = buf_appendc(out, '0');
        if (!rc)
            rc = buf_append(out, dig, (size_t)k);
    } else if (k == 1) {
        rc = buf_appendf(out, "%ce%c%ld", dig[0], n - 1 >= 0 ? '+' : '-', labs(n - 1));
    } else {
        rc = buf_appendf(out, "%c.%.*se%c%ld", dig[0], k - 1, dig + 1, n - 1 >= 0 ? '+' : '-',
                         labs(n - 1));
    }
    return rc;
}

/* One object member, in the order JavaScript's Object.entries gives them. */
typedef struct {
    const char *key;
    size_t key_len;
    json_t *value;
    bool is_index;   /* a canonical array index: "0" or [1-9][0-9]*, at most 2^32 - 2 */
    uint32_t index;
    size_t position; /* insertion order */
} js_member;

static bool js_array_index(const char *k, size_t n, uint32_t *out_index)
{
    if (n == 0 || n > 10 || (n > 1 && k[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < '0' || k[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(k[i] - '0');
    }
    if (v > 4294967294u)
        return false;
    *out_index = (uint32_t)v;
    return true;
}

/* Array-index keys first, ascending; then the rest in insertion order. */
static int js_member_cmp(const void *a, const void *b)
{
    const js_member *x = a, *y = b;
    if (x->is_index != y->is_index)
        return x->is_index ? -1 : 1;
    if (x->is_index)
        return x->index < y->index ? -1 : x->index > y->index;
    return x->position < y->position ? -1 : x->position > y->position;
}

static loco_status js_value(buf *out, const json_t *v);

static loco_status js_object(buf *out, const json_t *obj)
{
    size_t n = json_object_size(obj);
    if (n == 0)
        return buf_appends(out, "{}");
    js_member *m = calloc(n, sizeof *m);
    if (!m)
        return LOCO_ERR_NOMEM;
    size_t i = 0;
    for (void *it = json_object_iter((json_t *)obj); it && i < n;
         it = json_object_iter_next((json_t *)obj, it), i++) {
        m[i].key = json_object_iter_key(it);
        m[i].key_len = json_object_iter_key_len(it);
        m[i].value = json_object_iter_value(it);
        m[i].position = i;
        m[i].is_index = js_array_index(m[i].key, m[i].key_len, &m[i].index);
    }
    qsort(m, i, sizeof *m, js_member_cmp);
    loco_status rc = buf_appendc(out, '{');
    for (size_t j = 0; j < i && !rc; j++) {
        if (j > 0)
            rc = buf_appends(out, ", ");
        if (!rc)
            rc = buf_append_json_str(out, m[j].key, m[j].key_len);
        if (!rc)
            rc = buf_appends(out, ": ");
        if (!rc)
            rc = js_value(out, m[j].value);
    }
    if (!rc)
        rc = buf_appendc(out, '}');
    free(m);
    return rc;
}

static loco_status js_array(buf *out, const json_t *arr)
{
    loco_status rc = buf_appendc(out, '[');
    for (size_t i = 0; i < json_array_size(arr) && !rc; i++) {
        if (i > 0)
            rc = buf_appends(out, ", ");
        if (!rc)
            rc = js_value(out, json_array_get(arr, i));
    }
    return rc ? rc : buf_appendc(out, ']');
}

/* Depth is bounded by jansson's parser (JSON_PARSER_MAX_DEPTH). */
static loco_status js_value(buf *out, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return js_object(out, v);
    case JSON_ARRAY:
        return js_array(out, v);
    case JSON_STRING:
        /* JSON.stringify escapes exactly what buf_append_json_str does: ", \ and C0 controls
         * (the five short forms, else \u00xx in lower case); DEL and non-ASCII are copied. */
        return buf_append_json_str(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return js_number(out, (double)json_integer_value(v));
    case JSON_REAL:
        return js_number(out, json_real_value(v));
    case JSON_TRUE:
        return buf_appends(out, "true");
    case JSON_FALSE:
        return buf_appends(out, "false");
    case JSON_NULL:
    default:
        return buf_appends(out, "null");
    }
}

loco_status tmpl_tojson(buf *out, const char *json, size_t len, loco_err *err)
{
    json_error_t je;
    /* Numbers are doubles, as JSON.parse makes them (big integers lose digits the same way). */
    json_t *v = json_loadb(json, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL,
                           &je);
    if (!v)
        return loco_err_set(err, LOCO_ERR_INVALID, "invalid JSON at line %d, column %d: %s",
                            je.line, je.column, je.text);
    loco_status rc = js_value(out, v);
    json_decref(v);
    if (rc)
        return loco_err_set(err, rc, "rendering JSON: %s", loco_status_str(rc));
    return LOCO_OK;
}

/* ---------------------------------------------------------------- spans */

static bool span_has_prefix(span s, const char *pre)
{
    size_t n = strlen(pre);
    return s.n >= n && memcmp(s.p, pre, n) == 0;
}

static bool span_has_suffix(span s, const char *suf)
{
    size_t n = strlen(suf);
    return s.n >= n && memcmp(s.p + s.n - n, suf, n) == 0;
}

/* Offset of the first (last == false) or last occurrence of needle in s, or -1. */
static ptrdiff_t span_find(span s, const char *needle, bool last)
{
    size_t n = strlen(needle);
    ptrdiff_t found = -1;
    for (size_t i = 0; i + n <= s.n; i++) {
        if (memcmp(s.p + i, needle, n) != 0)
            continue;
        found = (ptrdiff_t)i;
        if (!last)
            break;
    }
    return found;
}

static span span_lstrip_nl(span s)
{
    while (s.n > 0 && s.p[0] == '\n') {
        s.p++;
        s.n--;
    }
    return s;
}

static span span_rstrip_nl(span s)
{
    while (s.n > 0 && s.p[s.n - 1] == '\n')
        s.n--;
    return s;
}

/* ---------------------------------------------------------------- rendering */

/* Appends NULL-terminated string arguments. */
__attribute__((sentinel)) static loco_status put(buf *out, ...)
{
    va_list ap;
    va_start(ap, out);
    loco_status rc = LOCO_OK;
    for (const char *s = va_arg(ap, const char *); s && !rc; s = va_arg(ap, const char *))
        rc = buf_appends(out, s);
    va_end(ap);
    return rc;
}

static loco_status put_span(buf *out, span s)
{
    return buf_append(out, s.p, s.n);
}

static const char *content_of(const tmpl_message *m)
{
    return m->content ? m->content : "";
}

/* The system turn: the first message when it is a system message, and the tools section. */
static loco_status render_system(const tmpl_message *msgs, size_t n, const tmpl_tool *tools,
                                 size_t n_tools, buf *out, loco_err *err)
{
    bool first_system = n > 0 && msgs[0].role == TMPL_ROLE_SYSTEM;
    if (n_tools == 0) {
        if (!first_system)
            return LOCO_OK;
        return put(out, "<|im_start|>system\n", content_of(&msgs[0]), "<|im_end|>\n", NULL);
    }
    loco_status rc = buf_appends(out, "<|im_start|>system\n");
    if (!rc && first_system)
        rc = put(out, content_of(&msgs[0]), "\n\n", NULL);
    if (!rc)
        rc = buf_appends(out, TOOLS_HEAD);
    for (size_t i = 0; i < n_tools && !rc; i++) {
        rc = buf_appendc(out, '\n');
        if (rc)
            break;
        span j = span_of(tools[i].json ? tools[i].json : "null");
        rc = tmpl_tojson(out, j.p, j.n, err);
        if (rc)
            return loco_err_wrap(err, "tool %zu", i);
    }
    return rc ? rc : buf_appends(out, TOOLS_TAIL);
}

/* The hybrid template's last "query": the last user message that is not a bare
 * <tool_response>...</tool_response> block; n - 1 when there is none. */
static size_t last_query_index(const tmpl_message *msgs, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        span c = span_of(msgs[i].content);
        if (msgs[i].role != TMPL_ROLE_USER)
            continue;
        if (!(span_has_prefix(c, "<tool_response>") && span_has_suffix(c, "</tool_response>")))
            return i;
    }
    return n - 1;
}

static loco_status render_tool_calls(const tmpl_message *m, span content, buf *out,
                                     loco_err *err)
{
    loco_status rc = LOCO_OK;
    for (size_t j = 0; j < m->n_tool_calls && !rc; j++) {
        const tmpl_tool_call *tc = &m->tool_calls[j];
        if (j > 0 || content.n > 0)
            rc = buf_appendc(out, '\n');
        if (!rc)
            rc = put(out, "<tool_call>\n{\"name\": \"", tc->name ? tc->name : "",
                     "\", \"arguments\": ", NULL);
        if (rc)
            break;
        if (tc->arguments_raw && tc->arguments) {
            rc = buf_appends(out, tc->arguments);
        } else {
            span a = span_of(tc->arguments ? tc->arguments : "null");
            rc = tmpl_tojson(out, a.p, a.n, err);
            if (rc)
                return loco_err_wrap(err, "arguments of tool call %zu", j);
        }
        if (!rc)
            rc = buf_appends(out, "}\n</tool_call>");
    }
    return rc;
}

/* Splits "<think>r</think>c" the way the hybrid template does: content after the LAST
 * </think> (leading newlines dropped), reasoning before the FIRST </think> and after the last
 * <think> inside that, trimmed of newlines at its ends. */
static void split_think(span c, span *out_content, span *out_reasoning)
{
    ptrdiff_t last = span_find(c, "</think>", true);
    ptrdiff_t first = span_find(c, "</think>", false);
    span after = {c.p + last + 8, c.n - (size_t)last - 8};
    span before = span_rstrip_nl((span){c.p, (size_t)first});
    ptrdiff_t open = span_find(before, "<think>", true);
    if (open >= 0) {
        before.p += open + 7;
        before.n -= (size_t)open + 7;
    }
    *out_content = span_lstrip_nl(after);
    *out_reasoning = span_lstrip_nl(before);
}

static loco_status render_assistant(const tmpl_options *o, const tmpl_message *msgs, size_t n,
                                    size_t i, size_t last_query, buf *out, loco_err *err)
{
    const tmpl_message *m = &msgs[i];
    span content = span_of(m->content);
    span reasoning = {"", 0};
    bool think_block = false;
    if (o->dialect == TMPL_QWEN3_HYBRID) {
        if (m->reasoning_content)
            reasoning = span_of(m->reasoning_content);
        else if (span_find(content, "</think>", false) >= 0)
            split_think(content, &content, &reasoning);
        think_block = i > last_query && (i == n - 1 || reasoning.n > 0);
    }
    loco_status rc = buf_appends(out, "<|im_start|>assistant\n");
    if (!rc && think_block) {
        rc = buf_appends(out, "<think>\n");
        if (!rc)
            rc = put_span(out, span_lstrip_nl(span_rstrip_nl(reasoning)));
        if (!rc)
            rc = buf_appends(out, "\n</think>\n\n");
        if (!rc)
            rc = put_span(out, span_lstrip_nl(content));
    } else if (!rc) {
        rc = put_span(out, content);
    }
    if (!rc)
        rc = render_tool_calls(m, content, out, err);
    if (!rc)
        rc = buf_appends(out, "<|im_end|>\n");
    return rc;
}

static loco_status render_tool(const tmpl_message *msgs, size_t n, size_t i, buf *out)
{
    loco_status rc = LOCO_OK;
    if (i == 0 || msgs[i - 1].role != TMPL_ROLE_TOOL)
        rc = buf_appends(out, "<|im_start|>user");
    if (!rc)
        rc = put(out, "\n<tool_response>\n", content_of(&msgs[i]), "\n</tool_response>", NULL);
    if (!rc && (i == n - 1 || msgs[i + 1].role != TMPL_ROLE_TOOL))
        rc = buf_appends(out, "<|im_end|>\n");
    return rc;
}

static loco_status render_message(const tmpl_options *o, const tmpl_message *msgs, size_t n,
                                  size_t i, size_t last_query, buf *out, loco_err *err)
{
    const tmpl_message *m = &msgs[i];
    switch (m->role) {
    case TMPL_ROLE_SYSTEM:
        if (i == 0) /* already the system turn */
            return LOCO_OK;
        return put(out, "<|im_start|>system\n", content_of(m), "<|im_end|>\n", NULL);
    case TMPL_ROLE_USER:
        return put(out, "<|im_start|>user\n", content_of(m), "<|im_end|>\n", NULL);
    case TMPL_ROLE_ASSISTANT:
        return render_assistant(o, msgs, n, i, last_query, out, err);
    case TMPL_ROLE_TOOL:
        return render_tool(msgs, n, i, out);
    }
    return loco_err_set(err, LOCO_ERR_INVALID, "message %zu: unknown role %d", i, (int)m->role);
}

/* Turns a bare buf status (no message yet) into one that names the failure. */
static loco_status buf_failure(loco_status rc, const buf *out, loco_err *err)
{
    if (err && err->code == rc && err->msg[0])
        return rc;
    if (rc == LOCO_ERR_LIMIT)
        return loco_err_set(err, rc, "prompt exceeds its limit of %zu bytes", out->max);
    return loco_err_set(err, rc, "rendering the prompt: %s", loco_status_str(rc));
}

loco_status tmpl_render_opts(const tmpl_options *opts, const tmpl_message *msgs, size_t n,
                             const tmpl_tool *tools, size_t n_tools, buf *out, loco_err *err)
{
    loco_err_clear(err);
    if (n > 0 && !msgs)
        return loco_err_set(err, LOCO_ERR_INVALID, "messages missing");
    if (n_tools > 0 && !tools)
        return loco_err_set(err, LOCO_ERR_INVALID, "tools missing");
    loco_status rc = render_system(msgs, n, tools, n_tools, out, err);
    size_t last_query = n > 0 ? last_query_index(msgs, n) : 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (msgs[i].n_tool_calls > 0 && !msgs[i].tool_calls)
            return loco_err_set(err, LOCO_ERR_INVALID, "message %zu: tool calls missing", i);
        rc = render_message(opts, msgs, n, i, last_query, out, err);
    }
    if (!rc && opts->add_generation_prompt) {
        rc = buf_appends(out, "<|im_start|>assistant\n");
        if (!rc && opts->dialect == TMPL_QWEN3_HYBRID && opts->disable_thinking)
            rc = buf_appends(out, "<think>\n\n</think>\n\n");
    }
    return rc ? buf_failure(rc, out, err) : LOCO_OK;
}

loco_status tmpl_render(const tmpl_message *msgs, size_t n, const tmpl_tool *tools, size_t n_tools,
                        bool add_generation_prompt, buf *out, loco_err *err)
{
    tmpl_options o = {TMPL_QWEN3_INSTRUCT_2507, add_generation_prompt, false};
    return tmpl_render_opts(&o, msgs, n, tools, n_tools, out, err);
}

tmpl_dialect tmpl_detect_dialect(const char *text)
{
    if (text && strstr(text, "reasoning_content"))
        return TMPL_QWEN3_HYBRID;
    return TMPL_QWEN3_INSTRUCT_2507;
}
