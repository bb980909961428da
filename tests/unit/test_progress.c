/* test_progress.c: the command line's progress display (cli/progress.h): sizes, durations and
 * the text of a state (percent, amounts with one unit, speed, ETA); plain mode prints a line
 * per tenth, not per update. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <unistd.h>

#include "cli/progress.h"

static void test_formats(void **state)
{
    (void)state;
    char s[32];
    const struct {
        uint64_t b;
        const char *want;
    } sizes[] = {{0, "0 B"},
                 {1023, "1023 B"},
                 {1024, "1.00 KiB"},
                 {318 * 1024 + 300, "318 KiB"},
                 {(uint64_t)(2.5 * (1 << 30)), "2.50 GiB"},
                 {38ull * 1024 * 1024 + 200 * 1024, "38.2 MiB"}};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(sizes); i++) {
        cli_format_bytes(sizes[i].b, s, sizeof(s));
        assert_string_equal(s, sizes[i].want);
    }
    cli_format_duration(37.4, s, sizeof(s));
    assert_string_equal(s, "37s");
    cli_format_duration(245, s, sizeof(s));
    assert_string_equal(s, "4m05s");
    cli_format_duration(7380, s, sizeof(s));
    assert_string_equal(s, "2h03m");
    cli_format_duration(-3, s, sizeof(s));
    assert_string_equal(s, "0s");
}

static void test_text(void **state)
{
    (void)state;
    cli_progress p;
    setenv("LOCO_PROGRESS", "none", 1);
    cli_progress_init(&p, "file.gguf", CLI_PROGRESS_BYTES, 4ull << 30);
    unsetenv("LOCO_PROGRESS");
    assert_true(p.quiet);
    /* 1 GiB in 10 s: 102 MiB/s, 3 GiB left: 30 s */
    p.t0_ms = 0;
    p.done = 1ull << 30;
    char t[256];
    cli_progress_text(&p, 10000, t, sizeof(t));
    assert_string_equal(t, "file.gguf   25%  1.00/4.00 GiB  102 MiB/s  ETA 30s");
    /* resumed at 1 GiB: speed counts from there */
    cli_progress_reset(&p, "file.gguf", 4ull << 30, 1ull << 30);
    p.t0_ms = 0;
    p.done = (1ull << 30) + (512ull << 20);
    cli_progress_text(&p, 5000, t, sizeof(t));
    assert_string_equal(t, "file.gguf   37%  1.50/4.00 GiB  102 MiB/s  ETA 25s");
    /* different units on each side, nothing to say yet about speed */
    cli_progress_reset(&p, "", 3ull << 20, 0);
    p.done = 300 * 1024;
    cli_progress_text(&p, p.t0_ms, t, sizeof(t));
    assert_string_equal(t, "  9%  300 KiB/3.00 MiB");
    /* counts */
    cli_progress_init(&p, "synth", CLI_PROGRESS_COUNT, 48);
    p.noun = "tensors";
    p.t0_ms = 0;
    p.done = 12;
    cli_progress_text(&p, 4000, t, sizeof(t));
    assert_string_equal(t, "synth   25%  12/48 tensors  3.0/s  ETA 12s");
    /* unknown total */
    cli_progress_reset(&p, "x", 0, 0);
    p.t0_ms = 0;
    p.done = 5;
    cli_progress_text(&p, 1000, t, sizeof(t));
    assert_string_equal(t, "x  5 tensors  5.0/s");
}

static void test_plain_lines(void **state)
{
    (void)state;
    char path[] = "/tmp/loco-progress-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w+");
    cli_progress p;
    setenv("LOCO_PROGRESS", "plain", 1);
    cli_progress_init(&p, "f", CLI_PROGRESS_BYTES, 1000);
    unsetenv("LOCO_PROGRESS");
    p.out = f;
    for (uint64_t d = 0; d <= 1000; d += 5)
        cli_progress_update(&p, d);
    cli_progress_finish(&p);
    fflush(f);
    rewind(f);
    int lines = 0;
    char line[256];
    while (fgets(line, sizeof(line), f))
        lines++;
    assert_int_equal(lines, 10); /* one per tenth, and no second 100% line */
    fclose(f);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_plain_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
