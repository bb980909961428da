/* test_helptext.c: what the command line reads from help texts (cli/helptext.c): flags and
 * their values, command lists, "did you mean", the man page and completion scripts; and the
 * flag spellings every command shares (cli/options.c): llama.cpp aliases and - for stdin. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <unistd.h>

#include "base/buf.h"
#include "cli/helptext.h"
#include "cli/options.h"

static const char sample_help[] =
    "usage: loco demo REPO [--model M] (--prompt TEXT | --messages FILE.json) [--raw]\n"
    "\n"
    "Talks about --not-on-an-option-line in prose, and -Werror too.\n"
    "\n"
    "options:\n"
    "  -o, --out FILE       where it goes\n"
    "  --quiet              no output\n"
    "  --format md|json     the format\n"
    "  --top-p P (0.8)  --top-k K (20)  --min-p P (0)\n"
    "  --ctx N              context\n"
    "  --listen=HOST:PORT   where\n"
    "  -h, --help           this help\n";

static const cli_help_flag *find(const cli_help_flag *f, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(f[i].name, name))
            return &f[i];
    }
    return NULL;
}

static void test_scan(void **state)
{
    (void)state;
    cli_help_flag f[64];
    size_t n = 0;
    cli_help_scan(sample_help, f, &n, 64);
    struct {
        const char *name;
        bool value;
    } want[] = {{"--model", true},
                {"--prompt", true},
                {"--messages", true},
                {"--raw", false},
                {"-o", true},
                {"--out", true},
                {"--quiet", false},
                {"--format", true},
                {"--top-p", true},
                {"--top-k", true},
                {"--min-p", true},
                {"--ctx", true},
                {"--listen", true},
                {"-h", false},
                {"--help", false},
                /* aliases of the flags found */
                {"-m", true},
                {"-p", true},
                {"-c", true},
                {"--ctx-size", true},
                {"-q", false}};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(want); i++) {
        const cli_help_flag *x = find(f, n, want[i].name);
        if (!x)
            fail_msg("flag %s not found", want[i].name);
        if (x->takes_value != want[i].value)
            fail_msg("flag %s: takes_value %d", want[i].name, x->takes_value);
    }
    assert_null(find(f, n, "--not-on-an-option-line"));
    assert_null(find(f, n, "-Werror"));
    assert_null(find(f, n, "-W"));
    /* each once */
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++)
            assert_string_not_equal(f[i].name, f[k].name);
    /* a full table stops adding */
    size_t small = 0;
    cli_help_scan(sample_help, f, &small, 3);
    assert_int_equal(small, 3);
}

static void test_entries(void **state)
{
    (void)state;
    char names[8][64];
    char sums[8][200];
    const char *text = "usage: loco model <subcommand>\n\nsubcommands:\n"
                       "  list     list the models\n"
                       "  info     print a file's facts\n"
                       "\nRun 'loco model <subcommand> --help'.\n";
    assert_int_equal(cli_help_entries(text, names, sums, 8), 2);
    assert_string_equal(names[0], "list");
    assert_string_equal(sums[0], "list the models");
    assert_string_equal(names[1], "info");
    assert_int_equal(cli_help_entries(text, names, sums, 1), 1);
    assert_int_equal(cli_help_entries(sample_help, names, sums, 8), 0);
}

static void test_distance_and_suggest(void **state)
{
    (void)state;
    assert_int_equal(cli_edit_distance("serve", "serve"), 0);
    assert_int_equal(cli_edit_distance("serv", "serve"), 1);
    assert_int_equal(cli_edit_distance("--modle", "--model"), 1); /* a swap counts once */
    assert_int_equal(cli_edit_distance("", "abc"), 3);
    assert_int_equal(cli_edit_distance("kitten", "sitting"), 3);
    const char *cmds[] = {"pull",  "serve", "setup",   "run", "tokenize",
                          "model", "ask",   "analyze", "eval"};
    const char *out[4];
    size_t n = cli_suggest("serv", cmds, LOCO_ARRAY_LEN(cmds), out, 4);
    assert_int_equal(n, 1);
    assert_string_equal(out[0], "serve");
    n = cli_suggest("analyse", cmds, LOCO_ARRAY_LEN(cmds), out, 4);
    assert_int_equal(n, 1);
    assert_string_equal(out[0], "analyze");
    n = cli_suggest("setp", cmds, LOCO_ARRAY_LEN(cmds), out, 4); /* setup and serve? no: 1 */
    assert_int_equal(n, 1);
    assert_string_equal(out[0], "setup");
    assert_int_equal(cli_suggest("zzzzzzzz", cmds, LOCO_ARRAY_LEN(cmds), out, 4), 0);
    const char *flags[] = {"--listen", "--local-url", "--local-ctx", "--verbose"};
    n = cli_suggest("--lisen", flags, LOCO_ARRAY_LEN(flags), out, 4);
    assert_int_equal(n, 1);
    assert_string_equal(out[0], "--listen");
    n = cli_suggest("--verb", flags, LOCO_ARRAY_LEN(flags), out, 4); /* a prefix */
    assert_int_equal(n, 1);
    assert_string_equal(out[0], "--verbose");
    n = cli_suggest("--local-ur", flags, LOCO_ARRAY_LEN(flags), out, 4);
    assert_int_equal(n, 1);
    assert_string_equal(out[0], "--local-url");
}

static char *render(int which, const cli_help_page *pages, size_t n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    if (which == 0)
        cli_help_man(f, "9.9.9", "usage: loco <command>\n.dot at a line start\n", pages, n);
    else if (which == 1)
        cli_help_bash(f, pages, n);
    else
        cli_help_zsh(f, pages, n);
    fclose(f);
    return text;
}

static void test_renderers(void **state)
{
    (void)state;
    cli_help_page pages[] = {
        {"demo", "a demo command", sample_help, NULL},
        {"model", "model tools", "usage: loco model <subcommand>\n", NULL},
        {"model list", "list models", "usage: loco model list [--json]\n", NULL},
        {"completion", "print a script", "usage: loco completion bash|zsh\n", "bash zsh"},
    };
    char *man = render(0, pages, LOCO_ARRAY_LEN(pages));
    assert_non_null(strstr(man, ".TH LOCO 1 \"\" \"loco 9.9.9\""));
    assert_non_null(strstr(man, ".SS \"loco model list\"\n"));
    assert_non_null(strstr(man, "\\-o, \\-\\-out FILE"));
    assert_non_null(strstr(man, "\\&.dot at a line start")); /* not a roff request */
    free(man);

    char *bash = render(1, pages, LOCO_ARRAY_LEN(pages));
    assert_non_null(strstr(bash, "complete -o default -F _loco loco"));
    assert_non_null(strstr(bash, "compgen -W \"demo model completion --help --version\""));
    assert_non_null(strstr(bash, "compgen -W \"list\""));
    assert_non_null(strstr(bash, "\"model list\")\n        flags=\"--json\""));
    assert_non_null(strstr(bash, " --model ")); /* in the demo's valued list */
    assert_non_null(strstr(bash, "words=\"bash zsh\""));
    free(bash);

    char *zsh = render(2, pages, LOCO_ARRAY_LEN(pages));
    assert_true(!strncmp(zsh, "#compdef loco\n", 14));
    assert_non_null(strstr(zsh, "'demo:a demo command'"));
    assert_non_null(strstr(zsh, "'list:list models'"));
    assert_non_null(strstr(zsh, "'--model:value:_files'"));
    assert_non_null(strstr(zsh, "'--quiet'"));
    assert_non_null(strstr(zsh, "'*:operand:(bash zsh)'"));
    free(zsh);
}

/* ---- options.c ---- */

static bool take(const char *const *args, int argc, const char *name, const char **v, int *i)
{
    bool bad = false;
    *i = 0;
    bool hit = cli_flag_value(argc, (char **)args, i, name, v, &bad);
    assert_false(bad);
    return hit;
}

static void test_aliases(void **state)
{
    (void)state;
    const char *v = NULL;
    int i;
    const char *a1[] = {"-m", "x.gguf"};
    assert_true(take(a1, 2, "--model", &v, &i));
    assert_string_equal(v, "x.gguf");
    assert_int_equal(i, 1);
    const char *a2[] = {"--ctx-size=8192"};
    assert_true(take(a2, 1, "--ctx", &v, &i));
    assert_string_equal(v, "8192");
    const char *a3[] = {"-c", "4096"};
    assert_false(take(a3, 2, "--local-ctx", &v, &i)); /* serve has --ctx too: -c is that */
    const char *a4[] = {"--n-predict", "7"};
    assert_true(take(a4, 2, "--max-tokens", &v, &i));
    const char *a5[] = {"--temp", "0.1"};
    assert_true(take(a5, 2, "--temperature", &v, &i));
    const char *a6[] = {"--temperature", "0.1"};
    assert_true(take(a6, 2, "--temp", &v, &i));
    const char *a7[] = {"-t", "3"};
    assert_true(take(a7, 2, "--threads", &v, &i));
    const char *a8[] = {"-p", "hi"};
    assert_true(take(a8, 2, "--prompt", &v, &i));
    /* not a prefix match, not another flag's alias */
    const char *a9[] = {"--model-label", "x"};
    assert_false(take(a9, 2, "--model", &v, &i));
    const char *a10[] = {"-mx"};
    assert_false(take(a10, 1, "--model", &v, &i));
    const char *a11[] = {"-c", "1"};
    assert_false(take(a11, 2, "--threads", &v, &i));
    assert_true(cli_flag("-q", "--quiet"));
    assert_true(cli_flag("--quiet", "--quiet"));
    assert_false(cli_flag("--quiet=1", "--quiet"));
    assert_null(cli_flag_aliases("--no-such")[0]);
    /* a missing value is an error, with the spelling used */
    const char *a12[] = {"-m"};
    bool bad = false;
    i = 0;
    assert_true(cli_flag_value(1, (char **)a12, &i, "--model", &v, &bad));
    assert_true(bad);
}

static void test_read_input(void **state)
{
    (void)state;
    char path[] = "/tmp/loco-stdin-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "from stdin\n", 11), 11);
    close(fd);
    buf b;
    buf_init(&b, 1 << 10);
    loco_err err;
    assert_int_equal(cli_read_input(path, &b, &err), LOCO_OK); /* a file */
    assert_string_equal(buf_str(&b), "from stdin\n");
    buf_reset(&b);
    assert_non_null(freopen(path, "r", stdin));
    assert_int_equal(cli_read_input("-", &b, &err), LOCO_OK); /* "-" is standard input */
    assert_string_equal(buf_str(&b), "from stdin\n");
    buf_release(&b);
    buf_init(&b, 4);
    assert_non_null(freopen(path, "r", stdin));
    assert_int_equal(cli_read_input("-", &b, &err), LOCO_ERR_LIMIT);
    assert_non_null(strstr(err.msg, "standard input"));
    buf_release(&b);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_distance_and_suggest),
        cmocka_unit_test(test_renderers),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_read_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
