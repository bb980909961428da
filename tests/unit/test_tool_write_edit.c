/* test_tool_write_edit.c: unit tests of the Write and Edit tools (agent/tool_write.c,
 * agent/tool_edit.c) on real files: results, write confinement (output directory, repository
 * with --allow-write, symlinks), argument errors, and atomicity (no temporary files left). */
#include "base/common.h"

#include <dirent.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"
#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/tools.h"
#include "base/buf.h"
#include "base/file.h"
#include "base/str.h"

typedef test_fx fx;

static void put(const char *path, const char *text)
{
    assert_int_equal(file_write_atomic(path, text, strlen(text), 0644, NULL), LOCO_OK);
}

static char *slurp(const char *path)
{
    buf b;
    buf_init(&b, 1u << 20);
    if (file_read_all(path, &b, NULL) != LOCO_OK) {
        buf_release(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

static int setup(void **state)
{
    if (test_fx_setup(state, "write") != 0)
        return -1;
    fx *f = *state;
    char p[1024];
    snprintf(p, sizeof(p), "%s/src.c", f->repo);
    put(p, "int main(void) { return 0; }\n");
    snprintf(p, sizeof(p), "%s/escape", f->repo);
    return symlink(f->outside, p) == 0 ? 0 : -1;
}

static char *run_tool(fx *f, const agent_tool *t, json_t *args, bool *is_error)
{
    agent_tool_ctx ctx = {.sb = &f->sb, .threads = 1};
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    *is_error = !*is_error;
    assert_int_equal(t->run(&ctx, args, &out, is_error), LOCO_OK);
    json_decref(args);
    return buf_take(&out, NULL);
}

static void expect(fx *f, const agent_tool *t, json_t *args, bool want_error, const char *want)
{
    bool is_error = want_error;
    char *got = run_tool(f, t, args, &is_error);
    assert_string_equal(got, want);
    assert_int_equal(is_error, want_error);
    free(got);
}

/* Number of directory entries under dir (recursively) whose name holds ".tmp.". */
static int temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0))
            continue;
        if (strstr(e->d_name, ".tmp."))
            n++;
        char sub[2048];
        snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            n += temp_files(sub);
    }
    closedir(d);
    return n;
}

static void test_write(void **state)
{
    fx *f = *state;
    char p[1024], want[4096];
    snprintf(p, sizeof(p), "%s/answers/q001.md", f->out);
    snprintf(want, sizeof(want), "File created successfully at: %s", p);
    expect(f, &agent_tool_write, json_pack("{s:s,s:s}", "file_path", p, "content", "# Answer\n"),
           false, want);
    char *c = slurp(p);
    assert_string_equal(c, "# Answer\n");
    free(c);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    /* overwrite keeps the mode */
    chmod(p, 0600);
    snprintf(want, sizeof(want), "The file %s has been updated.", p);
    expect(f, &agent_tool_write, json_pack("{s:s,s:s}", "file_path", p, "content", "v2"), false,
           want);
    c = slurp(p);
    assert_string_equal(c, "v2");
    free(c);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* content with a NUL byte is written whole */
    snprintf(p, sizeof(p), "%s/nul.bin", f->out);
    json_t *args = json_object();
    json_object_set_new(args, "file_path", json_string(p));
    json_object_set_new(args, "content", json_stringn("a\0b", 3));
    snprintf(want, sizeof(want), "File created successfully at: %s", p);
    expect(f, &agent_tool_write, args, false, want);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 3);
    /* empty content */
    snprintf(p, sizeof(p), "%s/empty.md", f->out);
    snprintf(want, sizeof(want), "File created successfully at: %s", p);
    expect(f, &agent_tool_write, json_pack("{s:s,s:s}", "file_path", p, "content", ""), false,
           want);
    assert_int_equal(temp_files(f->root), 0);
}

static void test_write_refusals(void **state)
{
    fx *f = *state;
    char want[4096], p[1024];
    snprintf(want, sizeof(want),
             "Write: cannot write src.c (resolved: %s/src.c): writes are allowed only inside "
             "the output directory %s (the user can allow writes in the repository with "
             "--allow-write)",
             f->repo, f->out);
    expect(f, &agent_tool_write, json_pack("{s:s,s:s}", "file_path", "src.c", "content", "x"),
           true, want);
    snprintf(p, sizeof(p), "%s/src.c", f->repo);
    char *c = slurp(p);
    assert_string_equal(c, "int main(void) { return 0; }\n");
    free(c);
    bool is_error = false;
    c = run_tool(f, &agent_tool_write,
                 json_pack("{s:s,s:s}", "file_path", "/tmp/loco-evil.txt", "content", "x"),
                 &is_error);
    assert_true(is_error);
    assert_true(str_starts_with(c, "Write: cannot write /tmp/loco-evil.txt: writes are allowed "
                                   "only inside the output directory"));
    free(c);
    assert_false(file_exists("/tmp/loco-evil.txt"));
    /* through a symlink in the repo leading out, even with --allow-write */
    f->sb.allow_write = true;
    is_error = false;
    c = run_tool(f, &agent_tool_write,
                 json_pack("{s:s,s:s}", "file_path", "escape/x.txt", "content", "x"), &is_error);
    assert_true(is_error);
    assert_true(str_starts_with(c, "Write: cannot write escape/x.txt (resolved: "));
    free(c);
    snprintf(p, sizeof(p), "%s/x.txt", f->outside);
    assert_false(file_exists(p));
    /* ... while the repository itself is writable then */
    snprintf(want, sizeof(want), "The file %s/src.c has been updated.", f->repo);
    expect(f, &agent_tool_write, json_pack("{s:s,s:s}", "file_path", "src.c", "content", "y"),
           false, want);
    f->sb.allow_write = false;
    /* a directory */
    snprintf(want, sizeof(want), "Write: %s exists and is not a regular file", f->out);
    expect(f, &agent_tool_write, json_pack("{s:s,s:s}", "file_path", f->out, "content", "x"),
           true, want);
    /* arguments */
    expect(f, &agent_tool_write, json_pack("{s:s}", "file_path", "a"), true,
           "Write: content is required");
    expect(f, &agent_tool_write, json_pack("{s:s,s:i}", "file_path", "a", "content", 3), true,
           "Write: content must be a string");
    expect(f, &agent_tool_write, json_pack("{s:s}", "content", "a"), true,
           "Write: file_path is required");
    /* a failed write leaves no temporary file (root ignores permissions: skip there) */
    if (geteuid() != 0) {
        snprintf(p, sizeof(p), "%s/ro.md", f->out);
        mkdir(f->out, 0755);
        chmod(f->out, 0555);
        is_error = false;
        c = run_tool(f, &agent_tool_write, json_pack("{s:s,s:s}", "file_path", p, "content", "x"),
                     &is_error);
        assert_true(is_error);
        assert_true(str_starts_with(c, "Write: cannot create a temporary file beside"));
        free(c);
        chmod(f->out, 0755);
    }
    assert_int_equal(temp_files(f->root), 0);
}

static void test_edit(void **state)
{
    fx *f = *state;
    char p[1024], want[4096];
    snprintf(p, sizeof(p), "%s/notes.md", f->out);
    put(p, "alpha beta\ngamma beta\ndelta beta\n");
    snprintf(want, sizeof(want), "The file %s has been updated (1 replacement).", p);
    expect(f, &agent_tool_edit,
           json_pack("{s:s,s:s,s:s}", "file_path", p, "old_string", "gamma beta",
                     "new_string", "GAMMA"),
           false, want);
    char *c = slurp(p);
    assert_string_equal(c, "alpha beta\nGAMMA\ndelta beta\n");
    free(c);
    /* several matches */
    snprintf(want, sizeof(want),
             "Edit: Found 2 matches of the string to replace in %s, but replace_all is false. To "
             "replace all occurrences, set replace_all to true. To replace only one occurrence, "
             "please provide more context to uniquely identify the instance.\nString: beta",
             p);
    expect(f, &agent_tool_edit,
           json_pack("{s:s,s:s,s:s}", "file_path", p, "old_string", "beta", "new_string", "B"),
           true, want);
    /* replace_all (a string "true" is accepted too) */
    snprintf(want, sizeof(want), "The file %s has been updated (2 replacements).", p);
    expect(f, &agent_tool_edit,
           json_pack("{s:s,s:s,s:s,s:s}", "file_path", p, "old_string", "beta", "new_string",
                     "B", "replace_all", "true"),
           false, want);
    c = slurp(p);
    assert_string_equal(c, "alpha B\nGAMMA\ndelta B\n");
    free(c);
    /* not found, same strings */
    snprintf(want, sizeof(want), "Edit: String to replace not found in %s.\nString: zeta", p);
    expect(f, &agent_tool_edit,
           json_pack("{s:s,s:s,s:s}", "file_path", p, "old_string", "zeta", "new_string", "z"),
           true, want);
    expect(f, &agent_tool_edit,
           json_pack("{s:s,s:s,s:s}", "file_path", p, "old_string", "B", "new_string", "B"),
           true, "Edit: No changes to make: old_string and new_string are exactly the same.");
    /* empty old_string creates a new file, refuses on an existing one */
    snprintf(p, sizeof(p), "%s/new/created.md", f->out);
    snprintf(want, sizeof(want), "File created successfully at: %s", p);
    expect(f, &agent_tool_edit,
           json_pack("{s:s,s:s,s:s}", "file_path", p, "old_string", "", "new_string", "hello"),
           false, want);
    c = slurp(p);
    assert_string_equal(c, "hello");
    free(c);
    snprintf(want, sizeof(want),
             "Edit: old_string is empty, which only creates a new file or fills an empty one, "
             "and %s already has content. Give the text to replace.",
             p);
    expect(f, &agent_tool_edit,
           json_pack("{s:s,s:s,s:s}", "file_path", p, "old_string", "", "new_string", "x"), true,
           want);
    /* missing file */
    snprintf(p, sizeof(p), "%s/missing.md", f->out);
    snprintf(want, sizeof(want), "Edit: File does not exist: %s", p);
    expect(f, &agent_tool_edit,
           json_pack("{s:s,s:s,s:s}", "file_path", p, "old_string", "a", "new_string", "b"), true,
           want);
    assert_int_equal(temp_files(f->root), 0);
}

static void test_edit_refusals(void **state)
{
    fx *f = *state;
    char want[4096], p[1024];
    snprintf(want, sizeof(want),
             "Edit: cannot write src.c (resolved: %s/src.c): writes are allowed only inside "
             "the output directory %s (the user can allow writes in the repository with "
             "--allow-write)",
             f->repo, f->out);
    expect(f, &agent_tool_edit,
           json_pack("{s:s,s:s,s:s}", "file_path", "src.c", "old_string", "main",
                     "new_string", "niam"),
           true, want);
    snprintf(p, sizeof(p), "%s/src.c", f->repo);
    char *c = slurp(p);
    assert_string_equal(c, "int main(void) { return 0; }\n");
    free(c);
    /* with --allow-write the repository is editable */
    f->sb.allow_write = true;
    snprintf(want, sizeof(want), "The file %s has been updated (1 replacement).", p);
    expect(f, &agent_tool_edit,
           json_pack("{s:s,s:s,s:s}", "file_path", "src.c", "old_string", "return 0",
                     "new_string", "return 1"),
           false, want);
    c = slurp(p);
    assert_string_equal(c, "int main(void) { return 1; }\n");
    free(c);
    bool is_error = false;
    c = run_tool(f, &agent_tool_edit,
                 json_pack("{s:s,s:s,s:s}", "file_path", "../outside/x", "old_string", "",
                           "new_string", "x"),
                 &is_error);
    assert_true(is_error);
    assert_true(str_starts_with(c, "Edit: cannot write ../outside/x (resolved: "));
    free(c);
    f->sb.allow_write = false;
    /* arguments */
    expect(f, &agent_tool_edit, json_pack("{s:s,s:s}", "file_path", "a", "new_string", "b"), true,
           "Edit: old_string is required");
    expect(f, &agent_tool_edit,
           json_pack("{s:s,s:s,s:i}", "file_path", "a", "old_string", "b", "new_string", 1),
           true, "Edit: new_string must be a string");
    expect(f, &agent_tool_edit,
           json_pack("{s:s,s:s,s:s,s:i}", "file_path", "a", "old_string", "b", "new_string",
                     "c", "replace_all", 2),
           true, "Edit: replace_all must be a boolean");
    assert_int_equal(temp_files(f->root), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_write_refusals, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_edit, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_edit_refusals, setup, test_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
