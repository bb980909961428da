/* confine_linux.c: the Linux half of confine.h (see confine_int.h): probing the kernel, a
 * Landlock ruleset per call, a seccomp filter on socket(2) and friends, user/network/pid
 * namespaces made with clone(2), a pids cgroup when running as root, and the cleanup that
 * kills every descendant. The constants of newer Landlock ABIs are defined here so that old
 * kernel headers (Debian 12 ships 6.1's) still build every feature. */
#ifdef __linux__

#include "base/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/confine_int.h"
#include "base/file.h"
#include "base/str.h"

/* ---- Landlock ABI (include/uapi/linux/landlock.h) --------------------------------------- */

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif
#define LL_CREATE_RULESET_VERSION (1u << 0)
#define LL_RULE_PATH_BENEATH 1

#define LL_FS_EXECUTE (1ull << 0)
#define LL_FS_WRITE_FILE (1ull << 1)
#define LL_FS_READ_FILE (1ull << 2)
#define LL_FS_READ_DIR (1ull << 3)
#define LL_FS_REMOVE_DIR (1ull << 4)
#define LL_FS_REMOVE_FILE (1ull << 5)
#define LL_FS_MAKE_CHAR (1ull << 6)
#define LL_FS_MAKE_DIR (1ull << 7)
#define LL_FS_MAKE_REG (1ull << 8)
#define LL_FS_MAKE_SOCK (1ull << 9)
#define LL_FS_MAKE_FIFO (1ull << 10)
#define LL_FS_MAKE_BLOCK (1ull << 11)
#define LL_FS_MAKE_SYM (1ull << 12)
#define LL_FS_REFER (1ull << 13)    /* ABI 2 */
#define LL_FS_TRUNCATE (1ull << 14) /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ull << 15) /* ABI 5 */
#define LL_NET_BIND_TCP (1ull << 0)    /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ull << 1) /* ABI 4 */
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ull << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ull << 1)               /* ABI 6 */

/* Rights that apply to a file (the others only to directories). */
#define LL_FILE_RIGHTS (LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | \
                        LL_FS_IOCTL_DEV)
#define LL_READ_RIGHTS (LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_READ_DIR)
#define LL_WRITE_RIGHTS (LL_READ_RIGHTS | LL_FS_WRITE_FILE | LL_FS_REMOVE_DIR |                \
                         LL_FS_REMOVE_FILE | LL_FS_MAKE_DIR | LL_FS_MAKE_REG | LL_FS_MAKE_SOCK | \
                         LL_FS_MAKE_FIFO | LL_FS_MAKE_SYM | LL_FS_REFER | LL_FS_TRUNCATE)
#define LL_DEVICE_RIGHTS (LL_FS_READ_FILE | LL_FS_WRITE_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)

typedef struct {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
} ll_ruleset_attr;

typedef struct {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed)) ll_path_beneath_attr;

/* What programs need to run (read and execute); missing ones are skipped. */
static const char *const SYSTEM_READ[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
                                          "/libx32", "/nix/store", NULL};
/* Read only: facts about the machine that common tools read. */
static const char *const SYSTEM_INFO[] = {
    "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/loadavg", "/proc/uptime",
    "/proc/version", "/proc/filesystems", "/sys/devices/system/cpu", NULL};
static const char *const DEVICES[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                      "/dev/urandom", NULL};
/* /etc is readable except for these (secrets a root user's shell could otherwise read). */
static const char *const ETC_DENY[] = {
    "shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssh", "ssl/private",
    "wireguard", "credstore", "credstore.encrypted", "NetworkManager/system-connections",
    "krb5.keytab", "security/opasswd", "libvirt/secrets", "docker/key.json", NULL};

/* ---- seccomp ----------------------------------------------------------------------------- */

#if defined(__x86_64__)
#define CONFINE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define CONFINE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif
#define CONFINE_FILTER_MAX 64

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#else
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#endif

struct confine_os {
    confine_caps caps;
    unsigned use;
    unsigned long clone_flags;
    bool pidns;       /* S is the init of a new pid namespace */
    bool subreaper;   /* S reaps orphans and kills them at the end */
    bool userns;
    int ruleset_fd;   /* Landlock ruleset, or -1 */
    struct sock_filter filter[CONFINE_FILTER_MAX];
    unsigned short filter_len; /* 0: no seccomp filter */
    long nproc;       /* RLIMIT_NPROC for C, 0: none */
    char *cgroup;     /* the call's cgroup directory, or NULL */
    char cgroup_procs[PATH_MAX];
    char uid_map[64], gid_map[64];
};

static pid_t raw_clone(unsigned long flags)
{
    /* fork(2) semantics (no new stack); glibc's fork is not used because S and C must not run
     * atfork handlers or take locks another thread of loco may hold. */
    return (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
}

static int landlock_abi(void)
{
    long v = syscall(__NR_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    return v > 0 ? (int)v : 0;
}

static uint64_t ll_fs_handled(int abi)
{
    uint64_t all = (1ull << 13) - 1;
    if (abi >= 2)
        all |= LL_FS_REFER;
    if (abi >= 3)
        all |= LL_FS_TRUNCATE;
    if (abi >= 5)
        all |= LL_FS_IOCTL_DEV;
    return all;
}

/* ---- small async-signal-safe helpers ---------------------------------------------------- */

static size_t fmt_long(char *out, long v)
{
    char tmp[24];
    size_t n = 0, k = 0;
    bool neg = v < 0;
    unsigned long u = neg ? (unsigned long)(-(v + 1)) + 1 : (unsigned long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u && n < sizeof(tmp));
    if (neg)
        out[k++] = '-';
    while (n)
        out[k++] = tmp[--n];
    out[k] = '\0';
    return k;
}

static loco_status write_text(const char *path, const char *text, loco_err *err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return loco_err_set(err, LOCO_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int e = errno;
    close(fd);
    if (w != (ssize_t)n)
        return loco_err_set(err, LOCO_ERR_IO, "cannot write %s: %s", path,
                            w < 0 ? strerror(e) : "short write");
    return LOCO_OK;
}

/* ---- namespaces ------------------------------------------------------------------------- */

static loco_status write_maps(pid_t pid, const char *uid_map, const char *gid_map, loco_err *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/setgroups", (long)pid);
    loco_status rc = write_text(path, "deny", err);
    if (rc && access(path, F_OK) != 0)
        rc = LOCO_OK; /* kernels before 3.19 have no setgroups file */
    snprintf(path, sizeof(path), "/proc/%ld/uid_map", (long)pid);
    if (!rc)
        rc = write_text(path, uid_map, err);
    snprintf(path, sizeof(path), "/proc/%ld/gid_map", (long)pid);
    if (!rc)
        rc = write_text(path, gid_map, err);
    return rc;
}

static void make_maps(char *uid_map, char *gid_map)
{
    char n[24];
    fmt_long(n, (long)geteuid());
    snprintf(uid_map, 64, "%s %s 1\n", n, n);
    fmt_long(n, (long)getegid());
    snprintf(gid_map, 64, "%s %s 1\n", n, n);
}

/* True when a child can be made with these namespace flags (and, with a user namespace, its
 * id maps written). The child is released by a byte, not by end of file: another thread's
 * probe child, cloned meanwhile, holds copies of this pipe's ends (a clone copies every fd),
 * and with end of file as the signal two concurrent probes (loco analyze --jobs 2) waited on
 * each other's children for ever. */
static bool probe_clone(unsigned long flags)
{
    int go[2];
    if (pipe2(go, O_CLOEXEC) != 0)
        return false;
    pid_t pid = raw_clone(flags | SIGCHLD);
    if (pid == 0) {
        char c;
        ssize_t n;
        close(go[1]);
        do
            n = read(go[0], &c, 1);
        while (n < 0 && errno == EINTR);
        _exit(0);
    }
    close(go[0]);
    bool ok = pid > 0;
    if (ok && (flags & CLONE_NEWUSER)) {
        char um[64], gm[64];
        make_maps(um, gm);
        ok = write_maps(pid, um, gm, NULL) == LOCO_OK;
    }
    if (pid > 0)
        (void)!file_write_nosigpipe(go[1], "g", 1);
    close(go[1]);
    if (pid > 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
    return ok;
}

/* ---- cgroups (used as root, where RLIMIT_NPROC does not bind) -------------------------- */

/* The mount point of the cgroup2 hierarchy (v2) or of the v1 hierarchy with the pids
 * controller, from /proc/self/mountinfo; malloc'd or NULL. */
static char *cgroup_mount(bool v2)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return NULL;
    char line[4096];
    char *found = NULL;
    while (!found && fgets(line, sizeof(line), f)) {
        /* id parent maj:min root mountpoint options... - fstype source superoptions */
        char *save = NULL, *fields[5] = {0};
        char *tok = strtok_r(line, " ", &save);
        for (int k = 0; tok && k < 5; k++, tok = strtok_r(NULL, " ", &save))
            fields[k] = tok;
        if (!fields[4])
            continue;
        while (tok && strcmp(tok, "-") != 0)
            tok = strtok_r(NULL, " ", &save);
        char *fstype = tok ? strtok_r(NULL, " ", &save) : NULL;
        char *source = fstype ? strtok_r(NULL, " ", &save) : NULL;
        char *super = source ? strtok_r(NULL, " \n", &save) : NULL;
        if (!fstype || strchr(fields[4], '\\'))
            continue;
        if (v2 && strcmp(fstype, "cgroup2") == 0) {
            found = strdup(fields[4]);
        } else if (!v2 && strcmp(fstype, "cgroup") == 0 && super) {
            char *s2 = NULL;
            for (char *o = strtok_r(super, ",", &s2); o; o = strtok_r(NULL, ",", &s2))
                if (strcmp(o, "pids") == 0)
                    found = strdup(fields[4]);
        }
    }
    fclose(f);
    return found;
}

/* Our cgroup path in the v2 hierarchy ("0::/path") or the v1 pids one ("N:...pids...:/path"),
 * from /proc/self/cgroup; malloc'd or NULL. */
static char *cgroup_self(bool v2)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return NULL;
    char line[4096];
    char *found = NULL;
    while (!found && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        const char *ctrls = c1 + 1;
        if (v2) {
            if (strcmp(line, "0") == 0 && *ctrls == '\0')
                found = strdup(c2 + 1);
        } else {
            char *save = NULL, copy[256];
            snprintf(copy, sizeof(copy), "%s", ctrls);
            for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save))
                if (strcmp(o, "pids") == 0)
                    found = strdup(c2 + 1);
        }
    }
    fclose(f);
    return found;
}

static bool file_has_word(const char *path, const char *word)
{
    buf b;
    buf_init(&b, 4096);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char chunk[1024];
    ssize_t n;
    while (fd >= 0 && (n = read(fd, chunk, sizeof(chunk))) > 0)
        if (buf_append(&b, chunk, (size_t)n))
            break;
    if (fd >= 0)
        close(fd);
    bool found = false;
    char *save = NULL;
    for (char *w = b.data ? strtok_r(b.data, " \n", &save) : NULL; w && !found;
         w = strtok_r(NULL, " \n", &save))
        found = strcmp(w, word) == 0;
    buf_release(&b);
    return found;
}

/* The directory under which a call's cgroup is made, with the pids controller active there;
 * malloc'd or NULL. */
static char *cgroup_parent(void)
{
    char *mnt = cgroup_mount(true), *self = cgroup_self(true);
    char *dir = NULL;
    if (mnt && self) {
        size_t n = strlen(mnt) + strlen(self) + 32;
        char *base = malloc(n);
        if (base) {
            snprintf(base, n, "%s%s", mnt, strcmp(self, "/") == 0 ? "" : self);
            if (strcmp(self, "/") != 0) { /* our cgroup holds processes: use its parent */
                char *slash = strrchr(base, '/');
                if (slash && (size_t)(slash - base) >= strlen(mnt))
                    *slash = '\0';
            }
            char ctl[PATH_MAX];
            snprintf(ctl, sizeof(ctl), "%s/cgroup.subtree_control", base);
            if (!file_has_word(ctl, "pids"))
                (void)write_text(ctl, "+pids", NULL);
            if (file_has_word(ctl, "pids"))
                dir = base;
            else
                free(base);
        }
    }
    free(mnt);
    free(self);
    if (dir)
        return dir;
    mnt = cgroup_mount(false);
    self = cgroup_self(false);
    if (mnt && self) {
        size_t n = strlen(mnt) + strlen(self) + 2;
        dir = malloc(n);
        if (dir)
            snprintf(dir, n, "%s%s", mnt, strcmp(self, "/") == 0 ? "" : self);
    }
    free(mnt);
    free(self);
    return dir;
}

/* Makes a cgroup allowing max_procs tasks; *out malloc'd. */
static loco_status cgroup_create(long max_procs, char **out, loco_err *err)
{
    *out = NULL;
    char *parent = cgroup_parent();
    if (!parent)
        return loco_err_set(err, LOCO_ERR_UNAVAILABLE, "no pids cgroup hierarchy is mounted");
    size_t n = strlen(parent) + 32;
    char *dir = malloc(n);
    if (!dir) {
        free(parent);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    snprintf(dir, n, "%s/loco-bash-XXXXXX", parent);
    free(parent);
    if (!mkdtemp(dir)) {
        loco_status rc = loco_err_set(err, LOCO_ERR_UNAVAILABLE, "cannot create a cgroup: %s",
                                      strerror(errno));
        free(dir);
        return rc;
    }
    char path[PATH_MAX], num[24];
    snprintf(path, sizeof(path), "%s/pids.max", dir);
    fmt_long(num, max_procs);
    loco_status rc = write_text(path, num, err);
    if (rc) {
        rmdir(dir);
        free(dir);
        return rc;
    }
    *out = dir;
    return LOCO_OK;
}

/* Removes a call's cgroup, killing what is still in it first (there should be nothing). */
static void cgroup_remove(const char *dir, const char *procs)
{
    for (int tries = 0; tries < 200; tries++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return;
        int fd = open(procs, O_RDONLY | O_CLOEXEC);
        char b[4096];
        ssize_t n = fd >= 0 ? read(fd, b, sizeof(b) - 1) : -1;
        if (fd >= 0)
            close(fd);
        for (ssize_t k = 0; k < n;) {
            long pid = 0;
            while (k < n && b[k] >= '0' && b[k] <= '9')
                pid = pid * 10 + (b[k++] - '0');
            k++;
            if (pid > 0)
                kill((pid_t)pid, SIGKILL);
        }
        usleep(5000);
    }
}

/* ---- probe ------------------------------------------------------------------------------ */

static bool seccomp_usable(void)
{
#ifdef CONFINE_AUDIT_ARCH
    unsigned action = SECCOMP_RET_ERRNO;
    return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 &&
           syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
#else
    return false;
#endif
}

void confine_os_probe(confine_caps *c)
{
    c->os_supported = true;
    c->root = geteuid() == 0;
    c->landlock_abi = landlock_abi();
    c->seccomp = seccomp_usable();
    /* the subreaper fallback needs both (qemu-user, for one, refuses PR_*_CHILD_SUBREAPER) */
    int subreaper = 0;
    c->child_list = access("/proc/thread-self/children", R_OK) == 0 &&
                    prctl(PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0) == 0;
    if (probe_clone(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID)) {
        c->userns = c->netns = c->pidns = true;
    } else if (c->root && probe_clone(CLONE_NEWNET | CLONE_NEWPID)) {
        c->netns = c->pidns = true;
    }
    if (c->root) {
        char *dir = NULL;
        if (cgroup_create(8, &dir, NULL) == LOCO_OK) {
            c->cgroup = true;
            rmdir(dir);
            free(dir);
        }
    }
    /* Before ABI 3 Landlock does not see truncation; the seccomp filter covers it. */
    if (c->landlock_abi >= 3 || (c->landlock_abi >= 1 && c->seccomp))
        c->have |= CONFINE_FILES;
    if (c->netns || c->seccomp)
        c->have |= CONFINE_NETWORK;
    if (c->root ? c->cgroup : true)
        c->have |= CONFINE_PROCS;
    if (c->pidns || c->child_list || c->cgroup)
        c->have |= CONFINE_CLEANUP;
}

/* ---- prepare ------------------------------------------------------------------------------ */

static loco_status ll_add(int ruleset, uint64_t handled, const char *path, uint64_t access,
                          bool required, loco_err *err)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        if (!required)
            return LOCO_OK;
        return loco_err_set(err, LOCO_ERR_IO, "Landlock: cannot open %s: %s", path,
                            strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
        access &= LL_FILE_RIGHTS;
    ll_path_beneath_attr pb = {.allowed_access = access & handled, .parent_fd = fd};
    long r = syscall(__NR_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0);
    int e = errno;
    close(fd);
    if (r != 0 && required)
        return loco_err_set(err, LOCO_ERR_IO, "Landlock: cannot add a rule for %s: %s", path,
                            strerror(e));
    return LOCO_OK;
}

/* True when a denied path lies strictly below rel. */
static bool deny_below(const char *rel)
{
    size_t n = strlen(rel);
    for (size_t k = 0; ETC_DENY[k]; k++)
        if (strncmp(ETC_DENY[k], rel, n) == 0 && ETC_DENY[k][n] == '/')
            return true;
    return false;
}

static bool denied(const char *rel)
{
    for (size_t k = 0; ETC_DENY[k]; k++)
        if (strcmp(ETC_DENY[k], rel) == 0)
            return true;
    return false;
}

/* Grants read access to every entry of root/rel except the denied ones, recursing into the
 * directories that hold a denied path. */
static void ll_add_except(int ruleset, uint64_t handled, const char *root, const char *rel,
                          int depth)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char sub[PATH_MAX];
        int n = snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        if (n <= 0 || (size_t)n >= sizeof(sub) || denied(sub))
            continue;
        if (deny_below(sub)) {
            if (depth < 4)
                ll_add_except(ruleset, handled, root, sub, depth + 1);
            continue;
        }
        char full[PATH_MAX + 16];
        n = snprintf(full, sizeof(full), "%s/%s", root, sub);
        if (n > 0 && (size_t)n < sizeof(full))
            (void)ll_add(ruleset, handled, full, LL_READ_RIGHTS, false, NULL);
    }
    closedir(d);
}

static loco_status build_ruleset(const confine_spec *spec, int abi, int *out_fd, loco_err *err)
{
    ll_ruleset_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.handled_access_fs = ll_fs_handled(abi);
    size_t size = sizeof(attr.handled_access_fs);
    if (abi >= 4) {
        attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP; /* no TCP at all */
        size += sizeof(attr.handled_access_net);
    }
    if (abi >= 6) {
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
        size += sizeof(attr.scoped);
    }
    int fd = (int)syscall(__NR_landlock_create_ruleset, &attr, size, 0);
    if (fd < 0)
        return loco_err_set(err, LOCO_ERR_IO, "Landlock: cannot create a ruleset: %s",
                            strerror(errno));
    uint64_t h = attr.handled_access_fs;
    loco_status rc = LOCO_OK;
    for (size_t k = 0; !rc && SYSTEM_READ[k]; k++)
        rc = ll_add(fd, h, SYSTEM_READ[k], LL_READ_RIGHTS, false, err);
    for (size_t k = 0; !rc && SYSTEM_INFO[k]; k++)
        rc = ll_add(fd, h, SYSTEM_INFO[k], LL_FS_READ_FILE | LL_FS_READ_DIR, false, err);
    for (size_t k = 0; !rc && DEVICES[k]; k++)
        rc = ll_add(fd, h, DEVICES[k], LL_DEVICE_RIGHTS, false, err);
    if (!rc) {
        rc = ll_add(fd, h, "/etc", LL_FS_READ_DIR, false, err); /* names only */
        ll_add_except(fd, h, "/etc", "", 0);
    }
    for (size_t k = 0; !rc && k < spec->n_read; k++)
        rc = ll_add(fd, h, spec->read_paths[k], LL_READ_RIGHTS, true, err);
    for (size_t k = 0; !rc && k < spec->n_write; k++)
        rc = ll_add(fd, h, spec->write_paths[k], LL_WRITE_RIGHTS, true, err);
    if (rc) {
        close(fd);
        return rc;
    }
    *out_fd = fd;
    return LOCO_OK;
}

#define STMT(code, k) ((struct sock_filter)BPF_STMT((code), (k)))
#define JUMP(code, k, jt, jf) ((struct sock_filter)BPF_JUMP((code), (k), (jt), (jf)))
#define RET_ERRNO(e) STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))

static void emit(confine_os *os, struct sock_filter f)
{
    if (os->filter_len < CONFINE_FILTER_MAX)
        os->filter[os->filter_len++] = f;
}

/* nr -> errno e (2 instructions; A holds nr before and after). */
static void emit_deny(confine_os *os, long nr, int e)
{
    emit(os, JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 1));
    emit(os, RET_ERRNO(e));
}

/* nr with O_TRUNC in a read-only open (flags in argument arg) -> EPERM. Landlock before ABI 3
 * does not see truncation, so the filter does (7 instructions). */
static void emit_trunc(confine_os *os, long nr, int arg)
{
    emit(os, JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 6));
    emit(os, STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)ARG_LO(arg)));
    emit(os, JUMP(BPF_JMP | BPF_JSET | BPF_K, O_TRUNC, 0, 3));
    emit(os, STMT(BPF_ALU | BPF_AND | BPF_K, O_ACCMODE));
    emit(os, JUMP(BPF_JMP | BPF_JEQ | BPF_K, O_RDONLY, 0, 1));
    emit(os, RET_ERRNO(EPERM));
    emit(os, STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
}

/* The filter: foreign-architecture and x32 calls refused; with net, socket(2) refused (every
 * family: named unix sockets lead out of the sandbox too; socketpair stays), io_uring (which
 * can open sockets behind seccomp's back) and the key-retention calls refused; with trunc
 * (Landlock older than ABI 3), truncation refused. */
static void build_filter(confine_os *os, bool net, bool trunc)
{
#ifdef CONFINE_AUDIT_ARCH
    os->filter_len = 0;
    emit(os, STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    emit(os, JUMP(BPF_JMP | BPF_JEQ | BPF_K, CONFINE_AUDIT_ARCH, 1, 0));
    emit(os, RET_ERRNO(ENOSYS));
    emit(os, STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
#ifdef __x86_64__
    emit(os, JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1)); /* x32 */
    emit(os, RET_ERRNO(ENOSYS));
#endif
    if (net) {
        emit_deny(os, SYS_socket, EACCES);
#ifdef SYS_io_uring_setup
        emit_deny(os, SYS_io_uring_setup, ENOSYS);
        emit_deny(os, SYS_io_uring_enter, ENOSYS);
        emit_deny(os, SYS_io_uring_register, ENOSYS);
#endif
        emit_deny(os, SYS_keyctl, ENOSYS);
        emit_deny(os, SYS_add_key, ENOSYS);
        emit_deny(os, SYS_request_key, ENOSYS);
    }
    if (trunc) {
        emit_deny(os, SYS_truncate, EPERM);
#ifdef SYS_openat2
        emit_deny(os, SYS_openat2, ENOSYS);
#endif
#ifdef SYS_open
        emit_trunc(os, SYS_open, 1);
#endif
        emit_trunc(os, SYS_openat, 2);
    }
    emit(os, STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
#else
    (void)os;
    (void)net;
    (void)trunc;
#endif
}

/* Tasks the real user runs now (RLIMIT_NPROC counts them all when there is no user
 * namespace to count in). */
static long count_user_tasks(void)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    uid_t uid = getuid();
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) != 0 || st.st_uid != uid)
            continue;
        char path[300];
        snprintf(path, sizeof(path), "/proc/%s/task", e->d_name);
        DIR *t = opendir(path);
        long k = 0;
        struct dirent *te;
        while (t && (te = readdir(t)) != NULL)
            k += te->d_name[0] != '.';
        if (t)
            closedir(t);
        n += k > 0 ? k : 1;
    }
    closedir(d);
    return n;
}

loco_status confine_os_prepare(const confine_spec *spec, confine_os **out, loco_err *err)
{
    *out = NULL;
    confine_os *os = calloc(1, sizeof(*os));
    if (!os)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    os->caps = *spec->caps;
    os->use = spec->use;
    os->ruleset_fd = -1;
    const confine_caps *c = &os->caps;
    unsigned use = spec->use;
    unsigned long flags = 0;
    if (c->userns && (use & (CONFINE_NETWORK | CONFINE_CLEANUP | CONFINE_PROCS)))
        flags |= CLONE_NEWUSER;
    if ((flags & CLONE_NEWUSER) || c->root) {
        if ((use & CONFINE_NETWORK) && c->netns)
            flags |= CLONE_NEWNET;
        if ((use & CONFINE_CLEANUP) && c->pidns)
            flags |= CLONE_NEWPID;
    }
    os->clone_flags = flags | SIGCHLD;
    os->userns = (flags & CLONE_NEWUSER) != 0;
    os->pidns = (flags & CLONE_NEWPID) != 0;
    /* the subreaper only serves the /proc children list (a cgroup finds escapees itself) */
    os->subreaper = (use & CONFINE_CLEANUP) && !os->pidns && c->child_list;
    if (os->userns)
        make_maps(os->uid_map, os->gid_map);
    loco_status rc = LOCO_OK;
    long max_procs = spec->max_procs > 0 ? spec->max_procs : 512;
    if (use & CONFINE_PROCS) {
        if (c->root) {
            rc = cgroup_create(max_procs, &os->cgroup, err);
            if (rc)
                loco_err_wrap(err, "process limit");
            else
                snprintf(os->cgroup_procs, sizeof(os->cgroup_procs), "%s/cgroup.procs",
                         os->cgroup);
        } else {
            os->nproc = os->userns ? max_procs : count_user_tasks() + max_procs;
        }
    }
    if (!rc && (use & CONFINE_FILES))
        rc = build_ruleset(spec, c->landlock_abi, &os->ruleset_fd, err);
    bool net_filter = (use & CONFINE_NETWORK) && c->seccomp;
    bool trunc_filter = (use & CONFINE_FILES) && c->landlock_abi < 3 && c->seccomp;
    if (!rc && (net_filter || trunc_filter))
        build_filter(os, net_filter, trunc_filter);
    if (rc) {
        confine_os_free(os);
        return rc;
    }
    *out = os;
    return LOCO_OK;
}

void confine_os_free(confine_os *os)
{
    if (!os)
        return;
    if (os->ruleset_fd >= 0)
        close(os->ruleset_fd);
    if (os->cgroup) {
        cgroup_remove(os->cgroup, os->cgroup_procs);
        free(os->cgroup);
    }
    free(os);
}

/* True when path (resolved) is root or lies below it (root resolved too). */
static bool below(const char *path, const char *root)
{
    char *r = realpath(root, NULL);
    if (!r)
        return false;
    size_t n = strlen(r);
    bool in = strncmp(path, r, n) == 0 && (path[n] == '\0' || path[n] == '/' || n == 1);
    free(r);
    return in;
}

bool confine_os_path_usable(const confine_os *os, const confine_spec *spec, const char *dir)
{
    if (!(os->use & CONFINE_FILES))
        return true;
    char *real = realpath(dir, NULL);
    if (!real)
        return false;
    bool ok = false;
    for (size_t k = 0; !ok && SYSTEM_READ[k]; k++)
        ok = below(real, SYSTEM_READ[k]);
    for (size_t k = 0; !ok && k < spec->n_read; k++)
        ok = below(real, spec->read_paths[k]);
    for (size_t k = 0; !ok && k < spec->n_write; k++)
        ok = below(real, spec->write_paths[k]);
    free(real);
    return ok;
}

pid_t confine_os_fork_supervisor(confine_os *os)
{
    pid_t pid = raw_clone(os->clone_flags);
    if (pid == 0) /* S dies with the loco thread that started it */
        prctl(PR_SET_PDEATHSIG, confine_os_parent_death_signal(os), 0, 0, 0);
    return pid;
}

loco_status confine_os_place(confine_os *os, pid_t pid, loco_err *err)
{
    loco_status rc = LOCO_OK;
    if (os->userns) {
        rc = write_maps(pid, os->uid_map, os->gid_map, err);
        if (rc)
            return loco_err_wrap(err, "user namespace");
    }
    if (os->cgroup) {
        char num[24];
        fmt_long(num, (long)pid);
        rc = write_text(os->cgroup_procs, num, err);
        if (rc)
            return loco_err_wrap(err, "process limit");
    }
    return LOCO_OK;
}

bool confine_os_kills_with_supervisor(const confine_os *os)
{
    return os->pidns;
}

int confine_os_parent_death_signal(const confine_os *os)
{
    return os->pidns ? SIGKILL : SIGUSR1;
}

int confine_os_supervisor_setup(const confine_os *os)
{
    /* S's memory is a copy of loco's, keys included: not readable through /proc or ptrace
     * by the command. (Only now: while loco writes S's id maps, /proc/S must stay ours.) */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (os->subreaper && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        return errno;
    return 0;
}

pid_t confine_os_fork_child(const confine_os *os)
{
    (void)os;
    return raw_clone(SIGCHLD);
}

/* Sends sig to every pid listed (decimal, separated by blanks) in the file at path, except
 * the caller; returns how many. */
static int kill_listed(const char *path, int sig)
{
    long self = (long)getpid();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char b[8192];
    int count = 0;
    long pid = 0;
    bool in = false;
    ssize_t n;
    while ((n = read(fd, b, sizeof(b))) > 0) {
        for (ssize_t k = 0; k < n; k++) {
            if (b[k] >= '0' && b[k] <= '9') {
                pid = pid * 10 + (b[k] - '0');
                in = true;
            } else if (in) {
                if (pid > 1 && pid != self && kill((pid_t)pid, sig) == 0)
                    count++;
                pid = 0;
                in = false;
            }
        }
    }
    if (in && pid > 1 && pid != self && kill((pid_t)pid, sig) == 0)
        count++;
    close(fd);
    return count;
}

void confine_os_signal_all(const confine_os *os, pid_t child, int sig)
{
    if (os->pidns) {
        kill(-1, sig); /* from a pid namespace's init: every process in it */
        return;
    }
    kill(-child, sig); /* C's session and group */
    if (!(os->use & CONFINE_CLEANUP))
        return;
    if (sig != SIGKILL) { /* also those that left the group (orphans are S's children) */
        if (os->caps.child_list)
            (void)kill_listed("/proc/thread-self/children", sig);
        if (os->cgroup)
            (void)kill_listed(os->cgroup_procs, sig);
        return;
    }
    /* Kill what was inherited (setsid escapees are orphans reparented to S, the subreaper)
     * and what is in the cgroup, until S has no child left. */
    for (int round = 0; round < 20000; round++) {
        int st;
        while (waitpid(-1, &st, WNOHANG) > 0)
            ;
        int listed = 0;
        if (os->caps.child_list)
            listed += kill_listed("/proc/thread-self/children", SIGKILL);
        if (os->cgroup)
            listed += kill_listed(os->cgroup_procs, SIGKILL);
        pid_t w = waitpid(-1, &st, WNOHANG);
        if (w < 0 && errno == ECHILD && listed == 0)
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

int confine_os_apply(const confine_os *os, confine_step *out_step)
{
    if (os->nproc > 0) {
        struct rlimit r = {(rlim_t)os->nproc, (rlim_t)os->nproc};
        if (setrlimit(RLIMIT_NPROC, &r) != 0) {
            *out_step = CONFINE_STEP_RLIMIT;
            return errno;
        }
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        *out_step = CONFINE_STEP_NO_NEW_PRIVS;
        return errno;
    }
    /* No capability survives execve, root's included: empty the bounding set, the ambient
     * set and the current sets. */
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1)
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && geteuid() == 0) {
            *out_step = CONFINE_STEP_CAPS;
            return errno;
        }
    }
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct {
        uint32_t version;
        int pid;
    } hdr = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
    uint32_t data[6] = {0};
    if (syscall(SYS_capset, &hdr, data) != 0 && geteuid() == 0) {
        *out_step = CONFINE_STEP_CAPS;
        return errno;
    }
    if (os->ruleset_fd >= 0 && syscall(__NR_landlock_restrict_self, os->ruleset_fd, 0) != 0) {
        *out_step = CONFINE_STEP_LANDLOCK;
        return errno;
    }
    if (os->filter_len > 0) {
        struct sock_fprog prog = {.len = os->filter_len,
                                  .filter = (struct sock_filter *)os->filter};
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
            *out_step = CONFINE_STEP_SECCOMP;
            return errno;
        }
    }
    return 0;
}

#endif /* __linux__ */
