/* tools.c: the table of the explorer's native tools (tools.h). Each tool lives in its own
 * tool_<name>.c; the table fixes the order the tools are offered to the model in. */
#include "base/common.h"

#include "agent/tools.h"

static const agent_tool *const tools_table[] = {
    &agent_tool_read, &agent_tool_grep,  &agent_tool_glob, &agent_tool_bash,
    &agent_tool_write, &agent_tool_edit, &agent_tool_task,
};

const agent_tool *const *agent_tools_all(size_t *out_n)
{
    *out_n = LOCO_ARRAY_LEN(tools_table);
    return tools_table;
}

const agent_tool *agent_tools_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < LOCO_ARRAY_LEN(tools_table); i++) {
        if (!strcmp(tools_table[i]->name, name))
            return tools_table[i];
    }
    return NULL;
}
