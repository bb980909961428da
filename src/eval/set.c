/* set.c: an evaluation data set: samples and predictions read from JSONL (broken lines
 * become problems with line numbers, never errors) or predictions recorded from a backend.
 * Part of eval/. */
#include "base/common.h"

#include "base/json.h"
#include "base/str.h"
#include "base/utf8.h"
#include "eval/eval_int.h"

eval_set *eval_set_new(void)
{
    return calloc(1, sizeof(eval_set));
}

void eval_set_free(eval_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_samples; i++) {
        eval_sample_release(&s->samples[i].s);
        free(s->samples[i].output_json);
        eval_turn_release(&s->samples[i].output);
    }
    for (size_t i = 0; i < s->n_preds; i++)
        eval_prediction_release(&s->preds[i].p);
    for (size_t i = 0; i < s->n_sources; i++)
        free(s->sources[i]);
    for (size_t i = 0; i < s->n_problems; i++) {
        free(s->problems[i].source);
        free(s->problems[i].message);
    }
    free(s->samples);
    free(s->preds);
    free(s->sources);
    free(s->problems);
    free(s);
}

loco_status eval_problem_add(eval_problem **list, size_t *n, size_t *total, const char *source,
                             size_t line, const char *fmt, ...)
{
    (*total)++;
    if (*n >= EVAL_MAX_PROBLEMS)
        return LOCO_OK;
    if ((*n & (*n - 1)) == 0) { /* grow at powers of two */
        eval_problem *p = realloc(*list, (*n ? *n * 2 : 1) * sizeof(*p));
        if (!p)
            return LOCO_ERR_NOMEM;
        *list = p;
    }
    char raw[EVAL_MAX_PROBLEM_BYTES]; /* a longer message is cut */
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    buf msg;
    buf_init(&msg, BUF_UNLIMITED); /* at most 3 bytes per byte of raw */
    size_t used = len < 0 ? 0 : (size_t)len < sizeof(raw) ? (size_t)len : sizeof(raw) - 1;
    /* parse errors quote raw bytes, ids may hold escape sequences: show them escaped */
    loco_status rc = str_append_printable(&msg, raw, used);
    char *m = rc ? NULL : buf_take(&msg, NULL);
    char *src = strdup(source ? source : "");
    buf_release(&msg);
    if (!m || !src) {
        free(m);
        free(src);
        return LOCO_ERR_NOMEM;
    }
    (*list)[(*n)++] = (eval_problem){.source = src, .line = line, .message = m};
    return LOCO_OK;
}

static loco_status problem(eval_set *s, const char *source, size_t line, const char *msg)
{
    return eval_problem_add(&s->problems, &s->n_problems, &s->problems_total, source, line,
                            "%s", msg);
}

static char *keep_source(eval_set *s, const char *source)
{
    char **v = realloc(s->sources, (s->n_sources + 1) * sizeof(*v));
    if (!v)
        return NULL;
    s->sources = v;
    char *d = strdup(source ? source : "");
    if (d)
        s->sources[s->n_sources++] = d;
    return d;
}

static bool grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 16;
    void *q = realloc(*p, c * size);
    if (!q)
        return false;
    *p = q;
    *cap = c;
    return true;
}

typedef loco_status (*line_fn)(eval_set *s, const char *src, size_t line, const char *p,
                               size_t n, loco_err *err);

static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    }
    return true;
}

/* Calls fn for each non-blank line of text[0..n), 1-based line numbers. */
static loco_status each_line(eval_set *s, const char *src, const char *text, size_t n,
                             line_fn fn, loco_err *err)
{
    size_t line = 0;
    for (size_t at = 0; at < n;) {
        const char *nl = memchr(text + at, '\n', n - at);
        size_t end = nl ? (size_t)(nl - text) : n;
        size_t len = end - at;
        line++;
        if (len && text[at + len - 1] == '\r')
            len--;
        if (!blank(text + at, len)) {
            loco_status rc = fn(s, src, line, text + at, len, err);
            if (rc)
                return rc;
        }
        at = end + 1;
    }
    return LOCO_OK;
}

static loco_status sample_line(eval_set *s, const char *src, size_t line, const char *p,
                               size_t n, loco_err *err)
{
    s->sample_lines++;
    loco_err perr;
    loco_err_clear(&perr);
    eval_sample smp;
    loco_status rc = n > EVAL_MAX_LINE_BYTES
                         ? loco_err_set(&perr, LOCO_ERR_LIMIT, "line longer than %zu bytes",
                                        EVAL_MAX_LINE_BYTES)
                         : eval_sample_parse(p, n, &smp, &perr);
    if (rc == LOCO_ERR_NOMEM)
        return loco_err_set(err, rc, "out of memory reading %s", src);
    if (rc) {
        s->samples_broken++;
        return problem(s, src, line, perr.msg);
    }
    if (!grow((void **)&s->samples, &s->cap_samples, s->n_samples, sizeof(*s->samples))) {
        eval_sample_release(&smp);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory reading %s", src);
    }
    eval_sample_entry *e = &s->samples[s->n_samples++];
    memset(e, 0, sizeof(*e));
    e->s = smp;
    e->source = (char *)src;
    e->line = line;
    return LOCO_OK;
}

static loco_status prediction_line(eval_set *s, const char *src, size_t line, const char *p,
                                   size_t n, loco_err *err)
{
    s->prediction_lines++;
    loco_err perr;
    loco_err_clear(&perr);
    eval_prediction pr;
    loco_status rc = n > EVAL_MAX_LINE_BYTES
                         ? loco_err_set(&perr, LOCO_ERR_LIMIT, "line longer than %zu bytes",
                                        EVAL_MAX_LINE_BYTES)
                         : eval_prediction_parse(p, n, &pr, &perr);
    if (rc == LOCO_ERR_NOMEM)
        return loco_err_set(err, rc, "out of memory reading %s", src);
    if (rc) {
        s->predictions_broken++;
        return problem(s, src, line, perr.msg);
    }
    if (!grow((void **)&s->preds, &s->cap_preds, s->n_preds, sizeof(*s->preds))) {
        eval_prediction_release(&pr);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory reading %s", src);
    }
    s->preds[s->n_preds++] = (eval_prediction_entry){.p = pr, .source = (char *)src, .line = line};
    return LOCO_OK;
}

static loco_status add_lines(eval_set *s, const char *source, const char *text, size_t n,
                             line_fn fn, loco_err *err)
{
    loco_err_clear(err);
    char *src = keep_source(s, source);
    if (!src)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    loco_status rc = each_line(s, src, text, n, fn, err);
    if (rc && !err->msg[0])
        loco_err_set(err, rc, "out of memory reading %s", src);
    return rc;
}

loco_status eval_set_add_samples(eval_set *s, const char *source, const char *text, size_t n,
                                 loco_err *err)
{
    return add_lines(s, source, text, n, sample_line, err);
}

loco_status eval_set_add_predictions(eval_set *s, const char *source, const char *text,
                                     size_t n, loco_err *err)
{
    return add_lines(s, source, text, n, prediction_line, err);
}

size_t eval_set_n_samples(const eval_set *s)
{
    return s->n_samples;
}

const eval_sample *eval_set_sample(const eval_set *s, size_t i)
{
    return i < s->n_samples ? &s->samples[i].s : NULL;
}

loco_status eval_set_put_output(eval_set *s, size_t i, const char *output_json, loco_err *err)
{
    loco_err_clear(err);
    if (i >= s->n_samples)
        return loco_err_set(err, LOCO_ERR_INVALID, "no sample %zu", i);
    eval_sample_entry *e = &s->samples[i];
    json_t *v = json_parse(output_json, strlen(output_json), err);
    if (!v)
        return eval_set_put_failure(s, i, err->msg) ? LOCO_ERR_NOMEM : LOCO_ERR_INVALID;
    eval_turn t;
    eval_turn_init(&t);
    loco_status rc = eval_turn_add_json(&t, v, err);
    char *copy = rc ? NULL : strdup(output_json);
    json_decref(v);
    if (!rc && !copy)
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    if (rc) {
        eval_turn_release(&t);
        if (rc == LOCO_ERR_NOMEM)
            return rc;
        return eval_set_put_failure(s, i, err->msg) ? LOCO_ERR_NOMEM : rc;
    }
    free(e->output_json);
    eval_turn_release(&e->output);
    e->output_json = copy;
    e->output = t;
    e->has_output = true;
    return LOCO_OK;
}

loco_status eval_set_put_failure(eval_set *s, size_t i, const char *message)
{
    if (i >= s->n_samples)
        return LOCO_ERR_INVALID;
    s->predictions_failed++;
    return eval_problem_add(&s->problems, &s->n_problems, &s->problems_total, "backend", 0,
                            "sample '%s': %s", s->samples[i].s.id, message);
}

loco_status eval_set_write_outputs(const eval_set *s, buf *out)
{
    loco_status rc = LOCO_OK;
    for (size_t i = 0; i < s->n_samples && !rc; i++) {
        const eval_sample_entry *e = &s->samples[i];
        if (!e->has_output)
            continue;
        rc = buf_appends(out, "{\"id\":");
        if (!rc)
            rc = buf_append_json_str(out, e->s.id, strlen(e->s.id));
        if (!rc)
            rc = buf_appendf(out, ",\"output\":%s}\n", e->output_json);
    }
    return rc;
}
