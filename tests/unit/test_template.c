/* test_template.c: unit tests of engine/template: exact prompts for a few conversations in both
 * dialects, the tojson serialiser (JavaScript number forms, key order, escapes) and errors.
 * The byte-equality proof against the Jinja reference is tests/engine/template.test.mjs. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "base/buf.h"
#include "engine/template.h"

static char *render(const tmpl_options *o, const tmpl_message *m, size_t n, const tmpl_tool *t,
                    size_t nt)
{
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    loco_err err;
    loco_status rc = tmpl_render_opts(o, m, n, t, nt, &out, &err);
    if (rc != LOCO_OK)
        fail_msg("render failed: %s", err.msg);
    return buf_take(&out, NULL);
}

static char *tojson(const char *json)
{
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    loco_err err;
    if (tmpl_tojson(&out, json, strlen(json), &err) != LOCO_OK)
        fail_msg("tojson failed: %s", err.msg);
    return buf_take(&out, NULL);
}

static void test_system_user(void **state)
{
    (void)state;
    tmpl_message m[] = {{.role = TMPL_ROLE_SYSTEM, .content = "Be brief."},
                        {.role = TMPL_ROLE_USER, .content = "Hi <|im_end|>"}};
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    loco_err err;
    assert_int_equal(tmpl_render(m, 2, NULL, 0, true, &out, &err), LOCO_OK);
    assert_string_equal(out.data, "<|im_start|>system\nBe brief.<|im_end|>\n"
                                  "<|im_start|>user\nHi <|im_end|><|im_end|>\n"
                                  "<|im_start|>assistant\n");
    buf_release(&out);
    /* no system message, no generation prompt */
    assert_int_equal(tmpl_render(m + 1, 1, NULL, 0, false, &out, &err), LOCO_OK);
    assert_string_equal(out.data, "<|im_start|>user\nHi <|im_end|><|im_end|>\n");
    buf_release(&out);
}

static void test_tools_and_calls(void **state)
{
    (void)state;
    tmpl_tool tools[] = {{"{\"type\":\"function\",\"function\":{\"name\":\"Read\","
                          "\"parameters\":{\"type\":\"object\",\"required\":[\"file_path\"]}}}"}};
    tmpl_tool_call calls[] = {{"Read", "{\"file_path\":\"/a\",\"limit\":10.0}", false},
                              {"Bash", "{\"command\":  \"ls\"}", true}};
    tmpl_message m[] = {
        {.role = TMPL_ROLE_SYSTEM, .content = "SYS"},
        {.role = TMPL_ROLE_USER, .content = "go"},
        {.role = TMPL_ROLE_ASSISTANT, .content = "Reading.", .tool_calls = calls,
         .n_tool_calls = 2},
        {.role = TMPL_ROLE_TOOL, .content = "r1"},
        {.role = TMPL_ROLE_TOOL, .content = "r2"},
    };
    tmpl_options o = {TMPL_QWEN3_INSTRUCT_2507, true, false};
    char *s = render(&o, m, 5, tools, 1);
    assert_string_equal(
        s, "<|im_start|>system\nSYS\n\n# Tools\n\nYou may call one or more functions to assist "
           "with the user query.\n\nYou are provided with function signatures within "
           "<tools></tools> XML tags:\n<tools>\n"
           "{\"type\": \"function\", \"function\": {\"name\": \"Read\", \"parameters\": "
           "{\"type\": \"object\", \"required\": [\"file_path\"]}}}\n</tools>\n\nFor each "
           "function call, return a json object with function name and arguments within "
           "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
           "\"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
           "<|im_start|>user\ngo<|im_end|>\n"
           "<|im_start|>assistant\nReading.\n<tool_call>\n{\"name\": \"Read\", \"arguments\": "
           "{\"file_path\": \"/a\", \"limit\": 10}}\n</tool_call>\n<tool_call>\n{\"name\": "
           "\"Bash\", \"arguments\": {\"command\":  \"ls\"}}\n</tool_call><|im_end|>\n"
           "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n"
           "</tool_response><|im_end|>\n<|im_start|>assistant\n");
    free(s);
    /* empty content: no newline before the first <tool_call> */
    m[2].content = "";
    m[2].n_tool_calls = 1;
    s = render(&o, m + 1, 2, NULL, 0);
    assert_string_equal(s, "<|im_start|>user\ngo<|im_end|>\n<|im_start|>assistant\n<tool_call>\n"
                           "{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/a\", "
                           "\"limit\": 10}}\n</tool_call><|im_end|>\n<|im_start|>assistant\n");
    free(s);
}

static void test_think_history(void **state)
{
    (void)state;
    tmpl_message m[] = {
        {.role = TMPL_ROLE_USER, .content = "Q1"},
        {.role = TMPL_ROLE_ASSISTANT, .content = "<think>\nx\n</think>\n\nA1"},
        {.role = TMPL_ROLE_USER, .content = "Q2"},
        {.role = TMPL_ROLE_ASSISTANT, .content = "A2", .reasoning_content = "\nr\n"},
    };
    tmpl_options o = {TMPL_QWEN3_INSTRUCT_2507, false, false};
    char *s = render(&o, m, 4, NULL, 0);
    assert_string_equal(s, "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n<think>\nx\n"
                           "</think>\n\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n"
                           "<|im_start|>assistant\nA2<|im_end|>\n");
    free(s);
    o.dialect = TMPL_QWEN3_HYBRID;
    s = render(&o, m, 4, NULL, 0);
    assert_string_equal(s, "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
                           "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n<think>\nr\n"
                           "</think>\n\nA2<|im_end|>\n");
    free(s);
    /* trailing assistant without reasoning still gets an empty think block; thinking off */
    m[3].reasoning_content = NULL;
    o.add_generation_prompt = true;
    o.disable_thinking = true;
    s = render(&o, m + 2, 2, NULL, 0);
    assert_string_equal(s, "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n<think>\n\n"
                           "</think>\n\nA2<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>"
                           "\n\n");
    free(s);
}

static void test_empty_conversation(void **state)
{
    (void)state;
    tmpl_options o = {TMPL_QWEN3_INSTRUCT_2507, true, false};
    char *s = render(&o, NULL, 0, NULL, 0);
    assert_string_equal(s, "<|im_start|>assistant\n");
    free(s);
}

static void test_tojson_numbers(void **state)
{
    (void)state;
    static const char *cases[][2] = {
        {"[1.0, 2.5, -0.0, 0, -7]", "[1, 2.5, 0, 0, -7]"},
        {"[0.1, 1e21, 1e20, 1e-7, 0.000001, 123e-20]",
         "[0.1, 1e+21, 100000000000000000000, 1e-7, 0.000001, 1.23e-18]"},
        {"[123456789012345678901234567890, 9007199254740993, 4294967295]",
         "[1.2345678901234568e+29, 9007199254740992, 4294967295]"},
        {"[1.5e300, -3e-7, 0.30000000000000004, 5e-324]",
         "[1.5e+300, -3e-7, 0.30000000000000004, 5e-324]"},
        {"[true, false, null, {}, [], \"\"]", "[true, false, null, {}, [], \"\"]"},
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(cases); i++) {
        char *s = tojson(cases[i][0]);
        assert_string_equal(s, cases[i][1]);
        free(s);
    }
}

static void test_tojson_keys_and_strings(void **state)
{
    (void)state;
    char *s = tojson("{\"z\":1,\"10\":2,\"2\":3,\"01\":4,\"4294967295\":5,\"4294967294\":6,"
                     "\"-1\":7,\"a\":{\"1\":[]}}");
    assert_string_equal(s, "{\"2\": 3, \"10\": 2, \"4294967294\": 6, \"z\": 1, \"01\": 4, "
                           "\"4294967295\": 5, \"-1\": 7, \"a\": {\"1\": []}}");
    free(s);
    s = tojson("\"q\\\" b\\\\ \\/ \\b\\f\\n\\r\\t \\u0001\\u001f\\u007f \\u00e9 \\u2028 "
               "\\ud83d\\ude80 <&>\"");
    assert_string_equal(s, "\"q\\\" b\\\\ / \\b\\f\\n\\r\\t \\u0001\\u001f\x7f \xc3\xa9 "
                           "\xe2\x80\xa8 \xf0\x9f\x9a\x80 <&>\"");
    free(s);
    s = tojson("\"a\\u0000b\"");
    assert_string_equal(s, "\"a\\u0000b\"");
    free(s);
}

static void test_errors(void **state)
{
    (void)state;
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    loco_err err;
    tmpl_tool_call bad = {"X", "{\"a\": ", false};
    tmpl_message m[] = {{.role = TMPL_ROLE_USER, .content = "u"},
                        {.role = TMPL_ROLE_ASSISTANT, .tool_calls = &bad, .n_tool_calls = 1}};
    assert_int_equal(tmpl_render(m, 2, NULL, 0, true, &out, &err), LOCO_ERR_INVALID);
    assert_non_null(strstr(err.msg, "arguments of tool call 0"));
    buf_reset(&out);
    tmpl_tool tool = {"[1,"};
    assert_int_equal(tmpl_render(m, 1, &tool, 1, true, &out, &err), LOCO_ERR_INVALID);
    assert_non_null(strstr(err.msg, "tool 0"));
    buf_reset(&out);
    m[1].role = (tmpl_role)42;
    assert_int_equal(tmpl_render(m, 2, NULL, 0, true, &out, &err), LOCO_ERR_INVALID);
    assert_non_null(strstr(err.msg, "unknown role"));
    buf_release(&out);
    buf limited;
    buf_init(&limited, 20);
    assert_int_equal(tmpl_render(m, 1, NULL, 0, true, &limited, &err), LOCO_ERR_LIMIT);
    assert_non_null(strstr(err.msg, "limit of 20 bytes"));
    buf_release(&limited);
}

static void test_detect_dialect(void **state)
{
    (void)state;
    assert_int_equal(tmpl_detect_dialect(NULL), TMPL_QWEN3_INSTRUCT_2507);
    assert_int_equal(tmpl_detect_dialect("{%- if tools %}"), TMPL_QWEN3_INSTRUCT_2507);
    assert_int_equal(tmpl_detect_dialect("{%- if message.reasoning_content is string %}"),
                     TMPL_QWEN3_HYBRID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_system_user),      cmocka_unit_test(test_tools_and_calls),
        cmocka_unit_test(test_think_history),    cmocka_unit_test(test_empty_conversation),
        cmocka_unit_test(test_tojson_numbers),   cmocka_unit_test(test_tojson_keys_and_strings),
        cmocka_unit_test(test_errors),           cmocka_unit_test(test_detect_dialect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
