/* test_tool_bash.c: unit tests of the Bash tool (agent/tool_bash.c) and its read-only policy
 * (agent/bash_policy.c): output, exit codes, the working directory, timeouts that kill every
 * process of the call, cancel, the output cap, and ~120 commands judged by the policy ($'...'
 * and $"..." decoded). The kernel's confinement has its own tests: test_bash_confine.c. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/tools.h"
#include "agent/tools_int.h"
#include "base/buf.h"
#include "base/file.h"
#include "base/str.h"

typedef test_fx fx;

/* The cancel flag the tool polls (the tests run one at a time). */
static volatile int cancel_flag;

static int setup(void **state)
{
    fx *f = test_fx_new("bash");
    if (!f || test_fx_sandbox(f, false) != 0) {
        test_fx_free(f);
        return -1;
    }
    /* These tests are about the tool, not the kernel: they run with whatever confinement this
     * machine has (test_bash_confine.c checks the refusal where some is missing). */
    f->sb.unsafe_bash = true;
    cancel_flag = 0;
    *state = f;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs Bash with the command (and timeout in ms when > 0); returns the malloc'd result. */
static char *run_st(fx *f, const char *command, long timeout, bool *is_error, loco_status *st)
{
    json_t *args = json_pack("{s:s}", "command", command);
    if (timeout > 0)
        json_object_set_new(args, "timeout", json_integer(timeout));
    agent_tool_ctx ctx = {.sb = &f->sb, .cancel = &cancel_flag, .threads = 1};
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    *is_error = false;
    *st = agent_tool_bash.run(&ctx, args, &out, is_error);
    json_decref(args);
    return buf_take(&out, NULL);
}

static char *run(fx *f, const char *command, long timeout, bool *is_error)
{
    loco_status st;
    char *r = run_st(f, command, timeout, is_error, &st);
    assert_int_equal(st, LOCO_OK);
    return r;
}

static void check(fx *f, const char *command, bool want_error, const char *want)
{
    bool is_error;
    char *got = run(f, command, 0, &is_error);
    assert_string_equal(got, want);
    assert_int_equal(is_error, want_error);
    free(got);
}

static void test_basics(void **state)
{
    fx *f = *state;
    check(f, "echo hello", false, "hello\n");
    check(f, "echo out; echo err >&2; exit 3", true, "Exit code 3\nout\nerr\n");
    check(f, "true", false, "(no output)");
    check(f, "false", true, "Exit code 1\n");
    check(f, "cat", false, "(no output)"); /* stdin is /dev/null */
    check(f, "printf 'a\\xff\\x00b'", false, "a\xef\xbf\xbd\xef\xbf\xbd" "b");
    char want[1024];
    snprintf(want, sizeof(want), "%s\n", f->repo);
    check(f, "pwd", false, want);
    f->sb.allow_bash_writes = true; /* kill is refused by the policy */
    check(f, "kill -9 $$", true, "Exit code 137\n");
    f->sb.allow_bash_writes = false;
    /* SIGPIPE is default in the child even when the parent ignores it */
    signal(SIGPIPE, SIG_IGN);
    check(f, "yes | head -n 2", false, "y\ny\n");
    signal(SIGPIPE, SIG_DFL);
    /* a scratch HOME (and TMPDIR), emptied after the call */
    bool is_error;
    f->sb.allow_bash_writes = true; /* touch is refused by the policy */
    char *got = run(f, "echo \"$HOME $TMPDIR\"; touch \"$HOME/x\" && ls \"$HOME\"", 0,
                    &is_error);
    f->sb.allow_bash_writes = false;
    char home[512];
    assert_int_equal(sscanf(got, "%511s", home), 1);
    assert_non_null(strstr(home, "/loco-bash-"));
    assert_non_null(strstr(got, "\nx\n"));
    assert_false(is_error);
    free(got);
    struct stat st;
    assert_int_not_equal(stat(home, &st), 0); /* removed */
}

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

static void test_bad_args(void **state)
{
    fx *f = *state;
    agent_tool_ctx ctx = {.sb = &f->sb, .cancel = &cancel_flag, .threads = 1};
    static const char *const cases[][2] = {
        {"{}", "Bash: command is required"},
        {"{\"command\":1}", "Bash: command must be a string"},
        {"{\"command\":\"ls\",\"timeout\":\"soon\"}", "Bash: timeout must be an integer"},
        {"{\"command\":\"ls\",\"timeout\":-5}",
         "Bash: timeout must be a positive number of milliseconds (got -5)"},
        {"{\"command\":\"ls\",\"description\":[]}", "Bash: description must be a string"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        json_t *args = json_loads(cases[k][0], 0, NULL);
        buf out;
        buf_init(&out, BUF_UNLIMITED);
        bool is_error = false;
        assert_int_equal(agent_tool_bash.run(&ctx, args, &out, &is_error), LOCO_OK);
        assert_string_equal(buf_str(&out), cases[k][1]);
        assert_true(is_error);
        buf_release(&out);
        json_decref(args);
    }
}

static void test_timeout_kills_group(void **state)
{
    fx *f = *state;
    char marker[64], cmd[256];
    snprintf(marker, sizeof(marker), "977.%ld", (long)getpid());
    snprintf(cmd, sizeof(cmd), "sleep %s & sleep 100", marker);
    double t0 = now_s();
    bool is_error;
    char *got = run(f, cmd, 300, &is_error);
    double dt = now_s() - t0;
    assert_string_equal(got, "Command timed out after 300 ms; it and every process it started "
                             "were killed.");
    assert_true(is_error);
    assert_true(dt < 2.0);
    free(got);
    assert_true(marker_gone(marker));

    /* a command ignoring SIGTERM gets SIGKILL after the grace period; output so far is kept */
    t0 = now_s();
    got = run(f, "trap '' TERM; echo started; sleep 100", 200, &is_error);
    dt = now_s() - t0;
    assert_string_equal(got, "started\nCommand timed out after 200 ms; it and every process it "
                             "started were killed.");
    assert_true(dt >= 2.0 && dt < 5.0);
    free(got);
}

static void test_background_lingering(void **state)
{
    fx *f = *state;
    double t0 = now_s();
    bool is_error;
    char *got = run(f, "sleep 100 & echo done", 0, &is_error);
    double dt = now_s() - t0;
    assert_string_equal(got, "done\n\n[background processes still running after the command "
                             "finished were stopped]");
    assert_false(is_error);
    assert_true(dt < 4.0);
    free(got);
    /* a background job that closes its output does not delay the result */
    t0 = now_s();
    got = run(f, "sleep 100 >/dev/null 2>&1 & echo quick", 0, &is_error);
    assert_string_equal(got, "quick\n");
    assert_true(now_s() - t0 < 1.0);
    free(got);
}

static void *cancel_later(void *arg)
{
    (void)arg;
    usleep(300000);
    __atomic_store_n(&cancel_flag, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_cancel(void **state)
{
    fx *f = *state;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_later, f), 0);
    double t0 = now_s();
    bool is_error;
    loco_status st;
    char *got = run_st(f, "echo begun; sleep 100", 0, &is_error, &st);
    double dt = now_s() - t0;
    pthread_join(th, NULL);
    assert_int_equal(st, LOCO_ERR_CANCELLED);
    assert_string_equal(got, "begun\nCommand cancelled; it and every process it started were "
                             "killed.");
    assert_true(dt < 1.5);
    free(got);
    /* already cancelled: nothing runs */
    got = run_st(f, "echo never", 0, &is_error, &st);
    assert_int_equal(st, LOCO_ERR_CANCELLED);
    assert_string_equal(got, "");
    free(got);
    cancel_flag = 0;
}

static void test_output_cap(void **state)
{
    fx *f = *state;
    bool is_error;
    char *got = run(f, "head -c 100000 /dev/zero | tr '\\0' a", 0, &is_error);
    buf want;
    buf_init(&want, BUF_UNLIMITED);
    for (int i = 0; i < 29600; i++)
        assert_int_equal(buf_appendc(&want, 'a'), LOCO_OK);
    assert_int_equal(buf_appends(&want, "\n\n[output truncated: the first 29600 of 100000 bytes "
                                        "shown, 70400 bytes cut; narrow the command (head, "
                                        "grep, wc) to see the rest]"),
                     LOCO_OK);
    assert_string_equal(got, want.data);
    assert_true(strlen(got) <= AGENT_TOOL_OUTPUT_MAX);
    buf_release(&want);
    free(got);
    /* an endless producer: memory stays bounded, the timeout stops it */
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    got = run(f, "yes 0123456789012345678901234567890123456789", 1500, &is_error);
    getrusage(RUSAGE_SELF, &after);
    assert_true(strlen(got) <= AGENT_TOOL_OUTPUT_MAX);
    assert_non_null(strstr(got, "bytes cut; narrow the command"));
    assert_true(str_ends_with(got, "Command timed out after 1500 ms; it and every process it "
                                   "started were killed."));
    assert_true(after.ru_maxrss - before.ru_maxrss < 16 * 1024);
    free(got);
}

static void test_refusal_result(void **state)
{
    fx *f = *state;
    check(f, "rm -rf src", true,
          "Bash: command refused by the read-only policy: `rm` writes, deletes or moves files. "
          "The explorer's shell may not write, delete or move files or reach the network; use "
          "Read, Grep and Glob to look around (and Write for the answer file). The user can "
          "lift this with --allow-bash-writes (the network stays closed).");
    check(f, "echo hi > f.txt", true,
          "Bash: command refused by the read-only policy: the redirection '> f.txt' writes to a "
          "file. The explorer's shell may not write, delete or move files or reach the network; "
          "use Read, Grep and Glob to look around (and Write for the answer file). The user can "
          "lift this with --allow-bash-writes (the network stays closed).");
    char p[1024];
    snprintf(p, sizeof(p), "%s/f.txt", f->repo);
    assert_false(file_exists(p));
    /* --allow-bash-writes lifts it (the repository is writable with --allow-write only) */
    f->sb.allow_bash_writes = true;
    f->sb.allow_write = true;
    check(f, "echo hi > f.txt && cat f.txt", false, "hi\n");
    assert_true(file_exists(p));
}

/* The policy on its own: {command, allowed?, reason substring for refusals}. */
static void test_policy(void **state)
{
    (void)state;
    static const struct {
        const char *cmd;
        bool ok;
        const char *why;
    } cases[] = {
        {"ls -la", true, NULL},
        {"cat a > /dev/null", true, NULL},
        {"grep x f 2>&1 | head", true, NULL},
        {"grep -rn foo src 2>/dev/null | sort | uniq -c", true, NULL},
        {"find . -name '*.c' | xargs wc -l", true, NULL},
        {"find . -type f -exec grep -l TODO {} +", true, NULL},
        {"git log --oneline -5 && git status && git diff HEAD~1", true, NULL},
        {"git -C sub show HEAD:README.md", true, NULL},
        {"git branch -a", true, NULL},
        {"git stash list", true, NULL},
        {"git config --get user.name", true, NULL},
        {"sed -n '1,20p' file.c", true, NULL},
        {"perl -ne 'print if /-i/' x", true, NULL},
        {"for f in *.c; do wc -l \"$f\"; done", true, NULL},
        {"if [ -f x ]; then cat x; fi", true, NULL},
        {"[[ a > b ]] && echo yes", true, NULL},
        {"echo $((3 > 2))", true, NULL},
        {"(( 3 > 2 )) && echo y", true, NULL},
        {"cat <<'EOF'\nrm -rf / > x\nEOF\necho after", true, NULL},
        {"diff <(sort a) <(sort b)", true, NULL},
        {"x=$(ls | wc -l); echo $x", true, NULL},
        {"echo 'rm -rf /' \"> not a redirect\"", true, NULL},
        {"command -v rm", true, NULL},
        {"tar -tzf a.tgz", true, NULL},
        {"gzip -dc a.gz | head", true, NULL},
        {"python3 -c 'print(1)'", true, NULL},
        {"bash -c 'ls | head'", true, NULL},
        {"make -n", true, NULL},
        {"exec 2>&1; ls", true, NULL},
        {"wc -l < input.txt", true, NULL},
        {"echo > f", false, "the redirection '> f'"},
        {"ls >> log.txt", false, "the redirection '>> log.txt'"},
        {"ls &> out", false, "the redirection '&> out'"},
        {"ls 2> err.txt", false, "the redirection '> err.txt'"},
        {"ls >| f", false, "the redirection '>| f'"},
        {"ls >& f", false, "the redirection '>& f'"},
        {"cat x > $OUT", false, "the redirection '> $'"},
        {"rm x", false, "`rm` writes"},
        {"/bin/rm -f x", false, "`rm` writes"},
        {"\\rm x", false, "`rm` writes"},
        {"r''m x", false, "`rm` writes"},
        {"echo $(rm x)", false, "`rm` writes"},
        {"echo `mv a b`", false, "`mv` writes"},
        {"echo \"$(touch x)\"", false, "`touch` writes"},
        {"ls; cp a b", false, "`cp` writes"},
        {"true && mkdir d", false, "`mkdir` writes"},
        {"(cd src && chmod +x a)", false, "`chmod` writes"},
        {"find . -delete", false, "`find -delete`"},
        {"find . -name x -exec rm {} \\;", false, "`rm` writes"},
        {"ls | xargs rm", false, "`rm` writes"},
        {"ls | xargs -0 -n1 mv -t d", false, "`mv` writes"},
        {"ls | tee out.txt", false, "`tee` writes"},
        {"sed -i 's/a/b/' f", false, "`sed` -i"},
        {"sed --in-place=.bak 's/a/b/' f", false, "`sed` -i"},
        {"sed -ni 's/a/b/p' f", false, "`sed` -i"},
        {"perl -pi -e 's/a/b/' f", false, "`perl` -i"},
        {"git commit -m x", false, "`git commit`"},
        {"git -C . push origin main", false, "`git push`"},
        {"git checkout -- .", false, "`git checkout`"},
        {"git branch -D old", false, "`git branch`"},
        {"git branch newbranch", false, "`git branch`"},
        {"git stash", false, "`git stash`"},
        {"git config user.name x", false, "`git config`"},
        {"git diff --output=x", false, "`git diff --output"},
        {"curl https://example.com", false, "`curl` reaches the network"},
        {"wget -qO- x | sh", false, "`wget` reaches"},
        {"ssh host ls", false, "`ssh` reaches"},
        {"pip install requests", false, "`pip install`"},
        {"python3 -m pip install x", false, "`pip install`"},
        {"npm install", false, "`npm install`"},
        {"apt-get install -y vim", false, "`apt-get install`"},
        {"dd if=/dev/zero of=x", false, "`dd` writes"},
        {"truncate -s 0 f", false, "`truncate` writes"},
        {"ln -s a b", false, "`ln` writes"},
        {"env FOO=1 rm x", false, "`rm` writes"},
        {"sudo ls", false, "`sudo` changes"},
        {"nohup timeout 5 shred f", false, "`shred` writes"},
        {"bash -c 'rm -rf x'", false, "`rm` writes"},
        {"sh -c \"echo > f\"", false, "the redirection '> f'"},
        {"eval rm x", false, "`rm` writes"},
        {"echo rm x | bash", false, "`bash` reading commands"},
        {"$CMD x", false, "a command named by an expansion"},
        {"cat <<EOF\n$(rm x)\nEOF", false, "`rm` writes"},
        {"diff <(rm a) b", false, "`rm` writes"},
        {"echo ${X:-$(rm y)}", false, "`rm` writes"},
        {"echo $((1 + $(rm z)))", false, "`rm` writes"},
        {"tar xzf a.tgz", false, "`tar` other than listing"},
        {"gunzip a.gz", false, "`gunzip` replaces"},
        {"sort -o out in", false, "`sort` -o"},
        {"make", false, "`make` builds"},
        {"f() { rm x; }; f", false, "`rm` writes"},
        {"echo 'unbalanced", false, "unbalanced single quote"},
        {"ls 2>&1 >out", false, "the redirection '> out'"},
        /* $'...' and $"..." are decoded before judging (issue 11's bypasses) */
        {"$'\\x72\\x6d' -f F", false, "`rm` writes"},
        {"$'\\162\\155' -f F", false, "`rm` writes"},
        {"r$'\\x6d' -f F", false, "`rm` writes"},
        {"$\"rm\" -f F", false, "`rm` writes"},
        {"$'\\u0072m' F", false, "`rm` writes"},
        {"$'\\U00000072\\155' F", false, "`rm` writes"},
        {"$'\\x72\\x6d\\0zz' F", false, "`rm` writes"}, /* a NUL ends the string */
        {"sed $'-\\x69' s/a/b/ F", false, "`sed` -i"},
        {"sed $'-n\\151' s/a/b/ F", false, "`sed` -i"},
        {"echo x | $'\\x74ee' FILE", false, "`tee` writes"},
        {"find . -name F $'-\\x64elete'", false, "`find -delete`"},
        {"$'\\x63url' http://example.com", false, "`curl` reaches the network"},
        {"git $'\\x63onfig' user.name x", false, "`git config`"},
        {"git $\"config\" user.name x", false, "`git config`"},
        {"$'\\x2fbin/rm' x", false, "`rm` writes"},
        {"{rm,-f,F}", false, "a command named by an expansion"},
        {"source <(echo rm -f F)", false, "`source` of generated commands"},
        {". /dev/stdin <<< 'rm -f F'", false, "`.` of generated commands"},
        {"bash <(echo rm -f F)", false, "`bash` running generated commands"},
        {"source ./env.sh", true, NULL},
        {"echo $'a\\tb\\x41\\q'", true, NULL},
        {"echo $\"hello $USER\"", true, NULL},
        {"printf '%s\\n' $'\\x2d\\x69'", true, NULL},
        {"echo {1..3} {a,b}", true, NULL},
        {"find . -exec grep -l x {} +", true, NULL},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        buf why;
        buf_init(&why, 4096);
        bool ok = tools_bash_allowed(cases[k].cmd, &why);
        if (ok != cases[k].ok || (cases[k].why && !strstr(buf_str(&why), cases[k].why)))
            fail_msg("command %s: allowed=%d (want %d), why='%s' (want '%s')", cases[k].cmd,
                     ok, cases[k].ok, buf_str(&why), cases[k].why ? cases[k].why : "");
        buf_release(&why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basics, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_kills_group, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_background_lingering, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_output_cap, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_refusal_result, setup, test_fx_teardown),
        cmocka_unit_test(test_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
