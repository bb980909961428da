/* tools.h: the explorer's native tools (Read, Grep, Glob, Bash, Write, Edit, Task) with Claude
 * Code's argument names and result formats, behind one table. Every path a tool touches goes
 * through the sandbox (sandbox.h). Any failure is an error *result* the model can read
 * (is_error), never a crash; loco_status errors are reserved for out-of-memory and cancel. */
#ifndef LOCO_AGENT_TOOLS_H
#define LOCO_AGENT_TOOLS_H

#include <jansson.h>
#include <stdbool.h>

#include "agent/sandbox.h"
#include "base/buf.h"
#include "base/status.h"

/* Hard cap on one tool result given back to the model (Claude Code's Bash cap). */
#define AGENT_TOOL_OUTPUT_MAX 30000

typedef struct agent_tool_ctx agent_tool_ctx;

struct agent_tool_ctx {
    const agent_sandbox *sb;
    const volatile int *cancel;  /* nonzero: stop as soon as possible (LOCO_ERR_CANCELLED) */
    size_t max_output;           /* result cap in bytes for this call (<= AGENT_TOOL_OUTPUT_MAX);
                                    a longer result is cut with a note saying what was cut */
    int threads;                 /* worker threads a tool may use (Grep's walk); >= 1 */
    /* Task: runs a sub-agent on prompt and appends its final text to out. NULL: Task is
     * unavailable (depth limit reached), an error result. */
    loco_status (*run_subagent)(void *ctx, const char *description, const char *prompt,
                                buf *out, bool *out_is_error);
    void *subagent_ctx;
};

typedef struct {
    const char *name;
    const char *description;  /* for the model / API tool lists */
    const char *schema_json;  /* JSON Schema of the arguments (Claude Code's) */
    bool read_only;           /* touches nothing: may run in parallel with other read-only calls */
    /* Runs the tool on args (a JSON object, borrowed). Appends the result text to out and sets
     * *out_is_error. Returns LOCO_OK unless memory ran out or ctx->cancel was set. */
    loco_status (*run)(const agent_tool_ctx *ctx, const json_t *args, buf *out, bool *out_is_error);
} agent_tool;

/* The table: Read, Grep, Glob, Bash, Write, Edit, Task. *out_n gets the count. Static. */
const agent_tool *const *agent_tools_all(size_t *out_n);
/* The tool named name (exact), or NULL. */
const agent_tool *agent_tools_find(const char *name);

/* The individual tools (each in its own tool_<name>.c). */
extern const agent_tool agent_tool_read;
extern const agent_tool agent_tool_grep;
extern const agent_tool agent_tool_glob;
extern const agent_tool agent_tool_bash;
extern const agent_tool agent_tool_write;
extern const agent_tool agent_tool_edit;
extern const agent_tool agent_tool_task;

#endif
