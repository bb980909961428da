/* metrics.c: the gateway's Prometheus registry (see metrics.h). Series live in small
 * per-family tables keyed by their rendered label text; one mutex guards everything, and
 * label text is built before the lock is taken. */
#include "base/common.h"

#include <pthread.h>

#include "base/str.h"
#include "gateway/metrics.h"

/* Upper bounds (seconds) of the latency histograms; +Inf is implicit. */
static const double metrics_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                        2.5,   5,    10,    30,   60,  120, 300, 600};
#define METRICS_N_BUCKETS (LOCO_ARRAY_LEN(metrics_bounds) + 1)

typedef struct {
    char *labels;  /* rendered and escaped: route="local",status="200" */
    uint64_t hash; /* of labels */
    double value;  /* counter or gauge */
    uint64_t buckets[METRICS_N_BUCKETS]; /* histogram: per-bucket (not cumulative) counts */
    double sum;
    uint64_t count;
} series;

typedef struct {
    series *s;
    size_t n, cap;
    size_t max; /* METRICS_MAX_SERIES or METRICS_MAX_BACKENDS */
} family;

enum { TOOL_OK, TOOL_REPAIRED, TOOL_MAPPED, TOOL_BAD, TOOL_N };
static const char *const tool_outcomes[TOOL_N] = {"ok", "repaired", "mapped", "bad"};

struct metrics {
    pthread_mutex_t mu;
    family requests;  /* loco_requests_total{endpoint,route,status} */
    family fallbacks; /* loco_fallbacks_total{reason} */
    family tokens;    /* loco_tokens_total{route,direction} */
    family duration;  /* loco_request_duration_seconds{route} */
    family ttfb;      /* loco_time_to_first_byte_seconds{route} */
    family up;        /* loco_backend_up{url} */
    family busy;      /* loco_backend_in_flight{url} */
    family ttft;      /* loco_time_to_first_token_seconds{route} */
    bool has_engine;
    metrics_engine_stats engine;
    long in_flight;
    uint64_t tools[TOOL_N];
};

/* ---- label text ---- */

/* Appends name="value" (value escaped per the text format, cut to METRICS_MAX_LABEL). */
static loco_status label_append(buf *b, const char *name, const char *value)
{
    if (!value)
        value = "";
    size_t n = strlen(value);
    if (n > METRICS_MAX_LABEL)
        n = str_utf8_complete_len(value, METRICS_MAX_LABEL);
    loco_status rc = buf_appendf(b, "%s%s=\"", b->len ? "," : "", name);
    for (size_t i = 0; i < n && !rc; i++) {
        if (value[i] == '\\')
            rc = buf_appends(b, "\\\\");
        else if (value[i] == '"')
            rc = buf_appends(b, "\\\"");
        else if (value[i] == '\n')
            rc = buf_appends(b, "\\n");
        else
            rc = buf_appendc(b, value[i]);
    }
    return rc ? rc : buf_appendc(b, '"');
}

/* Label text of up to three name/value pairs (NULL name ends the list). */
static char *labels_make(const char *n1, const char *v1, const char *n2, const char *v2,
                         const char *n3, const char *v3)
{
    buf b;
    buf_init(&b, 4 * METRICS_MAX_LABEL);
    const char *names[] = {n1, n2, n3};
    const char *values[] = {v1, v2, v3};
    loco_status rc = LOCO_OK;
    for (size_t i = 0; i < 3 && names[i] && !rc; i++)
        rc = label_append(&b, names[i], values[i]);
    if (rc) {
        buf_release(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* ---- families ---- */

static series *family_find(family *f, const char *labels, uint64_t h)
{
    for (size_t i = 0; i < f->n; i++) {
        if (f->s[i].hash == h && !strcmp(f->s[i].labels, labels))
            return &f->s[i];
    }
    return NULL;
}

static series *family_add(family *f, const char *labels, uint64_t h)
{
    if (f->n == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 8;
        series *p = realloc(f->s, ncap * sizeof *p);
        if (!p)
            return NULL;
        f->s = p;
        f->cap = ncap;
    }
    char *copy = strdup(labels);
    if (!copy)
        return NULL;
    series *s = &f->s[f->n++];
    memset(s, 0, sizeof *s);
    s->labels = copy;
    s->hash = h;
    return s;
}

/* The series for labels, created when new. When the family is full (one slot stays kept
 * for it) the overflow series is used instead, or NULL when overflow is NULL. Called with
 * the lock held. */
static series *family_get(family *f, const char *labels, const char *overflow)
{
    if (!labels)
        return NULL;
    uint64_t h = hash_str(labels);
    series *s = family_find(f, labels, h);
    if (s)
        return s;
    size_t room = overflow ? f->max - 1 : f->max;
    if (f->n < room)
        return family_add(f, labels, h);
    if (!overflow)
        return NULL;
    h = hash_str(overflow);
    s = family_find(f, overflow, h);
    return s ? s : family_add(f, overflow, h);
}

static void family_release(family *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->s[i].labels);
    free(f->s);
    f->s = NULL;
    f->n = f->cap = 0;
}

static void observe(series *s, double seconds)
{
    if (!s)
        return;
    size_t i = 0;
    while (i < LOCO_ARRAY_LEN(metrics_bounds) && seconds > metrics_bounds[i])
        i++;
    s->buckets[i]++;
    s->sum += seconds;
    s->count++;
}

/* ---- lifecycle and updates ---- */

metrics *metrics_new(void)
{
    metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    family *series_tables[] = {&m->requests, &m->fallbacks, &m->tokens,
                               &m->duration, &m->ttfb,      &m->ttft};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(series_tables); i++)
        series_tables[i]->max = METRICS_MAX_SERIES;
    m->up.max = m->busy.max = METRICS_MAX_BACKENDS;
    return m;
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    family *all[] = {&m->requests, &m->fallbacks, &m->tokens, &m->duration,
                     &m->ttfb,     &m->up,        &m->busy,   &m->ttft};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(all); i++)
        family_release(all[i]);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void count(series *s, double v)
{
    if (s)
        s->value += v;
}

void metrics_request_done(metrics *m, const char *endpoint, const char *route,
                          const char *reason, int status, long in_tokens, long out_tokens,
                          double ttfb_ms, double total_ms)
{
    if (!m)
        return;
    char code[16];
    snprintf(code, sizeof code, "%d", status);
    bool fallback = route && !strcmp(route, "fallback");
    char *req = labels_make("endpoint", endpoint, "route", route, "status", code);
    char *why = fallback ? labels_make("reason", reason && reason[0] ? reason : "unknown",
                                       NULL, NULL, NULL, NULL)
                         : NULL;
    char *tin = labels_make("route", route, "direction", "input", NULL, NULL);
    char *tout = labels_make("route", route, "direction", "output", NULL, NULL);
    char *rt = labels_make("route", route, NULL, NULL, NULL, NULL);
    pthread_mutex_lock(&m->mu);
    count(family_get(&m->requests, req,
                     "endpoint=\"other\",route=\"other\",status=\"other\""), 1);
    if (fallback)
        count(family_get(&m->fallbacks, why, "reason=\"other\""), 1);
    if (in_tokens >= 0)
        count(family_get(&m->tokens, tin, "route=\"other\",direction=\"input\""),
              (double)in_tokens);
    if (out_tokens >= 0)
        count(family_get(&m->tokens, tout, "route=\"other\",direction=\"output\""),
              (double)out_tokens);
    if (total_ms >= 0)
        observe(family_get(&m->duration, rt, "route=\"other\""), total_ms / 1000.0);
    if (ttfb_ms >= 0)
        observe(family_get(&m->ttfb, rt, "route=\"other\""), ttfb_ms / 1000.0);
    pthread_mutex_unlock(&m->mu);
    free(req);
    free(why);
    free(tin);
    free(tout);
    free(rt);
}

void metrics_inflight(metrics *m, int delta)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->in_flight += delta;
    pthread_mutex_unlock(&m->mu);
}

void metrics_tool_call(metrics *m, bool repaired, bool bad, bool mapped)
{
    if (!m)
        return;
    int outcome = bad ? TOOL_BAD : repaired ? TOOL_REPAIRED : mapped ? TOOL_MAPPED : TOOL_OK;
    pthread_mutex_lock(&m->mu);
    m->tools[outcome]++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_backend(metrics *m, const char *url, bool healthy, int in_flight)
{
    if (!m)
        return;
    char *labels = labels_make("url", url, NULL, NULL, NULL, NULL);
    pthread_mutex_lock(&m->mu);
    series *up = family_get(&m->up, labels, NULL);
    series *busy = family_get(&m->busy, labels, NULL);
    if (up)
        up->value = healthy ? 1 : 0;
    if (busy)
        busy->value = in_flight;
    pthread_mutex_unlock(&m->mu);
    free(labels);
}

void metrics_ttft(metrics *m, const char *route, double seconds)
{
    if (!m || seconds < 0)
        return;
    char *rt = labels_make("route", route, NULL, NULL, NULL, NULL);
    pthread_mutex_lock(&m->mu);
    observe(family_get(&m->ttft, rt, "route=\"other\""), seconds);
    pthread_mutex_unlock(&m->mu);
    free(rt);
}

void metrics_engine(metrics *m, const metrics_engine_stats *st)
{
    if (!m || !st)
        return;
    pthread_mutex_lock(&m->mu);
    m->engine = *st;
    m->has_engine = true;
    pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ---- */

/* Shortest of %.15g..%.17g that reads back as v. */
static loco_status num_append(buf *b, double v)
{
    char text[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(text, sizeof text, "%.*g", prec, v);
        if (strtod(text, NULL) == v)
            break;
    }
    return buf_appends(b, text);
}

static loco_status header(buf *b, const char *name, const char *type, const char *help)
{
    return buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int series_cmp(const void *a, const void *b)
{
    const series *const *x = a;
    const series *const *y = b;
    return strcmp((*x)->labels, (*y)->labels);
}

/* The family's series sorted by label text (malloc'd array of pointers; NULL when empty or
 * on allocation failure, *out_err then set). */
static const series **sorted(const family *f, loco_status *out_err)
{
    *out_err = LOCO_OK;
    if (!f->n)
        return NULL;
    const series **v = malloc(f->n * sizeof *v);
    if (!v) {
        *out_err = LOCO_ERR_NOMEM;
        return NULL;
    }
    for (size_t i = 0; i < f->n; i++)
        v[i] = &f->s[i];
    qsort(v, f->n, sizeof *v, series_cmp);
    return v;
}

static loco_status render_values(buf *b, const family *f, const char *name, const char *type,
                                 const char *help)
{
    loco_status rc = header(b, name, type, help);
    const series **v = rc ? NULL : sorted(f, &rc);
    for (size_t i = 0; v && i < f->n && !rc; i++) {
        rc = buf_appendf(b, "%s{%s} ", name, v[i]->labels);
        if (!rc)
            rc = num_append(b, v[i]->value);
        if (!rc)
            rc = buf_appendc(b, '\n');
    }
    free(v);
    return rc;
}

static loco_status render_histogram_series(buf *b, const series *s, const char *name)
{
    loco_status rc = LOCO_OK;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < METRICS_N_BUCKETS && !rc; i++) {
        cumulative += s->buckets[i];
        if (i < LOCO_ARRAY_LEN(metrics_bounds))
            rc = buf_appendf(b, "%s_bucket{%s,le=\"%g\"} %" PRIu64 "\n", name, s->labels,
                             metrics_bounds[i], cumulative);
        else
            rc = buf_appendf(b, "%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n", name, s->labels,
                             cumulative);
    }
    if (!rc)
        rc = buf_appendf(b, "%s_sum{%s} ", name, s->labels);
    if (!rc)
        rc = num_append(b, s->sum);
    if (!rc)
        rc = buf_appendf(b, "\n%s_count{%s} %" PRIu64 "\n", name, s->labels, s->count);
    return rc;
}

static loco_status render_histogram(buf *b, const family *f, const char *name,
                                    const char *help)
{
    loco_status rc = header(b, name, "histogram", help);
    const series **v = rc ? NULL : sorted(f, &rc);
    for (size_t i = 0; v && i < f->n && !rc; i++)
        rc = render_histogram_series(b, v[i], name);
    free(v);
    return rc;
}

static loco_status render_one(buf *b, const char *name, const char *type, const char *help,
                              double v)
{
    loco_status rc = header(b, name, type, help);
    if (!rc)
        rc = buf_appendf(b, "%s ", name);
    if (!rc)
        rc = num_append(b, v);
    return rc ? rc : buf_appendc(b, '\n');
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

static loco_status render_engine(buf *b, const metrics_engine_stats *e)
{
    double hit = (double)e->cache_hit_tokens, all = (double)e->prompt_tokens;
    double computed = all > hit ? all - hit : 0;
    const struct {
        const char *name, *type, *help;
        double v;
    } rows[] = {
        {"loco_engine_queue_length", "gauge", "Calls waiting for an engine sequence.",
         (double)e->queue_len},
        {"loco_engine_active_sequences", "gauge", "Engine sequences running.", (double)e->active},
        {"loco_engine_parallel", "gauge", "Engine sequences that may run at once.",
         (double)e->parallel},
        {"loco_engine_requests_total", "counter", "Calls the engine accepted.",
         (double)e->requests},
        {"loco_engine_busy_total", "counter", "Calls refused because the queue was full.",
         (double)e->busy},
        {"loco_engine_cancelled_total", "counter", "Calls cancelled (the client went away).",
         (double)e->cancelled},
        {"loco_engine_prompt_tokens_total", "counter",
         "Prompt tokens of accepted calls, prefix-cache hits included.", all},
        {"loco_engine_prompt_tokens_computed_total", "counter",
         "Prompt tokens the engine computed (not taken from the prefix cache).", computed},
        {"loco_engine_prefix_cache_hit_tokens_total", "counter",
         "Prompt tokens taken from the prefix cache instead of computed.", hit},
        {"loco_engine_prefix_cache_hit_ratio", "gauge",
         "Share of prompt tokens taken from the prefix cache, since start.", ratio(hit, all)},
        {"loco_engine_prompt_seconds_total", "counter",
         "Time the engine spent computing prompt tokens.", e->prompt_seconds},
        {"loco_engine_prompt_tokens_per_second", "gauge",
         "Prompt tokens computed per second of prompt time, since start.",
         ratio(computed, e->prompt_seconds)},
        {"loco_engine_generation_tokens_total", "counter", "Tokens the engine generated.",
         (double)e->gen_tokens},
        {"loco_engine_generation_seconds_total", "counter", "Time the engine spent generating.",
         e->gen_seconds},
        {"loco_engine_generation_tokens_per_second", "gauge",
         "Tokens generated per second of generation time, since start.",
         ratio((double)e->gen_tokens, e->gen_seconds)},
        {"loco_engine_kv_bytes", "gauge", "KV cache memory held (sequences and prefix cache).",
         (double)e->kv_bytes},
    };
    loco_status rc = LOCO_OK;
    for (size_t i = 0; i < LOCO_ARRAY_LEN(rows) && !rc; i++)
        rc = render_one(b, rows[i].name, rows[i].type, rows[i].help, rows[i].v);
    return rc;
}

static loco_status render_locked(metrics *m, buf *b)
{
    loco_status rc = render_values(b, &m->requests, "loco_requests_total", "counter",
                                   "Requests answered, by endpoint, route and HTTP status.");
    if (!rc)
        rc = render_values(b, &m->fallbacks, "loco_fallbacks_total", "counter",
                           "Requests sent to the fallback route, by reason.");
    if (!rc)
        rc = header(b, "loco_requests_in_flight", "gauge", "Requests being answered now.");
    if (!rc)
        rc = buf_appendf(b, "loco_requests_in_flight %ld\n", m->in_flight);
    if (!rc)
        rc = render_values(b, &m->tokens, "loco_tokens_total", "counter",
                           "Tokens read and written, by route and direction.");
    if (!rc)
        rc = render_histogram(b, &m->duration, "loco_request_duration_seconds",
                              "Time from request to the end of the answer, by route.");
    if (!rc)
        rc = render_histogram(b, &m->ttfb, "loco_time_to_first_byte_seconds",
                              "Time from request to the first byte of the answer, by route.");
    if (!rc)
        rc = render_histogram(b, &m->ttft, "loco_time_to_first_token_seconds",
                              "Time from request to the model's first token, by route.");
    if (!rc)
        rc = header(b, "loco_tool_calls_total", "counter",
                    "Tool calls of the local model, by outcome.");
    for (size_t i = 0; i < TOOL_N && !rc; i++)
        rc = buf_appendf(b, "loco_tool_calls_total{outcome=\"%s\"} %" PRIu64 "\n",
                         tool_outcomes[i], m->tools[i]);
    if (!rc)
        rc = render_values(b, &m->up, "loco_backend_up", "gauge",
                           "1 when the backend passed its last health check, else 0.");
    if (!rc)
        rc = render_values(b, &m->busy, "loco_backend_in_flight", "gauge",
                           "Requests in flight at the backend.");
    if (!rc && m->has_engine)
        rc = render_engine(b, &m->engine);
    return rc;
}

loco_status metrics_render(metrics *m, buf *out)
{
    if (!m)
        return LOCO_ERR_INVALID;
    pthread_mutex_lock(&m->mu);
    loco_status rc = render_locked(m, out);
    pthread_mutex_unlock(&m->mu);
    return rc;
}
