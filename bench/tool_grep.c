/* bench/tool_grep.c: runs loco's Grep tool (agent_tool_grep) on a tree for
 * bench/run_grep_bench.sh. Timed mode runs one search and prints the wall time and the first
 * line of the result; --list and --total page through the whole result (untimed) so the script
 * can compare it with ripgrep's.
 *
 *   tool_grep ROOT PATTERN [--mode files_with_matches|content|count] [-i] [--threads N]
 *             [--repeat K] [--list | --total]
 */
#include "base/common.h"

#include <time.h>

#include "agent/tools.h"
#include "base/str.h"

#define PAGE 200

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int run_once(const agent_tool_ctx *ctx, json_t *args, buf *out)
{
    bool is_error = false;
    buf_reset(out);
    loco_status rc = agent_tool_grep.run(ctx, args, out, &is_error);
    if (rc || is_error) {
        fprintf(stderr, "tool_grep: %s %s\n", loco_status_str(rc), buf_str(out));
        return 1;
    }
    return 0;
}

/* --list: every matching file, one per line (pages of PAGE files). */
static int list_all(const agent_tool_ctx *ctx, json_t *args, buf *out)
{
    for (long offset = 0;; offset += PAGE) {
        json_object_set_new(args, "head_limit", json_integer(PAGE));
        json_object_set_new(args, "offset", json_integer(offset));
        if (run_once(ctx, args, out))
            return 1;
        const char *s = buf_str(out);
        if (str_starts_with(s, "No files found"))
            return 0;
        const char *nl = strchr(s, '\n');
        if (!nl)
            return 0;
        printf("%s\n", nl + 1);
        if (!strstr(s, "limit:"))
            return 0;
    }
}

/* --total: the summed "Found N total occurrences across M files." of count mode. */
static int total_all(const agent_tool_ctx *ctx, json_t *args, buf *out)
{
    unsigned long long occ = 0, files = 0;
    json_object_set_new(args, "output_mode", json_string("count"));
    for (long offset = 0;; offset += PAGE) {
        json_object_set_new(args, "head_limit", json_integer(PAGE));
        json_object_set_new(args, "offset", json_integer(offset));
        if (run_once(ctx, args, out))
            return 1;
        const char *f = strstr(buf_str(out), "\n\nFound ");
        unsigned long long o = 0, m = 0;
        if (!f || sscanf(f, "\n\nFound %llu total %*s across %llu", &o, &m) != 2)
            return 1;
        occ += o;
        files += m;
        if (m < PAGE)
            break;
    }
    printf("%llu %llu\n", occ, files);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tool_grep ROOT PATTERN [--mode M] [-i] [--threads N] "
                        "[--repeat K] [--list | --total]\n");
        return 2;
    }
    const char *mode = "files_with_matches";
    bool icase = false, list = false, total = false;
    long threads = 2, repeat = 1;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--mode") && i + 1 < argc)
            mode = argv[++i];
        else if (!strcmp(argv[i], "-i"))
            icase = true;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            str_parse_long(argv[++i], 1, 64, &threads);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            str_parse_long(argv[++i], 1, 100, &repeat);
        else if (!strcmp(argv[i], "--list"))
            list = true;
        else if (!strcmp(argv[i], "--total"))
            total = true;
    }
    agent_sandbox sb;
    loco_err err;
    if (agent_sandbox_init(&sb, argv[1], NULL, false, false, &err)) {
        fprintf(stderr, "tool_grep: %s\n", err.msg);
        return 1;
    }
    agent_tool_ctx ctx = {.sb = &sb, .threads = (int)threads};
    json_t *args = json_pack("{s:s,s:s,s:b}", "pattern", argv[2], "output_mode", mode, "-i",
                             icase);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    int rc = 0;
    if (list) {
        rc = list_all(&ctx, args, &out);
    } else if (total) {
        rc = total_all(&ctx, args, &out);
    } else {
        double best = 1e30;
        for (long r = 0; r < repeat && !rc; r++) {
            double t0 = now_ms();
            rc = run_once(&ctx, args, &out);
            double t = now_ms() - t0;
            if (t < best)
                best = t;
        }
        const char *s = buf_str(&out);
        const char *nl = strchr(s, '\n');
        int first = nl ? (int)(nl - s) : (int)strlen(s);
        printf("%.1f ms\t%.*s\n", best, first, s);
    }
    buf_release(&out);
    json_decref(args);
    agent_sandbox_release(&sb);
    return rc;
}
