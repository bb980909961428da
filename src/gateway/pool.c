/* pool.c: local backend pool with a health thread. */
#include "base/common.h"

#include <pthread.h>
#include <stdatomic.h>

#include "gateway/pool.h"

#define POOL_MAX 64

typedef struct {
    backend *b;
    atomic_int in_flight;
    atomic_bool healthy;
} pool_member;

struct pool {
    pool_member m[POOL_MAX];
    size_t n;
    const loco_log *log;
    long interval_ms;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
};

loco_status pool_new(http_client *client, const char *const *urls, size_t n,
                     const backend_openai_opts *opts, const loco_log *log, pool **out,
                     loco_err *err)
{
    if (n == 0 || n > POOL_MAX)
        return loco_err_set(err, LOCO_ERR_INVALID, "the local pool needs 1 to %d URLs, got %zu",
                            POOL_MAX, n);
    pool *p = calloc(1, sizeof(*p));
    if (!p)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->log = log;
    for (size_t i = 0; i < n; i++) {
        loco_status rc = backend_openai_new(client, urls[i], opts, &p->m[i].b, err);
        if (rc) {
            pool_free(p);
            return rc;
        }
        atomic_init(&p->m[i].in_flight, 0);
        atomic_init(&p->m[i].healthy, true);
        p->n++;
    }
    *out = p;
    return LOCO_OK;
}

static void probe_all(pool *p)
{
    for (size_t i = 0; i < p->n; i++) {
        loco_err err;
        loco_err_clear(&err);
        bool ok = backend_health(p->m[i].b, &err) == LOCO_OK;
        bool was = atomic_exchange(&p->m[i].healthy, ok);
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
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += p->interval_ms / 1000;
        ts.tv_nsec += (p->interval_ms % 1000) * 1000000L;
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

loco_status pool_start_health(pool *p, long interval_ms, loco_err *err)
{
    p->interval_ms = interval_ms > 0 ? interval_ms : 5000;
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
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    for (size_t i = 0; i < p->n; i++)
        backend_free(p->m[i].b);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

size_t pool_size(const pool *p)
{
    return p->n;
}

int pool_acquire(pool *p, uint64_t tried)
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

void pool_release(pool *p, int i, bool failed)
{
    atomic_fetch_sub(&p->m[i].in_flight, 1);
    if (failed && atomic_exchange(&p->m[i].healthy, false))
        log_msg(p->log, LOG_WARN, "local backend %s marked down after a failed request",
                p->m[i].b->url);
}

backend *pool_backend(pool *p, int i)
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
