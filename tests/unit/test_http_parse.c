/* test_http_parse.c: the request grammar of net/http_parse: heads, targets, chunked bodies
 * fed in every split. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>

#include "net/http_parse.h"

static int parse(const char *text, http_parse_head *h, char *copy, size_t size)
{
    snprintf(copy, size, "%s", text);
    const char *why = NULL;
    size_t n = http_parse_head_len(copy, strlen(copy));
    assert_int_equal(n, strlen(copy));
    return http_parse_head_parse(copy, n, h, &why);
}

static void test_head(void **state)
{
    (void)state;
    char copy[512];
    http_parse_head h;
    assert_int_equal(
        parse("POST /v1/messages?beta=true HTTP/1.1\r\nHost: h\r\n"
              "Content-Length:  12 \r\nX-Empty:\r\nConnection: keep-alive, Close\r\n\r\n",
              &h, copy, sizeof(copy)),
        0);
    assert_string_equal(h.method, "POST");
    assert_string_equal(h.target, "/v1/messages?beta=true");
    assert_int_equal(h.minor, 1);
    assert_true(h.has_length);
    assert_int_equal(h.length, 12);
    assert_true(h.close);
    assert_int_equal(h.n_headers, 4);
    assert_string_equal(h.headers[1].value, "12");
    assert_string_equal(h.headers[2].value, "");
    /* bare LF lines, HTTP/1.0 closes, the same length twice is fine */
    assert_int_equal(
        parse("GET / HTTP/1.0\nContent-Length: 0\nContent-Length: 0\n\n", &h, copy, sizeof(copy)),
        0);
    assert_true(h.close);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &h, copy, sizeof(copy)),
                     400);
    assert_int_equal(
        parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", &h, copy, sizeof(copy)),
        400);
    assert_int_equal(
        parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", &h, copy,
              sizeof(copy)),
        400);
    assert_int_equal(parse("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", &h, copy, sizeof(copy)), 400);
    assert_int_equal(parse("GET / HTTP/2.0\r\nHost: a\r\n\r\n", &h, copy, sizeof(copy)), 505);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nX\r: y\r\n\r\n", &h, copy, sizeof(copy)),
                     400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost : a\r\n\r\n", &h, copy, sizeof(copy)), 400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                           &h, copy, sizeof(copy)),
                     501);
    /* the end of a head is found however the bytes arrive */
    assert_int_equal(http_parse_head_len("GET / HTTP/1.1\r\nHost: a\r\n\r", 25), 0);
    assert_int_equal(http_parse_head_len("GET / HTTP/1.1\r\n\r\nrest", 22), 18);
}

static void check_target(const char *in, int want, const char *path, const char *query)
{
    char t[256];
    snprintf(t, sizeof(t), "%s", in);
    char *p = NULL, *q = NULL;
    const char *why = NULL;
    assert_int_equal(http_parse_target(t, &p, &q, &why), want);
    if (want)
        return;
    assert_string_equal(p, path);
    assert_string_equal(q, query);
}

static void test_target(void **state)
{
    (void)state;
    check_target("/echo?a=1&b=%20x", 0, "/echo", "a=1&b=%20x");
    check_target("/a%20b%2Fc%zz%4", 0, "/a b/c%zz%4", "");
    check_target("/x#frag", 0, "/x", "");
    check_target("http://example.com:80/v1/messages?beta=true", 0, "/v1/messages", "beta=true");
    check_target("http://example.com", 0, "/", "");
    check_target("HTTPS://h?q", 0, "/", "q");
    check_target("*", 0, "*", "");
    check_target("http:///x", 400, NULL, NULL);
    check_target("v1/messages", 400, NULL, NULL);
    check_target("/a%00", 400, NULL, NULL);
}

/* Feeds text in two parts split at every position; each must give status want and body. */
static void check_chunked(const char *text, int want, const char *body, size_t max)
{
    size_t n = strlen(text);
    for (size_t split = 0; split <= n; split++) {
        http_chunked c;
        http_chunked_init(&c);
        buf b;
        buf_init(&b, max);
        const char *why = NULL;
        size_t used = 0, used2 = 0;
        int st = http_chunked_feed(&c, text, split, &b, &used, &why);
        if (st == 0) {
            assert_int_equal(used, split);
            st = http_chunked_feed(&c, text + split, n - split, &b, &used2, &why);
            used += used2;
        }
        assert_int_equal(st, want);
        if (want == 1) {
            assert_string_equal(buf_str(&b), body);
            assert_string_equal(text + used, "NEXT");
        }
        buf_release(&b);
    }
}

static void test_chunked(void **state)
{
    (void)state;
    check_chunked("5\r\nhello\r\n6;name=\"v a\"\r\n world\r\n0\r\n\r\nNEXT", 1, "hello world", 64);
    check_chunked("3\nabc\n0\nTrailer: x\nOther: y\n\nNEXT", 1, "abc", 64);
    check_chunked("A\r\n0123456789\r\n0\r\n\r\nNEXT", 1, "0123456789", 64);
    check_chunked("A\r\n0123456789\r\n0\r\n\r\nNEXT", 413, NULL, 9);
    check_chunked("3\r\nabcd\r\n0\r\n\r\n", 400, NULL, 64);
    check_chunked("x\r\n", 400, NULL, 64);
    check_chunked("fffffffffffffffff\r\n", 413, NULL, 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_target),
        cmocka_unit_test(test_chunked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
