/* gitignore.h: git's ignore rules (gitignore(5)) and the glob matching the search tools share.
 * One gitignore object holds the compiled patterns of one file (.gitignore or .git/info/exclude);
 * walk.c stacks them per directory. Pure code: no file access, no global state. */
#ifndef LOCO_AGENT_GITIGNORE_H
#define LOCO_AGENT_GITIGNORE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"

/* Longest pattern line kept; longer lines are skipped (git has no such limit, but a line this
 * long in a .gitignore is hostile or broken). */
#define GITIGNORE_LINE_MAX 4096
/* Most patterns kept from one file; the rest are ignored. */
#define GITIGNORE_PATTERNS_MAX 10000

typedef struct gitignore gitignore;

typedef enum {
    GITIGNORE_NONE = 0, /* no pattern of this file matched: ask the next (shallower) file */
    GITIGNORE_IGNORE,   /* the last matching pattern ignores the path */
    GITIGNORE_KEEP,     /* the last matching pattern is a negation ("!pattern") */
} gitignore_result;

/* Compiles the text of one ignore file (n bytes, need not be NUL-terminated) following
 * gitignore(5): blank lines and "#" comments skipped, unescaped trailing spaces trimmed, "!"
 * negates, a trailing "/" matches directories only, a "/" at the start or in the middle anchors
 * the pattern to the file's directory, "**" spans directories. Bad lines never fail the parse
 * (git skips them too). *out is owned by the caller (gitignore_free). LOCO_ERR_NOMEM only. */
loco_status gitignore_parse(const char *text, size_t n, gitignore **out, loco_err *err);
void gitignore_free(gitignore *gi);
/* Patterns kept. */
size_t gitignore_count(const gitignore *gi);

/* Matches relpath ("a/b/c.txt": relative to the ignore file's directory, no leading "/", no
 * trailing "/") against the file's patterns; is_dir says whether the path is a directory. The
 * last matching pattern decides. A path inside an ignored directory is not reported ignored by
 * this call (git never looks inside such a directory: the walker prunes it). */
gitignore_result gitignore_match(const gitignore *gi, const char *relpath, bool is_dir);

/* git's wildmatch: '*' and '?' do not cross '/' when pathname is true, "**" between slashes
 * spans directories, "[...]" classes with '!' or '^' negation, ranges and [:alpha:]-style
 * names, '\\' escapes. Both strings NUL-terminated. */
bool gitignore_wildmatch(const char *pattern, const char *text, bool pathname);

/* A set of globs in ripgrep's -g / Claude Code's Glob style: "{a,b}" alternatives (nested,
 * expanded up to GITIGNORE_GLOB_EXPANSIONS), "*", "?", "[...]", "**"; a glob without "/" matches
 * the base name at any depth, one with "/" the whole path relative to the search root (a
 * leading "/" or "./" is dropped); a leading "!" excludes. */
#define GITIGNORE_GLOB_EXPANSIONS 256
typedef struct gitignore_globset gitignore_globset;

/* Adds one glob to *set (created on first use; NULL set pointer to begin). Returns
 * LOCO_ERR_INVALID with a message naming the glob when braces do not balance or the expansion
 * exceeds the limit. The set is owned by the caller (gitignore_globset_free). */
loco_status gitignore_globset_add(gitignore_globset **set, const char *glob, loco_err *err);
void gitignore_globset_free(gitignore_globset *set);
/* True when set has at least one positive (non-"!") glob. */
bool gitignore_globset_has_positive(const gitignore_globset *set);
/* A file passes when it matches a positive glob (or there are none) and no "!" glob. relpath is
 * relative to the search root. NULL set: everything passes. */
bool gitignore_globset_allows(const gitignore_globset *set, const char *relpath);
/* A directory is pruned when a "!" glob matches it. */
bool gitignore_globset_prunes_dir(const gitignore_globset *set, const char *relpath);

#endif
