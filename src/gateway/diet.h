/* diet.h: the prompt diet of the local route. LocoOperator-4B was trained on a system prompt
 * and a plain task, not on Claude Code's <system-reminder> blocks (deferred-tool lists, skill
 * lists, model identity, attribution rules, ...: about 2,000 tokens around a 20-token task in
 * a sub-agent's first message). The diet drops the kinds that carry nothing the task needs,
 * keeps the rest, and moves the working directory and platform into the ENV line of the
 * training prompt. docs/internals/gateway.md lists every kind. Part of gateway/. */
#ifndef LOCO_GATEWAY_DIET_H
#define LOCO_GATEWAY_DIET_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/status.h"
#include "chat/chat.h"

/* Longest working directory / platform / shell value taken from an environment note. */
#define DIET_MAX_ENV_VALUE 1024

/* What a reminder is about (diet_classify). */
typedef enum {
    DIET_KEEP = 0,         /* anything not listed below: kept as it is */
    DIET_ENVIRONMENT,      /* "# Environment": working directory, platform, shell -> ENV line */
    DIET_DEFERRED_TOOLS,   /* tools loadable through ToolSearch (not offered to the model) */
    DIET_SKILLS,           /* skills for the Skill tool */
    DIET_MODEL_IDENTITY,   /* "You are powered by the model named ..." */
    DIET_MODEL_CHANGED,    /* "The model for this session has been changed to ..." */
    DIET_DATE,             /* "Today's date is ..." / "The current date is ..." */
    DIET_ATTRIBUTION,      /* commit / pull request attribution lines */
    DIET_TOKEN_BUDGET,     /* "<total_tokens>N tokens left</total_tokens>" */
    DIET_AGENT_TYPES,      /* "Available agent types for the Agent tool" */
    DIET_TIP,              /* "Tip: ..." batching hints */
    DIET_KIND_COUNT
} diet_kind;

/* The kind of one reminder, from the body between <system-reminder> and
 * </system-reminder> (body[0..n), leading whitespace ignored). Pure. */
diet_kind diet_classify(const char *body, size_t n);
/* "keep", "environment", "deferred_tools", ... (static). */
const char *diet_kind_str(diet_kind k);

typedef struct {
    size_t dropped[DIET_KIND_COUNT]; /* reminders dropped, per kind (dropped[DIET_KEEP] = 0) */
    size_t kept;                     /* reminders kept */
    size_t bytes_dropped;
    /* from the environment note; "" when absent (NUL-terminated, cut to fit) */
    char cwd[DIET_MAX_ENV_VALUE];
    char platform[64];
    char shell[64];
} diet_report;

/* The request the local model sees: a copy of req (everything but the system) whose user
 * text, tool results and role:"system" notes lose the reminders diet_classify marks for
 * dropping (a text block left empty is removed, and so is a message left empty), and whose
 * system is system_prompt followed, when an environment note named the working directory,
 * by "\n\nENV: Working directory is DIR (PLATFORM, SHELL)." as in LocoOperator's training
 * data. With keep_reminders the conversation is copied untouched and the system is
 * system_prompt alone. req is borrowed; *out is new (chat_request_free); rep may be NULL.
 * LOCO_ERR_NOMEM. */
loco_status diet_apply(const chat_request *req, const char *system_prompt, bool keep_reminders,
                       chat_request **out, diet_report *rep, loco_err *err);

/* Removes the dropped reminders from text[0..n) and appends the rest to out, with the
 * whitespace a removed reminder leaves at its seam trimmed. Counts into rep (may be NULL).
 * Exposed for tests and the fuzz target. */
loco_status diet_filter_text(const char *text, size_t n, buf *out, diet_report *rep);

#endif
