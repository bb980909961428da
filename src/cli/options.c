/* options.c: flag/environment/.env lookup and the stderr log sink. */
#include "base/common.h"

#include <ctype.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "cli/options.h"
#include "engine/gguf.h"

bool cli_env_load(cli_env *e, const char *path)
{
    memset(e, 0, sizeof(*e));
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = dotenv_load(path ? path : ".env", &e->env, &err);
    if (rc == LOCO_ERR_NOT_FOUND && !path)
        return true;
    if (rc) {
        fprintf(stderr, "loco: %s\n", err.msg);
        return false;
    }
    e->env_loaded = true;
    return true;
}

void cli_env_release(cli_env *e)
{
    if (e->env_loaded)
        dotenv_release(&e->env);
    e->env_loaded = false;
}

const char *cli_env_get(const cli_env *e, const char *name)
{
    const char *v = getenv(name);
    if (v && *v)
        return v;
    return e->env_loaded ? dotenv_get(&e->env, name) : NULL;
}

/* llama.cpp's spellings (and the other commands' names for the same thing), accepted by
 * every command that has the canonical flag. A command never has two canonical flags that share
 * an alias. */
static const struct {
    const char *name;
    const char *aliases[4];
} flag_aliases[] = {
    {"--model", {"-m", NULL}},
    {"--ctx", {"-c", "--ctx-size", NULL}},
    {"--threads", {"-t", NULL}},
    {"--max-tokens", {"-n", "--n-predict", NULL}},
    {"--prompt", {"-p", NULL}},
    {"--temperature", {"--temp", NULL}},
    {"--temp", {"--temperature", NULL}},
    {"--seed", {"-s", NULL}},
    {"--batch", {"-b", "--batch-size", NULL}},
    {"--auth-token", {"--api-key", NULL}},
    {"--out", {"-o", NULL}},
    {"--jobs", {"-j", NULL}},
    {"--quiet", {"-q", NULL}},
    {"--verbose", {"-v", NULL}},
};

const char *const *cli_flag_aliases(const char *name)
{
    static const char *const none[] = {NULL};
    for (size_t k = 0; k < LOCO_ARRAY_LEN(flag_aliases); k++) {
        if (!strcmp(flag_aliases[k].name, name))
            return flag_aliases[k].aliases;
    }
    return none;
}

/* Length of the spelling of name (or an alias) that a starts with, followed by '=' or the end;
 * 0 when none matches. */
static size_t match_spelling(const char *a, const char *name)
{
    size_t n = strlen(name);
    if (!strncmp(a, name, n) && (a[n] == '=' || a[n] == '\0'))
        return n;
    for (const char *const *al = cli_flag_aliases(name); *al; al++) {
        n = strlen(*al);
        if (!strncmp(a, *al, n) && (a[n] == '=' || a[n] == '\0'))
            return n;
    }
    return 0;
}

bool cli_flag(const char *arg, const char *name)
{
    size_t n = match_spelling(arg, name);
    return n && arg[n] == '\0';
}

bool cli_flag_value(int argc, char **argv, int *i, const char *name, const char **out_v,
                    bool *bad)
{
    const char *a = argv[*i];
    size_t n = match_spelling(a, name);
    if (!n)
        return false;
    if (a[n] == '=') {
        *out_v = a + n + 1;
        return true;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "loco: %s needs a value\n", a);
        *bad = true;
        return true;
    }
    *i += 1;
    *out_v = argv[*i];
    return true;
}

loco_status cli_read_input(const char *path, buf *out, loco_err *err)
{
    if (strcmp(path, "-") != 0)
        return file_read_all(path, out, err);
    char chunk[65536];
    for (;;) {
        size_t got = fread(chunk, 1, sizeof(chunk), stdin);
        if (got && buf_append(out, chunk, got))
            return loco_err_set(err, out->len + got > out->max ? LOCO_ERR_LIMIT : LOCO_ERR_NOMEM,
                                "standard input is larger than %zu bytes", out->max);
        if (got < sizeof(chunk))
            break;
    }
    if (ferror(stdin))
        return loco_err_set(err, LOCO_ERR_IO, "cannot read standard input: %s", strerror(errno));
    return LOCO_OK;
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t k = 0;
        while (k < n && hay[k] && tolower((unsigned char)hay[k]) == needle[k])
            k++;
        if (k == n)
            return true;
    }
    return false;
}

long cli_model_trained_ctx(const char *path)
{
    gguf *g = NULL;
    loco_err err;
    if (gguf_open(path, &g, &err))
        return 0;
    long ctx = 0;
    int64_t i = gguf_find_key(g, "general.architecture");
    const char *arch = i >= 0 ? gguf_get_str(g, i, NULL) : NULL;
    char key[160];
    snprintf(key, sizeof(key), "%s.context_length", arch ? arch : "qwen3");
    i = gguf_find_key(g, key);
    uint32_t v32;
    uint64_t v64;
    if (i >= 0 && gguf_get_u32(g, i, &v32))
        ctx = (long)v32;
    else if (i >= 0 && gguf_get_u64(g, i, &v64))
        ctx = v64 > LONG_MAX ? LONG_MAX : (long)v64;
    if (!ctx) {
        i = gguf_find_key(g, "general.name");
        const char *name = i >= 0 ? gguf_get_str(g, i, NULL) : NULL;
        const char *base = strrchr(path, '/');
        if ((name && contains_nocase(name, "locooperator")) ||
            contains_nocase(base ? base + 1 : path, "locooperator"))
            ctx = 40960; /* the LocoOperator-4B model card */
    }
    gguf_close(g);
    return ctx;
}

void cli_warn_ctx(const char *cmd, const char *path, long ctx)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static bool warned;
    long trained = cli_model_trained_ctx(path);
    if (!trained || ctx <= trained)
        return;
    const char *base = strrchr(path, '/');
    pthread_mutex_lock(&mu);
    if (!warned)
        fprintf(stderr,
                "%s: warning: a context of %ld tokens is more than the %ld %s was trained for; "
                "answers past %ld tokens may degrade (--ctx sets it)\n",
                cmd, ctx, trained, base ? base + 1 : path, trained);
    warned = true;
    pthread_mutex_unlock(&mu);
}

#ifndef LOCO_DATA_DIR
#define LOCO_DATA_DIR "/usr/local/share/loco"
#endif

static const char *program_path; /* argv[0], set once at start */

void cli_set_argv0(const char *argv0)
{
    program_path = argv0;
}

/* The running binary's absolute path (malloc'd), from argv[0] and PATH; NULL when unknown. */
static char *find_self(void)
{
    const char *a = program_path;
    if (!a || !*a)
        return NULL;
    if (strchr(a, '/'))
        return realpath(a, NULL);
    const char *path = getenv("PATH");
    for (const char *p = path ? path : ""; *p;) {
        size_t n = strcspn(p, ":");
        char cand[4200];
        if (n && n < 4000) {
            snprintf(cand, sizeof(cand), "%.*s/%s", (int)n, p, a);
            if (access(cand, X_OK) == 0)
                return realpath(cand, NULL);
        }
        p += n;
        if (*p == ':')
            p++;
    }
    return NULL;
}

const char *cli_data_dir(char *out, size_t n)
{
    const char *env = getenv("LOCO_DATA_DIR");
    if (env && *env) {
        snprintf(out, n, "%s", env);
        return out;
    }
    char *self = find_self();
    char *slash = self ? strrchr(self, '/') : NULL;
    if (slash) {
        *slash = '\0'; /* PREFIX/bin */
        slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0'; /* PREFIX */
            snprintf(out, n, "%s/share/loco", self);
            struct stat st;
            if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
                free(self);
                return out;
            }
        }
    }
    free(self);
    snprintf(out, n, "%s", LOCO_DATA_DIR);
    return out;
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void cli_log_sink(void *ctx, log_level level, const char *line)
{
    LOCO_UNUSED(ctx);
    static const char *names[] = {"debug", "info", "warn", "error"};
    char ts[40];
    clock_iso8601(ts, sizeof(ts));
    pthread_mutex_lock(&log_mu);
    fprintf(stderr, "%s %s %s\n", ts, names[level & 3], line);
    fflush(stderr);
    pthread_mutex_unlock(&log_mu);
}
