/* blocks.h: ggml's block layouts (ggml-common.h) for the weight and activation types the engine
 * computes with: the file format, shared by the quant module (format, parity kernels) and the
 * kernels module (packing, fast kernels). fp16 fields hold raw IEEE half bits. Engine layer. */
#ifndef LOCO_KERNELS_BLOCKS_H
#define LOCO_KERNELS_BLOCKS_H

#include <stdint.h>

#include "engine/ggml_types.h"

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K GGML_QK_K
#define K_SCALE_SIZE 12

typedef struct {
    uint16_t d;             /* fp16 scale */
    uint8_t qs[QK4_0 / 2];  /* value j: low nibble of qs[j]; j+16: high nibble */
} block_q4_0;

typedef struct {
    uint16_t d, m;          /* fp16 scale and min */
    uint8_t qs[QK4_1 / 2];
} block_q4_1;

typedef struct {
    uint16_t d;
    uint8_t qh[4];          /* u32 LE: bit j is the 5th bit of value j */
    uint8_t qs[QK5_0 / 2];
} block_q5_0;

typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1;

typedef struct {
    uint16_t d;
    int8_t qs[QK8_0];
} block_q8_0;

typedef struct {
    uint16_t d;             /* fp16 scale */
    uint16_t s;             /* fp16 d * sum(qs) */
    int8_t qs[QK8_1];
} block_q8_1;

typedef struct {
    uint16_t d, dmin;                /* fp16 super-block scale for scales and for mins */
    uint8_t scales[K_SCALE_SIZE];    /* eight 6-bit scales and eight 6-bit mins */
    uint8_t qs[QK_K / 2];
} block_q4_K;

typedef struct {
    uint16_t d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];            /* high bits: bit 2c / 2c+1 for chunk c */
    uint8_t qs[QK_K / 2];
} block_q5_K;

typedef struct {
    uint8_t ql[QK_K / 2];            /* low 4 bits */
    uint8_t qh[QK_K / 4];            /* high 2 bits */
    int8_t scales[QK_K / 16];        /* 8-bit sub-block scales */
    uint16_t d;                      /* fp16 super-block scale (last) */
} block_q6_K;

typedef struct {
    float d;                         /* f32 scale */
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];        /* sum of each 16 qs */
} block_q8_K;

_Static_assert(sizeof(block_q4_0) == 18, "q4_0 size");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1 size");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0 size");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1 size");
_Static_assert(sizeof(block_q8_0) == 34, "q8_0 size");
_Static_assert(sizeof(block_q8_1) == 36, "q8_1 size");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K size");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K size");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K size");
_Static_assert(sizeof(block_q8_K) == 292, "q8_K size");

/* Unpacks the j-th 6-bit scale and min (j in 0..7) of a Q4_K/Q5_K scales[12] array. */
static inline void quant_k4_scale_min(int j, const uint8_t *q, uint8_t *out_sc, uint8_t *out_m)
{
    if (j < 4) {
        *out_sc = q[j] & 63;
        *out_m = q[j + 4] & 63;
    } else {
        *out_sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *out_m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

#endif
