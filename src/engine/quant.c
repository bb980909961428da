/* quant.c: the scalar reference kernels (dequantize, quantize, activation quantizers, dot
 * products) written from ggml's reference functions (ggml-quants.c, ggml-cpu/quants.c), the
 * kernel table chosen once by CPU features, and the public quant_* entry points. */
#include "base/common.h"

#include <float.h>
#include <math.h>
#include <pthread.h>

#include "engine/quant.h"
#include "engine/quant_int.h"
#include "engine/quant_scalar.h"
#include "engine/quant_lowbit.h"

#define GROUP_MAX_EPS 1e-15f

/* No fused multiply-add behind our back: results must not depend on the compiler. */
#ifdef __clang__
#pragma clang fp contract(off)
#endif

/* ------------------------------------------------------------------ dequantize */

static void dequant_f32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void dequant_f16(const void *src, float *dst, int64_t n)
{
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = h2f(x[i]);
}

static void dequant_bf16(const void *src, float *dst, int64_t n)
{
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = bf16_to_f32(x[i]);
}

static void dequant_q8_0(const void *src, float *y, int64_t n)
{
    const block_q8_0 *x = src;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < QK8_0; j++)
            y[i * QK8_0 + j] = x[i].qs[j] * d;
    }
}

static void dequant_q4_0(const void *src, float *y, int64_t n)
{
    const block_q4_0 *x = src;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[i * QK4_0 + j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[i * QK4_0 + j + QK4_0 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequant_q4_1(const void *src, float *y, int64_t n)
{
    const block_q4_1 *x = src;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const float d = h2f(x[i].d);
        const float m = h2f(x[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[i * QK4_1 + j] = (x[i].qs[j] & 0x0F) * d + m;
            y[i * QK4_1 + j + QK4_1 / 2] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

static inline uint32_t load_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void dequant_q5_0(const void *src, float *y, int64_t n)
{
    const block_q5_0 *x = src;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const float d = h2f(x[i].d);
        const uint32_t qh = load_u32le(x[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + 16)) & 1) << 4;
            y[i * QK5_0 + j] = (((x[i].qs[j] & 0x0F) | h0) - 16) * d;
            y[i * QK5_0 + j + QK5_0 / 2] = (((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

static void dequant_q5_1(const void *src, float *y, int64_t n)
{
    const block_q5_1 *x = src;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const float d = h2f(x[i].d);
        const float m = h2f(x[i].m);
        const uint32_t qh = load_u32le(x[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + 16)) & 1) << 4;
            y[i * QK5_1 + j] = ((x[i].qs[j] & 0x0F) | h0) * d + m;
            y[i * QK5_1 + j + QK5_1 / 2] = ((x[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

static void dequant_q4_K(const void *src, float *y, int64_t n)
{
    const block_q4_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q = x[i].qs;
        const float d = h2f(x[i].d);
        const float dmin = h2f(x[i].dmin);
        for (int c = 0; c < QK_K / 64; c++) {
            uint8_t sc, m;
            quant_k4_scale_min(2 * c, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            quant_k4_scale_min(2 * c + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
        }
    }
}

static void dequant_q5_K(const void *src, float *y, int64_t n)
{
    const block_q5_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *ql = x[i].qs;
        const uint8_t *qh = x[i].qh;
        const float d = h2f(x[i].d);
        const float dmin = h2f(x[i].dmin);
        uint8_t u1 = 1, u2 = 2;
        for (int c = 0; c < QK_K / 64; c++) {
            uint8_t sc, m;
            quant_k4_scale_min(2 * c, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            quant_k4_scale_min(2 * c + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

/* Unpacks the 256 signed 6-bit values (q - 32) of a Q6_K block in value order. */
static void q6_K_values(const block_q6_K *b, int8_t *out)
{
    const uint8_t *ql = b->ql;
    const uint8_t *qh = b->qh;
    for (int h = 0; h < QK_K; h += 128) {
        for (int l = 0; l < 32; l++) {
            out[h + l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            out[h + l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            out[h + l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            out[h + l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
        ql += 64;
        qh += 32;
    }
}

static void dequant_q6_K(const void *src, float *y, int64_t n)
{
    const block_q6_K *x = src;
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d);
        q6_K_values(&x[i], q);
        for (int j = 0; j < QK_K; j++)
            y[i * QK_K + j] = d * x[i].scales[j / 16] * q[j];
    }
}

/* ------------------------------------------------------------------ weight quantizers */

static void quant_f32_row(const float *x, void *dst, int64_t n)
{
    memcpy(dst, x, (size_t)n * sizeof(float));
}

static void quant_f16_row(const float *x, void *dst, int64_t n)
{
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++)
        y[i] = f2h(x[i]);
}

static void quant_bf16_row(const float *x, void *dst, int64_t n)
{
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++)
        y[i] = bf16_from_f32(x[i]);
}

/* The value of largest magnitude (first one on ties), as ggml's symmetric quantizers pick it. */
static float signed_absmax(const float *x, int n, float *out_amax)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    *out_amax = amax;
    return max;
}

static void quant_q8_0_weights(const float *x, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < QK8_0; j++)
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void quant_q4_0_weights(const float *x, void *dst, int64_t n)
{
    block_q4_0 *y = dst;
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        float amax;
        const float max = signed_absmax(x, QK4_0, &amax);
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int q0 = imin(15, (int8_t)(x[j] * id + 8.5f));
            const int q1 = imin(15, (int8_t)(x[j + QK4_0 / 2] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void minmax(const float *x, int n, float *out_min, float *out_max)
{
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < min)
            min = x[j];
        if (x[j] > max)
            max = x[j];
    }
    *out_min = min;
    *out_max = max;
}

static void quant_q4_1_weights(const float *x, void *dst, int64_t n)
{
    block_q4_1 *y = dst;
    for (int64_t i = 0; i < n / QK4_1; i++, x += QK4_1) {
        float min, max;
        minmax(x, QK4_1, &min, &max);
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int q0 = imin(15, (int8_t)((x[j] - min) * id + 0.5f));
            const int q1 = imin(15, (int8_t)((x[j + QK4_1 / 2] - min) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void store_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void quant_q5_0_weights(const float *x, void *dst, int64_t n)
{
    block_q5_0 *y = dst;
    for (int64_t i = 0; i < n / QK5_0; i++, x += QK5_0) {
        float amax;
        const float max = signed_absmax(x, QK5_0, &amax);
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int q0 = imin(31, (int8_t)(x[j] * id + 16.5f));
            const int q1 = imin(31, (int8_t)(x[j + QK5_0 / 2] * id + 16.5f));
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)((q0 & 0x10) >> 4) << j;
            qh |= (uint32_t)((q1 & 0x10) >> 4) << (j + QK5_0 / 2);
        }
        store_u32le(y[i].qh, qh);
    }
}

static void quant_q5_1_weights(const float *x, void *dst, int64_t n)
{
    block_q5_1 *y = dst;
    for (int64_t i = 0; i < n / QK5_1; i++, x += QK5_1) {
        float min, max;
        minmax(x, QK5_1, &min, &max);
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int q0 = (uint8_t)((x[j] - min) * id + 0.5f);
            const int q1 = (uint8_t)((x[j + QK5_1 / 2] - min) * id + 0.5f);
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)((q0 & 0x10) >> 4) << j;
            qh |= (uint32_t)((q1 & 0x10) >> 4) << (j + QK5_1 / 2);
        }
        store_u32le(y[i].qh, qh);
    }
}

/* ggml's make_qkx2_quants: scale and min of an asymmetric n-value group quantized to
 * 0..nmax, searching nstep+1 candidate scales around nmax/(max-min) for the smallest
 * weighted squared error. L receives the levels, *out_min the (positive) min to subtract. */
static float make_qkx2(int n, int nmax, const float *x, const float *w, uint8_t *L,
                       float *out_min, uint8_t *Laux, float rmin, float rdelta, int nstep)
{
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *out_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        const float diff = scale * L[i] + min - x[i];
        best_error += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D <= 0)
            continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float cur_error = 0;
        for (int i = 0; i < n; i++) {
            const float diff = this_scale * Laux[i] + this_min - x[i];
            cur_error += w[i] * (diff * diff);
        }
        if (cur_error < best_error) {
            memcpy(L, Laux, (size_t)n);
            best_error = cur_error;
            scale = this_scale;
            min = this_min;
        }
    }
    *out_min = -min;
    return scale;
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per 32-value sub-block scale and min, packed
 * as 6-bit numbers of d and dmin, then the levels L[256] recomputed against the packed
 * scales (ggml's quantize_row_q4_K_ref / q5_K_ref). */
static void k4_scales_levels(const float *x, int nmax, float rmin, int nstep, uint16_t *out_d,
                             uint16_t *out_dmin, uint8_t *scales, uint8_t *L)
{
    float mins[QK_K / 32], sc[QK_K / 32], weights[32];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(x[32 * j + l]);
        sc[j] = make_qkx2(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f,
                          nstep);
        if (sc[j] > max_scale)
            max_scale = sc[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(scales, 0, K_SCALE_SIZE);
    for (int j = 0; j < QK_K / 32; j++) {
        /* ggml converts to uint8_t before capping at 63 */
        const uint8_t ls = (uint8_t)imin(63, (uint8_t)nearest_int(inv_scale * sc[j]));
        const uint8_t lm = (uint8_t)imin(63, (uint8_t)nearest_int(inv_min * mins[j]));
        if (j < 4) {
            scales[j] = ls;
            scales[j + 4] = lm;
        } else {
            scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *out_d = f2h(max_scale / 63.f);
    *out_dmin = f2h(max_min / 63.f);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t s, m;
        quant_k4_scale_min(j, scales, &s, &m);
        const float d = h2f(*out_d) * s;
        if (d == 0.0f)
            continue;
        const float dm = h2f(*out_dmin) * m;
        for (int ii = 0; ii < 32; ii++) {
            const int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, l));
        }
    }
}

static void quant_q4_K_weights(const float *x, void *dst, int64_t n)
{
    block_q4_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        k4_scales_levels(x, 15, -1.f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64, q += 32) {
            for (int l = 0; l < 32; l++)
                q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        }
    }
}

static void quant_q5_K_weights(const float *x, void *dst, int64_t n)
{
    block_q5_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        k4_scales_levels(x, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *qh = y[i].qh;
        uint8_t *ql = y[i].qs;
        memset(qh, 0, QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int c = 0; c < QK_K; c += 64, ql += 32) {
            for (int j = 0; j < 32; j++) {
                int l1 = L[c + j], l2 = L[c + j + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
        }
    }
}

static float qx_error_sums(int n, int nmax, const float *x, float iscale, float *out_suml2)
{
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    *out_suml2 = suml2;
    return sumlx;
}

static void qx_levels(int n, int nmax, const float *x, float iscale, int8_t *L)
{
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
}

/* ggml's make_qx_quants with rmse_type 1 (weights x^2): symmetric levels -nmax..nmax-1
 * (stored + nmax), trying 19 scales around nmax/max. Returns the scale. */
static float make_qx(int n, int nmax, const float *x, int8_t *L)
{
    float amax;
    const float max = signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float suml2;
    float sumlx = qx_error_sums(n, nmax, x, iscale, &suml2);
    qx_levels(n, nmax, x, iscale, L);
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = qx_error_sums(n, nmax, x, iscale, &suml2);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            qx_levels(n, nmax, x, iscale, L);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void quant_q6_K_weights(const float *x, void *dst, int64_t n)
{
    block_q6_K *y = dst;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            scales[ib] = make_qx(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        memset(&y[i], 0, sizeof(y[i]));
        if (max_abs_scale < GROUP_MAX_EPS)
            continue;
        const float iscale = -128.f / max_scale;
        y[i].d = f2h(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ib++)
            y[i].scales[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = h2f(y[i].d) * y[i].scales[j];
            if (d == 0.0f)
                continue;
            for (int ii = 0; ii < 16; ii++) {
                const int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(imax(-32, imin(31, l)) + 32);
            }
        }
        uint8_t *ql = y[i].ql;
        uint8_t *qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
                const int q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

/* ------------------------------------------------------------------ activation quantizers */

/* llama.cpp's x86 quantize_row_q8_0/q8_1 (the path its CPU backend runs on AVX machines):
 * d = amax/127, id = 127/amax, q = x*id rounded half to even, saturated to int8. */
static float q8_x86_block(const float *x, int8_t *qs, int *out_sum)
{
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) {
        const float a = fabsf(x[j]);
        amax = a > amax ? a : amax;
    }
    const float d = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        const int q = imax(-128, imin(127, nearest_int(x[j] * id)));
        qs[j] = (int8_t)q;
        sum += q;
    }
    *out_sum = sum;
    return d;
}

static void act_q8_0(const float *x, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sum;
        y[i].d = f2h(q8_x86_block(x + i * QK8_0, y[i].qs, &sum));
    }
}

static void act_q8_1(const float *x, void *dst, int64_t n)
{
    block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int sum;
        const float d = q8_x86_block(x + i * QK8_1, y[i].qs, &sum);
        y[i].d = f2h(d);
        y[i].s = f2h(d * (float)sum);
    }
}

/* ggml's quantize_row_q8_K_ref: iscale = -127/max where max is the signed value of largest
 * magnitude (first on ties), q = nearest_int(iscale*x) capped at 127, d = 1/iscale. */
static void act_q8_K(const float *x, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax;
        const float max = signed_absmax(x, QK_K, &amax);
        memset(&y[i], 0, sizeof(y[i]));
        if (amax == 0.0f)
            continue;
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++)
            y[i].qs[j] = (int8_t)imin(127, nearest_int(iscale * x[j]));
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int ii = 0; ii < 16; ii++)
                sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* ------------------------------------------------------------------ dot products */

static float dot_f32(int64_t n, const void *vw, const void *va)
{
    const float *x = vw, *y = va;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * y[i]);
    return (float)sum;
}

static float dot_f16(int64_t n, const void *vw, const void *va)
{
    const uint16_t *x = vw, *y = va;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)sum;
}

static float dot_bf16(int64_t n, const void *vw, const void *va)
{
    const uint16_t *x = vw, *y = va;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(bf16_to_f32(x[i]) * bf16_to_f32(y[i]));
    return (float)sum;
}

static float dot_q8_0(int64_t n, const void *vw, const void *va)
{
    const block_q8_0 *x = vw;
    const block_q8_0 *y = va;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        sumf += sumi * (h2f(x[i].d) * h2f(y[i].d));
    }
    return sumf;
}

static float dot_q4_0(int64_t n, const void *vw, const void *va)
{
    const block_q4_0 *x = vw;
    const block_q8_0 *y = va;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        /* Unpacked first: GCC 12 -O2 -march=native (AVX-512) miscompiles the fused loop
         * (ggml's generic q4_0 dot hits the same bug). */
        int8_t v[QK4_0];
        for (int j = 0; j < QK4_0 / 2; j++) {
            v[j] = (int8_t)((x[i].qs[j] & 0x0F) - 8);
            v[j + QK4_0 / 2] = (int8_t)((x[i].qs[j] >> 4) - 8);
        }
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            sumi0 += v[j] * y[i].qs[j];
            sumi1 += v[j + QK4_0 / 2] * y[i].qs[j + QK4_0 / 2];
        }
        const int sumi = sumi0 + sumi1;
        sumf += sumi * h2f(x[i].d) * h2f(y[i].d);
    }
    return sumf;
}

static float dot_q4_1(int64_t n, const void *vw, const void *va)
{
    const block_q4_1 *x = vw;
    const block_q8_1 *y = va;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < QK4_1 / 2; j++) {
            sumi0 += (x[i].qs[j] & 0x0F) * y[i].qs[j];
            sumi1 += (x[i].qs[j] >> 4) * y[i].qs[j + QK4_1 / 2];
        }
        const int sumi = sumi0 + sumi1;
        sumf += (h2f(x[i].d) * h2f(y[i].d)) * sumi + h2f(x[i].m) * h2f(y[i].s);
    }
    return sumf;
}

static float dot_q5_0(int64_t n, const void *vw, const void *va)
{
    const block_q5_0 *x = vw;
    const block_q8_0 *y = va;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const uint32_t qh = load_u32le(x[i].qh);
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int x0 = ((x[i].qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4)) - 16;
            const int x1 = ((x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16;
            sumi0 += x0 * y[i].qs[j];
            sumi1 += x1 * y[i].qs[j + QK5_0 / 2];
        }
        const int sumi = sumi0 + sumi1;
        sumf += (h2f(x[i].d) * h2f(y[i].d)) * sumi;
    }
    return sumf;
}

static float dot_q5_1(int64_t n, const void *vw, const void *va)
{
    const block_q5_1 *x = vw;
    const block_q8_1 *y = va;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const uint32_t qh = load_u32le(x[i].qh);
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
            const int x1 = (x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            sumi0 += x0 * y[i].qs[j];
            sumi1 += x1 * y[i].qs[j + QK5_1 / 2];
        }
        const int sumi = sumi0 + sumi1;
        sumf += (h2f(x[i].d) * h2f(y[i].d)) * sumi + h2f(x[i].m) * h2f(y[i].s);
    }
    return sumf;
}

/* The K-quant dots keep ggml's generic structure: eight int32 lanes per super-block (value
 * l of every 8 goes to lane l), scaled by d into eight float lanes summed at the end; the
 * mins term is subtracted from the running total per super-block. */
static void k_lanes_accumulate(const int8_t *a, const int8_t *q8, const int *scales, int group,
                               int32_t aux32[8])
{
    for (int j = 0; j < QK_K / group; j++) {
        const int scale = scales[j];
        for (int k = 0; k < group; k += 8) {
            for (int l = 0; l < 8; l++)
                aux32[l] += scale * (int16_t)(q8[l] * a[l]);
            q8 += 8;
            a += 8;
        }
    }
}

static float dot_k4_common(int64_t n, const void *vw, const void *va, bool five)
{
    const block_q8_K *y = va;
    const size_t bsz = five ? sizeof(block_q5_K) : sizeof(block_q4_K);
    float sums[8] = {0};
    float sumf = 0;
    int8_t a[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *blk = (const uint8_t *)vw + (size_t)i * bsz;
        uint16_t dh, dminh;
        const uint8_t *sc12, *q4, *qh = NULL;
        if (five) {
            const block_q5_K *b = (const block_q5_K *)blk;
            dh = b->d;
            dminh = b->dmin;
            sc12 = b->scales;
            q4 = b->qs;
            qh = b->qh;
        } else {
            const block_q4_K *b = (const block_q4_K *)blk;
            dh = b->d;
            dminh = b->dmin;
            sc12 = b->scales;
            q4 = b->qs;
        }
        for (int c = 0; c < QK_K / 64; c++) {
            for (int l = 0; l < 32; l++) {
                int lo = q4[32 * c + l] & 0xF, hi = q4[32 * c + l] >> 4;
                if (qh) {
                    lo += (qh[l] >> (2 * c)) & 1 ? 16 : 0;
                    hi += (qh[l] >> (2 * c + 1)) & 1 ? 16 : 0;
                }
                a[64 * c + l] = (int8_t)lo;
                a[64 * c + 32 + l] = (int8_t)hi;
            }
        }
        int scales[8], mins[8];
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            quant_k4_scale_min(j, sc12, &s, &m);
            scales[j] = s;
            mins[j] = m;
        }
        int sumi = 0;
        for (int j = 0; j < QK_K / 16; j++)
            sumi += y[i].bsums[j] * mins[j / 2];
        int32_t aux32[8] = {0};
        k_lanes_accumulate(a, y[i].qs, scales, 32, aux32);
        const float d = h2f(dh) * y[i].d;
        for (int l = 0; l < 8; l++)
            sums[l] += d * aux32[l];
        const float dmin = h2f(dminh) * y[i].d;
        sumf -= dmin * sumi;
    }
    for (int l = 0; l < 8; l++)
        sumf += sums[l];
    return sumf;
}

static float dot_q4_K(int64_t n, const void *vw, const void *va)
{
    return dot_k4_common(n, vw, va, false);
}

static float dot_q5_K(int64_t n, const void *vw, const void *va)
{
    return dot_k4_common(n, vw, va, true);
}

static float dot_q6_K(int64_t n, const void *vw, const void *va)
{
    const block_q6_K *x = vw;
    const block_q8_K *y = va;
    float sums[8] = {0};
    float sumf = 0;
    int8_t a[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        q6_K_values(&x[i], a);
        int scales[QK_K / 16];
        for (int j = 0; j < QK_K / 16; j++)
            scales[j] = x[i].scales[j];
        int32_t aux32[8] = {0};
        k_lanes_accumulate(a, y[i].qs, scales, 16, aux32);
        const float d = h2f(x[i].d) * y[i].d;
        for (int l = 0; l < 8; l++)
            sums[l] += d * aux32[l];
    }
    for (int l = 0; l < 8; l++)
        sumf += sums[l];
    return sumf;
}

/* ------------------------------------------------------------------ row loops */

void quant_matvec_generic(quant_dot_fn dot, size_t row_bytes, const void *w, int64_t n,
                          const void *act, float *out, int64_t row_begin, int64_t row_end)
{
    const uint8_t *base = w;
    for (int64_t r = row_begin; r < row_end; r++)
        out[r] = dot(n, base + (size_t)r * row_bytes, act);
}

/* Rows in tiles small enough to stay in L2 while every token passes over them. */
#define MATMUL_TILE_BYTES (64 * 1024)

void quant_matmul_generic(quant_dot_fn dot, size_t row_bytes, const void *w, int64_t n,
                          const void *acts, int64_t n_tokens, size_t act_stride, float *out,
                          size_t out_stride, int64_t row_begin, int64_t row_end)
{
    const uint8_t *base = w;
    const uint8_t *a = acts;
    int64_t tile = (int64_t)(MATMUL_TILE_BYTES / (row_bytes ? row_bytes : 1));
    if (tile < 1)
        tile = 1;
    for (int64_t r0 = row_begin; r0 < row_end; r0 += tile) {
        const int64_t r1 = r0 + tile < row_end ? r0 + tile : row_end;
        for (int64_t t = 0; t < n_tokens; t++) {
            const void *at = a + (size_t)t * act_stride;
            float *ot = out + (size_t)t * out_stride;
            for (int64_t r = r0; r < r1; r++)
                ot[r] = dot(n, base + (size_t)r * row_bytes, at);
        }
    }
}

QUANT_MAIN_TYPES(QUANT_ROW_LOOPS)

/* ------------------------------------------------------------------ tables and dispatch */

#define OPS(T, ACT, DQ, Q)                                                                     \
    (quant_type_ops)                                                                           \
    {                                                                                          \
        .act_type = ACT, .dequant = DQ, .quantize = Q, .vec_dot = dot_##T,                     \
        .matvec = matvec_##T, .matmul = matmul_##T                                             \
    }

void quant_scalar_fill(quant_kernels *kt)
{
    memset(kt, 0, sizeof(*kt));
    kt->name = "scalar";
    for (size_t i = 0; i < GGML_TYPE_COUNT; i++)
        kt->ops[i].act_type = GGML_TYPE_COUNT;
    kt->ops[GGML_TYPE_F32] = OPS(f32, GGML_TYPE_F32, dequant_f32, quant_f32_row);
    kt->ops[GGML_TYPE_F16] = OPS(f16, GGML_TYPE_F16, dequant_f16, quant_f16_row);
    kt->ops[GGML_TYPE_BF16] = OPS(bf16, GGML_TYPE_BF16, dequant_bf16, quant_bf16_row);
    kt->ops[GGML_TYPE_Q8_0] = OPS(q8_0, GGML_TYPE_Q8_0, dequant_q8_0, quant_q8_0_weights);
    kt->ops[GGML_TYPE_Q4_0] = OPS(q4_0, GGML_TYPE_Q8_0, dequant_q4_0, quant_q4_0_weights);
    kt->ops[GGML_TYPE_Q4_1] = OPS(q4_1, GGML_TYPE_Q8_1, dequant_q4_1, quant_q4_1_weights);
    kt->ops[GGML_TYPE_Q5_0] = OPS(q5_0, GGML_TYPE_Q8_0, dequant_q5_0, quant_q5_0_weights);
    kt->ops[GGML_TYPE_Q5_1] = OPS(q5_1, GGML_TYPE_Q8_1, dequant_q5_1, quant_q5_1_weights);
    kt->ops[GGML_TYPE_Q4_K] = OPS(q4_K, GGML_TYPE_Q8_K, dequant_q4_K, quant_q4_K_weights);
    kt->ops[GGML_TYPE_Q5_K] = OPS(q5_K, GGML_TYPE_Q8_K, dequant_q5_K, quant_q5_K_weights);
    kt->ops[GGML_TYPE_Q6_K] = OPS(q6_K, GGML_TYPE_Q8_K, dequant_q6_K, quant_q6_K_weights);
    kt->act_quant[GGML_TYPE_F32] = quant_f32_row;
    kt->act_quant[GGML_TYPE_F16] = quant_f16_row;
    kt->act_quant[GGML_TYPE_BF16] = quant_bf16_row;
    kt->act_quant[GGML_TYPE_Q8_0] = act_q8_0;
    kt->act_quant[GGML_TYPE_Q8_1] = act_q8_1;
    kt->act_quant[GGML_TYPE_Q8_K] = act_q8_K;
    quant_lowbit_scalar_fill(kt);
}

/* Built once under pthread_once and read-only afterwards. */
static quant_kernels scalar_table;
static quant_kernels avx2_table;
static bool avx2_ok;
static const quant_kernels *active_table;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void tables_init(void)
{
    quant_scalar_fill(&scalar_table);
    avx2_table = scalar_table;
    avx2_ok = quant_avx2_fill(&avx2_table) && quant_lowbit_avx2_fill(&avx2_table);
    const char *env = getenv("LOCO_KERNELS");
    const bool force_scalar = env && strcmp(env, "scalar") == 0;
    active_table = avx2_ok && !force_scalar ? &avx2_table : &scalar_table;
}

const quant_kernels *quant_kernels_get(void)
{
    pthread_once(&tables_once, tables_init);
    return active_table;
}

const quant_kernels *quant_kernels_scalar(void)
{
    pthread_once(&tables_once, tables_init);
    return &scalar_table;
}

const quant_kernels *quant_kernels_avx2(void)
{
    pthread_once(&tables_once, tables_init);
    return avx2_ok ? &avx2_table : NULL;
}

/* ------------------------------------------------------------------ public entry points */

bool quant_type_supported(ggml_type type)
{
    const quant_kernels *kt = quant_kernels_scalar();
    return (unsigned)type < GGML_TYPE_COUNT && kt->ops[type].vec_dot != NULL;
}

ggml_type quant_act_type(ggml_type weight_type)
{
    if (!quant_type_supported(weight_type))
        return GGML_TYPE_COUNT;
    return quant_kernels_scalar()->ops[weight_type].act_type;
}

static loco_status check_n(ggml_type type, int64_t n)
{
    if ((unsigned)type >= GGML_TYPE_COUNT)
        return LOCO_ERR_UNSUPPORTED;
    const size_t bs = ggml_type_block_size(type);
    if (n <= 0 || bs == 0 || (uint64_t)n % bs != 0)
        return LOCO_ERR_INVALID;
    return LOCO_OK;
}

loco_status quant_check(ggml_type type, int64_t n, const char *what, loco_err *err)
{
    if (!quant_type_supported(type))
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED,
                            "tensor '%s' has type %s (id %u); supported types: %s", what,
                            ggml_type_name((uint32_t)type), (unsigned)type,
                            ggml_type_supported_list());
    if (check_n(type, n) != LOCO_OK)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "tensor '%s': row length %" PRId64 " is not a multiple of the %s "
                            "block size %zu",
                            what, n, ggml_type_name((uint32_t)type), ggml_type_block_size(type));
    return LOCO_OK;
}

loco_status quant_dequantize_row(ggml_type type, const void *src, float *dst, int64_t n)
{
    if (!quant_type_supported(type))
        return LOCO_ERR_UNSUPPORTED;
    loco_status st = check_n(type, n);
    if (st)
        return st;
    quant_kernels_get()->ops[type].dequant(src, dst, n);
    return LOCO_OK;
}

loco_status quant_quantize_row(ggml_type type, const float *src, void *dst, int64_t n)
{
    if (!quant_type_supported(type))
        return LOCO_ERR_UNSUPPORTED;
    loco_status st = check_n(type, n);
    if (st)
        return st;
    quant_kernels_get()->ops[type].quantize(src, dst, n);
    return LOCO_OK;
}

loco_status quant_quantize_act(ggml_type act_type, const float *x, void *dst, int64_t n)
{
    if ((unsigned)act_type >= GGML_TYPE_COUNT || !quant_kernels_get()->act_quant[act_type])
        return LOCO_ERR_UNSUPPORTED;
    loco_status st = check_n(act_type, n);
    if (st)
        return st;
    quant_kernels_get()->act_quant[act_type](x, dst, n);
    return LOCO_OK;
}

static const quant_type_ops *ops_for(ggml_type type)
{
    LOCO_ASSERT((unsigned)type < GGML_TYPE_COUNT);
    const quant_type_ops *ops = &quant_kernels_get()->ops[type];
    LOCO_ASSERT(ops->vec_dot != NULL);
    return ops;
}

float quant_vec_dot(ggml_type type, int64_t n, const void *w, const void *act)
{
    return ops_for(type)->vec_dot(n, w, act);
}

void quant_matvec(ggml_type type, const void *W, int64_t rows, int64_t n, const void *act,
                  float *out, int64_t row_begin, int64_t row_end)
{
    LOCO_ASSERT(0 <= row_begin && row_begin <= row_end && row_end <= rows);
    ops_for(type)->matvec(W, n, act, out, row_begin, row_end);
}

void quant_matmul(ggml_type type, const void *W, int64_t rows, int64_t n, const void *acts,
                  int64_t n_tokens, size_t act_stride, float *out, size_t out_stride,
                  int64_t row_begin, int64_t row_end)
{
    LOCO_ASSERT(0 <= row_begin && row_begin <= row_end && row_end <= rows);
    ops_for(type)->matmul(W, n, acts, n_tokens, act_stride, out, out_stride, row_begin, row_end);
}
