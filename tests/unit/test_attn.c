/* test_attn.c: the fast path's attention (engine/attn.h) against a plain double-precision
 * softmax(q k / sqrt(d)) v over the same cache rows: several sequences in one call, a prompt
 * chunk at depth (causal mask inside the chunk, tiles partly visible), decoding over a long
 * cache (the KV range split across tasks and merged), prompt items of several query groups,
 * F16 and Q8_0 caches, the SIMD kernels and their scalar twins. */
#include "base/common.h"

#include <math.h>
#include <setjmp.h>
#include <cmocka.h>

#include "engine/attn.h"
#include "engine/ggml_types.h"
#include "engine/kv.h"
#include "engine/quant.h"

#define HEADS 8
#define KV_HEADS 2
#define MAX_DIM 128

static uint32_t head_dim = 32; /* of the case being run */

static uint64_t rng = 88172645463325252ull;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Fills positions [0, n) of every layer-0 head with random K and V. */
static void fill_seq(kv_seq *s, uint32_t n)
{
    assert_int_equal(kv_seq_reserve(s, n, NULL), LOCO_OK);
    size_t rb = kv_seq_row_bytes(s);
    float row[MAX_DIM];
    for (uint32_t p = 0; p < n; p++)
        for (uint32_t h = 0; h < KV_HEADS; h++)
            for (int kind = 0; kind < 2; kind++) {
                for (uint32_t i = 0; i < head_dim; i++)
                    row[i] = 2.0f * frand();
                uint8_t *dst = (kind ? kv_seq_v(s, 0, h, p / KV_BLOCK)
                                     : kv_seq_k(s, 0, h, p / KV_BLOCK)) +
                               (p % KV_BLOCK) * rb;
                if (kv_seq_type(s) == GGML_TYPE_F16)
                    for (uint32_t i = 0; i < head_dim; i++)
                        ((uint16_t *)dst)[i] = fp16_from_f32(row[i]);
                else
                    quant_quantize_act(GGML_TYPE_Q8_0, row, dst, head_dim);
            }
    int32_t *ids = calloc(n, sizeof(int32_t));
    kv_seq_commit(s, ids, n);
    free(ids);
}

static void row_at(const kv_seq *s, int kind, uint32_t h, uint32_t p, float *out)
{
    const uint8_t *src = (kind ? kv_seq_v(s, 0, h, p / KV_BLOCK) : kv_seq_k(s, 0, h, p / KV_BLOCK)) +
                         (p % KV_BLOCK) * kv_seq_row_bytes(s);
    quant_dequantize_row(kv_seq_type(s), src, out, head_dim);
}

/* Checks seg's output against the reference; returns the largest error. */
static double check_seg(const attn_seg *sg)
{
    double worst = 0;
    const uint32_t len = sg->pos0 + sg->n;
    /* the cache rows as f32, once: (kind, KV head, position, dim) */
    float *rows = malloc((size_t)2 * KV_HEADS * len * head_dim * sizeof(float));
    double *w = malloc(len * sizeof(double));
    assert_non_null(rows);
    assert_non_null(w);
    for (int kind = 0; kind < 2; kind++)
        for (uint32_t h = 0; h < KV_HEADS; h++)
            for (uint32_t p = 0; p < len; p++)
                row_at(sg->seq, kind, h, p,
                       rows + (((size_t)kind * KV_HEADS + h) * len + p) * head_dim);
    for (uint32_t t = 0; t < sg->n; t++)
        for (uint32_t h = 0; h < HEADS; h++) {
            uint32_t kvh = h / (HEADS / KV_HEADS), n = sg->pos0 + t + 1;
            const float *q = sg->q + ((size_t)t * HEADS + h) * head_dim;
            const float *kr = rows + (size_t)kvh * len * head_dim;
            const float *vr = rows + ((size_t)KV_HEADS + kvh) * len * head_dim;
            double mx = -INFINITY, sum = 0;
            for (uint32_t p = 0; p < n; p++) {
                double d = 0;
                for (uint32_t i = 0; i < head_dim; i++)
                    d += (double)q[i] * kr[(size_t)p * head_dim + i];
                w[p] = d / sqrt((double)head_dim);
                mx = w[p] > mx ? w[p] : mx;
            }
            for (uint32_t p = 0; p < n; p++)
                sum += (w[p] = exp(w[p] - mx));
            double o[MAX_DIM] = {0};
            for (uint32_t p = 0; p < n; p++)
                for (uint32_t i = 0; i < head_dim; i++)
                    o[i] += w[p] / sum * vr[(size_t)p * head_dim + i];
            const float *got = sg->out + ((size_t)t * HEADS + h) * head_dim;
            for (uint32_t i = 0; i < head_dim; i++) {
                double e = fabs(got[i] - o[i]);
                worst = e > worst ? e : worst;
            }
        }
    free(w);
    free(rows);
    return worst;
}

static const char *const MODES[5] = {"simd", "scalar", "bf16", "avx2", "bf16+int8"};

/* mode: 0 SIMD f32 (AVX-512 for decoding where the CPU has it), 1 scalar, 2 the BF16 kernel
 * (skipped where the CPU lacks it), 3 SIMD f32 with AVX2 only, 4 the BF16 kernel with int8
 * scores (skipped where the CPU lacks AVX512_VNNI) */
static void run_case(ggml_type type, int mode, uint32_t dim)
{
    const bool scalar = mode == 1;
    head_dim = dim;
    kv_params kp = {1, KV_HEADS, head_dim, type, 128, 0};
    kv_cache *c = NULL;
    assert_int_equal(kv_cache_new(&kp, &c, NULL), LOCO_OK);
    /* a: decoding at depth 1500 (split across tasks); b: a 70-token chunk after 100 cached
     * positions; c: a 3-token prompt from scratch */
    const uint32_t past[3] = {1500, 100, 0}, n[3] = {1, 70, 3};
    kv_seq *seq[3];
    attn_seg segs[3];
    uint32_t total = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kv_seq_new(c, 2048, &seq[i], NULL), LOCO_OK);
        fill_seq(seq[i], past[i] + n[i]);
        assert_int_equal(kv_seq_truncate(seq[i], past[i] + n[i], NULL), LOCO_OK);
        float *q = malloc((size_t)n[i] * HEADS * head_dim * sizeof(float));
        float *o = calloc((size_t)n[i] * HEADS * head_dim, sizeof(float));
        for (uint32_t j = 0; j < n[i] * HEADS * head_dim; j++)
            q[j] = 1.5f * frand();
        segs[i] = (attn_seg){seq[i], q, o, n[i], past[i]};
        total += n[i];
    }
    attn_ctx *a = NULL;
    assert_int_equal(attn_new(HEADS, KV_HEADS, head_dim, 4, total, 3, &a, NULL), LOCO_OK);
    attn_force_scalar(a, scalar);
    attn_force_bf16(a, mode == 2 || mode == 4);
    attn_force_qk8(a, mode == 4);
    if (mode == 3)
        attn_force_avx512(a, false);
    if ((mode == 2 && !attn_uses_bf16(a)) || (mode == 4 && !attn_uses_qk8(a))) {
        attn_free(a);
        for (int i = 0; i < 3; i++) {
            free((void *)segs[i].q);
            free(segs[i].out);
            kv_seq_free(seq[i]);
        }
        kv_cache_free(c);
        skip();
    }
    /* bf16 products: 8 significant bits; int8 scores: 7 bits of each row's largest value;
     * f32 elsewhere */
    const double tol = mode == 4 ? 3e-2 : mode == 2 ? 1.5e-2 : 5e-6;
    attn_forward(a, NULL, 0, segs, 3);
    for (int i = 0; i < 3; i++) {
        double e = check_seg(&segs[i]);
        if (getenv("LOCO_TEST_VERBOSE"))
            fprintf(stderr, "%s d%u %s seg %d: max error %.3g\n", ggml_type_name(type),
                    head_dim, MODES[mode], i, e);
        assert_true(e < tol);
        free((void *)segs[i].q);
        free(segs[i].out);
        kv_seq_free(seq[i]);
    }
    /* decoding alone: few tasks, so the KV range is split (merge path) */
    assert_int_equal(kv_seq_new(c, 2048, &seq[0], NULL), LOCO_OK);
    fill_seq(seq[0], 1800);
    float q[HEADS * MAX_DIM], o[HEADS * MAX_DIM];
    for (uint32_t j = 0; j < HEADS * head_dim; j++)
        q[j] = frand();
    attn_seg one = {seq[0], q, o, 1, 1799};
    attn_forward(a, NULL, 0, &one, 1);
    assert_true(check_seg(&one) < tol);
    kv_seq_free(seq[0]);
    /* a 6-token chunk alone at depth: prompt items (24 query rows each, the transposed
     * kernels) whose KV range is split too, their partial sums merged */
    assert_int_equal(kv_seq_new(c, 2048, &seq[0], NULL), LOCO_OK);
    fill_seq(seq[0], 1206);
    float q6[6 * HEADS * MAX_DIM], o6[6 * HEADS * MAX_DIM];
    for (uint32_t j = 0; j < 6 * HEADS * head_dim; j++)
        q6[j] = 1.5f * frand();
    attn_seg six = {seq[0], q6, o6, 6, 1200};
    attn_forward(a, NULL, 0, &six, 1);
    const double e6 = check_seg(&six);
    if (getenv("LOCO_TEST_VERBOSE"))
        fprintf(stderr, "%s d%u %s split chunk: max error %.3g\n", ggml_type_name(type),
                head_dim, MODES[mode], e6);
    assert_true(e6 < tol);
    kv_seq_free(seq[0]);
    attn_free(a);

    /* one thread: prompt items of several query groups each (tiles read once for all): 150
     * tokens after 100 cached positions (groups partly past the causal diagonal, tiles partly
     * visible, an item whose last group is partial) and 130 from scratch; with the default
     * cap (4 groups this near the start: items of 64 tokens) and with 8 (the cap deep in the
     * context: 128 tokens, the most the kernels hold) */
    for (uint32_t cap = 0; cap <= 8; cap += 8) {
        assert_int_equal(attn_new(HEADS, KV_HEADS, head_dim, 1, 280, 2, &a, NULL), LOCO_OK);
        attn_force_scalar(a, scalar);
        attn_force_bf16(a, mode == 2 || mode == 4);
        attn_force_qk8(a, mode == 4);
        if (mode == 3)
            attn_force_avx512(a, false);
        attn_force_groups(a, cap);
        const uint32_t past2[2] = {100, 0}, n2[2] = {150, 130};
        for (int i = 0; i < 2; i++) {
            assert_int_equal(kv_seq_new(c, 2048, &seq[i], NULL), LOCO_OK);
            fill_seq(seq[i], past2[i] + n2[i]);
            float *qq = malloc((size_t)n2[i] * HEADS * head_dim * sizeof(float));
            float *oo = calloc((size_t)n2[i] * HEADS * head_dim, sizeof(float));
            for (uint32_t j = 0; j < n2[i] * HEADS * head_dim; j++)
                qq[j] = 1.5f * frand();
            segs[i] = (attn_seg){seq[i], qq, oo, n2[i], past2[i]};
        }
        attn_forward(a, NULL, 0, segs, 2);
        for (int i = 0; i < 2; i++) {
            double e = check_seg(&segs[i]);
            if (getenv("LOCO_TEST_VERBOSE"))
                fprintf(stderr, "%s d%u %s groups (cap %u) seg %d: max error %.3g\n",
                        ggml_type_name(type), head_dim, MODES[mode], cap, i, e);
            assert_true(e < tol);
            free((void *)segs[i].q);
            free(segs[i].out);
            kv_seq_free(seq[i]);
        }
        attn_free(a);
    }
    kv_cache_free(c);
}

/* head_dim 32 (one pass of everything) and 128 (Qwen3's: the AVX-512 decoding kernels; the
 * scalar kernels have no other case at 128) */
static void run_dims(ggml_type type, int mode)
{
    run_case(type, mode, 32);
    if (mode != 1)
        run_case(type, mode, 128);
}

static void test_f16_simd(void **state)
{
    (void)state;
    run_dims(GGML_TYPE_F16, 0);
}

static void test_f16_scalar(void **state)
{
    (void)state;
    run_dims(GGML_TYPE_F16, 1);
}

static void test_f16_bf16(void **state)
{
    (void)state;
    run_dims(GGML_TYPE_F16, 2);
}

static void test_f16_avx2(void **state)
{
    (void)state;
    run_dims(GGML_TYPE_F16, 3);
}

static void test_q8_simd(void **state)
{
    (void)state;
    run_dims(GGML_TYPE_Q8_0, 0);
}

static void test_q8_scalar(void **state)
{
    (void)state;
    run_dims(GGML_TYPE_Q8_0, 1);
}

static void test_q8_bf16(void **state)
{
    (void)state;
    run_dims(GGML_TYPE_Q8_0, 2);
}

static void test_f16_int8(void **state)
{
    (void)state;
    run_dims(GGML_TYPE_F16, 4);
}

static void test_q8_int8(void **state)
{
    (void)state;
    run_dims(GGML_TYPE_Q8_0, 4);
}

static void test_q8_avx2(void **state)
{
    (void)state;
    run_dims(GGML_TYPE_Q8_0, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_simd), cmocka_unit_test(test_f16_scalar),
        cmocka_unit_test(test_f16_bf16), cmocka_unit_test(test_f16_avx2),
        cmocka_unit_test(test_q8_simd),  cmocka_unit_test(test_q8_scalar),
        cmocka_unit_test(test_q8_bf16),  cmocka_unit_test(test_q8_avx2),
        cmocka_unit_test(test_f16_int8), cmocka_unit_test(test_q8_int8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
