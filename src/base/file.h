/* file.h: whole-file reads with a limit, atomic writes, appends, and .env files. */
#ifndef LOCO_FILE_H
#define LOCO_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/status.h"

/* Reads the whole file into out (appending); LOCO_ERR_LIMIT when larger than out->max. */
loco_status file_read_all(const char *path, buf *out, loco_err *err);
/* Writes data to path atomically (temporary file in the same directory + fsync + rename),
 * creating missing parent directories. mode as for open(2). */
loco_status file_write_atomic(const char *path, const void *data, size_t n, int mode,
                              loco_err *err);
/* Appends data to path (O_APPEND; one write call so concurrent appends of one line do not
 * interleave), creating it with mode 0644 when missing. */
loco_status file_append(const char *path, const void *data, size_t n, loco_err *err);
/* mkdir -p; existing directories are fine. */
loco_status file_mkdirs(const char *path, loco_err *err);
bool file_exists(const char *path);
/* write(2) of n bytes (once; EINTR retried) that reports a reader gone as -1 with errno EPIPE
 * instead of raising SIGPIPE, whatever the process does with that signal: a library must not
 * be killed by a pipe to a child that died (SIGPIPE is blocked in the calling thread around the
 * call and one it raised is taken off). */
ssize_t file_write_nosigpipe(int fd, const void *p, size_t n);

/* A parsed .env file: KEY=VALUE lines, '#' comments, optional `export `, optional single or
 * double quotes around the value. */
typedef struct {
    char **keys;
    char **values;
    size_t n;
} dotenv;

/* Parses path into env (caller releases with dotenv_release). A missing file is
 * LOCO_ERR_NOT_FOUND; a malformed line is LOCO_ERR_INVALID naming the line number. */
loco_status dotenv_load(const char *path, dotenv *env, loco_err *err);
/* Parses text (n bytes) the same way. */
loco_status dotenv_parse(const char *text, size_t n, dotenv *env, loco_err *err);
void dotenv_release(dotenv *env);
/* Borrowed value or NULL. */
const char *dotenv_get(const dotenv *env, const char *key);

#endif
