/* turn.c: one assistant turn reduced to its tool calls, whatever form it was written in:
 * raw <tool_call> text (through chat_qwen_parser), OpenAI tool_calls or Anthropic tool_use
 * blocks (through the chat codecs). Part of eval/. */
#include "base/common.h"

#include "base/json.h"
#include "base/str.h"
#include "chat/anthropic.h"
#include "chat/openai.h"
#include "chat/qwen.h"
#include "eval/eval.h"

void eval_turn_init(eval_turn *t)
{
    memset(t, 0, sizeof(*t));
}

void eval_turn_release(eval_turn *t)
{
    for (size_t i = 0; i < t->n_calls; i++) {
        free(t->calls[i].name);
        free(t->calls[i].args_json);
    }
    free(t->calls);
    memset(t, 0, sizeof(*t));
}

/* Appends a call taking ownership of name and args (either may be NULL); frees them on
 * failure. */
static loco_status add_call(eval_turn *t, char *name, char *args, bool valid, loco_err *err)
{
    loco_status rc = LOCO_OK;
    if (t->n_calls >= EVAL_MAX_CALLS) {
        rc = loco_err_set(err, LOCO_ERR_LIMIT, "more than %d tool calls in one turn",
                          EVAL_MAX_CALLS);
    } else if (t->n_calls == t->cap_calls) {
        size_t cap = t->cap_calls ? t->cap_calls * 2 : 4;
        eval_call *c = realloc(t->calls, cap * sizeof(*c));
        if (!c)
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        else {
            t->calls = c;
            t->cap_calls = cap;
        }
    }
    if (rc) {
        free(name);
        free(args);
        return rc;
    }
    t->calls[t->n_calls++] = (eval_call){.name = name, .args_json = args, .json_valid = valid};
    return LOCO_OK;
}

/* ---- raw text ---- */

typedef struct {
    eval_turn *t;
    chat_qwen_parser *p;
    loco_err *err;
    size_t repaired_seen; /* chat_qwen_parser_repaired when last looked at */
    size_t last_good;     /* index in t of the last call the parser emitted; SIZE_MAX none */
    char *name;           /* the call being received */
    buf args;
} text_ctx;

/* The parser counts a repaired call after its TOOL_CALL_END, so a rise of the counter seen at
 * the next call (or at the end) belongs to the last call it emitted. */
static void note_repairs(text_ctx *c)
{
    size_t r = chat_qwen_parser_repaired(c->p);
    if (r > c->repaired_seen && c->last_good != SIZE_MAX)
        c->t->calls[c->last_good].json_valid = false;
    c->repaired_seen = r;
}

static loco_status on_text_event(void *ctx, const chat_event *ev)
{
    text_ctx *c = ctx;
    switch (ev->type) {
    case CHAT_EV_TOOL_CALL_START:
        note_repairs(c);
        free(c->name);
        c->name = strdup(ev->name ? ev->name : "");
        buf_reset(&c->args);
        return c->name ? LOCO_OK : loco_err_set(c->err, LOCO_ERR_NOMEM, "out of memory");
    case CHAT_EV_TOOL_ARGS_DELTA:
        return buf_append(&c->args, ev->text, ev->len);
    case CHAT_EV_TOOL_CALL_END: {
        char *args = buf_take(&c->args, NULL);
        char *name = c->name;
        c->name = NULL;
        if (!args) {
            free(name);
            return loco_err_set(c->err, LOCO_ERR_NOMEM, "out of memory");
        }
        c->last_good = c->t->n_calls;
        return add_call(c->t, name, args, true, c->err);
    }
    default:
        return LOCO_OK;
    }
}

/* A call the parser cannot read: valid JSON when the body parses as it is; its name when the
 * body is an object naming one. */
static loco_status on_bad_text_call(void *ctx, const char *raw, size_t n, const char *reason)
{
    text_ctx *c = ctx;
    LOCO_UNUSED(reason);
    note_repairs(c);
    json_t *v = json_parse(raw, n, NULL);
    const char *name = json_get_str(v, "name");
    bool named = name && *name;
    char *dup = named ? strdup(name) : NULL;
    bool valid = v != NULL;
    json_decref(v); /* name points into v */
    if (named && !dup)
        return loco_err_set(c->err, LOCO_ERR_NOMEM, "out of memory");
    return add_call(c->t, dup, NULL, valid, c->err);
}

loco_status eval_turn_add_text(eval_turn *t, const char *s, size_t n, loco_err *err)
{
    text_ctx c;
    memset(&c, 0, sizeof(c));
    c.t = t;
    c.err = err;
    c.last_good = SIZE_MAX;
    buf_init(&c.args, BUF_UNLIMITED); /* bounded by the parser's max_call_bytes */
    chat_qwen_parser_opts o;
    memset(&o, 0, sizeof(o));
    o.on_event = on_text_event;
    o.on_bad_call = on_bad_text_call;
    o.ctx = &c;
    loco_err_clear(err);
    loco_status rc = chat_qwen_parser_new(&o, &c.p);
    if (rc) {
        buf_release(&c.args);
        return loco_err_set(err, rc, "cannot create the tool-call parser");
    }
    rc = chat_qwen_parser_feed(c.p, s, n);
    if (!rc)
        rc = chat_qwen_parser_finish(c.p);
    if (!rc)
        note_repairs(&c);
    if (rc && err && !err->msg[0])
        loco_err_set(err, rc, "reading tool calls: %s", loco_status_str(rc));
    chat_qwen_parser_free(c.p);
    free(c.name);
    buf_release(&c.args);
    return rc;
}

/* ---- messages ---- */

/* Which codec reads a message object: OpenAI when it has tool_calls (or a function_call),
 * Anthropic when its content is an array of blocks, else OpenAI (a string content). */
static bool message_is_anthropic(const json_t *msg)
{
    const json_t *tc = json_object_get(msg, "tool_calls");
    const json_t *fc = json_object_get(msg, "function_call");
    if ((tc && !json_is_null(tc)) || (fc && !json_is_null(fc)))
        return false;
    return json_is_array(json_object_get(msg, "content"));
}

static loco_status add_block(eval_turn *t, const chat_block *b, loco_err *err)
{
    if (b->type == CHAT_BLOCK_TEXT && b->text)
        return eval_turn_add_text(t, b->text, strlen(b->text), err);
    if (b->type != CHAT_BLOCK_TOOL_CALL)
        return LOCO_OK;
    const char *args = b->args_json ? b->args_json : "";
    json_t *v = json_parse(args, strlen(args), NULL);
    bool valid = v != NULL;
    json_decref(v);
    char *name = b->name && *b->name ? strdup(b->name) : NULL;
    char *a = strdup(args);
    if ((b->name && *b->name && !name) || !a) {
        free(name);
        free(a);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    return add_call(t, name, a, valid, err);
}

/* Wraps msg as the one assistant message of a request body and parses it with the codec of
 * its form; then walks its blocks. */
static loco_status add_message(eval_turn *t, const json_t *msg, loco_err *err)
{
    bool anth = message_is_anthropic(msg);
    json_t *copy = json_copy((json_t *)msg); /* shallow: the role is replaced */
    json_t *body = json_pack("{s:s, s:i, s:[o]}", "model", "eval", "max_tokens", 1, "messages",
                             copy);
    if (!copy || !body || json_object_set_new(copy, "role", json_string("assistant"))) {
        json_decref(body);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    chat_request *req = NULL;
    loco_err perr;
    loco_err_clear(&perr);
    loco_status rc = anth ? chat_anth_parse_request(text, strlen(text), &req, &perr)
                          : chat_oai_parse_request(text, strlen(text), &req, &perr);
    free(text);
    if (rc) {
        const char *m = perr.msg;
        if (str_starts_with(m, "messages[0]"))
            m += strlen("messages[0]");
        return loco_err_set(err, rc, "%s message%s%s", anth ? "Anthropic" : "OpenAI",
                            *m == '.' || *m == ':' ? "" : ": ", m);
    }
    for (size_t i = 0; i < req->n_msgs && !rc; i++) {
        const chat_message *m = &req->msgs[i];
        for (size_t j = 0; j < m->n_blocks && !rc; j++)
            rc = add_block(t, &m->blocks[j], err);
    }
    chat_request_free(req);
    return rc;
}

loco_status eval_turn_add_json(eval_turn *t, const json_t *v, loco_err *err)
{
    loco_err_clear(err);
    if (json_is_string(v))
        return eval_turn_add_text(t, json_string_value(v), json_string_length(v), err);
    if (json_is_object(v))
        return add_message(t, v, err);
    if (json_is_array(v)) {
        json_t *msg = json_pack("{s:O}", "content", (json_t *)v);
        if (!msg)
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        loco_status rc = add_message(t, msg, err);
        json_decref(msg);
        return rc;
    }
    return loco_err_set(err, LOCO_ERR_INVALID,
                        "expected raw text (a string), a message (an object) or content blocks "
                        "(an array)");
}
