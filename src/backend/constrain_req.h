/* constrain_req.h: the constraint on one answer of the in-process engine, from the request:
 * which tools a <tool_call> may name (the offered ones, the names the gateway's reconciliation
 * maps onto them, or LocoOperator-4B's trained tools when none are offered) with which argument
 * schemas, and whether tool_choice forces or forbids a call. Backend layer, over
 * engine/constrain.h and chat/trained.h. */
#ifndef LOCO_BACKEND_CONSTRAIN_REQ_H
#define LOCO_BACKEND_CONSTRAIN_REQ_H

#include "base/status.h"
#include "chat/chat.h"
#include "engine/constrain.h"

/* The tools and mode of req: with tools offered, each offered tool (name, input schema), then
 * each name reconciliation maps onto an offered tool that is not offered itself (Task <->
 * Agent with the offered tool's schema; Grep, Glob, LS, Read with their trained schemas when
 * Bash is offered); without tools, the trained tools. tool_choice any -> CONSTRAIN_FORCE; a
 * named tool that is offered -> that tool alone, forced; none -> CONSTRAIN_NO_CALLS.
 * *out_tools is a malloc'd array (free it) whose strings are borrowed from req or static.
 * LOCO_ERR_NOMEM. */
loco_status constrain_req_tools(const chat_request *req, constrain_tool **out_tools, size_t *out_n,
                                constrain_mode *out_mode);

/* A constraint for one answer to req (constrain_req_tools), over the shared tables v (borrowed,
 * built by constrain_vocab_new for t), closing an open call within max_tokens (0: no limit).
 * *out is freed with constrain_free. Errors as constrain_new gives them. */
loco_status constrain_req_new(const tok *t, const constrain_vocab *v, const chat_request *req,
                              long max_tokens, constrain **out, loco_err *err);

#endif
