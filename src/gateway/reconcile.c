/* reconcile.c: maps a local model's tool call onto the tools the client offers (see
 * reconcile.h). Shell commands are built only from shell-quoted words; every mapping is
 * read-only. Part of gateway/, used by the local route before tool_use blocks go out. */
#include "base/common.h"

#include "base/json.h"
#include "base/str.h"
#include "gateway/reconcile.h"

/* Bytes of a pattern or path shown in a mapped command's description. */
#define RECONCILE_DESC_ARG_MAX 80

/* ---- small helpers ---- */

static void why_set(char *why, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void why_set(char *why, size_t size, const char *fmt, ...)
{
    if (!why || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(why, size, fmt, ap);
    va_end(ap);
    if (n < 0)
        why[0] = '\0';
}

/* Mapping context: the arguments object and the reason slot. */
typedef struct {
    const char *tool; /* the name the model called */
    json_t *args;     /* parsed arguments object */
    char *why;
    size_t why_size;
    bool failed;      /* why holds the first reason */
} mapctx;

static bool map_fail(mapctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool map_fail(mapctx *c, const char *fmt, ...)
{
    if (c->failed)
        return false;
    c->failed = true;
    char tail[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tail, sizeof tail, fmt, ap);
    va_end(ap);
    if (n < 0)
        tail[0] = '\0';
    why_set(c->why, c->why_size, "%s: %s", c->tool, tail);
    return false;
}

/* Optional string argument: absent or null -> *out = NULL. Another type, or a string with an
 * embedded NUL (it could not be passed on faithfully), fails. */
static bool arg_str(mapctx *c, const char *key, const char **out)
{
    json_t *v = json_object_get(c->args, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v))
        return map_fail(c, "argument '%s' is not a string", key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return map_fail(c, "argument '%s' contains a NUL byte", key);
    *out = json_string_value(v);
    return true;
}

/* Optional non-negative integer argument (a JSON integer, an integral number or a decimal
 * string, as models write them). *set tells whether it was given. */
static bool arg_count(mapctx *c, const char *key, long *out, bool *set)
{
    json_t *v = json_object_get(c->args, key);
    *set = false;
    if (!v || json_is_null(v))
        return true;
    long x = -1;
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= INT_MAX) {
        x = (long)json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) <= INT_MAX &&
               json_real_value(v) == (double)(long)json_real_value(v)) {
        x = (long)json_real_value(v);
    } else if (json_is_string(v) &&
               str_parse_long(json_string_value(v), 0, INT_MAX, &x) == LOCO_OK) {
        /* parsed */
    } else {
        return map_fail(c, "argument '%s' is not a non-negative integer", key);
    }
    *out = x;
    *set = true;
    return true;
}

/* Optional boolean argument (JSON boolean or "true"/"false"...); absent -> def. */
static bool arg_bool(mapctx *c, const char *key, bool def, bool *out)
{
    json_t *v = json_object_get(c->args, key);
    *out = def;
    if (!v || json_is_null(v))
        return true;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return true;
    }
    if (json_is_string(v) && str_parse_bool(json_string_value(v), out) == LOCO_OK)
        return true;
    return map_fail(c, "argument '%s' is not a boolean", key);
}

/* Appends " " + word shell-quoted. */
static loco_status cmd_word(buf *cmd, const char *word)
{
    loco_status rc = buf_appendc(cmd, ' ');
    return rc ? rc : str_shell_quote(cmd, word);
}

/* Appends " " + opt + word shell-quoted (opt like "--include="). */
static loco_status cmd_opt(buf *cmd, const char *opt, const char *word)
{
    loco_status rc = buf_appendf(cmd, " %s", opt);
    return rc ? rc : str_shell_quote(cmd, word);
}

/* A path given to a command must not read as an option. */
static loco_status cmd_path(buf *cmd, const char *path)
{
    if (path[0] == '-') {
        loco_status rc = buf_appends(cmd, " ./");
        return rc ? rc : str_shell_quote(cmd, path);
    }
    return cmd_word(cmd, path);
}

/* Appends the description "<tool> <arg> (mapped by loco)", arg cut on a UTF-8 boundary. */
static loco_status desc_set(buf *desc, const char *tool, const char *arg)
{
    size_t n = strlen(arg);
    bool cut = n > RECONCILE_DESC_ARG_MAX;
    if (cut)
        n = str_utf8_complete_len(arg, RECONCILE_DESC_ARG_MAX);
    loco_status rc = buf_appendf(desc, "%s ", tool);
    if (!rc)
        rc = buf_append(desc, arg, n);
    if (!rc && cut)
        rc = buf_appends(desc, "...");
    if (!rc)
        rc = buf_appends(desc, " (mapped by loco)");
    return rc;
}

/* ---- glob lists ---- */

typedef struct {
    char *items[RECONCILE_MAX_GLOBS];
    size_t n;
} globlist;

static void globlist_free(globlist *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->items[i]);
    g->n = 0;
}

static bool globlist_add(globlist *g, const char *s, size_t n)
{
    if (g->n >= RECONCILE_MAX_GLOBS)
        return false;
    char *p = malloc(n + 1);
    if (!p)
        return false;
    memcpy(p, s, n);
    p[n] = '\0';
    g->items[g->n++] = p;
    return true;
}

/* Finds the first brace group with a top-level comma: *open and *close index its braces. */
static bool brace_find(const char *s, size_t *open, size_t *close)
{
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '\\' && s[i + 1]) {
            i++;
            continue;
        }
        if (s[i] != '{')
            continue;
        int depth = 0;
        bool comma = false;
        for (size_t j = i; s[j]; j++) {
            if (s[j] == '\\' && s[j + 1]) {
                j++;
            } else if (s[j] == '{') {
                depth++;
            } else if (s[j] == '}' && --depth == 0) {
                if (!comma)
                    break;
                *open = i;
                *close = j;
                return true;
            } else if (s[j] == ',' && depth == 1) {
                comma = true;
            }
        }
    }
    return false;
}

/* Brace-expands s ("*.{ts,tsx}" -> "*.ts", "*.tsx"; nested groups too) into g. False when
 * the expansion has more than RECONCILE_MAX_GLOBS items or memory runs out. */
static bool brace_expand(const char *s, globlist *g, int depth)
{
    size_t open, close;
    if (depth > 16 || !brace_find(s, &open, &close))
        return globlist_add(g, s, strlen(s));
    size_t start = open + 1;
    int level = 0;
    for (size_t j = open + 1; j <= close; j++) {
        if (s[j] == '\\' && j + 1 < close) {
            j++;
            continue;
        }
        if (s[j] == '{')
            level++;
        else if (s[j] == '}' && j != close)
            level--;
        if (!((s[j] == ',' && level == 0) || j == close))
            continue;
        size_t alt = j - start, rest = strlen(s + close + 1);
        char *one = malloc(open + alt + rest + 1);
        if (!one)
            return false;
        memcpy(one, s, open);
        memcpy(one + open, s + start, alt);
        memcpy(one + open + alt, s + close + 1, rest + 1);
        bool ok = brace_expand(one, g, depth + 1);
        free(one);
        if (!ok)
            return false;
        start = j + 1;
    }
    return true;
}

static bool has_glob_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strchr("*?[{\\", s[i]))
            return true;
    }
    return false;
}

/* Length of the leading directories of pattern that hold no glob characters ("src/lib/"
 * of "src/lib/STAR-STAR/x.c"); the last segment is never part of it. */
static size_t literal_dir_prefix(const char *pattern)
{
    size_t keep = 0;
    for (size_t i = 0; pattern[i]; i++) {
        if (pattern[i] != '/')
            continue;
        if (has_glob_chars(pattern + keep, i - keep))
            break;
        keep = i + 1;
    }
    return keep;
}

/* base joined with the first n bytes of dir ("src/"), into out (malloc'd). */
static char *path_join(const char *base, const char *dir, size_t n)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    loco_status rc = LOCO_OK;
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (dir[0] == '/' || !base || !base[0]) {
        rc = buf_append(&b, dir, n);
    } else {
        size_t bl = strlen(base);
        while (bl > 1 && base[bl - 1] == '/')
            bl--;
        rc = buf_append(&b, base, bl);
        if (!rc && n && !(bl == 1 && base[0] == '/'))
            rc = buf_appendc(&b, '/');
        if (!rc)
            rc = buf_append(&b, dir, n);
    }
    if (rc) {
        buf_release(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

/* ---- Grep -> grep ---- */

static const struct {
    const char *type;
    const char *globs; /* space-separated */
} grep_types[] = {
    {"py", "*.py *.pyi"},        {"python", "*.py *.pyi"},
    {"js", "*.js *.jsx *.mjs *.cjs"},
    {"ts", "*.ts *.tsx *.mts *.cts"},
    {"typescript", "*.ts *.tsx *.mts *.cts"},
    {"go", "*.go"},              {"rust", "*.rs"},          {"rs", "*.rs"},
    {"c", "*.c *.h"},            {"cpp", "*.cpp *.cc *.cxx *.hpp *.hh *.hxx *.h *.inl"},
    {"java", "*.java"},          {"kotlin", "*.kt *.kts"},  {"scala", "*.scala *.sc"},
    {"rb", "*.rb"},              {"ruby", "*.rb *.gemspec *.rake"},
    {"php", "*.php"},            {"cs", "*.cs"},            {"csharp", "*.cs"},
    {"swift", "*.swift"},        {"sh", "*.sh *.bash *.zsh"},
    {"md", "*.md *.markdown"},   {"markdown", "*.md *.markdown"},
    {"json", "*.json"},          {"yaml", "*.yaml *.yml"},  {"yml", "*.yaml *.yml"},
    {"toml", "*.toml"},          {"xml", "*.xml"},          {"html", "*.html *.htm"},
    {"css", "*.css *.scss *.sass *.less"},                  {"sql", "*.sql"},
    {"txt", "*.txt"},            {"lua", "*.lua"},          {"vue", "*.vue"},
    {"proto", "*.proto"},        {"make", "Makefile *.mk *.mak"},
    {"cmake", "CMakeLists.txt *.cmake"},
};

/* Fills g with the file globs of a ripgrep-style type name. */
static bool type_globs(mapctx *c, const char *type, globlist *g)
{
    for (size_t i = 0; i < LOCO_ARRAY_LEN(grep_types); i++) {
        if (strcasecmp(grep_types[i].type, type) != 0)
            continue;
        const char *p = grep_types[i].globs;
        while (*p) {
            size_t n = strcspn(p, " ");
            if (!globlist_add(g, p, n))
                return map_fail(c, "out of memory");
            p += n + (p[n] == ' ');
        }
        return true;
    }
    char one[128];
    int n = snprintf(one, sizeof one, "*.%s", type);
    if (n < 0 || (size_t)n >= sizeof one || !globlist_add(g, one, (size_t)n))
        return map_fail(c, "type '%s' is not usable", type);
    return true;
}

/* Splits Claude's glob argument like its Grep does: on whitespace, then on commas outside
 * braces, each piece brace-expanded; a piece with '/' keeps only its last segment (grep
 * --include matches base names), its literal leading directories joining *dir when the
 * argument is one piece. */
static bool grep_globs(mapctx *c, const char *glob, globlist *g, char **dir)
{
    const char *p = glob;
    size_t pieces = 0;
    while (*p) {
        p += strspn(p, " \t\r\n");
        size_t n = strcspn(p, " \t\r\n");
        if (!n)
            break;
        char *word = malloc(n + 1);
        if (!word)
            return map_fail(c, "out of memory");
        memcpy(word, p, n);
        word[n] = '\0';
        p += n;
        pieces++;
        globlist tmp = {.n = 0};
        bool ok = brace_expand(word, &tmp, 0);
        if (ok && !strchr(word, '{') && strchr(word, ',')) {
            /* "*.ts,*.tsx" without braces: a list */
            globlist_free(&tmp);
            const char *q = word;
            while (ok && *q) {
                size_t m = strcspn(q, ",");
                if (m)
                    ok = globlist_add(&tmp, q, m);
                q += m + (q[m] == ',');
            }
        }
        size_t pre = ok ? literal_dir_prefix(word) : 0;
        if (ok && pre && pieces == 1 && !*(p + strspn(p, " \t\r\n"))) {
            char *joined = path_join(*dir, word, pre);
            ok = joined != NULL;
            free(*dir);
            *dir = joined;
        }
        for (size_t i = 0; ok && i < tmp.n; i++) {
            const char *slash = strrchr(tmp.items[i], '/');
            const char *base = slash ? slash + 1 : tmp.items[i];
            if (*base)
                ok = globlist_add(g, base, strlen(base));
        }
        globlist_free(&tmp);
        free(word);
        if (!ok)
            return map_fail(c, "glob '%s' expands to too many patterns", glob);
    }
    return true;
}

typedef struct {
    const char *pattern, *path, *glob, *type, *mode;
    bool ci, numbers, multiline;
    long after, before, context, head, offset;
    bool has_after, has_before, has_context, has_head, has_offset;
} grep_args;

static bool grep_read_args(mapctx *c, grep_args *a)
{
    if (!arg_str(c, "pattern", &a->pattern))
        return false;
    if (!a->pattern)
        return map_fail(c, "argument 'pattern' is missing");
    bool ok = arg_str(c, "path", &a->path) && arg_str(c, "glob", &a->glob) &&
              arg_str(c, "type", &a->type) && arg_str(c, "output_mode", &a->mode) &&
              arg_bool(c, "-i", false, &a->ci) && arg_bool(c, "-n", true, &a->numbers) &&
              arg_bool(c, "multiline", false, &a->multiline) &&
              arg_count(c, "-A", &a->after, &a->has_after) &&
              arg_count(c, "-B", &a->before, &a->has_before) &&
              arg_count(c, "-C", &a->context, &a->has_context) &&
              arg_count(c, "head_limit", &a->head, &a->has_head) &&
              arg_count(c, "offset", &a->offset, &a->has_offset);
    if (!ok)
        return false;
    if (!a->mode || !a->mode[0])
        a->mode = "files_with_matches";
    if (strcmp(a->mode, "files_with_matches") && strcmp(a->mode, "content") &&
        strcmp(a->mode, "count"))
        return map_fail(c, "unknown output_mode '%s'", a->mode);
    if (a->path && !a->path[0])
        a->path = NULL;
    return true;
}

static loco_status grep_flags(buf *cmd, const grep_args *a, bool content)
{
    loco_status rc = buf_appends(cmd, "grep -r -I -P");
    if (!rc && !strcmp(a->mode, "files_with_matches"))
        rc = buf_appends(cmd, " -l");
    if (!rc && !strcmp(a->mode, "count"))
        rc = buf_appends(cmd, " -c");
    if (!rc && content && a->numbers && !a->multiline)
        rc = buf_appends(cmd, " -n");
    if (!rc && a->ci)
        rc = buf_appends(cmd, " -i");
    if (!rc && content && a->has_after)
        rc = buf_appendf(cmd, " -A %ld", a->after);
    if (!rc && content && a->has_before)
        rc = buf_appendf(cmd, " -B %ld", a->before);
    if (!rc && content && a->has_context)
        rc = buf_appendf(cmd, " -C %ld", a->context);
    if (!rc && a->multiline)
        rc = buf_appends(cmd, content ? " -z -o" : " -z");
    if (!rc)
        rc = buf_appends(cmd, " --exclude-dir=.git");
    return rc;
}

static loco_status grep_pipes(buf *cmd, const grep_args *a, bool content)
{
    loco_status rc = LOCO_OK;
    if (content && a->multiline)
        rc = buf_appends(cmd, " | tr '\\0' '\\n'");
    if (!rc && !strcmp(a->mode, "count"))
        rc = buf_appends(cmd, " | grep -v ':0$'");
    if (!rc && a->has_offset && a->offset > 0)
        rc = buf_appendf(cmd, " | tail -n +%ld", a->offset + 1);
    if (!rc && a->has_head && a->head > 0)
        rc = buf_appendf(cmd, " | head -n %ld", a->head);
    return rc;
}

static bool map_grep(mapctx *c, buf *cmd, buf *desc)
{
    grep_args a;
    memset(&a, 0, sizeof a);
    if (!grep_read_args(c, &a))
        return false;
    bool content = !strcmp(a.mode, "content");
    globlist g = {.n = 0};
    char *dir = a.path ? strdup(a.path) : NULL;
    bool ok = (!a.path || dir) && (!a.glob || grep_globs(c, a.glob, &g, &dir)) &&
              (a.glob || !a.type || type_globs(c, a.type, &g));
    loco_status rc = ok ? grep_flags(cmd, &a, content) : LOCO_OK;
    for (size_t i = 0; ok && !rc && i < g.n; i++)
        rc = cmd_opt(cmd, "--include=", g.items[i]);
    if (ok && !rc)
        rc = cmd_opt(cmd, "-e ", a.pattern);
    if (ok && !rc && dir)
        rc = buf_appends(cmd, " --");
    if (ok && !rc && dir)
        rc = cmd_path(cmd, dir);
    if (ok && !rc)
        rc = grep_pipes(cmd, &a, content);
    if (ok && !rc)
        rc = desc_set(desc, "Grep", a.pattern);
    globlist_free(&g);
    free(dir);
    if (ok && rc)
        return map_fail(c, "the command would exceed %d bytes", RECONCILE_MAX_COMMAND);
    return ok;
}

/* ---- Glob -> find ---- */

/* Appends s as a POSIX extended regular expression matching it literally. */
static loco_status re_literal(buf *re, const char *s, size_t n)
{
    loco_status rc = LOCO_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        if (strchr(".^$+()[]{}|\\*?", s[i]))
            rc = buf_appendc(re, '\\');
        if (!rc)
            rc = buf_appendc(re, s[i]);
    }
    return rc;
}

/* Appends the bracket expression at s ("[a-z]", "[!x]") and returns its length, or 0 when
 * it is not closed (then '[' is literal). */
static size_t re_bracket(buf *re, const char *s, loco_status *rc)
{
    size_t i = 1;
    if (s[i] == '!' || s[i] == '^')
        i++;
    if (s[i] == ']')
        i++;
    while (s[i] && s[i] != ']')
        i++;
    if (!s[i])
        return 0;
    bool neg = s[1] == '!' || s[1] == '^';
    *rc = buf_appends(re, neg ? "[^" : "[");
    if (!*rc)
        *rc = buf_append(re, s + 1 + neg, i - 1 - neg);
    if (!*rc)
        *rc = buf_appendc(re, ']');
    return i + 1;
}

/* Appends glob (no braces left) as an ERE: a STAR-STAR segment any directories, "*" and
 * "?" within one path segment, [...] classes, backslash escapes. */
static loco_status re_glob(buf *re, const char *g)
{
    loco_status rc = LOCO_OK;
    size_t i = 0;
    while (g[i] && !rc) {
        bool seg_start = i == 0 || g[i - 1] == '/';
        if (!strncmp(g + i, "**", 2) && seg_start && (g[i + 2] == '/' || !g[i + 2])) {
            rc = buf_appends(re, g[i + 2] ? "(.*/)?" : ".*");
            i += g[i + 2] ? 3 : 2;
        } else if (g[i] == '*') {
            rc = buf_appends(re, "[^/]*");
            i += strspn(g + i, "*");
        } else if (g[i] == '?') {
            rc = buf_appends(re, "[^/]");
            i++;
        } else if (g[i] == '[') {
            size_t n = re_bracket(re, g + i, &rc);
            if (!n)
                rc = re_literal(re, g + i, 1);
            i += n ? n : 1;
        } else if (g[i] == '\\' && g[i + 1]) {
            rc = re_literal(re, g + i + 1, 1);
            i += 2;
        } else {
            rc = re_literal(re, g + i, 1);
            i++;
        }
    }
    return rc;
}

/* True when every item is a base-name glob at any depth ("*.ts", or "*.ts" behind leading
 * STAR-STAR segments); then those segments are dropped so -name can take the items. */
static bool glob_names_only(globlist *g, bool had_slash)
{
    for (size_t i = 0; i < g->n; i++) {
        const char *s = g->items[i];
        while (!strncmp(s, "**/", 3))
            s += 3;
        if (strchr(s, '/') || (had_slash && s == g->items[i]) || !strcmp(s, "**"))
            return false;
    }
    for (size_t i = 0; i < g->n; i++) {
        char *s = g->items[i];
        size_t skip = 0;
        while (!strncmp(s + skip, "**/", 3))
            skip += 3;
        memmove(s, s + skip, strlen(s + skip) + 1);
    }
    return true;
}

static loco_status glob_tests(buf *cmd, globlist *g, const char *start, bool names)
{
    loco_status rc = buf_appends(cmd, g->n > 1 ? " \\(" : "");
    for (size_t i = 0; i < g->n && !rc; i++) {
        if (i)
            rc = buf_appends(cmd, " -o");
        if (!rc && names) {
            rc = cmd_opt(cmd, "-name ", g->items[i]);
            continue;
        }
        buf re;
        buf_init(&re, RECONCILE_MAX_COMMAND);
        if (!rc)
            rc = re_literal(&re, start, strlen(start));
        if (!rc && strcmp(start, "/"))
            rc = buf_appendc(&re, '/');
        if (!rc)
            rc = re_glob(&re, g->items[i]);
        if (!rc)
            rc = cmd_opt(cmd, "-regex ", buf_str(&re));
        buf_release(&re);
    }
    if (!rc && g->n > 1)
        rc = buf_appends(cmd, " \\)");
    return rc;
}

/* The directory find starts from: base plus the pattern's literal leading directories
 * (an absolute pattern replaces base), trailing slashes dropped, "./" before a leading '-'
 * so find does not read it as an option (find prints paths starting with it, so the
 * -regex prefix must see the same text). malloc'd; NULL on failure. */
static char *glob_start(const char *base, const char *pattern, size_t pre)
{
    char *joined = pre ? path_join(base, pattern, pre) : path_join(NULL, base, strlen(base));
    if (!joined || joined[0] != '-')
        return joined;
    char *dotted = path_join(".", joined, strlen(joined));
    free(joined);
    return dotted;
}

static bool map_glob(mapctx *c, buf *cmd, buf *desc)
{
    const char *pattern, *path;
    if (!arg_str(c, "pattern", &pattern) || !arg_str(c, "path", &path))
        return false;
    if (!pattern || !pattern[0])
        return map_fail(c, "argument 'pattern' is missing");
    size_t pre = literal_dir_prefix(pattern);
    const char *base = path && path[0] ? path : ".";
    char *start = glob_start(base, pattern, pre);
    globlist g = {.n = 0};
    bool ok = start && brace_expand(pattern + pre, &g, 0);
    if (!ok) {
        free(start);
        globlist_free(&g);
        return map_fail(c, "pattern '%s' expands to too many patterns", pattern);
    }
    bool names = glob_names_only(&g, strchr(pattern, '/') != NULL);
    loco_status rc = buf_appends(cmd, "find");
    if (!rc)
        rc = cmd_path(cmd, start);
    if (!rc && !names)
        rc = buf_appends(cmd, " -regextype posix-extended");
    if (!rc)
        rc = buf_appends(cmd, " -name .git -prune -o -type f");
    if (!rc)
        rc = glob_tests(cmd, &g, start, names);
    if (!rc)
        rc = buf_appendf(cmd, " -printf '%%T@ %%p\\n' | sort -rn | cut -d' ' -f2- | head -n %d",
                         RECONCILE_GLOB_LIMIT);
    if (!rc)
        rc = desc_set(desc, "Glob", pattern);
    free(start);
    globlist_free(&g);
    if (rc)
        return map_fail(c, "the command would exceed %d bytes", RECONCILE_MAX_COMMAND);
    return true;
}

/* ---- LS and Read -> Bash ---- */

static bool map_ls(mapctx *c, buf *cmd, buf *desc)
{
    const char *path;
    if (!arg_str(c, "path", &path))
        return false;
    if (!path || !path[0])
        path = ".";
    json_t *ignore = json_object_get(c->args, "ignore");
    if (ignore && !json_is_null(ignore) && !json_is_array(ignore))
        return map_fail(c, "argument 'ignore' is not an array");
    loco_status rc = buf_appends(cmd, "ls -la");
    size_t i;
    json_t *v;
    json_array_foreach(ignore, i, v) {
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            return map_fail(c, "argument 'ignore' holds a non-string");
        if (!rc)
            rc = cmd_opt(cmd, "--ignore=", json_string_value(v));
    }
    if (!rc)
        rc = buf_appends(cmd, " --");
    if (!rc)
        rc = cmd_path(cmd, path);
    if (!rc)
        rc = desc_set(desc, "LS", path);
    if (rc)
        return map_fail(c, "the command would exceed %d bytes", RECONCILE_MAX_COMMAND);
    return true;
}

/* Claude Code's Read prints "cat -n" style lines starting at line offset (1-based). */
static bool map_read(mapctx *c, buf *cmd, buf *desc)
{
    const char *path;
    long offset = 1, limit = RECONCILE_READ_LIMIT;
    bool has_offset, has_limit;
    if (!arg_str(c, "file_path", &path) || !arg_count(c, "offset", &offset, &has_offset) ||
        !arg_count(c, "limit", &limit, &has_limit))
        return false;
    if (!path || !path[0])
        return map_fail(c, "argument 'file_path' is missing");
    if (!has_offset || offset < 1)
        offset = 1;
    if (!has_limit || limit < 1)
        limit = RECONCILE_READ_LIMIT;
    long last = offset + limit - 1;
    loco_status rc = buf_appends(cmd, "cat -n --");
    if (!rc)
        rc = cmd_path(cmd, path);
    if (!rc)
        rc = buf_appendf(cmd, " | sed -n '%ld,%ldp;%ldq'", offset, last, last);
    if (!rc)
        rc = desc_set(desc, "Read", path);
    if (rc)
        return map_fail(c, "the command would exceed %d bytes", RECONCILE_MAX_COMMAND);
    return true;
}

/* ---- dispatch ---- */

static const chat_tool *find_tool_ci(const chat_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_tools; i++) {
        if (req->tools[i].name && !strcasecmp(req->tools[i].name, name))
            return &req->tools[i];
    }
    return NULL;
}

static const chat_tool *find_tool(const chat_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_tools; i++) {
        if (req->tools[i].name && !strcmp(req->tools[i].name, name))
            return &req->tools[i];
    }
    return NULL;
}

/* "A, B, C" of the offered tools, cut to fit out. */
static void offered_list(const chat_request *req, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < req->n_tools && used + 1 < size; i++) {
        int n = snprintf(out + used, size - used, "%s%s", i ? ", " : "",
                         req->tools[i].name ? req->tools[i].name : "?");
        if (n < 0)
            break;
        used += (size_t)n < size - used ? (size_t)n : size - used - 1;
    }
}

/* Builds {"command": cmd, "description": desc}. */
static loco_status bash_args(buf *out, const buf *cmd, const buf *desc)
{
    loco_status rc = buf_appends(out, "{\"command\":");
    if (!rc)
        rc = buf_append_json_str(out, cmd->data, cmd->len);
    if (!rc)
        rc = buf_appends(out, ",\"description\":");
    if (!rc)
        rc = buf_append_json_str(out, desc->data, desc->len);
    if (!rc)
        rc = buf_appendc(out, '}');
    return rc;
}

typedef bool (*bash_mapper)(mapctx *c, buf *cmd, buf *desc);

static bool map_to_bash(mapctx *c, bash_mapper fn, buf *out)
{
    buf cmd, desc;
    buf_init(&cmd, RECONCILE_MAX_COMMAND);
    buf_init(&desc, RECONCILE_MAX_COMMAND);
    bool ok = fn(c, &cmd, &desc);
    if (ok && bash_args(out, &cmd, &desc))
        ok = map_fail(c, "the mapped arguments do not fit the output buffer");
    buf_release(&cmd);
    buf_release(&desc);
    return ok;
}

/* Task <-> Agent: the sub-agent call keeps description, prompt and subagent_type. */
static bool map_subagent(mapctx *c, buf *out)
{
    static const char *const keys[] = {"description", "prompt", "subagent_type"};
    const char *prompt;
    if (!arg_str(c, "prompt", &prompt))
        return false;
    if (!prompt)
        return map_fail(c, "argument 'prompt' is missing");
    json_t *o = json_object();
    bool ok = o != NULL || map_fail(c, "out of memory");
    for (size_t i = 0; ok && i < LOCO_ARRAY_LEN(keys); i++) {
        const char *v;
        ok = arg_str(c, keys[i], &v);
        if (ok && v && json_object_set_new(o, keys[i], json_string(v)))
            ok = map_fail(c, "out of memory");
    }
    if (ok && json_append(out, o))
        ok = map_fail(c, "the mapped arguments do not fit the output buffer");
    json_decref(o);
    return ok;
}

/* Parses args_json into c->args (a JSON object). */
static bool parse_args(mapctx *c, const char *args_json)
{
    const char *text = args_json && args_json[0] ? args_json : "{}";
    c->args = json_parse(text, strlen(text), NULL);
    if (!json_is_object(c->args))
        return map_fail(c, "the arguments are not a JSON object");
    return true;
}

static reconcile_action finish(mapctx *c, bool ok, buf *out_args, size_t old_len,
                               const char *target, const char **out_name)
{
    json_decref(c->args);
    if (!ok) {
        if (out_args->data) {
            out_args->len = old_len;
            out_args->data[old_len] = '\0';
        }
        *out_name = NULL;
        return RECONCILE_UNMAPPABLE;
    }
    why_set(c->why, c->why_size, "%s mapped to %s", c->tool, target);
    *out_name = target;
    return RECONCILE_MAPPED;
}

static bool is_name(const char *name, const char *want)
{
    return strcasecmp(name, want) == 0;
}

static bool map_any(mapctx *c, const chat_request *req, const char *args_json, buf *out_args,
                    const chat_tool **target)
{
    const char *name = c->tool;
    const chat_tool *t = find_tool_ci(req, name);
    if (t) {
        *target = t;
        if (!parse_args(c, args_json))
            return false;
        if (json_append(out_args, c->args))
            return map_fail(c, "the mapped arguments do not fit the output buffer");
        return true;
    }
    if (is_name(name, "Task") || is_name(name, "Agent")) {
        *target = find_tool_ci(req, is_name(name, "Task") ? "Agent" : "Task");
        if (!*target)
            return map_fail(c, "not offered by the client, and no sub-agent tool is");
        return parse_args(c, args_json) && map_subagent(c, out_args);
    }
    bash_mapper fn = is_name(name, "Grep") ? map_grep
                     : is_name(name, "Glob") ? map_glob
                     : is_name(name, "LS")   ? map_ls
                     : is_name(name, "Read") ? map_read
                                             : NULL;
    char offered[160];
    offered_list(req, offered, sizeof offered);
    if (is_name(name, "Write") || is_name(name, "Edit") || is_name(name, "MultiEdit"))
        return map_fail(c, "not offered by the client (offered: %s); a write is never turned "
                           "into a shell command", offered);
    if (!fn)
        return map_fail(c, "not offered by the client (offered: %s) and has no equivalent",
                        offered);
    *target = find_tool_ci(req, "Bash");
    if (!*target)
        return map_fail(c, "not offered by the client (offered: %s), nor is Bash", offered);
    return parse_args(c, args_json) && map_to_bash(c, fn, out_args);
}

reconcile_action reconcile_tool_call(const chat_request *req, const char *name,
                                     const char *args_json, const char **out_name,
                                     buf *out_args, char *why, size_t why_size)
{
    why_set(why, why_size, "%s", "");
    if (!name)
        name = "";
    if (!req || req->n_tools == 0 || find_tool(req, name)) {
        *out_name = name;
        return RECONCILE_KEEP;
    }
    mapctx c = {.tool = name, .args = NULL, .why = why, .why_size = why_size, .failed = false};
    size_t old_len = out_args->len;
    const chat_tool *target = NULL;
    bool ok = map_any(&c, req, args_json, out_args, &target);
    return finish(&c, ok, out_args, old_len, ok ? target->name : NULL, out_name);
}

const char *reconcile_action_str(reconcile_action a)
{
    switch (a) {
    case RECONCILE_KEEP:
        return "keep";
    case RECONCILE_MAPPED:
        return "mapped";
    case RECONCILE_UNMAPPABLE:
        return "unmappable";
    }
    return "unknown";
}
