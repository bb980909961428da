/* cmd_bench.c: `loco bench`: the engine's speed on one model file: prompt processing of --pp
 * tokens placed after --depth tokens already in the KV cache, then --tg generated tokens
 * (greedy), time to first token and peak resident memory, as a line or one JSON object.
 * bench/run_engine_bench.sh runs it next to llama.cpp. */
#include "base/common.h"

#include <jansson.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/log.h"
#include "base/str.h"
#include "cli/cli.h"
#include "cli/options.h"
#include "engine/ggml_types.h"
#include "engine/gguf.h"
#include "engine/kernels/kernels.h"
#include "engine/qwen3.h"
#include "engine/threadpool.h"

static void bench_usage(FILE *out)
{
    fprintf(out,
            "usage: loco bench --model F.gguf [options]\n"
            "\n"
            "Measures the engine on F: prompt processing of --pp tokens placed after --depth\n"
            "tokens already in the KV cache, then --tg generated tokens (greedy, one forward\n"
            "pass each). Token ids are fixed ordinary ids, so runs are comparable.\n"
            "\n"
            "options:\n"
            "  --pp N         prompt tokens (512)\n"
            "  --tg N         generated tokens (128)\n"
            "  --depth N[,N]  tokens in the KV cache before the prompt (0); a list measures at\n"
            "                 each depth in turn in one context (the cache grows from one to the\n"
            "                 next; with --json, one object per depth, one per line)\n"
            "  --threads N    threads (all cores)\n"
            "  --batch N      prompt tokens per forward batch (512)\n"
            "  --kv-type T    KV cache type: f16 (default, like llama.cpp) or q8_0 (53%% of the\n"
            "                 memory; the fast path only)\n"
            "  --parity       llama.cpp's arithmetic bit for bit instead of the fast path\n"
            "  --json         one JSON object: pp_tps, tg_tps, ttft_s, peak_rss_bytes, depth,\n"
            "                 threads, kernel_path, load_s, depth_s, file_bytes, kv_bytes, ...\n");
}

/* The i-th benchmark token: spread over ordinary (non-special) ids, as the script does. */
static int32_t bench_token(uint32_t i, uint32_t vocab)
{
    const uint32_t v = 1000u + (uint32_t)(((uint64_t)i * 7919u) % 90000u);
    return (int32_t)(v % vocab);
}

static int32_t argmax(const float *x, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

static uint64_t peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru))
        return 0;
    return (uint64_t)ru.ru_maxrss * 1024u; /* Linux reports KiB */
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &res) != 2)
        res = 0;
    fclose(f);
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Prints one measurement (a line, or one JSON object). */
static loco_status report(bool json, const gguf *g, const qwen3_model *m, const tpool *pool,
                          const qwen3_ctx *ctx, bool parity, qwen3_kv_type kvt, long pp, long tg, long depth,
                          double load_s, double depth_s, double pp_s, double tg_s, loco_err *err)
{
    const double pp_tps = pp && pp_s > 0 ? (double)pp / pp_s : 0;
    const double tg_tps = tg && tg_s > 0 ? (double)tg / tg_s : 0;
    const uint64_t kvd = (uint64_t)m->hp.n_head_kv * m->hp.head_dim;
    /* K and V of every position used, rows of the cache's type as kv.c sizes them */
    const uint64_t row = ggml_type_row_size(kvt == QWEN3_KV_Q8_0 ? GGML_TYPE_Q8_0 : GGML_TYPE_F16, kvd);
    const uint64_t kv_bytes = 2u * (uint64_t)m->hp.n_layer * row * (uint64_t)(depth + pp + tg);
    const uint64_t peak = peak_rss_bytes(), now = rss_bytes(), file = gguf_file_size(g);
    if (json) {
        json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:i,s:b,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:I,s:I,s:I,"
                              "s:I,s:s,s:s}",
                              "model", gguf_name(g), "pp", (json_int_t)pp, "tg", (json_int_t)tg,
                              "depth", (json_int_t)depth, "threads", (int)tpool_threads(pool),
                              "parity", parity, "pp_tps", pp_tps, "tg_tps", tg_tps, "ttft_s",
                              pp_s, "pp_s", pp_s, "tg_s", tg_s, "depth_s", depth_s, "load_s",
                              load_s, "peak_rss_bytes", (json_int_t)peak, "rss_bytes",
                              (json_int_t)now, "file_bytes", (json_int_t)file, "kv_bytes",
                              (json_int_t)kv_bytes, "kernel_path", qwen3_ctx_kernels(ctx),
                              "kv_type", qwen3_kv_type_name(kvt));
        char *text = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
        json_decref(o);
        if (!text)
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        printf("%s\n", text);
        free(text);
    } else {
        printf("pp %ld @ depth %ld: %.2f tok/s (%.2f s) | tg %ld: %.2f tok/s | ttft %.3f s | "
               "peak rss %.2f GiB (file %.2f GiB + kv %.3f GiB)\n",
               pp, depth, pp_tps, pp_s, tg, tg_tps, pp_s, (double)peak / (1 << 30),
               (double)file / (1 << 30), (double)kv_bytes / (1 << 30));
    }
    fflush(stdout);
    return LOCO_OK;
}

int cmd_bench(int argc, char **argv)
{
    const char *model = NULL, *depth_arg = "0", *kv_type = "f16";
    long pp = 512, tg = 128, threads = 0, batch = 512;
    long depths[16];
    int n_depths = 0;
    bool parity = false, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        bool bad = false;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--parity")) {
            parity = true;
            continue;
        }
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (cli_flag_value(argc, argv, &i, "--model", &model, &bad) ||
            cli_flag_value(argc, argv, &i, "--depth", &depth_arg, &bad) ||
            cli_flag_value(argc, argv, &i, "--kv-type", &kv_type, &bad)) {
            if (bad)
                return 2;
            continue;
        }
        struct {
            const char *f;
            long *dst, min, max;
        } longs[] = {{"--pp", &pp, 0, 1 << 20},          {"--tg", &tg, 0, 1 << 20},
                     {"--threads", &threads, 1, 512},
                     {"--batch", &batch, 1, 1 << 16}};
        bool matched = false;
        for (size_t k = 0; k < LOCO_ARRAY_LEN(longs) && !matched; k++) {
            if (cli_flag_value(argc, argv, &i, longs[k].f, &v, &bad)) {
                matched = true;
                if (bad || str_parse_long(v, longs[k].min, longs[k].max, longs[k].dst)) {
                    fprintf(stderr, "loco bench: %s wants an integer in [%ld, %ld]\n", longs[k].f,
                            longs[k].min, longs[k].max);
                    return 2;
                }
            }
        }
        if (!matched) {
            fprintf(stderr, "loco bench: unknown option '%s' (see loco bench --help)\n", a);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "loco bench: --model F.gguf is required (see --help)\n");
        return 2;
    }
    for (const char *d = depth_arg; *d;) {
        char num[32];
        size_t len = strcspn(d, ",");
        if (len == 0 || len >= sizeof(num) || n_depths == (int)LOCO_ARRAY_LEN(depths)) {
            fprintf(stderr, "loco bench: --depth wants up to 16 comma-separated counts\n");
            return 2;
        }
        memcpy(num, d, len);
        num[len] = 0;
        if (str_parse_long(num, 0, 1 << 24, &depths[n_depths]) ||
            (n_depths && depths[n_depths] < depths[n_depths - 1])) {
            fprintf(stderr, "loco bench: --depth wants counts in 0..16777216, ascending\n");
            return 2;
        }
        n_depths++;
        d += len + (d[len] == ',');
    }
    qwen3_kv_type kvt;
    if (!qwen3_kv_type_from_name(kv_type, &kvt)) {
        fprintf(stderr, "loco bench: --kv-type is " QWEN3_KV_TYPE_NAMES ", got '%s'\n", kv_type);
        return 2;
    }
    if (kvt != QWEN3_KV_F16 && parity) {
        fprintf(stderr, "loco bench: --parity needs the f16 KV cache (llama.cpp's default)\n");
        return 2;
    }
    if (pp + tg == 0) {
        fprintf(stderr, "loco bench: nothing to measure (--pp and --tg are 0)\n");
        return 2;
    }

    int code = 1;
    loco_err err;
    loco_err_clear(&err);
    gguf *g = NULL;
    qwen3_model *m = NULL;
    qwen3_ctx *ctx = NULL;
    tpool *pool = NULL;
    float *logits = NULL;
    int32_t *ids = NULL;
    const double t_start = clock_now_ms();
    if (gguf_open(model, &g, &err) || gguf_check_supported(g, &err) || qwen3_load(g, &m, &err))
        goto fail;
    pool = tpool_new(threads ? (int32_t)threads : tpool_default_threads(), &err);
    if (!pool)
        goto fail;
    const long max_depth = depths[n_depths - 1];
    const uint32_t n_ctx = (uint32_t)(max_depth + (pp + tg) * n_depths + 1);
    qwen3_ctx_opts o;
    memset(&o, 0, sizeof(o));
    o.n_ctx = n_ctx;
    o.n_batch = (uint32_t)batch;
    o.pool = pool;
    o.parity = parity;
    o.kv_type = kvt;
    if (qwen3_ctx_new_opts(m, &o, &ctx, &err))
        goto fail;
    const double t_loaded = clock_now_ms();
    const double load_s = (t_loaded - t_start) / 1000;
    const uint32_t V = m->hp.n_vocab;
    logits = malloc((size_t)V * sizeof(float));
    ids = malloc((size_t)n_ctx * sizeof(int32_t));
    if (!logits || !ids) {
        loco_err_set(&err, LOCO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < n_ctx; i++)
        ids[i] = bench_token(i, V);
    if (!json)
        fprintf(stderr, "loco bench: %s, %ld threads, kernels %s, load %.2f s\n", gguf_name(g),
                (long)tpool_threads(pool), qwen3_ctx_kernels(ctx), load_s);
    for (int di = 0; di < n_depths; di++) {
        /* fill the cache up to the depth (timed apart, not part of pp) */
        const double t_d0 = clock_now_ms();
        uint32_t past = qwen3_ctx_past(ctx);
        if ((long)past < depths[di] &&
            qwen3_eval(ctx, ids + past, (uint32_t)(depths[di] - past), NULL, &err))
            goto fail;
        const double t_d1 = clock_now_ms();
        const long depth = (long)qwen3_ctx_past(ctx);
        /* the prompt, then the first token */
        int32_t next = ids[depth];
        if (pp && qwen3_eval(ctx, ids + depth, (uint32_t)pp, logits, &err))
            goto fail;
        if (pp)
            next = argmax(logits, V);
        const double t_p1 = clock_now_ms();
        /* generation: tg forward passes of one token */
        for (long i = 0; i < tg; i++) {
            if (qwen3_eval(ctx, &next, 1, logits, &err))
                goto fail;
            next = argmax(logits, V);
        }
        const double t_g1 = clock_now_ms();
        if (report(json, g, m, pool, ctx, parity, kvt, pp, tg, depth, load_s, (t_d1 - t_d0) / 1000,
                   (t_p1 - t_d1) / 1000, (t_g1 - t_p1) / 1000, &err))
            goto fail;
    }
    code = 0;
    goto out;
fail:
    fprintf(stderr, "loco bench: %s\n", err.msg);
out:
    free(logits);
    free(ids);
    qwen3_ctx_free(ctx);
    qwen3_free(m);
    tpool_free(pool);
    gguf_close(g);
    return code;
}
