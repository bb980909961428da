/* trained.c: LocoOperator-4B's trained tools and the reconciliation name list (chat/trained.h).
 * Part of chat/. */
#include "base/common.h"

#include "chat/trained.h"

#define COUNT "{\"type\":\"integer\",\"minimum\":0,\"maximum\":2147483647}"

static const chat_tool trained[] = {
    {"Read", "Read a file",
     "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\",\"minLength\":1},"
     "\"offset\":" COUNT ",\"limit\":" COUNT "},\"required\":[\"file_path\"]}"},
    {"Grep", "Search file contents",
     "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\"},"
     "\"path\":{\"type\":\"string\"},\"glob\":{\"type\":\"string\"},"
     "\"output_mode\":{\"type\":\"string\",\"enum\":[\"content\",\"files_with_matches\","
     "\"count\"]},\"-B\":" COUNT ",\"-A\":" COUNT ",\"-C\":" COUNT ","
     "\"-n\":{\"type\":\"boolean\"},\"-i\":{\"type\":\"boolean\"},\"type\":{\"type\":\"string\"},"
     "\"head_limit\":" COUNT ",\"multiline\":{\"type\":\"boolean\"}},\"required\":[\"pattern\"]}"},
    {"Glob", "Find files by pattern",
     "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\",\"minLength\":1},"
     "\"path\":{\"type\":\"string\"}},\"required\":[\"pattern\"]}"},
    {"Bash", "Run a shell command",
     "{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\"},"
     "\"timeout\":{\"type\":\"number\"},\"description\":{\"type\":\"string\"},"
     "\"run_in_background\":{\"type\":\"boolean\"}},\"required\":[\"command\"]}"},
    {"Write", "Write a file",
     "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"},"
     "\"content\":{\"type\":\"string\"}},\"required\":[\"file_path\",\"content\"]}"},
    {"Edit", "Replace text in a file",
     "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"},"
     "\"old_string\":{\"type\":\"string\"},\"new_string\":{\"type\":\"string\"},"
     "\"replace_all\":{\"type\":\"boolean\"}},"
     "\"required\":[\"file_path\",\"old_string\",\"new_string\"]}"},
    {"Task", "Run a sub-agent",
     "{\"type\":\"object\",\"properties\":{\"description\":{\"type\":\"string\"},"
     "\"prompt\":{\"type\":\"string\"},\"subagent_type\":{\"type\":\"string\"}},"
     "\"required\":[\"description\",\"prompt\",\"subagent_type\"]}"},
};

static const chat_tool ls_tool = {
    "LS", "List a directory",
    "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},"
    "\"ignore\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}"};

static const chat_tool_mapping mappings[] = {
    {"Task", "Agent", true}, {"Agent", "Task", true}, {"Grep", "Bash", false},
    {"Glob", "Bash", false}, {"LS", "Bash", false},   {"Read", "Bash", false},
};

const chat_tool *chat_trained_tools(size_t *out_n)
{
    *out_n = LOCO_ARRAY_LEN(trained);
    return trained;
}

const chat_tool *chat_trained_tool(const char *name)
{
    for (size_t i = 0; name && i < LOCO_ARRAY_LEN(trained); i++) {
        if (!strcasecmp(trained[i].name, name))
            return &trained[i];
    }
    return name && !strcasecmp(name, ls_tool.name) ? &ls_tool : NULL;
}

const chat_tool_mapping *chat_tool_mappings(size_t *out_n)
{
    *out_n = LOCO_ARRAY_LEN(mappings);
    return mappings;
}
