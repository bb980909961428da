/* json.h: thin helpers over jansson: parsing with a position-naming error, typed getters
 * that tolerate absent or mistyped members, and compact serialisation into a buf. */
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
/* Compact serialisation as a new malloc'd string (caller frees); NULL on failure. */
char *json_to_string(const json_t *v);

#endif
