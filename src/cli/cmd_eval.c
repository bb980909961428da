/* cmd_eval.c: `loco eval`: scores a model's next assistant turn against teacher labels with
 * the model card's metrics (eval/eval.h). Predictions come from a file or from running a
 * backend on every sample; the report is Markdown or JSON, plus an optional SVG chart. */
#include "base/common.h"

#include <unistd.h>

#include "base/file.h"
#include "base/models.h"
#include "base/str.h"
#include "base/url.h"
#include "cli/cli.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "eval/eval.h"
#include "net/http_client.h"

#define EVAL_PRINT_PROBLEMS 100 /* problems printed on stderr; the JSON report has them all */
#define EVAL_PRINT_IDS 20       /* one-sided ids printed on stderr */

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: loco eval SAMPLES.jsonl (--predictions FILE | --backend SPEC | -m F.gguf)\n"
        "                 [options]\n"
        "\n"
        "Scores a model's next assistant turn against the teacher's (the label) with the\n"
        "LocoOperator-4B model card's metrics, and more.\n"
        "\n"
        "Inputs (a file given as - is read from standard input):\n"
        "  --samples FILE           the samples (or the first operand): one {\"id\",\n"
        "                           \"messages\", \"tools\"?, \"label\"} per line;\n"
        "                           messages and label in OpenAI/HF form (<tool_call> text),\n"
        "                           Anthropic form (tool_use blocks) or OpenAI tool_calls,\n"
        "                           detected per line\n"
        "  --predictions FILE       one {\"id\", \"output\"} per line; output is the raw\n"
        "                           assistant text or a message (any of the forms above)\n"
        "  --backend SPEC           produce the predictions: engine (the built-in engine),\n"
        "                           openai:URL (an OpenAI-compatible server; the conversation\n"
        "                           is sent as <tool_call>/<tool_response> text with the\n"
        "                           sample's own system prompt, the answer kept raw) or\n"
        "                           anthropic:URL (the conversation as it is)\n"
        "                           (with or without /v1)\n"
        "  -m, --model NAME|F.gguf  a GGUF file or a pulled model (REPO:QUANT, file name)\n"
        "                           runs the built-in engine (--backend engine, which takes\n"
        "                           the store's model when none is named); else the name sent\n"
        "                           to a server\n"
        "  --api-key KEY            sent to the server (default: $LOCO_EVAL_API_KEY)\n"
        "  -j, --jobs N             samples in flight at once (1)\n"
        "  -n, --max-tokens N       answer length limit (1024; --n-predict too)\n"
        "  --temperature T          sampling temperature (0; --temp too)\n"
        "  -t, --threads N          engine threads (all cores)\n"
        "  -c, --ctx N              engine context in tokens (51200; --ctx-size too)\n"
        "  --no-constrain           engine: tool calls not constrained to valid JSON\n"
        "  --save-predictions FILE  write the predictions a backend produced, as JSONL\n"
        "\n"
        "Output:\n"
        "  --format md|json         Markdown tables (default) or JSON on stdout\n"
        "  --chart FILE.svg         SVG bar chart of the tool distribution\n"
        "  --model-label NAME       name of the model in tables and the chart (Model)\n"
        "  --teacher-label NAME     name of the teacher (Teacher)\n"
        "  -q, --quiet              no progress output\n"
        "\n"
        "Broken lines are reported with their line numbers and counted, never fatal; ids\n"
        "found on one side only are reported. A backend that cannot be reached stops the run\n"
        "at its first connection error. Exit status: 0 when samples were scored, 1 when none\n"
        "could be, 2 for a usage error.\n"
        "\n"
        "Definitions (over samples that have both a label and a prediction):\n"
        "  tool call      a <tool_call> block in text (JSON or Qwen3-Coder XML dialect), an\n"
        "                 OpenAI tool_calls entry or an Anthropic tool_use block; a block that\n"
        "                 cannot be read still counts as a call\n"
        "  Tool Call Presence Alignment  samples where the prediction has a tool call if and\n"
        "                 only if the label has one\n"
        "  First Tool Type Match  among samples where both have calls, those whose first\n"
        "                 calls name the same tool\n"
        "  JSON Validity  predicted calls whose body parses as JSON as written (a call loco\n"
        "                 had to repair, or cannot read, is not valid; a valid JSON body with\n"
        "                 no \"name\" is valid JSON but fails argument syntax); OpenAI arguments\n"
        "                 strings must parse; Anthropic inputs are always valid\n"
        "  Argument Syntax Correctness  predicted calls that are valid JSON, name a known\n"
        "                 tool, and give every required argument with the JSON type the\n"
        "                 schema says; schemas: the sample's \"tools\" when it has any, else\n"
        "                 Claude Code's Read, Grep, Glob, Bash, Write, Edit, Task\n"
        "  label_*        the same two figures for the labels' calls\n"
        "  Tool distribution  calls per tool name, model vs teacher (unnamed calls under\n"
        "                 (unparsed)), with the delta and totals\n"
        "  Tool-name P/R/F1  per sample, the multiset overlap of call names (precision =\n"
        "                 overlap / predicted calls, recall = overlap / label calls, an empty\n"
        "                 side scores 1), averaged over samples where either side has a call\n"
        "  Exact-argument match  label calls reproduced by a distinct predicted call with\n"
        "                 the same name and JSON-equal arguments, over all label calls\n"
        "  Calls per turn  mean number of calls in turns that have at least one\n"
        "  First-tool mismatches  (teacher's first tool, model's first tool) counts\n");
}

typedef struct {
    const char *samples, *predictions, *backend, *model, *api_key, *save, *format, *chart;
    const char *model_label, *teacher_label;
    long jobs, max_tokens, threads, ctx;
    double temperature;
    bool quiet;
    bool no_constrain;
} eval_flags;

static bool parse_num(const char *flag, const char *v, long min, long max, long *out)
{
    if (str_parse_long(v, min, max, out) == LOCO_OK)
        return true;
    fprintf(stderr, "loco eval: %s wants an integer in [%ld, %ld]\n", flag, min, max);
    return false;
}

/* 1 took a flag, 0 not a flag of ours, -1 usage error (printed). */
static int parse_flag(eval_flags *f, int argc, char **argv, int *i)
{
    struct {
        const char *flag;
        const char **dst;
    } strs[] = {{"--samples", &f->samples},         {"--predictions", &f->predictions},
                {"--backend", &f->backend},         {"--model", &f->model},
                {"--api-key", &f->api_key},         {"--save-predictions", &f->save},
                {"--format", &f->format},           {"--chart", &f->chart},
                {"--model-label", &f->model_label}, {"--teacher-label", &f->teacher_label}};
    bool bad = false;
    const char *v = NULL;
    for (size_t k = 0; k < LOCO_ARRAY_LEN(strs); k++) {
        if (cli_flag_value(argc, argv, i, strs[k].flag, strs[k].dst, &bad))
            return bad ? -1 : 1;
    }
    if (cli_flag_value(argc, argv, i, "--jobs", &v, &bad))
        return !bad && parse_num("--jobs", v, 1, 256, &f->jobs) ? 1 : -1;
    if (cli_flag_value(argc, argv, i, "--max-tokens", &v, &bad))
        return !bad && parse_num("--max-tokens", v, 1, 1 << 20, &f->max_tokens) ? 1 : -1;
    if (cli_flag_value(argc, argv, i, "--threads", &v, &bad))
        return !bad && parse_num("--threads", v, 1, 512, &f->threads) ? 1 : -1;
    if (cli_flag_value(argc, argv, i, "--ctx", &v, &bad))
        return !bad && parse_num("--ctx", v, 256, 1L << 24, &f->ctx) ? 1 : -1;
    if (cli_flag_value(argc, argv, i, "--temperature", &v, &bad)) {
        if (!bad && str_parse_double(v, 0, 10, &f->temperature) == LOCO_OK)
            return 1;
        fprintf(stderr, "loco eval: --temperature wants a number in [0, 10]\n");
        return -1;
    }
    if (cli_flag(argv[*i], "--quiet")) {
        f->quiet = true;
        return 1;
    }
    if (!strcmp(argv[*i], "--no-constrain")) {
        f->no_constrain = true;
        return 1;
    }
    return 0;
}

/* A pulled model named REPO[:QUANT] (a name no server would take for its own). */
static bool model_in_store(const char *name)
{
    if (!strchr(name, '/'))
        return false;
    char *path = NULL;
    loco_err ignored;
    bool ok = models_resolve(name, &path, &ignored) == LOCO_OK && str_ends_with(path, ".gguf");
    free(path);
    return ok;
}

static int parse_args(eval_flags *f, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        int took = parse_flag(f, argc, argv, &i);
        if (took < 0)
            return 2;
        if (took)
            continue;
        if ((argv[i][0] == '-' && argv[i][1]) || f->samples) {
            fprintf(stderr, "loco eval: unexpected argument '%s' (see loco eval --help)\n",
                    argv[i]);
            return 2;
        }
        f->samples = argv[i];
    }
    /* a model file names the engine */
    if (!f->backend && !f->predictions && f->model &&
        (str_ends_with(f->model, ".gguf") || model_in_store(f->model)))
        f->backend = "engine";
    const char *why = NULL;
    if (!f->samples)
        why = "give the samples file";
    else if (f->predictions && !strcmp(f->samples, "-") && !strcmp(f->predictions, "-"))
        why = "only one of the samples and the predictions can come from standard input";
    else if (f->backend && strcmp(f->backend, "engine") &&
             !(str_starts_with(f->backend, "openai:") && url_valid(f->backend + 7)) &&
             !(str_starts_with(f->backend, "anthropic:") && url_valid(f->backend + 10)))
        why = "--backend is engine, openai:URL or anthropic:URL (an http:// or https:// URL)";
    else if (!f->predictions == !f->backend)
        why = "give one of --predictions FILE or --backend SPEC";
    else if (strcmp(f->format, "md") && strcmp(f->format, "json"))
        why = "--format is md or json";
    else if (f->save && !f->backend)
        why = "--save-predictions needs --backend";
    if (why) {
        fprintf(stderr, "loco eval: %s (see loco eval --help)\n", why);
        return 2;
    }
    return -1;
}

/* ---- running a backend ---- */

static void on_progress(void *ctx, const eval_progress *p)
{
    cli_progress *prog = ctx;
    if (prog->total != p->total)
        cli_progress_reset(prog, prog->label, p->total, prog->done);
    if (p->error)
        cli_progress_line(prog, "loco eval: [%zu/%zu] %s failed: %s", p->done, p->total, p->id,
                          p->error);
    cli_progress_update(prog, p->done);
}

static loco_status open_backend(const eval_flags *f, http_client **client, backend **out,
                                bool *render_qwen, loco_err *err)
{
    *render_qwen = true;
    if (!strcmp(f->backend, "engine")) {
        char *path = NULL;
        loco_status rc = f->model ? models_resolve(f->model, &path, err)
                                  : models_find_default(&path, err);
        if (rc)
            return rc;
        cli_warn_ctx("loco eval", path, f->ctx ? f->ctx : 51200);
        backend_engine_opts eo;
        memset(&eo, 0, sizeof(eo));
        eo.model_path = path;
        eo.ctx = f->ctx;
        eo.threads = (int)f->threads;
        eo.nfc = true;
        eo.seed = 42;
        eo.constrain = !f->no_constrain;
        rc = backend_engine_new(&eo, out, err);
        free(path);
        return rc;
    }
    bool openai = str_starts_with(f->backend, "openai:");
    bool anth = str_starts_with(f->backend, "anthropic:");
    if (!openai && !anth)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "unknown --backend '%s': use engine, openai:URL or anthropic:URL",
                            f->backend);
    const char *url = strchr(f->backend, ':') + 1;
    loco_status rc = http_client_new(client, err);
    if (rc)
        return rc;
    if (anth) {
        *render_qwen = false;
        return backend_anthropic_new(*client, url, f->api_key, out, err);
    }
    backend_openai_opts oo;
    memset(&oo, 0, sizeof(oo));
    oo.api_key = f->api_key; /* raw text out, raw text back: eval renders and parses itself */
    return backend_openai_new(*client, url, &oo, out, err);
}

static loco_status run_backend(const eval_flags *f, eval_set *set, loco_err *err)
{
    http_client *client = NULL;
    backend *b = NULL;
    cli_progress prog;
    cli_progress_init(&prog, "", CLI_PROGRESS_COUNT, 0);
    prog.noun = "samples";
    buf saved;
    buf_init(&saved, BUF_UNLIMITED);
    eval_run_opts ro;
    memset(&ro, 0, sizeof(ro));
    loco_status rc = open_backend(f, &client, &b, &ro.render_qwen, err);
    if (rc)
        goto out;
    ro.jobs = (int)f->jobs;
    ro.keep_tools = !strcmp(f->backend, "engine"); /* constrained to the sample's tools */
    ro.model = strcmp(f->backend, "engine") ? f->model : NULL;
    ro.max_tokens = f->max_tokens;
    ro.has_temperature = true;
    ro.temperature = f->temperature;
    if (!f->quiet) {
        ro.progress = on_progress;
        ro.progress_ctx = &prog;
    }
    rc = eval_run_backend(set, b, &ro, err);
    if (!f->quiet)
        cli_progress_finish(&prog);
    if (rc || !f->save)
        goto out;
    rc = eval_set_write_outputs(set, &saved);
    if (!rc)
        rc = file_write_atomic(f->save, buf_str(&saved), saved.len, 0644, err);
    else
        loco_err_set(err, rc, "out of memory writing predictions");
out:
    buf_release(&saved);
    backend_free(b);
    http_client_free(client);
    return rc;
}

/* ---- reporting ---- */

static void print_problems(const eval_report *r)
{
    for (size_t i = 0; i < r->n_problems && i < EVAL_PRINT_PROBLEMS; i++) {
        const eval_problem *p = &r->problems[i];
        if (p->line)
            fprintf(stderr, "loco eval: %s:%zu: %s\n", p->source, p->line, p->message);
        else
            fprintf(stderr, "loco eval: %s: %s\n", p->source, p->message);
    }
    if (r->problems_total > EVAL_PRINT_PROBLEMS)
        fprintf(stderr, "loco eval: ... and %zu more problems\n",
                r->problems_total - EVAL_PRINT_PROBLEMS);
    char id[256]; /* ids come from the files: shown escaped */
    for (size_t i = 0; i < r->n_missing && i < EVAL_PRINT_IDS; i++)
        fprintf(stderr, "loco eval: sample '%s' has no prediction\n",
                str_printable(r->missing[i], id, sizeof(id)));
    for (size_t i = 0; i < r->n_unmatched && i < EVAL_PRINT_IDS; i++)
        fprintf(stderr, "loco eval: prediction '%s' has no sample\n",
                str_printable(r->unmatched[i], id, sizeof(id)));
    if (r->n_missing > EVAL_PRINT_IDS || r->n_unmatched > EVAL_PRINT_IDS)
        fprintf(stderr, "loco eval: %zu samples without a prediction, %zu predictions without "
                        "a sample in all\n",
                r->n_missing, r->n_unmatched);
}

static loco_status write_outputs(const eval_flags *f, const eval_report *r, loco_err *err)
{
    eval_names names = {.model = f->model_label, .teacher = f->teacher_label};
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    loco_status rc = LOCO_OK;
    if (f->chart) {
        rc = eval_report_svg(r, &names, &out);
        if (!rc)
            rc = file_write_atomic(f->chart, buf_str(&out), out.len, 0644, err);
        else
            loco_err_set(err, rc, "out of memory drawing the chart");
        buf_reset(&out);
    }
    if (!rc) {
        rc = strcmp(f->format, "json") ? eval_report_md(r, &names, &out)
                                       : eval_report_json(r, &out);
        if (rc)
            loco_err_set(err, rc, "out of memory writing the report");
    }
    if (!rc)
        fwrite(buf_str(&out), 1, out.len, stdout);
    buf_release(&out);
    return rc;
}

static loco_status read_into(eval_set *set, const char *path, bool samples, loco_err *err)
{
    buf text;
    buf_init(&text, EVAL_MAX_FILE_BYTES);
    loco_status rc = cli_read_input(path, &text, err);
    if (!strcmp(path, "-"))
        path = "standard input";
    if (!rc && samples)
        rc = eval_set_add_samples(set, path, buf_str(&text), text.len, err);
    else if (!rc)
        rc = eval_set_add_predictions(set, path, buf_str(&text), text.len, err);
    buf_release(&text);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    eval_flags f;
    memset(&f, 0, sizeof(f));
    f.format = "md";
    f.jobs = 1;
    f.max_tokens = 1024;
    int code = parse_args(&f, argc, argv);
    if (code >= 0)
        return code;
    if (!f.api_key)
        f.api_key = getenv("LOCO_EVAL_API_KEY");
    loco_err err;
    loco_err_clear(&err);
    eval_report *r = NULL;
    eval_set *set = eval_set_new();
    loco_status rc = set ? read_into(set, f.samples, true, &err)
                         : loco_err_set(&err, LOCO_ERR_NOMEM, "out of memory");
    if (!rc && f.predictions)
        rc = read_into(set, f.predictions, false, &err);
    if (!rc && f.backend)
        rc = run_backend(&f, set, &err);
    if (!rc)
        rc = eval_score(set, &r, &err);
    if (!rc) {
        print_problems(r);
        rc = write_outputs(&f, r, &err);
    }
    code = 1;
    if (rc) {
        fprintf(stderr, "loco eval: %s\n", err.msg);
        if (rc == LOCO_ERR_UNAVAILABLE)
            fprintf(stderr, "loco eval: stopped at the first sample: is the model server "
                            "running (llama-server -m LocoOperator-4B.gguf --port 8080)? Or "
                            "pick another --backend\n");
    } else if (!r->matched) {
        fprintf(stderr, "loco eval: no sample could be scored\n");
    } else {
        code = 0;
    }
    eval_report_free(r);
    eval_set_free(set);
    return code;
}
