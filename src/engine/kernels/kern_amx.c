/* kern_amx.c: placeholder. */
#include "base/common.h"

#include "engine/kernels/kern_int.h"

bool kern_amx_built(void)
{
    return false;
}

bool kern_amx_fill(kern_table *kt)
{
    LOCO_UNUSED(kt);
    return false;
}
