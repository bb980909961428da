/* openai.h: the OpenAI Chat Completions codec (chat/ layer). Wire JSON and SSE of
 * POST /v1/chat/completions <-> the neutral model of chat.h, both ways: requests we send to
 * local OpenAI-compatible servers and read back, and the gateway's own OpenAI front. */
#ifndef LOCO_CHAT_OPENAI_H
#define LOCO_CHAT_OPENAI_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/status.h"
#include "chat/chat.h"

/* Named limits on what untrusted bytes may make the codec hold. */
#define CHAT_OAI_MAX_STOP 16                     /* stop sequences in one request */
#define CHAT_OAI_MAX_STREAM_CALLS 256            /* tool calls in one streamed answer */
#define CHAT_OAI_MAX_PENDING_ARGS (8u << 20)     /* arguments buffered for one held-back call */
#define CHAT_OAI_MAX_ID 128                      /* message/call ids and model names kept */

/* ---- requests ---- */

/* Parses a /v1/chat/completions request body p[0..n) (borrowed). On LOCO_OK *out_req is a new
 * request the caller frees with chat_request_free. On bad input returns LOCO_ERR_INVALID with
 * a message naming the JSON path ("messages[2].tool_calls[0].function.name: ..."), and
 * *out_req is NULL. Unknown fields are ignored; JSON null counts as absent. */
loco_status chat_oai_parse_request(const char *body, size_t n, chat_request **out_req, loco_err *err);
/* chat_oai_parse_request with the checks the gateway's front makes when check is
 * CHAT_CHECK_API, each a LOCO_ERR_INVALID naming the field: messages not empty;
 * max_tokens / max_completion_tokens at most CHAT_MAX_TOKENS_LIMIT; temperature in [0, 2];
 * top_p in [0, 1]; every tool call's function.arguments a JSON object (text that is not
 * JSON is the client's error, not something to forward). */
loco_status chat_oai_parse_request_checked(const char *body, size_t n, chat_check check,
                                           chat_request **out_req, loco_err *err);

/* True when the body asks for stream_options.include_usage (chat_request has no field for
 * it). False for unparsable bodies. */
bool chat_oai_request_wants_usage(const char *body, size_t n);

typedef struct {
    const char *model; /* model name to send; NULL = req->model */
    bool stream;       /* also adds stream_options {"include_usage": true} */
    bool native_tools; /* write req->tools as "tools" + tool_choice; false = omit tools */
} chat_oai_write_opts;

/* Appends req (borrowed) to out as a chat/completions body. req->system goes first as a
 * system message; TEXT blocks of one message are joined with "\n" into one content string;
 * assistant TOOL_CALL blocks become tool_calls (arguments as a string); each TOOL_RESULT
 * becomes one role:"tool" message, placed before the user text of the same message, with
 * "Error: " prepended to its content when is_error; THINKING, IMAGE and DOCUMENT blocks are
 * dropped (callers route media elsewhere). max_tokens is written exactly as given (omitted
 * when 0). LOCO_ERR_INVALID when a tool schema is not valid JSON; buf errors pass through. */
loco_status chat_oai_write_request(const chat_request *req, const chat_oai_write_opts *opts, buf *out);

/* ---- reading an upstream answer ---- */

/* One streamed tool call as the server numbered it (internal to the reader). */
typedef struct {
    long server_index;  /* "index" as the server gave it */
    char *id;           /* malloc'd; NULL until known */
    char *name;         /* malloc'd; NULL until known */
    buf pending;        /* argument fragments not yet emitted (limit CHAT_OAI_MAX_PENDING_ARGS) */
    unsigned long last_seq; /* sequence number of its latest fragment */
    int event_index;    /* neutral index once started */
    bool started, ended;
} chat_oai_stream_call;

/* Turns the data payloads of an upstream chat.completion.chunk stream into neutral events.
 * Caller-owned; chat_oai_stream_init, then feed each SSE data payload, then
 * chat_oai_stream_finish at EOF, then chat_oai_stream_release. Tool calls come out one after
 * another (START, ARGS..., END), in the order they first appeared: a call starts once its
 * name is known and ends when two later fragments went to other calls or at finish_reason,
 * so a server that interleaves calls is buffered rather than split. Details and the
 * field mapping: docs/internals/openai.md. */
typedef struct {
    chat_event_fn cb;
    void *ctx;
    bool started;        /* MESSAGE_START sent */
    bool finished;       /* finish_reason seen: no more tool fragments expected */
    bool ended;          /* MESSAGE_END or ERROR sent */
    bool done;           /* [DONE] seen or ERROR sent: later payloads are ignored */
    chat_stop stop;      /* from finish_reason; NONE until seen */
    chat_usage usage;
    chat_oai_stream_call *calls; /* in the order they first appeared */
    size_t n_calls;
    size_t cap_calls;
    size_t next;         /* first call not yet ended */
    int n_emitted;       /* neutral index of the next call to start */
    unsigned long seq;   /* tool-call fragments seen */
} chat_oai_stream_reader;

/* cb(ctx, ev) receives the events; both are borrowed for the reader's life. */
void chat_oai_stream_init(chat_oai_stream_reader *r, chat_event_fn cb, void *ctx);
/* Feeds one SSE data payload data[0..n). "[DONE]" ends the answer (MESSAGE_END). An
 * {"error":...} payload becomes an ERROR event ("invalid_request_error" for a context
 * overflow, else "api_error") and ends the stream. Payloads after the end are ignored.
 * Returns the callback's status when it stops, LOCO_ERR_INVALID (err set) for a payload that
 * is not a JSON object or a tool call that cannot be placed, LOCO_ERR_LIMIT past a limit. */
loco_status chat_oai_stream_feed(chat_oai_stream_reader *r, const char *data, size_t n, loco_err *err);
/* At EOF: closes open tool calls and emits MESSAGE_END if not yet sent (stop from
 * finish_reason, or end_turn/tool_use when the server never said). LOCO_ERR_UPSTREAM when
 * the stream carried no chunk at all. */
loco_status chat_oai_stream_finish(chat_oai_stream_reader *r, loco_err *err);
/* True once MESSAGE_END or ERROR has been emitted. */
bool chat_oai_stream_done(const chat_oai_stream_reader *r);
/* Frees what the reader holds; r can be initialised again. */
void chat_oai_stream_release(chat_oai_stream_reader *r);

/* A whole non-stream chat.completion body -> the same events (MESSAGE_START .. MESSAGE_END),
 * or one ERROR event for an error body. LOCO_ERR_INVALID when it is neither. */
loco_status chat_oai_parse_response(const char *body, size_t n, chat_event_fn cb, void *ctx,
                                    loco_err *err);

/* True when an error body (any status) from llama-server, vLLM, Ollama or OpenAI says the
 * prompt does not fit the context window. Works on non-JSON bodies too. */
bool chat_oai_error_is_context_overflow(const char *body, size_t n);
/* Writes the human message of an error body into out[0..size) (NUL-terminated, truncated on
 * a UTF-8 boundary); "" when none. error.message, error (string), message or detail; a
 * non-JSON body is taken as the message itself. */
void chat_oai_error_message(const char *body, size_t n, char *out, size_t size);

/* ---- the OpenAI front: writing answers ---- */

/* Neutral events -> chat.completion.chunk SSE appended to out: "data: {...}\n\n" per chunk,
 * "data: [DONE]\n\n" after MESSAGE_END or ERROR. PING becomes an SSE comment ": ping\n\n".
 * Caller-owned; nothing to release. */
typedef struct {
    buf *out;               /* borrowed */
    char model[CHAT_OAI_MAX_ID]; /* from init, or the MESSAGE_START model when init had NULL */
    char id[CHAT_OAI_MAX_ID];    /* chunk id: the MESSAGE_START id, or a generated chatcmpl- */
    long created;           /* unix seconds written in every chunk; init sets the current time */
    bool include_usage;     /* write the usage chunk (choices []) before [DONE] */
    bool started;
    bool done;
    char pending[4];        /* trailing bytes of a UTF-8 sequence split across deltas */
    size_t n_pending;
    int pending_kind;       /* what pending belongs to: 0 none, 1 text, 2 thinking, 3 args */
    int pending_index;      /* tool call index for kind 3 */
} chat_oai_sse_writer;

/* model may be NULL (then the upstream's name is used); out is borrowed. */
void chat_oai_sse_init(chat_oai_sse_writer *w, const char *model, bool include_usage, buf *out);
/* chat_event_fn: w is the chat_oai_sse_writer. A role chunk is synthesised when the first
 * event is not MESSAGE_START; TOOL_CALL_END writes nothing; MESSAGE_END writes the
 * finish_reason chunk (stop/length/tool_calls), the usage chunk when asked, then [DONE];
 * ERROR writes {"error":{...}} then [DONE]. UTF-8 split across deltas is reassembled, invalid
 * UTF-8 becomes U+FFFD. Events after the end are ignored. Returns buf errors
 * (LOCO_ERR_LIMIT / LOCO_ERR_NOMEM). */
loco_status chat_oai_sse_on_event(void *w, const chat_event *ev);

/* Appends a non-stream chat.completion body for a finished answer (borrowed). model NULL =
 * a->model. When a->failed the error body of chat_oai_write_error is written instead (the
 * caller picks the HTTP status). */
loco_status chat_oai_write_response(const chat_answer *a, const char *model, buf *out);
/* Appends {"error":{"message":...,"type":...,"code":...}}; code is
 * "context_length_exceeded" when the message reads like a context overflow, else null. */
loco_status chat_oai_write_error(buf *out, const char *type, const char *message);

#endif
