/* route_local.c: the local route. The request is put on the prompt diet and given the
 * training prompt, then goes through the hybrid backend (backend/hybrid.c: the one
 * implementation of the refusals, the hold, the retry and the fallback decision), with the
 * gateway's tool reconciliation as its fit hook; the answer streams to the client through a
 * gw_sink. When the hybrid reports a fallback, nothing was sent and serve_request takes the
 * request to the cloud. Also the direct route (the local backends as the client sent it). */
#include "base/common.h"

#include "backend/policy.h"
#include "base/log.h"
#include "base/str.h"
#include "gateway/diet.h"
#include "gateway/gateway_int.h"
#include "gateway/reconcile.h"

const char *gw_cache_key(const http_request *hreq)
{
    const char *k = http_request_header(hreq, "x-claude-code-agent-id");
    if (k && *k)
        return k;
    k = http_request_header(hreq, "x-claude-code-session-id");
    return k && *k ? k : NULL;
}

chat_request *gw_local_request(gateway *gw, const chat_request *req, const char *id)
{
    chat_request *lreq = NULL;
    diet_report rep;
    loco_err err;
    loco_err_clear(&err);
    if (diet_apply(req, gw->system_prompt, gw->cfg.keep_reminders, &lreq, &rep, &err)) {
        log_msg(gw->cfg.log, LOG_WARN, "req=%s %s", id, err.msg);
        return NULL;
    }
    if (!gw->cfg.keep_reminders) {
        size_t dropped = 0;
        for (int k = 0; k < DIET_KIND_COUNT; k++)
            dropped += rep.dropped[k];
        if (dropped)
            log_msg(gw->cfg.log, LOG_DEBUG,
                    "req=%s prompt diet: %zu reminders dropped (%zu bytes), %zu kept%s%s", id,
                    dropped, rep.bytes_dropped, rep.kept, rep.cwd[0] ? ", cwd " : "", rep.cwd);
    }
    return lreq;
}

/* The fit hook: the gateway's tool reconciliation, counted in the metrics. */
static backend_fit fit_call(void *ctx, const chat_request *req, const char *name,
                            const char *args_json, const char **out_name, buf *out_args,
                            char *why, size_t why_size)
{
    exchange *ex = ctx;
    reconcile_action a =
        reconcile_tool_call(req, name, args_json, out_name, out_args, why, why_size);
    metrics_tool_call(ex->gw->metrics, false, a == RECONCILE_UNMAPPABLE, a == RECONCILE_MAPPED);
    if (a == RECONCILE_MAPPED)
        log_msg(ex->gw->cfg.log, LOG_DEBUG, "req=%s tool %s mapped to %s", ex->id, name,
                *out_name);
    else if (a == RECONCILE_UNMAPPABLE)
        log_msg(ex->gw->cfg.log, LOG_WARN, "req=%s tool call not usable: %s", ex->id, why);
    return a == RECONCILE_KEEP ? BACKEND_FIT_KEEP
           : a == RECONCILE_MAPPED ? BACKEND_FIT_MAPPED
                                   : BACKEND_FIT_REJECT;
}

static loco_status on_bad_call(void *ctx, const char *raw, size_t n, const char *reason)
{
    exchange *ex = ctx;
    metrics_tool_call(ex->gw->metrics, false, true, false);
    log_msg(ex->gw->cfg.log, LOG_WARN, "req=%s unparseable tool call (%s): %.*s", ex->id,
            reason, (int)(n > 200 ? 200 : n), raw);
    return LOCO_OK;
}

static bool gone(exchange *ex, loco_status rc)
{
    return rc == LOCO_ERR_CANCELLED || __atomic_load_n(&ex->cancel, __ATOMIC_ACQUIRE);
}

local_outcome gw_local_route(exchange *ex, const chat_request *req)
{
    gateway *gw = ex->gw;
    ex->route = "local";
    chat_request *lreq = gw_local_request(gw, req, ex->id);
    if (!lreq) {
        ex_send_error(ex, 500, "api_error", "cannot prepare the request for the local model");
        return LOCAL_DONE;
    }
    ex->est_input_tokens = policy_estimate_tokens(NULL, lreq);
    gw_sink sink;
    gw_sink_init(&sink, ex);
    backend_call call;
    memset(&call, 0, sizeof(call));
    call.cancel = &ex->cancel;
    call.idle_timeout_ms = gw->cfg.local_idle_timeout_ms;
    call.stream = ex->stream;
    call.fit_call = fit_call;
    call.fit_ctx = ex;
    call.on_bad_call = on_bad_call;
    call.bad_call_ctx = ex;
    call.cache_key = gw_cache_key(ex->hreq);
    backend_result res;
    loco_err err;
    loco_err_clear(&err);
    ex_start_pinger(ex);
    loco_status rc = backend_complete(gw->hybrid, lreq, &call, gw_sink_event, &sink, &res, &err);
    for (size_t k = 0; k < res.repaired_calls; k++)
        metrics_tool_call(gw->metrics, true, false, false);
    ex->t_first_token = res.t_first_token;
    if (res.retries)
        log_msg(gw->cfg.log, LOG_WARN, "req=%s local answer unusable, tried %zu more time%s",
                ex->id, res.retries, res.retries == 1 ? "" : "s");
    local_outcome out = LOCAL_DONE;
    if (rc == LOCO_OK) {
        gw_sink_finish(&sink);
        ex->answer_ok = true;
    } else if (gone(ex, rc)) {
        snprintf(ex->reason, sizeof(ex->reason), "client_gone");
    } else if (rc == LOCO_ERR_BUSY) {
        ex_send_busy(ex);
    } else if (res.got_events) {
        /* the answer was already streaming: it cannot move to the cloud any more */
        log_msg(gw->cfg.log, LOG_WARN, "req=%s local stream failed midway: %s", ex->id, err.msg);
        ex_send_error(ex, 502, "api_error", "the local model stream failed midway");
    } else {
        const char *reason = res.reason ? res.reason : policy_failure_reason(rc);
        snprintf(ex->reason, sizeof(ex->reason), "%s", reason);
        if (res.context_overflow) {
            ex->overflow_prompt = res.prompt_tokens;
            ex->overflow_ctx = res.context_tokens;
        }
        if (err.msg[0])
            log_msg(gw->cfg.log, LOG_WARN, "req=%s local route: %s", ex->id, err.msg);
        out = LOCAL_FALLBACK;
    }
    gw_sink_release(&sink);
    chat_request_free(lreq);
    return out;
}

void gw_direct_route(exchange *ex, const chat_request *req)
{
    gateway *gw = ex->gw;
    ex->route = "local";
    ex->est_input_tokens = policy_estimate_tokens(NULL, req);
    gw_sink sink;
    gw_sink_init(&sink, ex);
    backend_call call;
    memset(&call, 0, sizeof(call));
    call.cancel = &ex->cancel;
    call.idle_timeout_ms = gw->cfg.local_idle_timeout_ms;
    call.cache_key = gw_cache_key(ex->hreq);
    backend_result res;
    loco_err err;
    loco_err_clear(&err);
    ex_start_pinger(ex);
    loco_status rc = backend_complete(gw->local, req, &call, gw_sink_event, &sink, &res, &err);
    ex->t_first_token = sink.t_first_content;
    if (rc == LOCO_OK) {
        gw_sink_finish(&sink);
        ex->answer_ok = true;
    } else if (gone(ex, rc)) {
        snprintf(ex->reason, sizeof(ex->reason), "client_gone");
    } else if (rc == LOCO_ERR_BUSY) {
        ex_send_busy(ex);
    } else if (rc == LOCO_ERR_OVERFLOW) {
        char msg[200];
        snprintf(msg, sizeof(msg), "the prompt (%ld tokens) exceeds the context (%ld tokens)",
                 res.prompt_tokens, res.context_tokens);
        ex_send_error(ex, 400, "invalid_request_error", msg);
    } else {
        log_msg(gw->cfg.log, LOG_WARN, "req=%s local model failed: %s", ex->id, err.msg);
        int st = rc == LOCO_ERR_TIMEOUT ? 504 : rc == LOCO_ERR_UNAVAILABLE ? 503 : 502;
        ex_send_error(ex, st, "api_error", err.msg[0] ? err.msg : loco_status_str(rc));
    }
    gw_sink_release(&sink);
}
