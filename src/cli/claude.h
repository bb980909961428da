/* claude.h: the original pipeline, Claude Code driven by loco: `loco ask --driver claude` and
 * `loco analyze --driver claude` start the gateway in this process on a free port and run the
 * installed `claude` CLI headless (`claude -p`) against it, the cloud model as the main agent
 * and the local model as its Explore sub-agent, with the settings `loco setup` writes. Also the
 * settings and Explore agent `loco setup` writes. cli/ only. */
#ifndef LOCO_CLI_CLAUDE_H
#define LOCO_CLI_CLAUDE_H

#include <stdbool.h>

#include "agent/agent.h"
#include "base/buf.h"
#include "base/status.h"
#include "cli/backend_opts.h"
#include "cli/options.h"

/* The sub-agent model name Claude Code asks for (served locally by the gateway). */
#define CLI_CLAUDE_HAIKU_MODEL "claude-haiku-4-5-20251001"
/* Where `loco serve` listens by default, and so what `loco setup` points Claude Code at. */
#define CLI_CLAUDE_GATEWAY_URL "http://127.0.0.1:9091"

/* The compiled-in copy of prompts/claude_query.txt ({project}, {question}, {output_file},
 * {repo}): the task the main agent gets, in the role of the seed's prompts/analyze_query.txt. */
extern const char cli_claude_task_template[];

/* Appends to out Claude Code's settings.local.json (with a final newline): env
 * ANTHROPIC_BASE_URL = base_url, ANTHROPIC_AUTH_TOKEN = token, ANTHROPIC_API_KEY "", and the
 * default opus / sonnet (main_model) and haiku (haiku_model) model names. */
loco_status cli_claude_settings(const char *base_url, const char *token, const char *main_model,
                                const char *haiku_model, buf *out);
/* Appends .claude/agents/Explore.md: Claude Code's Explore sub-agent pinned to the haiku
 * model (so its requests take the local route), with the tools LocoOperator-4B knows. */
loco_status cli_claude_explore_md(buf *out);

typedef struct cli_claude cli_claude;

typedef struct {
    const char *cmd;                 /* message prefix: "loco ask" */
    const cli_backend_opts *backend; /* local side (--backend openai:URL, --local-url, the
                                        engine's --model), cloud (--cloud-url, --key-env,
                                        --cloud-model), --system-prompt */
    long max_turns;                  /* the local route's turn limit */
    long ctx;                        /* the local context */
    long max_tokens;                 /* cap on one local answer (0: Claude Code's max_tokens) */
    bool allow_bash_writes;          /* Claude Code may run any Bash command (else read-only
                                        commands only) */
    bool verbose;                    /* log the gateway's request lines */
} cli_claude_opts;

/* Finds `claude` ($LOCO_CLAUDE, else on PATH), checks the cloud key, and starts the gateway on
 * 127.0.0.1 with a random client token. On success the caller stops it with cli_claude_free.
 * LOCO_ERR_NOT_FOUND (no claude: the message says how to install it), LOCO_ERR_INVALID (no
 * cloud key, a bad URL), or the gateway's error. */
loco_status cli_claude_new(const cli_claude_opts *o, const cli_env *env, cli_claude **out,
                           loco_err *err);
/* One line for humans: "claude 2.1.3 via gateway http://127.0.0.1:PORT, local URL, cloud URL". */
const char *cli_claude_describe(const cli_claude *c);

typedef struct {
    const char *repo;            /* absolute; Claude Code's working directory */
    const char *task;            /* the prompt */
    const char *answer_file;     /* absolute: where the answer ends (written atomically) */
    const char *scratch_answer;  /* absolute: the path the task names; renamed to answer_file
                                    when Claude Code wrote it (may equal answer_file) */
    const char *transcript_path; /* Claude Code's stream-json output; NULL: not kept */
    const volatile int *cancel;  /* nonzero: Claude Code is stopped, LOCO_ERR_CANCELLED */
    agent_event_fn on_event;     /* tool calls, turns and sub-agent starts; may be NULL */
    void *event_ctx;
} cli_claude_run_opts;

/* Runs one question through `claude -p` (any number at once, from several threads). The answer
 * is what Claude Code saved at scratch_answer, else its final message, written to answer_file
 * atomically; nothing is written on failure or cancellation. *out gets the answer text (empty
 * when Claude Code wrote the file), turns and tool calls of the main agent and its sub-agents;
 * release it with agent_result_release. Errors: LOCO_ERR_CANCELLED, LOCO_ERR_UPSTREAM (Claude
 * Code failed: its exit status and last message), LOCO_ERR_INVALID (no answer), LOCO_ERR_IO. */
loco_status cli_claude_run(cli_claude *c, const cli_claude_run_opts *r, agent_result *out,
                           loco_err *err);
/* Stops the gateway; NULL does nothing. */
void cli_claude_free(cli_claude *c);

#endif
