/* test_sse.c: unit tests of net/sse: the incremental parser (line ends, fields, splits,
 * limits, callback stop, EOF) and the writer (round trip through the parser). */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "net/sse.h"

/* Events seen, rendered as "[event|data]" one after another. */
typedef struct {
    buf out;
    int stop_after; /* return LOCO_ERR_CANCELLED on this event number (1-based); 0 never */
    int count;
} seen;

static loco_status on_event(void *ctx, const char *event, const char *data, size_t len)
{
    seen *s = ctx;
    s->count++;
    assert_int_equal(data[len], '\0');
    assert_int_equal(buf_appendf(&s->out, "[%s|", event), LOCO_OK);
    assert_int_equal(buf_append(&s->out, data, len), LOCO_OK);
    assert_int_equal(buf_appendc(&s->out, ']'), LOCO_OK);
    return s->count == s->stop_after ? LOCO_ERR_CANCELLED : LOCO_OK;
}

/* Parses text whole and fed one byte at a time; both must give want. */
static void expect_events(const char *text, const char *want, bool want_leftover)
{
    for (int mode = 0; mode < 2; mode++) {
        seen s = {.stop_after = 0};
        buf_init(&s.out, BUF_UNLIMITED);
        sse_parser p;
        sse_parser_init(&p, 0, on_event, &s);
        loco_err err;
        size_t n = strlen(text);
        if (mode == 0) {
            assert_int_equal(sse_parser_feed(&p, text, n, &err), LOCO_OK);
        } else {
            for (size_t i = 0; i < n; i++)
                assert_int_equal(sse_parser_feed(&p, text + i, 1, &err), LOCO_OK);
        }
        bool left = !want_leftover;
        assert_int_equal(sse_parser_finish(&p, &left, &err), LOCO_OK);
        assert_string_equal(buf_str(&s.out), want);
        assert_int_equal(left, want_leftover);
        sse_parser_release(&p);
        buf_release(&s.out);
    }
}

static void test_sse_basic(void **state)
{
    (void)state;
    expect_events("event: message_start\ndata: {\"a\":1}\n\n", "[message_start|{\"a\":1}]", false);
    expect_events("data: x\n\n", "[|x]", false);
    expect_events("data:x\n\ndata:  two spaces\n\n", "[|x][| two spaces]", false);
}

static void test_sse_line_endings(void **state)
{
    (void)state;
    expect_events("data: a\r\n\r\ndata: b\r\rdata: c\n\n", "[|a][|b][|c]", false);
    expect_events("data: a\r\ndata: b\rdata: c\n\r\n", "[|a\nb\nc]", false);
}

static void test_sse_fields(void **state)
{
    (void)state;
    /* comments, id, retry, unknown fields, no-colon field, event without data */
    expect_events(": ping\nid: 7\nretry: 100\nfoo: bar\nevent: e1\n\ndata\n\n"
                  "event: e2\ndata: \ndata\n\n",
                  "[|][e2|\n]", false);
    /* the event type is reset after each dispatch */
    expect_events("event: a\ndata: 1\n\ndata: 2\n\n", "[a|1][|2]", false);
    /* a leading BOM is dropped */
    expect_events("\xEF\xBB\xBF" "data: bom\n\n", "[|bom]", false);
    /* empty data field and a lone colon comment */
    expect_events(":\ndata:\n\n", "[|]", false);
}

static void test_sse_eof(void **state)
{
    (void)state;
    expect_events("data: a\n\ndata: tail\n", "[|a]", true);
    expect_events("data: a\n\ndata: tai", "[|a]", true);
    expect_events("data: a\n\n", "[|a]", false);
    expect_events("", "", false);
    expect_events("data: a\n\nevent: x\n", "[|a]", true);
}

static void test_sse_split_crlf(void **state)
{
    (void)state;
    const char *text = "data: one\r\n\r\ndata: two\r\n\r\n";
    size_t n = strlen(text);
    for (size_t cut = 0; cut <= n; cut++) {
        seen s = {.stop_after = 0};
        buf_init(&s.out, BUF_UNLIMITED);
        sse_parser p;
        sse_parser_init(&p, 0, on_event, &s);
        assert_int_equal(sse_parser_feed(&p, text, cut, NULL), LOCO_OK);
        assert_int_equal(sse_parser_feed(&p, text + cut, n - cut, NULL), LOCO_OK);
        assert_string_equal(buf_str(&s.out), "[|one][|two]");
        assert_int_equal(s.count, 2);
        sse_parser_release(&p);
        buf_release(&s.out);
    }
}

static void test_sse_limit(void **state)
{
    (void)state;
    seen s = {.stop_after = 0};
    buf_init(&s.out, BUF_UNLIMITED);
    sse_parser p;
    sse_parser_init(&p, 16, on_event, &s);
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(sse_parser_feed(&p, "data: 0123456789\n\n", 18, &err), LOCO_OK);
    assert_int_equal(sse_parser_feed(&p, "data: 01234", 11, &err), LOCO_OK);
    assert_int_equal(sse_parser_feed(&p, "56789\ndata: 0123456789\n", 23, &err), LOCO_ERR_LIMIT);
    assert_int_equal(err.code, LOCO_ERR_LIMIT);
    assert_string_equal(err.msg, "SSE event larger than the 16-byte limit");
    /* sticky */
    assert_int_equal(sse_parser_feed(&p, "\n", 1, &err), LOCO_ERR_LIMIT);
    assert_string_equal(buf_str(&s.out), "[|0123456789]");
    assert_int_equal(sse_parser_finish(&p, NULL, &err), LOCO_ERR_LIMIT);
    /* finish resets: the parser reads a new stream */
    assert_int_equal(sse_parser_feed(&p, "data: ok\n\n", 10, &err), LOCO_OK);
    assert_string_equal(buf_str(&s.out), "[|0123456789][|ok]");
    sse_parser_release(&p);
    buf_release(&s.out);
}

static void test_sse_callback_stop(void **state)
{
    (void)state;
    seen s = {.stop_after = 2};
    buf_init(&s.out, BUF_UNLIMITED);
    sse_parser p;
    sse_parser_init(&p, 0, on_event, &s);
    const char *text = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    assert_int_equal(sse_parser_feed(&p, text, strlen(text), NULL), LOCO_ERR_CANCELLED);
    assert_string_equal(buf_str(&s.out), "[|1][|2]");
    assert_int_equal(sse_parser_feed(&p, "data: 4\n\n", 9, NULL), LOCO_ERR_CANCELLED);
    assert_int_equal(s.count, 2);
    sse_parser_release(&p);
    buf_release(&s.out);
}

static void test_sse_nul_in_data(void **state)
{
    (void)state;
    seen s = {.stop_after = 0};
    buf_init(&s.out, BUF_UNLIMITED);
    sse_parser p;
    sse_parser_init(&p, 0, on_event, &s);
    const char text[] = "data: a\0b\n\n";
    assert_int_equal(sse_parser_feed(&p, text, sizeof(text) - 1, NULL), LOCO_OK);
    assert_int_equal(s.out.len, 6);
    assert_memory_equal(s.out.data, "[|a\0b]", 6);
    sse_parser_release(&p);
    buf_release(&s.out);
}

static void test_sse_write(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(sse_write_event(&b, "ping", "{\"type\":\"ping\"}", 15), LOCO_OK);
    assert_string_equal(buf_str(&b), "event: ping\ndata: {\"type\":\"ping\"}\n\n");
    buf_reset(&b);
    assert_int_equal(sse_write_event(&b, NULL, "a\nb\r\nc\rd\n", 9), LOCO_OK);
    assert_string_equal(buf_str(&b), "data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n");
    buf_reset(&b);
    assert_int_equal(sse_write_event(&b, "", "", 0), LOCO_OK);
    assert_string_equal(buf_str(&b), "data: \n\n");
    assert_int_equal(sse_write_event(&b, "bad\nname", "x", 1), LOCO_ERR_INVALID);

    /* round trip */
    buf_reset(&b);
    assert_int_equal(sse_write_event(&b, "content_block_delta", " lead\n\nx\r\n", 10), LOCO_OK);
    assert_int_equal(sse_write_event(&b, NULL, "plain", 5), LOCO_OK);
    expect_events(buf_str(&b), "[content_block_delta| lead\n\nx\n][|plain]", false);

    /* limit on the output buffer */
    buf small;
    buf_init(&small, 8);
    assert_int_equal(sse_write_event(&small, NULL, "0123456789", 10), LOCO_ERR_LIMIT);
    buf_release(&small);
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_basic),        cmocka_unit_test(test_sse_line_endings),
        cmocka_unit_test(test_sse_fields),       cmocka_unit_test(test_sse_eof),
        cmocka_unit_test(test_sse_split_crlf),   cmocka_unit_test(test_sse_limit),
        cmocka_unit_test(test_sse_callback_stop), cmocka_unit_test(test_sse_nul_in_data),
        cmocka_unit_test(test_sse_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
