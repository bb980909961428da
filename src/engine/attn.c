/* attn.c: flash-style attention over the paged KV cache (attn.h). A work item is one KV head
 * of one sequence, a block of its query tokens (all the query heads that share that KV head,
 * so each K/V tile is read once for the whole group) and a range of KV positions. Per tile of
 * KV_BLOCK positions: K and V rows are converted to f32 once, scores S = Q K^T, the online
 * softmax update (running max m, sum l, rescaled accumulator), acc += P V. Items that cover
 * only part of the KV range leave (m, l, acc) for a merge pass. Each kernel has a scalar
 * definition; AVX2+FMA+F16C versions compute the same quantities (not the same bits). */
#include "base/common.h"

#include <math.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ATTN_X86 1
#define ATTN_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

#include "engine/attn.h"
#include "engine/ggml_types.h"

/* Query rows per item: tokens per item times the group size, about this many. */
#define ATTN_ROWS 64
/* Query rows up to which K and V are read straight from the cache rows (else converted to an
 * f32 tile once for all rows). */
#ifndef ATTN_DIRECT_ROWS
#define ATTN_DIRECT_ROWS 4
#endif
/* Fewest KV positions per chunk when an item's KV range is split. */
#define ATTN_MIN_CHUNK 256

typedef struct {
    uint32_t seg;
    uint32_t head;    /* KV head */
    uint32_t t0, t1;  /* query tokens */
    uint32_t k0, k1;  /* KV positions */
    int32_t part;     /* index of its partial result, -1: writes the output itself */
} attn_item;

typedef struct {
    uint32_t seg, head, t0, t1;
    uint32_t part0, n_parts;
} attn_merge;

typedef struct {
    float *q;    /* (rows_pad, d) queries of the item, pre-scaled */
    float *kf;   /* (KV_BLOCK + 1, d) K tile as f32 */
    float *vf;   /* (KV_BLOCK, d) V tile as f32 */
    float *s;    /* (rows_pad, KV_BLOCK + 2) scores, then weights */
    float *acc;  /* (rows_pad, d) */
    float *m;    /* (rows_pad) running max */
    float *l;    /* (rows_pad) running sum */
} attn_scratch;

struct attn_ctx {
    uint32_t n_head, n_head_kv, d, group;
    uint32_t qb;        /* query tokens per item */
    uint32_t rows_pad;  /* qb * group rounded up to 4 */
    uint32_t n_threads;
    uint32_t max_items, max_parts, max_merges;
    attn_scratch *ts;   /* (n_threads) */
    attn_item *items;
    attn_merge *merges;
    float *parts;       /* (max_parts, rows_pad * (d + 2)): m, l, acc per row */
    bool simd;
    /* the step being run */
    const attn_seg *segs;
    uint32_t layer;
    uint32_t n_items, n_merges;
};

/* ---------------------------------------------------------------- scalar kernels */

static void cvt_rows(ggml_type t, const uint8_t *src, size_t row_bytes, uint32_t n, uint32_t d,
                     float *dst)
{
    for (uint32_t r = 0; r < n; r++) {
        const uint8_t *p = src + (size_t)r * row_bytes;
        float *o = dst + (size_t)r * d;
        if (t == GGML_TYPE_F16) {
            const uint16_t *h = (const uint16_t *)p;
            for (uint32_t i = 0; i < d; i++)
                o[i] = fp16_to_f32(h[i]);
        } else { /* Q8_0: blocks of (f16 scale, 32 int8) */
            for (uint32_t b = 0; b < d / 32; b++) {
                const uint8_t *blk = p + (size_t)b * 34;
                uint16_t hs;
                memcpy(&hs, blk, 2);
                const float sc = fp16_to_f32(hs);
                const int8_t *qv = (const int8_t *)(blk + 2);
                for (uint32_t i = 0; i < 32; i++)
                    o[b * 32 + i] = sc * (float)qv[i];
            }
        }
    }
}

/* s[r * ss + j] = q_r . k_j for r < rows, j < n. */
static void qk_scalar(const float *q, uint32_t rows, const float *k, uint32_t n, uint32_t d,
                      float *s, uint32_t ss)
{
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t j = 0; j < n; j++) {
            float sum = 0.0f;
            for (uint32_t i = 0; i < d; i++)
                sum += q[(size_t)r * d + i] * k[(size_t)j * d + i];
            s[(size_t)r * ss + j] = sum;
        }
}

/* acc_r += sum_j p[r * ss + j] v_j for r < rows. */
static void pv_scalar(const float *p, uint32_t rows, uint32_t ss, const float *v, uint32_t n,
                      uint32_t d, float *acc)
{
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t j = 0; j < n; j++) {
            const float w = p[(size_t)r * ss + j];
            if (w == 0.0f)
                continue;
            for (uint32_t i = 0; i < d; i++)
                acc[(size_t)r * d + i] += w * v[(size_t)j * d + i];
        }
}

/* x[i] = exp(x[i] - m) for i < n; returns their sum. */
static float exp_sum_scalar(float *x, uint32_t n, float m)
{
    float sum = 0.0f;
    for (uint32_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    return sum;
}

/* ---------------------------------------------------------------- AVX2 kernels */

#ifdef ATTN_X86
ATTN_AVX2 static void cvt_f16_avx2(const uint8_t *src, size_t row_bytes, uint32_t n, uint32_t d,
                                   float *dst)
{
    for (uint32_t r = 0; r < n; r++) {
        const uint16_t *h = (const uint16_t *)(src + (size_t)r * row_bytes);
        float *o = dst + (size_t)r * d;
        for (uint32_t i = 0; i < d; i += 8)
            _mm256_storeu_ps(o + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    }
}

ATTN_AVX2 static void cvt_q8_avx2(const uint8_t *src, size_t row_bytes, uint32_t n, uint32_t d,
                                  float *dst)
{
    for (uint32_t r = 0; r < n; r++) {
        const uint8_t *p = src + (size_t)r * row_bytes;
        float *o = dst + (size_t)r * d;
        for (uint32_t b = 0; b < d / 32; b++) {
            const uint8_t *blk = p + (size_t)b * 34;
            uint16_t hs;
            memcpy(&hs, blk, 2);
            const __m256 sc = _mm256_set1_ps(_cvtsh_ss(hs));
            for (uint32_t i = 0; i < 32; i += 8) {
                __m128i b8 = _mm_loadl_epi64((const __m128i *)(blk + 2 + i));
                __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b8));
                _mm256_storeu_ps(o + b * 32 + i, _mm256_mul_ps(f, sc));
            }
        }
    }
}

/* The eight sums of a[0..7] in one vector: [sum a0, sum a1, ..., sum a7]. */
ATTN_AVX2 static __m256 hsum8(const __m256 a[8])
{
    __m256 t0 = _mm256_hadd_ps(a[0], a[1]);
    __m256 t1 = _mm256_hadd_ps(a[2], a[3]);
    __m256 t2 = _mm256_hadd_ps(a[4], a[5]);
    __m256 t3 = _mm256_hadd_ps(a[6], a[7]);
    t0 = _mm256_hadd_ps(t0, t1);
    t2 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(t0, t2, 0x20), _mm256_permute2f128_ps(t0, t2, 0x31));
}

/* qk_scalar for rows % 4 == 0, n % 2 == 0, d % 8 == 0. */
ATTN_AVX2 static void qk_avx2(const float *q, uint32_t rows, const float *k, uint32_t n,
                              uint32_t d, float *s, uint32_t ss)
{
    for (uint32_t r = 0; r < rows; r += 4) {
        const float *q0 = q + (size_t)r * d;
        for (uint32_t j = 0; j < n; j += 2) {
            const float *k0 = k + (size_t)j * d, *k1 = k0 + d;
            __m256 a[8];
            for (int x = 0; x < 8; x++)
                a[x] = _mm256_setzero_ps();
            for (uint32_t i = 0; i < d; i += 8) {
                const __m256 kv0 = _mm256_loadu_ps(k0 + i), kv1 = _mm256_loadu_ps(k1 + i);
                for (int x = 0; x < 4; x++) {
                    const __m256 qv = _mm256_loadu_ps(q0 + (size_t)x * d + i);
                    a[2 * x] = _mm256_fmadd_ps(qv, kv0, a[2 * x]);
                    a[2 * x + 1] = _mm256_fmadd_ps(qv, kv1, a[2 * x + 1]);
                }
            }
            float o[8];
            _mm256_storeu_ps(o, hsum8(a));
            for (int x = 0; x < 4; x++) {
                s[(size_t)(r + x) * ss + j] = o[2 * x];
                s[(size_t)(r + x) * ss + j + 1] = o[2 * x + 1];
            }
        }
    }
}

/* pv_scalar for rows % 4 == 0, d % 16 == 0. */
ATTN_AVX2 static void pv_avx2(const float *p, uint32_t rows, uint32_t ss, const float *v,
                              uint32_t n, uint32_t d, float *acc)
{
    for (uint32_t r = 0; r < rows; r += 4) {
        for (uint32_t i = 0; i < d; i += 16) {
            __m256 a[4][2];
            for (int x = 0; x < 4; x++) {
                a[x][0] = _mm256_loadu_ps(acc + (size_t)(r + x) * d + i);
                a[x][1] = _mm256_loadu_ps(acc + (size_t)(r + x) * d + i + 8);
            }
            for (uint32_t j = 0; j < n; j++) {
                const __m256 v0 = _mm256_loadu_ps(v + (size_t)j * d + i);
                const __m256 v1 = _mm256_loadu_ps(v + (size_t)j * d + i + 8);
                for (int x = 0; x < 4; x++) {
                    const __m256 w = _mm256_broadcast_ss(p + (size_t)(r + x) * ss + j);
                    a[x][0] = _mm256_fmadd_ps(w, v0, a[x][0]);
                    a[x][1] = _mm256_fmadd_ps(w, v1, a[x][1]);
                }
            }
            for (int x = 0; x < 4; x++) {
                _mm256_storeu_ps(acc + (size_t)(r + x) * d + i, a[x][0]);
                _mm256_storeu_ps(acc + (size_t)(r + x) * d + i + 8, a[x][1]);
            }
        }
    }
}

/* Eight f32 values of a cache row (f16 or q8_0) from value i (i % 8 == 0); t is a constant
 * in every caller, so each kernel below is compiled once per type. */
#define ATTN_INLINE ATTN_AVX2 static inline __attribute__((always_inline))
ATTN_INLINE __m256 ld8_row(ggml_type t, const uint8_t *row, uint32_t i)
{
    if (t == GGML_TYPE_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + (size_t)i * 2)));
    const uint8_t *blk = row + (size_t)(i / 32) * 34;
    const __m256 f = _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + i % 32))));
    return _mm256_mul_ps(f, _mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)blk)));
}

/* qk_avx2 reading the n keys straight from the cache rows (no f32 copy): kr + j * rb. */
ATTN_INLINE void prefetch_rows(const uint8_t *pf, size_t rb, uint32_t j, uint32_t k)
{
    for (size_t o = 0; o < (size_t)k * rb; o += 64)
        __builtin_prefetch(pf + (size_t)j * rb + o);
}

/* pf: NULL, or n rows (rb bytes apart) needed next, fetched along the way (the first pass). */
ATTN_INLINE void qk_direct(ggml_type t, const float *q, uint32_t rows, const uint8_t *kr,
                           size_t rb, uint32_t n, uint32_t d, float *s, uint32_t ss,
                           const uint8_t *pf)
{
    for (uint32_t r = 0; r < rows; r += 4) {
        const float *q0 = q + (size_t)r * d;
        for (uint32_t j = 0; j < n; j += 2) {
            if (pf && r == 0)
                prefetch_rows(pf, rb, j, j + 1 < n ? 2 : 1);
            const uint8_t *k0 = kr + (size_t)j * rb;
            const uint8_t *k1 = j + 1 < n ? k0 + rb : k0;
            __m256 a[8];
            for (int x = 0; x < 8; x++)
                a[x] = _mm256_setzero_ps();
            for (uint32_t i = 0; i < d; i += 8) {
                const __m256 kv0 = ld8_row(t, k0, i), kv1 = ld8_row(t, k1, i);
                for (int x = 0; x < 4; x++) {
                    const __m256 qv = _mm256_loadu_ps(q0 + (size_t)x * d + i);
                    a[2 * x] = _mm256_fmadd_ps(qv, kv0, a[2 * x]);
                    a[2 * x + 1] = _mm256_fmadd_ps(qv, kv1, a[2 * x + 1]);
                }
            }
            float o[8];
            _mm256_storeu_ps(o, hsum8(a));
            for (int x = 0; x < 4; x++) {
                s[(size_t)(r + x) * ss + j] = o[2 * x];
                s[(size_t)(r + x) * ss + j + 1] = o[2 * x + 1];
            }
        }
    }
}

/* pv_avx2 reading the n values straight from the cache rows: vr + j * rb. */
ATTN_INLINE void pv_direct(ggml_type t, const float *p, uint32_t rows, uint32_t ss,
                           const uint8_t *vr, size_t rb, uint32_t n, uint32_t d, float *acc,
                           const uint8_t *pf, uint32_t n_pf)
{
    for (uint32_t r = 0; r < rows; r += 4) {
        for (uint32_t i = 0; i < d; i += 16) {
            __m256 a[4][2];
            for (int x = 0; x < 4; x++) {
                a[x][0] = _mm256_loadu_ps(acc + (size_t)(r + x) * d + i);
                a[x][1] = _mm256_loadu_ps(acc + (size_t)(r + x) * d + i + 8);
            }
            for (uint32_t j = 0; j < n; j++) {
                if (pf && r == 0 && i == 0 && j < n_pf)
                    prefetch_rows(pf, rb, j, 1);
                const uint8_t *row = vr + (size_t)j * rb;
                const __m256 v0 = ld8_row(t, row, i), v1 = ld8_row(t, row, i + 8);
                for (int x = 0; x < 4; x++) {
                    const __m256 w = _mm256_broadcast_ss(p + (size_t)(r + x) * ss + j);
                    a[x][0] = _mm256_fmadd_ps(w, v0, a[x][0]);
                    a[x][1] = _mm256_fmadd_ps(w, v1, a[x][1]);
                }
            }
            for (int x = 0; x < 4; x++) {
                _mm256_storeu_ps(acc + (size_t)(r + x) * d + i, a[x][0]);
                _mm256_storeu_ps(acc + (size_t)(r + x) * d + i + 8, a[x][1]);
            }
        }
    }
}

ATTN_AVX2 static void qk_direct_f16(const float *q, uint32_t rows, const uint8_t *kr, size_t rb,
                                    uint32_t n, uint32_t d, float *s, uint32_t ss,
                                    const uint8_t *pf)
{
    qk_direct(GGML_TYPE_F16, q, rows, kr, rb, n, d, s, ss, pf);
}

ATTN_AVX2 static void qk_direct_q8(const float *q, uint32_t rows, const uint8_t *kr, size_t rb,
                                   uint32_t n, uint32_t d, float *s, uint32_t ss,
                                   const uint8_t *pf)
{
    qk_direct(GGML_TYPE_Q8_0, q, rows, kr, rb, n, d, s, ss, pf);
}

ATTN_AVX2 static void pv_direct_f16(const float *p, uint32_t rows, uint32_t ss, const uint8_t *vr,
                                    size_t rb, uint32_t n, uint32_t d, float *acc,
                                    const uint8_t *pf, uint32_t n_pf)
{
    pv_direct(GGML_TYPE_F16, p, rows, ss, vr, rb, n, d, acc, pf, n_pf);
}

ATTN_AVX2 static void pv_direct_q8(const float *p, uint32_t rows, uint32_t ss, const uint8_t *vr,
                                   size_t rb, uint32_t n, uint32_t d, float *acc,
                                   const uint8_t *pf, uint32_t n_pf)
{
    pv_direct(GGML_TYPE_Q8_0, p, rows, ss, vr, rb, n, d, acc, pf, n_pf);
}

/* exp(x) for x <= 0 (0 below -87.3, so exp(-inf) = 0): x = n ln2 + r, |r| <= ln2/2,
 * e^r by its Taylor polynomial to r^7 (relative error < 2e-7), 2^n added to the exponent. */
ATTN_AVX2 static __m256 exp_avx2(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.3f);
    const __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
    x = _mm256_max_ps(x, lo);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.0f / 5040.0f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f / 720.0f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f / 120.0f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f / 24.0f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f / 6.0f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(0.5f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e));
    return _mm256_and_ps(y, keep);
}

ATTN_AVX2 static float max_avx2(const float *x, uint32_t n)
{
    __m256 m = _mm256_set1_ps(-INFINITY);
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8)
        m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    float t[8];
    _mm256_storeu_ps(t, m);
    float r = t[0];
    for (int k = 1; k < 8; k++)
        r = t[k] > r ? t[k] : r;
    for (; i < n; i++)
        r = x[i] > r ? x[i] : r;
    return r;
}

ATTN_AVX2 static float exp_sum_avx2(float *x, uint32_t n, float m)
{
    const __m256 mv = _mm256_set1_ps(m);
    __m256 sum = _mm256_setzero_ps();
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    float t[8];
    _mm256_storeu_ps(t, sum);
    float s = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    for (; i < n; i++) {
        x[i] = expf(x[i] - m);
        s += x[i];
    }
    return s;
}
#endif

/* ---------------------------------------------------------------- context */

loco_status attn_new(uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t n_threads,
                     uint32_t max_tokens, uint32_t max_segs, attn_ctx **out, loco_err *err)
{
    attn_ctx *a = calloc(1, sizeof(*a));
    if (!a)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    a->n_head = n_head;
    a->n_head_kv = n_head_kv;
    a->d = head_dim;
    a->group = n_head / n_head_kv;
    a->qb = a->group >= ATTN_ROWS ? 1 : ATTN_ROWS / a->group;
    a->rows_pad = (a->qb * a->group + 3) & ~3u;
    a->n_threads = n_threads ? n_threads : 1;
    if (!max_segs)
        max_segs = 1;
    /* items without splitting: one per (segment, KV head, query block) */
    uint32_t blocks = max_tokens / a->qb + max_segs;
    a->max_parts = 8 * a->n_threads;
    a->max_items = blocks * n_head_kv + a->max_parts;
    a->max_merges = a->max_parts;
    a->items = calloc(a->max_items, sizeof(attn_item));
    a->merges = calloc(a->max_merges, sizeof(attn_merge));
    a->parts = malloc((size_t)a->max_parts * a->rows_pad * (head_dim + 2) * sizeof(float));
    a->ts = calloc(a->n_threads, sizeof(attn_scratch));
    bool ok = a->items && a->merges && a->parts && a->ts;
    for (uint32_t t = 0; ok && t < a->n_threads; t++) {
        attn_scratch *s = &a->ts[t];
        s->q = malloc((size_t)a->rows_pad * head_dim * sizeof(float));
        s->kf = malloc((size_t)(KV_BLOCK + 1) * head_dim * sizeof(float));
        s->vf = malloc((size_t)KV_BLOCK * head_dim * sizeof(float));
        s->s = malloc((size_t)a->rows_pad * (KV_BLOCK + 2) * sizeof(float));
        s->acc = malloc((size_t)a->rows_pad * head_dim * sizeof(float));
        s->m = malloc((size_t)a->rows_pad * sizeof(float));
        s->l = malloc((size_t)a->rows_pad * sizeof(float));
        ok = s->q && s->kf && s->vf && s->s && s->acc && s->m && s->l;
    }
    if (!ok) {
        attn_free(a);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
#ifdef ATTN_X86
    __builtin_cpu_init();
    a->simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
              head_dim % 16 == 0;
#endif
    *out = a;
    return LOCO_OK;
}

void attn_free(attn_ctx *a)
{
    if (!a)
        return;
    for (uint32_t t = 0; a->ts && t < a->n_threads; t++) {
        attn_scratch *s = &a->ts[t];
        free(s->q);
        free(s->kf);
        free(s->vf);
        free(s->s);
        free(s->acc);
        free(s->m);
        free(s->l);
    }
    free(a->ts);
    free(a->items);
    free(a->merges);
    free(a->parts);
    free(a);
}

void attn_force_scalar(attn_ctx *a, bool on)
{
    if (on)
        a->simd = false;
#ifdef ATTN_X86
    else
        a->simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  a->d % 16 == 0;
#endif
}

/* ---------------------------------------------------------------- one item */

static void cvt_tile(const attn_ctx *a, ggml_type t, const uint8_t *src, size_t row_bytes,
                     uint32_t n, float *dst)
{
#ifdef ATTN_X86
    if (a->simd) {
        if (t == GGML_TYPE_F16)
            cvt_f16_avx2(src, row_bytes, n, a->d, dst);
        else
            cvt_q8_avx2(src, row_bytes, n, a->d, dst);
        return;
    }
#endif
    cvt_rows(t, src, row_bytes, n, a->d, dst);
}

static void run_item(attn_ctx *a, const attn_item *it, attn_scratch *sc)
{
    const attn_seg *sg = &a->segs[it->seg];
    const uint32_t d = a->d, G = a->group, ss = KV_BLOCK + 2;
    const uint32_t rows = (it->t1 - it->t0) * G, rows4 = (rows + 3) & ~3u;
    const size_t qstride = (size_t)a->n_head * d;
    const float scale = 1.0f / sqrtf((float)d);

    /* queries of the group, pre-scaled; padding rows are zero */
    for (uint32_t t = it->t0; t < it->t1; t++)
        for (uint32_t h = 0; h < G; h++) {
            const float *src = sg->q + (size_t)t * qstride + (size_t)(it->head * G + h) * d;
            float *dst = sc->q + (size_t)((t - it->t0) * G + h) * d;
            for (uint32_t i = 0; i < d; i++)
                dst[i] = src[i] * scale;
        }
    memset(sc->q + (size_t)rows * d, 0, (size_t)(rows4 - rows) * d * sizeof(float));
    memset(sc->acc, 0, (size_t)rows4 * d * sizeof(float));
    for (uint32_t r = 0; r < rows4; r++) {
        sc->m[r] = -INFINITY;
        sc->l[r] = 0.0f;
    }

    const ggml_type kt = kv_seq_type(sg->seq);
    const size_t rb = kv_seq_row_bytes(sg->seq);
    for (uint32_t kb = it->k0; kb < it->k1;) {
        const uint32_t blk = kb / KV_BLOCK, off = kb % KV_BLOCK;
        uint32_t ke = (blk + 1) * KV_BLOCK;
        if (ke > it->k1)
            ke = it->k1;
        const uint32_t n = ke - kb, n2 = (n + 1) & ~1u;
        /* rows of tokens that see none of [kb, ke) are skipped: token t sees up to pos0 + t */
        uint32_t t_first = kb > sg->pos0 ? kb - sg->pos0 : 0;
        if (t_first < it->t0)
            t_first = it->t0;
        if (t_first >= it->t1) {
            kb = ke;
            continue;
        }
        const uint32_t r0 = ((t_first - it->t0) * G) & ~3u;
        const uint32_t nr = rows4 - r0;

        const uint8_t *kp = kv_seq_k(sg->seq, a->layer, it->head, blk) + (size_t)off * rb;
        const uint8_t *vp = kv_seq_v(sg->seq, a->layer, it->head, blk) + (size_t)off * rb;
        /* the next tile is in another block, far away: fetched while this one computes */
        const uint8_t *nk = NULL;
        uint32_t n_next = 0;
        if (ke < it->k1) {
            nk = kv_seq_k(sg->seq, a->layer, it->head, blk + 1);
            n_next = it->k1 - ke < KV_BLOCK ? it->k1 - ke : KV_BLOCK;
        }
        float *S = sc->s + (size_t)r0 * ss;
        /* few query rows (decoding): straight from the cache rows; many: through an f32 copy
         * of the tile, converted once for all of them */
        const bool direct = a->simd && nr <= ATTN_DIRECT_ROWS;
#ifdef ATTN_X86
        if (direct) {
            (kt == GGML_TYPE_F16 ? qk_direct_f16 : qk_direct_q8)(sc->q + (size_t)r0 * d, nr, kp,
                                                                 rb, n, d, S, ss, vp);
        } else
#endif
        {
            for (size_t o = 0; nk && o < (size_t)n_next * rb; o += 64) {
                __builtin_prefetch(nk + o);
                __builtin_prefetch(kv_seq_v(sg->seq, a->layer, it->head, blk + 1) + o);
            }
            cvt_tile(a, kt, kp, rb, n, sc->kf);
            if (n2 > n)
                memset(sc->kf + (size_t)n * d, 0, (size_t)d * sizeof(float));
#ifdef ATTN_X86
            if (a->simd)
                qk_avx2(sc->q + (size_t)r0 * d, nr, sc->kf, n2, d, S, ss);
            else
#endif
                qk_scalar(sc->q + (size_t)r0 * d, nr, sc->kf, n, d, S, ss);
        }

        for (uint32_t r = r0; r < rows; r++) {
            float *srow = sc->s + (size_t)r * ss;
            const uint32_t t = it->t0 + r / G;
            const uint32_t lim = sg->pos0 + t; /* last visible position */
            uint32_t nv = lim >= ke ? n : lim + 1 > kb ? lim + 1 - kb : 0;
            if (!nv) {
                memset(srow, 0, n * sizeof(float));
                continue;
            }
            float mt;
#ifdef ATTN_X86
            if (a->simd) {
                mt = max_avx2(srow, nv);
            } else
#endif
            {
                mt = srow[0];
                for (uint32_t j = 1; j < nv; j++)
                    mt = srow[j] > mt ? srow[j] : mt;
            }
            const float mn = mt > sc->m[r] ? mt : sc->m[r];
            if (mn > sc->m[r] && sc->m[r] != -INFINITY) {
                const float corr = expf(sc->m[r] - mn);
                sc->l[r] *= corr;
                float *ar = sc->acc + (size_t)r * d;
                for (uint32_t i = 0; i < d; i++)
                    ar[i] *= corr;
            }
            sc->m[r] = mn;
            float sum;
#ifdef ATTN_X86
            if (a->simd)
                sum = exp_sum_avx2(srow, nv, mn);
            else
#endif
                sum = exp_sum_scalar(srow, nv, mn);
            sc->l[r] += sum;
            for (uint32_t j = nv; j < n; j++)
                srow[j] = 0.0f;
        }
        for (uint32_t r = rows; r < rows4; r++)
            memset(sc->s + (size_t)r * ss, 0, n * sizeof(float));

#ifdef ATTN_X86
        if (direct) {
            (kt == GGML_TYPE_F16 ? pv_direct_f16 : pv_direct_q8)(S, nr, ss, vp, rb, n, d,
                                                                 sc->acc + (size_t)r0 * d, nk,
                                                                 n_next);
        } else
#endif
        {
            cvt_tile(a, kt, vp, rb, n, sc->vf);
#ifdef ATTN_X86
            if (a->simd)
                pv_avx2(S, nr, ss, sc->vf, n, d, sc->acc + (size_t)r0 * d);
            else
#endif
                pv_scalar(S, nr, ss, sc->vf, n, d, sc->acc + (size_t)r0 * d);
        }
        kb = ke;
    }

    if (it->part >= 0) {
        float *pp = a->parts + (size_t)it->part * a->rows_pad * (d + 2);
        for (uint32_t r = 0; r < rows; r++) {
            float *pr = pp + (size_t)r * (d + 2);
            pr[0] = sc->m[r];
            pr[1] = sc->l[r];
            memcpy(pr + 2, sc->acc + (size_t)r * d, d * sizeof(float));
        }
        return;
    }
    for (uint32_t r = 0; r < rows; r++) {
        const uint32_t t = it->t0 + r / G, h = it->head * G + r % G;
        float *o = sg->out + (size_t)t * qstride + (size_t)h * d;
        const float inv = sc->l[r] > 0.0f ? 1.0f / sc->l[r] : 0.0f;
        const float *ar = sc->acc + (size_t)r * d;
        for (uint32_t i = 0; i < d; i++)
            o[i] = ar[i] * inv;
    }
}

static void merge_one(attn_ctx *a, const attn_merge *mg)
{
    const attn_seg *sg = &a->segs[mg->seg];
    const uint32_t d = a->d, G = a->group;
    const size_t qstride = (size_t)a->n_head * d, pstride = (size_t)a->rows_pad * (d + 2);
    const uint32_t rows = (mg->t1 - mg->t0) * G;
    for (uint32_t r = 0; r < rows; r++) {
        float M = -INFINITY;
        for (uint32_t p = 0; p < mg->n_parts; p++) {
            const float m = a->parts[(mg->part0 + p) * pstride + (size_t)r * (d + 2)];
            M = m > M ? m : M;
        }
        const uint32_t t = mg->t0 + r / G, h = mg->head * G + r % G;
        float *o = sg->out + (size_t)t * qstride + (size_t)h * d;
        memset(o, 0, d * sizeof(float));
        float L = 0.0f;
        for (uint32_t p = 0; p < mg->n_parts; p++) {
            const float *pr = a->parts + (mg->part0 + p) * pstride + (size_t)r * (d + 2);
            if (pr[0] == -INFINITY)
                continue;
            const float w = expf(pr[0] - M);
            L += w * pr[1];
            for (uint32_t i = 0; i < d; i++)
                o[i] += w * pr[2 + i];
        }
        const float inv = L > 0.0f ? 1.0f / L : 0.0f;
        for (uint32_t i = 0; i < d; i++)
            o[i] *= inv;
    }
}

static void item_task(void *ctx, int32_t task, int32_t thread)
{
    attn_ctx *a = ctx;
    run_item(a, &a->items[task], &a->ts[thread]);
}

static void merge_task(void *ctx, int32_t task, int32_t thread)
{
    LOCO_UNUSED(thread);
    attn_ctx *a = ctx;
    merge_one(a, &a->merges[task]);
}

static void run_tasks(tpool *pool, int32_t n, tpool_fn fn, void *ctx)
{
    if (pool && n > 1 && tpool_run(pool, n, fn, ctx) == LOCO_OK)
        return;
    for (int32_t i = 0; i < n; i++)
        fn(ctx, i, 0);
}

void attn_forward(attn_ctx *a, tpool *pool, uint32_t layer, const attn_seg *segs,
                  uint32_t n_segs)
{
    a->segs = segs;
    a->layer = layer;
    /* items without splitting */
    uint32_t n_plain = 0;
    for (uint32_t s = 0; s < n_segs; s++)
        n_plain += (segs[s].n + a->qb - 1) / a->qb * a->n_head_kv;
    /* too few for the threads (decoding): split the KV range of each into chunks */
    const uint32_t want = 4 * a->n_threads;
    uint32_t split = 1;
    if (n_plain && n_plain < want) {
        split = (want + n_plain - 1) / n_plain;
        if (split * n_plain > a->max_parts)
            split = a->max_parts / n_plain;
        if (split < 1)
            split = 1;
    }
    uint32_t ni = 0, np = 0, nm = 0;
    for (uint32_t s = 0; s < n_segs; s++) {
        const attn_seg *sg = &segs[s];
        for (uint32_t t0 = 0; t0 < sg->n; t0 += a->qb) {
            const uint32_t t1 = t0 + a->qb < sg->n ? t0 + a->qb : sg->n;
            const uint32_t kend = sg->pos0 + t1; /* positions [0, kend) */
            uint32_t chunks = split;
            if (chunks > 1) {
                uint32_t max_c = kend / ATTN_MIN_CHUNK;
                chunks = chunks < max_c ? chunks : max_c;
            }
            if (chunks < 2) {
                for (uint32_t h = 0; h < a->n_head_kv; h++) {
                    LOCO_ASSERT(ni < a->max_items);
                    a->items[ni++] = (attn_item){s, h, t0, t1, 0, kend, -1};
                }
                continue;
            }
            /* chunk bounds on whole blocks */
            const uint32_t nblk = (kend + KV_BLOCK - 1) / KV_BLOCK;
            for (uint32_t h = 0; h < a->n_head_kv; h++) {
                LOCO_ASSERT(nm < a->max_merges && np + chunks <= a->max_parts);
                a->merges[nm++] = (attn_merge){s, h, t0, t1, np, chunks};
                for (uint32_t c = 0; c < chunks; c++) {
                    uint32_t b0 = nblk * c / chunks, b1 = nblk * (c + 1) / chunks;
                    uint32_t k0 = b0 * KV_BLOCK, k1 = b1 * KV_BLOCK < kend ? b1 * KV_BLOCK : kend;
                    LOCO_ASSERT(ni < a->max_items);
                    a->items[ni++] = (attn_item){s, h, t0, t1, k0, k1, (int32_t)np++};
                }
            }
        }
    }
    a->n_items = ni;
    a->n_merges = nm;
    run_tasks(pool, (int32_t)ni, item_task, a);
    if (nm)
        run_tasks(pool, (int32_t)nm, merge_task, a);
}
