/* policy.c: the routing rules shared by the gateway and the hybrid backend (policy.h). */
#include "base/common.h"

#include "backend/policy.h"

long policy_estimate_tokens(const char *system_prompt, const chat_request *req)
{
    const char *sys = system_prompt ? system_prompt : req->system;
    size_t bytes = sys ? strlen(sys) : 0;
    size_t turns = req->n_msgs + 1;
    for (size_t i = 0; i < req->n_msgs; i++) {
        const chat_message *m = &req->msgs[i];
        for (size_t j = 0; j < m->n_blocks; j++) {
            const chat_block *b = &m->blocks[j];
            if (b->text)
                bytes += strlen(b->text);
            if (b->name)
                bytes += strlen(b->name) + 40;
            if (b->args_json)
                bytes += strlen(b->args_json);
            if (b->type == CHAT_BLOCK_TOOL_RESULT)
                bytes += 40;
        }
    }
    return (long)((bytes * 2 + 6) / 7) + (long)turns * 5;
}

const char *policy_local_refusal(const chat_request *req, const policy_config *cfg,
                                 long *out_est)
{
    long max_turns = cfg->max_local_turns > 0 ? cfg->max_local_turns
                                              : POLICY_DEFAULT_MAX_LOCAL_TURNS;
    long ctx = cfg->local_ctx > 0 ? cfg->local_ctx : POLICY_DEFAULT_LOCAL_CTX;
    long est = cfg->prompt_tokens > 0 ? cfg->prompt_tokens
                                      : policy_estimate_tokens(cfg->system_prompt, req);
    if (out_est)
        *out_est = est;
    if ((long)chat_request_assistant_turns(req) >= max_turns && cfg->cloud_available)
        return "turn_limit";
    if (chat_request_has_media(req) && cfg->cloud_available)
        return "media";
    if (est > ctx)
        return "context";
    return NULL;
}

const char *policy_failure_reason(loco_status rc)
{
    switch (rc) {
    case LOCO_ERR_OVERFLOW:
        return "context_overflow";
    case LOCO_ERR_TIMEOUT:
        return "local_timeout";
    case LOCO_ERR_UNAVAILABLE:
        return "local_down";
    default:
        return "local_error";
    }
}

bool policy_server_failed(loco_status rc, int http_status)
{
    return rc == LOCO_ERR_UNAVAILABLE || rc == LOCO_ERR_TIMEOUT ||
           (rc == LOCO_ERR_UPSTREAM && http_status >= 500);
}
