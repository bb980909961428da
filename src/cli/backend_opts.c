/* backend_opts.c: --backend and friends for `loco ask` / `loco analyze`: flag parsing, usage,
 * and building the backends (openai-http in qwen text mode, anthropic-http, the in-process
 * engine, and a hybrid of local + cloud per agent run). cli/ only. */
#include "base/common.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/confine.h"
#include "base/buf.h"
#include "base/file.h"
#include "base/models.h"
#include "base/str.h"
#include "base/url.h"
#include "cli/backend_opts.h"
#include "cli/prompt.h"
#include "net/http_client.h"

typedef enum { KIND_OPENAI = 0, KIND_ANTHROPIC, KIND_ENGINE, KIND_HYBRID } backend_kind;

struct cli_backends {
    backend_kind kind;
    http_client *client;
    backend *local;  /* openai or engine (also the only one for openai / engine) */
    backend *cloud;  /* anthropic (the only one for anthropic; hybrid's fallback) */
    backend_hybrid_opts hopts;
    char *model;     /* name sent, or NULL */
    buf prompt;
    char describe[600];
};

void cli_backend_opts_init(cli_backend_opts *o, const char *cmd)
{
    memset(o, 0, sizeof(*o));
    o->cmd = cmd;
}

/* A --backend value: engine, hybrid, or openai: / anthropic: with a URL. */
static bool spec_ok(const char *spec)
{
    if (!strcmp(spec, "engine") || !strcmp(spec, "hybrid"))
        return true;
    if (str_starts_with(spec, "openai:"))
        return url_valid(spec + 7);
    if (str_starts_with(spec, "anthropic:"))
        return url_valid(spec + 10);
    return false;
}

int cli_backend_flag(cli_backend_opts *o, const char *cmd, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = NULL;
    bool bad = false;
    if (!strcmp(a, "--native-tools")) {
        o->native_tools = true;
        return 1;
    }
    if (!strcmp(a, "--no-constrain")) {
        o->no_constrain = true;
        return 1;
    }
    struct {
        const char *flag;
        const char **dst;
    } strs[] = {{"--backend", &o->spec},         {"--model", &o->model},
                {"--key-env", &o->key_env},      {"--local-url", &o->local_url},
                {"--cloud-url", &o->cloud_url},  {"--cloud-model", &o->cloud_model},
                {"--system-prompt", &o->prompt_file}};
    for (size_t k = 0; k < LOCO_ARRAY_LEN(strs); k++) {
        if (!cli_flag_value(argc, argv, i, strs[k].flag, strs[k].dst, &bad))
            continue;
        if (bad)
            return -1;
        const char *val = *strs[k].dst;
        bool is_url = strs[k].dst == &o->local_url || strs[k].dst == &o->cloud_url;
        if (is_url && !url_valid(val)) {
            fprintf(stderr, "loco %s: %s wants an http:// or https:// URL, got '%s'\n", cmd,
                    strs[k].flag, val);
            return -1;
        }
        if (strs[k].dst == &o->spec && !spec_ok(val)) {
            fprintf(stderr,
                    "loco %s: --backend is engine, hybrid, openai:URL or anthropic:URL (an "
                    "http:// or https:// URL), got '%s'\n",
                    cmd, val);
            return -1;
        }
        return 1;
    }
    long n = 0;
    if (cli_flag_value(argc, argv, i, "--timeout", &v, &bad)) {
        if (bad || str_parse_long(v, 1, 86400, &n)) {
            fprintf(stderr, "loco %s: --timeout wants seconds in [1, 86400]\n", cmd);
            return -1;
        }
        o->timeout_s = n;
        return 1;
    }
    if (cli_flag_value(argc, argv, i, "--threads", &v, &bad)) {
        if (bad || str_parse_long(v, 1, 512, &n)) {
            fprintf(stderr, "loco %s: --threads wants an integer in [1, 512]\n", cmd);
            return -1;
        }
        o->engine_threads = (int)n;
        return 1;
    }
    return 0;
}

void cli_backend_usage(FILE *out)
{
    fprintf(
        out,
        "model backend:\n"
        "  --backend SPEC       where the model runs [LOCO_BACKEND] (" CLI_DEFAULT_BACKEND ",\n"
        "                       or engine when --model names a GGUF file or pulled model)\n"
        "                         openai:URL     OpenAI-compatible server (llama-server,\n"
        "                                        vLLM, Ollama, loco serve); URL with or\n"
        "                                        without /v1\n"
        "                         anthropic:URL  Anthropic-compatible cloud (URL/v1/messages;\n"
        "                                        with or without /v1)\n"
        "                         engine         the built-in engine (--model, else the pulled\n"
        "                                        default model)\n"
        "                         hybrid         local first (--local-url, or the engine when\n"
        "                                        --model is a .gguf or REPO:QUANT pulled), cloud\n"
        "                                        fallback and takeover\n"
        "  -m, --model NAME|F.gguf  a GGUF file or a pulled model (REPO:QUANT, file name)\n"
        "                       selects the built-in engine; else the name sent\n"
        "                       (" CLI_DEFAULT_LOCAL_MODEL " locally, " CLI_DEFAULT_CLOUD_MODEL
        " in the cloud)\n"
        "  --native-tools       openai: use the server's own tool calling instead of\n"
        "                       <tool_call> text\n"
        "  --key-env NAME       variable (environment or .env) with the cloud key\n"
        "                       (" CLI_DEFAULT_KEY_ENV ")\n"
        "  --local-url URL      hybrid: local server [LOCO_LOCAL_URL] (http://127.0.0.1:8080)\n"
        "  --cloud-url URL      hybrid: cloud [LOCO_CLOUD_URL] (" CLI_DEFAULT_CLOUD_URL ")\n"
        "  --cloud-model NAME   hybrid: cloud model (" CLI_DEFAULT_CLOUD_MODEL ")\n"
        "  --system-prompt FILE the training system prompt (built in; - reads stdin)\n"
        "  --timeout S          give up on a silent model server after S s (600)\n"
        "  -t, --threads N      engine threads (all cores)\n"
        "  --no-constrain       engine: do not constrain tool calls to valid JSON for the\n"
        "                       offered tools (docs/internals/constrain.md)\n");
}

static const char *pick(const char *flag, const cli_env *env, const char *name, const char *def)
{
    if (flag)
        return flag;
    const char *v = name ? cli_env_get(env, name) : NULL;
    return v && *v ? v : def;
}

bool cli_model_is_file(const char *model)
{
    if (!model)
        return false;
    if (str_ends_with(model, ".gguf"))
        return true;
    char *path = NULL;
    loco_err ignored;
    bool pulled = strchr(model, '/') && models_resolve(model, &path, &ignored) == LOCO_OK &&
                  str_ends_with(path, ".gguf");
    free(path);
    return pulled;
}

static loco_status open_openai(cli_backends *s, const cli_backend_opts *o, const char *url,
                               loco_err *err)
{
    backend_openai_opts oo;
    memset(&oo, 0, sizeof(oo));
    oo.qwen_text = !o->native_tools;
    oo.default_idle_timeout_ms = (o->timeout_s ? o->timeout_s : 600) * 1000;
    return backend_openai_new(s->client, url, &oo, &s->local, err);
}

static loco_status open_engine(cli_backends *s, const cli_backend_opts *o, long ctx,
                               loco_err *err)
{
    char *path = NULL;
    loco_status rc = o->model ? models_resolve(o->model, &path, err)
                              : models_find_default(&path, err);
    if (rc)
        return rc;
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "loco %s", o->cmd ? o->cmd : "");
    cli_warn_ctx(prefix, path, ctx);
    backend_engine_opts eo;
    memset(&eo, 0, sizeof(eo));
    eo.model_path = path;
    eo.ctx = ctx;
    eo.threads = o->engine_threads;
    eo.nfc = true;
    eo.seed = 42;
    eo.constrain = !o->no_constrain;
    rc = backend_engine_new(&eo, &s->local, err);
    free(path);
    return rc;
}

static loco_status open_cloud(cli_backends *s, const cli_backend_opts *o, const cli_env *env,
                              const char *url, loco_err *err)
{
    const char *key_env = o->key_env ? o->key_env : CLI_DEFAULT_KEY_ENV;
    const char *key = cli_env_get(env, key_env);
    if (!key || !*key)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "no cloud API key: set %s in the environment or .env (or name "
                            "another variable with --key-env)",
                            key_env);
    return backend_anthropic_new(s->client, url, key, &s->cloud, err);
}

static loco_status load_prompt(cli_backends *s, const cli_backend_opts *o, loco_err *err)
{
    buf_init(&s->prompt, 1 << 20);
    if (!o->prompt_file) {
        if (buf_appends(&s->prompt, cli_local_system_prompt))
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        return LOCO_OK;
    }
    loco_status rc = cli_read_input(o->prompt_file, &s->prompt, err);
    if (rc)
        loco_err_wrap(err, "--system-prompt");
    return rc;
}

static loco_status open_kind(cli_backends *s, const cli_backend_opts *o, const cli_env *env,
                             const char *spec, long ctx, loco_err *err)
{
    if (str_starts_with(spec, "openai:")) {
        s->kind = KIND_OPENAI;
        snprintf(s->describe, sizeof(s->describe), "openai %s (%s)", spec + 7,
                 o->native_tools ? "native tool calls" : "qwen <tool_call> text");
        return open_openai(s, o, spec + 7, err);
    }
    if (str_starts_with(spec, "anthropic:")) {
        s->kind = KIND_ANTHROPIC;
        snprintf(s->describe, sizeof(s->describe), "anthropic %s", spec + 10);
        return open_cloud(s, o, env, spec + 10, err);
    }
    if (!strcmp(spec, "engine")) {
        s->kind = KIND_ENGINE;
        loco_status rc = open_engine(s, o, ctx, err);
        snprintf(s->describe, sizeof(s->describe), "engine %s",
                 s->local   ? s->local->url
                 : o->model ? o->model
                            : "?");
        return rc;
    }
    if (!strcmp(spec, "hybrid")) {
        s->kind = KIND_HYBRID;
        const char *cloud = pick(o->cloud_url, env, "LOCO_CLOUD_URL", CLI_DEFAULT_CLOUD_URL);
        const char *local_env = pick(o->local_url, env, "LOCO_LOCAL_URL", NULL);
        if (!url_valid(cloud) || (local_env && !url_valid(local_env)))
            return loco_err_set(err, LOCO_ERR_INVALID, "'%s' is not an http:// or https:// URL",
                                url_valid(cloud) ? local_env : cloud);
        loco_status rc;
        if (cli_model_is_file(o->model) && !o->local_url) {
            snprintf(s->describe, sizeof(s->describe), "hybrid: engine %s, cloud %s", o->model,
                     cloud);
            rc = open_engine(s, o, ctx, err);
        } else {
            const char *local = pick(o->local_url, env, "LOCO_LOCAL_URL", "http://127.0.0.1:8080");
            snprintf(s->describe, sizeof(s->describe), "hybrid: local %s, cloud %s", local,
                     cloud);
            rc = open_openai(s, o, local, err);
        }
        return rc ? rc : open_cloud(s, o, env, cloud, err);
    }
    return loco_err_set(err, LOCO_ERR_INVALID,
                        "unknown --backend '%s': use engine, openai:URL, anthropic:URL or "
                        "hybrid",
                        spec);
}

static loco_status pick_model(cli_backends *s, const cli_backend_opts *o)
{
    const char *m = NULL;
    switch (s->kind) {
    case KIND_OPENAI:
        m = o->model ? o->model : CLI_DEFAULT_LOCAL_MODEL;
        break;
    case KIND_ANTHROPIC:
        m = o->model ? o->model : o->cloud_model ? o->cloud_model : CLI_DEFAULT_CLOUD_MODEL;
        break;
    case KIND_HYBRID:
        m = o->model && !cli_model_is_file(o->model) ? o->model : CLI_DEFAULT_LOCAL_MODEL;
        break;
    case KIND_ENGINE:
        m = NULL;
        break;
    }
    if (!m)
        return LOCO_OK;
    s->model = strdup(m);
    return s->model ? LOCO_OK : LOCO_ERR_NOMEM;
}

loco_status cli_backends_open(const cli_backend_opts *o, const cli_env *env, long ctx,
                              long max_turns, cli_backends **out, loco_err *err)
{
    *out = NULL;
    cli_backends *s = calloc(1, sizeof(*s));
    if (!s)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    /* a model file names the engine, unless --backend (or LOCO_BACKEND=hybrid, whose local
     * side it then is) says otherwise */
    const char *spec = pick(o->spec, env, "LOCO_BACKEND", CLI_DEFAULT_BACKEND);
    if (!o->spec && strcmp(spec, "hybrid") && cli_model_is_file(o->model))
        spec = "engine";
    loco_status rc = spec_ok(spec) ? load_prompt(s, o, err)
                                   : loco_err_set(err, LOCO_ERR_INVALID,
                                                  "LOCO_BACKEND '%s' is not engine, hybrid, "
                                                  "openai:URL or anthropic:URL",
                                                  spec);
    if (rc == LOCO_OK)
        rc = http_client_new(&s->client, err);
    if (rc == LOCO_OK)
        rc = open_kind(s, o, env, spec, ctx, err);
    if (rc == LOCO_OK && pick_model(s, o))
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    s->hopts.max_local_turns = max_turns;
    s->hopts.local_ctx = ctx;
    s->hopts.fallback_model = o->cloud_model ? o->cloud_model : CLI_DEFAULT_CLOUD_MODEL;
    if (rc) {
        cli_backends_close(s);
        return rc;
    }
    *out = s;
    return LOCO_OK;
}

loco_status cli_backends_get(cli_backends *s, backend **out, loco_err *err)
{
    switch (s->kind) {
    case KIND_HYBRID:
        return backend_hybrid_new(s->local, s->cloud, &s->hopts, out, err);
    case KIND_ANTHROPIC:
        *out = s->cloud;
        return LOCO_OK;
    default:
        *out = s->local;
        return LOCO_OK;
    }
}

void cli_backends_put(cli_backends *s, backend *b)
{
    if (s && s->kind == KIND_HYBRID)
        backend_free(b);
}

bool cli_backends_is_hybrid(const cli_backends *s)
{
    return s->kind == KIND_HYBRID;
}

loco_status cli_backends_takeover(void *hybrid_backend, loco_err *err)
{
    loco_status rc = backend_hybrid_force_cloud(hybrid_backend);
    if (rc)
        return loco_err_set(err, rc, "the backend cannot hand over to the cloud");
    return LOCO_OK;
}

const char *cli_backends_model(const cli_backends *s)
{
    return s->model;
}

const char *cli_backends_system_prompt(const cli_backends *s)
{
    return buf_str(&s->prompt);
}

const char *cli_backends_describe(const cli_backends *s)
{
    return s->describe;
}

bool cli_backends_serial(const cli_backends *s)
{
    return s->local && !strcmp(s->local->ops->kind, "engine");
}

void cli_backends_close(cli_backends *s)
{
    if (!s)
        return;
    backend_free(s->local);
    backend_free(s->cloud);
    http_client_free(s->client);
    buf_release(&s->prompt);
    free(s->model);
    free(s);
}

/* ---- explorer options ---- */

void cli_agent_opts_init(cli_agent_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->max_turns = AGENT_DEFAULT_MAX_TURNS;
    o->ctx = AGENT_DEFAULT_CONTEXT;
    o->max_tokens = AGENT_DEFAULT_MAX_TOKENS;
    o->temperature = AGENT_DEFAULT_TEMPERATURE;
}

int cli_agent_flag(cli_agent_opts *o, const char *cmd, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = NULL;
    bool bad = false;
    if (!strcmp(a, "--allow-write")) {
        o->allow_write = true;
        return 1;
    }
    if (cli_flag_value(argc, argv, i, "--driver", &v, &bad)) {
        if (bad || (strcmp(v, "native") && strcmp(v, "claude"))) {
            fprintf(stderr, "loco %s: --driver is native or claude\n", cmd);
            return -1;
        }
        o->claude = !strcmp(v, "claude");
        return 1;
    }
    if (!strcmp(a, "--allow-bash-writes")) {
        o->allow_bash_writes = true;
        return 1;
    }
    if (!strcmp(a, "--unsafe-bash")) {
        o->unsafe_bash = true;
        return 1;
    }
    if (cli_flag_value(argc, argv, i, "--prompt-template", &o->template_file, &bad) ||
        cli_flag_value(argc, argv, i, "--rules", &o->rules_file, &bad))
        return bad ? -1 : 1;
    struct {
        const char *flag;
        long *dst;
        long min, max;
    } longs[] = {{"--max-turns", &o->max_turns, 1, 1000},
                 {"--task-turns", &o->sub_turns, 1, 1000},
                 {"--ctx", &o->ctx, 1024, 1L << 24},
                 {"--max-tokens", &o->max_tokens, 16, 1L << 20}};
    for (size_t k = 0; k < LOCO_ARRAY_LEN(longs); k++) {
        if (!cli_flag_value(argc, argv, i, longs[k].flag, &v, &bad))
            continue;
        if (bad || str_parse_long(v, longs[k].min, longs[k].max, longs[k].dst)) {
            fprintf(stderr, "loco %s: %s wants an integer in [%ld, %ld]\n", cmd, longs[k].flag,
                    longs[k].min, longs[k].max);
            return -1;
        }
        o->max_tokens_set |= longs[k].dst == &o->max_tokens;
        return 1;
    }
    if (cli_flag_value(argc, argv, i, "--temperature", &v, &bad)) {
        if (bad || str_parse_double(v, 0, 2, &o->temperature)) {
            fprintf(stderr, "loco %s: --temperature wants a number in [0, 2]\n", cmd);
            return -1;
        }
        return 1;
    }
    return 0;
}

void cli_agent_usage(FILE *out)
{
    fprintf(out,
            "explorer:\n"
            "  --driver D           native: loco runs the explorer loop with the model (default);\n"
            "                       claude: Claude Code (`claude -p`, on PATH or $LOCO_CLAUDE)\n"
            "                       drives, the cloud model as main agent and the local model\n"
            "                       as its Explore sub-agent, through a gateway loco starts on\n"
            "                       a free port (the original pipeline; needs the cloud key)\n"
            "  --max-turns N        model turns with tools (10); then a cloud takeover with\n"
            "                       hybrid, else one last turn asking for the answer\n"
            "  --task-turns N       turn budget of each Task sub-agent (= --max-turns)\n"
            "  -c, --ctx N          the model's context in tokens (51200): tool results are\n"
            "                       cut to fit it (--ctx-size too)\n"
            "  -n, --max-tokens N   tokens per model answer (4096; --n-predict too)\n"
            "  --temperature T      sampling temperature (0.7; --temp too)\n"
            "  --allow-write        Write/Edit may touch the repository (default: only the\n"
            "                       answer's directory)\n"
            "  --allow-bash-writes  no read-only policy for Bash: it may write where Write may\n"
            "                       (the answer's directory; the repository too with\n"
            "                       --allow-write); never the network\n"
            "  --unsafe-bash        run Bash even where the kernel cannot confine it (no\n"
            "                       Landlock, ...), with the protections that remain; without\n"
            "                       it Bash is refused there\n"
            "  --prompt-template F  the task message ({project} {question} {output_file}\n"
            "                       {repo}; built in: prompts/analyze_query.txt, with\n"
            "                       --driver claude prompts/claude_query.txt)\n"
            "  --rules F            explorer rules appended to the system prompt ({repo_root}\n"
            "                       {os} {date}; built in: prompts/explorer_rules.txt)\n");
}

void cli_bash_notice(const char *cmd, const cli_agent_opts *o)
{
    confine_caps caps;
    confine_probe(&caps);
    buf why;
    buf_init(&why, 4096);
    if (confine_describe_missing(&caps, &why)) {
        if (o->unsafe_bash)
            fprintf(stderr, "loco %s: --unsafe-bash: Bash runs without these protections: %s\n",
                    cmd, buf_str(&why));
        else
            fprintf(stderr, "loco %s: Bash is off: this system cannot confine it (missing: %s); "
                            "the model keeps Read, Grep and Glob. Pass --unsafe-bash to run "
                            "Bash with the protections that remain.\n",
                    cmd, buf_str(&why));
    }
    buf_release(&why);
}

loco_status cli_read_text(const char *path, char **out, loco_err *err)
{
    *out = NULL;
    if (!path)
        return LOCO_OK;
    buf b;
    buf_init(&b, 1 << 20);
    loco_status rc = file_read_all(path, &b, err);
    if (rc == LOCO_OK) {
        *out = buf_take(&b, NULL);
        if (!*out)
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    buf_release(&b);
    return rc;
}

/* ---- running with Ctrl-C ---- */

typedef struct {
    void (*fn)(void *arg);
    void *arg;
    pthread_mutex_t mu;
    bool done;
} cancellable;

static void *cancellable_main(void *p)
{
    cancellable *c = p;
    c->fn(c->arg);
    pthread_mutex_lock(&c->mu);
    c->done = true;
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static bool cancellable_done(cancellable *c)
{
    pthread_mutex_lock(&c->mu);
    bool d = c->done;
    pthread_mutex_unlock(&c->mu);
    return d;
}

int cli_run_cancellable(void (*fn)(void *arg), void *arg, volatile int *cancel,
                        void (*tick)(void *ctx), void *tick_ctx)
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    cancellable c = {fn, arg, PTHREAD_MUTEX_INITIALIZER, false};
    pthread_t th;
    if (pthread_create(&th, NULL, cancellable_main, &c) != 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        fn(arg); /* no thread: run here, without Ctrl-C handling */
        return 0;
    }
    int first = 0;
    while (!cancellable_done(&c)) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig > 0) {
            if (first)
                _exit(130);
            first = sig;
            __atomic_store_n(cancel, 1, __ATOMIC_RELEASE); /* read by other threads */
        }
        if (tick)
            tick(tick_ctx);
    }
    pthread_join(th, NULL);
    struct timespec zero = {0, 0};
    int late = sigtimedwait(&set, NULL, &zero); /* one that came as the work ended */
    if (late > 0 && !first)
        first = late;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return first;
}
