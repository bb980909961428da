/* kern_amx.c: the fast kernels for Intel AMX-INT8 tiles (Sapphire Rapids and later)
 * (engine/kernels), for prompt batches; one-token calls keep the AVX-512 kernels. The tile
 * program is written over a thin macro layer (TILE_*) with two builds: this file with the AMX
 * instructions, and kern_amx_emu.c, which includes it with KERN_AMX_EMULATE and runs the same
 * program on a scalar emulation of the tiles, so the logic is unit-tested on machines without
 * AMX (and under qemu, which does not emulate it). kernels.c only installs the real table when
 * the CPU reports AMX-INT8, Linux grants the tile state, and a self-check against the AVX-512
 * kernels gives the same bits; else AMX is not used.
 *
 * Shapes (tdpbsud: signed activations in A x unsigned weight values in B): C (tile 0) is
 * M tokens x 16 weight rows of int32; A is M tokens x 32 (or 16) activation bytes, loaded with
 * the activation row stride; B is 8 (or 4) rows of one packed step each: 16 weight rows x 4
 * values, exactly the packed layout. One tile product covers a 32-value block (a K-quant
 * sub-block, Q6_K: 16 values); the AVX-512 epilogue applies the scales per weight row. */
#include "base/common.h"

#include "engine/kernels/kern_int.h"

#ifdef KERN_AMX_EMULATE
#define AMX_NAME(x) kern_amx_emu_##x
#else
#define AMX_NAME(x) kern_amx_##x
#endif

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && \
    defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512DQ__) &&  \
    (defined(KERN_AMX_EMULATE) || (defined(__AMX_TILE__) && defined(__AMX_INT8__)))

#include <immintrin.h>

#ifdef __clang__
#pragma clang fp contract(off)
#endif

#define INLINE static inline __attribute__((always_inline))
#define MT 16 /* tokens per tile program */

/* ---------------------------------------------------------------- the tile layer */

typedef struct {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_cfg;
_Static_assert(sizeof(tile_cfg) == 64, "tile config is 64 bytes");

#ifdef KERN_AMX_EMULATE
/* Eight 1 KiB tile registers and the configuration, per thread (each thread has its own tile
 * state on real hardware too). */
static _Thread_local struct {
    tile_cfg cfg;
    uint8_t t[8][16][64];
} emu;

static void emu_config(const tile_cfg *c)
{
    emu.cfg = *c;
    memset(emu.t, 0, sizeof(emu.t));
}

static void emu_load(int t, const void *base, size_t stride)
{
    for (int r = 0; r < emu.cfg.rows[t]; r++)
        memcpy(emu.t[t][r], (const uint8_t *)base + (size_t)r * stride, emu.cfg.colsb[t]);
}

static void emu_store(int t, void *base, size_t stride)
{
    for (int r = 0; r < emu.cfg.rows[t]; r++)
        memcpy((uint8_t *)base + (size_t)r * stride, emu.t[t][r], emu.cfg.colsb[t]);
}

static void emu_zero(int t)
{
    memset(emu.t[t], 0, sizeof(emu.t[t]));
}

/* TDPBSUD: C[m][n] += sum over k, i of signed A[m][4k+i] x unsigned B[k][4n+i]. */
static void emu_dpbsud(int c, int a, int b)
{
    for (int m = 0; m < emu.cfg.rows[c]; m++)
        for (int n = 0; n < emu.cfg.colsb[c] / 4; n++) {
            int32_t acc;
            memcpy(&acc, &emu.t[c][m][4 * n], 4);
            for (int k = 0; k < emu.cfg.colsb[a] / 4; k++)
                for (int i = 0; i < 4; i++)
                    acc += (int8_t)emu.t[a][m][4 * k + i] * (int32_t)emu.t[b][k][4 * n + i];
            memcpy(&emu.t[c][m][4 * n], &acc, 4);
        }
}

#define TILE_CONFIG(cfg) emu_config(cfg)
#define TILE_LOAD(t, base, stride) emu_load(t, base, stride)
#define TILE_STORE(t, base, stride) emu_store(t, base, stride)
#define TILE_ZERO(t) emu_zero(t)
#define TILE_DPBSUD(c, a, b) emu_dpbsud(c, a, b)
#define TILE_RELEASE() ((void)0)
#else
#define TILE_CONFIG(cfg) _tile_loadconfig(cfg)
#define TILE_LOAD(t, base, stride) _tile_loadd(t, base, (long)(stride))
#define TILE_STORE(t, base, stride) _tile_stored(t, base, (long)(stride))
#define TILE_ZERO(t) _tile_zero(t)
#define TILE_DPBSUD(c, a, b) _tile_dpbsud(c, a, b)
#define TILE_RELEASE() _tile_release()
#endif

/* Tiles: 0 C (M x 16 int32); 1, 2: A (M x 32 bytes), B (8 steps); 3, 4: A (M x 16), B (4). */
INLINE void config(int m)
{
    tile_cfg c;
    memset(&c, 0, sizeof(c));
    c.palette = 1;
    c.rows[0] = (uint8_t)m, c.colsb[0] = 64;
    c.rows[1] = (uint8_t)m, c.colsb[1] = 32;
    c.rows[2] = 8, c.colsb[2] = 64;
    c.rows[3] = (uint8_t)m, c.colsb[3] = 16;
    c.rows[4] = 4, c.colsb[4] = 64;
    TILE_CONFIG(&c);
}

/* C = A(act + off, 32 values) x B(steps of w), then C stored to c (M rows of 16 int32). */
INLINE void product32(const uint8_t *act, size_t as, const uint8_t *steps, int32_t (*c)[16])
{
    TILE_ZERO(0);
    TILE_LOAD(1, act, as);
    TILE_LOAD(2, steps, KERN_STEP);
    TILE_DPBSUD(0, 1, 2);
    TILE_STORE(0, c, 64);
}

INLINE void product16(const uint8_t *act, size_t as, const uint8_t *steps, int32_t (*c)[16])
{
    TILE_ZERO(0);
    TILE_LOAD(3, act, as);
    TILE_LOAD(4, steps, KERN_STEP);
    TILE_DPBSUD(0, 3, 4);
    TILE_STORE(0, c, 64);
}

INLINE float ldf(const uint8_t *p)
{
    float v;
    memcpy(&v, p, 4);
    return v;
}

INLINE int32_t ldi(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

INLINE __m512 h16(const uint8_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* Unpacks 4 nibble steps (lo: steps 0-3, hi: 4-7) plus optional 5th bits into 8 byte steps. */
INLINE void unpack8(const uint8_t *q, const uint8_t *qh, uint8_t *dst)
{
    const __m512i m4 = _mm512_set1_epi8(0xF), b4 = _mm512_set1_epi8(0x10);
    for (int s = 0; s < 4; s++) {
        const __m512i raw = _mm512_loadu_si512(q + KERN_STEP * s);
        __m512i lo = _mm512_and_si512(raw, m4), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
        if (qh) {
            uint64_t h0, h1;
            memcpy(&h0, qh + 8 * s, 8);
            memcpy(&h1, qh + 8 * (s + 4), 8);
            lo = _mm512_or_si512(lo, _mm512_maskz_mov_epi8(h0, b4));
            hi = _mm512_or_si512(hi, _mm512_maskz_mov_epi8(h1, b4));
        }
        _mm512_storeu_si512(dst + KERN_STEP * s, lo);
        _mm512_storeu_si512(dst + KERN_STEP * (s + 4), hi);
    }
}

INLINE void store_acc(float *out, size_t os, int m, float (*acc)[16], int64_t r, int64_t rows)
{
    for (int t = 0; t < m; t++)
        kern_store_group(out + (size_t)t * os, acc[t], r, rows);
}

/* ---------------------------------------------------------------- 32-value block types */

INLINE void tiles_a32(ggml_type t, int m, const uint8_t *G, int64_t nb, const uint8_t *a0,
                      size_t as, kern_act_layout L, float *out, size_t os, int64_t r, int64_t rows)
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
    float acc[MT][16];
    int32_t c[MT][16];
    uint8_t wbuf[8 * KERN_STEP];
    memset(acc, 0, sizeof(acc));
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *B = G + (size_t)b * bb;
        const uint8_t *steps = B + qoff;
        if (t != GGML_TYPE_Q8_0) {
            unpack8(B + qoff, has_h ? B + hoff : NULL, wbuf);
            steps = wbuf;
        }
        product32(a0 + L.qs + 32 * (size_t)b, as, steps, c);
        const __m512 dw = h16(B + KG32_D);
        const __m512 mw = has_m ? h16(B + KG32_M) : _mm512_setzero_ps();
        for (int i = 0; i < m; i++) {
            const uint8_t *a = a0 + (size_t)i * as;
            const __m512i is = _mm512_add_epi32(_mm512_loadu_si512(c[i]),
                                                _mm512_set1_epi32(ldi(a + L.init + 4 * (size_t)b)));
            const __m512 ad = _mm512_set1_ps(ldf(a + L.d + 4 * (size_t)b));
            __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_mul_ps(dw, ad),
                                       _mm512_loadu_ps(acc[i]));
            if (has_m)
                v = _mm512_fmadd_ps(mw, _mm512_set1_ps(ldf(a + L.s + 4 * (size_t)b)), v);
            _mm512_storeu_ps(acc[i], v);
        }
    }
    store_acc(out, os, m, acc, r, rows);
}

/* ---------------------------------------------------------------- K types */

INLINE void tiles_k45(bool q5, int m, const uint8_t *G, int64_t nb, const uint8_t *a0,
                      size_t as, kern_act_layout L, float *out, size_t os, int64_t r, int64_t rows)
{
    const size_t bb = q5 ? KG_Q5_K_BYTES : KG_Q4_K_BYTES;
    const __m512i m4 = _mm512_set1_epi8(0xF), b4 = _mm512_set1_epi8(0x10);
    float acc[MT][16];
    int32_t c[MT][16];
    uint8_t wbuf[8 * KERN_STEP];
    memset(acc, 0, sizeof(acc));
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *B = G + (size_t)b * bb;
        __m512i isum[MT];
        for (int i = 0; i < m; i++)
            isum[i] = _mm512_setzero_si512();
        for (int c4 = 0; c4 < 4; c4++) {
            for (int half = 0; half < 2; half++) {
                for (int s = 0; s < 8; s++) {
                    const __m512i raw = _mm512_loadu_si512(B + KGK_Q + KERN_STEP * (8 * c4 + s));
                    __m512i wv = half ? _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4)
                                      : _mm512_and_si512(raw, m4);
                    if (q5) {
                        uint64_t h;
                        memcpy(&h, B + KGK_QH + 16 * (8 * c4 + s) + 8 * half, 8);
                        wv = _mm512_or_si512(wv, _mm512_maskz_mov_epi8(h, b4));
                    }
                    _mm512_storeu_si512(wbuf + KERN_STEP * s, wv);
                }
                product32(a0 + L.qs + 256 * (size_t)b + 64 * c4 + 32 * half, as, wbuf, c);
                const __m512i sc = _mm512_cvtepu8_epi32(
                    _mm_loadu_si128((const __m128i *)(B + KGK_SC + 16 * (2 * c4 + half))));
                for (int i = 0; i < m; i++)
                    isum[i] = _mm512_add_epi32(isum[i], _mm512_mullo_epi32(_mm512_loadu_si512(c[i]), sc));
            }
        }
        const __m512 dv = h16(B + KGK_D), dmv = h16(B + KGK_DMIN);
        __m512i mn[4];
        for (int p = 0; p < 4; p++)
            mn[p] = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(B + KGK_MN + 32 * p)));
        for (int i = 0; i < m; i++) {
            const uint8_t *a = a0 + (size_t)i * as;
            __m512i msum = _mm512_setzero_si512();
            for (int p = 0; p < 4; p++)
                msum = _mm512_add_epi32(msum, _mm512_madd_epi16(mn[p], _mm512_set1_epi32(ldi(
                                                   a + L.pairs + 4 * (size_t)(4 * b + p)))));
            const __m512 ad = _mm512_set1_ps(ldf(a + L.d + 4 * (size_t)b));
            __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_mul_ps(dv, ad),
                                       _mm512_loadu_ps(acc[i]));
            v = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(dmv, ad), v);
            _mm512_storeu_ps(acc[i], v);
        }
    }
    store_acc(out, os, m, acc, r, rows);
}

INLINE void tiles_q6_K(int m, const uint8_t *G, int64_t nb, const uint8_t *a0, size_t as,
                       kern_act_layout L, float *out, size_t os, int64_t r, int64_t rows)
{
    const __m512i m4 = _mm512_set1_epi8(0xF), m30 = _mm512_set1_epi8(0x30);
    float acc[MT][16];
    int32_t c[MT][16];
    uint8_t wbuf[4 * KERN_STEP];
    memset(acc, 0, sizeof(acc));
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *B = G + (size_t)b * KG_Q6_K_BYTES;
        __m512i isum[MT];
        for (int i = 0; i < m; i++)
            isum[i] = _mm512_setzero_si512();
        for (int c4 = 0; c4 < 4; c4++) {
            for (int half = 0; half < 2; half++) {
                for (int q4 = 0; q4 < 2; q4++) {
                    const int grp = 4 * c4 + 2 * half + q4, sh = 2 * (2 * half + q4);
                    for (int s4 = 0; s4 < 4; s4++) {
                        const int s = 4 * q4 + s4;
                        const __m512i raw = _mm512_loadu_si512(B + KG6_QL + KERN_STEP * (8 * c4 + s));
                        const __m512i hr = _mm512_loadu_si512(B + KG6_QH + KERN_STEP * (4 * c4 + s4));
                        const __m512i nib = half ? _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4)
                                                 : _mm512_and_si512(raw, m4);
                        const __m512i h = sh <= 4 ? _mm512_and_si512(_mm512_slli_epi16(hr, 4 - sh), m30)
                                                  : _mm512_and_si512(_mm512_srli_epi16(hr, sh - 4), m30);
                        _mm512_storeu_si512(wbuf + KERN_STEP * s4, _mm512_or_si512(nib, h));
                    }
                    product16(a0 + L.qs + 256 * (size_t)b + 64 * c4 + 32 * half + 16 * q4, as,
                              wbuf, c);
                    const __m512i sc = _mm512_cvtepi8_epi32(
                        _mm_loadu_si128((const __m128i *)(B + KG6_SC + 16 * grp)));
                    for (int i = 0; i < m; i++) {
                        const __m512i off = _mm512_set1_epi32(
                            ldi(a0 + (size_t)i * as + L.q6off + 4 * (size_t)(16 * b + grp)));
                        const __m512i sb = _mm512_add_epi32(_mm512_loadu_si512(c[i]), off);
                        isum[i] = _mm512_add_epi32(isum[i], _mm512_mullo_epi32(sb, sc));
                    }
                }
            }
        }
        const __m512 dv = h16(B + KG6_D);
        for (int i = 0; i < m; i++) {
            const __m512 ad = _mm512_set1_ps(ldf(a0 + (size_t)i * as + L.d + 4 * (size_t)b));
            _mm512_storeu_ps(acc[i], _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_mul_ps(dv, ad),
                                                     _mm512_loadu_ps(acc[i])));
        }
    }
    store_acc(out, os, m, acc, r, rows);
}

/* ---------------------------------------------------------------- drivers */

/* Fewer tokens than this go to the AVX-512 kernels (tiles pay for batches). */
#define AMX_MIN_TOKENS 8

/* The AVX-512 entries (for calls with few tokens): written once by the fill function, under
 * kernels.c's pthread_once, read-only afterwards. */
static kern_table g_base;

#define DEFINE_GEMM(NAME, TYPE, LAYOUT, BLOCK, CALL)                                           \
    static void NAME(const kern_weight *w, const void *acts, size_t as, int64_t nt, float *out, \
                     size_t os, int64_t g0, int64_t g1)                                        \
    {                                                                                          \
        if (nt < AMX_MIN_TOKENS) {                                                             \
            g_base.gemm[TYPE](w, acts, as, nt, out, os, g0, g1);                               \
            return;                                                                            \
        }                                                                                      \
        const kern_act_layout L = LAYOUT(w->k);                                                \
        const int64_t nb = w->k / BLOCK;                                                       \
        int cur = -1;                                                                          \
        for (int64_t gb = g0; gb < g1; gb += 4) {                                              \
            const int64_t ge = gb + 4 < g1 ? gb + 4 : g1;                                      \
            for (int64_t t0 = 0; t0 < nt; t0 += MT) {                                          \
                const int m = (int)(nt - t0 < MT ? nt - t0 : MT);                              \
                if (m != cur)                                                                  \
                    config(m), cur = m;                                                        \
                const uint8_t *a0 = (const uint8_t *)acts + (size_t)t0 * as;                   \
                float *o = out + (size_t)t0 * os;                                              \
                for (int64_t g = gb; g < ge; g++) {                                            \
                    const uint8_t *G = w->data + (size_t)g * w->group_bytes;                   \
                    CALL;                                                                      \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        TILE_RELEASE();                                                                        \
    }

#define ARGS m, G, nb, a0, as, L, o, os, g *KERN_GROUP, w->rows
DEFINE_GEMM(gemm_q8_0, GGML_TYPE_Q8_0, kern_act_a32, 32, tiles_a32(GGML_TYPE_Q8_0, ARGS))
DEFINE_GEMM(gemm_q4_0, GGML_TYPE_Q4_0, kern_act_a32, 32, tiles_a32(GGML_TYPE_Q4_0, ARGS))
DEFINE_GEMM(gemm_q4_1, GGML_TYPE_Q4_1, kern_act_a32, 32, tiles_a32(GGML_TYPE_Q4_1, ARGS))
DEFINE_GEMM(gemm_q5_0, GGML_TYPE_Q5_0, kern_act_a32, 32, tiles_a32(GGML_TYPE_Q5_0, ARGS))
DEFINE_GEMM(gemm_q5_1, GGML_TYPE_Q5_1, kern_act_a32, 32, tiles_a32(GGML_TYPE_Q5_1, ARGS))
DEFINE_GEMM(gemm_q4_K, GGML_TYPE_Q4_K, kern_act_a256, 256, tiles_k45(false, ARGS))
DEFINE_GEMM(gemm_q5_K, GGML_TYPE_Q5_K, kern_act_a256, 256, tiles_k45(true, ARGS))
DEFINE_GEMM(gemm_q6_K, GGML_TYPE_Q6_K, kern_act_a256, 256, tiles_q6_K(ARGS))

bool AMX_NAME(built)(void)
{
    return true;
}

/* kt holds the AVX-512 table on entry (its entries serve calls of few tokens). */
bool AMX_NAME(fill)(kern_table *kt)
{
    g_base = *kt;
#ifdef KERN_AMX_EMULATE
    kt->name = "amx-emu";
#else
    kt->name = "amx";
#endif
    kt->gemm[GGML_TYPE_Q8_0] = gemm_q8_0;
    kt->gemm[GGML_TYPE_Q4_0] = gemm_q4_0;
    kt->gemm[GGML_TYPE_Q4_1] = gemm_q4_1;
    kt->gemm[GGML_TYPE_Q5_0] = gemm_q5_0;
    kt->gemm[GGML_TYPE_Q5_1] = gemm_q5_1;
    kt->gemm[GGML_TYPE_Q4_K] = gemm_q4_K;
    kt->gemm[GGML_TYPE_Q5_K] = gemm_q5_K;
    kt->gemm[GGML_TYPE_Q6_K] = gemm_q6_K;
    return true;
}

#else /* not built for this ISA */

bool AMX_NAME(built)(void)
{
    return false;
}

bool AMX_NAME(fill)(kern_table *kt)
{
    LOCO_UNUSED(kt);
    return false;
}

#endif
