/* str.h: checked number parsing, glob patterns, random ids, shell quoting, small string
 * helpers. Pure functions: no state, no printing. */
#ifndef LOCO_STR_H
#define LOCO_STR_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/status.h"
#include "base/utf8.h"

/* Parses all of s as a base-10 integer in [min, max]; LOCO_ERR_INVALID otherwise. */
loco_status str_parse_long(const char *s, long min, long max, long *out_v);
/* Parses all of s as a finite double in [min, max]. */
loco_status str_parse_double(const char *s, double min, double max, double *out_v);
/* Parses "true/false/1/0/yes/no/on/off" (case-insensitive). */
loco_status str_parse_bool(const char *s, bool *out_v);

/* True when name matches any pattern of the comma-separated list (fnmatch(3) globs,
 * case-insensitive, surrounding spaces ignored). */
bool str_glob_list_match(const char *patterns, const char *name);

/* Writes prefix + 24 random lowercase hex/alnum characters into out (size >= prefix+25).
 * Uses os_random_bytes; falls back to a time/counter mix only if the kernel refuses. */
void str_random_id(const char *prefix, char *out, size_t out_size);

/* Appends s as one POSIX shell word in single quotes (' becomes '\''). */
loco_status str_shell_quote(buf *b, const char *s);

/* malloc'd copy of exactly n bytes of s plus a NUL; s need not be NUL-terminated (unlike
 * strndup, nothing past s[n-1] is read). NULL on allocation failure. */
char *str_ndup(const char *s, size_t n);

bool str_starts_with(const char *s, const char *prefix);
bool str_ends_with(const char *s, const char *suffix);
/* Finds needle in hay[0..n); NULL when absent. */
const char *str_memmem(const char *hay, size_t n, const char *needle);
/* Length of the longest suffix of s[0..n) that is a proper prefix of pat (for
 * holding back partial tags while streaming). */
size_t str_partial_suffix(const char *s, size_t n, const char *pat);
/* Appends s[0..n) in a form safe to show on a terminal or in a log line: printable UTF-8 as
 * it is; control characters (C0, DEL, C1), the bidirectional embeddings, overrides and
 * isolates (U+202A..U+202E, U+2066..U+2069) and bytes that are not UTF-8 escaped as \n \r
 * \t \e, \xHH or \u{HHHH}. Echoing user input (a query id, a model name, a path) this way
 * cannot move the cursor, recolour the terminal, retitle the window or forge a line. */
loco_status str_append_printable(buf *b, const char *s, size_t n);
/* True when str_append_printable would copy s[0..n) unchanged. */
bool str_is_printable(const char *s, size_t n);
/* str_append_printable of the C string s into out[0..size) (cut on a character boundary,
 * always NUL-terminated when size > 0); returns out. For messages: fprintf(stderr, "... '%s'",
 * str_printable(id, tmp, sizeof(tmp))). */
const char *str_printable(const char *s, char *out, size_t size);

/* The old names of utf8_valid and utf8_complete_len (base/utf8.h), kept only until the
 * branches written against them have merged; new code uses the utf8_ names. */
#define str_utf8_valid utf8_valid
#define str_utf8_complete_len utf8_complete_len

#endif
