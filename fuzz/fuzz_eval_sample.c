/* fuzz_eval_sample.c: libFuzzer target for eval's line readers (eval/sample.c, eval/turn.c)
 * on arbitrary bytes: the input is read as one sample line, as one prediction line, and as
 * JSONL files of both (then scored and written as Markdown, JSON and SVG). Checks: a line
 * that parses has an id and calls within limits; every report writer succeeds and the JSON
 * it writes parses. A violation aborts (the fuzzer's signal). */
#include "base/common.h"

#include "base/buf.h"
#include "base/json.h"
#include "eval/eval.h"

static void check_turn(const eval_turn *t)
{
    if (t->n_calls > EVAL_MAX_CALLS)
        abort();
    for (size_t i = 0; i < t->n_calls; i++) {
        const eval_call *c = &t->calls[i];
        if (c->name && !*c->name)
            abort(); /* a name is NULL or non-empty */
        (void)eval_args_ok(c, NULL, 0, NULL);
    }
}

static void one_line(const uint8_t *data, size_t size)
{
    loco_err err;
    eval_sample s;
    if (eval_sample_parse((const char *)data, size, &s, &err) == LOCO_OK) {
        if (!s.id || !*s.id || !s.req)
            abort();
        check_turn(&s.label);
        size_t n;
        const chat_tool *tools = eval_builtin_tools(&n);
        for (size_t i = 0; i < s.label.n_calls; i++)
            (void)eval_args_ok(&s.label.calls[i], s.req->n_tools ? s.req->tools : tools,
                               s.req->n_tools ? s.req->n_tools : n, NULL);
        eval_sample_release(&s);
    } else if (s.id || s.req) {
        abort(); /* a failed parse leaves nothing behind */
    }
    eval_prediction p;
    if (eval_prediction_parse((const char *)data, size, &p, &err) == LOCO_OK) {
        check_turn(&p.turn);
        eval_prediction_release(&p);
    }
}

static void as_files(const uint8_t *data, size_t size)
{
    loco_err err;
    eval_set *set = eval_set_new();
    if (!set)
        return;
    /* the same bytes as the samples file and as the predictions file: ids then match */
    if (eval_set_add_samples(set, "s", (const char *)data, size, &err) ||
        eval_set_add_predictions(set, "p", (const char *)data, size, &err)) {
        eval_set_free(set);
        return;
    }
    eval_report *r = NULL;
    if (eval_score(set, &r, &err) == LOCO_OK) {
        buf out;
        buf_init(&out, BUF_UNLIMITED);
        eval_names names = {.model = "m", .teacher = "t"};
        if (eval_report_md(r, &names, &out) || eval_report_svg(r, &names, &out))
            abort();
        buf_reset(&out);
        if (eval_report_json(r, &out))
            abort();
        json_t *j = json_parse(out.data, out.len, NULL);
        if (!j)
            abort();
        json_decref(j);
        if (r->matched > r->samples_valid || r->presence.hits > r->presence.total ||
            r->json_valid.hits > r->json_valid.total || r->args_ok.hits > r->json_valid.hits ||
            r->first_tool.total > r->matched)
            abort();
        buf_release(&out);
        eval_report_free(r);
    }
    eval_set_free(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    one_line(data, size);
    as_files(data, size);
    return 0;
}
