/* threadpool.h: a fixed pool of worker threads for the engine's parallel loops (engine layer).
 * tpool_run hands out task indices to the caller and the workers and returns when all are done;
 * workers spin briefly between calls, then sleep on a futex. No global state. */
#ifndef LOCO_ENGINE_THREADPOOL_H
#define LOCO_ENGINE_THREADPOOL_H

#include <stdint.h>

#include "base/status.h"

/* Most threads one pool may have. */
#define TPOOL_MAX_THREADS 512

typedef struct tpool tpool;

/* One task: task_index in [0, n_tasks), thread_index in [0, tpool_threads) (0 is the thread
 * that called tpool_run). Tasks of one call may run in any order and at the same time. */
typedef void (*tpool_fn)(void *ctx, int32_t task_index, int32_t thread_index);

/* The CPUs this process may run on (sched_getaffinity), else the online CPUs; at least 1. */
int32_t tpool_default_threads(void);

/* New pool of n_threads threads counting the caller (n_threads - 1 workers are started);
 * n_threads <= 0 means tpool_default_threads(). NULL with err set when n_threads exceeds
 * TPOOL_MAX_THREADS or threads cannot be started. */
tpool *tpool_new(int32_t n_threads, loco_err *err);
/* Stops and joins the workers. Not while a tpool_run is in progress. tpool_free(NULL) is fine. */
void tpool_free(tpool *pool);

int32_t tpool_threads(const tpool *pool);

/* Runs fn(ctx, i, thread) for every i in [0, n_tasks) on the pool's threads, the caller
 * included, and returns once every task has returned; everything the tasks wrote is visible
 * to the caller then. Tasks are handed out one index at a time, so uneven tasks balance.
 * One caller at a time: a call from inside a task (nesting) or from a second thread while
 * another call runs is refused with LOCO_ERR_INVALID, as are n_tasks < 0 and a NULL fn. */
loco_status tpool_run(tpool *pool, int32_t n_tasks, tpool_fn fn, void *ctx);

#endif
