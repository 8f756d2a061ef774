/* adamps synth: writes the synthetic sparse data set as libsvm text. */
#include <stdio.h>

#include "cli/cli.h"
#include "common/err.h"
#include "data/source.h"

int ps_cli_synth(const ps_cfg *cfg)
{
    int rc = ps_source_write_synth(cfg, cfg->out);
    if (rc) {
        fprintf(stderr, "adamps synth: %s\n", ps_strerror(rc));
        return rc == PS_ENOMEM ? 1 : 2;
    }
    return 0;
}
