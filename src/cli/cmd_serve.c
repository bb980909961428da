/* cmd_serve.c: `loco serve`: the gateway Claude Code points ANTHROPIC_BASE_URL at. Every flag
 * can also come from the environment or .env (flags win). */
#include "base/common.h"

#include <signal.h>

#include "base/file.h"
#include "base/str.h"
#include "cli/cli.h"
#include "cli/options.h"
#include "cli/prompt.h"
#include "gateway/gateway.h"

#define SERVE_MAX_LOCAL 64

static void serve_usage(FILE *out)
{
    fprintf(out,
            "usage: loco serve [options]\n"
            "\n"
            "Runs the gateway: the Anthropic Messages API (and /v1/chat/completions) that\n"
            "Claude Code points ANTHROPIC_BASE_URL at. Sub-agent models (haiku) go to the local\n"
            "model server, everything else to the cloud; the local side falls back to the cloud.\n"
            "\n"
            "options (environment / .env name in brackets; flags win):\n"
            "  --listen HOST:PORT       where to listen (127.0.0.1:9091) [LOCO_LISTEN]\n"
            "  --local-url URL          OpenAI-compatible local server; repeat for a pool\n"
            "                           (http://127.0.0.1:8080) [LOCO_LOCAL_URL, comma-separated]\n"
            "  --cloud-url URL          Anthropic-compatible base, URL/v1/messages\n"
            "                           (https://openrouter.ai/api) [LOCO_CLOUD_URL]\n"
            "  --cloud-key-env NAME     variable holding the cloud key (OPENROUTER_API_KEY)\n"
            "                           [LOCO_CLOUD_KEY_ENV]\n"
            "  --local-models PATTERNS  model names served locally (claude-haiku-*,*haiku*)\n"
            "                           [LOCO_LOCAL_MODELS]\n"
            "  --fallback-model NAME    cloud model on fallback (qwen/qwen3-coder-next)\n"
            "                           [LOCO_FALLBACK_MODEL]\n"
            "  --max-local-turns N      assistant turns served locally (10) [LOCO_MAX_LOCAL_TURNS]\n"
            "  --local-ctx N            local context in tokens (51200) [LOCO_LOCAL_CTX]\n"
            "  --record DIR             append every exchange as SFT JSONL [LOCO_RECORD]\n"
            "  --auth-token TOKEN       require this key from clients [LOCO_AUTH_TOKEN]\n"
            "  --max-body BYTES         request body limit (33554432) [LOCO_MAX_BODY]\n"
            "  --max-inflight N         requests served at once; more get 529 (256)\n"
            "                           [LOCO_MAX_INFLIGHT]\n"
            "  --max-conns N            client connections open at once; the request of one\n"
            "                           more is answered 503 (1024) [LOCO_MAX_CONNS]\n"
            "  --idle-timeout S         a connection must deliver each request within S s of\n"
            "                           going idle, else it is closed (60) [LOCO_IDLE_TIMEOUT]\n"
            "  --ping-interval MS       keep-alive pings while the local model thinks (5000)\n"
            "                           [LOCO_PING_INTERVAL]\n"
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
    const char *max_inflight, *max_conns, *idle_timeout;
    const char *local_urls[SERVE_MAX_LOCAL];
    size_t n_local;
    bool verbose;
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
        if (cli_flag_value(argc, argv, &i, "--local-url", &v, &bad)) {
            if (!bad && f->n_local >= SERVE_MAX_LOCAL) {
                fprintf(stderr, "loco serve: at most %d --local-url\n", SERVE_MAX_LOCAL);
                return 2;
            }
            if (!bad)
                f->local_urls[f->n_local++] = v;
        } else if (cli_flag_value(argc, argv, &i, "--listen", &f->listen, &bad) ||
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
    if (f.n_local == 0) {
        const char *v = pick(NULL, &env, "LOCO_LOCAL_URL", "http://127.0.0.1:8080");
        local_list = strdup(v);
        for (char *save = NULL, *t = strtok_r(local_list, ", ", &save);
             t && f.n_local < SERVE_MAX_LOCAL; t = strtok_r(NULL, ", ", &save))
            f.local_urls[f.n_local++] = t;
    }
    long turns, ctx, max_body, ping, timeout, inflight, conns, idle;
    if (!number("--max-local-turns", pick(f.max_turns, &env, "LOCO_MAX_LOCAL_TURNS", "10"), 0,
                1000000, &turns) ||
        !number("--local-ctx", pick(f.local_ctx, &env, "LOCO_LOCAL_CTX", "51200"), 1,
                100000000, &ctx) ||
        !number("--max-body", pick(f.max_body, &env, "LOCO_MAX_BODY", "33554432"), 1024,
                1L << 34, &max_body) ||
        !number("--ping-interval", pick(f.ping, &env, "LOCO_PING_INTERVAL", "5000"), -1,
                600000, &ping) ||
        !number("--local-timeout", pick(f.timeout, &env, "LOCO_LOCAL_TIMEOUT", "600"), 1,
                86400, &timeout) ||
        !number("--max-inflight", pick(f.max_inflight, &env, "LOCO_MAX_INFLIGHT", "256"), 1,
                1000000, &inflight) ||
        !number("--max-conns", pick(f.max_conns, &env, "LOCO_MAX_CONNS", "1024"), 1, 1000000,
                &conns) ||
        !number("--idle-timeout", pick(f.idle_timeout, &env, "LOCO_IDLE_TIMEOUT", "60"), 1,
                86400, &idle)) {
        code = 2;
        goto out;
    }
    const char *key_env = pick(f.cloud_key_env, &env, "LOCO_CLOUD_KEY_ENV", "OPENROUTER_API_KEY");
    const char *key = cli_env_get(&env, key_env);
    const char *prompt_path = pick(f.prompt_file, &env, "LOCO_SYSTEM_PROMPT", NULL);
    loco_err err;
    loco_err_clear(&err);
    if (prompt_path) {
        if (file_read_all(prompt_path, &prompt, &err)) {
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
    cfg.cloud_url = pick(f.cloud_url, &env, "LOCO_CLOUD_URL", "https://openrouter.ai/api");
    cfg.cloud_key = key;
    cfg.local_models = pick(f.local_models, &env, "LOCO_LOCAL_MODELS", "claude-haiku-*,*haiku*");
    cfg.fallback_model = pick(f.fallback_model, &env, "LOCO_FALLBACK_MODEL",
                              "qwen/qwen3-coder-next");
    cfg.max_local_turns = turns;
    cfg.local_ctx = ctx;
    cfg.record_dir = pick(f.record, &env, "LOCO_RECORD", NULL);
    cfg.auth_token = pick(f.auth_token, &env, "LOCO_AUTH_TOKEN", NULL);
    cfg.system_prompt = buf_str(&prompt);
    cfg.max_body = (size_t)max_body;
    cfg.ping_interval_ms = ping;
    cfg.local_idle_timeout_ms = timeout * 1000;
    cfg.max_concurrency = (unsigned)inflight;
    cfg.max_connections = (unsigned)conns;
    cfg.idle_timeout_s = (unsigned)idle;
    cfg.log = &log;

    /* block the stop signals before threads start so only sigwait sees them */
    sigset_t set = serve_signals();
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (gateway_start(&cfg, &gw, &err)) {
        fprintf(stderr, "loco serve: %s\n", err.msg);
        if (strstr(err.msg, "in use"))
            fprintf(stderr, "loco serve: another server holds %s; stop it or pick another "
                            "--listen\n", listen);
        goto out;
    }
    fprintf(stderr, "loco serve: listening on http://%s:%d\n", host, gateway_port(gw));
    for (size_t i = 0; i < f.n_local; i++)
        fprintf(stderr, "loco serve: local model server %s (models %s)\n", f.local_urls[i],
                cfg.local_models);
    fprintf(stderr, "loco serve: cloud %s/v1/messages, %s\n", cfg.cloud_url,
            key && *key ? "key set" : "no key: no cloud fallback");
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
    cli_env_release(&env);
    return code;
}
