/* test_parity_kernels.c: float steps that must be llama.cpp's to the bit (the parity path;
 * test_quant.c compares the kernels with a tolerance), written out here from ggml's x86 code:
 * - vm_repack_matmul, the mirror of llama.cpp's repacked Q4_0/Q4_K kernels (q4_0_8x8_q8_0,
 *   q4_K_8x8_q8_K; what every AVX2 build runs for those weights when AMX does not take them):
 *   its gemv and gemm formulas, which activation rows take which, the AVX2 path against the
 *   scalar one, and vm_uses_repack;
 * - the mins term of the AVX2 Q5_K dot product, which GCC contracts into an fma in ggml. */
#include "base/common.h"

#include <math.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "engine/quant.h"
#include "engine/quant_int.h"
#include "engine/vecmath.h"

#define NV 512   /* values per row: two Q4_K super-blocks */
#define ROWS 19  /* weight rows: two groups of 8 and a tail */
#define TOKENS 7 /* activation rows: 4 through the gemm, 3 through the gemv */

typedef struct {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static float rng_unit(rng *r) /* [-1, 1) */
{
    return (float)((double)(rng_next(r) >> 11) / (double)(1ULL << 52)) - 1.0f;
}

typedef struct {
    block_q4_K w[ROWS][NV / QK_K];
    block_q8_K a[TOKENS][NV / QK_K];
} q4k_case;

static void make_q4k(q4k_case *c, uint64_t seed)
{
    rng r = {seed};
    float x[NV];
    for (int i = 0; i < ROWS; i++) {
        for (int j = 0; j < NV; j++)
            x[j] = rng_unit(&r) * 0.3f + 0.05f;
        assert_int_equal(quant_quantize_row(GGML_TYPE_Q4_K, x, c->w[i], NV), LOCO_OK);
    }
    for (int t = 0; t < TOKENS; t++) {
        for (int j = 0; j < NV; j++)
            x[j] = rng_unit(&r) * 3.0f;
        assert_int_equal(quant_quantize_act(GGML_TYPE_Q8_K, x, c->a[t], NV), LOCO_OK);
    }
}

/* 6-bit scale and min j of a Q4_K super-block (ggml's get_scale_min_k4, from the block
 * layout in docs: j < 4 in the low 6 bits of bytes j and j+4, else split over byte j+4 and the
 * top bits of bytes j-4 and j). */
static void scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* llama.cpp's repacked Q4_K arithmetic, written out: two accumulators, acc - accm at the end;
 * the gemv adds once per super-block, the gemm once per 64 values. */
static float q4k_expected(const block_q4_K *w, const block_q8_K *a, bool gemm)
{
    float acc = 0.0f, accm = 0.0f;
    for (int i = 0; i < NV / QK_K; i++) {
        int32_t s = 0, sm = 0;
        const float dd = fp16_to_f32(w[i].d) * a[i].d, dm = fp16_to_f32(w[i].dmin) * a[i].d;
        for (int c = 0; c < 4; c++) {
            int32_t cs = 0, cm = 0;
            for (int h = 0; h < 2; h++) {
                int sc, m, dot = 0, bsum = 0;
                scale_min(w[i].scales, 2 * c + h, &sc, &m);
                for (int l = 0; l < 32; l++) {
                    const int q = (w[i].qs[32 * c + l] >> (4 * h)) & 0xF;
                    dot += q * a[i].qs[64 * c + 32 * h + l];
                    bsum += a[i].qs[64 * c + 32 * h + l];
                }
                cs += sc * dot;
                cm += m * bsum;
            }
            if (gemm) {
                acc = fmaf((float)cs, dd, acc);
                accm = fmaf((float)cm, dm, accm);
            }
            s += cs;
            sm += cm;
        }
        if (!gemm) {
            acc = fmaf((float)s, dd, acc);
            accm = fmaf((float)sm, dm, accm);
        }
    }
    return acc - accm;
}

/* Activation rows 0..3 go through the gemm, 4..6 through the gemv, bit for bit; the two
 * formulas differ on this data, so the test tells them apart. */
static void test_q4_K_gemm_and_gemv_rows(void **state)
{
    (void)state;
    static q4k_case c;
    make_q4k(&c, 42);
    float out[TOKENS][ROWS];
    vm_repack_matmul(GGML_TYPE_Q4_K, c.w, NV, c.a, TOKENS, sizeof(c.a[0]), &out[0][0], ROWS, 0,
                     ROWS);
    int differ = 0;
    for (int t = 0; t < TOKENS; t++) {
        for (int r = 0; r < ROWS; r++) {
            const float gemm = q4k_expected(c.w[r], c.a[t], true);
            const float gemv = q4k_expected(c.w[r], c.a[t], false);
            differ += gemm != gemv;
            const float want = t < 4 ? gemm : gemv;
            if (out[t][r] != want)
                fail_msg("token %d row %d: %.9g, want %.9g (%s)", t, r, (double)out[t][r],
                         (double)want, t < 4 ? "gemm" : "gemv");
        }
    }
    assert_true(differ > 0);
}

/* Three rows or fewer all go through the gemv (ggml uses its gemm only for more than 3). */
static void test_q4_K_few_rows_gemv(void **state)
{
    (void)state;
    static q4k_case c;
    make_q4k(&c, 7);
    float out[3][ROWS];
    vm_repack_matmul(GGML_TYPE_Q4_K, c.w, NV, c.a, 3, sizeof(c.a[0]), &out[0][0], ROWS, 0, ROWS);
    for (int t = 0; t < 3; t++)
        for (int r = 0; r < ROWS; r++)
            assert_true(out[t][r] == q4k_expected(c.w[r], c.a[t], false));
}

/* The 8-row SIMD path (rows 1..16 here) gives the bits of the one-row scalar path. */
static void test_q4_K_rows_of_8_equal_single_rows(void **state)
{
    (void)state;
    static q4k_case c;
    make_q4k(&c, 99);
    float all[TOKENS][ROWS], one[TOKENS][ROWS];
    vm_repack_matmul(GGML_TYPE_Q4_K, c.w, NV, c.a, TOKENS, sizeof(c.a[0]), &all[0][0], ROWS, 1,
                     ROWS);
    for (int r = 1; r < ROWS; r++)
        vm_repack_matmul(GGML_TYPE_Q4_K, c.w, NV, c.a, TOKENS, sizeof(c.a[0]), &one[0][0], ROWS, r,
                         r + 1);
    for (int t = 0; t < TOKENS; t++)
        for (int r = 1; r < ROWS; r++)
            assert_true(all[t][r] == one[t][r]);
}

/* Q4_0's repacked kernels add (float)isum * (d_w * d_a) per block with one fma, as the AMX
 * kernels do: the same bits for every row and token. */
static void test_q4_0_as_amx(void **state)
{
    (void)state;
    rng r = {5};
    static block_q4_0 w[ROWS][NV / QK4_0];
    static block_q8_0 a[TOKENS][NV / QK8_0];
    float x[NV];
    for (int i = 0; i < ROWS; i++) {
        for (int j = 0; j < NV; j++)
            x[j] = rng_unit(&r);
        assert_int_equal(quant_quantize_row(GGML_TYPE_Q4_0, x, w[i], NV), LOCO_OK);
    }
    for (int t = 0; t < TOKENS; t++) {
        for (int j = 0; j < NV; j++)
            x[j] = rng_unit(&r) * 5.0f;
        assert_int_equal(quant_quantize_act(GGML_TYPE_Q8_0, x, a[t], NV), LOCO_OK);
    }
    float got[TOKENS][ROWS];
    vm_repack_matmul(GGML_TYPE_Q4_0, w, NV, a, TOKENS, sizeof(a[0]), &got[0][0], ROWS, 0, ROWS);
    for (int t = 0; t < TOKENS; t++) {
        for (int i = 0; i < ROWS; i++) {
            float acc = 0.0f;
            for (int b = 0; b < NV / QK4_0; b++) {
                int32_t s = 0;
                for (int j = 0; j < 16; j++)
                    s += ((w[i][b].qs[j] & 0xF) - 8) * a[t][b].qs[j] +
                         ((w[i][b].qs[j] >> 4) - 8) * a[t][b].qs[j + 16];
                acc = fmaf((float)s, fp16_to_f32(w[i][b].d) * fp16_to_f32(a[t][b].d), acc);
            }
            assert_true(got[t][i] == acc);
        }
    }
}

/* Which weights llama.cpp repacks: Q4_0 and Q4_K with a multiple of 8 rows, on every build
 * with AVX2 (the amx, avx512 and avx2 profiles), never on the scalar one. */
static void test_uses_repack(void **state)
{
    (void)state;
    const char *with[] = {"amx", "avx512", "avx2"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(with); i++) {
        const vm_profile *p = vm_profile_named(with[i]);
        assert_non_null(p);
        assert_true(vm_uses_repack(p, GGML_TYPE_Q4_0, 4096));
        assert_true(vm_uses_repack(p, GGML_TYPE_Q4_K, 151936));
        assert_false(vm_uses_repack(p, GGML_TYPE_Q4_K, 100)); /* not a multiple of 8 */
        assert_false(vm_uses_repack(p, GGML_TYPE_Q8_0, 4096));
        assert_false(vm_uses_repack(p, GGML_TYPE_Q4_1, 4096));
        assert_false(vm_uses_repack(p, GGML_TYPE_Q5_K, 4096));
        assert_false(vm_uses_repack(p, GGML_TYPE_Q6_K, 4096));
    }
    assert_false(vm_uses_repack(vm_profile_named("scalar"), GGML_TYPE_Q4_0, 4096));
}

/* ggml_vec_dot_q5_K_q8_K (AVX2) adds the mins term per super-block as summs += dmin * summ,
 * which GCC compiles to one fma. With all quants 0 the dot product is that term alone. */
static void test_q5_K_mins_fma(void **state)
{
    (void)state;
    const quant_kernels *k = quant_kernels_avx2();
    if (!k)
        skip();
    rng r = {11};
    int differ = 0;
    for (int round = 0; round < 64; round++) {
        block_q5_K w[2];
        block_q8_K a[2];
        float x[2 * QK_K];
        memset(w, 0, sizeof(w));
        for (int j = 0; j < 2 * QK_K; j++)
            x[j] = rng_unit(&r) * 4.0f;
        assert_int_equal(quant_quantize_act(GGML_TYPE_Q8_K, x, a, 2 * QK_K), LOCO_OK);
        for (int i = 0; i < 2; i++) {
            w[i].d = fp16_from_f32(0.01f);
            w[i].dmin = fp16_from_f32(0.001f + 0.01f * fabsf(rng_unit(&r)));
            for (int b = 0; b < K_SCALE_SIZE; b++)
                w[i].scales[b] = (uint8_t)rng_next(&r);
        }
        float fused = 0.0f, plain = 0.0f;
        for (int i = 0; i < 2; i++) {
            int32_t summ = 0;
            for (int j = 0; j < 8; j++) {
                int sc, m;
                scale_min(w[i].scales, j, &sc, &m);
                summ += m * (a[i].bsums[2 * j] + a[i].bsums[2 * j + 1]);
            }
            const float dmin = -a[i].d * fp16_to_f32(w[i].dmin);
            fused = fmaf(dmin, (float)summ, fused);
            const float prod = dmin * (float)summ;
            plain = plain + prod;
        }
        const float got = k->ops[GGML_TYPE_Q5_K].vec_dot(2 * QK_K, w, a);
        if (got != fused)
            fail_msg("round %d: %.9g, want %.9g (unfused %.9g)", round, (double)got, (double)fused,
                     (double)plain);
        differ += fused != plain;
    }
    assert_true(differ > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q4_K_gemm_and_gemv_rows),
        cmocka_unit_test(test_q4_K_few_rows_gemv),
        cmocka_unit_test(test_q4_K_rows_of_8_equal_single_rows),
        cmocka_unit_test(test_q4_0_as_amx),
        cmocka_unit_test(test_uses_repack),
        cmocka_unit_test(test_q5_K_mins_fma),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
