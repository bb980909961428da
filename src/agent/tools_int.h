/* tools_int.h: helpers shared by the tool implementations (tool_*.c) only: argument getters
 * whose failures read well to the model, error results, output capping with a note, sandboxed
 * path resolution into an error result, and atomic writes. Not for use outside src/agent/. */
#ifndef LOCO_AGENT_TOOLS_INT_H
#define LOCO_AGENT_TOOLS_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "agent/sandbox.h"
#include "agent/tools.h"
#include "base/buf.h"
#include "base/status.h"

/* Longest message an argument getter writes into err_out (it is a model-facing line). */
#define TOOLS_ARG_ERR_MAX 512

/* Argument getters. args is the tool's argument object (borrowed; may be NULL or a non-object,
 * which reads as "every argument absent"). name is the argument name ("file_path").
 *
 * Returns true when the argument is usable: present with the right type (*out set), or absent
 * and not required (*out left unchanged, so set the default first). A JSON null counts as
 * absent (models send null for optional arguments). Returns false when it is missing but
 * required, or present with the wrong type; then a one-line message naming the argument
 * ("file_path must be a string", "file_path is required") is appended to err_out (which may
 * be NULL) and *out is unchanged. Callers turn that into an error result with the tool name:
 *     tools_error(out, out_is_error, "Read: %s", buf_str(&err));
 *
 * tools_arg_str: *out is borrowed from args (valid while args lives). Strings containing NUL
 * bytes are refused ("... must not contain NUL bytes").
 * tools_arg_int: accepts a JSON integer, a float with an integral value, or (leniently, models
 * do this) a string holding a base-10 integer; range is long.
 * tools_arg_bool: accepts JSON true/false, or the strings "true"/"false" (any case). */
bool tools_arg_str(const json_t *args, const char *name, bool required, const char **out,
                   buf *err_out);
bool tools_arg_int(const json_t *args, const char *name, bool required, long *out, buf *err_out);
bool tools_arg_bool(const json_t *args, const char *name, bool required, bool *out,
                    buf *err_out);

/* Appends a printf-style message to out and sets *is_error = true. Returns LOCO_OK, or the
 * buf error (LOCO_ERR_NOMEM / LOCO_ERR_LIMIT) when out could not take it (*is_error is set
 * regardless). */
loco_status tools_error(buf *out, bool *is_error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Caps the whole of out at max bytes: when out->len > max, keeps the head (cut at a UTF-8
 * character boundary, and at the last newline when one lies in the final quarter) and appends
 * "\n\n[output truncated: N of M bytes of WHAT cut; ...]" so that the result, note included,
 * is at most max bytes (for max >= 256; smaller max values may exceed max by the note).
 * what names what was cut ("output", "file content"). Does nothing when out->len <= max.
 * Only the bytes from offset 0 are considered: build a tool's result in its own buf when out
 * may already hold other text, or use tools_cap_output_from. Returns LOCO_OK or a buf error. */
loco_status tools_cap_output(buf *out, size_t max, const char *what);
/* As tools_cap_output, for the bytes of out from start on (start <= out->len). */
loco_status tools_cap_output_from(buf *out, size_t start, size_t max, const char *what);

/* Resolves path through ctx->sb for access (agent_sandbox_resolve). On success returns LOCO_OK
 * with *out_path malloc'd (caller frees). On refusal or a bad path returns LOCO_OK with
 * *out_path NULL, an error result "TOOL: <sandbox message>" appended to out and *is_error set.
 * Other statuses only for out-of-memory. */
loco_status tools_resolve(const agent_tool_ctx *ctx, const char *tool, const char *path,
                          sandbox_access access, char **out_path, buf *out, bool *is_error);

/* Writes data to path atomically (base/file.h: temp file in the same directory + fsync +
 * rename; parent directories created). An existing file keeps its permission bits; a new one
 * gets 0644. */
loco_status tools_write_atomic(const char *path, const void *data, size_t n, loco_err *err);

/* Appends p[0..n) as text the model can read: valid UTF-8 is copied, every NUL byte and every
 * byte of an invalid UTF-8 sequence becomes U+FFFD. Returns LOCO_OK or a buf error. */
loco_status tools_append_text(buf *out, const char *p, size_t n);

/* True when ctx->cancel is set and nonzero. */
bool tools_cancelled(const agent_tool_ctx *ctx);

/* The effective result cap for ctx: ctx->max_output, or AGENT_TOOL_OUTPUT_MAX when it is 0 or
 * larger than that. */
size_t tools_max_output(const agent_tool_ctx *ctx);

/* The Bash tool's read-only policy (bash_policy.c): true when command looks read-only: no
 * redirection to a file (other than /dev/null), no command that writes, deletes, moves, edits
 * in place, installs, builds or reaches the network, found in every simple command of
 * pipelines, lists, subshells, $(...), backticks, <(...), here-documents, bash -c and eval.
 * False with the reason (naming the offending command or redirection) appended to why (may be
 * NULL). Conservative: what it cannot judge (a command named by an expansion, commands piped
 * into a shell) is refused. A guard against accidents, not a security boundary. */
bool tools_bash_allowed(const char *command, buf *why);

#endif
