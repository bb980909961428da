/* test_hybrid.c: the hybrid backend (local first, cloud fallback) and the shared routing
 * rules of backend/policy.h, with scripted fake backends built from backend_ops tables. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "backend/backend.h"
#include "backend/policy.h"
#include "base/buf.h"

/* ---- a scripted fake backend ---- */

typedef enum {
    FAKE_TEXT = 0,   /* start, text, end_turn */
    FAKE_CALL,       /* start, text, tool call `name`, tool_use */
    FAKE_BAD_CALL,   /* start, text, then a bad call reported through on_bad_call */
    FAKE_FAIL,       /* start, text, then returns `rc` (out->http_status = http) */
    FAKE_ERROR_EVENT,/* start, then an ERROR event, returns LOCO_OK */
    FAKE_NO_END,     /* start, text, returns LOCO_OK without MESSAGE_END */
    FAKE_CALL_BAD,   /* start, text, tool call `name`, then a bad call, end */
    FAKE_CALL_FAIL,  /* start, text, tool call `name`, then returns `rc` */
    FAKE_TEXT_BAD,   /* start, text, then a bad call, end */
} fake_kind;

typedef struct {
    fake_kind kind;
    const char *text;
    const char *name;
    loco_status rc;
    int http;
} fake_step;

typedef struct {
    backend base;
    const fake_step *steps;
    size_t n_steps;
    size_t calls;
    char last_model[64];
} fake_backend;

static loco_status ev_simple(chat_event_fn cb, void *ctx, chat_event_type type, const char *text)
{
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    chat_usage_init(&ev.usage);
    ev.type = type;
    ev.text = text;
    ev.len = text ? strlen(text) : 0;
    if (type == CHAT_EV_MESSAGE_START) {
        ev.id = "msg_fake";
        ev.model = "fake";
        ev.usage.input_tokens = 7;
    }
    if (type == CHAT_EV_ERROR)
        ev.error_type = "api_error";
    return cb(ctx, &ev);
}

static loco_status ev_end(chat_event_fn cb, void *ctx, chat_stop stop)
{
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = CHAT_EV_MESSAGE_END;
    ev.stop = stop;
    ev.usage.input_tokens = 7;
    ev.usage.output_tokens = 3;
    return cb(ctx, &ev);
}

static loco_status ev_call(chat_event_fn cb, void *ctx, const char *name)
{
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    chat_usage_init(&ev.usage);
    ev.type = CHAT_EV_TOOL_CALL_START;
    ev.id = "call_1";
    ev.name = name;
    loco_status rc = cb(ctx, &ev);
    if (rc)
        return rc;
    ev.type = CHAT_EV_TOOL_ARGS_DELTA;
    ev.text = "{\"file_path\":\"/a\"}";
    ev.len = strlen(ev.text);
    rc = cb(ctx, &ev);
    if (rc)
        return rc;
    ev.type = CHAT_EV_TOOL_CALL_END;
    ev.text = NULL;
    ev.len = 0;
    return cb(ctx, &ev);
}

static loco_status fake_complete(backend *base, const chat_request *req,
                                 const backend_call *call, chat_event_fn cb, void *ctx,
                                 backend_result *out, loco_err *err)
{
    LOCO_UNUSED(req);
    fake_backend *f = (fake_backend *)base;
    snprintf(f->last_model, sizeof(f->last_model), "%s", call->model ? call->model : "(none)");
    assert_true(f->calls < f->n_steps);
    const fake_step *s = &f->steps[f->calls++];
    if (s->kind == FAKE_FAIL && (s->rc == LOCO_ERR_UNAVAILABLE || s->rc == LOCO_ERR_BUSY))
        return loco_err_set(err, s->rc, "cannot connect to %s", base->url);
    if (s->kind == FAKE_FAIL && s->rc == LOCO_ERR_CANCELLED)
        return loco_err_set(err, s->rc, "cancelled");
    loco_status rc = ev_simple(cb, ctx, CHAT_EV_MESSAGE_START, NULL);
    out->got_events = true;
    if (!rc && s->kind == FAKE_ERROR_EVENT)
        return ev_simple(cb, ctx, CHAT_EV_ERROR, "model crashed");
    if (!rc)
        rc = ev_simple(cb, ctx, CHAT_EV_TEXT_DELTA, s->text ? s->text : "partial");
    if (rc)
        return rc;
    switch (s->kind) {
    case FAKE_TEXT:
        return ev_end(cb, ctx, CHAT_STOP_END_TURN);
    case FAKE_CALL:
        rc = ev_call(cb, ctx, s->name);
        return rc ? rc : ev_end(cb, ctx, CHAT_STOP_TOOL_USE);
    case FAKE_BAD_CALL:
        out->bad_calls++;
        rc = call->on_bad_call ? call->on_bad_call(call->bad_call_ctx, "{bad", 4, "not JSON")
                               : LOCO_OK;
        return rc ? rc : ev_end(cb, ctx, CHAT_STOP_END_TURN);
    case FAKE_FAIL:
        out->http_status = s->http;
        return loco_err_set(err, s->rc, "%s failed", base->url);
    case FAKE_NO_END:
    case FAKE_ERROR_EVENT:
        return LOCO_OK;
    case FAKE_CALL_BAD:
    case FAKE_CALL_FAIL:
    case FAKE_TEXT_BAD:
        if (s->kind != FAKE_TEXT_BAD)
            rc = ev_call(cb, ctx, s->name);
        if (rc)
            return rc;
        if (s->kind == FAKE_CALL_FAIL)
            return loco_err_set(err, s->rc, "%s failed midway", base->url);
        out->bad_calls++;
        rc = call->on_bad_call ? call->on_bad_call(call->bad_call_ctx, "{bad", 4, "not JSON")
                               : LOCO_OK;
        return rc ? rc : ev_end(cb, ctx, CHAT_STOP_TOOL_USE);
    }
    return LOCO_OK;
}

static loco_status fake_health(backend *b, loco_err *err)
{
    LOCO_UNUSED(b);
    LOCO_UNUSED(err);
    return LOCO_OK;
}

static loco_status fake_count(backend *b, const chat_request *req, long *out_n, loco_err *err)
{
    LOCO_UNUSED(b);
    LOCO_UNUSED(req);
    LOCO_UNUSED(err);
    *out_n = 1234;
    return LOCO_OK;
}

static void fake_free(backend *b)
{
    LOCO_UNUSED(b);
}

static const backend_ops fake_ops = {
    .kind = "fake",
    .complete = fake_complete,
    .health = fake_health,
    .count_tokens = fake_count,
    .free = fake_free,
};

static void fake_init(fake_backend *f, const char *url, const fake_step *steps, size_t n)
{
    memset(f, 0, sizeof(*f));
    f->base.ops = &fake_ops;
    f->base.url = (char *)(uintptr_t)url;
    f->steps = steps;
    f->n_steps = n;
}

/* ---- event log: what the caller saw, as one string ---- */

static loco_status log_event(void *ctx, const chat_event *ev)
{
    buf *b = ctx;
    switch (ev->type) {
    case CHAT_EV_MESSAGE_START:
        return buf_appends(b, "start;");
    case CHAT_EV_TEXT_DELTA:
        return buf_appendf(b, "text:%.*s;", (int)ev->len, ev->text);
    case CHAT_EV_TOOL_CALL_START:
        return buf_appendf(b, "call:%s(", ev->name);
    case CHAT_EV_TOOL_ARGS_DELTA:
        return buf_append(b, ev->text, ev->len);
    case CHAT_EV_TOOL_CALL_END:
        return buf_appends(b, ");");
    case CHAT_EV_MESSAGE_END:
        return buf_appendf(b, "end:%s;", chat_stop_str(ev->stop));
    default:
        return buf_appends(b, "other;");
    }
}

/* ---- requests ---- */

static void add_text(chat_request *r, chat_role role, const char *text)
{
    chat_message *m = chat_request_add_message(r, role);
    assert_non_null(m);
    chat_block *b = chat_message_add_block(r, m, CHAT_BLOCK_TEXT);
    assert_non_null(b);
    b->text = chat_strdup(r, text);
}

static chat_request *simple_request(void)
{
    chat_request *r = chat_request_new();
    assert_non_null(r);
    r->model = chat_strdup(r, "claude-haiku-4-5");
    assert_non_null(chat_request_add_tool(r, "Read", "Reads a file", "{\"type\":\"object\"}"));
    add_text(r, CHAT_ROLE_USER, "Where is main?");
    return r;
}

typedef struct {
    fake_backend local, cloud;
    backend *h;
    buf log;
    backend_result res;
    loco_err err;
} fixture;

static const fake_step CLOUD_OK[] = {{FAKE_TEXT, "from cloud", NULL, LOCO_OK, 0}};

static void fixture_init(fixture *fx, const fake_step *local, size_t n_local,
                         const backend_hybrid_opts *opts)
{
    memset(fx, 0, sizeof(*fx));
    fake_init(&fx->local, "http://local", local, n_local);
    fake_init(&fx->cloud, "http://cloud", CLOUD_OK, 1);
    backend_hybrid_opts o;
    memset(&o, 0, sizeof(o));
    o.fallback_model = "qwen/qwen3-coder-next";
    assert_int_equal(backend_hybrid_new(&fx->local.base, &fx->cloud.base, opts ? opts : &o,
                                        &fx->h, &fx->err),
                     LOCO_OK);
    buf_init(&fx->log, 1 << 16);
}

static loco_status fixture_run(fixture *fx, const chat_request *req)
{
    loco_err_clear(&fx->err);
    buf_reset(&fx->log);
    return backend_complete(fx->h, req, NULL, log_event, &fx->log, &fx->res, &fx->err);
}

static void fixture_release(fixture *fx)
{
    backend_free(fx->h);
    buf_release(&fx->log);
}

/* The request went to the cloud (once, with the fallback model) for `reason`, and the caller
 * saw only the cloud's answer. */
static void assert_fallback(fixture *fx, loco_status rc, const char *reason, size_t local_calls)
{
    assert_int_equal(rc, LOCO_OK);
    assert_string_equal(fx->res.route, "fallback");
    assert_string_equal(fx->res.reason, reason);
    assert_int_equal(fx->local.calls, local_calls);
    assert_int_equal(fx->cloud.calls, 1);
    assert_string_equal(fx->cloud.last_model, "qwen/qwen3-coder-next");
    assert_string_equal(buf_str(&fx->log), "start;text:from cloud;end:end_turn;");
}

/* ---- tests ---- */

static void test_local_serves(void **state)
{
    (void)state;
    static const fake_step local[] = {{FAKE_CALL, "Let me look.", "Read", LOCO_OK, 0}};
    fixture fx;
    fixture_init(&fx, local, 1, NULL);
    chat_request *r = simple_request();
    assert_int_equal(fixture_run(&fx, r), LOCO_OK);
    assert_string_equal(fx.res.route, "local");
    assert_null(fx.res.reason);
    assert_true(fx.res.got_events);
    assert_int_equal(fx.local.calls, 1);
    assert_int_equal(fx.cloud.calls, 0);
    assert_string_equal(fx.local.last_model, "(none)"); /* the caller's model, untouched */
    assert_string_equal(buf_str(&fx.log),
                        "start;text:Let me look.;call:Read({\"file_path\":\"/a\"});end:tool_use;");
    long n = 0;
    assert_int_equal(backend_count_tokens(fx.h, r, &n, NULL), LOCO_OK);
    assert_int_equal(n, 1234); /* the local model's count */
    assert_int_equal(backend_health(fx.h, NULL), LOCO_OK);
    chat_request_free(r);
    fixture_release(&fx);
}

static void test_turn_limit(void **state)
{
    (void)state;
    fixture fx;
    backend_hybrid_opts o = {.max_local_turns = 3, .fallback_model = "qwen/qwen3-coder-next"};
    fixture_init(&fx, NULL, 0, &o);
    chat_request *r = simple_request();
    for (int i = 0; i < 2; i++) {
        add_text(r, CHAT_ROLE_ASSISTANT, "looking");
        add_text(r, CHAT_ROLE_USER, "go on");
    }
    static const fake_step local[] = {{FAKE_TEXT, "local", NULL, LOCO_OK, 0}};
    fx.local.steps = local;
    fx.local.n_steps = 1;
    assert_int_equal(fixture_run(&fx, r), LOCO_OK); /* 2 turns < 3: local */
    assert_string_equal(fx.res.route, "local");
    add_text(r, CHAT_ROLE_ASSISTANT, "looking");
    add_text(r, CHAT_ROLE_USER, "go on");
    assert_fallback(&fx, fixture_run(&fx, r), "turn_limit", 1);
    chat_request_free(r);
    fixture_release(&fx);
}

static void test_media_and_context(void **state)
{
    (void)state;
    fixture fx;
    backend_hybrid_opts o = {.local_ctx = 100, .fallback_model = "qwen/qwen3-coder-next"};
    fixture_init(&fx, NULL, 0, &o);
    chat_request *r = simple_request();
    chat_block *img = chat_message_add_block(r, &r->msgs[0], CHAT_BLOCK_IMAGE);
    assert_non_null(img);
    assert_fallback(&fx, fixture_run(&fx, r), "media", 0);
    chat_request_free(r);

    fx.cloud.calls = 0;
    r = simple_request();
    char big[2000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    add_text(r, CHAT_ROLE_USER, big); /* ~570 estimated tokens > 100 */
    assert_fallback(&fx, fixture_run(&fx, r), "context", 0);
    chat_request_free(r);
    fixture_release(&fx);
}

static void test_local_failures(void **state)
{
    (void)state;
    static const struct {
        loco_status rc;
        int http;
        const char *reason;
    } cases[] = {
        {LOCO_ERR_UNAVAILABLE, 0, "local_down"},
        {LOCO_ERR_TIMEOUT, 0, "local_timeout"},
        {LOCO_ERR_UPSTREAM, 500, "local_error"},
        {LOCO_ERR_UPSTREAM, 400, "local_error"},
        {LOCO_ERR_OVERFLOW, 400, "context_overflow"},
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(cases); i++) {
        fake_step local[1] = {{FAKE_FAIL, "partial", NULL, cases[i].rc, cases[i].http}};
        fixture fx;
        fixture_init(&fx, local, 1, NULL);
        chat_request *r = simple_request();
        /* no retry for a failing server; the partial local text never reaches the caller */
        assert_fallback(&fx, fixture_run(&fx, r), cases[i].reason, 1);
        chat_request_free(r);
        fixture_release(&fx);
    }
}

static void test_error_event(void **state)
{
    (void)state;
    static const fake_step local[] = {{FAKE_ERROR_EVENT, NULL, NULL, LOCO_OK, 0}};
    fixture fx;
    fixture_init(&fx, local, 1, NULL);
    chat_request *r = simple_request();
    assert_fallback(&fx, fixture_run(&fx, r), "local_error", 1);
    chat_request_free(r);
    fixture_release(&fx);
}

static size_t bad_seen;

static loco_status count_bad(void *ctx, const char *raw, size_t n, const char *reason)
{
    LOCO_UNUSED(ctx);
    assert_int_equal(n, 4);
    assert_memory_equal(raw, "{bad", 4);
    assert_string_equal(reason, "not JSON");
    bad_seen++;
    return LOCO_OK;
}

static void test_bad_call_retried_once(void **state)
{
    (void)state;
    static const fake_step local[] = {{FAKE_BAD_CALL, "first", NULL, LOCO_OK, 0},
                                      {FAKE_CALL, "second", "Read", LOCO_OK, 0}};
    fixture fx;
    fixture_init(&fx, local, 2, NULL);
    chat_request *r = simple_request();
    backend_call call;
    memset(&call, 0, sizeof(call));
    call.on_bad_call = count_bad;
    bad_seen = 0;
    assert_int_equal(backend_complete(fx.h, r, &call, log_event, &fx.log, &fx.res, &fx.err),
                     LOCO_OK);
    assert_string_equal(fx.res.route, "local");
    assert_int_equal(fx.local.calls, 2);
    assert_int_equal(fx.cloud.calls, 0);
    assert_int_equal(fx.res.bad_calls, 1);
    assert_int_equal(bad_seen, 1); /* the caller heard of it */
    /* only the retry's answer reaches the caller */
    assert_string_equal(buf_str(&fx.log),
                        "start;text:second;call:Read({\"file_path\":\"/a\"});end:tool_use;");
    chat_request_free(r);
    fixture_release(&fx);
}

static void test_bad_call_twice_goes_to_cloud(void **state)
{
    (void)state;
    static const fake_step local[] = {{FAKE_BAD_CALL, "first", NULL, LOCO_OK, 0},
                                      {FAKE_BAD_CALL, "second", NULL, LOCO_OK, 0}};
    fixture fx;
    fixture_init(&fx, local, 2, NULL);
    chat_request *r = simple_request();
    assert_fallback(&fx, fixture_run(&fx, r), "bad_tool_call", 2);
    assert_int_equal(fx.res.bad_calls, 2);
    chat_request_free(r);
    fixture_release(&fx);
}

static void test_unoffered_tool_and_no_end(void **state)
{
    (void)state;
    static const fake_step local[] = {{FAKE_CALL, "a", "Grep", LOCO_OK, 0},
                                      {FAKE_CALL, "b", "Grep", LOCO_OK, 0}};
    fixture fx;
    fixture_init(&fx, local, 2, NULL);
    chat_request *r = simple_request(); /* offers Read only */
    assert_fallback(&fx, fixture_run(&fx, r), "unmappable_tool", 2);
    chat_request_free(r);
    fixture_release(&fx);

    static const fake_step cut[] = {{FAKE_NO_END, "a", NULL, LOCO_OK, 0},
                                    {FAKE_TEXT, "whole", NULL, LOCO_OK, 0}};
    fixture_init(&fx, cut, 2, NULL);
    r = simple_request();
    assert_int_equal(fixture_run(&fx, r), LOCO_OK);
    assert_string_equal(fx.res.route, "local");
    assert_int_equal(fx.local.calls, 2);
    assert_string_equal(buf_str(&fx.log), "start;text:whole;end:end_turn;");
    chat_request_free(r);
    fixture_release(&fx);
}

static void test_force_cloud(void **state)
{
    (void)state;
    fixture fx;
    fixture_init(&fx, NULL, 0, NULL);
    assert_int_equal(backend_hybrid_force_cloud(&fx.local.base), LOCO_ERR_INVALID);
    assert_int_equal(backend_hybrid_force_cloud(NULL), LOCO_ERR_INVALID);
    assert_int_equal(backend_hybrid_force_cloud(fx.h), LOCO_OK);
    chat_request *r = simple_request();
    assert_fallback(&fx, fixture_run(&fx, r), "takeover", 0);
    chat_request_free(r);
    fixture_release(&fx);
}

static void test_cancel_and_cloud_failure(void **state)
{
    (void)state;
    static const fake_step local[] = {{FAKE_FAIL, NULL, NULL, LOCO_ERR_CANCELLED, 0}};
    fixture fx;
    fixture_init(&fx, local, 1, NULL);
    chat_request *r = simple_request();
    assert_int_equal(fixture_run(&fx, r), LOCO_ERR_CANCELLED);
    assert_int_equal(fx.cloud.calls, 0);
    assert_string_equal(buf_str(&fx.log), "");
    fixture_release(&fx);

    /* both sides fail: the cloud's status, the message names the fallback and the local cause */
    static const fake_step down[] = {{FAKE_FAIL, NULL, NULL, LOCO_ERR_UNAVAILABLE, 0}};
    static const fake_step cloud_down[] = {{FAKE_FAIL, NULL, NULL, LOCO_ERR_UNAVAILABLE, 0}};
    fixture_init(&fx, down, 1, NULL);
    fx.cloud.steps = cloud_down;
    assert_int_equal(fixture_run(&fx, r), LOCO_ERR_UNAVAILABLE);
    assert_string_equal(fx.res.route, "fallback");
    assert_string_equal(fx.res.reason, "local_down");
    assert_string_equal(fx.err.msg, "cloud fallback (local_down: cannot connect to "
                                    "http://local): cannot connect to http://cloud");
    chat_request_free(r);
    fixture_release(&fx);
}

/* The rules themselves, as the gateway uses them. */
static void test_policy(void **state)
{
    (void)state;
    chat_request *r = chat_request_new();
    assert_non_null(r);
    r->system = chat_strdup(r, "ignored when a system prompt is given");
    add_text(r, CHAT_ROLE_USER, "0123456789012345678901234567890123456789"); /* 40 bytes */
    /* bytes 40 + "SYS" 3 = 43 -> (86 + 6) / 7 = 13, plus 2 turns * 5 */
    assert_int_equal(policy_estimate_tokens("SYS", r), 23);
    /* NULL: the request's own system (37 bytes): (77 * 2 + 6) / 7 = 22, plus 10 */
    assert_int_equal(policy_estimate_tokens(NULL, r), 32);

    policy_config pc = {.max_local_turns = 1, .local_ctx = 23, .system_prompt = "SYS",
                        .cloud_available = true};
    long est = 0;
    assert_null(policy_local_refusal(r, &pc, &est)); /* 23 is not above 23 */
    assert_int_equal(est, 23);
    add_text(r, CHAT_ROLE_ASSISTANT, "a"); /* 44 bytes: 94 / 7 = 13, plus 3 turns * 5 = 28 */
    assert_string_equal(policy_local_refusal(r, &pc, &est), "turn_limit");
    assert_int_equal(est, 28);
    pc.cloud_available = false; /* nowhere to go: only the size rule refuses */
    assert_string_equal(policy_local_refusal(r, &pc, NULL), "context");
    pc.local_ctx = 28;
    assert_null(policy_local_refusal(r, &pc, NULL));
    pc.max_local_turns = 0; /* defaults: 10 turns, 51200 tokens */
    pc.local_ctx = 0;
    pc.cloud_available = true;
    assert_null(policy_local_refusal(r, &pc, NULL));
    chat_block *img = chat_message_add_block(r, &r->msgs[0], CHAT_BLOCK_IMAGE);
    assert_non_null(img);
    assert_string_equal(policy_local_refusal(r, &pc, NULL), "media");
    chat_request_free(r);

    assert_string_equal(policy_failure_reason(LOCO_ERR_OVERFLOW), "context_overflow");
    assert_string_equal(policy_failure_reason(LOCO_ERR_TIMEOUT), "local_timeout");
    assert_string_equal(policy_failure_reason(LOCO_ERR_UNAVAILABLE), "local_down");
    assert_string_equal(policy_failure_reason(LOCO_ERR_UPSTREAM), "local_error");
    assert_true(policy_server_failed(LOCO_ERR_UPSTREAM, 502));
    assert_false(policy_server_failed(LOCO_ERR_UPSTREAM, 400));
    assert_true(policy_server_failed(LOCO_ERR_TIMEOUT, 0));
    assert_false(policy_server_failed(LOCO_ERR_OVERFLOW, 400));
}

/* A streaming caller gets the answer from its first good tool call on: a broken call after
 * that cannot be retried any more and becomes a note; a caller that does not stream has the
 * whole answer held, so the same broken call is retried. */
static void test_stream_commit(void **state)
{
    (void)state;
    static const fake_step local[] = {{FAKE_CALL_BAD, "Looking.", "Read", LOCO_OK, 0},
                                      {FAKE_CALL, "again", "Read", LOCO_OK, 0}};
    fixture fx;
    fixture_init(&fx, local, 2, NULL);
    chat_request *r = simple_request();
    backend_call call;
    memset(&call, 0, sizeof(call));
    call.stream = true;
    assert_int_equal(backend_complete(fx.h, r, &call, log_event, &fx.log, &fx.res, &fx.err),
                     LOCO_OK);
    assert_int_equal(fx.local.calls, 1);
    assert_string_equal(fx.res.route, "local");
    assert_true(fx.res.t_first_token > 0);
    assert_string_equal(buf_str(&fx.log),
                        "start;text:Looking.;call:Read({\"file_path\":\"/a\"});"
                        "text:\n[loco: a tool call could not be parsed and was not run: not "
                        "JSON]\n;end:tool_use;");
    fixture_release(&fx);

    fixture_init(&fx, local, 2, NULL); /* held to the end: retried */
    assert_int_equal(fixture_run(&fx, r), LOCO_OK);
    assert_int_equal(fx.local.calls, 2);
    assert_int_equal(fx.res.retries, 1);
    assert_string_equal(buf_str(&fx.log),
                        "start;text:again;call:Read({\"file_path\":\"/a\"});end:tool_use;");
    chat_request_free(r);
    fixture_release(&fx);
}

/* A streaming prose answer commits once it holds HYBRID_COMMIT_TEXT_BYTES of text. */
static void test_stream_prose(void **state)
{
    (void)state;
    char prose[HYBRID_COMMIT_TEXT_BYTES + 1];
    memset(prose, 'p', sizeof(prose) - 1);
    prose[sizeof(prose) - 1] = 0;
    fake_step long_text[] = {{FAKE_TEXT_BAD, prose, NULL, LOCO_OK, 0}};
    fixture fx;
    fixture_init(&fx, long_text, 1, NULL);
    chat_request *r = simple_request();
    backend_call call;
    memset(&call, 0, sizeof(call));
    call.stream = true;
    assert_int_equal(backend_complete(fx.h, r, &call, log_event, &fx.log, &fx.res, &fx.err),
                     LOCO_OK);
    assert_int_equal(fx.local.calls, 1); /* committed: the bad call became a note */
    assert_non_null(strstr(buf_str(&fx.log), "[loco: a tool call could not be parsed"));
    fixture_release(&fx);

    prose[HYBRID_COMMIT_TEXT_BYTES - 1] = 0; /* one byte short: still held, so retried */
    fake_step short_text[] = {{FAKE_TEXT_BAD, prose, NULL, LOCO_OK, 0},
                              {FAKE_TEXT, "fine", NULL, LOCO_OK, 0}};
    fixture_init(&fx, short_text, 2, NULL);
    assert_int_equal(backend_complete(fx.h, r, &call, log_event, &fx.log, &fx.res, &fx.err),
                     LOCO_OK);
    assert_int_equal(fx.local.calls, 2);
    assert_string_equal(buf_str(&fx.log), "start;text:fine;end:end_turn;");
    chat_request_free(r);
    fixture_release(&fx);
}

/* After a streaming answer was passed on, a failure cannot fall back any more. */
static void test_stream_fails_midway(void **state)
{
    (void)state;
    static const fake_step local[] = {{FAKE_CALL_FAIL, "x", "Read", LOCO_ERR_UPSTREAM, 502}};
    fixture fx;
    fixture_init(&fx, local, 1, NULL);
    chat_request *r = simple_request();
    backend_call call;
    memset(&call, 0, sizeof(call));
    call.stream = true;
    assert_int_equal(backend_complete(fx.h, r, &call, log_event, &fx.log, &fx.res, &fx.err),
                     LOCO_ERR_UPSTREAM);
    assert_true(fx.res.got_events);
    assert_string_equal(fx.res.route, "local");
    assert_int_equal(fx.cloud.calls, 0);
    assert_string_equal(buf_str(&fx.log), "start;text:x;call:Read({\"file_path\":\"/a\"});");
    chat_request_free(r);
    fixture_release(&fx);
}

/* The fit hook maps or rejects each call; its mapped name and arguments are what is passed. */
static backend_fit fit_grep(void *ctx, const chat_request *req, const char *name,
                            const char *args_json, const char **out_name, buf *out_args,
                            char *why, size_t why_size)
{
    LOCO_UNUSED(req);
    (*(int *)ctx)++;
    assert_string_equal(args_json, "{\"file_path\":\"/a\"}");
    if (!strcmp(name, "Grep")) {
        *out_name = "Bash";
        buf_appends(out_args, "{\"command\":\"grep x\"}");
        return BACKEND_FIT_MAPPED;
    }
    if (!strcmp(name, "Write")) {
        snprintf(why, why_size, "Write cannot be mapped");
        return BACKEND_FIT_REJECT;
    }
    *out_name = name;
    return BACKEND_FIT_KEEP;
}

static void test_fit_hook(void **state)
{
    (void)state;
    static const fake_step local[] = {{FAKE_CALL, "a", "Grep", LOCO_OK, 0},
                                      {FAKE_CALL, "b", "Write", LOCO_OK, 0},
                                      {FAKE_CALL, "c", "Write", LOCO_OK, 0}};
    fixture fx;
    fixture_init(&fx, local, 3, NULL);
    chat_request *r = simple_request(); /* offers Read only: the hook decides, not the list */
    int fits = 0;
    backend_call call;
    memset(&call, 0, sizeof(call));
    call.fit_call = fit_grep;
    call.fit_ctx = &fits;
    assert_int_equal(backend_complete(fx.h, r, &call, log_event, &fx.log, &fx.res, &fx.err),
                     LOCO_OK);
    assert_string_equal(buf_str(&fx.log),
                        "start;text:a;call:Bash({\"command\":\"grep x\"});end:tool_use;");
    assert_int_equal(fits, 1);
    buf_reset(&fx.log);
    assert_int_equal(backend_complete(fx.h, r, &call, log_event, &fx.log, &fx.res, &fx.err),
                     LOCO_OK);
    assert_string_equal(fx.res.route, "fallback");
    assert_string_equal(fx.res.reason, "unmappable_tool");
    assert_int_equal(fits, 3);
    chat_request_free(r);
    fixture_release(&fx);
}

/* Without a cloud of its own the hybrid hands the fallback back to its caller. */
static void test_no_cloud(void **state)
{
    (void)state;
    static const fake_step local[] = {{FAKE_FAIL, "partial", NULL, LOCO_ERR_UNAVAILABLE, 0},
                                      {FAKE_TEXT, "ok", NULL, LOCO_OK, 0},
                                      {FAKE_TEXT, "ok", NULL, LOCO_OK, 0}};
    fake_backend lb;
    fake_init(&lb, "http://local", local, 3);
    backend *h = NULL;
    backend_hybrid_opts o = {.max_local_turns = 1, .local_ctx = 100};
    assert_int_equal(backend_hybrid_new(&lb.base, NULL, &o, &h, NULL), LOCO_OK);
    chat_request *r = simple_request();
    buf log;
    buf_init(&log, 1 << 16);
    backend_result res;
    loco_err err;
    assert_int_equal(backend_complete(h, r, NULL, log_event, &log, &res, &err),
                     LOCO_ERR_UNAVAILABLE);
    assert_string_equal(res.route, "fallback");
    assert_string_equal(res.reason, "local_down");
    assert_false(res.got_events);
    assert_string_equal(buf_str(&log), "");
    /* the turn limit needs somewhere to go: without fallback_available it does not refuse */
    add_text(r, CHAT_ROLE_ASSISTANT, "looking");
    add_text(r, CHAT_ROLE_USER, "go on");
    assert_int_equal(backend_complete(h, r, NULL, log_event, &log, &res, &err), LOCO_OK);
    assert_string_equal(res.route, "local");
    backend_free(h);
    o.fallback_available = true;
    assert_int_equal(backend_hybrid_new(&lb.base, NULL, &o, &h, NULL), LOCO_OK);
    assert_int_equal(backend_complete(h, r, NULL, log_event, &log, &res, &err),
                     LOCO_ERR_UNSUPPORTED);
    assert_string_equal(res.reason, "turn_limit");
    assert_int_equal(lb.calls, 2);
    backend_free(h);
    /* the size rule with the exact count: 1234 tokens > 100, before any local call */
    o.fallback_available = false;
    o.exact_count = true;
    assert_int_equal(backend_hybrid_new(&lb.base, NULL, &o, &h, NULL), LOCO_OK);
    assert_int_equal(backend_complete(h, r, NULL, log_event, &log, &res, &err),
                     LOCO_ERR_OVERFLOW);
    assert_string_equal(res.reason, "context");
    assert_true(res.context_overflow);
    assert_int_equal(res.prompt_tokens, 1234);
    assert_int_equal(res.context_tokens, 100);
    assert_int_equal(lb.calls, 2);
    backend_free(h);
    o.exact_count = false; /* the estimate (~15 tokens) lets it through */
    assert_int_equal(backend_hybrid_new(&lb.base, NULL, &o, &h, NULL), LOCO_OK);
    assert_int_equal(backend_complete(h, r, NULL, log_event, &log, &res, &err), LOCO_OK);
    assert_int_equal(lb.calls, 3);
    backend_free(h);
    buf_release(&log);
    chat_request_free(r);
}

/* A full engine queue is answered at once: no retry, no fallback. */
static void test_busy(void **state)
{
    (void)state;
    static const fake_step local[] = {{FAKE_FAIL, NULL, NULL, LOCO_ERR_BUSY, 0}};
    fixture fx;
    fixture_init(&fx, local, 1, NULL);
    chat_request *r = simple_request();
    assert_int_equal(fixture_run(&fx, r), LOCO_ERR_BUSY);
    assert_string_equal(fx.res.route, "local");
    assert_string_equal(fx.res.reason, "busy");
    assert_int_equal(fx.local.calls, 1);
    assert_int_equal(fx.cloud.calls, 0);
    chat_request_free(r);
    fixture_release(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_serves),
        cmocka_unit_test(test_turn_limit),
        cmocka_unit_test(test_media_and_context),
        cmocka_unit_test(test_local_failures),
        cmocka_unit_test(test_error_event),
        cmocka_unit_test(test_bad_call_retried_once),
        cmocka_unit_test(test_bad_call_twice_goes_to_cloud),
        cmocka_unit_test(test_unoffered_tool_and_no_end),
        cmocka_unit_test(test_force_cloud),
        cmocka_unit_test(test_cancel_and_cloud_failure),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_stream_commit),
        cmocka_unit_test(test_stream_prose),
        cmocka_unit_test(test_stream_fails_midway),
        cmocka_unit_test(test_fit_hook),
        cmocka_unit_test(test_no_cloud),
        cmocka_unit_test(test_busy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
