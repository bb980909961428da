/* cmd_analyze.c: `loco analyze PROJECT`: runs every question of a queries file
 * (agent/queries.h) through the explorer (agent/agent.h) over data/repos/PROJECT, answers in
 * OUT/PROJECT/qNNN.md, in parallel jobs, resuming past existing answers. The seed's analyze.sh
 * without Claude Code. */
#include "base/common.h"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/queries.h"
#include "base/file.h"
#include "base/log.h"
#include "base/str.h"
#include "cli/backend_opts.h"
#include "cli/claude.h"
#include "cli/cli.h"
#include "cli/options.h"
#include "cli/progress.h"

#define ANALYZE_MAX_JOBS 64

static void analyze_usage(FILE *out)
{
    fprintf(out,
            "usage: loco analyze PROJECT [options]\n"
            "\n"
            "Answers every question of the queries file about the repository REPOS/PROJECT.\n"
            "Answers go to OUT/PROJECT/qNNN.md (written atomically; existing answers are\n"
            "skipped, so a rerun resumes), transcripts to OUT/PROJECT/qNNN.jsonl. A failing\n"
            "question never stops the batch; Ctrl-C stops cleanly (exit 130) without partial\n"
            "answers. A progress bar with an ETA shows on a terminal (plain lines otherwise).\n"
            "\n"
            "The queries file has one question per line, ID<TAB>question: ID a positive integer\n"
            "(7 answers to q007.md), blank lines and lines starting with # ignored; a bad or\n"
            "repeated line is reported with its number and skipped. Without --queries it is\n"
            "data/queries/PROJECT-queries.txt here, else the one installed with loco\n"
            "(PREFIX/share/loco/queries, or $LOCO_DATA_DIR/queries): tqdm-queries.txt, the\n"
            "seed's questions about https://github.com/tqdm/tqdm, and requests-queries.txt,\n"
            "about https://github.com/psf/requests. For example:\n"
            "  git clone --depth 1 https://github.com/tqdm/tqdm data/repos/tqdm\n"
            "  loco analyze tqdm --jobs 4\n"
            "\n"
            "options:\n"
            "  --queries FILE       the questions (- reads standard input)\n"
            "  --repos DIR          where the projects are (data/repos)\n"
            "  -o, --out DIR        where answers go (data/outputs)\n"
            "  -j, --jobs N         questions at once (1; the seed used 5)\n"
            "  -v, --verbose        also print every model turn and tool call\n"
            "  --env-file FILE      read settings from FILE instead of ./.env\n"
            "  -h, --help           this help\n");
    cli_agent_usage(out);
    cli_backend_usage(out);
}

typedef struct {
    const char *project, *queries, *repos, *out, *env_file;
    long jobs;
    bool verbose;
    cli_agent_opts agent;
    cli_backend_opts backend;
} analyze_opts;

static int parse_analyze(int argc, char **argv, analyze_opts *o)
{
    cli_agent_opts_init(&o->agent);
    cli_backend_opts_init(&o->backend, "analyze");
    o->repos = "data/repos";
    o->out = "data/outputs";
    o->jobs = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        bool bad = false;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            analyze_usage(stdout);
            return 1;
        }
        if (cli_flag(a, "--verbose")) {
            o->verbose = true;
            continue;
        }
        if (cli_flag_value(argc, argv, &i, "--queries", &o->queries, &bad) ||
            cli_flag_value(argc, argv, &i, "--repos", &o->repos, &bad) ||
            cli_flag_value(argc, argv, &i, "--out", &o->out, &bad) ||
            cli_flag_value(argc, argv, &i, "--env-file", &o->env_file, &bad)) {
            if (bad)
                return 2;
            continue;
        }
        if (cli_flag_value(argc, argv, &i, "--jobs", &v, &bad)) {
            if (bad || str_parse_long(v, 1, ANALYZE_MAX_JOBS, &o->jobs)) {
                fprintf(stderr, "loco analyze: --jobs wants an integer in [1, %d]\n",
                        ANALYZE_MAX_JOBS);
                return 2;
            }
            continue;
        }
        int r = cli_agent_flag(&o->agent, "analyze", argc, argv, &i);
        if (r == 0)
            r = cli_backend_flag(&o->backend, "analyze", argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if ((a[0] == '-' && a[1]) || o->project) {
            fprintf(stderr, "loco analyze: unexpected '%s' (see loco analyze --help)\n", a);
            return 2;
        }
        o->project = a;
    }
    if (!o->project || !*o->project || strchr(o->project, '/') || !strcmp(o->project, "..") ||
        !strcmp(o->project, ".")) {
        fprintf(stderr, "loco analyze: give a project name (a folder of --repos): loco analyze "
                        "PROJECT (see --help)\n");
        return 2;
    }
    return 0;
}

/* ---- the batch ---- */

typedef enum { Q_PENDING = 0, Q_SKIPPED, Q_RUNNING, Q_DONE, Q_FAILED, Q_INTERRUPTED } q_state;

typedef struct {
    const analyze_opts *o;
    const agent_queries *qs;
    q_state *state;
    cli_backends *bs;
    cli_claude *claude; /* --driver claude */
    const char *tpl, *rules;
    char *repo;     /* absolute */
    char *out_dir;  /* absolute OUT/PROJECT */
    volatile int cancel;
    pthread_mutex_t mu; /* next, counters, the display */
    size_t next;
    size_t done, failed, skipped, interrupted, to_run;
    double t0;
    cli_progress prog;
    bool saw_unavailable; /* a question failed because the model server was unreachable */
} batch;

static void tick(void *ctx)
{
    batch *b = ctx;
    pthread_mutex_lock(&b->mu);
    cli_progress_update(&b->prog, b->done + b->failed);
    pthread_mutex_unlock(&b->mu);
}

typedef struct {
    batch *b;
    long id;
} job_ctx;

static void on_event(void *ctx, const agent_event *e)
{
    job_ctx *j = ctx;
    batch *b = j->b;
    if (!b->o->verbose || e->type == AGENT_EV_TURN_START)
        return;
    pthread_mutex_lock(&b->mu);
    int ind = 2 * e->depth;
    if (e->type == AGENT_EV_NOTE) {
        cli_progress_line(&b->prog, "q%03ld %*s-- %s", j->id, ind, "", e->text);
    } else if (e->type == AGENT_EV_TURN) {
        if (e->prompt_tokens >= 0 && e->gen_tokens >= 0)
            cli_progress_line(&b->prog,
                              "q%03ld %*sturn %d: %ld prompt + %ld generated tokens, "
                              "%.1f s",
                              j->id, ind, "", e->turn, e->prompt_tokens, e->gen_tokens,
                              e->duration_ms / 1000.0);
        else
            cli_progress_line(&b->prog, "q%03ld %*sturn %d: %.1f s", j->id, ind, "", e->turn,
                              e->duration_ms / 1000.0);
    } else {
        cli_progress_line(&b->prog, "q%03ld %*s%s(%s) %.0f ms%s%s", j->id, ind, "", e->tool,
                          e->summary, e->duration_ms, e->is_error ? "  error: " : "",
                          e->is_error && e->text ? e->text : "");
    }
    pthread_mutex_unlock(&b->mu);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static void report(batch *b, const agent_query *q, q_state st, const agent_result *r,
                   const loco_err *err, double ms)
{
    pthread_mutex_lock(&b->mu);
    if (st == Q_DONE) {
        b->done++;
        cli_progress_line(&b->prog, "q%03ld done: %d turns, %zu tool calls%s%s, %.1f s", q->id,
                          r->turns, r->tool_calls, r->hit_turn_limit ? ", turn limit" : "",
                          r->took_over ? ", cloud took over" : "", ms / 1000.0);
    } else if (st == Q_FAILED) {
        b->failed++;
        b->saw_unavailable |= err->code == LOCO_ERR_UNAVAILABLE;
        cli_progress_line(&b->prog, "q%03ld failed: %s", q->id, err->msg);
    } else {
        b->interrupted++;
    }
    cli_progress_update(&b->prog, b->done + b->failed);
    pthread_mutex_unlock(&b->mu);
}

/* One question through Claude Code: its task names qNNN.partial.md, renamed when done. */
static loco_status run_claude(batch *b, const agent_query *q, const char *answer,
                              const char *transcript, job_ctx *jc, agent_result *r, loco_err *err)
{
    char name[40];
    agent_query_file_name(q->id, "partial.md", name, sizeof(name));
    char *scratch = join(b->out_dir, name);
    buf task;
    buf_init(&task, BUF_UNLIMITED);
    loco_status rc = LOCO_ERR_NOMEM;
    if (!scratch || agent_task_prompt(b->tpl ? b->tpl : cli_claude_task_template, b->o->project,
                                      q->question, scratch, b->repo, &task)) {
        loco_err_set(err, rc, "out of memory");
    } else {
        cli_claude_run_opts cr = {.repo = b->repo,
                                  .task = buf_str(&task),
                                  .answer_file = answer,
                                  .scratch_answer = scratch,
                                  .transcript_path = transcript,
                                  .cancel = &b->cancel,
                                  .on_event = on_event,
                                  .event_ctx = jc};
        rc = cli_claude_run(b->claude, &cr, r, err);
    }
    buf_release(&task);
    free(scratch);
    return rc;
}

static void run_query(batch *b, size_t k)
{
    const agent_query *q = &b->qs->items[k];
    char name[32], tname[32];
    agent_query_file_name(q->id, "md", name, sizeof(name));
    agent_query_file_name(q->id, "jsonl", tname, sizeof(tname));
    char *answer = join(b->out_dir, name), *transcript = join(b->out_dir, tname);
    buf task;
    buf_init(&task, BUF_UNLIMITED);
    loco_err err;
    loco_err_clear(&err);
    agent_result r;
    memset(&r, 0, sizeof(r));
    backend *be = NULL;
    double t0 = clock_now_ms();
    loco_status rc = LOCO_ERR_NOMEM;
    job_ctx jc = {b, q->id};
    if (!answer || !transcript) {
        loco_err_set(&err, rc, "out of memory");
        goto out;
    }
    if (b->claude) {
        rc = run_claude(b, q, answer, transcript, &jc, &r, &err);
        goto out;
    }
    if (agent_task_prompt(b->tpl, b->o->project, q->question, answer, b->repo, &task)) {
        loco_err_set(&err, rc, "out of memory");
        goto out;
    }
    rc = cli_backends_get(b->bs, &be, &err);
    if (rc)
        goto out;
    agent_config cfg;
    agent_config_init(&cfg);
    cfg.backend = be;
    cfg.model = cli_backends_model(b->bs);
    cfg.system_prompt = cli_backends_system_prompt(b->bs);
    cfg.rules = b->rules;
    cfg.repo_root = b->repo;
    cfg.out_dir = b->out_dir;
    cfg.answer_file = answer;
    cfg.allow_write = b->o->agent.allow_write;
    cfg.allow_bash_writes = b->o->agent.allow_bash_writes;
    cfg.unsafe_bash = b->o->agent.unsafe_bash;
    cfg.max_turns = (int)b->o->agent.max_turns;
    cfg.sub_max_turns = (int)(b->o->agent.sub_turns ? b->o->agent.sub_turns
                                                    : b->o->agent.max_turns);
    cfg.temperature = b->o->agent.temperature;
    cfg.context_tokens = b->o->agent.ctx;
    cfg.max_tokens = b->o->agent.max_tokens;
    cfg.threads = 2;
    cfg.cancel = &b->cancel;
    cfg.on_event = on_event;
    cfg.event_ctx = &jc;
    cfg.transcript_path = transcript;
    if (cli_backends_is_hybrid(b->bs)) {
        cfg.takeover = cli_backends_takeover;
        cfg.takeover_ctx = be;
    }
    rc = agent_run(&cfg, buf_str(&task), &r, &err);
out:
    if (__atomic_load_n(&b->cancel, __ATOMIC_ACQUIRE) && rc != LOCO_OK)
        rc = LOCO_ERR_CANCELLED;
    b->state[k] = rc == LOCO_OK ? Q_DONE : rc == LOCO_ERR_CANCELLED ? Q_INTERRUPTED : Q_FAILED;
    report(b, q, b->state[k], &r, &err, clock_now_ms() - t0);
    agent_result_release(&r);
    cli_backends_put(b->bs, be);
    buf_release(&task);
    free(answer);
    free(transcript);
}

static void *worker(void *arg)
{
    batch *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (b->next < b->qs->n && b->state[b->next] != Q_PENDING)
            b->next++;
        size_t k = b->next;
        if (k < b->qs->n && !__atomic_load_n(&b->cancel, __ATOMIC_ACQUIRE))
            b->state[k] = Q_RUNNING;
        pthread_mutex_unlock(&b->mu);
        if (k >= b->qs->n || __atomic_load_n(&b->cancel, __ATOMIC_ACQUIRE))
            return NULL;
        run_query(b, k);
    }
}

typedef struct {
    batch *b;
    long jobs;
} pool_arg;

static void run_pool(void *arg)
{
    pool_arg *p = arg;
    pthread_t th[ANALYZE_MAX_JOBS];
    long started = 0;
    for (long i = 0; i < p->jobs; i++) {
        if (pthread_create(&th[i], NULL, worker, p->b) != 0)
            break;
        started++;
    }
    if (started == 0)
        worker(p->b);
    for (long i = 0; i < started; i++)
        pthread_join(th[i], NULL);
}

/* Marks questions whose answer exists as skipped; returns how many are left to run. */
static size_t mark_existing(batch *b)
{
    size_t left = 0;
    for (size_t k = 0; k < b->qs->n; k++) {
        char name[32];
        agent_query_file_name(b->qs->items[k].id, "md", name, sizeof(name));
        char *path = join(b->out_dir, name);
        if (path && file_exists(path)) {
            b->state[k] = Q_SKIPPED;
            b->skipped++;
        } else {
            left++;
        }
        free(path);
    }
    return left;
}

/* Where the questions are: --queries, else data/queries/PROJECT-queries.txt here, else the
 * installed copy ($LOCO_DATA_DIR/queries, else LOCO_DATA_DIR/queries). Into path (size n);
 * false (printed) when none exists. */
static bool find_queries(const analyze_opts *o, char *path, size_t n)
{
    if (o->queries) {
        snprintf(path, n, "%s", o->queries);
        return true;
    }
    snprintf(path, n, "data/queries/%s-queries.txt", o->project);
    if (file_exists(path))
        return true;
    char data[4096], installed[4400];
    snprintf(installed, sizeof(installed), "%s/queries/%s-queries.txt",
             cli_data_dir(data, sizeof(data)), o->project);
    int len = snprintf(path, n, "%s", installed);
    if (len >= 0 && (size_t)len < n && file_exists(installed))
        return true;
    snprintf(path, n, "data/queries/%s-queries.txt", o->project);
    fprintf(stderr,
            "loco analyze: no questions for '%s': neither %s nor %s exists; write one "
            "(ID<TAB>question per line, see loco analyze --help) or pass --queries FILE\n",
            o->project, path, installed);
    return false;
}

static bool load_queries(const char *path, agent_queries *qs)
{
    loco_err err;
    loco_err_clear(&err);
    buf text;
    buf_init(&text, AGENT_QUERIES_MAX_BYTES);
    loco_status rc = cli_read_input(path, &text, &err);
    if (!rc)
        rc = agent_queries_parse(text.data ? text.data : "", text.len, qs, &err);
    buf_release(&text);
    const char *name = strcmp(path, "-") ? path : "standard input";
    if (rc) {
        fprintf(stderr, "loco analyze: %s\n", err.msg);
        if (err.code == LOCO_ERR_NOT_FOUND)
            fprintf(stderr, "loco analyze: write one question per line as ID<TAB>question "
                            "(see loco analyze --help), or pass --queries FILE\n");
        return false;
    }
    for (size_t i = 0; i < qs->n_problems; i++)
        fprintf(stderr, "loco analyze: %s:%zu: %s (skipped)\n", name, qs->problems[i].line,
                qs->problems[i].message);
    if (qs->n == 0) {
        fprintf(stderr, "loco analyze: %s holds no questions (see loco analyze --help)\n", name);
        return false;
    }
    return true;
}

static char *resolve_dirs(const analyze_opts *o, char **out_dir)
{
    char *rel = join(o->repos, o->project);
    char *repo = rel ? realpath(rel, NULL) : NULL;
    struct stat st;
    if (!repo || stat(repo, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr,
                "loco analyze: the repository %s is not a directory: clone the project there "
                "(git clone --depth 1 URL %s) or pass --repos DIR\n",
                rel ? rel : o->project, rel ? rel : o->project);
        free(rel);
        free(repo);
        return NULL;
    }
    free(rel);
    char *out_rel = join(o->out, o->project);
    loco_err err;
    if (!out_rel || file_mkdirs(out_rel, &err)) {
        fprintf(stderr, "loco analyze: %s\n", out_rel ? err.msg : "out of memory");
        free(out_rel);
        free(repo);
        return NULL;
    }
    *out_dir = realpath(out_rel, NULL);
    free(out_rel);
    if (!*out_dir) {
        free(repo);
        return NULL;
    }
    return repo;
}

static int finish(batch *b, int sig)
{
    pthread_mutex_lock(&b->mu);
    cli_progress_clear(&b->prog);
    pthread_mutex_unlock(&b->mu);
    char el[32];
    cli_format_duration((clock_now_ms() - b->t0) / 1000.0, el, sizeof(el));
    size_t not_run = b->to_run - b->done - b->failed;
    fprintf(stderr, "loco analyze %s: %zu done, %zu skipped, %zu failed", b->o->project, b->done,
            b->skipped, b->failed);
    if (sig)
        fprintf(stderr, ", %zu not finished (interrupted)", not_run);
    fprintf(stderr, " of %zu in %s; answers in %s\n", b->qs->n, el, b->out_dir);
    if (b->saw_unavailable)
        fprintf(stderr, "loco analyze: is the model server running? (llama-server -m "
                        "LocoOperator-4B.gguf --ctx-size 51200 --port 8080), or pick another "
                        "--backend\n");
    if (sig) {
        fprintf(stderr, "loco analyze: rerun the same command to continue\n");
        return 130;
    }
    return b->failed ? 1 : 0;
}

/* Opening the backends or Claude Code's gateway (loading the engine's model) off the main
 * thread, so Ctrl-C and the spinner work meanwhile. */
typedef struct {
    batch *b;
    const cli_env *env;
    loco_status rc;
    loco_err err;
} open_job;

static void open_work(void *arg)
{
    open_job *j = arg;
    const analyze_opts *o = j->b->o;
    loco_err_clear(&j->err);
    if (o->agent.claude) {
        cli_claude_opts co = {.cmd = "loco analyze",
                              .backend = &o->backend,
                              .max_turns = o->agent.max_turns,
                              .ctx = o->agent.ctx,
                              .max_tokens = o->agent.max_tokens_set ? o->agent.max_tokens : 0,
                              .allow_bash_writes = o->agent.allow_bash_writes,
                              .verbose = o->verbose};
        j->rc = cli_claude_new(&co, j->env, &j->b->claude, &j->err);
    } else {
        j->rc = cli_backends_open(&o->backend, j->env, o->agent.ctx, o->agent.max_turns, &j->b->bs,
                                  &j->err);
    }
}

static void open_tick(void *ctx)
{
    batch *b = ctx;
    cli_progress_update(&b->prog, 0);
}

int cmd_analyze(int argc, char **argv)
{
    analyze_opts o;
    memset(&o, 0, sizeof(o));
    int pr = parse_analyze(argc, argv, &o);
    if (pr)
        return pr == 1 ? 0 : 2;
    cli_env env;
    if (!cli_env_load(&env, o.env_file))
        return 2;
    int code = 1;
    char qpath[4096];
    agent_queries qs;
    memset(&qs, 0, sizeof(qs));
    batch b;
    memset(&b, 0, sizeof(b));
    pthread_mutex_init(&b.mu, NULL);
    char *tpl = NULL, *rules = NULL;
    loco_err err;
    loco_err_clear(&err);
    if (!find_queries(&o, qpath, sizeof(qpath)) || !load_queries(qpath, &qs))
        goto out;
    b.o = &o;
    b.qs = &qs;
    b.state = calloc(qs.n, sizeof(*b.state));
    b.repo = resolve_dirs(&o, &b.out_dir);
    if (!b.state || !b.repo)
        goto out;
    if (cli_read_text(o.agent.template_file, &tpl, &err) ||
        cli_read_text(o.agent.rules_file, &rules, &err)) {
        fprintf(stderr, "loco analyze: %s\n", err.msg);
        goto out;
    }
    b.tpl = tpl;
    b.rules = rules;
    b.to_run = mark_existing(&b);
    b.t0 = clock_now_ms();
    cli_progress_init(&b.prog, "loading the model", CLI_PROGRESS_TIME, 0);
    if (b.to_run == 0) {
        code = finish(&b, 0);
        goto out;
    }
    open_job oj = {.b = &b, .env = &env};
    int sig = cli_run_cancellable(open_work, &oj, &b.cancel, open_tick, &b);
    cli_progress_clear(&b.prog);
    if (sig) {
        code = 130;
        goto out;
    }
    if (oj.rc) {
        fprintf(stderr, "loco analyze: %s\n", oj.err.msg);
        goto out;
    }
    long jobs = o.jobs < (long)b.to_run ? o.jobs : (long)b.to_run;
    fprintf(stderr, "loco analyze %s: %zu questions (%zu already answered), %ld at a time, %s\n",
            o.project, qs.n, b.skipped, jobs,
            b.claude ? cli_claude_describe(b.claude) : cli_backends_describe(b.bs));
    if (!b.claude)
        cli_bash_notice("analyze", &o.agent);
    if (jobs > 1 && b.bs && cli_backends_serial(b.bs))
        fprintf(stderr, "loco analyze: the built-in engine runs one question at a time; "
                        "--jobs only queues them\n");
    cli_progress_init(&b.prog, o.project, CLI_PROGRESS_COUNT, b.to_run);
    b.prog.noun = "questions";
    b.t0 = clock_now_ms();
    pool_arg pa = {&b, jobs};
    sig = cli_run_cancellable(run_pool, &pa, &b.cancel, tick, &b);
    code = finish(&b, sig);
out:
    cli_backends_close(b.bs);
    cli_claude_free(b.claude);
    agent_queries_release(&qs);
    free(b.state);
    free(b.repo);
    free(b.out_dir);
    free(tpl);
    free(rules);
    pthread_mutex_destroy(&b.mu);
    cli_env_release(&env);
    return code;
}
