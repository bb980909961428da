/* test_prompt.c: prompts/local_system.txt is the training system prompt of DESIGN.md, byte
 * for byte (DESIGN.md sits in ../shared beside the checkout). */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/file.h"
#include "cli/prompt.h"

static void test_prompt_matches_design(void **state)
{
    (void)state;
    const char *src = getenv("LOCO_SOURCE_DIR");
    assert_non_null(src);
    char path[4096];
    buf design, prompt;
    buf_init(&design, 1 << 20);
    buf_init(&prompt, 1 << 20);
    snprintf(path, sizeof(path), "%s/prompts/local_system.txt", src);
    assert_int_equal(file_read_all(path, &prompt, NULL), LOCO_OK);
    snprintf(path, sizeof(path), "%s/../shared/DESIGN.md", src);
    if (file_read_all(path, &design, NULL) != LOCO_OK) {
        /* no shared/ beside this checkout: check the prompt's known opening and closing */
        assert_true(prompt.len > 600);
        assert_memory_equal(prompt.data, "You are a Claude agent, built on", 32);
        assert_string_equal(prompt.data + prompt.len - 25, "<tool_response></tool_response> tags." + 12);
    } else {
        const char *start = strstr(design.data, "```\nYou are a Claude agent");
        assert_non_null(start);
        start += 4;
        const char *end = strstr(start, "\n```");
        assert_non_null(end);
        assert_int_equal(prompt.len, (size_t)(end - start));
        assert_memory_equal(prompt.data, start, prompt.len);
    }
    /* the compiled-in copy the binary uses is the same bytes */
    assert_string_equal(cli_local_system_prompt, prompt.data);
    buf_release(&design);
    buf_release(&prompt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_prompt_matches_design)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
