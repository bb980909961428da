/* test_tool_grep.c: the Grep tool on a real tree in a temp dir: output modes and their exact
 * formats, ordering by mtime, context and separators, pagination, glob and type filters,
 * binary and huge files (window boundaries), multiline, case, bad regex, sandbox refusals. */
#include "base/common.h"

#include <setjmp.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#include "agent/tools.h"
#include "base/str.h"

static test_fx *fx;
static const char *root; /* fx->repo: the sandbox's repository, where the tools run */

/* Appends s to dst (size bytes). */
static void cat(char *dst, size_t size, const char *s)
{
    size_t l = strlen(dst), n = strlen(s);
    assert_true(l + n < size);
    memcpy(dst + l, s, n + 1);
}

static void put_n(const char *rel, const char *text, size_t n, long mtime)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    }
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
    struct timeval tv[2] = {{mtime, 0}, {mtime, 0}};
    assert_int_equal(utimes(p, tv), 0);
}

static void put(const char *rel, const char *text, long mtime)
{
    put_n(rel, text, strlen(text), mtime);
}

static int setup(void **state)
{
    LOCO_UNUSED(state);
    fx = test_fx_new("grep");
    if (!fx || test_fx_sandbox(fx, false) != 0)
        return -1;
    root = fx->repo;
    put(".gitignore", "*.log\nbig/\n", 500);
    put("a.c", "int alpha;\nint beta;\nint gamma;\nALPHA again\n", 1000);
    put("b.c", "nothing here\nalpha\n", 2000);
    put("sub/c.h", "x\ny\nalpha beta\nz\n", 1500);
    put_n("bin.dat", "alpha\0binary\n", 13, 3000);
    put("ignored.log", "alpha\n", 4000);
    put(".hidden", "alpha hidden\n", 100);
    return 0;
}

static int teardown(void **state)
{
    LOCO_UNUSED(state);
    test_fx_free(fx);
    return 0;
}

/* Runs Grep with JSON args (printf-style, "%R" is not special: pass root yourself). */
static char *grep_threads(int threads, size_t max_output, bool *is_error, const char *fmt, ...)
{
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    json_error_t jerr;
    json_t *args = json_loads(text, 0, &jerr);
    if (!args)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    agent_tool_ctx ctx = {.sb = &fx->sb, .max_output = max_output, .threads = threads};
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    assert_int_equal(agent_tool_grep.run(&ctx, args, &out, is_error), LOCO_OK);
    json_decref(args);
    return buf_take(&out, NULL);
}

#define GREP(...) grep_threads(3, 0, &is_error, __VA_ARGS__)

/* Replaces every occurrence of the root with "R" so expectations stay short. */
static char *rel(char *s)
{
    size_t rl = strlen(root);
    char *w = s;
    for (const char *r = s; *r;) {
        if (strncmp(r, root, rl) == 0) {
            *w++ = 'R';
            r += rl;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return s;
}

static void expect(char *got, const char *want)
{
    rel(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_files_with_matches(void **state)
{
    LOCO_UNUSED(state);
    bool is_error;
    expect(GREP("{\"pattern\":\"alpha\"}"),
           "Found 4 files\nR/b.c\nR/sub/c.h\nR/a.c\nR/.hidden");
    assert_false(is_error);
    expect(GREP("{\"pattern\":\"alpha\",\"head_limit\":1}"), "Found 1 file limit: 1\nR/b.c");
    expect(GREP("{\"pattern\":\"alpha\",\"head_limit\":2,\"offset\":1}"),
           "Found 2 files limit: 2, offset: 1\nR/sub/c.h\nR/a.c");
    expect(GREP("{\"pattern\":\"zzz_absent\"}"), "No files found");
    /* a path inside the tree, relative to the root */
    expect(GREP("{\"pattern\":\"alpha\",\"path\":\"sub\"}"), "Found 1 file\nR/sub/c.h");
    /* an explicitly named ignored file is searched */
    expect(GREP("{\"pattern\":\"alpha\",\"path\":\"ignored.log\"}"), "Found 1 file\nR/ignored.log");
}

static void test_content(void **state)
{
    LOCO_UNUSED(state);
    bool is_error;
    expect(GREP("{\"pattern\":\"alpha\",\"output_mode\":\"content\"}"),
           "R/.hidden:1:alpha hidden\nR/a.c:1:int alpha;\nR/b.c:2:alpha\nR/sub/c.h:3:alpha beta");
    expect(GREP("{\"pattern\":\"alpha\",\"output_mode\":\"content\",\"-i\":true,\"-n\":false,"
                "\"path\":\"a.c\"}"),
           "R/a.c:int alpha;\nR/a.c:ALPHA again");
    expect(GREP("{\"pattern\":\"gamma\",\"output_mode\":\"content\",\"-C\":1}"),
           "R/a.c-2-int beta;\nR/a.c:3:int gamma;\nR/a.c-4-ALPHA again");
    expect(GREP("{\"pattern\":\"^int\",\"output_mode\":\"content\",\"head_limit\":2}"),
           "R/a.c:1:int alpha;\nR/a.c:2:int beta;\n\n[Showing results with pagination = limit: 2]");
    expect(GREP("{\"pattern\":\"^int\",\"output_mode\":\"content\",\"head_limit\":1,"
                "\"offset\":1}"),
           "R/a.c:2:int beta;\n\n[Showing results with pagination = limit: 1, offset: 1]");
    expect(GREP("{\"pattern\":\"zzz\",\"output_mode\":\"content\"}"), "No matches found");
    /* ^ and $ are line anchors */
    expect(GREP("{\"pattern\":\"a;$\",\"output_mode\":\"content\"}"),
           "R/a.c:1:int alpha;\nR/a.c:2:int beta;\nR/a.c:3:int gamma;");
}

static void test_count(void **state)
{
    LOCO_UNUSED(state);
    bool is_error;
    expect(GREP("{\"pattern\":\"alpha\",\"output_mode\":\"count\",\"-i\":true}"),
           "R/.hidden:1\nR/a.c:2\nR/b.c:1\nR/sub/c.h:1\n\n"
           "Found 5 total occurrences across 4 files.");
    expect(GREP("{\"pattern\":\"alpha\",\"output_mode\":\"count\",\"head_limit\":1}"),
           "R/.hidden:1\n\nFound 1 total occurrence across 1 file. with pagination = limit: 1");
    expect(GREP("{\"pattern\":\"qqq\",\"output_mode\":\"count\"}"),
           "No matches found\n\nFound 0 total occurrences across 0 files.");
}

static void test_context_groups(void **state)
{
    LOCO_UNUSED(state);
    char text[512] = "";
    for (int i = 1; i <= 20; i++) {
        char line[32];
        snprintf(line, sizeof(line), "line %d%s\n", i, (i == 3 || i == 10 || i == 12) ? " hit" : "");
        cat(text, sizeof(text), line);
    }
    put("ctx/f.txt", text, 100);
    put("ctx/g.txt", "hit first\nsecond\n", 100);
    bool is_error;
    expect(GREP("{\"pattern\":\"hit\",\"output_mode\":\"content\",\"path\":\"ctx\",\"-B\":1,"
                "\"-A\":1}"),
           "R/ctx/f.txt-2-line 2\nR/ctx/f.txt:3:line 3 hit\nR/ctx/f.txt-4-line 4\n--\n"
           "R/ctx/f.txt-9-line 9\nR/ctx/f.txt:10:line 10 hit\nR/ctx/f.txt-11-line 11\n"
           "R/ctx/f.txt:12:line 12 hit\nR/ctx/f.txt-13-line 13\n--\n"
           "R/ctx/g.txt:1:hit first\nR/ctx/g.txt-2-second");
    /* without context, no separators */
    expect(GREP("{\"pattern\":\"hit\",\"output_mode\":\"content\",\"path\":\"ctx/f.txt\"}"),
           "R/ctx/f.txt:3:line 3 hit\nR/ctx/f.txt:10:line 10 hit\nR/ctx/f.txt:12:line 12 hit");
    /* head_limit counts context lines and separators */
    expect(GREP("{\"pattern\":\"hit\",\"output_mode\":\"content\",\"path\":\"ctx\",\"context\":1,"
                "\"head_limit\":4}"),
           "R/ctx/f.txt-2-line 2\nR/ctx/f.txt:3:line 3 hit\nR/ctx/f.txt-4-line 4\n--\n\n"
           "[Showing results with pagination = limit: 4]");
}

static void test_filters(void **state)
{
    LOCO_UNUSED(state);
    bool is_error;
    expect(GREP("{\"pattern\":\"alpha\",\"glob\":\"*.h\"}"), "Found 1 file\nR/sub/c.h");
    expect(GREP("{\"pattern\":\"alpha\",\"glob\":\"*.{c,h}\"}"),
           "Found 3 files\nR/b.c\nR/sub/c.h\nR/a.c");
    expect(GREP("{\"pattern\":\"alpha\",\"glob\":\"a.c,b.c\"}"), "Found 2 files\nR/b.c\nR/a.c");
    expect(GREP("{\"pattern\":\"alpha\",\"glob\":\"!sub\"}"),
           "Found 3 files\nR/b.c\nR/a.c\nR/.hidden");
    expect(GREP("{\"pattern\":\"alpha\",\"type\":\"c\"}"),
           "Found 3 files\nR/b.c\nR/sub/c.h\nR/a.c");
    expect(GREP("{\"pattern\":\"alpha\",\"type\":\"c\",\"glob\":\"sub/**\"}"),
           "Found 1 file\nR/sub/c.h");
    expect(GREP("{\"pattern\":\"alpha\",\"type\":\"nope\"}"), "Grep: unrecognized file type: nope");
    assert_true(is_error);
    expect(GREP("{\"pattern\":\"alpha\",\"glob\":\"*.{c\"}"), "Grep: glob '*.{c': unclosed '{'");
    assert_true(is_error);
}

static void test_errors(void **state)
{
    LOCO_UNUSED(state);
    bool is_error;
    expect(GREP("{\"pattern\":\"foo(\"}"),
           "Grep: invalid regex 'foo(' at offset 4: missing closing parenthesis");
    assert_true(is_error);
    expect(GREP("{\"pattern\":\"a[b\"}"),
           "Grep: invalid regex 'a[b' at offset 3: missing terminating ] for character class");
    expect(GREP("{}"), "Grep: pattern is required");
    assert_true(is_error);
    expect(GREP("{\"pattern\":\"x\",\"output_mode\":\"lines\"}"),
           "Grep: output_mode must be \"content\", \"files_with_matches\" or \"count\", not "
           "\"lines\"");
    char *got = GREP("{\"pattern\":\"root\",\"path\":\"/etc\"}");
    assert_true(is_error);
    assert_non_null(strstr(got, "outside the repository"));
    free(got);
    got = GREP("{\"pattern\":\"x\",\"path\":\"../..\"}");
    assert_true(is_error);
    assert_non_null(strstr(got, "outside the repository"));
    free(got);
    expect(GREP("{\"pattern\":\"x\",\"path\":\"missing\"}"),
           "Grep: cannot access 'R/missing': No such file or directory");
    assert_true(is_error);
}

static void test_symlink_escape(void **state)
{
    LOCO_UNUSED(state);
    char link[128];
    snprintf(link, sizeof(link), "%s/etclink", root);
    assert_int_equal(symlink("/etc", link), 0);
    bool is_error;
    char *got = GREP("{\"pattern\":\"root\",\"path\":\"etclink\"}");
    assert_true(is_error);
    assert_non_null(strstr(got, "outside the repository"));
    free(got);
    /* walking the root never follows the link */
    expect(GREP("{\"pattern\":\"root:x:0\"}"), "No files found");
    assert_false(is_error);
    unlink(link);
}

static void test_multiline(void **state)
{
    LOCO_UNUSED(state);
    bool is_error;
    expect(GREP("{\"pattern\":\"beta;\\\\nint gamma\",\"output_mode\":\"content\","
                "\"multiline\":true}"),
           "R/a.c:2:int beta;\nR/a.c:3:int gamma;");
    expect(GREP("{\"pattern\":\"alpha;.int\",\"output_mode\":\"count\",\"multiline\":true}"),
           "R/a.c:2\n\nFound 2 total occurrences across 1 file.");
    /* without multiline, \\s cannot reach across a line end */
    expect(GREP("{\"pattern\":\"beta;\\\\s+int\",\"output_mode\":\"content\"}"),
           "No matches found");
    expect(GREP("{\"pattern\":\"alpha;.int\"}"), "No files found");
}

static void test_binary_and_odd_lines(void **state)
{
    LOCO_UNUSED(state);
    /* a NUL past the first 8 KB of a small file still marks it binary */
    char *big = malloc(20000);
    memset(big, 'a', 20000);
    for (int i = 99; i < 20000; i += 100)
        big[i] = '\n';
    big[15000] = '\0';
    memcpy(big + 200, "needle", 6);
    put_n("odd/late_nul.txt", big, 20000, 100);
    free(big);
    char long_line[700];
    memset(long_line, 'b', sizeof(long_line));
    memcpy(long_line, "needle", 6);
    long_line[698] = '\n';
    long_line[699] = '\0';
    put("odd/long.txt", long_line, 100);
    put("odd/latin1.txt", "needle caf\xe9\n", 100);
    bool is_error;
    expect(GREP("{\"pattern\":\"needle\",\"output_mode\":\"content\",\"path\":\"odd\"}"),
           "R/odd/latin1.txt:1:needle caf\xEF\xBF\xBD\n"
           "R/odd/long.txt:1:[Omitted long matching line]");
    /* invalid UTF-8 in a file does not stop the search */
    expect(GREP("{\"pattern\":\"caf\",\"path\":\"odd\"}"), "Found 1 file\nR/odd/latin1.txt");
}

/* A file much larger than one window: matches straddling window boundaries keep their line
 * numbers and before-context. */
static void test_huge_file(void **state)
{
    LOCO_UNUSED(state);
    const int lines = 300000;
    const int hits[] = {2, 61681, 61682, 123362, 200000, 300000};
    size_t n = (size_t)lines * 17;
    char *text = malloc(n + 1);
    for (int i = 0; i < lines; i++) {
        bool hit = false;
        for (size_t h = 0; h < LOCO_ARRAY_LEN(hits); h++)
            hit = hit || hits[h] == i + 1;
        snprintf(text + (size_t)i * 17, 18, "%07d %s\n", i + 1, hit ? "NEEDLE!!" : "xxxxxxxx");
    }
    put_n("big/huge.txt", text, n, 100);
    free(text);
    bool is_error;
    char want[2048] = "";
    for (size_t h = 0; h < LOCO_ARRAY_LEN(hits); h++) {
        char part[256];
        int l = hits[h];
        if (h == 0)
            snprintf(part, sizeof(part), "R/big/huge.txt-1-0000001 xxxxxxxx\n");
        else if (l == 61682)
            part[0] = '\0';
        else
            snprintf(part, sizeof(part), "%sR/big/huge.txt-%d-%07d xxxxxxxx\n"
                     "R/big/huge.txt-%d-%07d xxxxxxxx\n", "--\n", l - 2, l - 2, l - 1, l - 1);
        cat(want, sizeof(want), part);
        snprintf(part, sizeof(part), "R/big/huge.txt:%d:%07d NEEDLE!!\n", l, l);
        cat(want, sizeof(want), part);
    }
    want[strlen(want) - 1] = '\0';
    expect(GREP("{\"pattern\":\"NEEDLE\",\"output_mode\":\"content\",\"-B\":2,"
                "\"path\":\"big/huge.txt\"}"),
           want);
    expect(GREP("{\"pattern\":\"NEEDLE|0150000\",\"output_mode\":\"count\",\"path\":\"big\"}"),
           "R/big/huge.txt:7\n\nFound 7 total occurrences across 1 file.");
    /* the ignored directory stays out of a search from the root */
    expect(GREP("{\"pattern\":\"NEEDLE\"}"), "No files found");
}

/* Patterns whose required literal is only part of them: optional atoms, groups, classes,
 * escapes and quantifiers must not make the literal prefilter miss a line. */
static void test_literal_prefilter(void **state)
{
    LOCO_UNUSED(state);
    put("lit/t.txt",
        "color\nac\nyz\nbar\na.b\naxb\naab\ncaf\nx_t *p(\nfoo{1}\nq+r\nint  main\n", 100);
    static const struct {
        const char *pattern;
        const char *lines;   /* expected matching line numbers */
    } cases[] = {
        {"colou?r", "1"},
        {"ab*c", "2"},
        {"x{0,2}yz", "3"},
        {"(foo)?bar", "4"},
        {"a\\.b", "5"},
        {"a{2}b", "7"},
        {"caf\xc3\xa9?$", "8"},
        {"\\w+_t\\s+\\*\\w+\\(", "9"},
        {"foo\\{1\\}", "10"},
        {"foo{1}", "10"},
        {"q\\+r", "11"},
        {"int\\s{2}main", "12"},
        {"[bc]ar|^a", "2,4,5,6,7"},
        {"(?:xy)*z", "3"},
        {"b$", "5,6,7"},
        {"(?i)COLOR", "1"},
        {"\\Qa.b\\E", "5"},
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(cases); i++) {
        bool is_error;
        json_t *args = json_pack("{s:s,s:s,s:s}", "pattern", cases[i].pattern, "output_mode",
                                 "content", "path", "lit");
        agent_tool_ctx ctx = {.sb = &fx->sb, .threads = 2};
        buf out;
        buf_init(&out, BUF_UNLIMITED);
        assert_int_equal(agent_tool_grep.run(&ctx, args, &out, &is_error), LOCO_OK);
        json_decref(args);
        char *got = rel(buf_take(&out, NULL));
        /* keep only the line numbers of "R/lit/t.txt:N:text" lines */
        char nums[128] = "";
        for (const char *line = got; *line;) {
            const char *nl = strchr(line, '\n');
            size_t len = nl ? (size_t)(nl - line) : strlen(line);
            const char *prefix = "R/lit/t.txt:";
            if (strncmp(line, prefix, strlen(prefix)) == 0) {
                const char *n = line + strlen(prefix);
                size_t nlen = strcspn(n, ":");
                char one[16];
                snprintf(one, sizeof(one), "%s%.*s", nums[0] ? "," : "", (int)nlen, n);
                cat(nums, sizeof(nums), one);
            }
            line += len + (nl ? 1 : 0);
        }
        if (strcmp(nums, cases[i].lines) != 0)
            fail_msg("pattern %s: lines %s, want %s (%s)", cases[i].pattern, nums,
                     cases[i].lines, got);
        free(got);
    }
}

static void test_threads_and_cap(void **state)
{
    LOCO_UNUSED(state);
    for (int i = 0; i < 40; i++) {
        char name[64], text[64];
        snprintf(name, sizeof(name), "many/f%02d.txt", i);
        snprintf(text, sizeof(text), "token %d\nother\ntoken again\n", i);
        put(name, text, 100 + i);
    }
    bool is_error;
    const char *args = "{\"pattern\":\"token\",\"output_mode\":\"content\",\"path\":\"many\","
                       "\"head_limit\":0}";
    char *one = grep_threads(1, 0, &is_error, "%s", args);
    char *eight = grep_threads(8, 0, &is_error, "%s", args);
    assert_string_equal(one, eight);
    assert_non_null(strstr(one, "/many/f39.txt:3:token again"));
    free(eight);
    free(one);
    one = grep_threads(1, 0, &is_error, "{\"pattern\":\"token\",\"path\":\"many\"}");
    rel(one);
    assert_true(str_starts_with(one, "Found 40 files\nR/many/f39.txt\nR/many/f38.txt\n"));
    free(one);
    char *capped = grep_threads(2, 600, &is_error, "%s", args);
    assert_false(is_error);
    assert_true(strlen(capped) <= 600);
    assert_non_null(strstr(capped, "[output truncated"));
    free(capped);

    volatile int cancel = 1;
    agent_tool_ctx ctx = {.sb = &fx->sb, .threads = 2, .cancel = &cancel};
    json_t *a = json_pack("{s:s}", "pattern", "token");
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    assert_int_equal(agent_tool_grep.run(&ctx, a, &out, &is_error), LOCO_ERR_CANCELLED);
    buf_release(&out);
    json_decref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_with_matches),
        cmocka_unit_test(test_content),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_context_groups),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_symlink_escape),
        cmocka_unit_test(test_multiline),
        cmocka_unit_test(test_binary_and_odd_lines),
        cmocka_unit_test(test_huge_file),
        cmocka_unit_test(test_literal_prefilter),
        cmocka_unit_test(test_threads_and_cap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
