/* test_gitignore.c: gitignore(5) rules against a table of cases that is itself checked against
 * the real `git check-ignore` (when git is installed), plus wildmatch and glob sets. */
#include "base/common.h"

#include <setjmp.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/gitignore.h"

typedef struct {
    const char *rules; /* .gitignore text */
    const char *path;  /* relative path */
    bool is_dir;
    bool ignored;      /* expected, and what git check-ignore says */
} gi_case;

static const gi_case cases[] = {
    {"*.o\n", "a.o", false, true},
    {"*.o\n", "src/a.o", false, true},
    {"/*.o\n", "src/a.o", false, false},
    {"/*.o\n", "a.o", false, true},
    {"build/\n", "build", true, true},
    {"build/\n", "build", false, false},
    {"build/\n", "src/build", true, true},
    {"doc/*.txt\n", "doc/a.txt", false, true},
    {"doc/*.txt\n", "doc/x/a.txt", false, false},
    {"doc/**/*.txt\n", "doc/x/y/a.txt", false, true},
    {"doc/**/*.txt\n", "doc/a.txt", false, true},
    {"**/foo\n", "foo", false, true},
    {"**/foo\n", "a/b/foo", false, true},
    {"**/foo/bar\n", "x/foo/bar", false, true},
    {"abc/**\n", "abc/x", false, true},
    {"abc/**\n", "abc", true, false},
    {"a/**/b\n", "a/b", false, true},
    {"a/**/b\n", "a/x/y/b", false, true},
    {"*.log\n!keep.log\n", "keep.log", false, false},
    {"*.log\n!keep.log\n", "other.log", false, true},
    {"!keep.log\n*.log\n", "keep.log", false, true},
    {"\\#file\n", "#file", false, true},
    {"#file\n", "#file", false, false},
    {"\\!bang\n", "!bang", false, true},
    {"trail   \n", "trail", false, true},
    {"trail\\ \n", "trail ", false, true},
    {"f?o\n", "fxo", false, true},
    {"[abc].c\n", "b.c", false, true},
    {"[!abc].c\n", "b.c", false, false},
    {"[!abc].c\n", "d.c", false, true},
    {"[a-c]x\n", "bx", false, true},
    {"[[:digit:]]*\n", "9lives", false, true},
    {"[[:digit:]]*\n", "lives9", false, false},
    {"foo/bar\n", "foo/bar", false, true},
    {"foo/bar\n", "x/foo/bar", false, false},
    {"*\n", "anything", false, true},
    {"src/*/test\n", "src/a/test", true, true},
    {"src/*/test\n", "src/a/b/test", true, false},
    {"*.O\n", "a.o", false, false},
    {"a/*\n", "a/b", false, true},
    {"/a\n", "x/a", false, false},
    {"a/\n", "a", false, false},
    {"***.c\n", "d/x.c", false, true},
    {"foo\\\n", "foo", false, false},
    {"\xEF\xBB\xBF" "bom\n", "bom", false, true},
    {"*.txt\n!/sub/*.txt\n", "sub/a.txt", false, false},
    {"*.txt\n!/sub/*.txt\n", "other/a.txt", false, true},
    {"a[]]b\n", "a]b", false, true},
    {"x*y*z\n", "xAAyBBz", false, true},
    {"x*y*z\n", "xAAyBB", false, false},
};

static bool have_git(void)
{
    return system("git --version >/dev/null 2>&1") == 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* mkdir -p for every parent of rel under root, then the path itself as a file or directory. */
static void make_path(const char *root, const char *rel, bool is_dir)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    }
    if (is_dir)
        assert_int_equal(mkdir(p, 0755), 0);
    else
        write_file(p, "x\n");
}

static void run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void run_cmd(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    assert_int_equal(system(cmd), 0);
}

static void test_table(void **state)
{
    LOCO_UNUSED(state);
    for (size_t i = 0; i < LOCO_ARRAY_LEN(cases); i++) {
        const gi_case *c = &cases[i];
        gitignore *gi = NULL;
        assert_int_equal(gitignore_parse(c->rules, strlen(c->rules), &gi, NULL), LOCO_OK);
        bool ign = gitignore_match(gi, c->path, c->is_dir) == GITIGNORE_IGNORE;
        if (ign != c->ignored)
            fail_msg("case %zu: rules %s path %s: got %d want %d", i, c->rules, c->path, ign,
                     c->ignored);
        gitignore_free(gi);
    }
}

/* The table is only worth something if git agrees with it. */
static void test_table_matches_git(void **state)
{
    LOCO_UNUSED(state);
    if (!have_git())
        skip();
    char root[] = "/tmp/loco_gi_XXXXXX";
    assert_non_null(mkdtemp(root));
    for (size_t i = 0; i < LOCO_ARRAY_LEN(cases); i++) {
        const gi_case *c = &cases[i];
        char repo[1100];
        snprintf(repo, sizeof(repo), "%s/r%zu", root, i);
        assert_int_equal(mkdir(repo, 0755), 0);
        run_cmd("git -C '%s' init -q", repo);
        char gip[1200];
        snprintf(gip, sizeof(gip), "%s/.gitignore", repo);
        write_file(gip, c->rules);
        make_path(repo, c->path, c->is_dir);
        char cmd[2048];
        snprintf(cmd, sizeof(cmd), "git -C '%s' check-ignore -q -- '%s'", repo, c->path);
        int rc = system(cmd);
        assert_true(WIFEXITED(rc));
        bool git_ign = WEXITSTATUS(rc) == 0;
        if (git_ign != c->ignored)
            fail_msg("case %zu: rules %s path %s: git says %d, table %d", i, c->rules, c->path,
                     git_ign, c->ignored);
    }
    run_cmd("rm -rf '%s'", root);
}

static void test_negation_and_count(void **state)
{
    LOCO_UNUSED(state);
    const char *text = "# comment\n\n*.tmp\n!important.tmp\n/root-only\nlogs/\n";
    gitignore *gi = NULL;
    assert_int_equal(gitignore_parse(text, strlen(text), &gi, NULL), LOCO_OK);
    assert_int_equal(gitignore_count(gi), 4);
    assert_int_equal(gitignore_match(gi, "important.tmp", false), GITIGNORE_KEEP);
    assert_int_equal(gitignore_match(gi, "x.tmp", false), GITIGNORE_IGNORE);
    assert_int_equal(gitignore_match(gi, "x.c", false), GITIGNORE_NONE);
    assert_int_equal(gitignore_match(gi, "root-only", false), GITIGNORE_IGNORE);
    assert_int_equal(gitignore_match(gi, "a/root-only", false), GITIGNORE_NONE);
    assert_int_equal(gitignore_match(gi, "a/logs", true), GITIGNORE_IGNORE);
    gitignore_free(gi);
    gitignore_free(NULL);
    assert_int_equal(gitignore_match(NULL, "x", false), GITIGNORE_NONE);
}

static void test_wildmatch(void **state)
{
    LOCO_UNUSED(state);
    assert_true(gitignore_wildmatch("*.c", "a.c", true));
    assert_false(gitignore_wildmatch("*.c", "d/a.c", true));
    assert_true(gitignore_wildmatch("*.c", "d/a.c", false));
    assert_true(gitignore_wildmatch("**/*.c", "a.c", true));
    assert_true(gitignore_wildmatch("**/*.c", "x/y/a.c", true));
    assert_true(gitignore_wildmatch("a/**", "a/b/c", true));
    assert_false(gitignore_wildmatch("a?c", "a/c", true));
    assert_true(gitignore_wildmatch("\\*", "*", true));
    assert_false(gitignore_wildmatch("\\*", "x", true));
    assert_false(gitignore_wildmatch("[", "[", true));
    assert_false(gitignore_wildmatch("[[:bogus:]]", "a", true));
    assert_true(gitignore_wildmatch("[[:upper:]x]", "Q", true));
    assert_true(gitignore_wildmatch("", "", true));
    assert_false(gitignore_wildmatch("", "a", true));
}

static void test_globset(void **state)
{
    LOCO_UNUSED(state);
    gitignore_globset *gs = NULL;
    assert_int_equal(gitignore_globset_add(&gs, "*.{c,h}", NULL), LOCO_OK);
    assert_int_equal(gitignore_globset_add(&gs, "src/**/*.py", NULL), LOCO_OK);
    assert_int_equal(gitignore_globset_add(&gs, "!vendor", NULL), LOCO_OK);
    assert_true(gitignore_globset_has_positive(gs));
    assert_true(gitignore_globset_allows(gs, "main.c"));
    assert_true(gitignore_globset_allows(gs, "deep/dir/x.h"));
    assert_false(gitignore_globset_allows(gs, "x.cpp"));
    assert_true(gitignore_globset_allows(gs, "src/a.py"));
    assert_true(gitignore_globset_allows(gs, "src/a/b/c.py"));
    assert_false(gitignore_globset_allows(gs, "lib/a.py"));
    assert_true(gitignore_globset_prunes_dir(gs, "a/vendor"));
    assert_false(gitignore_globset_prunes_dir(gs, "a/src"));
    gitignore_globset_free(gs);

    gs = NULL;
    assert_int_equal(gitignore_globset_add(&gs, "{a,{b,c}}x{1,2}", NULL), LOCO_OK);
    const char *yes[] = {"ax1", "bx2", "cx1", "ax2"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(yes); i++)
        assert_true(gitignore_globset_allows(gs, yes[i]));
    assert_false(gitignore_globset_allows(gs, "dx1"));
    gitignore_globset_free(gs);

    gs = NULL;
    assert_int_equal(gitignore_globset_add(&gs, "!*.md", NULL), LOCO_OK);
    assert_false(gitignore_globset_has_positive(gs));
    assert_true(gitignore_globset_allows(gs, "a.c"));
    assert_false(gitignore_globset_allows(gs, "README.md"));
    gitignore_globset_free(gs);

    loco_err err;
    gs = NULL;
    assert_int_equal(gitignore_globset_add(&gs, "*.{c,h", &err), LOCO_ERR_INVALID);
    assert_string_equal(err.msg, "glob '*.{c,h': unclosed '{'");
    assert_int_equal(gitignore_globset_add(&gs, "a}", &err), LOCO_ERR_INVALID);
    assert_int_equal(gitignore_globset_add(&gs, "{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}{o,p}{q,r}",
                                           &err),
                     LOCO_ERR_INVALID);
    gitignore_globset_free(gs);
    assert_true(gitignore_globset_allows(NULL, "x"));
}

/* A hostile pattern (many stars against a long text) must not take exponential time: the
 * matcher's step budget ends it quickly with no match (without it this test would not finish
 * before ctest's timeout). */
static void test_wildmatch_backtracking_bounded(void **state)
{
    (void)state;
    char text[256];
    memset(text, 'a', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    assert_false(gitignore_wildmatch("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", text, false));
    assert_false(gitignore_wildmatch("**/*a**a**a**a**a**a**a**a**a**a**a**a**b", text, true));
    /* ordinary patterns still match */
    assert_true(gitignore_wildmatch("*a*b", "xxaxxb", false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_table_matches_git),
        cmocka_unit_test(test_negation_and_count),
        cmocka_unit_test(test_wildmatch),
        cmocka_unit_test(test_wildmatch_backtracking_bounded),
        cmocka_unit_test(test_globset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
