/* confine_int.h: between confine.c (portable: the supervisor process, the environment, scratch
 * directories, descriptions) and its OS layer: confine_linux.c (namespaces, Landlock, seccomp,
 * cgroups) or confine_other.c (plain fork). For src/agent/confine*.c only.
 *
 * A confined call is three processes: loco; the supervisor S (a fork of loco that never
 * execs: it reaps, reports the command's exit status and kills what is left on request); the
 * command C (a fork of S that applies the limits and execs). Code that runs in S and C after
 * the fork may use async-signal-safe calls only: loco is multithreaded. */
#ifndef LOCO_AGENT_CONFINE_INT_H
#define LOCO_AGENT_CONFINE_INT_H

#include "agent/confine.h"

/* What the OS layer prepared for one call (opaque to confine.c). */
typedef struct confine_os confine_os;

/* The steps of C's setup, reported to loco when one fails. */
typedef enum {
    CONFINE_STEP_SUPERVISOR = 1, /* S could not start C */
    CONFINE_STEP_SESSION,
    CONFINE_STEP_STDIO,
    CONFINE_STEP_CHDIR,
    CONFINE_STEP_RLIMIT,
    CONFINE_STEP_NO_NEW_PRIVS,
    CONFINE_STEP_CAPS,
    CONFINE_STEP_LANDLOCK,
    CONFINE_STEP_SECCOMP,
    CONFINE_STEP_EXEC,
} confine_step;

void confine_os_probe(confine_caps *out);

/* In loco: everything that may allocate or fail with a message (Landlock rules, the seccomp
 * program, the cgroup, the namespace flags). *out freed with confine_os_free. */
loco_status confine_os_prepare(const confine_spec *spec, confine_os **out, loco_err *err);
/* Closes what prepare opened and removes the cgroup (after every process is gone). */
void confine_os_free(confine_os *os);

/* True when the command may execute programs in directory dir (PATH keeps only those: bash
 * stops at the first PATH match even when the sandbox refuses to run it). */
bool confine_os_path_usable(const confine_os *os, const confine_spec *spec, const char *dir);

/* Starts S like fork(2) (in new namespaces where prepared): S's pid in loco, 0 in S, -1 with
 * errno on failure. */
pid_t confine_os_fork_supervisor(confine_os *os);
/* In loco, before S starts C: user/group id maps, the cgroup. */
loco_status confine_os_place(confine_os *os, pid_t pid, loco_err *err);
/* True when killing S kills every process of the call (S is a pid namespace's init). */
bool confine_os_kills_with_supervisor(const confine_os *os);
/* The signal S gets when the loco thread that started it dies. */
int confine_os_parent_death_signal(const confine_os *os);

/* In S (async-signal-safe): become the reaper of orphans where needed. 0 or an errno. */
int confine_os_supervisor_setup(const confine_os *os);
/* In S: starts C like fork(2) (async-signal-safe). */
pid_t confine_os_fork_child(const confine_os *os);
/* In S: sends sig to every process of the call; with SIGKILL also waits until every
 * descendant is gone (reaping them). child is C's pid (also its session and group id). */
void confine_os_signal_all(const confine_os *os, pid_t child, int sig);

/* In C, just before execve (async-signal-safe): the process limit, no new privileges, no
 * capabilities, Landlock, seccomp. 0, or an errno with *out_step set. */
int confine_os_apply(const confine_os *os, confine_step *out_step);

#endif
