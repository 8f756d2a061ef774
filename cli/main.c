/* adamps: parses the command line and hands over to a subcommand. */
#include <stdio.h>

#include "cli/cli.h"
#include "common/err.h"

int main(int argc, char **argv)
{
    static ps_cfg cfg;
    char err[512];
    if (ps_cfg_parse(&cfg, argc, argv, err, sizeof err)) {
        /* Every rank parses the same argv, so every rank exits here: no hang. */
        fprintf(stderr, "adamps: %s\n", err);
        return 2;
    }
    switch (cfg.cmd) {
    case PS_CMD_HELP:
        ps_cfg_usage(stdout);
        return 0;
    case PS_CMD_TRAIN:
        return ps_cli_train(&cfg, &argc, &argv);
    case PS_CMD_PREDICT:
        return ps_cli_predict(&cfg);
    case PS_CMD_SYNTH:
        return ps_cli_synth(&cfg);
    }
    return 2;
}
