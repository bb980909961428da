/* bash_policy.c: the Bash tool's read-only policy. A conservative lexer walks a shell command
 * (pipelines, lists, subshells, $(...), backticks, process substitutions, here-documents,
 * $'...' and $"..." decoded as bash decodes them) and judges every simple command and
 * redirection; see tools_bash_allowed in tools_int.h. It is an early, friendly refusal only:
 * the kernel confines what the shell can do (confine.h, docs/internals/tools.md). */
#include "base/common.h"

#include <ctype.h>

#include "agent/tools_int.h"
#include "base/str.h"
#include "base/utf8.h"

/* Nesting of substitutions / shells (-c) the policy follows before giving up. */
#define POLICY_MAX_DEPTH 12
/* Words of one simple command and pending here-documents the lexer tracks. */
#define POLICY_MAX_WORDS 4096
#define POLICY_MAX_HEREDOCS 16
#define POLICY_MAX_SCAN_DEPTH 64
/* Longest command the policy judges. */
#define POLICY_MAX_COMMAND (256u * 1024)

typedef struct {
    char *s;
    bool exp; /* holds an expansion ($x, $(...), `...`): its value is unknown */
} pword;

typedef struct {
    char *delim;
    bool quoted;
    bool strip_tabs;
} heredoc;

typedef struct {
    const char *s;
    size_t n, i;
    int depth;
    buf *why;
    bool refused;
    bool in_dbl_bracket; /* inside [[ ... ]]: < and > compare strings */
    int scan_depth;      /* nesting of scan_subs (${...} inside ${...}) */
    pword words[POLICY_MAX_WORDS];
    size_t nwords;
    heredoc hd[POLICY_MAX_HEREDOCS];
    size_t nhd;
} lexer;

static bool policy_text(const char *s, size_t n, int depth, buf *why);
static void judge(lexer *lx, pword *w, size_t argc);

static void refuse(lexer *lx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(lexer *lx, const char *fmt, ...)
{
    if (lx->refused)
        return;
    lx->refused = true;
    if (!lx->why)
        return;
    va_list ap;
    va_start(ap, fmt);
    (void)buf_vappendf(lx->why, fmt, ap);
    va_end(ap);
}

/* Recursively judges the command text s[a..b) (a substitution's body). */
static void check_nested(lexer *lx, size_t a, size_t b)
{
    if (lx->refused)
        return;
    if (lx->depth + 1 > POLICY_MAX_DEPTH) {
        refuse(lx, "commands nested too deeply to judge");
        return;
    }
    if (!policy_text(lx->s + a, b - a, lx->depth + 1, lx->why))
        lx->refused = true;
}

/* Index of the ')' closing the '(' just before i, or n when unbalanced. Quotes, escapes and
 * backticks are skipped. */
static size_t find_close(const char *s, size_t n, size_t i, char open, char close)
{
    int level = 1;
    while (i < n) {
        char c = s[i];
        if (c == '\\') {
            i += 2;
            continue;
        }
        if (c == '\'') {
            const char *q = memchr(s + i + 1, '\'', n - i - 1);
            if (!q)
                return n;
            i = (size_t)(q - s) + 1;
            continue;
        }
        if (c == '"' || c == '`') {
            size_t j = i + 1;
            while (j < n && s[j] != c)
                j += (s[j] == '\\') ? 2 : 1;
            if (j >= n)
                return n;
            i = j + 1;
            continue;
        }
        if (c == open)
            level++;
        else if (c == close && --level == 0)
            return i;
        i++;
    }
    return n;
}

/* Index of the backtick closing the one just before i, or n. */
static size_t find_backtick(const char *s, size_t n, size_t i)
{
    while (i < n && s[i] != '`')
        i += (s[i] == '\\') ? 2 : 1;
    return i < n ? i : n;
}

/* Finds command substitutions in s[a..b) (text that is expanded but not itself a command:
 * here-document bodies, ${...}, arithmetic) and judges them. */
static void scan_subs(lexer *lx, size_t a, size_t b)
{
    if (++lx->scan_depth > POLICY_MAX_SCAN_DEPTH) {
        refuse(lx, "expansions nested too deeply to judge");
        return;
    }
    size_t i = a;
    while (i < b && !lx->refused) {
        char c = lx->s[i];
        if (c == '\\') {
            i += 2;
            continue;
        }
        if (c == '`') {
            size_t e = find_backtick(lx->s, b, i + 1);
            if (e >= b) {
                refuse(lx, "unbalanced backtick");
                return;
            }
            check_nested(lx, i + 1, e);
            i = e + 1;
            continue;
        }
        if (c == '$' && i + 1 < b && (lx->s[i + 1] == '(' || lx->s[i + 1] == '{')) {
            char open = lx->s[i + 1];
            size_t e = find_close(lx->s, b, i + 2, open, open == '(' ? ')' : '}');
            if (e >= b) {
                refuse(lx, "unbalanced $%c", open);
                return;
            }
            if (open == '(' && lx->s[i + 2] != '(')
                check_nested(lx, i + 2, e);
            else
                scan_subs(lx, i + 2, e);
            i = e + 1;
            continue;
        }
        i++;
    }
    lx->scan_depth--;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Appends code point v to w as UTF-8 (bash in a UTF-8 locale). */
static void append_utf8(buf *w, unsigned long v)
{
    char b[4];
    if (v <= 0x10ffff)
        (void)buf_append(w, b, utf8_encode((uint32_t)v, b));
}

/* Appends the value of the body s[0..n) of $'...' to w, decoded as bash does: \a \b \e \E
 * \f \n \r \t \v \\ \' \" \?, \NNN (octal), \xHH, \uHHHH, \UHHHHHHHH, \cX; other
 * escapes stay as written. A NUL ends the string (bash drops the rest). */
static void decode_ansi_c(const char *s, size_t n, buf *w)
{
    size_t i = 0;
    while (i < n) {
        char c = s[i++];
        if (c != '\\' || i >= n) {
            (void)buf_appendc(w, c);
            continue;
        }
        char e = s[i++];
        unsigned long v = 0;
        int digits = 0, max = 0;
        switch (e) {
        case 'a': v = 7; break;
        case 'b': v = 8; break;
        case 'e':
        case 'E': v = 27; break;
        case 'f': v = 12; break;
        case 'n': v = 10; break;
        case 'r': v = 13; break;
        case 't': v = 9; break;
        case 'v': v = 11; break;
        case '\\':
        case '\'':
        case '"':
        case '?': v = (unsigned char)e; break;
        case 'c':
            if (i >= n) {
                (void)buf_append(w, "\\c", 2);
                continue;
            }
            v = (unsigned char)s[i++] & 0x1f;
            break;
        case 'x':
        case 'u':
        case 'U':
            max = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
            while (digits < max && i < n && hex_value(s[i]) >= 0)
                v = v * 16 + (unsigned long)hex_value(s[i++]), digits++;
            if (digits == 0) {
                (void)buf_appendc(w, '\\');
                (void)buf_appendc(w, e);
                continue;
            }
            break;
        default:
            if (e >= '0' && e <= '7') {
                v = (unsigned long)(e - '0');
                while (++digits < 3 && i < n && s[i] >= '0' && s[i] <= '7')
                    v = v * 8 + (unsigned long)(s[i++] - '0');
                v &= 0xff;
                break;
            }
            (void)buf_appendc(w, '\\');
            (void)buf_appendc(w, e);
            continue;
        }
        if (v == 0)
            return; /* NUL: bash ends the string here */
        if (e == 'u' || e == 'U')
            append_utf8(w, v);
        else
            (void)buf_appendc(w, (char)v);
    }
}

static bool is_meta(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == ';' || c == '&' || c == '|' || c == '(' ||
           c == ')' || c == '<' || c == '>';
}

/* Handles a '$' at lx->i inside a word (quoted or not); appends a placeholder to w. */
static void lex_dollar(lexer *lx, buf *w, bool *exp)
{
    const char *s = lx->s;
    size_t i = lx->i + 1;
    *exp = true;
    (void)buf_appendc(w, '$');
    if (i < lx->n && (s[i] == '(' || s[i] == '{')) {
        char open = s[i];
        size_t e = find_close(s, lx->n, i + 1, open, open == '(' ? ')' : '}');
        if (e >= lx->n) {
            refuse(lx, "unbalanced $%c", open);
            lx->i = lx->n;
            return;
        }
        if (open == '(' && i + 1 < lx->n && s[i + 1] == '(')
            scan_subs(lx, i + 2, e); /* $(( arithmetic )) */
        else if (open == '(')
            check_nested(lx, i + 1, e);
        else
            scan_subs(lx, i + 1, e);
        lx->i = e + 1;
        return;
    }
    while (i < lx->n && (isalnum((unsigned char)s[i]) || s[i] == '_'))
        i++;
    if (i == lx->i + 1 && i < lx->n && strchr("@*#?$!-", s[i]))
        i++;
    if (i == lx->i + 1)
        *exp = false; /* a lone '$' is literal */
    lx->i = i;
}

static void lex_backtick(lexer *lx, bool *exp)
{
    size_t e = find_backtick(lx->s, lx->n, lx->i + 1);
    if (e >= lx->n) {
        refuse(lx, "unbalanced backtick");
        lx->i = lx->n;
        return;
    }
    check_nested(lx, lx->i + 1, e);
    *exp = true;
    lx->i = e + 1;
}

static void lex_dquote(lexer *lx, buf *w, bool *exp)
{
    lx->i++;
    while (lx->i < lx->n && !lx->refused) {
        char c = lx->s[lx->i];
        if (c == '"') {
            lx->i++;
            return;
        }
        if (c == '\\' && lx->i + 1 < lx->n) {
            char d = lx->s[lx->i + 1];
            if (d != '\n') {
                if (!strchr("$`\"\\", d))
                    (void)buf_appendc(w, '\\');
                (void)buf_appendc(w, d);
            }
            lx->i += 2;
            continue;
        }
        if (c == '$') {
            lex_dollar(lx, w, exp);
            continue;
        }
        if (c == '`') {
            lex_backtick(lx, exp);
            continue;
        }
        (void)buf_appendc(w, c);
        lx->i++;
    }
    refuse(lx, "unbalanced double quote");
}

/* Lexes one word at lx->i into w (quote removal applied, expansions as '$'). *quoted is set
 * when any quoting appeared (here-document delimiters). */
static void lex_word(lexer *lx, buf *w, bool *exp, bool *quoted)
{
    *exp = false;
    *quoted = false;
    const char *s = lx->s;
    int braces = 0;
    bool brace_list = false;
    while (lx->i < lx->n && !lx->refused) {
        char c = s[lx->i];
        if ((c == '<' || c == '>') && lx->i + 1 < lx->n && s[lx->i + 1] == '(') {
            size_t e = find_close(s, lx->n, lx->i + 2, '(', ')');
            if (e >= lx->n) {
                refuse(lx, "unbalanced process substitution");
                return;
            }
            check_nested(lx, lx->i + 2, e);
            *exp = true;
            (void)buf_appendc(w, '$');
            lx->i = e + 1;
            continue;
        }
        if (is_meta(c))
            return;
        if (c == '\\') {
            if (lx->i + 1 < lx->n && s[lx->i + 1] != '\n')
                (void)buf_appendc(w, s[lx->i + 1]);
            *quoted = true;
            lx->i += 2;
            continue;
        }
        if (c == '\'' || (c == '$' && lx->i + 1 < lx->n && s[lx->i + 1] == '\'')) {
            size_t start = lx->i + (c == '$' ? 2 : 1);
            size_t j = start;
            while (j < lx->n && s[j] != '\'')
                j += (c == '$' && s[j] == '\\') ? 2 : 1;
            if (j >= lx->n) {
                refuse(lx, "unbalanced single quote");
                return;
            }
            if (c == '$')
                decode_ansi_c(s + start, j - start, w);
            else
                (void)buf_append(w, s + start, j - start);
            *quoted = true;
            lx->i = j + 1;
            continue;
        }
        if (c == '"' || (c == '$' && lx->i + 1 < lx->n && s[lx->i + 1] == '"')) {
            if (c == '$')
                lx->i++; /* $"...": a translated string, judged as "..." */
            *quoted = true;
            lex_dquote(lx, w, exp);
            continue;
        }
        if (c == '$') {
            lex_dollar(lx, w, exp);
            continue;
        }
        if (c == '`') {
            lex_backtick(lx, exp);
            (void)buf_appendc(w, '$');
            continue;
        }
        /* Unquoted {a,b} and {a..b} are brace expansions: the word's value is not its text. */
        if (c == '{')
            braces++;
        else if (braces > 0 && (c == ',' || (c == '.' && lx->i + 1 < lx->n && s[lx->i + 1] == '.')))
            brace_list = true;
        else if (c == '}' && braces > 0 && brace_list)
            *exp = true;
        (void)buf_appendc(w, c);
        lx->i++;
    }
}

static void skip_blanks(lexer *lx)
{
    while (lx->i < lx->n) {
        char c = lx->s[lx->i];
        if (c == ' ' || c == '\t') {
            lx->i++;
        } else if (c == '\\' && lx->i + 1 < lx->n && lx->s[lx->i + 1] == '\n') {
            lx->i += 2;
        } else {
            break;
        }
    }
}

static bool is_null_target(const char *t)
{
    return strcmp(t, "/dev/null") == 0 || strcmp(t, "/dev/stdout") == 0 ||
           strcmp(t, "/dev/stderr") == 0;
}

/* Lexes a redirection operator at lx->i and its target, judging it. */
static void lex_redir(lexer *lx, bool amp)
{
    const char *s = lx->s;
    size_t i = lx->i + (amp ? 1 : 0);
    char op[4] = {0};
    size_t k = 0;
    op[k++] = s[i++];
    if (op[0] == '>' && i < lx->n && (s[i] == '>' || s[i] == '|' || s[i] == '&'))
        op[k++] = s[i++];
    else if (op[0] == '<' && i < lx->n && (s[i] == '<' || s[i] == '&' || s[i] == '>')) {
        op[k++] = s[i++];
        if (op[1] == '<' && i < lx->n && (s[i] == '<' || s[i] == '-'))
            op[k++] = s[i++];
    }
    lx->i = i;
    skip_blanks(lx);
    buf w;
    buf_init(&w, 4096);
    bool exp = false, quoted = false;
    lex_word(lx, &w, &exp, &quoted);
    const char *t = buf_str(&w);
    if (!lx->refused && w.len == 0 && !quoted)
        refuse(lx, "a redirection without a target");
    if (lx->refused) {
        buf_release(&w);
        return;
    }
    bool is_heredoc = strcmp(op, "<<") == 0 || strcmp(op, "<<-") == 0;
    bool dup = (strcmp(op, ">&") == 0 || strcmp(op, "<&") == 0) && !amp;
    bool is_fd = w.len > 0 && !exp && strspn(t, "0123456789-") == w.len;
    bool writes = amp || op[0] == '>' || strcmp(op, "<>") == 0;
    if (is_heredoc) {
        if (lx->nhd >= POLICY_MAX_HEREDOCS) {
            refuse(lx, "too many here-documents to judge");
        } else {
            heredoc *h = &lx->hd[lx->nhd++];
            h->delim = buf_take(&w, NULL);
            if (!h->delim) {
                lx->nhd--;
                refuse(lx, "out of memory");
            }
            h->quoted = quoted;
            h->strip_tabs = op[2] == '-';
        }
    } else if (dup && is_fd) {
        /* 2>&1, >&2, <&0, 3>&- : descriptor duplication */
    } else if (writes && (exp || !is_null_target(t))) {
        refuse(lx, "the redirection '%s%s %s' writes to a file", amp ? "&" : "", op, t);
    }
    buf_release(&w);
}

/* Skips the bodies of pending here-documents (lx->i is just past a newline), judging
 * substitutions in unquoted ones. */
static void skip_heredocs(lexer *lx)
{
    for (size_t h = 0; h < lx->nhd && !lx->refused; h++) {
        heredoc *d = &lx->hd[h];
        for (;;) {
            if (lx->i >= lx->n)
                break; /* bash warns and ends the document at EOF */
            const char *nl = memchr(lx->s + lx->i, '\n', lx->n - lx->i);
            size_t end = nl ? (size_t)(nl - lx->s) : lx->n;
            size_t a = lx->i;
            while (d->strip_tabs && a < end && lx->s[a] == '\t')
                a++;
            bool match = end - a == strlen(d->delim) && memcmp(lx->s + a, d->delim, end - a) == 0;
            if (!match && !d->quoted)
                scan_subs(lx, lx->i, end);
            lx->i = nl ? end + 1 : lx->n;
            if (match)
                break;
        }
    }
    for (size_t h = 0; h < lx->nhd; h++)
        free(lx->hd[h].delim);
    lx->nhd = 0;
}

static void end_command(lexer *lx)
{
    if (!lx->refused && lx->nwords > 0)
        judge(lx, lx->words, lx->nwords);
    for (size_t k = 0; k < lx->nwords; k++)
        free(lx->words[k].s);
    lx->nwords = 0;
    lx->in_dbl_bracket = false;
}

static void push_word(lexer *lx, buf *w, bool exp)
{
    if (lx->nwords >= POLICY_MAX_WORDS) {
        refuse(lx, "a command with too many words to judge");
        return;
    }
    char *s = buf_take(w, NULL);
    if (!s) {
        refuse(lx, "out of memory");
        return;
    }
    if (strcmp(s, "[[") == 0)
        lx->in_dbl_bracket = true;
    else if (strcmp(s, "]]") == 0)
        lx->in_dbl_bracket = false;
    lx->words[lx->nwords].s = s;
    lx->words[lx->nwords].exp = exp;
    lx->nwords++;
}

/* True when the word just lexed (digits, or {name}) is a descriptor prefix of a redirection
 * that follows immediately. */
static bool is_fd_prefix(const lexer *lx, const buf *w, bool quoted, bool exp)
{
    if (quoted || exp || w->len == 0 || lx->i >= lx->n)
        return false;
    char c = lx->s[lx->i];
    if (c != '<' && c != '>')
        return false;
    const char *t = buf_str(w);
    if (strspn(t, "0123456789") == w->len)
        return true;
    return t[0] == '{' && t[w->len - 1] == '}';
}

/* The arithmetic command (( ... )) at lx->i: only its substitutions run anything. */
static void lex_arith(lexer *lx)
{
    size_t e = find_close(lx->s, lx->n, lx->i + 2, '(', ')');
    if (e >= lx->n) {
        refuse(lx, "unbalanced ((");
        return;
    }
    scan_subs(lx, lx->i + 2, e);
    lx->i = e + 1;
    if (lx->i < lx->n && lx->s[lx->i] == ')')
        lx->i++;
}

static void lex_all(lexer *lx)
{
    buf w;
    buf_init(&w, 1u << 20);
    while (lx->i < lx->n && !lx->refused) {
        skip_blanks(lx);
        if (lx->i >= lx->n)
            break;
        char c = lx->s[lx->i];
        char d = lx->i + 1 < lx->n ? lx->s[lx->i + 1] : '\0';
        if (c == '\n') {
            end_command(lx);
            lx->i++;
            skip_heredocs(lx);
        } else if (c == '#') {
            while (lx->i < lx->n && lx->s[lx->i] != '\n')
                lx->i++;
        } else if (c == '&' && d == '>') {
            lex_redir(lx, true);
        } else if ((c == '<' || c == '>') && d != '(' && lx->in_dbl_bracket) {
            lx->i++; /* string comparison inside [[ ]] */
        } else if ((c == '<' || c == '>') && d != '(') {
            lex_redir(lx, false);
        } else if (c == '(' && d == '(' && lx->nwords == 0) {
            lex_arith(lx);
        } else if (c == ';' || c == '&' || c == '|' || c == '(' || c == ')') {
            end_command(lx);
            lx->i++;
        } else {
            bool exp, quoted;
            buf_reset(&w);
            lex_word(lx, &w, &exp, &quoted);
            if (lx->refused)
                break;
            if (is_fd_prefix(lx, &w, quoted, exp))
                continue; /* the redirection follows */
            push_word(lx, &w, exp);
        }
    }
    buf_release(&w);
    end_command(lx);
    for (size_t h = 0; h < lx->nhd; h++)
        free(lx->hd[h].delim);
    lx->nhd = 0;
}

static bool policy_text(const char *s, size_t n, int depth, buf *why)
{
    lexer *lx = calloc(1, sizeof(*lx));
    if (!lx) {
        if (why)
            (void)buf_appends(why, "out of memory");
        return false;
    }
    lx->s = s;
    lx->n = n;
    lx->depth = depth;
    lx->why = why;
    lex_all(lx);
    bool ok = !lx->refused;
    free(lx);
    return ok;
}

/* ---- judging simple commands ---------------------------------------------------------- */

static bool in_list(const char *s, const char *const *list)
{
    for (size_t k = 0; list[k]; k++)
        if (strcmp(s, list[k]) == 0)
            return true;
    return false;
}

static bool is_assignment(const char *s)
{
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    size_t k = 1;
    while (isalnum((unsigned char)s[k]) || s[k] == '_')
        k++;
    if (s[k] == '[') {
        const char *e = strchr(s + k, ']');
        if (!e)
            return false;
        k = (size_t)(e - s) + 1;
    }
    if (s[k] == '+')
        k++;
    return s[k] == '=';
}

/* The first operand of argv (skipping options), or NULL. */
static const char *first_operand(pword *w, size_t argc, size_t *out_k)
{
    for (size_t k = 1; k < argc; k++) {
        if (w[k].s[0] != '-') {
            if (out_k)
                *out_k = k;
            return w[k].s;
        }
    }
    return NULL;
}

static bool has_arg(pword *w, size_t argc, const char *const *list)
{
    for (size_t k = 1; k < argc; k++)
        if (in_list(w[k].s, list))
            return true;
    return false;
}

static bool has_prefix_arg(pword *w, size_t argc, const char *prefix)
{
    for (size_t k = 1; k < argc; k++)
        if (str_starts_with(w[k].s, prefix))
            return true;
    return false;
}

/* True when a short-option bundle ("-ni") in argv has letter c before any letter of
 * stop (letters whose value is the rest of the bundle or the next word). */
static bool short_flag(pword *w, size_t argc, char c, const char *stop)
{
    for (size_t k = 1; k < argc; k++) {
        const char *a = w[k].s;
        if (a[0] != '-' || a[1] == '-' || a[1] == '\0')
            continue;
        for (size_t j = 1; a[j]; j++) {
            if (a[j] == c)
                return true;
            if (strchr(stop, a[j])) {
                if (a[j + 1] == '\0')
                    k++; /* the value is the next word */
                break;
            }
        }
    }
    return false;
}

static const char *const WRITERS[] = {
    "rm", "rmdir", "mv", "cp", "dd", "touch", "mkdir", "chmod", "chown", "chgrp", "ln",
    "truncate", "shred", "install", "mkfifo", "mknod", "link", "unlink", "rename", "split",
    "csplit", "mktemp", "vi", "vim", "nvim", "nano", "emacs", "ed", "ex", "pico", "joe",
    "micro", "zip", "chattr", "setfacl", "cpio", "tmux", "screen", NULL};
static const char *const NETWORK[] = {
    "curl", "wget", "nc", "ncat", "netcat", "socat", "ssh", "scp", "sftp", "rsync", "ftp",
    "tftp", "telnet", "lftp", "aria2c", "http", "https", "ping", "ping6", "dig", "nslookup",
    "host", "whois", "traceroute", "mtr", "nmap", "npx", "git-upload-pack", "svn", NULL};
static const char *const SYSTEM[] = {
    "sudo", "su", "doas", "kill", "pkill", "killall", "shutdown", "reboot", "poweroff", "halt",
    "systemctl", "service", "mount", "umount", "crontab", "at", "batch", "docker", "podman",
    "kubectl", "passwd", "useradd", "userdel", "usermod", "groupadd", "chroot", "mkfs",
    "fdisk", "parted", "iptables", "nft", "modprobe", "insmod", "rmmod", "swapon", "swapoff",
    NULL};
static const char *const SHELLS[] = {"bash", "sh", "dash", "zsh", "ksh", "mksh", "fish", NULL};

static void refuse_cmd(lexer *lx, const char *name, const char *what)
{
    refuse(lx, "`%s` %s", name, what);
}

/* Judges the rest of argv as a command of its own (wrappers: env, nice, xargs ...). */
static void judge_tail(lexer *lx, pword *w, size_t argc, size_t from)
{
    if (from < argc)
        judge(lx, w + from, argc - from);
}

/* Options taking a value, per wrapper (short letters); long options use --opt=value. */
static size_t skip_opts(pword *w, size_t argc, size_t k, const char *valued)
{
    while (k < argc && w[k].s[0] == '-' && w[k].s[1] != '\0') {
        const char *a = w[k].s;
        k++;
        if (strcmp(a, "--") == 0)
            break;
        if (a[1] != '-' && a[2] == '\0' && strchr(valued, a[1]))
            k++;
    }
    return k;
}

static void judge_wrapper(lexer *lx, const char *name, pword *w, size_t argc)
{
    size_t k = 1;
    if (strcmp(name, "env") == 0) {
        if (has_arg(w, argc, (const char *const[]){"-S", "--split-string", NULL}) ||
            has_prefix_arg(w, argc, "--split-string")) {
            refuse_cmd(lx, name, "-S runs a command string the policy cannot judge");
            return;
        }
        k = skip_opts(w, argc, 1, "uC");
        while (k < argc && is_assignment(w[k].s))
            k++;
    } else if (strcmp(name, "timeout") == 0) {
        k = skip_opts(w, argc, 1, "sk");
        k++; /* the duration */
    } else if (strcmp(name, "nice") == 0 || strcmp(name, "ionice") == 0) {
        k = skip_opts(w, argc, 1, "nct");
    } else if (strcmp(name, "stdbuf") == 0) {
        k = skip_opts(w, argc, 1, "ioe");
    } else if (strcmp(name, "command") == 0) {
        if (has_arg(w, argc, (const char *const[]){"-v", "-V", NULL}))
            return; /* lookup only */
        k = skip_opts(w, argc, 1, "");
    } else {
        k = skip_opts(w, argc, 1, "");
    }
    judge_tail(lx, w, argc, k);
}

static void judge_xargs(lexer *lx, pword *w, size_t argc)
{
    size_t k = 1;
    while (k < argc && w[k].s[0] == '-') {
        const char *a = w[k].s;
        k++;
        if (strcmp(a, "--") == 0)
            break;
        if (a[1] != '-' && a[2] == '\0' && strchr("IaEdLnPs", a[1]))
            k++;
    }
    judge_tail(lx, w, argc, k);
}

static void judge_find(lexer *lx, pword *w, size_t argc)
{
    static const char *const writes[] = {"-delete", "-fprint", "-fprint0", "-fprintf", "-fls",
                                         NULL};
    static const char *const execs[] = {"-exec", "-execdir", "-ok", "-okdir", NULL};
    for (size_t k = 1; k < argc && !lx->refused; k++) {
        if (in_list(w[k].s, writes)) {
            refuse(lx, "`find %s` deletes or writes files", w[k].s);
            return;
        }
        if (in_list(w[k].s, execs)) {
            size_t e = k + 1;
            while (e < argc && strcmp(w[e].s, ";") != 0 && strcmp(w[e].s, "+") != 0)
                e++;
            if (e > k + 1)
                judge(lx, w + k + 1, e - k - 1);
            k = e;
        }
    }
}

/* /dev/stdin, /dev/fd/N, /proc/self/fd/N: commands read from a pipe or a substitution. */
static bool is_stdin_path(const char *a)
{
    return strcmp(a, "/dev/stdin") == 0 || str_starts_with(a, "/dev/fd/") ||
           str_starts_with(a, "/proc/self/fd/") || strcmp(a, "-") == 0;
}

/* source FILE / . FILE: a file in the repository is not judged (like a script run by path),
 * commands generated on the spot are refused. */
static void judge_source(lexer *lx, const char *name, pword *w, size_t argc)
{
    size_t k = 1;
    if (k < argc && strcmp(w[k].s, "--") == 0)
        k++;
    if (k < argc && (w[k].exp || is_stdin_path(w[k].s)))
        refuse_cmd(lx, name, "of generated commands cannot be judged");
}

static void judge_shell(lexer *lx, const char *name, pword *w, size_t argc)
{
    for (size_t k = 1; k < argc; k++) {
        const char *a = w[k].s;
        if (w[k].exp || is_stdin_path(a)) {
            refuse_cmd(lx, name, "running generated commands cannot be judged");
            return;
        }
        if (a[0] != '-' && a[0] != '+')
            return; /* a script file: not judged (docs) */
        if (strcmp(a, "-o") == 0 || strcmp(a, "+o") == 0 || strcmp(a, "-O") == 0) {
            k++;
            continue;
        }
        if (a[0] == '-' && a[1] != '-' && strchr(a, 'c')) {
            if (k + 1 >= argc) {
                refuse_cmd(lx, name, "-c without a command");
                return;
            }
            if (w[k + 1].exp) {
                refuse_cmd(lx, name, "-c with a command built from expansions cannot be judged");
                return;
            }
            const char *cmd = w[k + 1].s;
            if (lx->depth + 1 > POLICY_MAX_DEPTH)
                refuse(lx, "commands nested too deeply to judge");
            else if (!policy_text(cmd, strlen(cmd), lx->depth + 1, lx->why))
                lx->refused = true;
            return;
        }
    }
    if (!has_arg(w, argc, (const char *const[]){"--version", "--help", NULL}))
        refuse_cmd(lx, name, "reading commands from its input cannot be judged");
}

/* Judges argv[1..] joined by spaces as a command line (eval, watch). */
static void judge_joined(lexer *lx, const char *name, pword *w, size_t argc, size_t from)
{
    buf line;
    buf_init(&line, 1u << 20);
    for (size_t k = from; k < argc; k++) {
        if (w[k].exp) {
            refuse_cmd(lx, name, "with arguments built from expansions cannot be judged");
            buf_release(&line);
            return;
        }
        (void)buf_appendf(&line, "%s%s", k > from ? " " : "", w[k].s);
    }
    if (!policy_text(buf_str(&line), line.len, lx->depth + 1, lx->why))
        lx->refused = true;
    buf_release(&line);
}

static const char *git_subcommand(pword *w, size_t argc, size_t *out_k)
{
    size_t k = 1;
    while (k < argc && w[k].s[0] == '-') {
        const char *a = w[k].s;
        k++;
        if (strcmp(a, "-C") == 0 || strcmp(a, "-c") == 0 || strcmp(a, "--git-dir") == 0 ||
            strcmp(a, "--work-tree") == 0 || strcmp(a, "--namespace") == 0 ||
            strcmp(a, "--config-env") == 0)
            k++;
    }
    *out_k = k;
    return k < argc ? w[k].s : NULL;
}

/* The operands of a git subcommand (after sub at index k), skipping options. */
static size_t count_operands(pword *w, size_t argc, size_t k)
{
    size_t n = 0;
    for (size_t j = k + 1; j < argc; j++)
        if (w[j].s[0] != '-')
            n++;
    return n;
}

static void judge_git(lexer *lx, pword *w, size_t argc)
{
    static const char *const refused[] = {
        "commit", "push", "checkout", "switch", "restore", "reset", "clean", "apply", "am",
        "rebase", "merge", "pull", "fetch", "clone", "add", "rm", "mv", "gc", "init",
        "cherry-pick", "revert", "submodule", "update-index", "update-ref", "prune", "repack",
        "filter-branch", "filter-repo", "replace", "bisect", "lfs", "maintenance",
        "sparse-checkout", "bundle", "send-email", "daemon", "instaweb", "svn", "p4",
        "credential", "fast-import", "read-tree", "write-tree", "commit-tree", "mktag", "mktree",
        "pack-objects", "unpack-objects", "checkout-index", "merge-file", "mergetool", "citool",
        "gui", "pack-refs", "prune-packed", "remote-ext", "stage", NULL};
    size_t k;
    const char *sub = git_subcommand(w, argc, &k);
    if (!sub)
        return;
    if (has_prefix_arg(w, argc, "--output") || has_prefix_arg(w, argc, "--exec")) {
        refuse(lx, "`git %s --output/--exec` writes files or runs commands", sub);
        return;
    }
    pword *s = w + k;
    size_t sc = argc - k;
    const char *op = first_operand(s, sc, NULL);
    bool bad = in_list(sub, refused);
    if (strcmp(sub, "stash") == 0 || strcmp(sub, "notes") == 0)
        bad = !(op && (strcmp(op, "list") == 0 || strcmp(op, "show") == 0));
    else if (strcmp(sub, "worktree") == 0)
        bad = !(op && strcmp(op, "list") == 0);
    else if (strcmp(sub, "config") == 0)
        bad = !(has_arg(s, sc, (const char *const[]){"--get", "--get-all", "--get-regexp",
                                                     "--list", "-l", "--get-urlmatch", NULL}) ||
                (op && (strcmp(op, "get") == 0 || strcmp(op, "list") == 0)));
    else if (strcmp(sub, "branch") == 0 || strcmp(sub, "tag") == 0) {
        static const char *const destructive[] = {
            "-d", "-D", "--delete", "-m", "-M", "--move", "-c", "-C", "--copy", "-f",
            "--force", "-u", "--set-upstream-to", "--unset-upstream", "--edit-description",
            NULL};
        static const char *const tag_writes[] = {"-a", "-s", "-F", "-m", "--annotate",
                                                 "--sign", "--file", "--message", NULL};
        static const char *const listing[] = {"-l", "--list", "--contains", "--no-contains",
                                              "--merged", "--no-merged", "--points-at", NULL};
        bad = has_arg(s, sc, destructive) ||
              (strcmp(sub, "tag") == 0 && has_arg(s, sc, tag_writes)) ||
              (count_operands(s, sc, 0) > 0 && !has_arg(s, sc, listing));
    } else if (strcmp(sub, "remote") == 0)
        bad = op && strcmp(op, "show") != 0 && strcmp(op, "get-url") != 0;
    else if (strcmp(sub, "reflog") == 0)
        bad = op && (strcmp(op, "expire") == 0 || strcmp(op, "delete") == 0);
    else if (strcmp(sub, "format-patch") == 0)
        bad = !has_arg(s, sc, (const char *const[]){"--stdout", NULL});
    else if (strcmp(sub, "archive") == 0)
        bad = has_arg(s, sc, (const char *const[]){"-o", NULL});
    else if (strcmp(sub, "symbolic-ref") == 0)
        bad = count_operands(s, sc, 0) > 1 || has_arg(s, sc, (const char *const[]){"-d", NULL});
    else if (strcmp(sub, "hash-object") == 0)
        bad = has_arg(s, sc, (const char *const[]){"-w", NULL});
    if (bad)
        refuse(lx, "`git %s` changes the repository or reaches the network", sub);
}

static void judge_pkg(lexer *lx, const char *name, pword *w, size_t argc)
{
    static const char *const subs[] = {
        "install", "i", "ci", "add", "uninstall", "remove", "rm", "r", "un", "update", "up",
        "upgrade", "dist-upgrade", "full-upgrade", "autoremove", "purge", "reinstall",
        "publish", "link", "unlink", "download", "source", "build-dep", "clean", "autoclean",
        "fetch", "exec", "dlx", "x", "create", "init", "run", "run-script", "test", "start",
        "build", "pack", "prune", "dedupe", "rebuild", "audit", "get", "mod", "generate",
        "wheel", "check", "clippy", "fix", "fmt", "doc", "bench", "vendor", "new", "tap",
        "untap", "sync", "cache", "set", "config", NULL};
    const char *op = first_operand(w, argc, NULL);
    if ((op && in_list(op, subs)) || (strcmp(name, "pacman") == 0 && !op))
        refuse(lx, "`%s %s` installs, builds or changes packages", name, op ? op : "");
}

static void judge_compress(lexer *lx, const char *name, pword *w, size_t argc)
{
    static const char *const keep[] = {"-c", "--stdout", "--to-stdout", "-t", "--test", "-l",
                                       "--list", "-h", "--help", "-V", "--version", NULL};
    if (count_operands(w, argc, 0) == 0 || has_arg(w, argc, keep) ||
        short_flag(w, argc, 'c', "S") || short_flag(w, argc, 't', "S"))
        return;
    refuse_cmd(lx, name, "replaces files with (de)compressed ones (use -c to print)");
}

static void judge_tar(lexer *lx, pword *w, size_t argc)
{
    if (argc < 2)
        return;
    const char *a = w[1].s;
    bool list = has_arg(w, argc, (const char *const[]){"--list", "-t", "--version", "--help",
                                                       NULL});
    if (!list && a[0] != '-' && strchr(a, 't') && !strpbrk(a, "xcruA"))
        list = true;
    if (!list && a[0] == '-' && a[1] != '-' && strchr(a, 't'))
        list = true;
    if (!list)
        refuse(lx, "`tar` other than listing (-t) creates or extracts files");
}

static void judge_build(lexer *lx, const char *name, pword *w, size_t argc)
{
    static const char *const ok[] = {"-n", "--dry-run", "--just-print", "--recon", "-q",
                                     "--question", "--version", "-v", "--help", "-h",
                                     "--system-information", NULL};
    bool ninja_tool = strcmp(name, "ninja") == 0 &&
                      has_arg(w, argc, (const char *const[]){"-t", NULL});
    if (!has_arg(w, argc, ok) && !ninja_tool)
        refuse_cmd(lx, name, "builds, which writes files");
}

static void judge_python(lexer *lx, const char *name, pword *w, size_t argc)
{
    for (size_t k = 1; k + 1 < argc; k++) {
        if (strcmp(w[k].s, "-m") == 0) {
            const char *mod = w[k + 1].s;
            if (strcmp(mod, "pip") == 0 || strcmp(mod, "ensurepip") == 0 ||
                strcmp(mod, "venv") == 0 || strcmp(mod, "http.server") == 0)
                judge_pkg(lx, mod, w + k + 1, argc - k - 1);
            if (strcmp(mod, "venv") == 0 || strcmp(mod, "http.server") == 0)
                refuse(lx, "`%s -m %s` writes files or serves the network", name, mod);
            return;
        }
        if (w[k].s[0] != '-')
            return;
    }
}

static void judge_named(lexer *lx, const char *name, pword *w, size_t argc)
{
    static const char *const wrappers[] = {"env",   "command", "builtin", "exec",   "nice",
                                           "nohup", "time",    "timeout", "stdbuf", "setsid",
                                           "ionice", "unbuffer", "chronic", "caffeinate", NULL};
    static const char *const pkgs[] = {"pip", "pip3", "npm", "yarn", "pnpm", "bun", "apt",
                                       "apt-get", "dnf", "yum", "brew", "gem", "conda", "mamba",
                                       "pacman", "apk", "snap", "flatpak", "zypper", "port",
                                       "cargo", "go", "deno", "composer", "poetry", "uv",
                                       "pipx", "bundle", "rustup", "nix", "nix-env", NULL};
    static const char *const compress[] = {"gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz",
                                           "zstd", "unzstd", "lz4", "compress", "uncompress",
                                           "lzma", "unlzma", NULL};
    if (in_list(name, WRITERS))
        refuse_cmd(lx, name, "writes, deletes or moves files");
    else if (in_list(name, NETWORK))
        refuse_cmd(lx, name, "reaches the network");
    else if (in_list(name, SYSTEM) || str_starts_with(name, "mkfs."))
        refuse_cmd(lx, name, "changes the system or other processes");
    else if (in_list(name, wrappers))
        judge_wrapper(lx, name, w, argc);
    else if (strcmp(name, "xargs") == 0 || strcmp(name, "parallel") == 0)
        judge_xargs(lx, w, argc);
    else if (strcmp(name, "find") == 0)
        judge_find(lx, w, argc);
    else if (in_list(name, SHELLS))
        judge_shell(lx, name, w, argc);
    else if (strcmp(name, "eval") == 0)
        judge_joined(lx, name, w, argc, 1);
    else if (strcmp(name, "source") == 0 || strcmp(name, ".") == 0)
        judge_source(lx, name, w, argc);
    else if (strcmp(name, "watch") == 0)
        judge_joined(lx, name, w, argc, skip_opts(w, argc, 1, "nd"));
    else if (strcmp(name, "git") == 0)
        judge_git(lx, w, argc);
    else if (strcmp(name, "sed") == 0 && (short_flag(w, argc, 'i', "efl") ||
                                          has_prefix_arg(w, argc, "--in-place")))
        refuse_cmd(lx, name, "-i edits files in place");
    else if (strcmp(name, "perl") == 0 && short_flag(w, argc, 'i', "MmIeExlC0dDV"))
        refuse_cmd(lx, name, "-i edits files in place");
    else if ((strcmp(name, "sort") == 0 && (short_flag(w, argc, 'o', "ktST") ||
                                            has_prefix_arg(w, argc, "--output"))))
        refuse_cmd(lx, name, "-o writes a file");
    else if (strcmp(name, "uniq") == 0 && count_operands(w, argc, 0) > 1)
        refuse_cmd(lx, name, "with two operands writes the second one");
    else if (strcmp(name, "tee") == 0) {
        for (size_t k = 1; k < argc; k++)
            if (w[k].s[0] != '-' && (w[k].exp || !is_null_target(w[k].s))) {
                refuse_cmd(lx, name, "writes files");
                return;
            }
    } else if (strcmp(name, "patch") == 0 &&
               !has_arg(w, argc, (const char *const[]){"--dry-run", NULL}))
        refuse_cmd(lx, name, "changes files (use --dry-run)");
    else if (strcmp(name, "tar") == 0)
        judge_tar(lx, w, argc);
    else if (strcmp(name, "unzip") == 0 && !short_flag(w, argc, 'l', "dx") &&
             !short_flag(w, argc, 'p', "dx") && !short_flag(w, argc, 't', "dx") &&
             !short_flag(w, argc, 'v', "dx") && !short_flag(w, argc, 'Z', "dx"))
        refuse_cmd(lx, name, "extracts files (use -l to list, -p to print)");
    else if (in_list(name, compress))
        judge_compress(lx, name, w, argc);
    else if (in_list(name, pkgs))
        judge_pkg(lx, name, w, argc);
    else if (strcmp(name, "make") == 0 || strcmp(name, "ninja") == 0 ||
             strcmp(name, "cmake") == 0 || strcmp(name, "gmake") == 0)
        judge_build(lx, name, w, argc);
    else if (str_starts_with(name, "python"))
        judge_python(lx, name, w, argc);
}

static void judge(lexer *lx, pword *w, size_t argc)
{
    static const char *const skip[] = {"if", "then", "else", "elif", "do", "while", "until",
                                       "!", "{", "}", "fi", "done", "esac", "time", "]]",
                                       "coproc", NULL};
    static const char *const whole[] = {"for", "select", "case", "function", "in", "[[",
                                        "[", "test", "declare", "typeset", "local", "export",
                                        "readonly", "alias", "unset", "shift", "return",
                                        NULL};
    /* Reserved words and assignments (their substitutions were judged when lexed). */
    size_t k = 0;
    while (k < argc && (in_list(w[k].s, skip) || is_assignment(w[k].s)))
        k++;
    if (k >= argc || lx->refused)
        return;
    pword *c = w + k;
    argc -= k;
    if (c[0].exp) {
        refuse(lx, "a command named by an expansion ('%s') cannot be judged", c[0].s);
        return;
    }
    if (in_list(c[0].s, whole))
        return;
    const char *slash = strrchr(c[0].s, '/');
    const char *name = slash ? slash + 1 : c[0].s;
    if (*name == '\0')
        return;
    judge_named(lx, name, c, argc);
}

bool tools_bash_allowed(const char *command, buf *why)
{
    if (!command)
        return true;
    if (strlen(command) > POLICY_MAX_COMMAND) {
        if (why)
            (void)buf_appendf(why, "the command is longer than %u bytes, too long to judge",
                              POLICY_MAX_COMMAND);
        return false;
    }
    return policy_text(command, strlen(command), 0, why);
}
