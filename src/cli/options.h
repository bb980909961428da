/* options.h: command-line options shared by the subcommands: a flag, else the environment,
 * else the .env file in the current directory, else the default. cli/ only. */
#ifndef LOCO_CLI_OPTIONS_H
#define LOCO_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
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

/* Matches "--name VALUE" or "--name=VALUE" at argv[*i] (or one of name's aliases, see
 * cli_flag_aliases); advances *i past what it used. Returns true and sets *out_v on a match;
 * a missing value prints an error and sets *bad. */
bool cli_flag_value(int argc, char **argv, int *i, const char *name, const char **out_v,
                    bool *bad);
/* True when arg is the switch name (a flag without a value) or one of its aliases. */
bool cli_flag(const char *arg, const char *name);
/* The other spellings every command accepts for the flag name (llama.cpp's short and long
 * forms: -m for --model, -c and --ctx-size for --ctx, ...): a NULL-terminated list of static
 * strings, never NULL (empty when it has none). */
const char *const *cli_flag_aliases(const char *name);

/* Reads the file path into out (appending, limited by out->max); "-" reads standard input
 * to its end. Errors name the file ("standard input" for "-"). */
loco_status cli_read_input(const char *path, buf *out, loco_err *err);

/* The context a model was trained for: <arch>.context_length of the GGUF file at path, else
 * (a file without the key) the model card's 40960 tokens for LocoOperator; 0 when unknown or
 * the file cannot be read. */
long cli_model_trained_ctx(const char *path);
/* Prints once per process a warning on stderr ("<cmd>: warning: ...") when ctx exceeds the
 * context the model at path was trained for. Thread-safe. */
void cli_warn_ctx(const char *cmd, const char *path, long ctx);

/* Remembers how loco was started (argv[0]), once, before any thread: cli_data_dir uses it. */
void cli_set_argv0(const char *argv0);
/* Where loco's shared data (data/queries as queries/) is installed, into out (size n):
 * $LOCO_DATA_DIR, else PREFIX/share/loco beside the running PREFIX/bin/loco when that folder
 * exists, else the prefix it was built for (CMAKE_INSTALL_PREFIX/share/loco). Returns out. */
const char *cli_data_dir(char *out, size_t n);

/* Logging sink for library code: "2026-11-26T23:00:00.000Z level message" on stderr. */
void cli_log_sink(void *ctx, log_level level, const char *line);

#endif
