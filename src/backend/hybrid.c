/* hybrid.c: the hybrid backend: local model first, cloud fallback by the gateway's rules
 * (backend/policy.h). The local answer is held until it is complete and usable, then replayed
 * to the caller, so a broken answer can be retried once or moved to the cloud unseen. */
#include "base/common.h"

#include <stdatomic.h>

#include "backend/backend.h"
#include "backend/policy.h"

/* Limit on a held local answer (text and tool arguments). */
#define HYBRID_ANSWER_MAX ((size_t)64 << 20)

typedef struct {
    backend base;
    backend *local; /* borrowed */
    backend *cloud; /* borrowed */
    long max_local_turns;
    long local_ctx;
    char *fallback_model;
    char *system_prompt;
    atomic_bool force_cloud;
} backend_hybrid;

/* One local attempt: events held in an answer, and why it is unusable if it is. */
typedef struct {
    const chat_request *req;
    const backend_call *call;
    chat_answer held;
    bool ended;
    size_t calls;
    const char *unusable; /* "bad_tool_call", "unmappable_tool", "local_error" or NULL */
    char why[200];
} hybrid_attempt;

static void attempt_init(hybrid_attempt *a, const chat_request *req, const backend_call *call)
{
    memset(a, 0, sizeof(*a));
    a->req = req;
    a->call = call;
    chat_answer_init(&a->held, HYBRID_ANSWER_MAX);
}

/* A stop status of our own making: the attempt's `unusable` says why. */
#define HYBRID_ABORT LOCO_ERR_INVALID

static loco_status unusable(hybrid_attempt *a, const char *kind, const char *why)
{
    a->unusable = kind;
    snprintf(a->why, sizeof(a->why), "%s", why);
    return HYBRID_ABORT;
}

/* A tool call the caller cannot run: not among the offered tools, or against tool_choice. */
static loco_status check_call(hybrid_attempt *a, const char *name)
{
    const chat_request *r = a->req;
    char why[200];
    if (r->n_tools && !chat_request_find_tool(r, name)) {
        snprintf(why, sizeof(why), "the model called '%s', which is not offered", name);
        return unusable(a, "unmappable_tool", why);
    }
    if (r->tool_choice == CHAT_TOOL_CHOICE_NONE ||
        (r->tool_choice == CHAT_TOOL_CHOICE_TOOL && r->tool_choice_name &&
         strcmp(name, r->tool_choice_name))) {
        snprintf(why, sizeof(why), "tool_choice forbids a call to %s", name);
        return unusable(a, "unmappable_tool", why);
    }
    return LOCO_OK;
}

static loco_status attempt_on_event(void *ctx, const chat_event *ev)
{
    hybrid_attempt *a = ctx;
    if (ev->type == CHAT_EV_ERROR) {
        char why[200];
        snprintf(why, sizeof(why), "local model error: %.*s",
                 (int)(ev->len > 150 ? 150 : ev->len), ev->text ? ev->text : "");
        return unusable(a, "local_error", why);
    }
    if (ev->type == CHAT_EV_TOOL_CALL_START) {
        loco_status rc = check_call(a, ev->name ? ev->name : "");
        if (rc)
            return rc;
        a->calls++;
    }
    if (ev->type == CHAT_EV_MESSAGE_END) {
        if (!a->calls && (a->req->tool_choice == CHAT_TOOL_CHOICE_ANY ||
                          a->req->tool_choice == CHAT_TOOL_CHOICE_TOOL))
            return unusable(a, "unmappable_tool",
                            "tool_choice requires a tool call and none came");
        a->ended = true;
    }
    return chat_answer_on_event(&a->held, ev);
}

static loco_status attempt_on_bad_call(void *ctx, const char *raw, size_t n, const char *reason)
{
    hybrid_attempt *a = ctx;
    if (a->call->on_bad_call) { /* the caller hears of it (to log it) even though we retry */
        loco_status rc = a->call->on_bad_call(a->call->bad_call_ctx, raw, n, reason);
        if (rc)
            return rc;
    }
    char why[200];
    snprintf(why, sizeof(why), "unparseable tool call: %s", reason);
    return unusable(a, "bad_tool_call", why);
}

static bool cancelled(const backend_call *call)
{
    return call->cancel && __atomic_load_n(call->cancel, __ATOMIC_ACQUIRE);
}

/* Tries the local model up to POLICY_LOCAL_ATTEMPTS times. LOCO_OK with the usable answer in
 * *held (moved out of the attempt), or the status to return (cancellation), or
 * HYBRID_ABORT with *out_reason set: go to the cloud. */
static loco_status try_local(backend_hybrid *h, const chat_request *req, const backend_call *call,
                             chat_answer *held, backend_result *out, const char **out_reason,
                             loco_err *err)
{
    for (int attempt = 0; attempt < POLICY_LOCAL_ATTEMPTS; attempt++) {
        hybrid_attempt a;
        attempt_init(&a, req, call);
        backend_call lc = *call;
        lc.on_bad_call = attempt_on_bad_call;
        lc.bad_call_ctx = &a;
        backend_result res;
        loco_status rc = backend_complete(h->local, req, &lc, attempt_on_event, &a, &res, err);
        out->bad_calls += res.bad_calls;
        out->repaired_calls += res.repaired_calls;
        if (rc == LOCO_OK && a.ended) {
            *held = a.held;
            return LOCO_OK;
        }
        chat_answer_release(&a.held);
        if (rc == LOCO_ERR_CANCELLED || cancelled(call))
            return loco_err_set(err, LOCO_ERR_CANCELLED, "cancelled");
        if (a.unusable && strcmp(a.unusable, "local_error")) {
            *out_reason = a.unusable; /* retried once, then the cloud */
            loco_err_set(err, LOCO_ERR_INVALID, "local answer unusable: %s", a.why);
            continue;
        }
        if (a.unusable) {
            *out_reason = a.unusable;
            loco_err_set(err, LOCO_ERR_UPSTREAM, "%s", a.why);
        } else if (rc == LOCO_OK) {
            *out_reason = "bad_tool_call"; /* the answer stopped without an end */
            loco_err_set(err, LOCO_ERR_UPSTREAM, "the local answer ended without finishing");
            continue;
        } else {
            *out_reason = policy_failure_reason(rc);
        }
        return HYBRID_ABORT;
    }
    return HYBRID_ABORT;
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
    size_t bad = out->bad_calls, repaired = out->repaired_calls;
    *out = res;
    out->bad_calls += bad;
    out->repaired_calls += repaired;
    out->route = "fallback";
    out->reason = reason;
    if (rc && rc != LOCO_ERR_CANCELLED)
        loco_err_wrap(err, "cloud fallback (%s%s%s)", reason, local_why[0] ? ": " : "",
                      local_why);
    return rc;
}

static loco_status hybrid_complete(backend *base, const chat_request *req,
                                   const backend_call *call, chat_event_fn cb, void *ctx,
                                   backend_result *out, loco_err *err)
{
    backend_hybrid *h = (backend_hybrid *)base;
    loco_err_clear(err);
    const char *reason = NULL;
    if (atomic_load(&h->force_cloud)) {
        reason = "takeover";
    } else {
        policy_config pc = {
            .max_local_turns = h->max_local_turns,
            .local_ctx = h->local_ctx,
            .system_prompt = h->system_prompt,
            .cloud_available = true,
        };
        reason = policy_local_refusal(req, &pc, NULL);
    }
    if (reason)
        return to_cloud(h, req, call, cb, ctx, out, reason, err);
    chat_answer held;
    loco_status rc = try_local(h, req, call, &held, out, &reason, err);
    if (rc == HYBRID_ABORT)
        return to_cloud(h, req, call, cb, ctx, out, reason, err);
    if (rc)
        return rc;
    out->route = "local";
    out->got_events = true;
    rc = chat_answer_replay(&held, cb, ctx);
    chat_answer_release(&held);
    return rc;
}

static loco_status hybrid_health(backend *base, loco_err *err)
{
    backend_hybrid *h = (backend_hybrid *)base;
    if (backend_health(h->local, err) == LOCO_OK)
        return LOCO_OK;
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
    if (!local || !cloud)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "the hybrid backend needs a local and a cloud backend");
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
    size_t n = strlen(local->url ? local->url : "") + strlen(cloud->url ? cloud->url : "") + 16;
    h->base.url = malloc(n);
    if (h->base.url)
        snprintf(h->base.url, n, "hybrid(%s, %s)", local->url ? local->url : "local",
                 cloud->url ? cloud->url : "cloud");
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
