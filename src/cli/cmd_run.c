/* cmd_run.c: `loco run`: one completion from a GGUF model with the in-process engine, streamed
 * to stdout. It goes the way every engine call goes (backend_engine_run: conversation ->
 * prompt ids -> scheduler -> text events); the messages file is read by the OpenAI codec.
 * Also the test hook the engine's comparisons against llama.cpp use (--json, --prompt-ids,
 * --ignore-eos, --logits-out, --parity, and --force-ids for teacher forcing: feed a given token
 * sequence and record the logits of every step). */
#include "base/common.h"

#include <jansson.h>

#include "backend/backend.h"
#include "base/buf.h"
#include "base/file.h"
#include "base/json.h"
#include "base/models.h"
#include "base/str.h"
#include "chat/openai.h"
#include "cli/cli.h"
#include "cli/options.h"
#include "engine/qwen3.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "engine/vecmath.h"

/* Limit on the messages file. */
#define RUN_MESSAGES_MAX ((size_t)64 << 20)

static void run_usage(FILE *out)
{
    fprintf(out,
            "usage: loco run [--model M] (--prompt TEXT | --messages FILE.json) [options]\n"
            "\n"
            "Streams a completion to stdout. The prompt goes through the model's chat template\n"
            "(Qwen3 ChatML) unless --raw; --messages takes the OpenAI/HF form\n"
            "[{\"role\": ..., \"content\": ...}] (or {\"messages\": [...], \"tools\": [...]}).\n"
            "\n"
            "options:\n"
            "  --model M            a GGUF file, or a pulled model by REPO:QUANT or file name\n"
            "                       (default: the model store's, see `loco model list`)\n"
            "  --system TEXT        system message (with --prompt)\n"
            "  --raw                use --prompt as is, no template (special tokens parsed)\n"
            "  --prompt-ids LIST    comma-separated prompt token ids instead of text\n"
            "  --max-tokens N       tokens to generate (512)\n"
            "  --temp T             temperature; 0 = greedy (0.7)\n"
            "  --top-p P (0.8)  --top-k K (20)  --min-p P (0)  --repeat-penalty R (1)\n"
            "  --seed S             sampling seed (42)\n"
            "  --threads N          threads (all cores)\n"
            "  --ctx N              context size in tokens (51200)\n"
            "  --batch N            prompt tokens per forward batch (512)\n"
            "  --ignore-eos         keep generating past the end-of-turn token\n"
            "  --json               print {prompt_ids, ids, text, profile, timings} instead of text\n"
            "  --logits-out FILE    write every step's logits (steps x vocab float32 LE; step 0\n"
            "                       follows the prompt)\n"
            "  --force-ids LIST     teacher forcing: feed these comma-separated ids back instead of\n"
            "                       the sampled ones (one step per id; ids still reports the\n"
            "                       sampled ones)\n"
            "  --no-nfc             tokenize without NFC normalisation (as llama.cpp does)\n"
            "  --parity             llama.cpp's arithmetic bit for bit (slower; the conformance\n"
            "                       tests use it) instead of the fast path\n"
            "  --kv-type T          KV cache type: f16 (default) or q8_0 (half the memory)\n"
            "  --no-constrain       do not constrain <tool_call>s to valid JSON for the tools\n"
            "                       (those of --messages, else the trained ones; never with\n"
            "                       --raw, --prompt-ids or --force-ids)\n");
}

typedef struct {
    const char *model, *prompt, *messages, *system, *prompt_ids, *logits_out, *force_ids;
    long max_tokens, top_k, threads, ctx, batch;
    double temp, top_p, min_p, repeat_penalty;
    long seed;
    bool raw, ignore_eos, json, nfc, parity, no_constrain;
    const char *kv_type;
} run_opts;

static int parse_run(int argc, char **argv, run_opts *o)
{
    o->max_tokens = 512;
    o->top_k = 20;
    o->ctx = 51200;
    o->batch = 512;
    o->temp = 0.7;
    o->top_p = 0.8;
    o->repeat_penalty = 1.0;
    o->seed = 42;
    o->nfc = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        bool bad = false;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            run_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--raw")) {
            o->raw = true;
            continue;
        }
        if (!strcmp(a, "--ignore-eos")) {
            o->ignore_eos = true;
            continue;
        }
        if (!strcmp(a, "--json")) {
            o->json = true;
            continue;
        }
        if (!strcmp(a, "--parity")) {
            o->parity = true;
            continue;
        }
        if (!strcmp(a, "--no-constrain")) {
            o->no_constrain = true;
            continue;
        }
        if (!strcmp(a, "--no-nfc")) {
            o->nfc = false;
            continue;
        }
        if (!strcmp(a, "--no-constrain")) {
            o->no_constrain = true;
            continue;
        }
        if (cli_flag_value(argc, argv, &i, "--model", &o->model, &bad) ||
            cli_flag_value(argc, argv, &i, "--prompt", &o->prompt, &bad) ||
            cli_flag_value(argc, argv, &i, "--messages", &o->messages, &bad) ||
            cli_flag_value(argc, argv, &i, "--system", &o->system, &bad) ||
            cli_flag_value(argc, argv, &i, "--prompt-ids", &o->prompt_ids, &bad) ||
            cli_flag_value(argc, argv, &i, "--logits-out", &o->logits_out, &bad) ||
            cli_flag_value(argc, argv, &i, "--force-ids", &o->force_ids, &bad) ||
            cli_flag_value(argc, argv, &i, "--kv-type", &o->kv_type, &bad)) {
            if (bad)
                return 2;
            continue;
        }
        struct {
            const char *f;
            long *dst;
            long min, max;
        } longs[] = {{"--max-tokens", &o->max_tokens, 0, 1 << 24},
                     {"--top-k", &o->top_k, 0, 1 << 24},
                     {"--threads", &o->threads, 1, 512},
                     {"--ctx", &o->ctx, 1, 1 << 24},
                     {"--batch", &o->batch, 1, 1 << 16},
                     {"--seed", &o->seed, 0, LONG_MAX}};
        struct {
            const char *f;
            double *dst;
            double min, max;
        } dbls[] = {{"--temp", &o->temp, 0, 100},
                    {"--top-p", &o->top_p, 0, 1},
                    {"--min-p", &o->min_p, 0, 1},
                    {"--repeat-penalty", &o->repeat_penalty, 0, 100}};
        bool matched = false;
        for (size_t k = 0; k < LOCO_ARRAY_LEN(longs) && !matched; k++) {
            if (cli_flag_value(argc, argv, &i, longs[k].f, &v, &bad)) {
                matched = true;
                if (bad || str_parse_long(v, longs[k].min, longs[k].max, longs[k].dst)) {
                    fprintf(stderr, "loco run: %s wants an integer in [%ld, %ld]\n", longs[k].f,
                            longs[k].min, longs[k].max);
                    return 2;
                }
            }
        }
        for (size_t k = 0; k < LOCO_ARRAY_LEN(dbls) && !matched; k++) {
            if (cli_flag_value(argc, argv, &i, dbls[k].f, &v, &bad)) {
                matched = true;
                if (bad || str_parse_double(v, dbls[k].min, dbls[k].max, dbls[k].dst)) {
                    fprintf(stderr, "loco run: %s wants a number in [%g, %g]\n", dbls[k].f,
                            dbls[k].min, dbls[k].max);
                    return 2;
                }
            }
        }
        if (!matched) {
            fprintf(stderr, "loco run: unknown option '%s' (see loco run --help)\n", a);
            return 2;
        }
    }
    int sources = !!o->prompt + !!o->messages + !!o->prompt_ids;
    qwen3_kv_type kvt;
    if (o->kv_type && !qwen3_kv_type_from_name(o->kv_type, &kvt)) {
        fprintf(stderr, "loco run: --kv-type is " QWEN3_KV_TYPE_NAMES "\n");
        return 2;
    }
    if (sources != 1) {
        fprintf(stderr, "loco run: give exactly one of --prompt, --messages, --prompt-ids "
                        "(see --help)\n");
        return 2;
    }
    return -1;
}

/* ---- the request ---- */

/* The messages file: [{"role": ..., "content": ...}, ...] or {"messages": [...], "tools": [...]}
 * (the OpenAI form, "model" optional), read by the OpenAI codec. */
static loco_status load_messages(const char *path, chat_request **out, loco_err *err)
{
    buf text;
    buf_init(&text, RUN_MESSAGES_MAX);
    loco_status rc = file_read_all(path, &text, err);
    json_t *root = rc ? NULL : json_parse(buf_str(&text), text.len, err);
    buf_release(&text);
    if (!rc && !root)
        rc = LOCO_ERR_INVALID;
    if (!rc && json_is_array(root)) {
        json_t *o = json_object();
        if (!o || json_object_set_new(o, "messages", root)) {
            json_decref(o);
            root = NULL;
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        } else {
            root = o;
        }
    }
    if (!rc && !json_is_object(root))
        rc = loco_err_set(err, LOCO_ERR_INVALID,
                          "expected a list of messages or {\"messages\": [...]}");
    if (!rc && !json_object_get(root, "model"))
        json_object_set_new(root, "model", json_string("local"));
    char *body = rc ? NULL : json_dumps(root, JSON_COMPACT);
    if (!rc && !body)
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = chat_oai_parse_request(body, strlen(body), out, err);
    if (rc)
        loco_err_wrap(err, "%s", path);
    free(body);
    json_decref(root);
    return rc;
}

static bool parse_ids(const char *s, int32_t **out, size_t *out_n)
{
    size_t cap = 0, n = 0;
    int32_t *ids = NULL;
    const char *p = s;
    while (*p) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || n >= (1u << 24))
            goto bad;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            int32_t *g = realloc(ids, cap * sizeof(int32_t));
            if (!g)
                goto bad;
            ids = g;
        }
        ids[n++] = (int32_t)v;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    if (!n)
        goto bad;
    *out = ids;
    *out_n = n;
    return true;
bad:
    free(ids);
    return false;
}

/* ---- the run ---- */

typedef struct {
    const run_opts *o;
    buf prompt_ids;   /* JSON list */
    size_t n_prompt;
    int32_t *ids;     /* generated */
    size_t n_ids, cap_ids;
    FILE *logits;     /* --logits-out */
    bool logits_bad;  /* a write failed */
} run_state;

/* Scheduler thread: every step's logits go to the --logits-out file. */
static void on_logits(void *ctx, const float *logits, uint32_t n_vocab)
{
    run_state *st = ctx;
    if (st->logits && fwrite(logits, sizeof(float), n_vocab, st->logits) != n_vocab)
        st->logits_bad = true;
}

static loco_status on_prompt(void *ctx, const int32_t *ids, size_t n)
{
    run_state *st = ctx;
    st->n_prompt = n;
    if (n + (size_t)st->o->max_tokens > (size_t)st->o->ctx) {
        fprintf(stderr,
                "loco run: the prompt (%zu tokens) plus --max-tokens %ld exceeds the context "
                "of %ld tokens: raise --ctx or lower --max-tokens\n",
                n, st->o->max_tokens, st->o->ctx);
        return LOCO_ERR_LIMIT;
    }
    loco_status rc = LOCO_OK;
    for (size_t i = 0; !rc && i < n; i++)
        rc = buf_appendf(&st->prompt_ids, "%s%d", i ? "," : "", ids[i]);
    return rc;
}

static loco_status on_token(void *ctx, int32_t id)
{
    run_state *st = ctx;
    if (st->n_ids == st->cap_ids) {
        size_t cap = st->cap_ids ? st->cap_ids * 2 : 256;
        int32_t *g = realloc(st->ids, cap * sizeof(int32_t));
        if (!g)
            return LOCO_ERR_NOMEM;
        st->ids = g;
        st->cap_ids = cap;
    }
    st->ids[st->n_ids++] = id;
    return LOCO_OK;
}

static loco_status on_event(void *ctx, const chat_event *ev)
{
    run_state *st = ctx;
    if (ev->type == CHAT_EV_TEXT_DELTA && !st->o->json) {
        fwrite(ev->text, 1, ev->len, stdout);
        fflush(stdout);
    }
    return LOCO_OK;
}

int cmd_run(int argc, char **argv)
{
    run_opts o;
    memset(&o, 0, sizeof(o));
    int prc = parse_run(argc, argv, &o);
    if (prc >= 0)
        return prc;
    int code = 1;
    loco_err err;
    loco_err_clear(&err);
    backend *b = NULL;
    chat_request *req = NULL;
    int32_t *prompt_ids = NULL;
    size_t n_prompt_ids = 0;
    int32_t *force_ids = NULL;
    size_t n_force_ids = 0;
    char *model_path = NULL;
    run_state st;
    memset(&st, 0, sizeof(st));
    st.o = &o;
    buf_init(&st.prompt_ids, BUF_UNLIMITED);

    if (o.prompt_ids && !parse_ids(o.prompt_ids, &prompt_ids, &n_prompt_ids)) {
        fprintf(stderr, "loco run: --prompt-ids wants comma-separated token ids\n");
        code = 2;
        goto out;
    }
    if (o.force_ids) {
        if (!parse_ids(o.force_ids, &force_ids, &n_force_ids)) {
            fprintf(stderr, "loco run: --force-ids wants comma-separated token ids\n");
            code = 2;
            goto out;
        }
        o.max_tokens = (long)n_force_ids;
    }
    if (o.model ? models_resolve(o.model, &model_path, &err) : models_find_default(&model_path, &err))
        goto fail;
    backend_engine_opts eo;
    memset(&eo, 0, sizeof(eo));
    eo.model_path = model_path;
    eo.ctx = o.ctx;
    eo.threads = (int)o.threads;
    eo.batch = o.batch;
    eo.template_tools = true; /* a messages file's tools go to the template, as for any model */
    eo.nfc = o.nfc;
    eo.parallel = 1;
    eo.cache_mb = 1;
    eo.parity = o.parity;
    eo.kv_type = o.kv_type;
    eo.constrain = !o.no_constrain;
    if (backend_engine_new(&eo, &b, &err))
        goto fail;
    if (o.messages) {
        if (load_messages(o.messages, &req, &err))
            goto fail;
    } else {
        req = chat_request_new();
        chat_message *m = NULL;
        chat_block *blk = NULL;
        if (req && o.prompt && !o.raw) {
            req->system = o.system ? chat_strdup(req, o.system) : NULL;
            m = chat_request_add_message(req, CHAT_ROLE_USER);
            blk = m ? chat_message_add_block(req, m, CHAT_BLOCK_TEXT) : NULL;
            if (blk)
                blk->text = chat_strdup(req, o.prompt);
        }
        if (!req || (o.prompt && !o.raw && (!blk || !blk->text))) {
            loco_err_set(&err, LOCO_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    req->max_tokens = o.max_tokens;
    sampler_params sp;
    sampler_params_default(&sp);
    sp.temperature = (float)o.temp;
    sp.top_k = (int32_t)o.top_k;
    sp.top_p = (float)o.top_p;
    sp.min_p = (float)o.min_p;
    sp.repeat_penalty = (float)o.repeat_penalty;
    sp.penalty_last_n = o.repeat_penalty != 1.0 ? 64 : 0;
    sp.seed = (uint64_t)o.seed;
    if (o.logits_out && !(st.logits = fopen(o.logits_out, "wb"))) {
        loco_err_set(&err, LOCO_ERR_IO, "cannot open '%s': %s", o.logits_out, strerror(errno));
        goto fail;
    }
    backend_engine_run_opts ro;
    memset(&ro, 0, sizeof(ro));
    ro.prompt_ids = prompt_ids;
    ro.n_prompt_ids = n_prompt_ids;
    ro.raw_prompt = o.raw ? o.prompt : NULL;
    ro.no_parse = true; /* the model's text as it comes */
    ro.ignore_eos = o.ignore_eos;
    ro.sampling = &sp;
    ro.force_ids = force_ids;
    ro.n_force_ids = n_force_ids;
    ro.on_logits = st.logits ? on_logits : NULL;
    ro.on_prompt = on_prompt;
    ro.on_token = on_token;
    ro.hook_ctx = &st;
    loco_status rc = backend_engine_run(b, req, &ro, NULL, on_event, &st, NULL, &err);
    if (rc == LOCO_ERR_LIMIT && !st.n_ids && st.n_prompt)
        goto out; /* the context check in on_prompt said why */
    if (rc)
        goto fail;
    if (st.logits) {
        bool bad = fclose(st.logits) != 0 || st.logits_bad;
        st.logits = NULL;
        if (bad) {
            loco_err_set(&err, LOCO_ERR_IO, "cannot write '%s'", o.logits_out);
            goto fail;
        }
    }
    struct backend_engine_stats es;
    backend_engine_stats(b, &es);
    double pp_s = es.prompt_seconds, tg_s = es.gen_seconds;
    if (o.json) {
        char *text = NULL;
        if (backend_engine_detokenize(b, st.ids, st.n_ids, &text, &err))
            goto fail;
        buf js;
        buf_init(&js, BUF_UNLIMITED);
        json_append_str_lossy(&js, text, strlen(text)); /* a cut character: U+FFFD */
        printf("{\"prompt_ids\":[%s],\"ids\":[", buf_str(&st.prompt_ids));
        for (size_t i = 0; i < st.n_ids; i++)
            printf("%s%d", i ? "," : "", st.ids[i]);
        printf("],\"text\":%s,\"profile\":\"%s\",\"parity\":%s,\"kv_type\":\"%s\","
               "\"prompt_seconds\":%.6f,\"gen_seconds\":%.6f}\n",
               buf_str(&js), vm_profile_get()->name, o.parity ? "true" : "false",
               o.kv_type ? o.kv_type : "f16", pp_s, tg_s);
        buf_release(&js);
        free(text);
    } else {
        printf("\n");
    }
    /* the last token generated is not evaluated: generation time covers n - 1 steps */
    size_t steps = st.n_ids ? st.n_ids - 1 : 0;
    fprintf(stderr, "prompt: %zu tokens in %.2f s (%.1f tok/s); generation: %zu tokens in %.2f s "
                    "(%.1f tok/s)\n",
            st.n_prompt, pp_s, pp_s > 0 ? (double)st.n_prompt / pp_s : 0.0, st.n_ids, tg_s,
            tg_s > 0 ? (double)steps / tg_s : 0.0);
    code = 0;
    goto out;
fail:
    fprintf(stderr, "loco run: %s\n", err.msg[0] ? err.msg : "failed");
out:
    buf_release(&st.prompt_ids);
    free(st.ids);
    free(prompt_ids);
    free(force_ids);
    free(model_path);
    if (st.logits)
        fclose(st.logits);
    chat_request_free(req);
    backend_free(b);
    return code;
}
