/* cli.h: the loco command table. Each subcommand lives in cmd_<name>.c with the signature
 * below and one row in the table in cli.c; to add a command, write the file, declare its
 * function here and add the row. Subcommands call library modules, never each other. */
#ifndef LOCO_CLI_H
#define LOCO_CLI_H

int cli_main(int argc, char **argv);

/* Each returns the process exit code: 0 ok, 1 failure, 2 usage error. argv[0] is the
 * subcommand name. */
int cmd_serve(int argc, char **argv);
int cmd_setup(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_ask(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_pull(int argc, char **argv);
/* `loco model synth` (cmd_model_synth.c), dispatched by cmd_model. */
int cmd_model_synth(int argc, char **argv);
/* `loco model list` (cmd_model_list.c), dispatched by cmd_model. */
int cmd_model_list(int argc, char **argv);

#endif
