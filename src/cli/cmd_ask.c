/* cmd_ask.c: `loco ask REPO "question"`: one explorer run (agent/agent.h) over a repository,
 * one line per tool call on stderr as it happens, the answer on stdout. The seed's
 * test_single.sh without Claude Code. */
#include "base/common.h"

#include <libgen.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "base/file.h"
#include "base/log.h"
#include "base/str.h"
#include "cli/backend_opts.h"
#include "cli/claude.h"
#include "cli/cli.h"
#include "cli/options.h"
#include "cli/progress.h"

static void ask_usage(FILE *out)
{
    fprintf(out,
            "usage: loco ask REPO \"question\" [options]\n"
            "       loco ask REPO -p \"question\" [options]\n"
            "\n"
            "Explores the repository REPO with the model and its read-only tools (Read, Grep,\n"
            "Glob, Bash, Task) to answer the question (- reads it from standard input). The\n"
            "model load, each model turn (prompt and generated tokens, time) and each tool call\n"
            "are shown on stderr as they happen, with a spinner on a terminal; the answer goes\n"
            "to stdout. Ctrl-C stops cleanly (exit 130).\n"
            "\n"
            "options:\n"
            "  -p, --prompt TEXT    the question (instead of the second operand)\n"
            "  -o, --out FILE       also write the answer to FILE (atomically)\n"
            "  --transcript FILE    the whole conversation and tool timings as JSONL\n"
            "  -q, --quiet          no progress, turn or tool-call lines\n"
            "  --env-file FILE      read settings from FILE instead of ./.env\n"
            "  -h, --help           this help\n");
    cli_agent_usage(out);
    cli_backend_usage(out);
}

typedef struct {
    const char *repo, *question, *out, *transcript, *env_file;
    bool quiet;
    cli_agent_opts agent;
    cli_backend_opts backend;
} ask_opts;

/* 0 ok, 1 help printed, 2 usage error */
static int parse_ask(int argc, char **argv, ask_opts *o)
{
    cli_agent_opts_init(&o->agent);
    cli_backend_opts_init(&o->backend, "ask");
    int pos = 0;
    bool prompt_flag = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool bad = false;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            ask_usage(stdout);
            return 1;
        }
        if (cli_flag(a, "--quiet")) {
            o->quiet = true;
            continue;
        }
        if (cli_flag_value(argc, argv, &i, "--prompt", &o->question, &bad)) {
            if (bad)
                return 2;
            prompt_flag = true;
            continue;
        }
        if (cli_flag_value(argc, argv, &i, "--out", &o->out, &bad) ||
            cli_flag_value(argc, argv, &i, "--transcript", &o->transcript, &bad) ||
            cli_flag_value(argc, argv, &i, "--env-file", &o->env_file, &bad)) {
            if (bad)
                return 2;
            continue;
        }
        int r = cli_agent_flag(&o->agent, "ask", argc, argv, &i);
        if (r == 0)
            r = cli_backend_flag(&o->backend, "ask", argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "loco ask: unknown option '%s' (see loco ask --help)\n", a);
            return 2;
        }
        if (pos == 0)
            o->repo = a;
        else if (pos == 1 && !prompt_flag)
            o->question = a;
        pos++;
    }
    if (pos != 2 - prompt_flag) {
        fprintf(stderr, "loco ask: give a repository and a question: loco ask REPO \"question\" "
                        "(see --help)\n");
        return 2;
    }
    return 0;
}

/* What the user sees while a question runs: one line per tool call, per model turn (prompt
 * and generated tokens, time) and per note, and on a terminal a spinner with the time the
 * current step has taken. Events come from the agent's threads, ticks from the main thread. */
typedef struct {
    cli_progress prog;
    pthread_mutex_t mu;
    bool quiet;
    bool active;            /* the spinner is wanted (a step is under way) */
    const char *idle_label; /* shown between steps (the claude driver), else nothing */
} ask_display;

static void display_init(ask_display *d, bool quiet)
{
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&d->mu, NULL);
    d->quiet = quiet;
    cli_progress_init(&d->prog, "", CLI_PROGRESS_TIME, 0);
    if (quiet)
        d->prog.quiet = true;
}

/* Shows the spinner with label (NULL: hides it). Caller holds d->mu. */
static void display_step(ask_display *d, const char *label)
{
    if (!label && d->idle_label && d->active && !strcmp(d->prog.label, d->idle_label))
        return;
    if (!label)
        label = d->idle_label;
    if (!label) {
        cli_progress_clear(&d->prog);
        d->active = false;
        return;
    }
    cli_progress_reset(&d->prog, label, 0, 0);
    d->active = true;
}

static void display_line(ask_display *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void display_line(ask_display *d, const char *fmt, ...)
{
    if (d->quiet)
        return;
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    cli_progress_line(&d->prog, "%s", line);
}

static void display_tick(void *ctx)
{
    ask_display *d = ctx;
    pthread_mutex_lock(&d->mu);
    if (d->active && !d->quiet)
        cli_progress_update(&d->prog, 0);
    pthread_mutex_unlock(&d->mu);
}

static void display_release(ask_display *d)
{
    pthread_mutex_lock(&d->mu);
    d->idle_label = NULL;
    display_step(d, NULL);
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_destroy(&d->mu);
}

/* "1234 prompt + 87 generated tokens, " or "" when the backend did not say. */
static void token_text(const agent_event *e, char *out, size_t n)
{
    out[0] = '\0';
    if (e->prompt_tokens >= 0 && e->gen_tokens >= 0)
        snprintf(out, n, "%ld prompt + %ld generated tokens, ", e->prompt_tokens, e->gen_tokens);
    else if (e->gen_tokens >= 0)
        snprintf(out, n, "%ld generated tokens, ", e->gen_tokens);
}

static void print_event(void *ctx, const agent_event *e)
{
    ask_display *d = ctx;
    pthread_mutex_lock(&d->mu);
    int indent = 2 + 2 * e->depth;
    char label[160];
    switch (e->type) {
    case AGENT_EV_NOTE: display_line(d, "%*s-- %s", indent, "", e->text); break;
    case AGENT_EV_TURN_START:
        snprintf(label, sizeof(label), "%*sturn %d: the model is thinking", indent - 2, "",
                 e->turn);
        display_step(d, label);
        break;
    case AGENT_EV_TURN: {
        char toks[96];
        token_text(e, toks, sizeof(toks));
        if (e->is_error)
            display_line(d, "%*sturn %d: failed after %.1f s", indent, "", e->turn,
                         e->duration_ms / 1000.0);
        else
            display_line(d, "%*sturn %d: %s%.1f s%s", indent, "", e->turn, toks,
                         e->duration_ms / 1000.0, e->calls ? "" : ", no tool call");
        if (e->calls) {
            snprintf(label, sizeof(label), "%*srunning %zu tool call%s", indent - 2, "", e->calls,
                     e->calls == 1 ? "" : "s");
            display_step(d, label);
        } else {
            display_step(d, NULL);
        }
        break;
    }
    case AGENT_EV_TOOL:
        if (e->is_error)
            display_line(d, "%*s%s(%s) %.0f ms  error: %s", indent, "", e->tool, e->summary,
                         e->duration_ms, e->text ? e->text : "");
        else
            display_line(d, "%*s%s(%s) %.0f ms", indent, "", e->tool, e->summary, e->duration_ms);
        break;
    }
    pthread_mutex_unlock(&d->mu);
}

typedef struct {
    agent_config *cfg;
    cli_claude *claude;
    cli_claude_run_opts *claude_run;
    const char *task;
    agent_result result;
    loco_status rc;
    loco_err err;
} ask_job;

static void ask_work(void *arg)
{
    ask_job *j = arg;
    loco_err_clear(&j->err);
    if (j->claude)
        j->rc = cli_claude_run(j->claude, j->claude_run, &j->result, &j->err);
    else
        j->rc = agent_run(j->cfg, j->task, &j->result, &j->err);
}

/* Opening the backends (loading the engine's model) on a worker thread, with the spinner. */
typedef struct {
    const ask_opts *o;
    const cli_env *env;
    cli_backends *bs;
    cli_claude *claude;
    loco_status rc;
    loco_err err;
} open_job;

static void open_work(void *arg)
{
    open_job *j = arg;
    loco_err_clear(&j->err);
    if (j->o->agent.claude) {
        cli_claude_opts co = {.cmd = "loco ask",
                              .backend = &j->o->backend,
                              .max_turns = j->o->agent.max_turns,
                              .ctx = j->o->agent.ctx,
                              .max_tokens = j->o->agent.max_tokens_set ? j->o->agent.max_tokens : 0,
                              .allow_bash_writes = j->o->agent.allow_bash_writes};
        j->rc = cli_claude_new(&co, j->env, &j->claude, &j->err);
    } else {
        j->rc = cli_backends_open(&j->o->backend, j->env, j->o->agent.ctx, j->o->agent.max_turns,
                                  &j->bs, &j->err);
    }
}

/* Absolute form of path (which need not exist): malloc'd. */
static char *absolute(const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    char cwd[4096];
    if (!getcwd(cwd, sizeof(cwd)))
        return NULL;
    size_t n = strlen(cwd) + strlen(path) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", cwd, path);
    return s;
}

/* Where the answer goes: --out FILE, else a scratch directory removed at the end. */
typedef struct {
    char *file;
    char *dir;
    char scratch[64];
} answer_place;

static bool place_answer(const char *out, answer_place *p)
{
    memset(p, 0, sizeof(*p));
    if (!out) {
        snprintf(p->scratch, sizeof(p->scratch), "/tmp/loco-ask-XXXXXX");
        if (!mkdtemp(p->scratch)) {
            fprintf(stderr, "loco ask: cannot create a scratch directory: %s\n", strerror(errno));
            return false;
        }
        p->dir = strdup(p->scratch);
        size_t n = strlen(p->scratch) + 16;
        p->file = malloc(n);
        if (p->file)
            snprintf(p->file, n, "%s/answer.md", p->scratch);
        return p->dir && p->file;
    }
    p->file = absolute(out);
    char *copy = p->file ? strdup(p->file) : NULL;
    p->dir = copy ? strdup(dirname(copy)) : NULL;
    free(copy);
    loco_err err;
    if (p->dir && file_mkdirs(p->dir, &err)) {
        fprintf(stderr, "loco ask: %s\n", err.msg);
        return false;
    }
    return p->file && p->dir;
}

static void release_place(answer_place *p)
{
    if (p->scratch[0]) {
        if (p->file)
            unlink(p->file);
        rmdir(p->scratch);
    }
    free(p->file);
    free(p->dir);
}

static char *project_name(const char *repo)
{
    char *real = realpath(repo, NULL);
    if (!real)
        return NULL;
    char *name = strdup(basename(real));
    free(real);
    return name;
}

static int print_answer(const ask_job *j, const answer_place *p)
{
    if (j->result.model_wrote_answer) {
        buf b;
        buf_init(&b, 64u << 20);
        loco_err err;
        if (file_read_all(p->file, &b, &err) == LOCO_OK) {
            fwrite(b.data ? b.data : "", 1, b.len, stdout);
            if (b.len && b.data[b.len - 1] != '\n')
                fputc('\n', stdout);
            buf_release(&b);
            return 0;
        }
        buf_release(&b);
    }
    printf("%s\n", j->result.answer ? j->result.answer : "");
    return 0;
}

/* The path the claude driver's task names: "<answer>.partial.md", renamed when done. */
static char *scratch_name(const char *file)
{
    size_t n = strlen(file) + 16;
    char *s = malloc(n);
    if (!s)
        return NULL;
    size_t base = str_ends_with(file, ".md") ? strlen(file) - 3 : strlen(file);
    snprintf(s, n, "%.*s.partial.md", (int)base, file);
    return s;
}

/* --prompt - or a question "-": standard input, trimmed. */
static char *read_question(const char *q)
{
    if (strcmp(q, "-") != 0)
        return strdup(q);
    buf b;
    buf_init(&b, 1 << 20);
    loco_err err;
    if (cli_read_input("-", &b, &err)) {
        fprintf(stderr, "loco ask: %s\n", err.msg);
        buf_release(&b);
        return NULL;
    }
    while (b.len &&
           (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r' || b.data[b.len - 1] == ' '))
        b.data[--b.len] = '\0';
    if (!b.len) {
        fprintf(stderr, "loco ask: the question on standard input is empty\n");
        buf_release(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

int cmd_ask(int argc, char **argv)
{
    ask_opts o;
    memset(&o, 0, sizeof(o));
    int pr = parse_ask(argc, argv, &o);
    if (pr)
        return pr == 1 ? 0 : 2;
    struct stat st;
    if (stat(o.repo, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "loco ask: the repository '%s' is not a directory\n", o.repo);
        return 2;
    }
    char *question = read_question(o.question);
    if (!question)
        return 2;
    cli_env env;
    if (!cli_env_load(&env, o.env_file)) {
        free(question);
        return 2;
    }
    int code = 1;
    loco_err err;
    loco_err_clear(&err);
    cli_backends *bs = NULL;
    cli_claude *claude = NULL;
    backend *b = NULL;
    char *tpl = NULL, *rules = NULL, *project = NULL, *repo_abs = NULL, *scratch = NULL;
    buf task;
    buf_init(&task, BUF_UNLIMITED);
    answer_place place;
    memset(&place, 0, sizeof(place));
    ask_display d;
    display_init(&d, o.quiet);
    volatile int cancel = 0;
    if (cli_read_text(o.agent.template_file, &tpl, &err) ||
        cli_read_text(o.agent.rules_file, &rules, &err)) {
        fprintf(stderr, "loco ask: %s\n", err.msg);
        goto out;
    }
    project = project_name(o.repo);
    repo_abs = realpath(o.repo, NULL);
    if (!project || !repo_abs || !place_answer(o.out, &place))
        goto out;
    scratch = o.agent.claude ? scratch_name(place.file) : NULL;
    if (agent_task_prompt(tpl              ? tpl
                          : o.agent.claude ? cli_claude_task_template
                                           : NULL,
                          project, question, o.agent.claude ? scratch : place.file, repo_abs,
                          &task))
        goto out;

    open_job oj = {.o = &o, .env = &env};
    pthread_mutex_lock(&d.mu);
    display_step(&d, "loading the model");
    pthread_mutex_unlock(&d.mu);
    double t_open = clock_now_ms();
    int sig = cli_run_cancellable(open_work, &oj, &cancel, display_tick, &d);
    pthread_mutex_lock(&d.mu);
    display_step(&d, NULL);
    pthread_mutex_unlock(&d.mu);
    bs = oj.bs;
    claude = oj.claude;
    if (sig) {
        fprintf(stderr, "loco ask: interrupted; no answer written\n");
        code = 130;
        goto out;
    }
    if (oj.rc) {
        fprintf(stderr, "loco ask: %s\n", oj.err.msg);
        goto out;
    }
    if (bs && cli_backends_get(bs, &b, &err)) {
        fprintf(stderr, "loco ask: %s\n", err.msg);
        goto out;
    }
    agent_config cfg;
    agent_config_init(&cfg);
    cli_claude_run_opts cr;
    memset(&cr, 0, sizeof(cr));
    if (claude) {
        cr.repo = repo_abs;
        cr.task = buf_str(&task);
        cr.answer_file = place.file;
        cr.scratch_answer = scratch;
        cr.transcript_path = o.transcript;
        cr.cancel = &cancel;
        cr.on_event = print_event;
        cr.event_ctx = &d;
        if (!o.quiet)
            fprintf(stderr, "loco ask: %s\n", cli_claude_describe(claude));
    } else {
        cfg.backend = b;
        cfg.model = cli_backends_model(bs);
        cfg.system_prompt = cli_backends_system_prompt(bs);
        cfg.rules = rules;
        cfg.repo_root = repo_abs;
        cfg.out_dir = place.dir;
        cfg.answer_file = place.file;
        cfg.allow_write = o.agent.allow_write;
        cfg.allow_bash_writes = o.agent.allow_bash_writes;
        cfg.unsafe_bash = o.agent.unsafe_bash;
        cfg.max_turns = (int)o.agent.max_turns;
        cfg.sub_max_turns = (int)(o.agent.sub_turns ? o.agent.sub_turns : o.agent.max_turns);
        cfg.temperature = o.agent.temperature;
        cfg.context_tokens = o.agent.ctx;
        cfg.max_tokens = o.agent.max_tokens;
        cfg.cancel = &cancel;
        cfg.on_event = print_event;
        cfg.event_ctx = &d;
        cfg.transcript_path = o.transcript;
        if (cli_backends_is_hybrid(bs)) {
            cfg.takeover = cli_backends_takeover;
            cfg.takeover_ctx = b;
        }
        if (!o.quiet) {
            fprintf(stderr, "loco ask: %s%s%s\n", cli_backends_describe(bs),
                    cfg.model ? ", model " : "", cfg.model ? cfg.model : "");
            if (cli_backends_serial(bs))
                fprintf(stderr, "loco ask: model loaded in %.1f s\n",
                        (clock_now_ms() - t_open) / 1000.0);
        }
        cli_bash_notice("ask", &o.agent);
    }
    ask_job job;
    memset(&job, 0, sizeof(job));
    job.cfg = &cfg;
    job.claude = claude;
    job.claude_run = &cr;
    job.task = buf_str(&task);
    if (claude) {
        pthread_mutex_lock(&d.mu);
        d.idle_label = "Claude Code is working";
        display_step(&d, NULL);
        pthread_mutex_unlock(&d.mu);
    }
    sig = cli_run_cancellable(ask_work, &job, &cancel, display_tick, &d);
    pthread_mutex_lock(&d.mu);
    d.idle_label = NULL;
    display_step(&d, NULL);
    pthread_mutex_unlock(&d.mu);
    if (sig || job.rc == LOCO_ERR_CANCELLED) {
        fprintf(stderr, "loco ask: interrupted; no answer written\n");
        code = 130;
    } else if (job.rc) {
        fprintf(stderr, "loco ask: %s\n", job.err.msg);
        if (job.rc == LOCO_ERR_UNAVAILABLE)
            fprintf(stderr, "loco ask: is the model server running? (llama-server -m "
                            "LocoOperator-4B.gguf --ctx-size 51200 --port 8080), or pick "
                            "another --backend\n");
    } else {
        if (!o.quiet)
            fprintf(stderr, "loco ask: %d turns, %zu tool calls (%zu failed)%s%s, %.1f s\n",
                    job.result.turns, job.result.tool_calls, job.result.tool_errors,
                    job.result.hit_turn_limit ? ", turn limit reached" : "",
                    job.result.took_over ? ", cloud took over" : "",
                    job.result.duration_ms / 1000.0);
        code = print_answer(&job, &place);
        if (o.out && !o.quiet)
            fprintf(stderr, "loco ask: answer saved to %s\n", place.file);
    }
    agent_result_release(&job.result);
out:
    display_release(&d);
    cli_backends_put(bs, b);
    cli_backends_close(bs);
    cli_claude_free(claude);
    release_place(&place);
    buf_release(&task);
    free(tpl);
    free(rules);
    free(project);
    free(repo_abs);
    free(scratch);
    free(question);
    cli_env_release(&env);
    return code;
}
