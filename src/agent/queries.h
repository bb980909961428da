/* queries.h: the batch analysis queries file (the seed's data/queries/NAME-queries.txt): one
 * query per line, `id<TAB>question`. Part of agent/; `loco analyze` reads it. Bad lines are
 * collected as problems naming their line numbers and skipped, never fatal. */
#ifndef LOCO_AGENT_QUERIES_H
#define LOCO_AGENT_QUERIES_H

#include <stddef.h>

#include "base/status.h"

#define AGENT_QUERIES_MAX_BYTES (16u << 20) /* whole file */
#define AGENT_QUERY_MAX_BYTES 16384         /* one question */
#define AGENT_QUERIES_MAX 100000            /* queries per file */
#define AGENT_QUERY_ID_MAX 999999999L       /* ids are 1 .. this */

typedef struct {
    long id;        /* >= 1; answers go to qNNN.md (zero-padded to 3 digits) */
    char *question; /* trimmed, valid UTF-8, no control characters (owned) */
    size_t line;    /* 1-based line number in the file */
} agent_query;

typedef struct {
    size_t line;      /* 1-based */
    char message[160]; /* "expected id<TAB>question", "duplicate id 3 (first on line 2)", ... */
} agent_query_problem;

typedef struct {
    agent_query *items;   /* in file order (owned) */
    size_t n;
    agent_query_problem *problems; /* bad lines, in file order (owned) */
    size_t n_problems;
} agent_queries;

/* Parses text[0..n) (borrowed; need not be NUL-terminated). Rules: lines end in \n or \r\n; a
 * UTF-8 byte-order mark at the start is skipped; blank lines and lines starting with '#' are
 * ignored; every other line is ID<TAB>QUESTION where ID is a decimal integer in
 * [1, AGENT_QUERY_ID_MAX] (spaces around it allowed) and QUESTION is non-empty after trimming,
 * valid UTF-8, without control characters, at most AGENT_QUERY_MAX_BYTES. A line breaking a
 * rule, or repeating an earlier id, becomes a problem and is skipped. On success *out (which the
 * caller releases with agent_queries_release) holds the queries and problems. Errors:
 * LOCO_ERR_LIMIT (text larger than AGENT_QUERIES_MAX_BYTES or more than AGENT_QUERIES_MAX
 * queries), LOCO_ERR_NOMEM; *out is then empty. */
loco_status agent_queries_parse(const char *text, size_t n, agent_queries *out, loco_err *err);
/* Reads path and parses it; LOCO_ERR_NOT_FOUND / LOCO_ERR_IO name the file. */
loco_status agent_queries_load(const char *path, agent_queries *out, loco_err *err);
/* Frees everything in q and leaves it empty. */
void agent_queries_release(agent_queries *q);

/* Writes the answer file name of id: "q001.md" ("q1234.md" past 999) into out (>= 16 bytes);
 * ext is "md" or "jsonl". */
void agent_query_file_name(long id, const char *ext, char *out, size_t out_size);

#endif
