/* http_client.c: HTTP client over libcurl. Each request borrows a (multi, easy) pair from a
 * mutex-protected pool, so kept-alive connections live on in the pair's connection cache;
 * the multi interface lets the calling thread poll cancel and idle time every 100 ms. */
#include "base/common.h"

#include <curl/curl.h>
#include <pthread.h>

#include "base/buf.h"
#include "net/http_client.h"

/* Idle (multi, easy) pairs kept for reuse; more are created on demand and freed after. */
#define HTTP_CLIENT_POOL_MAX 32
/* Longest wait in one curl_multi_poll: the bound on cancel and idle-timeout latency. */
#define HTTP_CLIENT_POLL_MS 100
#define HTTP_CLIENT_CONNECT_DEFAULT_MS 10000L
/* Longest URL kept for messages (after dropping query and credentials). */
#define HTTP_CLIENT_URL_SHOWN 200

#ifndef CURL_WRITEFUNC_ERROR
#define CURL_WRITEFUNC_ERROR 0xFFFFFFFF
#endif

typedef struct {
    CURLM *multi;
    CURL *easy;
} http_conn;

struct http_client {
    pthread_mutex_t mu;
    http_conn pool[HTTP_CLIENT_POOL_MAX];
    size_t n_pool;
};

/* Per-transfer state shared with the curl callbacks. */
typedef struct {
    const http_client_request *req;
    CURL *easy;
    loco_status cb_status; /* non-OK once a callback asked to stop */
    bool headers_called;
    bool in_final;         /* inside the header block of a non-1xx response */
    double last_byte_ms;
} http_xfer;

static double http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- pool ---- */

static void http_conn_free(http_conn *hc)
{
    if (hc->multi)
        curl_multi_cleanup(hc->multi);
    if (hc->easy)
        curl_easy_cleanup(hc->easy);
    hc->multi = NULL;
    hc->easy = NULL;
}

static bool http_conn_get(http_client *c, http_conn *out)
{
    pthread_mutex_lock(&c->mu);
    bool have = c->n_pool > 0;
    if (have)
        *out = c->pool[--c->n_pool];
    pthread_mutex_unlock(&c->mu);
    if (have) {
        curl_easy_reset(out->easy);
        return true;
    }
    out->multi = curl_multi_init();
    out->easy = curl_easy_init();
    if (out->multi && out->easy)
        return true;
    http_conn_free(out);
    return false;
}

static void http_conn_put(http_client *c, http_conn *hc)
{
    pthread_mutex_lock(&c->mu);
    bool kept = c->n_pool < HTTP_CLIENT_POOL_MAX;
    if (kept)
        c->pool[c->n_pool++] = *hc;
    pthread_mutex_unlock(&c->mu);
    if (!kept)
        http_conn_free(hc);
}

loco_status http_client_new(http_client **out, loco_err *err)
{
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return loco_err_set(err, LOCO_ERR_IO, "cannot initialise libcurl");
    http_client *c = calloc(1, sizeof(*c));
    if (!c) {
        curl_global_cleanup();
        return loco_err_set(err, LOCO_ERR_NOMEM, "http client: out of memory");
    }
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return LOCO_OK;
}

void http_client_free(http_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_pool; i++)
        http_conn_free(&c->pool[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
    curl_global_cleanup();
}

/* ---- messages ---- */

/* Writes url without userinfo and without query/fragment (where keys may hide) to out. */
static void http_safe_url(const char *url, char *out, size_t size)
{
    const char *scheme_end = strstr(url, "://");
    const char *host = scheme_end ? scheme_end + 3 : url;
    size_t auth_len = strcspn(host, "/?#");
    const char *at = memchr(host, '@', auth_len);
    size_t scheme_len = (size_t)(host - url);
    const char *rest = at ? at + 1 : host;
    size_t rest_len = strcspn(rest, "?#");
    if (rest_len > HTTP_CLIENT_URL_SHOWN)
        rest_len = HTTP_CLIENT_URL_SHOWN;
    snprintf(out, size, "%.*s%.*s", (int)scheme_len, url, (int)rest_len, rest);
}

static loco_status http_status_of(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return LOCO_ERR_UNAVAILABLE;
    case CURLE_OPERATION_TIMEDOUT:
        return LOCO_ERR_TIMEOUT;
    case CURLE_OUT_OF_MEMORY:
        return LOCO_ERR_NOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return LOCO_ERR_INVALID;
    default:
        return LOCO_ERR_IO;
    }
}

/* ---- callbacks ---- */

static loco_status http_call_on_headers(http_xfer *x)
{
    if (x->headers_called)
        return LOCO_OK;
    x->headers_called = true;
    if (!x->req->on_headers)
        return LOCO_OK;
    long code = 0;
    char *ctype = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ctype);
    return x->req->on_headers(x->req->ctx, (int)code, ctype);
}

static size_t http_on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    http_xfer *x = ud;
    size_t n = size * nmemb;
    x->last_byte_ms = http_now_ms();
    loco_status st = http_call_on_headers(x);
    if (st == LOCO_OK && x->req->on_data && n > 0)
        st = x->req->on_data(x->req->ctx, p, n);
    if (st) {
        x->cb_status = st;
        return CURL_WRITEFUNC_ERROR;
    }
    return n;
}

static void http_trim(const char **s, size_t *n)
{
    while (*n > 0 && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && strchr(" \t\r\n", (*s)[*n - 1])) {
        (*n)--;
    }
}

/* One header line; status lines open a block, headers of 1xx blocks are skipped. */
static loco_status http_header_line(http_xfer *x, const char *p, size_t n)
{
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', n);
        x->in_final = !(sp && (size_t)(sp - p) + 1 < n && sp[1] == '1');
        return LOCO_OK;
    }
    const char *colon = memchr(p, ':', n);
    if (!colon || !x->in_final || !x->req->on_header)
        return LOCO_OK;
    const char *name = p;
    size_t nlen = (size_t)(colon - p);
    const char *val = colon + 1;
    size_t vlen = n - nlen - 1;
    http_trim(&name, &nlen);
    http_trim(&val, &vlen);
    char *line = malloc(nlen + vlen + 2);
    if (!line)
        return LOCO_ERR_NOMEM;
    memcpy(line, name, nlen);
    line[nlen] = '\0';
    memcpy(line + nlen + 1, val, vlen);
    line[nlen + 1 + vlen] = '\0';
    loco_status st = x->req->on_header(x->req->ctx, line, line + nlen + 1);
    free(line);
    return st;
}

static size_t http_on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    http_xfer *x = ud;
    size_t n = size * nmemb;
    x->last_byte_ms = http_now_ms();
    loco_status st = http_header_line(x, p, n);
    if (st) {
        x->cb_status = st;
        return 0;
    }
    return n;
}

/* ---- setting up and running a transfer ---- */

static loco_status http_build_headers(const http_client_request *req, struct curl_slist **out)
{
    struct curl_slist *l = NULL;
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        struct curl_slist *nl = curl_slist_append(l, req->headers[i]);
        if (!nl) {
            curl_slist_free_all(l);
            return LOCO_ERR_NOMEM;
        }
        l = nl;
    }
    /* No "Expect: 100-continue" round trip before bodies. */
    struct curl_slist *nl = curl_slist_append(l, "Expect:");
    if (!nl) {
        curl_slist_free_all(l);
        return LOCO_ERR_NOMEM;
    }
    *out = nl;
    return LOCO_OK;
}

static void http_setup(CURL *e, const http_client_request *req, struct curl_slist *hdrs,
                       http_xfer *x, char *errbuf)
{
    const char *method = req->method ? req->method : (req->body ? "POST" : "GET");
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms > 0 ? req->connect_timeout_ms
                                                 : HTTP_CLIENT_CONNECT_DEFAULT_MS);
    if (req->total_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->total_timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    if (req->body || strcmp(method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    }
    if (strcmp(method, "GET") == 0 && !req->body)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    else if (strcmp(method, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
}

/* Drives the transfer to its end, checking cancel and idle time between polls. Returns
 * LOCO_OK with *out_cc set when curl finished, else CANCELLED/TIMEOUT/IO. */
static loco_status http_run(http_conn *hc, http_xfer *x, CURLcode *out_cc)
{
    const http_client_request *req = x->req;
    x->last_byte_ms = http_now_ms();
    for (;;) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(hc->multi, &running);
        if (mc != CURLM_OK)
            return LOCO_ERR_IO;
        int left = 0;
        CURLMsg *msg = curl_multi_info_read(hc->multi, &left);
        if (msg && msg->msg == CURLMSG_DONE) {
            *out_cc = msg->data.result;
            return LOCO_OK;
        }
        if (req->cancel && __atomic_load_n(req->cancel, __ATOMIC_ACQUIRE))
            return LOCO_ERR_CANCELLED;
        if (req->idle_timeout_ms > 0 && http_now_ms() - x->last_byte_ms > (double)req->idle_timeout_ms)
            return LOCO_ERR_TIMEOUT;
        mc = curl_multi_poll(hc->multi, NULL, 0, HTTP_CLIENT_POLL_MS, NULL);
        if (mc != CURLM_OK)
            return LOCO_ERR_IO;
    }
}

static loco_status http_fail(loco_status st, CURLcode cc, const char *errbuf,
                             const http_client_request *req, loco_err *err)
{
    char url[HTTP_CLIENT_URL_SHOWN + 64];
    http_safe_url(req->url, url, sizeof(url));
    const char *method = req->method ? req->method : (req->body ? "POST" : "GET");
    if (st == LOCO_ERR_CANCELLED)
        return loco_err_set(err, st, "%s %s: cancelled", method, url);
    if (st == LOCO_ERR_TIMEOUT && cc == CURLE_OK)
        return loco_err_set(err, st, "%s %s: no data for %ld ms (idle timeout)", method, url,
                            req->idle_timeout_ms);
    const char *cause = errbuf[0] ? errbuf : cc ? curl_easy_strerror(cc) : "curl multi error";
    return loco_err_set(err, st, "%s %s: %s", method, url, cause);
}

loco_status http_client_do(http_client *c, const http_client_request *req, int *out_status,
                           loco_err *err)
{
    if (out_status)
        *out_status = 0;
    if (!c || !req || !req->url)
        return loco_err_set(err, LOCO_ERR_INVALID, "http client: a request with a URL is required");
    http_conn hc;
    if (!http_conn_get(c, &hc))
        return loco_err_set(err, LOCO_ERR_NOMEM, "http client: cannot create a curl handle");
    struct curl_slist *hdrs = NULL;
    if (http_build_headers(req, &hdrs)) {
        http_conn_put(c, &hc);
        return loco_err_set(err, LOCO_ERR_NOMEM, "http client: out of memory");
    }
    http_xfer x = {.req = req, .easy = hc.easy, .cb_status = LOCO_OK};
    char errbuf[CURL_ERROR_SIZE] = "";
    http_setup(hc.easy, req, hdrs, &x, errbuf);
    CURLcode cc = CURLE_OK;
    loco_status st = curl_multi_add_handle(hc.multi, hc.easy) == CURLM_OK ? LOCO_OK : LOCO_ERR_IO;
    if (st == LOCO_OK)
        st = http_run(&hc, &x, &cc);
    long code = 0;
    curl_easy_getinfo(hc.easy, CURLINFO_RESPONSE_CODE, &code);
    if (out_status)
        *out_status = (int)code;
    if (st == LOCO_OK && x.cb_status)
        st = x.cb_status; /* a callback stopped the transfer: its status, its message */
    else if (st == LOCO_OK && cc != CURLE_OK)
        st = http_fail(http_status_of(cc), cc, errbuf, req, err);
    else if (st == LOCO_OK && code > 0)
        st = http_call_on_headers(&x);
    else if (st)
        st = http_fail(st, CURLE_OK, errbuf, req, err);
    curl_multi_remove_handle(hc.multi, hc.easy);
    curl_easy_setopt(hc.easy, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(hc.easy, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    http_conn_put(c, &hc);
    return st;
}
