/* test_hub.c: the pure parts of `loco pull`: SHA-256 against the FIPS 180-4 examples, the Hub
 * listing parser (tree and siblings forms), Link pagination, what REPO[:QUANT] / URL targets
 * mean, and which file a quant picks (net/hub.h, base/sha256.h). The network side is tested
 * end to end against a stand-in Hub in tests/integration/pull.test.mjs. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/file.h"
#include "base/sha256.h"
#include "net/hub.h"
#include "test_util.h"

static void hex_of(const void *p, size_t n, char out[65])
{
    sha256_ctx c;
    uint8_t d[32];
    sha256_init(&c);
    sha256_update(&c, p, n);
    sha256_final(&c, d);
    sha256_hex(d, out);
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    char hex[65];
    hex_of("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m448, strlen(m448), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    hex_of(m896, strlen(m896), hex);
    assert_string_equal(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    /* a million 'a' fed in uneven pieces: the block buffering must not matter */
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    sha256_ctx c;
    sha256_init(&c);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t n = step < 1000000 - off ? step : 1000000 - off;
        sha256_update(&c, a + off, n);
        off += n;
        step = step * 3 % 997 + 1;
    }
    uint8_t d[32];
    sha256_final(&c, d);
    sha256_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
    /* lengths around the padding boundary (55, 56, 63, 64 bytes) hash like one update */
    for (size_t n = 50; n < 130; n++) {
        char buf[130], one[65], two[65];
        memset(buf, 'x', n);
        hex_of(buf, n, one);
        sha256_init(&c);
        sha256_update(&c, buf, n / 2);
        sha256_update(&c, buf + n / 2, n - n / 2);
        sha256_final(&c, d);
        sha256_hex(d, two);
        assert_string_equal(one, two);
    }
}

static const char *tree_json =
    "[{\"type\":\"file\",\"oid\":\"aa\",\"size\":1519,\"path\":\".gitattributes\"},"
    "{\"type\":\"directory\",\"oid\":\"bb\",\"size\":0,\"path\":\"sub\"},"
    "{\"type\":\"file\",\"oid\":\"cc\",\"size\":12,\"path\":\"LocoOperator-4B.Q4_K_M.gguf\","
    "\"lfs\":{\"oid\":\"ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\","
    "\"size\":2497281152,\"pointerSize\":135},\"xetHash\":\"00\"},"
    "{\"type\":\"file\",\"oid\":\"dd\",\"size\":4280404448,\"path\":\"sub/LocoOperator-4B.Q8_0.gguf\","
    "\"lfs\":{\"oid\":\"1111111111111111111111111111111111111111111111111111111111111111\","
    "\"size\":4280404448,\"pointerSize\":135}}]";

static void test_parse_listing(void **state)
{
    (void)state;
    hub_listing l;
    memset(&l, 0, sizeof(l));
    loco_err err;
    assert_int_equal(hub_parse_listing(tree_json, strlen(tree_json), &l, &err), LOCO_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.files[0].path, ".gitattributes");
    assert_string_equal(l.files[0].sha256, "");
    assert_int_equal(l.files[0].size, 1519);
    assert_string_equal(l.files[1].path, "LocoOperator-4B.Q4_K_M.gguf");
    assert_int_equal(l.files[1].size, 2497281152ull); /* the LFS size, not the pointer's */
    assert_string_equal(l.files[1].sha256,
                        "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    assert_string_equal(l.files[2].path, "sub/LocoOperator-4B.Q8_0.gguf");
    /* the model API's siblings form appends */
    const char *sib = "{\"id\":\"o/n\",\"siblings\":[{\"rfilename\":\"x.IQ4_XS.gguf\",\"size\":7,"
                      "\"lfs\":{\"sha256\":\"2222222222222222222222222222222222222222222222222222222222222222\","
                      "\"size\":7,\"pointerSize\":130}},{\"rfilename\":\"README.md\"}]}";
    assert_int_equal(hub_parse_listing(sib, strlen(sib), &l, &err), LOCO_OK);
    assert_int_equal(l.n, 5);
    assert_string_equal(l.files[3].path, "x.IQ4_XS.gguf");
    assert_int_equal(l.files[4].size, 0);
    /* bad pages change nothing */
    const char *bad[] = {
        "{}", "[1]", "not json", "[{\"type\":\"file\"}]",
        "[{\"type\":\"file\",\"path\":\"../etc/passwd\",\"size\":1}]",
        "[{\"type\":\"file\",\"path\":\"/abs.gguf\",\"size\":1}]",
        "[{\"type\":\"file\",\"path\":\"ok.gguf\",\"size\":-1}]",
        "[{\"type\":\"file\",\"path\":\"ok.gguf\",\"size\":\"12\"}]",
        "[{\"type\":\"file\",\"path\":\"ok.gguf\",\"size\":1,\"lfs\":{\"oid\":\"xyz\"}}]",
        "[{\"type\":\"file\",\"path\":\"ok.gguf\",\"size\":1,\"lfs\":7}]",
        "[{\"type\":\"file\",\"path\":\"a.gguf\",\"size\":1},{\"type\":\"file\",\"path\":\"\"}]",
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(bad); i++) {
        loco_err_clear(&err);
        assert_int_not_equal(hub_parse_listing(bad[i], strlen(bad[i]), &l, &err), LOCO_OK);
        assert_true(err.msg[0] != '\0');
        assert_int_equal(l.n, 5);
    }
    hub_listing_release(&l);
    assert_int_equal(l.n, 0);
}

static void test_link_next(void **state)
{
    (void)state;
    char out[256];
    assert_true(hub_link_next("<https://huggingface.co/api/models/o/n/tree/main?cursor=abc>; "
                              "rel=\"next\"",
                              out, sizeof(out)));
    assert_string_equal(out, "https://huggingface.co/api/models/o/n/tree/main?cursor=abc");
    assert_true(hub_link_next("<https://x/prev>; rel=\"prev\", <https://x/next>; rel=next", out,
                              sizeof(out)));
    assert_string_equal(out, "https://x/next");
    assert_false(hub_link_next("<https://x/prev>; rel=\"prev\"", out, sizeof(out)));
    assert_false(hub_link_next("<https://x/n>; rel=\"nextish\"", out, sizeof(out)));
    assert_false(hub_link_next("garbage", out, sizeof(out)));
    assert_false(hub_link_next("<unterminated; rel=next", out, sizeof(out)));
    assert_false(hub_link_next("<https://a-very-long-url>; rel=next", out, 8));
    assert_false(hub_link_next("<>; rel=next", out, sizeof(out)));
}

static void test_parse_target(void **state)
{
    (void)state;
    hub_target t;
    loco_err err;
    assert_int_equal(hub_parse_target(NULL, &t, &err), LOCO_OK);
    assert_string_equal(t.repo, MODELS_DEFAULT_REPO);
    assert_string_equal(t.quant, "");
    assert_string_equal(t.revision, "main");
    assert_int_equal(hub_parse_target("SimplySara/LocoOperator-4B-GGUF:Q5_K_S", &t, &err), LOCO_OK);
    assert_string_equal(t.repo, "SimplySara/LocoOperator-4B-GGUF");
    assert_string_equal(t.quant, "Q5_K_S");
    assert_string_equal(t.endpoint, "");
    assert_int_equal(hub_parse_target("https://huggingface.co/LocoreMind/LocoOperator-4B-GGUF/"
                                      "resolve/main/LocoOperator-4B.Q8_0.gguf?download=true",
                                      &t, &err),
                     LOCO_OK);
    assert_string_equal(t.endpoint, "https://huggingface.co");
    assert_string_equal(t.repo, "LocoreMind/LocoOperator-4B-GGUF");
    assert_string_equal(t.file, "LocoOperator-4B.Q8_0.gguf");
    assert_string_equal(t.revision, "main");
    assert_int_equal(hub_parse_target("http://127.0.0.1:8080/o/n/blob/0123abc/sub/x%20y.gguf", &t,
                                      &err),
                     LOCO_OK);
    assert_string_equal(t.endpoint, "http://127.0.0.1:8080");
    assert_string_equal(t.revision, "0123abc");
    assert_string_equal(t.file, "sub/x y.gguf");
    assert_int_equal(hub_parse_target("https://hf-mirror.com/o/n", &t, &err), LOCO_OK);
    assert_string_equal(t.repo, "o/n");
    assert_string_equal(t.endpoint, "https://hf-mirror.com");
    assert_string_equal(t.file, "");
    assert_int_equal(hub_parse_target("https://huggingface.co/o/n:q8_0", &t, &err), LOCO_OK);
    assert_string_equal(t.repo, "o/n");
    assert_string_equal(t.quant, "q8_0");
    /* any other URL of a .gguf file is a plain download */
    assert_int_equal(hub_parse_target("https://example.com/files/models/tiny.Q4_0.gguf", &t, &err),
                     LOCO_OK);
    assert_string_equal(t.repo, "");
    assert_string_equal(t.file, "tiny.Q4_0.gguf");
    assert_string_equal(t.url, "https://example.com/files/models/tiny.Q4_0.gguf");
    assert_int_equal(hub_parse_target("http://127.0.0.1:9/files/x.gguf", &t, &err), LOCO_OK);
    assert_string_equal(t.repo, "");
    assert_string_equal(t.file, "x.gguf");
    const char *bad[] = {"a/b/c", "noslash", "https://example.com/readme.txt", "https://",
                         "https://u:p@huggingface.co/o/n", "o/n:", "o/n:a b",
                         "https://h/o/n/resolve/main/x.txt", "https://h/o/n/resolve/../x.gguf",
                         "https://h/o/n/resolve/main/%zz.gguf", "https://h/%00.gguf", "o/n\n"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(bad); i++) {
        loco_err_clear(&err);
        if (hub_parse_target(bad[i], &t, &err) != LOCO_ERR_INVALID)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(err.msg[0] != '\0');
    }
}

/* A listing from "path:size" names. */
static void listing_of(hub_listing *l, const char *const *paths, size_t n)
{
    memset(l, 0, sizeof(*l));
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_appendc(&b, '[');
    for (size_t i = 0; i < n; i++)
        buf_appendf(&b, "%s{\"type\":\"file\",\"path\":\"%s\",\"size\":%zu}", i ? "," : "",
                    paths[i], 1000 * (i + 1));
    buf_appendc(&b, ']');
    loco_err err;
    assert_int_equal(hub_parse_listing(b.data, b.len, l, &err), LOCO_OK);
    buf_release(&b);
}

static const char *pick(const hub_listing *l, const char *want, loco_status want_rc,
                        loco_err *err)
{
    size_t at = 99;
    loco_err_clear(err);
    loco_status rc = hub_pick(l, "o/n", want, &at, err);
    if (rc != want_rc)
        fail_msg("pick '%s': status %d (%s), expected %d", want ? want : "(none)", rc, err->msg,
                 want_rc);
    return rc == LOCO_OK ? l->files[at].path : NULL;
}

static void test_pick(void **state)
{
    (void)state;
    loco_err err;
    hub_listing l;
    const char *many[] = {".gitattributes", "README.md", "LocoOperator-4B.Q8_0.gguf",
                          "LocoOperator-4B.Q4_K_M.gguf", "LocoOperator-4B.Q4_K_S.gguf",
                          "LocoOperator-4B.IQ4_XS.gguf", "LocoOperator-4B.bf16.gguf"};
    listing_of(&l, many, LOCO_ARRAY_LEN(many));
    assert_string_equal(pick(&l, NULL, LOCO_OK, &err), "LocoOperator-4B.Q4_K_M.gguf");
    assert_string_equal(pick(&l, "", LOCO_OK, &err), "LocoOperator-4B.Q4_K_M.gguf");
    assert_string_equal(pick(&l, "q8_0", LOCO_OK, &err), "LocoOperator-4B.Q8_0.gguf");
    assert_string_equal(pick(&l, "Iq4_xs", LOCO_OK, &err), "LocoOperator-4B.IQ4_XS.gguf");
    assert_string_equal(pick(&l, "BF16", LOCO_OK, &err), "LocoOperator-4B.bf16.gguf");
    assert_string_equal(pick(&l, "LocoOperator-4B.Q4_K_S.gguf", LOCO_OK, &err),
                        "LocoOperator-4B.Q4_K_S.gguf");
    pick(&l, "Q2_K", LOCO_ERR_NOT_FOUND, &err);
    for (const char *q = "Q8_0\0Q4_K_M\0Q4_K_S\0IQ4_XS\0BF16\0"; *q; q += strlen(q) + 1)
        if (!strstr(err.msg, q))
            fail_msg("'%s' lacks %s", err.msg, q);
    pick(&l, "Q4_K", LOCO_ERR_NOT_FOUND, &err); /* exact quants only */
    hub_listing_release(&l);

    const char *one[] = {"README.md", "LocoOperator-4B.gguf"};
    listing_of(&l, one, 2);
    assert_string_equal(pick(&l, NULL, LOCO_OK, &err), "LocoOperator-4B.gguf");
    hub_listing_release(&l);

    const char *no_default[] = {"x.Q8_0.gguf", "x.Q6_K.gguf"};
    listing_of(&l, no_default, 2);
    pick(&l, NULL, LOCO_ERR_INVALID, &err);
    assert_non_null(strstr(err.msg, "Q8_0"));
    assert_non_null(strstr(err.msg, "Q6_K"));
    assert_non_null(strstr(err.msg, "loco pull o/n:QUANT"));
    hub_listing_release(&l);

    const char *none[] = {"README.md", "model.safetensors"};
    listing_of(&l, none, 2);
    pick(&l, NULL, LOCO_ERR_NOT_FOUND, &err);
    assert_non_null(strstr(err.msg, "no .gguf"));
    hub_listing_release(&l);

    const char *dup[] = {"a/x.Q4_K_M.gguf", "b/x.Q4_K_M.gguf"};
    listing_of(&l, dup, 2);
    pick(&l, "q4_k_m", LOCO_ERR_INVALID, &err);
    assert_non_null(strstr(err.msg, "a/x.Q4_K_M.gguf"));
    assert_string_equal(pick(&l, "b/x.Q4_K_M.gguf", LOCO_OK, &err), "b/x.Q4_K_M.gguf");
    hub_listing_release(&l);

    const char *split[] = {"big-Q8_0-00001-of-00002.gguf", "big-Q8_0-00002-of-00002.gguf",
                           "big-Q4_K_M.gguf"};
    listing_of(&l, split, 3);
    pick(&l, "Q8_0", LOCO_ERR_UNSUPPORTED, &err);
    assert_non_null(strstr(err.msg, "split"));
    assert_string_equal(pick(&l, NULL, LOCO_OK, &err), "big-Q4_K_M.gguf");
    hub_listing_release(&l);
}

/* hub_ensure looks in the store first: a model there needs no network (the endpoint below
 * refuses connections); one that is not there is pulled, which fails fast here. */
static void test_ensure(void **state)
{
    (void)state;
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/loco-hub-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/o/n/x.Q8_0.gguf", dir);
    loco_err err;
    assert_int_equal(file_write_atomic(path, "GGUF", 4, 0644, &err), LOCO_OK);
    models_meta m = {.repo = "o/n", .file = "x.Q8_0.gguf", .quant = "Q8_0", .size = 4};
    assert_int_equal(models_write_meta(path, &m, &err), LOCO_OK);
    hub_opts o = {.endpoint = "http://127.0.0.1:1", .dir = dir, .retries = -1};
    char *got = NULL;
    bool pulled = true;
    assert_int_equal(hub_ensure("o/n:q8_0", &o, &got, &pulled, &err), LOCO_OK);
    assert_string_equal(got, path);
    assert_false(pulled);
    free(got);
    assert_int_equal(hub_ensure(NULL, &o, &got, &pulled, &err), LOCO_OK); /* the default */
    assert_string_equal(got, path);
    free(got);
    got = NULL;
    loco_status rc = hub_ensure("o/n:Q4_K_M", &o, &got, &pulled, &err);
    assert_int_equal(rc, LOCO_ERR_UNAVAILABLE);
    assert_null(got);
    assert_non_null(strstr(err.msg, "127.0.0.1:1"));
    test_rm_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors), cmocka_unit_test(test_parse_listing),
        cmocka_unit_test(test_link_next),      cmocka_unit_test(test_parse_target),
        cmocka_unit_test(test_pick),           cmocka_unit_test(test_ensure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
