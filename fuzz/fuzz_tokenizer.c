/* fuzz_tokenizer.c: libFuzzer target for engine/tokenizer. Encodes arbitrary bytes (invalid
 * UTF-8 included) plain and with TOK_PARSE_SPECIAL and aborts unless decoding gives back the
 * input exactly; also checks NFC is idempotent and that the streaming decoder emits valid UTF-8. */
#include "base/common.h"

#include "base/str.h"
#include "base/utf8.h"
#include "engine/tokenizer.h"

#define FUZZ_TOK_MAX_INPUT 65536

/* A small vocab: the 256 byte characters, a few merges and added tokens. */
static tok *fuzz_make(bool nfc)
{
    static char bytes[256][3];
    static const char *tokens[256 + 10];
    static int32_t types[256 + 10];
    int extra = 256;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        int cp = printable ? b : extra++;
        if (cp < 0x80) {
            bytes[b][0] = (char)cp;
        } else {
            bytes[b][0] = (char)(0xC0 | (cp >> 6));
            bytes[b][1] = (char)(0x80 | (cp & 0x3F));
        }
        tokens[b] = bytes[b];
        types[b] = TOK_TYPE_NORMAL;
    }
    const char *more[] = {"he", "ll", "hell", "hello", "\xC4\xA0h", "\xC3\xA9", "<|im_end|>",
                          "<think>", "<thinker>", "</think>"};
    const int32_t more_types[] = {1, 1, 1, 1, 1, 1, 3, 4, 4, 4};
    for (int i = 0; i < 10; i++) {
        tokens[256 + i] = more[i];
        types[256 + i] = more_types[i];
    }
    static const char *const merges[] = {"h e", "l l", "he ll", "hell o", "\xC4\xA0 h",
                                         "\xC3\x83 \xC2\xA9"};
    tok_config cfg = {.tokens = tokens, .types = types, .n_tokens = 266, .merges = merges,
                      .n_merges = 6, .nfc = nfc};
    tok *t = NULL;
    if (tok_new(&cfg, &t, NULL))
        abort();
    return t;
}

static void check_roundtrip(const tok *t, const char *p, size_t n, unsigned flags)
{
    tok_ids ids;
    tok_ids_init(&ids, 4 * (size_t)FUZZ_TOK_MAX_INPUT);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    if (tok_encode(t, p, n, flags, &ids, NULL) || tok_decode(t, ids.ids, ids.len, &out, NULL))
        abort();
    if (out.len != n || (n && memcmp(out.data, p, n) != 0))
        abort();
    buf_release(&out);
    tok_ids_release(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tok *plain, *nfc; /* built once per process (harness only) */
    if (!plain) {
        plain = fuzz_make(false);
        nfc = fuzz_make(true);
    }
    if (size > FUZZ_TOK_MAX_INPUT)
        return 0;
    const char *p = (const char *)data;
    check_roundtrip(plain, p, size, 0);
    check_roundtrip(plain, p, size, TOK_PARSE_SPECIAL);

    /* NFC: idempotent; the NFC tokenizer round-trips the normalised text */
    buf n1, n2;
    buf_init(&n1, BUF_UNLIMITED);
    buf_init(&n2, BUF_UNLIMITED);
    if (tok_nfc(p, size, &n1) || tok_nfc(n1.data ? n1.data : "", n1.len, &n2))
        abort();
    if (n1.len != n2.len || (n1.len && memcmp(n1.data, n2.data, n1.len) != 0))
        abort();
    if (utf8_valid(p, size) && !utf8_valid(n1.data ? n1.data : "", n1.len))
        abort();
    check_roundtrip(nfc, n1.data ? n1.data : "", n1.len, TOK_PARSE_SPECIAL);

    /* streaming decode of the ids: always valid UTF-8; equals the input when it was valid */
    tok_ids ids;
    tok_ids_init(&ids, 4 * (size_t)FUZZ_TOK_MAX_INPUT);
    if (tok_encode(nfc, p, size, 0, &ids, NULL))
        abort();
    tok_stream s;
    tok_stream_init(&s);
    buf text;
    buf_init(&text, BUF_UNLIMITED);
    for (size_t i = 0; i < ids.len; i++)
        if (tok_stream_push(&s, nfc, ids.ids[i], &text, NULL))
            abort();
    if (tok_stream_flush(&s, &text))
        abort();
    if (!utf8_valid(text.data ? text.data : "", text.len))
        abort();
    if (utf8_valid(p, size) &&
        (text.len != n1.len || (n1.len && memcmp(text.data, n1.data, n1.len) != 0)))
        abort();
    buf_release(&text);
    tok_ids_release(&ids);
    buf_release(&n1);
    buf_release(&n2);
    return 0;
}
