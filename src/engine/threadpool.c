/* threadpool.c: the engine's fixed thread pool (engine layer). A call publishes a job by
 * bumping a generation counter; workers spin on it for a while, then sleep on it (a futex on
 * Linux, a mutex + condition variable elsewhere: the tp_word wrapper below); tasks are claimed
 * with an atomic counter; the caller waits for a count of busy workers to reach 0.
 * See docs/internals/sampler.md ("Thread pool") for the protocol and its measured cost. */
#include "base/common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#include "engine/threadpool.h"

/* Polls of a shared word before a thread goes to sleep (each poll is one pause instruction,
 * so this is some tens of microseconds: longer than the gap between two calls in a forward
 * pass, short enough not to burn a core between tokens). */
#define TPOOL_SPIN 4096

typedef struct {
    struct tpool *pool;
    int32_t index; /* 1..n_threads-1 */
} worker;

/* A 32-bit word threads can sleep on until it changes: the Linux futex, or (other systems, or
 * LOCO_TPOOL_PORTABLE=1 in the environment when the pool is made) a mutex and a condition
 * variable. word_wait returns when the word may differ from expected (spurious returns are
 * allowed: callers re-check); word_wake wakes every sleeper after the word was changed. */
typedef struct {
    _Atomic uint32_t v;
    bool portable;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} tp_word;

static bool word_init(tp_word *w, bool portable)
{
    atomic_init(&w->v, 0);
    w->portable = portable;
    if (!portable)
        return true;
    if (pthread_mutex_init(&w->mu, NULL))
        return false;
    if (pthread_cond_init(&w->cv, NULL)) {
        pthread_mutex_destroy(&w->mu);
        return false;
    }
    return true;
}

static void word_destroy(tp_word *w)
{
    if (w->portable) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
    }
}

static void word_wait(tp_word *w, uint32_t expected)
{
#ifdef __linux__
    if (!w->portable) {
        syscall(SYS_futex, (uint32_t *)&w->v, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
        return;
    }
#endif
    /* the waker changes the word, then takes the lock to broadcast: checking under the lock
     * means a change cannot slip between the check and the wait */
    pthread_mutex_lock(&w->mu);
    while (atomic_load(&w->v) == expected)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

static void word_wake(tp_word *w)
{
#ifdef __linux__
    if (!w->portable) {
        syscall(SYS_futex, (uint32_t *)&w->v, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
        return;
    }
#endif
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

struct tpool {
    int32_t n_threads;
    int32_t n_started; /* workers actually running */
    pthread_t *threads; /* (n_threads - 1) */
    worker *workers;    /* (n_threads - 1) */

    /* The current job, written by the caller before it bumps `gen`. */
    tpool_fn fn;
    void *ctx;
    int32_t n_tasks;

    tp_word gen;                     /* job generation; the workers sleep on it */
    _Atomic uint32_t sleepers;       /* workers asleep (or about to be) on gen */
    _Atomic int32_t next;            /* next task index to hand out */
    tp_word pending;                 /* workers not yet done with the job; the caller sleeps on it */
    _Atomic uint32_t caller_waiting; /* the caller sleeps on pending */
    _Atomic bool stop;
    _Atomic bool busy; /* a tpool_run is in progress */
    bool words_ok;
};

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

int32_t tpool_default_threads(void)
{
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int32_t)(n < TPOOL_MAX_THREADS ? n : TPOOL_MAX_THREADS) : 1;
}

static void run_tasks(struct tpool *pool, int32_t thread_index)
{
    for (;;) {
        int32_t i = atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed);
        if (i >= pool->n_tasks)
            return;
        pool->fn(pool->ctx, i, thread_index);
    }
}

/* Waits until gen differs from seen; returns the new value. The sleepers count and the
 * re-check of gen pair with the caller's bump-then-read (both seq_cst), so a wake-up is
 * never lost. */
static uint32_t wait_for_job(struct tpool *pool, uint32_t seen)
{
    for (int i = 0; i < TPOOL_SPIN; i++) {
        uint32_t g = atomic_load_explicit(&pool->gen.v, memory_order_acquire);
        if (g != seen)
            return g;
        cpu_relax();
    }
    for (;;) {
        atomic_fetch_add(&pool->sleepers, 1);
        if (atomic_load(&pool->gen.v) == seen)
            word_wait(&pool->gen, seen);
        atomic_fetch_sub(&pool->sleepers, 1);
        uint32_t g = atomic_load(&pool->gen.v);
        if (g != seen)
            return g;
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    struct tpool *pool = w->pool;
    uint32_t seen = 0;
    for (;;) {
        seen = wait_for_job(pool, seen);
        if (atomic_load(&pool->stop))
            return NULL;
        run_tasks(pool, w->index);
        if (atomic_fetch_sub(&pool->pending.v, 1) == 1 && atomic_load(&pool->caller_waiting))
            word_wake(&pool->pending);
    }
}

/* Waits until every worker has finished the current job. */
static void wait_for_workers(struct tpool *pool)
{
    for (int i = 0; i < TPOOL_SPIN; i++) {
        if (atomic_load_explicit(&pool->pending.v, memory_order_acquire) == 0)
            return;
        cpu_relax();
    }
    atomic_store(&pool->caller_waiting, 1);
    for (uint32_t v = atomic_load(&pool->pending.v); v != 0; v = atomic_load(&pool->pending.v))
        word_wait(&pool->pending, v);
    atomic_store(&pool->caller_waiting, 0);
}

/* Publishes a job to the workers (bumps gen) and wakes the sleeping ones. */
static void post(struct tpool *pool)
{
    atomic_fetch_add(&pool->gen.v, 1);
    if (atomic_load(&pool->sleepers) > 0)
        word_wake(&pool->gen);
}

tpool *tpool_new(int32_t n_threads, loco_err *err)
{
    if (n_threads <= 0)
        n_threads = tpool_default_threads();
    if (n_threads > TPOOL_MAX_THREADS) {
        loco_err_set(err, LOCO_ERR_INVALID, "%" PRId32 " threads: at most %d", n_threads,
                     TPOOL_MAX_THREADS);
        return NULL;
    }
    struct tpool *pool = calloc(1, sizeof *pool);
    if (!pool) {
        loco_err_set(err, LOCO_ERR_NOMEM, "thread pool: out of memory");
        return NULL;
    }
    pool->n_threads = n_threads;
#ifdef __linux__
    const char *pe = getenv("LOCO_TPOOL_PORTABLE");
    const bool portable = pe && *pe && strcmp(pe, "0") != 0;
#else
    const bool portable = true;
#endif
    if (!word_init(&pool->gen, portable)) {
        free(pool);
        loco_err_set(err, LOCO_ERR_NOMEM, "thread pool: cannot create its wait words");
        return NULL;
    }
    if (!word_init(&pool->pending, portable)) {
        word_destroy(&pool->gen);
        free(pool);
        loco_err_set(err, LOCO_ERR_NOMEM, "thread pool: cannot create its wait words");
        return NULL;
    }
    pool->words_ok = true;
    pool->threads = calloc((size_t)n_threads, sizeof *pool->threads);
    pool->workers = calloc((size_t)n_threads, sizeof *pool->workers);
    if (!pool->threads || !pool->workers) {
        tpool_free(pool);
        loco_err_set(err, LOCO_ERR_NOMEM, "thread pool: out of memory");
        return NULL;
    }
    for (int32_t i = 0; i < n_threads - 1; i++) {
        pool->workers[i] = (worker){pool, i + 1};
        int rc = pthread_create(&pool->threads[i], NULL, worker_main, &pool->workers[i]);
        if (rc != 0) {
            tpool_free(pool);
            loco_err_set(err, LOCO_ERR_UNAVAILABLE, "cannot start thread %" PRId32 ": %s", i + 1,
                         strerror(rc));
            return NULL;
        }
        pool->n_started++;
    }
    return pool;
}

void tpool_free(tpool *pool)
{
    if (!pool)
        return;
    atomic_store(&pool->stop, true);
    post(pool);
    for (int32_t i = 0; i < pool->n_started; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    free(pool->workers);
    if (pool->words_ok) {
        word_destroy(&pool->gen);
        word_destroy(&pool->pending);
    }
    free(pool);
}

int32_t tpool_threads(const tpool *pool)
{
    return pool->n_threads;
}

loco_status tpool_run(tpool *pool, int32_t n_tasks, tpool_fn fn, void *ctx)
{
    if (!fn || n_tasks < 0)
        return LOCO_ERR_INVALID;
    if (atomic_exchange(&pool->busy, true))
        return LOCO_ERR_INVALID; /* nested or concurrent call */
    if (pool->n_started == 0 || n_tasks <= 1) {
        for (int32_t i = 0; i < n_tasks; i++)
            fn(ctx, i, 0);
    } else {
        pool->fn = fn;
        pool->ctx = ctx;
        pool->n_tasks = n_tasks;
        atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
        atomic_store_explicit(&pool->pending.v, (uint32_t)pool->n_started, memory_order_relaxed);
        post(pool);
        run_tasks(pool, 0);
        wait_for_workers(pool);
    }
    atomic_store(&pool->busy, false);
    return LOCO_OK;
}
