/* kern_avx512.c: the fast kernels for AVX-512 F/BW/VL/DQ + VNNI (engine/kernels). This file
 * alone is compiled with those instructions enabled (CMakeLists.txt); kernels.c installs its
 * table only on CPUs that have them. Integer block sums use vpdpbusd (unsigned weight values
 * x signed activations, 16 rows x 4 values per instruction), each of NT tokens in its own
 * accumulator; every output then runs the scalar reference's float steps in its order, so the
 * results are the same bits (kern_scalar.c). */
#include "base/common.h"

#include "engine/kernels/kern_int.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && \
    defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512DQ__)

#include <immintrin.h>

#ifdef __clang__
#pragma clang fp contract(off)
#endif

#define NT 8 /* tokens per tile: 3 x 8 accumulators stay in the 32 vector registers */
#define INLINE static inline __attribute__((always_inline))

bool kern_avx512_built(void)
{
    return true;
}

/* acc + the products of a's unsigned and b's signed bytes, 4 to a lane: vpdpbusd written out.
 * GCC 12 copies accumulators to other registers around the intrinsic; in tile_k45 that cost
 * the Q4_K and Q5_K prompt kernels a sixth of their speed: 6-layer files, pp 256, A/B (3
 * pairs each): Q4_K 1.20x (1.18-1.24), Q5_K 1.16x (1.09-1.21) with this; the other types'
 * kernels unchanged by it (Q8_0 0.97x, Q6_K 1.02x, Q4_0/Q5_0/Q4_1 0.97-1.02x), and Q6_K
 * generation 0.93x, so they keep the intrinsic. */
INLINE __m512i dpbusd_asm(__m512i acc, __m512i a, __m512i b)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

INLINE __m512i bcast32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

INLINE float ldf(const uint8_t *p)
{
    float v;
    memcpy(&v, p, 4);
    return v;
}

INLINE __m512 h16(const uint8_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

INLINE void store_tile(float *out, size_t os, int ntk, const __m512 *acc, int64_t r, int64_t rows)
{
    for (int t = 0; t < ntk; t++) {
        if (rows - r >= KERN_GROUP) {
            _mm512_storeu_ps(out + (size_t)t * os + (size_t)r, acc[t]);
        } else {
            const __mmask16 m = (__mmask16)((1u << (rows - r)) - 1);
            _mm512_mask_storeu_ps(out + (size_t)t * os + (size_t)r, m, acc[t]);
        }
    }
}

/* ---------------------------------------------------------------- activation quantizers */

/* The scalar reference's quantizers (kern_scalar.c) on 16 lanes, the same bits for finite
 * inputs: maxima are exact in any order, x * (1/scale) is one rounded product per value and
 * vcvtps2dq rounds half to even as nearest_int does (|x * id| <= 127 here), the sums are
 * integers; the per-block float steps (d, fp16 rounding) are the reference's scalar code. */

INLINE __m512 abs16(__m512 v)
{
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7FFFFFFF)));
}

INLINE void quant_a32_avx512(const float *x, int64_t k, void *act, int32_t offset)
{
    const kern_act_layout L = kern_act_a32(k);
    uint8_t *a = act;
    int8_t *qs = (int8_t *)(a + L.qs);
    for (int64_t b = 0; b < k / 32; b++) {
        const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(abs16(v0), abs16(v1)));
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        const __m512 idv = _mm512_set1_ps(id);
        const __m512i lo = _mm512_set1_epi32(-128), hi = _mm512_set1_epi32(127);
        const __m512i q0 = _mm512_min_epi32(
            hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(_mm512_mul_ps(v0, idv))));
        const __m512i q1 = _mm512_min_epi32(
            hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(_mm512_mul_ps(v1, idv))));
        _mm_storeu_si128((__m128i *)(qs + 32 * b), _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(qs + 32 * b + 16), _mm512_cvtsepi32_epi8(q1));
        const int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        kern_a32_block_end(a, L, b, amax, sum, offset);
    }
}

/* kern_quant_a256: max is the signed value of largest magnitude, the first one on ties. */
static void quant_a256_avx512(const float *x, int64_t k, void *act)
{
    const kern_act_layout L = kern_act_a256(k);
    uint8_t *a = act;
    int8_t *qs = (int8_t *)(a + L.qs);
    for (int64_t b = 0; b < k / 256; b++) {
        const float *xb = x + 256 * b;
        int8_t *q = qs + 256 * b;
        __m512 m = _mm512_setzero_ps();
        for (int i = 0; i < 16; i++)
            m = _mm512_max_ps(m, abs16(_mm512_loadu_ps(xb + 16 * i)));
        const float amax = _mm512_reduce_max_ps(m);
        int32_t s16[16];
        float d = 0.0f;
        if (amax == 0.0f) {
            memset(q, 0, 256);
            memset(s16, 0, sizeof(s16));
        } else {
            float max = 0.0f;
            const __m512 av = _mm512_set1_ps(amax);
            for (int i = 0; i < 16; i++) {
                const __mmask16 eq =
                    _mm512_cmp_ps_mask(abs16(_mm512_loadu_ps(xb + 16 * i)), av, _CMP_EQ_OQ);
                if (eq) {
                    max = xb[16 * i + __builtin_ctz(eq)];
                    break;
                }
            }
            const float iscale = -127.f / max;
            const __m512 is = _mm512_set1_ps(iscale);
            const __m512i hi = _mm512_set1_epi32(127);
            for (int g = 0; g < 16; g++) {
                const __m512i qi = _mm512_min_epi32(
                    hi, _mm512_cvtps_epi32(_mm512_mul_ps(is, _mm512_loadu_ps(xb + 16 * g))));
                _mm_storeu_si128((__m128i *)(q + 16 * g), _mm512_cvtsepi32_epi8(qi));
                s16[g] = _mm512_reduce_add_epi32(qi);
            }
            d = 1 / iscale;
        }
        kern_a256_block_end(a, L, b, d, s16);
    }
}

KERN_QUANTIZERS(quant_avx512, quant_a32_avx512, quant_a256_avx512)

/* ---------------------------------------------------------------- 32-value block types */

#ifndef KERN_GEN_GROUPS /* -DKERN_GEN_GROUPS=N for sweeps */
#define KERN_GEN_GROUPS 4
#endif
_Static_assert(KERN_GEN_GROUPS >= 1 && KERN_GEN_GROUPS <= NT, "KERN_GEN_GROUPS: 1 to NT");

/* ng groups (16 rows each, at G, G + gbytes, ...) x ntk tokens over every block, ntk or ng
 * being 1: acc = fma(isum, d_w * d_a, acc) per block, isum starting from the activation's
 * init (the type's offset) plus the vpdpbusd sums of 8 steps; the 4-bit types sum their low
 * and high nibbles in two chains of 4 (one chain of 8 before; generation of the 6-layer
 * files, A/B pairs: Q5_0 1.11x (1.07-1.13) and 1.03x (1.03-1.13), Q4_1 1.13x (1.07-1.30), Q4_0
 * and Q5_1 unchanged). Generation (one token) reads KERN_GEN_GROUPS groups side by side
 * (see the drivers). t, ntk and ng are compile-time constants in every instantiation. */
INLINE void tile_a32(ggml_type t, int ntk, int ng, const uint8_t *G, size_t gbytes,
                     const uint8_t *pe, int64_t nb, const uint8_t *a0, size_t as,
                     kern_act_layout L, float *out, size_t os, int64_t r, int64_t rows)
{
    const size_t bb = t == GGML_TYPE_Q8_0   ? KG_Q8_0_BYTES
                      : t == GGML_TYPE_Q4_0 ? KG_Q4_0_BYTES
                      : t == GGML_TYPE_Q4_1 ? KG_Q4_1_BYTES
                      : t == GGML_TYPE_Q5_0 ? KG_Q5_0_BYTES
                                            : KG_Q5_1_BYTES;
    const bool has_m = t == GGML_TYPE_Q4_1 || t == GGML_TYPE_Q5_1;
    const bool has_h = t == GGML_TYPE_Q5_0 || t == GGML_TYPE_Q5_1;
    const size_t hoff = t == GGML_TYPE_Q5_0 ? 32 : 64;
    const size_t qoff = t == GGML_TYPE_Q8_0   ? 32
                        : t == GGML_TYPE_Q4_0 ? 32
                        : t == GGML_TYPE_Q4_1 ? 64
                        : t == GGML_TYPE_Q5_0 ? 96
                                              : 128;
    const int n = ntk * ng; /* accumulators: token i, group g at i * ng + g */
    const __m512i m4 = _mm512_set1_epi8(0xF), b4 = _mm512_set1_epi8(0x10);
    __m512 acc[NT];
    for (int j = 0; j < n; j++)
        acc[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *B[KERN_GEN_GROUPS];
        for (int g = 0; g < ng; g++) {
            B[g] = G + (size_t)g * gbytes + (size_t)b * bb;
            kern_prefetch_to(B[g], bb, pe,
                             ng > 1  ? KERN_PREFETCH_BYTES_GEN32
                             : has_h ? KERN_PREFETCH_BYTES_Q5
                                     : KERN_PREFETCH_BYTES,
                             t == GGML_TYPE_Q8_0);
        }
        __m512i is[NT], ih[NT];
        for (int i = 0; i < ntk; i++) {
            const __m512i init = bcast32(a0 + (size_t)i * as + L.init + 4 * (size_t)b);
            for (int g = 0; g < ng; g++) {
                is[i * ng + g] = init;
                ih[i * ng + g] = _mm512_setzero_si512();
            }
        }
        const uint8_t *aq = a0 + L.qs + 32 * (size_t)b;
        if (t == GGML_TYPE_Q8_0) {
            for (int s = 0; s < 8; s++) {
                __m512i wv[KERN_GEN_GROUPS];
                for (int g = 0; g < ng; g++)
                    wv[g] = _mm512_loadu_si512(B[g] + qoff + KERN_STEP * s);
                for (int i = 0; i < ntk; i++) {
                    const __m512i av = bcast32(aq + (size_t)i * as + 4 * s);
                    for (int g = 0; g < ng; g++)
                        is[i * ng + g] = _mm512_dpbusd_epi32(is[i * ng + g], wv[g], av);
                }
            }
        } else {
            for (int s = 0; s < 4; s++) {
                __m512i lo[KERN_GEN_GROUPS], hi[KERN_GEN_GROUPS];
                for (int g = 0; g < ng; g++) {
                    const __m512i raw = _mm512_loadu_si512(B[g] + qoff + KERN_STEP * s);
                    lo[g] = _mm512_and_si512(raw, m4);
                    hi[g] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
                    if (has_h) {
                        uint64_t h0, h1;
                        memcpy(&h0, B[g] + hoff + 8 * s, 8);
                        memcpy(&h1, B[g] + hoff + 8 * (s + 4), 8);
                        lo[g] = _mm512_or_si512(lo[g], _mm512_maskz_mov_epi8(h0, b4));
                        hi[g] = _mm512_or_si512(hi[g], _mm512_maskz_mov_epi8(h1, b4));
                    }
                }
                for (int i = 0; i < ntk; i++) {
                    const __m512i al = bcast32(aq + (size_t)i * as + 4 * s);
                    const __m512i ah = bcast32(aq + (size_t)i * as + 4 * (s + 4));
                    for (int g = 0; g < ng; g++) {
                        is[i * ng + g] = _mm512_dpbusd_epi32(is[i * ng + g], lo[g], al);
                        ih[i * ng + g] = _mm512_dpbusd_epi32(ih[i * ng + g], hi[g], ah);
                    }
                }
            }
            for (int j = 0; j < n; j++)
                is[j] = _mm512_add_epi32(is[j], ih[j]);
        }
        __m512 dw[KERN_GEN_GROUPS];
        for (int g = 0; g < ng; g++)
            dw[g] = h16(B[g] + KG32_D);
        for (int i = 0; i < ntk; i++) {
            const __m512 ad = _mm512_set1_ps(ldf(a0 + (size_t)i * as + L.d + 4 * (size_t)b));
            for (int g = 0; g < ng; g++)
                acc[i * ng + g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[i * ng + g]),
                                                  _mm512_mul_ps(dw[g], ad), acc[i * ng + g]);
        }
        if (has_m) {
            __m512 mw[KERN_GEN_GROUPS];
            for (int g = 0; g < ng; g++)
                mw[g] = h16(B[g] + KG32_M);
            for (int i = 0; i < ntk; i++) {
                const __m512 sa = _mm512_set1_ps(ldf(a0 + (size_t)i * as + L.s + 4 * (size_t)b));
                for (int g = 0; g < ng; g++)
                    acc[i * ng + g] = _mm512_fmadd_ps(mw[g], sa, acc[i * ng + g]);
            }
        }
    }
    for (int i = 0; i < ntk; i++)
        for (int g = 0; g < ng; g++)
            store_tile(out + (size_t)i * os, 0, 1, &acc[i * ng + g], r + KERN_GROUP * g, rows);
}

/* ---------------------------------------------------------------- K types */

/* Q4_K / Q5_K: per super-block, per sub-block j: sb = vpdpbusd over 8 steps, isum += sb * sc_j
 * (vpmulld, exact); the mins term by vpmaddwd of (m_2p, m_2p+1) pairs with the activation's
 * 32-value sums; then the two fmas of the reference. */
INLINE void tile_k45(bool q5, int ntk, const uint8_t *G, const uint8_t *pe, int64_t nb,
                     const uint8_t *a0, size_t as, kern_act_layout L, float *out, size_t os,
                     int64_t r, int64_t rows)
{
    const size_t bb = q5 ? KG_Q5_K_BYTES : KG_Q4_K_BYTES;
    const __m512i m4 = _mm512_set1_epi8(0xF), b4 = _mm512_set1_epi8(0x10);
    __m512 acc[NT];
    for (int i = 0; i < ntk; i++)
        acc[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *B = G + (size_t)b * bb;
        kern_prefetch_ahead(B, bb, pe);
        const uint8_t *aq = a0 + L.qs + 256 * (size_t)b;
        __m512i isum[NT];
        for (int i = 0; i < ntk; i++)
            isum[i] = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            for (int half = 0; half < 2; half++) {
                __m512i sb[NT];
                for (int i = 0; i < ntk; i++)
                    sb[i] = _mm512_setzero_si512();
                for (int s = 0; s < 8; s++) {
                    const __m512i raw = _mm512_loadu_si512(B + KGK_Q + KERN_STEP * (8 * c + s));
                    __m512i wv = half ? _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4)
                                      : _mm512_and_si512(raw, m4);
                    if (q5) {
                        uint64_t h;
                        memcpy(&h, B + KGK_QH + 16 * (8 * c + s) + 8 * half, 8);
                        wv = _mm512_or_si512(wv, _mm512_maskz_mov_epi8(h, b4));
                    }
                    const uint8_t *ap = aq + 64 * c + 32 * half + 4 * s;
                    for (int i = 0; i < ntk; i++)
                        sb[i] = dpbusd_asm(sb[i], wv, bcast32(ap + (size_t)i * as));
                }
                const __m512i sc = _mm512_cvtepu8_epi32(
                    _mm_loadu_si128((const __m128i *)(B + KGK_SC + 16 * (2 * c + half))));
                for (int i = 0; i < ntk; i++)
                    isum[i] = _mm512_add_epi32(isum[i], _mm512_mullo_epi32(sb[i], sc));
            }
        }
        __m512i msum[NT];
        for (int i = 0; i < ntk; i++)
            msum[i] = _mm512_setzero_si512();
        for (int p = 0; p < 4; p++) {
            const __m512i mn = _mm512_cvtepu8_epi16(
                _mm256_loadu_si256((const __m256i *)(B + KGK_MN + 32 * p)));
            for (int i = 0; i < ntk; i++)
                msum[i] = _mm512_add_epi32(
                    msum[i], _mm512_madd_epi16(mn, bcast32(a0 + (size_t)i * as + L.pairs +
                                                             4 * (size_t)(4 * b + p))));
        }
        const __m512 dv = h16(B + KGK_D), dmv = h16(B + KGK_DMIN);
        for (int i = 0; i < ntk; i++) {
            const __m512 ad = _mm512_set1_ps(ldf(a0 + (size_t)i * as + L.d + 4 * (size_t)b));
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_mul_ps(dv, ad), acc[i]);
            acc[i] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum[i]), _mm512_mul_ps(dmv, ad), acc[i]);
        }
    }
    store_tile(out, os, ntk, acc, r, rows);
}

/* Q6_K: per 16-value group, sb starts at -32 * bsum (the activation's q6off), gets 4 steps of
 * vpdpbusd with the 6-bit values, then isum += sb * sc_g. */
INLINE void tile_q6_K(int ntk, const uint8_t *G, const uint8_t *pe, int64_t nb, const uint8_t *a0,
                      size_t as, kern_act_layout L, float *out, size_t os, int64_t r, int64_t rows)
{
    const __m512i m4 = _mm512_set1_epi8(0xF), m30 = _mm512_set1_epi8(0x30);
    __m512 acc[NT];
    for (int i = 0; i < ntk; i++)
        acc[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *B = G + (size_t)b * KG_Q6_K_BYTES;
        kern_prefetch_ahead(B, KG_Q6_K_BYTES, pe);
        const uint8_t *aq = a0 + L.qs + 256 * (size_t)b;
        __m512i isum[NT];
        for (int i = 0; i < ntk; i++)
            isum[i] = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            for (int half = 0; half < 2; half++) {
                for (int q4 = 0; q4 < 2; q4++) {
                    const int grp = 4 * c + 2 * half + q4;
                    const int sh = 2 * (2 * half + q4); /* bits of the 2 high bits in qh */
                    __m512i sb[NT];
                    for (int i = 0; i < ntk; i++)
                        sb[i] = bcast32(a0 + (size_t)i * as + L.q6off + 4 * (size_t)(16 * b + grp));
                    for (int s4 = 0; s4 < 4; s4++) {
                        const int s = 4 * q4 + s4;
                        const __m512i raw = _mm512_loadu_si512(B + KG6_QL + KERN_STEP * (8 * c + s));
                        const __m512i hr = _mm512_loadu_si512(B + KG6_QH + KERN_STEP * (4 * c + s4));
                        const __m512i nib = half ? _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4)
                                                 : _mm512_and_si512(raw, m4);
                        __m512i h;
                        if (sh <= 4)
                            h = _mm512_and_si512(_mm512_slli_epi16(hr, 4 - sh), m30);
                        else
                            h = _mm512_and_si512(_mm512_srli_epi16(hr, sh - 4), m30);
                        const __m512i wv = _mm512_or_si512(nib, h);
                        const uint8_t *ap = aq + 64 * c + 32 * half + 4 * s;
                        for (int i = 0; i < ntk; i++)
                            sb[i] = _mm512_dpbusd_epi32(sb[i], wv, bcast32(ap + (size_t)i * as));
                    }
                    const __m512i sc = _mm512_cvtepi8_epi32(
                        _mm_loadu_si128((const __m128i *)(B + KG6_SC + 16 * grp)));
                    for (int i = 0; i < ntk; i++)
                        isum[i] = _mm512_add_epi32(isum[i], _mm512_mullo_epi32(sb[i], sc));
                }
            }
        }
        const __m512 dv = h16(B + KG6_D);
        for (int i = 0; i < ntk; i++) {
            const __m512 ad = _mm512_set1_ps(ldf(a0 + (size_t)i * as + L.d + 4 * (size_t)b));
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_mul_ps(dv, ad), acc[i]);
        }
    }
    store_tile(out, os, ntk, acc, r, rows);
}

/* ---------------------------------------------------------------- drivers */

/* Groups per row block: the block's weights stay in L2 while every token tile passes. */
#define ROW_BLOCK_GROUPS 4

#define DEFINE_GEMM(NAME, CALL, GEN, GEN_NG)                                                   \
    static void NAME(const kern_weight *w, const void *acts, size_t as, int64_t nt, float *out, \
                     size_t os, int64_t g0, int64_t g1)                                        \
    {                                                                                          \
        const kern_act_layout L = LAYOUT(w->k);                                                \
        const int64_t nb = w->k / BLOCK;                                                       \
        const uint8_t *pe = w->data + (size_t)g1 * w->group_bytes;                            \
        if (nt == 1 && GEN_NG > 1) { /* generation: GEN_NG groups side by side */              \
            const uint8_t *a0 = acts;                                                          \
            float *o = out;                                                                    \
            int64_t g = g0;                                                                    \
            for (; g + GEN_NG <= g1; g += GEN_NG) {                                            \
                const uint8_t *G = w->data + (size_t)g * w->group_bytes;                       \
                const int64_t r = g * KERN_GROUP;                                              \
                GEN;                                                                           \
            }                                                                                  \
            for (; g < g1; g++) {                                                              \
                const uint8_t *G = w->data + (size_t)g * w->group_bytes;                       \
                const int64_t r = g * KERN_GROUP;                                              \
                CALL(1);                                                                       \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (int64_t gb = g0; gb < g1; gb += ROW_BLOCK_GROUPS) {                               \
            const int64_t ge = gb + ROW_BLOCK_GROUPS < g1 ? gb + ROW_BLOCK_GROUPS : g1;        \
            for (int64_t t0 = 0, n; t0 < nt; t0 += n) {                                        \
                n = nt - t0 >= NT ? NT : nt - t0 >= 4 ? 4 : nt - t0;                           \
                const uint8_t *a0 = (const uint8_t *)acts + (size_t)t0 * as;                   \
                float *o = out + (size_t)t0 * os;                                              \
                for (int64_t g = gb; g < ge; g++) {                                            \
                    const uint8_t *G = w->data + (size_t)g * w->group_bytes;                   \
                    const int64_t r = g * KERN_GROUP;                                          \
                    if (n == NT)                                                               \
                        CALL(NT);                                                              \
                    else if (n >= 4)                                                           \
                        CALL(4);                                                               \
                    else if (n == 3)                                                           \
                        CALL(3);                                                               \
                    else if (n == 2)                                                           \
                        CALL(2);                                                               \
                    else                                                                       \
                        CALL(1);                                                               \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

#define LAYOUT kern_act_a32
#define BLOCK 32
#define C_Q8_0(N) tile_a32(GGML_TYPE_Q8_0, N, 1, G, 0, pe, nb, a0, as, L, o, os, r, w->rows)
#define C_Q4_0(N) tile_a32(GGML_TYPE_Q4_0, N, 1, G, 0, pe, nb, a0, as, L, o, os, r, w->rows)
#define C_Q4_1(N) tile_a32(GGML_TYPE_Q4_1, N, 1, G, 0, pe, nb, a0, as, L, o, os, r, w->rows)
#define C_Q5_0(N) tile_a32(GGML_TYPE_Q5_0, N, 1, G, 0, pe, nb, a0, as, L, o, os, r, w->rows)
#define C_Q5_1(N) tile_a32(GGML_TYPE_Q5_1, N, 1, G, 0, pe, nb, a0, as, L, o, os, r, w->rows)
#define G32(T) \
    tile_a32(T, 1, KERN_GEN_GROUPS, G, w->group_bytes, pe, nb, a0, as, L, o, os, r, w->rows)
DEFINE_GEMM(gemm_q8_0, C_Q8_0, G32(GGML_TYPE_Q8_0), KERN_GEN_GROUPS)
DEFINE_GEMM(gemm_q4_0, C_Q4_0, G32(GGML_TYPE_Q4_0), KERN_GEN_GROUPS)
DEFINE_GEMM(gemm_q4_1, C_Q4_1, G32(GGML_TYPE_Q4_1), KERN_GEN_GROUPS)
DEFINE_GEMM(gemm_q5_0, C_Q5_0, G32(GGML_TYPE_Q5_0), KERN_GEN_GROUPS)
DEFINE_GEMM(gemm_q5_1, C_Q5_1, G32(GGML_TYPE_Q5_1), KERN_GEN_GROUPS)
#undef LAYOUT
#undef BLOCK
#define LAYOUT kern_act_a256
#define BLOCK 256
#define C_Q4_K(N) tile_k45(false, N, G, pe, nb, a0, as, L, o, os, r, w->rows)
#define C_Q5_K(N) tile_k45(true, N, G, pe, nb, a0, as, L, o, os, r, w->rows)
#define C_Q6_K(N) tile_q6_K(N, G, pe, nb, a0, as, L, o, os, r, w->rows)
/* The K types read one group at a time in generation too: 2 or 4 side by side made them
 * slower (6-layer files, A/B, 3 pairs each: Q4_K 0.70x / 0.59x, Q5_K 0.61x / 0.49x, Q6_K
 * 0.83x / 0.64x). */
DEFINE_GEMM(gemm_q4_K, C_Q4_K, ((void)G, (void)r), 1)
DEFINE_GEMM(gemm_q5_K, C_Q5_K, ((void)G, (void)r), 1)
DEFINE_GEMM(gemm_q6_K, C_Q6_K, ((void)G, (void)r), 1)
#undef LAYOUT
#undef BLOCK

/* ---------------------------------------------------------------- dense types */

/* reduce16 of kern_scalar.c: halves, quarters, then (q0 + q2) + (q1 + q3). */
INLINE float reduce16(__m512 v)
{
    const __m256 u = _mm256_add_ps(_mm512_extractf32x8_ps(v, 1), _mm512_castps512_ps256(v));
    const __m128 q = _mm_add_ps(_mm256_extractf128_ps(u, 1), _mm256_castps256_ps128(u));
    const __m128 p = _mm_add_ps(q, _mm_movehl_ps(q, q)); /* q0 + q2, q1 + q3 */
    return _mm_cvtss_f32(_mm_add_ss(p, _mm_movehdup_ps(p)));
}

INLINE __m512 load_w16(ggml_type t, const uint8_t *row, int64_t i, __mmask16 m)
{
    if (t == GGML_TYPE_F32)
        return _mm512_maskz_loadu_ps(m, row + 4 * (size_t)i);
    const __m256i h = _mm256_maskz_loadu_epi16(m, row + 2 * (size_t)i);
    if (t == GGML_TYPE_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

#define DR 4 /* rows per dense tile */
#define DT 4 /* tokens per dense tile */
#define RG1 1 /* rows per dense tile for one token (one stream: the prefetcher keeps up) */

/* R rows x T tokens: one 16-lane accumulator per output, value i into lane i % 16 (merge-
 * masked tail, so missing values leave lanes untouched, as in the scalar loop). */
INLINE void dense_tile(ggml_type t, int R, int T, const kern_weight *w, int64_t r,
                       const uint8_t *a0, size_t as, float *out, size_t os)
{
    __m512 acc[DR][DT];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++)
            acc[i][j] = _mm512_setzero_ps();
    const int64_t k = w->k;
    for (int64_t l = 0; l < k; l += 16) {
        const __mmask16 m = k - l >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k - l)) - 1);
        __m512 av[DT];
        for (int j = 0; j < T; j++)
            av[j] = _mm512_maskz_loadu_ps(m, (const float *)(a0 + (size_t)j * as) + l);
        for (int i = 0; i < R; i++) {
            const uint8_t *row = w->data + (size_t)(r + i) * w->row_bytes;
            /* several rows are separate streams: fetch ahead (the hardware prefetcher ramps
             * up for one) */
            const size_t at = (size_t)l * (t == GGML_TYPE_F32 ? 4 : 2) + KERN_PREFETCH_BYTES;
            _mm_prefetch((const char *)row + at, _MM_HINT_T0);
            const __m512 wv = load_w16(t, row, l, m);
            for (int j = 0; j < T; j++)
                acc[i][j] = _mm512_mask3_fmadd_ps(wv, av[j], acc[i][j], m);
        }
    }
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++)
            out[(size_t)j * os + (size_t)(r + i)] = reduce16(acc[i][j]);
}

INLINE void gemm_dense_t(ggml_type t, const kern_weight *w, const void *acts, size_t as,
                         int64_t nt, float *out, size_t os, int64_t g0, int64_t g1)
{
    const int64_t r0 = g0 * KERN_GROUP, r1 = g1 * KERN_GROUP < w->rows ? g1 * KERN_GROUP : w->rows;
    for (int64_t t0 = 0; t0 < nt; t0 += DT) {
        const int64_t n = nt - t0 < DT ? nt - t0 : DT;
        const uint8_t *a0 = (const uint8_t *)acts + (size_t)t0 * as;
        float *o = out + (size_t)t0 * os;
        int64_t r = r0;
        /* one token (generation): RG1 rows at a time, close to one memory stream */
        for (; n == 1 && r + RG1 <= r1; r += RG1)
            dense_tile(t, RG1, 1, w, r, a0, as, o, os);
        for (; r + DR <= r1; r += DR) {
            switch (n) {
            case 4: dense_tile(t, DR, 4, w, r, a0, as, o, os); break;
            case 3: dense_tile(t, DR, 3, w, r, a0, as, o, os); break;
            case 2: dense_tile(t, DR, 2, w, r, a0, as, o, os); break;
            default: dense_tile(t, DR, 1, w, r, a0, as, o, os); break;
            }
        }
        for (; r < r1; r++) {
            switch (n) {
            case 4: dense_tile(t, 1, 4, w, r, a0, as, o, os); break;
            case 3: dense_tile(t, 1, 3, w, r, a0, as, o, os); break;
            case 2: dense_tile(t, 1, 2, w, r, a0, as, o, os); break;
            default: dense_tile(t, 1, 1, w, r, a0, as, o, os); break;
            }
        }
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

bool kern_avx512_fill(kern_table *kt)
{
    kt->name = "avx512";
    quant_avx512_install(kt);
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
    return true;
}

#else /* not built for AVX-512 */

bool kern_avx512_built(void)
{
    return false;
}

bool kern_avx512_fill(kern_table *kt)
{
    LOCO_UNUSED(kt);
    return false;
}

#endif
