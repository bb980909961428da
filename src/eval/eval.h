/* eval.h: scoring a model's next assistant turn against teacher labels (`loco eval`), with
 * the metrics of the LocoOperator-4B model card and a few more. Sits above chat/ (whose codecs
 * read every sample form) and backend/ (which produces predictions); docs/internals/eval.md. */
#ifndef LOCO_EVAL_H
#define LOCO_EVAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "backend/backend.h"
#include "base/buf.h"
#include "base/status.h"
#include "chat/chat.h"

/* Named limits on what untrusted sample and prediction files may make eval hold. */
#define EVAL_MAX_LINE_BYTES ((size_t)64 << 20) /* one JSONL line */
#define EVAL_MAX_FILE_BYTES ((size_t)4 << 30)  /* one JSONL file */
#define EVAL_MAX_CALLS 4096                    /* tool calls in one turn */
#define EVAL_MAX_ID_BYTES 1024                 /* a sample id */
#define EVAL_MAX_TOOL_NAMES 512 /* distinct names in the tool distribution and confusion table;
                                   the rest are counted under EVAL_OTHER_NAME */
#define EVAL_MAX_PROBLEMS 10000 /* problems listed; later ones are only counted */

#define EVAL_UNPARSED_NAME "(unparsed)" /* the distribution bucket of calls without a name */
#define EVAL_OTHER_NAME "(other)"       /* past EVAL_MAX_TOOL_NAMES */

/* How a sample line writes its conversation (detected per line). */
typedef enum {
    EVAL_FORM_HF = 0,    /* OpenAI/HF roles, string contents, <tool_call> text */
    EVAL_FORM_ANTHROPIC, /* content blocks: tool_use / tool_result */
    EVAL_FORM_OPENAI,    /* tool_calls[] and role "tool" */
    EVAL_FORM_COUNT,
} eval_form;

/* "hf", "anthropic", "openai"; static. */
const char *eval_form_str(eval_form f);

/* ---- one assistant turn, reduced to its tool calls ---- */

typedef struct {
    char *name;       /* malloc'd tool name; NULL when the body names none */
    char *args_json;  /* malloc'd arguments as JSON text; NULL when none could be read */
    bool json_valid;  /* the call's body parsed as JSON as written (no repair) */
} eval_call;

typedef struct {
    eval_call *calls; /* in the order they appear in the turn */
    size_t n_calls;
    size_t cap_calls;
} eval_turn;

void eval_turn_init(eval_turn *t);
/* Frees every call; t is empty and reusable afterwards. */
void eval_turn_release(eval_turn *t);

/* Appends the tool calls found in raw model text s[0..n) (borrowed): <tool_call> blocks in
 * the JSON or Qwen3-Coder XML dialect, read by chat_qwen_parser. A call the parser reads
 * without repair is valid JSON; a repaired one is not (its arguments are kept); a call it
 * cannot read is not valid JSON unless its body parses as JSON (e.g. no "name"), has no
 * arguments, and has the body's "name" when the body is an object holding one.
 * LOCO_ERR_LIMIT past EVAL_MAX_CALLS, LOCO_ERR_NOMEM. */
loco_status eval_turn_add_text(eval_turn *t, const char *s, size_t n, loco_err *err);

/* Appends the tool calls of an assistant turn given as JSON (borrowed): a string is raw text
 * (eval_turn_add_text); an object is a message in OpenAI form ("tool_calls": arguments
 * strings are valid JSON when they parse) or Anthropic form (content blocks, tool_use inputs
 * are JSON objects), read by the chat codecs, whose text parts are scanned for <tool_call>
 * text too; an array is an Anthropic content array. LOCO_ERR_INVALID (err names the
 * problem) for anything else or a message the codec rejects. */
loco_status eval_turn_add_json(eval_turn *t, const json_t *v, loco_err *err);

/* ---- argument schemas ---- */

/* The built-in tools (Read, Grep, Glob, Bash, Write, Edit, Task) with Claude Code's argument
 * names, types and required fields, as JSON Schemas. Static; *out_n gets the count. */
const chat_tool *eval_builtin_tools(size_t *out_n);

/* Argument syntax of one call: true when it is valid JSON, names a tool of tools[0..n)
 * (exact name), its arguments are a JSON object, and every property the schema requires is
 * present with a value of the JSON type the schema's "properties" give ("integer" accepts
 * integral numbers; a list of types accepts any; a property without "type" accepts any
 * value). A tool without a schema accepts any object. *out_reason (may be NULL) gets a
 * static explanation when false. */
bool eval_args_ok(const eval_call *c, const chat_tool *tools, size_t n, const char **out_reason);

/* ---- sample and prediction lines ---- */

typedef struct {
    char *id;          /* malloc'd; an integer id is kept as its decimal text */
    eval_form form;
    chat_request *req; /* the conversation so far and the sample's tools (none when absent) */
    eval_turn label;   /* the teacher's next turn */
} eval_sample;

/* Parses one samples line line[0..n) (borrowed): {"id", "messages", "tools"?, "label"}.
 * On LOCO_OK *out is filled (release with eval_sample_release); on LOCO_ERR_INVALID err says
 * what is wrong ("not JSON: ...", "messages[2].role: ...", "no \"label\"") and *out is
 * empty. Tools may be OpenAI ({"type":"function","function":{...}}) or Anthropic
 * ({"name","input_schema"}) shaped. */
loco_status eval_sample_parse(const char *line, size_t n, eval_sample *out, loco_err *err);
void eval_sample_release(eval_sample *s);

typedef struct {
    char *id;        /* malloc'd */
    eval_turn turn;  /* the model's turn */
} eval_prediction;

/* Parses one predictions line {"id", "output": <raw text or message>} like
 * eval_sample_parse; release with eval_prediction_release. */
loco_status eval_prediction_parse(const char *line, size_t n, eval_prediction *out,
                                  loco_err *err);
void eval_prediction_release(eval_prediction *p);

/* ---- a data set: samples, predictions and the problems met reading them ---- */

typedef struct eval_set eval_set;

/* New empty set; NULL on allocation failure. */
eval_set *eval_set_new(void);
void eval_set_free(eval_set *s); /* NULL does nothing */

/* Reads JSONL text[0..n) (borrowed) of samples; source (copied) names it in problems. Blank
 * lines are skipped; every other line that cannot be read becomes a problem with its line
 * number and is counted, never an error. LOCO_ERR_NOMEM only. */
loco_status eval_set_add_samples(eval_set *s, const char *source, const char *text, size_t n,
                                 loco_err *err);
/* The same for predictions JSONL. */
loco_status eval_set_add_predictions(eval_set *s, const char *source, const char *text,
                                     size_t n, loco_err *err);

size_t eval_set_n_samples(const eval_set *s);
/* Sample i (0 <= i < n) in file order; borrowed, valid until the set is freed. */
const eval_sample *eval_set_sample(const eval_set *s, size_t i);

/* Records the output of a model for sample i: output_json (borrowed) is a JSON string (raw
 * text) or message, read as eval_prediction_parse reads "output". LOCO_ERR_INVALID when it
 * cannot be read (then it counts as a failed prediction). */
loco_status eval_set_put_output(eval_set *s, size_t i, const char *output_json, loco_err *err);
/* Records that no output could be produced for sample i (message copied). */
loco_status eval_set_put_failure(eval_set *s, size_t i, const char *message);
/* Appends {"id","output"} lines, in sample order, for every sample given an output with
 * eval_set_put_output. */
loco_status eval_set_write_outputs(const eval_set *s, buf *out);

/* ---- the report ---- */

typedef struct {
    size_t hits;
    size_t total;
} eval_ratio;

/* hits / total, 0 when total is 0. */
double eval_ratio_rate(eval_ratio r);

typedef struct {
    char *name;
    size_t model;
    size_t teacher;
} eval_tool_count;

typedef struct {
    char *teacher; /* the label's first tool */
    char *model;   /* the prediction's first tool */
    size_t count;
} eval_confusion;

typedef struct {
    size_t calls;       /* tool calls in turns that have at least one */
    size_t turns;       /* turns with at least one tool call */
    size_t multi_turns; /* turns with two or more */
} eval_calls_per_turn;

typedef struct {
    char *source; /* file name, or "backend" */
    size_t line;  /* 1-based; 0 when the problem has no line */
    char *message;
} eval_problem;

typedef struct {
    /* inputs */
    size_t sample_lines, samples_valid, samples_broken;
    size_t forms[EVAL_FORM_COUNT];
    size_t prediction_lines, predictions_valid, predictions_broken, predictions_failed;
    size_t matched;
    char **missing;   /* ids of valid samples without a prediction, file order */
    size_t n_missing;
    char **unmatched; /* ids of predictions without a sample, file order */
    size_t n_unmatched;
    eval_problem *problems; /* broken lines, duplicate ids, failed outputs */
    size_t n_problems;
    size_t problems_total;  /* including the ones past EVAL_MAX_PROBLEMS */

    /* the model card's metrics (over matched samples) */
    eval_ratio presence;       /* tool call presence alignment */
    eval_ratio first_tool;     /* first tool type match */
    eval_ratio json_valid;     /* predicted calls */
    eval_ratio args_ok;        /* predicted calls */
    eval_ratio label_json_valid;
    eval_ratio label_args_ok;
    eval_tool_count *tools;    /* sorted: most calls (model + teacher) first, name order */
    size_t n_tools;
    size_t model_calls, teacher_calls;

    /* beyond the card */
    double name_precision, name_recall, name_f1; /* means over name_samples */
    size_t name_samples;       /* matched samples where either side has a tool call */
    eval_ratio exact_args;     /* label calls reproduced with equal arguments */
    eval_calls_per_turn model_cpt, teacher_cpt;
    eval_confusion *confusion; /* first-tool mismatches, most frequent first */
    size_t n_confusion;
} eval_report;

/* Scores every sample that has a prediction (by id; the first of duplicate ids is used and
 * the others become problems). On LOCO_OK *out is a new report (eval_report_free). s is
 * borrowed. LOCO_ERR_NOMEM only. */
loco_status eval_score(const eval_set *s, eval_report **out, loco_err *err);
void eval_report_free(eval_report *r); /* NULL does nothing */

typedef struct {
    const char *model;   /* column name for predictions; NULL: "Model" */
    const char *teacher; /* column name for labels; NULL: "Teacher" */
} eval_names;

/* Markdown tables shaped like the model card's (core metrics, tool distribution, JSON and
 * argument syntax), then the extra metrics, the first-tool confusion table and the inputs. */
loco_status eval_report_md(const eval_report *r, const eval_names *names, buf *out);
/* JSON object (pretty printed, ends with "\n"); keys and shapes in docs/internals/eval.md. */
loco_status eval_report_json(const eval_report *r, buf *out);
/* A standalone SVG bar chart of the tool distribution: grouped bars (model, teacher) per
 * tool, value labels, axes with ticks and titles, a legend. */
loco_status eval_report_svg(const eval_report *r, const eval_names *names, buf *out);

/* ---- producing predictions with a backend ---- */

typedef struct {
    size_t done;       /* samples finished (ok or failed) */
    size_t total;
    size_t failed;
    const char *id;    /* the sample just finished (borrowed) */
    const char *error; /* its error message, NULL when it succeeded */
} eval_progress;

typedef struct {
    int jobs;                 /* samples in flight at once (0: 1) */
    bool render_qwen;         /* send the conversation as <tool_call>/<tool_response> text
                                 (chat_qwen_render, the sample's own system kept) and keep
                                 the answer's raw text */
    bool keep_tools;          /* render_qwen: the rendered request still carries the sample's
                                 tools and tool_choice (not rendered into the prompt; the
                                 engine constrains its tool calls to them) */
    const char *model;        /* model name sent (backend_call.model); may be NULL */
    long max_tokens;          /* 0: the sample's / backend's default */
    bool has_temperature;
    double temperature;
    const volatile int *cancel;
    /* called once per finished sample, from one thread at a time; may be NULL */
    void (*progress)(void *ctx, const eval_progress *p);
    void *progress_ctx;
} eval_run_opts;

/* Runs b on every sample of s (backend_complete, opts->jobs at a time) and records each answer
 * with eval_set_put_output, or eval_set_put_failure when the call fails. The output saved is
 * the answer's text (a JSON string) when it holds no structured tool calls, else an OpenAI
 * message {"role","content","tool_calls"} whose arguments are the strings received; tool
 * calls the backend could not parse are kept as <tool_call> text in the content. b and opts
 * are borrowed; b must allow concurrent calls when jobs > 1. Failures of single samples are
 * recorded, not returned, except one: a backend that cannot be reached (LOCO_ERR_UNAVAILABLE)
 * stops the run at once, nothing is recorded and err holds that first failure. Else
 * LOCO_ERR_NOMEM only. */
loco_status eval_run_backend(eval_set *s, backend *b, const eval_run_opts *opts, loco_err *err);

#endif
