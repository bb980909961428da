/* gguf.c: GGUF reader (read-only mmap, every count, offset and size checked against the file
 * length before use) and streaming writer (temporary file, fsync, rename). The reader copies
 * only keys, tensor names and scalar strings; array elements and tensor data stay mapped. */
#include "base/common.h"

#include <fcntl.h>
#include <libgen.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/arena.h"
#include "engine/gguf.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_HEADER_BYTES 24u     /* magic, version, tensor_count, kv_count */
#define GGUF_MIN_KV_BYTES 13u     /* empty key (8) + type (4) + a one-byte value */
#define GGUF_MIN_TENSOR_BYTES 32u /* name length (8) + n_dims (4) + one dim (8) + type (4) +
                                     offset (8) */
#define GGUF_MIN_ARRAY_BYTES 12u  /* element type (4) + count (8) */
#define GGUF_WRITER_MAX_META ((size_t)1 << 31) /* encoded metadata of one written file */
#define GGUF_WRITE_CHUNK ((size_t)1 << 20)     /* staging buffer of the file writer */

/* ======================================================================================
 * Shared helpers */

static const char *const type_names[GGUF_TYPE_COUNT] = {
    "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
    "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64",
};

const char *gguf_type_name(uint32_t type)
{
    return type < GGUF_TYPE_COUNT ? type_names[type] : "INVALID";
}

/* Bytes of a fixed-size value; 0 for STRING, ARRAY and invalid types. */
static size_t scalar_size(uint32_t type)
{
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL:
        return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
        return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32:
        return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static uint64_t load_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void store_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

static bool is_pow2(uint64_t x)
{
    return x && !(x & (x - 1));
}

/* An integer as sign + magnitude, so every GGUF integer type converts without loss. */
typedef struct {
    bool neg;
    uint64_t mag;
} int_val;

static bool decode_int(uint32_t type, const uint8_t *p, int_val *out)
{
    size_t n = scalar_size(type);
    bool is_signed = type == GGUF_TYPE_INT8 || type == GGUF_TYPE_INT16 ||
                     type == GGUF_TYPE_INT32 || type == GGUF_TYPE_INT64;
    bool is_unsigned = type == GGUF_TYPE_UINT8 || type == GGUF_TYPE_UINT16 ||
                       type == GGUF_TYPE_UINT32 || type == GGUF_TYPE_UINT64 ||
                       type == GGUF_TYPE_BOOL;
    if (!is_signed && !is_unsigned)
        return false;
    uint64_t raw = load_le(p, n);
    if (type == GGUF_TYPE_BOOL)
        raw = raw != 0;
    out->neg = false;
    out->mag = raw;
    if (is_signed && n < 8 && (raw >> (8 * n - 1)) & 1)
        raw |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    if (is_signed && (raw >> 63)) {
        out->neg = true;
        out->mag = ~raw + 1; /* two's complement magnitude, 2^63 for INT64_MIN */
    }
    return true;
}

static bool int_to_u64(int_val v, uint64_t *out)
{
    if (v.neg)
        return false;
    *out = v.mag;
    return true;
}

static bool int_to_i64(int_val v, int64_t *out)
{
    if (!v.neg) {
        if (v.mag > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v.mag;
        return true;
    }
    if (v.mag > (uint64_t)INT64_MAX + 1)
        return false;
    *out = v.mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v.mag;
    return true;
}

static bool decode_f64(uint32_t type, const uint8_t *p, double *out)
{
    if (type == GGUF_TYPE_FLOAT32) {
        uint32_t u = (uint32_t)load_le(p, 4);
        float f;
        memcpy(&f, &u, sizeof(f));
        *out = f;
        return true;
    }
    if (type == GGUF_TYPE_FLOAT64) {
        uint64_t u = load_le(p, 8);
        memcpy(out, &u, sizeof(*out));
        return true;
    }
    return false;
}

/* FNV-1a; the index maps a name to its position + 1 (0 marks an empty slot). */
static uint64_t name_hash(const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * UINT64_C(1099511628211);
    return h;
}

typedef struct {
    uint32_t *slots;
    uint64_t mask;
} name_index;

/* Builds ix over names[0..n). A repeated name stops the build: *out_dup gets the index of
 * its second occurrence and *out_first of the first; returns LOCO_ERR_EXISTS. */
static loco_status index_build(arena *a, name_index *ix, const char *const *names, uint64_t n,
                               uint64_t *out_first, uint64_t *out_dup)
{
    uint64_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    ix->slots = arena_alloc(a, cap * sizeof(uint32_t));
    if (!ix->slots)
        return LOCO_ERR_NOMEM;
    ix->mask = cap - 1;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t s = name_hash(names[i]) & ix->mask;
        while (ix->slots[s]) {
            uint64_t j = ix->slots[s] - 1;
            if (!strcmp(names[j], names[i])) {
                *out_first = j;
                *out_dup = i;
                return LOCO_ERR_EXISTS;
            }
            s = (s + 1) & ix->mask;
        }
        ix->slots[s] = (uint32_t)(i + 1);
    }
    return LOCO_OK;
}

static int64_t index_find(const name_index *ix, const char *const *names, const char *name)
{
    if (!ix->slots)
        return -1;
    uint64_t s = name_hash(name) & ix->mask;
    while (ix->slots[s]) {
        uint64_t j = ix->slots[s] - 1;
        if (!strcmp(names[j], name))
            return (int64_t)j;
        s = (s + 1) & ix->mask;
    }
    return -1;
}

/* ======================================================================================
 * Reader */

typedef struct {
    const char *key;     /* NUL-terminated copy */
    gguf_type type;
    const uint8_t *raw;  /* value encoding, in the mapping */
    uint64_t raw_size;
    const char *str;     /* STRING: NUL-terminated copy */
    size_t str_len;
    gguf_arr arr;        /* ARRAY */
} gguf_kv;

struct gguf {
    char *name;
    const uint8_t *base;
    size_t size;
    bool mapped;
    int fd;               /* the file (gguf_open), for gguf_read_at; -1 for memory */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    arena mem;            /* everything below */
    int64_t n_kv;
    gguf_kv *kvs;
    const char **kv_names;
    name_index kv_index;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    const char **tensor_names;
    name_index tensor_index;
};

typedef struct {
    gguf *g;
    uint64_t pos;
    loco_err *err;
} parser;

/* Which value is being read, for messages. */
typedef struct {
    uint64_t entry;
    const char *key;
} value_ctx;

static uint64_t p_left(const parser *p)
{
    return p->g->size - p->pos;
}

static loco_status p_fail(parser *p, loco_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static loco_status p_fail(parser *p, loco_status code, const char *fmt, ...)
{
    char msg[LOCO_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return loco_err_set(p->err, code, "%s: %s", p->g->name, msg);
}

/* "<file>: truncated at byte <at> reading <what> (the file has N bytes)" */
static loco_status p_trunc(parser *p, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static loco_status p_trunc(parser *p, uint64_t at, const char *fmt, ...)
{
    char what[LOCO_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return loco_err_set(p->err, LOCO_ERR_INVALID,
                        "%s: truncated at byte %" PRIu64 " reading %s (the file has %zu bytes)",
                        p->g->name, at, what, p->g->size);
}

/* Reads an n-byte little-endian integer; false (nothing consumed) when the file ends. */
static bool rd_int(parser *p, size_t n, uint64_t *out)
{
    if (p_left(p) < n)
        return false;
    *out = load_le(p->g->base + p->pos, n);
    p->pos += n;
    return true;
}

static void describe_value(char *out, size_t n, const value_ctx *c, uint64_t elem)
{
    if (elem == UINT64_MAX)
        snprintf(out, n, "the value of metadata entry %" PRIu64 " ('%s')", c->entry, c->key);
    else
        snprintf(out, n, "element %" PRIu64 " of metadata entry %" PRIu64 " ('%s')", elem,
                 c->entry, c->key);
}

/* Reads a string header and checks its bytes are in the file; on success *out points at the
 * bytes (in the mapping) and the cursor is past them. what/elem describe it for messages. */
static loco_status parse_str(parser *p, uint64_t max, const uint8_t **out, uint64_t *out_len,
                             const value_ctx *c, uint64_t elem)
{
    uint64_t at = p->pos, len;
    char what[300];
    if (!rd_int(p, 8, &len)) {
        describe_value(what, sizeof(what), c, elem);
        return p_trunc(p, at, "the string length of %s", what);
    }
    if (len > max) {
        describe_value(what, sizeof(what), c, elem);
        return p_fail(p, LOCO_ERR_LIMIT,
                      "string of %" PRIu64 " bytes at byte %" PRIu64 " in %s (limit %" PRIu64
                      ")",
                      len, at, what, max);
    }
    if (len > p_left(p)) {
        describe_value(what, sizeof(what), c, elem);
        return p_trunc(p, p->pos, "%" PRIu64 " string bytes of %s", len, what);
    }
    *out = p->g->base + p->pos;
    *out_len = len;
    p->pos += len;
    return LOCO_OK;
}

static loco_status parse_array(parser *p, gguf_arr *arr, unsigned depth, const value_ctx *c,
                               uint64_t elem);

/* Elements of a STRING array: fills the offsets table while checking each length. */
static loco_status parse_str_elems(parser *p, gguf_arr *arr, const value_ctx *c)
{
    uint64_t count = arr->count;
    if (count > p_left(p) / 8)
        return p_trunc(p, p->pos,
                       "metadata entry %" PRIu64 " ('%s'): %" PRIu64
                       " strings cannot fit in the %" PRIu64 " bytes left",
                       c->entry, c->key, count, p_left(p));
    uint64_t *offs = arena_alloc(&p->g->mem, (size_t)(count + 1) * sizeof(uint64_t));
    if (!offs)
        return p_fail(p, LOCO_ERR_NOMEM, "out of memory indexing metadata entry %" PRIu64,
                      c->entry);
    uint64_t start = p->pos;
    for (uint64_t i = 0; i < count; i++) {
        offs[i] = p->pos - start;
        const uint8_t *s;
        uint64_t len;
        loco_status rc = parse_str(p, GGUF_MAX_STRING, &s, &len, c, i);
        if (rc)
            return rc;
    }
    offs[count] = p->pos - start;
    arr->offsets = offs;
    return LOCO_OK;
}

static loco_status parse_arr_elems(parser *p, gguf_arr *arr, unsigned depth, const value_ctx *c)
{
    uint64_t count = arr->count;
    if (count > p_left(p) / GGUF_MIN_ARRAY_BYTES)
        return p_trunc(p, p->pos,
                       "metadata entry %" PRIu64 " ('%s'): %" PRIu64
                       " arrays cannot fit in the %" PRIu64 " bytes left",
                       c->entry, c->key, count, p_left(p));
    gguf_arr *elems = arena_alloc(&p->g->mem, (size_t)count * sizeof(gguf_arr) + 1);
    if (!elems)
        return p_fail(p, LOCO_ERR_NOMEM, "out of memory reading metadata entry %" PRIu64,
                      c->entry);
    for (uint64_t i = 0; i < count; i++) {
        loco_status rc = parse_array(p, &elems[i], depth + 1, c, i);
        if (rc)
            return rc;
    }
    arr->elems = elems;
    return LOCO_OK;
}

/* An array value (element type, count, elements) at the cursor; depth 1 is a top-level
 * array. elem is this array's index in its parent (UINT64_MAX at top level). */
static loco_status parse_array(parser *p, gguf_arr *arr, unsigned depth, const value_ctx *c,
                               uint64_t elem)
{
    char what[300];
    describe_value(what, sizeof(what), c, elem);
    if (depth > GGUF_MAX_ARRAY_DEPTH)
        return p_fail(p, LOCO_ERR_LIMIT,
                      "arrays nested deeper than %d at byte %" PRIu64 " in %s",
                      GGUF_MAX_ARRAY_DEPTH, p->pos, what);
    uint64_t at = p->pos, et, count;
    if (!rd_int(p, 4, &et))
        return p_trunc(p, at, "the array element type of %s", what);
    if (et >= GGUF_TYPE_COUNT)
        return p_fail(p, LOCO_ERR_INVALID,
                      "invalid array element type %" PRIu64 " at byte %" PRIu64 " in %s", et,
                      at, what);
    if (!rd_int(p, 8, &count))
        return p_trunc(p, at + 4, "the array length of %s", what);
    memset(arr, 0, sizeof(*arr));
    arr->elem_type = (gguf_type)et;
    arr->count = count;
    arr->data = p->g->base + p->pos;
    uint64_t start = p->pos;
    size_t esize = scalar_size((uint32_t)et);
    loco_status rc = LOCO_OK;
    if (esize) {
        if (count > p_left(p) / esize)
            return p_trunc(p, p->pos, "%" PRIu64 " %s elements of %s", count,
                           gguf_type_name((uint32_t)et), what);
        p->pos += count * esize;
    } else if (et == GGUF_TYPE_STRING) {
        rc = parse_str_elems(p, arr, c);
    } else {
        rc = parse_arr_elems(p, arr, depth, c);
    }
    arr->size = p->pos - start;
    return rc;
}

/* The value of metadata entry c->entry, of the given type, into kv. */
static loco_status parse_value(parser *p, gguf_kv *kv, const value_ctx *c)
{
    kv->raw = p->g->base + p->pos;
    uint64_t start = p->pos;
    size_t n = scalar_size(kv->type);
    loco_status rc = LOCO_OK;
    if (n) {
        if (p_left(p) < n) {
            char what[300];
            describe_value(what, sizeof(what), c, UINT64_MAX);
            return p_trunc(p, p->pos, "%s", what);
        }
        p->pos += n;
    } else if (kv->type == GGUF_TYPE_STRING) {
        const uint8_t *s;
        uint64_t len;
        rc = parse_str(p, GGUF_MAX_STRING, &s, &len, c, UINT64_MAX);
        if (!rc) {
            kv->str = arena_strndup(&p->g->mem, (const char *)s, (size_t)len);
            kv->str_len = (size_t)len;
            if (!kv->str)
                rc = p_fail(p, LOCO_ERR_NOMEM, "out of memory copying metadata entry %" PRIu64,
                            c->entry);
        }
    } else {
        rc = parse_array(p, &kv->arr, 1, c, UINT64_MAX);
    }
    kv->raw_size = p->pos - start;
    return rc;
}

static loco_status parse_kv(parser *p, uint64_t i)
{
    gguf_kv *kv = &p->g->kvs[i];
    uint64_t at = p->pos, len;
    if (!rd_int(p, 8, &len))
        return p_trunc(p, at, "the key length of metadata entry %" PRIu64, i);
    if (len == 0 || len > GGUF_MAX_KEY)
        return p_fail(p, len ? LOCO_ERR_LIMIT : LOCO_ERR_INVALID,
                      "metadata entry %" PRIu64 " at byte %" PRIu64
                      " has a key of %" PRIu64 " bytes (allowed 1..%u)",
                      i, at, len, GGUF_MAX_KEY);
    if (len > p_left(p))
        return p_trunc(p, p->pos, "the key of metadata entry %" PRIu64, i);
    const char *k = (const char *)p->g->base + p->pos;
    if (memchr(k, '\0', (size_t)len))
        return p_fail(p, LOCO_ERR_INVALID,
                      "the key of metadata entry %" PRIu64 " at byte %" PRIu64
                      " contains a NUL byte",
                      i, p->pos);
    kv->key = arena_strndup(&p->g->mem, k, (size_t)len);
    if (!kv->key)
        return p_fail(p, LOCO_ERR_NOMEM, "out of memory reading metadata entry %" PRIu64, i);
    p->g->kv_names[i] = kv->key;
    p->pos += len;
    uint64_t type;
    at = p->pos;
    if (!rd_int(p, 4, &type))
        return p_trunc(p, at, "the type of metadata entry %" PRIu64 " ('%s')", i, kv->key);
    if (type >= GGUF_TYPE_COUNT)
        return p_fail(p, LOCO_ERR_INVALID,
                      "metadata entry %" PRIu64 " ('%s') has invalid type %" PRIu64
                      " at byte %" PRIu64,
                      i, kv->key, type, at);
    kv->type = (gguf_type)type;
    value_ctx c = {i, kv->key};
    return parse_value(p, kv, &c);
}

static loco_status parse_header(parser *p, uint64_t *out_tensors, uint64_t *out_kvs)
{
    gguf *g = p->g;
    if (g->size < 4 || memcmp(g->base, GGUF_MAGIC, 4) != 0) {
        if (g->size < 4)
            return p_trunc(p, 0, "the magic");
        return p_fail(p, LOCO_ERR_INVALID,
                      "not a GGUF file (it starts with %02x %02x %02x %02x, not \"GGUF\")",
                      g->base[0], g->base[1], g->base[2], g->base[3]);
    }
    p->pos = 4;
    uint64_t version;
    if (!rd_int(p, 4, &version))
        return p_trunc(p, 4, "the version");
    if (version == 0x02000000u || version == 0x03000000u)
        return p_fail(p, LOCO_ERR_UNSUPPORTED, "big-endian GGUF files are not supported");
    if (version != 2 && version != 3)
        return p_fail(p, LOCO_ERR_UNSUPPORTED,
                      "GGUF version %" PRIu64 " is not supported (loco reads versions 2 and 3)",
                      version);
    g->version = (uint32_t)version;
    if (!rd_int(p, 8, out_tensors))
        return p_trunc(p, 8, "the tensor count");
    if (!rd_int(p, 8, out_kvs))
        return p_trunc(p, 16, "the metadata entry count");
    if (*out_tensors > GGUF_MAX_TENSORS)
        return p_fail(p, LOCO_ERR_LIMIT, "tensor count %" PRIu64 " exceeds the limit %u",
                      *out_tensors, GGUF_MAX_TENSORS);
    if (*out_kvs > GGUF_MAX_KVS)
        return p_fail(p, LOCO_ERR_LIMIT, "metadata entry count %" PRIu64 " exceeds the limit %u",
                      *out_kvs, GGUF_MAX_KVS);
    if (*out_kvs * GGUF_MIN_KV_BYTES + *out_tensors * GGUF_MIN_TENSOR_BYTES > p_left(p))
        return p_trunc(p, p->pos,
                       "%" PRIu64 " metadata entries and %" PRIu64
                       " tensor infos (they cannot fit in the %" PRIu64 " bytes left)",
                       *out_kvs, *out_tensors, p_left(p));
    return LOCO_OK;
}

static loco_status parse_kvs(parser *p, uint64_t n_kv)
{
    gguf *g = p->g;
    g->n_kv = (int64_t)n_kv;
    g->kvs = arena_alloc(&g->mem, (size_t)n_kv * sizeof(gguf_kv) + 1);
    g->kv_names = arena_alloc(&g->mem, (size_t)n_kv * sizeof(char *) + 1);
    if (!g->kvs || !g->kv_names)
        return p_fail(p, LOCO_ERR_NOMEM, "out of memory for %" PRIu64 " metadata entries", n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        loco_status rc = parse_kv(p, i);
        if (rc)
            return rc;
    }
    uint64_t first = 0, dup = 0;
    loco_status rc = index_build(&g->mem, &g->kv_index, g->kv_names, n_kv, &first, &dup);
    if (rc == LOCO_ERR_EXISTS)
        return p_fail(p, LOCO_ERR_INVALID,
                      "metadata key '%s' appears twice (entries %" PRIu64 " and %" PRIu64 ")",
                      g->kv_names[dup], first, dup);
    if (rc)
        return p_fail(p, rc, "out of memory indexing the metadata");
    return LOCO_OK;
}

static loco_status read_alignment(parser *p)
{
    gguf *g = p->g;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = gguf_find_key(g, "general.alignment");
    if (i < 0)
        return LOCO_OK;
    uint64_t a;
    if (g->kvs[i].type == GGUF_TYPE_BOOL || !gguf_get_u64(g, i, &a) || !is_pow2(a) ||
        a > GGUF_MAX_ALIGNMENT)
        return p_fail(p, LOCO_ERR_INVALID,
                      "general.alignment must be a power of two up to %u (metadata entry %" PRId64
                      ", type %s)",
                      GGUF_MAX_ALIGNMENT, i, gguf_type_name(g->kvs[i].type));
    g->alignment = (uint32_t)a;
    return LOCO_OK;
}

static loco_status parse_tensor_name(parser *p, uint64_t i, gguf_tensor *t)
{
    uint64_t at = p->pos, len;
    if (!rd_int(p, 8, &len))
        return p_trunc(p, at, "the name length of tensor info %" PRIu64, i);
    if (len == 0 || len > GGUF_MAX_NAME)
        return p_fail(p, LOCO_ERR_INVALID,
                      "tensor info %" PRIu64 " at byte %" PRIu64 " has a name of %" PRIu64
                      " bytes (allowed 1..%u)",
                      i, at, len, GGUF_MAX_NAME);
    if (len > p_left(p))
        return p_trunc(p, p->pos, "the name of tensor info %" PRIu64, i);
    const char *s = (const char *)p->g->base + p->pos;
    if (memchr(s, '\0', (size_t)len))
        return p_fail(p, LOCO_ERR_INVALID,
                      "the name of tensor info %" PRIu64 " at byte %" PRIu64
                      " contains a NUL byte",
                      i, p->pos);
    t->name = arena_strndup(&p->g->mem, s, (size_t)len);
    if (!t->name)
        return p_fail(p, LOCO_ERR_NOMEM, "out of memory reading tensor info %" PRIu64, i);
    p->pos += len;
    return LOCO_OK;
}

static loco_status parse_tensor_shape(parser *p, uint64_t i, gguf_tensor *t)
{
    uint64_t at = p->pos, n_dims;
    if (!rd_int(p, 4, &n_dims))
        return p_trunc(p, at, "the dimension count of tensor '%s'", t->name);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return p_fail(p, LOCO_ERR_INVALID,
                      "tensor '%s' (info %" PRIu64 ") has %" PRIu64
                      " dimensions at byte %" PRIu64 " (allowed 1..%d)",
                      t->name, i, n_dims, at, GGUF_MAX_DIMS);
    t->n_dims = (uint32_t)n_dims;
    int64_t total = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        at = p->pos;
        if ((uint64_t)d < n_dims && !rd_int(p, 8, &ne))
            return p_trunc(p, at, "dimension %d of tensor '%s'", d, t->name);
        if (ne > (uint64_t)INT64_MAX || __builtin_mul_overflow(total, (int64_t)ne, &total))
            return p_fail(p, LOCO_ERR_INVALID,
                          "tensor '%s' has an impossible shape (dimension %d is %" PRIu64 ")",
                          t->name, d, ne);
        t->ne[d] = (int64_t)ne;
    }
    t->n_elements = total;
    return LOCO_OK;
}

static loco_status parse_tensor_type(parser *p, gguf_tensor *t)
{
    uint64_t at = p->pos, type;
    if (!rd_int(p, 4, &type))
        return p_trunc(p, at, "the type of tensor '%s'", t->name);
    if (!ggml_type_known((uint32_t)type))
        return p_fail(p, LOCO_ERR_UNSUPPORTED,
                      "tensor '%s' has unknown type %" PRIu64 " at byte %" PRIu64
                      " (loco supports %s)",
                      t->name, type, at, ggml_type_supported_list());
    t->type = (ggml_type)type;
    size_t block = ggml_type_block_size(t->type);
    if ((uint64_t)t->ne[0] % block != 0)
        return p_fail(p, LOCO_ERR_INVALID,
                      "tensor '%s' (%s) has rows of %" PRId64
                      " values, not a multiple of the block size %zu",
                      t->name, ggml_type_name(t->type), t->ne[0], block);
    size_t row = ggml_type_row_size(t->type, (uint64_t)t->ne[0]);
    uint64_t rows = (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
    uint64_t nbytes;
    if ((row == 0 && t->ne[0] != 0) || __builtin_mul_overflow((uint64_t)row, rows, &nbytes) ||
        nbytes > SIZE_MAX)
        return p_fail(p, LOCO_ERR_INVALID, "tensor '%s' is too large", t->name);
    t->nbytes = (size_t)nbytes;
    return LOCO_OK;
}

static loco_status parse_tensor_info(parser *p, uint64_t i)
{
    gguf_tensor *t = &p->g->tensors[i];
    loco_status rc = parse_tensor_name(p, i, t);
    if (!rc)
        rc = parse_tensor_shape(p, i, t);
    if (!rc)
        rc = parse_tensor_type(p, t);
    if (rc)
        return rc;
    p->g->tensor_names[i] = t->name;
    uint64_t at = p->pos;
    if (!rd_int(p, 8, &t->offset))
        return p_trunc(p, at, "the data offset of tensor '%s'", t->name);
    return LOCO_OK;
}

/* Places each tensor's data: aligned, inside the file. */
static loco_status place_tensor(parser *p, gguf_tensor *t)
{
    gguf *g = p->g;
    if (t->offset % g->alignment != 0)
        return p_fail(p, LOCO_ERR_INVALID,
                      "tensor '%s' has data offset %" PRIu64
                      ", not a multiple of the alignment %u",
                      t->name, t->offset, g->alignment);
    if (g->data_offset > g->size)
        return p_trunc(p, g->size, "the padding before the data section (which starts at byte %"
                       PRIu64 ")", g->data_offset);
    uint64_t room = g->size - g->data_offset;
    if (t->offset > room || t->nbytes > room - t->offset) {
        if (t->offset > UINT64_MAX - g->data_offset)
            return p_fail(p, LOCO_ERR_INVALID,
                          "tensor '%s' has data offset %" PRIu64 " past the end of the file",
                          t->name, t->offset);
        uint64_t start = g->data_offset + t->offset;
        return p_trunc(p, start < g->size ? start : g->size,
                       "the data of tensor '%s' (%zu bytes from byte %" PRIu64 ")", t->name,
                       t->nbytes, start);
    }
    t->data = g->base + g->data_offset + t->offset;
    return LOCO_OK;
}

static loco_status parse_tensors(parser *p, uint64_t n)
{
    gguf *g = p->g;
    g->n_tensors = n;
    g->tensors = arena_alloc(&g->mem, (size_t)n * sizeof(gguf_tensor) + 1);
    g->tensor_names = arena_alloc(&g->mem, (size_t)n * sizeof(char *) + 1);
    if (!g->tensors || !g->tensor_names)
        return p_fail(p, LOCO_ERR_NOMEM, "out of memory for %" PRIu64 " tensor infos", n);
    for (uint64_t i = 0; i < n; i++) {
        loco_status rc = parse_tensor_info(p, i);
        if (rc)
            return rc;
    }
    uint64_t first = 0, dup = 0;
    loco_status rc = index_build(&g->mem, &g->tensor_index, g->tensor_names, n, &first, &dup);
    if (rc == LOCO_ERR_EXISTS)
        return p_fail(p, LOCO_ERR_INVALID,
                      "tensor name '%s' appears twice (tensor infos %" PRIu64 " and %" PRIu64 ")",
                      g->tensor_names[dup], first, dup);
    if (rc)
        return p_fail(p, rc, "out of memory indexing the tensors");
    g->data_offset = align_up(p->pos, g->alignment);
    for (uint64_t i = 0; i < n; i++) {
        rc = place_tensor(p, &g->tensors[i]);
        if (rc)
            return rc;
    }
    return LOCO_OK;
}

static loco_status parse_file(gguf *g, loco_err *err)
{
    parser p = {g, 0, err};
    uint64_t n_tensors = 0, n_kv = 0;
    loco_status rc = parse_header(&p, &n_tensors, &n_kv);
    if (!rc)
        rc = parse_kvs(&p, n_kv);
    if (!rc)
        rc = read_alignment(&p);
    if (!rc)
        rc = parse_tensors(&p, n_tensors);
    return rc;
}

static gguf *gguf_alloc(const char *name)
{
    gguf *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->name = strdup(name ? name : "<memory>");
    if (!g->name) {
        free(g);
        return NULL;
    }
    arena_init(&g->mem, SIZE_MAX);
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    g->fd = -1;
    return g;
}

loco_status gguf_open_memory(const void *data, size_t size, const char *name, gguf **out_g,
                             loco_err *err)
{
    *out_g = NULL;
    gguf *g = gguf_alloc(name);
    if (!g)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory opening a GGUF file");
    g->base = data;
    g->size = size;
    if (!data)
        g->size = 0;
    loco_status rc = parse_file(g, err);
    if (rc) {
        gguf_close(g);
        return rc;
    }
    *out_g = g;
    return LOCO_OK;
}

loco_status gguf_open(const char *path, gguf **out_g, loco_err *err)
{
    *out_g = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return loco_err_set(err, errno == ENOENT ? LOCO_ERR_NOT_FOUND : LOCO_ERR_IO,
                            "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return loco_err_set(err, LOCO_ERR_IO, "cannot read '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return loco_err_set(err, LOCO_ERR_IO, "cannot read '%s': not a regular file", path);
    }
    if (st.st_size < (off_t)GGUF_HEADER_BYTES) {
        close(fd);
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "%s: truncated at byte %lld reading the header (a GGUF file has at "
                            "least %u bytes)",
                            path, (long long)st.st_size, GGUF_HEADER_BYTES);
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    if (map == MAP_FAILED) {
        close(fd);
        return loco_err_set(err, LOCO_ERR_IO, "cannot map '%s': %s", path, strerror(e));
    }
    gguf *g = gguf_alloc(path);
    if (!g) {
        munmap(map, size);
        close(fd);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory opening '%s'", path);
    }
    g->base = map;
    g->size = size;
    g->mapped = true;
    g->fd = fd; /* kept for gguf_read_at */
    loco_status rc = parse_file(g, err);
    if (rc) {
        gguf_close(g);
        return rc;
    }
    *out_g = g;
    return LOCO_OK;
}

void gguf_close(gguf *g)
{
    if (!g)
        return;
    if (g->mapped)
        munmap((void *)g->base, g->size);
    if (g->fd >= 0)
        close(g->fd);
    arena_release(&g->mem);
    free(g->name);
    free(g);
}

const char *gguf_name(const gguf *g)
{
    return g->name;
}

bool gguf_is_file_mapped(const gguf *g)
{
    return g->mapped;
}

loco_status gguf_read_at(const gguf *g, const void *p, size_t n, void *dst, loco_err *err)
{
    const uint8_t *b = p;
    LOCO_ASSERT(b >= g->base && n <= g->size && (size_t)(b - g->base) <= g->size - n);
    if (g->fd < 0) {
        memcpy(dst, p, n);
        return LOCO_OK;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(g->fd, (uint8_t *)dst + done, n - done,
                          (off_t)((size_t)(b - g->base) + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return loco_err_set(err, LOCO_ERR_IO, "cannot read '%s' at byte %zu: %s", g->name,
                                (size_t)(b - g->base) + done,
                                r < 0 ? strerror(errno) : "the file was truncated");
        done += (size_t)r;
    }
    return LOCO_OK;
}

uint32_t gguf_version(const gguf *g)
{
    return g->version;
}

uint64_t gguf_file_size(const gguf *g)
{
    return g->size;
}

uint32_t gguf_alignment(const gguf *g)
{
    return g->alignment;
}

uint64_t gguf_data_offset(const gguf *g)
{
    return g->data_offset;
}

void gguf_mapping(const gguf *g, const void **out_base, size_t *out_size)
{
    *out_base = g->base;
    *out_size = g->size;
}

int64_t gguf_kv_count(const gguf *g)
{
    return g->n_kv;
}

int64_t gguf_find_key(const gguf *g, const char *key)
{
    return index_find(&g->kv_index, g->kv_names, key);
}

static const gguf_kv *kv_at(const gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_kv ? &g->kvs[i] : NULL;
}

const char *gguf_kv_key(const gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->key : NULL;
}

gguf_type gguf_kv_type(const gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->type : GGUF_TYPE_COUNT;
}

bool gguf_kv_raw(const gguf *g, int64_t i, const void **out_p, size_t *out_n)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv)
        return false;
    *out_p = kv->raw;
    *out_n = (size_t)kv->raw_size;
    return true;
}

static bool kv_int(const gguf *g, int64_t i, int_val *out)
{
    const gguf_kv *kv = kv_at(g, i);
    return kv && decode_int(kv->type, kv->raw, out);
}

bool gguf_get_u64(const gguf *g, int64_t i, uint64_t *out)
{
    int_val v;
    return kv_int(g, i, &v) && int_to_u64(v, out);
}

bool gguf_get_u32(const gguf *g, int64_t i, uint32_t *out)
{
    uint64_t v;
    if (!gguf_get_u64(g, i, &v) || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

bool gguf_get_i64(const gguf *g, int64_t i, int64_t *out)
{
    int_val v;
    return kv_int(g, i, &v) && int_to_i64(v, out);
}

bool gguf_get_f64(const gguf *g, int64_t i, double *out)
{
    const gguf_kv *kv = kv_at(g, i);
    return kv && decode_f64(kv->type, kv->raw, out);
}

bool gguf_get_f32(const gguf *g, int64_t i, float *out)
{
    double d;
    if (!gguf_get_f64(g, i, &d))
        return false;
    *out = (float)d;
    return true;
}

bool gguf_get_bool(const gguf *g, int64_t i, bool *out)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != GGUF_TYPE_BOOL)
        return false;
    *out = kv->raw[0] != 0;
    return true;
}

const char *gguf_get_str(const gguf *g, int64_t i, size_t *out_len)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != GGUF_TYPE_STRING)
        return NULL;
    if (out_len)
        *out_len = kv->str_len;
    return kv->str;
}

const gguf_arr *gguf_get_arr(const gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == GGUF_TYPE_ARRAY ? &kv->arr : NULL;
}

/* Fixed-size element i, or NULL. */
static const uint8_t *arr_elem(const gguf_arr *a, uint64_t i)
{
    size_t n = scalar_size(a->elem_type);
    return n && i < a->count ? a->data + i * n : NULL;
}

bool gguf_arr_get_u64(const gguf_arr *a, uint64_t i, uint64_t *out)
{
    const uint8_t *p = arr_elem(a, i);
    int_val v;
    return p && decode_int(a->elem_type, p, &v) && int_to_u64(v, out);
}

bool gguf_arr_get_i64(const gguf_arr *a, uint64_t i, int64_t *out)
{
    const uint8_t *p = arr_elem(a, i);
    int_val v;
    return p && decode_int(a->elem_type, p, &v) && int_to_i64(v, out);
}

bool gguf_arr_get_f64(const gguf_arr *a, uint64_t i, double *out)
{
    const uint8_t *p = arr_elem(a, i);
    return p && decode_f64(a->elem_type, p, out);
}

const char *gguf_arr_get_str(const gguf_arr *a, uint64_t i, size_t *out_len)
{
    if (a->elem_type != GGUF_TYPE_STRING || i >= a->count)
        return NULL;
    *out_len = (size_t)(a->offsets[i + 1] - a->offsets[i] - 8);
    return (const char *)a->data + a->offsets[i] + 8;
}

const gguf_arr *gguf_arr_get_arr(const gguf_arr *a, uint64_t i)
{
    if (a->elem_type != GGUF_TYPE_ARRAY || i >= a->count)
        return NULL;
    return &a->elems[i];
}

static loco_status require_key(const gguf *g, const char *key, int64_t *out_i, loco_err *err)
{
    *out_i = gguf_find_key(g, key);
    if (*out_i < 0)
        return loco_err_set(err, LOCO_ERR_NOT_FOUND, "%s: missing metadata key '%s'", g->name,
                            key);
    return LOCO_OK;
}

static loco_status wrong_type(const gguf *g, const char *key, int64_t i, const char *want,
                              loco_err *err)
{
    return loco_err_set(err, LOCO_ERR_INVALID, "%s: metadata key '%s' is %s, expected %s",
                        g->name, key, gguf_type_name(g->kvs[i].type), want);
}

loco_status gguf_require_u32(const gguf *g, const char *key, uint32_t *out, loco_err *err)
{
    int64_t i;
    loco_status rc = require_key(g, key, &i, err);
    if (rc)
        return rc;
    if (!gguf_get_u32(g, i, out))
        return wrong_type(g, key, i, "an unsigned integer that fits 32 bits", err);
    return LOCO_OK;
}

loco_status gguf_require_f32(const gguf *g, const char *key, float *out, loco_err *err)
{
    int64_t i;
    loco_status rc = require_key(g, key, &i, err);
    if (rc)
        return rc;
    if (!gguf_get_f32(g, i, out))
        return wrong_type(g, key, i, "FLOAT32 or FLOAT64", err);
    return LOCO_OK;
}

loco_status gguf_require_str(const gguf *g, const char *key, const char **out, loco_err *err)
{
    int64_t i;
    loco_status rc = require_key(g, key, &i, err);
    if (rc)
        return rc;
    *out = gguf_get_str(g, i, NULL);
    if (!*out)
        return wrong_type(g, key, i, "STRING", err);
    return LOCO_OK;
}

uint64_t gguf_tensor_count(const gguf *g)
{
    return g->n_tensors;
}

const gguf_tensor *gguf_tensor_at(const gguf *g, uint64_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf *g, const char *name)
{
    int64_t i = index_find(&g->tensor_index, g->tensor_names, name);
    return i < 0 ? NULL : &g->tensors[i];
}

loco_status gguf_check_supported(const gguf *g, loco_err *err)
{
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        if (!ggml_type_supported(t->type))
            return loco_err_set(err, LOCO_ERR_UNSUPPORTED,
                                "%s: tensor '%s' has type %s (id %d), which loco cannot compute "
                                "with (supported: %s)",
                                g->name, t->name, ggml_type_name(t->type), (int)t->type,
                                ggml_type_supported_list());
    }
    return LOCO_OK;
}

/* ======================================================================================
 * Writer */

typedef struct {
    char *name;
    ggml_type type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    size_t nbytes;
    uint64_t offset;      /* from the data section, set at write time */
    const void *data;     /* borrowed, or NULL when fn produces it */
    gguf_fill_fn fn;
    void *ctx;
} wtensor;

/* Where the bytes go: a file descriptor behind a staging buffer, or a buf. */
typedef struct {
    int fd;
    const char *path;
    buf *mem;
    uint8_t *stage;
    size_t staged;
    uint64_t total;
} sink;

struct gguf_writer {
    buf meta;          /* encoded metadata entries */
    uint64_t n_kv;
    char **keys;
    size_t n_keys, cap_keys;
    wtensor *tensors;
    size_t n_tensors, cap_tensors;
    uint32_t alignment;
    sink *out;         /* while writing */
    uint64_t fill_left; /* bytes the current fill callback still owes */
    bool filling;
};

gguf_writer *gguf_writer_new(void)
{
    gguf_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    buf_init(&w->meta, GGUF_WRITER_MAX_META);
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w)
        return;
    buf_release(&w->meta);
    for (size_t i = 0; i < w->n_keys; i++)
        free(w->keys[i]);
    free(w->keys);
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    free(w);
}

static loco_status enc_int(buf *b, uint64_t v, size_t n)
{
    uint8_t tmp[8];
    store_le(tmp, v, n);
    return buf_append(b, tmp, n);
}

static loco_status enc_str(buf *b, const char *s, size_t n)
{
    loco_status rc = enc_int(b, n, 8);
    return rc ? rc : buf_append(b, s, n);
}

static loco_status meta_err(loco_err *err, loco_status rc, const char *key)
{
    return loco_err_set(err, rc, "cannot add metadata key '%s': %s", key,
                        rc == LOCO_ERR_LIMIT ? "metadata too large" : loco_status_str(rc));
}

/* Checks the key, records it, and encodes key + type tag; the caller appends the value. On
 * failure of the value encoding the caller rolls back with meta_rollback. */
static loco_status meta_begin(gguf_writer *w, const char *key, gguf_type type, size_t *out_mark,
                              loco_err *err)
{
    size_t len = strlen(key);
    if (len == 0 || len > GGUF_MAX_KEY)
        return loco_err_set(err, LOCO_ERR_INVALID, "metadata key of %zu bytes (allowed 1..%u)",
                            len, GGUF_MAX_KEY);
    for (size_t i = 0; i < w->n_keys; i++) {
        if (!strcmp(w->keys[i], key))
            return loco_err_set(err, LOCO_ERR_EXISTS, "metadata key '%s' is already set", key);
    }
    if (w->n_keys == w->cap_keys) {
        size_t cap = w->cap_keys ? 2 * w->cap_keys : 32;
        char **k = realloc(w->keys, cap * sizeof(*k));
        if (!k)
            return meta_err(err, LOCO_ERR_NOMEM, key);
        w->keys = k;
        w->cap_keys = cap;
    }
    char *copy = strdup(key);
    if (!copy)
        return meta_err(err, LOCO_ERR_NOMEM, key);
    *out_mark = w->meta.len;
    loco_status rc = enc_str(&w->meta, key, len);
    if (!rc)
        rc = enc_int(&w->meta, (uint64_t)type, 4);
    if (rc) {
        free(copy);
        w->meta.len = *out_mark;
        return meta_err(err, rc, key);
    }
    w->keys[w->n_keys++] = copy;
    w->n_kv++;
    return LOCO_OK;
}

static loco_status meta_end(gguf_writer *w, const char *key, size_t mark, loco_status rc,
                            loco_err *err)
{
    if (!rc)
        return LOCO_OK;
    w->meta.len = mark;
    w->n_kv--;
    free(w->keys[--w->n_keys]);
    if (err && err->code == rc)
        return rc; /* already described */
    return meta_err(err, rc, key);
}

static loco_status set_scalar(gguf_writer *w, const char *key, gguf_type type, uint64_t bits,
                              loco_err *err)
{
    if (!strcmp(key, "general.alignment") &&
        (type != GGUF_TYPE_UINT32 || !is_pow2(bits) || bits > GGUF_MAX_ALIGNMENT))
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "general.alignment must be a UINT32 power of two up to %u",
                            GGUF_MAX_ALIGNMENT);
    size_t mark;
    loco_err_clear(err);
    loco_status rc = meta_begin(w, key, type, &mark, err);
    if (rc)
        return rc;
    rc = meta_end(w, key, mark, enc_int(&w->meta, bits, scalar_size(type)), err);
    if (!rc && !strcmp(key, "general.alignment"))
        w->alignment = (uint32_t)bits;
    return rc;
}

loco_status gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v, loco_err *err)
{
    return set_scalar(w, key, GGUF_TYPE_UINT8, v, err);
}

loco_status gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v, loco_err *err)
{
    return set_scalar(w, key, GGUF_TYPE_INT8, (uint64_t)(uint8_t)v, err);
}

loco_status gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v, loco_err *err)
{
    return set_scalar(w, key, GGUF_TYPE_UINT16, v, err);
}

loco_status gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v, loco_err *err)
{
    return set_scalar(w, key, GGUF_TYPE_INT16, (uint64_t)(uint16_t)v, err);
}

loco_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v, loco_err *err)
{
    return set_scalar(w, key, GGUF_TYPE_UINT32, v, err);
}

loco_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v, loco_err *err)
{
    return set_scalar(w, key, GGUF_TYPE_INT32, (uint64_t)(uint32_t)v, err);
}

loco_status gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v, loco_err *err)
{
    return set_scalar(w, key, GGUF_TYPE_UINT64, v, err);
}

loco_status gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v, loco_err *err)
{
    return set_scalar(w, key, GGUF_TYPE_INT64, (uint64_t)v, err);
}

loco_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v, loco_err *err)
{
    uint32_t u;
    memcpy(&u, &v, sizeof(u));
    return set_scalar(w, key, GGUF_TYPE_FLOAT32, u, err);
}

loco_status gguf_writer_set_f64(gguf_writer *w, const char *key, double v, loco_err *err)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return set_scalar(w, key, GGUF_TYPE_FLOAT64, u, err);
}

loco_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v, loco_err *err)
{
    return set_scalar(w, key, GGUF_TYPE_BOOL, v ? 1 : 0, err);
}

loco_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *s, size_t n,
                                loco_err *err)
{
    if (n > GGUF_MAX_STRING)
        return loco_err_set(err, LOCO_ERR_LIMIT, "metadata key '%s': string of %zu bytes", key,
                            n);
    size_t mark;
    loco_err_clear(err);
    loco_status rc = meta_begin(w, key, GGUF_TYPE_STRING, &mark, err);
    if (rc)
        return rc;
    return meta_end(w, key, mark, enc_str(&w->meta, s, n), err);
}

static loco_status enc_arr_header(buf *b, gguf_type elem_type, uint64_t count)
{
    loco_status rc = enc_int(b, (uint64_t)elem_type, 4);
    return rc ? rc : enc_int(b, count, 8);
}

static loco_status enc_fixed_elems(buf *b, gguf_type et, const void *data, uint64_t count)
{
    size_t n = scalar_size(et);
    if (count == 0)
        return LOCO_OK;
    if (count > SIZE_MAX / n)
        return LOCO_ERR_LIMIT;
    if (et != GGUF_TYPE_BOOL)
        return buf_append(b, data, (size_t)(count * n)); /* host order is little-endian */
    const uint8_t *src = data;
    for (uint64_t i = 0; i < count; i++) {
        loco_status rc = buf_appendc(b, src[i] ? 1 : 0);
        if (rc)
            return rc;
    }
    return LOCO_OK;
}

loco_status gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type,
                                const void *data, uint64_t count, loco_err *err)
{
    if (!scalar_size(elem_type))
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "metadata key '%s': gguf_writer_set_arr takes fixed-size elements, "
                            "not %s",
                            key, gguf_type_name(elem_type));
    size_t mark;
    loco_err_clear(err);
    loco_status rc = meta_begin(w, key, GGUF_TYPE_ARRAY, &mark, err);
    if (rc)
        return rc;
    rc = enc_arr_header(&w->meta, elem_type, count);
    if (!rc)
        rc = enc_fixed_elems(&w->meta, elem_type, data, count);
    return meta_end(w, key, mark, rc, err);
}

loco_status gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                                    const size_t *lens, uint64_t count, loco_err *err)
{
    size_t mark;
    loco_err_clear(err);
    loco_status rc = meta_begin(w, key, GGUF_TYPE_ARRAY, &mark, err);
    if (rc)
        return rc;
    rc = enc_arr_header(&w->meta, GGUF_TYPE_STRING, count);
    for (uint64_t i = 0; i < count && !rc; i++) {
        size_t n = lens ? lens[i] : strlen(strs[i]);
        rc = n > GGUF_MAX_STRING ? LOCO_ERR_LIMIT : enc_str(&w->meta, strs[i], n);
    }
    return meta_end(w, key, mark, rc, err);
}

loco_status gguf_writer_set_raw(gguf_writer *w, const char *key, gguf_type type,
                                const void *value, size_t n, loco_err *err)
{
    if ((uint32_t)type >= GGUF_TYPE_COUNT)
        return loco_err_set(err, LOCO_ERR_INVALID, "metadata key '%s': invalid type %u", key,
                            (unsigned)type);
    if (!strcmp(key, "general.alignment")) {
        uint32_t a = 0;
        if (type != GGUF_TYPE_UINT32 || n != 4)
            return loco_err_set(err, LOCO_ERR_INVALID, "general.alignment must be a UINT32");
        a = (uint32_t)load_le(value, 4);
        return set_scalar(w, key, type, a, err);
    }
    /* Check the encoding with the reader's own parser over a scratch handle. */
    gguf *scratch = gguf_alloc(key);
    if (!scratch)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    scratch->base = value;
    scratch->size = value ? n : 0;
    parser p = {scratch, 0, err};
    gguf_kv kv = {.key = key, .type = type};
    value_ctx c = {0, key};
    loco_status rc = parse_value(&p, &kv, &c);
    if (!rc && p.pos != n)
        rc = loco_err_set(err, LOCO_ERR_INVALID,
                          "metadata key '%s': %zu bytes given, the %s value has %" PRIu64, key,
                          n, gguf_type_name(type), p.pos);
    gguf_close(scratch);
    if (rc)
        return rc;
    size_t mark;
    rc = meta_begin(w, key, type, &mark, err);
    if (rc)
        return rc;
    return meta_end(w, key, mark, buf_append(&w->meta, value, n), err);
}

static loco_status add_tensor(gguf_writer *w, const wtensor *t, loco_err *err)
{
    size_t len = strlen(t->name);
    if (len == 0 || len > GGUF_MAX_NAME)
        return loco_err_set(err, LOCO_ERR_INVALID, "tensor name '%s' has %zu bytes (allowed 1..%u)",
                            t->name, len, GGUF_MAX_NAME);
    if (!ggml_type_known(t->type))
        return loco_err_set(err, LOCO_ERR_INVALID, "tensor '%s': unknown type %d", t->name,
                            (int)t->type);
    for (size_t i = 0; i < w->n_tensors; i++) {
        if (!strcmp(w->tensors[i].name, t->name))
            return loco_err_set(err, LOCO_ERR_EXISTS, "tensor '%s' is already added", t->name);
    }
    wtensor nt = *t;
    uint64_t rows = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        if (d >= t->n_dims)
            nt.ne[d] = 1;
        if (nt.ne[d] < 0 || (d > 0 && __builtin_mul_overflow(rows, (uint64_t)nt.ne[d], &rows)))
            return loco_err_set(err, LOCO_ERR_INVALID, "tensor '%s': bad dimension %u", t->name,
                                d);
    }
    size_t row = ggml_type_row_size(nt.type, (uint64_t)nt.ne[0]);
    uint64_t nbytes;
    if ((row == 0 && nt.ne[0] != 0) || __builtin_mul_overflow((uint64_t)row, rows, &nbytes) ||
        nbytes > SIZE_MAX / 2)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "tensor '%s': %" PRId64 " values per row do not make whole %s blocks "
                            "of %zu, or the tensor is too large",
                            t->name, nt.ne[0], ggml_type_name(nt.type),
                            ggml_type_block_size(nt.type));
    nt.nbytes = (size_t)nbytes;
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        wtensor *a = realloc(w->tensors, cap * sizeof(*a));
        if (!a)
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory adding tensor '%s'", t->name);
        w->tensors = a;
        w->cap_tensors = cap;
    }
    nt.name = strdup(t->name);
    if (!nt.name)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory adding tensor '%s'", t->name);
    w->tensors[w->n_tensors++] = nt;
    return LOCO_OK;
}

/* Copies the caller's shape into t, reading only n_dims entries of ne. */
static loco_status wtensor_shape(wtensor *t, const int64_t *ne, loco_err *err)
{
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return loco_err_set(err, LOCO_ERR_INVALID, "tensor '%s': %u dimensions (allowed 1..%d)",
                            t->name, t->n_dims, GGUF_MAX_DIMS);
    for (uint32_t d = 0; d < t->n_dims; d++)
        t->ne[d] = ne[d];
    return LOCO_OK;
}

loco_status gguf_writer_add_tensor(gguf_writer *w, const char *name, ggml_type type,
                                   uint32_t n_dims, const int64_t *ne, const void *data,
                                   loco_err *err)
{
    wtensor t = {.name = (char *)name, .type = type, .n_dims = n_dims, .data = data};
    loco_status rc = wtensor_shape(&t, ne, err);
    return rc ? rc : add_tensor(w, &t, err);
}

loco_status gguf_writer_add_tensor_fn(gguf_writer *w, const char *name, ggml_type type,
                                      uint32_t n_dims, const int64_t *ne, gguf_fill_fn fn,
                                      void *ctx, loco_err *err)
{
    wtensor t = {.name = (char *)name, .type = type, .n_dims = n_dims, .fn = fn, .ctx = ctx};
    loco_status rc = wtensor_shape(&t, ne, err);
    return rc ? rc : add_tensor(w, &t, err);
}

static loco_status write_fd_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return LOCO_ERR_IO;
        p += k;
        n -= (size_t)k;
    }
    return LOCO_OK;
}

static loco_status sink_flush(sink *s, loco_err *err)
{
    if (s->fd < 0 || !s->staged)
        return LOCO_OK;
    loco_status rc = write_fd_all(s->fd, s->stage, s->staged);
    s->staged = 0;
    if (rc)
        return loco_err_set(err, rc, "cannot write '%s': %s", s->path, strerror(errno));
    return LOCO_OK;
}

static loco_status sink_write(sink *s, const void *p, size_t n, loco_err *err)
{
    if (n == 0)
        return LOCO_OK;
    s->total += n;
    if (s->fd < 0) {
        loco_status rc = buf_append(s->mem, p, n);
        return rc ? loco_err_set(err, rc, "cannot build the GGUF file in memory: %s",
                                 loco_status_str(rc))
                  : LOCO_OK;
    }
    if (s->staged + n > GGUF_WRITE_CHUNK) {
        loco_status rc = sink_flush(s, err);
        if (rc)
            return rc;
    }
    if (n >= GGUF_WRITE_CHUNK) {
        if (write_fd_all(s->fd, p, n))
            return loco_err_set(err, LOCO_ERR_IO, "cannot write '%s': %s", s->path,
                                strerror(errno));
        return LOCO_OK;
    }
    memcpy(s->stage + s->staged, p, n);
    s->staged += n;
    return LOCO_OK;
}

static loco_status sink_pad(sink *s, uint64_t alignment, loco_err *err)
{
    static const uint8_t zeros[64];
    uint64_t pad = align_up(s->total, alignment) - s->total;
    while (pad) {
        size_t k = pad < sizeof(zeros) ? (size_t)pad : sizeof(zeros);
        loco_status rc = sink_write(s, zeros, k, err);
        if (rc)
            return rc;
        pad -= k;
    }
    return LOCO_OK;
}

static loco_status write_head(gguf_writer *w, sink *s, loco_err *err)
{
    buf h;
    buf_init(&h, BUF_UNLIMITED);
    loco_status rc = buf_append(&h, GGUF_MAGIC, 4);
    if (!rc)
        rc = enc_int(&h, 3, 4);
    if (!rc)
        rc = enc_int(&h, w->n_tensors, 8);
    if (!rc)
        rc = enc_int(&h, w->n_kv, 8);
    if (!rc)
        rc = sink_write(s, h.data, h.len, err);
    if (!rc)
        rc = sink_write(s, w->meta.data ? w->meta.data : "", w->meta.len, err);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors && !rc; i++) {
        wtensor *t = &w->tensors[i];
        t->offset = off;
        off += align_up(t->nbytes, w->alignment);
        buf_reset(&h);
        rc = enc_str(&h, t->name, strlen(t->name));
        if (!rc)
            rc = enc_int(&h, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims && !rc; d++)
            rc = enc_int(&h, (uint64_t)t->ne[d], 8);
        if (!rc)
            rc = enc_int(&h, (uint64_t)t->type, 4);
        if (!rc)
            rc = enc_int(&h, t->offset, 8);
        if (!rc)
            rc = sink_write(s, h.data, h.len, err);
    }
    buf_release(&h);
    if (rc && err && err->code != rc)
        loco_err_set(err, rc, "cannot encode the GGUF header: %s", loco_status_str(rc));
    return rc ? rc : sink_pad(s, w->alignment, err);
}

loco_status gguf_writer_put(gguf_writer *w, const void *p, size_t n, loco_err *err)
{
    if (!w->filling)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "gguf_writer_put called outside a fill callback");
    if (n > w->fill_left)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "tensor data overflow: %zu bytes given, %" PRIu64 " expected", n,
                            w->fill_left);
    w->fill_left -= n;
    return sink_write(w->out, p, n, err);
}

static loco_status write_tensor_data(gguf_writer *w, size_t i, loco_err *err)
{
    wtensor *t = &w->tensors[i];
    loco_status rc;
    if (!t->fn) {
        rc = sink_write(w->out, t->data, t->nbytes, err);
    } else {
        w->filling = true;
        w->fill_left = t->nbytes;
        rc = t->fn(t->ctx, w, i, err);
        w->filling = false;
        if (!rc && w->fill_left)
            rc = loco_err_set(err, LOCO_ERR_INVALID,
                              "tensor '%s': the data callback produced %" PRIu64
                              " of %zu bytes",
                              t->name, (uint64_t)t->nbytes - w->fill_left, t->nbytes);
        else if (rc && err && !err->msg[0])
            loco_err_set(err, rc, "tensor '%s': the data callback failed: %s", t->name,
                         loco_status_str(rc));
    }
    return rc ? rc : sink_pad(w->out, w->alignment, err);
}

static loco_status write_all_to(gguf_writer *w, sink *s, loco_err *err)
{
    if (w->filling)
        return loco_err_set(err, LOCO_ERR_INVALID, "gguf_writer_write called from a callback");
    w->out = s;
    loco_status rc = write_head(w, s, err);
    for (size_t i = 0; i < w->n_tensors && !rc; i++)
        rc = write_tensor_data(w, i, err);
    if (!rc)
        rc = sink_flush(s, err);
    w->out = NULL;
    return rc;
}

loco_status gguf_writer_write_buf(gguf_writer *w, buf *out, loco_err *err)
{
    loco_err_clear(err);
    sink s = {.fd = -1, .path = "<memory>", .mem = out};
    return write_all_to(w, &s, err);
}

/* Best effort: makes the rename durable. */
static void sync_parent_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

loco_status gguf_writer_write(gguf_writer *w, const char *path, loco_err *err)
{
    loco_err_clear(err);
    char tmp[4200];
    if (strlen(path) > 4000)
        return loco_err_set(err, LOCO_ERR_INVALID, "path too long: '%s'", path);
    snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return loco_err_set(err, LOCO_ERR_IO, "cannot create a temporary file beside '%s': %s",
                            path, strerror(errno));
    sink s = {.fd = fd, .path = path, .stage = malloc(GGUF_WRITE_CHUNK)};
    loco_status rc = s.stage ? LOCO_OK
                             : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory writing '%s'",
                                            path);
    if (!rc && fchmod(fd, 0644) != 0)
        rc = loco_err_set(err, LOCO_ERR_IO, "cannot chmod '%s': %s", tmp, strerror(errno));
    if (!rc)
        rc = write_all_to(w, &s, err);
    if (!rc && fsync(fd) != 0)
        rc = loco_err_set(err, LOCO_ERR_IO, "cannot sync '%s': %s", tmp, strerror(errno));
    free(s.stage);
    if (close(fd) != 0 && !rc)
        rc = loco_err_set(err, LOCO_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = loco_err_set(err, LOCO_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path,
                          strerror(errno));
    if (rc) {
        unlink(tmp);
        return rc;
    }
    sync_parent_dir(path);
    return LOCO_OK;
}
