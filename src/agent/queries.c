/* queries.c: parser of the batch analysis queries file (`id<TAB>question` per line, the seed's
 * format). Part of agent/, used by `loco analyze`; see queries.h for the rules. */
#include "base/common.h"

#include "agent/queries.h"
#include "base/buf.h"
#include "base/file.h"
#include "base/str.h"
#include "base/utf8.h"

typedef struct {
    agent_queries *q;
    size_t cap_items;
    size_t cap_problems;
} parse_state;

static loco_status add_problem(parse_state *st, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static loco_status add_problem(parse_state *st, size_t line, const char *fmt, ...)
{
    agent_queries *q = st->q;
    if (q->n_problems == st->cap_problems) {
        size_t cap = st->cap_problems ? st->cap_problems * 2 : 8;
        agent_query_problem *p = realloc(q->problems, cap * sizeof(*p));
        if (!p)
            return LOCO_ERR_NOMEM;
        q->problems = p;
        st->cap_problems = cap;
    }
    agent_query_problem *p = &q->problems[q->n_problems++];
    p->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof(p->message), fmt, ap);
    va_end(ap);
    return LOCO_OK;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims spaces and tabs from both ends of s[0..*n); returns the new start. */
static const char *trim(const char *s, size_t *n)
{
    while (*n && is_space(s[0])) {
        s++;
        (*n)--;
    }
    while (*n && is_space(s[*n - 1]))
        (*n)--;
    return s;
}

static bool has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

/* Index of the earlier query with this id, or (size_t)-1. Linear: files hold hundreds. A hash
 * would matter only near AGENT_QUERIES_MAX, and a quadratic scan of 1e5 is still ~1 s. */
static size_t find_id(const agent_queries *q, long id)
{
    for (size_t i = 0; i < q->n; i++) {
        if (q->items[i].id == id)
            return i;
    }
    return (size_t)-1;
}

static loco_status parse_id(const char *s, size_t n, long *out_id)
{
    char tmp[24];
    if (n == 0 || n >= sizeof(tmp))
        return LOCO_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return LOCO_ERR_INVALID;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return str_parse_long(tmp, 1, AGENT_QUERY_ID_MAX, out_id);
}

static loco_status add_query(parse_state *st, long id, const char *question, size_t n,
                             size_t line, loco_err *err)
{
    agent_queries *q = st->q;
    if (q->n == AGENT_QUERIES_MAX)
        return loco_err_set(err, LOCO_ERR_LIMIT, "more than %d queries (line %zu)",
                            AGENT_QUERIES_MAX, line);
    if (q->n == st->cap_items) {
        size_t cap = st->cap_items ? st->cap_items * 2 : 16;
        agent_query *items = realloc(q->items, cap * sizeof(*items));
        if (!items)
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory reading queries");
        q->items = items;
        st->cap_items = cap;
    }
    char *copy = str_ndup(question, n);
    if (!copy)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory reading queries");
    q->items[q->n].id = id;
    q->items[q->n].question = copy;
    q->items[q->n].line = line;
    q->n++;
    return LOCO_OK;
}

/* One line (without its terminator). Returns LOCO_OK for a good or a reported bad line. */
static loco_status parse_line(parse_state *st, const char *s, size_t n, size_t line,
                              loco_err *err)
{
    if (n && s[n - 1] == '\r')
        n--;
    size_t tn = n;
    const char *t = trim(s, &tn);
    if (tn == 0 || t[0] == '#')
        return LOCO_OK;
    const char *tab = memchr(s, '\t', n);
    /* the separator is the first tab after the id (leading tabs were blanks) */
    while (tab && tab < t)
        tab = memchr(tab + 1, '\t', n - (size_t)(tab + 1 - s));
    loco_status rc = LOCO_OK;
    if (!tab) {
        rc = add_problem(st, line, "expected id<TAB>question (no tab)");
        goto out;
    }
    size_t idn = (size_t)(tab - t);
    const char *ids = trim(t, &idn);
    long id = 0;
    if (parse_id(ids, idn, &id)) {
        rc = add_problem(st, line, "the id '%.*s' is not an integer in [1, %ld]",
                         (int)(idn > 40 ? 40 : idn), ids, AGENT_QUERY_ID_MAX);
        goto out;
    }
    size_t qn = n - (size_t)(tab + 1 - s);
    const char *qs = trim(tab + 1, &qn);
    if (qn == 0) {
        rc = add_problem(st, line, "query %ld has an empty question", id);
    } else if (qn > AGENT_QUERY_MAX_BYTES) {
        rc = add_problem(st, line, "query %ld: question longer than %d bytes", id,
                         AGENT_QUERY_MAX_BYTES);
    } else if (!utf8_valid(qs, qn)) {
        rc = add_problem(st, line, "query %ld: question is not valid UTF-8", id);
    } else if (has_control(qs, qn)) {
        rc = add_problem(st, line, "query %ld: question holds a control character (tab?)", id);
    } else {
        size_t prev = find_id(st->q, id);
        if (prev != (size_t)-1)
            rc = add_problem(st, line, "duplicate id %ld (first on line %zu)", id,
                             st->q->items[prev].line);
        else
            return add_query(st, id, qs, qn, line, err);
    }
out:
    if (rc)
        return loco_err_set(err, rc, "out of memory reading queries");
    return LOCO_OK;
}

loco_status agent_queries_parse(const char *text, size_t n, agent_queries *out, loco_err *err)
{
    memset(out, 0, sizeof(*out));
    if (n > AGENT_QUERIES_MAX_BYTES)
        return loco_err_set(err, LOCO_ERR_LIMIT, "queries file larger than %u bytes",
                            AGENT_QUERIES_MAX_BYTES);
    parse_state st = {out, 0, 0};
    size_t pos = 0;
    if (n >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
        pos = 3;
    size_t line = 1;
    while (pos < n) {
        const char *nl = memchr(text + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - text) : n;
        loco_status rc = parse_line(&st, text + pos, end - pos, line, err);
        if (rc) {
            agent_queries_release(out);
            return rc;
        }
        pos = end + 1;
        line++;
    }
    return LOCO_OK;
}

loco_status agent_queries_load(const char *path, agent_queries *out, loco_err *err)
{
    memset(out, 0, sizeof(*out));
    buf b;
    buf_init(&b, AGENT_QUERIES_MAX_BYTES);
    loco_status rc = file_read_all(path, &b, err);
    if (rc == LOCO_OK)
        rc = agent_queries_parse(buf_str(&b), b.len, out, err);
    if (rc == LOCO_ERR_LIMIT || rc == LOCO_ERR_NOMEM)
        loco_err_wrap(err, "%s", path);
    buf_release(&b);
    return rc;
}

void agent_queries_release(agent_queries *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++)
        free(q->items[i].question);
    free(q->items);
    free(q->problems);
    memset(q, 0, sizeof(*q));
}

void agent_query_file_name(long id, const char *ext, char *out, size_t out_size)
{
    snprintf(out, out_size, "q%03ld.%s", id, ext);
}
