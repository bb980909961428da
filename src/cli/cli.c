/* cli.c: argument dispatch for the loco executable: the command table, `loco help` (also as a
 * man page), `loco version`, `loco completion`, and "did you mean" for a mistyped command or
 * flag, all read from the commands' own --help texts (cli/helptext.h). */
#include "base/common.h"

#include <unistd.h>

#include "base/buf.h"
#include "cli/cli.h"
#include "cli/helptext.h"
#include "cli/options.h"

#ifndef LOCO_VERSION
#define LOCO_VERSION "0.0.0"
#endif

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
    const char *operands; /* what its operands complete to (NULL: files), for completion */
} cli_command;

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);
static int cmd_completion(int argc, char **argv);

static const cli_command commands[] = {
    {"pull", cmd_pull, "download a GGUF model from the Hugging Face Hub into the model store",
     NULL},
    {"serve", cmd_serve, "run the gateway Claude Code points ANTHROPIC_BASE_URL at", NULL},
    {"setup", cmd_setup, "write Claude Code's settings for the gateway (.claude/)", NULL},
    {"run", cmd_run, "run a GGUF model with the built-in engine and stream its answer", NULL},
    {"bench", cmd_bench, "measure the engine's prompt and generation speed and memory on a model",
     NULL},
    {"tokenize", cmd_tokenize, "print the token ids of a text with a model's tokenizer", NULL},
    {"model", cmd_model, "inspect and build GGUF model files", NULL},
    {"ask", cmd_ask, "answer one question about a repository with the explorer agent", NULL},
    {"analyze", cmd_analyze, "answer a file of questions about a project (resumable batch)", NULL},
    {"eval", cmd_eval, "score a model's tool calls against teacher labels (model card metrics)",
     NULL},
    {"help", cmd_help, "show a command's help (--man: the whole manual as a man page)",
     "pull serve setup run bench tokenize model ask analyze eval help version completion"},
    {"version", cmd_version, "print loco's version and build", NULL},
    {"completion", cmd_completion, "print the bash or zsh completion script", "bash zsh"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: loco <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < LOCO_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n"
                 "Run 'loco <command> --help' for a command's options. Flags also take\n"
                 "llama.cpp's spellings (-m, -c/--ctx-size, -t, -n/--n-predict, -p, --temp);\n"
                 "a file or prompt given as - is read from standard input.\n"
                 "  -V, --version  print the version\n"
                 "  -h, --help     this help\n");
}

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < LOCO_ARRAY_LEN(commands); i++) {
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    }
    return NULL;
}

/* ---- help texts, captured from the commands themselves ---- */

/* What fn(argc, argv) prints on stdout (malloc'd; NULL on failure), run in this process with
 * stdout sent to a temporary file. Only used with --help, which prints and returns. */
static char *capture(int (*fn)(int argc, char **argv), int argc, char **argv)
{
    fflush(stdout);
    FILE *tmp = tmpfile();
    if (!tmp)
        return NULL;
    int saved = dup(STDOUT_FILENO);
    if (saved < 0 || dup2(fileno(tmp), STDOUT_FILENO) < 0) {
        if (saved >= 0)
            close(saved);
        fclose(tmp);
        return NULL;
    }
    fn(argc, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    buf b;
    buf_init(&b, 1 << 20);
    rewind(tmp);
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), tmp)) > 0) {
        if (buf_append(&b, chunk, got))
            break;
    }
    fclose(tmp);
    return buf_take(&b, NULL);
}

/* `loco NAME [SUB] --help` as text (malloc'd, or NULL). */
static char *command_help(const cli_command *c, const char *sub)
{
    char a0[64], a1[64], a2[] = "--help";
    snprintf(a0, sizeof(a0), "%s", c->name);
    snprintf(a1, sizeof(a1), "%s", sub ? sub : "");
    char *argv[] = {a0, sub ? a1 : a2, a2, NULL};
    return capture(c->fn, sub ? 3 : 2, argv);
}

#define MAX_SUBS 32

typedef struct {
    char names[MAX_SUBS][64];
    char summaries[MAX_SUBS][200];
    size_t n;
} sub_list;

/* ---- "did you mean" ---- */

static void suggest_line(const char *prefix, const char *word, const char *const *cands, size_t n)
{
    const char *best[4];
    size_t k = cli_suggest(word, cands, n, best, LOCO_ARRAY_LEN(best));
    if (!k)
        return;
    fprintf(stderr, "%s: did you mean ", prefix);
    for (size_t i = 0; i < k; i++)
        fprintf(stderr, "%s'%s'", i == 0 ? "" : i + 1 == k ? " or " : ", ", best[i]);
    fprintf(stderr, "?\n");
}

/* After a command returned 2 (usage error): suggests the closest spelling of every argument
 * that looks like a flag the command does not have, or of an unknown subcommand. */
static void hint_usage(const cli_command *c, int argc, char **argv)
{
    char *text = command_help(c, NULL);
    if (!text)
        return;
    char prefix[96];
    snprintf(prefix, sizeof(prefix), "loco %s", c->name);
    sub_list subs;
    subs.n = cli_help_entries(text, subs.names, subs.summaries, MAX_SUBS);
    int from = 1;
    if (subs.n && argc > 1 && argv[1][0] != '-') {
        size_t k = 0;
        while (k < subs.n && strcmp(subs.names[k], argv[1]))
            k++;
        if (k == subs.n) {
            const char *cands[MAX_SUBS];
            for (size_t i = 0; i < subs.n; i++)
                cands[i] = subs.names[i];
            suggest_line(prefix, argv[1], cands, subs.n);
            free(text);
            return;
        }
        free(text);
        text = command_help(c, argv[1]);
        if (!text)
            return;
        snprintf(prefix, sizeof(prefix), "loco %s %s", c->name, argv[1]);
        from = 2;
    }
    cli_help_flag flags[192];
    size_t nf = 0;
    cli_help_scan(text, flags, &nf, LOCO_ARRAY_LEN(flags));
    const char *cands[192];
    for (size_t i = 0; i < nf; i++)
        cands[i] = flags[i].name;
    for (int i = from; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--"))
            break;
        if (a[0] != '-' || !a[1] || (a[1] >= '0' && a[1] <= '9') || a[1] == '.')
            continue;
        char name[CLI_HELP_FLAG_MAX];
        snprintf(name, sizeof(name), "%.*s", (int)strcspn(a, "="), a);
        size_t k = 0;
        while (k < nf && strcmp(flags[k].name, name))
            k++;
        if (k < nf) {
            if (flags[k].takes_value && !strchr(a, '='))
                i++; /* its value */
            continue;
        }
        suggest_line(prefix, name, cands, nf);
    }
    free(text);
}

/* ---- help, version, completion ---- */

typedef struct {
    cli_help_page pages[64];
    char *texts[64];
    char names[64][80];
    size_t n;
} page_set;

static void add_page(page_set *ps, const char *name, const char *summary, char *text,
                     const char *operands)
{
    if (ps->n >= LOCO_ARRAY_LEN(ps->pages) || !text) {
        free(text);
        return;
    }
    snprintf(ps->names[ps->n], sizeof(ps->names[ps->n]), "%s", name);
    ps->texts[ps->n] = text;
    ps->pages[ps->n] = (cli_help_page){ps->names[ps->n], summary, text, operands};
    ps->n++;
}

/* Every command's page and, for a command with subcommands, each subcommand's. */
static void collect_pages(page_set *ps, sub_list *subs_of /* [LOCO_ARRAY_LEN(commands)] */)
{
    ps->n = 0;
    for (size_t i = 0; i < LOCO_ARRAY_LEN(commands); i++) {
        const cli_command *c = &commands[i];
        char *text = command_help(c, NULL);
        sub_list *subs = &subs_of[i];
        subs->n = text ? cli_help_entries(text, subs->names, subs->summaries, MAX_SUBS) : 0;
        add_page(ps, c->name, c->help, text, c->operands);
        for (size_t k = 0; k < subs->n; k++) {
            char name[80];
            snprintf(name, sizeof(name), "%s %s", c->name, subs->names[k]);
            add_page(ps, name, subs->summaries[k], command_help(c, subs->names[k]), NULL);
        }
    }
}

static void free_pages(page_set *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        free(ps->texts[i]);
}

static char *usage_text(void)
{
    char *argv[] = {NULL};
    return capture(cmd_help, 0, argv); /* argc 0: plain usage */
}

/* Renders every page with render (a man page, a completion script). */
static int render_all(int which)
{
    sub_list *subs = calloc(LOCO_ARRAY_LEN(commands), sizeof(*subs));
    page_set *ps = calloc(1, sizeof(*ps));
    if (!subs || !ps) {
        free(subs);
        free(ps);
        fprintf(stderr, "loco: out of memory\n");
        return 1;
    }
    collect_pages(ps, subs);
    if (which == 0) {
        char *overview = usage_text();
        cli_help_man(stdout, LOCO_VERSION, overview ? overview : "", ps->pages, ps->n);
        free(overview);
    } else if (which == 1) {
        cli_help_bash(stdout, ps->pages, ps->n);
    } else {
        cli_help_zsh(stdout, ps->pages, ps->n);
    }
    free_pages(ps);
    free(ps);
    free(subs);
    return 0;
}

static void help_usage(FILE *out)
{
    fprintf(out, "usage: loco help [COMMAND [SUBCOMMAND]] [--man]\n"
                 "\n"
                 "Prints a command's help (the same as loco COMMAND --help), or with --man the\n"
                 "whole manual as a man page (roff): loco help --man > loco.1; man ./loco.1\n"
                 "\n"
                 "options:\n"
                 "  --man          the manual page of every command\n"
                 "  -h, --help     this help\n");
}

static int cmd_help(int argc, char **argv)
{
    if (argc <= 0) {
        usage(stdout);
        return 0;
    }
    if (argc == 1) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        help_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--man"))
        return argc == 2 ? render_all(0) : 2;
    const cli_command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "loco help: no command '%s'\n", argv[1]);
        const char *cands[LOCO_ARRAY_LEN(commands)];
        for (size_t i = 0; i < LOCO_ARRAY_LEN(commands); i++)
            cands[i] = commands[i].name;
        suggest_line("loco help", argv[1], cands, LOCO_ARRAY_LEN(commands));
        return 2;
    }
    if (c->fn == cmd_help) {
        help_usage(stdout);
        return 0;
    }
    char *text = command_help(c, argc > 2 ? argv[2] : NULL);
    if (!text)
        return 1;
    fputs(text, stdout);
    free(text);
    return 0;
}

static int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: loco version\n\nPrints loco's version, then the platform and compiler "
               "it was built for.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "loco version: unexpected '%s'\n", argv[1]);
        return 2;
    }
#if defined(__x86_64__)
    const char *arch = "x86_64";
#elif defined(__aarch64__)
    const char *arch = "aarch64";
#else
    const char *arch = "unknown architecture";
#endif
#if defined(__linux__)
    const char *os = "linux";
#elif defined(__APPLE__)
    const char *os = "macos";
#else
    const char *os = "unknown system";
#endif
#if defined(__clang__)
    const char *cc = "clang " __clang_version__;
#elif defined(__GNUC__)
    const char *cc = "gcc " __VERSION__;
#else
    const char *cc = "an unknown compiler";
#endif
    printf("loco %s\nbuilt for %s %s with %s\n", LOCO_VERSION, arch, os, cc);
    return 0;
}

static void completion_usage(FILE *out)
{
    fprintf(out, "usage: loco completion bash|zsh\n"
                 "\n"
                 "Prints a completion script for the shell, generated from the commands' help:\n"
                 "  loco completion bash > /etc/bash_completion.d/loco        (or source it)\n"
                 "  loco completion zsh > \"${fpath[1]}/_loco\"                (then compinit)\n"
                 "scripts/install.sh installs both, and the man page.\n"
                 "\n"
                 "options:\n"
                 "  -h, --help     this help\n");
}

static int cmd_completion(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        completion_usage(stdout);
        return 0;
    }
    if (argc != 2 || (strcmp(argv[1], "bash") && strcmp(argv[1], "zsh"))) {
        fprintf(stderr, "loco completion: name the shell: loco completion bash|zsh\n");
        return 2;
    }
    return render_all(strcmp(argv[1], "bash") ? 2 : 1);
}

int cli_main(int argc, char **argv)
{
    cli_set_argv0(argc > 0 ? argv[0] : NULL);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "-V"))
        name = "version";
    const cli_command *c = find_command(name);
    if (c) {
        char *sub_argv[] = {argv[1], NULL};
        int code = name == argv[1] ? c->fn(argc - 1, argv + 1) : c->fn(1, sub_argv);
        if (code == 2)
            hint_usage(c, argc - 1, argv + 1);
        return code;
    }
    fprintf(stderr, "loco: '%s' is not a loco command (loco --help lists them)\n", name);
    const char *cands[LOCO_ARRAY_LEN(commands)];
    for (size_t i = 0; i < LOCO_ARRAY_LEN(commands); i++)
        cands[i] = commands[i].name;
    suggest_line("loco", name, cands, LOCO_ARRAY_LEN(commands));
    return 2;
}
