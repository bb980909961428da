/* cmd_setup.c: `loco setup`: writes .claude/settings.local.json so Claude Code talks to the
 * gateway, from the cloud key in .env, as the seed's setup.sh does. */
#include "base/common.h"

#include <jansson.h>

#include "base/file.h"
#include "cli/cli.h"
#include "cli/options.h"

static void setup_usage(FILE *out)
{
    fprintf(out,
            "usage: loco setup [options]\n"
            "\n"
            "Writes .claude/settings.local.json for Claude Code: ANTHROPIC_BASE_URL (the gateway),\n"
            "ANTHROPIC_AUTH_TOKEN (the cloud key from .env), ANTHROPIC_API_KEY \"\", and the\n"
            "default opus/sonnet/haiku model names (haiku is served by the local model), and\n"
            ".claude/agents/Explore.md, which runs Claude Code's Explore sub-agent on the haiku\n"
            "model (Claude Code 2.1 otherwise runs it on the main model, never reaching loco).\n"
            "\n"
            "options:\n"
            "  --env-file FILE        where the key is (.env)\n"
            "  --key-env NAME         the key's variable (OPENROUTER_API_KEY)\n"
            "  --dir DIR              project directory to write into (.)\n"
            "  --base-url URL         gateway URL (http://127.0.0.1:9091)\n"
            "  --main-model NAME      opus and sonnet model (qwen/qwen3-coder-next)\n"
            "  --haiku-model NAME     sub-agent model (claude-haiku-4-5-20251001)\n"
            "  --no-agent             do not write .claude/agents/Explore.md\n"
            "  --force                overwrite existing files\n"
            "  -h, --help             this help\n");
}

static bool placeholder_key(const char *k)
{
    return strstr(k, "your-key") || strstr(k, "your_key") || !strcmp(k, "changeme") ||
           !strcmp(k, "sk-or-v1-...") || !strcmp(k, "xxx");
}

/* Claude Code's Explore sub-agent, pinned to the haiku model so its requests reach the local
 * route, and offered the tools LocoOperator-4B was trained on. */
static const char explore_agent[] =
    "---\n"
    "name: Explore\n"
    "description: Fast read-only codebase explorer, run by the local LocoOperator-4B model "
    "through loco. Use it to find files, search code and answer questions about the "
    "codebase; give it one clear question and the paths that matter. It does not edit files.\n"
    "tools: Read, Grep, Glob, Bash\n"
    "model: haiku\n"
    "---\n"
    "You are a file search specialist. Explore the codebase read-only with Read, Grep, Glob "
    "and Bash (never write, move or delete files), use absolute paths, and answer with the "
    "facts you found and the file paths (with line numbers) that support them. No emojis.\n";

static int write_agent(const char *dir, bool force)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/.claude/agents/Explore.md", dir);
    if (file_exists(path) && !force) {
        printf("Kept %s (exists; --force replaces it)\n", path);
        return 0;
    }
    loco_err err;
    loco_err_clear(&err);
    if (file_write_atomic(path, explore_agent, sizeof(explore_agent) - 1, 0644, &err)) {
        fprintf(stderr, "loco setup: %s\n", err.msg);
        return 1;
    }
    printf("Generated %s\n", path);
    return 0;
}

int cmd_setup(int argc, char **argv)
{
    const char *env_file = NULL, *key_env = "OPENROUTER_API_KEY", *dir = ".";
    const char *base_url = "http://127.0.0.1:9091";
    const char *main_model = "qwen/qwen3-coder-next";
    const char *haiku_model = "claude-haiku-4-5-20251001";
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
    dotenv env;
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = dotenv_load(env_file, &env, &err);
    if (rc == LOCO_ERR_NOT_FOUND) {
        fprintf(stderr,
                "loco setup: %s not found: create it with a line %s=<your key> (see "
                ".env.example)\n",
                env_file, key_env);
        return 1;
    }
    if (rc) {
        fprintf(stderr, "loco setup: %s\n", err.msg);
        return 1;
    }
    const char *key = dotenv_get(&env, key_env);
    if (!key || !*key || placeholder_key(key)) {
        fprintf(stderr, "loco setup: %s in %s is %s: set your real key first\n", key_env,
                env_file, !key || !*key ? "missing" : "still the placeholder");
        dotenv_release(&env);
        return 1;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/.claude/settings.local.json", dir);
    if (file_exists(path) && !force) {
        fprintf(stderr, "loco setup: %s already exists; run with --force to overwrite it\n",
                path);
        dotenv_release(&env);
        return 1;
    }
    json_t *e = json_object();
    json_object_set_new(e, "ANTHROPIC_BASE_URL", json_string(base_url));
    json_object_set_new(e, "ANTHROPIC_AUTH_TOKEN", json_string(key));
    json_object_set_new(e, "ANTHROPIC_API_KEY", json_string(""));
    json_object_set_new(e, "ANTHROPIC_DEFAULT_OPUS_MODEL", json_string(main_model));
    json_object_set_new(e, "ANTHROPIC_DEFAULT_HAIKU_MODEL", json_string(haiku_model));
    json_object_set_new(e, "ANTHROPIC_DEFAULT_SONNET_MODEL", json_string(main_model));
    json_t *root = json_object();
    json_object_set_new(root, "env", e);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    dotenv_release(&env);
    if (!text) {
        fprintf(stderr, "loco setup: out of memory\n");
        return 1;
    }
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2);
    if (withnl) {
        text = withnl;
        text[n++] = '\n';
        text[n] = '\0';
    }
    rc = file_write_atomic(path, text, n, 0600, &err);
    free(text);
    if (rc) {
        fprintf(stderr, "loco setup: %s\n", err.msg);
        return 1;
    }
    printf("Generated %s\n", path);
    if (agent)
        return write_agent(dir, force);
    return 0;
}
