/* matmul.c: the forward pass's matrix multiplications (see matmul.h): the parity path with
 * llama.cpp's kernel choice per weight (AMX-formula kernels, its repacked Q4_0/Q4_K kernels on
 * AVX2/AVX-512 CPUs without AMX, tinyBLAS for batches, vec_dot for one row;
 * docs/internals/qwen3.md) and the fast path on repacked weights (docs/internals/kernels.md),
 * both split over the thread pool by rows. Engine layer. */
#include "base/common.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/matmul.h"
#include "engine/quant.h"

/* ---------------------------------------------------------------- packed weights */

typedef struct {
    const void *key; /* the original data pointer */
    kern_weight w;
} mm_entry;

struct mm_weights {
    pthread_mutex_t mu;
    bool ready;
    mm_entry *e; /* sorted by key */
    size_t n;
    uint64_t bytes;
};

mm_weights *mm_weights_new(void)
{
    mm_weights *mw = calloc(1, sizeof(*mw));
    if (mw && pthread_mutex_init(&mw->mu, NULL)) {
        free(mw);
        return NULL;
    }
    return mw;
}

void mm_weights_free(mm_weights *mw)
{
    if (!mw)
        return;
    for (size_t i = 0; i < mw->n; i++)
        kern_weight_release(&mw->e[i].w);
    free(mw->e);
    pthread_mutex_destroy(&mw->mu);
    free(mw);
}

uint64_t mm_weights_bytes(const mm_weights *mw)
{
    return mw ? mw->bytes : 0;
}

static int entry_cmp(const void *a, const void *b)
{
    const uintptr_t x = (uintptr_t)((const mm_entry *)a)->key;
    const uintptr_t y = (uintptr_t)((const mm_entry *)b)->key;
    return x < y ? -1 : x > y;
}

static const kern_weight *mm_find(const mm_weights *mw, const void *key)
{
    size_t lo = 0, hi = mw->n;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        const uintptr_t k = (uintptr_t)mw->e[mid].key;
        if (k == (uintptr_t)key)
            return &mw->e[mid].w;
        if (k < (uintptr_t)key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

typedef struct {
    kern_weight *w;
    const void *src;
    int64_t g0, g1; /* the slice being packed */
    int64_t per_task;
} pack_job;

static void pack_task(void *ctx, int32_t task, int32_t thread)
{
    LOCO_UNUSED(thread);
    const pack_job *j = ctx;
    const int64_t g0 = j->g0 + (int64_t)task * j->per_task;
    const int64_t g1 = g0 + j->per_task < j->g1 ? g0 + j->per_task : j->g1;
    if (g0 < g1)
        kern_weight_pack(j->w, j->src, g0, g1);
}

/* Drops the whole pages of [p, p + n) from this process's memory: they are the read-only
 * mapping of the model file, re-read from the page cache if touched again. */
static void drop_pages(const void *p, size_t n)
{
    const uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t b = ((uintptr_t)p + ps - 1) & ~(ps - 1), e = ((uintptr_t)p + n) & ~(ps - 1);
    if (e > b)
        madvise((void *)b, e - b, MADV_DONTNEED);
}

loco_status mm_weights_prepare(mm_weights *mw, const qwen3_model *m, tpool *pool, loco_err *err)
{
    loco_status rc = LOCO_OK;
    pthread_mutex_lock(&mw->mu);
    if (mw->ready)
        goto out;
    const size_t cap = (size_t)m->hp.n_layer * 7 + 1;
    mw->e = calloc(cap, sizeof(mm_entry));
    if (!mw->e) {
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        goto out;
    }
    const bool file = gguf_is_file_mapped(m->file);
    const int32_t threads = pool ? tpool_threads(pool) : 1;
    for (size_t i = 0; i < cap && !rc; i++) {
        const qwen3_weight *w;
        if (i + 1 == cap) {
            w = &m->output;
        } else {
            const qwen3_layer *L = &m->layers[i / 7];
            const qwen3_weight *ws[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
            w = ws[i % 7];
        }
        if (!kern_type_supported(w->type))
            continue; /* no fast kernels (the low-bit types): see vecdot_run */
        mm_entry *e = &mw->e[mw->n];
        rc = kern_weight_init(&e->w, w->type, w->ne1, w->ne0, w->name, err);
        if (rc)
            break;
        e->key = w->data;
        mw->n++;
        /* in slices of about 32 MiB of the source, whose mapped pages are dropped as soon as
         * they are packed (or copied, the dense types): the peak stays near the copy's size,
         * not the copy + one tensor */
        const int64_t slice = (int64_t)(((size_t)32 << 20) / (w->row_bytes * KERN_GROUP)) + 1;
        for (int64_t s0 = 0; s0 < e->w.n_groups; s0 += slice) {
            const int64_t s1 = s0 + slice < e->w.n_groups ? s0 + slice : e->w.n_groups;
            pack_job j = {&e->w, w->data, s0, s1, 0};
            int32_t tasks = threads * 2;
            if (tasks > s1 - s0)
                tasks = (int32_t)(s1 - s0);
            j.per_task = (s1 - s0 + tasks - 1) / tasks;
            tasks = (int32_t)((s1 - s0 + j.per_task - 1) / j.per_task);
            if (pool)
                tpool_run(pool, tasks, pack_task, &j);
            else
                for (int32_t t = 0; t < tasks; t++)
                    pack_task(&j, t, 0);
            if (file) {
                const int64_t r0 = s0 * KERN_GROUP;
                const int64_t r1 = s1 * KERN_GROUP < w->ne1 ? s1 * KERN_GROUP : w->ne1;
                drop_pages((const uint8_t *)w->data + (size_t)r0 * w->row_bytes,
                           (size_t)(r1 - r0) * w->row_bytes);
            }
        }
        mw->bytes += e->w.mem_bytes;
    }
    if (!rc && file) {
        /* what is left of the file in memory: the header and the pages the slices shared with
         * their neighbours (where the page cache holds the file in huge pages, each a whole
         * 2 MB); nothing at run time reads the mapping (norms are copies, embeddings are read
         * with pread), except weights without fast kernels, which fault back in */
        const void *base;
        size_t size;
        gguf_mapping(m->file, &base, &size);
        drop_pages(base, size);
    }
    if (!rc) {
        qsort(mw->e, mw->n, sizeof(mm_entry), entry_cmp);
        mw->ready = true;
    } else {
        for (size_t i = 0; i < mw->n; i++)
            kern_weight_release(&mw->e[i].w);
        free(mw->e);
        mw->e = NULL;
        mw->n = 0;
        mw->bytes = 0;
    }
out:
    pthread_mutex_unlock(&mw->mu);
    return rc;
}

/* ---------------------------------------------------------------- context */

/* Encoding keys of the fast path (activation rows that can be shared between weights). */
enum { KEY_NONE = -1, KEY_F32 = 0, KEY_A256, KEY_A32_Q8_0, KEY_A32_Q4_0, KEY_A32_Q5_0, KEY_A32 };
/* Weights without fast kernels use quant.h's activations: key KEY_VEC_DOT + their ggml type. */
#define KEY_VEC_DOT 16

static int fast_key(ggml_type t)
{
    switch (t) {
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K:
    case GGML_TYPE_Q6_K: return KEY_A256;
    case GGML_TYPE_Q8_0: return KEY_A32_Q8_0;
    case GGML_TYPE_Q4_0: return KEY_A32_Q4_0;
    case GGML_TYPE_Q5_0: return KEY_A32_Q5_0;
    case GGML_TYPE_Q4_1:
    case GGML_TYPE_Q5_1: return KEY_A32;
    default: return KEY_F32;
    }
}

loco_status mm_ctx_init(mm_ctx *c, bool parity, const mm_weights *mw, tpool *pool,
                        uint32_t n_batch, int64_t max_k, loco_err *err)
{
    memset(c, 0, sizeof(*c));
    c->parity = parity;
    c->prof = vm_profile_get();
    c->kt = kern_get();
    c->mw = mw;
    c->pool = pool;
    c->n_threads = pool ? tpool_threads(pool) : 1;
    c->n_batch = n_batch;
    c->act_in = NULL;
    c->act_key = KEY_NONE;
    /* the widest activation row of any encoding: F32 (parity), or a fast row */
    size_t stride = ggml_type_row_size(GGML_TYPE_F32, (uint64_t)max_k);
    static const ggml_type fast_types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_K};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(fast_types); i++) {
        const size_t b = kern_act_bytes(fast_types[i], max_k);
        stride = b > stride ? b : stride;
    }
    c->act_stride = (stride + 63) & ~(size_t)63;
    c->act = aligned_alloc(64, (size_t)n_batch * c->act_stride);
    if (!c->act)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    return LOCO_OK;
}

void mm_ctx_release(mm_ctx *c)
{
    free(c->act);
    memset(c, 0, sizeof(*c));
}

void mm_invalidate(mm_ctx *c)
{
    c->act_in = NULL;
}

const char *mm_describe(const mm_ctx *c)
{
    static char buf[2][200];
    if (c->parity) {
        snprintf(buf[0], sizeof(buf[0]), "parity:%s", c->prof->name);
        return buf[0];
    }
    return kern_describe();
}

/* ---------------------------------------------------------------- parity path */

typedef struct {
    const vm_profile *prof;
    const qwen3_weight *w;
    const uint8_t *act;
    size_t act_stride;
    uint32_t n_tokens;
    float *out;
    size_t out_stride;
    int64_t rows_per_task;
    bool amx; /* the weight is in llama.cpp's AMX buffer (see on_amx) */
} parity_job;

/* Whether llama.cpp on this CPU keeps matmul weight w in ggml's AMX buffer, whose kernels
 * then run its matmuls: the AMX types (and F16) with a multiple of 32 rows and whole blocks.
 * (token_embd, a GET_ROWS source, stays in a plain buffer, but a tied output weight is loaded
 * as a separate copy that does go to the AMX buffer.) */
static bool on_amx(const vm_profile *prof, const qwen3_weight *w)
{
    if (!prof->amx || w->ne1 % 32)
        return false;
    if (w->type == GGML_TYPE_F16)
        return w->ne0 % 16 == 0;
    return vm_uses_amx(prof, w->type);
}

/* The encoding of the activations w is multiplied with: ggml's vec_dot_type, except that the
 * AMX F16 kernel takes them as f32. */
static ggml_type parity_act_type(const vm_profile *prof, const qwen3_weight *w)
{
    if (w->type == GGML_TYPE_F16 && on_amx(prof, w))
        return GGML_TYPE_F32;
    return quant_act_type(w->type);
}

/* Rows [rb, re) of a dense (F32/F16/BF16) weight with ggml's arithmetic for it: the AMX F16
 * kernel, tinyBLAS for two or more activation rows, else vec_dot. */
static void parity_dense(const parity_job *j, int64_t rb, int64_t re)
{
    const qwen3_weight *w = j->w;
    const bool tiny = j->n_tokens >= 2 && vm_tinyblas_ok(j->prof, w->type, w->ne1, w->ne0);
    if (j->amx) {
        for (; rb + 4 <= re; rb += 4) {
            const uint16_t *row = (const uint16_t *)((const uint8_t *)w->data + (size_t)rb * w->row_bytes);
            for (uint32_t t = 0; t < j->n_tokens; t++) {
                float o[4];
                vm_amx_dot_f16_x4(w->ne0, row, w->row_bytes / 2,
                                  (const float *)(j->act + (size_t)t * j->act_stride), o);
                memcpy(j->out + (size_t)t * j->out_stride + (size_t)rb, o, sizeof(o));
            }
        }
    }
    for (int64_t r = rb; r < re; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (uint32_t t = 0; t < j->n_tokens; t++) {
            const uint8_t *a = j->act + (size_t)t * j->act_stride;
            float v;
            if (j->amx)
                v = vm_amx_dot_f16(w->ne0, (const uint16_t *)row, (const float *)a);
            else if (tiny)
                v = vm_dot_tinyblas(j->prof, w->type, w->ne0, row, a);
            else if (w->type == GGML_TYPE_F32)
                v = vm_dot_f32(j->prof, w->ne0, (const float *)row, (const float *)a);
            else if (w->type == GGML_TYPE_F16)
                v = vm_dot_f16(j->prof, w->ne0, (const uint16_t *)row, (const uint16_t *)a);
            else
                v = vm_dot_bf16(j->prof, w->ne0, (const uint16_t *)row, (const uint16_t *)a);
            j->out[(size_t)t * j->out_stride + (size_t)r] = v;
        }
    }
}

static void parity_task(void *ctx, int32_t task, int32_t thread)
{
    LOCO_UNUSED(thread);
    const parity_job *j = ctx;
    const qwen3_weight *w = j->w;
    int64_t rb = (int64_t)task * j->rows_per_task;
    int64_t re = rb + j->rows_per_task;
    if (re > w->ne1)
        re = w->ne1;
    if (rb >= re)
        return;
    if (w->type == GGML_TYPE_F32 || w->type == GGML_TYPE_F16 || w->type == GGML_TYPE_BF16)
        parity_dense(j, rb, re);
    else if (j->amx)
        vm_amx_matmul(w->type, w->data, w->ne0, j->act, j->n_tokens, j->act_stride, j->out,
                      j->out_stride, rb, re);
    else if (vm_uses_repack(j->prof, w->type, w->ne1)) /* else in its CPU_REPACK buffer */
        vm_repack_matmul(w->type, w->data, w->ne0, j->act, j->n_tokens, j->act_stride, j->out,
                         j->out_stride, rb, re);
    else
        quant_matmul(w->type, w->data, w->ne1, w->ne0, j->act, j->n_tokens, j->act_stride, j->out,
                     j->out_stride, rb, re);
}

static void parity_run(mm_ctx *c, const qwen3_weight *w, uint32_t n_tokens, float *out,
                       size_t out_stride)
{
    parity_job j = {c->prof, w, c->act, c->act_stride, n_tokens, out, out_stride, 0,
                    on_amx(c->prof, w)};
    int64_t tasks = (int64_t)c->n_threads * 4;
    if (tasks > w->ne1)
        tasks = w->ne1;
    if (tasks < 1)
        tasks = 1;
    j.rows_per_task = (w->ne1 + tasks - 1) / tasks;
    /* keep tasks a multiple of 8 rows where possible (SIMD kernels like it) */
    j.rows_per_task = (j.rows_per_task + 7) & ~(int64_t)7;
    int32_t n_tasks = (int32_t)((w->ne1 + j.rows_per_task - 1) / j.rows_per_task);
    if (c->pool && n_tasks > 1)
        tpool_run(c->pool, n_tasks, parity_task, &j);
    else
        for (int32_t t = 0; t < n_tasks; t++)
            parity_task(&j, t, 0);
}

/* ---------------------------------------------------------------- fast path */

typedef struct {
    mm_ctx *c;
    const kern_weight *kw;
    ggml_type type;
    const float *in;
    size_t in_stride;
    int64_t k;
    uint32_t n_tokens, per_task;
    float *out;
    size_t out_stride;
    int64_t groups_per_task;
} fast_job;

static void quant_task(void *ctx, int32_t task, int32_t thread)
{
    LOCO_UNUSED(thread);
    const fast_job *j = ctx;
    const uint32_t t0 = (uint32_t)task * j->per_task;
    const uint32_t t1 = t0 + j->per_task < j->n_tokens ? t0 + j->per_task : j->n_tokens;
    for (uint32_t t = t0; t < t1; t++)
        kern_quantize(j->c->kt, j->type, j->in + (size_t)t * j->in_stride, j->k,
                      j->c->act + (size_t)t * j->c->act_stride);
}

static void gemm_task(void *ctx, int32_t task, int32_t thread)
{
    LOCO_UNUSED(thread);
    const fast_job *j = ctx;
    const int64_t g0 = (int64_t)task * j->groups_per_task;
    const int64_t g1 = g0 + j->groups_per_task < j->kw->n_groups ? g0 + j->groups_per_task
                                                                 : j->kw->n_groups;
    if (g0 >= g1)
        return;
    const int64_t r1 = g1 * KERN_GROUP < j->kw->rows ? g1 * KERN_GROUP : j->kw->rows;
    kern_matmul(j->c->kt, j->kw, j->c->act, j->c->act_stride, j->n_tokens, j->out, j->out_stride,
                g0 * KERN_GROUP, r1);
}

static void run_tasks(mm_ctx *c, int32_t n, tpool_fn fn, void *ctx)
{
    if (c->pool && n > 1)
        tpool_run(c->pool, n, fn, ctx);
    else
        for (int32_t t = 0; t < n; t++)
            fn(ctx, t, 0);
}

/* Weights of the types without fast kernels (Q2_K, Q3_K, IQ4_NL, IQ4_XS: kern_type_supported
 * is false) are not packed: they stay in the file mapping and run quant.h's matmul (the best
 * table of quant_kernels_get: llama.cpp's x86 vec_dot arithmetic) on quant_act_type
 * activations, rows split over the pool. Slower than a packed kernel; the same numbers as the
 * parity path wherever llama.cpp itself uses vec_dot for them. */
typedef struct {
    const qwen3_weight *w;
    const uint8_t *act;
    size_t act_stride;
    uint32_t n_tokens;
    float *out;
    size_t out_stride;
    int64_t rows_per_task;
} vecdot_job;

static void vecdot_task(void *ctx, int32_t task, int32_t thread)
{
    LOCO_UNUSED(thread);
    const vecdot_job *j = ctx;
    const int64_t rb = (int64_t)task * j->rows_per_task;
    const int64_t re = rb + j->rows_per_task < j->w->ne1 ? rb + j->rows_per_task : j->w->ne1;
    if (rb < re)
        quant_matmul(j->w->type, j->w->data, j->w->ne1, j->w->ne0, j->act, j->n_tokens,
                     j->act_stride, j->out, j->out_stride, rb, re);
}

static void vecdot_run(mm_ctx *c, const qwen3_weight *w, uint32_t n_tokens, float *out,
                       size_t out_stride)
{
    vecdot_job j = {w, c->act, c->act_stride, n_tokens, out, out_stride, 0};
    int64_t tasks = (int64_t)c->n_threads * 8;
    if (tasks > w->ne1)
        tasks = w->ne1;
    j.rows_per_task = (w->ne1 + tasks - 1) / tasks;
    j.rows_per_task = (j.rows_per_task + 7) & ~(int64_t)7;
    tasks = (w->ne1 + j.rows_per_task - 1) / j.rows_per_task;
    run_tasks(c, (int32_t)tasks, vecdot_task, &j);
}

void mm_prepare(mm_ctx *c, const qwen3_weight *w, const float *in, size_t in_stride,
                uint32_t n_tokens)
{
    LOCO_ASSERT(n_tokens <= c->n_batch);
    if (c->parity) {
        const ggml_type at = parity_act_type(c->prof, w);
        if (c->act_in == in && c->act_key == (int)at && c->act_n == n_tokens)
            return;
        for (uint32_t t = 0; t < n_tokens; t++)
            quant_quantize_act(at, in + t * in_stride, c->act + t * c->act_stride, w->ne0);
        c->act_key = (int)at;
    } else if (!kern_type_supported(w->type)) { /* vecdot_run's activations */
        const ggml_type at = quant_act_type(w->type);
        if (c->act_in == in && c->act_key == KEY_VEC_DOT + (int)at && c->act_n == n_tokens)
            return;
        for (uint32_t t = 0; t < n_tokens; t++)
            quant_quantize_act(at, in + t * in_stride, c->act + t * c->act_stride, w->ne0);
        c->act_key = KEY_VEC_DOT + (int)at;
    } else {
        const int key = fast_key(w->type);
        if (c->act_in == in && c->act_key == key && c->act_n == n_tokens)
            return;
        fast_job j;
        memset(&j, 0, sizeof(j));
        j.c = c, j.type = w->type, j.in = in, j.in_stride = in_stride, j.k = w->ne0;
        j.n_tokens = n_tokens;
        int32_t tasks = n_tokens >= 8 ? c->n_threads : 1;
        j.per_task = (n_tokens + (uint32_t)tasks - 1) / (uint32_t)tasks;
        run_tasks(c, tasks, quant_task, &j);
        c->act_key = key;
    }
    c->act_in = in;
    c->act_n = n_tokens;
}

void mm_run(mm_ctx *c, const qwen3_weight *w, uint32_t n_tokens, float *out, size_t out_stride)
{
    if (c->parity) {
        parity_run(c, w, n_tokens, out, out_stride);
        return;
    }
    if (!kern_type_supported(w->type)) {
        vecdot_run(c, w, n_tokens, out, out_stride);
        return;
    }
    const kern_weight *kw = mm_find(c->mw, w->data);
    LOCO_ASSERT(kw != NULL);
    fast_job j;
    memset(&j, 0, sizeof(j));
    j.c = c, j.kw = kw, j.n_tokens = n_tokens, j.out = out, j.out_stride = out_stride;
    /* several tasks per thread, each a whole number of 16-row groups: they balance, and a
     * thread the OS preempts in the middle of a task holds up the others less */
    int64_t tasks = (int64_t)c->n_threads * 8;
    if (tasks > kw->n_groups)
        tasks = kw->n_groups;
    j.groups_per_task = (kw->n_groups + tasks - 1) / tasks;
    tasks = (kw->n_groups + j.groups_per_task - 1) / j.groups_per_task;
    run_tasks(c, (int32_t)tasks, gemm_task, &j);
}
