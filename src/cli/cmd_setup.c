/* cmd_setup.c: loco setup (placeholder). */
#include "base/common.h"

#include "cli/cli.h"

int cmd_setup(int argc, char **argv)
{
    LOCO_UNUSED(argc);
    LOCO_UNUSED(argv);
    return 1;
}
