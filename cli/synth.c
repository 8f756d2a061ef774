/* adamps synth: writes the synthetic sparse data set as libsvm text. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/job.h"
#include "common/err.h"
#include "data/synth.h"

int ps_cli_synth(const ps_cfg *cfg)
{
    ps_synth_cfg sc;
    ps_job_synth_cfg(cfg, &sc);
    int rc = ps_synth_check(&sc);
    if (rc == 0) {
        rc = ps_synth_write_libsvm(&sc, cfg->out);
    }
    if (rc) {
        fprintf(stderr, "adamps synth: %s\n", ps_strerror(rc));
        return rc == PS_ENOMEM ? 1 : 2;
    }
    return 0;
}
