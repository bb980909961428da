/* os.h: the few calls that differ between the systems loco builds on (Linux, macOS, the other
 * POSIX systems), each with a portable fallback, so the rest of the code is C11 + POSIX. Part
 * of base/. (The thread pool's futex wrapper lives with it in engine/threadpool.c.) */
#ifndef LOCO_OS_H
#define LOCO_OS_H

#include <stdbool.h>
#include <stddef.h>

/* pipe(2) with both ends close-on-exec: pipe2(O_CLOEXEC) where it exists, else pipe + fcntl
 * (then a fork on another thread in between may inherit the ends until it execs). 0 or -1 with
 * errno. */
int os_pipe_cloexec(int fds[2]);

/* Fills p with n bytes from the kernel's random source (getrandom, else getentropy in 256-byte
 * steps, else /dev/urandom). False when none answered. */
bool os_random_bytes(void *p, size_t n);

/* The last c in s[0..n), or NULL (memrchr where the C library has it). */
const void *os_memrchr(const void *s, int c, size_t n);

#endif
