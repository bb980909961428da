/* attn.c: flash-style attention over the paged KV cache (attn.h). A work item is one KV head of
 * one sequence, a block of its query tokens (all the query heads that share that KV head, so each
 * K/V tile is read once for the whole group) and a range of KV positions. Per tile of ATTN_TILE
 * positions (a cache block holds several, contiguous per layer and head): K and V rows are
 * converted to f32 once, scores S = Q K^T, the online softmax update (running max m, sum l,
 * rescaled accumulator), acc += P V. Items that cover only part of the KV range leave (m, l, acc)
 * for a merge pass. Prompt items of the transposed kernels hold up to ATTN_GROUPS such query
 * blocks, sharing each converted K/V tile. Each kernel has a scalar definition; AVX2+FMA+F16C,
 * AVX-512 and AVX512_BF16 versions compute the same quantities (not the same bits). */
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
/* KV positions per tile: the unit the kernels compute on (its scores and converted rows stay
 * in L1/L2); a cache block (KV_BLOCK positions) holds whole tiles. */
#define ATTN_TILE 64
_Static_assert(KV_BLOCK % ATTN_TILE == 0, "a tile never crosses a cache block");
/* Fewest KV positions per chunk when an item's KV range is split. */
#define ATTN_MIN_CHUNK 256
/* Most query groups (ATTN_ROWS rows each) per prompt item of the transposed kernels: each
 * K/V tile is read and converted once for all of an item's groups. Deep in the context (every
 * sequence's chunk after at least ATTN_DEEP_POS cached positions) that reading is worth twice
 * the groups; nearer the start, half of them (more, smaller items balance the causal part).
 * bench_attn, AMD EPYC, 2 threads, 512 tokens, 8 vs 4 groups: depth 16K 7% faster (median of
 * 5 pairs), 4K 2%; at 512 the runs (15 ms) were too noisy to tell (0.6-1.6). */
#ifndef ATTN_GROUPS
#define ATTN_GROUPS 8
#endif
#define ATTN_DEEP_POS 4096

typedef struct {
    uint32_t seg;
    uint32_t head;    /* KV head */
    uint32_t t0, t1;  /* query tokens: up to qb, or ATTN_GROUPS * qb for the prompt kernels */
    uint32_t k0, k1;  /* KV positions */
    int32_t part;     /* index of its partial result, -1: writes the output itself */
} attn_item;

typedef struct {
    uint32_t seg, head, t0, t1;
    uint32_t part0, n_parts;
} attn_merge;

typedef struct {
    float *q;    /* (rows_pad, d) queries of the item, pre-scaled */
    float *kf;   /* (ATTN_TILE + 1, d) K tile as f32 */
    float *vf;   /* (ATTN_TILE, d) V tile as f32 */
    float *s;    /* (rows_pad, ATTN_TILE + 2) scores, then weights */
    float *acc;  /* (rows_pad, d) */
    float *m;    /* (rows_pad) running max */
    float *l;    /* (rows_pad) running sum */
    /* the transposed kernels' (per group: rows up to 64, padded to 16); m and l hold
     * (ATTN_GROUPS, 64) for them */
    uint32_t *bq; /* (ATTN_GROUPS, head_dim / 2, 64) query pairs; the f32 kernel's
                   * (ATTN_GROUPS, head_dim, 64) queries */
    uint32_t *bk; /* (ATTN_TILE, head_dim / 2) key pairs */
    uint32_t *bp; /* (ATTN_TILE / 2, 64) weight pairs */
    uint32_t *bv; /* (ATTN_TILE / 2, head_dim) value pairs */
    float *bs;    /* (ATTN_TILE, 64) scores */
    float *bmx;   /* (64) the scores' row maxima */
    float *bo;    /* (ATTN_GROUPS, head_dim, 64) output sums */
    float *bc;    /* (ATTN_GROUPS, 64) rescale factors */
    int32_t *blim;/* (ATTN_GROUPS, 64) last position each row sees */
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
    bool bf16;          /* AVX512_BF16 kernel for prompt items */
    bool qk8;           /* its scores by int8 products (AVX512_VNNI) */
    bool x512;          /* AVX-512 f32 kernels for decoding items */
    uint32_t max_groups;/* attn_force_groups's cap (0: by depth, ATTN_DEEP_POS) */
    /* the step being run */
    const attn_seg *segs;
    uint32_t layer;
    uint32_t n_items, n_merges;
};

/* The tile of an item's KV range [kb, k1) that starts at kb: its K and V rows (n positions, up
 * to the next multiple of ATTN_TILE), and the next tile's (n_next positions; NULL at the end of
 * the range), which the kernels fetch while they work on this one. */
typedef struct {
    const uint8_t *k, *v, *nk, *nv;
    uint32_t n, n_next;
} attn_tile;

static void tile_at(const kv_seq *seq, uint32_t layer, uint32_t head, uint32_t kb, uint32_t k1,
                    attn_tile *t)
{
    const size_t rb = kv_seq_row_bytes(seq);
    const uint32_t te = (kb / ATTN_TILE + 1) * ATTN_TILE, ke = te < k1 ? te : k1;
    t->n = ke - kb;
    t->k = kv_seq_k(seq, layer, head, kb / KV_BLOCK) + (size_t)(kb % KV_BLOCK) * rb;
    t->v = kv_seq_v(seq, layer, head, kb / KV_BLOCK) + (size_t)(kb % KV_BLOCK) * rb;
    t->nk = t->nv = NULL;
    t->n_next = 0;
    if (ke < k1) {
        t->n_next = k1 - ke < ATTN_TILE ? k1 - ke : ATTN_TILE;
        t->nk = kv_seq_k(seq, layer, head, ke / KV_BLOCK) + (size_t)(ke % KV_BLOCK) * rb;
        t->nv = kv_seq_v(seq, layer, head, ke / KV_BLOCK) + (size_t)(ke % KV_BLOCK) * rb;
    }
}

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

/* An item's result for its rows [r0, r0 + n), the sums of row r0 + r, dimension i at
 * acc[r * rs + i * is]: partial (m, l, sums) when the item covers part of the KV range (for
 * the merge), else the output sums / l. */
static void put_rows(const attn_ctx *a, const attn_item *it, uint32_t r0, uint32_t n,
                     const float *m, const float *l, const float *acc, size_t rs, size_t is)
{
    const attn_seg *sg = &a->segs[it->seg];
    const uint32_t d = a->d, G = a->group;
    if (it->part >= 0) {
        LOCO_ASSERT(r0 + n <= a->rows_pad);
        float *pp = a->parts + (size_t)it->part * a->rows_pad * (d + 2);
        for (uint32_t r = 0; r < n; r++) {
            float *pr = pp + (size_t)(r0 + r) * (d + 2);
            pr[0] = m[r];
            pr[1] = l[r];
            for (uint32_t i = 0; i < d; i++)
                pr[2 + i] = acc[r * rs + i * is];
        }
        return;
    }
    const size_t qstride = (size_t)a->n_head * d;
    for (uint32_t r = 0; r < n; r++) {
        const uint32_t t = it->t0 + (r0 + r) / G, h = it->head * G + (r0 + r) % G;
        float *o = sg->out + (size_t)t * qstride + (size_t)h * d;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        for (uint32_t i = 0; i < d; i++)
            o[i] = acc[r * rs + i * is] * inv;
    }
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

/* Eight f32 values of a cache row (f16 or q8_0) from value i (i % 8 == 0); sc: the scale of
 * the Q8_0 block holding i, broadcast (row_scale; unused for f16). t is a constant in every
 * caller, so each kernel below is compiled once per type. */
#define ATTN_INLINE ATTN_AVX2 static inline __attribute__((always_inline))
ATTN_INLINE __m256 ld8_row(ggml_type t, const uint8_t *row, uint32_t i, __m256 sc)
{
    if (t == GGML_TYPE_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + (size_t)i * 2)));
    const uint8_t *blk = row + (size_t)(i / 32) * 34;
    const __m256 f = _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + i % 32))));
    return _mm256_mul_ps(f, sc);
}

/* The scale of the Q8_0 block of a cache row holding value i, broadcast; zero for f16. Read
 * once a block (32 values) of a key, once per 16 values of a value row, rather than once per
 * 8 values: the same products (bit-equal), less work per value. Decoding at 16K from a Q8_0
 * cache on AMD Zen 3 (AVX2), `bench_attn 16384 1 2 q8_0 5 6 1`, 10 interleaved pairs: median
 * 5.51 -> 4.63 ms a layer (0.84); one thread 0.85. */
ATTN_INLINE __m256 row_scale(ggml_type t, const uint8_t *row, uint32_t i)
{
    if (t == GGML_TYPE_F16)
        return _mm256_setzero_ps();
    uint16_t h;
    memcpy(&h, row + (size_t)(i / 32) * 34, 2);
    return _mm256_set1_ps(_cvtsh_ss(h));
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
            for (uint32_t i0 = 0; i0 < d; i0 += 32) {
                const __m256 sc0 = row_scale(t, k0, i0), sc1 = row_scale(t, k1, i0);
#pragma GCC unroll 4
                for (uint32_t c = 0; c < 4; c++) {
                    const uint32_t i = i0 + 8 * c;
                    if (i >= d) /* f16 rows: d % 8 == 0 only */
                        break;
                    const __m256 kv0 = ld8_row(t, k0, i, sc0), kv1 = ld8_row(t, k1, i, sc1);
                    for (int x = 0; x < 4; x++) {
                        const __m256 qv = _mm256_loadu_ps(q0 + (size_t)x * d + i);
                        a[2 * x] = _mm256_fmadd_ps(qv, kv0, a[2 * x]);
                        a[2 * x + 1] = _mm256_fmadd_ps(qv, kv1, a[2 * x + 1]);
                    }
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
                const __m256 sc = row_scale(t, row, i); /* i and i + 8: one block */
                const __m256 v0 = ld8_row(t, row, i, sc), v1 = ld8_row(t, row, i + 8, sc);
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


/* ---------------------------------------------------------------- transposed kernels' groups */

/* The prompt kernels below work transposed, with vectors over query rows. An item may hold up
 * to ATTN_GROUPS query groups (a->qb tokens, up to 64 rows each): each K/V tile is converted
 * once and used by every group while it sits in L1/L2, instead of being streamed from memory
 * and converted once per group. Each group keeps its own queries, sums and softmax state; the
 * tile's scores and weights are scratch shared by the groups in turn. */
#ifdef ATTN_X86
typedef struct {
    uint32_t r0;         /* first row in the item */
    uint32_t rows;       /* rows, <= 64 */
    uint32_t RP;         /* rows padded to 16 */
    uint32_t *Qt;        /* (d, RP) f32 queries (t32) or (d / 2, RP) bf16 pairs */
    float *Ot;           /* (d, RP) sums */
    float *m, *l, *corr; /* (RP) running max, running sum, this tile's rescale factors */
    int32_t *lim;        /* (RP) last position each row sees; -1: padding */
} tgroup;

/* Splits an item into its groups (state reset, queries left to the caller); returns how many. */
static uint32_t tgroups_init(const attn_ctx *a, const attn_item *it, attn_scratch *sc,
                             tgroup *gs)
{
    const attn_seg *sg = &a->segs[it->seg];
    const uint32_t d = a->d, G = a->group, gr = a->qb * G;
    const uint32_t rows = (it->t1 - it->t0) * G, ng = (rows + gr - 1) / gr;
    LOCO_ASSERT(ng <= ATTN_GROUPS && gr <= 64);
    for (uint32_t g = 0; g < ng; g++) {
        tgroup *tg = &gs[g];
        tg->r0 = g * gr;
        tg->rows = rows - tg->r0 < gr ? rows - tg->r0 : gr;
        tg->RP = (tg->rows + 15) / 16 * 16;
        tg->Qt = sc->bq + (size_t)g * d * 64;
        tg->Ot = sc->bo + (size_t)g * d * 64;
        tg->m = sc->m + (size_t)g * 64;
        tg->l = sc->l + (size_t)g * 64;
        tg->corr = sc->bc + (size_t)g * 64;
        tg->lim = sc->blim + (size_t)g * 64;
        for (uint32_t r = 0; r < tg->RP; r++) {
            tg->lim[r] = r < tg->rows ? (int32_t)(sg->pos0 + it->t0 + (tg->r0 + r) / G) : -1;
            tg->m[r] = -INFINITY;
            tg->l[r] = 0.0f;
        }
        memset(tg->Ot, 0, (size_t)d * tg->RP * sizeof(float));
    }
    return ng;
}

/* Of the n keys from position kb, how many any row of the group sees (the rest lie past its
 * last row's position, masked for all of its rows): the tile on the causal diagonal is computed
 * only that far. At least 1 for a group that sees this tile. */
static inline uint32_t keys_seen(const tgroup *tg, uint32_t kb, uint32_t n)
{
    const int64_t last = tg->lim[tg->rows - 1];
    return (int64_t)kb + n - 1 > last ? (uint32_t)(last - kb + 1) : n;
}

/* Row r's query of an item (not yet scaled). */
static const float *item_q(const attn_ctx *a, const attn_item *it, uint32_t r)
{
    const attn_seg *sg = &a->segs[it->seg];
    const uint32_t G = a->group;
    return sg->q + (size_t)(it->t0 + r / G) * a->n_head * a->d +
           (size_t)(it->head * G + r % G) * a->d;
}

/* The next tile's K and V lines (bytes each), part `part` of `parts`: spread over the groups'
 * turns so the fetches overlap the work instead of queueing at once. */
static inline void prefetch_part(const uint8_t *k, const uint8_t *v, size_t bytes, uint32_t part,
                                 uint32_t parts)
{
    const size_t lines = (bytes + 63) / 64;
    for (size_t o = lines * part / parts; o < lines * (part + 1) / parts; o++) {
        __builtin_prefetch(k + o * 64);
        __builtin_prefetch(v + o * 64);
    }
}
#endif

/* ---------------------------------------------------------------- AVX2 f32 (prompts) */

/* Prompt chunks on CPUs without AVX512_BF16: the same transposed scheme as the BF16 kernel
 * with f32 FMA, 8 query rows a vector: Qt[i][row], St[key][row], Ot[i][row]. K and V tiles
 * are converted to f32 once per tile for all the item's groups; products and sums are f32, as
 * in the other fast kernels. */
#ifdef ATTN_X86
/* St[j][r] = sum_i K[j][i] Qt[i][r] for keys j0..j0+JB-1 and rows rv*8..rv*8+15. */
ATTN_INLINE void t32_qk_blk(const float *Qt, uint32_t RP, const float *K, uint32_t d, float *St,
                            uint32_t j0, uint32_t rv, const int JB)
{
    __m256 acc[6][2];
    for (int jb = 0; jb < JB; jb++)
        acc[jb][0] = acc[jb][1] = _mm256_setzero_ps();
    for (uint32_t i = 0; i < d; i++) {
        const __m256 q0 = _mm256_loadu_ps(Qt + (size_t)i * RP + rv * 8);
        const __m256 q1 = _mm256_loadu_ps(Qt + (size_t)i * RP + rv * 8 + 8);
        for (int jb = 0; jb < JB; jb++) {
            const __m256 k = _mm256_broadcast_ss(K + (size_t)(j0 + jb) * d + i);
            acc[jb][0] = _mm256_fmadd_ps(k, q0, acc[jb][0]);
            acc[jb][1] = _mm256_fmadd_ps(k, q1, acc[jb][1]);
        }
    }
    for (int jb = 0; jb < JB; jb++) {
        _mm256_storeu_ps(St + (size_t)(j0 + jb) * RP + rv * 8, acc[jb][0]);
        _mm256_storeu_ps(St + (size_t)(j0 + jb) * RP + rv * 8 + 8, acc[jb][1]);
    }
}

/* Ot[i][r] = Ot[i][r] corr[r] + sum_j V[j][i] St[j][r] for dims i0..i0+IB-1, rows rv*8..+15. */
ATTN_INLINE void t32_pv_blk(const float *St, uint32_t RP, const float *V, uint32_t d, uint32_t n,
                            float *Ot, const float *corr, uint32_t i0, uint32_t rv, const int IB)
{
    __m256 acc[6][2];
    const __m256 c0 = _mm256_loadu_ps(corr + rv * 8), c1 = _mm256_loadu_ps(corr + rv * 8 + 8);
    for (int ib = 0; ib < IB; ib++) {
        acc[ib][0] = _mm256_mul_ps(_mm256_loadu_ps(Ot + (size_t)(i0 + ib) * RP + rv * 8), c0);
        acc[ib][1] = _mm256_mul_ps(_mm256_loadu_ps(Ot + (size_t)(i0 + ib) * RP + rv * 8 + 8), c1);
    }
    for (uint32_t j = 0; j < n; j++) {
        const __m256 p0 = _mm256_loadu_ps(St + (size_t)j * RP + rv * 8);
        const __m256 p1 = _mm256_loadu_ps(St + (size_t)j * RP + rv * 8 + 8);
        for (int ib = 0; ib < IB; ib++) {
            const __m256 v = _mm256_broadcast_ss(V + (size_t)j * d + i0 + ib);
            acc[ib][0] = _mm256_fmadd_ps(v, p0, acc[ib][0]);
            acc[ib][1] = _mm256_fmadd_ps(v, p1, acc[ib][1]);
        }
    }
    for (int ib = 0; ib < IB; ib++) {
        _mm256_storeu_ps(Ot + (size_t)(i0 + ib) * RP + rv * 8, acc[ib][0]);
        _mm256_storeu_ps(Ot + (size_t)(i0 + ib) * RP + rv * 8 + 8, acc[ib][1]);
    }
}

ATTN_AVX2 static void t32_qk(const float *Qt, uint32_t RP, const float *K, uint32_t d, float *St,
                             uint32_t n)
{
    /* 6 keys a block; the rest of a 64-key tile in one block of 4 (blocks of 1 would wait on
     * the FMA latency) */
    for (uint32_t rv = 0; rv < RP / 8; rv += 2) {
        uint32_t j = 0;
        for (; j + 6 <= n; j += 6)
            t32_qk_blk(Qt, RP, K, d, St, j, rv, 6);
        if (j + 4 <= n) {
            t32_qk_blk(Qt, RP, K, d, St, j, rv, 4);
            j += 4;
        }
        for (; j < n; j++)
            t32_qk_blk(Qt, RP, K, d, St, j, rv, 1);
    }
}

ATTN_AVX2 static void t32_pv(const float *St, uint32_t RP, const float *V, uint32_t d,
                             uint32_t n, float *Ot, const float *corr)
{
    /* d % 16 == 0 (attn_new) */
    for (uint32_t rv = 0; rv < RP / 8; rv += 2)
        for (uint32_t i = 0; i < d; i += 4)
            t32_pv_blk(St, RP, V, d, n, Ot, corr, i, rv, 4);
}

/* Causal mask and online softmax of one group's scores St (n keys from position kb) in place:
 * St becomes the weights, (m, l) are updated and corr gets the rescale factors. */
ATTN_AVX2 static void t32_softmax(tgroup *tg, float *St, uint32_t kb, uint32_t n)
{
    const uint32_t RP = tg->RP;
    const bool masked = (int64_t)(kb + n - 1) > (int64_t)tg->lim[0];
    for (uint32_t v = 0; v < RP / 8; v++) {
        const __m256i lv = _mm256_loadu_si256((const __m256i *)(tg->lim + 8 * v));
        __m256 mt = _mm256_set1_ps(-INFINITY);
        for (uint32_t j = 0; j < n; j++) {
            float *sp = St + (size_t)j * RP + 8 * v;
            __m256 sv = _mm256_loadu_ps(sp);
            if (masked) {
                const __m256 hide = _mm256_castsi256_ps(
                    _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)(kb + j)), lv));
                sv = _mm256_blendv_ps(sv, _mm256_set1_ps(-INFINITY), hide);
                _mm256_storeu_ps(sp, sv);
            }
            mt = _mm256_max_ps(mt, sv);
        }
        const __m256 mo = _mm256_loadu_ps(tg->m + 8 * v);
        const __m256 mn = _mm256_max_ps(mo, mt);
        const __m256 none = _mm256_cmp_ps(mn, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ);
        /* rows that still see nothing keep corr 1 and weights 0 */
        const __m256 base = _mm256_blendv_ps(mn, _mm256_setzero_ps(), none);
        __m256 c = exp_avx2(_mm256_sub_ps(mo, base));
        c = _mm256_blendv_ps(c, _mm256_set1_ps(1.0f), none);
        __m256 sum = _mm256_setzero_ps();
        for (uint32_t j = 0; j < n; j++) {
            float *sp = St + (size_t)j * RP + 8 * v;
            __m256 pv = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(sp), base));
            pv = _mm256_blendv_ps(pv, _mm256_setzero_ps(), none);
            _mm256_storeu_ps(sp, pv);
            sum = _mm256_add_ps(sum, pv);
        }
        _mm256_storeu_ps(tg->m + 8 * v, mn);
        _mm256_storeu_ps(tg->l + 8 * v, _mm256_fmadd_ps(_mm256_loadu_ps(tg->l + 8 * v), c, sum));
        _mm256_storeu_ps(tg->corr + 8 * v, c);
    }
}

/* One prompt item (up to ATTN_GROUPS groups of up to 64 rows). */
ATTN_AVX2 static void run_item_t32(attn_ctx *a, const attn_item *it, attn_scratch *sc)
{
    const attn_seg *sg = &a->segs[it->seg];
    const uint32_t d = a->d;
    const float scale = 1.0f / sqrtf((float)d);
    const ggml_type kt = kv_seq_type(sg->seq);
    const size_t rb = kv_seq_row_bytes(sg->seq);
    tgroup gs[ATTN_GROUPS];
    const uint32_t ng = tgroups_init(a, it, sc, gs);
    for (uint32_t g = 0; g < ng; g++) {
        const tgroup *tg = &gs[g];
        float *Qt = (float *)tg->Qt;
        for (uint32_t r = 0; r < tg->RP; r++) {
            const float *q = r < tg->rows ? item_q(a, it, tg->r0 + r) : NULL;
            for (uint32_t i = 0; i < d; i++)
                Qt[(size_t)i * tg->RP + r] = q ? q[i] * scale : 0.0f;
        }
    }
    const int64_t last = gs[ng - 1].lim[gs[ng - 1].rows - 1];
    uint32_t g0 = 0; /* groups before g0 see none of this tile nor any later one */

    for (uint32_t kb = it->k0; kb < it->k1 && (int64_t)kb <= last;) {
        attn_tile tl;
        tile_at(sg->seq, a->layer, it->head, kb, it->k1, &tl);
        const uint32_t n = tl.n, ke = kb + n;
        while ((int64_t)kb > gs[g0].lim[gs[g0].rows - 1])
            g0++;
        const uint8_t *kp = tl.k, *vp = tl.v, *nk = tl.nk, *nv = tl.nv;
        if (kt == GGML_TYPE_F16) {
            cvt_f16_avx2(kp, rb, n, d, sc->kf);
            cvt_f16_avx2(vp, rb, n, d, sc->vf);
        } else {
            cvt_q8_avx2(kp, rb, n, d, sc->kf);
            cvt_q8_avx2(vp, rb, n, d, sc->vf);
        }
        for (uint32_t g = g0; g < ng; g++) {
            tgroup *tg = &gs[g];
            if (nk)
                prefetch_part(nk, nv, (size_t)tl.n_next * rb, g - g0, ng - g0);
            const uint32_t nv_g = keys_seen(tg, kb, n);
            t32_qk((const float *)tg->Qt, tg->RP, sc->kf, d, sc->bs, nv_g);
            t32_softmax(tg, sc->bs, kb, nv_g);
            t32_pv(sc->bs, tg->RP, sc->vf, d, nv_g, tg->Ot, tg->corr);
        }
        kb = ke;
    }
    for (uint32_t g = 0; g < ng; g++)
        put_rows(a, it, gs[g].r0, gs[g].rows, gs[g].m, gs[g].l, gs[g].Ot, 1, gs[g].RP);
}
#endif

/* ---------------------------------------------------------------- AVX-512 f32 (decoding) */

/* Decoding (up to 4 query rows, one token's group) on CPUs with AVX-512: the direct kernels
 * of the AVX2 section with 16-wide vectors, four keys at a time in QK (16 accumulators summed
 * by one shuffle tree) and 64 dimensions at a time in PV. */
#ifdef ATTN_X86
#define X512_ATTR __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl")))
#define X512_INLINE X512_ATTR static inline __attribute__((always_inline))

/* 16 values of a cache row from value i (i % 16 == 0) as f32. */
X512_INLINE __m512 ld16_row(ggml_type t, const uint8_t *row, uint32_t i)
{
    if (t == GGML_TYPE_F16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + (size_t)i * 2)));
    const uint8_t *blk = row + (size_t)(i / 32) * 34;
    const __m512 f = _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2 + i % 32))));
    return _mm512_mul_ps(f, _mm512_set1_ps(_cvtsh_ss(*(const uint16_t *)blk)));
}

/* y[4p + q] = sum of the lanes of x[q + (0, 8, 4, 12)[p]]. */
X512_INLINE __m512 sum16(const __m512 x[16])
{
    __m512 a[8], b[4];
    for (int m = 0; m < 8; m++)
        a[m] = _mm512_add_ps(_mm512_shuffle_f32x4(x[m], x[m + 8], 0x44),
                             _mm512_shuffle_f32x4(x[m], x[m + 8], 0xEE));
    /* a[m]: blocks (x[m], x[m], x[m + 8], x[m + 8]) */
    for (int m = 0; m < 4; m++)
        b[m] = _mm512_add_ps(_mm512_shuffle_f32x4(a[m], a[m + 4], 0x88),
                             _mm512_shuffle_f32x4(a[m], a[m + 4], 0xDD));
    /* b[m]: blocks (x[m], x[m + 8], x[m + 4], x[m + 12]); now 4x4 within each block */
    const __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(b[0], b[1]), _mm512_unpackhi_ps(b[0], b[1]));
    const __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(b[2], b[3]), _mm512_unpackhi_ps(b[2], b[3]));
    return _mm512_add_ps(
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(s01), _mm512_castps_pd(s23))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(s01), _mm512_castps_pd(s23))));
}

/* s[r * ss + j] = q_r . k_j for 4 rows and n keys read straight from the cache rows kr + j * rb;
 * pf: NULL, or rows (rb bytes apart) fetched along the way, one per key. */
X512_INLINE void qk_x512(ggml_type t, const float *q, const uint8_t *kr, size_t rb, uint32_t n,
                         uint32_t d, float *s, uint32_t ss, const uint8_t *pf)
{
    static const int off[4] = {0, 8, 4, 12}; /* accumulator of (row r, key k): k + off[r] */
    for (uint32_t j = 0; j < n; j += 4) {
        const uint8_t *k[4];
        for (int x = 0; x < 4; x++)
            k[x] = kr + (size_t)(j + (uint32_t)x < n ? j + (uint32_t)x : n - 1) * rb;
        if (pf)
            for (size_t o = 0; o < 4 * rb; o += 64)
                __builtin_prefetch(pf + (size_t)j * rb + o);
        __m512 acc[16];
        for (int x = 0; x < 16; x++)
            acc[x] = _mm512_setzero_ps();
        for (uint32_t i = 0; i < d; i += 16) {
            __m512 qv[4];
            for (int r = 0; r < 4; r++)
                qv[r] = _mm512_loadu_ps(q + (size_t)r * d + i);
            for (int x = 0; x < 4; x++) {
                const __m512 kv = ld16_row(t, k[x], i);
                for (int r = 0; r < 4; r++)
                    acc[x + off[r]] = _mm512_fmadd_ps(qv[r], kv, acc[x + off[r]]);
            }
        }
        float o[16];
        _mm512_storeu_ps(o, sum16(acc));
        for (int r = 0; r < 4; r++)
            for (uint32_t x = 0; x < 4 && j + x < n; x++)
                s[(size_t)r * ss + j + x] = o[4 * r + x];
    }
}

/* acc_r += sum_j p[r * ss + j] v_j for 4 rows, the n values read from the cache rows vr + j * rb
 * (d % 64 == 0); pf: NULL, or n_pf rows fetched along the way. */
X512_INLINE void pv_x512(ggml_type t, const float *p, uint32_t ss, const uint8_t *vr, size_t rb,
                         uint32_t n, uint32_t d, float *acc, const uint8_t *pf, uint32_t n_pf)
{
    const uint32_t passes = d / 64;
    const size_t lines = (rb + 63) / 64;
    for (uint32_t ps = 0; ps < passes; ps++) {
        const uint32_t i0 = ps * 64;
        /* this pass fetches lines [l0, l1) of each next row */
        const size_t l0 = lines * ps / passes, l1 = lines * (ps + 1) / passes;
        __m512 a[4][4];
        for (int r = 0; r < 4; r++)
            for (int x = 0; x < 4; x++)
                a[r][x] = _mm512_loadu_ps(acc + (size_t)r * d + i0 + 16 * x);
        for (uint32_t j = 0; j < n; j++) {
            /* the next rows' lines, spread over the passes */
            if (pf && j < n_pf)
                for (size_t o = l0; o < l1; o++)
                    __builtin_prefetch(pf + (size_t)j * rb + o * 64);
            const uint8_t *row = vr + (size_t)j * rb;
            __m512 v[4];
            for (int x = 0; x < 4; x++)
                v[x] = ld16_row(t, row, i0 + 16 * x);
            for (int r = 0; r < 4; r++) {
                const __m512 w = _mm512_set1_ps(p[(size_t)r * ss + j]);
                for (int x = 0; x < 4; x++)
                    a[r][x] = _mm512_fmadd_ps(w, v[x], a[r][x]);
            }
        }
        for (int r = 0; r < 4; r++)
            for (int x = 0; x < 4; x++)
                _mm512_storeu_ps(acc + (size_t)r * d + i0 + 16 * x, a[r][x]);
    }
}

X512_ATTR static void qk_x512_f16(const float *q, const uint8_t *kr, size_t rb, uint32_t n,
                                  uint32_t d, float *s, uint32_t ss, const uint8_t *pf)
{
    qk_x512(GGML_TYPE_F16, q, kr, rb, n, d, s, ss, pf);
}

X512_ATTR static void qk_x512_q8(const float *q, const uint8_t *kr, size_t rb, uint32_t n,
                                 uint32_t d, float *s, uint32_t ss, const uint8_t *pf)
{
    qk_x512(GGML_TYPE_Q8_0, q, kr, rb, n, d, s, ss, pf);
}

X512_ATTR static void pv_x512_f16(const float *p, uint32_t ss, const uint8_t *vr, size_t rb,
                                  uint32_t n, uint32_t d, float *acc, const uint8_t *pf,
                                  uint32_t n_pf)
{
    pv_x512(GGML_TYPE_F16, p, ss, vr, rb, n, d, acc, pf, n_pf);
}

X512_ATTR static void pv_x512_q8(const float *p, uint32_t ss, const uint8_t *vr, size_t rb,
                                 uint32_t n, uint32_t d, float *acc, const uint8_t *pf,
                                 uint32_t n_pf)
{
    pv_x512(GGML_TYPE_Q8_0, p, ss, vr, rb, n, d, acc, pf, n_pf);
}
#endif

/* ---------------------------------------------------------------- AVX-512 BF16 (prompts) */

/* Prompt chunks (many query rows) on CPUs with AVX512_BF16 (AMD Zen 4, Intel Sapphire Rapids):
 * scores and weighted sums by vdpbf16ps, twice the products per instruction of f32 FMA. It
 * works transposed, with vectors over a group's query rows: Qt[pair][row] holds the queries
 * as bf16 pairs of dimensions, St[key][row] the scores, so the online softmax runs on row
 * vectors too and nothing needs a horizontal sum. Products are of bf16-rounded q, k, p, v
 * (8 significant bits, rounded to nearest even); sums are f32. */
#ifdef ATTN_X86
#define BF_ATTR \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#define BF_INLINE BF_ATTR static inline __attribute__((always_inline))

/* Two f32 vectors -> one vector of bf16 pairs (even[k], odd[k]) in lane k. */
BF_INLINE __m512i bf16_pairs(__m512 even, __m512 odd)
{
    /* cvtne2ps puts even in bf16 elements 0-15 and odd in 16-31; interleave them */
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(odd, even));
}

/* 2^x, x <= 0, 0 below -126: 2^n (by vscalefps) times 2^r for the nearest integer n and
 * r = x - n in [-1/2, 1/2] by a degree-5 polynomial (Chebyshev nodes; relative error
 * under 2e-7, far below the bf16 rounding the weights then get). The bf16 path's scores are
 * in log2 units (log2 e folded into the query scale), so this is its softmax's exp. */
BF_INLINE __m512 exp2_512(__m512 x)
{
    const __m512 lo = _mm512_set1_ps(-126.0f);
    const __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
    x = _mm512_max_ps(x, lo);
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 r = _mm512_sub_ps(x, n);
    __m512 y = _mm512_set1_ps(0.0013390863f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(0.0096760318f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(0.055503570f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(0.24022107f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(0.69314718f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(keep, y, n);
}

/* St[j][r] = sum over pairs p of Kb[j][p] . Qt[p][r] for keys j0..j0+JB-1, NV row vectors;
 * mx[v] takes the rows' maxima over those keys too. */
BF_INLINE void bf_qk_blk(const uint32_t *Qt, uint32_t RP, const uint32_t *Kb, uint32_t np,
                         float *St, __m512 *mx, uint32_t j0, const int JB, const int NV)
{
    __m512 acc[6][4];
    for (int jb = 0; jb < JB; jb++)
        for (int v = 0; v < NV; v++)
            acc[jb][v] = _mm512_setzero_ps();
    for (uint32_t p = 0; p < np; p++) {
        __m512bh qv[4];
        for (int v = 0; v < NV; v++)
            qv[v] = (__m512bh)_mm512_loadu_si512(Qt + (size_t)p * RP + 16 * v);
        for (int jb = 0; jb < JB; jb++) {
            const __m512bh kb = (__m512bh)_mm512_set1_epi32((int)Kb[(size_t)(j0 + jb) * np + p]);
            for (int v = 0; v < NV; v++)
                acc[jb][v] = _mm512_dpbf16_ps(acc[jb][v], qv[v], kb);
        }
    }
    for (int jb = 0; jb < JB; jb++)
        for (int v = 0; v < NV; v++) {
            _mm512_storeu_ps(St + (size_t)(j0 + jb) * RP + 16 * v, acc[jb][v]);
            mx[v] = _mm512_max_ps(mx[v], acc[jb][v]);
        }
}

/* Ot[i][r] = Ot[i][r] * corr[r] + sum over key pairs jp of Vp[jp][i] . Pp[jp][r], for dims
 * i0..i0+IB-1. */
BF_INLINE void bf_pv_blk(const uint32_t *Pp, uint32_t RP, const uint32_t *Vp, uint32_t d,
                         uint32_t njp, float *Ot, const float *corr, uint32_t i0, const int IB,
                         const int NV)
{
    __m512 acc[8][4];
    for (int ib = 0; ib < IB; ib++)
        for (int v = 0; v < NV; v++)
            acc[ib][v] = _mm512_mul_ps(_mm512_loadu_ps(Ot + (size_t)(i0 + ib) * RP + 16 * v),
                                       _mm512_loadu_ps(corr + 16 * v));
    for (uint32_t jp = 0; jp < njp; jp++) {
        __m512bh pv[4];
        for (int v = 0; v < NV; v++)
            pv[v] = (__m512bh)_mm512_loadu_si512(Pp + (size_t)jp * RP + 16 * v);
        for (int ib = 0; ib < IB; ib++) {
            const __m512bh vb = (__m512bh)_mm512_set1_epi32((int)Vp[(size_t)jp * d + i0 + ib]);
            for (int v = 0; v < NV; v++)
                acc[ib][v] = _mm512_dpbf16_ps(acc[ib][v], pv[v], vb);
        }
    }
    for (int ib = 0; ib < IB; ib++)
        for (int v = 0; v < NV; v++)
            _mm512_storeu_ps(Ot + (size_t)(i0 + ib) * RP + 16 * v, acc[ib][v]);
}

/* Every row's maximum over the n keys goes to Mx (RP floats; masked or not). */
#define BF_QK(NVC)                                                                              \
    BF_ATTR static void bf_qk_##NVC(const uint32_t *Qt, uint32_t RP, const uint32_t *Kb,       \
                                    uint32_t np, float *St, float *Mx, uint32_t n)             \
    {                                                                                          \
        __m512 mx[4];                                                                          \
        for (int v = 0; v < NVC; v++)                                                          \
            mx[v] = _mm512_set1_ps(-INFINITY);                                                 \
        uint32_t j = 0;                                                                        \
        for (; j + 6 <= n; j += 6)                                                             \
            bf_qk_blk(Qt, RP, Kb, np, St, mx, j, 6, NVC);                                      \
        if (j + 4 <= n) { /* the rest of a 64-key tile: not latency-bound blocks of 1 */       \
            bf_qk_blk(Qt, RP, Kb, np, St, mx, j, 4, NVC);                                      \
            j += 4;                                                                            \
        }                                                                                      \
        for (; j < n; j++)                                                                     \
            bf_qk_blk(Qt, RP, Kb, np, St, mx, j, 1, NVC);                                      \
        for (int v = 0; v < NVC; v++)                                                          \
            _mm512_storeu_ps(Mx + 16 * v, mx[v]);                                              \
    }
#define BF_PV(NVC, IBC)                                                                         \
    BF_ATTR static void bf_pv_##NVC(const uint32_t *Pp, uint32_t RP, const uint32_t *Vp,        \
                                    uint32_t d, uint32_t njp, float *Ot, const float *corr)    \
    {                                                                                          \
        for (uint32_t i = 0; i < d; i += IBC)                                                  \
            bf_pv_blk(Pp, RP, Vp, d, njp, Ot, corr, i, IBC, NVC);                              \
    }
BF_QK(1)
BF_QK(2)
BF_QK(3)
BF_QK(4)
BF_PV(1, 8)
BF_PV(2, 8)
BF_PV(3, 4)
BF_PV(4, 4)

typedef void (*bf_qk_fn)(const uint32_t *, uint32_t, const uint32_t *, uint32_t, float *,
                         float *, uint32_t);
typedef void (*bf_pv_fn)(const uint32_t *, uint32_t, const uint32_t *, uint32_t, uint32_t,
                         float *, const float *);
static const bf_qk_fn BF_QKS[4] = {bf_qk_1, bf_qk_2, bf_qk_3, bf_qk_4};
static const bf_pv_fn BF_PVS[4] = {bf_pv_1, bf_pv_2, bf_pv_3, bf_pv_4};


/* Causal mask and online softmax of one group's scores St (n keys from position kb; Mx their
 * rows' maxima, unmasked), and the weights as bf16 pairs of keys into Pp (njp pairs); (m, l)
 * updated, corr set. Hidden positions get weight 0 (exactly: a row that sees nothing keeps
 * m = -inf and l = 0). Scores are in log2 units. */
BF_ATTR static void bf_softmax(tgroup *tg, const float *St, const float *Mx, uint32_t kb,
                               uint32_t n, uint32_t *Pp)
{
    const uint32_t RP = tg->RP, njp = (n + 1) / 2;
    const bool masked = (int64_t)(kb + n - 1) > (int64_t)tg->lim[0];
    for (uint32_t v = 0; v < RP / 16; v++) {
        const __m512i lv = _mm512_loadu_si512(tg->lim + 16 * v);
        __m512 mt = _mm512_loadu_ps(Mx + 16 * v);
        if (masked) {
            mt = _mm512_set1_ps(-INFINITY);
            for (uint32_t j = 0; j < n; j++) {
                const __mmask16 see =
                    _mm512_cmple_epi32_mask(_mm512_set1_epi32((int32_t)(kb + j)), lv);
                mt = _mm512_mask_max_ps(mt, see, mt, _mm512_loadu_ps(St + (size_t)j * RP + 16 * v));
            }
        }
        const __m512 mo = _mm512_loadu_ps(tg->m + 16 * v);
        const __m512 mn = _mm512_max_ps(mo, mt);
        const __mmask16 none = _mm512_cmp_ps_mask(mn, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
        /* rows that still see nothing keep corr 1 (their sums are 0) */
        const __m512 base = _mm512_mask_mov_ps(mn, none, _mm512_setzero_ps());
        __m512 c = exp2_512(_mm512_sub_ps(mo, base));
        c = _mm512_mask_mov_ps(c, none, _mm512_set1_ps(1.0f));
        __m512 sum = _mm512_setzero_ps();
        for (uint32_t jp = 0; jp < njp; jp++) {
            const uint32_t j = 2 * jp;
            __m512 e = exp2_512(_mm512_sub_ps(_mm512_loadu_ps(St + (size_t)j * RP + 16 * v), base));
            __m512 o = _mm512_setzero_ps();
            if (j + 1 < n)
                o = exp2_512(
                    _mm512_sub_ps(_mm512_loadu_ps(St + (size_t)(j + 1) * RP + 16 * v), base));
            if (masked) {
                e = _mm512_maskz_mov_ps(
                    _mm512_cmple_epi32_mask(_mm512_set1_epi32((int32_t)(kb + j)), lv), e);
                o = _mm512_maskz_mov_ps(
                    _mm512_cmple_epi32_mask(_mm512_set1_epi32((int32_t)(kb + j + 1)), lv), o);
            }
            sum = _mm512_add_ps(sum, _mm512_add_ps(e, o));
            _mm512_storeu_si512(Pp + (size_t)jp * RP + 16 * v, bf16_pairs(e, o));
        }
        _mm512_storeu_ps(tg->m + 16 * v, mn);
        _mm512_storeu_ps(tg->l + 16 * v, _mm512_fmadd_ps(_mm512_loadu_ps(tg->l + 16 * v), c, sum));
        _mm512_storeu_ps(tg->corr + 16 * v, c);
    }
}

/* ---------------------------------------------------------------- int8 scores (prompts) */

/* On CPUs with AVX512_VNNI as well, the prompt kernel's scores are int8 products: vpdpbusd
 * does 64 products an instruction against vdpbf16ps's 32, at the same rate on AMD EPYC Zen 4
 * (measured there: 518 against 229 GMAC/s a core, registers only). Each query row and each
 * key row is rounded to int8 with a scale of its own (absmax / 127); queries are stored
 * offset by 128 (vpdpbusd multiplies unsigned by signed bytes), and each key's sum starts at
 * -128 times the sum of its values, which cancels that offset exactly. Weights and values
 * stay bf16 (a probability rounded to 8 bits loses the small ones). */
#define Q8_ATTR                                                                                 \
    __attribute__((                                                                            \
        target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx512vnni")))
#define Q8_INLINE Q8_ATTR static inline __attribute__((always_inline))

/* acc + the products of a's unsigned and b's signed bytes, 4 to a lane: vpdpbusd. Written out
 * because GCC 12 copies the accumulator to another register around the intrinsic's every
 * use (q8_qk_blk with 16 accumulators: more copies than products, and slower than bf16). */
Q8_INLINE __m512i dpbusd(__m512i acc, __m512i a, __m512i b)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

/* St[j][r] = dq[r] dk[j] (init[j] + sum over quads p of Kb[j][p] . Qt[p][r]) for keys
 * j0..j0+JB-1, NV row vectors; mx[v] takes the rows' maxima over those keys too. */
Q8_INLINE void q8_qk_blk(const uint32_t *Qt, uint32_t RP, const float *dq, const uint32_t *Kb,
                         const float *dk, const int32_t *init, uint32_t n4, float *St,
                         __m512 *mx, uint32_t j0, const int JB, const int NV)
{
    __m512i acc[4][4];
    for (int jb = 0; jb < JB; jb++) {
        const __m512i i0 = _mm512_set1_epi32(init[j0 + jb]);
        for (int v = 0; v < NV; v++)
            acc[jb][v] = i0;
    }
    for (uint32_t p = 0; p < n4; p++) {
        __m512i qv[4];
        for (int v = 0; v < NV; v++)
            qv[v] = _mm512_loadu_si512(Qt + (size_t)p * RP + 16 * v);
        for (int jb = 0; jb < JB; jb++) {
            const __m512i kb = _mm512_set1_epi32((int)Kb[(size_t)(j0 + jb) * n4 + p]);
            for (int v = 0; v < NV; v++)
                acc[jb][v] = dpbusd(acc[jb][v], qv[v], kb);
        }
    }
    for (int jb = 0; jb < JB; jb++) {
        const __m512 dkb = _mm512_set1_ps(dk[j0 + jb]);
        for (int v = 0; v < NV; v++) {
            const __m512 s = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[jb][v]),
                                           _mm512_mul_ps(_mm512_loadu_ps(dq + 16 * v), dkb));
            _mm512_storeu_ps(St + (size_t)(j0 + jb) * RP + 16 * v, s);
            mx[v] = _mm512_max_ps(mx[v], s);
        }
    }
}

#define Q8_QK(NVC)                                                                              \
    Q8_ATTR static void q8_qk_##NVC(const uint32_t *Qt, uint32_t RP, const float *dq,          \
                                    const uint32_t *Kb, const float *dk, const int32_t *init,  \
                                    uint32_t n4, float *St, float *Mx, uint32_t n)             \
    {                                                                                          \
        __m512 mx[4];                                                                          \
        for (int v = 0; v < NVC; v++)                                                          \
            mx[v] = _mm512_set1_ps(-INFINITY);                                                 \
        uint32_t j = 0;                                                                        \
        for (; j + 4 <= n; j += 4) /* 4 keys: 5 or 6 took the same time */                   \
            q8_qk_blk(Qt, RP, dq, Kb, dk, init, n4, St, mx, j, 4, NVC);                        \
        for (; j < n; j++)                                                                     \
            q8_qk_blk(Qt, RP, dq, Kb, dk, init, n4, St, mx, j, 1, NVC);                        \
        for (int v = 0; v < NVC; v++)                                                          \
            _mm512_storeu_ps(Mx + 16 * v, mx[v]);                                              \
    }
Q8_QK(1)
Q8_QK(2)
Q8_QK(3)
Q8_QK(4)

typedef void (*q8_qk_fn)(const uint32_t *, uint32_t, const float *, const uint32_t *,
                         const float *, const int32_t *, uint32_t, float *, float *, uint32_t);
static const q8_qk_fn Q8_QKS[4] = {q8_qk_1, q8_qk_2, q8_qk_3, q8_qk_4};

/* d floats (d % 16 == 0) -> d int8 at q, rounded to nearest with the scale absmax / 127,
 * returned; *sum gets the sum of the int8 values. offset: each byte stored plus 128. */
BF_INLINE float q8_row(const float *x, uint32_t d, uint8_t *q, int32_t *sum, bool offset)
{
    __m512 am = _mm512_setzero_ps();
    for (uint32_t i = 0; i < d; i += 16)
        am = _mm512_max_ps(am, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    const float amax = _mm512_reduce_max_ps(am);
    const __m512 id = _mm512_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
    const __m128i bias = _mm_set1_epi8(offset ? (char)0x80 : 0);
    __m512i s = _mm512_setzero_si512();
    for (uint32_t i = 0; i < d; i += 16) {
        const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), id));
        s = _mm512_add_epi32(s, v);
        _mm_storeu_si128((__m128i *)(q + i), _mm_xor_si128(_mm512_cvtsepi32_epi8(v), bias));
    }
    *sum = _mm512_reduce_add_epi32(s);
    return amax / 127.0f;
}

/* One prompt item (up to ATTN_GROUPS groups of up to 64 rows). */
BF_ATTR static void run_item_bf16(attn_ctx *a, const attn_item *it, attn_scratch *sc)
{
    const attn_seg *sg = &a->segs[it->seg];
    const uint32_t d = a->d, np = d / 2;
    /* scores in log2 units: exp(s) = 2^(s log2 e) */
    const __m512 scale = _mm512_set1_ps(1.44269504088896341f / sqrtf((float)d));
    uint32_t *Kb = sc->bk, *Pp = sc->bp, *Vp = sc->bv;
    const ggml_type kt = kv_seq_type(sg->seq);
    const size_t rb = kv_seq_row_bytes(sg->seq);
    tgroup gs[ATTN_GROUPS];
    const uint32_t ng = tgroups_init(a, it, sc, gs);

    /* each group's queries as bf16 pairs, one column per row, or (int8 scores) as quads of
     * offset int8 with a scale per row after them; padding rows are zero */
    const bool q8 = a->qk8;
    const uint32_t n4 = d / 4;
    for (uint32_t g = 0; q8 && g < ng; g++) {
        const tgroup *tg = &gs[g];
        float *dq = (float *)(tg->Qt + (size_t)n4 * 64);
        for (uint32_t r = 0; r < tg->RP; r++) {
            uint32_t quads[512 / 4];
            int32_t sum;
            if (r < tg->rows) {
                dq[r] = q8_row(item_q(a, it, tg->r0 + r), d, (uint8_t *)quads, &sum, true) *
                        _mm512_cvtss_f32(scale);
            } else {
                dq[r] = 0.0f;
                memset(quads, 0x80, d);
            }
            for (uint32_t p = 0; p < n4; p++)
                tg->Qt[(size_t)p * tg->RP + r] = quads[p];
        }
    }
    for (uint32_t g = 0; !q8 && g < ng; g++) {
        const tgroup *tg = &gs[g];
        for (uint32_t r = 0; r < tg->RP; r++) {
            const float *q = r < tg->rows ? item_q(a, it, tg->r0 + r) : NULL;
            for (uint32_t p = 0; p < np; p += 16) {
                uint32_t pairs[16];
                if (q) {
                    const __m512 lo = _mm512_mul_ps(_mm512_loadu_ps(q + 2 * p), scale);
                    const __m512 hi = _mm512_mul_ps(_mm512_loadu_ps(q + 2 * p + 16), scale);
                    _mm512_storeu_si512(pairs, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
                } else {
                    memset(pairs, 0, sizeof(pairs));
                }
                for (uint32_t k = 0; k < 16; k++)
                    tg->Qt[(size_t)(p + k) * tg->RP + r] = pairs[k];
            }
        }
    }
    const int64_t last = gs[ng - 1].lim[gs[ng - 1].rows - 1];
    uint32_t g0 = 0; /* groups before g0 see none of this tile nor any later one */

    for (uint32_t kb = it->k0; kb < it->k1 && (int64_t)kb <= last;) {
        attn_tile tl;
        tile_at(sg->seq, a->layer, it->head, kb, it->k1, &tl);
        const uint32_t n = tl.n, ke = kb + n, njp = (n + 1) / 2;
        while ((int64_t)kb > gs[g0].lim[gs[g0].rows - 1])
            g0++;
        const uint8_t *kp = tl.k, *vp = tl.v, *nk = tl.nk, *nv = tl.nv;
        /* K rows as bf16 pairs of dimensions (or int8 quads, their scales and their sums'
         * start after them), V rows as bf16 pairs of keys: once per tile */
        float *dk = (float *)(Kb + (size_t)ATTN_TILE * n4);
        int32_t *kinit = (int32_t *)(dk + ATTN_TILE);
        for (uint32_t j = 0; q8 && j < n; j++) {
            const uint8_t *row = kp + (size_t)j * rb;
            for (uint32_t i = 0; i < d; i += 16)
                _mm512_storeu_ps(sc->kf + i, ld16_row(kt, row, i));
            int32_t sum;
            dk[j] = q8_row(sc->kf, d, (uint8_t *)(Kb + (size_t)j * n4), &sum, false);
            kinit[j] = -128 * sum;
        }
        for (uint32_t j = 0; !q8 && j < n; j++) {
            const uint8_t *row = kp + (size_t)j * rb;
            for (uint32_t i = 0; i < d; i += 32)
                _mm512_storeu_si512(Kb + (size_t)j * np + i / 2,
                                    (__m512i)_mm512_cvtne2ps_pbh(ld16_row(kt, row, i + 16),
                                                                 ld16_row(kt, row, i)));
        }
        for (uint32_t jp = 0; jp < njp; jp++) {
            const uint8_t *r0 = vp + (size_t)(2 * jp) * rb;
            const uint8_t *r1 = 2 * jp + 1 < n ? r0 + rb : NULL;
            for (uint32_t i = 0; i < d; i += 16) {
                const __m512 e = ld16_row(kt, r0, i);
                const __m512 o = r1 ? ld16_row(kt, r1, i) : _mm512_setzero_ps();
                _mm512_storeu_si512(Vp + (size_t)jp * d + i, bf16_pairs(e, o));
            }
        }
        for (uint32_t g = g0; g < ng; g++) {
            tgroup *tg = &gs[g];
            const uint32_t NV = tg->RP / 16;
            if (nk)
                prefetch_part(nk, nv, (size_t)tl.n_next * rb, g - g0, ng - g0);
            if (q8)
                Q8_QKS[NV - 1](tg->Qt, tg->RP, (const float *)(tg->Qt + (size_t)n4 * 64), Kb, dk,
                               kinit, n4, sc->bs, sc->bmx, n);
            else
                BF_QKS[NV - 1](tg->Qt, tg->RP, Kb, np, sc->bs, sc->bmx, n);
            bf_softmax(tg, sc->bs, sc->bmx, kb, n, Pp);
            BF_PVS[NV - 1](Pp, tg->RP, Vp, d, njp, tg->Ot, tg->corr);
        }
        kb = ke;
    }
    for (uint32_t g = 0; g < ng; g++) {
        for (uint32_t r = 0; r < gs[g].rows; r++)
            gs[g].m[r] *= 0.693147180559945309f; /* back to natural units for the merge */
        put_rows(a, it, gs[g].r0, gs[g].rows, gs[g].m, gs[g].l, gs[g].Ot, 1, gs[g].RP);
    }
}
#endif

/* ---------------------------------------------------------------- context */

static bool cpu_bf16(void)
{
#ifdef ATTN_X86
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
    return false;
#endif
}

static bool cpu_vnni(void)
{
#ifdef ATTN_X86
    return __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

static bool cpu_x512(void)
{
#ifdef ATTN_X86
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
    return false;
#endif
}

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
        s->kf = malloc((size_t)(ATTN_TILE + 1) * head_dim * sizeof(float));
        s->vf = malloc((size_t)ATTN_TILE * head_dim * sizeof(float));
        s->s = malloc((size_t)a->rows_pad * (ATTN_TILE + 2) * sizeof(float));
        s->acc = malloc((size_t)a->rows_pad * head_dim * sizeof(float));
        size_t rp = a->rows_pad > 64 * ATTN_GROUPS ? a->rows_pad : 64 * ATTN_GROUPS;
        s->m = malloc(rp * sizeof(float));
        s->l = malloc(rp * sizeof(float));
        s->bq = aligned_alloc(64, (size_t)ATTN_GROUPS * head_dim * 64 * sizeof(float) + 64);
        s->bk = aligned_alloc(64, (size_t)ATTN_TILE * head_dim / 2 * sizeof(uint32_t) + 64);
        s->bp = aligned_alloc(64, (size_t)ATTN_TILE / 2 * 64 * sizeof(uint32_t));
        s->bv = aligned_alloc(64, (size_t)ATTN_TILE / 2 * head_dim * sizeof(uint32_t) + 64);
        s->bs = aligned_alloc(64, (size_t)ATTN_TILE * 64 * sizeof(float));
        s->bmx = aligned_alloc(64, 64 * sizeof(float));
        s->bo = aligned_alloc(64, (size_t)ATTN_GROUPS * head_dim * 64 * sizeof(float) + 64);
        s->bc = aligned_alloc(64, ATTN_GROUPS * 64 * sizeof(float));
        s->blim = aligned_alloc(64, ATTN_GROUPS * 64 * sizeof(int32_t));
        ok = s->q && s->kf && s->vf && s->s && s->acc && s->m && s->l && s->bq && s->bk &&
             s->bp && s->bv && s->bs && s->bmx && s->bo && s->bc && s->blim;
    }
    if (!ok) {
        attn_free(a);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
#ifdef ATTN_X86
    __builtin_cpu_init();
    a->simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
              head_dim % 16 == 0;
    a->bf16 = a->simd && head_dim % 32 == 0 && cpu_bf16() && !getenv("LOCO_ATTN_NO_BF16");
    a->x512 = a->simd && head_dim % 64 == 0 && cpu_x512();
    a->qk8 = a->bf16 && head_dim <= 512 && cpu_vnni() && !getenv("LOCO_ATTN_NO_INT8");
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
        free(s->bq);
        free(s->bk);
        free(s->bp);
        free(s->bv);
        free(s->bs);
        free(s->bmx);
        free(s->bo);
        free(s->bc);
        free(s->blim);
    }
    free(a->ts);
    free(a->items);
    free(a->merges);
    free(a->parts);
    free(a);
}

void attn_force_scalar(attn_ctx *a, bool on)
{
    if (on) {
        a->simd = false;
        a->bf16 = false;
        a->x512 = false;
    }
#ifdef ATTN_X86
    else
        a->simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  a->d % 16 == 0;
#endif
}

bool attn_uses_bf16(const attn_ctx *a)
{
    return a->bf16;
}

void attn_force_bf16(attn_ctx *a, bool on)
{
    a->bf16 = on && a->simd && a->d % 32 == 0 && cpu_bf16();
    a->qk8 = a->qk8 && a->bf16;
}

bool attn_uses_qk8(const attn_ctx *a)
{
    return a->qk8;
}

void attn_force_qk8(attn_ctx *a, bool on)
{
    a->qk8 = on && a->bf16 && a->d <= 512 && cpu_vnni();
}

bool attn_uses_avx512(const attn_ctx *a)
{
    return a->x512;
}

void attn_force_avx512(attn_ctx *a, bool on)
{
    a->x512 = on && a->simd && a->d % 64 == 0 && cpu_x512();
}

void attn_force_groups(attn_ctx *a, uint32_t max_groups)
{
    a->max_groups = max_groups > ATTN_GROUPS ? ATTN_GROUPS : max_groups;
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

/* Whether prompt items go to the transposed kernels (several query groups per item). */
static bool use_transposed(const attn_ctx *a)
{
    return a->simd && a->qb * a->group <= 64;
}

static void run_item(attn_ctx *a, const attn_item *it, attn_scratch *sc)
{
    const attn_seg *sg = &a->segs[it->seg];
    const uint32_t d = a->d, G = a->group, ss = ATTN_TILE + 2;
    const uint32_t rows = (it->t1 - it->t0) * G, rows4 = (rows + 3) & ~3u;
    const size_t qstride = (size_t)a->n_head * d;
    const float scale = 1.0f / sqrtf((float)d);
#ifdef ATTN_X86
    if (use_transposed(a) && rows > ATTN_DIRECT_ROWS) {
        if (a->bf16)
            run_item_bf16(a, it, sc);
        else
            run_item_t32(a, it, sc);
        return;
    }
#endif
    LOCO_ASSERT(rows <= a->rows_pad);

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
        attn_tile tl;
        tile_at(sg->seq, a->layer, it->head, kb, it->k1, &tl);
        const uint32_t n = tl.n, ke = kb + n, n2 = (n + 1) & ~1u;
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

        /* the next tile is fetched while this one computes */
        const uint8_t *kp = tl.k, *vp = tl.v, *nk = tl.nk;
        const uint32_t n_next = tl.n_next;
        /* decoding: the tile after the next one too, all of its lines at once. The kernels
         * spread their fetches of the next tile over this one's work, which leaves too little
         * in flight while they compute: bench_attn 16384 1 2 f16 5 36 1 (decoding at 16K, every
         * layer in turn), A/B pairs: 0.835 of the time (6 pairs, 0.79-0.92); the tile two or
         * three after the next one, or fetched to L2 or non-temporally, about the same. Not
         * for a Q8_0 cache (half the bytes, more work per byte): 1.05 of the time there. Only
         * on CPUs with AVX-512, where that was measured: on one without (AMD EPYC Zen 3, the
         * AVX2 kernels) the same bench took 1.02 of the time with it (36 layers, medians of
         * 4 pairs), with 6 layers 1.15 (6 pairs), with one thread 1.02 */
        if (a->x512 && nr <= ATTN_DIRECT_ROWS && tl.nk && kt == GGML_TYPE_F16) {
            attn_tile t2;
            tile_at(sg->seq, a->layer, it->head, ke, it->k1, &t2);
            for (size_t o = 0; t2.nk && o < (size_t)t2.n_next * rb; o += 64) {
                __builtin_prefetch(t2.nk + o);
                __builtin_prefetch(t2.nv + o);
            }
        }
        float *S = sc->s + (size_t)r0 * ss;
        /* few query rows (decoding): straight from the cache rows; many: through an f32 copy
         * of the tile, converted once for all of them */
        const bool direct = a->simd && nr <= ATTN_DIRECT_ROWS;
        LOCO_UNUSED(direct); /* only the x86 kernels read cache rows directly */
#ifdef ATTN_X86
        if (direct && a->x512 && nr == 4) {
            (kt == GGML_TYPE_F16 ? qk_x512_f16 : qk_x512_q8)(sc->q + (size_t)r0 * d, kp, rb, n, d,
                                                             S, ss, vp);
        } else if (direct) {
            (kt == GGML_TYPE_F16 ? qk_direct_f16 : qk_direct_q8)(sc->q + (size_t)r0 * d, nr, kp,
                                                                 rb, n, d, S, ss, vp);
        } else
#endif
        {
            for (size_t o = 0; nk && o < (size_t)n_next * rb; o += 64) {
                __builtin_prefetch(nk + o);
                __builtin_prefetch(tl.nv + o);
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
        if (direct && a->x512 && nr == 4) {
            (kt == GGML_TYPE_F16 ? pv_x512_f16 : pv_x512_q8)(S, ss, vp, rb, n, d,
                                                             sc->acc + (size_t)r0 * d, nk, n_next);
        } else if (direct) {
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

    put_rows(a, it, 0, rows, sc->m, sc->l, sc->acc, d, 1);
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

/* Items of `step` query tokens each, without splitting. */
static uint32_t count_items(const attn_ctx *a, const attn_seg *segs, uint32_t n_segs,
                            uint32_t step)
{
    uint32_t n = 0;
    for (uint32_t s = 0; s < n_segs; s++)
        n += (segs[s].n + step - 1) / step * a->n_head_kv;
    return n;
}

void attn_forward(attn_ctx *a, tpool *pool, uint32_t layer, const attn_seg *segs,
                  uint32_t n_segs)
{
    a->segs = segs;
    a->layer = layer;
    /* prompt items of the transposed kernels hold up to ATTN_GROUPS query blocks (each K/V
     * tile read once for all of them) while that leaves 4 tasks per thread */
    const uint32_t want = 4 * a->n_threads;
    uint32_t ng = 1;
    if (use_transposed(a)) {
        uint32_t top = ATTN_GROUPS;
        for (uint32_t s = 0; s < n_segs; s++)
            if (segs[s].n && segs[s].pos0 < ATTN_DEEP_POS)
                top = ATTN_GROUPS / 2;
        if (a->max_groups)
            top = a->max_groups;
        for (ng = top; ng > 1 && count_items(a, segs, n_segs, ng * a->qb) < want; ng /= 2)
            ;
    }
    const uint32_t step = ng * a->qb;
    const uint32_t n_plain = count_items(a, segs, n_segs, step);
    /* too few for the threads (decoding): split the KV range of each into chunks */
    uint32_t split = 1;
    if (n_plain && n_plain < want) {
        split = (want + n_plain - 1) / n_plain;
        if (split * n_plain > a->max_parts)
            split = a->max_parts / n_plain;
        if (split < 1)
            split = 1;
    }
    /* head by head: the items that read the same K/V run at about the same time (shared L3) */
    uint32_t ni = 0, np = 0, nm = 0;
    for (uint32_t s = 0; s < n_segs; s++) {
        const attn_seg *sg = &segs[s];
        for (uint32_t h = 0; h < a->n_head_kv; h++)
            for (uint32_t t0 = 0; t0 < sg->n; t0 += step) {
                const uint32_t t1 = t0 + step < sg->n ? t0 + step : sg->n;
                const uint32_t kend = sg->pos0 + t1; /* positions [0, kend) */
                uint32_t chunks = split;
                if (chunks > 1) {
                    uint32_t max_c = kend / ATTN_MIN_CHUNK;
                    chunks = chunks < max_c ? chunks : max_c;
                }
                if (chunks < 2) {
                    LOCO_ASSERT(ni < a->max_items);
                    a->items[ni++] = (attn_item){s, h, t0, t1, 0, kend, -1};
                    continue;
                }
                /* chunk bounds on whole tiles; only single-group items get here (ng == 1) */
                const uint32_t nblk = (kend + ATTN_TILE - 1) / ATTN_TILE;
                LOCO_ASSERT(nm < a->max_merges && np + chunks <= a->max_parts);
                a->merges[nm++] = (attn_merge){s, h, t0, t1, np, chunks};
                for (uint32_t c = 0; c < chunks; c++) {
                    uint32_t b0 = nblk * c / chunks, b1 = nblk * (c + 1) / chunks;
                    const uint32_t k0 = b0 * ATTN_TILE;
                    const uint32_t k1 = b1 * ATTN_TILE < kend ? b1 * ATTN_TILE : kend;
                    LOCO_ASSERT(ni < a->max_items);
                    a->items[ni++] = (attn_item){s, h, t0, t1, k0, k1, (int32_t)np++};
                }
            }
    }
    a->n_items = ni;
    a->n_merges = nm;
    run_tasks(pool, (int32_t)ni, item_task, a);
    if (nm)
        run_tasks(pool, (int32_t)nm, merge_task, a);
}
