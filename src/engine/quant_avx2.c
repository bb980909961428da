/* quant_avx2.c: AVX2+FMA+F16C dot products for every weight type, compiled per function
 * with target attributes so the rest of the build stays generic; quant.c installs them
 * when the CPU has the features. Integer parts are exact; tests compare with quant.c. */
#include "base/common.h"

#include "engine/quant_int.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <cpuid.h>
#include <immintrin.h>

#ifdef __clang__
#pragma clang fp contract(off)
#endif

#include "engine/quant_avx2_int.h"

/* 16 packed bytes -> 32 values 0..15: low nibbles in bytes 0..15, high nibbles in 16..31. */
AVX2_FN static inline __m256i nibbles32(const uint8_t *p)
{
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* 32 bits (little-endian u32 at p) -> 32 bytes, 0xFF where bit i is set. */
AVX2_FN static inline __m256i bits_to_bytes(const uint8_t *p)
{
    uint32_t bits;
    memcpy(&bits, p, sizeof(bits));
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL,
                                            0x0202020202020202LL, 0x0303030303030303LL);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    const __m256i bm = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bm), bm);
}

/* Sum of signed x*y in 8 int32 lanes (pairs of 4). x may be -128; y must not be (activation
 * quantizers never produce it). */
AVX2_FN static inline __m256i dot_s8(__m256i x, __m256i y)
{
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Sum of unsigned x (0..127) times signed y in 8 int32 lanes. */
AVX2_FN static inline __m256i dot_u8(__m256i x, __m256i y)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

/* ------------------------------------------------------------------ 32-value blocks */

AVX2_FN static float dot_q8_0(int64_t n, const void *vw, const void *va)
{
    const block_q8_0 *x = vw;
    const block_q8_0 *y = va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const __m256 q = _mm256_cvtepi32_ps(dot_s8(load256(x[i].qs), load256(y[i].qs)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), q, acc);
    }
    return hsum8(acc);
}

AVX2_FN static float dot_q4_0(int64_t n, const void *vw, const void *va)
{
    const block_q4_0 *x = vw;
    const block_q8_0 *y = va;
    const __m256i eight = _mm256_set1_epi8(8);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const __m256i qx = _mm256_sub_epi8(nibbles32(x[i].qs), eight);
        const __m256 q = _mm256_cvtepi32_ps(dot_s8(qx, load256(y[i].qs)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), q, acc);
    }
    return hsum8(acc);
}

AVX2_FN static float dot_q4_1(int64_t n, const void *vw, const void *va)
{
    const block_q4_1 *x = vw;
    const block_q8_1 *y = va;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const __m256 q = _mm256_cvtepi32_ps(dot_u8(nibbles32(x[i].qs), load256(y[i].qs)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), q, acc);
        summs += h2f(x[i].m) * h2f(y[i].s);
    }
    return hsum8(acc) + summs;
}

AVX2_FN static float dot_q5_0(int64_t n, const void *vw, const void *va)
{
    const block_q5_0 *x = vw;
    const block_q8_0 *y = va;
    const __m256i hi_nib = _mm256_set1_epi8((char)0xF0);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK5_0; i++) {
        /* (q | h<<4) - 16 as int8: q when h is set, q | 0xF0 (= q - 16) when it is not */
        const __m256i h = bits_to_bytes(x[i].qh);
        const __m256i qx = _mm256_or_si256(nibbles32(x[i].qs), _mm256_andnot_si256(h, hi_nib));
        const __m256 q = _mm256_cvtepi32_ps(dot_s8(qx, load256(y[i].qs)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), q, acc);
    }
    return hsum8(acc);
}

AVX2_FN static float dot_q5_1(int64_t n, const void *vw, const void *va)
{
    const block_q5_1 *x = vw;
    const block_q8_1 *y = va;
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const __m256i h = _mm256_and_si256(bits_to_bytes(x[i].qh), bit4);
        const __m256i qx = _mm256_or_si256(nibbles32(x[i].qs), h);
        const __m256 q = _mm256_cvtepi32_ps(dot_u8(qx, load256(y[i].qs)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), q, acc);
        summs += h2f(x[i].m) * h2f(y[i].s);
    }
    return hsum8(acc) + summs;
}

/* ------------------------------------------------------------------ K quants */

/* Unpacks the eight 6-bit scales of a Q4_K/Q5_K block into sc and returns the min term
 * as 4 int32 lanes, lane k = m[2k]*s[2k] + m[2k+1]*s[2k+1] with s[j] the sum of the 32
 * activations of sub-block j (ggml's AVX2 split, kept for identical float rounding). */
AVX2_FN static inline __m128i k4_scales_mins(const uint8_t *scales12, const int16_t *bsums,
                                            int32_t *sc)
{
    int16_t m[8];
    for (int j = 0; j < 8; j++) {
        uint8_t s, mm;
        quant_k4_scale_min(j, scales12, &s, &mm);
        sc[j] = s;
        m[j] = mm;
    }
    const __m256i bs = load256(bsums);
    const __m128i sub = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    return _mm_madd_epi16(_mm_loadu_si128((const __m128i *)m), sub);
}

AVX2_FN static inline float hsum_ps4(__m128 v)
{
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
}

/* The float accumulation follows ggml's AVX2 kernel (one FMA per super-block into 8 lanes,
 * mins into 4 lanes), so results are bit-identical to llama.cpp built for AVX2. */
AVX2_FN static float dot_q4_K(int64_t n, const void *vw, const void *va)
{
    const block_q4_K *x = vw;
    const block_q8_K *y = va;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sc[8];
        const __m128i mins = k4_scales_mins(x[i].scales, y[i].bsums, sc);
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < QK_K / 64; c++) {
            const __m256i q4 = load256(x[i].qs + 32 * c);
            const __m256i lo = _mm256_and_si256(q4, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            const __m256i plo = _mm256_maddubs_epi16(lo, load256(q8 + 64 * c));
            const __m256i phi = _mm256_maddubs_epi16(hi, load256(q8 + 64 * c + 32));
            const __m256i slo = _mm256_madd_epi16(plo, _mm256_set1_epi16((short)sc[2 * c]));
            const __m256i shi = _mm256_madd_epi16(phi, _mm256_set1_epi16((short)sc[2 * c + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(slo, shi));
        }
        const float d = y[i].d * h2f(x[i].d);
        const float dmin = -y[i].d * h2f(x[i].dmin);
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(mins), acc_m);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc) + hsum_ps4(acc_m);
}

AVX2_FN static float dot_q5_K(int64_t n, const void *vw, const void *va)
{
    const block_q5_K *x = vw;
    const block_q8_K *y = va;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    float summ_f = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sc[8];
        const __m128i mins = k4_scales_mins(x[i].scales, y[i].bsums, sc);
        const __m128i mh = _mm_hadd_epi32(_mm_hadd_epi32(mins, mins), mins);
        const int summ = _mm_cvtsi128_si32(mh);
        const int8_t *q8 = y[i].qs;
        const __m256i qh = load256(x[i].qh);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < QK_K / 64; c++) {
            const __m256i q4 = load256(x[i].qs + 32 * c);
            /* bit 2c of qh[l] -> 16 for value l, bit 2c+1 -> 16 for value l+32 */
            const __m128i s_lo = _mm_cvtsi32_si128(2 * c), s_hi = _mm_cvtsi32_si128(2 * c + 1);
            const __m256i hlo = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, s_lo), one), 4);
            const __m256i hhi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, s_hi), one), 4);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q4, m4), hlo);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4), hhi);
            const __m256i plo = _mm256_maddubs_epi16(lo, load256(q8 + 64 * c));
            const __m256i phi = _mm256_maddubs_epi16(hi, load256(q8 + 64 * c + 32));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, _mm256_set1_epi16((short)sc[2 * c])));
            sumi = _mm256_add_epi32(sumi,
                                    _mm256_madd_epi16(phi, _mm256_set1_epi16((short)sc[2 * c + 1])));
        }
        const float d = y[i].d * h2f(x[i].d);
        const float dmin = -y[i].d * h2f(x[i].dmin);
        /* ggml writes summs += dmin * summ and GCC contracts it (-ffp-contract=fast, its C
         * is built as gnu11): one fma, not a rounded product then a sum */
        summ_f = _mm_cvtss_f32(
            _mm_fmadd_ss(_mm_set_ss(dmin), _mm_set_ss((float)summ), _mm_set_ss(summ_f)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc) + summ_f;
}

/* One 32-value group of Q6_K: q (0..63, the +32 offset still in) against 32 activations,
 * sub-block scales s0 for the first 16 values and s1 for the rest: 8 int32 lanes. */
AVX2_FN static inline __m256i q6_group(__m256i q, const int8_t *q8, int s0, int s1)
{
    const __m256i p = _mm256_maddubs_epi16(q, load256(q8));
    const __m256i s = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)s0)),
                                              _mm_set1_epi16((short)s1), 1);
    return _mm256_madd_epi16(p, s);
}

/* The -32 offset is removed once per super-block through bsums (32 * sum of scale * bsum),
 * lane for lane as ggml's AVX2 kernel does, so the float rounding is the same. */
AVX2_FN static float dot_q6_K(int64_t n, const void *vw, const void *va)
{
    const block_q6_K *x = vw;
    const block_q8_K *y = va;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m2 = _mm256_set1_epi8(0x03);
    const __m256i m2h = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(load256(y[i].bsums), sc16), 5);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = load256(x[i].ql + 64 * h);
            const __m256i ql1 = load256(x[i].ql + 64 * h + 32);
            const __m256i qh = load256(x[i].qh + 32 * h);
            const int8_t *sc = x[i].scales + 8 * h;
            const int8_t *q8 = y[i].qs + 128 * h;
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                                               _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
            const __m256i q1 = _mm256_or_si256(
                _mm256_and_si256(ql1, m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                               _mm256_and_si256(qh, m2h));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2h));
            const __m256i p01 = _mm256_add_epi32(q6_group(q0, q8, sc[0], sc[1]),
                                                 q6_group(q1, q8 + 32, sc[2], sc[3]));
            const __m256i p23 = _mm256_add_epi32(q6_group(q2, q8 + 64, sc[4], sc[5]),
                                                 q6_group(q3, q8 + 96, sc[6], sc[7]));
            sumi = _mm256_add_epi32(sumi, p01);
            sumi = _mm256_add_epi32(sumi, p23);
        }
        sumi = _mm256_sub_epi32(sumi, offset);
        const float d = y[i].d * h2f(x[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

/* ------------------------------------------------------------------ float types */

AVX2_FN static inline __m256 load_f16x8(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

AVX2_FN static inline __m256 load_bf16x8(const uint16_t *p)
{
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* ggml's GGML_F32x8_REDUCE: a0+a2, a1+a3, then their sum, then the halves, then two
 * horizontal adds. */
AVX2_FN static inline float reduce4_hadd(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    const __m256 v = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

/* The float dots keep ggml's AVX2 order (four 8-lane FMA accumulators over 32 values per
 * step, its reduction, the tail one by one; f16 and bf16 finish in double). */
AVX2_FN static float dot_f32(int64_t n, const void *vw, const void *va)
{
    const float *x = vw, *y = va;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    float sum = reduce4_hadd(a0, a1, a2, a3);
    for (; i < n; i++)
        sum += x[i] * y[i];
    return sum;
}

AVX2_FN static float dot_f16(int64_t n, const void *vw, const void *va)
{
    const uint16_t *x = vw, *y = va;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load_f16x8(x + i), load_f16x8(y + i), a0);
        a1 = _mm256_fmadd_ps(load_f16x8(x + i + 8), load_f16x8(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(load_f16x8(x + i + 16), load_f16x8(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(load_f16x8(x + i + 24), load_f16x8(y + i + 24), a3);
    }
    double sum = reduce4_hadd(a0, a1, a2, a3);
    for (; i < n; i++)
        sum += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)sum;
}

AVX2_FN static inline float bf2f(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* ggml's AVX2 bf16 dot multiplies and adds separately (no FMA). */
AVX2_FN static float dot_bf16(int64_t n, const void *vw, const void *va)
{
    const uint16_t *x = vw, *y = va;
    __m256 c1 = _mm256_setzero_ps(), c2 = c1, c3 = c1, c4 = c1;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        c1 = _mm256_add_ps(_mm256_mul_ps(load_bf16x8(x + i), load_bf16x8(y + i)), c1);
        c2 = _mm256_add_ps(_mm256_mul_ps(load_bf16x8(x + i + 8), load_bf16x8(y + i + 8)), c2);
        c3 = _mm256_add_ps(_mm256_mul_ps(load_bf16x8(x + i + 16), load_bf16x8(y + i + 16)), c3);
        c4 = _mm256_add_ps(_mm256_mul_ps(load_bf16x8(x + i + 24), load_bf16x8(y + i + 24)), c4);
    }
    c1 = _mm256_add_ps(_mm256_add_ps(c1, c3), _mm256_add_ps(c2, c4));
    double sum = hsum8(c1);
    for (; i < n; i++)
        sum += (double)(bf2f(x[i]) * bf2f(y[i]));
    return (float)sum;
}

/* ------------------------------------------------------------------ row loops and table */

QUANT_MAIN_TYPES(QUANT_ROW_LOOPS)

/* F16C is CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports has no name for it). */
static bool cpu_has_f16c(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return false;
    return (c >> 29) & 1u;
}

bool quant_avx2_fill(quant_kernels *kt)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !cpu_has_f16c())
        return false;
    kt->name = "avx2";
#define SET_AVX2_ONE(T, ID) SET_AVX2(T, ID);
    QUANT_MAIN_TYPES(SET_AVX2_ONE)
#undef SET_AVX2_ONE
    return true;
}

#else /* not x86-64 with GCC or clang */

bool quant_avx2_fill(quant_kernels *kt)
{
    LOCO_UNUSED(kt);
    return false;
}

#endif
