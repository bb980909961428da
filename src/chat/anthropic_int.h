/* anthropic_int.h: what the files of the Anthropic codec share (chat/anthropic_*.c only;
 * the rest of the program includes chat/anthropic.h). */
#ifndef LOCO_CHAT_ANTHROPIC_INT_H
#define LOCO_CHAT_ANTHROPIC_INT_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>

#include "base/buf.h"
#include "base/status.h"
#include "chat/anthropic.h"

/* Kinds of content block, as chat_anth_sse_writer.open_kind and
 * chat_anth_stream_reader.block_kind record them. */
enum { KIND_NONE = 0, KIND_TEXT, KIND_THINKING, KIND_TOOL };

/* Integer value of v (an integer, or a real with an integral value in range). */
static inline bool chat_anth_int_value(const json_t *v, long *out_v)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < LONG_MIN || x > LONG_MAX)
            return false;
        *out_v = (long)x;
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d > -9007199254740992.0 && d < 9007199254740992.0) || d != (double)(long)d)
            return false;
        *out_v = (long)d;
        return true;
    }
    return false;
}

/* Appends {"type":"tool_use","id":ID,"name":NAME,"input":ARGS without the closing brace
 * (request messages and whole answers both carry tool_use blocks). ARGS is args_json
 * compacted ({} when NULL or ""); LOCO_ERR_INVALID when it is not a JSON object; buf errors
 * pass through. Defined in anthropic_request_write.c. */
loco_status chat_anth_put_tool_use(buf *out, const char *id, const char *name,
                                   const char *args_json);

#endif
