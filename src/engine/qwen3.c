/* qwen3.c: Qwen3 forward pass (engine layer) over a batch that may mix several sequences (each
 * with its own KV in the shared block cache, kv.h). Two arithmetics: the parity path reproduces
 * llama.cpp's CPU graph bit for bit, so greedy output matches it token for token: each matmul
 * uses the kernel llama.cpp picks on this CPU (AMX buffer kernels, repacked Q4_0/Q4_K kernels,
 * tinyBLAS for batches, vec_dot for one row, with activations encoded as those kernels expect),
 * attention runs over llama.cpp's padded KV window with an F16 cache (queries and weights rounded
 * to F16), and softmax, SwiGLU, RMSNorm and RoPE follow ggml's code (see vecmath.h). The fast
 * path (the default) shares the rest and computes attention flash-style (attn.h) over an F16 or
 * Q8_0 cache, and its matrix products on weights repacked for integer dot-product instructions
 * (matmul.h, docs/internals/kernels.md). See docs/internals/qwen3.md. */
#include "base/common.h"

#include <math.h>
#include <sys/mman.h>

#include "engine/attn.h"
#include "engine/kv.h"
#include "engine/matmul.h"
#include "engine/qwen3.h"
#include "engine/quant.h"
#include "engine/vecmath.h"

struct qwen3_ctx {
    const qwen3_model *m;
    tpool *pool;
    uint32_t n_ctx;     /* positions per sequence */
    uint32_t n_batch;   /* rows (tokens of all sequences) per step */
    uint32_t n_seq;     /* sequences in one step, at most */
    bool parity;
    kv_cache *kv;
    kv_seq *seq;        /* the sequence of qwen3_eval & co., made on first use */
    attn_ctx *fa;       /* fast-path attention scratch */
    /* scratch, allocated once */
    float *x;           /* (n_batch, n_embd) residual stream */
    float *xn;          /* (n_batch, n_embd) normalised input */
    float *q;           /* (n_batch, q_dim) */
    float *k;           /* (n_batch, kv_dim) */
    float *v;           /* (n_batch, kv_dim) */
    float *attn;        /* (n_batch, q_dim) attention output */
    float *gate;        /* (n_batch, n_ff) */
    float *up;          /* (n_batch, n_ff) */
    float *proj;        /* (n_batch, n_embd) output of wo / down */
    float *rope;        /* (n_batch, head_dim) cos, sin of each row's angles (head_dim/2 each) */
    float *logits;      /* (n_seq, n_vocab) output rows before they are handed out */
    uint8_t *emb_row;   /* one token_embd row, read from the file (embed) */
    uint32_t *row_seg;  /* (n_batch) segment of each row */
    uint32_t *row_pos;  /* (n_batch) position of each row */
    /* parity attention, per worker (parity contexts only) */
    float *scores;      /* (threads, n_ctx) attention scores */
    uint16_t *qh;       /* (threads, head_dim) query rounded to fp16 */
    uint16_t *wh;       /* (threads, n_ctx) attention weights rounded to fp16 */
    float *vacc;        /* (threads, 64 * head_dim) lanes of the attention V sums */
    uint16_t *vg;       /* (threads, n_ctx, head_dim) V rows gathered from the blocks */
    size_t vg_bytes;
    const vm_profile *prof; /* which llama.cpp CPU build the numerics mirror */
    mm_ctx mm;              /* the matrix products: parity or fast path (matmul.h) */
    int32_t n_threads;
    /* the step being run */
    const qwen3_seg *segs;
    uint32_t n_segs;
    uint32_t n_rows;
    attn_seg *asegs;    /* (n_seq) */
};

/* ---------------------------------------------------------------- loading */

static loco_status get_weight(const gguf *g, const char *name, int64_t ne0, int64_t ne1,
                              bool matrix, qwen3_weight *w, loco_err *err)
{
    const gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t)
        return loco_err_set(err, LOCO_ERR_INVALID, "%s: tensor '%s' is missing", gguf_name(g),
                            name);
    int64_t t1 = t->n_dims >= 2 ? t->ne[1] : 1;
    if (t->ne[0] != ne0 || t1 != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "%s: tensor '%s' has shape [%" PRId64 ", %" PRId64
                            "], expected [%" PRId64 ", %" PRId64 "]",
                            gguf_name(g), name, t->ne[0], t1, ne0, ne1);
    if (matrix && !quant_type_supported(t->type))
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED,
                            "%s: tensor '%s' has type %s, which loco cannot compute with "
                            "(supported: %s)",
                            gguf_name(g), name, ggml_type_name(t->type),
                            ggml_type_supported_list());
    if (!matrix && t->type != GGML_TYPE_F32)
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED,
                            "%s: norm tensor '%s' has type %s; expected F32", gguf_name(g), name,
                            ggml_type_name(t->type));
    w->name = t->name;
    w->data = t->data;
    w->type = t->type;
    w->ne0 = ne0;
    w->ne1 = ne1;
    w->row_bytes = ggml_type_row_size(t->type, (uint64_t)ne0);
    return LOCO_OK;
}

static uint32_t key_u32(const gguf *g, const char *key, uint32_t def, bool *found)
{
    uint32_t v = def;
    int64_t i = gguf_find_key(g, key);
    *found = i >= 0 && gguf_get_u32(g, i, &v);
    return *found ? v : def;
}

static loco_status read_hparams(const gguf *g, qwen3_hparams *hp, loco_err *err)
{
    const char *arch = NULL;
    loco_status rc = gguf_require_str(g, "general.architecture", &arch, err);
    if (rc)
        return rc;
    if (strcmp(arch, "qwen3"))
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED,
                            "%s: architecture '%s' is not supported (loco runs qwen3)",
                            gguf_name(g), arch);
    struct {
        const char *key;
        uint32_t *out;
    } req[] = {
        {"qwen3.block_count", &hp->n_layer},
        {"qwen3.embedding_length", &hp->n_embd},
        {"qwen3.attention.head_count", &hp->n_head},
        {"qwen3.feed_forward_length", &hp->n_ff},
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(req); i++) {
        rc = gguf_require_u32(g, req[i].key, req[i].out, err);
        if (rc)
            return rc;
    }
    bool found;
    hp->n_head_kv = key_u32(g, "qwen3.attention.head_count_kv", hp->n_head, &found);
    hp->head_dim = key_u32(g, "qwen3.attention.key_length",
                           hp->n_head ? hp->n_embd / hp->n_head : 0, &found);
    uint32_t vlen = key_u32(g, "qwen3.attention.value_length", hp->head_dim, &found);
    hp->n_ctx_train = key_u32(g, "qwen3.context_length", 0, &found);
    hp->rope_base = 10000.0f;
    int64_t i = gguf_find_key(g, "qwen3.rope.freq_base");
    if (i >= 0)
        gguf_get_f32(g, i, &hp->rope_base);
    rc = gguf_require_f32(g, "qwen3.attention.layer_norm_rms_epsilon", &hp->rms_eps, err);
    if (rc)
        return rc;
    if (!hp->n_layer || hp->n_layer > 1024 || !hp->n_embd || hp->n_embd > 65536 ||
        !hp->n_head || hp->n_head > 1024 || !hp->n_head_kv || hp->n_head % hp->n_head_kv ||
        !hp->head_dim || hp->head_dim > 1024 || hp->head_dim % 2 || vlen != hp->head_dim ||
        !hp->n_ff || hp->n_ff > 1u << 20)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "%s: inconsistent hyperparameters (layers %u, embd %u, heads %u/%u, "
                            "head dim %u, value dim %u, ffn %u)",
                            gguf_name(g), hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv,
                            hp->head_dim, vlen, hp->n_ff);
    return LOCO_OK;
}

/* Copies the norm vectors (a few KB each, read for every token) out of the file into
 * m->norms and points the weights there, so that nothing read at run time keeps the file's
 * pages mapped (mm_weights_prepare drops the rest). */
static loco_status copy_norms(qwen3_model *m, loco_err *err)
{
    const uint32_t nl = m->hp.n_layer;
    qwen3_weight **ws = malloc(((size_t)nl * 4 + 1) * sizeof(*ws));
    if (!ws)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    size_t n = 0, floats = 0;
    ws[n++] = &m->output_norm;
    for (uint32_t l = 0; l < nl; l++) {
        qwen3_layer *L = &m->layers[l];
        ws[n++] = &L->attn_norm;
        ws[n++] = &L->q_norm;
        ws[n++] = &L->k_norm;
        ws[n++] = &L->ffn_norm;
    }
    for (size_t i = 0; i < n; i++)
        floats += (size_t)ws[i]->ne0;
    m->norms = malloc(floats * sizeof(float));
    if (!m->norms) {
        free(ws);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    float *p = m->norms;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, ws[i]->data, (size_t)ws[i]->ne0 * sizeof(float));
        ws[i]->data = p;
        p += ws[i]->ne0;
    }
    free(ws);
    return LOCO_OK;
}

loco_status qwen3_load(const gguf *g, qwen3_model **out, loco_err *err)
{
    qwen3_model *m = calloc(1, sizeof(*m));
    if (!m)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    m->file = g;
    m->mm = mm_weights_new();
    if (!m->mm) {
        free(m);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    qwen3_hparams *hp = &m->hp;
    loco_status rc = read_hparams(g, hp, err);
    if (rc)
        goto fail;
    const gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb) {
        rc = loco_err_set(err, LOCO_ERR_INVALID, "%s: tensor 'token_embd.weight' is missing",
                          gguf_name(g));
        goto fail;
    }
    if (emb->n_dims != 2 || emb->ne[1] <= 0 || emb->ne[1] > (1 << 24)) {
        rc = loco_err_set(err, LOCO_ERR_INVALID, "%s: token_embd.weight has a bad shape",
                          gguf_name(g));
        goto fail;
    }
    hp->n_vocab = (uint32_t)emb->ne[1];
    int64_t E = hp->n_embd, V = hp->n_vocab;
    int64_t qd = (int64_t)hp->n_head * hp->head_dim, kvd = (int64_t)hp->n_head_kv * hp->head_dim;
    rc = get_weight(g, "token_embd.weight", E, V, true, &m->tok_embd, err);
    if (!rc)
        rc = get_weight(g, "output_norm.weight", E, 1, false, &m->output_norm, err);
    if (rc)
        goto fail;
    if (gguf_find_tensor(g, "output.weight"))
        rc = get_weight(g, "output.weight", E, V, true, &m->output, err);
    else
        m->output = m->tok_embd; /* tied embeddings */
    if (rc)
        goto fail;
    m->layers = calloc(hp->n_layer, sizeof(qwen3_layer));
    if (!m->layers) {
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t l = 0; l < hp->n_layer && !rc; l++) {
        qwen3_layer *L = &m->layers[l];
        struct {
            const char *suffix;
            qwen3_weight *w;
            int64_t ne0, ne1;
            bool matrix;
        } ts[] = {
            {"attn_norm", &L->attn_norm, E, 1, false},
            {"attn_q", &L->wq, E, qd, true},
            {"attn_k", &L->wk, E, kvd, true},
            {"attn_v", &L->wv, E, kvd, true},
            {"attn_output", &L->wo, qd, E, true},
            {"attn_q_norm", &L->q_norm, hp->head_dim, 1, false},
            {"attn_k_norm", &L->k_norm, hp->head_dim, 1, false},
            {"ffn_norm", &L->ffn_norm, E, 1, false},
            {"ffn_gate", &L->gate, E, hp->n_ff, true},
            {"ffn_up", &L->up, E, hp->n_ff, true},
            {"ffn_down", &L->down, hp->n_ff, E, true},
        };
        for (size_t i = 0; i < LOCO_ARRAY_LEN(ts) && !rc; i++) {
            char name[96];
            snprintf(name, sizeof(name), "blk.%u.%s.weight", l, ts[i].suffix);
            rc = get_weight(g, name, ts[i].ne0, ts[i].ne1, ts[i].matrix, ts[i].w, err);
        }
    }
    if (rc)
        goto fail;
    rc = copy_norms(m, err);
    if (rc)
        goto fail;
    /* every matrix's row length must be a whole number of its blocks */
    *out = m;
    return LOCO_OK;
fail:
    qwen3_free(m);
    return rc;
}

void qwen3_free(qwen3_model *m)
{
    if (!m)
        return;
    mm_weights_free(m->mm);
    free(m->layers);
    free(m->norms);
    free(m);
}

/* ---------------------------------------------------------------- context */

static void *map_zeroed(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

loco_status qwen3_ctx_new_opts(const qwen3_model *m, const qwen3_ctx_opts *o, qwen3_ctx **out,
                               loco_err *err)
{
    const qwen3_hparams *hp = &m->hp;
    uint32_t n_ctx = o->n_ctx, n_batch = o->n_batch ? o->n_batch : 256;
    uint32_t n_seq = o->n_seq ? o->n_seq : 1;
    if (n_ctx == 0 || n_ctx > (1u << 24))
        return loco_err_set(err, LOCO_ERR_INVALID, "context size %u is out of range", n_ctx);
    if (n_seq > 4096)
        return loco_err_set(err, LOCO_ERR_INVALID, "%u sequences are too many", n_seq);
    if (o->kv_type != QWEN3_KV_F16 && o->kv_type != QWEN3_KV_Q8_0)
        return loco_err_set(err, LOCO_ERR_INVALID, "unknown KV cache type");
    if (o->parity && o->kv_type != QWEN3_KV_F16)
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED,
                            "the parity path needs an f16 KV cache, as llama.cpp's default");
    if (n_batch > n_ctx * n_seq)
        n_batch = n_ctx * n_seq;
    if (n_batch < n_seq)
        n_batch = n_seq;
    qwen3_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    c->m = m;
    c->pool = o->pool;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->n_seq = n_seq;
    c->parity = o->parity;
    c->n_threads = o->pool ? tpool_threads(o->pool) : 1;
    size_t E = hp->n_embd, F = hp->n_ff, d = hp->head_dim;
    size_t qd = (size_t)hp->n_head * d, kvd = (size_t)hp->n_head_kv * d;
    size_t widest = E > qd ? E : qd;
    if (F > widest)
        widest = F;

    kv_params kp;
    memset(&kp, 0, sizeof(kp));
    kp.n_layer = hp->n_layer;
    kp.n_head_kv = hp->n_head_kv;
    kp.head_dim = hp->head_dim;
    kp.type = o->kv_type == QWEN3_KV_Q8_0 ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
    kp.cache_bytes = o->cache_bytes;
    uint64_t block_raw = (uint64_t)hp->n_layer * 2 * hp->n_head_kv * KV_BLOCK *
                         ggml_type_row_size(kp.type, hp->head_dim);
    uint64_t per_seq = (n_ctx + KV_BLOCK - 1) / KV_BLOCK;
    /* every sequence full, one copy-on-write block each, and the prefix cache (which never
     * needs more than a few contexts' worth of blocks, whatever its byte cap) */
    uint64_t cache_blocks = o->cache_bytes / block_raw + 1;
    if (cache_blocks > 4 * n_seq * per_seq + 64)
        cache_blocks = 4 * n_seq * per_seq + 64;
    uint64_t blocks = n_seq * (per_seq + 1) + cache_blocks;
    if (blocks > (1u << 30)) {
        free(c);
        return loco_err_set(err, LOCO_ERR_INVALID, "the KV cache would need %" PRIu64 " blocks",
                            blocks);
    }
    kp.max_blocks = (uint32_t)blocks;
    loco_status rc = kv_cache_new(&kp, &c->kv, err);
    if (rc) {
        free(c);
        return rc;
    }
    if (!o->parity) {
        rc = attn_new(hp->n_head, hp->n_head_kv, hp->head_dim, (uint32_t)c->n_threads, n_batch,
                      n_seq, &c->fa, err);
        if (rc) {
            qwen3_ctx_free(c);
            return rc;
        }
    }
    c->x = calloc(n_batch * E, sizeof(float));
    c->xn = calloc(n_batch * E, sizeof(float));
    c->q = calloc(n_batch * qd, sizeof(float));
    c->k = calloc(n_batch * kvd, sizeof(float));
    c->v = calloc(n_batch * kvd, sizeof(float));
    c->attn = calloc(n_batch * qd, sizeof(float));
    c->gate = calloc(n_batch * F, sizeof(float));
    c->up = calloc(n_batch * F, sizeof(float));
    c->proj = calloc(n_batch * E, sizeof(float));
    c->rope = calloc(n_batch * d, sizeof(float));
    c->logits = malloc((size_t)n_seq * hp->n_vocab * sizeof(float));
    c->emb_row = malloc(m->tok_embd.row_bytes);
    c->row_seg = calloc(n_batch, sizeof(uint32_t));
    c->row_pos = calloc(n_batch, sizeof(uint32_t));
    c->asegs = calloc(n_seq, sizeof(attn_seg));
    bool ok = c->emb_row && c->x && c->xn && c->q && c->k && c->v && c->attn && c->gate && c->up &&
              c->proj && c->rope && c->logits && c->row_seg && c->row_pos && c->asegs;
    if (ok && o->parity) {
        size_t T = (size_t)c->n_threads;
        c->scores = calloc(T * n_ctx, sizeof(float));
        c->qh = calloc(T * d, sizeof(uint16_t));
        c->wh = calloc(T * n_ctx, sizeof(uint16_t));
        c->vacc = calloc(T * 64 * d, sizeof(float));
        c->vg_bytes = T * n_ctx * d * sizeof(uint16_t);
        c->vg = map_zeroed(c->vg_bytes);
        ok = c->scores && c->qh && c->wh && c->vacc && c->vg;
    }
    if (!ok) {
        qwen3_ctx_free(c);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory for a context of %u tokens",
                            n_ctx);
    }
    c->prof = vm_profile_get();
    /* the fast path packs the model's weights once (the first fast context does it) */
    rc = o->parity ? LOCO_OK : mm_weights_prepare(m->mm, m, o->pool, err);
    if (!rc)
        rc = mm_ctx_init(&c->mm, o->parity, m->mm, o->pool, n_batch, (int64_t)widest, err);
    if (rc) {
        qwen3_ctx_free(c);
        return rc;
    }
    *out = c;
    return LOCO_OK;
}

loco_status qwen3_ctx_new(const qwen3_model *m, uint32_t n_ctx, uint32_t n_batch, tpool *pool,
                          qwen3_ctx **out, loco_err *err)
{
    qwen3_ctx_opts o;
    memset(&o, 0, sizeof(o));
    o.n_ctx = n_ctx;
    o.n_batch = n_batch ? n_batch : 1;
    o.pool = pool;
    return qwen3_ctx_new_opts(m, &o, out, err);
}

void qwen3_ctx_free(qwen3_ctx *c)
{
    if (!c)
        return;
    kv_seq_free(c->seq);
    attn_free(c->fa);
    kv_cache_free(c->kv);
    if (c->vg)
        munmap(c->vg, c->vg_bytes);
    free(c->x);
    free(c->xn);
    mm_ctx_release(&c->mm);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->attn);
    free(c->gate);
    free(c->up);
    free(c->proj);
    free(c->rope);
    free(c->logits);
    free(c->emb_row);
    free(c->row_seg);
    free(c->row_pos);
    free(c->asegs);
    free(c->scores);
    free(c->qh);
    free(c->wh);
    free(c->vacc);
    free(c);
}

kv_cache *qwen3_ctx_kv(qwen3_ctx *c)
{
    return c->kv;
}

uint32_t qwen3_ctx_size(const qwen3_ctx *c)
{
    return c->n_ctx;
}

uint32_t qwen3_ctx_batch(const qwen3_ctx *c)
{
    return c->n_batch;
}

bool qwen3_ctx_parity(const qwen3_ctx *c)
{
    return c->parity;
}

uint32_t qwen3_ctx_seqs(const qwen3_ctx *c)
{
    return c->n_seq;
}

uint32_t qwen3_ctx_vocab(const qwen3_ctx *c)
{
    return c->m->hp.n_vocab;
}

const char *qwen3_ctx_kernels(const qwen3_ctx *c)
{
    return mm_describe(&c->mm);
}

/* The sequence of the single-sequence calls. */
static loco_status default_seq(qwen3_ctx *c, loco_err *err)
{
    return c->seq ? LOCO_OK : kv_seq_new(c->kv, c->n_ctx, &c->seq, err);
}

uint32_t qwen3_ctx_past(const qwen3_ctx *c)
{
    return c->seq ? kv_seq_len(c->seq) : 0;
}

void qwen3_ctx_truncate(qwen3_ctx *c, uint32_t n)
{
    if (c->seq)
        kv_seq_truncate(c->seq, n, NULL);
}

int32_t qwen3_ctx_token(const qwen3_ctx *c, uint32_t i)
{
    return c->seq ? kv_seq_token(c->seq, i) : -1;
}

/* ---------------------------------------------------------------- kernels */

/* y = x / sqrt(mean(x^2) + eps) * w, summing squares in double as ggml does. */
static void rms_norm(const float *x, const float *w, float *y, int64_t n, float eps)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = (x[i] * scale) * w[i];
}

/* The angles of ggml's rope cache for one position: cs[i] = cos(theta_i), cs[half + i] =
 * sin(theta_i), theta advancing by repeated multiplication with base^(-2/d), as ggml does.
 * Every head of every layer of a row uses the same table. */
static void rope_angles(float *cs, uint32_t d, uint32_t pos, float base)
{
    const float theta_scale = powf(base, -2.0f / (float)d);
    float theta = (float)pos;
    uint32_t half = d / 2;
    for (uint32_t i = 0; i < half; i++) {
        cs[i] = cosf(theta);
        cs[half + i] = sinf(theta);
        theta *= theta_scale;
    }
}

/* NeoX rotation of one head with angles from rope_angles: element i pairs with i + d/2. */
static void rope_neox(float *v, uint32_t d, const float *cs)
{
    uint32_t half = d / 2;
    for (uint32_t i = 0; i < half; i++) {
        const float c = cs[i], s = cs[half + i];
        const float a = v[i], b = v[i + half];
        /* ggml's rotate_pairs as GCC contracts it (-ffp-contract=fast in its C++ build) */
        v[i] = fmaf(a, c, -(b * s));
        v[i + half] = fmaf(a, s, b * c);
    }
}

/* ---------------------------------------------------------------- matmul call site */

/* Encodes the rows of in (n_tokens x w->ne0, stride in_stride floats) as w's activations,
 * unless they are there already (same input, same encoding, no write in between: callers
 * call mm_invalidate after changing the input). */
static void prepare_act(qwen3_ctx *c, const qwen3_weight *w, const float *in, size_t in_stride,
                        uint32_t n_tokens)
{
    mm_prepare(&c->mm, w, in, in_stride, n_tokens);
}

/* out[t * out_stride + r] = W row r . act row t, rows split over the pool. */
static void matmul(qwen3_ctx *c, const qwen3_weight *w, uint32_t n_tokens, float *out,
                   size_t out_stride)
{
    mm_run(&c->mm, w, n_tokens, out, out_stride);
}

/* ---------------------------------------------------------------- attention */

/* llama.cpp's n_kv for a cache holding `used` positions: a multiple of 256 (at least 256),
 * capped by the cache size. Its softmax and V sums run over this many positions (the masked
 * ones weigh 0), which sets their SIMD lane order. */
static uint32_t kv_window(const qwen3_ctx *c, uint32_t used)
{
    uint32_t p = (used + 255) / 256 * 256;
    return p < c->n_ctx ? p : c->n_ctx;
}

typedef struct {
    qwen3_ctx *c;
    uint32_t layer;
} layer_job;

/* Parity path: one (row, head) pair as ggml's non-flash attention: K.q as f16 dot products,
 * softmax with the scale folded in, weights rounded to f16, then the weighted sum of V. */
static void attn_parity_task(void *ctx, int32_t task, int32_t thread)
{
    const layer_job *j = ctx;
    qwen3_ctx *c = j->c;
    const qwen3_hparams *hp = &c->m->hp;
    uint32_t H = hp->n_head, d = hp->head_dim;
    uint32_t r = (uint32_t)task / H, h = (uint32_t)task % H;
    uint32_t kvh = h / (H / hp->n_head_kv);
    const qwen3_seg *sg = &c->segs[c->row_seg[r]];
    uint32_t pos = c->row_pos[r];
    uint32_t n_kv = pos + 1;
    uint32_t n_pad = kv_window(c, kv_seq_len(sg->seq) + sg->n);
    size_t rb = kv_seq_row_bytes(sg->seq);
    float *s = c->scores + (size_t)thread * c->n_ctx;
    uint16_t *qh = c->qh + (size_t)thread * d;
    uint16_t *wh = c->wh + (size_t)thread * c->n_ctx;
    uint16_t *vg = c->vg + (size_t)thread * c->n_ctx * d;
    const float *q = c->q + (size_t)r * H * d + (size_t)h * d;
    for (uint32_t i = 0; i < d; i++)
        qh[i] = fp16_from_f32(q[i]);
    /* ggml: K.q through tinyBLAS for batches (n_kv rows of d values), vec_dot for one row */
    const bool batch = c->n_rows >= 2;
    const bool tiny = batch && vm_tinyblas_ok(c->prof, GGML_TYPE_F16, n_pad, d);
    for (uint32_t b = 0; b * KV_BLOCK < n_kv; b++) {
        const uint8_t *K = kv_seq_k(sg->seq, j->layer, kvh, b);
        const uint8_t *V = kv_seq_v(sg->seq, j->layer, kvh, b);
        uint32_t e = n_kv - b * KV_BLOCK < KV_BLOCK ? n_kv - b * KV_BLOCK : KV_BLOCK;
        for (uint32_t p = 0; p < e; p++) {
            const uint16_t *kr = (const uint16_t *)(K + (size_t)p * rb);
            s[b * KV_BLOCK + p] = tiny ? vm_dot_tinyblas(c->prof, GGML_TYPE_F16, d, kr, qh)
                                       : vm_dot_f16(c->prof, d, kr, qh);
        }
        memcpy(vg + (size_t)b * KV_BLOCK * d, V, (size_t)e * rb);
    }
    vm_soft_max(c->prof, n_pad, n_kv, s, 1.0f / sqrtf((float)d));
    for (uint32_t p = 0; p < n_kv; p++)
        wh[p] = fp16_from_f32(s[p]);
    float *o = c->attn + (size_t)r * H * d + (size_t)h * d;
    vm_attn_v(c->prof, batch, n_pad, n_kv, vg, d, wh, d, c->vacc + (size_t)thread * 64 * d, o);
}

/* ---------------------------------------------------------------- forward */

static void run_tasks(qwen3_ctx *c, int32_t n, tpool_fn fn, void *ctx)
{
    if (c->pool && n > 1 && tpool_run(c->pool, n, fn, ctx) == LOCO_OK)
        return;
    for (int32_t i = 0; i < n; i++)
        fn(ctx, i, 0);
}

static loco_status embed(qwen3_ctx *c, const int32_t *tokens, uint32_t n, float *x,
                         loco_err *err)
{
    const qwen3_model *m = c->m;
    for (uint32_t t = 0; t < n; t++) {
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= m->hp.n_vocab)
            return loco_err_set(err, LOCO_ERR_INVALID, "token id %d is outside the vocabulary (%u)",
                                tokens[t], m->hp.n_vocab);
        /* read, not touched through the mapping: a lookup would leave its pages (and on a
         * page cache of 2 MiB folios, 2 MiB) resident, and over a long session most of the
         * table besides the packed copy of it the tied output head streams */
        const uint8_t *row = (const uint8_t *)m->tok_embd.data +
                             (size_t)tokens[t] * m->tok_embd.row_bytes;
        loco_status rc = gguf_read_at(m->file, row, m->tok_embd.row_bytes, c->emb_row, err);
        if (rc)
            return rc;
        quant_dequantize_row(m->tok_embd.type, c->emb_row, x + (size_t)t * m->hp.n_embd,
                             m->hp.n_embd);
    }
    return LOCO_OK;
}

/* RMSNorm of n rows of x into c->xn, which then holds new activation input. */
static void norm_rows(qwen3_ctx *c, const float *x, const qwen3_weight *w, uint32_t n)
{
    const qwen3_hparams *hp = &c->m->hp;
    for (uint32_t t = 0; t < n; t++)
        rms_norm(x + (size_t)t * hp->n_embd, w->data, c->xn + (size_t)t * hp->n_embd,
                 hp->n_embd, hp->rms_eps);
    mm_invalidate(&c->mm);
}

#define ROWS_PER_TASK 4

/* Rows [4 task, 4 task + 4): per-head RMSNorm and RoPE of q and k, then k and v written into
 * the row's cache block in the cache's type (the KV write is fused with RoPE: k goes from the
 * matmul output to the cache in one pass). */
static void qkv_rows_task(void *ctx, int32_t task, int32_t thread)
{
    LOCO_UNUSED(thread);
    const layer_job *j = ctx;
    qwen3_ctx *c = j->c;
    const qwen3_hparams *hp = &c->m->hp;
    const qwen3_layer *L = &c->m->layers[j->layer];
    const size_t d = hp->head_dim, qd = hp->n_head * d, kvd = hp->n_head_kv * d;
    uint32_t r0 = (uint32_t)task * ROWS_PER_TASK, r1 = r0 + ROWS_PER_TASK;
    if (r1 > c->n_rows)
        r1 = c->n_rows;
    for (uint32_t r = r0; r < r1; r++) {
        const float *cs = c->rope + (size_t)r * d;
        for (uint32_t h = 0; h < hp->n_head; h++) {
            float *qv = c->q + r * qd + h * d;
            rms_norm(qv, L->q_norm.data, qv, (int64_t)d, hp->rms_eps);
            rope_neox(qv, (uint32_t)d, cs);
        }
        const kv_seq *seq = c->segs[c->row_seg[r]].seq;
        const uint32_t pos = c->row_pos[r];
        const size_t rb = kv_seq_row_bytes(seq);
        const bool f16 = kv_seq_type(seq) == GGML_TYPE_F16;
        for (uint32_t h = 0; h < hp->n_head_kv; h++) {
            float *kv = c->k + r * kvd + h * d;
            rms_norm(kv, L->k_norm.data, kv, (int64_t)d, hp->rms_eps);
            rope_neox(kv, (uint32_t)d, cs);
            uint8_t *kdst = kv_seq_k(seq, j->layer, h, pos / KV_BLOCK) + (pos % KV_BLOCK) * rb;
            uint8_t *vdst = kv_seq_v(seq, j->layer, h, pos / KV_BLOCK) + (pos % KV_BLOCK) * rb;
            const float *vv = c->v + r * kvd + h * d;
            if (f16) {
                for (size_t i = 0; i < d; i++) {
                    ((uint16_t *)kdst)[i] = fp16_from_f32(kv[i]);
                    ((uint16_t *)vdst)[i] = fp16_from_f32(vv[i]);
                }
            } else {
                quant_quantize_act(GGML_TYPE_Q8_0, kv, kdst, (int64_t)d);
                quant_quantize_act(GGML_TYPE_Q8_0, vv, vdst, (int64_t)d);
            }
        }
    }
}

/* Attention block of layer l for all rows: x += wo(attention(norm(x))). */
static void attention_block(qwen3_ctx *c, uint32_t l)
{
    const qwen3_hparams *hp = &c->m->hp;
    const qwen3_layer *L = &c->m->layers[l];
    const uint32_t n = c->n_rows;
    size_t E = hp->n_embd, d = hp->head_dim;
    size_t qd = hp->n_head * d, kvd = hp->n_head_kv * d;

    norm_rows(c, c->x, &L->attn_norm, n);
    prepare_act(c, &L->wq, c->xn, E, n); /* wq, wk, wv share the input */
    matmul(c, &L->wq, n, c->q, qd);
    prepare_act(c, &L->wk, c->xn, E, n);
    matmul(c, &L->wk, n, c->k, kvd);
    prepare_act(c, &L->wv, c->xn, E, n);
    matmul(c, &L->wv, n, c->v, kvd);

    layer_job lj = {c, l};
    run_tasks(c, (int32_t)((n + ROWS_PER_TASK - 1) / ROWS_PER_TASK), qkv_rows_task, &lj);
    if (c->parity) {
        run_tasks(c, (int32_t)(n * hp->n_head), attn_parity_task, &lj);
    } else {
        uint32_t row = 0;
        for (uint32_t s = 0; s < c->n_segs; s++) {
            const qwen3_seg *sg = &c->segs[s];
            c->asegs[s] = (attn_seg){sg->seq, c->q + (size_t)row * qd, c->attn + (size_t)row * qd,
                                     sg->n, kv_seq_len(sg->seq)};
            row += sg->n;
        }
        attn_forward(c->fa, c->pool, l, c->asegs, c->n_segs);
    }

    mm_invalidate(&c->mm);
    prepare_act(c, &L->wo, c->attn, qd, n);
    matmul(c, &L->wo, n, c->proj, E);
    for (size_t i = 0; i < n * E; i++)
        c->x[i] += c->proj[i];
}

/* FFN block of layer l for rows [0, n) of x: x += down(swiglu(...)). */
static void ffn_block(qwen3_ctx *c, uint32_t l, uint32_t n)
{
    const qwen3_hparams *hp = &c->m->hp;
    const qwen3_layer *L = &c->m->layers[l];
    size_t E = hp->n_embd, F = hp->n_ff;
    float *x = c->x;

    norm_rows(c, x, &L->ffn_norm, n);
    prepare_act(c, &L->gate, c->xn, E, n);
    matmul(c, &L->gate, n, c->gate, F);
    prepare_act(c, &L->up, c->xn, E, n);
    matmul(c, &L->up, n, c->up, F);
    for (uint32_t t = 0; t < n; t++)
        vm_swiglu(c->prof, (int64_t)F, c->gate + t * F, c->gate + t * F, c->up + t * F);
    mm_invalidate(&c->mm);
    prepare_act(c, &L->down, c->gate, F, n);
    matmul(c, &L->down, n, c->proj, E);
    for (size_t i = 0; i < n * E; i++)
        x[i] += c->proj[i];
}

loco_status qwen3_forward(qwen3_ctx *c, const qwen3_seg *segs, uint32_t n_segs, loco_err *err)
{
    const qwen3_model *m = c->m;
    const qwen3_hparams *hp = &m->hp;
    const size_t E = hp->n_embd;
    if (n_segs == 0)
        return LOCO_OK;
    if (n_segs > c->n_seq)
        return loco_err_set(err, LOCO_ERR_INVALID, "%u sequences in one step (at most %u)",
                            n_segs, c->n_seq);
    uint32_t rows = 0;
    for (uint32_t s = 0; s < n_segs; s++) {
        if (!segs[s].n || !segs[s].seq)
            return loco_err_set(err, LOCO_ERR_INVALID, "an empty segment in a step");
        rows += segs[s].n;
        if (rows > c->n_batch)
            return loco_err_set(err, LOCO_ERR_INVALID, "a step of more than %u tokens",
                                c->n_batch);
    }
    uint32_t row = 0;
    for (uint32_t s = 0; s < n_segs; s++) {
        const qwen3_seg *sg = &segs[s];
        loco_status rc = kv_seq_reserve(sg->seq, sg->n, err);
        if (!rc)
            rc = embed(c, sg->tokens, sg->n, c->x + (size_t)row * E, err);
        if (rc)
            return rc;
        uint32_t p0 = kv_seq_len(sg->seq);
        for (uint32_t t = 0; t < sg->n; t++, row++) {
            c->row_seg[row] = s;
            c->row_pos[row] = p0 + t;
            rope_angles(c->rope + (size_t)row * hp->head_dim, hp->head_dim, p0 + t,
                        hp->rope_base);
        }
    }
    c->segs = segs;
    c->n_segs = n_segs;
    c->n_rows = rows;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        attention_block(c, l);
        if (l + 1 < hp->n_layer) {
            ffn_block(c, l, rows);
            continue;
        }
        /* Last layer: llama.cpp keeps only the rows whose logits are wanted after the attention
         * block (get_rows on inp_out_ids), so its FFN runs on those rows alone (one row: a
         * one-row matmul); loco does the same (same arithmetic, less work). The wanted rows are
         * gathered at the front of x: the last row of each segment that wants its last logits,
         * then every row of each segment that wants them all. */
        uint32_t n_last = 0, n_out = 0, row0 = 0;
        for (int pass = 0; pass < 2; pass++) {
            row0 = 0;
            for (uint32_t s = 0; s < n_segs; s++) {
                const qwen3_seg *sg = &segs[s];
                if (sg->logits && !sg->all_logits && pass == 0)
                    memcpy(c->proj + (size_t)n_out++ * E, c->x + (size_t)(row0 + sg->n - 1) * E,
                           E * sizeof(float));
                if (sg->logits && sg->all_logits && pass == 1) {
                    memcpy(c->proj + (size_t)n_out * E, c->x + (size_t)row0 * E,
                           (size_t)sg->n * E * sizeof(float));
                    n_out += sg->n;
                }
                row0 += sg->n;
            }
            if (pass == 0)
                n_last = n_out;
        }
        if (!n_out)
            continue;
        memcpy(c->x, c->proj, (size_t)n_out * E * sizeof(float));
        ffn_block(c, l, n_out);
        norm_rows(c, c->x, &m->output_norm, n_out);
        if (n_last) {
            prepare_act(c, &m->output, c->xn, E, n_last);
            matmul(c, &m->output, n_last, c->logits, hp->n_vocab);
        }
        row0 = n_last;
        for (uint32_t s = 0; s < n_segs; s++) {
            const qwen3_seg *sg = &segs[s];
            if (!sg->logits || !sg->all_logits)
                continue;
            prepare_act(c, &m->output, c->xn + (size_t)row0 * E, E, sg->n);
            matmul(c, &m->output, sg->n, sg->logits, hp->n_vocab);
            row0 += sg->n;
        }
    }
    uint32_t k = 0;
    for (uint32_t s = 0; s < n_segs; s++) {
        if (segs[s].logits && !segs[s].all_logits)
            memcpy(segs[s].logits, c->logits + (size_t)k++ * hp->n_vocab,
                   hp->n_vocab * sizeof(float));
        kv_seq_commit(segs[s].seq, segs[s].tokens, segs[s].n);
    }
    c->segs = NULL;
    return LOCO_OK;
}

/* qwen3_eval (all false: the last token's logits) and qwen3_eval_all (all true). */
static loco_status eval(qwen3_ctx *c, const int32_t *tokens, uint32_t n, float *out_logits,
                        bool all, loco_err *err)
{
    if (n == 0)
        return LOCO_OK;
    loco_status rc = default_seq(c, err);
    if (rc)
        return rc;
    uint32_t past = kv_seq_len(c->seq);
    if ((uint64_t)past + n > c->n_ctx)
        return loco_err_set(err, LOCO_ERR_OVERFLOW,
                            "the context is full: %u tokens in it + %u new > %u (raise --ctx)",
                            past, n, c->n_ctx);
    const size_t V = c->m->hp.n_vocab;
    for (uint32_t done = 0; done < n;) {
        uint32_t b = n - done < c->n_batch ? n - done : c->n_batch;
        qwen3_seg sg = {c->seq, tokens + done, b, NULL, all};
        if (all && out_logits)
            sg.logits = out_logits + (size_t)done * V;
        else if (done + b == n)
            sg.logits = out_logits;
        rc = qwen3_forward(c, &sg, 1, err);
        if (rc)
            return rc;
        done += b;
    }
    return LOCO_OK;
}

loco_status qwen3_eval(qwen3_ctx *c, const int32_t *tokens, uint32_t n, float *out_logits,
                       loco_err *err)
{
    return eval(c, tokens, n, out_logits, false, err);
}

loco_status qwen3_eval_all(qwen3_ctx *c, const int32_t *tokens, uint32_t n, float *out_logits,
                           loco_err *err)
{
    return eval(c, tokens, n, out_logits, true, err);
}

bool qwen3_kv_type_from_name(const char *name, qwen3_kv_type *out)
{
    if (name && !strcmp(name, "f16"))
        *out = QWEN3_KV_F16;
    else if (name && !strcmp(name, "q8_0"))
        *out = QWEN3_KV_Q8_0;
    else
        return false;
    return true;
}

const char *qwen3_kv_type_name(qwen3_kv_type t)
{
    return t == QWEN3_KV_Q8_0 ? "q8_0" : "f16";
}
