/* gateway.c: the gateway's HTTP endpoints and the routing decision (local, cloud, fallback)
 * for POST /v1/messages and POST /v1/chat/completions. */
#include "base/common.h"

#include "backend/policy.h"
#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "gateway/gateway_int.h"

#define GW_DEFAULT_MAX_BODY ((size_t)32 << 20)

static bool has_cloud(const gateway *gw)
{
    return gw->cloud_key && gw->cloud_key[0];
}

/* Anthropic error body into a JSON response, used before any exchange exists. */
static void send_anth_error(http_response *resp, int status, const char *type, const char *msg)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    chat_anth_write_error(&b, type, msg);
    http_response_send(resp, status, "application/json", buf_str(&b), b.len);
    buf_release(&b);
}

static bool authorized(const gateway *gw, const http_request *req)
{
    if (!gw->auth_token || !gw->auth_token[0])
        return true;
    const char *k = http_request_header(req, "x-api-key");
    if (k && !strcmp(k, gw->auth_token))
        return true;
    const char *a = http_request_header(req, "authorization");
    if (a && !strncasecmp(a, "Bearer ", 7) && !strcmp(a + 7, gw->auth_token))
        return true;
    return false;
}

/* True when an OpenAI-front request names the engine's own model (or none): it is answered
 * the way llama-server would, by the local backends directly. */
static bool names_local_model(const gateway *gw, const chat_request *req)
{
    if (!req->model || !req->model[0])
        return true;
    return gw->model_id && !strcmp(req->model, gw->model_id);
}

/* The decision and the answer for one parsed request, shared by both fronts. */
static void serve_request(exchange *ex, chat_request *req)
{
    gateway *gw = ex->gw;
    ex->model = req->model ? req->model : "";
    ex->stream = req->stream;
    if (ex->front == FRONT_ANTHROPIC)
        chat_anth_sse_init(&ex->aw, ex->model, &ex->out);
    else
        chat_oai_sse_init(&ex->ow, ex->model, ex->include_usage, &ex->out);

    bool local = gw->local && str_glob_list_match(gw->local_models, ex->model);
    if (!local && gw->local && ex->front == FRONT_OPENAI &&
        (names_local_model(gw, req) || !has_cloud(gw))) {
        gw_direct_route(ex, req);
        return;
    }
    const char *reason = NULL;
    if (local) {
        if (!req->has_temperature) {
            req->has_temperature = true; /* LocoOperator's recommended sampling */
            req->temperature = 0.7;
        }
        long cap = gw->cfg.local_max_tokens;
        if (cap > 0 && (req->max_tokens <= 0 || req->max_tokens > cap))
            req->max_tokens = cap;
        if (gw_local_route(ex, req) == LOCAL_DONE)
            return;
        reason = ex->reason;
    }
    if (local && !has_cloud(gw)) {
        /* nowhere to fall back to: answer the way Claude Code understands */
        char msg[200];
        ex->route = "local";
        if (!strcmp(reason, "context") || !strcmp(reason, "context_overflow")) {
            long n = ex->overflow_prompt > 0 ? ex->overflow_prompt : ex->est_input_tokens;
            long max = ex->overflow_ctx > 0 ? ex->overflow_ctx : gw->cfg.local_ctx;
            if (n <= max)
                n = max + 1; /* the local side said it does not fit: never claim it does */
            snprintf(msg, sizeof(msg), "prompt is too long: %ld tokens > %ld maximum", n, max);
            ex_send_error(ex, 400, "invalid_request_error", msg);
        } else if (!strcmp(reason, "local_timeout")) {
            ex_send_error(ex, 504, "api_error",
                          "the local model server timed out and no cloud key is set for "
                          "fallback (set OPENROUTER_API_KEY or --cloud-key-env)");
        } else if (!strcmp(reason, "local_down")) {
            ex_send_error(ex, 503, "api_error",
                          "the local model server is unreachable and no cloud key is set for "
                          "fallback: start it (e.g. llama-server --port 8080) or set "
                          "OPENROUTER_API_KEY");
        } else {
            snprintf(msg, sizeof(msg),
                     "the local model could not answer (%s) and no cloud key is set for "
                     "fallback",
                     reason);
            ex_send_error(ex, 502, "api_error", msg);
        }
        return;
    }
    const char *model = NULL;
    if (local) {
        ex->route = "fallback";
        model = gw->fallback_model;
        log_msg(gw->cfg.log, LOG_INFO, "req=%s falling back to the cloud (%s): model %s",
                ex->id, reason, model);
    } else {
        ex->route = "cloud";
        if (!has_cloud(gw)) {
            ex_send_error(ex, 401, "authentication_error",
                          "no cloud API key: set OPENROUTER_API_KEY (or the variable named by "
                          "--cloud-key-env) in the environment or .env");
            return;
        }
    }
    if (ex->front == FRONT_ANTHROPIC)
        gw_cloud_passthrough(ex, ex->hreq->body, ex->hreq->body_len, model);
    else
        gw_cloud_events(ex, req, model ? model : req->model);
}

static void record_answer(exchange *ex, const chat_request *req)
{
    gateway *gw = ex->gw;
    if (!gw->rec || !ex->answer_ok || !req)
        return;
    loco_err err;
    loco_err_clear(&err);
    const char *model = !strcmp(ex->route, "fallback") ? gw->fallback_model : ex->model;
    if (record_exchange(gw->rec, req, &ex->answer, ex->route,
                        strcmp(ex->route, "fallback") ? NULL : ex->reason, model, ex->id, &err))
        log_msg(gw->cfg.log, LOG_WARN, "req=%s not recorded: %s", ex->id, err.msg);
}

static void handle_completion(gateway *gw, const http_request *hreq, http_response *resp,
                              gw_front front)
{
    exchange ex;
    ex_init(&ex, gw, hreq, resp, front, front == FRONT_ANTHROPIC ? "messages" : "chat_completions");
    metrics_inflight(gw->metrics, 1);
    chat_request *req = NULL;
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = front == FRONT_ANTHROPIC
                         ? chat_anth_parse_request_checked(hreq->body, hreq->body_len,
                                                           CHAT_CHECK_API, &req, &err)
                         : chat_oai_parse_request_checked(hreq->body, hreq->body_len,
                                                          CHAT_CHECK_API, &req, &err);
    if (rc == LOCO_ERR_INVALID) {
        ex_send_error(&ex, 400, "invalid_request_error", err.msg);
    } else if (rc) { /* out of memory: the server's fault, not the request's */
        ex_send_error(&ex, 500, "api_error", err.msg[0] ? err.msg : loco_status_str(rc));
    } else {
        if (front == FRONT_OPENAI)
            ex.include_usage = chat_oai_request_wants_usage(hreq->body, hreq->body_len);
        serve_request(&ex, req);
    }
    ex_finish(&ex);
    record_answer(&ex, req);
    metrics_inflight(gw->metrics, -1);
    chat_request_free(req);
    ex_release(&ex);
}

/* count_tokens: local models are counted by a pool member's tokenizer (llama-server's
 * /tokenize on the rendered prompt), cloud models by the cloud's own count_tokens; either
 * falls back to the estimate when the upstream cannot tell. */
typedef struct {
    int status;
    buf body;
} count_xfer;

static loco_status count_on_headers(void *ctx, int status, const char *content_type)
{
    LOCO_UNUSED(content_type);
    ((count_xfer *)ctx)->status = status;
    return LOCO_OK;
}

static loco_status count_on_data(void *ctx, const char *p, size_t n)
{
    return buf_append(&((count_xfer *)ctx)->body, p, n);
}

static bool cloud_count(gateway *gw, const http_request *hreq, long *out_n)
{
    if (!has_cloud(gw))
        return false;
    char version[512];
    const char *v = http_request_header(hreq, "anthropic-version");
    snprintf(version, sizeof(version), "anthropic-version: %s", v ? v : "2023-06-01");
    const char *headers[] = {"Content-Type: application/json", gw->bearer_header,
                             gw->key_header, version, NULL};
    count_xfer x;
    x.status = 0;
    buf_init(&x.body, 1 << 20);
    http_client_request hr;
    memset(&hr, 0, sizeof(hr));
    hr.method = "POST";
    hr.url = gw->cloud_count_url;
    hr.headers = headers;
    hr.body = hreq->body;
    hr.body_len = hreq->body_len;
    hr.connect_timeout_ms = 5000;
    hr.total_timeout_ms = 30000;
    hr.on_headers = count_on_headers;
    hr.on_data = count_on_data;
    hr.ctx = &x;
    int status = 0;
    bool ok = false;
    if (http_client_do(gw->client, &hr, &status, NULL) == LOCO_OK && status == 200) {
        json_t *root = json_parse(buf_str(&x.body), x.body.len, NULL);
        ok = json_get_long(root, "input_tokens", out_n);
        json_decref(root);
    }
    buf_release(&x.body);
    return ok;
}

/* The local model's count of what it would see (diet and training prompt applied). */
static bool local_count(gateway *gw, const chat_request *req, long *out_n)
{
    chat_request *lreq = gw_local_request(gw, req, "count_tokens");
    bool ok = lreq && backend_count_tokens(gw->local, lreq, out_n, NULL) == LOCO_OK;
    chat_request_free(lreq);
    return ok;
}

static void handle_count_tokens(gateway *gw, const http_request *hreq, http_response *resp)
{
    chat_request *req = NULL;
    loco_err err;
    loco_err_clear(&err);
    loco_status prc = chat_anth_parse_request_checked(hreq->body, hreq->body_len,
                                                      CHAT_CHECK_API_COUNT, &req, &err);
    if (prc) {
        bool bad = prc == LOCO_ERR_INVALID;
        send_anth_error(resp, bad ? 400 : 500, bad ? "invalid_request_error" : "api_error",
                        err.msg[0] ? err.msg : loco_status_str(prc));
        return;
    }
    long n = 0;
    const char *how = "estimate";
    if (gw->local && str_glob_list_match(gw->local_models, req->model)) {
        if (local_count(gw, req, &n))
            how = "local";
        else
            n = policy_estimate_tokens(gw->system_prompt, req);
    } else if (cloud_count(gw, hreq, &n)) {
        how = "cloud";
    } else {
        n = policy_estimate_tokens(gw->system_prompt, req);
    }
    char body[64];
    int len = snprintf(body, sizeof(body), "{\"input_tokens\":%ld}", n);
    http_response_add_header(resp, "X-Loco-Token-Count", how);
    http_response_send(resp, 200, "application/json", body, (size_t)len);
    chat_request_free(req);
}

static json_t *model_entry(const char *id, const char *display, const char *owner)
{
    json_t *m = json_object();
    json_object_set_new(m, "id", json_string(id));
    json_object_set_new(m, "type", json_string("model"));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "display_name", json_string(display));
    json_object_set_new(m, "created_at", json_string("2026-01-01T00:00:00Z"));
    json_object_set_new(m, "created", json_integer(1767225600));
    json_object_set_new(m, "owned_by", json_string(owner));
    return m;
}

/* Both APIs' shapes at once: Anthropic's (type, display_name, created_at, has_more, first_id,
 * last_id) and OpenAI's / llama-server's (object, created, owned_by; the engine's model
 * first, as llama-server lists its one model). */
static void handle_models(gateway *gw, http_response *resp)
{
    json_t *data = json_array();
    if (gw->model_id) {
        json_t *m = model_entry(gw->model_id, "the in-process engine (local)", "loco");
        json_t *meta = json_object();
        json_object_set_new(meta, "n_ctx", json_integer(gw->cfg.engine.ctx));
        json_object_set_new(m, "meta", meta);
        json_array_append_new(data, m);
    }
    json_array_append_new(data, model_entry("claude-haiku-4-5-20251001",
                                            "LocoOperator-4B (local)", "loco"));
    json_array_append_new(data, model_entry(gw->fallback_model, gw->fallback_model, "cloud"));
    size_t n = json_array_size(data);
    json_t *root = json_object();
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "has_more", json_false());
    json_object_set_new(root, "first_id",
                        json_string(json_string_value(json_object_get(json_array_get(data, 0),
                                                                      "id"))));
    json_object_set_new(root, "last_id",
                        json_string(json_string_value(json_object_get(json_array_get(data, n - 1),
                                                                      "id"))));
    json_object_set_new(root, "data", data);
    char *s = json_to_string(root);
    http_response_send(resp, 200, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
    json_decref(root);
}

static void handle_health(gateway *gw, http_response *resp)
{
    json_t *root = json_object();
    json_t *local = json_array();
    bool any = false;
    for (size_t i = 0; gw->pool && i < pool_size(gw->pool); i++) {
        json_t *m = json_object();
        bool up = pool_healthy(gw->pool, (int)i);
        any |= up;
        json_object_set_new(m, "url", json_string(pool_url(gw->pool, (int)i)));
        json_object_set_new(m, "healthy", json_boolean(up));
        json_object_set_new(m, "in_flight", json_integer(pool_in_flight(gw->pool, (int)i)));
        json_array_append_new(local, m);
    }
    json_object_set_new(root, "status", json_string(any || !gw->pool ? "ok" : "degraded"));
    json_object_set_new(root, "local", local);
    json_t *cloud = json_object();
    json_object_set_new(cloud, "url", json_string(gw->cloud_url));
    json_object_set_new(cloud, "key_set", json_boolean(has_cloud(gw)));
    json_object_set_new(root, "cloud", cloud);
    json_object_set_new(root, "in_flight", json_integer(atomic_load(&gw->in_flight)));
    char *s = json_to_string(root);
    http_response_send(resp, 200, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
    json_decref(root);
}

static void handle_metrics(gateway *gw, http_response *resp)
{
    for (size_t i = 0; gw->pool && i < pool_size(gw->pool); i++)
        metrics_backend(gw->metrics, pool_url(gw->pool, (int)i), pool_healthy(gw->pool, (int)i),
                        pool_in_flight(gw->pool, (int)i));
    struct backend_engine_stats st;
    if (gw->engine && backend_engine_stats(gw->engine, &st) == LOCO_OK) {
        metrics_engine_stats es = {
            .queue_len = st.queue_len,
            .active = st.active,
            .parallel = st.parallel,
            .requests = st.requests,
            .busy = st.busy,
            .cancelled = st.cancelled,
            .prompt_tokens = st.prompt_tokens,
            .cache_hit_tokens = st.cache_hit_tokens,
            .gen_tokens = st.gen_tokens,
            .prompt_seconds = st.prompt_seconds,
            .gen_seconds = st.gen_seconds,
            .kv_bytes = st.kv_bytes,
        };
        metrics_engine(gw->metrics, &es);
    }
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    metrics_render(gw->metrics, &b);
    http_server_stats ss;
    http_server_get_stats(gw->server, &ss);
    buf_appendf(&b,
                "# HELP loco_connections_open Client connections open.\n"
                "# TYPE loco_connections_open gauge\nloco_connections_open %ld\n"
                "# HELP loco_connections_refused_total Connections answered 503 because "
                "--max-conns were open.\n"
                "# TYPE loco_connections_refused_total counter\n"
                "loco_connections_refused_total %ld\n"
                "# HELP loco_connections_timed_out_total Connections closed by --idle-timeout.\n"
                "# TYPE loco_connections_timed_out_total counter\n"
                "loco_connections_timed_out_total %ld\n"
                "# HELP loco_bad_requests_total Requests the HTTP layer refused (malformed, too "
                "large, too slow).\n"
                "# TYPE loco_bad_requests_total counter\nloco_bad_requests_total %ld\n",
                ss.open, ss.refused, ss.timed_out, ss.bad_requests);
    http_response_send(resp, 200, "text/plain; version=0.0.4; charset=utf-8", buf_str(&b), b.len);
    buf_release(&b);
}

static bool openai_path(const char *p)
{
    return !strcmp(p, "/v1/chat/completions") || !strcmp(p, "/v1/completions") ||
           !strcmp(p, "/completions");
}

/* The body of the HTTP server's own error answers (bad request heads, timeouts, too many
 * connections), in the error shape of the API the path belongs to. */
static loco_status server_error_body(void *ctx, const char *path, int status, const char *message,
                                     buf *out)
{
    LOCO_UNUSED(ctx);
    const char *type = chat_anth_error_type(status);
    return openai_path(path) ? chat_oai_write_error(out, type, message)
                             : chat_anth_write_error(out, type, message);
}

static void inflight_done(void *ctx)
{
    gateway *gw = ctx;
    atomic_fetch_sub(&gw->in_flight, 1);
}

/* --max-inflight requests are being served: 529 overloaded_error (503 on the OpenAI front,
 * whose clients do not know 529), logged and counted like every answered request. */
static void refuse_overloaded(gateway *gw, const http_request *req, http_response *resp,
                              gw_front front, const char *endpoint)
{
    int status = front == FRONT_ANTHROPIC ? 529 : 503;
    char msg[160];
    snprintf(msg, sizeof(msg),
             "loco is serving its maximum of %u requests at once (--max-inflight); retry shortly",
             gw->cfg.max_concurrency);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    if (front == FRONT_ANTHROPIC)
        chat_anth_write_error(&b, "overloaded_error", msg);
    else
        chat_oai_write_error(&b, "overloaded_error", msg);
    /* logged and counted before the answer goes out: a client that reads /metrics the moment
     * it has its 529 finds it counted */
    log_msg(gw->cfg.log, LOG_WARN,
            "req=- endpoint=%s remote=%s route=none reason=max_inflight status=%d "
            "in_flight=%d",
            endpoint, req->remote_addr, status, atomic_load(&gw->in_flight));
    metrics_request_done(gw->metrics, endpoint, "none", "max_inflight", status, -1, -1, -1, -1);
    http_response_add_header(resp, "Retry-After", "1");
    http_response_send(resp, status, "application/json", buf_str(&b), b.len);
    buf_release(&b);
}

static void handler(void *ctx, const http_request *req, http_response *resp)
{
    gateway *gw = ctx;
    const char *m = req->method;
    const char *p = req->path;
    bool post = !strcmp(m, "POST");
    bool get = !strcmp(m, "GET") || !strcmp(m, "HEAD");
    if (get && (!strcmp(p, "/health") || !strcmp(p, "/healthz"))) {
        handle_health(gw, resp);
        return;
    }
    if (!authorized(gw, req)) {
        send_anth_error(resp, 401, "authentication_error",
                        "invalid or missing API key: send the --auth-token value as x-api-key "
                        "or Authorization: Bearer");
        return;
    }
    if (get && !strcmp(p, "/metrics")) {
        handle_metrics(gw, resp);
        return;
    }
    if (get && !strcmp(p, "/v1/models")) {
        handle_models(gw, resp);
        return;
    }
    bool messages = !strcmp(p, "/v1/messages");
    bool chat = !strcmp(p, "/v1/chat/completions");
    bool count = !strcmp(p, "/v1/messages/count_tokens");
    bool completions = !strcmp(p, "/v1/completions") || !strcmp(p, "/completions");
    bool tokenize = !strcmp(p, "/tokenize");
    bool detokenize = !strcmp(p, "/detokenize");
    if (!post && (messages || chat || count || completions || tokenize || detokenize)) {
        http_response_add_header(resp, "Allow", "POST");
        send_anth_error(resp, 405, "invalid_request_error", "this endpoint takes POST");
        return;
    }
    if (count) {
        handle_count_tokens(gw, req, resp);
        return;
    }
    if (tokenize) {
        gw_handle_tokenize(gw, req, resp);
        return;
    }
    if (detokenize) {
        gw_handle_detokenize(gw, req, resp);
        return;
    }
    if (!messages && !chat && !completions) {
        char msg[300];
        snprintf(msg, sizeof(msg), "no such endpoint: %s %.200s", m, p);
        send_anth_error(resp, 404, "not_found_error", msg);
        return;
    }
    int n = atomic_fetch_add(&gw->in_flight, 1);
    if (n >= (int)gw->cfg.max_concurrency) {
        atomic_fetch_sub(&gw->in_flight, 1);
        refuse_overloaded(gw, req, resp, messages ? FRONT_ANTHROPIC : FRONT_OPENAI,
                          messages      ? "messages"
                          : completions ? "completions"
                                        : "chat_completions");
        return;
    }
    /* counted out once the answer is complete for the client, not when this thread is
     * done: a client that sends its next request on receiving the last byte finds it free */
    http_response_on_done(resp, inflight_done, gw);
    if (completions)
        gw_handle_completions(gw, req, resp);
    else
        handle_completion(gw, req, resp, messages ? FRONT_ANTHROPIC : FRONT_OPENAI);
}

static char *dup_opt(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *header_line(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value ? value : "") + 3;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s: %s", name, value ? value : "");
    return s;
}

/* The model id /v1/models lists for the engine: the file's base name without .gguf. */
static char *model_id_of(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".gguf"))
        n -= 5;
    return strndup(base, n);
}

/* The local side: the engine (when a model is given) and the --local-url servers in one
 * pool, and the hybrid over it that holds, retries and decides fallbacks. */
static loco_status open_local(gateway *gw, loco_err *err)
{
    const gateway_engine_config *ec = &gw->cfg.engine;
    if (!ec->model_path && !gw->cfg.n_local_urls)
        return LOCO_OK; /* cloud only */
    loco_status rc = pool_new(gw->cfg.log, &gw->pool, err);
    if (rc)
        return rc;
    if (ec->model_path) {
        backend_engine_opts eo;
        memset(&eo, 0, sizeof(eo));
        eo.model_path = ec->model_path;
        eo.ctx = ec->ctx;
        eo.threads = ec->threads;
        eo.parallel = ec->parallel;
        eo.queue_max = ec->queue_max;
        eo.cache_mb = ec->cache_mb;
        eo.constrain = !ec->no_constrain;
        eo.kv_type = ec->kv_type;
        backend *e = NULL;
        rc = backend_engine_new(&eo, &e, err);
        if (!rc)
            rc = pool_add(gw->pool, e, err);
        if (rc)
            return rc;
        gw->engine = e;
        gw->model_id = model_id_of(ec->model_path);
        if (!gw->model_id)
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    backend_openai_opts bo;
    memset(&bo, 0, sizeof(bo));
    bo.qwen_text = true; /* the system comes with each request (training prompt + ENV) */
    bo.default_idle_timeout_ms = gw->cfg.local_idle_timeout_ms;
    for (size_t i = 0; i < gw->cfg.n_local_urls; i++) {
        backend *b = NULL;
        rc = backend_openai_new(gw->client, gw->local_urls[i], &bo, &b, err);
        if (!rc)
            rc = pool_add(gw->pool, b, err);
        if (rc)
            return rc;
    }
    pool_set_startup(gw->pool, gw->cfg.local_start_wait_ms, gw->cfg.ping_interval_ms);
    rc = pool_start_health(gw->pool, gw->cfg.health_interval_ms, err);
    if (rc)
        return rc;
    gw->local = pool_backend(gw->pool);
    backend_hybrid_opts ho;
    memset(&ho, 0, sizeof(ho));
    ho.max_local_turns = gw->cfg.max_local_turns;
    ho.local_ctx = gw->cfg.local_ctx;
    ho.exact_count = gw->engine != NULL;
    ho.fallback_available = has_cloud(gw);
    ho.fallback_model = gw->fallback_model;
    return backend_hybrid_new(gw->local, NULL, &ho, &gw->hybrid, err);
}

loco_status gateway_start(const gateway_config *cfg, gateway **out, loco_err *err)
{
    gateway *gw = calloc(1, sizeof(*gw));
    if (!gw)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    gw->cfg = *cfg;
    atomic_init(&gw->in_flight, 0);
    loco_status rc = LOCO_OK;
    gw->listen_host = strdup(cfg->listen_host ? cfg->listen_host : "127.0.0.1");
    gw->cloud_url = strdup(cfg->cloud_url ? cfg->cloud_url : "https://openrouter.ai/api");
    gw->cloud_key = dup_opt(cfg->cloud_key);
    gw->local_models = strdup(cfg->local_models ? cfg->local_models : "claude-haiku-*,*haiku*");
    gw->fallback_model = strdup(cfg->fallback_model ? cfg->fallback_model
                                                    : "qwen/qwen3-coder-next");
    gw->record_dir = dup_opt(cfg->record_dir);
    gw->auth_token = dup_opt(cfg->auth_token);
    gw->system_prompt = strdup(cfg->system_prompt ? cfg->system_prompt : "");
    gw->cloud_messages_url = backend_join_url(gw->cloud_url, "/v1/messages");
    gw->cloud_count_url = backend_join_url(gw->cloud_url, "/v1/messages/count_tokens");
    gw->bearer_header = malloc(strlen(cfg->cloud_key ? cfg->cloud_key : "") + 32);
    if (gw->bearer_header)
        snprintf(gw->bearer_header, strlen(cfg->cloud_key ? cfg->cloud_key : "") + 32,
                 "Authorization: Bearer %s", cfg->cloud_key ? cfg->cloud_key : "");
    gw->key_header = header_line("x-api-key", cfg->cloud_key);
    if (!gw->cfg.max_body)
        gw->cfg.max_body = GW_DEFAULT_MAX_BODY;
    if (gw->cfg.ping_interval_ms == 0)
        gw->cfg.ping_interval_ms = 5000;
    if (gw->cfg.local_idle_timeout_ms <= 0)
        gw->cfg.local_idle_timeout_ms = 600000;
    if (gw->cfg.local_start_wait_ms == 0)
        gw->cfg.local_start_wait_ms = 120000;
    if (!gw->cfg.max_concurrency)
        gw->cfg.max_concurrency = 256;
    if (gw->cfg.max_local_turns <= 0)
        gw->cfg.max_local_turns = 10;
    if (gw->cfg.local_ctx <= 0)
        gw->cfg.local_ctx = gw->cfg.engine.ctx > 0 ? gw->cfg.engine.ctx : 51200;
    if (gw->cfg.engine.ctx <= 0)
        gw->cfg.engine.ctx = gw->cfg.local_ctx;
    gw->model_path = dup_opt(cfg->engine.model_path);
    gw->kv_type = dup_opt(cfg->engine.kv_type);
    gw->cfg.engine.model_path = gw->model_path;
    gw->cfg.engine.kv_type = gw->kv_type;
    gw->local_urls = calloc(cfg->n_local_urls + 1, sizeof(char *));
    bool ok = gw->listen_host && gw->cloud_url && gw->local_models && gw->fallback_model &&
              gw->system_prompt && gw->cloud_messages_url && gw->cloud_count_url &&
              gw->bearer_header && gw->key_header && gw->local_urls &&
              (!cfg->cloud_key || gw->cloud_key) && (!cfg->record_dir || gw->record_dir) &&
              (!cfg->auth_token || gw->auth_token) &&
              (!cfg->engine.model_path || gw->model_path) &&
              (!cfg->engine.kv_type || gw->kv_type);
    for (size_t i = 0; ok && i < cfg->n_local_urls; i++) {
        gw->local_urls[i] = strdup(cfg->local_urls[i]);
        ok = gw->local_urls[i] != NULL;
    }
    gw->metrics = metrics_new();
    if (!ok || !gw->metrics) {
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    rc = http_client_new(&gw->client, err);
    if (rc)
        goto fail;
    rc = open_local(gw, err);
    if (rc)
        goto fail;
    rc = backend_anthropic_new(gw->client, gw->cloud_url, gw->cloud_key, &gw->cloud, err);
    if (rc)
        goto fail;
    if (gw->record_dir) {
        rc = record_open(gw->record_dir, gw->system_prompt, &gw->rec, err);
        if (rc)
            goto fail;
    }
    http_server_config sc;
    memset(&sc, 0, sizeof(sc));
    sc.host = gw->listen_host;
    sc.port = cfg->listen_port;
    sc.max_body = gw->cfg.max_body;
    sc.error_body = server_error_body;
    sc.max_connections = cfg->max_connections;
    sc.idle_timeout_s = cfg->idle_timeout_s;
    sc.log = cfg->log;
    sc.handler = handler;
    sc.handler_ctx = gw;
    rc = http_server_start(&sc, &gw->server, err);
    if (rc)
        goto fail;
    *out = gw;
    return LOCO_OK;
fail:
    gateway_stop(gw);
    return rc;
}

int gateway_port(const gateway *gw)
{
    return http_server_port(gw->server);
}

void gateway_stop(gateway *gw)
{
    if (!gw)
        return;
    http_server_stop(gw->server);
    backend_free(gw->hybrid);
    pool_free(gw->pool);
    backend_free(gw->cloud);
    record_close(gw->rec);
    http_client_free(gw->client);
    metrics_free(gw->metrics);
    for (size_t i = 0; gw->local_urls && gw->local_urls[i]; i++)
        free(gw->local_urls[i]);
    free(gw->local_urls);
    free(gw->model_path);
    free(gw->kv_type);
    free(gw->model_id);
    free(gw->listen_host);
    free(gw->cloud_url);
    free(gw->cloud_key);
    free(gw->local_models);
    free(gw->fallback_model);
    free(gw->record_dir);
    free(gw->auth_token);
    free(gw->system_prompt);
    free(gw->cloud_messages_url);
    free(gw->cloud_count_url);
    free(gw->bearer_header);
    free(gw->key_header);
    free(gw);
}
