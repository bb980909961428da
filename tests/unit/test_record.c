/* test_record.c: unit tests of gateway/record: the exact JSON line of an exchange with tool
 * calls and results (qwen text form, tools, metadata), null metadata and no tools, errors,
 * and 8 threads x 50 records giving 400 whole, valid lines. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <unistd.h>

#include "base/file.h"
#include "base/json.h"
#include "gateway/record.h"

static char g_dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/loco-record-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A fresh sub-directory of the scratch dir for one test. */
static void subdir(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", g_dir, name);
}

/* DIR/exchanges-<today UTC>.jsonl */
static void today_file(const char *dir, char *out, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char day[16];
    strftime(day, sizeof day, "%Y%m%d", &tm);
    snprintf(out, size, "%s/exchanges-%s.jsonl", dir, day);
}

static char *read_text(const char *path)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    loco_err err;
    assert_int_equal(file_read_all(path, &b, &err), LOCO_OK);
    return buf_take(&b, NULL);
}

/* Replaces the value of "time" (checked to look like 2025-01-02T03:04:05Z) with "T". */
static void mask_time(char *line)
{
    char *p = strstr(line, "\"time\":\"");
    assert_non_null(p);
    p += 8;
    assert_true(strlen(p) > 21);
    for (int i = 0; i < 20; i++) {
        char c = p[i];
        if (i == 4 || i == 7)
            assert_int_equal(c, '-');
        else if (i == 10)
            assert_int_equal(c, 'T');
        else if (i == 13 || i == 16)
            assert_int_equal(c, ':');
        else if (i == 19)
            assert_int_equal(c, 'Z');
        else
            assert_true(c >= '0' && c <= '9');
    }
    assert_int_equal(p[20], '"');
    memmove(p + 1, p + 20, strlen(p + 20) + 1);
    p[0] = 'T';
}

static chat_block *add_block(chat_request *req, chat_message *m, chat_block_type t,
                             const char *text)
{
    chat_block *b = chat_message_add_block(req, m, t);
    assert_non_null(b);
    b->text = text ? chat_strdup(req, text) : NULL;
    return b;
}

static chat_request *conversation(void)
{
    chat_request *req = chat_request_new();
    assert_non_null(req);
    req->model = chat_strdup(req, "claude-haiku");
    req->system = chat_strdup(req, "client system");
    assert_non_null(chat_request_add_tool(
        req, "Read", "Read a file",
        "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"}},"
        "\"required\":[\"file_path\"]}"));
    assert_non_null(chat_request_add_tool(req, "Bash", NULL, NULL));
    chat_message *m = chat_request_add_message(req, CHAT_ROLE_USER);
    add_block(req, m, CHAT_BLOCK_TEXT, "Where is \"main\"?");
    m = chat_request_add_message(req, CHAT_ROLE_ASSISTANT);
    add_block(req, m, CHAT_BLOCK_THINKING, "hmm");
    add_block(req, m, CHAT_BLOCK_TEXT, "Let me look.");
    chat_block *call = add_block(req, m, CHAT_BLOCK_TOOL_CALL, NULL);
    call->id = chat_strdup(req, "toolu_1");
    call->name = chat_strdup(req, "Read");
    call->args_json = chat_strdup(req, "{\"file_path\":\"src/main.c\"}");
    m = chat_request_add_message(req, CHAT_ROLE_USER);
    chat_block *res = add_block(req, m, CHAT_BLOCK_TOOL_RESULT, "int main(void) {}\n");
    res->id = chat_strdup(req, "toolu_1");
    return req;
}

static void feed(chat_answer *a, chat_event_type t, int index, const char *id,
                 const char *name, const char *text)
{
    chat_event ev;
    memset(&ev, 0, sizeof ev);
    chat_usage_init(&ev.usage);
    ev.type = t;
    ev.index = index;
    ev.id = id;
    ev.name = name;
    ev.text = text;
    ev.len = text ? strlen(text) : 0;
    assert_int_equal(chat_answer_on_event(a, &ev), LOCO_OK);
}

/* "Found it." + thinking (dropped) + two tool calls. */
static void answer_with_calls(chat_answer *a)
{
    chat_answer_init(a, 1 << 20);
    feed(a, CHAT_EV_MESSAGE_START, 0, "msg_1", NULL, NULL);
    feed(a, CHAT_EV_THINKING_DELTA, 0, NULL, NULL, "think");
    feed(a, CHAT_EV_TEXT_DELTA, 0, NULL, NULL, "Found ");
    feed(a, CHAT_EV_TEXT_DELTA, 0, NULL, NULL, "it.");
    feed(a, CHAT_EV_TOOL_CALL_START, 0, "toolu_2", "Grep", NULL);
    feed(a, CHAT_EV_TOOL_ARGS_DELTA, 0, NULL, NULL, "{\"pattern\":\"main\",");
    feed(a, CHAT_EV_TOOL_ARGS_DELTA, 0, NULL, NULL, "\"path\":\"src\"}");
    feed(a, CHAT_EV_TOOL_CALL_END, 0, NULL, NULL, NULL);
    feed(a, CHAT_EV_TOOL_CALL_START, 1, "toolu_3", "Glob", NULL);
    feed(a, CHAT_EV_TOOL_ARGS_DELTA, 1, NULL, NULL, "{\"pattern\":\"*.c\"}");
    feed(a, CHAT_EV_TOOL_CALL_END, 1, NULL, NULL, NULL);
    feed(a, CHAT_EV_MESSAGE_END, 0, NULL, NULL, NULL);
}

#define SYS "You are a Claude agent.\nUse tools."

static void test_line_exact(void **state)
{
    (void)state;
    char dir[128], file[192];
    subdir("exact/nested", dir, sizeof dir);
    recorder *r = NULL;
    loco_err err;
    assert_int_equal(record_open(dir, SYS, &r, &err), LOCO_OK);
    chat_request *req = conversation();
    chat_answer a;
    answer_with_calls(&a);
    assert_int_equal(record_exchange(r, req, &a, "fallback", "max_turns", "qwen/qwen3-coder-next",
                                     "msg_abc", &err),
                     LOCO_OK);
    today_file(dir, file, sizeof file);
    char *text = read_text(file);
    mask_time(text);
    assert_string_equal(
        text,
        "{\"messages\":["
        "{\"role\":\"system\",\"content\":\"You are a Claude agent.\\nUse tools.\"},"
        "{\"role\":\"user\",\"content\":\"Where is \\\"main\\\"?\"},"
        "{\"role\":\"assistant\",\"content\":\"Let me look.\\n<tool_call>\\n{\\\"name\\\": "
        "\\\"Read\\\", \\\"arguments\\\": {\\\"file_path\\\": \\\"src/main.c\\\"}}\\n"
        "</tool_call>\"},"
        "{\"role\":\"user\",\"content\":\"<tool_response>\\nint main(void) {}\\n\\n"
        "</tool_response>\"},"
        "{\"role\":\"assistant\",\"content\":\"Found it.\\n<tool_call>\\n{\\\"name\\\": "
        "\\\"Grep\\\", \\\"arguments\\\": {\\\"pattern\\\": \\\"main\\\", \\\"path\\\": "
        "\\\"src\\\"}}\\n</tool_call>\\n<tool_call>\\n{\\\"name\\\": \\\"Glob\\\", "
        "\\\"arguments\\\": {\\\"pattern\\\": \\\"*.c\\\"}}\\n</tool_call>\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"Read\",\"description\":"
        "\"Read a file\",\"parameters\":{\"type\":\"object\",\"properties\":{\"file_path\":"
        "{\"type\":\"string\"}},\"required\":[\"file_path\"]}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"Bash\",\"description\":\"\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{}}}}],"
        "\"id\":\"msg_abc\",\"time\":\"T\",\"route\":\"fallback\",\"reason\":\"max_turns\","
        "\"model\":\"qwen/qwen3-coder-next\"}\n");
    free(text);
    chat_answer_release(&a);
    chat_request_free(req);
    record_close(r);
}

/* No tools, no system prompt override, text-only answer, null metadata; two lines. */
static void test_line_minimal(void **state)
{
    (void)state;
    char dir[128], file[192];
    subdir("minimal", dir, sizeof dir);
    recorder *r = NULL;
    loco_err err;
    assert_int_equal(record_open(dir, NULL, &r, &err), LOCO_OK);
    chat_request *req = chat_request_new();
    chat_message *m = chat_request_add_message(req, CHAT_ROLE_USER);
    add_block(req, m, CHAT_BLOCK_TEXT, "hi");
    chat_answer a;
    chat_answer_init(&a, 1 << 20);
    feed(&a, CHAT_EV_TEXT_DELTA, 0, NULL, NULL, "h\xc3\xa9llo");
    assert_int_equal(record_exchange(r, req, &a, "local", "", "loco", "id1", &err), LOCO_OK);
    assert_int_equal(record_exchange(r, req, &a, NULL, NULL, NULL, NULL, &err), LOCO_OK);
    today_file(dir, file, sizeof file);
    char *text = read_text(file);
    char *second = strchr(text, '\n') + 1;
    second[-1] = '\0';
    mask_time(text);
    mask_time(second);
    assert_string_equal(text, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
                              "{\"role\":\"assistant\",\"content\":\"h\xc3\xa9llo\"}],"
                              "\"id\":\"id1\",\"time\":\"T\",\"route\":\"local\","
                              "\"reason\":null,\"model\":\"loco\"}");
    assert_string_equal(second, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
                                "{\"role\":\"assistant\",\"content\":\"h\xc3\xa9llo\"}],"
                                "\"id\":null,\"time\":\"T\",\"route\":null,"
                                "\"reason\":null,\"model\":null}\n");
    free(text);
    chat_answer_release(&a);
    chat_request_free(req);
    record_close(r);
    record_close(NULL);
}

static void test_errors(void **state)
{
    (void)state;
    recorder *r = (recorder *)1;
    loco_err err;
    assert_int_not_equal(record_open("/proc/loco-no-such/dir", SYS, &r, &err), LOCO_OK);
    assert_null(r);
    assert_non_null(strstr(err.msg, "/proc/loco-no-such/dir"));
    assert_int_equal(record_open("", SYS, &r, &err), LOCO_ERR_INVALID);
    /* a tool call whose arguments are not JSON: nothing is written */
    char dir[128], file[192];
    subdir("errors", dir, sizeof dir);
    assert_int_equal(record_open(dir, SYS, &r, &err), LOCO_OK);
    chat_request *req = conversation();
    chat_answer a;
    chat_answer_init(&a, 1 << 20);
    feed(&a, CHAT_EV_TOOL_CALL_START, 0, "t", "Read", NULL);
    feed(&a, CHAT_EV_TOOL_ARGS_DELTA, 0, NULL, NULL, "{\"file_path\":");
    assert_int_equal(record_exchange(r, req, &a, "local", NULL, "m", "x", &err),
                     LOCO_ERR_INVALID);
    assert_string_equal(err.msg, "recording exchange x: a tool call of the answer has "
                                 "arguments that are not JSON");
    today_file(dir, file, sizeof file);
    assert_false(file_exists(file));
    chat_answer_release(&a);
    chat_request_free(req);
    record_close(r);
}

#define THREADS 8
#define PER_THREAD 50

typedef struct {
    recorder *r;
    int t;
} worker;

static void *record_worker(void *arg)
{
    worker *w = arg;
    chat_request *req = conversation();
    chat_answer a;
    answer_with_calls(&a);
    for (int i = 0; i < PER_THREAD; i++) {
        char id[32];
        snprintf(id, sizeof id, "t%d-%d", w->t, i);
        loco_err err;
        if (record_exchange(w->r, req, &a, "local", NULL, "loco", id, &err) != LOCO_OK)
            w->t = -1;
    }
    chat_answer_release(&a);
    chat_request_free(req);
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    char dir[128], file[192];
    subdir("threads", dir, sizeof dir);
    recorder *r = NULL;
    loco_err err;
    assert_int_equal(record_open(dir, SYS, &r, &err), LOCO_OK);
    pthread_t th[THREADS];
    worker w[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker){r, t};
        assert_int_equal(pthread_create(&th[t], NULL, record_worker, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(w[t].t, t);
    }
    today_file(dir, file, sizeof file);
    char *text = read_text(file);
    bool seen[THREADS][PER_THREAD] = {{false}};
    int lines = 0;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        assert_non_null(end);
        json_t *v = json_parse(line, (size_t)(end - line), NULL);
        assert_non_null(v);
        int t = -1, i = -1;
        assert_int_equal(sscanf(json_get_str(v, "id"), "t%d-%d", &t, &i), 2);
        assert_true(t >= 0 && t < THREADS && i >= 0 && i < PER_THREAD);
        assert_false(seen[t][i]);
        seen[t][i] = true;
        assert_int_equal(json_array_size(json_object_get(v, "messages")), 5);
        json_decref(v);
        lines++;
        line = end + 1;
    }
    assert_int_equal(lines, THREADS * PER_THREAD);
    free(text);
    record_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_exact),
        cmocka_unit_test(test_line_minimal),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
