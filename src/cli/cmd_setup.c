/* cmd_setup.c: `loco setup`: writes .claude/settings.local.json so Claude Code talks to the
 * gateway, and .claude/agents/Explore.md so its Explore sub-agent runs on the local model, as
 * the seed's setup.sh does. The key comes from the environment or .env, as `loco serve` reads
 * it. */
#include "base/common.h"

#include "base/file.h"
#include "base/url.h"
#include "cli/claude.h"
#include "cli/cli.h"
#include "cli/options.h"

static void setup_usage(FILE *out)
{
    fprintf(
        out,
        "usage: loco setup [options]\n"
        "\n"
        "Writes .claude/settings.local.json for Claude Code: ANTHROPIC_BASE_URL (the gateway),\n"
        "ANTHROPIC_AUTH_TOKEN, ANTHROPIC_API_KEY \"\", and the default opus/sonnet/haiku model\n"
        "names (haiku is served by the local model), and .claude/agents/Explore.md, which\n"
        "runs Claude Code's Explore sub-agent on the haiku model (Claude Code 2.1 otherwise\n"
        "runs it on the main model, never reaching loco).\n"
        "\n"
        "The token Claude Code sends is --auth-token, else LOCO_AUTH_TOKEN (the token\n"
        "`loco serve --auth-token` requires), else the cloud key; each is read from the\n"
        "environment, then from .env, as `loco serve` reads them. Running it again when the\n"
        "files already say the same is fine (exit 0); files that differ are kept unless\n"
        "--force.\n"
        "\n"
        "options:\n"
        "  --env-file FILE        read settings from FILE instead of DIR/.env\n"
        "  --key-env NAME         the cloud key's variable (OPENROUTER_API_KEY)\n"
        "  --auth-token TOKEN     the token to send (the one `loco serve --auth-token`\n"
        "                         expects) [LOCO_AUTH_TOKEN]\n"
        "  --dir DIR              project directory to write into (.)\n"
        "  --base-url URL         gateway URL (http://LOCO_LISTEN, else " CLI_CLAUDE_GATEWAY_URL
        ")\n"
        "  --main-model NAME      opus and sonnet model (qwen/qwen3-coder-next)\n"
        "  --haiku-model NAME     sub-agent model (" CLI_CLAUDE_HAIKU_MODEL ")\n"
        "  --no-agent             do not write .claude/agents/Explore.md\n"
        "  --force                overwrite files that differ\n"
        "  -h, --help             this help\n");
}

static bool placeholder_key(const char *k)
{
    return strstr(k, "your-key") || strstr(k, "your_key") || !strcmp(k, "changeme") ||
           !strcmp(k, "sk-or-v1-...") || !strcmp(k, "sk-or-...") || !strcmp(k, "xxx");
}

/* Writes text to path unless it already holds exactly that: 0 written or unchanged, 1 kept
 * (differs, no --force) or failed. */
static int write_file(const char *path, const char *text, size_t n, int mode, bool force,
                      bool *kept)
{
    buf old;
    buf_init(&old, 4u << 20);
    loco_err err;
    loco_err_clear(&err);
    bool exists = file_exists(path);
    bool same = exists && file_read_all(path, &old, &err) == LOCO_OK && old.len == n &&
                !memcmp(old.data, text, n);
    buf_release(&old);
    if (same) {
        printf("Up to date: %s\n", path);
        return 0;
    }
    if (exists && !force) {
        *kept = true;
        return 1;
    }
    loco_err_clear(&err);
    if (file_write_atomic(path, text, n, mode, &err)) {
        fprintf(stderr, "loco setup: %s\n", err.msg);
        return 1;
    }
    printf("Generated %s\n", path);
    return 0;
}

int cmd_setup(int argc, char **argv)
{
    const char *env_file = NULL, *key_env = "OPENROUTER_API_KEY", *dir = ".";
    const char *base_url = NULL, *token = NULL;
    const char *main_model = "qwen/qwen3-coder-next";
    const char *haiku_model = CLI_CLAUDE_HAIKU_MODEL;
    bool force = false;
    bool agent = true;
    for (int i = 1; i < argc; i++) {
        bool bad = false;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            setup_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--force")) {
            force = true;
            continue;
        }
        if (!strcmp(argv[i], "--no-agent")) {
            agent = false;
            continue;
        }
        if (cli_flag_value(argc, argv, &i, "--env-file", &env_file, &bad) ||
            cli_flag_value(argc, argv, &i, "--key-env", &key_env, &bad) ||
            cli_flag_value(argc, argv, &i, "--auth-token", &token, &bad) ||
            cli_flag_value(argc, argv, &i, "--dir", &dir, &bad) ||
            cli_flag_value(argc, argv, &i, "--base-url", &base_url, &bad) ||
            cli_flag_value(argc, argv, &i, "--main-model", &main_model, &bad) ||
            cli_flag_value(argc, argv, &i, "--haiku-model", &haiku_model, &bad)) {
            if (bad)
                return 2;
            continue;
        }
        fprintf(stderr, "loco setup: unknown option '%s' (see loco setup --help)\n", argv[i]);
        return 2;
    }
    char env_path[4096];
    if (!env_file) {
        snprintf(env_path, sizeof(env_path), "%s/.env", dir);
        env_file = env_path;
    }
    cli_env env;
    memset(&env, 0, sizeof(env));
    if (file_exists(env_file) || env_file != env_path) {
        if (!cli_env_load(&env, env_file))
            return 1;
    }
    int code = 1;
    char url[600];
    const char *listen = cli_env_get(&env, "LOCO_LISTEN");
    if (base_url)
        snprintf(url, sizeof(url), "%s", base_url);
    else if (listen)
        snprintf(url, sizeof(url), "http://%s", listen);
    else
        snprintf(url, sizeof(url), "%s", CLI_CLAUDE_GATEWAY_URL);
    if (!url_valid(url)) {
        fprintf(stderr, "loco setup: %s '%s' is not an http:// URL\n",
                base_url ? "--base-url" : "LOCO_LISTEN gives", url);
        code = 2;
        goto out;
    }
    if (!token)
        token = cli_env_get(&env, "LOCO_AUTH_TOKEN");
    if (!token) {
        const char *key = cli_env_get(&env, key_env);
        if (!key || !*key || placeholder_key(key)) {
            fprintf(stderr,
                    "loco setup: %s is %s: set it in the environment or in %s (a line "
                    "%s=sk-or-...), or give the gateway's token with --auth-token\n",
                    key_env, !key || !*key ? "not set" : "still the placeholder", env_file,
                    key_env);
            goto out;
        }
        token = key;
    }
    buf text;
    buf_init(&text, 1 << 20);
    char path[4200];
    bool kept = false;
    snprintf(path, sizeof(path), "%s/.claude/settings.local.json", dir);
    if (cli_claude_settings(url, token, main_model, haiku_model, &text)) {
        fprintf(stderr, "loco setup: out of memory\n");
        buf_release(&text);
        goto out;
    }
    code = write_file(path, text.data, text.len, 0600, force, &kept);
    if (kept)
        fprintf(stderr, "loco setup: %s exists and differs; --force overwrites it\n", path);
    if (code == 0 && agent) {
        buf_reset(&text);
        snprintf(path, sizeof(path), "%s/.claude/agents/Explore.md", dir);
        kept = false;
        if (cli_claude_explore_md(&text)) {
            code = 1;
        } else if (write_file(path, text.data, text.len, 0644, force, &kept)) {
            if (kept)
                printf("Kept %s (it differs; --force replaces it)\n", path);
            else
                code = 1;
        }
    }
    buf_release(&text);
out:
    cli_env_release(&env);
    return code;
}
