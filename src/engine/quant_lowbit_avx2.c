/* quant_lowbit_avx2.c: AVX2+FMA+F16C dot products of Q2_K, Q3_K, IQ4_NL and IQ4_XS with the
 * lane layout and float steps of llama.cpp's x86 vec_dot functions (the code its CPU backend
 * runs on every AVX2 and AVX-512 build for weights it does not repack), so the parity path
 * reproduces its results bit for bit. Compiled per function with target attributes; quant.c
 * installs them after quant_avx2_fill. Integer parts are exact; tests compare with the scalar
 * reference in quant_lowbit.c. */
#include "base/common.h"

#include <math.h>

#include "engine/quant_int.h"
#include "engine/quant_lowbit.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#ifdef __clang__
#pragma clang fp contract(off)
#endif

#include "engine/quant_avx2_int.h"

/* A 256-bit vector of 16-bit lanes: the low 8 lanes lo, the high 8 lanes hi. */
AVX2_FN static inline __m256i split16(int16_t lo, int16_t hi)
{
    return _mm256_setr_m128i(_mm_set1_epi16(lo), _mm_set1_epi16(hi));
}

/* Signed x times signed y summed in pairs into 16 int16 lanes (|x|, |y| <= 127). */
AVX2_FN static inline __m256i mul_add_s8(__m256i x, __m256i y)
{
    return _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* 16 packed bytes of IQ4 indices -> 32 signed levels: the low nibbles' levels in bytes 0..15,
 * the high nibbles' in bytes 16..31 (value order of a 32-value block). */
AVX2_FN static inline __m256i iq4_levels(const uint8_t *qs, __m128i table)
{
    const __m128i b = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(b, m4));
    const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(b, 4), m4));
    return _mm256_setr_m128i(lo, hi);
}

/* ggml_vec_dot_q2_K_q8_K (AVX2): per super-block acc = fma(-d_a*dmin, mins . bsums, acc) with
 * the mins term in 8 lanes (pairs of sub-blocks), then acc = fma(d_a*d, sumi, acc) where lane
 * L of sumi holds bytes 4L..4L+3 of every 32-value chunk times its sub-block scale. */
AVX2_FN static float dot_q2_K(int64_t n, const void *vw, const void *va)
{
    const block_q2_K *x = vw;
    const block_q8_K *y = va;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * h2f(x[i].d);
        const float dmin = -y[i].d * h2f(x[i].dmin);
        const __m128i sc = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
        const __m256i prod = _mm256_madd_epi16(mins, load256(y[i].bsums));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i bits = load256(x[i].qs + 32 * h);
            for (int k = 0; k < 4; k++) {
                const int s = 8 * h + 2 * k;
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                const __m256i p = _mm256_maddubs_epi16(q, load256(y[i].qs + 128 * h + 32 * k));
                const __m256i scale = split16((int16_t)(x[i].scales[s] & 0xF),
                                              (int16_t)(x[i].scales[s + 1] & 0xF));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale, p));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

/* ggml_vec_dot_q3_K_q8_K (AVX2): as Q2_K without mins; the 2 low bits and the "high bit
 * clear" 4 are multiplied separately (maddubs) and subtracted, scales are s - 32. */
AVX2_FN static float dot_q3_K(int64_t n, const void *vw, const void *va)
{
    const block_q3_K *x = vw;
    const block_q8_K *y = va;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i four = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * h2f(x[i].d);
        int8_t sc[16];
        quant_q3_K_scales(x[i].scales, sc);
        const __m256i hbits = load256(x[i].hmask);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i bits = load256(x[i].qs + 32 * h);
            for (int k = 0; k < 4; k++) {
                const int bit = 4 * h + k, s = 8 * h + 2 * k;
                const __m256i ql = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                /* 4 where the high bit is clear, else 0 */
                const __m256i hb = _mm256_and_si256(hbits, _mm256_set1_epi8((char)(1 << bit)));
                const __m256i qh = _mm256_andnot_si256(
                    _mm256_cmpeq_epi8(hb, _mm256_set1_epi8((char)(1 << bit))), four);
                const __m256i q8 = load256(y[i].qs + 128 * h + 32 * k);
                const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(ql, q8),
                                                   _mm256_maddubs_epi16(qh, q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(split16(sc[s], sc[s + 1]), p));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

/* ggml_vec_dot_iq4_nl_q8_0 (AVX2): blocks in pairs, two accumulators (even and odd blocks),
 * acc = fma(d_a*d_w, lane sums of 4 values, acc); their sum reduced, then an odd last block
 * added as sumf = fma(d, isum, sumf) (GCC contracts ggml's scalar tail). */
AVX2_FN static float dot_iq4_nl(int64_t n, const void *vw, const void *va)
{
    const block_iq4_nl *x = vw;
    const block_q8_0 *y = va;
    const __m128i table = _mm_loadu_si128((const __m128i *)quant_iq4nl_values);
    const __m256i ones = _mm256_set1_epi16(1);
    const int64_t nb = n / QK4_NL;
    __m256 acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps();
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2) {
        const __m256i p1 = _mm256_madd_epi16(
            mul_add_s8(iq4_levels(x[ib].qs, table), load256(y[ib].qs)), ones);
        const __m256i p2 = _mm256_madd_epi16(
            mul_add_s8(iq4_levels(x[ib + 1].qs, table), load256(y[ib + 1].qs)), ones);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(y[ib].d) * h2f(x[ib].d)), _mm256_cvtepi32_ps(p1),
                               acc1);
        acc2 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(y[ib + 1].d) * h2f(x[ib + 1].d)),
                               _mm256_cvtepi32_ps(p2), acc2);
    }
    float sumf = hsum8(_mm256_add_ps(acc1, acc2));
    for (; ib < nb; ib++) {
        const float d = h2f(y[ib].d) * h2f(x[ib].d);
        int sumi = 0;
        for (int j = 0; j < QK4_NL / 2; j++)
            sumi += y[ib].qs[j] * quant_iq4nl_values[x[ib].qs[j] & 0xF] +
                    y[ib].qs[j + 16] * quant_iq4nl_values[x[ib].qs[j] >> 4];
        sumf = fmaf(d, (float)sumi, sumf);
    }
    return sumf;
}

/* ggml_vec_dot_iq4_xs_q8_K (AVX2): per super-block the 8 sub-blocks' lane sums times their
 * scale (ls - 32) in int32 lanes, then acc = fma(d_w*d_a, sumi, acc). */
AVX2_FN static float dot_iq4_xs(int64_t n, const void *vw, const void *va)
{
    const block_iq4_xs *x = vw;
    const block_q8_K *y = va;
    const __m128i table = _mm_loadu_si128((const __m128i *)quant_iq4nl_values);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i sumi = _mm256_setzero_si256();
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const __m256i p = mul_add_s8(iq4_levels(x[i].qs + 16 * ib, table),
                                         load256(y[i].qs + 32 * ib));
            const __m256i ls = _mm256_set1_epi16((int16_t)quant_iq4_xs_scale(&x[i], ib));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, ls));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * y[i].d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

/* ------------------------------------------------------------------ row loops and table */

QUANT_ROW_LOOPS(q2_K, GGML_TYPE_Q2_K)
QUANT_ROW_LOOPS(q3_K, GGML_TYPE_Q3_K)
QUANT_ROW_LOOPS(iq4_nl, GGML_TYPE_IQ4_NL)
QUANT_ROW_LOOPS(iq4_xs, GGML_TYPE_IQ4_XS)

bool quant_lowbit_avx2_fill(quant_kernels *kt)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return false;
    SET_AVX2(q2_K, GGML_TYPE_Q2_K);
    SET_AVX2(q3_K, GGML_TYPE_Q3_K);
    SET_AVX2(iq4_nl, GGML_TYPE_IQ4_NL);
    SET_AVX2(iq4_xs, GGML_TYPE_IQ4_XS);
    return true;
}

#else /* not x86-64 with GCC or clang */

bool quant_lowbit_avx2_fill(quant_kernels *kt)
{
    LOCO_UNUSED(kt);
    return false;
}

#endif
