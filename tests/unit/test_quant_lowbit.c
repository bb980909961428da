/* test_quant_lowbit.c: unit tests of the low-bit weight types Q2_K, Q3_K, IQ4_NL and IQ4_XS
 * (engine/quant_lowbit.c): hand-built blocks decoded to known values (every packing rule of
 * the scales, high bits and nibbles), dot products equal to the dequantized sums where those
 * are exact, and the quantizers' bytes pinned (they were checked byte for byte against
 * llama.cpp's own quantize_row_q2_K_ref / q3_K_ref / quantize_iq4_nl / quantize_iq4_xs, see
 * docs/internals/quant.md), and llama-quantize's type mixes (engine/ftype.h) that `loco model synth
 * --mix` writes; the float steps of llama.cpp's repacked / AMX / IQ panel kernels for them
 * (quant_lowbit_repack_*, quant_lowbit_amx_iq4_xs) against the formulas written out here, and
 * which of them the parity path (vecmath.h) runs for which weights and batch sizes. Round
 * trips, extremes, SIMD paths and row loops are covered by test_quant.c, whose type lists
 * include these types. */
#include "base/common.h"

#include <math.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "engine/ftype.h"
#include "engine/quant.h"
#include "engine/quant_int.h"
#include "engine/quant_lowbit.h"
#include "engine/synth.h"
#include "engine/vecmath.h"
#include "base/buf.h"
#include "base/file.h"

#define H_ONE 0x3C00  /* fp16 1.0 */
#define H_HALF 0x3800 /* fp16 0.5 */
#define H_TWO 0x4000  /* fp16 2.0 */

static void dequant(ggml_type t, const void *src, float *dst, int64_t n)
{
    assert_int_equal(quant_dequantize_row(t, src, dst, n), LOCO_OK);
}

static void test_decode_q2_K(void **state)
{
    (void)state;
    block_q2_K b;
    memset(&b, 0, sizeof(b));
    b.d = H_ONE;
    b.dmin = H_HALF;
    for (int k = 0; k < 16; k++)
        b.scales[k] = (uint8_t)(k | ((15 - k) << 4)); /* scale k, min 15 - k */
    memset(b.qs, 0xE4, sizeof(b.qs));                 /* 2-bit fields 0,1,2,3: q = j */
    b.qs[32 + 5] = 0x1B;                              /* fields 3,2,1,0 */
    float y[256];
    dequant(GGML_TYPE_Q2_K, &b, y, 256);
    /* value 128h + 32j + l: q from bits 2j of qs[32h + l], scale byte 8h + 2j + (l >= 16) */
    assert_true(y[0] == -7.5f);   /* 0*0 - 0.5*15 */
    assert_true(y[17] == -7.0f);  /* scale byte 1: 1*0 - 0.5*14 */
    assert_true(y[40] == -4.5f);  /* byte 2, q 1: 2 - 6.5 */
    assert_true(y[200] == 22.5f); /* byte 12, q 2: 24 - 1.5 */
    assert_true(y[255] == 45.0f); /* byte 15, q 3: 45 - 0 */
    assert_true(y[133] == 20.5f); /* byte 8, q 3: 24 - 3.5 */
    assert_true(y[165] == 17.5f); /* byte 10, q 2: 20 - 2.5 */
    assert_true(y[197] == 10.5f); /* byte 12, q 1: 12 - 1.5 */
    assert_true(y[229] == -0.5f); /* byte 14, q 0: 0 - 0.5 */
}

static void test_decode_q3_K(void **state)
{
    (void)state;
    block_q3_K b;
    memset(&b, 0, sizeof(b));
    b.d = H_HALF;
    /* 6-bit scales u (s = u - 32): u0 = 63, u9 = 37, u15 = 16, the rest 32. Low nibble of
     * scale j < 8 in the low half of byte j, of j >= 8 in the high half of byte j - 8; its two
     * high bits at bits 2(j / 4) of byte 8 + j % 4. */
    const uint8_t sc[12] = {0x0F, 0x50, 0, 0, 0, 0, 0, 0, 0xAB, 0xAA, 0xAA, 0x6A};
    memcpy(b.scales, sc, 12);
    int8_t s[16];
    quant_q3_K_scales(b.scales, s);
    for (int j = 0; j < 16; j++)
        assert_int_equal(s[j], j == 0 ? 31 : j == 9 ? 5 : j == 15 ? -16 : 0);
    memset(b.qs, 0x1B, sizeof(b.qs)); /* 2-bit fields 3,2,1,0 */
    b.qs[32 + 31] = 0xC0;             /* value 255: field 3 = 3 */
    memset(b.hmask, 0xFF, sizeof(b.hmask));
    b.hmask[3] &= (uint8_t)~0x01;  /* value 3: high bit clear -> q - 4 */
    b.hmask[22] &= (uint8_t)~0x10; /* value 150 = 4 * 32 + 22 */
    float y[256];
    dequant(GGML_TYPE_Q3_K, &b, y, 256);
    assert_true(y[5] == 46.5f);    /* 0.5 * 31 * 3 */
    assert_true(y[3] == -15.5f);   /* 0.5 * 31 * (3 - 4) */
    assert_true(y[40] == 0.0f);    /* scale 0 */
    assert_true(y[149] == 7.5f);   /* sub-block 9: 0.5 * 5 * 3 */
    assert_true(y[150] == -2.5f);  /* 0.5 * 5 * (3 - 4) */
    assert_true(y[255] == -24.0f); /* sub-block 15: 0.5 * -16 * 3 */
    assert_true(y[254] == 0.0f);   /* field 3 of 0x1B is 0 */
}

static void test_decode_iq4_nl(void **state)
{
    (void)state;
    block_iq4_nl b = {.d = H_TWO};
    for (int j = 0; j < 16; j++)
        b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    float y[32];
    dequant(GGML_TYPE_IQ4_NL, &b, y, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == 2.0f * quant_iq4nl_values[j]);
        assert_true(y[j + 16] == 2.0f * quant_iq4nl_values[15 - j]);
    }
    assert_true(y[0] == -254.0f && y[16] == 226.0f && y[8] == 2.0f && y[24] == -20.0f);
}

static void test_decode_iq4_xs(void **state)
{
    (void)state;
    block_iq4_xs b;
    memset(&b, 0, sizeof(b));
    b.d = H_HALF;
    /* ls: sub-block 0 -> 0 (scale -32), 1 -> 63 (31), 5 -> 33 (1), the rest 32 (0) */
    b.scales_h = 0xAAAC;
    b.scales_l[0] = 0xF0;
    b.scales_l[2] = 0x10;
    const int want_s[8] = {-32, 31, 0, 0, 0, 1, 0, 0};
    for (int ib = 0; ib < 8; ib++)
        assert_int_equal(quant_iq4_xs_scale(&b, ib), want_s[ib]);
    memset(b.qs, 0x8F, sizeof(b.qs)); /* low nibble 15 (113), high nibble 8 (1) */
    float y[256];
    dequant(GGML_TYPE_IQ4_XS, &b, y, 256);
    assert_true(y[0] == -1808.0f); /* 0.5 * -32 * 113 */
    assert_true(y[16] == -16.0f);  /* 0.5 * -32 * 1 */
    assert_true(y[32] == 1751.5f); /* 0.5 * 31 * 113 */
    assert_true(y[63] == 15.5f);
    assert_true(y[64] == 0.0f);
    assert_true(y[160] == 56.5f);
    assert_true(y[191] == 0.5f);
}

/* splitmix64 */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int rand_int(uint64_t *s, int lo, int hi)
{
    return lo + (int)(next_u64(s) % (uint64_t)(hi - lo + 1));
}

static const ggml_type lowbit_types[] = {GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_IQ4_NL,
                                         GGML_TYPE_IQ4_XS};

/* Random levels with every scale 1 (or small) and activations with d = 1: every product and
 * partial sum is an integer below 2^24, so the dot equals the sum of dequantized weights
 * times activation values exactly, which pins the value order the dots read. */
static void unit_blocks(uint64_t *s, ggml_type t, uint8_t *w, int64_t n)
{
    const size_t bytes = ggml_type_row_size(t, (uint64_t)n);
    for (size_t i = 0; i < bytes; i++)
        w[i] = (uint8_t)next_u64(s);
    const int64_t nb = n / (int64_t)ggml_type_block_size(t);
    for (int64_t b = 0; b < nb; b++) {
        switch (t) {
        case GGML_TYPE_Q2_K:
            ((block_q2_K *)w)[b].d = H_ONE;
            ((block_q2_K *)w)[b].dmin = H_ONE;
            break;
        case GGML_TYPE_Q3_K: ((block_q3_K *)w)[b].d = H_ONE; break;
        case GGML_TYPE_IQ4_NL: ((block_iq4_nl *)w)[b].d = H_ONE; break;
        default: {
            block_iq4_xs *x = (block_iq4_xs *)w + b;
            x->d = H_ONE;
            x->scales_h = 0;
            memset(x->scales_l, 0, sizeof(x->scales_l));
            for (int ib = 0; ib < 8; ib++) {
                const int u = 32 + rand_int(s, -2, 2);
                x->scales_l[ib / 2] |= (uint8_t)((u & 0xF) << (4 * (ib % 2)));
                x->scales_h |= (uint16_t)((u >> 4) << (2 * ib));
            }
            break;
        }
        }
    }
}

static void test_dots_follow_dequant(void **state)
{
    (void)state;
    const int64_t n = 512;
    uint64_t s = 2024;
    float y[512];
    for (size_t k = 0; k < LOCO_ARRAY_LEN(lowbit_types); k++) {
        const ggml_type t = lowbit_types[k];
        const ggml_type at = quant_act_type(t);
        uint8_t w[1024], a[1024];
        assert_true(ggml_type_row_size(t, n) <= sizeof(w));
        for (int round = 0; round < 20; round++) {
            unit_blocks(&s, t, w, n);
            int8_t q[512];
            for (int i = 0; i < n; i++)
                q[i] = (int8_t)rand_int(&s, -127, 127);
            if (at == GGML_TYPE_Q8_0) {
                block_q8_0 *b = (block_q8_0 *)a;
                for (int i = 0; i < n / 32; i++) {
                    b[i].d = H_ONE;
                    memcpy(b[i].qs, q + 32 * i, 32);
                }
            } else {
                block_q8_K *b = (block_q8_K *)a;
                for (int i = 0; i < n / 256; i++) {
                    b[i].d = 1.0f;
                    memcpy(b[i].qs, q + 256 * i, 256);
                    for (int g = 0; g < 16; g++) {
                        int sum = 0;
                        for (int j = 0; j < 16; j++)
                            sum += q[256 * i + 16 * g + j];
                        b[i].bsums[g] = (int16_t)sum;
                    }
                }
            }
            dequant(t, w, y, n);
            double want = 0;
            for (int i = 0; i < n; i++)
                want += (double)y[i] * q[i];
            const float got = quant_kernels_scalar()->ops[t].vec_dot(n, w, a);
            if ((double)got != want)
                fail_msg("%s round %d: dot %.1f, dequantized sum %.1f", ggml_type_name(t), round,
                         got, want);
            const float act = quant_vec_dot(t, n, w, a); /* the active (SIMD) path too */
            if ((double)act != want)
                fail_msg("%s round %d: active dot %.1f, dequantized sum %.1f", ggml_type_name(t),
                         round, act, want);
        }
    }
}

/* FNV-1a of the quantized bytes of a fixed input: the quantizers were checked byte for byte
 * against llama.cpp's (4 lengths x 400 rows each, incl. zero, constant, huge and tiny
 * blocks); these pin that output so an unintended change shows. */
static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void test_quantizers_pinned(void **state)
{
    (void)state;
    const int64_t n = 2560;
    float *x = malloc((size_t)n * sizeof(float));
    uint8_t *q = malloc(ggml_type_row_size(GGML_TYPE_IQ4_NL, n));
    assert_non_null(x);
    assert_non_null(q);
    uint64_t s = 7;
    for (int64_t i = 0; i < n; i++) {
        /* mostly uniform, some 16-value groups zero, constant, one-signed or spiky */
        const double u = (double)(next_u64(&s) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
        const int group = (int)(i / 16) % 7;
        x[i] = group == 3   ? 0.0f
               : group == 5 ? 0.25f
               : group == 6 ? (float)fabs(u) + 0.05f
                            : (i % 97 == 0 ? (float)u * 40.0f : (float)u);
    }
    const uint64_t want[] = {
        UINT64_C(0xfc6f2041a9d04278), /* Q2_K */
        UINT64_C(0x38b2d39285aca2f2), /* Q3_K */
        UINT64_C(0x7abe1bc489c3d260), /* IQ4_NL */
        UINT64_C(0x1e7a9f0958158251), /* IQ4_XS */
    };
    for (size_t k = 0; k < LOCO_ARRAY_LEN(lowbit_types); k++) {
        const ggml_type t = lowbit_types[k];
        const size_t bytes = ggml_type_row_size(t, n);
        assert_int_equal(quant_quantize_row(t, x, q, n), LOCO_OK);
        const uint64_t h = fnv1a(q, bytes);
        if (h != want[k])
            fail_msg("%s: quantized bytes hash 0x%016" PRIx64 ", pinned 0x%016" PRIx64,
                     ggml_type_name(t), h, want[k]);
    }
    free(x);
    free(q);
}

/* llama-quantize's recipes on Qwen3-4B's shape (36 layers, 32/8 heads: n_gqa 4, tied). */
static void test_mix_recipes(void **state)
{
    (void)state;
    assert_null(ftype_mix_find("q9_k"));
    assert_null(ftype_mix_find("q4_0")); /* a pure type: --type, not --mix */
    const ftype_mix *q2 = ftype_mix_find("q2_k"), *q3m = ftype_mix_find("Q3_K_M");
    const ftype_mix *q3l = ftype_mix_find("q3_k_l"), *q3s = ftype_mix_find("q3_k_s");
    const ftype_mix *xs = ftype_mix_find("iq4_xs"), *nl = ftype_mix_find("iq4_nl");
    const ftype_mix *q4m = ftype_mix_find("q4_k_m"), *q4s = ftype_mix_find("q4_k_s");
    const ftype_mix *q5m = ftype_mix_find("q5_k_m"), *q5s = ftype_mix_find("q5_k_s");
    assert_non_null(q2);
    assert_non_null(q3m);
    assert_non_null(q3l);
    assert_non_null(q3s);
    assert_non_null(xs);
    assert_non_null(nl);
    assert_non_null(q4m);
    assert_non_null(q4s);
    assert_non_null(q5m);
    assert_non_null(q5s);
    assert_int_equal(q2->id, 10);
    assert_int_equal(q3s->id, 11);
    assert_int_equal(q3m->id, 12);
    assert_int_equal(q3l->id, 13);
    assert_int_equal(q4s->id, 14);
    assert_int_equal(q4m->id, 15);
    assert_int_equal(q5s->id, 16);
    assert_int_equal(q5m->id, 17);
    assert_int_equal(nl->id, 25);
    assert_int_equal(xs->id, 30);
    const uint32_t L = 36, G = 4;
#define T(m, role, layer) ftype_mix_type(m, role, layer, L, G, true)
    /* the tied embeddings take the output's Q6_K; untied, token_embd keeps the base type */
    assert_int_equal(T(q2, FTYPE_TOKEN_EMBD, 0), GGML_TYPE_Q6_K);
    assert_int_equal(ftype_mix_type(q3m, FTYPE_TOKEN_EMBD, 0, L, G, false), GGML_TYPE_Q3_K);
    assert_int_equal(ftype_mix_type(q3m, FTYPE_OUTPUT, 0, L, G, false), GGML_TYPE_Q6_K);
    /* Q2_K: attn_v Q4_K with n_gqa >= 4 (else Q3_K), ffn_down and attn_output Q3_K */
    assert_int_equal(T(q2, FTYPE_ATTN_Q, 5), GGML_TYPE_Q2_K);
    assert_int_equal(T(q2, FTYPE_FFN_UP, 5), GGML_TYPE_Q2_K);
    assert_int_equal(T(q2, FTYPE_ATTN_V, 5), GGML_TYPE_Q4_K);
    assert_int_equal(ftype_mix_type(q2, FTYPE_ATTN_V, 5, L, 2, true), GGML_TYPE_Q3_K);
    assert_int_equal(T(q2, FTYPE_FFN_DOWN, 5), GGML_TYPE_Q3_K);
    assert_int_equal(T(q2, FTYPE_ATTN_OUTPUT, 5), GGML_TYPE_Q3_K);
    /* Q3_K_M: attn_v Q5_K for the first two, then Q4_K; ffn_down Q5_K below n/16, Q4_K */
    assert_int_equal(T(q3m, FTYPE_ATTN_V, 1), GGML_TYPE_Q5_K);
    assert_int_equal(T(q3m, FTYPE_ATTN_V, 2), GGML_TYPE_Q4_K);
    assert_int_equal(T(q3m, FTYPE_FFN_DOWN, 1), GGML_TYPE_Q5_K);
    assert_int_equal(T(q3m, FTYPE_FFN_DOWN, 2), GGML_TYPE_Q4_K);
    assert_int_equal(T(q3m, FTYPE_ATTN_OUTPUT, 9), GGML_TYPE_Q4_K);
    assert_int_equal(T(q3m, FTYPE_FFN_GATE, 9), GGML_TYPE_Q3_K);
    assert_int_equal(T(q3l, FTYPE_ATTN_V, 9), GGML_TYPE_Q5_K);
    assert_int_equal(T(q3l, FTYPE_FFN_DOWN, 9), GGML_TYPE_Q5_K);
    assert_int_equal(T(q3l, FTYPE_ATTN_OUTPUT, 9), GGML_TYPE_Q5_K);
    assert_int_equal(T(q3s, FTYPE_ATTN_V, 0), GGML_TYPE_Q3_K);
    assert_int_equal(T(q3s, FTYPE_FFN_DOWN, 0), GGML_TYPE_Q3_K);
    /* IQ4: attn_v Q5_K with n_gqa >= 4, ffn_down Q5_K in the first eighth */
    assert_int_equal(T(xs, FTYPE_ATTN_V, 20), GGML_TYPE_Q5_K);
    assert_int_equal(ftype_mix_type(nl, FTYPE_ATTN_V, 20, L, 2, true), GGML_TYPE_IQ4_NL);
    assert_int_equal(T(xs, FTYPE_FFN_DOWN, 3), GGML_TYPE_Q5_K);
    assert_int_equal(T(xs, FTYPE_FFN_DOWN, 4), GGML_TYPE_IQ4_XS);
    assert_int_equal(T(nl, FTYPE_ATTN_K, 4), GGML_TYPE_IQ4_NL);
    /* Q4_K_M / Q5_K_M: use_more_bits layers of attn_v and ffn_down in Q6_K: 18 of 36 */
    int more = 0;
    for (uint32_t l = 0; l < L; l++) {
        const ggml_type v = T(q4m, FTYPE_ATTN_V, l);
        assert_int_equal(T(q4m, FTYPE_FFN_DOWN, l), v);
        assert_int_equal(T(q5m, FTYPE_ATTN_V, l), v == GGML_TYPE_Q6_K ? v : GGML_TYPE_Q5_K);
        more += v == GGML_TYPE_Q6_K;
    }
    assert_int_equal(more, 18);
    assert_int_equal(T(q4m, FTYPE_ATTN_V, 6), GGML_TYPE_Q6_K);
    assert_int_equal(T(q4m, FTYPE_ATTN_V, 7), GGML_TYPE_Q4_K);
    assert_int_equal(T(q4s, FTYPE_ATTN_V, 3), GGML_TYPE_Q5_K);
    assert_int_equal(T(q4s, FTYPE_ATTN_V, 4), GGML_TYPE_Q4_K);
    assert_int_equal(T(q4s, FTYPE_FFN_DOWN, 4), GGML_TYPE_Q4_K);
    assert_int_equal(T(q5s, FTYPE_FFN_DOWN, 0), GGML_TYPE_Q5_K);
#undef T
    assert_int_equal(ftype_of_type(GGML_TYPE_Q2_K), 10);
    assert_int_equal(ftype_of_type(GGML_TYPE_IQ4_XS), 30);
    assert_int_equal(ftype_of_type(GGML_TYPE_F32), 0);
}

/* ---------------------------------------------------------------- parity path */

#define PV 512   /* values per row: two super-blocks, sixteen 32-blocks */
#define PROWS 19 /* two groups of 8 rows and a tail */
#define PTOK 8   /* activation rows */
#define PRB 640  /* bytes >= one weight row of PV values (IQ4_XS: 272) */
#define PAB 640  /* bytes >= one activation row (Q8_K: 584, Q8_0: 544) */

/* Random weight rows (quantized from random floats) and activation rows of type t. */
static void parity_case(ggml_type t, uint64_t seed, uint8_t w[PROWS][PRB], uint8_t a[PTOK][PAB])
{
    uint64_t s = seed;
    float x[PV];
    for (int r = 0; r < PROWS; r++) {
        for (int i = 0; i < PV; i++)
            x[i] = (float)rand_int(&s, -1000, 1000) * 3e-4f + 0.02f;
        assert_int_equal(quant_quantize_row(t, x, w[r], PV), LOCO_OK);
    }
    for (int k = 0; k < PTOK; k++) {
        for (int i = 0; i < PV; i++)
            x[i] = (float)rand_int(&s, -1000, 1000) * 3e-3f;
        assert_int_equal(quant_quantize_act(quant_act_type(t), x, a[k], PV), LOCO_OK);
    }
}

/* sum over values [v0, v1) of the dequantized copy of block b (blk bytes, set up by the
 * caller) times the int8 activations q: an exact integer here. */
static int64_t int_dot(ggml_type t, const void *blk, const int8_t *q, int v0, int v1, int n)
{
    float y[256];
    dequant(t, blk, y, n);
    int64_t sum = 0;
    for (int i = v0; i < v1; i++) {
        assert_true(y[i] == (float)(int)y[i]);
        sum += (int64_t)y[i] * q[i];
    }
    return sum;
}

/* llama.cpp's q2_K_8x8 kernels per output, written from the formula: per super-block (gemv) or
 * per 128 values (gemm), acc = fma(sum sc*dot, d*d_a, acc), accm = fma(sum m*bsum, dmin*d_a,
 * accm); result acc - accm. The integer sums come from dequantizing copies of the block with
 * (d, dmin) = (1, 0) (sc * q) and (0, 1) (-m). */
static float want_q2_K(const block_q2_K *x, const block_q8_K *y, bool gemm)
{
    float acc = 0, accm = 0;
    for (int i = 0; i < PV / 256; i++) {
        block_q2_K sc = x[i], mn = x[i];
        sc.d = H_ONE, sc.dmin = 0, mn.d = 0, mn.dmin = H_ONE;
        const float dd = fp16_to_f32(x[i].d) * y[i].d, dm = fp16_to_f32(x[i].dmin) * y[i].d;
        const int parts = gemm ? 2 : 1;
        for (int h = 0; h < parts; h++) {
            const int v0 = 256 / parts * h, v1 = v0 + 256 / parts;
            acc = fmaf((float)int_dot(GGML_TYPE_Q2_K, &sc, y[i].qs, v0, v1, 256), dd, acc);
            accm = fmaf((float)-int_dot(GGML_TYPE_Q2_K, &mn, y[i].qs, v0, v1, 256), dm, accm);
        }
    }
    return acc - accm;
}

/* IQ4_XS in llama.cpp's AMX kernels and IQ panel gemm: acc = fma(sum ls*dot, d*d_a, acc) per
 * super-block (ls * level from a copy with d = 1). */
static float want_iq4_xs(const block_iq4_xs *x, const block_q8_K *y)
{
    float acc = 0;
    for (int i = 0; i < PV / 256; i++) {
        block_iq4_xs one = x[i];
        one.d = H_ONE;
        acc = fmaf((float)int_dot(GGML_TYPE_IQ4_XS, &one, y[i].qs, 0, 256, 256),
                   fp16_to_f32(x[i].d) * y[i].d, acc);
    }
    return acc;
}

/* iq4_nl_8x8: acc = fma(isum, d_w*d_a, acc) per 32-block. */
static float want_iq4_nl(const block_iq4_nl *x, const block_q8_0 *y)
{
    float acc = 0;
    for (int i = 0; i < PV / 32; i++) {
        block_iq4_nl one = x[i];
        one.d = H_ONE;
        acc = fmaf((float)int_dot(GGML_TYPE_IQ4_NL, &one, y[i].qs, 0, 32, 32),
                   fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d), acc);
    }
    return acc;
}

static void test_parity_float_steps(void **state)
{
    (void)state;
    static uint8_t w[PROWS][PRB], a[PTOK][PAB];
    for (uint64_t seed = 1; seed <= 3; seed++) {
        parity_case(GGML_TYPE_Q2_K, seed, w, a);
        for (int r = 0; r < PROWS; r++)
            for (int k = 0; k < PTOK; k++) {
                assert_true(quant_lowbit_repack_q2_K_gemv(PV, w[r], a[k]) ==
                            want_q2_K((const block_q2_K *)w[r], (const block_q8_K *)a[k], false));
                assert_true(quant_lowbit_repack_q2_K_gemm(PV, w[r], a[k]) ==
                            want_q2_K((const block_q2_K *)w[r], (const block_q8_K *)a[k], true));
            }
        parity_case(GGML_TYPE_IQ4_XS, seed, w, a);
        for (int r = 0; r < PROWS; r++)
            for (int k = 0; k < PTOK; k++)
                assert_true(quant_lowbit_amx_iq4_xs(PV, w[r], a[k]) ==
                            want_iq4_xs((const block_iq4_xs *)w[r], (const block_q8_K *)a[k]));
        parity_case(GGML_TYPE_IQ4_NL, seed, w, a);
        for (int r = 0; r < PROWS; r++)
            for (int k = 0; k < PTOK; k++)
                assert_true(quant_lowbit_repack_iq4_nl(PV, w[r], a[k]) ==
                            want_iq4_nl((const block_iq4_nl *)w[r], (const block_q8_0 *)a[k]));
    }
}

/* Which weights llama.cpp's builds repack or take to the AMX / IQ panel kernels
 * (ggml_repack_get_optimal_repack_type, qtype_has_amx_kernels, ggml_cpu_iqp_supports_mul_mat). */
static void test_parity_kernel_choice(void **state)
{
    (void)state;
    const char *with[] = {"amx", "avx512", "avx2"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(with); i++) {
        const vm_profile *p = vm_profile_named(with[i]);
        assert_non_null(p);
        const bool avx512 = i < 2, amx = i == 0;
        assert_true(vm_uses_repack(p, GGML_TYPE_IQ4_NL, 4096));
        assert_true(vm_uses_repack(p, GGML_TYPE_IQ4_XS, 151936));
        assert_int_equal(vm_uses_repack(p, GGML_TYPE_Q2_K, 4096), avx512);
        assert_false(vm_uses_repack(p, GGML_TYPE_Q3_K, 4096));
        assert_false(vm_uses_repack(p, GGML_TYPE_IQ4_NL, 100)); /* not a multiple of 8 */
        assert_false(vm_uses_repack(p, GGML_TYPE_Q2_K, 100));
        assert_false(vm_uses_repack(p, GGML_TYPE_IQ4_XS, 100));
        assert_int_equal(vm_uses_amx(p, GGML_TYPE_IQ4_XS), amx);
        assert_false(vm_uses_amx(p, GGML_TYPE_Q2_K));
        assert_false(vm_uses_amx(p, GGML_TYPE_Q3_K));
        assert_false(vm_uses_amx(p, GGML_TYPE_IQ4_NL));
    }
    for (size_t k = 0; k < LOCO_ARRAY_LEN(lowbit_types); k++)
        assert_false(vm_uses_repack(vm_profile_named("scalar"), lowbit_types[k], 4096));
}

/* vm_repack_matmul / vm_amx_matmul run each output with the kernel llama.cpp uses for that
 * batch: Q2_K's gemm for the activation rows in whole groups of 4 (when there are more than
 * 3), its gemv for the rest; IQ4_XS's panel gemm from 8 rows on, vec_dot below; IQ4_NL's one
 * formula. Each pair of formulas differs somewhere in these rows (else the test could not tell
 * them apart). */
static void test_parity_dispatch(void **state)
{
    (void)state;
    static uint8_t w[PROWS][PRB], a[PTOK][PAB];
    static float out[PTOK][PROWS];
    const size_t as = PAB, os = PROWS;
    int q2_differ = 0, xs_differ = 0;
    for (uint64_t seed = 7; seed <= 9; seed++) {
        parity_case(GGML_TYPE_Q2_K, seed, w, a);
        const size_t rb = ggml_type_row_size(GGML_TYPE_Q2_K, PV);
        /* pack the rows contiguously (rows of rb bytes) */
        static uint8_t W[PROWS * PRB];
        for (int r = 0; r < PROWS; r++)
            memcpy(W + (size_t)r * rb, w[r], rb);
        for (int nt = 1; nt <= 7; nt++) {
            memset(out, 0, sizeof(out));
            vm_repack_matmul(GGML_TYPE_Q2_K, W, PV, a, nt, as, &out[0][0], os, 0, PROWS);
            const int n_gemm = nt > 3 ? nt - nt % 4 : 0;
            for (int k = 0; k < nt; k++)
                for (int r = 0; r < PROWS; r++) {
                    const float gv = quant_lowbit_repack_q2_K_gemv(PV, w[r], a[k]);
                    const float gm = quant_lowbit_repack_q2_K_gemm(PV, w[r], a[k]);
                    assert_true(out[k][r] == (k < n_gemm ? gm : gv));
                    q2_differ += gv != gm;
                }
        }

        parity_case(GGML_TYPE_IQ4_XS, seed, w, a);
        const size_t xb = ggml_type_row_size(GGML_TYPE_IQ4_XS, PV);
        for (int r = 0; r < PROWS; r++)
            memcpy(W + (size_t)r * xb, w[r], xb);
        for (int nt = 7; nt <= 8; nt++) {
            vm_repack_matmul(GGML_TYPE_IQ4_XS, W, PV, a, nt, as, &out[0][0], os, 0, PROWS);
            for (int k = 0; k < nt; k++)
                for (int r = 0; r < PROWS; r++) {
                    const float vd = quant_vec_dot(GGML_TYPE_IQ4_XS, PV, w[r], a[k]);
                    const float gm = quant_lowbit_amx_iq4_xs(PV, w[r], a[k]);
                    assert_true(out[k][r] == (nt >= 8 ? gm : vd));
                    xs_differ += vd != gm;
                }
        }
        vm_amx_matmul(GGML_TYPE_IQ4_XS, W, PV, a, 2, as, &out[0][0], os, 3, 17);
        for (int k = 0; k < 2; k++)
            for (int r = 3; r < 17; r++)
                assert_true(out[k][r] == quant_lowbit_amx_iq4_xs(PV, w[r], a[k]));

        parity_case(GGML_TYPE_IQ4_NL, seed, w, a);
        const size_t nb = ggml_type_row_size(GGML_TYPE_IQ4_NL, PV);
        for (int r = 0; r < PROWS; r++)
            memcpy(W + (size_t)r * nb, w[r], nb);
        vm_repack_matmul(GGML_TYPE_IQ4_NL, W, PV, a, 5, as, &out[0][0], os, 8, PROWS);
        for (int k = 0; k < 5; k++)
            for (int r = 8; r < PROWS; r++)
                assert_true(out[k][r] == quant_lowbit_repack_iq4_nl(PV, w[r], a[k]));
    }
    assert_true(q2_differ > 0);
    assert_true(xs_differ > 0);
}

/* loco model synth quantizes rows on a thread pool: the file must hold the same bytes for any
 * thread count (1000 vocabulary rows: two chunks of rows, the second partial). */
static void test_synth_threads(void **state)
{
    (void)state;
    static const char tok[] = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":"
                              "[]},\"added_tokens\":[]}";
    const char *mixes[] = {"q2_k"}; /* Q2_K, Q3_K, Q4_K and Q6_K */
    for (size_t m = 0; m < LOCO_ARRAY_LEN(mixes); m++) {
        buf got[2];
        for (int k = 0; k < 2; k++) {
            synth_params p;
            synth_params_default(&p);
            p.tokenizer_json = tok;
            p.tokenizer_json_len = strlen(tok);
            p.n_vocab = 1000;
            p.n_layer = 1;
            p.n_ff = 256;
            p.n_head_kv = 1;
            p.tied = false;
            p.mix = ftype_mix_find(mixes[m]);
            assert_non_null(p.mix);
            p.n_threads = k ? 3 : 1;
            char path[64];
            snprintf(path, sizeof(path), "/tmp/loco-test-synth-%d-%d.gguf", (int)getpid(), k);
            loco_err err;
            loco_err_clear(&err);
            if (synth_write(&p, path, &err))
                fail_msg("synth: %s", err.msg);
            buf_init(&got[k], BUF_UNLIMITED);
            assert_int_equal(file_read_all(path, &got[k], NULL), LOCO_OK);
            unlink(path);
        }
        assert_true(got[0].len > 1000 * 84);
        assert_int_equal(got[0].len, got[1].len);
        assert_memory_equal(got[0].data, got[1].data, got[0].len);
        buf_release(&got[0]);
        buf_release(&got[1]);
    }
}

/* A type loco still cannot compute with (the other IQ types of llama-quantize) names itself and
 * the supported list, now with the low-bit types, at load (quant_check) and in synth. */
static void test_unsupported_names_itself(void **state)
{
    (void)state;
    const char *list = ggml_type_supported_list();
    assert_non_null(strstr(list, "Q2_K, Q3_K"));
    assert_non_null(strstr(list, "IQ4_NL, IQ4_XS"));
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(quant_check(GGML_TYPE_IQ2_XXS, 256, "blk.0.ffn_up.weight", &err),
                     LOCO_ERR_UNSUPPORTED);
    char want[512];
    snprintf(want, sizeof(want),
             "tensor 'blk.0.ffn_up.weight' has type IQ2_XXS (id %u); supported types: %s",
             (unsigned)GGML_TYPE_IQ2_XXS, list);
    assert_string_equal(err.msg, want);
    for (size_t k = 0; k < LOCO_ARRAY_LEN(lowbit_types); k++)
        assert_int_equal(quant_check(lowbit_types[k], 512, "w", &err), LOCO_OK);
    synth_params p;
    synth_params_default(&p);
    p.type = GGML_TYPE_IQ2_XXS;
    loco_err_clear(&err);
    assert_int_equal(synth_write(&p, "/nonexistent/x.gguf", &err), LOCO_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "IQ2_XXS"));
    assert_non_null(strstr(err.msg, list));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_q2_K),
        cmocka_unit_test(test_decode_q3_K),
        cmocka_unit_test(test_decode_iq4_nl),
        cmocka_unit_test(test_decode_iq4_xs),
        cmocka_unit_test(test_dots_follow_dequant),
        cmocka_unit_test(test_quantizers_pinned),
        cmocka_unit_test(test_mix_recipes),
        cmocka_unit_test(test_parity_float_steps),
        cmocka_unit_test(test_parity_kernel_choice),
        cmocka_unit_test(test_parity_dispatch),
        cmocka_unit_test(test_synth_threads),
        cmocka_unit_test(test_unsupported_names_itself),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
