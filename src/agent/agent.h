/* agent.h: the explorer loop behind `loco ask` and `loco analyze`. A conversation (system =
 * training prompt + explorer rules + environment; user = the task) goes through a backend turn
 * by turn; each turn's tool calls run through the tool table (tools.h) inside a sandbox
 * (sandbox.h) and come back as tool results, until a turn has no tool call (the answer) or the
 * turn budget is spent. Sits in agent/, above backend/ and chat/. See docs/internals/agent.md. */
#ifndef LOCO_AGENT_H
#define LOCO_AGENT_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/tools.h"
#include "backend/backend.h"
#include "base/buf.h"
#include "base/status.h"

#define AGENT_DEFAULT_MAX_TURNS 10
#define AGENT_DEFAULT_TEMPERATURE 0.7
#define AGENT_DEFAULT_CONTEXT 51200    /* tokens */
#define AGENT_DEFAULT_MAX_TOKENS 4096  /* per model answer */
#define AGENT_MAX_DEPTH 2              /* Task sub-agents nest at most this deep */
#define AGENT_MAX_CALLS_PER_TURN 32    /* calls past this in one turn get an error result */
#define AGENT_MAX_PARALLEL 8           /* read-only calls running at once */
#define AGENT_ANSWER_MAX (4u << 20)    /* bytes of one model answer (text + tool arguments) */
#define AGENT_BYTES_PER_TOKEN 3        /* conservative estimate for code and prose */
#define AGENT_MIN_RESULT_BYTES 512     /* a result is never cut below this to fit the context */

/* The compiled-in copies of prompts/analyze_query.txt and prompts/explorer_rules.txt (a unit
 * test keeps them equal to the files). NUL-terminated, static. */
extern const char agent_default_task_template[];
extern const char agent_default_rules[];

typedef enum {
    AGENT_EV_TOOL = 0,   /* a tool call finished: tool, summary, duration_ms, is_error */
    AGENT_EV_NOTE,       /* something worth a line: turn limit, cloud takeover, sub-agent start */
    AGENT_EV_TURN_START, /* a model turn was sent (turn) */
    AGENT_EV_TURN,       /* it finished: duration_ms, prompt_tokens, gen_tokens, calls;
                            is_error when it failed */
} agent_event_type;

/* One event; every pointer is borrowed for the callback only. */
typedef struct {
    agent_event_type type;
    int depth;           /* 0: the main agent; 1, 2: Task sub-agents */
    int turn;            /* 1-based model turn of that agent */
    const char *tool;    /* TOOL: tool name as the model wrote it */
    const char *summary; /* TOOL: short one-line argument summary ("src/x.c", "grep 'foo'") */
    double duration_ms;  /* TOOL */
    bool is_error;       /* TOOL: the result is an error result */
    const char *text;    /* NOTE: the message; TOOL: first line of an error result, else NULL */
    long prompt_tokens;  /* TURN: as the backend reported them; -1 when unknown */
    long gen_tokens;     /* TURN: -1 when unknown */
    size_t calls;        /* TURN: tool calls in the answer */
} agent_event;

/* Called as things happen, possibly from tool worker threads, never two at once. */
typedef void (*agent_event_fn)(void *ctx, const agent_event *ev);

typedef struct {
    backend *backend;          /* borrowed, required */
    const char *model;         /* model name sent; NULL: the backend's default */
    const char *system_prompt; /* the training system prompt (borrowed, required) */
    const char *rules;         /* explorer rules template ({repo_root}, {os}, {date});
                                  NULL: agent_default_rules */
    const char *repo_root;     /* the repository the tools may read (required) */
    const char *out_dir;       /* where Write/Edit may write; NULL: nowhere (unless allow_write) */
    const char *answer_file;   /* where the answer goes (inside out_dir), or NULL */
    bool allow_write;          /* Write/Edit anywhere in the repository too */
    bool allow_bash_writes;    /* no lexical policy: Bash may write where Write may */
    bool unsafe_bash;          /* Bash even where the kernel cannot confine it fully */
    int max_turns;             /* model turns with tools for the main agent */
    int sub_max_turns;         /* ... for each Task sub-agent */
    double temperature;
    long context_tokens;       /* the model's context: tool results are cut to fit it */
    long max_tokens;           /* per model answer */
    int threads;               /* threads one tool may use (Grep) */
    const volatile int *cancel; /* nonzero: stop, agent_run returns LOCO_ERR_CANCELLED */
    agent_event_fn on_event;   /* may be NULL */
    void *event_ctx;
    const char *transcript_path; /* JSONL transcript, truncated at the start; NULL: none */
    /* Hybrid cloud takeover: when the main agent's turn budget is spent (or the context
     * overflows) this is called once; on LOCO_OK the loop goes on with a fresh budget of
     * max_turns on the (now cloud) backend. NULL: no takeover, a last turn without tools. */
    loco_status (*takeover)(void *ctx, loco_err *err);
    void *takeover_ctx;
    const agent_tool *const *tools; /* the tool table; NULL: agent_tools_all() */
    size_t n_tools;
    const char *os_name;       /* environment line; NULL: uname(2) */
    const char *date;          /* YYYY-MM-DD; NULL: today (UTC) */
} agent_config;

/* Defaults: max_turns 10, sub_max_turns 10, temperature 0.7, context 51200, max_tokens 4096,
 * threads 4; everything else zero/NULL. */
void agent_config_init(agent_config *cfg);

typedef struct {
    char *answer;             /* the final text (owned; "" when the model only wrote the file) */
    size_t answer_len;
    bool model_wrote_answer;  /* the model wrote answer_file itself with Write/Edit */
    bool answer_file_written; /* answer_file holds the answer (by the model or by loco) */
    int turns;                /* model turns of the main agent */
    size_t tool_calls;        /* all depths */
    size_t tool_errors;
    bool hit_turn_limit;      /* the budget ran out: the answer came from the last turn */
    bool took_over;           /* the cloud took over */
    double duration_ms;
} agent_result;

/* Runs the explorer on task (the user message, borrowed) under cfg (borrowed for the call).
 * On LOCO_OK *out holds the answer (release with agent_result_release) and, when
 * cfg->answer_file is set, that file holds it: written atomically by loco unless the model
 * already wrote it. Errors: LOCO_ERR_INVALID (bad config, or the model gave no answer),
 * LOCO_ERR_CANCELLED (cfg->cancel; no answer file is written), backend errors
 * (LOCO_ERR_UNAVAILABLE, LOCO_ERR_UPSTREAM, LOCO_ERR_TIMEOUT, LOCO_ERR_OVERFLOW),
 * sandbox errors (repo_root missing), LOCO_ERR_IO (answer file, transcript). *out is zeroed
 * first and is safe to release after any return. */
loco_status agent_run(const agent_config *cfg, const char *task, agent_result *out,
                      loco_err *err);
void agent_result_release(agent_result *r);

/* Replaces each "{key}" of tpl by its value (single pass: values are not scanned again);
 * unknown "{...}" stay as they are. Appends to out; buf errors only. */
loco_status agent_format(const char *tpl, const char *const *keys, const char *const *values,
                         size_t n, buf *out);

/* The task message: tpl (NULL: agent_default_task_template) with {project}, {question},
 * {output_file} and {repo} replaced, trailing whitespace removed. Appends to out. */
loco_status agent_task_prompt(const char *tpl, const char *project, const char *question,
                              const char *output_file, const char *repo, buf *out);

/* The system message agent_run sends: cfg->system_prompt, a blank line, the rules with
 * {repo_root}, {os}, {date} filled in. Appends to out. */
loco_status agent_system_prompt(const agent_config *cfg, const char *repo_root, buf *out);

/* One-line summary of a tool call's arguments for display (at most max bytes - 1, valid
 * UTF-8, no newlines): Read/Write/Edit the path (relative to repo_root when inside), Grep the
 * pattern and path, Glob the pattern, Bash the command, Task the description. */
void agent_summarize_call(const char *tool, const char *args_json, const char *repo_root,
                          char *out, size_t max);

#endif
