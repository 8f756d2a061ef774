/* Train: one worker's training loop. Loads its part of the training data,
 * and for each clock: takes the rows of its batch (worker/pipeline.h: the
 * batch, keys and plan were prepared while the servers applied the push
 * two clocks back), starts the next batch's pull before this batch's
 * compute (so it overlaps), computes the gradient and pushes it.
 * The coordinator (worker 0) also evaluates on the test set, prints
 * progress, writes metrics and saves the model. */
#ifndef PS_TRAIN_H
#define PS_TRAIN_H

#include <signal.h>

#include "common/ckpt.h"
#include "common/comm.h"
#include "data/source.h"
#include "worker/batcher.h"
#include "worker/client.h"
#include "worker/metrics.h"
#include "worker/model.h"

/* Strings are borrowed for the run and never NULL; "" means off. */
typedef struct {
    ps_source_cfg source;   /* training set (this worker's part) and test set */
    ps_batcher_cfg batcher; /* batch size, shuffle, streaming */
    ps_model_cfg model;     /* worker and seed already set */
    ps_source_spec spec;
    ps_client_cfg client;
    uint64_t steps; /* clocks to run; 0: ceil(epochs * clocks per epoch) */
    double epochs;
    int64_t max_staleness; /* a pull for clock c asks for version >= c - max_staleness:
                              0 under BSP, K under SSP:K, -1 (no bound) under ASP */
    int averaged;          /* evaluate and export the temporal average, not w */
    uint64_t eval_every;   /* coordinator: evaluate every N clocks; 0 = once per epoch */
    uint64_t eval_train;   /* coordinator: train_nll on the first N samples of its part of
                              the training set (file order) at each evaluation; 0 = off */
    uint64_t eval_samples; /* coordinator: evaluations before the final one use the first N
                              test samples, so they stop dominating large runs; 0 = all */
    double progress_secs;  /* coordinator: progress line interval; 0 = every clock */
    uint64_t log_every;    /* coordinator: a train_loss_ma metrics record every N clocks; 0 off */
    int log_json;          /* progress and the final line as JSON (--log-format json) */
    int quiet;             /* warnings and errors only */
    const char *metrics;   /* coordinator: JSON lines file */
    const char *run_id;    /* the metrics header's and the run header's; "" = none */
    /* The training configuration as typed pairs, for the metrics header
     * and model.json (borrowed; nconfig may be 0). */
    const ps_metric_kv *config;
    size_t nconfig;
    const char *save_model; /* coordinator: export directory at the end */
    uint32_t hash_bits;     /* recorded in the export's model.json */
    const char *ckpt_dir;
    uint64_t ckpt_every;     /* clocks between checkpoints; 0 = none */
    uint32_t keep_ckpts;     /* complete checkpoints kept (the newest), >= 1 */
    const char *clock_log;   /* testing: "start|push worker clock" lines */
    double delay_ms;         /* testing: random sleep up to this per step */
    const char *config_text; /* the run header, for model.json and checkpoints */
    /* Checkpoints to resume from, newest first: the first one every rank
     * can read is taken (nresume 0: a fresh start). */
    const ps_ckpt_manifest *resume;
    uint32_t nresume;
    uint32_t nservers_running; /* for the checkpoint manifest */
    /* Set (by a signal handler) when this rank got a stop signal; NULL:
     * stops are off (no checkpoint directory). */
    const volatile sig_atomic_t *stop_flag;
} ps_worker_cfg;

/* Loads the worker's data and state, agrees with every rank that start-up
 * worked and on the checkpoint to resume from (collective over world,
 * matching the servers'), runs until its last clock is pushed, writes a
 * final checkpoint (with a checkpoint directory), then tells the servers it
 * is done. `workers` is the communicator of the workers only (collective
 * calls on it: the clocks per epoch; at each checkpoint boundary an agree
 * on stopping and two on the files). A stop signal (cfg->stop_flag, on any
 * rank) ends the run at a clock every worker reaches, after a checkpoint
 * there (docs/design.md, "Stopping at a clock"): then PS_ESTOPPED.
 * Returns 0, PS_ESTOPPED or the first error (logged). */
int ps_worker_run(const ps_worker_cfg *wc, ps_comm *world, ps_comm *workers);

#endif
