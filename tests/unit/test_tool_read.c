/* test_tool_read.c: unit tests of the Read tool (agent/tool_read.c) on real files in a
 * temporary directory: numbering, offset/limit, long lines, binary, directories, empty files,
 * huge files streamed in bounded memory, the output cap, argument errors. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/tools.h"
#include "agent/tools_int.h"
#include "base/buf.h"
#include "base/file.h"
#include "base/str.h"
#include "base/utf8.h"

typedef test_fx fx;

static void put(fx *f, const char *rel, const char *data, size_t n)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", f->repo, rel);
    assert_int_equal(file_write_atomic(p, data, n, 0644, NULL), LOCO_OK);
}

static int setup(void **state) { return test_fx_setup(state, "read"); }

/* Runs Read with args (JSON text); returns the malloc'd result. */
static char *run(fx *f, size_t max_output, const char *json, bool *is_error)
{
    json_error_t je;
    json_t *args = json_loads(json, 0, &je);
    assert_non_null(args);
    agent_tool_ctx ctx = {.sb = &f->sb, .max_output = max_output, .threads = 1};
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    *is_error = true;
    assert_int_equal(agent_tool_read.run(&ctx, args, &out, is_error), LOCO_OK);
    json_decref(args);
    return buf_take(&out, NULL);
}

static void check(fx *f, const char *json, bool want_error, const char *want)
{
    bool is_error;
    char *got = run(f, 0, json, &is_error);
    assert_string_equal(got, want);
    assert_int_equal(is_error, want_error);
    free(got);
}

static void test_numbering(void **state)
{
    fx *f = *state;
    put(f, "a.txt", "alpha\nbeta\ngamma\n", 17);
    check(f, "{\"file_path\":\"a.txt\"}", false, "     1\talpha\n     2\tbeta\n     3\tgamma\n");
    char json[1200];
    snprintf(json, sizeof(json), "{\"file_path\":\"%s/a.txt\",\"offset\":2,\"limit\":1}", f->repo);
    check(f, json, false, "     2\tbeta\n");
    check(f, "{\"file_path\":\"a.txt\",\"offset\":3,\"limit\":100}", false, "     3\tgamma\n");
    /* offset 0 and string numbers are accepted */
    check(f, "{\"file_path\":\"a.txt\",\"offset\":0,\"limit\":\"1\"}", false, "     1\talpha\n");
    /* no final newline, CRLF, an empty line, UTF-8 */
    put(f, "b.txt", "x\r\n\ny \xc3\xa9", 8);
    check(f, "{\"file_path\":\"b.txt\"}", false, "     1\tx\n     2\t\n     3\ty \xc3\xa9\n");
    /* line 1000000 gets a wider number, still tab-separated */
    buf big;
    buf_init(&big, BUF_UNLIMITED);
    for (int i = 0; i < 1000000; i++)
        assert_int_equal(buf_appendc(&big, '\n'), LOCO_OK);
    assert_int_equal(buf_appends(&big, "last\n"), LOCO_OK);
    put(f, "c.txt", big.data, big.len);
    buf_release(&big);
    check(f, "{\"file_path\":\"c.txt\",\"offset\":999999}", false,
          "999999\t\n1000000\t\n1000001\tlast\n");
}

static void test_default_limit_and_long_lines(void **state)
{
    fx *f = *state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    for (int i = 1; i <= 2500; i++)
        assert_int_equal(buf_appendf(&b, "%d\n", i), LOCO_OK);
    put(f, "n.txt", b.data, b.len);
    bool is_error;
    char *got = run(f, 1u << 20, "{\"file_path\":\"n.txt\"}", &is_error);
    /* AGENT_TOOL_OUTPUT_MAX caps ctx->max_output, so only the head shows; look at the ends */
    assert_false(is_error);
    assert_true(str_starts_with(got, "     1\t1\n     2\t2\n"));
    free(got);
    got = run(f, 0, "{\"file_path\":\"n.txt\",\"offset\":1990,\"limit\":11}", &is_error);
    assert_string_equal(got, "  1990\t1990\n  1991\t1991\n  1992\t1992\n  1993\t1993\n"
                             "  1994\t1994\n  1995\t1995\n  1996\t1996\n  1997\t1997\n"
                             "  1998\t1998\n  1999\t1999\n  2000\t2000\n");
    free(got);
    got = run(f, 0, "{\"file_path\":\"n.txt\",\"offset\":2490}", &is_error);
    assert_true(str_starts_with(got, "  2490\t2490\n"));
    assert_true(str_ends_with(got, "  2500\t2500\n"));
    free(got);
    buf_reset(&b);

    /* a 2500-character line is cut to 2000 characters, and says so */
    for (int i = 0; i < 2500; i++)
        assert_int_equal(buf_appendc(&b, (char)('a' + i % 26)), LOCO_OK);
    assert_int_equal(buf_appends(&b, "\nshort\n"), LOCO_OK);
    put(f, "long.txt", b.data, b.len);
    got = run(f, 0, "{\"file_path\":\"long.txt\"}", &is_error);
    buf want;
    buf_init(&want, BUF_UNLIMITED);
    assert_int_equal(buf_appends(&want, "     1\t"), LOCO_OK);
    assert_int_equal(buf_append(&want, b.data, 2000), LOCO_OK);
    assert_int_equal(buf_appends(&want, "... [line cut: 2500 characters, first 2000 shown]\n"
                                        "     2\tshort\n"),
                     LOCO_OK);
    assert_string_equal(got, want.data);
    free(got);
    buf_release(&want);
    buf_release(&b);
}

static void test_window_is_2000_lines(void **state)
{
    fx *f = *state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    for (int i = 1; i <= 3000; i++)
        assert_int_equal(buf_appends(&b, "x\n"), LOCO_OK);
    put(f, "x.txt", b.data, b.len);
    buf_release(&b);
    bool is_error;
    char *got = run(f, 0, "{\"file_path\":\"x.txt\"}", &is_error);
    assert_false(is_error);
    size_t lines = 0;
    for (const char *p = got; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2000);
    assert_true(str_ends_with(got, "  2000\tx\n"));
    free(got);
}

static void test_empty_and_past_end(void **state)
{
    fx *f = *state;
    put(f, "empty.txt", "", 0);
    check(f, "{\"file_path\":\"empty.txt\"}", false,
          "<system-reminder>Warning: the file exists but the contents are empty."
          "</system-reminder>");
    put(f, "three.txt", "1\n2\n3\n", 6);
    check(f, "{\"file_path\":\"three.txt\",\"offset\":10}", false,
          "<system-reminder>Warning: the file exists but is shorter than the provided offset "
          "(10). The file has 3 lines.</system-reminder>");
    put(f, "three2.txt", "1\n2\n3", 5);
    check(f, "{\"file_path\":\"three2.txt\",\"offset\":4}", false,
          "<system-reminder>Warning: the file exists but is shorter than the provided offset "
          "(4). The file has 3 lines.</system-reminder>");
}

static void test_refusals(void **state)
{
    fx *f = *state;
    char want[4096];
    /* binary: a NUL byte */
    put(f, "bin.dat", "ELF\0\1\2text", 11);
    bool is_error;
    char *got = run(f, 0, "{\"file_path\":\"bin.dat\"}", &is_error);
    assert_true(is_error);
    snprintf(want, sizeof(want),
             "Read: %s/bin.dat: file is binary (NUL bytes or invalid UTF-8 in its first 8 KB); "
             "Read shows text files only. Use Bash (e.g. `file`, `xxd %s/bin.dat | head`) to "
             "inspect it.",
             f->repo, f->repo);
    assert_string_equal(got, want);
    free(got);
    /* binary: mostly invalid UTF-8 */
    char noise[256];
    for (int i = 0; i < 256; i++)
        noise[i] = (char)(0x80 + (i * 7) % 64);
    put(f, "noise.dat", noise, sizeof(noise));
    got = run(f, 0, "{\"file_path\":\"noise.dat\"}", &is_error);
    assert_true(is_error);
    assert_non_null(strstr(got, "file is binary"));
    free(got);
    /* a stray Latin-1 byte in text: read, the byte shown as U+FFFD */
    put(f, "latin.txt", "the caf\xe9 is open today\n", 23);
    check(f, "{\"file_path\":\"latin.txt\"}", false,
          "     1\tthe caf\xef\xbf\xbd is open today\n");
    /* a directory */
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/sub", f->repo);
    mkdir(dir, 0755);
    snprintf(want, sizeof(want),
             "Read: %s is a directory, not a file. Use Bash (ls %s) or Glob to list its "
             "contents.",
             dir, dir);
    check(f, "{\"file_path\":\"sub\"}", true, want);
    /* a FIFO is refused without blocking */
    char fifo[1024];
    snprintf(fifo, sizeof(fifo), "%s/pipe", f->repo);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    snprintf(want, sizeof(want),
             "Read: %s is not a regular file (device, FIFO or socket); Read only reads files.",
             fifo);
    check(f, "{\"file_path\":\"pipe\"}", true, want);
    /* missing, outside */
    snprintf(want, sizeof(want), "Read: File does not exist: %s/nope.txt", f->repo);
    check(f, "{\"file_path\":\"nope.txt\"}", true, want);
    snprintf(want, sizeof(want),
             "Read: path /etc/passwd is outside the repository %s and the output directory %s",
             f->repo, f->out);
    check(f, "{\"file_path\":\"/etc/passwd\"}", true, want);
}

static void test_bad_args(void **state)
{
    fx *f = *state;
    check(f, "{}", true, "Read: file_path is required");
    check(f, "{\"file_path\":null}", true, "Read: file_path is required");
    check(f, "{\"file_path\":7}", true, "Read: file_path must be a string");
    check(f, "{\"file_path\":\"a\",\"offset\":\"x\"}", true, "Read: offset must be an integer");
    check(f, "{\"file_path\":\"a\",\"limit\":1.5}", true, "Read: limit must be an integer");
    check(f, "{\"file_path\":\"a\",\"limit\":0}", true,
          "Read: limit must be a positive number of lines (got 0)");
    check(f, "{\"file_path\":\"a\",\"offset\":-3}", true,
          "Read: offset must be a line number >= 1 (got -3)");
    check(f, "[1,2]", true, "Read: file_path is required");
    check(f, "{\"file_path\":\"\"}", true, "Read: empty path");
}

static void test_output_cap(void **state)
{
    fx *f = *state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    for (int i = 1; i <= 300; i++)
        assert_int_equal(buf_appends(&b, "0123456789012345678901234567890123456789\n"), LOCO_OK);
    put(f, "wide.txt", b.data, b.len);
    buf_release(&b);
    bool is_error;
    char *got = run(f, 2000, "{\"file_path\":\"wide.txt\"}", &is_error);
    assert_false(is_error);
    /* each line is 6+1+40+1 = 48 bytes; 1800 bytes of room hold 37 lines */
    assert_true(strlen(got) <= 2000);
    assert_true(str_starts_with(got, "     1\t0123"));
    assert_non_null(strstr(got, "    37\t0123456789012345678901234567890123456789\n\n[Read: "
                                "output limit of 2000 bytes reached; lines 1-37 shown. Continue "
                                "with offset=38]"));
    assert_null(strstr(got, "    38\t"));
    free(got);
}

/* 50 MB of lines, read near the end: the result is right and memory stays far below the
 * file's size (the file is streamed, never loaded). */
static void test_huge_file_streamed(void **state)
{
    fx *f = *state;
    char p[1024];
    snprintf(p, sizeof(p), "%s/huge.log", f->repo);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    buf chunk;
    buf_init(&chunk, BUF_UNLIMITED);
    long line = 0;
    size_t total = 0;
    while (total < 50u * 1024 * 1024) {
        buf_reset(&chunk);
        while (chunk.len < (1u << 20)) {
            line++;
            assert_int_equal(buf_appendf(&chunk, "line %ld of a huge log file, padding padding\n",
                                         line),
                             LOCO_OK);
        }
        assert_int_equal(write(fd, chunk.data, chunk.len), (ssize_t)chunk.len);
        total += chunk.len;
    }
    close(fd);
    buf_release(&chunk);

    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    char json[256];
    snprintf(json, sizeof(json), "{\"file_path\":\"huge.log\",\"offset\":%ld,\"limit\":2}",
             line - 1);
    bool is_error;
    char *got = run(f, 0, json, &is_error);
    getrusage(RUSAGE_SELF, &after);
    char want[256];
    snprintf(want, sizeof(want),
             "%6ld\tline %ld of a huge log file, padding padding\n"
             "%6ld\tline %ld of a huge log file, padding padding\n",
             line - 1, line - 1, line, line);
    assert_string_equal(got, want);
    assert_false(is_error);
    free(got);
    /* ru_maxrss is in KB: the peak grew by far less than the 50 MB file */
    assert_true(after.ru_maxrss - before.ru_maxrss < 16 * 1024);
    /* past the end of the huge file: the line count is reported */
    snprintf(json, sizeof(json), "{\"file_path\":\"huge.log\",\"offset\":%ld}", line + 5);
    got = run(f, 0, json, &is_error);
    snprintf(want, sizeof(want),
             "<system-reminder>Warning: the file exists but is shorter than the provided offset "
             "(%ld). The file has %ld lines.</system-reminder>",
             line + 5, line);
    assert_string_equal(got, want);
    free(got);
}

/* The shared helpers of tools_int.h. */
static void test_helpers(void **state)
{
    (void)state;
    json_t *a = json_loads("{\"s\":\"x\",\"i\":5,\"f\":2.0,\"g\":2.5,\"n\":null,"
                           "\"t\":\"TRUE\",\"b\":false,\"d\":\"12\"}",
                           0, NULL);
    buf err;
    buf_init(&err, TOOLS_ARG_ERR_MAX);
    const char *s = "default";
    long i = -1;
    bool b = true;
    assert_true(tools_arg_str(a, "s", true, &s, &err));
    assert_string_equal(s, "x");
    s = "default";
    assert_true(tools_arg_str(a, "n", false, &s, &err)); /* null is absent */
    assert_string_equal(s, "default");
    assert_true(tools_arg_str(a, "zz", false, &s, &err));
    assert_true(tools_arg_int(a, "i", true, &i, &err));
    assert_int_equal(i, 5);
    assert_true(tools_arg_int(a, "f", true, &i, &err));
    assert_int_equal(i, 2);
    assert_true(tools_arg_int(a, "d", true, &i, &err));
    assert_int_equal(i, 12);
    assert_true(tools_arg_bool(a, "t", true, &b, &err));
    assert_true(b);
    assert_true(tools_arg_bool(a, "b", true, &b, &err));
    assert_false(b);
    assert_int_equal(err.len, 0);
    assert_false(tools_arg_int(a, "g", true, &i, &err));
    assert_string_equal(buf_str(&err), "g must be an integer");
    buf_reset(&err);
    assert_false(tools_arg_str(a, "i", true, &s, &err));
    assert_string_equal(buf_str(&err), "i must be a string");
    buf_reset(&err);
    assert_false(tools_arg_bool(a, "s", true, &b, &err));
    assert_string_equal(buf_str(&err), "s must be a boolean");
    buf_reset(&err);
    assert_false(tools_arg_str(a, "n", true, &s, &err));
    assert_string_equal(buf_str(&err), "n is required");
    assert_false(tools_arg_str(NULL, "q", true, &s, NULL));
    buf_release(&err);
    json_decref(a);
    json_t *nul = json_object();
    json_object_set_new(nul, "p", json_stringn("a\0b", 3));
    buf_init(&err, TOOLS_ARG_ERR_MAX);
    assert_false(tools_arg_str(nul, "p", true, &s, &err));
    assert_string_equal(buf_str(&err), "p must not contain NUL bytes");
    buf_release(&err);
    json_decref(nul);

    buf out;
    buf_init(&out, BUF_UNLIMITED);
    bool is_error = false;
    assert_int_equal(tools_error(&out, &is_error, "Read: %s", "bad"), LOCO_OK);
    assert_true(is_error);
    assert_string_equal(buf_str(&out), "Read: bad");
    buf_reset(&out);
    /* cap: under the limit nothing changes; over it the head is kept with a note, total <= max */
    assert_int_equal(buf_appends(&out, "short"), LOCO_OK);
    assert_int_equal(tools_cap_output(&out, 400, "output"), LOCO_OK);
    assert_string_equal(buf_str(&out), "short");
    buf_reset(&out);
    for (int k = 0; k < 100; k++)
        assert_int_equal(buf_appendf(&out, "line %02d\n", k), LOCO_OK);
    assert_int_equal(tools_cap_output(&out, 400, "output"), LOCO_OK);
    assert_true(out.len <= 400);
    assert_true(str_starts_with(out.data, "line 00\nline 01\n"));
    assert_true(str_ends_with(out.data, "line 39\n\n[output truncated: 481 of 800 bytes cut; "
                                        "narrow the request to see the rest]"));
    buf_reset(&out);
    /* a cut never splits a UTF-8 character; _from leaves the prefix alone */
    assert_int_equal(buf_appends(&out, "KEEP:"), LOCO_OK);
    for (int k = 0; k < 300; k++)
        assert_int_equal(buf_appends(&out, "\xc3\xa9"), LOCO_OK);
    assert_int_equal(tools_cap_output_from(&out, 5, 301, "text"), LOCO_OK);
    assert_true(str_starts_with(out.data, "KEEP:\xc3\xa9"));
    assert_true(utf8_valid(out.data, out.len));
    assert_true(out.len - 5 <= 301);
    buf_reset(&out);
    assert_int_equal(tools_append_text(&out, "a\0b\xff\xc3\xa9", 6), LOCO_OK);
    assert_int_equal(out.len, 10);
    assert_memory_equal(out.data, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xc3\xa9", 10);
    buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_helpers),
        cmocka_unit_test_setup_teardown(test_numbering, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_default_limit_and_long_lines, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_window_is_2000_lines, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_past_end, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_output_cap, setup, test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_huge_file_streamed, setup, test_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
