/* progress.h: the one progress display of the command line (pull, model synth, analyze, eval,
 * ask): on a terminal a bar redrawn in place with counts or bytes, speed
 * and ETA (a spinner while the total is unknown); otherwise plain lines at each tenth and at
 * least every 30 s, so logs stay readable. cli/ only. One thread draws: callers that update
 * from several threads hold their own lock around these calls. */
#ifndef LOCO_CLI_PROGRESS_H
#define LOCO_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    CLI_PROGRESS_COUNT = 0, /* "12/48 tensors" */
    CLI_PROGRESS_BYTES,     /* "1.12/2.50 GiB  38.2 MiB/s" */
    CLI_PROGRESS_TIME,      /* a spinner and the time since the last reset: "12s" */
} cli_progress_unit;

typedef struct {
    FILE *out;               /* stderr */
    bool tty;                /* redraw in place (else plain lines) */
    bool quiet;              /* draw nothing (lines from cli_progress_line still print) */
    char label[160];         /* what is progressing ("LocoOperator-4B.Q4_K_M.gguf") */
    const char *noun;        /* for COUNT: "tensors", "samples" (borrowed; may be NULL) */
    cli_progress_unit unit;
    uint64_t total;          /* 0: unknown (spinner) */
    uint64_t done;
    uint64_t start;          /* done when timing (re)started: speed counts from here */
    double t0_ms;            /* when timing (re)started */
    double last_draw_ms;
    double last_line_ms;     /* plain mode: when the last line was printed */
    int last_tenth;          /* plain mode: the last tenth printed */
    unsigned spin;
    bool shown;              /* a bar is on the terminal line */
    int width;               /* terminal columns */
} cli_progress;

/* Starts a display on stderr: a terminal when stderr is one and TERM is not "dumb";
 * LOCO_PROGRESS=plain forces plain lines, LOCO_PROGRESS=none hides the display. */
void cli_progress_init(cli_progress *p, const char *label, cli_progress_unit unit,
                       uint64_t total);
/* A new label / total (a new phase); timing restarts at done. */
void cli_progress_reset(cli_progress *p, const char *label, uint64_t total, uint64_t done);
/* Records done and redraws when due (at most 10 times a second on a terminal). */
void cli_progress_update(cli_progress *p, uint64_t done);
/* Prints one line of text (a newline is added) above the bar, which is redrawn after. */
void cli_progress_line(cli_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Final state: redraws at 100% and ends the terminal line (plain mode: a last line when the
 * last one printed was not at 100%). */
void cli_progress_finish(cli_progress *p);
/* Removes the bar from the terminal (before other output); the next update redraws it. */
void cli_progress_clear(cli_progress *p);

/* "2.50 GiB", "38.2 MiB", "512 B" (binary units). */
void cli_format_bytes(uint64_t bytes, char *out, size_t n);
/* "37s", "4m05s", "2h03m". */
void cli_format_duration(double seconds, char *out, size_t n);
/* The text of the display's current state, without terminal control codes, for tests and
 * plain lines: "label  45%  1.12/2.50 GiB  38.2 MiB/s  ETA 37s". */
void cli_progress_text(const cli_progress *p, double now_ms, char *out, size_t n);

#endif
