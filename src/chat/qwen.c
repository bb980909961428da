/* qwen.c: the qwen-text codec: renders a neutral conversation as the <tool_call> /
 * <tool_response> text LocoOperator-4B was trained on, and parses its raw output back into
 * neutral events while it streams (JSON and Qwen3-Coder XML dialects, bounded repairs). */
#include "base/common.h"

#include <math.h>

#include "base/json.h"
#include "base/str.h"
#include "base/utf8.h"
#include "chat/qwen.h"

/* A rendered conversation is at most this big (requests are limited before this anyway). */
#define QWEN_RENDER_MAX ((size_t)1 << 30)
/* Default limit on one tool call body. */
#define QWEN_DEFAULT_MAX_CALL ((size_t)1 << 20)
/* Fed text is processed in slices this big, so held bytes stay bounded by the limits. */
#define QWEN_FEED_SLICE ((size_t)4096)
/* Trailing whitespace of a text run held back at most this long; past it, it is emitted. */
#define QWEN_MAX_HELD_WS ((size_t)65536)

#define TAG_CALL "<tool_call>"
#define TAG_CALL_END "</tool_call>"
#define TAG_FUNC "<function="
#define TAG_FUNC_END "</function>"
#define TAG_PARAM "<parameter="
#define TAG_PARAM_END "</parameter>"
#define TAG_THINK "<think>"
#define TAG_THINK_END "</think>"
#define TAG_LEN(t) (sizeof(t) - 1)

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool has_prefix(const char *s, size_t n, const char *pre)
{
    size_t m = strlen(pre);
    return n >= m && memcmp(s, pre, m) == 0;
}

static void trim(const char **s, size_t *n)
{
    while (*n && is_ws(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_ws((*s)[*n - 1]))
        (*n)--;
}

/* ---- Python-style JSON serialisation ---- */

/* Appends d the way Python's repr(float) writes it: shortest round-trip digits, fixed
 * notation with ".0" for exponents in [-4, 16), else "1.5e-05" / "1e+16". */
static loco_status dump_float(buf *b, double d)
{
    if (!isfinite(d))
        return buf_appends(b, d != d ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
    char tmp[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    const char *p = tmp;
    bool neg = *p == '-';
    if (neg)
        p++;
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e' && nd < sizeof(digits) - 1; p++) {
        if (*p != '.')
            digits[nd++] = *p;
    }
    long x = strtol(*p == 'e' ? p + 1 : "0", NULL, 10);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    loco_status rc = neg ? buf_appendc(b, '-') : LOCO_OK;
    if (!rc && (x < -4 || x >= 16)) {
        rc = buf_appendc(b, digits[0]);
        if (!rc && nd > 1)
            rc = buf_appendf(b, ".%s", digits + 1);
        if (!rc)
            rc = buf_appendf(b, "e%c%02ld", x < 0 ? '-' : '+', x < 0 ? -x : x);
    } else if (!rc && x >= 0) {
        size_t ip = (size_t)x + 1;
        for (size_t i = 0; i < ip && !rc; i++)
            rc = buf_appendc(b, i < nd ? digits[i] : '0');
        if (!rc)
            rc = buf_appendf(b, ".%s", nd > ip ? digits + ip : "0");
    } else if (!rc) {
        rc = buf_appends(b, "0.");
        for (long i = 0; i < -x - 1 && !rc; i++)
            rc = buf_appendc(b, '0');
        if (!rc)
            rc = buf_appends(b, digits);
    }
    return rc;
}

static loco_status dump_value(buf *b, json_t *v, bool spaced);

static loco_status dump_object(buf *b, json_t *v, bool spaced)
{
    loco_status rc = buf_appendc(b, '{');
    bool first = true;
    for (void *it = json_object_iter(v); it && !rc; it = json_object_iter_next(v, it)) {
        if (!first)
            rc = buf_appends(b, spaced ? ", " : ",");
        first = false;
        if (!rc)
            rc = buf_append_json_str(b, json_object_iter_key(it), json_object_iter_key_len(it));
        if (!rc)
            rc = buf_appends(b, spaced ? ": " : ":");
        if (!rc)
            rc = dump_value(b, json_object_iter_value(it), spaced);
    }
    return rc ? rc : buf_appendc(b, '}');
}

static loco_status dump_array(buf *b, json_t *v, bool spaced)
{
    loco_status rc = buf_appendc(b, '[');
    for (size_t i = 0; i < json_array_size(v) && !rc; i++) {
        if (i)
            rc = buf_appends(b, spaced ? ", " : ",");
        if (!rc)
            rc = dump_value(b, json_array_get(v, i), spaced);
    }
    return rc ? rc : buf_appendc(b, ']');
}

/* Serialises v: spaced is Python json.dumps(ensure_ascii=False); otherwise compact. Depth
 * is bounded by json_parse's nesting limit. */
static loco_status dump_value(buf *b, json_t *v, bool spaced)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return dump_object(b, v, spaced);
    case JSON_ARRAY: return dump_array(b, v, spaced);
    case JSON_STRING: return buf_append_json_str(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: return buf_appendf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL: return dump_float(b, json_real_value(v));
    case JSON_TRUE: return buf_appends(b, "true");
    case JSON_FALSE: return buf_appends(b, "false");
    case JSON_NULL: return buf_appends(b, "null");
    }
    return LOCO_ERR_INVALID;
}

/* ---- rendering ---- */

loco_status chat_qwen_append_tool_call(buf *out, const char *name, const char *args_json)
{
    json_t *args = NULL;
    if (args_json && *args_json) {
        args = json_parse(args_json, strlen(args_json), NULL);
        if (!args)
            return LOCO_ERR_INVALID;
    } else {
        args = json_object();
        if (!args)
            return LOCO_ERR_NOMEM;
    }
    size_t mark = out->len;
    loco_status rc = buf_appends(out, TAG_CALL "\n{\"name\": ");
    if (!rc)
        rc = buf_append_json_str(out, name ? name : "", name ? strlen(name) : 0);
    if (!rc)
        rc = buf_appends(out, ", \"arguments\": ");
    if (!rc)
        rc = dump_value(out, args, true);
    if (!rc)
        rc = buf_appends(out, "}\n" TAG_CALL_END);
    json_decref(args);
    if (rc && out->data) {
        out->len = mark;
        out->data[mark] = '\0';
    }
    return rc;
}

static loco_status append_sep(buf *out, bool *first)
{
    if (*first) {
        *first = false;
        return LOCO_OK;
    }
    return buf_appendc(out, '\n');
}

/* Appends one block's rendering (nothing for THINKING and empty TEXT). */
static loco_status render_block(buf *out, const chat_block *b, bool *first)
{
    const char *text = b->text ? b->text : "";
    loco_status rc = LOCO_OK;
    switch (b->type) {
    case CHAT_BLOCK_THINKING:
        return LOCO_OK;
    case CHAT_BLOCK_TEXT:
        if (!*text)
            return LOCO_OK;
        rc = append_sep(out, first);
        return rc ? rc : buf_appends(out, text);
    case CHAT_BLOCK_TOOL_RESULT:
        rc = append_sep(out, first);
        if (!rc)
            rc = buf_appendf(out, "<tool_response>\n%s%s\n</tool_response>",
                             b->is_error ? "Error: " : "", text);
        return rc;
    case CHAT_BLOCK_TOOL_CALL:
        rc = append_sep(out, first);
        return rc ? rc : chat_qwen_append_tool_call(out, b->name, b->args_json);
    case CHAT_BLOCK_IMAGE:
        rc = append_sep(out, first);
        return rc ? rc : buf_appends(out, "[image omitted]");
    case CHAT_BLOCK_DOCUMENT:
        rc = append_sep(out, first);
        return rc ? rc : buf_appends(out, "[document omitted]");
    }
    return LOCO_OK;
}

#define SYSTEM_REMINDER "<system-reminder>"

/* Renders one message's text into out (empty when nothing is left). */
static loco_status render_message(const chat_message *m, buf *out, loco_err *err, size_t idx)
{
    bool first = true;
    for (size_t j = 0; j < m->n_blocks; j++) {
        loco_status rc = render_block(out, &m->blocks[j], &first);
        if (rc == LOCO_ERR_INVALID)
            return loco_err_set(err, rc, "message %zu: tool call '%s' has arguments that are not JSON",
                                idx, m->blocks[j].name ? m->blocks[j].name : "");
        if (rc)
            return loco_err_set(err, rc, "message %zu: cannot render: %s", idx, loco_status_str(rc));
    }
    if (m->role != CHAT_ROLE_SYSTEM || !out->len || str_starts_with(buf_str(out), SYSTEM_REMINDER))
        return LOCO_OK;
    buf w;
    buf_init(&w, QWEN_RENDER_MAX);
    loco_status rc = buf_appendf(&w, SYSTEM_REMINDER "\n%s\n</system-reminder>", buf_str(out));
    if (!rc) {
        buf_reset(out);
        rc = buf_append(out, w.data, w.len);
    }
    buf_release(&w);
    return rc ? loco_err_set(err, rc, "message %zu: cannot render: %s", idx, loco_status_str(rc))
              : LOCO_OK;
}

static loco_status flush_turn(chat_request *r, chat_role role, const buf *text, loco_err *err)
{
    chat_message *m = chat_request_add_message(r, role);
    chat_block *b = m ? chat_message_add_block(r, m, CHAT_BLOCK_TEXT) : NULL;
    if (b)
        b->text = chat_strndup(r, buf_str(text), text->len);
    if (!b || !b->text)
        return loco_err_set(err, LOCO_ERR_NOMEM, "rendering for the local model: out of memory");
    return LOCO_OK;
}

static loco_status copy_params(chat_request *r, const chat_request *req, const char *system)
{
    r->model = chat_strdup(r, req->model);
    r->system = chat_strdup(r, system);
    r->max_tokens = req->max_tokens;
    r->has_temperature = req->has_temperature;
    r->temperature = req->temperature;
    r->has_top_p = req->has_top_p;
    r->top_p = req->top_p;
    r->top_k = req->top_k;
    r->stream = req->stream;
    r->parallel_tool_calls = req->parallel_tool_calls;
    if ((req->model && !r->model) || (system && !r->system))
        return LOCO_ERR_NOMEM;
    if (!req->n_stop)
        return LOCO_OK;
    r->stop = arena_alloc(&r->mem, req->n_stop * sizeof(char *));
    if (!r->stop)
        return LOCO_ERR_NOMEM;
    for (size_t i = 0; i < req->n_stop; i++) {
        r->stop[i] = chat_strdup(r, req->stop[i]);
        if (!r->stop[i])
            return LOCO_ERR_NOMEM;
    }
    r->n_stop = req->n_stop;
    return LOCO_OK;
}

/* ---- the parts the model sees ---- */

static loco_status parts_push(chat_qwen_parts *p, size_t *cap, const chat_qwen_part *part)
{
    if (p->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        chat_qwen_part *g = realloc(p->parts, nc * sizeof(*g));
        if (!g)
            return LOCO_ERR_NOMEM;
        p->parts = g;
        *cap = nc;
    }
    p->parts[p->n++] = *part;
    return LOCO_OK;
}

static loco_status parts_own(chat_qwen_parts *p, char *s)
{
    char **g = s ? realloc(p->owned, (p->n_owned + 1) * sizeof(char *)) : NULL;
    if (!g) {
        free(s);
        return LOCO_ERR_NOMEM;
    }
    p->owned = g;
    p->owned[p->n_owned++] = s;
    return LOCO_OK;
}

void chat_qwen_parts_release(chat_qwen_parts *p)
{
    for (size_t i = 0; i < p->n_owned; i++)
        free(p->owned[i]);
    free(p->owned);
    free(p->parts);
    memset(p, 0, sizeof(*p));
}

loco_status chat_qwen_parts_build(const chat_request *req, chat_qwen_parts *out, loco_err *err)
{
    memset(out, 0, sizeof(*out));
    size_t cap = 0;
    loco_status rc = LOCO_OK;
    buf note;
    buf_init(&note, QWEN_RENDER_MAX);
    for (size_t i = 0; !rc && i < req->n_msgs; i++) {
        const chat_message *m = &req->msgs[i];
        chat_qwen_part part;
        memset(&part, 0, sizeof(part));
        part.msg = i;
        if (m->role == CHAT_ROLE_SYSTEM) {
            /* a note inside the conversation: one user part, all of it as text */
            buf_reset(&note);
            rc = render_message(m, &note, err, i);
            if (rc || !note.len)
                continue;
            char *t = strndup(buf_str(&note), note.len);
            rc = parts_own(out, t);
            part.kind = CHAT_QWEN_TEXT;
            part.text = t;
            if (!rc)
                rc = parts_push(out, &cap, &part);
            continue;
        }
        part.assistant = m->role == CHAT_ROLE_ASSISTANT;
        for (size_t j = 0; !rc && j < m->n_blocks; j++) {
            const chat_block *b = &m->blocks[j];
            const char *text = b->text ? b->text : "";
            switch (b->type) {
            case CHAT_BLOCK_THINKING:
                continue;
            case CHAT_BLOCK_TEXT:
                if (!*text)
                    continue;
                part.kind = CHAT_QWEN_TEXT;
                part.text = text;
                break;
            case CHAT_BLOCK_IMAGE:
            case CHAT_BLOCK_DOCUMENT:
                part.kind = CHAT_QWEN_TEXT;
                part.text = b->type == CHAT_BLOCK_IMAGE ? "[image omitted]" : "[document omitted]";
                break;
            case CHAT_BLOCK_TOOL_CALL:
                part.kind = CHAT_QWEN_CALL;
                part.name = b->name ? b->name : "";
                part.args_json = b->args_json;
                break;
            case CHAT_BLOCK_TOOL_RESULT:
                part.kind = CHAT_QWEN_RESULT;
                part.text = text;
                part.is_error = b->is_error;
                break;
            }
            chat_qwen_part p2 = part;
            if (p2.kind == CHAT_QWEN_RESULT)
                p2.assistant = false;
            rc = parts_push(out, &cap, &p2);
        }
    }
    buf_release(&note);
    if (rc == LOCO_ERR_NOMEM)
        loco_err_set(err, rc, "rendering for the local model: out of memory");
    if (rc)
        chat_qwen_parts_release(out);
    return rc;
}

/* Appends the text of one part as the model was trained to see it. */
static loco_status render_part(buf *out, const chat_qwen_part *p, loco_err *err)
{
    loco_status rc;
    switch (p->kind) {
    case CHAT_QWEN_TEXT:
        return buf_appends(out, p->text);
    case CHAT_QWEN_RESULT:
        return buf_appendf(out, "<tool_response>\n%s%s\n</tool_response>",
                           p->is_error ? "Error: " : "", p->text);
    case CHAT_QWEN_CALL:
        rc = chat_qwen_append_tool_call(out, p->name, p->args_json);
        if (rc == LOCO_ERR_INVALID)
            return loco_err_set(err, rc, "message %zu: tool call '%s' has arguments that are not JSON",
                                p->msg, p->name);
        return rc;
    }
    return LOCO_OK;
}

loco_status chat_qwen_render(const chat_request *req, const char *system_prompt,
                             chat_request **out_req, loco_err *err)
{
    *out_req = NULL;
    chat_request *r = chat_request_new();
    if (!r)
        return loco_err_set(err, LOCO_ERR_NOMEM, "rendering for the local model: out of memory");
    loco_status rc = copy_params(r, req, system_prompt ? system_prompt : req->system);
    if (rc)
        loco_err_set(err, rc, "rendering for the local model: out of memory");
    chat_qwen_parts parts;
    memset(&parts, 0, sizeof(parts));
    if (!rc)
        rc = chat_qwen_parts_build(req, &parts, err);
    buf turn;
    buf_init(&turn, QWEN_RENDER_MAX);
    /* consecutive parts of one side make one message, joined with "\n" */
    for (size_t i = 0; !rc && i < parts.n; i++) {
        const chat_qwen_part *p = &parts.parts[i];
        if (i && p->assistant == parts.parts[i - 1].assistant)
            rc = buf_appendc(&turn, '\n');
        if (!rc)
            rc = render_part(&turn, p, err);
        bool last = i + 1 == parts.n || parts.parts[i + 1].assistant != p->assistant;
        if (!rc && last) {
            rc = flush_turn(r, p->assistant ? CHAT_ROLE_ASSISTANT : CHAT_ROLE_USER, &turn, err);
            buf_reset(&turn);
        }
        if (rc == LOCO_ERR_LIMIT || rc == LOCO_ERR_NOMEM)
            loco_err_set(err, rc, "message %zu: cannot render: %s", p->msg, loco_status_str(rc));
    }
    buf_release(&turn);
    chat_qwen_parts_release(&parts);
    if (rc) {
        chat_request_free(r);
        return rc;
    }
    *out_req = r;
    return LOCO_OK;
}

/* ---- JSON repair ---- */

/* Drops the last ',' of out when only whitespace follows it (a trailing comma). */
static bool drop_trailing_comma(buf *out)
{
    size_t i = out->len;
    while (i && is_ws(out->data[i - 1]))
        i--;
    if (!i || out->data[i - 1] != ',')
        return false;
    memmove(out->data + i - 1, out->data + i, out->len - i);
    out->len--;
    out->data[out->len] = '\0';
    return true;
}

static bool only_closers_left(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_ws(s[i]) && s[i] != '}' && s[i] != ']')
            return false;
    }
    return true;
}

static loco_status repair_string_byte(buf *out, char c, bool *in_str, bool *esc)
{
    if (*esc) {
        *esc = false;
        return buf_appendc(out, c);
    }
    switch (c) {
    case '\\': *esc = true; return buf_appendc(out, c);
    case '"': *in_str = false; return buf_appendc(out, c);
    case '\n': return buf_appends(out, "\\n");
    case '\r': return buf_appends(out, "\\r");
    case '\t': return buf_appends(out, "\\t");
    default:
        if ((unsigned char)c < 0x20)
            return buf_appendf(out, "\\u%04x", (unsigned)(unsigned char)c);
        return buf_appendc(out, c);
    }
}

/* Appends the bare word at s[0..) (letters, digits, '_') to out, Python literals mapped to
 * JSON ones; returns its length in *used. */
static loco_status repair_word(buf *out, const char *s, size_t n, size_t *used)
{
    size_t k = 0;
    while (k < n && (s[k] == '_' || (s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') ||
                     (s[k] >= '0' && s[k] <= '9')))
        k++;
    *used = k;
    if (k == 4 && !memcmp(s, "True", 4))
        return buf_appends(out, "true");
    if (k == 5 && !memcmp(s, "False", 5))
        return buf_appends(out, "false");
    if (k == 4 && !memcmp(s, "None", 4))
        return buf_appends(out, "null");
    return buf_append(out, s, k);
}

/* One pass of the unambiguous repairs (docs/internals/qwen.md): control characters inside
 * strings escaped, True/False/None outside strings, trailing commas, extra closers at the
 * end, missing closers at the end. LOCO_ERR_INVALID when it cannot help (an unterminated
 * string, nesting too deep). */
static loco_status repair_pass(const char *s, size_t n, buf *out)
{
    char stack[LOCO_JSON_MAX_DEPTH];
    size_t depth = 0;
    bool in_str = false, esc = false;
    loco_status rc = LOCO_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        char c = s[i];
        if (in_str) {
            rc = repair_string_byte(out, c, &in_str, &esc);
        } else if (c == '"') {
            in_str = true;
            rc = buf_appendc(out, c);
        } else if (c == '{' || c == '[') {
            if (depth == sizeof(stack))
                return LOCO_ERR_INVALID;
            stack[depth++] = c;
            rc = buf_appendc(out, c);
        } else if (c == '}' || c == ']') {
            drop_trailing_comma(out);
            if (!depth && only_closers_left(s + i, n - i))
                continue; /* an extra closer at the end: "}}" for "}" */
            if (depth && c == (stack[depth - 1] == '{' ? '}' : ']'))
                depth--;
            rc = buf_appendc(out, c);
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
            size_t used = 0;
            rc = repair_word(out, s + i, n - i, &used);
            i += used - 1;
        } else {
            rc = buf_appendc(out, c);
        }
    }
    if (rc)
        return rc;
    if (in_str)
        return LOCO_ERR_INVALID;
    drop_trailing_comma(out);
    while (depth && !rc)
        rc = buf_appendc(out, stack[--depth] == '{' ? '}' : ']');
    return rc;
}

/* Rewrites 'single-quoted' strings outside double-quoted ones as JSON strings. */
static loco_status squote_pass(const char *s, size_t n, buf *out, bool *changed)
{
    bool in_dq = false, esc = false;
    loco_status rc = LOCO_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        char c = s[i];
        if (in_dq) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_dq = false;
            rc = buf_appendc(out, c);
            continue;
        }
        if (c != '\'') {
            in_dq = c == '"';
            rc = buf_appendc(out, c);
            continue;
        }
        size_t j = i + 1;
        rc = buf_appendc(out, '"');
        for (; j < n && s[j] != '\'' && !rc; j++) {
            if (s[j] == '\\' && j + 1 < n) {
                j++;
                rc = s[j] == '\'' ? buf_appendc(out, '\'') : buf_appendf(out, "\\%c", s[j]);
            } else {
                rc = s[j] == '"' ? buf_appends(out, "\\\"") : buf_appendc(out, s[j]);
            }
        }
        if (j >= n)
            return LOCO_ERR_INVALID;
        if (!rc)
            rc = buf_appendc(out, '"');
        *changed = true;
        i = j;
    }
    return rc;
}

/* Parses s[0..n) as JSON, repairing when needed (sets *repaired). NULL when it still fails;
 * err then holds the parse error of the text as given. */
static json_t *parse_lenient(const char *s, size_t n, bool *repaired, loco_err *err)
{
    json_t *v = json_parse(s, n, err);
    if (v)
        return v;
    size_t lim = n * 6 + 64; /* every byte escaped at most as \u00XX, plus closers */
    buf a, q, b;
    buf_init(&a, lim);
    buf_init(&q, lim);
    buf_init(&b, lim);
    if (repair_pass(s, n, &a) == LOCO_OK)
        v = json_parse(buf_str(&a), a.len, NULL);
    bool changed = false;
    if (!v && squote_pass(s, n, &q, &changed) == LOCO_OK && changed &&
        repair_pass(q.data, q.len, &b) == LOCO_OK)
        v = json_parse(buf_str(&b), b.len, NULL);
    buf_release(&a);
    buf_release(&q);
    buf_release(&b);
    if (v)
        *repaired = true;
    return v;
}

/* ---- the parser ---- */

enum { ST_TEXT, ST_THINK, ST_CALL, ST_FUNC, ST_SKIP };

struct chat_qwen_parser {
    chat_qwen_parser_opts o;
    int state;
    buf pend;             /* received bytes not decided yet */
    size_t scan_from;     /* ST_CALL / ST_FUNC: where the search for the closing tag resumes */
    const char *skip_tag; /* ST_SKIP: the closing tag that ends the skipped oversize call */
    bool run_started;     /* the current text/thinking run has shown a non-space byte */
    bool ws_spill;        /* its held whitespace overflowed and is being emitted as it comes */
    buf ws;               /* trailing whitespace of the run, held until text follows */
    size_t calls, repaired, bad;
    loco_status failed;
    bool finished;
};

/* A parsed call: name (malloc'd) and arguments object. */
typedef struct {
    char *name;
    json_t *args;
    bool repaired;
} qcall;

static void qcall_release(qcall *c)
{
    free(c->name);
    json_decref(c->args);
    memset(c, 0, sizeof(*c));
}

static loco_status emit_delta(chat_qwen_parser *p, chat_event_type t, const char *s, size_t n)
{
    if (!n)
        return LOCO_OK;
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    chat_usage_init(&ev.usage);
    ev.type = t;
    ev.text = s;
    ev.len = n;
    return p->o.on_event(p->o.ctx, &ev);
}

static loco_status hold_ws(chat_qwen_parser *p, chat_event_type t, const char *s, size_t n)
{
    if (!p->ws_spill && p->ws.len + n <= QWEN_MAX_HELD_WS)
        return buf_append(&p->ws, s, n);
    loco_status rc = emit_delta(p, t, p->ws.data, p->ws.len);
    buf_reset(&p->ws);
    p->ws_spill = true;
    return rc ? rc : emit_delta(p, t, s, n);
}

/* Feeds s[0..n) of the current text or thinking run: leading whitespace of the run is
 * dropped, trailing whitespace held until more text follows (run_end drops it). */
static loco_status run_feed(chat_qwen_parser *p, chat_event_type t, const char *s, size_t n)
{
    size_t i = 0;
    if (!p->run_started) {
        while (i < n && is_ws(s[i]))
            i++;
        if (i == n)
            return LOCO_OK;
        p->run_started = true;
    }
    size_t last = n;
    while (last > i && is_ws(s[last - 1]))
        last--;
    loco_status rc = LOCO_OK;
    if (last > i) {
        rc = emit_delta(p, t, p->ws.data, p->ws.len);
        buf_reset(&p->ws);
        p->ws_spill = false;
        if (!rc)
            rc = emit_delta(p, t, s + i, last - i);
    }
    if (!rc && last < n)
        rc = hold_ws(p, t, s + last, n - last);
    return rc;
}

static void run_end(chat_qwen_parser *p)
{
    buf_reset(&p->ws);
    p->run_started = false;
    p->ws_spill = false;
}

static loco_status bad_call(chat_qwen_parser *p, const char *raw, size_t n, const char *reason)
{
    p->bad++;
    if (!p->o.on_bad_call)
        return LOCO_OK;
    return p->o.on_bad_call(p->o.ctx, raw, n, reason);
}

static loco_status emit_call(chat_qwen_parser *p, qcall *c)
{
    buf js;
    buf_init(&js, BUF_UNLIMITED); /* bounded: at most 6 bytes per byte of a limited body */
    loco_status rc = dump_value(&js, c->args, false);
    char id[32];
    str_random_id("toolu_", id, sizeof(id));
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    chat_usage_init(&ev.usage);
    ev.index = (int)p->calls;
    ev.type = CHAT_EV_TOOL_CALL_START;
    ev.id = id;
    ev.name = c->name;
    if (!rc)
        rc = p->o.on_event(p->o.ctx, &ev);
    ev.id = NULL;
    ev.name = NULL;
    ev.type = CHAT_EV_TOOL_ARGS_DELTA;
    ev.text = buf_str(&js);
    ev.len = js.len;
    if (!rc)
        rc = p->o.on_event(p->o.ctx, &ev);
    ev.type = CHAT_EV_TOOL_CALL_END;
    ev.text = NULL;
    ev.len = 0;
    if (!rc)
        rc = p->o.on_event(p->o.ctx, &ev);
    buf_release(&js);
    p->calls++;
    p->repaired += c->repaired;
    return rc;
}

/* The reason a call parser gives when an allocation failed: the caller turns it into
 * LOCO_ERR_NOMEM instead of blaming the model's text (a bad call). */
static const char qwen_oom[] = "out of memory";

/* JSON dialect: {"name": ..., "arguments"|"parameters"|"input": {...} or "{...}"}. */
static const char *parse_json_call(const char *s, size_t n, qcall *c, loco_err *err)
{
    json_t *v = parse_lenient(s, n, &c->repaired, err);
    if (!v)
        return err->msg;
    const char *reason = NULL;
    const char *name = json_get_str(v, "name");
    json_t *args = NULL;
    static const char *keys[] = {"arguments", "parameters", "input"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(keys) && json_is_object(v) && !args; i++) {
        args = json_object_get(v, keys[i]);
        if (json_is_null(args))
            args = NULL;
    }
    if (!json_is_object(v)) {
        reason = "tool call is not a JSON object";
    } else if (!name || !*name) {
        reason = "tool call has no \"name\" string";
    } else if (!args) {
        c->args = json_object();
    } else if (json_is_string(args)) {
        c->args = parse_lenient(json_string_value(args), json_string_length(args), &c->repaired, err);
    } else {
        c->args = json_incref(args);
    }
    if (!reason && !json_is_object(c->args))
        reason = "tool call arguments are not a JSON object";
    if (!reason)
        c->name = strdup(name);
    if (!reason && !c->name)
        reason = qwen_oom;
    json_decref(v);
    return reason;
}

/* The schema type of parameter key of tool name ("integer", ...), malloc'd; NULL if unknown. */
static char *schema_type(const chat_qwen_parser *p, const char *name, const char *key)
{
    const chat_tool *t = NULL;
    for (size_t i = 0; i < p->o.n_tools && !t; i++) {
        if (p->o.tools[i].name && !strcmp(p->o.tools[i].name, name))
            t = &p->o.tools[i];
    }
    if (!t || !t->schema_json)
        return NULL;
    json_t *schema = json_parse(t->schema_json, strlen(t->schema_json), NULL);
    json_t *props = json_object_get(schema, "properties");
    json_t *type = json_object_get(json_object_get(props, key), "type");
    const char *ts = json_string_value(type);
    for (size_t i = 0; !ts && i < json_array_size(type); i++) {
        const char *e = json_string_value(json_array_get(type, i));
        if (e && strcmp(e, "null"))
            ts = e;
    }
    char *r = ts ? strdup(ts) : NULL;
    json_decref(schema);
    return r;
}

/* An XML-dialect parameter value as JSON (docs/internals/qwen.md); NULL when it is not
 * valid UTF-8. */
static json_t *xml_value(const chat_qwen_parser *p, const char *tool, const char *key,
                         const char *v, size_t n)
{
    if (n && v[0] == '\n') {
        v++;
        n--;
    }
    if (n && v[n - 1] == '\n')
        n--;
    char *type = schema_type(p, tool, key);
    json_t *j = NULL;
    bool typed = type && (!strcmp(type, "integer") || !strcmp(type, "number") ||
                          !strcmp(type, "boolean") || !strcmp(type, "object") ||
                          !strcmp(type, "array"));
    if (typed && !strcmp(type, "boolean") && (n == 4 || n == 5) &&
        (!strncasecmp(v, "true", n) || !strncasecmp(v, "false", n)))
        j = json_boolean(n == 4);
    else if (typed || !type)
        j = json_parse(v, n, NULL);
    if (j && !typed && json_is_string(j)) {
        json_decref(j);
        j = NULL;
    }
    free(type);
    return j ? j : json_stringn(v, n);
}

static bool dup_trimmed_ok(const char *s, size_t n)
{
    trim(&s, &n);
    return n && utf8_valid(s, n) && !memchr(s, '\0', n);
}

/* A copy of s[0..n) without surrounding blanks; NULL when that is empty, not UTF-8 or holds
 * a NUL (or allocation failed: dup_trimmed_ok tells which). */
static char *dup_trimmed(const char *s, size_t n)
{
    if (!dup_trimmed_ok(s, n))
        return NULL;
    trim(&s, &n);
    return str_ndup(s, n);
}

/* Position of the first of the tags in s[0..n), n when none. */
static size_t first_of(const char *s, size_t n, const char *a, const char *b)
{
    const char *x = str_memmem(s, n, a);
    const char *y = b ? str_memmem(s, n, b) : NULL;
    if (x && (!y || x < y))
        return (size_t)(x - s);
    return y ? (size_t)(y - s) : n;
}

/* One <parameter=KEY>VALUE</parameter> at s[0..n) (after the tag name); sets *used. */
static const char *parse_xml_param(const chat_qwen_parser *p, const char *s, size_t n, qcall *c,
                                   size_t *used)
{
    const char *gt = memchr(s, '>', n);
    if (!gt)
        return "<parameter= without '>'";
    char *key = dup_trimmed(s, (size_t)(gt - s));
    if (!key)
        return dup_trimmed_ok(s, (size_t)(gt - s)) ? qwen_oom : "<parameter=> without a name";
    size_t pos = (size_t)(gt - s) + 1;
    size_t end = first_of(s + pos, n - pos, TAG_PARAM_END, NULL);
    size_t next = pos + end + TAG_LEN(TAG_PARAM_END);
    if (end == n - pos) { /* no </parameter>: the value runs to the next tag */
        end = first_of(s + pos, n - pos, TAG_PARAM, TAG_FUNC_END);
        next = pos + end;
        c->repaired = true;
    }
    json_t *v = xml_value(p, c->name, key, s + pos, end);
    int bad = !v || json_object_set_new(c->args, key, v);
    free(key);
    *used = next;
    return bad ? "parameter value is not valid UTF-8" : NULL;
}

/* Qwen3-Coder dialect: <function=NAME><parameter=K>V</parameter>...</function>. */
static const char *parse_xml_call(const chat_qwen_parser *p, const char *s, size_t n, qcall *c)
{
    trim(&s, &n);
    size_t pos = TAG_LEN(TAG_FUNC);
    const char *gt = memchr(s + pos, '>', n - pos);
    if (!gt)
        return "<function= without '>'";
    size_t name_len = (size_t)(gt - s) - pos;
    c->name = dup_trimmed(s + pos, name_len);
    if (!c->name)
        return dup_trimmed_ok(s + pos, name_len) ? qwen_oom : "<function=> without a name";
    c->args = json_object();
    if (!c->args)
        return qwen_oom;
    pos = (size_t)(gt - s) + 1;
    for (;;) {
        while (pos < n && is_ws(s[pos]))
            pos++;
        if (pos == n) { /* no </function> */
            c->repaired = true;
            return NULL;
        }
        if (has_prefix(s + pos, n - pos, TAG_FUNC_END)) {
            pos += TAG_LEN(TAG_FUNC_END);
            while (pos < n && is_ws(s[pos]))
                pos++;
            return pos == n ? NULL : "text after </function>";
        }
        if (!has_prefix(s + pos, n - pos, TAG_PARAM))
            return "unexpected text in a <function=...> block";
        pos += TAG_LEN(TAG_PARAM);
        size_t used = 0;
        const char *reason = parse_xml_param(p, s + pos, n - pos, c, &used);
        if (reason)
            return reason;
        pos += used;
    }
}

/* Strips a Markdown code fence around a call body ("```json\n...\n```"), a repair. */
static bool strip_fence(const char **s, size_t *n)
{
    if (!has_prefix(*s, *n, "```"))
        return false;
    const char *nl = memchr(*s, '\n', *n);
    if (!nl)
        return false;
    size_t rest = *n - (size_t)(nl + 1 - *s);
    *s = nl + 1;
    *n = rest;
    if (*n >= 3 && !memcmp(*s + *n - 3, "```", 3))
        *n -= 3;
    trim(s, n);
    return true;
}

/* Parses one call body s[0..n) and emits it, or reports it bad. */
static loco_status handle_body(chat_qwen_parser *p, const char *s, size_t n)
{
    const char *t = s;
    size_t tn = n;
    trim(&t, &tn);
    qcall c;
    memset(&c, 0, sizeof(c));
    loco_err err;
    loco_err_clear(&err);
    bool fenced = strip_fence(&t, &tn);
    const char *reason;
    if (!tn)
        reason = "empty tool call";
    else if (has_prefix(t, tn, TAG_FUNC))
        reason = parse_xml_call(p, t, tn, &c);
    else
        reason = parse_json_call(t, tn, &c, &err);
    c.repaired |= fenced;
    loco_status rc = reason == qwen_oom ? LOCO_ERR_NOMEM
                     : reason           ? bad_call(p, s, n, reason)
                                        : emit_call(p, &c);
    qcall_release(&c);
    return rc;
}

static void consume(chat_qwen_parser *p, size_t n)
{
    buf_consume(&p->pend, n);
}

static size_t max_partial(const char *d, size_t n)
{
    size_t a = str_partial_suffix(d, n, TAG_CALL);
    size_t b = str_partial_suffix(d, n, TAG_FUNC);
    size_t c = str_partial_suffix(d, n, TAG_THINK);
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

static loco_status step_text(chat_qwen_parser *p, bool final, bool *more)
{
    const char *d = p->pend.data;
    size_t n = p->pend.len;
    if (!n) {
        if (final)
            run_end(p);
        return LOCO_OK;
    }
    size_t kc = first_of(d, n, TAG_CALL, NULL);
    size_t kt = first_of(d, n, TAG_THINK, NULL);
    size_t kf = first_of(d, n, TAG_FUNC, NULL);
    size_t k = kc < kt ? kc : kt;
    k = kf < k ? kf : k;
    if (k < n) {
        loco_status rc = run_feed(p, CHAT_EV_TEXT_DELTA, d, k);
        run_end(p);
        if (k == kf) {
            p->state = ST_FUNC;
            p->scan_from = TAG_LEN(TAG_FUNC);
            consume(p, k);
        } else if (k == kc) {
            p->state = ST_CALL;
            p->scan_from = 0;
            consume(p, k + TAG_LEN(TAG_CALL));
        } else {
            p->state = ST_THINK;
            consume(p, k + TAG_LEN(TAG_THINK));
        }
        *more = true;
        return rc;
    }
    size_t safe = final ? n : utf8_complete_len(d, n - max_partial(d, n));
    loco_status rc = run_feed(p, CHAT_EV_TEXT_DELTA, d, safe);
    consume(p, safe);
    if (final)
        run_end(p);
    return rc;
}

static loco_status step_think(chat_qwen_parser *p, bool final, bool *more)
{
    const char *d = buf_str(&p->pend);
    size_t n = p->pend.len;
    const char *hit = str_memmem(d, n, TAG_THINK_END);
    if (hit) {
        size_t k = (size_t)(hit - d);
        loco_status rc = run_feed(p, CHAT_EV_THINKING_DELTA, d, k);
        run_end(p);
        consume(p, k + TAG_LEN(TAG_THINK_END));
        p->state = ST_TEXT;
        *more = true;
        return rc;
    }
    size_t safe = final ? n : utf8_complete_len(d, n - str_partial_suffix(d, n, TAG_THINK_END));
    loco_status rc = run_feed(p, CHAT_EV_THINKING_DELTA, d, safe);
    consume(p, safe);
    if (final) {
        run_end(p);
        p->state = ST_TEXT;
    }
    return rc;
}

/* Inside <tool_call> (body ends at </tool_call>) or a bare <function= (body ends with
 * </function>, tag included). */
static loco_status step_body(chat_qwen_parser *p, bool final, bool *more)
{
    bool call = p->state == ST_CALL;
    const char *close = call ? TAG_CALL_END : TAG_FUNC_END;
    size_t cl = strlen(close);
    const char *d = buf_str(&p->pend);
    size_t n = p->pend.len;
    size_t maxb = p->o.max_call_bytes;
    const char *hit = n > p->scan_from ? str_memmem(d + p->scan_from, n - p->scan_from, close) : NULL;
    size_t part = hit ? 0 : str_partial_suffix(d, n, close);
    size_t k = hit ? (size_t)(hit - d) : n - part;
    loco_status rc = LOCO_OK;
    if (k > maxb) {
        rc = bad_call(p, d, maxb, "tool call body exceeds the size limit");
        if (hit) {
            consume(p, k + cl);
            p->state = ST_TEXT;
        } else {
            consume(p, final ? n : k);
            p->state = final ? ST_TEXT : ST_SKIP;
            p->skip_tag = close;
        }
        *more = true;
        return rc;
    }
    if (!hit && !final) {
        p->scan_from = n >= cl ? n - cl + 1 : 0;
        return LOCO_OK;
    }
    size_t body = call ? k : (hit ? k + cl : k);
    rc = handle_body(p, d, body);
    consume(p, hit ? k + cl : n);
    p->state = ST_TEXT;
    *more = true;
    return rc;
}

static loco_status step_skip(chat_qwen_parser *p, bool final, bool *more)
{
    const char *d = buf_str(&p->pend);
    size_t n = p->pend.len;
    const char *hit = str_memmem(d, n, p->skip_tag);
    if (hit) {
        consume(p, (size_t)(hit - d) + strlen(p->skip_tag));
        p->state = ST_TEXT;
        *more = true;
        return LOCO_OK;
    }
    consume(p, final ? n : n - str_partial_suffix(d, n, p->skip_tag));
    if (final)
        p->state = ST_TEXT;
    return LOCO_OK;
}

static loco_status process(chat_qwen_parser *p, bool final)
{
    for (;;) {
        bool more = false;
        loco_status rc = LOCO_OK;
        switch (p->state) {
        case ST_TEXT: rc = step_text(p, final, &more); break;
        case ST_THINK: rc = step_think(p, final, &more); break;
        case ST_CALL:
        case ST_FUNC: rc = step_body(p, final, &more); break;
        case ST_SKIP: rc = step_skip(p, final, &more); break;
        }
        if (rc || !more)
            return rc;
    }
}

loco_status chat_qwen_parser_new(const chat_qwen_parser_opts *opts, chat_qwen_parser **out)
{
    *out = NULL;
    if (!opts || !opts->on_event)
        return LOCO_ERR_INVALID;
    chat_qwen_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return LOCO_ERR_NOMEM;
    p->o = *opts;
    if (!p->o.max_call_bytes)
        p->o.max_call_bytes = QWEN_DEFAULT_MAX_CALL;
    size_t maxb = p->o.max_call_bytes;
    size_t lim = maxb > SIZE_MAX / 2 ? SIZE_MAX / 2 : maxb; /* pend: a body, one slice, a tag */
    buf_init(&p->pend, lim + QWEN_FEED_SLICE + 64);
    buf_init(&p->ws, QWEN_MAX_HELD_WS);
    p->state = ST_TEXT;
    *out = p;
    return LOCO_OK;
}

loco_status chat_qwen_parser_feed(chat_qwen_parser *p, const char *text, size_t n)
{
    if (p->failed)
        return p->failed;
    if (p->finished)
        return LOCO_ERR_INVALID;
    while (n) {
        size_t k = n < QWEN_FEED_SLICE ? n : QWEN_FEED_SLICE;
        loco_status rc = buf_append(&p->pend, text, k);
        if (!rc)
            rc = process(p, false);
        if (rc) {
            p->failed = rc;
            return rc;
        }
        text += k;
        n -= k;
    }
    return LOCO_OK;
}

loco_status chat_qwen_parser_finish(chat_qwen_parser *p)
{
    if (p->failed)
        return p->failed;
    if (p->finished)
        return LOCO_ERR_INVALID;
    p->finished = true;
    loco_status rc = process(p, true);
    if (rc)
        p->failed = rc;
    return rc;
}

size_t chat_qwen_parser_calls(const chat_qwen_parser *p)
{
    return p->calls;
}

size_t chat_qwen_parser_repaired(const chat_qwen_parser *p)
{
    return p->repaired;
}

size_t chat_qwen_parser_bad(const chat_qwen_parser *p)
{
    return p->bad;
}

void chat_qwen_parser_free(chat_qwen_parser *p)
{
    if (!p)
        return;
    buf_release(&p->pend);
    buf_release(&p->ws);
    free(p);
}
