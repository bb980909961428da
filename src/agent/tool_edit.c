/* tool_edit.c: the Edit tool (file_path, old_string, new_string, replace_all?): exact string
 * replacement in one file, a unique match required unless replace_all; same write rules as
 * Write (sandbox), written atomically. */
#include "base/common.h"

#include <sys/stat.h>

#include "agent/tools_int.h"
#include "base/file.h"
#include "base/str.h"
#include "base/utf8.h"

/* Largest file Edit loads (it rewrites the whole file). */
#define EDIT_MAX_FILE (64u * 1024 * 1024)
/* Bytes of old_string echoed back in an error. */
#define EDIT_ECHO_MAX 1000

#define EDIT_SCHEMA                                                                            \
    "{\"type\":\"object\",\"properties\":{"                                                    \
    "\"file_path\":{\"type\":\"string\",\"description\":\"The absolute path to the file to "   \
    "modify\"},"                                                                               \
    "\"old_string\":{\"type\":\"string\",\"description\":\"The text to replace\"},"           \
    "\"new_string\":{\"type\":\"string\",\"description\":\"The text to replace it with (must " \
    "be different from old_string)\"},"                                                        \
    "\"replace_all\":{\"type\":\"boolean\",\"default\":false,\"description\":\"Replace all "   \
    "occurrences of old_string (default false)\"}},"                                           \
    "\"required\":[\"file_path\",\"old_string\",\"new_string\"],"                              \
    "\"additionalProperties\":false}"

/* Counts non-overlapping occurrences of needle (n > 0 bytes) in hay[0..len). */
static size_t count_matches(const char *hay, size_t len, const char *needle, size_t n)
{
    size_t count = 0;
    const char *p = hay;
    const char *end = hay + len;
    while ((size_t)(end - p) >= n) {
        const char *hit = memmem(p, (size_t)(end - p), needle, n);
        if (!hit)
            break;
        count++;
        p = hit + n;
    }
    return count;
}

/* Builds into res the text with the first (or every) occurrence replaced. */
static loco_status replace(const char *hay, size_t len, const char *old_s, size_t old_n,
                           const char *new_s, size_t new_n, bool all, buf *res)
{
    const char *p = hay;
    const char *end = hay + len;
    loco_status rc = LOCO_OK;
    while (!rc && (size_t)(end - p) >= old_n) {
        const char *hit = memmem(p, (size_t)(end - p), old_s, old_n);
        if (!hit)
            break;
        rc = buf_append(res, p, (size_t)(hit - p));
        if (!rc)
            rc = buf_append(res, new_s, new_n);
        p = hit + old_n;
        if (!all)
            break;
    }
    if (!rc)
        rc = buf_append(res, p, (size_t)(end - p));
    return rc;
}

/* Edit with an empty old_string: creates a missing file, or fills an empty one. */
static loco_status edit_create(const char *path, bool exists, size_t cur_len, const json_t *nv,
                               buf *out, bool *is_error)
{
    if (exists && cur_len > 0)
        return tools_error(out, is_error,
                           "Edit: old_string is empty, which only creates a new file or fills "
                           "an empty one, and %s already has content. Give the text to replace.",
                           path);
    loco_err err;
    loco_err_clear(&err);
    if (tools_write_atomic(path, json_string_value(nv), json_string_length(nv), &err))
        return tools_error(out, is_error, "Edit: %s", err.msg);
    if (exists)
        return buf_appendf(out, "The file %s has been updated.", path);
    return buf_appendf(out, "File created successfully at: %s", path);
}

static loco_status edit_file(const char *path, const json_t *ov, const json_t *nv, bool all,
                             buf *out, bool *is_error)
{
    const char *old_s = json_string_value(ov);
    size_t old_n = json_string_length(ov);
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (exists && !S_ISREG(st.st_mode))
        return tools_error(out, is_error, "Edit: %s is not a regular file", path);
    if (!exists && old_n > 0)
        return tools_error(out, is_error, "Edit: File does not exist: %s", path);
    buf cur;
    buf_init(&cur, EDIT_MAX_FILE);
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = LOCO_OK;
    if (exists && file_read_all(path, &cur, &err) != LOCO_OK) {
        rc = tools_error(out, is_error, "Edit: %s", err.msg);
        goto out;
    }
    if (old_n == 0) {
        rc = edit_create(path, exists, cur.len, nv, out, is_error);
        goto out;
    }
    size_t count = count_matches(buf_str(&cur), cur.len, old_s, old_n);
    size_t shown = old_n < EDIT_ECHO_MAX ? old_n : EDIT_ECHO_MAX;
    int echo = (int)utf8_complete_len(old_s, shown);
    if (count == 0) {
        rc = tools_error(out, is_error,
                         "Edit: String to replace not found in %s.\nString: %.*s%s", path,
                         echo, old_s, old_n > (size_t)echo ? "..." : "");
        goto out;
    }
    if (count > 1 && !all) {
        rc = tools_error(out, is_error,
                         "Edit: Found %zu matches of the string to replace in %s, but "
                         "replace_all is false. To replace all occurrences, set replace_all to "
                         "true. To replace only one occurrence, please provide more context to "
                         "uniquely identify the instance.\nString: %.*s%s",
                         count, path, echo, old_s, old_n > (size_t)echo ? "..." : "");
        goto out;
    }
    buf res;
    buf_init(&res, BUF_UNLIMITED);
    rc = replace(buf_str(&cur), cur.len, old_s, old_n, json_string_value(nv),
                 json_string_length(nv), all, &res);
    if (!rc) {
        if (tools_write_atomic(path, buf_str(&res), res.len, &err))
            rc = tools_error(out, is_error, "Edit: %s", err.msg);
        else
            rc = buf_appendf(out, "The file %s has been updated (%zu replacement%s).", path,
                             all ? count : 1, (all ? count : 1) == 1 ? "" : "s");
    }
    buf_release(&res);
out:
    buf_release(&cur);
    return rc;
}

/* The string member name, or NULL after writing an error result. */
static const json_t *string_arg(const json_t *args, const char *name, buf *out, bool *is_error,
                                loco_status *rc)
{
    const json_t *v = (args && json_is_object(args)) ? json_object_get(args, name) : NULL;
    if (v && json_is_string(v))
        return v;
    *rc = tools_error(out, is_error, "Edit: %s %s", name,
                      v && !json_is_null(v) ? "must be a string" : "is required");
    return NULL;
}

static loco_status edit_run(const agent_tool_ctx *ctx, const json_t *args, buf *out,
                            bool *out_is_error)
{
    *out_is_error = false;
    buf err;
    buf_init(&err, TOOLS_ARG_ERR_MAX);
    const char *file_path = NULL;
    bool all = false;
    loco_status rc = LOCO_OK;
    if (!tools_arg_str(args, "file_path", true, &file_path, &err) ||
        !tools_arg_bool(args, "replace_all", false, &all, &err)) {
        rc = tools_error(out, out_is_error, "Edit: %s", buf_str(&err));
        buf_release(&err);
        return rc;
    }
    buf_release(&err);
    const json_t *ov = string_arg(args, "old_string", out, out_is_error, &rc);
    if (!ov)
        return rc;
    const json_t *nv = string_arg(args, "new_string", out, out_is_error, &rc);
    if (!nv)
        return rc;
    if (json_string_length(ov) == json_string_length(nv) &&
        memcmp(json_string_value(ov), json_string_value(nv), json_string_length(ov)) == 0)
        return tools_error(out, out_is_error,
                           "Edit: No changes to make: old_string and new_string are exactly the "
                           "same.");
    char *path = NULL;
    rc = tools_resolve(ctx, "Edit", file_path, SANDBOX_WRITE, &path, out, out_is_error);
    if (rc || !path)
        return rc;
    rc = edit_file(path, ov, nv, all, out, out_is_error);
    free(path);
    return rc;
}

const agent_tool agent_tool_edit = {
    .name = "Edit",
    .description = "Performs exact string replacements in a file. old_string must occur exactly "
                   "once unless replace_all is true (then every occurrence is replaced); give "
                   "more surrounding context to make it unique. An empty old_string creates a "
                   "new file. Same write rules as Write: only inside the output directory unless "
                   "the user passed --allow-write. The write is atomic.",
    .schema_json = EDIT_SCHEMA,
    .read_only = false,
    .run = edit_run,
};
