/* file.c: file helpers and the .env parser. */
#include "base/common.h"

#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "base/str.h"

loco_status file_read_all(const char *path, buf *out, loco_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return loco_err_set(err, errno == ENOENT ? LOCO_ERR_NOT_FOUND : LOCO_ERR_IO,
                            "cannot open '%s': %s", path, strerror(errno));
    char chunk[65536];
    loco_status rc = LOCO_OK;
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = loco_err_set(err, LOCO_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        rc = buf_append(out, chunk, (size_t)r);
        if (rc) {
            loco_err_set(err, rc, "cannot read '%s': %s (limit %zu bytes)", path,
                         loco_status_str(rc), out->max);
            break;
        }
    }
    close(fd);
    return rc;
}

loco_status file_mkdirs(const char *path, loco_err *err)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return loco_err_set(err, LOCO_ERR_INVALID, "bad directory path '%s'", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char save = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return loco_err_set(err, LOCO_ERR_IO, "cannot create directory '%s': %s", tmp,
                                    strerror(errno));
            tmp[i] = save;
        }
    }
    return LOCO_OK;
}

bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static loco_status write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return LOCO_ERR_IO;
        }
        p += w;
        n -= (size_t)w;
    }
    return LOCO_OK;
}

loco_status file_write_atomic(const char *path, const void *data, size_t n, int mode,
                              loco_err *err)
{
    char dir[4096];
    if (strlen(path) >= sizeof(dir))
        return loco_err_set(err, LOCO_ERR_INVALID, "path too long: '%s'", path);
    snprintf(dir, sizeof(dir), "%s", path);
    char *d = dirname(dir);
    loco_status rc = file_mkdirs(d, err);
    if (rc)
        return rc;
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return loco_err_set(err, LOCO_ERR_IO, "cannot create a temporary file beside '%s': %s",
                            path, strerror(errno));
    rc = write_all(fd, data, n);
    if (!rc && fsync(fd) != 0)
        rc = LOCO_ERR_IO;
    if (!rc && fchmod(fd, (mode_t)mode) != 0)
        rc = LOCO_ERR_IO;
    int saved = errno;
    close(fd);
    if (!rc && rename(tmp, path) != 0) {
        saved = errno;
        rc = LOCO_ERR_IO;
    }
    if (rc) {
        unlink(tmp);
        return loco_err_set(err, rc, "cannot write '%s': %s", path, strerror(saved));
    }
    return LOCO_OK;
}

loco_status file_append(const char *path, const void *data, size_t n, loco_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return loco_err_set(err, LOCO_ERR_IO, "cannot open '%s' for appending: %s", path,
                            strerror(errno));
    loco_status rc = write_all(fd, data, n);
    int saved = errno;
    close(fd);
    if (rc)
        return loco_err_set(err, rc, "cannot append to '%s': %s", path, strerror(saved));
    return LOCO_OK;
}

void dotenv_release(dotenv *env)
{
    for (size_t i = 0; i < env->n; i++) {
        free(env->keys[i]);
        free(env->values[i]);
    }
    free(env->keys);
    free(env->values);
    env->keys = NULL;
    env->values = NULL;
    env->n = 0;
}

const char *dotenv_get(const dotenv *env, const char *key)
{
    /* the last assignment wins, as in a shell */
    for (size_t i = env->n; i > 0; i--) {
        if (!strcmp(env->keys[i - 1], key))
            return env->values[i - 1];
    }
    return NULL;
}

static bool is_key_char(char c, bool first)
{
    return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (!first && c >= '0' && c <= '9');
}

static loco_status dotenv_add(dotenv *env, const char *k, size_t kn, const char *v, size_t vn)
{
    char **nk = realloc(env->keys, (env->n + 1) * sizeof(char *));
    if (!nk)
        return LOCO_ERR_NOMEM;
    env->keys = nk;
    char **nv = realloc(env->values, (env->n + 1) * sizeof(char *));
    if (!nv)
        return LOCO_ERR_NOMEM;
    env->values = nv;
    char *key = malloc(kn + 1);
    char *val = malloc(vn + 1);
    if (key && val) {
        /* the input need not be NUL-terminated: copy exactly, never scan */
        memcpy(key, k, kn);
        key[kn] = '\0';
        memcpy(val, v, vn);
        val[vn] = '\0';
    }
    if (!key || !val) {
        free(key);
        free(val);
        return LOCO_ERR_NOMEM;
    }
    env->keys[env->n] = key;
    env->values[env->n] = val;
    env->n++;
    return LOCO_OK;
}

loco_status dotenv_parse(const char *text, size_t n, dotenv *env, loco_err *err)
{
    env->keys = NULL;
    env->values = NULL;
    env->n = 0;
    size_t line_no = 0;
    size_t i = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && text[e] != '\n')
            e++;
        line_no++;
        const char *s = text + i;
        size_t len = e - i;
        i = e + 1;
        while (len && (s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        while (len && (*s == ' ' || *s == '\t')) {
            s++;
            len--;
        }
        if (!len || *s == '#')
            continue;
        if (len > 7 && !strncmp(s, "export ", 7)) {
            s += 7;
            len -= 7;
            while (len && *s == ' ') {
                s++;
                len--;
            }
        }
        size_t k = 0;
        while (k < len && is_key_char(s[k], k == 0))
            k++;
        size_t eq = k;
        while (eq < len && (s[eq] == ' ' || s[eq] == '\t'))
            eq++;
        if (k == 0 || eq >= len || s[eq] != '=') {
            dotenv_release(env);
            return loco_err_set(err, LOCO_ERR_INVALID,
                                "line %zu: expected KEY=VALUE (letters, digits, '_' in KEY)",
                                line_no);
        }
        const char *v = s + eq + 1;
        size_t vn = len - eq - 1;
        while (vn && (*v == ' ' || *v == '\t')) {
            v++;
            vn--;
        }
        if (vn && (*v == '"' || *v == '\'')) {
            char q = *v;
            const char *close = memchr(v + 1, q, vn - 1);
            if (!close) {
                dotenv_release(env);
                return loco_err_set(err, LOCO_ERR_INVALID, "line %zu: unterminated %c quote",
                                    line_no, q);
            }
            vn = (size_t)(close - v - 1);
            v++;
        } else {
            /* an unquoted value ends at " #" (inline comment) */
            for (size_t j = 1; j < vn; j++) {
                if (v[j] == '#' && (v[j - 1] == ' ' || v[j - 1] == '\t')) {
                    vn = j;
                    while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
                        vn--;
                    break;
                }
            }
        }
        if (dotenv_add(env, s, k, v, vn)) {
            dotenv_release(env);
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory reading .env");
        }
    }
    return LOCO_OK;
}

loco_status dotenv_load(const char *path, dotenv *env, loco_err *err)
{
    buf b;
    buf_init(&b, 1 << 20);
    env->keys = NULL;
    env->values = NULL;
    env->n = 0;
    loco_status rc = file_read_all(path, &b, err);
    if (!rc) {
        rc = dotenv_parse(buf_str(&b), b.len, env, err);
        if (rc)
            loco_err_wrap(err, "%s", path);
    }
    buf_release(&b);
    return rc;
}

ssize_t file_write_nosigpipe(int fd, const void *p, size_t n)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    const bool was_pending = sigismember(&pending, SIGPIPE) == 1; /* not ours to take */
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t w;
    do
        w = write(fd, p, n);
    while (w < 0 && errno == EINTR);
    const int e = errno;
    if (w < 0 && e == EPIPE && !was_pending) {
        sigemptyset(&pending);
        sigpending(&pending);
        int sig;
        if (sigismember(&pending, SIGPIPE) == 1)
            sigwait(&pipe_set, &sig);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return w;
}
