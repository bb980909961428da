/* test_http.c: tests of net/http_server and net/http_client over real sockets: the server
 * driven by libcurl directly, the client driven against the server on an ephemeral port. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "net/http_client.h"
#include "net/http_server.h"

/* ---- shared test server ---- */

typedef struct {
    atomic_int client_saw_chunk1; /* set by the client once chunk 1 arrived */
    atomic_int handler_saw_flag;  /* 1: the flag was set before chunk 2; 2: it never came */
    atomic_int cancel_seen;       /* handler saw write() fail with CANCELLED */
    atomic_int gone_seen;         /* handler saw client_gone() */
    atomic_long cancel_at_ms;     /* when it saw it */
    atomic_int handlers_done;
    atomic_int handler_failures; /* checks that failed on handler threads */
    atomic_long chunk1_written_ms;
    atomic_long chunk1_seen_ms;
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
    atomic_store(&g_state.chunk1_written_ms, now_ms());
    HCHECK(http_response_write(resp, "chunk1;", 7) == LOCO_OK);
    long until = now_ms() + 5000;
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
    long until = now_ms() + 5000;
    while (now_ms() < until) {
        if (silent ? http_response_client_gone(resp)
                   : http_response_write(resp, "more;", 5) == LOCO_ERR_CANCELLED) {
            atomic_store(&g_state.cancel_at_ms, now_ms());
            atomic_store(silent ? &g_state.gone_seen : &g_state.cancel_seen, 1);
            atomic_store(&g_state.gone_seen, http_response_client_gone(resp) ? 1 : 0);
            return;
        }
        sleep_ms(silent ? 5 : 50);
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
    else if (strcmp(p, "/late") == 0) {
        sleep_ms(1500);
        http_response_send(resp, 200, "text/plain", "late-ok", 7);
    } else if (strcmp(p, "/stall") == 0) {
        http_response_start(resp, 200, "text/plain");
        http_response_write(resp, "x", 1);
        for (int i = 0; i < 100 && !http_response_client_gone(resp); i++)
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

static http_server *start_server(size_t max_body, unsigned timeout_s)
{
    memset(&g_state, 0, sizeof(g_state));
    http_server_config cfg = {.host = "127.0.0.1",
                              .port = 0,
                              .max_body = max_body,
                              .error_body_413 = "{\"error\":\"too big\"}",
                              .connection_timeout_s = timeout_s,
                              .handler = test_handler};
    http_server *s = NULL;
    loco_err err;
    assert_int_equal(http_server_start(&cfg, &s, &err), LOCO_OK);
    assert_true(http_server_port(s) > 0);
    return s;
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
    if (strstr(buf_str(&f->body), "chunk1;") && !atomic_load(&g_state.client_saw_chunk1)) {
        atomic_store(&g_state.chunk1_seen_ms, now_ms());
        atomic_store(&g_state.client_saw_chunk1, 1);
    }
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
    assert_string_equal(buf_str(&f.body), "{\"error\":\"too big\"}");
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
    assert_int_equal(atomic_load(&g_state.handler_saw_flag), 1);
    /* no Nagle or cork delay: chunk 1 arrives right after the write */
    assert_true(atomic_load(&g_state.chunk1_seen_ms) - atomic_load(&g_state.chunk1_written_ms) < 100);
    assert_non_null(strstr(buf_str(&f.headers), "Transfer-Encoding: chunked\r\n"));
    fetch_release(&f);
    stop_server(s);
}

static void test_server_64_streams(void **state)
{
    (void)state;
    enum { N = 64 };
    http_server *s = start_server(0, 0);
    char url[128];
    url_of(s, "/slow?5", url, sizeof(url));
    CURLM *m = curl_multi_init();
    fetch_result f[N];
    CURL *e[N];
    memset(f, 0, sizeof(f));
    for (int i = 0; i < N; i++) {
        e[i] = fetch_easy(url, &f[i]);
        curl_multi_add_handle(m, e[i]);
    }
    long t0 = now_ms();
    int running = 1;
    while (running) {
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    long took = now_ms() - t0;
    for (int i = 0; i < N; i++) {
        curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &f[i].status);
        assert_int_equal(f[i].status, 201);
        assert_string_equal(buf_str(&f[i].body), "c0;c1;c2;c3;c4;");
        assert_true(f[i].chunks >= 2);
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
        fetch_release(&f[i]);
    }
    curl_multi_cleanup(m);
    /* 800 ms of sleeps per stream; run one after another it would take 51 s */
    assert_true(took >= 800);
    assert_true(took < 5000);
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
    while (!atomic_load(flag) && now_ms() - closed_at < 3000)
        sleep_ms(5);
    assert_int_equal(atomic_load(flag), 1);
    assert_int_equal(atomic_load(&g_state.gone_seen), 1);
    assert_true(atomic_load(&g_state.cancel_at_ms) - closed_at < 1000);
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
                        "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
                        "\"internal error: the request handler did not respond\"}}");
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

static void test_server_malformed(void **state)
{
    (void)state;
    http_server *s = start_server(0, 0);
    const char *junk[] = {"GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\n\r\n",
                          "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n",
                          "GET /echo HTTP/1.1\r\nHost: x\r\nBad header\r\n\r\n",
                          "\x01\x02\x03\xff\r\n\r\n", "GET /echo HTTP/1.1\r\n"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(junk); i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)http_server_port(s)),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_true(write(fd, junk[i], strlen(junk[i])) > 0);
        shutdown(fd, SHUT_WR);
        char tmp[512];
        while (read(fd, tmp, sizeof(tmp)) > 0) {
        }
        close(fd);
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

static void *stop_later(void *arg)
{
    sleep_ms(300);
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
    long t0 = now_ms();
    CURLcode cc = fetch(url, NULL, NULL, &f);
    assert_int_not_equal(cc, CURLE_OK); /* the stream was cut, not ended */
    pthread_join(t, NULL);
    assert_true(now_ms() - t0 < 3000);
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
    long t0 = now_ms();
    assert_int_equal(http_client_do(hc, &r, NULL, &err), LOCO_ERR_TIMEOUT);
    assert_true(now_ms() - t0 < 1000);
    assert_string_equal(buf_str(&c.data), "c0;");
    assert_non_null(strstr(err.msg, "idle timeout"));
    cs_release(&c);

    /* idle timeout longer than the gaps: completes */
    r = cs_request(&c, url);
    r.idle_timeout_ms = 1000;
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
    long set_at;
} cancel_ctl;

static void *cancel_later(void *arg)
{
    cancel_ctl *cc = arg;
    sleep_ms(300);
    cc->set_at = now_ms();
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
    cancel_ctl ctl = {0, 0};
    r.cancel = &ctl.flag;
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, &ctl);
    assert_int_equal(http_client_do(hc, &r, NULL, &err), LOCO_ERR_CANCELLED);
    long done = now_ms();
    pthread_join(t, NULL);
    assert_true(done - ctl.set_at < 250);
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
