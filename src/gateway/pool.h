/* pool.h: the local route's backends as one backend: the in-process engine and/or
 * OpenAI-compatible servers (llama-server, vLLM, loco instances), with health checks,
 * least-busy selection and failover to the next member before any byte of an answer. */
#ifndef LOCO_POOL_H
#define LOCO_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "base/log.h"

/* Members one pool holds. */
#define POOL_MAX 64

typedef struct pool pool;

/* A new empty pool. log may be NULL (borrowed). */
loco_status pool_new(const loco_log *log, pool **out, loco_err *err);
/* Adds member b (consumed: the pool frees it, also on failure). Before pool_start_health
 * only. LOCO_ERR_LIMIT past POOL_MAX members. */
loco_status pool_add(pool *p, backend *b, loco_err *err);
/* For wait_ms after the pool starts, a member that has not been up yet is probed every
 * probe_ms instead of the health interval; one that answers but is not ready (its health
 * check fails with an HTTP error, a call with 503: llama-server while it loads its model) is
 * "starting", and a call that finds no member up waits for it (up to the rest of wait_ms, or
 * until call->cancel) instead of failing. A member that cannot be reached is down at once, as
 * before. wait_ms 0: no waiting (the default). Before pool_start_health only. */
void pool_set_startup(pool *p, long wait_ms, long probe_ms);
/* Starts the health thread: every interval_ms each member is probed; an unhealthy member
 * comes back once a probe succeeds. The first round runs at once. */
loco_status pool_start_health(pool *p, long interval_ms, loco_err *err);
/* Stops the health thread and frees everything, members included; NULL ok. */
void pool_free(pool *p);

/* The pool as a backend (kind "pool"), valid until pool_free (never backend_free it).
 * complete(): the healthy member with the fewest calls in flight; when it fails before any
 * event reached the caller (unreachable, timed out, HTTP 5xx: marked unhealthy; or
 * LOCO_ERR_BUSY) the next one is tried. With none left: LOCO_ERR_TIMEOUT when any timed out,
 * else LOCO_ERR_UPSTREAM when any failed otherwise, else LOCO_ERR_BUSY when any was busy,
 * else LOCO_ERR_UNAVAILABLE. count_tokens(): the first healthy member that can count.
 * health(): OK when any member is healthy. */
backend *pool_backend(pool *p);

size_t pool_size(const pool *p);
/* Member i (borrowed). */
backend *pool_member(pool *p, int i);
const char *pool_url(const pool *p, int i);
bool pool_healthy(const pool *p, int i);
int pool_in_flight(const pool *p, int i);
bool pool_any_healthy(const pool *p);

#endif
