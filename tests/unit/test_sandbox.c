/* test_sandbox.c: unit tests of agent/sandbox.c on real files in a temporary directory:
 * relative and absolute paths, ".." escapes, symlinks leading out, write confinement. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"
#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/sandbox.h"
#include "base/file.h"

typedef struct {
    char root[256];    /* the temp dir (resolved) */
    char repo[512];
    char out[512];
    char outside[512];
} fx;

static void put(const char *path, const char *text)
{
    assert_int_equal(file_write_atomic(path, text, strlen(text), 0644, NULL), LOCO_OK);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    char tmpl[] = "/tmp/loco-sandbox-XXXXXX";
    if (!f || !mkdtemp(tmpl))
        return -1;
    char *r = realpath(tmpl, NULL);
    snprintf(f->root, sizeof(f->root), "%s", r);
    free(r);
    snprintf(f->repo, sizeof(f->repo), "%s/repo", f->root);
    snprintf(f->out, sizeof(f->out), "%s/out", f->root);
    snprintf(f->outside, sizeof(f->outside), "%s/outside", f->root);
    mkdir(f->repo, 0755);
    mkdir(f->outside, 0755);
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/src/a.c", f->repo);
    put(p, "int a;\n");
    snprintf(p, sizeof(p), "%s/secret.txt", f->outside);
    put(p, "secret\n");
    /* symlinks: one leading out (file), one leading out (dir), one staying in, one dangling */
    char l[PATH_MAX + 64];
    snprintf(l, sizeof(l), "%s/evil", f->repo);
    if (symlink(p, l) != 0)
        return -1;
    snprintf(l, sizeof(l), "%s/evildir", f->repo);
    if (symlink(f->outside, l) != 0)
        return -1;
    snprintf(l, sizeof(l), "%s/good", f->repo);
    if (symlink("src/a.c", l) != 0)
        return -1;
    snprintf(l, sizeof(l), "%s/dangling", f->repo);
    if (symlink("/nonexistent-loco/x", l) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    test_rm_tree(f->root);
    free(f);
    return 0;
}

static void init_sb(fx *f, agent_sandbox *sb, bool allow_write)
{
    loco_err err;
    assert_int_equal(agent_sandbox_init(sb, f->repo, f->out, allow_write, false, &err), LOCO_OK);
    assert_string_equal(sb->repo_root, f->repo);
    assert_string_equal(sb->out_dir, f->out);
}

/* Resolves path; returns the status and puts the resolved path (or message) in got. */
static loco_status res(agent_sandbox *sb, const char *path, sandbox_access a, char *got,
                       size_t n)
{
    loco_err err;
    loco_err_clear(&err);
    char *out = NULL;
    loco_status rc = agent_sandbox_resolve(sb, path, a, &out, &err);
    snprintf(got, n, "%s", rc == LOCO_OK ? out : err.msg);
    if (rc == LOCO_OK)
        assert_non_null(out);
    else
        assert_null(out);
    free(out);
    return rc;
}

static void test_init_creates_out_dir(void **state)
{
    fx *f = *state;
    agent_sandbox sb;
    init_sb(f, &sb, false);
    struct stat st;
    assert_int_equal(stat(f->out, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    agent_sandbox_release(&sb);
    assert_null(sb.repo_root);
    loco_err err;
    char bad[PATH_MAX + 16];
    snprintf(bad, sizeof(bad), "%s/nope", f->root);
    assert_int_equal(agent_sandbox_init(&sb, bad, NULL, false, false, &err), LOCO_ERR_NOT_FOUND);
    snprintf(bad, sizeof(bad), "%s/src/a.c", f->repo);
    assert_int_equal(agent_sandbox_init(&sb, bad, NULL, false, false, &err), LOCO_ERR_INVALID);
    assert_non_null(strstr(err.msg, "is not a directory"));
    agent_sandbox_release(&sb);
}

static void test_relative_and_absolute(void **state)
{
    fx *f = *state;
    agent_sandbox sb;
    init_sb(f, &sb, false);
    char got[PATH_MAX * 2], want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s/src/a.c", f->repo);
    assert_int_equal(res(&sb, "src/a.c", SANDBOX_READ, got, sizeof(got)), LOCO_OK);
    assert_string_equal(got, want);
    assert_int_equal(res(&sb, "./src//./a.c", SANDBOX_READ, got, sizeof(got)), LOCO_OK);
    assert_string_equal(got, want);
    assert_int_equal(res(&sb, want, SANDBOX_READ, got, sizeof(got)), LOCO_OK);
    assert_string_equal(got, want);
    /* ".." that stays inside is fine */
    assert_int_equal(res(&sb, "src/../src/a.c", SANDBOX_READ, got, sizeof(got)), LOCO_OK);
    assert_string_equal(got, want);
    /* the root itself and a missing file (tail appended) */
    assert_int_equal(res(&sb, ".", SANDBOX_READ, got, sizeof(got)), LOCO_OK);
    assert_string_equal(got, f->repo);
    snprintf(want, sizeof(want), "%s/new/dir/file.txt", f->repo);
    assert_int_equal(res(&sb, "new/dir/file.txt", SANDBOX_READ, got, sizeof(got)), LOCO_OK);
    assert_string_equal(got, want);
    /* the output directory is readable too */
    snprintf(want, sizeof(want), "%s/answer.md", f->out);
    assert_int_equal(res(&sb, want, SANDBOX_READ, got, sizeof(got)), LOCO_OK);
    assert_string_equal(got, want);
    assert_int_equal(res(&sb, "", SANDBOX_READ, got, sizeof(got)), LOCO_ERR_INVALID);
    agent_sandbox_release(&sb);
}

static void test_dotdot_escapes(void **state)
{
    fx *f = *state;
    agent_sandbox sb;
    init_sb(f, &sb, false);
    char got[8192], want[8192];
    assert_int_equal(res(&sb, "../outside/secret.txt", SANDBOX_READ, got, sizeof(got)),
                     LOCO_ERR_AUTH);
    snprintf(want, sizeof(want),
             "path ../outside/secret.txt (resolved: %s/secret.txt) is outside the repository "
             "%s and the output directory %s",
             f->outside, f->repo, f->out);
    assert_string_equal(got, want);
    assert_int_equal(res(&sb, "src/../../outside/secret.txt", SANDBOX_READ, got, sizeof(got)),
                     LOCO_ERR_AUTH);
    assert_int_equal(res(&sb, "../../../../../../etc/passwd", SANDBOX_READ, got, sizeof(got)),
                     LOCO_ERR_AUTH);
    /* ".." after a missing directory cannot be checked: refused */
    assert_int_equal(res(&sb, "missing/../../outside/x", SANDBOX_READ, got, sizeof(got)),
                     LOCO_ERR_AUTH);
    assert_string_equal(got,
                        "path 'missing/../../outside/x' has '..' after a directory that does "
                        "not exist");
    assert_int_equal(res(&sb, "missing/../src/a.c", SANDBOX_READ, got, sizeof(got)),
                     LOCO_ERR_AUTH);
    /* a sibling whose name starts with the repo's name is not inside */
    char sib[PATH_MAX + 16];
    snprintf(sib, sizeof(sib), "%s-evil", f->repo);
    mkdir(sib, 0755);
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/x", sib);
    assert_int_equal(res(&sb, p, SANDBOX_READ, got, sizeof(got)), LOCO_ERR_AUTH);
    rmdir(sib);
    agent_sandbox_release(&sb);
}

static void test_absolute_outside(void **state)
{
    fx *f = *state;
    agent_sandbox sb;
    init_sb(f, &sb, false);
    char got[8192], want[8192];
    assert_int_equal(res(&sb, "/etc/passwd", SANDBOX_READ, got, sizeof(got)), LOCO_ERR_AUTH);
    snprintf(want, sizeof(want),
             "path /etc/passwd is outside the repository %s and the output directory %s",
             f->repo, f->out);
    assert_string_equal(got, want);
    assert_int_equal(res(&sb, "/", SANDBOX_READ, got, sizeof(got)), LOCO_ERR_AUTH);
    assert_int_equal(res(&sb, "/nonexistent-loco/a/b", SANDBOX_READ, got, sizeof(got)),
                     LOCO_ERR_AUTH);
    agent_sandbox_release(&sb);
}

static void test_symlinks(void **state)
{
    fx *f = *state;
    agent_sandbox sb;
    init_sb(f, &sb, false);
    char got[8192], want[8192];
    assert_int_equal(res(&sb, "evil", SANDBOX_READ, got, sizeof(got)), LOCO_ERR_AUTH);
    snprintf(want, sizeof(want),
             "path evil (resolved: %s/secret.txt) is outside the repository %s and the output "
             "directory %s",
             f->outside, f->repo, f->out);
    assert_string_equal(got, want);
    assert_int_equal(res(&sb, "evildir/secret.txt", SANDBOX_READ, got, sizeof(got)),
                     LOCO_ERR_AUTH);
    /* writing a new file through a symlinked directory is caught too */
    assert_int_equal(res(&sb, "evildir/new.txt", SANDBOX_READ, got, sizeof(got)), LOCO_ERR_AUTH);
    char abs[PATH_MAX + 32];
    snprintf(abs, sizeof(abs), "%s/evildir/secret.txt", f->repo);
    assert_int_equal(res(&sb, abs, SANDBOX_READ, got, sizeof(got)), LOCO_ERR_AUTH);
    /* a symlink that stays inside resolves to its target */
    snprintf(want, sizeof(want), "%s/src/a.c", f->repo);
    assert_int_equal(res(&sb, "good", SANDBOX_READ, got, sizeof(got)), LOCO_OK);
    assert_string_equal(got, want);
    /* a dangling symlink is refused (its target could be anywhere) */
    assert_int_equal(res(&sb, "dangling", SANDBOX_WRITE, got, sizeof(got)), LOCO_ERR_AUTH);
    assert_string_equal(got, "path 'dangling' is a symbolic link that leads nowhere");
    /* an out dir reached through a symlink in the repo is still the out dir */
    agent_sandbox_release(&sb);
}

static void test_write_confinement(void **state)
{
    fx *f = *state;
    agent_sandbox sb;
    init_sb(f, &sb, false);
    char got[8192], want[8192], p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/q001.md", f->out);
    assert_int_equal(res(&sb, p, SANDBOX_WRITE, got, sizeof(got)), LOCO_OK);
    assert_string_equal(got, p);
    assert_int_equal(res(&sb, "src/a.c", SANDBOX_WRITE, got, sizeof(got)), LOCO_ERR_AUTH);
    snprintf(want, sizeof(want),
             "cannot write src/a.c (resolved: %s/src/a.c): writes are allowed only inside the "
             "output directory %s (the user can allow writes in the repository with "
             "--allow-write)",
             f->repo, f->out);
    assert_string_equal(got, want);
    agent_sandbox_release(&sb);

    init_sb(f, &sb, true);
    snprintf(want, sizeof(want), "%s/src/a.c", f->repo);
    assert_int_equal(res(&sb, "src/a.c", SANDBOX_WRITE, got, sizeof(got)), LOCO_OK);
    assert_string_equal(got, want);
    assert_int_equal(res(&sb, "/tmp/loco-x", SANDBOX_WRITE, got, sizeof(got)), LOCO_ERR_AUTH);
    assert_int_equal(res(&sb, "evildir/x", SANDBOX_WRITE, got, sizeof(got)), LOCO_ERR_AUTH);
    agent_sandbox_release(&sb);

    /* no output directory and no --allow-write: nothing is writable */
    loco_err err;
    assert_int_equal(agent_sandbox_init(&sb, f->repo, NULL, false, false, &err), LOCO_OK);
    assert_int_equal(res(&sb, "x.md", SANDBOX_WRITE, got, sizeof(got)), LOCO_ERR_AUTH);
    assert_non_null(strstr(got, "there is no output directory"));
    agent_sandbox_release(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_creates_out_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relative_and_absolute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotdot_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absolute_outside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_confinement, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
