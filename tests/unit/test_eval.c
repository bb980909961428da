/* test_eval.c: the eval library: reading turns in every form, argument schemas, sample and
 * prediction lines, and the metrics of the fixture set tests/data/eval, each expected number
 * derived by hand below. */
#include "base/common.h"

#include <math.h>
#include <setjmp.h>
#include <cmocka.h>

#include "base/file.h"
#include "base/json.h"
#include "base/str.h"
#include "base/utf8.h"
#include "eval/eval.h"

/* ---- turns ---- */

static void parse_text(eval_turn *t, const char *s)
{
    loco_err err;
    eval_turn_init(t);
    assert_int_equal(eval_turn_add_text(t, s, strlen(s), &err), LOCO_OK);
}

static void test_turn_text(void **state)
{
    (void)state;
    eval_turn t;
    /* plain text: no call */
    parse_text(&t, "The answer is 42.");
    assert_int_equal(t.n_calls, 0);
    eval_turn_release(&t);

    /* two well-formed calls, then the Qwen3-Coder XML dialect */
    parse_text(&t, "Looking.\n<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": "
                   "\"/a\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"Glob\", \"arguments\": "
                   "{\"pattern\": \"*\"}}\n</tool_call>\n<tool_call>\n<function=Grep>\n"
                   "<parameter=pattern>\nfoo\n</parameter>\n</function>\n</tool_call>");
    assert_int_equal(t.n_calls, 3);
    assert_string_equal(t.calls[0].name, "Read");
    assert_string_equal(t.calls[0].args_json, "{\"file_path\":\"/a\"}");
    assert_true(t.calls[0].json_valid);
    assert_string_equal(t.calls[1].name, "Glob");
    assert_true(t.calls[1].json_valid);
    assert_string_equal(t.calls[2].name, "Grep");
    assert_string_equal(t.calls[2].args_json, "{\"pattern\":\"foo\"}");
    eval_turn_release(&t);

    /* repaired (missing closers): read, but not valid JSON as written; the call after it is */
    parse_text(&t, "<tool_call>\n{\"name\": \"Grep\", \"arguments\": {\"pattern\": \"x\"\n"
                   "</tool_call>\n<tool_call>\n{\"name\": \"Read\", \"arguments\": "
                   "{\"file_path\": \"/b\"}}\n</tool_call>");
    assert_int_equal(t.n_calls, 2);
    assert_string_equal(t.calls[0].name, "Grep");
    assert_string_equal(t.calls[0].args_json, "{\"pattern\":\"x\"}");
    assert_false(t.calls[0].json_valid);
    assert_true(t.calls[1].json_valid);
    eval_turn_release(&t);

    /* a repaired call last: seen at the end */
    parse_text(&t, "<tool_call>\n{\"name\": \"Bash\", \"arguments\": {\"command\": \"ls\",}}\n"
                   "</tool_call>");
    assert_int_equal(t.n_calls, 1);
    assert_false(t.calls[0].json_valid);
    eval_turn_release(&t);

    /* unreadable body: a call, not valid JSON, no name, no arguments */
    parse_text(&t, "<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": /x}}\n"
                   "</tool_call>");
    assert_int_equal(t.n_calls, 1);
    assert_null(t.calls[0].name);
    assert_null(t.calls[0].args_json);
    assert_false(t.calls[0].json_valid);
    eval_turn_release(&t);

    /* valid JSON without a name: valid JSON, no name */
    parse_text(&t, "<tool_call>\n{\"arguments\": {\"file_path\": \"/x\"}}\n</tool_call>");
    assert_int_equal(t.n_calls, 1);
    assert_null(t.calls[0].name);
    assert_true(t.calls[0].json_valid);
    eval_turn_release(&t);

    /* valid JSON whose arguments are not an object: keeps its name, valid JSON */
    parse_text(&t, "<tool_call>\n{\"name\": \"Read\", \"arguments\": [1]}\n</tool_call>");
    assert_int_equal(t.n_calls, 1);
    assert_string_equal(t.calls[0].name, "Read");
    assert_null(t.calls[0].args_json);
    assert_true(t.calls[0].json_valid);
    eval_turn_release(&t);
}

static void parse_json(eval_turn *t, const char *s, loco_status want)
{
    loco_err err;
    json_t *v = json_parse(s, strlen(s), NULL);
    assert_non_null(v);
    eval_turn_init(t);
    assert_int_equal(eval_turn_add_json(t, v, &err), want);
    json_decref(v);
}

static void test_turn_json(void **state)
{
    (void)state;
    eval_turn t;
    /* OpenAI tool_calls: arguments strings are valid JSON only when they parse */
    parse_json(&t,
               "{\"role\":\"assistant\",\"content\":\"Reading.\",\"tool_calls\":["
               "{\"id\":\"a\",\"type\":\"function\",\"function\":{\"name\":\"Read\","
               "\"arguments\":\"{\\\"file_path\\\":\\\"/a\\\"}\"}},"
               "{\"id\":\"b\",\"type\":\"function\",\"function\":{\"name\":\"Bash\","
               "\"arguments\":\"{\\\"command\\\":\"}}]}",
               LOCO_OK);
    assert_int_equal(t.n_calls, 2);
    assert_string_equal(t.calls[0].name, "Read");
    assert_true(t.calls[0].json_valid);
    assert_string_equal(t.calls[1].name, "Bash");
    assert_false(t.calls[1].json_valid);
    eval_turn_release(&t);

    /* Anthropic blocks, with <tool_call> text inside a text block counted too */
    parse_json(&t,
               "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"<tool_call>\\n"
               "{\\\"name\\\": \\\"Glob\\\", \\\"arguments\\\": {\\\"pattern\\\": \\\"*\\\"}}\\n"
               "</tool_call>\"},{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Read\","
               "\"input\":{\"file_path\":\"/a\"}}]}",
               LOCO_OK);
    assert_int_equal(t.n_calls, 2);
    assert_string_equal(t.calls[0].name, "Glob");
    assert_string_equal(t.calls[1].name, "Read");
    assert_string_equal(t.calls[1].args_json, "{\"file_path\":\"/a\"}");
    assert_true(t.calls[1].json_valid);
    eval_turn_release(&t);

    /* a bare content array; a message without role */
    parse_json(&t, "[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Bash\",\"input\":{}}]", LOCO_OK);
    assert_int_equal(t.n_calls, 1);
    assert_string_equal(t.calls[0].args_json, "{}");
    eval_turn_release(&t);

    parse_json(&t, "42", LOCO_ERR_INVALID);
    eval_turn_release(&t);
    parse_json(&t, "{\"tool_calls\":[{\"function\":{\"arguments\":\"{}\"}}]}", LOCO_ERR_INVALID);
    eval_turn_release(&t);
}

/* ---- schemas ---- */

static bool ok_builtin(const char *name, const char *args)
{
    size_t n;
    const chat_tool *tools = eval_builtin_tools(&n);
    eval_call c = {.name = (char *)name, .args_json = (char *)args, .json_valid = true};
    return eval_args_ok(&c, tools, n, NULL);
}

static bool ok_call(const chat_tool *tools, size_t n, const char *name, const char *args,
                    bool valid, const char *want_why)
{
    eval_call c = {.name = (char *)name, .args_json = (char *)args, .json_valid = valid};
    const char *why = "unset";
    bool ok = eval_args_ok(&c, tools, n, &why);
    if (want_why)
        assert_string_equal(why, want_why);
    else
        assert_null(why);
    return ok;
}

static void test_args_ok(void **state)
{
    (void)state;
    size_t n;
    const chat_tool *tools = eval_builtin_tools(&n);
    assert_int_equal(n, 7);
    assert_true(ok_builtin("Read", "{\"file_path\":\"/a\"}"));
    assert_true(ok_builtin("Read", "{\"file_path\":\"/a\",\"offset\":10,\"limit\":2.5}"));
    assert_false(ok_builtin("Read", "{}"));                                   /* missing */
    assert_false(ok_builtin("Read", "{\"file_path\":\"/a\",\"offset\":\"10\"}")); /* mistyped */
    assert_false(ok_builtin("Read", "{\"file_path\":7}"));
    assert_false(ok_builtin("Read", "[1]"));                                  /* not an object */
    assert_false(ok_builtin("Read", NULL));
    assert_true(ok_builtin("Read", "{\"file_path\":\"/a\",\"extra\":[1]}"));   /* unknown keys ok */
    assert_true(ok_builtin("Grep", "{\"pattern\":\"x\",\"-n\":true,\"-C\":3}"));
    assert_false(ok_builtin("Grep", "{\"pattern\":\"x\",\"-n\":\"yes\"}"));
    assert_true(ok_builtin("Glob", "{\"pattern\":\"*\"}"));
    assert_true(ok_builtin("Bash", "{\"command\":\"ls\",\"timeout\":1000}"));
    assert_false(ok_builtin("Bash", "{}"));
    assert_true(ok_builtin("Write", "{\"file_path\":\"/a\",\"content\":\"\"}"));
    assert_false(ok_builtin("Write", "{\"file_path\":\"/a\"}"));
    assert_true(ok_builtin("Edit", "{\"file_path\":\"/a\",\"old_string\":\"x\",\"new_string\":\"y\"}"));
    assert_false(ok_builtin("Edit", "{\"file_path\":\"/a\",\"old_string\":\"x\"}"));
    assert_true(ok_builtin("Task", "{\"description\":\"d\",\"prompt\":\"p\",\"subagent_type\":\"Explore\"}"));
    assert_false(ok_builtin("Task", "{\"description\":\"d\",\"prompt\":\"p\"}"));
    assert_false(ok_builtin("WebFetch", "{\"url\":\"x\"}")); /* unknown tool */
    assert_false(ok_builtin("read", "{\"file_path\":\"/a\"}")); /* names are exact */

    /* not valid JSON, or no name: never correct */
    assert_false(ok_call(tools, n, "Read", "{\"file_path\":\"/a\"}", false,
                         "the call is not valid JSON"));
    assert_false(ok_call(tools, n, NULL, NULL, true, "the call names no tool"));

    /* a sample's own schemas: integer, type lists, no schema */
    chat_tool own[] = {
        {"search", NULL,
         "{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"},\"max\":{\"type\":"
         "\"integer\"},\"mode\":{\"type\":[\"string\",\"null\"]}},\"required\":[\"q\"]}"},
        {"free", NULL, NULL},
    };
    assert_true(ok_call(own, 2, "search", "{\"q\":\"x\",\"max\":3.0}", true, NULL));
    assert_false(ok_call(own, 2, "search", "{\"q\":\"x\",\"max\":2.5}", true,
                         "an argument has the wrong JSON type"));
    assert_true(ok_call(own, 2, "search", "{\"q\":\"x\",\"mode\":null}", true, NULL));
    assert_false(ok_call(own, 2, "search", "{\"q\":\"x\",\"mode\":1}", true,
                         "an argument has the wrong JSON type"));
    assert_false(ok_call(own, 2, "search", "{\"max\":1}", true,
                         "a required argument is missing"));
    assert_true(ok_call(own, 2, "free", "{\"anything\":[1,2]}", true, NULL));
    /* the sample's tools replace the built-in ones */
    assert_false(ok_call(own, 2, "Read", "{\"file_path\":\"/a\"}", true, "unknown tool"));
}

/* ---- lines ---- */

static void sample_fails(const char *line, const char *want)
{
    eval_sample s;
    loco_err err;
    assert_int_equal(eval_sample_parse(line, strlen(line), &s, &err), LOCO_ERR_INVALID);
    assert_string_equal(err.msg, want);
    assert_null(s.id);
}

static void test_sample_lines(void **state)
{
    (void)state;
    sample_fails("nope", "not JSON (column 4): invalid token near 'nope'");
    sample_fails("[1]", "not a JSON object");
    sample_fails("{\"messages\":[],\"label\":\"x\"}",
                 "no \"id\" (a non-empty string of at most 1024 bytes, or an integer)");
    sample_fails("{\"id\":\"\",\"messages\":[],\"label\":\"x\"}",
                 "no \"id\" (a non-empty string of at most 1024 bytes, or an integer)");
    sample_fails("{\"id\":\"a\",\"label\":\"x\"}", "no \"messages\" array");
    sample_fails("{\"id\":\"a\",\"messages\":[],\"label\":null}", "no \"label\"");
    sample_fails("{\"id\":\"a\",\"messages\":[],\"label\":\"x\",\"tools\":[{\"type\":\"function\"}]}",
                 "tools[0]: expected {\"name\", \"input_schema\"} or {\"type\": \"function\", "
                 "\"function\": {\"name\", \"parameters\"}}");
    sample_fails("{\"id\":\"a\",\"messages\":[],\"label\":7}",
                 "label: expected raw text (a string), a message (an object) or content blocks "
                 "(an array)");

    /* forms, an integer id, both tool shapes */
    eval_sample s;
    loco_err err;
    const char *line =
        "{\"id\":7,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"hi\"}]}],\"tools\":[{\"name\":\"A\",\"input_schema\":{\"type\":\"object\"}},{\"type\":"
        "\"function\",\"function\":{\"name\":\"B\",\"parameters\":{\"type\":\"object\"}}}],"
        "\"label\":{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"x\","
        "\"name\":\"A\",\"input\":{}}]}}";
    assert_int_equal(eval_sample_parse(line, strlen(line), &s, &err), LOCO_OK);
    assert_string_equal(s.id, "7");
    assert_int_equal(s.form, EVAL_FORM_ANTHROPIC);
    assert_int_equal(s.req->n_tools, 2);
    assert_string_equal(s.req->tools[1].name, "B");
    assert_string_equal(s.req->tools[1].schema_json, "{\"type\":\"object\"}");
    assert_int_equal(s.label.n_calls, 1);
    eval_sample_release(&s);

    line = "{\"id\":\"o\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
           "\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"Read\","
           "\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"r\"}],"
           "\"label\":\"done\"}";
    assert_int_equal(eval_sample_parse(line, strlen(line), &s, &err), LOCO_OK);
    assert_int_equal(s.form, EVAL_FORM_OPENAI);
    assert_int_equal(s.label.n_calls, 0);
    eval_sample_release(&s);

    line = "{\"id\":\"h\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\","
           "\"content\":\"q\"}],\"label\":\"<tool_call>\\n{\\\"name\\\": \\\"Bash\\\", "
           "\\\"arguments\\\": {}}\\n</tool_call>\"}";
    assert_int_equal(eval_sample_parse(line, strlen(line), &s, &err), LOCO_OK);
    assert_int_equal(s.form, EVAL_FORM_HF);
    assert_string_equal(s.req->system, "S");
    assert_int_equal(s.label.n_calls, 1);
    eval_sample_release(&s);

    eval_prediction p;
    line = "{\"id\":\"h\"}";
    assert_int_equal(eval_prediction_parse(line, strlen(line), &p, &err), LOCO_ERR_INVALID);
    assert_string_equal(err.msg, "no \"output\"");
    line = "{\"id\":\"h\",\"output\":\"plain\"}";
    assert_int_equal(eval_prediction_parse(line, strlen(line), &p, &err), LOCO_OK);
    assert_string_equal(p.id, "h");
    assert_int_equal(p.turn.n_calls, 0);
    eval_prediction_release(&p);
}

/* ---- the fixture set ---- */

static eval_report *score_fixture(eval_set **out_set)
{
    const char *src = getenv("LOCO_SOURCE_DIR");
    assert_non_null(src);
    char path[4096];
    buf text;
    buf_init(&text, 1 << 24);
    loco_err err;
    eval_set *set = eval_set_new();
    assert_non_null(set);
    snprintf(path, sizeof(path), "%s/tests/data/eval/samples.jsonl", src);
    assert_int_equal(file_read_all(path, &text, &err), LOCO_OK);
    assert_int_equal(eval_set_add_samples(set, "samples.jsonl", text.data, text.len, &err), LOCO_OK);
    buf_reset(&text);
    snprintf(path, sizeof(path), "%s/tests/data/eval/predictions.jsonl", src);
    assert_int_equal(file_read_all(path, &text, &err), LOCO_OK);
    assert_int_equal(eval_set_add_predictions(set, "predictions.jsonl", text.data, text.len, &err),
                     LOCO_OK);
    buf_release(&text);
    eval_report *r = NULL;
    assert_int_equal(eval_score(set, &r, &err), LOCO_OK);
    *out_set = set;
    return r;
}

static void assert_ratio(eval_ratio r, size_t hits, size_t total)
{
    assert_int_equal(r.hits, hits);
    assert_int_equal(r.total, total);
}

static void assert_close(double got, double want)
{
    if (fabs(got - want) > 1e-9)
        fail_msg("got %.12f, want %.12f", got, want);
}

static const eval_tool_count *tool(const eval_report *r, const char *name)
{
    for (size_t i = 0; i < r->n_tools; i++) {
        if (!strcmp(r->tools[i].name, name))
            return &r->tools[i];
    }
    fail_msg("no tool %s", name);
    return NULL;
}

/*
 * The fixture, per scored sample (L = label calls, P = predicted calls):
 *   s01 hf   L Read(file_path)               P Read(same args)
 *   s02 hf   L -                             P -                       (no calls either side)
 *   s03 hf   L Bash(command,description), Read(file_path)
 *            P Grep(pattern,path), Read(same as L), Glob(pattern)     (several per turn)
 *   s04 hf   L Read                          P one call, body {"file_path": /r/x.py}: broken
 *   s05 hf   L Grep(pattern)                 P Grep, closers missing: repaired, not valid JSON
 *   s06 anth L Read(file_path), Glob(pattern) (tool_use blocks)
 *            P Read(file_path, offset:"10")  (Anthropic message; offset mistyped)
 *   s07 oai  L Edit(file_path,old_string)  (new_string missing), Bash args "{\"command\": \"ls\""
 *            P Edit(all three)               (OpenAI tool_calls)
 *   s08 hf   tools: [search_code{query: string req, max: integer}]
 *            L search_code(query)            P Read (unknown here), search_code(query, max 2.5)
 *   s09 hf   L Task(description,prompt,subagent_type)   P -
 *   s10 hf   L -                             P one call {"arguments": {...}}: valid JSON, no name
 *   s11 hf   L Bash({})  (command missing)   P WebFetch(url)  (unknown tool)
 * Not scored: s12 (no prediction), samples lines 3 (not JSON), 10 (no label), 12 (not an
 * object), 17 (duplicate id s01), 18 (unknown role); prediction lines 5 (not JSON), 10 (no
 * output), 14 (id "ghost": no such sample).
 */
static void test_fixture_metrics(void **state)
{
    (void)state;
    eval_set *set = NULL;
    eval_report *r = score_fixture(&set);

    /* 17 non-blank sample lines (line 7 is blank); broken: 3, 10, 12, 18 and the duplicate on
     * 17 = 5; valid s01..s12 = 12; forms: s06 anthropic, s07 openai, the other 10 hf */
    assert_int_equal(r->sample_lines, 17);
    assert_int_equal(r->samples_valid, 12);
    assert_int_equal(r->samples_broken, 5);
    assert_int_equal(r->forms[EVAL_FORM_HF], 10);
    assert_int_equal(r->forms[EVAL_FORM_ANTHROPIC], 1);
    assert_int_equal(r->forms[EVAL_FORM_OPENAI], 1);
    /* 14 prediction lines, 2 broken, 12 valid (s01..s11 and ghost) */
    assert_int_equal(r->prediction_lines, 14);
    assert_int_equal(r->predictions_valid, 12);
    assert_int_equal(r->predictions_broken, 2);
    assert_int_equal(r->predictions_failed, 0);
    assert_int_equal(r->matched, 11);
    assert_int_equal(r->n_missing, 1);
    assert_string_equal(r->missing[0], "s12");
    assert_int_equal(r->n_unmatched, 1);
    assert_string_equal(r->unmatched[0], "ghost");
    /* 4 broken sample lines + 2 broken prediction lines + 1 duplicate, in that order */
    assert_int_equal(r->problems_total, 7);
    assert_int_equal(r->n_problems, 7);
    assert_int_equal(r->problems[0].line, 3);
    assert_string_equal(r->problems[0].source, "samples.jsonl");
    assert_string_equal(r->problems[0].message, "not JSON (column 4): invalid token near 'this'");
    assert_int_equal(r->problems[1].line, 10);
    assert_string_equal(r->problems[1].message, "no \"label\"");
    assert_int_equal(r->problems[2].line, 12);
    assert_int_equal(r->problems[3].line, 18);
    assert_string_equal(r->problems[3].message,
                        "OpenAI form: messages[0].role: unknown role (system, developer, user, "
                        "assistant, tool, function)");
    assert_string_equal(r->problems[4].source, "predictions.jsonl");
    assert_int_equal(r->problems[4].line, 5);
    assert_int_equal(r->problems[5].line, 10);
    assert_string_equal(r->problems[5].message, "no \"output\"");
    assert_int_equal(r->problems[6].line, 17);
    assert_string_equal(r->problems[6].message,
                        "duplicate sample id 's01' (first on line 1): ignored");

    /* presence: every sample but s09 (L has, P not) and s10 (P has a nameless call, L not)
     * agrees: 9/11 */
    assert_ratio(r->presence, 9, 11);
    /* first tool, over the 8 with calls on both sides (s01 s03 s04 s05 s06 s07 s08 s11):
     * equal in s01 Read, s05 Grep (a repaired call keeps its name), s06 Read, s07 Edit = 4 */
    assert_ratio(r->first_tool, 4, 8);
    /* predicted calls: s01 1, s03 3, s04 1, s05 1, s06 1, s07 1, s08 2, s10 1, s11 1 = 12;
     * not valid JSON: s04 (broken) and s05 (repaired) -> 10 */
    assert_ratio(r->json_valid, 10, 12);
    /* argument syntax: s01 Read, s03 Grep Read Glob, s07 Edit = 5; fail: s04, s05 (not valid
     * JSON), s06 (offset mistyped), s08 Read (unknown: the sample has its own tools), s08
     * search_code (max 2.5 not an integer), s10 (no name), s11 (WebFetch unknown) */
    assert_ratio(r->args_ok, 5, 12);
    /* label calls: s01 1, s03 2, s04 1, s05 1, s06 2, s07 2, s08 1, s09 1, s11 1 = 12; not valid
     * JSON: s07's Bash -> 11; syntax fails: s07 Edit (missing), s07 Bash (invalid), s11 Bash
     * (missing command) -> 9 */
    assert_ratio(r->label_json_valid, 11, 12);
    assert_ratio(r->label_args_ok, 9, 12);

    /* distribution, model / teacher:
     *   Read   s01 s03 s06 s08 = 4 / s01 s03 s04 s06 = 4
     *   Bash   0 / s03 s07 s11 = 3;  Grep s03 s05 = 2 / s05 = 1;  Glob s03 = 1 / s06 = 1
     *   Edit 1 / 1;  search_code 1 / 1;  Task 0 / s09 = 1;  WebFetch 1 / 0
     *   (unparsed) s04 s10 = 2 / 0
     * order: most calls first, then name (byte order), (unparsed) last */
    assert_int_equal(r->n_tools, 9);
    static const char *order[] = {"Read", "Bash", "Grep", "Edit", "Glob", "search_code",
                                  "Task", "WebFetch", "(unparsed)"};
    for (size_t i = 0; i < 9; i++)
        assert_string_equal(r->tools[i].name, order[i]);
    assert_int_equal(tool(r, "Read")->model, 4);
    assert_int_equal(tool(r, "Read")->teacher, 4);
    assert_int_equal(tool(r, "Bash")->model, 0);
    assert_int_equal(tool(r, "Bash")->teacher, 3);
    assert_int_equal(tool(r, "Grep")->model, 2);
    assert_int_equal(tool(r, "Grep")->teacher, 1);
    assert_int_equal(tool(r, "Task")->teacher, 1);
    assert_int_equal(tool(r, "WebFetch")->model, 1);
    assert_int_equal(tool(r, "(unparsed)")->model, 2);
    assert_int_equal(r->model_calls, 12);
    assert_int_equal(r->teacher_calls, 12);

    /* name multiset per sample with a call on either side (all but s02: 10):
     *   s01 p1 r1 f1;  s03 P{Grep,Read,Glob} L{Bash,Read}: p1/3 r1/2 f2/5;  s04 p0 r0 f0;
     *   s05 1 1 1;  s06 P{Read} L{Read,Glob}: p1 r1/2 f2/3;  s07 same 1 1/2 2/3;
     *   s08 P{Read,search_code} L{search_code}: p1/2 r1 f2/3;  s09 P{}: p1 r0 f0;
     *   s10 L{}: p0 r1 f0;  s11 0 0 0
     * precision (1+1/3+0+1+1+1+1/2+1+0+0)/10 = 35/60; recall (1+1/2+0+1+1/2+1/2+1+0+1+0)/10
     * = 0.55; F1 (1+2/5+0+1+2/3+2/3+2/3+0+0+0)/10 = 0.44 */
    assert_int_equal(r->name_samples, 10);
    assert_close(r->name_precision, 35.0 / 60.0);
    assert_close(r->name_recall, 0.55);
    assert_close(r->name_f1, 0.44);
    /* exact arguments over the 12 label calls: s01 Read, s03 Read, s05 Grep (the repaired
     * call's arguments equal the label's) = 3 */
    assert_ratio(r->exact_args, 3, 12);
    /* calls per turn: model 12 calls in 9 turns (s01 s03 s04 s05 s06 s07 s08 s10 s11), 2 with
     * several (s03, s08); teacher 12 in 9 (s01 s03 s04 s05 s06 s07 s08 s09 s11), 3 (s03 s06 s07) */
    assert_int_equal(r->model_cpt.calls, 12);
    assert_int_equal(r->model_cpt.turns, 9);
    assert_int_equal(r->model_cpt.multi_turns, 2);
    assert_int_equal(r->teacher_cpt.calls, 12);
    assert_int_equal(r->teacher_cpt.turns, 9);
    assert_int_equal(r->teacher_cpt.multi_turns, 3);
    /* first-tool mismatches (teacher, model): s03 (Bash, Grep), s04 (Read, (unparsed)), s08
     * (search_code, Read), s11 (Bash, WebFetch); one each, sorted by teacher then model */
    assert_int_equal(r->n_confusion, 4);
    assert_string_equal(r->confusion[0].teacher, "Bash");
    assert_string_equal(r->confusion[0].model, "Grep");
    assert_string_equal(r->confusion[1].teacher, "Bash");
    assert_string_equal(r->confusion[1].model, "WebFetch");
    assert_string_equal(r->confusion[2].teacher, "Read");
    assert_string_equal(r->confusion[2].model, "(unparsed)");
    assert_string_equal(r->confusion[3].teacher, "search_code");
    assert_string_equal(r->confusion[3].model, "Read");
    assert_int_equal(r->confusion[3].count, 1);

    eval_report_free(r);
    eval_set_free(set);
}

static void test_fixture_outputs(void **state)
{
    (void)state;
    eval_set *set = NULL;
    eval_report *r = score_fixture(&set);
    eval_names names = {.model = "LocoOperator-4B", .teacher = "Qwen3-Coder-Next"};
    buf out;
    buf_init(&out, BUF_UNLIMITED);

    assert_int_equal(eval_report_md(r, &names, &out), LOCO_OK);
    const char *md = buf_str(&out);
    assert_non_null(strstr(md, "| **Tool Call Presence Alignment** | **81.8%** (9/11) |\n"));
    assert_non_null(strstr(md, "| **First Tool Type Match** | **50.0%** (4/8) |\n"));
    assert_non_null(strstr(md, "| **JSON Validity** | **83.3%** (10/12) |\n"));
    assert_non_null(strstr(md, "| **Argument Syntax Correctness** | **41.7%** (5/12) |\n"));
    assert_non_null(strstr(md, "| Tool | LocoOperator-4B | Qwen3-Coder-Next | Delta |\n"));
    assert_non_null(strstr(md, "| Bash | 0 | 3 | -3 |\n| Grep | 2 | 1 | +1 |\n"));
    assert_non_null(strstr(md, "| search\\_code | 1 | 1 | 0 |\n"));
    assert_non_null(strstr(md, "| **Total** | **12** | **12** | **0** |\n"));
    assert_non_null(strstr(md, "| **LocoOperator-4B** | 10/12 (83.3%) | 5/12 (41.7%) |\n"));
    assert_non_null(strstr(md, "| Qwen3-Coder-Next (labels) | 11/12 (91.7%) | 9/12 (75.0%) |\n"));
    assert_non_null(strstr(md, "| 0.583 / 0.550 / 0.440 |\n"));
    assert_non_null(strstr(md, "| Read | (unparsed) | 1 |\n"));
    assert_non_null(strstr(md, "Samples without a prediction (1): s12\n"));
    assert_non_null(strstr(md, "- samples.jsonl:10: no \"label\"\n"));

    buf_reset(&out);
    assert_int_equal(eval_report_json(r, &out), LOCO_OK);
    json_t *j = json_parse(out.data, out.len, NULL);
    assert_non_null(j);
    json_t *m = json_object_get(j, "argument_syntax_correctness");
    long v = 0;
    assert_true(json_get_long(m, "hits", &v));
    assert_int_equal(v, 5);
    assert_true(json_get_long(m, "total", &v));
    assert_int_equal(v, 12);
    double rate = 0;
    assert_true(json_get_double(m, "rate", &rate));
    assert_close(rate, 5.0 / 12.0);
    static const char *keys[] = {"tool_call_presence_alignment", "first_tool_type_match",
                                 "json_validity", "label_json_validity",
                                 "label_argument_syntax_correctness", "exact_argument_match"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(keys); i++)
        assert_true(json_is_real(json_object_get(json_object_get(j, keys[i]), "rate")));
    json_t *bash = json_object_get(json_object_get(j, "tool_distribution"), "Bash");
    assert_true(json_get_long(bash, "model", &v));
    assert_int_equal(v, 0);
    assert_true(json_get_long(bash, "teacher", &v));
    assert_int_equal(v, 3);
    json_decref(j);

    buf_reset(&out);
    assert_int_equal(eval_report_svg(r, &names, &out), LOCO_OK);
    const char *svg = buf_str(&out);
    assert_true(str_starts_with(svg, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg "
                                     "xmlns=\"http://www.w3.org/2000/svg\""));
    assert_true(str_ends_with(svg, "</svg>\n"));
    size_t rects = 0;
    for (const char *p = strstr(svg, "<rect"); p; p = strstr(p + 1, "<rect"))
        rects++;
    assert_int_equal(rects, 1 + 2 + 2 * 9); /* background, legend, two bars per tool */
    assert_non_null(strstr(svg, "<title>Qwen3-Coder-Next, Bash: 3</title>"));
    assert_non_null(strstr(svg, ">(unparsed)</text>"));
    assert_non_null(strstr(svg, ">Tool calls</text>"));
    buf_release(&out);
    eval_report_free(r);
    eval_set_free(set);
}

/* Outputs recorded from a backend score and save like predictions read from a file. */
static void test_put_output(void **state)
{
    (void)state;
    const char *samples =
        "{\"id\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"label\":\"x\"}\n"
        "{\"id\":\"b\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"label\":"
        "\"<tool_call>\\n{\\\"name\\\": \\\"Glob\\\", \\\"arguments\\\": {\\\"pattern\\\": "
        "\\\"*\\\"}}\\n</tool_call>\"}\n";
    loco_err err;
    eval_set *set = eval_set_new();
    assert_int_equal(eval_set_add_samples(set, "s", samples, strlen(samples), &err), LOCO_OK);
    assert_int_equal(eval_set_n_samples(set), 2);
    assert_int_equal(eval_set_put_failure(set, 0, "HTTP 500"), LOCO_OK);
    const char *out = "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"c\","
                      "\"type\":\"function\",\"function\":{\"name\":\"Glob\",\"arguments\":"
                      "\"{\\\"pattern\\\":\\\"*\\\"}\"}}]}";
    assert_int_equal(eval_set_put_output(set, 1, out, &err), LOCO_OK);
    assert_int_equal(eval_set_put_output(set, 1, "{\"role\"", &err), LOCO_ERR_INVALID);
    eval_report *r = NULL;
    assert_int_equal(eval_score(set, &r, &err), LOCO_OK);
    assert_int_equal(r->matched, 1);
    assert_int_equal(r->predictions_failed, 2);
    assert_int_equal(r->predictions_valid, 1);
    assert_int_equal(r->n_missing, 1);
    assert_string_equal(r->missing[0], "a");
    assert_string_equal(r->problems[0].source, "backend");
    assert_string_equal(r->problems[0].message, "sample 'a': HTTP 500");
    assert_ratio(r->first_tool, 1, 1);
    assert_ratio(r->exact_args, 1, 1);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(eval_set_write_outputs(set, &b), LOCO_OK);
    char want[1024];
    snprintf(want, sizeof(want), "{\"id\":\"b\",\"output\":%s}\n", out);
    assert_string_equal(b.data, want);
    buf_release(&b);
    eval_report_free(r);
    eval_set_free(set);
}

/* A parse error that quotes a byte of a broken UTF-8 sequence still gives valid UTF-8 and
 * valid JSON. */
static void test_problem_utf8(void **state)
{
    (void)state;
    const char bad[] = "{\"id\": \"\\\xc3\xa9\"}\n"; /* an invalid escape before "é" */
    loco_err err;
    eval_set *set = eval_set_new();
    assert_int_equal(eval_set_add_samples(set, "s", bad, strlen(bad), &err), LOCO_OK);
    eval_report *r = NULL;
    assert_int_equal(eval_score(set, &r, &err), LOCO_OK);
    assert_int_equal(r->samples_broken, 1);
    assert_true(utf8_valid(r->problems[0].message, strlen(r->problems[0].message)));
    /* the cut byte is shown escaped (problems reach the terminal) */
    assert_non_null(strstr(r->problems[0].message, "\\xC3"));
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(eval_report_json(r, &b), LOCO_OK);
    buf_release(&b);
    eval_report_free(r);
    eval_set_free(set);
}

static void test_empty(void **state)
{
    (void)state;
    loco_err err;
    eval_set *set = eval_set_new();
    assert_int_equal(eval_set_add_samples(set, "s", "\n\n  \n", 5, &err), LOCO_OK);
    eval_report *r = NULL;
    assert_int_equal(eval_score(set, &r, &err), LOCO_OK);
    assert_int_equal(r->sample_lines, 0);
    assert_int_equal(r->matched, 0);
    assert_close(eval_ratio_rate(r->presence), 0.0);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(eval_report_md(r, NULL, &b), LOCO_OK);
    assert_non_null(strstr(b.data, "| **Tool Call Presence Alignment** | n/a (0/0) |\n"));
    buf_reset(&b);
    assert_int_equal(eval_report_svg(r, NULL, &b), LOCO_OK);
    assert_non_null(strstr(b.data, ">no tool calls</text>"));
    buf_reset(&b);
    assert_int_equal(eval_report_json(r, &b), LOCO_OK);
    json_t *j = json_parse(b.data, b.len, NULL);
    assert_non_null(json_object_get(j, "tool_distribution"));
    json_decref(j);
    buf_release(&b);
    eval_report_free(r);
    eval_set_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_turn_text),       cmocka_unit_test(test_turn_json),
        cmocka_unit_test(test_args_ok),         cmocka_unit_test(test_sample_lines),
        cmocka_unit_test(test_fixture_metrics), cmocka_unit_test(test_fixture_outputs),
        cmocka_unit_test(test_put_output),      cmocka_unit_test(test_problem_utf8),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
