/* backend_opts.h: the model-backend options `loco ask` and `loco analyze` share (--backend
 * engine|openai:URL|anthropic:URL|hybrid, --model, --key-env, ...) and the backends they
 * build. cli/ only: parses flags, prints usage and builds backend/ objects. */
#ifndef LOCO_CLI_BACKEND_OPTS_H
#define LOCO_CLI_BACKEND_OPTS_H

#include <stdbool.h>
#include <stdio.h>

#include "backend/backend.h"
#include "base/status.h"
#include "cli/options.h"

#define CLI_DEFAULT_BACKEND "openai:http://127.0.0.1:8080"
#define CLI_DEFAULT_LOCAL_MODEL "LocoOperator-4B"
#define CLI_DEFAULT_CLOUD_URL "https://openrouter.ai/api"
#define CLI_DEFAULT_CLOUD_MODEL "qwen/qwen3-coder-next"
#define CLI_DEFAULT_KEY_ENV "OPENROUTER_API_KEY"

typedef struct {
    const char *cmd;           /* "ask", "analyze": message prefix (set by init) */
    const char *spec;          /* --backend; NULL: $LOCO_BACKEND, else the engine when --model
                                  is a GGUF file or a pulled model, else CLI_DEFAULT_BACKEND */
    const char *model;         /* --model: GGUF file (engine) or model name (servers) */
    const char *key_env;       /* --key-env: variable holding the cloud key */
    const char *local_url;     /* --local-url: hybrid's local OpenAI-compatible server */
    const char *cloud_url;     /* --cloud-url: hybrid's cloud (Anthropic-compatible) */
    const char *cloud_model;   /* --cloud-model */
    const char *prompt_file;   /* --system-prompt FILE (default: the built-in training prompt) */
    bool native_tools;         /* --native-tools: the server's own tool calling, no qwen text */
    bool no_constrain;         /* --no-constrain: engine tool calls not constrained */
    long timeout_s;            /* --timeout: a silent model server is given up after this */
    int engine_threads;        /* --threads (engine) */
} cli_backend_opts;

/* Zeroes o (every field then means "default"); cmd names the command in messages. */
void cli_backend_opts_init(cli_backend_opts *o, const char *cmd);
/* Consumes one backend flag at argv[*i] (advancing *i past its value). Returns 1 when it took
 * one, 0 when argv[*i] is not a backend flag, -1 on a usage error (printed, prefixed with cmd). */
int cli_backend_flag(cli_backend_opts *o, const char *cmd, int argc, char **argv, int *i);
/* The usage lines of the backend flags. */
void cli_backend_usage(FILE *out);

/* True when model names a model the engine runs: a .gguf path or file name, or a pulled model
 * named REPO[:QUANT] (a name no model server would take for its own). */
bool cli_model_is_file(const char *model);

typedef struct cli_backends cli_backends;

/* Builds what o describes: an HTTP client, and the shared local / cloud backends. ctx and
 * max_turns feed the hybrid policy; env gives keys and LOCO_BACKEND. Loading the engine's
 * model warns on stderr (once) when ctx exceeds the context the model was trained for. On
 * success the caller frees *out with cli_backends_close. LOCO_ERR_INVALID names a bad
 * --backend, a missing --model or key; other statuses as the backends give them. */
loco_status cli_backends_open(const cli_backend_opts *o, const cli_env *env, long ctx,
                              long max_turns, cli_backends **out, loco_err *err);
/* A backend for one agent run: a fresh hybrid around the shared local and cloud backends with
 * --backend hybrid (so one run's takeover does not touch another), else the shared backend.
 * Give it back with cli_backends_put. Thread-safe. */
loco_status cli_backends_get(cli_backends *s, backend **out, loco_err *err);
void cli_backends_put(cli_backends *s, backend *b);
/* True for --backend hybrid: agent_config.takeover should be cli_backends_takeover with the
 * backend from cli_backends_get as its ctx. */
bool cli_backends_is_hybrid(const cli_backends *s);
loco_status cli_backends_takeover(void *hybrid_backend, loco_err *err);
/* The model name to send (borrowed), or NULL for the backend's default. */
const char *cli_backends_model(const cli_backends *s);
/* The training system prompt in use (built in, or --system-prompt's file); borrowed. */
const char *cli_backends_system_prompt(const cli_backends *s);
/* One line for humans: "openai http://127.0.0.1:8080 (qwen <tool_call> text)". Borrowed. */
const char *cli_backends_describe(const cli_backends *s);
/* True when concurrent runs are serialised (the in-process engine is one sequence). */
bool cli_backends_serial(const cli_backends *s);
/* NULL does nothing. */
void cli_backends_close(cli_backends *s);

/* The explorer options ask and analyze share (defaults from agent.h). */
typedef struct {
    long max_turns;            /* --max-turns (10) */
    long sub_turns;            /* --task-turns: Task sub-agents' budget (= max turns) */
    long ctx;                  /* --ctx: context tokens (51200) */
    long max_tokens;           /* --max-tokens: per answer (4096) */
    bool max_tokens_set;       /* --max-tokens was given */
    double temperature;        /* --temperature (0.7) */
    bool allow_write;          /* --allow-write */
    bool allow_bash_writes;    /* --allow-bash-writes */
    bool unsafe_bash;          /* --unsafe-bash: Bash even where the kernel cannot confine it */
    const char *template_file; /* --prompt-template FILE (prompts/analyze_query.txt built in) */
    const char *rules_file;    /* --rules FILE (prompts/explorer_rules.txt built in) */
    bool claude;               /* --driver claude: Claude Code drives, loco serves (claude.h) */
} cli_agent_opts;

void cli_agent_opts_init(cli_agent_opts *o);
/* As cli_backend_flag, for the explorer options. */
int cli_agent_flag(cli_agent_opts *o, const char *cmd, int argc, char **argv, int *i);
void cli_agent_usage(FILE *out);
/* Says on stderr ("loco CMD: ...") which protections of Bash's confinement this system lacks
 * and whether Bash is therefore off (no --unsafe-bash) or runs without them; silent when the
 * kernel confines it fully. */
void cli_bash_notice(const char *cmd, const cli_agent_opts *o);
/* Reads path (at most 1 MiB) into a malloc'd string in *out; NULL path leaves *out NULL. */
loco_status cli_read_text(const char *path, char **out, loco_err *err);

/* Runs fn(arg) on a worker thread while this thread waits for SIGINT / SIGTERM (blocked for the
 * process meanwhile): the first one sets *cancel = 1 so the work stops cleanly, a second one
 * ends the process with 130. tick(tick_ctx) runs about every 100 ms (may be NULL). Returns the
 * first signal received, 0 when none. */
int cli_run_cancellable(void (*fn)(void *arg), void *arg, volatile int *cancel,
                        void (*tick)(void *ctx), void *tick_ctx);

#endif
