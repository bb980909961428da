/* status.c: status names and the error record. */
#include "base/common.h"

#include "base/status.h"
#include "base/str.h"

/* Messages often quote user input (an id, a path, a model name): never let one carry a
 * terminal escape sequence or a line break into a terminal or a log. */
static void err_make_printable(loco_err *err)
{
    size_t n = strlen(err->msg);
    if (str_is_printable(err->msg, n))
        return;
    char tmp[LOCO_ERR_MSG_MAX];
    str_printable(err->msg, tmp, sizeof(tmp));
    memcpy(err->msg, tmp, sizeof(tmp));
}

const char *loco_status_str(loco_status st)
{
    switch (st) {
    case LOCO_OK: return "ok";
    case LOCO_ERR_NOMEM: return "out of memory";
    case LOCO_ERR_INVALID: return "invalid input";
    case LOCO_ERR_IO: return "i/o error";
    case LOCO_ERR_LIMIT: return "limit exceeded";
    case LOCO_ERR_NOT_FOUND: return "not found";
    case LOCO_ERR_UPSTREAM: return "upstream error";
    case LOCO_ERR_UNAVAILABLE: return "upstream unavailable";
    case LOCO_ERR_TIMEOUT: return "timed out";
    case LOCO_ERR_CANCELLED: return "cancelled";
    case LOCO_ERR_UNSUPPORTED: return "unsupported";
    case LOCO_ERR_OVERFLOW: return "context overflow";
    case LOCO_ERR_AUTH: return "authentication error";
    case LOCO_ERR_EXISTS: return "already exists";
    case LOCO_ERR_BUSY: return "busy";
    }
    return "unknown status";
}

void loco_err_clear(loco_err *err)
{
    if (!err)
        return;
    err->code = LOCO_OK;
    err->msg[0] = '\0';
}

loco_status loco_err_set(loco_err *err, loco_status code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err_make_printable(err);
    return code;
}

/* Writes "a: b" into out, truncating at size. */
static void buf_fixed_join(char *out, size_t size, const char *a, const char *b)
{
    size_t o = 0;
    const char *parts[3] = {a, ": ", b};
    for (int k = 0; k < 3; k++) {
        for (const char *p = parts[k]; *p && o + 1 < size; p++)
            out[o++] = *p;
    }
    out[o] = '\0';
}

loco_status loco_err_wrap(loco_err *err, const char *fmt, ...)
{
    if (!err)
        return LOCO_ERR_INVALID;
    char prefix[LOCO_ERR_MSG_MAX];
    char old[LOCO_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    buf_fixed_join(err->msg, sizeof(err->msg), prefix, old);
    err_make_printable(err);
    return err->code;
}

_Noreturn void loco_assert_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "loco: BUG at %s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}
