/* cmd_run.c: `loco run`: one completion from a GGUF model with the in-process engine, streamed
 * to stdout. Also the test hook the engine's comparisons against llama.cpp use (--json,
 * --prompt-ids, --ignore-eos, --logits-out, and --force-ids for teacher forcing: feed a given
 * token sequence and record the logits of every step). */
#include "base/common.h"

#include <jansson.h>
#include <unistd.h>

#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "base/models.h"
#include "base/str.h"
#include "backend/constrain_req.h"
#include "cli/cli.h"
#include "cli/options.h"
#include "engine/gguf.h"
#include "engine/prompt.h"
#include "engine/qwen3.h"
#include "engine/sampler.h"
#include "engine/threadpool.h"
#include "engine/tokenizer.h"
#include "engine/vecmath.h"

#define RUN_MAX_MESSAGES 4096

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
            "  --json               print {prompt_ids, ids, text, profile, timings}, not text\n"
            "  --logits-out FILE    write every step's logits (steps x vocab float32 LE; step 0\n"
            "                       follows the prompt)\n"
            "  --force-ids LIST     teacher forcing: feed these comma-separated ids back\n"
            "                       instead of the sampled ones (one step per id; ids still\n"
            "                       reports the sampled ones)\n"
            "  --parity             the arithmetic that mirrors llama.cpp's CPU build bit for\n"
            "                       bit (today the only path, so the default)\n"
            "  --no-nfc             tokenize without NFC normalisation (as llama.cpp does)\n"
            "  --no-constrain       do not constrain <tool_call>s to valid JSON for the tools\n"
            "                       (those of --messages, else the trained ones; never with\n"
            "                       --raw or --prompt-ids)\n");
}

typedef struct {
    const char *model, *prompt, *messages, *system, *prompt_ids, *logits_out, *force_ids;
    long max_tokens, top_k, threads, ctx, batch;
    double temp, top_p, min_p, repeat_penalty;
    long seed;
    bool raw, ignore_eos, json, nfc, parity, no_constrain;
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
        if (!strcmp(a, "--no-nfc")) {
            o->nfc = false;
            continue;
        }
        if (!strcmp(a, "--parity")) { /* the parity path is today's only path */
            o->parity = true;
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
            cli_flag_value(argc, argv, &i, "--force-ids", &o->force_ids, &bad)) {
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
    if (sources != 1) {
        fprintf(stderr, "loco run: give exactly one of --prompt, --messages, --prompt-ids "
                        "(see --help)\n");
        return 2;
    }
    return -1;
}

/* ---- messages file (OpenAI/HF form) -> template messages ---- */

typedef struct {
    tmpl_message msgs[RUN_MAX_MESSAGES];
    tmpl_tool_call *calls;
    size_t n_calls, cap_calls;
    tmpl_tool *tools;
    size_t n_msgs, n_tools;
    json_t *root;
    char **owned;
    size_t n_owned;
} run_conv;

static const char *keep(run_conv *c, char *s)
{
    char **o = realloc(c->owned, (c->n_owned + 1) * sizeof(char *));
    if (!o) {
        free(s);
        return NULL;
    }
    c->owned = o;
    c->owned[c->n_owned++] = s;
    return s;
}

static void conv_release(run_conv *c)
{
    for (size_t i = 0; i < c->n_owned; i++)
        free(c->owned[i]);
    free(c->owned);
    free(c->calls);
    free(c->tools);
    json_decref(c->root);
}

/* content: a string or a list of {"type":"text","text":...} parts */
static const char *content_text(run_conv *c, json_t *content)
{
    if (json_is_string(content))
        return json_string_value(content);
    if (!json_is_array(content))
        return "";
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *t = json_get_str(part, "text");
        if (t)
            buf_appends(&b, t);
    }
    return keep(c, buf_take(&b, NULL));
}

static bool load_messages(const char *path, run_conv *c, loco_err *err)
{
    buf text;
    buf_init(&text, (size_t)64 << 20);
    if (file_read_all(path, &text, err)) {
        buf_release(&text);
        return false;
    }
    c->root = json_parse(buf_str(&text), text.len, err);
    buf_release(&text);
    if (!c->root) {
        loco_err_wrap(err, "%s", path);
        return false;
    }
    json_t *msgs = json_is_array(c->root) ? c->root : json_object_get(c->root, "messages");
    json_t *tools = json_is_object(c->root) ? json_object_get(c->root, "tools") : NULL;
    if (!json_is_array(msgs)) {
        loco_err_set(err, LOCO_ERR_INVALID,
                     "%s: expected a list of messages or {\"messages\": [...]}", path);
        return false;
    }
    if (json_array_size(msgs) > RUN_MAX_MESSAGES) {
        loco_err_set(err, LOCO_ERR_LIMIT, "%s: more than %d messages", path, RUN_MAX_MESSAGES);
        return false;
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *role = json_get_str(m, "role");
        tmpl_message *tm = &c->msgs[c->n_msgs];
        memset(tm, 0, sizeof(*tm));
        if (!role) {
            loco_err_set(err, LOCO_ERR_INVALID, "%s: messages[%zu] has no \"role\"", path, i);
            return false;
        }
        if (!strcmp(role, "system") || !strcmp(role, "developer"))
            tm->role = TMPL_ROLE_SYSTEM;
        else if (!strcmp(role, "user"))
            tm->role = TMPL_ROLE_USER;
        else if (!strcmp(role, "assistant"))
            tm->role = TMPL_ROLE_ASSISTANT;
        else if (!strcmp(role, "tool"))
            tm->role = TMPL_ROLE_TOOL;
        else {
            loco_err_set(err, LOCO_ERR_INVALID, "%s: messages[%zu] has unknown role '%s'", path,
                         i, role);
            return false;
        }
        tm->content = content_text(c, json_object_get(m, "content"));
        tm->reasoning_content = json_get_str(m, "reasoning_content");
        json_t *calls = json_object_get(m, "tool_calls");
        if (json_is_array(calls) && json_array_size(calls)) {
            size_t first = c->n_calls;
            size_t k;
            json_t *call;
            json_array_foreach(calls, k, call)
            {
                json_t *fn = json_object_get(call, "function");
                if (!fn)
                    fn = call;
                json_t *args = json_object_get(fn, "arguments");
                if (c->n_calls == c->cap_calls) {
                    size_t cap = c->cap_calls ? c->cap_calls * 2 : 16;
                    tmpl_tool_call *nc = realloc(c->calls, cap * sizeof(*nc));
                    if (!nc) {
                        loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
                        return false;
                    }
                    c->calls = nc;
                    c->cap_calls = cap;
                }
                tmpl_tool_call *tc = &c->calls[c->n_calls++];
                memset(tc, 0, sizeof(*tc));
                tc->name = json_get_str(fn, "name");
                if (!tc->name)
                    tc->name = "";
                if (json_is_string(args)) {
                    tc->arguments = json_string_value(args);
                    tc->arguments_raw = true;
                } else {
                    tc->arguments = keep(c, json_to_string(args ? args : json_object()));
                }
            }
            /* pointers fixed up after all messages are read (calls may move) */
            tm->tool_calls = (const tmpl_tool_call *)(uintptr_t)(first + 1);
            tm->n_tool_calls = json_array_size(calls);
        }
        c->n_msgs++;
    }
    for (size_t k = 0; k < c->n_msgs; k++) {
        if (c->msgs[k].n_tool_calls)
            c->msgs[k].tool_calls = c->calls + ((uintptr_t)c->msgs[k].tool_calls - 1);
    }
    if (json_is_array(tools) && json_array_size(tools)) {
        c->tools = calloc(json_array_size(tools), sizeof(tmpl_tool));
        if (!c->tools) {
            loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
            return false;
        }
        json_t *t;
        json_array_foreach(tools, i, t)
        {
            c->tools[c->n_tools++].json = keep(c, json_to_string(t));
        }
    }
    return true;
}

static bool parse_ids(const char *s, tok_ids *out)
{
    const char *p = s;
    while (*p) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX)
            return false;
        if (tok_ids_push(out, (int32_t)v))
            return false;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return out->len > 0;
}

/* The tool-call constraint of the answer (docs/internals/constrain.md): the tools of the
 * --messages file (OpenAI or Anthropic form), else LocoOperator-4B's trained tools. */
static loco_status run_constraint(const tok *t, int32_t n_vocab, const run_conv *conv, long max,
                                  constrain **out, loco_err *err)
{
    chat_request *req = chat_request_new();
    json_t *tools = json_is_object(conv->root) ? json_object_get(conv->root, "tools") : NULL;
    size_t i;
    json_t *tool;
    loco_status rc = req ? LOCO_OK : LOCO_ERR_NOMEM;
    json_array_foreach(tools, i, tool) {
        json_t *fn = json_object_get(tool, "function") ? json_object_get(tool, "function") : tool;
        json_t *schema = json_object_get(fn, "parameters") ? json_object_get(fn, "parameters")
                                                            : json_object_get(tool, "input_schema");
        const char *name = json_get_str(fn, "name");
        char *sj = schema ? json_to_string(schema) : NULL;
        if (!rc && name && !chat_request_add_tool(req, name, NULL, sj))
            rc = LOCO_ERR_NOMEM;
        free(sj);
    }
    constrain_tool *ct = NULL;
    size_t n = 0;
    constrain_opts co;
    memset(&co, 0, sizeof(co));
    if (!rc)
        rc = constrain_req_tools(req, &ct, &n, &co.mode);
    co.max_tokens = max;
    co.n_vocab = n_vocab;
    rc = rc ? loco_err_set(err, rc, "out of memory") : constrain_new(t, ct, n, &co, out, err);
    free(ct);
    chat_request_free(req);
    return rc;
}

static void print_ids_json(FILE *f, const char *key, const int32_t *ids, size_t n)
{
    fprintf(f, "\"%s\":[", key);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%d", i ? "," : "", ids[i]);
    fputc(']', f);
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
    gguf *g = NULL;
    qwen3_model *m = NULL;
    qwen3_ctx *ctx = NULL;
    tok *t = NULL;
    tpool *pool = NULL;
    sampler *smp = NULL;
    constrain *con = NULL;
    float *logits = NULL;
    run_conv conv;
    memset(&conv, 0, sizeof(conv));
    tok_ids prompt, gen, force;
    tok_ids_init(&prompt, 1u << 24);
    tok_ids_init(&gen, 1u << 24);
    tok_ids_init(&force, 1u << 24);
    FILE *logits_file = NULL;
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    char *model_path = NULL;

    if ((o.model ? models_resolve(o.model, &model_path, &err)
                 : models_find_default(&model_path, &err)) ||
        gguf_open(model_path, &g, &err) || gguf_check_supported(g, &err) ||
        qwen3_load(g, &m, &err) || tok_from_gguf(g, o.nfc, &t, &err))
        goto fail;
    pool = tpool_new(o.threads ? (int32_t)o.threads : tpool_default_threads(), &err);
    if (!pool)
        goto fail;
    if (o.prompt_ids) {
        if (!parse_ids(o.prompt_ids, &prompt)) {
            fprintf(stderr, "loco run: --prompt-ids wants comma-separated token ids\n");
            code = 2;
            goto out;
        }
    } else if (o.raw) {
        if (tok_encode(t, o.prompt, strlen(o.prompt), TOK_PARSE_SPECIAL, &prompt, &err))
            goto fail;
    } else {
        if (o.messages) {
            if (!load_messages(o.messages, &conv, &err))
                goto fail;
        } else {
            if (o.system) {
                conv.msgs[conv.n_msgs].role = TMPL_ROLE_SYSTEM;
                conv.msgs[conv.n_msgs++].content = o.system;
            }
            conv.msgs[conv.n_msgs].role = TMPL_ROLE_USER;
            conv.msgs[conv.n_msgs++].content = o.prompt;
        }
        tmpl_options to;
        memset(&to, 0, sizeof(to));
        to.add_generation_prompt = true;
        size_t tl = 0;
        int64_t ti = gguf_find_key(g, "tokenizer.chat_template");
        const char *tt = ti >= 0 ? gguf_get_str(g, ti, &tl) : NULL;
        to.dialect = tt ? tmpl_detect_dialect(tt) : TMPL_QWEN3_INSTRUCT_2507;
        to.disable_thinking = true;
        if (prompt_tokenize_chat(t, &to, conv.msgs, conv.n_msgs, conv.tools, conv.n_tools,
                                 &prompt, &err))
            goto fail;
    }
    if (o.force_ids) {
        if (!parse_ids(o.force_ids, &force)) {
            fprintf(stderr, "loco run: --force-ids wants comma-separated token ids\n");
            code = 2;
            goto out;
        }
        o.max_tokens = (long)force.len;
    }
    qwen3_ctx_opts co;
    memset(&co, 0, sizeof(co));
    co.n_ctx = (uint32_t)o.ctx;
    co.n_batch = (uint32_t)o.batch;
    co.pool = pool;
    co.parity = o.parity;
    if (qwen3_ctx_new_opts(m, &co, &ctx, &err))
        goto fail;
    if (prompt.len + (size_t)o.max_tokens > (size_t)o.ctx) {
        fprintf(stderr,
                "loco run: the prompt (%zu tokens) plus --max-tokens %ld exceeds the context "
                "of %ld tokens: raise --ctx or lower --max-tokens\n",
                prompt.len, o.max_tokens, o.ctx);
        goto out;
    }
    sampler_params sp;
    sampler_params_default(&sp);
    sp.temperature = (float)o.temp;
    sp.top_k = (int32_t)o.top_k;
    sp.top_p = (float)o.top_p;
    sp.min_p = (float)o.min_p;
    sp.repeat_penalty = (float)o.repeat_penalty;
    sp.penalty_last_n = o.repeat_penalty != 1.0 ? 64 : 0;
    sp.seed = (uint64_t)o.seed;
    smp = sampler_new((int32_t)m->hp.n_vocab, &sp, &err);
    logits = malloc((size_t)m->hp.n_vocab * sizeof(float));
    if (!smp || !logits) {
        if (!err.msg[0])
            loco_err_set(&err, LOCO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!o.raw && !o.prompt_ids && !o.no_constrain) {
        if (run_constraint(t, (int32_t)m->hp.n_vocab, &conv, o.max_tokens, &con, &err))
            goto fail;
        sampler_set_constraint(smp, con);
    }
    double t0 = clock_now_ms();
    if (qwen3_eval(ctx, prompt.ids, (uint32_t)prompt.len, logits, &err))
        goto fail;
    double t1 = clock_now_ms();
    if (o.logits_out && !(logits_file = fopen(o.logits_out, "wb"))) {
        loco_err_set(&err, LOCO_ERR_IO, "cannot open '%s': %s", o.logits_out, strerror(errno));
        goto fail;
    }
    int32_t eos = tok_find(t, "<|im_end|>", 10), eot = tok_find(t, "<|endoftext|>", 13);
    tok_stream ts;
    tok_stream_init(&ts);
    for (long i = 0; i < o.max_tokens; i++) {
        int32_t id;
        if (logits_file &&
            fwrite(logits, sizeof(float), m->hp.n_vocab, logits_file) != m->hp.n_vocab) {
            loco_err_set(&err, LOCO_ERR_IO, "cannot write '%s'", o.logits_out);
            goto fail;
        }
        if (sampler_sample(smp, logits, &id, &err))
            goto fail;
        /* teacher forcing: the given token goes on, the sampled one is reported */
        int32_t next = o.force_ids ? force.ids[i] : id;
        sampler_accept(smp, next);
        if (!o.ignore_eos && !o.force_ids && (id == eos || id == eot))
            break;
        if (tok_ids_push(&gen, id)) {
            loco_err_set(&err, LOCO_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if (!o.json) {
            buf_reset(&out);
            if (tok_stream_push(&ts, t, id, &out, &err))
                goto fail;
            fwrite(out.data ? out.data : "", 1, out.len, stdout);
            fflush(stdout);
        }
        if (i + 1 < o.max_tokens && qwen3_eval(ctx, &next, 1, logits, &err))
            goto fail;
    }
    if (logits_file) {
        int bad = fclose(logits_file);
        logits_file = NULL;
        if (bad) {
            loco_err_set(&err, LOCO_ERR_IO, "cannot write '%s'", o.logits_out);
            goto fail;
        }
    }
    double t2 = clock_now_ms();
    double pp_s = (t1 - t0) / 1000.0, tg_s = (t2 - t1) / 1000.0;
    if (o.json) {
        buf_reset(&out);
        tok_decode(t, gen.ids, gen.len, &out, NULL);
        printf("{");
        print_ids_json(stdout, "prompt_ids", prompt.ids, prompt.len);
        printf(",");
        print_ids_json(stdout, "ids", gen.ids, gen.len);
        buf js;
        buf_init(&js, BUF_UNLIMITED);
        json_append_str_lossy(&js, buf_str(&out), out.len); /* a cut character: U+FFFD */
        printf(",\"text\":%s,\"profile\":\"%s\",\"parity\":true,\"prompt_seconds\":%.6f,"
               "\"gen_seconds\":%.6f}\n",
               buf_str(&js), vm_profile_get()->name, pp_s, tg_s);
        buf_release(&js);
    } else {
        buf_reset(&out);
        tok_stream_flush(&ts, &out);
        fwrite(out.data ? out.data : "", 1, out.len, stdout);
        printf("\n");
    }
    fprintf(stderr, "prompt: %zu tokens in %.2f s (%.1f tok/s); generation: %zu tokens in %.2f s "
                    "(%.1f tok/s)\n",
            prompt.len, pp_s, pp_s > 0 ? (double)prompt.len / pp_s : 0.0, gen.len, tg_s,
            tg_s > 0 ? (double)gen.len / tg_s : 0.0);
    code = 0;
    goto out;
fail:
    fprintf(stderr, "loco run: %s\n", err.msg[0] ? err.msg : "failed");
out:
    free(model_path);
    buf_release(&out);
    tok_ids_release(&prompt);
    tok_ids_release(&gen);
    tok_ids_release(&force);
    if (logits_file)
        fclose(logits_file);
    conv_release(&conv);
    free(logits);
    sampler_free(smp);
    constrain_free(con);
    qwen3_ctx_free(ctx);
    tpool_free(pool);
    tok_free(t);
    qwen3_free(m);
    gguf_close(g);
    return code;
}
