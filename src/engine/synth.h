/* synth.h: builds Qwen3-architecture GGUF files with deterministic random weights and a real
 * tokenizer (HF tokenizer.json + tokenizer_config.json), in any supported tensor type. Tests
 * and benchmarks make their models with it, since no model hub is reachable. Engine layer. */
#ifndef LOCO_SYNTH_H
#define LOCO_SYNTH_H

#include <stdint.h>

#include "base/status.h"
#include "engine/ftype.h"
#include "engine/ggml_types.h"

typedef struct {
    const char *tokenizer_json;        /* text of tokenizer.json (borrowed) */
    size_t tokenizer_json_len;
    const char *chat_template;         /* NULL: none (from tokenizer_config.json) */
    uint32_t n_layer;                  /* 2 */
    uint32_t n_embd;                   /* 256 */
    uint32_t n_head;                   /* 4 */
    uint32_t n_head_kv;                /* 2 */
    uint32_t head_dim;                 /* 64 */
    uint32_t n_ff;                     /* 512 */
    uint32_t n_vocab;                  /* 0: 151936 (Qwen3's padded vocab) or the tokenizer's size if larger */
    uint32_t n_ctx_train;              /* 40960 */
    float rope_base;                   /* 5e6 */
    float rms_eps;                     /* 1e-6 */
    ggml_type type;                    /* type of the matrices (norms stay F32) */
    const ftype_mix *mix;              /* NULL: every matrix `type`; else llama-quantize's recipe
                                        * of that file type (ftype_mix_find("q4_k_m")) */
    bool tied;                         /* no output.weight: the head reuses token_embd */
    const int32_t *boost_ids;          /* untied only: rows of output.weight scaled by boost, */
    size_t n_boost;                    /* so those tokens are sampled far more often (a model */
    float boost;                       /* that opens <tool_call>s and writes JSON-ish text) */
    uint64_t seed;
    int32_t n_threads;                 /* quantizing threads, 0: every CPU (the bytes are the
                                        * same for any count) */
    /* progress: called after each tensor with (done, total); may be NULL */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
} synth_params;

/* Defaults above. */
void synth_params_default(synth_params *p);
/* Writes the model to path (atomically). Errors name the tensor whose shape does not fit the
 * requested type's block size. */
loco_status synth_write(const synth_params *p, const char *path, loco_err *err);

#endif
