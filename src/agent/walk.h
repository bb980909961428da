/* walk.h: a parallel directory walker for the search tools (Grep, Glob). N threads share a
 * queue of directories; every regular file that is not ignored (.gitignore files at every level,
 * .git/info/exclude) is handed to a callback on the worker thread that found it. */
#ifndef LOCO_AGENT_WALK_H
#define LOCO_AGENT_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "agent/gitignore.h"
#include "base/status.h"

/* Longest path the walker builds; deeper entries are skipped. */
#define WALK_PATH_MAX 4096
/* Largest ignore file read; larger ones are read up to this size. */
#define WALK_IGNORE_FILE_MAX (1024 * 1024)
/* Most worker threads. */
#define WALK_THREADS_MAX 64

typedef struct {
    const char *root;        /* absolute, resolved directory or regular file to walk */
    const char *ignore_root; /* absolute ancestor of root (or root itself, or NULL for root):
                                .gitignore files from here down to root apply too */
    int threads;             /* workers, clamped to [1, WALK_THREADS_MAX] */
    bool no_ignore;          /* true: read no ignore files */
    bool skip_hidden;        /* true: skip names starting with '.' (ripgrep's default) */
    bool want_stat;          /* true: fill walk_entry.st (an fstatat per file) */
    const gitignore_globset *globs; /* optional filter on paths relative to root (borrowed) */
    const volatile int *cancel;     /* optional: nonzero stops the walk (LOCO_ERR_CANCELLED) */
} walk_options;

typedef struct {
    const char *path;      /* absolute path */
    size_t path_len;
    const char *rel;       /* path relative to root ("" when root is the file itself) */
    const char *name;      /* last component, for openat(dir_fd, name) */
    int dir_fd;            /* open directory holding the file (AT_FDCWD when root is a file) */
    const struct stat *st; /* lstat of the file when want_stat, else NULL */
    int worker;            /* index of the calling worker, 0 .. threads-1: for per-thread state */
} walk_entry;

/* Called once per file, concurrently from the workers; everything in e is borrowed for the
 * call. Return nonzero to stop the walk early (walk_run still returns LOCO_OK). */
typedef int (*walk_fn)(void *ud, const walk_entry *e);

/* Walks opt->root. Never descends into .git, .svn, .hg, .bzr, .jj or .sl (version control
 * data), into ignored directories or through symbolic links (symlinks are skipped, files and
 * directories alike, so nothing outside the root is reached); skips sockets, devices and FIFOs.
 * Unreadable directories are skipped silently. The root itself is never ignored: naming an
 * ignored directory walks it. Returns LOCO_ERR_NOT_FOUND when root is missing,
 * LOCO_ERR_CANCELLED when *cancel turned nonzero, LOCO_ERR_NOMEM. */
loco_status walk_run(const walk_options *opt, walk_fn fn, void *ud, loco_err *err);

#endif
