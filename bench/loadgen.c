/* loadgen.c: a small closed-loop HTTP load generator for the gateway benchmark
 * (bench/run_gateway_bench.sh). N connections each POST the same body back to back
 * over libcurl multi, until a request count or a time cap; prints one key=value
 * line with requests/s and latency percentiles (microseconds). */
#include "base/common.h"

#include <curl/curl.h>

#include "base/buf.h"
#include "base/file.h"
#include "base/str.h"

#define LOADGEN_RESP_MAX ((size_t)1 << 20) /* bytes of each answer kept for the check */
#define LOADGEN_MAX_REQUESTS 1000000L
#define LOADGEN_MAX_CONC 1024L
#define LOADGEN_MAX_HEADERS 16

typedef struct {
    CURL *h;
    buf resp;
    double t0;
} slot;

typedef struct {
    const char *url;
    const char *body;
    size_t body_len;
    const char *expect; /* each answer must contain it (NULL: no check) */
    struct curl_slist *headers;
    long conc;
    long requests;
    double duration;
    double timeout;
} config;

typedef struct {
    double *lat_us; /* one per successful request */
    long ok;
    long errors;
    long started;
    double t_start;
    double t_end;
    char first_error[256];
} results;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    slot *s = ud;
    size_t len = size * n;
    if (s->resp.len < LOADGEN_RESP_MAX)
        buf_append(&s->resp, p, len < LOADGEN_RESP_MAX - s->resp.len ? len : LOADGEN_RESP_MAX - s->resp.len);
    return len;
}

static int slot_setup(slot *s, const config *c)
{
    s->h = curl_easy_init();
    if (!s->h)
        return -1;
    buf_init(&s->resp, LOADGEN_RESP_MAX);
    curl_easy_setopt(s->h, CURLOPT_URL, c->url);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE, (long)c->body_len);
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->h, CURLOPT_TIMEOUT_MS, (long)(c->timeout * 1000));
    curl_easy_setopt(s->h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->h, CURLOPT_PROXY, "");
    return 0;
}

static void slot_start(CURLM *m, slot *s, results *r)
{
    buf_reset(&s->resp);
    s->t0 = now_s();
    r->started++;
    curl_multi_add_handle(m, s->h);
}

static void note_error(results *r, const char *what)
{
    r->errors++;
    if (!r->first_error[0])
        snprintf(r->first_error, sizeof(r->first_error), "%s", what);
}

/* Checks one finished transfer and records its latency. */
static void finish(const config *c, slot *s, CURLcode code, results *r)
{
    double t = now_s();
    long status = 0;
    char what[200];
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    if (code != CURLE_OK) {
        snprintf(what, sizeof(what), "curl: %s", curl_easy_strerror(code));
        note_error(r, what);
    } else if (status != 200) {
        snprintf(what, sizeof(what), "HTTP %ld: %.120s", status, buf_str(&s->resp));
        note_error(r, what);
    } else if (c->expect && !str_memmem(buf_str(&s->resp), s->resp.len, c->expect)) {
        snprintf(what, sizeof(what), "answer lacks '%s': %.120s", c->expect, buf_str(&s->resp));
        note_error(r, what);
    } else {
        r->lat_us[r->ok++] = (t - s->t0) * 1e6;
    }
    r->t_end = t;
}

static void run(const config *c, CURLM *m, slot *slots, results *r)
{
    long active = 0;
    r->t_start = now_s();
    r->t_end = r->t_start;
    for (long i = 0; i < c->conc && r->started < c->requests; i++) {
        slot_start(m, &slots[i], r);
        active++;
    }
    while (active > 0) {
        int running = 0, queued = 0;
        curl_multi_perform(m, &running);
        CURLMsg *msg = curl_multi_info_read(m, &queued);
        while (msg) {
            if (msg->msg == CURLMSG_DONE) {
                slot *s = NULL;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
                CURLcode code = msg->data.result;
                curl_multi_remove_handle(m, s->h);
                active--;
                finish(c, s, code, r);
                if (r->started < c->requests && now_s() - r->t_start < c->duration) {
                    slot_start(m, s, r);
                    active++;
                }
            }
            msg = curl_multi_info_read(m, &queued);
        }
        if (active > 0)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static double percentile(const double *v, long n, double p)
{
    if (n <= 0)
        return 0;
    long k = (long)(p * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static void report(const char *label, const config *c, results *r)
{
    qsort(r->lat_us, (size_t)r->ok, sizeof(double), cmp_double);
    double elapsed = r->t_end - r->t_start;
    double sum = 0;
    for (long i = 0; i < r->ok; i++)
        sum += r->lat_us[i];
    printf("label=%s concurrency=%ld ok=%ld errors=%ld elapsed_s=%.3f rps=%.1f p50_us=%.0f "
           "p90_us=%.0f p99_us=%.0f mean_us=%.0f max_us=%.0f\n",
           label, c->conc, r->ok, r->errors, elapsed, elapsed > 0 ? (double)r->ok / elapsed : 0,
           percentile(r->lat_us, r->ok, 0.50), percentile(r->lat_us, r->ok, 0.90),
           percentile(r->lat_us, r->ok, 0.99), r->ok ? sum / (double)r->ok : 0,
           r->ok ? r->lat_us[r->ok - 1] : 0);
    if (r->errors)
        fprintf(stderr, "loadgen %s: %ld errors, first: %s\n", label, r->errors, r->first_error);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: loadgen --url URL --body FILE [--concurrency N (1)] [--requests N (1000)]\n"
            "               [--duration S (10)] [--warmup N (0)] [--expect TEXT]\n"
            "               [--header 'K: V']... [--timeout S (30)] [--label NAME]\n");
    return 2;
}

/* Runs `requests` requests (after `warmup` discarded ones) and prints the line. */
static int bench(config *c, long warmup, const char *label)
{
    CURLM *m = curl_multi_init();
    slot *slots = calloc((size_t)c->conc, sizeof(slot));
    results r = {0};
    int rc = 1;
    if (!m || !slots)
        goto out;
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, c->conc);
    for (long i = 0; i < c->conc; i++) {
        if (slot_setup(&slots[i], c))
            goto out;
        curl_easy_setopt(slots[i].h, CURLOPT_PRIVATE, (char *)&slots[i]);
    }
    if (warmup > 0) {
        config w = *c;
        results wr = {0};
        w.requests = warmup;
        w.duration = 5;
        wr.lat_us = calloc((size_t)warmup, sizeof(double));
        if (!wr.lat_us)
            goto out;
        run(&w, m, slots, &wr);
        free(wr.lat_us);
    }
    r.lat_us = calloc((size_t)c->requests, sizeof(double));
    if (!r.lat_us)
        goto out;
    run(c, m, slots, &r);
    report(label, c, &r);
    rc = r.ok > 0 ? 0 : 1;
out:
    for (long i = 0; slots && i < c->conc; i++) {
        if (slots[i].h)
            curl_easy_cleanup(slots[i].h);
        buf_release(&slots[i].resp);
    }
    free(slots);
    free(r.lat_us);
    if (m)
        curl_multi_cleanup(m);
    return rc;
}

int main(int argc, char **argv)
{
    config c = {.conc = 1, .requests = 1000, .duration = 10, .timeout = 30};
    const char *body_path = NULL, *label = "run";
    long warmup = 0, nheaders = 0;
    int rc = 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c.headers = curl_slist_append(NULL, "Content-Type: application/json");
    c.headers = curl_slist_append(c.headers, "Expect:");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        loco_status st = LOCO_OK;
        if (!v)
            goto bad;
        i++;
        if (strcmp(a, "--url") == 0)
            c.url = v;
        else if (strcmp(a, "--body") == 0)
            body_path = v;
        else if (strcmp(a, "--expect") == 0)
            c.expect = v;
        else if (strcmp(a, "--label") == 0)
            label = v;
        else if (strcmp(a, "--concurrency") == 0)
            st = str_parse_long(v, 1, LOADGEN_MAX_CONC, &c.conc);
        else if (strcmp(a, "--requests") == 0)
            st = str_parse_long(v, 1, LOADGEN_MAX_REQUESTS, &c.requests);
        else if (strcmp(a, "--warmup") == 0)
            st = str_parse_long(v, 0, LOADGEN_MAX_REQUESTS, &warmup);
        else if (strcmp(a, "--duration") == 0)
            st = str_parse_double(v, 0.01, 3600, &c.duration);
        else if (strcmp(a, "--timeout") == 0)
            st = str_parse_double(v, 0.01, 3600, &c.timeout);
        else if (strcmp(a, "--header") == 0 && nheaders++ < LOADGEN_MAX_HEADERS)
            c.headers = curl_slist_append(c.headers, v);
        else
            goto bad;
        if (st)
            goto bad;
    }
    if (!c.url || !body_path)
        goto bad;
    buf body;
    buf_init(&body, (size_t)64 << 20);
    loco_err err;
    if (file_read_all(body_path, &body, &err)) {
        fprintf(stderr, "loadgen: %s\n", err.msg);
        rc = 1;
        goto out;
    }
    c.body = buf_str(&body);
    c.body_len = body.len;
    rc = bench(&c, warmup, label);
    buf_release(&body);
    goto out;
bad:
    rc = usage();
out:
    curl_slist_free_all(c.headers);
    curl_global_cleanup();
    return rc;
}
