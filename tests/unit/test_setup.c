/* test_setup.c: `loco setup` writes Claude Code's settings from .env, refuses missing or
 * placeholder keys, and never overwrites without --force. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/file.h"
#include "cli/cli.h"

static char dir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/loco-setup-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int run_setup(bool force)
{
    char *argv[8];
    int argc = 0;
    argv[argc++] = (char *)"setup";
    argv[argc++] = (char *)"--dir";
    argv[argc++] = dir;
    if (force)
        argv[argc++] = (char *)"--force";
    argv[argc] = NULL;
    return cmd_setup(argc, argv);
}

static void write_env(const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/.env", dir);
    assert_int_equal(file_write_atomic(path, text, strlen(text), 0600, NULL), LOCO_OK);
}

static void test_setup_missing_env(void **state)
{
    (void)state;
    assert_int_equal(run_setup(false), 1);
}

static void test_setup_placeholder(void **state)
{
    (void)state;
    write_env("OPENROUTER_API_KEY=sk-or-v1-your-key-here\n");
    assert_int_equal(run_setup(false), 1);
    write_env("OTHER=1\n");
    assert_int_equal(run_setup(false), 1);
}

static void test_setup_writes_and_refuses_overwrite(void **state)
{
    (void)state;
    write_env("# key\nOPENROUTER_API_KEY=sk-or-v1-abc123\n");
    assert_int_equal(run_setup(false), 0);
    char path[160];
    snprintf(path, sizeof(path), "%s/.claude/settings.local.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    assert_non_null(root);
    json_t *env = json_object_get(root, "env");
    assert_string_equal(json_string_value(json_object_get(env, "ANTHROPIC_BASE_URL")),
                        "http://127.0.0.1:9091");
    assert_string_equal(json_string_value(json_object_get(env, "ANTHROPIC_AUTH_TOKEN")),
                        "sk-or-v1-abc123");
    assert_string_equal(json_string_value(json_object_get(env, "ANTHROPIC_API_KEY")), "");
    assert_string_equal(json_string_value(json_object_get(env, "ANTHROPIC_DEFAULT_HAIKU_MODEL")),
                        "claude-haiku-4-5-20251001");
    assert_string_equal(json_string_value(json_object_get(env, "ANTHROPIC_DEFAULT_OPUS_MODEL")),
                        "qwen/qwen3-coder-next");
    assert_string_equal(json_string_value(json_object_get(env, "ANTHROPIC_DEFAULT_SONNET_MODEL")),
                        "qwen/qwen3-coder-next");
    json_decref(root);
    char agent[160];
    snprintf(agent, sizeof(agent), "%s/.claude/agents/Explore.md", dir);
    buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(file_read_all(agent, &b, NULL), LOCO_OK);
    assert_non_null(strstr(b.data, "\nmodel: haiku\n"));
    assert_non_null(strstr(b.data, "\nname: Explore\n"));
    assert_non_null(strstr(b.data, "\ntools: Read, Grep, Glob, Bash\n"));
    buf_release(&b);

    write_env("OPENROUTER_API_KEY=sk-or-v1-second\n");
    assert_int_equal(run_setup(false), 1); /* exists: refused */
    root = json_load_file(path, 0, &je);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(root, "env"), "ANTHROPIC_AUTH_TOKEN")),
        "sk-or-v1-abc123");
    json_decref(root);
    assert_int_equal(run_setup(true), 0);
    root = json_load_file(path, 0, &je);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(root, "env"), "ANTHROPIC_AUTH_TOKEN")),
        "sk-or-v1-second");
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_setup_missing_env, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_setup_placeholder, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_setup_writes_and_refuses_overwrite, setup_dir,
                                        remove_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
