/* trained.h: the tools LocoOperator-4B was trained on (Claude Code's Read, Grep, Glob, Bash,
 * Write, Edit, Task) with the argument schemas its calls are held to, and the name list of the
 * gateway's tool reconciliation (Task <-> Agent; Grep, Glob, LS and Read onto Bash), in chat/ so
 * the gateway (gateway/reconcile.c) and the engine backend's constrained decoding
 * (backend/constrain_req.c) share one list without depending on each other. */
#ifndef LOCO_CHAT_TRAINED_H
#define LOCO_CHAT_TRAINED_H

#include <stdbool.h>
#include <stddef.h>

#include "chat/chat.h"

/* Read, Grep, Glob, Bash, Write, Edit, Task: names, descriptions and JSON Schemas as the model
 * writes their arguments (Claude Code's argument names; counts are non-negative integers, the
 * form reconciliation can map). Static; *out_n gets the count. */
const chat_tool *chat_trained_tools(size_t *out_n);

/* The trained tool named name (case-insensitive), also LS (an older Claude Code tool the
 * reconciliation maps); NULL when there is none. Static. */
const chat_tool *chat_trained_tool(const char *name);

/* One rename of reconciliation: a call of `from` the client does not offer becomes a call of
 * `to` when the client offers it. keep_args: the arguments pass as they are (so the offered
 * tool's schema applies to what the model writes); otherwise they are rewritten (into a Bash
 * command) and `from`'s trained schema applies. Names compare case-insensitively. */
typedef struct {
    const char *from;
    const char *to;
    bool keep_args;
} chat_tool_mapping;

/* Task -> Agent, Agent -> Task, Grep/Glob/LS/Read -> Bash. Static; *out_n gets the count. */
const chat_tool_mapping *chat_tool_mappings(size_t *out_n);

#endif
