/* record.h: `loco serve --record DIR`: appends every finished exchange to
 * DIR/exchanges-YYYYMMDD.jsonl (UTC date) as one JSON line that SFT trainers such as
 * MS-SWIFT read, in the <tool_call>/<tool_response> text form the local model trains on. */
#ifndef LOCO_GATEWAY_RECORD_H
#define LOCO_GATEWAY_RECORD_H

#include "base/status.h"
#include "chat/chat.h"

/* Largest line one exchange may produce; larger exchanges are refused (LOCO_ERR_LIMIT). */
#define RECORD_MAX_LINE (64u * 1024 * 1024)

typedef struct recorder recorder;

/* Creates dir (mkdir -p) and checks that a file can be created in it. system_prompt (may
 * be NULL: the client's own system text is kept) is copied: it becomes every line's system
 * message. On success *out is a new recorder to pass to record_close. LOCO_ERR_IO naming
 * the directory when it cannot be created or written; LOCO_ERR_NOMEM. */
loco_status record_open(const char *dir, const char *system_prompt, recorder **out,
                        loco_err *err);

/* Appends one line for the exchange req -> answer (both borrowed):
 *   {"messages":[{"role":"system","content":SYSTEM}, {"role":"user"|"assistant",
 *    "content":...}..., {"role":"assistant","content":ANSWER}],
 *    "tools":[{"type":"function","function":{"name","description","parameters"}}...],
 *    "id":id,"time":"YYYY-MM-DDTHH:MM:SSZ","route":route,"reason":reason,"model":model}
 * messages are chat_qwen_render(req, system_prompt); ANSWER is the answer's text blocks
 * joined with "\n", then "\n" when both text and tool calls exist, then each tool call as
 * chat_qwen_append_tool_call joined with "\n" (thinking dropped). "tools" is omitted when
 * req offers none; a tool without description or schema gets "" / {"type":"object",
 * "properties":{}}. NULL or "" id/route/reason/model are written as null.
 * Thread-safe: the line is built first, then written with one file_append under the
 * recorder's mutex. Errors: from chat_qwen_render (LOCO_ERR_INVALID for unparsable tool
 * arguments), LOCO_ERR_LIMIT past RECORD_MAX_LINE, LOCO_ERR_IO from the file. */
loco_status record_exchange(recorder *r, const chat_request *req, const chat_answer *answer,
                            const char *route, const char *reason, const char *model,
                            const char *id, loco_err *err);

/* NULL does nothing. */
void record_close(recorder *r);

#endif
