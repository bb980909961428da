/* test_anthropic.c: unit tests of chat/anthropic: request parse/write, SSE writer, message
 * writer, stream and message readers, error mapping. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "base/buf.h"
#include "chat/anthropic.h"
#include "chat/chat.h"

/* ---- helpers ---- */

static chat_request *parse_ok(const char *body)
{
    chat_request *req = NULL;
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = chat_anth_parse_request(body, strlen(body), &req, &err);
    if (rc)
        fail_msg("parse failed: %s", err.msg);
    assert_non_null(req);
    return req;
}

static void expect_parse_error(const char *body, const char *msg)
{
    chat_request *req = (chat_request *)1;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(chat_anth_parse_request(body, strlen(body), &req, &err), LOCO_ERR_INVALID);
    assert_null(req);
    assert_int_equal(err.code, LOCO_ERR_INVALID);
    assert_string_equal(err.msg, msg);
}

static void ev_init(chat_event *ev, chat_event_type type)
{
    memset(ev, 0, sizeof(*ev));
    chat_usage_init(&ev->usage);
    ev->type = type;
}

static void send(chat_anth_sse_writer *w, chat_event *ev)
{
    assert_int_equal(chat_anth_sse_on_event(w, ev), LOCO_OK);
}

static void send_text(chat_anth_sse_writer *w, chat_event_type type, const char *s)
{
    chat_event ev;
    ev_init(&ev, type);
    ev.text = s;
    ev.len = strlen(s);
    send(w, &ev);
}

static void send_tool(chat_anth_sse_writer *w, int idx, const char *id, const char *name,
                      const char *const *frags)
{
    chat_event ev;
    ev_init(&ev, CHAT_EV_TOOL_CALL_START);
    ev.index = idx;
    ev.id = id;
    ev.name = name;
    send(w, &ev);
    for (size_t i = 0; frags[i]; i++) {
        ev_init(&ev, CHAT_EV_TOOL_ARGS_DELTA);
        ev.index = idx;
        ev.text = frags[i];
        ev.len = strlen(frags[i]);
        send(w, &ev);
    }
    ev_init(&ev, CHAT_EV_TOOL_CALL_END);
    ev.index = idx;
    send(w, &ev);
}

/* Splits SSE text into events and feeds them to r. */
static void feed_sse(chat_anth_stream_reader *r, const char *sse)
{
    const char *p = sse;
    while (*p) {
        const char *end = strstr(p, "\n\n");
        assert_non_null(end);
        assert_memory_equal(p, "event: ", 7);
        const char *nl = strchr(p, '\n');
        char name[64];
        size_t nlen = (size_t)(nl - (p + 7));
        assert_true(nlen < sizeof(name));
        memcpy(name, p + 7, nlen);
        name[nlen] = '\0';
        const char *data = nl + 1;
        assert_memory_equal(data, "data: ", 6);
        data += 6;
        loco_err err;
        loco_err_clear(&err);
        loco_status rc = chat_anth_stream_feed(r, name, data, (size_t)(end - data), &err);
        if (rc)
            fail_msg("feed %s: %s", name, err.msg);
        p = end + 2;
    }
}

/* ---- request parsing ---- */

static const char CLAUDE_CODE_REQ[] =
    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":32000,\"stream\":true,"
    "\"temperature\":1,\"metadata\":{\"user_id\":\"u\"},"
    "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024},"
    "\"context_management\":{\"edits\":[]},\"output_config\":{\"effort\":\"high\"},"
    "\"system\":[{\"type\":\"text\",\"text\":\"You are Claude Code.\","
    "\"cache_control\":{\"type\":\"ephemeral\"}},{\"type\":\"text\",\"text\":\"Be brief.\"}],"
    "\"messages\":["
    "{\"role\":\"system\",\"content\":\"env: linux\"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look at this\"},"
    "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\","
    "\"data\":\"AAAA\"}},{\"type\":\"document\",\"source\":{}}]},"
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\","
    "\"signature\":\"sig\"},{\"type\":\"redacted_thinking\",\"data\":\"xx\"},"
    "{\"type\":\"text\",\"text\":\"Reading.\"},"
    "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"Read\","
    "\"input\":{\"file_path\":\"/a.c\",\"limit\":10}},"
    "{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_1\",\"name\":\"web_search\",\"input\":{}},"
    "{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"srvtoolu_1\",\"content\":[]}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
    "\"content\":[{\"type\":\"text\",\"text\":\"line1\"},{\"type\":\"image\",\"source\":{}},"
    "{\"type\":\"text\",\"text\":\"line2\"}],\"is_error\":true},"
    "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\",\"content\":\"ok\"},"
    "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_3\"},"
    "{\"type\":\"search_result\",\"source\":\"s\",\"content\":[]},"
    "{\"type\":\"container_upload\",\"file_id\":\"f\",\"text\":\"kept\"}]}],"
    "\"tools\":[{\"name\":\"Read\",\"description\":\"Reads a file\",\"input_schema\":"
    "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"}}}},"
    "{\"name\":\"Bash\",\"input_schema\":{\"type\":\"object\"}},"
    "{\"type\":\"web_search_20250305\",\"name\":\"web_search\",\"max_uses\":5}],"
    "\"tool_choice\":{\"type\":\"auto\"}}";

static void test_parse_claude_code(void **state)
{
    (void)state;
    chat_request *req = parse_ok(CLAUDE_CODE_REQ);
    assert_string_equal(req->model, "claude-sonnet-4-5");
    assert_int_equal(req->max_tokens, 32000);
    assert_true(req->stream);
    assert_true(req->has_temperature);
    assert_true(req->temperature == 1.0);
    assert_false(req->has_top_p);
    assert_int_equal(req->top_k, 0);
    assert_string_equal(req->system, "You are Claude Code.\n\nBe brief.");
    assert_int_equal(req->n_msgs, 4);

    const chat_message *m = &req->msgs[0];
    assert_int_equal(m->role, CHAT_ROLE_SYSTEM);
    assert_int_equal(m->n_blocks, 1);
    assert_string_equal(m->blocks[0].text, "env: linux");

    m = &req->msgs[1];
    assert_int_equal(m->role, CHAT_ROLE_USER);
    assert_int_equal(m->n_blocks, 3);
    assert_int_equal(m->blocks[0].type, CHAT_BLOCK_TEXT);
    assert_int_equal(m->blocks[1].type, CHAT_BLOCK_IMAGE);
    assert_int_equal(m->blocks[2].type, CHAT_BLOCK_DOCUMENT);

    m = &req->msgs[2];
    assert_int_equal(m->role, CHAT_ROLE_ASSISTANT);
    assert_int_equal(m->n_blocks, 4); /* server_tool_use and its result are skipped */
    assert_int_equal(m->blocks[0].type, CHAT_BLOCK_THINKING);
    assert_string_equal(m->blocks[0].text, "hmm");
    assert_int_equal(m->blocks[1].type, CHAT_BLOCK_THINKING);
    assert_string_equal(m->blocks[1].text, "");
    assert_string_equal(m->blocks[2].text, "Reading.");
    assert_int_equal(m->blocks[3].type, CHAT_BLOCK_TOOL_CALL);
    assert_string_equal(m->blocks[3].id, "toolu_1");
    assert_string_equal(m->blocks[3].name, "Read");
    assert_string_equal(m->blocks[3].args_json, "{\"file_path\":\"/a.c\",\"limit\":10}");

    m = &req->msgs[3];
    assert_int_equal(m->n_blocks, 4);
    assert_int_equal(m->blocks[0].type, CHAT_BLOCK_TOOL_RESULT);
    assert_string_equal(m->blocks[0].id, "toolu_1");
    assert_string_equal(m->blocks[0].text, "line1\nline2");
    assert_true(m->blocks[0].is_error);
    assert_true(m->blocks[0].has_media);
    assert_string_equal(m->blocks[1].text, "ok");
    assert_false(m->blocks[1].is_error);
    assert_false(m->blocks[1].has_media);
    assert_string_equal(m->blocks[2].id, "toolu_3");
    assert_string_equal(m->blocks[2].text, "");
    assert_int_equal(m->blocks[3].type, CHAT_BLOCK_TEXT);
    assert_string_equal(m->blocks[3].text, "kept");

    assert_int_equal(req->n_tools, 3);
    assert_string_equal(req->tools[0].name, "Read");
    assert_string_equal(req->tools[0].description, "Reads a file");
    assert_string_equal(req->tools[0].schema_json,
                        "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"}}}");
    assert_null(req->tools[1].description);
    assert_string_equal(req->tools[2].name, "web_search");
    assert_null(req->tools[2].schema_json);
    assert_int_equal(req->tool_choice, CHAT_TOOL_CHOICE_AUTO);
    assert_true(req->parallel_tool_calls);
    assert_true(chat_request_has_media(req));
    chat_request_free(req);
}

static void test_parse_tool_choice(void **state)
{
    (void)state;
    static const struct {
        const char *tc;
        chat_tool_choice want;
        const char *name;
        bool parallel;
    } cases[] = {
        {"{\"type\":\"auto\",\"disable_parallel_tool_use\":true}", CHAT_TOOL_CHOICE_AUTO, NULL,
         false},
        {"{\"type\":\"any\"}", CHAT_TOOL_CHOICE_ANY, NULL, true},
        {"{\"type\":\"none\"}", CHAT_TOOL_CHOICE_NONE, NULL, true},
        {"{\"type\":\"tool\",\"name\":\"Bash\",\"disable_parallel_tool_use\":false}",
         CHAT_TOOL_CHOICE_TOOL, "Bash", true},
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(cases); i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"model\":\"m\",\"messages\":[],\"top_p\":0.5,\"top_k\":40,"
                 "\"stop_sequences\":[\"END\",\"\\n\\n\"],\"tool_choice\":%s}",
                 cases[i].tc);
        chat_request *req = parse_ok(body);
        assert_int_equal(req->tool_choice, cases[i].want);
        if (cases[i].name)
            assert_string_equal(req->tool_choice_name, cases[i].name);
        else
            assert_null(req->tool_choice_name);
        assert_int_equal(req->parallel_tool_calls, cases[i].parallel);
        assert_true(req->has_top_p);
        assert_true(req->top_p == 0.5);
        assert_int_equal(req->top_k, 40);
        assert_int_equal(req->n_stop, 2);
        assert_string_equal(req->stop[1], "\n\n");
        assert_int_equal(req->max_tokens, 0);
        assert_false(req->stream);
        assert_null(req->system);
        chat_request_free(req);
    }
}

static void test_parse_nulls_and_strings(void **state)
{
    (void)state;
    chat_request *req =
        parse_ok("{\"model\":\"m\",\"system\":\"sys\",\"tools\":null,\"temperature\":null,"
                 "\"tool_choice\":null,\"stream\":null,\"messages\":[{\"role\":\"user\","
                 "\"content\":\"hi\"},{\"role\":\"user\",\"content\":[]}]}");
    assert_string_equal(req->system, "sys");
    assert_int_equal(req->n_tools, 0);
    assert_false(req->has_temperature);
    assert_int_equal(req->n_msgs, 2);
    assert_int_equal(req->msgs[0].n_blocks, 1);
    assert_string_equal(req->msgs[0].blocks[0].text, "hi");
    assert_int_equal(req->msgs[1].n_blocks, 0);
    chat_request_free(req);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *msg;
    } cases[] = {
        {"[1]", "request body: expected a JSON object"},
        {"{\"messages\":[]}", "model: expected a string"},
        {"{\"model\":\"m\"}", "messages: expected an array"},
        {"{\"model\":\"m\",\"messages\":{}}", "messages: expected an array"},
        {"{\"model\":\"m\",\"messages\":[1]}", "messages[0]: expected an object"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
         "messages[0].role: expected \"user\", \"assistant\" or \"system\""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}",
         "messages[0].content: expected a string or an array of blocks"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[\"x\"]}]}",
         "messages[0].content[0]: expected an object"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}",
         "messages[0].content[0]: block needs a string \"type\""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
         "messages[0].content[0]: text block needs a string \"text\""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":"
         "\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"t\"},{\"type\":\"tool_use\","
         "\"name\":\"R\",\"input\":{}}]}]}",
         "messages[1].content[1]: tool_use block needs a string \"id\""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":"
         "\"tool_use\",\"id\":\"t\",\"input\":{}}]}]}",
         "messages[0].content[0]: tool_use block needs a string \"name\""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":"
         "\"tool_use\",\"id\":\"t\",\"name\":\"R\",\"input\":\"{}\"}]}]}",
         "messages[0].content[0]: tool_use block needs an object \"input\""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
         "\"tool_result\",\"content\":\"x\"}]}]}",
         "messages[0].content[0]: tool_result block needs a string \"tool_use_id\""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
         "\"tool_result\",\"tool_use_id\":\"t\",\"content\":5}]}]}",
         "messages[0].content[0].content: expected a string or an array of blocks"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
         "\"tool_result\",\"tool_use_id\":\"t\",\"content\":[7]}]}]}",
         "messages[0].content[0].content[0]: expected an object"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
         "\"tool_result\",\"tool_use_id\":\"t\",\"is_error\":\"yes\"}]}]}",
         "messages[0].content[0].is_error: expected a boolean"},
        {"{\"model\":\"m\",\"messages\":[],\"system\":5}",
         "system: expected a string or an array of text blocks"},
        {"{\"model\":\"m\",\"messages\":[],\"system\":[\"x\"]}", "system[0]: expected an object"},
        {"{\"model\":\"m\",\"messages\":[],\"tools\":{}}", "tools: expected an array"},
        {"{\"model\":\"m\",\"messages\":[],\"tools\":[{\"description\":\"d\"}]}",
         "tools[0]: tool needs a string \"name\""},
        {"{\"model\":\"m\",\"messages\":[],\"tools\":[{\"name\":\"a\",\"input_schema\":[]}]}",
         "tools[0].input_schema: expected an object"},
        {"{\"model\":\"m\",\"messages\":[],\"tools\":[{\"name\":\"a\",\"description\":1}]}",
         "tools[0].description: expected a string"},
        {"{\"model\":\"m\",\"messages\":[],\"tool_choice\":\"auto\"}",
         "tool_choice: expected an object"},
        {"{\"model\":\"m\",\"messages\":[],\"tool_choice\":{\"type\":\"required\"}}",
         "tool_choice.type: expected \"auto\", \"any\", \"tool\" or \"none\""},
        {"{\"model\":\"m\",\"messages\":[],\"tool_choice\":{\"type\":\"tool\"}}",
         "tool_choice: type \"tool\" needs a string \"name\""},
        {"{\"model\":\"m\",\"messages\":[],\"tool_choice\":{\"type\":\"any\","
         "\"disable_parallel_tool_use\":1}}",
         "tool_choice.disable_parallel_tool_use: expected a boolean"},
        {"{\"model\":\"m\",\"messages\":[],\"max_tokens\":\"10\"}", "max_tokens: expected an integer"},
        {"{\"model\":\"m\",\"messages\":[],\"max_tokens\":1.5}", "max_tokens: expected an integer"},
        {"{\"model\":\"m\",\"messages\":[],\"max_tokens\":1e300}", "max_tokens: expected an integer"},
        {"{\"model\":\"m\",\"messages\":[],\"max_tokens\":0}", "max_tokens: must be at least 1"},
        {"{\"model\":\"m\",\"messages\":[],\"top_k\":-1}", "top_k: must be at least 0"},
        {"{\"model\":\"m\",\"messages\":[],\"temperature\":\"hot\"}", "temperature: expected a number"},
        {"{\"model\":\"m\",\"messages\":[],\"top_p\":true}", "top_p: expected a number"},
        {"{\"model\":\"m\",\"messages\":[],\"stop_sequences\":\"x\"}",
         "stop_sequences: expected an array"},
        {"{\"model\":\"m\",\"messages\":[],\"stop_sequences\":[\"a\",2]}",
         "stop_sequences[1]: expected a string"},
        {"{\"model\":\"m\",\"messages\":[],\"stream\":\"true\"}", "stream: expected a boolean"},
        {"{\"model\":", "invalid JSON at line 1 column 9 (byte 9): unexpected token near end of file"},
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(cases); i++)
        expect_parse_error(cases[i].body, cases[i].msg);
}

/* ---- SSE writer ---- */

static const char TOOLS_SSE[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
    "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,"
    "\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Let me \"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"look.\\n\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\","
    "\"id\":\"toolu_a\",\"name\":\"Read\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"{\\\"file_path\\\":\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"\\\"/a.c\\\"}\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\","
    "\"id\":\"toolu_b\",\"name\":\"Bash\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"{\\\"command\\\":\\\"ls\\\"}\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
    "\"stop_sequence\":null},\"usage\":{\"output_tokens\":20,\"input_tokens\":12}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

static void test_sse_text_and_tools(void **state)
{
    (void)state;
    buf out;
    buf_init(&out, 1 << 20);
    chat_anth_sse_writer w;
    chat_anth_sse_init(&w, "claude-x", &out);
    assert_false(chat_anth_sse_started(&w));
    chat_event ev;
    ev_init(&ev, CHAT_EV_MESSAGE_START);
    ev.id = "msg_1";
    ev.model = "local-qwen";
    ev.usage.input_tokens = 12;
    send(&w, &ev);
    assert_true(chat_anth_sse_started(&w));
    send_text(&w, CHAT_EV_TEXT_DELTA, "Let me ");
    send_text(&w, CHAT_EV_TEXT_DELTA, "");
    send_text(&w, CHAT_EV_TEXT_DELTA, "look.\n");
    static const char *const f1[] = {"{\"file_path\":", "", "\"/a.c\"}", NULL};
    send_tool(&w, 0, "toolu_a", "Read", f1);
    ev_init(&ev, CHAT_EV_PING);
    send(&w, &ev);
    static const char *const f2[] = {"{\"command\":\"ls\"}", NULL};
    send_tool(&w, 1, "toolu_b", "Bash", f2);
    ev_init(&ev, CHAT_EV_MESSAGE_END);
    ev.stop = CHAT_STOP_TOOL_USE;
    ev.usage.output_tokens = 20;
    send(&w, &ev);
    assert_string_equal(buf_str(&out), TOOLS_SSE);
    /* after message_stop nothing more is written */
    send_text(&w, CHAT_EV_TEXT_DELTA, "late");
    ev_init(&ev, CHAT_EV_ERROR);
    send(&w, &ev);
    assert_string_equal(buf_str(&out), TOOLS_SSE);
    buf_release(&out);
}

static const char THINKING_SSE[] =
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\","
    "\"thinking\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
    "\"thinking\":\"Plan: \"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
    "\"thinking\":\"answer.\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\","
    "\"signature\":\"\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"caf\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"\xc3\xa9\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"\xe2\x82\xac!\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"x\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"\xef\xbf\xbd\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"stop_sequence\","
    "\"stop_sequence\":\"END\"},\"usage\":{\"output_tokens\":0,\"input_tokens\":7,"
    "\"cache_read_input_tokens\":3}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

static void test_sse_thinking_and_utf8(void **state)
{
    (void)state;
    buf out;
    buf_init(&out, 1 << 20);
    chat_anth_sse_writer w;
    chat_anth_sse_init(&w, "claude-x", &out);
    /* no MESSAGE_START: one is synthesised with a fresh id */
    send_text(&w, CHAT_EV_THINKING_DELTA, "Plan: ");
    send_text(&w, CHAT_EV_THINKING_DELTA, "answer.");
    send_text(&w, CHAT_EV_TEXT_DELTA, "caf\xc3");       /* split é */
    send_text(&w, CHAT_EV_TEXT_DELTA, "\xa9\xe2\x82");  /* é completes, € starts */
    send_text(&w, CHAT_EV_TEXT_DELTA, "\xac!");
    send_text(&w, CHAT_EV_TEXT_DELTA, "x\xe2");         /* cut short at the close */
    chat_event ev;
    ev_init(&ev, CHAT_EV_MESSAGE_END);
    ev.stop = CHAT_STOP_STOP_SEQUENCE;
    ev.stop_sequence = "END";
    ev.usage.input_tokens = 7;
    ev.usage.cache_read_input_tokens = 3;
    send(&w, &ev);
    const char *s = buf_str(&out);
    static const char head[] =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_";
    assert_memory_equal(s, head, sizeof(head) - 1);
    const char *rest = strstr(s, "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],"
                                 "\"model\":\"claude-x\",\"stop_reason\":null,"
                                 "\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
                                 "\"output_tokens\":1}}}\n\n");
    assert_non_null(rest);
    assert_int_equal(rest - s, (long)(sizeof(head) - 1 + 24 + 2));
    rest = strstr(rest, "\n\n") + 2;
    assert_string_equal(rest, THINKING_SSE);
    buf_release(&out);
}

static void test_sse_error_and_misc(void **state)
{
    (void)state;
    buf out;
    buf_init(&out, 1 << 20);
    chat_anth_sse_writer w;
    chat_anth_sse_init(&w, NULL, &out);
    chat_event ev;
    ev_init(&ev, CHAT_EV_PING);
    send(&w, &ev);
    assert_false(chat_anth_sse_started(&w));
    ev_init(&ev, CHAT_EV_ERROR);
    ev.error_type = "overloaded_error";
    ev.text = "busy\"now";
    ev.len = 4;
    send(&w, &ev);
    send_text(&w, CHAT_EV_TEXT_DELTA, "ignored");
    assert_string_equal(buf_str(&out),
                        "event: ping\ndata: {\"type\": \"ping\"}\n\n"
                        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                        "\"overloaded_error\",\"message\":\"busy\"}}\n\n");
    assert_false(chat_anth_sse_started(&w));

    /* a tool call without arguments, MESSAGE_END closing the open block, stop NONE */
    buf_reset(&out);
    chat_anth_sse_init(&w, NULL, &out);
    ev_init(&ev, CHAT_EV_MESSAGE_START);
    ev.id = "msg_2";
    ev.model = "m2";
    send(&w, &ev);
    send(&w, &ev); /* a second MESSAGE_START is ignored */
    ev_init(&ev, CHAT_EV_TOOL_CALL_START);
    ev.index = 0;
    ev.id = "t0";
    ev.name = "Glob";
    send(&w, &ev);
    ev_init(&ev, CHAT_EV_TOOL_ARGS_DELTA);
    ev.index = 1;
    ev.text = "{}";
    ev.len = 2;
    assert_int_equal(chat_anth_sse_on_event(&w, &ev), LOCO_ERR_INVALID);
    ev_init(&ev, CHAT_EV_MESSAGE_END);
    send(&w, &ev);
    assert_string_equal(
        buf_str(&out),
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\","
        "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"m2\","
        "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
        "\"output_tokens\":1}}}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
        "\"content_block\":{\"type\":\"tool_use\",\"id\":\"t0\",\"name\":\"Glob\",\"input\":{}}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
        "\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":0}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    buf_release(&out);
}

/* ---- writer -> reader round trip ---- */

static void answer_event(chat_answer *a, chat_event *ev)
{
    assert_int_equal(chat_answer_on_event(a, ev), LOCO_OK);
}

static void build_answer(chat_answer *a)
{
    chat_answer_init(a, 1 << 20);
    chat_event ev;
    ev_init(&ev, CHAT_EV_MESSAGE_START);
    ev.id = "msg_rt";
    ev.model = "claude-x";
    ev.usage.input_tokens = 100;
    ev.usage.cache_read_input_tokens = 40;
    answer_event(a, &ev);
    ev_init(&ev, CHAT_EV_THINKING_DELTA);
    ev.text = "think \"hard\"";
    ev.len = strlen(ev.text);
    answer_event(a, &ev);
    ev_init(&ev, CHAT_EV_TEXT_DELTA);
    ev.text = "Two calls:\n";
    ev.len = strlen(ev.text);
    answer_event(a, &ev);
    static const char *const ids[] = {"toolu_1", "toolu_2"};
    static const char *const names[] = {"Read", "Grep"};
    static const char *const args[] = {"{\"file_path\":\"/x\"}", "{\"pattern\":\"a\\\\b\"}"};
    for (int i = 0; i < 2; i++) {
        ev_init(&ev, CHAT_EV_TOOL_CALL_START);
        ev.index = i;
        ev.id = ids[i];
        ev.name = names[i];
        answer_event(a, &ev);
        ev_init(&ev, CHAT_EV_TOOL_ARGS_DELTA);
        ev.index = i;
        ev.text = args[i];
        ev.len = strlen(args[i]);
        answer_event(a, &ev);
        ev_init(&ev, CHAT_EV_TOOL_CALL_END);
        ev.index = i;
        answer_event(a, &ev);
    }
    ev_init(&ev, CHAT_EV_MESSAGE_END);
    ev.stop = CHAT_STOP_TOOL_USE;
    ev.usage.output_tokens = 55;
    answer_event(a, &ev);
}

static void assert_answers_equal(const chat_answer *x, const chat_answer *y)
{
    assert_string_equal(x->id, y->id);
    assert_string_equal(x->model, y->model);
    assert_int_equal(x->n_blocks, y->n_blocks);
    for (size_t i = 0; i < x->n_blocks; i++) {
        assert_int_equal(x->blocks[i].type, y->blocks[i].type);
        assert_int_equal(x->blocks[i].len, y->blocks[i].len);
        assert_string_equal(x->blocks[i].text, y->blocks[i].text);
        if (x->blocks[i].type == CHAT_BLOCK_TOOL_CALL) {
            assert_string_equal(x->blocks[i].id, y->blocks[i].id);
            assert_string_equal(x->blocks[i].name, y->blocks[i].name);
        }
    }
    assert_int_equal(x->stop, y->stop);
    assert_int_equal(x->usage.input_tokens, y->usage.input_tokens);
    assert_int_equal(x->usage.output_tokens, y->usage.output_tokens);
    assert_int_equal(x->usage.cache_read_input_tokens, y->usage.cache_read_input_tokens);
    assert_int_equal(x->failed, y->failed);
}

static void test_sse_round_trip(void **state)
{
    (void)state;
    chat_answer a;
    build_answer(&a);
    assert_int_equal(a.n_blocks, 4);
    buf out;
    buf_init(&out, 1 << 20);
    chat_anth_sse_writer w;
    chat_anth_sse_init(&w, "claude-x", &out);
    assert_int_equal(chat_answer_replay(&a, chat_anth_sse_on_event, &w), LOCO_OK);

    chat_answer b;
    chat_answer_init(&b, 1 << 20);
    chat_anth_stream_reader r;
    chat_anth_stream_init(&r, chat_answer_on_event, &b);
    feed_sse(&r, buf_str(&out));
    assert_true(chat_anth_stream_done(&r));
    chat_anth_stream_release(&r);
    assert_answers_equal(&a, &b);

    /* the same through the non-stream writer and reader */
    chat_answer c;
    chat_answer_init(&c, 1 << 20);
    buf_reset(&out);
    assert_int_equal(chat_anth_write_message(&a, NULL, &out), LOCO_OK);
    loco_err err;
    assert_int_equal(chat_anth_parse_message(out.data, out.len, chat_answer_on_event, &c, &err),
                     LOCO_OK);
    assert_answers_equal(&a, &c);
    chat_answer_release(&a);
    chat_answer_release(&b);
    chat_answer_release(&c);
    buf_release(&out);
}

static void test_write_message(void **state)
{
    (void)state;
    chat_answer a;
    build_answer(&a);
    buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(chat_anth_write_message(&a, "claude-opus", &out), LOCO_OK);
    assert_string_equal(
        buf_str(&out),
        "{\"id\":\"msg_rt\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-opus\","
        "\"content\":[{\"type\":\"thinking\",\"thinking\":\"think \\\"hard\\\"\",\"signature\":\"\"},"
        "{\"type\":\"text\",\"text\":\"Two calls:\\n\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"Read\",\"input\":{\"file_path\":\"/x\"}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"Grep\",\"input\":{\"pattern\":\"a\\\\b\"}}],"
        "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,"
        "\"usage\":{\"input_tokens\":100,\"output_tokens\":55,\"cache_read_input_tokens\":40}}");
    /* arguments that are not a JSON object are refused */
    free(a.blocks[2].text);
    a.blocks[2].text = strdup("{\"file_path\":");
    a.blocks[2].len = strlen(a.blocks[2].text);
    buf_reset(&out);
    assert_int_equal(chat_anth_write_message(&a, NULL, &out), LOCO_ERR_INVALID);
    chat_answer_release(&a);

    /* empty answer: generated id, end_turn, zero usage */
    chat_answer_init(&a, 1 << 20);
    buf_reset(&out);
    assert_int_equal(chat_anth_write_message(&a, "m", &out), LOCO_OK);
    const char *s = buf_str(&out);
    assert_memory_equal(s, "{\"id\":\"msg_", 11);
    assert_string_equal(s + 11 + 24,
                        "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],"
                        "\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
                        "\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}");
    chat_answer_release(&a);
    buf_release(&out);
}

/* ---- stream reader details ---- */

typedef struct {
    char log[2048];
} ev_log;

static loco_status log_event(void *ctx, const chat_event *ev)
{
    ev_log *l = ctx;
    size_t n = strlen(l->log);
    char *p = l->log + n;
    size_t room = sizeof(l->log) - n;
    switch (ev->type) {
    case CHAT_EV_MESSAGE_START:
        snprintf(p, room, "start(%s,%s,%ld);", ev->id ? ev->id : "-", ev->model ? ev->model : "-",
                 ev->usage.input_tokens);
        break;
    case CHAT_EV_TEXT_DELTA: snprintf(p, room, "text(%.*s);", (int)ev->len, ev->text); break;
    case CHAT_EV_THINKING_DELTA: snprintf(p, room, "think(%.*s);", (int)ev->len, ev->text); break;
    case CHAT_EV_TOOL_CALL_START:
        snprintf(p, room, "call%d(%s,%s);", ev->index, ev->id ? ev->id : "-", ev->name);
        break;
    case CHAT_EV_TOOL_ARGS_DELTA:
        snprintf(p, room, "args%d(%.*s);", ev->index, (int)ev->len, ev->text);
        break;
    case CHAT_EV_TOOL_CALL_END: snprintf(p, room, "end%d;", ev->index); break;
    case CHAT_EV_MESSAGE_END:
        snprintf(p, room, "stop(%s,%s,%ld,%ld);", chat_stop_str(ev->stop) ? chat_stop_str(ev->stop) : "-",
                 ev->stop_sequence ? ev->stop_sequence : "-", ev->usage.input_tokens,
                 ev->usage.output_tokens);
        break;
    case CHAT_EV_ERROR:
        snprintf(p, room, "error(%s,%.*s);", ev->error_type, (int)ev->len, ev->text);
        break;
    case CHAT_EV_PING: snprintf(p, room, "ping;"); break;
    }
    return LOCO_OK;
}

static void feed(chat_anth_stream_reader *r, const char *name, const char *data)
{
    loco_err err;
    loco_status rc = chat_anth_stream_feed(r, name, data, strlen(data), &err);
    if (rc)
        fail_msg("feed %s: %s", name ? name : "(null)", err.msg);
}

static void test_stream_reader(void **state)
{
    (void)state;
    ev_log l = {{0}};
    chat_anth_stream_reader r;
    chat_anth_stream_init(&r, log_event, &l);
    feed(&r, "message_start",
         "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_u\",\"model\":\"up\","
         "\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}");
    feed(&r, "ping", "{\"type\": \"ping\"}");
    feed(&r, "content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                    "\"content_block\":{\"type\":\"text\",\"text\":\"Hi\"}}");
    feed(&r, NULL, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                   "\"text_delta\",\"text\":\" there\"}}");
    feed(&r, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}");
    feed(&r, "content_block_start",
         "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
         "\"server_tool_use\",\"id\":\"srv\",\"name\":\"web_search\",\"input\":{}}}");
    feed(&r, "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
                                    "{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}");
    feed(&r, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}");
    /* a proxy that puts the whole input in content_block_start */
    feed(&r, "content_block_start",
         "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\","
         "\"id\":\"toolu_x\",\"name\":\"Read\",\"input\":{\"file_path\":\"/f\"}}}");
    feed(&r, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":2}");
    feed(&r, "content_block_start",
         "{\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"tool_use\","
         "\"id\":\"toolu_y\",\"name\":\"Bash\",\"input\":{}}}");
    feed(&r, "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":3,\"delta\":"
                                    "{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}");
    feed(&r, "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":3,\"delta\":"
                                    "{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"c\\\"\"}}");
    feed(&r, "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":3,\"delta\":"
                                    "{\"type\":\"input_json_delta\",\"partial_json\":\":1}\"}}");
    feed(&r, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":3}");
    feed(&r, "some_future_event", "{\"type\":\"some_future_event\"}");
    feed(&r, "message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
                              "\"stop_sequence\":null},\"usage\":{\"output_tokens\":33}}");
    assert_false(chat_anth_stream_done(&r));
    feed(&r, "message_stop", "{\"type\":\"message_stop\"}");
    assert_true(chat_anth_stream_done(&r));
    feed(&r, "content_block_delta", "not even json"); /* after the end: ignored */
    assert_string_equal(l.log, "start(msg_u,up,9);ping;text(Hi);text( there);"
                               "call0(toolu_x,Read);args0({\"file_path\":\"/f\"});end0;"
                               "call1(toolu_y,Bash);args1({\"c\");args1(:1});end1;"
                               "stop(tool_use,-,9,33);");
    chat_anth_stream_release(&r);

    /* errors */
    memset(&l, 0, sizeof(l));
    chat_anth_stream_init(&r, log_event, &l);
    loco_err err;
    assert_int_equal(chat_anth_stream_feed(&r, "content_block_delta", "{\"type\":", 8, &err),
                     LOCO_ERR_INVALID);
    assert_string_equal(err.msg, "event 'content_block_delta': invalid JSON at line 1 column 8 "
                                 "(byte 8): unexpected token near end of file");
    assert_int_equal(chat_anth_stream_feed(&r, "message_start", "[]", 2, &err), LOCO_ERR_INVALID);
    assert_string_equal(err.msg, "event 'message_start': data is not a JSON object");
    assert_int_equal(chat_anth_stream_feed(&r, "message_start", "{}", 2, &err), LOCO_ERR_INVALID);
    assert_string_equal(err.msg, "event 'message_start': needs a \"message\" object");
    static const char bad_delta[] = "{\"delta\":{\"type\":\"text_delta\",\"text\":5}}";
    assert_int_equal(chat_anth_stream_feed(&r, "content_block_delta", bad_delta,
                                           sizeof(bad_delta) - 1, &err),
                     LOCO_ERR_INVALID);
    assert_string_equal(err.msg,
                        "event 'content_block_delta': text_delta needs a string \"text\"");
    feed(&r, "error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                      "\"message\":\"Overloaded\"}}");
    assert_true(chat_anth_stream_done(&r));
    assert_string_equal(l.log, "error(overloaded_error,Overloaded);");
    chat_anth_stream_release(&r);
}

static void test_parse_message(void **state)
{
    (void)state;
    ev_log l = {{0}};
    static const char body[] =
        "{\"id\":\"msg_n\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"cm\","
        "\"content\":[{\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":\"s\"},"
        "{\"type\":\"text\",\"text\":\"done\"},{\"type\":\"tool_use\",\"id\":\"tu\","
        "\"name\":\"Edit\",\"input\":{\"a\":[1,2]}},{\"type\":\"tool_use\",\"id\":\"tv\","
        "\"name\":\"Noop\",\"input\":{}}],\"stop_reason\":\"stop_sequence\","
        "\"stop_sequence\":\"###\",\"usage\":{\"input_tokens\":5,\"output_tokens\":6}}";
    loco_err err;
    assert_int_equal(chat_anth_parse_message(body, sizeof(body) - 1, log_event, &l, &err), LOCO_OK);
    assert_string_equal(l.log, "start(msg_n,cm,5);think(t);text(done);call0(tu,Edit);"
                               "args0({\"a\":[1,2]});end0;call1(tv,Noop);end1;"
                               "stop(stop_sequence,###,5,6);");
    memset(&l, 0, sizeof(l));
    static const char ebody[] =
        "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow\"}}";
    assert_int_equal(chat_anth_parse_message(ebody, sizeof(ebody) - 1, log_event, &l, &err),
                     LOCO_OK);
    assert_string_equal(l.log, "error(rate_limit_error,slow);");
    assert_int_equal(chat_anth_parse_message("{\"id\":1}", 8, log_event, &l, &err),
                     LOCO_ERR_INVALID);
    assert_string_equal(err.msg, "response body: \"content\" must be an array");
}

/* ---- request writing ---- */

static void assert_requests_equal(const chat_request *x, const chat_request *y)
{
    assert_string_equal(x->model, y->model);
    if (x->system || y->system)
        assert_string_equal(x->system, y->system);
    assert_int_equal(x->n_msgs, y->n_msgs);
    for (size_t i = 0; i < x->n_msgs; i++) {
        const chat_message *a = &x->msgs[i], *b = &y->msgs[i];
        assert_int_equal(a->role, b->role);
        assert_int_equal(a->n_blocks, b->n_blocks);
        for (size_t j = 0; j < a->n_blocks; j++) {
            const chat_block *p = &a->blocks[j], *q = &b->blocks[j];
            assert_int_equal(p->type, q->type);
            assert_string_equal(p->text ? p->text : "(null)", q->text ? q->text : "(null)");
            assert_string_equal(p->id ? p->id : "(null)", q->id ? q->id : "(null)");
            assert_string_equal(p->name ? p->name : "(null)", q->name ? q->name : "(null)");
            assert_string_equal(p->args_json ? p->args_json : "(null)",
                                q->args_json ? q->args_json : "(null)");
            assert_int_equal(p->is_error, q->is_error);
            assert_int_equal(p->has_media, q->has_media);
        }
    }
    assert_int_equal(x->n_tools, y->n_tools);
    for (size_t i = 0; i < x->n_tools; i++) {
        assert_string_equal(x->tools[i].name, y->tools[i].name);
        assert_string_equal(x->tools[i].schema_json, y->tools[i].schema_json);
        if (x->tools[i].description || y->tools[i].description)
            assert_string_equal(x->tools[i].description, y->tools[i].description);
    }
    assert_int_equal(x->tool_choice, y->tool_choice);
    if (x->tool_choice_name || y->tool_choice_name)
        assert_string_equal(x->tool_choice_name, y->tool_choice_name);
    assert_int_equal(x->parallel_tool_calls, y->parallel_tool_calls);
    assert_int_equal(x->max_tokens, y->max_tokens);
    assert_int_equal(x->has_temperature, y->has_temperature);
    assert_true(x->temperature == y->temperature);
    assert_int_equal(x->has_top_p, y->has_top_p);
    assert_true(x->top_p == y->top_p);
    assert_int_equal(x->top_k, y->top_k);
    assert_int_equal(x->n_stop, y->n_stop);
    for (size_t i = 0; i < x->n_stop; i++)
        assert_string_equal(x->stop[i], y->stop[i]);
    assert_int_equal(x->stream, y->stream);
}

static const char ROUND_TRIP_REQ[] =
    "{\"model\":\"claude-haiku\",\"system\":[{\"type\":\"text\",\"text\":\"A\"},"
    "{\"type\":\"text\",\"text\":\"B \\\"q\\\"\"}],\"max_tokens\":128000,\"temperature\":0.7,"
    "\"top_p\":0.95,\"top_k\":20,\"stop_sequences\":[\"</x>\"],\"stream\":true,"
    "\"messages\":[{\"role\":\"system\",\"content\":\"note\"},"
    "{\"role\":\"user\",\"content\":\"find \\u00e9 \\ud83d\\ude00\"},"
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"ok\"},"
    "{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"Bash\",\"input\":{\"command\":"
    "\"ls\\n\",\"n\":[1,2.5,null,true]}}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_9\","
    "\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}],"
    "\"is_error\":true},{\"type\":\"text\",\"text\":\"go on\"}]}],"
    "\"tools\":[{\"name\":\"Bash\",\"description\":\"Run\",\"input_schema\":{\"type\":\"object\","
    "\"required\":[\"command\"]}}],"
    "\"tool_choice\":{\"type\":\"tool\",\"name\":\"Bash\",\"disable_parallel_tool_use\":true}}";

static void test_write_request_round_trip(void **state)
{
    (void)state;
    chat_request *x = parse_ok(ROUND_TRIP_REQ);
    buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(chat_anth_write_request(x, &out), LOCO_OK);
    assert_string_equal(
        buf_str(&out),
        "{\"model\":\"claude-haiku\",\"system\":\"A\\n\\nB \\\"q\\\"\",\"messages\":["
        "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"note\"}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"find \xc3\xa9 "
        "\xf0\x9f\x98\x80\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"ok\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"Bash\",\"input\":{\"command\":"
        "\"ls\\n\",\"n\":[1,2.5,null,true]}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_9\","
        "\"content\":\"a\\nb\",\"is_error\":true},{\"type\":\"text\",\"text\":\"go on\"}]}],"
        "\"tools\":[{\"name\":\"Bash\",\"description\":\"Run\",\"input_schema\":"
        "{\"type\":\"object\",\"required\":[\"command\"]}}],"
        "\"tool_choice\":{\"type\":\"tool\",\"name\":\"Bash\",\"disable_parallel_tool_use\":true},"
        "\"max_tokens\":128000,\"temperature\":0.7,\"top_p\":0.95,"
        "\"top_k\":20,\"stop_sequences\":[\"</x>\"],"
        "\"stream\":true}");
    chat_request *y = parse_ok(buf_str(&out));
    assert_requests_equal(x, y);
    buf again;
    buf_init(&again, 1 << 20);
    assert_int_equal(chat_anth_write_request(y, &again), LOCO_OK);
    assert_string_equal(buf_str(&again), buf_str(&out));
    buf_release(&again);
    chat_request_free(y);
    chat_request_free(x);
    buf_release(&out);
}

static void test_write_request_lossy(void **state)
{
    (void)state;
    /* what cannot travel upstream: media placeholders, thinking and server tools dropped,
     * max_tokens defaulted; writing again gives the same body */
    chat_request *x = parse_ok(CLAUDE_CODE_REQ);
    x->max_tokens = 0;
    buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(chat_anth_write_request(x, &out), LOCO_OK);
    const char *s = buf_str(&out);
    assert_non_null(strstr(s, "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
                              "\"look at this\"},{\"type\":\"text\",\"text\":\"[image omitted]\"},"
                              "{\"type\":\"text\",\"text\":\"[document omitted]\"}]}"));
    assert_non_null(strstr(s, "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":"
                              "\"Reading.\"},{\"type\":\"tool_use\""));
    assert_null(strstr(s, "thinking"));
    assert_null(strstr(s, "web_search"));
    assert_null(strstr(s, "tool_choice")); /* auto with parallel calls is the default */
    assert_non_null(strstr(s, "\"max_tokens\":4096,\"temperature\":1,\"stream\":true}"));
    chat_request *y = parse_ok(s);
    buf again;
    buf_init(&again, 1 << 20);
    assert_int_equal(chat_anth_write_request(y, &again), LOCO_OK);
    assert_string_equal(buf_str(&again), s);

    /* a tool call whose arguments are not an object cannot be written */
    y->msgs[2].blocks[1].args_json = "[1]";
    buf_reset(&again);
    assert_int_equal(chat_anth_write_request(y, &again), LOCO_ERR_INVALID);
    buf_release(&again);
    chat_request_free(y);
    chat_request_free(x);
    buf_release(&out);
}

/* ---- errors ---- */

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *type;
    } cases[] = {
        {400, "invalid_request_error"}, {401, "authentication_error"}, {403, "permission_error"},
        {404, "not_found_error"},       {413, "request_too_large"},    {429, "rate_limit_error"},
        {422, "invalid_request_error"}, {500, "api_error"},            {502, "api_error"},
        {503, "overloaded_error"},      {504, "api_error"},            {529, "overloaded_error"},
        {200, "api_error"},
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(cases); i++)
        assert_string_equal(chat_anth_error_type(cases[i].status), cases[i].type);
    buf out;
    buf_init(&out, 1024);
    assert_int_equal(chat_anth_write_error(&out, "invalid_request_error",
                                           "prompt is too long: 300000 tokens > 200000 maximum"),
                     LOCO_OK);
    assert_string_equal(buf_str(&out), "{\"type\":\"error\",\"error\":{\"type\":"
                                       "\"invalid_request_error\",\"message\":\"prompt is too long: "
                                       "300000 tokens > 200000 maximum\"}}");
    buf_release(&out);
}

/* The Messages API's own rules (CHAT_CHECK_API): each case passes the shape-only parse and
 * is refused by the checked one with a message naming the field. */
static void test_parse_request_api_checks(void **state)
{
    (void)state;
#define M1 "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
    static const struct {
        const char *body;
        chat_check check;
        const char *msg;
    } cases[] = {
        {"{\"model\":\"m\",\"max_tokens\":10,\"messages\":[]}", CHAT_CHECK_API,
         "messages: at least one message is required"},
        {"{\"model\":\"m\"," M1 "}", CHAT_CHECK_API, "max_tokens: field required"},
        {"{\"model\":\"m\",\"max_tokens\":1000000000000000000," M1 "}", CHAT_CHECK_API,
         "max_tokens: must be at most 1048576"},
        {"{\"model\":\"m\",\"max_tokens\":5000000," M1 "}", CHAT_CHECK_API_COUNT,
         "max_tokens: must be at most 1048576"},
        {"{\"model\":\"m\",\"max_tokens\":10,\"temperature\":-5," M1 "}", CHAT_CHECK_API,
         "temperature: must be between 0 and 1"},
        {"{\"model\":\"m\",\"max_tokens\":10,\"temperature\":1.5," M1 "}", CHAT_CHECK_API,
         "temperature: must be between 0 and 1"},
        {"{\"model\":\"m\",\"max_tokens\":10,\"top_p\":2," M1 "}", CHAT_CHECK_API,
         "top_p: must be between 0 and 1"},
        {"{\"model\":\"m\",\"max_tokens\":10,\"metadata\":\"x\"," M1 "}", CHAT_CHECK_API,
         "metadata: expected an object"},
        {"{\"model\":\"m\",\"max_tokens\":10,\"metadata\":{\"user_id\":5}," M1 "}", CHAT_CHECK_API,
         "metadata.user_id: expected a string"},
        {"{\"model\":\"m\",\"max_tokens\":10,\"thinking\":true," M1 "}", CHAT_CHECK_API,
         "thinking: expected an object"},
        {"{\"model\":\"m\",\"max_tokens\":10,\"thinking\":{\"type\":1}," M1 "}", CHAT_CHECK_API,
         "thinking.type: expected a string"},
        {"{\"model\":\"m\",\"max_tokens\":4000,\"thinking\":{\"type\":\"enabled\"}," M1 "}",
         CHAT_CHECK_API, "thinking.budget_tokens: required when thinking is enabled"},
        {"{\"model\":\"m\",\"max_tokens\":4000,\"thinking\":{\"type\":\"enabled\","
         "\"budget_tokens\":4000}," M1 "}",
         CHAT_CHECK_API, "thinking.budget_tokens: must be less than max_tokens (4000)"},
        {"{\"model\":\"m\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"video\",\"text\":\"x\"}]}]}",
         CHAT_CHECK_API, "messages[0].content[0].type: unknown content block type 'video'"},
        {"{\"model\":\"m\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":\"x\"}]}]}",
         CHAT_CHECK_API,
         "messages[0].content[0]: tool_result for tool_use_id 'toolu_1' has no tool_use block "
         "with that id in the previous assistant message"},
        {"{\"model\":\"m\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
         "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\","
         "\"name\":\"Read\",\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":"
         "\"tool_result\",\"tool_use_id\":\"toolu_2\",\"content\":\"x\"}]}]}",
         CHAT_CHECK_API,
         "messages[2].content[0]: tool_result for tool_use_id 'toolu_2' has no tool_use block "
         "with that id in the previous assistant message"},
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(cases); i++) {
        const char *b = cases[i].body;
        chat_request *req = NULL;
        loco_err err;
        loco_err_clear(&err);
        if (chat_anth_parse_request(b, strlen(b), &req, &err) != LOCO_OK)
            fail_msg("case %zu: the shape-only parse refused it: %s", i, err.msg);
        chat_request_free(req);
        req = (chat_request *)1;
        assert_int_equal(chat_anth_parse_request_checked(b, strlen(b), cases[i].check, &req, &err),
                         LOCO_ERR_INVALID);
        assert_null(req);
        assert_string_equal(err.msg, cases[i].msg);
    }
    /* what passes: a count without max_tokens, unknown top-level fields, thinking adaptive,
     * a tool_result after a system note that follows its tool_use, server tool blocks */
    static const char *const ok[] = {
        "{\"model\":\"m\"," M1 "}",
        "{\"model\":\"m\",\"max_tokens\":128000,\"context_management\":{\"x\":1},\"output_config\":"
        "{},\"metadata\":{\"user_id\":\"u\"},\"thinking\":{\"type\":\"adaptive\"},\"temperature\":1,"
        "\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":"
        "[{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_1\",\"name\":\"web_search\",\"input\":{}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"Read\",\"input\":{}}]},{\"role\":"
        "\"system\",\"content\":\"note\"},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
        "\"tool_use_id\":\"toolu_1\",\"content\":\"x\"}]}]}",
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(ok); i++) {
        chat_request *req = NULL;
        loco_err err;
        loco_err_clear(&err);
        chat_check check = i == 0 ? CHAT_CHECK_API_COUNT : CHAT_CHECK_API;
        if (chat_anth_parse_request_checked(ok[i], strlen(ok[i]), check, &req, &err))
            fail_msg("ok case %zu refused: %s", i, err.msg);
        chat_request_free(req);
    }
#undef M1
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_claude_code),
        cmocka_unit_test(test_parse_tool_choice),
        cmocka_unit_test(test_parse_nulls_and_strings),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_sse_text_and_tools),
        cmocka_unit_test(test_sse_thinking_and_utf8),
        cmocka_unit_test(test_sse_error_and_misc),
        cmocka_unit_test(test_sse_round_trip),
        cmocka_unit_test(test_write_message),
        cmocka_unit_test(test_stream_reader),
        cmocka_unit_test(test_parse_message),
        cmocka_unit_test(test_write_request_round_trip),
        cmocka_unit_test(test_write_request_lossy),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_parse_request_api_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
