/* prompt.c: segmented prompt tokenization. The conversation is rendered once with every message
 * content and tool-call arguments replaced by a marker; the rendered text is then cut at the markers: pieces
 * between markers are template text (special tokens parsed), markers are replaced by their
 * content (plain text). Boundaries fall where the template puts a special token or a newline,
 * which the pre-tokenizer splits at anyway, so ordinary prompts get the same ids as tokenizing
 * the whole rendered text. */
#include "base/common.h"

#include "engine/prompt.h"

/* ESC is not something a chat message carries in practice; a content that does contain the
 * marker prefix falls back to the safe path of plain-text tokenization for that message. */
#define MARK_OPEN "\x1b<loco:"
#define MARK_CLOSE ">\x1b"

typedef struct {
    const char *text;
    size_t len;
} span;

static loco_status encode(const tok *t, const char *p, size_t n, unsigned flags, tok_ids *out,
                          loco_err *err)
{
    return n ? tok_encode(t, p, n, flags, out, err) : LOCO_OK;
}

/* The added tokens (control and user-defined) the template may insert, longest first. */
typedef struct {
    const char *s;
    size_t n;
    int32_t id;
} special;

static size_t collect_specials(const tok *t, special *sp, size_t max)
{
    size_t k = 0;
    size_t vocab = tok_vocab_size(t);
    for (size_t id = 0; id < vocab && k < max; id++) {
        tok_type ty = tok_token_type(t, (int32_t)id);
        if (ty != TOK_TYPE_CONTROL && ty != TOK_TYPE_USER_DEFINED)
            continue;
        size_t n = 0;
        const char *s = tok_token_bytes(t, (int32_t)id, &n);
        if (s && n) {
            sp[k].s = s;
            sp[k].n = n;
            sp[k].id = (int32_t)id;
            k++;
        }
    }
    return k;
}

/* Replaces the markers by their text, remembering which bytes are content, then tokenizes the
 * whole text the way a tokenizer with special parsing would, except that special tokens are only
 * recognised in template bytes. Text runs between specials are pre-tokenized as one piece, so
 * merges across a content boundary come out as they would for the whole text. */
static loco_status expand_and_encode(const tok *t, const char *r, size_t rn, const span *contents,
                                     size_t n_slots, tok_ids *out, loco_err *err)
{
    buf full;
    buf_init(&full, BUF_UNLIMITED);
    unsigned char *is_content = NULL;
    special *sp = calloc(1024, sizeof(special));
    loco_status rc = sp ? LOCO_OK : LOCO_ERR_NOMEM;
    /* pass 1: expand markers, recording content ranges in a byte map built after */
    size_t *starts = calloc(n_slots + 1, sizeof(size_t));
    size_t *ends = calloc(n_slots + 1, sizeof(size_t));
    size_t n_ranges = 0;
    if (!starts || !ends)
        rc = LOCO_ERR_NOMEM;
    const char *p = r, *end = r + rn;
    while (!rc && p < end) {
        const char *m = memmem(p, (size_t)(end - p), MARK_OPEN, strlen(MARK_OPEN));
        if (!m) {
            rc = buf_append(&full, p, (size_t)(end - p));
            break;
        }
        rc = buf_append(&full, p, (size_t)(m - p));
        char *num_end = NULL;
        unsigned long idx = strtoul(m + strlen(MARK_OPEN), &num_end, 10);
        if (!rc && (idx >= n_slots || !num_end || strncmp(num_end, MARK_CLOSE, strlen(MARK_CLOSE)) ||
                    n_ranges >= n_slots + 1)) {
            rc = loco_err_set(err, LOCO_ERR_INVALID, "template output lost a content marker");
            break;
        }
        if (!rc) {
            starts[n_ranges] = full.len;
            rc = buf_append(&full, contents[idx].text ? contents[idx].text : "", contents[idx].len);
            ends[n_ranges++] = full.len;
        }
        p = num_end + strlen(MARK_CLOSE);
    }
    if (!rc) {
        is_content = calloc(full.len + 1, 1);
        if (!is_content)
            rc = LOCO_ERR_NOMEM;
    }
    for (size_t i = 0; !rc && i < n_ranges; i++)
        memset(is_content + starts[i], 1, ends[i] - starts[i]);
    size_t n_sp = rc ? 0 : collect_specials(t, sp, 1024);
    const char *f = buf_str(&full);
    size_t piece = 0, pos = 0;
    while (!rc && pos < full.len) {
        const special *best = NULL;
        if (f[pos] == '<' || (unsigned char)f[pos] >= 0x80 || f[pos] == '[') {
            for (size_t k = 0; k < n_sp; k++) {
                const special *c = &sp[k];
                if (c->n <= full.len - pos && !memcmp(f + pos, c->s, c->n) &&
                    !memchr(is_content + pos, 1, c->n) && (!best || c->n > best->n))
                    best = c;
            }
        }
        if (!best) {
            pos++;
            continue;
        }
        rc = encode(t, f + piece, pos - piece, 0, out, err);
        if (!rc)
            rc = tok_ids_push(out, best->id);
        pos += best->n;
        piece = pos;
    }
    if (!rc)
        rc = encode(t, f + piece, full.len - piece, 0, out, err);
    if (rc == LOCO_ERR_NOMEM && err && !err->msg[0])
        loco_err_set(err, rc, "out of memory tokenizing the prompt");
    free(sp);
    free(starts);
    free(ends);
    free(is_content);
    buf_release(&full);
    return rc;
}

loco_status prompt_tokenize_chat(const tok *t, const tmpl_options *opts, const tmpl_message *msgs,
                                 size_t n, const tmpl_tool *tools, size_t n_tools, tok_ids *out,
                                 loco_err *err)
{
    /* slots: one per message content and one per tool call's arguments */
    size_t n_calls = 0;
    for (size_t i = 0; i < n; i++)
        n_calls += msgs[i].n_tool_calls;
    size_t n_slots = n + n_calls;
    tmpl_message *marked = calloc(n ? n : 1, sizeof(*marked));
    tmpl_tool_call *calls = calloc(n_calls ? n_calls : 1, sizeof(*calls));
    span *contents = calloc(n_slots ? n_slots : 1, sizeof(*contents));
    char (*marks)[32] = calloc(n_slots ? n_slots : 1, sizeof(*marks));
    buf text, args;
    buf_init(&text, BUF_UNLIMITED);
    buf_init(&args, BUF_UNLIMITED);
    size_t *args_off = calloc(n_calls ? n_calls : 1, sizeof(size_t));
    loco_status rc = LOCO_OK;
    if (!marked || !calls || !contents || !marks || !args_off) {
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t slot = n, k = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        marked[i] = msgs[i];
        const char *c = msgs[i].content;
        /* assistant content with a reasoning split is left to the template verbatim */
        if (c && *c && !strstr(c, MARK_OPEN) && !strstr(c, "</think>")) {
            snprintf(marks[i], sizeof(marks[i]), MARK_OPEN "%zu" MARK_CLOSE, i);
            marked[i].content = marks[i];
            contents[i].text = c;
            contents[i].len = strlen(c);
        }
        if (!msgs[i].n_tool_calls)
            continue;
        /* arguments are the model's (or a tool's) text: insert them as the template would
         * (tojson unless raw) but tokenize them as plain text */
        marked[i].tool_calls = calls + k;
        for (size_t j = 0; j < msgs[i].n_tool_calls && !rc; j++, k++, slot++) {
            const tmpl_tool_call *src = &msgs[i].tool_calls[j];
            calls[k] = *src;
            args_off[k] = args.len;
            const char *a = src->arguments ? src->arguments : "{}";
            if (src->arguments_raw)
                rc = buf_appends(&args, a);
            else
                rc = tmpl_tojson(&args, a, strlen(a), err);
            if (rc)
                break;
            if (strstr(args.data + args_off[k], MARK_OPEN))
                continue; /* pathological: leave it to the template */
            snprintf(marks[slot], sizeof(marks[slot]), MARK_OPEN "%zu" MARK_CLOSE, slot);
            calls[k].arguments = marks[slot];
            calls[k].arguments_raw = true;
            contents[slot].len = args.len - args_off[k];
        }
    }
    if (rc)
        goto out;
    /* arguments live in one buffer that no longer moves: point the spans into it */
    for (size_t kk = 0, s2 = n; kk < n_calls; kk++, s2++)
        if (calls[kk].arguments == marks[s2])
            contents[s2].text = args.data + args_off[kk];
    rc = tmpl_render_opts(opts, marked, n, tools, n_tools, &text, err);
    if (!rc)
        rc = expand_and_encode(t, buf_str(&text), text.len, contents, n_slots, out, err);
out:
    free(marked);
    free(calls);
    free(contents);
    free(marks);
    free(args_off);
    buf_release(&text);
    buf_release(&args);
    return rc;
}
