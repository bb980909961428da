/* bench_kernels.c: micro-benchmark of the fast kernels (engine/kernels) against the parity
 * path's kernels (quant.h / vecmath.h) on one thread: packing speed, and matmul throughput for
 * 1 token (generation: GB/s of weights) and a batch (prompt: GMAC/s), measured in thread CPU
 * time so that other processes on a shared machine disturb it less.
 *   bench_kernels [types (q4_K,q8_0,...|all)] [tokens (64)] [rows (2048)] [k (2560)]   */
#include "base/common.h"

#include <math.h>

#include "engine/kernels/kernels.h"
#include "engine/quant.h"
#include "engine/vecmath.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define MIN_S 0.4

int main(int argc, char **argv)
{
    const char *types = argc > 1 ? argv[1] : "all";
    const long nt = argc > 2 ? strtol(argv[2], NULL, 10) : 64;
    const long rows = argc > 3 ? strtol(argv[3], NULL, 10) : 2048;
    const long k = argc > 4 ? strtol(argv[4], NULL, 10) : 2560;
    if (nt < 1 || nt > 4096 || rows < 16 || k < 256 || k % 256) {
        fprintf(stderr, "usage: bench_kernels [types] [tokens 1..4096] [rows >= 16] [k, a multiple of 256]\n");
        return 2;
    }
    static const ggml_type all[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q8_0, GGML_TYPE_Q6_K, GGML_TYPE_Q5_K,
                                    GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                                    GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_F32};
    const kern_table *kt = kern_get();
    const vm_profile *prof = vm_profile_get();
    printf("kernels: %s; parity profile %s; %ld rows x %ld, %ld tokens; 1 thread, CPU time\n",
           kern_describe(), prof->name, rows, k, nt);
    printf("%-6s %10s %12s %12s %12s %12s %8s\n", "type", "pack GB/s", "fast gen GB/s",
           "par gen GB/s", "fast pp GMAC", "par pp GMAC", "pp x");
    float *x = malloc(sizeof(float) * (size_t)k * (size_t)nt);
    for (long i = 0; i < k * nt; i++)
        x[i] = sinf((float)i * 0.37f) * (1.0f + (float)(i % 7));
    for (size_t ti = 0; ti < LOCO_ARRAY_LEN(all); ti++) {
        const ggml_type t = all[ti];
        char lname[16];
        snprintf(lname, sizeof(lname), "%s", ggml_type_name(t));
        for (char *p = lname; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        if (strcmp(types, "all") && !strstr(types, lname))
            continue;
        const size_t rb = ggml_type_row_size(t, (uint64_t)k);
        uint8_t *w = malloc(rb * (size_t)rows);
        for (long r = 0; r < rows; r++)
            quant_quantize_row(t, x + (size_t)(r % nt) * (size_t)k, w + (size_t)r * rb, k);
        kern_weight kw;
        loco_err err;
        if (kern_weight_init(&kw, t, rows, k, "bench", &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double t0 = cpu_s();
        int it = 0;
        do {
            kern_weight_pack(&kw, w, 0, kw.n_groups);
            it++;
        } while (cpu_s() - t0 < MIN_S && kern_type_packed(t));
        const double pack = kern_type_packed(t) ? (double)rb * rows * it / (cpu_s() - t0) / 1e9 : 0;
        /* fast */
        const size_t ab = kern_act_bytes(t, k);
        uint8_t *acts = aligned_alloc(64, ab * (size_t)nt);
        for (long i = 0; i < nt; i++)
            kern_quantize(kt, t, x + (size_t)i * (size_t)k, k, acts + (size_t)i * ab);
        float *out = malloc(sizeof(float) * (size_t)rows * (size_t)nt);
        double res[4];
        for (int pass = 0; pass < 2; pass++) {
            const long n = pass ? nt : 1;
            t0 = cpu_s();
            it = 0;
            do {
                kern_matmul(kt, &kw, acts, ab, n, out, (size_t)rows, 0, rows);
                it++;
            } while (cpu_s() - t0 < MIN_S);
            const double el = cpu_s() - t0;
            res[pass] = pass ? (double)rows * k * n * it / el / 1e9 : (double)rb * rows * it / el / 1e9;
        }
        /* parity */
        const ggml_type at = quant_act_type(t);
        const size_t pab = (ggml_type_row_size(at, (uint64_t)k) + 63) & ~(size_t)63;
        uint8_t *pacts = aligned_alloc(64, pab * (size_t)nt);
        for (long i = 0; i < nt; i++)
            quant_quantize_act(at, x + (size_t)i * (size_t)k, pacts + (size_t)i * pab, k);
        for (int pass = 0; pass < 2; pass++) {
            const long n = pass ? nt : 1;
            t0 = cpu_s();
            it = 0;
            do {
                if (vm_uses_amx(vm_profile_named("amx"), t))
                    vm_amx_matmul(t, w, k, pacts, n, pab, out, (size_t)rows, 0, rows);
                else
                    quant_matmul(t, w, rows, k, pacts, n, pab, out, (size_t)rows, 0, rows);
                it++;
            } while (cpu_s() - t0 < MIN_S);
            const double el = cpu_s() - t0;
            res[2 + pass] = pass ? (double)rows * k * n * it / el / 1e9 : (double)rb * rows * it / el / 1e9;
        }
        printf("%-6s %10.2f %12.2f %12.2f %12.2f %12.2f %8.2f\n", lname, pack, res[0], res[2], res[1],
               res[3], res[1] / res[3]);
        fflush(stdout);
        kern_weight_release(&kw);
        free(w);
        free(acts);
        free(pacts);
        free(out);
    }
    free(x);
    return 0;
}
