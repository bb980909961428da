/* fuzz_anthropic_request.c: libFuzzer target for chat/anthropic's parsers. Arbitrary bytes
 * into chat_anth_parse_request (whatever parses must write back and parse again, and the
 * writer's output must be a fixed point), chat_anth_parse_message (whatever parses must
 * write as a message) and chat_anth_stream_feed. */
#include "base/common.h"

#include "base/buf.h"
#include "chat/anthropic.h"

/* Written bodies are bounded: a written body is at most a few times its input. */
#define FUZZ_OUT_MAX ((size_t)64 << 20)
#define FUZZ_ANSWER_MAX ((size_t)16 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_request(const char *p, size_t n)
{
    chat_request *req = NULL;
    loco_err err;
    if (chat_anth_parse_request(p, n, &req, &err) != LOCO_OK)
        return;
    buf out;
    buf_init(&out, FUZZ_OUT_MAX);
    if (chat_anth_write_request(req, &out) != LOCO_OK)
        loco_assert_fail(__FILE__, __LINE__, "write_request failed on a parsed request");
    chat_request *again = NULL;
    if (chat_anth_parse_request(out.data, out.len, &again, &err) != LOCO_OK)
        loco_assert_fail(__FILE__, __LINE__, err.msg);
    buf out2;
    buf_init(&out2, FUZZ_OUT_MAX);
    if (chat_anth_write_request(again, &out2) != LOCO_OK || out2.len != out.len ||
        memcmp(out2.data, out.data, out.len) != 0)
        loco_assert_fail(__FILE__, __LINE__, "write(parse(write(x))) != write(x)");
    buf_release(&out2);
    chat_request_free(again);
    buf_release(&out);
    chat_request_free(req);
}

static void fuzz_message(const char *p, size_t n)
{
    chat_answer a;
    chat_answer_init(&a, FUZZ_ANSWER_MAX);
    loco_err err;
    if (chat_anth_parse_message(p, n, chat_answer_on_event, &a, &err) == LOCO_OK && !a.failed) {
        buf out;
        buf_init(&out, FUZZ_OUT_MAX);
        if (chat_anth_write_message(&a, NULL, &out) != LOCO_OK)
            loco_assert_fail(__FILE__, __LINE__, "write_message failed on a parsed message");
        buf_release(&out);
    }
    chat_answer_release(&a);
}

/* The first byte picks the event name; the rest is its data. */
static void fuzz_stream(const char *p, size_t n)
{
    static const char *const names[] = {"message_start", "content_block_start",
                                        "content_block_delta", "content_block_stop",
                                        "message_delta", "message_stop", "error", "ping", NULL};
    if (n == 0)
        return;
    chat_answer a;
    chat_answer_init(&a, FUZZ_ANSWER_MAX);
    chat_anth_stream_reader r;
    chat_anth_stream_init(&r, chat_answer_on_event, &a);
    loco_err err;
    const char *name = names[(unsigned char)p[0] % LOCO_ARRAY_LEN(names)];
    chat_anth_stream_feed(&r, name, p + 1, n - 1, &err);
    chat_anth_stream_feed(&r, "message_stop", "{}", 2, &err);
    chat_anth_stream_release(&r);
    chat_answer_release(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    fuzz_request(p, size);
    fuzz_message(p, size);
    fuzz_stream(p, size);
    return 0;
}
