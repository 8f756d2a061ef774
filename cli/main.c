/* adamps: parses the command line and hands over to a subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/fpu.h"
#include "common/err.h"

/* Every rank of a job parses the same argv, so a bad flag would be reported
 * once per rank. Before MPI is up the launcher's environment says which rank
 * this is (Open MPI, PMIx, Slurm); only rank 0, or a process started without
 * a launcher, prints. */
static int first_rank(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID",
                                       "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            return strcmp(v, "0") == 0;
        }
    }
    return 1;
}

int main(int argc, char **argv)
{
    static ps_cfg cfg;
    char err[512];
    /* Before any float math: Adam's decaying state must not run at
     * subnormal speed on any rank (cli/fpu.h). */
    (void)ps_fpu_flush_denormals();
    if (ps_cfg_parse(&cfg, argc, argv, err, sizeof err)) {
        /* Every rank parses the same argv, so every rank exits here: no hang. */
        if (first_rank()) {
            fprintf(stderr, "adamps: %s\n", err);
        }
        return 2;
    }
    switch (cfg.cmd) {
    case PS_CMD_HELP:
        ps_cfg_usage(stdout);
        return 0;
    case PS_CMD_VERSION:
        printf("adamps %s\n", PS_VERSION);
        return fflush(stdout) == 0 ? 0 : 1;
    case PS_CMD_TRAIN:
        return ps_cli_train(&cfg, &argc, &argv);
    case PS_CMD_PREDICT:
        return ps_cli_predict(&cfg);
    case PS_CMD_SYNTH:
        return ps_cli_synth(&cfg);
    }
    return 2;
}
