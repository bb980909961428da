/* test_url.c: base URLs with or without /v1 (base/url.c) and the endpoints built from them
 * (backend_join_url): `--backend openai:http://h:8080/v1` must reach /v1/chat/completions, not
 * /v1/v1/chat/completions. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "backend/backend.h"
#include "base/url.h"

static void test_valid(void **state)
{
    (void)state;
    const char *good[] = {"http://127.0.0.1:8080", "https://openrouter.ai/api/v1",
                          "http://localhost",      "HTTP://Example.COM:1/x?y=1",
                          "http://[::1]:8080/v1",  "http://user@host:9/p",
                          "http://h_1.local"};
    const char *bad[] = {
        "foo",        "",           "127.0.0.1:8080", "localhost:8080",  "ftp://h",
        "http://",    "http://:80", "http://h:",      "http://h:123456", "http://h:8o",
        "http://h h", "http://h\n", "http://[]:1",    "http://[zz]:1",   "openai:http://h",
        "http:/h"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(good); i++) {
        if (!url_valid(good[i]))
            fail_msg("should be valid: %s", good[i]);
    }
    for (size_t i = 0; i < LOCO_ARRAY_LEN(bad); i++) {
        if (url_valid(bad[i]))
            fail_msg("should be invalid: %s", bad[i]);
    }
}

static void root_is(const char *url, const char *want)
{
    size_t n = url_api_root_len(url);
    if (n != strlen(want) || strncmp(url, want, n))
        fail_msg("root of %s: got %.*s, want %s", url, (int)n, url, want);
}

static void test_root(void **state)
{
    (void)state;
    root_is("http://h:8080", "http://h:8080");
    root_is("http://h:8080/", "http://h:8080");
    root_is("http://h:8080/v1", "http://h:8080");
    root_is("http://h:8080/v1/", "http://h:8080");
    root_is("http://h:8080/V1", "http://h:8080");
    root_is("http://h:8080/v1/chat/completions", "http://h:8080");
    root_is("http://h:8080/v1/completions", "http://h:8080");
    root_is("https://openrouter.ai/api/v1", "https://openrouter.ai/api");
    root_is("https://openrouter.ai/api/v1/messages", "https://openrouter.ai/api");
    root_is("https://openrouter.ai/api/v1/messages/count_tokens", "https://openrouter.ai/api");
    root_is("https://openrouter.ai/api", "https://openrouter.ai/api");
    root_is("http://h/proxy/v1/models", "http://h/proxy");
    /* only a path segment is cut: not part of the host, not a /v10, not a query */
    root_is("http://v1", "http://v1");
    root_is("http://h/v10", "http://h/v10");
    root_is("http://h/api-v1", "http://h/api-v1");
    root_is("http://h/v1?key=1", "http://h/v1?key=1");
    root_is("", "");
}

static void joined(const char *base, const char *path, const char *want)
{
    char *u = backend_join_url(base, path);
    assert_non_null(u);
    if (strcmp(u, want))
        fail_msg("join(%s, %s) = %s, want %s", base, path, u, want);
    free(u);
}

static void test_join(void **state)
{
    (void)state;
    joined("http://127.0.0.1:8080", "/v1/chat/completions",
           "http://127.0.0.1:8080/v1/chat/completions");
    joined("http://127.0.0.1:8080/v1", "/v1/chat/completions",
           "http://127.0.0.1:8080/v1/chat/completions");
    joined("http://127.0.0.1:8080/v1/", "/health", "http://127.0.0.1:8080/health");
    joined("http://127.0.0.1:8080/v1/chat/completions", "/v1/chat/completions",
           "http://127.0.0.1:8080/v1/chat/completions");
    joined("https://openrouter.ai/api/v1", "/v1/messages", "https://openrouter.ai/api/v1/messages");
    joined("https://openrouter.ai/api/", "v1/messages", "https://openrouter.ai/api/v1/messages");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_root),
        cmocka_unit_test(test_join),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
