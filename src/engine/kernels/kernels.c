/* kernels.c: the kernels module's front (engine/kernels): CPU feature detection, the table of
 * entry points chosen once, the AMX self-check, weight set-up and the public kern_* calls.
 * Compiled with the project's generic flags: only the per-ISA files use wider instructions,
 * and they are entered only after the checks here. */
#include "base/common.h"

#include <pthread.h>
#include <sys/mman.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define KERN_X86 1
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

#include "engine/kernels/kern_int.h"

/* ---------------------------------------------------------------- CPU features */

typedef struct {
    bool avx2;   /* AVX2 + FMA + F16C, and the OS saves ymm state */
    bool avx512; /* AVX-512 F/BW/VL/DQ + VNNI, and the OS saves zmm state */
    bool amx;    /* AMX-TILE + AMX-INT8 + AVX512 path, and Linux granted XTILEDATA */
    bool amx_cpu;/* the CPU reports AMX (whether or not it is usable) */
    bool neon;   /* aarch64 with the dot-product extension */
} cpu_features;

#ifdef KERN_X86
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* The AMX tile data state must be requested from Linux once per process (ggml does the same). */
static bool amx_permission(void)
{
#if defined(__linux__) && defined(SYS_arch_prctl)
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
#else
    return false;
#endif
}

static cpu_features detect(void)
{
    cpu_features f;
    memset(&f, 0, sizeof(f));
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return f;
    const bool osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave)
        return f;
    const uint64_t xcr0 = xgetbv0();
    const bool ymm_os = (xcr0 & 6) == 6, zmm_os = (xcr0 & 0xE6) == 0xE6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return f;
    const bool avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
    const bool avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1, vnni = (c >> 11) & 1;
    const bool amx_tile = (d >> 24) & 1, amx_int8 = (d >> 25) & 1;
    f.avx2 = ymm_os && avx2 && fma && f16c;
    f.avx512 = f.avx2 && zmm_os && avx512f && avx512dq && avx512bw && avx512vl && vnni;
    f.amx_cpu = amx_tile && amx_int8;
    f.amx = f.avx512 && f.amx_cpu && amx_permission();
    return f;
}
#elif defined(__aarch64__)
static cpu_features detect(void)
{
    cpu_features f;
    memset(&f, 0, sizeof(f));
#if defined(__linux__) && defined(AT_HWCAP)
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
    f.neon = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__ARM_FEATURE_DOTPROD)
    f.neon = true;
#endif
    return f;
}
#else
static cpu_features detect(void)
{
    cpu_features f;
    memset(&f, 0, sizeof(f));
    return f;
}
#endif

/* ---------------------------------------------------------------- tables */

enum { T_SCALAR, T_AVX2, T_AVX512, T_AMX, T_NEON, T_AMX_EMU, T_COUNT };
static const char *const TABLE_NAMES[T_COUNT] = {"scalar", "avx2", "avx512", "amx", "neon", "amx-emu"};

/* Built once under pthread_once, read-only afterwards. */
static kern_table g_tables[T_COUNT];
static bool g_have[T_COUNT];
static const kern_table *g_active;
static char g_describe[160];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;


static void tables_init(void)
{
    const cpu_features f = detect();
    kern_scalar_fill(&g_tables[T_SCALAR]);
    g_have[T_SCALAR] = true;
    for (int i = 1; i < T_COUNT; i++)
        g_tables[i] = g_tables[T_SCALAR];
    if (f.avx2 && kern_avx2_built())
        g_have[T_AVX2] = kern_avx2_fill(&g_tables[T_AVX2]);
    if (f.avx512 && kern_avx512_built()) {
        g_tables[T_AVX512] = g_tables[T_AVX2];
        g_have[T_AVX512] = kern_avx512_fill(&g_tables[T_AVX512]);
    }
    const char *amx_note = f.amx_cpu ? "not granted by the OS" : "not present";
    if (f.amx && g_have[T_AVX512] && kern_amx_built()) {
        g_tables[T_AMX] = g_tables[T_AVX512];
        if (!kern_amx_fill(&g_tables[T_AMX]))
            amx_note = "not usable";
        else if (!kern_self_check(&g_tables[T_AMX], &g_tables[T_AVX512]))
            amx_note = "self-check FAILED, disabled";
        else
            g_have[T_AMX] = true, amx_note = "self-check passed";
    } else if (f.amx && !kern_amx_built()) {
        amx_note = "not built";
    }
    if (g_have[T_AVX512] && kern_amx_emu_built()) {
        g_tables[T_AMX_EMU] = g_tables[T_AVX512];
        g_have[T_AMX_EMU] = kern_amx_emu_fill(&g_tables[T_AMX_EMU]);
    }
    if (f.neon && kern_neon_built())
        g_have[T_NEON] = kern_neon_fill(&g_tables[T_NEON]);

    int best = T_SCALAR;
    static const int order[] = {T_AMX, T_AVX512, T_AVX2, T_NEON};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(order); i++)
        if (g_have[order[i]]) {
            best = order[i];
            break;
        }
    const char *env = getenv("LOCO_KERNELS");
    const char *forced = "";
    if (env && *env) {
        for (int i = 0; i < T_COUNT; i++)
            if (!strcmp(env, TABLE_NAMES[i]) && g_have[i]) {
                best = i;
                forced = ", forced by LOCO_KERNELS";
            }
    }
    g_active = &g_tables[best];
#ifdef KERN_X86
    snprintf(g_describe, sizeof(g_describe), "%s (AVX2 %s, AVX-512 VNNI %s, AMX %s%s)",
             TABLE_NAMES[best], f.avx2 ? "yes" : "no", f.avx512 ? "yes" : "no", amx_note,
             forced);
#else
    LOCO_UNUSED(amx_note);
    snprintf(g_describe, sizeof(g_describe), "%s (NEON dotprod %s%s)", TABLE_NAMES[best],
             f.neon ? "yes" : "no", forced);
#endif
}

const kern_table *kern_get(void)
{
    pthread_once(&g_once, tables_init);
    return g_active;
}

const kern_table *kern_named(const char *name)
{
    pthread_once(&g_once, tables_init);
    for (int i = 0; i < T_COUNT; i++)
        if (!strcmp(name, TABLE_NAMES[i]))
            return g_have[i] ? &g_tables[i] : NULL;
    return NULL;
}

const char *kern_name(const kern_table *kt)
{
    return kt->name;
}

const char *kern_describe(void)
{
    pthread_once(&g_once, tables_init);
    return g_describe;
}

/* ---------------------------------------------------------------- types and weights */

bool kern_type_supported(ggml_type type)
{
    switch (type) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: return true;
    default: return kern_group_block_bytes(type) != 0;
    }
}

bool kern_type_packed(ggml_type type)
{
    return kern_group_block_bytes(type) != 0;
}

static bool is_a256(ggml_type t)
{
    return t == GGML_TYPE_Q4_K || t == GGML_TYPE_Q5_K || t == GGML_TYPE_Q6_K;
}

size_t kern_act_bytes(ggml_type type, int64_t k)
{
    if (!kern_type_packed(type))
        return ((size_t)k * sizeof(float) + 63) & ~(size_t)63;
    return is_a256(type) ? kern_act_a256(k).bytes : kern_act_a32(k).bytes;
}

loco_status kern_weight_init(kern_weight *w, ggml_type type, int64_t rows,
                             int64_t k, const char *what, loco_err *err)
{
    memset(w, 0, sizeof(*w));
    if (!kern_type_supported(type))
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED, "tensor '%s': type %s has no fast kernels",
                            what, ggml_type_name(type));
    const size_t bs = ggml_type_block_size(type);
    if (rows <= 0 || k <= 0 || (uint64_t)k % bs != 0)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "tensor '%s': %" PRId64 " rows of %" PRId64 " values do not fit %s blocks",
                            what, rows, k, ggml_type_name(type));
    w->type = type;
    w->rows = rows;
    w->k = k;
    w->n_groups = (rows + KERN_GROUP - 1) / KERN_GROUP;
    w->row_bytes = ggml_type_row_size(type, (uint64_t)k);
    if (kern_type_packed(type)) {
        w->group_bytes = kern_group_block_bytes(type) * ((size_t)k / bs);
        w->mem_bytes = w->group_bytes * (size_t)w->n_groups;
    } else {
        /* the rows as they are: the copy's point is the huge pages below (generation streams
         * these weights: 1.18-1.24x faster than from 4 KiB pages of the file mapping) */
        w->group_bytes = w->row_bytes * KERN_GROUP;
        w->mem_bytes = w->row_bytes * (size_t)rows;
    }
    void *p = mmap(NULL, w->mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        const size_t n = w->mem_bytes;
        memset(w, 0, sizeof(*w));
        return loco_err_set(err, LOCO_ERR_NOMEM, "tensor '%s': cannot allocate %zu bytes for "
                            "its copy for the fast kernels", what, n);
    }
#ifdef MADV_HUGEPAGE
    /* 2 MiB pages where the system allows them: fewer faults while packing, fewer TLB misses
     * while streaming the weights */
    madvise(p, w->mem_bytes, MADV_HUGEPAGE);
#endif
    w->mem = p;
    w->data = p;
    return LOCO_OK;
}

void kern_weight_release(kern_weight *w)
{
    if (!w)
        return;
    if (w->mem)
        munmap(w->mem, w->mem_bytes);
    memset(w, 0, sizeof(*w));
}

void kern_quantize(const kern_table *kt, ggml_type type, const float *x, int64_t k, void *act)
{
    LOCO_ASSERT((unsigned)type < GGML_TYPE_COUNT && kt->quant[type]);
    kt->quant[type](x, k, act);
}

void kern_matmul(const kern_table *kt, const kern_weight *w, const void *acts, size_t act_stride,
                 int64_t n_tokens, float *out, size_t out_stride, int64_t r0, int64_t r1)
{
    LOCO_ASSERT(kt->gemm[w->type] && r0 % KERN_GROUP == 0 && r0 <= r1 && r1 <= w->rows);
    LOCO_ASSERT(r1 % KERN_GROUP == 0 || r1 == w->rows);
    if (r0 == r1 || n_tokens <= 0)
        return;
    kt->gemm[w->type](w, acts, act_stride, n_tokens, out, out_stride, r0 / KERN_GROUP,
                      (r1 + KERN_GROUP - 1) / KERN_GROUP);
}

/* ---------------------------------------------------------------- AMX self-check */

/* Deterministic data; 48 rows (3 groups), 37 tokens (two tiles of 16 and a tail of 5). */
bool kern_self_check(const kern_table *amx, const kern_table *ref)
{
    static const ggml_type types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                      GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q4_K,
                                      GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    enum { ROWS = 48, K = 512, TOK = 37 };
    bool ok = true;
    float *x = malloc(sizeof(float) * K * (ROWS > TOK ? ROWS : TOK));
    uint8_t *src = malloc(ggml_type_row_size(GGML_TYPE_Q6_K, K) * ROWS * 2);
    uint8_t *acts = malloc(kern_act_a256(K).bytes * TOK + kern_act_a32(K).bytes * TOK);
    float *o1 = malloc(sizeof(float) * ROWS * TOK), *o2 = malloc(sizeof(float) * ROWS * TOK);
    if (!x || !src || !acts || !o1 || !o2) {
        ok = false;
        goto out;
    }
    uint32_t s = 12345;
    for (int i = 0; i < K * (ROWS > TOK ? ROWS : TOK); i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((int32_t)(s >> 8) - (1 << 23)) / (float)(1 << 23);
    }
    for (size_t ti = 0; ti < LOCO_ARRAY_LEN(types) && ok; ti++) {
        const ggml_type t = types[ti];
        const size_t rb = ggml_type_row_size(t, K);
        /* weights: any bytes are valid blocks except scale fields; use the random bytes but
         * keep fp16 scales finite by clearing their exponent's top bit */
        for (size_t i = 0; i < rb * ROWS; i++)
            src[i] = (uint8_t)(((uint32_t)(x[i % (K * ROWS)] * 1e6f)) * 2654435761u >> 24);
        for (int r = 0; r < ROWS; r++) {
            uint8_t *row = src + (size_t)r * rb;
            const size_t bb = ggml_type_block_bytes(t);
            for (size_t b = 0; b < rb / bb; b++) {
                uint8_t *blk = row + b * bb;
                if (t == GGML_TYPE_Q6_K)
                    blk[209] &= 0x3B;
                else
                    blk[1] &= 0x3B, blk[3] &= 0x3B;
            }
        }
        kern_weight w;
        loco_err err;
        if (kern_weight_init(&w, t, ROWS, K, "self-check", &err)) {
            ok = false;
            break;
        }
        kern_weight_pack(&w, src, 0, w.n_groups);
        const size_t ab = kern_act_bytes(t, K);
        for (int tk = 0; tk < TOK; tk++)
            ref->quant[t](x + (size_t)tk * K, K, acts + (size_t)tk * ab);
        kern_matmul(ref, &w, acts, ab, TOK, o1, ROWS, 0, ROWS);
        kern_matmul(amx, &w, acts, ab, TOK, o2, ROWS, 0, ROWS);
        ok = memcmp(o1, o2, sizeof(float) * ROWS * TOK) == 0;
        kern_weight_release(&w);
    }
out:
    free(x);
    free(src);
    free(acts);
    free(o1);
    free(o2);
    return ok;
}
