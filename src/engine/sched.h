/* sched.h: serves several token sequences at once on one model context (engine layer). A
 * thread of its own runs steps; each step is one forward pass (qwen3_forward) over the next
 * token of every sequence that is generating plus chunks of the prompts still being read, so a
 * long prompt is read a chunk per step while the others keep generating. Up to `parallel`
 * sequences run; up to `queue_max` more wait; beyond that a submit fails at once with
 * LOCO_ERR_BUSY. Prompts reuse the KV cache's blocks (kv.h): whatever leading part of a prompt
 * some earlier sequence computed is not computed again. Sampling runs on the scheduler's
 * thread with the request's sampler; tokens go to the submitting thread through its job.
 * See docs/internals/sched.md. */
#ifndef LOCO_SCHED_H
#define LOCO_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/qwen3.h"
#include "engine/constrain.h"
#include "engine/sampler.h"

typedef struct sched sched;
typedef struct sched_job sched_job;

typedef struct {
    int parallel;            /* sequences running at once (0: 1; at most the context's n_seq) */
    int queue_max;           /* jobs that may wait for a slot (< 0: none; 0: 2 * parallel) */
    uint32_t prefill_chunk;  /* prompt tokens per step while other sequences generate; 0: as
                                many as keep a step near SCHED_STEP_TARGET_S (at least 32) */
} sched_opts;

/* Target duration of a step that mixes prompt chunks with generating sequences. */
#define SCHED_STEP_TARGET_S 0.5
/* Keys whose last sequence is kept warm (kv pins), at most. */
#define SCHED_MAX_KEYS 64

/* Starts the scheduler thread over ctx (borrowed; it must outlive the scheduler and is used
 * only by the scheduler from now on). */
loco_status sched_new(qwen3_ctx *ctx, const sched_opts *o, sched **out, loco_err *err);
/* Stops the thread: running and waiting jobs end with LOCO_ERR_CANCELLED. Jobs must still be
 * freed by their owners (before or after). NULL ok. */
void sched_free(sched *s);

typedef struct {
    const int32_t *prompt;      /* ids (borrowed until the job is done); n_prompt >= 1 */
    uint32_t n_prompt;
    sampler *smp;               /* borrowed until done; used only by the scheduler thread */
    uint32_t max_tokens;        /* tokens to generate at most (>= 1) */
    const int32_t *stop_ids;    /* end-of-turn ids: generation stops there, the id is not
                                   returned nor evaluated (copied) */
    uint32_t n_stop_ids;        /* at most 4 */
    const volatile int *cancel; /* nonzero: the job ends with LOCO_ERR_CANCELLED within one
                                   step (borrowed; may be NULL) */
    const char *cache_key;      /* copied; NULL: none. The key's previous sequence is kept warm
                                   in the prefix cache; this one will be when it ends */
    const int32_t *force_ids;   /* teacher forcing: generated position k is fed force_ids[k]
                                   whatever was sampled (the sampled ids are still returned;
                                   stop ids do not stop it); borrowed until done */
    uint32_t n_force_ids;       /* with force_ids: generates at most this many */
    /* called on the scheduler thread with the logits of every position a token is sampled
     * from, before sampling (n_vocab floats, borrowed during the call); may be NULL */
    void (*on_logits)(void *ctx, const float *logits, uint32_t n_vocab);
    void *logits_ctx;
    constrain *con;             /* the sampler's constraint (sampler_set_constraint), borrowed
                                   until done: before each token the scheduler tells it how many
                                   tokens are left (max_tokens, the context) */
} sched_req;

typedef enum {
    SCHED_RUNNING = 0,
    SCHED_END_TURN,   /* a stop id was sampled */
    SCHED_MAX_TOKENS, /* max_tokens generated */
    SCHED_CTX_FULL,   /* the context has no room for the next token */
    SCHED_STOPPED,    /* sched_job_stop */
    SCHED_FAILED,     /* cancelled or an error: see the status */
} sched_end;

/* What a job has done so far (snapshot). */
typedef struct {
    bool admitted;          /* has a sequence (prompt being read or done) */
    uint32_t reused;        /* prompt tokens taken from the cache, once admitted */
    uint32_t n_tokens;      /* tokens generated so far (all of them, read or not) */
    sched_end end;          /* SCHED_RUNNING until done */
    loco_status status;     /* LOCO_OK, or why it failed */
    double ttft_s;          /* submit to first token, once there is one */
} sched_info;

/* Queues r. LOCO_ERR_BUSY at once when parallel jobs run and queue_max wait; LOCO_ERR_INVALID
 * for a bad request (an id outside the vocabulary, a prompt longer than the context). *out is
 * the caller's: free it with sched_job_free. */
loco_status sched_submit(sched *s, const sched_req *r, sched_job **out, loco_err *err);
/* Waits until the job has tokens the caller has not read, changed state (admitted, done) or
 * timeout_ms passed (< 0: no timeout); copies up to cap unread ids to ids, *out_n how many, and
 * a snapshot to *info. */
void sched_job_wait(sched_job *j, int32_t *ids, uint32_t cap, uint32_t *out_n, sched_info *info,
                    long timeout_ms);
/* The caller needs no more tokens (a stop string matched): the job ends with SCHED_STOPPED
 * at the next step. */
void sched_job_stop(sched_job *j);
/* The error message of a failed job (borrowed, valid until sched_job_free). */
const char *sched_job_error(const sched_job *j);
/* Ends the job if it still runs (as a cancel), waits for the scheduler to let go, frees it.
 * NULL ok. */
void sched_job_free(sched_job *j);

typedef struct {
    long queue_len, active, parallel;
    uint64_t requests, busy, cancelled;
    uint64_t prompt_tokens, cache_hit_tokens, gen_tokens;
    double prompt_seconds, gen_seconds;
    uint64_t steps;
    uint64_t kv_bytes, cache_bytes;
} sched_stats;

void sched_get_stats(sched *s, sched_stats *out);

/* Hooks for tests: called on the scheduler thread before each step with the rows it will
 * run: for each segment the job's submission order number and its token count. */
typedef void (*sched_step_hook)(void *ctx, const uint64_t *job_ids, const uint32_t *n_tokens,
                                uint32_t n_segs);
void sched_set_step_hook(sched *s, sched_step_hook fn, void *ctx);

#endif
