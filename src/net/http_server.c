/* http_server.c: HTTP/1.1 server, one thread per connection. An acceptor thread hands each
 * connection to a thread of its own, which reads a request (head and body within the idle
 * deadline), runs the handler on itself and writes the answer straight to the socket.
 * Every wait is a poll of at most HTTP_POLL_MS, so stopping needs no list of connections. */
#include "base/common.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/fault.h"
#include "base/json.h"
#include "net/http_parse.h"
#include "net/http_server.h"

/* How often waiting threads look at the socket and at the stopping flag. */
#define HTTP_POLL_MS 100
/* Bytes read from the socket at once. */
#define HTTP_READ_BLOCK 16384
/* After an error answer the server reads (and drops) what the client still sends, so that
 * closing does not reset the connection before the client has read the answer. */
#define HTTP_LINGER_MS 1000
#define HTTP_LINGER_MAX ((size_t)1 << 20)
#define HTTP_HEAD_OUT_MAX 8192

static const char http_msg_no_response[] = "internal error: the request handler did not respond";

struct http_server {
    http_server_config cfg; /* host points at the copy below */
    char *host;
    int listen_fd;
    int port;
    pthread_t acceptor;
    bool acceptor_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned conns; /* connection threads running (guarded by mu) */
    atomic_bool stopping;
    atomic_long refused, timed_out, bad_requests;
};

/* One connection, owned by its thread. */
typedef struct {
    http_server *srv;
    int fd;
    bool over_limit; /* accepted past max_connections: its request gets 503 */
    char remote[80];
    buf in;         /* bytes read and not consumed yet (a head, a body, pipelined bytes) */
    size_t scanned; /* bytes of in already searched for the end of the head */
    char why[160];  /* a formatted error message */
    char path[256]; /* the path of a request answered with an error before it was parsed */
} http_conn;

typedef struct {
    char *name;
    char *value;
} http_hdr;

typedef enum { HTTP_RESP_NONE, HTTP_RESP_WHOLE, HTTP_RESP_STREAM } http_resp_kind;

/* One exchange. The request side is written before the handler runs and read-only after;
 * mu guards the answer side, which the handler's helper threads may call too. */
struct http_response {
    http_conn *c;
    http_request req;
    http_parse_head head; /* pointers into head_bytes */
    char *head_bytes;
    char *path, *query; /* inside head_bytes */
    buf body;
    bool is_head; /* HEAD: headers only */
    bool close;   /* the connection ends after this answer */
    pthread_mutex_t mu;
    http_resp_kind kind;
    bool ended;
    bool broken; /* a write failed: the connection cannot carry another answer */
    atomic_bool gone;
    http_hdr *hdrs;
    size_t n_hdrs, cap_hdrs;
    void (*done_fn)(void *ctx);
    void *done_ctx;
    bool done_called;
};

/* ---- small helpers ---- */

static long http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool http_stopping(const http_server *s)
{
    return atomic_load(&s->stopping);
}

/* True when the peer closed or reset the connection (a pending request byte is not). */
static bool http_peer_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 529: return "Overloaded";
    default: return status < 300 ? "OK" : status < 500 ? "Error" : "Server Error";
    }
}

/* RFC 9110 IMF-fixdate, without the locale-dependent strftime names. */
static void http_date(char *out, size_t size)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = time(NULL);
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, size, "Thu, 01 Jan 1970 00:00:00 GMT");
        return;
    }
    snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Default error body: the Anthropic shape, which every loco client reads. */
static loco_status http_default_error(const char *path, int status, const char *message, buf *out)
{
    LOCO_UNUSED(path);
    const char *type = status == 413   ? "request_too_large"
                       : status == 503 ? "overloaded_error"
                       : status < 500  ? "invalid_request_error"
                                       : "api_error";
    loco_status st = buf_appendf(
        out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":", type);
    if (!st)
        st = json_append_str_lossy(out, message, strlen(message));
    if (!st)
        st = buf_appends(out, "}}");
    return st;
}

/* ---- socket I/O (connection thread, or a handler thread under the response mutex) ---- */

typedef enum { IO_OK = 0, IO_EOF, IO_TIMEOUT, IO_STOP, IO_ERROR } http_io;

/* Reads what is there (at most HTTP_READ_BLOCK bytes) into c->in, waiting until the
 * deadline (monotonic ms). */
static http_io http_read_some(http_conn *c, long deadline)
{
    for (;;) {
        if (http_stopping(c->srv))
            return IO_STOP;
        long left = deadline - http_now_ms();
        if (left <= 0)
            return IO_TIMEOUT;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&p, 1, left < HTTP_POLL_MS ? (int)left : HTTP_POLL_MS);
        if (pr < 0 && errno != EINTR)
            return IO_ERROR;
        if (pr <= 0)
            continue;
        char tmp[HTTP_READ_BLOCK];
        ssize_t n = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n == 0)
            return IO_EOF;
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            return IO_ERROR;
        }
        if (buf_append(&c->in, tmp, (size_t)n))
            return IO_ERROR;
        return IO_OK;
    }
}

/* Writes all of iov (modified), giving up when the client reads nothing for the idle
 * timeout, leaves, or the server stops. */
static http_io http_write_all(http_conn *c, struct iovec *iov, int cnt)
{
    long stall_ms = (long)c->srv->cfg.idle_timeout_s * 1000;
    long last = http_now_ms();
    while (cnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            cnt--;
            continue;
        }
        if (http_stopping(c->srv))
            return IO_STOP;
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return IO_ERROR;
            if (http_now_ms() - last >= stall_ms) {
                atomic_fetch_add(&c->srv->timed_out, 1);
                return IO_TIMEOUT;
            }
            struct pollfd p = {.fd = c->fd, .events = POLLOUT};
            if (poll(&p, 1, HTTP_POLL_MS) < 0 && errno != EINTR)
                return IO_ERROR;
            continue;
        }
        last = http_now_ms();
        size_t k = (size_t)n;
        while (cnt > 0 && k >= iov->iov_len) {
            k -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= k;
        }
    }
    return IO_OK;
}

static http_io http_write_buf(http_conn *c, const char *p, size_t n)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    return http_write_all(c, &iov, 1);
}

/* Closes the connection; after an error answer first reads what the client still sends
 * (bounded), so that the close does not reset the connection under the answer. */
static void http_close(http_conn *c, bool linger)
{
    if (linger && !http_stopping(c->srv) && shutdown(c->fd, SHUT_WR) == 0) {
        long deadline = http_now_ms() + HTTP_LINGER_MS;
        size_t drained = 0;
        while (drained < HTTP_LINGER_MAX) {
            buf_reset(&c->in);
            if (http_read_some(c, deadline) != IO_OK)
                break;
            drained += c->in.len;
        }
    }
    close(c->fd);
    c->fd = -1;
}

/* ---- the server's own answers ---- */

static void http_log(const http_conn *c, log_level level, const char *message, int status)
{
    log_msg(c->srv->cfg.log, level, "http: %s: %s: answered %d", c->remote, message, status);
}

/* Answers status with a JSON error body and Connection: close. */
static void http_send_error(http_conn *c, const char *path, int status, const char *message)
{
    http_server *s = c->srv;
    if (status != 503)
        atomic_fetch_add(&s->bad_requests, 1);
    http_log(c, status >= 500 ? LOG_WARN : LOG_DEBUG, message, status);
    buf body;
    buf_init(&body, 64 * 1024);
    loco_status st = s->cfg.error_body ? s->cfg.error_body(s->cfg.error_ctx, path ? path : "",
                                                           status, message, &body)
                                       : http_default_error(path, status, message, &body);
    if (st) {
        buf_reset(&body);
        http_default_error(path, status, "error", &body);
    }
    char date[40];
    http_date(date, sizeof(date));
    char head[512];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
                      status, http_reason(status), date, body.len,
                      status == 503 ? "Retry-After: 1\r\n" : "");
    struct iovec iov[2] = {{.iov_base = head, .iov_len = (size_t)hn},
                           {.iov_base = body.data, .iov_len = body.len}};
    http_write_all(c, iov, 2);
    buf_release(&body);
}

/* ---- reading a request (connection thread) ---- */

/* Drops the empty lines a client may send before a request line; true when it did. */
static bool http_skip_empty_lines(http_conn *c)
{
    size_t i = 0;
    while (i < c->in.len) {
        if (c->in.data[i] == '\n')
            i++;
        else if (c->in.data[i] == '\r' && i + 1 < c->in.len && c->in.data[i + 1] == '\n')
            i += 2;
        else
            break;
    }
    if (i)
        buf_consume(&c->in, i);
    return i > 0;
}

/* Outcome of reading: 0 a request is there; -1 close quietly; else the status to answer. */
static int http_read_head(http_conn *c, long deadline, size_t *out_len, const char **out_why)
{
    c->scanned = 0;
    for (;;) {
        if (http_skip_empty_lines(c))
            c->scanned = 0;
        size_t from = c->scanned > 2 ? c->scanned - 2 : 0;
        size_t n = http_parse_head_len(c->in.data ? c->in.data + from : "", c->in.len - from);
        if (n) {
            *out_len = from + n;
            return 0;
        }
        c->scanned = c->in.len;
        if (c->in.len >= HTTP_PARSE_HEAD_MAX) {
            bool line = memchr(c->in.data, '\n', c->in.len) != NULL;
            *out_why = line ? "request head too large" : "request line too long";
            return line ? 431 : 414;
        }
        http_io io = http_read_some(c, deadline);
        if (io == IO_TIMEOUT && c->in.len > 0) {
            atomic_fetch_add(&c->srv->timed_out, 1);
            *out_why = "the request did not arrive in time";
            return 408;
        }
        if (io == IO_TIMEOUT)
            atomic_fetch_add(&c->srv->timed_out, 1);
        if (io != IO_OK)
            return -1;
    }
}

static loco_status http_send_continue(http_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    return http_write_buf(c, cont, sizeof(cont) - 1) == IO_OK ? LOCO_OK : LOCO_ERR_IO;
}

/* Reads the body into r->body. 0, -1 (close quietly) or a status to answer. */
static int http_read_body(http_conn *c, http_response *r, long deadline, const char **out_why)
{
    const http_parse_head *h = &r->head;
    size_t max = c->srv->cfg.max_body;
    snprintf(c->why, sizeof(c->why), "request body is larger than the limit of %zu bytes", max);
    if (h->has_length && h->length > max) {
        *out_why = c->why;
        return 413;
    }
    if (!h->chunked && !h->length)
        return 0;
    if (h->expect_continue && c->in.len == 0 && http_send_continue(c))
        return -1;
    http_chunked ch;
    http_chunked_init(&ch);
    for (;;) {
        if (h->chunked) {
            size_t used = 0;
            int st = http_chunked_feed(&ch, c->in.data ? c->in.data : "", c->in.len, &r->body,
                                       &used, out_why);
            buf_consume(&c->in, used);
            if (st == 1)
                return 0;
            if (st == 413)
                *out_why = c->why;
            if (st)
                return st;
        } else {
            size_t want = (size_t)h->length - r->body.len;
            size_t k = c->in.len < want ? c->in.len : want;
            if (k && buf_append(&r->body, c->in.data, k)) {
                *out_why = "out of memory";
                return 500;
            }
            buf_consume(&c->in, k);
            if (r->body.len == (size_t)h->length)
                return 0;
        }
        http_io io = http_read_some(c, deadline);
        if (io == IO_TIMEOUT) {
            atomic_fetch_add(&c->srv->timed_out, 1);
            *out_why = "the request body did not arrive in time";
            return 408;
        }
        if (io != IO_OK)
            return -1;
    }
}

static http_response *http_resp_new(http_conn *c)
{
    http_response *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->c = c;
    buf_init(&r->body, c->srv->cfg.max_body);
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->gone, false);
    return r;
}

static void http_resp_free(http_response *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_hdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    free(r->hdrs);
    free(r->head_bytes);
    buf_release(&r->body);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Reads one whole request into r. 0, -1 (close quietly) or a status to answer (then
 * r->path may be set). */
static int http_read_request(http_conn *c, http_response *r, const char **out_why)
{
    unsigned wait_s = c->srv->cfg.idle_timeout_s;
    if (c->over_limit && wait_s > HTTP_SERVER_OVER_LIMIT_WAIT_S)
        wait_s = HTTP_SERVER_OVER_LIMIT_WAIT_S;
    long deadline = http_now_ms() + (long)wait_s * 1000;
    size_t head_len = 0;
    fault_arm_point();
    int st = http_read_head(c, deadline, &head_len, out_why);
    if (st)
        return st;
    r->head_bytes = malloc(head_len + 1);
    if (!r->head_bytes) {
        *out_why = "out of memory";
        return 500;
    }
    memcpy(r->head_bytes, c->in.data, head_len);
    r->head_bytes[head_len] = '\0';
    buf_consume(&c->in, head_len);
    st = http_parse_head_parse(r->head_bytes, head_len, &r->head, out_why);
    if (st)
        return st;
    r->close = r->head.close;
    r->is_head = !strcmp(r->head.method, "HEAD");
    st = http_parse_target(r->head.target, &r->path, &r->query, out_why);
    if (st)
        return st;
    if (c->over_limit)
        return 0; /* answered 503 without reading the body */
    return http_read_body(c, r, deadline, out_why);
}

/* ---- writing answers ---- */

static loco_status http_io_status(http_response *r, http_io io)
{
    if (io == IO_OK)
        return LOCO_OK;
    r->broken = true;
    atomic_store(&r->gone, true);
    return LOCO_ERR_CANCELLED;
}

/* Calls the done hook once; caller holds r->mu. */
static void http_done_locked(http_response *r)
{
    if (r->done_called)
        return;
    r->done_called = true;
    if (r->done_fn)
        r->done_fn(r->done_ctx);
}

/* Status line and headers into out; length < 0: a streamed body. */
static loco_status http_build_head(http_response *r, int status, const char *ctype,
                                   long long length, buf *out)
{
    char date[40];
    http_date(date, sizeof(date));
    loco_status st = buf_appendf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, http_reason(status),
                                 date);
    if (!st && ctype)
        st = buf_appendf(out, "Content-Type: %s\r\n", ctype);
    for (size_t i = 0; !st && i < r->n_hdrs; i++)
        st = buf_appendf(out, "%s: %s\r\n", r->hdrs[i].name, r->hdrs[i].value);
    if (!st && length >= 0)
        st = buf_appendf(out, "Content-Length: %lld\r\n", length);
    else if (!st && r->head.minor == 1)
        st = buf_appends(out, "Transfer-Encoding: chunked\r\n");
    else if (!st)
        r->close = true; /* HTTP/1.0 stream: the close ends the body */
    if (!st && r->close)
        st = buf_appends(out, "Connection: close\r\n");
    if (!st)
        st = buf_appends(out, "\r\n");
    return st;
}

/* Common checks of send and start; caller holds r->mu. */
static loco_status http_begin(http_response *r, int status, const char *content_type)
{
    if (r->kind != HTTP_RESP_NONE || status < 200 || status > 999 ||
        (content_type && strpbrk(content_type, "\r\n")))
        return LOCO_ERR_INVALID;
    if (http_response_client_gone(r)) {
        http_done_locked(r);
        return LOCO_ERR_CANCELLED;
    }
    return LOCO_OK;
}

loco_status http_response_send(http_response *r, int status, const char *content_type,
                               const char *body, size_t len)
{
    pthread_mutex_lock(&r->mu);
    loco_status st = http_begin(r, status, content_type);
    if (st) {
        pthread_mutex_unlock(&r->mu);
        return st;
    }
    r->kind = HTTP_RESP_WHOLE;
    r->ended = true;
    buf head;
    buf_init(&head, HTTP_HEAD_OUT_MAX);
    st = http_build_head(r, status, content_type, (long long)len, &head);
    http_done_locked(r);
    if (st) {
        r->broken = true;
    } else {
        struct iovec iov[2] = {{.iov_base = head.data, .iov_len = head.len},
                               {.iov_base = (void *)body, .iov_len = r->is_head ? 0 : len}};
        st = http_io_status(r, http_write_all(r->c, iov, 2));
    }
    pthread_mutex_unlock(&r->mu);
    buf_release(&head);
    return st;
}

loco_status http_response_start(http_response *r, int status, const char *content_type)
{
    pthread_mutex_lock(&r->mu);
    loco_status st = http_begin(r, status, content_type);
    if (st) {
        pthread_mutex_unlock(&r->mu);
        return st;
    }
    r->kind = HTTP_RESP_STREAM;
    buf head;
    buf_init(&head, HTTP_HEAD_OUT_MAX);
    st = http_build_head(r, status, content_type, -1, &head);
    if (st) {
        r->broken = true;
        r->ended = true;
        http_done_locked(r);
    } else {
        st = http_io_status(r, http_write_buf(r->c, head.data, head.len));
        if (st)
            http_done_locked(r);
    }
    pthread_mutex_unlock(&r->mu);
    buf_release(&head);
    return st;
}

/* Whether the body goes out chunked (HTTP/1.1 and not HEAD). */
static bool http_chunked_out(const http_response *r)
{
    return r->head.minor == 1;
}

loco_status http_response_write(http_response *r, const char *p, size_t n)
{
    pthread_mutex_lock(&r->mu);
    loco_status st = LOCO_OK;
    if (r->kind != HTTP_RESP_STREAM || r->ended)
        st = LOCO_ERR_INVALID;
    else if (r->broken || http_response_client_gone(r))
        st = LOCO_ERR_CANCELLED;
    if (st || n == 0 || r->is_head) {
        if (st == LOCO_ERR_CANCELLED)
            http_done_locked(r);
        pthread_mutex_unlock(&r->mu);
        return st;
    }
    char size_line[24];
    int k = snprintf(size_line, sizeof(size_line), "%zx\r\n", n);
    bool chunked = http_chunked_out(r);
    struct iovec iov[3] = {{.iov_base = size_line, .iov_len = chunked ? (size_t)k : 0},
                           {.iov_base = (void *)p, .iov_len = n},
                           {.iov_base = (void *)"\r\n", .iov_len = chunked ? 2 : 0}};
    st = http_io_status(r, http_write_all(r->c, iov, 3));
    if (st)
        http_done_locked(r);
    pthread_mutex_unlock(&r->mu);
    return st;
}

/* Ends a stream; caller holds r->mu. */
static loco_status http_end_locked(http_response *r)
{
    if (r->kind != HTTP_RESP_STREAM || r->ended)
        return LOCO_ERR_INVALID;
    r->ended = true;
    http_done_locked(r);
    if (r->broken)
        return LOCO_ERR_CANCELLED;
    if (r->is_head)
        return LOCO_OK;
    if (!http_chunked_out(r)) {
        r->close = true;
        return LOCO_OK;
    }
    static const char last[] = "0\r\n\r\n";
    return http_io_status(r, http_write_buf(r->c, last, sizeof(last) - 1));
}

loco_status http_response_end(http_response *r)
{
    pthread_mutex_lock(&r->mu);
    loco_status st = http_end_locked(r);
    pthread_mutex_unlock(&r->mu);
    return st;
}

static bool http_owned_header(const char *name)
{
    static const char *const owned[] = {"content-length", "transfer-encoding", "connection", "date",
                                        "content-type"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(owned); i++) {
        if (!strcasecmp(name, owned[i]))
            return true;
    }
    return false;
}

static bool http_bad_header_text(const char *s)
{
    return !s || strpbrk(s, "\r\n") != NULL;
}

loco_status http_response_add_header(http_response *r, const char *name, const char *value)
{
    if (http_bad_header_text(name) || http_bad_header_text(value) || !name[0] ||
        strchr(name, ':') || http_owned_header(name))
        return LOCO_ERR_INVALID;
    pthread_mutex_lock(&r->mu);
    loco_status st = LOCO_ERR_INVALID;
    if (r->kind == HTTP_RESP_NONE) {
        st = LOCO_OK;
        if (r->n_hdrs == r->cap_hdrs) {
            size_t ncap = r->cap_hdrs ? r->cap_hdrs * 2 : 8;
            http_hdr *v = realloc(r->hdrs, ncap * sizeof(*v));
            if (v) {
                r->hdrs = v;
                r->cap_hdrs = ncap;
            } else {
                st = LOCO_ERR_NOMEM;
            }
        }
        char *n = st ? NULL : strdup(name);
        char *v = st ? NULL : strdup(value);
        if (!st && (!n || !v)) {
            free(n);
            free(v);
            st = LOCO_ERR_NOMEM;
        } else if (!st) {
            r->hdrs[r->n_hdrs].name = n;
            r->hdrs[r->n_hdrs].value = v;
            r->n_hdrs++;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}

void http_response_on_done(http_response *r, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&r->mu);
    r->done_fn = fn;
    r->done_ctx = ctx;
    pthread_mutex_unlock(&r->mu);
}

bool http_response_client_gone(const http_response *r)
{
    if (atomic_load(&r->gone) || http_stopping(r->c->srv))
        return true;
    return http_peer_closed(r->c->fd);
}

/* ---- request-side API ---- */

const char *http_request_header(const http_request *req, const char *name)
{
    const http_response *r = req ? req->internal_ : NULL;
    if (!r || !name)
        return NULL;
    for (size_t i = 0; i < r->head.n_headers; i++) {
        if (strcasecmp(r->head.headers[i].name, name) == 0)
            return r->head.headers[i].value;
    }
    return NULL;
}

void http_request_each_header(const http_request *req,
                              void (*fn)(void *ctx, const char *name, const char *value),
                              void *ctx)
{
    const http_response *r = req ? req->internal_ : NULL;
    if (!r || !fn)
        return;
    for (size_t i = 0; i < r->head.n_headers; i++)
        fn(ctx, r->head.headers[i].name, r->head.headers[i].value);
}

/* ---- one connection ---- */

/* The path of a request target t[0..n) (not decoded, no query), or of the request line
 * when line is set, for the shape of an error answered before the head was parsed. */
static const char *http_guess_path(http_conn *c, const char *t, size_t n, bool line)
{
    c->path[0] = '\0';
    if (!t)
        return c->path;
    const char *end = t + n;
    if (line) {
        const char *nl = memchr(t, '\n', n);
        end = nl ? nl : end;
        const char *sp = memchr(t, ' ', (size_t)(end - t));
        if (!sp)
            return c->path;
        t = sp + 1;
    }
    size_t k = 0;
    while (t + k < end && t[k] != ' ' && t[k] != '?' && t[k] != '\r' && k + 1 < sizeof(c->path)) {
        c->path[k] = t[k];
        k++;
    }
    c->path[k] = '\0';
    return c->path;
}

/* Runs the handler for a request read into r; false when the connection must close. */
static bool http_serve(http_conn *c, http_response *r)
{
    http_server *s = c->srv;
    r->req.method = r->head.method;
    r->req.path = r->path;
    r->req.query = r->query;
    r->req.body = buf_str(&r->body);
    r->req.body_len = r->body.len;
    r->req.remote_addr = c->remote;
    r->req.internal_ = r;
    s->cfg.handler(s->cfg.handler_ctx, &r->req, r);
    pthread_mutex_lock(&r->mu);
    bool answered = r->kind != HTTP_RESP_NONE;
    if (r->kind == HTTP_RESP_STREAM && !r->ended)
        http_end_locked(r);
    http_done_locked(r);
    bool keep = answered && !r->broken && !r->close && !http_stopping(s);
    pthread_mutex_unlock(&r->mu);
    if (!answered) {
        http_send_error(c, r->path, 500, http_msg_no_response);
        return false;
    }
    return keep;
}

static void http_conn_loop(http_conn *c)
{
    http_server *s = c->srv;
    bool linger = false;
    while (!http_stopping(s)) {
        http_response *r = http_resp_new(c);
        if (!r)
            break;
        const char *why = "";
        int st = http_read_request(c, r, &why);
        if (st == 0 && c->over_limit) {
            atomic_fetch_add(&s->refused, 1);
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "the server has its maximum of %u connections open; retry shortly",
                     s->cfg.max_connections);
            http_send_error(c, r->path, 503, msg);
            linger = true;
            st = -1;
        } else if (st > 0) {
            const char *path = r->path;
            if (!path && r->head.target) /* parsed as far as the request line */
                path = http_guess_path(c, r->head.target, strlen(r->head.target), false);
            else if (!path && !r->head_bytes) /* the head did not fit */
                path = http_guess_path(c, c->in.data, c->in.len, true);
            http_send_error(c, path, st, why);
            linger = true;
        }
        bool keep = st == 0 && http_serve(c, r);
        http_resp_free(r);
        if (!keep)
            break;
    }
    http_close(c, linger);
}

static void http_conn_free(http_conn *c)
{
    buf_release(&c->in);
    free(c);
}

static void http_conn_exit(http_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->conns--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void *http_conn_main(void *arg)
{
    http_conn *c = arg;
    http_server *s = c->srv;
    http_conn_loop(c);
    http_conn_free(c);
    http_conn_exit(s);
    return NULL;
}

static void http_format_addr(const struct sockaddr *sa, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(out, size, "%s:%u", host, (unsigned)ntohs(in->sin_port));
        return;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, size, "[%s]:%u", host, port);
}

/* Starts a thread for an accepted socket; closes it when that fails. */
static void http_spawn(http_server *s, int fd, const struct sockaddr *sa)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    http_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->srv = s;
    c->fd = fd;
    buf_init(&c->in, HTTP_PARSE_HEAD_MAX + HTTP_READ_BLOCK);
    http_format_addr(sa, c->remote, sizeof(c->remote));
    pthread_mutex_lock(&s->mu);
    c->over_limit = s->conns >= s->cfg.max_connections;
    s->conns++;
    pthread_mutex_unlock(&s->mu);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, http_conn_main, c);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        close(fd);
        http_conn_free(c);
        http_conn_exit(s);
    }
}

static void *http_accept_main(void *arg)
{
    http_server *s = arg;
    unsigned hard_max = s->cfg.max_connections + HTTP_SERVER_CONN_RESERVE;
    while (!http_stopping(s)) {
        pthread_mutex_lock(&s->mu);
        bool full = s->conns >= hard_max;
        pthread_mutex_unlock(&s->mu);
        struct pollfd p = {.fd = s->listen_fd, .events = full ? 0 : POLLIN};
        int pr = poll(&p, 1, HTTP_POLL_MS);
        if (full || pr <= 0 || !(p.revents & POLLIN))
            continue;
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int fd = accept4(s->listen_fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                poll(NULL, 0, HTTP_POLL_MS); /* out of descriptors: let connections end */
            continue;
        }
        http_spawn(s, fd, (const struct sockaddr *)&sa);
    }
    return NULL;
}

/* ---- server ---- */

static loco_status http_listen(http_server *s, loco_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char ports[16];
    snprintf(ports, sizeof(ports), "%d", s->cfg.port);
    int rc = getaddrinfo(s->host, ports, &hints, &res);
    if (rc != 0 || !res)
        return loco_err_set(err, LOCO_ERR_INVALID, "cannot resolve listen address '%s': %s",
                            s->host, gai_strerror(rc));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    int e = 0;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0)
        e = errno ? errno : EINVAL;
    freeaddrinfo(res);
    if (e) {
        if (fd >= 0)
            close(fd);
        return loco_err_set(err, LOCO_ERR_IO, "cannot listen on %s:%d: %s", s->host, s->cfg.port,
                            strerror(e));
    }
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    s->port = s->cfg.port;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        s->port = sa.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&sa)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&sa)->sin_port);
    s->listen_fd = fd;
    return LOCO_OK;
}

static void http_server_free(http_server *s)
{
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->host);
    free(s);
}

loco_status http_server_start(const http_server_config *cfg, http_server **out, loco_err *err)
{
    *out = NULL;
    if (!cfg || !cfg->handler || cfg->port < 0 || cfg->port > 65535)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "http server: a handler and a port in 0..65535 are required");
    http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return loco_err_set(err, LOCO_ERR_NOMEM, "http server: out of memory");
    s->listen_fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->stopping, false);
    atomic_init(&s->refused, 0);
    atomic_init(&s->timed_out, 0);
    atomic_init(&s->bad_requests, 0);
    s->cfg = *cfg;
    s->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
    if (!s->host) {
        http_server_free(s);
        return loco_err_set(err, LOCO_ERR_NOMEM, "http server: out of memory");
    }
    s->cfg.host = s->host;
    if (!s->cfg.max_body)
        s->cfg.max_body = HTTP_SERVER_MAX_BODY_DEFAULT;
    if (!s->cfg.max_connections)
        s->cfg.max_connections = HTTP_SERVER_MAX_CONNECTIONS_DEFAULT;
    if (!s->cfg.idle_timeout_s)
        s->cfg.idle_timeout_s = HTTP_SERVER_IDLE_TIMEOUT_DEFAULT;
    loco_status st = http_listen(s, err);
    if (st) {
        http_server_free(s);
        return st;
    }
    /* *out is set before the first handler can run, so a handler may use it (the gateway
     * reads its server's counters from the handler) */
    *out = s;
    if (pthread_create(&s->acceptor, NULL, http_accept_main, s) != 0) {
        *out = NULL;
        http_server_free(s);
        return loco_err_set(err, LOCO_ERR_NOMEM, "http server: cannot start a thread");
    }
    s->acceptor_started = true;
    return LOCO_OK;
}

int http_server_port(const http_server *s)
{
    return s->port;
}

void http_server_get_stats(http_server *s, http_server_stats *out)
{
    pthread_mutex_lock(&s->mu);
    out->open = (long)s->conns;
    pthread_mutex_unlock(&s->mu);
    out->refused = atomic_load(&s->refused);
    out->timed_out = atomic_load(&s->timed_out);
    out->bad_requests = atomic_load(&s->bad_requests);
}

void http_server_stop(http_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, true);
    if (s->acceptor_started)
        pthread_join(s->acceptor, NULL);
    close(s->listen_fd);
    s->listen_fd = -1;
    pthread_mutex_lock(&s->mu);
    while (s->conns > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    http_server_free(s);
}
