/* test_kv.c: the KV block cache on its own (engine/kv.h): prefix reuse of whole and partial
 * blocks, identical blocks shared, copy-on-write truncation, LRU eviction under the byte cap,
 * pins that keep a key's blocks warm. The KV contents are tagged by position so a reused or
 * copied block can be checked. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "engine/kv.h"
#include "engine/qwen3.h"

#define LAYERS 2
#define HEADS 2
#define DIM 32
#define B KV_BLOCK /* positions per block */

static kv_cache *new_cache(uint32_t max_blocks, uint64_t cache_blocks)
{
    kv_params p = {LAYERS, HEADS, DIM, GGML_TYPE_F16, max_blocks, 0};
    kv_cache *c = NULL;
    assert_int_equal(kv_cache_new(&p, &c, NULL), LOCO_OK);
    kv_stats st;
    kv_cache_stats(c, &st);
    kv_cache_free(c);
    p.cache_bytes = cache_blocks * st.block_bytes;
    assert_int_equal(kv_cache_new(&p, &c, NULL), LOCO_OK);
    return c;
}

/* Writes "KV" for positions [len, len + n): every value of position p, layer l, head h is
 * tag(ids[p]) so reused rows can be told apart. */
static uint16_t tag(int32_t id, uint32_t l, uint32_t h, uint32_t kind)
{
    return (uint16_t)(id * 16 + l * 4 + h * 2 + kind);
}

static void append(kv_seq *s, const int32_t *ids, uint32_t n)
{
    assert_int_equal(kv_seq_reserve(s, n, NULL), LOCO_OK);
    uint32_t len = kv_seq_len(s);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t pos = len + i;
        for (uint32_t l = 0; l < LAYERS; l++)
            for (uint32_t h = 0; h < HEADS; h++) {
                uint16_t *k = (uint16_t *)kv_seq_k(s, l, h, pos / KV_BLOCK) + (pos % KV_BLOCK) * DIM;
                uint16_t *v = (uint16_t *)kv_seq_v(s, l, h, pos / KV_BLOCK) + (pos % KV_BLOCK) * DIM;
                for (uint32_t d = 0; d < DIM; d++) {
                    k[d] = tag(ids[i], l, h, 0);
                    v[d] = tag(ids[i], l, h, 1);
                }
            }
    }
    kv_seq_commit(s, ids, n);
}

/* Every position's tokens and KV rows are the ones written for ids. */
static void check(const kv_seq *s, const int32_t *ids, uint32_t n)
{
    assert_int_equal(kv_seq_len(s), n);
    for (uint32_t pos = 0; pos < n; pos++) {
        assert_int_equal(kv_seq_token(s, pos), ids[pos]);
        for (uint32_t l = 0; l < LAYERS; l++)
            for (uint32_t h = 0; h < HEADS; h++) {
                const uint16_t *k = (const uint16_t *)kv_seq_k(s, l, h, pos / KV_BLOCK) +
                                    (pos % KV_BLOCK) * DIM;
                const uint16_t *v = (const uint16_t *)kv_seq_v(s, l, h, pos / KV_BLOCK) +
                                    (pos % KV_BLOCK) * DIM;
                assert_int_equal(k[DIM - 1], tag(ids[pos], l, h, 0));
                assert_int_equal(v[0], tag(ids[pos], l, h, 1));
            }
    }
}

static void fill(int32_t *ids, uint32_t n, int32_t base)
{
    for (uint32_t i = 0; i < n; i++)
        ids[i] = base + (int32_t)i;
}

static void test_reuse(void **state)
{
    (void)state;
    kv_cache *c = new_cache(64, 32);
    int32_t a[3 * B + 8];
    fill(a, 3 * B + 8, 1000);
    kv_seq *s = NULL;
    assert_int_equal(kv_seq_new(c, 8 * B, &s, NULL), LOCO_OK);
    assert_int_equal(kv_seq_attach(s, a, 2 * B + 22), 0); /* empty cache */
    append(s, a, 2 * B + 22);                               /* 2 full blocks + 22 */
    check(s, a, 2 * B + 22);
    kv_seq_free(s);

    /* the same prefix again, longer: all 2B + 22 come back (the partial block is taken over) */
    assert_int_equal(kv_seq_new(c, 8 * B, &s, NULL), LOCO_OK);
    assert_int_equal(kv_seq_attach(s, a, 3 * B + 7), 2 * B + 22);
    check(s, a, 2 * B + 22);
    append(s, a + 2 * B + 22, B - 14);
    check(s, a, 3 * B + 8);

    /* a second sequence while the first runs: whole blocks shared, the partial one copied */
    kv_seq *t = NULL;
    assert_int_equal(kv_seq_new(c, 8 * B, &t, NULL), LOCO_OK);
    int32_t b[2 * B + 12];
    memcpy(b, a, (2 * B + 2) * sizeof(int32_t));
    fill(b + 2 * B + 2, 10, 5000);
    /* blocks 0 and 1 shared; block 2 (full by now) matches 2 more positions: copied */
    assert_int_equal(kv_seq_attach(t, b, 2 * B + 12), 2 * B + 2);
    check(t, b, 2 * B + 2);
    append(t, b + 2 * B + 2, 10);
    check(t, b, 2 * B + 12);
    check(s, a, 3 * B + 8); /* untouched */
    kv_stats st;
    kv_cache_stats(c, &st);
    assert_int_equal(st.blocks_used, 4 + 1); /* s: 4 blocks (2 shared), t: 1 more */
    kv_seq_free(t);
    kv_seq_free(s);

    /* a prefix that ends inside a cached partial block: its first rows are copied */
    assert_int_equal(kv_seq_new(c, 8 * B, &s, NULL), LOCO_OK);
    int32_t d[2 * B + 12];
    memcpy(d, b, (2 * B + 7) * sizeof(int32_t));
    fill(d + 2 * B + 7, 5, 7000);
    assert_int_equal(kv_seq_attach(s, d, 2 * B + 12), 2 * B + 7);
    check(s, d, 2 * B + 7);
    kv_seq_free(s);
    kv_cache_free(c);
}

static void test_dedupe_and_truncate(void **state)
{
    (void)state;
    kv_cache *c = new_cache(64, 32);
    int32_t a[B + 36];
    fill(a, B + 36, 1);
    kv_seq *s = NULL, *t = NULL;
    assert_int_equal(kv_seq_new(c, 4 * B, &s, NULL), LOCO_OK);
    assert_int_equal(kv_seq_new(c, 4 * B, &t, NULL), LOCO_OK);
    /* two sequences compute the same first block at the same time: one copy is kept */
    append(s, a, B + 6);
    append(t, a, B + 6);
    kv_stats st;
    kv_cache_stats(c, &st);
    assert_int_equal(st.blocks_used, 3); /* shared block 0 + two private partial blocks */
    /* truncating into the shared block copies it */
    assert_int_equal(kv_seq_truncate(t, 40, NULL), LOCO_OK);
    check(t, a, 40);
    check(s, a, B + 6);
    int32_t x[10];
    fill(x, 10, 900);
    append(t, x, 10);
    assert_int_equal(kv_seq_token(t, 45), 905);
    check(s, a, B + 6);
    kv_seq_free(s);
    kv_seq_free(t);
    kv_cache_free(c);
}

static void test_lru_eviction(void **state)
{
    (void)state;
    kv_cache *c = new_cache(64, 4); /* the cache keeps 4 blocks */
    int32_t p[3][2 * B];
    kv_seq *s = NULL;
    for (int k = 0; k < 3; k++) {
        fill(p[k], 2 * B, 100 + 1000 * k);
        assert_int_equal(kv_seq_new(c, 4 * B, &s, NULL), LOCO_OK);
        append(s, p[k], 2 * B);
        kv_seq_free(s);
    }
    kv_stats st;
    kv_cache_stats(c, &st);
    assert_int_equal(st.blocks_cached, 4);
    assert_int_equal(st.evictions, 2); /* prompt 0's two blocks, the least recently used */
    assert_int_equal(kv_seq_new(c, 4 * B, &s, NULL), LOCO_OK);
    assert_int_equal(kv_seq_attach(s, p[0], 2 * B), 0);
    kv_seq_free(s);
    assert_int_equal(kv_seq_new(c, 4 * B, &s, NULL), LOCO_OK);
    assert_int_equal(kv_seq_attach(s, p[2], 2 * B), 2 * B);
    check(s, p[2], 2 * B);
    kv_seq_free(s);
    /* using prompt 1 makes it recent: the next eviction takes prompt 2 */
    assert_int_equal(kv_seq_new(c, 4 * B, &s, NULL), LOCO_OK);
    assert_int_equal(kv_seq_attach(s, p[1], 2 * B), 2 * B);
    kv_seq_free(s);
    kv_cache_trim(c, 2 * st.block_bytes);
    assert_int_equal(kv_seq_new(c, 4 * B, &s, NULL), LOCO_OK);
    assert_int_equal(kv_seq_attach(s, p[1], 2 * B), 2 * B);
    kv_seq_free(s);
    assert_int_equal(kv_seq_new(c, 4 * B, &s, NULL), LOCO_OK);
    assert_int_equal(kv_seq_attach(s, p[2], 2 * B), 0);
    kv_seq_free(s);
    kv_cache_free(c);
}

static void test_pins(void **state)
{
    (void)state;
    kv_cache *c = new_cache(64, 3);
    int32_t warm[B + 36], other[3][B];
    fill(warm, B + 36, 1);
    kv_seq *s = NULL;
    assert_int_equal(kv_seq_new(c, 4 * B, &s, NULL), LOCO_OK);
    append(s, warm, B + 36);
    kv_pin pin = kv_seq_free_pin(s); /* 2 blocks, pinned */
    for (int k = 0; k < 3; k++) {
        fill(other[k], B, 10000 * (k + 1));
        assert_int_equal(kv_seq_new(c, 4 * B, &s, NULL), LOCO_OK);
        append(s, other[k], B);
        kv_seq_free(s);
    }
    /* the cap (3 blocks) forced evictions, but of the unpinned blocks first */
    assert_int_equal(kv_seq_new(c, 4 * B, &s, NULL), LOCO_OK);
    assert_int_equal(kv_seq_attach(s, warm, B + 36), B + 36);
    kv_seq_free(s);
    assert_int_equal(kv_seq_new(c, 4 * B, &s, NULL), LOCO_OK);
    assert_int_equal(kv_seq_attach(s, other[0], B), 0);
    kv_seq_free(s);
    /* trimming to nothing evicts pinned blocks too; their handle is then stale */
    kv_cache_trim(c, 0);
    kv_stats st;
    kv_cache_stats(c, &st);
    assert_int_equal(st.blocks_used, 0);
    kv_unpin(c, pin);
    kv_cache_free(c);
}

static void test_limits(void **state)
{
    (void)state;
    kv_cache *c = new_cache(2, 0);
    kv_seq *s = NULL;
    assert_int_equal(kv_seq_new(c, 4 * B + 44, &s, NULL), LOCO_OK);
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(kv_seq_reserve(s, 4 * B + 45, &err), LOCO_ERR_OVERFLOW);
    assert_int_equal(kv_seq_reserve(s, 3 * B + 8, &err), LOCO_ERR_LIMIT); /* 4 blocks, 2 exist */
    kv_seq_free(s);
    kv_cache_free(c);
    kv_params bad = {LAYERS, HEADS, 16, GGML_TYPE_Q8_0, 4, 0};
    assert_int_equal(kv_cache_new(&bad, &c, &err), LOCO_ERR_UNSUPPORTED);
    kv_cache_free(NULL);
}

/* The cache types by the names every command takes (--kv-type, LOCO_KV_TYPE), both ways. */
static void test_kv_type_names(void **state)
{
    (void)state;
    qwen3_kv_type t = QWEN3_KV_Q8_0;
    assert_true(qwen3_kv_type_from_name("f16", &t));
    assert_int_equal(t, QWEN3_KV_F16);
    assert_true(qwen3_kv_type_from_name("q8_0", &t));
    assert_int_equal(t, QWEN3_KV_Q8_0);
    assert_string_equal(qwen3_kv_type_name(QWEN3_KV_F16), "f16");
    assert_string_equal(qwen3_kv_type_name(QWEN3_KV_Q8_0), "q8_0");
    t = QWEN3_KV_F16;
    assert_false(qwen3_kv_type_from_name("Q8_0", &t));
    assert_false(qwen3_kv_type_from_name("bf16", &t));
    assert_false(qwen3_kv_type_from_name("", &t));
    assert_false(qwen3_kv_type_from_name(NULL, &t));
    assert_int_equal(t, QWEN3_KV_F16); /* untouched by a refused name */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_dedupe_and_truncate),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_pins),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_kv_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
