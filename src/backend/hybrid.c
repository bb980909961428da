/* hybrid.c: the hybrid backend, the one implementation of hold, retry and fall back: local
 * model first, cloud fallback by the gateway's rules (backend/policy.h). The local answer is
 * held until it is known to be usable (its end, or for a streaming caller its first good tool
 * call or enough prose), each tool call is fitted to the caller's tools by a hook (the
 * gateway's reconciliation), and a broken answer is retried once or moved to the cloud
 * unseen. `loco serve`'s local route and `loco ask --backend hybrid` both run through it. */
#include "base/common.h"

#include <stdatomic.h>

#include "backend/backend.h"
#include "backend/policy.h"
#include "base/log.h"
#include "base/str.h"

/* Limit on a held local answer (text and tool arguments). */
#define HYBRID_ANSWER_MAX ((size_t)64 << 20)
/* Limit on one tool call's arguments (and on its mapped form). */
#define HYBRID_CALL_MAX ((size_t)1 << 20)

typedef struct {
    backend base;
    backend *local; /* borrowed */
    backend *cloud; /* borrowed; NULL: the caller falls back itself */
    long max_local_turns;
    long local_ctx;
    char *fallback_model;
    char *system_prompt;
    bool exact_count;
    bool fallback_available;
    atomic_bool force_cloud;
} backend_hybrid;

/* One local attempt: the caller's side, the held answer, the tool call being assembled, and
 * why the attempt is unusable when it is. */
typedef struct {
    const chat_request *req;
    const backend_call *call; /* the caller's */
    chat_event_fn cb;         /* the caller */
    void *ctx;
    backend_result *out;
    bool committed;           /* events now go to the caller as they come */
    chat_answer held;         /* the answer so far while not committed */
    bool ended;
    int calls_out;            /* tool calls passed on (held or live) */
    char *call_id;            /* the call being assembled */
    char *call_name;
    buf call_args;
    buf mapped;
    const char *unusable;     /* "bad_tool_call", "unmappable_tool", "local_error" or NULL */
    char why[200];
    bool aborted;             /* we stopped the local backend (unusable) */
    loco_status caller_rc;    /* the caller's callback stopped it with this */
    double t_first;
} attempt;

static void attempt_init(attempt *a, const chat_request *req, const backend_call *call,
                         chat_event_fn cb, void *ctx, backend_result *out)
{
    memset(a, 0, sizeof(*a));
    a->req = req;
    a->call = call;
    a->cb = cb;
    a->ctx = ctx;
    a->out = out;
    chat_answer_init(&a->held, HYBRID_ANSWER_MAX);
    buf_init(&a->call_args, HYBRID_CALL_MAX);
    buf_init(&a->mapped, HYBRID_CALL_MAX);
}

static void attempt_release(attempt *a)
{
    chat_answer_release(&a->held);
    free(a->call_id);
    free(a->call_name);
    buf_release(&a->call_args);
    buf_release(&a->mapped);
}

/* A stop status of our own making: the attempt's `unusable` says why. */
#define HYBRID_ABORT LOCO_ERR_INVALID

static loco_status unusable(attempt *a, const char *kind, const char *why)
{
    a->unusable = kind;
    a->aborted = true;
    snprintf(a->why, sizeof(a->why), "%s", why);
    return HYBRID_ABORT;
}

/* To the caller; remembers a stop of the caller's own (a client that went away). */
static loco_status to_caller(attempt *a, const chat_event *ev)
{
    a->out->got_events = true;
    loco_status rc = a->cb(a->ctx, ev);
    if (rc && !a->caller_rc)
        a->caller_rc = rc;
    return rc;
}

/* Passes an event on: to the caller when committed, else into the held answer. */
static loco_status pass(attempt *a, const chat_event *ev)
{
    if (a->committed)
        return to_caller(a, ev);
    return chat_answer_on_event(&a->held, ev);
}

static loco_status replay_open_event(void *ctx, const chat_event *ev)
{
    attempt *a = ctx;
    if (ev->type == CHAT_EV_MESSAGE_END)
        return LOCO_OK; /* the answer goes on live */
    return to_caller(a, ev);
}

/* Commits: what was held goes to the caller (chat_answer_replay without its end, which has
 * not come yet) and every later event goes straight through. */
static loco_status commit(attempt *a)
{
    if (a->committed)
        return LOCO_OK;
    a->committed = true;
    return chat_answer_replay(&a->held, replay_open_event, a);
}

static loco_status pass_note(attempt *a, const char *note)
{
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    chat_usage_init(&ev.usage);
    ev.type = CHAT_EV_TEXT_DELTA;
    ev.text = note;
    ev.len = strlen(note);
    return pass(a, &ev);
}

/* Without a fit hook: a call to a tool the request does not offer cannot be run. */
static backend_fit default_fit(const chat_request *req, const char *name, char *why,
                               size_t why_size)
{
    if (req->n_tools && !chat_request_find_tool(req, name)) {
        snprintf(why, why_size, "the model called '%s', which is not offered", name);
        return BACKEND_FIT_REJECT;
    }
    return BACKEND_FIT_KEEP;
}

/* A whole tool call arrived: fit it to the caller's tools, check tool_choice, pass it on. */
static loco_status finish_call(attempt *a)
{
    const chat_request *r = a->req;
    const char *name = a->call_name ? a->call_name : "";
    const char *out_name = name;
    char why[200] = "";
    buf_reset(&a->mapped);
    backend_fit fit =
        a->call->fit_call
            ? a->call->fit_call(a->call->fit_ctx, r, name, buf_str(&a->call_args), &out_name,
                                &a->mapped, why, sizeof(why))
            : default_fit(r, name, why, sizeof(why));
    if (fit == BACKEND_FIT_REJECT || !out_name) {
        if (!a->committed)
            return unusable(a, "unmappable_tool", why);
        char note[300];
        snprintf(note, sizeof(note), "\n[loco: a tool call was not run: %s]\n", why);
        return pass_note(a, note);
    }
    if (!a->committed && (r->tool_choice == CHAT_TOOL_CHOICE_NONE ||
                          (r->tool_choice == CHAT_TOOL_CHOICE_TOOL && r->tool_choice_name &&
                           strcmp(out_name, r->tool_choice_name)))) {
        snprintf(why, sizeof(why), "tool_choice forbids a call to %s", out_name);
        return unusable(a, "unmappable_tool", why);
    }
    const buf *args = fit == BACKEND_FIT_MAPPED ? &a->mapped : &a->call_args;
    char id[40];
    if (!a->call_id)
        str_random_id("toolu_", id, sizeof(id));
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    chat_usage_init(&ev.usage);
    ev.type = CHAT_EV_TOOL_CALL_START;
    ev.index = a->calls_out;
    ev.id = a->call_id ? a->call_id : id;
    ev.name = out_name;
    loco_status rc = pass(a, &ev);
    if (!rc && args->len) {
        ev.type = CHAT_EV_TOOL_ARGS_DELTA;
        ev.text = args->data;
        ev.len = args->len;
        rc = pass(a, &ev);
    }
    if (!rc) {
        ev.type = CHAT_EV_TOOL_CALL_END;
        ev.text = NULL;
        ev.len = 0;
        rc = pass(a, &ev);
    }
    a->calls_out++;
    if (!rc && a->call->stream)
        rc = commit(a); /* a streaming answer is usable from its first good tool call */
    return rc;
}

static bool cancelled(const backend_call *call)
{
    return call->cancel && __atomic_load_n(call->cancel, __ATOMIC_ACQUIRE);
}

static loco_status attempt_on_event(void *ctx, const chat_event *ev)
{
    attempt *a = ctx;
    if (cancelled(a->call))
        return LOCO_ERR_CANCELLED;
    if (!a->t_first && (ev->type == CHAT_EV_TEXT_DELTA || ev->type == CHAT_EV_TOOL_CALL_START))
        a->t_first = clock_now_ms();
    switch (ev->type) {
    case CHAT_EV_MESSAGE_START:
        return pass(a, ev);
    case CHAT_EV_THINKING_DELTA:
    case CHAT_EV_PING:
        return LOCO_OK; /* the local model's reasoning is not part of the answer */
    case CHAT_EV_TEXT_DELTA: {
        loco_status rc = pass(a, ev);
        if (!rc && !a->committed && a->call->stream && a->held.bytes >= HYBRID_COMMIT_TEXT_BYTES)
            rc = commit(a); /* a prose answer: stream it from here on */
        return rc;
    }
    case CHAT_EV_TOOL_CALL_START:
        free(a->call_name);
        free(a->call_id);
        a->call_name = ev->name ? strdup(ev->name) : NULL;
        a->call_id = ev->id ? strdup(ev->id) : NULL;
        buf_reset(&a->call_args);
        if ((ev->name && !a->call_name) || (ev->id && !a->call_id))
            return LOCO_ERR_NOMEM;
        return LOCO_OK;
    case CHAT_EV_TOOL_ARGS_DELTA:
        return buf_append(&a->call_args, ev->text, ev->len);
    case CHAT_EV_TOOL_CALL_END:
        return finish_call(a);
    case CHAT_EV_MESSAGE_END: {
        const chat_request *r = a->req;
        if (!a->calls_out && !a->committed &&
            (r->tool_choice == CHAT_TOOL_CHOICE_ANY || r->tool_choice == CHAT_TOOL_CHOICE_TOOL))
            return unusable(a, "unmappable_tool", "tool_choice requires a tool call and none came");
        a->ended = true;
        chat_event end = *ev;
        if (a->calls_out > 0 && end.stop != CHAT_STOP_MAX_TOKENS)
            end.stop = CHAT_STOP_TOOL_USE;
        else if (a->calls_out == 0 && end.stop == CHAT_STOP_TOOL_USE)
            end.stop = CHAT_STOP_END_TURN;
        return pass(a, &end);
    }
    case CHAT_EV_ERROR: {
        char why[200];
        snprintf(why, sizeof(why), "local model error: %.*s",
                 (int)(ev->len > 150 ? 150 : ev->len), ev->text ? ev->text : "");
        return unusable(a, "local_error", why);
    }
    }
    return LOCO_OK;
}

static loco_status attempt_on_bad_call(void *ctx, const char *raw, size_t n, const char *reason)
{
    attempt *a = ctx;
    if (a->call->on_bad_call) { /* the caller hears of it (to log it) even though we retry */
        loco_status rc = a->call->on_bad_call(a->call->bad_call_ctx, raw, n, reason);
        if (rc)
            return rc;
    }
    if (a->committed) {
        char note[300];
        snprintf(note, sizeof(note),
                 "\n[loco: a tool call could not be parsed and was not run: %s]\n", reason);
        return pass_note(a, note);
    }
    char why[200];
    snprintf(why, sizeof(why), "unparseable tool call: %s", reason);
    return unusable(a, "bad_tool_call", why);
}

/* What one local attempt came to. */
typedef enum {
    TRY_SERVED = 0, /* the answer reached the caller */
    TRY_RETURN,     /* return *out_rc as it is (cancelled, busy, caller stop, failed midway) */
    TRY_AGAIN,      /* unusable: another attempt may do better */
    TRY_FALLBACK,   /* the local side cannot serve: *out_reason */
} try_outcome;

static try_outcome try_once(backend_hybrid *h, const chat_request *req, const backend_call *call,
                            chat_event_fn cb, void *ctx, backend_result *out,
                            const char **out_reason, loco_status *out_rc, loco_err *err)
{
    attempt a;
    attempt_init(&a, req, call, cb, ctx, out);
    backend_call lc = *call;
    lc.on_bad_call = attempt_on_bad_call;
    lc.bad_call_ctx = &a;
    backend_result res;
    loco_err_clear(err);
    loco_status rc = backend_complete(h->local, req, &lc, attempt_on_event, &a, &res, err);
    out->bad_calls += res.bad_calls;
    out->repaired_calls += res.repaired_calls;
    try_outcome t;
    if (rc == LOCO_OK && a.ended) {
        out->t_first_token = a.t_first;
        if (!a.committed)
            rc = chat_answer_replay(&a.held, cb, ctx);
        out->got_events = true;
        *out_rc = rc;
        t = TRY_SERVED;
    } else if (a.caller_rc) {
        *out_rc = a.caller_rc; /* the caller stopped it (a client that went away) */
        t = TRY_RETURN;
    } else if (rc == LOCO_ERR_CANCELLED || cancelled(call)) {
        *out_rc = loco_err_set(err, LOCO_ERR_CANCELLED, "cancelled");
        t = TRY_RETURN;
    } else if (a.committed) {
        /* already streaming: it cannot move anywhere else any more */
        out->t_first_token = a.t_first;
        *out_rc = rc ? rc : LOCO_ERR_UPSTREAM;
        if (a.why[0])
            loco_err_set(err, *out_rc, "the local answer failed midway: %s", a.why);
        else if (!rc)
            loco_err_set(err, *out_rc, "the local answer stopped without an end");
        t = TRY_RETURN;
    } else if (rc == LOCO_ERR_BUSY) {
        *out_rc = rc;
        t = TRY_RETURN;
    } else if (a.unusable && strcmp(a.unusable, "local_error")) {
        *out_reason = a.unusable;
        loco_err_set(err, HYBRID_ABORT, "local answer unusable: %s", a.why);
        t = TRY_AGAIN;
    } else if (a.unusable) {
        *out_reason = a.unusable;
        loco_err_set(err, LOCO_ERR_UPSTREAM, "%s", a.why);
        t = TRY_FALLBACK;
    } else if (rc == LOCO_OK) {
        *out_reason = "bad_tool_call";
        loco_err_set(err, HYBRID_ABORT, "the local answer ended without finishing");
        t = TRY_AGAIN;
    } else {
        *out_reason = policy_failure_reason(rc);
        if (rc == LOCO_ERR_OVERFLOW) {
            out->context_overflow = true;
            out->prompt_tokens = res.prompt_tokens;
            out->context_tokens = res.context_tokens;
        }
        out->http_status = res.http_status;
        *out_rc = rc;
        t = TRY_FALLBACK;
    }
    attempt_release(&a);
    return t;
}

static loco_status to_cloud(backend_hybrid *h, const chat_request *req, const backend_call *call,
                            chat_event_fn cb, void *ctx, backend_result *out, const char *reason,
                            loco_err *err)
{
    char local_why[LOCO_ERR_MSG_MAX];
    snprintf(local_why, sizeof(local_why), "%s", err && err->code ? err->msg : "");
    loco_err_clear(err);
    backend_call cc = *call;
    if (h->fallback_model)
        cc.model = h->fallback_model;
    backend_result res;
    loco_status rc = backend_complete(h->cloud, req, &cc, cb, ctx, &res, err);
    size_t bad = out->bad_calls, repaired = out->repaired_calls, retries = out->retries;
    *out = res;
    out->bad_calls += bad;
    out->repaired_calls += repaired;
    out->retries = retries;
    out->route = "fallback";
    out->reason = reason;
    if (rc && rc != LOCO_ERR_CANCELLED)
        loco_err_wrap(err, "cloud fallback (%s%s%s)", reason, local_why[0] ? ": " : "",
                      local_why);
    return rc;
}

/* The local side cannot serve: the cloud, or (no cloud of ours) back to the caller. */
static loco_status fall_back(backend_hybrid *h, const chat_request *req,
                             const backend_call *call, chat_event_fn cb, void *ctx,
                             backend_result *out, const char *reason, loco_status rc,
                             loco_err *err)
{
    if (h->cloud)
        return to_cloud(h, req, call, cb, ctx, out, reason, err);
    out->route = "fallback";
    out->reason = reason;
    if (!rc)
        rc = HYBRID_ABORT;
    if (!err || !err->code)
        loco_err_set(err, rc, "the local model cannot serve this request (%s)", reason);
    return rc;
}

static loco_status hybrid_complete(backend *base, const chat_request *req,
                                   const backend_call *call, chat_event_fn cb, void *ctx,
                                   backend_result *out, loco_err *err)
{
    backend_hybrid *h = (backend_hybrid *)base;
    loco_err_clear(err);
    const char *reason = NULL;
    long n = 0;
    if (atomic_load(&h->force_cloud) && h->cloud)
        return to_cloud(h, req, call, cb, ctx, out, "takeover", err);
    policy_config pc = {
        .max_local_turns = h->max_local_turns,
        .local_ctx = h->local_ctx,
        .system_prompt = h->system_prompt,
        .cloud_available = h->cloud != NULL || h->fallback_available,
    };
    if (h->exact_count && backend_count_tokens(h->local, req, &pc.prompt_tokens, NULL))
        pc.prompt_tokens = 0; /* cannot tell: the estimate decides */
    reason = policy_local_refusal(req, &pc, &n);
    if (reason) {
        loco_status rc = LOCO_ERR_UNSUPPORTED;
        if (!strcmp(reason, "context")) {
            out->context_overflow = true;
            out->prompt_tokens = n;
            out->context_tokens = h->local_ctx;
            rc = loco_err_set(err, LOCO_ERR_OVERFLOW,
                              "the prompt (%ld tokens) does not fit the local context of %ld",
                              n, h->local_ctx);
        }
        return fall_back(h, req, call, cb, ctx, out, reason, rc, err);
    }
    loco_status rc = LOCO_OK;
    for (int attempt_no = 0; attempt_no < POLICY_LOCAL_ATTEMPTS; attempt_no++) {
        if (attempt_no)
            out->retries++;
        try_outcome t = try_once(h, req, call, cb, ctx, out, &reason, &rc, err);
        if (t == TRY_SERVED || t == TRY_RETURN) {
            out->route = "local";
            if (rc == LOCO_ERR_BUSY)
                out->reason = "busy";
            return rc;
        }
        if (t == TRY_FALLBACK)
            return fall_back(h, req, call, cb, ctx, out, reason, rc, err);
        rc = HYBRID_ABORT; /* TRY_AGAIN */
    }
    return fall_back(h, req, call, cb, ctx, out, reason, rc, err);
}

/* OK when either side can answer (the local side alone without a cloud of ours). */
static loco_status hybrid_health(backend *base, loco_err *err)
{
    backend_hybrid *h = (backend_hybrid *)base;
    loco_status rc = backend_health(h->local, err);
    if (rc == LOCO_OK || !h->cloud)
        return rc;
    return backend_health(h->cloud, err);
}

/* The local model's count: what the turn and context rules are about. */
static loco_status hybrid_count_tokens(backend *base, const chat_request *req, long *out_n,
                                       loco_err *err)
{
    backend_hybrid *h = (backend_hybrid *)base;
    return backend_count_tokens(h->local, req, out_n, err);
}

static void hybrid_free(backend *base)
{
    backend_hybrid *h = (backend_hybrid *)base;
    free(h->fallback_model);
    free(h->system_prompt);
    free(h->base.url);
    free(h);
}

static const backend_ops hybrid_ops = {
    .kind = "hybrid",
    .complete = hybrid_complete,
    .health = hybrid_health,
    .count_tokens = hybrid_count_tokens,
    .free = hybrid_free,
};

loco_status backend_hybrid_new(backend *local, backend *cloud, const backend_hybrid_opts *o,
                               backend **out, loco_err *err)
{
    if (!local)
        return loco_err_set(err, LOCO_ERR_INVALID, "the hybrid backend needs a local backend");
    backend_hybrid *h = calloc(1, sizeof(*h));
    if (!h)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    h->base.ops = &hybrid_ops;
    h->local = local;
    h->cloud = cloud;
    atomic_init(&h->force_cloud, false);
    h->max_local_turns = o && o->max_local_turns > 0 ? o->max_local_turns
                                                     : POLICY_DEFAULT_MAX_LOCAL_TURNS;
    h->local_ctx = o && o->local_ctx > 0 ? o->local_ctx : POLICY_DEFAULT_LOCAL_CTX;
    h->exact_count = o && o->exact_count;
    h->fallback_available = o && o->fallback_available;
    const char *cu = cloud ? (cloud->url ? cloud->url : "cloud") : "caller";
    size_t n = strlen(local->url ? local->url : "") + strlen(cu) + 16;
    h->base.url = malloc(n);
    if (h->base.url)
        snprintf(h->base.url, n, "hybrid(%s, %s)", local->url ? local->url : "local", cu);
    bool ok = h->base.url != NULL;
    if (ok && o && o->fallback_model) {
        h->fallback_model = strdup(o->fallback_model);
        ok = h->fallback_model != NULL;
    }
    if (ok && o && o->system_prompt) {
        h->system_prompt = strdup(o->system_prompt);
        ok = h->system_prompt != NULL;
    }
    if (!ok) {
        hybrid_free(&h->base);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    *out = &h->base;
    return LOCO_OK;
}

loco_status backend_hybrid_force_cloud(backend *b)
{
    if (!b || b->ops != &hybrid_ops)
        return LOCO_ERR_INVALID;
    atomic_store(&((backend_hybrid *)b)->force_cloud, true);
    return LOCO_OK;
}
