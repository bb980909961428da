/* log.h: a logger object handed to library code (no global logger). The sink is chosen
 * by cli/; library code only calls log_msg. A NULL logger discards everything. */
#ifndef LOCO_LOG_H
#define LOCO_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

typedef void (*log_sink_fn)(void *ctx, log_level level, const char *line);

typedef struct {
    log_sink_fn sink; /* called with one formatted line, no trailing newline; thread-safe sink */
    void *ctx;
    log_level min_level;
} loco_log;

void log_msg(const loco_log *log, log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Monotonic milliseconds (for durations) and wall-clock ISO-8601 UTC into out (>= 32 bytes). */
double clock_now_ms(void);
void clock_iso8601(char *out, unsigned long size);

#endif
