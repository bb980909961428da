/* prompt.h: a conversation to prompt token ids. The chat template (template.h) lays out the
 * turns; the text it inserts around messages is tokenized with special-token parsing, while
 * message content (user text, tool results, tool-call arguments) is tokenized as plain text,
 * so a file that contains "<|im_end|>" or "<tool_call>" can never become a control token. */
#ifndef LOCO_PROMPT_H
#define LOCO_PROMPT_H

#include "engine/template.h"
#include "engine/tokenizer.h"

/* Appends the prompt's ids to out. msgs/tools as for tmpl_render_opts (borrowed). */
loco_status prompt_tokenize_chat(const tok *t, const tmpl_options *opts, const tmpl_message *msgs,
                                 size_t n, const tmpl_tool *tools, size_t n_tools, tok_ids *out,
                                 loco_err *err);

#endif
