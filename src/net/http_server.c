/* http_server.c: HTTP server over libmicrohttpd (thread per connection). The connection
 * thread collects the body, starts the handler on a thread of its own and waits until the
 * handler answers; streamed bytes pass through a bounded queue that MHD's reader drains. */
#include "base/common.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "net/http_server.h"

/* Bytes a streamed response may queue ahead of the socket before write blocks. */
#define HTTP_STREAM_QUEUE_MAX ((size_t)64 * 1024)
/* Per-connection memory for MHD (request line + headers, write buffer). */
#define HTTP_CONN_MEMORY_LIMIT ((size_t)256 * 1024)
/* How often waiting threads look at the socket and at the stopping flag. */
#define HTTP_POLL_MS 100
#define HTTP_STREAM_BLOCK 16384

static const char http_default_413[] =
    "{\"type\":\"error\",\"error\":{\"type\":\"request_too_large\","
    "\"message\":\"request body too large\"}}";
static const char http_body_500[] =
    "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
    "\"message\":\"internal error: the request handler did not respond\"}}";

struct http_server {
    struct MHD_Daemon *mhd;
    http_server_config cfg; /* host and error_body_413 point at the copies below */
    char *host;
    char *error_body_413;
    int port;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned handlers; /* handler threads still running */
    atomic_bool stopping;
};

typedef struct {
    char *name;
    char *value;
} http_hdr;

typedef struct {
    http_hdr *v;
    size_t n, cap;
} http_hdr_list;

typedef enum { HTTP_RESP_NONE, HTTP_RESP_WHOLE, HTTP_RESP_STREAM } http_resp_kind;

/* One exchange, shared by the connection thread, the handler thread and MHD's response
 * object; each holds a reference. mu guards everything below it except fields set before
 * the handler thread starts (request side) and those only the connection thread uses. */
struct http_response {
    http_server *srv;
    int fd;                      /* connection socket; used on the connection thread only */
    struct MHD_Connection *conn; /* valid on the connection thread only */
    bool headers_seen;           /* first access-handler call done */
    bool too_large;
    bool answered;               /* a response was queued to MHD */
    /* request (written before the handler thread starts, read-only afterwards) */
    char *query;
    char *method;
    char *path;
    char remote[80];
    buf body;
    http_hdr_list req_hdrs;
    http_request req;
    /* shared */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    atomic_bool gone;
    http_resp_kind kind;
    int status;
    char *content_type;
    http_hdr_list resp_hdrs;
    char *whole;
    size_t whole_len;
    buf queue;
    bool ended;
    bool handler_done;
};

/* ---- small helpers ---- */

static void http_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* Waits on cv for at most HTTP_POLL_MS; returns true on timeout. */
static bool http_timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)HTTP_POLL_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(cv, mu, &ts) == ETIMEDOUT;
}

/* True when the peer closed or reset the connection (a pending request byte is not). */
static bool http_peer_closed(int fd)
{
    if (fd < 0)
        return false;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static void http_hdrs_free(http_hdr_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        free(l->v[i].value);
    }
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static loco_status http_hdrs_add(http_hdr_list *l, const char *name, const char *value)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 8;
        http_hdr *v = realloc(l->v, ncap * sizeof(*v));
        if (!v)
            return LOCO_ERR_NOMEM;
        l->v = v;
        l->cap = ncap;
    }
    char *n = strdup(name);
    char *val = strdup(value);
    if (!n || !val) {
        free(n);
        free(val);
        return LOCO_ERR_NOMEM;
    }
    l->v[l->n].name = n;
    l->v[l->n].value = val;
    l->n++;
    return LOCO_OK;
}

static bool http_resp_is_gone(const http_response *r)
{
    return atomic_load(&r->gone) || atomic_load(&r->srv->stopping);
}

/* Caller holds r->mu. */
static void http_mark_gone(http_response *r)
{
    atomic_store(&r->gone, true);
    pthread_cond_broadcast(&r->cv);
}

/* MHD closes connections that were idle longer than the timeout once control returns to
 * it; time spent waiting on the handler is not idleness, so restart the clock. Setting
 * the timeout from 0 makes MHD take the current time as the last activity. */
static void http_touch(const http_response *r, struct MHD_Connection *conn)
{
    unsigned t = r->srv->cfg.connection_timeout_s;
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, t);
}

/* ---- exchange lifetime ---- */

static http_response *http_resp_new(http_server *srv, const char *uri)
{
    http_response *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    const char *q = strchr(uri, '?');
    r->query = strdup(q ? q + 1 : "");
    if (!r->query) {
        free(r);
        return NULL;
    }
    r->srv = srv;
    r->fd = -1;
    r->refs = 1;
    atomic_init(&r->gone, false);
    buf_init(&r->body, srv->cfg.max_body);
    buf_init(&r->queue, HTTP_STREAM_QUEUE_MAX);
    pthread_mutex_init(&r->mu, NULL);
    http_cond_init(&r->cv);
    return r;
}

static void http_resp_unref(http_response *r)
{
    pthread_mutex_lock(&r->mu);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->query);
    free(r->method);
    free(r->path);
    buf_release(&r->body);
    buf_release(&r->queue);
    http_hdrs_free(&r->req_hdrs);
    http_hdrs_free(&r->resp_hdrs);
    free(r->content_type);
    free(r->whole);
    free(r);
}

static void http_resp_ref(http_response *r)
{
    pthread_mutex_lock(&r->mu);
    r->refs++;
    pthread_mutex_unlock(&r->mu);
}

/* ---- MHD callbacks: connection and request lifetime ---- */

static void *http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    http_response *r = http_resp_new(cls, uri ? uri : "");
    if (!r)
        return NULL;
    r->conn = conn;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci)
        r->fd = ci->connect_fd;
    return r;
}

static void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    LOCO_UNUSED(cls);
    LOCO_UNUSED(conn);
    http_response *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    pthread_mutex_lock(&r->mu);
    r->conn = NULL;
    r->fd = -1;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        http_mark_gone(r);
    pthread_mutex_unlock(&r->mu);
    http_resp_unref(r);
}

static void http_on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                               enum MHD_ConnectionNotificationCode toe)
{
    LOCO_UNUSED(cls);
    LOCO_UNUSED(socket_ctx);
    if (toe != MHD_CONNECTION_NOTIFY_STARTED)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int one = 1;
    if (ci)
        (void)setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- queuing responses to MHD (connection thread) ---- */

static enum MHD_Result http_queue_buffer(struct MHD_Connection *conn, int status,
                                         const char *ctype, const char *body, size_t len,
                                         const http_hdr_list *hdrs)
{
    struct MHD_Response *mr =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!mr)
        return MHD_NO;
    if (ctype)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    for (size_t i = 0; hdrs && i < hdrs->n; i++)
        MHD_add_response_header(mr, hdrs->v[i].name, hdrs->v[i].value);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, mr);
    MHD_destroy_response(mr);
    return ret;
}

static ssize_t http_stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    LOCO_UNUSED(pos);
    http_response *r = cls;
    pthread_mutex_lock(&r->mu);
    ssize_t ret;
    for (;;) {
        if (http_peer_closed(r->fd))
            http_mark_gone(r);
        if (r->queue.len > 0 && !http_resp_is_gone(r)) {
            size_t n = r->queue.len < max ? r->queue.len : max;
            memcpy(out, r->queue.data, n);
            buf_consume(&r->queue, n);
            pthread_cond_broadcast(&r->cv);
            ret = (ssize_t)n;
            break;
        }
        if (http_resp_is_gone(r)) {
            ret = MHD_CONTENT_READER_END_WITH_ERROR;
            break;
        }
        if (r->ended) {
            ret = MHD_CONTENT_READER_END_OF_STREAM;
            break;
        }
        http_timed_wait(&r->cv, &r->mu);
    }
    struct MHD_Connection *conn = r->conn;
    pthread_mutex_unlock(&r->mu);
    if (ret > 0 && conn)
        http_touch(r, conn);
    return ret;
}

static void http_stream_free(void *cls)
{
    http_response *r = cls;
    pthread_mutex_lock(&r->mu);
    if (!r->ended)
        http_mark_gone(r);
    pthread_mutex_unlock(&r->mu);
    http_resp_unref(r);
}

static enum MHD_Result http_queue_stream(http_response *r, struct MHD_Connection *conn)
{
    struct MHD_Response *mr = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK, http_stream_reader, r, http_stream_free);
    if (!mr)
        return MHD_NO;
    http_resp_ref(r); /* released by http_stream_free */
    if (r->content_type)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    for (size_t i = 0; i < r->resp_hdrs.n; i++)
        MHD_add_response_header(mr, r->resp_hdrs.v[i].name, r->resp_hdrs.v[i].value);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    return ret;
}

static enum MHD_Result http_queue_413(http_response *r, struct MHD_Connection *conn)
{
    r->answered = true;
    const char *body = r->srv->error_body_413 ? r->srv->error_body_413 : http_default_413;
    return http_queue_buffer(conn, 413, "application/json", body,
                             strlen(body), NULL);
}

/* ---- running the handler ---- */

static void *http_handler_main(void *arg)
{
    http_response *r = arg;
    http_server *srv = r->srv;
    srv->cfg.handler(srv->cfg.handler_ctx, &r->req, r);
    pthread_mutex_lock(&r->mu);
    r->handler_done = true;
    if (r->kind == HTTP_RESP_STREAM)
        r->ended = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    http_resp_unref(r);
    pthread_mutex_lock(&srv->mu);
    srv->handlers--;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

static enum MHD_Result http_copy_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    LOCO_UNUSED(kind);
    http_response *r = cls;
    if (key && http_hdrs_add(&r->req_hdrs, key, value ? value : ""))
        return MHD_NO;
    return MHD_YES;
}

static void http_format_addr(const struct sockaddr *sa, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(out, size, "%s:%u", host, port);
        return;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, size, "[%s]:%u", host, port);
}

/* Fills r->req from the connection; false on allocation failure. */
static bool http_build_request(http_response *r, struct MHD_Connection *conn, const char *url,
                               const char *method)
{
    r->method = strdup(method ? method : "");
    r->path = strdup(url ? url : "");
    if (!r->method || !r->path)
        return false;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, http_copy_header, r);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    http_format_addr(ci ? ci->client_addr : NULL, r->remote, sizeof(r->remote));
    r->req.method = r->method;
    r->req.path = r->path;
    r->req.query = r->query;
    r->req.body = buf_str(&r->body);
    r->req.body_len = r->body.len;
    r->req.remote_addr = r->remote;
    r->req.internal_ = r;
    return true;
}

static bool http_spawn_handler(http_response *r)
{
    http_server *srv = r->srv;
    http_resp_ref(r);
    pthread_mutex_lock(&srv->mu);
    srv->handlers++;
    pthread_mutex_unlock(&srv->mu);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, http_handler_main, r);
    pthread_attr_destroy(&attr);
    if (rc == 0)
        return true;
    pthread_mutex_lock(&srv->mu);
    srv->handlers--;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    http_resp_unref(r);
    return false;
}

/* Runs the handler and waits (watching the socket) until it answers or finishes. */
static enum MHD_Result http_dispatch(http_response *r, struct MHD_Connection *conn,
                                     const char *url, const char *method)
{
    if (!http_build_request(r, conn, url, method) || !http_spawn_handler(r)) {
        r->answered = true;
        return http_queue_buffer(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json",
                                 http_body_500, strlen(http_body_500), NULL);
    }
    pthread_mutex_lock(&r->mu);
    while (r->kind == HTTP_RESP_NONE && !r->handler_done && !http_resp_is_gone(r)) {
        if (http_timed_wait(&r->cv, &r->mu) && http_peer_closed(r->fd))
            http_mark_gone(r);
    }
    http_resp_kind kind = r->kind;
    bool gone = http_resp_is_gone(r);
    char *whole = r->whole;
    r->whole = NULL;
    pthread_mutex_unlock(&r->mu);
    /* After kind is set the handler no longer touches status, type or headers. */
    r->answered = true;
    if (gone) {
        free(whole);
        return MHD_NO;
    }
    http_touch(r, conn);
    enum MHD_Result ret;
    if (kind == HTTP_RESP_WHOLE)
        ret = http_queue_buffer(conn, r->status, r->content_type, whole ? whole : "",
                                r->whole_len, &r->resp_hdrs);
    else if (kind == HTTP_RESP_STREAM)
        ret = http_queue_stream(r, conn);
    else
        ret = http_queue_buffer(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json",
                                http_body_500, strlen(http_body_500), NULL);
    free(whole);
    return ret;
}

/* First call for a request: refuse a declared body over the limit before reading it. */
static enum MHD_Result http_on_headers(http_response *r, struct MHD_Connection *conn)
{
    r->headers_seen = true;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return MHD_YES;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(cl, &end, 10);
    if (errno == 0 && end != cl && v > r->srv->cfg.max_body) {
        r->too_large = true;
        return http_queue_413(r, conn);
    }
    return MHD_YES;
}

static enum MHD_Result http_on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    LOCO_UNUSED(version);
    http_server *srv = cls;
    http_response *r = *con_cls;
    if (!r || atomic_load(&srv->stopping))
        return MHD_NO;
    r->conn = conn;
    if (!r->headers_seen)
        return http_on_headers(r, conn);
    if (*upload_data_size > 0) {
        if (!r->too_large && !r->answered &&
            buf_append(&r->body, upload_data, *upload_data_size) != LOCO_OK) {
            r->too_large = true;
            buf_release(&r->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->answered)
        return MHD_YES;
    if (r->too_large)
        return http_queue_413(r, conn);
    return http_dispatch(r, conn, url, method);
}

/* ---- handler-side API ---- */

static http_response *http_req_resp(const http_request *req)
{
    return req ? req->internal_ : NULL;
}

const char *http_request_header(const http_request *req, const char *name)
{
    http_response *r = http_req_resp(req);
    if (!r || !name)
        return NULL;
    for (size_t i = 0; i < r->req_hdrs.n; i++) {
        if (strcasecmp(r->req_hdrs.v[i].name, name) == 0)
            return r->req_hdrs.v[i].value;
    }
    return NULL;
}

void http_request_each_header(const http_request *req,
                              void (*fn)(void *ctx, const char *name, const char *value),
                              void *ctx)
{
    http_response *r = http_req_resp(req);
    if (!r || !fn)
        return;
    for (size_t i = 0; i < r->req_hdrs.n; i++)
        fn(ctx, r->req_hdrs.v[i].name, r->req_hdrs.v[i].value);
}

static bool http_bad_header_text(const char *s)
{
    return !s || strpbrk(s, "\r\n") != NULL;
}

loco_status http_response_add_header(http_response *r, const char *name, const char *value)
{
    if (http_bad_header_text(name) || http_bad_header_text(value) || !name[0] ||
        strchr(name, ':'))
        return LOCO_ERR_INVALID;
    pthread_mutex_lock(&r->mu);
    loco_status st = r->kind == HTTP_RESP_NONE ? http_hdrs_add(&r->resp_hdrs, name, value)
                                                : LOCO_ERR_INVALID;
    pthread_mutex_unlock(&r->mu);
    return st;
}

/* Common part of send and start; caller holds r->mu. */
static loco_status http_begin(http_response *r, http_resp_kind kind, int status,
                              const char *content_type)
{
    if (r->kind != HTTP_RESP_NONE || r->handler_done || status < 100 || status > 999 ||
        (content_type && http_bad_header_text(content_type)))
        return LOCO_ERR_INVALID;
    if (http_resp_is_gone(r))
        return LOCO_ERR_CANCELLED;
    if (content_type) {
        r->content_type = strdup(content_type);
        if (!r->content_type)
            return LOCO_ERR_NOMEM;
    }
    r->status = status;
    r->kind = kind;
    pthread_cond_broadcast(&r->cv);
    return LOCO_OK;
}

loco_status http_response_send(http_response *r, int status, const char *content_type,
                               const char *body, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return LOCO_ERR_NOMEM;
    if (len)
        memcpy(copy, body, len);
    copy[len] = '\0';
    pthread_mutex_lock(&r->mu);
    loco_status st = http_begin(r, HTTP_RESP_WHOLE, status, content_type);
    if (st == LOCO_OK) {
        r->whole = copy;
        r->whole_len = len;
        copy = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    free(copy);
    return st;
}

loco_status http_response_start(http_response *r, int status, const char *content_type)
{
    pthread_mutex_lock(&r->mu);
    loco_status st = http_begin(r, HTTP_RESP_STREAM, status, content_type);
    pthread_mutex_unlock(&r->mu);
    return st;
}

loco_status http_response_write(http_response *r, const char *p, size_t n)
{
    pthread_mutex_lock(&r->mu);
    loco_status st = LOCO_OK;
    if (r->kind != HTTP_RESP_STREAM || r->ended)
        st = LOCO_ERR_INVALID;
    while (st == LOCO_OK && n > 0) {
        if (http_resp_is_gone(r)) {
            st = LOCO_ERR_CANCELLED;
            break;
        }
        size_t space = HTTP_STREAM_QUEUE_MAX - r->queue.len;
        if (space == 0) {
            http_timed_wait(&r->cv, &r->mu);
            continue;
        }
        size_t k = n < space ? n : space;
        st = buf_append(&r->queue, p, k);
        p += k;
        n -= k;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}

loco_status http_response_end(http_response *r)
{
    pthread_mutex_lock(&r->mu);
    loco_status st = LOCO_OK;
    if (r->kind != HTTP_RESP_STREAM || r->ended)
        st = LOCO_ERR_INVALID;
    r->ended = r->ended || st == LOCO_OK;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return st;
}

bool http_response_client_gone(const http_response *r)
{
    return http_resp_is_gone(r);
}

/* ---- server ---- */

static loco_status http_resolve(const char *host, int port, struct sockaddr_storage *out,
                                socklen_t *out_len, loco_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char ports[16];
    snprintf(ports, sizeof(ports), "%d", port);
    int rc = getaddrinfo(host, ports, &hints, &res);
    if (rc != 0 || !res)
        return loco_err_set(err, LOCO_ERR_INVALID, "cannot resolve listen address '%s': %s",
                            host, gai_strerror(rc));
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *out_len = res->ai_addrlen;
    freeaddrinfo(res);
    return LOCO_OK;
}

static void http_server_free(http_server *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->host);
    free(s->error_body_413);
    free(s);
}

static loco_status http_server_init(http_server *s, const http_server_config *cfg)
{
    s->cfg = *cfg;
    s->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
    s->error_body_413 = cfg->error_body_413 ? strdup(cfg->error_body_413) : NULL;
    if (!s->host || (cfg->error_body_413 && !s->error_body_413))
        return LOCO_ERR_NOMEM;
    s->cfg.host = s->host;
    s->cfg.error_body_413 = s->error_body_413;
    if (!s->cfg.max_body)
        s->cfg.max_body = HTTP_SERVER_MAX_BODY_DEFAULT;
    if (!s->cfg.max_connections)
        s->cfg.max_connections = 1024;
    if (!s->cfg.connection_timeout_s)
        s->cfg.connection_timeout_s = 600;
    return LOCO_OK;
}

static struct MHD_Daemon *http_start_mhd(http_server *s, const struct sockaddr_storage *sa)
{
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC;
    if (sa->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    return MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, http_on_access, s, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)sa, MHD_OPTION_CONNECTION_LIMIT, s->cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.connection_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_CONN_MEMORY_LIMIT,
        MHD_OPTION_URI_LOG_CALLBACK, http_on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
        http_on_connection, s, MHD_OPTION_END);
}

loco_status http_server_start(const http_server_config *cfg, http_server **out, loco_err *err)
{
    *out = NULL;
    if (!cfg || !cfg->handler || cfg->port < 0 || cfg->port > 65535)
        return loco_err_set(err, LOCO_ERR_INVALID, "http server: a handler and a port in 0..65535 are required");
    http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return loco_err_set(err, LOCO_ERR_NOMEM, "http server: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    http_cond_init(&s->cv);
    atomic_init(&s->stopping, false);
    loco_status st = http_server_init(s, cfg);
    if (st) {
        http_server_free(s);
        return loco_err_set(err, st, "http server: out of memory");
    }
    struct sockaddr_storage sa;
    socklen_t salen;
    st = http_resolve(s->host, cfg->port, &sa, &salen, err);
    if (st) {
        http_server_free(s);
        return st;
    }
    s->mhd = http_start_mhd(s, &sa);
    if (!s->mhd) {
        int e = errno;
        st = loco_err_set(err, LOCO_ERR_IO, "cannot listen on %s:%d: %s", s->host, cfg->port,
                          e ? strerror(e) : "libmicrohttpd refused to start");
        http_server_free(s);
        return st;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    *out = s;
    return LOCO_OK;
}

int http_server_port(const http_server *s)
{
    return s->port;
}

void http_server_stop(http_server *s)
{
    if (!s)
        return;
    MHD_socket lfd = MHD_quiesce_daemon(s->mhd);
    atomic_store(&s->stopping, true);
    pthread_mutex_lock(&s->mu);
    while (s->handlers > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    MHD_stop_daemon(s->mhd);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    http_server_free(s);
}
