/* helptext.c: flags and command lists read from help texts, "did you mean", and the man page
 * and completion scripts rendered from them (see helptext.h). */
#include "base/common.h"

#include <ctype.h>

#include "cli/helptext.h"
#include "cli/options.h"

static void add_flag(cli_help_flag *out, size_t *n, size_t max, const char *name, size_t len,
                     bool value)
{
    if (len == 0 || len >= CLI_HELP_FLAG_MAX)
        return;
    for (size_t i = 0; i < *n; i++) {
        if (strlen(out[i].name) == len && !strncmp(out[i].name, name, len)) {
            out[i].takes_value |= value;
            return;
        }
    }
    if (*n >= max)
        return;
    memcpy(out[*n].name, name, len);
    out[*n].name[len] = '\0';
    out[*n].takes_value = value;
    (*n)++;
}

/* Whether the flag ending at p takes a value: "=X", or " WORD" with WORD upper-case first or
 * holding a '|'. */
static bool value_follows(const char *p, const char *eol)
{
    if (p < eol && *p == '=')
        return true;
    if (p + 1 >= eol || *p != ' ' || p[1] == ' ')
        return false;
    p++;
    if (isupper((unsigned char)*p))
        return true;
    for (; p < eol && *p != ' ' && *p != ']' && *p != ')'; p++) {
        if (*p == '|')
            return true;
    }
    return false;
}

static void scan_line(const char *s, const char *eol, cli_help_flag *out, size_t *n, size_t max)
{
    for (const char *p = s; p < eol; p++) {
        if (*p != '-' || (p > s && !strchr(" \t[(|,", p[-1])))
            continue;
        const char *q = p + 1;
        if (q < eol && *q == '-') {
            q++;
            if (q >= eol || !(islower((unsigned char)*q) || isdigit((unsigned char)*q)))
                continue;
            while (q < eol &&
                   (islower((unsigned char)*q) || isdigit((unsigned char)*q) || *q == '-'))
                q++;
        } else {
            if (q >= eol || !isalpha((unsigned char)*q))
                continue;
            q++;
            if (q < eol && (isalnum((unsigned char)*q) || *q == '-'))
                continue; /* "-sys", "-Werror": not a one-letter flag */
        }
        add_flag(out, n, max, p, (size_t)(q - p), value_follows(q, eol));
        p = q - 1;
    }
}

void cli_help_scan(const char *text, cli_help_flag *out, size_t *n, size_t max)
{
    size_t first = *n;
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        if (!eol)
            eol = line + strlen(line);
        const char *s = line;
        while (s < eol && (*s == ' ' || *s == '\t'))
            s++;
        if ((s < eol && *s == '-') || !strncmp(s, "usage:", 6))
            scan_line(s, eol, out, n, max);
        line = *eol ? eol + 1 : eol;
    }
    size_t found = *n;
    for (size_t i = first; i < found; i++) {
        for (const char *const *al = cli_flag_aliases(out[i].name); *al; al++)
            add_flag(out, n, max, *al, strlen(*al), out[i].takes_value);
    }
}

size_t cli_help_entries(const char *text, char (*names)[64], char (*summaries)[200], size_t max)
{
    size_t count = 0;
    bool in = false;
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        if (!eol)
            eol = line + strlen(line);
        size_t len = (size_t)(eol - line);
        if (!in) {
            in = (len == 9 && !strncmp(line, "commands:", 9)) ||
                 (len == 12 && !strncmp(line, "subcommands:", 12));
        } else if (len == 0) {
            break;
        } else if (count < max) {
            const char *p = line;
            while (p < eol && *p == ' ')
                p++;
            const char *name_end = p;
            while (name_end < eol && *name_end != ' ')
                name_end++;
            const char *sum = name_end;
            while (sum < eol && *sum == ' ')
                sum++;
            if (name_end > p && (size_t)(name_end - p) < 64 && p > line) {
                snprintf(names[count], 64, "%.*s", (int)(name_end - p), p);
                snprintf(summaries[count], 200, "%.*s", (int)(eol - sum), sum);
                count++;
            }
        }
        line = *eol ? eol + 1 : eol;
    }
    return count;
}

size_t cli_edit_distance(const char *a, const char *b)
{
    enum { M = 64 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > M || lb > M)
        return (size_t)-1;
    unsigned char d[M + 1][M + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned char)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned char)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = a[i - 1] != b[j - 1];
            unsigned v = d[i - 1][j] + 1u;
            if (d[i][j - 1] + 1u < v)
                v = d[i][j - 1] + 1u;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1u < v)
                v = d[i - 2][j - 2] + 1u;
            d[i][j] = (unsigned char)v;
        }
    }
    return d[la][lb];
}

size_t cli_suggest(const char *word, const char *const *cands, size_t n, const char **out,
                   size_t max)
{
    size_t len = strlen(word), limit = 1 + len / 4;
    if (limit > 3)
        limit = 3;
    size_t best = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        size_t d = cli_edit_distance(word, cands[i]);
        if (d < best)
            best = d;
    }
    size_t count = 0;
    if (best <= limit) {
        for (size_t i = 0; i < n && count < max; i++) {
            if (cli_edit_distance(word, cands[i]) == best)
                out[count++] = cands[i];
        }
        return count;
    }
    size_t dashes = strspn(word, "-");
    if (len - dashes < 3)
        return 0;
    for (size_t i = 0; i < n && count < max; i++) {
        if (!strncmp(cands[i], word, len))
            out[count++] = cands[i];
    }
    return count;
}

/* ---- man page ---- */

/* Text for roff: backslashes and dashes escaped, a line that would start with '.' or '\''
 * protected. */
static void roff_text(FILE *out, const char *s, size_t n)
{
    bool bol = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (bol && (c == '.' || c == '\''))
            fputs("\\&", out);
        if (c == '\\')
            fputs("\\e", out);
        else if (c == '-')
            fputs("\\-", out);
        else
            fputc(c, out);
        bol = c == '\n';
    }
    if (!bol)
        fputc('\n', out);
}

void cli_help_man(FILE *out, const char *version, const char *overview, const cli_help_page *pages,
                  size_t n)
{
    fprintf(out, ".\\\" loco(1), generated by `loco help --man` from the commands' --help\n");
    fprintf(out, ".TH LOCO 1 \"\" \"loco %s\" \"User Commands\"\n", version);
    fputs(".SH NAME\nloco \\- LocoOperator in C: a local code\\-exploration model as Claude "
          "Code's sub\\-agent, its gateway, engine, explorer and evaluation\n",
          out);
    fputs(".SH SYNOPSIS\n.B loco\n.I command\n.RI [ options ]\n.br\n.B loco help\n"
          ".I command\n.br\n.B loco \\-\\-version\n",
          out);
    fputs(".SH DESCRIPTION\n.nf\n", out);
    roff_text(out, overview, strlen(overview));
    fputs(".fi\n", out);
    fputs(".SH COMMANDS\n", out);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, ".SS \"loco %s\"\n", pages[i].name); /* names are plain words */
        roff_text(out, pages[i].summary, strlen(pages[i].summary));
        fputs(".PP\n.nf\n", out);
        roff_text(out, pages[i].help, strlen(pages[i].help));
        fputs(".fi\n", out);
    }
    fputs(".SH EXIT STATUS\n0 success, 1 failure, 2 usage error, 130 interrupted "
          "(SIGINT or SIGTERM).\n",
          out);
    fputs(".SH FILES\n.TP\n.I .env\nsettings and keys read from the working directory "
          "(the environment wins)\n.TP\n.I ~/.local/share/loco/models\nthe model store "
          "($LOCO_MODELS, else $XDG_DATA_HOME/loco/models)\n",
          out);
    fputs(".SH SEE ALSO\n.BR claude (1),\n.BR llama\\-server (1)\n", out);
}

/* ---- completion scripts ---- */

#define PAGE_FLAGS 192

static bool is_sub(const cli_help_page *p)
{
    return strchr(p->name, ' ') != NULL;
}

/* Whether page i (a top-level command) has subcommand pages "NAME sub". */
static bool has_subs(const cli_help_page *pages, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(pages[i].name, name, len) && pages[i].name[len] == ' ')
            return true;
    }
    return false;
}

static void sub_words(FILE *out, const cli_help_page *pages, size_t n, const char *name)
{
    size_t len = strlen(name);
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(pages[i].name, name, len) && pages[i].name[len] == ' ') {
            fprintf(out, "%s%s", first ? "" : " ", pages[i].name + len + 1);
            first = false;
        }
    }
}

static size_t page_flags(const cli_help_page *p, cli_help_flag *flags)
{
    size_t nf = 0;
    cli_help_scan(p->help, flags, &nf, PAGE_FLAGS);
    return nf;
}

void cli_help_bash(FILE *out, const cli_help_page *pages, size_t n)
{
    cli_help_flag flags[PAGE_FLAGS];
    fputs("# bash completion for loco, generated by `loco completion bash` from the commands'\n"
          "# --help. Install: loco completion bash > /etc/bash_completion.d/loco\n"
          "_loco()\n{\n"
          "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
          "    local key=\"${COMP_WORDS[1]}\" flags=\"\" valued=\"\" words=\"\"\n"
          "    if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
          "        COMPREPLY=($(compgen -W \"",
          out);
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (!is_sub(&pages[i])) {
            fprintf(out, "%s%s", first ? "" : " ", pages[i].name);
            first = false;
        }
    }
    fputs(" --help --version\" -- \"$cur\"))\n        return\n    fi\n    case \"$key\" in\n", out);
    for (size_t i = 0; i < n; i++) {
        if (is_sub(&pages[i]) || !has_subs(pages, n, pages[i].name))
            continue;
        fprintf(out,
                "    %s)\n        if [ \"$COMP_CWORD\" -eq 2 ]; then\n"
                "            COMPREPLY=($(compgen -W \"",
                pages[i].name);
        sub_words(out, pages, n, pages[i].name);
        fputs("\" -- \"$cur\"))\n            return\n        fi\n"
              "        key=\"$key ${COMP_WORDS[2]}\";;\n",
              out);
    }
    fputs("    esac\n    case \"$key\" in\n", out);
    for (size_t i = 0; i < n; i++) {
        size_t nf = page_flags(&pages[i], flags);
        fprintf(out, "    \"%s\")\n        flags=\"", pages[i].name);
        for (size_t k = 0; k < nf; k++)
            fprintf(out, "%s%s", k ? " " : "", flags[k].name);
        fputs("\"\n        valued=\" ", out);
        for (size_t k = 0; k < nf; k++) {
            if (flags[k].takes_value)
                fprintf(out, "%s ", flags[k].name);
        }
        fputs("\"", out);
        if (pages[i].operands)
            fprintf(out, "\n        words=\"%s\"", pages[i].operands);
        fputs(";;\n", out);
    }
    fputs("    esac\n"
          "    case \"$valued\" in *\" $prev \"*) return;; esac  # a value: files (-o default)\n"
          "    if [[ \"$cur\" == -* ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n"
          "    elif [ -n \"$words\" ]; then\n"
          "        COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
          "    fi\n}\ncomplete -o default -F _loco loco\n",
          out);
}

/* s inside a single-quoted zsh word, with ':' escaped for _describe when colon is set. */
static void zsh_quoted(FILE *out, const char *s, bool colon)
{
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", out);
        else if (*s == ':' && colon)
            fputs("\\:", out);
        else
            fputc(*s, out);
    }
}

static void zsh_describe(FILE *out, const cli_help_page *pages, size_t n, const char *parent,
                         const char *indent)
{
    size_t plen = parent ? strlen(parent) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = pages[i].name;
        if (parent ? strncmp(name, parent, plen) || name[plen] != ' ' : is_sub(&pages[i]))
            continue;
        fprintf(out, "%s'", indent);
        zsh_quoted(out, parent ? name + plen + 1 : name, true);
        fputc(':', out);
        zsh_quoted(out, pages[i].summary, false);
        fputs("'\n", out);
    }
}

void cli_help_zsh(FILE *out, const cli_help_page *pages, size_t n)
{
    cli_help_flag flags[PAGE_FLAGS];
    fputs("#compdef loco\n"
          "# zsh completion for loco, generated by `loco completion zsh` from the commands'\n"
          "# --help. Install: loco completion zsh > \"${fpath[1]}/_loco\"\n"
          "_loco() {\n"
          "  local -a cmds subs\n  cmds=(\n",
          out);
    zsh_describe(out, pages, n, NULL, "    ");
    fputs("  )\n  if (( CURRENT == 2 )); then\n"
          "    _describe -t commands 'loco command' cmds\n    return\n  fi\n"
          "  local key=${words[2]}\n  shift words; (( CURRENT-- ))\n  case $key in\n",
          out);
    for (size_t i = 0; i < n; i++) {
        if (is_sub(&pages[i]) || !has_subs(pages, n, pages[i].name))
            continue;
        fprintf(out, "  %s)\n    if (( CURRENT == 2 )); then\n      subs=(\n", pages[i].name);
        zsh_describe(out, pages, n, pages[i].name, "        ");
        fprintf(out,
                "      )\n      _describe -t commands 'loco %s subcommand' subs\n"
                "      return\n    fi\n"
                "    key=\"$key ${words[2]}\"; shift words; (( CURRENT-- ));;\n",
                pages[i].name);
    }
    fputs("  esac\n  case $key in\n", out);
    for (size_t i = 0; i < n; i++) {
        size_t nf = page_flags(&pages[i], flags);
        fprintf(out, "  '%s')\n    _arguments -s", pages[i].name);
        for (size_t k = 0; k < nf; k++)
            fprintf(out, " '%s%s'", flags[k].name, flags[k].takes_value ? ":value:_files" : "");
        if (pages[i].operands)
            fprintf(out, " '*:operand:(%s)';;\n", pages[i].operands);
        else
            fputs(" '*:file:_files';;\n", out);
    }
    fputs("  *) _files;;\n  esac\n}\n_loco \"$@\"\n", out);
}
