/* hub.h: a Hugging Face Hub client for `loco pull`: lists a model repository's files through
 * the Hub API, picks the GGUF file a REPO[:QUANT] names, and downloads it into the model store
 * (base/models.h): to <file>.part, resumed with a Range request after an interruption,
 * renamed to its final name only once its sha256 matches the Hub's. Part of net/, on
 * http_client. docs/internals/hub.md describes the protocol and the failure cases. */
#ifndef LOCO_HUB_H
#define LOCO_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/models.h"
#include "base/status.h"
#include "net/http_client.h"

#define HUB_DEFAULT_ENDPOINT "https://huggingface.co"
/* Limits on what the Hub (or whoever answers in its place) sends. */
#define HUB_LISTING_PAGE_MAX (16u << 20) /* bytes of one listing page */
#define HUB_LISTING_PAGES_MAX 64         /* pages followed through Link: rel="next" */
#define HUB_FILES_MAX 100000             /* files in one listing */
#define HUB_REDIRECTS_MAX 10             /* redirects followed per request */
#define HUB_URL_MAX 8192                 /* longest URL built or followed */
#define HUB_ERROR_BODY_MAX 4096          /* bytes of an error answer kept for the message */

/* One file of a repository listing. */
typedef struct {
    char *path;       /* path in the repository ("LocoOperator-4B.Q4_K_M.gguf") */
    uint64_t size;    /* bytes */
    char sha256[65];  /* the LFS sha256, 64 lowercase hex digits; "" when not in LFS */
} hub_file;

typedef struct {
    hub_file *files;
    size_t n, cap;
} hub_listing;

/* Parses one page of a listing and appends its files to l (directories are skipped). Accepts
 * the tree API's array ([{"type": "file", "path", "size", "lfs": {"oid", "size"}}, ...]) and
 * the model API's object ({"siblings": [{"rfilename", "size", "lfs": {"sha256"|"oid"}}]}).
 * LOCO_ERR_INVALID for anything else or a malformed entry, LOCO_ERR_LIMIT past HUB_FILES_MAX.
 * On error l keeps what it had; release it with hub_listing_release either way. */
loco_status hub_parse_listing(const char *json, size_t n, hub_listing *l, loco_err *err);
void hub_listing_release(hub_listing *l);

/* The URL of the rel="next" link of an HTTP Link header value into out (size n); false when
 * there is none (or it does not fit). */
bool hub_link_next(const char *value, char *out, size_t n);

/* Chooses the GGUF file of l that want names (NULL or "": MODELS_DEFAULT_QUANT when present,
 * else the only GGUF file; else a quant case-insensitively, or a file name). repo only names
 * the repository in messages. LOCO_ERR_NOT_FOUND when nothing matches (the message lists the
 * quants the repository has, with sizes), LOCO_ERR_INVALID when the choice is ambiguous (the
 * message lists the candidates), LOCO_ERR_UNSUPPORTED for a GGUF split into several files. */
loco_status hub_pick(const hub_listing *l, const char *repo, const char *want, size_t *out_index,
                     loco_err *err);

/* What `loco pull` was given. */
typedef struct {
    char endpoint[512];                /* "https://huggingface.co" from a URL; "" otherwise */
    char repo[MODELS_REPO_MAX + 1];    /* "owner/name"; "" for a plain URL */
    char quant[MODELS_QUANT_MAX + 1];  /* quant or file name from REPO:QUANT; "" when none */
    char file[1001];                   /* the file a Hub URL names; "" otherwise */
    char revision[128];                /* branch, tag or commit ("main" unless a URL says) */
    char url[HUB_URL_MAX];             /* a plain URL (not a Hub file URL); "" otherwise */
} hub_target;

/* Parses s: "" or NULL (MODELS_DEFAULT_REPO), REPO[:QUANT] (see models_parse_ref), a Hub URL
 * "https://HOST/OWNER/NAME[/resolve|/blob/REV/FILE]" (any host: mirrors answer the same
 * paths), or another http(s) URL of a .gguf file. LOCO_ERR_INVALID with a message otherwise.
 * Pure. */
loco_status hub_parse_target(const char *s, hub_target *out, loco_err *err);

typedef enum {
    HUB_PHASE_LIST = 0, /* listing the repository */
    HUB_PHASE_CHECK,    /* hashing bytes already on disk (a .part being resumed, a file) */
    HUB_PHASE_FETCH,    /* downloading */
    HUB_PHASE_VERIFY,   /* final checks, rename */
} hub_phase;

typedef struct {
    hub_phase phase;
    const char *repo;      /* "" for a plain URL */
    const char *file;
    uint64_t total;        /* bytes of the file; 0 while unknown */
    uint64_t done;         /* bytes hashed (CHECK) or on disk (FETCH) */
    uint64_t start;        /* bytes that were on disk when this phase began */
} hub_progress;

typedef struct {
    const char *endpoint; /* NULL: HUB_DEFAULT_ENDPOINT (the caller reads HF_ENDPOINT) */
    const char *token;    /* NULL: none; sent as "Authorization: Bearer" to the endpoint's
                             host only, never to a redirect's other host; never in messages */
    const char *dir;      /* the model store; NULL: models_default_dir */
    http_client *client;  /* NULL: a client of its own for the call */
    const volatile int *cancel; /* nonzero: stop soon with LOCO_ERR_CANCELLED, .part kept */
    int retries;          /* resumes after a broken connection (0: 4; -1: none) */
    long retry_wait_ms;   /* wait before the first resume, doubled each time (0: 1000) */
    long idle_timeout_ms; /* give up on a silent connection (0: 60000) */
    /* Called on the calling thread (each may be NULL): progress often (throttle it),
     * note for a line a person should see ("resuming at 1.2 GiB", "connection lost ..."). */
    void (*progress)(void *ctx, const hub_progress *p);
    void (*note)(void *ctx, const char *line);
    void *ctx;
} hub_opts;

typedef struct {
    char *path;        /* the model file in the store */
    char *repo;        /* "owner/name" ("" for a plain URL) */
    char *file;        /* its path in the repository (or its name) */
    char *quant;       /* upper case, or NULL when the name carries none */
    uint64_t size;
    char sha256[65];
    bool already;      /* it was there and verified: nothing was downloaded */
    uint64_t resumed_from; /* bytes of a .part reused */
    uint64_t fetched;      /* bytes received in this call */
} hub_result;

/* Pulls what target names (hub_parse_target) into the store; *out is filled on success and
 * released with hub_result_release (also after an error). A file already in the store whose
 * metadata (or, without metadata, whose sha256) matches the listing is not downloaded again.
 * Errors, each with a message naming the repository or file and what to do:
 * LOCO_ERR_AUTH (401/403: gated or private, HF_TOKEN missing or refused),
 * LOCO_ERR_NOT_FOUND (no such repository, revision or quant: the quants present are listed),
 * LOCO_ERR_INVALID (checksum mismatch: the .part was deleted; ambiguous quant; not a GGUF),
 * LOCO_ERR_IO (disk full, read-only store, a connection still broken after the retries: the
 * .part is kept and the next pull resumes it), LOCO_ERR_CANCELLED (.part kept),
 * LOCO_ERR_UPSTREAM (another HTTP error), LOCO_ERR_UNAVAILABLE (no connection),
 * LOCO_ERR_EXISTS (another pull holds the .part's lock: one download per file at a time).
 * Nothing is ever written under the final name before its checks pass. */
loco_status hub_pull(const char *target, const hub_opts *o, hub_result *out, loco_err *err);
void hub_result_release(hub_result *r);

/* For `serve --hf REPO:QUANT` and the like: the path of name in the store (models_resolve_in
 * on o->dir), pulling it first (hub_pull) when it is not there. *out_path is malloc'd. *out_pulled
 * (may be NULL) says whether a pull ran. */
loco_status hub_ensure(const char *name, const hub_opts *o, char **out_path, bool *out_pulled,
                       loco_err *err);

#endif
