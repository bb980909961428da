/* pool.h: the local route's backends: one or more OpenAI-compatible servers (llama-server,
 * vLLM, loco instances) with health checks, least-busy selection and failover. */
#ifndef LOCO_POOL_H
#define LOCO_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "base/log.h"

typedef struct pool pool;

/* Creates one openai backend per URL (opts applied to each). client is borrowed. log may be
 * NULL. At most 64 members. */
loco_status pool_new(http_client *client, const char *const *urls, size_t n,
                     const backend_openai_opts *opts, const loco_log *log, pool **out,
                     loco_err *err);
/* Starts the health thread: every interval_ms each member is probed; an unhealthy member
 * comes back once a probe succeeds. The first round runs at once. */
loco_status pool_start_health(pool *p, long interval_ms, loco_err *err);
/* Stops the health thread and frees everything; NULL ok. */
void pool_free(pool *p);

size_t pool_size(const pool *p);
/* The healthy member with the fewest requests in flight that is not in tried (bit i = member
 * i); its in-flight count is incremented. -1 when none is left. */
int pool_acquire(pool *p, uint64_t tried);
/* Ends a use of member i; failed marks it unhealthy until its next successful probe. */
void pool_release(pool *p, int i, bool failed);
backend *pool_backend(pool *p, int i);
const char *pool_url(const pool *p, int i);
bool pool_healthy(const pool *p, int i);
int pool_in_flight(const pool *p, int i);
bool pool_any_healthy(const pool *p);

#endif
