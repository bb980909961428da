/* http_server.h: the HTTP/1.1 server the gateway (`loco serve`) stands on: one thread per
 * connection, which reads each request (bounded in size and in time), runs the handler and
 * writes its answer, whole or streamed (chunked); a client that goes away is reported to
 * the handler. Every answer the server gives by itself is a JSON error body. Part of net/. */
#ifndef LOCO_HTTP_SERVER_H
#define LOCO_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/status.h"

typedef struct http_server http_server;     /* opaque */
typedef struct http_response http_response; /* opaque, one per request */

/* One request, valid (with every string in it) until the handler returns. */
typedef struct {
    const char *method, *path; /* path (percent-decoded) without the query string */
    const char *query;         /* raw query string after '?', or "" */
    const char *body;          /* whole body, NUL-terminated; "" when none */
    size_t body_len;
    const char *remote_addr;   /* "127.0.0.1:port" or "[::1]:port" */
    void *internal_;           /* for header lookup */
} http_request;

/* Value of the first request header called name (case-insensitive); NULL if absent.
 * Borrowed: valid until the handler returns. */
const char *http_request_header(const http_request *r, const char *name);
/* Calls fn(ctx, name, value) for every request header in the order received. */
void http_request_each_header(const http_request *r,
                              void (*fn)(void *ctx, const char *name, const char *value),
                              void *ctx);

/* Runs on the connection's thread; may block as long as it likes (the connection's
 * idle timeout does not run meanwhile). */
typedef void (*http_handler_fn)(void *ctx, const http_request *req, http_response *resp);

/* Writes the JSON body of an answer the server gives by itself (status 400, 408, 413, 414,
 * 417, 431, 500, 501, 503 or 505; message says what was wrong) into out. path is the
 * request's path when it was read ("" otherwise), so the body can take the shape of the
 * API the client speaks. Called on connection threads. */
typedef loco_status (*http_error_fn)(void *ctx, const char *path, int status, const char *message,
                                     buf *out);

#define HTTP_SERVER_MAX_BODY_DEFAULT ((size_t)32 << 20)
#define HTTP_SERVER_MAX_CONNECTIONS_DEFAULT 1024u
#define HTTP_SERVER_IDLE_TIMEOUT_DEFAULT 60u
/* Connections accepted past max_connections only to be answered 503; past max_connections
 * + this many the server stops accepting until one closes (new clients wait in the kernel's
 * listen queue instead of being reset). */
#define HTTP_SERVER_CONN_RESERVE 64u
/* Seconds a connection over the limit gets to send its request head before it is closed. */
#define HTTP_SERVER_OVER_LIMIT_WAIT_S 5u

typedef struct {
    const char *host;         /* "127.0.0.1", "0.0.0.0", "::1", ...; NULL = 127.0.0.1 */
    int port;                 /* port 0 = ephemeral; http_server_port() tells which */
    size_t max_body;          /* larger bodies are answered 413 (a declared Content-Length
                                 before the body is read); 0 = HTTP_SERVER_MAX_BODY_DEFAULT */
    unsigned max_connections; /* connections served at once; the request of one more is
                                 answered 503 and the connection closed. 0 = default */
    unsigned idle_timeout_s;  /* a connection waiting for a request must deliver all of it
                                 (head and body) within this many seconds, however slowly
                                 the bytes come, else it is closed (408 when part of a
                                 request had arrived); a client that reads nothing of an
                                 answer for this long is cut off. 0 = default (60) */
    http_error_fn error_body; /* NULL = {"type":"error","error":{"type","message"}} */
    void *error_ctx;          /* borrowed; must outlive the server */
    const loco_log *log;      /* refused connections, timeouts, bad requests; may be NULL */
    http_handler_fn handler;  /* required */
    void *handler_ctx;        /* borrowed; must outlive the server */
} http_server_config;

/* Counters since start; thread-safe snapshot. */
typedef struct {
    long open;         /* connections open now */
    long refused;      /* connections answered 503 because max_connections were open */
    long timed_out;    /* connections closed by the idle timeout (request or answer) */
    long bad_requests; /* requests the server answered itself with a 4xx/5xx */
} http_server_stats;

/* Binds and starts serving. cfg is copied (its strings too). On success *out owns the
 * server (set before the first request can reach the handler); free it with
 * http_server_stop. LOCO_ERR_IO (with the address in err) when the
 * address cannot be bound, LOCO_ERR_INVALID for a bad config. */
loco_status http_server_start(const http_server_config *cfg, http_server **out, loco_err *err);
/* The port actually bound. */
int http_server_port(const http_server *s);
void http_server_get_stats(http_server *s, http_server_stats *out);
/* Stops accepting, tells in-flight handlers the client is gone (client_gone true, write
 * returns LOCO_ERR_CANCELLED), waits for every handler to return, closes all connections
 * and frees s. NULL ok. Must not be called from a handler. */
void http_server_stop(http_server *s);

/* Inside a handler (on its thread or another one it waits for), exactly one of:
 *   http_response_send                 (whole body), or
 *   http_response_start, then any number of http_response_write, then http_response_end.
 * If the handler returns without responding the server answers 500 with a JSON error body;
 * if it returns after start without end, the stream is ended for it. resp is invalid after
 * the handler returns. Calls out of order give LOCO_ERR_INVALID. Calls are thread-safe. */

/* Sends status with body (len bytes, written before the call returns; content_type may be
 * NULL). LOCO_ERR_CANCELLED when the client is gone. */
loco_status http_response_send(http_response *r, int status, const char *content_type,
                               const char *body, size_t len);
/* Sends the status line and headers of a streamed (chunked) body that follows. */
loco_status http_response_start(http_response *r, int status, const char *content_type);
/* Writes n bytes as one chunk and returns once the socket took them (it blocks while the
 * client does not read); nothing is held back for more. LOCO_ERR_CANCELLED once the
 * client is gone or the server is stopping. */
loco_status http_response_write(http_response *r, const char *p, size_t n);
/* Ends the streamed body (the final chunk). */
loco_status http_response_end(http_response *r);
/* Before send/start: adds a response header (both copied). LOCO_ERR_INVALID when called
 * later, when name/value contain CR or LF, or for the headers the server owns
 * (Content-Length, Transfer-Encoding, Connection, Date). */
loco_status http_response_add_header(http_response *r, const char *name, const char *value);
/* Registers fn(ctx), called exactly once when the exchange is over for the client: right
 * before the last byte of the answer is handed to the socket (send, or end), or when the
 * client turns out to be gone, or after the handler returns without an answer. It runs on
 * the thread making that call. For counting requests in flight exactly: the client cannot
 * have seen the end of the answer before fn ran. A second call replaces the first. */
void http_response_on_done(http_response *r, void (*fn)(void *ctx), void *ctx);
/* True once the client disconnected (its side of the connection closed or reset; checked
 * at each call) or the server is stopping. */
bool http_response_client_gone(const http_response *r);

#endif
