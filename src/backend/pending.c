/* pending.c: TEMPORARY stand-ins for the engine serving API (core) and the model store
 * (pull); see pending.h. Delete with it once both are on main. */
#include "base/common.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>

#include "backend/pending.h"
#include "base/str.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

loco_status backend_engine_stats_get(backend *b, backend_engine_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!b || strcmp(b->ops->kind, "engine"))
        return LOCO_ERR_INVALID;
    return LOCO_OK;
}

/* One tokenizer, for the one engine a process serves. */
static pthread_mutex_t tok_mu = PTHREAD_MUTEX_INITIALIZER;
static tok *tok_cached;
static char *tok_path;

static loco_status engine_tok(backend *b, const tok **out, loco_err *err)
{
    if (!b || strcmp(b->ops->kind, "engine"))
        return loco_err_set(err, LOCO_ERR_INVALID, "not an engine backend");
    pthread_mutex_lock(&tok_mu);
    loco_status rc = LOCO_OK;
    if (!tok_cached || strcmp(tok_path, b->url)) {
        gguf *g = NULL;
        tok *t = NULL;
        rc = gguf_open(b->url, &g, err);
        if (!rc)
            rc = tok_from_gguf(g, false, &t, err);
        gguf_close(g);
        if (!rc) {
            tok_free(tok_cached);
            free(tok_path);
            tok_cached = t;
            tok_path = strdup(b->url);
            if (!tok_path)
                rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        }
    }
    *out = tok_cached;
    pthread_mutex_unlock(&tok_mu);
    return rc;
}

loco_status backend_engine_tokenize(backend *b, const char *text, size_t n, bool special,
                                    int32_t **out_ids, size_t *out_n, loco_err *err)
{
    const tok *t = NULL;
    loco_status rc = engine_tok(b, &t, err);
    if (rc)
        return rc;
    tok_ids ids;
    tok_ids_init(&ids, (size_t)1 << 26);
    rc = tok_encode(t, text, n, special ? TOK_PARSE_SPECIAL : 0, &ids, err);
    if (rc) {
        tok_ids_release(&ids);
        return rc;
    }
    *out_n = ids.len;
    *out_ids = malloc((ids.len ? ids.len : 1) * sizeof(int32_t));
    if (!*out_ids) {
        tok_ids_release(&ids);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    if (ids.len)
        memcpy(*out_ids, ids.ids, ids.len * sizeof(int32_t));
    tok_ids_release(&ids);
    return LOCO_OK;
}

loco_status backend_engine_detokenize(backend *b, const int32_t *ids, size_t n, char **out,
                                      loco_err *err)
{
    const tok *t = NULL;
    loco_status rc = engine_tok(b, &t, err);
    if (rc)
        return rc;
    buf text;
    buf_init(&text, (size_t)1 << 28);
    tok_stream ts;
    tok_stream_init(&ts);
    for (size_t i = 0; !rc && i < n; i++)
        rc = tok_stream_push(&ts, t, ids[i], &text, err);
    if (!rc)
        rc = tok_stream_flush(&ts, &text);
    if (!rc) {
        *out = buf_take(&text, NULL);
        if (!*out)
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    buf_release(&text);
    return rc;
}

loco_status backend_engine_complete_text(backend *b, const char *prompt,
                                         const chat_request *params, const backend_call *call,
                                         chat_event_fn cb, void *ctx, backend_result *out,
                                         loco_err *err)
{
    LOCO_UNUSED(b);
    LOCO_UNUSED(prompt);
    LOCO_UNUSED(params);
    LOCO_UNUSED(call);
    LOCO_UNUSED(cb);
    LOCO_UNUSED(ctx);
    LOCO_UNUSED(out);
    return loco_err_set(err, LOCO_ERR_UNSUPPORTED,
                        "raw-prompt completions need the engine scheduler (not in this build)");
}

/* ---- model store ---- */

loco_status models_default_dir(char **out, loco_err *err)
{
    const char *m = getenv("LOCO_MODELS");
    const char *x = getenv("XDG_DATA_HOME");
    const char *h = getenv("HOME");
    char path[4096];
    if (m && *m)
        snprintf(path, sizeof(path), "%s", m);
    else if (x && *x)
        snprintf(path, sizeof(path), "%s/loco/models", x);
    else if (h && *h)
        snprintf(path, sizeof(path), "%s/.local/share/loco/models", h);
    else
        return loco_err_set(err, LOCO_ERR_NOT_FOUND, "no model directory: set LOCO_MODELS");
    *out = strdup(path);
    return *out ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
}

loco_status models_resolve(const char *name_or_path, char **out_path, loco_err *err)
{
    struct stat st;
    if (stat(name_or_path, &st) == 0 && S_ISREG(st.st_mode)) {
        *out_path = strdup(name_or_path);
        return *out_path ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    return loco_err_set(err, LOCO_ERR_NOT_FOUND, "cannot open '%s': No such file", name_or_path);
}

static bool ends_with_gguf(const char *s)
{
    size_t n = strlen(s);
    return n > 5 && !strcmp(s + n - 5, ".gguf");
}

loco_status models_find_default(char **out_path, loco_err *err)
{
    char *dir = NULL;
    loco_status rc = models_default_dir(&dir, err);
    if (rc)
        return rc;
    DIR *d = opendir(dir);
    char *best = NULL;
    bool best_q4km = false;
    for (struct dirent *e = d ? readdir(d) : NULL; e; e = readdir(d)) {
        if (e->d_name[0] == '.' || !ends_with_gguf(e->d_name))
            continue;
        bool q4km = strstr(e->d_name, "Q4_K_M") != NULL;
        if (!best || (q4km && !best_q4km) || (q4km == best_q4km && strcmp(e->d_name, best) < 0)) {
            free(best);
            best = strdup(e->d_name);
            best_q4km = q4km;
        }
    }
    if (d)
        closedir(d);
    if (!best) {
        rc = loco_err_set(err, LOCO_ERR_NOT_FOUND, "no model in %s", dir);
        free(dir);
        return rc;
    }
    size_t n = strlen(dir) + strlen(best) + 2;
    *out_path = malloc(n);
    if (*out_path)
        snprintf(*out_path, n, "%s/%s", dir, best);
    free(dir);
    free(best);
    return *out_path ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
}
