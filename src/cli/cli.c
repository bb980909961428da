/* cli.c: argument dispatch for the loco executable. */
#include "base/common.h"

#include "cli/cli.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} cli_command;

static const cli_command commands[] = {
    {"pull", cmd_pull, "download a GGUF model from the Hugging Face Hub into the model store"},
    {"serve", cmd_serve, "run the gateway Claude Code points ANTHROPIC_BASE_URL at"},
    {"setup", cmd_setup, "write .claude/settings.local.json from .env"},
    {"run", cmd_run, "run a GGUF model with the built-in engine and stream its answer"},
    {"bench", cmd_bench, "measure the engine's prompt and generation speed and memory on a model"},
    {"tokenize", cmd_tokenize, "print the token ids of a text with a model's tokenizer"},
    {"model", cmd_model, "inspect and build GGUF model files"},
    {"ask", cmd_ask, "answer one question about a repository with the explorer agent"},
    {"analyze", cmd_analyze, "answer a file of questions about a project (resumable batch)"},
    {"eval", cmd_eval, "score a model's tool calls against teacher labels (model card metrics)"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: loco <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < LOCO_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nRun 'loco <command> --help' for a command's options.\n");
}

int cli_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version")) {
        printf("loco 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < LOCO_ARRAY_LEN(commands); i++) {
        if (!strcmp(commands[i].name, name))
            return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "loco: unknown command '%s'\n\n", name);
    usage(stderr);
    return 2;
}
