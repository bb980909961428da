/* kern_neon.c: the fast kernels for aarch64 NEON with the dot-product extension (sdot; Apple
 * M1 and later, Arm v8.2+ servers) (engine/kernels). This file alone is compiled with
 * +dotprod (CMakeLists.txt); kernels.c installs its table only on CPUs that have it. A group's
 * 16 rows are four 4-lane vectors; sdot multiplies 4 values of 4 rows by 4 activation values
 * at once (signed x signed: packed values are small non-negative numbers, Q8_0's are made
 * signed again). Each output runs the scalar reference's float steps in its order, so the
 * results are the same bits (kern_scalar.c). Tested under qemu-user in CI. */
#include "base/common.h"

#include "engine/kernels/kern_int.h"

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)

#include <arm_neon.h>
#include <math.h>

#define NT 2 /* tokens per tile */
#define INLINE static inline __attribute__((always_inline))

bool kern_neon_built(void)
{
    return true;
}

INLINE int8x16_t bcast32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

INLINE float ldf(const uint8_t *p)
{
    float v;
    memcpy(&v, p, 4);
    return v;
}

/* fp16 of rows 4q..4q+3 at p (16 halves) as floats. */
INLINE float32x4_t h4(const uint8_t *p, int q)
{
    uint16_t v[4];
    memcpy(v, p + 8 * q, 8);
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(v)));
}

/* Bits 16q..16q+15 of the 64-bit mask m as 0x10 bytes (bit i -> byte i). */
INLINE int8x16_t bits16(uint64_t m, int q)
{
    const uint16_t bits = (uint16_t)(m >> (16 * q));
    const uint8x16_t rep = vcombine_u8(vdup_n_u8((uint8_t)bits), vdup_n_u8((uint8_t)(bits >> 8)));
    static const uint8_t bitv[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    return vreinterpretq_s8_u8(vandq_u8(vtstq_u8(rep, vld1q_u8(bitv)), vdupq_n_u8(0x10)));
}

INLINE void store_tile(float *out, size_t os, int ntk, const float32x4_t (*acc)[4], int64_t r,
                       int64_t rows)
{
    for (int t = 0; t < ntk; t++) {
        float v[16];
        for (int q = 0; q < 4; q++)
            vst1q_f32(v + 4 * q, acc[t][q]);
        kern_store_group(out + (size_t)t * os, v, r, rows);
    }
}

/* ---------------------------------------------------------------- 32-value block types */

INLINE void tile_a32(ggml_type t, int ntk, const uint8_t *G, const uint8_t *pe, int64_t nb,
                     const uint8_t *a0, size_t as, kern_act_layout L, float *out, size_t os,
                     int64_t r, int64_t rows)
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
    const uint8x16_t m4 = vdupq_n_u8(0xF), x80 = vdupq_n_u8(0x80);
    float32x4_t acc[NT][4];
    for (int i = 0; i < ntk; i++)
        for (int q = 0; q < 4; q++)
            acc[i][q] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *B = G + (size_t)b * bb;
        kern_prefetch_ahead(B, bb, pe);
        const uint8_t *aq = a0 + L.qs + 32 * (size_t)b;
        int32x4_t is[NT][4];
        for (int i = 0; i < ntk; i++) {
            int32_t init = 0;
            if (t != GGML_TYPE_Q8_0) /* Q8_0 is summed signed here: no +128 offset to undo */
                memcpy(&init, a0 + (size_t)i * as + L.init + 4 * (size_t)b, 4);
            for (int q = 0; q < 4; q++)
                is[i][q] = vdupq_n_s32(init);
        }
        for (int q = 0; q < 4; q++) {
            if (t == GGML_TYPE_Q8_0) {
                for (int s = 0; s < 8; s++) {
                    const int8x16_t wv = vreinterpretq_s8_u8(
                        veorq_u8(vld1q_u8(B + qoff + KERN_STEP * s + 16 * q), x80));
                    for (int i = 0; i < ntk; i++)
                        is[i][q] = vdotq_s32(is[i][q], wv, bcast32(aq + (size_t)i * as + 4 * s));
                }
            } else {
                for (int s = 0; s < 4; s++) {
                    const uint8x16_t raw = vld1q_u8(B + qoff + KERN_STEP * s + 16 * q);
                    int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(raw, m4));
                    int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));
                    if (has_h) {
                        uint64_t h0, h1;
                        memcpy(&h0, B + hoff + 8 * s, 8);
                        memcpy(&h1, B + hoff + 8 * (s + 4), 8);
                        lo = vorrq_s8(lo, bits16(h0, q));
                        hi = vorrq_s8(hi, bits16(h1, q));
                    }
                    for (int i = 0; i < ntk; i++) {
                        is[i][q] = vdotq_s32(is[i][q], lo, bcast32(aq + (size_t)i * as + 4 * s));
                        is[i][q] = vdotq_s32(is[i][q], hi, bcast32(aq + (size_t)i * as + 4 * (s + 4)));
                    }
                }
            }
            const float32x4_t dw = h4(B + KG32_D, q);
            for (int i = 0; i < ntk; i++) {
                const float ad = ldf(a0 + (size_t)i * as + L.d + 4 * (size_t)b);
                acc[i][q] = vfmaq_f32(acc[i][q], vcvtq_f32_s32(is[i][q]), vmulq_n_f32(dw, ad));
            }
            if (has_m) {
                const float32x4_t mw = h4(B + KG32_M, q);
                for (int i = 0; i < ntk; i++) {
                    const float sa = ldf(a0 + (size_t)i * as + L.s + 4 * (size_t)b);
                    acc[i][q] = vfmaq_f32(acc[i][q], mw, vdupq_n_f32(sa));
                }
            }
        }
    }
    store_tile(out, os, ntk, acc, r, rows);
}

/* ---------------------------------------------------------------- K types */

INLINE void tile_k45(bool q5, int ntk, const uint8_t *G, const uint8_t *pe, int64_t nb,
                     const uint8_t *a0, size_t as, kern_act_layout L, float *out, size_t os,
                     int64_t r, int64_t rows)
{
    const size_t bb = q5 ? KG_Q5_K_BYTES : KG_Q4_K_BYTES;
    const uint8x16_t m4 = vdupq_n_u8(0xF);
    float32x4_t acc[NT][4];
    for (int i = 0; i < ntk; i++)
        for (int q = 0; q < 4; q++)
            acc[i][q] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *B = G + (size_t)b * bb;
        kern_prefetch_ahead(B, bb, pe);
        const uint8_t *aq = a0 + L.qs + 256 * (size_t)b;
        for (int q = 0; q < 4; q++) {
            int32x4_t isum[NT], msum[NT];
            for (int i = 0; i < ntk; i++)
                isum[i] = msum[i] = vdupq_n_s32(0);
            for (int c = 0; c < 4; c++) {
                for (int half = 0; half < 2; half++) {
                    int32x4_t sb[NT];
                    for (int i = 0; i < ntk; i++)
                        sb[i] = vdupq_n_s32(0);
                    for (int s = 0; s < 8; s++) {
                        const uint8x16_t raw = vld1q_u8(B + KGK_Q + KERN_STEP * (8 * c + s) + 16 * q);
                        int8x16_t wv = vreinterpretq_s8_u8(half ? vshrq_n_u8(raw, 4) : vandq_u8(raw, m4));
                        if (q5) {
                            uint64_t hb;
                            memcpy(&hb, B + KGK_QH + 16 * (8 * c + s) + 8 * half, 8);
                            wv = vorrq_s8(wv, bits16(hb, q));
                        }
                        const uint8_t *ap = aq + 64 * c + 32 * half + 4 * s;
                        for (int i = 0; i < ntk; i++)
                            sb[i] = vdotq_s32(sb[i], wv, bcast32(ap + (size_t)i * as));
                    }
                    uint8_t scb[4];
                    memcpy(scb, B + KGK_SC + 16 * (2 * c + half) + 4 * q, 4);
                    const int32x4_t sc = {scb[0], scb[1], scb[2], scb[3]};
                    for (int i = 0; i < ntk; i++)
                        isum[i] = vmlaq_s32(isum[i], sb[i], sc);
                }
            }
            for (int p = 0; p < 4; p++) {
                const uint8_t *mp = B + KGK_MN + 32 * p + 8 * q; /* rows 4q..4q+3, pairs */
                const int32x4_t m0 = {mp[0], mp[2], mp[4], mp[6]}, m1 = {mp[1], mp[3], mp[5], mp[7]};
                for (int i = 0; i < ntk; i++) {
                    uint32_t pr;
                    memcpy(&pr, a0 + (size_t)i * as + L.pairs + 4 * (size_t)(4 * b + p), 4);
                    msum[i] = vmlaq_n_s32(msum[i], m0, (int16_t)(pr & 0xFFFF));
                    msum[i] = vmlaq_n_s32(msum[i], m1, (int16_t)(pr >> 16));
                }
            }
            const float32x4_t dv = h4(B + KGK_D, q), dmv = h4(B + KGK_DMIN, q);
            for (int i = 0; i < ntk; i++) {
                const float ad = ldf(a0 + (size_t)i * as + L.d + 4 * (size_t)b);
                acc[i][q] = vfmaq_f32(acc[i][q], vcvtq_f32_s32(isum[i]), vmulq_n_f32(dv, ad));
                acc[i][q] = vfmsq_f32(acc[i][q], vcvtq_f32_s32(msum[i]), vmulq_n_f32(dmv, ad));
            }
        }
    }
    store_tile(out, os, ntk, acc, r, rows);
}

INLINE void tile_q6_K(int ntk, const uint8_t *G, const uint8_t *pe, int64_t nb, const uint8_t *a0,
                      size_t as, kern_act_layout L, float *out, size_t os, int64_t r, int64_t rows)
{
    const uint8x16_t m4 = vdupq_n_u8(0xF), m30 = vdupq_n_u8(0x30);
    float32x4_t acc[NT][4];
    for (int i = 0; i < ntk; i++)
        for (int q = 0; q < 4; q++)
            acc[i][q] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *B = G + (size_t)b * KG_Q6_K_BYTES;
        kern_prefetch_ahead(B, KG_Q6_K_BYTES, pe);
        const uint8_t *aq = a0 + L.qs + 256 * (size_t)b;
        for (int q = 0; q < 4; q++) {
            int32x4_t isum[NT];
            for (int i = 0; i < ntk; i++)
                isum[i] = vdupq_n_s32(0);
            for (int c = 0; c < 4; c++) {
                for (int half = 0; half < 2; half++) {
                    for (int q4 = 0; q4 < 2; q4++) {
                        const int grp = 4 * c + 2 * half + q4, sh = 2 * (2 * half + q4);
                        const int8x16_t shift = vdupq_n_s8((int8_t)(4 - sh)); /* negative: right */
                        int32x4_t sb[NT];
                        for (int i = 0; i < ntk; i++) {
                            int32_t off;
                            memcpy(&off, a0 + (size_t)i * as + L.q6off + 4 * (size_t)(16 * b + grp), 4);
                            sb[i] = vdupq_n_s32(off);
                        }
                        for (int s4 = 0; s4 < 4; s4++) {
                            const int s = 4 * q4 + s4;
                            const uint8x16_t raw = vld1q_u8(B + KG6_QL + KERN_STEP * (8 * c + s) + 16 * q);
                            const uint8x16_t hr = vld1q_u8(B + KG6_QH + KERN_STEP * (4 * c + s4) + 16 * q);
                            const uint8x16_t nib = half ? vshrq_n_u8(raw, 4) : vandq_u8(raw, m4);
                            const uint8x16_t hv = vandq_u8(vshlq_u8(hr, shift), m30);
                            const int8x16_t wv = vreinterpretq_s8_u8(vorrq_u8(nib, hv));
                            const uint8_t *ap = aq + 64 * c + 32 * half + 4 * s;
                            for (int i = 0; i < ntk; i++)
                                sb[i] = vdotq_s32(sb[i], wv, bcast32(ap + (size_t)i * as));
                        }
                        int8_t scb[4];
                        memcpy(scb, B + KG6_SC + 16 * grp + 4 * q, 4);
                        const int32x4_t sc = {scb[0], scb[1], scb[2], scb[3]};
                        for (int i = 0; i < ntk; i++)
                            isum[i] = vmlaq_s32(isum[i], sb[i], sc);
                    }
                }
            }
            const float32x4_t dv = h4(B + KG6_D, q);
            for (int i = 0; i < ntk; i++) {
                const float ad = ldf(a0 + (size_t)i * as + L.d + 4 * (size_t)b);
                acc[i][q] = vfmaq_f32(acc[i][q], vcvtq_f32_s32(isum[i]), vmulq_n_f32(dv, ad));
            }
        }
    }
    store_tile(out, os, ntk, acc, r, rows);
}

/* ---------------------------------------------------------------- drivers */

#define DEFINE_GEMM(NAME, LAYOUT, BLOCK, CALL)                                                 \
    static void NAME(const kern_weight *w, const void *acts, size_t as, int64_t nt, float *out, \
                     size_t os, int64_t g0, int64_t g1)                                        \
    {                                                                                          \
        const kern_act_layout L = LAYOUT(w->k);                                                \
        const int64_t nb = w->k / BLOCK;                                                       \
        const uint8_t *pe = w->data + (size_t)g1 * w->group_bytes;                            \
        for (int64_t gb = g0; gb < g1; gb += 4) {                                              \
            const int64_t ge = gb + 4 < g1 ? gb + 4 : g1;                                      \
            for (int64_t t0 = 0; t0 < nt; t0 += NT) {                                          \
                const int64_t n = nt - t0 < NT ? nt - t0 : NT;                                 \
                const uint8_t *a0 = (const uint8_t *)acts + (size_t)t0 * as;                   \
                float *o = out + (size_t)t0 * os;                                              \
                for (int64_t g = gb; g < ge; g++) {                                            \
                    const uint8_t *G = w->data + (size_t)g * w->group_bytes;                   \
                    const int64_t r = g * KERN_GROUP;                                          \
                    if (n == 2)                                                                \
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
#define C_Q4_K(N) tile_k45(false, N, G, pe, nb, a0, as, L, o, os, r, w->rows)
#define C_Q5_K(N) tile_k45(true, N, G, pe, nb, a0, as, L, o, os, r, w->rows)
#define C_Q6_K(N) tile_q6_K(N, G, pe, nb, a0, as, L, o, os, r, w->rows)
DEFINE_GEMM(gemm_q8_0, kern_act_a32, 32, C_Q8_0)
DEFINE_GEMM(gemm_q4_0, kern_act_a32, 32, C_Q4_0)
DEFINE_GEMM(gemm_q4_1, kern_act_a32, 32, C_Q4_1)
DEFINE_GEMM(gemm_q5_0, kern_act_a32, 32, C_Q5_0)
DEFINE_GEMM(gemm_q5_1, kern_act_a32, 32, C_Q5_1)
DEFINE_GEMM(gemm_q4_K, kern_act_a256, 256, C_Q4_K)
DEFINE_GEMM(gemm_q5_K, kern_act_a256, 256, C_Q5_K)
DEFINE_GEMM(gemm_q6_K, kern_act_a256, 256, C_Q6_K)

/* ---------------------------------------------------------------- dense types */

INLINE float32x4_t load_w4(ggml_type t, const uint8_t *row, int64_t i)
{
    if (t == GGML_TYPE_F32)
        return vld1q_f32((const float *)(row + 4 * (size_t)i));
    uint16_t h[4];
    memcpy(h, row + 2 * (size_t)i, 8);
    if (t == GGML_TYPE_F16)
        return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(h), 16));
}

static float dense_w1(ggml_type t, const uint8_t *row, int64_t i)
{
    if (t == GGML_TYPE_F32) {
        float f;
        memcpy(&f, row + 4 * (size_t)i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, row + 2 * (size_t)i, 2);
    return t == GGML_TYPE_F16 ? fp16_to_f32(h) : bf16_to_f32(h);
}

/* One row x one token: value i in lane i % 16 (four 4-lane vectors), then the reference's
 * reduction: lanes i + 8 onto i, the quarters, then (q0 + q2) + (q1 + q3). */
INLINE float dense_dot(ggml_type t, const uint8_t *row, const float *a, int64_t k)
{
    float32x4_t c[4];
    for (int q = 0; q < 4; q++)
        c[q] = vdupq_n_f32(0.0f);
    int64_t l = 0;
    for (; l + 16 <= k; l += 16)
        for (int q = 0; q < 4; q++)
            c[q] = vfmaq_f32(c[q], load_w4(t, row, l + 4 * q), vld1q_f32(a + l + 4 * q));
    float v[16];
    for (int q = 0; q < 4; q++)
        vst1q_f32(v + 4 * q, c[q]);
    for (int64_t i = l; i < k; i++)
        v[i - l] = fmaf(dense_w1(t, row, i), a[i], v[i - l]);
    float u[8], qq[4];
    for (int i = 0; i < 8; i++)
        u[i] = v[i + 8] + v[i];
    for (int i = 0; i < 4; i++)
        qq[i] = u[i + 4] + u[i];
    return (qq[0] + qq[2]) + (qq[1] + qq[3]);
}

INLINE void gemm_dense_t(ggml_type t, const kern_weight *w, const void *acts, size_t as,
                         int64_t nt, float *out, size_t os, int64_t g0, int64_t g1)
{
    const int64_t r0 = g0 * KERN_GROUP, r1 = g1 * KERN_GROUP < w->rows ? g1 * KERN_GROUP : w->rows;
    for (int64_t r = r0; r < r1; r++) {
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

bool kern_neon_fill(kern_table *kt)
{
    kt->name = "neon";
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

#else /* not built for NEON dotprod */

bool kern_neon_built(void)
{
    return false;
}

bool kern_neon_fill(kern_table *kt)
{
    LOCO_UNUSED(kt);
    return false;
}

#endif
