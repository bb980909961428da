/* tool_tokenize.c: test driver for the tokenizer (not installed): reads a HF tokenizer.json and
 * a text file and prints the token ids, one chunk per output line, for tests/engine/tokenizer.test.mjs.
 * Usage: tool_tokenize TOKENIZER_JSON TEXT_FILE [--special] [--no-nfc] [--chunks] [--bench N]
 * --chunks: the file is split into lines (each keeps its "\n") and each is encoded alone. */
#include "base/common.h"

#include "base/file.h"
#include "engine/tokenizer.h"

#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int print_ids(const tok_ids *ids)
{
    for (size_t i = 0; i < ids->len; i++)
        printf(i ? " %" PRId32 : "%" PRId32, ids->ids[i]);
    putchar('\n');
    return 0;
}

static int encode_print(const tok *t, const char *p, size_t n, unsigned flags)
{
    tok_ids ids;
    tok_ids_init(&ids, (size_t)1 << 30);
    loco_err err;
    loco_err_clear(&err);
    if (tok_encode(t, p, n, flags, &ids, &err)) {
        fprintf(stderr, "encode: %s\n", err.msg);
        tok_ids_release(&ids);
        return 1;
    }
    print_ids(&ids);
    tok_ids_release(&ids);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tool_tokenize TOKENIZER_JSON TEXT_FILE [--special] [--no-nfc] "
                        "[--chunks] [--bench N]\n");
        return 2;
    }
    unsigned flags = 0;
    bool chunks = false, nfc = true;
    long bench = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--special") == 0)
            flags |= TOK_PARSE_SPECIAL;
        else if (strcmp(argv[i], "--no-nfc") == 0)
            nfc = false;
        else if (strcmp(argv[i], "--chunks") == 0)
            chunks = true;
        else if (strcmp(argv[i], "--bench") == 0 && i + 1 < argc)
            bench = strtol(argv[++i], NULL, 10);
    }
    loco_err err;
    loco_err_clear(&err);
    buf js, text;
    buf_init(&js, (size_t)1 << 30);
    buf_init(&text, (size_t)1 << 30);
    tok_vocab v;
    tok *t = NULL;
    int rc = 1;
    if (file_read_all(argv[1], &js, &err) || file_read_all(argv[2], &text, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    double t0 = now_s();
    if (tok_vocab_from_hf_json(js.data, js.len, &v, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    double t1 = now_s();
    tok_config cfg;
    tok_vocab_config(&v, &cfg);
    cfg.nfc = cfg.nfc && nfc;
    if (tok_new(&cfg, &t, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        tok_vocab_release(&v);
        goto out;
    }
    double t2 = now_s();
    tok_vocab_release(&v);
    if (bench > 0) {
        tok_ids ids;
        tok_ids_init(&ids, (size_t)1 << 30);
        double b0 = now_s();
        for (long k = 0; k < bench; k++) {
            ids.len = 0;
            tok_encode(t, text.data, text.len, flags, &ids, &err);
        }
        double b1 = now_s();
        fprintf(stderr, "json parse %.1f ms, tok_new %.1f ms, %zu bytes -> %zu tokens, encode %.2f MB/s\n",
                (t1 - t0) * 1e3, (t2 - t1) * 1e3, text.len, ids.len,
                (double)text.len * (double)bench / (b1 - b0) / 1e6);
        tok_ids_release(&ids);
        rc = 0;
        goto out;
    }
    if (!chunks) {
        rc = encode_print(t, text.data, text.len, flags);
        goto out;
    }
    rc = 0;
    for (size_t p = 0; p < text.len && !rc;) {
        const char *nl = memchr(text.data + p, '\n', text.len - p);
        size_t end = nl ? (size_t)(nl - text.data) + 1 : text.len;
        rc = encode_print(t, text.data + p, end - p, flags);
        p = end;
    }
out:
    tok_free(t);
    buf_release(&js);
    buf_release(&text);
    return rc;
}
