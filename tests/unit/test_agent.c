/* test_agent.c: the explorer loop (agent/agent.c) against a fake backend (a backend_ops table
 * defined here that answers from a script and records every request) and fake tools, plus the
 * real Task tool: tool calls in order, parallel read-only calls, turn limit, takeover, Task
 * depth limit, context cuts, cancel, answer file, transcript, prompt files. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/tools.h"
#include "backend/backend.h"
#include "base/buf.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "chat/chat.h"

/* ---- fake backend ---- */

#define MAX_CALLS 8
#define MAX_REQS 64

typedef struct {
    const char *text;
    const char *names[MAX_CALLS];
    const char *args[MAX_CALLS];
    loco_status fail; /* nonzero: the call fails with this */
} turn_script;

typedef struct fake fake;
/* Decides the answer to req; `first` is the text of its first user message. */
typedef void (*script_fn)(fake *f, const chat_request *req, const char *first, turn_script *out);

struct fake {
    backend base;
    script_fn script;
    pthread_mutex_t mu;
    int n_reqs;
    chat_request *reqs[MAX_REQS]; /* clones of what the loop sent */
    int counter;                  /* scripts' scratch */
    volatile int *cancel_on_call; /* set *cancel_on_call = 1 during call number cancel_at */
    int cancel_at;
};

static const char *first_user_text(const chat_request *req)
{
    for (size_t i = 0; i < req->n_msgs; i++) {
        const chat_message *m = &req->msgs[i];
        if (m->role == CHAT_ROLE_USER && m->n_blocks && m->blocks[0].type == CHAT_BLOCK_TEXT)
            return m->blocks[0].text;
    }
    return "";
}

static loco_status ev(chat_event_fn cb, void *ctx, chat_event e)
{
    return cb(ctx, &e);
}

static loco_status fake_complete(backend *b, const chat_request *req, const backend_call *call,
                                 chat_event_fn cb, void *ctx, backend_result *out, loco_err *err)
{
    (void)call;
    (void)out;
    fake *f = (fake *)b;
    pthread_mutex_lock(&f->mu);
    int n = f->n_reqs;
    if (f->n_reqs < MAX_REQS)
        f->reqs[f->n_reqs++] = chat_request_clone(req);
    turn_script s;
    memset(&s, 0, sizeof(s));
    f->script(f, req, first_user_text(req), &s);
    if (f->cancel_on_call && n == f->cancel_at)
        *f->cancel_on_call = 1;
    pthread_mutex_unlock(&f->mu);
    if (s.fail)
        return loco_err_set(err, s.fail, "fake backend failure %d", (int)s.fail);
    loco_status rc = ev(cb, ctx, (chat_event){.type = CHAT_EV_MESSAGE_START, .id = "msg_1"});
    if (!rc && s.text)
        rc = ev(cb, ctx, (chat_event){.type = CHAT_EV_TEXT_DELTA, .text = s.text,
                                      .len = strlen(s.text)});
    for (int i = 0; !rc && i < MAX_CALLS && s.names[i]; i++) {
        char id[32];
        snprintf(id, sizeof(id), "call_%d_%d", n, i);
        rc = ev(cb, ctx, (chat_event){.type = CHAT_EV_TOOL_CALL_START, .index = i, .id = id,
                                      .name = s.names[i]});
        if (!rc)
            rc = ev(cb, ctx, (chat_event){.type = CHAT_EV_TOOL_ARGS_DELTA, .index = i,
                                          .text = s.args[i], .len = strlen(s.args[i])});
        if (!rc)
            rc = ev(cb, ctx, (chat_event){.type = CHAT_EV_TOOL_CALL_END, .index = i});
    }
    if (!rc)
        rc = ev(cb, ctx, (chat_event){.type = CHAT_EV_MESSAGE_END,
                                      .stop = s.names[0] ? CHAT_STOP_TOOL_USE : CHAT_STOP_END_TURN});
    return rc;
}

static void fake_free(backend *b)
{
    (void)b;
}

static loco_status fake_health(backend *b, loco_err *err)
{
    (void)b;
    (void)err;
    return LOCO_OK;
}

static const backend_ops fake_ops = {"fake", fake_complete, fake_health, NULL, fake_free};

static void fake_init(fake *f, script_fn script)
{
    memset(f, 0, sizeof(*f));
    f->base.ops = &fake_ops;
    f->base.url = (char *)"fake://";
    f->script = script;
    pthread_mutex_init(&f->mu, NULL);
}

static void fake_release(fake *f)
{
    for (int i = 0; i < f->n_reqs; i++)
        chat_request_free(f->reqs[i]);
    pthread_mutex_destroy(&f->mu);
}

static const chat_message *last_msg(const chat_request *req)
{
    return &req->msgs[req->n_msgs - 1];
}

/* ---- fake tools ---- */

static loco_status echo_run(const agent_tool_ctx *ctx, const json_t *args, buf *out, bool *is_error)
{
    (void)ctx;
    const char *s = json_get_str(args, "text");
    *is_error = !s;
    return buf_appendf(out, s ? "echo:%s" : "Echo: text is required", s ? s : "");
}

/* Overlap accounting for the parallel test (no timing): Sleep calls wait (up to 30 s) until
 * four of them run at once, so run one at a time they would never see four; SeqSleep notes
 * whether any other call ran beside it. */
static atomic_int g_running, g_max_running, g_seq_overlap;

static void running_enter(void)
{
    int now = atomic_fetch_add(&g_running, 1) + 1;
    int max = atomic_load(&g_max_running);
    while (now > max && !atomic_compare_exchange_weak(&g_max_running, &max, now))
        ;
}

static loco_status sleep_run(const agent_tool_ctx *ctx, const json_t *args, buf *out, bool *is_error)
{
    (void)ctx;
    (void)args;
    running_enter();
    for (int i = 0; i < 3000 && atomic_load(&g_max_running) < 4; i++)
        usleep(10 * 1000);
    atomic_fetch_sub(&g_running, 1);
    *is_error = false;
    return buf_appends(out, "slept");
}

static loco_status seqsleep_run(const agent_tool_ctx *ctx, const json_t *args, buf *out,
                                bool *is_error)
{
    (void)ctx;
    (void)args;
    if (atomic_load(&g_running))
        atomic_store(&g_seq_overlap, 1);
    running_enter();
    usleep(50 * 1000);
    if (atomic_load(&g_running) != 1)
        atomic_store(&g_seq_overlap, 1);
    atomic_fetch_sub(&g_running, 1);
    *is_error = false;
    return buf_appends(out, "slept");
}

static loco_status big_run(const agent_tool_ctx *ctx, const json_t *args, buf *out, bool *is_error)
{
    (void)ctx;
    long n = 0;
    json_get_long(args, "bytes", &n);
    *is_error = false;
    for (long i = 0; i < n; i++) {
        loco_status rc = buf_appendc(out, (char)('a' + i % 26));
        if (rc)
            return rc;
    }
    return LOCO_OK;
}

static loco_status cancel_run(const agent_tool_ctx *ctx, const json_t *args, buf *out, bool *is_error)
{
    (void)args;
    (void)out;
    (void)is_error;
    *(volatile int *)ctx->cancel = 1;
    return LOCO_ERR_CANCELLED;
}

/* Write: writes content to file_path through the sandbox. */
static loco_status write_run(const agent_tool_ctx *ctx, const json_t *args, buf *out, bool *is_error)
{
    const char *p = json_get_str(args, "file_path"), *c = json_get_str(args, "content");
    char *path = NULL;
    loco_err e;
    if (!p || !c || agent_sandbox_resolve(ctx->sb, p, SANDBOX_WRITE, &path, &e)) {
        *is_error = true;
        return buf_appends(out, "Write refused");
    }
    loco_status rc = file_write_atomic(path, c, strlen(c), 0644, &e);
    free(path);
    *is_error = rc != LOCO_OK;
    return buf_appends(out, rc ? "Write failed" : "File written");
}

static const agent_tool tool_echo = {"Echo", "echoes", "{\"type\":\"object\"}", true, echo_run};
static const agent_tool tool_sleep = {"Sleep", "sleeps", "{\"type\":\"object\"}", true, sleep_run};
static const agent_tool tool_seqsleep = {"SeqSleep", "sleeps", "{\"type\":\"object\"}", false,
                                         seqsleep_run};
static const agent_tool tool_big = {"Big", "big output", "{\"type\":\"object\"}", true, big_run};
static const agent_tool tool_cancel = {"Cancel", "cancels", "{\"type\":\"object\"}", true,
                                       cancel_run};
static const agent_tool tool_write = {"Write", "writes", "{\"type\":\"object\"}", false, write_run};

static const agent_tool *const test_tools[] = {&tool_echo,   &tool_sleep,  &tool_seqsleep,
                                               &tool_big,    &tool_cancel, &tool_write,
                                               &agent_tool_task};

/* ---- fixture ---- */

typedef struct {
    char root[256];
    char repo[300];
    char out[300];
    char answer[340];
    char transcript[340];
    fake f;
    agent_config cfg;
    buf events; /* one line per tool call or note */
    buf turns;  /* one line per model turn event */
} fixture;

static void on_event(void *ctx, const agent_event *e)
{
    fixture *fx = ctx;
    if (e->type == AGENT_EV_TOOL)
        buf_appendf(&fx->events, "%d:%d %s %s %s\n", e->depth, e->turn, e->tool, e->summary,
                    e->is_error ? "error" : "ok");
    else if (e->type == AGENT_EV_NOTE)
        buf_appendf(&fx->events, "%d:%d note %s\n", e->depth, e->turn, e->text);
    else if (e->type == AGENT_EV_TURN_START)
        buf_appendf(&fx->turns, "%d:%d start\n", e->depth, e->turn);
    else
        buf_appendf(&fx->turns, "%d:%d end %zu calls%s\n", e->depth, e->turn, e->calls,
                    e->is_error ? " failed" : "");
}

static void fixture_init(fixture *fx, script_fn script)
{
    memset(fx, 0, sizeof(*fx));
    snprintf(fx->root, sizeof(fx->root), "/tmp/loco-test-agent-XXXXXX");
    assert_non_null(mkdtemp(fx->root));
    snprintf(fx->repo, sizeof(fx->repo), "%s/repo", fx->root);
    snprintf(fx->out, sizeof(fx->out), "%s/out", fx->root);
    snprintf(fx->answer, sizeof(fx->answer), "%s/q001.md", fx->out);
    snprintf(fx->transcript, sizeof(fx->transcript), "%s/q001.jsonl", fx->out);
    assert_int_equal(mkdir(fx->repo, 0755), 0);
    assert_int_equal(mkdir(fx->out, 0755), 0);
    fake_init(&fx->f, script);
    buf_init(&fx->events, BUF_UNLIMITED);
    buf_init(&fx->turns, BUF_UNLIMITED);
    agent_config_init(&fx->cfg);
    fx->cfg.backend = &fx->f.base;
    fx->cfg.system_prompt = "TRAINING PROMPT";
    fx->cfg.repo_root = fx->repo;
    fx->cfg.out_dir = fx->out;
    fx->cfg.answer_file = fx->answer;
    fx->cfg.tools = test_tools;
    fx->cfg.n_tools = LOCO_ARRAY_LEN(test_tools);
    fx->cfg.os_name = "TestOS 1.0";
    fx->cfg.date = "2026-01-02";
    fx->cfg.on_event = on_event;
    fx->cfg.event_ctx = fx;
}

static void fixture_release(fixture *fx)
{
    fake_release(&fx->f);
    buf_release(&fx->events);
    buf_release(&fx->turns);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->root);
    assert_int_equal(system(cmd), 0);
}

static char *slurp(const char *path)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    loco_err e;
    if (file_read_all(path, &b, &e)) {
        buf_release(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

/* ---- scripts ---- */

static void script_two_echoes(fake *f, const chat_request *req, const char *first, turn_script *s)
{
    (void)f;
    (void)first;
    size_t turns = chat_request_assistant_turns(req);
    if (turns == 0) {
        s->text = "I will look.";
        s->names[0] = "Echo";
        s->args[0] = "{\"text\": \"a\"}";
        s->names[1] = "Echo";
        s->args[1] = "{\"text\": \"b\"}";
    } else {
        s->text = "  The answer is 42.\n";
    }
}

static void test_tool_calls_and_answer(void **state)
{
    (void)state;
    fixture fx;
    fixture_init(&fx, script_two_echoes);
    fx.cfg.transcript_path = fx.transcript;
    agent_result r;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(agent_run(&fx.cfg, "What is it?", &r, &err), LOCO_OK);
    assert_string_equal(r.answer, "The answer is 42.");
    assert_int_equal(r.turns, 2);
    assert_int_equal(r.tool_calls, 2);
    assert_int_equal(r.tool_errors, 0);
    assert_false(r.model_wrote_answer);
    assert_true(r.answer_file_written);
    assert_false(r.hit_turn_limit);
    char *file = slurp(fx.answer);
    assert_string_equal(file, "The answer is 42.\n");
    free(file);

    assert_int_equal(fx.f.n_reqs, 2);
    const chat_request *q0 = fx.f.reqs[0];
    char expect_sys[2048];
    snprintf(expect_sys, sizeof(expect_sys),
             "TRAINING PROMPT\n\n"
             "You are a read-only codebase search specialist.\n\n"
             "CRITICAL CONSTRAINTS:\n"
             "1. STRICTLY READ-ONLY: Use tools ONLY for reading. No modifications. "
             "The only file you may write is the answer file the task names.\n"
             "2. EFFICIENCY: Spawn parallel tool calls for faster analysis.\n"
             "3. OUTPUT RULES: Use absolute paths. NO EMOJIS. No colons before tool "
             "calls.\n\n"
             "ENV: Working directory is %s (TestOS 1.0, bash). Today is 2026-01-02.",
             fx.repo);
    assert_string_equal(q0->system, expect_sys);
    assert_non_null(strstr(q0->system, "ENV: Working directory is "));
    assert_non_null(strstr(q0->system, "/repo (TestOS 1.0, bash). Today is 2026-01-02."));
    assert_true(str_starts_with(q0->system, "TRAINING PROMPT\n\nYou are a read-only"));
    assert_int_equal(q0->n_tools, LOCO_ARRAY_LEN(test_tools));
    assert_string_equal(q0->tools[0].name, "Echo");
    assert_true(q0->has_temperature);
    assert_true(q0->temperature > 0.69 && q0->temperature < 0.71);
    assert_int_equal(q0->max_tokens, AGENT_DEFAULT_MAX_TOKENS);
    assert_int_equal(q0->n_msgs, 1);
    assert_string_equal(q0->msgs[0].blocks[0].text, "What is it?");

    const chat_request *q1 = fx.f.reqs[1];
    assert_int_equal(q1->n_msgs, 3);
    const chat_message *am = &q1->msgs[1];
    assert_int_equal(am->role, CHAT_ROLE_ASSISTANT);
    assert_int_equal(am->n_blocks, 3);
    assert_string_equal(am->blocks[0].text, "I will look.");
    assert_string_equal(am->blocks[1].name, "Echo");
    assert_string_equal(am->blocks[1].id, "call_0_0");
    const chat_message *um = last_msg(q1);
    assert_int_equal(um->role, CHAT_ROLE_USER);
    assert_int_equal(um->n_blocks, 2);
    assert_int_equal(um->blocks[0].type, CHAT_BLOCK_TOOL_RESULT);
    assert_string_equal(um->blocks[0].id, "call_0_0");
    assert_string_equal(um->blocks[0].text, "echo:a");
    assert_string_equal(um->blocks[1].id, "call_0_1");
    assert_string_equal(um->blocks[1].text, "echo:b");
    assert_false(um->blocks[1].is_error);

    /* read-only calls run in parallel: their lines come in completion order */
    const char *ev = buf_str(&fx.events);
    assert_true(!strcmp(ev, "0:1 Echo a ok\n0:1 Echo b ok\n") ||
                !strcmp(ev, "0:1 Echo b ok\n0:1 Echo a ok\n"));
    /* each model turn is announced and then reported with its tool calls (for loco ask's
     * display) */
    assert_string_equal(buf_str(&fx.turns), "0:1 start\n0:1 end 2 calls\n0:2 start\n"
                                            "0:2 end 0 calls\n");

    /* transcript: every line JSON; meta, system, 4 messages, 2 tools, end */
    char *t = slurp(fx.transcript);
    assert_non_null(t);
    int counts[6] = {0};
    const char *types[6] = {"meta", "system", "message", "tool", "end", "other"};
    for (char *line = t, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        json_t *o = json_parse(line, (size_t)(nl - line), NULL);
        assert_non_null(o);
        const char *ty = json_get_str(o, "type");
        int k = 5;
        for (int i = 0; i < 5; i++)
            if (!strcmp(ty, types[i]))
                k = i;
        counts[k]++;
        if (k == 3) {
            double ms = -1;
            assert_true(json_get_double(o, "duration_ms", &ms) && ms >= 0);
        }
        json_decref(o);
    }
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 1);
    assert_int_equal(counts[2], 4); /* task, assistant, results, answer */
    assert_int_equal(counts[3], 2);
    assert_int_equal(counts[4], 1);
    assert_int_equal(counts[5], 0);
    free(t);
    agent_result_release(&r);
    fixture_release(&fx);
}

static void script_bad_calls(fake *f, const chat_request *req, const char *first, turn_script *s)
{
    (void)f;
    (void)first;
    if (chat_request_assistant_turns(req) == 0) {
        s->names[0] = "Nope";
        s->args[0] = "{}";
        s->names[1] = "Echo";
        s->args[1] = "[1, 2]";
        s->names[2] = "Echo";
        s->args[2] = "{\"text\": 5}";
    } else {
        s->text = "done";
    }
}

static void test_bad_calls_become_error_results(void **state)
{
    (void)state;
    fixture fx;
    fixture_init(&fx, script_bad_calls);
    agent_result r;
    loco_err err;
    assert_int_equal(agent_run(&fx.cfg, "q", &r, &err), LOCO_OK);
    assert_int_equal(r.tool_errors, 3);
    const chat_message *um = last_msg(fx.f.reqs[1]);
    assert_int_equal(um->n_blocks, 3);
    assert_true(um->blocks[0].is_error);
    assert_string_equal(um->blocks[0].text,
                        "Error: no tool named 'Nope'. The tools are: Echo, Sleep, SeqSleep, Big, "
                        "Cancel, Write, Task");
    assert_true(um->blocks[1].is_error);
    assert_string_equal(um->blocks[1].text, "Error: the arguments of Echo are not a JSON object");
    assert_true(um->blocks[2].is_error);
    assert_string_equal(um->blocks[2].text, "Echo: text is required");
    agent_result_release(&r);
    fixture_release(&fx);
}

static void script_always_tools(fake *f, const chat_request *req, const char *first, turn_script *s)
{
    (void)f;
    (void)first;
    if (req->tool_choice == CHAT_TOOL_CHOICE_NONE) {
        s->text = "final without tools";
        s->names[0] = "Echo"; /* ignored in the last turn */
        s->args[0] = "{\"text\": \"x\"}";
        return;
    }
    s->names[0] = "Echo";
    s->args[0] = "{\"text\": \"again\"}";
}

static void test_turn_limit_last_turn(void **state)
{
    (void)state;
    fixture fx;
    fixture_init(&fx, script_always_tools);
    fx.cfg.max_turns = 2;
    agent_result r;
    loco_err err;
    assert_int_equal(agent_run(&fx.cfg, "q", &r, &err), LOCO_OK);
    assert_string_equal(r.answer, "final without tools");
    assert_true(r.hit_turn_limit);
    assert_false(r.took_over);
    assert_int_equal(r.turns, 3);
    assert_int_equal(r.tool_calls, 2);
    assert_int_equal(fx.f.n_reqs, 3);
    const chat_message *m = last_msg(fx.f.reqs[2]);
    assert_int_equal(m->role, CHAT_ROLE_USER);
    assert_string_equal(m->blocks[0].text,
                        "You have used all 2 turns. Do not call any more tools. Give your final "
                        "answer now, from what you have found so far.");
    assert_int_equal(fx.f.reqs[2]->tool_choice, CHAT_TOOL_CHOICE_NONE);
    assert_non_null(strstr(buf_str(&fx.events), "0:2 note turn limit (2) reached"));
    assert_non_null(strstr(buf_str(&fx.events), "0:3 note ignored 1 tool call(s) in the last turn"));
    agent_result_release(&r);
    fixture_release(&fx);
}

typedef struct {
    fake *f;
    int calls;
} takeover_state;

static loco_status do_takeover(void *ctx, loco_err *err)
{
    (void)err;
    takeover_state *t = ctx;
    t->calls++;
    t->f->counter = 1; /* "the cloud": answers */
    return LOCO_OK;
}

static void script_local_loops(fake *f, const chat_request *req, const char *first, turn_script *s)
{
    (void)req;
    (void)first;
    if (f->counter) {
        s->text = "cloud answer";
        return;
    }
    s->names[0] = "Echo";
    s->args[0] = "{\"text\": \"local\"}";
}

static void test_takeover_at_turn_limit(void **state)
{
    (void)state;
    fixture fx;
    fixture_init(&fx, script_local_loops);
    fx.cfg.max_turns = 2;
    takeover_state t = {&fx.f, 0};
    fx.cfg.takeover = do_takeover;
    fx.cfg.takeover_ctx = &t;
    agent_result r;
    loco_err err;
    assert_int_equal(agent_run(&fx.cfg, "q", &r, &err), LOCO_OK);
    assert_int_equal(t.calls, 1);
    assert_true(r.took_over);
    assert_false(r.hit_turn_limit);
    assert_string_equal(r.answer, "cloud answer");
    assert_int_equal(r.turns, 3);
    /* the cloud sees the whole conversation, with tools still on */
    assert_int_equal(fx.f.reqs[2]->n_msgs, 5);
    assert_int_equal(fx.f.reqs[2]->tool_choice, CHAT_TOOL_CHOICE_AUTO);
    assert_non_null(strstr(buf_str(&fx.events), "turn limit: the cloud model takes over"));
    agent_result_release(&r);
    fixture_release(&fx);
}

static void script_overflow(fake *f, const chat_request *req, const char *first, turn_script *s)
{
    (void)req;
    (void)first;
    if (f->counter)
        s->text = "cloud answer";
    else
        s->fail = LOCO_ERR_OVERFLOW;
}

static void test_takeover_on_overflow(void **state)
{
    (void)state;
    fixture fx;
    fixture_init(&fx, script_overflow);
    takeover_state t = {&fx.f, 0};
    agent_result r;
    loco_err err;
    /* without a takeover, the overflow is the run's error */
    assert_int_equal(agent_run(&fx.cfg, "q", &r, &err), LOCO_ERR_OVERFLOW);
    assert_false(file_exists(fx.answer));
    agent_result_release(&r);
    fx.cfg.takeover = do_takeover;
    fx.cfg.takeover_ctx = &t;
    assert_int_equal(agent_run(&fx.cfg, "q", &r, &err), LOCO_OK);
    assert_string_equal(r.answer, "cloud answer");
    assert_true(r.took_over);
    agent_result_release(&r);
    fixture_release(&fx);
}

/* L0 -> Task(L1) -> Task(L2) -> Task(L3) refused (depth limit); answers bubble up. */
static void script_tasks(fake *f, const chat_request *req, const char *first, turn_script *s)
{
    (void)f;
    size_t turns = chat_request_assistant_turns(req);
    int level = first[1] - '0';
    if (turns == 0) {
        static const char *const args[] = {
            "{\"description\": \"level one\", \"prompt\": \"L1\"}",
            "{\"description\": \"level two\", \"prompt\": \"L2\"}",
            "{\"description\": \"level three\", \"prompt\": \"L3\"}",
        };
        s->names[0] = "Task";
        s->args[0] = args[level];
        return;
    }
    const chat_block *res = &last_msg(req)->blocks[0];
    static char text[3][600];
    snprintf(text[level], sizeof(text[level]), "L%d saw [%s%s]", level,
             res->is_error ? "error: " : "", res->text);
    s->text = text[level];
}

static void test_task_depth(void **state)
{
    (void)state;
    fixture fx;
    fixture_init(&fx, script_tasks);
    agent_result r;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(agent_run(&fx.cfg, "L0", &r, &err), LOCO_OK);
    assert_string_equal(
        r.answer,
        "L0 saw [L1 saw [L2 saw [error: Task: sub-agents cannot start more sub-agents at this "
        "depth (the limit is 2 levels); do the work with Read, Grep, Glob and Bash]]]");
    assert_int_equal(r.turns, 2);
    assert_int_equal(r.tool_calls, 3);
    assert_int_equal(r.tool_errors, 1);
    assert_string_equal(buf_str(&fx.events),
                        "0:1 note Task: level one (sub-agent, depth 1)\n"
                        "1:1 note Task: level two (sub-agent, depth 2)\n"
                        "2:1 Task level three error\n"
                        "1:1 Task level two ok\n"
                        "0:1 Task level one ok\n");
    agent_result_release(&r);
    fixture_release(&fx);
}

static void script_parallel(fake *f, const chat_request *req, const char *first, turn_script *s)
{
    (void)f;
    (void)first;
    if (chat_request_assistant_turns(req) == 0) {
        for (int i = 0; i < 4; i++) {
            s->names[i] = "Sleep";
            s->args[i] = "{}";
        }
        s->names[4] = "SeqSleep";
        s->args[4] = "{}";
        s->names[5] = "SeqSleep";
        s->args[5] = "{}";
    } else {
        s->text = "ok";
    }
}

static void test_read_only_calls_run_in_parallel(void **state)
{
    (void)state;
    fixture fx;
    fixture_init(&fx, script_parallel);
    agent_result r;
    loco_err err;
    atomic_store(&g_running, 0);
    atomic_store(&g_max_running, 0);
    atomic_store(&g_seq_overlap, 0);
    assert_int_equal(agent_run(&fx.cfg, "q", &r, &err), LOCO_OK);
    /* the 4 read-only Sleeps ran at once; each SeqSleep (not read-only) ran alone */
    assert_int_equal(atomic_load(&g_max_running), 4);
    assert_int_equal(atomic_load(&g_seq_overlap), 0);
    assert_int_equal(r.tool_calls, 6);
    const chat_message *um = last_msg(fx.f.reqs[1]);
    assert_int_equal(um->n_blocks, 6);
    for (size_t i = 0; i < 6; i++) {
        char id[32];
        snprintf(id, sizeof(id), "call_0_%zu", i);
        assert_string_equal(um->blocks[i].id, id);
        assert_string_equal(um->blocks[i].text, "slept");
    }
    agent_result_release(&r);
    fixture_release(&fx);
}

static void script_big(fake *f, const chat_request *req, const char *first, turn_script *s)
{
    (void)f;
    (void)first;
    if (chat_request_assistant_turns(req) == 0) {
        s->names[0] = "Big";
        s->args[0] = "{\"bytes\": 20000}";
        s->names[1] = "Big";
        s->args[1] = "{\"bytes\": 100}";
        s->names[2] = "Big";
        s->args[2] = "{\"bytes\": 12000}";
    } else {
        s->text = "ok";
    }
}

static void test_results_cut_to_context(void **state)
{
    (void)state;
    fixture fx;
    fixture_init(&fx, script_big);
    fx.cfg.context_tokens = 8000;
    fx.cfg.max_tokens = 1000;
    agent_result r;
    loco_err err;
    assert_int_equal(agent_run(&fx.cfg, "q", &r, &err), LOCO_OK);
    const chat_message *um = last_msg(fx.f.reqs[1]);
    assert_int_equal(um->n_blocks, 3);
    size_t l0 = strlen(um->blocks[0].text), l1 = strlen(um->blocks[1].text),
           l2 = strlen(um->blocks[2].text);
    assert_int_equal(l1, 100); /* the small one is untouched */
    assert_true(l0 < 20000 && l2 < 12000);
    /* both big ones cut to the same level (their notes differ only in digits); the whole
     * fits the budget */
    assert_true(l0 + 4 >= l2 && l2 + 4 >= l0);
    size_t used = strlen(fx.f.reqs[1]->system) + 200;
    assert_true(l0 + l1 + l2 + used <= (size_t)(8000 - 1000) * AGENT_BYTES_PER_TOKEN);
    assert_true(str_starts_with(um->blocks[0].text, "abcdefghijklmnopqrstuvwxyz"));
    const char *cut = strstr(um->blocks[0].text,
                             "\n\n[loco cut this result to fit the model's context of 8000 "
                             "tokens: ");
    assert_non_null(cut);
    assert_non_null(strstr(cut, " of 20000 bytes dropped."));
    assert_non_null(strstr(um->blocks[2].text, " of 12000 bytes dropped."));
    agent_result_release(&r);
    fixture_release(&fx);
}

static void script_cancel(fake *f, const chat_request *req, const char *first, turn_script *s)
{
    (void)f;
    (void)req;
    (void)first;
    s->names[0] = "Cancel";
    s->args[0] = "{}";
    s->text = "never the answer";
}

static void test_cancel_leaves_no_answer(void **state)
{
    (void)state;
    fixture fx;
    fixture_init(&fx, script_cancel);
    volatile int cancel = 0;
    fx.cfg.cancel = &cancel;
    agent_result r;
    loco_err err;
    assert_int_equal(agent_run(&fx.cfg, "q", &r, &err), LOCO_ERR_CANCELLED);
    assert_false(file_exists(fx.answer));
    agent_result_release(&r);
    /* cancelled while the model answers: no tool runs, no answer file */
    cancel = 0;
    fx.f.script = script_two_echoes;
    fx.f.cancel_on_call = (volatile int *)&cancel;
    fx.f.cancel_at = 1; /* the second request */
    assert_int_equal(agent_run(&fx.cfg, "q", &r, &err), LOCO_ERR_CANCELLED);
    assert_false(file_exists(fx.answer));
    agent_result_release(&r);
    fixture_release(&fx);
}

static char g_write_args[512];

static void script_writes(fake *f, const chat_request *req, const char *first, turn_script *s)
{
    (void)f;
    (void)first;
    if (chat_request_assistant_turns(req) == 0) {
        s->names[0] = "Write";
        s->args[0] = g_write_args;
    } else {
        s->text = "I saved the answer.";
    }
}

static void test_model_writes_answer(void **state)
{
    (void)state;
    fixture fx;
    fixture_init(&fx, script_writes);
    snprintf(g_write_args, sizeof(g_write_args),
             "{\"file_path\": \"%s\", \"content\": \"# Answer\\nfrom the model\\n\"}", fx.answer);
    agent_result r;
    loco_err err;
    assert_int_equal(agent_run(&fx.cfg, "q", &r, &err), LOCO_OK);
    assert_true(r.model_wrote_answer);
    assert_true(r.answer_file_written);
    assert_string_equal(r.answer, "I saved the answer.");
    char *file = slurp(fx.answer);
    assert_string_equal(file, "# Answer\nfrom the model\n");
    free(file);
    agent_result_release(&r);
    fixture_release(&fx);
}

static void script_fail(fake *f, const chat_request *req, const char *first, turn_script *s)
{
    (void)f;
    (void)req;
    (void)first;
    s->fail = LOCO_ERR_UPSTREAM;
}

static void script_empty(fake *f, const chat_request *req, const char *first, turn_script *s)
{
    (void)f;
    (void)req;
    (void)first;
    s->text = "  \n";
}

static void test_errors(void **state)
{
    (void)state;
    fixture fx;
    fixture_init(&fx, script_fail);
    agent_result r;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(agent_run(&fx.cfg, "q", &r, &err), LOCO_ERR_UPSTREAM);
    assert_string_equal(err.msg, "fake backend failure 6");
    assert_false(file_exists(fx.answer));
    agent_result_release(&r);
    fx.f.script = script_empty;
    assert_int_equal(agent_run(&fx.cfg, "q", &r, &err), LOCO_ERR_INVALID);
    assert_string_equal(err.msg, "the model ended without an answer");
    assert_false(file_exists(fx.answer));
    agent_result_release(&r);
    fx.cfg.repo_root = "/nonexistent/repo";
    assert_int_not_equal(agent_run(&fx.cfg, "q", &r, &err), LOCO_OK);
    agent_result_release(&r);
    fixture_release(&fx);
}

static void test_format(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    const char *keys[] = {"a", "bb"};
    const char *values[] = {"{bb}", "X"};
    assert_int_equal(agent_format("{a}-{bb}-{c}-{-}{", keys, values, 2, &b), LOCO_OK);
    assert_string_equal(buf_str(&b), "{bb}-X-{c}-{-}{");
    buf_reset(&b);
    assert_int_equal(agent_task_prompt(NULL, "tqdm", "How?", "/o/tqdm/q001.md", "/r/tqdm", &b),
                     LOCO_OK);
    assert_string_equal(buf_str(&b), "Analyze the tqdm codebase at /r/tqdm to answer: How? Save "
                                     "your answer to /o/tqdm/q001.md");
    buf_release(&b);

    char sum[40];
    agent_summarize_call("Read", "{\"file_path\": \"/r/src/a.c\"}", "/r", sum, sizeof(sum));
    assert_string_equal(sum, "src/a.c");
    agent_summarize_call("Grep", "{\"pattern\": \"foo\", \"path\": \"/r/src\"}", "/r", sum,
                         sizeof(sum));
    assert_string_equal(sum, "foo in src");
    agent_summarize_call("Glob", "{\"pattern\": \"*.c\", \"path\": \"/r\"}", "/r", sum,
                         sizeof(sum));
    assert_string_equal(sum, "*.c");
    agent_summarize_call("Bash", "{\"command\": \"ls\\n-la\"}", "/r", sum, sizeof(sum));
    assert_string_equal(sum, "ls -la");
    agent_summarize_call("Bash",
                         "{\"command\": \"echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                         "/r", sum, sizeof(sum));
    assert_int_equal(strlen(sum), 39);
    assert_true(str_ends_with(sum, "..."));
}

/* The compiled-in prompts equal the files in prompts/. */
static void test_prompt_files(void **state)
{
    (void)state;
    const char *src = getenv("LOCO_SOURCE_DIR");
    if (!src)
        skip();
    char path[4096];
    snprintf(path, sizeof(path), "%s/prompts/analyze_query.txt", src);
    char *t = slurp(path);
    assert_non_null(t);
    assert_string_equal(t, agent_default_task_template);
    free(t);
    snprintf(path, sizeof(path), "%s/prompts/explorer_rules.txt", src);
    t = slurp(path);
    assert_non_null(t);
    assert_string_equal(t, agent_default_rules);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tool_calls_and_answer),
        cmocka_unit_test(test_bad_calls_become_error_results),
        cmocka_unit_test(test_turn_limit_last_turn),
        cmocka_unit_test(test_takeover_at_turn_limit),
        cmocka_unit_test(test_takeover_on_overflow),
        cmocka_unit_test(test_task_depth),
        cmocka_unit_test(test_read_only_calls_run_in_parallel),
        cmocka_unit_test(test_results_cut_to_context),
        cmocka_unit_test(test_cancel_leaves_no_answer),
        cmocka_unit_test(test_model_writes_answer),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_prompt_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
