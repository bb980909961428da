/* ggml_types.h: the ggml tensor type table (ids as in GGUF files, block sizes, which ones
 * loco computes with) and exact fp16/bf16 <-> f32 conversions matching ggml bit for bit.
 * Engine layer; pure functions, no state. */
#ifndef LOCO_GGML_TYPES_H
#define LOCO_GGML_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Type ids as stored in GGUF tensor infos (ggml.h enum ggml_type). Ids 4, 5 and 31-33,
 * 36-38 were removed from ggml and are unknown here. */
typedef enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_IQ2_XXS = 16,
    GGML_TYPE_IQ2_XS = 17,
    GGML_TYPE_IQ3_XXS = 18,
    GGML_TYPE_IQ1_S = 19,
    GGML_TYPE_IQ4_NL = 20,
    GGML_TYPE_IQ3_S = 21,
    GGML_TYPE_IQ2_S = 22,
    GGML_TYPE_IQ4_XS = 23,
    GGML_TYPE_I8 = 24,
    GGML_TYPE_I16 = 25,
    GGML_TYPE_I32 = 26,
    GGML_TYPE_I64 = 27,
    GGML_TYPE_F64 = 28,
    GGML_TYPE_IQ1_M = 29,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_TQ1_0 = 34,
    GGML_TYPE_TQ2_0 = 35,
    GGML_TYPE_MXFP4 = 39,
    GGML_TYPE_COUNT = 40, /* one past the largest id in the table */
} ggml_type;

/* Values per block for the K-quants. */
#define GGML_QK_K 256

/* True when id names a type in the table (known layout, block and byte sizes). */
bool ggml_type_known(uint32_t id);
/* True for the types loco computes with as weights: F32, F16, BF16, Q8_0, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS. */
bool ggml_type_supported(uint32_t id);
/* Static name ("Q4_K"); "unknown" for ids not in the table. Never NULL. */
const char *ggml_type_name(uint32_t id);
/* Values per block (1 for plain types); 0 for unknown ids. */
size_t ggml_type_block_size(uint32_t id);
/* Bytes per block; 0 for unknown ids. */
size_t ggml_type_block_bytes(uint32_t id);
/* Bytes of a row of n values: n / block_size * block_bytes. Returns 0 when the id is
 * unknown, n is not a multiple of the block size, or the size would overflow size_t. */
size_t ggml_type_row_size(uint32_t id, uint64_t n);
/* Looks a type up by name, case-insensitive ("q8_0", "BF16"); false when unknown. */
bool ggml_type_from_name(const char *name, ggml_type *out_type);
/* The supported list as static text, "F32, F16, BF16, ..." (for error messages). */
const char *ggml_type_supported_list(void);

/* IEEE half <-> f32 exactly as ggml's portable path: round-to-nearest-even, subnormals kept,
 * infinities kept, every NaN becomes a quiet NaN (0x7E00 with the sign). */
float fp16_to_f32(uint16_t h);
uint16_t fp16_from_f32(float f);
/* bfloat16 <-> f32 as ggml: the top 16 bits, rounded to nearest even; NaN stays NaN and is
 * made quiet (payload truncated, bit 6 set). */
float bf16_to_f32(uint16_t h);
uint16_t bf16_from_f32(float f);

#endif
