/* gateway_int.h: the gateway's own shared state; for src/gateway/ files only. */
#ifndef LOCO_GATEWAY_INT_H
#define LOCO_GATEWAY_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "backend/backend.h"
#include "base/buf.h"
#include "chat/anthropic.h"
#include "chat/chat.h"
#include "chat/openai.h"
#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "gateway/pool.h"
#include "gateway/record.h"
#include "net/http_client.h"
#include "net/http_server.h"

/* Limit on a buffered answer (non-stream responses, held events, recordings). */
#define GW_ANSWER_MAX ((size_t)64 << 20)

struct gateway {
    gateway_config cfg;      /* strings below are owned copies */
    char *listen_host;
    char **local_urls;
    char *cloud_url;
    char *cloud_key;
    char *local_models;
    char *fallback_model;
    char *record_dir;
    char *auth_token;
    char *system_prompt;
    char *cloud_messages_url;
    char *cloud_count_url;
    char *bearer_header;     /* "Authorization: Bearer KEY" */
    char *key_header;        /* "x-api-key: KEY" */
    char *model_path;        /* the engine's file (owned copy of cfg.engine.model_path) */
    char *kv_type;
    char *model_id;          /* the engine's model as /v1/models lists it; NULL: no engine */
    http_client *client;
    pool *pool;              /* the local backends (engine and/or --local-url), or NULL */
    backend *local;          /* pool_backend(pool), or NULL */
    backend *engine;         /* the engine member of the pool (borrowed), or NULL */
    backend *hybrid;         /* hold/retry/fallback over local; the gateway falls back itself */
    backend *cloud;
    recorder *rec;
    metrics *metrics;
    http_server *server;
    atomic_int in_flight;
};

typedef enum { FRONT_ANTHROPIC = 0, FRONT_OPENAI } gw_front;

/* One request/response exchange. The mutex guards everything written to the client, since
 * the pinger thread writes too. */
typedef struct {
    gateway *gw;
    const http_request *hreq;
    http_response *resp;
    gw_front front;
    bool stream;
    bool include_usage;      /* OpenAI front: stream_options.include_usage */
    const char *endpoint;
    char id[48];             /* msg_... : the response id and the log id */
    const char *model;       /* the model name the client asked for (borrowed) */
    double t0;
    double t_first;          /* first byte sent to the client, 0 until then */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool committed;          /* status line and headers sent */
    bool ended;
    bool raw_mode;           /* passthrough bytes flowing: no pings may be injected */
    double last_write;
    bool pinger_running;
    bool pinger_stop;
    pthread_t pinger;
    volatile int cancel;     /* set when the client is gone: aborts upstream requests */

    buf out;                 /* scratch for writer output */
    chat_anth_sse_writer aw;
    chat_oai_sse_writer ow;
    long est_input_tokens;   /* reported in message_start until the real count arrives */
    long overflow_prompt;    /* prompt tokens the local side reported with an overflow */
    long overflow_ctx;       /* its context size */
    double t_first_token;    /* local route: first token of the answer served (0: none) */

    /* for the log line, metrics and the recording */
    int status;
    const char *route;       /* "local", "cloud", "fallback", "none" */
    char reason[96];
    long in_tokens;
    long out_tokens;
    chat_answer answer;      /* the final answer as sent (for --record) */
    bool answer_ok;
} exchange;

void ex_init(exchange *ex, gateway *gw, const http_request *hreq, http_response *resp,
             gw_front front, const char *endpoint);
void ex_release(exchange *ex);
/* Starts the pinger thread. It notices a client that went away (setting cancel, which aborts
 * the upstream request) and, for streaming exchanges, after cfg.ping_interval_ms without a
 * committed answer commits (200, SSE) and sends a ping, then pings whenever the stream has
 * been quiet that long. */
void ex_start_pinger(exchange *ex);
void ex_stop_pinger(exchange *ex);
/* Streams one neutral event to the client through the front's SSE writer (committing the
 * response on the first bytes). Returns LOCO_ERR_CANCELLED once the client is gone. */
loco_status ex_event(exchange *ex, const chat_event *ev);
/* chat_event_fn wrapper around ex_event; ctx is the exchange. */
loco_status ex_on_event(void *ctx, const chat_event *ev);
/* Non-stream: sends the whole answer as the front's JSON (200). */
loco_status ex_send_answer(exchange *ex, const chat_answer *a);
/* An error in the front's shape: a status + JSON body before commit, an error event after. */
void ex_send_error(exchange *ex, int status, const char *type, const char *message);
/* The engine's queue is full: 529 overloaded_error (Anthropic front) or 503 (OpenAI front)
 * with retry-after, before commit; an error event after. */
void ex_send_busy(exchange *ex);
/* Sends a JSON body with a status (never commits a stream). */
void ex_send_json(exchange *ex, int status, const char *body, size_t len);
/* Raw passthrough: start with status/content type unless committed. */
loco_status ex_raw_start(exchange *ex, int status, const char *content_type);
loco_status ex_raw_write(exchange *ex, const char *p, size_t n);
/* Ends a committed stream. */
void ex_end(exchange *ex);
/* One log line and the metrics, then the end of the response (ex_end): a client holding the
 * whole answer finds it counted. */
void ex_finish(exchange *ex);

/* Events from a backend to the client: streamed through ex_event (MESSAGE_START gets the
 * exchange's id and model, and the estimate when the upstream gave no input size), or for a
 * non-stream exchange gathered and sent as one answer by gw_sink_finish. */
typedef struct {
    exchange *ex;
    chat_answer whole;
    double t_first_content; /* clock_now_ms() of the first text or tool call (0: none) */
} gw_sink;

void gw_sink_init(gw_sink *s, exchange *ex);
loco_status gw_sink_event(void *ctx, const chat_event *ev); /* ctx: the gw_sink */
/* A whole answer arrived: non-stream, send it (and keep it for the recording). */
void gw_sink_finish(gw_sink *s);
void gw_sink_release(gw_sink *s);

/* The cache key of a request: x-claude-code-agent-id, else x-claude-code-session-id
 * (borrowed from hreq), else NULL. */
const char *gw_cache_key(const http_request *hreq);

/* Outcome of trying the local route. */
typedef enum {
    LOCAL_DONE = 0,   /* answered (or the client went away) */
    LOCAL_FALLBACK,   /* ex->reason says why; nothing of the answer was sent */
} local_outcome;

/* The local route for req through the hybrid (refusals, hold, retry; the prompt diet and the
 * training prompt applied first). LOCAL_FALLBACK: ex->reason says why, nothing was sent. */
local_outcome gw_local_route(exchange *ex, const chat_request *req);
/* The request the local model sees (diet.h): a new request, or NULL after an error was
 * logged. */
chat_request *gw_local_request(gateway *gw, const chat_request *req, const char *id);
/* The local backends as the client sent it (its own system prompt, no diet, no fallback):
 * OpenAI-front requests for the engine's own model name, or any when no cloud is set, as
 * llama-server would answer them. */
void gw_direct_route(exchange *ex, const chat_request *req);
/* llama-server's POST /tokenize and /detokenize, and OpenAI POST /v1/completions, answered
 * by the engine (engine_api.c). */
void gw_handle_tokenize(gateway *gw, const http_request *hreq, http_response *resp);
void gw_handle_detokenize(gateway *gw, const http_request *hreq, http_response *resp);
void gw_handle_completions(gateway *gw, const http_request *hreq, http_response *resp);
/* The cloud route through the anthropic backend (events; OpenAI front). model: the name to
 * send. */
void gw_cloud_events(exchange *ex, const chat_request *req, const char *model);
/* The cloud route as a byte passthrough of an Anthropic body (Anthropic front). When
 * model is non-NULL the body's "model" is rewritten. */
void gw_cloud_passthrough(exchange *ex, const char *body, size_t len, const char *model);

#endif
