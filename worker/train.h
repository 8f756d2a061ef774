/* Train: one worker's training loop. Loads its part of the training data,
 * and for each clock: forms the minibatch (shuffled per epoch), plans its
 * keys, pulls the rows (the next batch's pull is started before this
 * batch's compute, so it overlaps), computes the gradient and pushes it.
 * The coordinator (worker 0) also evaluates on the test set, prints
 * progress, writes metrics and saves the model. */
#ifndef PS_TRAIN_H
#define PS_TRAIN_H

#include "cli/cfg.h"
#include "common/comm.h"
#include "worker/client.h"
#include "worker/model.h"
#include "data/source.h"

typedef struct {
    const ps_cfg *cfg;
    ps_model_cfg model;          /* worker and seed already set */
    ps_source_spec spec;
    ps_client_cfg client;
    const char *config_text;     /* the run header, for model.json and checkpoints */
    int64_t resume_clock;        /* >= 0: continue from this checkpoint */
    uint32_t nservers_running;   /* for the checkpoint manifest */
} ps_worker_cfg;

/* Loads the worker's data and state, agrees with every rank that start-up
 * worked (collective over world, matching the servers'), runs until its
 * last clock is pushed, then tells the servers it is done. `workers` is the
 * communicator of the workers only (collective calls on it: the clocks per
 * epoch, and a barrier at each checkpoint). Returns 0 or
 * the first error (logged). */
int ps_worker_run(const ps_worker_cfg *wc, ps_comm *world, ps_comm *workers);

#endif
