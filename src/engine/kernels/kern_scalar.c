/* kern_scalar.c: the scalar reference of the fast kernels (engine/kernels): activation
 * quantizers, weight packing and the matmul of every type on the packed layouts, in plain C.
 * It defines the exact result every SIMD path must reproduce bit for bit (kern_int.h,
 * docs/internals/kernels.md). Built for every platform: the scalar kernels always work. */
#include "base/common.h"

#include <math.h>

#include "engine/kernels/kern_int.h"

/* No fused multiply-add behind our back: every fma below is written out. */
#ifdef __clang__
#pragma clang fp contract(off)
#endif

static inline float h2f(uint16_t h)
{
    return fp16_to_f32(h);
}

static inline uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline int32_t rd32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline float rdf(const uint8_t *p)
{
    float v;
    memcpy(&v, p, 4);
    return v;
}

/* Round to nearest, ties to even, for |f| <= 4194303 (ggml's nearest_int). */
static inline int nearest_int(float f)
{
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

static inline int imin(int a, int b)
{
    return a < b ? a : b;
}

static inline int imax(int a, int b)
{
    return a > b ? a : b;
}

/* ---------------------------------------------------------------- activation quantizers */

/* llama.cpp's x86 quantize_row_q8_0/q8_1 per 32 values: d = amax/127, q = x * (127/amax)
 * rounded half to even. */
void kern_quant_a32(const float *x, int64_t k, void *act, int32_t offset)
{
    const kern_act_layout L = kern_act_a32(k);
    uint8_t *a = act;
    int8_t *qs = (int8_t *)(a + L.qs);
    for (int64_t b = 0; b < k / 32; b++) {
        const float *xb = x + 32 * b;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            const float v = fabsf(xb[j]);
            amax = v > amax ? v : amax;
        }
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            const int q = imax(-128, imin(127, nearest_int(xb[j] * id)));
            qs[32 * b + j] = (int8_t)q;
            sum += q;
        }
        kern_a32_block_end(a, L, b, amax, sum, offset);
    }
}

void kern_a32_block_end(uint8_t *a, kern_act_layout L, int64_t b, float amax, int32_t sum,
                        int32_t offset)
{
    const float d = amax / 127.f;
    const float dr = h2f(fp16_from_f32(d));
    const float s = h2f(fp16_from_f32(d * (float)sum));
    const int32_t init = offset * sum;
    memcpy(a + L.d + 4 * (size_t)b, &dr, 4);
    memcpy(a + L.init + 4 * (size_t)b, &init, 4);
    memcpy(a + L.s + 4 * (size_t)b, &s, 4);
}

/* quantize_row_q8_K_ref per 256 values: iscale = -127/max with max the signed value of largest
 * magnitude (first on ties), q = nearest_int(iscale * x) capped at 127, d = 1/iscale; then the
 * sums the kernels use. */
void kern_quant_a256(const float *x, int64_t k, void *act)
{
    const kern_act_layout L = kern_act_a256(k);
    uint8_t *a = act;
    int8_t *qs = (int8_t *)(a + L.qs);
    for (int64_t b = 0; b < k / 256; b++) {
        const float *xb = x + 256 * b;
        int8_t *q = qs + 256 * b;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 256; j++) {
            if (amax < fabsf(xb[j])) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        }
        float d = 0.0f;
        if (amax == 0.0f) {
            memset(q, 0, 256);
        } else {
            const float iscale = -127.f / max;
            for (int j = 0; j < 256; j++)
                q[j] = (int8_t)imin(127, nearest_int(iscale * xb[j]));
            d = 1 / iscale;
        }
        int32_t s16[16];
        for (int g = 0; g < 16; g++) {
            int32_t s = 0;
            for (int j = 0; j < 16; j++)
                s += q[16 * g + j];
            s16[g] = s;
        }
        kern_a256_block_end(a, L, b, d, s16);
    }
}

void kern_a256_block_end(uint8_t *a, kern_act_layout L, int64_t b, float d, const int32_t s16[16])
{
    memcpy(a + L.d + 4 * (size_t)b, &d, 4);
    for (int g = 0; g < 16; g++) {
        const int16_t bs = (int16_t)s16[g];
        const int32_t off = -32 * s16[g];
        memcpy(a + L.bsums + 2 * (size_t)(16 * b + g), &bs, 2);
        memcpy(a + L.q6off + 4 * (size_t)(16 * b + g), &off, 4);
    }
    for (int p = 0; p < 4; p++) {
        const int32_t lo = s16[4 * p] + s16[4 * p + 1], hi = s16[4 * p + 2] + s16[4 * p + 3];
        const uint32_t v = ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
        memcpy(a + L.pairs + 4 * (size_t)(4 * b + p), &v, 4);
    }
}

KERN_QUANTIZERS(quant_scalar, kern_quant_a32, kern_quant_a256)

static void quant_f32(const float *x, int64_t k, void *act)
{
    memcpy(act, x, (size_t)k * sizeof(float));
}

/* ---------------------------------------------------------------- packing */

size_t kern_group_block_bytes(ggml_type type)
{
    switch (type) {
    case GGML_TYPE_Q8_0: return KG_Q8_0_BYTES;
    case GGML_TYPE_Q4_0: return KG_Q4_0_BYTES;
    case GGML_TYPE_Q4_1: return KG_Q4_1_BYTES;
    case GGML_TYPE_Q5_0: return KG_Q5_0_BYTES;
    case GGML_TYPE_Q5_1: return KG_Q5_1_BYTES;
    case GGML_TYPE_Q4_K: return KG_Q4_K_BYTES;
    case GGML_TYPE_Q5_K: return KG_Q5_K_BYTES;
    case GGML_TYPE_Q6_K: return KG_Q6_K_BYTES;
    default: return 0;
    }
}

/* One ggml block of one row, decoded into integer parts. */
typedef struct {
    uint16_t d, m;     /* fp16 scale and min (dmin for the K types) */
    uint8_t sc[16];    /* Q4_K/Q5_K: 8 6-bit scales; Q6_K: 16 int8 scales (as bytes) */
    uint8_t mn[8];     /* Q4_K/Q5_K mins */
    uint8_t q[256];    /* unsigned values: Q8_0 q + 128; Q4 nibbles; Q5 0..31; Q6 0..63 */
} row_block;

static void decode_block(ggml_type t, const uint8_t *row, int64_t b, row_block *o)
{
    o->m = 0;
    uint32_t qh;
    switch (t) {
    case GGML_TYPE_Q8_0: {
        const block_q8_0 *x = (const block_q8_0 *)row + b;
        o->d = x->d;
        for (int j = 0; j < 32; j++)
            o->q[j] = (uint8_t)(x->qs[j] + 128);
        break;
    }
    case GGML_TYPE_Q4_0: {
        const block_q4_0 *x = (const block_q4_0 *)row + b;
        o->d = x->d;
        for (int j = 0; j < 16; j++)
            o->q[j] = x->qs[j] & 0xF, o->q[j + 16] = x->qs[j] >> 4;
        break;
    }
    case GGML_TYPE_Q4_1: {
        const block_q4_1 *x = (const block_q4_1 *)row + b;
        o->d = x->d, o->m = x->m;
        for (int j = 0; j < 16; j++)
            o->q[j] = x->qs[j] & 0xF, o->q[j + 16] = x->qs[j] >> 4;
        break;
    }
    case GGML_TYPE_Q5_0: {
        const block_q5_0 *x = (const block_q5_0 *)row + b;
        o->d = x->d;
        memcpy(&qh, x->qh, 4);
        for (int j = 0; j < 16; j++) {
            o->q[j] = (uint8_t)((x->qs[j] & 0xF) | (((qh >> j) & 1) << 4));
            o->q[j + 16] = (uint8_t)((x->qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
        }
        break;
    }
    case GGML_TYPE_Q5_1: {
        const block_q5_1 *x = (const block_q5_1 *)row + b;
        o->d = x->d, o->m = x->m;
        memcpy(&qh, x->qh, 4);
        for (int j = 0; j < 16; j++) {
            o->q[j] = (uint8_t)((x->qs[j] & 0xF) | (((qh >> j) & 1) << 4));
            o->q[j + 16] = (uint8_t)((x->qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
        }
        break;
    }
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K: {
        const uint8_t *scales, *qs, *qhp = NULL;
        if (t == GGML_TYPE_Q4_K) {
            const block_q4_K *x = (const block_q4_K *)row + b;
            o->d = x->d, o->m = x->dmin, scales = x->scales, qs = x->qs;
        } else {
            const block_q5_K *x = (const block_q5_K *)row + b;
            o->d = x->d, o->m = x->dmin, scales = x->scales, qs = x->qs, qhp = x->qh;
        }
        for (int j = 0; j < 8; j++)
            quant_k4_scale_min(j, scales, &o->sc[j], &o->mn[j]);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int lo = qs[32 * c + l] & 0xF, hi = qs[32 * c + l] >> 4;
                if (qhp) {
                    lo |= ((qhp[l] >> (2 * c)) & 1) << 4;
                    hi |= ((qhp[l] >> (2 * c + 1)) & 1) << 4;
                }
                o->q[64 * c + l] = (uint8_t)lo;
                o->q[64 * c + 32 + l] = (uint8_t)hi;
            }
        break;
    }
    case GGML_TYPE_Q6_K: {
        const block_q6_K *x = (const block_q6_K *)row + b;
        o->d = x->d;
        memcpy(o->sc, x->scales, 16);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x->ql + 64 * h, *qhh = x->qh + 32 * h;
            uint8_t *y = o->q + 128 * h;
            for (int l = 0; l < 32; l++) {
                y[l] = (uint8_t)((ql[l] & 0xF) | ((qhh[l] & 3) << 4));
                y[l + 32] = (uint8_t)((ql[l + 32] & 0xF) | (((qhh[l] >> 2) & 3) << 4));
                y[l + 64] = (uint8_t)((ql[l] >> 4) | (((qhh[l] >> 4) & 3) << 4));
                y[l + 96] = (uint8_t)((ql[l + 32] >> 4) | (((qhh[l] >> 6) & 3) << 4));
            }
        }
        break;
    }
    default: break;
    }
}

static inline void wr16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

/* Interleaves 32-value nibble blocks: q[s][4r+j] lo = value 4s+j, hi = value 16+4s+j. */
static void put_nibbles32(uint8_t *q, int r, const uint8_t *v)
{
    for (int s = 0; s < 4; s++)
        for (int j = 0; j < 4; j++)
            q[KERN_STEP * s + 4 * r + j] = (uint8_t)((v[4 * s + j] & 0xF) | (v[16 + 4 * s + j] << 4));
}

/* 5th bits of a 32-value block: bit 4r+j of qh[s] = bit 4 of value 4s+j. */
static void put_high32(uint8_t *qh, int r, const uint8_t *v)
{
    for (int s = 0; s < 8; s++) {
        uint64_t m = rd64(qh + 8 * s);
        for (int j = 0; j < 4; j++)
            if (v[4 * s + j] & 0x10)
                m |= 1ull << (4 * r + j);
        memcpy(qh + 8 * s, &m, 8);
    }
}

/* Packs one block of one row (r) into the group block B. */
static void pack_row_block(ggml_type t, uint8_t *B, int r, const row_block *rb)
{
    switch (t) {
    case GGML_TYPE_Q8_0:
        wr16(B + KG32_D + 2 * r, rb->d);
        for (int s = 0; s < 8; s++)
            memcpy(B + 32 + KERN_STEP * s + 4 * r, rb->q + 4 * s, 4);
        break;
    case GGML_TYPE_Q4_0:
        wr16(B + KG32_D + 2 * r, rb->d);
        put_nibbles32(B + 32, r, rb->q);
        break;
    case GGML_TYPE_Q4_1:
        wr16(B + KG32_D + 2 * r, rb->d);
        wr16(B + KG32_M + 2 * r, rb->m);
        put_nibbles32(B + 64, r, rb->q);
        break;
    case GGML_TYPE_Q5_0:
        wr16(B + KG32_D + 2 * r, rb->d);
        put_high32(B + 32, r, rb->q);
        put_nibbles32(B + 96, r, rb->q);
        break;
    case GGML_TYPE_Q5_1:
        wr16(B + KG32_D + 2 * r, rb->d);
        wr16(B + KG32_M + 2 * r, rb->m);
        put_high32(B + 64, r, rb->q);
        put_nibbles32(B + 128, r, rb->q);
        break;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K:
        wr16(B + KGK_D + 2 * r, rb->d);
        wr16(B + KGK_DMIN + 2 * r, rb->m);
        for (int j = 0; j < 8; j++)
            B[KGK_SC + 16 * j + r] = rb->sc[j];
        for (int p = 0; p < 4; p++) {
            B[KGK_MN + 32 * p + 2 * r] = rb->mn[2 * p];
            B[KGK_MN + 32 * p + 2 * r + 1] = rb->mn[2 * p + 1];
        }
        for (int c = 0; c < 4; c++)
            for (int s = 0; s < 8; s++) {
                uint8_t *q = B + KGK_Q + KERN_STEP * (8 * c + s) + 4 * r;
                uint8_t *qh = B + KGK_QH + 16 * (8 * c + s);
                for (int j = 0; j < 4; j++) {
                    const uint8_t lo = rb->q[64 * c + 4 * s + j], hi = rb->q[64 * c + 32 + 4 * s + j];
                    q[j] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
                    if (t == GGML_TYPE_Q5_K) {
                        uint64_t m0 = rd64(qh), m1 = rd64(qh + 8);
                        if (lo & 0x10)
                            m0 |= 1ull << (4 * r + j);
                        if (hi & 0x10)
                            m1 |= 1ull << (4 * r + j);
                        memcpy(qh, &m0, 8);
                        memcpy(qh + 8, &m1, 8);
                    }
                }
            }
        break;
    case GGML_TYPE_Q6_K:
        wr16(B + KG6_D + 2 * r, rb->d);
        for (int g = 0; g < 16; g++)
            B[KG6_SC + 16 * g + r] = rb->sc[g];
        for (int c = 0; c < 4; c++) {
            for (int s = 0; s < 8; s++) {
                uint8_t *q = B + KG6_QL + KERN_STEP * (8 * c + s) + 4 * r;
                for (int j = 0; j < 4; j++)
                    q[j] = (uint8_t)((rb->q[64 * c + 4 * s + j] & 0xF) |
                                     ((rb->q[64 * c + 32 + 4 * s + j] & 0xF) << 4));
            }
            for (int s = 0; s < 4; s++) {
                uint8_t *qh = B + KG6_QH + KERN_STEP * (4 * c + s) + 4 * r;
                for (int j = 0; j < 4; j++) {
                    const int v = 64 * c + 4 * s + j;
                    qh[j] = (uint8_t)((rb->q[v] >> 4) | ((rb->q[v + 16] >> 4) << 2) |
                                      ((rb->q[v + 32] >> 4) << 4) | ((rb->q[v + 48] >> 4) << 6));
                }
            }
        }
        break;
    default: break;
    }
}

void kern_weight_pack(kern_weight *w, const void *src, int64_t g0, int64_t g1)
{
    if (!w->mem)
        return;
    const size_t bb = kern_group_block_bytes(w->type);
    if (!bb) { /* dense: the rows as they are */
        const int64_t r0 = g0 * KERN_GROUP;
        const int64_t r1 = g1 * KERN_GROUP < w->rows ? g1 * KERN_GROUP : w->rows;
        if (r0 < r1)
            memcpy((uint8_t *)w->mem + (size_t)r0 * w->row_bytes,
                   (const uint8_t *)src + (size_t)r0 * w->row_bytes,
                   (size_t)(r1 - r0) * w->row_bytes);
        return;
    }
    const int64_t bs = (int64_t)ggml_type_block_size(w->type);
    const int64_t nb = w->k / bs;
    row_block rb;
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *G = (uint8_t *)w->mem + (size_t)g * w->group_bytes;
        memset(G, 0, w->group_bytes);
        for (int r = 0; r < KERN_GROUP; r++) {
            const int64_t row = g * KERN_GROUP + r;
            for (int64_t b = 0; b < nb; b++) {
                if (row < w->rows) {
                    decode_block(w->type, (const uint8_t *)src + (size_t)row * w->row_bytes, b, &rb);
                } else {
                    memset(&rb, 0, sizeof(rb));
                    if (w->type == GGML_TYPE_Q8_0)
                        memset(rb.q, 128, 32); /* value 0 */
                }
                pack_row_block(w->type, G + (size_t)b * bb, r, &rb);
            }
        }
    }
}

/* ---------------------------------------------------------------- matmul, 32-value blocks */

/* isum[r] += sum over 8 steps of q[s][4r+j] * a[4s+j]; q points at step 0, unsigned values
 * taken from the given nibble (0: whole byte, 1: low nibble of steps 0-3 then high, see
 * the layouts). */
static void steps8(const uint8_t *q, int nib, const uint8_t *qh, const int8_t *a, int32_t *isum)
{
    for (int s = 0; s < 8; s++) {
        for (int r = 0; r < KERN_GROUP; r++) {
            for (int j = 0; j < 4; j++) {
                int v;
                if (!nib)
                    v = q[KERN_STEP * s + 4 * r + j];
                else if (s < 4)
                    v = q[KERN_STEP * s + 4 * r + j] & 0xF;
                else
                    v = q[KERN_STEP * (s - 4) + 4 * r + j] >> 4;
                if (qh && ((rd64(qh + 8 * s) >> (4 * r + j)) & 1))
                    v |= 0x10;
                isum[r] += v * a[4 * s + j];
            }
        }
    }
}

/* The 32-value types. Per output and block: isum exact, then acc = fma(isum, d_w * d_a, acc)
 * (and for Q4_1/Q5_1 acc = fma(m_w, s_a, acc)): ggml's AMX formula. */
static void gemm_a32(const kern_weight *w, const void *acts, size_t as, int64_t nt, float *out,
                     size_t os, int64_t g0, int64_t g1)
{
    const ggml_type t = w->type;
    const kern_act_layout L = kern_act_a32(w->k);
    const int64_t nb = w->k / 32;
    const size_t bb = kern_group_block_bytes(t);
    const bool has_m = t == GGML_TYPE_Q4_1 || t == GGML_TYPE_Q5_1;
    const size_t qoff = t == GGML_TYPE_Q8_0 ? 32 : t == GGML_TYPE_Q4_0 ? 32 : t == GGML_TYPE_Q4_1 ? 64 : t == GGML_TYPE_Q5_0 ? 96 : 128;
    const size_t hoff = t == GGML_TYPE_Q5_0 ? 32 : 64;
    const bool has_h = t == GGML_TYPE_Q5_0 || t == GGML_TYPE_Q5_1;
    for (int64_t g = g0; g < g1; g++) {
        const uint8_t *G = w->data + (size_t)g * w->group_bytes;
        for (int64_t tk = 0; tk < nt; tk++) {
            const uint8_t *a = (const uint8_t *)acts + (size_t)tk * as;
            float acc[KERN_GROUP] = {0};
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *B = G + (size_t)b * bb;
                int32_t isum[KERN_GROUP];
                const int32_t init = rd32(a + L.init + 4 * (size_t)b);
                for (int r = 0; r < KERN_GROUP; r++)
                    isum[r] = init;
                steps8(B + qoff, t != GGML_TYPE_Q8_0, has_h ? B + hoff : NULL,
                       (const int8_t *)a + L.qs + 32 * b, isum);
                const float ad = rdf(a + L.d + 4 * (size_t)b);
                for (int r = 0; r < KERN_GROUP; r++) {
                    acc[r] = fmaf((float)isum[r], h2f(rd16(B + KG32_D + 2 * r)) * ad, acc[r]);
                    if (has_m)
                        acc[r] = fmaf(h2f(rd16(B + KG32_M + 2 * r)), rdf(a + L.s + 4 * (size_t)b), acc[r]);
                }
            }
            kern_store_group(out + (size_t)tk * os, acc, g * KERN_GROUP, w->rows);
        }
    }
}

/* ---------------------------------------------------------------- matmul, K types */

/* Q4_K / Q5_K: per super-block s = sum_j sc_j * dot_j and sm = sum_j m_j * sum32_j (exact),
 * acc = fma(s, d * d_a, acc), acc = fma(-sm, dmin * d_a, acc). */
static void gemm_k45(const kern_weight *w, const void *acts, size_t as, int64_t nt, float *out,
                     size_t os, int64_t g0, int64_t g1)
{
    const bool q5 = w->type == GGML_TYPE_Q5_K;
    const kern_act_layout L = kern_act_a256(w->k);
    const int64_t nb = w->k / 256;
    const size_t bb = kern_group_block_bytes(w->type);
    for (int64_t g = g0; g < g1; g++) {
        const uint8_t *G = w->data + (size_t)g * w->group_bytes;
        for (int64_t tk = 0; tk < nt; tk++) {
            const uint8_t *a = (const uint8_t *)acts + (size_t)tk * as;
            float acc[KERN_GROUP] = {0};
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *B = G + (size_t)b * bb;
                const int8_t *qa = (const int8_t *)a + L.qs + 256 * b;
                int32_t isum[KERN_GROUP] = {0}, msum[KERN_GROUP] = {0};
                for (int c = 0; c < 4; c++) {
                    for (int half = 0; half < 2; half++) {
                        const int j = 2 * c + half;
                        for (int r = 0; r < KERN_GROUP; r++) {
                            int32_t dot = 0;
                            for (int s = 0; s < 8; s++)
                                for (int jj = 0; jj < 4; jj++) {
                                    const uint8_t byte = B[KGK_Q + KERN_STEP * (8 * c + s) + 4 * r + jj];
                                    int v = half ? byte >> 4 : byte & 0xF;
                                    if (q5 && ((rd64(B + KGK_QH + 16 * (8 * c + s) + 8 * half) >> (4 * r + jj)) & 1))
                                        v |= 0x10;
                                    dot += v * qa[64 * c + 32 * half + 4 * s + jj];
                                }
                            isum[r] += dot * B[KGK_SC + 16 * j + r];
                        }
                    }
                }
                for (int p = 0; p < 4; p++) {
                    const uint32_t pr = (uint32_t)rd32(a + L.pairs + 4 * (size_t)(4 * b + p));
                    const int32_t lo = (int16_t)(pr & 0xFFFF), hi = (int16_t)(pr >> 16);
                    for (int r = 0; r < KERN_GROUP; r++)
                        msum[r] += B[KGK_MN + 32 * p + 2 * r] * lo + B[KGK_MN + 32 * p + 2 * r + 1] * hi;
                }
                const float ad = rdf(a + L.d + 4 * (size_t)b);
                for (int r = 0; r < KERN_GROUP; r++) {
                    acc[r] = fmaf((float)isum[r], h2f(rd16(B + KGK_D + 2 * r)) * ad, acc[r]);
                    acc[r] = fmaf(-(float)msum[r], h2f(rd16(B + KGK_DMIN + 2 * r)) * ad, acc[r]);
                }
            }
            kern_store_group(out + (size_t)tk * os, acc, g * KERN_GROUP, w->rows);
        }
    }
}

/* Q6_K: s = sum_g sc_g * (dot_g - 32 * bsum_g) (exact), acc = fma(s, d * d_a, acc). */
static void gemm_q6_K(const kern_weight *w, const void *acts, size_t as, int64_t nt, float *out,
                      size_t os, int64_t g0, int64_t g1)
{
    const kern_act_layout L = kern_act_a256(w->k);
    const int64_t nb = w->k / 256;
    for (int64_t g = g0; g < g1; g++) {
        const uint8_t *G = w->data + (size_t)g * w->group_bytes;
        for (int64_t tk = 0; tk < nt; tk++) {
            const uint8_t *a = (const uint8_t *)acts + (size_t)tk * as;
            float acc[KERN_GROUP] = {0};
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *B = G + (size_t)b * KG_Q6_K_BYTES;
                const int8_t *qa = (const int8_t *)a + L.qs + 256 * b;
                int32_t isum[KERN_GROUP] = {0};
                /* per 16-value group: (c, half, quarter) -> values 64c + 32 half + 16 q4 */
                for (int c = 0; c < 4; c++)
                    for (int half = 0; half < 2; half++)
                        for (int q4 = 0; q4 < 2; q4++) {
                            const int grp = 4 * c + 2 * half + q4;
                            const int32_t q6off = rd32(a + L.q6off + 4 * (size_t)(16 * b + grp));
                            for (int r = 0; r < KERN_GROUP; r++) {
                                int32_t dot = q6off;
                                for (int s4 = 0; s4 < 4; s4++) {
                                    const int s = 4 * q4 + s4;
                                    for (int jj = 0; jj < 4; jj++) {
                                        const uint8_t byte = B[KG6_QL + KERN_STEP * (8 * c + s) + 4 * r + jj];
                                        const uint8_t hb = B[KG6_QH + KERN_STEP * (4 * c + s4) + 4 * r + jj];
                                        const int nib = half ? byte >> 4 : byte & 0xF;
                                        const int h2 = (hb >> (2 * (2 * half + q4))) & 3;
                                        dot += (nib | (h2 << 4)) * qa[64 * c + 32 * half + 4 * s + jj];
                                    }
                                }
                                isum[r] += dot * (int8_t)B[KG6_SC + 16 * grp + r];
                            }
                        }
                const float ad = rdf(a + L.d + 4 * (size_t)b);
                for (int r = 0; r < KERN_GROUP; r++)
                    acc[r] = fmaf((float)isum[r], h2f(rd16(B + KG6_D + 2 * r)) * ad, acc[r]);
            }
            kern_store_group(out + (size_t)tk * os, acc, g * KERN_GROUP, w->rows);
        }
    }
}

/* ---------------------------------------------------------------- dense types */

static inline float dense_w(ggml_type t, const uint8_t *row, int64_t i)
{
    if (t == GGML_TYPE_F32)
        return rdf(row + 4 * (size_t)i);
    const uint16_t h = rd16(row + 2 * (size_t)i);
    return t == GGML_TYPE_F16 ? h2f(h) : bf16_to_f32(h);
}

/* _mm512_reduce_add_ps's order: halves, quarters, then pairs. */
static float reduce16(const float *v)
{
    float u[8], q[4];
    for (int i = 0; i < 8; i++)
        u[i] = v[i + 8] + v[i];
    for (int i = 0; i < 4; i++)
        q[i] = u[i + 4] + u[i];
    return (q[0] + q[2]) + (q[1] + q[3]);
}

/* F32/F16/BF16 weights x f32 activations: value i goes to lane i % 16 by fma, then the lanes
 * are summed by reduce16 (ggml's AMX F16 kernel for F16). */
static void gemm_dense(const kern_weight *w, const void *acts, size_t as, int64_t nt, float *out,
                       size_t os, int64_t g0, int64_t g1)
{
    const int64_t r1 = g1 * KERN_GROUP < w->rows ? g1 * KERN_GROUP : w->rows;
    for (int64_t r = g0 * KERN_GROUP; r < r1; r++) {
        const uint8_t *row = w->data + (size_t)r * w->row_bytes;
        for (int64_t tk = 0; tk < nt; tk++) {
            const float *a = (const float *)((const uint8_t *)acts + (size_t)tk * as);
            float c[16] = {0};
            for (int64_t i = 0; i < w->k; i++)
                c[i % 16] = fmaf(dense_w(w->type, row, i), a[i], c[i % 16]);
            out[(size_t)tk * os + (size_t)r] = reduce16(c);
        }
    }
}

/* ---------------------------------------------------------------- table */

void kern_scalar_fill(kern_table *kt)
{
    memset(kt, 0, sizeof(*kt));
    kt->name = "scalar";
    static const ggml_type a32[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                    GGML_TYPE_Q5_0, GGML_TYPE_Q5_1};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(a32); i++)
        kt->gemm[a32[i]] = gemm_a32;
    quant_scalar_install(kt);
    kt->gemm[GGML_TYPE_Q4_K] = kt->gemm[GGML_TYPE_Q5_K] = gemm_k45;
    kt->gemm[GGML_TYPE_Q6_K] = gemm_q6_K;
    kt->quant[GGML_TYPE_F32] = kt->quant[GGML_TYPE_F16] = kt->quant[GGML_TYPE_BF16] = quant_f32;
    kt->gemm[GGML_TYPE_F32] = kt->gemm[GGML_TYPE_F16] = kt->gemm[GGML_TYPE_BF16] = gemm_dense;
}
