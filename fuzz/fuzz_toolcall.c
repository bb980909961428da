/* fuzz_toolcall.c: libFuzzer target for the qwen-text tool-call parser (chat/qwen.c).
 * The first byte picks a split position and a size limit; the rest is model output. Fed
 * whole and fed in two pieces, the parser must give the same events; every emitted
 * arguments string must be a JSON object. A violation aborts (that is the fuzzer's signal). */
#include "base/common.h"

#include "base/buf.h"
#include "base/json.h"
#include "chat/chat.h"
#include "chat/qwen.h"

typedef struct {
    buf desc; /* every decided event, in order, ids left out */
    int run; /* 0, or the event type of the text/thinking run being recorded */
} fz_sink;

static const chat_tool fz_tools[] = {
    {"Grep", NULL,
     "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\"},"
     "\"head_limit\":{\"type\":\"integer\"},\"-i\":{\"type\":\"boolean\"}}}"},
};

static loco_status fz_event(void *ctx, const chat_event *ev)
{
    fz_sink *s = ctx;
    switch (ev->type) {
    case CHAT_EV_TEXT_DELTA:
    case CHAT_EV_THINKING_DELTA:
        /* deltas of one run may be cut anywhere: record them as one run */
        if (s->run != (int)ev->type)
            buf_appends(&s->desc, ev->type == CHAT_EV_TEXT_DELTA ? "\nT:" : "\nK:");
        s->run = (int)ev->type;
        buf_append(&s->desc, ev->text, ev->len);
        return LOCO_OK;
    case CHAT_EV_TOOL_CALL_START:
        if (!ev->id || strncmp(ev->id, "toolu_", 6) || strlen(ev->id) != 30 || !ev->name)
            abort();
        buf_appendf(&s->desc, "\nS%d:%s", ev->index, ev->name);
        break;
    case CHAT_EV_TOOL_ARGS_DELTA: {
        json_t *v = json_parse(ev->text, ev->len, NULL);
        if (!json_is_object(v))
            abort();
        json_decref(v);
        buf_appendf(&s->desc, "\nA%d:", ev->index);
        buf_append(&s->desc, ev->text, ev->len);
        break;
    }
    case CHAT_EV_TOOL_CALL_END:
        buf_appendf(&s->desc, "\nE%d", ev->index);
        break;
    default:
        abort();
    }
    s->run = 0;
    return LOCO_OK;
}

static loco_status fz_bad(void *ctx, const char *raw, size_t n, const char *reason)
{
    fz_sink *s = ctx;
    s->run = 0;
    buf_appends(&s->desc, "\nB:");
    buf_append(&s->desc, raw, n);
    buf_appendf(&s->desc, "~%s", reason);
    return LOCO_OK;
}

static void fz_run(const char *text, size_t n, size_t cut, size_t max_call, buf *out)
{
    fz_sink s;
    memset(&s, 0, sizeof(s));
    buf_init(&s.desc, BUF_UNLIMITED);
    chat_qwen_parser_opts o = {fz_event, &s, fz_bad, fz_tools, 1, max_call};
    chat_qwen_parser *p = NULL;
    if (chat_qwen_parser_new(&o, &p))
        abort();
    if (chat_qwen_parser_feed(p, text, cut) || chat_qwen_parser_feed(p, text + cut, n - cut) ||
        chat_qwen_parser_finish(p))
        abort();
    buf_appendf(&s.desc, "\n#%zu/%zu/%zu", chat_qwen_parser_calls(p), chat_qwen_parser_repaired(p),
                chat_qwen_parser_bad(p));
    chat_qwen_parser_free(p);
    *out = s.desc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    size_t cut = data[0] % (n + 1);
    size_t max_call = (data[0] & 1) ? 48 : 0; /* odd first byte: a small call limit */
    buf whole, split;
    fz_run(text, n, n, max_call, &whole);
    fz_run(text, n, cut, max_call, &split);
    if (whole.len != split.len || memcmp(buf_str(&whole), buf_str(&split), whole.len))
        abort();
    buf_release(&whole);
    buf_release(&split);
    return 0;
}
