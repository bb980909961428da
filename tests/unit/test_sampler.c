/* test_sampler.c: unit tests of engine/sampler: greedy and its ties, top-k = 1 as greedy, seed
 * reproducibility, the kept sets of top-k / top-p / min-p, frequencies against the softmax
 * (chi-square on a small vocabulary), exact penalty arithmetic and bad input. */
#include "base/common.h"

#include <math.h>
#include <setjmp.h>
#include <cmocka.h>
#include <time.h>

#include "engine/sampler.h"

#define VOCAB 151936

static uint64_t test_rng = 12345;

static float rand_logit(void)
{
    test_rng ^= test_rng << 13;
    test_rng ^= test_rng >> 7;
    test_rng ^= test_rng << 17;
    return (float)((double)(test_rng >> 11) * 0x1.0p-53 * 20.0 - 10.0);
}

static void fill_random(float *l, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        l[i] = rand_logit();
}

static sampler *make(int32_t n_vocab, const sampler_params *p)
{
    loco_err err;
    sampler *s = sampler_new(n_vocab, p, &err);
    if (!s)
        fail_msg("sampler_new: %s", err.msg);
    return s;
}

static int32_t sample(sampler *s, const float *l)
{
    int32_t tok = -1;
    loco_err err;
    if (sampler_sample(s, l, &tok, &err) != LOCO_OK)
        fail_msg("sampler_sample: %s", err.msg);
    return tok;
}

static int32_t ref_argmax(const float *l, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (l[i] > l[best])
            best = i;
    return best;
}

static void test_greedy(void **state)
{
    (void)state;
    sampler_params p;
    sampler_params_default(&p);
    p.temperature = 0;
    float small[10] = {0, 1, 2, 3, 4, 7, 1, 2, 3, 7};
    sampler *s = make(10, &p);
    assert_int_equal(sample(s, small), 5); /* tie between 5 and 9: lowest id */
    sampler_free(s);
    float *l = malloc(VOCAB * sizeof *l);
    s = make(VOCAB, &p);
    for (int step = 0; step < 20; step++) {
        fill_random(l, VOCAB);
        assert_int_equal(sample(s, l), ref_argmax(l, VOCAB));
    }
    sampler_free(s);
    free(l);
}

static void test_top_k_1_is_greedy(void **state)
{
    (void)state;
    sampler_params p;
    sampler_params_default(&p);
    p.temperature = 1.5f;
    p.top_k = 1;
    p.top_p = 1;
    p.min_p = 0;
    float *l = malloc(VOCAB * sizeof *l);
    for (uint64_t seed = 0; seed < 5; seed++) {
        p.seed = seed;
        sampler *s = make(VOCAB, &p);
        for (int step = 0; step < 10; step++) {
            fill_random(l, VOCAB);
            l[77 + step] = l[ref_argmax(l, VOCAB)]; /* a tie: the lowest id must win */
            assert_int_equal(sample(s, l), ref_argmax(l, VOCAB));
        }
        sampler_free(s);
    }
    free(l);
}

static void run_sequence(const sampler_params *p, int32_t *out, int n)
{
    sampler *s = make(VOCAB, p);
    float *l = malloc(VOCAB * sizeof *l);
    test_rng = 999;
    for (int i = 0; i < n; i++) {
        fill_random(l, VOCAB);
        for (int32_t j = 0; j < VOCAB; j++)
            l[j] *= 0.3f; /* flatter: many candidates survive the filters */
        out[i] = sample(s, l);
        assert_int_equal(sampler_accept(s, out[i]), LOCO_OK);
    }
    free(l);
    sampler_free(s);
}

static void test_seed_reproducible(void **state)
{
    (void)state;
    enum { N = 100 };
    int32_t a[N], b[N], c[N];
    sampler_params p;
    sampler_params_default(&p);
    p.seed = 42;
    p.repeat_penalty = 1.1f;
    p.presence_penalty = 0.2f;
    run_sequence(&p, a, N);
    run_sequence(&p, b, N);
    assert_memory_equal(a, b, sizeof a);
    p.seed = 43;
    run_sequence(&p, c, N);
    assert_memory_not_equal(a, c, sizeof a);
    /* top-p alone (the unsorted path) is reproducible too */
    p.top_k = 0;
    p.min_p = 0;
    p.top_p = 0.9f;
    run_sequence(&p, a, N);
    run_sequence(&p, b, N);
    assert_memory_equal(a, b, sizeof a);
    /* reset restarts the sequence */
    sampler *s = make(16, &p);
    float l[16] = {0};
    int32_t first[8], again[8];
    for (int i = 0; i < 8; i++)
        first[i] = sample(s, l);
    sampler_reset(s, p.seed);
    for (int i = 0; i < 8; i++)
        again[i] = sample(s, l);
    assert_memory_equal(first, again, sizeof first);
    sampler_free(s);
}

/* Samples n times; counts per token. */
static void histogram(const sampler_params *p, const float *l, int32_t nv, int n, int *counts)
{
    sampler *s = make(nv, p);
    memset(counts, 0, (size_t)nv * sizeof *counts);
    for (int i = 0; i < n; i++)
        counts[sample(s, l)]++;
    sampler_free(s);
}

/* Chi-square of counts against softmax(l / temp) restricted to `keep` (NULL: all). */
static double chi_square(const float *l, int32_t nv, float temp, const bool *keep, const int *counts,
                         int n)
{
    double z = 0, chi = 0;
    for (int32_t i = 0; i < nv; i++)
        if (!keep || keep[i])
            z += exp(l[i] / temp);
    for (int32_t i = 0; i < nv; i++) {
        if (keep && !keep[i]) {
            assert_int_equal(counts[i], 0);
            continue;
        }
        double e = n * exp(l[i] / temp) / z;
        chi += (counts[i] - e) * (counts[i] - e) / e;
    }
    return chi;
}

static void test_distribution(void **state)
{
    (void)state;
    enum { NV = 8, N = 200000 };
    float l[NV] = {1.0f, 0.5f, 2.0f, -1.0f, 0.0f, 1.5f, -0.5f, 0.25f};
    int counts[NV];
    sampler_params p;
    sampler_params_default(&p);
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    p.seed = 7;
    p.temperature = 1.0f;
    histogram(&p, l, NV, N, counts);
    /* 7 degrees of freedom: P(chi2 > 24.3) = 0.001 */
    assert_true(chi_square(l, NV, 1.0f, NULL, counts, N) < 24.3);
    p.temperature = 0.5f;
    histogram(&p, l, NV, N, counts);
    assert_true(chi_square(l, NV, 0.5f, NULL, counts, N) < 24.3);
    /* top-k 3 keeps ids 2, 5, 0 and renormalises */
    p.temperature = 1.0f;
    p.top_k = 3;
    histogram(&p, l, NV, N, counts);
    bool keep3[NV] = {true, false, true, false, false, true, false, false};
    assert_true(chi_square(l, NV, 1.0f, keep3, counts, N) < 13.8); /* 2 dof, 0.001 */
    /* a flat distribution is not accepted as the softmax of l */
    float flat[NV] = {0};
    p.top_k = 0;
    histogram(&p, flat, NV, N, counts);
    assert_true(chi_square(l, NV, 1.0f, NULL, counts, N) > 1000);
}

/* The set of tokens seen over many draws at a huge temperature (uniform over the kept set). */
static int kept_set(const sampler_params *p, const float *l, int32_t nv, bool *seen, int draws)
{
    sampler_params q = *p;
    sampler *s = make(nv, &q);
    memset(seen, 0, (size_t)nv);
    int distinct = 0;
    for (int i = 0; i < draws; i++) {
        int32_t t = sample(s, l);
        if (!seen[t]) {
            seen[t] = true;
            distinct++;
        }
    }
    sampler_free(s);
    return distinct;
}

static void test_filters_keep_the_right_sets(void **state)
{
    (void)state;
    float *l = malloc(VOCAB * sizeof *l);
    bool *seen = malloc(VOCAB);
    test_rng = 4242;
    fill_random(l, VOCAB);
    /* top-k 37 over the full vocabulary: exactly the 37 largest logits */
    sampler_params p;
    sampler_params_default(&p);
    p.top_p = 1;
    p.min_p = 0;
    p.top_k = 37;
    p.temperature = 1e9f;
    assert_int_equal(kept_set(&p, l, VOCAB, seen, 1500), 37);
    int above = 0;
    float kth = INFINITY;
    for (int32_t i = 0; i < VOCAB; i++)
        if (seen[i] && l[i] < kth)
            kth = l[i];
    for (int32_t i = 0; i < VOCAB; i++)
        above += l[i] >= kth;
    assert_int_equal(above, 37);
    /* top-p on probabilities .5 .3 .1 .1 (logits = log p): p = 0.7 keeps {0, 1} */
    float q[4] = {logf(0.5f), logf(0.3f), logf(0.1f), logf(0.1f)};
    bool s4[4];
    p.top_k = 0;
    p.top_p = 0.7f;
    p.temperature = 1.0f;
    assert_int_equal(kept_set(&p, q, 4, s4, 2000), 2);
    assert_true(s4[0] && s4[1]);
    p.top_p = 0.85f;
    assert_int_equal(kept_set(&p, q, 4, s4, 2000), 3);
    assert_true(s4[0] && s4[1] && s4[2]); /* the tie .1/.1: lower id first */
    /* min-p 0.25: keeps p >= 0.125 */
    p.top_p = 1;
    p.min_p = 0.25f;
    assert_int_equal(kept_set(&p, q, 4, s4, 2000), 2);
    assert_true(s4[0] && s4[1]);
    /* top-p over the whole vocabulary (the unsorted path), against a reference count */
    p.min_p = 0;
    p.top_p = 0.5f;
    p.temperature = 1e9f;
    for (int32_t i = 0; i < VOCAB; i++)
        l[i] = i < 100 ? 8.0f - 0.01f * (float)i : -5.0f;
    int got = kept_set(&p, l, VOCAB, seen, 1500);
    double z = 0, cum = 0;
    for (int32_t i = 0; i < VOCAB; i++)
        z += exp((double)l[i] - 8.0);
    int want = 0;
    while (cum < 0.5)
        cum += exp((double)l[want++] - 8.0) / z;
    assert_int_equal(got, want);
    for (int32_t i = 0; i < want; i++)
        assert_true(seen[i]);
    free(seen);
    free(l);
}

static void test_penalties(void **state)
{
    (void)state;
    sampler_params p;
    sampler_params_default(&p);
    p.repeat_penalty = 2.0f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    p.penalty_last_n = 8;
    sampler *s = make(4, &p);
    assert_int_equal(sampler_accept(s, 0), LOCO_OK);
    assert_int_equal(sampler_accept(s, 1), LOCO_OK);
    assert_int_equal(sampler_accept(s, 0), LOCO_OK);
    float l[4] = {2.0f, -2.0f, 1.0f, 0.5f};
    sampler_penalize(s, l);
    /* t0: 2/2 - (2*0.5 + 0.25); t1: -2*2 - (0.5 + 0.25); t2, t3 untouched */
    assert_float_equal(l[0], -0.25f, 1e-6);
    assert_float_equal(l[1], -4.75f, 1e-6);
    assert_float_equal(l[2], 1.0f, 1e-6);
    assert_float_equal(l[3], 0.5f, 1e-6);
    sampler_free(s);
    /* the window drops old tokens: with n = 2, after 0 1 0 the counts are t0 = 1, t1 = 1 */
    p.penalty_last_n = 2;
    s = make(4, &p);
    sampler_accept(s, 0);
    sampler_accept(s, 1);
    sampler_accept(s, 0);
    float m[4] = {2.0f, -2.0f, 1.0f, 0.5f};
    sampler_penalize(s, m);
    assert_float_equal(m[0], 0.25f, 1e-6);
    assert_float_equal(m[1], -4.75f, 1e-6);
    sampler_accept(s, 3);
    sampler_accept(s, 3); /* window {3, 3}: t0, t1 free again */
    float k[4] = {2.0f, -2.0f, 1.0f, 0.5f};
    sampler_penalize(s, k);
    assert_float_equal(k[0], 2.0f, 1e-6);
    assert_float_equal(k[3], 0.25f - 1.0f - 0.25f, 1e-6);
    /* greedy follows the penalised logits: t0 was the argmax, now t2 is */
    p.temperature = 0;
    p.penalty_last_n = 4;
    sampler_free(s);
    s = make(4, &p);
    float g[4] = {2.0f, -2.0f, 1.0f, 0.5f};
    assert_int_equal(sample(s, g), 0);
    sampler_accept(s, 0);
    assert_int_equal(sample(s, g), 2);
    assert_float_equal(g[0], 2.0f, 0); /* the caller's logits are not modified */
    sampler_reset(s, 0);
    assert_int_equal(sample(s, g), 0);
    sampler_free(s);
}

static void test_bad_input(void **state)
{
    (void)state;
    sampler_params p;
    sampler_params_default(&p);
    loco_err err;
    assert_null(sampler_new(0, &p, &err));
    assert_int_equal(err.code, LOCO_ERR_INVALID);
    p.penalty_last_n = SAMPLER_MAX_WINDOW + 1;
    assert_null(sampler_new(10, &p, &err));
    p.penalty_last_n = 64;
    p.top_p = NAN;
    assert_null(sampler_new(10, &p, &err));
    p.top_p = 0.9f;
    sampler *s = make(4, &p);
    assert_int_equal(sampler_accept(s, 4), LOCO_ERR_INVALID);
    assert_int_equal(sampler_accept(s, -1), LOCO_ERR_INVALID);
    float nan_l[4] = {0, NAN, 0, 0};
    int32_t tok;
    assert_int_equal(sampler_sample(s, nan_l, &tok, &err), LOCO_ERR_INVALID);
    assert_non_null(strstr(err.msg, "logit 1 is NaN"));
    float inf_l[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    assert_int_equal(sampler_sample(s, inf_l, &tok, &err), LOCO_ERR_INVALID);
    float one_inf[4] = {0, INFINITY, 0, 0};
    assert_int_equal(sampler_sample(s, one_inf, &tok, &err), LOCO_OK);
    assert_int_equal(tok, 1);
    sampler_free(s);
    sampler_free(NULL);
}

static void test_speed_report(void **state)
{
    (void)state;
    sampler_params p;
    sampler_params_default(&p);
    sampler *s = make(VOCAB, &p);
    float *l = malloc(VOCAB * sizeof *l);
    fill_random(l, VOCAB);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 50; i++)
        sampler_accept(s, sample(s, l));
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3;
    printf("sampler: %.0f us per step (vocabulary %d, default chain)\n", us / 50, VOCAB);
    free(l);
    sampler_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_top_k_1_is_greedy),
        cmocka_unit_test(test_seed_reproducible),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_filters_keep_the_right_sets),
        cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_speed_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
