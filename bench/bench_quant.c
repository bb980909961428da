/* bench_quant.c: micro-benchmark of the engine's quant kernels: single-thread matrix-vector
 * (one token) and matrix-matrix (8 tokens) throughput per weight type, scalar vs AVX2, as GB/s
 * of weight bytes consumed per token (8-token columns: bytes x 8 / time). Usage: bench_quant [MiB of weights per type, default 64]. */
#include "base/common.h"

#include <math.h>

#include "engine/quant.h"

#define BENCH_N 2560        /* row length (Qwen3-4B hidden size) */
#define BENCH_TOKENS 8      /* tokens per batched call */
#define BENCH_MIN_SECONDS 0.3

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Weight bytes x tokens per second of repeated full-matrix passes; batched when tokens > 1. */
static double run(const quant_kernels *kt, ggml_type t, const void *w, int64_t rows,
                  const void *acts, size_t act_bytes, int tokens, float *out)
{
    const size_t bytes = ggml_type_row_size(t, BENCH_N) * (size_t)rows;
    int iters = 0;
    const double t0 = now_s();
    double el = 0;
    do {
        if (tokens == 1)
            kt->ops[t].matvec(w, BENCH_N, acts, out, 0, rows);
        else
            kt->ops[t].matmul(w, BENCH_N, acts, tokens, act_bytes, out, (size_t)rows, 0, rows);
        iters++;
        el = now_s() - t0;
    } while (el < BENCH_MIN_SECONDS);
    return (double)bytes * tokens * iters / el / 1e9;
}

int main(int argc, char **argv)
{
    long mib = 64;
    if (argc > 1) {
        char *end;
        mib = strtol(argv[1], &end, 10);
        if (*end || mib < 1 || mib > 4096) {
            fprintf(stderr, "usage: bench_quant [MiB 1..4096]\n");
            return 2;
        }
    }
    static const ggml_type types[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16,
                                      GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                      GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q4_K,
                                      GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    const quant_kernels *sc = quant_kernels_scalar();
    const quant_kernels *av = quant_kernels_avx2();
    printf("row length %d, %ld MiB of weights per type, 1 thread; GB/s of weights per token\n",
           BENCH_N, mib);
    printf("%-6s %12s %12s %12s %12s\n", "type", "scalar 1tok", "avx2 1tok", "scalar 8tok",
           "avx2 8tok");
    float *x = malloc(sizeof(float) * BENCH_N * BENCH_TOKENS);
    if (!x)
        return 1;
    for (int i = 0; i < BENCH_N * BENCH_TOKENS; i++)
        x[i] = sinf((float)i * 0.37f);
    for (size_t k = 0; k < LOCO_ARRAY_LEN(types); k++) {
        const ggml_type t = types[k];
        const size_t rb = ggml_type_row_size(t, BENCH_N);
        const int64_t rows = (int64_t)((size_t)mib * 1024 * 1024 / rb);
        const ggml_type at = quant_act_type(t);
        const size_t ab = ggml_type_row_size(at, BENCH_N);
        uint8_t *w = malloc(rb * (size_t)rows);
        uint8_t *a = malloc(ab * BENCH_TOKENS);
        float *out = malloc(sizeof(float) * (size_t)rows * BENCH_TOKENS);
        if (!w || !a || !out)
            return 1;
        for (int64_t r = 0; r < rows; r++)
            quant_quantize_row(t, x + (r % BENCH_TOKENS) * BENCH_N, w + (size_t)r * rb, BENCH_N);
        for (int i = 0; i < BENCH_TOKENS; i++)
            quant_quantize_act(at, x + i * BENCH_N, a + (size_t)i * ab, BENCH_N);
        const double s1 = run(sc, t, w, rows, a, ab, 1, out);
        const double a1 = av ? run(av, t, w, rows, a, ab, 1, out) : NAN;
        const double s8 = run(sc, t, w, rows, a, ab, BENCH_TOKENS, out);
        const double a8 = av ? run(av, t, w, rows, a, ab, BENCH_TOKENS, out) : NAN;
        printf("%-6s %12.2f %12.2f %12.2f %12.2f\n", ggml_type_name(t), s1, a1, s8, a8);
        free(w);
        free(a);
        free(out);
    }
    free(x);
    return 0;
}
