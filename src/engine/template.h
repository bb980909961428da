/* template.h: the Qwen3 ChatML chat template in C (engine layer): messages, tools and the
 * generation prompt rendered byte for byte as the model's own Jinja template renders them.
 * Works on its own small structs; the chat layer above converts its conversation into them. */
#ifndef LOCO_ENGINE_TEMPLATE_H
#define LOCO_ENGINE_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/status.h"

typedef enum {
    TMPL_ROLE_SYSTEM,
    TMPL_ROLE_USER,
    TMPL_ROLE_ASSISTANT,
    TMPL_ROLE_TOOL, /* a tool result; consecutive ones share one user turn */
} tmpl_role;

/* Which Jinja template is mirrored. Both share the tools section, user/system turns, tool
 * responses and tool-call blocks; they differ only in assistant history and the prompt tail. */
typedef enum {
    /* Qwen3 Instruct-2507 (non-thinking; LocoOperator-4B's base): assistant content verbatim,
     * reasoning_content ignored, bare generation prompt. The default. */
    TMPL_QWEN3_INSTRUCT_2507 = 0,
    /* The original Qwen3 hybrid template (tokenizer_config.json of Qwen3-0.6B..32B): <think>
     * blocks split out of assistant content, re-rendered after the last user query. */
    TMPL_QWEN3_HYBRID,
} tmpl_dialect;

typedef struct {
    const char *name;      /* function name, inserted as is */
    const char *arguments; /* JSON text of the arguments (an object, normally) */
    /* true: `arguments` is inserted byte for byte (the template's "arguments is string" branch,
     * as OpenAI clients send them); false: it is parsed and re-serialised as tojson does. */
    bool arguments_raw;
} tmpl_tool_call;

typedef struct {
    tmpl_role role;
    const char *content;           /* NULL renders as "" */
    const char *reasoning_content; /* NULL = absent; read by TMPL_QWEN3_HYBRID only */
    const tmpl_tool_call *tool_calls; /* assistant only; n_tool_calls entries */
    size_t n_tool_calls;
} tmpl_message;

typedef struct {
    const char *json; /* the tool definition as given (any JSON value), re-serialised by tojson */
} tmpl_tool;

typedef struct {
    tmpl_dialect dialect;
    bool add_generation_prompt; /* end with "<|im_start|>assistant\n" */
    /* TMPL_QWEN3_HYBRID only: the template variable enable_thinking=false, which puts an empty
     * "<think>\n\n</think>\n\n" after the generation prompt. */
    bool disable_thinking;
} tmpl_options;

/* Renders msgs[0..n) with the Instruct-2507 dialect, appending to `out` (not reset). All inputs
 * are borrowed. A first system message becomes the system turn; with n_tools > 0 that turn
 * carries the tools section (one tojson line per tool). Returns LOCO_ERR_INVALID (naming the
 * message or tool) when a tool or non-raw arguments JSON does not parse, LOCO_ERR_LIMIT or
 * LOCO_ERR_NOMEM from `out`. On error `out` may hold a partial prompt. */
loco_status tmpl_render(const tmpl_message *msgs, size_t n, const tmpl_tool *tools, size_t n_tools,
                        bool add_generation_prompt, buf *out, loco_err *err);

/* As tmpl_render with every option explicit; opts is borrowed. */
loco_status tmpl_render_opts(const tmpl_options *opts, const tmpl_message *msgs, size_t n,
                             const tmpl_tool *tools, size_t n_tools, buf *out, loco_err *err);

/* Appends the JSON text json[0..len) re-serialised as @huggingface/jinja's `tojson` filter
 * writes it (JSON.stringify of each scalar; ", " and ": " separators; integer-like object keys
 * first in ascending order, then the other keys in input order; non-ASCII kept raw; numbers in
 * JavaScript's shortest form). LOCO_ERR_INVALID when the text is not JSON. */
loco_status tmpl_tojson(buf *out, const char *json, size_t len, loco_err *err);

/* Picks the dialect that a model's own Jinja template text (GGUF tokenizer.chat_template)
 * corresponds to: TMPL_QWEN3_HYBRID when it handles reasoning_content, else Instruct-2507.
 * text may be NULL (Instruct-2507). */
tmpl_dialect tmpl_detect_dialect(const char *text);

#endif
