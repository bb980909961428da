/* tokenizer.h: the Qwen3 byte-level BPE tokenizer (engine layer): construction from plain arrays
 * (vocab, token types, merges), encoding with the qwen2 pre-tokenizer, NFC and optional special
 * token parsing, byte-level decoding and a streaming decoder that never splits UTF-8 sequences. */
#ifndef LOCO_TOKENIZER_H
#define LOCO_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/status.h"

/* Token types, numbered as GGUF's tokenizer.ggml.token_type. */
typedef enum {
    TOK_TYPE_UNDEFINED = 0,
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,      /* <|im_start|>, <|im_end|>, <|endoftext|> */
    TOK_TYPE_USER_DEFINED = 4, /* <tool_call>, <think>, ...: added tokens that are not special */
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6,
} tok_type;

/* Named limits on construction input (GGUF metadata is untrusted). */
#define TOK_MAX_VOCAB (1u << 22)     /* tokens */
#define TOK_MAX_MERGES (1u << 23)    /* merge rules */
#define TOK_MAX_TOKEN_BYTES 65536u   /* bytes of one token or merge string */

/* Everything tok_new reads; all borrowed and only read during tok_new. */
typedef struct {
    const char *const *tokens; /* n_tokens strings: NORMAL/BYTE tokens in GPT-2 byte-to-unicode
                                * form, CONTROL/USER_DEFINED tokens as their literal text */
    const size_t *token_lens;  /* byte lengths, or NULL when the strings are NUL-terminated */
    const int32_t *types;      /* tok_type per token, or NULL for all NORMAL */
    size_t n_tokens;
    const char *const *merges; /* "A B" (vocab form, one space); rank = index */
    const size_t *merge_lens;  /* or NULL when NUL-terminated */
    size_t n_merges;
    bool nfc;                  /* NFC-normalise plain text before splitting (HF does; llama.cpp not) */
} tok_config;

typedef struct tok tok;

/* Builds a tokenizer. Token ids are the indexes of cfg->tokens. Only NORMAL and BYTE tokens
 * take part in BPE; CONTROL and USER_DEFINED tokens are the "added" tokens matched by
 * TOK_PARSE_SPECIAL. Merges whose parts or result are not BPE tokens are ignored.
 * Fails (LOCO_ERR_INVALID / LOCO_ERR_LIMIT) on counts over the limits, NULL strings, a NORMAL
 * token whose text is not byte-level form, or a byte (0..255) with no token.
 * On success *out_t is a new object for tok_free. Thread safety: after tok_new every function
 * taking a const tok * may be called from several threads at once. */
loco_status tok_new(const tok_config *cfg, tok **out_t, loco_err *err);
/* Frees t; tok_free(NULL) does nothing. */
void tok_free(tok *t);

size_t tok_vocab_size(const tok *t);
/* Type of id, TOK_TYPE_UNDEFINED when out of range. */
tok_type tok_token_type(const tok *t, int32_t id);
/* The id of a token given in vocab form ("Ġthe", "<|im_end|>"), or -1. */
int32_t tok_find(const tok *t, const char *s, size_t n);
/* Raw bytes a token stands for (byte-level decoded; the literal text of added tokens), borrowed
 * from t and valid until tok_free; NULL (and *out_len 0) when id is out of range. The bytes of
 * one token may be an incomplete UTF-8 sequence. */
const char *tok_token_bytes(const tok *t, int32_t id, size_t *out_len);

/* Growable id vector with a maximum length (a named limit set by the caller). */
typedef struct {
    int32_t *ids;
    size_t len, cap, max;
} tok_ids;

void tok_ids_init(tok_ids *v, size_t max);
void tok_ids_release(tok_ids *v);
/* Appends one id; LOCO_ERR_LIMIT past max, LOCO_ERR_NOMEM. Invalidates v->ids. */
loco_status tok_ids_push(tok_ids *v, int32_t id);

/* A vocabulary held in memory (all strings owned), e.g. read from a HF tokenizer.json. */
typedef struct {
    char **tokens;      /* (n_tokens) NUL-terminated */
    size_t *token_lens; /* (n_tokens) */
    int32_t *types;     /* (n_tokens) tok_type */
    size_t n_tokens;
    char **merges;      /* (n_merges) "A B" */
    size_t n_merges;
    bool nfc;           /* the file's normalizer is NFC */
} tok_vocab;

/* Parses a HF tokenizer.json (BPE model; merges as "A B" strings or [A, B] pairs) into v.
 * Ids missing from vocab and added_tokens become "[PAD<id>]" of type UNUSED (as llama.cpp's
 * converter does); added tokens get CONTROL when "special" is true, else USER_DEFINED.
 * On success the caller releases v with tok_vocab_release; on error v is left empty. */
loco_status tok_vocab_from_hf_json(const char *text, size_t n, tok_vocab *v, loco_err *err);
void tok_vocab_release(tok_vocab *v);
/* Fills cfg with pointers borrowed from v (valid while v lives). */
void tok_vocab_config(const tok_vocab *v, tok_config *cfg);

typedef struct gguf gguf; /* engine/gguf.h */

/* Builds the tokenizer of an open GGUF model from its metadata: tokenizer.ggml.model must be
 * "gpt2" and tokenizer.ggml.pre "qwen2" (the only pre-tokenizer implemented), with
 * tokenizer.ggml.tokens, .merges and optionally .token_type (absent: all NORMAL). GGUF does
 * not record the HF normalizer: nfc = true reproduces HF tokenizers (Qwen's tokenizer.json
 * applies NFC), false reproduces llama.cpp (no normalisation); they differ only on non-NFC
 * input. Strings are copied, so g may be closed afterwards. Errors name the file and key. */
loco_status tok_from_gguf(const gguf *g, bool nfc, tok **out_t, loco_err *err);

/* tok_encode flags. */
#define TOK_PARSE_SPECIAL 1u /* match added tokens (CONTROL, USER_DEFINED) in the text first */

/* Appends the ids of text[0..n) to out. By default the text is plain user text: "<|im_end|>"
 * or "<tool_call>" in it become ordinary BPE tokens, never added tokens. With
 * TOK_PARSE_SPECIAL, added tokens are cut out first (leftmost, then longest match) and the
 * pieces between them are encoded as plain text.
 * Any bytes are accepted: an invalid UTF-8 byte is kept as is and pre-tokenized as a lone
 * symbol (like punctuation), so tok_decode of the result gives back exactly the input bytes
 * whenever the input is NFC or t was built with nfc = false (NFC applies to valid sequences
 * only). Errors: LOCO_ERR_LIMIT when out->max is reached (out then holds a prefix),
 * LOCO_ERR_NOMEM. */
loco_status tok_encode(const tok *t, const char *text, size_t n, unsigned flags, tok_ids *out,
                       loco_err *err);

/* Calls fn(piece, len, ctx) for each pre-token of text[0..n) (the qwen2 regex split, no NFC);
 * the pieces concatenate to the text. Exposed for tests. */
void tok_pretokenize(const char *text, size_t n,
                     void (*fn)(const char *piece, size_t len, void *ctx), void *ctx);

/* Appends the NFC form of text[0..n) to out (invalid UTF-8 bytes are copied unchanged). */
loco_status tok_nfc(const char *text, size_t n, buf *out);

/* Appends the raw bytes of one token (tok_token_bytes) to out. Out-of-range ids are an
 * LOCO_ERR_INVALID error. The output may end inside a UTF-8 sequence: use tok_stream to print. */
loco_status tok_decode_token(const tok *t, int32_t id, buf *out, loco_err *err);
/* Appends the raw bytes of ids[0..n) to out. */
loco_status tok_decode(const tok *t, const int32_t *ids, size_t n, buf *out, loco_err *err);

/* Streaming decoder (caller-owned, no heap): turns token bytes into valid UTF-8 text.
 * Bytes of an incomplete sequence are held until it completes; a sequence that can no longer
 * complete becomes U+FFFD (one per maximal ill-formed subpart, as WHATWG decoders do), and
 * tok_stream_flush turns a held incomplete tail into U+FFFD. Output is always valid UTF-8. */
typedef struct {
    unsigned char held[4];
    size_t n_held; /* bytes held (0..3) */
    size_t need;   /* total length of the held sequence */
} tok_stream;

void tok_stream_init(tok_stream *s);
/* Appends the text completed by token id (added tokens give their literal text). */
loco_status tok_stream_push(tok_stream *s, const tok *t, int32_t id, buf *out, loco_err *err);
/* Same for raw bytes. */
loco_status tok_stream_push_bytes(tok_stream *s, const char *p, size_t n, buf *out);
/* Ends the stream: a held incomplete sequence becomes U+FFFD; s is reset. */
loco_status tok_stream_flush(tok_stream *s, buf *out);

#endif
