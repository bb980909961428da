/* fuzz_constrain.c: libFuzzer target for the tool-call constraint (engine/constrain.h). The
 * first byte picks a mode and a token budget. Then:
 *  - the rest, as bytes, goes through the byte matcher; whatever prefix it accepts, completed
 *    by constrain_completion, must be calls the qwen parser reads without repair, each naming
 *    a tool and fitting its required arguments and types (soundness);
 *  - the rest, as the arguments of the schema-less tool: the matcher accepts the whole call iff
 *    jansson parses them as an object, for inputs inside the documented restrictions (checked
 *    on jansson's compact re-serialisation; agreement on complete strings);
 *  - the rest, read two bytes per token over a 259-token byte-level vocabulary, is offered
 *    token by token: accept() agrees with allows(), mask() with allows() for every token, and
 *    a refused token changes nothing. A violation aborts (the fuzzer's signal). */
#include "base/common.h"

#include <jansson.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/str.h"
#include "chat/chat.h"
#include "engine/constrain.h"
#include "engine/tokenizer.h"
#include "eval/eval.h"

static const constrain_tool fz_tools[] = {
    {"Read", "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\","
             "\"minLength\":1},\"offset\":{\"type\":\"integer\",\"minimum\":0}},"
             "\"required\":[\"file_path\"]}"},
    {"Todo", "{\"type\":\"object\",\"properties\":{\"todos\":{\"type\":\"array\",\"items\":"
             "{\"type\":\"object\",\"properties\":{\"content\":{\"type\":\"string\"},"
             "\"status\":{\"enum\":[\"pending\",\"done\",1,null]},\"n\":{\"type\":\"number\"}},"
             "\"required\":[\"content\",\"status\"],\"additionalProperties\":false}},"
             "\"b\":{\"type\":[\"boolean\",\"null\"]}},\"required\":[\"todos\"]}"},
    {"Any", NULL},
};
#define FZ_ANY "Any"

static tok *fz_tok(void)
{
    static tok *t;
    static char forms[256][3];
    if (t)
        return t;
    const char *toks[259];
    int32_t types[259];
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        unsigned cp = self ? (unsigned)b : 256u + (unsigned)extra++;
        if (cp < 0x80) {
            forms[b][0] = (char)cp;
        } else {
            forms[b][0] = (char)(0xC0 | (cp >> 6));
            forms[b][1] = (char)(0x80 | (cp & 0x3F));
        }
        toks[b] = forms[b];
        types[b] = TOK_TYPE_NORMAL;
    }
    toks[256] = "<tool_call>";
    toks[257] = "</tool_call>";
    toks[258] = "<|im_end|>";
    types[256] = types[257] = TOK_TYPE_USER_DEFINED;
    types[258] = TOK_TYPE_CONTROL;
    tok_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.tokens = toks;
    cfg.types = types;
    cfg.n_tokens = 259;
    if (tok_new(&cfg, &t, NULL))
        abort();
    return t;
}

static const chat_tool *fz_chat_tools(void)
{
    static chat_tool ct[LOCO_ARRAY_LEN(fz_tools)];
    for (size_t i = 0; i < LOCO_ARRAY_LEN(fz_tools); i++)
        ct[i] = (chat_tool){fz_tools[i].name, NULL, fz_tools[i].schema_json};
    return ct;
}

/* text[0..n) holds `calls` calls, all valid for fz_tools. */
static void check_calls(const char *text, size_t n, size_t calls)
{
    eval_turn turn;
    eval_turn_init(&turn);
    if (eval_turn_add_text(&turn, text, n, NULL) || turn.n_calls != calls)
        abort();
    for (size_t i = 0; i < turn.n_calls; i++) {
        if (!eval_args_ok(&turn.calls[i], fz_chat_tools(), LOCO_ARRAY_LEN(fz_tools), NULL))
            abort();
    }
    eval_turn_release(&turn);
}

static constrain *fz_new(constrain_mode mode, long budget)
{
    static constrain_vocab *v;
    if (!v && constrain_vocab_new(fz_tok(), 0, &v, NULL))
        abort();
    constrain_opts o;
    memset(&o, 0, sizeof(o));
    o.mode = mode;
    o.max_tokens = budget;
    o.vocab = v;
    constrain *c = NULL;
    if (constrain_new(fz_tok(), fz_tools, LOCO_ARRAY_LEN(fz_tools), &o, &c, NULL))
        abort();
    return c;
}

/* One object per mode and slot, made once and reset per use (as a sequence reuses one). */
static constrain *fz_get(constrain_mode mode, int slot, long budget)
{
    static constrain *made[3][2];
    if (!made[mode][slot])
        made[mode][slot] = fz_new(mode, budget);
    constrain_reset(made[mode][slot], budget);
    return made[mode][slot];
}

static void bytes_sound(const uint8_t *d, size_t n, constrain_mode mode)
{
    constrain *c = fz_get(mode, 0, 0);
    size_t k = constrain_accept_bytes(c, (const char *)d, n);
    if (k > n)
        abort();
    size_t fl;
    const char *fin = constrain_completion(c, &fl);
    buf all;
    buf_init(&all, BUF_UNLIMITED);
    buf_append(&all, d, k);
    buf_append(&all, fin, fl);
    constrain *e = fz_get(mode, 1, 0);
    if (constrain_accept_bytes(e, all.data ? all.data : "", all.len) != all.len ||
        constrain_in_call(e))
        abort();
    /* text outside calls may hold invalid UTF-8: the parser sees what the engine shows */
    if (str_utf8_valid(all.data ? all.data : "", all.len))
        check_calls(all.data ? all.data : "", all.len, constrain_calls(e));
    buf_release(&all);
}

static size_t json_depth(const json_t *v)
{
    size_t d = 0, i;
    const char *k;
    json_t *x;
    if (json_is_object(v)) {
        json_object_foreach ((json_t *)v, k, x) {
            size_t e = json_depth(x);
            d = e > d ? e : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach (v, i, x) {
            size_t e = json_depth(x);
            d = e > d ? e : d;
        }
        return d + 1;
    }
    return 0;
}

static bool big_real(const json_t *v)
{
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_real(v))
        return json_real_value(v) >= 1e300 || json_real_value(v) <= -1e300;
    json_object_foreach ((json_t *)v, k, x) {
        if (big_real(x))
            return true;
    }
    if (json_is_array(v)) {
        json_array_foreach (v, i, x) {
            if (big_real(x))
                return true;
        }
    }
    return false;
}

/* 1 when the whole call with args[0..n) is accepted. */
static int call_accepted(const char *args, size_t n)
{
    buf s;
    buf_init(&s, BUF_UNLIMITED);
    buf_appends(&s, "<tool_call>\n{\"name\": \"" FZ_ANY "\", \"arguments\": ");
    buf_append(&s, args, n);
    buf_appends(&s, "}\n</tool_call>");
    constrain *c = fz_get(CONSTRAIN_AUTO, 1, 0);
    int ok = constrain_accept_bytes(c, s.data, s.len) == s.len && !constrain_in_call(c) &&
             constrain_calls(c) == 1;
    buf_release(&s);
    return ok;
}

static void agreement(const uint8_t *d, size_t n)
{
    json_error_t je;
    json_t *v = json_loadb((const char *)d, n, 0, &je);
    if (call_accepted((const char *)d, n) && !json_is_object(v))
        abort(); /* accepted something jansson refuses */
    if (json_is_object(v) && json_depth(v) <= CONSTRAIN_MAX_DEPTH - 2 && !big_real(v)) {
        char *compact = json_dumps(v, JSON_COMPACT);
        if (compact && !strstr(compact, "</tool_call>") && !call_accepted(compact, strlen(compact)))
            abort(); /* refused a valid object inside the restrictions */
        free(compact);
    }
    json_decref(v);
}

static void tokens(const uint8_t *d, size_t n, constrain_mode mode, long budget)
{
    constrain *c = fz_get(mode, 0, budget);
    for (size_t i = 0; i + 1 < n; i += 2) {
        int32_t id = (int32_t)(((unsigned)d[i] << 8 | d[i + 1]) % 260) - 1; /* -1 too */
        bool a = constrain_allows(c, id);
        if (i % 16 == 0) {
            size_t m;
            const uint64_t *mask = constrain_mask(c, &m);
            size_t k = 0;
            for (int32_t t = 0; t < 259; t++) {
                bool b = mask[t >> 6] >> (t & 63) & 1;
                if (b != constrain_allows(c, t))
                    abort();
                k += b;
            }
            if (k != m || (!m && constrain_in_call(c)))
                abort();
        }
        size_t fl0;
        constrain_completion(c, &fl0);
        if ((constrain_accept(c, id) == LOCO_OK) != a)
            abort();
        size_t fl1;
        constrain_completion(c, &fl1);
        if (!a && fl0 != fl1)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    constrain_mode mode = data[0] % 3 == 0   ? CONSTRAIN_FORCE
                          : data[0] % 3 == 1 ? CONSTRAIN_AUTO
                                             : CONSTRAIN_NO_CALLS;
    long budget = (data[0] >> 2) ? (long)(data[0] >> 2) : 0;
    bytes_sound(data + 1, size - 1, mode);
    agreement(data + 1, size - 1);
    tokens(data + 1, size - 1, mode, budget);
    return 0;
}
