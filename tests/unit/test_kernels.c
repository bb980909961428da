/* test_kernels.c: unit tests of engine/kernels: the scalar reference on packed weights against
 * an independent computation from the ggml blocks (ggml's AMX formula, vecmath.h), and every
 * instruction-set table this CPU can run (and the emulated AMX tile program) against the
 * scalar reference, bit for bit, over all types, odd row and token counts and edge values. */
#include "base/common.h"

#include <math.h>
#include <setjmp.h>
#include <cmocka.h>

#include "engine/kernels/kern_int.h"
#include "engine/kernels/kernels.h"
#include "engine/quant.h"
#include "engine/vecmath.h"

static const ggml_type all_types[] = {
    GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
    GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K,
};

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

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* Floats with varied blocks: normal, large, tiny, zero, constant, one spike. */
static void fill(rng *r, float *x, int64_t n)
{
    for (int64_t b = 0; b < n; b += 32) {
        const int mode = (int)(rng_next(r) % 8);
        for (int j = 0; j < 32 && b + j < n; j++) {
            float v = rng_unit(r);
            switch (mode) {
            case 1: v *= 50.0f; break;
            case 2: v *= 1e-4f; break;
            case 3: v = 0.0f; break;
            case 4: v = -0.5f; break;
            case 5: v = j == 5 ? 30.0f : v * 0.01f; break;
            default: break;
            }
            x[b + j] = v;
        }
    }
}

/* Weight rows: quantized from random floats, and for the quant types every byte random except
 * fp16 scale fields (kept finite and small) so that extreme nibbles and scales occur. */
/* raw 0: quantized rows; 1: random bytes (finite scales); 2: every bit set (the largest
 * value each field holds, finite scales) */
static void make_weights(rng *r, ggml_type t, uint8_t *w, int64_t rows, int64_t k, int raw)
{
    const size_t rb = ggml_type_row_size(t, (uint64_t)k);
    float *x = xmalloc((size_t)k * sizeof(float));
    for (int64_t i = 0; i < rows; i++) {
        fill(r, x, k);
        assert_int_equal(quant_quantize_row(t, x, w + (size_t)i * rb, k), LOCO_OK);
    }
    free(x);
    if (!raw || !kern_type_packed(t))
        return;
    const size_t bb = ggml_type_block_bytes(t);
    for (size_t i = 0; i < rb * (size_t)rows; i++)
        w[i] = raw == 2 ? 0xFF : (uint8_t)rng_next(r);
    for (size_t b = 0; b < rb * (size_t)rows / bb; b++) {
        uint8_t *blk = w + b * bb;
        if (t == GGML_TYPE_Q6_K) {
            blk[209] &= 0x1B; /* d: |d| < 2^-1 or so, finite */
        } else {
            blk[1] &= 0x1B;
            if (t != GGML_TYPE_Q8_0 && t != GGML_TYPE_Q4_0 && t != GGML_TYPE_Q5_0)
                blk[3] &= 0x1B;
        }
    }
}

typedef struct {
    ggml_type t;
    int64_t rows, k, nt;
    uint8_t *w;
    float *x;
    kern_weight kw;
} problem;

/* raw as make_weights'; with 2 every activation is +1 or -1 (a token each), so every quantized
 * activation is the largest magnitude (sums that could overflow a narrow accumulator do) */
static void problem_init(problem *p, rng *r, ggml_type t, int64_t rows, int64_t k, int64_t nt,
                         int raw)
{
    p->t = t, p->rows = rows, p->k = k, p->nt = nt;
    p->w = xmalloc(ggml_type_row_size(t, (uint64_t)k) * (size_t)rows);
    make_weights(r, t, p->w, rows, k, raw);
    p->x = xmalloc(sizeof(float) * (size_t)(k * nt));
    for (int64_t i = 0; i < nt; i++) {
        fill(r, p->x + i * k, k);
        for (int64_t j = 0; raw == 2 && j < k; j++)
            p->x[i * k + j] = i % 2 ? -1.0f : 1.0f;
    }
    loco_err err;
    assert_int_equal(kern_weight_init(&p->kw, t, rows, k, "test", &err), LOCO_OK);
    kern_weight_pack(&p->kw, p->w, 0, p->kw.n_groups);
}

static void problem_release(problem *p)
{
    kern_weight_release(&p->kw);
    free(p->w);
    free(p->x);
}

/* out (nt x rows) through table kt; padding of out checked untouched. */
static float *run(const kern_table *kt, const problem *p)
{
    const size_t ab = kern_act_bytes(p->t, p->k);
    uint8_t *acts = xmalloc(ab * (size_t)p->nt);
    for (int64_t i = 0; i < p->nt; i++)
        kern_quantize(kt, p->t, p->x + i * p->k, p->k, acts + (size_t)i * ab);
    const size_t os = (size_t)p->rows + 3;
    float *out = xmalloc(sizeof(float) * os * (size_t)p->nt);
    for (size_t i = 0; i < os * (size_t)p->nt; i++)
        out[i] = 12345.0f;
    /* in two row ranges, as two threads would */
    const int64_t mid = (p->kw.n_groups / 2) * KERN_GROUP;
    kern_matmul(kt, &p->kw, acts, ab, p->nt, out, os, 0, mid);
    kern_matmul(kt, &p->kw, acts, ab, p->nt, out, os, mid, p->rows);
    for (int64_t t = 0; t < p->nt; t++)
        for (size_t j = (size_t)p->rows; j < os; j++)
            assert_true(out[(size_t)t * os + j] == 12345.0f);
    free(acts);
    return out;
}

/* ---------------------------------------------------------------- reference from ggml blocks */

/* The fast path's formula computed from the original rows with ggml-format activations: the
 * AMX types through vecmath's AMX-formula kernel, Q5_0/Q5_1 and the dense types here. */
static float ref_dot(ggml_type t, int64_t k, const uint8_t *row, const float *x)
{
    const ggml_type at = quant_act_type(t);
    uint8_t *a = xmalloc(ggml_type_row_size(at, (uint64_t)k) + ggml_type_row_size(GGML_TYPE_F32, (uint64_t)k));
    float v = 0.0f;
    switch (t) {
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q4_1:
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K:
    case GGML_TYPE_Q6_K:
        quant_quantize_act(at, x, a, k);
        vm_amx_matmul(t, row, k, a, 1, 0, &v, 1, 0, 1);
        break;
    case GGML_TYPE_Q5_0:
    case GGML_TYPE_Q5_1: {
        quant_quantize_act(at, x, a, k);
        const size_t bb = ggml_type_block_bytes(t);
        for (int64_t b = 0; b < k / 32; b++) {
            const uint8_t *blk = row + (size_t)b * bb;
            float wq[32];
            quant_dequantize_row(t, blk, wq, 32); /* d*q (+m): recover q from the block */
            uint16_t dh, mh = 0;
            memcpy(&dh, blk, 2);
            const bool one = t == GGML_TYPE_Q5_1;
            if (one)
                memcpy(&mh, blk + 2, 2);
            const uint8_t *qhp = blk + (one ? 4 : 2), *qs = blk + (one ? 8 : 6);
            uint32_t qh;
            memcpy(&qh, qhp, 4);
            const int8_t *aq = one ? ((const block_q8_1 *)a)[b].qs : ((const block_q8_0 *)a)[b].qs;
            const uint16_t ad = one ? ((const block_q8_1 *)a)[b].d : ((const block_q8_0 *)a)[b].d;
            int32_t isum = 0;
            for (int j = 0; j < 16; j++) {
                int q0 = (qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
                int q1 = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
                if (!one)
                    q0 -= 16, q1 -= 16;
                isum += q0 * aq[j] + q1 * aq[j + 16];
            }
            v = fmaf((float)isum, fp16_to_f32(dh) * fp16_to_f32(ad), v);
            if (one)
                v = fmaf(fp16_to_f32(mh), fp16_to_f32(((const block_q8_1 *)a)[b].s), v);
        }
        break;
    }
    default: {
        float c[16] = {0};
        for (int64_t i = 0; i < k; i++) {
            float wv;
            if (t == GGML_TYPE_F32)
                memcpy(&wv, row + 4 * i, 4);
            else {
                uint16_t h;
                memcpy(&h, row + 2 * i, 2);
                wv = t == GGML_TYPE_F16 ? fp16_to_f32(h) : bf16_to_f32(h);
            }
            c[i % 16] = fmaf(wv, x[i], c[i % 16]);
        }
        float u[8], q[4];
        for (int i = 0; i < 8; i++)
            u[i] = c[i + 8] + c[i];
        for (int i = 0; i < 4; i++)
            q[i] = u[i + 4] + u[i];
        v = (q[0] + q[2]) + (q[1] + q[3]);
        break;
    }
    }
    free(a);
    return v;
}

static void test_scalar_matches_ggml_formula(void **state)
{
    (void)state;
    rng r = {7};
    const kern_table *sc = kern_named("scalar");
    assert_non_null(sc);
    for (size_t i = 0; i < LOCO_ARRAY_LEN(all_types); i++) {
        const ggml_type t = all_types[i];
        for (int raw = 0; raw < 2; raw++) {
            problem p;
            problem_init(&p, &r, t, 35, 512, 3, raw);
            float *out = run(sc, &p);
            const size_t rb = ggml_type_row_size(t, 512), os = (size_t)p.rows + 3;
            for (int64_t tk = 0; tk < p.nt; tk++)
                for (int64_t row = 0; row < p.rows; row++) {
                    const float want = ref_dot(t, p.k, p.w + (size_t)row * rb, p.x + tk * p.k);
                    const float got = out[(size_t)tk * os + (size_t)row];
                    if (memcmp(&want, &got, 4) && !(isnan(want) && isnan(got)))
                        fail_msg("%s raw=%d row %" PRId64 " token %" PRId64 ": ggml formula %.9g, "
                                 "scalar kernel %.9g", ggml_type_name(t), raw, row, tk, want, got);
                }
            free(out);
            problem_release(&p);
        }
    }
}

/* ---------------------------------------------------------------- every table vs scalar */

static void compare_tables(const char *name)
{
    const kern_table *kt = kern_named(name);
    if (!kt) {
        print_message("  (table %s not available on this CPU/build)\n", name);
        return;
    }
    const kern_table *sc = kern_named("scalar");
    rng r = {99};
    /* rows, k, tokens, and k for the dense types (0: the same) */
    static const int64_t shapes[][4] = {
        {16, 256, 1, 0}, {16, 256, 8, 0}, {33, 512, 9, 0}, {48, 768, 17, 0},
        /* a dense row length that is no multiple of 16 */
        {7, 256, 5, 250}, {64, 2560, 3, 0},
        /* one token over many groups: generation's several groups side by side, the rest
         * one by one, the last group partial (after an odd or an even number of whole
         * ones) */
        {200, 512, 1, 0}, {100, 256, 1, 0}, {120, 256, 1, 0},
        /* prompt tiles of every width the kernels have (AVX2 K types: up to 4 tokens, both
         * halves of a group at once up to 2) */
        {40, 512, 2, 0}, {24, 768, 6, 0}, {16, 256, 7, 0},
        /* one token, an odd number of rows (AVX2 dense generation takes rows in pairs) and,
         * dense, a row length that is no multiple of 16 */
        {13, 256, 1, 250},
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(all_types); i++) {
        const ggml_type t = all_types[i];
        for (size_t s = 0; s < LOCO_ARRAY_LEN(shapes); s++) {
            for (int raw = 0; raw < 3; raw++) {
                const int64_t k =
                    !kern_type_packed(t) && shapes[s][3] ? shapes[s][3] : shapes[s][1];
                problem p;
                problem_init(&p, &r, t, shapes[s][0], k, shapes[s][2], raw);
                float *a = run(sc, &p), *b = run(kt, &p);
                const size_t os = (size_t)p.rows + 3;
                for (int64_t tk = 0; tk < p.nt; tk++)
                    for (int64_t row = 0; row < p.rows; row++) {
                        const float x = a[(size_t)tk * os + row], y = b[(size_t)tk * os + row];
                        if (memcmp(&x, &y, 4) && !(isnan(x) && isnan(y)))
                            fail_msg("%s %s %" PRId64 "x%" PRId64 " tokens %" PRId64 " raw=%d: "
                                     "row %" PRId64 " token %" PRId64 ": scalar %.9g, %s %.9g",
                                     name, ggml_type_name(t), p.rows, p.k, p.nt, raw, row, tk,
                                     x, name, y);
                    }
                free(a);
                free(b);
                problem_release(&p);
            }
        }
    }
}

static void test_avx2_matches_scalar(void **state)
{
    (void)state;
    compare_tables("avx2");
}

static void test_avx512_matches_scalar(void **state)
{
    (void)state;
    compare_tables("avx512");
}

static void test_amx_matches_scalar(void **state)
{
    (void)state;
    compare_tables("amx");
}

static void test_amx_emulated_matches_scalar(void **state)
{
    (void)state;
    compare_tables("amx-emu");
}

static void test_neon_matches_scalar(void **state)
{
    (void)state;
    compare_tables("neon");
}

/* Every table's activation quantizers give the scalar reference's bytes: random rows of
 * varied blocks (fill: zero, constant and spiky blocks among them) and rows whose largest
 * magnitude occurs twice with opposite signs (A256 takes the first). */
static void test_quantizers_match_scalar(void **state)
{
    (void)state;
    static const char *const names[] = {"avx2", "avx512", "amx", "amx-emu", "neon"};
    const kern_table *sc = kern_named("scalar");
    static const int64_t ks[] = {256, 512, 2560};
    int tables = 0;
    for (size_t n = 0; n < LOCO_ARRAY_LEN(names); n++) {
        const kern_table *kt = kern_named(names[n]);
        if (!kt)
            continue;
        tables++;
        rng r = {1234};
        for (size_t i = 0; i < LOCO_ARRAY_LEN(all_types); i++) {
            const ggml_type t = all_types[i];
            for (size_t ki = 0; ki < LOCO_ARRAY_LEN(ks); ki++) {
                const int64_t k = ks[ki];
                const size_t ab = kern_act_bytes(t, k);
                float *x = xmalloc(sizeof(float) * (size_t)k);
                uint8_t *a = xmalloc(ab), *b = xmalloc(ab);
                for (int rep = 0; rep < 8; rep++) {
                    fill(&r, x, k);
                    if (rep & 1) { /* a tie of magnitudes with opposite signs in every 256 */
                        for (int64_t j = 0; j + 256 <= k; j += 256) {
                            const int64_t p0 = j + (int64_t)(rng_next(&r) % 128);
                            const int64_t p1 = p0 + 1 + (int64_t)(rng_next(&r) % 127);
                            x[p0] = rep & 2 ? 60.0f : -60.0f;
                            x[p1] = -x[p0];
                        }
                    }
                    memset(a, 0xA5, ab);
                    memset(b, 0xA5, ab);
                    kern_quantize(sc, t, x, k, a);
                    kern_quantize(kt, t, x, k, b);
                    for (size_t j = 0; j < ab; j++)
                        if (a[j] != b[j])
                            fail_msg("%s %s k=%" PRId64 " row %d: byte %zu: scalar 0x%02x, %s "
                                     "0x%02x", names[n], ggml_type_name(t), k, rep, j, a[j],
                                     names[n], b[j]);
                }
                free(x);
                free(a);
                free(b);
            }
        }
    }
    if (!tables)
        skip();
}

/* ---------------------------------------------------------------- AMX self-check */

static kern_gemm_fn g_good;

/* The AVX-512 Q4_K kernel with one result nudged by one ulp: what a subtly broken path does. */
static void off_by_one_ulp(const kern_weight *w, const void *acts, size_t as, int64_t nt,
                           float *out, size_t os, int64_t g0, int64_t g1)
{
    g_good(w, acts, as, nt, out, os, g0, g1);
    if (g0 == 0 && nt > 20)
        out[20 * os + 3] = nextafterf(out[20 * os + 3], INFINITY);
}

/* The check kernels.c runs before it uses AMX: it passes for the emulated tile program and
 * fails for a table that differs in one bit of one output (a tail token of one type). */
static void test_self_check(void **state)
{
    (void)state;
    const kern_table *ref = kern_named("avx512");
    const kern_table *emu = kern_named("amx-emu");
    if (!ref || !emu)
        skip();
    assert_true(kern_self_check(emu, ref));
    kern_table broken = *emu;
    g_good = broken.gemm[GGML_TYPE_Q4_K];
    broken.gemm[GGML_TYPE_Q4_K] = off_by_one_ulp;
    assert_false(kern_self_check(&broken, ref));
}

/* ---------------------------------------------------------------- dispatch and API */

static void test_dispatch(void **state)
{
    (void)state;
    const kern_table *kt = kern_get();
    assert_non_null(kt);
    assert_non_null(kern_named("scalar"));
    assert_null(kern_named("no-such-isa"));
    const char *d = kern_describe();
    assert_non_null(strstr(d, kern_name(kt)));
    print_message("  kernels: %s\n", d);
    for (size_t i = 0; i < LOCO_ARRAY_LEN(all_types); i++)
        assert_true(kern_type_supported(all_types[i]));
    assert_false(kern_type_supported(GGML_TYPE_Q2_K));
    kern_weight w;
    loco_err err;
    assert_int_equal(kern_weight_init(&w, GGML_TYPE_Q2_K, 1, 256, "x", &err),
                     LOCO_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "'x'"));
    assert_int_equal(kern_weight_init(&w, GGML_TYPE_Q4_K, 1, 100, "y", &err),
                     LOCO_ERR_INVALID);
    kern_weight_release(NULL);
    kern_weight_release(&w);
    /* dense weights are copied as they are (the source may go away after packing) */
    enum { DR_ROWS = 21, DK = 64 };
    uint16_t src[DR_ROWS * DK], orig[DR_ROWS * DK];
    for (size_t i = 0; i < LOCO_ARRAY_LEN(src); i++)
        src[i] = (uint16_t)(i * 7919u);
    memcpy(orig, src, sizeof(src));
    assert_int_equal(kern_weight_init(&w, GGML_TYPE_F16, DR_ROWS, DK, "d", &err), LOCO_OK);
    assert_int_equal(w.n_groups, 2);
    kern_weight_pack(&w, src, 1, 2);
    kern_weight_pack(&w, src, 0, 1);
    memset(src, 0xA5, sizeof(src));
    assert_ptr_not_equal(w.data, (const uint8_t *)src);
    assert_memory_equal(w.data, orig, sizeof(orig));
    kern_weight_release(&w);
    /* act rows are whole cache lines */
    for (size_t i = 0; i < LOCO_ARRAY_LEN(all_types); i++)
        assert_int_equal(kern_act_bytes(all_types[i], 2560) % 64, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_scalar_matches_ggml_formula),
        cmocka_unit_test(test_avx2_matches_scalar),
        cmocka_unit_test(test_avx512_matches_scalar),
        cmocka_unit_test(test_amx_matches_scalar),
        cmocka_unit_test(test_amx_emulated_matches_scalar),
        cmocka_unit_test(test_self_check),
        cmocka_unit_test(test_quantizers_match_scalar),
        cmocka_unit_test(test_neon_matches_scalar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
