/* test_util.h: helpers shared by the unit tests (header-only; tests/unit/test_*.c include it):
 * recursive removal, and the temporary repository + sandbox fixture of the agent's tests. */
#ifndef LOCO_TEST_UTIL_H
#define LOCO_TEST_UTIL_H

#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "agent/sandbox.h"

static int test_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* rm -rf root without following symlinks. */
static inline void test_rm_tree(const char *root)
{
    nftw(root, test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A temporary tree for tests of the agent's tools and sandbox. */
typedef struct {
    char root[256];    /* /tmp/loco-NAME-XXXXXX, symlinks resolved */
    char repo[512];    /* root/repo: created */
    char out[512];     /* root/out: not created (agent_sandbox_init creates it) */
    char outside[512]; /* root/outside: created; a place the sandbox must refuse */
    agent_sandbox sb;  /* set by test_fx_sandbox */
    bool has_sb;
} test_fx;

/* Creates the tree (name goes into the directory's name). NULL on failure. Free with
 * test_fx_free. */
static inline test_fx *test_fx_new(const char *name)
{
    test_fx *f = calloc(1, sizeof(*f));
    char tmpl[128];
    snprintf(tmpl, sizeof(tmpl), "/tmp/loco-%s-XXXXXX", name);
    if (!f || !mkdtemp(tmpl)) {
        free(f);
        return NULL;
    }
    char *r = realpath(tmpl, NULL);
    snprintf(f->root, sizeof(f->root), "%s", r ? r : tmpl);
    free(r);
    snprintf(f->repo, sizeof(f->repo), "%s/repo", f->root);
    snprintf(f->out, sizeof(f->out), "%s/out", f->root);
    snprintf(f->outside, sizeof(f->outside), "%s/outside", f->root);
    if (mkdir(f->repo, 0755) != 0 || mkdir(f->outside, 0755) != 0) {
        test_rm_tree(f->root);
        free(f);
        return NULL;
    }
    return f;
}

/* Opens f->sb over f->repo, read-only, with f->out as the output directory when with_out.
 * 0 on success, -1 on failure. */
static inline int test_fx_sandbox(test_fx *f, bool with_out)
{
    loco_err err;
    if (agent_sandbox_init(&f->sb, f->repo, with_out ? f->out : NULL, false, false, &err))
        return -1;
    f->has_sb = true;
    return 0;
}

/* Releases the sandbox and removes the whole tree (out made writable first, for tests that
 * take its permissions away). f may be NULL. */
static inline void test_fx_free(test_fx *f)
{
    if (!f)
        return;
    if (f->has_sb)
        agent_sandbox_release(&f->sb);
    chmod(f->out, 0755);
    test_rm_tree(f->root);
    free(f);
}

/* cmocka setup/teardown for the common case: a tree and a sandbox over repo and out. */
static inline int test_fx_setup(void **state, const char *name)
{
    test_fx *f = test_fx_new(name);
    if (!f || test_fx_sandbox(f, true) != 0) {
        test_fx_free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static inline int test_fx_teardown(void **state)
{
    test_fx_free(*state);
    return 0;
}

#endif
