/* adamps predict: loads a saved model and scores a test set in one process
 * (no MPI); the work is in worker/predict.c. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/job.h"
#include "common/err.h"
#include "common/log.h"
#include "worker/predict.h"

int ps_cli_predict(const ps_cfg *cfg)
{
    ps_log_set_json(cfg->log_json);
    ps_predict_cfg pc;
    ps_predict_result res;
    ps_job_predict_cfg(cfg, &pc);
    int rc = ps_predict_run(&pc, &res);
    if (rc) {
        /* Already logged where found, naming the file. Bad model or data
         * files and flags that contradict the model are input errors. */
        return rc == PS_EFORMAT || rc == PS_EIO || rc == PS_ECONFIG || rc == PS_ERANGE ||
                       rc == PS_ECKPT
                   ? 2
                   : 1;
    }
    printf("loss=%.6f accuracy=%.6f samples=%zu\n", res.loss, res.accuracy, res.samples);
    return fflush(stdout) == 0 ? 0 : 1;
}
