/* kern_avx2.c: the fast kernels for AVX2 + FMA + F16C (engine/kernels), for x86 CPUs without
 * AVX-512. This file alone is compiled with those instructions (CMakeLists.txt); kernels.c
 * installs its table only on CPUs that have them. A group's 16 rows are two 8-lane halves;
 * integer sums use maddubs (unsigned values x signed activations; every packed value is at
 * most 63 so the 16-bit pair sums cannot saturate), summed further in 16 bits while that
 * cannot overflow and widened by a madd (by the sub-block scale or 1); Q8_0 is made signed and
 * uses the sign trick. Each output runs the scalar reference's float steps in its order, so
 * the results are the same bits (kern_scalar.c). */
#include "base/common.h"

#include "engine/kernels/kern_int.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>
#include <math.h>

#ifdef __clang__
#pragma clang fp contract(off)
#endif

/* Most tokens per tile (16 vector registers): prompt tiles take 4 (the K types both 8-row
 * halves of a group at once, the 32-value types one half at a time). */
#define NT 4
#ifndef KERN_AVX2_KT /* tokens per K-type prompt tile; -D for sweeps */
#define KERN_AVX2_KT 4
#endif
#define INLINE static inline __attribute__((always_inline))

bool kern_avx2_built(void)
{
    return true;
}

INLINE __m256i bcast32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

INLINE float ldf(const uint8_t *p)
{
    float v;
    memcpy(&v, p, 4);
    return v;
}

INLINE __m256 h8(const uint8_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* acc + maddubs(w, a) in 16-bit lanes. Written out: with the intrinsics GCC 12 reassociates a
 * sub-block's sums into a tree (integer adds may be reordered), computing every product first
 * and spilling them to the stack; the asm keeps the chain. */
INLINE __m256i maddubs_acc(__m256i acc, __m256i w, __m256i a)
{
    __m256i t;
    __asm__("vpmaddubsw %3, %2, %1\n\tvpaddw %1, %0, %0" : "+x"(acc), "=&x"(t) : "x"(w), "x"(a));
    return acc;
}

/* A 64-bit mask of high bits as 0x10 bytes for the 32 bytes of half h (bit 32h + i -> byte
 * i): hq holds the mask in every quadword (bcast64, one load serves both halves). */
INLINE __m256i bcast64(const uint8_t *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return _mm256_set1_epi64x(v);
}

INLINE __m256i bits16q(__m256i hq, int h)
{
    const __m256i shuf = h ? _mm256_setr_epi64x(0x0404040404040404LL, 0x0505050505050505LL,
                                                0x0606060606060606LL, 0x0707070707070707LL)
                           : _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL,
                                                0x0202020202020202LL, 0x0303030303030303LL);
    const __m256i v = _mm256_shuffle_epi8(hq, shuf);
    const __m256i bm = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bm), bm), _mm256_set1_epi8(0x10));
}

/* ---------------------------------------------------------------- activation quantizers */

/* The scalar reference's quantizers (kern_scalar.c) on 8 lanes, the same bits for finite
 * inputs, as the avx512 table's: maxima are exact in any order, x * (1/scale) is one rounded
 * product per value, vcvtps2dq rounds half to even as nearest_int does, the saturating packs
 * clamp as the reference does (|x * id| <= 127 here), the sums are integers; the per-block
 * float steps are the reference's scalar code. */

INLINE __m256 abs8(__m256 v)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

INLINE float hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

INLINE int32_t hsum8i(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* 32 int32 (four vectors, values in int8 range) -> 32 bytes in order at q. */
INLINE void store_q32(int8_t *q, __m256i q0, __m256i q1, __m256i q2, __m256i q3)
{
    const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
    _mm256_storeu_si256((__m256i *)q,
                        _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

INLINE void quant_a32_avx2(const float *x, int64_t k, void *act, int32_t offset)
{
    const kern_act_layout L = kern_act_a32(k);
    uint8_t *a = act;
    int8_t *qs = (int8_t *)(a + L.qs);
    for (int64_t b = 0; b < k / 32; b++) {
        __m256 v[4];
        for (int i = 0; i < 4; i++)
            v[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
        const float amax = hmax8(_mm256_max_ps(_mm256_max_ps(abs8(v[0]), abs8(v[1])),
                                               _mm256_max_ps(abs8(v[2]), abs8(v[3]))));
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        const __m256 idv = _mm256_set1_ps(id);
        const __m256i lo = _mm256_set1_epi32(-128), hi = _mm256_set1_epi32(127);
        __m256i q[4];
        for (int i = 0; i < 4; i++) {
            const __m256i r = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], idv));
            q[i] = _mm256_min_epi32(hi, _mm256_max_epi32(lo, r));
        }
        store_q32(qs + 32 * b, q[0], q[1], q[2], q[3]);
        const int32_t sum =
            hsum8i(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
        kern_a32_block_end(a, L, b, amax, sum, offset);
    }
}

/* kern_quant_a256: max is the signed value of largest magnitude, the first one on ties. */
static void quant_a256_avx2(const float *x, int64_t k, void *act)
{
    const kern_act_layout L = kern_act_a256(k);
    uint8_t *a = act;
    int8_t *qs = (int8_t *)(a + L.qs);
    for (int64_t b = 0; b < k / 256; b++) {
        const float *xb = x + 256 * b;
        int8_t *q = qs + 256 * b;
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < 32; i++)
            m = _mm256_max_ps(m, abs8(_mm256_loadu_ps(xb + 8 * i)));
        const float amax = hmax8(m);
        int32_t s16[16];
        float d = 0.0f;
        if (amax == 0.0f) {
            memset(q, 0, 256);
            memset(s16, 0, sizeof(s16));
        } else {
            float max = 0.0f;
            const __m256 av = _mm256_set1_ps(amax);
            for (int i = 0; i < 32; i++) {
                const int eq = _mm256_movemask_ps(
                    _mm256_cmp_ps(abs8(_mm256_loadu_ps(xb + 8 * i)), av, _CMP_EQ_OQ));
                if (eq) {
                    max = xb[8 * i + __builtin_ctz((unsigned)eq)];
                    break;
                }
            }
            const float iscale = -127.f / max;
            const __m256 is = _mm256_set1_ps(iscale);
            const __m256i hi = _mm256_set1_epi32(127);
            for (int g = 0; g < 8; g++) {
                __m256i qi[4];
                for (int i = 0; i < 4; i++) {
                    const __m256 xv = _mm256_loadu_ps(xb + 32 * g + 8 * i);
                    qi[i] = _mm256_min_epi32(hi, _mm256_cvtps_epi32(_mm256_mul_ps(is, xv)));
                }
                store_q32(q + 32 * g, qi[0], qi[1], qi[2], qi[3]);
                s16[2 * g] = hsum8i(_mm256_add_epi32(qi[0], qi[1]));
                s16[2 * g + 1] = hsum8i(_mm256_add_epi32(qi[2], qi[3]));
            }
            d = 1 / iscale;
        }
        kern_a256_block_end(a, L, b, d, s16);
    }
}

KERN_QUANTIZERS(quant_avx2, quant_a32_avx2, quant_a256_avx2)

/* ---------------------------------------------------------------- 32-value block types */

/* acc + the signed products of w and a (4 to a 32-bit lane): the sign trick, |w| precomputed
 * (aw), written out for the reason of maddubs_acc. */
INLINE __m256i dot_s_acc(__m256i acc, __m256i aw, __m256i w, __m256i a, __m256i one)
{
    __m256i t;
    __asm__("vpsignb %3, %4, %1\n\tvpmaddubsw %1, %2, %1\n\tvpmaddwd %5, %1, %1\n\t"
            "vpaddd %1, %0, %0"
            : "+x"(acc), "=&x"(t)
            : "x"(aw), "x"(w), "x"(a), "x"(one));
    return acc;
}

/* Block b of a 32-value type's group (B), half h, for ntk tokens: the integer sums, then the
 * reference's float steps onto acc_h[i]. pf: NULL, or a block of pfb bytes whose lines are
 * fetched one a step (16 steps of Q8_0, 8 of the others: enough for their 9 and 6 lines). */
INLINE void a32_block(ggml_type t, int ntk, const uint8_t *B, int64_t b, int h,
                      const uint8_t *a0, size_t as, kern_act_layout L, __m256 *acc_h,
                      const uint8_t *pf, size_t pfb)
{
    const bool has_m = t == GGML_TYPE_Q4_1 || t == GGML_TYPE_Q5_1;
    const bool has_h = t == GGML_TYPE_Q5_0 || t == GGML_TYPE_Q5_1;
    const size_t hoff = t == GGML_TYPE_Q5_0 ? 32 : 64;
    const size_t qoff = t == GGML_TYPE_Q8_0   ? 32
                        : t == GGML_TYPE_Q4_0 ? 32
                        : t == GGML_TYPE_Q4_1 ? 64
                        : t == GGML_TYPE_Q5_0 ? 96
                                              : 128;
    const __m256i m4 = _mm256_set1_epi8(0xF), x80 = _mm256_set1_epi8((char)0x80);
    const __m256i one = _mm256_set1_epi16(1);
    const uint8_t *aq = a0 + L.qs + 32 * (size_t)b;
    __m256i is[NT];
    for (int i = 0; i < ntk; i++)
        /* Q8_0 is summed signed here (no +128), so its init offset is not used */
        is[i] = t == GGML_TYPE_Q8_0 ? _mm256_setzero_si256()
                                    : bcast32(a0 + (size_t)i * as + L.init + 4 * (size_t)b);
    if (t == GGML_TYPE_Q8_0) {
#pragma GCC unroll 8
        for (int s = 0; s < 8; s++) {
            kern_prefetch_line(pf, pfb, 8 * h + s);
            const __m256i wv = _mm256_xor_si256(
                _mm256_loadu_si256((const __m256i *)(B + qoff + KERN_STEP * s + 32 * h)), x80);
            const __m256i aw = _mm256_sign_epi8(wv, wv);
            for (int i = 0; i < ntk; i++)
                is[i] = dot_s_acc(is[i], aw, wv, bcast32(aq + (size_t)i * as + 4 * s), one);
        }
    } else {
        /* 16-bit sums (as the K types'): values <= 15 (Q4) take all 8 products of a block
         * (8 x 2 x 15 x 127 = 30480), values <= 31 (Q5) the low nibbles' 4 and the high
         * nibbles' 4 apart */
        __m256i s16[NT][2];
#pragma GCC unroll 4
        for (int s = 0; s < 4; s++) {
            kern_prefetch_line(pf, pfb, 4 * h + s);
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(B + qoff + KERN_STEP * s + 32 * h));
            __m256i lo = _mm256_and_si256(raw, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            if (has_h) {
                lo = _mm256_or_si256(lo, bits16q(bcast64(B + hoff + 8 * s), h));
                hi = _mm256_or_si256(hi, bits16q(bcast64(B + hoff + 8 * (s + 4)), h));
            }
            for (int i = 0; i < ntk; i++) {
                const __m256i al = bcast32(aq + (size_t)i * as + 4 * s);
                const __m256i ah = bcast32(aq + (size_t)i * as + 4 * (s + 4));
                s16[i][0] = s == 0 ? _mm256_maddubs_epi16(lo, al) : maddubs_acc(s16[i][0], lo, al);
                if (has_h)
                    s16[i][1] = s == 0 ? _mm256_maddubs_epi16(hi, ah) : maddubs_acc(s16[i][1], hi, ah);
                else
                    s16[i][0] = maddubs_acc(s16[i][0], hi, ah);
            }
        }
        for (int i = 0; i < ntk; i++) {
            is[i] = _mm256_add_epi32(is[i], _mm256_madd_epi16(s16[i][0], one));
            if (has_h)
                is[i] = _mm256_add_epi32(is[i], _mm256_madd_epi16(s16[i][1], one));
        }
    }
    const __m256 dw = h8(B + KG32_D + 16 * h);
    for (int i = 0; i < ntk; i++) {
        const __m256 ad = _mm256_set1_ps(ldf(a0 + (size_t)i * as + L.d + 4 * (size_t)b));
        acc_h[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[i]), _mm256_mul_ps(dw, ad), acc_h[i]);
    }
    if (has_m) {
        const __m256 mw = h8(B + KG32_M + 16 * h);
        for (int i = 0; i < ntk; i++) {
            const __m256 sa = _mm256_set1_ps(ldf(a0 + (size_t)i * as + L.s + 4 * (size_t)b));
            acc_h[i] = _mm256_fmadd_ps(mw, sa, acc_h[i]);
        }
    }
}

/* A tile of a 32-value type: 16 rows x ntk tokens; up to 2 tokens both halves of each block
 * in turn (one pass over the group), fetching the block 8 KiB ahead a line a step as the K
 * types do (Zen 3, bench_kernels <type> 1 16384 10240, 1 thread from memory, best of 3: q5_0
 * 11.5 -> 12.6 GB/s, q8_0 11.8 -> 12.7, q4_0 13.3 -> 14.7; loco bench --threads 2 --tg 64,
 * 6-layer files, A/B medians: Q5_0 1.17x, Q4_0 1.06x, Q8_0/Q4_1/Q5_1 0.99-1.01x); more one
 * half at a time (registers). */
INLINE void tile_a32(ggml_type t, int ntk, const uint8_t *G, const uint8_t *pe, int64_t nb,
                     const uint8_t *a0, size_t as, kern_act_layout L, float *out, size_t os,
                     int64_t r, int64_t rows)
{
    const size_t bb = t == GGML_TYPE_Q8_0   ? KG_Q8_0_BYTES
                      : t == GGML_TYPE_Q4_0 ? KG_Q4_0_BYTES
                      : t == GGML_TYPE_Q4_1 ? KG_Q4_1_BYTES
                      : t == GGML_TYPE_Q5_0 ? KG_Q5_0_BYTES
                                            : KG_Q5_1_BYTES;
    __m256 acc[2][NT];
    for (int i = 0; i < ntk; i++)
        acc[0][i] = acc[1][i] = _mm256_setzero_ps();
    if (ntk <= 2) {
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *B = G + (size_t)b * bb;
            const uint8_t *pf = kern_ahead_block(B, bb, pe);
            for (int h = 0; h < 2; h++)
                a32_block(t, ntk, B, b, h, a0, as, L, acc[h], pf, bb);
        }
    } else {
        for (int h = 0; h < 2; h++)
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *B = G + (size_t)b * bb;
                if (h == 0)
                    kern_prefetch_ahead(B, bb, pe);
                a32_block(t, ntk, B, b, h, a0, as, L, acc[h], NULL, 0);
            }
    }
    for (int i = 0; i < ntk; i++) {
        float v[16];
        _mm256_storeu_ps(v, acc[0][i]);
        _mm256_storeu_ps(v + 8, acc[1][i]);
        kern_store_group(out + (size_t)i * os, v, r, rows);
    }
}

/* ---------------------------------------------------------------- K types */

/* The K types' products are summed in 16 bits before they are scaled: maddubs gives pairs
 * of products, |value x activation| <= 63 x 128, and a 16-bit lane holds up to 8 such pairs
 * of Q4_K (values <= 15: 8 x 2 x 15 x 128 = 30720), 4 of Q5_K (<= 31) and 2 of Q6_K (<= 63)
 * without overflow; one madd by the sub-block's scale (in both halves of each 32-bit lane)
 * then gives scale x sum in 32 bits. The same integers as summing in 32 bits and multiplying
 * after, with half the multiplies (one maddubs per 32 products instead of maddubs + madd). */

/* One step of the K types' 16-bit sums: s16[hh][i] (half h0 + hh, token i) += the products of
 * that half's values wv[hh] and token i's 4 activations at ap (tokens as bytes apart); first:
 * the sums start here. */
INLINE void chain_step(__m256i (*s16)[NT], const __m256i *wv, int nh, int ntk, const uint8_t *ap,
                       size_t as, bool first)
{
    for (int i = 0; i < ntk; i++) {
        const __m256i av = bcast32(ap + (size_t)i * as);
        for (int hh = 0; hh < nh; hh++)
            s16[hh][i] = first ? _mm256_maddubs_epi16(wv[hh], av)
                               : maddubs_acc(s16[hh][i], wv[hh], av);
    }
}

/* *isum += madd(s16, sc). in_memory: the sum stays in memory (asm), so that the 16-bit sums
 * keep the registers when a tile has more of them than fit. */
INLINE void isum_add(__m256i *isum, __m256i s16, __m256i sc, bool in_memory)
{
    if (in_memory) {
        __m256i t;
        __asm__("vpmaddwd %2, %3, %1\n\tvpaddd %0, %1, %1\n\tvmovdqu %1, %0"
                : "+m"(*isum), "=&x"(t)
                : "x"(sc), "x"(s16));
    } else {
        *isum = _mm256_add_epi32(*isum, _mm256_madd_epi16(s16, sc));
    }
}

/* Block b of a Q4_K/Q5_K group (B), halves h0..h0+nh-1 (rows 8h..8h+7), for ntk tokens: its
 * integer sums and then the float steps of the reference onto acc[h][i] (half h's accumulator
 * of token i). Both halves at once share each activation broadcast. pf: NULL, or a block whose
 * lines are fetched one a step (64 steps, at most 64 lines: KG_Q6_K_BYTES <= 4096). */
INLINE void k45_block(bool q5, int ntk, const uint8_t *B, int64_t b, int h0, int nh,
                      const uint8_t *a0, size_t as, kern_act_layout L, __m256 (*acc)[NT],
                      const uint8_t *pf)
{
    const size_t bb = q5 ? KG_Q5_K_BYTES : KG_Q4_K_BYTES;
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const uint8_t *aq = a0 + L.qs + 256 * (size_t)b;
    const int run = q5 ? 4 : 8; /* steps summed in 16 bits */
    __m256i isum[2][NT];
    for (int hh = 0; hh < nh; hh++)
        for (int i = 0; i < ntk; i++)
            isum[hh][i] = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
#pragma GCC unroll 2
        for (int half = 0; half < 2; half++) {
#pragma GCC unroll 2
            for (int s0 = 0; s0 < 8; s0 += run) {
                __m256i s16[2][NT] = {{_mm256_setzero_si256()}}; /* (all set by step s0) */
#pragma GCC unroll 8
                for (int s = s0; s < s0 + run; s++) {
                    kern_prefetch_line(pf, bb, 16 * c + 8 * half + s);
                    __m256i wv[2];
                    /* Q5_K: the high bits of the step's 64 values, read once for both halves */
                    const __m256i hq = q5 ? bcast64(B + KGK_QH + 16 * (8 * c + s) + 8 * half)
                                          : _mm256_setzero_si256();
                    for (int hh = 0; hh < nh; hh++) {
                        const int h = h0 + hh;
                        const __m256i raw = _mm256_loadu_si256(
                            (const __m256i *)(B + KGK_Q + KERN_STEP * (8 * c + s) + 32 * h));
                        wv[hh] = half ? _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4)
                                      : _mm256_and_si256(raw, m4);
                        if (q5)
                            wv[hh] = _mm256_or_si256(wv[hh], bits16q(hq, h));
                    }
                    chain_step(s16, wv, nh, ntk, aq + 64 * c + 32 * half + 4 * s, as, s == s0);
                }
                for (int hh = 0; hh < nh; hh++) {
                    /* the sub-block scale of each row in both 16-bit halves of its lane */
                    const __m128i s8 = _mm_loadl_epi64(
                        (const __m128i *)(B + KGK_SC + 16 * (2 * c + half) + 8 * (h0 + hh)));
                    const __m256i sc = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(s8, s8));
                    for (int i = 0; i < ntk; i++)
                        isum_add(&isum[hh][i], s16[hh][i], sc, nh * ntk > 4);
                }
            }
        }
    }
    for (int hh = 0; hh < nh; hh++) {
        const int h = h0 + hh;
        __m256i msum[NT];
        for (int i = 0; i < ntk; i++)
            msum[i] = _mm256_setzero_si256();
        for (int p = 0; p < 4; p++) {
            const __m256i mn = _mm256_cvtepu8_epi16(
                _mm_loadu_si128((const __m128i *)(B + KGK_MN + 32 * p + 16 * h)));
            for (int i = 0; i < ntk; i++)
                msum[i] = _mm256_add_epi32(
                    msum[i], _mm256_madd_epi16(mn, bcast32(a0 + (size_t)i * as + L.pairs +
                                                             4 * (size_t)(4 * b + p))));
        }
        const __m256 dv = h8(B + KGK_D + 16 * h), dmv = h8(B + KGK_DMIN + 16 * h);
        for (int i = 0; i < ntk; i++) {
            const __m256 ad = _mm256_set1_ps(ldf(a0 + (size_t)i * as + L.d + 4 * (size_t)b));
            acc[h][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[hh][i]), _mm256_mul_ps(dv, ad), acc[h][i]);
            acc[h][i] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum[i]), _mm256_mul_ps(dmv, ad), acc[h][i]);
        }
    }
}

/* Block b of a Q6_K group, halves h0..h0+nh-1, for ntk tokens (as k45_block). Values are 0..63
 * here; the reference's -32 comes in as -32 x sum over sub-blocks of scale x the activations'
 * sum, two sub-blocks a madd (scales and sums as 16-bit pairs). */
INLINE void q6_block(int ntk, const uint8_t *B, int64_t b, int h0, int nh, const uint8_t *a0,
                     size_t as, kern_act_layout L, __m256 (*acc)[NT], const uint8_t *pf)
{
    const __m256i m4 = _mm256_set1_epi8(0xF), m30 = _mm256_set1_epi8(0x30);
    const uint8_t *aq = a0 + L.qs + 256 * (size_t)b;
    __m256i isum[2][NT];
    for (int hh = 0; hh < nh; hh++)
        for (int i = 0; i < ntk; i++)
            isum[hh][i] = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
#pragma GCC unroll 2
        for (int half = 0; half < 2; half++) {
#pragma GCC unroll 2
            for (int q4 = 0; q4 < 2; q4++) {
                const int grp = 4 * c + 2 * half + q4, sh = 2 * (2 * half + q4);
#pragma GCC unroll 2
                for (int s0 = 0; s0 < 4; s0 += 2) {
                    __m256i s16[2][NT] = {{_mm256_setzero_si256()}}; /* (all set by step s0) */
#pragma GCC unroll 2
                    for (int s4 = s0; s4 < s0 + 2; s4++) {
                        const int s = 4 * q4 + s4;
                        kern_prefetch_line(pf, KG_Q6_K_BYTES, 16 * c + 8 * half + s);
                        __m256i wv[2];
                        for (int hh = 0; hh < nh; hh++) {
                            const int h = h0 + hh;
                            const __m256i raw = _mm256_loadu_si256(
                                (const __m256i *)(B + KG6_QL + KERN_STEP * (8 * c + s) + 32 * h));
                            const __m256i hr = _mm256_loadu_si256(
                                (const __m256i *)(B + KG6_QH + KERN_STEP * (4 * c + s4) + 32 * h));
                            const __m256i nib = half ? _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4)
                                                     : _mm256_and_si256(raw, m4);
                            const __m256i hv = sh <= 4 ? _mm256_and_si256(_mm256_slli_epi16(hr, 4 - sh), m30)
                                                       : _mm256_and_si256(_mm256_srli_epi16(hr, sh - 4), m30);
                            wv[hh] = _mm256_or_si256(nib, hv);
                        }
                        chain_step(s16, wv, nh, ntk, aq + 64 * c + 32 * half + 4 * s, as,
                                   s4 == s0);
                    }
                    for (int hh = 0; hh < nh; hh++) {
                        const __m128i s8 = _mm_loadl_epi64(
                            (const __m128i *)(B + KG6_SC + 16 * grp + 8 * (h0 + hh)));
                        const __m256i sc = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s8, s8));
                        for (int i = 0; i < ntk; i++)
                            isum_add(&isum[hh][i], s16[hh][i], sc, nh * ntk > 4);
                    }
                }
            }
        }
    }
    for (int hh = 0; hh < nh; hh++) {
        const int h = h0 + hh;
        /* the offset: scales of sub-blocks 2p, 2p + 1 as a 16-bit pair per row, times the pair
         * of the activations' sums (bsums, 16 values each) */
        __m256i off[NT];
        for (int i = 0; i < ntk; i++)
            off[i] = _mm256_setzero_si256();
        for (int p = 0; p < 8; p++) {
            const __m128i s0 = _mm_loadl_epi64((const __m128i *)(B + KG6_SC + 16 * (2 * p) + 8 * h));
            const __m128i s1 = _mm_loadl_epi64((const __m128i *)(B + KG6_SC + 16 * (2 * p + 1) + 8 * h));
            const __m256i sp = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s0, s1));
            for (int i = 0; i < ntk; i++)
                off[i] = _mm256_add_epi32(
                    off[i], _mm256_madd_epi16(sp, bcast32(a0 + (size_t)i * as + L.bsums +
                                                            2 * (size_t)(16 * b + 2 * p))));
        }
        const __m256 dv = h8(B + KG6_D + 16 * h);
        for (int i = 0; i < ntk; i++) {
            const __m256i is = _mm256_sub_epi32(isum[hh][i], _mm256_slli_epi32(off[i], 5));
            const __m256 ad = _mm256_set1_ps(ldf(a0 + (size_t)i * as + L.d + 4 * (size_t)b));
            acc[h][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_mul_ps(dv, ad), acc[h][i]);
        }
    }
}

/* A tile of the K types: 16 rows x ntk tokens. Up to KERN_AVX2_BOTH tokens (generation, and
 * prompts with the default tile) read the group's blocks once, both halves of each in turn,
 * and fetch the block KERN_PREFETCH_BYTES ahead a line a step over the work on this one: all
 * of its lines at the start of the block (kern_prefetch_ahead) left the core waiting on
 * memory as if computing and reading took turns. AMD EPYC Zen 3, AVX2, generation:
 * `bench_kernels <type> 1 16384 10240` (1 thread, weights from memory), best of 3
 * interleaved: Q6_K 9.8 -> 12.3 GB/s, Q4_K 11.4 -> 12.9; `loco bench --threads 2 --pp 16
 * --tg 64`, 6-layer files, medians of 3 A/B pairs: Q6_K 1.38x, Q5_K 1.18x, Q4_K 0.99x; the
 * 36-layer Q4_K_M file (--tg 32) 1.16x. More tokens run all blocks for one half, then for the
 * other, which leaves registers for more tokens' sums. */
#ifndef KERN_AVX2_BOTH /* K-type tiles of at most this many tokens run both halves at once */
#define KERN_AVX2_BOTH 4
#endif
#define K_TILE(NAME, BLOCK_CALL, BOTH_CALL, BYTES)                                              \
    INLINE void NAME(int ntk, const uint8_t *G, const uint8_t *pe, int64_t nb,                 \
                     const uint8_t *a0, size_t as, kern_act_layout L, float *out, size_t os,   \
                     int64_t r, int64_t rows, bool q5)                                         \
    {                                                                                          \
        LOCO_UNUSED(q5);                                                                       \
        const size_t bb = (BYTES);                                                             \
        __m256 acc[2][NT];                                                                     \
        for (int i = 0; i < ntk; i++)                                                          \
            acc[0][i] = acc[1][i] = _mm256_setzero_ps();                                       \
        if (ntk <= KERN_AVX2_BOTH) {                                                           \
            for (int64_t b = 0; b < nb; b++) {                                                 \
                const uint8_t *B = G + (size_t)b * bb;                                         \
                const uint8_t *pf = kern_ahead_block(B, bb, pe);                               \
                BOTH_CALL;                                                                     \
            }                                                                                  \
        } else {                                                                               \
            for (int h = 0; h < 2; h++)                                                        \
                for (int64_t b = 0; b < nb; b++) {                                             \
                    const uint8_t *B = G + (size_t)b * bb;                                     \
                    if (h == 0)                                                                \
                        kern_prefetch_ahead(B, bb, pe);                                        \
                    BLOCK_CALL;                                                                \
                }                                                                              \
        }                                                                                      \
        for (int t = 0; t < ntk; t++) {                                                        \
            float v[16];                                                                       \
            _mm256_storeu_ps(v, acc[0][t]);                                                    \
            _mm256_storeu_ps(v + 8, acc[1][t]);                                                \
            kern_store_group(out + (size_t)t * os, v, r, rows);                                \
        }                                                                                      \
    }
_Static_assert(KG_Q6_K_BYTES <= 64 * 64 && KG_Q5_K_BYTES <= 64 * 64 && KG_Q4_K_BYTES <= 64 * 64 &&
                   KG_Q8_0_BYTES <= 16 * 64 && KG_Q5_1_BYTES <= 8 * 64 &&
                   KG_Q5_0_BYTES <= 8 * 64 && KG_Q4_1_BYTES <= 8 * 64 && KG_Q4_0_BYTES <= 8 * 64,
               "a line a step");
K_TILE(tile_k45, k45_block(q5, ntk, B, b, h, 1, a0, as, L, acc, NULL),
       k45_block(q5, ntk, B, b, 0, 2, a0, as, L, acc, pf), q5 ? KG_Q5_K_BYTES : KG_Q4_K_BYTES)
K_TILE(tile_q6_K, q6_block(ntk, B, b, h, 1, a0, as, L, acc, NULL),
       q6_block(ntk, B, b, 0, 2, a0, as, L, acc, pf), KG_Q6_K_BYTES)

/* ---------------------------------------------------------------- drivers */

#define DEFINE_GEMM(NAME, LAYOUT, BLOCK, CALL, NTM)                                            \
    static void NAME(const kern_weight *w, const void *acts, size_t as, int64_t nt, float *out, \
                     size_t os, int64_t g0, int64_t g1)                                        \
    {                                                                                          \
        const kern_act_layout L = LAYOUT(w->k);                                                \
        const int64_t nb = w->k / BLOCK;                                                       \
        const uint8_t *pe = w->data + (size_t)g1 * w->group_bytes;                            \
        for (int64_t gb = g0; gb < g1; gb += 4) {                                              \
            const int64_t ge = gb + 4 < g1 ? gb + 4 : g1;                                      \
            for (int64_t t0 = 0; t0 < nt; t0 += NTM) {                                         \
                const int64_t n = nt - t0 < NTM ? nt - t0 : NTM;                               \
                const uint8_t *a0 = (const uint8_t *)acts + (size_t)t0 * as;                   \
                float *o = out + (size_t)t0 * os;                                              \
                for (int64_t g = gb; g < ge; g++) {                                            \
                    const uint8_t *G = w->data + (size_t)g * w->group_bytes;                   \
                    const int64_t r = g * KERN_GROUP;                                          \
                    if (NTM >= 4 && n == 4)                                                    \
                        CALL(4);                                                               \
                    else if (NTM >= 3 && n == 3)                                               \
                        CALL(3);                                                               \
                    else if (n == 2)                                                           \
                        CALL(2);                                                               \
                    else                                                                       \
                        CALL(1);                                                               \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

#define C_A32(T, N) tile_a32(T, N, G, pe, nb, a0, as, L, o, os, r, w->rows)
#define C_Q8_0(N) C_A32(GGML_TYPE_Q8_0, N)
#define C_Q4_0(N) C_A32(GGML_TYPE_Q4_0, N)
#define C_Q4_1(N) C_A32(GGML_TYPE_Q4_1, N)
#define C_Q5_0(N) C_A32(GGML_TYPE_Q5_0, N)
#define C_Q5_1(N) C_A32(GGML_TYPE_Q5_1, N)
#define C_Q4_K(N) tile_k45(N, G, pe, nb, a0, as, L, o, os, r, w->rows, false)
#define C_Q5_K(N) tile_k45(N, G, pe, nb, a0, as, L, o, os, r, w->rows, true)
#define C_Q6_K(N) tile_q6_K(N, G, pe, nb, a0, as, L, o, os, r, w->rows, false)
DEFINE_GEMM(gemm_q8_0, kern_act_a32, 32, C_Q8_0, 4)
DEFINE_GEMM(gemm_q4_0, kern_act_a32, 32, C_Q4_0, 4)
DEFINE_GEMM(gemm_q4_1, kern_act_a32, 32, C_Q4_1, 4)
DEFINE_GEMM(gemm_q5_0, kern_act_a32, 32, C_Q5_0, 4)
DEFINE_GEMM(gemm_q5_1, kern_act_a32, 32, C_Q5_1, 4)
DEFINE_GEMM(gemm_q4_K, kern_act_a256, 256, C_Q4_K, KERN_AVX2_KT)
DEFINE_GEMM(gemm_q5_K, kern_act_a256, 256, C_Q5_K, KERN_AVX2_KT)
DEFINE_GEMM(gemm_q6_K, kern_act_a256, 256, C_Q6_K, KERN_AVX2_KT)

/* ---------------------------------------------------------------- dense types */

/* The 16 lanes of the reference as two 8-lane accumulators (lo: lanes 0-7), reduced in the
 * reference's order: lanes i + 8 onto i, then the quarters, then (q0 + q2) + (q1 + q3). */
INLINE float reduce16(__m256 lo, __m256 hi)
{
    const __m256 u = _mm256_add_ps(hi, lo);
    const __m128 q = _mm_add_ps(_mm256_extractf128_ps(u, 1), _mm256_castps256_ps128(u));
    const __m128 p = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(p, _mm_movehdup_ps(p)));
}

INLINE __m256 load_w8(ggml_type t, const uint8_t *row, int64_t i)
{
    if (t == GGML_TYPE_F32)
        return _mm256_loadu_ps((const float *)(row + 4 * (size_t)i));
    const __m128i h = _mm_loadu_si128((const __m128i *)(row + 2 * (size_t)i));
    if (t == GGML_TYPE_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static float dense_w1(ggml_type t, const uint8_t *row, int64_t i)
{
    uint16_t h;
    if (t == GGML_TYPE_F32) {
        float f;
        memcpy(&f, row + 4 * (size_t)i, 4);
        return f;
    }
    memcpy(&h, row + 2 * (size_t)i, 2);
    return t == GGML_TYPE_F16 ? _cvtsh_ss(h) : bf16_to_f32(h);
}

/* The values from l on (fewer than 16) of one row onto its lanes (lo, hi), as the reference. */
INLINE void dense_tail(ggml_type t, const uint8_t *row, const float *a, int64_t l, int64_t k,
                       __m256 *lo, __m256 *hi)
{
    if (l >= k)
        return;
    float c[16];
    _mm256_storeu_ps(c, *lo);
    _mm256_storeu_ps(c + 8, *hi);
    for (int64_t i = l; i < k; i++)
        c[i - l] = fmaf(dense_w1(t, row, i), a[i], c[i - l]);
    *lo = _mm256_loadu_ps(c);
    *hi = _mm256_loadu_ps(c + 8);
}

/* The address fetched while a row's values l..l+15 are read: KERN_PREFETCH_BYTES ahead. */
INLINE const char *dense_ahead(ggml_type t, const uint8_t *row, int64_t l)
{
    return (const char *)row + (size_t)l * (t == GGML_TYPE_F32 ? 4 : 2) + KERN_PREFETCH_BYTES;
}

/* One row x one token, the reference's lane layout (value i in lane i % 16). */
INLINE float dense_dot(ggml_type t, const uint8_t *row, const float *a, int64_t k)
{
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int64_t l = 0;
    for (; l + 16 <= k; l += 16) {
        _mm_prefetch(dense_ahead(t, row, l), _MM_HINT_T0);
        lo = _mm256_fmadd_ps(load_w8(t, row, l), _mm256_loadu_ps(a + l), lo);
        hi = _mm256_fmadd_ps(load_w8(t, row, l + 8), _mm256_loadu_ps(a + l + 8), hi);
    }
    dense_tail(t, row, a, l, k, &lo, &hi);
    return reduce16(lo, hi);
}

/* The fetch address of two rows read side by side (r0 and r1 = r0 + rb; the next pair follows):
 * KERN_PREFETCH_BYTES ahead in r0's own sequence of rows (r0, r0 + 2 rb, ...), r1's is rb
 * further. The file's order (dense_ahead) would land past r0's end in r1, behind its reading,
 * and leave the start of every second row to the hardware prefetcher. */
typedef struct {
    const char *p; /* r0's fetch address */
    size_t rem;    /* its offset in its row */
    size_t rb;     /* bytes a row */
} pair_ahead;

INLINE pair_ahead pair_ahead_start(const uint8_t *r0, size_t rb)
{
    const size_t q = KERN_PREFETCH_BYTES / rb, rem = KERN_PREFETCH_BYTES % rb;
    return (pair_ahead){(const char *)r0 + 2 * q * rb + rem, rem, rb};
}

INLINE void pair_ahead_step(pair_ahead *f, size_t bytes)
{
    f->p += bytes;
    f->rem += bytes;
    if (f->rem >= f->rb) { /* into r0's next row: skip r1's */
        f->rem -= f->rb;
        f->p += f->rb;
    }
}

/* dense_dot of two rows side by side (the same steps for each, so the same bits): two memory
 * streams and four FMA chains instead of one stream and two chains, whose 4-cycle latency
 * capped one row at 16 values per 4 cycles (8 bytes a cycle of F16/BF16). AMD Zen 3,
 * bench_kernels <type> 1 8192 10240 (1 thread, from memory), best of 3: f16 12.8 -> 14.7
 * GB/s, bf16 12.3 -> 14.7; loco bench --threads 2 --tg 32, 6-layer files, A/B medians of 3:
 * F16 1.13x and 1.02x, BF16 1.03x, F32 1.02x (within the host's noise at 2 threads). */
INLINE void dense_dot2(ggml_type t, const uint8_t *r0, const uint8_t *r1, const float *a,
                       int64_t k, float *o0, float *o1)
{
    __m256 lo0 = _mm256_setzero_ps(), hi0 = _mm256_setzero_ps();
    __m256 lo1 = _mm256_setzero_ps(), hi1 = _mm256_setzero_ps();
    const size_t es = t == GGML_TYPE_F32 ? 4 : 2, rb = (size_t)r1 - (size_t)r0;
    pair_ahead f = pair_ahead_start(r0, rb);
    int64_t l = 0;
    for (; l + 16 <= k; l += 16) {
        _mm_prefetch(f.p, _MM_HINT_T0);
        _mm_prefetch(f.p + rb, _MM_HINT_T0);
        pair_ahead_step(&f, 16 * es);
        const __m256 al = _mm256_loadu_ps(a + l), ah = _mm256_loadu_ps(a + l + 8);
        lo0 = _mm256_fmadd_ps(load_w8(t, r0, l), al, lo0);
        hi0 = _mm256_fmadd_ps(load_w8(t, r0, l + 8), ah, hi0);
        lo1 = _mm256_fmadd_ps(load_w8(t, r1, l), al, lo1);
        hi1 = _mm256_fmadd_ps(load_w8(t, r1, l + 8), ah, hi1);
    }
    dense_tail(t, r0, a, l, k, &lo0, &hi0);
    dense_tail(t, r1, a, l, k, &lo1, &hi1);
    *o0 = reduce16(lo0, hi0);
    *o1 = reduce16(lo1, hi1);
}

INLINE void gemm_dense_t(ggml_type t, const kern_weight *w, const void *acts, size_t as,
                         int64_t nt, float *out, size_t os, int64_t g0, int64_t g1)
{
    const int64_t r0 = g0 * KERN_GROUP, r1 = g1 * KERN_GROUP < w->rows ? g1 * KERN_GROUP : w->rows;
    int64_t r = r0;
    if (nt == 1)
        for (; r + 2 <= r1; r += 2) {
            const uint8_t *row = w->data + (size_t)r * w->row_bytes;
            dense_dot2(t, row, row + w->row_bytes, (const float *)acts, w->k, out + r, out + r + 1);
        }
    for (; r < r1; r++) {
        const uint8_t *row = w->data + (size_t)r * w->row_bytes;
        for (int64_t tk = 0; tk < nt; tk++)
            out[(size_t)tk * os + (size_t)r] =
                dense_dot(t, row, (const float *)((const uint8_t *)acts + (size_t)tk * as), w->k);
    }
}

static void gemm_f32(const kern_weight *w, const void *acts, size_t as, int64_t nt, float *out,
                     size_t os, int64_t g0, int64_t g1)
{
    gemm_dense_t(GGML_TYPE_F32, w, acts, as, nt, out, os, g0, g1);
}

static void gemm_f16(const kern_weight *w, const void *acts, size_t as, int64_t nt, float *out,
                     size_t os, int64_t g0, int64_t g1)
{
    gemm_dense_t(GGML_TYPE_F16, w, acts, as, nt, out, os, g0, g1);
}

static void gemm_bf16(const kern_weight *w, const void *acts, size_t as, int64_t nt, float *out,
                      size_t os, int64_t g0, int64_t g1)
{
    gemm_dense_t(GGML_TYPE_BF16, w, acts, as, nt, out, os, g0, g1);
}

bool kern_avx2_fill(kern_table *kt)
{
    kt->name = "avx2";
    kt->gemm[GGML_TYPE_Q8_0] = gemm_q8_0;
    kt->gemm[GGML_TYPE_Q4_0] = gemm_q4_0;
    kt->gemm[GGML_TYPE_Q4_1] = gemm_q4_1;
    kt->gemm[GGML_TYPE_Q5_0] = gemm_q5_0;
    kt->gemm[GGML_TYPE_Q5_1] = gemm_q5_1;
    kt->gemm[GGML_TYPE_Q4_K] = gemm_q4_K;
    kt->gemm[GGML_TYPE_Q5_K] = gemm_q5_K;
    kt->gemm[GGML_TYPE_Q6_K] = gemm_q6_K;
    kt->gemm[GGML_TYPE_F32] = gemm_f32;
    kt->gemm[GGML_TYPE_F16] = gemm_f16;
    kt->gemm[GGML_TYPE_BF16] = gemm_bf16;
    quant_avx2_install(kt);
    return true;
}

#else /* not built for AVX2 */

bool kern_avx2_built(void)
{
    return false;
}

bool kern_avx2_fill(kern_table *kt)
{
    LOCO_UNUSED(kt);
    return false;
}

#endif
