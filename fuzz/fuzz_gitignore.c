/* fuzz_gitignore.c: gitignore parsing and matching, wildmatch and glob sets on arbitrary bytes.
 * The input is "<ignore file>\0<path>\0<glob>": never crashes, and matching is deterministic. */
#include "base/common.h"

#include "agent/gitignore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Copies the next NUL-separated field of data into a fresh string. */
static char *field(const uint8_t *data, size_t size, size_t *pos)
{
    size_t start = *pos;
    while (*pos < size && data[*pos])
        (*pos)++;
    char *s = malloc(*pos - start + 1);
    if (!s)
        return NULL;
    memcpy(s, data + start, *pos - start);
    s[*pos - start] = '\0';
    if (*pos < size)
        (*pos)++;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    size_t pos = 0;
    char *rules = field(data, size, &pos);
    char *path = field(data, size, &pos);
    char *glob = field(data, size, &pos);
    if (!rules || !path || !glob)
        goto out;

    gitignore *gi = NULL;
    if (gitignore_parse(rules, strlen(rules), &gi, NULL) == LOCO_OK) {
        gitignore_result a = gitignore_match(gi, path, false);
        gitignore_result b = gitignore_match(gi, path, true);
        if (a != gitignore_match(gi, path, false) || b != gitignore_match(gi, path, true))
            abort();
        gitignore_free(gi);
    }
    bool w1 = gitignore_wildmatch(rules, path, true);
    bool w2 = gitignore_wildmatch(glob, path, false);
    if (w1 != gitignore_wildmatch(rules, path, true) || w2 != gitignore_wildmatch(glob, path, false))
        abort();
    /* a pattern with no special characters matches itself */
    if (!strpbrk(path, "*?[\\") && !gitignore_wildmatch(path, path, true))
        abort();

    gitignore_globset *set = NULL;
    loco_err err;
    if (gitignore_globset_add(&set, glob, &err) == LOCO_OK) {
        (void)gitignore_globset_allows(set, path);
        (void)gitignore_globset_prunes_dir(set, path);
    } else if (err.msg[0] == '\0') {
        abort();
    }
    gitignore_globset_free(set);
out:
    free(rules);
    free(path);
    free(glob);
    return 0;
}
