/* gguf.h: GGUF model files (versions 2 and 3): a reader over a read-only mmap that checks
 * every count, offset and size against the file, and a streaming writer. Engine layer; the
 * format is ggml-org/ggml docs/gguf.md. See docs/internals/gguf.md. */
#ifndef LOCO_GGUF_H
#define LOCO_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/status.h"
#include "engine/ggml_types.h"

/* Metadata value types, as stored in the file. */
typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT = 13,
} gguf_type;

/* Limits applied to every file read (hostile input) and every file written. */
#define GGUF_MAX_TENSORS (1u << 20)      /* tensor_count */
#define GGUF_MAX_KVS (1u << 20)          /* kv_count */
#define GGUF_MAX_STRING (1u << 30)       /* bytes of one string value */
#define GGUF_MAX_KEY 65535u              /* bytes of one metadata key */
#define GGUF_MAX_NAME 63u                /* bytes of a tensor name (ggml's GGML_MAX_NAME - 1) */
#define GGUF_MAX_ARRAY_DEPTH 8           /* arrays of arrays nest at most this deep */
#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_ALIGNMENT (1u << 16)    /* general.alignment: a power of two up to this */

/* Static upper-case name of a metadata type ("UINT32"); "INVALID" when out of range. */
const char *gguf_type_name(uint32_t type);

/* ---------------------------------------------------------------------------------------
 * Reader. An open file is an opaque handle; everything it hands out (keys, strings, array
 * views, tensor records, tensor data) is owned by it, read-only, and valid until
 * gguf_close. Tensor data and array elements point into the mapping: they are never copied,
 * and pages are only touched when the caller reads them. Numbers in the mapping are
 * little-endian and may be unaligned: read arrays through the gguf_arr_get_* helpers (or
 * memcpy). The handle is immutable after open, so threads may share it. */
typedef struct gguf gguf;

/* A metadata array: `count` elements of `elem_type` starting at `data` (in the mapping). */
typedef struct gguf_arr gguf_arr;
struct gguf_arr {
    gguf_type elem_type;
    uint64_t count;
    const uint8_t *data;     /* encoding of element 0; fixed-size elements are packed */
    uint64_t size;           /* bytes of all elements */
    const uint64_t *offsets; /* STRING arrays: count + 1 byte offsets from data (element i is
                                its u64 length at data + offsets[i]); NULL otherwise */
    const gguf_arr *elems;   /* ARRAY arrays: count descriptors; NULL otherwise */
};

/* A tensor info; data lies inside the file, aligned to gguf_alignment() from the file start. */
typedef struct {
    const char *name;          /* NUL-terminated, at most GGUF_MAX_NAME bytes */
    ggml_type type;            /* a known type (maybe one loco cannot compute with) */
    uint32_t n_dims;           /* 1..GGUF_MAX_DIMS */
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] = row length (values); dims past n_dims are 1 */
    int64_t n_elements;        /* product of ne */
    size_t nbytes;             /* ggml_type_row_size(type, ne[0]) * ne[1] * ne[2] * ne[3] */
    uint64_t offset;           /* from the start of the data section */
    const void *data;          /* into the mapping */
} gguf_tensor;

/* Maps path read-only (MAP_PRIVATE) and parses the header, metadata and tensor infos; tensor
 * pages are not touched. On success *out_g is a new handle for gguf_close. Errors name the
 * file, the byte offset and what was wrong: LOCO_ERR_NOT_FOUND / LOCO_ERR_IO for the file,
 * LOCO_ERR_INVALID for a malformed or truncated file, LOCO_ERR_UNSUPPORTED for a version
 * other than 2/3 or an unknown tensor type, LOCO_ERR_LIMIT past a GGUF_MAX_* bound. */
loco_status gguf_open(const char *path, gguf **out_g, loco_err *err);
/* The same over data[0..size), which is borrowed and must outlive the handle. name is used
 * in messages (copied; NULL gives "<memory>"). */
loco_status gguf_open_memory(const void *data, size_t size, const char *name, gguf **out_g,
                             loco_err *err);
/* Unmaps and frees everything the handle gave out. gguf_close(NULL) does nothing. */
void gguf_close(gguf *g);

const char *gguf_name(const gguf *g);        /* path or name given at open */
uint32_t gguf_version(const gguf *g);        /* 2 or 3 */
uint64_t gguf_file_size(const gguf *g);
uint32_t gguf_alignment(const gguf *g);      /* general.alignment or 32 */
uint64_t gguf_data_offset(const gguf *g);    /* file offset of the data section */
/* The mapped bytes (for checks such as "tensor data lies inside the mapping"). */
void gguf_mapping(const gguf *g, const void **out_base, size_t *out_size);
/* True when the data is a read-only mapping of a file (gguf_open), false for gguf_open_memory:
 * only then may whole pages of it be dropped from memory (they are re-read on use). */
bool gguf_is_file_mapped(const gguf *g);
/* Copies the n bytes at p (inside g's mapping) to dst. From a file (gguf_open) they are read
 * with pread, so the mapping's pages are not touched: lookups of a few rows (the token
 * embeddings) then leave the process's resident memory as it was (a touched page of the
 * mapping stays resident, and the page cache may map 2 MiB at once). Thread-safe.
 * LOCO_ERR_IO names the file and the offset. */
loco_status gguf_read_at(const gguf *g, const void *p, size_t n, void *dst, loco_err *err);

/* Metadata, in file order. Indexes are 0..gguf_kv_count()-1; -1 means "absent". */
int64_t gguf_kv_count(const gguf *g);
/* Index of key, or -1. Keys are unique (duplicates are rejected at open). */
int64_t gguf_find_key(const gguf *g, const char *key);
/* NUL-terminated key of entry i (NULL when i is out of range). */
const char *gguf_kv_key(const gguf *g, int64_t i);
/* Type of entry i; GGUF_TYPE_COUNT when i is out of range. */
gguf_type gguf_kv_type(const gguf *g, int64_t i);
/* The value's encoding in the mapping (after the type tag), e.g. to copy it to a writer. */
bool gguf_kv_raw(const gguf *g, int64_t i, const void **out_p, size_t *out_n);

/* Typed getters: true and *out set when entry i exists and converts exactly. Integer getters
 * accept every integer type (and BOOL) whose value fits the target; float getters accept
 * FLOAT32 and FLOAT64 (a FLOAT64 is rounded to float by gguf_get_f32). */
bool gguf_get_u32(const gguf *g, int64_t i, uint32_t *out);
bool gguf_get_u64(const gguf *g, int64_t i, uint64_t *out);
bool gguf_get_i64(const gguf *g, int64_t i, int64_t *out);
bool gguf_get_f32(const gguf *g, int64_t i, float *out);
bool gguf_get_f64(const gguf *g, int64_t i, double *out);
bool gguf_get_bool(const gguf *g, int64_t i, bool *out);
/* STRING entry: a NUL-terminated copy owned by g (the value may itself contain NULs;
 * *out_len, when out_len is not NULL, is its true length). NULL for other types. */
const char *gguf_get_str(const gguf *g, int64_t i, size_t *out_len);
/* ARRAY entry: its view; NULL for other types. */
const gguf_arr *gguf_get_arr(const gguf *g, int64_t i);

/* Array elements; false / NULL when i >= count or the element type does not convert (same
 * rules as the entry getters). */
bool gguf_arr_get_u64(const gguf_arr *a, uint64_t i, uint64_t *out);
bool gguf_arr_get_i64(const gguf_arr *a, uint64_t i, int64_t *out);
bool gguf_arr_get_f64(const gguf_arr *a, uint64_t i, double *out);
/* STRING array element i: pointer into the mapping, NOT NUL-terminated, length in *out_len. */
const char *gguf_arr_get_str(const gguf_arr *a, uint64_t i, size_t *out_len);
const gguf_arr *gguf_arr_get_arr(const gguf_arr *a, uint64_t i);

/* Key-based getters for required metadata: LOCO_ERR_NOT_FOUND "<file>: missing metadata key
 * 'k'" or LOCO_ERR_INVALID "<file>: metadata key 'k' is STRING, expected ..." otherwise. */
loco_status gguf_require_u32(const gguf *g, const char *key, uint32_t *out, loco_err *err);
loco_status gguf_require_f32(const gguf *g, const char *key, float *out, loco_err *err);
loco_status gguf_require_str(const gguf *g, const char *key, const char **out, loco_err *err);

/* Tensors, in file order. */
uint64_t gguf_tensor_count(const gguf *g);
/* Tensor i, or NULL when out of range. */
const gguf_tensor *gguf_tensor_at(const gguf *g, uint64_t i);
/* Tensor named name, or NULL. Names are unique (duplicates are rejected at open). */
const gguf_tensor *gguf_find_tensor(const gguf *g, const char *name);
/* LOCO_ERR_UNSUPPORTED naming the first tensor whose type loco cannot compute with, its
 * type id and name, and the supported list; LOCO_OK when every tensor is supported. */
loco_status gguf_check_supported(const gguf *g, loco_err *err);

/* ---------------------------------------------------------------------------------------
 * Writer. Collects metadata (encoded at once into one buffer, so a 151k-entry string array
 * costs its bytes plus nothing per element) and tensor descriptions, then streams the file:
 * header, metadata, tensor infos, then each tensor's data, padded to the alignment (32,
 * or general.alignment when set). Data comes from a borrowed pointer or from a callback that
 * produces it piece by piece, so a multi-GB file never sits in memory. Output files are
 * GGUF v3, readable by ggml (tensors packed in order, names < 64 bytes). */
typedef struct gguf_writer gguf_writer;

/* Produces the data of tensor `index` (in add order) by calling gguf_writer_put as many
 * times as it likes with exactly the tensor's nbytes in total. */
typedef loco_status (*gguf_fill_fn)(void *ctx, gguf_writer *w, size_t index, loco_err *err);

/* New empty writer (free with gguf_writer_free); NULL when out of memory. */
gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);

/* Metadata setters: key is copied; a key set twice is LOCO_ERR_EXISTS. Keys are 1..GGUF_MAX_KEY
 * bytes without NUL. "general.alignment" must be a UINT32 power of two <= GGUF_MAX_ALIGNMENT
 * and changes the alignment of the data written. */
loco_status gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v, loco_err *err);
loco_status gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v, loco_err *err);
loco_status gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v, loco_err *err);
loco_status gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v, loco_err *err);
loco_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v, loco_err *err);
loco_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v, loco_err *err);
loco_status gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v, loco_err *err);
loco_status gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v, loco_err *err);
loco_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v, loco_err *err);
loco_status gguf_writer_set_f64(gguf_writer *w, const char *key, double v, loco_err *err);
loco_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v, loco_err *err);
/* s[0..n) is copied; it may contain any bytes. */
loco_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *s, size_t n,
                                loco_err *err);
/* Array of count fixed-size elements (any type but STRING and ARRAY) read from data in host
 * order (little-endian hosts only; BOOL elements are bytes 0/1); copied. */
loco_status gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type,
                                const void *data, uint64_t count, loco_err *err);
/* Array of count strings; lens[i] is the length of strs[i] (lens NULL: strlen). Copied. */
loco_status gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                                    const size_t *lens, uint64_t count, loco_err *err);
/* Any value given as its GGUF encoding (what follows the type tag, e.g. from gguf_kv_raw;
 * nested arrays included); it is checked by the reader's parser and copied. */
loco_status gguf_writer_set_raw(gguf_writer *w, const char *key, gguf_type type,
                                const void *value, size_t n, loco_err *err);

/* Adds a tensor whose data[0..nbytes) is borrowed until gguf_writer_write returns. name
 * (1..GGUF_MAX_NAME bytes, unique) is copied; ne[0] must be a multiple of the type's block
 * size; n_dims is 1..4. Unknown types are LOCO_ERR_INVALID. */
loco_status gguf_writer_add_tensor(gguf_writer *w, const char *name, ggml_type type,
                                   uint32_t n_dims, const int64_t *ne, const void *data,
                                   loco_err *err);
/* Adds a tensor whose data fn produces while the file is written (ctx is borrowed). */
loco_status gguf_writer_add_tensor_fn(gguf_writer *w, const char *name, ggml_type type,
                                      uint32_t n_dims, const int64_t *ne, gguf_fill_fn fn,
                                      void *ctx, loco_err *err);
/* Only inside a gguf_fill_fn: appends the next n bytes of the current tensor's data. Writing
 * past the tensor's nbytes is LOCO_ERR_INVALID. */
loco_status gguf_writer_put(gguf_writer *w, const void *p, size_t n, loco_err *err);

/* Writes the file to a temporary file beside path, fsyncs it and renames it over path (mode
 * 0644); on failure nothing is left at path. The writer can be written again. */
loco_status gguf_writer_write(gguf_writer *w, const char *path, loco_err *err);
/* Writes the same bytes into out (appending; out's max applies), for tests and small files. */
loco_status gguf_writer_write_buf(gguf_writer *w, buf *out, loco_err *err);

#endif
