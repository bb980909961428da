/* tool_write.c: the Write tool (file_path, content): writes a whole file atomically (temporary
 * file + rename), only inside the output directory unless the sandbox allows repository
 * writes. Parent directories are created. */
#include "base/common.h"

#include <sys/stat.h>

#include "agent/tools_int.h"

#define WRITE_SCHEMA                                                                           \
    "{\"type\":\"object\",\"properties\":{"                                                    \
    "\"file_path\":{\"type\":\"string\",\"description\":\"The absolute path to the file to "   \
    "write (must be absolute, not relative)\"},"                                               \
    "\"content\":{\"type\":\"string\",\"description\":\"The content to write to the file\"}}," \
    "\"required\":[\"file_path\",\"content\"],\"additionalProperties\":false}"

static loco_status write_run(const agent_tool_ctx *ctx, const json_t *args, buf *out,
                             bool *out_is_error)
{
    *out_is_error = false;
    buf err;
    buf_init(&err, TOOLS_ARG_ERR_MAX);
    const char *file_path = NULL;
    const json_t *content_v = (args && json_is_object(args)) ? json_object_get(args, "content")
                                                             : NULL;
    loco_status rc;
    if (!tools_arg_str(args, "file_path", true, &file_path, &err)) {
        rc = tools_error(out, out_is_error, "Write: %s", buf_str(&err));
        buf_release(&err);
        return rc;
    }
    buf_release(&err);
    /* content may hold NUL bytes (JSON allows \u0000): take its length from jansson. */
    if (!content_v || !json_is_string(content_v))
        return tools_error(out, out_is_error, "Write: content %s",
                           content_v && !json_is_null(content_v) ? "must be a string"
                                                                 : "is required");
    char *path = NULL;
    rc = tools_resolve(ctx, "Write", file_path, SANDBOX_WRITE, &path, out, out_is_error);
    if (rc || !path)
        return rc;
    struct stat st;
    bool existed = stat(path, &st) == 0;
    if (existed && !S_ISREG(st.st_mode)) {
        rc = tools_error(out, out_is_error, "Write: %s exists and is not a regular file", path);
        free(path);
        return rc;
    }
    loco_err werr;
    loco_err_clear(&werr);
    if (tools_write_atomic(path, json_string_value(content_v), json_string_length(content_v),
                           &werr) != LOCO_OK)
        rc = tools_error(out, out_is_error, "Write: %s", werr.msg);
    else if (existed)
        rc = buf_appendf(out, "The file %s has been updated.", path);
    else
        rc = buf_appendf(out, "File created successfully at: %s", path);
    free(path);
    return rc;
}

const agent_tool agent_tool_write = {
    .name = "Write",
    .description = "Writes a file to the local filesystem, replacing it if it exists. Writes are "
                   "allowed only inside the output directory (and inside the repository when the "
                   "user passed --allow-write). Parent directories are created; the write is "
                   "atomic.",
    .schema_json = WRITE_SCHEMA,
    .read_only = false,
    .run = write_run,
};
