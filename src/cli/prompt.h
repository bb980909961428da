/* prompt.h: the training system prompt of LocoOperator-4B, compiled in from
 * prompts/local_system.txt at build time (see CMakeLists.txt). */
#ifndef LOCO_CLI_PROMPT_H
#define LOCO_CLI_PROMPT_H

/* NUL-terminated, read-only. */
extern const char cli_local_system_prompt[];

#endif
