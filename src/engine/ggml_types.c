/* ggml_types.c: the ggml type table (sizes from ggml-common.h block structs) and the
 * fp16/bf16 conversions, transcribed from ggml-impl.h so results are bit-identical. */
#include "base/common.h"

#include <math.h>

#include "engine/ggml_types.h"

typedef struct {
    const char *name;  /* NULL: id not in use */
    uint32_t block;    /* values per block */
    uint32_t bytes;    /* bytes per block */
    bool supported;    /* loco has kernels for it */
} type_row;

static const type_row type_table[GGML_TYPE_COUNT] = {
    [GGML_TYPE_F32] = {"F32", 1, 4, true},
    [GGML_TYPE_F16] = {"F16", 1, 2, true},
    [GGML_TYPE_Q4_0] = {"Q4_0", 32, 18, true},
    [GGML_TYPE_Q4_1] = {"Q4_1", 32, 20, true},
    [GGML_TYPE_Q5_0] = {"Q5_0", 32, 22, true},
    [GGML_TYPE_Q5_1] = {"Q5_1", 32, 24, true},
    [GGML_TYPE_Q8_0] = {"Q8_0", 32, 34, true},
    [GGML_TYPE_Q8_1] = {"Q8_1", 32, 36, false},
    [GGML_TYPE_Q2_K] = {"Q2_K", 256, 84, true},
    [GGML_TYPE_Q3_K] = {"Q3_K", 256, 110, true},
    [GGML_TYPE_Q4_K] = {"Q4_K", 256, 144, true},
    [GGML_TYPE_Q5_K] = {"Q5_K", 256, 176, true},
    [GGML_TYPE_Q6_K] = {"Q6_K", 256, 210, true},
    [GGML_TYPE_Q8_K] = {"Q8_K", 256, 292, false},
    [GGML_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66, false},
    [GGML_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74, false},
    [GGML_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98, false},
    [GGML_TYPE_IQ1_S] = {"IQ1_S", 256, 50, false},
    [GGML_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18, true},
    [GGML_TYPE_IQ3_S] = {"IQ3_S", 256, 110, false},
    [GGML_TYPE_IQ2_S] = {"IQ2_S", 256, 82, false},
    [GGML_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136, true},
    [GGML_TYPE_I8] = {"I8", 1, 1, false},
    [GGML_TYPE_I16] = {"I16", 1, 2, false},
    [GGML_TYPE_I32] = {"I32", 1, 4, false},
    [GGML_TYPE_I64] = {"I64", 1, 8, false},
    [GGML_TYPE_F64] = {"F64", 1, 8, false},
    [GGML_TYPE_IQ1_M] = {"IQ1_M", 256, 56, false},
    [GGML_TYPE_BF16] = {"BF16", 1, 2, true},
    [GGML_TYPE_TQ1_0] = {"TQ1_0", 256, 54, false},
    [GGML_TYPE_TQ2_0] = {"TQ2_0", 256, 66, false},
    [GGML_TYPE_MXFP4] = {"MXFP4", 32, 17, false},
};

static const type_row *type_get(uint32_t id)
{
    if (id >= GGML_TYPE_COUNT || !type_table[id].name)
        return NULL;
    return &type_table[id];
}

bool ggml_type_known(uint32_t id)
{
    return type_get(id) != NULL;
}

bool ggml_type_supported(uint32_t id)
{
    const type_row *t = type_get(id);
    return t && t->supported;
}

const char *ggml_type_name(uint32_t id)
{
    const type_row *t = type_get(id);
    return t ? t->name : "unknown";
}

size_t ggml_type_block_size(uint32_t id)
{
    const type_row *t = type_get(id);
    return t ? t->block : 0;
}

size_t ggml_type_block_bytes(uint32_t id)
{
    const type_row *t = type_get(id);
    return t ? t->bytes : 0;
}

size_t ggml_type_row_size(uint32_t id, uint64_t n)
{
    const type_row *t = type_get(id);
    if (!t || n % t->block != 0)
        return 0;
    uint64_t blocks = n / t->block;
    if (blocks > SIZE_MAX / t->bytes)
        return 0;
    return (size_t)blocks * t->bytes;
}

bool ggml_type_from_name(const char *name, ggml_type *out_type)
{
    for (uint32_t id = 0; id < GGML_TYPE_COUNT; id++) {
        if (type_table[id].name && !strcasecmp(type_table[id].name, name)) {
            *out_type = (ggml_type)id;
            return true;
        }
    }
    return false;
}

const char *ggml_type_supported_list(void)
{
    return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, "
           "IQ4_NL, IQ4_XS";
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* ggml_compute_fp16_to_fp32 (portable path, from the FP16 library by Marat Dukhan). */
float fp16_to_f32(uint16_t h)
{
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & UINT32_C(0x80000000);
    const uint32_t two_w = w + w;
    const uint32_t exp_offset = UINT32_C(0xE0) << 23;
    const float exp_scale = 0x1.0p-112f;
    const float normalized = f32_from_bits((two_w >> 4) + exp_offset) * exp_scale;
    const uint32_t magic_mask = UINT32_C(126) << 23;
    const float magic_bias = 0.5f;
    const float denormalized = f32_from_bits((two_w >> 17) | magic_mask) - magic_bias;
    const uint32_t denormalized_cutoff = UINT32_C(1) << 27;
    const uint32_t result =
        sign | (two_w < denormalized_cutoff ? f32_bits(denormalized) : f32_bits(normalized));
    return f32_from_bits(result);
}

/* ggml_compute_fp32_to_fp16 (portable path). Relies on f32 arithmetic in round-to-nearest,
 * which C11 without -ffast-math guarantees on SSE targets. */
uint16_t fp16_from_f32(float f)
{
    const float scale_to_inf = 0x1.0p+112f;
    const float scale_to_zero = 0x1.0p-110f;
    float base = (fabsf(f) * scale_to_inf) * scale_to_zero;
    const uint32_t w = f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & UINT32_C(0x80000000);
    uint32_t bias = shl1_w & UINT32_C(0xFF000000);
    if (bias < UINT32_C(0x71000000))
        bias = UINT32_C(0x71000000);
    base = f32_from_bits((bias >> 1) + UINT32_C(0x07800000)) + base;
    const uint32_t bits = f32_bits(base);
    const uint32_t exp_bits = (bits >> 13) & UINT32_C(0x00007C00);
    const uint32_t mantissa_bits = bits & UINT32_C(0x00000FFF);
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (uint16_t)((sign >> 16) | (shl1_w > UINT32_C(0xFF000000) ? UINT16_C(0x7E00) : nonsign));
}

float bf16_to_f32(uint16_t h)
{
    return f32_from_bits((uint32_t)h << 16);
}

/* ggml_compute_fp32_to_bf16. */
uint16_t bf16_from_f32(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}
