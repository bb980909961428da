/* confine_other.c: the OS layer of confine.h for systems other than Linux: plain fork(2), the
 * command's process group killed at the end, and a probe that reports every kernel protection
 * missing (so Bash is refused there unless the user opts out with --unsafe-bash). */
#ifndef __linux__

#include "base/common.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/confine_int.h"

struct confine_os {
    int unused;
};

void confine_os_probe(confine_caps *c)
{
    c->os_supported = false;
    c->root = geteuid() == 0;
}

loco_status confine_os_prepare(const confine_spec *spec, confine_os **out, loco_err *err)
{
    (void)spec;
    *out = calloc(1, sizeof(**out));
    return *out ? LOCO_OK : loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
}

void confine_os_free(confine_os *os)
{
    free(os);
}

bool confine_os_path_usable(const confine_os *os, const confine_spec *spec, const char *dir)
{
    (void)os;
    (void)spec;
    (void)dir;
    return true;
}

pid_t confine_os_fork_supervisor(confine_os *os)
{
    (void)os;
    return fork();
}

loco_status confine_os_place(confine_os *os, pid_t pid, loco_err *err)
{
    (void)os;
    (void)pid;
    (void)err;
    return LOCO_OK;
}

bool confine_os_kills_with_supervisor(const confine_os *os)
{
    (void)os;
    return false;
}

int confine_os_parent_death_signal(const confine_os *os)
{
    (void)os;
    return SIGUSR1;
}

int confine_os_supervisor_setup(const confine_os *os)
{
    (void)os;
    return 0;
}

pid_t confine_os_fork_child(const confine_os *os)
{
    (void)os;
    return fork();
}

void confine_os_signal_all(const confine_os *os, pid_t child, int sig)
{
    (void)os;
    kill(-child, sig);
}

int confine_os_apply(const confine_os *os, confine_step *out_step)
{
    (void)os;
    (void)out_step;
    return 0;
}

#endif /* !__linux__ */
