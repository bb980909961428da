/* chat.c: the neutral conversation model, its constructors, and the answer accumulator. */
#include "base/common.h"

#include "base/str.h"
#include "chat/chat.h"

/* A request holds at most this much text (bodies are limited before parsing anyway). */
#define CHAT_REQUEST_ARENA_MAX ((size_t)1 << 31)

chat_request *chat_request_new(void)
{
    chat_request *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    arena_init(&req->mem, CHAT_REQUEST_ARENA_MAX);
    req->parallel_tool_calls = true;
    return req;
}

void chat_request_free(chat_request *req)
{
    if (!req)
        return;
    arena_release(&req->mem);
    free(req);
}

/* Grows an arena-backed array by one element (old storage stays in the arena). */
static void *grow(arena *a, void *items, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return items;
    size_t ncap = *cap ? *cap * 2 : 4;
    void *p = arena_alloc(a, ncap * size);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, items, n * size);
    *cap = ncap;
    return p;
}

chat_message *chat_request_add_message(chat_request *req, chat_role role)
{
    chat_message *m = grow(&req->mem, req->msgs, req->n_msgs, &req->cap_msgs, sizeof(*m));
    if (!m)
        return NULL;
    req->msgs = m;
    chat_message *msg = &req->msgs[req->n_msgs++];
    memset(msg, 0, sizeof(*msg));
    msg->role = role;
    return msg;
}

chat_block *chat_message_add_block(chat_request *req, chat_message *msg, chat_block_type type)
{
    chat_block *b = grow(&req->mem, msg->blocks, msg->n_blocks, &msg->cap_blocks, sizeof(*b));
    if (!b)
        return NULL;
    msg->blocks = b;
    chat_block *blk = &msg->blocks[msg->n_blocks++];
    memset(blk, 0, sizeof(*blk));
    blk->type = type;
    return blk;
}

const char *chat_strndup(chat_request *req, const char *s, size_t n)
{
    return arena_strndup(&req->mem, s, n);
}

const char *chat_strdup(chat_request *req, const char *s)
{
    return s ? arena_strdup(&req->mem, s) : NULL;
}

chat_tool *chat_request_add_tool(chat_request *req, const char *name, const char *description,
                                 const char *schema_json)
{
    chat_tool *t = grow(&req->mem, req->tools, req->n_tools, &req->cap_tools, sizeof(*t));
    if (!t)
        return NULL;
    req->tools = t;
    chat_tool *tool = &req->tools[req->n_tools];
    tool->name = chat_strdup(req, name);
    tool->description = chat_strdup(req, description);
    tool->schema_json = chat_strdup(req, schema_json);
    if (!tool->name)
        return NULL;
    req->n_tools++;
    return tool;
}

size_t chat_request_assistant_turns(const chat_request *req)
{
    size_t n = 0;
    for (size_t i = 0; i < req->n_msgs; i++)
        n += req->msgs[i].role == CHAT_ROLE_ASSISTANT;
    return n;
}

bool chat_request_has_media(const chat_request *req)
{
    for (size_t i = 0; i < req->n_msgs; i++) {
        const chat_message *m = &req->msgs[i];
        for (size_t j = 0; j < m->n_blocks; j++) {
            const chat_block *b = &m->blocks[j];
            if (b->type == CHAT_BLOCK_IMAGE || b->type == CHAT_BLOCK_DOCUMENT || b->has_media)
                return true;
        }
    }
    return false;
}

const chat_tool *chat_request_find_tool(const chat_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_tools; i++) {
        if (!strcmp(req->tools[i].name, name))
            return &req->tools[i];
    }
    return NULL;
}

chat_request *chat_request_clone(const chat_request *src)
{
    chat_request *req = chat_request_new();
    if (!req)
        return NULL;
    bool ok = true;
    req->model = chat_strdup(req, src->model);
    req->system = chat_strdup(req, src->system);
    req->tool_choice = src->tool_choice;
    req->tool_choice_name = chat_strdup(req, src->tool_choice_name);
    req->parallel_tool_calls = src->parallel_tool_calls;
    req->max_tokens = src->max_tokens;
    req->has_temperature = src->has_temperature;
    req->temperature = src->temperature;
    req->has_top_p = src->has_top_p;
    req->top_p = src->top_p;
    req->top_k = src->top_k;
    req->stream = src->stream;
    if (src->n_stop) {
        req->stop = arena_alloc(&req->mem, src->n_stop * sizeof(char *));
        ok = req->stop != NULL;
        for (size_t i = 0; ok && i < src->n_stop; i++) {
            req->stop[i] = chat_strdup(req, src->stop[i]);
            ok = req->stop[i] != NULL;
        }
        req->n_stop = src->n_stop;
    }
    for (size_t i = 0; ok && i < src->n_tools; i++)
        ok = chat_request_add_tool(req, src->tools[i].name, src->tools[i].description,
                                   src->tools[i].schema_json) != NULL;
    for (size_t i = 0; ok && i < src->n_msgs; i++) {
        const chat_message *sm = &src->msgs[i];
        chat_message *m = chat_request_add_message(req, sm->role);
        ok = m != NULL;
        for (size_t j = 0; ok && j < sm->n_blocks; j++) {
            const chat_block *sb = &sm->blocks[j];
            chat_block *b = chat_message_add_block(req, m, sb->type);
            ok = b != NULL;
            if (!ok)
                break;
            b->text = chat_strdup(req, sb->text);
            b->id = chat_strdup(req, sb->id);
            b->name = chat_strdup(req, sb->name);
            b->args_json = chat_strdup(req, sb->args_json);
            b->is_error = sb->is_error;
            b->has_media = sb->has_media;
        }
    }
    if (!ok) {
        chat_request_free(req);
        return NULL;
    }
    return req;
}

const char *chat_stop_str(chat_stop stop)
{
    switch (stop) {
    case CHAT_STOP_END_TURN: return "end_turn";
    case CHAT_STOP_TOOL_USE: return "tool_use";
    case CHAT_STOP_MAX_TOKENS: return "max_tokens";
    case CHAT_STOP_STOP_SEQUENCE: return "stop_sequence";
    case CHAT_STOP_NONE: break;
    }
    return NULL;
}

chat_stop chat_stop_parse(const char *s)
{
    if (!s)
        return CHAT_STOP_NONE;
    if (!strcmp(s, "end_turn"))
        return CHAT_STOP_END_TURN;
    if (!strcmp(s, "tool_use"))
        return CHAT_STOP_TOOL_USE;
    if (!strcmp(s, "max_tokens"))
        return CHAT_STOP_MAX_TOKENS;
    if (!strcmp(s, "stop_sequence"))
        return CHAT_STOP_STOP_SEQUENCE;
    return CHAT_STOP_NONE;
}

void chat_usage_init(chat_usage *u)
{
    u->input_tokens = -1;
    u->output_tokens = -1;
    u->cache_read_input_tokens = 0;
    u->cache_creation_input_tokens = 0;
}

/* ---- answer accumulator ---- */

void chat_answer_init(chat_answer *a, size_t max_bytes)
{
    memset(a, 0, sizeof(*a));
    chat_usage_init(&a->usage);
    a->max_bytes = max_bytes;
}

void chat_answer_release(chat_answer *a)
{
    for (size_t i = 0; i < a->n_blocks; i++) {
        free(a->blocks[i].text);
        free(a->blocks[i].id);
        free(a->blocks[i].name);
    }
    free(a->blocks);
    free(a->id);
    free(a->model);
    free(a->stop_sequence);
    free(a->error_type);
    free(a->error_message);
    size_t max = a->max_bytes;
    chat_answer_init(a, max);
}

static chat_answer_block *answer_add(chat_answer *a, chat_block_type type)
{
    chat_answer_block *nb = realloc(a->blocks, (a->n_blocks + 1) * sizeof(*nb));
    if (!nb)
        return NULL;
    a->blocks = nb;
    chat_answer_block *b = &a->blocks[a->n_blocks++];
    memset(b, 0, sizeof(*b));
    b->type = type;
    return b;
}

static loco_status block_append(chat_answer *a, chat_answer_block *b, const char *p, size_t n)
{
    if (n > a->max_bytes || a->bytes > a->max_bytes - n)
        return LOCO_ERR_LIMIT;
    char *t = realloc(b->text, b->len + n + 1);
    if (!t)
        return LOCO_ERR_NOMEM;
    if (n)
        memcpy(t + b->len, p, n);
    b->len += n;
    t[b->len] = '\0';
    b->text = t;
    a->bytes += n;
    return LOCO_OK;
}

/* The tool-call block with event index idx: the idx-th TOOL_CALL block. */
static chat_answer_block *answer_call(chat_answer *a, int idx)
{
    int k = 0;
    for (size_t i = 0; i < a->n_blocks; i++) {
        if (a->blocks[i].type != CHAT_BLOCK_TOOL_CALL)
            continue;
        if (k++ == idx)
            return &a->blocks[i];
    }
    return NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

loco_status chat_answer_on_event(void *ctx, const chat_event *ev)
{
    chat_answer *a = ctx;
    chat_answer_block *b;
    switch (ev->type) {
    case CHAT_EV_MESSAGE_START:
        free(a->id);
        free(a->model);
        a->id = dup_or_null(ev->id);
        a->model = dup_or_null(ev->model);
        if (ev->usage.input_tokens >= 0)
            a->usage.input_tokens = ev->usage.input_tokens;
        if (ev->usage.cache_read_input_tokens)
            a->usage.cache_read_input_tokens = ev->usage.cache_read_input_tokens;
        if (ev->usage.cache_creation_input_tokens)
            a->usage.cache_creation_input_tokens = ev->usage.cache_creation_input_tokens;
        return LOCO_OK;
    case CHAT_EV_TEXT_DELTA:
    case CHAT_EV_THINKING_DELTA: {
        chat_block_type t = ev->type == CHAT_EV_TEXT_DELTA ? CHAT_BLOCK_TEXT : CHAT_BLOCK_THINKING;
        b = a->n_blocks ? &a->blocks[a->n_blocks - 1] : NULL;
        if (!b || b->type != t)
            b = answer_add(a, t);
        if (!b)
            return LOCO_ERR_NOMEM;
        return block_append(a, b, ev->text, ev->len);
    }
    case CHAT_EV_TOOL_CALL_START:
        b = answer_add(a, CHAT_BLOCK_TOOL_CALL);
        if (!b)
            return LOCO_ERR_NOMEM;
        b->id = dup_or_null(ev->id);
        b->name = dup_or_null(ev->name);
        if ((ev->id && !b->id) || (ev->name && !b->name))
            return LOCO_ERR_NOMEM;
        return block_append(a, b, "", 0);
    case CHAT_EV_TOOL_ARGS_DELTA:
        b = answer_call(a, ev->index);
        if (!b)
            return LOCO_ERR_INVALID;
        return block_append(a, b, ev->text, ev->len);
    case CHAT_EV_TOOL_CALL_END:
        return LOCO_OK;
    case CHAT_EV_MESSAGE_END:
        a->stop = ev->stop;
        free(a->stop_sequence);
        a->stop_sequence = dup_or_null(ev->stop_sequence);
        if (ev->usage.input_tokens >= 0)
            a->usage.input_tokens = ev->usage.input_tokens;
        if (ev->usage.output_tokens >= 0)
            a->usage.output_tokens = ev->usage.output_tokens;
        if (ev->usage.cache_read_input_tokens)
            a->usage.cache_read_input_tokens = ev->usage.cache_read_input_tokens;
        if (ev->usage.cache_creation_input_tokens)
            a->usage.cache_creation_input_tokens = ev->usage.cache_creation_input_tokens;
        return LOCO_OK;
    case CHAT_EV_ERROR:
        a->failed = true;
        free(a->error_type);
        free(a->error_message);
        a->error_type = dup_or_null(ev->error_type);
        a->error_message = ev->text ? str_ndup(ev->text, ev->len) : NULL;
        return LOCO_OK;
    case CHAT_EV_PING:
        return LOCO_OK;
    }
    return LOCO_OK;
}

loco_status chat_answer_replay(const chat_answer *a, chat_event_fn cb, void *ctx)
{
    chat_event ev;
    memset(&ev, 0, sizeof(ev));
    chat_usage_init(&ev.usage);
    ev.type = CHAT_EV_MESSAGE_START;
    ev.id = a->id;
    ev.model = a->model;
    ev.usage = a->usage;
    ev.usage.output_tokens = -1;
    loco_status rc = cb(ctx, &ev);
    int idx = 0;
    for (size_t i = 0; !rc && i < a->n_blocks; i++) {
        const chat_answer_block *b = &a->blocks[i];
        memset(&ev, 0, sizeof(ev));
        chat_usage_init(&ev.usage);
        if (b->type == CHAT_BLOCK_TOOL_CALL) {
            ev.type = CHAT_EV_TOOL_CALL_START;
            ev.index = idx;
            ev.id = b->id;
            ev.name = b->name;
            rc = cb(ctx, &ev);
            if (!rc && b->len) {
                ev.type = CHAT_EV_TOOL_ARGS_DELTA;
                ev.text = b->text;
                ev.len = b->len;
                rc = cb(ctx, &ev);
            }
            if (!rc) {
                ev.type = CHAT_EV_TOOL_CALL_END;
                ev.text = NULL;
                ev.len = 0;
                rc = cb(ctx, &ev);
            }
            idx++;
        } else {
            ev.type = b->type == CHAT_BLOCK_TEXT ? CHAT_EV_TEXT_DELTA : CHAT_EV_THINKING_DELTA;
            ev.text = b->text;
            ev.len = b->len;
            rc = cb(ctx, &ev);
        }
    }
    if (rc)
        return rc;
    memset(&ev, 0, sizeof(ev));
    if (a->failed) {
        ev.type = CHAT_EV_ERROR;
        ev.error_type = a->error_type ? a->error_type : "api_error";
        ev.text = a->error_message ? a->error_message : "";
        ev.len = strlen(ev.text);
        return cb(ctx, &ev);
    }
    ev.type = CHAT_EV_MESSAGE_END;
    ev.stop = a->stop;
    ev.stop_sequence = a->stop_sequence;
    ev.usage = a->usage;
    return cb(ctx, &ev);
}

size_t chat_answer_tool_calls(const chat_answer *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n_blocks; i++)
        n += a->blocks[i].type == CHAT_BLOCK_TOOL_CALL;
    return n;
}
