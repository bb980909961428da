/* test_qwen.c: unit tests of chat/qwen: rendering a conversation as qwen text, the
 * Python-style tool call serialisation, and the streaming tool-call parser (every answer
 * is also fed split at every byte and one byte at a time, and must give the same events). */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/str.h"
#include "base/utf8.h"
#include "chat/chat.h"
#include "chat/qwen.h"

/* ---- rendering ---- */

static void add_text(chat_request *r, chat_message *m, chat_block_type t, const char *text)
{
    chat_block *b = chat_message_add_block(r, m, t);
    assert_non_null(b);
    b->text = chat_strdup(r, text);
}

static void add_call(chat_request *r, chat_message *m, const char *id, const char *name,
                     const char *args)
{
    chat_block *b = chat_message_add_block(r, m, CHAT_BLOCK_TOOL_CALL);
    assert_non_null(b);
    b->id = chat_strdup(r, id);
    b->name = chat_strdup(r, name);
    b->args_json = chat_strdup(r, args);
}

static void add_result(chat_request *r, chat_message *m, const char *id, const char *text,
                       bool is_error)
{
    chat_block *b = chat_message_add_block(r, m, CHAT_BLOCK_TOOL_RESULT);
    assert_non_null(b);
    b->id = chat_strdup(r, id);
    b->text = chat_strdup(r, text);
    b->is_error = is_error;
}

/* A Claude-Code-like exchange: text, thinking, two parallel calls, results (one failed),
 * a system note in the middle, a thinking-only turn, an image. */
static chat_request *sample_request(void)
{
    chat_request *r = chat_request_new();
    assert_non_null(r);
    r->model = chat_strdup(r, "claude-haiku-4-5-20251001");
    r->system = chat_strdup(r, "You are Claude Code's Explore agent.");
    r->max_tokens = 32000;
    r->has_temperature = true;
    r->temperature = 0.7;
    r->stream = true;
    assert_non_null(chat_request_add_tool(r, "Read", "Reads a file", "{\"type\":\"object\"}"));

    chat_message *m = chat_request_add_message(r, CHAT_ROLE_USER);
    add_text(r, m, CHAT_BLOCK_TEXT, "Find the config loader.");
    m = chat_request_add_message(r, CHAT_ROLE_ASSISTANT);
    add_text(r, m, CHAT_BLOCK_THINKING, "Grep first, then glob.");
    add_text(r, m, CHAT_BLOCK_TEXT, "I'll search.");
    add_call(r, m, "toolu_1", "Grep", "{\"pattern\":\"load_config\",\"path\":\"src\"}");
    add_call(r, m, "toolu_2", "Glob", "{\"pattern\":\"**/*.toml\"}");
    m = chat_request_add_message(r, CHAT_ROLE_USER);
    add_result(r, m, "toolu_1", "src/config.c:12: int load_config(void)", false);
    add_result(r, m, "toolu_2", "No files found", true);
    m = chat_request_add_message(r, CHAT_ROLE_SYSTEM);
    add_text(r, m, CHAT_BLOCK_TEXT, "The user's timezone is UTC.");
    m = chat_request_add_message(r, CHAT_ROLE_USER);
    add_text(r, m, CHAT_BLOCK_TEXT, "");
    add_text(r, m, CHAT_BLOCK_TEXT, "Also check the tests.");
    m = chat_request_add_message(r, CHAT_ROLE_ASSISTANT);
    add_call(r, m, "toolu_3", "Read",
             "{\"file_path\":\"/src/caf\xc3\xa9.c\",\"limit\":100,\"ratio\":0.1,"
             "\"flags\":[true,null],\"nested\":{}}");
    m = chat_request_add_message(r, CHAT_ROLE_ASSISTANT);
    add_text(r, m, CHAT_BLOCK_THINKING, "only thinking: dropped");
    m = chat_request_add_message(r, CHAT_ROLE_ASSISTANT);
    add_text(r, m, CHAT_BLOCK_TEXT, "Found it.");
    m = chat_request_add_message(r, CHAT_ROLE_USER);
    add_text(r, m, CHAT_BLOCK_IMAGE, NULL);
    add_text(r, m, CHAT_BLOCK_TEXT, "What is this?");
    add_text(r, m, CHAT_BLOCK_DOCUMENT, NULL);
    return r;
}

static void test_render_conversation(void **state)
{
    (void)state;
    chat_request *req = sample_request();
    chat_request *out = NULL;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(chat_qwen_render(req, "TRAINING PROMPT", &out, &err), LOCO_OK);
    assert_non_null(out);
    assert_string_equal(out->system, "TRAINING PROMPT");
    assert_string_equal(out->model, "claude-haiku-4-5-20251001");
    assert_int_equal(out->max_tokens, 32000);
    assert_true(out->has_temperature);
    assert_true(out->temperature == 0.7);
    assert_true(out->stream);
    assert_int_equal(out->n_tools, 0);

    static const struct {
        chat_role role;
        const char *text;
    } want[] = {
        {CHAT_ROLE_USER, "Find the config loader."},
        {CHAT_ROLE_ASSISTANT,
         "I'll search.\n"
         "<tool_call>\n{\"name\": \"Grep\", \"arguments\": {\"pattern\": \"load_config\", \"path\": \"src\"}}\n</tool_call>\n"
         "<tool_call>\n{\"name\": \"Glob\", \"arguments\": {\"pattern\": \"**/*.toml\"}}\n</tool_call>"},
        {CHAT_ROLE_USER,
         "<tool_response>\nsrc/config.c:12: int load_config(void)\n</tool_response>\n"
         "<tool_response>\nError: No files found\n</tool_response>\n"
         "<system-reminder>\nThe user's timezone is UTC.\n</system-reminder>\n"
         "Also check the tests."},
        {CHAT_ROLE_ASSISTANT,
         "<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/src/caf\xc3\xa9.c\", "
         "\"limit\": 100, \"ratio\": 0.1, \"flags\": [true, null], \"nested\": {}}}\n</tool_call>\n"
         "Found it."},
        {CHAT_ROLE_USER, "[image omitted]\nWhat is this?\n[document omitted]"},
    };
    assert_int_equal(out->n_msgs, LOCO_ARRAY_LEN(want));
    for (size_t i = 0; i < LOCO_ARRAY_LEN(want); i++) {
        assert_int_equal(out->msgs[i].role, want[i].role);
        assert_int_equal(out->msgs[i].n_blocks, 1);
        assert_int_equal(out->msgs[i].blocks[0].type, CHAT_BLOCK_TEXT);
        assert_string_equal(out->msgs[i].blocks[0].text, want[i].text);
    }
    chat_request_free(out);

    /* NULL system prompt keeps the request's own */
    assert_int_equal(chat_qwen_render(req, NULL, &out, &err), LOCO_OK);
    assert_string_equal(out->system, "You are Claude Code's Explore agent.");
    chat_request_free(out);
    chat_request_free(req);
}

static void test_render_bad_args(void **state)
{
    (void)state;
    chat_request *req = chat_request_new();
    chat_message *m = chat_request_add_message(req, CHAT_ROLE_ASSISTANT);
    add_call(req, m, "toolu_1", "Read", "{not json");
    chat_request *out = (chat_request *)1;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(chat_qwen_render(req, "S", &out, &err), LOCO_ERR_INVALID);
    assert_null(out);
    assert_string_equal(err.msg, "message 0: tool call 'Read' has arguments that are not JSON");
    chat_request_free(req);
}

static void test_append_tool_call(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(chat_qwen_append_tool_call(&b, "R\xc3\xa9" "ad",
        "{\"a\":1,\"b\":[1,2.5,{\"c\":\"\xc3\xbc\\u00e9\\n\\/\"}],\"d\":{},\"e\":[],"
        "\"f\":1e20,\"g\":-0.0001,\"h\":0.00001,\"i\":1.0,\"j\":0.10000000000000001,\"k\":1e16,"
        "\"l\":123456.75}"), LOCO_OK);
    assert_string_equal(buf_str(&b),
        "<tool_call>\n{\"name\": \"R\xc3\xa9" "ad\", \"arguments\": {\"a\": 1, \"b\": [1, 2.5, "
        "{\"c\": \"\xc3\xbc\xc3\xa9\\n/\"}], \"d\": {}, \"e\": [], \"f\": 1e+20, \"g\": -0.0001, "
        "\"h\": 1e-05, \"i\": 1.0, \"j\": 0.1, \"k\": 1e+16, \"l\": 123456.75}}\n</tool_call>");
    buf_reset(&b);
    assert_int_equal(chat_qwen_append_tool_call(&b, "Glob", NULL), LOCO_OK);
    assert_string_equal(buf_str(&b), "<tool_call>\n{\"name\": \"Glob\", \"arguments\": {}}\n</tool_call>");
    assert_int_equal(chat_qwen_append_tool_call(&b, "X", "{\"a\":"), LOCO_ERR_INVALID);
    assert_string_equal(buf_str(&b), "<tool_call>\n{\"name\": \"Glob\", \"arguments\": {}}\n</tool_call>");
    buf_release(&b);
}

/* ---- the parser ---- */

typedef struct {
    chat_answer a;
    buf bad; /* "raw~reason" per bad call, joined with "|" */
    int next_index;
    bool in_call;
} sink;

static loco_status sink_event(void *ctx, const chat_event *ev)
{
    sink *s = ctx;
    switch (ev->type) {
    case CHAT_EV_TEXT_DELTA:
    case CHAT_EV_THINKING_DELTA:
        assert_false(s->in_call);
        assert_true(ev->len > 0);
        break;
    case CHAT_EV_TOOL_CALL_START:
        assert_false(s->in_call);
        assert_int_equal(ev->index, s->next_index);
        assert_true(str_starts_with(ev->id, "toolu_"));
        assert_int_equal(strlen(ev->id), 30);
        s->in_call = true;
        break;
    case CHAT_EV_TOOL_ARGS_DELTA:
        assert_true(s->in_call);
        assert_int_equal(ev->index, s->next_index);
        break;
    case CHAT_EV_TOOL_CALL_END:
        assert_true(s->in_call);
        assert_int_equal(ev->index, s->next_index);
        s->in_call = false;
        s->next_index++;
        break;
    default:
        fail_msg("unexpected event %d", ev->type);
    }
    return chat_answer_on_event(&s->a, ev);
}

static loco_status sink_bad(void *ctx, const char *raw, size_t n, const char *reason)
{
    sink *s = ctx;
    if (s->bad.len)
        buf_appendc(&s->bad, '|');
    buf_append(&s->bad, raw, n);
    buf_appendc(&s->bad, '~');
    buf_appends(&s->bad, reason);
    return LOCO_OK;
}

/* Schemas for the XML dialect tests. */
static const chat_tool test_tools[] = {
    {"Grep", NULL,
     "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\"},"
     "\"head_limit\":{\"type\":\"integer\"},\"-i\":{\"type\":\"boolean\"},"
     "\"offset\":{\"type\":[\"number\",\"null\"]},\"glob\":{\"type\":\"string\"}}}"},
};

/* Describes the events: T:text K:thinking C:name:args B:raw~reason, then #calls/repaired/bad. */
static char *describe(sink *s, chat_qwen_parser *p)
{
    buf d;
    buf_init(&d, BUF_UNLIMITED);
    for (size_t i = 0; i < s->a.n_blocks; i++) {
        const chat_answer_block *b = &s->a.blocks[i];
        if (i)
            buf_appendc(&d, '|');
        if (b->type == CHAT_BLOCK_TEXT)
            buf_appends(&d, "T:");
        else if (b->type == CHAT_BLOCK_THINKING)
            buf_appends(&d, "K:");
        else
            buf_appendf(&d, "C:%s:", b->name);
        buf_append(&d, b->text, b->len);
    }
    if (s->bad.len)
        buf_appendf(&d, "%sB:%s", d.len ? "|" : "", buf_str(&s->bad));
    buf_appendf(&d, "#%zu/%zu/%zu", chat_qwen_parser_calls(p), chat_qwen_parser_repaired(p),
                chat_qwen_parser_bad(p));
    return buf_take(&d, NULL);
}

/* Feeds text[0..n) in pieces ending at the positions in cuts (ascending), then finishes. */
static char *run_cuts(const char *text, size_t n, const size_t *cuts, size_t n_cuts, size_t max_call)
{
    sink s;
    memset(&s, 0, sizeof(s));
    chat_answer_init(&s.a, 1 << 24);
    buf_init(&s.bad, BUF_UNLIMITED);
    chat_qwen_parser_opts o = {sink_event, &s, sink_bad, test_tools, LOCO_ARRAY_LEN(test_tools), max_call};
    chat_qwen_parser *p = NULL;
    assert_int_equal(chat_qwen_parser_new(&o, &p), LOCO_OK);
    size_t at = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : n;
        assert_int_equal(chat_qwen_parser_feed(p, text + at, end - at), LOCO_OK);
        at = end;
    }
    assert_int_equal(chat_qwen_parser_finish(p), LOCO_OK);
    assert_false(s.in_call);
    char *d = describe(&s, p);
    chat_qwen_parser_free(p);
    chat_answer_release(&s.a);
    buf_release(&s.bad);
    return d;
}

/* Checks the whole-feed result, then that every 2-chunk split and byte-at-a-time feeding
 * give the same result. */
static void check_answer(const char *text, const char *want, size_t max_call)
{
    size_t n = strlen(text);
    char *whole = run_cuts(text, n, NULL, 0, max_call);
    assert_string_equal(whole, want);
    for (size_t cut = 0; cut <= n; cut++) {
        char *d = run_cuts(text, n, &cut, 1, max_call);
        if (strcmp(d, whole))
            fail_msg("split at %zu of \"%s\":\n got  %s\n want %s", cut, text, d, whole);
        free(d);
    }
    size_t *cuts = malloc((n + 1) * sizeof(*cuts));
    assert_non_null(cuts);
    for (size_t i = 0; i < n; i++)
        cuts[i] = i;
    char *d = run_cuts(text, n, cuts, n, max_call);
    assert_string_equal(d, whole);
    free(d);
    free(cuts);
    free(whole);
}

#define CALL_READ "<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/src/main.c\"}}\n</tool_call>"
#define ARGS_READ "{\"file_path\":\"/src/main.c\"}"

static void test_parse_plain(void **state)
{
    (void)state;
    check_answer("The config is loaded in src/config.c.\n\n", "T:The config is loaded in src/config.c.#0/0/0", 0);
    check_answer("  line one\n\n  line two  \n", "T:line one\n\n  line two#0/0/0", 0);
    check_answer("", "#0/0/0", 0);
    check_answer("\n \n", "#0/0/0", 0);
}

static void test_parse_calls(void **state)
{
    (void)state;
    check_answer(CALL_READ, "C:Read:" ARGS_READ "#1/0/0", 0);
    check_answer(CALL_READ "\n"
                 "<tool_call>\n{\"name\": \"Grep\", \"arguments\": {\"pattern\": \"main\", \"-n\": true}}\n</tool_call>\n"
                 "<tool_call>\n{\"name\": \"Glob\", \"arguments\": {\"pattern\": \"**/*.h\"}}\n</tool_call>\n",
                 "C:Read:" ARGS_READ "|C:Grep:{\"pattern\":\"main\",\"-n\":true}|C:Glob:{\"pattern\":\"**/*.h\"}#3/0/0", 0);
    check_answer("Let me read the file.\n" CALL_READ,
                 "T:Let me read the file.|C:Read:" ARGS_READ "#1/0/0", 0);
    check_answer(CALL_READ "\nDone: it's in main.c.\n",
                 "C:Read:" ARGS_READ "|T:Done: it's in main.c.#1/0/0", 0);
    /* other argument keys, missing arguments, arguments as a string */
    check_answer("<tool_call>{\"name\": \"Read\", \"parameters\": {\"a\": 1}}</tool_call>"
                 "<tool_call>{\"name\": \"Read\", \"input\": {\"b\": 2}}</tool_call>"
                 "<tool_call>{\"name\": \"Glob\"}</tool_call>",
                 "C:Read:{\"a\":1}|C:Read:{\"b\":2}|C:Glob:{}#3/0/0", 0);
    check_answer("<tool_call>\n{\"name\": \"Bash\", \"arguments\": \"{\\\"command\\\": \\\"ls -la\\\"}\"}\n</tool_call>",
                 "C:Bash:{\"command\":\"ls -la\"}#1/0/0", 0);
}

static void test_parse_xml(void **state)
{
    (void)state;
    check_answer("<tool_call>\n<function=Grep>\n<parameter=pattern>\n42\n</parameter>\n"
                 "<parameter=head_limit>\n10\n</parameter>\n<parameter=-i>\nTrue\n</parameter>\n"
                 "<parameter=offset>\n2.5\n</parameter>\n<parameter=glob>\n*.c\n</parameter>\n"
                 "<parameter=path>\n[1, 2]\n</parameter>\n<parameter=note>\nline1\nline2\n\n</parameter>\n"
                 "<parameter=flag>\nfalse\n</parameter>\n</function>\n</tool_call>",
                 "C:Grep:{\"pattern\":\"42\",\"head_limit\":10,\"-i\":true,\"offset\":2.5,\"glob\":\"*.c\","
                 "\"path\":[1,2],\"note\":\"line1\\nline2\\n\",\"flag\":false}#1/0/0", 0);
    /* a typed value that does not parse falls back to a string */
    check_answer("<tool_call><function=Grep><parameter=head_limit>ten</parameter></function></tool_call>",
                 "C:Grep:{\"head_limit\":\"ten\"}#1/0/0", 0);
    /* bare <function=...> without the wrapper, between text */
    check_answer("I will search.\n<function=Glob>\n<parameter=pattern>\n**/*.c\n</parameter>\n</function>\nok",
                 "T:I will search.|C:Glob:{\"pattern\":\"**/*.c\"}|T:ok#1/0/0", 0);
    /* missing </parameter> and </function>: repaired */
    check_answer("<tool_call>\n<function=Read>\n<parameter=file_path>\n/a\n<parameter=limit>\n5\n</tool_call>",
                 "C:Read:{\"file_path\":\"/a\",\"limit\":5}#1/1/0", 0);
    check_answer("<tool_call>\n<function=Read>\njunk\n</function>\n</tool_call>",
                 "B:\n<function=Read>\njunk\n</function>\n~unexpected text in a <function=...> block#0/0/1", 0);
}

static void test_parse_repairs(void **state)
{
    (void)state;
    check_answer("<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/a\",},}\n</tool_call>",
                 "C:Read:{\"file_path\":\"/a\"}#1/1/0", 0);
    check_answer("<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/a\"}\n</tool_call>",
                 "C:Read:{\"file_path\":\"/a\"}#1/1/0", 0);
    check_answer("<tool_call>\n{\"name\": \"Write\", \"arguments\": {\"content\": \"x\n\ty\"}}\n</tool_call>",
                 "C:Write:{\"content\":\"x\\n\\ty\"}#1/1/0", 0);
    check_answer("<tool_call>\n{\"name\": \"Grep\", \"arguments\": {\"pattern\": \"True\", \"-i\": True, "
                 "\"glob\": None, \"multiline\": False}}\n</tool_call>",
                 "C:Grep:{\"pattern\":\"True\",\"-i\":true,\"glob\":null,\"multiline\":false}#1/1/0", 0);
    check_answer("<tool_call>\n{'name': 'Read', 'arguments': {'file_path': \"/it's\", 'q': 'say \"hi\"'}}\n</tool_call>",
                 "C:Read:{\"file_path\":\"/it's\",\"q\":\"say \\\"hi\\\"\"}#1/1/0", 0);
    check_answer("<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/a\"}}}\n</tool_call>",
                 "C:Read:{\"file_path\":\"/a\"}#1/1/0", 0);
    check_answer("<tool_call>\n```json\n{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/a\"}}\n```\n</tool_call>",
                 "C:Read:{\"file_path\":\"/a\"}#1/1/0", 0);
}

static void test_parse_bad(void **state)
{
    (void)state;
    check_answer("Look:\n<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": /a}}\n</tool_call>\nafter",
                 "T:Look:after|B:\n{\"name\": \"Read\", \"arguments\": {\"file_path\": /a}}\n"
                 "~invalid JSON at line 1 column 45 (byte 45): invalid token near '/'#0/0/1", 0);
    check_answer("<tool_call>{\"arguments\": {}}</tool_call>",
                 "B:{\"arguments\": {}}~tool call has no \"name\" string#0/0/1", 0);
    check_answer("<tool_call>{\"name\": \"Read\", \"arguments\": [1]}</tool_call>",
                 "B:{\"name\": \"Read\", \"arguments\": [1]}~tool call arguments are not a JSON object#0/0/1", 0);
    check_answer("<tool_call>\n\n</tool_call>", "B:\n\n~empty tool call#0/0/1", 0);
    /* over the size limit: reported with the first max_call_bytes bytes; text after goes on */
    check_answer("a<tool_call>{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/aaaaaaaaaa\"}}</tool_call>b",
                 "T:ab|B:{\"name\": \"Read\", \"argume~tool call body exceeds the size limit#0/0/1", 24);
}

static loco_status feed_str(chat_qwen_parser *p, const char *s)
{
    return chat_qwen_parser_feed(p, s, strlen(s));
}

static void test_parse_partial_tags(void **state)
{
    (void)state;
    check_answer("See <tool" "_call>\n{\"name\": \"Read\"}\n</tool_call>", "T:See|C:Read:{}#1/0/0", 0);
    check_answer("if a < b and c <tool or <think or <function", "T:if a < b and c <tool or <think or <function#0/0/0", 0);
    check_answer("x <tool_call_not> y </tool_call>", "T:x <tool_call_not> y </tool_call>#0/0/0", 0);

    /* streaming: a partial tag is held, never leaked; text before it is out at once */
    sink s;
    memset(&s, 0, sizeof(s));
    chat_answer_init(&s.a, 1 << 20);
    buf_init(&s.bad, BUF_UNLIMITED);
    chat_qwen_parser_opts o = {sink_event, &s, sink_bad, NULL, 0, 0};
    chat_qwen_parser *p = NULL;
    assert_int_equal(chat_qwen_parser_new(&o, &p), LOCO_OK);
    assert_int_equal(feed_str(p, "a < b <tool"), LOCO_OK);
    assert_int_equal(s.a.n_blocks, 1);
    assert_string_equal(s.a.blocks[0].text, "a < b");
    assert_int_equal(feed_str(p, "_call>{\"name\":\"Read\",\"arguments\":{}}"), LOCO_OK);
    assert_int_equal(s.a.n_blocks, 1);
    assert_int_equal(feed_str(p, "</tool_call>"), LOCO_OK);
    assert_int_equal(s.a.n_blocks, 2);
    assert_string_equal(s.a.blocks[1].name, "Read");
    assert_string_equal(s.a.blocks[1].text, "{}");
    assert_int_equal(chat_qwen_parser_finish(p), LOCO_OK);
    assert_int_equal(feed_str(p, "x"), LOCO_ERR_INVALID);
    chat_qwen_parser_free(p);
    chat_answer_release(&s.a);
    buf_release(&s.bad);
}

static void test_parse_think_eof_utf8(void **state)
{
    (void)state;
    check_answer("<think>\nLet me think.\n</think>\n\nThe answer is 4.",
                 "K:Let me think.|T:The answer is 4.#0/0/0", 0);
    check_answer("<think>unfinished thought", "K:unfinished thought#0/0/0", 0);
    /* unterminated call at EOF: parsed when it parses, else reported */
    check_answer("Reading.\n<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/a\"}}\n</tool",
                 "T:Reading.|C:Read:{\"file_path\":\"/a\"}#1/0/0", 0);
    check_answer("<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/a\"",
                 "C:Read:{\"file_path\":\"/a\"}#1/1/0", 0);
    check_answer("<tool_call>\n{\"name\": \"Re", "B:\n{\"name\": \"Re~invalid JSON at line 1 column 12 "
                 "(byte 12): premature end of input near '\"Re'#0/0/1", 0);
    check_answer("Done \xf0\x9f\x8e\x89 \xe2\x80\x94 caf\xc3\xa9\n<tool_call>{\"name\": \"Write\", "
                 "\"arguments\": {\"content\": \"\xc3\xa9\xf0\x9f\x8e\x89\"}}</tool_call>\xf0\x9f\x91\x8d",
                 "T:Done \xf0\x9f\x8e\x89 \xe2\x80\x94 caf\xc3\xa9|C:Write:{\"content\":\"\xc3\xa9\xf0\x9f\x8e\x89\"}"
                 "|T:\xf0\x9f\x91\x8d#1/0/0", 0);
}

/* Every text delta is whole UTF-8 even when the input arrives one byte at a time. */
static loco_status utf8_event(void *ctx, const chat_event *ev)
{
    if (ev->type == CHAT_EV_TEXT_DELTA)
        assert_true(utf8_valid(ev->text, ev->len));
    return chat_answer_on_event(ctx, ev);
}

static void test_parse_utf8_deltas(void **state)
{
    (void)state;
    const char *text = "\xf0\x9f\x8e\x89 caf\xc3\xa9 \xe2\x80\x94 ok";
    chat_answer a;
    chat_answer_init(&a, 1 << 20);
    chat_qwen_parser_opts o = {utf8_event, &a, NULL, NULL, 0, 0};
    chat_qwen_parser *p = NULL;
    assert_int_equal(chat_qwen_parser_new(&o, &p), LOCO_OK);
    for (size_t i = 0; text[i]; i++)
        assert_int_equal(chat_qwen_parser_feed(p, text + i, 1), LOCO_OK);
    assert_int_equal(chat_qwen_parser_finish(p), LOCO_OK);
    assert_int_equal(a.n_blocks, 1);
    assert_string_equal(a.blocks[0].text, text);
    chat_qwen_parser_free(p);
    chat_answer_release(&a);
}

/* Big inputs fed whole: a long text, an oversize call (default 1 MiB limit), a call. */
static void test_parse_big(void **state)
{
    (void)state;
    size_t text_n = 300000, body_n = (1 << 20) + 5000;
    buf in;
    buf_init(&in, BUF_UNLIMITED);
    for (size_t i = 0; i < text_n; i++)
        buf_appendc(&in, (char)('a' + i % 26));
    buf_appends(&in, "\n<tool_call>{\"name\": \"Write\", \"arguments\": {\"content\": \"");
    for (size_t i = 0; i < body_n; i++)
        buf_appendc(&in, 'x');
    buf_appends(&in, "\"}}</tool_call>\n" CALL_READ "\nend");
    sink s;
    memset(&s, 0, sizeof(s));
    chat_answer_init(&s.a, 1 << 24);
    buf_init(&s.bad, BUF_UNLIMITED);
    chat_qwen_parser_opts o = {sink_event, &s, sink_bad, NULL, 0, 0};
    chat_qwen_parser *p = NULL;
    assert_int_equal(chat_qwen_parser_new(&o, &p), LOCO_OK);
    assert_int_equal(chat_qwen_parser_feed(p, in.data, in.len), LOCO_OK);
    assert_int_equal(chat_qwen_parser_finish(p), LOCO_OK);
    assert_int_equal(chat_qwen_parser_calls(p), 1);
    assert_int_equal(chat_qwen_parser_bad(p), 1);
    assert_int_equal(s.a.n_blocks, 3);
    assert_int_equal(s.a.blocks[0].len, text_n);
    assert_string_equal(s.a.blocks[1].name, "Read");
    assert_string_equal(s.a.blocks[2].text, "end");
    assert_int_equal(s.bad.len, (size_t)(1 << 20) + strlen("~tool call body exceeds the size limit"));
    chat_qwen_parser_free(p);
    chat_answer_release(&s.a);
    buf_release(&s.bad);
    buf_release(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_conversation),
        cmocka_unit_test(test_render_bad_args),
        cmocka_unit_test(test_append_tool_call),
        cmocka_unit_test(test_parse_plain),
        cmocka_unit_test(test_parse_calls),
        cmocka_unit_test(test_parse_xml),
        cmocka_unit_test(test_parse_repairs),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_partial_tags),
        cmocka_unit_test(test_parse_think_eof_utf8),
        cmocka_unit_test(test_parse_utf8_deltas),
        cmocka_unit_test(test_parse_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
