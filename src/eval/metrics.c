/* metrics.c: scoring: pairs every sample with its prediction by id, then computes the model
 * card's metrics and the extra ones (definitions in docs/internals/eval.md). Part of eval/. */
#include "base/common.h"

#include "base/json.h"
#include "eval/eval_int.h"

double eval_ratio_rate(eval_ratio r)
{
    return r.total ? (double)r.hits / (double)r.total : 0.0;
}

void eval_report_free(eval_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_missing; i++)
        free(r->missing[i]);
    for (size_t i = 0; i < r->n_unmatched; i++)
        free(r->unmatched[i]);
    for (size_t i = 0; i < r->n_problems; i++) {
        free(r->problems[i].source);
        free(r->problems[i].message);
    }
    for (size_t i = 0; i < r->n_tools; i++)
        free(r->tools[i].name);
    for (size_t i = 0; i < r->n_confusion; i++) {
        free(r->confusion[i].teacher);
        free(r->confusion[i].model);
    }
    free(r->missing);
    free(r->unmatched);
    free(r->problems);
    free(r->tools);
    free(r->confusion);
    free(r);
}

/* ---- small tables ---- */

static const char *shown(const char *name)
{
    return name ? name : EVAL_UNPARSED_NAME;
}

/* The distribution row of name, added when new (EVAL_OTHER_NAME past the limit). */
static eval_tool_count *tool_row(eval_report *r, const char *name)
{
    for (size_t i = 0; i < r->n_tools; i++) {
        if (!strcmp(r->tools[i].name, name))
            return &r->tools[i];
    }
    if (r->n_tools >= EVAL_MAX_TOOL_NAMES && strcmp(name, EVAL_OTHER_NAME))
        return tool_row(r, EVAL_OTHER_NAME);
    eval_tool_count *v = realloc(r->tools, (r->n_tools + 1) * sizeof(*v));
    if (!v)
        return NULL;
    r->tools = v;
    char *d = strdup(name);
    if (!d)
        return NULL;
    r->tools[r->n_tools] = (eval_tool_count){.name = d};
    return &r->tools[r->n_tools++];
}

static loco_status confusion_add(eval_report *r, const char *teacher, const char *model)
{
    for (size_t i = 0; i < r->n_confusion; i++) {
        eval_confusion *c = &r->confusion[i];
        if (!strcmp(c->teacher, teacher) && !strcmp(c->model, model)) {
            c->count++;
            return LOCO_OK;
        }
    }
    if (r->n_confusion >= EVAL_MAX_TOOL_NAMES)
        return confusion_add(r, EVAL_OTHER_NAME, EVAL_OTHER_NAME);
    eval_confusion *v = realloc(r->confusion, (r->n_confusion + 1) * sizeof(*v));
    if (!v)
        return LOCO_ERR_NOMEM;
    r->confusion = v;
    char *t = strdup(teacher), *m = strdup(model);
    if (!t || !m) {
        free(t);
        free(m);
        return LOCO_ERR_NOMEM;
    }
    r->confusion[r->n_confusion++] = (eval_confusion){.teacher = t, .model = m, .count = 1};
    return LOCO_OK;
}

static loco_status push_id(char ***list, size_t *n, const char *id)
{
    char **v = realloc(*list, (*n + 1) * sizeof(*v));
    if (!v)
        return LOCO_ERR_NOMEM;
    *list = v;
    v[*n] = strdup(id);
    if (!v[*n])
        return LOCO_ERR_NOMEM;
    (*n)++;
    return LOCO_OK;
}

/* ---- per-sample metrics ---- */

static loco_status count_calls(eval_report *r, const eval_turn *t, const chat_tool *tools,
                               size_t n_tools, bool model)
{
    for (size_t i = 0; i < t->n_calls; i++) {
        const eval_call *c = &t->calls[i];
        eval_ratio *jv = model ? &r->json_valid : &r->label_json_valid;
        eval_ratio *ao = model ? &r->args_ok : &r->label_args_ok;
        jv->total++;
        jv->hits += c->json_valid;
        ao->total++;
        ao->hits += eval_args_ok(c, tools, n_tools, NULL);
        eval_tool_count *row = tool_row(r, shown(c->name));
        if (!row)
            return LOCO_ERR_NOMEM;
        if (model)
            row->model++;
        else
            row->teacher++;
    }
    eval_calls_per_turn *cpt = model ? &r->model_cpt : &r->teacher_cpt;
    if (t->n_calls) {
        cpt->turns++;
        cpt->calls += t->n_calls;
        cpt->multi_turns += t->n_calls > 1;
    }
    return LOCO_OK;
}

/* Tool-name multiset precision / recall / F1 of one sample (named calls only can match). */
static void name_overlap(eval_report *r, const eval_turn *pred, const eval_turn *label,
                         bool *used)
{
    size_t common = 0;
    memset(used, 0, label->n_calls * sizeof(*used));
    for (size_t i = 0; i < pred->n_calls; i++) {
        const char *n = pred->calls[i].name;
        for (size_t j = 0; n && j < label->n_calls; j++) {
            if (!used[j] && label->calls[j].name && !strcmp(label->calls[j].name, n)) {
                used[j] = true;
                common++;
                break;
            }
        }
    }
    double p = pred->n_calls ? (double)common / (double)pred->n_calls : 1.0;
    double rc = label->n_calls ? (double)common / (double)label->n_calls : 1.0;
    r->name_precision += p;
    r->name_recall += rc;
    r->name_f1 += p + rc > 0 ? 2 * p * rc / (p + rc) : 0.0;
    r->name_samples++;
}

static json_t *args_of(const eval_call *c)
{
    return c->name && c->args_json ? json_parse(c->args_json, strlen(c->args_json), NULL)
                                   : NULL;
}

/* Label calls reproduced by a distinct predicted call with the same name and JSON-equal
 * arguments. */
static void exact_args(eval_report *r, const eval_turn *pred, const eval_turn *label, bool *used)
{
    memset(used, 0, pred->n_calls * sizeof(*used));
    for (size_t j = 0; j < label->n_calls; j++) {
        r->exact_args.total++;
        json_t *want = args_of(&label->calls[j]);
        for (size_t i = 0; want && i < pred->n_calls; i++) {
            if (used[i] || !pred->calls[i].name ||
                strcmp(pred->calls[i].name, label->calls[j].name))
                continue;
            json_t *got = args_of(&pred->calls[i]);
            bool eq = got && json_equal(got, want);
            json_decref(got);
            if (eq) {
                used[i] = true;
                r->exact_args.hits++;
                break;
            }
        }
        json_decref(want);
    }
}

static bool same_name(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

static loco_status score_pair(eval_report *r, const eval_sample *s, const eval_turn *pred)
{
    const eval_turn *label = &s->label;
    size_t n_tools = s->req->n_tools;
    const chat_tool *tools = s->req->tools;
    if (!n_tools)
        tools = eval_builtin_tools(&n_tools);
    r->matched++;
    r->presence.total++;
    r->presence.hits += (pred->n_calls > 0) == (label->n_calls > 0);
    loco_status rc = LOCO_OK;
    if (pred->n_calls && label->n_calls) {
        const char *pn = pred->calls[0].name, *ln = label->calls[0].name;
        r->first_tool.total++;
        if (same_name(pn, ln))
            r->first_tool.hits++;
        else
            rc = confusion_add(r, shown(ln), shown(pn));
    }
    if (!rc)
        rc = count_calls(r, pred, tools, n_tools, true);
    if (!rc)
        rc = count_calls(r, label, tools, n_tools, false);
    if (rc)
        return rc;
    size_t most = pred->n_calls > label->n_calls ? pred->n_calls : label->n_calls;
    bool *used = calloc(most ? most : 1, sizeof(*used));
    if (!used)
        return LOCO_ERR_NOMEM;
    if (pred->n_calls || label->n_calls)
        name_overlap(r, pred, label, used);
    exact_args(r, pred, label, used);
    free(used);
    return LOCO_OK;
}

/* ---- pairing by id ---- */

typedef struct {
    const char *id;
    size_t index;
} id_ref;

static int cmp_ref(const void *a, const void *b)
{
    const id_ref *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorted references to ids; dup[i] set for each entry whose id an earlier entry has, with a
 * problem recorded. */
static loco_status sort_ids(eval_report *r, id_ref *refs, size_t n, bool *dup,
                            const size_t *lines, char *const *sources, const char *what)
{
    qsort(refs, n, sizeof(*refs), cmp_ref);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(refs[i].id, refs[i - 1].id))
            continue;
        size_t first = i;
        while (first > 0 && !strcmp(refs[first - 1].id, refs[i].id))
            first--;
        dup[refs[i].index] = true;
        if (eval_problem_add(&r->problems, &r->n_problems, &r->problems_total,
                             sources[refs[i].index], lines[refs[i].index],
                             "duplicate %s id '%s' (first on line %zu): ignored", what,
                             refs[i].id, lines[refs[first].index]))
            return LOCO_ERR_NOMEM;
    }
    return LOCO_OK;
}

static const id_ref *find_id(const id_ref *refs, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(refs[mid].id, id);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && !strcmp(refs[lo].id, id) ? &refs[lo] : NULL;
}

typedef struct {
    id_ref *srefs, *prefs;
    bool *sdup, *pdup, *pused;
    size_t *slines, *plines;
    char **ssrc, **psrc;
} pairing;

static void pairing_release(pairing *p)
{
    free(p->srefs);
    free(p->prefs);
    free(p->sdup);
    free(p->pdup);
    free(p->pused);
    free(p->slines);
    free(p->plines);
    free(p->ssrc);
    free(p->psrc);
}

static loco_status pairing_init(pairing *p, const eval_set *s)
{
    size_t ns = s->n_samples ? s->n_samples : 1, np = s->n_preds ? s->n_preds : 1;
    memset(p, 0, sizeof(*p));
    p->srefs = calloc(ns, sizeof(*p->srefs));
    p->prefs = calloc(np, sizeof(*p->prefs));
    p->sdup = calloc(ns, sizeof(bool));
    p->pdup = calloc(np, sizeof(bool));
    p->pused = calloc(np, sizeof(bool));
    p->slines = calloc(ns, sizeof(size_t));
    p->plines = calloc(np, sizeof(size_t));
    p->ssrc = calloc(ns, sizeof(char *));
    p->psrc = calloc(np, sizeof(char *));
    if (!p->srefs || !p->prefs || !p->sdup || !p->pdup || !p->pused || !p->slines ||
        !p->plines || !p->ssrc || !p->psrc)
        return LOCO_ERR_NOMEM;
    for (size_t i = 0; i < s->n_samples; i++) {
        p->srefs[i] = (id_ref){s->samples[i].s.id, i};
        p->slines[i] = s->samples[i].line;
        p->ssrc[i] = s->samples[i].source;
    }
    for (size_t i = 0; i < s->n_preds; i++) {
        p->prefs[i] = (id_ref){s->preds[i].p.id, i};
        p->plines[i] = s->preds[i].line;
        p->psrc[i] = s->preds[i].source;
    }
    return LOCO_OK;
}

static loco_status copy_problems(eval_report *r, const eval_set *s)
{
    for (size_t i = 0; i < s->n_problems; i++) {
        const eval_problem *p = &s->problems[i];
        if (eval_problem_add(&r->problems, &r->n_problems, &r->problems_total, p->source,
                             p->line, "%s", p->message))
            return LOCO_ERR_NOMEM;
    }
    r->problems_total += s->problems_total - s->n_problems;
    return LOCO_OK;
}

static void count_inputs(eval_report *r, const eval_set *s, const pairing *pr)
{
    r->sample_lines = s->sample_lines;
    r->samples_broken = s->samples_broken;
    r->prediction_lines = s->prediction_lines;
    r->predictions_broken = s->predictions_broken;
    r->predictions_failed = s->predictions_failed;
    for (size_t i = 0; i < s->n_samples; i++) {
        if (pr->sdup[i]) {
            r->samples_broken++;
            continue;
        }
        r->samples_valid++;
        r->forms[s->samples[i].s.form]++;
        r->predictions_valid += s->samples[i].has_output;
    }
    for (size_t i = 0; i < s->n_preds; i++) {
        if (pr->pdup[i])
            r->predictions_broken++;
        else
            r->predictions_valid++;
    }
}

static int cmp_tool(const void *a, const void *b)
{
    const eval_tool_count *x = a, *y = b;
    bool xu = !strcmp(x->name, EVAL_UNPARSED_NAME), yu = !strcmp(y->name, EVAL_UNPARSED_NAME);
    if (xu != yu)
        return xu ? 1 : -1;
    size_t sx = x->model + x->teacher, sy = y->model + y->teacher;
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_confusion(const void *a, const void *b)
{
    const eval_confusion *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    int c = strcmp(x->teacher, y->teacher);
    return c ? c : strcmp(x->model, y->model);
}

static void finish(eval_report *r)
{
    if (r->name_samples) {
        r->name_precision /= (double)r->name_samples;
        r->name_recall /= (double)r->name_samples;
        r->name_f1 /= (double)r->name_samples;
    }
    for (size_t i = 0; i < r->n_tools; i++) {
        r->model_calls += r->tools[i].model;
        r->teacher_calls += r->tools[i].teacher;
    }
    if (r->n_tools)
        qsort(r->tools, r->n_tools, sizeof(*r->tools), cmp_tool);
    if (r->n_confusion)
        qsort(r->confusion, r->n_confusion, sizeof(*r->confusion), cmp_confusion);
}

static loco_status score_all(eval_report *r, const eval_set *s, pairing *pr)
{
    loco_status rc = copy_problems(r, s);
    if (!rc)
        rc = sort_ids(r, pr->srefs, s->n_samples, pr->sdup, pr->slines, pr->ssrc, "sample");
    if (!rc)
        rc = sort_ids(r, pr->prefs, s->n_preds, pr->pdup, pr->plines, pr->psrc, "prediction");
    count_inputs(r, s, pr);
    for (size_t i = 0; i < s->n_samples && !rc; i++) {
        const eval_sample_entry *e = &s->samples[i];
        if (pr->sdup[i])
            continue;
        const eval_turn *pred = e->has_output ? &e->output : NULL;
        const id_ref *ref = find_id(pr->prefs, s->n_preds, e->s.id);
        if (ref) {
            pr->pused[ref->index] = true;
            if (!pred)
                pred = &s->preds[ref->index].p.turn;
        }
        rc = pred ? score_pair(r, &e->s, pred) : push_id(&r->missing, &r->n_missing, e->s.id);
    }
    for (size_t i = 0; i < s->n_preds && !rc; i++) {
        if (!pr->pdup[i] && !pr->pused[i])
            rc = push_id(&r->unmatched, &r->n_unmatched, s->preds[i].p.id);
    }
    return rc;
}

loco_status eval_score(const eval_set *s, eval_report **out, loco_err *err)
{
    loco_err_clear(err);
    *out = NULL;
    eval_report *r = calloc(1, sizeof(*r));
    pairing pr;
    loco_status rc = pairing_init(&pr, s);
    if (!r)
        rc = LOCO_ERR_NOMEM;
    if (!rc)
        rc = score_all(r, s, &pr);
    pairing_release(&pr);
    if (rc) {
        eval_report_free(r);
        return loco_err_set(err, rc, "out of memory scoring");
    }
    finish(r);
    *out = r;
    return LOCO_OK;
}
