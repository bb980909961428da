/* http_client.h: a thread-safe HTTP/1.1 client over libcurl that streams response bodies
 * to callbacks, with idle/total timeouts and prompt cancellation. Part of net/; the
 * HTTP backends (openai-http, anthropic-http) sit on it. Connections are kept alive and
 * reused through a pool of curl handles. */
#ifndef LOCO_HTTP_CLIENT_H
#define LOCO_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"

typedef struct http_client http_client; /* opaque */

/* Creates a client (initialises libcurl). Thread-safe to use from any number of threads
 * at once. Free with http_client_free after every http_client_do has returned. */
loco_status http_client_new(http_client **out, loco_err *err);
/* Closes pooled connections and frees c; NULL does nothing. */
void http_client_free(http_client *c);

typedef struct {
    const char *method;         /* "GET", "POST", ... (NULL = "GET", or "POST" when body) */
    const char *url;
    const char *const *headers; /* NULL-terminated array of "Name: value", may be NULL */
    const char *body;           /* request body, body_len bytes (may be NULL when 0) */
    size_t body_len;
    long connect_timeout_ms; /* 0 = 10000 */
    long idle_timeout_ms;    /* abort with LOCO_ERR_TIMEOUT when no byte arrives for this long; 0 = none */
    long total_timeout_ms;   /* 0 = none */
    const volatile int *cancel; /* when non-NULL and *cancel becomes nonzero, abort with
                                   LOCO_ERR_CANCELLED within ~100 ms */
    /* Callbacks (any may be NULL), called on the calling thread; a non-OK return aborts
     * the transfer and is returned by http_client_do (err is left for the callback). */
    loco_status (*on_headers)(void *ctx, int status, const char *content_type); /* once, before
                                       the first body byte (also for empty bodies);
                                       content_type NULL when absent */
    loco_status (*on_header)(void *ctx, const char *name, const char *value); /* each response
                                       header of the final response, trimmed */
    loco_status (*on_data)(void *ctx, const char *p, size_t n); /* body bytes as they arrive */
    void *ctx;
} http_client_request;

/* Performs the request on the calling thread; everything in req is borrowed for the call.
 * *out_status (may be NULL) gets the HTTP status, 0 if none arrived. HTTP error statuses
 * are NOT errors here: the body is delivered as usual and LOCO_OK returned.
 * Errors: LOCO_ERR_UNAVAILABLE (connection refused, DNS failure, TLS handshake failure),
 * LOCO_ERR_TIMEOUT (connect, idle or total timeout), LOCO_ERR_CANCELLED, LOCO_ERR_IO (the
 * connection broke mid-response), LOCO_ERR_INVALID (bad request fields), or a callback's
 * status. err names the method, the URL (without query string or credentials) and the
 * cause; request headers and bodies never appear in messages. */
loco_status http_client_do(http_client *c, const http_client_request *req, int *out_status,
                           loco_err *err);

#endif
