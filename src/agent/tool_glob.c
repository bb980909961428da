/* tool_glob.c: the Glob tool (pattern, path?): files matching a glob under a directory, newest
 * first, at most GLOB_LIMIT of them with Claude Code's truncation note. Walks with walk.h (so
 * .gitignore rules, VCS directories and symlinks are handled as in Grep). */
#include "base/common.h"

#include <pthread.h>
#include <sys/stat.h>

#include "agent/tools_int.h"
#include "agent/walk.h"
#include "base/str.h"

/* Claude Code's Glob result limit. */
#define GLOB_LIMIT 100
#define GLOB_TRUNCATED_NOTE "(Results are truncated. Consider using a more specific path or pattern.)"
/* Longest pattern accepted. */
#define GLOB_PATTERN_MAX 4096

typedef struct {
    char *path; /* absolute, owned */
    int64_t mtime_ns;
} glob_hit;

/* The GLOB_LIMIT newest files one worker has seen. */
typedef struct {
    glob_hit hits[GLOB_LIMIT];
    size_t n;
    size_t worst; /* index of the oldest kept hit when n == GLOB_LIMIT */
    size_t seen;  /* files matched in total */
    bool nomem;
} glob_worker;

typedef struct {
    glob_worker *workers;
    int nworkers;
} glob_search;

/* Newest first; equal times by path. */
static int glob_cmp(const glob_hit *a, const glob_hit *b)
{
    if (a->mtime_ns != b->mtime_ns)
        return a->mtime_ns > b->mtime_ns ? -1 : 1;
    return strcmp(a->path, b->path);
}

static int glob_qcmp(const void *a, const void *b)
{
    return glob_cmp(a, b);
}

static void find_worst(glob_worker *w)
{
    w->worst = 0;
    for (size_t i = 1; i < w->n; i++) {
        if (glob_cmp(&w->hits[i], &w->hits[w->worst]) > 0)
            w->worst = i;
    }
}

static int glob_file_cb(void *ud, const walk_entry *e)
{
    glob_search *g = ud;
    glob_worker *w = &g->workers[e->worker];
    w->seen++;
    glob_hit h = {.mtime_ns = (int64_t)e->st->st_mtim.tv_sec * 1000000000 +
                              e->st->st_mtim.tv_nsec};
    if (w->n == GLOB_LIMIT) {
        glob_hit probe = {.path = (char *)e->path, .mtime_ns = h.mtime_ns};
        if (glob_cmp(&probe, &w->hits[w->worst]) >= 0)
            return 0;
    }
    h.path = str_ndup(e->path, e->path_len);
    if (!h.path) {
        w->nomem = true;
        return 1;
    }
    if (w->n < GLOB_LIMIT) {
        w->hits[w->n++] = h;
        if (w->n == GLOB_LIMIT)
            find_worst(w);
    } else {
        free(w->hits[w->worst].path);
        w->hits[w->worst] = h;
        find_worst(w);
    }
    return 0;
}

/* Splits an absolute pattern ("/repo/src/ **" "/ *.c") into its directory part (no glob
 * characters) and the rest. *out_dir is malloc'd; *out_rest points into pattern. */
static loco_status split_absolute(const char *pattern, char **out_dir, const char **out_rest)
{
    size_t meta = strcspn(pattern, "*?[{");
    size_t cut = 0;
    for (size_t i = 0; i < meta; i++) {
        if (pattern[i] == '/')
            cut = i;
    }
    if (pattern[meta] == '\0') {
        /* no glob characters: the last component is the pattern */
        const char *slash = strrchr(pattern, '/');
        cut = (size_t)(slash - pattern);
    }
    *out_dir = str_ndup(pattern, cut ? cut : 1);
    if (!*out_dir)
        return LOCO_ERR_NOMEM;
    *out_rest = pattern + cut + 1;
    return LOCO_OK;
}

static loco_status glob_format(glob_search *g, buf *res)
{
    size_t total = 0, kept = 0;
    for (int i = 0; i < g->nworkers; i++) {
        total += g->workers[i].seen;
        kept += g->workers[i].n;
    }
    glob_hit *all = malloc((kept ? kept : 1) * sizeof(*all));
    if (!all)
        return LOCO_ERR_NOMEM;
    size_t k = 0;
    for (int i = 0; i < g->nworkers; i++) {
        if (g->workers[i].n)
            memcpy(all + k, g->workers[i].hits, g->workers[i].n * sizeof(*all));
        k += g->workers[i].n;
    }
    qsort(all, kept, sizeof(*all), glob_qcmp);
    size_t shown = kept < GLOB_LIMIT ? kept : GLOB_LIMIT;
    loco_status rc = LOCO_OK;
    if (shown == 0)
        rc = buf_appends(res, "No files found");
    for (size_t i = 0; !rc && i < shown; i++)
        rc = buf_appendf(res, "%s%s", i ? "\n" : "", all[i].path);
    if (!rc && total > shown)
        rc = buf_appends(res, "\n" GLOB_TRUNCATED_NOTE);
    free(all);
    return rc;
}

static loco_status glob_execute(const agent_tool_ctx *ctx, const char *root, const char *pattern,
                                buf *res, bool *is_error)
{
    gitignore_globset *set = NULL;
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = gitignore_globset_add(&set, pattern, &err);
    if (rc) {
        gitignore_globset_free(set);
        return rc == LOCO_ERR_INVALID ? tools_error(res, is_error, "Glob: %s", err.msg) : rc;
    }
    struct stat st;
    if (stat(root, &st) == 0 && !S_ISDIR(st.st_mode)) {
        gitignore_globset_free(set);
        return tools_error(res, is_error, "Glob: path is not a directory: %s", root);
    }
    int threads = ctx->threads < 1 ? 1 : ctx->threads > WALK_THREADS_MAX ? WALK_THREADS_MAX
                                                                          : ctx->threads;
    glob_search g = {.nworkers = threads};
    g.workers = calloc((size_t)threads, sizeof(*g.workers));
    if (!g.workers) {
        gitignore_globset_free(set);
        return LOCO_ERR_NOMEM;
    }
    walk_options wo = {.root = root, .ignore_root = ctx->sb->repo_root, .threads = threads,
                       .want_stat = true, .globs = set, .cancel = ctx->cancel};
    rc = walk_run(&wo, glob_file_cb, &g, &err);
    for (int i = 0; i < threads && !rc; i++) {
        if (g.workers[i].nomem)
            rc = LOCO_ERR_NOMEM;
    }
    if (rc == LOCO_ERR_NOT_FOUND || rc == LOCO_ERR_IO || rc == LOCO_ERR_INVALID ||
        rc == LOCO_ERR_LIMIT)
        rc = tools_error(res, is_error, "Glob: %s", err.msg);
    else if (!rc)
        rc = glob_format(&g, res);
    for (int i = 0; i < threads; i++) {
        for (size_t j = 0; j < g.workers[i].n; j++)
            free(g.workers[i].hits[j].path);
    }
    free(g.workers);
    gitignore_globset_free(set);
    return rc;
}

static loco_status glob_run(const agent_tool_ctx *ctx, const json_t *args, buf *out,
                            bool *out_is_error)
{
    *out_is_error = false;
    buf err;
    buf_init(&err, TOOLS_ARG_ERR_MAX);
    const char *pattern = NULL, *path = NULL;
    if (!tools_arg_str(args, "pattern", true, &pattern, &err) ||
        !tools_arg_str(args, "path", false, &path, &err)) {
        loco_status rc = tools_error(out, out_is_error, "Glob: %s", buf_str(&err));
        buf_release(&err);
        return rc;
    }
    buf_release(&err);
    if (!*pattern)
        return tools_error(out, out_is_error, "Glob: pattern must not be empty");
    if (strlen(pattern) > GLOB_PATTERN_MAX)
        return tools_error(out, out_is_error, "Glob: pattern longer than %d bytes",
                           GLOB_PATTERN_MAX);
    char *dir = NULL;
    loco_status rc = LOCO_OK;
    if (pattern[0] == '/') {
        /* an absolute pattern names its own directory (and overrides path) */
        rc = split_absolute(pattern, &dir, &pattern);
        if (rc)
            return rc;
        if (!*pattern) {
            free(dir);
            return tools_error(out, out_is_error, "Glob: pattern must not end with '/'");
        }
        path = dir;
    }
    char *root = NULL;
    if (path && *path) {
        rc = tools_resolve(ctx, "Glob", path, SANDBOX_READ, &root, out, out_is_error);
        free(dir);
        if (rc || !root)
            return rc;
    } else {
        root = strdup(ctx->sb->repo_root);
        if (!root)
            return LOCO_ERR_NOMEM;
    }
    buf res;
    buf_init(&res, BUF_UNLIMITED);
    rc = glob_execute(ctx, root, pattern, &res, out_is_error);
    free(root);
    if (!rc)
        rc = tools_cap_output(&res, tools_max_output(ctx), "output");
    if (!rc)
        rc = buf_append(out, res.data ? res.data : "", res.len);
    buf_release(&res);
    return rc;
}

#define GLOB_SCHEMA                                                                            \
    "{\"type\":\"object\",\"properties\":{"                                                    \
    "\"pattern\":{\"type\":\"string\",\"description\":\"The glob pattern to match files "      \
    "against\"},"                                                                               \
    "\"path\":{\"type\":\"string\",\"description\":\"The directory to search in. If not "     \
    "specified, the repository root will be used. Must be a valid directory path if "          \
    "provided.\"}},"                                                                            \
    "\"required\":[\"pattern\"],\"additionalProperties\":false}"

const agent_tool agent_tool_glob = {
    .name = "Glob",
    .description =
        "- Fast file pattern matching tool that works with any codebase size\n"
        "- Supports glob patterns like \"**/*.js\" or \"src/**/*.ts\" ({a,b}, *, ?, [...] too; "
        "a pattern without '/' matches file names at any depth)\n"
        "- Returns matching file paths sorted by modification time, newest first, at most 100\n"
        "- Honours .gitignore\n"
        "- Use this tool when you need to find files by name patterns",
    .schema_json = GLOB_SCHEMA,
    .read_only = true,
    .run = glob_run,
};
