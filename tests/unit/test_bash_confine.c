/* test_bash_confine.c: the kernel's confinement of the Bash tool (agent/confine*.c) on this
 * machine's own kernel. Every bypass of issue 11 runs with the lexical policy switched off, so
 * the kernel has to do the work: files outside the repository stay unreadable, files inside it
 * unchanged, no key is visible, no socket connects, a fork bomb stops at the process limit, a
 * setsid process dies with the call; as root, the same again as an unprivileged user. Each
 * check is paired with a control run with that protection off, which must see the effect, so
 * no check can pass vacuously. Where this kernel lacks a protection, the tests check that Bash
 * is refused with the reason and say they skipped the confinement assertions. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/tools.h"
#include "agent/tools_int.h"
#include "base/buf.h"
#include "base/file.h"
#include "base/str.h"

/* The keys loco may hold; main() puts them in this process's initial environment. */
#define SECRET_OR "sk-or-v1-loco-test-secret-0rk3y"
#define SECRET_ANT "sk-ant-loco-test-secret-4nt"
#define SECRET_HF "hf_loco_test_secret_hfk3y"
/* A private key outside the repository (~/.ssh/id_rsa-like). */
#define SECRET_FILE "-----BEGIN LOCO TEST PRIVATE KEY----- s3cr3t-k3y-m4t3r14l"

/* f->outside plays the user's home, with a private key in it (key_path, set by setup). */
typedef test_fx fx;

static volatile int cancel_flag;
static char key_path[700]; /* f->outside/.ssh/id_rsa */

static void put(const char *path, const char *text)
{
    assert_int_equal(file_write_atomic(path, text, strlen(text), 0644, NULL), LOCO_OK);
}

static int setup(void **state)
{
    fx *f = test_fx_new("confine");
    if (!f || test_fx_sandbox(f, false) != 0) {
        test_fx_free(f);
        return -1;
    }
    chmod(f->root, 0755); /* test_unprivileged runs as another user */
    char ssh[600];
    snprintf(ssh, sizeof(ssh), "%s/.ssh", f->outside);
    snprintf(key_path, sizeof(key_path), "%s/id_rsa", ssh);
    if (mkdir(ssh, 0755) != 0 ||
        file_write_atomic(key_path, SECRET_FILE, strlen(SECRET_FILE), 0644, NULL) != LOCO_OK) {
        test_fx_free(f);
        return -1;
    }
    cancel_flag = 0;
    *state = f;
    return 0;
}

/* Runs Bash; returns the malloc'd result. */
static char *bash(fx *f, const char *command, long timeout, bool *is_error)
{
    json_t *args = json_pack("{s:s}", "command", command);
    if (timeout > 0)
        json_object_set_new(args, "timeout", json_integer(timeout));
    agent_tool_ctx ctx = {.sb = &f->sb, .cancel = &cancel_flag, .threads = 1};
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    bool e = false;
    assert_int_equal(agent_tool_bash.run(&ctx, args, &out, &e), LOCO_OK);
    json_decref(args);
    if (is_error)
        *is_error = e;
    return buf_take(&out, NULL);
}

/* As bash() with the lexical policy off: only the kernel stands between the command and the
 * files (--allow-bash-writes, without --allow-write or an output directory: writes may go to
 * the scratch directory only). */
static char *bash_raw(fx *f, const char *command, long timeout)
{
    bool saved = f->sb.allow_bash_writes;
    f->sb.allow_bash_writes = true;
    char *got = bash(f, command, timeout, NULL);
    f->sb.allow_bash_writes = saved;
    return got;
}

/* Runs command with the protections in mask switched off (--unsafe-bash): the control. */
static char *bash_without(fx *f, unsigned mask, const char *command, long timeout)
{
    confine_caps saved = f->sb.bash_caps;
    f->sb.bash_caps.have &= ~mask;
    f->sb.unsafe_bash = true;
    char *got = bash_raw(f, command, timeout);
    f->sb.bash_caps = saved;
    f->sb.unsafe_bash = false;
    return got;
}

/* True when this kernel confines fully. Otherwise checks that Bash is refused, naming what
 * is missing, and says that the confinement assertions are skipped. */
static bool confined(fx *f, const char *test)
{
    buf why;
    buf_init(&why, 4096);
    unsigned missing = confine_describe_missing(&f->sb.bash_caps, &why);
    if (!missing) {
        buf_release(&why);
        return true;
    }
    char *got = bash_raw(f, "echo ran > ran.txt; echo ran", 0);
    assert_true(str_starts_with(got, "Bash: refused: this system cannot confine the shell; "
                                     "missing: "));
    assert_non_null(strstr(got, buf_str(&why)));
    assert_null(strstr(got, "ran\n"));
    free(got);
    print_message("[ SKIPPED  ] %s: confinement assertions skipped; Bash refused, missing: %s\n",
                  test, buf_str(&why));
    buf_release(&why);
    return false;
}

static char *path_in(const fx *f, const char *name)
{
    size_t n = strlen(f->repo) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", f->repo, name);
    return p;
}

/* The content of repo/name, or NULL when it does not exist (malloc'd). */
static char *content(const fx *f, const char *name)
{
    char *p = path_in(f, name);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    char *s = NULL;
    if (file_read_all(p, &b, NULL) == LOCO_OK)
        s = buf_take(&b, NULL);
    buf_release(&b);
    free(p);
    return s;
}

static void put_in(const fx *f, const char *name, const char *text)
{
    char *p = path_in(f, name);
    put(p, text);
    free(p);
}

static bool have_program(const char *path)
{
    return access(path, X_OK) == 0;
}

/* ---- writes ------------------------------------------------------------------------------ */

/* Issue 11's bypasses, each aimed at its own file. */
static const struct {
    const char *cmd;
    const char *file;
    const char *needs; /* a program the command needs, or NULL */
} BYPASSES[] = {
    {"$'\\x72\\x6d' -f b1", "b1", NULL},
    {"$'\\162\\155' -f b2", "b2", NULL},
    {"r$'\\x6d' -f b3", "b3", NULL},
    {"$\"rm\" -f b4", "b4", NULL},
    {"sed $'-\\x69' s/orig/pwned/ b5", "b5", NULL},
    {"echo pwned | $'\\x74ee' b6", "b6", NULL},
    {"find . -name b7 $'-\\x64elete'", "b7", NULL},
    {"git $'\\x63onfig' user.name pwned", ".git/config", "/usr/bin/git"},
    {"perl -e 'unlink \"b9\"'", "b9", "/usr/bin/perl"},
    {"awk 'BEGIN { print \"pwned\" > \"b10\" }'", "b10", NULL},
    {"git -c alias.x='!rm -f b11' x", "b11", "/usr/bin/git"},
    {"source <(echo rm -f b12)", "b12", NULL},
    {"python3 -c \"open('b13', 'w').write('pwned')\"", "b13", "/usr/bin/python3"},
    {"truncate -s 0 b14", "b14", NULL},
    {"mv b15 b15.moved", "b15", NULL},
    {"perl -e 'use Fcntl; sysopen(my $f, \"b16\", O_RDONLY | O_TRUNC)'", "b16", "/usr/bin/perl"},
    {"node -e \"require('fs').writeFileSync('b17', 'pwned')\"", "b17", "/usr/bin/node"},
};

static void plant(fx *f)
{
    for (size_t k = 0; k < LOCO_ARRAY_LEN(BYPASSES); k++)
        if (BYPASSES[k].file[0] != '.')
            put_in(f, BYPASSES[k].file, "orig\n");
    if (have_program("/usr/bin/git")) {
        free(bash_without(f, CONFINE_ALL, "git init -q . && git config user.name orig", 0));
        char *cfg = content(f, ".git/config");
        assert_non_null(cfg);
        assert_non_null(strstr(cfg, "name = orig"));
        free(cfg);
    }
}

static bool usable(size_t k)
{
    return !BYPASSES[k].needs || have_program(BYPASSES[k].needs);
}

/* True when repo/name still holds what plant() put there. */
static bool intact(fx *f, const char *name)
{
    char *s = content(f, name);
    bool ok = s && (strcmp(name, ".git/config") == 0 ? strstr(s, "name = orig") != NULL
                                                      : strcmp(s, "orig\n") == 0);
    free(s);
    return ok;
}

static void test_writes(void **state)
{
    fx *f = *state;
    if (!confined(f, "test_writes"))
        return;
    plant(f);
    /* The kernel alone: every bypass (one per line of one call) leaves its file as it was. */
    buf all;
    buf_init(&all, BUF_UNLIMITED);
    for (size_t k = 0; k < LOCO_ARRAY_LEN(BYPASSES); k++)
        if (usable(k))
            assert_int_equal(buf_appendf(&all, "%s\n", BYPASSES[k].cmd), LOCO_OK);
    char *got = bash_raw(f, buf_str(&all), 0);
    for (size_t k = 0; k < LOCO_ARRAY_LEN(BYPASSES); k++)
        if (usable(k) && !intact(f, BYPASSES[k].file))
            fail_msg("confined `%s` changed %s: %s", BYPASSES[k].cmd, BYPASSES[k].file, got);
    free(got);
    /* With the policy on too: refused early, or harmless. */
    for (size_t k = 0; k < LOCO_ARRAY_LEN(BYPASSES); k++) {
        if (!usable(k))
            continue;
        free(bash(f, BYPASSES[k].cmd, 0, NULL));
        assert_true(intact(f, BYPASSES[k].file));
    }
    /* The scratch directory is writable. */
    got = bash_raw(f, "echo scratch > \"$TMPDIR/s\" && cat \"$TMPDIR/s\"", 0);
    assert_string_equal(got, "scratch\n");
    free(got);
    /* Control: with no kernel protection every bypass does its damage. */
    got = bash_without(f, CONFINE_ALL, buf_str(&all), 0);
    for (size_t k = 0; k < LOCO_ARRAY_LEN(BYPASSES); k++)
        if (usable(k) && intact(f, BYPASSES[k].file))
            fail_msg("control `%s` left %s unchanged: %s", BYPASSES[k].cmd, BYPASSES[k].file,
                     got);
    free(got);
    buf_release(&all);
}

/* Landlock before ABI 3 does not see truncation: the seccomp filter must. Simulated by
 * building the ruleset for ABI 2 on this kernel. */
static void test_writes_old_landlock(void **state)
{
    fx *f = *state;
    if (!confined(f, "test_writes_old_landlock"))
        return;
    if (!f->sb.bash_caps.seccomp) {
        print_message("[ SKIPPED  ] test_writes_old_landlock: no seccomp\n");
        return;
    }
    put_in(f, "t1", "orig\n");
    put_in(f, "t2", "orig\n");
    /* truncate(2) by path, and open(2) read-only with O_TRUNC: neither opens for writing */
    const char *cmd = "perl -e 'truncate \"t1\", 0; use Fcntl; sysopen(my $f, \"t2\", "
                      "O_RDONLY | O_TRUNC)'";
    f->sb.bash_caps.landlock_abi = 2;
    free(bash_raw(f, cmd, 0));
    assert_true(intact(f, "t1"));
    assert_true(intact(f, "t2"));
    /* control: the same ruleset without the filter truncates */
    f->sb.bash_caps.seccomp = false;
    free(bash_raw(f, cmd, 0));
    assert_false(intact(f, "t1"));
    assert_false(intact(f, "t2"));
}

/* ---- reads -------------------------------------------------------------------------------- */

static void test_reads(void **state)
{
    fx *f = *state;
    if (!confined(f, "test_reads"))
        return;
    put_in(f, "a.txt", "in the repo\n");
    char *link = path_in(f, "link");
    assert_int_equal(symlink(key_path, link), 0);
    free(link);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "cat a.txt; cat '%s'; cat link; ls '%s/.ssh'; cp '%s' \"$TMPDIR/k\"; "
             "cat \"$TMPDIR/k\"; cat /proc/%ld/root'%s'; grep -r s3cr3t '%s'; ls /tmp",
             key_path, f->outside, key_path, (long)getpid(), key_path, f->outside);
    char *got = bash_raw(f, cmd, 0);
    assert_non_null(strstr(got, "in the repo\n"));
    if (strstr(got, "s3cr3t") || strstr(got, "id_rsa\n") || strstr(got, "/loco-confine-XX"))
        fail_msg("the confined shell read outside the repository: %s", got);
    free(got);
    /* system files programs need stay readable, /etc's secrets do not */
    got = bash_raw(f, "head -c 4 /usr/bin/env >/dev/null && echo usr; grep -c . /etc/passwd "
                      ">/dev/null && echo etc; cat /etc/shadow 2>/dev/null || echo noshadow",
                   0);
    assert_string_equal(got, "usr\netc\nnoshadow\n");
    free(got);
    /* control */
    snprintf(cmd, sizeof(cmd), "cat '%s'", key_path);
    got = bash_without(f, CONFINE_ALL, cmd, 0);
    assert_non_null(strstr(got, "s3cr3t"));
    free(got);
}

static void test_output_dir(void **state)
{
    fx *f = *state;
    if (!confined(f, "test_output_dir"))
        return;
    char out[600];
    snprintf(out, sizeof(out), "%s/out", f->root);
    agent_sandbox_release(&f->sb);
    assert_int_equal(agent_sandbox_init(&f->sb, f->repo, out, false, false, NULL), LOCO_OK);
    /* The policy allows awk; without --allow-bash-writes the kernel refuses its writes. */
    char cmd[2048], answer[700];
    snprintf(answer, sizeof(answer), "%s/a.md", out);
    snprintf(cmd, sizeof(cmd),
             "awk 'BEGIN { print \"answer\" > \"%s\"; print \"repo\" > \"r.txt\" }'",
             answer);
    char *got = bash(f, cmd, 0, NULL);
    assert_false(file_exists(answer));
    char *a = content(f, "r.txt");
    assert_null(a);
    free(got);
    /* --allow-bash-writes: the output directory; the repository needs --allow-write too */
    f->sb.allow_bash_writes = true;
    snprintf(cmd, sizeof(cmd), "echo answer > '%s/a.md'; cat '%s/a.md'; echo repo > r.txt", out,
             out);
    got = bash(f, cmd, 0, NULL);
    assert_non_null(strstr(got, "answer\n"));
    assert_null(content(f, "r.txt"));
    free(got);
    f->sb.allow_write = true;
    free(bash(f, "echo repo > r.txt", 0, NULL));
    a = content(f, "r.txt");
    assert_string_equal(a, "repo\n");
    free(a);
}

/* ---- the environment ---------------------------------------------------------------------- */

/* Starts `sleep 60` with the key in its environment and no capabilities (so that even a
 * root shell without capabilities may read its /proc/PID/environ when unconfined). */
static pid_t key_holder(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (int cap = 0; cap < 64; cap++)
            prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
        char *const argv[] = {(char *)"sleep", (char *)"60", NULL};
        char *const envp[] = {(char *)"OPENROUTER_API_KEY=" SECRET_OR, NULL};
        execve("/bin/sleep", argv, envp);
        _exit(127);
    }
    return pid;
}

/* Waits (up to 10 s) until the holder runs sleep, so its environ is the key's. */
static void holder_wait_exec(pid_t holder)
{
    char path[64], line[64];
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)holder);
    for (int i = 0; i < 1000; i++) {
        FILE *fp = fopen(path, "r");
        size_t n = fp ? fread(line, 1, sizeof(line) - 1, fp) : 0;
        if (fp)
            fclose(fp);
        line[n] = '\0';
        if (n && strcmp(line, "sleep") == 0)
            return;
        usleep(10000);
    }
}

static void test_environment(void **state)
{
    fx *f = *state;
    if (!confined(f, "test_environment"))
        return;
    assert_string_equal(getenv("OPENROUTER_API_KEY"), SECRET_OR); /* main() re-executed */
    pid_t holder = key_holder();
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "env; echo \"k=$OPENROUTER_API_KEY a=$ANTHROPIC_AUTH_TOKEN h=$HF_TOKEN\"; "
             "tr '\\0' '\\n' < /proc/self/environ; cat /proc/$$/environ /proc/$PPID/environ; "
             "cat /proc/%ld/environ /proc/%ld/environ; cat /proc/*/environ; "
             "for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ; done",
             (long)getpid(), (long)holder);
    char *got = bash_raw(f, cmd, 0);
    if (strstr(got, "loco-test-secret") || strstr(got, "hf_loco"))
        fail_msg("a key is visible to the confined shell: %s", got);
    assert_non_null(strstr(got, "HOME=/"));
    assert_non_null(strstr(got, "PATH=/"));
    free(got);
    /* control: without Landlock a process's /proc/PID/environ hands the key over */
    holder_wait_exec(holder);
    snprintf(cmd, sizeof(cmd), "tr '\\0' '\\n' < /proc/%ld/environ", (long)holder);
    got = bash_without(f, CONFINE_ALL, cmd, 0);
    kill(holder, SIGKILL);
    waitpid(holder, NULL, 0);
    assert_non_null(strstr(got, SECRET_OR));
    free(got);
}

/* ---- the network ------------------------------------------------------------------------- */

static int listen_local(int *out_port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s, 16), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    *out_port = ntohs(a.sin_port);
    return s;
}

/* Number of connections waiting on the listening socket s (accepted and closed). */
static int accepted(int s)
{
    int n = 0, c;
    while ((c = accept(s, NULL, NULL)) >= 0) {
        close(c);
        n++;
    }
    return n;
}

static void test_network(void **state)
{
    fx *f = *state;
    if (!confined(f, "test_network"))
        return;
    int port;
    int s = listen_local(&port);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "(exec 3<>/dev/tcp/127.0.0.1/%d && echo CONNECTED); "
             "perl -MIO::Socket::INET -e 'IO::Socket::INET->new(\"127.0.0.1:%d\") and print "
             "\"CONNECTED\\n\"'; "
             "$'\\x63url' -s http://127.0.0.1:%d/ && echo CONNECTED; "
             "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", %d)); "
             "print(\"CONNECTED\")'",
             port, port, port, port);
    char *got = bash_raw(f, cmd, 10000);
    if (strstr(got, "CONNECTED"))
        fail_msg("the confined shell connected: %s", got);
    free(got);
    assert_int_equal(accepted(s), 0);
    /* control */
    snprintf(cmd, sizeof(cmd), "exec 3<>/dev/tcp/127.0.0.1/%d && echo CONNECTED", port);
    got = bash_without(f, CONFINE_ALL, cmd, 10000);
    assert_non_null(strstr(got, "CONNECTED"));
    free(got);
    usleep(50000);
    assert_true(accepted(s) >= 1);
    close(s);
}

/* ---- processes --------------------------------------------------------------------------- */

/* The pid of a live process whose command line contains marker, or 0. */
static long find_process(const char *marker)
{
    DIR *d = opendir("/proc");
    long found = 0;
    struct dirent *e;
    while (d && !found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[300], cmd[4096];
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        FILE *fp = fopen(path, "r");
        if (!fp)
            continue;
        size_t n = fread(cmd, 1, sizeof(cmd) - 1, fp);
        fclose(fp);
        for (size_t k = 0; k < n; k++)
            if (cmd[k] == '\0')
                cmd[k] = ' ';
        cmd[n] = '\0';
        if (strstr(cmd, marker))
            str_parse_long(e->d_name, 1, LONG_MAX, &found);
    }
    if (d)
        closedir(d);
    return found;
}

/* True once no process carries marker (waits up to 5 s for the kernel to finish). */
static bool marker_gone(const char *marker)
{
    for (int i = 0; i < 250; i++) {
        if (!find_process(marker))
            return true;
        usleep(20000);
    }
    return false;
}

static void test_setsid_killed(void **state)
{
    fx *f = *state;
    if (!confined(f, "test_setsid_killed"))
        return;
    char m1[32], m2[32], cmd[512];
    snprintf(m1, sizeof(m1), "931.%ld", (long)getpid());
    snprintf(m2, sizeof(m2), "932.%ld", (long)getpid());
    /* holding the output: stopped after the linger, with a note */
    snprintf(cmd, sizeof(cmd), "setsid sleep %s & echo started", m1);
    char *got = bash_raw(f, cmd, 0);
    assert_true(str_starts_with(got, "started\n"));
    free(got);
    assert_true(marker_gone(m1));
    /* detached from the output (and, before the call ends, surely in its own session):
     * killed when the call ends */
    snprintf(cmd, sizeof(cmd),
             "setsid sh -c 'echo $$ > \"$TMPDIR/p\"; exec sleep %s' >/dev/null 2>&1 & "
             "while [ ! -s \"$TMPDIR/p\" ]; do sleep 0.01; done; echo quick",
             m2);
    got = bash_raw(f, cmd, 0);
    assert_string_equal(got, "quick\n");
    free(got);
    assert_true(marker_gone(m2));
    /* control: without the cleanup protection (nor the cgroup of the process limit, whose
     * removal kills what is left in it) it survives the call */
    got = bash_without(f, CONFINE_CLEANUP | CONFINE_PROCS, cmd, 0);
    free(got);
    long pid = find_process(m2);
    assert_true(pid > 0);
    kill((pid_t)pid, SIGKILL);
    assert_true(marker_gone(m2));
}

/* Forks up to 64 sleeping children; the output says how many it got. */
#define FORKER                                                                                 \
    "perl -e 'my $n = 0; while ($n < 64) { my $p = fork(); last unless defined $p; "        \
    "if ($p == 0) { close STDOUT; close STDERR; sleep 300; exit 0 } $n++ } "                  \
    "print \"forked $n\\n\"' %s"

static long forked(const char *out)
{
    const char *p = strstr(out, "forked ");
    long n = -1;
    if (p)
        n = strtol(p + 7, NULL, 10);
    return n;
}

static void test_fork_bomb(void **state)
{
    fx *f = *state;
    if (!confined(f, "test_fork_bomb"))
        return;
    f->sb.bash_max_procs = 16;
    char marker[32], cmd[512];
    snprintf(marker, sizeof(marker), "m%ld-bomb", (long)getpid());
    snprintf(cmd, sizeof(cmd), FORKER, marker);
    char *got = bash_raw(f, cmd, 20000);
    long n = forked(got);
    if (n <= 0 || n >= 16)
        fail_msg("with a limit of 16 processes the shell forked %ld: %s", n, got);
    free(got);
    assert_true(marker_gone(marker));
    /* the classic bomb: contained, and gone when the call times out */
    snprintf(cmd, sizeof(cmd), "bomb() { bomb | bomb & }; bomb; sleep 5 # %s", marker);
    got = bash_raw(f, cmd, 1000);
    assert_non_null(strstr(got, "Command timed out after 1000 ms"));
    free(got);
    assert_true(marker_gone(marker));
    /* control: without the process limit the same command gets all 64 */
    snprintf(cmd, sizeof(cmd), FORKER, marker);
    got = bash_without(f, CONFINE_PROCS, cmd, 20000);
    assert_int_equal(forked(got), 64);
    free(got);
    assert_true(marker_gone(marker));
}

/* A protection missing: Bash is refused with the reason, and runs with --unsafe-bash. */
static void test_missing_protection(void **state)
{
    fx *f = *state;
    f->sb.bash_caps.have &= ~(unsigned)CONFINE_FILES;
    f->sb.bash_caps.landlock_abi = 0;
    f->sb.unsafe_bash = false;
    char *got = bash_raw(f, "echo ran > ran.txt; echo ran", 0);
    assert_true(str_starts_with(got, "Bash: refused: this system cannot confine the shell; "
                                     "missing: files (no Landlock: it needs Linux 5.13+"));
    assert_non_null(strstr(got, "The user can run Bash anyway with --unsafe-bash."));
    free(got);
    assert_null(content(f, "ran.txt"));
    f->sb.unsafe_bash = true;
    got = bash_raw(f, "echo ran > ran.txt; echo ran", 0);
    assert_string_equal(got, "ran\n");
    free(got);
}

/* ---- as an unprivileged user (when the tests run as root) ------------------------------- */

static int nr_failed;

static void child_check(bool ok, const char *what, const char *detail)
{
    if (!ok) {
        fprintf(stderr, "as uid 65534: %s: %s\n", what, detail ? detail : "");
        nr_failed++;
    }
}

static void chown_tree(const char *path)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "chown -R 65534:65534 '%s'", path);
    assert_int_equal(system(cmd), 0);
}

/* In the child, as uid 65534: the checks that depend on the credentials (Landlock over files
 * the user owns, RLIMIT_NPROC, namespaces made without privilege). */
static void unprivileged_checks(fx *f, const char *label)
{
    put_in(f, "n1", "orig\n");
    char *got = bash_raw(f, "rm -f n1; echo pwned > n1; echo pwned > n2", 0);
    child_check(intact(f, "n1"), label, got);
    free(got);
    got = bash_without(f, CONFINE_ALL, "echo changed > n1", 0);
    child_check(!intact(f, "n1"), "control write", got);
    free(got);
    int port;
    int s = listen_local(&port);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "exec 3<>/dev/tcp/127.0.0.1/%d && echo CONNECTED", port);
    got = bash_raw(f, cmd, 10000);
    child_check(!strstr(got, "CONNECTED") && accepted(s) == 0, label, got);
    free(got);
    close(s);
    f->sb.bash_max_procs = 16;
    char marker[32];
    snprintf(marker, sizeof(marker), "m%ld-uid", (long)getpid());
    snprintf(cmd, sizeof(cmd), FORKER, marker);
    got = bash_raw(f, cmd, 20000);
    long n = forked(got);
    child_check(n > 0 && n < 16, label, got);
    free(got);
    child_check(marker_gone(marker), label, "forked children survived");
    snprintf(cmd, sizeof(cmd), "(setsid sleep 933.%ld >/dev/null 2>&1 &); echo quick",
             (long)getpid());
    free(bash_raw(f, cmd, 0));
    snprintf(marker, sizeof(marker), "933.%ld", (long)getpid());
    child_check(marker_gone(marker), label, "a setsid process survived");
}

static void test_unprivileged(void **state)
{
    fx *f = *state;
    if (geteuid() != 0) {
        print_message("[ SKIPPED  ] test_unprivileged: not root (the other tests ran "
                      "unprivileged)\n");
        return;
    }
    chown_tree(f->root);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
            _exit(3);
        agent_sandbox sb;
        if (agent_sandbox_init(&sb, f->repo, NULL, false, false, NULL) != LOCO_OK)
            _exit(4);
        f->sb = sb;
        buf why;
        buf_init(&why, 4096);
        if (confine_describe_missing(&f->sb.bash_caps, &why)) {
            fprintf(stderr, "as uid 65534: skipped, missing: %s\n", buf_str(&why));
            _exit(0);
        }
        unprivileged_checks(f, "with a user namespace");
        /* without user namespaces: seccomp, RLIMIT_NPROC over the user's count, a subreaper */
        f->sb.bash_caps.userns = f->sb.bash_caps.netns = f->sb.bash_caps.pidns = false;
        if (f->sb.bash_caps.seccomp && f->sb.bash_caps.child_list)
            unprivileged_checks(f, "without a user namespace");
        _exit(nr_failed ? 1 : 0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(int argc, char **argv)
{
    (void)argc;
    /* The keys must be in the initial environment (what /proc/PID/environ shows). */
    if (!getenv("LOCO_TEST_CONFINE_REEXEC")) {
        setenv("OPENROUTER_API_KEY", SECRET_OR, 1);
        setenv("ANTHROPIC_AUTH_TOKEN", SECRET_ANT, 1);
        setenv("HF_TOKEN", SECRET_HF, 1);
        setenv("LOCO_TEST_CONFINE_REEXEC", "1", 1);
        /* A cross build runs under LOCO_EMULATOR (qemu-user, set by CMake): the host cannot
         * exec our binary itself, so the emulator is started again with it. */
        const char *emu = getenv("LOCO_EMULATOR");
        if (emu && emu[0]) {
            char words[256];
            char *eargv[16 + 64];
            size_t n = 0;
            snprintf(words, sizeof(words), "%s", emu);
            for (char *w = words; *w && n < 16;) {
                while (*w == ' ')
                    *w++ = '\0';
                if (*w)
                    eargv[n++] = w;
                while (*w && *w != ' ')
                    w++;
            }
            for (int i = 0; argv[i] && n < LOCO_ARRAY_LEN(eargv) - 1; i++)
                eargv[n++] = argv[i];
            eargv[n] = NULL;
            execvp(eargv[0], eargv);
            perror("execvp LOCO_EMULATOR");
            return 1;
        }
        execv("/proc/self/exe", argv);
        perror("execv /proc/self/exe");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writes, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_writes_old_landlock, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_reads, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_output_dir, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_environment, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_network, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_setsid_killed, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_fork_bomb, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_missing_protection, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_unprivileged, setup, test_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
