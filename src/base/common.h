/* common.h: the system headers every loco file uses, then banned.h.
 * Include it first in every .c file so the banned calls cannot come back. */
#ifndef LOCO_COMMON_H
#define LOCO_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/banned.h"

#define LOCO_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LOCO_UNUSED(x) ((void)(x))

/* Broken invariant (a bug, never bad input): print file:line and abort. */
#define LOCO_ASSERT(cond)                                                     \
    do {                                                                      \
        if (!(cond))                                                          \
            loco_assert_fail(__FILE__, __LINE__, #cond);                      \
    } while (0)

_Noreturn void loco_assert_fail(const char *file, int line, const char *expr);

#endif
