/* test_setup.c: `loco setup` writes Claude Code's settings from the environment or .env,
 * refuses missing or placeholder keys, writes the gateway's --auth-token instead of the key when
 * given, is fine to run again when nothing changes, and never overwrites a file that differs
 * without --force. Also: the claude driver's task template equals prompts/claude_query.txt. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/file.h"
#include "cli/claude.h"
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

static int run_setup_with(bool force, const char *extra, const char *extra_value)
{
    char *argv[8];
    int argc = 0;
    argv[argc++] = (char *)"setup";
    argv[argc++] = (char *)"--dir";
    argv[argc++] = dir;
    if (force)
        argv[argc++] = (char *)"--force";
    if (extra) {
        argv[argc++] = (char *)extra;
        argv[argc++] = (char *)extra_value;
    }
    argv[argc] = NULL;
    return cmd_setup(argc, argv);
}

static int run_setup(bool force)
{
    return run_setup_with(force, NULL, NULL);
}

/* ANTHROPIC_AUTH_TOKEN of the settings written. */
static char *written_token(void)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/.claude/settings.local.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    assert_non_null(root);
    char *t = strdup(
        json_string_value(json_object_get(json_object_get(root, "env"), "ANTHROPIC_AUTH_TOKEN")));
    json_decref(root);
    return t;
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

static void test_setup_again_and_tokens(void **state)
{
    (void)state;
    unsetenv("OPENROUTER_API_KEY");
    unsetenv("LOCO_AUTH_TOKEN");
    write_env("OPENROUTER_API_KEY=sk-or-v1-abc123\n");
    assert_int_equal(run_setup(false), 0);
    assert_int_equal(run_setup(false), 0); /* the same files again: fine */
    /* the key from the environment wins over .env, as loco serve reads it */
    setenv("OPENROUTER_API_KEY", "sk-or-v1-from-env", 1);
    assert_int_equal(run_setup(false), 1); /* differs: kept */
    assert_int_equal(run_setup(true), 0);
    char *t = written_token();
    assert_string_equal(t, "sk-or-v1-from-env");
    free(t);
    unsetenv("OPENROUTER_API_KEY");
    /* --auth-token: the token loco serve --auth-token expects, no key needed */
    write_env("OTHER=1\n");
    assert_int_equal(run_setup_with(true, "--auth-token", "gw-token-1"), 0);
    t = written_token();
    assert_string_equal(t, "gw-token-1");
    free(t);
    assert_int_equal(run_setup_with(false, "--auth-token", "gw-token-1"), 0);
    /* LOCO_AUTH_TOKEN (environment or .env) too */
    write_env("LOCO_AUTH_TOKEN=gw-token-2\n");
    assert_int_equal(run_setup(true), 0);
    t = written_token();
    assert_string_equal(t, "gw-token-2");
    free(t);
    /* LOCO_LISTEN is where serve listens: the base URL follows it */
    write_env("LOCO_AUTH_TOKEN=t\nLOCO_LISTEN=127.0.0.1:9555\n");
    assert_int_equal(run_setup(true), 0);
    char path[160];
    snprintf(path, sizeof(path), "%s/.claude/settings.local.json", dir);
    buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(file_read_all(path, &b, NULL), LOCO_OK);
    assert_non_null(strstr(b.data, "\"ANTHROPIC_BASE_URL\": \"http://127.0.0.1:9555\""));
    buf_release(&b);
}

/* The compiled-in task of the claude driver is prompts/claude_query.txt. */
static void test_claude_template(void **state)
{
    (void)state;
    const char *src = getenv("LOCO_SOURCE_DIR");
    if (!src)
        skip();
    char path[4096];
    snprintf(path, sizeof(path), "%s/prompts/claude_query.txt", src);
    buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(file_read_all(path, &b, NULL), LOCO_OK);
    assert_string_equal(buf_str(&b), cli_claude_task_template);
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_setup_missing_env, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_setup_placeholder, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_setup_writes_and_refuses_overwrite, setup_dir,
                                        remove_dir),
        cmocka_unit_test_setup_teardown(test_setup_again_and_tokens, setup_dir, remove_dir),
        cmocka_unit_test(test_claude_template),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
