/* test_tool_glob.c: the Glob tool on a real tree: pattern forms (**, *, ?, [...], {a,b}),
 * newest-first order (mtimes set with utimes), .gitignore, the 100-file cap and its note,
 * absolute patterns, sandbox refusals. */
#include "base/common.h"

#include <setjmp.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#include "agent/tools.h"

static test_fx *fx;
static const char *root; /* fx->repo: the sandbox's repository, where the tools run */

static void put(const char *rel, long mtime)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    }
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(strcmp(rel, ".gitignore") == 0 ? "build/\n*.tmp\n" : "x\n", f);
    fclose(f);
    struct timeval tv[2] = {{mtime, 0}, {mtime, 0}};
    assert_int_equal(utimes(p, tv), 0);
}

static int setup(void **state)
{
    LOCO_UNUSED(state);
    fx = test_fx_new("glob");
    if (!fx || test_fx_sandbox(fx, false) != 0)
        return -1;
    root = fx->repo;
    put(".gitignore", 50);
    put("src/main.c", 300);
    put("src/util/helper.c", 500);
    put("src/util/helper.h", 400);
    put("src/scratch.tmp", 900);
    put("README.md", 100);
    put("docs/guide.md", 200);
    put("build/out.c", 1000);
    put("same/b.txt", 700);
    put("same/a.txt", 700);
    return 0;
}

static int teardown(void **state)
{
    LOCO_UNUSED(state);
    test_fx_free(fx);
    return 0;
}

static bool is_error;

static char *glob_call(const char *pattern, const char *path)
{
    json_t *args = json_pack("{s:s}", "pattern", pattern);
    if (path)
        json_object_set_new(args, "path", json_string(path));
    agent_tool_ctx ctx = {.sb = &fx->sb, .threads = 3};
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    assert_int_equal(agent_tool_glob.run(&ctx, args, &out, &is_error), LOCO_OK);
    json_decref(args);
    char *s = buf_take(&out, NULL);
    /* replace the root with "R" */
    size_t rl = strlen(root);
    char *w = s;
    for (const char *r = s; *r;) {
        if (strncmp(r, root, rl) == 0) {
            *w++ = 'R';
            r += rl;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return s;
}

static void expect(const char *pattern, const char *path, const char *want)
{
    char *got = glob_call(pattern, path);
    if (strcmp(got, want) != 0)
        fail_msg("Glob(%s, %s):\n got: %s\nwant: %s", pattern, path ? path : "-", got, want);
    free(got);
}

static void test_patterns(void **state)
{
    LOCO_UNUSED(state);
    expect("**/*.c", NULL, "R/src/util/helper.c\nR/src/main.c");
    assert_false(is_error);
    expect("*.c", NULL, "R/src/util/helper.c\nR/src/main.c");
    expect("src/*.c", NULL, "R/src/main.c");
    expect("src/**/*.{c,h}", NULL, "R/src/util/helper.c\nR/src/util/helper.h\nR/src/main.c");
    expect("*.md", NULL, "R/docs/guide.md\nR/README.md");
    expect("[A-Z]*.md", NULL, "R/README.md");
    expect("?ain.c", NULL, "R/src/main.c");
    expect("*.txt", NULL, "R/same/a.txt\nR/same/b.txt");
    expect("*.h", "src/util", "R/src/util/helper.h");
    expect("*.zzz", NULL, "No files found");
    assert_false(is_error);
}

static void test_gitignore(void **state)
{
    LOCO_UNUSED(state);
    expect("**/*.tmp", NULL, "No files found");
    expect("out.c", NULL, "No files found");
    /* naming the ignored directory walks it */
    expect("*.c", "build", "R/build/out.c");
    expect("*", "src", "R/src/util/helper.c\nR/src/util/helper.h\nR/src/main.c");
}

static void test_absolute_pattern(void **state)
{
    LOCO_UNUSED(state);
    char pat[256];
    snprintf(pat, sizeof(pat), "%s/src/**/*.h", root);
    expect(pat, NULL, "R/src/util/helper.h");
    snprintf(pat, sizeof(pat), "%s/README.md", root);
    expect(pat, NULL, "R/README.md");
    char *got = glob_call("/etc/*.conf", NULL);
    assert_true(is_error);
    assert_non_null(strstr(got, "outside the repository"));
    free(got);
}

static void test_truncation(void **state)
{
    LOCO_UNUSED(state);
    for (int i = 0; i < 120; i++) {
        char name[64];
        snprintf(name, sizeof(name), "many/f%03d.dat", i);
        put(name, 10000 + i);
    }
    char want[4096];
    size_t pos = 0;
    for (int i = 119; i >= 20; i--)
        pos += (size_t)snprintf(want + pos, sizeof(want) - pos, "R/many/f%03d.dat\n", i);
    snprintf(want + pos, sizeof(want) - pos,
             "(Results are truncated. Consider using a more specific path or pattern.)");
    expect("*.dat", NULL, want);
    assert_false(is_error);
    expect("many/f00[0-2].dat", NULL, "R/many/f002.dat\nR/many/f001.dat\nR/many/f000.dat");
}

static void test_errors(void **state)
{
    LOCO_UNUSED(state);
    char *got = glob_call("*", "/etc");
    assert_true(is_error);
    assert_non_null(strstr(got, "outside the repository"));
    free(got);
    expect("*", "README.md", "Glob: path is not a directory: R/README.md");
    assert_true(is_error);
    expect("*", "nope", "Glob: cannot access 'R/nope': No such file or directory");
    assert_true(is_error);
    expect("{a,b", NULL, "Glob: glob '{a,b': unclosed '{'");
    assert_true(is_error);
    agent_tool_ctx ctx = {.sb = &fx->sb, .threads = 1};
    json_t *args = json_object();
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    assert_int_equal(agent_tool_glob.run(&ctx, args, &out, &is_error), LOCO_OK);
    assert_true(is_error);
    assert_string_equal(buf_str(&out), "Glob: pattern is required");
    buf_release(&out);
    json_decref(args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_gitignore),
        cmocka_unit_test(test_absolute_pattern),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
