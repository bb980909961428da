/* fault.h: failure injection for tests, in the style of curl's torture tests and sqlite's
 * OOM tests. Only a build configured with -DLOCO_FAULT=ON has it (the ASan+UBSan test
 * build): there the link wraps malloc, calloc, realloc, strdup, strndup (kind ALLOC), read,
 * pread, recv (not peeks), fread, fgets, mmap of a file (READ) and write, send, sendmsg,
 * fwrite (WRITE) of loco's own code (not jansson's, which crashes on a failed allocation),
 * and one call of a kind can be made to fail: allocations return NULL, reads and writes
 * -1 with EIO (mmap MAP_FAILED). In every other build the calls below do nothing. Part of base/;
 * the one place outside cli/ with process-wide mutable state, allowed because only test
 * builds have it. */
#ifndef LOCO_FAULT_H
#define LOCO_FAULT_H

#include <stdbool.h>

typedef enum { FAULT_ALLOC = 0, FAULT_READ, FAULT_WRITE, FAULT_KINDS } fault_kind;

#ifdef LOCO_FAULT
/* The nth call of kind from now on fails (n >= 1); 0 turns it off. Counting restarts. */
void fault_set(fault_kind kind, long n);
/* Calls of kind counted since the last fault_set (or since the counting was armed). */
long fault_count(fault_kind kind);
/* Whether an injected failure happened since the last fault_set. */
bool fault_fired(void);
/* Stops counting and failing until the next fault_set (a test's own bookkeeping after the
 * code under test ran). */
void fault_suspend(void);
/* Where counting may start: with LOCO_FAULT_ARM=request in the environment, the failures
 * asked for by LOCO_FAULT_ALLOC / LOCO_FAULT_READ / LOCO_FAULT_WRITE=N count from the first
 * time a program passes here (the HTTP server starting to read its first request) instead
 * of from its start. LOCO_FAULT_REPORT=FILE writes the counts there at exit. */
void fault_arm_point(void);
#define LOCO_FAULT_BUILD 1
#else
static inline void fault_set(fault_kind kind, long n)
{
    (void)kind;
    (void)n;
}
static inline long fault_count(fault_kind kind)
{
    (void)kind;
    return 0;
}
static inline bool fault_fired(void)
{
    return false;
}
static inline void fault_suspend(void) {}
#define fault_arm_point() ((void)0)
#define LOCO_FAULT_BUILD 0
#endif

#endif
