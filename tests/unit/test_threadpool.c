/* test_threadpool.c: unit tests of engine/threadpool: every task runs exactly once, work is
 * spread over threads, many small back-to-back calls, nested calls refused, degenerate sizes,
 * start/stop churn; prints the per-call overhead. Also run under TSan (see
 * docs/internals/sampler.md). */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "engine/threadpool.h"

#define MAX_TASKS 4096

typedef struct {
    _Atomic int runs[MAX_TASKS];
    _Atomic int per_thread[TPOOL_MAX_THREADS];
    long long values[MAX_TASKS]; /* plain writes: the pool must publish them to the caller */
    int sleep_us;
    tpool *pool;
    loco_status nested;
} job;

static void task(void *ctx, int32_t i, int32_t thread)
{
    job *j = ctx;
    atomic_fetch_add(&j->runs[i], 1);
    atomic_fetch_add(&j->per_thread[thread], 1);
    j->values[i] += (long long)i * i;
    if (j->sleep_us)
        usleep((useconds_t)j->sleep_us);
}

static void nested_task(void *ctx, int32_t i, int32_t thread)
{
    job *j = ctx;
    if (i == 0)
        j->nested = tpool_run(j->pool, 4, task, ctx);
    task(ctx, i, thread);
}

static tpool *make(int32_t n)
{
    loco_err err;
    tpool *p = tpool_new(n, &err);
    if (!p)
        fail_msg("tpool_new: %s", err.msg);
    return p;
}

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void test_every_task_once(void **state)
{
    (void)state;
    job *j = calloc(1, sizeof *j);
    int32_t sizes[] = {1, 2, 3, 4, 8};
    for (size_t s = 0; s < LOCO_ARRAY_LEN(sizes); s++) {
        tpool *p = make(sizes[s]);
        assert_int_equal(tpool_threads(p), sizes[s]);
        memset(j, 0, sizeof *j);
        assert_int_equal(tpool_run(p, MAX_TASKS, task, j), LOCO_OK);
        for (int i = 0; i < MAX_TASKS; i++) {
            assert_int_equal(atomic_load(&j->runs[i]), 1);
            assert_int_equal(j->values[i], (long long)i * i);
        }
        int total = 0;
        for (int t = 0; t < TPOOL_MAX_THREADS; t++) {
            if (t >= sizes[s])
                assert_int_equal(atomic_load(&j->per_thread[t]), 0);
            total += atomic_load(&j->per_thread[t]);
        }
        assert_int_equal(total, MAX_TASKS);
        tpool_free(p);
    }
    free(j);
}

static void test_work_is_spread(void **state)
{
    (void)state;
    job *j = calloc(1, sizeof *j);
    tpool *p = make(4);
    j->sleep_us = 500; /* slow tasks: a lone thread could not claim them all */
    assert_int_equal(tpool_run(p, 64, task, j), LOCO_OK);
    int used = 0;
    for (int t = 0; t < 4; t++)
        used += atomic_load(&j->per_thread[t]) > 0;
    assert_true(used >= 2);
    tpool_free(p);
    free(j);
}

static void test_many_small_calls(void **state)
{
    (void)state;
    job *j = calloc(1, sizeof *j);
    int32_t n = tpool_default_threads();
    tpool *p = make(n);
    enum { CALLS = 20000 };
    double t0 = now_us();
    for (int c = 0; c < CALLS; c++)
        assert_int_equal(tpool_run(p, n, task, j), LOCO_OK);
    double t1 = now_us();
    for (int i = 0; i < n; i++) {
        assert_int_equal(atomic_load(&j->runs[i]), CALLS);
        assert_int_equal(j->values[i], (long long)CALLS * i * i);
    }
    printf("tpool: %.2f us per call (%d threads, %d tasks of nothing, %d calls)\n",
           (t1 - t0) / CALLS, (int)n, (int)n, CALLS);
    /* after a pause long enough for the workers to fall asleep, calls still complete */
    usleep(20000);
    memset(j, 0, sizeof *j);
    assert_int_equal(tpool_run(p, 100, task, j), LOCO_OK);
    for (int i = 0; i < 100; i++)
        assert_int_equal(atomic_load(&j->runs[i]), 1);
    tpool_free(p);
    free(j);
}

/* The portable sleep (mutex + condition variable, what non-Linux systems get): the same
 * protocol, forced with LOCO_TPOOL_PORTABLE=1, through calls that find the workers asleep and
 * slow tasks that make the caller sleep. */
static void test_portable_wait(void **state)
{
    (void)state;
    setenv("LOCO_TPOOL_PORTABLE", "1", 1);
    job *j = calloc(1, sizeof *j);
    tpool *p = make(4);
    unsetenv("LOCO_TPOOL_PORTABLE");
    for (int round = 0; round < 20; round++) {
        memset(j, 0, sizeof *j);
        j->sleep_us = round % 2 ? 2000 : 0; /* slow tasks: the caller waits on the count */
        assert_int_equal(tpool_run(p, 64, task, j), LOCO_OK);
        for (int i = 0; i < 64; i++)
            assert_int_equal(atomic_load(&j->runs[i]), 1);
        if (round % 5 == 0)
            usleep(20000); /* the workers fall asleep */
    }
    memset(j, 0, sizeof *j);
    for (int c = 0; c < 2000; c++)
        assert_int_equal(tpool_run(p, 8, task, j), LOCO_OK);
    for (int i = 0; i < 8; i++)
        assert_int_equal(atomic_load(&j->runs[i]), 2000);
    tpool_free(p);
    free(j);
}

static void test_nested_refused(void **state)
{
    (void)state;
    job *j = calloc(1, sizeof *j);
    tpool *p = make(3);
    j->pool = p;
    j->nested = LOCO_OK;
    assert_int_equal(tpool_run(p, 16, nested_task, j), LOCO_OK);
    assert_int_equal(j->nested, LOCO_ERR_INVALID);
    for (int i = 0; i < 16; i++)
        assert_int_equal(atomic_load(&j->runs[i]), 1);
    /* the pool is usable afterwards */
    assert_int_equal(tpool_run(p, 16, task, j), LOCO_OK);
    assert_int_equal(atomic_load(&j->runs[15]), 2);
    tpool_free(p);
    free(j);
}

static void test_degenerate(void **state)
{
    (void)state;
    job *j = calloc(1, sizeof *j);
    tpool *p = make(2);
    assert_int_equal(tpool_run(p, 0, task, j), LOCO_OK);
    assert_int_equal(tpool_run(p, -1, task, j), LOCO_ERR_INVALID);
    assert_int_equal(tpool_run(p, 4, NULL, j), LOCO_ERR_INVALID);
    assert_int_equal(tpool_run(p, 1, task, j), LOCO_OK);
    assert_int_equal(atomic_load(&j->per_thread[0]), 1); /* one task runs on the caller */
    tpool_free(p);
    tpool_free(NULL);
    p = make(0);
    assert_int_equal(tpool_threads(p), tpool_default_threads());
    tpool_free(p);
    loco_err err;
    assert_null(tpool_new(TPOOL_MAX_THREADS + 1, &err));
    assert_int_equal(err.code, LOCO_ERR_INVALID);
    /* a one-thread pool runs everything inline as thread 0 */
    memset(j, 0, sizeof *j);
    p = make(1);
    assert_int_equal(tpool_run(p, 10, task, j), LOCO_OK);
    assert_int_equal(atomic_load(&j->per_thread[0]), 10);
    tpool_free(p);
    free(j);
}

static void test_start_stop_churn(void **state)
{
    (void)state;
    job *j = calloc(1, sizeof *j);
    for (int r = 0; r < 50; r++) {
        tpool *p = make(4);
        if (r % 2)
            assert_int_equal(tpool_run(p, 8, task, j), LOCO_OK);
        tpool_free(p);
    }
    assert_int_equal(atomic_load(&j->runs[7]), 25);
    free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_task_once), cmocka_unit_test(test_work_is_spread),
        cmocka_unit_test(test_many_small_calls), cmocka_unit_test(test_nested_refused),
        cmocka_unit_test(test_degenerate),       cmocka_unit_test(test_start_stop_churn),
        cmocka_unit_test(test_portable_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
