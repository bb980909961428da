/* gitignore.c: git's ignore-file parser and wildmatch, plus ripgrep-style glob sets with {a,b}
 * alternatives. Used by walk.c (which stacks ignore files per directory), Grep and Glob. */
#include "base/common.h"

#include <ctype.h>

#include "agent/gitignore.h"

typedef struct {
    char *pat;      /* pattern without "!", trailing "/" and leading "/" (owned) */
    bool negate;    /* "!pattern" */
    bool dir_only;  /* "pattern/" */
    bool basename;  /* no "/" in the pattern: matched against the last path component */
} gi_pattern;

struct gitignore {
    gi_pattern *pats;
    size_t n, cap;
};

/* ---- wildmatch ------------------------------------------------------------------------- */

enum { WM_MATCH = 0, WM_NOMATCH, WM_ABORT_ALL, WM_ABORT_TO_STARSTAR };

static bool wm_is_special(unsigned char c)
{
    return c == '*' || c == '?' || c == '[' || c == '\\';
}

/* Matches one "[:name:]" class; -1 for an unknown name. */
static int wm_class(const unsigned char *name, size_t len, unsigned char c)
{
    static const struct {
        const char *name;
        int (*fn)(int);
    } classes[] = {
        {"alnum", isalnum}, {"alpha", isalpha}, {"blank", isblank}, {"cntrl", iscntrl},
        {"digit", isdigit}, {"graph", isgraph}, {"lower", islower}, {"print", isprint},
        {"punct", ispunct}, {"space", isspace}, {"upper", isupper}, {"xdigit", isxdigit},
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(classes); i++) {
        if (strlen(classes[i].name) == len && memcmp(classes[i].name, name, len) == 0)
            return classes[i].fn(c) ? 1 : 0;
    }
    return -1;
}

/* Bracket expression at *pp (just after '['), against character t. Advances *pp to the
 * closing ']'. Returns 1 matched, 0 not, -1 malformed (abort the whole match). */
static int wm_bracket(const unsigned char **pp, unsigned char t)
{
    const unsigned char *p = *pp;
    unsigned char c = *p;
    bool negated = false;
    if (c == '!' || c == '^') {
        negated = true;
        c = *++p;
    }
    unsigned char prev = 0;
    bool matched = false;
    do {
        if (!c)
            return -1;
        if (c == '\\') {
            c = *++p;
            if (!c)
                return -1;
            if (t == c)
                matched = true;
        } else if (c == '-' && prev && p[1] && p[1] != ']') {
            c = *++p;
            if (c == '\\') {
                c = *++p;
                if (!c)
                    return -1;
            }
            if (t <= c && t >= prev)
                matched = true;
            c = 0; /* a range cannot start another range */
        } else if (c == '[' && p[1] == ':') {
            const unsigned char *s = p + 2;
            const unsigned char *q = s;
            while (*q && *q != ']')
                q++;
            if (!*q)
                return -1;
            if (q - s < 1 || q[-1] != ':') {
                /* no ":]": a plain '[' in the set */
                if (t == '[')
                    matched = true;
            } else {
                int r = wm_class(s, (size_t)(q - s - 1), t);
                if (r < 0)
                    return -1;
                if (r)
                    matched = true;
                p = q;
                c = 0;
            }
        } else if (t == c) {
            matched = true;
        }
        prev = c;
        c = *++p;
    } while (c != ']');
    *pp = p;
    return matched != negated ? 1 : 0;
}

/* Backtracking over several '*' can take exponential time on hostile patterns (a .gitignore in a
 * cloned repository is untrusted input). Each match gets a step budget; a pattern that needs more
 * is treated as not matching. Real patterns need a few hundred steps at most. */
#define WM_STEP_BUDGET 200000

static int wm_star(const unsigned char *p, const unsigned char *text, bool pathname,
                   const unsigned char *pattern, long *budget);

static int wm_do(const unsigned char *p, const unsigned char *text, bool pathname,
                 const unsigned char *pattern, long *budget)
{
    if (--*budget <= 0)
        return WM_ABORT_ALL;
    for (; *p; text++, p++) {
        unsigned char pc = *p;
        unsigned char t = *text;
        if (!t && pc != '*')
            return WM_ABORT_ALL;
        switch (pc) {
        case '\\':
            pc = *++p;
            if (t != pc)
                return WM_NOMATCH;
            break;
        case '?':
            if (pathname && t == '/')
                return WM_NOMATCH;
            break;
        case '*':
            return wm_star(p, text, pathname, pattern, budget);
        case '[': {
            p++;
            int r = wm_bracket(&p, t);
            if (r < 0)
                return WM_ABORT_ALL;
            if (!r || (pathname && t == '/'))
                return WM_NOMATCH;
            break;
        }
        default:
            if (t != pc)
                return WM_NOMATCH;
            break;
        }
    }
    return *text ? WM_NOMATCH : WM_MATCH;
}

/* p points at a '*'. Handles "*", "**" and "** /" (git's rules), then tries every split. */
static int wm_star(const unsigned char *p, const unsigned char *text, bool pathname,
                   const unsigned char *pattern, long *budget)
{
    bool match_slash;
    if (p[1] == '*') {
        const unsigned char *prev = p - 1;
        p++;
        while (p[1] == '*')
            p++;
        p++; /* first character after the stars */
        bool at_start = prev < pattern || *prev == '/';
        if (at_start && (*p == '\0' || *p == '/' || (p[0] == '\\' && p[1] == '/'))) {
            /* "** /" may match no directory at all */
            if (p[0] == '/' && wm_do(p + 1, text, pathname, pattern, budget) == WM_MATCH)
                return WM_MATCH;
            match_slash = true;
        } else {
            match_slash = !pathname;
        }
    } else {
        p++;
        match_slash = !pathname;
    }
    if (*p == '\0') {
        if (!match_slash && strchr((const char *)text, '/'))
            return WM_NOMATCH;
        return WM_MATCH;
    }
    if (!match_slash && *p == '/') {
        const char *slash = strchr((const char *)text, '/');
        if (!slash)
            return WM_NOMATCH;
        return wm_do(p + 1, (const unsigned char *)slash + 1, pathname, pattern, budget);
    }
    for (unsigned char t = *text; t; t = *++text) {
        if (!wm_is_special(*p)) {
            /* skip ahead to the next place the literal after the star can match */
            while (*text && (match_slash || *text != '/') && *text != *p)
                text++;
            if (*text != *p)
                return WM_NOMATCH;
            t = *text;
        }
        if (--*budget <= 0)
            return WM_ABORT_ALL;
        int r = wm_do(p, text, pathname, pattern, budget);
        if (r != WM_NOMATCH) {
            if (!match_slash || r != WM_ABORT_TO_STARSTAR)
                return r;
        } else if (!match_slash && t == '/') {
            return WM_ABORT_TO_STARSTAR;
        }
    }
    return WM_ABORT_ALL;
}

bool gitignore_wildmatch(const char *pattern, const char *text, bool pathname)
{
    const unsigned char *p = (const unsigned char *)pattern;
    long budget = WM_STEP_BUDGET;
    return wm_do(p, (const unsigned char *)text, pathname, p, &budget) == WM_MATCH;
}

/* ---- ignore files ---------------------------------------------------------------------- */

/* Length of line without unescaped trailing spaces (git's trim_trailing_spaces). */
static size_t gi_trim(const char *s, size_t len)
{
    size_t keep = len;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') {
            if (keep == len)
                keep = i;
        } else if (s[i] == '\\' && i + 1 < len) {
            i++;
            keep = len;
        } else {
            keep = len;
        }
    }
    return keep;
}

static loco_status gi_add(gitignore *gi, const char *line, size_t len, loco_err *err)
{
    len = gi_trim(line, len);
    if (len == 0 || line[0] == '#' || len > GITIGNORE_LINE_MAX || gi->n >= GITIGNORE_PATTERNS_MAX)
        return LOCO_OK;
    if (memchr(line, '\0', len))
        return LOCO_OK;
    gi_pattern pt = {0};
    if (line[0] == '!') {
        pt.negate = true;
        line++;
        len--;
    }
    if (len > 0 && line[len - 1] == '/') {
        pt.dir_only = true;
        len--;
    }
    if (len == 0)
        return LOCO_OK;
    pt.basename = memchr(line, '/', len) == NULL;
    if (line[0] == '/') {
        line++;
        len--;
    }
    if (gi->n == gi->cap) {
        size_t cap = gi->cap ? gi->cap * 2 : 16;
        gi_pattern *np = realloc(gi->pats, cap * sizeof(*np));
        if (!np)
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory parsing an ignore file");
        gi->pats = np;
        gi->cap = cap;
    }
    pt.pat = malloc(len + 1);
    if (!pt.pat)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory parsing an ignore file");
    memcpy(pt.pat, line, len);
    pt.pat[len] = '\0';
    gi->pats[gi->n++] = pt;
    return LOCO_OK;
}

loco_status gitignore_parse(const char *text, size_t n, gitignore **out, loco_err *err)
{
    *out = NULL;
    gitignore *gi = calloc(1, sizeof(*gi));
    if (!gi)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory parsing an ignore file");
    size_t i = 0;
    if (n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        i = 3; /* git skips a UTF-8 byte order mark */
    while (i < n) {
        const char *nl = memchr(text + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - text) : n;
        loco_status st = gi_add(gi, text + i, end - i, err);
        if (st) {
            gitignore_free(gi);
            return st;
        }
        i = end + 1;
    }
    *out = gi;
    return LOCO_OK;
}

void gitignore_free(gitignore *gi)
{
    if (!gi)
        return;
    for (size_t i = 0; i < gi->n; i++)
        free(gi->pats[i].pat);
    free(gi->pats);
    free(gi);
}

size_t gitignore_count(const gitignore *gi)
{
    return gi ? gi->n : 0;
}

gitignore_result gitignore_match(const gitignore *gi, const char *relpath, bool is_dir)
{
    if (!gi)
        return GITIGNORE_NONE;
    const char *slash = strrchr(relpath, '/');
    const char *base = slash ? slash + 1 : relpath;
    for (size_t i = gi->n; i-- > 0;) {
        const gi_pattern *pt = &gi->pats[i];
        if (pt->dir_only && !is_dir)
            continue;
        bool hit = pt->basename ? gitignore_wildmatch(pt->pat, base, false)
                                : gitignore_wildmatch(pt->pat, relpath, true);
        if (hit)
            return pt->negate ? GITIGNORE_KEEP : GITIGNORE_IGNORE;
    }
    return GITIGNORE_NONE;
}

/* ---- glob sets ------------------------------------------------------------------------- */

typedef struct {
    char *pat; /* one brace alternative, owned */
    bool negate;
    bool basename;
} glob_item;

struct gitignore_globset {
    glob_item *items;
    size_t n, cap;
    bool has_positive;
};

static loco_status glob_push(gitignore_globset *set, const char *pat, size_t len, bool negate,
                             loco_err *err)
{
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 8;
        glob_item *ni = realloc(set->items, cap * sizeof(*ni));
        if (!ni)
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory compiling a glob");
        set->items = ni;
        set->cap = cap;
    }
    glob_item it = {.negate = negate};
    if (len >= 2 && pat[0] == '.' && pat[1] == '/') {
        pat += 2;
        len -= 2;
    }
    if (len >= 1 && pat[0] == '/') {
        pat++;
        len--;
    }
    it.basename = memchr(pat, '/', len) == NULL;
    it.pat = malloc(len + 1);
    if (!it.pat)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory compiling a glob");
    memcpy(it.pat, pat, len);
    it.pat[len] = '\0';
    set->items[set->n++] = it;
    if (!negate)
        set->has_positive = true;
    return LOCO_OK;
}

/* Position of the '}' closing the '{' at open, or 0 when unbalanced. */
static size_t glob_close(const char *s, size_t len, size_t open)
{
    int depth = 0;
    for (size_t i = open; i < len; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '{') {
            depth++;
        } else if (s[i] == '}') {
            if (--depth == 0)
                return i;
        }
    }
    return 0;
}

/* Expands the first brace group of s[0..len) and recurses on each alternative. */
static loco_status glob_expand(gitignore_globset *set, const char *s, size_t len, bool negate,
                               size_t *budget, const char *orig, loco_err *err)
{
    size_t open = len;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '{') {
            open = i;
            break;
        } else if (s[i] == '}') {
            return loco_err_set(err, LOCO_ERR_INVALID, "glob '%s': unopened '}'", orig);
        }
    }
    if (open == len) {
        if (*budget == 0)
            return loco_err_set(err, LOCO_ERR_INVALID,
                                "glob '%s' expands to more than %d patterns", orig,
                                GITIGNORE_GLOB_EXPANSIONS);
        (*budget)--;
        return glob_push(set, s, len, negate, err);
    }
    size_t close = glob_close(s, len, open);
    if (!close)
        return loco_err_set(err, LOCO_ERR_INVALID, "glob '%s': unclosed '{'", orig);
    size_t start = open + 1;
    int depth = 0;
    for (size_t i = open + 1; i <= close; i++) {
        bool split = false;
        if (s[i] == '\\' && i + 1 < close) {
            i++;
            continue;
        }
        if (s[i] == '{')
            depth++;
        else if (s[i] == '}' && i != close)
            depth--;
        else if ((s[i] == ',' && depth == 0) || i == close)
            split = true;
        if (!split)
            continue;
        size_t alt_len = i - start;
        size_t tail = len - close - 1;
        size_t n = open + alt_len + tail;
        char *tmp = malloc(n + 1);
        if (!tmp)
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory compiling a glob");
        memcpy(tmp, s, open);
        memcpy(tmp + open, s + start, alt_len);
        memcpy(tmp + open + alt_len, s + close + 1, tail);
        tmp[n] = '\0';
        loco_status st = glob_expand(set, tmp, n, negate, budget, orig, err);
        free(tmp);
        if (st)
            return st;
        start = i + 1;
    }
    return LOCO_OK;
}

loco_status gitignore_globset_add(gitignore_globset **setp, const char *glob, loco_err *err)
{
    if (!*setp) {
        *setp = calloc(1, sizeof(**setp));
        if (!*setp)
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory compiling a glob");
    }
    bool negate = glob[0] == '!';
    const char *s = negate ? glob + 1 : glob;
    if (!*s)
        return loco_err_set(err, LOCO_ERR_INVALID, "empty glob '%s'", glob);
    size_t budget = GITIGNORE_GLOB_EXPANSIONS;
    return glob_expand(*setp, s, strlen(s), negate, &budget, glob, err);
}

void gitignore_globset_free(gitignore_globset *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        free(set->items[i].pat);
    free(set->items);
    free(set);
}

bool gitignore_globset_has_positive(const gitignore_globset *set)
{
    return set && set->has_positive;
}

static bool glob_item_match(const glob_item *it, const char *relpath)
{
    if (it->basename) {
        const char *slash = strrchr(relpath, '/');
        return gitignore_wildmatch(it->pat, slash ? slash + 1 : relpath, true);
    }
    return gitignore_wildmatch(it->pat, relpath, true);
}

bool gitignore_globset_allows(const gitignore_globset *set, const char *relpath)
{
    if (!set)
        return true;
    bool positive = !set->has_positive;
    for (size_t i = 0; i < set->n; i++) {
        const glob_item *it = &set->items[i];
        if (it->negate) {
            if (glob_item_match(it, relpath))
                return false;
        } else if (!positive && glob_item_match(it, relpath)) {
            positive = true;
        }
    }
    return positive;
}

bool gitignore_globset_prunes_dir(const gitignore_globset *set, const char *relpath)
{
    if (!set)
        return false;
    for (size_t i = 0; i < set->n; i++) {
        if (set->items[i].negate && glob_item_match(&set->items[i], relpath))
            return true;
    }
    return false;
}
