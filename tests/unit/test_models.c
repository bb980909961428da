/* test_models.c: the model store (base/models.h): where it is, what it lists, which file a
 * name (path, file name, REPO[:QUANT]) resolves to and which one is the default. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "base/models.h"
#include "test_util.h"

static char dir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/loco-models-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    test_rm_tree(dir);
    return 0;
}

/* Writes a small file at <dir>/<rel> (parents created). */
static void put(const char *rel, const char *content)
{
    char path[1100];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    loco_err err;
    assert_int_equal(file_write_atomic(path, content, strlen(content), 0644, &err), LOCO_OK);
}

/* A pulled file: <dir>/<repo>/<file> plus its metadata. */
static void pulled(const char *repo, const char *file, const char *quant)
{
    char rel[512], path[1100];
    snprintf(rel, sizeof(rel), "%s/%s", repo, file);
    put(rel, "GGUF....");
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    models_meta m = {.repo = repo, .file = file, .quant = quant, .size = 8,
                     .sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                     .revision = "main"};
    loco_err err;
    assert_int_equal(models_write_meta(path, &m, &err), LOCO_OK);
}

static void test_quant_of(void **state)
{
    (void)state;
    const struct {
        const char *file, *quant;
    } cases[] = {
        {"LocoOperator-4B.Q4_K_M.gguf", "Q4_K_M"},
        {"LocoOperator-4B-Q8_0.gguf", "Q8_0"},
        {"locooperator-4b-q5_k_s.gguf", "Q5_K_S"},
        {"LocoOperator-4B.i1-IQ4_XS.gguf", "IQ4_XS"},
        {"LocoOperator-4B-IQ4_NL.gguf", "IQ4_NL"},
        {"LocoOperator-4B-bf16.gguf", "BF16"},
        {"LocoOperator-4B.f16.gguf", "F16"},
        {"model-UD-Q4_K_XL.gguf", "Q4_K_XL"},
        {"sub/dir/x.Q2_K.gguf", "Q2_K"},
        {"x-Q4_K_M-00001-of-00002.gguf", "Q4_K_M"},
        {"x.Q4_0_4_4.gguf", "Q4_0_4_4"},
        {"x-MXFP4_MOE.gguf", "MXFP4_MOE"},
        {"Qwen3-4B.gguf", ""},
        {"LocoOperator-4B.gguf", ""},
        {"Q.gguf", ""},
        {"Q4_.gguf", ""},
        {"", ""},
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(cases); i++) {
        char q[64];
        bool found = models_quant_of(cases[i].file, q, sizeof(q));
        assert_string_equal(q, cases[i].quant);
        assert_int_equal(found, cases[i].quant[0] != '\0');
    }
    char tiny[3];
    assert_false(models_quant_of("x.Q4_K_M.gguf", tiny, sizeof(tiny))); /* does not fit */
}

static void test_parse_ref(void **state)
{
    (void)state;
    models_ref r;
    loco_err err;
    assert_int_equal(models_parse_ref("LocoreMind/LocoOperator-4B-GGUF", &r, &err), LOCO_OK);
    assert_string_equal(r.repo, "LocoreMind/LocoOperator-4B-GGUF");
    assert_string_equal(r.quant, "");
    assert_int_equal(models_parse_ref("SimplySara/LocoOperator-4B-GGUF:q4_k_m", &r, &err), LOCO_OK);
    assert_string_equal(r.repo, "SimplySara/LocoOperator-4B-GGUF");
    assert_string_equal(r.quant, "q4_k_m");
    assert_int_equal(models_parse_ref("hf.co/a.b/c_d:IQ4_XS", &r, &err), LOCO_OK);
    assert_string_equal(r.repo, "a.b/c_d");
    assert_string_equal(r.quant, "IQ4_XS");
    assert_int_equal(models_parse_ref("https://huggingface.co/o/n:x.Q8_0.gguf", &r, &err), LOCO_OK);
    assert_string_equal(r.quant, "x.Q8_0.gguf");
    assert_int_equal(models_parse_ref("o/n:sub/x.gguf", &r, &err), LOCO_OK);
    const char *bad[] = {"", "noslash", "a/b/c", "/n", "o/", "o/n:", "../n", "o/..n",
                         "o/n:a b", "o/n:../x.gguf", "o/n:a//b", "-o/n", "o/n.", "o /n",
                         "o/n:x;rm"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(bad); i++) {
        loco_err_clear(&err);
        assert_int_equal(models_parse_ref(bad[i], &r, &err), LOCO_ERR_INVALID);
        assert_true(err.msg[0] != '\0');
    }
    char longq[400];
    memset(longq, 'Q', sizeof(longq) - 1);
    longq[0] = 'o';
    longq[1] = '/';
    longq[2] = 'n';
    longq[3] = ':';
    longq[sizeof(longq) - 1] = '\0';
    assert_int_equal(models_parse_ref(longq, &r, &err), LOCO_ERR_INVALID);
}

static void test_names_valid(void **state)
{
    (void)state;
    assert_true(models_repo_valid("LocoreMind/LocoOperator-4B-GGUF"));
    assert_false(models_repo_valid("a"));
    assert_false(models_repo_valid("a/b/c"));
    assert_false(models_repo_valid(".a/b"));
    assert_false(models_repo_valid(NULL));
    assert_true(models_file_valid("x.gguf"));
    assert_true(models_file_valid("Q4_K_M/x.gguf"));
    assert_false(models_file_valid("../x.gguf"));
    assert_false(models_file_valid("a/../x.gguf"));
    assert_false(models_file_valid("/x.gguf"));
    assert_false(models_file_valid("a/"));
    assert_false(models_file_valid("a\\b"));
    assert_false(models_file_valid("a\nb"));
    assert_false(models_file_valid(""));
    char *p = NULL;
    loco_err err;
    assert_int_equal(models_file_path("/m", "o/n", "x.gguf", &p, &err), LOCO_OK);
    assert_string_equal(p, "/m/o/n/x.gguf");
    free(p);
    assert_int_equal(models_file_path("/m/", "o/n", "x.gguf", &p, &err), LOCO_OK);
    assert_string_equal(p, "/m/o/n/x.gguf");
    free(p);
    assert_int_equal(models_file_path("/m", "o/n", "../x.gguf", &p, &err), LOCO_ERR_INVALID);
    assert_null(p);
}

static void expect_dir(const char *want)
{
    char *d = NULL;
    loco_err err;
    assert_int_equal(models_default_dir(&d, &err), LOCO_OK);
    assert_string_equal(d, want);
    free(d);
}

static void test_default_dir(void **state)
{
    (void)state;
    char *old_models = getenv("LOCO_MODELS") ? strdup(getenv("LOCO_MODELS")) : NULL;
    char *old_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("LOCO_MODELS", "/srv/models", 1);
    setenv("XDG_DATA_HOME", "/xdg", 1);
    setenv("HOME", "/home/u", 1);
    expect_dir("/srv/models");
    setenv("LOCO_MODELS", "", 1);
    expect_dir("/xdg/loco/models");
    setenv("XDG_DATA_HOME", "relative/is/ignored", 1);
    expect_dir("/home/u/.local/share/loco/models");
    unsetenv("XDG_DATA_HOME");
    unsetenv("LOCO_MODELS");
    setenv("HOME", "/home/u/", 1);
    expect_dir("/home/u/.local/share/loco/models");
    unsetenv("HOME"); /* falls back to the password database: some absolute directory */
    char *d = NULL;
    loco_err err;
    if (models_default_dir(&d, &err) == LOCO_OK) {
        assert_true(d[0] == '/');
        assert_non_null(strstr(d, "/.local/share/loco/models"));
    }
    free(d);
    if (old_models)
        setenv("LOCO_MODELS", old_models, 1);
    if (old_xdg)
        setenv("XDG_DATA_HOME", old_xdg, 1);
    if (old_home)
        setenv("HOME", old_home, 1);
    free(old_models);
    free(old_xdg);
    free(old_home);
}

static void test_list(void **state)
{
    (void)state;
    pulled("LocoreMind/LocoOperator-4B-GGUF", "LocoOperator-4B.Q4_K_M.gguf", "Q4_K_M");
    pulled("SimplySara/LocoOperator-4B-GGUF", "LocoOperator-4B.Q8_0.gguf", NULL);
    put("mine.q5_0.gguf", "GGUF");
    put("LocoreMind/LocoOperator-4B-GGUF/LocoOperator-4B.Q6_K.gguf.part", "GG");
    put(".hidden/x.gguf", "GGUF");
    put("notes.txt", "x");
    put("bad/meta/y.gguf", "GGUF");
    put("bad/meta/y.gguf.json", "{not json");
    models_listing l;
    loco_err err;
    assert_int_equal(models_list(dir, &l, &err), LOCO_OK);
    assert_int_equal(l.n, 4);
    /* sorted by path */
    assert_non_null(strstr(l.items[0].path, "/LocoreMind/LocoOperator-4B-GGUF/LocoOperator-4B.Q4_K_M.gguf"));
    assert_string_equal(l.items[0].repo, "LocoreMind/LocoOperator-4B-GGUF");
    assert_string_equal(l.items[0].file, "LocoOperator-4B.Q4_K_M.gguf");
    assert_string_equal(l.items[0].quant, "Q4_K_M");
    assert_int_equal(strlen(l.items[0].sha256), 64);
    assert_int_equal(l.items[0].size, 8);
    assert_string_equal(l.items[1].repo, "SimplySara/LocoOperator-4B-GGUF");
    assert_string_equal(l.items[1].quant, "Q8_0"); /* from the file name */
    assert_null(l.items[2].repo);                  /* bad metadata: a plain file */
    assert_string_equal(l.items[2].file, "bad/meta/y.gguf");
    assert_null(l.items[2].quant);
    assert_null(l.items[3].repo);
    assert_string_equal(l.items[3].file, "mine.q5_0.gguf");
    assert_string_equal(l.items[3].quant, "Q5_0");
    char name[256];
    models_entry_name(&l.items[0], name, sizeof(name));
    assert_string_equal(name, "LocoreMind/LocoOperator-4B-GGUF:Q4_K_M");
    models_entry_name(&l.items[3], name, sizeof(name));
    assert_string_equal(name, "mine.q5_0.gguf");
    models_listing_release(&l);

    char missing[128];
    snprintf(missing, sizeof(missing), "%s/does/not/exist", dir);
    assert_int_equal(models_list(missing, &l, &err), LOCO_OK); /* an empty store */
    assert_int_equal(l.n, 0);
    models_listing_release(&l);
    char file[128];
    snprintf(file, sizeof(file), "%s/notes.txt", dir);
    assert_int_equal(models_list(file, &l, &err), LOCO_ERR_INVALID);
    models_listing_release(&l);
}

static void test_meta_roundtrip(void **state)
{
    (void)state;
    pulled("o/n", "sub/x.IQ4_NL.gguf", "iq4_nl");
    char path[256];
    snprintf(path, sizeof(path), "%s/o/n/sub/x.IQ4_NL.gguf", dir);
    models_entry e;
    loco_err err;
    assert_int_equal(models_read_meta(path, &e, &err), LOCO_OK);
    assert_string_equal(e.repo, "o/n");
    assert_string_equal(e.file, "sub/x.IQ4_NL.gguf");
    assert_string_equal(e.quant, "IQ4_NL");
    assert_int_equal(e.size, 8);
    models_entry_release(&e);
    put("o/n/y.gguf.json", "{\"repo\": \"../etc\", \"file\": \"y.gguf\"}");
    snprintf(path, sizeof(path), "%s/o/n/y.gguf", dir);
    assert_int_equal(models_read_meta(path, &e, &err), LOCO_ERR_INVALID);
    put("o/n/z.gguf.json", "{\"sha256\": \"ABC\"}");
    snprintf(path, sizeof(path), "%s/o/n/z.gguf", dir);
    assert_int_equal(models_read_meta(path, &e, &err), LOCO_ERR_INVALID);
    snprintf(path, sizeof(path), "%s/o/n/none.gguf", dir);
    assert_int_equal(models_read_meta(path, &e, &err), LOCO_ERR_NOT_FOUND);
}

static void expect_resolve(const char *name, const char *suffix)
{
    char *p = NULL;
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = models_resolve_in(dir, name, &p, &err);
    if (rc)
        fail_msg("resolving '%s': %s", name, err.msg);
    size_t pl = strlen(p), sl = strlen(suffix);
    if (pl < sl || strcmp(p + pl - sl, suffix))
        fail_msg("'%s' resolved to '%s', expected ...%s", name, p, suffix);
    free(p);
}

static void expect_resolve_fails(const char *name, loco_status code, const char *in_msg)
{
    char *p = NULL;
    loco_err err;
    loco_err_clear(&err);
    assert_int_equal(models_resolve_in(dir, name, &p, &err), code);
    assert_null(p);
    if (!strstr(err.msg, in_msg))
        fail_msg("resolving '%s': message '%s' lacks '%s'", name, err.msg, in_msg);
}

static void test_resolve(void **state)
{
    (void)state;
    pulled("LocoreMind/LocoOperator-4B-GGUF", "LocoOperator-4B.Q4_K_M.gguf", "Q4_K_M");
    pulled("LocoreMind/LocoOperator-4B-GGUF", "LocoOperator-4B.Q8_0.gguf", "Q8_0");
    pulled("SimplySara/LocoOperator-4B-GGUF", "LocoOperator-4B.Q8_0.gguf", "Q8_0");
    pulled("Flexan/Only-One", "only.IQ4_XS.gguf", "IQ4_XS");
    put("mine.gguf", "GGUF");

    /* REPO:QUANT, case-insensitive both ways, and REPO alone */
    expect_resolve("LocoreMind/LocoOperator-4B-GGUF:Q8_0", "/LocoreMind/LocoOperator-4B-GGUF/LocoOperator-4B.Q8_0.gguf");
    expect_resolve("locoremind/locooperator-4b-gguf:q4_k_m", "/LocoreMind/LocoOperator-4B-GGUF/LocoOperator-4B.Q4_K_M.gguf");
    expect_resolve("hf.co/SimplySara/LocoOperator-4B-GGUF:Q8_0", "/SimplySara/LocoOperator-4B-GGUF/LocoOperator-4B.Q8_0.gguf");
    expect_resolve("LocoreMind/LocoOperator-4B-GGUF", "/LocoOperator-4B.Q4_K_M.gguf");
    expect_resolve("Flexan/Only-One", "/Flexan/Only-One/only.IQ4_XS.gguf");
    expect_resolve("SimplySara/LocoOperator-4B-GGUF:LocoOperator-4B.Q8_0.gguf", "/SimplySara/LocoOperator-4B-GGUF/LocoOperator-4B.Q8_0.gguf");
    /* file names in the store, with or without .gguf */
    expect_resolve("only.IQ4_XS.gguf", "/Flexan/Only-One/only.IQ4_XS.gguf");
    expect_resolve("only.IQ4_XS", "/Flexan/Only-One/only.IQ4_XS.gguf");
    expect_resolve("mine", "/mine.gguf");
    expect_resolve_fails("LocoOperator-4B.Q8_0.gguf", LOCO_ERR_INVALID, "SimplySara/LocoOperator-4B-GGUF:Q8_0");
    /* an existing path wins, as given */
    char path[256], *p = NULL;
    loco_err err;
    snprintf(path, sizeof(path), "%s/mine.gguf", dir);
    assert_int_equal(models_resolve_in(dir, path, &p, &err), LOCO_OK);
    assert_string_equal(p, path);
    free(p);
    expect_resolve_fails(dir, LOCO_ERR_INVALID, "is a directory");
    /* misses say what to do */
    expect_resolve_fails("LocoreMind/LocoOperator-4B-GGUF:Q2_K", LOCO_ERR_NOT_FOUND, "loco pull LocoreMind/LocoOperator-4B-GGUF:Q2_K");
    expect_resolve_fails("LocoreMind/LocoOperator-4B-GGUF:Q2_K", LOCO_ERR_NOT_FOUND, "LocoreMind/LocoOperator-4B-GGUF:Q8_0");
    expect_resolve_fails("Nobody/Nothing", LOCO_ERR_NOT_FOUND, "loco pull Nobody/Nothing");
    expect_resolve_fails("nothing.gguf", LOCO_ERR_NOT_FOUND, "loco model list");
    expect_resolve_fails("./nothing.gguf", LOCO_ERR_NOT_FOUND, "cannot open './nothing.gguf'");
    expect_resolve_fails("models/nothing.gguf", LOCO_ERR_NOT_FOUND, "cannot open 'models/nothing.gguf'");
    expect_resolve_fails("a/b/c", LOCO_ERR_NOT_FOUND, "not a model name");
    expect_resolve_fails("", LOCO_ERR_INVALID, "empty");
}

static void expect_default(const char *suffix)
{
    char *p = NULL;
    loco_err err;
    loco_status rc = models_find_default_in(dir, &p, &err);
    if (rc)
        fail_msg("default: %s", err.msg);
    size_t pl = strlen(p), sl = strlen(suffix);
    if (pl < sl || strcmp(p + pl - sl, suffix))
        fail_msg("default is '%s', expected ...%s", p, suffix);
    free(p);
}

static void test_find_default(void **state)
{
    (void)state;
    char *p = NULL;
    loco_err err;
    assert_int_equal(models_find_default_in(dir, &p, &err), LOCO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "loco pull"));
    put("any-name.gguf", "GGUF");
    expect_default("/any-name.gguf"); /* the only one, whatever its quant */
    pulled("SimplySara/LocoOperator-4B-GGUF", "LocoOperator-4B.Q4_K_M.gguf", "Q4_K_M");
    expect_default("/SimplySara/LocoOperator-4B-GGUF/LocoOperator-4B.Q4_K_M.gguf");
    pulled("LocoreMind/LocoOperator-4B-GGUF", "LocoOperator-4B.Q4_K_M.gguf", "Q4_K_M");
    expect_default("/LocoreMind/LocoOperator-4B-GGUF/LocoOperator-4B.Q4_K_M.gguf");
    pulled("LocoreMind/LocoOperator-4B-GGUF", "LocoOperator-4B-2.Q4_K_M.gguf", "Q4_K_M");
    assert_int_equal(models_find_default_in(dir, &p, &err), LOCO_ERR_INVALID);
    assert_non_null(strstr(err.msg, "several"));
    assert_null(p);
}

static void test_default_without_q4km(void **state)
{
    (void)state;
    pulled("a/b", "x.Q8_0.gguf", "Q8_0");
    pulled("a/b", "x.Q6_K.gguf", "Q6_K");
    char *p = NULL;
    loco_err err;
    assert_int_equal(models_find_default_in(dir, &p, &err), LOCO_ERR_INVALID);
    assert_non_null(strstr(err.msg, "a/b:Q6_K"));
    assert_non_null(strstr(err.msg, "a/b:Q8_0"));
    /* the environment's store is the default one */
    setenv("LOCO_MODELS", dir, 1);
    assert_int_equal(models_resolve("a/b:q6_k", &p, &err), LOCO_OK);
    assert_non_null(strstr(p, "/a/b/x.Q6_K.gguf"));
    free(p);
    unsetenv("LOCO_MODELS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quant_of),
        cmocka_unit_test(test_parse_ref),
        cmocka_unit_test(test_names_valid),
        cmocka_unit_test(test_default_dir),
        cmocka_unit_test_setup_teardown(test_list, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_meta_roundtrip, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_resolve, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_find_default, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_default_without_q4km, setup_dir, remove_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
