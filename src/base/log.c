/* log.c: logger dispatch and clocks. */
#include "base/common.h"

#include "base/log.h"
#include "base/str.h"

void log_msg(const loco_log *log, log_level level, const char *fmt, ...)
{
    if (!log || !log->sink || level < log->min_level)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* lines quote client input (model names, paths): no escape sequences, no forged lines */
    if (!str_is_printable(line, strlen(line))) {
        char safe[sizeof(line)];
        log->sink(log->ctx, level, str_printable(line, safe, sizeof(safe)));
        return;
    }
    log->sink(log->ctx, level, line);
}

double clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void clock_iso8601(char *out, unsigned long size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}
