/* tool_grep.c: the Grep tool, Claude Code's ripgrep-based search rebuilt on PCRE2 (JIT) and the
 * parallel walker (walk.h). Each worker thread searches whole windows of a file at once and only
 * then finds the lines around each match; results are merged, ordered and paginated as Claude
 * Code does (files newest first, content and counts by path). */
#include "base/common.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <fcntl.h>
#include <pcre2.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/tools_int.h"
#include "agent/walk.h"
#include "base/os.h"
#include "base/str.h"
#include "base/utf8.h"

/* Claude Code's default head_limit (0 asks for everything). */
#define GREP_DEFAULT_HEAD_LIMIT 250
/* ripgrep's --max-columns as Claude Code sets it: longer lines are shown as a placeholder. */
#define GREP_MAX_COLUMNS 500
/* Bytes read per window in line mode; a file up to this size is searched in one piece. */
#define GREP_WINDOW (1024 * 1024)
/* Window in multiline mode (a match cannot span two windows). */
#define GREP_MULTILINE_WINDOW (64 * 1024 * 1024)
/* Longest line kept whole; a longer one is split (and its pieces searched separately). */
#define GREP_LINE_MAX (16 * 1024 * 1024)
/* Binary sniff: a NUL in the first this many bytes skips the file. */
#define GREP_SNIFF 8192
/* Results kept in memory across all files (paths and lines); past it the search stops. */
#define GREP_COLLECT_MAX (32 * 1024 * 1024)
/* Context lines asked for are clamped to this. */
#define GREP_CONTEXT_MAX 1000
/* Longest pattern accepted. */
#define GREP_PATTERN_MAX 65536
/* JIT stack per worker. */
#define GREP_JIT_STACK_MAX (1024 * 1024)

typedef enum { MODE_FILES = 0, MODE_CONTENT, MODE_COUNT } grep_mode;

typedef struct {
    char *path;        /* absolute, owned */
    int64_t mtime_ns;
    size_t count;      /* matching lines */
    char *text;        /* content mode: the file's output lines, owned */
    size_t text_len;
} grep_hit;

typedef struct {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    char *data; /* window buffer */
    size_t cap;
    buf out;    /* content lines of the current file */
    grep_hit *hits;
    size_t n, hcap;
    int match_error; /* first PCRE2 error seen (0 none) */
} grep_worker;

/* Longest literal prefilter kept. */
#define GREP_LITERAL_MAX 256

typedef struct {
    grep_mode mode;
    bool line_numbers;
    char literal[GREP_LITERAL_MAX]; /* bytes every matching line contains (line mode), or "" */
    size_t literal_len;
    bool multiline;
    size_t before, after;
    pcre2_code *code;
    const gitignore_globset *types; /* the type filter, or NULL */
    grep_worker *workers;
    int nworkers;
    pthread_mutex_t mu;
    size_t collected; /* bytes kept, under mu */
    bool full;        /* GREP_COLLECT_MAX reached */
    bool nomem;
    size_t unreadable; /* files a read failed on (not searched to the end), under mu */
    const volatile int *cancel;
} grep_search;

/* Per-file scanning state. */
typedef struct {
    const grep_search *g;
    grep_worker *w;
    const char *path;
    char *data;
    size_t count;
    bool stop;           /* files mode: first match found */
    uint64_t line0;      /* number of the line starting at data[0] */
    size_t nl_pos;       /* line counting: position counted up to ... */
    uint64_t nl_line;    /* ... and the number of the line holding it */
    uint64_t last_line;  /* last line printed (0: none) */
    size_t last_end;     /* offset just after the last printed line, when in this window */
    bool last_in_window;
    uint64_t after_until; /* print context lines up to this line */
    uint64_t last_match;  /* last line of the last match (multiline mode) */
    bool printed_any;
} grep_file;

/* ---- line helpers ---------------------------------------------------------------------- */

/* Newlines in p[0..n), a word at a time. */
static size_t count_nl(const char *p, size_t n)
{
    size_t c = 0, i = 0;
    const uint64_t ones = 0x0101010101010101ULL, seven = 0x7F7F7F7F7F7F7F7FULL;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t x = w ^ (ones * '\n');
        uint64_t t = ~(((x & seven) + seven) | x | seven);
        c += (size_t)__builtin_popcountll(t);
    }
    for (; i < n; i++)
        c += p[i] == '\n';
    return c;
}

/* Number of the line holding data[pos]; positions asked for never go backwards within a
 * window except through line_back. */
static uint64_t line_of(grep_file *f, size_t pos)
{
    if (pos >= f->nl_pos) {
        f->nl_line += count_nl(f->data + f->nl_pos, pos - f->nl_pos);
    } else {
        f->nl_line -= count_nl(f->data + pos, f->nl_pos - pos);
    }
    f->nl_pos = pos;
    return f->nl_line;
}

static size_t line_start(const char *data, size_t lo, size_t pos)
{
    if (pos <= lo)
        return lo;
    const char *nl = os_memrchr(data + lo, '\n', pos - lo);
    return nl ? (size_t)(nl - data) + 1 : lo;
}

/* End of the line holding pos (the '\n' position, or end). */
static size_t line_end(const char *data, size_t pos, size_t end)
{
    const char *nl = memchr(data + pos, '\n', end - pos);
    return nl ? (size_t)(nl - data) : end;
}

/* One output line: "path:N:text" (match) or "path-N-text" (context); without -n "path:text". */
static loco_status emit_line(grep_file *f, uint64_t ln, size_t ls, size_t le, bool match)
{
    buf *b = &f->w->out;
    char sep = match ? ':' : '-';
    if (f->printed_any && ln > f->last_line + 1 && (f->g->before || f->g->after))
        buf_appends(b, "--\n");
    loco_status rc = buf_appends(b, f->path);
    if (!rc)
        rc = buf_appendc(b, sep);
    if (!rc && f->g->line_numbers)
        rc = buf_appendf(b, "%" PRIu64 "%c", ln, sep);
    if (rc)
        return rc;
    if (le - ls > GREP_MAX_COLUMNS)
        rc = buf_appends(b, match ? "[Omitted long matching line]" : "[Omitted long context line]");
    else
        rc = utf8_append_lossy(b, f->data + ls, le - ls);
    if (!rc)
        rc = buf_appendc(b, '\n');
    f->printed_any = true;
    f->last_line = ln;
    return rc;
}

/* Prints the pending after-context lines that start before limit (offset) and whose number is
 * at most max_line. */
static loco_status flush_after(grep_file *f, size_t limit, uint64_t max_line)
{
    while (f->last_in_window && f->last_line < f->after_until && f->last_line < max_line &&
           f->last_end < limit) {
        size_t ls = f->last_end;
        size_t le = line_end(f->data, ls, limit);
        loco_status rc = emit_line(f, f->last_line + 1, ls, le, false);
        if (rc)
            return rc;
        f->last_end = le + 1;
    }
    return LOCO_OK;
}

/* A match covering lines [ls, le) (one line, or several in multiline mode) starting at line
 * ln. lo: lowest offset of the window holding earlier lines (for before-context). */
static loco_status on_match(grep_file *f, size_t lo, size_t ls, size_t le, uint64_t ln)
{
    size_t nlines = 1 + count_nl(f->data + ls, le - ls);
    uint64_t last = ln + nlines - 1;
    if (f->g->multiline && f->last_match && f->last_match >= ln) {
        /* a multiline match starting on the line where the previous one ended */
        if (last <= f->last_match)
            return LOCO_OK;
        f->count += (size_t)(last - f->last_match);
    } else {
        f->count += nlines;
    }
    f->last_match = last;
    if (f->g->mode == MODE_FILES) {
        f->stop = true;
        return LOCO_OK;
    }
    if (f->g->mode != MODE_CONTENT)
        return LOCO_OK;
    loco_status rc = flush_after(f, ls, ln - 1);
    if (rc)
        return rc;
    /* before-context: up to `before` lines after the last printed one */
    size_t want = f->g->before;
    if (f->last_line && ln - 1 - f->last_line < want)
        want = (size_t)(ln - 1 - f->last_line);
    if (ln - 1 < want)
        want = (size_t)(ln - 1);
    size_t start = ls;
    size_t got = 0;
    while (got < want && start > lo) {
        start = line_start(f->data, lo, start - 1);
        got++;
    }
    for (size_t i = 0; i < got; i++) {
        size_t e = line_end(f->data, start, ls);
        rc = emit_line(f, ln - got + i, start, e, false);
        if (rc)
            return rc;
        start = e + 1;
    }
    /* the matching lines themselves */
    size_t p = ls;
    for (size_t i = 0; i < nlines; i++) {
        size_t e = line_end(f->data, p, le);
        if (ln + i > f->last_line || !f->printed_any) {
            rc = emit_line(f, ln + i, p, e, true);
            if (rc)
                return rc;
        }
        p = e + 1;
    }
    f->last_end = p;
    f->last_in_window = true;
    f->after_until = ln + nlines - 1 + f->g->after;
    return LOCO_OK;
}

/* ---- searching one window -------------------------------------------------------------- */

/* Runs the pattern on data[0..end) from start; returns the PCRE2 result. */
static int run_match(grep_file *f, const char *subject, size_t len, size_t start)
{
    return pcre2_jit_match(f->g->code, (PCRE2_SPTR)subject, len, start, 0, f->w->md, f->w->mctx);
}

static int run_match_any(grep_file *f, const char *subject, size_t len, size_t start)
{
    if (f->w->jit)
        return run_match(f, subject, len, start);
    return pcre2_match(f->g->code, (PCRE2_SPTR)subject, len, start, 0, f->w->md, f->w->mctx);
}

/* Line mode with a required literal: find the literal, then run the pattern on its line only.
 * A line without the literal cannot match, so most of the buffer is only seen by memmem. */
static loco_status search_literal(grep_file *f, size_t lo, size_t scan, size_t end)
{
    const grep_search *g = f->g;
    size_t pos = scan;
    while (pos < end && !f->stop) {
        const char *hit = memmem(f->data + pos, end - pos, g->literal, g->literal_len);
        if (!hit)
            break;
        size_t h = (size_t)(hit - f->data);
        size_t ls = line_start(f->data, pos, h);
        size_t le = line_end(f->data, h, end);
        int rc = run_match_any(f, f->data, le, ls);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH && !f->w->match_error)
            f->w->match_error = rc;
        if (rc >= 0) {
            uint64_t ln = g->mode == MODE_CONTENT ? line_of(f, ls) : 0;
            loco_status st = on_match(f, lo, ls, le, ln);
            if (st)
                return st;
        }
        pos = le + 1;
    }
    if (g->mode == MODE_CONTENT)
        return flush_after(f, end, UINT64_MAX);
    return LOCO_OK;
}

/* Searches data[scan..end) (end at a line boundary); data[lo..scan) holds earlier lines kept
 * for before-context. */
static loco_status search_window(grep_file *f, size_t lo, size_t scan, size_t end)
{
    if (f->g->literal_len && !f->g->multiline)
        return search_literal(f, lo, scan, end);
    size_t pos = scan;
    while (pos < end && !f->stop) {
        int rc = run_match_any(f, f->data, end, pos);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            if (!f->w->match_error)
                f->w->match_error = rc;
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(f->w->md);
        size_t ms = ov[0], me = ov[1];
        if (ms >= end)
            break;
        size_t ls = line_start(f->data, lo, ms);
        size_t le;
        if (f->g->multiline) {
            size_t last = me > ms ? me - 1 : ms;
            if (last >= end)
                last = end - 1;
            le = line_end(f->data, last, end);
            if (last > ms && f->data[last] == '\n' && last > ls)
                le = last; /* a match ending with the newline ends on that line */
        } else {
            le = line_end(f->data, ms, end);
            if (me > le) {
                /* the match runs past this line: does the line alone match? */
                int r2 = run_match_any(f, f->data + ls, le - ls, 0);
                if (r2 < 0) {
                    pos = le + 1;
                    continue;
                }
            }
        }
        uint64_t ln = 0;
        if (f->g->mode == MODE_CONTENT || f->g->multiline)
            ln = line_of(f, ls);
        loco_status st = on_match(f, lo, ls, le, ln);
        if (st)
            return st;
        if (f->g->multiline && me > le)
            pos = me;
        else
            pos = le + 1;
    }
    if (f->g->mode == MODE_CONTENT)
        return flush_after(f, end, UINT64_MAX);
    return LOCO_OK;
}

/* ---- one file -------------------------------------------------------------------------- */

static loco_status ensure_cap(grep_worker *w, size_t need)
{
    if (w->cap >= need)
        return LOCO_OK;
    size_t cap = w->cap ? w->cap : 65536;
    while (cap < need)
        cap *= 2;
    char *nd = realloc(w->data, cap);
    if (!nd)
        return LOCO_ERR_NOMEM;
    w->data = nd;
    w->cap = cap;
    return LOCO_OK;
}

/* Reads up to n bytes; *failed is set when a read failed (as opposed to end of file). */
static size_t read_full(int fd, char *p, size_t n, bool *failed)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            *failed = true;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Start of the line `keep` lines before end (the lines kept for before-context). */
static size_t keep_from(const char *data, size_t lo, size_t end, size_t keep)
{
    size_t p = end;
    for (size_t i = 0; i < keep && p > lo; i++)
        p = line_start(data, lo, p - 1);
    return p;
}

/* Reads and searches the open file fd window by window. Returns LOCO_OK with f->count set
 * (0 for binary files), LOCO_ERR_IO when a read failed (f->count: the matches before). */
static loco_status search_fd(grep_file *f, int fd, off_t size)
{
    grep_worker *w = f->w;
    const grep_search *g = f->g;
    size_t window = g->multiline ? GREP_MULTILINE_WINDOW : GREP_WINDOW;
    size_t first = (size_t)size < window ? (size_t)size + 1 : window;
    size_t carry = 0, scan = 0;
    bool eof = false, first_read = true;
    f->line0 = 1;
    while (!eof && !f->stop) {
        if (g->cancel && __atomic_load_n(g->cancel, __ATOMIC_ACQUIRE))
            return LOCO_ERR_CANCELLED;
        size_t want = first_read ? first : window;
        if (ensure_cap(w, carry + want + 1))
            return LOCO_ERR_NOMEM;
        f->data = w->data;
        bool failed = false;
        size_t n = read_full(fd, w->data + carry, want, &failed);
        if (failed)
            return LOCO_ERR_IO;
        if (n < want)
            eof = true;
        if (first_read && memchr(w->data, '\0', n < GREP_SNIFF ? n : GREP_SNIFF)) {
            f->count = 0;
            return LOCO_OK;
        }
        const char *nul = memchr(w->data + carry, '\0', n);
        if (nul) {
            if (first_read && eof) {
                f->count = 0; /* a small binary file: skip it whole, as ripgrep does */
                return LOCO_OK;
            }
            n = (size_t)(nul - (w->data + carry)); /* stop at the first NUL */
            eof = true;
        }
        first_read = false;
        size_t len = carry + n;
        size_t end = len;
        bool forced = false;
        if (!eof) {
            const char *nl = os_memrchr(w->data + scan, '\n', len - scan);
            if (nl) {
                end = (size_t)(nl - w->data) + 1;
            } else if (len - scan < GREP_LINE_MAX) {
                carry = len; /* one long line: read on */
                continue;
            } else {
                forced = true; /* a line longer than GREP_LINE_MAX: split it here */
            }
        }
        f->nl_pos = 0;
        f->nl_line = f->line0;
        loco_status rc = search_window(f, 0, scan, end);
        if (rc)
            return rc;
        if (eof || f->stop)
            break;
        /* keep `before` lines and the unfinished line for the next window */
        size_t from = forced ? end : keep_from(w->data, 0, end, g->before);
        if (g->mode == MODE_CONTENT || g->multiline)
            f->line0 = line_of(f, from);
        if (f->last_in_window) {
            if (f->last_end >= from)
                f->last_end -= from;
            else
                f->last_in_window = false;
        }
        memmove(w->data, w->data + from, len - from);
        carry = len - from;
        scan = end - from;
    }
    return LOCO_OK;
}

static loco_status keep_hit(grep_search *g, grep_worker *w, const walk_entry *e,
                            const struct stat *st, size_t count)
{
    size_t bytes = e->path_len + 1 + w->out.len + sizeof(grep_hit);
    pthread_mutex_lock(&g->mu);
    bool over = g->collected + bytes > GREP_COLLECT_MAX;
    if (over)
        g->full = true;
    else
        g->collected += bytes;
    pthread_mutex_unlock(&g->mu);
    if (over)
        return LOCO_ERR_LIMIT;
    if (w->n == w->hcap) {
        size_t cap = w->hcap ? w->hcap * 2 : 64;
        grep_hit *nh = realloc(w->hits, cap * sizeof(*nh));
        if (!nh)
            return LOCO_ERR_NOMEM;
        w->hits = nh;
        w->hcap = cap;
    }
    grep_hit h = {.count = count,
                  .mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec};
    h.path = str_ndup(e->path, e->path_len);
    if (!h.path)
        return LOCO_ERR_NOMEM;
    if (g->mode == MODE_CONTENT) {
        h.text = buf_take(&w->out, &h.text_len);
        if (!h.text) {
            free(h.path);
            return LOCO_ERR_NOMEM;
        }
    }
    w->hits[w->n++] = h;
    return LOCO_OK;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The walker's callback: search one file. Nonzero stops the walk. */
static int grep_file_cb(void *ud, const walk_entry *e)
{
    grep_search *g = ud;
    grep_worker *w = &g->workers[e->worker];
    if (g->types && !gitignore_globset_allows(g->types, base_name(e->path)))
        return 0;
    int fd = openat(e->dir_fd, e->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        return 0;
    }
    grep_file f = {.g = g, .w = w, .path = e->path};
    buf_reset(&w->out);
    loco_status rc = search_fd(&f, fd, st.st_size);
    close(fd);
    if (rc == LOCO_ERR_IO) { /* said in the result, never taken for "no match" */
        pthread_mutex_lock(&g->mu);
        g->unreadable++;
        pthread_mutex_unlock(&g->mu);
        return 0;
    }
    if (rc == LOCO_OK && f.count > 0)
        rc = keep_hit(g, w, e, &st, f.count);
    if (rc == LOCO_ERR_NOMEM || rc == LOCO_ERR_LIMIT) {
        /* LIMIT: one file's lines alone passed GREP_COLLECT_MAX */
        pthread_mutex_lock(&g->mu);
        if (rc == LOCO_ERR_NOMEM)
            g->nomem = true;
        else
            g->full = true;
        pthread_mutex_unlock(&g->mu);
    }
    return rc != LOCO_OK;
}

/* ---- file types (ripgrep's --type names, the common ones) ------------------------------ */

static const struct {
    const char *name;
    const char *globs; /* comma-separated */
} grep_types[] = {
    {"asm", "*.asm,*.s,*.S"},
    {"c", "*.[chH],*.[chH].in,*.cats"},
    {"clojure", "*.clj,*.cljc,*.cljs,*.cljx"},
    {"cmake", "*.cmake,CMakeLists.txt"},
    {"cpp", "*.[ChH],*.cc,*.[ch]pp,*.[ch]xx,*.hh,*.inl,*.[ChH].in,*.cc.in,*.[ch]pp.in,*.[ch]xx.in,*.hh.in"},
    {"cs", "*.cs"},
    {"css", "*.css,*.scss"},
    {"csv", "*.csv"},
    {"dart", "*.dart"},
    {"docker", "*Dockerfile*"},
    {"elixir", "*.ex,*.eex,*.exs,*.heex,*.leex,*.livemd"},
    {"erlang", "*.erl,*.hrl"},
    {"go", "*.go"},
    {"gradle", "*.gradle,*.gradle.kts"},
    {"h", "*.h,*.hh,*.hpp"},
    {"haskell", "*.hs,*.lhs,*.cpphs,*.c2hs,*.hsc"},
    {"html", "*.htm,*.html,*.ejs"},
    {"java", "*.java,*.jsp,*.jspx,*.properties"},
    {"js", "*.js,*.jsx,*.vue,*.cjs,*.mjs"},
    {"json", "*.json,composer.lock,*.sarif"},
    {"jsonl", "*.jsonl"},
    {"julia", "*.jl"},
    {"kotlin", "*.kt,*.kts"},
    {"lua", "*.lua"},
    {"make", "[Gg][Nn][Uu]makefile,[Mm]akefile,[Gg][Nn][Uu]makefile.am,[Mm]akefile.am,"
             "[Gg][Nn][Uu]makefile.in,[Mm]akefile.in,*.mk,*.mak"},
    {"markdown", "*.markdown,*.md,*.mdown,*.mdwn,*.mkd,*.mkdn,*.mdx"},
    {"md", "*.markdown,*.md,*.mdown,*.mdwn,*.mkd,*.mkdn,*.mdx"},
    {"nix", "*.nix"},
    {"objc", "*.h,*.m"},
    {"ocaml", "*.ml,*.mli,*.mll,*.mly"},
    {"perl", "*.perl,*.pl,*.PL,*.plh,*.plx,*.pm,*.t"},
    {"php", "*.php,*.php3,*.php4,*.php5,*.phpt,*.phtml"},
    {"proto", "*.proto"},
    {"protobuf", "*.proto"},
    {"py", "*.py,*.pyi"},
    {"python", "*.py,*.pyi"},
    {"r", "*.R,*.r,*.Rmd,*.Rnw"},
    {"rb", "Gemfile,*.gemspec,.irbrc,Rakefile,*.rb"},
    {"ruby", "Gemfile,*.gemspec,.irbrc,Rakefile,*.rb"},
    {"rust", "*.rs"},
    {"scala", "*.scala,*.sbt"},
    {"sh", "*.bash,*.bashrc,.bash_login,.bash_logout,.bash_profile,.bashrc,*.ksh,.kshrc,"
           "*.sh,.profile,*.zsh,.zlogin,.zlogout,.zprofile,.zshenv,.zshrc,zshenv,zshrc"},
    {"sql", "*.sql,*.psql"},
    {"svelte", "*.svelte"},
    {"swift", "*.swift"},
    {"tf", "*.tf,*.tfvars"},
    {"toml", "*.toml,Cargo.lock"},
    {"ts", "*.ts,*.tsx,*.cts,*.mts"},
    {"typescript", "*.ts,*.tsx,*.cts,*.mts"},
    {"txt", "*.txt"},
    {"vue", "*.vue"},
    {"xml", "*.xml,*.xml.dist,*.dtd,*.xsl,*.xslt,*.xsd,*.xjb,*.rng,*.sch,*.xhtml"},
    {"yaml", "*.yaml,*.yml"},
    {"zig", "*.zig"},
};

/* Builds the filter for a type name; an error result names an unknown type. */
static loco_status build_types(const char *type, gitignore_globset **out, loco_err *err)
{
    *out = NULL;
    for (size_t i = 0; i < LOCO_ARRAY_LEN(grep_types); i++) {
        if (strcmp(grep_types[i].name, type) != 0)
            continue;
        const char *s = grep_types[i].globs;
        while (*s) {
            const char *c = strchr(s, ',');
            size_t n = c ? (size_t)(c - s) : strlen(s);
            char one[128];
            if (n >= sizeof(one))
                n = sizeof(one) - 1;
            memcpy(one, s, n);
            one[n] = '\0';
            loco_status rc = gitignore_globset_add(out, one, err);
            if (rc)
                return rc;
            s += n + (c ? 1 : 0);
        }
        return LOCO_OK;
    }
    return loco_err_set(err, LOCO_ERR_INVALID, "unrecognized file type: %s", type);
}

/* Claude Code splits the glob argument on whitespace, then on commas unless the piece holds a
 * {a,b} group. */
static loco_status build_globs(const char *glob, gitignore_globset **out, loco_err *err)
{
    *out = NULL;
    const char *s = glob;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == '\n')
            s++;
        size_t n = strcspn(s, " \t\n");
        if (n == 0)
            break;
        char *piece = str_ndup(s, n);
        if (!piece)
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        loco_status rc = LOCO_OK;
        if (strchr(piece, '{') && strchr(piece, '}')) {
            rc = gitignore_globset_add(out, piece, err);
        } else {
            char *save = piece;
            while (!rc && *save) {
                size_t m = strcspn(save, ",");
                char c = save[m];
                save[m] = '\0';
                if (m)
                    rc = gitignore_globset_add(out, save, err);
                save += m + (c ? 1 : 0);
            }
        }
        free(piece);
        if (rc)
            return rc;
        s += n;
    }
    return LOCO_OK;
}

/* ---- results --------------------------------------------------------------------------- */

static int cmp_path(const void *a, const void *b)
{
    return strcmp(((const grep_hit *)a)->path, ((const grep_hit *)b)->path);
}

static int cmp_mtime(const void *a, const void *b)
{
    const grep_hit *x = a, *y = b;
    if (x->mtime_ns != y->mtime_ns)
        return x->mtime_ns > y->mtime_ns ? -1 : 1;
    return strcmp(x->path, y->path);
}

/* Claude Code's pagination note: "limit: N" when the limit cut something, "offset: M" when
 * an offset was given. */
static void limit_info(char *out, size_t size, long applied_limit, long offset)
{
    out[0] = '\0';
    if (applied_limit > 0 && offset > 0)
        snprintf(out, size, "limit: %ld, offset: %ld", applied_limit, offset);
    else if (applied_limit > 0)
        snprintf(out, size, "limit: %ld", applied_limit);
    else if (offset > 0)
        snprintf(out, size, "offset: %ld", offset);
}

/* Slices [offset, offset+limit) of n items; *applied is the limit when it cut something. */
static void paginate(size_t n, long limit, long offset, size_t *from, size_t *to, long *applied)
{
    *applied = 0;
    *from = (size_t)offset < n ? (size_t)offset : n;
    *to = n;
    if (limit > 0 && n - *from > (size_t)limit) {
        *to = *from + (size_t)limit;
        *applied = limit;
    }
}

static loco_status format_files(grep_hit *hits, size_t n, long limit, long offset, buf *out)
{
    qsort(hits, n, sizeof(*hits), cmp_mtime);
    size_t from, to;
    long applied;
    paginate(n, limit, offset, &from, &to, &applied);
    if (to == from)
        return buf_appends(out, "No files found");
    char info[96];
    limit_info(info, sizeof(info), applied, offset);
    size_t shown = to - from;
    loco_status rc = buf_appendf(out, "Found %zu %s%s%s", shown, shown == 1 ? "file" : "files",
                                 info[0] ? " " : "", info);
    for (size_t i = from; !rc && i < to; i++) {
        rc = buf_appendc(out, '\n');
        if (!rc)
            rc = buf_appends(out, hits[i].path);
    }
    return rc;
}

static loco_status format_count(grep_hit *hits, size_t n, long limit, long offset, buf *out)
{
    qsort(hits, n, sizeof(*hits), cmp_path);
    size_t from, to;
    long applied;
    paginate(n, limit, offset, &from, &to, &applied);
    size_t total = 0;
    loco_status rc = LOCO_OK;
    for (size_t i = from; !rc && i < to; i++) {
        rc = buf_appendf(out, "%s%s:%zu", i > from ? "\n" : "", hits[i].path, hits[i].count);
        total += hits[i].count;
    }
    if (!rc && to == from)
        rc = buf_appends(out, "No matches found");
    char info[96];
    limit_info(info, sizeof(info), applied, offset);
    size_t files = to - from;
    if (!rc)
        rc = buf_appendf(out, "\n\nFound %zu total %s across %zu %s.%s%s", total,
                         total == 1 ? "occurrence" : "occurrences", files,
                         files == 1 ? "file" : "files", info[0] ? " with pagination = " : "",
                         info);
    return rc;
}

static loco_status format_content(grep_hit *hits, size_t n, bool context, long limit,
                                  long offset, buf *out)
{
    qsort(hits, n, sizeof(*hits), cmp_path);
    /* count output lines, then emit the requested slice of them */
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += count_nl(hits[i].text, hits[i].text_len) + (context && i > 0 ? 1 : 0);
    size_t from, to;
    long applied;
    paginate(lines, limit, offset, &from, &to, &applied);
    size_t idx = 0;
    loco_status rc = LOCO_OK;
    size_t start_len = out->len;
    for (size_t i = 0; !rc && i < n && idx < to; i++) {
        if (context && i > 0) {
            if (idx >= from)
                rc = buf_appends(out, "--\n");
            idx++;
        }
        const char *p = hits[i].text, *e = p + hits[i].text_len;
        while (!rc && p < e && idx < to) {
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(e - p);
            if (idx >= from)
                rc = buf_append(out, p, len);
            idx++;
            p += len;
        }
    }
    if (rc)
        return rc;
    if (out->len > start_len && out->data[out->len - 1] == '\n')
        out->data[--out->len] = '\0';
    if (out->len == start_len)
        rc = buf_appends(out, "No matches found");
    char info[96];
    limit_info(info, sizeof(info), applied, offset);
    if (!rc && info[0])
        rc = buf_appendf(out, "\n\n[Showing results with pagination = %s]", info);
    return rc;
}

/* ---- the tool -------------------------------------------------------------------------- */

typedef struct {
    const char *pattern, *path, *glob, *type, *mode;
    bool icase, numbers, multiline;
    long a, b, c, head_limit, offset;
} grep_args;

static bool read_args(const json_t *args, grep_args *a, buf *err)
{
    *a = (grep_args){.mode = "files_with_matches", .numbers = true, .a = -1, .b = -1, .c = -1,
                     .head_limit = -1, .offset = 0};
    return tools_arg_str(args, "pattern", true, &a->pattern, err) &&
           tools_arg_str(args, "path", false, &a->path, err) &&
           tools_arg_str(args, "glob", false, &a->glob, err) &&
           tools_arg_str(args, "type", false, &a->type, err) &&
           tools_arg_str(args, "output_mode", false, &a->mode, err) &&
           tools_arg_bool(args, "-i", false, &a->icase, err) &&
           tools_arg_bool(args, "-n", false, &a->numbers, err) &&
           tools_arg_bool(args, "multiline", false, &a->multiline, err) &&
           tools_arg_int(args, "-A", false, &a->a, err) &&
           tools_arg_int(args, "-B", false, &a->b, err) &&
           tools_arg_int(args, "-C", false, &a->c, err) &&
           tools_arg_int(args, "context", false, &a->c, err) &&
           tools_arg_int(args, "head_limit", false, &a->head_limit, err) &&
           tools_arg_int(args, "offset", false, &a->offset, err);
}

static size_t clamp_ctx(long v)
{
    if (v < 0)
        return 0;
    return v > GREP_CONTEXT_MAX ? GREP_CONTEXT_MAX : (size_t)v;
}

/* Index just past the ')' closing the group opened at p[i], or 0 when unbalanced. */
static size_t skip_group(const char *p, size_t i)
{
    int depth = 0;
    for (; p[i]; i++) {
        if (p[i] == '\\' && p[i + 1]) {
            i++;
        } else if (p[i] == '[') {
            i++;
            if (p[i] == '^')
                i++;
            if (p[i] == ']')
                i++;
            while (p[i] && p[i] != ']') {
                if (p[i] == '\\' && p[i + 1])
                    i++;
                i++;
            }
            if (!p[i])
                return 0;
        } else if (p[i] == '(') {
            depth++;
        } else if (p[i] == ')' && --depth == 0) {
            return i + 1;
        }
    }
    return 0;
}

/* Parses a {n}, {n,} or {n,m} quantifier at p[i]; *min gets n. 0 when it is not one (PCRE2 then
 * reads '{' as a literal). Returns the index past '}'. */
static size_t quantifier_braces(const char *p, size_t i, long *min)
{
    size_t j = i + 1;
    long n = 0;
    bool digits = false;
    while (p[j] >= '0' && p[j] <= '9') {
        if (n < 100000)
            n = n * 10 + (p[j] - '0');
        j++;
        digits = true;
    }
    if (p[j] == ',') {
        j++;
        while (p[j] >= '0' && p[j] <= '9')
            j++;
    }
    if (!digits || p[j] != '}')
        return 0;
    *min = n;
    return j + 1;
}

/* The longest run of literal bytes that every match must contain, found by a conservative
 * scan of the pattern's top level (ripgrep's inner-literal idea). Gives up (0) on top-level
 * alternation, inline options and \Q...\E. Groups, classes, escapes like \w and optional
 * atoms end a run; an atom followed by '*', '?' or {0,...} is dropped from it. */
static size_t required_literal(const char *p, char *best, size_t cap)
{
    char cur[GREP_LITERAL_MAX];
    size_t cl = 0, bl = 0, atom = 0;
    size_t i = 0;
    for (;;) {
        unsigned char c = (unsigned char)p[i];
        bool end_run = true;
        if (c == '\0') {
            /* finish below */
        } else if (c == '|' || c == ')') {
            return 0;
        } else if (c == '(') {
            if (p[i + 1] == '?' && !strchr(":=!<>", p[i + 2]))
                return 0; /* inline options such as (?i) */
            size_t j = skip_group(p, i);
            if (!j)
                return 0;
            i = j;
        } else if (c == '[') {
            size_t j = i + 1;
            if (p[j] == '^')
                j++;
            if (p[j] == ']')
                j++;
            while (p[j] && p[j] != ']') {
                if (p[j] == '\\' && p[j + 1])
                    j++;
                j++;
            }
            if (!p[j])
                return 0;
            i = j + 1;
        } else if (c == '\\' && (p[i + 1] == 'Q' || p[i + 1] == 'E' || !p[i + 1])) {
            return 0;
        } else if (c == '\\' && isalnum((unsigned char)p[i + 1])) {
            /* \w, \d, \x{..}, \p{..}, \k<..>, back references: not literal */
            i += 2;
            if (p[i] == '{' || p[i] == '<' || p[i] == '\'') {
                char close = p[i] == '{' ? '}' : p[i] == '<' ? '>' : '\'';
                while (p[i] && p[i] != close)
                    i++;
                if (p[i])
                    i++;
            }
        } else if (c == '.' || c == '^' || c == '$') {
            i++;
        } else if (c == '*' || c == '?' || c == '+' ||
                   (c == '{' && quantifier_braces(p, i, &(long){0}))) {
            long min = c == '+' ? 1 : 0;
            size_t j = i + 1;
            if (c == '{')
                j = quantifier_braces(p, i, &min);
            if (min == 0)
                cl = atom; /* the atom before is optional */
            if (p[j] == '?' || p[j] == '+')
                j++; /* lazy or possessive */
            i = j;
        } else {
            /* a literal: an escaped punctuation byte, or one (UTF-8) character */
            const char *src = p + i;
            size_t n = 1, adv = 1;
            if (c == '\\') {
                src = p + i + 1;
                adv = 2;
            } else if (c >= 0xC0) {
                while (n < 4 && utf8_is_cont((unsigned char)p[i + n]))
                    n++;
                adv = n;
            }
            if (cl + n <= sizeof(cur)) {
                atom = cl;
                memcpy(cur + cl, src, n);
                cl += n;
                end_run = false;
            }
            i += adv;
        }
        if (end_run) {
            if (cl > bl && cl <= cap) {
                memcpy(best, cur, cl);
                bl = cl;
            }
            cl = 0;
            atom = 0;
        }
        if (c == '\0')
            break;
    }
    return bl;
}

/* Compiles the pattern; a bad one becomes an error result naming the problem and offset. */
static loco_status compile_pattern(const grep_args *a, pcre2_code **out, buf *res, bool *is_error)
{
    *out = NULL;
    size_t plen = strlen(a->pattern);
    uint32_t opts = PCRE2_MULTILINE;
    if (utf8_valid(a->pattern, plen))
        opts |= PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_UCP;
    if (a->icase)
        opts |= PCRE2_CASELESS;
    if (a->multiline)
        opts |= PCRE2_DOTALL;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc)
        return LOCO_ERR_NOMEM;
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    int code = 0;
    PCRE2_SIZE off = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)a->pattern, plen, opts, &code, &off, cc);
    pcre2_compile_context_free(cc);
    if (!re) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", code);
        return tools_error(res, is_error, "Grep: invalid regex '%s' at offset %zu: %s",
                           a->pattern, (size_t)off, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT, the interpreter still works */
    *out = re;
    return LOCO_OK;
}

static void workers_free(grep_search *g)
{
    for (int i = 0; i < g->nworkers; i++) {
        grep_worker *w = &g->workers[i];
        pcre2_match_data_free(w->md);
        pcre2_match_context_free(w->mctx);
        pcre2_jit_stack_free(w->jit);
        free(w->data);
        buf_release(&w->out);
        for (size_t j = 0; j < w->n; j++) {
            free(w->hits[j].path);
            free(w->hits[j].text);
        }
        free(w->hits);
    }
    free(g->workers);
}

static loco_status workers_init(grep_search *g, int n)
{
    g->workers = calloc((size_t)n, sizeof(*g->workers));
    if (!g->workers)
        return LOCO_ERR_NOMEM;
    g->nworkers = n;
    size_t jit_size = 0;
    bool jit = pcre2_pattern_info(g->code, PCRE2_INFO_JITSIZE, &jit_size) == 0 && jit_size > 0;
    for (int i = 0; i < n; i++) {
        grep_worker *w = &g->workers[i];
        buf_init(&w->out, GREP_COLLECT_MAX);
        w->md = pcre2_match_data_create_from_pattern(g->code, NULL);
        w->mctx = pcre2_match_context_create(NULL);
        if (!w->md || !w->mctx)
            return LOCO_ERR_NOMEM;
        if (jit) {
            w->jit = pcre2_jit_stack_create(32 * 1024, GREP_JIT_STACK_MAX, NULL);
            if (!w->jit)
                return LOCO_ERR_NOMEM;
            pcre2_jit_stack_assign(w->mctx, NULL, w->jit);
        }
    }
    return LOCO_OK;
}

/* Merges every worker's hits into one array (moved, not copied). */
static grep_hit *merge_hits(grep_search *g, size_t *out_n)
{
    size_t total = 0;
    for (int i = 0; i < g->nworkers; i++)
        total += g->workers[i].n;
    grep_hit *all = malloc((total ? total : 1) * sizeof(*all));
    if (!all)
        return NULL;
    size_t k = 0;
    for (int i = 0; i < g->nworkers; i++) {
        grep_worker *w = &g->workers[i];
        if (w->n)
            memcpy(all + k, w->hits, w->n * sizeof(*all));
        k += w->n;
        w->n = 0;
    }
    *out_n = total;
    return all;
}

static loco_status grep_format(grep_search *g, const grep_args *a, buf *res)
{
    size_t n = 0;
    grep_hit *hits = merge_hits(g, &n);
    if (!hits)
        return LOCO_ERR_NOMEM;
    long limit = a->head_limit < 0 ? GREP_DEFAULT_HEAD_LIMIT : a->head_limit;
    long offset = a->offset > 0 ? a->offset : 0;
    loco_status rc;
    if (g->mode == MODE_FILES)
        rc = format_files(hits, n, limit, offset, res);
    else if (g->mode == MODE_COUNT)
        rc = format_count(hits, n, limit, offset, res);
    else
        rc = format_content(hits, n, g->before || g->after, limit, offset, res);
    for (size_t i = 0; i < n; i++) {
        free(hits[i].path);
        free(hits[i].text);
    }
    free(hits);
    int merr = 0;
    for (int i = 0; i < g->nworkers && !merr; i++)
        merr = g->workers[i].match_error;
    if (!rc && merr) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(merr, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", merr);
        rc = buf_appendf(res, "\n\n(Some files could not be fully searched: %s)",
                         (const char *)msg);
    }
    if (!rc && g->unreadable)
        rc = buf_appendf(res, "\n\n(%zu %s could not be read and %s not searched.)",
                         g->unreadable, g->unreadable == 1 ? "file" : "files",
                         g->unreadable == 1 ? "was" : "were");
    if (!rc && g->full)
        rc = buf_appendf(res, "\n\n(Search stopped after collecting %d MB of results; use a "
                              "narrower pattern, path or glob.)",
                         GREP_COLLECT_MAX / (1024 * 1024));
    return rc;
}

static loco_status grep_parse_mode(const char *mode, grep_mode *out)
{
    if (!strcmp(mode, "files_with_matches"))
        *out = MODE_FILES;
    else if (!strcmp(mode, "content"))
        *out = MODE_CONTENT;
    else if (!strcmp(mode, "count"))
        *out = MODE_COUNT;
    else
        return LOCO_ERR_INVALID;
    return LOCO_OK;
}

/* Everything after argument parsing: filters, search, format. */
static loco_status grep_execute(const agent_tool_ctx *ctx, const grep_args *a, grep_mode mode,
                                const char *root, buf *res, bool *is_error)
{
    grep_search g = {.mode = mode, .line_numbers = a->numbers, .multiline = a->multiline,
                     .cancel = ctx->cancel};
    size_t cval = clamp_ctx(a->c);
    g.before = a->b >= 0 ? clamp_ctx(a->b) : cval;
    g.after = a->a >= 0 ? clamp_ctx(a->a) : cval;
    gitignore_globset *globs = NULL, *types = NULL;
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = LOCO_OK;
    if (a->glob && *a->glob)
        rc = build_globs(a->glob, &globs, &err);
    if (!rc && a->type && *a->type)
        rc = build_types(a->type, &types, &err);
    if (rc) {
        if (rc == LOCO_ERR_INVALID)
            rc = tools_error(res, is_error, "Grep: %s", err.msg);
        goto out;
    }
    rc = compile_pattern(a, &g.code, res, is_error);
    if (rc || !g.code)
        goto out;
    if (!a->icase && !a->multiline)
        g.literal_len = required_literal(a->pattern, g.literal, sizeof(g.literal));
    g.types = types;
    pthread_mutex_init(&g.mu, NULL);
    int threads = ctx->threads < 1 ? 1 : ctx->threads > WALK_THREADS_MAX ? WALK_THREADS_MAX
                                                                          : ctx->threads;
    rc = workers_init(&g, threads);
    if (!rc) {
        walk_options wo = {.root = root, .ignore_root = ctx->sb->repo_root, .threads = threads,
                           .globs = globs, .cancel = ctx->cancel};
        rc = walk_run(&wo, grep_file_cb, &g, &err);
        if (!rc && g.nomem)
            rc = LOCO_ERR_NOMEM;
        if (rc == LOCO_ERR_NOT_FOUND || rc == LOCO_ERR_IO || rc == LOCO_ERR_INVALID ||
            rc == LOCO_ERR_LIMIT) {
            rc = tools_error(res, is_error, "Grep: %s", err.msg);
        } else if (!rc) {
            rc = grep_format(&g, a, res);
        }
    }
    workers_free(&g);
    pthread_mutex_destroy(&g.mu);
    pcre2_code_free(g.code);
out:
    gitignore_globset_free(globs);
    gitignore_globset_free(types);
    return rc;
}

static loco_status grep_run(const agent_tool_ctx *ctx, const json_t *args, buf *out,
                            bool *out_is_error)
{
    *out_is_error = false;
    buf err;
    buf_init(&err, TOOLS_ARG_ERR_MAX);
    grep_args a;
    grep_mode mode = MODE_FILES;
    if (!read_args(args, &a, &err)) {
        loco_status rc = tools_error(out, out_is_error, "Grep: %s", buf_str(&err));
        buf_release(&err);
        return rc;
    }
    buf_release(&err);
    if (grep_parse_mode(a.mode, &mode))
        return tools_error(out, out_is_error,
                           "Grep: output_mode must be \"content\", \"files_with_matches\" or "
                           "\"count\", not \"%s\"",
                           a.mode);
    if (strlen(a.pattern) > GREP_PATTERN_MAX)
        return tools_error(out, out_is_error, "Grep: pattern longer than %d bytes",
                           GREP_PATTERN_MAX);
    if (a.head_limit < -1 || a.offset < 0)
        return tools_error(out, out_is_error, "Grep: head_limit and offset must not be negative");
    char *root = NULL;
    loco_status rc = LOCO_OK;
    if (a.path && *a.path) {
        rc = tools_resolve(ctx, "Grep", a.path, SANDBOX_READ, &root, out, out_is_error);
        if (rc || !root)
            return rc;
    } else {
        root = strdup(ctx->sb->repo_root);
        if (!root)
            return LOCO_ERR_NOMEM;
    }
    buf res;
    buf_init(&res, BUF_UNLIMITED);
    rc = grep_execute(ctx, &a, mode, root, &res, out_is_error);
    free(root);
    if (!rc)
        rc = tools_cap_output(&res, tools_max_output(ctx), "output");
    if (!rc)
        rc = buf_append(out, res.data ? res.data : "", res.len);
    buf_release(&res);
    return rc;
}

#define GREP_SCHEMA                                                                              \
    "{\"type\":\"object\",\"properties\":{"                                                      \
    "\"pattern\":{\"type\":\"string\",\"description\":\"The regular expression pattern to "      \
    "search for in file contents\"},"                                                             \
    "\"path\":{\"type\":\"string\",\"description\":\"File or directory to search in (rg PATH). " \
    "Defaults to current working directory.\"},"                                                  \
    "\"glob\":{\"type\":\"string\",\"description\":\"Glob pattern to filter files (e.g. "         \
    "\\\"*.js\\\", \\\"*.{ts,tsx}\\\") - maps to rg --glob\"},"                                   \
    "\"output_mode\":{\"type\":\"string\",\"enum\":[\"content\",\"files_with_matches\","         \
    "\"count\"],\"description\":\"Output mode: \\\"content\\\" shows matching lines (supports "  \
    "-A/-B/-C context, -n line numbers, head_limit), \\\"files_with_matches\\\" shows file "      \
    "paths (supports head_limit), \\\"count\\\" shows match counts (supports head_limit). "       \
    "Defaults to \\\"files_with_matches\\\".\"},"                                                 \
    "\"-B\":{\"type\":\"number\",\"description\":\"Number of lines to show before each match "    \
    "(rg -B). Requires output_mode: \\\"content\\\", ignored otherwise.\"},"                      \
    "\"-A\":{\"type\":\"number\",\"description\":\"Number of lines to show after each match "     \
    "(rg -A). Requires output_mode: \\\"content\\\", ignored otherwise.\"},"                      \
    "\"-C\":{\"type\":\"number\",\"description\":\"Number of lines to show before and after "     \
    "each match (rg -C). Requires output_mode: \\\"content\\\", ignored otherwise.\"},"           \
    "\"-n\":{\"type\":\"boolean\",\"description\":\"Show line numbers in output (rg -n). "        \
    "Requires output_mode: \\\"content\\\", ignored otherwise. Defaults to true.\"},"             \
    "\"-i\":{\"type\":\"boolean\",\"description\":\"Case insensitive search (rg -i)\"},"         \
    "\"type\":{\"type\":\"string\",\"description\":\"File type to search (rg --type). Common "    \
    "types: js, py, rust, go, java, etc. More efficient than include for standard file "          \
    "types.\"},"                                                                                  \
    "\"head_limit\":{\"type\":\"number\",\"description\":\"Limit output to first N "             \
    "lines/entries, equivalent to \\\"| head -N\\\". Defaults to 250; 0 means unlimited.\"},"     \
    "\"offset\":{\"type\":\"number\",\"description\":\"Skip first N lines/entries before "        \
    "applying head_limit. Defaults to 0.\"},"                                                     \
    "\"multiline\":{\"type\":\"boolean\",\"description\":\"Enable multiline mode where . "        \
    "matches newlines and patterns can span lines (rg -U --multiline-dotall). Default: "          \
    "false.\"}},"                                                                                 \
    "\"required\":[\"pattern\"],\"additionalProperties\":false}"

const agent_tool agent_tool_grep = {
    .name = "Grep",
    .description =
        "A powerful search tool built on ripgrep's rules (PCRE2 regular expressions).\n"
        "  - Supports full regex syntax (e.g. \"log.*Error\", \"function\\s+\\w+\")\n"
        "  - Filter files with the glob parameter (e.g. \"*.js\", \"**/*.tsx\") or the type "
        "parameter (e.g. \"js\", \"py\", \"rust\")\n"
        "  - Output modes: \"content\" shows matching lines, \"files_with_matches\" shows only "
        "file paths (default, newest first), \"count\" shows match counts\n"
        "  - Honours .gitignore; skips binary files and version control directories\n"
        "  - Literal braces need escaping (use `interface\\{\\}` to find `interface{}`)\n"
        "  - Multiline matching: by default patterns match within single lines only; use "
        "multiline: true for patterns that span lines",
    .schema_json = GREP_SCHEMA,
    .read_only = true,
    .run = grep_run,
};
