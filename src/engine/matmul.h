/* matmul.h: the forward pass's matrix multiplications (engine layer), in both arithmetics:
 * the parity path runs llama.cpp's kernels on the mapped weights (quant.h, vecmath.h: bit for
 * bit what llama.cpp computes on this CPU), the fast path runs kernels/ on weights repacked
 * once per model, with activations quantized once per matrix input. Rows are split over the
 * thread pool. qwen3.c calls mm_prepare (encode an input) then mm_run (one weight). */
#ifndef LOCO_ENGINE_MATMUL_H
#define LOCO_ENGINE_MATMUL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/kernels/kernels.h"
#include "engine/qwen3.h"
#include "engine/threadpool.h"
#include "engine/vecmath.h"

/* The fast path's repacked weights of one model: every matrix (the output head included, a
 * separate copy when it is tied to token_embd), built once under a lock by the first fast
 * context; the mapped originals are then dropped from memory (a file mapping re-reads them
 * if a parity context or the embedding lookup needs them). */
typedef struct mm_weights mm_weights;

/* An empty set (nothing packed yet). NULL when out of memory. */
mm_weights *mm_weights_new(void);
void mm_weights_free(mm_weights *mw); /* NULL ok */
/* Packs every matrix of m into mw unless that was done (thread-safe; pool may be NULL: one
 * thread). file is m's GGUF file, whose mapped pages are released after packing. */
loco_status mm_weights_prepare(mm_weights *mw, const qwen3_model *m, tpool *pool, loco_err *err);
/* Bytes of the weights' copies for the fast kernels (0 before mm_weights_prepare). */
uint64_t mm_weights_bytes(const mm_weights *mw);

/* Per-context state: which arithmetic, the encoded-activation buffer and what it holds. */
typedef struct {
    bool parity;
    const vm_profile *prof;   /* parity: the llama.cpp build mirrored */
    const kern_table *kt;     /* fast: the instruction set */
    const mm_weights *mw;     /* fast: the model's packed weights (borrowed) */
    tpool *pool;              /* borrowed; NULL: one thread */
    int32_t n_threads;
    uint8_t *act;             /* (n_batch, act_stride) encoded activations */
    size_t act_stride;        /* bytes per token row */
    uint32_t n_batch;
    const float *act_in;      /* input act was encoded from (NULL: none) */
    int act_key;              /* its encoding */
    uint32_t act_n;           /* its rows */
} mm_ctx;

/* Sets up c for rows of at most max_k values and n_batch tokens. Fast (parity false): mw must
 * be prepared for the model (mm_weights_prepare). LOCO_ERR_NOMEM. */
loco_status mm_ctx_init(mm_ctx *c, bool parity, const mm_weights *mw, tpool *pool,
                        uint32_t n_batch, int64_t max_k, loco_err *err);
void mm_ctx_release(mm_ctx *c);

/* Encodes n_tokens rows of in (w->ne0 values each, in_stride floats apart) as w's activations,
 * unless they are there already: same input pointer, same encoding, same count and no
 * mm_invalidate since. */
void mm_prepare(mm_ctx *c, const qwen3_weight *w, const float *in, size_t in_stride,
                uint32_t n_tokens);
/* The input buffer last given to mm_prepare was overwritten: encode again next time. */
void mm_invalidate(mm_ctx *c);
/* out[t * out_stride + r] = row r of w . prepared activation row t, for every row of w and
 * t < n_tokens (the count given to mm_prepare), rows split over the pool. */
void mm_run(mm_ctx *c, const qwen3_weight *w, uint32_t n_tokens, float *out, size_t out_stride);

/* A description of the kernels in use, e.g. "avx512 (...)" or "parity:amx" (static). */
const char *mm_describe(const mm_ctx *c);

#endif
