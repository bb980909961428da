/* openai_int.h: what the files of the OpenAI codec share (chat/openai_*.c only; the rest of
 * the program includes chat/openai.h). */
#ifndef LOCO_CHAT_OPENAI_INT_H
#define LOCO_CHAT_OPENAI_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "chat/openai.h"

/* True when s[0..n) contains one of the phrases servers use when a prompt does not fit
 * (llama-server, vLLM, Ollama, OpenAI), case-insensitive. Defined in openai_answer_read.c. */
bool chat_oai_text_says_overflow(const char *s, size_t n);

#endif
