/* quant_avx2_int.h: what the parity path's two AVX2 files (quant_avx2.c, quant_lowbit_avx2.c)
 * share: the target attribute, small vector helpers and the table entry (the row loops are
 * quant_int.h's QUANT_ROW_LOOPS). Private to those files; include after <immintrin.h>, on
 * x86-64 with GCC or clang. */
#ifndef LOCO_ENGINE_QUANT_AVX2_INT_H
#define LOCO_ENGINE_QUANT_AVX2_INT_H

#include "engine/quant_int.h"

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))

AVX2_FN static inline float h2f(uint16_t h)
{
    return _cvtsh_ss(h);
}

/* ggml's hsum_float_8: the two 128-bit halves, then the two pairs, then the last pair. */
AVX2_FN static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_FN static inline __m256i load256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* Installs dot_T, matvec_T and matmul_T as type ID's entries of the table kt. */
#define SET_AVX2(T, ID)                                                                        \
    do {                                                                                       \
        kt->ops[ID].vec_dot = dot_##T;                                                         \
        kt->ops[ID].matvec = matvec_##T;                                                       \
        kt->ops[ID].matmul = matmul_##T;                                                       \
    } while (0)

#endif
