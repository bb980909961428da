/* http_parse.h: the HTTP/1.1 request grammar the server reads (RFC 9112): the request head
 * and the chunked body coding, on bytes already in memory. Pure: no I/O, no threads, no
 * allocation except the body buffer the caller passes. Part of net/; used by http_server.c,
 * fuzzed by fuzz/fuzz_http_parse.c. */
#ifndef LOCO_HTTP_PARSE_H
#define LOCO_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Request line plus headers, in bytes; a longer head is answered 431 (414 when the request
 * line alone does not fit). */
#define HTTP_PARSE_HEAD_MAX ((size_t)64 * 1024)
/* Header fields one request may carry; more are answered 431. */
#define HTTP_PARSE_MAX_HEADERS 128
/* Bytes of chunk extensions on one chunk-size line, and of all trailer fields. */
#define HTTP_PARSE_CHUNK_LINE_MAX 4096
#define HTTP_PARSE_TRAILERS_MAX ((size_t)16 * 1024)

typedef struct {
    char *name;  /* NUL-terminated, inside the parsed head */
    char *value; /* leading and trailing blanks removed */
} http_parse_header;

/* A parsed head; every pointer points into the buffer given to http_parse_head. */
typedef struct {
    char *method;
    char *target; /* the raw request-target */
    int minor;    /* HTTP/1.minor: 0 or 1 */
    http_parse_header headers[HTTP_PARSE_MAX_HEADERS];
    size_t n_headers;
    bool chunked;    /* Transfer-Encoding: chunked */
    bool has_length; /* Content-Length given (never together with chunked) */
    uint64_t length;
    bool close;           /* the connection ends after this exchange (HTTP/1.0 or close) */
    bool expect_continue; /* Expect: 100-continue */
} http_parse_head;

/* Length of the complete head at the start of p[0..n): the request line, the header lines
 * and the empty line that ends them (lines end in CRLF or LF). 0 when the head is not
 * complete yet. p starts at the request line (drop empty lines before it first); the search
 * can resume on a longer buffer from 2 bytes before where the last one ended. */
size_t http_parse_head_len(const char *p, size_t n);

/* Parses the complete head p[0..n) (as measured by http_parse_head_len) in place: NULs are
 * written into p and *out points into it. Returns 0, or the HTTP status to answer with
 * *out_why a static message naming what is wrong: 400 (malformed), 417 (an Expect other
 * than 100-continue), 431 (too many headers), 501 (a transfer coding other than chunked),
 * 505 (an HTTP version other than 1.x). */
int http_parse_head_parse(char *p, size_t n, http_parse_head *out, const char **out_why);

/* Splits a request target, in place, into its percent-decoded path and its raw query (""
 * when none). Origin form ("/a?b"), absolute form ("http://host/a?b") and "*" are accepted.
 * Returns 0, or 400 with *out_why (another form, or a path that decodes to a NUL byte). */
int http_parse_target(char *target, char **out_path, char **out_query, const char **out_why);

/* Incremental decoder of a chunked body; caller-owned, no allocation. */
typedef struct {
    int state;
    uint64_t left; /* data bytes left in the current chunk */
    size_t line;   /* bytes of the current size line or of the trailers so far */
    int digits;
} http_chunked;

void http_chunked_init(http_chunked *c);
/* Decodes n more bytes of the body, appending the data to body (whose max is the body
 * limit). *out_used says how many bytes of p belong to the body; the rest (after the last
 * chunk and its trailers) is the next request's. Returns 0 when more bytes are needed,
 * 1 when the body is complete, or an HTTP status with *out_why: 400 (malformed), 413 (past
 * body's max), 500 (out of memory). Bytes may arrive split anywhere. */
int http_chunked_feed(http_chunked *c, const char *p, size_t n, buf *body, size_t *out_used,
                      const char **out_why);

#endif
