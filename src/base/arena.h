/* arena.h: bump allocator for one lifetime (a request, an agent turn, an eval sample),
 * freed in one call. Allocation failure returns NULL; the arena stays usable. */
#ifndef LOCO_ARENA_H
#define LOCO_ARENA_H

#include <stddef.h>

typedef struct arena_chunk arena_chunk;

typedef struct {
    arena_chunk *head;
    size_t total;  /* bytes handed out so far */
    size_t max;    /* allocations past this total fail (NULL) */
} arena;

void arena_init(arena *a, size_t max);
/* Frees every allocation made from a; a is reusable afterwards. */
void arena_release(arena *a);
/* Zeroed, 16-byte aligned memory owned by the arena; NULL on failure or past max. */
void *arena_alloc(arena *a, size_t n);
/* Copies of strings owned by the arena (NUL-terminated); NULL on failure. */
char *arena_strdup(arena *a, const char *s);
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_sprintf(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
