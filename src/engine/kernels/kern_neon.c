/* kern_neon.c: placeholder. */
#include "base/common.h"

#include "engine/kernels/kern_int.h"

bool kern_neon_built(void)
{
    return false;
}

bool kern_neon_fill(kern_table *kt)
{
    LOCO_UNUSED(kt);
    return false;
}
