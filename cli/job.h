/* Job: from the parsed flags (cli/cfg.h) to the small config each module
 * takes, so nothing below cli/ sees a ps_cfg: the data source, the
 * batcher, the model, the worker's training loop, the server and predict;
 * and the job's shape: whether the world leaves a worker and which ranks
 * serve. Everything here is pure (no MPI, no I/O), so every rank computes
 * the same answer. Strings in the configs built here are borrowed from the
 * ps_cfg, which must outlive them. */
#ifndef PS_JOB_H
#define PS_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "cli/budget.h"
#include "cli/cfg.h"
#include "data/source.h"
#include "data/synth.h"
#include "server/server.h"
#include "worker/batcher.h"
#include "worker/model.h"
#include "worker/predict.h"
#include "worker/train.h"

/* Servers are spread over nodes round-robin (one per node before any node
 * gets a second), taking the highest rank of each node first, so rank 0
 * stays a worker (the coordinator) whenever a worker is left. OUT
 * is_server[r] (size entries) = 1 for the nservers chosen ranks, else 0.
 * node_of_rank[r] in [0, nnodes). Returns 0, or PS_EINVAL when nservers is
 * not in [1, size). */
int ps_job_assign_roles(int size, int nservers, const int *node_of_rank, int nnodes,
                        int *is_server);

/* Checks what needs the world size: servers >= 1 and at least one worker
 * left. The count checked is cfg->servers, or nservers (the caller's
 * one-per-node choice) when cfg->servers is 0. Returns 0 or PS_ECONFIG with
 * a reason naming --servers in err (errlen bytes, may be NULL). */
int ps_job_check_world(const ps_cfg *cfg, int world_size, int nservers, char *err, size_t errlen);

/* The data source: --dataset/--data-dir, --train/--test in --format, or the
 * --synthetic generator (seeded by --seed); limits, hashing, features. */
void ps_job_source_cfg(const ps_cfg *cfg, ps_source_cfg *out);
/* The synthetic generator's settings (--synthetic's keys, --seed). */
void ps_job_synth_cfg(const ps_cfg *cfg, ps_synth_cfg *out);
/* Batches: --batch, --shuffle, --seed, --stream. */
void ps_job_batcher_cfg(const ps_cfg *cfg, ps_batcher_cfg *out);
/* The model for data of shape spec on worker `worker` (0 on servers):
 * --model, --hidden, --activation, --conv (cnn), --latent (vae), dropout,
 * --l2, --init, --seed; buffers for the larger
 * of --batch and eval_batch samples. */
void ps_job_model_cfg(const ps_cfg *cfg, const ps_source_spec *spec, uint32_t worker,
                      uint32_t eval_batch, ps_model_cfg *out);
/* The worker's training loop: everything but model, spec, client,
 * config_text, resume_clock and nservers_running, which the caller fills
 * (they need the world and the data). */
void ps_job_worker_cfg(const ps_cfg *cfg, ps_worker_cfg *out);
/* The server: the update rule's hyper-parameters in force, --sparse-update,
 * --temporal-averaging, --seed, --shard, --consistency, --nonfinite,
 * --checkpoint-dir; store.tables, store.ntables, store.server,
 * store.nservers, nworkers, worker_ranks, config_text and the resume
 * fields are the caller's. */
void ps_job_server_cfg(const ps_cfg *cfg, ps_server_cfg *out);
/* The memory plan's view of the job (cli/budget.h): the tables (borrowed),
 * --shard, the update rule's state count, --temporal-averaging,
 * --sparse-update, --batch, --stream, --hash-bits, --train, the model
 * config and the data's spec (copied). */
void ps_job_budget(const ps_cfg *cfg, const ps_source_spec *spec, const ps_model_cfg *model,
                   const ps_table_desc *tables, uint32_t ntables, uint32_t nservers,
                   uint32_t nworkers, uint32_t eval_batch, ps_budget_job *out);
/* The largest first table a libsvm scan may find ids for before the plan
 * is known: rows that nservers servers of room bytes each (0: no bound)
 * could hold with the narrowest such table (2 classes, or --hidden's first
 * layer), under --optimizer's state, averaging and lazy updates. */
uint64_t ps_job_scan_limit(const ps_cfg *cfg, uint32_t nservers, uint64_t room);
/* `adamps predict`: --model DIR, the test set, --out, --proba, --quiet. */
void ps_job_predict_cfg(const ps_cfg *cfg, ps_predict_cfg *out);

/* The configuration as typed pairs (ps_cfg_pair, ps_cfg_pair_kind) for
 * the metrics header and model.json: integers and reals as numbers (an
 * integer past int64 stays text), booleans as booleans, the rest as
 * strings. The pairs
 * point into out's own text, so out must outlive them. */
#define PS_JOB_MAX_PAIRS 128
typedef struct {
    ps_metric_kv kv[PS_JOB_MAX_PAIRS];
    char text[PS_JOB_MAX_PAIRS][PS_CFG_PATH + 64];
    size_t n;
} ps_job_pairs;
void ps_job_config_pairs(const ps_cfg *cfg, ps_job_pairs *out);

/* 1 when OpenBLAS's threads in each of the node's ranks oversubscribe its
 * cores (threads > 1 and threads * ranks > cores): each sgemm then fights
 * the other ranks' for cores. One thread per rank is never flagged (ranks
 * beyond cores are the launcher's choice, and the waits nap for them).
 * Writes the advice into msg (len bytes) naming the counts and the thread
 * count that fits. Pure. */
int ps_job_blas_oversubscribed(int threads, int ranks, int cores, char *msg, size_t len);

#endif
