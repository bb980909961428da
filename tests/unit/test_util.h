/* test_util.h: helpers shared by the unit tests (header-only; tests/unit/test_*.c include it). */
#ifndef LOCO_TEST_UTIL_H
#define LOCO_TEST_UTIL_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

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

#endif
