/* tool_bash.c: the Bash tool (command, timeout?, description?): runs `/bin/bash -c command` in
 * the repository root in its own process group, output read incrementally and capped, the
 * whole group killed on timeout or cancel. The read-only policy lives in bash_policy.c. */
#include "base/common.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

#define BASH_SCHEMA                                                                            \
    "{\"type\":\"object\",\"properties\":{"                                                    \
    "\"command\":{\"type\":\"string\",\"description\":\"The command to execute\"},"           \
    "\"timeout\":{\"type\":\"number\",\"description\":\"Optional timeout in milliseconds "     \
    "(max 600000)\"},"                                                                         \
    "\"description\":{\"type\":\"string\",\"description\":\"Clear, concise description of "    \
    "what this command does in 5-10 words\"}},"                                                \
    "\"required\":[\"command\"],\"additionalProperties\":false}"

extern char **environ;

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
    int spawn_errno;    /* nonzero: could not start */
} bash_run;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void child_exec(const char *dir, int out_fd, char *const argv[])
{
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    static const int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGALRM,
                               SIGUSR1, SIGUSR2, SIGTSTP, SIGTTIN, SIGTTOU};
    for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
        sigaction(sigs[k], &dfl, NULL);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
        _exit(126);
    if (chdir(dir) != 0) {
        static const char msg[] = "loco: cannot enter the repository directory\n";
        (void)!write(2, msg, sizeof(msg) - 1);
        _exit(126);
    }
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
        for (int fd = 3; fd < 4096; fd++)
            close(fd);
    execve("/bin/bash", argv, environ);
    _exit(127);
}

static void kill_group(pid_t pgid, int sig)
{
    if (pgid > 0)
        kill(-pgid, sig);
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

/* True once the shell has exited (left as a zombie so its pid, the group id, stays ours). */
static bool shell_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return errno == ECHILD;
    return si.si_pid == pid;
}

/* Supervises the running group until the output closes and the shell exits, or the deadline,
 * cancel or lingering background processes end it. */
static void supervise(const agent_tool_ctx *ctx, pid_t pid, int fd, long timeout_ms,
                      bash_run *r)
{
    long start = now_ms();
    long term_at = -1, kill_at = -1, exited_at = -1;
    bool open_fd = true;
    for (;;) {
        if (open_fd) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int pr = poll(&p, 1, BASH_POLL_MS);
            if (pr > 0 && !drain(fd, r))
                open_fd = false;
        } else {
            poll(NULL, 0, BASH_POLL_MS / 4);
        }
        long now = now_ms();
        if (exited_at < 0 && shell_exited(pid))
            exited_at = now;
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
                kill_group(pid, SIGTERM);
                term_at = now;
            }
        } else if (kill_at < 0 && now - term_at >= BASH_KILL_GRACE_MS) {
            kill_group(pid, SIGKILL);
            kill_at = now;
        } else if (kill_at >= 0 && now - kill_at >= BASH_LINGER_MS && exited_at >= 0) {
            break; /* something outside the group holds the output open */
        }
    }
}

static void run_command(const agent_tool_ctx *ctx, const char *command, long timeout_ms,
                        bash_run *r)
{
    int fds[2];
    if (os_pipe_cloexec(fds) != 0) {
        r->spawn_errno = errno;
        return;
    }
    char *const argv[] = {(char *)"bash", (char *)"-c", (char *)command, NULL};
    pid_t pid = fork();
    if (pid < 0) {
        r->spawn_errno = errno;
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0)
        child_exec(ctx->sb->repo_root, fds[1], argv);
    setpgid(pid, pid); /* also done in the child; whichever runs first wins */
    close(fds[1]);
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    supervise(ctx, pid, fds[0], timeout_ms, r);
    close(fds[0]);
    kill_group(pid, SIGKILL); /* leftovers; the zombie leader keeps the group id ours */
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    r->status = status;
    r->exited = true;
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
        rc = buf_appendf(out, "%sCommand timed out after %ld ms; its process group was killed.",
                         sep, timeout_ms);
    else if (!rc && r->cancelled)
        rc = buf_appendf(out, "%sCommand cancelled; its process group was killed.", sep);
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
            "--allow-bash-writes.",
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
    if (r.spawn_errno)
        rc = tools_error(out, out_is_error, "Bash: cannot start /bin/bash: %s",
                         strerror(r.spawn_errno));
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
        "Executes a bash command in the repository root (its own process group, stdin "
        "/dev/null, stdout and stderr merged) with an optional timeout in milliseconds "
        "(default 120000, max 600000). Output beyond 30000 characters is cut. The shell is "
        "read-only by policy unless the user passed --allow-bash-writes: commands that write, "
        "delete or move files or reach the network are refused. Prefer Read, Grep and Glob for "
        "reading and searching files.",
    .schema_json = BASH_SCHEMA,
    /* Not read_only: with --allow-bash-writes it writes, and the policy is a heuristic. */
    .read_only = false,
    .run = bash_run_tool,
};
