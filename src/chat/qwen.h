/* qwen.h: the qwen-text codec. How a model trained on <tool_call>/<tool_response> text
 * (LocoOperator-4B, Qwen3) sees a neutral conversation, and a streaming parser that turns
 * its raw text output back into neutral events. Sits in chat/, below backend/. */
#ifndef LOCO_CHAT_QWEN_H
#define LOCO_CHAT_QWEN_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/status.h"
#include "chat/chat.h"

/* ---- what the model sees: one set of rules for every local path ---- */

/* A neutral conversation as the parts the local model sees, in order: the one place that says
 * which blocks are shown and how (docs/internals/qwen.md). chat_qwen_render writes them as text
 * (the openai-http backend in qwen_text mode); the engine backend lays them out through the
 * model's chat template (tool calls as the template's tool_calls, results as tool messages). */
typedef enum {
    CHAT_QWEN_TEXT,   /* text of a user or assistant turn */
    CHAT_QWEN_CALL,   /* a tool call (name, args_json) */
    CHAT_QWEN_RESULT, /* a tool result (text; is_error) */
} chat_qwen_part_kind;

typedef struct {
    chat_qwen_part_kind kind;
    bool assistant;        /* part of an assistant turn (else a user turn; results always are) */
    const char *text;      /* TEXT, RESULT (without any "Error: " prefix); never NULL */
    bool is_error;         /* RESULT */
    const char *name;      /* CALL (never NULL) */
    const char *args_json; /* CALL: as given (NULL or empty: {}) */
    size_t msg;            /* index of the message it comes from (for errors) */
} chat_qwen_part;

typedef struct {
    chat_qwen_part *parts;
    size_t n;
    char **owned; /* strings made here (wrapped notes) */
    size_t n_owned;
} chat_qwen_parts;

/* The parts of req's messages (the system prompt is not one): THINKING dropped, empty TEXT
 * skipped, IMAGE / DOCUMENT as "[image omitted]" / "[document omitted]" text, a
 * CHAT_ROLE_SYSTEM message as one user text part "<system-reminder>\n" + its blocks rendered as
 * text and joined with "\n" + "\n</system-reminder>" (not wrapped again when it already starts
 * with that tag). Strings are borrowed from req (which must outlive *out) or owned by *out.
 * LOCO_ERR_NOMEM, LOCO_ERR_INVALID (a note's tool call whose arguments are not JSON). */
loco_status chat_qwen_parts_build(const chat_request *req, chat_qwen_parts *out, loco_err *err);
void chat_qwen_parts_release(chat_qwen_parts *p);

/* Renders req for a model trained on <tool_call>/<tool_response> text (docs/internals/qwen.md).
 * req is borrowed. On success *out_req is a new request the caller frees with
 * chat_request_free: its system is system_prompt (copied; NULL keeps req->system), and
 * each message holds exactly one TEXT block, roles USER or ASSISTANT only:
 *   - TEXT -> its text; TOOL_RESULT -> "<tool_response>\n" text "\n</tool_response>"
 *     ("Error: " prefixed to text when is_error); TOOL_CALL -> chat_qwen_append_tool_call;
 *     THINKING dropped; IMAGE / DOCUMENT -> "[image omitted]" / "[document omitted]";
 *     the parts of one message joined with "\n" in block order, empty TEXT parts skipped;
 *   - a CHAT_ROLE_SYSTEM message becomes a user part "<system-reminder>\n" text
 *     "\n</system-reminder>" (not wrapped again when it already starts with that tag),
 *     so it merges into the neighbouring user turn;
 *   - empty messages are dropped, then consecutive messages of one role merged with "\n".
 * model, max_tokens, temperature, top_p, top_k, stop and stream are copied; tools and
 * tool_choice are not (the model was trained without a tools section).
 * LOCO_ERR_INVALID when a tool call's args_json is not JSON; LOCO_ERR_NOMEM. */
loco_status chat_qwen_render(const chat_request *req, const char *system_prompt,
                             chat_request **out_req, loco_err *err);

/* Appends "<tool_call>\n{\"name\": NAME, \"arguments\": ARGS}\n</tool_call>" to out, ARGS
 * being args_json re-serialised like Python's json.dumps(ensure_ascii=False): ", " and ": "
 * separators, key order kept, non-ASCII kept as UTF-8, floats in shortest repr form.
 * NULL or empty args_json is {}. LOCO_ERR_INVALID when args_json is not JSON (nothing
 * appended); buf errors (LOCO_ERR_LIMIT, LOCO_ERR_NOMEM) as buf_append gives them. */
loco_status chat_qwen_append_tool_call(buf *out, const char *name, const char *args_json);

/* ---- streaming tool-call parser ---- */

typedef struct chat_qwen_parser chat_qwen_parser;

typedef struct {
    /* receives TEXT_DELTA, THINKING_DELTA, TOOL_CALL_START / TOOL_ARGS_DELTA / TOOL_CALL_END */
    chat_event_fn on_event;
    void *ctx;
    /* optional: called with ctx for a tool call whose body cannot be parsed even after
     * repair; raw[0..n) = the text between the tags (borrowed, valid during the call; cut
     * at max_call_bytes for an oversize call), reason = a short static-ish message. Its
     * non-OK status stops the parser like on_event's. */
    loco_status (*on_bad_call)(void *ctx, const char *raw, size_t n, const char *reason);
    const chat_tool *tools; /* optional, borrowed for the parser's life: schemas used to */
    size_t n_tools;         /* type XML-dialect parameter values */
    size_t max_call_bytes;  /* limit on one tool call body (0 = 1 MiB); past it: a bad call */
} chat_qwen_parser_opts;

/* New parser; opts is copied (its pointers stay borrowed). LOCO_ERR_INVALID without
 * on_event, LOCO_ERR_NOMEM. */
loco_status chat_qwen_parser_new(const chat_qwen_parser_opts *opts, chat_qwen_parser **out);
/* Feeds raw model text text[0..n) (borrowed). Events for everything that is decided are
 * emitted before it returns; only a possible partial tag, an incomplete UTF-8 sequence,
 * trailing whitespace of a text run and an unfinished tool call are held. Returns the first
 * non-OK status of a callback (or LOCO_ERR_NOMEM); after an error only _free is valid. */
loco_status chat_qwen_parser_feed(chat_qwen_parser *p, const char *text, size_t n);
/* End of output: flushes held text; an unterminated <tool_call> is parsed as if closed (if
 * it parses) else reported bad. Further feeds are LOCO_ERR_INVALID. */
loco_status chat_qwen_parser_finish(chat_qwen_parser *p);
size_t chat_qwen_parser_calls(const chat_qwen_parser *p);    /* tool calls emitted */
size_t chat_qwen_parser_repaired(const chat_qwen_parser *p); /* of which repaired */
size_t chat_qwen_parser_bad(const chat_qwen_parser *p);      /* bad calls reported */
/* NULL does nothing. */
void chat_qwen_parser_free(chat_qwen_parser *p);

#endif
