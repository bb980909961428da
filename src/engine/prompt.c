/* prompt.c: segmented prompt tokenization. The conversation is rendered once with every
 * content string replaced by a marker; the rendered text is then cut at the markers: pieces
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

loco_status prompt_tokenize_chat(const tok *t, const tmpl_options *opts, const tmpl_message *msgs,
                                 size_t n, const tmpl_tool *tools, size_t n_tools, tok_ids *out,
                                 loco_err *err)
{
    tmpl_message *marked = calloc(n ? n : 1, sizeof(*marked));
    span *contents = calloc(n ? n : 1, sizeof(*contents));
    char (*marks)[32] = calloc(n ? n : 1, sizeof(*marks));
    buf text;
    buf_init(&text, BUF_UNLIMITED);
    loco_status rc = LOCO_OK;
    if (!marked || !contents || !marks) {
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        marked[i] = msgs[i];
        const char *c = msgs[i].content;
        /* assistant content with a reasoning split is left to the template verbatim */
        if (c && *c && !strstr(c, MARK_OPEN) && !strstr(c, "</think>")) {
            snprintf(marks[i], sizeof(marks[i]), MARK_OPEN "%zu" MARK_CLOSE, i);
            marked[i].content = marks[i];
            contents[i].text = c;
            contents[i].len = strlen(c);
        }
    }
    rc = tmpl_render_opts(opts, marked, n, tools, n_tools, &text, err);
    if (rc)
        goto out;
    const char *p = buf_str(&text);
    const char *end = p + text.len;
    while (p < end && !rc) {
        const char *m = strstr(p, MARK_OPEN);
        if (!m) {
            rc = encode(t, p, (size_t)(end - p), TOK_PARSE_SPECIAL, out, err);
            break;
        }
        rc = encode(t, p, (size_t)(m - p), TOK_PARSE_SPECIAL, out, err);
        if (rc)
            break;
        char *num_end = NULL;
        unsigned long idx = strtoul(m + strlen(MARK_OPEN), &num_end, 10);
        if (idx >= n || !num_end || strncmp(num_end, MARK_CLOSE, strlen(MARK_CLOSE))) {
            rc = loco_err_set(err, LOCO_ERR_INVALID, "template output lost a content marker");
            break;
        }
        rc = encode(t, contents[idx].text, contents[idx].len, 0, out, err);
        p = num_end + strlen(MARK_CLOSE);
    }
out:
    free(marked);
    free(contents);
    free(marks);
    buf_release(&text);
    return rc;
}
