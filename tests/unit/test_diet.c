/* test_diet.c: the prompt diet (gateway/diet.h) on the Claude Code requests captured in
 * tests/data/claude_code/ (what the local model sees of a real sub-agent's first turn and of
 * a tool result) and on the edge cases: kept kinds, text around reminders, unclosed tags,
 * messages left empty, --keep-reminders. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "base/file.h"
#include "base/json.h"
#include "chat/anthropic.h"
#include "gateway/diet.h"

static const char SYS[] = "TRAINING PROMPT";

/* The body of a captured request ({"_note", "headers", "body"}) parsed as the gateway does. */
static chat_request *load_capture(const char *name)
{
    const char *src = getenv("LOCO_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/data/claude_code/%s", src ? src : ".", name);
    buf text;
    buf_init(&text, BUF_UNLIMITED);
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(file_read_all(path, &text, &err), LOCO_OK);
    json_t *root = json_parse(buf_str(&text), text.len, &err);
    assert_non_null(root);
    char *body = json_to_string(json_object_get(root, "body"));
    assert_non_null(body);
    chat_request *req = NULL;
    assert_int_equal(chat_anth_parse_request(body, strlen(body), &req, &err), LOCO_OK);
    free(body);
    json_decref(root);
    buf_release(&text);
    return req;
}

static size_t dropped(const diet_report *rep)
{
    size_t n = 0;
    for (int k = 0; k < DIET_KIND_COUNT; k++)
        n += rep->dropped[k];
    return n;
}

/* Claude Code 2.1.332's Explore sub-agent, first turn, untrimmed: six reminders around the
 * task; the local model gets the task alone and the ENV line. */
static void test_subagent_first_turn(void **state)
{
    (void)state;
    chat_request *req = load_capture("explore_subagent_first.json");
    assert_int_equal(req->n_msgs, 1);
    assert_int_equal(req->msgs[0].n_blocks, 7);
    chat_request *out = NULL;
    diet_report rep;
    assert_int_equal(diet_apply(req, SYS, false, &out, &rep, NULL), LOCO_OK);
    assert_string_equal(out->system, "TRAINING PROMPT\n\nENV: Working directory is "
                                     "/tmp/cc-test/repo (Linux, bash).");
    assert_int_equal(out->n_msgs, 1);
    assert_int_equal(out->msgs[0].n_blocks, 1);
    assert_string_equal(out->msgs[0].blocks[0].text,
                        "Find the release codename marker (a string starting with "
                        "LOCO_MARKER_) in the repository at /tmp/cc-test/repo. Report the "
                        "exact marker string.");
    assert_int_equal(rep.dropped[DIET_DEFERRED_TOOLS], 1);
    assert_int_equal(rep.dropped[DIET_ENVIRONMENT], 1);
    assert_int_equal(rep.dropped[DIET_MODEL_IDENTITY], 1);
    assert_int_equal(rep.dropped[DIET_SKILLS], 1);
    assert_int_equal(rep.dropped[DIET_DATE], 1);
    assert_int_equal(rep.dropped[DIET_ATTRIBUTION], 1);
    assert_int_equal(dropped(&rep), 6);
    assert_int_equal(rep.kept, 0);
    assert_true(rep.bytes_dropped > 8000);
    assert_string_equal(rep.cwd, "/tmp/cc-test/repo");
    assert_string_equal(rep.platform, "linux");
    assert_string_equal(rep.shell, "bash");
    /* everything else is the request as it came */
    assert_string_equal(out->model, req->model);
    assert_int_equal(out->n_tools, req->n_tools);
    assert_int_equal(out->max_tokens, req->max_tokens);
    chat_request_free(out);

    /* --keep-reminders: untouched, and the training prompt alone */
    assert_int_equal(diet_apply(req, SYS, true, &out, &rep, NULL), LOCO_OK);
    assert_string_equal(out->system, SYS);
    assert_int_equal(out->msgs[0].n_blocks, 7);
    for (size_t j = 0; j < 7; j++)
        assert_string_equal(out->msgs[0].blocks[j].text, req->msgs[0].blocks[j].text);
    assert_int_equal(dropped(&rep), 0);
    chat_request_free(out);
    chat_request_free(req);
}

/* A later turn: the token budget reminder Claude Code appends to a tool result goes, the
 * result itself and the assistant's call stay. (The capture's long reminders are trimmed,
 * so their closing tags are missing: such text is never taken for a reminder.) */
static void test_tool_result_turn(void **state)
{
    (void)state;
    chat_request *req = load_capture("explore_subagent_tool_result.json");
    chat_request *out = NULL;
    diet_report rep;
    assert_int_equal(diet_apply(req, SYS, false, &out, &rep, NULL), LOCO_OK);
    assert_int_equal(out->n_msgs, 3);
    const chat_block *call = &out->msgs[1].blocks[0];
    assert_int_equal(call->type, CHAT_BLOCK_TOOL_CALL);
    assert_string_equal(call->name, "Read");
    const chat_block *res = &out->msgs[2].blocks[0];
    assert_int_equal(res->type, CHAT_BLOCK_TOOL_RESULT);
    assert_string_equal(res->text, "1\tRelease notes\n2\tcodename: LOCO_MARKER_Zebra42\n3");
    assert_int_equal(rep.dropped[DIET_TOKEN_BUDGET], 1);
    assert_int_equal(rep.dropped[DIET_DATE], 1); /* the one short reminder kept whole */
    /* the trimmed ones (no closing tag) stay as text */
    assert_non_null(strstr(out->msgs[0].blocks[0].text, "deferred tools"));
    assert_string_equal(out->msgs[0].blocks[out->msgs[0].n_blocks - 1].text,
                        "Find the release codename marker (a string starting with "
                        "LOCO_MARKER_) in the repository at /tmp/cc-test/repo. Report the "
                        "exact marker string.");
    chat_request_free(out);
    chat_request_free(req);
}

/* The main agent's environment arrives as a role:"system" message: dropped, its working
 * directory taken. */
static void test_system_note(void **state)
{
    (void)state;
    chat_request *req = load_capture("main_agent_first.json");
    size_t before = req->n_msgs;
    chat_request *out = NULL;
    diet_report rep;
    assert_int_equal(diet_apply(req, SYS, false, &out, &rep, NULL), LOCO_OK);
    assert_int_equal(out->n_msgs, before - 1);
    for (size_t i = 0; i < out->n_msgs; i++)
        assert_int_not_equal(out->msgs[i].role, CHAT_ROLE_SYSTEM);
    assert_int_equal(rep.dropped[DIET_ENVIRONMENT], 1);
    assert_string_equal(rep.cwd, "/tmp/cc-test/repo");
    assert_true(!strncmp(out->system, "TRAINING PROMPT\n\nENV: Working directory is "
                                      "/tmp/cc-test/repo (",
                         strlen("TRAINING PROMPT\n\nENV: Working directory is "
                                "/tmp/cc-test/repo (")));
    chat_request_free(out);
    chat_request_free(req);
}

static char *filtered(const char *text, diet_report *rep)
{
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    memset(rep, 0, sizeof(*rep));
    assert_int_equal(diet_filter_text(text, strlen(text), &out, rep), LOCO_OK);
    char *s = buf_take(&out, NULL);
    return s ? s : strdup("");
}

static void test_filter_text(void **state)
{
    (void)state;
    diet_report rep;
    char *s = filtered("Do X\n<system-reminder>\nToday's date is 2026-01-01.\n</system-reminder>\n"
                       "and Y",
                       &rep);
    assert_string_equal(s, "Do X\nand Y");
    free(s);
    /* kinds that can matter stay: CLAUDE.md, file warnings, anything unknown */
    const char *keep =
        "<system-reminder>\nCodebase and user instructions are shown below.\n\nContents of "
        "/r/CLAUDE.md (project instructions, checked into the codebase):\n\nUse tabs.\n"
        "</system-reminder>\n<system-reminder>Warning: the file exists but the contents are "
        "empty.</system-reminder>\n<system-reminder>Something new</system-reminder>";
    s = filtered(keep, &rep);
    assert_string_equal(s, keep);
    assert_int_equal(rep.kept, 3);
    assert_int_equal(dropped(&rep), 0);
    free(s);
    /* an unclosed tag is plain text */
    s = filtered("a <system-reminder>Today's date is x", &rep);
    assert_string_equal(s, "a <system-reminder>Today's date is x");
    free(s);
    /* several dropped in a row, text on both ends */
    s = filtered("<system-reminder>Tip: batch</system-reminder>\n\n<system-reminder>"
                 "<total_tokens>5 tokens left</total_tokens></system-reminder>  task  ",
                 &rep);
    assert_string_equal(s, "task  ");
    assert_int_equal(rep.dropped[DIET_TIP], 1);
    assert_int_equal(rep.dropped[DIET_TOKEN_BUDGET], 1);
    free(s);
    s = filtered("only <system-reminder>You are powered by the model named X."
                 "</system-reminder>", &rep);
    assert_string_equal(s, "only");
    free(s);
    s = filtered("", &rep);
    assert_string_equal(s, "");
    free(s);
}

static void test_classify(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        diet_kind kind;
    } cases[] = {
        {"\n# Environment\nYou have been invoked", DIET_ENVIRONMENT},
        {"The following deferred tools are now available via ToolSearch.", DIET_DEFERRED_TOOLS},
        {"The following skills are available for use with the Skill tool:", DIET_SKILLS},
        {"You are powered by the model named Haiku 4.5.", DIET_MODEL_IDENTITY},
        {"The model for this session has been changed to x", DIET_MODEL_CHANGED},
        {"Today's date is 2026-12-06.", DIET_DATE},
        {"The current date is Sunday, December 06, 2026.", DIET_DATE},
        {"Attribution for git commits and pull requests you create", DIET_ATTRIBUTION},
        {"<total_tokens>14999880 tokens left</total_tokens>", DIET_TOKEN_BUDGET},
        {"Available agent types for the Agent tool:", DIET_AGENT_TYPES},
        {"Tip: Read accepts multiple entries", DIET_TIP},
        {"Codebase and user instructions are shown below.", DIET_KEEP},
        {"This file is already in your context", DIET_KEEP},
        {"", DIET_KEEP},
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(cases); i++)
        assert_int_equal(diet_classify(cases[i].body, strlen(cases[i].body)), cases[i].kind);
    assert_string_equal(diet_kind_str(DIET_SKILLS), "skills");
    assert_string_equal(diet_kind_str(DIET_KEEP), "keep");
}

/* A user message of dropped reminders only disappears; an emptied tool result stays (its
 * call needs an answer); assistant text is never touched. */
static void test_emptied_messages(void **state)
{
    (void)state;
    chat_request *req = chat_request_new();
    assert_non_null(req);
    static const char rem[] = "<system-reminder>Today's date is x.</system-reminder>";
    chat_message *m = chat_request_add_message(req, CHAT_ROLE_USER);
    chat_block *b = chat_message_add_block(req, m, CHAT_BLOCK_TEXT);
    b->text = chat_strdup(req, "task  \n"); /* no reminder: kept byte for byte */
    m = chat_request_add_message(req, CHAT_ROLE_ASSISTANT);
    b = chat_message_add_block(req, m, CHAT_BLOCK_TEXT);
    b->text = chat_strdup(req, rem);
    m = chat_request_add_message(req, CHAT_ROLE_USER);
    b = chat_message_add_block(req, m, CHAT_BLOCK_TOOL_RESULT);
    b->id = chat_strdup(req, "toolu_1");
    b->text = chat_strdup(req, rem);
    m = chat_request_add_message(req, CHAT_ROLE_USER);
    b = chat_message_add_block(req, m, CHAT_BLOCK_TEXT);
    b->text = chat_strdup(req, rem);
    chat_request *out = NULL;
    assert_int_equal(diet_apply(req, NULL, false, &out, NULL, NULL), LOCO_OK);
    assert_string_equal(out->system, ""); /* no environment: the prompt alone */
    assert_int_equal(out->n_msgs, 3);
    assert_string_equal(out->msgs[0].blocks[0].text, "task  \n");
    assert_string_equal(out->msgs[1].blocks[0].text, rem);
    assert_int_equal(out->msgs[2].blocks[0].type, CHAT_BLOCK_TOOL_RESULT);
    assert_string_equal(out->msgs[2].blocks[0].text, "");
    assert_string_equal(out->msgs[2].blocks[0].id, "toolu_1");
    chat_request_free(out);
    chat_request_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subagent_first_turn), cmocka_unit_test(test_tool_result_turn),
        cmocka_unit_test(test_system_note),         cmocka_unit_test(test_filter_text),
        cmocka_unit_test(test_classify),            cmocka_unit_test(test_emptied_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
