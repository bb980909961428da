/* quant_lowbit.h: block layouts and kernel-table hooks of the low-bit weight types Q2_K, Q3_K,
 * IQ4_NL and IQ4_XS (ggml-common.h's layouts; fp16 fields hold raw IEEE half bits). Private to
 * the quant module (quant.c fills the tables through these hooks); the rest of the engine uses
 * quant.h. */
#ifndef LOCO_QUANT_LOWBIT_H
#define LOCO_QUANT_LOWBIT_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/ggml_types.h"
#include "engine/quant.h"

#define QK4_NL 32

/* Q2_K: 16 sub-blocks of 16 values, value = d * (sc & 15) * q - dmin * (sc >> 4), q in 0..3.
 * Value v (0..255): half h = v / 128, j = (v % 128) / 32, l = v % 32; q = (qs[32h + l] >> 2j)
 * & 3, scale byte scales[v / 16]. */
typedef struct {
    uint8_t scales[GGML_QK_K / 16]; /* low nibble: scale, high nibble: min */
    uint8_t qs[GGML_QK_K / 4];      /* 2-bit quants */
    uint16_t d;                     /* fp16 super-block scale of the scales */
    uint16_t dmin;                  /* fp16 super-block scale of the mins */
} block_q2_K;

/* Q3_K: 16 sub-blocks of 16, value = d * (s - 32) * (q - 4 * !hbit), q in 0..3 as Q2_K's; the
 * high bit of value v is bit v / 32 of hmask[v % 32]; sixteen 6-bit scales s packed in 12
 * bytes (quant_q3_K_scales). */
typedef struct {
    uint8_t hmask[GGML_QK_K / 8];
    uint8_t qs[GGML_QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
} block_q3_K;

/* IQ4_NL: 32 values, value = d * quant_iq4nl_values[nibble]; value j < 16 is the low nibble
 * of qs[j], value j + 16 its high nibble (Q4_0's order). */
typedef struct {
    uint16_t d;
    uint8_t qs[QK4_NL / 2];
} block_iq4_nl;

/* IQ4_XS: 8 sub-blocks of 32 with IQ4_NL's values and order, value = d * (ls - 32) * table;
 * the 6-bit ls of sub-block ib: low 4 bits from nibble ib % 2 of scales_l[ib / 2], high 2
 * bits from bits 2ib..2ib+1 of scales_h. */
typedef struct {
    uint16_t d;
    uint16_t scales_h;
    uint8_t scales_l[GGML_QK_K / 64];
    uint8_t qs[GGML_QK_K / 2];
} block_iq4_xs;

_Static_assert(sizeof(block_q2_K) == 84, "q2_K size");
_Static_assert(sizeof(block_q3_K) == 110, "q3_K size");
_Static_assert(sizeof(block_iq4_nl) == 18, "iq4_nl size");
_Static_assert(sizeof(block_iq4_xs) == 136, "iq4_xs size");

/* The 16 non-linear levels of IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl). */
extern const int8_t quant_iq4nl_values[16];

/* The sixteen signed scales (s - 32, in -32..31) of a Q3_K block's scales[12]: low 4 bits of
 * scale j from nibble j / 8 of byte j % 8, high 2 bits from bits 2(j / 4) of byte 8 + j % 4. */
static inline void quant_q3_K_scales(const uint8_t *sc, int8_t out[16])
{
    for (int j = 0; j < 16; j++) {
        const int lo = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
        const int hi = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

/* The signed scale (ls - 32, in -32..31) of sub-block ib (0..7) of an IQ4_XS block. */
static inline int quant_iq4_xs_scale(const block_iq4_xs *b, int ib)
{
    const int lo = (b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF;
    const int hi = (b->scales_h >> (2 * ib)) & 3;
    return (lo | (hi << 4)) - 32;
}

/* llama.cpp's other kernels for these types, as one output's float steps (integer sums are
 * exact in any order), for the parity path to mirror where llama.cpp uses them (see
 * docs/internals/quant.md). Same signature as a vec_dot; activations as quant_act_type.
 * - quant_lowbit_amx_iq4_xs: the AMX kernels and the IQ panel gemm (iqp.cpp) for IQ4_XS: per
 *   super-block acc = fma((float)sum_j ls_j * dot_j, d_w * d_a, acc).
 * - quant_lowbit_repack_iq4_nl: iq4_nl_8x8_q8_0 (gemv and gemm): per block
 *   acc = fma((float)isum, d_w * d_a, acc).
 * - quant_lowbit_repack_q2_K_gemv / _gemm: q2_K_8x8_q8_K: acc = fma((float)sum sc*dot, d_w*d_a,
 *   acc) and accm = fma((float)sum m*bsum, dmin_w*d_a, accm) per super-block (gemv) or per
 *   128 values (gemm), result acc - accm. */
float quant_lowbit_amx_iq4_xs(int64_t n, const void *w, const void *a);
float quant_lowbit_repack_iq4_nl(int64_t n, const void *w, const void *a);
float quant_lowbit_repack_q2_K_gemv(int64_t n, const void *w, const void *a);
float quant_lowbit_repack_q2_K_gemm(int64_t n, const void *w, const void *a);

/* Installs the four types in a kernel table: the scalar reference (dequantize, quantize,
 * ggml's generic dot products) and, on x86 with AVX2+FMA+F16C, the SIMD dots (which return
 * false and leave the table alone without them). */
void quant_lowbit_scalar_fill(quant_kernels *kt);
bool quant_lowbit_avx2_fill(quant_kernels *kt);

#endif
