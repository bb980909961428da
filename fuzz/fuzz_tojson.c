/* fuzz_tojson.c: the chat template's tojson re-serialiser (engine/template.h) on arbitrary bytes:
 * never crashes, and whatever it accepts comes out as JSON that parses again and re-serialises to
 * the same text. */
#include "base/common.h"

#include <jansson.h>

#include "base/buf.h"
#include "engine/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    buf out;
    buf_init(&out, (size_t)1 << 24);
    loco_err err;
    loco_err_clear(&err);
    if (tmpl_tojson(&out, (const char *)data, size, &err) == LOCO_OK) {
        /* JavaScript prints 1e20 as 100000000000000000000: read integers as doubles */
        json_error_t je;
        json_t *v = json_loadb(buf_str(&out), out.len,
                               JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
        if (!v)
            abort(); /* accepted input must give valid JSON */
        json_decref(v);
        buf again;
        buf_init(&again, (size_t)1 << 24);
        if (tmpl_tojson(&again, buf_str(&out), out.len, &err) != LOCO_OK)
            abort();
        if (again.len != out.len || memcmp(buf_str(&again), buf_str(&out), out.len))
            abort(); /* tojson is idempotent */
        buf_release(&again);
    } else if (!err.msg[0]) {
        abort(); /* a refusal says why */
    }
    buf_release(&out);
    return 0;
}
