/* cmd_model_list.c: `loco model list`: the models in the model store (base/models.h) with their
 * repository, quant, size, file and path; the default one (used when no --model is given) is
 * marked. */
#include "base/common.h"

#include <jansson.h>

#include "base/models.h"
#include "cli/cli.h"
#include "cli/progress.h"

static void list_usage(FILE *out)
{
    fprintf(out,
            "usage: loco model list [--json]\n"
            "\n"
            "Lists the GGUF models in the model store ($LOCO_MODELS, else\n"
            "$XDG_DATA_HOME/loco/models, else ~/.local/share/loco/models): those `loco pull`\n"
            "fetched (with their Hub repository) and any other .gguf file put there. '*' marks the\n"
            "one commands use when no --model is given. Any command's --model takes a model as\n"
            "REPO:QUANT, as its file name, or as a path.\n"
            "\n"
            "options:\n"
            "  --json     one JSON object: {\"dir\", \"default\", \"models\": [{\"repo\", \"quant\",\n"
            "             \"file\", \"size\", \"sha256\", \"path\", \"name\"}]}\n"
            "  -h, --help this help\n");
}

static json_t *j_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

static int print_json(const char *dir, const models_listing *l, const char *def)
{
    json_t *o = json_object();
    json_object_set_new(o, "dir", json_string(dir));
    json_object_set_new(o, "default", j_str(def));
    json_t *arr = json_array();
    for (size_t i = 0; i < l->n; i++) {
        const models_entry *e = &l->items[i];
        char name[1400];
        models_entry_name(e, name, sizeof(name));
        json_t *m = json_object();
        json_object_set_new(m, "name", json_string(name));
        json_object_set_new(m, "repo", j_str(e->repo));
        json_object_set_new(m, "quant", j_str(e->quant));
        json_object_set_new(m, "file", j_str(e->file));
        json_object_set_new(m, "size", json_integer((json_int_t)e->size));
        json_object_set_new(m, "sha256", j_str(e->sha256));
        json_object_set_new(m, "path", json_string(e->path));
        json_array_append_new(arr, m);
    }
    json_object_set_new(o, "models", arr);
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text) {
        fprintf(stderr, "loco model list: out of memory (or a name that is not UTF-8)\n");
        return 1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

static int width_of(const models_listing *l, int col)
{
    int w = col == 0 ? 4 : col == 1 ? 5 : 4; /* the headers REPO, QUANT, FILE */
    for (size_t i = 0; i < l->n; i++) {
        const models_entry *e = &l->items[i];
        const char *s = col == 0 ? e->repo : col == 1 ? e->quant : e->file;
        int n = s ? (int)strlen(s) : 1;
        if (n > w)
            w = n;
    }
    return w > 60 ? 60 : w;
}

static void print_table(const char *dir, const models_listing *l, const char *def)
{
    printf("model store: %s\n", dir);
    if (l->n == 0) {
        printf("no models yet: `loco pull` gets LocoOperator-4B (" MODELS_DEFAULT_REPO ":"
               MODELS_DEFAULT_QUANT ")\n");
        return;
    }
    int wr = width_of(l, 0), wq = width_of(l, 1), wf = width_of(l, 2);
    printf("  %-*s  %-*s  %10s  %-*s  %s\n", wr, "REPO", wq, "QUANT", "SIZE", wf, "FILE", "PATH");
    for (size_t i = 0; i < l->n; i++) {
        const models_entry *e = &l->items[i];
        char sz[32];
        cli_format_bytes(e->size, sz, sizeof(sz));
        printf("%c %-*s  %-*s  %10s  %-*s  %s\n", def && !strcmp(def, e->path) ? '*' : ' ', wr,
               e->repo ? e->repo : "-", wq, e->quant ? e->quant : "-", sz, wf, e->file,
               e->path);
    }
    if (def)
        printf("* the default model (used when no --model is given)\n");
}

int cmd_model_list(int argc, char **argv)
{
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            list_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json")) {
            as_json = true;
            continue;
        }
        fprintf(stderr, "loco model list: unknown argument '%s' (see --help)\n", argv[i]);
        return 2;
    }
    loco_err err;
    loco_err_clear(&err);
    char *dir = NULL, *def = NULL;
    models_listing l;
    memset(&l, 0, sizeof(l));
    int code = 1;
    if (models_default_dir(&dir, &err) || models_list(dir, &l, &err)) {
        fprintf(stderr, "loco model list: %s\n", err.msg);
        goto out;
    }
    loco_err ignored;
    if (models_find_default_in(dir, &def, &ignored) != LOCO_OK)
        def = NULL;
    if (as_json) {
        code = print_json(dir, &l, def);
    } else {
        print_table(dir, &l, def);
        code = 0;
    }
out:
    models_listing_release(&l);
    free(dir);
    free(def);
    return code;
}
