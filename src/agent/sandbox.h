/* sandbox.h: where the explorer's tools may look and write. Every path is resolved (realpath of
 * the longest existing prefix, so ".." and symlinks are followed before the check) and must lie
 * inside the repository root or the output directory; writes only inside the output directory
 * unless allow_write. Bash cannot be judged by its paths: the kernel confines it (confine.h),
 * with what confine_probe found when the sandbox was made. */
#ifndef LOCO_AGENT_SANDBOX_H
#define LOCO_AGENT_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/confine.h"
#include "base/status.h"

typedef struct {
    char *repo_root;        /* absolute, resolved (owned) */
    char *out_dir;          /* absolute, resolved, or NULL (owned) */
    bool allow_write;       /* Write/Edit anywhere inside repo_root too */
    bool allow_bash_writes; /* no lexical policy; Bash may write where Write may (never the
                               network) */
    bool unsafe_bash;       /* run Bash even when the kernel lacks protections (--unsafe-bash) */
    confine_caps bash_caps; /* what this system confines (probed by agent_sandbox_init; tests
                               clear bits to run with less) */
    long bash_max_procs;    /* processes one Bash call may have at once; 0: 512 */
} agent_sandbox;

/* Resolves repo_root (must exist and be a directory) and out_dir (created when missing; may be
 * NULL), and probes what the kernel can confine (bash_caps). unsafe_bash starts false. Caller
 * releases with agent_sandbox_release. */
loco_status agent_sandbox_init(agent_sandbox *sb, const char *repo_root, const char *out_dir,
                               bool allow_write, bool allow_bash_writes, loco_err *err);
void agent_sandbox_release(agent_sandbox *sb);

typedef enum { SANDBOX_READ = 0, SANDBOX_WRITE } sandbox_access;

/* Resolves path (absolute, or relative to repo_root) for the given access. On success *out_path
 * is a malloc'd absolute resolved path (the caller frees it). Refusals are LOCO_ERR_AUTH with a
 * message the model can read ("path /etc/passwd is outside the repository /repo"). The file
 * itself need not exist (for writes). */
loco_status agent_sandbox_resolve(const agent_sandbox *sb, const char *path, sandbox_access access,
                                  char **out_path, loco_err *err);

#endif
