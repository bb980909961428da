/* record.c: the exchange recorder behind `loco serve --record DIR` (see record.h). Builds
 * one JSON line per exchange from the qwen-text rendering of the request plus the answer,
 * and appends it to the day's file with a single write. Part of gateway/. */
#include "base/common.h"

#include <pthread.h>
#include <unistd.h>

#include "base/file.h"
#include "base/json.h"
#include "base/str.h"
#include "chat/qwen.h"
#include "gateway/record.h"

struct recorder {
    pthread_mutex_t mu;
    char *dir;
    char *system_prompt; /* NULL: keep the client's */
};

/* Creates and removes a probe file so a read-only directory fails at startup, not at the
 * first exchange. */
static loco_status probe_writable(const char *dir, loco_err *err)
{
    char id[64];
    str_random_id(".loco-record-probe-", id, sizeof id);
    buf path;
    buf_init(&path, PATH_MAX);
    loco_status rc = buf_appendf(&path, "%s/%s", dir, id);
    if (rc) {
        buf_release(&path);
        return loco_err_set(err, rc, "record directory path '%s' is too long", dir);
    }
    rc = file_append(path.data, "", 0, err);
    if (!rc)
        unlink(path.data);
    else
        loco_err_wrap(err, "record directory '%s' is not writable", dir);
    buf_release(&path);
    return rc;
}

loco_status record_open(const char *dir, const char *system_prompt, recorder **out,
                        loco_err *err)
{
    *out = NULL;
    if (!dir || !dir[0])
        return loco_err_set(err, LOCO_ERR_INVALID, "record directory is empty");
    loco_status rc = file_mkdirs(dir, err);
    if (rc)
        return loco_err_wrap(err, "cannot create record directory '%s'", dir);
    rc = probe_writable(dir, err);
    if (rc)
        return rc;
    recorder *r = calloc(1, sizeof *r);
    if (!r)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory opening the recorder");
    r->dir = strdup(dir);
    r->system_prompt = system_prompt ? strdup(system_prompt) : NULL;
    if (!r->dir || (system_prompt && !r->system_prompt) ||
        pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r->dir);
        free(r->system_prompt);
        free(r);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory opening the recorder");
    }
    *out = r;
    return LOCO_OK;
}

void record_close(recorder *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r->dir);
    free(r->system_prompt);
    free(r);
}

/* ---- the line ---- */

static loco_status json_str_or_null(buf *b, const char *s)
{
    if (!s || !s[0])
        return buf_appends(b, "null");
    return json_append_str_lossy(b, s, strlen(s));
}

static loco_status message_append(buf *b, bool first, const char *role, const char *content,
                                  size_t n)
{
    loco_status rc = buf_appendf(b, "%s{\"role\":\"%s\",\"content\":", first ? "" : ",", role);
    if (!rc)
        rc = json_append_str_lossy(b, content, n); /* a local model's text may cut a character */
    return rc ? rc : buf_appendc(b, '}');
}

/* The text of one rendered message: its TEXT blocks joined with "\n" (render gives one). */
static loco_status rendered_text(const chat_message *m, buf *out)
{
    loco_status rc = LOCO_OK;
    bool any = false;
    for (size_t i = 0; i < m->n_blocks && !rc; i++) {
        const chat_block *b = &m->blocks[i];
        if (b->type != CHAT_BLOCK_TEXT || !b->text)
            continue;
        if (any)
            rc = buf_appendc(out, '\n');
        if (!rc)
            rc = buf_appends(out, b->text);
        any = true;
    }
    return rc;
}

/* The answer as the model writes it: text, then its <tool_call> blocks. */
static loco_status answer_text(const chat_answer *a, buf *out)
{
    loco_status rc = LOCO_OK;
    for (size_t i = 0; i < a->n_blocks && !rc; i++) {
        const chat_answer_block *b = &a->blocks[i];
        if (b->type != CHAT_BLOCK_TEXT || !b->len)
            continue;
        if (out->len)
            rc = buf_appendc(out, '\n');
        if (!rc)
            rc = buf_append(out, b->text, b->len);
    }
    for (size_t i = 0; i < a->n_blocks && !rc; i++) {
        const chat_answer_block *b = &a->blocks[i];
        if (b->type != CHAT_BLOCK_TOOL_CALL)
            continue;
        if (out->len)
            rc = buf_appendc(out, '\n');
        if (!rc)
            rc = chat_qwen_append_tool_call(out, b->name ? b->name : "", b->text);
    }
    return rc;
}

static loco_status messages_append(buf *b, const chat_request *rendered, const chat_answer *a,
                                   loco_err *err)
{
    loco_status rc = buf_appends(b, "{\"messages\":[");
    bool first = true;
    if (!rc && rendered->system) {
        rc = message_append(b, true, "system", rendered->system, strlen(rendered->system));
        first = false;
    }
    buf text;
    buf_init(&text, RECORD_MAX_LINE);
    for (size_t i = 0; i < rendered->n_msgs && !rc; i++) {
        const chat_message *m = &rendered->msgs[i];
        buf_reset(&text);
        rc = rendered_text(m, &text);
        if (!rc)
            rc = message_append(b, first, m->role == CHAT_ROLE_ASSISTANT ? "assistant" : "user",
                                buf_str(&text), text.len);
        first = false;
    }
    if (!rc) {
        buf_reset(&text);
        rc = answer_text(a, &text);
        if (rc == LOCO_ERR_INVALID)
            loco_err_set(err, rc, "a tool call of the answer has arguments that are not JSON");
    }
    if (!rc)
        rc = message_append(b, first, "assistant", buf_str(&text), text.len);
    buf_release(&text);
    return rc ? rc : buf_appendc(b, ']');
}

/* Appends the parsed schema, or the empty object schema when there is none. */
static loco_status schema_append(buf *b, const char *schema_json)
{
    if (!schema_json || !schema_json[0])
        return buf_appends(b, "{\"type\":\"object\",\"properties\":{}}");
    json_t *v = json_parse(schema_json, strlen(schema_json), NULL);
    if (!v)
        return LOCO_ERR_INVALID;
    loco_status rc = json_append(b, v);
    json_decref(v);
    return rc;
}

static loco_status tools_append(buf *b, const chat_request *req, loco_err *err)
{
    if (!req->n_tools)
        return LOCO_OK;
    loco_status rc = buf_appends(b, ",\"tools\":[");
    for (size_t i = 0; i < req->n_tools && !rc; i++) {
        const chat_tool *t = &req->tools[i];
        const char *name = t->name ? t->name : "";
        const char *desc = t->description ? t->description : "";
        rc = buf_appends(b, i ? ",{\"type\":\"function\",\"function\":{\"name\":"
                              : "{\"type\":\"function\",\"function\":{\"name\":");
        if (!rc)
            rc = buf_append_json_str(b, name, strlen(name));
        if (!rc)
            rc = buf_appends(b, ",\"description\":");
        if (!rc)
            rc = buf_append_json_str(b, desc, strlen(desc));
        if (!rc)
            rc = buf_appends(b, ",\"parameters\":");
        if (!rc)
            rc = schema_append(b, t->schema_json);
        if (rc == LOCO_ERR_INVALID)
            loco_err_set(err, rc, "the schema of tool '%s' is not JSON", name);
        if (!rc)
            rc = buf_appends(b, "}}");
    }
    return rc ? rc : buf_appendc(b, ']');
}

static loco_status meta_append(buf *b, const char *stamp, const char *id, const char *route,
                               const char *reason, const char *model)
{
    loco_status rc = buf_appends(b, ",\"id\":");
    if (!rc)
        rc = json_str_or_null(b, id);
    if (!rc)
        rc = buf_appendf(b, ",\"time\":\"%s\",\"route\":", stamp);
    if (!rc)
        rc = json_str_or_null(b, route);
    if (!rc)
        rc = buf_appends(b, ",\"reason\":");
    if (!rc)
        rc = json_str_or_null(b, reason);
    if (!rc)
        rc = buf_appends(b, ",\"model\":");
    if (!rc)
        rc = json_str_or_null(b, model);
    return rc ? rc : buf_appends(b, "}\n");
}

static loco_status line_build(const recorder *r, const chat_request *req,
                              const chat_answer *answer, const char *stamp, const char *route,
                              const char *reason, const char *model, const char *id, buf *line,
                              loco_err *err)
{
    chat_request *rendered = NULL;
    loco_status rc = chat_qwen_render(req, r->system_prompt, &rendered, err);
    if (rc)
        return loco_err_wrap(err, "recording exchange %s", id ? id : "?");
    loco_err_clear(err);
    rc = messages_append(line, rendered, answer, err);
    if (!rc)
        rc = tools_append(line, req, err);
    if (!rc)
        rc = meta_append(line, stamp, id, route, reason, model);
    chat_request_free(rendered);
    if (rc && err && err->code == LOCO_OK)
        loco_err_set(err, rc, "%s", rc == LOCO_ERR_LIMIT ? "the exchange is larger than the "
                                                           "record line limit"
                                                         : loco_status_str(rc));
    if (rc)
        loco_err_wrap(err, "recording exchange %s", id ? id : "?");
    return rc;
}

loco_status record_exchange(recorder *r, const chat_request *req, const chat_answer *answer,
                            const char *route, const char *reason, const char *model,
                            const char *id, loco_err *err)
{
    if (!r || !req || !answer)
        return loco_err_set(err, LOCO_ERR_INVALID, "record_exchange: missing argument");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char stamp[32], day[16];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    strftime(day, sizeof day, "%Y%m%d", &tm);
    buf line;
    buf_init(&line, RECORD_MAX_LINE);
    loco_status rc = line_build(r, req, answer, stamp, route, reason, model, id, &line, err);
    buf path;
    buf_init(&path, PATH_MAX);
    if (!rc && buf_appendf(&path, "%s/exchanges-%s.jsonl", r->dir, day))
        rc = loco_err_set(err, LOCO_ERR_LIMIT, "record path under '%s' is too long", r->dir);
    if (!rc) {
        pthread_mutex_lock(&r->mu);
        rc = file_append(path.data, line.data, line.len, err);
        pthread_mutex_unlock(&r->mu);
    }
    buf_release(&path);
    buf_release(&line);
    return rc;
}
