/* route_local.c: the local route: send the conversation to a pool member in the qwen text
 * dialect, hold the answer until it is known to be usable (first tool call or end), reconcile
 * tool names with what the client offered, retry a broken answer once, and report a fallback
 * reason when the local side cannot serve. Nothing is sent before that decision. */
#include "base/common.h"

#include "backend/policy.h"
#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "gateway/gateway_int.h"
#include "gateway/reconcile.h"

/* A streaming answer that opens with this much text (no tool call yet) is a prose answer:
 * it commits and streams from there on, instead of being held to its end. Shorter text before
 * a tool call ("Let me look.") stays held, so a broken call can still be retried or moved to
 * the cloud. */
#define GW_TEXT_COMMIT_BYTES 256

/* Why an attempt stopped early (returned through the event callback). */
#define SINK_ABORT LOCO_ERR_UNSUPPORTED

typedef struct {
    exchange *ex;
    const chat_request *req;
    bool released;          /* events now go straight to the client */
    chat_answer held;       /* answer so far while not released */
    chat_usage start_usage;
    /* the tool call being assembled */
    bool in_call;
    char *call_name;
    buf call_args;
    int calls_out;          /* tool calls passed on */
    bool unusable;
    bool bad_call;
    char why[200];
    bool ended;
} local_sink;

static void sink_init(local_sink *s, exchange *ex, const chat_request *req)
{
    memset(s, 0, sizeof(*s));
    s->ex = ex;
    s->req = req;
    chat_answer_init(&s->held, GW_ANSWER_MAX);
    chat_usage_init(&s->start_usage);
    buf_init(&s->call_args, 1 << 20);
}

static void sink_release(local_sink *s)
{
    chat_answer_release(&s->held);
    free(s->call_name);
    buf_release(&s->call_args);
}

/* Passes an event on: to the client when released, else into the held answer. */
static loco_status emit(local_sink *s, const chat_event *ev)
{
    if (s->released)
        return ex_event(s->ex, ev);
    return chat_answer_on_event(&s->held, ev);
}

static loco_status emit_start(local_sink *s)
{
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = CHAT_EV_MESSAGE_START;
    ev.id = s->ex->id;
    ev.model = s->ex->model;
    ev.usage = s->start_usage;
    if (ev.usage.input_tokens < 0)
        ev.usage.input_tokens = s->ex->est_input_tokens;
    return ex_event(s->ex, &ev);
}

/* Commits: replays what was held (start + blocks) to the client and streams from now on. */
static loco_status release(local_sink *s)
{
    if (s->released)
        return LOCO_OK;
    s->released = true;
    loco_status rc = emit_start(s);
    int idx = 0;
    for (size_t i = 0; !rc && i < s->held.n_blocks; i++) {
        const chat_answer_block *b = &s->held.blocks[i];
        chat_event ev;
        memset(&ev, 0, sizeof(ev));
        chat_usage_init(&ev.usage);
        if (b->type == CHAT_BLOCK_TEXT) {
            ev.type = CHAT_EV_TEXT_DELTA;
            ev.text = b->text;
            ev.len = b->len;
            rc = ex_event(s->ex, &ev);
        } else if (b->type == CHAT_BLOCK_TOOL_CALL) {
            ev.type = CHAT_EV_TOOL_CALL_START;
            ev.index = idx;
            ev.id = b->id;
            ev.name = b->name;
            rc = ex_event(s->ex, &ev);
            if (!rc) {
                ev.type = CHAT_EV_TOOL_ARGS_DELTA;
                ev.text = b->text;
                ev.len = b->len;
                rc = ex_event(s->ex, &ev);
            }
            if (!rc) {
                ev.type = CHAT_EV_TOOL_CALL_END;
                ev.text = NULL;
                ev.len = 0;
                rc = ex_event(s->ex, &ev);
            }
            idx++;
        }
    }
    return rc;
}

static loco_status emit_note(local_sink *s, const char *note)
{
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    chat_usage_init(&ev.usage);
    ev.type = CHAT_EV_TEXT_DELTA;
    ev.text = note;
    ev.len = strlen(note);
    return emit(s, &ev);
}

/* A whole tool call arrived: reconcile it with the offered tools and pass it on. */
static loco_status finish_call(local_sink *s, const char *id)
{
    const char *name = s->call_name ? s->call_name : "";
    const char *out_name = name;
    buf mapped;
    buf_init(&mapped, 1 << 20);
    char why[200] = "";
    reconcile_action act = reconcile_tool_call(s->req, name, buf_str(&s->call_args), &out_name,
                                               &mapped, why, sizeof(why));
    const char *args = buf_str(&s->call_args);
    size_t args_len = s->call_args.len;
    loco_status rc = LOCO_OK;
    if (act == RECONCILE_UNMAPPABLE) {
        metrics_tool_call(s->ex->gw->metrics, false, true, false);
        if (!s->released) {
            s->unusable = true;
            snprintf(s->why, sizeof(s->why), "%s", why);
            buf_release(&mapped);
            return SINK_ABORT;
        }
        char note[300];
        snprintf(note, sizeof(note), "\n[loco: a tool call was not run: %s]\n", why);
        log_msg(s->ex->gw->cfg.log, LOG_WARN, "req=%s tool call not run after commit: %s",
                s->ex->id, why);
        rc = emit_note(s, note);
        buf_release(&mapped);
        return rc;
    }
    const chat_request *r = s->req;
    if ((r->tool_choice == CHAT_TOOL_CHOICE_NONE ||
         (r->tool_choice == CHAT_TOOL_CHOICE_TOOL && r->tool_choice_name &&
          strcmp(out_name, r->tool_choice_name))) &&
        !s->released) {
        s->unusable = true;
        snprintf(s->why, sizeof(s->why), "tool_choice forbids a call to %s", out_name);
        buf_release(&mapped);
        return SINK_ABORT;
    }
    if (act == RECONCILE_MAPPED) {
        args = buf_str(&mapped);
        args_len = mapped.len;
        log_msg(s->ex->gw->cfg.log, LOG_DEBUG, "req=%s tool %s mapped to %s", s->ex->id, name,
                out_name);
    }
    metrics_tool_call(s->ex->gw->metrics, false, false, act == RECONCILE_MAPPED);
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    chat_usage_init(&ev.usage);
    ev.type = CHAT_EV_TOOL_CALL_START;
    ev.index = s->calls_out;
    ev.id = id;
    ev.name = out_name;
    rc = emit(s, &ev);
    if (!rc) {
        ev.type = CHAT_EV_TOOL_ARGS_DELTA;
        ev.text = args;
        ev.len = args_len;
        rc = emit(s, &ev);
    }
    if (!rc) {
        ev.type = CHAT_EV_TOOL_CALL_END;
        ev.text = NULL;
        ev.len = 0;
        rc = emit(s, &ev);
    }
    s->calls_out++;
    buf_release(&mapped);
    /* a streaming answer commits at its first good tool call */
    if (!rc && s->ex->stream && !s->released)
        rc = release(s);
    return rc;
}

static loco_status sink_on_event(void *ctx, const chat_event *ev)
{
    local_sink *s = ctx;
    if (__atomic_load_n(&s->ex->cancel, __ATOMIC_ACQUIRE))
        return LOCO_ERR_CANCELLED;
    switch (ev->type) {
    case CHAT_EV_MESSAGE_START:
        if (ev->usage.input_tokens >= 0)
            s->start_usage.input_tokens = ev->usage.input_tokens;
        return LOCO_OK;
    case CHAT_EV_THINKING_DELTA:
    case CHAT_EV_PING:
        return LOCO_OK; /* the local model's reasoning is not part of the answer */
    case CHAT_EV_TEXT_DELTA: {
        loco_status rc = emit(s, ev);
        if (!rc && !s->released && s->ex->stream && s->held.bytes >= GW_TEXT_COMMIT_BYTES)
            rc = release(s);
        return rc;
    }
    case CHAT_EV_TOOL_CALL_START:
        free(s->call_name);
        s->call_name = ev->name ? strdup(ev->name) : NULL;
        buf_reset(&s->call_args);
        s->in_call = true;
        return LOCO_OK;
    case CHAT_EV_TOOL_ARGS_DELTA:
        return buf_append(&s->call_args, ev->text, ev->len);
    case CHAT_EV_TOOL_CALL_END: {
        s->in_call = false;
        char id[40];
        str_random_id("toolu_", id, sizeof(id));
        return finish_call(s, id);
    }
    case CHAT_EV_MESSAGE_END: {
        if (s->calls_out == 0 && !s->released &&
            (s->req->tool_choice == CHAT_TOOL_CHOICE_ANY ||
             s->req->tool_choice == CHAT_TOOL_CHOICE_TOOL)) {
            s->unusable = true;
            snprintf(s->why, sizeof(s->why), "tool_choice requires a tool call and none came");
            return SINK_ABORT;
        }
        s->ended = true;
        chat_event end = *ev;
        if (s->calls_out > 0 && end.stop != CHAT_STOP_MAX_TOKENS)
            end.stop = CHAT_STOP_TOOL_USE;
        else if (s->calls_out == 0 && end.stop == CHAT_STOP_TOOL_USE)
            end.stop = CHAT_STOP_END_TURN;
        if (!s->released)
            return chat_answer_on_event(&s->held, &end);
        return ex_event(s->ex, &end);
    }
    case CHAT_EV_ERROR:
        snprintf(s->why, sizeof(s->why), "local model error: %.*s", (int)(ev->len > 150 ? 150 : ev->len),
                 ev->text ? ev->text : "");
        return LOCO_ERR_UPSTREAM;
    }
    return LOCO_OK;
}

static loco_status sink_on_bad_call(void *ctx, const char *raw, size_t n, const char *reason)
{
    local_sink *s = ctx;
    metrics_tool_call(s->ex->gw->metrics, false, true, false);
    log_msg(s->ex->gw->cfg.log, LOG_WARN, "req=%s unparseable tool call (%s): %.*s", s->ex->id,
            reason, (int)(n > 200 ? 200 : n), raw);
    if (!s->released) {
        s->bad_call = true;
        snprintf(s->why, sizeof(s->why), "unparseable tool call: %s", reason);
        return SINK_ABORT;
    }
    char note[300];
    snprintf(note, sizeof(note), "\n[loco: a tool call could not be parsed and was not run: %s]\n",
             reason);
    return emit_note(s, note);
}

local_outcome gw_local_route(exchange *ex, const chat_request *req)
{
    gateway *gw = ex->gw;
    uint64_t tried = 0;
    int attempts_bad = 0;
    bool any_timeout = false;
    bool any_error = false;
    ex->route = "local";
    ex_start_pinger(ex);
    for (;;) {
        int m = pool_acquire(gw->pool, tried);
        if (m < 0)
            break;
        local_sink s;
        sink_init(&s, ex, req);
        backend_call call;
        memset(&call, 0, sizeof(call));
        call.cancel = &ex->cancel;
        call.idle_timeout_ms = gw->cfg.local_idle_timeout_ms;
        call.on_bad_call = sink_on_bad_call;
        call.bad_call_ctx = &s;
        backend_result res;
        loco_err err;
        loco_err_clear(&err);
        loco_status rc = backend_complete(pool_backend(gw->pool, m), req, &call, sink_on_event,
                                          &s, &res, &err);
        bool member_failed = policy_server_failed(rc, res.http_status);
        pool_release(gw->pool, m, member_failed);
        if (res.repaired_calls)
            for (size_t k = 0; k < res.repaired_calls; k++)
                metrics_tool_call(gw->metrics, true, false, false);

        if (rc == LOCO_OK && s.ended) {
            if (!s.released) {
                if (ex->stream) {
                    rc = release(&s);
                    chat_event end;
                    memset(&end, 0, sizeof(end));
                    end.type = CHAT_EV_MESSAGE_END;
                    end.stop = s.held.stop ? s.held.stop : CHAT_STOP_END_TURN;
                    end.usage = s.held.usage;
                    if (!rc)
                        ex_event(ex, &end);
                } else {
                    free(s.held.id);
                    s.held.id = strdup(ex->id);
                    ex_send_answer(ex, &s.held);
                    /* keep the answer for the recording */
                    chat_answer_release(&ex->answer);
                    ex->answer = s.held;
                    chat_answer_init(&s.held, GW_ANSWER_MAX);
                }
            }
            ex->answer_ok = true;
            sink_release(&s);
            return LOCAL_DONE;
        }
        if (rc == LOCO_ERR_CANCELLED || __atomic_load_n(&ex->cancel, __ATOMIC_ACQUIRE)) {
            sink_release(&s);
            snprintf(ex->reason, sizeof(ex->reason), "client_gone");
            return LOCAL_DONE;
        }
        if (s.released) {
            /* the answer was already streaming: it cannot move to the cloud any more */
            log_msg(gw->cfg.log, LOG_WARN, "req=%s local stream failed midway: %s", ex->id,
                    s.why[0] ? s.why : err.msg);
            ex_send_error(ex, 502, "api_error", "the local model stream failed midway");
            sink_release(&s);
            return LOCAL_DONE;
        }
        if (rc == SINK_ABORT || (rc == LOCO_OK && !s.ended)) {
            const char *kind = s.unusable ? "unmappable_tool" : "bad_tool_call";
            log_msg(gw->cfg.log, LOG_WARN, "req=%s local answer unusable (%s), attempt %d",
                    ex->id, s.why, attempts_bad + 1);
            sink_release(&s);
            if (++attempts_bad >= POLICY_LOCAL_ATTEMPTS) {
                snprintf(ex->reason, sizeof(ex->reason), "%s", kind);
                return LOCAL_FALLBACK;
            }
            continue; /* retry once, on the same or another member */
        }
        if (rc == LOCO_ERR_OVERFLOW) {
            ex->overflow_prompt = res.prompt_tokens;
            ex->overflow_ctx = res.context_tokens;
            sink_release(&s);
            snprintf(ex->reason, sizeof(ex->reason), "context_overflow");
            return LOCAL_FALLBACK;
        }
        log_msg(gw->cfg.log, LOG_WARN, "req=%s local backend %s failed: %s", ex->id,
                pool_url(gw->pool, m), err.msg[0] ? err.msg : loco_status_str(rc));
        any_timeout |= rc == LOCO_ERR_TIMEOUT;
        any_error |= rc != LOCO_ERR_UNAVAILABLE && rc != LOCO_ERR_TIMEOUT;
        tried |= (uint64_t)1 << m;
        sink_release(&s);
    }
    snprintf(ex->reason, sizeof(ex->reason), "%s",
             any_timeout ? "local_timeout" : any_error ? "local_error" : "local_down");
    return LOCAL_FALLBACK;
}
