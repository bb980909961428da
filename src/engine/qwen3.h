/* qwen3.h: the Qwen3 architecture over a GGUF file: hyperparameters and weights read from the
 * mapping (never copied), a per-sequence context with its KV cache, and the forward pass
 * (batched prompt processing, one-token decode). Part of the engine layer. */
#ifndef LOCO_QWEN3_H
#define LOCO_QWEN3_H

#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/ggml_types.h"
#include "engine/gguf.h"
#include "engine/threadpool.h"

typedef struct {
    uint32_t n_layer;    /* qwen3.block_count */
    uint32_t n_embd;     /* qwen3.embedding_length */
    uint32_t n_head;     /* qwen3.attention.head_count */
    uint32_t n_head_kv;  /* qwen3.attention.head_count_kv */
    uint32_t head_dim;   /* qwen3.attention.key_length (default n_embd / n_head) */
    uint32_t n_ff;       /* qwen3.feed_forward_length */
    uint32_t n_vocab;    /* rows of token_embd */
    uint32_t n_ctx_train;/* qwen3.context_length */
    float rope_base;     /* qwen3.rope.freq_base (default 10000) */
    float rms_eps;       /* qwen3.attention.layer_norm_rms_epsilon */
} qwen3_hparams;

/* A weight matrix inside the mapping: ne0 values per row (the input dim), ne1 rows. */
typedef struct {
    const char *name;
    const void *data;
    ggml_type type;
    int64_t ne0;
    int64_t ne1;
    size_t row_bytes;
} qwen3_weight;

typedef struct {
    qwen3_weight attn_norm; /* (n_embd) f32 */
    qwen3_weight wq;        /* (n_embd -> n_head*head_dim) */
    qwen3_weight wk;        /* (n_embd -> n_head_kv*head_dim) */
    qwen3_weight wv;        /* (n_embd -> n_head_kv*head_dim) */
    qwen3_weight wo;        /* (n_head*head_dim -> n_embd) */
    qwen3_weight q_norm;    /* (head_dim) f32 */
    qwen3_weight k_norm;    /* (head_dim) f32 */
    qwen3_weight ffn_norm;  /* (n_embd) f32 */
    qwen3_weight gate;      /* (n_embd -> n_ff) */
    qwen3_weight up;        /* (n_embd -> n_ff) */
    qwen3_weight down;      /* (n_ff -> n_embd) */
} qwen3_layer;

typedef struct {
    qwen3_hparams hp;
    const gguf *file;        /* borrowed: must outlive the model */
    qwen3_weight tok_embd;   /* (n_embd) x n_vocab */
    qwen3_weight output_norm;/* (n_embd) f32 */
    qwen3_weight output;     /* (n_embd) x n_vocab: token_embd when the file ties them */
    qwen3_layer *layers;     /* n_layer, owned */
    float *norms;            /* owned: every norm vector above, copied out of the file at load
                                (read through the mapping, each kept a whole page of the file
                                resident, 2 MB where the page cache holds it in huge pages) */
    struct mm_weights *mm;   /* the fast path's repacked weights (matmul.h), owned; filled by the
                                first fast context */
} qwen3_model;

/* Reads the architecture from g (borrowed; it must outlive the model). Every tensor is checked
 * for presence, shape and a supported type; errors name the tensor. Caller frees with
 * qwen3_free. */
loco_status qwen3_load(const gguf *g, qwen3_model **out, loco_err *err);
void qwen3_free(qwen3_model *m); /* NULL ok */

typedef struct qwen3_ctx qwen3_ctx;

/* KV cache element type. */
typedef enum {
    QWEN3_KV_F16 = 0, /* like llama.cpp's default */
    QWEN3_KV_Q8_0,    /* 8-bit blocks of 32 values with an f16 scale: 53% of F16's memory */
} qwen3_kv_type;

/* The KV cache type of a name as the command line spells it ("f16", "q8_0"): true and *out
 * set, or false for any other name. */
bool qwen3_kv_type_from_name(const char *name, qwen3_kv_type *out);
/* "f16" or "q8_0"; static. */
const char *qwen3_kv_type_name(qwen3_kv_type t);
/* The names qwen3_kv_type_from_name accepts, for messages: "f16 or q8_0". */
#define QWEN3_KV_TYPE_NAMES "f16 or q8_0"

/* Context options; zero means the default for every field but n_ctx. */
typedef struct {
    uint32_t n_ctx;        /* positions per sequence (required) */
    uint32_t n_batch;      /* tokens per forward step, all sequences together (0: 256) */
    uint32_t n_seq;        /* sequences in one step, and sequences alive at once (0: 1) */
    uint64_t cache_bytes;  /* prefix cache: KV blocks no sequence uses are kept up to this */
    tpool *pool;           /* borrowed; NULL: single-threaded */
    bool parity;           /* llama.cpp's arithmetic bit for bit (docs/internals/qwen3.md)
                              instead of the fast path; needs an F16 cache */
    qwen3_kv_type kv_type;
} qwen3_ctx_opts;

/* A context: the KV block cache (kv.h) for n_seq sequences of n_ctx positions plus the prefix
 * cache (address space reserved, memory committed as blocks are written) and scratch for steps
 * of n_batch tokens, all allocated here; the forward pass allocates nothing. A fast context
 * (parity false) repacks the model's weights the first time (once per model, shared by its
 * contexts; docs/internals/kernels.md). */
loco_status qwen3_ctx_new_opts(const qwen3_model *m, const qwen3_ctx_opts *o, qwen3_ctx **out,
                               loco_err *err);
/* qwen3_ctx_new_opts for one sequence, the fast path and an F16 cache. */
loco_status qwen3_ctx_new(const qwen3_model *m, uint32_t n_ctx, uint32_t n_batch, tpool *pool,
                          qwen3_ctx **out, loco_err *err);
void qwen3_ctx_free(qwen3_ctx *c); /* NULL ok; every kv_seq of its cache must be freed first */
uint32_t qwen3_ctx_size(const qwen3_ctx *c);  /* n_ctx */
uint32_t qwen3_ctx_batch(const qwen3_ctx *c); /* n_batch */
bool qwen3_ctx_parity(const qwen3_ctx *c);
uint32_t qwen3_ctx_seqs(const qwen3_ctx *c);  /* n_seq */
uint32_t qwen3_ctx_vocab(const qwen3_ctx *c); /* logits per row */
/* What computes the matrix products, e.g. "avx512 (...)" or "parity:avx512" (static). */
const char *qwen3_ctx_kernels(const qwen3_ctx *c);
/* The block cache, for making sequences (kv_seq_new with n_ctx = qwen3_ctx_size). Borrowed. */
struct kv_cache *qwen3_ctx_kv(qwen3_ctx *c);

/* One sequence's part of a step: n tokens at positions len..len+n-1 of seq. */
typedef struct {
    struct kv_seq *seq;
    const int32_t *tokens;
    uint32_t n;            /* >= 1 */
    float *logits;         /* NULL, or n_vocab floats: receives the last token's logits */
    bool all_logits;       /* logits holds n * n_vocab floats: row i after tokens[0..i] */
} qwen3_seg;

/* One forward pass over the tokens of every segment together (at most n_seq segments of
 * distinct sequences, n_batch tokens in all): matmuls run once over all rows, attention per
 * sequence. On success each seq holds its new tokens. LOCO_ERR_OVERFLOW past a sequence's
 * context, LOCO_ERR_INVALID for an id outside the vocabulary or a bad step, LOCO_ERR_LIMIT when
 * the cache has no free block; on error no sequence changed. */
loco_status qwen3_forward(qwen3_ctx *c, const qwen3_seg *segs, uint32_t n_segs, loco_err *err);

/* ---- one sequence (the context's own; made on first use) ---- */

/* Tokens in the cache. */
uint32_t qwen3_ctx_past(const qwen3_ctx *c);
/* Forgets every position from n on (n <= past): how a prefix is reused. */
void qwen3_ctx_truncate(qwen3_ctx *c, uint32_t n);
/* The token at cache position i (i < past). */
int32_t qwen3_ctx_token(const qwen3_ctx *c, uint32_t i);

/* Runs tokens[0..n) at positions past..past+n-1 (in batches of n_batch) and, when out_logits
 * is non-NULL, writes the logits of the last token (n_vocab floats). LOCO_ERR_OVERFLOW naming
 * both sizes when past+n exceeds the context; LOCO_ERR_INVALID for an id outside the vocab. */
loco_status qwen3_eval(qwen3_ctx *c, const int32_t *tokens, uint32_t n, float *out_logits,
                       loco_err *err);
/* qwen3_eval writing the logits of every token: out_logits holds n * n_vocab floats, row i the
 * logits after tokens[0..i] (teacher forcing: perplexity, the fast path's KL check). */
loco_status qwen3_eval_all(qwen3_ctx *c, const int32_t *tokens, uint32_t n, float *out_logits,
                           loco_err *err);

#endif
