/* confine.c: the portable half of confine.h: the supervisor process that reaps and reports,
 * the command's process up to execve, the allowlisted environment, scratch directories and
 * the descriptions of what this system confines. The kernel-specific parts are behind
 * confine_int.h (confine_linux.c, confine_other.c). */
#include "base/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

#include "agent/confine_int.h"
#include "base/file.h"
#include "base/str.h"

extern char **environ;

/* How long confine_proc_kill waits for a supervisor that was asked to clean up before it
 * gets SIGKILL itself. */
#define CONFINE_CLEANUP_WAIT_MS 5000
/* Variables kept from loco's environment (prefix match when the name ends with '_'). */
static const char *const ENV_KEEP[] = {"PATH", "LANG", "LANGUAGE", "LC_", "TERM", "TZ",
                                       "USER", "LOGNAME", "NO_COLOR", NULL};
#define CONFINE_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define CONFINE_MAX_ENV 256

struct confine_proc {
    pid_t pid;       /* the supervisor S */
    int exit_fd;     /* S writes C's wait status here, then closes it */
    confine_os *os;
    bool exited;     /* C's status is known */
    int status;
    bool killed;     /* confine_proc_kill ran */
    bool reaped;     /* S was waited for */
};

/* ---- descriptions ---------------------------------------------------------------------- */

loco_status confine_describe(const confine_caps *c, buf *out)
{
    loco_status rc = LOCO_OK;
    const char *sep = "";
    if (c->have & CONFINE_FILES) {
        rc = buf_appendf(out, "files: Landlock ABI %d%s", c->landlock_abi,
                         c->landlock_abi < 3 ? " + seccomp truncation filter" : "");
        sep = "; ";
    }
    if (!rc && (c->have & CONFINE_NETWORK)) {
        rc = buf_appendf(out, "%snetwork: %s%s%s", sep, c->netns ? "network namespace" : "",
                         c->netns && c->seccomp ? " + " : "",
                         c->seccomp ? "seccomp socket filter" : "");
        sep = "; ";
    }
    if (!rc && (c->have & CONFINE_PROCS)) {
        rc = buf_appendf(out, "%sprocess limit: %s", sep,
                         c->root ? "pids cgroup"
                                 : (c->userns ? "RLIMIT_NPROC in a user namespace"
                                              : "RLIMIT_NPROC"));
        sep = "; ";
    }
    if (!rc && (c->have & CONFINE_CLEANUP))
        rc = buf_appendf(out, "%scleanup: %s", sep,
                         c->pidns ? "pid namespace"
                                  : (c->child_list ? "subreaper" : "pids cgroup"));
    return rc;
}

unsigned confine_describe_missing(const confine_caps *c, buf *out)
{
    unsigned missing = CONFINE_ALL & ~c->have;
    if (!missing)
        return 0;
    const char *sep = "";
    if (!c->os_supported) {
        (void)buf_appends(out, "files, network, process limit and cleanup (kernel confinement "
                               "is implemented for Linux only)");
        return missing;
    }
    if ((missing & CONFINE_FILES) && c->landlock_abi > 0) {
        (void)buf_appendf(out, "files (Landlock ABI %d does not see truncation and no seccomp "
                               "filter is available to cover it)",
                          c->landlock_abi);
        sep = ", ";
    } else if (missing & CONFINE_FILES) {
        (void)buf_appends(out, "files (no Landlock: it needs Linux 5.13+ with Landlock in the "
                               "active security modules, lsm=landlock,...)");
        sep = ", ";
    }
    if (missing & CONFINE_NETWORK) {
        (void)buf_appendf(out, "%snetwork (neither a network namespace nor a seccomp filter "
                               "is available)",
                          sep);
        sep = ", ";
    }
    if (missing & CONFINE_PROCS) {
        (void)buf_appendf(out, "%sprocess limit (running as root, RLIMIT_NPROC does not apply, "
                               "and no pids cgroup could be created)",
                          sep);
        sep = ", ";
    }
    if (missing & CONFINE_CLEANUP)
        (void)buf_appendf(out, "%scleanup (no pid namespace, no /proc/PID/task/TID/children "
                               "and no cgroup: a setsid process could outlive the call)",
                          sep);
    return missing;
}

void confine_probe(confine_caps *out)
{
    memset(out, 0, sizeof(*out));
    confine_os_probe(out);
}

/* ---- environment ------------------------------------------------------------------------ */

static bool env_kept(const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq)
        return false;
    size_t n = (size_t)(eq - kv);
    for (size_t k = 0; ENV_KEEP[k]; k++) {
        size_t m = strlen(ENV_KEEP[k]);
        if (ENV_KEEP[k][m - 1] == '_' ? (n > m && strncmp(kv, ENV_KEEP[k], m) == 0)
                                      : (n == m && strncmp(kv, ENV_KEEP[k], m) == 0))
            return true;
    }
    return false;
}

static void free_env(char **env)
{
    if (!env)
        return;
    for (size_t k = 0; env[k]; k++)
        free(env[k]);
    free(env);
}

static bool env_add(char **env, size_t *n, const char *name, const char *value)
{
    if (*n + 1 >= CONFINE_MAX_ENV)
        return true; /* full: the rest is dropped */
    size_t len = strlen(name) + strlen(value) + 2;
    char *s = malloc(len);
    if (!s)
        return false;
    snprintf(s, len, "%s=%s", name, value);
    env[(*n)++] = s;
    env[*n] = NULL;
    return true;
}

/* "PATH=" plus the directories of path the command may run programs from; malloc'd. */
static char *usable_path(const confine_os *os, const confine_spec *spec, const char *path)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    loco_status rc = buf_appends(&b, "PATH=");
    size_t first = b.len;
    for (const char *p = path; !rc && *p;) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char *dir = str_ndup(p, n);
        if (!dir) {
            rc = LOCO_ERR_NOMEM;
            break;
        }
        if (dir[0] == '/' && confine_os_path_usable(os, spec, dir)) {
            if (b.len > first)
                rc = buf_appendc(&b, ':');
            if (!rc)
                rc = buf_appends(&b, dir);
        }
        free(dir);
        p += n + (e ? 1 : 0);
    }
    if (!rc && b.len == first)
        rc = buf_appends(&b, CONFINE_DEFAULT_PATH);
    if (rc) {
        buf_release(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

/* The command's environment: the allowlisted variables of loco's (PATH without the
 * directories it may not run programs from), HOME/TMPDIR set to the scratch directory, then
 * spec->extra_env. NULL when out of memory. */
static char **build_env(const confine_os *os, const confine_spec *spec)
{
    char **env = calloc(CONFINE_MAX_ENV, sizeof(*env));
    if (!env)
        return NULL;
    size_t n = 0;
    bool ok = true, have_path = false;
    for (char **e = environ; e && *e && ok; e++) {
        if (!env_kept(*e) || n + 1 >= CONFINE_MAX_ENV - 8)
            continue;
        bool is_path = str_starts_with(*e, "PATH=");
        env[n] = is_path ? usable_path(os, spec, *e + 5) : strdup(*e);
        ok = env[n++] != NULL;
        have_path |= is_path;
    }
    if (ok && !have_path)
        ok = env_add(env, &n, "PATH", CONFINE_DEFAULT_PATH);
    if (ok && spec->home)
        ok = env_add(env, &n, "HOME", spec->home) && env_add(env, &n, "TMPDIR", spec->home);
    if (ok)
        ok = env_add(env, &n, "SHELL", "/bin/bash");
    for (size_t k = 0; ok && k < spec->n_extra_env; k++) {
        const char *eq = strchr(spec->extra_env[k], '=');
        if (!eq || n + 1 >= CONFINE_MAX_ENV)
            continue;
        env[n] = strdup(spec->extra_env[k]);
        ok = env[n++] != NULL;
    }
    if (!ok) {
        free_env(env);
        return NULL;
    }
    return env;
}

/* ---- scratch directories ---------------------------------------------------------------- */

loco_status confine_scratch_new(char **out_path, loco_err *err)
{
    *out_path = NULL;
    const char *tmp = getenv("TMPDIR");
    struct stat st;
    if (!tmp || tmp[0] != '/' || stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode))
        tmp = "/tmp";
    size_t n = strlen(tmp) + 32;
    char *path = malloc(n);
    if (!path)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    snprintf(path, n, "%s/loco-bash-XXXXXX", tmp);
    if (!mkdtemp(path)) {
        int e = errno;
        free(path);
        return loco_err_set(err, LOCO_ERR_IO, "cannot create a scratch directory in %s: %s", tmp,
                            strerror(e));
    }
    char *real = realpath(path, NULL);
    free(path);
    if (!real)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    *out_path = real;
    return LOCO_OK;
}

/* Removes everything inside the directory open as dfd (closes dfd). depth bounds recursion. */
static void remove_inside(int dfd, int depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < 256) {
                fchmodat(dirfd(d), name, 0700, 0);
                int sub = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub >= 0)
                    remove_inside(sub, depth + 1);
            }
            unlinkat(dirfd(d), name, AT_REMOVEDIR);
        } else {
            unlinkat(dirfd(d), name, 0);
        }
    }
    closedir(d);
}

void confine_scratch_remove(const char *path)
{
    if (!path)
        return;
    chmod(path, 0700);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        remove_inside(fd, 0);
        /* A second pass catches directories that were unreadable the first time. */
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
            remove_inside(fd, 0);
    }
    rmdir(path);
}

/* ---- the command's process (C) and the supervisor (S) ---------------------------------- */

typedef struct {
    int step;
    int err;
} child_failure;

static int cloexec_pipe(int fds[2])
{
#ifdef __linux__
    return pipe2(fds, O_CLOEXEC);
#else
    if (pipe(fds) != 0)
        return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}

static void close_fds_from(int lowest, int keep, long max_fd)
{
#ifdef SYS_close_range
    if (keep < lowest) {
        if (syscall(SYS_close_range, (unsigned)lowest, ~0u, 0u) == 0)
            return;
    } else if ((keep == lowest ||
                syscall(SYS_close_range, (unsigned)lowest, (unsigned)keep - 1, 0u) == 0) &&
               syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u) == 0) {
        return;
    }
#endif
    for (long fd = lowest; fd < max_fd; fd++)
        if (fd != keep)
            close((int)fd);
}

static _Noreturn void child_fail(int fail_fd, confine_step step, int e)
{
    child_failure f = {(int)step, e};
    (void)!write(fail_fd, &f, sizeof(f));
    _exit(126);
}

typedef struct {
    const confine_spec *spec;
    confine_os *os;
    char *const *argv;
    char **envp;
    int fail_w;     /* C reports a setup failure here; closed by a successful execve */
    int status_w;   /* S reports C's wait status here */
    int go_r;       /* loco says go (one byte) once S is placed */
    long max_fd;
    struct rlimit cpu, as, fsize, core;
} launch;

/* In C, after the fork from S: async-signal-safe calls only. Never returns. */
static _Noreturn void run_child(const launch *l)
{
    if (setsid() < 0)
        child_fail(l->fail_w, CONFINE_STEP_SESSION, errno);
    sigset_t none;
    sigemptyset(&none);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(l->spec->out_fd, 1) < 0 ||
        dup2(l->spec->out_fd, 2) < 0)
        child_fail(l->fail_w, CONFINE_STEP_STDIO, errno);
    if (chdir(l->spec->cwd) != 0)
        child_fail(l->fail_w, CONFINE_STEP_CHDIR, errno);
    if ((l->spec->cpu_seconds > 0 && setrlimit(RLIMIT_CPU, &l->cpu) != 0) ||
        (l->spec->max_memory > 0 && setrlimit(RLIMIT_AS, &l->as) != 0) ||
        (l->spec->max_file > 0 && setrlimit(RLIMIT_FSIZE, &l->fsize) != 0) ||
        setrlimit(RLIMIT_CORE, &l->core) != 0)
        child_fail(l->fail_w, CONFINE_STEP_RLIMIT, errno);
    confine_step step = CONFINE_STEP_EXEC;
    int e = confine_os_apply(l->os, &step);
    if (e)
        child_fail(l->fail_w, step, e);
    close_fds_from(3, l->fail_w, l->max_fd);
    execve(l->argv[0], l->argv, l->envp);
    child_fail(l->fail_w, CONFINE_STEP_EXEC, errno);
}

static void write_status(int fd, int status)
{
    if (fd >= 0)
        (void)!write(fd, &status, sizeof(status));
}

/* S: starts C, reaps every child it gets, reports C's status, and on SIGTERM (polite) or
 * SIGUSR1 (kill everything) signals the call's processes. Never returns. */
static _Noreturn void run_supervisor(const launch *l)
{
    setsid(); /* no controlling terminal: Ctrl-C goes to loco, which cancels */
    sigset_t wait_set;
    sigemptyset(&wait_set);
    sigaddset(&wait_set, SIGCHLD);
    sigaddset(&wait_set, SIGTERM);
    sigaddset(&wait_set, SIGUSR1);
    sigprocmask(SIG_SETMASK, &wait_set, NULL);
    struct sigaction ign;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, NULL);
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGHUP, &ign, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL; /* not SIG_IGN: S must see its children exit */
    sigaction(SIGCHLD, &dfl, NULL);
    char go = 0;
    ssize_t n;
    do
        n = read(l->go_r, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1 || go != 'g')
        _exit(1); /* loco went away or gave up */
    close(l->go_r);
    int e = confine_os_supervisor_setup(l->os);
    if (e)
        child_fail(l->fail_w, CONFINE_STEP_SUPERVISOR, e);
    pid_t child = confine_os_fork_child(l->os);
    if (child < 0)
        child_fail(l->fail_w, CONFINE_STEP_SUPERVISOR, errno);
    if (child == 0)
        run_child(l);
    close_fds_from(3, l->status_w, l->max_fd); /* the output pipe, fail_w, Landlock ruleset */
    bool reported = false;
    for (;;) {
        int st = 0;
        pid_t w;
        while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
            if (w == child && !reported) {
                write_status(l->status_w, st);
                reported = true;
            }
        }
        if (w < 0 && errno == ECHILD) {
            if (!reported)
                write_status(l->status_w, SIGKILL); /* wait status: killed by SIGKILL */
            _exit(0); /* nothing left of the call */
        }
        int sig = 0;
        if (sigwait(&wait_set, &sig) != 0)
            continue;
        if (sig == SIGTERM) {
            confine_os_signal_all(l->os, child, SIGTERM);
        } else if (sig == SIGUSR1) {
            confine_os_signal_all(l->os, child, SIGKILL);
            if (!reported)
                write_status(l->status_w, SIGKILL);
            _exit(0);
        }
    }
}

static const char *step_name(int step)
{
    switch (step) {
    case CONFINE_STEP_SUPERVISOR: return "the supervisor could not start it";
    case CONFINE_STEP_SESSION: return "setsid";
    case CONFINE_STEP_STDIO: return "redirecting its input and output";
    case CONFINE_STEP_CHDIR: return "entering its working directory";
    case CONFINE_STEP_RLIMIT: return "setting its resource limits";
    case CONFINE_STEP_NO_NEW_PRIVS: return "prctl(PR_SET_NO_NEW_PRIVS)";
    case CONFINE_STEP_CAPS: return "dropping capabilities";
    case CONFINE_STEP_LANDLOCK: return "Landlock (landlock_restrict_self)";
    case CONFINE_STEP_SECCOMP: return "installing the seccomp filter";
    default: return "execve";
    }
}

static void set_limit(struct rlimit *r, unsigned long long v)
{
    r->rlim_cur = r->rlim_max = (rlim_t)v;
}

/* Reaps S (blocking); the status is ignored: C's comes through the pipe. */
static void reap(confine_proc *p)
{
    if (p->reaped || p->pid <= 0)
        return;
    int st;
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
        ;
    p->reaped = true;
}

loco_status confine_spawn(const confine_spec *spec, char *const argv[], confine_proc **out,
                          loco_err *err)
{
    *out = NULL;
    if ((spec->use & ~spec->caps->have) != 0)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "confinement asked for protections this system does not have");
    confine_proc *p = calloc(1, sizeof(*p));
    launch l;
    memset(&l, 0, sizeof(l));
    l.spec = spec;
    l.argv = argv;
    l.fail_w = l.status_w = l.go_r = -1;
    int status_p[2] = {-1, -1}, fail_p[2] = {-1, -1}, go_p[2] = {-1, -1};
    loco_status rc = LOCO_OK;
    if (!p)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    p->exit_fd = -1;
    rc = confine_os_prepare(spec, &p->os, err);
    if (rc)
        goto fail;
    l.os = p->os;
    l.envp = build_env(p->os, spec);
    if (!l.envp) {
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    set_limit(&l.cpu, (unsigned long long)(spec->cpu_seconds > 0 ? spec->cpu_seconds : 0));
    set_limit(&l.as, spec->max_memory);
    set_limit(&l.fsize, spec->max_file);
    set_limit(&l.core, 0);
    l.max_fd = sysconf(_SC_OPEN_MAX);
    if (l.max_fd <= 0 || l.max_fd > 65536)
        l.max_fd = 65536;
    if (cloexec_pipe(status_p) || cloexec_pipe(fail_p) || cloexec_pipe(go_p)) {
        rc = loco_err_set(err, LOCO_ERR_IO, "cannot create a pipe: %s", strerror(errno));
        goto fail;
    }
    l.status_w = status_p[1];
    l.fail_w = fail_p[1];
    l.go_r = go_p[0];
    p->pid = confine_os_fork_supervisor(p->os);
    if (p->pid < 0) {
        rc = loco_err_set(err, LOCO_ERR_IO, "cannot start a process: %s", strerror(errno));
        goto fail;
    }
    if (p->pid == 0)
        run_supervisor(&l);
    close(status_p[1]);
    close(fail_p[1]);
    close(go_p[0]);
    status_p[1] = fail_p[1] = go_p[0] = -1;
    p->exit_fd = status_p[0];
    status_p[0] = -1;
    fcntl(p->exit_fd, F_SETFL, fcntl(p->exit_fd, F_GETFL) | O_NONBLOCK);
    rc = confine_os_place(p->os, p->pid, err);
    if (rc)
        goto fail;
    if (file_write_nosigpipe(go_p[1], "g", 1) != 1) { /* S may be gone */
        rc = loco_err_set(err, LOCO_ERR_IO, "cannot start the command: %s", strerror(errno));
        goto fail;
    }
    close(go_p[1]);
    go_p[1] = -1;
    /* EOF: C reached execve. A record: a step failed and nothing runs. */
    child_failure f;
    ssize_t n;
    do
        n = read(fail_p[0], &f, sizeof(f));
    while (n < 0 && errno == EINTR);
    close(fail_p[0]);
    fail_p[0] = -1;
    if (n == (ssize_t)sizeof(f)) {
        if (f.step == CONFINE_STEP_EXEC)
            rc = loco_err_set(err, LOCO_ERR_IO, "cannot start %s: %s", argv[0],
                              strerror(f.err));
        else
            rc = loco_err_set(err, LOCO_ERR_IO, "cannot confine %s: %s failed: %s", argv[0],
                              step_name(f.step), strerror(f.err));
        goto fail;
    }
    free_env(l.envp);
    *out = p;
    return LOCO_OK;
fail:
    for (int k = 0; k < 2; k++) {
        if (status_p[k] >= 0)
            close(status_p[k]);
        if (fail_p[k] >= 0)
            close(fail_p[k]);
        if (go_p[k] >= 0)
            close(go_p[k]);
    }
    free_env(l.envp);
    if (p->pid > 0) {
        kill(p->pid, SIGKILL); /* before go, S has started nothing */
        reap(p);
    }
    if (p->exit_fd >= 0)
        close(p->exit_fd);
    confine_os_free(p->os);
    free(p);
    return rc;
}

int confine_proc_exit_fd(const confine_proc *p)
{
    return p->exit_fd;
}

bool confine_proc_exited(confine_proc *p, int *out_status)
{
    if (!p->exited && p->exit_fd >= 0) {
        int st;
        ssize_t n;
        do
            n = read(p->exit_fd, &st, sizeof(st));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof(st)) {
            p->exited = true;
            p->status = st;
        } else if (n == 0) {
            p->exited = true; /* S ended without a report: killed */
            p->status = SIGKILL;
        }
    }
    if (p->exited && out_status)
        *out_status = p->status;
    return p->exited;
}

void confine_proc_terminate(confine_proc *p)
{
    if (p && !p->killed && !p->reaped)
        kill(p->pid, SIGTERM);
}

void confine_proc_kill(confine_proc *p)
{
    if (!p || p->killed)
        return;
    p->killed = true;
    if (p->reaped)
        return;
    if (confine_os_kills_with_supervisor(p->os)) {
        kill(p->pid, SIGKILL);
        reap(p);
        return;
    }
    kill(p->pid, SIGUSR1);
    for (int waited = 0; waited < CONFINE_CLEANUP_WAIT_MS; waited += 5) {
        int st;
        pid_t w = waitpid(p->pid, &st, WNOHANG);
        if (w == p->pid || (w < 0 && errno != EINTR)) {
            p->reaped = true;
            return;
        }
        poll(NULL, 0, 5);
    }
    kill(p->pid, SIGKILL);
    reap(p);
}

void confine_proc_free(confine_proc *p)
{
    if (!p)
        return;
    confine_proc_kill(p);
    (void)confine_proc_exited(p, NULL);
    if (p->exit_fd >= 0)
        close(p->exit_fd);
    confine_os_free(p->os);
    free(p);
}
