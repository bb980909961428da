/* openai_int.h: what the files of the OpenAI codec share (chat/openai_*.c only; the rest of
 * the program includes chat/openai.h). */
#ifndef LOCO_CHAT_OPENAI_INT_H
#define LOCO_CHAT_OPENAI_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/status.h"
#include "chat/openai.h"

/* True when s[0..n) contains one of the phrases servers use when a prompt does not fit
 * (llama-server, vLLM, Ollama, OpenAI), case-insensitive. Defined in openai_answer_read.c. */
bool chat_oai_text_says_overflow(const char *s, size_t n);

/* Appends one tool call in the shape requests and answers share, with a comma before it
 * unless first: {"id":ID,"type":"function","function":{"name":NAME,"arguments":ARGS}}.
 * ARGS is args[0..n) as a JSON string, "{}" when n is 0. buf errors pass through. Defined
 * in openai_request_write.c. */
loco_status chat_oai_put_tool_call(buf *out, bool first, const char *id, const char *name,
                                   const char *args, size_t n);

#endif
