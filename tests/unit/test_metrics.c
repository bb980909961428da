/* test_metrics.c: unit tests of gateway/metrics: the exact exposition after a sequence of
 * calls (histogram buckets cumulative, _sum and _count), label escaping, the bound on
 * distinct label sets, and totals after concurrent updates from 8 threads. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>

#include "gateway/metrics.h"

static char *render(metrics *m)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(metrics_render(m, &b), LOCO_OK);
    return buf_take(&b, NULL);
}

/* The value of the sample line that starts with prefix ("name{labels} "), or -1. */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (!strncmp(p, prefix, n))
            return strtod(p + n, NULL);
    }
    return -1;
}

#define BUCKETS(name, labels, c005, c01, c025, c05, c1, c25, c5, c1s, c25s, c5s, c10, c30,  \
                c60, c120, c300, c600, cinf)                                                \
    name "_bucket{" labels ",le=\"0.005\"} " #c005 "\n"                                      \
    name "_bucket{" labels ",le=\"0.01\"} " #c01 "\n"                                        \
    name "_bucket{" labels ",le=\"0.025\"} " #c025 "\n"                                      \
    name "_bucket{" labels ",le=\"0.05\"} " #c05 "\n"                                        \
    name "_bucket{" labels ",le=\"0.1\"} " #c1 "\n"                                          \
    name "_bucket{" labels ",le=\"0.25\"} " #c25 "\n"                                        \
    name "_bucket{" labels ",le=\"0.5\"} " #c5 "\n"                                          \
    name "_bucket{" labels ",le=\"1\"} " #c1s "\n"                                           \
    name "_bucket{" labels ",le=\"2.5\"} " #c25s "\n"                                        \
    name "_bucket{" labels ",le=\"5\"} " #c5s "\n"                                           \
    name "_bucket{" labels ",le=\"10\"} " #c10 "\n"                                          \
    name "_bucket{" labels ",le=\"30\"} " #c30 "\n"                                          \
    name "_bucket{" labels ",le=\"60\"} " #c60 "\n"                                          \
    name "_bucket{" labels ",le=\"120\"} " #c120 "\n"                                        \
    name "_bucket{" labels ",le=\"300\"} " #c300 "\n"                                        \
    name "_bucket{" labels ",le=\"600\"} " #c600 "\n"                                        \
    name "_bucket{" labels ",le=\"+Inf\"} " #cinf "\n"

static void test_empty(void **state)
{
    (void)state;
    metrics *m = metrics_new();
    char *text = render(m);
    assert_string_equal(
        text,
        "# HELP loco_requests_total Requests answered, by endpoint, route and HTTP status.\n"
        "# TYPE loco_requests_total counter\n"
        "# HELP loco_fallbacks_total Requests sent to the fallback route, by reason.\n"
        "# TYPE loco_fallbacks_total counter\n"
        "# HELP loco_requests_in_flight Requests being answered now.\n"
        "# TYPE loco_requests_in_flight gauge\n"
        "loco_requests_in_flight 0\n"
        "# HELP loco_tokens_total Tokens read and written, by route and direction.\n"
        "# TYPE loco_tokens_total counter\n"
        "# HELP loco_request_duration_seconds Time from request to the end of the answer, by "
        "route.\n"
        "# TYPE loco_request_duration_seconds histogram\n"
        "# HELP loco_time_to_first_byte_seconds Time from request to the first byte of the "
        "answer, by route.\n"
        "# TYPE loco_time_to_first_byte_seconds histogram\n"
        "# HELP loco_time_to_first_token_seconds Time from request to the model's first "
        "token, by route.\n"
        "# TYPE loco_time_to_first_token_seconds histogram\n"
        "# HELP loco_tool_calls_total Tool calls of the local model, by outcome.\n"
        "# TYPE loco_tool_calls_total counter\n"
        "loco_tool_calls_total{outcome=\"ok\"} 0\n"
        "loco_tool_calls_total{outcome=\"repaired\"} 0\n"
        "loco_tool_calls_total{outcome=\"mapped\"} 0\n"
        "loco_tool_calls_total{outcome=\"bad\"} 0\n"
        "# HELP loco_backend_up 1 when the backend passed its last health check, else 0.\n"
        "# TYPE loco_backend_up gauge\n"
        "# HELP loco_backend_in_flight Requests in flight at the backend.\n"
        "# TYPE loco_backend_in_flight gauge\n");
    free(text);
    metrics_free(m);
    metrics_free(NULL);
}

static void test_sequence(void **state)
{
    (void)state;
    metrics *m = metrics_new();
    metrics_inflight(m, 1);
    metrics_inflight(m, 1);
    metrics_inflight(m, 1);
    metrics_inflight(m, -1);
    metrics_request_done(m, "messages", "local", "", 200, 100, 20, 4, 1000);
    metrics_request_done(m, "messages", "local", "", 200, 50, -1, 10, 2500.5);
    metrics_request_done(m, "messages", "fallback", "max_turns", 200, 1000, 300, 700, 700000);
    metrics_request_done(m, "count_tokens", "none", "", 200, 7, -1, -1, 0.2);
    metrics_request_done(m, "chat_completions", "cloud", "", 529, -1, -1, -1, -1);
    metrics_request_done(m, "messages", "fallback", "", 200, -1, -1, -1, -1);
    metrics_tool_call(m, false, false, false);
    metrics_tool_call(m, false, false, false);
    metrics_tool_call(m, true, false, true);
    metrics_tool_call(m, false, false, true);
    metrics_tool_call(m, true, true, false);
    metrics_backend(m, "http://127.0.0.1:8080", true, 3);
    metrics_backend(m, "http://127.0.0.1:8081", false, 0);
    metrics_backend(m, "http://127.0.0.1:8080", false, 1);
    metrics_ttft(m, "local", 0.5);
    metrics_ttft(m, "local", 2.0);
    metrics_ttft(m, "local", -1); /* unknown: not observed */
    char *text = render(m);
    assert_string_equal(
        text,
        "# HELP loco_requests_total Requests answered, by endpoint, route and HTTP status.\n"
        "# TYPE loco_requests_total counter\n"
        "loco_requests_total{endpoint=\"chat_completions\",route=\"cloud\",status=\"529\"} 1\n"
        "loco_requests_total{endpoint=\"count_tokens\",route=\"none\",status=\"200\"} 1\n"
        "loco_requests_total{endpoint=\"messages\",route=\"fallback\",status=\"200\"} 2\n"
        "loco_requests_total{endpoint=\"messages\",route=\"local\",status=\"200\"} 2\n"
        "# HELP loco_fallbacks_total Requests sent to the fallback route, by reason.\n"
        "# TYPE loco_fallbacks_total counter\n"
        "loco_fallbacks_total{reason=\"max_turns\"} 1\n"
        "loco_fallbacks_total{reason=\"unknown\"} 1\n"
        "# HELP loco_requests_in_flight Requests being answered now.\n"
        "# TYPE loco_requests_in_flight gauge\n"
        "loco_requests_in_flight 2\n"
        "# HELP loco_tokens_total Tokens read and written, by route and direction.\n"
        "# TYPE loco_tokens_total counter\n"
        "loco_tokens_total{route=\"fallback\",direction=\"input\"} 1000\n"
        "loco_tokens_total{route=\"fallback\",direction=\"output\"} 300\n"
        "loco_tokens_total{route=\"local\",direction=\"input\"} 150\n"
        "loco_tokens_total{route=\"local\",direction=\"output\"} 20\n"
        "loco_tokens_total{route=\"none\",direction=\"input\"} 7\n"
        "# HELP loco_request_duration_seconds Time from request to the end of the answer, by "
        "route.\n"
        "# TYPE loco_request_duration_seconds histogram\n"
        BUCKETS("loco_request_duration_seconds", "route=\"fallback\"", 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0, 0, 0, 0, 1)
        "loco_request_duration_seconds_sum{route=\"fallback\"} 700\n"
        "loco_request_duration_seconds_count{route=\"fallback\"} 1\n"
        BUCKETS("loco_request_duration_seconds", "route=\"local\"", 0, 0, 0, 0, 0, 0, 0, 1, 1,
                2, 2, 2, 2, 2, 2, 2, 2)
        "loco_request_duration_seconds_sum{route=\"local\"} 3.5005\n"
        "loco_request_duration_seconds_count{route=\"local\"} 2\n"
        BUCKETS("loco_request_duration_seconds", "route=\"none\"", 1, 1, 1, 1, 1, 1, 1, 1, 1,
                1, 1, 1, 1, 1, 1, 1, 1)
        "loco_request_duration_seconds_sum{route=\"none\"} 0.0002\n"
        "loco_request_duration_seconds_count{route=\"none\"} 1\n"
        "# HELP loco_time_to_first_byte_seconds Time from request to the first byte of the "
        "answer, by route.\n"
        "# TYPE loco_time_to_first_byte_seconds histogram\n"
        BUCKETS("loco_time_to_first_byte_seconds", "route=\"fallback\"", 0, 0, 0, 0, 0, 0, 0, 1,
                1, 1, 1, 1, 1, 1, 1, 1, 1)
        "loco_time_to_first_byte_seconds_sum{route=\"fallback\"} 0.7\n"
        "loco_time_to_first_byte_seconds_count{route=\"fallback\"} 1\n"
        BUCKETS("loco_time_to_first_byte_seconds", "route=\"local\"", 1, 2, 2, 2, 2, 2, 2, 2,
                2, 2, 2, 2, 2, 2, 2, 2, 2)
        "loco_time_to_first_byte_seconds_sum{route=\"local\"} 0.014\n"
        "loco_time_to_first_byte_seconds_count{route=\"local\"} 2\n"
        "# HELP loco_time_to_first_token_seconds Time from request to the model's first "
        "token, by route.\n"
        "# TYPE loco_time_to_first_token_seconds histogram\n"
        BUCKETS("loco_time_to_first_token_seconds", "route=\"local\"", 0, 0, 0, 0, 0, 0, 1, 1,
                2, 2, 2, 2, 2, 2, 2, 2, 2)
        "loco_time_to_first_token_seconds_sum{route=\"local\"} 2.5\n"
        "loco_time_to_first_token_seconds_count{route=\"local\"} 2\n"
        "# HELP loco_tool_calls_total Tool calls of the local model, by outcome.\n"
        "# TYPE loco_tool_calls_total counter\n"
        "loco_tool_calls_total{outcome=\"ok\"} 2\n"
        "loco_tool_calls_total{outcome=\"repaired\"} 1\n"
        "loco_tool_calls_total{outcome=\"mapped\"} 1\n"
        "loco_tool_calls_total{outcome=\"bad\"} 1\n"
        "# HELP loco_backend_up 1 when the backend passed its last health check, else 0.\n"
        "# TYPE loco_backend_up gauge\n"
        "loco_backend_up{url=\"http://127.0.0.1:8080\"} 0\n"
        "loco_backend_up{url=\"http://127.0.0.1:8081\"} 0\n"
        "# HELP loco_backend_in_flight Requests in flight at the backend.\n"
        "# TYPE loco_backend_in_flight gauge\n"
        "loco_backend_in_flight{url=\"http://127.0.0.1:8080\"} 1\n"
        "loco_backend_in_flight{url=\"http://127.0.0.1:8081\"} 0\n");
    free(text);
    metrics_free(m);
}

/* Bucket bounds are inclusive (le): an observation of exactly 0.005 s is in le="0.005". */
static void test_bucket_edges(void **state)
{
    (void)state;
    metrics *m = metrics_new();
    metrics_request_done(m, "messages", "local", "", 200, -1, -1, -1, 5);
    metrics_request_done(m, "messages", "local", "", 200, -1, -1, -1, 5.0001);
    metrics_request_done(m, "messages", "local", "", 200, -1, -1, -1, 600000);
    char *text = render(m);
    const char *p = "loco_request_duration_seconds_bucket{route=\"local\",le=";
    char key[160];
    snprintf(key, sizeof key, "%s\"0.005\"} ", p);
    assert_true(sample(text, key) == 1);
    snprintf(key, sizeof key, "%s\"0.01\"} ", p);
    assert_true(sample(text, key) == 2);
    snprintf(key, sizeof key, "%s\"300\"} ", p);
    assert_true(sample(text, key) == 2);
    snprintf(key, sizeof key, "%s\"600\"} ", p);
    assert_true(sample(text, key) == 3);
    snprintf(key, sizeof key, "%s\"+Inf\"} ", p);
    assert_true(sample(text, key) == 3);
    free(text);
    metrics_free(m);
}

static void test_escaping(void **state)
{
    (void)state;
    metrics *m = metrics_new();
    metrics_request_done(m, "mess\"ages", "fallback", "bad \\ thing\nline2", 400, -1, -1, -1,
                         -1);
    metrics_backend(m, "http://h/\"x\"", true, 0);
    metrics_request_done(m, NULL, NULL, NULL, 0, -1, -1, -1, -1);
    char *text = render(m);
    assert_non_null(strstr(text, "\nloco_requests_total{endpoint=\"mess\\\"ages\","
                                 "route=\"fallback\",status=\"400\"} 1\n"));
    assert_non_null(strstr(text, "\nloco_fallbacks_total{reason=\"bad \\\\ thing\\nline2\"} 1\n"));
    assert_non_null(strstr(text, "\nloco_backend_up{url=\"http://h/\\\"x\\\"\"} 1\n"));
    assert_non_null(strstr(text, "\nloco_requests_total{endpoint=\"\",route=\"\",status=\"0\"} 1\n"));
    free(text);
    /* a long value is cut to METRICS_MAX_LABEL bytes */
    char longv[METRICS_MAX_LABEL + 50];
    memset(longv, 'r', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    metrics_request_done(m, "messages", "fallback", longv, 200, -1, -1, -1, -1);
    text = render(m);
    char want[METRICS_MAX_LABEL + 64];
    snprintf(want, sizeof want, "reason=\"%.*s\"} 1\n", METRICS_MAX_LABEL, longv);
    assert_non_null(strstr(text, want));
    free(text);
    metrics_free(m);
}

static void test_bound(void **state)
{
    (void)state;
    metrics *m = metrics_new();
    for (int i = 0; i < METRICS_MAX_SERIES + 100; i++) {
        char reason[32];
        snprintf(reason, sizeof reason, "r%04d", i);
        metrics_request_done(m, "messages", "fallback", reason, 200, -1, -1, -1, -1);
    }
    for (int i = 0; i < METRICS_MAX_BACKENDS + 5; i++) {
        char url[32];
        snprintf(url, sizeof url, "http://b%d", i);
        metrics_backend(m, url, true, i);
    }
    char *text = render(m);
    assert_true(sample(text, "loco_fallbacks_total{reason=\"r0000\"} ") == 1);
    assert_true(sample(text, "loco_fallbacks_total{reason=\"r0510\"} ") == 1);
    assert_true(sample(text, "loco_fallbacks_total{reason=\"r0511\"} ") == -1);
    assert_true(sample(text, "loco_fallbacks_total{reason=\"other\"} ") == 101);
    int lines = 0;
    for (const char *p = strstr(text, "loco_fallbacks_total{"); p;
         p = strstr(p + 1, "\nloco_fallbacks_total{"))
        lines++;
    assert_int_equal(lines, METRICS_MAX_SERIES);
    assert_true(sample(text, "loco_backend_up{url=\"http://b63\"} ") == 1);
    assert_true(sample(text, "loco_backend_up{url=\"http://b64\"} ") == -1);
    free(text);
    metrics_free(m);
}

#define THREADS 8
#define PER_THREAD 2000

static void *metrics_worker(void *arg)
{
    metrics *m = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        metrics_inflight(m, 1);
        metrics_request_done(m, "messages", i % 2 ? "local" : "cloud", "", 200, 3, 2, 1, 20);
        metrics_tool_call(m, false, false, i % 4 == 0);
        metrics_backend(m, "http://x", i % 2, i);
        metrics_inflight(m, -1);
        if (i % 500 == 0)
            free(render(m));
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    metrics *m = metrics_new();
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, metrics_worker, m), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    char *text = render(m);
    int half = THREADS * PER_THREAD / 2;
    assert_true(sample(text, "loco_requests_total{endpoint=\"messages\",route=\"local\","
                             "status=\"200\"} ") == half);
    assert_true(sample(text, "loco_requests_total{endpoint=\"messages\",route=\"cloud\","
                             "status=\"200\"} ") == half);
    assert_true(sample(text, "loco_tokens_total{route=\"local\",direction=\"input\"} ") ==
                3.0 * half);
    assert_true(sample(text, "loco_tokens_total{route=\"cloud\",direction=\"output\"} ") ==
                2.0 * half);
    assert_true(sample(text, "loco_request_duration_seconds_count{route=\"local\"} ") == half);
    assert_true(sample(text, "loco_request_duration_seconds_bucket{route=\"local\",le=\"0.025\"} ") ==
                half);
    assert_true(sample(text, "loco_request_duration_seconds_bucket{route=\"local\",le=\"0.01\"} ") ==
                0);
    assert_true(sample(text, "loco_tool_calls_total{outcome=\"mapped\"} ") ==
                THREADS * PER_THREAD / 4);
    assert_true(sample(text, "loco_tool_calls_total{outcome=\"ok\"} ") ==
                THREADS * PER_THREAD * 3 / 4);
    assert_true(sample(text, "loco_requests_in_flight ") == 0);
    free(text);
    metrics_free(m);
}

/* The engine families appear once metrics_engine was called, rates derived from totals. */
static void test_engine(void **state)
{
    (void)state;
    metrics *m = metrics_new();
    char *text = render(m);
    assert_null(strstr(text, "loco_engine_"));
    free(text);
    metrics_engine_stats st = {
        .queue_len = 3,
        .active = 4,
        .parallel = 4,
        .requests = 9,
        .busy = 2,
        .cancelled = 1,
        .prompt_tokens = 1200,
        .cache_hit_tokens = 900,
        .gen_tokens = 50,
        .prompt_seconds = 1.5,
        .gen_seconds = 2.0,
        .kv_bytes = 1 << 20,
    };
    metrics_engine(m, &st);
    text = render(m);
    assert_true(sample(text, "loco_engine_queue_length ") == 3);
    assert_true(sample(text, "loco_engine_active_sequences ") == 4);
    assert_true(sample(text, "loco_engine_prompt_tokens_total ") == 1200);
    assert_true(sample(text, "loco_engine_prompt_tokens_computed_total ") == 300);
    assert_true(sample(text, "loco_engine_busy_total ") == 2);
    assert_true(sample(text, "loco_engine_cancelled_total ") == 1);
    assert_true(sample(text, "loco_engine_kv_bytes ") == 1048576);
    assert_true(sample(text, "loco_engine_prompt_tokens_per_second ") == 200);
    assert_true(sample(text, "loco_engine_generation_tokens_total ") == 50);
    assert_true(sample(text, "loco_engine_generation_tokens_per_second ") == 25);
    assert_true(sample(text, "loco_engine_prefix_cache_hit_tokens_total ") == 900);
    assert_true(sample(text, "loco_engine_prefix_cache_hit_ratio ") == 0.75);
    assert_non_null(strstr(text, "# TYPE loco_engine_prompt_tokens_total counter\n"));
    assert_non_null(strstr(text, "# TYPE loco_engine_queue_length gauge\n"));
    free(text);
    metrics_engine_stats zero;
    memset(&zero, 0, sizeof(zero));
    metrics_engine(m, &zero); /* no division by zero before any work */
    text = render(m);
    assert_true(sample(text, "loco_engine_prompt_tokens_per_second ") == 0);
    assert_true(sample(text, "loco_engine_prefix_cache_hit_ratio ") == 0);
    free(text);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),       cmocka_unit_test(test_sequence),
        cmocka_unit_test(test_bucket_edges), cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_bound),       cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
