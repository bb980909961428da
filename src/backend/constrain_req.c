/* constrain_req.c: a request's tools and tool_choice -> the engine's tool-call constraint
 * (backend/constrain_req.h). Backend layer. */
#include "base/common.h"

#include "backend/constrain_req.h"
#include "chat/trained.h"

static const chat_tool *offered(const chat_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_tools; i++) {
        if (req->tools[i].name && !strcasecmp(req->tools[i].name, name))
            return &req->tools[i];
    }
    return NULL;
}

loco_status constrain_req_tools(const chat_request *req, constrain_tool **out_tools, size_t *out_n,
                                constrain_mode *out_mode)
{
    size_t n_map;
    const chat_tool_mapping *maps = chat_tool_mappings(&n_map);
    size_t n_trained;
    const chat_tool *trained = chat_trained_tools(&n_trained);
    size_t cap = (req->n_tools ? req->n_tools + n_map : n_trained) + 1;
    constrain_tool *t = calloc(cap, sizeof(*t));
    if (!t)
        return LOCO_ERR_NOMEM;
    size_t n = 0;
    constrain_mode mode = req->tool_choice == CHAT_TOOL_CHOICE_ANY    ? CONSTRAIN_FORCE
                          : req->tool_choice == CHAT_TOOL_CHOICE_NONE ? CONSTRAIN_NO_CALLS
                                                                      : CONSTRAIN_AUTO;
    const chat_tool *named = req->tool_choice == CHAT_TOOL_CHOICE_TOOL && req->tool_choice_name
                                 ? chat_request_find_tool(req, req->tool_choice_name)
                                 : NULL;
    if (named) {
        t[n++] = (constrain_tool){named->name, named->schema_json};
        mode = CONSTRAIN_FORCE;
    } else if (req->n_tools) {
        for (size_t i = 0; i < req->n_tools; i++)
            t[n++] = (constrain_tool){req->tools[i].name, req->tools[i].schema_json};
        for (size_t i = 0; i < n_map; i++) {
            const chat_tool *to = offered(req, maps[i].to);
            if (!to || offered(req, maps[i].from))
                continue;
            const chat_tool *own = chat_trained_tool(maps[i].from);
            const char *schema = maps[i].keep_args ? to->schema_json
                                 : own             ? own->schema_json
                                                   : NULL;
            t[n++] = (constrain_tool){maps[i].from, schema};
        }
    } else {
        for (size_t i = 0; i < n_trained; i++)
            t[n++] = (constrain_tool){trained[i].name, trained[i].schema_json};
    }
    *out_tools = t;
    *out_n = n;
    *out_mode = mode;
    return LOCO_OK;
}

loco_status constrain_req_new(const tok *t, const constrain_vocab *v, const chat_request *req,
                              long max_tokens, constrain **out, loco_err *err)
{
    constrain_tool *tools = NULL;
    size_t n = 0;
    constrain_opts o;
    memset(&o, 0, sizeof(o));
    if (constrain_req_tools(req, &tools, &n, &o.mode))
        return loco_err_set(err, LOCO_ERR_NOMEM, "constrain: out of memory");
    o.vocab = v;
    o.max_tokens = max_tokens;
    loco_status rc = constrain_new(t, tools, n, &o, out, err);
    free(tools);
    return rc;
}
