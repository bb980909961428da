/* http_server.h: the HTTP/1.1 server the gateway (`loco serve`) stands on, over
 * libmicrohttpd with one thread per connection. Each request runs a handler on its own
 * thread, which may block for minutes and answer with a whole body or a streamed
 * (chunked) one; a client that goes away is reported to the handler. Part of net/. */
#ifndef LOCO_HTTP_SERVER_H
#define LOCO_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

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

/* Runs on a thread of its own per request; may block as long as it likes. */
typedef void (*http_handler_fn)(void *ctx, const http_request *req, http_response *resp);

#define HTTP_SERVER_MAX_BODY_DEFAULT ((size_t)32 << 20)

typedef struct {
    const char *host;               /* "127.0.0.1", "0.0.0.0", "::1", ...; NULL = 127.0.0.1 */
    int port;                       /* port 0 = ephemeral; http_server_port() tells which */
    size_t max_body;                /* bodies larger: the server answers 413 itself with
                                       error_body_413; 0 = HTTP_SERVER_MAX_BODY_DEFAULT */
    const char *error_body_413;     /* JSON body to send with 413 (content-type
                                       application/json); NULL = a generic JSON error */
    unsigned max_connections;       /* default 1024 when 0 */
    unsigned connection_timeout_s;  /* idle connection timeout, default 600 when 0 */
    http_handler_fn handler;        /* required */
    void *handler_ctx;              /* borrowed; must outlive the server */
} http_server_config;

/* Binds and starts serving. cfg is copied (its strings too). On success *out owns the
 * server; free it with http_server_stop. LOCO_ERR_IO (with the address in err) when the
 * address cannot be bound, LOCO_ERR_INVALID for a bad config. */
loco_status http_server_start(const http_server_config *cfg, http_server **out, loco_err *err);
/* The port actually bound. */
int http_server_port(const http_server *s);
/* Stops accepting, tells in-flight handlers the client is gone (client_gone true, write
 * returns LOCO_ERR_CANCELLED), waits for every handler to return, closes all connections
 * and frees s. NULL ok. Must not be called from a handler. */
void http_server_stop(http_server *s);

/* Inside a handler, on the handler's thread, exactly one of:
 *   http_response_send                 (whole body), or
 *   http_response_start, then any number of http_response_write, then http_response_end.
 * If the handler returns without responding the server answers 500 with a JSON error body;
 * if it returns after start without end, the stream is ended for it. resp is invalid after
 * the handler returns. Calls out of order give LOCO_ERR_INVALID. */

/* Sends status with body (copied; len bytes; content_type may be NULL). LOCO_ERR_CANCELLED
 * when the client is already gone. */
loco_status http_response_send(http_response *r, int status, const char *content_type,
                               const char *body, size_t len);
/* Sends the status line and headers of a streamed (chunked) body that follows. */
loco_status http_response_start(http_response *r, int status, const char *content_type);
/* Queues n bytes for the client and returns once they are queued (it blocks while the
 * bounded queue is full); each write goes out right away, not held back for more.
 * LOCO_ERR_CANCELLED once the client is gone or the server is stopping. */
loco_status http_response_write(http_response *r, const char *p, size_t n);
/* Ends the streamed body (the client sees the final chunk after all queued bytes). */
loco_status http_response_end(http_response *r);
/* Before send/start: adds a response header (both copied). LOCO_ERR_INVALID when called
 * later or when name/value contain CR or LF. */
loco_status http_response_add_header(http_response *r, const char *name, const char *value);
/* True once the client disconnected (checked at least every 100 ms while the server waits
 * for the handler's bytes) or the server is stopping. */
bool http_response_client_gone(const http_response *r);

#endif
