/* cmd_serve.c: loco serve (placeholder until the gateway lands). */
#include "base/common.h"

#include "cli/cli.h"

int cmd_serve(int argc, char **argv)
{
    LOCO_UNUSED(argc);
    LOCO_UNUSED(argv);
    fprintf(stderr, "loco serve: not built yet\n");
    return 1;
}
