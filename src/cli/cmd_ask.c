/* cmd_ask.c: `loco ask REPO "question"`: one explorer run (agent/agent.h) over a repository,
 * one line per tool call on stderr as it happens, the answer on stdout. The seed's
 * test_single.sh without Claude Code. */
#include "base/common.h"

#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "base/file.h"
#include "base/str.h"
#include "cli/backend_opts.h"
#include "cli/cli.h"
#include "cli/options.h"

static void ask_usage(FILE *out)
{
    fprintf(out,
            "usage: loco ask REPO \"question\" [options]\n"
            "\n"
            "Explores the repository REPO with the model and its read-only tools (Read, Grep,\n"
            "Glob, Bash, Task) to answer the question. Each tool call is shown on stderr as it\n"
            "happens; the answer goes to stdout. Ctrl-C stops cleanly (exit 130).\n"
            "\n"
            "options:\n"
            "  --out FILE           also write the answer to FILE (atomically)\n"
            "  --transcript FILE    the whole conversation and tool timings as JSONL\n"
            "  --quiet              no tool-call lines\n"
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
    cli_backend_opts_init(&o->backend);
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool bad = false;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            ask_usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--quiet")) {
            o->quiet = true;
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
        else if (pos == 1)
            o->question = a;
        pos++;
    }
    if (pos != 2) {
        fprintf(stderr, "loco ask: give a repository and a question: loco ask REPO \"question\" "
                        "(see --help)\n");
        return 2;
    }
    return 0;
}

static void print_event(void *ctx, const agent_event *e)
{
    const ask_opts *o = ctx;
    if (o->quiet)
        return;
    int indent = 2 + 2 * e->depth;
    if (e->type == AGENT_EV_NOTE) {
        fprintf(stderr, "%*s-- %s\n", indent, "", e->text);
        return;
    }
    if (e->is_error)
        fprintf(stderr, "%*s%s(%s) %.0f ms  error: %s\n", indent, "", e->tool, e->summary,
                e->duration_ms, e->text ? e->text : "");
    else
        fprintf(stderr, "%*s%s(%s) %.0f ms\n", indent, "", e->tool, e->summary, e->duration_ms);
    fflush(stderr);
}

typedef struct {
    agent_config *cfg;
    const char *task;
    agent_result result;
    loco_status rc;
    loco_err err;
} ask_job;

static void ask_work(void *arg)
{
    ask_job *j = arg;
    loco_err_clear(&j->err);
    j->rc = agent_run(j->cfg, j->task, &j->result, &j->err);
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
    cli_env env;
    if (!cli_env_load(&env, o.env_file))
        return 2;
    int code = 1;
    loco_err err;
    loco_err_clear(&err);
    cli_backends *bs = NULL;
    backend *b = NULL;
    char *tpl = NULL, *rules = NULL, *project = NULL, *repo_abs = NULL;
    buf task;
    buf_init(&task, BUF_UNLIMITED);
    answer_place place;
    memset(&place, 0, sizeof(place));
    if (cli_read_text(o.agent.template_file, &tpl, &err) ||
        cli_read_text(o.agent.rules_file, &rules, &err)) {
        fprintf(stderr, "loco ask: %s\n", err.msg);
        goto out;
    }
    project = project_name(o.repo);
    repo_abs = realpath(o.repo, NULL);
    if (!project || !repo_abs || !place_answer(o.out, &place))
        goto out;
    if (agent_task_prompt(tpl, project, o.question, place.file, repo_abs, &task))
        goto out;
    if (cli_backends_open(&o.backend, &env, o.agent.ctx, o.agent.max_turns, &bs, &err) ||
        cli_backends_get(bs, &b, &err)) {
        fprintf(stderr, "loco ask: %s\n", err.msg);
        goto out;
    }
    volatile int cancel = 0;
    agent_config cfg;
    agent_config_init(&cfg);
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
    cfg.event_ctx = &o;
    cfg.transcript_path = o.transcript;
    if (cli_backends_is_hybrid(bs)) {
        cfg.takeover = cli_backends_takeover;
        cfg.takeover_ctx = b;
    }
    if (!o.quiet)
        fprintf(stderr, "loco ask: %s, model %s\n", cli_backends_describe(bs),
                cfg.model ? cfg.model : "(engine)");
    cli_bash_notice("ask", &o.agent);
    ask_job job;
    memset(&job, 0, sizeof(job));
    job.cfg = &cfg;
    job.task = buf_str(&task);
    int sig = cli_run_cancellable(ask_work, &job, &cancel, NULL, NULL);
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
    cli_backends_put(bs, b);
    cli_backends_close(bs);
    release_place(&place);
    buf_release(&task);
    free(tpl);
    free(rules);
    free(project);
    free(repo_abs);
    cli_env_release(&env);
    return code;
}
