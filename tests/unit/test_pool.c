/* test_pool.c: gateway/pool as a backend over scripted members: least-busy choice, failover
 * before the first event (down, 5xx, busy), no failover once an event was passed, the status
 * when every member failed, unhealthy marking, count_tokens from the first healthy member. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "gateway/pool.h"

typedef struct {
    backend base;
    loco_status rc;   /* what complete() returns */
    int http;         /* out->http_status with rc */
    bool event_first; /* pass MESSAGE_START before failing */
    int calls;
    long count;       /* count_tokens answer; < 0: unsupported */
} member;

static loco_status m_complete(backend *b, const chat_request *req, const backend_call *call,
                              chat_event_fn cb, void *ctx, backend_result *out, loco_err *err)
{
    LOCO_UNUSED(req);
    LOCO_UNUSED(call);
    member *m = (member *)b;
    m->calls++;
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    chat_usage_init(&ev.usage);
    if (m->rc == LOCO_OK || m->event_first) {
        ev.type = CHAT_EV_MESSAGE_START;
        loco_status rc = cb(ctx, &ev);
        if (rc)
            return rc;
    }
    if (m->rc) {
        out->http_status = m->http;
        return loco_err_set(err, m->rc, "%s failed", b->url);
    }
    ev.type = CHAT_EV_MESSAGE_END;
    return cb(ctx, &ev);
}

static loco_status m_health(backend *b, loco_err *err)
{
    LOCO_UNUSED(b);
    LOCO_UNUSED(err);
    return LOCO_OK;
}

static loco_status m_count(backend *b, const chat_request *req, long *out_n, loco_err *err)
{
    LOCO_UNUSED(req);
    member *m = (member *)b;
    if (m->count < 0)
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED, "cannot count");
    *out_n = m->count;
    return LOCO_OK;
}

static void m_free(backend *b)
{
    free(b->url);
}

static const backend_ops member_ops = {"member", m_complete, m_health, m_count, m_free};

static void member_init(member *m, const char *url, loco_status rc, int http)
{
    memset(m, 0, sizeof(*m));
    m->base.ops = &member_ops;
    m->base.url = strdup(url);
    m->rc = rc;
    m->http = http;
    m->count = -1;
}

static loco_status count_events(void *ctx, const chat_event *ev)
{
    LOCO_UNUSED(ev);
    (*(int *)ctx)++;
    return LOCO_OK;
}

static pool *make(member *ms, size_t n)
{
    pool *p = NULL;
    assert_int_equal(pool_new(NULL, &p, NULL), LOCO_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pool_add(p, &ms[i].base, NULL), LOCO_OK);
    return p;
}

static loco_status run(pool *p, int *events, backend_result *res, loco_err *err)
{
    chat_request *req = chat_request_new();
    assert_non_null(req);
    *events = 0;
    loco_err_clear(err);
    loco_status rc = backend_complete(pool_backend(p), req, NULL, count_events, events, res, err);
    chat_request_free(req);
    return rc;
}

/* Members live in a static array: the pool "frees" them through m_free (their url only). */
static member ms[4];

static void test_failover(void **state)
{
    (void)state;
    member_init(&ms[0], "down", LOCO_ERR_UNAVAILABLE, 0);
    member_init(&ms[1], "5xx", LOCO_ERR_UPSTREAM, 502);
    member_init(&ms[2], "busy", LOCO_ERR_BUSY, 0);
    member_init(&ms[3], "ok", LOCO_OK, 0);
    pool *p = make(ms, 4);
    assert_string_equal(pool_backend(p)->ops->kind, "pool");
    int events;
    backend_result res;
    loco_err err;
    assert_int_equal(run(p, &events, &res, &err), LOCO_OK);
    assert_int_equal(events, 2); /* only the good member's answer */
    for (int i = 0; i < 4; i++)
        assert_int_equal(ms[i].calls, 1);
    /* down and 5xx are marked unhealthy, a busy member is not */
    assert_false(pool_healthy(p, 0));
    assert_false(pool_healthy(p, 1));
    assert_true(pool_healthy(p, 2));
    assert_true(pool_healthy(p, 3));
    for (int i = 0; i < 4; i++)
        assert_int_equal(pool_in_flight(p, i), 0);
    assert_true(pool_any_healthy(p));
    assert_int_equal(backend_health(pool_backend(p), NULL), LOCO_OK);
    pool_free(p);
}

/* Everyone failed: timeout beats error beats busy beats down. */
static void test_all_fail(void **state)
{
    (void)state;
    int events;
    backend_result res;
    loco_err err;
    member_init(&ms[0], "busy", LOCO_ERR_BUSY, 0);
    member_init(&ms[1], "down", LOCO_ERR_UNAVAILABLE, 0);
    pool *p = make(ms, 2);
    assert_int_equal(run(p, &events, &res, &err), LOCO_ERR_BUSY);
    pool_free(p);
    member_init(&ms[0], "busy", LOCO_ERR_BUSY, 0);
    member_init(&ms[1], "5xx", LOCO_ERR_UPSTREAM, 503);
    p = make(ms, 2);
    assert_int_equal(run(p, &events, &res, &err), LOCO_ERR_UPSTREAM);
    assert_int_equal(res.http_status, 503);
    pool_free(p);
    member_init(&ms[0], "slow", LOCO_ERR_TIMEOUT, 0);
    member_init(&ms[1], "5xx", LOCO_ERR_UPSTREAM, 503);
    p = make(ms, 2);
    assert_int_equal(run(p, &events, &res, &err), LOCO_ERR_TIMEOUT);
    /* every member unhealthy now: unavailable at once, no call */
    assert_false(pool_any_healthy(p));
    assert_int_equal(run(p, &events, &res, &err), LOCO_ERR_UNAVAILABLE);
    assert_int_equal(ms[0].calls, 1);
    assert_int_not_equal(backend_health(pool_backend(p), NULL), LOCO_OK);
    pool_free(p);
}

/* A member that failed after an event reached the caller is not replaced, and a request
 * error (4xx) is the answer. */
static void test_no_failover_after_events(void **state)
{
    (void)state;
    int events;
    backend_result res;
    loco_err err;
    member_init(&ms[0], "midway", LOCO_ERR_UPSTREAM, 502);
    ms[0].event_first = true;
    member_init(&ms[1], "ok", LOCO_OK, 0);
    pool *p = make(ms, 2);
    assert_int_equal(run(p, &events, &res, &err), LOCO_ERR_UPSTREAM);
    assert_int_equal(events, 1);
    assert_int_equal(ms[1].calls, 0);
    pool_free(p);
    member_init(&ms[0], "400", LOCO_ERR_UPSTREAM, 400);
    member_init(&ms[1], "ok", LOCO_OK, 0);
    p = make(ms, 2);
    assert_int_equal(run(p, &events, &res, &err), LOCO_ERR_UPSTREAM);
    assert_int_equal(ms[1].calls, 0);
    assert_true(pool_healthy(p, 0));
    pool_free(p);
}

static void test_count_and_limit(void **state)
{
    (void)state;
    member_init(&ms[0], "a", LOCO_OK, 0);
    member_init(&ms[1], "b", LOCO_OK, 0);
    ms[1].count = 77;
    pool *p = make(ms, 2);
    chat_request *req = chat_request_new();
    long n = 0;
    assert_int_equal(backend_count_tokens(pool_backend(p), req, &n, NULL), LOCO_OK);
    assert_int_equal(n, 77); /* the first member that can count */
    chat_request_free(req);
    assert_int_equal(pool_size(p), 2);
    assert_string_equal(pool_url(p, 1), "b");
    assert_ptr_equal(pool_member(p, 1), &ms[1].base);
    pool_free(p);

    pool *full = NULL;
    assert_int_equal(pool_new(NULL, &full, NULL), LOCO_OK);
    static member many[POOL_MAX + 1];
    for (int i = 0; i < POOL_MAX; i++) {
        member_init(&many[i], "m", LOCO_OK, 0);
        assert_int_equal(pool_add(full, &many[i].base, NULL), LOCO_OK);
    }
    member_init(&many[POOL_MAX], "one too many", LOCO_OK, 0);
    assert_int_equal(pool_add(full, &many[POOL_MAX].base, NULL), LOCO_ERR_LIMIT);
    pool_free(full);
    pool_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_all_fail),
        cmocka_unit_test(test_no_failover_after_events),
        cmocka_unit_test(test_count_and_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
