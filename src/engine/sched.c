/* sched.c: the scheduler (sched.h). One mutex guards the queue, the slots, the jobs' shared
 * fields and the statistics; the KV cache, the sequences, the samplers and the model context
 * are touched by the scheduler thread only. A step: under the lock, finish what was cancelled
 * or stopped, admit waiting jobs into free slots (each attaching the longest cached prefix of
 * its prompt), and lay out the step (one token per generating job, then prompt chunks in
 * admission order); without the lock, run the forward pass and sample; under the lock again,
 * hand out the tokens. */
#include "base/common.h"

#include <math.h>
#include <pthread.h>

#include "base/log.h"
#include "engine/kv.h"
#include "engine/sched.h"

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct sched_job {
    sched *s;
    uint64_t id;
    /* the request */
    int32_t *prompt;       /* (n_prompt) copy */
    uint32_t n_prompt;
    sampler *smp;
    uint32_t max_tokens;
    int32_t stop_ids[4];
    uint32_t n_stop;
    const volatile int *cancel;
    char *key;
    int32_t *force;        /* (n_force) teacher-forced ids, NULL: none */
    uint32_t n_force;
    void (*on_logits)(void *ctx, const float *logits, uint32_t n_vocab);
    void *logits_ctx;
    constrain *con;
    /* scheduler thread only */
    kv_seq *seq;
    uint32_t fed;          /* prompt tokens in the cache */
    int32_t pending;       /* sampled, not yet evaluated; -1: none */
    float *logits;         /* (n_vocab) */
    bool want;             /* in the current step with logits */
    uint32_t step_n;       /* its tokens in the current step */
    int32_t sampled;       /* token sampled after the step; -1: none */
    loco_status sample_rc;
    /* shared, under s->mu */
    int state;
    bool stop_req;         /* sched_job_stop */
    bool kill;             /* sched_job_free while running */
    int32_t *out;          /* (cap_out) generated ids */
    uint32_t n_out, cap_out, n_read;
    sched_info info;
    char err[LOCO_ERR_MSG_MAX];
    double t_submit;
    bool changed;          /* admitted or done since the owner last looked */
    pthread_cond_t cv;
    sched_job *next;       /* queue link */
};

typedef struct {
    char *key;
    kv_pin pin;
    uint64_t stamp;
} sched_key;

struct sched {
    qwen3_ctx *ctx;
    kv_cache *kv;
    uint32_t n_vocab, n_ctx, n_batch;
    int parallel, queue_max;
    uint32_t chunk;        /* fixed prefill chunk, 0: adaptive */
    double tok_cost;       /* seconds per row of recent steps with prompt rows (EMA) */
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* wakes the scheduler */
    bool quit;
    sched_job *q_head, *q_tail;
    long n_queue;
    sched_job **active;    /* (parallel) in admission order */
    long n_active;
    uint64_t next_id;
    sched_stats st;
    sched_key keys[SCHED_MAX_KEYS];
    uint64_t key_clock;
    /* the step being built (scheduler thread) */
    qwen3_seg *segs;
    sched_job **seg_jobs;
    uint64_t *hook_ids;
    uint32_t *hook_n;
    sched_step_hook hook;
    void *hook_ctx;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- keys (kv pins) */

static sched_key *key_find(sched *s, const char *key)
{
    for (int i = 0; i < SCHED_MAX_KEYS; i++)
        if (s->keys[i].key && !strcmp(s->keys[i].key, key))
            return &s->keys[i];
    return NULL;
}

/* The key's previous sequence is about to be reused: its blocks need no pin any more (so a
 * partial last block can be taken over). */
static void key_unpin(sched *s, const char *key)
{
    sched_key *k = key ? key_find(s, key) : NULL;
    if (k && k->pin.block >= 0) {
        kv_unpin(s->kv, k->pin);
        k->pin.block = -1;
    }
}

static void key_store(sched *s, const char *key, kv_pin pin)
{
    sched_key *k = key_find(s, key);
    if (!k) {
        sched_key *lru = &s->keys[0];
        for (int i = 0; i < SCHED_MAX_KEYS; i++) {
            if (!s->keys[i].key) {
                lru = &s->keys[i];
                break;
            }
            if (s->keys[i].stamp < lru->stamp)
                lru = &s->keys[i];
        }
        if (lru->key) {
            if (lru->pin.block >= 0)
                kv_unpin(s->kv, lru->pin);
            free(lru->key);
        }
        lru->key = strdup(key);
        lru->pin.block = -1;
        k = lru;
        if (!k->key) {
            kv_unpin(s->kv, pin);
            return;
        }
    }
    if (k->pin.block >= 0)
        kv_unpin(s->kv, k->pin);
    k->pin = pin;
    k->stamp = ++s->key_clock;
}

/* ---------------------------------------------------------------- job states (under mu) */

static void update_kv_stats(sched *s)
{
    kv_stats ks;
    kv_cache_stats(s->kv, &ks);
    s->st.kv_bytes = (uint64_t)ks.blocks_used * ks.block_bytes;
    s->st.cache_bytes = (uint64_t)ks.blocks_cached * ks.block_bytes;
}

static void remove_active(sched *s, sched_job *j)
{
    long k = 0;
    for (long i = 0; i < s->n_active; i++)
        if (s->active[i] != j)
            s->active[k++] = s->active[i];
    s->n_active = k;
}

/* Ends a running job: its sequence goes back to the cache (pinned under its key). */
static void finish(sched *s, sched_job *j, sched_end end, loco_status rc, const char *msg)
{
    if (j->seq) {
        if (j->key && rc == LOCO_OK)
            key_store(s, j->key, kv_seq_free_pin(j->seq));
        else
            kv_seq_free(j->seq);
        j->seq = NULL;
    }
    if (j->state == JOB_RUNNING)
        remove_active(s, j);
    j->state = JOB_DONE;
    j->info.end = end;
    j->info.status = rc;
    if (rc == LOCO_ERR_CANCELLED)
        s->st.cancelled++;
    if (msg)
        snprintf(j->err, sizeof(j->err), "%s", msg);
    j->changed = true;
    update_kv_stats(s);
    pthread_cond_broadcast(&j->cv);
}

static bool job_cancelled(const sched_job *j)
{
    return j->kill || (j->cancel && __atomic_load_n(j->cancel, __ATOMIC_ACQUIRE));
}

static void admit(sched *s, sched_job *j)
{
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = kv_seq_new(s->kv, s->n_ctx, &j->seq, &err);
    j->state = JOB_RUNNING;
    s->active[s->n_active++] = j;
    if (rc) {
        finish(s, j, SCHED_FAILED, rc, err.msg);
        return;
    }
    key_unpin(s, j->key);
    /* the last prompt token is always computed: its logits give the first token */
    uint32_t reused = kv_seq_attach(j->seq, j->prompt, j->n_prompt - 1);
    j->fed = reused;
    j->info.admitted = true;
    j->info.reused = reused;
    j->changed = true;
    s->st.prompt_tokens += j->n_prompt;
    s->st.cache_hit_tokens += reused;
    update_kv_stats(s);
    pthread_cond_broadcast(&j->cv);
}

/* Hands out the token sampled for j after a step. */
static void deliver(sched *s, sched_job *j, double t)
{
    if (j->sample_rc) {
        finish(s, j, SCHED_FAILED, j->sample_rc, "sampling failed");
        return;
    }
    int32_t id = j->sampled;
    j->sampled = -1;
    for (uint32_t i = 0; !j->force && i < j->n_stop; i++) {
        if (id == j->stop_ids[i]) {
            finish(s, j, SCHED_END_TURN, LOCO_OK, NULL);
            return;
        }
    }
    if (j->n_out == j->cap_out) {
        uint32_t cap = j->cap_out ? j->cap_out * 2 : 64;
        int32_t *o = realloc(j->out, cap * sizeof(int32_t));
        if (!o) {
            finish(s, j, SCHED_FAILED, LOCO_ERR_NOMEM, "out of memory");
            return;
        }
        j->out = o;
        j->cap_out = cap;
    }
    j->out[j->n_out++] = id;
    j->info.n_tokens = j->n_out;
    s->st.gen_tokens++;
    if (j->n_out == 1)
        j->info.ttft_s = t - j->t_submit;
    pthread_cond_broadcast(&j->cv);
    if (j->n_out >= j->max_tokens)
        finish(s, j, SCHED_MAX_TOKENS, LOCO_OK, NULL);
    else if (kv_seq_len(j->seq) >= s->n_ctx)
        finish(s, j, SCHED_CTX_FULL, LOCO_OK, NULL);
    else
        j->pending = j->force ? j->force[j->n_out - 1] : id;
}

/* ---------------------------------------------------------------- the thread */

/* Prompt tokens the step may take besides n_dec generating sequences. */
static uint32_t prompt_budget(const sched *s, uint32_t n_dec)
{
    uint32_t budget = s->n_batch - n_dec;
    if (!n_dec)
        return budget;
    uint32_t chunk = s->chunk;
    if (!chunk) {
        double c = s->tok_cost > 0 ? SCHED_STEP_TARGET_S / s->tok_cost : (double)budget;
        chunk = c < 32 ? 32 : c > budget ? budget : (uint32_t)c;
    }
    return chunk < budget ? chunk : budget;
}

/* Under mu: cancels, admissions, the layout of the next step. Returns its segment count. */
static uint32_t plan_step(sched *s, uint32_t *out_prompt_rows)
{
    /* waiting jobs that were cancelled leave the queue */
    for (sched_job **pp = &s->q_head; *pp;) {
        sched_job *j = *pp;
        if (!job_cancelled(j)) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        if (s->q_tail == j)
            s->q_tail = NULL;
        s->n_queue--;
        finish(s, j, SCHED_FAILED, LOCO_ERR_CANCELLED, "cancelled");
    }
    s->q_tail = s->q_head;
    while (s->q_tail && s->q_tail->next)
        s->q_tail = s->q_tail->next;
    for (long i = 0; i < s->n_active;) {
        sched_job *j = s->active[i];
        if (job_cancelled(j))
            finish(s, j, SCHED_FAILED, LOCO_ERR_CANCELLED, "cancelled");
        else if (j->stop_req)
            finish(s, j, SCHED_STOPPED, LOCO_OK, NULL);
        else
            i++;
    }
    while (s->n_active < s->parallel && s->q_head) {
        sched_job *j = s->q_head;
        s->q_head = j->next;
        if (!s->q_head)
            s->q_tail = NULL;
        s->n_queue--;
        j->next = NULL;
        admit(s, j);
    }
    s->st.queue_len = s->n_queue;
    s->st.active = s->n_active;

    uint32_t n = 0, n_dec = 0, prompt_rows = 0;
    for (long i = 0; i < s->n_active; i++) {
        sched_job *j = s->active[i];
        if (j->pending < 0)
            continue;
        s->seg_jobs[n] = j;
        s->segs[n++] = (qwen3_seg){j->seq, &j->pending, 1, j->logits, false};
        n_dec++;
    }
    uint32_t budget = prompt_budget(s, n_dec);
    for (long i = 0; i < s->n_active && budget; i++) {
        sched_job *j = s->active[i];
        if (j->pending >= 0 || j->fed >= j->n_prompt)
            continue;
        uint32_t k = j->n_prompt - j->fed < budget ? j->n_prompt - j->fed : budget;
        bool last = j->fed + k == j->n_prompt;
        s->seg_jobs[n] = j;
        s->segs[n++] = (qwen3_seg){j->seq, j->prompt + j->fed, k, last ? j->logits : NULL, false};
        budget -= k;
        prompt_rows += k;
    }
    /* room in the cache for every segment (a job that cannot get it fails alone) */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        loco_err err;
        loco_err_clear(&err);
        sched_job *j = s->seg_jobs[i];
        if (kv_seq_reserve(j->seq, s->segs[i].n, &err)) {
            if (j->pending < 0)
                prompt_rows -= s->segs[i].n;
            finish(s, j, SCHED_FAILED, err.code, err.msg);
            continue;
        }
        s->seg_jobs[kept] = j;
        s->segs[kept++] = s->segs[i];
    }
    *out_prompt_rows = prompt_rows;
    return kept;
}

static void *sched_main(void *arg)
{
    sched *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->quit) {
        uint32_t prompt_rows = 0;
        uint32_t n = plan_step(s, &prompt_rows);
        if (!n) {
            if (!s->n_active && !s->q_head)
                pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);

        uint32_t rows = 0;
        for (uint32_t i = 0; i < n; i++) {
            sched_job *j = s->seg_jobs[i];
            j->want = s->segs[i].logits != NULL;
            j->step_n = s->segs[i].n;
            rows += s->segs[i].n;
            s->hook_ids[i] = j->id;
            s->hook_n[i] = s->segs[i].n;
        }
        if (s->hook)
            s->hook(s->hook_ctx, s->hook_ids, s->hook_n, n);
        loco_err err;
        loco_err_clear(&err);
        double t0 = now_s();
        loco_status rc = qwen3_forward(s->ctx, s->segs, n, &err);
        for (uint32_t i = 0; !rc && i < n; i++) {
            sched_job *j = s->seg_jobs[i];
            if (!j->want)
                continue;
            if (j->on_logits)
                j->on_logits(j->logits_ctx, j->logits, s->n_vocab);
            if (j->con) {
                /* tokens that may still come: this one included, its evaluation not needed */
                long ctx_left = (long)s->n_ctx - (long)kv_seq_len(j->seq) + 1;
                long max_left = (long)j->max_tokens - (long)j->n_out;
                constrain_set_budget(j->con, max_left < ctx_left ? max_left : ctx_left);
            }
            j->sample_rc = sampler_sample(j->smp, j->logits, &j->sampled, NULL);
            /* the penalty window sees the token that goes on (the forced one) */
            if (!j->sample_rc)
                sampler_accept(j->smp, j->force ? j->force[j->n_out] : j->sampled);
        }
        double t1 = now_s();

        pthread_mutex_lock(&s->mu);
        double dt = t1 - t0;
        s->st.steps++;
        s->st.prompt_seconds += dt * prompt_rows / rows;
        s->st.gen_seconds += dt * (rows - prompt_rows) / rows;
        if (prompt_rows) {
            double c = dt / rows;
            s->tok_cost = s->tok_cost > 0 ? 0.7 * s->tok_cost + 0.3 * c : c;
        }
        for (uint32_t i = 0; i < n; i++) {
            sched_job *j = s->seg_jobs[i];
            if (j->state != JOB_RUNNING)
                continue;
            if (rc) {
                finish(s, j, SCHED_FAILED, rc, err.msg);
                continue;
            }
            if (j->pending >= 0)
                j->pending = -1; /* evaluated */
            else
                j->fed += j->step_n;
            if (j->want)
                deliver(s, j, t1);
        }
    }
    /* shutting down: every job ends */
    while (s->n_active)
        finish(s, s->active[0], SCHED_FAILED, LOCO_ERR_CANCELLED, "the engine is shutting down");
    while (s->q_head) {
        sched_job *j = s->q_head;
        s->q_head = j->next;
        s->n_queue--;
        finish(s, j, SCHED_FAILED, LOCO_ERR_CANCELLED, "the engine is shutting down");
    }
    s->q_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---------------------------------------------------------------- API */

loco_status sched_new(qwen3_ctx *ctx, const sched_opts *o, sched **out, loco_err *err)
{
    sched *s = calloc(1, sizeof(*s));
    if (!s)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    s->ctx = ctx;
    s->kv = qwen3_ctx_kv(ctx);
    s->n_ctx = qwen3_ctx_size(ctx);
    s->n_batch = qwen3_ctx_batch(ctx);
    s->n_vocab = qwen3_ctx_vocab(ctx);
    s->parallel = o && o->parallel > 0 ? o->parallel : 1;
    if ((uint32_t)s->parallel > qwen3_ctx_seqs(ctx))
        s->parallel = (int)qwen3_ctx_seqs(ctx);
    s->queue_max = !o || o->queue_max == 0 ? 2 * s->parallel : o->queue_max < 0 ? 0 : o->queue_max;
    s->chunk = o ? o->prefill_chunk : 0;
    s->st.parallel = s->parallel;
    for (int i = 0; i < SCHED_MAX_KEYS; i++)
        s->keys[i].pin.block = -1;
    size_t P = (size_t)s->parallel;
    s->active = calloc(P, sizeof(*s->active));
    s->segs = calloc(P, sizeof(*s->segs));
    s->seg_jobs = calloc(P, sizeof(*s->seg_jobs));
    s->hook_ids = calloc(P, sizeof(*s->hook_ids));
    s->hook_n = calloc(P, sizeof(*s->hook_n));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (!s->active || !s->segs || !s->seg_jobs || !s->hook_ids || !s->hook_n) {
        sched_free(s);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    if (pthread_create(&s->th, NULL, sched_main, s)) {
        sched_free(s);
        return loco_err_set(err, LOCO_ERR_NOMEM, "cannot start the scheduler thread");
    }
    s->started = true;
    *out = s;
    return LOCO_OK;
}

void sched_free(sched *s)
{
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->quit = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->th, NULL);
    }
    for (int i = 0; i < SCHED_MAX_KEYS; i++) {
        if (s->keys[i].key && s->keys[i].pin.block >= 0)
            kv_unpin(s->kv, s->keys[i].pin);
        free(s->keys[i].key);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->active);
    free(s->segs);
    free(s->seg_jobs);
    free(s->hook_ids);
    free(s->hook_n);
    free(s);
}

static void job_free_mem(sched_job *j)
{
    if (!j)
        return;
    pthread_cond_destroy(&j->cv);
    free(j->prompt);
    free(j->key);
    free(j->force);
    free(j->logits);
    free(j->out);
    free(j);
}

loco_status sched_submit(sched *s, const sched_req *r, sched_job **out, loco_err *err)
{
    *out = NULL;
    if (!r->n_prompt || !r->smp || r->n_stop_ids > 4)
        return loco_err_set(err, LOCO_ERR_INVALID, "a request needs a prompt and a sampler");
    for (uint32_t i = 0; r->force_ids && i < r->n_force_ids; i++)
        if (r->force_ids[i] < 0 || (uint32_t)r->force_ids[i] >= s->n_vocab)
            return loco_err_set(err, LOCO_ERR_INVALID,
                                "forced token id %d is outside the vocabulary (%u)",
                                r->force_ids[i], s->n_vocab);
    if (r->n_prompt > s->n_ctx)
        return loco_err_set(err, LOCO_ERR_OVERFLOW,
                            "the prompt (%u tokens) does not fit the context of %u tokens",
                            r->n_prompt, s->n_ctx);
    for (uint32_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || (uint32_t)r->prompt[i] >= s->n_vocab)
            return loco_err_set(err, LOCO_ERR_INVALID,
                                "token id %d is outside the vocabulary (%u)", r->prompt[i],
                                s->n_vocab);
    sched_job *j = calloc(1, sizeof(*j));
    if (!j)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    pthread_cond_init(&j->cv, NULL);
    j->s = s;
    j->prompt = malloc(r->n_prompt * sizeof(int32_t));
    j->logits = malloc(s->n_vocab * sizeof(float));
    j->key = r->cache_key ? strdup(r->cache_key) : NULL;
    j->force = r->force_ids ? malloc((r->n_force_ids + 1) * sizeof(int32_t)) : NULL;
    if (!j->prompt || !j->logits || (r->cache_key && !j->key) || (r->force_ids && !j->force)) {
        job_free_mem(j);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    memcpy(j->prompt, r->prompt, r->n_prompt * sizeof(int32_t));
    j->n_prompt = r->n_prompt;
    j->smp = r->smp;
    j->max_tokens = r->max_tokens ? r->max_tokens : 1;
    if (r->n_stop_ids)
        memcpy(j->stop_ids, r->stop_ids, r->n_stop_ids * sizeof(int32_t));
    j->n_stop = r->n_stop_ids;
    j->cancel = r->cancel;
    if (j->force) {
        memcpy(j->force, r->force_ids, r->n_force_ids * sizeof(int32_t));
        j->n_force = r->n_force_ids;
        if (j->max_tokens > j->n_force)
            j->max_tokens = j->n_force ? j->n_force : 1;
    }
    j->on_logits = r->on_logits;
    j->logits_ctx = r->logits_ctx;
    j->con = r->con;
    j->pending = -1;
    j->sampled = -1;
    j->t_submit = now_s();

    pthread_mutex_lock(&s->mu);
    if (s->quit || (s->n_active + s->n_queue >= s->parallel + s->queue_max)) {
        bool quit = s->quit;
        s->st.busy += !quit;
        long a = s->n_active, q = s->n_queue;
        pthread_mutex_unlock(&s->mu);
        job_free_mem(j);
        if (quit)
            return loco_err_set(err, LOCO_ERR_CANCELLED, "the engine is shutting down");
        return loco_err_set(err, LOCO_ERR_BUSY,
                            "the engine is busy: %ld sequences running, %ld waiting", a, q);
    }
    j->id = ++s->next_id;
    j->state = JOB_QUEUED;
    if (s->q_tail)
        s->q_tail->next = j;
    else
        s->q_head = j;
    s->q_tail = j;
    s->n_queue++;
    s->st.requests++;
    s->st.queue_len = s->n_queue;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    *out = j;
    return LOCO_OK;
}

void sched_job_wait(sched_job *j, int32_t *ids, uint32_t cap, uint32_t *out_n, sched_info *info,
                    long timeout_ms)
{
    sched *s = j->s;
    pthread_mutex_lock(&s->mu);
    if (timeout_ms < 0) {
        while (j->n_read == j->n_out && !j->changed)
            pthread_cond_wait(&j->cv, &s->mu);
    } else if (j->n_read == j->n_out && !j->changed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (j->n_read == j->n_out && !j->changed)
            if (pthread_cond_timedwait(&j->cv, &s->mu, &ts))
                break;
    }
    uint32_t n = j->n_out - j->n_read < cap ? j->n_out - j->n_read : cap;
    if (n)
        memcpy(ids, j->out + j->n_read, n * sizeof(int32_t));
    j->n_read += n;
    *out_n = n;
    /* "changed" is consumed only once every token before the change was read */
    if (j->n_read == j->n_out)
        j->changed = false;
    *info = j->info;
    if (j->n_read < j->n_out && info->end != SCHED_RUNNING)
        info->end = SCHED_RUNNING; /* more tokens first */
    pthread_mutex_unlock(&s->mu);
}

void sched_job_stop(sched_job *j)
{
    sched *s = j->s;
    pthread_mutex_lock(&s->mu);
    j->stop_req = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

const char *sched_job_error(const sched_job *j)
{
    return j->err;
}

void sched_job_free(sched_job *j)
{
    if (!j)
        return;
    sched *s = j->s;
    pthread_mutex_lock(&s->mu);
    if (j->state == JOB_QUEUED) {
        for (sched_job **pp = &s->q_head; *pp; pp = &(*pp)->next) {
            if (*pp == j) {
                *pp = j->next;
                break;
            }
        }
        s->q_tail = s->q_head;
        while (s->q_tail && s->q_tail->next)
            s->q_tail = s->q_tail->next;
        s->n_queue--;
        s->st.queue_len = s->n_queue;
        j->state = JOB_DONE;
    }
    if (j->state == JOB_RUNNING) {
        j->kill = true;
        pthread_cond_signal(&s->cv);
        while (j->state != JOB_DONE)
            pthread_cond_wait(&j->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    job_free_mem(j);
}

void sched_get_stats(sched *s, sched_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}

void sched_set_step_hook(sched *s, sched_step_hook fn, void *ctx)
{
    pthread_mutex_lock(&s->mu);
    s->hook = fn;
    s->hook_ctx = ctx;
    pthread_mutex_unlock(&s->mu);
}
