/* test_gguf.c: unit tests of engine/ggml_types and engine/gguf: the type table, fp16/bf16
 * conversions, writer/reader round trips (every metadata type, nested arrays, aligned tensor
 * data, mmap without copies), truncation at every byte, corrupt and hostile fields, v2 files,
 * writer errors, and `loco model info`. Set LOCO_GGUF_SEED_DIR to also write fuzz seeds. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/file.h"
#include "base/json.h"
#include "base/str.h"
#include "engine/ggml_types.h"
#include "engine/gguf.h"

static void expect_msg(const loco_err *err, const char *want)
{
    if (!strstr(err->msg, want))
        fail_msg("error message '%s' lacks '%s'", err->msg, want);
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float f32_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* ---------------------------------------------------------------------------------------
 * ggml_types */

static void test_type_table(void **state)
{
    (void)state;
    assert_int_equal(ggml_type_block_size(GGML_TYPE_Q4_K), 256);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q4_K), 144);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q5_K), 176);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q6_K), 210);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q8_K), 292);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q8_0), 34);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q4_0), 18);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q4_1), 20);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q5_0), 22);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q5_1), 24);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_IQ4_XS), 136);
    assert_int_equal(ggml_type_block_size(GGML_TYPE_IQ4_NL), 32);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_BF16), 2);
    assert_int_equal(ggml_type_row_size(GGML_TYPE_Q6_K, 2560), 10 * 210);
    assert_int_equal(ggml_type_row_size(GGML_TYPE_F32, 7), 28);
    assert_int_equal(ggml_type_row_size(GGML_TYPE_Q8_0, 33), 0);
    assert_int_equal(ggml_type_row_size(4, 32), 0);
    assert_int_equal(ggml_type_row_size(GGML_TYPE_F32, UINT64_MAX / 2), 0);
    assert_string_equal(ggml_type_name(GGML_TYPE_Q5_K), "Q5_K");
    assert_string_equal(ggml_type_name(5), "unknown");
    assert_string_equal(ggml_type_name(1000), "unknown");
    assert_false(ggml_type_known(31));
    assert_true(ggml_type_known(GGML_TYPE_IQ2_XXS));
    assert_false(ggml_type_supported(GGML_TYPE_IQ2_XXS));
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q2_K), 84);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q3_K), 110);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_IQ4_NL), 18);
    uint32_t supported[] = {0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 20, 23, 30};
    int n = 0;
    for (uint32_t id = 0; id < 64; id++)
        n += ggml_type_supported(id);
    assert_int_equal(n, (int)LOCO_ARRAY_LEN(supported));
    for (size_t i = 0; i < LOCO_ARRAY_LEN(supported); i++)
        assert_true(ggml_type_supported(supported[i]));
    ggml_type t;
    assert_true(ggml_type_from_name("q4_k", &t));
    assert_int_equal(t, GGML_TYPE_Q4_K);
    assert_false(ggml_type_from_name("Q4_K_M", &t));
    assert_string_equal(ggml_type_supported_list(),
                        "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, "
                        "Q6_K, IQ4_NL, IQ4_XS");
}

static void test_fp16(void **state)
{
    (void)state;
    assert_int_equal(fp16_from_f32(1.0f), 0x3C00);
    assert_int_equal(fp16_from_f32(-2.0f), 0xC000);
    assert_int_equal(fp16_from_f32(0.0f), 0x0000);
    assert_int_equal(fp16_from_f32(-0.0f), 0x8000);
    assert_int_equal(fp16_from_f32(65504.0f), 0x7BFF);
    assert_int_equal(fp16_from_f32(65519.0f), 0x7BFF);  /* below the halfway point */
    assert_int_equal(fp16_from_f32(65520.0f), 0x7C00);  /* halfway rounds to even: inf */
    assert_int_equal(fp16_from_f32(1e10f), 0x7C00);
    assert_int_equal(fp16_from_f32(-INFINITY), 0xFC00);
    assert_int_equal(fp16_from_f32(NAN), 0x7E00);
    assert_int_equal(fp16_from_f32(f32_of(0xFF800001)), 0xFE00); /* signalling, negative */
    assert_int_equal(fp16_from_f32(0x1p-24f), 0x0001);       /* smallest subnormal */
    assert_int_equal(fp16_from_f32(0x1p-25f), 0x0000);       /* tie: rounds to even 0 */
    assert_int_equal(fp16_from_f32(0x1.8p-24f), 0x0002);     /* tie: rounds to even 2 */
    assert_int_equal(fp16_from_f32(0x1.004p+0f), 0x3C01);    /* 1 + 2^-10 */
    assert_int_equal(fp16_from_f32(0x1.002p+0f), 0x3C00);    /* tie below: to even */
    assert_int_equal(fp16_from_f32(0x1.006p+0f), 0x3C02);    /* tie above: to even */
    assert_true(fp16_to_f32(0x0001) == 0x1p-24f);
    assert_true(fp16_to_f32(0x3555) == 0x1.554p-2f);
    assert_true(isinf(fp16_to_f32(0x7C00)));
    assert_true(isnan(fp16_to_f32(0x7C01)));
    assert_int_equal(f32_bits(fp16_to_f32(0x8000)), 0x80000000u);
    /* every non-NaN half survives f32 and back */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF))
            continue;
        assert_int_equal(fp16_from_f32(fp16_to_f32((uint16_t)h)), h);
    }
}

static void test_bf16(void **state)
{
    (void)state;
    assert_int_equal(bf16_from_f32(1.0f), 0x3F80);
    assert_int_equal(bf16_from_f32(f32_of(0x3F808000)), 0x3F80); /* tie, even stays */
    assert_int_equal(bf16_from_f32(f32_of(0x3F818000)), 0x3F82); /* tie, odd rounds up */
    assert_int_equal(bf16_from_f32(f32_of(0x3F808001)), 0x3F81);
    assert_int_equal(bf16_from_f32(f32_of(0x7F7FFFFF)), 0x7F80); /* FLT_MAX rounds to inf */
    assert_int_equal(bf16_from_f32(INFINITY), 0x7F80);
    assert_int_equal(bf16_from_f32(f32_of(0x7FC00001)), 0x7FC0);
    assert_int_equal(bf16_from_f32(f32_of(0x7F800001)), 0x7FC0); /* signalling made quiet */
    assert_int_equal(bf16_from_f32(f32_of(0xFFA12345)), 0xFFE1);
    assert_int_equal(bf16_from_f32(f32_of(0x00010000)), 0x0001); /* subnormals kept */
    assert_int_equal(f32_bits(bf16_to_f32(0xC0A0)), 0xC0A00000u);
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7F80) == 0x7F80 && (h & 0x7F))
            continue;
        assert_int_equal(bf16_from_f32(bf16_to_f32((uint16_t)h)), h);
    }
}

/* ---------------------------------------------------------------------------------------
 * The sample file: every metadata type and four tensors; the last tensor's data is a
 * multiple of 32 bytes, so the file ends exactly at its last data byte. */

#define SAMPLE_TENSORS 4
static const char *const sample_names[SAMPLE_TENSORS] = {"token_embd.weight", "blk.0.q4k",
                                                          "norm", "last"};
static const ggml_type sample_types[SAMPLE_TENSORS] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_K,
                                                        GGML_TYPE_F16, GGML_TYPE_F32};
static const uint32_t sample_ndims[SAMPLE_TENSORS] = {2, 2, 1, 3};
static const int64_t sample_ne[SAMPLE_TENSORS][4] = {
    {64, 3, 1, 1}, {256, 2, 1, 1}, {10, 1, 1, 1}, {8, 2, 2, 1}};
static const size_t sample_bytes[SAMPLE_TENSORS] = {2 * 34 * 3, 144 * 2, 20, 128};

static uint8_t sample_byte(size_t tensor, size_t i)
{
    return (uint8_t)(i * 31 + tensor * 7 + 1);
}

typedef struct {
    uint8_t *data[SAMPLE_TENSORS];
} sample_data;

static void sample_data_init(sample_data *d)
{
    for (size_t t = 0; t < SAMPLE_TENSORS; t++) {
        d->data[t] = malloc(sample_bytes[t]);
        assert_non_null(d->data[t]);
        for (size_t i = 0; i < sample_bytes[t]; i++)
            d->data[t][i] = sample_byte(t, i);
    }
}

static void sample_data_release(sample_data *d)
{
    for (size_t t = 0; t < SAMPLE_TENSORS; t++)
        free(d->data[t]);
}

/* Encodes [[1, 2] as UINT16, ["x", ""] as STRING, [] as INT8] as an ARRAY of ARRAYs. */
static void nested_value(buf *b)
{
    static const uint8_t v[] = {
        9, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0,         /* ARRAY of 3 arrays */
        2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, /* UINT16 [1, 2] */
        8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,         /* STRING x 2 */
        1, 0, 0, 0, 0, 0, 0, 0, 'x', 0, 0, 0, 0, 0, 0, 0, 0,
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,         /* INT8 [] */
    };
    buf_init(b, BUF_UNLIMITED);
    assert_int_equal(buf_append(b, v, sizeof(v)), LOCO_OK);
}

static const char *const sample_strs[] = {"alpha", "", "\xce\xb3\xce\xac\xce\xbc", "a\0b"};
static const size_t sample_str_lens[] = {5, 0, 6, 3};

static void sample_metadata(gguf_writer *w)
{
    loco_err err;
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "qwen3", 5, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_u8(w, "t.u8", 200, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_i8(w, "t.i8", -5, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_u16(w, "t.u16", 60000, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_i16(w, "t.i16", -30000, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_u32(w, "t.u32", 4000000000u, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_i32(w, "t.i32", -2000000000, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_f32(w, "t.f32", 1e-6f, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_bool(w, "t.bool", true, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_str(w, "t.str", "hi\0there", 8, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_u64(w, "t.u64", UINT64_MAX, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_i64(w, "t.i64", INT64_MIN, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_f64(w, "t.f64", 5000000.0, &err), LOCO_OK);
    int32_t ints[] = {-1, 0, 7};
    assert_int_equal(gguf_writer_set_arr(w, "t.arr_i32", GGUF_TYPE_INT32, ints, 3, &err), LOCO_OK);
    float fl[] = {0.5f, -2.0f};
    assert_int_equal(gguf_writer_set_arr(w, "t.arr_f32", GGUF_TYPE_FLOAT32, fl, 2, &err), LOCO_OK);
    uint64_t u64s[] = {1, UINT64_MAX};
    assert_int_equal(gguf_writer_set_arr(w, "t.arr_u64", GGUF_TYPE_UINT64, u64s, 2, &err),
                     LOCO_OK);
    bool bools[] = {true, false, true};
    assert_int_equal(gguf_writer_set_arr(w, "t.arr_bool", GGUF_TYPE_BOOL, bools, 3, &err),
                     LOCO_OK);
    assert_int_equal(gguf_writer_set_arr(w, "t.arr_empty", GGUF_TYPE_UINT8, NULL, 0, &err),
                     LOCO_OK);
    assert_int_equal(gguf_writer_set_arr_str(w, "t.arr_str", sample_strs, sample_str_lens, 4,
                                             &err),
                     LOCO_OK);
    buf nested;
    nested_value(&nested);
    assert_int_equal(gguf_writer_set_raw(w, "t.nested", GGUF_TYPE_ARRAY, nested.data,
                                         nested.len, &err),
                     LOCO_OK);
    buf_release(&nested);
}

static void sample_tensors(gguf_writer *w, const sample_data *d)
{
    loco_err err;
    for (size_t t = 0; t < SAMPLE_TENSORS; t++)
        assert_int_equal(gguf_writer_add_tensor(w, sample_names[t], sample_types[t],
                                                sample_ndims[t], sample_ne[t], d->data[t], &err),
                         LOCO_OK);
}

/* The sample file's bytes in out (caller releases). */
static void sample_build(buf *out)
{
    sample_data d;
    sample_data_init(&d);
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    sample_metadata(w);
    sample_tensors(w, &d);
    buf_init(out, BUF_UNLIMITED);
    loco_err err;
    assert_int_equal(gguf_writer_write_buf(w, out, &err), LOCO_OK);
    gguf_writer_free(w);
    sample_data_release(&d);
}

static void check_sample_metadata(const gguf *g)
{
    assert_int_equal(gguf_kv_count(g), 20);
    assert_string_equal(gguf_kv_key(g, 0), "general.architecture");
    assert_null(gguf_kv_key(g, 20));
    assert_null(gguf_kv_key(g, -1));
    assert_int_equal(gguf_find_key(g, "nope"), -1);
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f32;
    double f64;
    bool b;
    size_t len;
    assert_string_equal(gguf_get_str(g, 0, &len), "qwen3");
    assert_int_equal(len, 5);
    assert_true(gguf_get_u32(g, gguf_find_key(g, "t.u8"), &u32));
    assert_int_equal(u32, 200);
    assert_false(gguf_get_u32(g, gguf_find_key(g, "t.i8"), &u32));
    assert_true(gguf_get_i64(g, gguf_find_key(g, "t.i8"), &i64));
    assert_int_equal(i64, -5);
    assert_true(gguf_get_u64(g, gguf_find_key(g, "t.u16"), &u64));
    assert_int_equal(u64, 60000);
    assert_true(gguf_get_i64(g, gguf_find_key(g, "t.i16"), &i64));
    assert_int_equal(i64, -30000);
    assert_true(gguf_get_u32(g, gguf_find_key(g, "t.u32"), &u32));
    assert_int_equal(u32, 4000000000u);
    assert_true(gguf_get_i64(g, gguf_find_key(g, "t.i32"), &i64));
    assert_int_equal(i64, -2000000000);
    assert_true(gguf_get_f32(g, gguf_find_key(g, "t.f32"), &f32));
    assert_true(f32 == 1e-6f);
    assert_false(gguf_get_u32(g, gguf_find_key(g, "t.f32"), &u32));
    assert_true(gguf_get_bool(g, gguf_find_key(g, "t.bool"), &b));
    assert_true(b);
    const char *s = gguf_get_str(g, gguf_find_key(g, "t.str"), &len);
    assert_int_equal(len, 8);
    assert_memory_equal(s, "hi\0there", 9);
    assert_true(gguf_get_u64(g, gguf_find_key(g, "t.u64"), &u64));
    assert_true(u64 == UINT64_MAX);
    assert_false(gguf_get_u32(g, gguf_find_key(g, "t.u64"), &u32));
    assert_false(gguf_get_i64(g, gguf_find_key(g, "t.u64"), &i64));
    assert_true(gguf_get_i64(g, gguf_find_key(g, "t.i64"), &i64));
    assert_true(i64 == INT64_MIN);
    assert_false(gguf_get_u64(g, gguf_find_key(g, "t.i64"), &u64));
    assert_true(gguf_get_f64(g, gguf_find_key(g, "t.f64"), &f64));
    assert_true(f64 == 5000000.0);
    assert_true(gguf_get_f32(g, gguf_find_key(g, "t.f64"), &f32));
    assert_true(f32 == 5000000.0f);
    assert_null(gguf_get_str(g, gguf_find_key(g, "t.u8"), NULL));
    assert_null(gguf_get_arr(g, gguf_find_key(g, "t.u8")));
    assert_int_equal(gguf_kv_type(g, gguf_find_key(g, "t.i16")), GGUF_TYPE_INT16);
    assert_int_equal(gguf_kv_type(g, 99), GGUF_TYPE_COUNT);
    const void *raw;
    size_t raw_n;
    assert_true(gguf_kv_raw(g, gguf_find_key(g, "t.u16"), &raw, &raw_n));
    assert_int_equal(raw_n, 2);
    assert_memory_equal(raw, "\x60\xea", 2);
}

static void check_sample_arrays(const gguf *g)
{
    int64_t i64;
    uint64_t u64;
    double f64;
    size_t len;
    const gguf_arr *a = gguf_get_arr(g, gguf_find_key(g, "t.arr_i32"));
    assert_non_null(a);
    assert_int_equal(a->elem_type, GGUF_TYPE_INT32);
    assert_int_equal(a->count, 3);
    assert_true(gguf_arr_get_i64(a, 0, &i64));
    assert_int_equal(i64, -1);
    assert_false(gguf_arr_get_u64(a, 0, &u64));
    assert_true(gguf_arr_get_u64(a, 2, &u64));
    assert_int_equal(u64, 7);
    assert_false(gguf_arr_get_i64(a, 3, &i64));
    assert_false(gguf_arr_get_f64(a, 0, &f64));
    a = gguf_get_arr(g, gguf_find_key(g, "t.arr_f32"));
    assert_true(gguf_arr_get_f64(a, 1, &f64));
    assert_true(f64 == -2.0);
    a = gguf_get_arr(g, gguf_find_key(g, "t.arr_u64"));
    assert_true(gguf_arr_get_u64(a, 1, &u64));
    assert_true(u64 == UINT64_MAX);
    a = gguf_get_arr(g, gguf_find_key(g, "t.arr_bool"));
    assert_int_equal(a->count, 3);
    assert_memory_equal(a->data, "\1\0\1", 3);
    a = gguf_get_arr(g, gguf_find_key(g, "t.arr_empty"));
    assert_int_equal(a->count, 0);
    assert_int_equal(a->size, 0);
    a = gguf_get_arr(g, gguf_find_key(g, "t.arr_str"));
    assert_int_equal(a->count, 4);
    for (uint64_t i = 0; i < 4; i++) {
        const char *s = gguf_arr_get_str(a, i, &len);
        assert_int_equal(len, sample_str_lens[i]);
        assert_memory_equal(s, sample_strs[i], len);
    }
    assert_null(gguf_arr_get_str(a, 4, &len));
    assert_false(gguf_arr_get_i64(a, 0, &i64));
    a = gguf_get_arr(g, gguf_find_key(g, "t.nested"));
    assert_int_equal(a->elem_type, GGUF_TYPE_ARRAY);
    assert_int_equal(a->count, 3);
    const gguf_arr *e0 = gguf_arr_get_arr(a, 0), *e1 = gguf_arr_get_arr(a, 1);
    const gguf_arr *e2 = gguf_arr_get_arr(a, 2);
    assert_null(gguf_arr_get_arr(a, 3));
    assert_true(gguf_arr_get_u64(e0, 1, &u64));
    assert_int_equal(u64, 2);
    assert_memory_equal(gguf_arr_get_str(e1, 0, &len), "x", 1);
    assert_int_equal(len, 1);
    assert_non_null(gguf_arr_get_str(e1, 1, &len));
    assert_int_equal(len, 0);
    assert_int_equal(e2->elem_type, GGUF_TYPE_INT8);
    assert_int_equal(e2->count, 0);
}

static void check_sample_tensors(const gguf *g)
{
    const void *base;
    size_t size;
    gguf_mapping(g, &base, &size);
    assert_int_equal(gguf_tensor_count(g), SAMPLE_TENSORS);
    assert_int_equal(gguf_alignment(g), 32);
    assert_int_equal(gguf_data_offset(g) % 32, 0);
    uint64_t expect_off = 0;
    for (size_t t = 0; t < SAMPLE_TENSORS; t++) {
        const gguf_tensor *x = gguf_find_tensor(g, sample_names[t]);
        assert_ptr_equal(x, gguf_tensor_at(g, t));
        assert_string_equal(x->name, sample_names[t]);
        assert_int_equal(x->type, sample_types[t]);
        assert_int_equal(x->n_dims, sample_ndims[t]);
        int64_t n = 1;
        for (int d = 0; d < 4; d++) {
            assert_int_equal(x->ne[d], sample_ne[t][d]);
            n *= sample_ne[t][d];
        }
        assert_int_equal(x->n_elements, n);
        assert_int_equal(x->nbytes, sample_bytes[t]);
        assert_int_equal(x->offset, expect_off);
        expect_off += (sample_bytes[t] + 31) / 32 * 32;
        /* data lies inside the mapping, aligned from the file start, and is not a copy */
        const uint8_t *p = x->data, *b = base;
        assert_true(p >= b && p + x->nbytes <= b + size);
        assert_int_equal((size_t)(p - b) % 32, 0);
        assert_int_equal((size_t)(p - b), gguf_data_offset(g) + x->offset);
        for (size_t i = 0; i < x->nbytes; i++)
            assert_int_equal(p[i], sample_byte(t, i));
    }
    assert_null(gguf_tensor_at(g, SAMPLE_TENSORS));
    assert_null(gguf_find_tensor(g, "missing"));
    assert_int_equal(gguf_data_offset(g) + expect_off, size);
    loco_err err;
    assert_int_equal(gguf_check_supported(g, &err), LOCO_OK);
}

static void write_seed(const char *name, const void *p, size_t n)
{
    const char *dir = getenv("LOCO_GGUF_SEED_DIR");
    if (!dir)
        return;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(file_write_atomic(path, p, n, 0644, NULL), LOCO_OK);
}

static void test_round_trip_memory(void **state)
{
    (void)state;
    buf file;
    sample_build(&file);
    write_seed("sample.gguf", file.data, file.len);
    gguf *g;
    loco_err err;
    assert_int_equal(gguf_open_memory(file.data, file.len, "sample.gguf", &g, &err), LOCO_OK);
    assert_int_equal(gguf_version(g), 3);
    assert_string_equal(gguf_name(g), "sample.gguf");
    assert_int_equal(gguf_file_size(g), file.len);
    const void *base;
    size_t size;
    gguf_mapping(g, &base, &size);
    assert_ptr_equal(base, file.data);
    check_sample_metadata(g);
    check_sample_arrays(g);
    check_sample_tensors(g);
    /* a second write of the same writer gives the same bytes; so does copying every value
     * through gguf_kv_raw + gguf_writer_set_raw */
    gguf_writer *w = gguf_writer_new();
    for (int64_t i = 0; i < gguf_kv_count(g); i++) {
        const void *raw;
        size_t n;
        assert_true(gguf_kv_raw(g, i, &raw, &n));
        assert_int_equal(gguf_writer_set_raw(w, gguf_kv_key(g, i), gguf_kv_type(g, i), raw, n,
                                             &err),
                         LOCO_OK);
    }
    for (uint64_t t = 0; t < gguf_tensor_count(g); t++) {
        const gguf_tensor *x = gguf_tensor_at(g, t);
        assert_int_equal(gguf_writer_add_tensor(w, x->name, x->type, x->n_dims, x->ne, x->data,
                                                &err),
                         LOCO_OK);
    }
    buf copy;
    buf_init(&copy, BUF_UNLIMITED);
    assert_int_equal(gguf_writer_write_buf(w, &copy, &err), LOCO_OK);
    assert_int_equal(copy.len, file.len);
    assert_memory_equal(copy.data, file.data, file.len);
    buf_release(&copy);
    gguf_writer_free(w);
    gguf_close(g);
    gguf_close(NULL);
    buf_release(&file);
}

/* Fill callback: the sample data in pieces of 7 bytes. */
static loco_status fill_pieces(void *ctx, gguf_writer *w, size_t index, loco_err *err)
{
    const sample_data *d = ctx;
    for (size_t i = 0; i < sample_bytes[index]; i += 7) {
        size_t n = sample_bytes[index] - i < 7 ? sample_bytes[index] - i : 7;
        loco_status rc = gguf_writer_put(w, d->data[index] + i, n, err);
        if (rc)
            return rc;
    }
    return LOCO_OK;
}

static char tmpdir[64];

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/loco-gguf-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_sample_file(const char *path)
{
    sample_data d;
    sample_data_init(&d);
    gguf_writer *w = gguf_writer_new();
    sample_metadata(w);
    loco_err err;
    for (size_t t = 0; t < SAMPLE_TENSORS; t++)
        assert_int_equal(gguf_writer_add_tensor_fn(w, sample_names[t], sample_types[t],
                                                   sample_ndims[t], sample_ne[t], fill_pieces,
                                                   &d, &err),
                         LOCO_OK);
    assert_int_equal(gguf_writer_write(w, path, &err), LOCO_OK);
    gguf_writer_free(w);
    sample_data_release(&d);
}

static void test_round_trip_file(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/model.gguf", tmpdir);
    write_sample_file(path);
    buf mem;
    sample_build(&mem);
    buf disk;
    buf_init(&disk, BUF_UNLIMITED);
    assert_int_equal(file_read_all(path, &disk, NULL), LOCO_OK);
    assert_int_equal(disk.len, mem.len);
    assert_memory_equal(disk.data, mem.data, mem.len);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    /* only the file itself in the directory: no temporary left behind */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 1", tmpdir);
    assert_int_equal(system(cmd), 0);

    gguf *g;
    loco_err err;
    assert_int_equal(gguf_open(path, &g, &err), LOCO_OK);
    assert_string_equal(gguf_name(g), path);
    check_sample_metadata(g);
    check_sample_arrays(g);
    check_sample_tensors(g);
    const void *base;
    size_t size;
    gguf_mapping(g, &base, &size);
    assert_int_equal(size, mem.len);
    /* the mapping is not the heap copy we compare with */
    assert_true((const char *)base != mem.data);
    gguf_close(g);
    buf_release(&mem);
    buf_release(&disk);

    snprintf(path, sizeof(path), "%s/absent.gguf", tmpdir);
    assert_int_equal(gguf_open(path, &g, &err), LOCO_ERR_NOT_FOUND);
    expect_msg(&err, "absent.gguf");
    assert_null(g);
    assert_int_equal(gguf_open(tmpdir, &g, &err), LOCO_ERR_IO);
    expect_msg(&err, "not a regular file");
}

/* Every proper prefix of the sample must fail cleanly, naming the file and "truncated". */
static void test_truncation_every_byte(void **state)
{
    (void)state;
    buf file;
    sample_build(&file);
    for (size_t n = 0; n < file.len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees any over-read */
        assert_non_null(copy);
        memcpy(copy, file.data, n);
        gguf *g = (gguf *)1;
        loco_err err;
        loco_err_clear(&err);
        loco_status rc = gguf_open_memory(copy, n, "cut.gguf", &g, &err);
        if (rc == LOCO_OK)
            fail_msg("a prefix of %zu of %zu bytes opened", n, file.len);
        assert_null(g);
        assert_int_equal(err.code, rc);
        assert_true(str_starts_with(err.msg, "cut.gguf: "));
        if (!strstr(err.msg, "truncated"))
            fail_msg("prefix %zu: '%s'", n, err.msg);
        free(copy);
    }
    /* one example message, exactly */
    gguf *g;
    loco_err err;
    assert_int_equal(gguf_open_memory(file.data, 700, "model.gguf", &g, &err), LOCO_ERR_INVALID);
    assert_string_equal(err.msg, "model.gguf: truncated at byte 698 reading the array length of "
                                 "element 2 of metadata entry 19 ('t.nested') (the file has 700 "
                                 "bytes)");
    assert_int_equal(gguf_open_memory(file.data, 800, "model.gguf", &g, &err), LOCO_ERR_INVALID);
    assert_string_equal(err.msg, "model.gguf: truncated at byte 800 reading the type of tensor "
                                 "'blk.0.q4k' (the file has 800 bytes)");
    buf_release(&file);
}

/* ---------------------------------------------------------------------------------------
 * Hand-built files for corruptions */

typedef struct {
    size_t version, n_tensors, n_kv;
    size_t key0_len, kv0_type, str_len;     /* kv 0: general.architecture = "qwen3" */
    size_t arr_type, arr_count;             /* kv 1: "arr" = UINT32 [1, 2, 3] */
    size_t kv2_key, align_val;              /* kv 2: general.alignment = 32 */
    size_t t0_name_len, t0_ndims, t0_ne0, t0_type, t0_offset; /* "a" F32 {8} at 0 */
    size_t t1_name, t1_ne0, t1_type, t1_offset;               /* "b" Q8_0 {32} at 32 */
} mini_offsets;

static void put_u32(buf *b, uint32_t v)
{
    uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    assert_int_equal(buf_append(b, t, 4), LOCO_OK);
}

static void put_u64(buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_str(buf *b, const char *s)
{
    put_u64(b, strlen(s));
    assert_int_equal(buf_appends(b, s), LOCO_OK);
}

static void mini_build(buf *b, mini_offsets *o)
{
    buf_init(b, BUF_UNLIMITED);
    assert_int_equal(buf_append(b, "GGUF", 4), LOCO_OK);
    o->version = b->len;
    put_u32(b, 3);
    o->n_tensors = b->len;
    put_u64(b, 2);
    o->n_kv = b->len;
    put_u64(b, 3);
    o->key0_len = b->len;
    put_str(b, "general.architecture");
    o->kv0_type = b->len;
    put_u32(b, GGUF_TYPE_STRING);
    o->str_len = b->len;
    put_str(b, "qwen3");
    put_str(b, "arr");
    put_u32(b, GGUF_TYPE_ARRAY);
    o->arr_type = b->len;
    put_u32(b, GGUF_TYPE_UINT32);
    o->arr_count = b->len;
    put_u64(b, 3);
    put_u32(b, 1);
    put_u32(b, 2);
    put_u32(b, 3);
    o->kv2_key = b->len;
    put_str(b, "general.alignment");
    put_u32(b, GGUF_TYPE_UINT32);
    o->align_val = b->len;
    put_u32(b, 32);
    o->t0_name_len = b->len;
    put_str(b, "a");
    o->t0_ndims = b->len;
    put_u32(b, 1);
    o->t0_ne0 = b->len;
    put_u64(b, 8);
    o->t0_type = b->len;
    put_u32(b, GGML_TYPE_F32);
    o->t0_offset = b->len;
    put_u64(b, 0);
    o->t1_name = b->len;
    put_str(b, "b");
    put_u32(b, 1);
    o->t1_ne0 = b->len;
    put_u64(b, 32);
    o->t1_type = b->len;
    put_u32(b, GGML_TYPE_Q8_0);
    o->t1_offset = b->len;
    put_u64(b, 32);
    while (b->len % 32)
        assert_int_equal(buf_appendc(b, 0), LOCO_OK);
    for (int i = 0; i < 32 + 34; i++)
        assert_int_equal(buf_appendc(b, (char)i), LOCO_OK);
}

static void patch32(buf *b, size_t at, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b->data[at + i] = (char)(v >> (8 * i));
}

static void patch64(buf *b, size_t at, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b->data[at + i] = (char)(v >> (8 * i));
}

static void expect_open_fails_at(const buf *b, loco_status code, const char *want, int line)
{
    gguf *g;
    loco_err err;
    loco_status rc = gguf_open_memory(b->data, b->len, "bad.gguf", &g, &err);
    if (rc != code)
        fail_msg("line %d: status %s, want %s: %s", line, loco_status_str(rc),
                 loco_status_str(code), rc ? err.msg : "");
    assert_null(g);
    expect_msg(&err, want);
    assert_true(str_starts_with(err.msg, "bad.gguf: "));
}

#define expect_open_fails(b, code, want) expect_open_fails_at(b, code, want, __LINE__)

/* Applies one mutation to a fresh mini file and checks the failure. */
#define MINI_CASE(stmt, code, want)                                                          \
    do {                                                                                     \
        buf b;                                                                               \
        mini_offsets o;                                                                      \
        mini_build(&b, &o);                                                                  \
        stmt;                                                                                \
        expect_open_fails_at(&b, code, want, __LINE__);                                      \
        buf_release(&b);                                                                     \
    } while (0)

static void test_mini_valid(void **state)
{
    (void)state;
    buf b;
    mini_offsets o;
    mini_build(&b, &o);
    write_seed("mini.gguf", b.data, b.len);
    gguf *g;
    loco_err err;
    assert_int_equal(gguf_open_memory(b.data, b.len, "mini.gguf", &g, &err), LOCO_OK);
    assert_int_equal(gguf_tensor_count(g), 2);
    assert_int_equal(gguf_find_tensor(g, "b")->nbytes, 34);
    assert_int_equal(((const uint8_t *)gguf_find_tensor(g, "b")->data)[0], 32);
    gguf_close(g);

    /* version 2 reads the same */
    patch32(&b, o.version, 2);
    write_seed("mini_v2.gguf", b.data, b.len);
    assert_int_equal(gguf_open_memory(b.data, b.len, "mini.gguf", &g, &err), LOCO_OK);
    assert_int_equal(gguf_version(g), 2);
    assert_string_equal(gguf_get_str(g, gguf_find_key(g, "general.architecture"), NULL),
                        "qwen3");
    gguf_close(g);

    /* alignment 64: tensor "b" at offset 32 is now misaligned */
    patch32(&b, o.align_val, 64);
    expect_open_fails(&b, LOCO_ERR_INVALID, "tensor 'b' has data offset 32, not a multiple of "
                                            "the alignment 64");
    buf_release(&b);
}

static void test_corrupt_header(void **state)
{
    (void)state;
    MINI_CASE(b.data[0] = 'X', LOCO_ERR_INVALID, "not a GGUF file");
    MINI_CASE(patch32(&b, o.version, 1), LOCO_ERR_UNSUPPORTED, "GGUF version 1 is not supported");
    MINI_CASE(patch32(&b, o.version, 4), LOCO_ERR_UNSUPPORTED, "GGUF version 4");
    MINI_CASE(patch32(&b, o.version, 0x03000000), LOCO_ERR_UNSUPPORTED, "big-endian");
    MINI_CASE(patch64(&b, o.n_tensors, (1u << 20) + 1), LOCO_ERR_LIMIT,
              "tensor count 1048577 exceeds the limit 1048576");
    MINI_CASE(patch64(&b, o.n_tensors, UINT64_MAX), LOCO_ERR_LIMIT, "tensor count");
    MINI_CASE(patch64(&b, o.n_kv, UINT64_MAX), LOCO_ERR_LIMIT, "metadata entry count");
    MINI_CASE(patch64(&b, o.n_tensors, 1000), LOCO_ERR_INVALID, "cannot fit");
    /* one more kv than present: the tensor info is read as a kv and goes wrong */
    MINI_CASE(patch64(&b, o.n_kv, 4), LOCO_ERR_INVALID,
              "tensor info 0 at byte 155 has a name of 0 bytes (allowed 1..63)");
    /* one tensor fewer: it is fine (the data section just moves) unless misplaced */
    MINI_CASE(patch64(&b, o.n_tensors, 3), LOCO_ERR_INVALID, "tensor info 2");
}

static void test_corrupt_metadata(void **state)
{
    (void)state;
    MINI_CASE(patch64(&b, o.key0_len, UINT64_MAX), LOCO_ERR_LIMIT,
              "metadata entry 0 at byte 24 has a key of 18446744073709551615 bytes");
    MINI_CASE(patch64(&b, o.key0_len, 0), LOCO_ERR_INVALID, "has a key of 0 bytes");
    MINI_CASE(patch64(&b, o.key0_len, 60000), LOCO_ERR_INVALID,
              "truncated at byte 32 reading the key of metadata entry 0");
    MINI_CASE(b.data[o.key0_len + 10] = 0, LOCO_ERR_INVALID, "contains a NUL byte");
    MINI_CASE(patch32(&b, o.kv0_type, 13), LOCO_ERR_INVALID,
              "metadata entry 0 ('general.architecture') has invalid type 13");
    MINI_CASE(patch64(&b, o.str_len, (1u << 30) + 1), LOCO_ERR_LIMIT, "limit 1073741824");
    MINI_CASE(patch64(&b, o.str_len, 1u << 30), LOCO_ERR_INVALID,
              "1073741824 string bytes of the value of metadata entry 0 "
              "('general.architecture')");
    MINI_CASE(patch32(&b, o.arr_type, 99), LOCO_ERR_INVALID, "invalid array element type 99");
    MINI_CASE(patch64(&b, o.arr_count, UINT64_MAX / 2), LOCO_ERR_INVALID,
              "9223372036854775807 UINT32 elements of the value of metadata entry 1 ('arr')");
    /* an array of strings whose count cannot fit */
    MINI_CASE((patch32(&b, o.arr_type, GGUF_TYPE_STRING), patch64(&b, o.arr_count, 1u << 28)),
              LOCO_ERR_INVALID, "268435456 strings cannot fit");
    /* UINT32 [1,2,3] read as STRING x 3: the first length (0x200000001) is too long */
    MINI_CASE(patch32(&b, o.arr_type, GGUF_TYPE_STRING), LOCO_ERR_LIMIT,
              "string of 8589934593 bytes at byte 96 in element 0 of metadata entry 1 ('arr') "
              "(limit 1073741824)");
    /* two entries with one key */
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(buf_append(&b, "GGUF", 4), LOCO_OK);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, 3);
    for (int i = 0; i < 3; i++) {
        put_str(&b, i == 1 ? "other" : "dup.key");
        put_u32(&b, GGUF_TYPE_UINT8);
        assert_int_equal(buf_appendc(&b, 1), LOCO_OK);
    }
    expect_open_fails(&b, LOCO_ERR_INVALID,
                      "metadata key 'dup.key' appears twice (entries 0 and 2)");
    buf_release(&b);
    MINI_CASE(patch32(&b, o.align_val, 48), LOCO_ERR_INVALID,
              "general.alignment must be a power of two");
    MINI_CASE(patch32(&b, o.align_val, 0), LOCO_ERR_INVALID, "general.alignment");
    MINI_CASE(patch32(&b, o.align_val, 1u << 17), LOCO_ERR_INVALID, "general.alignment");
}

static void test_corrupt_tensors(void **state)
{
    (void)state;
    MINI_CASE(patch32(&b, o.t0_type, 4), LOCO_ERR_UNSUPPORTED,
              "tensor 'a' has unknown type 4 at byte ");
    MINI_CASE(patch32(&b, o.t0_type, 4), LOCO_ERR_UNSUPPORTED,
              "(loco supports F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, "
              "Q5_K, Q6_K, IQ4_NL, IQ4_XS)");
    MINI_CASE(patch32(&b, o.t0_type, 0xFFFFFFFF), LOCO_ERR_UNSUPPORTED,
              "unknown type 4294967295");
    MINI_CASE(patch32(&b, o.t0_ndims, 5), LOCO_ERR_INVALID, "tensor 'a' (info 0) has 5 dimensions");
    MINI_CASE(patch32(&b, o.t0_ndims, 0), LOCO_ERR_INVALID, "has 0 dimensions");
    MINI_CASE(patch64(&b, o.t0_name_len, 64), LOCO_ERR_INVALID,
              "tensor info 0 at byte");
    MINI_CASE(patch64(&b, o.t0_ne0, UINT64_MAX), LOCO_ERR_INVALID, "impossible shape");
    MINI_CASE(patch64(&b, o.t1_ne0, 31), LOCO_ERR_INVALID,
              "tensor 'b' (Q8_0) has rows of 31 values, not a multiple of the block size 32");
    MINI_CASE(patch64(&b, o.t1_offset, 16), LOCO_ERR_INVALID,
              "tensor 'b' has data offset 16, not a multiple of the alignment 32");
    MINI_CASE(patch64(&b, o.t1_offset, 64), LOCO_ERR_INVALID,
              "truncated at byte 288 reading the data of tensor 'b' (34 bytes from byte 288)");
    MINI_CASE(patch64(&b, o.t1_offset, UINT64_MAX - 31), LOCO_ERR_INVALID,
              "tensor 'b' has data offset 18446744073709551584 past the end of the file");
    MINI_CASE(patch64(&b, o.t1_offset, 1u << 30), LOCO_ERR_INVALID,
              "truncated at byte 290 reading the data of tensor 'b' (34 bytes from byte "
              "1073742048)");
    MINI_CASE(patch64(&b, o.t1_ne0, 64), LOCO_ERR_INVALID, "reading the data of tensor 'b'");
    MINI_CASE(b.data[o.t1_name + 8] = 'a', LOCO_ERR_INVALID,
              "tensor name 'a' appears twice (tensor infos 0 and 1)");
    /* a known type loco cannot compute with opens, and gguf_check_supported names it */
    buf b;
    mini_offsets o;
    mini_build(&b, &o);
    patch32(&b, o.t0_type, GGML_TYPE_I32);
    gguf *g;
    loco_err err;
    assert_int_equal(gguf_open_memory(b.data, b.len, "m.gguf", &g, &err), LOCO_OK);
    assert_int_equal(gguf_check_supported(g, &err), LOCO_ERR_UNSUPPORTED);
    assert_string_equal(err.msg, "m.gguf: tensor 'a' has type I32 (id 26), which loco cannot "
                                 "compute with (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, "
                                 "Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS)");
    gguf_close(g);
    buf_release(&b);
}

/* Arrays nested GGUF_MAX_ARRAY_DEPTH deep are fine; one more level is refused. */
static void nested_file(buf *b, int depth)
{
    buf_init(b, BUF_UNLIMITED);
    assert_int_equal(buf_append(b, "GGUF", 4), LOCO_OK);
    put_u32(b, 3);
    put_u64(b, 0);
    put_u64(b, 1);
    put_str(b, "deep");
    put_u32(b, GGUF_TYPE_ARRAY);
    for (int i = 0; i < depth - 1; i++) {
        put_u32(b, GGUF_TYPE_ARRAY);
        put_u64(b, 1);
    }
    put_u32(b, GGUF_TYPE_UINT8);
    put_u64(b, 1);
    assert_int_equal(buf_appendc(b, 42), LOCO_OK);
}

static void test_nesting_limit(void **state)
{
    (void)state;
    buf b;
    nested_file(&b, GGUF_MAX_ARRAY_DEPTH);
    gguf *g;
    loco_err err;
    assert_int_equal(gguf_open_memory(b.data, b.len, "n.gguf", &g, &err), LOCO_OK);
    const gguf_arr *a = gguf_get_arr(g, 0);
    for (int i = 0; i < GGUF_MAX_ARRAY_DEPTH - 1; i++)
        a = gguf_arr_get_arr(a, 0);
    uint64_t v;
    assert_true(gguf_arr_get_u64(a, 0, &v));
    assert_int_equal(v, 42);
    assert_int_equal(gguf_tensor_count(g), 0);
    gguf_close(g);
    buf_release(&b);
    nested_file(&b, GGUF_MAX_ARRAY_DEPTH + 1);
    expect_open_fails(&b, LOCO_ERR_LIMIT, "arrays nested deeper than 8");
    buf_release(&b);
}

static void test_require(void **state)
{
    (void)state;
    buf b;
    mini_offsets o;
    mini_build(&b, &o);
    gguf *g;
    loco_err err;
    assert_int_equal(gguf_open_memory(b.data, b.len, "m.gguf", &g, &err), LOCO_OK);
    uint32_t u;
    float f;
    const char *s;
    assert_int_equal(gguf_require_u32(g, "general.alignment", &u, &err), LOCO_OK);
    assert_int_equal(u, 32);
    assert_int_equal(gguf_require_str(g, "general.architecture", &s, &err), LOCO_OK);
    assert_string_equal(s, "qwen3");
    assert_int_equal(gguf_require_u32(g, "qwen3.block_count", &u, &err), LOCO_ERR_NOT_FOUND);
    assert_string_equal(err.msg, "m.gguf: missing metadata key 'qwen3.block_count'");
    assert_int_equal(gguf_require_u32(g, "general.architecture", &u, &err), LOCO_ERR_INVALID);
    assert_string_equal(err.msg, "m.gguf: metadata key 'general.architecture' is STRING, "
                                 "expected an unsigned integer that fits 32 bits");
    assert_int_equal(gguf_require_f32(g, "arr", &f, &err), LOCO_ERR_INVALID);
    assert_string_equal(err.msg, "m.gguf: metadata key 'arr' is ARRAY, expected FLOAT32 or "
                                 "FLOAT64");
    assert_int_equal(gguf_require_str(g, "general.alignment", &s, &err), LOCO_ERR_INVALID);
    gguf_close(g);
    buf_release(&b);
}

/* ---------------------------------------------------------------------------------------
 * Writer */

static loco_status fill_short(void *ctx, gguf_writer *w, size_t index, loco_err *err)
{
    (void)ctx;
    (void)index;
    return gguf_writer_put(w, "abc", 3, err);
}

static loco_status fill_long(void *ctx, gguf_writer *w, size_t index, loco_err *err)
{
    (void)ctx;
    (void)index;
    static const uint8_t zeros[64];
    return gguf_writer_put(w, zeros, sizeof(zeros), err);
}

static void test_writer_errors(void **state)
{
    (void)state;
    gguf_writer *w = gguf_writer_new();
    loco_err err;
    int64_t ne[2] = {32, 2};
    assert_int_equal(gguf_writer_set_u32(w, "k", 1, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_str(w, "k", "x", 1, &err), LOCO_ERR_EXISTS);
    assert_string_equal(err.msg, "metadata key 'k' is already set");
    assert_int_equal(gguf_writer_set_u32(w, "", 1, &err), LOCO_ERR_INVALID);
    assert_int_equal(gguf_writer_set_u64(w, "general.alignment", 64, &err), LOCO_ERR_INVALID);
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 48, &err), LOCO_ERR_INVALID);
    assert_int_equal(gguf_writer_set_arr(w, "s", GGUF_TYPE_STRING, NULL, 0, &err),
                     LOCO_ERR_INVALID);
    /* set_raw checks the encoding: too short, too long, bad nested type */
    assert_int_equal(gguf_writer_set_raw(w, "r", GGUF_TYPE_UINT32, "\1\0\0", 3, &err),
                     LOCO_ERR_INVALID);
    expect_msg(&err, "truncated");
    assert_int_equal(gguf_writer_set_raw(w, "r", GGUF_TYPE_UINT16, "\1\0\0", 3, &err),
                     LOCO_ERR_INVALID);
    expect_msg(&err, "3 bytes given, the UINT16 value has 2");
    assert_int_equal(gguf_writer_set_raw(w, "r", GGUF_TYPE_ARRAY,
                                         "\x0e\0\0\0\0\0\0\0\0\0\0\0", 12, &err),
                     LOCO_ERR_INVALID);
    expect_msg(&err, "invalid array element type 14");
    assert_int_equal(gguf_writer_set_raw(w, "r", GGUF_TYPE_COUNT, "", 0, &err), LOCO_ERR_INVALID);
    assert_int_equal(gguf_writer_set_raw(w, "r", GGUF_TYPE_UINT16, "\1\0", 2, &err), LOCO_OK);

    assert_int_equal(gguf_writer_add_tensor(w, "t", GGML_TYPE_Q8_0, 2, ne, "", &err), LOCO_OK);
    assert_int_equal(gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 1, ne, "", &err),
                     LOCO_ERR_EXISTS);
    ne[0] = 31;
    assert_int_equal(gguf_writer_add_tensor(w, "u", GGML_TYPE_Q8_0, 2, ne, "", &err),
                     LOCO_ERR_INVALID);
    expect_msg(&err, "31 values per row do not make whole Q8_0 blocks of 32");
    assert_int_equal(gguf_writer_add_tensor(w, "u", (ggml_type)5, 2, ne, "", &err),
                     LOCO_ERR_INVALID);
    assert_int_equal(gguf_writer_add_tensor(w, "u", GGML_TYPE_F32, 5, ne, "", &err),
                     LOCO_ERR_INVALID);
    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = '\0';
    assert_int_equal(gguf_writer_add_tensor(w, longname, GGML_TYPE_F32, 1, ne, "", &err),
                     LOCO_ERR_INVALID);
    longname[63] = '\0';
    assert_int_equal(gguf_writer_put(w, "x", 1, &err), LOCO_ERR_INVALID);
    gguf_writer_free(w);

    /* callbacks that produce too little or too much; nothing is left at the path */
    char path[128];
    snprintf(path, sizeof(path), "%s/short.gguf", tmpdir);
    ne[0] = 8;
    w = gguf_writer_new();
    assert_int_equal(gguf_writer_add_tensor_fn(w, longname, GGML_TYPE_F32, 1, ne, fill_short,
                                               NULL, &err),
                     LOCO_OK);
    assert_int_equal(gguf_writer_write(w, path, &err), LOCO_ERR_INVALID);
    expect_msg(&err, "the data callback produced 3 of 32 bytes");
    assert_false(file_exists(path));
    gguf_writer_free(w);
    w = gguf_writer_new();
    assert_int_equal(gguf_writer_add_tensor_fn(w, "t", GGML_TYPE_F32, 1, ne, fill_long, NULL,
                                               &err),
                     LOCO_OK);
    assert_int_equal(gguf_writer_write(w, path, &err), LOCO_ERR_INVALID);
    expect_msg(&err, "tensor data overflow: 64 bytes given, 32 expected");
    assert_false(file_exists(path));
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s | grep short)\"", tmpdir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/no/such/dir/x.gguf", tmpdir);
    assert_int_equal(gguf_writer_write(w, path, &err), LOCO_ERR_IO);
    expect_msg(&err, "cannot create a temporary file beside");
    gguf_writer_free(w);
    gguf_writer_free(NULL);
}

static void test_writer_alignment(void **state)
{
    (void)state;
    gguf_writer *w = gguf_writer_new();
    loco_err err;
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 64, &err), LOCO_OK);
    float a[3] = {1, 2, 3}, c[1] = {4};
    int64_t ne_a = 3, ne_c = 1;
    assert_int_equal(gguf_writer_add_tensor(w, "a", GGML_TYPE_F32, 1, &ne_a, a, &err), LOCO_OK);
    assert_int_equal(gguf_writer_add_tensor(w, "c", GGML_TYPE_F32, 1, &ne_c, c, &err), LOCO_OK);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    assert_int_equal(gguf_writer_write_buf(w, &out, &err), LOCO_OK);
    gguf *g;
    assert_int_equal(gguf_open_memory(out.data, out.len, NULL, &g, &err), LOCO_OK);
    assert_string_equal(gguf_name(g), "<memory>");
    assert_int_equal(gguf_alignment(g), 64);
    assert_int_equal(gguf_data_offset(g) % 64, 0);
    assert_int_equal(gguf_find_tensor(g, "c")->offset, 64);
    assert_int_equal(out.len, gguf_data_offset(g) + 128);
    float got;
    memcpy(&got, gguf_find_tensor(g, "c")->data, 4);
    assert_true(got == 4.0f);
    gguf_close(g);
    buf_release(&out);
    gguf_writer_free(w);
}

/* A vocabulary the size of Qwen3's: written and read back without per-string costs. */
static void test_big_string_array(void **state)
{
    (void)state;
    enum { N = 151936 };
    char **strs = malloc(N * sizeof(char *));
    assert_non_null(strs);
    for (size_t i = 0; i < N; i++) {
        char tmp[32];
        snprintf(tmp, sizeof(tmp), "tok%zu", i);
        strs[i] = strdup(tmp);
    }
    gguf_writer *w = gguf_writer_new();
    loco_err err;
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens",
                                             (const char *const *)strs, NULL, N, &err),
                     LOCO_OK);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    assert_int_equal(gguf_writer_write_buf(w, &out, &err), LOCO_OK);
    gguf *g;
    assert_int_equal(gguf_open_memory(out.data, out.len, "v.gguf", &g, &err), LOCO_OK);
    const gguf_arr *a = gguf_get_arr(g, 0);
    assert_int_equal(a->count, N);
    for (size_t i = 0; i < N; i += 997) {
        size_t len;
        const char *s = gguf_arr_get_str(a, i, &len);
        assert_int_equal(len, strlen(strs[i]));
        assert_memory_equal(s, strs[i], len);
    }
    gguf_close(g);
    buf_release(&out);
    gguf_writer_free(w);
    for (size_t i = 0; i < N; i++)
        free(strs[i]);
    free(strs);
}

/* Peak resident memory of this process in MiB. */
static double max_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
#if defined(__APPLE__)
    return (double)ru.ru_maxrss / (1024.0 * 1024.0); /* bytes there */
#else
    return (double)ru.ru_maxrss / 1024.0; /* KiB */
#endif
}

/* A 4 GiB tensor in a sparse file: opening must not touch its pages, so it costs no memory
 * (checked by the peak resident size, not by time: an emulator or a busy machine is slow) and
 * no disk space. */
static void test_open_big_sparse(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(buf_append(&b, "GGUF", 4), LOCO_OK);
    put_u32(&b, 3);
    put_u64(&b, 1);
    put_u64(&b, 0);
    put_str(&b, "token_embd.weight");
    put_u32(&b, 2);
    put_u64(&b, 2560);
    put_u64(&b, 419431);
    put_u32(&b, GGML_TYPE_F32);
    put_u64(&b, 0);
    while (b.len % 32)
        assert_int_equal(buf_appendc(&b, 0), LOCO_OK);
    uint64_t total = b.len + (uint64_t)2560 * 419431 * 4;
    char path[128];
    snprintf(path, sizeof(path), "%s/big.gguf", tmpdir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b.data, 1, b.len, f), b.len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(truncate(path, (off_t)total), 0);
    double rss0 = max_rss_mib();
    gguf *g;
    loco_err err;
    assert_int_equal(gguf_open(path, &g, &err), LOCO_OK);
    assert_true(max_rss_mib() - rss0 < 256.0); /* of 4096 MiB */
    const gguf_tensor *t = gguf_find_tensor(g, "token_embd.weight");
    assert_int_equal(t->nbytes, (size_t)2560 * 419431 * 4);
    assert_int_equal(gguf_file_size(g), total);
    assert_int_equal((const uint8_t *)t->data + t->nbytes - (const uint8_t *)t->data,
                     total - b.len);
    gguf_close(g);
    unlink(path);
    buf_release(&b);
}

/* ---------------------------------------------------------------------------------------
 * loco model info */

static char *run_binary(const char *args, int *out_status)
{
    const char *bin = getenv("LOCO_BINARY");
    if (!bin)
        return NULL;
    /* LOCO_EMULATOR: how to run a cross-built binary (qemu-user; set by CMake) */
    const char *emu = getenv("LOCO_EMULATOR");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s '%s' %s 2>&1", emu ? emu : "", bin, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
        assert_int_equal(buf_append(&out, chunk, n), LOCO_OK);
    int st = pclose(p);
    *out_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return buf_take(&out, NULL);
}

static void write_info_model(const char *path)
{
    gguf_writer *w = gguf_writer_new();
    loco_err err;
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "qwen3", 5, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_str(w, "general.name", "Tiny", 4, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_u32(w, "general.file_type", 7, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_u32(w, "qwen3.context_length", 40960, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_u32(w, "qwen3.embedding_length", 64, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_u64(w, "qwen3.block_count", 2, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_u32(w, "qwen3.attention.head_count", 4, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_u32(w, "qwen3.attention.head_count_kv", 2, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_u32(w, "qwen3.attention.key_length", 32, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_u32(w, "qwen3.feed_forward_length", 96, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_f32(w, "qwen3.rope.freq_base", 5000000.0f, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_f32(w, "qwen3.attention.layer_norm_rms_epsilon", 1e-6f,
                                         &err),
                     LOCO_OK);
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2", 5, &err), LOCO_OK);
    const char *toks[] = {"a", "b", "<|endoftext|>", "<|im_end|>"};
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 4, &err),
                     LOCO_OK);
    const char *merges[] = {"a b"};
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 1, &err),
                     LOCO_OK);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2, &err), LOCO_OK);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 3, &err), LOCO_OK);
    const char *tpl = "{% if tools %}<tool_call>{% endif %}";
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.chat_template", tpl, strlen(tpl), &err),
                     LOCO_OK);
    static uint8_t zeros[4096];
    int64_t ne_e[2] = {64, 4}, ne_n[1] = {64}, ne_q[2] = {256, 2};
    assert_int_equal(gguf_writer_add_tensor(w, "token_embd.weight", GGML_TYPE_Q8_0, 2, ne_e,
                                            zeros, &err),
                     LOCO_OK);
    assert_int_equal(gguf_writer_add_tensor(w, "output_norm.weight", GGML_TYPE_F32, 1, ne_n,
                                            zeros, &err),
                     LOCO_OK);
    assert_int_equal(gguf_writer_add_tensor(w, "blk.0.norm", GGML_TYPE_F32, 1, ne_n, zeros,
                                            &err),
                     LOCO_OK);
    assert_int_equal(gguf_writer_add_tensor(w, "blk.0.iq2", GGML_TYPE_IQ2_XXS, 2, ne_q, zeros,
                                            &err),
                     LOCO_OK);
    assert_int_equal(gguf_writer_write(w, path, &err), LOCO_OK);
    gguf_writer_free(w);
    buf copy;
    buf_init(&copy, BUF_UNLIMITED);
    assert_int_equal(file_read_all(path, &copy, NULL), LOCO_OK);
    write_seed("tiny_qwen3.gguf", copy.data, copy.len);
    buf_release(&copy);
}

static void test_model_info(void **state)
{
    (void)state;
    char path[128], args[256];
    snprintf(path, sizeof(path), "%s/tiny.gguf", tmpdir);
    write_info_model(path);
    int status;
    snprintf(args, sizeof(args), "model info %s", path);
    char *out = run_binary(args, &status);
    if (!out)
        skip();
    assert_int_equal(status, 0);
    char want[4096];
    snprintf(want, sizeof(want),
             "file             %s\n"
             "size             2.03 KiB (2080 bytes), GGUF v3\n"
             "architecture     qwen3\n"
             "name             Tiny\n"
             "file type        Q8_0 (7)\n"
             "parameters       896 (896)\n"
             "tensors          4\n"
             "  F32           2 tensors        512 B\n"
             "  Q8_0          1 tensor         272 B\n"
             "  IQ2_XXS       1 tensor         132 B  (not supported by loco)\n"
             "context length   40960\n"
             "embedding        64\n"
             "layers           2\n"
             "heads            4\n"
             "kv heads         2\n"
             "head dim         32\n"
             "ffn              96\n"
             "rope base        5e+06\n"
             "rms eps          1e-06\n"
             "tokenizer        gpt2 (pre qwen2)\n"
             "vocab            4\n"
             "merges           1\n"
             "bos              2 '<|endoftext|>'\n"
             "eos              3 '<|im_end|>'\n"
             "chat template    36 bytes, tools: yes, <tool_call>: yes\n",
             path);
    assert_string_equal(out, want);
    free(out);

    snprintf(args, sizeof(args), "model info --json %s", path);
    out = run_binary(args, &status);
    assert_int_equal(status, 0);
    loco_err err;
    json_t *j = json_parse(out, strlen(out), &err);
    assert_non_null(j);
    long v;
    assert_string_equal(json_get_str(j, "architecture"), "qwen3");
    assert_string_equal(json_get_str(j, "file_type_name"), "Q8_0");
    assert_true(json_get_long(j, "parameters", &v));
    assert_int_equal(v, 896);
    assert_true(json_get_long(j, "head_dim", &v));
    assert_int_equal(v, 32);
    assert_true(json_get_long(j, "vocab_size", &v));
    assert_int_equal(v, 4);
    assert_string_equal(json_get_str(j, "eos_token"), "<|im_end|>");
    json_t *types = json_object_get(j, "tensor_types");
    assert_true(json_get_long(json_object_get(types, "F32"), "bytes", &v));
    assert_int_equal(v, 512);
    bool b;
    assert_true(json_get_bool(json_object_get(j, "chat_template"), "mentions_tool_call", &b));
    assert_true(b);
    json_decref(j);
    free(out);

    /* errors: the reader's message, exit 1 */
    snprintf(args, sizeof(args), "model info %s/missing.gguf", tmpdir);
    out = run_binary(args, &status);
    assert_int_equal(status, 1);
    assert_true(str_starts_with(out, "loco model info: cannot open"));
    free(out);
    char cut[160];
    snprintf(cut, sizeof(cut), "%s/cut.gguf", tmpdir);
    buf whole;
    buf_init(&whole, BUF_UNLIMITED);
    assert_int_equal(file_read_all(path, &whole, NULL), LOCO_OK);
    assert_int_equal(file_write_atomic(cut, whole.data, 100, 0644, NULL), LOCO_OK);
    buf_release(&whole);
    snprintf(args, sizeof(args), "model info %s", cut);
    out = run_binary(args, &status);
    assert_int_equal(status, 1);
    snprintf(want, sizeof(want),
             "loco model info: %s: truncated at byte 24 reading 19 metadata entries and 4 tensor "
             "infos (they cannot fit in the 76 bytes left) (the file has 100 bytes)\n",
             cut);
    assert_string_equal(out, want);
    free(out);
    out = run_binary("model frob", &status);
    assert_int_equal(status, 2);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_fp16),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_round_trip_memory),
        cmocka_unit_test(test_round_trip_file),
        cmocka_unit_test(test_truncation_every_byte),
        cmocka_unit_test(test_mini_valid),
        cmocka_unit_test(test_corrupt_header),
        cmocka_unit_test(test_corrupt_metadata),
        cmocka_unit_test(test_corrupt_tensors),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_require),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_writer_alignment),
        cmocka_unit_test(test_big_string_array),
        cmocka_unit_test(test_open_big_sparse),
        cmocka_unit_test(test_model_info),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
