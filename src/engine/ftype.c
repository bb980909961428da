/* ftype.c: llama.cpp's file types and llama-quantize's per-tensor type choice for the mixed
 * ones (llama_tensor_get_type in src/llama-quant.cpp, the branches a dense model without an
 * importance matrix reaches), so synthetic models carry the same mix of types as published
 * files. */
#include "base/common.h"

#include "engine/ftype.h"

typedef enum {
    MIX_Q2_K,
    MIX_Q3_K_S,
    MIX_Q3_K_M,
    MIX_Q3_K_L,
    MIX_Q4_K_S,
    MIX_Q4_K_M,
    MIX_Q5_K_S,
    MIX_Q5_K_M,
    MIX_IQ4_NL,
    MIX_IQ4_XS
} mix_id;

static const ftype_mix mixes[] = {
    [MIX_Q2_K] = {"Q2_K", 10, GGML_TYPE_Q2_K},
    [MIX_Q3_K_S] = {"Q3_K_S", 11, GGML_TYPE_Q3_K},
    [MIX_Q3_K_M] = {"Q3_K_M", 12, GGML_TYPE_Q3_K},
    [MIX_Q3_K_L] = {"Q3_K_L", 13, GGML_TYPE_Q3_K},
    [MIX_Q4_K_S] = {"Q4_K_S", 14, GGML_TYPE_Q4_K},
    [MIX_Q4_K_M] = {"Q4_K_M", 15, GGML_TYPE_Q4_K},
    [MIX_Q5_K_S] = {"Q5_K_S", 16, GGML_TYPE_Q5_K},
    [MIX_Q5_K_M] = {"Q5_K_M", 17, GGML_TYPE_Q5_K},
    [MIX_IQ4_NL] = {"IQ4_NL", 25, GGML_TYPE_IQ4_NL},
    [MIX_IQ4_XS] = {"IQ4_XS", 30, GGML_TYPE_IQ4_XS},
};

const ftype_mix *ftype_mix_find(const char *name)
{
    for (size_t i = 0; i < LOCO_ARRAY_LEN(mixes); i++)
        if (!strcasecmp(mixes[i].name, name))
            return &mixes[i];
    return NULL;
}

const char *ftype_mix_names(void)
{
    return "q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, iq4_nl, iq4_xs";
}

/* llama.cpp's use_more_bits: the first and last eighth of the layers and every third one
 * between. */
static bool more_bits(uint32_t i, uint32_t n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

ggml_type ftype_mix_type(const ftype_mix *m, ftype_role role, uint32_t layer, uint32_t n_layer,
                         uint32_t n_gqa, bool tied)
{
    const mix_id id = (mix_id)(m - mixes);
    const uint32_t i = layer, n = n_layer;
    switch (role) {
    case FTYPE_TOKEN_EMBD: /* a tied one is quantized as the output */
        return tied ? GGML_TYPE_Q6_K : m->base;
    case FTYPE_OUTPUT: return GGML_TYPE_Q6_K;
    case FTYPE_ATTN_V:
        switch (id) {
        case MIX_Q2_K: return n_gqa >= 4 ? GGML_TYPE_Q4_K : GGML_TYPE_Q3_K;
        case MIX_Q3_K_M: return i < 2 ? GGML_TYPE_Q5_K : GGML_TYPE_Q4_K;
        case MIX_Q3_K_L: return GGML_TYPE_Q5_K;
        case MIX_IQ4_NL:
        case MIX_IQ4_XS: return n_gqa >= 4 ? GGML_TYPE_Q5_K : m->base;
        case MIX_Q4_K_M:
        case MIX_Q5_K_M: return more_bits(i, n) ? GGML_TYPE_Q6_K : m->base;
        case MIX_Q4_K_S: return i < 4 ? GGML_TYPE_Q5_K : m->base;
        default: return m->base;
        }
    case FTYPE_FFN_DOWN:
        switch (id) {
        case MIX_Q2_K: return GGML_TYPE_Q3_K;
        case MIX_Q3_K_M: return i < n / 16 ? GGML_TYPE_Q5_K : GGML_TYPE_Q4_K;
        case MIX_Q3_K_L: return GGML_TYPE_Q5_K;
        case MIX_Q4_K_M:
        case MIX_Q5_K_M: return more_bits(i, n) ? GGML_TYPE_Q6_K : m->base;
        case MIX_IQ4_NL:
        case MIX_IQ4_XS:
        case MIX_Q4_K_S: return i < n / 8 ? GGML_TYPE_Q5_K : m->base;
        default: return m->base;
        }
    case FTYPE_ATTN_OUTPUT:
        switch (id) {
        case MIX_Q2_K: return GGML_TYPE_Q3_K;
        case MIX_Q3_K_M: return GGML_TYPE_Q4_K;
        case MIX_Q3_K_L: return GGML_TYPE_Q5_K;
        default: return m->base;
        }
    default: return m->base;
    }
}

uint32_t ftype_of_type(ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F16: return 1;
    case GGML_TYPE_Q4_0: return 2;
    case GGML_TYPE_Q4_1: return 3;
    case GGML_TYPE_Q8_0: return 7;
    case GGML_TYPE_Q5_0: return 8;
    case GGML_TYPE_Q5_1: return 9;
    case GGML_TYPE_Q2_K: return 10;
    case GGML_TYPE_Q3_K: return 11;
    case GGML_TYPE_Q4_K: return 14;
    case GGML_TYPE_Q5_K: return 16;
    case GGML_TYPE_Q6_K: return 18;
    case GGML_TYPE_IQ4_NL: return 25;
    case GGML_TYPE_IQ4_XS: return 30;
    case GGML_TYPE_BF16: return 32;
    default: return 0;
    }
}
