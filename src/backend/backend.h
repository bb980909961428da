/* backend.h: one interface for every model server: complete(conversation, params) ->
 * stream of neutral events (chat/chat.h). Implementations: openai-http (llama-server, vLLM,
 * Ollama, loco; optionally speaking the qwen <tool_call> text dialect) and anthropic-http
 * (the cloud), engine (the in-process Qwen3 engine) and hybrid (local first, cloud fallback
 * by the gateway's rules in backend/policy.h). */
#ifndef LOCO_BACKEND_H
#define LOCO_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/status.h"
#include "chat/chat.h"
#include "engine/sampler.h"
#include "net/http_client.h"

typedef struct backend backend;

/* How a tool call the local model made fits what the caller can run (backend_fit_fn). */
typedef enum {
    BACKEND_FIT_KEEP = 0, /* pass it on as it is */
    BACKEND_FIT_MAPPED,   /* pass *out_name with the arguments appended to out_args instead */
    BACKEND_FIT_REJECT,   /* the caller cannot run it; why says so */
} backend_fit;

/* Fits one whole tool call name(args_json) of the local model to the tools req offers (the
 * gateway's tool reconciliation). Everything is borrowed; on MAPPED *out_name must stay valid
 * until the call of the hybrid returns (a string of req or a static one) and the new
 * arguments, a compact JSON object, are appended to out_args. why (why_size bytes) is always
 * NUL-terminated. */
typedef backend_fit (*backend_fit_fn)(void *ctx, const chat_request *req, const char *name,
                                      const char *args_json, const char **out_name,
                                      buf *out_args, char *why, size_t why_size);

/* Text a streaming hybrid call holds back before it passes a prose answer on (see
 * backend_call.stream). */
#define HYBRID_COMMIT_TEXT_BYTES 256

/* Per-call options; every field may be left zero. */
typedef struct {
    const volatile int *cancel;    /* nonzero aborts the call with LOCO_ERR_CANCELLED */
    long connect_timeout_ms;       /* 0: the backend's default */
    long idle_timeout_ms;          /* no byte for this long aborts with LOCO_ERR_TIMEOUT; 0: default */
    const char *model;             /* model name to send; NULL: req->model */
    const char *const *headers;    /* extra "Name: value" headers, NULL-terminated; may be NULL */
    /* qwen dialect only: a tool call that cannot be parsed even after repair. */
    loco_status (*on_bad_call)(void *ctx, const char *raw, size_t n, const char *reason);
    void *bad_call_ctx;
    /* engine only: a sticky-slot hint (Claude Code's x-claude-code-agent-id, else its
     * x-claude-code-session-id): the prefix cache keeps this key's last conversation warm
     * (evicted last). NULL: none. Borrowed for the call. */
    const char *cache_key;
    /* hybrid only: the caller streams. The local answer is held until it is known to be
     * usable, then passed on live: at its first good tool call, once it holds
     * HYBRID_COMMIT_TEXT_BYTES of text with no call, or at its end. false: held to its end
     * (a broken call anywhere in it can still be retried). */
    bool stream;
    /* hybrid only: fits each local tool call to the caller's tools (NULL: a call to a tool
     * the request does not offer is unusable) */
    backend_fit_fn fit_call;
    void *fit_ctx;
} backend_call;

/* What a finished (or failed) call learned, filled by backend_complete. */
typedef struct {
    int http_status;        /* upstream HTTP status, 0 when none */
    bool context_overflow;  /* the upstream said the prompt does not fit */
    bool got_events;        /* at least one event reached the callback */
    size_t bad_calls;       /* qwen dialect: tool calls reported to on_bad_call */
    size_t repaired_calls;  /* qwen dialect: tool calls that needed repair */
    long prompt_tokens;     /* prompt size the upstream reported with an overflow, else 0 */
    long context_tokens;    /* context size the upstream reported with an overflow, else 0 */
    /* hybrid only (NULL elsewhere): "local" or "fallback" (the cloud served), and for a
     * fallback the reason ("turn_limit", "media", "context", "takeover", "bad_tool_call",
     * "unmappable_tool", "context_overflow", "local_timeout", "local_down", "local_error");
     * static strings. */
    const char *route;
    const char *reason;
    size_t retries;         /* hybrid: unusable local answers that were tried again */
    double t_first_token;   /* hybrid: clock_now_ms() when the local answer that was passed on
                               produced its first text or tool call; 0 when none */
} backend_result;

typedef struct {
    const char *kind; /* "openai", "anthropic", "engine", "hybrid" */
    loco_status (*complete)(backend *b, const chat_request *req, const backend_call *call,
                            chat_event_fn cb, void *ctx, backend_result *out, loco_err *err);
    loco_status (*health)(backend *b, loco_err *err);
    /* exact prompt tokens of req as the server's tokenizer sees it; LOCO_ERR_UNSUPPORTED when
     * the server cannot tell */
    loco_status (*count_tokens)(backend *b, const chat_request *req, long *out_n, loco_err *err);
    void (*free)(backend *b);
} backend_ops;

struct backend {
    const backend_ops *ops;
    char *url; /* base URL, owned */
};

/* Streams req through b into cb. LOCO_OK once a whole answer arrived (MESSAGE_END seen);
 * LOCO_ERR_UNAVAILABLE (cannot connect), LOCO_ERR_TIMEOUT, LOCO_ERR_UPSTREAM (error status:
 * out->http_status set, err holds the upstream message), LOCO_ERR_OVERFLOW (context overflow),
 * LOCO_ERR_CANCELLED, or the callback's own status. req is borrowed. */
loco_status backend_complete(backend *b, const chat_request *req, const backend_call *call,
                             chat_event_fn cb, void *ctx, backend_result *out, loco_err *err);
/* Exact prompt token count from the server (llama-server's /tokenize for the openai backend
 * in qwen mode, count_tokens for anthropic). LOCO_ERR_UNSUPPORTED when it cannot tell. */
loco_status backend_count_tokens(backend *b, const chat_request *req, long *out_n,
                                 loco_err *err);
/* Quick liveness probe (GET of the server's health or models endpoint). */
loco_status backend_health(backend *b, loco_err *err);
void backend_free(backend *b); /* NULL ok */

typedef struct {
    bool qwen_text;              /* render tool calls/results as <tool_call>/<tool_response> text
                                    and parse them back out of the answer */
    const char *system_prompt;   /* qwen_text: replaces the system (copied) */
    const char *api_key;         /* sent as Authorization: Bearer; may be NULL (copied) */
    long default_idle_timeout_ms;
} backend_openai_opts;

/* An OpenAI-compatible server at base_url (before /v1). client is borrowed and must outlive
 * the backend. */
loco_status backend_openai_new(http_client *client, const char *base_url,
                               const backend_openai_opts *opts, backend **out, loco_err *err);

/* An Anthropic-compatible server at base_url (requests go to base_url/v1/messages). api_key is
 * sent as Authorization: Bearer and x-api-key (copied; may be NULL). */
loco_status backend_anthropic_new(http_client *client, const char *base_url, const char *api_key,
                                  backend **out, loco_err *err);

typedef struct {
    const char *model_path;    /* GGUF file (Qwen3 architecture); required */
    long ctx;                  /* context size in tokens (0: 51200) */
    int threads;               /* 0: every CPU this process may use */
    long batch;                /* prompt tokens per forward batch (0: 256) */
    const char *system_prompt; /* replaces req->system (copied); NULL keeps req->system */
    bool template_tools;       /* list req->tools in the chat template's tools section, as a
                                  plain Qwen3 model needs; LocoOperator-4B was trained without
                                  it (the tools are described in its system prompt) */
    bool nfc;                  /* NFC-normalise text like HF tokenizers (false: as llama.cpp) */
    uint64_t seed;             /* sampling seed; call k of the backend uses seed + k */
    int parallel;              /* sequences served at once (0: 4) */
    int queue_max;             /* calls allowed to wait beyond `parallel` before LOCO_ERR_BUSY
                                  (0: 2 * parallel; negative: none may wait) */
    long cache_mb;             /* prefix-cache memory cap in MiB: KV blocks no running sequence
                                  uses are evicted (least recently used first) beyond it
                                  (0: default, docs/internals/sched.md) */
    bool constrain;            /* constrained tool calls (engine/constrain.h, the tools from
                                  backend/constrain_req.h: the request's, else LocoOperator's
                                  trained ones); the CLI's default is on (--no-constrain) */
    bool parity;               /* llama.cpp-mirroring arithmetic (docs/internals/qwen3.md) instead
                                  of the fast path */
    const char *kv_type;       /* KV cache type: "f16" (NULL: default) or "q8_0" */
    uint32_t prefill_chunk;    /* prompt tokens per step while other sequences generate
                                  (0: adaptive, docs/internals/sched.md) */
} backend_engine_opts;

/* The in-process engine (docs/internals/backends.md, docs/internals/sched.md): maps the GGUF
 * once and serves up to `parallel` calls at once through a scheduler whose every step is one
 * forward pass over the decode tokens of all running sequences plus chunks of waiting prompts.
 * A shared prefix cache keyed by token prefix means an agent's next turn only computes the
 * tokens added since its previous turn, and a second sub-agent reuses every identical leading
 * block. Tool calls are parsed out of the model's text as openai-http does in qwen_text mode.
 * A call beyond parallel + queue_max fails at once with LOCO_ERR_BUSY; a call whose
 * call->cancel becomes nonzero stops within one decode step (LOCO_ERR_CANCELLED). opts is
 * borrowed (strings copied). */
loco_status backend_engine_new(const backend_engine_opts *opts, backend **out, loco_err *err);

/* Engine only: what `loco run` and raw completions need besides the events. Every field may
 * be zero. */
typedef struct {
    const int32_t *prompt_ids;  /* the prompt as ids (req's conversation is ignored) */
    size_t n_prompt_ids;
    const char *raw_prompt;     /* or as text without a template (special tokens recognised) */
    bool no_parse;              /* text deltas as generated: no tool-call parsing */
    bool ignore_eos;            /* generate past the end-of-turn tokens */
    const sampler_params *sampling; /* replaces req's temperature/top_p/top_k (and the seed)
                                       when set */
    const int32_t *force_ids;   /* teacher forcing: generated position k is fed force_ids[k]
                                   (the sampled ids are what on_token and the events see) */
    size_t n_force_ids;         /* with force_ids: that many positions (max_tokens ignored) */
    /* the logits each token is sampled from (n_vocab floats, borrowed during the call); it
     * runs on the engine's scheduler thread */
    void (*on_logits)(void *ctx, const float *logits, uint32_t n_vocab);
    /* the prompt ids, once known (borrowed during the call); non-OK ends the call */
    loco_status (*on_prompt)(void *ctx, const int32_t *ids, size_t n);
    /* each generated id (end-of-turn ids included only with ignore_eos); non-OK stops */
    loco_status (*on_token)(void *ctx, int32_t id);
    void *hook_ctx;
} backend_engine_run_opts;

/* complete() with the options above (ro may be NULL: then it is complete()). call and out may
 * be NULL. LOCO_ERR_INVALID for a non-engine b. */
loco_status backend_engine_run(backend *b, const chat_request *req,
                               const backend_engine_run_opts *ro, const backend_call *call,
                               chat_event_fn cb, void *ctx, backend_result *out, loco_err *err);
/* Logits per token (the vocabulary size) of an engine backend, 0 for another. */
size_t backend_engine_vocab(backend *b);

/* Totals since the backend started (for /metrics). A struct tag, not a typedef, because the
 * function that fills it has the same name: declare `struct backend_engine_stats st;`. */
struct backend_engine_stats {
    long queue_len;            /* calls waiting for a sequence slot */
    long active;               /* sequences running */
    long parallel;             /* the slot count */
    uint64_t requests;         /* calls accepted */
    uint64_t busy;             /* calls refused with LOCO_ERR_BUSY */
    uint64_t cancelled;        /* calls that ended LOCO_ERR_CANCELLED */
    uint64_t prompt_tokens;    /* prompt tokens of accepted calls (cached ones included) */
    uint64_t cache_hit_tokens; /* of those, reused from the prefix cache (not computed) */
    uint64_t gen_tokens;       /* tokens generated */
    double prompt_seconds;     /* forward-pass time spent on prompt tokens (each step's time
                                  shared among its tokens) */
    double gen_seconds;        /* forward-pass time spent on generated tokens */
    uint64_t kv_bytes;         /* KV cache memory held now (running sequences + prefix cache) */
    uint64_t cache_bytes;      /* of that, the prefix cache's blocks no sequence uses */
};
/* Fills *out; LOCO_ERR_INVALID when b is not an engine backend. */
loco_status backend_engine_stats(backend *b, struct backend_engine_stats *out);

/* The engine's tokenizer on text[0..n): special tokens (<|im_start|>, ...) recognised when
 * `special`, else all text is plain. *out_ids is malloc'd (caller frees; NULL when n is 0),
 * *out_n its length. LOCO_ERR_INVALID for a non-engine b. */
loco_status backend_engine_tokenize(backend *b, const char *text, size_t n, bool special,
                                    int32_t **out_ids, size_t *out_n, loco_err *err);
/* ids -> text, NUL-terminated in *out (malloc'd, caller frees); an invalid UTF-8 sequence at
 * the end is replaced by U+FFFD. LOCO_ERR_INVALID for an id outside the vocabulary or a
 * non-engine b. */
loco_status backend_engine_detokenize(backend *b, const int32_t *ids, size_t n, char **out,
                                      loco_err *err);
/* A raw prompt (no chat template; special tokens recognised) completed as /v1/completions
 * does: params supplies max_tokens, temperature, top_p, top_k, stop (its messages are
 * ignored); events are MESSAGE_START, TEXT_DELTA..., MESSAGE_END (no tool-call parsing).
 * Scheduled like complete() (BUSY, cancel, prefix cache). */
loco_status backend_engine_complete_text(backend *b, const char *prompt,
                                         const chat_request *params, const backend_call *call,
                                         chat_event_fn cb, void *ctx, backend_result *out,
                                         loco_err *err);

typedef struct {
    long max_local_turns;       /* assistant turns >= this go to the cloud (0: 10) */
    long local_ctx;             /* prompt tokens above this go to the cloud (0: 51200) */
    const char *fallback_model; /* model name the cloud is asked for (copied; NULL: the call's) */
    const char *system_prompt;  /* what the local model sees as system, for the size estimate
                                   (copied; NULL: req->system) */
    /* the local backend counts the rendered prompt exactly and cheaply (the engine): the
     * context rule uses backend_count_tokens instead of the estimate, before any compute */
    bool exact_count;
    /* with cloud NULL: the caller has a cloud of its own, so the turn-limit and media rules
     * apply (the gateway, which passes Anthropic bodies to the cloud byte for byte) */
    bool fallback_available;
} backend_hybrid_opts;

/* Local first, cloud fallback with the gateway's rules (backend/policy.h): the one
 * implementation of hold, retry and fall back (docs/internals/backends.md).
 *   - policy_local_refusal first ("turn_limit", "media", "context", or "takeover" after
 *     backend_hybrid_force_cloud);
 *   - the local answer is held until it is known to be usable (call->stream says when) and
 *     each tool call is fitted to the caller's tools (call->fit_call, e.g. the gateway's
 *     reconciliation); an unusable answer (unparseable call, unmappable or forbidden tool,
 *     no call where tool_choice demands one, no end) is tried POLICY_LOCAL_ATTEMPTS times;
 *   - a local failure or a second unusable answer falls back: to cloud, or, with cloud NULL,
 *     back to the caller: nothing reached cb, the call returns the local status
 *     (LOCO_ERR_INVALID for an unusable answer, LOCO_ERR_OVERFLOW with out->prompt_tokens and
 *     out->context_tokens for "context") with out->route "fallback" and out->reason set;
 *   - LOCO_ERR_BUSY (the engine's queue is full) and LOCO_ERR_CANCELLED return at once;
 *   - a failure after the answer was passed on returns its status with out->got_events set.
 * local and cloud (may be NULL) are borrowed and must outlive the hybrid backend (so one
 * hybrid per agent run is cheap); opts may be NULL. out->route and out->reason say who
 * served and why. */
loco_status backend_hybrid_new(backend *local, backend *cloud, const backend_hybrid_opts *opts,
                               backend **out, loco_err *err);
/* From now on every call of the hybrid backend b goes to the cloud (reason "takeover"): the
 * agent's cloud takeover at its turn limit. LOCO_ERR_INVALID when b is not a hybrid backend. */
loco_status backend_hybrid_force_cloud(backend *b);

/* Joins base and path without doubling or dropping the '/' (malloc'd; NULL on failure). base
 * is cut to its API root first (url_api_root_len: a trailing /v1 or full endpoint goes). */
char *backend_join_url(const char *base, const char *path);

#endif
