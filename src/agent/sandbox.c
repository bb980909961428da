/* sandbox.c: confines the explorer's tools to the repository root and the output directory.
 * A path is resolved with realpath(3) on its longest existing prefix (so ".." and symlinks are
 * followed before the check), the missing tail is appended lexically (no ".." allowed there). */
#include "base/common.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/sandbox.h"
#include "base/file.h"
#include "base/str.h"

static loco_status resolve_dir(const char *path, const char *what, char **out, loco_err *err)
{
    char *r = realpath(path, NULL);
    if (!r)
        return loco_err_set(err, errno == ENOMEM ? LOCO_ERR_NOMEM : LOCO_ERR_NOT_FOUND,
                            "cannot resolve %s '%s': %s", what, path, strerror(errno));
    struct stat st;
    if (stat(r, &st) != 0 || !S_ISDIR(st.st_mode)) {
        free(r);
        return loco_err_set(err, LOCO_ERR_INVALID, "%s '%s' is not a directory", what, path);
    }
    *out = r;
    return LOCO_OK;
}

loco_status agent_sandbox_init(agent_sandbox *sb, const char *repo_root, const char *out_dir,
                               bool allow_write, bool allow_bash_writes, loco_err *err)
{
    memset(sb, 0, sizeof(*sb));
    sb->allow_write = allow_write;
    sb->allow_bash_writes = allow_bash_writes;
    if (!repo_root || !*repo_root)
        return loco_err_set(err, LOCO_ERR_INVALID, "no repository root given");
    loco_status rc = resolve_dir(repo_root, "repository", &sb->repo_root, err);
    if (rc)
        return rc;
    if (out_dir && *out_dir) {
        rc = file_mkdirs(out_dir, err);
        if (!rc)
            rc = resolve_dir(out_dir, "output directory", &sb->out_dir, err);
        if (rc) {
            agent_sandbox_release(sb);
            return rc;
        }
    }
    confine_probe(&sb->bash_caps);
    return LOCO_OK;
}

void agent_sandbox_release(agent_sandbox *sb)
{
    if (!sb)
        return;
    free(sb->repo_root);
    free(sb->out_dir);
    sb->repo_root = NULL;
    sb->out_dir = NULL;
}

/* True when path equals root or lies below it. */
static bool path_inside(const char *path, const char *root)
{
    if (!root)
        return false;
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/')
        return path[0] == '/';
    return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Appends the components of tail[0..n) to out (which holds an absolute resolved directory),
 * skipping "." and empty ones. ".." is refused: the directory it would leave does not exist,
 * so realpath could not check it. A component that exists as a symlink (dangling, since
 * realpath failed on it) is refused too. */
static loco_status append_tail(buf *out, const char *tail, const char *orig, loco_err *err)
{
    const char *p = tail;
    bool first = true;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0)
            break;
        if (len == 1 && p[0] == '.') {
            p += len;
            continue;
        }
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return loco_err_set(err, LOCO_ERR_AUTH,
                                "path '%s' has '..' after a directory that does not exist", orig);
        loco_status rc = LOCO_OK;
        if (!(out->len == 1 && out->data[0] == '/'))
            rc = buf_appendc(out, '/');
        if (!rc)
            rc = buf_append(out, p, len);
        if (rc)
            return loco_err_set(err, rc, "path '%s' is too long", orig);
        struct stat st;
        if (first && lstat(out->data, &st) == 0 && S_ISLNK(st.st_mode))
            return loco_err_set(err, LOCO_ERR_AUTH,
                                "path '%s' is a symbolic link that leads nowhere", orig);
        first = false;
        p += len;
    }
    return LOCO_OK;
}

/* Resolves abs (an absolute path) into out: realpath of the longest existing prefix plus the
 * lexical tail. */
static loco_status resolve_prefix(const char *abs, const char *orig, buf *out, loco_err *err)
{
    size_t n = strlen(abs);
    char *tmp = str_ndup(abs, n);
    if (!tmp)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    loco_status rc = LOCO_OK;
    size_t cut = n;
    for (;;) {
        char *r = realpath(tmp, NULL);
        if (r) {
            rc = buf_appends(out, r);
            free(r);
            if (!rc)
                rc = append_tail(out, abs + cut, orig, err);
            else
                loco_err_set(err, rc, "path '%s' is too long", orig);
            break;
        }
        if (errno == ENOMEM) {
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
            break;
        }
        /* Drop the last component of tmp (cut stays at a '/' boundary of abs). */
        while (cut > 0 && abs[cut - 1] == '/')
            cut--;
        while (cut > 0 && abs[cut - 1] != '/')
            cut--;
        if (cut <= 1) {
            cut = 1;
            tmp[1] = '\0';
            char *root = realpath("/", NULL);
            rc = root ? buf_appends(out, root) : LOCO_ERR_NOMEM;
            free(root);
            if (!rc)
                rc = append_tail(out, abs + 1, orig, err);
            break;
        }
        tmp[cut - 1] = '\0';
        cut--;
    }
    free(tmp);
    return rc;
}

static loco_status refuse(const agent_sandbox *sb, const char *path, const char *resolved,
                          sandbox_access access, loco_err *err)
{
    char shown[PATH_MAX + 32];
    if (strcmp(path, resolved) == 0)
        snprintf(shown, sizeof(shown), "%s", path);
    else
        snprintf(shown, sizeof(shown), "%s (resolved: %s)", path, resolved);
    if (access == SANDBOX_READ) {
        if (sb->out_dir)
            return loco_err_set(err, LOCO_ERR_AUTH,
                                "path %s is outside the repository %s and the output directory %s",
                                shown, sb->repo_root, sb->out_dir);
        return loco_err_set(err, LOCO_ERR_AUTH, "path %s is outside the repository %s", shown,
                            sb->repo_root);
    }
    if (sb->allow_write && sb->out_dir)
        return loco_err_set(err, LOCO_ERR_AUTH,
                            "cannot write %s: writes are allowed only inside the repository %s "
                            "and the output directory %s",
                            shown, sb->repo_root, sb->out_dir);
    if (sb->allow_write)
        return loco_err_set(err, LOCO_ERR_AUTH,
                            "cannot write %s: writes are allowed only inside the repository %s",
                            shown, sb->repo_root);
    if (sb->out_dir)
        return loco_err_set(err, LOCO_ERR_AUTH,
                            "cannot write %s: writes are allowed only inside the output directory "
                            "%s (the user can allow writes in the repository with --allow-write)",
                            shown, sb->out_dir);
    return loco_err_set(err, LOCO_ERR_AUTH,
                        "cannot write %s: there is no output directory and writes in the "
                        "repository %s are off (the user can allow them with --allow-write)",
                        shown, sb->repo_root);
}

loco_status agent_sandbox_resolve(const agent_sandbox *sb, const char *path, sandbox_access access,
                                  char **out_path, loco_err *err)
{
    *out_path = NULL;
    if (!sb || !sb->repo_root)
        return loco_err_set(err, LOCO_ERR_INVALID, "the sandbox is not initialised");
    if (!path || !*path)
        return loco_err_set(err, LOCO_ERR_INVALID, "empty path");
    if (strlen(path) >= PATH_MAX)
        return loco_err_set(err, LOCO_ERR_INVALID, "path is too long (%zu bytes, limit %d)",
                            strlen(path), PATH_MAX - 1);
    buf abs;
    buf_init(&abs, PATH_MAX * 2);
    loco_status rc = LOCO_OK;
    if (path[0] != '/') {
        rc = buf_appendf(&abs, "%s/%s", sb->repo_root, path);
        if (rc) {
            buf_release(&abs);
            return loco_err_set(err, rc, "path '%s' is too long", path);
        }
    }
    buf res;
    buf_init(&res, PATH_MAX * 2);
    rc = resolve_prefix(path[0] == '/' ? path : abs.data, path, &res, err);
    buf_release(&abs);
    if (rc) {
        buf_release(&res);
        return rc;
    }
    const char *r = buf_str(&res);
    bool ok;
    if (access == SANDBOX_READ)
        ok = path_inside(r, sb->repo_root) || path_inside(r, sb->out_dir);
    else
        ok = path_inside(r, sb->out_dir) || (sb->allow_write && path_inside(r, sb->repo_root));
    if (!ok) {
        rc = refuse(sb, path, r, access, err);
        buf_release(&res);
        return rc;
    }
    *out_path = buf_take(&res, NULL);
    return *out_path ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
}
