/* synth.c: random-weight Qwen3 GGUF files. Weights are drawn from a seeded generator so the
 * same parameters give the same bytes; their scale keeps activations near unit size and the
 * logits well separated, so greedy decoding is decided by clear margins (what comparisons
 * against llama.cpp need). */
#include "base/common.h"

#include <math.h>

#include "engine/gguf.h"
#include "engine/quant.h"
#include "engine/synth.h"
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
} synth_job;

static loco_status fill(void *ctx, gguf_writer *w, size_t index, loco_err *err)
{
    synth_job *j = ctx;
    const synth_tensor *t = &j->ts[index];
    size_t row_bytes = ggml_type_row_size(t->type, (uint64_t)t->ne0);
    float *row = malloc((size_t)t->ne0 * sizeof(float));
    void *enc = malloc(row_bytes);
    loco_status rc = row && enc ? LOCO_OK : LOCO_ERR_NOMEM;
    uint64_t s = t->seed;
    for (int64_t r = 0; r < t->ne1 && !rc; r++) {
        float scale = t->scale;
        for (size_t k = 0; t->boosted && k < j->p->n_boost; k++) {
            if (j->p->boost_ids[k] == r)
                scale *= j->p->boost;
        }
        for (int64_t i = 0; i < t->ne0; i++)
            row[i] = t->center + scale * next_unit(&s);
        rc = quant_quantize_row(t->type, row, enc, t->ne0);
        if (!rc)
            rc = gguf_writer_put(w, enc, row_bytes, err);
    }
    free(row);
    free(enc);
    if (rc == LOCO_ERR_NOMEM)
        return loco_err_set(err, rc, "out of memory writing %s", t->name);
    j->done++;
    if (j->p->progress)
        j->p->progress(j->p->progress_ctx, j->done, j->total);
    return rc;
}

/* llama.cpp's "use more bits" layers of the Q4_K_M recipe */
static bool more_bits(uint32_t i, uint32_t n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
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
    ggml_type base = p->mix_q4_k_m ? GGML_TYPE_Q4_K : p->type;
    ggml_type emb = p->mix_q4_k_m ? GGML_TYPE_Q6_K : p->type;
    /* uniform [-a, a] has std a/sqrt(3): a = sqrt(3/fan_in) keeps unit variance */
    float a_e = sqrtf(3.0f / (float)E), a_q = sqrtf(3.0f / (float)qd), a_f = sqrtf(3.0f / (float)F);
    loco_status rc = add(j, "token_embd.weight", emb, E, n_vocab, 1.7f, 0.0f, err);
    if (!rc)
        rc = add(j, "output_norm.weight", GGML_TYPE_F32, E, 1, 0.1f, 1.0f, err);
    if (!rc && !p->tied)
        rc = add(j, "output.weight", emb, E, n_vocab, a_e * 3.0f, 0.0f, err);
    for (uint32_t l = 0; l < p->n_layer && !rc; l++) {
        char n[64];
        ggml_type heavy = p->mix_q4_k_m && more_bits(l, p->n_layer) ? GGML_TYPE_Q6_K : base;
        struct {
            const char *s;
            ggml_type t;
            int64_t ne0, ne1;
            float a, c;
        } L[] = {
            {"attn_norm", GGML_TYPE_F32, E, 1, 0.1f, 1.0f},
            {"attn_q", base, E, qd, a_e, 0.0f},
            {"attn_k", base, E, kvd, a_e, 0.0f},
            {"attn_v", heavy, E, kvd, a_e, 0.0f},
            {"attn_output", base, qd, E, a_q, 0.0f},
            {"attn_q_norm", GGML_TYPE_F32, p->head_dim, 1, 0.1f, 1.0f},
            {"attn_k_norm", GGML_TYPE_F32, p->head_dim, 1, 0.1f, 1.0f},
            {"ffn_norm", GGML_TYPE_F32, E, 1, 0.1f, 1.0f},
            {"ffn_gate", base, E, F, a_e, 0.0f},
            {"ffn_up", base, E, F, a_e, 0.0f},
            {"ffn_down", heavy, F, E, a_f, 0.0f},
        };
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
    if (!p->mix_q4_k_m && !quant_type_supported(p->type))
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
    uint32_t file_type = p->mix_q4_k_m ? 15 : 0;
    static const struct {
        ggml_type t;
        uint32_t ft;
    } ftypes[] = {{GGML_TYPE_F32, 0},  {GGML_TYPE_F16, 1},  {GGML_TYPE_Q4_0, 2},
                  {GGML_TYPE_Q4_1, 3}, {GGML_TYPE_Q8_0, 7}, {GGML_TYPE_Q5_0, 8},
                  {GGML_TYPE_Q5_1, 9}, {GGML_TYPE_Q4_K, 14}, {GGML_TYPE_Q5_K, 16},
                  {GGML_TYPE_Q6_K, 18}, {GGML_TYPE_BF16, 32}};
    for (size_t i = 0; !p->mix_q4_k_m && i < LOCO_ARRAY_LEN(ftypes); i++)
        if (ftypes[i].t == p->type)
            file_type = ftypes[i].ft;
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
    for (size_t i = 0; i < j.n && !rc; i++) {
        int64_t ne[2] = {j.ts[i].ne0, j.ts[i].ne1};
        rc = gguf_writer_add_tensor_fn(w, j.ts[i].name, j.ts[i].type, j.ts[i].ne1 > 1 ? 2 : 1,
                                       ne, fill, &j, err);
    }
    if (!rc)
        rc = gguf_writer_write(w, path, err);
    gguf_writer_free(w);
    free(j.ts);
    return rc;
}
