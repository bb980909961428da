/* tools_int.c: helpers shared by the tool implementations (see tools_int.h): argument getters,
 * error results, output capping, sandboxed resolution into an error result, atomic writes. */
#include "base/common.h"

#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>

#include "agent/tools_int.h"
#include "base/file.h"
#include "base/str.h"
#include "base/utf8.h"

/* The member, or NULL when args is not an object, the member is absent or it is JSON null. */
static const json_t *arg_get(const json_t *args, const char *name)
{
    if (!args || !json_is_object(args) || !name)
        return NULL;
    const json_t *v = json_object_get(args, name);
    if (!v || json_is_null(v))
        return NULL;
    return v;
}

static bool arg_fail(buf *err_out, const char *name, const char *what)
{
    if (err_out)
        (void)buf_appendf(err_out, "%.200s %s", name ? name : "argument", what);
    return false;
}

bool tools_arg_str(const json_t *args, const char *name, bool required, const char **out,
                   buf *err_out)
{
    const json_t *v = arg_get(args, name);
    if (!v)
        return required ? arg_fail(err_out, name, "is required") : true;
    if (!json_is_string(v))
        return arg_fail(err_out, name, "must be a string");
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return arg_fail(err_out, name, "must not contain NUL bytes");
    *out = s;
    return true;
}

bool tools_arg_int(const json_t *args, const char *name, bool required, long *out, buf *err_out)
{
    const json_t *v = arg_get(args, name);
    if (!v)
        return required ? arg_fail(err_out, name, "is required") : true;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < LONG_MIN || i > LONG_MAX)
            return arg_fail(err_out, name, "is out of range");
        *out = (long)i;
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= -9.0e18 && d <= 9.0e18) || d != (double)(long)d)
            return arg_fail(err_out, name, "must be an integer");
        *out = (long)d;
        return true;
    }
    if (json_is_string(v)) {
        long l;
        if (str_parse_long(json_string_value(v), LONG_MIN, LONG_MAX, &l) != LOCO_OK)
            return arg_fail(err_out, name, "must be an integer");
        *out = l;
        return true;
    }
    return arg_fail(err_out, name, "must be an integer");
}

bool tools_arg_bool(const json_t *args, const char *name, bool required, bool *out,
                    buf *err_out)
{
    const json_t *v = arg_get(args, name);
    if (!v)
        return required ? arg_fail(err_out, name, "is required") : true;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0) {
            *out = strcasecmp(s, "true") == 0;
            return true;
        }
    }
    return arg_fail(err_out, name, "must be a boolean");
}

loco_status tools_error(buf *out, bool *is_error, const char *fmt, ...)
{
    *is_error = true;
    va_list ap;
    va_start(ap, fmt);
    loco_status rc = buf_vappendf(out, fmt, ap);
    va_end(ap);
    return rc;
}

/* Note appended after a cut: how much was cut of how much. */
static int cap_note(char *dst, size_t n, size_t cut, size_t total, const char *what)
{
    return snprintf(dst, n,
                    "\n\n[%s truncated: %zu of %zu bytes cut; narrow the request to see the rest]",
                    what ? what : "output", cut, total);
}

loco_status tools_cap_output_from(buf *out, size_t start, size_t max, const char *what)
{
    if (start > out->len || out->len - start <= max)
        return LOCO_OK;
    size_t total = out->len - start;
    char note[256];
    /* The note's length depends on the cut size; measure it with the largest value. */
    int nlen = cap_note(note, sizeof(note), total, total, what);
    size_t keep = max > (size_t)nlen ? max - (size_t)nlen : 0;
    const char *p = out->data + start;
    keep = utf8_complete_len(p, keep);
    /* Prefer ending at a newline if one lies in the last quarter of what is kept. */
    for (size_t i = keep; i > keep - keep / 4 && i > 0; i--) {
        if (p[i - 1] == '\n') {
            keep = i - 1;
            break;
        }
    }
    out->len = start + keep;
    out->data[out->len] = '\0';
    cap_note(note, sizeof(note), total - keep, total, what);
    return buf_appends(out, note);
}

loco_status tools_cap_output(buf *out, size_t max, const char *what)
{
    return tools_cap_output_from(out, 0, max, what);
}

loco_status tools_resolve(const agent_tool_ctx *ctx, const char *tool, const char *path,
                          sandbox_access access, char **out_path, buf *out, bool *is_error)
{
    *out_path = NULL;
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = agent_sandbox_resolve(ctx->sb, path, access, out_path, &err);
    if (rc == LOCO_ERR_NOMEM)
        return rc;
    if (rc != LOCO_OK) {
        free(*out_path);
        *out_path = NULL;
        return tools_error(out, is_error, "%s: %s", tool, err.msg);
    }
    return LOCO_OK;
}

loco_status tools_write_atomic(const char *path, const void *data, size_t n, loco_err *err)
{
    struct stat st;
    int mode = 0644;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        mode = (int)(st.st_mode & 07777);
    return file_write_atomic(path, data, n, mode, err);
}

bool tools_cancelled(const agent_tool_ctx *ctx)
{
    return ctx && ctx->cancel && __atomic_load_n(ctx->cancel, __ATOMIC_ACQUIRE) != 0;
}

size_t tools_max_output(const agent_tool_ctx *ctx)
{
    if (!ctx || ctx->max_output == 0 || ctx->max_output > AGENT_TOOL_OUTPUT_MAX)
        return AGENT_TOOL_OUTPUT_MAX;
    return ctx->max_output;
}

loco_status tools_append_text(buf *out, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *nul = memchr(p + i, '\0', n - i);
        size_t end = nul ? (size_t)(nul - p) : n;
        loco_status rc = utf8_append_lossy(out, p + i, end - i);
        if (!rc && nul)
            rc = buf_appends(out, UTF8_REPLACEMENT);
        if (rc)
            return rc;
        i = end + 1;
    }
    return LOCO_OK;
}

