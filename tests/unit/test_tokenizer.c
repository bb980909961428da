/* test_tokenizer.c: unit tests of engine/tokenizer: BPE on a tiny hand-made vocab (exact ids),
 * the pre-tokenizer (fixed cases and a differential test against the qwen2 regex run by PCRE2),
 * NFC, special tokens, streaming UTF-8 decoding, round trips, limits, and the real Qwen3
 * tokenizer.json when LOCO_QWEN3_TOKENIZER points at it. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/file.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

/* ---------------------------------------------------------------- the tiny vocab */

enum { ID_HE = 256, ID_LL, ID_HELL, ID_HELLO, ID_AA, ID_BC, ID_AB, ID_GW, ID_IM_END, ID_THINK,
       ID_THINKER, ID_PAD, N_TINY };

/* GPT-2 bytes_to_unicode, written independently of the tokenizer. */
static void byte_char(int b, char out[3])
{
    int cp = b, extra = 0;
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    if (!printable) {
        for (int k = 0; k < b; k++)
            if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || k >= 174))
                extra++;
        cp = 256 + extra;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

typedef struct {
    char bytes[256][3];
    const char *tokens[N_TINY];
    int32_t types[N_TINY];
} tiny_vocab;

static const char *const tiny_merges[] = {"h e", "l l", "he ll", "hell o", "a a", "b c", "a b",
                                          "\xC4\xA0 w"};

static tiny_vocab tiny; /* test-only storage; tok_new copies everything */

static void tiny_fill(void)
{
    for (int b = 0; b < 256; b++) {
        byte_char(b, tiny.bytes[b]);
        tiny.tokens[b] = tiny.bytes[b];
        tiny.types[b] = TOK_TYPE_NORMAL;
    }
    const char *extra[] = {"he", "ll", "hell", "hello", "aa", "bc", "ab", "\xC4\xA0w",
                           "<|im_end|>", "<think>", "<thinker>", "[PAD]"};
    const int32_t extra_types[] = {1, 1, 1, 1, 1, 1, 1, 1, TOK_TYPE_CONTROL,
                                   TOK_TYPE_USER_DEFINED, TOK_TYPE_USER_DEFINED, TOK_TYPE_UNUSED};
    for (int i = 0; i < N_TINY - 256; i++) {
        tiny.tokens[256 + i] = extra[i];
        tiny.types[256 + i] = extra_types[i];
    }
}

static tok *tiny_new(bool nfc)
{
    tiny_fill();
    tiny_vocab v = tiny;
    tok_config cfg = {.tokens = v.tokens, .types = v.types, .n_tokens = N_TINY,
                      .merges = tiny_merges, .n_merges = LOCO_ARRAY_LEN(tiny_merges), .nfc = nfc};
    tok *t = NULL;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(tok_new(&cfg, &t, &err), LOCO_OK);
    return t;
}

static void expect_ids(const tok *t, const char *text, unsigned flags, const int32_t *want,
                       size_t n_want)
{
    tok_ids ids;
    tok_ids_init(&ids, 1 << 20);
    assert_int_equal(tok_encode(t, text, strlen(text), flags, &ids, NULL), LOCO_OK);
    if (ids.len != n_want) {
        for (size_t i = 0; i < ids.len; i++)
            fprintf(stderr, "%" PRId32 " ", ids.ids[i]);
        fprintf(stderr, "<- got for '%s'\n", text);
    }
    assert_int_equal(ids.len, n_want);
    for (size_t i = 0; i < n_want; i++)
        assert_int_equal(ids.ids[i], want[i]);
    tok_ids_release(&ids);
}

#define EXPECT_IDS(t, text, flags, ...)                                                       \
    do {                                                                                      \
        const int32_t want_[] = {__VA_ARGS__};                                                \
        expect_ids(t, text, flags, want_, LOCO_ARRAY_LEN(want_));                             \
    } while (0)

static void test_tok_bpe_tiny(void **state)
{
    (void)state;
    tok *t = tiny_new(false);
    EXPECT_IDS(t, "hello", 0, ID_HELLO);
    EXPECT_IDS(t, "hellohe", 0, ID_HELLO, ID_HE);
    EXPECT_IDS(t, "aaa", 0, ID_AA, 'a');         /* equal ranks: leftmost first */
    EXPECT_IDS(t, "aaaa", 0, ID_AA, ID_AA);
    EXPECT_IDS(t, "abc", 0, 'a', ID_BC);         /* "b c" (rank 5) beats "a b" (rank 6) */
    EXPECT_IDS(t, "abab", 0, ID_AB, ID_AB);
    EXPECT_IDS(t, "hello world", 0, ID_HELLO, ID_GW, 'o', 'r', 'l', 'd');
    EXPECT_IDS(t, "x", 0, 'x');
    EXPECT_IDS(t, "\n", 0, '\n');
    EXPECT_IDS(t, "it's", 0, 'i', 't', '\'', 's');
    EXPECT_IDS(t, "42", 0, '4', '2');            /* one digit per pre-token */
    assert_int_equal(tok_vocab_size(t), N_TINY);
    assert_int_equal(tok_find(t, "hello", 5), ID_HELLO);
    assert_int_equal(tok_find(t, "<think>", 7), ID_THINK);
    assert_int_equal(tok_find(t, "nope", 4), -1);
    assert_int_equal(tok_token_type(t, ID_IM_END), TOK_TYPE_CONTROL);
    assert_int_equal(tok_token_type(t, N_TINY), TOK_TYPE_UNDEFINED);
    size_t len;
    const char *p = tok_token_bytes(t, ID_GW, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(p, " w", 2);
    p = tok_token_bytes(t, 0xA0, &len); /* byte token: one raw byte */
    assert_int_equal(len, 1);
    assert_int_equal((unsigned char)p[0], 0xA0);
    assert_null(tok_token_bytes(t, -1, &len));
    tok_free(t);
}

static void test_tok_special(void **state)
{
    (void)state;
    tok *t = tiny_new(false);
    /* default: plain text, added tokens are not recognised */
    tok_ids ids;
    tok_ids_init(&ids, 1000);
    const char *text = "a<|im_end|><think>";
    assert_int_equal(tok_encode(t, text, strlen(text), 0, &ids, NULL), LOCO_OK);
    for (size_t i = 0; i < ids.len; i++)
        assert_true(ids.ids[i] < 256 || ids.ids[i] < ID_IM_END);
    tok_ids_release(&ids);
    EXPECT_IDS(t, "<think>", 0, '<', 't', 'h', 'i', 'n', 'k', '>');
    /* parse special: leftmost, then longest match; the rest is BPE-encoded */
    EXPECT_IDS(t, "a<|im_end|><think>", TOK_PARSE_SPECIAL, 'a', ID_IM_END, ID_THINK);
    EXPECT_IDS(t, "<thinker>hello<think", TOK_PARSE_SPECIAL, ID_THINKER, ID_HELLO, '<', 't', 'h',
               'i', 'n', 'k');
    EXPECT_IDS(t, "<<|im_end|>>", TOK_PARSE_SPECIAL, '<', ID_IM_END, '>');
    EXPECT_IDS(t, "[PAD]", TOK_PARSE_SPECIAL, '[', 'P', 'A', 'D', ']'); /* UNUSED: never matched */
    tok_free(t);
}

/* ---------------------------------------------------------------- pre-tokenizer */

static void collect(const char *piece, size_t len, void *ctx)
{
    buf *b = ctx;
    assert_int_equal(buf_append(b, piece, len), LOCO_OK);
    assert_int_equal(buf_appendc(b, '|'), LOCO_OK);
}

static void expect_split(const char *text, const char *want)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    tok_pretokenize(text, strlen(text), collect, &b);
    assert_string_equal(buf_str(&b), want);
    buf_release(&b);
}

static void test_tok_pretokenize(void **state)
{
    (void)state;
    expect_split("Hello world", "Hello| world|");
    expect_split("I'm you're THEY'LL 'Re", "I|'m| you|'re| THEY|'LL| '|Re|");
    expect_split("x   y", "x|  | y|");
    expect_split("x \t\ty", "x| \t|\ty|");
    expect_split("a\n\n  b", "a|\n\n| | b|"); /* \s*[\r\n]+, \s+(?!\S), then " b" */
    expect_split("a\r\n\r\n", "a|\r\n\r\n|");
    expect_split("end   ", "end|   |");
    expect_split("2024-01-02", "2|0|2|4|-|0|1|-|0|2|");
    expect_split(" ?!\n\nx", " ?!\n\n|x|");
    expect_split("(hello)", "(hello|)|");
    expect_split("\t\tword", "\t|\tword|");
    expect_split("caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87", "caf\xC3\xA9| \xE4\xB8\xAD\xE6\x96\x87|");
    expect_split("\xFF\xFEok", "\xFF\xFE|ok|"); /* invalid bytes group like punctuation */
    expect_split("x\xC3", "x|\xC3|");
}

/* Splits with PCRE2 running the qwen2 regex (case-insensitive group spelled out in ASCII, as
 * the reference implementations do). */
static void pcre_split(pcre2_code *re, pcre2_match_data *md, const char *text, size_t n, buf *out)
{
    size_t pos = 0;
    while (pos < n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)text, n, pos, 0, md, NULL);
        assert_true(rc > 0);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        assert_int_equal(ov[0], pos); /* every character is matched by some alternative */
        assert_true(ov[1] > ov[0]);
        assert_int_equal(buf_append(out, text + ov[0], ov[1] - ov[0]), LOCO_OK);
        assert_int_equal(buf_appendc(out, '|'), LOCO_OK);
        pos = ov[1];
    }
}

static void test_tok_pretokenize_vs_pcre2(void **state)
{
    (void)state;
    const char *pattern = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|"
                          "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                          "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    int errc;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &errc, &erroff, NULL);
    assert_non_null(re);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    /* characters whose classes agree between PCRE2's Unicode tables and the reference's */
    static const char *const alpha[] = {
        "a", "Z", "k", "\xC3\xA9", "\xD0\xB6", "\xE4\xB8\xAD", "7", "\xD9\xA3", "\xC2\xB2", " ",
        "  ", "\t", "\n", "\r", "\r\n", "\v", "\f", "'", "'s", "'LL", "'re", "'D", ".", "!",
        "(", "\xF0\x9F\x98\x80", "\xC2\xA0", "\xE3\x80\x80", "-", "_", "\"", "\xCA\xBC",
        "\xE2\x80\x89", "\xCC\x81", "\xE2\x85\xAB"};
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    buf text, a, b;
    buf_init(&text, BUF_UNLIMITED);
    buf_init(&a, BUF_UNLIMITED);
    buf_init(&b, BUF_UNLIMITED);
    for (int iter = 0; iter < 20000; iter++) {
        buf_reset(&text);
        buf_reset(&a);
        buf_reset(&b);
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int len = 1 + (int)((seed >> 33) % 14);
        for (int k = 0; k < len; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            assert_int_equal(buf_appends(&text, alpha[(seed >> 33) % LOCO_ARRAY_LEN(alpha)]), LOCO_OK);
        }
        tok_pretokenize(text.data, text.len, collect, &a);
        pcre_split(re, md, text.data, text.len, &b);
        if (strcmp(buf_str(&a), buf_str(&b)) != 0)
            fprintf(stderr, "input '%s'\n  ours '%s'\n  pcre '%s'\n", text.data, a.data, b.data);
        assert_string_equal(buf_str(&a), buf_str(&b));
    }
    buf_release(&text);
    buf_release(&a);
    buf_release(&b);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
}

/* ---------------------------------------------------------------- NFC */

static void expect_nfc(const char *in, const char *want)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(tok_nfc(in, strlen(in), &b), LOCO_OK);
    assert_string_equal(buf_str(&b), want);
    buf_release(&b);
}

static void test_tok_nfc(void **state)
{
    (void)state;
    expect_nfc("plain ascii", "plain ascii");
    expect_nfc("e\xCC\x81", "\xC3\xA9");                                  /* e + U+0301 -> é */
    expect_nfc("caf\xC3\xA9", "caf\xC3\xA9");                             /* already NFC */
    expect_nfc("\xE2\x84\xAB", "\xC3\x85");                               /* Angstrom -> Å */
    expect_nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81");   /* jamo -> 각 */
    expect_nfc("a\xCC\x82\xCC\xA3", "\xE1\xBA\xAD");                      /* reordered -> ậ */
    expect_nfc("a\xCC\xA3\xCC\x82", "\xE1\xBA\xAD");
    expect_nfc("\xE0\xA5\x98", "\xE0\xA4\x95\xE0\xA4\xBC");               /* U+0958 excluded */
    expect_nfc("\xEF\xA4\x80", "\xE8\xB1\x88");                           /* U+F900 singleton */
    expect_nfc("\xFF" "e\xCC\x81\xC3", "\xFF\xC3\xA9\xC3");               /* invalid bytes kept */
    expect_nfc("\xCC\x81x", "\xCC\x81x");                                 /* leading mark */
    /* a long run of marks (counting-sort path) */
    buf in, want;
    buf_init(&in, BUF_UNLIMITED);
    buf_init(&want, BUF_UNLIMITED);
    assert_int_equal(buf_appends(&in, "a"), LOCO_OK);
    assert_int_equal(buf_appends(&want, "\xE1\xBA\xA1"), LOCO_OK); /* a + U+0323 -> ạ */
    for (int i = 0; i < 20; i++)
        assert_int_equal(buf_appends(&in, "\xCC\x81\xCC\xA3"), LOCO_OK); /* 230, 220 */
    for (int i = 0; i < 19; i++)
        assert_int_equal(buf_appends(&want, "\xCC\xA3"), LOCO_OK);
    for (int i = 0; i < 20; i++)
        assert_int_equal(buf_appends(&want, "\xCC\x81"), LOCO_OK);
    expect_nfc(in.data, want.data);
    buf_release(&in);
    buf_release(&want);
}

/* ---------------------------------------------------------------- decoding */

static void test_tok_stream(void **state)
{
    (void)state;
    tok *t = tiny_new(false);
    tok_stream s;
    tok_stream_init(&s);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    /* é as two byte tokens: nothing until the sequence completes */
    assert_int_equal(tok_stream_push(&s, t, 0xC3, &out, NULL), LOCO_OK);
    assert_int_equal(out.len, 0);
    assert_int_equal(tok_stream_push(&s, t, 0xA9, &out, NULL), LOCO_OK);
    assert_string_equal(buf_str(&out), "\xC3\xA9");
    /* a 4-byte emoji over three tokens */
    buf_reset(&out);
    assert_int_equal(tok_stream_push(&s, t, 0xF0, &out, NULL), LOCO_OK);
    assert_int_equal(tok_stream_push(&s, t, 0x9F, &out, NULL), LOCO_OK);
    assert_int_equal(tok_stream_push(&s, t, 0x98, &out, NULL), LOCO_OK);
    assert_int_equal(out.len, 0);
    assert_int_equal(tok_stream_push(&s, t, 0x80, &out, NULL), LOCO_OK);
    assert_string_equal(buf_str(&out), "\xF0\x9F\x98\x80");
    /* merged tokens and added tokens give their text */
    buf_reset(&out);
    assert_int_equal(tok_stream_push(&s, t, ID_HELLO, &out, NULL), LOCO_OK);
    assert_int_equal(tok_stream_push(&s, t, ID_IM_END, &out, NULL), LOCO_OK);
    assert_string_equal(buf_str(&out), "hello<|im_end|>");
    /* impossible sequences become U+FFFD as soon as they cannot complete */
    buf_reset(&out);
    assert_int_equal(tok_stream_push_bytes(&s, "\xFF" "a\xC3" "b\xE0\x80" "c", 7, &out), LOCO_OK);
    assert_string_equal(buf_str(&out), "\xEF\xBF\xBD" "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD" "c");
    /* a held incomplete tail becomes U+FFFD at flush only */
    buf_reset(&out);
    assert_int_equal(tok_stream_push_bytes(&s, "x\xE2\x82", 3, &out), LOCO_OK);
    assert_string_equal(buf_str(&out), "x");
    assert_int_equal(tok_stream_flush(&s, &out), LOCO_OK);
    assert_string_equal(buf_str(&out), "x\xEF\xBF\xBD");
    assert_int_equal(tok_stream_flush(&s, &out), LOCO_OK); /* nothing held any more */
    assert_string_equal(buf_str(&out), "x\xEF\xBF\xBD");
    /* surrogates and overlongs are invalid */
    buf_reset(&out);
    assert_int_equal(tok_stream_push_bytes(&s, "\xED\xA0\x80\xC0\xAF", 5, &out), LOCO_OK);
    assert_int_equal(out.len, 5 * 3);
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(tok_stream_push(&s, t, N_TINY, &out, &err), LOCO_ERR_INVALID);
    assert_int_equal(tok_decode_token(t, -3, &out, &err), LOCO_ERR_INVALID);
    buf_release(&out);
    tok_free(t);
}

static void test_tok_roundtrip(void **state)
{
    (void)state;
    tok *t = tiny_new(false);
    uint64_t seed = 42;
    unsigned char text[300];
    tok_ids ids;
    tok_ids_init(&ids, 1 << 20);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    for (int iter = 0; iter < 3000; iter++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t n = (seed >> 33) % sizeof(text);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            unsigned r = (unsigned)(seed >> 40);
            static const char pool[] = "helo wab<|>thinkr'\n\t 7";
            text[i] = (r & 3) ? (unsigned char)pool[r % (sizeof(pool) - 1)] : (unsigned char)(r >> 8);
        }
        for (unsigned flags = 0; flags <= TOK_PARSE_SPECIAL; flags++) {
            ids.len = 0;
            buf_reset(&out);
            assert_int_equal(tok_encode(t, (const char *)text, n, flags, &ids, NULL), LOCO_OK);
            assert_int_equal(tok_decode(t, ids.ids, ids.len, &out, NULL), LOCO_OK);
            assert_int_equal(out.len, n);
            assert_memory_equal(out.data ? out.data : "", text, n);
        }
    }
    buf_release(&out);
    tok_ids_release(&ids);
    tok_free(t);
}

static void test_tok_limits_and_errors(void **state)
{
    (void)state;
    tok *t = tiny_new(true);
    tok_ids ids;
    tok_ids_init(&ids, 2);
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(tok_encode(t, "a b c d", 7, 0, &ids, &err), LOCO_ERR_LIMIT);
    assert_int_equal(ids.len, 2);
    assert_non_null(strstr(err.msg, "2 tokens"));
    tok_ids_release(&ids);
    tok_free(t);

    /* a vocab without every byte cannot round-trip: refused */
    const char *tokens[] = {"a", "b"};
    tok_config cfg = {.tokens = tokens, .n_tokens = 2};
    tok *bad = NULL;
    assert_int_equal(tok_new(&cfg, &bad, &err), LOCO_ERR_INVALID);
    assert_null(bad);
    assert_non_null(strstr(err.msg, "byte 0x00"));
    cfg.n_tokens = 0;
    assert_int_equal(tok_new(&cfg, &bad, &err), LOCO_ERR_INVALID);
    tok_free(NULL);
}

/* ---------------------------------------------------------------- GGUF metadata */

static gguf *tiny_gguf(const char *pre, bool with_types, buf *mem)
{
    tiny_fill();
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4, NULL), LOCO_OK);
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, strlen(pre), NULL), LOCO_OK);
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tiny.tokens, NULL,
                                             N_TINY, NULL), LOCO_OK);
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", tiny_merges, NULL,
                                             LOCO_ARRAY_LEN(tiny_merges), NULL), LOCO_OK);
    if (with_types)
        assert_int_equal(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32,
                                             tiny.types, N_TINY, NULL), LOCO_OK);
    buf_init(mem, BUF_UNLIMITED);
    assert_int_equal(gguf_writer_write_buf(w, mem, NULL), LOCO_OK);
    gguf_writer_free(w);
    gguf *g = NULL;
    assert_int_equal(gguf_open_memory(mem->data, mem->len, "tiny.gguf", &g, NULL), LOCO_OK);
    return g;
}

static void test_tok_from_gguf(void **state)
{
    (void)state;
    buf mem;
    gguf *g = tiny_gguf("qwen2", true, &mem);
    tok *t = NULL;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(tok_from_gguf(g, true, &t, &err), LOCO_OK);
    gguf_close(g);
    buf_release(&mem);
    EXPECT_IDS(t, "hello world", 0, ID_HELLO, ID_GW, 'o', 'r', 'l', 'd');
    EXPECT_IDS(t, "<thinker><|im_end|>", TOK_PARSE_SPECIAL, ID_THINKER, ID_IM_END);
    assert_int_equal(tok_token_type(t, ID_THINK), TOK_TYPE_USER_DEFINED);
    tok_free(t);

    g = tiny_gguf("llama3", false, &mem);
    assert_int_equal(tok_from_gguf(g, true, &t, &err), LOCO_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "'llama3'"));
    assert_null(t);
    gguf_close(g);
    buf_release(&mem);
}

/* ---------------------------------------------------------------- the real tokenizer.json */

static void test_tok_qwen3_json(void **state)
{
    (void)state;
    const char *path = getenv("LOCO_QWEN3_TOKENIZER");
    if (!path || !*path) {
        skip();
        return;
    }
    buf js;
    buf_init(&js, (size_t)1 << 28);
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(file_read_all(path, &js, &err), LOCO_OK);
    tok_vocab v;
    assert_int_equal(tok_vocab_from_hf_json(js.data, js.len, &v, &err), LOCO_OK);
    buf_release(&js);
    assert_int_equal(v.n_tokens, 151669);
    assert_true(v.nfc);
    tok_config cfg;
    tok_vocab_config(&v, &cfg);
    tok *t = NULL;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(tok_new(&cfg, &t, &err), LOCO_OK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    print_message("tok_new on the Qwen3 vocab: %.1f ms\n", ms);
    tok_vocab_release(&v);
    EXPECT_IDS(t, "Hello world", 0, 9707, 1879);
    EXPECT_IDS(t, "<|im_end|>", TOK_PARSE_SPECIAL, 151645);
    EXPECT_IDS(t, "<tool_call>\n", TOK_PARSE_SPECIAL, 151657, 198);
    EXPECT_IDS(t, "<|im_end|>", 0, 27, 91, 318, 6213, 91, 29);
    assert_int_equal(tok_token_type(t, 151644), TOK_TYPE_CONTROL);
    assert_int_equal(tok_token_type(t, 151667), TOK_TYPE_USER_DEFINED);
    assert_int_equal(tok_find(t, "\xC4\xA0the", 5), 279);
    tok_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tok_bpe_tiny),
        cmocka_unit_test(test_tok_special),
        cmocka_unit_test(test_tok_pretokenize),
        cmocka_unit_test(test_tok_pretokenize_vs_pcre2),
        cmocka_unit_test(test_tok_nfc),
        cmocka_unit_test(test_tok_stream),
        cmocka_unit_test(test_tok_roundtrip),
        cmocka_unit_test(test_tok_limits_and_errors),
        cmocka_unit_test(test_tok_from_gguf),
        cmocka_unit_test(test_tok_qwen3_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
