/* cmd_serve.c: `loco serve`: the gateway Claude Code points ANTHROPIC_BASE_URL at, with the
 * in-process engine as its local route (--model, or the model store's default) and/or remote
 * servers (--local-url). Every flag can also come from the environment or .env (flags win). */
#include "base/common.h"

#include <signal.h>

#include "backend/backend.h"
#include "base/file.h"
#include "base/models.h"
#include "base/str.h"
#include "base/url.h"
#include "cli/cli.h"
#include "cli/options.h"
#include "cli/prompt.h"
#include "cli/pull.h"
#include "engine/qwen3.h"
#include "gateway/gateway.h"

#define SERVE_MAX_LOCAL 64

static void serve_usage(FILE *out)
{
    fprintf(out,
            "usage: loco serve [options]\n"
            "\n"
            "Runs the gateway: the Anthropic Messages API (and the OpenAI API) that Claude Code\n"
            "points ANTHROPIC_BASE_URL at. Sub-agent models (haiku) go to the local model,\n"
            "everything else to the cloud; the local side falls back to the cloud. The local\n"
            "model runs in this process (--model, or the one model in the model store) and/or\n"
            "on other servers (--local-url). Also answers POST /v1/completions, /tokenize and\n"
            "/detokenize like llama-server when a model is loaded.\n"
            "\n"
            "options (environment / .env name in brackets; flags win):\n"
            "  --listen HOST:PORT       where to listen (127.0.0.1:9091) [LOCO_LISTEN]\n"
            "  --host HOST, --port N    the parts of --listen, as llama-server takes them\n"
            "  -m, --model FILE.gguf    run this model in process for the local route [LOCO_MODEL]\n"
            "                           (default: the one model in $LOCO_MODELS, else\n"
            "                           $XDG_DATA_HOME/loco/models, else ~/.local/share/loco/models)\n"
            "  --hf REPO:QUANT          a Hugging Face GGUF from the model store, pulled first\n"
            "                           when it is not there (as loco pull) [LOCO_HF]\n"
            "  --parallel N             sequences the engine serves at once (4) [LOCO_PARALLEL]\n"
            "  --queue N                calls that may wait beyond --parallel before 529\n"
            "                           (2 x --parallel) [LOCO_QUEUE]\n"
            "  -c, --ctx N              engine context per sequence in tokens (--local-ctx)\n"
            "                           [LOCO_CTX] (--ctx-size too)\n"
            "  -t, --threads N          engine threads (every CPU) [LOCO_THREADS]\n"
            "  --cache-mb N             prefix-cache memory cap in MiB (engine default)\n"
            "                           [LOCO_CACHE_MB]\n"
            "  --kv-type TYPE           KV cache type: f16 or q8_0 (f16) [LOCO_KV_TYPE]\n"
            "  --no-constrain           no constrained decoding of tool calls [LOCO_NO_CONSTRAIN=1]\n"
            "  --keep-reminders         no prompt diet: the local model also sees Claude Code's\n"
            "                           <system-reminder> blocks [LOCO_KEEP_REMINDERS=1]\n"
            "  --local-url URL          OpenAI-compatible local server; repeat for a pool (with\n"
            "                           --model too) [LOCO_LOCAL_URL, comma-separated]\n"
            "  --cloud-url URL          Anthropic-compatible base, URL/v1/messages, with or\n"
            "                           without /v1 (https://openrouter.ai/api) [LOCO_CLOUD_URL]\n"
            "  --cloud-key-env NAME     variable holding the cloud key (OPENROUTER_API_KEY)\n"
            "                           [LOCO_CLOUD_KEY_ENV]\n"
            "  --local-models PATTERNS  model names served locally (claude-haiku-*,*haiku*)\n"
            "                           [LOCO_LOCAL_MODELS]\n"
            "  --fallback-model NAME    cloud model on fallback (qwen/qwen3-coder-next)\n"
            "                           [LOCO_FALLBACK_MODEL]\n"
            "  --max-local-turns N      assistant turns served locally (10) [LOCO_MAX_LOCAL_TURNS]\n"
            "  --local-ctx N            prompt tokens the local route takes (--ctx, else 51200)\n"
            "                           [LOCO_LOCAL_CTX]\n"
            "  --local-max-tokens N     cap on the tokens of one local answer (0: the client's\n"
            "                           max_tokens) [LOCO_LOCAL_MAX_TOKENS]\n"
            "  --record DIR             append every exchange as SFT JSONL [LOCO_RECORD]\n"
            "  --auth-token TOKEN       require this key from clients (--api-key too)\n"
            "                           [LOCO_AUTH_TOKEN]\n"
            "  --max-body BYTES         request body limit (33554432) [LOCO_MAX_BODY]\n"
            "  --max-inflight N         requests served at once; more get 529 (256)\n"
            "                           [LOCO_MAX_INFLIGHT]\n"
            "  --max-conns N            client connections open at once; the request of one\n"
            "                           more is answered 503 (1024) [LOCO_MAX_CONNS]\n"
            "  --idle-timeout S         a connection must deliver each request within S s of\n"
            "                           going idle, else it is closed (60) [LOCO_IDLE_TIMEOUT]\n"
            "  --ping-interval MS       keep-alive pings while the local model thinks (5000)\n"
            "                           [LOCO_PING_INTERVAL]\n"
            "  --local-wait S           for S s after the start, requests wait for a local\n"
            "                           server that is still loading its model (it answers\n"
            "                           503), probed every ping interval, instead of falling\n"
            "                           back (120; 0: no wait) [LOCO_LOCAL_WAIT]\n"
            "  --local-timeout S        give up on a silent local server after S s (600)\n"
            "                           [LOCO_LOCAL_TIMEOUT]\n"
            "  --system-prompt FILE     the local model's system prompt (built in: the\n"
            "                           training prompt) [LOCO_SYSTEM_PROMPT]\n"
            "  --env-file FILE          read settings from FILE instead of ./.env\n"
            "  --verbose                also log debug lines\n"
            "  -h, --help               this help\n");
}

static sigset_t serve_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}

static bool parse_listen(const char *s, char *host, size_t host_size, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= host_size)
        return false;
    long p;
    if (str_parse_long(colon + 1, 0, 65535, &p))
        return false;
    snprintf(host, host_size, "%.*s", (int)(colon - s), s);
    if (host[0] == '[') { /* [::1] */
        size_t n = strlen(host);
        if (n < 2 || host[n - 1] != ']')
            return false;
        memmove(host, host + 1, n - 2);
        host[n - 2] = '\0';
    }
    *port = (int)p;
    return true;
}

typedef struct {
    const char *listen, *cloud_url, *cloud_key_env, *local_models, *fallback_model;
    const char *max_turns, *local_ctx, *record, *auth_token, *max_body, *ping, *timeout;
    const char *prompt_file, *env_file;
    const char *model, *hf, *parallel, *queue, *ctx, *threads, *cache_mb, *kv_type;
    const char *local_max_tokens, *host, *port, *local_wait;
    const char *max_inflight, *max_conns, *idle_timeout;
    const char *local_urls[SERVE_MAX_LOCAL];
    size_t n_local;
    bool verbose, no_constrain, keep_reminders;
} serve_flags;

static int parse_flags(int argc, char **argv, serve_flags *f)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        bool bad = false;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            serve_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--verbose")) {
            f->verbose = true;
            continue;
        }
        if (!strcmp(a, "--no-constrain")) {
            f->no_constrain = true;
            continue;
        }
        if (!strcmp(a, "--keep-reminders")) {
            f->keep_reminders = true;
            continue;
        }
        if (cli_flag_value(argc, argv, &i, "--local-url", &v, &bad)) {
            if (!bad && f->n_local >= SERVE_MAX_LOCAL) {
                fprintf(stderr, "loco serve: at most %d --local-url\n", SERVE_MAX_LOCAL);
                return 2;
            }
            if (!bad)
                f->local_urls[f->n_local++] = v;
            if (!bad && !url_valid(v)) {
                fprintf(stderr, "loco serve: --local-url wants an http:// or https:// URL, got "
                                "'%s'\n", v);
                return 2;
            }
        } else if (cli_flag_value(argc, argv, &i, "--listen", &f->listen, &bad) ||
                   cli_flag_value(argc, argv, &i, "--host", &f->host, &bad) ||
                   cli_flag_value(argc, argv, &i, "--local-wait", &f->local_wait, &bad) ||
                   cli_flag_value(argc, argv, &i, "--port", &f->port, &bad) ||
                   cli_flag_value(argc, argv, &i, "--cloud-url", &f->cloud_url, &bad) ||
                   cli_flag_value(argc, argv, &i, "--cloud-key-env", &f->cloud_key_env, &bad) ||
                   cli_flag_value(argc, argv, &i, "--local-models", &f->local_models, &bad) ||
                   cli_flag_value(argc, argv, &i, "--fallback-model", &f->fallback_model, &bad) ||
                   cli_flag_value(argc, argv, &i, "--max-local-turns", &f->max_turns, &bad) ||
                   cli_flag_value(argc, argv, &i, "--local-ctx", &f->local_ctx, &bad) ||
                   cli_flag_value(argc, argv, &i, "--record", &f->record, &bad) ||
                   cli_flag_value(argc, argv, &i, "--auth-token", &f->auth_token, &bad) ||
                   cli_flag_value(argc, argv, &i, "--max-body", &f->max_body, &bad) ||
                   cli_flag_value(argc, argv, &i, "--ping-interval", &f->ping, &bad) ||
                   cli_flag_value(argc, argv, &i, "--local-timeout", &f->timeout, &bad) ||
                   cli_flag_value(argc, argv, &i, "--system-prompt", &f->prompt_file, &bad) ||
                   cli_flag_value(argc, argv, &i, "--env-file", &f->env_file, &bad) ||
                   cli_flag_value(argc, argv, &i, "--model", &f->model, &bad) ||
                   cli_flag_value(argc, argv, &i, "--hf", &f->hf, &bad) ||
                   cli_flag_value(argc, argv, &i, "--parallel", &f->parallel, &bad) ||
                   cli_flag_value(argc, argv, &i, "--queue", &f->queue, &bad) ||
                   cli_flag_value(argc, argv, &i, "--ctx", &f->ctx, &bad) ||
                   cli_flag_value(argc, argv, &i, "--threads", &f->threads, &bad) ||
                   cli_flag_value(argc, argv, &i, "--cache-mb", &f->cache_mb, &bad) ||
                   cli_flag_value(argc, argv, &i, "--kv-type", &f->kv_type, &bad) ||
                   cli_flag_value(argc, argv, &i, "--local-max-tokens", &f->local_max_tokens,
                                  &bad) ||
                   cli_flag_value(argc, argv, &i, "--max-inflight", &f->max_inflight, &bad) ||
                   cli_flag_value(argc, argv, &i, "--max-conns", &f->max_conns, &bad) ||
                   cli_flag_value(argc, argv, &i, "--idle-timeout", &f->idle_timeout, &bad)) {
        } else {
            fprintf(stderr, "loco serve: unknown option '%s' (see loco serve --help)\n", a);
            return 2;
        }
        if (bad)
            return 2;
    }
    return -1;
}

/* flag, else environment/.env, else default */
static const char *pick(const char *flag, const cli_env *e, const char *name, const char *def)
{
    if (flag)
        return flag;
    const char *v = cli_env_get(e, name);
    return v ? v : def;
}

static bool number(const char *what, const char *s, long min, long max, long *out)
{
    if (str_parse_long(s, min, max, out)) {
        fprintf(stderr, "loco serve: %s must be an integer in [%ld, %ld], got '%s'\n", what, min,
                max, s);
        return false;
    }
    return true;
}

/* A boolean setting: the flag, else the environment/.env ("1", "true", "yes" set it). */
static bool flag_or_env(bool flag, const cli_env *e, const char *name)
{
    if (flag)
        return true;
    const char *v = cli_env_get(e, name);
    return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"));
}

/* Which model the engine runs: --model (a path or a name in the model store), --hf
 * REPO:QUANT (the store's copy, pulled first when missing), else the store's default when no
 * --local-url is set.
 * *out_path NULL: none. Returns false (after a message) on an error the user must fix. */
static bool pick_model(const serve_flags *f, const cli_env *env, size_t n_local, char **out_path)
{
    *out_path = NULL;
    const char *model = pick(f->model, env, "LOCO_MODEL", NULL);
    const char *hf = pick(f->hf, env, "LOCO_HF", NULL);
    loco_err err;
    loco_err_clear(&err);
    if (model && *model) {
        if (models_resolve(model, out_path, &err)) {
            fprintf(stderr, "loco serve: %s\n", err.msg);
            return false;
        }
        return true;
    }
    if (hf && *hf) {
        /* the store's copy, pulled first when it is not there yet */
        cli_pull_opts po = {.cmd = "loco serve", .ensure = true};
        return cli_pull(&po, hf, env, out_path) == 0;
    }
    if (n_local)
        return true; /* a remote pool only */
    if (models_find_default(out_path, &err) && err.code != LOCO_ERR_NOT_FOUND) {
        fprintf(stderr, "loco serve: %s\n", err.msg);
        return false;
    }
    return true;
}

int cmd_serve(int argc, char **argv)
{
    serve_flags f;
    memset(&f, 0, sizeof(f));
    int prc = parse_flags(argc, argv, &f);
    if (prc >= 0)
        return prc;
    cli_env env;
    if (!cli_env_load(&env, f.env_file))
        return 1;
    int code = 1;
    char *local_list = NULL;
    char *model_path = NULL;
    buf prompt;
    buf_init(&prompt, 1 << 20);
    gateway *gw = NULL;

    const char *listen = pick(f.listen, &env, "LOCO_LISTEN", "127.0.0.1:9091");
    char host[256];
    int port = 0;
    if (!parse_listen(listen, host, sizeof(host), &port)) {
        fprintf(stderr, "loco serve: --listen wants HOST:PORT, got '%s'\n", listen);
        code = 2;
        goto out;
    }
    long port_flag = 0;
    if (f.port && !number("--port", f.port, 0, 65535, &port_flag)) {
        code = 2;
        goto out;
    }
    if (f.port)
        port = (int)port_flag;
    if (f.host)
        snprintf(host, sizeof(host), "%s", f.host);
    if (f.n_local == 0) {
        const char *v = pick(NULL, &env, "LOCO_LOCAL_URL", NULL);
        local_list = v ? strdup(v) : NULL;
        for (char *save = NULL, *t = local_list ? strtok_r(local_list, ", ", &save) : NULL;
             t && f.n_local < SERVE_MAX_LOCAL; t = strtok_r(NULL, ", ", &save))
            f.local_urls[f.n_local++] = t;
    }
    const char *cloud_url = pick(f.cloud_url, &env, "LOCO_CLOUD_URL", "https://openrouter.ai/api");
    for (size_t i = 0; i <= f.n_local; i++) {
        const char *u = i < f.n_local ? f.local_urls[i] : cloud_url;
        if (!url_valid(u)) {
            fprintf(stderr, "loco serve: %s wants an http:// or https:// URL, got '%s'\n",
                    i < f.n_local ? "--local-url" : "--cloud-url", u);
            code = 2;
            goto out;
        }
    }
    long turns, local_ctx = 0, max_body, ping, timeout, parallel, queue, ctx = 0, threads, cache_mb;
    long local_max_tokens, local_wait, inflight, conns, idle;
    const char *lctx = pick(f.local_ctx, &env, "LOCO_LOCAL_CTX", NULL);
    const char *ectx = pick(f.ctx, &env, "LOCO_CTX", NULL);
    if (!number("--max-local-turns", pick(f.max_turns, &env, "LOCO_MAX_LOCAL_TURNS", "10"), 0,
                1000000, &turns) ||
        (lctx && !number("--local-ctx", lctx, 1, 100000000, &local_ctx)) ||
        (ectx && !number("--ctx", ectx, 256, 1L << 24, &ctx)) ||
        !number("--max-body", pick(f.max_body, &env, "LOCO_MAX_BODY", "33554432"), 1024,
                1L << 34, &max_body) ||
        !number("--ping-interval", pick(f.ping, &env, "LOCO_PING_INTERVAL", "5000"), -1,
                600000, &ping) ||
        !number("--local-timeout", pick(f.timeout, &env, "LOCO_LOCAL_TIMEOUT", "600"), 1,
                86400, &timeout) ||
        !number("--local-wait", pick(f.local_wait, &env, "LOCO_LOCAL_WAIT", "120"), 0, 86400,
                &local_wait) ||
        !number("--parallel", pick(f.parallel, &env, "LOCO_PARALLEL", "4"), 1, 256,
                &parallel) ||
        !number("--queue", pick(f.queue, &env, "LOCO_QUEUE", "0"), 0, 100000, &queue) ||
        !number("--threads", pick(f.threads, &env, "LOCO_THREADS", "0"), 0, 512, &threads) ||
        !number("--cache-mb", pick(f.cache_mb, &env, "LOCO_CACHE_MB", "0"), 0, 1L << 24,
                &cache_mb) ||
        !number("--local-max-tokens",
                pick(f.local_max_tokens, &env, "LOCO_LOCAL_MAX_TOKENS", "0"), 0, 1L << 24,
                &local_max_tokens) ||
        !number("--max-inflight", pick(f.max_inflight, &env, "LOCO_MAX_INFLIGHT", "256"), 1,
                1000000, &inflight) ||
        !number("--max-conns", pick(f.max_conns, &env, "LOCO_MAX_CONNS", "1024"), 1, 1000000,
                &conns) ||
        !number("--idle-timeout", pick(f.idle_timeout, &env, "LOCO_IDLE_TIMEOUT", "60"), 1,
                86400, &idle)) {
        code = 2;
        goto out;
    }
    const char *kv_type = pick(f.kv_type, &env, "LOCO_KV_TYPE", "f16");
    qwen3_kv_type kvt;
    if (!qwen3_kv_type_from_name(kv_type, &kvt)) {
        fprintf(stderr, "loco serve: --kv-type is " QWEN3_KV_TYPE_NAMES ", got '%s'\n", kv_type);
        code = 2;
        goto out;
    }
    if (!pick_model(&f, &env, f.n_local, &model_path)) {
        code = 2;
        goto out;
    }
    if (model_path)
        cli_warn_ctx("loco serve", model_path, ctx ? ctx : local_ctx ? local_ctx : 51200);
    if (!model_path && !f.n_local)
        fprintf(stderr, "loco serve: no local model: get one with `loco pull " MODELS_DEFAULT_REPO
                        ":" MODELS_DEFAULT_QUANT "` (or start with --model FILE.gguf or "
                        "--local-url URL); serving the cloud only for now\n");
    const char *key_env = pick(f.cloud_key_env, &env, "LOCO_CLOUD_KEY_ENV", "OPENROUTER_API_KEY");
    const char *key = cli_env_get(&env, key_env);
    const char *prompt_path = pick(f.prompt_file, &env, "LOCO_SYSTEM_PROMPT", NULL);
    loco_err err;
    loco_err_clear(&err);
    if (prompt_path) {
        if (cli_read_input(prompt_path, &prompt, &err)) {
            fprintf(stderr, "loco serve: %s\n", err.msg);
            goto out;
        }
    } else {
        buf_appends(&prompt, cli_local_system_prompt);
    }

    loco_log log = {cli_log_sink, NULL, f.verbose ? LOG_DEBUG : LOG_INFO};
    gateway_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen_host = host;
    cfg.listen_port = port;
    cfg.local_urls = f.local_urls;
    cfg.n_local_urls = f.n_local;
    cfg.cloud_url = cloud_url;
    cfg.cloud_key = key;
    cfg.local_models = pick(f.local_models, &env, "LOCO_LOCAL_MODELS", "claude-haiku-*,*haiku*");
    cfg.fallback_model = pick(f.fallback_model, &env, "LOCO_FALLBACK_MODEL",
                              "qwen/qwen3-coder-next");
    cfg.max_local_turns = turns;
    cfg.local_ctx = local_ctx;
    cfg.local_max_tokens = local_max_tokens;
    cfg.record_dir = pick(f.record, &env, "LOCO_RECORD", NULL);
    cfg.auth_token = pick(f.auth_token, &env, "LOCO_AUTH_TOKEN", NULL);
    cfg.system_prompt = buf_str(&prompt);
    cfg.max_body = (size_t)max_body;
    cfg.ping_interval_ms = ping;
    cfg.local_idle_timeout_ms = timeout * 1000;
    cfg.max_concurrency = (unsigned)inflight;
    cfg.max_connections = (unsigned)conns;
    cfg.idle_timeout_s = (unsigned)idle;
    cfg.local_start_wait_ms = local_wait ? local_wait * 1000 : -1;
    cfg.engine.model_path = model_path;
    cfg.engine.ctx = ctx;
    cfg.engine.threads = (int)threads;
    cfg.engine.parallel = (int)parallel;
    cfg.engine.queue_max = (int)queue;
    cfg.engine.cache_mb = cache_mb;
    cfg.engine.kv_type = kv_type;
    cfg.engine.no_constrain = flag_or_env(f.no_constrain, &env, "LOCO_NO_CONSTRAIN");
    cfg.keep_reminders = flag_or_env(f.keep_reminders, &env, "LOCO_KEEP_REMINDERS");
    cfg.log = &log;

    /* block the stop signals before threads start so only sigwait sees them */
    sigset_t set = serve_signals();
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (model_path)
        fprintf(stderr, "loco serve: loading %s\n", model_path);
    if (gateway_start(&cfg, &gw, &err)) {
        fprintf(stderr, "loco serve: %s\n", err.msg);
        if (strstr(err.msg, "in use"))
            fprintf(stderr, "loco serve: another server holds %s; stop it or pick another "
                            "--listen\n", listen);
        goto out;
    }
    fprintf(stderr, "loco serve: listening on http://%s:%d\n", host, gateway_port(gw));
    if (model_path)
        fprintf(stderr,
                "loco serve: local model %s in process (%ld sequences at once, models %s)%s\n",
                model_path, parallel, cfg.local_models,
                cfg.keep_reminders ? ", reminders kept" : "");
    for (size_t i = 0; i < f.n_local; i++)
        fprintf(stderr, "loco serve: local model server %s (models %s)\n", f.local_urls[i],
                cfg.local_models);
    char *messages_url = backend_join_url(cfg.cloud_url, "/v1/messages");
    fprintf(stderr, "loco serve: cloud %s, %s\n", messages_url ? messages_url : cfg.cloud_url,
            key && *key ? "key set" : "no key: no cloud fallback");
    free(messages_url);
    if (!key || !*key)
        fprintf(stderr, "loco serve: set %s in the environment or .env to enable the cloud\n",
                key_env);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "loco serve: stopping (signal %d)\n", sig);
    code = 0;
out:
    gateway_stop(gw);
    buf_release(&prompt);
    free(local_list);
    free(model_path);
    cli_env_release(&env);
    return code;
}
