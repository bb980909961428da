/* hub.c: the Hugging Face Hub client behind `loco pull`: listing (GET /api/models/REPO/tree/REV,
 * paginated by Link headers), picking a GGUF, and a resumable, verified download of
 * /REPO/resolve/REV/FILE into the model store. Redirects are followed here, not by libcurl, so
 * the token goes to the endpoint's own host only. */
#include "base/common.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/file.h"
#include "base/json.h"
#include "base/models.h"
#include "base/sha256.h"
#include "base/str.h"
#include "net/hub.h"

#define HUB_USER_AGENT "User-Agent: loco/0.1.0"
#define HUB_CONNECT_TIMEOUT_MS 15000L
#define HUB_IDLE_TIMEOUT_MS 60000L
#define HUB_LIST_TIMEOUT_MS 120000L
#define HUB_CHUNK (1u << 20) /* bytes read at a time while hashing a file on disk */

/* ---- listing ---- */

void hub_listing_release(hub_listing *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->files[i].path);
    free(l->files);
    memset(l, 0, sizeof(*l));
}

static bool hex64(const char *s, char out[65])
{
    if (!s || strlen(s) != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c + 32);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        out[i] = c;
    }
    out[64] = '\0';
    return true;
}

static bool json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* One entry: tree form (path/type/size/lfs.oid) or siblings form (rfilename/size/lfs.sha256). */
static loco_status parse_entry(const json_t *e, size_t idx, hub_listing *l, loco_err *err)
{
    if (!json_is_object(e))
        return loco_err_set(err, LOCO_ERR_INVALID, "listing entry %zu is not an object", idx);
    const char *type = json_get_str(e, "type");
    if (type && strcmp(type, "file") != 0)
        return LOCO_OK; /* "directory" (or anything newer) */
    const char *path = json_get_str(e, "path");
    if (!path)
        path = json_get_str(e, "rfilename");
    if (!path || !models_file_valid(path))
        return loco_err_set(err, LOCO_ERR_INVALID, "listing entry %zu has no valid path", idx);
    hub_file f;
    memset(&f, 0, sizeof(f));
    const json_t *lfs = json_object_get(e, "lfs");
    const json_t *sz = json_object_get(e, "size");
    if (json_is_object(lfs)) {
        const char *oid = json_get_str(lfs, "sha256");
        if (!oid)
            oid = json_get_str(lfs, "oid");
        if (oid && !hex64(oid, f.sha256))
            return loco_err_set(err, LOCO_ERR_INVALID, "listing entry '%s': bad LFS sha256", path);
        if (json_object_get(lfs, "size"))
            sz = json_object_get(lfs, "size");
    } else if (lfs && !json_is_null(lfs)) {
        return loco_err_set(err, LOCO_ERR_INVALID, "listing entry '%s': bad lfs member", path);
    }
    if (sz && !json_u64(sz, &f.size))
        return loco_err_set(err, LOCO_ERR_INVALID, "listing entry '%s': bad size", path);
    if (l->n >= HUB_FILES_MAX)
        return loco_err_set(err, LOCO_ERR_LIMIT, "the listing has more than %d files",
                            HUB_FILES_MAX);
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        hub_file *nf = realloc(l->files, cap * sizeof(*nf));
        if (!nf)
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        l->files = nf;
        l->cap = cap;
    }
    f.path = strdup(path);
    if (!f.path)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    l->files[l->n++] = f;
    return LOCO_OK;
}

loco_status hub_parse_listing(const char *json, size_t n, hub_listing *l, loco_err *err)
{
    json_t *root = json_parse(json, n, err);
    if (!root)
        return loco_err_wrap(err, "the Hub's file listing");
    const json_t *arr = root;
    if (json_is_object(root))
        arr = json_object_get(root, "siblings");
    loco_status rc = LOCO_OK;
    if (!json_is_array(arr)) {
        rc = loco_err_set(err, LOCO_ERR_INVALID,
                          "the Hub's file listing is not a list of files (nor {\"siblings\": "
                          "[...]})");
    } else {
        size_t keep = l->n, i;
        const json_t *e;
        json_array_foreach(arr, i, e)
        {
            rc = parse_entry(e, i, l, err);
            if (rc)
                break;
        }
        if (rc) { /* all or nothing per page */
            for (size_t k = keep; k < l->n; k++)
                free(l->files[k].path);
            l->n = keep;
        }
    }
    json_decref(root);
    return rc;
}

bool hub_link_next(const char *value, char *out, size_t n)
{
    if (n)
        out[0] = '\0';
    const char *p = value;
    while (p && *p) {
        const char *lt = strchr(p, '<');
        if (!lt)
            return false;
        const char *gt = strchr(lt + 1, '>');
        if (!gt)
            return false;
        const char *end = strchr(gt + 1, ','); /* params run to the next link */
        size_t plen = end ? (size_t)(end - gt - 1) : strlen(gt + 1);
        const char *rel = str_memmem(gt + 1, plen, "rel=");
        if (rel) {
            const char *v = rel + 4;
            if (*v == '"')
                v++;
            if (strncasecmp(v, "next", 4) == 0 && (v[4] == '"' || v[4] == ';' || v[4] == ',' ||
                                                    v[4] == ' ' || v[4] == '\0')) {
                size_t ul = (size_t)(gt - lt - 1);
                if (ul == 0 || ul >= n)
                    return false;
                memcpy(out, lt + 1, ul);
                out[ul] = '\0';
                return true;
            }
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* ---- choosing a file ---- */

static bool is_gguf(const char *path)
{
    size_t n = strlen(path);
    return n >= 5 && strcasecmp(path + n - 5, ".gguf") == 0;
}

static const char *base_of(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* "-00001-of-00003.gguf" at the end of a name: one part of a split GGUF. */
static bool is_split(const char *path, unsigned *out_parts)
{
    const char *b = base_of(path);
    size_t n = strlen(b);
    if (n < 20)
        return false;
    const char *s = b + n - 20; /* "-NNNNN-of-NNNNN.gguf" */
    if (s[0] != '-' || strncmp(s + 6, "-of-", 4) != 0)
        return false;
    unsigned parts = 0;
    for (int i = 0; i < 5; i++) {
        if (s[1 + i] < '0' || s[1 + i] > '9' || s[10 + i] < '0' || s[10 + i] > '9')
            return false;
        parts = parts * 10 + (unsigned)(s[10 + i] - '0');
    }
    *out_parts = parts;
    return strcasecmp(s + 15, ".gguf") == 0;
}

/* "2.50 GiB", "38.2 MiB", "512 B" (as the command line's progress display writes sizes). */
static void human_size(uint64_t b, char *out, size_t n)
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

/* Appends "Q8_0 (4.28 GiB), Q4_K_M (2.50 GiB), ..." for the GGUF files of l (each quant once;
 * files without a quant by name; at most 48 shown). */
static void list_quants(const hub_listing *l, buf *out)
{
    char seen[48][64];
    size_t shown = 0;
    for (size_t i = 0; i < l->n; i++) {
        const hub_file *f = &l->files[i];
        unsigned parts;
        if (!is_gguf(f->path) || (is_split(f->path, &parts) && !strstr(f->path, "-00001-of-")))
            continue;
        char q[64], sz[32];
        bool has_q = models_quant_of(f->path, q, sizeof(q));
        bool dup = false;
        for (size_t k = 0; k < shown && has_q && !dup; k++)
            dup = strcmp(seen[k], q) == 0;
        if (dup)
            continue;
        if (shown == LOCO_ARRAY_LEN(seen)) {
            buf_appends(out, ", ...");
            break;
        }
        snprintf(seen[shown], sizeof(seen[shown]), "%s", has_q ? q : "");
        human_size(f->size, sz, sizeof(sz));
        buf_appendf(out, "%s%s (%s)", shown++ ? ", " : "", has_q ? q : base_of(f->path), sz);
    }
    if (!shown)
        buf_appends(out, "no .gguf file");
}

static bool file_wanted(const hub_file *f, const char *want)
{
    if (strcasecmp(f->path, want) == 0 || strcasecmp(base_of(f->path), want) == 0)
        return true;
    char q[64];
    return models_quant_of(f->path, q, sizeof(q)) && strcasecmp(q, want) == 0;
}

static loco_status pick_checked(const hub_listing *l, const char *repo, size_t at,
                                size_t *out_index, loco_err *err)
{
    unsigned parts = 0;
    if (is_split(l->files[at].path, &parts) && parts > 1)
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED,
                            "%s: '%s' is one of %u parts of a split GGUF; loco loads single-file "
                            "GGUFs only (merge the parts with llama.cpp's llama-gguf-split "
                            "--merge, or pick another quant)",
                            repo, l->files[at].path, parts);
    *out_index = at;
    return LOCO_OK;
}

loco_status hub_pick(const hub_listing *l, const char *repo, const char *want, size_t *out_index,
                     loco_err *err)
{
    size_t n_gguf = 0, at_gguf = 0, n_match = 0, at_match = 0;
    bool named = want && *want;
    for (size_t i = 0; i < l->n; i++) {
        const hub_file *f = &l->files[i];
        if (!is_gguf(f->path))
            continue;
        unsigned parts;
        if (!is_split(f->path, &parts) || strstr(f->path, "-00001-of-")) {
            n_gguf++;
            at_gguf = i;
        }
        if (named ? file_wanted(f, want) : file_wanted(f, MODELS_DEFAULT_QUANT)) {
            /* a split counts once (its first part) */
            if (is_split(f->path, &parts) && !strstr(f->path, "-00001-of-"))
                continue;
            n_match++;
            at_match = i;
        }
    }
    buf names;
    buf_init(&names, 4096);
    loco_status rc;
    if (n_gguf == 0) {
        rc = loco_err_set(err, LOCO_ERR_NOT_FOUND, "%s has no .gguf file", repo);
    } else if (n_match == 1) {
        rc = pick_checked(l, repo, at_match, out_index, err);
    } else if (n_match > 1) {
        for (size_t i = 0, shown = 0; i < l->n; i++) {
            if (is_gguf(l->files[i].path) &&
                file_wanted(&l->files[i], named ? want : MODELS_DEFAULT_QUANT))
                buf_appendf(&names, "%s%s", shown++ ? ", " : "", l->files[i].path);
        }
        rc = loco_err_set(err, LOCO_ERR_INVALID,
                          "%s has several files for %s: %s; name one as %s:FILE", repo,
                          named ? want : MODELS_DEFAULT_QUANT, buf_str(&names), repo);
    } else if (!named && n_gguf == 1) {
        rc = pick_checked(l, repo, at_gguf, out_index, err);
    } else if (!named) {
        list_quants(l, &names);
        rc = loco_err_set(err, LOCO_ERR_INVALID,
                          "%s has several GGUF files and no " MODELS_DEFAULT_QUANT
                          ": choose one with `loco pull %s:QUANT`; it has %s",
                          repo, repo, buf_str(&names));
    } else {
        list_quants(l, &names);
        rc = loco_err_set(err, LOCO_ERR_NOT_FOUND, "%s has no %s; it has %s", repo, want,
                          buf_str(&names));
    }
    buf_release(&names);
    return rc;
}

/* ---- targets ---- */

static bool copy_str(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return false;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

static bool revision_valid(const char *r)
{
    if (!*r || strlen(r) > 100 || r[0] == '.' || strstr(r, ".."))
        return false;
    for (const char *p = r; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    }
    return true;
}

/* Percent-decodes s[0..n) into out (size cap); false on a bad escape, a NUL or overflow. */
static bool url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            char *end = NULL;
            long v = strtol(hex, &end, 16);
            if (end != hex + 2 || v <= 0 || hex[0] == '-' || hex[0] == '+' || hex[0] == ' ')
                return false;
            c = (char)v;
            i += 2;
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

/* https://HOST/OWNER/NAME[/(resolve|blob)/REV/FILE][?query] */
static loco_status parse_url(const char *s, hub_target *t, loco_err *err)
{
    const char *host = strstr(s, "://") + 3;
    size_t hl = strcspn(host, "/?#");
    if (hl == 0)
        return loco_err_set(err, LOCO_ERR_INVALID, "URL '%.200s' has no host", s);
    if (memchr(host, '@', hl))
        return loco_err_set(err, LOCO_ERR_INVALID, "URL with credentials refused: put the token "
                            "in HF_TOKEN instead");
    const char *path = host + hl;
    size_t pl = strcspn(path, "?#");
    char dec[2048];
    if (!url_decode(path, pl, dec, sizeof(dec)))
        return loco_err_set(err, LOCO_ERR_INVALID, "URL '%.200s': bad path", s);
    /* split /OWNER/NAME/KIND/REV/FILE... */
    const char *parts[5] = {0};
    size_t lens[5] = {0};
    const char *p = dec;
    int np = 0;
    while (*p == '/')
        p++;
    while (*p && np < 5) {
        size_t n = np == 4 ? strlen(p) : strcspn(p, "/");
        parts[np] = p;
        lens[np++] = n;
        p += n;
        if (*p == '/')
            p++;
    }
    bool hubby = false;
    if (np >= 2) {
        char repo[MODELS_REPO_MAX + 1];
        int rn = snprintf(repo, sizeof(repo), "%.*s/%.*s", (int)lens[0], parts[0], (int)lens[1],
                          parts[1]);
        if (rn > 0 && (size_t)rn < sizeof(repo) && models_repo_valid(repo)) {
            if (np == 2) {
                /* /OWNER/NAME names a repository, unless NAME is a .gguf file */
                hubby = !(lens[1] >= 5 && strncasecmp(parts[1] + lens[1] - 5, ".gguf", 5) == 0);
            } else if (np == 5 && ((lens[2] == 7 && !strncmp(parts[2], "resolve", 7)) ||
                                   (lens[2] == 4 && !strncmp(parts[2], "blob", 4)))) {
                hubby = copy_str(t->revision, sizeof(t->revision), parts[3], lens[3]) &&
                        revision_valid(t->revision) &&
                        copy_str(t->file, sizeof(t->file), parts[4], lens[4]) &&
                        models_file_valid(t->file);
            }
            if (hubby)
                memcpy(t->repo, repo, (size_t)rn + 1);
            else if (np >= 3 && ((lens[2] == 7 && !strncmp(parts[2], "resolve", 7)) ||
                                 (lens[2] == 4 && !strncmp(parts[2], "blob", 4))))
                return loco_err_set(err, LOCO_ERR_INVALID,
                                    "'%.200s' is not a Hub file URL "
                                    "(https://HOST/OWNER/NAME/resolve/REVISION/FILE.gguf)",
                                    s);
        }
    }
    if (hubby) {
        if (!copy_str(t->endpoint, sizeof(t->endpoint), s, (size_t)(host + hl - s)))
            return loco_err_set(err, LOCO_ERR_INVALID, "URL host too long");
        if (!t->revision[0])
            snprintf(t->revision, sizeof(t->revision), "main");
        if (t->file[0] && !is_gguf(t->file))
            return loco_err_set(err, LOCO_ERR_INVALID, "'%s' is not a .gguf file", t->file);
        return LOCO_OK;
    }
    memset(t->repo, 0, sizeof(t->repo));
    t->file[0] = t->revision[0] = '\0';
    const char *b = base_of(dec);
    if (!is_gguf(b) || !models_file_valid(b))
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "URL '%.200s' names no .gguf file (expected a Hub repository URL or "
                            "a URL ending in .gguf)",
                            s);
    if (!copy_str(t->file, sizeof(t->file), b, strlen(b)) ||
        !copy_str(t->url, sizeof(t->url), s, strlen(s)))
        return loco_err_set(err, LOCO_ERR_INVALID, "URL too long");
    return LOCO_OK;
}

loco_status hub_parse_target(const char *s, hub_target *out, loco_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!s || !*s)
        s = MODELS_DEFAULT_REPO;
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return loco_err_set(err, LOCO_ERR_INVALID, "spaces or control characters in '%.200s'",
                                s);
    }
    if (str_starts_with(s, "http://") || str_starts_with(s, "https://")) {
        models_ref ref;
        /* https://huggingface.co/OWNER/NAME:QUANT reads as REPO:QUANT */
        const char *after = strstr(s, "://") + 3;
        if (strchr(after, ':') && !strchr(strchr(after, ':'), '/') &&
            models_parse_ref(s, &ref, NULL) == LOCO_OK) {
            memcpy(out->repo, ref.repo, sizeof(ref.repo));
            memcpy(out->quant, ref.quant, sizeof(ref.quant));
            snprintf(out->revision, sizeof(out->revision), "main");
            return LOCO_OK;
        }
        return parse_url(s, out, err);
    }
    models_ref ref;
    loco_status rc = models_parse_ref(s, &ref, err);
    if (rc)
        return rc;
    memcpy(out->repo, ref.repo, sizeof(ref.repo));
    memcpy(out->quant, ref.quant, sizeof(ref.quant));
    snprintf(out->revision, sizeof(out->revision), "main");
    return LOCO_OK;
}

/* ---- HTTP with our own redirects ---- */

typedef struct {
    http_client *client;
    const hub_opts *o;
    const char *endpoint;
    const char *token;
    char auth[1200];        /* "Authorization: Bearer ..." */
    long idle_ms;
} hub_http;

/* True when a and b have the same scheme, host and port. */
static bool same_origin(const char *a, const char *b)
{
    CURLU *ua = curl_url(), *ub = curl_url();
    bool same = false;
    if (ua && ub && curl_url_set(ua, CURLUPART_URL, a, 0) == CURLUE_OK &&
        curl_url_set(ub, CURLUPART_URL, b, 0) == CURLUE_OK) {
        same = true;
        const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
        for (size_t i = 0; i < LOCO_ARRAY_LEN(parts) && same; i++) {
            char *x = NULL, *y = NULL;
            unsigned flags = parts[i] == CURLUPART_PORT ? CURLU_DEFAULT_PORT : 0;
            curl_url_get(ua, parts[i], &x, flags);
            curl_url_get(ub, parts[i], &y, flags);
            same = x && y && strcasecmp(x, y) == 0;
            curl_free(x);
            curl_free(y);
        }
    }
    curl_url_cleanup(ua);
    curl_url_cleanup(ub);
    return same;
}

/* Resolves location against base into out (size n). */
static bool resolve_location(const char *base, const char *location, char *out, size_t n)
{
    CURLU *u = curl_url();
    char *s = NULL;
    bool ok = u && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
              curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK && s && strlen(s) < n &&
              (str_starts_with(s, "http://") || str_starts_with(s, "https://"));
    if (ok)
        memcpy(out, s, strlen(s) + 1);
    curl_free(s);
    curl_url_cleanup(u);
    return ok;
}

/* A URL without its query (signed CDN URLs carry credentials there) for messages. */
static void shown_url(const char *url, char *out, size_t n)
{
    size_t l = strcspn(url, "?#");
    snprintf(out, n, "%.*s", (int)(l > 300 ? 300 : l), url);
}

static bool parse_u64(const char *s, size_t n, uint64_t *out);

/* What one response said, gathered by the callbacks. */
typedef struct {
    int status;
    char location[HUB_URL_MAX];
    char link_next[HUB_URL_MAX];
    char content_range[128];
    uint64_t content_length; /* 0 when absent */
    char error_code[64];
    char error_message[256];
    buf body; /* listing page or error text (limited) */
    /* download mode (sink != NULL) */
    struct dl *sink;
    bool writing;
} hub_resp;

static void resp_reset(hub_resp *r, size_t body_max)
{
    buf_release(&r->body);
    struct dl *sink = r->sink;
    memset(r, 0, sizeof(*r));
    r->sink = sink;
    buf_init(&r->body, body_max);
}

static loco_status on_header(void *ctx, const char *name, const char *value)
{
    hub_resp *r = ctx;
    if (!strcasecmp(name, "location"))
        snprintf(r->location, sizeof(r->location), "%s", value);
    else if (!strcasecmp(name, "link"))
        hub_link_next(value, r->link_next, sizeof(r->link_next));
    else if (!strcasecmp(name, "content-range"))
        snprintf(r->content_range, sizeof(r->content_range), "%s", value);
    else if (!strcasecmp(name, "content-length") &&
             !parse_u64(value, strlen(value), &r->content_length))
        r->content_length = 0;
    else if (!strcasecmp(name, "x-error-code"))
        snprintf(r->error_code, sizeof(r->error_code), "%s", value);
    else if (!strcasecmp(name, "x-error-message"))
        snprintf(r->error_message, sizeof(r->error_message), "%s", value);
    return LOCO_OK;
}

static loco_status dl_begin(struct dl *d, hub_resp *r);
static loco_status dl_write(struct dl *d, const char *p, size_t n);

static loco_status on_headers(void *ctx, int status, const char *content_type)
{
    (void)content_type;
    hub_resp *r = ctx;
    r->status = status;
    if (r->sink && (status == 200 || status == 206)) {
        r->writing = true;
        return dl_begin(r->sink, r);
    }
    return LOCO_OK;
}

static loco_status on_data(void *ctx, const char *p, size_t n)
{
    hub_resp *r = ctx;
    if (r->writing)
        return dl_write(r->sink, p, n);
    if (r->status >= 300 && r->status < 400)
        return LOCO_OK; /* a redirect's body */
    if (r->body.len + n > r->body.max) {
        if (r->status >= 200 && r->status < 300)
            return LOCO_ERR_LIMIT; /* a listing page too large */
        n = r->body.max - r->body.len; /* error text: keep the start */
    }
    return buf_append(&r->body, p, n);
}

/* GET url following redirects; on return r holds the final response. extra is one more
 * header or NULL. The token goes only to the endpoint's origin. */
static loco_status hub_get(hub_http *h, const char *url, const char *extra, hub_resp *r,
                           size_t body_max, long total_ms, loco_err *err)
{
    char cur[HUB_URL_MAX];
    if (strlen(url) >= sizeof(cur))
        return loco_err_set(err, LOCO_ERR_INVALID, "URL too long");
    memcpy(cur, url, strlen(url) + 1);
    for (int hop = 0; hop <= HUB_REDIRECTS_MAX; hop++) {
        const char *headers[5];
        size_t nh = 0;
        headers[nh++] = HUB_USER_AGENT;
        if (h->auth[0] && same_origin(cur, h->endpoint))
            headers[nh++] = h->auth;
        if (extra)
            headers[nh++] = extra;
        headers[nh] = NULL;
        resp_reset(r, body_max);
        http_client_request req = {
            .method = "GET",
            .url = cur,
            .headers = headers,
            .connect_timeout_ms = HUB_CONNECT_TIMEOUT_MS,
            .idle_timeout_ms = h->idle_ms,
            .total_timeout_ms = total_ms,
            .cancel = h->o->cancel,
            .on_headers = on_headers,
            .on_header = on_header,
            .on_data = on_data,
            .ctx = r,
        };
        int status = 0;
        loco_status rc = http_client_do(h->client, &req, &status, err);
        if (rc == LOCO_ERR_LIMIT) {
            char su[400];
            shown_url(cur, su, sizeof(su));
            return loco_err_set(err, rc, "the answer to GET %s is larger than %zu bytes", su,
                                body_max);
        }
        if (rc)
            return rc;
        r->status = status;
        if (status >= 300 && status < 400 && status != 304) {
            char next[HUB_URL_MAX];
            if (!r->location[0] || !resolve_location(cur, r->location, next, sizeof(next))) {
                char su[400];
                shown_url(cur, su, sizeof(su));
                return loco_err_set(err, LOCO_ERR_UPSTREAM,
                                    "GET %s: redirect %d without a usable Location", su, status);
            }
            memcpy(cur, next, strlen(next) + 1);
            continue;
        }
        return LOCO_OK;
    }
    char su[400];
    shown_url(url, su, sizeof(su));
    return loco_err_set(err, LOCO_ERR_UPSTREAM, "GET %s: more than %d redirects", su,
                        HUB_REDIRECTS_MAX);
}

/* The error for a non-2xx answer about repo (and file, when downloading). */
static loco_status http_error(const hub_http *h, const hub_resp *r, const char *repo,
                              const char *file, const char *revision, loco_err *err)
{
    char what[1400];
    if (file)
        snprintf(what, sizeof(what), "%s/%s", repo, file);
    else
        snprintf(what, sizeof(what), "%s", repo);
    const char *code = r->error_code;
    bool has_token = h->token && *h->token;
    if (r->status == 401 || (r->status == 403 && !has_token))
        return loco_err_set(err, LOCO_ERR_AUTH,
                            has_token
                                ? "%s: HF_TOKEN was refused (%d): check the token, and that it "
                                  "may read this repository"
                                : "%s: the Hub needs a token (%d): the repository is gated or "
                                  "private, or does not exist. Set HF_TOKEN to a Hugging Face "
                                  "access token that can read it",
                            what, r->status);
    if (r->status == 403 || !strcmp(code, "GatedRepo"))
        return loco_err_set(err, LOCO_ERR_AUTH,
                            "%s: access denied (%d): the repository is gated; accept its terms "
                            "at %s/%s with the account of HF_TOKEN",
                            what, r->status, h->endpoint, repo);
    if (r->status == 404) {
        if (!strcmp(code, "RevisionNotFound"))
            return loco_err_set(err, LOCO_ERR_NOT_FOUND, "%s has no revision '%s'", repo,
                                revision);
        if (file && strcmp(code, "RepoNotFound") != 0)
            return loco_err_set(err, LOCO_ERR_NOT_FOUND, "%s: no such file (404)", what);
        return loco_err_set(err, LOCO_ERR_NOT_FOUND, "no repository %s on %s (404)", repo,
                            h->endpoint);
    }
    /* the server's words, printable ASCII only (no terminal control sequences) */
    char text[300];
    const char *b = r->error_message[0] ? r->error_message : buf_str(&r->body);
    size_t n = r->error_message[0] ? strlen(b) : r->body.len;
    if (n > 200)
        n = 200;
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < sizeof(text); i++)
        text[k++] = (b[i] >= 0x20 && b[i] < 0x7f) ? b[i] : ' ';
    text[k] = '\0';
    return loco_err_set(err, LOCO_ERR_UPSTREAM, "%s: the Hub answered %d%s%s", what, r->status,
                        text[0] ? ": " : "", text);
}

/* Appends s to b percent-encoding every byte outside the unreserved set (and '/' when
 * keep_slash). */
static loco_status append_encoded(buf *b, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
                     *p == '~' || (keep_slash && *p == '/');
        loco_status rc = plain ? buf_appendc(b, (char)*p)
                               : buf_appendf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
        if (rc)
            return rc;
    }
    return LOCO_OK;
}

static loco_status list_repo(hub_http *h, const hub_target *t, hub_listing *l, loco_err *err)
{
    buf url;
    buf_init(&url, HUB_URL_MAX - 1);
    loco_status rc = buf_appendf(&url, "%s/api/models/%s/tree/", h->endpoint, t->repo);
    if (!rc)
        rc = append_encoded(&url, t->revision, false);
    if (!rc)
        rc = buf_appends(&url, "?recursive=true");
    if (rc) {
        buf_release(&url);
        return loco_err_set(err, LOCO_ERR_INVALID, "URL too long");
    }
    char next[HUB_URL_MAX];
    snprintf(next, sizeof(next), "%s", buf_str(&url));
    buf_release(&url);
    hub_resp r;
    memset(&r, 0, sizeof(r));
    for (int page = 0; page < HUB_LISTING_PAGES_MAX; page++) {
        rc = hub_get(h, next, "Accept: application/json", &r, HUB_LISTING_PAGE_MAX,
                     HUB_LIST_TIMEOUT_MS, err);
        if (rc)
            break;
        if (r.status != 200) {
            rc = http_error(h, &r, t->repo, NULL, t->revision, err);
            break;
        }
        rc = hub_parse_listing(buf_str(&r.body), r.body.len, l, err);
        if (rc) {
            loco_err_wrap(err, "%s", t->repo);
            break;
        }
        if (!r.link_next[0])
            break;
        char resolved[HUB_URL_MAX];
        if (!resolve_location(next, r.link_next, resolved, sizeof(resolved))) {
            rc = loco_err_set(err, LOCO_ERR_UPSTREAM, "%s: a bad Link header in the listing",
                              t->repo);
            break;
        }
        memcpy(next, resolved, strlen(resolved) + 1);
        if (page + 1 == HUB_LISTING_PAGES_MAX)
            rc = loco_err_set(err, LOCO_ERR_LIMIT, "%s: the listing has more than %d pages",
                              t->repo, HUB_LISTING_PAGES_MAX);
    }
    buf_release(&r.body);
    return rc;
}

/* ---- download ---- */

struct dl {
    int fd;
    const char *part;      /* the .part path */
    const char *file;      /* for messages */
    uint64_t have;         /* bytes in the part that the hash covers */
    uint64_t size;         /* expected size; 0 when unknown (plain URL) */
    uint64_t fetched;      /* bytes received in this call */
    sha256_ctx sha;
    const hub_opts *o;
    const char *repo;
    uint64_t phase_start;
    char write_error[300]; /* set when writing failed (disk full...) */
    int write_errno;
    bool restarted;        /* the server ignored the Range: the part was emptied */
};

static void dl_progress(struct dl *d, hub_phase phase, uint64_t done)
{
    if (!d->o->progress)
        return;
    hub_progress p = {phase, d->repo, d->file, d->size, done, d->phase_start};
    d->o->progress(d->o->ctx, &p);
}

static void note(const hub_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const hub_opts *o, const char *fmt, ...)
{
    if (!o->note)
        return;
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    o->note(o->ctx, line);
}

/* Empties the part and the hash (the server sends the whole file again). */
static loco_status dl_restart(struct dl *d)
{
    if (ftruncate(d->fd, 0) != 0 || lseek(d->fd, 0, SEEK_SET) != 0) {
        d->write_errno = errno;
        snprintf(d->write_error, sizeof(d->write_error), "cannot truncate '%s': %s", d->part,
                 strerror(errno));
        return LOCO_ERR_IO;
    }
    sha256_init(&d->sha);
    d->have = 0;
    d->phase_start = 0;
    d->restarted = true;
    return LOCO_OK;
}

static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

static loco_status dl_begin(struct dl *d, hub_resp *r)
{
    if (r->status == 200 && !d->size)
        d->size = r->content_length; /* a plain URL: the server says how much */
    if (r->status == 200 && d->have > 0) {
        note(d->o, "the server sent the whole file instead of the rest: starting over");
        return dl_restart(d);
    }
    if (r->status == 206) {
        /* "bytes START-END/TOTAL" must start where the part ends */
        const char *cr = r->content_range;
        uint64_t start = 0;
        const char *sp = strncasecmp(cr, "bytes ", 6) == 0 ? cr + 6 : NULL;
        size_t dn = sp ? strcspn(sp, "-") : 0;
        if (!sp || !parse_u64(sp, dn, &start) || start != d->have) {
            snprintf(d->write_error, sizeof(d->write_error),
                     "the server resumed at the wrong place (Content-Range '%.60s', expected "
                     "byte %" PRIu64 ")",
                     cr, d->have);
            d->write_errno = 0;
            return LOCO_ERR_UPSTREAM;
        }
        if (!d->size) {
            const char *slash = strchr(sp, '/');
            uint64_t total;
            if (slash && parse_u64(slash + 1, strlen(slash + 1), &total))
                d->size = total;
        }
    }
    return LOCO_OK;
}

static loco_status dl_write(struct dl *d, const char *p, size_t n)
{
    if (d->size && d->have + n > d->size) {
        snprintf(d->write_error, sizeof(d->write_error),
                 "the server sent more than the %" PRIu64 " bytes the listing gives", d->size);
        d->write_errno = 0;
        return LOCO_ERR_UPSTREAM;
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(d->fd, p + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            d->write_errno = w < 0 ? errno : ENOSPC;
            snprintf(d->write_error, sizeof(d->write_error), "cannot write '%s': %s", d->part,
                     strerror(d->write_errno));
            /* drop the piece of this chunk that did land, so the part matches the hash */
            if (ftruncate(d->fd, (off_t)d->have) != 0 ||
                lseek(d->fd, (off_t)d->have, SEEK_SET) < 0)
                d->write_errno = errno;
            return LOCO_ERR_IO;
        }
        off += (size_t)w;
    }
    sha256_update(&d->sha, p, n);
    d->have += n;
    d->fetched += n;
    dl_progress(d, HUB_PHASE_FETCH, d->have);
    return LOCO_OK;
}

/* Hashes the first d->have bytes of the part (a resumed download). */
static loco_status hash_existing(struct dl *d, int fd, uint64_t n, sha256_ctx *sha,
                                 loco_err *err)
{
    char *chunk = malloc(HUB_CHUNK);
    if (!chunk)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    sha256_init(sha);
    uint64_t done = 0;
    loco_status rc = LOCO_OK;
    d->phase_start = 0;
    while (done < n) {
        if (d->o->cancel && __atomic_load_n(d->o->cancel, __ATOMIC_ACQUIRE)) {
            rc = loco_err_set(err, LOCO_ERR_CANCELLED, "cancelled while checking '%s'",
                              d->file);
            break;
        }
        size_t want = n - done < HUB_CHUNK ? (size_t)(n - done) : HUB_CHUNK;
        ssize_t r = pread(fd, chunk, want, (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = loco_err_set(err, LOCO_ERR_IO, "cannot read '%s': %s", d->part,
                              r < 0 ? strerror(errno) : "unexpected end of file");
            break;
        }
        sha256_update(sha, chunk, (size_t)r);
        done += (uint64_t)r;
        dl_progress(d, HUB_PHASE_CHECK, done);
    }
    free(chunk);
    return rc;
}

static loco_status write_error_status(const struct dl *d, loco_err *err)
{
    const char *hint = "";
    if (d->write_errno == ENOSPC || d->write_errno == EDQUOT)
        hint = ": the disk is full; free some space (or set LOCO_MODELS to a roomier "
               "directory) and run `loco pull` again to resume";
    else if (d->write_errno == EFBIG)
        hint = ": the file is larger than this process may write (a file-size limit)";
    else if (d->write_errno == EROFS || d->write_errno == EACCES || d->write_errno == EPERM)
        hint = ": the model directory is not writable (set LOCO_MODELS to a writable one)";
    return loco_err_set(err, d->write_errno ? LOCO_ERR_IO : LOCO_ERR_UPSTREAM, "%s%s",
                        d->write_error, hint);
}

static void sleep_ms_cancellable(long ms, const volatile int *cancel)
{
    for (long t = 0; t < ms; t += 50) {
        if (cancel && __atomic_load_n(cancel, __ATOMIC_ACQUIRE))
            return;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static bool retryable(loco_status rc)
{
    return rc == LOCO_ERR_IO || rc == LOCO_ERR_TIMEOUT || rc == LOCO_ERR_UNAVAILABLE;
}

/* Downloads url into d (whose part is open and hashed up to d->have) until d->size bytes are
 * there, resuming after broken connections: up to o->retries tries in a row that bring no new
 * byte, waiting retry_wait_ms (doubling) between them. */
static loco_status fetch(hub_http *h, struct dl *d, const char *url, const hub_target *t,
                         loco_err *err)
{
    int retries = h->o->retries == 0 ? 4 : h->o->retries < 0 ? 0 : h->o->retries;
    long wait0 = h->o->retry_wait_ms > 0 ? h->o->retry_wait_ms : 1000, wait = wait0;
    hub_resp r;
    memset(&r, 0, sizeof(r));
    r.sink = d;
    loco_status rc = LOCO_OK;
    int fails = 0;
    for (;;) {
        char range[64] = "";
        if (d->have > 0)
            snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-", d->have);
        d->phase_start = d->have;
        d->write_error[0] = '\0';
        dl_progress(d, HUB_PHASE_FETCH, d->have);
        uint64_t before = d->have;
        rc = hub_get(h, url, range[0] ? range : NULL, &r, HUB_ERROR_BODY_MAX, 0, err);
        if (d->write_error[0]) {
            rc = write_error_status(d, err);
            if (rc == LOCO_ERR_UPSTREAM && !d->restarted && fails < retries) {
                fails++;
                if (dl_restart(d) == LOCO_OK) /* a confused resume: start over once */
                    continue;
                rc = write_error_status(d, err);
            }
            break;
        }
        if (rc == LOCO_OK && r.status == 416) {
            if (d->size && d->have == d->size)
                break; /* nothing was left to fetch */
            note(h->o, "the server cannot resume at byte %" PRIu64 ": starting over", d->have);
            if (dl_restart(d) != LOCO_OK) {
                rc = write_error_status(d, err);
                break;
            }
            if (fails++ < retries)
                continue;
        }
        bool transient = false;
        if (rc == LOCO_OK && r.status != 200 && r.status != 206) {
            rc = http_error(h, &r, t->repo[0] ? t->repo : t->url, t->repo[0] ? d->file : NULL,
                            t->revision, err);
            transient = r.status >= 500 || r.status == 429; /* a CDN hiccup: try again */
            if (!transient)
                break;
        }
        if (rc == LOCO_OK && (d->have == d->size || !d->size)) {
            d->size = d->have; /* a plain URL without a length ends when the body does */
            break;
        }
        if (rc == LOCO_OK)
            rc = loco_err_set(err, LOCO_ERR_IO,
                              "the connection ended at byte %" PRIu64 " of %" PRIu64, d->have,
                              d->size);
        if (!retryable(rc) && !transient)
            break;
        if (d->have > before) {
            fails = 0; /* progress: the next failure is a new one */
            wait = wait0;
        }
        if (fails++ >= retries)
            break;
        char hv[32];
        human_size(d->have, hv, sizeof(hv));
        note(h->o, "connection lost at %s (%s); resuming in %.1f s", hv, err ? err->msg : "",
             (double)wait / 1000.0);
        sleep_ms_cancellable(wait, h->o->cancel);
        if (h->o->cancel && __atomic_load_n(h->o->cancel, __ATOMIC_ACQUIRE)) {
            rc = loco_err_set(err, LOCO_ERR_CANCELLED, "cancelled");
            break;
        }
        if (wait < 30000)
            wait *= 2;
    }
    buf_release(&r.body);
    return rc;
}

/* ---- pull ---- */

void hub_result_release(hub_result *r)
{
    if (!r)
        return;
    free(r->path);
    free(r->repo);
    free(r->file);
    free(r->quant);
    memset(r, 0, sizeof(*r));
}

static char *strcat2(const char *a, const char *b)
{
    size_t al = strlen(a), bl = strlen(b);
    char *s = malloc(al + bl + 1);
    if (s) {
        memcpy(s, a, al);
        memcpy(s + al, b, bl + 1);
    }
    return s;
}

/* The sha256 of a whole file on disk into hex. */
static loco_status hash_file(struct dl *d, const char *path, uint64_t size, char hex[65],
                             loco_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return loco_err_set(err, LOCO_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    sha256_ctx sha;
    loco_status rc = hash_existing(d, fd, size, &sha, err);
    close(fd);
    if (rc)
        return rc;
    uint8_t dg[32];
    sha256_final(&sha, dg);
    sha256_hex(dg, hex);
    return LOCO_OK;
}

static void fsync_dir_of(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", path);
    int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Opens (creating) the part file, mapping the usual refusals to clear messages. */
static loco_status open_part(const char *part, const char *dir, int *out_fd, loco_err *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", part);
    loco_status rc = file_mkdirs(dirname(tmp), err);
    if (rc)
        return loco_err_wrap(err, "the model directory %s is not writable (set LOCO_MODELS to a "
                             "writable directory)",
                             dir);
    int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        if (e == EACCES || e == EROFS || e == EPERM)
            return loco_err_set(err, LOCO_ERR_IO,
                                "cannot write to the model directory %s: %s (set LOCO_MODELS to "
                                "a writable directory)",
                                dir, strerror(e));
        return loco_err_set(err, LOCO_ERR_IO, "cannot create '%s': %s", part, strerror(e));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return loco_err_set(err, LOCO_ERR_EXISTS,
                                "another loco pull is downloading '%s' right now; wait for it",
                                part);
        return loco_err_set(err, LOCO_ERR_IO, "cannot lock '%s': %s", part, strerror(e));
    }
    *out_fd = fd;
    return LOCO_OK;
}

static loco_status check_space(int fd, const char *dir, uint64_t need, loco_err *err)
{
    struct statvfs vs;
    if (fstatvfs(fd, &vs) != 0)
        return LOCO_OK; /* unknown: find out while writing */
    uint64_t avail = (uint64_t)vs.f_bavail * (uint64_t)vs.f_frsize;
    if (avail >= need)
        return LOCO_OK;
    char a[32], b[32];
    human_size(need, a, sizeof(a));
    human_size(avail, b, sizeof(b));
    return loco_err_set(err, LOCO_ERR_IO,
                        "not enough space in %s: the download needs %s more, %s is free; free "
                        "some space or set LOCO_MODELS to a roomier directory",
                        dir, a, b);
}

/* Verifies the finished part (size, sha256, GGUF magic) and moves it to dest. */
static loco_status finish(struct dl *d, const char *dest, const char *want_sha, char got[65],
                          loco_err *err)
{
    dl_progress(d, HUB_PHASE_VERIFY, d->have);
    uint8_t dg[32];
    sha256_final(&d->sha, dg);
    sha256_hex(dg, got);
    char magic[4] = {0};
    bool gguf = pread(d->fd, magic, 4, 0) == 4 && memcmp(magic, "GGUF", 4) == 0;
    if (want_sha[0] && strcmp(got, want_sha) != 0) {
        unlink(d->part);
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "checksum mismatch for %s: the Hub lists sha256 %s, the download has "
                            "%s; the download was deleted, run `loco pull` again",
                            d->file, want_sha, got);
    }
    if (!gguf) {
        unlink(d->part);
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "%s is not a GGUF file (it does not start with 'GGUF'); the download "
                            "was deleted",
                            d->file);
    }
    if (fsync(d->fd) != 0) {
        int e = errno;
        return loco_err_set(err, LOCO_ERR_IO, "cannot write '%s': %s", d->part, strerror(e));
    }
    if (rename(d->part, dest) != 0)
        return loco_err_set(err, LOCO_ERR_IO, "cannot rename '%s' to '%s': %s", d->part, dest,
                            strerror(errno));
    fsync_dir_of(dest);
    return LOCO_OK;
}

/* Uses the spelling of repo that the store already has (the Hub ignores case). */
static void store_spelling(const char *dir, char *repo)
{
    models_listing l;
    loco_err ignored;
    if (models_list(dir, &l, &ignored) == LOCO_OK) {
        for (size_t i = 0; i < l.n; i++) {
            if (l.items[i].repo && strcasecmp(l.items[i].repo, repo) == 0 &&
                strlen(l.items[i].repo) == strlen(repo)) {
                memcpy(repo, l.items[i].repo, strlen(repo) + 1);
                break;
            }
        }
    }
    models_listing_release(&l);
}

/* Is dest already the file the listing describes? Writes missing metadata when it is. */
static bool already_there(struct dl *d, const char *dest, const hub_file *f,
                          const models_meta *meta, loco_err *err)
{
    struct stat st;
    if (stat(dest, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size)
        return false;
    models_entry m;
    loco_err ignored;
    if (models_read_meta(dest, &m, &ignored) == LOCO_OK) {
        bool same = f->sha256[0] ? (m.sha256 && !strcmp(m.sha256, f->sha256))
                                 : m.size == f->size;
        models_entry_release(&m);
        if (same)
            return true;
        if (!f->sha256[0])
            return false;
    }
    if (!f->sha256[0])
        return false;
    char hex[65];
    if (hash_file(d, dest, f->size, hex, err) != LOCO_OK || strcmp(hex, f->sha256) != 0)
        return false;
    models_write_meta(dest, meta, &ignored);
    return true;
}

/* A plain URL's file was pulled before when its metadata names the same file (no digest to
 * compare against: the URL is trusted as it was the first time). */
static bool plain_already_there(const char *dest, const hub_file *f)
{
    struct stat st;
    models_entry m;
    loco_err ignored;
    if (stat(dest, &st) != 0 || !S_ISREG(st.st_mode) ||
        models_read_meta(dest, &m, &ignored) != LOCO_OK)
        return false;
    bool same = m.file && !strcmp(m.file, f->path) && m.size == (uint64_t)st.st_size;
    models_entry_release(&m);
    return same;
}

static loco_status pull_file(hub_http *h, const hub_target *t, const char *dir,
                             const hub_file *f, hub_result *out, loco_err *err)
{
    char repo[MODELS_REPO_MAX + 1];
    char *dest = NULL, *part = NULL, *url = NULL;
    loco_status rc;
    char quant[64];
    bool has_q = models_quant_of(f->path, quant, sizeof(quant));
    buf ub;
    buf_init(&ub, HUB_URL_MAX - 1);
    if (t->repo[0]) {
        snprintf(repo, sizeof(repo), "%s", t->repo);
        store_spelling(dir, repo);
        rc = models_file_path(dir, repo, f->path, &dest, err);
        if (!rc && (buf_appendf(&ub, "%s/%s/resolve/", h->endpoint, t->repo) ||
                    append_encoded(&ub, t->revision, false) || buf_appendc(&ub, '/') ||
                    append_encoded(&ub, f->path, true)))
            rc = loco_err_set(err, LOCO_ERR_INVALID, "URL too long");
    } else {
        repo[0] = '\0';
        dest = strcat2(dir, "/");
        char *d2 = dest ? strcat2(dest, f->path) : NULL;
        free(dest);
        dest = d2;
        rc = dest && !buf_appends(&ub, t->url) ? LOCO_OK
                                              : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    if (!rc) {
        url = buf_take(&ub, NULL);
        part = strcat2(dest, ".part");
        if (!url || !part)
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    buf_release(&ub);
    struct dl d;
    memset(&d, 0, sizeof(d));
    d.fd = -1;
    d.part = part;
    d.file = f->path;
    d.size = f->size;
    d.o = h->o;
    d.repo = repo;
    sha256_init(&d.sha);
    models_meta meta = {.repo = repo[0] ? repo : NULL,
                        .file = f->path,
                        .quant = has_q ? quant : NULL,
                        .sha256 = f->sha256[0] ? f->sha256 : NULL,
                        .revision = t->repo[0] ? t->revision : NULL,
                        .url = t->url[0] ? t->url : NULL,
                        .size = f->size};
    if (!rc && (t->repo[0] ? already_there(&d, dest, f, &meta, err)
                           : plain_already_there(dest, f))) {
        struct stat ds;
        d.have = stat(dest, &ds) == 0 ? (uint64_t)ds.st_size : f->size;
        out->already = true;
        snprintf(out->sha256, sizeof(out->sha256), "%s", f->sha256);
        goto done;
    }
    if (!rc && h->o->cancel && __atomic_load_n(h->o->cancel, __ATOMIC_ACQUIRE))
        rc = loco_err_set(err, LOCO_ERR_CANCELLED, "cancelled");
    if (!rc)
        rc = open_part(part, dir, &d.fd, err);
    struct stat st;
    if (!rc && fstat(d.fd, &st) != 0)
        rc = loco_err_set(err, LOCO_ERR_IO, "cannot stat '%s': %s", part, strerror(errno));
    if (!rc) {
        uint64_t have = (uint64_t)st.st_size;
        if (f->size && have > f->size) {
            note(h->o, "%s.part is larger than the file: starting over", f->path);
            rc = dl_restart(&d) ? write_error_status(&d, err) : LOCO_OK;
            have = 0;
        }
        if (!rc && have > 0) {
            char hv[32];
            human_size(have, hv, sizeof(hv));
            note(h->o, "resuming %s from %s already downloaded", f->path, hv);
            rc = hash_existing(&d, d.fd, have, &d.sha, err);
            d.have = have;
            out->resumed_from = have;
            if (!rc && lseek(d.fd, (off_t)have, SEEK_SET) < 0)
                rc = loco_err_set(err, LOCO_ERR_IO, "cannot seek '%s': %s", part,
                                  strerror(errno));
        }
    }
    if (!rc && f->size)
        rc = check_space(d.fd, dir, f->size - d.have, err);
    if (!rc)
        rc = fetch(h, &d, url, t, err);
    out->fetched = d.fetched;
    if (!rc)
        rc = finish(&d, dest, f->sha256, out->sha256, err);
    if (!rc) {
        meta.size = d.have;
        meta.sha256 = out->sha256;
        loco_err merr;
        if (models_write_meta(dest, &meta, &merr))
            note(h->o, "warning: %s", merr.msg);
    }
    if (rc && d.fd >= 0) {
        struct stat ps;
        if (fstat(d.fd, &ps) == 0 && ps.st_size == 0)
            unlink(part); /* nothing worth keeping */
        else if (rc == LOCO_ERR_CANCELLED || rc == LOCO_ERR_IO || rc == LOCO_ERR_TIMEOUT ||
                 rc == LOCO_ERR_UNAVAILABLE) {
            char hv[32];
            human_size((uint64_t)ps.st_size, hv, sizeof(hv));
            size_t ml = strlen(err ? err->msg : "");
            if (err && ml < sizeof(err->msg))
                snprintf(err->msg + ml, sizeof(err->msg) - ml,
                         " (%s kept in %s; `loco pull` resumes it)", hv, part);
        }
    }
done:
    if (d.fd >= 0)
        close(d.fd);
    if (!rc) {
        out->path = dest;
        dest = NULL;
        out->repo = strdup(repo);
        out->file = strdup(f->path);
        out->quant = has_q ? strdup(quant) : NULL;
        out->size = d.have ? d.have : f->size;
        if (!out->repo || !out->file || (has_q && !out->quant))
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    free(dest);
    free(part);
    free(url);
    return rc;
}

loco_status hub_pull(const char *target, const hub_opts *o, hub_result *out, loco_err *err)
{
    memset(out, 0, sizeof(*out));
    hub_target t;
    loco_status rc = hub_parse_target(target, &t, err);
    if (rc)
        return rc;
    hub_http h;
    memset(&h, 0, sizeof(h));
    h.o = o;
    h.client = o->client;
    h.token = o->token;
    h.idle_ms = o->idle_timeout_ms > 0 ? o->idle_timeout_ms : HUB_IDLE_TIMEOUT_MS;
    char endpoint[512];
    const char *ep = t.endpoint[0] ? t.endpoint : o->endpoint && *o->endpoint ? o->endpoint
                                                                              : HUB_DEFAULT_ENDPOINT;
    snprintf(endpoint, sizeof(endpoint), "%s", ep);
    size_t el = strlen(endpoint);
    while (el > 0 && endpoint[el - 1] == '/')
        endpoint[--el] = '\0';
    if (!str_starts_with(endpoint, "http://") && !str_starts_with(endpoint, "https://"))
        return loco_err_set(err, LOCO_ERR_INVALID, "HF_ENDPOINT '%s' is not an http(s) URL",
                            endpoint);
    h.endpoint = endpoint;
    if (o->token && *o->token) {
        if (strlen(o->token) > 1000 || strpbrk(o->token, "\r\n"))
            return loco_err_set(err, LOCO_ERR_INVALID, "HF_TOKEN is malformed");
        snprintf(h.auth, sizeof(h.auth), "Authorization: Bearer %s", o->token);
    }
    char *dir = NULL;
    rc = o->dir ? ((dir = strdup(o->dir)) ? LOCO_OK : LOCO_ERR_NOMEM)
                : models_default_dir(&dir, err);
    if (rc == LOCO_ERR_NOMEM)
        rc = loco_err_set(err, rc, "out of memory");
    http_client *own = NULL;
    if (!rc && !h.client) {
        rc = http_client_new(&own, err);
        h.client = own;
    }
    hub_listing l;
    memset(&l, 0, sizeof(l));
    if (!rc && t.repo[0]) {
        if (o->progress) {
            hub_progress p = {HUB_PHASE_LIST, t.repo, "", 0, 0, 0};
            o->progress(o->ctx, &p);
        }
        rc = list_repo(&h, &t, &l, err);
        size_t at = 0;
        if (!rc)
            rc = hub_pick(&l, t.repo, t.file[0] ? t.file : t.quant, &at, err);
        if (!rc)
            rc = pull_file(&h, &t, dir, &l.files[at], out, err);
    } else if (!rc) {
        hub_file f;
        memset(&f, 0, sizeof(f));
        f.path = t.file;
        rc = pull_file(&h, &t, dir, &f, out, err);
    }
    hub_listing_release(&l);
    http_client_free(own);
    free(dir);
    return rc;
}

loco_status hub_ensure(const char *name, const hub_opts *o, char **out_path, bool *out_pulled,
                       loco_err *err)
{
    *out_path = NULL;
    if (out_pulled)
        *out_pulled = false;
    loco_err local;
    loco_err_clear(&local);
    loco_status rc = name && *name ? models_resolve_in(o->dir, name, out_path, &local)
                                   : models_find_default_in(o->dir, out_path, &local);
    if (rc != LOCO_ERR_NOT_FOUND) {
        if (rc && err)
            *err = local;
        return rc;
    }
    hub_result r;
    rc = hub_pull(name, o, &r, err);
    if (rc == LOCO_OK) {
        *out_path = r.path;
        r.path = NULL;
        if (out_pulled)
            *out_pulled = !r.already;
    }
    hub_result_release(&r);
    return rc;
}
