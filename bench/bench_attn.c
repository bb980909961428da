/* bench_attn.c: micro-benchmark of the fast path's attention (engine/attn.h) at depth: one
 * layer of Qwen3-4B shape (32 query heads, 8 KV heads, head_dim 128) whose KV cache holds
 * DEPTH random positions, a chunk of TOKENS new queries attending to all of it (causally among
 * themselves), timed over several passes on the engine's thread pool; best and median pass.
 * Seconds per pass are what a 36-layer model spends on attention for that chunk / 36; A/B
 * comparisons of attention changes take seconds here instead of minutes of `loco bench
 * --depth`. LOCO_ATTN_NO_BF16 and the other attn.c switches apply.
 * LAYERS (1) sets the layers of the cache: its blocks hold every layer's rows of 64 positions,
 * so with 36 a head's tiles lie as far apart as in the model (layer 0 is the one timed).
 * CYCLE 1 fills every layer and times all of them in turn, per layer: each layer's tiles come
 * from memory, not from L3, as in the model (one layer timed over and over is partly served from
 * L3 at 16K: 1.4 ms a layer there against 2.7 ms cycling, decoding, 2 threads).
 *   bench_attn [depth (16384)] [tokens (512)] [threads (all)] [f16|q8_0 (f16)] [passes (7)]
 *              [layers (1)] [cycle 0|1 (0)]  */
#include "base/common.h"

#include <math.h>

#include "engine/attn.h"
#include "engine/kv.h"
#include "engine/quant.h"
#include "engine/threadpool.h"

#define HEADS 32
#define KV_HEADS 8
#define DIM 128

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9E3779B97F4A7C15u;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static int cmp_d(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const long depth = argc > 1 ? strtol(argv[1], NULL, 10) : 16384;
    const long tokens = argc > 2 ? strtol(argv[2], NULL, 10) : 512;
    const long threads = argc > 3 ? strtol(argv[3], NULL, 10) : tpool_default_threads();
    const char *tname = argc > 4 ? argv[4] : "f16";
    const long passes = argc > 5 ? strtol(argv[5], NULL, 10) : 7;
    const long layers = argc > 6 ? strtol(argv[6], NULL, 10) : 1;
    const bool cycle = argc > 7 && strcmp(argv[7], "1") == 0;
    const ggml_type type = strcmp(tname, "q8_0") == 0 ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
    if (depth < 0 || depth > 1 << 20 || tokens < 1 || tokens > 4096 || threads < 1 ||
        threads > TPOOL_MAX_THREADS || passes < 1 || passes > 1000 || layers < 1 || layers > 128 ||
        (strcmp(tname, "f16") != 0 && strcmp(tname, "q8_0") != 0)) {
        fprintf(stderr, "usage: bench_attn [depth] [tokens 1..4096] [threads] [f16|q8_0] [passes] "
                        "[layers 1..128] [cycle 0|1]\n");
        return 2;
    }
    const uint32_t n = (uint32_t)(depth + tokens);
    loco_err err = {0};
    kv_params kp = {(uint32_t)layers, KV_HEADS, DIM, type, (n + KV_BLOCK - 1) / KV_BLOCK + 1, 0};
    kv_cache *c = NULL;
    kv_seq *s = NULL;
    tpool *pool = threads > 1 ? tpool_new((int32_t)threads, &err) : NULL;
    attn_ctx *a = NULL;
    if (kv_cache_new(&kp, &c, &err) || kv_seq_new(c, n, &s, &err) ||
        kv_seq_reserve(s, n, &err) || (threads > 1 && !pool) ||
        attn_new(HEADS, KV_HEADS, DIM, (uint32_t)threads, (uint32_t)tokens, 1, &a, &err)) {
        fprintf(stderr, "bench_attn: %s\n", err.msg);
        return 1;
    }
    const size_t rb = kv_seq_row_bytes(s);
    float row[DIM];
    for (uint32_t p = 0; p < n; p++)
        for (uint32_t h = 0; h < KV_HEADS; h++)
            for (int kind = 0; kind < 2; kind++) {
                for (uint32_t i = 0; i < DIM; i++)
                    row[i] = 2.0f * frand();
                uint8_t *dst = (kind ? kv_seq_v(s, 0, h, p / KV_BLOCK)
                                     : kv_seq_k(s, 0, h, p / KV_BLOCK)) +
                               (p % KV_BLOCK) * rb;
                if (type == GGML_TYPE_F16)
                    for (uint32_t i = 0; i < DIM; i++)
                        ((uint16_t *)dst)[i] = fp16_from_f32(row[i]);
                else
                    quant_quantize_act(GGML_TYPE_Q8_0, row, dst, DIM);
            }
    if (cycle) /* every layer holds layer 0's rows */
        for (long L = 1; L < layers; L++)
            for (uint32_t b = 0; b < (n + KV_BLOCK - 1) / KV_BLOCK; b++)
                for (uint32_t h = 0; h < KV_HEADS; h++) {
                    memcpy(kv_seq_k(s, (uint32_t)L, h, b), kv_seq_k(s, 0, h, b), rb * KV_BLOCK);
                    memcpy(kv_seq_v(s, (uint32_t)L, h, b), kv_seq_v(s, 0, h, b), rb * KV_BLOCK);
                }
    int32_t *ids = calloc(n, sizeof(int32_t));
    float *q = malloc((size_t)tokens * HEADS * DIM * sizeof(float));
    float *o = malloc((size_t)tokens * HEADS * DIM * sizeof(float));
    double *t = malloc((size_t)passes * sizeof(double));
    if (!ids || !q || !o || !t) {
        fprintf(stderr, "bench_attn: out of memory\n");
        return 1;
    }
    kv_seq_commit(s, ids, n);
    for (size_t i = 0; i < (size_t)tokens * HEADS * DIM; i++)
        q[i] = 1.5f * frand();
    attn_seg seg = {s, q, o, (uint32_t)tokens, (uint32_t)depth};
    attn_forward(a, pool, 0, &seg, 1); /* warm: pages touched, scratch sized */
    for (long i = 0; i < passes; i++) {
        const double t0 = now_s();
        for (long L = 0; L < (cycle ? layers : 1); L++)
            attn_forward(a, pool, (uint32_t)L, &seg, 1);
        t[i] = (now_s() - t0) / (double)(cycle ? layers : 1);
    }
    qsort(t, (size_t)passes, sizeof(double), cmp_d);
    /* QK and PV products: each query sees depth + its index + 1 positions */
    const double macs =
        2.0 * HEADS * DIM * ((double)tokens * (double)depth + (double)tokens * (tokens + 1) / 2);
    printf("{\"depth\":%ld,\"tokens\":%ld,\"threads\":%ld,\"layers\":%ld,\"cycle\":%s,"
           "\"kv_type\":\"%s\",\"bf16\":%s,"
           "\"best_ms\":%.3f,\"median_ms\":%.3f,\"gmacs\":%.1f,\"x36_s\":%.3f}\n",
           depth, tokens, threads, layers, cycle ? "true" : "false", tname,
           attn_uses_bf16(a) ? "true" : "false", t[0] * 1e3,
           t[passes / 2] * 1e3, macs / t[0] / 1e9, t[0] * 36);
    free(t);
    free(o);
    free(q);
    free(ids);
    attn_free(a);
    kv_seq_free(s);
    kv_cache_free(c);
    tpool_free(pool);
    return 0;
}
