/* test_sched.c: several sequences on one model context (engine/qwen3.h qwen3_forward, the
 * scheduler engine/sched.h) on a tiny synthesised model (vocabulary of 512, no tokenizer
 * needed): a batch of sequences gives each one's logits as if it ran alone, prefix reuse
 * (tokens computed are counted), LRU eviction of the prefix cache, a full queue answers BUSY at
 * once, a cancel frees the slot within one step, prompt chunks interleave with decoding, and
 * the q8_0 KV cache and the fast path stay close to the F16 cache and the parity path, and
 * nothing of the model file stays mapped in once the fast path is ready. */
#include "base/common.h"

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <cmocka.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/kv.h"
#include "engine/qwen3.h"
#include "engine/sampler.h"
#include "engine/sched.h"
#include "engine/synth.h"

#define VOCAB 512

static char tmpdir[256], model_path[512];
static gguf *g;
static qwen3_model *m;

static const char TOKENIZER[] =
    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
    "\"merges\": [\"a b\"]}, \"added_tokens\": []}";

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/loco-sched-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(model_path, sizeof(model_path), "%s/tiny.gguf", tmpdir);
    synth_params p;
    synth_params_default(&p);
    p.tokenizer_json = TOKENIZER;
    p.tokenizer_json_len = strlen(TOKENIZER);
    p.n_vocab = VOCAB;
    p.n_layer = 2;
    p.n_embd = 64;
    p.n_head = 4;
    p.n_head_kv = 2;
    p.head_dim = 32;
    p.n_ff = 128;
    p.type = GGML_TYPE_F32;
    p.seed = 11;
    loco_err err;
    loco_err_clear(&err);
    if (synth_write(&p, model_path, &err) || gguf_open(model_path, &g, &err) ||
        qwen3_load(g, &m, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    qwen3_free(m);
    gguf_close(g);
    unlink(model_path);
    rmdir(tmpdir);
    return 0;
}

static qwen3_ctx *new_ctx(uint32_t n_seq, uint32_t n_batch, uint64_t cache_blocks, bool parity,
                          qwen3_kv_type kv)
{
    qwen3_ctx_opts o;
    memset(&o, 0, sizeof(o));
    o.n_ctx = 4 * KV_BLOCK;
    o.n_batch = n_batch;
    o.n_seq = n_seq;
    /* block bytes of this model: 2 layers * 2 * 2 heads * KV_BLOCK rows * 64 bytes (f16) */
    o.cache_bytes = cache_blocks * 2 * 2 * 2 * KV_BLOCK * 64;
    o.parity = parity;
    o.kv_type = kv;
    qwen3_ctx *c = NULL;
    loco_err err;
    loco_err_clear(&err);
    if (qwen3_ctx_new_opts(m, &o, &c, &err))
        fprintf(stderr, "ctx: %s\n", err.msg);
    assert_non_null(c);
    return c;
}

static void make_prompt(int32_t *ids, uint32_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (uint32_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        ids[i] = (int32_t)((x >> 8) % VOCAB);
    }
}

static float max_abs(const float *a, size_t n)
{
    float m0 = 0;
    for (size_t i = 0; i < n; i++)
        m0 = fabsf(a[i]) > m0 ? fabsf(a[i]) : m0;
    return m0;
}

static float max_diff(const float *a, const float *b, size_t n)
{
    float d = 0;
    for (size_t i = 0; i < n; i++)
        d = fabsf(a[i] - b[i]) > d ? fabsf(a[i] - b[i]) : d;
    return d;
}

static int32_t argmax(const float *l)
{
    int32_t best = 0;
    for (int32_t i = 1; i < VOCAB; i++)
        if (l[i] > l[best])
            best = i;
    return best;
}

static bool verbose(void)
{
    return getenv("LOCO_TEST_VERBOSE") != NULL;
}

/* ---- the forward pass over several sequences ---- */

static void test_batch_equals_alone(void **state)
{
    (void)state;
    const uint32_t lens[3] = {40, 7, 20};
    int32_t prompts[3][40];
    float alone[3][4][VOCAB], both[3][VOCAB];
    int32_t next[3][4];
    for (int i = 0; i < 3; i++)
        make_prompt(prompts[i], lens[i], (uint32_t)i + 1);
    /* each alone: the prompt, then three greedy steps */
    qwen3_ctx *c = new_ctx(3, 128, 0, false, QWEN3_KV_F16);
    for (int i = 0; i < 3; i++) {
        kv_seq *s = NULL;
        assert_int_equal(kv_seq_new(qwen3_ctx_kv(c), 512, &s, NULL), LOCO_OK);
        qwen3_seg sg = {s, prompts[i], lens[i], alone[i][0], false};
        assert_int_equal(qwen3_forward(c, &sg, 1, NULL), LOCO_OK);
        for (int k = 1; k < 4; k++) {
            next[i][k - 1] = argmax(alone[i][k - 1]);
            qwen3_seg d = {s, &next[i][k - 1], 1, alone[i][k], false};
            assert_int_equal(qwen3_forward(c, &d, 1, NULL), LOCO_OK);
        }
        kv_seq_free(s);
    }
    /* together: one step for the three prompts, then three steps of three tokens */
    kv_seq *s[3];
    qwen3_seg segs[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kv_seq_new(qwen3_ctx_kv(c), 512, &s[i], NULL), LOCO_OK);
        segs[i] = (qwen3_seg){s[i], prompts[i], lens[i], both[i], false};
    }
    float worst = 0, scale = 0;
    for (int k = 0; k < 4; k++) {
        if (k)
            for (int i = 0; i < 3; i++)
                segs[i] = (qwen3_seg){s[i], &next[i][k - 1], 1, both[i], false};
        assert_int_equal(qwen3_forward(c, segs, 3, NULL), LOCO_OK);
        for (int i = 0; i < 3; i++) {
            float d = max_diff(both[i], alone[i][k], VOCAB);
            worst = d > worst ? d : worst;
            float a = max_abs(alone[i][k], VOCAB);
            scale = a > scale ? a : scale;
        }
    }
    if (verbose())
        fprintf(stderr, "batched vs alone: max |dlogit| %.3g (logits up to %.3g)\n", worst, scale);
    assert_true(scale > 1.0f);
    assert_true(worst <= 1e-4f * scale);
    for (int i = 0; i < 3; i++)
        kv_seq_free(s[i]);
    qwen3_ctx_free(c);
}

/* Last-token logits of prompt[0..n) on a fresh sequence of c: the first n_prompt tokens in
 * batches, the next n_single one at a time (as decoding evaluates them), the rest in batches. */
static void logits_steps(qwen3_ctx *c, const int32_t *prompt, uint32_t n_prompt,
                         uint32_t n_single, uint32_t n, float *out)
{
    kv_seq *s = NULL;
    assert_int_equal(kv_seq_new(qwen3_ctx_kv(c), 512, &s, NULL), LOCO_OK);
    for (uint32_t done = 0; done < n;) {
        const uint32_t end = done < n_prompt ? n_prompt : n;
        uint32_t k = end - done < qwen3_ctx_batch(c) ? end - done : qwen3_ctx_batch(c);
        if (done >= n_prompt && done < n_prompt + n_single)
            k = 1;
        qwen3_seg sg = {s, prompt + done, k, done + k == n ? out : NULL, false};
        assert_int_equal(qwen3_forward(c, &sg, 1, NULL), LOCO_OK);
        done += k;
    }
    kv_seq_free(s);
}

/* Last-token logits of prompt[0..n) on a fresh sequence of c. */
static void logits_of(qwen3_ctx *c, const int32_t *prompt, uint32_t n, float *out)
{
    logits_steps(c, prompt, n, 0, n, out);
}

static void test_kv_q8_and_parity(void **state)
{
    (void)state;
    int32_t p[300];
    make_prompt(p, 300, 5);
    float f16[VOCAB], q8[VOCAB], par[VOCAB];
    qwen3_ctx *c = new_ctx(1, 128, 0, false, QWEN3_KV_F16);
    logits_of(c, p, 300, f16);
    qwen3_ctx_free(c);
    c = new_ctx(1, 128, 0, false, QWEN3_KV_Q8_0);
    logits_of(c, p, 300, q8);
    qwen3_ctx_free(c);
    c = new_ctx(1, 128, 0, true, QWEN3_KV_F16);
    logits_of(c, p, 300, par);
    qwen3_ctx_free(c);
    float scale = max_abs(f16, VOCAB), dq = max_diff(f16, q8, VOCAB), dp = max_diff(f16, par, VOCAB);
    if (verbose())
        fprintf(stderr, "logits up to %.3g: q8_0 KV vs f16 %.3g, fast vs parity %.3g\n", scale,
                dq, dp);
    assert_true(dq > 0.0f);          /* the 8-bit cache is in use */
    assert_true(dq < 0.02f * scale); /* and close */
    assert_true(dp < 1e-3f * scale);
    /* the parity path needs an F16 cache */
    qwen3_ctx_opts o;
    memset(&o, 0, sizeof(o));
    o.n_ctx = 64;
    o.parity = true;
    o.kv_type = QWEN3_KV_Q8_0;
    assert_int_equal(qwen3_ctx_new_opts(m, &o, &c, NULL), LOCO_ERR_UNSUPPORTED);
}

/* ---- the scheduler ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool hold;      /* the scheduler waits in the hook while true */
    int waiting;    /* it is waiting there */
    uint64_t ids[4096][4];
    uint32_t ns[4096][4];
    uint32_t segs[4096];
    size_t steps;
} step_log;

static void on_step(void *ctx, const uint64_t *job_ids, const uint32_t *n_tokens, uint32_t n)
{
    step_log *l = ctx;
    pthread_mutex_lock(&l->mu);
    if (l->steps < 4096) {
        for (uint32_t i = 0; i < n && i < 4; i++) {
            l->ids[l->steps][i] = job_ids[i];
            l->ns[l->steps][i] = n_tokens[i];
        }
        l->segs[l->steps++] = n;
    }
    while (l->hold) {
        l->waiting = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_cond_wait(&l->cv, &l->mu);
    }
    l->waiting = 0;
    pthread_mutex_unlock(&l->mu);
}

static void log_init(step_log *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
}

static sampler *greedy(void)
{
    sampler_params sp;
    sampler_params_default(&sp);
    sp.temperature = 0;
    return sampler_new(VOCAB, &sp, NULL);
}

typedef struct {
    int32_t ids[512];
    uint32_t n;
    sched_info info;
} job_out;

/* Waits for j to end, collecting its tokens. */
static void drain(sched_job *j, job_out *o)
{
    memset(o, 0, sizeof(*o));
    for (;;) {
        uint32_t n = 0;
        sched_job_wait(j, o->ids + o->n, 512 - o->n, &n, &o->info, -1);
        o->n += n;
        if (o->info.end != SCHED_RUNNING)
            return;
    }
}

/* on_logits: keeps the first logits (the buffer's first float is NaN until then). */
static void keep_first(void *ctx, const float *logits, uint32_t n)
{
    float *dst = ctx;
    if (isnan(dst[0]))
        memcpy(dst, logits, n * sizeof(float));
}

static sched_job *submit(sched *s, const int32_t *p, uint32_t n, uint32_t max, sampler *smp,
                         const volatile int *cancel, const char *key, float *first,
                         loco_status want)
{
    sched_req r;
    memset(&r, 0, sizeof(r));
    r.prompt = p;
    r.n_prompt = n;
    r.smp = smp;
    r.max_tokens = max;
    r.cancel = cancel;
    r.cache_key = key;
    if (first) {
        r.on_logits = keep_first;
        r.logits_ctx = first;
    }
    sched_job *j = NULL;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(sched_submit(s, &r, &j, &err), want);
    return j;
}

static void test_prefix_reuse(void **state)
{
    (void)state;
    qwen3_ctx *c = new_ctx(2, 64, 64, false, QWEN3_KV_F16);
    sched_opts so = {2, 0, 0};
    sched *s = NULL;
    assert_int_equal(sched_new(c, &so, &s, NULL), LOCO_OK);
    int32_t p[200];
    make_prompt(p, 150, 9);
    sampler *smp = greedy();
    job_out a, b;
    sched_job *j = submit(s, p, 150, 5, smp, NULL, "agent-1", NULL, LOCO_OK);
    drain(j, &a);
    sched_job_free(j);
    assert_int_equal(a.info.end, SCHED_MAX_TOKENS);
    assert_int_equal(a.n, 5);
    assert_int_equal(a.info.reused, 0);
    /* the agent's next turn: its conversation so far, then new tokens; everything evaluated
     * before (the prompt and the first four answer tokens) is reused */
    memcpy(p + 150, a.ids, 5 * sizeof(int32_t));
    make_prompt(p + 155, 12, 10);
    float first[VOCAB], fresh[VOCAB];
    first[0] = NAN;
    j = submit(s, p, 167, 3, smp, NULL, "agent-1", first, LOCO_OK);
    drain(j, &b);
    sched_job_free(j);
    assert_int_equal(b.info.reused, 154);
    /* a second sub-agent with the same leading 130 tokens: two whole blocks and two positions
     * of the third */
    int32_t q[140];
    memcpy(q, p, 130 * sizeof(int32_t));
    make_prompt(q + 130, 10, 77);
    j = submit(s, q, 140, 2, smp, NULL, "agent-2", NULL, LOCO_OK);
    drain(j, &b);
    sched_job_free(j);
    assert_int_equal(b.info.reused, 130);
    sched_stats st;
    sched_get_stats(s, &st);
    assert_int_equal(st.prompt_tokens, 150 + 167 + 140);
    assert_int_equal(st.cache_hit_tokens, 154 + 130);
    assert_int_equal(st.gen_tokens, 5 + 3 + 2);
    sched_free(s);
    /* the reused prefix gives the logits a fresh computation by the same steps gives (the
     * prompt in batches, the four answer tokens one at a time as decoding evaluated them,
     * then the new tokens), bit for bit */
    logits_steps(c, p, 150, 4, 167, fresh);
    float d = max_diff(first, fresh, VOCAB);
    if (verbose())
        fprintf(stderr, "reused prefix vs fresh, same steps: max |dlogit| %.3g\n", d);
    assert_true(d == 0.0f);
    /* and to a fresh computation of everything as one prompt (the answer tokens' rows then
     * go through the prompt kernels) */
    logits_of(c, p, 167, fresh);
    d = max_diff(first, fresh, VOCAB);
    if (verbose())
        fprintf(stderr, "reused prefix vs fresh, one prompt: max |dlogit| %.3g\n", d);
    assert_true(d <= 1e-4f * max_abs(fresh, VOCAB));
    sampler_free(smp);
    qwen3_ctx_free(c);
}

static void test_lru_eviction(void **state)
{
    (void)state;
    qwen3_ctx *c = new_ctx(1, 128, 2, false, QWEN3_KV_F16); /* the cache keeps 2 blocks */
    sched_opts so = {1, 0, 0};
    sched *s = NULL;
    assert_int_equal(sched_new(c, &so, &s, NULL), LOCO_OK);
    sampler *smp = greedy();
    int32_t p[3][2 * KV_BLOCK + 1];
    job_out o;
    for (int k = 0; k < 3; k++) {
        make_prompt(p[k], 2 * KV_BLOCK + 1, 100 + (uint32_t)k); /* 2 blocks evaluated + 1 sampled */
        sched_job *j = submit(s, p[k], 2 * KV_BLOCK, 1, smp, NULL, NULL, NULL, LOCO_OK);
        drain(j, &o);
        sched_job_free(j);
    }
    sched_job *j = submit(s, p[0], 2 * KV_BLOCK + 1, 1, smp, NULL, NULL, NULL, LOCO_OK);
    drain(j, &o);
    sched_job_free(j);
    assert_int_equal(o.info.reused, 0); /* evicted */
    j = submit(s, p[2], 2 * KV_BLOCK + 1, 1, smp, NULL, NULL, NULL, LOCO_OK);
    drain(j, &o);
    sched_job_free(j);
    assert_int_equal(o.info.reused, 0); /* pushed out by p[0]'s run just now */
    j = submit(s, p[2], 2 * KV_BLOCK + 1, 1, smp, NULL, NULL, NULL, LOCO_OK);
    drain(j, &o);
    sched_job_free(j);
    assert_int_equal(o.info.reused, 2 * KV_BLOCK); /* the most recent stays */
    sched_stats st;
    sched_get_stats(s, &st);
    assert_true(st.cache_bytes <= 2ull * 2 * 2 * 2 * KV_BLOCK * 64);
    sched_free(s);
    sampler_free(smp);
    qwen3_ctx_free(c);
}

/* Holds the scheduler in its step hook until released. */
static void wait_held(step_log *l)
{
    pthread_mutex_lock(&l->mu);
    while (!l->waiting)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

static void release(step_log *l)
{
    pthread_mutex_lock(&l->mu);
    l->hold = false;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void test_busy_and_cancel(void **state)
{
    (void)state;
    qwen3_ctx *c = new_ctx(1, 64, 8, false, QWEN3_KV_F16);
    sched_opts so = {1, 1, 0};
    sched *s = NULL;
    assert_int_equal(sched_new(c, &so, &s, NULL), LOCO_OK);
    step_log *l = malloc(sizeof(*l));
    log_init(l);
    l->hold = true;
    sched_set_step_hook(s, on_step, l);
    sampler *s1 = greedy(), *s2 = greedy(), *s3 = greedy();
    int32_t p[20];
    make_prompt(p, 20, 3);
    volatile int cancel1 = 0;
    sched_job *j1 = submit(s, p, 20, 400, s1, &cancel1, NULL, NULL, LOCO_OK);
    wait_held(l); /* j1 runs (held in its first step) */
    sched_job *j2 = submit(s, p, 10, 3, s2, NULL, NULL, NULL, LOCO_OK); /* waits */
    loco_err err;
    loco_err_clear(&err);
    sched_req r;
    memset(&r, 0, sizeof(r));
    r.prompt = p;
    r.n_prompt = 5;
    r.smp = s3;
    r.max_tokens = 1;
    sched_job *j3 = NULL;
    assert_int_equal(sched_submit(s, &r, &j3, &err), LOCO_ERR_BUSY); /* at once */
    assert_null(j3);
    assert_non_null(strstr(err.msg, "busy"));
    sched_stats st;
    sched_get_stats(s, &st);
    assert_int_equal(st.busy, 1);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.queue_len, 1);
    release(l);
    /* j1 generates; cancel it once it has a few tokens */
    job_out o1;
    memset(&o1, 0, sizeof(o1));
    while (o1.n < 3) {
        uint32_t n = 0;
        sched_job_wait(j1, o1.ids + o1.n, 512 - o1.n, &n, &o1.info, -1);
        o1.n += n;
    }
    pthread_mutex_lock(&l->mu);
    size_t steps_at_cancel = l->steps;
    __atomic_store_n(&cancel1, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&l->mu);
    job_out rest;
    drain(j1, &rest);
    assert_int_equal(rest.info.end, SCHED_FAILED);
    assert_int_equal(rest.info.status, LOCO_ERR_CANCELLED);
    /* j1 was in at most one step after the cancel */
    size_t after = 0;
    pthread_mutex_lock(&l->mu);
    for (size_t k = steps_at_cancel; k < l->steps; k++)
        for (uint32_t i = 0; i < l->segs[k] && i < 4; i++)
            after += l->ids[k][i] == 1;
    pthread_mutex_unlock(&l->mu);
    assert_true(after <= 1);
    /* its slot went to j2, which runs to the end */
    job_out o2;
    drain(j2, &o2);
    assert_true(o2.info.admitted);
    assert_int_equal(o2.info.end, SCHED_MAX_TOKENS);
    assert_int_equal(o2.n, 3);
    sched_get_stats(s, &st);
    assert_int_equal(st.cancelled, 1);
    assert_int_equal(st.active, 0);
    sched_job_free(j1);
    sched_job_free(j2);
    /* a job freed while it runs is ended by the free */
    volatile int never = 0;
    sched_job *j4 = submit(s, p, 20, 400, s1, &never, NULL, NULL, LOCO_OK);
    job_out o4;
    memset(&o4, 0, sizeof(o4));
    while (!o4.n) {
        uint32_t n = 0;
        sched_job_wait(j4, o4.ids, 512, &n, &o4.info, -1);
        o4.n += n;
    }
    sched_job_free(j4);
    sched_free(s);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
    sampler_free(s1);
    sampler_free(s2);
    sampler_free(s3);
    qwen3_ctx_free(c);
}

static void test_chunked_prefill(void **state)
{
    (void)state;
    qwen3_ctx *c = new_ctx(2, 64, 8, false, QWEN3_KV_F16);
    sched_opts so = {2, 0, 16};
    sched *s = NULL;
    assert_int_equal(sched_new(c, &so, &s, NULL), LOCO_OK);
    step_log *l = malloc(sizeof(*l));
    log_init(l);
    sched_set_step_hook(s, on_step, l);
    sampler *sa = greedy(), *sb = greedy();
    int32_t pa[5], pb[150];
    make_prompt(pa, 5, 21);
    make_prompt(pb, 150, 22);
    volatile int cancel_a = 0;
    sched_job *ja = submit(s, pa, 5, 300, sa, &cancel_a, NULL, NULL, LOCO_OK);
    job_out oa;
    memset(&oa, 0, sizeof(oa));
    while (!oa.n) { /* A is generating */
        uint32_t n = 0;
        sched_job_wait(ja, oa.ids, 512, &n, &oa.info, -1);
        oa.n += n;
    }
    sched_job *jb = submit(s, pb, 150, 1, sb, NULL, NULL, NULL, LOCO_OK);
    job_out ob;
    drain(jb, &ob);
    __atomic_store_n(&cancel_a, 1, __ATOMIC_RELEASE);
    drain(ja, &oa);
    /* B's prompt went in chunks of at most 16, each in a step that also carried A's token */
    size_t b_steps = 0, b_rows = 0;
    pthread_mutex_lock(&l->mu);
    for (size_t k = 0; k < l->steps; k++) {
        uint32_t a_n = 0, b_n = 0;
        for (uint32_t i = 0; i < l->segs[k]; i++) {
            if (l->ids[k][i] == 1)
                a_n = l->ns[k][i];
            else
                b_n = l->ns[k][i];
        }
        if (b_n) {
            b_steps++;
            b_rows += b_n;
            assert_true(b_n <= 16);
            assert_int_equal(a_n, 1); /* A's next token rode along */
        }
    }
    pthread_mutex_unlock(&l->mu);
    assert_int_equal(b_rows, 150);
    assert_true(b_steps >= 10);
    assert_int_equal(ob.n, 1);
    sched_job_free(ja);
    sched_job_free(jb);
    sched_free(s);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
    sampler_free(sa);
    sampler_free(sb);
    qwen3_ctx_free(c);
}

/* ---- memory: nothing of the file stays mapped in once the fast path is ready ---- */

/* Pages of [p, p + n) mapped into this process (/proc/self/pagemap's present bit); -1 where
 * that cannot be read. */
static long resident_pages(const void *p, size_t n)
{
#ifdef __linux__
    FILE *f = fopen("/proc/self/pagemap", "rb");
    if (!f)
        return -1;
    const uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t b = (uintptr_t)p / ps, e = ((uintptr_t)p + n) / ps; /* whole pages */
    long count = 0;
    if (fseek(f, (long)(b * 8), SEEK_SET)) {
        fclose(f);
        return -1;
    }
    for (uintptr_t i = b; i < e; i++) {
        uint64_t v;
        if (fread(&v, 8, 1, f) != 1) {
            fclose(f);
            return -1;
        }
        count += (long)(v >> 63);
    }
    fclose(f);
    return count;
#else
    (void)p;
    (void)n;
    return -1;
#endif
}

/* The norm vectors are copies (read for every token, through the mapping each kept a page of
 * the file resident: a whole 2 MB one where the page cache holds the file in huge pages), and
 * the first fast context drops every page of the file mapping that packing left (the header,
 * the pages slices shared): after a prompt the mapping holds none but the file's partial last
 * page. A model of its own, so other tests' parity contexts (which read the mapping) do not
 * count. */
static void test_file_not_resident(void **state)
{
    (void)state;
    gguf *g2 = NULL;
    qwen3_model *m2 = NULL;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(gguf_open(model_path, &g2, &err), LOCO_OK);
    assert_int_equal(qwen3_load(g2, &m2, &err), LOCO_OK);
    const void *base;
    size_t size;
    gguf_mapping(g2, &base, &size);
    const uint8_t *lo = base, *hi = lo + size;
    const uint8_t *norms[] = {m2->output_norm.data, m2->layers[0].attn_norm.data,
                              m2->layers[1].q_norm.data, m2->layers[1].k_norm.data,
                              m2->layers[1].ffn_norm.data};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(norms); i++)
        assert_true(norms[i] < lo || norms[i] >= hi);
    qwen3_ctx *c = NULL;
    assert_int_equal(qwen3_ctx_new(m2, 4 * KV_BLOCK, 64, NULL, &c, &err), LOCO_OK);
    int32_t p[40];
    make_prompt(p, 40, 5);
    float *logits = malloc(VOCAB * sizeof(float));
    assert_int_equal(qwen3_eval(c, p, 40, logits, &err), LOCO_OK);
    assert_int_equal(qwen3_eval(c, p, 1, logits, &err), LOCO_OK);
    const long n = resident_pages(base, size);
    if (verbose())
        fprintf(stderr, "file mapping: %ld resident pages of %zu bytes\n", n, size);
    free(logits);
    qwen3_ctx_free(c);
    qwen3_free(m2);
    gguf_close(g2);
    if (n < 0)
        skip();
    assert_int_equal(n, 0);
}

static void test_bad_requests(void **state)
{
    (void)state;
    qwen3_ctx *c = new_ctx(1, 64, 0, false, QWEN3_KV_F16);
    sched *s = NULL;
    assert_int_equal(sched_new(c, NULL, &s, NULL), LOCO_OK);
    sampler *smp = greedy();
    int32_t p[4 * KV_BLOCK + 1];
    make_prompt(p, 4 * KV_BLOCK + 1, 1);
    submit(s, p, 4 * KV_BLOCK + 1, 1, smp, NULL, NULL, NULL, LOCO_ERR_OVERFLOW); /* n_ctx + 1 */
    p[3] = VOCAB;
    submit(s, p, 10, 1, smp, NULL, NULL, NULL, LOCO_ERR_INVALID);
    sched_free(s);
    sampler_free(smp);
    qwen3_ctx_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_equals_alone),
        cmocka_unit_test(test_kv_q8_and_parity),
        cmocka_unit_test(test_prefix_reuse),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_busy_and_cancel),
        cmocka_unit_test(test_chunked_prefill),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_file_not_resident),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
