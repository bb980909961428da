/* status.h: the one project-wide status enum and the error record that carries a message.
 * Every library call that can fail returns loco_status and fills a loco_err the caller owns. */
#ifndef LOCO_STATUS_H
#define LOCO_STATUS_H

#include <stddef.h>

typedef enum {
    LOCO_OK = 0,
    LOCO_ERR_NOMEM,       /* allocation failed */
    LOCO_ERR_INVALID,     /* bad input: malformed JSON, bad argument, bad file */
    LOCO_ERR_IO,          /* file or socket error */
    LOCO_ERR_LIMIT,       /* a named size limit was exceeded */
    LOCO_ERR_NOT_FOUND,   /* file, key or route does not exist */
    LOCO_ERR_UPSTREAM,    /* an upstream server answered with an error */
    LOCO_ERR_UNAVAILABLE, /* an upstream server could not be reached */
    LOCO_ERR_TIMEOUT,     /* an operation took longer than allowed */
    LOCO_ERR_CANCELLED,   /* the caller asked to stop */
    LOCO_ERR_UNSUPPORTED, /* valid input that loco does not handle */
    LOCO_ERR_OVERFLOW,    /* a prompt does not fit a context window */
    LOCO_ERR_AUTH,        /* missing or wrong credentials */
    LOCO_ERR_EXISTS,      /* refusing to overwrite */
    LOCO_ERR_BUSY,        /* a server's queue is full: try again later */
} loco_status;

/* Static, never NULL. */
const char *loco_status_str(loco_status st);

#define LOCO_ERR_MSG_MAX 512

/* Caller-owned error record: code plus a human message naming what failed. */
typedef struct {
    loco_status code;
    char msg[LOCO_ERR_MSG_MAX];
} loco_err;

/* Resets err to LOCO_OK with an empty message. err may be NULL. */
void loco_err_clear(loco_err *err);

/* Sets err (may be NULL) to code and a printf-style message; returns code so callers
 * can write `return loco_err_set(err, LOCO_ERR_INVALID, "...")`. */
loco_status loco_err_set(loco_err *err, loco_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with a printf-style context ("reading x: <old>"). */
loco_status loco_err_wrap(loco_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
