/* tool_bash.c: the Bash tool (command, timeout?, description?): runs `/bin/bash -c command` in
 * the repository root, confined by the kernel (confine.h: Landlock, no network, limits, every
 * descendant killed at the end) with a scrubbed environment and a private scratch HOME; output
 * read incrementally and capped. Refused when the kernel cannot confine it, unless the user
 * passed --unsafe-bash. The lexical read-only policy (bash_policy.c) is an early, friendly
 * refusal only. */
#include "base/common.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/confine.h"
#include "agent/tools_int.h"
#include "base/os.h"

#define BASH_DEFAULT_TIMEOUT_MS 120000L
#define BASH_MAX_TIMEOUT_MS 600000L
/* Output kept for the model (Claude Code's cap); the rest is counted and dropped. */
#define BASH_OUTPUT_MAX 30000u
/* Room under the cap kept for the status lines. */
#define BASH_NOTE_ROOM 400u
#define BASH_POLL_MS 100
/* SIGTERM, then SIGKILL this long after. */
#define BASH_KILL_GRACE_MS 2000
/* After the shell exits, background processes holding the output open get this long. */
#define BASH_LINGER_MS 1000
/* Reads per poll wakeup (16 KB each). */
#define BASH_DRAIN_READS 64
/* Limits of one call: processes at once (sb->bash_max_procs overrides), address space and
 * file size per process; CPU seconds per process are twice the timeout plus this. */
#define BASH_MAX_PROCS 512
#define BASH_MAX_MEMORY (8ull << 30)
#define BASH_MAX_FILE (1ull << 30)
#define BASH_CPU_EXTRA_S 10

#define BASH_SCHEMA                                                                            \
    "{\"type\":\"object\",\"properties\":{"                                                    \
    "\"command\":{\"type\":\"string\",\"description\":\"The command to execute\"},"           \
    "\"timeout\":{\"type\":\"number\",\"description\":\"Optional timeout in milliseconds "     \
    "(max 600000)\"},"                                                                         \
    "\"description\":{\"type\":\"string\",\"description\":\"Clear, concise description of "    \
    "what this command does in 5-10 words\"}},"                                                \
    "\"required\":[\"command\"],\"additionalProperties\":false}"

/* What one run produced. */
typedef struct {
    buf head;           /* the first cap bytes of output */
    size_t cap;
    size_t total;       /* all output bytes seen */
    int status;         /* wait status, valid when exited */
    bool exited;
    bool timed_out;
    bool cancelled;
    bool lingering;     /* background processes outlived the shell and were stopped */
    bool spawn_failed;  /* could not start: spawn_err says why */
    loco_err spawn_err;
} bash_run;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what is available on fd into r (at most BASH_DRAIN_READS reads, so a fast producer
 * cannot starve the deadline and cancel checks); returns false at EOF or on error. */
static bool drain(int fd, bash_run *r)
{
    char chunk[16384];
    for (int k = 0; k < BASH_DRAIN_READS; k++) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK;
        if (n == 0)
            return false;
        r->total += (size_t)n;
        if (r->head.len < r->cap) {
            size_t take = (size_t)n;
            if (take > r->cap - r->head.len)
                take = r->cap - r->head.len;
            if (buf_append(&r->head, chunk, take) != LOCO_OK)
                r->cap = r->head.len; /* out of memory: keep what we have */
        }
    }
    return true;
}

/* Supervises the confined call until the output closes and the shell exits, or the deadline,
 * cancel or lingering background processes end it. */
static void supervise(const agent_tool_ctx *ctx, confine_proc *p, int fd, long timeout_ms,
                      bash_run *r)
{
    long start = now_ms();
    long term_at = -1, kill_at = -1, exited_at = -1;
    bool open_fd = true;
    for (;;) {
        struct pollfd pf[2];
        nfds_t n = 0;
        if (open_fd)
            pf[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
        if (exited_at < 0)
            pf[n++] = (struct pollfd){.fd = confine_proc_exit_fd(p), .events = POLLIN};
        int pr = poll(n ? pf : NULL, n, n ? BASH_POLL_MS : BASH_POLL_MS / 4);
        if (pr > 0 && open_fd && pf[0].revents && !drain(fd, r))
            open_fd = false;
        long now = now_ms();
        if (exited_at < 0 && confine_proc_exited(p, &r->status)) {
            exited_at = now;
            r->exited = true;
        }
        if (exited_at >= 0 && !open_fd)
            break;
        if (term_at < 0) {
            if (tools_cancelled(ctx))
                r->cancelled = true;
            else if (now - start >= timeout_ms)
                r->timed_out = true;
            else if (exited_at >= 0 && now - exited_at >= BASH_LINGER_MS)
                r->lingering = true;
            if (r->cancelled || r->timed_out || r->lingering) {
                confine_proc_terminate(p);
                term_at = now;
            }
        } else if (kill_at < 0 && now - term_at >= BASH_KILL_GRACE_MS) {
            confine_proc_kill(p);
            kill_at = now;
        } else if (kill_at >= 0 && (exited_at >= 0 || now - kill_at >= BASH_LINGER_MS)) {
            break; /* everything is dead; whatever still holds the output is not ours */
        }
    }
}

/* The parent of the repository (git must not look above it: Landlock would refuse). */
static void git_ceiling(const char *repo, char *out, size_t n)
{
    const char *slash = strrchr(repo, '/');
    size_t len = slash && slash != repo ? (size_t)(slash - repo) : 1;
    snprintf(out, n, "GIT_CEILING_DIRECTORIES=%.*s", (int)len, repo);
}

/* Resolves rel (a path read from file, relative to base) into out when it is a directory. */
static bool resolve_dir_in(const char *base, const char *rel, char *out)
{
    char joined[PATH_MAX * 2];
    int n = rel[0] == '/' ? snprintf(joined, sizeof(joined), "%s", rel)
                          : snprintf(joined, sizeof(joined), "%s/%s", base, rel);
    return n > 0 && (size_t)n < sizeof(joined) && realpath(joined, out) != NULL;
}

/* Reads the first line of path into line (without the newline); false when unreadable. */
static bool first_line(const char *path, char *line, size_t n)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fgets(line, (int)n, f) != NULL;
    fclose(f);
    if (ok)
        line[strcspn(line, "\r\n")] = '\0';
    return ok;
}

/* A worktree's or submodule's .git is a file ("gitdir: PATH") naming a git directory outside
 * the repository, and that one may name the shared one ("commondir"): both are part of the
 * repository, so git may read them. Fills dirs[0..1] (PATH_MAX each); returns how many. */
static size_t git_dirs(const char *repo, char dirs[2][PATH_MAX])
{
    char path[PATH_MAX + 16], line[PATH_MAX + 16];
    int n = snprintf(path, sizeof(path), "%s/.git", repo);
    if (n <= 0 || (size_t)n >= sizeof(path) || !first_line(path, line, sizeof(line)) ||
        strncmp(line, "gitdir: ", 8) != 0 || !resolve_dir_in(repo, line + 8, dirs[0]))
        return 0;
    n = snprintf(path, sizeof(path), "%s/commondir", dirs[0]);
    if (n > 0 && (size_t)n < sizeof(path) && first_line(path, line, sizeof(line)) &&
        resolve_dir_in(dirs[0], line, dirs[1]))
        return 2;
    return 1;
}

/* Runs command confined (with what the kernel offers when the user passed --unsafe-bash). */
static void run_command(const agent_tool_ctx *ctx, const char *command, long timeout_ms,
                        bash_run *r)
{
    const agent_sandbox *sb = ctx->sb;
    char *scratch = NULL;
    if (confine_scratch_new(&scratch, &r->spawn_err)) {
        r->spawn_failed = true;
        return;
    }
    const char *reads[4], *writes[3];
    size_t n_read = 0, n_write = 0;
    reads[n_read++] = sb->repo_root;
    if (sb->out_dir)
        reads[n_read++] = sb->out_dir;
    char gitdirs[2][PATH_MAX];
    size_t n_git = git_dirs(sb->repo_root, gitdirs);
    for (size_t k = 0; k < n_git; k++)
        reads[n_read++] = gitdirs[k];
    writes[n_write++] = scratch;
    if (sb->allow_bash_writes && sb->out_dir)
        writes[n_write++] = sb->out_dir;
    if (sb->allow_bash_writes && sb->allow_write)
        writes[n_write++] = sb->repo_root;
    char ceiling[PATH_MAX + 32];
    git_ceiling(sb->repo_root, ceiling, sizeof(ceiling));
    const char *extra[] = {ceiling, "GIT_OPTIONAL_LOCKS=0"};
    confine_spec spec = {
        .read_paths = reads,
        .n_read = n_read,
        .write_paths = writes,
        .n_write = n_write,
        .cwd = sb->repo_root,
        .home = scratch,
        .extra_env = extra,
        .n_extra_env = LOCO_ARRAY_LEN(extra),
        .caps = &sb->bash_caps,
        .use = sb->bash_caps.have & CONFINE_ALL,
        .cpu_seconds = 2 * ((timeout_ms + 999) / 1000) + BASH_CPU_EXTRA_S,
        .max_procs = sb->bash_max_procs > 0 ? sb->bash_max_procs : BASH_MAX_PROCS,
        .max_memory = BASH_MAX_MEMORY,
        .max_file = BASH_MAX_FILE,
    };
    int fds[2];
    if (os_pipe_cloexec(fds) != 0) {
        loco_err_set(&r->spawn_err, LOCO_ERR_IO, "cannot create a pipe: %s", strerror(errno));
        r->spawn_failed = true;
        confine_scratch_remove(scratch);
        free(scratch);
        return;
    }
    spec.out_fd = fds[1];
    char *const argv[] = {(char *)"/bin/bash", (char *)"-c", (char *)command, NULL};
    confine_proc *p = NULL;
    if (confine_spawn(&spec, argv, &p, &r->spawn_err) != LOCO_OK) {
        r->spawn_failed = true;
        close(fds[0]);
        close(fds[1]);
        confine_scratch_remove(scratch);
        free(scratch);
        return;
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    supervise(ctx, p, fds[0], timeout_ms, r);
    close(fds[0]);
    confine_proc_kill(p); /* leftovers, setsid escapees included */
    if (!r->exited)
        r->exited = confine_proc_exited(p, &r->status);
    confine_proc_free(p);
    confine_scratch_remove(scratch);
    free(scratch);
}

/* The exit code as a shell reports it (128+N for a signal). */
static int exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

static loco_status format_result(const bash_run *r, long timeout_ms, buf *out, bool *is_error)
{
    int code = exit_code(r->status);
    size_t start = out->len;
    loco_status rc = LOCO_OK;
    bool failed = r->timed_out || r->cancelled || code != 0;
    if (failed)
        *is_error = true;
    if (!r->timed_out && !r->cancelled && code != 0)
        rc = buf_appendf(out, "Exit code %d\n", code);
    if (!rc)
        rc = tools_append_text(out, buf_str(&r->head), r->head.len);
    if (!rc && r->total > r->head.len)
        rc = buf_appendf(out,
                         "\n\n[output truncated: the first %zu of %zu bytes shown, %zu bytes "
                         "cut; narrow the command (head, grep, wc) to see the rest]",
                         r->head.len, r->total, r->total - r->head.len);
    /* Status lines start on a line of their own. */
    const char *sep = (out->len > start && out->data[out->len - 1] != '\n') ? "\n" : "";
    if (!rc && r->timed_out)
        rc = buf_appendf(out, "%sCommand timed out after %ld ms; it and every process it started "
                                   "were killed.",
                         sep, timeout_ms);
    else if (!rc && r->cancelled)
        rc = buf_appendf(out, "%sCommand cancelled; it and every process it started were killed.",
                         sep);
    else if (!rc && r->lingering)
        rc = buf_appends(out, "\n[background processes still running after the command "
                              "finished were stopped]");
    if (!rc && r->total == 0 && !failed)
        rc = buf_appends(out, "(no output)");
    return rc;
}

static loco_status bash_run_tool(const agent_tool_ctx *ctx, const json_t *args, buf *out,
                                 bool *out_is_error)
{
    *out_is_error = false;
    buf err;
    buf_init(&err, TOOLS_ARG_ERR_MAX);
    const char *command = NULL, *description = NULL;
    long timeout_ms = BASH_DEFAULT_TIMEOUT_MS;
    if (!tools_arg_str(args, "command", true, &command, &err) ||
        !tools_arg_int(args, "timeout", false, &timeout_ms, &err) ||
        !tools_arg_str(args, "description", false, &description, &err)) {
        loco_status rc = tools_error(out, out_is_error, "Bash: %s", buf_str(&err));
        buf_release(&err);
        return rc;
    }
    if (timeout_ms <= 0) {
        buf_release(&err);
        return tools_error(out, out_is_error,
                           "Bash: timeout must be a positive number of milliseconds (got %ld)",
                           timeout_ms);
    }
    if (timeout_ms > BASH_MAX_TIMEOUT_MS)
        timeout_ms = BASH_MAX_TIMEOUT_MS;
    if (!ctx->sb->allow_bash_writes && !tools_bash_allowed(command, &err)) {
        loco_status rc = tools_error(
            out, out_is_error,
            "Bash: command refused by the read-only policy: %s. The explorer's shell may not "
            "write, delete or move files or reach the network; use Read, Grep and Glob to look "
            "around (and Write for the answer file). The user can lift this with "
            "--allow-bash-writes (the network stays closed).",
            buf_str(&err));
        buf_release(&err);
        return rc;
    }
    buf_reset(&err);
    if (confine_describe_missing(&ctx->sb->bash_caps, &err) && !ctx->sb->unsafe_bash) {
        loco_status rc = tools_error(
            out, out_is_error,
            "Bash: refused: this system cannot confine the shell; missing: %s. Use Read, Grep "
            "and Glob instead. The user can run Bash anyway with --unsafe-bash.",
            buf_str(&err));
        buf_release(&err);
        return rc;
    }
    buf_release(&err);
    if (tools_cancelled(ctx))
        return LOCO_ERR_CANCELLED;
    bash_run r;
    memset(&r, 0, sizeof(r));
    size_t max = tools_max_output(ctx);
    r.cap = (max < BASH_OUTPUT_MAX ? max : BASH_OUTPUT_MAX);
    r.cap = r.cap > BASH_NOTE_ROOM * 2 ? r.cap - BASH_NOTE_ROOM : r.cap / 2;
    buf_init(&r.head, r.cap);
    run_command(ctx, command, timeout_ms, &r);
    loco_status rc;
    if (r.spawn_failed)
        rc = tools_error(out, out_is_error, "Bash: %s", r.spawn_err.msg);
    else
        rc = format_result(&r, timeout_ms, out, out_is_error);
    buf_release(&r.head);
    if (!rc && r.cancelled)
        rc = LOCO_ERR_CANCELLED;
    return rc;
}

const agent_tool agent_tool_bash = {
    .name = "Bash",
    .description =
        "Executes a bash command in the repository root (stdin /dev/null, stdout and stderr "
        "merged) with an optional timeout in milliseconds (default 120000, max 600000). Output "
        "beyond 30000 characters is cut. The shell is sandboxed: it can read the repository "
        "and system files but not the user's home, cannot reach the network, and can write "
        "only to $TMPDIR (a scratch directory emptied after each call); commands that write, "
        "delete or move files are refused. Every process it starts is stopped when the call "
        "ends. Prefer Read, Grep and Glob for reading and searching files.",
    .schema_json = BASH_SCHEMA,
    /* Not read_only: with --allow-bash-writes it writes. */
    .read_only = false,
    .run = bash_run_tool,
};
