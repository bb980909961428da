/* ftype.h: llama.cpp's model file types (GGUF general.file_type, the "Q4_K_M" in a file's
 * name) and, for the mixed ones, the recipe llama-quantize follows: which ggml type each
 * weight of a dense model gets. `loco model synth --mix` writes models with it. Engine layer;
 * pure functions over a static table. */
#ifndef LOCO_FTYPE_H
#define LOCO_FTYPE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/ggml_types.h"

/* What a weight matrix is for (llama-quantize's tensor categories of a dense model). */
typedef enum {
    FTYPE_TOKEN_EMBD,
    FTYPE_OUTPUT,
    FTYPE_ATTN_Q,
    FTYPE_ATTN_K,
    FTYPE_ATTN_V,
    FTYPE_ATTN_OUTPUT,
    FTYPE_FFN_GATE,
    FTYPE_FFN_UP,
    FTYPE_FFN_DOWN,
} ftype_role;

/* A mixed file type: its name, general.file_type id and base (most common) tensor type. */
typedef struct {
    const char *name; /* "Q3_K_M" */
    uint32_t id;      /* llama_ftype: 12 */
    ggml_type base;   /* Q3_K */
} ftype_mix;

/* The mix of that name (case-insensitive: "q3_k_m"), NULL when there is none. Known: Q2_K,
 * Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, IQ4_NL, IQ4_XS. Static. */
const ftype_mix *ftype_mix_find(const char *name);
/* "q2_k, q3_k_s, ..." for messages and help (static). */
const char *ftype_mix_names(void);

/* The type llama-quantize (without an importance matrix) gives a weight of this role in layer
 * `layer` of `n_layer`, for a dense (not mixture-of-experts) model with n_gqa query heads per
 * KV head. tied: the model has no output.weight, so token_embd takes the output's type. The
 * layer is ignored for TOKEN_EMBD and OUTPUT. */
ggml_type ftype_mix_type(const ftype_mix *m, ftype_role role, uint32_t layer, uint32_t n_layer,
                         uint32_t n_gqa, bool tied);

/* general.file_type of a model whose matrices are all of one type (llama.cpp's "pure"
 * files: F32 0, F16 1, Q4_0 2, ... Q3_K 11 (as Q3_K_S), Q4_K 14, IQ4_NL 25, IQ4_XS 30,
 * BF16 32); 0 for types without one. */
uint32_t ftype_of_type(ggml_type t);

#endif
