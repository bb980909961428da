/* test_base.c: unit tests of base/: buf, arena, str, json, file, dotenv. */
#include "base/common.h"

#include <setjmp.h>
#include <signal.h>
#include <cmocka.h>
#include <unistd.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/file.h"
#include "base/json.h"
#include "base/str.h"
#include "base/utf8.h"

static void test_buf_limit(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_appends(&b, "12345678"), LOCO_OK);
    assert_int_equal(buf_appendc(&b, 'x'), LOCO_ERR_LIMIT);
    assert_string_equal(buf_str(&b), "12345678");
    buf_consume(&b, 3);
    assert_string_equal(buf_str(&b), "45678");
    size_t n;
    char *s = buf_take(&b, &n);
    assert_int_equal(n, 5);
    assert_string_equal(s, "45678");
    free(s);
    assert_null(b.data);
    buf_release(&b);
}

static void test_buf_json_str(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    const char in[] = "a\"b\\c\nd\x01" "e\xc3\xa9";
    assert_int_equal(buf_append_json_str(&b, in, sizeof(in) - 1), LOCO_OK);
    assert_string_equal(buf_str(&b), "\"a\\\"b\\\\c\\nd\\u0001e\xc3\xa9\"");
    buf_release(&b);
}

static void test_arena(void **state)
{
    (void)state;
    arena a;
    arena_init(&a, 1 << 20);
    char *s = arena_strdup(&a, "hello");
    assert_string_equal(s, "hello");
    void *big = arena_alloc(&a, 100000);
    assert_non_null(big);
    assert_null(arena_alloc(&a, 2 << 20));
    char *f = arena_sprintf(&a, "%d-%s", 7, "x");
    assert_string_equal(f, "7-x");
    assert_string_equal(s, "hello");
    arena_release(&a);
}

static void test_str(void **state)
{
    (void)state;
    long v;
    assert_int_equal(str_parse_long("42", 0, 100, &v), LOCO_OK);
    assert_int_equal(v, 42);
    assert_int_equal(str_parse_long("42x", 0, 100, &v), LOCO_ERR_INVALID);
    assert_int_equal(str_parse_long("101", 0, 100, &v), LOCO_ERR_INVALID);
    assert_int_equal(str_parse_long("", 0, 100, &v), LOCO_ERR_INVALID);
    assert_true(str_glob_list_match("claude-haiku-*,*haiku*", "claude-3-5-haiku-latest"));
    assert_true(str_glob_list_match("claude-haiku-*, *haiku*", "claude-haiku-4-5-20251001"));
    assert_false(str_glob_list_match("claude-haiku-*,*haiku*", "claude-sonnet-4"));
    char id[64];
    str_random_id("toolu_", id, sizeof(id));
    assert_int_equal(strlen(id), 30);
    char id2[64];
    str_random_id("toolu_", id2, sizeof(id2));
    assert_string_not_equal(id, id2);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(str_shell_quote(&b, "it's $(x)"), LOCO_OK);
    assert_string_equal(buf_str(&b), "'it'\\''s $(x)'");
    buf_release(&b);
    assert_int_equal(str_partial_suffix("abc<tool_", 9, "<tool_call>"), 6);
    assert_int_equal(str_partial_suffix("abc", 3, "<tool_call>"), 0);
    assert_true(utf8_valid("h\xc3\xa9", 3));
    assert_false(utf8_valid("h\xc3", 2));
    assert_int_equal(utf8_complete_len("h\xe2\x82", 3), 1);
    assert_int_equal(utf8_complete_len("h\xe2\x82\xac", 4), 4);
}

static void test_json(void **state)
{
    (void)state;
    loco_err err;
    loco_err_clear(&err);
    json_t *v = json_parse("{\"a\": [1, 2,}", 13, &err);
    assert_null(v);
    assert_int_equal(err.code, LOCO_ERR_INVALID);
    assert_non_null(strstr(err.msg, "line 1"));
    v = json_parse("{\"a\":\"x\",\"n\":3}", 15, &err);
    assert_non_null(v);
    assert_string_equal(json_get_str(v, "a"), "x");
    long n;
    assert_true(json_get_long(v, "n", &n));
    assert_int_equal(n, 3);
    assert_null(json_get_str(v, "n"));
    json_decref(v);
    char deep[600];
    memset(deep, '[', sizeof(deep));
    assert_null(json_parse(deep, sizeof(deep), &err));
    assert_non_null(strstr(err.msg, "nesting"));
}

static void test_dotenv(void **state)
{
    (void)state;
    const char *text = "# comment\nexport A=1\nB = \"two words\" \nC=x # note\n\nD='q#x'\n";
    dotenv env;
    loco_err err;
    assert_int_equal(dotenv_parse(text, strlen(text), &env, &err), LOCO_OK);
    assert_string_equal(dotenv_get(&env, "A"), "1");
    assert_string_equal(dotenv_get(&env, "B"), "two words");
    assert_string_equal(dotenv_get(&env, "C"), "x");
    assert_string_equal(dotenv_get(&env, "D"), "q#x");
    assert_null(dotenv_get(&env, "E"));
    dotenv_release(&env);
    const char *bad = "A=1\nnot a line\n";
    assert_int_equal(dotenv_parse(bad, strlen(bad), &env, &err), LOCO_ERR_INVALID);
    assert_non_null(strstr(err.msg, "line 2"));
}

static void test_file_atomic(void **state)
{
    (void)state;
    char dir[] = "/tmp/loco-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/sub/dir/f.txt", dir);
    loco_err err;
    assert_int_equal(file_write_atomic(path, "hello", 5, 0644, &err), LOCO_OK);
    buf b;
    buf_init(&b, 3);
    assert_int_equal(file_read_all(path, &b, &err), LOCO_ERR_LIMIT);
    buf_release(&b);
    buf_init(&b, 100);
    assert_int_equal(file_read_all(path, &b, &err), LOCO_OK);
    assert_string_equal(buf_str(&b), "hello");
    buf_release(&b);
    assert_int_equal(file_read_all("/nonexistent/x", &b, &err), LOCO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/x"));
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A write to a pipe whose reader is gone fails with EPIPE; the process lives on (SIGPIPE at
 * its default, which would kill it). */
static void test_write_nosigpipe(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_DFL);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(file_write_nosigpipe(p[1], "x", 1), 1);
    close(p[0]);
    errno = 0;
    assert_int_equal(file_write_nosigpipe(p[1], "y", 1), -1);
    assert_int_equal(errno, EPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    assert_int_equal(sigismember(&pending, SIGPIPE), 0); /* taken off, not left to fire */
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_limit),   cmocka_unit_test(test_buf_json_str),
        cmocka_unit_test(test_arena),       cmocka_unit_test(test_str),
        cmocka_unit_test(test_json),        cmocka_unit_test(test_dotenv),
        cmocka_unit_test(test_file_atomic), cmocka_unit_test(test_write_nosigpipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
