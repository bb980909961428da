/* quant_lowbit.c: the scalar reference of the low-bit weight types Q2_K, Q3_K (x Q8_K),
 * IQ4_NL (x Q8_0) and IQ4_XS (x Q8_K): dequantization as ggml's dequantize_row_*, weight
 * quantizers as llama-quantize runs them without an importance matrix, and dot products with
 * the integer sums and float steps of ggml's generic vec_dot functions. quant.c installs them
 * through quant_lowbit_scalar_fill. Written from the formats (ggml-common.h) and ggml's
 * algorithms, see docs/internals/quant.md. */
#include "base/common.h"

#include <math.h>

#include "engine/quant.h"
#include "engine/quant_int.h"
#include "engine/quant_scalar.h"
#include "engine/quant_lowbit.h"

#define GROUP_MAX_EPS 1e-15f

/* No fused multiply-add behind our back: results must not depend on the compiler. */
#ifdef __clang__
#pragma clang fp contract(off)
#endif

const int8_t quant_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                       1,    13,   25,  38,  53,  69,  89,  113};

/* ------------------------------------------------------------------ dequantize */

static void dequant_q2_K(const void *src, float *y, int64_t n)
{
    const block_q2_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d);
        const float dmin = h2f(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int h = 0; h < QK_K; h += 128, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
                    for (int l = 0; l < 16; l++)
                        *y++ = dl * ((q[16 * half + l] >> shift) & 3) - ml;
                }
            }
        }
    }
}

static void dequant_q3_K(const void *src, float *y, int64_t n)
{
    const block_q3_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d);
        int8_t sc[16];
        quant_q3_K_scales(x[i].scales, sc);
        const uint8_t *q = x[i].qs;
        const uint8_t *hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int h = 0; h < QK_K; h += 128, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1)) {
                for (int half = 0; half < 2; half++) {
                    const float dl = d * sc[is++];
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        *y++ = dl * (((q[l] >> shift) & 3) - (hm[l] & m ? 0 : 4));
                }
            }
        }
    }
}

static void dequant_iq4_nl(const void *src, float *y, int64_t n)
{
    const block_iq4_nl *x = src;
    for (int64_t i = 0; i < n / QK4_NL; i++, y += QK4_NL) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < QK4_NL / 2; j++) {
            y[j] = d * quant_iq4nl_values[x[i].qs[j] & 0xF];
            y[j + QK4_NL / 2] = d * quant_iq4nl_values[x[i].qs[j] >> 4];
        }
    }
}

static void dequant_iq4_xs(const void *src, float *y, int64_t n)
{
    const block_iq4_xs *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d);
        const uint8_t *qs = x[i].qs;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 16, y += 32) {
            const float dl = d * quant_iq4_xs_scale(&x[i], ib);
            for (int j = 0; j < 16; j++) {
                y[j] = dl * quant_iq4nl_values[qs[j] & 0xF];
                y[j + 16] = dl * quant_iq4nl_values[qs[j] >> 4];
            }
        }
    }
}

/* ------------------------------------------------------------------ weight quantizers */

/* ggml's make_qkx2_quants with the absolute error (use_mad): scale and min of an asymmetric
 * n-value group quantized to 0..nmax, trying nstep+1 scales around nmax/(max-min) and keeping
 * the least weighted error. L receives the levels, *out_min the (positive) min to subtract. */
static float make_qkx2_mad(int n, int nmax, const float *x, const float *w, uint8_t *L,
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
        L[i] = (uint8_t)imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
        const float diff = scale * L[i] + min - x[i];
        best_error += w[i] * fabsf(diff);
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
            cur_error += w[i] * fabsf(diff);
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

/* Packs 256 levels of 2 bits: byte 32h + l holds values 128h + l + 32k at bits 2k. */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int j = 0; j < QK_K; j += 128) {
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
    }
}

/* quantize_row_q2_K_ref: per 16 values a scale and min (make_qkx2, absolute error, weights
 * |x|), both stored as 4-bit multiples of d and dmin, then the levels recomputed. */
static void quant_q2_K_weights(const float *x, void *dst, int64_t n)
{
    block_q2_K *y = dst;
    uint8_t L[QK_K], Laux[16];
    float weights[16], mins[QK_K / 16], scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++)
                weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_mad(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f,
                                      0.1f, 15);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = 15.f / max_scale;
            for (int j = 0; j < QK_K / 16; j++)
                y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = f2h(max_scale / 15.f);
        } else {
            memset(y[i].scales, 0, sizeof(y[i].scales));
            y[i].d = f2h(0.f);
        }
        if (max_min > 0) {
            const float iscale = 15.f / max_min;
            for (int j = 0; j < QK_K / 16; j++)
                y[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = f2h(max_min / 15.f);
        } else {
            y[i].dmin = f2h(0.f);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = h2f(y[i].d) * (y[i].scales[j] & 0xF);
            if (d == 0.0f)
                continue;
            const float dm = h2f(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ii++) {
                const int l = nearest_int((x[16 * j + ii] + dm) / d);
                L[16 * j + ii] = (uint8_t)imax(0, imin(3, l));
            }
        }
        pack_2bit(L, y[i].qs);
    }
}

/* ggml's make_q3_quants with the rmse search: symmetric levels -nmax..nmax-1 (stored + nmax)
 * for scale nmax/max, then up to 5 passes moving single levels while the weighted (x^2) fit
 * improves. Returns the scale. */
static float make_q3(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx <= 0)
                continue;
            float sl2 = suml2 - w * L[i] * L[i];
            const int new_l = imax(-nmax, imin(nmax - 1, nearest_int(x[i] * sl2 / slx)));
            if (new_l == L[i])
                continue;
            slx += w * x[i] * new_l;
            sl2 += w * new_l * new_l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)new_l;
                sumlx = slx;
                suml2 = sl2;
                n_changed++;
            }
        }
        if (!n_changed)
            break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* quantize_row_q3_K_ref: per 16 values a signed scale (make_q3), stored as a 6-bit multiple
 * of d, then the levels recomputed against it; bit 2 of each level goes to hmask. */
static void quant_q3_K_weights(const float *x, void *dst, int64_t n)
{
    block_q3_K *y = dst;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = make_q3(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, sizeof(y[i].scales));
        if (max_scale != 0.0f) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                const int l = imax(-32, imin(31, nearest_int(iscale * scales[j]))) + 32;
                if (j < 8)
                    y[i].scales[j] = (uint8_t)(l & 0xF);
                else
                    y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                y[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = f2h(1 / iscale);
        } else {
            y[i].d = f2h(0.f);
        }
        int8_t sc[16];
        quant_q3_K_scales(y[i].scales, sc);
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = h2f(y[i].d) * sc[j];
            if (d == 0.0f)
                continue;
            for (int ii = 0; ii < 16; ii++) {
                const int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(imax(-4, imin(3, l)) + 4);
            }
        }
        memset(y[i].hmask, 0, sizeof(y[i].hmask));
        uint8_t Lu[QK_K];
        for (int j = 0; j < QK_K; j++) {
            int l = L[j];
            if (l > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1 << (j / 32));
                l -= 4;
            }
            Lu[j] = (uint8_t)l;
        }
        pack_2bit(Lu, y[i].qs);
    }
}

/* Index of the level nearest to x in the sorted table (ggml's best_index_int8: below the
 * first or above the last level clamps; a tie goes to the upper level). */
static int best_index(const int8_t *val, float x)
{
    if (x <= val[0])
        return 0;
    if (x >= val[15])
        return 15;
    /* ggml bisects to val[mu - 1] <= x < val[mu]; mu is the count of levels <= x (branch
     * free: the bisection's mispredicted branches made the IQ4 quantizers slow) */
    int mu = 0;
    for (int k = 0; k < 16; k++)
        mu += val[k] <= x;
    if (mu == 0) /* NaN: the bisection ends at mu = 15 */
        return 15;
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

#define IQ4_NTRY 7 /* scale candidates each side, as llama-quantize uses */

/* The best scale of one 32-value block onto the IQ4 levels (weights x^2): the candidate from
 * the largest magnitude, then 2*IQ4_NTRY+1 scales around it, keeping the best fit. 0 for an
 * all-zero block. */
static float iq4_block_scale(const float *xb)
{
    const int8_t *values = quant_iq4nl_values;
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++) {
        const float ax = fabsf(xb[j]);
        if (ax > amax) {
            amax = ax;
            max = xb[j];
        }
    }
    if (amax < GROUP_MAX_EPS)
        return 0.f;
    float d = -max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; j++) {
        const float q = values[best_index(values, id * xb[j])];
        const float w = xb[j] * xb[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -IQ4_NTRY; itry <= IQ4_NTRY; itry++) {
        id = (itry + values[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            const float q = values[best_index(values, id * xb[j])];
            const float w = xb[j] * xb[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* Packs 32 levels into 16 bytes: value j in the low nibble of byte j, j + 16 in the high. */
static void pack_4bit(const uint8_t *L, uint8_t *qs)
{
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)(L[j] | (L[16 + j] << 4));
}

/* quantize_iq4_nl without an importance matrix (ggml's quantize_row_iq4_nl_impl, one block
 * per super-block): the block scale stored as fp16, levels against the unrounded scale. */
static void quant_iq4_nl_weights(const float *x, void *dst, int64_t n)
{
    block_iq4_nl *y = dst;
    uint8_t L[QK4_NL];
    for (int64_t i = 0; i < n / QK4_NL; i++, x += QK4_NL) {
        const float d = iq4_block_scale(x);
        y[i].d = f2h(d);
        const float id = d != 0.0f ? 1 / d : 0;
        for (int j = 0; j < QK4_NL; j++)
            L[j] = (uint8_t)best_index(quant_iq4nl_values, id * x[j]);
        pack_4bit(L, y[i].qs);
    }
}

/* quantize_iq4_xs without an importance matrix: block scales as in IQ4_NL, then d = -max/32
 * over the block scale of largest magnitude and each block's scale a 6-bit multiple of d
 * (-32..31), levels recomputed against it. */
static void quant_iq4_xs_weights(const float *x, void *dst, int64_t n)
{
    block_iq4_xs *y = dst;
    uint8_t L[32];
    float scales[QK_K / 32];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, amax_scale = 0;
        for (int ib = 0; ib < QK_K / 32; ib++) {
            scales[ib] = iq4_block_scale(x + 32 * ib);
            if (fabsf(scales[ib]) > amax_scale) {
                amax_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        const float d = -max_scale / 32;
        y[i].d = f2h(d);
        y[i].scales_h = 0;
        memset(y[i].scales_l, 0, sizeof(y[i].scales_l));
        const float id = d != 0.0f ? 1 / d : 0.f;
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const int l = imax(-32, imin(31, nearest_int(id * scales[ib])));
            const float dl = d * l;
            const float idl = dl != 0.0f ? 1 / dl : 0.f;
            for (int j = 0; j < 32; j++)
                L[j] = (uint8_t)best_index(quant_iq4nl_values, idl * x[32 * ib + j]);
            pack_4bit(L, y[i].qs + 16 * ib);
            const int u = l + 32;
            y[i].scales_l[ib / 2] |= (uint8_t)((u & 0xF) << (4 * (ib % 2)));
            y[i].scales_h |= (uint16_t)((u >> 4) << (2 * ib));
        }
    }
}

/* ------------------------------------------------------------------ dot products */

/* ggml_vec_dot_q2_K_q8_K_generic: per super-block the exact integer sum of scale * dot over
 * the 16 sub-blocks and of min * bsum, then sumf += dall * isum - dmin * summs. */
static float dot_q2_K(int64_t n, const void *vw, const void *va)
{
    const block_q2_K *x = vw;
    const block_q8_K *y = va;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q2 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        const uint8_t *sc = x[i].scales;
        int summs = 0;
        for (int j = 0; j < 16; j++)
            summs += y[i].bsums[j] * (sc[j] >> 4);
        const float dall = y[i].d * h2f(x[i].d);
        const float dmin = y[i].d * h2f(x[i].dmin);
        int isum = 0, is = 0;
        for (int k = 0; k < QK_K / 128; k++, q2 += 32) {
            for (int shift = 0; shift < 8; shift += 2, q8 += 32) {
                int isuml = 0;
                for (int l = 0; l < 16; l++)
                    isuml += q8[l] * ((q2[l] >> shift) & 3);
                isum += (sc[is++] & 0xF) * isuml;
                isuml = 0;
                for (int l = 16; l < 32; l++)
                    isuml += q8[l] * ((q2[l] >> shift) & 3);
                isum += (sc[is++] & 0xF) * isuml;
            }
        }
        sumf += dall * isum - dmin * summs;
    }
    return sumf;
}

/* ggml_vec_dot_q3_K_q8_K_generic: the signed 3-bit values unpacked, then eight int32 lanes
 * (value l of every 8 to lane l) of scale * q3 * q8, scaled by d into eight float lanes per
 * super-block and summed at the end. */
static float dot_q3_K(int64_t n, const void *vw, const void *va)
{
    const block_q3_K *x = vw;
    const block_q8_K *y = va;
    float sums[8] = {0};
    int8_t a[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q3 = x[i].qs;
        const uint8_t *hm = x[i].hmask;
        int8_t *p = a;
        uint8_t m = 1;
        for (int h = 0; h < QK_K; h += 128, q3 += 32) {
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1), p += 32) {
                for (int l = 0; l < 32; l++)
                    p[l] = (int8_t)(((q3[l] >> shift) & 3) - (hm[l] & m ? 0 : 4));
            }
        }
        int8_t sc[16];
        quant_q3_K_scales(x[i].scales, sc);
        int32_t aux32[8] = {0};
        const int8_t *q8 = y[i].qs;
        p = a;
        for (int j = 0; j < QK_K / 16; j++) {
            for (int k = 0; k < 16; k += 8, q8 += 8, p += 8) {
                for (int l = 0; l < 8; l++)
                    aux32[l] += sc[j] * (int16_t)(q8[l] * p[l]);
            }
        }
        const float d = h2f(x[i].d) * y[i].d;
        for (int l = 0; l < 8; l++)
            sums[l] += d * aux32[l];
    }
    float sumf = 0;
    for (int l = 0; l < 8; l++)
        sumf += sums[l];
    return sumf;
}

/* ggml_vec_dot_iq4_nl_q8_0_generic: per block sumf += d_a * d_w * (sumi1 + sumi2). */
static float dot_iq4_nl(int64_t n, const void *vw, const void *va)
{
    const block_iq4_nl *x = vw;
    const block_q8_0 *y = va;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / QK4_NL; ib++) {
        const float d = h2f(y[ib].d) * h2f(x[ib].d);
        int sumi1 = 0, sumi2 = 0;
        for (int j = 0; j < QK4_NL / 2; j++) {
            sumi1 += y[ib].qs[j] * quant_iq4nl_values[x[ib].qs[j] & 0xF];
            sumi2 += y[ib].qs[j + QK4_NL / 2] * quant_iq4nl_values[x[ib].qs[j] >> 4];
        }
        sumf += d * (sumi1 + sumi2);
    }
    return sumf;
}

/* ggml_vec_dot_iq4_xs_q8_K_generic: per 32-value sub-block sumf += (d_w * d_a * ls) * dot. */
static float dot_iq4_xs(int64_t n, const void *vw, const void *va)
{
    const block_iq4_xs *x = vw;
    const block_q8_K *y = va;
    float sumf = 0;
    for (int64_t ibl = 0; ibl < n / QK_K; ibl++) {
        const float d4d8 = h2f(x[ibl].d) * y[ibl].d;
        const uint8_t *qs = x[ibl].qs;
        const int8_t *q8 = y[ibl].qs;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 16, q8 += 32) {
            const float dl = d4d8 * quant_iq4_xs_scale(&x[ibl], ib);
            int sumi1 = 0, sumi2 = 0;
            for (int j = 0; j < 16; j++) {
                sumi1 += q8[j] * quant_iq4nl_values[qs[j] & 0xF];
                sumi2 += q8[j + 16] * quant_iq4nl_values[qs[j] >> 4];
            }
            sumf += dl * (sumi1 + sumi2);
        }
    }
    return sumf;
}

/* ------------------------------------------------------------------ llama.cpp's other kernels */

/* Integer dot of the 32 IQ4 levels in qs (16 bytes) with 32 int8 activations. */
static int iq4_dot32(const uint8_t *qs, const int8_t *q8)
{
    int sum = 0;
    for (int j = 0; j < 16; j++)
        sum += q8[j] * quant_iq4nl_values[qs[j] & 0xF] +
               q8[j + 16] * quant_iq4nl_values[qs[j] >> 4];
    return sum;
}

float quant_lowbit_amx_iq4_xs(int64_t n, const void *vw, const void *va)
{
    const block_iq4_xs *x = vw;
    const block_q8_K *y = va;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t s = 0;
        for (int ib = 0; ib < QK_K / 32; ib++)
            s += quant_iq4_xs_scale(&x[i], ib) * iq4_dot32(x[i].qs + 16 * ib, y[i].qs + 32 * ib);
        acc = fmaf((float)s, h2f(x[i].d) * y[i].d, acc);
    }
    return acc;
}

float quant_lowbit_repack_iq4_nl(int64_t n, const void *vw, const void *va)
{
    const block_iq4_nl *x = vw;
    const block_q8_0 *y = va;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK4_NL; i++)
        acc = fmaf((float)iq4_dot32(x[i].qs, y[i].qs), h2f(x[i].d) * h2f(y[i].d), acc);
    return acc;
}

static float repack_q2_K(int64_t n, const void *vw, const void *va, bool gemm)
{
    const block_q2_K *x = vw;
    const block_q8_K *y = va;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float dd = h2f(x[i].d) * y[i].d, dm = h2f(x[i].dmin) * y[i].d;
        int32_t s = 0, sm = 0;
        for (int h = 0; h < 2; h++) {
            int32_t hs = 0, hm = 0;
            for (int k = 0; k < 4; k++) {
                for (int half = 0; half < 2; half++) {
                    const int sb = 8 * h + 2 * k + half;
                    const uint8_t sc = x[i].scales[sb];
                    int32_t dot = 0;
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        dot += ((x[i].qs[32 * h + l] >> (2 * k)) & 3) *
                               y[i].qs[128 * h + 32 * k + l];
                    hs += (sc & 0xF) * dot;
                    hm += (sc >> 4) * y[i].bsums[sb];
                }
            }
            if (gemm) {
                acc = fmaf((float)hs, dd, acc);
                accm = fmaf((float)hm, dm, accm);
            } else {
                s += hs;
                sm += hm;
            }
        }
        if (!gemm) {
            acc = fmaf((float)s, dd, acc);
            accm = fmaf((float)sm, dm, accm);
        }
    }
    return acc - accm;
}

float quant_lowbit_repack_q2_K_gemv(int64_t n, const void *vw, const void *va)
{
    return repack_q2_K(n, vw, va, false);
}

float quant_lowbit_repack_q2_K_gemm(int64_t n, const void *vw, const void *va)
{
    return repack_q2_K(n, vw, va, true);
}

/* ------------------------------------------------------------------ row loops and table */

QUANT_ROW_LOOPS(q2_K, GGML_TYPE_Q2_K)
QUANT_ROW_LOOPS(q3_K, GGML_TYPE_Q3_K)
QUANT_ROW_LOOPS(iq4_nl, GGML_TYPE_IQ4_NL)
QUANT_ROW_LOOPS(iq4_xs, GGML_TYPE_IQ4_XS)

#define LOWBIT_OPS(T, ACT)                                                        \
    (quant_type_ops)                                                              \
    {                                                                             \
        .act_type = ACT, .dequant = dequant_##T, .quantize = quant_##T##_weights, \
        .vec_dot = dot_##T, .matvec = matvec_##T, .matmul = matmul_##T            \
    }

void quant_lowbit_scalar_fill(quant_kernels *kt)
{
    kt->ops[GGML_TYPE_Q2_K] = LOWBIT_OPS(q2_K, GGML_TYPE_Q8_K);
    kt->ops[GGML_TYPE_Q3_K] = LOWBIT_OPS(q3_K, GGML_TYPE_Q8_K);
    kt->ops[GGML_TYPE_IQ4_NL] = LOWBIT_OPS(iq4_nl, GGML_TYPE_Q8_0);
    kt->ops[GGML_TYPE_IQ4_XS] = LOWBIT_OPS(iq4_xs, GGML_TYPE_Q8_K);
}
