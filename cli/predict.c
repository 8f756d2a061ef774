/* adamps predict: loads a saved model and scores a test set. */
#include <stdio.h>

#include "cli/cli.h"

int ps_cli_predict(const ps_cfg *cfg)
{
    (void)cfg;
    fprintf(stderr, "adamps predict: not built yet\n");
    return 2;
}
