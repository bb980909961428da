/* walk.c: the parallel, .gitignore-aware directory walker behind Grep and Glob. A shared stack
 * of directories, worker threads that list one directory at a time, and a chain of ignore
 * frames (one per directory holding a .gitignore or .git/info/exclude) shared read-only. */
#include "base/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "agent/walk.h"

/* Ignore files of one directory. Frames are immutable once published and live until the walk
 * ends, so workers read them without locks. */
typedef struct ign_frame {
    struct ign_frame *parent; /* the next shallower frame */
    struct ign_frame *all;    /* every frame of the walk, for freeing */
    size_t base_len;          /* bytes of "dir/" relative to the ignore root (0 at the root) */
    gitignore *gi;            /* the directory's .gitignore, or NULL */
    gitignore *exclude;       /* its .git/info/exclude, or NULL */
} ign_frame;

typedef struct dir_item {
    struct dir_item *next;
    ign_frame *frame; /* innermost frame for this directory's entries (before its own) */
    size_t len;
    char path[];      /* absolute */
} dir_item;

typedef struct {
    const walk_options *opt;
    walk_fn fn;
    void *ud;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    dir_item *stack;
    int busy;
    bool stop;
    loco_status st;
    loco_err err;
    ign_frame *frames;
    size_t ign_prefix;  /* bytes to skip in an absolute path to get it relative to ignore_root */
    size_t root_prefix; /* same for root */
} walker;

typedef struct {
    walker *w;
    int index;
} worker_arg;

/* Names listed from one directory. */
typedef struct {
    char *names; /* NUL-separated */
    size_t len, cap;
    unsigned char *types;
    size_t *offs;
    size_t n, ncap;
} dir_list;

static const char *const vcs_dirs[] = {".git", ".svn", ".hg", ".bzr", ".jj", ".sl"};

static bool is_vcs(const char *name)
{
    for (size_t i = 0; i < LOCO_ARRAY_LEN(vcs_dirs); i++) {
        if (strcmp(name, vcs_dirs[i]) == 0)
            return true;
    }
    return false;
}

static bool cancelled(const walker *w)
{
    return w->opt->cancel && __atomic_load_n(w->opt->cancel, __ATOMIC_ACQUIRE);
}

/* Records the first failure and stops every worker. */
static void walker_fail(walker *w, loco_status st, const loco_err *err)
{
    pthread_mutex_lock(&w->mu);
    if (!w->st) {
        w->st = st;
        if (err)
            w->err = *err;
    }
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static bool walker_stopped(walker *w)
{
    pthread_mutex_lock(&w->mu);
    bool s = w->stop;
    pthread_mutex_unlock(&w->mu);
    return s;
}

/* Reads up to WALK_IGNORE_FILE_MAX bytes of dir_fd/name and compiles them; *out NULL when the
 * file is missing, unreadable or has no pattern. */
static loco_status read_ignore(int dir_fd, const char *name, gitignore **out, loco_err *err)
{
    *out = NULL;
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return LOCO_OK;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return LOCO_OK;
    }
    size_t cap = (size_t)st.st_size < WALK_IGNORE_FILE_MAX ? (size_t)st.st_size : WALK_IGNORE_FILE_MAX;
    char *text = malloc(cap + 1);
    if (!text) {
        close(fd);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory reading %s", name);
    }
    size_t len = 0;
    while (len < cap) {
        ssize_t r = read(fd, text + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    gitignore *gi = NULL;
    loco_status rc = gitignore_parse(text, len, &gi, err);
    free(text);
    if (rc)
        return rc;
    if (gitignore_count(gi) == 0) {
        gitignore_free(gi);
        gi = NULL;
    }
    *out = gi;
    return LOCO_OK;
}

/* Loads dir_fd's ignore files into a new frame above parent; *out is parent when there are
 * none. rel_len: length of the directory's path relative to the ignore root. */
static loco_status load_frame(walker *w, int dir_fd, bool has_gitignore, bool has_git,
                              size_t rel_len, ign_frame *parent, ign_frame **out)
{
    *out = parent;
    if (w->opt->no_ignore || (!has_gitignore && !has_git))
        return LOCO_OK;
    loco_err err;
    gitignore *gi = NULL, *ex = NULL;
    loco_status rc = LOCO_OK;
    if (has_gitignore)
        rc = read_ignore(dir_fd, ".gitignore", &gi, &err);
    if (!rc && has_git)
        rc = read_ignore(dir_fd, ".git/info/exclude", &ex, &err);
    if (rc || (!gi && !ex)) {
        gitignore_free(gi);
        gitignore_free(ex);
        if (rc)
            walker_fail(w, rc, &err);
        return rc;
    }
    ign_frame *f = calloc(1, sizeof(*f));
    if (!f) {
        gitignore_free(gi);
        gitignore_free(ex);
        loco_err_set(&err, LOCO_ERR_NOMEM, "out of memory walking the tree");
        walker_fail(w, LOCO_ERR_NOMEM, &err);
        return LOCO_ERR_NOMEM;
    }
    f->parent = parent;
    f->base_len = rel_len ? rel_len + 1 : 0;
    f->gi = gi;
    f->exclude = ex;
    pthread_mutex_lock(&w->mu);
    f->all = w->frames;
    w->frames = f;
    pthread_mutex_unlock(&w->mu);
    *out = f;
    return LOCO_OK;
}

/* rel: relative to the ignore root. Deeper .gitignore files win over shallower ones; the
 * exclude files come after all of them (git's precedence). */
static bool is_ignored(const ign_frame *frame, const char *rel, bool is_dir)
{
    for (const ign_frame *f = frame; f; f = f->parent) {
        gitignore_result r = gitignore_match(f->gi, rel + f->base_len, is_dir);
        if (r != GITIGNORE_NONE)
            return r == GITIGNORE_IGNORE;
    }
    for (const ign_frame *f = frame; f; f = f->parent) {
        gitignore_result r = gitignore_match(f->exclude, rel + f->base_len, is_dir);
        if (r != GITIGNORE_NONE)
            return r == GITIGNORE_IGNORE;
    }
    return false;
}

static loco_status list_push(dir_list *l, const char *name, unsigned char type)
{
    size_t n = strlen(name) + 1;
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        while (cap < l->len + n)
            cap *= 2;
        char *nn = realloc(l->names, cap);
        if (!nn)
            return LOCO_ERR_NOMEM;
        l->names = nn;
        l->cap = cap;
    }
    if (l->n == l->ncap) {
        size_t cap = l->ncap ? l->ncap * 2 : 64;
        size_t *no = realloc(l->offs, cap * sizeof(*no));
        if (!no)
            return LOCO_ERR_NOMEM;
        l->offs = no;
        unsigned char *nt = realloc(l->types, cap);
        if (!nt)
            return LOCO_ERR_NOMEM;
        l->types = nt;
        l->ncap = cap;
    }
    memcpy(l->names + l->len, name, n);
    l->offs[l->n] = l->len;
    l->types[l->n] = type;
    l->len += n;
    l->n++;
    return LOCO_OK;
}

static void list_release(dir_list *l)
{
    free(l->names);
    free(l->offs);
    free(l->types);
}

static void push_dirs(walker *w, dir_item *head, dir_item *tail)
{
    if (!head)
        return;
    pthread_mutex_lock(&w->mu);
    tail->next = w->stack;
    w->stack = head;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void free_items(dir_item *it)
{
    while (it) {
        dir_item *next = it->next;
        free(it);
        it = next;
    }
}

/* The entry's type, from d_type or an fstatat when the file system does not say. */
static unsigned char entry_type(int dir_fd, const char *name, unsigned char dt)
{
    if (dt != DT_UNKNOWN)
        return dt;
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return DT_UNKNOWN;
    if (S_ISREG(st.st_mode))
        return DT_REG;
    if (S_ISDIR(st.st_mode))
        return DT_DIR;
    if (S_ISLNK(st.st_mode))
        return DT_LNK;
    return DT_UNKNOWN;
}

/* First pass over a listed directory: queue the subdirectories that survive the rules. */
static loco_status queue_subdirs(walker *w, const dir_list *l, int dir_fd, char *path, size_t len,
                                 ign_frame *frame)
{
    dir_item *head = NULL, *tail = NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (l->types[i] != DT_DIR)
            continue;
        const char *name = l->names + l->offs[i];
        size_t nlen = strlen(name);
        if (len + 1 + nlen >= WALK_PATH_MAX)
            continue;
        path[len] = '/';
        memcpy(path + len + 1, name, nlen + 1);
        size_t plen = len + 1 + nlen;
        if (!w->opt->no_ignore && is_ignored(frame, path + w->ign_prefix, true))
            continue;
        if (w->opt->globs && gitignore_globset_prunes_dir(w->opt->globs, path + w->root_prefix))
            continue;
        dir_item *it = malloc(sizeof(*it) + plen + 1);
        if (!it) {
            free_items(head);
            return LOCO_ERR_NOMEM;
        }
        it->next = NULL;
        it->frame = frame;
        it->len = plen;
        memcpy(it->path, path, plen + 1);
        if (tail)
            tail->next = it;
        else
            head = it;
        tail = it;
    }
    LOCO_UNUSED(dir_fd);
    push_dirs(w, head, tail);
    path[len] = '\0';
    return LOCO_OK;
}

/* Second pass: hand every surviving regular file to the callback. */
static void visit_files(walker *w, const dir_list *l, int dir_fd, char *path, size_t len,
                        ign_frame *frame, int worker)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->types[i] != DT_REG)
            continue;
        if (cancelled(w)) {
            walker_fail(w, LOCO_ERR_CANCELLED, NULL);
            return;
        }
        const char *name = l->names + l->offs[i];
        size_t nlen = strlen(name);
        if (len + 1 + nlen >= WALK_PATH_MAX)
            continue;
        path[len] = '/';
        memcpy(path + len + 1, name, nlen + 1);
        size_t plen = len + 1 + nlen;
        if (!w->opt->no_ignore && is_ignored(frame, path + w->ign_prefix, false))
            continue;
        const char *rel = path + w->root_prefix;
        if (w->opt->globs && !gitignore_globset_allows(w->opt->globs, rel))
            continue;
        struct stat st;
        walk_entry e = {.path = path, .path_len = plen, .rel = rel, .name = name,
                        .dir_fd = dir_fd, .worker = worker};
        if (w->opt->want_stat) {
            if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
                continue;
            e.st = &st;
        }
        if (w->fn(w->ud, &e)) {
            pthread_mutex_lock(&w->mu);
            w->stop = true;
            pthread_cond_broadcast(&w->cv);
            pthread_mutex_unlock(&w->mu);
            return;
        }
    }
    path[len] = '\0';
}

static void process_dir(walker *w, dir_item *item, char *path, int worker)
{
    int fd = open(item->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    dir_list l = {0};
    bool has_gitignore = false, has_git = false;
    loco_status rc = LOCO_OK;
    struct dirent *de;
    while (!rc && (de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
            continue;
        if (strcmp(name, ".gitignore") == 0)
            has_gitignore = true;
        if (is_vcs(name)) {
            if (strcmp(name, ".git") == 0)
                has_git = true;
            continue;
        }
        if (w->opt->skip_hidden && name[0] == '.')
            continue;
        unsigned char t = entry_type(fd, name, de->d_type);
        if (t != DT_REG && t != DT_DIR)
            continue; /* symlinks, sockets, devices, FIFOs */
        rc = list_push(&l, name, t);
    }
    if (rc) {
        loco_err err;
        loco_err_set(&err, LOCO_ERR_NOMEM, "out of memory listing %s", item->path);
        walker_fail(w, rc, &err);
    }
    size_t rel_len = item->len > w->ign_prefix ? item->len - w->ign_prefix : 0;
    ign_frame *frame = item->frame;
    if (!rc)
        rc = load_frame(w, fd, has_gitignore, has_git, rel_len, item->frame, &frame);
    memcpy(path, item->path, item->len + 1);
    if (!rc) {
        rc = queue_subdirs(w, &l, fd, path, item->len, frame);
        if (rc) {
            loco_err err;
            loco_err_set(&err, LOCO_ERR_NOMEM, "out of memory walking %s", item->path);
            walker_fail(w, rc, &err);
        }
    }
    if (!rc && !walker_stopped(w))
        visit_files(w, &l, fd, path, item->len, frame, worker);
    list_release(&l);
    closedir(d);
}

static void *worker_main(void *p)
{
    worker_arg *a = p;
    walker *w = a->w;
    char *path = malloc(WALK_PATH_MAX + 1);
    if (!path) {
        loco_err err;
        loco_err_set(&err, LOCO_ERR_NOMEM, "out of memory starting a walker thread");
        walker_fail(w, LOCO_ERR_NOMEM, &err);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->stack && w->busy > 0 && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop || !w->stack) {
            pthread_cond_broadcast(&w->cv);
            pthread_mutex_unlock(&w->mu);
            break;
        }
        dir_item *item = w->stack;
        w->stack = item->next;
        w->busy++;
        pthread_mutex_unlock(&w->mu);

        if (cancelled(w))
            walker_fail(w, LOCO_ERR_CANCELLED, NULL);
        else
            process_dir(w, item, path, a->index);
        free(item);

        pthread_mutex_lock(&w->mu);
        w->busy--;
        if (!w->stack && w->busy == 0)
            pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    free(path);
    return NULL;
}

/* True when dir is root or one of its ancestors. */
static bool is_under(const char *root, size_t root_len, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n > root_len || memcmp(root, dir, n) != 0)
        return false;
    return n == root_len || n == 1 || root[n] == '/';
}

static size_t prefix_len(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return n == 1 ? 1 : n + 1;
}

/* Builds the frames of the directories from ignore_root down to root's parent (their
 * .gitignore files apply to root's contents too). */
static loco_status initial_frames(walker *w, const char *root, size_t root_len, ign_frame **out)
{
    *out = NULL;
    const char *ig = w->opt->ignore_root;
    if (w->opt->no_ignore || !ig)
        return LOCO_OK;
    size_t ig_len = strlen(ig);
    while (ig_len > 1 && ig[ig_len - 1] == '/')
        ig_len--;
    if (ig_len >= root_len || !is_under(root, root_len, ig))
        return LOCO_OK;
    char dir[WALK_PATH_MAX];
    size_t pos = ig_len;
    ign_frame *frame = NULL;
    for (;;) {
        memcpy(dir, root, pos);
        dir[pos] = '\0';
        int fd = open(pos ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            struct stat st;
            bool has_gi = fstatat(fd, ".gitignore", &st, AT_SYMLINK_NOFOLLOW) == 0;
            bool has_git = fstatat(fd, ".git", &st, AT_SYMLINK_NOFOLLOW) == 0;
            size_t rel = pos > w->ign_prefix ? pos - w->ign_prefix : 0;
            loco_status rc = load_frame(w, fd, has_gi, has_git, rel, frame, &frame);
            close(fd);
            if (rc)
                return rc;
        }
        const char *next = memchr(root + pos + 1, '/', root_len - pos - 1);
        if (!next)
            break;
        pos = (size_t)(next - root);
    }
    *out = frame;
    return LOCO_OK;
}

static loco_status walk_file(const walk_options *opt, const char *root, const struct stat *st,
                             walk_fn fn, void *ud)
{
    /* with AT_FDCWD, openat(dir_fd, name) opens the absolute path */
    walk_entry e = {.path = root, .path_len = strlen(root), .rel = "", .name = root,
                    .dir_fd = AT_FDCWD, .st = opt->want_stat ? st : NULL, .worker = 0};
    fn(ud, &e);
    return LOCO_OK;
}

loco_status walk_run(const walk_options *opt, walk_fn fn, void *ud, loco_err *err)
{
    struct stat st;
    if (lstat(opt->root, &st) != 0) {
        int e = errno;
        return loco_err_set(err, e == ENOENT ? LOCO_ERR_NOT_FOUND : LOCO_ERR_IO,
                            "cannot access '%s': %s", opt->root, strerror(e));
    }
    if (S_ISREG(st.st_mode))
        return walk_file(opt, opt->root, &st, fn, ud);
    if (!S_ISDIR(st.st_mode))
        return loco_err_set(err, LOCO_ERR_INVALID, "'%s' is not a regular file or directory",
                            opt->root);
    size_t root_len = strlen(opt->root);
    while (root_len > 1 && opt->root[root_len - 1] == '/')
        root_len--;
    if (root_len >= WALK_PATH_MAX)
        return loco_err_set(err, LOCO_ERR_LIMIT, "path too long: '%s'", opt->root);

    walker w = {.opt = opt, .fn = fn, .ud = ud};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.root_prefix = prefix_len(opt->root);
    w.ign_prefix = w.root_prefix;
    if (opt->ignore_root && !opt->no_ignore && is_under(opt->root, root_len, opt->ignore_root))
        w.ign_prefix = prefix_len(opt->ignore_root);

    ign_frame *frame = NULL;
    loco_status rc = initial_frames(&w, opt->root, root_len, &frame);
    dir_item *root = NULL;
    if (!rc) {
        root = malloc(sizeof(*root) + root_len + 1);
        if (!root)
            rc = loco_err_set(&w.err, LOCO_ERR_NOMEM, "out of memory walking '%s'", opt->root);
    }
    if (!rc) {
        root->next = NULL;
        root->frame = frame;
        root->len = root_len;
        memcpy(root->path, opt->root, root_len);
        root->path[root_len] = '\0';
        w.stack = root;

        int n = opt->threads < 1 ? 1 : opt->threads > WALK_THREADS_MAX ? WALK_THREADS_MAX
                                                                          : opt->threads;
        pthread_t tids[WALK_THREADS_MAX];
        worker_arg args[WALK_THREADS_MAX];
        int started = 0;
        for (int i = 1; i < n; i++) {
            args[i] = (worker_arg){.w = &w, .index = i};
            if (pthread_create(&tids[i], NULL, worker_main, &args[i]) != 0)
                break;
            started = i;
        }
        args[0] = (worker_arg){.w = &w, .index = 0};
        worker_main(&args[0]);
        for (int i = 1; i <= started; i++)
            pthread_join(tids[i], NULL);
        free_items(w.stack);
        rc = w.st;
    }
    if (rc == LOCO_ERR_CANCELLED)
        loco_err_set(err, rc, "walk of '%s' cancelled", opt->root);
    else if (rc && err)
        *err = w.err;
    while (w.frames) {
        ign_frame *next = w.frames->all;
        gitignore_free(w.frames->gi);
        gitignore_free(w.frames->exclude);
        free(w.frames);
        w.frames = next;
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}
