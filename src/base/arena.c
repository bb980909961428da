/* arena.c: chunked bump allocator. */
#include "base/common.h"

#include "base/arena.h"

struct arena_chunk {
    arena_chunk *next;
    size_t used;
    size_t size;
    max_align_t align_[]; /* payload follows */
};

#define ARENA_CHUNK_MIN 8192

void arena_init(arena *a, size_t max)
{
    a->head = NULL;
    a->total = 0;
    a->max = max;
}

void arena_release(arena *a)
{
    arena_chunk *c = a->head;
    while (c) {
        arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->total = 0;
}

void *arena_alloc(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (n > a->max || a->total > a->max - n)
        return NULL;
    arena_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > ARENA_CHUNK_MIN ? n : ARENA_CHUNK_MIN;
        c = malloc(sizeof(arena_chunk) + size);
        if (!c)
            return NULL;
        c->size = size;
        c->used = 0;
        /* keep a partially used head in front when the new chunk is a one-off big block */
        if (a->head && n > ARENA_CHUNK_MIN) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    char *p = (char *)c->align_ + c->used;
    c->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_sprintf(arena *a, const char *fmt, ...)
{
    va_list ap, cp;
    va_start(ap, fmt);
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    char *p = NULL;
    if (n >= 0) {
        p = arena_alloc(a, (size_t)n + 1);
        if (p)
            vsnprintf(p, (size_t)n + 1, fmt, ap);
    }
    va_end(ap);
    return p;
}
