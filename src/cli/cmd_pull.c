/* cmd_pull.c: `loco pull [REPO[:QUANT] | URL]`: a GGUF model from the Hugging Face Hub into the
 * model store (cli/pull.h, net/hub.h, base/models.h). */
#include "base/common.h"

#include "base/models.h"
#include "cli/cli.h"
#include "cli/options.h"
#include "cli/pull.h"

static void pull_usage(FILE *out)
{
    fprintf(out,
            "usage: loco pull [REPO[:QUANT] | URL] [options]\n"
            "\n"
            "Downloads a GGUF model from the Hugging Face Hub into the model store, where every\n"
            "command (serve, run, ask, analyze, eval) finds it by name, and prints its path.\n"
            "With no argument: " MODELS_DEFAULT_REPO ", its " MODELS_DEFAULT_QUANT " file.\n"
            "\n"
            "  REPO               its " MODELS_DEFAULT_QUANT " file, else its only GGUF (else the\n"
            "                     quants it has are listed)\n"
            "  REPO:QUANT         the file whose name carries QUANT, case-insensitive\n"
            "                     (LocoreMind/LocoOperator-4B-GGUF:Q8_0, as llama.cpp's -hf)\n"
            "  REPO:FILE.gguf     one file by name\n"
            "  URL                https://huggingface.co/REPO/resolve/main/FILE.gguf (or any\n"
            "                     URL of a .gguf file)\n"
            "\n"
            "The file is written to FILE.part and renamed only once its sha256 matches the Hub's;\n"
            "an interrupted pull (Ctrl-C, a lost connection) resumes where it stopped when run\n"
            "again. A file already pulled and unchanged is not downloaded again.\n"
            "\n"
            "options:\n"
            "  -q, --quiet        no progress display\n"
            "  -h, --help         this help\n"
            "\n"
            "environment (HF_* also from .env):\n"
            "  LOCO_MODELS        the model store (else $XDG_DATA_HOME/loco/models, else\n"
            "                     ~/.local/share/loco/models)\n"
            "  HF_ENDPOINT        the Hub or a mirror (https://huggingface.co)\n"
            "  HF_TOKEN           a Hugging Face access token, for gated or private repositories\n"
            "                     (else the token of `huggingface-cli login`); never printed\n"
            "  https_proxy, http_proxy, no_proxy   proxies, as curl reads them\n"
            "\n"
            "exit status: 0 done, 1 failed, 2 usage, 130 interrupted (the partial file is kept)\n");
}

int cmd_pull(int argc, char **argv)
{
    const char *target = NULL;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            pull_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
            continue;
        }
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "loco pull: unknown option '%s' (see loco pull --help)\n", a);
            return 2;
        }
        if (target) {
            fprintf(stderr, "loco pull: one model at a time (got '%s' and '%s')\n", target, a);
            return 2;
        }
        target = a;
    }
    cli_env env;
    if (!cli_env_load(&env, NULL))
        return 2;
    cli_pull_opts o = {.cmd = "loco pull", .dir = NULL, .quiet = quiet, .ensure = false};
    char *path = NULL;
    int code = cli_pull(&o, target, &env, &path);
    if (code == 0 && path)
        printf("%s\n", path);
    free(path);
    cli_env_release(&env);
    return code;
}
