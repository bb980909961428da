/* json.c: jansson helpers. */
#include "base/common.h"

#include "base/json.h"
#include "base/utf8.h"

/* Depth check without recursion: count brackets outside strings. */
static bool json_depth_ok(const char *p, size_t n)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '[' || c == '{') {
            if (++depth > LOCO_JSON_MAX_DEPTH)
                return false;
        } else if (c == ']' || c == '}')
            depth--;
    }
    return true;
}

json_t *json_parse(const char *p, size_t n, loco_err *err)
{
    if (!json_depth_ok(p, n)) {
        loco_err_set(err, LOCO_ERR_INVALID, "invalid JSON: nesting deeper than %d levels",
                     LOCO_JSON_MAX_DEPTH);
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v)
        loco_err_set(err, LOCO_ERR_INVALID, "invalid JSON at line %d column %d (byte %d): %s",
                     je.line, je.column, je.position, je.text);
    return v;
}

const char *json_get_str(const json_t *obj, const char *key)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool json_get_long(const json_t *obj, const char *key, long *out_v)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < LONG_MIN || x > LONG_MAX)
            return false;
        *out_v = (long)x;
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= -9.2e18 && d <= 9.2e18) || d != (double)(long)d)
            return false;
        *out_v = (long)d;
        return true;
    }
    return false;
}

bool json_get_double(const json_t *obj, const char *key, double *out_v)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (!json_is_number(v))
        return false;
    *out_v = json_number_value(v);
    return true;
}

bool json_get_bool(const json_t *obj, const char *key, bool *out_v)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (!json_is_boolean(v))
        return false;
    *out_v = json_is_true(v);
    return true;
}

static int json_buf_cb(const char *p, size_t n, void *data)
{
    return buf_append((buf *)data, p, n) ? -1 : 0;
}

loco_status json_append(buf *b, const json_t *v)
{
    if (json_dump_callback(v, json_buf_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
        return LOCO_ERR_NOMEM;
    return LOCO_OK;
}

char *json_to_string(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

loco_status json_append_str_lossy(buf *b, const char *s, size_t n)
{
    if (utf8_valid(s, n))
        return buf_append_json_str(b, s, n);
    buf clean;
    buf_init(&clean, BUF_UNLIMITED);
    loco_status rc = utf8_append_lossy(&clean, s, n);
    if (!rc)
        rc = buf_append_json_str(b, buf_str(&clean), clean.len);
    buf_release(&clean);
    return rc;
}

loco_status json_append_cstr_lossy(buf *b, const char *s)
{
    return json_append_str_lossy(b, s ? s : "", s ? strlen(s) : 0);
}

json_t *json_string_lossy(const char *s, size_t n)
{
    if (utf8_valid(s, n))
        return json_stringn(s, n);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    json_t *v = utf8_append_lossy(&b, s, n) ? NULL : json_stringn(buf_str(&b), b.len);
    buf_release(&b);
    return v;
}

json_t *json_cstring_lossy(const char *s)
{
    return json_string_lossy(s ? s : "", s ? strlen(s) : 0);
}
