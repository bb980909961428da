/* claude.c: Claude Code as the driver of a question (see claude.h): the settings `loco setup`
 * writes, the in-process gateway, and one `claude -p` process per question whose stream-json
 * output becomes the transcript, the progress events and the answer. cli/ only. */
#include "base/common.h"

#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "base/models.h"
#include "base/os.h"
#include "base/str.h"
#include "base/url.h"
#include "cli/claude.h"
#include "cli/prompt.h"
#include "gateway/gateway.h"

extern char **environ;

/* Keep equal to prompts/claude_query.txt (test_claude checks). */
const char cli_claude_task_template[] =
    "Analyze the {project} codebase at {repo} to answer this question: {question}\n"
    "Delegate the searching to the Explore agent (it runs on a fast local model): give it "
    "precise questions and the paths that matter, and check what it reports before you rely "
    "on it. Write your answer in Markdown, citing the files (with line numbers) that support "
    "it, and save it to {output_file}\n";

#define CLAUDE_LINE_MAX (64u << 20) /* one stream-json line (a tool result can be large) */
#define CLAUDE_STDERR_KEEP 2048     /* the tail of claude's stderr kept for messages */
#define CLAUDE_PENDING_MAX 256      /* tool calls waiting for their result */
#define CLAUDE_STOP_GRACE_MS 3000   /* SIGTERM, then SIGKILL after this */

/* ---- the settings and the Explore agent ---- */

static const char explore_description[] =
    "Fast read-only codebase explorer, run by the local LocoOperator-4B model through loco. "
    "Use it to find files, search code and answer questions about the codebase; give it one "
    "clear question and the paths that matter. It does not edit files.";
static const char explore_tools[] = "Read, Grep, Glob, Bash";
static const char explore_prompt[] =
    "You are a file search specialist. Explore the codebase read-only with Read, Grep, Glob "
    "and Bash (never write, move or delete files), use absolute paths, and answer with the "
    "facts you found and the file paths (with line numbers) that support them. No emojis.\n";

loco_status cli_claude_explore_md(buf *out)
{
    return buf_appendf(out, "---\nname: Explore\ndescription: %s\ntools: %s\nmodel: haiku\n---\n%s",
                       explore_description, explore_tools, explore_prompt);
}

/* --agents JSON: the same agent for one session. */
static char *explore_agents_json(void)
{
    json_t *tools = json_array();
    json_array_append_new(tools, json_string("Read"));
    json_array_append_new(tools, json_string("Grep"));
    json_array_append_new(tools, json_string("Glob"));
    json_array_append_new(tools, json_string("Bash"));
    json_t *agent = json_object();
    json_object_set_new(agent, "description", json_string(explore_description));
    json_object_set_new(agent, "prompt", json_string(explore_prompt));
    json_object_set_new(agent, "tools", tools);
    json_object_set_new(agent, "model", json_string("haiku"));
    json_t *root = json_object();
    json_object_set_new(root, "Explore", agent);
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

static json_t *settings_json(const char *base_url, const char *token, const char *main_model,
                             const char *haiku_model)
{
    json_t *e = json_object();
    json_object_set_new(e, "ANTHROPIC_BASE_URL", json_string(base_url));
    json_object_set_new(e, "ANTHROPIC_AUTH_TOKEN", json_string(token));
    json_object_set_new(e, "ANTHROPIC_API_KEY", json_string(""));
    json_object_set_new(e, "ANTHROPIC_DEFAULT_OPUS_MODEL", json_string(main_model));
    json_object_set_new(e, "ANTHROPIC_DEFAULT_HAIKU_MODEL", json_string(haiku_model));
    json_object_set_new(e, "ANTHROPIC_DEFAULT_SONNET_MODEL", json_string(main_model));
    json_t *root = json_object();
    json_object_set_new(root, "env", e);
    return root;
}

loco_status cli_claude_settings(const char *base_url, const char *token, const char *main_model,
                                const char *haiku_model, buf *out)
{
    json_t *root = settings_json(base_url, token, main_model, haiku_model);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return LOCO_ERR_NOMEM;
    loco_status rc = buf_appends(out, text);
    if (!rc)
        rc = buf_appendc(out, '\n');
    free(text);
    return rc;
}

/* ---- the driver ---- */

struct cli_claude {
    char *bin; /* claude's path */
    char *cmd;
    gateway *gw;
    char base_url[64];
    char token[64];
    char *settings; /* --settings JSON */
    char *agents;   /* --agents JSON */
    char *main_model;
    char *model_path; /* the engine's model, or NULL (a local server) */
    bool allow_bash_writes;
    char describe[800];
    buf prompt; /* the local model's system prompt */
};

/* claude's path: $LOCO_CLAUDE, else the first executable "claude" on PATH; NULL when none. */
static char *find_claude(const cli_env *env)
{
    const char *named = cli_env_get(env, "LOCO_CLAUDE");
    if (named && *named)
        return access(named, X_OK) == 0 ? strdup(named) : NULL;
    const char *path = getenv("PATH");
    if (!path)
        return NULL;
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        char cand[4200];
        snprintf(cand, sizeof(cand), "%.*s/claude", (int)(n ? n : 1), n ? p : ".");
        struct stat st;
        if (n < 4000 && stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
            return strdup(cand);
        p += n;
        if (*p == ':')
            p++;
    }
    return NULL;
}

static const char *pick(const char *flag, const cli_env *env, const char *name, const char *def)
{
    if (flag)
        return flag;
    const char *v = name ? cli_env_get(env, name) : NULL;
    return v && *v ? v : def;
}

/* The local side: the in-process engine when --model names a model file (or --backend
 * engine; the store's model when none is named) and no server is given, in *out_model (malloc'd);
 * else the server: --local-url, else the URL of --backend openai:URL, else $LOCO_LOCAL_URL,
 * else llama-server's default. */
static loco_status local_side(const cli_backend_opts *b, const cli_env *env, const char **out_url,
                              char **out_model, loco_err *err)
{
    *out_url = NULL;
    *out_model = NULL;
    const char *spec = pick(b->spec, env, "LOCO_BACKEND", NULL);
    bool server = b->local_url || (spec && str_starts_with(spec, "openai:"));
    bool engine = (spec && !strcmp(spec, "engine")) || cli_model_is_file(b->model);
    if (engine && !server)
        return b->model ? models_resolve(b->model, out_model, err)
                        : models_find_default(out_model, err);
    if (b->local_url)
        *out_url = b->local_url;
    else if (spec && str_starts_with(spec, "openai:"))
        *out_url = spec + 7;
    else
        *out_url = pick(NULL, env, "LOCO_LOCAL_URL", "http://127.0.0.1:8080");
    return LOCO_OK;
}

loco_status cli_claude_new(const cli_claude_opts *o, const cli_env *env, cli_claude **out,
                           loco_err *err)
{
    *out = NULL;
    const cli_backend_opts *b = o->backend;
    char *bin = find_claude(env);
    if (!bin)
        return loco_err_set(err, LOCO_ERR_NOT_FOUND,
                            "--driver claude runs Claude Code, but no `claude` is on PATH%s: "
                            "install it with `npm install -g @anthropic-ai/claude-code` (or "
                            "see https://docs.anthropic.com/en/docs/claude-code), or name it "
                            "with LOCO_CLAUDE=/path/to/claude",
                            cli_env_get(env, "LOCO_CLAUDE") ? " (nor at $LOCO_CLAUDE)" : "");
    const char *key_env = b->key_env ? b->key_env : CLI_DEFAULT_KEY_ENV;
    const char *key = cli_env_get(env, key_env);
    const char *cloud = pick(b->cloud_url, env, "LOCO_CLOUD_URL", CLI_DEFAULT_CLOUD_URL);
    const char *local = NULL;
    char *model_path = NULL;
    if (!key || !*key) {
        free(bin);
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "--driver claude runs the main agent in the cloud: set %s in the "
                            "environment or .env (or name another variable with --key-env)",
                            key_env);
    }
    loco_status rc = local_side(b, env, &local, &model_path, err);
    if (!rc && (!url_valid(cloud) || (local && !url_valid(local))))
        rc = loco_err_set(err, LOCO_ERR_INVALID, "'%s' is not an http:// or https:// URL",
                          url_valid(cloud) ? local : cloud);
    if (rc) {
        free(bin);
        free(model_path);
        return rc;
    }
    cli_claude *c = calloc(1, sizeof(*c));
    if (!c) {
        free(bin);
        free(model_path);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    c->model_path = model_path;
    c->bin = bin;
    c->cmd = strdup(o->cmd);
    c->allow_bash_writes = o->allow_bash_writes;
    c->main_model = strdup(b->cloud_model ? b->cloud_model : CLI_DEFAULT_CLOUD_MODEL);
    buf_init(&c->prompt, 1 << 20);
    if (b->prompt_file)
        rc = cli_read_input(b->prompt_file, &c->prompt, err);
    else if (buf_appends(&c->prompt, cli_local_system_prompt))
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    if (rc)
        goto fail;
    str_random_id("loco-", c->token, sizeof(c->token));

    static const loco_log quiet_log = {cli_log_sink, NULL, LOG_WARN};
    static const loco_log verbose_log = {cli_log_sink, NULL, LOG_INFO};
    gateway_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    const char *urls[1] = {local};
    cfg.listen_host = "127.0.0.1";
    cfg.listen_port = 0;
    cfg.local_urls = local ? urls : NULL;
    cfg.n_local_urls = local ? 1 : 0;
    if (model_path) {
        char prefix[80];
        snprintf(prefix, sizeof(prefix), "%s", o->cmd);
        cli_warn_ctx(prefix, model_path, o->ctx);
        cfg.engine.model_path = model_path;
        cfg.engine.ctx = o->ctx;
        cfg.engine.threads = b->engine_threads;
        cfg.engine.no_constrain = b->no_constrain;
    }
    cfg.cloud_url = cloud;
    cfg.cloud_key = key;
    cfg.local_models = "claude-haiku-*,*haiku*";
    cfg.fallback_model = c->main_model;
    cfg.max_local_turns = o->max_turns;
    cfg.local_ctx = o->ctx;
    cfg.local_max_tokens = o->max_tokens;
    cfg.auth_token = c->token;
    cfg.system_prompt = buf_str(&c->prompt);
    cfg.local_idle_timeout_ms = (b->timeout_s ? b->timeout_s : 600) * 1000;
    cfg.log = o->verbose ? &verbose_log : &quiet_log;
    rc = gateway_start(&cfg, &c->gw, err);
    if (rc) {
        loco_err_wrap(err, "cannot start the gateway for Claude Code");
        goto fail;
    }
    snprintf(c->base_url, sizeof(c->base_url), "http://127.0.0.1:%d", gateway_port(c->gw));
    json_t *settings = settings_json(c->base_url, c->token, c->main_model, CLI_CLAUDE_HAIKU_MODEL);
    c->settings = json_dumps(settings, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(settings);
    c->agents = explore_agents_json();
    if (!c->settings || !c->agents || !c->cmd || !c->main_model) {
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    snprintf(c->describe, sizeof(c->describe),
             "Claude Code (%s) through the gateway on %s: main agent %s in the cloud %s, "
             "Explore sub-agent on %s %s",
             c->bin, c->base_url, c->main_model, cloud,
             model_path ? "the built-in engine," : "the local server",
             model_path ? model_path : local);
    *out = c;
    return LOCO_OK;
fail:
    cli_claude_free(c);
    return rc;
}

const char *cli_claude_describe(const cli_claude *c)
{
    return c->describe;
}

void cli_claude_free(cli_claude *c)
{
    if (!c)
        return;
    gateway_stop(c->gw);
    free(c->bin);
    free(c->cmd);
    free(c->settings);
    free(c->agents);
    free(c->main_model);
    free(c->model_path);
    buf_release(&c->prompt);
    free(c);
}

/* ---- one run ---- */

/* Read-only shell commands the main agent and Explore may run without --allow-bash-writes. */
static const char *const read_only_bash[] = {
    "Bash(ls:*)",       "Bash(cat:*)",          "Bash(head:*)",    "Bash(tail:*)",
    "Bash(wc:*)",       "Bash(grep:*)",         "Bash(rg:*)",      "Bash(find:*)",
    "Bash(tree:*)",     "Bash(file:*)",         "Bash(git log:*)", "Bash(git show:*)",
    "Bash(git grep:*)", "Bash(git ls-files:*)", "Bash(pwd)",
};

typedef struct {
    char *argv[64];
    size_t n;
} arg_list;

static bool env_overridden(const char *entry)
{
    static const char *const names[] = {
        "ANTHROPIC_BASE_URL=",
        "ANTHROPIC_AUTH_TOKEN=",
        "ANTHROPIC_API_KEY=",
        "ANTHROPIC_MODEL=",
        "ANTHROPIC_DEFAULT_OPUS_MODEL=",
        "ANTHROPIC_DEFAULT_SONNET_MODEL=",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL=",
        "ANTHROPIC_SMALL_FAST_MODEL=",
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(names); i++) {
        if (str_starts_with(entry, names[i]))
            return true;
    }
    return false;
}

/* The environment of claude: ours without the ANTHROPIC_* names the settings set, plus them
 * (so an inherited key or URL cannot send the session elsewhere). *out_store owns the added
 * strings. */
static char **child_env(const cli_claude *c, char ***out_store)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 8, sizeof(char *));
    char **store = calloc(8, sizeof(char *));
    if (!envp || !store) {
        free(envp);
        free(store);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!env_overridden(environ[i]))
            envp[k++] = environ[i];
    }
    const char *pairs[][2] = {{"ANTHROPIC_BASE_URL", c->base_url},
                              {"ANTHROPIC_AUTH_TOKEN", c->token},
                              {"ANTHROPIC_API_KEY", ""},
                              {"ANTHROPIC_DEFAULT_OPUS_MODEL", c->main_model},
                              {"ANTHROPIC_DEFAULT_SONNET_MODEL", c->main_model},
                              {"ANTHROPIC_DEFAULT_HAIKU_MODEL", CLI_CLAUDE_HAIKU_MODEL}};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(pairs); i++) {
        size_t len = strlen(pairs[i][0]) + strlen(pairs[i][1]) + 2;
        store[i] = malloc(len);
        if (!store[i])
            break;
        snprintf(store[i], len, "%s=%s", pairs[i][0], pairs[i][1]);
        envp[k++] = store[i];
    }
    *out_store = store;
    return envp;
}

static void free_env(char **envp, char **store)
{
    if (store) {
        for (size_t i = 0; i < 8; i++)
            free(store[i]);
    }
    free(store);
    free(envp);
}

/* A tool call seen in the stream, waiting for its result. */
typedef struct {
    char id[96];
    char tool[48];
    char summary[200];
    int depth;
    double t0;
} pending_call;

/* What one run learns from the stream. */
typedef struct {
    const cli_claude_run_opts *r;
    FILE *transcript;
    agent_result *res;
    char *result_text; /* the "result" event's text */
    bool result_error; /* its is_error */
    bool saw_result;
    char last_id[2][160]; /* the last assistant message id per depth (0, 1) */
    int sub_turns;        /* assistant messages of sub-agents */
    pending_call pending[CLAUDE_PENDING_MAX];
    size_t n_pending;
} stream_state;

static void emit(stream_state *s, const agent_event *ev)
{
    if (s->r->on_event)
        s->r->on_event(s->r->event_ctx, ev);
}

static const char *text_of(const json_t *content, char *out, size_t n)
{
    out[0] = '\0';
    if (json_is_string(content)) {
        snprintf(out, n, "%s", json_string_value(content));
    } else if (json_is_array(content)) {
        size_t i;
        json_t *b;
        json_array_foreach (content, i, b) {
            const char *t = json_get_str(b, "text");
            if (t) {
                snprintf(out, n, "%s", t);
                break;
            }
        }
    }
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = '\0';
    return out;
}

static void on_assistant(stream_state *s, const json_t *msg, int depth)
{
    const char *id = json_get_str(msg, "id");
    if (id && strcmp(id, s->last_id[depth]) != 0) {
        snprintf(s->last_id[depth], sizeof(s->last_id[depth]), "%s", id);
        agent_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = AGENT_EV_TURN;
        ev.depth = depth;
        json_t *usage = json_object_get(msg, "usage");
        long in = -1, outn = -1;
        json_get_long(usage, "input_tokens", &in);
        json_get_long(usage, "output_tokens", &outn);
        ev.prompt_tokens = in;
        ev.gen_tokens = outn;
        if (depth == 0)
            s->res->turns++;
        else
            s->sub_turns++;
        ev.turn = depth == 0 ? s->res->turns : s->sub_turns;
        emit(s, &ev);
    }
    json_t *content = json_object_get(msg, "content");
    size_t i;
    json_t *b;
    json_array_foreach (content, i, b) {
        const char *type = json_get_str(b, "type");
        if (!type || strcmp(type, "tool_use") || s->n_pending >= CLAUDE_PENDING_MAX)
            continue;
        const char *name = json_get_str(b, "name");
        const char *tid = json_get_str(b, "id");
        char *args = json_dumps(json_object_get(b, "input"), JSON_COMPACT);
        pending_call *p = &s->pending[s->n_pending++];
        snprintf(p->id, sizeof(p->id), "%s", tid ? tid : "");
        snprintf(p->tool, sizeof(p->tool), "%s", name ? name : "?");
        agent_summarize_call(p->tool, args, s->r->repo, p->summary, sizeof(p->summary));
        free(args);
        p->depth = depth;
        p->t0 = clock_now_ms();
        s->res->tool_calls++;
        if (!strcmp(p->tool, "Agent") || !strcmp(p->tool, "Task")) {
            char note[300];
            snprintf(note, sizeof(note), "sub-agent: %s", p->summary);
            agent_event ev = {.type = AGENT_EV_NOTE, .depth = depth, .text = note};
            emit(s, &ev);
        }
    }
}

static void on_user(stream_state *s, const json_t *msg)
{
    json_t *content = json_object_get(msg, "content");
    size_t i;
    json_t *b;
    json_array_foreach (content, i, b) {
        const char *type = json_get_str(b, "type");
        const char *tid = json_get_str(b, "tool_use_id");
        if (!type || strcmp(type, "tool_result") || !tid)
            continue;
        for (size_t k = 0; k < s->n_pending; k++) {
            if (strcmp(s->pending[k].id, tid))
                continue;
            bool is_error = false;
            json_get_bool(b, "is_error", &is_error);
            char first[300];
            agent_event ev;
            memset(&ev, 0, sizeof(ev));
            ev.type = AGENT_EV_TOOL;
            ev.depth = s->pending[k].depth;
            ev.tool = s->pending[k].tool;
            ev.summary = s->pending[k].summary;
            ev.duration_ms = clock_now_ms() - s->pending[k].t0;
            ev.is_error = is_error;
            ev.text = is_error ? text_of(json_object_get(b, "content"), first, sizeof(first))
                               : NULL;
            if (is_error)
                s->res->tool_errors++;
            emit(s, &ev);
            s->pending[k] = s->pending[--s->n_pending];
            break;
        }
    }
}

/* One line of claude's stream-json output. */
static void on_line(stream_state *s, const char *line, size_t n)
{
    if (s->transcript) {
        fwrite(line, 1, n, s->transcript);
        fputc('\n', s->transcript);
    }
    json_t *ev = json_parse(line, n, NULL);
    if (!json_is_object(ev)) {
        json_decref(ev);
        return;
    }
    const char *type = json_get_str(ev, "type");
    const char *parent = json_get_str(ev, "parent_tool_use_id");
    int depth = parent && *parent ? 1 : 0;
    json_t *msg = json_object_get(ev, "message");
    if (type && !strcmp(type, "assistant") && json_is_object(msg)) {
        on_assistant(s, msg, depth);
    } else if (type && !strcmp(type, "user") && json_is_object(msg)) {
        on_user(s, msg);
    } else if (type && !strcmp(type, "result")) {
        s->saw_result = true;
        const char *text = json_get_str(ev, "result");
        free(s->result_text);
        s->result_text = text ? strdup(text) : NULL;
        json_get_bool(ev, "is_error", &s->result_error);
        const char *sub = json_get_str(ev, "subtype");
        if (sub && strcmp(sub, "success"))
            s->result_error = true;
    }
    json_decref(ev);
}

/* Feeds complete lines of b to on_line and keeps the rest. */
static void drain_lines(stream_state *s, buf *b, bool eof)
{
    size_t start = 0;
    for (size_t i = 0; i < b->len; i++) {
        if (b->data[i] != '\n')
            continue;
        if (i > start)
            on_line(s, b->data + start, i - start);
        start = i + 1;
    }
    if (eof && start < b->len) {
        on_line(s, b->data + start, b->len - start);
        start = b->len;
    }
    buf_consume(b, start);
}

static void push_arg(arg_list *a, const char *s)
{
    if (a->n + 1 < LOCO_ARRAY_LEN(a->argv))
        a->argv[a->n++] = (char *)(uintptr_t)s; /* posix_spawn's argv is char *const[] */
}

static void build_args(const cli_claude *c, const cli_claude_run_opts *r, const char *out_dir,
                       arg_list *a, buf *tools)
{
    memset(a, 0, sizeof(*a));
    push_arg(a, c->bin);
    push_arg(a, "-p");
    push_arg(a, r->task);
    push_arg(a, "--model");
    push_arg(a, "sonnet");
    push_arg(a, "--output-format");
    push_arg(a, "stream-json");
    push_arg(a, "--verbose");
    push_arg(a, "--settings");
    push_arg(a, c->settings);
    push_arg(a, "--agents");
    push_arg(a, c->agents);
    push_arg(a, "--add-dir");
    push_arg(a, out_dir);
    /* edits are accepted inside the repository and the answer's folder; everything else must
     * be on the list (a headless run refuses what it would have to ask about) */
    push_arg(a, "--permission-mode");
    push_arg(a, "acceptEdits");
    buf_appends(tools, "Read,Grep,Glob,LS,Agent,Task,Write,Edit,TodoWrite");
    if (c->allow_bash_writes) {
        buf_appends(tools, ",Bash");
    } else {
        for (size_t i = 0; i < LOCO_ARRAY_LEN(read_only_bash); i++)
            buf_appendf(tools, ",%s", read_only_bash[i]);
    }
    push_arg(a, "--allowedTools");
    push_arg(a, buf_str(tools));
    a->argv[a->n] = NULL;
}

/* Starts claude in r->repo with its stdout and stderr on pipes. fork + exec (not posix_spawn,
 * which cannot change directory portably); the child only calls async-signal-safe functions. */
static loco_status spawn_claude(const cli_claude *c, const cli_claude_run_opts *r,
                                const char *out_dir, pid_t *pid, int *out_fd, int *err_fd,
                                loco_err *err)
{
    /* one spawn at a time in this process, so no other claude inherits this one's pipes
     * where pipe2 is missing (analyze runs several questions at once) */
    static pthread_mutex_t spawn_mu = PTHREAD_MUTEX_INITIALIZER;
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    pthread_mutex_lock(&spawn_mu);
    if (os_pipe_cloexec(po) || os_pipe_cloexec(pe)) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0)
                close(po[i]);
            if (pe[i] >= 0)
                close(pe[i]);
        }
        pthread_mutex_unlock(&spawn_mu);
        return loco_err_set(err, LOCO_ERR_IO, "pipe: %s", strerror(e));
    }
    arg_list a;
    buf tools;
    buf_init(&tools, 1 << 16);
    build_args(c, r, out_dir, &a, &tools);
    char **store = NULL;
    char **envp = child_env(c, &store);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t child = -1;
    int e = ENOMEM;
    if (envp && devnull >= 0) {
        child = fork();
        if (child == 0) {
            /* its own process group, so a stop reaches the shells it starts too; default
             * signals, nothing blocked (this thread runs with SIGINT and SIGTERM blocked) */
            setpgid(0, 0);
            struct sigaction dfl;
            memset(&dfl, 0, sizeof(dfl));
            dfl.sa_handler = SIG_DFL;
            sigaction(SIGINT, &dfl, NULL);
            sigaction(SIGTERM, &dfl, NULL);
            sigaction(SIGPIPE, &dfl, NULL);
            sigset_t none;
            sigemptyset(&none);
            pthread_sigmask(SIG_SETMASK, &none, NULL);
            if (dup2(devnull, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0 ||
                chdir(r->repo) != 0)
                _exit(127);
            execve(c->bin, a.argv, envp);
            _exit(127);
        }
        e = errno;
    } else if (devnull < 0) {
        e = errno;
    }
    if (devnull >= 0)
        close(devnull);
    close(po[1]);
    close(pe[1]);
    pthread_mutex_unlock(&spawn_mu);
    free_env(envp, store);
    buf_release(&tools);
    if (child < 0) {
        close(po[0]);
        close(pe[0]);
        return loco_err_set(err, LOCO_ERR_IO, "cannot start %s: %s", c->bin, strerror(e));
    }
    setpgid(child, child); /* also here, so the group exists before any signal is sent */
    *pid = child;
    *out_fd = po[0];
    *err_fd = pe[0];
    return LOCO_OK;
}

/* Stops claude's process group: SIGTERM, then SIGKILL after a grace period. */
static void stop_group(pid_t pid)
{
    kill(-pid, SIGTERM);
    for (int i = 0; i < CLAUDE_STOP_GRACE_MS / 50; i++) {
        if (waitpid(pid, NULL, WNOHANG) != 0)
            return;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Reads claude's output until both pipes close (or a cancel); returns its wait status, or -1
 * when it was stopped. */
static int pump(stream_state *s, pid_t pid, int out_fd, int err_fd, buf *stderr_tail)
{
    buf line;
    buf_init(&line, CLAUDE_LINE_MAX);
    bool out_open = true, err_open = true, stopped = false;
    char chunk[65536];
    while (out_open || err_open) {
        if (s->r->cancel && *s->r->cancel) {
            stop_group(pid);
            stopped = true;
            break;
        }
        struct pollfd fds[2] = {{out_open ? out_fd : -1, POLLIN, 0},
                                {err_open ? err_fd : -1, POLLIN, 0}};
        int n = poll(fds, 2, 100);
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        if (fds[0].revents) {
            ssize_t got = read(out_fd, chunk, sizeof(chunk));
            if (got <= 0) {
                out_open = false;
            } else if (buf_append(&line, chunk, (size_t)got)) {
                buf_reset(&line); /* one line past the limit: dropped */
            }
            drain_lines(s, &line, !out_open);
        }
        if (fds[1].revents) {
            ssize_t got = read(err_fd, chunk, sizeof(chunk));
            if (got <= 0) {
                err_open = false;
            } else {
                buf_append(stderr_tail, chunk, (size_t)got);
                if (stderr_tail->len > CLAUDE_STDERR_KEEP)
                    buf_consume(stderr_tail, stderr_tail->len - CLAUDE_STDERR_KEEP);
            }
        }
    }
    buf_release(&line);
    int status = -1;
    if (!stopped) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    return stopped ? -1 : status;
}

/* The last non-empty line of text, printable, at most n - 1 bytes. */
static void last_line(const char *text, char *out, size_t n)
{
    out[0] = '\0';
    size_t len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        len--;
    size_t start = len;
    while (start && text[start - 1] != '\n')
        start--;
    size_t k = 0;
    for (size_t i = start; i < len && k + 1 < n; i++)
        out[k++] = (unsigned char)text[i] < ' ' ? ' ' : text[i];
    out[k] = '\0';
}

static loco_status collect_answer(const cli_claude_run_opts *r, stream_state *s, agent_result *out,
                                  loco_err *err)
{
    bool same = !strcmp(r->scratch_answer, r->answer_file);
    if (file_exists(r->scratch_answer)) {
        out->model_wrote_answer = true;
        out->answer_file_written = true;
        out->answer = strdup("");
        if (!same && rename(r->scratch_answer, r->answer_file) != 0)
            return loco_err_set(err, LOCO_ERR_IO, "cannot rename '%s' to '%s': %s",
                                r->scratch_answer, r->answer_file, strerror(errno));
        return out->answer ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    const char *text = s->result_text ? s->result_text : "";
    while (*text == '\n' || *text == ' ')
        text++;
    if (!*text)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "Claude Code finished without an answer (no %s, no final message)",
                            r->scratch_answer);
    size_t n = strlen(text);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    loco_status rc = buf_append(&b, text, n);
    if (!rc && text[n - 1] != '\n')
        rc = buf_appendc(&b, '\n');
    if (!rc)
        rc = file_write_atomic(r->answer_file, b.data, b.len, 0644, err);
    else
        loco_err_set(err, rc, "out of memory");
    if (!rc) {
        while (n && text[n - 1] == '\n')
            n--;
        out->answer = str_ndup(text, n);
        out->answer_len = n;
        out->answer_file_written = true;
        if (!out->answer)
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    buf_release(&b);
    return rc;
}

loco_status cli_claude_run(cli_claude *c, const cli_claude_run_opts *r, agent_result *out,
                           loco_err *err)
{
    memset(out, 0, sizeof(*out));
    double t0 = clock_now_ms();
    stream_state *s = calloc(1, sizeof(*s));
    if (!s)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    s->r = r;
    s->res = out;
    buf tail;
    buf_init(&tail, CLAUDE_STDERR_KEEP * 4);
    char *dir = strdup(r->answer_file);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    loco_status rc = LOCO_OK;
    if (!slash) {
        rc = loco_err_set(err, LOCO_ERR_INVALID, "the answer file must be an absolute path");
        goto out;
    }
    *slash = '\0';
    if (r->transcript_path) {
        s->transcript = fopen(r->transcript_path, "w");
        if (!s->transcript) {
            rc = loco_err_set(err, LOCO_ERR_IO, "cannot write '%s': %s", r->transcript_path,
                              strerror(errno));
            goto out;
        }
    }
    unlink(r->scratch_answer); /* a leftover of an interrupted run is not an answer */
    pid_t pid = -1;
    int out_fd = -1, err_fd = -1;
    rc = spawn_claude(c, r, dir[0] ? dir : "/", &pid, &out_fd, &err_fd, err);
    if (rc)
        goto out;
    int status = pump(s, pid, out_fd, err_fd, &tail);
    close(out_fd);
    close(err_fd);
    if (status == -1) {
        rc = loco_err_set(err, LOCO_ERR_CANCELLED, "cancelled");
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || s->result_error ||
               !s->saw_result) {
        char why[300];
        last_line(s->result_error && s->result_text ? s->result_text : buf_str(&tail), why,
                  sizeof(why));
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !s->saw_result && !why[0])
            snprintf(why, sizeof(why), "cannot run %s in %s", c->bin, r->repo);
        char how[64];
        if (WIFEXITED(status))
            snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
        else
            snprintf(how, sizeof(how), "signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        rc = loco_err_set(err, LOCO_ERR_UPSTREAM, "Claude Code failed (%s)%s%s", how,
                          why[0] ? ": " : "", why);
    } else {
        rc = collect_answer(r, s, out, err);
    }
out:
    if (rc && strcmp(r->scratch_answer, r->answer_file))
        unlink(r->scratch_answer);
    if (s->transcript && fclose(s->transcript) != 0 && !rc)
        rc = loco_err_set(err, LOCO_ERR_IO, "cannot write '%s'", r->transcript_path);
    out->duration_ms = clock_now_ms() - t0;
    free(s->result_text);
    free(s);
    free(dir);
    buf_release(&tail);
    return rc;
}
