/* chat.h: the neutral conversation model (requests, messages, blocks, tools) and the
 * neutral event stream every backend produces and every codec consumes (DESIGN.md).
 * A chat_request owns all its strings through one arena; free it with chat_request_free. */
#ifndef LOCO_CHAT_H
#define LOCO_CHAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/arena.h"
#include "base/status.h"

typedef enum {
    CHAT_ROLE_SYSTEM = 0, /* a role:"system" message inside messages (not the top system) */
    CHAT_ROLE_USER,
    CHAT_ROLE_ASSISTANT,
} chat_role;
/* Tool results always live in USER messages as CHAT_BLOCK_TOOL_RESULT blocks: the OpenAI
 * parser folds consecutive role:"tool" messages into one user message. */

typedef enum {
    CHAT_BLOCK_TEXT = 0,
    CHAT_BLOCK_TOOL_CALL,   /* assistant tool_use / tool_calls[] */
    CHAT_BLOCK_TOOL_RESULT, /* user tool_result / role:"tool" */
    CHAT_BLOCK_THINKING,    /* assistant thinking / redacted_thinking */
    CHAT_BLOCK_IMAGE,       /* image (text-only models cannot take it) */
    CHAT_BLOCK_DOCUMENT,    /* document / file */
} chat_block_type;

typedef struct {
    chat_block_type type;
    const char *text;      /* TEXT, THINKING: the text; TOOL_RESULT: content flattened to text */
    const char *id;        /* TOOL_CALL: call id; TOOL_RESULT: id of the call it answers */
    const char *name;      /* TOOL_CALL: tool name */
    const char *args_json; /* TOOL_CALL: arguments, compact JSON object text */
    bool is_error;         /* TOOL_RESULT: the tool failed */
    bool has_media;        /* TOOL_RESULT: the content held an image or document */
} chat_block;

typedef struct {
    chat_role role;
    chat_block *blocks;
    size_t n_blocks;
    size_t cap_blocks;
} chat_message;

typedef struct {
    const char *name;
    const char *description;  /* may be NULL */
    const char *schema_json;  /* input schema as compact JSON object text; may be NULL */
} chat_tool;

typedef enum {
    CHAT_TOOL_CHOICE_AUTO = 0,
    CHAT_TOOL_CHOICE_ANY,  /* Anthropic "any" == OpenAI "required" */
    CHAT_TOOL_CHOICE_NONE,
    CHAT_TOOL_CHOICE_TOOL, /* one named tool */
} chat_tool_choice;

typedef struct {
    arena mem; /* owns every string and array below */

    const char *model;
    const char *system; /* top-level system text (blocks joined with "\n\n"), or NULL */
    chat_message *msgs;
    size_t n_msgs;
    size_t cap_msgs;
    chat_tool *tools;
    size_t n_tools;
    size_t cap_tools;

    chat_tool_choice tool_choice;
    const char *tool_choice_name; /* CHAT_TOOL_CHOICE_TOOL */
    bool parallel_tool_calls;     /* false when the client disabled parallel calls */

    long max_tokens;        /* 0 when the client gave none */
    bool has_temperature;
    double temperature;
    bool has_top_p;
    double top_p;
    long top_k;             /* 0 when not given */
    const char **stop;      /* stop sequences */
    size_t n_stop;
    bool stream;
} chat_request;

/* How much a front codec checks of a request beyond what it needs to read it. */
typedef enum {
    CHAT_CHECK_SHAPE = 0, /* anything that reads as a conversation (eval samples, tests) */
    CHAT_CHECK_API,       /* also the rules the real API enforces for a request it would
                             answer (the gateway's fronts): 400 instead of forwarding */
    CHAT_CHECK_API_COUNT, /* the same for a token count (Anthropic: max_tokens optional) */
} chat_check;

/* Largest max_tokens a checked request may ask for (well above any model's output limit;
 * it stops absurd values such as 1e18 reaching a server). */
#define CHAT_MAX_TOKENS_LIMIT 1048576L

/* New empty request (parallel_tool_calls true). NULL on allocation failure. */
chat_request *chat_request_new(void);
/* Frees req and everything it owns; NULL does nothing. */
void chat_request_free(chat_request *req);

/* Appends a message with the given role; returns it (owned by req) or NULL. Invalidates
 * earlier chat_message pointers of req. */
chat_message *chat_request_add_message(chat_request *req, chat_role role);
/* Appends a zeroed block to msg, storage from req's arena; NULL on failure. Invalidates
 * earlier chat_block pointers of msg. */
chat_block *chat_message_add_block(chat_request *req, chat_message *msg, chat_block_type type);
/* Appends a tool; strings are copied into req. NULL on failure. */
chat_tool *chat_request_add_tool(chat_request *req, const char *name, const char *description,
                                 const char *schema_json);
/* Copies s (n bytes) into req's arena; NULL on failure. */
const char *chat_strndup(chat_request *req, const char *s, size_t n);
const char *chat_strdup(chat_request *req, const char *s);

/* Number of assistant messages (the turn count the gateway's turn limit uses). */
size_t chat_request_assistant_turns(const chat_request *req);
/* True when any block is an image or document (or a tool result holding one). */
bool chat_request_has_media(const chat_request *req);
/* The tool named name, or NULL. */
const chat_tool *chat_request_find_tool(const chat_request *req, const char *name);
/* Deep copy (new arena). NULL on failure. */
chat_request *chat_request_clone(const chat_request *req);

/* ---- the neutral event stream ---- */

typedef enum {
    CHAT_EV_MESSAGE_START = 0, /* id, model, usage.input_tokens if known */
    CHAT_EV_TEXT_DELTA,        /* text[0..len) */
    CHAT_EV_THINKING_DELTA,    /* text[0..len) */
    CHAT_EV_TOOL_CALL_START,   /* index, id, name */
    CHAT_EV_TOOL_ARGS_DELTA,   /* index, text[0..len) = a fragment of the arguments JSON */
    CHAT_EV_TOOL_CALL_END,     /* index */
    CHAT_EV_MESSAGE_END,       /* stop, stop_sequence, usage */
    CHAT_EV_ERROR,             /* error_type (Anthropic error type), text = message */
    CHAT_EV_PING,              /* keep-alive, no payload */
} chat_event_type;

typedef enum {
    CHAT_STOP_NONE = 0,
    CHAT_STOP_END_TURN,
    CHAT_STOP_TOOL_USE,
    CHAT_STOP_MAX_TOKENS,
    CHAT_STOP_STOP_SEQUENCE,
} chat_stop;

typedef struct {
    long input_tokens;  /* -1 when unknown */
    long output_tokens; /* -1 when unknown */
    long cache_read_input_tokens;     /* 0 when unknown */
    long cache_creation_input_tokens; /* 0 when unknown */
} chat_usage;

/* One event. Every pointer is borrowed and valid only during the callback. */
typedef struct {
    chat_event_type type;
    int index;              /* tool call index, 0-based in the order calls started */
    const char *id;         /* MESSAGE_START: message id; TOOL_CALL_START: call id */
    const char *name;       /* TOOL_CALL_START: tool name */
    const char *model;      /* MESSAGE_START */
    const char *text;       /* deltas, ERROR message */
    size_t len;             /* bytes of text */
    chat_stop stop;         /* MESSAGE_END */
    const char *stop_sequence; /* MESSAGE_END with CHAT_STOP_STOP_SEQUENCE, else NULL */
    chat_usage usage;       /* MESSAGE_START (input) and MESSAGE_END */
    const char *error_type; /* ERROR: e.g. "overloaded_error", "api_error" */
} chat_event;

/* Event consumer. Returns LOCO_OK to continue; any other status stops the producer, which
 * returns that status. */
typedef loco_status (*chat_event_fn)(void *ctx, const chat_event *ev);

const char *chat_stop_str(chat_stop stop); /* "end_turn", ...; NULL for CHAT_STOP_NONE */
chat_stop chat_stop_parse(const char *s);  /* CHAT_STOP_NONE when unknown */
void chat_usage_init(chat_usage *u);       /* -1, -1, 0, 0 */

/* A fully received answer: text, thinking and tool calls in order, built from events.
 * Used by non-stream writers, the recorder and the agent loop. */
typedef struct {
    chat_block_type type; /* TEXT, THINKING or TOOL_CALL */
    char *text;           /* TEXT/THINKING text; TOOL_CALL arguments JSON text */
    size_t len;
    char *id;             /* TOOL_CALL */
    char *name;           /* TOOL_CALL */
} chat_answer_block;

typedef struct {
    char *id;
    char *model;
    chat_answer_block *blocks;
    size_t n_blocks;
    chat_stop stop;
    char *stop_sequence;
    chat_usage usage;
    bool failed;          /* an ERROR event arrived */
    char *error_type;
    char *error_message;
    size_t max_bytes;     /* limit on the total text kept (LOCO_ERR_LIMIT past it) */
    size_t bytes;
} chat_answer;

void chat_answer_init(chat_answer *a, size_t max_bytes);
void chat_answer_release(chat_answer *a);
/* chat_event_fn that accumulates into the chat_answer passed as ctx. Tool arguments deltas
 * are concatenated per index. */
loco_status chat_answer_on_event(void *ctx, const chat_event *ev);
/* Replays a finished answer as events (MESSAGE_START ... MESSAGE_END) into cb. */
loco_status chat_answer_replay(const chat_answer *a, chat_event_fn cb, void *ctx);
/* Number of TOOL_CALL blocks. */
size_t chat_answer_tool_calls(const chat_answer *a);

#endif
