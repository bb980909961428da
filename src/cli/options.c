/* options.c: flag/environment/.env lookup and the stderr log sink. */
#include "base/common.h"

#include <pthread.h>

#include "base/log.h"
#include "cli/options.h"

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

bool cli_flag_value(int argc, char **argv, int *i, const char *name, const char **out_v,
                    bool *bad)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return false;
    if (a[n] == '=') {
        *out_v = a + n + 1;
        return true;
    }
    if (a[n] != '\0')
        return false;
    if (*i + 1 >= argc) {
        fprintf(stderr, "loco: %s needs a value\n", name);
        *bad = true;
        return true;
    }
    *i += 1;
    *out_v = argv[*i];
    return true;
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
