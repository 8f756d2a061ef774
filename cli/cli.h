/* The adamps subcommands, called by cli/main.c after argv is parsed. Each
 * returns the process exit status: 0 success, 2 bad usage or input found
 * before work started, 1 a failure during the run. */
#ifndef PS_CLI_H
#define PS_CLI_H

#include "cli/cfg.h"

int ps_cli_train(const ps_cfg *cfg, int *argc, char ***argv);
int ps_cli_predict(const ps_cfg *cfg);
int ps_cli_synth(const ps_cfg *cfg);

#endif
