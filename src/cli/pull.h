/* pull.h: `loco pull` as a function the commands share (cmd_pull.c, and `loco serve --hf`):
 * net/hub.h's pull with the progress display, Ctrl-C handling and the messages of the
 * command line. cli/ only. */
#ifndef LOCO_CLI_PULL_H
#define LOCO_CLI_PULL_H

#include <stdbool.h>

#include "cli/options.h"

typedef struct {
    const char *cmd;   /* message prefix: "loco pull", "loco serve" */
    const char *dir;   /* the model store; NULL: models_default_dir ($LOCO_MODELS, ...) */
    bool quiet;        /* no progress display (errors still print) */
    bool ensure;       /* look in the store first: no network when the model is there */
} cli_pull_opts;

/* Pulls target (REPO[:QUANT], URL, or NULL/"" for the default repository) into the store.
 * HF_ENDPOINT, HF_TOKEN (else HUGGING_FACE_HUB_TOKEN, else the token file of
 * `huggingface-cli login`) come from env. On success *out_path (may be NULL) gets the model's
 * path (malloc'd). Returns the exit code: 0 done, 1 failed (the error printed), 130
 * interrupted by SIGINT/SIGTERM (the partial download kept). */
int cli_pull(const cli_pull_opts *o, const char *target, const cli_env *env, char **out_path);

#endif
