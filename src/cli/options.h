/* options.h: command-line options shared by the subcommands: a flag, else the environment,
 * else the .env file in the current directory, else the default. cli/ only. */
#ifndef LOCO_CLI_OPTIONS_H
#define LOCO_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/file.h"
#include "base/log.h"

typedef struct {
    dotenv env;     /* .env of the working directory (empty when absent) */
    bool env_loaded;
} cli_env;

/* Loads ./.env (or path) when present; a malformed file prints its error and returns false. */
bool cli_env_load(cli_env *e, const char *path);
void cli_env_release(cli_env *e);
/* Value of NAME from the process environment, else the .env file, else NULL. Borrowed. */
const char *cli_env_get(const cli_env *e, const char *name);

/* Matches "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i past what it used.
 * Returns true and sets *out_v on a match; a missing value prints an error and sets *bad. */
bool cli_flag_value(int argc, char **argv, int *i, const char *name, const char **out_v,
                    bool *bad);

/* Logging sink for library code: "2026-11-26T23:00:00.000Z level message" on stderr. */
void cli_log_sink(void *ctx, log_level level, const char *line);

#endif
