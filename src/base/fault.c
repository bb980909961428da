/* fault.c: failure injection for test builds (-DLOCO_FAULT=ON, see fault.h). The link wraps
 * (-Wl,--wrap=NAME) send loco's calls of the allocation and I/O functions here; each call is
 * counted per kind and the chosen one fails. Not jansson's own allocations: jansson 2.14
 * crashes when one fails in the middle of parsing (lex_save ignores a failed append and a later
 * unget reads past the buffer), so failing them would test jansson, not loco. Compiled to
 * nothing in every other build. */
#include "base/common.h"

#include "base/fault.h"

#ifdef LOCO_FAULT

#include <execinfo.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static atomic_long fault_counts[FAULT_KINDS];
static atomic_long fault_fail_at[FAULT_KINDS]; /* 0: off */
static atomic_bool fault_did_fire;
static atomic_bool fault_armed = true; /* false until fault_arm_point with LOCO_FAULT_ARM */
static const char *fault_report_path;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
ssize_t __real_read(int fd, void *p, size_t n);
ssize_t __real_pread(int fd, void *p, size_t n, off_t off);
ssize_t __real_recv(int fd, void *p, size_t n, int flags);
size_t __real_fread(void *p, size_t size, size_t n, FILE *f);
void *__real_mmap(void *addr, size_t n, int prot, int flags, int fd, off_t off);
char *__real_fgets(char *s, int n, FILE *f);
ssize_t __real_write(int fd, const void *p, size_t n);
ssize_t __real_send(int fd, const void *p, size_t n, int flags);
ssize_t __real_sendmsg(int fd, const struct msghdr *m, int flags);
size_t __real_fwrite(const void *p, size_t size, size_t n, FILE *f);

/* Counts one call of kind; true when it is the one to fail. */
static bool fault_now(fault_kind kind)
{
    if (!atomic_load_explicit(&fault_armed, memory_order_relaxed))
        return false;
    long n = atomic_fetch_add(&fault_counts[kind], 1) + 1;
    if (n != atomic_load(&fault_fail_at[kind]))
        return false;
    atomic_store(&fault_did_fire, true);
    if (getenv("LOCO_FAULT_BACKTRACE")) { /* debugging: where the failure was injected */
        void *frames[32];
        backtrace_symbols_fd(frames, backtrace(frames, 32), 2);
    }
    return true;
}

void fault_set(fault_kind kind, long n)
{
    for (int k = 0; k < FAULT_KINDS; k++)
        atomic_store(&fault_counts[k], 0);
    atomic_store(&fault_fail_at[kind], n > 0 ? n : 0);
    atomic_store(&fault_did_fire, false);
    atomic_store(&fault_armed, true);
}

long fault_count(fault_kind kind)
{
    return atomic_load(&fault_counts[kind]);
}

bool fault_fired(void)
{
    return atomic_load(&fault_did_fire);
}

void fault_suspend(void)
{
    atomic_store(&fault_armed, false);
}

void fault_arm_point(void)
{
    atomic_store(&fault_armed, true);
}

/* ---- the wrapped functions ---- */

void *__wrap_malloc(size_t n);
void *__wrap_malloc(size_t n)
{
    if (fault_now(FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size)
{
    if (fault_now(FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n)
{
    if (fault_now(FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s);
char *__wrap_strdup(const char *s)
{
    if (fault_now(FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n);
char *__wrap_strndup(const char *s, size_t n)
{
    if (fault_now(FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strndup(s, n);
}

ssize_t __wrap_read(int fd, void *p, size_t n);
ssize_t __wrap_read(int fd, void *p, size_t n)
{
    if (fault_now(FAULT_READ)) {
        errno = EIO;
        return -1;
    }
    return __real_read(fd, p, n);
}

ssize_t __wrap_pread(int fd, void *p, size_t n, off_t off);
ssize_t __wrap_pread(int fd, void *p, size_t n, off_t off)
{
    if (fault_now(FAULT_READ)) {
        errno = EIO;
        return -1;
    }
    return __real_pread(fd, p, n, off);
}

ssize_t __wrap_recv(int fd, void *p, size_t n, int flags);
ssize_t __wrap_recv(int fd, void *p, size_t n, int flags)
{
    /* a peek only looks: counting it would make the count depend on timing */
    if (!(flags & MSG_PEEK) && fault_now(FAULT_READ)) {
        errno = ECONNRESET;
        return -1;
    }
    return __real_recv(fd, p, n, flags);
}

size_t __wrap_fread(void *p, size_t size, size_t n, FILE *f);
size_t __wrap_fread(void *p, size_t size, size_t n, FILE *f)
{
    if (fault_now(FAULT_READ)) {
        errno = EIO;
        return 0;
    }
    return __real_fread(p, size, n, f);
}

/* A mapped file is read through its mapping: mapping it counts as a read. */
void *__wrap_mmap(void *addr, size_t n, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *addr, size_t n, int prot, int flags, int fd, off_t off)
{
    if (fd >= 0 && fault_now(FAULT_READ)) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return __real_mmap(addr, n, prot, flags, fd, off);
}

char *__wrap_fgets(char *s, int n, FILE *f);
char *__wrap_fgets(char *s, int n, FILE *f)
{
    if (fault_now(FAULT_READ)) {
        errno = EIO;
        return NULL;
    }
    return __real_fgets(s, n, f);
}

ssize_t __wrap_write(int fd, const void *p, size_t n);
ssize_t __wrap_write(int fd, const void *p, size_t n)
{
    if (fault_now(FAULT_WRITE)) {
        errno = EIO;
        return -1;
    }
    return __real_write(fd, p, n);
}

ssize_t __wrap_send(int fd, const void *p, size_t n, int flags);
ssize_t __wrap_send(int fd, const void *p, size_t n, int flags)
{
    if (fault_now(FAULT_WRITE)) {
        errno = EPIPE;
        return -1;
    }
    return __real_send(fd, p, n, flags);
}

ssize_t __wrap_sendmsg(int fd, const struct msghdr *m, int flags);
ssize_t __wrap_sendmsg(int fd, const struct msghdr *m, int flags)
{
    if (fault_now(FAULT_WRITE)) {
        errno = EPIPE;
        return -1;
    }
    return __real_sendmsg(fd, m, flags);
}

size_t __wrap_fwrite(const void *p, size_t size, size_t n, FILE *f);
size_t __wrap_fwrite(const void *p, size_t size, size_t n, FILE *f)
{
    if (fault_now(FAULT_WRITE)) {
        errno = EIO;
        return 0;
    }
    return __real_fwrite(p, size, n, f);
}

/* ---- configuration from the environment (for runs of the real binary) ---- */

static void fault_write_report(void)
{
    if (!fault_report_path)
        return;
    int fd = open(fault_report_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    char line[160];
    int k = snprintf(line, sizeof(line), "alloc %ld\nread %ld\nwrite %ld\nfired %d\n",
                     fault_count(FAULT_ALLOC), fault_count(FAULT_READ), fault_count(FAULT_WRITE),
                     fault_fired() ? 1 : 0);
    (void)__real_write(fd, line, (size_t)k);
    close(fd);
}

static long fault_env_long(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    return end && !*end && n > 0 ? n : 0;
}

__attribute__((constructor)) static void fault_init(void)
{
    static const char *const names[FAULT_KINDS] = {"LOCO_FAULT_ALLOC", "LOCO_FAULT_READ",
                                                   "LOCO_FAULT_WRITE"};
    for (int k = 0; k < FAULT_KINDS; k++)
        atomic_store(&fault_fail_at[k], fault_env_long(names[k]));
    const char *arm = getenv("LOCO_FAULT_ARM");
    if (arm && !strcmp(arm, "request"))
        atomic_store(&fault_armed, false);
    fault_report_path = getenv("LOCO_FAULT_REPORT");
    if (fault_report_path && *fault_report_path)
        atexit(fault_write_report);
}

#endif
