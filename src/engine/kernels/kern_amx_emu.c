/* kern_amx_emu.c: the AMX tile program of kern_amx.c built over a scalar emulation of the
 * tiles (KERN_AMX_EMULATE), as table "amx-emu": the unit tests run the same logic on machines
 * without AMX. Never chosen by default. Compiled with the AVX-512 flags (its epilogue is the
 * real one), so it is available on AVX-512 CPUs. */
#define KERN_AMX_EMULATE 1
#include "kern_amx.c"
