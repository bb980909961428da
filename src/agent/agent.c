/* agent.c: the explorer loop (agent.h): model turn -> tool calls (read-only ones in parallel
 * threads, the others one by one in order) -> tool results cut to the context budget -> next
 * turn, until an answer or the turn budget; Task sub-agents run the same loop one level down.
 * Part of agent/; cli/cmd_ask.c and cli/cmd_analyze.c drive it. */
#include "base/common.h"

#include <pthread.h>
#include <sys/utsname.h>

#include "agent/agent.h"
#include "agent/sandbox.h"
#include "agent/tools.h"
#include "agent/tools_int.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "base/utf8.h"
#include "chat/chat.h"

/* Keep equal to prompts/analyze_query.txt and prompts/explorer_rules.txt (test_agent checks). */
const char agent_default_task_template[] =
    "Analyze the {project} codebase at {repo} to answer: {question} Save your answer to "
    "{output_file}\n";
const char agent_default_rules[] =
    "You are a read-only codebase search specialist.\n"
    "\n"
    "CRITICAL CONSTRAINTS:\n"
    "1. STRICTLY READ-ONLY: Use tools ONLY for reading. No modifications. The only file you "
    "may write is the answer file the task names.\n"
    "2. EFFICIENCY: Spawn parallel tool calls for faster analysis.\n"
    "3. OUTPUT RULES: Use absolute paths. NO EMOJIS. No colons before tool calls.\n"
    "\n"
    "ENV: Working directory is {repo_root} ({os}, bash). Today is {date}.\n";

#define AGENT_RESULT_BUF_MAX (4 * AGENT_TOOL_OUTPUT_MAX + 4096) /* a tool's raw result */
#define AGENT_SUMMARY_MAX 120

void agent_config_init(agent_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_turns = AGENT_DEFAULT_MAX_TURNS;
    cfg->sub_max_turns = AGENT_DEFAULT_MAX_TURNS;
    cfg->temperature = AGENT_DEFAULT_TEMPERATURE;
    cfg->context_tokens = AGENT_DEFAULT_CONTEXT;
    cfg->max_tokens = AGENT_DEFAULT_MAX_TOKENS;
    cfg->threads = 4;
}

void agent_result_release(agent_result *r)
{
    if (!r)
        return;
    free(r->answer);
    memset(r, 0, sizeof(*r));
}

/* ---- templates ---- */

loco_status agent_format(const char *tpl, const char *const *keys, const char *const *values,
                         size_t n, buf *out)
{
    const char *p = tpl;
    while (*p) {
        const char *open = strchr(p, '{');
        if (!open)
            return buf_appends(out, p);
        loco_status rc = buf_append(out, p, (size_t)(open - p));
        if (rc)
            return rc;
        const char *close = strchr(open + 1, '}');
        size_t k = n;
        if (close) {
            size_t klen = (size_t)(close - open - 1);
            for (k = 0; k < n; k++) {
                if (strlen(keys[k]) == klen && !memcmp(keys[k], open + 1, klen))
                    break;
            }
        }
        if (k < n) {
            rc = buf_appends(out, values[k] ? values[k] : "");
            p = close + 1;
        } else {
            rc = buf_appendc(out, '{');
            p = open + 1;
        }
        if (rc)
            return rc;
    }
    return LOCO_OK;
}

static void trim_end(buf *b, size_t from)
{
    while (b->len > from && strchr(" \t\r\n", b->data[b->len - 1]))
        b->data[--b->len] = '\0';
}

loco_status agent_task_prompt(const char *tpl, const char *project, const char *question,
                              const char *output_file, const char *repo, buf *out)
{
    const char *keys[] = {"project", "question", "output_file", "repo"};
    const char *values[] = {project, question, output_file, repo};
    size_t start = out->len;
    loco_status rc = agent_format(tpl ? tpl : agent_default_task_template, keys, values,
                                  LOCO_ARRAY_LEN(keys), out);
    if (rc == LOCO_OK)
        trim_end(out, start);
    return rc;
}

loco_status agent_system_prompt(const agent_config *cfg, const char *repo_root, buf *out)
{
    char os[160];
    if (cfg->os_name) {
        snprintf(os, sizeof(os), "%s", cfg->os_name);
    } else {
        struct utsname u;
        if (uname(&u) == 0)
            snprintf(os, sizeof(os), "%s %s", u.sysname, u.release);
        else
            snprintf(os, sizeof(os), "%s", "Linux");
    }
    char date[40];
    if (cfg->date) {
        snprintf(date, sizeof(date), "%s", cfg->date);
    } else {
        clock_iso8601(date, sizeof(date));
        date[10] = '\0';
    }
    const char *keys[] = {"repo_root", "os", "date"};
    const char *values[] = {repo_root, os, date};
    size_t start = out->len;
    loco_status rc = buf_appends(out, cfg->system_prompt ? cfg->system_prompt : "");
    if (rc == LOCO_OK)
        trim_end(out, start);
    if (rc == LOCO_OK && out->len > start)
        rc = buf_appends(out, "\n\n");
    start = out->len;
    if (rc == LOCO_OK)
        rc = agent_format(cfg->rules ? cfg->rules : agent_default_rules, keys, values,
                          LOCO_ARRAY_LEN(keys), out);
    if (rc == LOCO_OK)
        trim_end(out, start);
    return rc;
}

/* ---- call summaries ---- */

static void copy_one_line(char *out, size_t max, const char *raw)
{
    /* model-written text reaches the terminal: tabs and line breaks become spaces, other
     * control characters are shown escaped */
    buf esc;
    buf_init(&esc, BUF_UNLIMITED);
    for (size_t i = 0, len = strlen(raw); i < len;) {
        size_t k = strcspn(raw + i, "\n\r\t");
        str_append_printable(&esc, raw + i, k);
        i += k;
        if (i < len) {
            buf_appendc(&esc, ' ');
            i++;
        }
    }
    const char *s = buf_str(&esc);
    size_t n = strlen(s);
    bool cut = false;
    if (n > max - 1) {
        n = utf8_complete_len(s, max > 4 ? max - 4 : 0);
        cut = true;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    if (cut)
        snprintf(out + n, max - n, "...");
    buf_release(&esc);
}

static const char *relative(const char *path, const char *root)
{
    size_t n = root ? strlen(root) : 0;
    if (n && !strncmp(path, root, n) && path[n] == '/' && path[n + 1])
        return path + n + 1;
    return path;
}

void agent_summarize_call(const char *tool, const char *args_json, const char *repo_root,
                          char *out, size_t max)
{
    if (!max)
        return;
    out[0] = '\0';
    json_t *args = args_json ? json_parse(args_json, strlen(args_json), NULL) : NULL;
    if (!json_is_object(args)) {
        if (args_json)
            copy_one_line(out, max, args_json);
        json_decref(args);
        return;
    }
    char tmp[512];
    tmp[0] = '\0';
    const char *path = json_get_str(args, "file_path");
    if (!path)
        path = json_get_str(args, "path");
    const char *rel = path ? relative(path, repo_root) : NULL;
    if (tool && (!strcmp(tool, "Grep") || !strcmp(tool, "Glob"))) {
        const char *pat = json_get_str(args, "pattern");
        if (rel && repo_root && !strcmp(rel, repo_root))
            rel = NULL; /* the whole repository: nothing to say */
        snprintf(tmp, sizeof(tmp), "%s%s%s", pat ? pat : "", rel ? " in " : "", rel ? rel : "");
    } else if (tool && !strcmp(tool, "Bash")) {
        const char *c = json_get_str(args, "command");
        snprintf(tmp, sizeof(tmp), "%s", c ? c : "");
    } else if (tool && (!strcmp(tool, "Task") || !strcmp(tool, "Agent"))) {
        const char *d = json_get_str(args, "description");
        snprintf(tmp, sizeof(tmp), "%s", d ? d : "");
    } else if (rel) {
        snprintf(tmp, sizeof(tmp), "%s", rel);
    } else {
        const char *key;
        json_t *v;
        json_object_foreach(args, key, v) {
            if (json_is_string(v)) {
                snprintf(tmp, sizeof(tmp), "%s", json_string_value(v));
                break;
            }
        }
    }
    copy_one_line(out, max, tmp);
    json_decref(args);
}

/* ---- the shared state of one agent_run (all depths) ---- */

typedef struct {
    const agent_config *cfg;
    agent_sandbox sb;
    bool sb_ready;
    const agent_tool *const *tools;
    size_t n_tools;
    char *system;
    char *answer_path;       /* resolved cfg->answer_file, or NULL */
    pthread_mutex_t mu;      /* guards the fields below, the callback and the transcript */
    bool answer_written;     /* a Write/Edit of answer_path succeeded */
    bool took_over;
    bool hit_turn_limit;
    int turns;
    size_t tool_calls;
    size_t tool_errors;
    bool transcript_failed;
} run_shared;

typedef struct {
    run_shared *sh;
    int depth;
    int turn;
    chat_request *req;
} loop;

static bool cancelled(const run_shared *sh)
{
    return sh->cfg->cancel && __atomic_load_n(sh->cfg->cancel, __ATOMIC_ACQUIRE);
}

static void emit(run_shared *sh, const agent_event *ev)
{
    if (!sh->cfg->on_event)
        return;
    pthread_mutex_lock(&sh->mu);
    sh->cfg->on_event(sh->cfg->event_ctx, ev);
    pthread_mutex_unlock(&sh->mu);
}

static void note(loop *lp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(loop *lp, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    agent_event ev = {.type = AGENT_EV_NOTE, .depth = lp->depth, .turn = lp->turn, .text = msg};
    emit(lp->sh, &ev);
}

/* ---- transcript (JSONL) ---- */

/* Appends obj as one line; consumes obj. Failures are remembered, not fatal. */
static void transcript_put(run_shared *sh, json_t *obj)
{
    if (!sh->cfg->transcript_path || !obj) {
        json_decref(obj);
        return;
    }
    char *s = json_to_string(obj);
    json_decref(obj);
    buf line;
    buf_init(&line, BUF_UNLIMITED);
    loco_status rc = s ? buf_appends(&line, s) : LOCO_ERR_NOMEM;
    if (rc == LOCO_OK)
        rc = buf_appendc(&line, '\n');
    free(s);
    pthread_mutex_lock(&sh->mu);
    if (rc == LOCO_OK && !sh->transcript_failed)
        rc = file_append(sh->cfg->transcript_path, line.data, line.len, NULL);
    if (rc)
        sh->transcript_failed = true;
    pthread_mutex_unlock(&sh->mu);
    buf_release(&line);
}

static json_t *block_json(const chat_block *b)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    switch (b->type) {
    case CHAT_BLOCK_TOOL_CALL: {
        json_t *input = b->args_json ? json_loads(b->args_json, JSON_DECODE_ANY, NULL) : NULL;
        json_object_set_new(o, "type", json_string("tool_call"));
        json_object_set_new(o, "id", json_cstring_lossy(b->id));
        json_object_set_new(o, "name", json_cstring_lossy(b->name));
        json_object_set_new(o, "input", input ? input : json_cstring_lossy(b->args_json));
        break;
    }
    case CHAT_BLOCK_TOOL_RESULT:
        json_object_set_new(o, "type", json_string("tool_result"));
        json_object_set_new(o, "tool_call_id", json_cstring_lossy(b->id));
        json_object_set_new(o, "is_error", json_boolean(b->is_error));
        json_object_set_new(o, "text", json_cstring_lossy(b->text));
        break;
    default:
        json_object_set_new(o, "type", json_string("text"));
        json_object_set_new(o, "text", json_cstring_lossy(b->text));
        break;
    }
    return o;
}

static void transcript_message(loop *lp, const chat_message *m)
{
    if (!lp->sh->cfg->transcript_path)
        return;
    json_t *o = json_object();
    json_t *content = json_array();
    if (!o || !content) {
        json_decref(o);
        json_decref(content);
        return;
    }
    json_object_set_new(o, "type", json_string("message"));
    json_object_set_new(o, "depth", json_integer(lp->depth));
    json_object_set_new(o, "turn", json_integer(lp->turn));
    json_object_set_new(o, "role", json_string(m->role == CHAT_ROLE_ASSISTANT ? "assistant" : "user"));
    for (size_t i = 0; i < m->n_blocks; i++)
        json_array_append_new(content, block_json(&m->blocks[i]));
    json_object_set_new(o, "content", content);
    transcript_put(lp->sh, o);
}

static void transcript_note(loop *lp, const char *type, const char *text)
{
    if (!lp->sh->cfg->transcript_path)
        return;
    json_t *o = json_pack("{s:s, s:i, s:i, s:s}", "type", type, "depth", lp->depth, "turn",
                          lp->turn, "text", text);
    transcript_put(lp->sh, o);
}

/* ---- requests ---- */

static chat_request *new_request(const run_shared *sh)
{
    const agent_config *cfg = sh->cfg;
    chat_request *req = chat_request_new();
    if (!req)
        return NULL;
    req->system = chat_strdup(req, sh->system);
    req->model = cfg->model ? chat_strdup(req, cfg->model) : NULL;
    bool ok = req->system && (!cfg->model || req->model);
    for (size_t i = 0; ok && i < sh->n_tools; i++)
        ok = chat_request_add_tool(req, sh->tools[i]->name, sh->tools[i]->description,
                                   sh->tools[i]->schema_json) != NULL;
    req->has_temperature = true;
    req->temperature = cfg->temperature;
    req->max_tokens = cfg->max_tokens;
    req->stream = true;
    if (!ok) {
        chat_request_free(req);
        return NULL;
    }
    return req;
}

static loco_status add_text(chat_request *req, chat_role role, const char *text,
                            chat_message **out_m)
{
    chat_message *m = chat_request_add_message(req, role);
    chat_block *b = m ? chat_message_add_block(req, m, CHAT_BLOCK_TEXT) : NULL;
    if (!b)
        return LOCO_ERR_NOMEM;
    b->text = chat_strdup(req, text);
    if (!b->text)
        return LOCO_ERR_NOMEM;
    if (out_m)
        *out_m = m;
    return LOCO_OK;
}

/* Appends the answer as the assistant message: text and tool calls in order (thinking is not
 * sent back). With drop_calls (the last turn), the calls are left out. */
static loco_status append_answer(loop *lp, const chat_answer *a, bool drop_calls)
{
    chat_request *req = lp->req;
    chat_message *m = chat_request_add_message(req, CHAT_ROLE_ASSISTANT);
    if (!m)
        return LOCO_ERR_NOMEM;
    for (size_t i = 0; i < a->n_blocks; i++) {
        const chat_answer_block *ab = &a->blocks[i];
        bool call = ab->type == CHAT_BLOCK_TOOL_CALL;
        if (ab->type == CHAT_BLOCK_THINKING || (call && drop_calls) ||
            (ab->type == CHAT_BLOCK_TEXT && ab->len == 0))
            continue;
        chat_block *b = chat_message_add_block(req, m, ab->type);
        if (!b)
            return LOCO_ERR_NOMEM;
        if (!call) {
            b->text = chat_strndup(req, ab->text, ab->len);
            if (!b->text)
                return LOCO_ERR_NOMEM;
            continue;
        }
        char id[64];
        if (ab->id && *ab->id)
            snprintf(id, sizeof(id), "%s", ab->id);
        else
            str_random_id("toolu_", id, sizeof(id));
        b->id = chat_strdup(req, id);
        b->name = chat_strdup(req, ab->name ? ab->name : "");
        b->args_json = chat_strndup(req, ab->len ? ab->text : "{}", ab->len ? ab->len : 2);
        if (!b->id || !b->name || !b->args_json)
            return LOCO_ERR_NOMEM;
    }
    if (m->n_blocks == 0) {
        chat_block *b = chat_message_add_block(req, m, CHAT_BLOCK_TEXT);
        if (!b)
            return LOCO_ERR_NOMEM;
        b->text = chat_strdup(req, "");
        if (!b->text)
            return LOCO_ERR_NOMEM;
    }
    transcript_message(lp, m);
    return LOCO_OK;
}

static bool can_take_over(const loop *lp)
{
    return lp->depth == 0 && lp->sh->cfg->takeover && !lp->sh->took_over;
}

static loco_status take_over(loop *lp, const char *why, loco_err *err)
{
    run_shared *sh = lp->sh;
    loco_status rc = sh->cfg->takeover(sh->cfg->takeover_ctx, err);
    if (rc)
        return loco_err_wrap(err, "cloud takeover after %s", why);
    sh->took_over = true;
    char msg[200];
    snprintf(msg, sizeof(msg), "%s: the cloud model takes over", why);
    note(lp, "%s", msg);
    transcript_note(lp, "takeover", msg);
    return LOCO_OK;
}

/* One model turn into *ans (initialised here; the caller releases it). A context overflow
 * hands the main agent to the cloud once, when a takeover is configured. */
static loco_status model_turn(loop *lp, chat_answer *ans, loco_err *err)
{
    const agent_config *cfg = lp->sh->cfg;
    for (int attempt = 0;; attempt++) {
        chat_answer_init(ans, AGENT_ANSWER_MAX);
        backend_call call;
        memset(&call, 0, sizeof(call));
        call.cancel = cfg->cancel;
        call.model = cfg->model;
        backend_result res;
        memset(&res, 0, sizeof(res));
        loco_status rc = backend_complete(cfg->backend, lp->req, &call, chat_answer_on_event,
                                          ans, &res, err);
        if (cancelled(lp->sh))
            return loco_err_set(err, LOCO_ERR_CANCELLED, "cancelled");
        if (rc == LOCO_OK && ans->failed)
            rc = loco_err_set(err, LOCO_ERR_UPSTREAM, "the model server reported an error: %s",
                              ans->error_message ? ans->error_message : "(no message)");
        if (rc == LOCO_ERR_OVERFLOW && attempt == 0 && can_take_over(lp)) {
            chat_answer_release(ans);
            loco_status trc = take_over(lp, "context overflow", err);
            if (trc)
                return trc;
            continue;
        }
        return rc;
    }
}

/* ---- tool calls ---- */

typedef struct {
    loop *lp;
    const char *id;
    const char *name;
    const char *args_json;
    const agent_tool *tool; /* NULL: the result is already prepared (an error) */
    json_t *args;
    buf out;
    bool is_error;
    loco_status rc;
    double ms;
    size_t cut;             /* bytes cut to fit the context */
    pthread_t th;
    bool threaded;
} call_job;

static loco_status run_subagent(void *ctx, const char *description, const char *prompt,
                                buf *out, bool *out_is_error);
static loco_status loop_run(run_shared *sh, int depth, const char *task, int max_turns,
                            buf *answer, loco_err *err);

static const agent_tool *find_tool(const run_shared *sh, const char *name)
{
    for (size_t i = 0; i < sh->n_tools; i++) {
        if (!strcmp(sh->tools[i]->name, name))
            return sh->tools[i];
    }
    return NULL;
}

static void prepare_job(loop *lp, call_job *j, size_t index)
{
    run_shared *sh = lp->sh;
    if (index >= AGENT_MAX_CALLS_PER_TURN) {
        tools_error(&j->out, &j->is_error,
                    "Error: too many tool calls in one turn (at most %d); this one was not run",
                    AGENT_MAX_CALLS_PER_TURN);
        return;
    }
    const agent_tool *t = find_tool(sh, j->name);
    if (!t) {
        tools_error(&j->out, &j->is_error, "Error: no tool named '%s'. The tools are:",
                    j->name);
        for (size_t i = 0; i < sh->n_tools; i++)
            buf_appendf(&j->out, "%s %s", i ? "," : "", sh->tools[i]->name);
        return;
    }
    loco_err e;
    loco_err_clear(&e);
    json_t *args = json_parse(j->args_json, strlen(j->args_json), &e);
    if (!args || !json_is_object(args)) {
        tools_error(&j->out, &j->is_error,
                    "Error: the arguments of %s are not a JSON object%s%s", j->name,
                    args ? "" : ": ", args ? "" : e.msg);
        json_decref(args);
        return;
    }
    j->tool = t;
    j->args = args;
}

static void first_line(const buf *b, char *out, size_t max)
{
    const char *s = buf_str(b);
    const char *nl = strchr(s, '\n');
    size_t n = nl ? (size_t)(nl - s) : strlen(s);
    if (n >= max)
        n = utf8_complete_len(s, max - 1);
    memcpy(out, s, n);
    out[n] = '\0';
}

/* A Write/Edit of the answer file counts as the model writing its answer. */
static void check_answer_write(call_job *j)
{
    run_shared *sh = j->lp->sh;
    if (j->is_error || !sh->answer_path || !j->args)
        return;
    if (strcmp(j->name, "Write") && strcmp(j->name, "Edit"))
        return;
    const char *path = json_get_str(j->args, "file_path");
    char *resolved = NULL;
    if (!path || agent_sandbox_resolve(&sh->sb, path, SANDBOX_WRITE, &resolved, NULL))
        return;
    if (!strcmp(resolved, sh->answer_path)) {
        pthread_mutex_lock(&sh->mu);
        sh->answer_written = true;
        pthread_mutex_unlock(&sh->mu);
    }
    free(resolved);
}

static void run_job(call_job *j)
{
    loop *lp = j->lp;
    run_shared *sh = lp->sh;
    double t0 = clock_now_ms();
    if (j->tool) {
        agent_tool_ctx ctx;
        memset(&ctx, 0, sizeof(ctx));
        ctx.sb = &sh->sb;
        ctx.cancel = sh->cfg->cancel;
        ctx.max_output = AGENT_TOOL_OUTPUT_MAX;
        ctx.threads = sh->cfg->threads > 0 ? sh->cfg->threads : 1;
        ctx.run_subagent = lp->depth < AGENT_MAX_DEPTH ? run_subagent : NULL;
        ctx.subagent_ctx = lp;
        j->rc = j->tool->run(&ctx, j->args, &j->out, &j->is_error);
        if (j->rc && j->rc != LOCO_ERR_CANCELLED) {
            loco_status why = j->rc;
            buf_reset(&j->out);
            tools_error(&j->out, &j->is_error, "Error: %s failed: %s", j->name,
                        loco_status_str(why));
            j->rc = LOCO_OK;
        }
        if (j->rc == LOCO_OK)
            tools_cap_output(&j->out, AGENT_TOOL_OUTPUT_MAX, "output");
    }
    j->ms = clock_now_ms() - t0;
    if (j->rc == LOCO_ERR_CANCELLED)
        return;
    check_answer_write(j);
    pthread_mutex_lock(&sh->mu);
    sh->tool_calls++;
    if (j->is_error)
        sh->tool_errors++;
    pthread_mutex_unlock(&sh->mu);
    char summary[AGENT_SUMMARY_MAX];
    agent_summarize_call(j->name, j->args_json, sh->sb.repo_root, summary, sizeof(summary));
    char errline[200];
    if (j->is_error)
        first_line(&j->out, errline, sizeof(errline));
    agent_event ev = {.type = AGENT_EV_TOOL,
                      .depth = lp->depth,
                      .turn = lp->turn,
                      .tool = j->name,
                      .summary = summary,
                      .duration_ms = j->ms,
                      .is_error = j->is_error,
                      .text = j->is_error ? errline : NULL};
    emit(sh, &ev);
}

static void *job_thread(void *arg)
{
    run_job(arg);
    return NULL;
}

/* Runs jobs[0..n) at once (n <= AGENT_MAX_PARALLEL), inline when a thread cannot start. */
static void run_parallel(call_job *jobs, size_t n)
{
    if (n == 1) {
        run_job(&jobs[0]);
        return;
    }
    for (size_t i = 0; i < n; i++)
        jobs[i].threaded = pthread_create(&jobs[i].th, NULL, job_thread, &jobs[i]) == 0;
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].threaded)
            pthread_join(jobs[i].th, NULL);
        else
            run_job(&jobs[i]);
    }
}

static bool job_parallel_safe(const call_job *j)
{
    return !j->tool || j->tool->read_only;
}

/* Runs the calls in order: each run of read-only calls in parallel, the others one by one. */
static void run_jobs(call_job *jobs, size_t n)
{
    size_t i = 0;
    while (i < n && !cancelled(jobs[0].lp->sh)) {
        if (!job_parallel_safe(&jobs[i])) {
            run_job(&jobs[i++]);
            continue;
        }
        size_t k = i;
        while (k < n && k - i < AGENT_MAX_PARALLEL && job_parallel_safe(&jobs[k]))
            k++;
        run_parallel(jobs + i, k - i);
        i = k;
    }
}

static size_t request_bytes(const chat_request *req)
{
    size_t n = req->system ? strlen(req->system) : 0;
    for (size_t i = 0; i < req->n_msgs; i++) {
        const chat_message *m = &req->msgs[i];
        n += 16;
        for (size_t k = 0; k < m->n_blocks; k++) {
            const chat_block *b = &m->blocks[k];
            n += 32 + (b->text ? strlen(b->text) : 0) + (b->args_json ? strlen(b->args_json) : 0) +
                 (b->name ? strlen(b->name) : 0);
        }
    }
    return n;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* The per-result byte cap that makes the results fit avail bytes, cutting the largest first
 * ("water level"); SIZE_MAX when everything fits. */
static size_t water_level(const call_job *jobs, size_t n, size_t avail)
{
    size_t total = 0;
    size_t *len = malloc(n * sizeof(*len));
    if (!len)
        return avail / (n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        len[i] = jobs[i].out.len;
        total += len[i];
    }
    size_t level = SIZE_MAX;
    if (total > avail) {
        qsort(len, n, sizeof(*len), cmp_size);
        size_t remaining = avail;
        for (size_t i = 0; i < n; i++) {
            size_t share = remaining / (n - i);
            if (len[i] > share) {
                level = share;
                break;
            }
            remaining -= len[i];
        }
    }
    free(len);
    return level;
}

#define CUT_NOTE                                                                          \
    "\n\n[loco cut this result to fit the model's context of %ld tokens: %zu of %zu bytes "  \
    "dropped. Ask for less: Read with offset/limit, a narrower Grep path or pattern, "        \
    "head_limit.]"

static void cut_result(call_job *j, size_t cap, long context)
{
    if (j->out.len <= cap)
        return;
    size_t total = j->out.len;
    int nn = snprintf(NULL, 0, CUT_NOTE, context, total, total);
    size_t note_len = nn > 0 ? (size_t)nn : 0;
    size_t keep = cap > note_len + 64 ? cap - note_len : 64;
    if (keep > total)
        keep = total;
    keep = utf8_complete_len(j->out.data, keep);
    j->cut = total - keep;
    j->out.len = keep;
    j->out.data[keep] = '\0';
    buf_appendf(&j->out, CUT_NOTE, context, j->cut, total);
}

/* Cuts the results, largest first, so the next request fits the context budget. */
static void fit_results(loop *lp, call_job *jobs, size_t n)
{
    const agent_config *cfg = lp->sh->cfg;
    long ctx_tokens = cfg->context_tokens > 0 ? cfg->context_tokens : AGENT_DEFAULT_CONTEXT;
    long used = (long)(request_bytes(lp->req) / AGENT_BYTES_PER_TOKEN) + cfg->max_tokens +
                (long)n * 16;
    long free_tokens = ctx_tokens - used;
    size_t avail = free_tokens > 0 ? (size_t)free_tokens * AGENT_BYTES_PER_TOKEN : 0;
    if (avail < n * AGENT_MIN_RESULT_BYTES)
        avail = n * AGENT_MIN_RESULT_BYTES;
    size_t level = water_level(jobs, n, avail);
    if (level == SIZE_MAX)
        return;
    if (level < AGENT_MIN_RESULT_BYTES)
        level = AGENT_MIN_RESULT_BYTES;
    for (size_t i = 0; i < n; i++)
        cut_result(&jobs[i], level, ctx_tokens);
}

static void transcript_tool(loop *lp, const call_job *j)
{
    if (!lp->sh->cfg->transcript_path)
        return;
    json_t *o = json_pack("{s:s, s:i, s:i, s:s, s:s, s:f, s:b, s:I, s:I}", "type", "tool",
                          "depth", lp->depth, "turn", lp->turn, "id", j->id, "name", j->name,
                          "duration_ms", j->ms, "is_error", j->is_error, "bytes",
                          (json_int_t)j->out.len, "cut_bytes", (json_int_t)j->cut);
    transcript_put(lp->sh, o);
}

/* Runs the tool calls of the last assistant message and appends their results as one user
 * message. */
static loco_status run_calls(loop *lp, loco_err *err)
{
    chat_request *req = lp->req;
    const chat_message *am = &req->msgs[req->n_msgs - 1];
    size_t n = 0;
    for (size_t i = 0; i < am->n_blocks; i++)
        n += am->blocks[i].type == CHAT_BLOCK_TOOL_CALL;
    call_job *jobs = calloc(n, sizeof(*jobs));
    if (!jobs)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < am->n_blocks; i++) {
        const chat_block *b = &am->blocks[i];
        if (b->type != CHAT_BLOCK_TOOL_CALL)
            continue;
        call_job *j = &jobs[k];
        j->lp = lp;
        j->id = b->id;
        j->name = b->name;
        j->args_json = b->args_json;
        buf_init(&j->out, AGENT_RESULT_BUF_MAX);
        prepare_job(lp, j, k);
        k++;
    }
    run_jobs(jobs, n);
    loco_status rc = LOCO_OK;
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].rc == LOCO_ERR_CANCELLED)
            rc = LOCO_ERR_CANCELLED;
    }
    if (rc == LOCO_OK && cancelled(lp->sh))
        rc = LOCO_ERR_CANCELLED;
    if (rc) {
        loco_err_set(err, rc, "cancelled");
        goto out;
    }
    fit_results(lp, jobs, n);
    chat_message *um = chat_request_add_message(req, CHAT_ROLE_USER);
    if (!um) {
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        chat_block *b = chat_message_add_block(req, um, CHAT_BLOCK_TOOL_RESULT);
        if (!b) {
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
            goto out;
        }
        b->id = jobs[i].id;
        b->text = chat_strndup(req, buf_str(&jobs[i].out), jobs[i].out.len);
        b->is_error = jobs[i].is_error;
        if (!b->text) {
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
            goto out;
        }
        transcript_tool(lp, &jobs[i]);
    }
    transcript_message(lp, um);
out:
    for (size_t i = 0; i < n; i++) {
        json_decref(jobs[i].args);
        buf_release(&jobs[i].out);
    }
    free(jobs);
    return rc;
}

static loco_status run_subagent(void *ctx, const char *description, const char *prompt,
                                buf *out, bool *out_is_error)
{
    loop *parent = ctx;
    run_shared *sh = parent->sh;
    note(parent, "Task: %s (sub-agent, depth %d)", description, parent->depth + 1);
    buf answer;
    buf_init(&answer, AGENT_ANSWER_MAX);
    loco_err e;
    loco_err_clear(&e);
    int turns = sh->cfg->sub_max_turns > 0 ? sh->cfg->sub_max_turns : AGENT_DEFAULT_MAX_TURNS;
    loco_status rc = loop_run(sh, parent->depth + 1, prompt, turns, &answer, &e);
    if (rc == LOCO_ERR_CANCELLED) {
        buf_release(&answer);
        return rc;
    }
    if (rc) {
        rc = tools_error(out, out_is_error, "Task failed: %s", e.msg);
    } else {
        *out_is_error = false;
        rc = answer.len ? buf_append(out, answer.data, answer.len)
                        : buf_appends(out, "(the sub-agent ended without an answer)");
    }
    buf_release(&answer);
    return rc;
}

/* The text blocks of the answer, joined, trimmed. */
static loco_status answer_text(const chat_answer *a, buf *out)
{
    size_t start = out->len;
    for (size_t i = 0; i < a->n_blocks; i++) {
        if (a->blocks[i].type != CHAT_BLOCK_TEXT || !a->blocks[i].len)
            continue;
        if (out->len > start) {
            loco_status rc = buf_appendc(out, '\n');
            if (rc)
                return rc;
        }
        loco_status rc = buf_append(out, a->blocks[i].text, a->blocks[i].len);
        if (rc)
            return rc;
    }
    trim_end(out, start);
    size_t lead = 0;
    while (start + lead < out->len && strchr(" \t\r\n", out->data[start + lead]))
        lead++;
    if (lead) {
        memmove(out->data + start, out->data + start + lead, out->len - start - lead + 1);
        out->len -= lead;
    }
    return LOCO_OK;
}

static loco_status start_last_turn(loop *lp, int turns)
{
    char msg[400];
    snprintf(msg, sizeof(msg),
             "You have used all %d turns. Do not call any more tools. Give your final answer "
             "now, from what you have found so far.",
             turns);
    chat_message *m = NULL;
    loco_status rc = add_text(lp->req, CHAT_ROLE_USER, msg, &m);
    if (rc)
        return rc;
    lp->req->tool_choice = CHAT_TOOL_CHOICE_NONE;
    note(lp, "turn limit (%d) reached: asking for the answer without tools", turns);
    transcript_message(lp, m);
    return LOCO_OK;
}

/* One agent (the main one or a sub-agent) from task to answer. */
static loco_status loop_run(run_shared *sh, int depth, const char *task, int max_turns,
                            buf *answer, loco_err *err)
{
    loop lp = {sh, depth, 0, new_request(sh)};
    if (!lp.req)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    chat_message *first = NULL;
    loco_status rc = add_text(lp.req, CHAT_ROLE_USER, task, &first);
    if (rc) {
        rc = loco_err_set(err, rc, "out of memory");
        goto out;
    }
    transcript_message(&lp, first);
    int budget = max_turns;
    bool last = false;
    for (;;) {
        if (cancelled(sh)) {
            rc = loco_err_set(err, LOCO_ERR_CANCELLED, "cancelled");
            break;
        }
        if (!last && lp.turn >= budget) {
            if (can_take_over(&lp)) {
                rc = take_over(&lp, "turn limit", err);
                if (rc)
                    break;
                budget = lp.turn + max_turns;
                continue;
            }
            last = true;
            if (depth == 0)
                sh->hit_turn_limit = true;
            rc = start_last_turn(&lp, lp.turn);
            if (rc) {
                loco_err_set(err, rc, "out of memory");
                break;
            }
        }
        chat_answer ans;
        lp.turn++;
        agent_event tev = {.type = AGENT_EV_TURN_START, .depth = depth, .turn = lp.turn};
        emit(sh, &tev);
        double t0 = clock_now_ms();
        rc = model_turn(&lp, &ans, err);
        tev.type = AGENT_EV_TURN;
        tev.duration_ms = clock_now_ms() - t0;
        tev.is_error = rc != LOCO_OK;
        tev.prompt_tokens = rc ? -1 : ans.usage.input_tokens;
        tev.gen_tokens = rc ? -1 : ans.usage.output_tokens;
        tev.calls = rc ? 0 : chat_answer_tool_calls(&ans);
        emit(sh, &tev);
        if (rc == LOCO_OK)
            rc = append_answer(&lp, &ans, last);
        size_t calls = rc ? 0 : chat_answer_tool_calls(&ans);
        if (rc == LOCO_OK && (calls == 0 || last)) {
            if (calls)
                note(&lp, "ignored %zu tool call(s) in the last turn", calls);
            rc = answer_text(&ans, answer);
            chat_answer_release(&ans);
            break;
        }
        chat_answer_release(&ans);
        if (rc == LOCO_OK)
            rc = run_calls(&lp, err);
        if (rc)
            break;
    }
    if (rc == LOCO_ERR_NOMEM || rc == LOCO_ERR_LIMIT)
        loco_err_set(err, rc, "agent at depth %d: %s", depth,
                     rc == LOCO_ERR_LIMIT ? "an answer grew past its limit" : "out of memory");
out:
    if (depth == 0)
        sh->turns = lp.turn;
    chat_request_free(lp.req);
    return rc;
}

/* ---- agent_run ---- */

static loco_status check_config(const agent_config *cfg, const char *task, loco_err *err)
{
    if (!cfg->backend || !cfg->repo_root || !task)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "agent: backend, repository and task are required");
    if (cfg->max_turns < 1 || cfg->max_turns > 1000)
        return loco_err_set(err, LOCO_ERR_INVALID, "agent: max turns must be in [1, 1000]");
    return LOCO_OK;
}

static loco_status shared_init(run_shared *sh, const agent_config *cfg, loco_err *err)
{
    memset(sh, 0, sizeof(*sh));
    sh->cfg = cfg;
    pthread_mutex_init(&sh->mu, NULL);
    sh->tools = cfg->tools;
    sh->n_tools = cfg->n_tools;
    if (!sh->tools)
        sh->tools = agent_tools_all(&sh->n_tools);
    loco_status rc = agent_sandbox_init(&sh->sb, cfg->repo_root, cfg->out_dir, cfg->allow_write,
                                        cfg->allow_bash_writes, err);
    if (rc)
        return rc;
    sh->sb.unsafe_bash = cfg->unsafe_bash;
    sh->sb_ready = true;
    buf sys;
    buf_init(&sys, BUF_UNLIMITED);
    rc = agent_system_prompt(cfg, sh->sb.repo_root, &sys);
    if (rc) {
        buf_release(&sys);
        return loco_err_set(err, rc, "out of memory");
    }
    sh->system = buf_take(&sys, NULL);
    if (!sh->system)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    if (cfg->answer_file) {
        if (agent_sandbox_resolve(&sh->sb, cfg->answer_file, SANDBOX_WRITE, &sh->answer_path,
                                  NULL))
            sh->answer_path = strdup(cfg->answer_file);
        if (!sh->answer_path)
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    if (cfg->transcript_path) {
        rc = file_write_atomic(cfg->transcript_path, "", 0, 0644, err);
        if (rc)
            return loco_err_wrap(err, "transcript");
    }
    return LOCO_OK;
}

static void shared_release(run_shared *sh)
{
    if (sh->sb_ready)
        agent_sandbox_release(&sh->sb);
    free(sh->system);
    free(sh->answer_path);
    pthread_mutex_destroy(&sh->mu);
}

static void transcript_start(run_shared *sh, const char *task)
{
    const agent_config *cfg = sh->cfg;
    if (!cfg->transcript_path)
        return;
    char now[40];
    clock_iso8601(now, sizeof(now));
    json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:s?, s:s?, s:i, s:f, s:I, s:s}", "type",
                          "meta", "version", 1, "started", now, "repo_root", sh->sb.repo_root,
                          "out_dir", sh->sb.out_dir, "model", cfg->model, "max_turns",
                          cfg->max_turns, "temperature", cfg->temperature, "context_tokens",
                          (json_int_t)cfg->context_tokens, "task", task);
    transcript_put(sh, o);
    transcript_put(sh, json_pack("{s:s, s:s}", "type", "system", "text", sh->system));
}

static void transcript_end(run_shared *sh, const agent_result *r, loco_status rc,
                           const loco_err *err)
{
    if (!sh->cfg->transcript_path)
        return;
    json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:I, s:b, s:b, s:b, s:f}", "type", "end",
                          "status", loco_status_str(rc), "turns", r->turns, "tool_calls",
                          (json_int_t)r->tool_calls, "tool_errors",
                          (json_int_t)r->tool_errors, "hit_turn_limit", r->hit_turn_limit,
                          "took_over", r->took_over, "model_wrote_answer",
                          r->model_wrote_answer, "duration_ms", r->duration_ms);
    if (o && rc)
        json_object_set_new(o, "error", json_cstring_lossy(err->msg));
    transcript_put(sh, o);
}

/* Writes the answer to the answer file unless the model already did. */
static loco_status deliver(run_shared *sh, const buf *answer, agent_result *out, loco_err *err)
{
    if (sh->answer_written && file_exists(sh->answer_path)) {
        out->model_wrote_answer = true;
        out->answer_file_written = true;
        return LOCO_OK;
    }
    if (answer->len == 0)
        return loco_err_set(err, LOCO_ERR_INVALID, "the model ended without an answer");
    if (!sh->answer_path)
        return LOCO_OK;
    if (cancelled(sh))
        return loco_err_set(err, LOCO_ERR_CANCELLED, "cancelled");
    buf text;
    buf_init(&text, BUF_UNLIMITED);
    loco_status rc = buf_append(&text, answer->data, answer->len);
    if (rc == LOCO_OK)
        rc = buf_appendc(&text, '\n');
    if (rc == LOCO_OK)
        rc = file_write_atomic(sh->answer_path, text.data, text.len, 0644, err);
    else
        loco_err_set(err, rc, "out of memory");
    buf_release(&text);
    if (rc == LOCO_OK)
        out->answer_file_written = true;
    return rc;
}

loco_status agent_run(const agent_config *cfg, const char *task, agent_result *out,
                      loco_err *err)
{
    memset(out, 0, sizeof(*out));
    loco_status rc = check_config(cfg, task, err);
    if (rc)
        return rc;
    double t0 = clock_now_ms();
    run_shared sh;
    buf answer;
    buf_init(&answer, AGENT_ANSWER_MAX);
    rc = shared_init(&sh, cfg, err);
    if (rc == LOCO_OK) {
        transcript_start(&sh, task);
        rc = loop_run(&sh, 0, task, cfg->max_turns, &answer, err);
        if (rc == LOCO_OK)
            rc = deliver(&sh, &answer, out, err);
        out->turns = sh.turns;
        out->tool_calls = sh.tool_calls;
        out->tool_errors = sh.tool_errors;
        out->hit_turn_limit = sh.hit_turn_limit;
        out->took_over = sh.took_over;
        out->duration_ms = clock_now_ms() - t0;
        transcript_end(&sh, out, rc, err);
    }
    if (rc == LOCO_OK) {
        out->answer = buf_take(&answer, &out->answer_len);
        if (!out->answer)
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    buf_release(&answer);
    shared_release(&sh);
    return rc;
}
