/* models.c: the model store: where it is, what it holds, and which file a name means
 * (see models.h for the layout and the rules). */
#include "base/common.h"

#include <dirent.h>
#include <jansson.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "base/models.h"
#include "base/str.h"

/* Longest path built while walking the store. */
#define MODELS_PATH_MAX 4096

/* ---- names ---- */

static bool repo_part_valid(const char *s, size_t n)
{
    if (n == 0 || n > 96)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
        if (c == '.' && i + 1 < n && s[i + 1] == '.')
            return false;
    }
    return s[0] != '.' && s[0] != '-' && s[n - 1] != '.' && s[n - 1] != '-';
}

bool models_repo_valid(const char *repo)
{
    if (!repo)
        return false;
    const char *slash = strchr(repo, '/');
    if (!slash)
        return false;
    return repo_part_valid(repo, (size_t)(slash - repo)) &&
           repo_part_valid(slash + 1, strlen(slash + 1));
}

bool models_file_valid(const char *file)
{
    if (!file || !*file || file[0] == '/' || strlen(file) > 1000)
        return false;
    const char *p = file;
    while (*p) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c < 0x20 || c == 0x7f || c == '\\')
                return false;
        }
        p += n;
        if (*p == '/') {
            p++;
            if (!*p)
                return false; /* trailing slash */
        }
    }
    return true;
}

static bool quant_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-' || c == '+' || c == '/';
}

loco_status models_parse_ref(const char *s, models_ref *out, loco_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!s || !*s)
        return loco_err_set(err, LOCO_ERR_INVALID, "empty model name: expected REPO[:QUANT]");
    static const char *const prefixes[] = {"https://huggingface.co/", "https://hf.co/",
                                           "huggingface.co/", "hf.co/"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(prefixes); i++) {
        if (str_starts_with(s, prefixes[i])) {
            s += strlen(prefixes[i]);
            break;
        }
    }
    const char *colon = strchr(s, ':');
    size_t rn = colon ? (size_t)(colon - s) : strlen(s);
    if (rn > MODELS_REPO_MAX)
        return loco_err_set(err, LOCO_ERR_INVALID, "repository name too long (%zu bytes)", rn);
    memcpy(out->repo, s, rn);
    out->repo[rn] = '\0';
    if (!models_repo_valid(out->repo))
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "'%.*s' is not a Hub repository: expected OWNER/NAME (letters, "
                            "digits, '.', '_', '-'), e.g. " MODELS_DEFAULT_REPO,
                            (int)(rn > 120 ? 120 : rn), s);
    if (!colon)
        return LOCO_OK;
    const char *q = colon + 1;
    size_t qn = strlen(q);
    if (qn == 0)
        return loco_err_set(err, LOCO_ERR_INVALID, "nothing after ':' in '%s': expected a quant "
                            "such as " MODELS_DEFAULT_QUANT, out->repo);
    if (qn > MODELS_QUANT_MAX)
        return loco_err_set(err, LOCO_ERR_INVALID, "quant name too long (%zu bytes)", qn);
    for (size_t i = 0; i < qn; i++) {
        if (!quant_char_ok(q[i]))
            return loco_err_set(err, LOCO_ERR_INVALID,
                                "bad character in quant '%.*s': use letters, digits, '_', '-', "
                                "'.' (e.g. " MODELS_DEFAULT_QUANT ")",
                                (int)(qn > 120 ? 120 : qn), q);
    }
    if (strchr(q, '/') && !models_file_valid(q))
        return loco_err_set(err, LOCO_ERR_INVALID, "bad file name '%s' after ':'", q);
    memcpy(out->quant, q, qn + 1);
    return LOCO_OK;
}

/* True when t[0..n) (upper case) has the shape of a quantization name. */
static bool quant_shaped(const char *t, size_t n)
{
    static const char *const plain[] = {"F16", "BF16", "F32", "F64", "FP16", "FP32",
                                        "TQ1_0", "TQ2_0", "MXFP4", "MXFP4_MOE"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(plain); i++) {
        if (strlen(plain[i]) == n && memcmp(plain[i], t, n) == 0)
            return true;
    }
    size_t i = 0;
    if (n >= 2 && t[0] == 'I' && t[1] == 'Q')
        i = 2;
    else if (n >= 1 && t[0] == 'Q')
        i = 1;
    else
        return false;
    size_t digits = 0;
    while (i < n && t[i] >= '0' && t[i] <= '9') {
        i++;
        digits++;
    }
    if (digits == 0)
        return false;
    while (i < n) {
        if (t[i] != '_')
            return false;
        i++;
        size_t k = 0;
        while (i < n && ((t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= '0' && t[i] <= '9'))) {
            i++;
            k++;
        }
        if (k == 0)
            return false;
    }
    return true;
}

bool models_quant_of(const char *file, char *out, size_t n)
{
    if (n)
        out[0] = '\0';
    if (!file || n == 0)
        return false;
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t len = strlen(base);
    if (len >= 5 && strcasecmp(base + len - 5, ".gguf") == 0)
        len -= 5;
    bool found = false;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && base[j] != '.' && base[j] != '-')
            j++;
        size_t tn = j - i;
        char up[64];
        if (tn > 0 && tn < sizeof(up)) {
            for (size_t k = 0; k < tn; k++)
                up[k] = (char)(base[i + k] >= 'a' && base[i + k] <= 'z' ? base[i + k] - 32
                                                                         : base[i + k]);
            up[tn] = '\0';
            if (quant_shaped(up, tn) && tn < n) {
                memcpy(out, up, tn + 1);
                found = true; /* keep the last one */
            }
        }
        i = j + 1;
    }
    return found;
}

/* ---- the store directory ---- */

static char *join2(const char *a, const char *b)
{
    buf p;
    buf_init(&p, MODELS_PATH_MAX);
    size_t al = strlen(a);
    if (buf_appends(&p, a) || (al && a[al - 1] != '/' && buf_appendc(&p, '/')) ||
        buf_appends(&p, b)) {
        buf_release(&p);
        return NULL;
    }
    return buf_take(&p, NULL);
}

loco_status models_default_dir(char **out, loco_err *err)
{
    *out = NULL;
    const char *v = getenv("LOCO_MODELS");
    if (v && *v) {
        *out = strdup(v);
        return *out ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    v = getenv("XDG_DATA_HOME");
    if (v && v[0] == '/') {
        *out = join2(v, "loco/models");
        return *out ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    const char *home = getenv("HOME");
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    if ((!home || !*home) && getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res)
        home = res->pw_dir;
    if (!home || !*home)
        return loco_err_set(err, LOCO_ERR_NOT_FOUND,
                            "no home directory for the model store: set LOCO_MODELS to a "
                            "directory");
    *out = join2(home, ".local/share/loco/models");
    return *out ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
}

loco_status models_file_path(const char *dir, const char *repo, const char *file, char **out,
                             loco_err *err)
{
    *out = NULL;
    if (!models_repo_valid(repo))
        return loco_err_set(err, LOCO_ERR_INVALID, "bad repository name '%s'", repo ? repo : "");
    if (!models_file_valid(file))
        return loco_err_set(err, LOCO_ERR_INVALID, "bad file name '%s' in %s", file ? file : "",
                            repo);
    buf p;
    buf_init(&p, MODELS_PATH_MAX);
    size_t dl = strlen(dir);
    loco_status rc = buf_appends(&p, dir);
    if (!rc && dl && dir[dl - 1] != '/')
        rc = buf_appendc(&p, '/');
    if (!rc)
        rc = buf_appendf(&p, "%s/%s", repo, file);
    if (rc) {
        buf_release(&p);
        return loco_err_set(err, rc, "model path too long under '%s'", dir);
    }
    *out = buf_take(&p, NULL);
    return *out ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
}

/* ---- metadata ---- */

void models_entry_release(models_entry *e)
{
    if (!e)
        return;
    free(e->path);
    free(e->file);
    free(e->repo);
    free(e->quant);
    free(e->sha256);
    memset(e, 0, sizeof(*e));
}

static bool sha_valid(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

static char *upper_dup(const char *s)
{
    char *d = strdup(s);
    for (char *p = d; p && *p; p++) {
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 32);
    }
    return d;
}

static char *meta_path(const char *gguf_path)
{
    buf p;
    buf_init(&p, MODELS_PATH_MAX + 8);
    if (buf_appendf(&p, "%s.json", gguf_path)) {
        buf_release(&p);
        return NULL;
    }
    return buf_take(&p, NULL);
}

loco_status models_write_meta(const char *gguf_path, const models_meta *m, loco_err *err)
{
    char *path = meta_path(gguf_path);
    if (!path)
        return loco_err_set(err, LOCO_ERR_LIMIT, "path too long: '%s'", gguf_path);
    json_t *o = json_object();
    const struct {
        const char *key, *value;
    } strs[] = {{"repo", m->repo},         {"file", m->file}, {"quant", m->quant},
                {"revision", m->revision}, {"url", m->url},   {"sha256", m->sha256}};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(strs); i++) {
        if (strs[i].value)
            json_object_set_new(o, strs[i].key, json_string(strs[i].value));
    }
    json_object_set_new(o, "size", json_integer((json_int_t)m->size));
    char when[40];
    clock_iso8601(when, sizeof(when));
    json_object_set_new(o, "pulled_at", json_string(when));
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    loco_status rc;
    if (!text || buf_appends(&b, text) || buf_appendc(&b, '\n'))
        rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    else
        rc = file_write_atomic(path, b.data, b.len, 0644, err);
    buf_release(&b);
    free(text);
    free(path);
    return rc;
}

loco_status models_read_meta(const char *gguf_path, models_entry *out, loco_err *err)
{
    memset(out, 0, sizeof(*out));
    char *path = meta_path(gguf_path);
    if (!path)
        return loco_err_set(err, LOCO_ERR_LIMIT, "path too long: '%s'", gguf_path);
    buf b;
    buf_init(&b, MODELS_META_MAX);
    loco_status rc = file_read_all(path, &b, err);
    json_t *root = rc ? NULL : json_parse(buf_str(&b), b.len, err);
    buf_release(&b);
    if (!rc && !root)
        rc = LOCO_ERR_INVALID;
    if (!rc && !json_is_object(root))
        rc = loco_err_set(err, LOCO_ERR_INVALID, "%s: not a JSON object", path);
    const char *repo = rc ? NULL : json_get_str(root, "repo");
    const char *file = rc ? NULL : json_get_str(root, "file");
    const char *quant = rc ? NULL : json_get_str(root, "quant");
    const char *sha = rc ? NULL : json_get_str(root, "sha256");
    if (!rc && ((repo && !models_repo_valid(repo)) || (file && !models_file_valid(file)) ||
                (quant && (strlen(quant) > MODELS_QUANT_MAX || !*quant)) ||
                (sha && !sha_valid(sha))))
        rc = loco_err_set(err, LOCO_ERR_INVALID, "%s: a bad repo, file, quant or sha256", path);
    long size = 0;
    if (!rc && json_object_get(root, "size") && (!json_get_long(root, "size", &size) || size < 0))
        rc = loco_err_set(err, LOCO_ERR_INVALID, "%s: a bad size", path);
    if (!rc) {
        out->repo = repo ? strdup(repo) : NULL;
        out->file = file ? strdup(file) : NULL;
        out->quant = quant ? upper_dup(quant) : NULL;
        out->sha256 = sha ? strdup(sha) : NULL;
        out->size = (uint64_t)size;
        if ((repo && !out->repo) || (file && !out->file) || (quant && !out->quant) ||
            (sha && !out->sha256)) {
            models_entry_release(out);
            rc = loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
        }
    }
    json_decref(root);
    free(path);
    return rc;
}

/* ---- listing ---- */

void models_listing_release(models_listing *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        models_entry_release(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

typedef struct {
    models_listing *l;
    size_t cap;
} walk_state;

static loco_status add_entry(walk_state *w, const char *path, const char *rel, uint64_t size)
{
    if (w->l->n >= MODELS_MAX_FILES)
        return LOCO_OK;
    if (w->l->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        models_entry *ni = realloc(w->l->items, cap * sizeof(*ni));
        if (!ni)
            return LOCO_ERR_NOMEM;
        w->l->items = ni;
        w->cap = cap;
    }
    models_entry e;
    loco_err ignored;
    if (models_read_meta(path, &e, &ignored) != LOCO_OK)
        memset(&e, 0, sizeof(e)); /* no or unreadable metadata: a plain file */
    if (!e.file) {
        free(e.repo); /* a repository without its file name is not trusted */
        e.repo = NULL;
        e.file = strdup(rel);
    }
    if (!e.quant) {
        char q[64];
        if (models_quant_of(e.file ? e.file : rel, q, sizeof(q)))
            e.quant = strdup(q);
    }
    e.path = strdup(path);
    e.size = size;
    if (!e.path || !e.file) {
        models_entry_release(&e);
        return LOCO_ERR_NOMEM;
    }
    w->l->items[w->l->n++] = e;
    return LOCO_OK;
}

static loco_status walk(walk_state *w, const char *dir, const char *rel, int depth, loco_err *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (depth > 0 || errno == ENOENT)
            return LOCO_OK; /* a missing store is empty; unreadable subfolders are skipped */
        return loco_err_set(err, errno == ENOTDIR ? LOCO_ERR_INVALID : LOCO_ERR_IO,
                            "cannot read the model store '%s': %s", dir, strerror(errno));
    }
    loco_status rc = LOCO_OK;
    struct dirent *de;
    while (rc == LOCO_OK && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[MODELS_PATH_MAX], sub[MODELS_PATH_MAX];
        int pn = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        int sn = snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        if (pn < 0 || (size_t)pn >= sizeof(path) || sn < 0 || (size_t)sn >= sizeof(sub))
            continue;
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < MODELS_MAX_DEPTH)
                rc = walk(w, path, sub, depth + 1, err);
        } else if (S_ISREG(st.st_mode) && str_ends_with(de->d_name, ".gguf")) {
            rc = add_entry(w, path, sub, (uint64_t)st.st_size);
            if (rc)
                loco_err_set(err, rc, "out of memory");
        }
    }
    closedir(d);
    return rc;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const models_entry *)a)->path, ((const models_entry *)b)->path);
}

loco_status models_list(const char *dir, models_listing *out, loco_err *err)
{
    memset(out, 0, sizeof(*out));
    char *owned = NULL;
    if (!dir) {
        loco_status rc = models_default_dir(&owned, err);
        if (rc)
            return rc;
        dir = owned;
    }
    char root[MODELS_PATH_MAX];
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    if (dl == 0 || dl >= sizeof(root)) {
        free(owned);
        return loco_err_set(err, LOCO_ERR_INVALID, "bad model store path");
    }
    memcpy(root, dir, dl);
    root[dl] = '\0';
    walk_state w = {out, 0};
    loco_status rc = walk(&w, root, "", 0, err);
    free(owned);
    if (rc)
        return rc;
    if (out->n > 1)
        qsort(out->items, out->n, sizeof(*out->items), entry_cmp);
    return LOCO_OK;
}

/* ---- choosing ---- */

void models_entry_name(const models_entry *e, char *out, size_t n)
{
    if (e->repo && e->quant)
        snprintf(out, n, "%s:%s", e->repo, e->quant);
    else if (e->repo)
        snprintf(out, n, "%s:%s", e->repo, e->file);
    else
        snprintf(out, n, "%s", e->file ? e->file : e->path);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static bool repo_is(const models_entry *e, const char *repo)
{
    return !repo || (e->repo && strcasecmp(e->repo, repo) == 0);
}

static bool wants(const models_entry *e, const char *want)
{
    if (e->quant && strcasecmp(e->quant, want) == 0)
        return true;
    return e->file && (strcasecmp(e->file, want) == 0 || strcasecmp(base_name(e->file), want) == 0);
}

/* Appends the names of the entries of l for which keep(i) holds, comma-separated. */
static void list_names(const models_listing *l, const char *repo, const char *want, buf *out)
{
    size_t shown = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (!repo_is(&l->items[i], repo) || (want && !wants(&l->items[i], want)))
            continue;
        char name[600];
        models_entry_name(&l->items[i], name, sizeof(name));
        if (shown == 8) {
            buf_appends(out, ", ...");
            return;
        }
        buf_appendf(out, "%s%s", shown++ ? ", " : "", name);
    }
    if (!shown)
        buf_appends(out, "none");
}

static loco_status pick_fail(loco_status code, const char *what, const models_listing *l,
                             const char *repo, const char *want, loco_err *err)
{
    buf names;
    buf_init(&names, 4096);
    list_names(l, repo, want, &names);
    if (code == LOCO_ERR_NOT_FOUND)
        loco_err_set(err, code, "%s is not among the pulled models (have: %s)", what,
                     buf_str(&names));
    else if (!repo && !want)
        loco_err_set(err, code,
                     "several models are pulled and no single " MODELS_DEFAULT_QUANT
                     " among them: %s; name one",
                     buf_str(&names));
    else
        loco_err_set(err, code, "%s matches several pulled models: %s; name one", what,
                     buf_str(&names));
    buf_release(&names);
    return code;
}

loco_status models_pick(const models_listing *l, const char *repo, const char *want,
                        size_t *out_index, loco_err *err)
{
    char what[MODELS_REPO_MAX + MODELS_QUANT_MAX + 16];
    if (want && *want)
        snprintf(what, sizeof(what), "%s%s%s", repo ? repo : "", repo ? ":" : "", want);
    else
        snprintf(what, sizeof(what), "%s", repo ? repo : "a model");
    size_t found = 0, at = 0;
    if (want && *want) {
        for (size_t i = 0; i < l->n; i++) {
            if (repo_is(&l->items[i], repo) && wants(&l->items[i], want)) {
                found++;
                at = i;
            }
        }
        if (found == 1) {
            *out_index = at;
            return LOCO_OK;
        }
        if (found == 0)
            return pick_fail(LOCO_ERR_NOT_FOUND, what, l, repo, NULL, err);
        return pick_fail(LOCO_ERR_INVALID, what, l, repo, want, err);
    }
    size_t n_repo = 0, n_def = 0, n_def_repo = 0, at_def = 0, at_def_repo = 0;
    for (size_t i = 0; i < l->n; i++) {
        const models_entry *e = &l->items[i];
        if (!repo_is(e, repo))
            continue;
        n_repo++;
        at = i;
        if (e->quant && strcmp(e->quant, MODELS_DEFAULT_QUANT) == 0) {
            n_def++;
            at_def = i;
            if (e->repo && strcasecmp(e->repo, MODELS_DEFAULT_REPO) == 0) {
                n_def_repo++;
                at_def_repo = i;
            }
        }
    }
    if (n_repo == 0)
        return pick_fail(LOCO_ERR_NOT_FOUND, what, l, NULL, NULL, err);
    if (n_repo == 1) {
        *out_index = at;
        return LOCO_OK;
    }
    if (n_def == 1 || n_def_repo == 1) {
        *out_index = n_def == 1 ? at_def : at_def_repo;
        return LOCO_OK;
    }
    return pick_fail(LOCO_ERR_INVALID, what, l, repo, NULL, err);
}

/* Appends a printf-style tail to err's message (err may be NULL). */
static void err_append(loco_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err_append(loco_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    size_t n = strlen(err->msg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + n, sizeof(err->msg) - n, fmt, ap);
    va_end(ap);
}

/* A name that can only be a path: absolute, ./ ../ ~, or a .gguf under a folder. */
static bool path_like(const char *s)
{
    if (s[0] == '/' || s[0] == '.' || s[0] == '~')
        return true;
    return strchr(s, '/') && !strchr(s, ':') && str_ends_with(s, ".gguf");
}

static loco_status open_store(const char *dir, char **out_dir, models_listing *l, loco_err *err)
{
    *out_dir = NULL;
    loco_status rc = dir ? ((*out_dir = strdup(dir)) ? LOCO_OK : LOCO_ERR_NOMEM)
                         : models_default_dir(out_dir, err);
    if (rc == LOCO_ERR_NOMEM)
        return loco_err_set(err, rc, "out of memory");
    if (rc)
        return rc;
    return models_list(*out_dir, l, err);
}

static loco_status take_path(const models_entry *e, char **out_path, loco_err *err)
{
    *out_path = strdup(e->path);
    return *out_path ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
}

static loco_status resolve_file_name(const models_listing *l, const char *dir, const char *name,
                                     char **out_path, loco_err *err)
{
    size_t found = 0, at = 0;
    size_t nl = strlen(name);
    for (size_t i = 0; i < l->n; i++) {
        const char *b = base_name(l->items[i].file);
        bool eq = strcmp(b, name) == 0 ||
                  (strncmp(b, name, nl) == 0 && strcmp(b + nl, ".gguf") == 0);
        if (eq) {
            found++;
            at = i;
        }
    }
    if (found == 1)
        return take_path(&l->items[at], out_path, err);
    if (found > 1) {
        buf names;
        buf_init(&names, 4096);
        for (size_t i = 0, shown = 0; i < l->n && shown < 8; i++) {
            const char *b = base_name(l->items[i].file);
            if (strcmp(b, name) != 0 && !(strncmp(b, name, nl) == 0 && !strcmp(b + nl, ".gguf")))
                continue;
            char en[600];
            models_entry_name(&l->items[i], en, sizeof(en));
            buf_appendf(&names, "%s%s", shown++ ? ", " : "", en);
        }
        loco_err_set(err, LOCO_ERR_INVALID, "'%s' matches several pulled models: %s; name one "
                     "as REPO:QUANT", name, buf_str(&names));
        buf_release(&names);
        return LOCO_ERR_INVALID;
    }
    return loco_err_set(err, LOCO_ERR_NOT_FOUND,
                        "no model '%s': not a file, and not in the model store %s (`loco model "
                        "list` shows what is there, `loco pull` gets one)",
                        name, dir);
}

loco_status models_resolve_in(const char *dir, const char *name, char **out_path, loco_err *err)
{
    *out_path = NULL;
    if (!name || !*name)
        return loco_err_set(err, LOCO_ERR_INVALID, "empty model name");
    struct stat st;
    if (stat(name, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return loco_err_set(err, LOCO_ERR_INVALID, "'%s' is a directory, not a GGUF file",
                                name);
        *out_path = strdup(name);
        return *out_path ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    if (path_like(name))
        return loco_err_set(err, LOCO_ERR_NOT_FOUND, "cannot open '%s': %s", name,
                            strerror(ENOENT));
    char *store = NULL;
    models_listing l;
    loco_status rc = open_store(dir, &store, &l, err);
    if (rc == LOCO_OK && strchr(name, '/')) {
        models_ref ref;
        rc = models_parse_ref(name, &ref, err);
        if (rc) {
            rc = loco_err_set(err, LOCO_ERR_NOT_FOUND,
                              "cannot open '%s': not a file, and not a model name "
                              "(REPO[:QUANT], e.g. " MODELS_DEFAULT_REPO ":" MODELS_DEFAULT_QUANT
                              ")",
                              name);
        } else {
            size_t at = 0;
            rc = models_pick(&l, ref.repo, ref.quant, &at, err);
            if (rc == LOCO_OK)
                rc = take_path(&l.items[at], out_path, err);
            else if (rc == LOCO_ERR_NOT_FOUND)
                err_append(err, "; the model store is %s; get it with `loco pull %s`", store,
                           name);
        }
    } else if (rc == LOCO_OK) {
        rc = resolve_file_name(&l, store, name, out_path, err);
    }
    models_listing_release(&l);
    free(store);
    return rc;
}

loco_status models_resolve(const char *name_or_path, char **out_path, loco_err *err)
{
    return models_resolve_in(NULL, name_or_path, out_path, err);
}

loco_status models_find_default_in(const char *dir, char **out_path, loco_err *err)
{
    *out_path = NULL;
    char *store = NULL;
    models_listing l;
    loco_status rc = open_store(dir, &store, &l, err);
    if (rc == LOCO_OK && l.n == 0) {
        rc = loco_err_set(err, LOCO_ERR_NOT_FOUND,
                          "no model: the model store %s is empty (get one with `loco pull`, "
                          "or name a GGUF file with --model)",
                          store);
    } else if (rc == LOCO_OK) {
        size_t at = 0;
        rc = models_pick(&l, NULL, NULL, &at, err);
        if (rc == LOCO_OK)
            rc = take_path(&l.items[at], out_path, err);
        else
            err_append(err, "; the model store is %s", store);
    }
    models_listing_release(&l);
    free(store);
    return rc;
}

loco_status models_find_default(char **out_path, loco_err *err)
{
    return models_find_default_in(NULL, out_path, err);
}
