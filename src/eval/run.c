/* run.c: producing predictions by running a backend on every sample, several at a time,
 * keeping each answer in a form that scores the same when read back from a predictions file.
 * Part of eval/. */
#include "base/common.h"

#include <pthread.h>

#include "base/json.h"
#include "base/utf8.h"
#include "chat/qwen.h"
#include "eval/eval_int.h"

#define EVAL_MAX_ANSWER_BYTES ((size_t)16 << 20) /* text kept of one answer */
#define EVAL_MAX_JOBS 256

typedef struct {
    eval_set *s;
    backend *b;
    const eval_run_opts *o;
    pthread_mutex_t mu;
    size_t *order;  /* the samples to run: all but repeated ids */
    size_t next, done, failed, total;
    char **outputs; /* per sample: the output JSON, or NULL */
    char **errors;  /* per sample: why there is none, or NULL */
    bool unreachable; /* a call could not reach the backend: the run stops */
    loco_err unreachable_err;
} runner;

/* A call the backend could not parse is kept as <tool_call> text where it was met, so the
 * saved output gives the same calls when read back. */
static loco_status on_bad_call(void *ctx, const char *raw, size_t n, const char *reason)
{
    chat_answer *a = ctx;
    LOCO_UNUSED(reason);
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    chat_usage_init(&ev.usage);
    ev.type = CHAT_EV_TEXT_DELTA;
    ev.text = "\n<tool_call>\n";
    ev.len = strlen(ev.text);
    loco_status rc = chat_answer_on_event(a, &ev);
    ev.text = raw;
    ev.len = n;
    if (!rc)
        rc = chat_answer_on_event(a, &ev);
    ev.text = "\n</tool_call>\n";
    ev.len = strlen(ev.text);
    return rc ? rc : chat_answer_on_event(a, &ev);
}

/* The answer's text blocks joined with "\n". */
static json_t *answer_text(const chat_answer *a)
{
    buf t;
    buf_init(&t, BUF_UNLIMITED); /* bounded by the answer's max_bytes */
    loco_status rc = LOCO_OK;
    bool any = false;
    for (size_t i = 0; i < a->n_blocks && !rc; i++) {
        if (a->blocks[i].type != CHAT_BLOCK_TEXT)
            continue;
        if (any)
            rc = buf_appendc(&t, '\n');
        if (!rc)
            rc = utf8_append_lossy(&t, a->blocks[i].text, a->blocks[i].len);
        any = true;
    }
    json_t *v = rc ? NULL : json_stringn(buf_str(&t), t.len);
    buf_release(&t);
    return v;
}

static json_t *answer_calls(const chat_answer *a)
{
    json_t *calls = json_array();
    for (size_t i = 0; calls && i < a->n_blocks; i++) {
        const chat_answer_block *b = &a->blocks[i];
        if (b->type != CHAT_BLOCK_TOOL_CALL)
            continue;
        json_t *c = json_pack("{s:s, s:s, s:{s:s, s:s%}}", "id", b->id ? b->id : "", "type",
                              "function", "function", "name", b->name ? b->name : "",
                              "arguments", b->text ? b->text : "", b->text ? b->len : 0);
        if (json_array_append_new(calls, c)) {
            json_decref(calls);
            return NULL;
        }
    }
    return calls;
}

/* The output to save: the raw text, or an OpenAI message when there are structured calls. */
static char *answer_output(const chat_answer *a)
{
    json_t *text = answer_text(a);
    json_t *v = text;
    if (text && chat_answer_tool_calls(a))
        v = json_pack("{s:s, s:o, s:o}", "role", "assistant", "content", text, "tool_calls",
                      answer_calls(a));
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return s;
}

/* The request sent for one sample: its conversation with the run's parameters. */
static chat_request *request_for(const runner *r, const eval_sample *smp, loco_err *err)
{
    chat_request *req = chat_request_clone(smp->req);
    if (!req) {
        loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (r->o->max_tokens > 0)
        req->max_tokens = r->o->max_tokens;
    if (r->o->has_temperature) {
        req->has_temperature = true;
        req->temperature = r->o->temperature;
    }
    req->stream = true;
    if (!r->o->render_qwen)
        return req;
    chat_request *rendered = NULL;
    loco_status rc = chat_qwen_render(req, NULL, &rendered, err);
    for (size_t t = 0; !rc && r->o->keep_tools && t < req->n_tools; t++) {
        const chat_tool *ct = &req->tools[t];
        if (!chat_request_add_tool(rendered, ct->name, ct->description, ct->schema_json))
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    if (!rc && r->o->keep_tools) {
        rendered->tool_choice = req->tool_choice;
        if (req->tool_choice_name)
            rendered->tool_choice_name = chat_strdup(rendered, req->tool_choice_name);
    }
    chat_request_free(req);
    if (rc)
        chat_request_free(rendered);
    return rc ? NULL : rendered;
}

/* Runs sample i; *out_output or *out_error gets a malloc'd string. Returns the call's status
 * (err, when not NULL, gets its message). */
static loco_status run_one(runner *r, size_t i, char **out_output, char **out_error,
                           loco_err *out_err)
{
    loco_err err;
    loco_err_clear(&err);
    chat_answer a;
    chat_answer_init(&a, EVAL_MAX_ANSWER_BYTES);
    chat_request *req = request_for(r, eval_set_sample(r->s, i), &err);
    backend_call call;
    memset(&call, 0, sizeof(call));
    call.cancel = r->o->cancel;
    call.model = r->o->model;
    call.on_bad_call = on_bad_call;
    call.bad_call_ctx = &a;
    backend_result res;
    memset(&res, 0, sizeof(res));
    loco_status rc = req ? backend_complete(r->b, req, &call, chat_answer_on_event, &a, &res, &err)
                         : err.code;
    if (!rc && a.failed)
        rc = loco_err_set(&err, LOCO_ERR_UPSTREAM, "the backend answered %s: %s",
                          a.error_type ? a.error_type : "an error",
                          a.error_message ? a.error_message : "");
    if (rc && !err.msg[0])
        loco_err_set(&err, rc, "%s", loco_status_str(rc));
    if (!rc)
        *out_output = answer_output(&a);
    if (rc || !*out_output)
        *out_error = strdup(rc ? err.msg : "out of memory");
    chat_answer_release(&a);
    chat_request_free(req);
    *out_err = err;
    return rc;
}

static void *worker(void *arg)
{
    runner *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool stop = r->next >= r->total ||
                    (r->o->cancel && __atomic_load_n(r->o->cancel, __ATOMIC_ACQUIRE)) ||
                    r->unreachable;
        size_t i = stop ? 0 : r->order[r->next++];
        pthread_mutex_unlock(&r->mu);
        if (stop)
            return NULL;
        char *output = NULL, *error = NULL;
        loco_err err;
        loco_status rc = run_one(r, i, &output, &error, &err);
        pthread_mutex_lock(&r->mu);
        if (rc == LOCO_ERR_UNAVAILABLE || r->unreachable) {
            /* a backend that cannot be reached fails every sample alike: one message */
            if (!r->unreachable && rc == LOCO_ERR_UNAVAILABLE)
                r->unreachable_err = err;
            r->unreachable = true;
            pthread_mutex_unlock(&r->mu);
            free(output);
            free(error);
            return NULL;
        }
        r->outputs[i] = output;
        r->errors[i] = error;
        r->done++;
        r->failed += !output;
        if (r->o->progress) {
            eval_progress p = {.done = r->done, .total = r->total, .failed = r->failed,
                               .id = eval_set_sample(r->s, i)->id,
                               .error = output ? NULL : error ? error : "out of memory"};
            r->o->progress(r->o->progress_ctx, &p);
        }
        pthread_mutex_unlock(&r->mu);
    }
}

/* Records what the workers produced, in sample order (samples never run: nothing). */
static loco_status record(runner *r, loco_err *err)
{
    for (size_t k = 0; k < r->next; k++) {
        size_t i = r->order[k];
        loco_err perr;
        loco_err_clear(&perr);
        loco_status rc = LOCO_OK;
        if (r->outputs[i])
            rc = eval_set_put_output(r->s, i, r->outputs[i], &perr);
        else
            rc = eval_set_put_failure(r->s, i, r->errors[i] ? r->errors[i] : "out of memory");
        if (rc == LOCO_ERR_NOMEM)
            return loco_err_set(err, rc, "out of memory recording predictions");
    }
    return LOCO_OK;
}

/* A sample's id and index, sorted by id then index (plain qsort: no context needed). */
typedef struct {
    const char *id;
    size_t index;
} id_index;

static int cmp_id_index(const void *a, const void *b)
{
    const id_index *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : x->index < y->index ? -1 : x->index > y->index;
}

/* r->order = the samples whose id no earlier sample has, in file order (a repeated id is
 * reported and ignored when scoring: running it would only cost time). */
static loco_status plan(runner *r, size_t n)
{
    id_index *by_id = calloc(n ? n : 1, sizeof(*by_id));
    bool *dup = calloc(n ? n : 1, sizeof(bool));
    r->order = calloc(n ? n : 1, sizeof(size_t));
    if (!by_id || !dup || !r->order) {
        free(by_id);
        free(dup);
        return LOCO_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        by_id[i] = (id_index){eval_set_sample(r->s, i)->id, i};
    qsort(by_id, n, sizeof(*by_id), cmp_id_index);
    for (size_t i = 1; i < n; i++)
        dup[by_id[i].index] = !strcmp(by_id[i].id, by_id[i - 1].id);
    for (size_t i = 0; i < n; i++) {
        if (!dup[i])
            r->order[r->total++] = i;
    }
    free(by_id);
    free(dup);
    return LOCO_OK;
}

loco_status eval_run_backend(eval_set *s, backend *b, const eval_run_opts *opts, loco_err *err)
{
    loco_err_clear(err);
    runner r;
    memset(&r, 0, sizeof(r));
    r.s = s;
    r.b = b;
    r.o = opts;
    size_t n = eval_set_n_samples(s);
    r.outputs = calloc(n ? n : 1, sizeof(char *));
    r.errors = calloc(n ? n : 1, sizeof(char *));
    if (!r.outputs || !r.errors || plan(&r, n)) {
        free(r.outputs);
        free(r.errors);
        free(r.order);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&r.mu, NULL);
    int jobs = opts->jobs < 1 ? 1 : opts->jobs > EVAL_MAX_JOBS ? EVAL_MAX_JOBS : opts->jobs;
    if ((size_t)jobs > r.total)
        jobs = r.total ? (int)r.total : 1;
    pthread_t threads[EVAL_MAX_JOBS];
    int started = 0;
    for (int i = 1; i < jobs; i++) {
        if (pthread_create(&threads[started], NULL, worker, &r))
            break; /* fewer threads: the rest is done by those running */
        started++;
    }
    worker(&r);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    loco_status rc = r.unreachable ? LOCO_ERR_UNAVAILABLE : record(&r, err);
    if (r.unreachable)
        *err = r.unreachable_err;
    for (size_t i = 0; i < n; i++) {
        free(r.outputs[i]);
        free(r.errors[i]);
    }
    free(r.outputs);
    free(r.errors);
    free(r.order);
    pthread_mutex_destroy(&r.mu);
    return rc;
}
