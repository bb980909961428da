/* test_walk.c: the parallel walker on real trees in a temp dir: nested .gitignore files and
 * .git/info/exclude (compared with `git ls-files --others --exclude-standard`), VCS and
 * symlink skipping, subdirectory roots, single files, stop and cancel. */
#include "base/common.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/walk.h"

typedef struct {
    pthread_mutex_t mu;
    char *items[256];
    size_t n;
    int stop_after; /* 0: never */
    bool stat_ok;
} collect;

static int collect_fn(void *ud, const walk_entry *e)
{
    collect *c = ud;
    pthread_mutex_lock(&c->mu);
    if (c->n < LOCO_ARRAY_LEN(c->items))
        c->items[c->n++] = strdup(e->rel[0] ? e->rel : e->path);
    if (e->st && !S_ISREG(e->st->st_mode))
        c->stat_ok = false;
    int stop = c->stop_after && (int)c->n >= c->stop_after;
    pthread_mutex_unlock(&c->mu);
    return stop;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, newline-joined results; frees the items. */
static char *collect_join(collect *c)
{
    qsort(c->items, c->n, sizeof(char *), cmp_str);
    size_t total = 1;
    for (size_t i = 0; i < c->n; i++)
        total += strlen(c->items[i]) + 1;
    char *s = malloc(total);
    s[0] = '\0';
    size_t pos = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t l = strlen(c->items[i]);
        memcpy(s + pos, c->items[i], l);
        s[pos + l] = '\n';
        pos += l + 1;
        free(c->items[i]);
    }
    s[pos] = '\0';
    c->n = 0;
    return s;
}

static void put(const char *root, const char *rel, const char *text)
{
    char p[1024];
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
    fputs(text, f);
    fclose(f);
}

static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    assert_int_equal(system(cmd), 0);
}

static char root[64];

static int setup(void **state)
{
    LOCO_UNUSED(state);
    snprintf(root, sizeof(root), "/tmp/loco_walk_XXXXXX");
    if (!mkdtemp(root))
        return -1;
    mkdir(root, 0755);
    char git[128];
    snprintf(git, sizeof(git), "%s/.git", root);
    mkdir(git, 0755);
    put(root, ".git/info/exclude", "# local\nsecret.txt\n");
    put(root, ".git/HEAD", "ref: refs/heads/main\n");
    put(root, ".gitignore", "*.log\nbuild/\n!keep.log\n/top_only.txt\n");
    put(root, "a.c", "int a;\n");
    put(root, "b.log", "log\n");
    put(root, "keep.log", "kept\n");
    put(root, "top_only.txt", "t\n");
    put(root, "secret.txt", "s\n");
    put(root, ".hidden.c", "h\n");
    put(root, "build/x.c", "x\n");
    put(root, "src/.gitignore", "gen_*\n!gen_keep.c\n*.tmp\n");
    put(root, "src/main.c", "int main;\n");
    put(root, "src/gen_a.c", "g\n");
    put(root, "src/gen_keep.c", "k\n");
    put(root, "src/top_only.txt", "t\n");
    put(root, "src/x.tmp", "t\n");
    put(root, "src/b.log", "l\n");
    put(root, "src/deep/.gitignore", "!*.log\n");
    put(root, "src/deep/d.log", "d\n");
    put(root, "src/deep/e.c", "e\n");
    put(root, "src/deep/secret.txt", "s\n");
    return 0;
}

static int teardown(void **state)
{
    LOCO_UNUSED(state);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *expected_all = ".gitignore\n"
                                  ".hidden.c\n"
                                  "a.c\n"
                                  "keep.log\n"
                                  "src/.gitignore\n"
                                  "src/deep/.gitignore\n"
                                  "src/deep/d.log\n"
                                  "src/deep/e.c\n"
                                  "src/gen_keep.c\n"
                                  "src/main.c\n"
                                  "src/top_only.txt\n";

static char *walk_collect(const walk_options *o, loco_status want)
{
    collect c = {.mu = PTHREAD_MUTEX_INITIALIZER, .stat_ok = true};
    loco_err err;
    loco_status st = walk_run(o, collect_fn, &c, &err);
    if (st != want)
        fail_msg("walk_run: %d (%s)", st, err.msg);
    assert_true(c.stat_ok);
    return collect_join(&c);
}

static void test_ignore_rules(void **state)
{
    LOCO_UNUSED(state);
    for (int threads = 1; threads <= 4; threads += 3) {
        walk_options o = {.root = root, .threads = threads, .want_stat = true};
        char *got = walk_collect(&o, LOCO_OK);
        assert_string_equal(got, expected_all);
        free(got);
    }
}

/* Whatever git lists as untracked and not ignored is what the walker must give. */
static void test_matches_git(void **state)
{
    LOCO_UNUSED(state);
    if (system("git --version >/dev/null 2>&1") != 0)
        skip();
    char out[128];
    snprintf(out, sizeof(out), "%s.lsfiles", root);
    /* a real repository beside the tree, sharing its work tree and exclude file */
    sh("cd '%s' && mv .git .git.save && git init -q && cp .git.save/info/exclude .git/info/exclude"
       " && git ls-files --others --exclude-standard | grep -v '^.git.save/' | sort > '%s'"
       " && rm -rf .git && mv .git.save .git",
       root, out);
    FILE *f = fopen(out, "rb");
    assert_non_null(f);
    char text[4096];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(out);
    assert_string_equal(text, expected_all);
}

static void test_no_ignore_and_hidden(void **state)
{
    LOCO_UNUSED(state);
    walk_options o = {.root = root, .threads = 2, .no_ignore = true, .skip_hidden = true};
    char *got = walk_collect(&o, LOCO_OK);
    assert_string_equal(got, "a.c\nb.log\nbuild/x.c\nkeep.log\nsecret.txt\nsrc/b.log\n"
                             "src/deep/d.log\nsrc/deep/e.c\nsrc/deep/secret.txt\nsrc/gen_a.c\n"
                             "src/gen_keep.c\nsrc/main.c\nsrc/top_only.txt\nsrc/x.tmp\n"
                             "top_only.txt\n");
    free(got);
}

/* Walking src/ with the repository as ignore root still applies the root's rules. */
static void test_subdir_root(void **state)
{
    LOCO_UNUSED(state);
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/src", root);
    walk_options o = {.root = sub, .ignore_root = root, .threads = 3};
    char *got = walk_collect(&o, LOCO_OK);
    assert_string_equal(got, ".gitignore\ndeep/.gitignore\ndeep/d.log\ndeep/e.c\ngen_keep.c\n"
                             "main.c\ntop_only.txt\n");
    free(got);
    /* without the ignore root, src/b.log is no longer covered by the root's "*.log" */
    walk_options o2 = {.root = sub, .threads = 1};
    got = walk_collect(&o2, LOCO_OK);
    assert_non_null(strstr(got, "\nb.log\n"));
    free(got);
}

/* An ignored directory given as the root is walked. */
static void test_ignored_root(void **state)
{
    LOCO_UNUSED(state);
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/build", root);
    walk_options o = {.root = sub, .ignore_root = root, .threads = 1};
    char *got = walk_collect(&o, LOCO_OK);
    assert_string_equal(got, "x.c\n");
    free(got);
}

static void test_vcs_and_symlinks(void **state)
{
    LOCO_UNUSED(state);
    char dir[128];
    snprintf(dir, sizeof(dir), "%s.links", root);
    sh("mkdir -p '%s/.svn' '%s/.hg' '%s/real' && echo x > '%s/.svn/entries' && "
       "echo y > '%s/.hg/store' && echo z > '%s/real/f.c' && ln -s /etc '%s/etc' && "
       "ln -s real/f.c '%s/link.c' && ln -s real '%s/dirlink' && mkfifo '%s/fifo'",
       dir, dir, dir, dir, dir, dir, dir, dir, dir, dir);
    walk_options o = {.root = dir, .threads = 2, .want_stat = true};
    char *got = walk_collect(&o, LOCO_OK);
    assert_string_equal(got, "real/f.c\n");
    free(got);
    sh("rm -rf '%s'", dir);
}

static void test_file_root_and_errors(void **state)
{
    LOCO_UNUSED(state);
    char file[128];
    snprintf(file, sizeof(file), "%s/b.log", root);
    walk_options o = {.root = file, .ignore_root = root, .threads = 4, .want_stat = true};
    char *got = walk_collect(&o, LOCO_OK);
    char want[160];
    snprintf(want, sizeof(want), "%s\n", file);
    assert_string_equal(got, want);
    free(got);

    char missing[128];
    snprintf(missing, sizeof(missing), "%s/nope", root);
    walk_options m = {.root = missing, .threads = 1};
    collect c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    loco_err err;
    assert_int_equal(walk_run(&m, collect_fn, &c, &err), LOCO_ERR_NOT_FOUND);
    char msg[200];
    snprintf(msg, sizeof(msg), "cannot access '%s': No such file or directory", missing);
    assert_string_equal(err.msg, msg);
}

static void test_stop_and_cancel(void **state)
{
    LOCO_UNUSED(state);
    collect c = {.mu = PTHREAD_MUTEX_INITIALIZER, .stop_after = 2};
    walk_options o = {.root = root, .threads = 1};
    loco_err err;
    assert_int_equal(walk_run(&o, collect_fn, &c, &err), LOCO_OK);
    assert_int_equal(c.n, 2);
    free(collect_join(&c));

    volatile int cancel = 1;
    walk_options oc = {.root = root, .threads = 3, .cancel = &cancel};
    assert_int_equal(walk_run(&oc, collect_fn, &c, &err), LOCO_ERR_CANCELLED);
    assert_int_equal(c.n, 0);
}

static void test_globs(void **state)
{
    LOCO_UNUSED(state);
    gitignore_globset *gs = NULL;
    assert_int_equal(gitignore_globset_add(&gs, "*.c", NULL), LOCO_OK);
    assert_int_equal(gitignore_globset_add(&gs, "!deep", NULL), LOCO_OK);
    walk_options o = {.root = root, .threads = 2, .globs = gs};
    char *got = walk_collect(&o, LOCO_OK);
    assert_string_equal(got, ".hidden.c\na.c\nsrc/gen_keep.c\nsrc/main.c\n");
    free(got);
    gitignore_globset_free(gs);
}

/* Many directories and files: every worker count finds the same set. */
static void test_wide_tree(void **state)
{
    LOCO_UNUSED(state);
    char dir[128];
    snprintf(dir, sizeof(dir), "%s.wide", root);
    sh("mkdir -p '%s' && cd '%s' && for i in 0 1 2 3 4 5 6 7; do for j in 0 1 2 3 4 5 6 7; do "
       "mkdir -p d$i/e$j && echo $i$j > d$i/e$j/f.txt; done; done",
       dir, dir);
    for (int t = 1; t <= 8; t *= 2) {
        walk_options o = {.root = dir, .threads = t};
        char *got = walk_collect(&o, LOCO_OK);
        size_t lines = 0;
        for (const char *p = got; *p; p++)
            lines += *p == '\n';
        assert_int_equal(lines, 64);
        assert_non_null(strstr(got, "d7/e7/f.txt\n"));
        free(got);
    }
    sh("rm -rf '%s'", dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ignore_rules),
        cmocka_unit_test(test_matches_git),
        cmocka_unit_test(test_no_ignore_and_hidden),
        cmocka_unit_test(test_subdir_root),
        cmocka_unit_test(test_ignored_root),
        cmocka_unit_test(test_vcs_and_symlinks),
        cmocka_unit_test(test_file_root_and_errors),
        cmocka_unit_test(test_stop_and_cancel),
        cmocka_unit_test(test_globs),
        cmocka_unit_test(test_wide_tree),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
