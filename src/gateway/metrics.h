/* metrics.h: the gateway's counters, gauges and histograms, rendered as Prometheus text
 * exposition (version 0.0.4) for GET /metrics. Part of gateway/; one mutex guards all. */
#ifndef LOCO_GATEWAY_METRICS_H
#define LOCO_GATEWAY_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/status.h"

/* Distinct label sets one metric family keeps; past it new label sets are counted under
 * the family's overflow set (every label "other"), so a hostile or buggy caller cannot
 * grow memory or the /metrics page without bound. */
#define METRICS_MAX_SERIES 512
/* Backends tracked by loco_backend_up / loco_backend_in_flight; more are ignored. */
#define METRICS_MAX_BACKENDS 64
/* Bytes of one label value kept (longer values are cut on a UTF-8 boundary). */
#define METRICS_MAX_LABEL 256

typedef struct metrics metrics;

/* New empty registry; NULL on allocation failure. Free with metrics_free. */
metrics *metrics_new(void);
/* NULL does nothing. */
void metrics_free(metrics *m);

/* Records one finished request (all strings borrowed; NULL reads as ""):
 *   loco_requests_total{endpoint,route,status} += 1;
 *   loco_fallbacks_total{reason} += 1 when route is "fallback" (reason "" -> "unknown");
 *   loco_tokens_total{route,direction="input"|"output"} += in/out tokens when >= 0;
 *   loco_request_duration_seconds{route} observes total_ms / 1000 when >= 0;
 *   loco_time_to_first_byte_seconds{route} observes ttfb_ms / 1000 when >= 0.
 * endpoint e.g. "messages", "chat_completions", "count_tokens"; route "local" | "cloud" |
 * "fallback" | "none"; status the HTTP status sent. Thread-safe; m NULL does nothing. */
void metrics_request_done(metrics *m, const char *endpoint, const char *route,
                          const char *reason, int status, long in_tokens, long out_tokens,
                          double ttfb_ms, double total_ms);
/* loco_requests_in_flight += delta (+1 on arrival, -1 when done). Thread-safe. */
void metrics_inflight(metrics *m, int delta);
/* One tool call the gateway passed on or rejected; counted under exactly one outcome of
 * loco_tool_calls_total, the first that applies: bad, repaired, mapped, ok. Thread-safe. */
void metrics_tool_call(metrics *m, bool repaired, bool bad, bool mapped);
/* Sets loco_backend_up{url} (1/0) and loco_backend_in_flight{url}. Thread-safe. */
void metrics_backend(metrics *m, const char *url, bool healthy, int in_flight);

/* loco_time_to_first_token_seconds{route} observes seconds (from the request's arrival to the
 * first text or tool call the model produced) when >= 0. Thread-safe. */
void metrics_ttft(metrics *m, const char *route, double seconds);

/* A snapshot of the in-process engine's counters (totals since start). */
typedef struct {
    long queue_len;            /* calls waiting for a sequence */
    long active;               /* sequences running */
    long parallel;             /* the slot count */
    uint64_t requests;         /* calls accepted */
    uint64_t busy;             /* calls refused: queue full */
    uint64_t cancelled;        /* calls cancelled (a client went away) */
    uint64_t prompt_tokens;    /* prompt tokens of accepted calls, cached ones included */
    uint64_t cache_hit_tokens; /* of those, taken from the prefix cache (not computed) */
    uint64_t gen_tokens;       /* tokens generated */
    double prompt_seconds;     /* time spent computing prompt tokens */
    double gen_seconds;        /* time spent generating */
    uint64_t kv_bytes;         /* KV cache memory held now */
} metrics_engine_stats;

/* Sets the engine families from st (copied); they are rendered from the first call on:
 * gauges loco_engine_queue_length, loco_engine_active_sequences, loco_engine_parallel,
 * loco_engine_kv_bytes; counters loco_engine_requests_total, loco_engine_busy_total,
 * loco_engine_cancelled_total, loco_engine_prompt_tokens_total (cached included),
 * loco_engine_prompt_tokens_computed_total, loco_engine_prefix_cache_hit_tokens_total,
 * loco_engine_generation_tokens_total, loco_engine_prompt_seconds_total,
 * loco_engine_generation_seconds_total; derived gauges loco_engine_prompt_tokens_per_second
 * (computed tokens / prompt seconds), loco_engine_generation_tokens_per_second and
 * loco_engine_prefix_cache_hit_ratio (hits / prompt tokens); a rate is 0 before any work.
 * Thread-safe. */
void metrics_engine(metrics *m, const metrics_engine_stats *st);

/* Appends the whole exposition to out (HELP and TYPE lines for every family, series sorted
 * by their label text). LOCO_ERR_LIMIT / LOCO_ERR_NOMEM from out; then out holds a prefix. */
loco_status metrics_render(metrics *m, buf *out);

#endif
