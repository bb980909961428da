/* confine.h: runs one command confined by the kernel, for the explorer's Bash tool. On Linux:
 * Landlock limits the files it may read and write, a network namespace and a seccomp filter on
 * socket(2) keep it off the network, resource limits bound CPU, memory, file size and the
 * number of processes, and a pid namespace (else a cgroup or a subreaper) kills every
 * descendant when the call ends, setsid(1) escapees included. The environment is always
 * rebuilt from an allowlist. confine_probe says which protections this system gives; on other
 * platforms it reports them all missing. Linux calls live in confine_linux.c only. */
#ifndef LOCO_AGENT_CONFINE_H
#define LOCO_AGENT_CONFINE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/status.h"

/* The protections a confined command gets. The scrubbed environment and the CPU, memory and
 * file-size limits are plain POSIX and always applied, so they are not listed. */
typedef enum {
    CONFINE_FILES = 1u << 0,   /* reads only the granted trees, writes only the writable ones */
    CONFINE_NETWORK = 1u << 1, /* no socket can be opened, no network reachable */
    CONFINE_PROCS = 1u << 2,   /* a limit on the number of processes (fork bombs) */
    CONFINE_CLEANUP = 1u << 3, /* every descendant dies when the call ends */
    CONFINE_ALL = 0xfu,
} confine_protection;

/* What this system offers, from confine_probe. Plain data: tests may clear bits of have to
 * run a command with fewer protections. */
typedef struct {
    unsigned have;     /* CONFINE_* bits available */
    int landlock_abi;  /* Landlock ABI version; 0: none */
    bool userns;       /* a user namespace can be created (network and pid namespaces) */
    bool netns;        /* a private network namespace */
    bool pidns;        /* a private pid namespace (its end kills every process in it) */
    bool seccomp;      /* seccomp filters (the socket filter) */
    bool cgroup;       /* a pids cgroup per call can be created (used when running as root) */
    bool child_list;   /* /proc/PID/task/TID/children, for the subreaper fallback */
    bool root;         /* running as root: RLIMIT_NPROC does not bind, a cgroup is needed */
    bool os_supported; /* built for Linux */
} confine_caps;

/* Fills *out with what this system offers. Costs a short-lived child process (the namespace
 * check) and, as root, creating and removing one cgroup. Never fails: what cannot be checked
 * counts as missing. */
void confine_probe(confine_caps *out);

/* Appends one line naming how each available protection is given ("files: Landlock ABI 7;
 * network: network namespace + seccomp socket filter; ...") to out. Buf errors only. */
loco_status confine_describe(const confine_caps *caps, buf *out);

/* Appends what is missing and why, as "files (no Landlock: Linux 5.13+ with Landlock
 * enabled), network (...)", to out. Returns the missing CONFINE_* bits (0: nothing missing,
 * out untouched). */
unsigned confine_describe_missing(const confine_caps *caps, buf *out);

/* One confined command. Paths are borrowed for the duration of confine_spawn only. */
typedef struct {
    const char *const *read_paths;  /* trees (or files) it may read and execute */
    size_t n_read;
    const char *const *write_paths; /* trees it may also create, write and delete in */
    size_t n_write;
    const char *cwd;                /* working directory (must be readable) */
    const char *home;               /* HOME and TMPDIR (should be one of write_paths) */
    const char *const *extra_env;   /* "NAME=value" added to the allowlisted environment */
    size_t n_extra_env;
    const confine_caps *caps;       /* from confine_probe (borrowed) */
    unsigned use;                   /* CONFINE_* to apply (a subset of caps->have) */
    long cpu_seconds;               /* RLIMIT_CPU per process; 0: none */
    long max_procs;                 /* processes (tasks) at once; used with CONFINE_PROCS */
    unsigned long long max_memory;  /* RLIMIT_AS per process in bytes; 0: none */
    unsigned long long max_file;    /* RLIMIT_FSIZE in bytes; 0: none */
    int out_fd;                     /* becomes stdout and stderr; stdin is /dev/null */
} confine_spec;

typedef struct confine_proc confine_proc;

/* Starts argv[0] (an absolute path) with argv under spec, in a new session. The command runs
 * under a small supervisor process that reaps its descendants and reports its exit. On
 * LOCO_OK *out is the handle (free with confine_proc_free). Errors: LOCO_ERR_IO with a message
 * naming the step that failed ("cannot start /bin/bash: ...", "Landlock: ..."): nothing is
 * left running, and a command is never started with less confinement than spec->use asks. */
loco_status confine_spawn(const confine_spec *spec, char *const argv[], confine_proc **out,
                          loco_err *err);

/* A descriptor that becomes readable when the command itself has exited (poll it); the
 * command's descendants may still run. */
int confine_proc_exit_fd(const confine_proc *p);

/* True once the command itself has exited; *out_status gets its wait status (a supervisor
 * that died abnormally reads as killed by SIGKILL). Does not block. */
bool confine_proc_exited(confine_proc *p, int *out_status);

/* Asks every process of the call to stop (SIGTERM). */
void confine_proc_terminate(confine_proc *p);

/* Kills every process of the call (SIGKILL) and waits until none is left. Idempotent. */
void confine_proc_kill(confine_proc *p);

/* Kills what is left (confine_proc_kill), reaps the supervisor and removes the cgroup.
 * confine_proc_free(NULL) does nothing. */
void confine_proc_free(confine_proc *p);

/* Creates a private scratch directory (mode 0700) under $TMPDIR or /tmp: *out_path is
 * malloc'd (caller frees, after confine_scratch_remove). */
loco_status confine_scratch_new(char **out_path, loco_err *err);

/* Removes the scratch directory path and everything in it (symlinks are not followed;
 * directories the command made unreadable are opened up first). Best effort. */
void confine_scratch_remove(const char *path);

#endif
