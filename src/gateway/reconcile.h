/* reconcile.h: fits a tool call the local model made (it was trained on Read, Grep, Glob,
 * Bash, Write, Edit, Task) to the tools the client actually offers: renames, Task <-> Agent,
 * and read-only Bash equivalents of Grep, Glob, LS and Read. Part of gateway/. */
#ifndef LOCO_GATEWAY_RECONCILE_H
#define LOCO_GATEWAY_RECONCILE_H

#include <stddef.h>

#include "base/buf.h"
#include "chat/chat.h"

/* Longest shell command a mapping builds; longer ones are UNMAPPABLE. */
#define RECONCILE_MAX_COMMAND (64 * 1024)
/* Most file patterns one brace glob ("*.{ts,tsx}") may expand to. */
#define RECONCILE_MAX_GLOBS 64
/* Lines a mapped Glob lists (Claude Code's Glob caps its answer the same way). */
#define RECONCILE_GLOB_LIMIT 100
/* Lines a mapped Read prints when the call gives no limit (Claude Code's default). */
#define RECONCILE_READ_LIMIT 2000

typedef enum { RECONCILE_KEEP = 0, RECONCILE_MAPPED, RECONCILE_UNMAPPABLE } reconcile_action;

/* Decides how the tool call name(args_json) fits the tools req offers (docs/internals/
 * gateway-parts.md). Everything is borrowed; args_json NULL or "" means {}.
 *   KEEP: name is offered as is, or req (may be NULL) offers no tools at all. *out_name =
 *     name, nothing appended, why = "".
 *   MAPPED: *out_name is the offered tool to call instead (borrowed from req's tools) and
 *     its arguments, a compact JSON object, are appended to out_args; why holds a short note
 *     ("Grep mapped to Bash"). A rename keeps the arguments; Grep, Glob, LS and Read become
 *     a read-only Bash {"command","description"} whose every argument is shell-quoted.
 *   UNMAPPABLE: no faithful equivalent (Write and Edit are never turned into shell
 *     commands), or the arguments are missing, mistyped or too large; *out_name = NULL,
 *     nothing appended, why names the tool and the reason.
 * why (why_size bytes, may be 0) is always NUL-terminated and cut to fit. Never fails
 * otherwise: an allocation failure or out_args' limit gives UNMAPPABLE with the reason. */
reconcile_action reconcile_tool_call(const chat_request *req, const char *name,
                                     const char *args_json, const char **out_name,
                                     buf *out_args, char *why, size_t why_size);

/* "keep", "mapped", "unmappable" (static). */
const char *reconcile_action_str(reconcile_action a);

#endif
