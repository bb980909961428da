/* sampler.c: next-token sampling over a vocabulary-sized logits vector (engine layer).
 * Chain order follows llama.cpp's common sampler: penalties, top-k, top-p, min-p, temperature,
 * then a draw from the softmax with a per-sampler splitmix64 generator. See
 * docs/internals/sampler.md. */
#include "base/common.h"

#include <math.h>

#include "engine/constrain.h"
#include "engine/sampler.h"

typedef struct {
    float logit;
    int32_t id;
} cand;

struct sampler {
    sampler_params p;
    int32_t n_vocab;
    cand *cand;     /* (n_vocab) working candidates of the current step */
    int32_t *count; /* (n_vocab) occurrences of each token in the window */
    int32_t *window; /* (penalty_last_n) ring of the last accepted tokens */
    int32_t win_len; /* tokens in the window */
    int32_t win_pos; /* next slot to write */
    uint64_t rng;    /* splitmix64 state */
    constrain *con;  /* borrowed; NULL: every token allowed */
};

/* Candidates checked one by one, best first, before a greedy pick asks for the whole mask. */
#define SAMPLER_GREEDY_PROBE 64
/* Kept candidates filtered one by one; more than this and the whole mask is cheaper. */
#define SAMPLER_FILTER_MAX 4096

void sampler_params_default(sampler_params *p)
{
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->frequency_penalty = 0.0f;
    p->presence_penalty = 0.0f;
    p->penalty_last_n = 64;
    p->seed = 0;
}

static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t *state)
{
    return (double)(rng_next(state) >> 11) * 0x1.0p-53;
}

static bool params_ok(const sampler_params *p)
{
    return !isnan(p->temperature) && !isnan(p->top_p) && !isnan(p->min_p) &&
           !isnan(p->repeat_penalty) && !isnan(p->frequency_penalty) &&
           !isnan(p->presence_penalty) && p->penalty_last_n >= 0 &&
           p->penalty_last_n <= SAMPLER_MAX_WINDOW;
}

sampler *sampler_new(int32_t n_vocab, const sampler_params *params, loco_err *err)
{
    if (n_vocab < 1 || !params || !params_ok(params)) {
        loco_err_set(err, LOCO_ERR_INVALID,
                     "sampler: bad parameters (vocabulary %" PRId32 ", window 0..%d, no NaN)",
                     n_vocab, SAMPLER_MAX_WINDOW);
        return NULL;
    }
    sampler *s = calloc(1, sizeof *s);
    if (!s) {
        loco_err_set(err, LOCO_ERR_NOMEM, "sampler: out of memory");
        return NULL;
    }
    s->p = *params;
    s->n_vocab = n_vocab;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->count = calloc((size_t)n_vocab, sizeof *s->count);
    s->window = malloc(((size_t)params->penalty_last_n + 1) * sizeof *s->window);
    if (!s->cand || !s->count || !s->window) {
        sampler_free(s);
        loco_err_set(err, LOCO_ERR_NOMEM, "sampler: out of memory for %" PRId32 " tokens",
                     n_vocab);
        return NULL;
    }
    s->rng = params->seed;
    return s;
}

void sampler_free(sampler *s)
{
    if (!s)
        return;
    free(s->cand);
    free(s->count);
    free(s->window);
    free(s);
}

void sampler_reset(sampler *s, uint64_t seed)
{
    for (int32_t i = 0; i < s->win_len; i++)
        s->count[s->window[i]] = 0;
    s->win_len = 0;
    s->win_pos = 0;
    s->rng = seed;
}

void sampler_set_constraint(sampler *s, constrain *c)
{
    s->con = c;
}

loco_status sampler_accept(sampler *s, int32_t token)
{
    if (token < 0 || token >= s->n_vocab)
        return LOCO_ERR_INVALID;
    if (s->con) {
        loco_status rc = constrain_accept(s->con, token);
        if (rc)
            return rc;
    }
    int32_t cap = s->p.penalty_last_n;
    if (cap == 0)
        return LOCO_OK;
    if (s->win_len == cap)
        s->count[s->window[s->win_pos]]--;
    else
        s->win_len++;
    s->window[s->win_pos] = token;
    s->count[token]++;
    s->win_pos = (s->win_pos + 1) % cap;
    return LOCO_OK;
}

static bool penalties_on(const sampler_params *p)
{
    return p->penalty_last_n > 0 &&
           (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f ||
            p->presence_penalty != 0.0f);
}

/* Penalises, once per distinct window token t, the float at base + t * stride (llama.cpp's
 * llama_sampler_penalties_apply). count[t] is negated to mark t done, then restored. */
static void penalize_strided(sampler *s, char *base, size_t stride)
{
    if (!penalties_on(&s->p))
        return;
    for (int32_t i = 0; i < s->win_len; i++) {
        int32_t t = s->window[i];
        int32_t c = s->count[t];
        if (c <= 0)
            continue;
        float *v = (float *)(void *)(base + (size_t)t * stride);
        if (*v <= 0)
            *v *= s->p.repeat_penalty;
        else
            *v /= s->p.repeat_penalty;
        *v -= (float)c * s->p.frequency_penalty + s->p.presence_penalty;
        s->count[t] = -c;
    }
    for (int32_t i = 0; i < s->win_len; i++) {
        int32_t t = s->window[i];
        if (s->count[t] < 0)
            s->count[t] = -s->count[t];
    }
}

void sampler_penalize(sampler *s, float *logits)
{
    penalize_strided(s, (char *)logits, sizeof *logits);
}

/* The total order of candidates: larger logit first, then lower id. */
static bool before(const cand *a, const cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cand_cmp(const void *a, const void *b)
{
    return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

static void swap(cand *a, cand *b)
{
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Moves the m first candidates (in the total order) to c[0..m), sorted (quickselect with a
 * median-of-three pivot, then a sort of the prefix). */
static void sort_top(cand *c, int32_t n, int32_t m)
{
    int32_t lo = 0, hi = n - 1;
    while (m < n && hi > lo) {
        int32_t mid = lo + (hi - lo) / 2;
        if (before(&c[hi], &c[lo]))
            swap(&c[hi], &c[lo]);
        if (before(&c[mid], &c[lo]))
            swap(&c[mid], &c[lo]);
        if (before(&c[hi], &c[mid]))
            swap(&c[hi], &c[mid]);
        cand pivot = c[mid];
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (before(&c[i], &pivot))
                i++;
            while (before(&pivot, &c[j]))
                j--;
            if (i <= j)
                swap(&c[i++], &c[j--]);
        }
        if (m - 1 <= j)
            hi = j;
        else if (m - 1 >= i)
            lo = i;
        else
            break;
    }
    qsort(c, (size_t)m, sizeof *c, cand_cmp);
}

/* Restores the min-heap order (worst candidate at the root) below position i of h[0..k). */
static void sift_down(cand *h, int32_t k, int32_t i)
{
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < k && before(&h[w], &h[l]))
            w = l;
        if (r < k && before(&h[w], &h[r]))
            w = r;
        if (w == i)
            return;
        swap(&h[i], &h[w]);
        i = w;
    }
}

/* Keeps the k first candidates, sorted, in c[0..k); the rest of c is overwritten. A min-heap of
 * k entries over one pass: most candidates cost one comparison with the heap's root. */
static void keep_top_k(cand *c, int32_t n, int32_t k)
{
    for (int32_t i = k / 2; i-- > 0;)
        sift_down(c, k, i);
    for (int32_t i = k; i < n; i++) {
        if (before(&c[i], &c[0])) {
            c[0] = c[i];
            sift_down(c, k, 0);
        }
    }
    qsort(c, (size_t)k, sizeof *c, cand_cmp);
}

static int32_t argmax(const cand *c, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (before(&c[i], &c[best]))
            best = i;
    return best;
}

/* sum of exp(logit - max) over c[0..n), with max = c[best].logit. */
static double softmax_sum(const cand *c, int32_t n, float max)
{
    double sum = 0;
    for (int32_t i = 0; i < n; i++)
        sum += expf(c[i].logit - max);
    return sum;
}

/* Keeps the smallest sorted prefix whose probability reaches p (at least one). */
static int32_t top_p(cand *c, int32_t n, bool *sorted, float p)
{
    float max = c[argmax(c, n)].logit;
    double total = softmax_sum(c, n, max);
    int32_t m = n < 64 ? n : 64;
    bool was_sorted = *sorted;
    for (;;) {
        if (!was_sorted)
            sort_top(c, n, m);
        double cum = 0;
        *sorted = true; /* c[0..m) is sorted now, so is every prefix of it */
        for (int32_t i = 0; i < m; i++) {
            cum += expf(c[i].logit - max) / total;
            if (cum >= p)
                return i + 1;
        }
        if (m == n)
            return n;
        m = m > n / 4 ? n : m * 4;
    }
}

/* Keeps candidates whose probability is at least p times the largest one. */
static int32_t min_p(cand *c, int32_t n, bool sorted, float p)
{
    float threshold = c[sorted ? 0 : argmax(c, n)].logit + logf(p);
    int32_t kept = 0;
    for (int32_t i = 0; i < n; i++) {
        if (c[i].logit >= threshold)
            c[kept++] = c[i];
        else if (sorted)
            break;
    }
    return kept > 0 ? kept : 1;
}

/* Draws c[i].id with probability weight / sum, c[i].logit holding the weights. */
static int32_t draw_weights(sampler *s, const cand *c, int32_t n)
{
    double sum = 0;
    for (int32_t i = 0; i < n; i++)
        sum += c[i].logit;
    double u = rng_uniform(&s->rng) * sum;
    double cum = 0;
    for (int32_t i = 0; i < n; i++) {
        cum += c[i].logit;
        if (u < cum)
            return c[i].id;
    }
    return c[n - 1].id;
}

/* Draws from softmax(c[i].logit); c[i].logit is replaced by its unnormalised weight. */
static int32_t draw(sampler *s, cand *c, int32_t n)
{
    float max = c[argmax(c, n)].logit;
    for (int32_t i = 0; i < n; i++)
        c[i].logit = expf(c[i].logit - max);
    return draw_weights(s, c, n);
}

/* Greedy without penalties: the argmax of the caller's logits, no copy. */
static loco_status greedy_plain(const sampler *s, const float *logits, int32_t *out_token,
                                loco_err *err)
{
    int32_t best = 0;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        if (isnan(logits[i]))
            return loco_err_set(err, LOCO_ERR_INVALID, "sampler: logit %" PRId32 " is NaN", i);
        if (logits[i] > logits[best])
            best = i;
    }
    if (isinf(logits[best]) && logits[best] < 0)
        return loco_err_set(err, LOCO_ERR_INVALID, "sampler: every logit is -inf");
    *out_token = best;
    return LOCO_OK;
}

/* c[0..n_vocab) = the penalised logits; LOCO_ERR_INVALID on a NaN. */
static loco_status load(sampler *s, const float *logits, loco_err *err)
{
    cand *c = s->cand;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        if (isnan(logits[i]))
            return loco_err_set(err, LOCO_ERR_INVALID, "sampler: logit %" PRId32 " is NaN", i);
        c[i].logit = logits[i];
        c[i].id = i;
    }
    penalize_strided(s, (char *)&c[0].logit, sizeof *c);
    return LOCO_OK;
}

/* top-k, top-p, min-p and temperature over c[0..n); returns how many candidates stay. */
static int32_t chain(sampler *s, cand *c, int32_t n)
{
    bool sorted = false;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        keep_top_k(c, n, s->p.top_k);
        n = s->p.top_k;
        sorted = true;
    }
    if (s->p.top_p < 1.0f)
        n = top_p(c, n, &sorted, s->p.top_p);
    if (s->p.min_p > 0.0f)
        n = min_p(c, n, sorted, s->p.min_p);
    for (int32_t i = 0; i < n; i++)
        c[i].logit /= s->p.temperature;
    return n;
}

static inline bool mask_has(const uint64_t *m, int32_t id)
{
    return m[id >> 6] >> (id & 63) & 1;
}

/* Keeps the candidates of c[0..n) that the whole mask allows; returns how many. */
static int32_t keep_masked(const uint64_t *m, cand *c, int32_t n)
{
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        if (mask_has(m, c[i].id))
            c[k++] = c[i];
    }
    return k;
}

/* Keeps the candidates of c[0..n) the constraint allows, asking token by token when they are
 * few, else through the whole mask; returns how many. */
static int32_t keep_allowed(sampler *s, cand *c, int32_t n)
{
    if (n > SAMPLER_FILTER_MAX)
        return keep_masked(constrain_mask(s->con, NULL), c, n);
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        if (constrain_allows(s->con, c[i].id))
            c[k++] = c[i];
    }
    return k;
}

/* The best allowed token: the argmax, else the best of the first candidates in order, else
 * the best of the whole mask. */
static loco_status greedy_constrained(sampler *s, const float *logits, int32_t *out_token,
                                      loco_err *err)
{
    cand *c = s->cand;
    int32_t n = s->n_vocab;
    loco_status rc;
    if (!penalties_on(&s->p)) { /* the argmax of the caller's logits, no copy */
        int32_t t = 0;
        rc = greedy_plain(s, logits, &t, err);
        if (rc || constrain_allows(s->con, t)) {
            *out_token = t;
            return rc;
        }
    }
    rc = load(s, logits, err);
    if (rc)
        return rc;
    int32_t best = argmax(c, n);
    if (constrain_allows(s->con, c[best].id)) {
        *out_token = c[best].id;
        return LOCO_OK;
    }
    int32_t probe = n < SAMPLER_GREEDY_PROBE ? n : SAMPLER_GREEDY_PROBE;
    keep_top_k(c, n, probe);
    for (int32_t i = 0; i < probe; i++) {
        if (constrain_allows(s->con, c[i].id)) {
            *out_token = c[i].id;
            return LOCO_OK;
        }
    }
    rc = load(s, logits, err);
    n = rc ? 0 : keep_masked(constrain_mask(s->con, NULL), c, n);
    if (rc)
        return rc;
    if (!n)
        return loco_err_set(err, LOCO_ERR_INVALID, "sampler: the constraint allows no token");
    *out_token = c[argmax(c, n)].id;
    return LOCO_OK;
}

/* Sampling under a constraint: the chain's draw when it is allowed; else a draw among the
 * allowed candidates the chain kept (same weights); else the chain over the allowed tokens. */
static loco_status sample_constrained(sampler *s, const float *logits, int32_t *out_token,
                                      loco_err *err)
{
    if (s->p.temperature <= 0)
        return greedy_constrained(s, logits, out_token, err);
    cand *c = s->cand;
    loco_status rc = load(s, logits, err);
    if (rc)
        return rc;
    int32_t best = argmax(c, s->n_vocab);
    if (isinf(c[best].logit))
        return greedy_constrained(s, logits, out_token, err);
    int32_t n = chain(s, c, s->n_vocab);
    int32_t t = draw(s, c, n);
    if (constrain_allows(s->con, t)) {
        *out_token = t;
        return LOCO_OK;
    }
    n = keep_allowed(s, c, n);
    if (n) {
        *out_token = draw_weights(s, c, n);
        return LOCO_OK;
    }
    rc = load(s, logits, err);
    if (rc)
        return rc;
    n = keep_masked(constrain_mask(s->con, NULL), c, s->n_vocab);
    if (!n)
        return loco_err_set(err, LOCO_ERR_INVALID, "sampler: the constraint allows no token");
    best = argmax(c, n);
    if (isinf(c[best].logit)) { /* only -inf left: the best allowed by id order */
        *out_token = c[best].id;
        return LOCO_OK;
    }
    n = chain(s, c, n);
    *out_token = draw(s, c, n);
    return LOCO_OK;
}

loco_status sampler_sample(sampler *s, const float *logits, int32_t *out_token, loco_err *err)
{
    cand *c = s->cand;
    int32_t n = s->n_vocab;
    if (s->con)
        return sample_constrained(s, logits, out_token, err);
    if (s->p.temperature <= 0 && !penalties_on(&s->p))
        return greedy_plain(s, logits, out_token, err);
    loco_status rc = load(s, logits, err);
    if (rc)
        return rc;
    int32_t best = argmax(c, n);
    if (isinf(c[best].logit) && c[best].logit < 0)
        return loco_err_set(err, LOCO_ERR_INVALID, "sampler: every logit is -inf");
    if (s->p.temperature <= 0 || isinf(c[best].logit)) {
        *out_token = c[best].id;
        return LOCO_OK;
    }
    n = chain(s, c, n);
    *out_token = draw(s, c, n);
    return LOCO_OK;
}
