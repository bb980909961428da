/* report.c: writing an eval_report as Markdown tables shaped like the model card's, as JSON
 * (the keys docs/internals/eval.md lists) and as a standalone SVG bar chart of the tool
 * distribution. Part of eval/. */
#include "base/common.h"

#include "base/json.h"
#include "base/str.h"
#include "base/utf8.h"
#include "eval/eval.h"

#define MD_MAX_TEXT 80      /* bytes of a name or id shown in a table cell */
#define MD_MAX_MESSAGE 300  /* bytes of a problem message shown */
#define MD_MAX_PROBLEMS 50  /* problems listed in Markdown (JSON lists them all) */
#define MD_MAX_IDS 50       /* ids listed per line in Markdown */
#define SVG_MAX_LABEL 12    /* characters of a tool name under its bars */

static const char *model_name(const eval_names *n)
{
    return n && n->model ? n->model : "Model";
}

static const char *teacher_name(const eval_names *n)
{
    return n && n->teacher ? n->teacher : "Teacher";
}

/* Bytes of s to show so that at most max bytes are taken and no UTF-8 sequence is cut. */
static size_t cut_len(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    while (max > 0 && utf8_is_cont((unsigned char)s[max]))
        max--;
    return max;
}

/* ---- Markdown ---- */

/* Appends s for a table cell: '|' and '`' escaped, '<' as an entity, newlines as spaces, cut
 * at MD_MAX_TEXT bytes. */
static loco_status md_text_max(buf *b, const char *s, size_t max)
{
    size_t n = cut_len(s, max);
    loco_status rc = LOCO_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        char c = s[i];
        if (c == '|' || c == '`' || c == '\\' || c == '*' || c == '_')
            rc = buf_appendf(b, "\\%c", c);
        else if (c == '<')
            rc = buf_appends(b, "&lt;");
        else if ((unsigned char)c < 0x20 || c == 0x7f) /* no escape sequences on a terminal */
            rc = buf_appendc(b, ' ');
        else
            rc = buf_appendc(b, c);
    }
    if (!rc && n < strlen(s))
        rc = buf_appends(b, "…");
    return rc;
}

static loco_status md_text(buf *b, const char *s)
{
    return md_text_max(b, s, MD_MAX_TEXT);
}

static double pct(eval_ratio r)
{
    return 100.0 * eval_ratio_rate(r);
}

static loco_status md_score_row(buf *b, const char *metric, eval_ratio r)
{
    if (!r.total)
        return buf_appendf(b, "| **%s** | n/a (0/0) |\n", metric);
    return buf_appendf(b, "| **%s** | **%.1f%%** (%zu/%zu) |\n", metric, pct(r), r.hits,
                       r.total);
}

static loco_status md_fraction(buf *b, eval_ratio r)
{
    if (!r.total)
        return buf_appends(b, "0/0 (n/a)");
    return buf_appendf(b, "%zu/%zu (%.1f%%)", r.hits, r.total, pct(r));
}

static loco_status md_core(buf *b, const eval_report *r)
{
    loco_status rc = buf_appends(b, "## Core Metrics\n\n| Metric | Score |\n|:-------|:-----:|\n");
    if (!rc)
        rc = md_score_row(b, "Tool Call Presence Alignment", r->presence);
    if (!rc)
        rc = md_score_row(b, "First Tool Type Match", r->first_tool);
    if (!rc)
        rc = md_score_row(b, "JSON Validity", r->json_valid);
    if (!rc)
        rc = md_score_row(b, "Argument Syntax Correctness", r->args_ok);
    return rc;
}

static loco_status md_delta(buf *b, size_t model, size_t teacher, bool bold)
{
    long long d = (long long)model - (long long)teacher;
    const char *s = bold ? "**" : "";
    return buf_appendf(b, "%s%s%lld%s |\n", s, d > 0 ? "+" : "", d, s);
}

static loco_status md_distribution(buf *b, const eval_report *r, const eval_names *names)
{
    loco_status rc = buf_appends(b, "\n## Tool Distribution Comparison\n\n| Tool | ");
    if (!rc)
        rc = md_text(b, model_name(names));
    if (!rc)
        rc = buf_appends(b, " | ");
    if (!rc)
        rc = md_text(b, teacher_name(names));
    if (!rc)
        rc = buf_appends(b, " | Delta |\n|:-----|:-----:|:-----:|:-----:|\n");
    for (size_t i = 0; i < r->n_tools && !rc; i++) {
        const eval_tool_count *t = &r->tools[i];
        rc = buf_appends(b, "| ");
        if (!rc)
            rc = md_text(b, t->name);
        if (!rc)
            rc = buf_appendf(b, " | %zu | %zu | ", t->model, t->teacher);
        if (!rc)
            rc = md_delta(b, t->model, t->teacher, false);
    }
    if (!rc)
        rc = buf_appendf(b, "| **Total** | **%zu** | **%zu** | ", r->model_calls,
                         r->teacher_calls);
    if (!rc)
        rc = md_delta(b, r->model_calls, r->teacher_calls, true);
    return rc;
}

static loco_status md_validity(buf *b, const eval_report *r, const eval_names *names)
{
    loco_status rc = buf_appends(b, "\n## JSON & Argument Syntax Correctness\n\n"
                                    "| Model | JSON Valid | Argument Syntax Valid |\n"
                                    "|:------|:---------:|:--------------------:|\n| **");
    if (!rc)
        rc = md_text(b, model_name(names));
    if (!rc)
        rc = buf_appends(b, "** | ");
    if (!rc)
        rc = md_fraction(b, r->json_valid);
    if (!rc)
        rc = buf_appends(b, " | ");
    if (!rc)
        rc = md_fraction(b, r->args_ok);
    if (!rc)
        rc = buf_appends(b, " |\n| ");
    if (!rc)
        rc = md_text(b, teacher_name(names));
    if (!rc)
        rc = buf_appends(b, " (labels) | ");
    if (!rc)
        rc = md_fraction(b, r->label_json_valid);
    if (!rc)
        rc = buf_appends(b, " | ");
    if (!rc)
        rc = md_fraction(b, r->label_args_ok);
    if (!rc)
        rc = buf_appends(b, " |\n");
    return rc;
}

static loco_status md_cpt(buf *b, const char *who, const eval_calls_per_turn *c)
{
    loco_status rc = buf_appends(b, "| Calls per turn with calls, ");
    if (!rc)
        rc = md_text(b, who);
    if (rc)
        return rc;
    if (!c->turns)
        return buf_appends(b, " | n/a (no turn with a tool call) |\n");
    return buf_appendf(b, " | %.2f (%zu calls / %zu turns; %zu with 2+ calls) |\n",
                       (double)c->calls / (double)c->turns, c->calls, c->turns, c->multi_turns);
}

static loco_status md_extra(buf *b, const eval_report *r, const eval_names *names)
{
    loco_status rc = buf_appends(b, "\n## Beyond the Card\n\n| Metric | Score |\n"
                                    "|:-------|:-----:|\n");
    if (!rc)
        rc = buf_appendf(b, "| Tool-name precision / recall / F1 (mean over %zu samples) | "
                            "%.3f / %.3f / %.3f |\n",
                         r->name_samples, r->name_precision, r->name_recall, r->name_f1);
    if (!rc)
        rc = buf_appends(b, "| Exact-argument match (label calls reproduced) | ");
    if (!rc)
        rc = md_fraction(b, r->exact_args);
    if (!rc)
        rc = buf_appends(b, " |\n");
    if (!rc)
        rc = md_cpt(b, model_name(names), &r->model_cpt);
    if (!rc)
        rc = md_cpt(b, teacher_name(names), &r->teacher_cpt);
    if (!rc)
        rc = buf_appends(b, "\n### First-Tool Mismatches\n\n");
    if (!rc && !r->n_confusion)
        return buf_appends(b, "None.\n");
    if (!rc)
        rc = buf_appends(b, "| Teacher's first tool | Model's first tool | Samples |\n"
                            "|:-----|:-----|:-----:|\n");
    for (size_t i = 0; i < r->n_confusion && !rc; i++) {
        rc = buf_appends(b, "| ");
        if (!rc)
            rc = md_text(b, r->confusion[i].teacher);
        if (!rc)
            rc = buf_appends(b, " | ");
        if (!rc)
            rc = md_text(b, r->confusion[i].model);
        if (!rc)
            rc = buf_appendf(b, " | %zu |\n", r->confusion[i].count);
    }
    return rc;
}

static loco_status md_ids(buf *b, const char *title, char *const *ids, size_t n)
{
    if (!n)
        return LOCO_OK;
    loco_status rc = buf_appendf(b, "\n%s (%zu): ", title, n);
    for (size_t i = 0; i < n && i < MD_MAX_IDS && !rc; i++) {
        rc = buf_appends(b, i ? ", " : "");
        if (!rc)
            rc = md_text(b, ids[i]);
    }
    if (!rc && n > MD_MAX_IDS)
        rc = buf_appendf(b, ", ... and %zu more", n - MD_MAX_IDS);
    if (!rc)
        rc = buf_appends(b, "\n");
    return rc;
}

static loco_status md_problems(buf *b, const eval_report *r)
{
    if (!r->problems_total)
        return LOCO_OK;
    loco_status rc = buf_appendf(b, "\nProblems (%zu):\n\n", r->problems_total);
    for (size_t i = 0; i < r->n_problems && i < MD_MAX_PROBLEMS && !rc; i++) {
        const eval_problem *p = &r->problems[i];
        rc = buf_appends(b, "- ");
        if (!rc)
            rc = md_text_max(b, p->source, MD_MAX_MESSAGE);
        if (!rc && p->line)
            rc = buf_appendf(b, ":%zu", p->line);
        if (!rc)
            rc = buf_appends(b, ": ");
        if (!rc)
            rc = md_text_max(b, p->message, MD_MAX_MESSAGE);
        if (!rc)
            rc = buf_appends(b, "\n");
    }
    if (!rc && r->problems_total > MD_MAX_PROBLEMS)
        rc = buf_appendf(b, "- ... and %zu more\n", r->problems_total - MD_MAX_PROBLEMS);
    return rc;
}

static loco_status md_inputs(buf *b, const eval_report *r)
{
    loco_status rc = buf_appendf(
        b,
        "\n## Inputs\n\n| | Lines | Valid | Broken | Failed |\n|:--|:--:|:--:|:--:|:--:|\n"
        "| Samples | %zu | %zu | %zu | |\n| Predictions | %zu | %zu | %zu | %zu |\n\n"
        "Scored: %zu samples (forms: hf %zu, anthropic %zu, openai %zu).\n",
        r->sample_lines, r->samples_valid, r->samples_broken, r->prediction_lines,
        r->predictions_valid, r->predictions_broken, r->predictions_failed, r->matched,
        r->forms[EVAL_FORM_HF], r->forms[EVAL_FORM_ANTHROPIC], r->forms[EVAL_FORM_OPENAI]);
    if (!rc)
        rc = md_ids(b, "Samples without a prediction", r->missing, r->n_missing);
    if (!rc)
        rc = md_ids(b, "Predictions without a sample", r->unmatched, r->n_unmatched);
    if (!rc)
        rc = md_problems(b, r);
    return rc;
}

loco_status eval_report_md(const eval_report *r, const eval_names *names, buf *out)
{
    loco_status rc = md_core(out, r);
    if (!rc)
        rc = md_distribution(out, r, names);
    if (!rc)
        rc = md_validity(out, r, names);
    if (!rc)
        rc = md_extra(out, r, names);
    if (!rc)
        rc = md_inputs(out, r);
    return rc;
}

/* ---- JSON ---- */

static json_t *j_ratio(eval_ratio r)
{
    return json_pack("{s:I, s:I, s:f}", "hits", (json_int_t)r.hits, "total",
                     (json_int_t)r.total, "rate", eval_ratio_rate(r));
}

static json_t *j_cpt(const eval_calls_per_turn *c)
{
    double mean = c->turns ? (double)c->calls / (double)c->turns : 0.0;
    return json_pack("{s:I, s:I, s:I, s:f}", "calls", (json_int_t)c->calls, "turns",
                     (json_int_t)c->turns, "multi_call_turns", (json_int_t)c->multi_turns,
                     "mean", mean);
}

static json_t *j_ids(char *const *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        if (json_array_append_new(a, json_string(ids[i]))) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *j_tools(const eval_report *r)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < r->n_tools; i++) {
        json_t *v = json_pack("{s:I, s:I}", "model", (json_int_t)r->tools[i].model, "teacher",
                              (json_int_t)r->tools[i].teacher);
        if (json_object_set_new(o, r->tools[i].name, v)) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *j_confusion(const eval_report *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->n_confusion; i++) {
        const eval_confusion *c = &r->confusion[i];
        json_t *v = json_pack("{s:s, s:s, s:I}", "teacher", c->teacher, "model", c->model,
                              "count", (json_int_t)c->count);
        if (json_array_append_new(a, v)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *j_problems(const eval_report *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->n_problems; i++) {
        const eval_problem *p = &r->problems[i];
        json_t *v = json_pack("{s:s, s:I, s:s}", "source", p->source, "line",
                              (json_int_t)p->line, "message", p->message);
        if (json_array_append_new(a, v)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *j_inputs(const eval_report *r)
{
    return json_pack(
        "{s:{s:I, s:I, s:I, s:{s:I, s:I, s:I}}, s:{s:I, s:I, s:I, s:I}, s:I, s:o, s:o, s:o, "
        "s:I}",
        "samples", "lines", (json_int_t)r->sample_lines, "valid", (json_int_t)r->samples_valid,
        "broken", (json_int_t)r->samples_broken, "forms", "hf",
        (json_int_t)r->forms[EVAL_FORM_HF], "anthropic", (json_int_t)r->forms[EVAL_FORM_ANTHROPIC],
        "openai", (json_int_t)r->forms[EVAL_FORM_OPENAI], "predictions", "lines",
        (json_int_t)r->prediction_lines, "valid", (json_int_t)r->predictions_valid, "broken",
        (json_int_t)r->predictions_broken, "failed", (json_int_t)r->predictions_failed,
        "matched", (json_int_t)r->matched, "missing_predictions", j_ids(r->missing, r->n_missing),
        "unmatched_predictions", j_ids(r->unmatched, r->n_unmatched), "problems", j_problems(r),
        "problems_total", (json_int_t)r->problems_total);
}

static json_t *j_report(const eval_report *r)
{
    json_t *root = j_inputs(r);
    json_t *metrics = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:{s:I, s:I}, s:{s:f, s:f, s:f, s:I}, s:o, "
        "s:{s:o, s:o}, s:o}",
        "tool_call_presence_alignment", j_ratio(r->presence), "first_tool_type_match",
        j_ratio(r->first_tool), "json_validity", j_ratio(r->json_valid),
        "argument_syntax_correctness", j_ratio(r->args_ok), "label_json_validity",
        j_ratio(r->label_json_valid), "label_argument_syntax_correctness",
        j_ratio(r->label_args_ok), "tool_distribution", j_tools(r), "tool_totals", "model",
        (json_int_t)r->model_calls, "teacher", (json_int_t)r->teacher_calls, "tool_name_set",
        "precision", r->name_precision, "recall", r->name_recall, "f1", r->name_f1, "samples",
        (json_int_t)r->name_samples, "exact_argument_match", j_ratio(r->exact_args),
        "calls_per_turn", "model", j_cpt(&r->model_cpt), "teacher", j_cpt(&r->teacher_cpt),
        "first_tool_confusion", j_confusion(r));
    if (!root || !metrics || json_object_update(root, metrics)) {
        json_decref(root);
        json_decref(metrics);
        return NULL;
    }
    json_decref(metrics);
    return root;
}

loco_status eval_report_json(const eval_report *r, buf *out)
{
    json_t *root = j_report(r);
    char *s = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (!s)
        return LOCO_ERR_NOMEM;
    loco_status rc = buf_appends(out, s);
    free(s);
    return rc ? rc : buf_appendc(out, '\n');
}

/* ---- SVG ---- */

#define SVG_LEFT 80
#define SVG_RIGHT 30
#define SVG_TOP 80
#define SVG_PLOT_H 300
#define SVG_BOTTOM 70
#define SVG_BAR_W 28
#define SVG_GROUP_W 90
#define SVG_MIN_W 560
#define SVG_MODEL_COLOR "#4e79a7"
#define SVG_TEACHER_COLOR "#f28e2b"

/* Appends s[0..n) with &, <, >, " escaped; control bytes dropped. */
static loco_status xml_text_n(buf *b, const char *s, size_t n)
{
    loco_status rc = LOCO_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '&')
            rc = buf_appends(b, "&amp;");
        else if (c == '<')
            rc = buf_appends(b, "&lt;");
        else if (c == '>')
            rc = buf_appends(b, "&gt;");
        else if (c == '"')
            rc = buf_appends(b, "&quot;");
        else if (c >= 0x20 && c != 0x7f)
            rc = buf_appendc(b, (char)c);
    }
    return rc;
}

/* Escaped and cut to max characters (UTF-8 aware), "…" when cut; invalid UTF-8 becomes '?'. */
static loco_status xml_label(buf *b, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (!utf8_valid(s, n))
        return buf_appends(b, "?");
    size_t at = 0, chars = 0;
    while (at < n && chars < max) {
        at++;
        while (at < n && utf8_is_cont((unsigned char)s[at]))
            at++;
        chars++;
    }
    loco_status rc = xml_text_n(b, s, at);
    if (!rc && at < n)
        rc = buf_appends(b, "…");
    return rc;
}

static long nice_step(size_t max)
{
    long step = 1;
    while ((long)max / step > 5) {
        if ((long)max / (step * 2) <= 5)
            return step * 2;
        if ((long)max / (step * 5) <= 5)
            return step * 5;
        step *= 10;
    }
    return step;
}

typedef struct {
    buf *b;
    long top;     /* value at the top of the axis */
    int plot_w;
    int width, height;
} svg_ctx;

static int svg_y(const svg_ctx *c, size_t v)
{
    return SVG_TOP + SVG_PLOT_H - (int)((double)v * SVG_PLOT_H / (double)c->top + 0.5);
}

static loco_status svg_head(svg_ctx *c, const eval_names *names)
{
    loco_status rc = buf_appendf(
        c->b,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
        "viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
        "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n"
        "<text x=\"%d\" y=\"28\" font-size=\"16\" font-weight=\"bold\">Tool distribution: ",
        c->width, c->height, c->width, c->height, SVG_LEFT);
    if (!rc)
        rc = xml_label(c->b, model_name(names), 40);
    if (!rc)
        rc = buf_appends(c->b, " vs ");
    if (!rc)
        rc = xml_label(c->b, teacher_name(names), 40);
    if (!rc)
        rc = buf_appends(c->b, "</text>\n");
    return rc;
}

static loco_status svg_legend(svg_ctx *c, const eval_names *names)
{
    int x = SVG_LEFT, y = 46;
    loco_status rc = buf_appendf(
        c->b,
        "<g class=\"legend\">\n<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/>\n"
        "<text x=\"%d\" y=\"%d\">",
        x, y, SVG_MODEL_COLOR, x + 20, y + 12);
    if (!rc)
        rc = xml_label(c->b, model_name(names), 30);
    if (!rc)
        rc = buf_appendf(c->b,
                         "</text>\n<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" "
                         "fill=\"%s\"/>\n<text x=\"%d\" y=\"%d\">",
                         x + 240, y, SVG_TEACHER_COLOR, x + 260, y + 12);
    if (!rc)
        rc = xml_label(c->b, teacher_name(names), 30);
    if (!rc)
        rc = buf_appends(c->b, "</text>\n</g>\n");
    return rc;
}

static loco_status svg_axes(svg_ctx *c, long step)
{
    int x0 = SVG_LEFT, y0 = SVG_TOP + SVG_PLOT_H;
    loco_status rc = buf_appends(c->b, "<g class=\"axes\" stroke=\"#333333\">\n");
    for (long v = 0; v <= c->top && !rc; v += step) {
        int y = svg_y(c, (size_t)v);
        rc = buf_appendf(c->b,
                         "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#dddddd\"/>\n"
                         "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n"
                         "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" stroke=\"none\">%ld</text>\n",
                         x0, y, x0 + c->plot_w, y, x0 - 5, y, x0, y, x0 - 8, y + 4, v);
    }
    if (!rc)
        rc = buf_appendf(
            c->b,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n"
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n</g>\n"
            "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">Tool</text>\n"
            "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\" "
            "transform=\"rotate(-90 %d %d)\">Tool calls</text>\n",
            x0, SVG_TOP, x0, y0, x0, y0, x0 + c->plot_w, y0, x0 + c->plot_w / 2,
            c->height - 18, 24, SVG_TOP + SVG_PLOT_H / 2, 24, SVG_TOP + SVG_PLOT_H / 2);
    return rc;
}

static loco_status svg_bar(svg_ctx *c, int x, size_t v, const char *color, const char *who,
                           const char *tool)
{
    int y = svg_y(c, v), y0 = SVG_TOP + SVG_PLOT_H;
    loco_status rc = buf_appendf(c->b,
                                 "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                                 "fill=\"%s\"><title>",
                                 x, y, SVG_BAR_W, y0 - y, color);
    if (!rc)
        rc = xml_label(c->b, who, 40);
    if (!rc)
        rc = buf_appends(c->b, ", ");
    if (!rc)
        rc = xml_label(c->b, tool, 80);
    if (!rc)
        rc = buf_appendf(c->b,
                         ": %zu</title></rect>\n<text x=\"%d\" y=\"%d\" "
                         "text-anchor=\"middle\" font-size=\"11\">%zu</text>\n",
                         v, x + SVG_BAR_W / 2, y - 4, v);
    return rc;
}

static loco_status svg_groups(svg_ctx *c, const eval_report *r, const eval_names *names)
{
    loco_status rc = LOCO_OK;
    for (size_t i = 0; i < r->n_tools && !rc; i++) {
        const eval_tool_count *t = &r->tools[i];
        int gx = SVG_LEFT + (int)i * SVG_GROUP_W + (SVG_GROUP_W - 2 * SVG_BAR_W - 4) / 2;
        rc = svg_bar(c, gx, t->model, SVG_MODEL_COLOR, model_name(names), t->name);
        if (!rc)
            rc = svg_bar(c, gx + SVG_BAR_W + 4, t->teacher, SVG_TEACHER_COLOR,
                         teacher_name(names), t->name);
        if (!rc)
            rc = buf_appendf(c->b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">",
                             gx + SVG_BAR_W + 2, SVG_TOP + SVG_PLOT_H + 18);
        if (!rc)
            rc = xml_label(c->b, t->name, SVG_MAX_LABEL);
        if (!rc)
            rc = buf_appends(c->b, "</text>\n");
    }
    if (!rc && !r->n_tools)
        rc = buf_appendf(c->b,
                         "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#777777\">"
                         "no tool calls</text>\n",
                         SVG_LEFT + c->plot_w / 2, SVG_TOP + SVG_PLOT_H / 2);
    return rc;
}

loco_status eval_report_svg(const eval_report *r, const eval_names *names, buf *out)
{
    size_t max = 0;
    for (size_t i = 0; i < r->n_tools; i++) {
        max = r->tools[i].model > max ? r->tools[i].model : max;
        max = r->tools[i].teacher > max ? r->tools[i].teacher : max;
    }
    long step = nice_step(max);
    svg_ctx c = {.b = out};
    c.top = ((long)max / step + 1) * step; /* above the highest bar: room for its label */
    c.plot_w = (int)(r->n_tools ? r->n_tools : 1) * SVG_GROUP_W;
    c.width = SVG_LEFT + c.plot_w + SVG_RIGHT;
    if (c.width < SVG_MIN_W)
        c.width = SVG_MIN_W;
    c.height = SVG_TOP + SVG_PLOT_H + SVG_BOTTOM;
    loco_status rc = svg_head(&c, names);
    if (!rc)
        rc = svg_legend(&c, names);
    if (!rc)
        rc = svg_axes(&c, step);
    if (!rc)
        rc = svg_groups(&c, r, names);
    if (!rc)
        rc = buf_appends(out, "</svg>\n");
    return rc;
}
