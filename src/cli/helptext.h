/* helptext.h: the commands' help texts read back: the flags each one names (for "did you
 * mean" and shell completion), the closest spellings of a mistyped word, and a man page and
 * bash / zsh completion scripts rendered from the help texts, so the help text stays the one
 * place a flag is described. cli/ only. */
#ifndef LOCO_CLI_HELPTEXT_H
#define LOCO_CLI_HELPTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CLI_HELP_FLAG_MAX 48 /* longest flag name kept */

typedef struct {
    char name[CLI_HELP_FLAG_MAX]; /* "--model", "-m" */
    bool takes_value;             /* "--model M" / "--model=M" */
} cli_help_flag;

/* Adds to out[0..*n) (at most max entries) each flag text names, once: on its option lines
 * (whose first non-blank character is '-') and its usage lines (starting "usage:"), plus each
 * flag's aliases (cli_flag_aliases). A flag takes a value when, after '=' or one space, a word
 * follows that starts with an upper-case letter or holds a '|' ("--format md|json"); one
 * occurrence that takes a value is enough. Pure. */
void cli_help_scan(const char *text, cli_help_flag *out, size_t *n, size_t max);

/* The entries of a "commands:" or "subcommands:" list in text: lines "  NAME  summary" after
 * the heading, up to the next blank line. names[i] and summaries[i] (each size bytes) get
 * them; returns how many (at most max). Pure. */
size_t cli_help_entries(const char *text, char (*names)[64], char (*summaries)[200], size_t max);

/* Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
 * adjacent characters each count 1. Strings longer than 64 bytes compare as far apart. */
size_t cli_edit_distance(const char *a, const char *b);

/* The candidates closest to word: those at the smallest edit distance when it is at most
 * 1 + strlen(word) / 4 (and at most 3), else those that start with word (when word has at
 * least 3 characters past its dashes). Writes up to max borrowed pointers into out in candidate
 * order and returns how many. */
size_t cli_suggest(const char *word, const char *const *cands, size_t n, const char **out,
                   size_t max);

/* One command's page: "serve" or "model list", its one-line summary and its --help text. */
typedef struct {
    const char *name;
    const char *summary;
    const char *help;
    const char *operands; /* words its operands complete to ("bash zsh"); NULL: files */
} cli_help_page;

/* A man page (roff, section 1) with the overview (the top-level help) and one section per
 * page holding its help text verbatim. */
void cli_help_man(FILE *out, const char *version, const char *overview, const cli_help_page *pages,
                  size_t n);
/* Completion scripts: command names, the subcommands of "a b" pages, each page's flags and
 * operands (files after a flag that takes a value, and for operands unless the page names
 * words). */
void cli_help_bash(FILE *out, const cli_help_page *pages, size_t n);
void cli_help_zsh(FILE *out, const cli_help_page *pages, size_t n);

#endif
