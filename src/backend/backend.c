/* backend.c: the backend interface dispatch and shared helpers. */
#include "base/common.h"

#include "backend/backend.h"
#include "base/url.h"

loco_status backend_complete(backend *b, const chat_request *req, const backend_call *call,
                             chat_event_fn cb, void *ctx, backend_result *out, loco_err *err)
{
    backend_result local;
    if (!out)
        out = &local;
    memset(out, 0, sizeof(*out));
    backend_call none;
    if (!call) {
        memset(&none, 0, sizeof(none));
        call = &none;
    }
    return b->ops->complete(b, req, call, cb, ctx, out, err);
}

loco_status backend_count_tokens(backend *b, const chat_request *req, long *out_n,
                                 loco_err *err)
{
    if (!b->ops->count_tokens)
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED, "%s cannot count tokens", b->url);
    return b->ops->count_tokens(b, req, out_n, err);
}

loco_status backend_health(backend *b, loco_err *err)
{
    return b->ops->health(b, err);
}

void backend_free(backend *b)
{
    if (b)
        b->ops->free(b);
}

char *backend_join_url(const char *base, const char *path)
{
    size_t bl = url_api_root_len(base); /* "URL", "URL/v1" and "URL/v1/messages" alike */
    while (*path == '/')
        path++;
    size_t n = bl + 1 + strlen(path) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%.*s/%s", (int)bl, base, path);
    return s;
}
