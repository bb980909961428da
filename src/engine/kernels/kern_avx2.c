/* kern_avx2.c: placeholder. */
#include "base/common.h"

#include "engine/kernels/kern_int.h"

bool kern_avx2_built(void)
{
    return false;
}

bool kern_avx2_fill(kern_table *kt)
{
    LOCO_UNUSED(kt);
    return false;
}
