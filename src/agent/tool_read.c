/* tool_read.c: the Read tool (file_path, offset?, limit?): `cat -n`-style numbered lines of a
 * text file inside the sandbox. Streams the file in chunks, so memory stays bounded however
 * large the file is; binary files, directories and special files are refused. */
#include "base/common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/tools_int.h"
#include "base/str.h"
#include "base/utf8.h"

#define READ_DEFAULT_LIMIT 2000
#define READ_MAX_LINE_CHARS 2000
/* Bytes kept of one line: enough for READ_MAX_LINE_CHARS characters of 4 bytes. */
#define READ_LINE_KEEP (READ_MAX_LINE_CHARS * 4 + 4)
#define READ_SNIFF_BYTES 8192
#define READ_CHUNK 65536

/* Streaming state for one Read call. */
typedef struct {
    long first, last;   /* requested line range, inclusive, 1-based */
    long line;          /* number of the line being read */
    char keep[READ_LINE_KEEP];
    size_t keep_len;    /* bytes of the current line kept (within the window) */
    size_t line_chars;  /* characters of the current line seen so far */
    buf *out;
    size_t cap;         /* stop once out exceeds this */
    bool capped;        /* output cap reached: stopped before the range ended */
    long next_line;     /* when capped: the first line not shown */
    long cut_lines;     /* lines shortened to READ_MAX_LINE_CHARS */
} read_state;

#define READ_SCHEMA                                                                            \
    "{\"type\":\"object\",\"properties\":{"                                                    \
    "\"file_path\":{\"type\":\"string\",\"description\":\"The absolute path to the file to "   \
    "read\"},"                                                                                  \
    "\"offset\":{\"type\":\"number\",\"description\":\"The line number to start reading from. " \
    "Only provide if the file is too large to read at once\"},"                                 \
    "\"limit\":{\"type\":\"number\",\"description\":\"The number of lines to read. Only "      \
    "provide if the file is too large to read at once.\"}},"                                    \
    "\"required\":[\"file_path\"],\"additionalProperties\":false}"

/* True when the sample looks binary: a NUL byte, or many bytes that are neither valid UTF-8
 * nor ordinary text control characters. full: the sample is the whole file (a truncated
 * multi-byte sequence at its end is then invalid, not merely cut). */
static bool looks_binary(const unsigned char *p, size_t n, bool full)
{
    if (memchr(p, 0, n))
        return true;
    size_t bad = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' &&
                c != '\b' && c != 0x1b)
                bad++;
            i++;
            continue;
        }
        size_t seq = (c >= 0xf0) ? 4 : (c >= 0xe0) ? 3 : (c >= 0xc0) ? 2 : 1;
        if (seq > 1 && i + seq > n && !full)
            break; /* cut at the sample's end */
        if (seq == 1 || utf8_seq_len((const char *)p + i, n - i) != seq) {
            bad++;
            i++;
            continue;
        }
        i += seq;
    }
    return bad * 10 > n; /* more than 10% */
}

/* Byte length of the first max_chars characters of p[0..n). */
static size_t prefix_for_chars(const char *p, size_t n, size_t max_chars)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) {
        if (!utf8_is_cont((unsigned char)p[i])) {
            if (chars == max_chars)
                return i;
            chars++;
        }
    }
    return n;
}

/* Room kept under the cap for the closing note. */
#define READ_NOTE_ROOM 200

/* Emits the finished current line when it lies in the window. A line that would push the
 * result past the cap is taken back (unless it is the first) and the window ends there. */
static loco_status finish_line(read_state *st)
{
    if (st->line < st->first || st->line > st->last || st->capped)
        return LOCO_OK;
    size_t n = st->keep_len;
    if (n > 0 && st->keep[n - 1] == '\r')
        n--;
    size_t bytes = prefix_for_chars(st->keep, n, READ_MAX_LINE_CHARS);
    size_t start = st->out->len;
    loco_status rc = buf_appendf(st->out, "%6ld\t", st->line);
    if (!rc)
        rc = tools_append_text(st->out, st->keep, bytes);
    bool cut = st->line_chars > READ_MAX_LINE_CHARS;
    if (!rc && cut)
        rc = buf_appendf(st->out, "... [line cut: %zu characters, first %d shown]",
                         st->line_chars, READ_MAX_LINE_CHARS);
    if (!rc)
        rc = buf_appendc(st->out, '\n');
    if (rc)
        return rc;
    size_t room = st->cap > READ_NOTE_ROOM * 2 ? st->cap - READ_NOTE_ROOM : st->cap / 2;
    if (st->out->len > room) {
        st->capped = true;
        if (start > 0) {
            st->out->len = start;
            st->out->data[start] = '\0';
            st->next_line = st->line;
            return LOCO_OK;
        }
        st->next_line = st->line + 1;
        rc = tools_cap_output(st->out, room, "line");
    }
    if (cut)
        st->cut_lines++;
    return rc;
}

/* Feeds a chunk; stops early (returns with *done) once the window is complete. */
static loco_status feed(read_state *st, const char *p, size_t n, bool *done)
{
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - p) : n;
        bool in_window = st->line >= st->first && st->line <= st->last;
        if (in_window)
            for (size_t j = i; j < end; j++)
                if (!utf8_is_cont((unsigned char)p[j]))
                    st->line_chars++;
        if (!in_window && !nl)
            st->line_chars += end - i; /* only "non-empty" matters outside the window */
        if (in_window && st->keep_len < READ_LINE_KEEP) {
            size_t take = end - i;
            if (take > READ_LINE_KEEP - st->keep_len)
                take = READ_LINE_KEEP - st->keep_len;
            memcpy(st->keep + st->keep_len, p + i, take);
            st->keep_len += take;
        }
        if (!nl)
            return LOCO_OK;
        loco_status rc = finish_line(st);
        if (rc)
            return rc;
        st->line++;
        st->keep_len = 0;
        st->line_chars = 0;
        i = end + 1;
        if (st->line > st->last || st->capped) {
            *done = true;
            return LOCO_OK;
        }
    }
    return LOCO_OK;
}

/* Opens path for reading, refusing directories and special files with an error result.
 * Returns the fd, or -1 after writing the error result. */
static int open_regular(const char *path, buf *out, bool *is_error, loco_status *rc)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        *rc = (errno == ENOENT) ? tools_error(out, is_error, "Read: File does not exist: %s", path)
                                : tools_error(out, is_error, "Read: cannot access %s: %s", path,
                                              strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        *rc = tools_error(out, is_error,
                          "Read: %s is a directory, not a file. Use Bash (ls %s) or Glob to list "
                          "its contents.",
                          path, path);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        *rc = tools_error(out, is_error,
                          "Read: %s is not a regular file (device, FIFO or socket); Read only "
                          "reads files.",
                          path);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        *rc = tools_error(out, is_error, "Read: cannot open %s: %s", path, strerror(errno));
    return fd;
}

static ssize_t read_full(int fd, char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Streams the numbered window of fd into out. */
static loco_status stream_lines(const agent_tool_ctx *ctx, int fd, read_state *st, char *chunk,
                                size_t first_n, bool *out_eof, loco_err *err)
{
    bool done = false;
    loco_status rc = feed(st, chunk, first_n, &done);
    *out_eof = false;
    while (!rc && !done) {
        if (tools_cancelled(ctx))
            return LOCO_ERR_CANCELLED;
        ssize_t r = read_full(fd, chunk, READ_CHUNK);
        if (r < 0)
            return loco_err_set(err, LOCO_ERR_IO, "%s", strerror(errno));
        if (r == 0) {
            *out_eof = true;
            break;
        }
        rc = feed(st, chunk, (size_t)r, &done);
    }
    return rc;
}

static loco_status read_file(const agent_tool_ctx *ctx, const char *path, long offset, long limit,
                             buf *out, bool *is_error)
{
    loco_status rc = LOCO_OK;
    int fd = open_regular(path, out, is_error, &rc);
    if (fd < 0)
        return rc;
    char *chunk = malloc(READ_CHUNK);
    read_state *st = calloc(1, sizeof(*st));
    buf res;
    buf_init(&res, BUF_UNLIMITED);
    if (!chunk || !st) {
        rc = LOCO_ERR_NOMEM;
        goto out;
    }
    ssize_t n = read_full(fd, chunk, READ_CHUNK);
    if (n < 0) {
        rc = tools_error(out, is_error, "Read: cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (n == 0) {
        rc = buf_appends(out, "<system-reminder>Warning: the file exists but the contents are "
                              "empty.</system-reminder>");
        goto out;
    }
    size_t sniff = (size_t)n < READ_SNIFF_BYTES ? (size_t)n : READ_SNIFF_BYTES;
    bool whole = (size_t)n < READ_CHUNK && sniff == (size_t)n; /* the sample is the file */
    if (looks_binary((const unsigned char *)chunk, sniff, whole)) {
        rc = tools_error(out, is_error,
                         "Read: %s: file is binary (NUL bytes or invalid UTF-8 in its first 8 KB); "
                         "Read shows text files only. Use Bash (e.g. `file`, `xxd %s | head`) to "
                         "inspect it.",
                         path, path);
        goto out;
    }
    size_t max = tools_max_output(ctx);
    st->first = offset;
    st->last = (limit > LONG_MAX - offset) ? LONG_MAX : offset + limit - 1;
    st->line = 1;
    st->out = &res;
    st->cap = max;
    bool eof = false;
    loco_err err;
    loco_err_clear(&err);
    rc = stream_lines(ctx, fd, st, chunk, (size_t)n, &eof, &err);
    if (rc == LOCO_ERR_IO) {
        rc = tools_error(out, is_error, "Read: cannot read %s: %s", path, err.msg);
        goto out;
    }
    if (rc)
        goto out;
    if (eof) {
        /* A last line without a newline is still a line. */
        if (st->keep_len > 0 || st->line_chars > 0) {
            rc = finish_line(st);
            if (rc)
                goto out;
        } else {
            st->line--;
        }
        if (offset > st->line) {
            rc = buf_appendf(out,
                             "<system-reminder>Warning: the file exists but is shorter than the "
                             "provided offset (%ld). The file has %ld lines.</system-reminder>",
                             offset, st->line);
            goto out;
        }
    }
    if (st->capped)
        rc = buf_appendf(&res,
                         "\n[Read: output limit of %zu bytes reached; lines %ld-%ld shown. "
                         "Continue with offset=%ld]",
                         max, offset, st->next_line - 1, st->next_line);
    if (!rc)
        rc = buf_append(out, res.data ? res.data : "", res.len);
out:
    buf_release(&res);
    free(st);
    free(chunk);
    close(fd);
    return rc;
}

static loco_status read_run(const agent_tool_ctx *ctx, const json_t *args, buf *out,
                            bool *out_is_error)
{
    *out_is_error = false;
    buf err;
    buf_init(&err, TOOLS_ARG_ERR_MAX);
    const char *file_path = NULL;
    long offset = 1, limit = READ_DEFAULT_LIMIT;
    loco_status rc = LOCO_OK;
    if (!tools_arg_str(args, "file_path", true, &file_path, &err) ||
        !tools_arg_int(args, "offset", false, &offset, &err) ||
        !tools_arg_int(args, "limit", false, &limit, &err)) {
        rc = tools_error(out, out_is_error, "Read: %s", buf_str(&err));
        buf_release(&err);
        return rc;
    }
    buf_release(&err);
    if (offset < 0)
        return tools_error(out, out_is_error, "Read: offset must be a line number >= 1 (got %ld)",
                           offset);
    if (offset == 0)
        offset = 1;
    if (limit <= 0)
        return tools_error(out, out_is_error, "Read: limit must be a positive number of lines "
                                              "(got %ld)",
                           limit);
    char *path = NULL;
    rc = tools_resolve(ctx, "Read", file_path, SANDBOX_READ, &path, out, out_is_error);
    if (rc || !path)
        return rc;
    rc = read_file(ctx, path, offset, limit, out, out_is_error);
    free(path);
    return rc;
}

const agent_tool agent_tool_read = {
    .name = "Read",
    .description =
        "Reads a file from the local filesystem. The file_path parameter should be an absolute "
        "path (paths relative to the repository root also work). By default, it reads up to 2000 "
        "lines starting from the beginning of the file; offset (1-based line number) and limit "
        "read a part of a long file. Lines longer than 2000 characters are cut. Results are "
        "returned using cat -n format, with line numbers starting at 1. Binary files and "
        "directories are refused: list directories with Glob or Bash ls.",
    .schema_json = READ_SCHEMA,
    .read_only = true,
    .run = read_run,
};
