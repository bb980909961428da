/* quant_scalar.h: small helpers shared by the quant module's scalar code (quant.c and
 * quant_lowbit.c; the SIMD files have their own h2f). Private to the quant module. */
#ifndef LOCO_QUANT_SCALAR_H
#define LOCO_QUANT_SCALAR_H

#include <stdint.h>
#include <string.h>

#include "engine/ggml_types.h"

static inline float h2f(uint16_t h)
{
    return fp16_to_f32(h);
}

static inline uint16_t f2h(float f)
{
    return fp16_from_f32(f);
}

static inline int imin(int a, int b)
{
    return a < b ? a : b;
}

static inline int imax(int a, int b)
{
    return a > b ? a : b;
}

/* Round to nearest, ties to even, for |f| <= 4194303 (ggml's nearest_int: the addition of
 * 1.5 * 2^23 leaves the rounded integer in the low mantissa bits). */
static inline int nearest_int(float f)
{
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

#endif
