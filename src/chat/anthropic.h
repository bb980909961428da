/* anthropic.h: the Anthropic Messages API codec. Wire JSON and SSE on one side, the neutral
 * model of chat.h on the other: request parse/write, the streaming SSE writer, the
 * non-stream message writer, and readers of upstream Anthropic answers (SSE and whole). */
#ifndef LOCO_CHAT_ANTHROPIC_H
#define LOCO_CHAT_ANTHROPIC_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/status.h"
#include "chat/chat.h"

/* max_tokens written when the request has none (the Messages API requires one). */
#define CHAT_ANTH_DEFAULT_MAX_TOKENS 4096

/* ---- requests ---- */

/* Parses a Messages API request body body[0..n) into a new chat_request (*out_req, the
 * caller frees it with chat_request_free; NULL on error). Errors are LOCO_ERR_INVALID with a
 * message naming the JSON path, e.g. "messages[3].content[1]: tool_use block needs a string
 * \"id\"", or the syntax position from json_parse; LOCO_ERR_NOMEM on allocation failure.
 * Accepts what Claude Code sends: role "system" messages, system as text blocks (joined with
 * "\n\n", cache_control ignored), unknown block types (kept as TEXT when they carry a
 * "text" string, else skipped), server tools (kept with a NULL schema), unknown top-level
 * fields (ignored). JSON null counts as absent for every optional field. Image and document
 * blocks become IMAGE/DOCUMENT blocks without their payload. */
loco_status chat_anth_parse_request(const char *body, size_t n, chat_request **out_req,
                                    loco_err *err);
/* chat_anth_parse_request with the Messages API's own checks when check is CHAT_CHECK_API
 * (or _API_COUNT), each a LOCO_ERR_INVALID naming the field: messages not empty; max_tokens
 * required (not for a count) and in 1..CHAT_MAX_TOKENS_LIMIT; temperature and top_p in
 * [0, 1]; metadata an object (user_id a string); thinking an object with a string type
 * ("enabled" needs an integer budget_tokens >= 1024 and below max_tokens); every content
 * block of a type the API defines; every tool_result answering a tool_use of the previous
 * assistant message (role "system" messages skipped). Unknown top-level fields still pass. */
loco_status chat_anth_parse_request_checked(const char *body, size_t n, chat_check check,
                                            chat_request **out_req, loco_err *err);

/* Appends req (borrowed) as a Messages API body to out: model, system, messages, tools,
 * tool_choice, max_tokens (CHAT_ANTH_DEFAULT_MAX_TOKENS when 0), temperature, top_p, top_k,
 * stop_sequences when set, stream. What the neutral model cannot carry upstream is written
 * as the API accepts it: IMAGE/DOCUMENT blocks as a text placeholder ("[image omitted]"),
 * THINKING blocks are left out (no signature is kept), empty text blocks and messages left
 * empty are left out, tools without a schema (server tools) are left out, tool_choice is
 * written only when tools are. LOCO_ERR_INVALID when a tool call's args_json or a tool's
 * schema_json is not a JSON object; LOCO_ERR_LIMIT/NOMEM from out. On error out may hold a
 * partial body. */
loco_status chat_anth_write_request(const chat_request *req, buf *out);

/* ---- errors ---- */

/* Appends {"type":"error","error":{"type":type,"message":message}} to out. */
loco_status chat_anth_write_error(buf *out, const char *type, const char *message);
/* The Anthropic error type for an HTTP status (static string): 400 invalid_request_error,
 * 401 authentication_error, 403 permission_error, 404 not_found_error, 413
 * request_too_large, 429 rate_limit_error, other 4xx invalid_request_error, 503 and 529
 * overloaded_error, other statuses api_error. */
const char *chat_anth_error_type(int http_status);

/* ---- streaming writer: neutral events -> Anthropic SSE ---- */

typedef struct {
    buf *out;            /* borrowed; SSE text is appended here */
    const char *model;   /* borrowed; reported in message_start */
    bool started;        /* message_start written */
    bool finished;       /* message_stop or error written: later events are ignored */
    int next_index;      /* Anthropic index of the next block */
    int open_kind;       /* block now open: 0 none, 1 text, 2 thinking, 3 tool_use */
    int open_tool;       /* neutral index of the open tool call */
    int tool_blocks;     /* tool_use blocks written */
    long input_tokens;   /* from MESSAGE_START; -1 when unknown */
    char pending[4];     /* trailing bytes of a UTF-8 sequence split across deltas */
    size_t n_pending;
} chat_anth_sse_writer;

/* Prepares w to append to out (borrowed, must outlive w). model (borrowed, may be NULL: the
 * MESSAGE_START event's model is used then) is the name reported in message_start. */
void chat_anth_sse_init(chat_anth_sse_writer *w, const char *model, buf *out);
/* chat_event_fn (ctx = the chat_anth_sse_writer): appends the SSE for ev. Synthesises
 * message_start when the first event is not MESSAGE_START; opens text/thinking blocks
 * lazily and closes the open block before another starts; ends thinking blocks with an empty
 * signature_delta; MESSAGE_END closes the open block and writes message_delta and
 * message_stop; ERROR writes an error event. Events after message_stop or error are ignored.
 * UTF-8 split across deltas is reassembled; invalid UTF-8 becomes U+FFFD. LOCO_ERR_INVALID
 * for arguments of a tool call that is not the open one; LOCO_ERR_LIMIT/NOMEM from out. */
loco_status chat_anth_sse_on_event(void *w, const chat_event *ev);
/* True once message_start was written (after that an HTTP error status can't be sent). */
bool chat_anth_sse_started(const chat_anth_sse_writer *w);

/* ---- non-stream writer ---- */

/* Appends the whole message JSON for a finished answer a (borrowed) to out:
 * {"id","type":"message","role":"assistant","model","content":[...],"stop_reason",
 * "stop_sequence","usage":{"input_tokens","output_tokens",cache fields when nonzero}}.
 * model NULL means a->model. Missing ids are generated; empty arguments become {}; a stop
 * reason of NONE becomes tool_use when the answer has tool calls, else end_turn.
 * LOCO_ERR_INVALID when a tool call's arguments are not a JSON object. a->failed is not
 * looked at: the caller writes an error instead. */
loco_status chat_anth_write_message(const chat_answer *a, const char *model, buf *out);

/* ---- reading upstream Anthropic answers into neutral events ---- */

typedef struct {
    chat_event_fn cb;
    void *ctx;
    bool started;        /* MESSAGE_START emitted */
    bool done;           /* message_stop or error seen */
    int n_tools;         /* tool calls started so far (the next neutral index) */
    long block_index;    /* Anthropic index of the open block; -1 when none */
    int block_kind;      /* 0 other/none, 1 text, 2 thinking, 3 tool_use */
    bool tool_had_delta; /* the open tool block received input_json_delta */
    char *tool_initial;  /* the open tool block's non-empty start input (compact JSON) */
    chat_stop stop;
    char *stop_sequence;
    chat_usage usage;
} chat_anth_stream_reader;

/* Prepares r to emit events to cb(ctx, ...) (borrowed). Release with
 * chat_anth_stream_release. */
void chat_anth_stream_init(chat_anth_stream_reader *r, chat_event_fn cb, void *ctx);
/* Feeds one SSE event: its name (event; NULL, "" or "message" means: use data's "type") and
 * its data payload data[0..n). Emits the matching neutral events: tool calls are numbered
 * 0, 1, ... in the order they start; message_stop emits MESSAGE_END with the stop reason and
 * usage of the message_delta(s); error emits ERROR; ping emits PING; unknown events and
 * events after the end are ignored. Returns LOCO_ERR_INVALID (err names the event) for
 * malformed data, or the status a callback returned. */
loco_status chat_anth_stream_feed(chat_anth_stream_reader *r, const char *event, const char *data,
                                  size_t n, loco_err *err);
/* True once message_stop or an error event was seen. */
bool chat_anth_stream_done(const chat_anth_stream_reader *r);
/* Frees what r holds; r can be initialised again. */
void chat_anth_stream_release(chat_anth_stream_reader *r);

/* Parses a whole non-stream response body body[0..n) and emits the same events as the
 * stream would (MESSAGE_START .. MESSAGE_END; an {"type":"error"} body emits ERROR).
 * LOCO_ERR_INVALID with err set for malformed bodies, or the status a callback returned. */
loco_status chat_anth_parse_message(const char *body, size_t n, chat_event_fn cb, void *ctx,
                                    loco_err *err);

#endif
