/* progress.c: the command line's progress display (see progress.h). */
#include "base/common.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include "base/log.h"
#include "cli/progress.h"

#define PROGRESS_REDRAW_MS 100.0
#define PROGRESS_PLAIN_EVERY_MS 30000.0
#define PROGRESS_BAR_MIN 10
#define PROGRESS_BAR_MAX 30
#define PROGRESS_NUM_WIDTH 44 /* "100%  2.50/2.50 GiB  38.2 MiB/s  ETA 1m05s" */

void cli_format_bytes(uint64_t b, char *out, size_t n)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (b < 1024) {
        snprintf(out, n, "%" PRIu64 " B", b);
        return;
    }
    double v = (double)b / 1024.0;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < LOCO_ARRAY_LEN(units)) {
        v /= 1024.0;
        u++;
    }
    snprintf(out, n, v >= 100 ? "%.0f %s" : v >= 10 ? "%.1f %s" : "%.2f %s", v, units[u]);
}

void cli_format_duration(double s, char *out, size_t n)
{
    long t = s > 0 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(out, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(out, n, "%lds", t);
}

static int term_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

void cli_progress_init(cli_progress *p, const char *label, cli_progress_unit unit,
                       uint64_t total)
{
    memset(p, 0, sizeof(*p));
    p->out = stderr;
    const char *term = getenv("TERM");
    p->tty = isatty(STDERR_FILENO) && !(term && !strcmp(term, "dumb"));
    const char *mode = getenv("LOCO_PROGRESS");
    if (mode && !strcmp(mode, "plain"))
        p->tty = false;
    else if (mode && !strcmp(mode, "none"))
        p->quiet = true;
    p->unit = unit;
    p->width = p->tty ? term_width() : 80;
    cli_progress_reset(p, label, total, 0);
}

void cli_progress_reset(cli_progress *p, const char *label, uint64_t total, uint64_t done)
{
    if (label != p->label)
        snprintf(p->label, sizeof(p->label), "%s", label ? label : "");
    p->total = total;
    p->done = done;
    p->start = done;
    p->t0_ms = clock_now_ms();
    p->last_draw_ms = 0;
    p->last_line_ms = p->t0_ms;
    p->last_tenth = total ? (int)(done * 10 / total) : 0;
}

/* Bytes (or items) per second since timing started; 0 until there is something to say. */
static double rate(const cli_progress *p, double now)
{
    double secs = (now - p->t0_ms) / 1000.0;
    if (secs < 0.2 || p->done <= p->start)
        return 0;
    return (double)(p->done - p->start) / secs;
}

/* The numbers part: "45%  1.12/2.50 GiB  38.2 MiB/s  ETA 37s". */
static void numbers(const cli_progress *p, double now, char *out, size_t n)
{
    char a[32], b[32], r[48] = "", eta[48] = "", pct[16] = "";
    if (p->unit == CLI_PROGRESS_TIME) {
        cli_format_duration((now - p->t0_ms) / 1000.0, out, n);
        return;
    }
    double v = rate(p, now);
    if (p->total)
        snprintf(pct, sizeof(pct), "%3d%%  ",
                 (int)(p->done >= p->total ? 100 : p->done * 100 / p->total));
    const char *noun = p->unit == CLI_PROGRESS_COUNT && p->noun ? p->noun : "";
    if (p->unit == CLI_PROGRESS_BYTES) {
        cli_format_bytes(p->done, a, sizeof(a));
        cli_format_bytes(p->total, b, sizeof(b));
        const char *ua = strrchr(a, ' '), *ub = strrchr(b, ' ');
        if (p->total && ua && ub && !strcmp(ua, ub))
            a[ua - a] = '\0'; /* "1.12/2.50 GiB": the unit once */
        if (v > 0) {
            char s[32];
            cli_format_bytes((uint64_t)v, s, sizeof(s));
            snprintf(r, sizeof(r), "  %s/s", s);
        }
    } else {
        snprintf(a, sizeof(a), "%" PRIu64, p->done);
        snprintf(b, sizeof(b), "%" PRIu64, p->total);
        if (v > 0)
            snprintf(r, sizeof(r), "  %.1f/s", v);
    }
    if (v > 0 && p->total > p->done) {
        char d[32];
        cli_format_duration((double)(p->total - p->done) / v, d, sizeof(d));
        snprintf(eta, sizeof(eta), "  ETA %s", d);
    }
    if (p->total)
        snprintf(out, n, "%s%s/%s%s%s%s%s", pct, a, b, *noun ? " " : "", noun, r, eta);
    else
        snprintf(out, n, "%s%s%s%s", a, *noun ? " " : "", noun, r);
}

void cli_progress_text(const cli_progress *p, double now_ms, char *out, size_t n)
{
    char nums[200];
    numbers(p, now_ms, nums, sizeof(nums));
    snprintf(out, n, "%s%s%s", p->label, p->label[0] ? "  " : "", nums);
}

/* "label  [#####.....]  45%  1.12/2.50 GiB  38.2 MiB/s  ETA 37s": the numbers padded to a
 * fixed width so the bar does not move as speed and ETA appear; the label shortened to fit. */
static void draw_tty(cli_progress *p, double now)
{
    char text[256];
    numbers(p, now, text, sizeof(text));
    int width = p->width > 0 ? p->width : 80;
    int tl = (int)strlen(text);
    int numw = tl > PROGRESS_NUM_WIDTH ? tl : PROGRESS_NUM_WIDTH;
    int ll = (int)strlen(p->label);
    char line[512];
    if (p->total) {
        int room = width - 1 - numw - 4;          /* "[" bar "]  " numbers */
        int bar = room - (ll ? ll + 2 : 0);
        if (bar > PROGRESS_BAR_MAX)
            bar = PROGRESS_BAR_MAX;
        if (bar < PROGRESS_BAR_MIN)
            bar = PROGRESS_BAR_MIN;
        int label_room = room - bar - 2;
        int fill = (int)((double)bar * (double)(p->done > p->total ? p->total : p->done) /
                         (double)p->total);
        char bars[PROGRESS_BAR_MAX + 1];
        for (int i = 0; i < bar; i++)
            bars[i] = i < fill ? '#' : '.';
        bars[bar] = '\0';
        if (!ll || label_room < 4)
            snprintf(line, sizeof(line), "[%s]  %s", bars, text);
        else if (ll > label_room)
            snprintf(line, sizeof(line), "%.*s...  [%s]  %s", label_room - 3, p->label, bars,
                     text);
        else
            snprintf(line, sizeof(line), "%s  [%s]  %s", p->label, bars, text);
    } else {
        static const char spinner[] = "|/-\\";
        int label_room = width - 1 - tl - 5;
        snprintf(line, sizeof(line), "%.*s%s%c  %s", label_room > 0 ? label_room : 0, p->label,
                 ll && label_room > 0 ? "  " : "", spinner[p->spin++ % 4], text);
    }
    if ((int)strlen(line) > width - 1)
        line[width - 1] = '\0';
    fprintf(p->out, "\r\033[K%s", line);
    fflush(p->out);
    p->shown = true;
}

static void draw_plain(cli_progress *p, double now)
{
    char text[400];
    cli_progress_text(p, now, text, sizeof(text));
    fprintf(p->out, "%s\n", text);
    fflush(p->out);
    p->last_line_ms = now;
}

void cli_progress_update(cli_progress *p, uint64_t done)
{
    p->done = done;
    if (p->quiet)
        return;
    double now = clock_now_ms();
    if (p->tty) {
        if (now - p->last_draw_ms >= PROGRESS_REDRAW_MS) {
            draw_tty(p, now);
            p->last_draw_ms = now;
        }
        return;
    }
    int tenth = p->total ? (int)((done >= p->total ? p->total : done) * 10 / p->total) : 0;
    if ((p->total && tenth > p->last_tenth) || now - p->last_line_ms >= PROGRESS_PLAIN_EVERY_MS) {
        p->last_tenth = tenth;
        draw_plain(p, now);
    }
}

void cli_progress_clear(cli_progress *p)
{
    if (p->tty && p->shown) {
        fputs("\r\033[K", p->out);
        fflush(p->out);
        p->shown = false;
    }
}

void cli_progress_line(cli_progress *p, const char *fmt, ...)
{
    cli_progress_clear(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    fflush(p->out);
    if (p->tty && !p->quiet && p->last_draw_ms > 0)
        draw_tty(p, clock_now_ms());
}

void cli_progress_finish(cli_progress *p)
{
    if (p->total && p->done < p->total)
        p->done = p->total;
    if (p->quiet)
        return;
    double now = clock_now_ms();
    if (p->tty) {
        draw_tty(p, now);
        fputc('\n', p->out);
        fflush(p->out);
        p->shown = false;
    } else if (p->last_tenth < 10 || !p->total) {
        p->last_tenth = 10;
        draw_plain(p, now);
    }
}
