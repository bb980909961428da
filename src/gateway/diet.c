/* diet.c: the prompt diet (diet.h): Claude Code's <system-reminder> blocks that carry nothing
 * the local model's task needs are dropped; the environment note becomes the training
 * prompt's ENV line. */
#include "base/common.h"

#include "base/str.h"
#include "gateway/diet.h"

#define OPEN_TAG "<system-reminder>"
#define CLOSE_TAG "</system-reminder>"
#define OPEN_LEN (sizeof(OPEN_TAG) - 1)
#define CLOSE_LEN (sizeof(CLOSE_TAG) - 1)

/* Limit on the text of one block after the diet (it only ever shrinks). */
#define DIET_TEXT_MAX ((size_t)256 << 20)

static const char *const kind_names[DIET_KIND_COUNT] = {
    [DIET_KEEP] = "keep",
    [DIET_ENVIRONMENT] = "environment",
    [DIET_DEFERRED_TOOLS] = "deferred_tools",
    [DIET_SKILLS] = "skills",
    [DIET_MODEL_IDENTITY] = "model_identity",
    [DIET_MODEL_CHANGED] = "model_changed",
    [DIET_DATE] = "date",
    [DIET_ATTRIBUTION] = "attribution",
    [DIET_TOKEN_BUDGET] = "token_budget",
    [DIET_AGENT_TYPES] = "agent_types",
    [DIET_TIP] = "tip",
};

const char *diet_kind_str(diet_kind k)
{
    return k < DIET_KIND_COUNT ? kind_names[k] : "keep";
}

/* How each droppable kind begins (after leading whitespace). Claude Code 2.1's wording. */
static const struct {
    const char *prefix;
    diet_kind kind;
} openers[] = {
    {"# Environment\n", DIET_ENVIRONMENT},
    {"<env>", DIET_ENVIRONMENT},
    {"The following deferred tools are now available", DIET_DEFERRED_TOOLS},
    {"The following skills are available for use with the Skill tool", DIET_SKILLS},
    {"You are powered by the model named", DIET_MODEL_IDENTITY},
    {"The model for this session has been changed to", DIET_MODEL_CHANGED},
    {"Today's date is", DIET_DATE},
    {"The current date is", DIET_DATE},
    {"Attribution for git commits and pull requests", DIET_ATTRIBUTION},
    {"<total_tokens>", DIET_TOKEN_BUDGET},
    {"Available agent types for the Agent tool", DIET_AGENT_TYPES},
    {"Tip: ", DIET_TIP},
};

static bool is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

diet_kind diet_classify(const char *body, size_t n)
{
    while (n && is_space(*body)) {
        body++;
        n--;
    }
    for (size_t i = 0; i < LOCO_ARRAY_LEN(openers); i++) {
        size_t k = strlen(openers[i].prefix);
        if (n >= k && !memcmp(body, openers[i].prefix, k))
            return openers[i].kind;
    }
    return DIET_KEEP;
}

/* The value after "label" on one line of body (up to the end of that line), trimmed. */
static void env_value(const char *body, size_t n, const char *label, char *out, size_t size)
{
    size_t k = strlen(label);
    for (size_t i = 0; i + k <= n; i++) {
        if ((i && body[i - 1] != '\n' && body[i - 1] != ' ') || memcmp(body + i, label, k))
            continue;
        size_t a = i + k, b = a;
        while (b < n && body[b] != '\n')
            b++;
        while (a < b && is_space(body[a]))
            a++;
        while (b > a && is_space(body[b - 1]))
            b--;
        if (b > a && !out[0])
            snprintf(out, size, "%.*s", (int)(b - a), body + a);
        return;
    }
}

static void take_environment(const char *body, size_t n, diet_report *rep)
{
    if (!rep)
        return;
    env_value(body, n, "Primary working directory:", rep->cwd, sizeof(rep->cwd));
    env_value(body, n, "Working directory:", rep->cwd, sizeof(rep->cwd));
    env_value(body, n, "Platform:", rep->platform, sizeof(rep->platform));
    env_value(body, n, "Shell:", rep->shell, sizeof(rep->shell));
}

/* Notes a reminder of kind k (body[0..n)); true when it is dropped. */
static bool judge(const char *body, size_t n, size_t whole, diet_report *rep)
{
    diet_kind k = diet_classify(body, n);
    if (k == DIET_ENVIRONMENT)
        take_environment(body, n, rep);
    if (rep) {
        if (k == DIET_KEEP) {
            rep->kept++;
        } else {
            rep->dropped[k]++;
            rep->bytes_dropped += whole;
        }
    }
    return k != DIET_KEEP;
}

static void trim_end(buf *out, size_t from)
{
    while (out->len > from && is_space(out->data[out->len - 1]))
        out->len--;
    if (out->data)
        out->data[out->len] = '\0';
}

loco_status diet_filter_text(const char *text, size_t n, buf *out, diet_report *rep)
{
    size_t start = out->len;
    size_t i = 0;
    bool seam = false; /* a reminder was just dropped: the whitespace around it goes */
    loco_status rc = LOCO_OK;
    while (!rc && i < n) {
        const char *open = memmem(text + i, n - i, OPEN_TAG, OPEN_LEN);
        const char *close = NULL;
        if (open) {
            size_t body = (size_t)(open - text) + OPEN_LEN;
            close = memmem(text + body, n - body, CLOSE_TAG, CLOSE_LEN);
        }
        size_t o = close ? (size_t)(open - text) : n; /* an unclosed tag is plain text */
        size_t a = i;
        if (seam)
            while (a < o && is_space(text[a]))
                a++;
        /* the whitespace on both sides of a dropped reminder becomes one newline */
        bool more = o > a || o < n;
        if (seam && more && out->len > start)
            rc = buf_appendc(out, '\n');
        seam = false;
        if (!rc && o > a)
            rc = buf_append(out, text + a, o - a);
        if (rc || o == n)
            break;
        size_t c = (size_t)(close - text);
        size_t end = c + CLOSE_LEN;
        if (judge(text + o + OPEN_LEN, c - o - OPEN_LEN, end - o, rep)) {
            trim_end(out, start);
            seam = true;
        } else {
            rc = buf_append(out, text + o, end - o);
        }
        i = end;
    }
    return rc;
}

/* One text of the conversation through the filter; *out_text NULL when nothing is left. */
static size_t drops(const diet_report *rep)
{
    size_t n = 0;
    for (int k = 0; k < DIET_KIND_COUNT; k++)
        n += rep->dropped[k];
    return n;
}

/* One text of the conversation through the filter: *out_text is text itself when nothing
 * was dropped, NULL when nothing is left, else the new text (in r's arena). */
static loco_status filter_into(chat_request *r, const char *text, buf *scratch,
                               diet_report *rep, const char **out_text)
{
    size_t before = drops(rep);
    buf_reset(scratch);
    loco_status rc = diet_filter_text(text, strlen(text), scratch, rep);
    if (rc)
        return rc;
    if (drops(rep) == before) {
        *out_text = text; /* untouched, whitespace and all */
        return LOCO_OK;
    }
    trim_end(scratch, 0);
    if (!scratch->len) {
        *out_text = NULL;
        return LOCO_OK;
    }
    *out_text = chat_strndup(r, buf_str(scratch), scratch->len);
    return *out_text ? LOCO_OK : LOCO_ERR_NOMEM;
}

/* A role:"system" note without reminder tags is one reminder body as a whole. */
static loco_status diet_system_note(chat_request *r, chat_block *b, buf *scratch,
                                    diet_report *rep, bool *out_drop)
{
    *out_drop = false;
    if (!b->text)
        return LOCO_OK;
    if (strstr(b->text, OPEN_TAG)) {
        const char *t = NULL;
        loco_status rc = filter_into(r, b->text, scratch, rep, &t);
        if (!rc && !t)
            *out_drop = true;
        else if (!rc)
            b->text = t;
        return rc;
    }
    *out_drop = judge(b->text, strlen(b->text), strlen(b->text), rep);
    return LOCO_OK;
}

static loco_status diet_message(chat_request *r, chat_message *m, buf *scratch,
                                diet_report *rep)
{
    size_t keep = 0;
    loco_status rc = LOCO_OK;
    for (size_t j = 0; !rc && j < m->n_blocks; j++) {
        chat_block *b = &m->blocks[j];
        bool drop = false;
        if (m->role == CHAT_ROLE_SYSTEM && b->type == CHAT_BLOCK_TEXT) {
            rc = diet_system_note(r, b, scratch, rep, &drop);
        } else if (m->role == CHAT_ROLE_USER && b->text &&
                   (b->type == CHAT_BLOCK_TEXT || b->type == CHAT_BLOCK_TOOL_RESULT)) {
            const char *t = NULL;
            rc = filter_into(r, b->text, scratch, rep, &t);
            if (!rc && t)
                b->text = t;
            else if (!rc && b->type == CHAT_BLOCK_TEXT)
                drop = true;
            else if (!rc)
                b->text = ""; /* a tool result stays, even empty: its call needs an answer */
        }
        if (!rc && !drop)
            m->blocks[keep++] = *b;
    }
    m->n_blocks = keep;
    return rc;
}

static const char *platform_name(const char *p)
{
    if (!strcmp(p, "linux"))
        return "Linux";
    if (!strcmp(p, "darwin"))
        return "macOS";
    if (!strcmp(p, "win32"))
        return "Windows";
    return p;
}

static loco_status set_system(chat_request *r, const char *system_prompt, const diet_report *rep)
{
    const char *sp = system_prompt ? system_prompt : "";
    if (!rep || !rep->cwd[0]) {
        r->system = chat_strdup(r, sp);
        return r->system ? LOCO_OK : LOCO_ERR_NOMEM;
    }
    buf s;
    buf_init(&s, DIET_TEXT_MAX);
    loco_status rc = buf_appends(&s, sp);
    trim_end(&s, 0);
    if (!rc && s.len)
        rc = buf_appends(&s, "\n\n");
    if (!rc)
        rc = buf_appendf(&s, "ENV: Working directory is %s", rep->cwd);
    if (!rc && (rep->platform[0] || rep->shell[0]))
        rc = buf_appendf(&s, " (%s%s%s)", platform_name(rep->platform),
                         rep->platform[0] && rep->shell[0] ? ", " : "", rep->shell);
    if (!rc)
        rc = buf_appendc(&s, '.');
    if (!rc) {
        r->system = chat_strndup(r, buf_str(&s), s.len);
        rc = r->system ? LOCO_OK : LOCO_ERR_NOMEM;
    }
    buf_release(&s);
    return rc;
}

loco_status diet_apply(const chat_request *req, const char *system_prompt, bool keep_reminders,
                       chat_request **out, diet_report *rep, loco_err *err)
{
    diet_report local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof(*rep));
    chat_request *r = chat_request_clone(req);
    if (!r)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    loco_status rc = LOCO_OK;
    if (!keep_reminders) {
        buf scratch;
        buf_init(&scratch, DIET_TEXT_MAX);
        size_t keep = 0;
        for (size_t i = 0; !rc && i < r->n_msgs; i++) {
            chat_message *m = &r->msgs[i];
            rc = diet_message(r, m, &scratch, rep);
            if (!rc && m->n_blocks)
                r->msgs[keep++] = *m;
        }
        if (!rc)
            r->n_msgs = keep;
        buf_release(&scratch);
    }
    if (!rc)
        rc = set_system(r, system_prompt, keep_reminders ? NULL : rep);
    if (rc) {
        chat_request_free(r);
        return loco_err_set(err, rc, "cannot apply the prompt diet: %s", loco_status_str(rc));
    }
    *out = r;
    return LOCO_OK;
}
