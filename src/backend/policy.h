/* policy.h: the local-or-cloud routing rules, as functions shared by the gateway's local
 * route (gateway/) and the hybrid backend (backend/hybrid.c): the prompt size estimate, the
 * refusals checked before the local model is tried, and the fallback reason a local failure
 * gives. One implementation, so `loco serve` and `loco ask --backend hybrid` decide alike. */
#ifndef LOCO_BACKEND_POLICY_H
#define LOCO_BACKEND_POLICY_H

#include <stdbool.h>

#include "base/status.h"
#include "chat/chat.h"

/* Defaults of the rules (LocoOperator-4B's recommendations). */
#define POLICY_DEFAULT_MAX_LOCAL_TURNS 10
#define POLICY_DEFAULT_LOCAL_CTX 51200
/* An unusable local answer (bad tool call, unmappable tool) is tried this many times in all
 * (the first try and one retry) before the cloud takes the request. */
#define POLICY_LOCAL_ATTEMPTS 2

typedef struct {
    long max_local_turns;      /* assistant turns >= this refuse local (<= 0: the default) */
    long local_ctx;            /* estimated prompt tokens above this refuse local (<= 0: default) */
    const char *system_prompt; /* the system the local model sees; NULL: req->system */
    bool cloud_available;      /* false: turn limit and media do not refuse (nowhere to go) */
    long prompt_tokens;        /* > 0: the exact prompt size (the local tokenizer's count of
                                  the rendered prompt), used instead of the estimate */
} policy_config;

/* Estimated prompt tokens of req as the local model sees it, system_prompt replacing
 * req->system (NULL: req->system is counted). Qwen's BPE averages about 3.5 bytes per token
 * over code and English, ChatML adds a few tokens per turn; an underestimate is caught by the
 * local side's own overflow error. Pure; req is borrowed. */
long policy_estimate_tokens(const char *system_prompt, const chat_request *req);

/* Why req must not go to the local model, checked in this order: "turn_limit" (assistant
 * turns >= max_local_turns, only with a cloud), "media" (an image or document, only with a
 * cloud), "context" (the prompt > local_ctx: cfg->prompt_tokens when known, else the estimate); NULL
 * when local may try. The result is a static string. *out_est (may be NULL) receives the
 * size the context rule used. */
const char *policy_local_refusal(const chat_request *req, const policy_config *cfg,
                                 long *out_est);

/* The fallback reason for a local call that failed with rc: "context_overflow"
 * (LOCO_ERR_OVERFLOW), "local_timeout", "local_down" (LOCO_ERR_UNAVAILABLE), else
 * "local_error". Static string. */
const char *policy_failure_reason(loco_status rc);

/* True when a failure says the local server itself is unwell (unreachable, timed out, or an
 * HTTP 5xx), as opposed to a problem with this one request. */
bool policy_server_failed(loco_status rc, int http_status);

#endif
