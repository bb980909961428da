/* fuzz_openai_request.c: libFuzzer target for the OpenAI codec (chat/openai_*.c). The input is
 * parsed as a /v1/chat/completions body (and a parsed request must survive write -> parse),
 * then fed line by line to the upstream stream reader, whose events drive the front's SSE
 * writer and the answer accumulator. */
#include "base/common.h"

#include "base/buf.h"
#include "chat/chat.h"
#include "chat/openai.h"

#define FUZZ_OUT_MAX (1u << 22)

typedef struct {
    chat_oai_sse_writer sse;
    chat_answer answer;
} fuzz_sink;

static loco_status on_event(void *ctx, const chat_event *ev)
{
    fuzz_sink *s = ctx;
    loco_status rc = chat_oai_sse_on_event(&s->sse, ev);
    if (rc)
        return rc;
    return chat_answer_on_event(&s->answer, ev);
}

static void fuzz_request(const char *data, size_t size)
{
    chat_request *req = NULL;
    loco_err err;
    if (chat_oai_parse_request(data, size, &req, &err))
        return;
    chat_oai_write_opts o = {.model = NULL, .stream = true, .native_tools = true};
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    if (chat_oai_write_request(req, &o, &out) == LOCO_OK) {
        chat_request *again = NULL;
        if (chat_oai_parse_request(buf_str(&out), out.len, &again, &err))
            __builtin_trap(); /* what we write must read back */
        chat_request_free(again);
    }
    buf_release(&out);
    (void)chat_oai_request_wants_usage(data, size);
    chat_request_free(req);
}

static void fuzz_stream(const char *data, size_t size)
{
    buf out;
    buf_init(&out, FUZZ_OUT_MAX);
    fuzz_sink s;
    chat_oai_sse_init(&s.sse, "fuzz", true, &out);
    chat_answer_init(&s.answer, FUZZ_OUT_MAX);
    chat_oai_stream_reader r;
    chat_oai_stream_init(&r, on_event, &s);
    loco_err err;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n')
            continue;
        if (chat_oai_stream_feed(&r, data + start, i - start, &err))
            break;
        start = i + 1;
    }
    (void)chat_oai_stream_finish(&r, &err);
    (void)chat_oai_stream_done(&r);
    chat_oai_stream_release(&r);

    buf resp;
    buf_init(&resp, FUZZ_OUT_MAX);
    (void)chat_oai_write_response(&s.answer, NULL, &resp);
    buf_release(&resp);
    chat_answer_release(&s.answer);
    buf_release(&out);

    char msg[64];
    (void)chat_oai_error_is_context_overflow(data, size);
    chat_oai_error_message(data, size, msg, sizeof(msg));
    (void)chat_oai_parse_response(data, size, chat_answer_on_event, &s.answer, &err);
    chat_answer_release(&s.answer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_request((const char *)data, size);
    fuzz_stream((const char *)data, size);
    return 0;
}
