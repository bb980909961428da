/* test_utf8.c: unit tests of base/utf8 (lengths, validation, decoding, encoding, stream tails,
 * lossy repair) and of base/json's lossy JSON string writer. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "base/utf8.h"

#define FFFD UTF8_REPLACEMENT

/* One byte string and what every helper must say about it. */
typedef struct {
    const char *s;
    size_t n;
    size_t seq;  /* utf8_seq_len(s, n) */
    uint32_t cp; /* utf8_decode(s, n) (UTF8_INVALID when seq is 0) */
} seq_case;

#define C(lit, seq, cp)               \
    {                                 \
        lit, sizeof(lit) - 1, seq, cp \
    }

static const seq_case cases[] = {
    /* valid: the first and last code point of each length, around the surrogates */
    C("\x00", 1, 0x0),
    C("\x7F", 1, 0x7F),
    C("\xC2\x80", 2, 0x80),
    C("\xDF\xBF", 2, 0x7FF),
    C("\xE0\xA0\x80", 3, 0x800),
    C("\xED\x9F\xBF", 3, 0xD7FF),
    C("\xEE\x80\x80", 3, 0xE000),
    C("\xEF\xBF\xBF", 3, 0xFFFF),
    C("\xEF\xBF\xBD", 3, 0xFFFD),
    C("\xF0\x90\x80\x80", 4, 0x10000),
    C("\xF4\x8F\xBF\xBF", 4, 0x10FFFF),
    C("\xE2\x82\xAC", 3, 0x20AC),
    C("\xF0\x9F\x98\x80", 4, 0x1F600),
    /* only the first sequence counts */
    C("a\xFF", 1, 'a'),
    C("\xC3\xA9z", 2, 0xE9),
    /* overlong forms */
    C("\xC0\x80", 0, 0),
    C("\xC1\xBF", 0, 0),
    C("\xE0\x80\x80", 0, 0),
    C("\xE0\x9F\xBF", 0, 0),
    C("\xF0\x80\x80\x80", 0, 0),
    C("\xF0\x8F\xBF\xBF", 0, 0),
    /* surrogates U+D800..U+DFFF */
    C("\xED\xA0\x80", 0, 0),
    C("\xED\xAF\xBF", 0, 0),
    C("\xED\xB0\x80", 0, 0),
    C("\xED\xBF\xBF", 0, 0),
    /* above U+10FFFF, and bytes that never start a sequence */
    C("\xF4\x90\x80\x80", 0, 0),
    C("\xF5\x80\x80\x80", 0, 0),
    C("\xF7\xBF\xBF\xBF", 0, 0),
    C("\xF8\x88\x80\x80\x80", 0, 0),
    C("\xFC\x84\x80\x80\x80\x80", 0, 0),
    C("\xFE", 0, 0),
    C("\xFF", 0, 0),
    C("\x80", 0, 0),
    C("\xBF", 0, 0),
    /* truncated by n */
    C("\xC3", 0, 0),
    C("\xE2\x82", 0, 0),
    C("\xE2", 0, 0),
    C("\xF0\x9F\x98", 0, 0),
    C("\xF0\x9F", 0, 0),
    C("\xF4", 0, 0),
    /* a continuation byte missing or wrong */
    C("\xC3\x28", 0, 0),
    C("\xC3\xC3\xA9", 0, 0),
    C("\xE2\x28\xA1", 0, 0),
    C("\xE2\x82\x28", 0, 0),
    C("\xF0\x28\x8C\xBC", 0, 0),
    C("\xF0\x90\x28\xBC", 0, 0),
    C("\xF0\x90\x8C\x28", 0, 0),
    C("\xE2\x82\xF0\x9F\x98\x80", 0, 0),
};

static void test_lead_len_every_byte(void **state)
{
    (void)state;
    for (unsigned c = 0; c < 256; c++) {
        size_t want = c < 0x80 ? 1 : c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
        assert_int_equal(utf8_lead_len((unsigned char)c), want);
        assert_int_equal(utf8_is_cont((unsigned char)c), c >= 0x80 && c <= 0xBF);
    }
}

static void test_second_ok(void **state)
{
    (void)state;
    assert_true(utf8_second_ok(0xE0, 0xA0));
    assert_false(utf8_second_ok(0xE0, 0x9F)); /* overlong */
    assert_true(utf8_second_ok(0xED, 0x9F));
    assert_false(utf8_second_ok(0xED, 0xA0)); /* surrogate */
    assert_true(utf8_second_ok(0xF0, 0x90));
    assert_false(utf8_second_ok(0xF0, 0x8F)); /* overlong */
    assert_true(utf8_second_ok(0xF4, 0x8F));
    assert_false(utf8_second_ok(0xF4, 0x90)); /* above U+10FFFF */
    assert_true(utf8_second_ok(0xC3, 0x80));
    assert_true(utf8_second_ok(0xE1, 0xBF));
    assert_false(utf8_second_ok(0xC3, 0xC0));
    assert_false(utf8_second_ok(0xC3, 0x7F));
}

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < LOCO_ARRAY_LEN(cases); i++) {
        const seq_case *t = &cases[i];
        size_t len = 99;
        uint32_t cp = utf8_decode(t->s, t->n, &len);
        if (utf8_seq_len(t->s, t->n) != t->seq)
            fail_msg("case %zu: seq_len %zu, want %zu", i, utf8_seq_len(t->s, t->n), t->seq);
        assert_int_equal(len, t->seq ? t->seq : 1);
        assert_int_equal(cp, t->seq ? t->cp : UTF8_INVALID);
        /* the whole string is valid exactly when it is one valid sequence (or ASCII after) */
        bool whole = t->seq && utf8_valid(t->s + t->seq, t->n - t->seq);
        assert_int_equal(utf8_valid(t->s, t->n), whole);
    }
}

/* Every scalar value encodes to the sequence that decodes back to it; surrogates are never
 * accepted whatever encodes them. */
static void test_encode_decode_all(void **state)
{
    (void)state;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        char u[4];
        size_t n = utf8_encode(cp, u);
        assert_int_equal(n, cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
        size_t len;
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        uint32_t back = utf8_decode(u, n, &len);
        if (surrogate) {
            assert_int_equal(back, UTF8_INVALID);
            assert_int_equal(utf8_seq_len(u, n), 0);
            assert_false(utf8_valid(u, n));
            continue;
        }
        if (back != cp || len != n || utf8_seq_len(u, n) != n || !utf8_valid(u, n))
            fail_msg("U+%04" PRIX32 " does not round-trip", cp);
        if (n > 1 && (utf8_seq_len(u, n - 1) != 0 || utf8_valid(u, n - 1)))
            fail_msg("U+%04" PRIX32 " cut short is accepted", cp);
    }
}

/* Reference: bytes are one valid sequence exactly when they are the encoding of a scalar value
 * (the naive decode ignores marker bits and minimal length; re-encoding checks both). */
static bool ref_valid(const unsigned char *b, size_t n)
{
    static const unsigned char mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t cp = b[0] & mask[n];
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (b[i] & 0x3F);
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
    char u[4];
    return utf8_encode(cp, u) == n && !memcmp(u, b, n);
}

static void check_against_ref(const unsigned char *b, size_t n)
{
    bool want = ref_valid(b, n);
    size_t len;
    uint32_t cp = utf8_decode((const char *)b, n, &len);
    bool got = utf8_seq_len((const char *)b, n) == n && cp != UTF8_INVALID && len == n;
    bool whole = utf8_valid((const char *)b, n);
    if (got != want || whole != want)
        fail_msg("%02X %02X %02X %02X (n %zu): seq_len/decode %d, utf8_valid %d, want %d", b[0],
                 n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n > 3 ? b[3] : 0, n, got, whole, want);
}

/* All one-, two- and three-byte strings whose first byte announces that length, and the
 * four-byte ones over every lead and second byte with telling last bytes. */
static void test_exhaustive_against_reference(void **state)
{
    (void)state;
    unsigned char b[4];
    for (unsigned x = 0; x < 0x80; x++) {
        b[0] = (unsigned char)x;
        check_against_ref(b, 1);
    }
    for (unsigned x = 0xC0; x < 0xE0; x++)
        for (unsigned y = 0; y < 256; y++) {
            b[0] = (unsigned char)x, b[1] = (unsigned char)y;
            check_against_ref(b, 2);
        }
    for (unsigned x = 0xE0; x < 0xF0; x++)
        for (unsigned y = 0; y < 256; y++)
            for (unsigned z = 0; z < 256; z++) {
                b[0] = (unsigned char)x, b[1] = (unsigned char)y, b[2] = (unsigned char)z;
                check_against_ref(b, 3);
            }
    static const unsigned char tails[] = {0x00, 0x41, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    for (unsigned x = 0xF0; x < 0xF8; x++)
        for (unsigned y = 0; y < 256; y++)
            for (size_t z = 0; z < sizeof(tails); z++)
                for (size_t w = 0; w < sizeof(tails); w++) {
                    b[0] = (unsigned char)x, b[1] = (unsigned char)y;
                    b[2] = tails[z], b[3] = tails[w];
                    check_against_ref(b, 4);
                }
}

static void test_valid(void **state)
{
    (void)state;
    assert_true(utf8_valid("", 0));
    assert_true(utf8_valid("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 13));
    assert_true(utf8_valid("a\0b", 3)); /* NUL is valid UTF-8 */
    assert_false(utf8_valid("h\xc3", 2));
    assert_false(utf8_valid("abc\x80xyz", 7));
    assert_false(utf8_valid("\xe2\x82\xac\xed\xa0\x80", 6));
}

static void test_complete_len(void **state)
{
    (void)state;
    assert_int_equal(utf8_complete_len("", 0), 0);
    assert_int_equal(utf8_complete_len("abc", 3), 3);
    assert_int_equal(utf8_complete_len("h\xe2\x82", 3), 1);
    assert_int_equal(utf8_complete_len("h\xe2", 2), 1);
    assert_int_equal(utf8_complete_len("h\xe2\x82\xac", 4), 4);
    assert_int_equal(utf8_complete_len("\xf0\x9f\x98", 3), 0);
    assert_int_equal(utf8_complete_len("x\xf0\x9f\x98\x80", 5), 5);
    assert_int_equal(utf8_complete_len("\xc3", 1), 0);
    /* bytes that cannot start a sequence are not held back: lossy repair handles them */
    assert_int_equal(utf8_complete_len("a\x80", 2), 2);
    assert_int_equal(utf8_complete_len("a\xff", 2), 2);
    assert_int_equal(utf8_complete_len("a\xc0", 2), 2);
    assert_int_equal(utf8_complete_len("\x80\x80\x80\x80", 4), 4);
    /* a lead too far back to be unfinished */
    assert_int_equal(utf8_complete_len("\xe2\x80\x80\x80", 4), 4);
}

/* Literal input (NULs included) and what it must give. */
#define EXPECT_LOSSY(lit, want) expect_lossy(lit, sizeof(lit) - 1, want)
#define EXPECT_JSON(lit, want) expect_json(lit, sizeof(lit) - 1, want)

static void expect_lossy(const char *in, size_t n, const char *want)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(utf8_append_lossy(&b, in, n), LOCO_OK);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    assert_true(utf8_valid(b.data, b.len));
    buf_release(&b);
}

static void test_append_lossy(void **state)
{
    (void)state;
    EXPECT_LOSSY("", "");
    EXPECT_LOSSY("plain \xc3\xa9", "plain \xc3\xa9");
    /* one U+FFFD per byte that does not start a valid, complete sequence */
    EXPECT_LOSSY("a\xe2\x82", "a" FFFD FFFD);
    EXPECT_LOSSY("\xe2\x82z", FFFD FFFD "z");
    EXPECT_LOSSY("\xc0\x80", FFFD FFFD);
    EXPECT_LOSSY("\xe0\x80\xaf", FFFD FFFD FFFD);
    EXPECT_LOSSY("\xed\xa0\x80", FFFD FFFD FFFD);
    EXPECT_LOSSY("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);
    EXPECT_LOSSY("\xff\xfe", FFFD FFFD);
    EXPECT_LOSSY("\x80x", FFFD "x");
    EXPECT_LOSSY("\xe2\x28\xa1", FFFD "(" FFFD);
    EXPECT_LOSSY("\xf0\x9f\x98\x80\xf0\x9f\x98", "\xf0\x9f\x98\x80" FFFD FFFD FFFD);
    /* NUL bytes are valid UTF-8 and kept */
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(utf8_append_lossy(&b, "a\0\xff", 3), LOCO_OK);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "a\0" FFFD, 5);
    buf_release(&b);
    /* the buffer's limit is reported */
    buf_init(&b, 4);
    assert_int_equal(utf8_append_lossy(&b, "ab\xff", 3), LOCO_ERR_LIMIT);
    buf_release(&b);
    buf_init(&b, 4);
    assert_int_equal(utf8_append_lossy(&b, "abcde", 5), LOCO_ERR_LIMIT);
    buf_release(&b);
}

static void expect_json(const char *in, size_t n, const char *want)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(json_append_str_lossy(&b, in, n), LOCO_OK);
    assert_string_equal(buf_str(&b), want);
    buf_release(&b);
}

static void test_json_str_lossy(void **state)
{
    (void)state;
    EXPECT_JSON("", "\"\"");
    EXPECT_JSON("a\"b\\c\nd\x01"
                "e\xc3\xa9",
                "\"a\\\"b\\\\c\\nd\\u0001e\xc3\xa9\"");
    EXPECT_JSON("\t\r\b\f\x1f\x7f", "\"\\t\\r\\b\\f\\u001f\x7f\"");
    EXPECT_JSON("x\0y", "\"x\\u0000y\"");
    EXPECT_JSON("q\"\xff\n\xe2\x82", "\"q\\\"" FFFD "\\n" FFFD FFFD "\"");
    EXPECT_JSON("\xed\xa0\x80", "\"" FFFD FFFD FFFD "\"");
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(json_append_cstr_lossy(&b, NULL), LOCO_OK);
    assert_int_equal(json_append_cstr_lossy(&b, "\xc3"), LOCO_OK);
    assert_string_equal(buf_str(&b), "\"\"\"" FFFD "\"");
    buf_release(&b);
    buf_init(&b, 3);
    assert_int_equal(json_append_str_lossy(&b, "\xff\xff", 2), LOCO_ERR_LIMIT);
    buf_release(&b);
}

/* Random bytes: the JSON string always parses, and holds exactly the lossy repair. */
static void test_json_str_lossy_random(void **state)
{
    (void)state;
    uint32_t x = 12345;
    static const unsigned char pick[] = {'a',  '"',  '\\', '\n', 0x00, 0x1f, 0x7f, 0x80,
                                         0xbf, 0xc0, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xed,
                                         0xa0, 0xf0, 0x9f, 0x98, 0xf4, 0x90, 0xf5, 0xff};
    for (int iter = 0; iter < 2000; iter++) {
        unsigned char in[24];
        size_t n = iter % (sizeof(in) + 1);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            in[i] = pick[(x >> 16) % sizeof(pick)];
        }
        buf j, fixed;
        buf_init(&j, BUF_UNLIMITED);
        buf_init(&fixed, BUF_UNLIMITED);
        assert_int_equal(json_append_str_lossy(&j, (const char *)in, n), LOCO_OK);
        assert_int_equal(utf8_append_lossy(&fixed, (const char *)in, n), LOCO_OK);
        loco_err err;
        json_t *v = json_parse(j.data, j.len, &err);
        assert_non_null(v);
        assert_true(json_is_string(v));
        assert_int_equal(json_string_length(v), fixed.len);
        assert_memory_equal(json_string_value(v), buf_str(&fixed), fixed.len);
        json_decref(v);
        buf_release(&j);
        buf_release(&fixed);
    }
}

/* ---- text for terminals: str_append_printable, and the error/log records that use it ---- */

static void check_printable(const char *in, size_t n, const char *want)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(str_append_printable(&b, in, n), LOCO_OK);
    assert_string_equal(buf_str(&b), want);
    assert_int_equal(str_is_printable(in, n), strcmp(buf_str(&b), in) == 0 && strlen(in) == n);
    buf_release(&b);
}

#define CHECK_PRINTABLE(lit, want) check_printable(lit, sizeof(lit) - 1, want)

static void test_printable(void **state)
{
    (void)state;
    CHECK_PRINTABLE("plain ascii ~", "plain ascii ~");
    CHECK_PRINTABLE("gr\xc3\xb6\xc3\x9f"
                    "e \xe2\x9c\x93 \xf0\x9f\x98\x80",
                    "gr\xc3\xb6\xc3\x9f"
                    "e \xe2\x9c\x93 \xf0\x9f\x98\x80");
    CHECK_PRINTABLE("\x1b[31mred\x1b]0;title\x07", "\\e[31mred\\e]0;title\\x07");
    CHECK_PRINTABLE("a\nb\rc\td", "a\\nb\\rc\\td");
    CHECK_PRINTABLE("nul\0x\x7f", "nul\\x00x\\x7F");
    CHECK_PRINTABLE("c1 \xc2\x9b"
                    "31m",
                    "c1 \\u{009B}31m"); /* CSI as C1 */
    CHECK_PRINTABLE("bidi \xe2\x80\xae"
                    "evil",
                    "bidi \\u{202E}evil"); /* RLO */
    CHECK_PRINTABLE("iso \xe2\x81\xa6x", "iso \\u{2066}x");
    CHECK_PRINTABLE("bad \xff\xc3(", "bad \\xFF\\xC3(");
    CHECK_PRINTABLE("cut \xe2\x9c", "cut \\xE2\\x9C");
    char out[8];
    assert_string_equal(str_printable("\x1b\x1b\x1b", out, sizeof(out)), "\\e\\e\\e");
    assert_string_equal(str_printable("\x1b\x1b\x1b\x1b", out, sizeof(out)), "\\e\\e\\e\\");
    assert_string_equal(str_printable(NULL, out, sizeof(out)), "");
}

static void test_err_and_log_printable(void **state)
{
    (void)state;
    loco_err err;
    loco_err_set(&err, LOCO_ERR_INVALID, "duplicate id '%s'", "\x1b]0;pwned\x07\nfake line");
    assert_string_equal(err.msg, "duplicate id '\\e]0;pwned\\x07\\nfake line'");
    loco_err_wrap(&err, "reading '%s'", "q\r1");
    assert_string_equal(err.msg, "reading 'q\\r1': duplicate id '\\e]0;pwned\\x07\\nfake line'");
}

static char g_line[4096]; /* the last line the test sink saw */

static void test_sink(void *ctx, log_level level, const char *line)
{
    LOCO_UNUSED(ctx);
    LOCO_UNUSED(level);
    snprintf(g_line, sizeof(g_line), "%s", line);
}

static void test_log_printable(void **state)
{
    (void)state;
    loco_log log = {test_sink, NULL, LOG_DEBUG};
    log_msg(&log, LOG_INFO, "req=1 model=%s status=%d", "\x1b[2J\nreq=2 model=x", 200);
    assert_string_equal(g_line, "req=1 model=\\e[2J\\nreq=2 model=x status=200");
}

static void test_json_string_lossy(void **state)
{
    (void)state;
    json_t *v = json_string_lossy("ok \xe4\xb8", 5);
    assert_non_null(v);
    assert_string_equal(json_string_value(v), "ok \xef\xbf\xbd\xef\xbf\xbd");
    json_decref(v);
    v = json_cstring_lossy(NULL);
    assert_string_equal(json_string_value(v), "");
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lead_len_every_byte),
        cmocka_unit_test(test_second_ok),
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_encode_decode_all),
        cmocka_unit_test(test_exhaustive_against_reference),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_complete_len),
        cmocka_unit_test(test_append_lossy),
        cmocka_unit_test(test_json_str_lossy),
        cmocka_unit_test(test_json_str_lossy_random),
        cmocka_unit_test(test_printable),
        cmocka_unit_test(test_err_and_log_printable),
        cmocka_unit_test(test_log_printable),
        cmocka_unit_test(test_json_string_lossy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
