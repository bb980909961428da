/* constrain.h: constrained decoding of tool calls (engine layer). Once the model opens
 * <tool_call>, only tokens that keep the body a JSON object {"name": <a known tool>,
 * "arguments": {...}} whose arguments fit that tool's JSON Schema (required properties present,
 * JSON types, enums), closed by "\n</tool_call>", are allowed; so every call the qwen parser
 * sees is valid by construction, whatever the weights. An incremental byte-level matcher plus
 * a token layer over the tokenizer's byte strings; the sampler asks it (sampler_set_constraint).
 * See docs/internals/constrain.md. */
#ifndef LOCO_ENGINE_CONSTRAIN_H
#define LOCO_ENGINE_CONSTRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/tokenizer.h"

/* Containers open at once in a call body (the call object itself counts). */
#define CONSTRAIN_MAX_DEPTH 32
/* Whitespace bytes in a row between JSON tokens. */
#define CONSTRAIN_MAX_WS 64
/* Default limit on a call body in bytes (the qwen parser refuses bodies over 1 MiB). */
#define CONSTRAIN_DEFAULT_MAX_BODY ((size_t)512 << 10)
/* Schema limits: nesting that is typed, properties per object, bytes of a property name, a
 * tool name or an enum value; past them the schema is read more permissively (see the doc). */
#define CONSTRAIN_MAX_SCHEMA_DEPTH 8
#define CONSTRAIN_MAX_PROPS 64
#define CONSTRAIN_MAX_LITERAL 256
#define CONSTRAIN_MAX_TOOLS 4096

/* One tool the model may call. */
typedef struct {
    const char *name;        /* exactly as the model must write it; non-empty UTF-8 */
    const char *schema_json; /* JSON Schema of its arguments (an object schema); NULL: any object */
} constrain_tool;

typedef enum {
    CONSTRAIN_AUTO = 0, /* text and tool calls as the model likes */
    CONSTRAIN_FORCE, /* the answer starts with a tool call (tool_choice any / required / named) */
    CONSTRAIN_NO_CALLS, /* <tool_call> may not be opened (tool_choice none) */
} constrain_mode;

/* Token tables of one tokenizer (bytes, flags, tokens sorted by bytes), built once and shared
 * read-only by every constrain object of that tokenizer, across threads. */
typedef struct constrain_vocab constrain_vocab;

typedef struct {
    constrain_mode mode;
    long max_tokens;              /* tokens the answer may have (0: no limit): an open call is
                                     steered to close before they run out */
    size_t max_body_bytes;        /* limit on one call body (0: CONSTRAIN_DEFAULT_MAX_BODY) */
    const constrain_vocab *vocab; /* shared tables, borrowed (NULL: constrain_new builds its own) */
    int32_t n_vocab;              /* vocab NULL only: the model's vocabulary size (0: the
                                     tokenizer's); ids past the tokenizer are never allowed */
} constrain_opts;

typedef struct constrain constrain;

/* Builds the token tables of t for a model of n_vocab tokens (0: the tokenizer's size): about
 * 100 ms and 40 bytes per token for Qwen3. t is borrowed and must outlive the tables.
 * *out is freed with constrain_vocab_free. */
loco_status constrain_vocab_new(const tok *t, int32_t n_vocab, constrain_vocab **out,
                                loco_err *err);
/* NULL does nothing. */
void constrain_vocab_free(constrain_vocab *v);

/* A constraint for one answer of one sequence. tools[0..n_tools) and opts are read during the
 * call only (names and schemas are copied); t (and opts->vocab) are borrowed and must outlive
 * *out. Tools with an empty name or a name JSON would escape, repeated names and schemas that
 * are not JSON are dropped (a schema that is not JSON becomes "any object"). With no usable
 * tool a call cannot be opened (CONSTRAIN_FORCE then fails with LOCO_ERR_INVALID).
 * LOCO_ERR_NOMEM, LOCO_ERR_LIMIT (more than CONSTRAIN_MAX_TOOLS tools). Not thread-safe: one
 * object per sequence. */
loco_status constrain_new(const tok *t, const constrain_tool *tools, size_t n_tools,
                          const constrain_opts *opts, constrain **out, loco_err *err);
/* NULL does nothing. */
void constrain_free(constrain *c);

/* Back to the start of an answer (same tools and mode), with max_tokens as in the options. */
void constrain_reset(constrain *c, long max_tokens);
/* Tokens the answer may still have, counting the next one (< 0: no limit). Each accepted
 * token counts one down. */
void constrain_set_budget(constrain *c, long tokens_left);

/* Vocabulary size the constraint answers for (the sampler's). */
int32_t constrain_n_vocab(const constrain *c);
/* True when token id may come next. Does not change the state (uses scratch space in c). */
bool constrain_allows(constrain *c, int32_t id);
/* Every allowed token as a bitset of constrain_n_vocab bits (bit i of word i / 64), owned by c
 * and valid until the next call on c; *out_n (may be NULL) = how many. */
const uint64_t *constrain_mask(constrain *c, size_t *out_n);
/* Advances past token id. LOCO_ERR_INVALID (state unchanged) when it is not allowed. */
loco_status constrain_accept(constrain *c, int32_t id);

/* Byte-level matcher, without token budget or body limit (tests, fuzzing): feeds p[0..n) and
 * returns how many leading bytes were accepted (n when all; the state stops before the first
 * rejected byte). */
size_t constrain_accept_bytes(constrain *c, const char *p, size_t n);

/* True inside a call (from <tool_call> to </tool_call>) or while a forced call has not begun. */
bool constrain_in_call(const constrain *c);
/* True when the answer may end now (no open or pending forced call). */
bool constrain_can_end(const constrain *c);
/* Calls closed so far. */
size_t constrain_calls(const constrain *c);
/* The shortest bytes that would close the open (or forced) call, borrowed until the next
 * change of c; "" outside a call. */
const char *constrain_completion(const constrain *c, size_t *out_len);

#endif
