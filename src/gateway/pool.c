/* pool.c: the local backend pool (pool.h): a backend over member backends, with a health
 * thread, least-busy selection and failover before the first event. */
#include "base/common.h"

#include <pthread.h>
#include <stdatomic.h>

#include "backend/policy.h"
#include "base/log.h"
#include "gateway/pool.h"

typedef struct {
    backend *b;
    atomic_int in_flight;
    atomic_bool healthy;
    atomic_bool ever_up; /* a probe or a call succeeded since the pool started */
    atomic_bool loading; /* never up, and it answers "not ready" (llama-server's 503 while it
                            loads its model) */
} pool_member_t;

struct pool {
    backend base; /* the pool as a backend; first, so a backend * is the pool */
    pool_member_t m[POOL_MAX];
    size_t n;
    const loco_log *log;
    long interval_ms;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t ready_cv; /* broadcast after each probe round */
    bool stopping;
    long start_wait_ms;  /* how long a never-up member counts as starting (0: never) */
    long start_probe_ms; /* probe interval while one is starting */
    double t_start;      /* clock_now_ms() at pool_start_health */
};

static bool window_open(const pool *p)
{
    return p->start_wait_ms > 0 && clock_now_ms() - p->t_start < (double)p->start_wait_ms;
}

/* True while the startup window is open and some member that was never up answers that it is
 * loading: calls wait for it. (A member that cannot be reached at all is down, as before.) */
static bool starting(pool *p)
{
    if (!window_open(p))
        return false;
    for (size_t i = 0; i < p->n; i++) {
        if (!atomic_load(&p->m[i].ever_up) && atomic_load(&p->m[i].loading))
            return true;
    }
    return false;
}

/* True while the window is open and some member was never up: probed more often. */
static bool any_never_up(pool *p)
{
    if (!window_open(p))
        return false;
    for (size_t i = 0; i < p->n; i++) {
        if (!atomic_load(&p->m[i].ever_up))
            return true;
    }
    return false;
}

/* Waits until a member is up, the startup window closes, the pool stops or *cancel. */
static void wait_ready(pool *p, const volatile int *cancel)
{
    log_msg(p->log, LOG_INFO,
            "no local backend is up yet: waiting up to %.0f s for one that is "
            "starting",
            ((double)p->start_wait_ms - (clock_now_ms() - p->t_start)) / 1000.0);
    pthread_mutex_lock(&p->mu);
    while (!p->stopping && !pool_any_healthy(p) && starting(p) && !(cancel && *cancel)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->ready_cv, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
}

/* The healthy member with the fewest calls in flight not in tried; -1 when none. */
static int acquire(pool *p, uint64_t tried)
{
    int best = -1;
    int best_load = INT_MAX;
    for (size_t i = 0; i < p->n; i++) {
        if (tried & ((uint64_t)1 << i))
            continue;
        if (!atomic_load(&p->m[i].healthy))
            continue;
        int load = atomic_load(&p->m[i].in_flight);
        if (load < best_load) {
            best = (int)i;
            best_load = load;
        }
    }
    if (best >= 0)
        atomic_fetch_add(&p->m[best].in_flight, 1);
    return best;
}

static void release(pool *p, int i, bool failed)
{
    atomic_fetch_sub(&p->m[i].in_flight, 1);
    if (failed && atomic_exchange(&p->m[i].healthy, false))
        log_msg(p->log, LOG_WARN, "local backend %s marked down after a failed request",
                p->m[i].b->url);
}

/* Passes a member's events on and notes that one did (no failover after that). */
typedef struct {
    chat_event_fn cb;
    void *ctx;
    bool forwarded;
} pool_relay;

static loco_status relay_event(void *ctx, const chat_event *ev)
{
    pool_relay *r = ctx;
    r->forwarded = true;
    return r->cb(r->ctx, ev);
}

/* One pass over the members (see pool_complete); *out_forwarded when an event reached cb. */
static loco_status try_members(pool *p, const chat_request *req, const backend_call *call,
                               chat_event_fn cb, void *ctx, backend_result *out, loco_err *err,
                               bool *out_forwarded)
{
    uint64_t tried = 0;
    bool any_timeout = false, any_error = false, any_busy = false;
    char last[LOCO_ERR_MSG_MAX] = "";
    int last_http = 0;
    *out_forwarded = false;
    for (;;) {
        int m = acquire(p, tried);
        if (m < 0)
            break;
        pool_relay r = {cb, ctx, false};
        loco_err_clear(err);
        loco_status rc = backend_complete(p->m[m].b, req, call, relay_event, &r, out, err);
        bool busy = rc == LOCO_ERR_BUSY;
        bool server_failed = policy_server_failed(rc, out->http_status);
        release(p, m, server_failed && !r.forwarded);
        if (rc == LOCO_OK)
            atomic_store(&p->m[m].ever_up, true);
        else if (out->http_status == 503 && !atomic_load(&p->m[m].ever_up))
            atomic_store(&p->m[m].loading, true);
        *out_forwarded = r.forwarded;
        if (rc == LOCO_OK || r.forwarded || (!server_failed && !busy))
            return rc;
        log_msg(p->log, LOG_WARN, "local backend %s failed: %s", p->m[m].b->url,
                err && err->msg[0] ? err->msg : loco_status_str(rc));
        any_timeout |= rc == LOCO_ERR_TIMEOUT;
        any_busy |= busy;
        any_error |= !busy && rc != LOCO_ERR_UNAVAILABLE && rc != LOCO_ERR_TIMEOUT;
        snprintf(last, sizeof(last), "%s", err ? err->msg : "");
        last_http = out->http_status;
        tried |= (uint64_t)1 << m;
    }
    loco_status rc = any_timeout ? LOCO_ERR_TIMEOUT
                     : any_error ? LOCO_ERR_UPSTREAM
                     : any_busy  ? LOCO_ERR_BUSY
                                 : LOCO_ERR_UNAVAILABLE;
    out->http_status = last_http;
    if (last[0])
        return loco_err_set(err, rc, "%s", last);
    return loco_err_set(err, rc, "no local model server is up");
}

static loco_status pool_complete(backend *base, const chat_request *req, const backend_call *call,
                                 chat_event_fn cb, void *ctx, backend_result *out, loco_err *err)
{
    pool *p = (pool *)base;
    /* a server that is still starting (never up since the pool started) is waited for, not
     * reported down: once before trying, and once more when every member failed */
    if (!pool_any_healthy(p) && starting(p))
        wait_ready(p, call->cancel);
    bool forwarded = false;
    loco_status rc = try_members(p, req, call, cb, ctx, out, err, &forwarded);
    if (rc == LOCO_OK || forwarded || rc == LOCO_ERR_BUSY || !starting(p) ||
        (call->cancel && *call->cancel))
        return rc;
    wait_ready(p, call->cancel);
    if (!pool_any_healthy(p) || (call->cancel && *call->cancel))
        return rc;
    return try_members(p, req, call, cb, ctx, out, err, &forwarded);
}

static loco_status pool_count_tokens(backend *base, const chat_request *req, long *out_n,
                                     loco_err *err)
{
    pool *p = (pool *)base;
    loco_status rc = loco_err_set(err, LOCO_ERR_UNSUPPORTED, "no local model server is up");
    for (size_t i = 0; i < p->n; i++) {
        if (!atomic_load(&p->m[i].healthy))
            continue;
        rc = backend_count_tokens(p->m[i].b, req, out_n, err);
        if (rc == LOCO_OK)
            return LOCO_OK;
    }
    return rc;
}

static loco_status pool_health(backend *base, loco_err *err)
{
    pool *p = (pool *)base;
    if (pool_any_healthy(p))
        return LOCO_OK;
    return loco_err_set(err, LOCO_ERR_UNAVAILABLE, "no local model server is up");
}

static void pool_free_op(backend *base)
{
    LOCO_UNUSED(base); /* owned by pool_free */
}

static const backend_ops pool_ops = {
    .kind = "pool",
    .complete = pool_complete,
    .health = pool_health,
    .count_tokens = pool_count_tokens,
    .free = pool_free_op,
};

loco_status pool_new(const loco_log *log, pool **out, loco_err *err)
{
    pool *p = calloc(1, sizeof(*p));
    if (!p)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    p->base.ops = &pool_ops;
    p->base.url = strdup("pool");
    if (!p->base.url) {
        free(p);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->ready_cv, NULL);
    p->log = log;
    *out = p;
    return LOCO_OK;
}

loco_status pool_add(pool *p, backend *b, loco_err *err)
{
    if (p->n >= POOL_MAX || p->thread_started) {
        backend_free(b);
        return loco_err_set(err, LOCO_ERR_LIMIT, "the local pool holds at most %d members",
                            POOL_MAX);
    }
    p->m[p->n].b = b;
    atomic_init(&p->m[p->n].in_flight, 0);
    atomic_init(&p->m[p->n].healthy, true);
    atomic_init(&p->m[p->n].ever_up, false);
    atomic_init(&p->m[p->n].loading, false);
    p->n++;
    return LOCO_OK;
}

static void probe_all(pool *p)
{
    for (size_t i = 0; i < p->n; i++) {
        loco_err err;
        loco_err_clear(&err);
        loco_status rc = backend_health(p->m[i].b, &err);
        bool ok = rc == LOCO_OK;
        bool was = atomic_exchange(&p->m[i].healthy, ok);
        if (ok)
            atomic_store(&p->m[i].ever_up, true);
        atomic_store(&p->m[i].loading, rc == LOCO_ERR_UPSTREAM && !atomic_load(&p->m[i].ever_up));
        if (was != ok)
            log_msg(p->log, ok ? LOG_INFO : LOG_WARN, "local backend %s is %s%s%s",
                    p->m[i].b->url, ok ? "up" : "down", ok ? "" : ": ", ok ? "" : err.msg);
    }
}

static void *health_main(void *arg)
{
    pool *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        pthread_mutex_unlock(&p->mu);
        probe_all(p);
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->ready_cv);
        long interval = any_never_up(p) && p->start_probe_ms > 0 &&
                                p->start_probe_ms < p->interval_ms
                            ? p->start_probe_ms
                            : p->interval_ms;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += interval / 1000;
        ts.tv_nsec += (interval % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!p->stopping && pthread_cond_timedwait(&p->cv, &p->mu, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void pool_set_startup(pool *p, long wait_ms, long probe_ms)
{
    p->start_wait_ms = wait_ms > 0 ? wait_ms : 0;
    p->start_probe_ms = probe_ms > 0 ? probe_ms : 1000;
}

loco_status pool_start_health(pool *p, long interval_ms, loco_err *err)
{
    p->interval_ms = interval_ms > 0 ? interval_ms : 5000;
    p->t_start = clock_now_ms();
    if (pthread_create(&p->thread, NULL, health_main, p) != 0)
        return loco_err_set(err, LOCO_ERR_NOMEM, "cannot start the health thread");
    p->thread_started = true;
    return LOCO_OK;
}

void pool_free(pool *p)
{
    if (!p)
        return;
    if (p->thread_started) {
        pthread_mutex_lock(&p->mu);
        p->stopping = true;
        pthread_cond_broadcast(&p->cv);
        pthread_cond_broadcast(&p->ready_cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    for (size_t i = 0; i < p->n; i++)
        backend_free(p->m[i].b);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->ready_cv);
    free(p->base.url);
    free(p);
}

backend *pool_backend(pool *p)
{
    return &p->base;
}

size_t pool_size(const pool *p)
{
    return p->n;
}

backend *pool_member(pool *p, int i)
{
    return p->m[i].b;
}

const char *pool_url(const pool *p, int i)
{
    return p->m[i].b->url;
}

bool pool_healthy(const pool *p, int i)
{
    return atomic_load(&p->m[i].healthy);
}

int pool_in_flight(const pool *p, int i)
{
    return atomic_load(&p->m[i].in_flight);
}

bool pool_any_healthy(const pool *p)
{
    for (size_t i = 0; i < p->n; i++) {
        if (atomic_load(&p->m[i].healthy))
            return true;
    }
    return false;
}
