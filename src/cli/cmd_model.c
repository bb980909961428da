/* cmd_model.c: `loco model <sub>`: tools for GGUF model files. Subcommands live in the table
 * below ({name, function, help}); `info` prints what a file holds (engine/gguf.h); `list`
 * (cmd_model_list.c) what the model store holds. */
#include "base/common.h"

#include <jansson.h>
#include <math.h>

#include "base/models.h"
#include "base/str.h"
#include "base/utf8.h"
#include "cli/cli.h"
#include "engine/gguf.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} model_sub;

static int model_info(int argc, char **argv);

static const model_sub model_subs[] = {
    {"list", cmd_model_list, "list the models in the model store (pulled with `loco pull`)"},
    {"info", model_info, "print a GGUF file's architecture, sizes, tensor types, tokenizer "
                         "and chat template summary"},
    {"synth", cmd_model_synth, "write a Qwen3 GGUF with deterministic random weights and a "
                               "real tokenizer"},
};

static void model_usage(FILE *out)
{
    fprintf(out, "usage: loco model <subcommand> [options]\n\nsubcommands:\n");
    for (size_t i = 0; i < LOCO_ARRAY_LEN(model_subs); i++)
        fprintf(out, "  %-8s %s\n", model_subs[i].name, model_subs[i].help);
    fprintf(out, "\nRun 'loco model <subcommand> --help' for its options.\n");
}

int cmd_model(int argc, char **argv)
{
    if (argc < 2) {
        model_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        model_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < LOCO_ARRAY_LEN(model_subs); i++) {
        if (!strcmp(model_subs[i].name, argv[1]))
            return model_subs[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "loco model: unknown subcommand '%s'\n\n", argv[1]);
    model_usage(stderr);
    return 2;
}

/* ---------------------------------------------------------------------------------------
 * model info */

/* What `info` reports; absent metadata is -1 / NULL. */
typedef struct {
    const char *arch, *name, *tok_model, *tok_pre;
    int64_t file_type;
    uint64_t params, n_tensors;
    int64_t ctx, embd, layers, heads, kv_heads, head_dim, ffn;
    bool head_dim_derived;
    double rope_base, rms_eps; /* NAN when absent */
    int64_t vocab, merges, bos, eos;
    const char *bos_text, *eos_text; /* pointers into the mapping, not NUL-terminated */
    size_t bos_len, eos_len;
    int64_t template_len;
    bool template_tools, template_tool_call;
    uint64_t type_count[GGML_TYPE_COUNT];
    uint64_t type_bytes[GGML_TYPE_COUNT];
} model_facts;

static const char *file_type_name(int64_t ft)
{
    static const char *const names[] = {
        [0] = "F32",      [1] = "F16",     [2] = "Q4_0",    [3] = "Q4_1",    [7] = "Q8_0",
        [8] = "Q5_0",     [9] = "Q5_1",    [10] = "Q2_K",   [11] = "Q3_K_S", [12] = "Q3_K_M",
        [13] = "Q3_K_L",  [14] = "Q4_K_S", [15] = "Q4_K_M", [16] = "Q5_K_S", [17] = "Q5_K_M",
        [18] = "Q6_K",    [19] = "IQ2_XXS", [20] = "IQ2_XS", [21] = "Q2_K_S", [22] = "IQ3_XS",
        [23] = "IQ3_XXS", [24] = "IQ1_S",  [25] = "IQ4_NL", [26] = "IQ3_S",  [27] = "IQ3_M",
        [28] = "IQ2_S",   [29] = "IQ2_M",  [30] = "IQ4_XS", [31] = "IQ1_M",  [32] = "BF16",
        [36] = "TQ1_0",   [37] = "TQ2_0",  [38] = "MXFP4_MOE",
    };
    if (ft < 0 || (size_t)ft >= LOCO_ARRAY_LEN(names) || !names[ft])
        return "unknown";
    return names[ft];
}

static int64_t meta_int(const gguf *g, const char *arch, const char *suffix)
{
    char key[256];
    if (arch)
        snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    else
        snprintf(key, sizeof(key), "%s", suffix);
    int64_t v;
    return gguf_get_i64(g, gguf_find_key(g, key), &v) ? v : -1;
}

static double meta_f64(const gguf *g, const char *arch, const char *suffix)
{
    char key[256];
    snprintf(key, sizeof(key), "%s.%s", arch ? arch : "", suffix);
    double v;
    return gguf_get_f64(g, gguf_find_key(g, key), &v) ? v : NAN;
}

static const char *meta_str(const gguf *g, const char *key)
{
    return gguf_get_str(g, gguf_find_key(g, key), NULL);
}

static int64_t arr_count(const gguf *g, const char *key)
{
    const gguf_arr *a = gguf_get_arr(g, gguf_find_key(g, key));
    return a ? (int64_t)a->count : -1;
}

static const char *token_text(const gguf *g, int64_t id, size_t *out_len)
{
    const gguf_arr *a = gguf_get_arr(g, gguf_find_key(g, "tokenizer.ggml.tokens"));
    if (!a || id < 0)
        return NULL;
    return gguf_arr_get_str(a, (uint64_t)id, out_len);
}

static void collect_tensors(const gguf *g, model_facts *f)
{
    f->n_tensors = gguf_tensor_count(g);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        f->params += (uint64_t)t->n_elements;
        f->type_count[t->type]++;
        f->type_bytes[t->type] += t->nbytes;
    }
}

static void collect_template(const gguf *g, model_facts *f)
{
    size_t len;
    const char *tpl = gguf_get_str(g, gguf_find_key(g, "tokenizer.chat_template"), &len);
    f->template_len = tpl ? (int64_t)len : -1;
    if (!tpl)
        return;
    f->template_tools = str_memmem(tpl, len, "tools") != NULL;
    f->template_tool_call = str_memmem(tpl, len, "<tool_call>") != NULL;
}

static void collect_facts(const gguf *g, model_facts *f)
{
    memset(f, 0, sizeof(*f));
    f->arch = meta_str(g, "general.architecture");
    f->name = meta_str(g, "general.name");
    f->file_type = meta_int(g, NULL, "general.file_type");
    collect_tensors(g, f);
    const char *a = f->arch;
    f->ctx = a ? meta_int(g, a, "context_length") : -1;
    f->embd = a ? meta_int(g, a, "embedding_length") : -1;
    f->layers = a ? meta_int(g, a, "block_count") : -1;
    f->heads = a ? meta_int(g, a, "attention.head_count") : -1;
    f->kv_heads = a ? meta_int(g, a, "attention.head_count_kv") : -1;
    f->head_dim = a ? meta_int(g, a, "attention.key_length") : -1;
    if (f->head_dim < 0 && f->embd > 0 && f->heads > 0) {
        f->head_dim = f->embd / f->heads;
        f->head_dim_derived = true;
    }
    f->ffn = a ? meta_int(g, a, "feed_forward_length") : -1;
    f->rope_base = a ? meta_f64(g, a, "rope.freq_base") : NAN;
    f->rms_eps = a ? meta_f64(g, a, "attention.layer_norm_rms_epsilon") : NAN;
    f->tok_model = meta_str(g, "tokenizer.ggml.model");
    f->tok_pre = meta_str(g, "tokenizer.ggml.pre");
    f->vocab = arr_count(g, "tokenizer.ggml.tokens");
    f->merges = arr_count(g, "tokenizer.ggml.merges");
    f->bos = meta_int(g, NULL, "tokenizer.ggml.bos_token_id");
    f->eos = meta_int(g, NULL, "tokenizer.ggml.eos_token_id");
    f->bos_text = token_text(g, f->bos, &f->bos_len);
    f->eos_text = token_text(g, f->eos, &f->eos_len);
    collect_template(g, f);
}

static void human_bytes(char *out, size_t n, uint64_t bytes)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024 && u + 1 < LOCO_ARRAY_LEN(units)) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, n, "%" PRIu64 " B", bytes);
    else
        snprintf(out, n, "%.2f %s", v, units[u]);
}

static void human_count(char *out, size_t n, uint64_t c)
{
    if (c >= 1000000000)
        snprintf(out, n, "%.2fB", (double)c / 1e9);
    else if (c >= 1000000)
        snprintf(out, n, "%.2fM", (double)c / 1e6);
    else if (c >= 1000)
        snprintf(out, n, "%.2fK", (double)c / 1e3);
    else
        snprintf(out, n, "%" PRIu64, c);
}

static void print_int(const char *label, int64_t v, const char *note)
{
    if (v < 0)
        printf("%-16s -\n", label);
    else
        printf("%-16s %" PRId64 "%s\n", label, v, note);
}

static void print_f64(const char *label, double v)
{
    if (isnan(v))
        printf("%-16s -\n", label);
    else
        printf("%-16s %g\n", label, v);
}

/* Prints a token's text with control bytes and quotes escaped. */
static void print_token(const char *label, int64_t id, const char *s, size_t n)
{
    if (id < 0) {
        printf("%-16s -\n", label);
        return;
    }
    printf("%-16s %" PRId64, label, id);
    if (s) {
        printf(" '");
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\')
                printf("\\x%02x", c);
            else
                putchar(c);
        }
        printf("'");
    }
    printf("\n");
}

static void print_types(const model_facts *f)
{
    printf("%-16s %" PRIu64 "\n", "tensors", f->n_tensors);
    for (uint32_t t = 0; t < GGML_TYPE_COUNT; t++) {
        if (!f->type_count[t])
            continue;
        char hb[32];
        human_bytes(hb, sizeof(hb), f->type_bytes[t]);
        printf("  %-8s %6" PRIu64 " %-7s %12s%s\n", ggml_type_name(t), f->type_count[t],
               f->type_count[t] == 1 ? "tensor" : "tensors", hb,
               ggml_type_supported(t) ? "" : "  (not supported by loco)");
    }
}

static void print_text(const gguf *g, const model_facts *f)
{
    char hb[32], hc[32];
    human_bytes(hb, sizeof(hb), gguf_file_size(g));
    human_count(hc, sizeof(hc), f->params);
    printf("%-16s %s\n", "file", gguf_name(g));
    printf("%-16s %s (%" PRIu64 " bytes), GGUF v%u\n", "size", hb, gguf_file_size(g),
           gguf_version(g));
    printf("%-16s %s\n", "architecture", f->arch ? f->arch : "-");
    printf("%-16s %s\n", "name", f->name ? f->name : "-");
    if (f->file_type < 0)
        printf("%-16s -\n", "file type");
    else
        printf("%-16s %s (%" PRId64 ")\n", "file type", file_type_name(f->file_type),
               f->file_type);
    printf("%-16s %s (%" PRIu64 ")\n", "parameters", hc, f->params);
    print_types(f);
    print_int("context length", f->ctx, "");
    print_int("embedding", f->embd, "");
    print_int("layers", f->layers, "");
    print_int("heads", f->heads, "");
    print_int("kv heads", f->kv_heads, "");
    print_int("head dim", f->head_dim, f->head_dim_derived ? " (embedding / heads)" : "");
    print_int("ffn", f->ffn, "");
    print_f64("rope base", f->rope_base);
    print_f64("rms eps", f->rms_eps);
    printf("%-16s %s (pre %s)\n", "tokenizer", f->tok_model ? f->tok_model : "-",
           f->tok_pre ? f->tok_pre : "-");
    print_int("vocab", f->vocab, "");
    print_int("merges", f->merges, "");
    print_token("bos", f->bos, f->bos_text, f->bos_len);
    print_token("eos", f->eos, f->eos_text, f->eos_len);
    if (f->template_len < 0)
        printf("%-16s -\n", "chat template");
    else
        printf("%-16s %" PRId64 " bytes, tools: %s, <tool_call>: %s\n", "chat template",
               f->template_len, f->template_tools ? "yes" : "no",
               f->template_tool_call ? "yes" : "no");
}

static json_t *j_int(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *j_str(const char *s)
{
    return s && utf8_valid(s, strlen(s)) ? json_string(s) : json_null();
}

static json_t *j_strn(const char *s, size_t n)
{
    return s && utf8_valid(s, n) ? json_stringn(s, n) : json_null();
}

static json_t *j_f64(double v)
{
    return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

static json_t *json_types(const model_facts *f)
{
    json_t *types = json_object();
    for (uint32_t t = 0; t < GGML_TYPE_COUNT; t++) {
        if (!f->type_count[t])
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "count", json_integer((json_int_t)f->type_count[t]));
        json_object_set_new(o, "bytes", json_integer((json_int_t)f->type_bytes[t]));
        json_object_set_new(o, "supported", json_boolean(ggml_type_supported(t)));
        json_object_set_new(types, ggml_type_name(t), o);
    }
    return types;
}

static int print_json(const gguf *g, const model_facts *f)
{
    json_t *o = json_object();
    json_object_set_new(o, "file", j_str(gguf_name(g)));
    json_object_set_new(o, "file_size", json_integer((json_int_t)gguf_file_size(g)));
    json_object_set_new(o, "gguf_version", json_integer(gguf_version(g)));
    json_object_set_new(o, "architecture", j_str(f->arch));
    json_object_set_new(o, "name", j_str(f->name));
    json_object_set_new(o, "file_type", j_int(f->file_type));
    json_object_set_new(o, "file_type_name",
                        f->file_type < 0 ? json_null() : json_string(file_type_name(f->file_type)));
    json_object_set_new(o, "parameters", json_integer((json_int_t)f->params));
    json_object_set_new(o, "tensor_count", json_integer((json_int_t)f->n_tensors));
    json_object_set_new(o, "tensor_types", json_types(f));
    json_object_set_new(o, "context_length", j_int(f->ctx));
    json_object_set_new(o, "embedding_length", j_int(f->embd));
    json_object_set_new(o, "block_count", j_int(f->layers));
    json_object_set_new(o, "head_count", j_int(f->heads));
    json_object_set_new(o, "head_count_kv", j_int(f->kv_heads));
    json_object_set_new(o, "head_dim", j_int(f->head_dim));
    json_object_set_new(o, "feed_forward_length", j_int(f->ffn));
    json_object_set_new(o, "rope_freq_base", j_f64(f->rope_base));
    json_object_set_new(o, "rms_eps", j_f64(f->rms_eps));
    json_object_set_new(o, "tokenizer_model", j_str(f->tok_model));
    json_object_set_new(o, "tokenizer_pre", j_str(f->tok_pre));
    json_object_set_new(o, "vocab_size", j_int(f->vocab));
    json_object_set_new(o, "merges", j_int(f->merges));
    json_object_set_new(o, "bos_token_id", j_int(f->bos));
    json_object_set_new(o, "bos_token", j_strn(f->bos_text, f->bos_len));
    json_object_set_new(o, "eos_token_id", j_int(f->eos));
    json_object_set_new(o, "eos_token", j_strn(f->eos_text, f->eos_len));
    json_t *tpl = json_null();
    if (f->template_len >= 0) {
        tpl = json_object();
        json_object_set_new(tpl, "length", json_integer(f->template_len));
        json_object_set_new(tpl, "mentions_tools", json_boolean(f->template_tools));
        json_object_set_new(tpl, "mentions_tool_call", json_boolean(f->template_tool_call));
    }
    json_object_set_new(o, "chat_template", tpl);
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text) {
        fprintf(stderr, "loco model info: out of memory\n");
        return 1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

static void info_usage(FILE *out)
{
    fprintf(out,
            "usage: loco model info [--json] MODEL\n"
            "\n"
            "Prints what a GGUF model file holds: architecture, name, file type, parameter\n"
            "count, size, tensor types (count and bytes), context length, shape (embedding,\n"
            "layers, heads, KV heads, head dim, FFN, rope base, RMS eps), tokenizer (model,\n"
            "pre-tokenizer, vocabulary, BOS/EOS) and a chat template summary. Only the header\n"
            "is read; tensor data is not touched. MODEL is a GGUF file, or a pulled model by\n"
            "REPO:QUANT or file name (`loco model list`).\n"
            "\n"
            "options:\n"
            "  --json                 machine-readable output (absent values are null)\n"
            "  -h, --help             this help\n");
}

static int model_info(int argc, char **argv)
{
    const char *path = NULL;
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            info_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json")) {
            as_json = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "loco model info: unknown option '%s' (see loco model info --help)\n",
                    argv[i]);
            return 2;
        } else if (path) {
            fprintf(stderr, "loco model info: one FILE only\n");
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        info_usage(stderr);
        return 2;
    }
    gguf *g;
    loco_err err;
    loco_err_clear(&err);
    char *resolved = NULL;
    if (models_resolve(path, &resolved, &err) || gguf_open(resolved, &g, &err)) {
        fprintf(stderr, "loco model info: %s\n", err.msg);
        free(resolved);
        return 1;
    }
    free(resolved);
    model_facts f;
    collect_facts(g, &f);
    int rc = 0;
    if (as_json)
        rc = print_json(g, &f);
    else
        print_text(g, &f);
    gguf_close(g);
    return rc;
}
