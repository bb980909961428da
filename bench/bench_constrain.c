/* bench_constrain.c: what constrained tool calls (engine/constrain.h) cost per generated token
 * on the real Qwen3 vocabulary (151,936 ids), next to a decode step of a model.
 *
 *   bench_constrain TOKENIZER.json [MODEL.gguf [THREADS]]
 *
 * 1. table build (once per tokenizer) and constrain_new (once per answer);
 * 2. a LocoOperator-like answer (text, then a Read call, then text) replayed token by token with
 *    model-like logits (the true next token well ahead of noise): sampler_sample + accept per
 *    token at the engine's defaults (temperature 0.7, top-k 20, top-p 0.8) and greedy, with and
 *    without the constraint; the difference is the constraint's cost per token;
 * 3. the worst case: a whole mask (constrain_mask) in each kind of state, which the sampler
 *    needs only when none of the candidates the chain keeps is allowed;
 * 4. with MODEL.gguf, the mean time of a decode step (one token after a 64-token prompt), so
 *    the costs above can be read as a share of generation time.
 * Single-threaded except the decode steps. Times are medians of repeated runs. */
#include "base/common.h"

#include <math.h>

#include "base/buf.h"
#include "base/file.h"
#include "engine/constrain.h"
#include "engine/gguf.h"
#include "engine/qwen3.h"
#include "engine/sampler.h"
#include "engine/threadpool.h"
#include "engine/tokenizer.h"

#define N_VOCAB 151936
#define REPS 7

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), dbl_cmp);
    return v[n / 2];
}

static uint64_t rng = 88172645463325252ull;
static double worst_mask_s;    /* the slowest whole mask measured */
static double alone;           /* allows + accept per token */
static double token_cost_s[2]; /* constrained minus free, per token: sampled, greedy */

static double unit(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1.0p-53;
}

static const constrain_tool tools[] = {
    {"Read", "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"},"
             "\"offset\":{\"type\":\"integer\"},\"limit\":{\"type\":\"integer\"}},"
             "\"required\":[\"file_path\"]}"},
    {"Grep", "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\"},"
             "\"path\":{\"type\":\"string\"},\"output_mode\":{\"type\":\"string\",\"enum\":"
             "[\"content\",\"files_with_matches\",\"count\"]},\"-i\":{\"type\":\"boolean\"}},"
             "\"required\":[\"pattern\"]}"},
    {"Glob", "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\"},"
             "\"path\":{\"type\":\"string\"}},\"required\":[\"pattern\"]}"},
    {"Bash", "{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\"},"
             "\"description\":{\"type\":\"string\"},\"timeout\":{\"type\":\"number\"}},"
             "\"required\":[\"command\"]}"},
    {"Task", "{\"type\":\"object\",\"properties\":{\"description\":{\"type\":\"string\"},"
             "\"prompt\":{\"type\":\"string\"},\"subagent_type\":{\"type\":\"string\"}},"
             "\"required\":[\"description\",\"prompt\",\"subagent_type\"]}"},
};

static const char answer[] =
    "I'll start by reading the README to understand the project layout.\n<tool_call>\n"
    "{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/repo/src/config/loader.py\", "
    "\"offset\": 120, \"limit\": 80}}\n</tool_call>\nThen I will search for the parser.\n"
    "<tool_call>\n{\"name\": \"Grep\", \"arguments\": {\"pattern\": \"def parse_(args|config)\","
    " \"path\": \"/repo/src\", \"output_mode\": \"content\", \"-i\": true}}\n</tool_call>";

static constrain *mk(const tok *t, const constrain_vocab *v)
{
    constrain_opts o;
    memset(&o, 0, sizeof(o));
    o.vocab = v;
    o.max_tokens = 4096;
    constrain *c = NULL;
    loco_err err;
    if (constrain_new(t, tools, LOCO_ARRAY_LEN(tools), &o, &c, &err)) {
        fprintf(stderr, "constrain_new: %s\n", err.msg);
        exit(1);
    }
    return c;
}

/* Replays ids with logits peaking at each true next token; returns seconds per token. */
static double replay(const tok *t, const constrain_vocab *v, const tok_ids *ids, float **logits,
                     float temp, bool constrained)
{
    double times[REPS];
    for (int r = 0; r < REPS; r++) {
        sampler_params p;
        sampler_params_default(&p);
        p.temperature = temp;
        p.top_k = 20;
        p.top_p = 0.8f;
        p.min_p = 0;
        p.seed = 1;
        loco_err err;
        sampler *s = sampler_new(N_VOCAB, &p, &err);
        constrain *c = constrained ? mk(t, v) : NULL;
        sampler_set_constraint(s, c);
        double t0 = now_s();
        for (size_t i = 0; i < ids->len; i++) {
            int32_t id;
            if (sampler_sample(s, logits[i], &id, &err)) {
                fprintf(stderr, "sample: %s\n", err.msg);
                exit(1);
            }
            /* follow the answer (the draw is what costs; the text must stay the answer's) */
            if (sampler_accept(s, ids->ids[i]) && constrained) {
                fprintf(stderr, "the answer's token %zu is not allowed\n", i);
                exit(1);
            }
        }
        times[r] = (now_s() - t0) / (double)ids->len;
        sampler_free(s);
        constrain_free(c);
    }
    return median(times, REPS);
}

/* The constraint's own work on the typical path: one allows() (the drawn token) and one
 * accept() per token; seconds per token. */
static double calls_alone(const tok *t, const constrain_vocab *v, const tok_ids *ids)
{
    double times[REPS];
    for (int r = 0; r < REPS; r++) {
        constrain *c = mk(t, v);
        double t0 = now_s();
        for (size_t i = 0; i < ids->len; i++) {
            if (!constrain_allows(c, ids->ids[i]) || constrain_accept(c, ids->ids[i])) {
                fprintf(stderr, "the answer's token %zu is not allowed\n", i);
                exit(1);
            }
        }
        times[r] = (now_s() - t0) / (double)ids->len;
        constrain_free(c);
    }
    return median(times, REPS);
}

static void mask_case(const tok *t, const constrain_vocab *v, const char *label, const char *pre)
{
    constrain *c = mk(t, v);
    if (constrain_accept_bytes(c, pre, strlen(pre)) != strlen(pre)) {
        fprintf(stderr, "prefix refused: %s\n", pre);
        exit(1);
    }
    double times[REPS];
    size_t n = 0;
    for (int r = 0; r < REPS; r++) {
        double t0 = now_s();
        constrain_mask(c, &n);
        times[r] = now_s() - t0;
    }
    double m = median(times, REPS);
    if (m > worst_mask_s)
        worst_mask_s = m;
    printf("| %s | %zu | %.3f |\n", label, n, m * 1e3);
    constrain_free(c);
}

static double decode_step(const char *path, int threads)
{
    loco_err err;
    gguf *g = NULL;
    qwen3_model *m = NULL;
    qwen3_ctx *ctx = NULL;
    tpool *pool = tpool_new(threads > 0 ? threads : tpool_default_threads(), &err);
    if (!pool || gguf_open(path, &g, &err) || qwen3_load(g, &m, &err) ||
        qwen3_ctx_new(m, 512, 64, pool, &ctx, &err)) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        exit(1);
    }
    float *logits = malloc((size_t)m->hp.n_vocab * sizeof(float));
    int32_t prompt[64];
    for (int i = 0; i < 64; i++)
        prompt[i] = 1000 + i;
    if (qwen3_eval(ctx, prompt, 64, logits, &err)) {
        fprintf(stderr, "eval: %s\n", err.msg);
        exit(1);
    }
    double times[16];
    for (int i = 0; i < 16; i++) {
        int32_t id = 2000 + i;
        double t0 = now_s();
        qwen3_eval(ctx, &id, 1, logits, &err);
        times[i] = now_s() - t0;
    }
    double step = median(times, 16);
    printf("\ndecode step of %s (%d threads): %.2f ms (median of 16)\n", path,
           threads > 0 ? threads : tpool_default_threads(), step * 1e3);
    free(logits);
    qwen3_ctx_free(ctx);
    qwen3_free(m);
    gguf_close(g);
    tpool_free(pool);
    return step;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_constrain TOKENIZER.json [MODEL.gguf [THREADS]]\n");
        return 2;
    }
    buf text;
    buf_init(&text, (size_t)64 << 20);
    loco_err err;
    tok_vocab tv;
    tok *t = NULL;
    if (file_read_all(argv[1], &text, &err) ||
        tok_vocab_from_hf_json(buf_str(&text), text.len, &tv, &err)) {
        fprintf(stderr, "%s: %s\n", argv[1], err.msg);
        return 1;
    }
    tok_config cfg;
    tok_vocab_config(&tv, &cfg);
    if (tok_new(&cfg, &t, &err)) {
        fprintf(stderr, "tokenizer: %s\n", err.msg);
        return 1;
    }
    tok_vocab_release(&tv);
    buf_release(&text);

    double t0 = now_s();
    constrain_vocab *v = NULL;
    if (constrain_vocab_new(t, N_VOCAB, &v, &err)) {
        fprintf(stderr, "vocab: %s\n", err.msg);
        return 1;
    }
    double t_vocab = now_s() - t0;
    double tn[REPS];
    for (int r = 0; r < REPS; r++) {
        t0 = now_s();
        constrain *c = mk(t, v);
        tn[r] = now_s() - t0;
        constrain_free(c);
    }
    printf("token tables: %.1f ms (once per tokenizer); constrain_new with %zu tools: %.3f ms "
           "(once per answer)\n\n",
           t_vocab * 1e3, LOCO_ARRAY_LEN(tools), median(tn, REPS) * 1e3);

    tok_ids ids;
    tok_ids_init(&ids, 1u << 16);
    if (tok_encode(t, answer, strlen(answer), TOK_PARSE_SPECIAL, &ids, &err)) {
        fprintf(stderr, "encode: %s\n", err.msg);
        return 1;
    }
    float **logits = malloc(ids.len * sizeof(*logits));
    for (size_t i = 0; i < ids.len; i++) {
        logits[i] = malloc(N_VOCAB * sizeof(float));
        for (int j = 0; j < N_VOCAB; j++) /* roughly normal noise: a sum of uniforms */
            logits[i][j] = (float)(unit() + unit() + unit() - 1.5) * 2.0f;
        logits[i][ids.ids[i]] += 12.0f;
    }
    printf("answer replayed: %zu tokens (%zu bytes; text and two calls)\n\n", ids.len,
           strlen(answer));
    printf(
        "| sampling | free (us/token) | constrained (us/token) | constraint cost (us/token) |\n");
    printf("|:--|--:|--:|--:|\n");
    float temps[] = {0.7f, 0.0f};
    for (size_t k = 0; k < LOCO_ARRAY_LEN(temps); k++) {
        double f = replay(t, v, &ids, logits, temps[k], false);
        double c = replay(t, v, &ids, logits, temps[k], true);
        printf("| %s | %.1f | %.1f | %.1f |\n",
               temps[k] > 0 ? "T 0.7, top-k 20, top-p 0.8" : "greedy", f * 1e6, c * 1e6,
               (c - f) * 1e6);
        token_cost_s[k] = c - f;
    }

    alone = calls_alone(t, v, &ids);
    printf("\nthe constraint's own calls on that path (allows + accept): %.2f us/token\n",
           alone * 1e6);
    printf("\nwhole mask (the fallback when no kept candidate is allowed):\n\n");
    printf("| state | allowed tokens | ms |\n|:--|--:|--:|\n");
    mask_case(t, v, "text (nothing open)", "I'll read it");
    mask_case(t, v, "text after '<'", "I'll read it <");
    mask_case(t, v, "after <tool_call>", "<tool_call>");
    mask_case(t, v, "tool name", "<tool_call>\n{\"name\": \"");
    mask_case(t, v, "after a value (, or })",
              "<tool_call>\n{\"name\": \"Read\", \"arguments\": "
              "{\"file_path\": \"a\"");
    mask_case(t, v, "key of a typed object",
              "<tool_call>\n{\"name\": \"Grep\", \"arguments\": "
              "{\"pattern\": \"x\", \"");
    mask_case(t, v, "inside a string",
              "<tool_call>\n{\"name\": \"Bash\", \"arguments\": "
              "{\"command\": \"ls -la ");
    mask_case(t, v, "inside a string, after '\\'",
              "<tool_call>\n{\"name\": \"Bash\", "
              "\"arguments\": {\"command\": \"echo \\");
    mask_case(t, v, "integer",
              "<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": "
              "\"a\", \"offset\": 12");
    mask_case(t, v, "enum",
              "<tool_call>\n{\"name\": \"Grep\", \"arguments\": {\"pattern\": "
              "\"x\", \"output_mode\": \"");

    if (argc > 2) {
        double step = decode_step(argv[2], argc > 3 ? (int)strtol(argv[3], NULL, 10) : 0);
        printf("as a share of a decode step: the constraint's calls %.3f%% per token (sampler "
               "with vs without: %.2f%% sampled, %.2f%% greedy, noise included); the slowest "
               "whole mask %.2f%%\n",
               100 * alone / step, 100 * token_cost_s[0] / step, 100 * token_cost_s[1] / step,
               100 * worst_mask_s / step);
    }

    for (size_t i = 0; i < ids.len; i++)
        free(logits[i]);
    free(logits);
    tok_ids_release(&ids);
    constrain_vocab_free(v);
    tok_free(t);
    return 0;
}
