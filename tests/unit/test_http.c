/* test_http.c: tests of net/http_server and net/http_client over real sockets: the server
 * driven by libcurl directly, the client driven against the server on an ephemeral port. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/str.h"
#include "net/http_client.h"
#include "net/http_server.h"

/* ---- shared test server ---- */

typedef struct {
    atomic_int client_saw_chunk1; /* set by the client once chunk 1 arrived */
    atomic_int handler_saw_flag;  /* 1: the flag was set before chunk 2; 2: it never came */
    atomic_int cancel_seen;       /* handler saw write() fail with CANCELLED */
    atomic_int gone_seen;         /* handler saw client_gone() */
    atomic_int handlers_done;
    atomic_int handler_failures; /* checks that failed on handler threads */
    atomic_int started;          /* handlers that began */
    atomic_int barrier;          /* /barrier handlers waiting */
    atomic_int done_calls;       /* http_response_on_done hook calls */
    atomic_int done_before_send; /* the hook ran before the client could see the answer */
} test_state;

static test_state g_state; /* test-only shared flags, reset per test */

/* cmocka's asserts may not run off the main thread: handlers count failures instead. */
#define HCHECK(cond)                                                                     \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: handler check failed: %s\n", __FILE__, __LINE__, #cond); \
            atomic_fetch_add(&g_state.handler_failures, 1);                              \
        }                                                                                \
    } while (0)

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void collect_header(void *ctx, const char *name, const char *value)
{
    buf_appendf(ctx, "%s=%s;", name, value);
}

static void h_echo(const http_request *req, http_response *resp)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    const char *x = http_request_header(req, "x-test");
    buf_appendf(&b, "%s %s ?%s x=%s body=%s len=%zu remote=%s", req->method, req->path,
                req->query, x ? x : "(null)", req->body, req->body_len, req->remote_addr);
    HCHECK(http_request_header(req, "x-absent") == NULL);
    HCHECK(http_response_add_header(resp, "X-Reply", "yes") == LOCO_OK);
    HCHECK(http_response_add_header(resp, "Bad", "a\r\nb") == LOCO_ERR_INVALID);
    HCHECK(http_response_send(resp, 200, "text/plain", b.data, b.len) == LOCO_OK);
    HCHECK(http_response_send(resp, 200, "text/plain", "x", 1) == LOCO_ERR_INVALID);
    HCHECK(http_response_add_header(resp, "Late", "x") == LOCO_ERR_INVALID);
    buf_release(&b);
}

static void h_headers(const http_request *req, http_response *resp)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    http_request_each_header(req, collect_header, &b);
    http_response_send(resp, 200, "text/plain", b.data, b.len);
    buf_release(&b);
}

static void h_incremental(http_response *resp)
{
    HCHECK(http_response_start(resp, 200, "text/event-stream") == LOCO_OK);
    HCHECK(http_response_write(resp, "chunk1;", 7) == LOCO_OK);
    /* a bound on waiting for the client, not a speed check: a server that held chunk 1
     * back would make the client see it only after chunk 2 */
    long until = now_ms() + 30000;
    while (!atomic_load(&g_state.client_saw_chunk1) && now_ms() < until)
        sleep_ms(5);
    atomic_store(&g_state.handler_saw_flag, atomic_load(&g_state.client_saw_chunk1) ? 1 : 2);
    HCHECK(http_response_write(resp, "chunk2;", 7) == LOCO_OK);
    HCHECK(http_response_end(resp) == LOCO_OK);
    HCHECK(http_response_write(resp, "late", 4) == LOCO_ERR_INVALID);
}

/* /slow?N: N chunks "cK;" 200 ms apart (gap from the query, default 200). */
static void h_slow(const http_request *req, http_response *resp, long gap)
{
    http_response_add_header(resp, "Cache-Control", "no-cache");
    HCHECK(http_response_start(resp, 201, "text/event-stream") == LOCO_OK);
    long n = req->query[0] ? strtol(req->query, NULL, 10) : 5;
    for (long i = 0; i < n; i++) {
        char c[16];
        int k = snprintf(c, sizeof(c), "c%ld;", i);
        if (http_response_write(resp, c, (size_t)k) != LOCO_OK)
            return;
        if (i + 1 < n)
            sleep_ms(gap);
    }
    http_response_end(resp);
}

static void h_until_cancel(http_response *resp, bool silent)
{
    http_response_start(resp, 200, "text/plain");
    http_response_write(resp, "first;", 6);
    atomic_fetch_add(&g_state.started, 1);
    long until = now_ms() + 30000;
    while (now_ms() < until) {
        if (silent ? http_response_client_gone(resp)
                   : http_response_write(resp, "more;", 5) == LOCO_ERR_CANCELLED) {
            atomic_store(silent ? &g_state.gone_seen : &g_state.cancel_seen, 1);
            atomic_store(&g_state.gone_seen, http_response_client_gone(resp) ? 1 : 0);
            return;
        }
        sleep_ms(silent ? 5 : 50);
    }
}

/* /barrier?N: answers once N barrier handlers run at the same time (or after 60 s). */
static void h_barrier(const http_request *req, http_response *resp)
{
    int n = (int)strtol(req->query, NULL, 10);
    atomic_fetch_add(&g_state.barrier, 1);
    long until = now_ms() + 60000;
    while (atomic_load(&g_state.barrier) < n && now_ms() < until)
        sleep_ms(5);
    char b[32];
    int k = snprintf(b, sizeof(b), "%d", atomic_load(&g_state.barrier) >= n ? 1 : 0);
    http_response_send(resp, 200, "text/plain", b, (size_t)k);
}

/* /sum: the body's length and FNV-1a hash, so big bodies are checked without echoing them. */
static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static void h_sum(const http_request *req, http_response *resp)
{
    char b[96];
    int k = snprintf(b, sizeof(b), "len=%zu fnv=%016" PRIx64, req->body_len,
                     fnv1a(req->body, req->body_len));
    http_response_send(resp, 200, "text/plain", b, (size_t)k);
}

static void on_done(void *ctx)
{
    LOCO_UNUSED(ctx);
    atomic_fetch_add(&g_state.done_calls, 1);
}

/* /done?send|stream|none|gone: registers the done hook, then answers that way. */
static void h_done(const http_request *req, http_response *resp)
{
    http_response_on_done(resp, on_done, NULL);
    if (!strcmp(req->query, "send")) {
        HCHECK(http_response_send(resp, 200, "text/plain", "whole", 5) == LOCO_OK);
    } else if (!strcmp(req->query, "stream")) {
        HCHECK(http_response_start(resp, 200, "text/plain") == LOCO_OK);
        HCHECK(http_response_write(resp, "part;", 5) == LOCO_OK);
        HCHECK(atomic_load(&g_state.done_calls) == 0);
        HCHECK(http_response_end(resp) == LOCO_OK);
    } else if (!strcmp(req->query, "gone")) {
        HCHECK(http_response_start(resp, 200, "text/plain") == LOCO_OK);
        long until = now_ms() + 30000;
        while (http_response_write(resp, "more;", 5) == LOCO_OK && now_ms() < until)
            sleep_ms(5);
        HCHECK(atomic_load(&g_state.done_calls) == 1);
        http_response_end(resp);
    }
}

static void test_handler(void *ctx, const http_request *req, http_response *resp)
{
    LOCO_UNUSED(ctx);
    const char *p = req->path;
    if (strcmp(p, "/echo") == 0)
        h_echo(req, resp);
    else if (strcmp(p, "/headers") == 0)
        h_headers(req, resp);
    else if (strcmp(p, "/incremental") == 0)
        h_incremental(resp);
    else if (strcmp(p, "/slow") == 0)
        h_slow(req, resp, 200);
    else if (strcmp(p, "/fast") == 0)
        h_slow(req, resp, 100);
    else if (strcmp(p, "/until-cancel") == 0)
        h_until_cancel(resp, false);
    else if (strcmp(p, "/until-gone") == 0)
        h_until_cancel(resp, true);
    else if (strcmp(p, "/silent") == 0)
        ; /* never responds */
    else if (strcmp(p, "/barrier") == 0)
        h_barrier(req, resp);
    else if (strcmp(p, "/done") == 0)
        h_done(req, resp);
    else if (strcmp(p, "/sum") == 0)
        h_sum(req, resp);
    else if (strcmp(p, "/late") == 0) {
        sleep_ms(1500);
        http_response_send(resp, 200, "text/plain", "late-ok", 7);
    } else if (strcmp(p, "/stall") == 0) {
        http_response_start(resp, 200, "text/plain");
        http_response_write(resp, "x", 1);
        for (int i = 0; i < 1000 && !http_response_client_gone(resp); i++)
            sleep_ms(20);
        http_response_end(resp);
    } else if (strcmp(p, "/bigstream") == 0) {
        http_response_start(resp, 200, "application/octet-stream");
        char block[10000];
        for (int i = 0; i < 50; i++) {
            memset(block, 'a' + i % 26, sizeof(block));
            http_response_write(resp, block, sizeof(block));
        }
        http_response_end(resp);
    } else
        http_response_send(resp, 404, "application/json", "{\"error\":\"not found\"}", 21);
    atomic_fetch_add(&g_state.handlers_done, 1);
}

/* The tests' error bodies: {"error":"STATUS PATH: MESSAGE"}. */
static loco_status test_error_body(void *ctx, const char *path, int status, const char *message,
                                   buf *out)
{
    LOCO_UNUSED(ctx);
    return buf_appendf(out, "{\"error\":\"%d %s: %s\"}", status, path, message);
}

static http_server *start_server_with(size_t max_body, unsigned timeout_s, unsigned max_conns)
{
    memset(&g_state, 0, sizeof(g_state));
    http_server_config cfg = {.host = "127.0.0.1",
                              .port = 0,
                              .max_body = max_body,
                              .max_connections = max_conns,
                              .idle_timeout_s = timeout_s,
                              .error_body = test_error_body,
                              .handler = test_handler};
    http_server *s = NULL;
    loco_err err;
    assert_int_equal(http_server_start(&cfg, &s, &err), LOCO_OK);
    assert_true(http_server_port(s) > 0);
    return s;
}

static http_server *start_server(size_t max_body, unsigned timeout_s)
{
    return start_server_with(max_body, timeout_s, 0);
}

static void stop_server(http_server *s)
{
    http_server_stop(s);
    assert_int_equal(atomic_load(&g_state.handler_failures), 0);
}

/* Asserts that s starts with prefix. */
static void assert_prefix(const char *s, const char *prefix)
{
    if (strncmp(s, prefix, strlen(prefix)) != 0)
        fail_msg("'%s' does not start with '%s'", s, prefix);
}

static void url_of(const http_server *s, const char *path, char *out, size_t size)
{
    snprintf(out, size, "http://127.0.0.1:%d%s", http_server_port(s), path);
}

/* ---- a libcurl client for the server tests ---- */

typedef struct {
    buf body;
    buf headers;
    long status;
    int abort_after_first; /* return an error from the write callback after the first chunk */
    int chunks;
} fetch_result;

static size_t fetch_write(char *p, size_t size, size_t nmemb, void *ud)
{
    fetch_result *f = ud;
    size_t n = size * nmemb;
    f->chunks++;
    buf_append(&f->body, p, n);
    if (strstr(buf_str(&f->body), "chunk1;"))
        atomic_store(&g_state.client_saw_chunk1, 1);
    if (f->abort_after_first)
        return 0;
    return n;
}

static size_t fetch_header(char *p, size_t size, size_t nmemb, void *ud)
{
    fetch_result *f = ud;
    buf_append(&f->headers, p, size * nmemb);
    return size * nmemb;
}

static CURL *fetch_easy(const char *url, fetch_result *f)
{
    buf_init(&f->body, BUF_UNLIMITED);
    buf_init(&f->headers, BUF_UNLIMITED);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fetch_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, fetch_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 20L);
    return e;
}

static CURLcode fetch(const char *url, const char *post, struct curl_slist *hdrs, fetch_result *f)
{
    CURL *e = fetch_easy(url, f);
    if (post)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, post);
    if (hdrs)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    CURLcode cc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &f->status);
    curl_easy_cleanup(e);
    return cc;
}

static void fetch_release(fetch_result *f)
{
    buf_release(&f->body);
    buf_release(&f->headers);
}

/* ---- server tests ---- */

static void test_server_get_post(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    char url[128];
    url_of(s, "/echo?a=1&b=%20x", url, sizeof(url));
    struct curl_slist *h = curl_slist_append(NULL, "X-Test: hello");
    fetch_result f = {0};
    assert_int_equal(fetch(url, NULL, h, &f), CURLE_OK);
    assert_int_equal(f.status, 200);
    assert_prefix(buf_str(&f.body), "GET /echo ?a=1&b=%20x x=hello body= len=0 remote=127.0.0.1:");
    assert_non_null(strstr(buf_str(&f.headers), "X-Reply: yes\r\n"));
    assert_non_null(strstr(buf_str(&f.headers), "Content-Type: text/plain\r\n"));
    fetch_release(&f);

    fetch_result g = {0};
    url_of(s, "/echo", url, sizeof(url));
    assert_int_equal(fetch(url, "{\"k\":1}", h, &g), CURLE_OK);
    assert_int_equal(g.status, 200);
    assert_prefix(buf_str(&g.body), "POST /echo ? x=hello body={\"k\":1} len=7 remote=127.0.0.1:");
    fetch_release(&g);
    curl_slist_free_all(h);
    stop_server(s);
}

static void test_server_headers_404(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    char url[128];
    url_of(s, "/headers", url, sizeof(url));
    struct curl_slist *h = curl_slist_append(NULL, "X-One: 1");
    h = curl_slist_append(h, "Accept:");
    h = curl_slist_append(h, "X-Two: two words");
    fetch_result f = {0};
    assert_int_equal(fetch(url, NULL, h, &f), CURLE_OK);
    char want[128];
    snprintf(want, sizeof(want), "Host=127.0.0.1:%d;X-One=1;X-Two=two words;",
             http_server_port(s));
    assert_string_equal(buf_str(&f.body), want);
    fetch_release(&f);
    curl_slist_free_all(h);

    fetch_result g = {0};
    url_of(s, "/nope", url, sizeof(url));
    assert_int_equal(fetch(url, NULL, NULL, &g), CURLE_OK);
    assert_int_equal(g.status, 404);
    assert_string_equal(buf_str(&g.body), "{\"error\":\"not found\"}");
    fetch_release(&g);
    stop_server(s);
}

static void test_server_413(void **state)
{
    (void)state;
    http_server *s = start_server(16, 0);
    char url[128];
    url_of(s, "/echo", url, sizeof(url));
    fetch_result f = {0};
    assert_int_equal(fetch(url, "0123456789abcdefXYZ", NULL, &f), CURLE_OK);
    assert_int_equal(f.status, 413);
    assert_string_equal(buf_str(&f.body), "{\"error\":\"413 /echo: request body is larger than "
                                          "the limit of 16 bytes\"}");
    assert_non_null(strstr(buf_str(&f.headers), "Content-Type: application/json\r\n"));
    fetch_release(&f);
    /* exactly the limit is fine */
    fetch_result g = {0};
    assert_int_equal(fetch(url, "0123456789abcdef", NULL, &g), CURLE_OK);
    assert_int_equal(g.status, 200);
    fetch_release(&g);
    /* chunked upload past the limit */
    fetch_result k = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Transfer-Encoding: chunked");
    assert_int_equal(fetch(url, "0123456789abcdef-0123456789abcdef", h, &k), CURLE_OK);
    assert_int_equal(k.status, 413);
    fetch_release(&k);
    curl_slist_free_all(h);
    stop_server(s);
}

static void test_server_incremental(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    char url[128];
    url_of(s, "/incremental", url, sizeof(url));
    fetch_result f = {0};
    assert_int_equal(fetch(url, NULL, NULL, &f), CURLE_OK);
    assert_int_equal(f.status, 200);
    assert_string_equal(buf_str(&f.body), "chunk1;chunk2;");
    /* chunk 1 reached the client before the handler wrote chunk 2: nothing held back */
    assert_int_equal(atomic_load(&g_state.handler_saw_flag), 1);
    assert_non_null(strstr(buf_str(&f.headers), "Transfer-Encoding: chunked\r\n"));
    fetch_release(&f);
    stop_server(s);
}

/* 64 requests whose handlers can only answer once all 64 run at the same time. */
static void test_server_64_streams(void **state)
{
    (void)state;
    enum { N = 64 };
    http_server *s = start_server(0, 0);
    char url[128];
    url_of(s, "/barrier?64", url, sizeof(url));
    CURLM *m = curl_multi_init();
    fetch_result f[N];
    CURL *e[N];
    memset(f, 0, sizeof(f));
    for (int i = 0; i < N; i++) {
        e[i] = fetch_easy(url, &f[i]);
        curl_easy_setopt(e[i], CURLOPT_TIMEOUT, 120L);
        curl_multi_add_handle(m, e[i]);
    }
    int running = 1;
    while (running) {
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < N; i++) {
        curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &f[i].status);
        assert_int_equal(f[i].status, 200);
        assert_string_equal(buf_str(&f[i].body), "1");
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
        fetch_release(&f[i]);
    }
    curl_multi_cleanup(m);
    stop_server(s);
}

static void check_disconnect(const char *path, atomic_int *flag)
{
    http_server *s = start_server(0, 0);
    char url[128];
    url_of(s, path, url, sizeof(url));
    fetch_result f = {.abort_after_first = 1};
    assert_int_equal(fetch(url, NULL, NULL, &f), CURLE_WRITE_ERROR);
    long closed_at = now_ms();
    while (!atomic_load(flag) && now_ms() - closed_at < 30000)
        sleep_ms(5);
    /* the handler saw it (before its own 30 s limit, which would leave the flag 0) */
    assert_int_equal(atomic_load(flag), 1);
    assert_int_equal(atomic_load(&g_state.gone_seen), 1);
    fetch_release(&f);
    stop_server(s);
}

static void test_server_disconnect_write(void **state)
{
    (void)state;
    check_disconnect("/until-cancel", &g_state.cancel_seen);
}

static void test_server_disconnect_silent(void **state)
{
    (void)state;
    check_disconnect("/until-gone", &g_state.gone_seen);
}

static void test_server_no_response(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    char url[128];
    url_of(s, "/silent", url, sizeof(url));
    fetch_result f = {0};
    assert_int_equal(fetch(url, NULL, NULL, &f), CURLE_OK);
    assert_int_equal(f.status, 500);
    assert_string_equal(buf_str(&f.body),
                        "{\"error\":\"500 /silent: internal error: the request handler did not "
                        "respond\"}");
    fetch_release(&f);
    stop_server(s);
}

static void test_server_slow_handler_outlives_idle_timeout(void **state)
{
    (void)state;
    http_server *s = start_server(0, 1);
    char url[128];
    url_of(s, "/late", url, sizeof(url));
    fetch_result f = {0};
    assert_int_equal(fetch(url, NULL, NULL, &f), CURLE_OK);
    assert_int_equal(f.status, 200);
    assert_string_equal(buf_str(&f.body), "late-ok");
    fetch_release(&f);
    stop_server(s);
}

static void test_server_big_stream(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    char url[128];
    url_of(s, "/bigstream", url, sizeof(url));
    fetch_result f = {0};
    assert_int_equal(fetch(url, NULL, NULL, &f), CURLE_OK);
    assert_int_equal(f.body.len, 500000);
    for (size_t i = 0; i < 50; i++)
        assert_int_equal(f.body.data[i * 10000 + 9999], 'a' + (int)(i % 26));
    fetch_release(&f);
    stop_server(s);
}

/* ---- raw sockets, for what libcurl will not send ---- */

static int raw_connect(const http_server *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)http_server_port(s)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void raw_send(int fd, const char *p, size_t n)
{
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads until the server closes (at most 60 s; a test bound, not a speed check) into out;
 * true when it closed. */
static bool raw_read_all(int fd, buf *out)
{
    long until = now_ms() + 60000;
    while (now_ms() < until) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        char tmp[4096];
        ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
        if (n <= 0)
            return true;
        buf_append(out, tmp, (size_t)n);
    }
    return false;
}

/* Sends req on a fresh connection and returns everything the server sent before closing. */
static void raw_exchange(const http_server *s, const char *req, size_t n, buf *out)
{
    int fd = raw_connect(s);
    raw_send(fd, req, n);
    assert_true(raw_read_all(fd, out));
    close(fd);
}

/* The answer is a JSON error of the server's own with this status, and the connection
 * was closed after it. */
static void assert_json_error(const char *answer, int status)
{
    char line[64];
    snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
    assert_prefix(answer, line);
    assert_non_null(strstr(answer, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(answer, "\r\nConnection: close\r\n"));
    char body[64];
    snprintf(body, sizeof(body), "\r\n\r\n{\"error\":\"%d ", status);
    assert_non_null(strstr(answer, body));
    assert_null(strstr(answer, "<html"));
}

static void test_server_malformed(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    static const struct {
        const char *req;
        int status; /* 0: closed without an answer */
    } cases[] = {
        {"GARBAGE\r\n\r\n", 400},
        {"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505},
        {"GET / HTTPS/1.1\r\nHost: x\r\n\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
         "\r\n0\r\n\r\n",
         400},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417},
        {"GET /echo HTTP/1.1\r\nHost: x\r\nBad header\r\n\r\n", 400},
        {"GET /echo HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400},
        {"GET /echo HTTP/1.1\r\n\r\n", 400}, /* no Host */
        {"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"\x01\x02\x03\xff\r\n\r\n", 400},
        {"GET /echo HTTP/1.1\r\n", 0}, /* then the client shuts its side */
    };
    for (size_t i = 0; i < LOCO_ARRAY_LEN(cases); i++) {
        int fd = raw_connect(s);
        raw_send(fd, cases[i].req, strlen(cases[i].req));
        shutdown(fd, SHUT_WR);
        buf out;
        buf_init(&out, BUF_UNLIMITED);
        assert_true(raw_read_all(fd, &out));
        close(fd);
        if (cases[i].status)
            assert_json_error(buf_str(&out), cases[i].status);
        else
            assert_int_equal(out.len, 0);
        buf_release(&out);
    }
    /* still serving */
    char url[128];
    url_of(s, "/echo", url, sizeof(url));
    fetch_result f = {0};
    assert_int_equal(fetch(url, NULL, NULL, &f), CURLE_OK);
    assert_int_equal(f.status, 200);
    fetch_release(&f);
    stop_server(s);
}

/* Heads too large for the server are answered 431/414 as JSON, not an HTML page. */
static void test_server_too_large_heads(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    buf req, out;
    buf_init(&req, BUF_UNLIMITED);
    buf_init(&out, BUF_UNLIMITED);
    buf_appends(&req, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ");
    for (int i = 0; i < 70000; i++)
        buf_appendc(&req, 'a');
    buf_appends(&req, "\r\n\r\n");
    raw_exchange(s, req.data, req.len, &out);
    assert_json_error(buf_str(&out), 431);
    assert_non_null(strstr(buf_str(&out), "request head too large"));

    buf_reset(&req);
    buf_reset(&out);
    buf_appends(&req, "GET /");
    for (int i = 0; i < 70000; i++)
        buf_appendc(&req, 'a');
    raw_exchange(s, req.data, req.len, &out);
    assert_json_error(buf_str(&out), 414);

    buf_reset(&req);
    buf_reset(&out);
    buf_appends(&req, "GET /echo HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 200; i++)
        buf_appendf(&req, "X-H%d: v\r\n", i);
    buf_appends(&req, "\r\n");
    raw_exchange(s, req.data, req.len, &out);
    assert_json_error(buf_str(&out), 431);
    buf_release(&req);
    buf_release(&out);
    stop_server(s);
}

/* A connection that sends a byte now and then never completes a request: it is answered
 * 408 and closed once the idle timeout has passed since it became idle, however the bytes
 * trickle in. (A timer restarted by every byte would keep it open forever.) */
static void test_server_slow_request_times_out(void **state)
{
    (void)state;
    http_server *s = start_server(0, 1);
    int fd = raw_connect(s);
    static const char head[] = "GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    raw_send(fd, head, sizeof(head) - 1);
    bool closed = false;
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    /* one byte every 200 ms for up to 60 s */
    for (int i = 0; i < 300 && !closed; i++) {
        if (send(fd, "a", 1, MSG_NOSIGNAL) != 1)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) > 0)
            closed = raw_read_all(fd, &out);
    }
    if (!closed)
        closed = raw_read_all(fd, &out);
    assert_true(closed);
    assert_json_error(buf_str(&out), 408);
    close(fd);
    buf_release(&out);

    /* a connection that sends nothing is closed without an answer */
    fd = raw_connect(s);
    buf_init(&out, BUF_UNLIMITED);
    assert_true(raw_read_all(fd, &out));
    assert_int_equal(out.len, 0);
    close(fd);
    buf_release(&out);
    http_server_stats st;
    http_server_get_stats(s, &st);
    assert_int_equal(st.timed_out, 2);
    stop_server(s);
}

/* Past max_connections the next request is answered 503 (JSON, Retry-After) instead of a
 * reset, and once a connection closes new ones are served again. */
static void test_server_max_connections(void **state)
{
    (void)state;
    enum { MAX = 4 };
    http_server *s = start_server_with(0, 0, MAX);
    int fds[MAX];
    static const char req[] = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < MAX; i++) {
        fds[i] = raw_connect(s);
        raw_send(fds[i], req, sizeof(req) - 1);
        char tmp[1024];
        assert_true(recv(fds[i], tmp, sizeof(tmp), 0) > 0); /* served, still open */
    }
    char url[128];
    url_of(s, "/v1/x", url, sizeof(url));
    fetch_result f = {0};
    assert_int_equal(fetch(url, NULL, NULL, &f), CURLE_OK);
    assert_int_equal(f.status, 503);
    assert_string_equal(buf_str(&f.body),
                        "{\"error\":\"503 /v1/x: the server has its maximum of 4 connections "
                        "open; retry shortly\"}");
    assert_non_null(strstr(buf_str(&f.headers), "Retry-After: 1\r\n"));
    fetch_release(&f);
    http_server_stats st;
    http_server_get_stats(s, &st);
    assert_int_equal(st.refused, 1);

    close(fds[0]);
    url_of(s, "/echo", url, sizeof(url));
    long until = now_ms() + 60000;
    long status = 0;
    while (status != 200 && now_ms() < until) {
        fetch_result g = {0};
        fetch(url, NULL, NULL, &g);
        status = g.status;
        fetch_release(&g);
        if (status != 200)
            sleep_ms(20);
    }
    assert_int_equal(status, 200);
    for (int i = 1; i < MAX; i++)
        close(fds[i]);
    stop_server(s);
}

/* Pipelined requests, HEAD, HTTP/1.0 and Expect: 100-continue. */
static void test_server_protocol(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    static const char two[] = "GET /echo?1 HTTP/1.1\r\nHost: x\r\n\r\n"
                              "POST /echo?2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                              "Connection: close\r\n\r\nhi";
    raw_exchange(s, two, sizeof(two) - 1, &out);
    const char *a = strstr(buf_str(&out), "GET /echo ?1 ");
    const char *b = strstr(buf_str(&out), "POST /echo ?2 x=(null) body=hi len=2 ");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);

    buf_reset(&out);
    static const char head[] = "HEAD /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    raw_exchange(s, head, sizeof(head) - 1, &out);
    assert_prefix(buf_str(&out), "HTTP/1.1 200 OK\r\n");
    assert_non_null(strstr(buf_str(&out), "\r\nContent-Length: "));
    assert_true(str_ends_with(buf_str(&out), "\r\n\r\n")); /* no body */

    buf_reset(&out);
    static const char old[] = "GET /fast?2 HTTP/1.0\r\n\r\n";
    raw_exchange(s, old, sizeof(old) - 1, &out);
    assert_prefix(buf_str(&out), "HTTP/1.1 201 ");
    assert_null(strstr(buf_str(&out), "chunked"));
    assert_true(str_ends_with(buf_str(&out), "\r\n\r\nc0;c1;"));

    buf_reset(&out);
    int fd = raw_connect(s);
    static const char expect[] = "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                 "Content-Length: 3\r\nConnection: close\r\n\r\n";
    raw_send(fd, expect, sizeof(expect) - 1);
    char tmp[64];
    ssize_t n = recv(fd, tmp, sizeof(tmp) - 1, 0);
    assert_true(n > 0);
    tmp[n] = '\0';
    assert_string_equal(tmp, "HTTP/1.1 100 Continue\r\n\r\n");
    raw_send(fd, "abc", 3);
    assert_true(raw_read_all(fd, &out));
    assert_non_null(strstr(buf_str(&out), "body=abc len=3 "));
    close(fd);
    buf_release(&out);
    stop_server(s);
}

/* Reads one answer with a Content-Length body from a kept-alive connection into out
 * (appended); false when the connection closed or 60 s passed first (a test bound). */
static bool raw_read_answer(int fd, buf *out)
{
    size_t start = out->len;
    long until = now_ms() + 60000;
    while (now_ms() < until) {
        const char *a = out->data ? out->data + start : NULL;
        const char *end = a ? strstr(a, "\r\n\r\n") : NULL;
        if (end) {
            const char *cl = strstr(a, "\r\nContent-Length: ");
            size_t len = cl && cl < end ? strtoul(cl + 18, NULL, 10) : 0;
            if ((size_t)(end + 4 - a) + len <= out->len - start)
                return true;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        char tmp[4096];
        ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
        if (n <= 0)
            return false;
        buf_append(out, tmp, (size_t)n);
    }
    return false;
}

static void expect_sum(const char *answer, const char *body, size_t n)
{
    char want[96];
    snprintf(want, sizeof(want), "\r\n\r\nlen=%zu fnv=%016" PRIx64, n, fnv1a(body, n));
    if (!strstr(answer, want))
        fail_msg("'%s' lacks '%s'", answer, want + 4);
}

/* One kept-alive connection carries a chunked body (extension, trailer), a Content-Length
 * body that arrives in two pieces, and a pipelined pair; every answer is in order. */
static void test_server_bodies_keepalive(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    int fd = raw_connect(s);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    static const char chunked[] = "POST /sum HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                  "\r\n5;ext=\"a b\"\r\nhello\r\n6\r\n world\r\n0\r\n"
                                  "X-Trailer: t\r\n\r\n";
    raw_send(fd, chunked, sizeof(chunked) - 1);
    assert_true(raw_read_answer(fd, &out));
    assert_prefix(buf_str(&out), "HTTP/1.1 200 OK\r\n");
    expect_sum(buf_str(&out), "hello world", 11);

    buf_reset(&out);
    static const char part1[] = "POST /sum HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234";
    raw_send(fd, part1, sizeof(part1) - 1);
    sleep_ms(50); /* the rest comes later; correctness does not depend on the gap */
    raw_send(fd, "56789", 5);
    assert_true(raw_read_answer(fd, &out));
    expect_sum(buf_str(&out), "0123456789", 10);

    buf_reset(&out);
    static const char pair[] = "POST /sum HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"
                               "POST /sum HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                               "Connection: close\r\n\r\n2\r\nbc\r\n0\r\n\r\n";
    raw_send(fd, pair, sizeof(pair) - 1);
    assert_true(raw_read_all(fd, &out));
    expect_sum(buf_str(&out), "a", 1);
    const char *second = strstr(buf_str(&out), "len=1 ");
    assert_non_null(second);
    expect_sum(second, "bc", 2);
    close(fd);
    buf_release(&out);
    stop_server(s);
}

/* Bodies of several MiB arrive whole: through libcurl (which sends Expect: 100-continue
 * for a body this size) and as a raw upload of many chunks written in pieces. */
static void test_server_large_bodies(void **state)
{
    (void)state;
    enum { BIG = 6 << 20 };
    http_server *s = start_server(0, 0);
    char *big = malloc(BIG);
    assert_non_null(big);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    char url[128];
    url_of(s, "/sum", url, sizeof(url));
    fetch_result f = {0};
    CURL *e = fetch_easy(url, &f);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, big);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)BIG);
    struct curl_slist *h = curl_slist_append(NULL, "Expect: 100-continue");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    assert_int_equal(curl_easy_perform(e), CURLE_OK);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &f.status);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    assert_int_equal(f.status, 200);
    buf head;
    buf_init(&head, BUF_UNLIMITED);
    buf_appends(&head, "\r\n\r\n");
    buf_append(&head, f.body.data, f.body.len);
    expect_sum(buf_str(&head), big, BIG);
    buf_release(&head);
    fetch_release(&f);

    int fd = raw_connect(s);
    static const char req[] = "POST /sum HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                              "Connection: close\r\n\r\n";
    raw_send(fd, req, sizeof(req) - 1);
    for (size_t off = 0; off < BIG; off += 65536) {
        size_t n = BIG - off < 65536 ? BIG - off : 65536;
        char line[32];
        int k = snprintf(line, sizeof(line), "%zx\r\n", n);
        raw_send(fd, line, (size_t)k);
        raw_send(fd, big + off, n);
        raw_send(fd, "\r\n", 2);
    }
    raw_send(fd, "0\r\n\r\n", 5);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    assert_true(raw_read_all(fd, &out));
    expect_sum(buf_str(&out), big, BIG);
    close(fd);
    buf_release(&out);
    free(big);
    stop_server(s);
}

/* Expect: 100-continue with a declared body over the limit: 413 at once, no 100 Continue
 * (the client never has to send the body). */
static void test_server_expect_too_large(void **state)
{
    (void)state;
    http_server *s = start_server(16, 0);
    int fd = raw_connect(s);
    static const char req[] = "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                              "Content-Length: 1000000\r\n\r\n";
    raw_send(fd, req, sizeof(req) - 1);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    assert_true(raw_read_all(fd, &out));
    assert_null(strstr(buf_str(&out), "100 Continue"));
    assert_json_error(buf_str(&out), 413);
    close(fd);
    buf_release(&out);
    stop_server(s);
}

/* The done hook runs once per exchange, before the client can see the end of the answer. */
static void test_server_done_hook(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    const char *modes[] = {"send", "stream", "none"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(modes); i++) {
        atomic_store(&g_state.done_calls, 0);
        char path[64], url[128];
        snprintf(path, sizeof(path), "/done?%s", modes[i]);
        url_of(s, path, url, sizeof(url));
        fetch_result f = {0};
        assert_int_equal(fetch(url, NULL, NULL, &f), CURLE_OK);
        /* the client has the whole answer: the hook must have run already */
        assert_int_equal(atomic_load(&g_state.done_calls), 1);
        assert_int_equal(f.status, i == 2 ? 500 : 200);
        fetch_release(&f);
    }
    atomic_store(&g_state.done_calls, 0);
    char url[128];
    url_of(s, "/done?gone", url, sizeof(url));
    fetch_result f = {.abort_after_first = 1};
    assert_int_equal(fetch(url, NULL, NULL, &f), CURLE_WRITE_ERROR);
    fetch_release(&f);
    stop_server(s); /* waits for the handler, which checks the count */
    assert_int_equal(atomic_load(&g_state.done_calls), 1);
}

static void *stop_later(void *arg)
{
    long until = now_ms() + 30000;
    while (!atomic_load(&g_state.started) && now_ms() < until)
        sleep_ms(5);
    http_server_stop(arg);
    return NULL;
}

static void test_server_stop_cancels_streams(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    char url[128];
    url_of(s, "/until-cancel", url, sizeof(url));
    pthread_t t;
    pthread_create(&t, NULL, stop_later, s);
    fetch_result f = {0};
    CURLcode cc = fetch(url, NULL, NULL, &f);
    assert_int_not_equal(cc, CURLE_OK); /* the stream was cut, not ended */
    pthread_join(t, NULL);
    /* the handler saw the cancel (its own 30 s limit would leave the flag 0) */
    assert_int_equal(atomic_load(&g_state.cancel_seen), 1);
    assert_int_equal(atomic_load(&g_state.handlers_done), 1);
    fetch_release(&f);
}

static void test_server_bind_error(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    http_server_config cfg = {.host = "127.0.0.1", .port = http_server_port(s),
                              .handler = test_handler};
    http_server *s2 = NULL;
    loco_err err;
    assert_int_equal(http_server_start(&cfg, &s2, &err), LOCO_ERR_IO);
    assert_null(s2);
    char want[64];
    snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%d", http_server_port(s));
    assert_non_null(strstr(err.msg, want));
    http_server_stop(s);
    http_server_stop(NULL);
}

/* ---- client tests ---- */

typedef struct {
    buf data;
    buf hdrs;
    int status;
    char ctype[64];
    int n_headers_calls;
    int n_data_calls;
    bool data_before_headers;
    loco_status fail_data;
} client_sink;

static loco_status cs_headers(void *ctx, int status, const char *content_type)
{
    client_sink *c = ctx;
    c->n_headers_calls++;
    c->status = status;
    snprintf(c->ctype, sizeof(c->ctype), "%s", content_type ? content_type : "(null)");
    return LOCO_OK;
}

static loco_status cs_header(void *ctx, const char *name, const char *value)
{
    client_sink *c = ctx;
    if (strcasecmp(name, "cache-control") == 0 || strcasecmp(name, "x-reply") == 0)
        buf_appendf(&c->hdrs, "%s=%s;", name, value);
    return LOCO_OK;
}

static loco_status cs_data(void *ctx, const char *p, size_t n)
{
    client_sink *c = ctx;
    if (!c->n_headers_calls)
        c->data_before_headers = true;
    c->n_data_calls++;
    buf_append(&c->data, p, n);
    return c->fail_data;
}

static http_client_request cs_request(client_sink *c, const char *url)
{
    memset(c, 0, sizeof(*c));
    buf_init(&c->data, BUF_UNLIMITED);
    buf_init(&c->hdrs, BUF_UNLIMITED);
    http_client_request r = {.url = url,
                             .on_headers = cs_headers,
                             .on_header = cs_header,
                             .on_data = cs_data,
                             .ctx = c};
    return r;
}

static void cs_release(client_sink *c)
{
    buf_release(&c->data);
    buf_release(&c->hdrs);
}

static void test_client_stream_and_headers(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    http_client *hc = NULL;
    loco_err err;
    assert_int_equal(http_client_new(&hc, &err), LOCO_OK);
    char url[128];
    url_of(s, "/fast?4", url, sizeof(url));
    client_sink c;
    http_client_request r = cs_request(&c, url);
    int status = -1;
    assert_int_equal(http_client_do(hc, &r, &status, &err), LOCO_OK);
    assert_int_equal(status, 201);
    assert_int_equal(c.status, 201);
    assert_int_equal(c.n_headers_calls, 1);
    assert_false(c.data_before_headers);
    assert_string_equal(c.ctype, "text/event-stream");
    assert_string_equal(buf_str(&c.data), "c0;c1;c2;c3;");
    assert_true(c.n_data_calls >= 4);
    assert_string_equal(buf_str(&c.hdrs), "Cache-Control=no-cache;");
    cs_release(&c);
    http_client_free(hc);
    stop_server(s);
}

static void test_client_post_status_reuse(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    http_client *hc = NULL;
    loco_err err;
    assert_int_equal(http_client_new(&hc, &err), LOCO_OK);
    char url[128];
    url_of(s, "/echo?q=1", url, sizeof(url));
    const char *const hdrs[] = {"X-Test: v1", "Content-Type: application/json", NULL};
    char remote1[128] = "", remote2[128] = "";
    for (int i = 0; i < 2; i++) {
        client_sink c;
        http_client_request r = cs_request(&c, url);
        r.method = "POST";
        r.headers = hdrs;
        r.body = "{\"a\":2}";
        r.body_len = 7;
        int status = 0;
        assert_int_equal(http_client_do(hc, &r, &status, &err), LOCO_OK);
        assert_int_equal(status, 200);
        assert_string_equal(buf_str(&c.hdrs), "X-Reply=yes;");
        assert_prefix(buf_str(&c.data), "POST /echo ?q=1 x=v1 body={\"a\":2} len=7 remote=127.0.0.1:");
        snprintf(i ? remote2 : remote1, 128, "%s", buf_str(&c.data));
        cs_release(&c);
    }
    /* the second request came over the same kept-alive connection (same client port) */
    assert_string_equal(remote1, remote2);

    client_sink c;
    url_of(s, "/missing", url, sizeof(url));
    http_client_request r = cs_request(&c, url);
    int status = 0;
    assert_int_equal(http_client_do(hc, &r, &status, &err), LOCO_OK);
    assert_int_equal(status, 404);
    assert_int_equal(c.status, 404);
    assert_string_equal(buf_str(&c.data), "{\"error\":\"not found\"}");
    cs_release(&c);
    http_client_free(hc);
    stop_server(s);
}

static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_client_refused(void **state)
{
    (void)state;
    http_client *hc = NULL;
    loco_err err;
    assert_int_equal(http_client_new(&hc, &err), LOCO_OK);
    char url[160];
    int port = closed_port();
    snprintf(url, sizeof(url), "http://user:pw@127.0.0.1:%d/v1/x?key=SECRET", port);
    client_sink c;
    http_client_request r = cs_request(&c, url);
    const char *const hdrs[] = {"Authorization: Bearer SECRET2", NULL};
    r.headers = hdrs;
    int status = -1;
    assert_int_equal(http_client_do(hc, &r, &status, &err), LOCO_ERR_UNAVAILABLE);
    assert_int_equal(status, 0);
    assert_int_equal(err.code, LOCO_ERR_UNAVAILABLE);
    char want[96];
    snprintf(want, sizeof(want), "GET http://127.0.0.1:%d/v1/x: ", port);
    assert_int_equal(strncmp(err.msg, want, strlen(want)), 0);
    assert_null(strstr(err.msg, "SECRET"));
    assert_null(strstr(err.msg, "pw"));
    assert_int_equal(c.n_headers_calls, 0);
    cs_release(&c);
    http_client_free(hc);
}

static void test_client_idle_and_total_timeout(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    http_client *hc = NULL;
    loco_err err;
    assert_int_equal(http_client_new(&hc, &err), LOCO_OK);
    char url[128];
    url_of(s, "/slow?3", url, sizeof(url)); /* 200 ms gaps */
    client_sink c;
    http_client_request r = cs_request(&c, url);
    r.idle_timeout_ms = 100;
    assert_int_equal(http_client_do(hc, &r, NULL, &err), LOCO_ERR_TIMEOUT);
    assert_string_equal(buf_str(&c.data), "c0;");
    assert_non_null(strstr(err.msg, "idle timeout"));
    cs_release(&c);

    /* idle timeout longer than the gaps: completes */
    r = cs_request(&c, url);
    r.idle_timeout_ms = 20000;
    assert_int_equal(http_client_do(hc, &r, NULL, &err), LOCO_OK);
    assert_string_equal(buf_str(&c.data), "c0;c1;c2;");
    cs_release(&c);

    r = cs_request(&c, url);
    r.total_timeout_ms = 300;
    assert_int_equal(http_client_do(hc, &r, NULL, &err), LOCO_ERR_TIMEOUT);
    assert_prefix(buf_str(&c.data), "c0;"); /* c1 comes at ~200 ms, c2 at ~400 ms */
    assert_string_not_equal(buf_str(&c.data), "c0;c1;c2;");
    cs_release(&c);
    http_client_free(hc);
    stop_server(s);
}

typedef struct {
    volatile int flag;
} cancel_ctl;

static void *cancel_later(void *arg)
{
    cancel_ctl *cc = arg;
    sleep_ms(300);
    __atomic_store_n(&cc->flag, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_client_cancel(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    http_client *hc = NULL;
    loco_err err;
    assert_int_equal(http_client_new(&hc, &err), LOCO_OK);
    char url[128];
    url_of(s, "/stall", url, sizeof(url));
    client_sink c;
    http_client_request r = cs_request(&c, url);
    cancel_ctl ctl = {0};
    r.cancel = &ctl.flag;
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, &ctl);
    /* /stall ends after 20 s on its own: CANCELLED means the flag stopped it */
    assert_int_equal(http_client_do(hc, &r, NULL, &err), LOCO_ERR_CANCELLED);
    pthread_join(t, NULL);
    assert_string_equal(buf_str(&c.data), "x");
    assert_non_null(strstr(err.msg, "cancelled"));
    cs_release(&c);

    /* a callback's status aborts the transfer and is returned */
    url_of(s, "/fast?3", url, sizeof(url));
    r = cs_request(&c, url);
    c.fail_data = LOCO_ERR_LIMIT;
    assert_int_equal(http_client_do(hc, &r, NULL, &err), LOCO_ERR_LIMIT);
    assert_int_equal(c.n_data_calls, 1);
    cs_release(&c);

    /* the pool still works after aborted transfers */
    r = cs_request(&c, url);
    assert_int_equal(http_client_do(hc, &r, NULL, &err), LOCO_OK);
    assert_string_equal(buf_str(&c.data), "c0;c1;c2;");
    cs_release(&c);
    http_client_free(hc);
    stop_server(s);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_get_post),
        cmocka_unit_test(test_server_headers_404),
        cmocka_unit_test(test_server_413),
        cmocka_unit_test(test_server_incremental),
        cmocka_unit_test(test_server_64_streams),
        cmocka_unit_test(test_server_disconnect_write),
        cmocka_unit_test(test_server_disconnect_silent),
        cmocka_unit_test(test_server_no_response),
        cmocka_unit_test(test_server_slow_handler_outlives_idle_timeout),
        cmocka_unit_test(test_server_big_stream),
        cmocka_unit_test(test_server_malformed),
        cmocka_unit_test(test_server_too_large_heads),
        cmocka_unit_test(test_server_slow_request_times_out),
        cmocka_unit_test(test_server_max_connections),
        cmocka_unit_test(test_server_protocol),
        cmocka_unit_test(test_server_bodies_keepalive),
        cmocka_unit_test(test_server_large_bodies),
        cmocka_unit_test(test_server_expect_too_large),
        cmocka_unit_test(test_server_done_hook),
        cmocka_unit_test(test_server_stop_cancels_streams),
        cmocka_unit_test(test_server_bind_error),
        cmocka_unit_test(test_client_stream_and_headers),
        cmocka_unit_test(test_client_post_status_reuse),
        cmocka_unit_test(test_client_refused),
        cmocka_unit_test(test_client_idle_and_total_timeout),
        cmocka_unit_test(test_client_cancel),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
