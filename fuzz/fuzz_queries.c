/* fuzz_queries.c: the queries file parser (agent/queries.c) on arbitrary bytes: never crashes,
 * every query it keeps obeys the rules (id in range, non-empty valid UTF-8 question without
 * control characters, unique ids, increasing line numbers), every problem names a line. */
#include "base/common.h"

#include "agent/queries.h"
#include "base/str.h"
#include "base/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agent_queries q;
    loco_err err;
    loco_err_clear(&err);
    if (agent_queries_parse((const char *)data, size, &q, &err) != LOCO_OK) {
        if (err.msg[0] == '\0' || q.n != 0)
            abort();
        return 0;
    }
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    for (size_t i = 0; i < q.n; i++) {
        const agent_query *a = &q.items[i];
        size_t n = strlen(a->question);
        if (a->id < 1 || a->id > AGENT_QUERY_ID_MAX || n == 0 || n > AGENT_QUERY_MAX_BYTES)
            abort();
        if (!utf8_valid(a->question, n) || a->line < 1 || a->line > lines)
            abort();
        for (size_t k = 0; k < n; k++) {
            if ((unsigned char)a->question[k] < 0x20)
                abort();
        }
        if (i && a->line <= q.items[i - 1].line)
            abort();
        for (size_t k = 0; k < i; k++) {
            if (q.items[k].id == a->id)
                abort();
        }
        char name[32];
        agent_query_file_name(a->id, "md", name, sizeof(name));
        if (name[0] != 'q' || !str_ends_with(name, ".md"))
            abort();
    }
    for (size_t i = 0; i < q.n_problems; i++) {
        if (q.problems[i].line < 1 || q.problems[i].line > lines || !q.problems[i].message[0])
            abort();
    }
    agent_queries_release(&q);
    return 0;
}
