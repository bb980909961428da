/* membw.c: memory read bandwidth, the limit generation speed is held to (bench/README.md):
 * T threads each stream their share of a buffer much larger than the caches (on huge pages
 * where the kernel grants them), best of several passes, each pass read both plainly (the
 * hardware prefetcher alone) and with software prefetches 4 KB ahead (as the engine's kernels
 * read weights): the limit is the best the machine reads, not the easiest loop's figure.
 * Prints one JSON object per thread count.
 *   membw [MiB (1024)] [thread counts, e.g. 1,2 (default: 1 and all CPUs)]   */
#include "base/common.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/threadpool.h"

typedef uint64_t v2 __attribute__((vector_size(16)));

typedef struct {
    const uint8_t *p;
    size_t n;
    bool prefetch;
    uint64_t sum;
    pthread_barrier_t *bar;
    double t0, t1;
} part;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *reader(void *arg)
{
    part *pt = arg;
    pthread_barrier_wait(pt->bar);
    pt->t0 = now_s();
    v2 a = {0, 0}, b = a, c = a, d = a;
    for (size_t i = 0; i + 64 <= pt->n; i += 64) {
        v2 x, y, z, w;
        if (pt->prefetch)
            __builtin_prefetch(pt->p + i + 4096, 0, 3);
        memcpy(&x, pt->p + i, 16);
        memcpy(&y, pt->p + i + 16, 16);
        memcpy(&z, pt->p + i + 32, 16);
        memcpy(&w, pt->p + i + 48, 16);
        a += x, b += y, c += z, d += w;
    }
    const v2 s = a + b + c + d;
    pt->sum = s[0] + s[1];
    pt->t1 = now_s();
    return NULL;
}

static double measure(const uint8_t *buf, size_t n, int threads, bool prefetch)
{
    pthread_t th[TPOOL_MAX_THREADS];
    part parts[TPOOL_MAX_THREADS];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    const size_t share = n / (size_t)threads & ~(size_t)63;
    for (int t = 0; t < threads; t++) {
        parts[t] = (part){buf + (size_t)t * share, share, prefetch, 0, &bar, 0, 0};
        pthread_create(&th[t], NULL, reader, &parts[t]);
    }
    double t0 = 1e300, t1 = 0;
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        t0 = parts[t].t0 < t0 ? parts[t].t0 : t0;
        t1 = parts[t].t1 > t1 ? parts[t].t1 : t1;
        sum += parts[t].sum;
    }
    pthread_barrier_destroy(&bar);
    if (sum == 42)
        fprintf(stderr, "(unlikely)\n"); /* keeps the sums alive */
    return (double)share * threads / (t1 - t0) / 1e9;
}

int main(int argc, char **argv)
{
    long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 1024;
    if (mib < 64 || mib > 65536) {
        fprintf(stderr, "usage: membw [MiB 64..65536] [threads,...]\n");
        return 2;
    }
    int counts[16], nc = 0;
    if (argc > 2) {
        for (char *s = argv[2]; *s && nc < 16;) {
            char *end;
            long t = strtol(s, &end, 10);
            if (end == s || t < 1 || t > TPOOL_MAX_THREADS) {
                fprintf(stderr, "membw: bad thread count list '%s'\n", argv[2]);
                return 2;
            }
            counts[nc++] = (int)t;
            s = *end == ',' ? end + 1 : end;
        }
    } else {
        counts[nc++] = 1;
        if (tpool_default_threads() > 1)
            counts[nc++] = tpool_default_threads();
    }
    const size_t n = (size_t)mib << 20;
    uint8_t *buf = aligned_alloc((size_t)2 << 20, n); /* huge-page aligned */
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %ld MiB\n", mib);
        return 1;
    }
#ifdef MADV_HUGEPAGE
    madvise(buf, n, MADV_HUGEPAGE); /* as the engine's packed weights */
#endif
    for (size_t i = 0; i < n; i += 4096)
        memset(buf + i, (int)(i >> 12), 4096);
    for (int c = 0; c < nc; c++) {
        double best = 0;
        for (int pass = 0; pass < 5; pass++) {
            for (int pf = 0; pf < 2; pf++) {
                const double gbs = measure(buf, n, counts[c], pf == 1);
                best = gbs > best ? gbs : best;
            }
        }
        printf("{\"threads\":%d,\"read_gbs\":%.2f,\"mib\":%ld}\n", counts[c], best, mib);
        fflush(stdout);
    }
    free(buf);
    return 0;
}
