/* kv.h: the engine's KV cache: a pool of fixed-size blocks (KV_BLOCK positions of every layer
 * and KV head) shared by all sequences, and a prefix tree over the blocks' tokens, so that any
 * sequence whose prompt starts like an earlier one (the same agent's previous turn, another
 * sub-agent's system prompt) reuses those blocks instead of computing them. Blocks no running
 * sequence uses stay cached up to a memory cap, least recently used evicted first. Memory is
 * reserved, not committed: a block costs RAM only once written. Engine layer; single-threaded
 * (the scheduler's thread or one caller owns a cache). See docs/internals/sched.md. */
#ifndef LOCO_KV_H
#define LOCO_KV_H

#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/ggml_types.h"

/* Positions per block: the unit of sharing, allocation and eviction. 256 so that one head's
 * rows of one layer form 64 KiB runs (Qwen3-4B, F16): decoding reads them at about 1.7x the
 * speed of 16 KiB runs (docs/internals/sched.md). */
#define KV_BLOCK 256

typedef struct {
    uint32_t n_layer;
    uint32_t n_head_kv;
    uint32_t head_dim;     /* a multiple of 32 for Q8_0 */
    ggml_type type;        /* GGML_TYPE_F16 or GGML_TYPE_Q8_0 */
    uint32_t max_blocks;   /* blocks that may exist at once (address space reserved for them) */
    uint64_t cache_bytes;  /* cap on the bytes of blocks no sequence uses (the prefix cache) */
} kv_params;

typedef struct kv_cache kv_cache;
typedef struct kv_seq kv_seq;

typedef struct {
    uint64_t block_bytes;  /* one block: n_layer * 2 * n_head_kv * KV_BLOCK rows */
    uint32_t blocks_used;  /* written blocks (running sequences and cached) */
    uint32_t blocks_cached;/* of those, used by no sequence */
    uint64_t evictions;    /* blocks evicted since creation */
} kv_stats;

/* New cache; p is copied. LOCO_ERR_INVALID for a bad shape or type, LOCO_ERR_NOMEM when the
 * address space cannot be reserved. Free with kv_cache_free (every sequence first). */
loco_status kv_cache_new(const kv_params *p, kv_cache **out, loco_err *err);
void kv_cache_free(kv_cache *c); /* NULL ok */
void kv_cache_stats(const kv_cache *c, kv_stats *out);
/* Bytes of one position of one head, K or V (head_dim values in the cache type). */
size_t kv_row_bytes(const kv_cache *c);
ggml_type kv_type(const kv_cache *c);
/* Evicts cached blocks until their bytes fit cap (the prefix cache's cap can be lowered
 * temporarily this way, e.g. by tests). */
void kv_cache_trim(kv_cache *c, uint64_t cap);

/* A sequence of at most n_ctx positions, empty. Free with kv_seq_free. */
loco_status kv_seq_new(kv_cache *c, uint32_t n_ctx, kv_seq **out, loco_err *err);
/* Releases s: its written blocks stay in the cache (the last, partial one included) for later
 * sequences to reuse, until evicted. NULL ok. */
void kv_seq_free(kv_seq *s);
uint32_t kv_seq_len(const kv_seq *s);
uint32_t kv_seq_ctx(const kv_seq *s);
ggml_type kv_seq_type(const kv_seq *s);
size_t kv_seq_row_bytes(const kv_seq *s);
/* The token at position i (i < len), else -1. */
int32_t kv_seq_token(const kv_seq *s, uint32_t i);

/* For an empty s: takes over the longest cached prefix of ids[0..n) (at most n positions:
 * callers that need the logits of the last id pass n - 1) and returns its length; the
 * positions after it are to be computed. Whole blocks are shared; a partial one is copied
 * (or adopted when nobody else can use it). Never fails: with no memory to copy a partial
 * block, less is reused. */
uint32_t kv_seq_attach(kv_seq *s, const int32_t *ids, uint32_t n);
/* Makes room for positions len..len+n-1 (allocating blocks, evicting cached ones as needed).
 * LOCO_ERR_OVERFLOW past n_ctx, LOCO_ERR_LIMIT when the pool has no free block. */
loco_status kv_seq_reserve(kv_seq *s, uint32_t n, loco_err *err);
/* Positions len..len+n-1 have been written with the KV of ids[0..n) (after kv_seq_reserve):
 * records them, and full blocks join the prefix tree (a block identical to one already there
 * is replaced by it). */
void kv_seq_commit(kv_seq *s, const int32_t *ids, uint32_t n);
/* Forgets positions n.. (n <= len). LOCO_ERR_LIMIT when the block holding position n is shared
 * and cannot be copied (then nothing changes). */
loco_status kv_seq_truncate(kv_seq *s, uint32_t n, loco_err *err);

/* The K (or V) rows of positions [blk * KV_BLOCK, blk * KV_BLOCK + KV_BLOCK) of one layer and
 * KV head: KV_BLOCK rows of kv_row_bytes, position-major. blk < ceil(reserved / KV_BLOCK). */
uint8_t *kv_seq_k(const kv_seq *s, uint32_t layer, uint32_t head, uint32_t blk);
uint8_t *kv_seq_v(const kv_seq *s, uint32_t layer, uint32_t head, uint32_t blk);

/* A pin keeps the blocks of a released sequence warm: pinned blocks are evicted only when
 * nothing else can be. kv_seq_free_pin is kv_seq_free that pins the blocks it leaves in the
 * cache and returns the handle; kv_unpin drops it (a handle whose blocks were evicted
 * meanwhile is ignored). */
typedef struct {
    int32_t block; /* -1: none */
    uint32_t gen;
} kv_pin;
kv_pin kv_seq_free_pin(kv_seq *s);
void kv_unpin(kv_cache *c, kv_pin p);

#endif
