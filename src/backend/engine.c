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
#include "engine/sched.h"
#include "engine/threadpool.h"
#include "engine/tokenizer.h"

#define ENGINE_DEFAULT_CTX 51200
#define ENGINE_DEFAULT_BATCH 256
#define ENGINE_DEFAULT_MAX_TOKENS 4096
#define ENGINE_MAX_CTX (1L << 24)
#define ENGINE_DEFAULT_PARALLEL 4
#define ENGINE_MAX_PARALLEL 256
/* Prefix cache: KV blocks no sequence uses are kept up to this (MiB). */
#define ENGINE_DEFAULT_CACHE_MB 4096
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
    qwen3_ctx *ctx;
    sched *sched;
    char *system_prompt;
    bool template_tools;
    char *model_name;
    tmpl_dialect dialect;
    uint32_t n_ctx;
    uint32_t n_batch;
    int32_t eos;        /* <|im_end|>, -1 when absent */
    int32_t eot;        /* <|endoftext|>, -1 when absent */
    uint64_t seed;
    uint64_t calls;     /* atomic: calls so far (sampling seeds) */
    constrain_vocab *cvocab; /* tool-call constraint tables (opts.constrain), else NULL */
    int parallel;
    long cache_mb;
    qwen3_kv_type kv_type;
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

static loco_status conv_call(engine_conv *c, const chat_qwen_part *b)
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
/* A tool result is a template TOOL message (consecutive ones share one user turn). */
static loco_status conv_tool_result(engine_conv *c, const chat_qwen_part *p)
{
    loco_status rc = conv_flush(c);
    if (rc)
        return rc;
    const char *content = p->is_error ? arena_sprintf(&c->mem, "Error: %s", p->text) : p->text;
    return content ? conv_push(c, TMPL_ROLE_TOOL, content, NULL, 0) : LOCO_ERR_NOMEM;
}

/* One part of what the model sees (chat/qwen.h): results become tool messages, an assistant's
 * calls the template's tool_calls (after its text, as the template writes them), a call in a
 * user turn stays text. */
static loco_status conv_part_of(engine_conv *c, const chat_qwen_part *p, buf *scratch)
{
    if (p->kind == CHAT_QWEN_RESULT)
        return conv_tool_result(c, p);
    loco_status rc = conv_begin(c, p->assistant ? CHAT_ROLE_ASSISTANT : CHAT_ROLE_USER);
    if (rc)
        return rc;
    if (p->kind == CHAT_QWEN_TEXT)
        return conv_part(c, "", p->text, "");
    if (p->assistant)
        return conv_call(c, p);
    buf_reset(scratch);
    rc = chat_qwen_append_tool_call(scratch, p->name, p->args_json);
    return rc ? rc : conv_part(c, "", buf_str(scratch), "");
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
    chat_qwen_parts parts;
    memset(&parts, 0, sizeof(parts));
    if (!rc) {
        rc = chat_qwen_parts_build(req, &parts, err);
        if (rc)
            return rc;
    }
    buf scratch;
    buf_init(&scratch, ENGINE_RENDER_MAX);
    for (size_t i = 0; !rc && i < parts.n; i++)
        rc = conv_part_of(c, &parts.parts[i], &scratch);
    buf_release(&scratch);
    chat_qwen_parts_release(&parts);
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

/* ---- one completion: prompt ids -> scheduler -> text -> events ---- */

/* Stop sequences over the text stream: text that may still become a stop sequence is held
 * back; once one appears the text before it is released and generation ends. */
typedef struct {
    const char *const *stop;
    size_t n_stop;
    buf held;
    const char *hit; /* the stop sequence found, NULL before */
} stopper;

/* Feeds text; appends what can be released to out. */
static loco_status stopper_feed(stopper *st, const char *p, size_t n, buf *out)
{
    if (!st->n_stop || st->hit)
        return st->hit ? LOCO_OK : buf_append(out, p, n);
    loco_status rc = buf_append(&st->held, p, n);
    if (rc)
        return rc;
    const char *h = buf_str(&st->held);
    size_t len = st->held.len, first = len;
    /* the earliest complete stop sequence */
    for (size_t i = 0; i < st->n_stop; i++) {
        const char *sq = st->stop[i];
        if (!sq || !*sq)
            continue;
        const char *f = memmem(h, len, sq, strlen(sq));
        if (f && (size_t)(f - h) < first) {
            first = (size_t)(f - h);
            st->hit = sq;
        }
    }
    if (st->hit) {
        rc = buf_append(out, h, first);
        buf_reset(&st->held);
        return rc;
    }
    /* keep the longest suffix that is a proper prefix of some stop sequence */
    size_t keep = 0;
    for (size_t i = 0; i < st->n_stop; i++) {
        const char *sq = st->stop[i];
        size_t sl = sq ? strlen(sq) : 0;
        for (size_t k = sl > 1 ? sl - 1 : 0; k > keep; k--) {
            if (k <= len && !memcmp(h + len - k, sq, k)) {
                keep = k;
                break;
            }
        }
    }
    rc = buf_append(out, h, len - keep);
    if (!rc)
        buf_consume(&st->held, len - keep);
    return rc;
}

typedef struct {
    backend_engine *b;
    const backend_call *call;
    const chat_request *req;
    const backend_engine_run_opts *ro;
    chat_event_fn cb;
    void *ctx;
    backend_result *out;
    chat_qwen_parser *parser; /* NULL: raw text (complete_text) */
    tok_stream ts;
    stopper stop;
    buf piece, text;
    long n_out;               /* tokens generated before the end (or the stop sequence) */
} engine_call;

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

static sampler *make_sampler(backend_engine *b, const chat_request *req,
                             const backend_engine_run_opts *ro, loco_err *err)
{
    sampler_params sp;
    sampler_params_default(&sp);
    sp.temperature = req->has_temperature ? (float)req->temperature : 0.7f;
    sp.top_p = req->has_top_p ? (float)req->top_p : 0.8f;
    sp.top_k = req->top_k > 0 ? (int32_t)(req->top_k > INT32_MAX ? INT32_MAX : req->top_k) : 20;
    sp.min_p = 0.0f;
    sp.penalty_last_n = 0;
    sp.seed = b->seed + __atomic_fetch_add(&b->calls, 1, __ATOMIC_RELAXED);
    if (ro && ro->sampling)
        sp = *ro->sampling;
    return sampler_new((int32_t)b->m->hp.n_vocab, &sp, err);
}

static loco_status emit_start(engine_call *c, long n_prompt, long reused)
{
    char id[40];
    str_random_id("msg_", id, sizeof(id));
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    chat_usage_init(&ev.usage);
    ev.type = CHAT_EV_MESSAGE_START;
    ev.id = id;
    ev.model = c->call->model ? c->call->model : c->req->model ? c->req->model : c->b->model_name;
    ev.usage.input_tokens = n_prompt;
    ev.usage.cache_read_input_tokens = reused;
    return forward(c, &ev);
}

/* Released text goes to the parser, or straight out as text deltas for a raw completion. */
static loco_status emit_text(engine_call *c, const char *p, size_t n)
{
    if (!n)
        return LOCO_OK;
    if (c->parser)
        return chat_qwen_parser_feed(c->parser, p, n);
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = CHAT_EV_TEXT_DELTA;
    ev.text = p;
    ev.len = n;
    return forward(c, &ev);
}

/* One generated token: its text (control tokens show none) through the stop sequences. */
static loco_status emit_token(engine_call *c, int32_t id, loco_err *err)
{
    c->n_out++;
    if (c->ro && c->ro->on_token) {
        loco_status rc = c->ro->on_token(c->ro->hook_ctx, id);
        if (rc)
            return rc;
    }
    if (tok_token_type(c->b->t, id) == TOK_TYPE_CONTROL)
        return LOCO_OK;
    buf_reset(&c->piece);
    buf_reset(&c->text);
    loco_status rc = tok_stream_push(&c->ts, c->b->t, id, &c->piece, err);
    if (!rc && c->piece.len)
        rc = stopper_feed(&c->stop, c->piece.data, c->piece.len, &c->text);
    if (!rc)
        rc = emit_text(c, c->text.data, c->text.len);
    return rc;
}

static loco_status emit_end(engine_call *c, chat_stop stop, long n_prompt, long n_out,
                            long reused)
{
    buf_reset(&c->piece);
    buf_reset(&c->text);
    loco_status rc = tok_stream_flush(&c->ts, &c->piece);
    if (!rc && c->piece.len)
        rc = stopper_feed(&c->stop, c->piece.data, c->piece.len, &c->text);
    if (!rc && !c->stop.hit) /* text held for a stop sequence that never came */
        rc = buf_append(&c->text, c->stop.held.data ? c->stop.held.data : "", c->stop.held.len);
    if (!rc)
        rc = emit_text(c, c->text.data, c->text.len);
    if (!rc && c->parser)
        rc = chat_qwen_parser_finish(c->parser);
    if (rc)
        return rc;
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = CHAT_EV_MESSAGE_END;
    ev.stop = stop;
    if (c->stop.hit) {
        ev.stop = CHAT_STOP_STOP_SEQUENCE;
        ev.stop_sequence = c->stop.hit;
    }
    if (c->parser) {
        c->out->repaired_calls = chat_qwen_parser_repaired(c->parser);
        if (chat_qwen_parser_calls(c->parser) > 0 && ev.stop != CHAT_STOP_MAX_TOKENS)
            ev.stop = CHAT_STOP_TOOL_USE;
    }
    ev.usage.input_tokens = n_prompt;
    ev.usage.output_tokens = n_out;
    ev.usage.cache_read_input_tokens = reused;
    return forward(c, &ev);
}

#define ENGINE_WAIT_IDS 256

/* Prompt ids -> events: the one path of complete(), complete_text() and `loco run`. */
static loco_status engine_run(backend_engine *b, const tok_ids *ids, const chat_request *req,
                              bool parse, const backend_engine_run_opts *ro,
                              const backend_call *call, chat_event_fn cb, void *ctx,
                              backend_result *out, loco_err *err)
{
    long n_prompt = (long)ids->len;
    if (ids->len > b->n_ctx) {
        out->context_overflow = true;
        out->prompt_tokens = n_prompt;
        out->context_tokens = (long)b->n_ctx;
        return loco_err_set(err, LOCO_ERR_OVERFLOW,
                            "the prompt (%ld tokens) does not fit the context of %u tokens",
                            n_prompt, b->n_ctx);
    }
    if (!ids->len)
        return loco_err_set(err, LOCO_ERR_INVALID, "the prompt is empty");
    engine_call c;
    memset(&c, 0, sizeof(c));
    c.b = b;
    c.call = call;
    c.req = req;
    c.ro = ro;
    c.cb = cb;
    c.ctx = ctx;
    c.out = out;
    c.stop.stop = req->stop;
    c.stop.n_stop = req->n_stop;
    buf_init(&c.stop.held, BUF_UNLIMITED);
    buf_init(&c.piece, BUF_UNLIMITED);
    buf_init(&c.text, BUF_UNLIMITED);
    tok_stream_init(&c.ts);
    sampler *smp = NULL;
    sched_job *job = NULL;
    loco_status rc = LOCO_OK;
    if (parse) {
        chat_qwen_parser_opts po;
        memset(&po, 0, sizeof(po));
        po.on_event = forward;
        po.ctx = &c;
        po.on_bad_call = on_bad_call;
        po.tools = req->tools;
        po.n_tools = req->n_tools;
        if (chat_qwen_parser_new(&po, &c.parser))
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "cannot create the tool-call parser");
    }
    long max = req->max_tokens > 0 ? req->max_tokens : ENGINE_DEFAULT_MAX_TOKENS;
    constrain *con = NULL;
    if (!rc) {
        smp = make_sampler(b, req, ro, err);
        if (!smp)
            rc = err && err->code ? err->code : LOCO_ERR_NOMEM;
    }
    /* valid tool calls by construction (docs/internals/constrain.md), for answers to a
     * conversation (not raw prompts, not teacher forcing) */
    if (!rc && b->cvocab && !(ro && (ro->prompt_ids || ro->raw_prompt || ro->force_ids))) {
        rc = constrain_req_new(b->t, b->cvocab, req, max, &con, err);
        if (!rc)
            sampler_set_constraint(smp, con);
    }
    if (!rc) {
        int32_t stops[2];
        uint32_t n_stops = 0;
        if (!(ro && ro->ignore_eos)) {
            if (b->eos >= 0)
                stops[n_stops++] = b->eos;
            if (b->eot >= 0)
                stops[n_stops++] = b->eot;
        }
        sched_req sr;
        memset(&sr, 0, sizeof(sr));
        sr.prompt = ids->ids;
        sr.n_prompt = (uint32_t)ids->len;
        sr.smp = smp;
        sr.max_tokens = max > UINT32_MAX ? UINT32_MAX : (uint32_t)max;
        sr.stop_ids = stops;
        sr.n_stop_ids = n_stops;
        sr.cancel = call->cancel;
        sr.cache_key = call->cache_key;
        sr.con = con;
        if (ro && ro->force_ids) {
            sr.force_ids = ro->force_ids;
            sr.n_force_ids = ro->n_force_ids > UINT32_MAX ? UINT32_MAX : (uint32_t)ro->n_force_ids;
            sr.max_tokens = sr.n_force_ids;
            sr.n_stop_ids = 0;
        }
        if (ro && ro->on_logits) {
            sr.on_logits = ro->on_logits;
            sr.logits_ctx = ro->hook_ctx;
        }
        rc = sched_submit(b->sched, &sr, &job, err);
    }
    bool started = false;
    sched_info info;
    memset(&info, 0, sizeof(info));
    while (!rc) {
        int32_t got[ENGINE_WAIT_IDS];
        uint32_t n = 0;
        sched_job_wait(job, got, ENGINE_WAIT_IDS, &n, &info, -1);
        if (info.admitted && !started) {
            started = true;
            rc = emit_start(&c, n_prompt, (long)info.reused);
        }
        for (uint32_t i = 0; !rc && i < n && !c.stop.hit; i++)
            rc = emit_token(&c, got[i], err);
        if (!rc && c.stop.hit && info.end == SCHED_RUNNING)
            sched_job_stop(job);
        if (rc || info.end != SCHED_RUNNING)
            break;
    }
    if (!rc && info.status) {
        rc = loco_err_set(err, info.status, "%s", sched_job_error(job));
    } else if (!rc) {
        chat_stop stop = info.end == SCHED_END_TURN ? CHAT_STOP_END_TURN : CHAT_STOP_MAX_TOKENS;
        rc = emit_end(&c, stop, n_prompt, c.n_out, (long)info.reused);
    }
    sched_job_free(job); /* ends it first when the caller's callback failed */
    sampler_free(smp);
    constrain_free(con);
    chat_qwen_parser_free(c.parser);
    buf_release(&c.stop.held);
    buf_release(&c.piece);
    buf_release(&c.text);
    return rc;
}

static loco_status engine_complete(backend *base, const chat_request *req,
                                   const backend_call *call, chat_event_fn cb, void *ctx,
                                   backend_result *out, loco_err *err)
{
    return backend_engine_run(base, req, NULL, call, cb, ctx, out, err);
}

static const backend_ops engine_ops;

loco_status backend_engine_run(backend *base, const chat_request *req,
                               const backend_engine_run_opts *ro, const backend_call *call,
                               chat_event_fn cb, void *ctx, backend_result *out, loco_err *err)
{
    if (!base || base->ops != &engine_ops)
        return loco_err_set(err, LOCO_ERR_INVALID, "not an engine backend");
    backend_engine *b = (backend_engine *)base;
    backend_result local;
    if (!out)
        out = &local;
    memset(out, 0, sizeof(*out));
    backend_call none;
    if (!call) {
        memset(&none, 0, sizeof(none));
        call = &none;
    }
    tok_ids ids;
    tok_ids_init(&ids, ENGINE_MAX_PROMPT_TOKENS);
    loco_status rc = LOCO_OK;
    bool parse = !(ro && ro->no_parse);
    if (ro && ro->prompt_ids) {
        for (size_t i = 0; !rc && i < ro->n_prompt_ids; i++)
            rc = tok_ids_push(&ids, ro->prompt_ids[i]);
        if (rc)
            loco_err_set(err, rc, "the prompt ids: %s", loco_status_str(rc));
    } else if (ro && ro->raw_prompt) {
        rc = tok_encode(b->t, ro->raw_prompt, strlen(ro->raw_prompt), TOK_PARSE_SPECIAL, &ids,
                        err);
    } else {
        rc = engine_prompt(b, req, &ids, err);
    }
    if (!rc && ro && ro->on_prompt)
        rc = ro->on_prompt(ro->hook_ctx, ids.ids, ids.len);
    if (!rc)
        rc = engine_run(b, &ids, req, parse, ro, call, cb, ctx, out, err);
    tok_ids_release(&ids);
    return rc;
}

size_t backend_engine_vocab(backend *base)
{
    if (!base || base->ops != &engine_ops)
        return 0;
    return ((backend_engine *)base)->m->hp.n_vocab;
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
    sched_free(b->sched);
    qwen3_ctx_free(b->ctx);
    tpool_free(b->pool);
    constrain_vocab_free(b->cvocab);
    tok_free(b->t);
    qwen3_free(b->m);
    gguf_close(b->g);
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
    qwen3_ctx_opts co;
    memset(&co, 0, sizeof(co));
    co.n_ctx = b->n_ctx;
    co.n_batch = b->n_batch;
    co.n_seq = (uint32_t)b->parallel;
    co.cache_bytes = (uint64_t)b->cache_mb << 20;
    co.pool = b->pool;
    co.parity = o->parity;
    co.kv_type = b->kv_type;
    rc = qwen3_ctx_new_opts(b->m, &co, &b->ctx, err);
    if (rc)
        return rc;
    sched_opts so;
    memset(&so, 0, sizeof(so));
    so.parallel = b->parallel;
    so.queue_max = o->queue_max;
    so.prefill_chunk = o->prefill_chunk;
    rc = sched_new(b->ctx, &so, &b->sched, err);
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
    b->model_name = model_name(b->g, o->model_path);
    b->base.url = strdup(o->model_path);
    if (o->system_prompt)
        b->system_prompt = strdup(o->system_prompt);
    if (!b->model_name || !b->base.url || (o->system_prompt && !b->system_prompt))
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
    b->parallel = o->parallel > 0 ? o->parallel : ENGINE_DEFAULT_PARALLEL;
    b->cache_mb = o->cache_mb > 0 ? o->cache_mb : ENGINE_DEFAULT_CACHE_MB;
    b->kv_type = QWEN3_KV_F16;
    if (o->kv_type && !qwen3_kv_type_from_name(o->kv_type, &b->kv_type)) {
        free(b);
        return loco_err_set(err, LOCO_ERR_INVALID, "unknown KV cache type '%s' (%s)", o->kv_type,
                            QWEN3_KV_TYPE_NAMES);
    }
    if (b->parallel > ENGINE_MAX_PARALLEL) {
        int n = b->parallel;
        free(b);
        return loco_err_set(err, LOCO_ERR_INVALID, "engine: %d parallel sequences are too many", n);
    }
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
    sched_stats st;
    sched_get_stats(b->sched, &st);
    memset(out, 0, sizeof(*out));
    out->queue_len = st.queue_len;
    out->active = st.active;
    out->parallel = st.parallel;
    out->requests = st.requests;
    out->busy = st.busy;
    out->cancelled = st.cancelled;
    out->prompt_tokens = st.prompt_tokens;
    out->cache_hit_tokens = st.cache_hit_tokens;
    out->gen_tokens = st.gen_tokens;
    out->prompt_seconds = st.prompt_seconds;
    out->gen_seconds = st.gen_seconds;
    out->kv_bytes = st.kv_bytes;
    out->cache_bytes = st.cache_bytes;
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
    backend_engine_run_opts ro;
    memset(&ro, 0, sizeof(ro));
    ro.raw_prompt = prompt ? prompt : "";
    ro.no_parse = true;
    return backend_engine_run(base, params, &ro, call, cb, ctx, out, err);
}
