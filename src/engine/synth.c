/* synth.c: random-weight Qwen3 GGUF files. Weights are drawn from a seeded generator so the
 * same parameters give the same bytes; their scale keeps activations near unit size and the
 * logits well separated, so greedy decoding is decided by clear margins (what comparisons
 * against llama.cpp need). */
#include "base/common.h"

#include <math.h>

#include "engine/ftype.h"
#include "engine/gguf.h"
#include "engine/quant.h"
#include "engine/synth.h"
#include "engine/threadpool.h"
#include "engine/tokenizer.h"

void synth_params_default(synth_params *p)
{
    memset(p, 0, sizeof(*p));
    p->n_layer = 2;
    p->n_embd = 256;
    p->n_head = 4;
    p->n_head_kv = 2;
    p->head_dim = 64;
    p->n_ff = 512;
    p->n_ctx_train = 40960;
    p->rope_base = 5000000.0f;
    p->rms_eps = 1e-6f;
    p->type = GGML_TYPE_F32;
    p->tied = true;
    p->seed = 42;
}

/* splitmix64: a tiny deterministic generator with no global state */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static float next_unit(uint64_t *s)
{
    return (float)((double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

typedef struct {
    char name[64];
    ggml_type type;
    int64_t ne0, ne1;
    float scale;      /* uniform half-width of the values */
    float center;     /* added to every value (norm weights sit near 1) */
    uint64_t seed;
    bool boosted;     /* output.weight: rows of p->boost_ids scaled by p->boost */
} synth_tensor;

typedef struct {
    const synth_params *p;
    synth_tensor *ts;
    size_t n;
    uint64_t done;
    uint64_t total;
    tpool *pool; /* NULL: quantize on the calling thread */
} synth_job;

/* Rows drawn, then quantized by the pool, per step of fill (the draws stay sequential, so
 * the bytes do not depend on the thread count). */
#define SYNTH_CHUNK_ROWS 512

typedef struct {
    ggml_type type;
    int64_t ne0, n_rows, rows_per_task;
    size_t row_bytes;
    const float *rows;
    uint8_t *enc;
    loco_status rc[SYNTH_CHUNK_ROWS];
} quant_chunk;

static void quant_task(void *ctx, int32_t task, int32_t thread)
{
    LOCO_UNUSED(thread);
    quant_chunk *q = ctx;
    const int64_t r0 = (int64_t)task * q->rows_per_task;
    const int64_t r1 = r0 + q->rows_per_task < q->n_rows ? r0 + q->rows_per_task : q->n_rows;
    for (int64_t r = r0; r < r1; r++)
        q->rc[r] = quant_quantize_row(q->type, q->rows + r * q->ne0, q->enc + r * q->row_bytes,
                                      q->ne0);
}

static loco_status fill(void *ctx, gguf_writer *w, size_t index, loco_err *err)
{
    synth_job *j = ctx;
    const synth_tensor *t = &j->ts[index];
    quant_chunk *q = calloc(1, sizeof(*q));
    const int64_t chunk = t->ne1 < SYNTH_CHUNK_ROWS ? t->ne1 : SYNTH_CHUNK_ROWS;
    if (q) {
        q->type = t->type;
        q->ne0 = t->ne0;
        q->row_bytes = ggml_type_row_size(t->type, (uint64_t)t->ne0);
        q->rows = malloc((size_t)(chunk * t->ne0) * sizeof(float));
        q->enc = malloc((size_t)chunk * q->row_bytes);
    }
    loco_status rc = q && q->rows && q->enc ? LOCO_OK : LOCO_ERR_NOMEM;
    uint64_t s = t->seed;
    for (int64_t r0 = 0; r0 < t->ne1 && !rc; r0 += chunk) {
        q->n_rows = t->ne1 - r0 < chunk ? t->ne1 - r0 : chunk;
        float *rows = (float *)q->rows;
        for (int64_t i = 0; i < q->n_rows; i++) {
            float scale = t->scale;
            for (size_t k = 0; t->boosted && k < j->p->n_boost; k++) {
                if (j->p->boost_ids[k] == r0 + i)
                    scale *= j->p->boost;
            }
            for (int64_t v = 0; v < t->ne0; v++)
                rows[i * t->ne0 + v] = t->center + scale * next_unit(&s);
        }
        int32_t tasks = j->pool ? tpool_threads(j->pool) * 4 : 1;
        if (tasks > q->n_rows)
            tasks = (int32_t)q->n_rows;
        q->rows_per_task = (q->n_rows + tasks - 1) / tasks;
        tasks = (int32_t)((q->n_rows + q->rows_per_task - 1) / q->rows_per_task);
        if (j->pool && tasks > 1)
            rc = tpool_run(j->pool, tasks, quant_task, q);
        else
            for (int32_t k = 0; k < tasks; k++)
                quant_task(q, k, 0);
        for (int64_t i = 0; i < q->n_rows && !rc; i++)
            rc = q->rc[i];
        if (!rc)
            rc = gguf_writer_put(w, q->enc, (size_t)q->n_rows * q->row_bytes, err);
    }
    if (q) {
        free((void *)q->rows);
        free(q->enc);
    }
    free(q);
    if (rc == LOCO_ERR_NOMEM)
        return loco_err_set(err, rc, "out of memory writing %s", t->name);
    j->done++;
    if (j->p->progress)
        j->p->progress(j->p->progress_ctx, j->done, j->total);
    return rc;
}

static loco_status add(synth_job *j, const char *name, ggml_type type, int64_t ne0, int64_t ne1,
                       float scale, float center, loco_err *err)
{
    if (ggml_type_row_size(type, (uint64_t)ne0) == 0)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "tensor %s: a row of %" PRId64 " values is not a whole number of %s "
                            "blocks (%zu values); pick dimensions that are multiples of it",
                            name, ne0, ggml_type_name(type), ggml_type_block_size(type));
    synth_tensor *t = &j->ts[j->n];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->type = type;
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->scale = scale;
    t->center = center;
    t->seed = j->p->seed * 1000003ull + j->n * 7919ull + 1;
    t->boosted = !strcmp(name, "output.weight") && j->p->n_boost;
    j->n++;
    return LOCO_OK;
}

static loco_status plan(synth_job *j, uint32_t n_vocab, loco_err *err)
{
    const synth_params *p = j->p;
    int64_t E = p->n_embd, F = p->n_ff, qd = (int64_t)p->n_head * p->head_dim;
    int64_t kvd = (int64_t)p->n_head_kv * p->head_dim;
    const uint32_t gqa = p->n_head / p->n_head_kv, nl = p->n_layer;
#define MIX(role, layer) (p->mix ? ftype_mix_type(p->mix, role, layer, nl, gqa, p->tied) : p->type)
    /* uniform [-a, a] has std a/sqrt(3): a = sqrt(3/fan_in) keeps unit variance */
    float a_e = sqrtf(3.0f / (float)E), a_q = sqrtf(3.0f / (float)qd), a_f = sqrtf(3.0f / (float)F);
    loco_status rc = add(j, "token_embd.weight", MIX(FTYPE_TOKEN_EMBD, 0), E, n_vocab, 1.7f, 0.0f,
                         err);
    if (!rc)
        rc = add(j, "output_norm.weight", GGML_TYPE_F32, E, 1, 0.1f, 1.0f, err);
    if (!rc && !p->tied)
        rc = add(j, "output.weight", MIX(FTYPE_OUTPUT, 0), E, n_vocab, a_e * 3.0f, 0.0f, err);
    for (uint32_t l = 0; l < p->n_layer && !rc; l++) {
        char n[64];
        struct {
            const char *s;
            ggml_type t;
            int64_t ne0, ne1;
            float a, c;
        } L[] = {
            {"attn_norm", GGML_TYPE_F32, E, 1, 0.1f, 1.0f},
            {"attn_q", MIX(FTYPE_ATTN_Q, l), E, qd, a_e, 0.0f},
            {"attn_k", MIX(FTYPE_ATTN_K, l), E, kvd, a_e, 0.0f},
            {"attn_v", MIX(FTYPE_ATTN_V, l), E, kvd, a_e, 0.0f},
            {"attn_output", MIX(FTYPE_ATTN_OUTPUT, l), qd, E, a_q, 0.0f},
            {"attn_q_norm", GGML_TYPE_F32, p->head_dim, 1, 0.1f, 1.0f},
            {"attn_k_norm", GGML_TYPE_F32, p->head_dim, 1, 0.1f, 1.0f},
            {"ffn_norm", GGML_TYPE_F32, E, 1, 0.1f, 1.0f},
            {"ffn_gate", MIX(FTYPE_FFN_GATE, l), E, F, a_e, 0.0f},
            {"ffn_up", MIX(FTYPE_FFN_UP, l), E, F, a_e, 0.0f},
            {"ffn_down", MIX(FTYPE_FFN_DOWN, l), F, E, a_f, 0.0f},
        };
#undef MIX
        for (size_t i = 0; i < LOCO_ARRAY_LEN(L) && !rc; i++) {
            snprintf(n, sizeof(n), "blk.%u.%s.weight", l, L[i].s);
            rc = add(j, n, L[i].t, L[i].ne0, L[i].ne1, L[i].a, L[i].c, err);
        }
    }
    return rc;
}

static int32_t vocab_find(const tok_vocab *v, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < v->n_tokens; i++)
        if (v->token_lens[i] == n && !memcmp(v->tokens[i], s, n))
            return (int32_t)i;
    return -1;
}

static loco_status set_tokenizer(gguf_writer *w, const synth_params *p, uint32_t *out_vocab,
                                 loco_err *err)
{
    tok_vocab v;
    loco_status rc = tok_vocab_from_hf_json(p->tokenizer_json, p->tokenizer_json_len, &v, err);
    if (rc)
        return rc;
    uint32_t n = p->n_vocab ? p->n_vocab : 151936;
    if (n < v.n_tokens)
        n = (uint32_t)v.n_tokens;
    /* pad to the model's vocab as llama.cpp's converter does */
    char **toks = calloc(n, sizeof(char *));
    size_t *lens = calloc(n, sizeof(size_t));
    int32_t *types = calloc(n, sizeof(int32_t));
    char (*pads)[24] = calloc(n - v.n_tokens + 1, sizeof(*pads));
    if (!toks || !lens || !types || !pads) {
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (i < v.n_tokens) {
            toks[i] = v.tokens[i];
            lens[i] = v.token_lens[i];
            types[i] = v.types[i];
        } else {
            char *pad = pads[i - v.n_tokens];
            snprintf(pad, 24, "[PAD%u]", i);
            toks[i] = pad;
            lens[i] = strlen(pad);
            types[i] = TOK_TYPE_UNUSED;
        }
    }
    rc = gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4, err);
    if (!rc)
        rc = gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2", 5, err);
    if (!rc)
        rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks,
                                     lens, n, err);
    if (!rc)
        rc = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, n, err);
    if (!rc)
        rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.merges",
                                     (const char *const *)v.merges, NULL, v.n_merges, err);
    int32_t eos = vocab_find(&v, "<|im_end|>"), pad = vocab_find(&v, "<|endoftext|>");
    if (!rc && eos >= 0)
        rc = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos, err);
    if (!rc && pad >= 0) {
        rc = gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad, err);
        if (!rc)
            rc = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)pad, err);
    }
    if (!rc)
        rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false, err);
    if (!rc && p->chat_template)
        rc = gguf_writer_set_str(w, "tokenizer.chat_template", p->chat_template,
                                 strlen(p->chat_template), err);
    *out_vocab = n;
out:
    free(toks);
    free(lens);
    free(types);
    free(pads);
    tok_vocab_release(&v);
    return rc;
}

loco_status synth_write(const synth_params *p, const char *path, loco_err *err)
{
    if (!p->n_layer || !p->n_embd || !p->n_head || !p->n_head_kv || !p->head_dim || !p->n_ff ||
        p->n_head % p->n_head_kv || p->head_dim % 2)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "bad model shape: layers, sizes and heads must be positive, heads a "
                            "multiple of kv heads, head dim even");
    if (!p->mix && !quant_type_supported(p->type))
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED, "type %s is not supported (supported: %s)",
                            ggml_type_name(p->type), ggml_type_supported_list());
    gguf_writer *w = gguf_writer_new();
    synth_job j;
    memset(&j, 0, sizeof(j));
    j.p = p;
    j.ts = calloc(3 + 11 * (size_t)p->n_layer, sizeof(synth_tensor));
    if (!w || !j.ts) {
        gguf_writer_free(w);
        free(j.ts);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    uint32_t n_vocab = 0;
    const uint32_t file_type = p->mix ? p->mix->id : ftype_of_type(p->type);
    loco_status rc = gguf_writer_set_str(w, "general.architecture", "qwen3", 5, err);
    char name[96];
    snprintf(name, sizeof(name), "loco-synth-qwen3-%ul-%u", p->n_layer, p->n_embd);
    struct {
        const char *k;
        uint32_t v;
    } u32s[] = {
        {"general.file_type", file_type},
        {"qwen3.context_length", p->n_ctx_train},
        {"qwen3.embedding_length", p->n_embd},
        {"qwen3.block_count", p->n_layer},
        {"qwen3.feed_forward_length", p->n_ff},
        {"qwen3.attention.head_count", p->n_head},
        {"qwen3.attention.head_count_kv", p->n_head_kv},
        {"qwen3.attention.key_length", p->head_dim},
        {"qwen3.attention.value_length", p->head_dim},
    };
    if (!rc)
        rc = gguf_writer_set_str(w, "general.name", name, strlen(name), err);
    for (size_t i = 0; i < LOCO_ARRAY_LEN(u32s) && !rc; i++)
        rc = gguf_writer_set_u32(w, u32s[i].k, u32s[i].v, err);
    if (!rc)
        rc = gguf_writer_set_f32(w, "qwen3.rope.freq_base", p->rope_base, err);
    if (!rc)
        rc = gguf_writer_set_f32(w, "qwen3.attention.layer_norm_rms_epsilon", p->rms_eps, err);
    if (!rc)
        rc = set_tokenizer(w, p, &n_vocab, err);
    if (!rc)
        rc = plan(&j, n_vocab, err);
    j.total = j.n;
    if (!rc && p->n_threads != 1) {
        /* without a pool (none could be started) the rows are quantized on this thread */
        loco_err perr;
        j.pool = tpool_new(p->n_threads, &perr);
    }
    for (size_t i = 0; i < j.n && !rc; i++) {
        int64_t ne[2] = {j.ts[i].ne0, j.ts[i].ne1};
        rc = gguf_writer_add_tensor_fn(w, j.ts[i].name, j.ts[i].type, j.ts[i].ne1 > 1 ? 2 : 1,
                                       ne, fill, &j, err);
    }
    if (!rc)
        rc = gguf_writer_write(w, path, err);
    gguf_writer_free(w);
    tpool_free(j.pool);
    free(j.ts);
    return rc;
}
