/* cmd_model_synth.c: `loco model synth`: a Qwen3-architecture GGUF with deterministic random
 * weights and a real tokenizer, in any supported type (engine/synth.h). */
#include "base/common.h"

#include <jansson.h>
#include <unistd.h>

#include "base/file.h"
#include "base/str.h"
#include "cli/cli.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "engine/synth.h"

static void synth_usage(FILE *out)
{
    fprintf(out,
            "usage: loco model synth --tokenizer tokenizer.json --out FILE.gguf [options]\n"
            "\n"
            "Writes a Qwen3-architecture model with deterministic random weights and the given\n"
            "real tokenizer (tests and benchmarks build their models with it).\n"
            "\n"
            "options:\n"
            "  --tokenizer-config F   tokenizer_config.json (its chat_template is embedded)\n"
            "  --layers N (2)  --hidden N (256)  --heads N (4)  --kv-heads N (2)\n"
            "  --head-dim N (64)  --ffn N (512)  --vocab N (151936)  --ctx-train N (40960)\n"
            "  --type T               tensor type: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1\n"
            "                         Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL IQ4_XS (F32)\n"
            "  --mix M                llama-quantize's recipe of file type M: q2_k q3_k_s\n"
            "                         q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m iq4_nl iq4_xs\n"
            "                         (e.g. q4_k_m: Q4_K, Q6_K for the output and some\n"
            "                         attn_v/ffn_down)\n"
            "  --untied               write a separate output.weight\n"
            "  --seed S               weights seed (42)\n"
            "  --boost IDS            with --untied: scale the output rows of these token ids\n"
            "                         (comma-separated) by --boost-scale (4), so the model\n"
            "                         emits them often (e.g. <tool_call> and JSON punctuation)\n"
            "  --4b                   Qwen3-4B's shape: 36 layers, hidden 2560, 32/8 heads,\n"
            "                         head dim 128, ffn 9728\n");
}

static bool u32_flag(const char *what, const char *v, uint32_t *out)
{
    long x;
    if (str_parse_long(v, 1, 1L << 24, &x)) {
        fprintf(stderr, "loco model synth: %s wants a positive integer, got '%s'\n", what, v);
        return false;
    }
    *out = (uint32_t)x;
    return true;
}

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    cli_progress *p = ctx;
    p->total = total;
    cli_progress_update(p, done);
}

int cmd_model_synth(int argc, char **argv)
{
    synth_params p;
    synth_params_default(&p);
    const char *tokenizer = NULL, *config = NULL, *out = NULL, *type = NULL, *mix = NULL;
    int32_t boost[64];
    p.boost_ids = boost;
    p.boost = 4.0f;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        bool bad = false;
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            synth_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--untied")) {
            p.tied = false;
            continue;
        }
        if (!strcmp(a, "--4b")) {
            p.n_layer = 36;
            p.n_embd = 2560;
            p.n_head = 32;
            p.n_head_kv = 8;
            p.head_dim = 128;
            p.n_ff = 9728;
            p.n_ctx_train = 262144;
            continue;
        }
        if (cli_flag_value(argc, argv, &i, "--tokenizer", &tokenizer, &bad) ||
            cli_flag_value(argc, argv, &i, "--tokenizer-config", &config, &bad) ||
            cli_flag_value(argc, argv, &i, "--out", &out, &bad) ||
            cli_flag_value(argc, argv, &i, "--type", &type, &bad) ||
            cli_flag_value(argc, argv, &i, "--mix", &mix, &bad)) {
            if (bad)
                return 2;
            continue;
        }
        struct {
            const char *flag;
            uint32_t *dst;
        } nums[] = {{"--layers", &p.n_layer},   {"--hidden", &p.n_embd},
                    {"--heads", &p.n_head},     {"--kv-heads", &p.n_head_kv},
                    {"--head-dim", &p.head_dim}, {"--ffn", &p.n_ff},
                    {"--vocab", &p.n_vocab},    {"--ctx-train", &p.n_ctx_train}};
        bool matched = false;
        for (size_t k = 0; k < LOCO_ARRAY_LEN(nums) && !matched; k++) {
            if (cli_flag_value(argc, argv, &i, nums[k].flag, &v, &bad)) {
                matched = true;
                if (bad || !u32_flag(nums[k].flag, v, nums[k].dst))
                    return 2;
            }
        }
        if (matched)
            continue;
        if (cli_flag_value(argc, argv, &i, "--boost", &v, &bad)) {
            for (const char *q = v; !bad && q && *q;) {
                char *end;
                long id = strtol(q, &end, 10);
                bad = end == q || id < 0 || id > INT32_MAX || p.n_boost == LOCO_ARRAY_LEN(boost);
                if (!bad)
                    boost[p.n_boost++] = (int32_t)id;
                q = *end == ',' ? end + 1 : end;
                bad = bad || (*end && *end != ',');
            }
            if (bad || !p.n_boost) {
                fprintf(stderr, "loco model synth: --boost wants at most 64 comma-separated ids\n");
                return 2;
            }
            continue;
        }
        if (cli_flag_value(argc, argv, &i, "--boost-scale", &v, &bad)) {
            double d;
            if (bad || str_parse_double(v, 0, 1000, &d)) {
                fprintf(stderr, "loco model synth: --boost-scale wants a number in [0, 1000]\n");
                return 2;
            }
            p.boost = (float)d;
            continue;
        }
        if (cli_flag_value(argc, argv, &i, "--seed", &v, &bad)) {
            long s;
            if (bad || str_parse_long(v, 0, LONG_MAX, &s)) {
                fprintf(stderr, "loco model synth: --seed wants a non-negative integer\n");
                return 2;
            }
            p.seed = (uint64_t)s;
            continue;
        }
        fprintf(stderr, "loco model synth: unknown option '%s' (see --help)\n", a);
        return 2;
    }
    if (p.n_boost && p.tied) {
        fprintf(stderr, "loco model synth: --boost needs --untied (a separate output.weight)\n");
        return 2;
    }
    if (!tokenizer || !out) {
        fprintf(stderr, "loco model synth: --tokenizer and --out are required (see --help)\n");
        return 2;
    }
    if (type && mix) {
        fprintf(stderr, "loco model synth: give --type or --mix, not both\n");
        return 2;
    }
    if (type && !ggml_type_from_name(type, &p.type)) {
        fprintf(stderr, "loco model synth: unknown type '%s' (supported: %s)\n", type,
                ggml_type_supported_list());
        return 2;
    }
    if (mix) {
        p.mix = ftype_mix_find(mix);
        if (!p.mix) {
            fprintf(stderr, "loco model synth: unknown mix '%s' (known: %s)\n", mix,
                    ftype_mix_names());
            return 2;
        }
    }
    int code = 1;
    buf tj, tc;
    buf_init(&tj, (size_t)256 << 20);
    buf_init(&tc, (size_t)16 << 20);
    char *tmpl = NULL;
    loco_err err;
    loco_err_clear(&err);
    if (file_read_all(tokenizer, &tj, &err)) {
        fprintf(stderr, "loco model synth: %s\n", err.msg);
        goto out;
    }
    if (config) {
        if (file_read_all(config, &tc, &err)) {
            fprintf(stderr, "loco model synth: %s\n", err.msg);
            goto out;
        }
        json_error_t je;
        json_t *root = json_loadb(buf_str(&tc), tc.len, 0, &je);
        if (!root) {
            fprintf(stderr, "loco model synth: %s: invalid JSON at line %d: %s\n", config,
                    je.line, je.text);
            goto out;
        }
        json_t *t = json_object_get(root, "chat_template");
        if (json_is_string(t))
            tmpl = strdup(json_string_value(t));
        json_decref(root);
    }
    p.tokenizer_json = buf_str(&tj);
    p.tokenizer_json_len = tj.len;
    p.chat_template = tmpl;
    cli_progress prog;
    cli_progress_init(&prog, "synth", CLI_PROGRESS_COUNT, 0);
    prog.noun = "tensors";
    p.progress = on_progress;
    p.progress_ctx = &prog;
    if (synth_write(&p, out, &err)) {
        cli_progress_clear(&prog);
        fprintf(stderr, "loco model synth: %s\n", err.msg);
        goto out;
    }
    cli_progress_finish(&prog);
    fprintf(stderr, "wrote %s\n", out);
    code = 0;
out:
    free(tmpl);
    buf_release(&tj);
    buf_release(&tc);
    return code;
}
