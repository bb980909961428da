/* standin.c: a scripted OpenAI-compatible "local model" for the gateway benchmark
 * (bench/run_gateway_bench.sh). Every POST /v1/chat/completions is answered at once
 * with text plus one <tool_call>, as SSE when the body asks `"stream": true`, else as
 * one JSON object; the answers are built once at start so the server costs little. */
#include "base/common.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>

#include "base/buf.h"
#include "base/str.h"

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result standin_result;
#else
typedef int standin_result;
#endif

#define STANDIN_BODY_MAX ((size_t)8 << 20) /* request body limit */
#define STANDIN_PIECE 4                     /* bytes of answer text per SSE chunk */

/* The model's answer: some text, then one tool call in the training format. */
static const char ANSWER[] =
    "I will read the notes file first.\n"
    "<tool_call>\n"
    "{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/tmp/bench/docs/notes.txt\"}}\n"
    "</tool_call>";

typedef struct {
    struct MHD_Response *stream;  /* SSE answer */
    struct MHD_Response *plain;   /* JSON answer */
    struct MHD_Response *health;  /* GET /health */
    struct MHD_Response *models;  /* GET /v1/models */
    struct MHD_Response *missing; /* 404 */
    struct MHD_Response *too_big; /* 413 */
} standin;

typedef struct {
    buf body;
    bool over;
} standin_conn;

static loco_status chunk_json(buf *b, const char *delta, size_t n, const char *finish)
{
    loco_status st = buf_appends(b, "data: {\"id\":\"chatcmpl-bench\",\"object\":"
                                    "\"chat.completion.chunk\",\"created\":1700000000,"
                                    "\"model\":\"standin\",\"choices\":[{\"index\":0,"
                                    "\"delta\":{");
    if (!st && delta)
        st = buf_appends(b, "\"content\":");
    if (!st && delta)
        st = buf_append_json_str(b, delta, n);
    if (!st)
        st = buf_appendf(b, "},\"finish_reason\":%s}]}\n\n", finish ? finish : "null");
    return st;
}

/* SSE in llama-server's shape: a role chunk, the text a few bytes at a time,
 * a finish chunk, a usage chunk, then [DONE]. */
static loco_status build_stream(buf *b)
{
    size_t len = strlen(ANSWER);
    loco_status st = buf_appends(b, "data: {\"id\":\"chatcmpl-bench\",\"object\":"
                                    "\"chat.completion.chunk\",\"created\":1700000000,"
                                    "\"model\":\"standin\",\"choices\":[{\"index\":0,"
                                    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                                    "\"finish_reason\":null}]}\n\n");
    for (size_t i = 0; !st && i < len; i += STANDIN_PIECE) {
        size_t n = len - i < STANDIN_PIECE ? len - i : STANDIN_PIECE;
        st = chunk_json(b, ANSWER + i, n, NULL);
    }
    if (!st)
        st = chunk_json(b, NULL, 0, "\"stop\"");
    if (!st)
        st = buf_appends(b, "data: {\"id\":\"chatcmpl-bench\",\"object\":"
                            "\"chat.completion.chunk\",\"created\":1700000000,"
                            "\"model\":\"standin\",\"choices\":[],\"usage\":{"
                            "\"prompt_tokens\":1200,\"completion_tokens\":31,"
                            "\"total_tokens\":1231}}\n\ndata: [DONE]\n\n");
    return st;
}

static loco_status build_plain(buf *b)
{
    loco_status st = buf_appends(b, "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\","
                                    "\"created\":1700000000,\"model\":\"standin\","
                                    "\"choices\":[{\"index\":0,\"message\":{\"role\":"
                                    "\"assistant\",\"content\":");
    if (!st)
        st = buf_append_json_str(b, ANSWER, strlen(ANSWER));
    if (!st)
        st = buf_appends(b, "},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1200,"
                            "\"completion_tokens\":31,\"total_tokens\":1231}}");
    return st;
}

/* A response that owns a copy of b's bytes and can be queued any number of times. */
static struct MHD_Response *make_response(buf *b, const char *type)
{
    size_t len = 0;
    char *data = buf_take(b, &len);
    if (!data)
        return NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(data);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", type);
    return r;
}

static struct MHD_Response *make_text(const char *text, const char *type)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    if (buf_appends(&b, text)) {
        buf_release(&b);
        return NULL;
    }
    return make_response(&b, type);
}

static int standin_init(standin *s)
{
    buf b;
    memset(s, 0, sizeof(*s));
    buf_init(&b, BUF_UNLIMITED);
    if (build_stream(&b))
        return -1;
    s->stream = make_response(&b, "text/event-stream");
    buf_init(&b, BUF_UNLIMITED);
    if (build_plain(&b))
        return -1;
    s->plain = make_response(&b, "application/json");
    s->health = make_text("{\"status\":\"ok\"}", "application/json");
    s->models = make_text("{\"object\":\"list\",\"data\":[{\"id\":\"standin\",\"object\":"
                          "\"model\",\"owned_by\":\"bench\"}]}",
                          "application/json");
    s->missing = make_text("{\"error\":{\"message\":\"not found\",\"type\":\"not_found\"}}",
                           "application/json");
    s->too_big = make_text("{\"error\":{\"message\":\"body too large\",\"type\":\"too_large\"}}",
                           "application/json");
    if (!s->stream || !s->plain || !s->health || !s->models || !s->missing || !s->too_big)
        return -1;
    return 0;
}

static void standin_release(standin *s)
{
    struct MHD_Response *all[] = {s->stream, s->plain, s->health, s->models, s->missing,
                                    s->too_big};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(all); i++) {
        if (all[i])
            MHD_destroy_response(all[i]);
    }
}

/* True when the JSON body has "stream" followed by `: true` (a cheap scan; the
 * stand-in never parses the request). */
static bool wants_stream(const buf *body)
{
    const char *p = str_memmem(body->data, body->len, "\"stream\"");
    if (!p)
        return false;
    const char *end = body->data + body->len;
    p += strlen("\"stream\"");
    while (p < end && (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return (size_t)(end - p) >= 4 && memcmp(p, "true", 4) == 0;
}

static standin_result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version,
                                 const char *upload, size_t *upload_size, void **con_cls)
{
    standin *s = cls;
    LOCO_UNUSED(version);
    if (strcmp(method, "POST") != 0) {
        bool get = strcmp(method, "GET") == 0;
        if (get && strcmp(url, "/health") == 0)
            return MHD_queue_response(c, MHD_HTTP_OK, s->health);
        if (get && strcmp(url, "/v1/models") == 0)
            return MHD_queue_response(c, MHD_HTTP_OK, s->models);
        return MHD_queue_response(c, MHD_HTTP_NOT_FOUND, s->missing);
    }
    standin_conn *sc = *con_cls;
    if (!sc) {
        sc = calloc(1, sizeof(*sc));
        if (!sc)
            return MHD_NO;
        buf_init(&sc->body, STANDIN_BODY_MAX);
        *con_cls = sc;
        return MHD_YES;
    }
    if (*upload_size) {
        if (buf_append(&sc->body, upload, *upload_size))
            sc->over = true;
        *upload_size = 0;
        return MHD_YES;
    }
    if (sc->over)
        return MHD_queue_response(c, 413, s->too_big);
    if (strcmp(url, "/v1/chat/completions") != 0)
        return MHD_queue_response(c, MHD_HTTP_NOT_FOUND, s->missing);
    return MHD_queue_response(c, MHD_HTTP_OK, wants_stream(&sc->body) ? s->stream : s->plain);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    LOCO_UNUSED(cls);
    LOCO_UNUSED(c);
    LOCO_UNUSED(toe);
    standin_conn *sc = *con_cls;
    if (sc) {
        buf_release(&sc->body);
        free(sc);
        *con_cls = NULL;
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: standin [--port N (8080)] [--threads N (1)]\n");
    return 2;
}

int main(int argc, char **argv)
{
    long port = 8080, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--port") == 0) {
            if (str_parse_long(argv[++i], 1, 65535, &port))
                return usage();
        } else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0) {
            if (str_parse_long(argv[++i], 1, 64, &threads))
                return usage();
        } else {
            return usage();
        }
    }
    standin s;
    if (standin_init(&s)) {
        fprintf(stderr, "standin: cannot build the answers\n");
        standin_release(&s);
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* MHD threads inherit the mask */
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY, (uint16_t)port, NULL, NULL,
        on_request, &s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)1024, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "standin: cannot listen on 127.0.0.1:%ld: %s\n", port, strerror(errno));
        standin_release(&s);
        return 1;
    }
    fprintf(stderr, "standin: listening on 127.0.0.1:%ld\n", port);
    int sig = 0;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    standin_release(&s);
    return 0;
}
