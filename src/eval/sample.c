/* sample.c: one line of a samples file ({"id","messages","tools"?,"label"}) or of a
 * predictions file ({"id","output"}), its form detected per line and read with the chat
 * codecs. Part of eval/. */
#include "base/common.h"

#include "base/json.h"
#include "chat/anthropic.h"
#include "chat/openai.h"
#include "eval/eval.h"

const char *eval_form_str(eval_form f)
{
    switch (f) {
    case EVAL_FORM_ANTHROPIC:
        return "anthropic";
    case EVAL_FORM_OPENAI:
        return "openai";
    default:
        return "hf";
    }
}

/* The id as text: a non-empty string, or an integer's decimal digits. NULL (err set) else. */
static char *read_id(const json_t *root, loco_err *err)
{
    const json_t *id = json_object_get(root, "id");
    char num[32];
    const char *s = NULL;
    if (json_is_integer(id)) {
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(id));
        s = num;
    } else if (json_is_string(id) && json_string_length(id) &&
               json_string_length(id) <= EVAL_MAX_ID_BYTES &&
               strlen(json_string_value(id)) == json_string_length(id)) {
        s = json_string_value(id);
    }
    if (!s) {
        loco_err_set(err, LOCO_ERR_INVALID,
                     "no \"id\" (a non-empty string of at most %d bytes, or an integer)",
                     EVAL_MAX_ID_BYTES);
        return NULL;
    }
    char *r = strdup(s);
    if (!r)
        loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    return r;
}

/* Parses line[0..n) as a JSON object. */
static json_t *parse_line(const char *line, size_t n, loco_err *err)
{
    loco_err perr;
    loco_err_clear(&perr);
    json_t *root = json_parse(line, n, &perr);
    if (!root) {
        /* a JSONL line is one line: name the column only */
        int col = 0;
        const char *why = strstr(perr.msg, "): ");
        if (why && sscanf(perr.msg, "invalid JSON at line %*d column %d", &col) == 1)
            loco_err_set(err, LOCO_ERR_INVALID, "not JSON (column %d): %s", col, why + 3);
        else
            loco_err_set(err, LOCO_ERR_INVALID, "not JSON: %s", perr.msg);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        loco_err_set(err, LOCO_ERR_INVALID, "not a JSON object");
        return NULL;
    }
    return root;
}

/* ---- form detection ---- */

static bool msg_is_openai(const json_t *m)
{
    const char *role = json_get_str(m, "role");
    const json_t *tc = json_object_get(m, "tool_calls");
    const json_t *fc = json_object_get(m, "function_call");
    return (tc && !json_is_null(tc)) || (fc && !json_is_null(fc)) ||
           (role && (!strcmp(role, "tool") || !strcmp(role, "function")));
}

static bool msg_has_blocks(const json_t *m)
{
    return json_is_array(m) || json_is_array(json_object_get(m, "content"));
}

/* OpenAI when any message or the label carries tool_calls or a role "tool"; else Anthropic
 * when any content is an array of blocks; else HF (string contents, <tool_call> text). */
static eval_form detect_form(const json_t *messages, const json_t *label)
{
    bool openai = msg_is_openai(label), blocks = msg_has_blocks(label);
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m) {
        openai |= msg_is_openai(m);
        blocks |= msg_has_blocks(m);
    }
    if (openai)
        return EVAL_FORM_OPENAI;
    return blocks ? EVAL_FORM_ANTHROPIC : EVAL_FORM_HF;
}

/* ---- tools ---- */

/* OpenAI {"type":"function","function":{"name","parameters"}} or Anthropic / bare
 * {"name","input_schema"|"parameters"}. */
static loco_status add_tool(chat_request *req, const json_t *t, size_t i, loco_err *err)
{
    const json_t *fn = json_object_get(t, "function");
    const json_t *src = json_is_object(fn) ? fn : t;
    const char *name = json_get_str(src, "name");
    const json_t *schema = json_object_get(src, "input_schema");
    if (!schema)
        schema = json_object_get(src, "parameters");
    if (!name || !*name)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "tools[%zu]: expected {\"name\", \"input_schema\"} or "
                            "{\"type\": \"function\", \"function\": {\"name\", \"parameters\"}}",
                            i);
    char *text = json_is_object(schema) ? json_to_string(schema) : NULL;
    if (json_is_object(schema) && !text)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    chat_tool *ct = chat_request_add_tool(req, name, json_get_str(src, "description"), text);
    free(text);
    return ct ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
}

static loco_status add_tools(chat_request *req, const json_t *tools, loco_err *err)
{
    if (!tools || json_is_null(tools))
        return LOCO_OK;
    if (!json_is_array(tools))
        return loco_err_set(err, LOCO_ERR_INVALID, "\"tools\" is not an array");
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        loco_status rc = add_tool(req, t, i, err);
        if (rc)
            return rc;
    }
    return LOCO_OK;
}

/* ---- the conversation ---- */

static loco_status parse_messages(const json_t *root, eval_form form, chat_request **out,
                                  loco_err *err)
{
    json_t *body = json_pack("{s:s, s:i, s:O}", "model", "eval", "max_tokens", 1024, "messages",
                             json_object_get(root, "messages"));
    const json_t *system = json_object_get(root, "system");
    if (body && form == EVAL_FORM_ANTHROPIC && system && !json_is_null(system) &&
        json_object_set(body, "system", (json_t *)system)) {
        json_decref(body);
        body = NULL;
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    loco_status rc = form == EVAL_FORM_ANTHROPIC
                         ? chat_anth_parse_request(text, strlen(text), out, err)
                         : chat_oai_parse_request(text, strlen(text), out, err);
    free(text);
    if (rc == LOCO_ERR_INVALID)
        loco_err_wrap(err, "%s form", form == EVAL_FORM_ANTHROPIC ? "Anthropic" : "OpenAI");
    return rc;
}

void eval_sample_release(eval_sample *s)
{
    free(s->id);
    chat_request_free(s->req);
    eval_turn_release(&s->label);
    memset(s, 0, sizeof(*s));
}

static loco_status sample_fill(const json_t *root, eval_sample *out, loco_err *err)
{
    out->id = read_id(root, err);
    if (!out->id)
        return err ? err->code : LOCO_ERR_INVALID;
    const json_t *messages = json_object_get(root, "messages");
    const json_t *label = json_object_get(root, "label");
    if (!json_is_array(messages))
        return loco_err_set(err, LOCO_ERR_INVALID, "no \"messages\" array");
    if (!label || json_is_null(label))
        return loco_err_set(err, LOCO_ERR_INVALID, "no \"label\"");
    out->form = detect_form(messages, label);
    loco_status rc = parse_messages(root, out->form, &out->req, err);
    if (!rc)
        rc = add_tools(out->req, json_object_get(root, "tools"), err);
    if (!rc) {
        rc = eval_turn_add_json(&out->label, label, err);
        if (rc == LOCO_ERR_INVALID || rc == LOCO_ERR_LIMIT)
            loco_err_wrap(err, "label");
    }
    return rc;
}

loco_status eval_sample_parse(const char *line, size_t n, eval_sample *out, loco_err *err)
{
    memset(out, 0, sizeof(*out));
    loco_err_clear(err);
    json_t *root = parse_line(line, n, err);
    if (!root)
        return err ? err->code : LOCO_ERR_INVALID;
    loco_status rc = sample_fill(root, out, err);
    json_decref(root);
    if (rc)
        eval_sample_release(out);
    return rc;
}

void eval_prediction_release(eval_prediction *p)
{
    free(p->id);
    eval_turn_release(&p->turn);
    memset(p, 0, sizeof(*p));
}

loco_status eval_prediction_parse(const char *line, size_t n, eval_prediction *out,
                                  loco_err *err)
{
    memset(out, 0, sizeof(*out));
    loco_err_clear(err);
    json_t *root = parse_line(line, n, err);
    if (!root)
        return err ? err->code : LOCO_ERR_INVALID;
    loco_status rc = LOCO_OK;
    const json_t *output = json_object_get(root, "output");
    out->id = read_id(root, err);
    if (!out->id)
        rc = err ? err->code : LOCO_ERR_INVALID;
    else if (!output || json_is_null(output))
        rc = loco_err_set(err, LOCO_ERR_INVALID, "no \"output\"");
    else {
        rc = eval_turn_add_json(&out->turn, output, err);
        if (rc == LOCO_ERR_INVALID || rc == LOCO_ERR_LIMIT)
            loco_err_wrap(err, "output");
    }
    json_decref(root);
    if (rc)
        eval_prediction_release(out);
    return rc;
}
