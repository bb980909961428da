/* pull.c: the command line around hub_pull: token and endpoint from the environment, the
 * progress display, Ctrl-C (the first one stops the download cleanly, keeping the .part). */
#include "base/common.h"

#include <signal.h>

#include "base/buf.h"
#include "base/file.h"
#include "base/models.h"
#include "cli/backend_opts.h"
#include "cli/progress.h"
#include "cli/pull.h"
#include "net/hub.h"

/* The token of `huggingface-cli login` (HF_TOKEN_PATH, else HF_HOME/token, else
 * XDG_CACHE_HOME/huggingface/token, else ~/.cache/huggingface/token), trimmed; NULL if none. */
static char *token_file(void)
{
    char path[4096] = "";
    const char *v;
    if ((v = getenv("HF_TOKEN_PATH")) && *v)
        snprintf(path, sizeof(path), "%s", v);
    else if ((v = getenv("HF_HOME")) && *v)
        snprintf(path, sizeof(path), "%s/token", v);
    else if ((v = getenv("XDG_CACHE_HOME")) && *v)
        snprintf(path, sizeof(path), "%s/huggingface/token", v);
    else if ((v = getenv("HOME")) && *v)
        snprintf(path, sizeof(path), "%s/.cache/huggingface/token", v);
    if (!path[0])
        return NULL;
    buf b;
    buf_init(&b, 4096);
    loco_err ignored;
    if (file_read_all(path, &b, &ignored) != LOCO_OK) {
        buf_release(&b);
        return NULL;
    }
    char *s = buf_take(&b, NULL);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    if (!n) {
        free(s);
        return NULL;
    }
    return s;
}

typedef struct {
    const cli_pull_opts *o;
    const char *target;
    hub_opts hopts;
    hub_result result;
    loco_err err;
    loco_status rc;
    volatile int cancel;
    cli_progress bar;
    hub_phase phase;
    bool started;      /* the bar exists */
    bool announced;    /* the "pulling ..." line was printed */
    double t0;
} pull_job;

static void on_note(void *ctx, const char *line)
{
    pull_job *j = ctx;
    if (j->o->quiet)
        return;
    if (j->started)
        cli_progress_line(&j->bar, "%s: %s", j->o->cmd, line);
    else
        fprintf(stderr, "%s: %s\n", j->o->cmd, line);
}

static void on_progress(void *ctx, const hub_progress *p)
{
    pull_job *j = ctx;
    if (j->o->quiet)
        return;
    if (p->phase == HUB_PHASE_LIST) {
        if (!j->announced)
            fprintf(stderr, "%s: looking up %s on %s\n", j->o->cmd, p->repo,
                    j->hopts.endpoint ? j->hopts.endpoint : HUB_DEFAULT_ENDPOINT);
        return;
    }
    if (!j->announced) {
        char sz[32] = "size unknown";
        if (p->total)
            cli_format_bytes(p->total, sz, sizeof(sz));
        char q[64];
        bool has_q = models_quant_of(p->file, q, sizeof(q));
        if (p->repo && *p->repo)
            fprintf(stderr, "%s: %s%s%s: %s (%s)\n", j->o->cmd, p->repo, has_q ? ":" : "",
                    has_q ? q : "", p->file, sz);
        else
            fprintf(stderr, "%s: %s (%s)\n", j->o->cmd, p->file, sz);
        j->announced = true;
    }
    if (!j->started || p->phase != j->phase) {
        char label[200];
        const char *base = strrchr(p->file, '/') ? strrchr(p->file, '/') + 1 : p->file;
        /* the file was named on the line above: the bar only says what it does */
        if (p->phase == HUB_PHASE_CHECK)
            snprintf(label, sizeof(label), "checking %s", base);
        else
            label[0] = '\0';
        if (j->started && j->phase == HUB_PHASE_CHECK)
            cli_progress_finish(&j->bar);
        if (!j->started)
            cli_progress_init(&j->bar, label, CLI_PROGRESS_BYTES, p->total);
        else if (p->phase != HUB_PHASE_VERIFY)
            cli_progress_reset(&j->bar, label, p->total, p->start);
        j->started = true;
        j->phase = p->phase;
    } else if (p->phase == HUB_PHASE_FETCH && p->start != j->bar.start && p->done == p->start) {
        cli_progress_reset(&j->bar, j->bar.label, p->total, p->start); /* resumed: new timing */
    }
    if (p->total != j->bar.total)
        j->bar.total = p->total;
    if (p->phase != HUB_PHASE_VERIFY)
        cli_progress_update(&j->bar, p->done);
}

static void run_pull(void *arg)
{
    pull_job *j = arg;
    j->rc = hub_pull(j->target, &j->hopts, &j->result, &j->err);
}

static void run_ensure(void *arg)
{
    pull_job *j = arg;
    bool pulled = false;
    char *path = NULL;
    j->rc = hub_ensure(j->target, &j->hopts, &path, &pulled, &j->err);
    j->result.path = path;
    j->result.already = !pulled;
}

int cli_pull(const cli_pull_opts *o, const char *target, const cli_env *env, char **out_path)
{
    if (out_path)
        *out_path = NULL;
    pull_job *j = calloc(1, sizeof(*j));
    if (!j) {
        fprintf(stderr, "%s: out of memory\n", o->cmd);
        return 1;
    }
    j->o = o;
    j->target = target && *target ? target : NULL;
    char *token = NULL;
    const char *tv = cli_env_get(env, "HF_TOKEN");
    if (!tv || !*tv)
        tv = cli_env_get(env, "HUGGING_FACE_HUB_TOKEN");
    if (!tv || !*tv)
        tv = token = token_file();
    j->hopts.endpoint = cli_env_get(env, "HF_ENDPOINT");
    j->hopts.token = tv;
    j->hopts.dir = o->dir;
    j->hopts.cancel = &j->cancel;
    j->hopts.progress = on_progress;
    j->hopts.note = on_note;
    j->hopts.ctx = j;
    j->t0 = clock_now_ms();
    /* a file-size limit makes write() fail with EFBIG instead of killing the process */
    signal(SIGXFSZ, SIG_IGN);
    int sig = cli_run_cancellable(o->ensure ? run_ensure : run_pull, j, &j->cancel, NULL, NULL);
    if (j->started) {
        if (j->rc == LOCO_OK)
            cli_progress_finish(&j->bar);
        else
            cli_progress_clear(&j->bar);
    }
    int code = 0;
    if (j->rc == LOCO_ERR_CANCELLED || (sig && j->rc != LOCO_OK)) {
        fprintf(stderr, "%s: interrupted: %s\n", o->cmd, j->err.msg);
        code = 130;
    } else if (j->rc) {
        fprintf(stderr, "%s: %s\n", o->cmd, j->err.msg);
        code = 1;
    } else {
        double secs = (clock_now_ms() - j->t0) / 1000.0;
        hub_result *r = &j->result;
        if (o->ensure && r->already) {
            /* found in the store: nothing to say beyond the caller's own line */
        } else if (r->already) {
            fprintf(stderr, "%s: already up to date: %s\n", o->cmd, r->path);
        } else {
            char sz[32], d[32], rate[48] = "";
            cli_format_bytes(r->size, sz, sizeof(sz));
            cli_format_duration(secs, d, sizeof(d));
            if (secs > 0.5 && r->fetched) {
                char rs[32];
                cli_format_bytes((uint64_t)((double)r->fetched / secs), rs, sizeof(rs));
                snprintf(rate, sizeof(rate), ", %s/s", rs);
            }
            fprintf(stderr, "%s: pulled %s (%s in %s%s, sha256 verified) to %s\n", o->cmd,
                    r->file ? r->file : "model", sz, d, rate, r->path);
        }
        if (sig) {
            fprintf(stderr, "%s: interrupted\n", o->cmd);
            code = 130;
        } else if (out_path) {
            *out_path = r->path;
            r->path = NULL;
        }
    }
    hub_result_release(&j->result);
    free(token);
    free(j);
    return code;
}
