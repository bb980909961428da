/* fuzz_reconcile.c: libFuzzer target for gateway/reconcile. The input's first byte picks the
 * tool the model called (Grep, Glob, Read, LS, Task, grep) and the tools offered; the rest
 * is args_json. Must never crash; a MAPPED answer to Bash must be a JSON object with a
 * string "command", any other MAPPED answer a JSON object, and UNMAPPABLE a reason. */
#include "base/common.h"

#include "base/json.h"
#include "gateway/reconcile.h"

static const char *const fuzz_tools[] = {"Grep", "Glob", "Read", "LS", "Task", "grep"};

static void fuzz_check(reconcile_action a, const char *target, const buf *out, const char *why)
{
    if (a == RECONCILE_UNMAPPABLE) {
        if (target || out->len || !why[0])
            abort();
        return;
    }
    if (a != RECONCILE_MAPPED)
        return;
    json_t *v = json_parse(out->data, out->len, NULL);
    if (!json_is_object(v))
        abort();
    if (!strcmp(target, "Bash") &&
        (!json_get_str(v, "command") || !json_get_str(v, "description")))
        abort();
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *name = fuzz_tools[data[0] % LOCO_ARRAY_LEN(fuzz_tools)];
    bool offer_agent = data[0] & 0x80;
    char *args = malloc(size);
    if (!args)
        return 0;
    memcpy(args, data + 1, size - 1);
    args[size - 1] = '\0';
    chat_request *req = chat_request_new();
    if (!req || !chat_request_add_tool(req, "Bash", NULL, NULL) ||
        (offer_agent && !chat_request_add_tool(req, "Agent", NULL, NULL)) ||
        !chat_request_add_tool(req, "Skill", NULL, NULL))
        abort();
    buf out;
    buf_init(&out, 1 << 20);
    const char *target = NULL;
    char why[256];
    reconcile_action a = reconcile_tool_call(req, name, args, &target, &out, why, sizeof why);
    fuzz_check(a, target, &out, why);
    buf_release(&out);
    chat_request_free(req);
    free(args);
    return 0;
}
