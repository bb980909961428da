/* test_quant.c: unit tests of engine/quant: hand-built blocks of every type decoded to known
 * values, quantizer round-trip error bounds, activation quantizers against hand-computed
 * blocks, every AVX2 kernel against the scalar reference, row loops and kernel dispatch. */
#include "base/common.h"

#include <math.h>
#include <setjmp.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "engine/quant.h"
#include "engine/quant_int.h"
#include "engine/quant_lowbit.h"

#define H_ONE 0x3C00  /* fp16 1.0 */
#define H_HALF 0x3800 /* fp16 0.5 */
#define H_TWO 0x4000  /* fp16 2.0 */
#define H_MONE 0xBC00 /* fp16 -1.0 */

static const ggml_type weight_types[] = {
    GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
    GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K,
    GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS,
};

static const int64_t lengths[] = {256, 512, 2560, 9728};

/* splitmix64: deterministic test data. */
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

static int rng_int(rng *r, int lo, int hi) /* [lo, hi] */
{
    return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* Random floats in 32-value chunks of varied character: normal, huge, tiny, all zero,
 * constant, all positive, one spike, exact ties of the largest magnitude. */
static void fill_extreme(rng *r, float *x, int64_t n)
{
    for (int64_t b = 0; b < n; b += 32) {
        const int mode = rng_int(r, 0, 9);
        for (int j = 0; j < 32; j++) {
            float v = rng_unit(r);
            switch (mode) {
            case 1: v *= 1e3f; break; /* larger overflows Q8_1's fp16 s (as in ggml) */
            case 2: v *= 1e-6f; break;
            case 3: v = 0.0f; break;
            case 4: v = 0.75f; break;
            case 5: v = fabsf(v) + 0.1f; break;
            case 6: v = j == 7 ? 1000.0f : v * 0.01f; break;
            case 7: v = j == 3 ? 2.0f : (j == 9 ? -2.0f : v); break;
            default: break;
            }
            x[b + j] = v;
        }
    }
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static const quant_kernels *S(void)
{
    return quant_kernels_scalar();
}

/* ---------------------------------------------------------------- dispatch (runs first) */

static int child_check(const char *env, const char *want)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (env)
            setenv("LOCO_KERNELS", env, 1);
        else
            unsetenv("LOCO_KERNELS");
        const quant_kernels *kt = quant_kernels_get();
        _exit(strcmp(kt->name, want) == 0 ? 0 : 1);
    }
    int status = 0;
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
}

/* Must run before anything in this process touches the tables (children inherit them). */
static void test_dispatch_env(void **state)
{
    (void)state;
    assert_int_equal(child_check("scalar", "scalar"), 0);
#if defined(__x86_64__) || defined(__i386__)
    const bool have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    const bool have = false; /* the AVX2 table exists on x86 only */
#endif
    assert_int_equal(child_check(NULL, have ? "avx2" : "scalar"), 0);
    assert_int_equal(child_check("auto", have ? "avx2" : "scalar"), 0);
    assert_string_equal(quant_kernels_scalar()->name, "scalar");
    if (have)
        assert_non_null(quant_kernels_avx2());
    assert_non_null(quant_kernels_get());
}

/* ---------------------------------------------------------------- table and checks */

static void test_pairing_and_checks(void **state)
{
    (void)state;
    assert_int_equal(quant_act_type(GGML_TYPE_Q4_0), GGML_TYPE_Q8_0);
    assert_int_equal(quant_act_type(GGML_TYPE_Q5_0), GGML_TYPE_Q8_0);
    assert_int_equal(quant_act_type(GGML_TYPE_Q8_0), GGML_TYPE_Q8_0);
    assert_int_equal(quant_act_type(GGML_TYPE_Q4_1), GGML_TYPE_Q8_1);
    assert_int_equal(quant_act_type(GGML_TYPE_Q5_1), GGML_TYPE_Q8_1);
    assert_int_equal(quant_act_type(GGML_TYPE_Q4_K), GGML_TYPE_Q8_K);
    assert_int_equal(quant_act_type(GGML_TYPE_Q5_K), GGML_TYPE_Q8_K);
    assert_int_equal(quant_act_type(GGML_TYPE_Q6_K), GGML_TYPE_Q8_K);
    assert_int_equal(quant_act_type(GGML_TYPE_Q2_K), GGML_TYPE_Q8_K);
    assert_int_equal(quant_act_type(GGML_TYPE_Q3_K), GGML_TYPE_Q8_K);
    assert_int_equal(quant_act_type(GGML_TYPE_IQ4_XS), GGML_TYPE_Q8_K);
    assert_int_equal(quant_act_type(GGML_TYPE_IQ4_NL), GGML_TYPE_Q8_0);
    assert_int_equal(quant_act_type(GGML_TYPE_F16), GGML_TYPE_F16);
    assert_int_equal(quant_act_type(GGML_TYPE_BF16), GGML_TYPE_BF16);
    assert_int_equal(quant_act_type(GGML_TYPE_F32), GGML_TYPE_F32);
    assert_int_equal(quant_act_type(GGML_TYPE_IQ2_XXS), GGML_TYPE_COUNT);
    assert_int_equal(quant_act_type(GGML_TYPE_Q8_K), GGML_TYPE_COUNT);
    for (size_t i = 0; i < LOCO_ARRAY_LEN(weight_types); i++)
        assert_true(quant_type_supported(weight_types[i]));
    assert_false(quant_type_supported(GGML_TYPE_IQ3_S));
    assert_false(quant_type_supported((ggml_type)77));

    loco_err err;
    assert_int_equal(quant_check(GGML_TYPE_Q4_K, 2560, "blk.0.attn_q.weight", &err), LOCO_OK);
    assert_int_equal(quant_check(GGML_TYPE_IQ3_XXS, 2560, "blk.0.attn_q.weight", &err),
                     LOCO_ERR_UNSUPPORTED);
    assert_string_equal(err.msg, "tensor 'blk.0.attn_q.weight' has type IQ3_XXS (id 18); "
                                 "supported types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, "
                                 "Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS");
    assert_int_equal(quant_check(GGML_TYPE_Q4_K, 100, "t", &err), LOCO_ERR_INVALID);
    assert_string_equal(err.msg, "tensor 't': row length 100 is not a multiple of the Q4_K "
                                 "block size 256");
    float f[64] = {0};
    uint8_t b[64] = {0};
    assert_int_equal(quant_dequantize_row(GGML_TYPE_Q4_0, b, f, 33), LOCO_ERR_INVALID);
    assert_int_equal(quant_dequantize_row(GGML_TYPE_IQ2_XS, b, f, 256), LOCO_ERR_UNSUPPORTED);
    assert_int_equal(quant_quantize_row(GGML_TYPE_Q8_0, f, b, 0), LOCO_ERR_INVALID);
    assert_int_equal(quant_quantize_act(GGML_TYPE_Q4_0, f, b, 32), LOCO_ERR_UNSUPPORTED);
    assert_int_equal(quant_quantize_act(GGML_TYPE_Q8_K, f, b, 32), LOCO_ERR_INVALID);
}

/* ---------------------------------------------------------------- hand-built blocks */

static void dequant(ggml_type t, const void *src, float *dst, int64_t n)
{
    assert_int_equal(quant_dequantize_row(t, src, dst, n), LOCO_OK);
}

static void test_decode_q8_0_q4_0_q4_1(void **state)
{
    (void)state;
    float y[32];
    block_q8_0 b8 = {.d = H_HALF};
    for (int j = 0; j < 32; j++)
        b8.qs[j] = (int8_t)(j * 8 - 128);
    dequant(GGML_TYPE_Q8_0, &b8, y, 32);
    assert_true(y[0] == -64.0f && y[16] == 0.0f && y[31] == 60.0f);

    block_q4_0 b4 = {.d = H_TWO};
    for (int j = 0; j < 16; j++)
        b4.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    dequant(GGML_TYPE_Q4_0, &b4, y, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == (float)((j - 8) * 2));
        assert_true(y[j + 16] == (float)((15 - j - 8) * 2));
    }

    block_q4_1 b41 = {.d = H_HALF, .m = H_MONE};
    for (int j = 0; j < 16; j++)
        b41.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    dequant(GGML_TYPE_Q4_1, &b41, y, 32);
    assert_true(y[0] == -1.0f && y[3] == 0.5f && y[16] == 6.5f && y[31] == -1.0f);
}

static void test_decode_q5(void **state)
{
    (void)state;
    float y[32];
    /* qh bit 0 and bit 31 set: value 0 and value 31 get their 5th bit */
    block_q5_0 b = {.d = H_ONE, .qh = {0x01, 0x00, 0x00, 0x80}};
    memset(b.qs, 0x21, sizeof(b.qs)); /* low nibble 1, high nibble 2 */
    dequant(GGML_TYPE_Q5_0, &b, y, 32);
    assert_true(y[0] == 1.0f);    /* (1|16)-16 */
    assert_true(y[1] == -15.0f);  /* 1-16 */
    assert_true(y[15] == -15.0f);
    assert_true(y[16] == -14.0f); /* 2-16 */
    assert_true(y[30] == -14.0f);
    assert_true(y[31] == 2.0f);   /* (2|16)-16 */

    block_q5_1 c = {.d = H_ONE, .m = H_HALF, .qh = {0x00, 0x00, 0x01, 0x00}}; /* bit 16 */
    memset(c.qs, 0x21, sizeof(c.qs));
    dequant(GGML_TYPE_Q5_1, &c, y, 32);
    assert_true(y[0] == 1.5f && y[15] == 1.5f);
    assert_true(y[16] == 18.5f); /* (2|16) + 0.5 */
    assert_true(y[17] == 2.5f);
}

/* Scales bytes exercising both packings: j<4 plain 6 bits; j>=4 low 4 bits from b[j+4] and
 * the top 2 bits from b[j-4] (scale) and b[j] (min). sc = {1,2,3,4,58,1,3,5},
 * m = {5,6,7,8,41,2,4,6}. A port using b[j-4] for the min would get m[4] = 57. */
static const uint8_t k_scales[12] = {0xC1, 0x02, 0x03, 0x04, 0x85, 0x06,
                                     0x07, 0x08, 0x9A, 0x21, 0x43, 0x65};

static void test_decode_q4_K(void **state)
{
    (void)state;
    block_q4_K b = {.d = H_ONE, .dmin = H_HALF};
    memcpy(b.scales, k_scales, 12);
    memset(b.qs, 0x53, sizeof(b.qs)); /* low 3, high 5 */
    b.qs[32 + 7] = 0xF0;              /* chunk 1: value 64+7 -> 0, value 96+7 -> 15 */
    float y[256];
    dequant(GGML_TYPE_Q4_K, &b, y, 256);
    /* sub-block s covers values 32s..32s+31: d*sc*q - dmin*m, q = 3 (even s) or 5 (odd s) */
    const float want[8] = {0.5f, 7.0f, 5.5f, 16.0f, 153.5f, 4.0f, 7.0f, 22.0f};
    for (int s = 0; s < 8; s++) {
        for (int l = 0; l < 32; l++) {
            const int idx = 32 * s + l;
            if (idx == 71 || idx == 103)
                continue;
            assert_true(y[idx] == want[s]);
        }
    }
    assert_true(y[71] == -3.5f); /* 3*0 - 0.5*7 */
    assert_true(y[103] == 56.0f); /* 4*15 - 0.5*8 */
}

static void test_decode_q5_K(void **state)
{
    (void)state;
    block_q5_K b = {.d = H_ONE, .dmin = H_HALF};
    memcpy(b.scales, k_scales, 12);
    memset(b.qs, 0x53, sizeof(b.qs));
    b.qh[0] = 0x01; /* chunk 0 low half: value 0 gets +16 */
    b.qh[1] = 0x80; /* chunk 3 high half: value 192+32+1 gets +16 */
    b.qh[2] = 0x04; /* chunk 1 low half: value 64+2 gets +16 */
    float y[256];
    dequant(GGML_TYPE_Q5_K, &b, y, 256);
    assert_true(y[0] == 16.5f);   /* 1*(3+16) - 2.5 */
    assert_true(y[1] == 0.5f);
    assert_true(y[66] == 53.5f);  /* 3*(3+16) - 3.5 */
    assert_true(y[98] == 16.0f);
    assert_true(y[225] == 102.0f); /* 5*(5+16) - 3 */
    assert_true(y[224] == 22.0f);
    assert_true(y[130] == 153.5f); /* sub-block 4: 58*3 - 0.5*41 */
    assert_true(y[160] == 4.0f);   /* sub-block 5: 1*5 - 0.5*2 */
}

static void test_decode_q6_K(void **state)
{
    (void)state;
    block_q6_K b;
    memset(&b, 0, sizeof(b));
    b.d = H_HALF;
    for (int k = 0; k < 16; k++)
        b.scales[k] = (int8_t)(k - 8);
    memset(b.ql, 0x21, sizeof(b.ql));   /* low nibble 1, high nibble 2 */
    memset(b.qh, 0xE4, 32);             /* half 0: 2-bit fields 0,1,2,3 */
    memset(b.qh + 32, 0x1B, 32);        /* half 1: 3,2,1,0 */
    float y[256];
    dequant(GGML_TYPE_Q6_K, &b, y, 256);
    /* half 0: q = 1-32, 17-32, 34-32, 50-32; half 1: 49-32, 33-32, 18-32, 2-32 */
    assert_true(y[0] == 124.0f);   /* 0.5 * -8 * -31 */
    assert_true(y[16] == 108.5f);  /* 0.5 * -7 * -31 */
    assert_true(y[40] == 45.0f);   /* 0.5 * -6 * -15 */
    assert_true(y[70] == -4.0f);   /* 0.5 * -4 * 2 */
    assert_true(y[100] == -18.0f); /* 0.5 * -2 * 18 */
    assert_true(y[128] == 0.0f);   /* scale 0 */
    assert_true(y[150] == 8.5f);   /* 0.5 * 1 * 17 */
    assert_true(y[170] == 1.0f);   /* 0.5 * 2 * 1 (g1, scale 10) */
    assert_true(y[200] == -28.0f); /* 0.5 * 4 * -14 */
    assert_true(y[255] == -105.0f); /* 0.5 * 7 * -30 */
}

static void test_decode_float_types(void **state)
{
    (void)state;
    const uint16_t h[4] = {0x3C00, 0xC000, 0x0001, 0x7BFF};
    float y[4];
    dequant(GGML_TYPE_F16, h, y, 4);
    assert_true(y[0] == 1.0f && y[1] == -2.0f && y[2] == 0x1p-24f && y[3] == 65504.0f);
    const uint16_t bf[2] = {0x3F80, 0xC040};
    dequant(GGML_TYPE_BF16, bf, y, 2);
    assert_true(y[0] == 1.0f && y[1] == -3.0f);
    const float f[2] = {1.25f, -7.0f};
    dequant(GGML_TYPE_F32, f, y, 2);
    assert_true(y[0] == 1.25f && y[1] == -7.0f);
}

/* ---------------------------------------------------------------- quantizers */

static void test_quantize_q8_0_weights_vs_act(void **state)
{
    (void)state;
    float x[32] = {127.0f, 2.5f, -2.5f, 3.5f, 0.5f, -0.5f, 1.49f, -126.6f};
    block_q8_0 w, a;
    assert_int_equal(quant_quantize_row(GGML_TYPE_Q8_0, x, &w, 32), LOCO_OK);
    assert_int_equal(quant_quantize_act(GGML_TYPE_Q8_0, x, &a, 32), LOCO_OK);
    assert_int_equal(w.d, H_ONE);
    assert_int_equal(a.d, H_ONE);
    /* weights: ggml's reference, roundf (half away from zero) */
    const int8_t want_w[8] = {127, 3, -3, 4, 1, -1, 1, -127};
    /* activations: llama.cpp's x86 quantizer, half to even */
    const int8_t want_a[8] = {127, 2, -2, 4, 0, 0, 1, -127};
    assert_memory_equal(w.qs, want_w, 8);
    assert_memory_equal(a.qs, want_a, 8);
    for (int j = 8; j < 32; j++)
        assert_true(w.qs[j] == 0 && a.qs[j] == 0);

    block_q8_1 a1;
    assert_int_equal(quant_quantize_act(GGML_TYPE_Q8_1, x, &a1, 32), LOCO_OK);
    assert_int_equal(a1.d, H_ONE);
    assert_memory_equal(a1.qs, want_a, 8);
    assert_true(fp16_to_f32(a1.s) == 5.0f); /* d * (127+2-2+4+0+0+1-127) */

    float z[32] = {0};
    assert_int_equal(quant_quantize_act(GGML_TYPE_Q8_0, z, &a, 32), LOCO_OK);
    assert_int_equal(a.d, 0);
}

static void test_quantize_q8_K_act(void **state)
{
    (void)state;
    float x[256] = {0};
    /* largest magnitude negative: iscale = -127 / (-127/64) = 64 exactly */
    x[0] = 1.0f / 128;   /* 0.5 -> 0 (ties to even) */
    x[1] = 3.0f / 128;   /* 1.5 -> 2 */
    x[2] = -3.0f / 128;  /* -2 */
    x[3] = 5.0f / 128;   /* 2.5 -> 2 */
    x[4] = -127.0f / 64; /* -127 */
    x[5] = 0.25f;        /* 16 */
    x[20] = 1.0f;        /* 64, second group of 16 */
    block_q8_K a;
    assert_int_equal(quant_quantize_act(GGML_TYPE_Q8_K, x, &a, 256), LOCO_OK);
    assert_true(a.d == 1.0f / 64);
    const int8_t want[6] = {0, 2, -2, 2, -127, 16};
    assert_memory_equal(a.qs, want, 6);
    assert_int_equal(a.qs[20], 64);
    assert_int_equal(a.bsums[0], 0 + 2 - 2 + 2 - 127 + 16);
    assert_int_equal(a.bsums[1], 64);
    for (int j = 2; j < 16; j++)
        assert_int_equal(a.bsums[j], 0);

    /* a tie on the largest magnitude: the first one decides the sign */
    memset(x, 0, sizeof(x));
    x[2] = 2.0f;
    x[7] = -2.0f;
    assert_int_equal(quant_quantize_act(GGML_TYPE_Q8_K, x, &a, 256), LOCO_OK);
    assert_true(a.d == -2.0f / 127);
    assert_int_equal(a.qs[2], -127);
    assert_int_equal(a.qs[7], 127);

    memset(x, 0, sizeof(x));
    assert_int_equal(quant_quantize_act(GGML_TYPE_Q8_K, x, &a, 256), LOCO_OK);
    assert_true(a.d == 0.0f);
}

static void test_quantize_act_float(void **state)
{
    (void)state;
    const float x[4] = {1.0f, -2.0f, 65504.0f, 1.00048828125f /* 1 + 2^-11: tie -> even */};
    uint16_t h[4];
    assert_int_equal(quant_quantize_act(GGML_TYPE_F16, x, h, 4), LOCO_OK);
    assert_int_equal(h[0], 0x3C00);
    assert_int_equal(h[1], 0xC000);
    assert_int_equal(h[2], 0x7BFF);
    assert_int_equal(h[3], 0x3C00);
    assert_int_equal(quant_quantize_act(GGML_TYPE_BF16, x, h, 2), LOCO_OK);
    assert_int_equal(h[0], 0x3F80);
    assert_int_equal(h[1], 0xC000);
}

/* RMS and max error of quantize -> dequantize over uniform [-1, 1) data. */
static void roundtrip(ggml_type t, double max_rms, double max_abs)
{
    const int64_t n = 8192;
    rng r = {42 + (uint64_t)t};
    float *x = xmalloc((size_t)n * sizeof(float));
    float *y = xmalloc((size_t)n * sizeof(float));
    void *q = xmalloc(ggml_type_row_size(t, (uint64_t)n));
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_unit(&r);
    assert_int_equal(quant_quantize_row(t, x, q, n), LOCO_OK);
    dequant(t, q, y, n);
    double se = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)x[i] - y[i]);
        se += e * e;
        worst = e > worst ? e : worst;
    }
    const double rms = sqrt(se / n);
    if (rms > max_rms || worst > max_abs)
        fail_msg("%s: rms %g (max %g), worst %g (max %g)", ggml_type_name(t), rms, max_rms,
                 worst, max_abs);
    free(x);
    free(y);
    free(q);
}

static void test_quantize_roundtrip(void **state)
{
    (void)state;
    /* step s: rms about s/sqrt(12), worst s/2 plus the fp16 rounding of the scales */
    roundtrip(GGML_TYPE_F32, 0, 0);
    roundtrip(GGML_TYPE_F16, 2e-4, 4.9e-4);
    roundtrip(GGML_TYPE_BF16, 2e-3, 3.91e-3);
    roundtrip(GGML_TYPE_Q8_0, 0.0025, 0.0045);
    roundtrip(GGML_TYPE_Q4_0, 0.040, 0.126); /* -amax clips to 7d */
    roundtrip(GGML_TYPE_Q4_1, 0.040, 0.070);
    roundtrip(GGML_TYPE_Q5_0, 0.020, 0.063); /* -amax clips to 15d */
    roundtrip(GGML_TYPE_Q5_1, 0.020, 0.035);
    roundtrip(GGML_TYPE_Q4_K, 0.040, 0.10);
    roundtrip(GGML_TYPE_Q5_K, 0.020, 0.06);
    roundtrip(GGML_TYPE_Q6_K, 0.010, 0.025);
    roundtrip(GGML_TYPE_Q2_K, 0.15, 0.40);
    roundtrip(GGML_TYPE_Q3_K, 0.080, 0.25);
    roundtrip(GGML_TYPE_IQ4_NL, 0.045, 0.14);
    roundtrip(GGML_TYPE_IQ4_XS, 0.045, 0.14);
}

/* The K quantizers on awkward input: zeros, constants, one sign only, huge and tiny. */
static void test_quantize_extremes(void **state)
{
    (void)state;
    const int64_t n = 2560;
    rng r = {7};
    float *x = xmalloc((size_t)n * sizeof(float));
    float *y = xmalloc((size_t)n * sizeof(float));
    fill_extreme(&r, x, n);
    for (size_t k = 0; k < LOCO_ARRAY_LEN(weight_types); k++) {
        const ggml_type t = weight_types[k];
        void *q = xmalloc(ggml_type_row_size(t, (uint64_t)n));
        assert_int_equal(quant_quantize_row(t, x, q, n), LOCO_OK);
        dequant(t, q, y, n);
        for (int64_t i = 0; i < n; i++) {
            assert_true(isfinite(y[i]));
            /* never further than the block's own range allows (Q2_K: 4 levels for +-1e3,
             * Q3_K: -4..3, so the opposite extreme clips by a quarter) */
            const float bound = t == GGML_TYPE_Q2_K   ? 0.4f * 1e3f
                                : t == GGML_TYPE_Q3_K ? 0.3f * 1e3f
                                                      : 0.15f * 1e3f;
            if (!(fabsf(y[i] - x[i]) <= bound + 1e-3f))
                fail_msg("%s value %" PRId64 ": %g -> %g", ggml_type_name(t), i, x[i], y[i]);
        }
        free(q);
    }
    free(x);
    free(y);
}

/* ---------------------------------------------------------------- AVX2 against scalar */

/* Activation row value i as f32 (for magnitudes). */
static double act_value(ggml_type at, const void *a, int64_t i)
{
    switch (at) {
    case GGML_TYPE_F32: return ((const float *)a)[i];
    case GGML_TYPE_F16: return fp16_to_f32(((const uint16_t *)a)[i]);
    case GGML_TYPE_BF16: return bf16_to_f32(((const uint16_t *)a)[i]);
    case GGML_TYPE_Q8_0: {
        const block_q8_0 *b = (const block_q8_0 *)a + i / 32;
        return (double)fp16_to_f32(b->d) * b->qs[i % 32];
    }
    case GGML_TYPE_Q8_1: {
        const block_q8_1 *b = (const block_q8_1 *)a + i / 32;
        return (double)fp16_to_f32(b->d) * b->qs[i % 32];
    }
    case GGML_TYPE_Q8_K: {
        const block_q8_K *b = (const block_q8_K *)a + i / 256;
        return (double)b->d * b->qs[i % 256];
    }
    default: fail_msg("bad act type"); return 0;
    }
}

/* Sum of |w_i * a_i|: the scale float accumulation errors are measured against. */
static double magnitude(ggml_type t, const void *w, const void *a, int64_t n)
{
    float *y = xmalloc((size_t)n * sizeof(float));
    S()->ops[t].dequant(w, y, n);
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m += fabs((double)y[i] * act_value(S()->ops[t].act_type, a, i));
    free(y);
    return m;
}

/* Random bytes for a whole row, then every fp16/f32 scale field made a sane finite value. */
static void random_blocks(rng *r, ggml_type t, void *w, int64_t n)
{
    const size_t bytes = ggml_type_row_size(t, (uint64_t)n);
    uint8_t *p = w;
    for (size_t i = 0; i < bytes; i++)
        p[i] = (uint8_t)rng_next(r);
    const int64_t nb = n / (int64_t)ggml_type_block_size(t);
    for (int64_t b = 0; b < nb; b++) {
        const uint16_t d = fp16_from_f32(rng_unit(r) * 0.01f);
        const uint16_t m = fp16_from_f32(rng_unit(r) * 0.01f);
        switch (t) {
        case GGML_TYPE_Q8_0: ((block_q8_0 *)w)[b].d = d; break;
        case GGML_TYPE_Q4_0: ((block_q4_0 *)w)[b].d = d; break;
        case GGML_TYPE_Q5_0: ((block_q5_0 *)w)[b].d = d; break;
        case GGML_TYPE_Q4_1: ((block_q4_1 *)w)[b].d = d, ((block_q4_1 *)w)[b].m = m; break;
        case GGML_TYPE_Q5_1: ((block_q5_1 *)w)[b].d = d, ((block_q5_1 *)w)[b].m = m; break;
        case GGML_TYPE_Q4_K: ((block_q4_K *)w)[b].d = d, ((block_q4_K *)w)[b].dmin = m; break;
        case GGML_TYPE_Q5_K: ((block_q5_K *)w)[b].d = d, ((block_q5_K *)w)[b].dmin = m; break;
        case GGML_TYPE_Q6_K: ((block_q6_K *)w)[b].d = d; break;
        case GGML_TYPE_Q2_K: ((block_q2_K *)w)[b].d = d, ((block_q2_K *)w)[b].dmin = m; break;
        case GGML_TYPE_Q3_K: ((block_q3_K *)w)[b].d = d; break;
        case GGML_TYPE_IQ4_NL: ((block_iq4_nl *)w)[b].d = d; break;
        case GGML_TYPE_IQ4_XS: ((block_iq4_xs *)w)[b].d = d; break;
        default: break;
        }
    }
    if (t == GGML_TYPE_F32 || t == GGML_TYPE_F16 || t == GGML_TYPE_BF16) {
        float *x = xmalloc((size_t)n * sizeof(float));
        fill_extreme(r, x, n);
        S()->ops[t].quantize(x, w, n);
        free(x);
    }
}

static void compare_paths(const quant_kernels *v, ggml_type t, int64_t n, const void *w,
                          const void *a, const char *what)
{
    const float s = S()->ops[t].vec_dot(n, w, a);
    const float f = v->ops[t].vec_dot(n, w, a);
    if (s == f)
        return;
    const double mag = magnitude(t, w, a, n);
    if (!(fabs((double)s - f) <= 1e-5 * mag + 1e-30))
        fail_msg("%s n=%" PRId64 " %s: scalar %.9g avx2 %.9g (magnitude %g)", ggml_type_name(t),
                 n, what, s, f, mag);
}

static void test_avx2_matches_scalar(void **state)
{
    (void)state;
    const quant_kernels *v = quant_kernels_avx2();
    if (!v)
        skip();
    rng r = {1234};
    for (size_t li = 0; li < LOCO_ARRAY_LEN(lengths); li++) {
        const int64_t n = lengths[li];
        float *x = xmalloc((size_t)n * sizeof(float));
        float *xa = xmalloc((size_t)n * sizeof(float));
        for (size_t k = 0; k < LOCO_ARRAY_LEN(weight_types); k++) {
            const ggml_type t = weight_types[k];
            const ggml_type at = S()->ops[t].act_type;
            void *w = xmalloc(ggml_type_row_size(t, (uint64_t)n));
            void *a = xmalloc(ggml_type_row_size(at, (uint64_t)n));
            for (int round = 0; round < 4; round++) {
                fill_extreme(&r, x, n);
                fill_extreme(&r, xa, n);
                S()->act_quant[at](xa, a, n);
                S()->ops[t].quantize(x, w, n);
                compare_paths(v, t, n, w, a, "quantized");
                random_blocks(&r, t, w, n);
                compare_paths(v, t, n, w, a, "random blocks");
            }
            free(w);
            free(a);
        }
        free(x);
        free(xa);
    }
}

/* Packs eight 6-bit scales and mins the way Q4_K/Q5_K store them. */
static void pack_k4_scales(const uint8_t *ls, const uint8_t *lm, uint8_t *out)
{
    memset(out, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            out[j] = ls[j];
            out[j + 4] = lm[j];
        } else {
            out[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            out[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            out[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Unit scales and bounded sub-block scales, so that every partial sum is an integer below
 * 2^24: the float results are exact, so any integer difference shows. */
static void unit_scale_row(rng *r, ggml_type t, void *w, int64_t n)
{
    random_blocks(r, t, w, n);
    const int64_t nb = n / (int64_t)ggml_type_block_size(t);
    for (int64_t b = 0; b < nb; b++) {
        switch (t) {
        case GGML_TYPE_Q8_0: ((block_q8_0 *)w)[b].d = H_ONE; break;
        case GGML_TYPE_Q4_0: ((block_q4_0 *)w)[b].d = H_ONE; break;
        case GGML_TYPE_Q5_0: ((block_q5_0 *)w)[b].d = H_ONE; break;
        case GGML_TYPE_Q4_1: ((block_q4_1 *)w)[b].d = H_ONE, ((block_q4_1 *)w)[b].m = H_MONE; break;
        case GGML_TYPE_Q5_1: ((block_q5_1 *)w)[b].d = H_ONE, ((block_q5_1 *)w)[b].m = H_ONE; break;
        case GGML_TYPE_Q4_K:
        case GGML_TYPE_Q5_K: {
            uint8_t *sc;
            if (t == GGML_TYPE_Q4_K) {
                block_q4_K *k4 = (block_q4_K *)w + b;
                k4->d = H_ONE, k4->dmin = H_ONE, sc = k4->scales;
            } else {
                block_q5_K *k5 = (block_q5_K *)w + b;
                k5->d = H_ONE, k5->dmin = H_ONE, sc = k5->scales;
            }
            /* scales <= 7 (bounds the sum); mins use their full 6 bits */
            uint8_t ls[8], lm[8];
            for (int j = 0; j < 8; j++) {
                ls[j] = (uint8_t)rng_int(r, 0, 7);
                lm[j] = (uint8_t)rng_int(r, 0, 63);
            }
            pack_k4_scales(ls, lm, sc);
            break;
        }
        case GGML_TYPE_Q6_K: {
            block_q6_K *q6 = (block_q6_K *)w + b;
            q6->d = H_ONE;
            for (int j = 0; j < 16; j++)
                q6->scales[j] = (int8_t)rng_int(r, -7, 7);
            break;
        }
        case GGML_TYPE_Q2_K: /* full 4-bit scales and mins stay below 2^24 */
            ((block_q2_K *)w)[b].d = H_ONE, ((block_q2_K *)w)[b].dmin = H_ONE;
            break;
        case GGML_TYPE_Q3_K: ((block_q3_K *)w)[b].d = H_ONE; break;
        case GGML_TYPE_IQ4_NL: ((block_iq4_nl *)w)[b].d = H_ONE; break;
        case GGML_TYPE_IQ4_XS: { /* sub-block scales -1..1: levels reach 127 */
            block_iq4_xs *x4 = (block_iq4_xs *)w + b;
            x4->d = H_ONE;
            x4->scales_h = 0;
            memset(x4->scales_l, 0, sizeof(x4->scales_l));
            for (int ib = 0; ib < 8; ib++) {
                const int u = 32 + rng_int(r, -1, 1);
                x4->scales_l[ib / 2] |= (uint8_t)((u & 0xF) << (4 * (ib % 2)));
                x4->scales_h |= (uint16_t)((u >> 4) << (2 * ib));
            }
            break;
        }
        default: break;
        }
    }
}

/* Prepared activations with d = 1 and quants in [-127, 127] (bsums and s consistent). */
static void unit_scale_act(rng *r, ggml_type at, void *a, int64_t n)
{
    if (at == GGML_TYPE_Q8_0 || at == GGML_TYPE_Q8_1) {
        for (int64_t b = 0; b < n / 32; b++) {
            int8_t *qs = at == GGML_TYPE_Q8_0 ? ((block_q8_0 *)a)[b].qs : ((block_q8_1 *)a)[b].qs;
            int sum = 0;
            for (int j = 0; j < 32; j++) {
                qs[j] = (int8_t)rng_int(r, -127, 127);
                sum += qs[j];
            }
            if (at == GGML_TYPE_Q8_0) {
                ((block_q8_0 *)a)[b].d = H_ONE;
            } else {
                ((block_q8_1 *)a)[b].d = H_ONE;
                ((block_q8_1 *)a)[b].s = fp16_from_f32((float)sum);
            }
        }
        return;
    }
    for (int64_t b = 0; b < n / 256; b++) {
        block_q8_K *k = (block_q8_K *)a + b;
        k->d = 1.0f;
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) {
                k->qs[16 * g + j] = (int8_t)rng_int(r, -127, 127);
                sum += k->qs[16 * g + j];
            }
            k->bsums[g] = (int16_t)sum;
        }
    }
}

static void test_avx2_integer_exact(void **state)
{
    (void)state;
    const quant_kernels *v = quant_kernels_avx2();
    if (!v)
        skip();
    static const ggml_type qtypes[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                       GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q4_K,
                                       GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_Q2_K,
                                       GGML_TYPE_Q3_K, GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS};
    rng r = {99};
    for (int64_t n = 256; n <= 512; n += 256) {
        for (size_t k = 0; k < LOCO_ARRAY_LEN(qtypes); k++) {
            const ggml_type t = qtypes[k];
            const ggml_type at = S()->ops[t].act_type;
            void *w = xmalloc(ggml_type_row_size(t, (uint64_t)n));
            void *a = xmalloc(ggml_type_row_size(at, (uint64_t)n));
            for (int round = 0; round < 50; round++) {
                unit_scale_row(&r, t, w, n);
                unit_scale_act(&r, at, a, n);
                const float s = S()->ops[t].vec_dot(n, w, a);
                const float f = v->ops[t].vec_dot(n, w, a);
                if (s != f)
                    fail_msg("%s n=%" PRId64 ": scalar %.1f avx2 %.1f", ggml_type_name(t), n, s,
                             f);
                assert_true(s == floorf(s));
            }
            free(w);
            free(a);
        }
    }
}

/* Every fp16 value converts the same on both paths (F16C vs portable): dot with 1.0. */
static void test_avx2_fp16_all_values(void **state)
{
    (void)state;
    const quant_kernels *v = quant_kernels_avx2();
    if (!v)
        skip();
    const uint16_t one = H_ONE;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x03FF))
            continue; /* NaN */
        const uint16_t x = (uint16_t)h;
        const float s = S()->ops[GGML_TYPE_F16].vec_dot(1, &x, &one);
        const float f = v->ops[GGML_TYPE_F16].vec_dot(1, &x, &one);
        assert_memory_equal(&s, &f, sizeof(float));
    }
}

/* ---------------------------------------------------------------- row loops */

static void check_rows(const quant_kernels *kt, ggml_type t)
{
    const int64_t n = 512, rows = 37, ntok = 5;
    rng r = {555 + (uint64_t)t};
    const size_t rb = ggml_type_row_size(t, (uint64_t)n);
    const ggml_type at = kt->ops[t].act_type;
    const size_t ab = ggml_type_row_size(at, (uint64_t)n);
    uint8_t *w = xmalloc(rb * (size_t)rows);
    uint8_t *a = xmalloc(ab * (size_t)ntok);
    float *x = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < rows; i++)
        random_blocks(&r, t, w + (size_t)i * rb, n);
    for (int64_t k = 0; k < ntok; k++) {
        fill_extreme(&r, x, n);
        kt->act_quant[at](x, a + (size_t)k * ab, n);
    }
    float out[37], mm[5 * 40];
    for (int i = 0; i < 37; i++)
        out[i] = -12345.0f;
    kt->ops[t].matvec(w, n, a + ab, out, 3, 30);
    for (int64_t i = 0; i < rows; i++) {
        if (i < 3 || i >= 30) {
            assert_true(out[i] == -12345.0f);
            continue;
        }
        const float want = kt->ops[t].vec_dot(n, w + (size_t)i * rb, a + ab);
        assert_memory_equal(&out[i], &want, sizeof(float));
    }
    for (int i = 0; i < 5 * 40; i++)
        mm[i] = -12345.0f;
    kt->ops[t].matmul(w, n, a, ntok, ab, mm, 40, 1, 36);
    for (int64_t k = 0; k < ntok; k++) {
        for (int64_t i = 0; i < 40; i++) {
            const float got = mm[k * 40 + i];
            if (i < 1 || i >= 36) {
                assert_true(got == -12345.0f);
                continue;
            }
            const float want = kt->ops[t].vec_dot(n, w + (size_t)i * rb, a + (size_t)k * ab);
            assert_memory_equal(&got, &want, sizeof(float));
        }
    }
    free(w);
    free(a);
    free(x);
}

static void test_matvec_matmul(void **state)
{
    (void)state;
    for (size_t k = 0; k < LOCO_ARRAY_LEN(weight_types); k++) {
        check_rows(S(), weight_types[k]);
        if (quant_kernels_avx2())
            check_rows(quant_kernels_avx2(), weight_types[k]);
    }
}

/* The public entry points agree with the active table and with dequantize-then-dot. */
static void test_public_api(void **state)
{
    (void)state;
    const int64_t n = 2560, rows = 4;
    rng r = {77};
    float *x = xmalloc((size_t)(n * rows) * sizeof(float));
    float *xa = xmalloc((size_t)n * sizeof(float));
    float *deq = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n * rows; i++)
        x[i] = rng_unit(&r);
    for (int64_t i = 0; i < n; i++)
        xa[i] = rng_unit(&r);
    for (size_t k = 0; k < LOCO_ARRAY_LEN(weight_types); k++) {
        const ggml_type t = weight_types[k];
        const ggml_type at = quant_act_type(t);
        const size_t rb = ggml_type_row_size(t, (uint64_t)n);
        uint8_t *w = xmalloc(rb * (size_t)rows);
        void *a = xmalloc(ggml_type_row_size(at, (uint64_t)n));
        for (int64_t i = 0; i < rows; i++)
            assert_int_equal(quant_quantize_row(t, x + i * n, w + (size_t)i * rb, n), LOCO_OK);
        assert_int_equal(quant_quantize_act(at, xa, a, n), LOCO_OK);
        float out[4];
        quant_matvec(t, w, rows, n, a, out, 0, rows);
        for (int64_t i = 0; i < rows; i++) {
            const float d = quant_vec_dot(t, n, w + (size_t)i * rb, a);
            assert_memory_equal(&out[i], &d, sizeof(float));
            /* against the exact f32 dot of the dequantized row and the f32 activations:
             * the activation quantization error bounds the difference */
            dequant(t, w + (size_t)i * rb, deq, n);
            double exact = 0, mag = 0;
            for (int64_t j = 0; j < n; j++) {
                exact += (double)deq[j] * xa[j];
                mag += fabs((double)deq[j] * xa[j]);
            }
            const double tol = at == GGML_TYPE_F32 ? 1e-6 : at == GGML_TYPE_BF16 ? 8e-3 : 1e-2;
            if (fabs(exact - d) > tol * mag)
                fail_msg("%s: dot %g, exact %g, magnitude %g", ggml_type_name(t), d, exact, mag);
        }
        free(w);
        free(a);
    }
    free(x);
    free(xa);
    free(deq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_env), /* first: before the tables are built here */
        cmocka_unit_test(test_pairing_and_checks),
        cmocka_unit_test(test_decode_q8_0_q4_0_q4_1),
        cmocka_unit_test(test_decode_q5),
        cmocka_unit_test(test_decode_q4_K),
        cmocka_unit_test(test_decode_q5_K),
        cmocka_unit_test(test_decode_q6_K),
        cmocka_unit_test(test_decode_float_types),
        cmocka_unit_test(test_quantize_q8_0_weights_vs_act),
        cmocka_unit_test(test_quantize_q8_K_act),
        cmocka_unit_test(test_quantize_act_float),
        cmocka_unit_test(test_quantize_roundtrip),
        cmocka_unit_test(test_quantize_extremes),
        cmocka_unit_test(test_avx2_matches_scalar),
        cmocka_unit_test(test_avx2_integer_exact),
        cmocka_unit_test(test_avx2_fp16_all_values),
        cmocka_unit_test(test_matvec_matmul),
        cmocka_unit_test(test_public_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
