/* fuzz_gguf.c: libFuzzer target for engine/gguf. Opens arbitrary bytes with gguf_open_memory,
 * walks every key (all getters, arrays recursively) and tensor (data must lie inside the
 * input), then copies what opened through the writer and requires the copy to reopen equal. */
#include "base/common.h"

#include "engine/gguf.h"

static volatile uint64_t fuzz_sink; /* keeps the reads from being optimised away */

static void fuzz_walk_arr(const gguf_arr *a)
{
    for (uint64_t i = 0; i < a->count; i++) {
        uint64_t u;
        int64_t s;
        double d;
        size_t len;
        if (gguf_arr_get_u64(a, i, &u))
            fuzz_sink += u;
        if (gguf_arr_get_i64(a, i, &s))
            fuzz_sink += (uint64_t)s;
        if (gguf_arr_get_f64(a, i, &d))
            fuzz_sink += d == d;
        const char *str = gguf_arr_get_str(a, i, &len);
        if (str && len)
            fuzz_sink += (uint8_t)str[0] + (uint8_t)str[len - 1];
        const gguf_arr *sub = gguf_arr_get_arr(a, i);
        if (sub)
            fuzz_walk_arr(sub);
        if (a->elem_type == GGUF_TYPE_STRING && !str)
            abort();
    }
}

static void fuzz_walk_keys(const gguf *g)
{
    for (int64_t i = 0; i < gguf_kv_count(g); i++) {
        const char *key = gguf_kv_key(g, i);
        if (!key || gguf_find_key(g, key) != i)
            abort();
        uint32_t u32;
        uint64_t u64;
        int64_t i64;
        float f;
        double d;
        bool b;
        size_t len;
        fuzz_sink += gguf_get_u32(g, i, &u32) + gguf_get_u64(g, i, &u64) +
                     gguf_get_i64(g, i, &i64) + gguf_get_f32(g, i, &f) + gguf_get_f64(g, i, &d) +
                     gguf_get_bool(g, i, &b);
        const char *s = gguf_get_str(g, i, &len);
        if (s && s[len] != '\0')
            abort();
        const gguf_arr *a = gguf_get_arr(g, i);
        if (a)
            fuzz_walk_arr(a);
    }
}

static void fuzz_walk_tensors(const gguf *g, const uint8_t *data, size_t size)
{
    for (uint64_t i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        if (gguf_find_tensor(g, t->name) != t)
            abort();
        const uint8_t *p = t->data;
        if (p < data || p > data + size || t->nbytes > (size_t)(data + size - p))
            abort();
        if ((size_t)(p - data) % gguf_alignment(g) != 0)
            abort();
        if (t->nbytes)
            fuzz_sink += p[0] + p[t->nbytes - 1];
    }
}

/* Copies g through the writer; when the writer accepts it, the copy must reopen with the
 * same keys and tensors. */
static void fuzz_copy(const gguf *g)
{
    gguf_writer *w = gguf_writer_new();
    if (!w)
        return;
    loco_err err;
    loco_status rc = LOCO_OK;
    for (int64_t i = 0; i < gguf_kv_count(g) && !rc; i++) {
        const void *raw;
        size_t n;
        if (!gguf_kv_raw(g, i, &raw, &n))
            abort();
        rc = gguf_writer_set_raw(w, gguf_kv_key(g, i), gguf_kv_type(g, i), raw, n, &err);
    }
    for (uint64_t i = 0; i < gguf_tensor_count(g) && !rc; i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &err);
    }
    buf out;
    buf_init(&out, (size_t)1 << 28);
    if (!rc)
        rc = gguf_writer_write_buf(w, &out, &err);
    if (!rc) {
        gguf *c;
        if (gguf_open_memory(out.data, out.len, "copy", &c, &err) != LOCO_OK)
            abort();
        if (gguf_kv_count(c) != gguf_kv_count(g) || gguf_tensor_count(c) != gguf_tensor_count(g))
            abort();
        for (uint64_t i = 0; i < gguf_tensor_count(g); i++) {
            const gguf_tensor *a = gguf_tensor_at(g, i), *b = gguf_tensor_at(c, i);
            if (strcmp(a->name, b->name) || a->nbytes != b->nbytes ||
                (a->nbytes && memcmp(a->data, b->data, a->nbytes)))
                abort();
        }
        gguf_close(c);
    }
    buf_release(&out);
    gguf_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf *g;
    loco_err err;
    loco_err_clear(&err);
    if (gguf_open_memory(data, size, "fuzz.gguf", &g, &err) != LOCO_OK) {
        if (!err.msg[0] || g)
            abort();
        return 0;
    }
    fuzz_walk_keys(g);
    fuzz_walk_tensors(g, data, size);
    fuzz_copy(g);
    gguf_close(g);
    return 0;
}
