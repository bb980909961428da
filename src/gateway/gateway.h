/* gateway.h: `loco serve`: the Anthropic Messages API (and an OpenAI-compatible front) that
 * Claude Code points ANTHROPIC_BASE_URL at. Routes by model name to the local model pool or
 * the cloud, converts formats both ways, falls back to the cloud, records and measures. */
#ifndef LOCO_GATEWAY_H
#define LOCO_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>

#include "base/log.h"
#include "base/status.h"

/* The in-process engine of the local route (`loco serve --model`). */
typedef struct {
    const char *model_path;          /* GGUF file; NULL: no engine */
    long ctx;                        /* context per sequence in tokens (0: local_ctx) */
    int threads;                     /* 0: every CPU this process may use */
    int parallel;                    /* sequences served at once (0: 4) */
    int queue_max;                   /* calls waiting beyond parallel before 529 (0: 2*parallel) */
    long cache_mb;                   /* prefix-cache memory cap (0: the engine's default) */
    const char *kv_type;             /* "f16" (NULL) or "q8_0" */
    bool no_constrain;               /* tool-call constrained decoding off */
} gateway_engine_config;

typedef struct {
    const char *listen_host;         /* default "127.0.0.1" */
    int listen_port;                 /* 0: ephemeral (see gateway_port) */
    const char *const *local_urls;   /* OpenAI-compatible servers: the local pool (with the
                                        engine, when there is one) */
    size_t n_local_urls;
    const char *cloud_url;           /* Anthropic-compatible base; requests go to URL/v1/messages */
    const char *cloud_key;           /* the key's value (never logged); NULL/"": no cloud */
    const char *local_models;        /* comma-separated globs of model names served locally */
    const char *fallback_model;      /* model name sent to the cloud on fallback */
    long max_local_turns;            /* assistant turns >= this go to the cloud */
    long local_ctx;                  /* prompt tokens above this go to the cloud */
    long local_max_tokens;           /* cap on a local answer's max_tokens (0: the client's) */
    const char *record_dir;          /* NULL: no recording */
    const char *auth_token;          /* NULL: no client authentication */
    const char *system_prompt;       /* the local model's training system prompt (text) */
    size_t max_body;                 /* request body limit in bytes (default 32 MiB) */
    long ping_interval_ms;           /* streaming: commit + ping after this long without an
                                        answer, then ping at this interval (default 5000) */
    long local_idle_timeout_ms;      /* no byte from the local server for this long: give up
                                        (default 600000) */
    long health_interval_ms;         /* pool probes (default 5000) */
    long local_start_wait_ms;        /* for this long after the start, requests wait for a
                                        local server still loading its model (it answers 503;
                                        probed every ping interval) instead of falling back
                                        (0: 120000; <0: none; see pool_set_startup) */
    unsigned max_concurrency;        /* requests in flight beyond this get 529 (default 256) */
    unsigned max_connections;        /* client connections open at once; the request of one
                                        more is answered 503 and it is closed (default 1024) */
    unsigned idle_timeout_s;         /* a client connection must deliver each request within
                                        this many seconds of going idle (default 60) */
    gateway_engine_config engine;    /* the in-process engine (engine.model_path NULL: none) */
    bool keep_reminders;             /* no prompt diet on the local route (diet.h) */
    const loco_log *log;             /* request lines and warnings; may be NULL */
} gateway_config;

typedef struct gateway gateway;

/* Loads the engine (when cfg->engine.model_path is set), starts the local pool's health
 * checks and listens. cfg and everything it points to is copied. */
loco_status gateway_start(const gateway_config *cfg, gateway **out, loco_err *err);
int gateway_port(const gateway *gw);
/* Stops accepting, waits for in-flight requests, frees; NULL ok. */
void gateway_stop(gateway *gw);

#endif
