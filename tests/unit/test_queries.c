/* test_queries.c: the batch queries file parser (agent/queries.c): good lines, every kind of
 * bad line with its line number, limits, and the shipped example files. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>

#include "agent/queries.h"
#include "base/buf.h"

static agent_queries parse_ok(const char *text)
{
    agent_queries q;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(agent_queries_parse(text, strlen(text), &q, &err), LOCO_OK);
    return q;
}

static void test_good_lines(void **state)
{
    (void)state;
    agent_queries q = parse_ok("1\tWhat is the main purpose?\n"
                               "2\tHow does X work?\r\n"
                               "\n"
                               "# a comment\n"
                               "  10 \t  Trimmed question?  \n"
                               "11\tlast line without newline");
    assert_int_equal(q.n, 4);
    assert_int_equal(q.n_problems, 0);
    assert_int_equal(q.items[0].id, 1);
    assert_string_equal(q.items[0].question, "What is the main purpose?");
    assert_int_equal(q.items[0].line, 1);
    assert_string_equal(q.items[1].question, "How does X work?");
    assert_int_equal(q.items[2].id, 10);
    assert_string_equal(q.items[2].question, "Trimmed question?");
    assert_int_equal(q.items[2].line, 5);
    assert_int_equal(q.items[3].id, 11);
    assert_string_equal(q.items[3].question, "last line without newline");
    assert_int_equal(q.items[3].line, 6);
    agent_queries_release(&q);
}

static void test_bom_and_leading_tab(void **state)
{
    (void)state;
    agent_queries q = parse_ok("\xEF\xBB\xBF" "7\tfirst\n\t8\tsecond\n");
    assert_int_equal(q.n, 2);
    assert_int_equal(q.items[0].id, 7);
    assert_int_equal(q.items[1].id, 8);
    assert_string_equal(q.items[1].question, "second");
    agent_queries_release(&q);
}

static void test_bad_lines(void **state)
{
    (void)state;
    agent_queries q = parse_ok("1\tok one\n"                 /* 1 */
                               "no tab here\n"               /* 2 */
                               "x2\tbad id\n"                /* 3 */
                               "0\tzero id\n"                /* 4 */
                               "3\t   \n"                    /* 5 */
                               "1\tduplicate\n"              /* 6 */
                               "4\tbad \xff utf8\n"          /* 7 */
                               "5\ttab\tinside\n"            /* 8 */
                               "-6\tnegative\n"              /* 9 */
                               "99999999999\ttoo big\n"      /* 10 */
                               "12\tok two\n");              /* 11 */
    assert_int_equal(q.n, 2);
    assert_int_equal(q.items[0].id, 1);
    assert_int_equal(q.items[1].id, 12);
    assert_int_equal(q.items[1].line, 11);
    assert_int_equal(q.n_problems, 9);
    size_t lines[] = {2, 3, 4, 5, 6, 7, 8, 9, 10};
    for (size_t i = 0; i < 9; i++)
        assert_int_equal(q.problems[i].line, lines[i]);
    assert_string_equal(q.problems[0].message, "expected id<TAB>question (no tab)");
    assert_string_equal(q.problems[1].message, "the id 'x2' is not an integer in [1, 999999999]");
    assert_string_equal(q.problems[2].message, "the id '0' is not an integer in [1, 999999999]");
    assert_string_equal(q.problems[3].message, "query 3 has an empty question");
    assert_string_equal(q.problems[4].message, "duplicate id 1 (first on line 1)");
    assert_string_equal(q.problems[5].message, "query 4: question is not valid UTF-8");
    assert_string_equal(q.problems[6].message,
                        "query 5: question holds a control character (tab?)");
    agent_queries_release(&q);
}

static void test_nul_byte_is_bad(void **state)
{
    (void)state;
    const char text[] = "1\tbefore\0after\n2\tok\n";
    agent_queries q;
    loco_err err;
    assert_int_equal(agent_queries_parse(text, sizeof(text) - 1, &q, &err), LOCO_OK);
    assert_int_equal(q.n, 1);
    assert_int_equal(q.items[0].id, 2);
    assert_int_equal(q.n_problems, 1);
    assert_int_equal(q.problems[0].line, 1);
    agent_queries_release(&q);
}

static void test_limits(void **state)
{
    (void)state;
    /* a question over the per-question limit */
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_appends(&b, "1\t");
    for (int i = 0; i < AGENT_QUERY_MAX_BYTES + 1; i++)
        buf_appendc(&b, 'a');
    buf_appends(&b, "\n2\tfine\n");
    agent_queries q;
    loco_err err;
    assert_int_equal(agent_queries_parse(b.data, b.len, &q, &err), LOCO_OK);
    assert_int_equal(q.n, 1);
    assert_int_equal(q.n_problems, 1);
    assert_string_equal(q.problems[0].message, "query 1: question longer than 16384 bytes");
    agent_queries_release(&q);
    /* the whole file over its limit */
    assert_int_equal(agent_queries_parse(b.data, AGENT_QUERIES_MAX_BYTES + 1, &q, &err),
                     LOCO_ERR_LIMIT);
    assert_int_equal(q.n, 0);
    buf_release(&b);
}

static void test_empty_and_missing(void **state)
{
    (void)state;
    agent_queries q = parse_ok("");
    assert_int_equal(q.n, 0);
    assert_int_equal(q.n_problems, 0);
    agent_queries_release(&q);
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(agent_queries_load("/nonexistent/x-queries.txt", &q, &err),
                     LOCO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/x-queries.txt"));
}

static void test_file_name(void **state)
{
    (void)state;
    char name[32];
    agent_query_file_name(1, "md", name, sizeof(name));
    assert_string_equal(name, "q001.md");
    agent_query_file_name(42, "jsonl", name, sizeof(name));
    assert_string_equal(name, "q042.jsonl");
    agent_query_file_name(1234, "md", name, sizeof(name));
    assert_string_equal(name, "q1234.md");
}

/* Every shipped data/queries/NAME-queries.txt parses without a problem. */
static void test_shipped_files(void **state)
{
    (void)state;
    const char *src = getenv("LOCO_SOURCE_DIR");
    if (!src)
        skip();
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/data/queries", src);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    bool tqdm = false;
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, "-queries.txt"))
            continue;
        char path[8192];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        agent_queries q;
        loco_err err;
        loco_err_clear(&err);
        assert_int_equal(agent_queries_load(path, &q, &err), LOCO_OK);
        assert_true(q.n >= 10);
        assert_int_equal(q.n_problems, 0);
        if (!strcmp(e->d_name, "tqdm-queries.txt")) {
            /* the seed's batch: 200 questions, ids 1..200 in order */
            tqdm = true;
            assert_int_equal(q.n, 200);
            for (size_t i = 0; i < q.n; i++)
                assert_int_equal(q.items[i].id, (long)i + 1);
        }
        agent_queries_release(&q);
        files++;
    }
    closedir(d);
    assert_true(files >= 2);
    assert_true(tqdm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_lines),       cmocka_unit_test(test_bom_and_leading_tab),
        cmocka_unit_test(test_bad_lines),        cmocka_unit_test(test_nul_byte_is_bad),
        cmocka_unit_test(test_limits),           cmocka_unit_test(test_empty_and_missing),
        cmocka_unit_test(test_file_name),        cmocka_unit_test(test_shipped_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
