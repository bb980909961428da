/* exchange.c: one client exchange: committing the response, streaming events through the
 * front's writer, pings while the answer is not ready, errors in the front's shape, and the
 * per-request log line. */
#include "base/common.h"

#include "base/log.h"
#include "base/str.h"
#include "gateway/gateway_int.h"

void ex_init(exchange *ex, gateway *gw, const http_request *hreq, http_response *resp,
             gw_front front, const char *endpoint)
{
    memset(ex, 0, sizeof(*ex));
    ex->gw = gw;
    ex->hreq = hreq;
    ex->resp = resp;
    ex->front = front;
    ex->endpoint = endpoint;
    ex->t0 = clock_now_ms();
    ex->route = "none";
    ex->in_tokens = -1;
    ex->out_tokens = -1;
    ex->model = "";
    str_random_id("msg_", ex->id, sizeof(ex->id));
    pthread_mutex_init(&ex->mu, NULL);
    pthread_cond_init(&ex->cv, NULL);
    buf_init(&ex->out, BUF_UNLIMITED);
    chat_answer_init(&ex->answer, GW_ANSWER_MAX);
}

void ex_release(exchange *ex)
{
    ex_stop_pinger(ex);
    buf_release(&ex->out);
    chat_answer_release(&ex->answer);
    pthread_mutex_destroy(&ex->mu);
    pthread_cond_destroy(&ex->cv);
}

static const char *front_stream_type(const exchange *ex)
{
    LOCO_UNUSED(ex);
    return "text/event-stream";
}

/* Sends the status line and SSE headers; caller holds mu. */
static loco_status commit_locked(exchange *ex)
{
    if (ex->committed)
        return LOCO_OK;
    http_response_add_header(ex->resp, "Cache-Control", "no-cache");
    http_response_add_header(ex->resp, "X-Loco-Request-Id", ex->id);
    loco_status rc = http_response_start(ex->resp, 200, front_stream_type(ex));
    ex->committed = true;
    ex->status = 200;
    return rc;
}

static loco_status write_locked(exchange *ex, const char *p, size_t n)
{
    if (!n)
        return LOCO_OK;
    if (!ex->t_first)
        ex->t_first = clock_now_ms();
    loco_status rc = http_response_write(ex->resp, p, n);
    ex->last_write = clock_now_ms();
    if (rc) {
        __atomic_store_n(&ex->cancel, 1, __ATOMIC_RELEASE);
        return LOCO_ERR_CANCELLED;
    }
    return LOCO_OK;
}

static void ping_locked(exchange *ex)
{
    if (ex->ended || ex->raw_mode || __atomic_load_n(&ex->cancel, __ATOMIC_ACQUIRE))
        return;
    if (commit_locked(ex)) {
        __atomic_store_n(&ex->cancel, 1, __ATOMIC_RELEASE);
        return;
    }
    if (ex->front == FRONT_ANTHROPIC) {
        static const char ping[] = "event: ping\ndata: {\"type\": \"ping\"}\n\n";
        write_locked(ex, ping, sizeof(ping) - 1);
    } else {
        static const char ping[] = ": ping\n\n"; /* an SSE comment: OpenAI clients skip it */
        write_locked(ex, ping, sizeof(ping) - 1);
    }
}

static void *pinger_main(void *arg)
{
    exchange *ex = arg;
    long interval = ex->gw->cfg.ping_interval_ms;
    pthread_mutex_lock(&ex->mu);
    while (!ex->pinger_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long wait = 250; /* check often so a gone client is noticed quickly */
        ts.tv_nsec += wait * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ex->cv, &ex->mu, &ts);
        if (ex->pinger_stop)
            break;
        if (http_response_client_gone(ex->resp)) {
            __atomic_store_n(&ex->cancel, 1, __ATOMIC_RELEASE);
            continue;
        }
        double now = clock_now_ms();
        double since = ex->committed ? now - ex->last_write : now - ex->t0;
        if (ex->stream && interval > 0 && since >= (double)interval)
            ping_locked(ex);
    }
    pthread_mutex_unlock(&ex->mu);
    return NULL;
}

void ex_start_pinger(exchange *ex)
{
    if (ex->pinger_running)
        return;
    ex->pinger_stop = false;
    if (pthread_create(&ex->pinger, NULL, pinger_main, ex) == 0)
        ex->pinger_running = true;
}

void ex_stop_pinger(exchange *ex)
{
    if (!ex->pinger_running)
        return;
    pthread_mutex_lock(&ex->mu);
    ex->pinger_stop = true;
    pthread_cond_broadcast(&ex->cv);
    pthread_mutex_unlock(&ex->mu);
    pthread_join(ex->pinger, NULL);
    ex->pinger_running = false;
}

loco_status ex_event(exchange *ex, const chat_event *ev)
{
    loco_status rc = chat_answer_on_event(&ex->answer, ev);
    if (rc)
        return rc;
    pthread_mutex_lock(&ex->mu);
    buf_reset(&ex->out);
    if (ex->front == FRONT_ANTHROPIC)
        rc = chat_anth_sse_on_event(&ex->aw, ev);
    else
        rc = chat_oai_sse_on_event(&ex->ow, ev);
    if (!rc && ex->out.len) {
        rc = commit_locked(ex);
        if (!rc)
            rc = write_locked(ex, ex->out.data, ex->out.len);
    }
    pthread_mutex_unlock(&ex->mu);
    if (ev->type == CHAT_EV_MESSAGE_END) {
        if (ev->usage.input_tokens >= 0)
            ex->in_tokens = ev->usage.input_tokens;
        if (ev->usage.output_tokens >= 0)
            ex->out_tokens = ev->usage.output_tokens;
    }
    return rc;
}

loco_status ex_on_event(void *ctx, const chat_event *ev)
{
    return ex_event(ctx, ev);
}

void ex_send_json(exchange *ex, int status, const char *body, size_t len)
{
    pthread_mutex_lock(&ex->mu);
    if (!ex->committed) {
        http_response_add_header(ex->resp, "X-Loco-Request-Id", ex->id);
        http_response_send(ex->resp, status, "application/json", body, len);
        ex->committed = true;
        ex->ended = true;
        ex->status = status;
        if (!ex->t_first)
            ex->t_first = clock_now_ms();
    }
    pthread_mutex_unlock(&ex->mu);
}

loco_status ex_send_answer(exchange *ex, const chat_answer *a)
{
    buf body;
    buf_init(&body, BUF_UNLIMITED);
    loco_status rc;
    if (ex->front == FRONT_ANTHROPIC)
        rc = chat_anth_write_message(a, ex->model, &body);
    else
        rc = chat_oai_write_response(a, ex->model, &body);
    if (rc) {
        ex_send_error(ex, 502, "api_error", "the upstream answer could not be encoded");
    } else {
        ex_send_json(ex, 200, buf_str(&body), body.len);
        ex->in_tokens = a->usage.input_tokens;
        ex->out_tokens = a->usage.output_tokens;
    }
    buf_release(&body);
    return rc;
}

void ex_send_error(exchange *ex, int status, const char *type, const char *message)
{
    buf body;
    buf_init(&body, BUF_UNLIMITED);
    pthread_mutex_lock(&ex->mu);
    bool committed = ex->committed;
    if (committed) {
        if (!ex->ended) {
            if (ex->front == FRONT_ANTHROPIC) {
                buf_appends(&body, "event: error\ndata: ");
                chat_anth_write_error(&body, type, message);
            } else {
                buf_appends(&body, "data: ");
                chat_oai_write_error(&body, type, message);
            }
            buf_appends(&body, "\n\n");
            write_locked(ex, body.data, body.len);
            ex->status = status; /* logged: the stream failed midway */
        }
    }
    pthread_mutex_unlock(&ex->mu);
    if (!committed) {
        if (ex->front == FRONT_ANTHROPIC)
            chat_anth_write_error(&body, type, message);
        else
            chat_oai_write_error(&body, type, message);
        ex_send_json(ex, status, buf_str(&body), body.len);
    }
    if (!ex->reason[0])
        snprintf(ex->reason, sizeof(ex->reason), "%s", type);
    buf_release(&body);
}

void ex_send_busy(exchange *ex)
{
    pthread_mutex_lock(&ex->mu);
    if (!ex->committed)
        http_response_add_header(ex->resp, "Retry-After", "1");
    pthread_mutex_unlock(&ex->mu);
    snprintf(ex->reason, sizeof(ex->reason), "busy");
    if (ex->front == FRONT_ANTHROPIC)
        ex_send_error(ex, 529, "overloaded_error",
                      "the local model is serving as many requests as it can queue; retry "
                      "shortly");
    else
        ex_send_error(ex, 503, "overloaded_error",
                      "the local model is serving as many requests as it can queue; retry "
                      "shortly");
}

void gw_sink_init(gw_sink *s, exchange *ex)
{
    s->ex = ex;
    s->t_first_content = 0;
    chat_answer_init(&s->whole, GW_ANSWER_MAX);
}

loco_status gw_sink_event(void *ctx, const chat_event *ev)
{
    gw_sink *s = ctx;
    exchange *ex = s->ex;
    if (!s->t_first_content &&
        (ev->type == CHAT_EV_TEXT_DELTA || ev->type == CHAT_EV_TOOL_CALL_START))
        s->t_first_content = clock_now_ms();
    chat_event e = *ev;
    if (ev->type == CHAT_EV_MESSAGE_START) {
        e.id = ex->id;
        e.model = ex->model;
        if (e.usage.input_tokens < 0 && ex->est_input_tokens > 0)
            e.usage.input_tokens = ex->est_input_tokens;
    }
    if (ex->stream)
        return ex_event(ex, &e);
    return chat_answer_on_event(&s->whole, &e);
}

void gw_sink_finish(gw_sink *s)
{
    exchange *ex = s->ex;
    if (ex->stream)
        return;
    free(s->whole.id);
    s->whole.id = strdup(ex->id);
    ex_send_answer(ex, &s->whole);
    chat_answer_release(&ex->answer); /* keep the answer for the recording */
    ex->answer = s->whole;
    chat_answer_init(&s->whole, GW_ANSWER_MAX);
}

void gw_sink_release(gw_sink *s)
{
    chat_answer_release(&s->whole);
}

loco_status ex_raw_start(exchange *ex, int status, const char *content_type)
{
    loco_status rc = LOCO_OK;
    pthread_mutex_lock(&ex->mu);
    ex->raw_mode = true;
    if (!ex->committed) {
        http_response_add_header(ex->resp, "X-Loco-Request-Id", ex->id);
        if (content_type && strstr(content_type, "text/event-stream"))
            http_response_add_header(ex->resp, "Cache-Control", "no-cache");
        rc = http_response_start(ex->resp, status, content_type ? content_type
                                                                : "application/json");
        ex->committed = true;
        ex->status = status;
    }
    pthread_mutex_unlock(&ex->mu);
    return rc;
}

loco_status ex_raw_write(exchange *ex, const char *p, size_t n)
{
    pthread_mutex_lock(&ex->mu);
    loco_status rc = write_locked(ex, p, n);
    pthread_mutex_unlock(&ex->mu);
    return rc;
}

void ex_end(exchange *ex)
{
    ex_stop_pinger(ex);
    pthread_mutex_lock(&ex->mu);
    if (ex->committed && !ex->ended) {
        /* the OpenAI writer ends its own stream with [DONE]; an error sent after commit
         * does not */
        if (ex->front == FRONT_OPENAI && ex->stream && !ex->raw_mode && !ex->ow.done)
            write_locked(ex, "data: [DONE]\n\n", 14);
        http_response_end(ex->resp);
    }
    ex->ended = true;
    pthread_mutex_unlock(&ex->mu);
}

/* Counts and logs the exchange, then ends the response: a client that has the whole answer
 * finds it in /metrics already (counted after the end, a fast client could read /metrics
 * first). */
void ex_finish(exchange *ex)
{
    gateway *gw = ex->gw;
    double now = clock_now_ms();
    double ttfb = ex->t_first ? ex->t_first - ex->t0 : now - ex->t0;
    double total = now - ex->t0;
    if (__atomic_load_n(&ex->cancel, __ATOMIC_ACQUIRE) && ex->status == 200)
        snprintf(ex->reason + strlen(ex->reason), sizeof(ex->reason) - strlen(ex->reason),
                 "%sclient_gone", ex->reason[0] ? "," : "");
    double ttft = ex->t_first_token > 0 ? ex->t_first_token - ex->t0 : -1;
    log_msg(gw->cfg.log, LOG_INFO,
            "req=%s endpoint=%s model=%s route=%s reason=%s status=%d in=%ld out=%ld "
            "ttfb_ms=%.1f ttft_ms=%.1f total_ms=%.1f",
            ex->id, ex->endpoint, ex->model[0] ? ex->model : "-", ex->route,
            ex->reason[0] ? ex->reason : "-", ex->status, ex->in_tokens, ex->out_tokens, ttfb,
            ttft, total);
    metrics_request_done(gw->metrics, ex->endpoint, ex->route, ex->reason, ex->status,
                         ex->in_tokens, ex->out_tokens, ttfb, total);
    if (ex->t_first_token > 0)
        metrics_ttft(gw->metrics, ex->route, (ex->t_first_token - ex->t0) / 1000.0);
    ex_end(ex);
}
