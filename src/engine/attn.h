/* attn.h: the fast path's attention (engine layer): causal grouped-query attention of a batch
 * of sequences over the paged KV cache (kv.h), tiled flash-style (online softmax over tiles of
 * 64 positions, nothing n_ctx-sized per query) and split across threads by KV head, by
 * query block and, when that gives too few tasks (decoding), by chunk of the KV range with a
 * merge at the end. Scores, softmax and sums are f32; K and V are read as F16 or Q8_0.
 * The llama.cpp-mirroring attention of the parity path is in qwen3.c. See
 * docs/internals/qwen3.md. */
#ifndef LOCO_ATTN_H
#define LOCO_ATTN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/kv.h"
#include "engine/threadpool.h"

/* One sequence's queries in a step. */
typedef struct {
    const kv_seq *seq;   /* its cache holds positions [0, pos0 + n) for this layer */
    const float *q;      /* (n, n_head * head_dim) queries after norm and RoPE */
    float *out;          /* (n, n_head * head_dim) attention output */
    uint32_t n;          /* tokens */
    uint32_t pos0;       /* position of token 0; token t sees positions [0, pos0 + t] */
} attn_seg;

typedef struct attn_ctx attn_ctx;

/* Scratch for steps of up to max_tokens tokens in up to max_segs sequences on n_threads
 * threads (the pool's size). Allocates everything a step needs. */
loco_status attn_new(uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t n_threads,
                     uint32_t max_tokens, uint32_t max_segs, attn_ctx **out, loco_err *err);
void attn_free(attn_ctx *a); /* NULL ok */

/* Attention of layer `layer` for every segment; pool may be NULL. Allocates nothing. */
void attn_forward(attn_ctx *a, tpool *pool, uint32_t layer, const attn_seg *segs,
                  uint32_t n_segs);

/* Use the scalar kernels even where SIMD ones exist (tests compare the two). */
void attn_force_scalar(attn_ctx *a, bool on);
/* Whether prompt chunks go through the AVX512_BF16 kernel (bf16 products, f32 sums), on by
 * default where the CPU has it (LOCO_ATTN_NO_BF16 in the environment turns it off); tests
 * switch it with attn_force_bf16 (on only takes where the CPU has it). */
bool attn_uses_bf16(const attn_ctx *a);
void attn_force_bf16(attn_ctx *a, bool on);
/* Whether that kernel computes its scores by int8 products (AVX512_VNNI; query and key rows
 * rounded to int8 with a scale each), on by default where the CPU has it and the kernel is on
 * (LOCO_ATTN_NO_INT8 turns it off); attn_force_qk8 switches it (on only takes where the CPU
 * has it and the BF16 kernel is on). */
bool attn_uses_qk8(const attn_ctx *a);
void attn_force_qk8(attn_ctx *a, bool on);
/* Whether decoding (up to 4 query rows an item) goes through the AVX-512 f32 kernels, on by
 * default where the CPU has AVX-512 F/BW/DQ/VL and head_dim % 64 == 0, else AVX2; tests
 * switch it with attn_force_avx512 (on only takes where the CPU has it). */
bool attn_uses_avx512(const attn_ctx *a);
void attn_force_avx512(attn_ctx *a, bool on);
/* Caps the query groups (64 rows each) of one prompt item at max_groups (1..8, a power of
 * two; more is taken as 8), whatever the depth; 0 restores the default (8 deep in the
 * context, 4 nearer its start). For tests. */
void attn_force_groups(attn_ctx *a, uint32_t max_groups);

#endif
