/* engine.c: the in-process backend: a neutral conversation goes through the model's chat
 * template to prompt ids, the engine evaluates only what its KV cache does not already hold
 * (prefix reuse across agent turns), and the sampled text is parsed for <tool_call>s by the
 * same qwen parser openai-http uses in qwen_text mode. Backend layer, over engine/. */
#include "base/common.h"

#include <pthread.h>

#include "backend/backend.h"
#include "backend/constrain_req.h"
#include "base/str.h"
#include "chat/qwen.h"
#include "engine/gguf.h"
#include "engine/prompt.h"
#include "engine/qwen3.h"
#include "engine/sampler.h"
#include "engine/threadpool.h"
#include "engine/tokenizer.h"

#define ENGINE_DEFAULT_CTX 51200
#define ENGINE_DEFAULT_BATCH 256
#define ENGINE_DEFAULT_MAX_TOKENS 4096
#define ENGINE_MAX_CTX (1L << 24)
/* Limit on the ids of one prompt (tokenized in full, so an overflow reports its size). */
#define ENGINE_MAX_PROMPT_TOKENS ((size_t)1 << 26)
/* Limit on the memory one request's template messages take (the conversation's own text
 * plus joins); the prompt's token count is bounded by the context anyway. */
#define ENGINE_RENDER_MAX ((size_t)256 << 20)

typedef struct {
    backend base;
    gguf *g;
    qwen3_model *m;
    tok *t;
    tpool *pool;
    pthread_mutex_t mu; /* one sequence: guards ctx, logits and calls */
    qwen3_ctx *ctx;
    float *logits;      /* (n_vocab) of the last evaluated token */
    char *system_prompt;
    bool template_tools;
    char *model_name;
    tmpl_dialect dialect;
    uint32_t n_ctx;
    uint32_t n_batch;
    int32_t eos;        /* <|im_end|>, -1 when absent */
    int32_t eot;        /* <|endoftext|>, -1 when absent */
    uint64_t seed;
    uint64_t calls;
    constrain_vocab *cvocab; /* tool-call constraint tables (opts.constrain), else NULL */
} backend_engine;

/* ---- neutral conversation -> template messages ---- */

/* Template messages of one request; every string lives in mem. */
typedef struct {
    arena mem;
    tmpl_message *msgs;
    size_t n, cap;
    tmpl_tool *tools;
    size_t n_tools;
    /* the turn being gathered: consecutive user (or assistant) parts merge into one */
    chat_role pending_role;
    bool pending;
    buf text;
    tmpl_tool_call *calls;
    size_t n_calls, cap_calls;
} engine_conv;

static void conv_init(engine_conv *c)
{
    memset(c, 0, sizeof(*c));
    arena_init(&c->mem, ENGINE_RENDER_MAX);
    buf_init(&c->text, ENGINE_RENDER_MAX);
}

static void conv_release(engine_conv *c)
{
    arena_release(&c->mem);
    buf_release(&c->text);
    free(c->msgs);
    free(c->calls);
}

static loco_status conv_push(engine_conv *c, tmpl_role role, const char *content,
                             const tmpl_tool_call *calls, size_t n_calls)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        tmpl_message *m = realloc(c->msgs, cap * sizeof(*m));
        if (!m)
            return LOCO_ERR_NOMEM;
        c->msgs = m;
        c->cap = cap;
    }
    tmpl_message *m = &c->msgs[c->n++];
    memset(m, 0, sizeof(*m));
    m->role = role;
    m->content = content;
    m->tool_calls = calls;
    m->n_tool_calls = n_calls;
    return LOCO_OK;
}

/* Ends the gathered turn: one USER or ASSISTANT message (nothing when it is empty). */
static loco_status conv_flush(engine_conv *c)
{
    if (!c->pending)
        return LOCO_OK;
    c->pending = false;
    if (!c->text.len && !c->n_calls)
        return LOCO_OK;
    char *text = arena_strndup(&c->mem, buf_str(&c->text), c->text.len);
    tmpl_tool_call *calls = NULL;
    if (c->n_calls) {
        calls = arena_alloc(&c->mem, c->n_calls * sizeof(*calls));
        if (calls)
            memcpy(calls, c->calls, c->n_calls * sizeof(*calls));
    }
    if (!text || (c->n_calls && !calls))
        return LOCO_ERR_NOMEM;
    tmpl_role role = c->pending_role == CHAT_ROLE_ASSISTANT ? TMPL_ROLE_ASSISTANT : TMPL_ROLE_USER;
    loco_status rc = conv_push(c, role, text, calls, c->n_calls);
    buf_reset(&c->text);
    c->n_calls = 0;
    return rc;
}

/* Starts (or continues) gathering a turn of role (USER or ASSISTANT). */
static loco_status conv_begin(engine_conv *c, chat_role role)
{
    if (c->pending && c->pending_role == role)
        return LOCO_OK;
    loco_status rc = conv_flush(c);
    c->pending = true;
    c->pending_role = role;
    return rc;
}

/* Appends a part of the gathered turn, parts joined with "\n" (as chat/qwen.c joins them). */
static loco_status conv_part(engine_conv *c, const char *prefix, const char *text,
                             const char *suffix)
{
    loco_status rc = c->text.len ? buf_appendc(&c->text, '\n') : LOCO_OK;
    if (!rc)
        rc = buf_appends(&c->text, prefix);
    if (!rc)
        rc = buf_appends(&c->text, text);
    if (!rc)
        rc = buf_appends(&c->text, suffix);
    return rc;
}

static loco_status conv_call(engine_conv *c, const chat_block *b)
{
    if (c->n_calls == c->cap_calls) {
        size_t cap = c->cap_calls ? c->cap_calls * 2 : 8;
        tmpl_tool_call *n = realloc(c->calls, cap * sizeof(*n));
        if (!n)
            return LOCO_ERR_NOMEM;
        c->calls = n;
        c->cap_calls = cap;
    }
    tmpl_tool_call *tc = &c->calls[c->n_calls++];
    tc->name = b->name ? b->name : "";
    tc->arguments = b->args_json && *b->args_json ? b->args_json : "{}";
    tc->arguments_raw = false; /* re-serialised as the template's tojson writes it */
    return LOCO_OK;
}

/* A tool result is a template TOOL message (consecutive ones share one user turn). */
static loco_status conv_tool_result(engine_conv *c, const chat_block *b)
{
    loco_status rc = conv_flush(c);
    if (rc)
        return rc;
    const char *text = b->text ? b->text : "";
    const char *content = b->is_error ? arena_sprintf(&c->mem, "Error: %s", text) : text;
    return content ? conv_push(c, TMPL_ROLE_TOOL, content, NULL, 0) : LOCO_ERR_NOMEM;
}

static loco_status conv_block(engine_conv *c, const chat_message *m, const chat_block *b)
{
    chat_role role = m->role == CHAT_ROLE_ASSISTANT ? CHAT_ROLE_ASSISTANT : CHAT_ROLE_USER;
    switch (b->type) {
    case CHAT_BLOCK_THINKING:
        return LOCO_OK;
    case CHAT_BLOCK_TOOL_RESULT:
        return conv_tool_result(c, b);
    case CHAT_BLOCK_TOOL_CALL: {
        loco_status rc = conv_begin(c, CHAT_ROLE_ASSISTANT);
        return rc ? rc : conv_call(c, b);
    }
    case CHAT_BLOCK_TEXT:
        if (!b->text || !*b->text)
            return LOCO_OK;
        break;
    case CHAT_BLOCK_IMAGE:
    case CHAT_BLOCK_DOCUMENT:
        break;
    }
    loco_status rc = conv_begin(c, role);
    if (rc)
        return rc;
    if (b->type == CHAT_BLOCK_IMAGE)
        return conv_part(c, "", "[image omitted]", "");
    if (b->type == CHAT_BLOCK_DOCUMENT)
        return conv_part(c, "", "[document omitted]", "");
    /* a role:"system" note inside the conversation joins the user turn, as chat/qwen.c does */
    if (m->role == CHAT_ROLE_SYSTEM && !str_starts_with(b->text, "<system-reminder>"))
        return conv_part(c, "<system-reminder>\n", b->text, "\n</system-reminder>");
    return conv_part(c, "", b->text, "");
}

/* OpenAI-style function definitions, the form Qwen's template lists in its tools section. */
static loco_status conv_tools(engine_conv *c, const chat_request *req)
{
    c->tools = arena_alloc(&c->mem, (req->n_tools ? req->n_tools : 1) * sizeof(*c->tools));
    if (!c->tools)
        return LOCO_ERR_NOMEM;
    buf js;
    buf_init(&js, ENGINE_RENDER_MAX);
    loco_status rc = LOCO_OK;
    for (size_t i = 0; !rc && i < req->n_tools; i++) {
        const chat_tool *t = &req->tools[i];
        buf_reset(&js);
        rc = buf_appends(&js, "{\"type\": \"function\", \"function\": {\"name\": ");
        if (!rc)
            rc = buf_append_json_str(&js, t->name, strlen(t->name));
        if (!rc && t->description) {
            rc = buf_appends(&js, ", \"description\": ");
            if (!rc)
                rc = buf_append_json_str(&js, t->description, strlen(t->description));
        }
        if (!rc)
            rc = buf_appendf(&js, ", \"parameters\": %s}}", t->schema_json ? t->schema_json : "{}");
        char *s = rc ? NULL : arena_strndup(&c->mem, buf_str(&js), js.len);
        if (!rc && !s)
            rc = LOCO_ERR_NOMEM;
        if (!rc)
            c->tools[c->n_tools++].json = s;
    }
    buf_release(&js);
    return rc;
}

/* Builds the template messages of req: system (sys), then the turns. */
static loco_status conv_build(engine_conv *c, const chat_request *req, const char *sys,
                              bool with_tools, loco_err *err)
{
    loco_status rc = LOCO_OK;
    if (sys && *sys) {
        char *s = arena_strdup(&c->mem, sys);
        rc = s ? conv_push(c, TMPL_ROLE_SYSTEM, s, NULL, 0) : LOCO_ERR_NOMEM;
    }
    for (size_t i = 0; !rc && i < req->n_msgs; i++) {
        const chat_message *m = &req->msgs[i];
        for (size_t j = 0; !rc && j < m->n_blocks; j++)
            rc = conv_block(c, m, &m->blocks[j]);
    }
    if (!rc)
        rc = conv_flush(c);
    if (!rc && with_tools && req->n_tools)
        rc = conv_tools(c, req);
    if (rc)
        return loco_err_set(err, rc, "cannot lay out the conversation for the engine: %s",
                            loco_status_str(rc));
    return LOCO_OK;
}

/* req -> prompt ids, through the model's chat template. */
static loco_status engine_prompt(const backend_engine *b, const chat_request *req, tok_ids *ids,
                                 loco_err *err)
{
    engine_conv c;
    conv_init(&c);
    const char *sys = b->system_prompt ? b->system_prompt : req->system;
    loco_status rc = conv_build(&c, req, sys, b->template_tools, err);
    if (!rc) {
        tmpl_options to;
        memset(&to, 0, sizeof(to));
        to.dialect = b->dialect;
        to.add_generation_prompt = true;
        to.disable_thinking = true;
        rc = prompt_tokenize_chat(b->t, &to, c.msgs, c.n, c.tools, c.n_tools, ids, err);
    }
    conv_release(&c);
    return rc;
}

/* ---- one completion ---- */

typedef struct {
    backend_engine *b;
    const backend_call *call;
    chat_event_fn cb;
    void *ctx;
    backend_result *out;
    chat_qwen_parser *parser;
} engine_call;

static bool cancelled(const backend_call *call)
{
    return call->cancel && __atomic_load_n(call->cancel, __ATOMIC_ACQUIRE);
}

static loco_status forward(void *ctx, const chat_event *ev)
{
    engine_call *c = ctx;
    c->out->got_events = true;
    return c->cb(c->ctx, ev);
}

static loco_status on_bad_call(void *ctx, const char *raw, size_t n, const char *reason)
{
    engine_call *c = ctx;
    c->out->bad_calls++;
    if (c->call->on_bad_call)
        return c->call->on_bad_call(c->call->bad_call_ctx, raw, n, reason);
    return LOCO_OK;
}

/* How many leading ids the cache can keep: the common prefix, less one when it covers the
 * whole prompt (the last prompt token is evaluated again for its logits). */
static uint32_t reusable_prefix(const qwen3_ctx *ctx, const tok_ids *ids)
{
    uint32_t past = qwen3_ctx_past(ctx);
    uint32_t n = 0;
    while (n < past && n < ids->len && qwen3_ctx_token(ctx, n) == ids->ids[n])
        n++;
    if (n == ids->len && n > 0)
        n--;
    return n;
}

/* qwen3_eval that leaves the cache as it was before the call when the call fails. */
static loco_status eval(backend_engine *b, const int32_t *ids, uint32_t n, float *logits,
                        loco_err *err)
{
    uint32_t before = qwen3_ctx_past(b->ctx);
    loco_status rc = qwen3_eval(b->ctx, ids, n, logits, err);
    if (rc)
        qwen3_ctx_truncate(b->ctx, before);
    return rc;
}

/* Evaluates ids[from..) batch by batch, checking for cancellation between batches; leaves
 * the last token's logits in b->logits. */
static loco_status eval_prompt(backend_engine *b, const backend_call *call, const tok_ids *ids,
                               uint32_t from, loco_err *err)
{
    uint32_t n = (uint32_t)ids->len;
    while (from < n) {
        if (cancelled(call))
            return loco_err_set(err, LOCO_ERR_CANCELLED, "cancelled");
        uint32_t k = n - from < b->n_batch ? n - from : b->n_batch;
        bool last = from + k == n;
        loco_status rc = eval(b, ids->ids + from, k, last ? b->logits : NULL, err);
        if (rc)
            return rc;
        from += k;
    }
    return LOCO_OK;
}

static sampler *make_sampler(backend_engine *b, const chat_request *req, loco_err *err)
{
    sampler_params sp;
    sampler_params_default(&sp);
    sp.temperature = req->has_temperature ? (float)req->temperature : 0.7f;
    sp.top_p = req->has_top_p ? (float)req->top_p : 0.8f;
    sp.top_k = req->top_k > 0 ? (int32_t)(req->top_k > INT32_MAX ? INT32_MAX : req->top_k) : 20;
    sp.min_p = 0.0f;
    sp.penalty_last_n = 0;
    sp.seed = b->seed + b->calls;
    return sampler_new((int32_t)b->m->hp.n_vocab, &sp, err);
}

static loco_status emit_start(engine_call *c, const chat_request *req, long n_prompt,
                              long reused)
{
    char id[40];
    str_random_id("msg_", id, sizeof(id));
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    chat_usage_init(&ev.usage);
    ev.type = CHAT_EV_MESSAGE_START;
    ev.id = id;
    ev.model = c->call->model ? c->call->model : req->model ? req->model : c->b->model_name;
    ev.usage.input_tokens = n_prompt;
    ev.usage.cache_read_input_tokens = reused;
    return forward(c, &ev);
}

/* Feeds the text of one sampled token to the parser (control tokens show no text). */
static loco_status emit_token(engine_call *c, tok_stream *ts, buf *piece, int32_t id,
                              loco_err *err)
{
    if (tok_token_type(c->b->t, id) == TOK_TYPE_CONTROL)
        return LOCO_OK;
    buf_reset(piece);
    loco_status rc = tok_stream_push(ts, c->b->t, id, piece, err);
    if (!rc && piece->len)
        rc = chat_qwen_parser_feed(c->parser, piece->data, piece->len);
    return rc;
}

/* The sampling loop: until end of turn, max_tokens or the end of the context. */
static loco_status generate(engine_call *c, const chat_request *req, long *out_n,
                            chat_stop *out_stop, loco_err *err)
{
    backend_engine *b = c->b;
    long max = req->max_tokens > 0 ? req->max_tokens : ENGINE_DEFAULT_MAX_TOKENS;
    sampler *smp = make_sampler(b, req, err);
    if (!smp)
        return err && err->code ? err->code : LOCO_ERR_NOMEM;
    constrain *con = NULL; /* valid tool calls by construction (docs/internals/constrain.md) */
    if (b->cvocab && constrain_req_new(b->t, b->cvocab, req, max, &con, err)) {
        sampler_free(smp);
        return err && err->code ? err->code : LOCO_ERR_NOMEM;
    }
    sampler_set_constraint(smp, con);
    tok_stream ts;
    tok_stream_init(&ts);
    buf piece;
    buf_init(&piece, BUF_UNLIMITED);
    loco_status rc = LOCO_OK;
    *out_stop = CHAT_STOP_MAX_TOKENS;
    *out_n = 0;
    for (long i = 0; i < max; i++) {
        if (cancelled(c->call)) {
            rc = loco_err_set(err, LOCO_ERR_CANCELLED, "cancelled");
            break;
        }
        int32_t id;
        long ctx_left = (long)b->n_ctx - (long)qwen3_ctx_past(b->ctx) + 1;
        if (con)
            constrain_set_budget(con, max - i < ctx_left ? max - i : ctx_left);
        rc = sampler_sample(smp, b->logits, &id, err);
        if (rc)
            break;
        sampler_accept(smp, id);
        if (id == b->eos || id == b->eot) {
            *out_stop = CHAT_STOP_END_TURN;
            break;
        }
        (*out_n)++;
        rc = emit_token(c, &ts, &piece, id, err);
        if (rc || i + 1 == max || qwen3_ctx_past(b->ctx) >= b->n_ctx)
            break;
        rc = eval(b, &id, 1, b->logits, err);
        if (rc)
            break;
    }
    if (!rc) {
        buf_reset(&piece);
        rc = tok_stream_flush(&ts, &piece);
        if (!rc && piece.len)
            rc = chat_qwen_parser_feed(c->parser, piece.data, piece.len);
    }
    buf_release(&piece);
    sampler_free(smp);
    constrain_free(con);
    return rc;
}

static loco_status emit_end(engine_call *c, chat_stop stop, long n_prompt, long n_out,
                            long reused)
{
    loco_status rc = chat_qwen_parser_finish(c->parser);
    if (rc)
        return rc;
    c->out->repaired_calls = chat_qwen_parser_repaired(c->parser);
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = CHAT_EV_MESSAGE_END;
    ev.stop = stop;
    if (chat_qwen_parser_calls(c->parser) > 0 && stop != CHAT_STOP_MAX_TOKENS)
        ev.stop = CHAT_STOP_TOOL_USE;
    ev.usage.input_tokens = n_prompt;
    ev.usage.output_tokens = n_out;
    ev.usage.cache_read_input_tokens = reused;
    return forward(c, &ev);
}

/* The completion proper; the caller holds b->mu. */
static loco_status run_locked(engine_call *c, const chat_request *req, const tok_ids *ids,
                              loco_err *err)
{
    backend_engine *b = c->b;
    long n_prompt = (long)ids->len;
    if (ids->len > b->n_ctx) {
        c->out->context_overflow = true;
        c->out->prompt_tokens = n_prompt;
        c->out->context_tokens = (long)b->n_ctx;
        return loco_err_set(err, LOCO_ERR_OVERFLOW,
                            "the prompt (%ld tokens) does not fit the context of %u tokens",
                            n_prompt, b->n_ctx);
    }
    uint32_t reused = reusable_prefix(b->ctx, ids);
    qwen3_ctx_truncate(b->ctx, reused);
    loco_status rc = emit_start(c, req, n_prompt, (long)reused);
    if (!rc)
        rc = eval_prompt(b, c->call, ids, reused, err);
    long n_out = 0;
    chat_stop stop = CHAT_STOP_NONE;
    if (!rc)
        rc = generate(c, req, &n_out, &stop, err);
    if (!rc)
        rc = emit_end(c, stop, n_prompt, n_out, (long)reused);
    return rc;
}

static loco_status engine_complete(backend *base, const chat_request *req,
                                   const backend_call *call, chat_event_fn cb, void *ctx,
                                   backend_result *out, loco_err *err)
{
    backend_engine *b = (backend_engine *)base;
    engine_call c;
    memset(&c, 0, sizeof(c));
    c.b = b;
    c.call = call;
    c.cb = cb;
    c.ctx = ctx;
    c.out = out;
    tok_ids ids;
    tok_ids_init(&ids, ENGINE_MAX_PROMPT_TOKENS);
    loco_status rc = engine_prompt(b, req, &ids, err);
    chat_qwen_parser_opts po;
    memset(&po, 0, sizeof(po));
    po.on_event = forward;
    po.ctx = &c;
    po.on_bad_call = on_bad_call;
    po.tools = req->tools;
    po.n_tools = req->n_tools;
    if (!rc && chat_qwen_parser_new(&po, &c.parser))
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "cannot create the tool-call parser");
    if (!rc) {
        pthread_mutex_lock(&b->mu);
        rc = run_locked(&c, req, &ids, err);
        b->calls++;
        pthread_mutex_unlock(&b->mu);
    }
    chat_qwen_parser_free(c.parser);
    tok_ids_release(&ids);
    return rc;
}

static loco_status engine_count_tokens(backend *base, const chat_request *req, long *out_n,
                                       loco_err *err)
{
    backend_engine *b = (backend_engine *)base;
    tok_ids ids;
    tok_ids_init(&ids, ENGINE_MAX_PROMPT_TOKENS);
    loco_status rc = engine_prompt(b, req, &ids, err);
    if (!rc)
        *out_n = (long)ids.len;
    tok_ids_release(&ids);
    return rc;
}

static loco_status engine_health(backend *base, loco_err *err)
{
    LOCO_UNUSED(base);
    LOCO_UNUSED(err);
    return LOCO_OK;
}

static void engine_free(backend *base)
{
    backend_engine *b = (backend_engine *)base;
    qwen3_ctx_free(b->ctx);
    tpool_free(b->pool);
    constrain_vocab_free(b->cvocab);
    tok_free(b->t);
    qwen3_free(b->m);
    gguf_close(b->g);
    pthread_mutex_destroy(&b->mu);
    free(b->logits);
    free(b->system_prompt);
    free(b->model_name);
    free(b->base.url);
    free(b);
}

static const backend_ops engine_ops = {
    .kind = "engine",
    .complete = engine_complete,
    .health = engine_health,
    .count_tokens = engine_count_tokens,
    .free = engine_free,
};

/* general.name of the file, else its base name without .gguf. */
static char *model_name(const gguf *g, const char *path)
{
    int64_t i = gguf_find_key(g, "general.name");
    size_t n = 0;
    const char *s = i >= 0 ? gguf_get_str(g, i, &n) : NULL;
    if (s && n)
        return strndup(s, n);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".gguf"))
        n -= 5;
    return strndup(base, n);
}

static loco_status engine_load(backend_engine *b, const backend_engine_opts *o, loco_err *err)
{
    loco_status rc = gguf_open(o->model_path, &b->g, err);
    if (!rc)
        rc = gguf_check_supported(b->g, err);
    if (!rc)
        rc = qwen3_load(b->g, &b->m, err);
    if (!rc)
        rc = tok_from_gguf(b->g, o->nfc, &b->t, err);
    if (rc)
        return rc;
    b->pool = tpool_new(o->threads > 0 ? o->threads : tpool_default_threads(), err);
    if (!b->pool)
        return err && err->code ? err->code : LOCO_ERR_NOMEM;
    rc = qwen3_ctx_new(b->m, b->n_ctx, b->n_batch, b->pool, &b->ctx, err);
    if (rc)
        return rc;
    size_t tl = 0;
    int64_t ti = gguf_find_key(b->g, "tokenizer.chat_template");
    const char *tt = ti >= 0 ? gguf_get_str(b->g, ti, &tl) : NULL;
    b->dialect = tt ? tmpl_detect_dialect(tt) : TMPL_QWEN3_INSTRUCT_2507;
    if (o->constrain) {
        rc = constrain_vocab_new(b->t, (int32_t)b->m->hp.n_vocab, &b->cvocab, err);
        if (rc)
            return rc;
    }
    b->eos = tok_find(b->t, "<|im_end|>", 10);
    b->eot = tok_find(b->t, "<|endoftext|>", 13);
    b->logits = malloc((size_t)b->m->hp.n_vocab * sizeof(float));
    b->model_name = model_name(b->g, o->model_path);
    b->base.url = strdup(o->model_path);
    if (o->system_prompt)
        b->system_prompt = strdup(o->system_prompt);
    if (!b->logits || !b->model_name || !b->base.url || (o->system_prompt && !b->system_prompt))
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    return LOCO_OK;
}

loco_status backend_engine_new(const backend_engine_opts *o, backend **out, loco_err *err)
{
    if (!o || !o->model_path)
        return loco_err_set(err, LOCO_ERR_INVALID, "the engine backend needs a model file");
    long ctx = o->ctx > 0 ? o->ctx : ENGINE_DEFAULT_CTX;
    long batch = o->batch > 0 ? o->batch : ENGINE_DEFAULT_BATCH;
    if (ctx > ENGINE_MAX_CTX || batch > ENGINE_MAX_CTX || o->threads > TPOOL_MAX_THREADS)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "engine: context %ld, batch %ld or threads %d out of range", ctx,
                            batch, o->threads);
    backend_engine *b = calloc(1, sizeof(*b));
    if (!b)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    b->base.ops = &engine_ops;
    b->n_ctx = (uint32_t)ctx;
    b->n_batch = (uint32_t)(batch < ctx ? batch : ctx);
    b->seed = o->seed;
    b->template_tools = o->template_tools;
    pthread_mutex_init(&b->mu, NULL);
    loco_status rc = engine_load(b, o, err);
    if (rc) {
        engine_free(&b->base);
        return rc;
    }
    *out = &b->base;
    return LOCO_OK;
}

/* ---- serving API (docs/internals/backends.md) ---- */

static backend_engine *as_engine(backend *b)
{
    return b && b->ops == &engine_ops ? (backend_engine *)b : NULL;
}

loco_status backend_engine_stats(backend *base, struct backend_engine_stats *out)
{
    backend_engine *b = as_engine(base);
    if (!b)
        return LOCO_ERR_INVALID;
    memset(out, 0, sizeof(*out));
    out->parallel = 1;
    return LOCO_OK;
}

loco_status backend_engine_tokenize(backend *base, const char *text, size_t n, bool special,
                                    int32_t **out_ids, size_t *out_n, loco_err *err)
{
    backend_engine *b = as_engine(base);
    *out_ids = NULL;
    *out_n = 0;
    if (!b)
        return loco_err_set(err, LOCO_ERR_INVALID, "not an engine backend");
    tok_ids ids;
    tok_ids_init(&ids, ENGINE_MAX_PROMPT_TOKENS);
    loco_status rc = tok_encode(b->t, text, n, special ? TOK_PARSE_SPECIAL : 0, &ids, err);
    if (rc) {
        tok_ids_release(&ids);
        return rc;
    }
    *out_ids = ids.ids; /* ownership moves to the caller */
    *out_n = ids.len;
    return LOCO_OK;
}

loco_status backend_engine_detokenize(backend *base, const int32_t *ids, size_t n, char **out,
                                      loco_err *err)
{
    backend_engine *b = as_engine(base);
    *out = NULL;
    if (!b)
        return loco_err_set(err, LOCO_ERR_INVALID, "not an engine backend");
    buf raw, text;
    buf_init(&raw, BUF_UNLIMITED);
    buf_init(&text, BUF_UNLIMITED);
    loco_status rc = tok_decode(b->t, ids, n, &raw, err);
    tok_stream ts;
    tok_stream_init(&ts);
    if (!rc)
        rc = tok_stream_push_bytes(&ts, raw.data ? raw.data : "", raw.len, &text);
    if (!rc)
        rc = tok_stream_flush(&ts, &text);
    if (!rc) {
        *out = buf_take(&text, NULL);
        if (!*out)
            rc = LOCO_ERR_NOMEM;
    }
    if (rc && (!err || !err->code))
        loco_err_set(err, rc, "cannot decode the ids: %s", loco_status_str(rc));
    buf_release(&raw);
    buf_release(&text);
    return rc;
}

loco_status backend_engine_complete_text(backend *base, const char *prompt,
                                         const chat_request *params, const backend_call *call,
                                         chat_event_fn cb, void *ctx, backend_result *out,
                                         loco_err *err)
{
    LOCO_UNUSED(prompt);
    LOCO_UNUSED(params);
    LOCO_UNUSED(call);
    LOCO_UNUSED(cb);
    LOCO_UNUSED(ctx);
    LOCO_UNUSED(out);
    if (!as_engine(base))
        return loco_err_set(err, LOCO_ERR_INVALID, "not an engine backend");
    return loco_err_set(err, LOCO_ERR_UNSUPPORTED, "raw completions are not implemented yet");
}
