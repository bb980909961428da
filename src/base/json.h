/* json.h: thin helpers over jansson: parsing with a position-naming error, typed getters
 * that tolerate absent or mistyped members, compact serialisation into a buf, and a JSON string
 * writer that repairs invalid UTF-8. */
#ifndef LOCO_JSON_H
#define LOCO_JSON_H

#include <jansson.h>
#include <stdbool.h>

#include "base/buf.h"
#include "base/status.h"

/* Nesting deeper than this is rejected (hostile bodies). */
#define LOCO_JSON_MAX_DEPTH 256

/* Parses p[0..n) (any JSON value). Returns a new reference the caller must json_decref,
 * or NULL with err set to LOCO_ERR_INVALID naming line, column and byte offset. */
json_t *json_parse(const char *p, size_t n, loco_err *err);

/* Borrowed string member, or NULL when absent or not a string. */
const char *json_get_str(const json_t *obj, const char *key);
/* Integer member (or a float with an integral value) into *out_v; false when absent/mistyped. */
bool json_get_long(const json_t *obj, const char *key, long *out_v);
bool json_get_double(const json_t *obj, const char *key, double *out_v);
bool json_get_bool(const json_t *obj, const char *key, bool *out_v);

/* Appends the compact serialisation of v (keys in insertion order, UTF-8 unescaped). */
loco_status json_append(buf *b, const json_t *v);
/* Appends s[0..n) as a JSON string literal (quotes included, escaped like
 * buf_append_json_str) with every byte that does not start a valid UTF-8 sequence written as
 * U+FFFD: a model's or a file's raw bytes never make a client's JSON parser fail. */
loco_status json_append_str_lossy(buf *b, const char *s, size_t n);
/* json_append_str_lossy of a C string; NULL is written as "". */
loco_status json_append_cstr_lossy(buf *b, const char *s);
/* A new jansson string of s[0..n) with invalid UTF-8 written as U+FFFD (json_stringn refuses
 * such text and returns NULL, which would silently drop the member it was meant for). NULL
 * only when allocation fails. */
json_t *json_string_lossy(const char *s, size_t n);
/* json_string_lossy of a C string; NULL is "". */
json_t *json_cstring_lossy(const char *s);
/* Compact serialisation as a new malloc'd string (caller frees); NULL on failure. */
char *json_to_string(const json_t *v);

#endif
