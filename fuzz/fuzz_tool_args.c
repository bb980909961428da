/* fuzz_tool_args.c: arbitrary JSON arguments into the Read, Write, Edit and Bash tools, and
 * arbitrary text into the Bash read-only policy: never crash, always a result. Byte 0 picks
 * the tool; the rest is the JSON. Bash is run with cancel already set, so its arguments and
 * policy are exercised but no command is ever executed. Files live in a temporary sandbox. */
#include "base/common.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/tools.h"
#include "agent/tools_int.h"
#include "base/file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static agent_sandbox *fuzz_sandbox(void)
{
    static agent_sandbox sb;
    static bool ready;
    if (ready)
        return &sb;
    char tmpl[] = "/tmp/loco-fuzz-tools-XXXXXX";
    if (!mkdtemp(tmpl))
        abort();
    char repo[PATH_MAX], out[PATH_MAX], p[PATH_MAX + 32];
    snprintf(repo, sizeof(repo), "%s/repo", tmpl);
    snprintf(out, sizeof(out), "%s/out", tmpl);
    mkdir(repo, 0755);
    snprintf(p, sizeof(p), "%s/a.txt", repo);
    file_write_atomic(p, "alpha\nbeta\n", 11, 0644, NULL);
    snprintf(p, sizeof(p), "%s/b.md", out);
    file_write_atomic(p, "x y x\n", 6, 0644, NULL);
    loco_err err;
    if (agent_sandbox_init(&sb, repo, out, false, false, &err) != LOCO_OK)
        abort();
    ready = true;
    return &sb;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const agent_tool *const tools[] = {&agent_tool_read, &agent_tool_write,
                                              &agent_tool_edit, &agent_tool_bash};
    /* The policy on the raw text. */
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    buf why;
    buf_init(&why, 4096);
    if (!tools_bash_allowed(text, &why) && why.len == 0)
        abort(); /* a refusal always says why */
    buf_release(&why);
    free(text);

    const agent_tool *t = tools[data[0] % 4];
    json_t *args = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
    volatile int cancel = (t == &agent_tool_bash);
    agent_tool_ctx ctx = {.sb = fuzz_sandbox(), .cancel = &cancel, .threads = 1,
                          .max_output = 2000};
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    bool is_error = false;
    loco_status rc = t->run(&ctx, args, &out, &is_error);
    if (rc != LOCO_OK && rc != LOCO_ERR_CANCELLED)
        abort();
    if (rc == LOCO_OK && out.len == 0)
        abort(); /* every call says something */
    if (rc == LOCO_OK && out.len > 2000 + 1024 && t == &agent_tool_read)
        abort(); /* Read honours the cap */
    buf_release(&out);
    json_decref(args);
    return 0;
}
