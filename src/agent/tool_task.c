/* tool_task.c: the Task tool: runs a sub-agent (a fresh explorer loop with its own turn budget)
 * on a prompt and returns its final text. The loop itself lives in agent.c and is reached
 * through ctx->run_subagent, which is NULL once the depth limit is reached. */
#include "base/common.h"

#include "agent/tools.h"
#include "agent/tools_int.h"

#define TASK_SCHEMA                                                                          \
    "{\"type\":\"object\",\"properties\":{"                                                 \
    "\"description\":{\"type\":\"string\",\"description\":\"A short (3-5 word) description "  \
    "of the task\"},"                                                                        \
    "\"prompt\":{\"type\":\"string\",\"description\":\"The task for the agent to perform\"},"  \
    "\"subagent_type\":{\"type\":\"string\",\"description\":\"The type of specialized agent " \
    "to use for this task\"}},"                                                              \
    "\"required\":[\"description\",\"prompt\"],\"additionalProperties\":false}"

static loco_status task_run(const agent_tool_ctx *ctx, const json_t *args, buf *out,
                            bool *out_is_error)
{
    *out_is_error = false;
    buf e;
    buf_init(&e, TOOLS_ARG_ERR_MAX);
    const char *description = NULL, *prompt = NULL;
    bool ok = tools_arg_str(args, "description", true, &description, &e) &&
              tools_arg_str(args, "prompt", true, &prompt, &e);
    loco_status rc = LOCO_OK;
    if (!ok) {
        rc = tools_error(out, out_is_error, "Task: %s", buf_str(&e));
        goto out;
    }
    if (!*prompt) {
        rc = tools_error(out, out_is_error, "Task: prompt is empty");
        goto out;
    }
    if (!ctx->run_subagent) {
        rc = tools_error(out, out_is_error,
                         "Task: sub-agents cannot start more sub-agents at this depth (the "
                         "limit is 2 levels); do the work with Read, Grep, Glob and Bash");
        goto out;
    }
    if (tools_cancelled(ctx)) {
        rc = LOCO_ERR_CANCELLED;
        goto out;
    }
    size_t start = out->len;
    rc = ctx->run_subagent(ctx->subagent_ctx, description, prompt, out, out_is_error);
    if (rc == LOCO_OK)
        rc = tools_cap_output_from(out, start, tools_max_output(ctx), "sub-agent answer");
out:
    buf_release(&e);
    return rc;
}

const agent_tool agent_tool_task = {
    .name = "Task",
    .description = "Launch a new agent to handle a complex, multi-step search autonomously. "
                   "It has the same tools (Read, Grep, Glob, Bash) and its own turn budget, "
                   "and returns its final answer as the result.",
    .schema_json = TASK_SCHEMA,
    .read_only = false, /* sub-agents run one at a time, in call order */
    .run = task_run,
};
