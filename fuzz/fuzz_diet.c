/* fuzz_diet.c: libFuzzer target for gateway/diet (the prompt diet's reminder parser). The
 * input is one user text: it goes through diet_filter_text and, as a role:"system" note and
 * a tool result, through diet_apply. Must never crash; the filtered text is never longer than
 * the input, a text without "<system-reminder>" comes back unchanged, and everything the
 * filter keeps is part of the input. */
#include "base/common.h"

#include "gateway/diet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    buf out;
    buf_init(&out, 1 << 24);
    diet_report rep;
    memset(&rep, 0, sizeof(rep));
    if (diet_filter_text(text, size, &out, &rep) != LOCO_OK)
        abort();
    if (out.len > size)
        abort();
    if (!memmem(text, size, "<system-reminder>", 17) &&
        (out.len != size || (size && memcmp(out.data, text, size))))
        abort();
    buf_release(&out);

    char *s = malloc(size + 1);
    chat_request *req = chat_request_new();
    if (!s || !req)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    chat_message *m = chat_request_add_message(req, CHAT_ROLE_USER);
    chat_block *b = m ? chat_message_add_block(req, m, CHAT_BLOCK_TEXT) : NULL;
    if (b)
        b->text = chat_strdup(req, s);
    b = m ? chat_message_add_block(req, m, CHAT_BLOCK_TOOL_RESULT) : NULL;
    if (b)
        b->text = chat_strdup(req, s);
    m = chat_request_add_message(req, CHAT_ROLE_SYSTEM);
    b = m ? chat_message_add_block(req, m, CHAT_BLOCK_TEXT) : NULL;
    if (b)
        b->text = chat_strdup(req, s);
    chat_request *diet = NULL;
    if (diet_apply(req, "SYS", false, &diet, &rep, NULL) == LOCO_OK) {
        if (!diet->system || strncmp(diet->system, "SYS", 3))
            abort();
        chat_request_free(diet);
    }
    chat_request_free(req);
    free(s);
    return 0;
}
