#include "cli/job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

int ps_job_assign_roles(int size, int nservers, const int *node_of_rank, int nnodes, int *is_server)
{
    if (nservers < 1 || nservers >= size || nnodes < 1) {
        return PS_EINVAL;
    }
    memset(is_server, 0, sizeof(int) * (size_t)size);
    int chosen = 0;
    /* Each pass gives every node with a rank left one more server: the
     * highest unchosen rank on it. */
    while (chosen < nservers) {
        for (int node = 0; node < nnodes && chosen < nservers; node++) {
            for (int r = size - 1; r >= 0; r--) {
                if (node_of_rank[r] == node && !is_server[r]) {
                    is_server[r] = 1;
                    chosen++;
                    break;
                }
            }
        }
    }
    return 0;
}

int ps_job_check_world(const ps_cfg *cfg, int world_size, int nservers, char *err, size_t errlen)
{
    int n = cfg->servers > 0 ? (int)cfg->servers : nservers;
    char why[256] = "";
    if (world_size < 2) {
        snprintf(why, sizeof why,
                 "adamps train is one MPI job of servers and workers: run it under mpirun -np N "
                 "(N >= 2), e.g. mpirun -np 3 adamps train ...");
    } else if (n < 1) {
        snprintf(why, sizeof why, "--servers: %d servers; need at least 1", n);
    } else if (n >= world_size && cfg->servers > 0) {
        snprintf(why, sizeof why,
                 "--servers %d leaves no worker: the job has %d ranks (need at least servers + 1)",
                 n, world_size);
    } else if (n >= world_size) {
        snprintf(why, sizeof why,
                 "--servers (one per node: %d) leaves no worker: the job has %d ranks (need at "
                 "least servers + 1; give --servers)",
                 n, world_size);
    }
    if (err && errlen > 0) {
        snprintf(err, errlen, "%s", why);
    }
    return why[0] ? PS_ECONFIG : 0;
}

void ps_job_synth_cfg(const ps_cfg *cfg, ps_synth_cfg *out)
{
    *out = cfg->synth;
    out->seed = cfg->seed;
}

void ps_job_source_cfg(const ps_cfg *cfg, ps_source_cfg *out)
{
    memset(out, 0, sizeof *out);
    out->dataset = cfg->dataset;
    out->data_dir = cfg->data_dir;
    out->train = cfg->train;
    out->test = cfg->test;
    out->format = cfg->synthetic ? PS_FMT_SYNTH : cfg->format;
    out->zero_based = cfg->zero_based;
    out->hash_bits = cfg->hash_bits;
    out->features = cfg->features;
    out->train_limit = cfg->train_limit;
    out->test_limit = cfg->test_limit;
    ps_job_synth_cfg(cfg, &out->synth);
    out->synth_test = cfg->synth_test;
    out->quiet = cfg->quiet;
    out->holdout = cfg->holdout;
    out->seed = cfg->seed;
    out->labels = cfg->labels;
}

void ps_job_batcher_cfg(const ps_cfg *cfg, ps_batcher_cfg *out)
{
    *out = (ps_batcher_cfg){
        .batch = cfg->batch, .shuffle = cfg->shuffle, .seed = cfg->seed, .stream = cfg->stream};
}

void ps_job_model_cfg(const ps_cfg *cfg, const ps_source_spec *spec, uint32_t worker,
                      uint32_t eval_batch, ps_model_cfg *out)
{
    memset(out, 0, sizeof *out);
    out->kind = cfg->model;
    out->in_dim = spec->dim;
    out->nclasses = spec->nclasses;
    out->sparse_input = spec->sparse;
    out->nhidden = cfg->nhidden;
    memcpy(out->hidden, cfg->hidden, sizeof out->hidden);
    out->activation = cfg->activation;
    if (cfg->model == PS_MODEL_CNN) {
        /* --conv's last number is the cnn's one fully connected layer. */
        memset(out->hidden, 0, sizeof out->hidden);
        out->nhidden = 1;
        out->hidden[0] = cfg->conv_fc;
        out->nconv = cfg->nconv;
        memcpy(out->conv, cfg->conv, sizeof out->conv);
    }
    if (cfg->model == PS_MODEL_VAE) {
        out->latent = cfg->latent;
    }
    out->dropout_input = cfg->dropout_input;
    out->dropout_hidden = cfg->dropout;
    out->l2 = cfg->l2;
    out->l2_on_server = 1; /* once per row per step, whatever the workers (README, Models) */
    out->init_override = cfg->init;
    out->seed = cfg->seed;
    out->worker = worker;
    out->max_batch = cfg->batch > eval_batch ? cfg->batch : eval_batch;
}

void ps_job_worker_cfg(const ps_cfg *cfg, ps_worker_cfg *out)
{
    memset(out, 0, sizeof *out);
    ps_job_source_cfg(cfg, &out->source);
    ps_job_batcher_cfg(cfg, &out->batcher);
    out->steps = cfg->steps;
    out->epochs = cfg->epochs;
    /* The version a pull waits for: BSP its own clock, SSP:K K behind,
     * ASP whatever the server has. */
    out->max_staleness = cfg->sync == PS_SYNC_BSP   ? 0
                         : cfg->sync == PS_SYNC_SSP ? (int64_t)cfg->staleness
                                                    : -1;
    out->averaged = cfg->temporal_averaging > 0;
    out->eval_every = cfg->eval_every;
    out->eval_train = cfg->eval_train;
    out->eval_samples = cfg->eval_samples;
    out->progress_secs = cfg->progress_secs;
    out->log_every = cfg->log_every;
    out->log_json = cfg->log_json;
    out->run_id = "";
    out->quiet = cfg->quiet;
    out->metrics = cfg->metrics;
    out->save_model = cfg->save_model;
    out->hash_bits = cfg->hash_bits;
    out->ckpt_dir = cfg->ckpt_dir;
    out->ckpt_every = cfg->ckpt_every;
    out->clock_log = cfg->clock_log;
    out->delay_ms = cfg->delay_ms;
    out->config_text = "";
    out->keep_ckpts = cfg->keep_ckpts;
}

void ps_job_server_cfg(const ps_cfg *cfg, ps_server_cfg *out)
{
    memset(out, 0, sizeof *out);
    out->store.hp = cfg->opt;
    out->store.shard = cfg->shard;
    out->store.lazy = cfg->sparse_lazy;
    out->store.avg_beta = cfg->temporal_averaging;
    out->store.seed = cfg->seed;
    out->store.l2 = cfg->l2;
    /* ps_model_tables lists each layer's weights, then its bias: the even
     * tables are the weights, the ones L2 applies to. */
    for (uint32_t t = 0; t < PS_MODEL_MAX_TABLES; t += 2) {
        out->store.l2_tables |= (uint64_t)1 << t;
    }
    out->sync = cfg->sync;
    out->nonfinite_skip = cfg->nonfinite_skip;
    out->reply_chunk = (size_t)cfg->reply_chunk;
    out->ckpt_dir = cfg->ckpt_dir;
    out->opt_name = ps_opt_name(cfg->opt.kind);
    out->config_text = "";
}

void ps_job_predict_cfg(const ps_cfg *cfg, ps_predict_cfg *out)
{
    memset(out, 0, sizeof *out);
    out->model_dir = cfg->model_dir;
    ps_job_source_cfg(cfg, &out->source);
    out->out = cfg->out;
    out->proba = cfg->proba;
    out->quiet = cfg->quiet;
}

void ps_job_config_pairs(const ps_cfg *cfg, ps_job_pairs *out)
{
    out->n = 0;
    for (size_t i = 0; i < ps_cfg_count() && out->n < PS_JOB_MAX_PAIRS; i++) {
        char *t = out->text[out->n];
        const char *key = ps_cfg_pair(cfg, i, NULL, t, sizeof out->text[0]);
        ps_metric_kv kv = PS_METRIC_S(key, t);
        ps_cfg_value_kind kind = ps_cfg_pair_kind(cfg, i);
        char *end = NULL;
        errno = 0;
        if (kind == PS_CFG_VALUE_BOOL) {
            kv = PS_METRIC_B(key, strcmp(t, "1") == 0);
        } else if (kind == PS_CFG_VALUE_INTEGER) {
            long long v = strtoll(t, &end, 10);
            if (end && *end == '\0' && errno == 0) {
                kv = PS_METRIC_I(key, v);
            }
        } else if (kind == PS_CFG_VALUE_REAL) {
            double v = strtod(t, &end);
            if (end && *end == '\0') {
                kv = PS_METRIC_D(key, v);
            }
        }
        out->kv[out->n++] = kv;
    }
}

int ps_job_blas_oversubscribed(int threads, int ranks, int cores, char *msg, size_t len)
{
    int over = threads > 1 && cores > 0 && (long)threads * ranks > cores;
    int fits = ranks > 0 && cores / ranks > 1 ? cores / ranks : 1;
    snprintf(msg, len,
             over ? "%d ranks x %d OpenBLAS threads = %ld threads on this node's %d cores: the "
                    "ranks' sgemm calls fight over the cores; give each rank %d (mpirun -x "
                    "OPENBLAS_NUM_THREADS=%d, or export it before srun)"
                  : "",
             ranks, threads, (long)threads * ranks, cores, fits, fits);
    return over;
}

/* The optimizer's state arrays per row (0 for an unknown rule: the config
 * check reports it). */
static int nstate_of(const ps_cfg *cfg)
{
    int n = ps_opt_nstate(cfg->opt.kind);
    return n > 0 ? n : 0;
}

void ps_job_budget(const ps_cfg *cfg, const ps_source_spec *spec, const ps_model_cfg *model,
                   const ps_table_desc *tables, uint32_t ntables, uint32_t nservers,
                   uint32_t nworkers, uint32_t eval_batch, ps_budget_job *out)
{
    ps_source_cfg src;
    ps_job_source_cfg(cfg, &src);
    *out = (ps_budget_job){.tables = tables,
                           .ntables = ntables,
                           .nservers = nservers,
                           .shard = cfg->shard,
                           .nstate = nstate_of(cfg),
                           .averaged = cfg->temporal_averaging > 0,
                           .lazy = cfg->sparse_lazy,
                           .nworkers = nworkers,
                           .batch = cfg->batch,
                           .eval_batch = eval_batch,
                           .model = *model,
                           .spec = *spec,
                           .libsvm = ps_source_is_libsvm(&src),
                           .hash_bits = cfg->hash_bits,
                           .stream = cfg->stream,
                           .train = cfg->train};
}

uint64_t ps_job_scan_limit(const ps_cfg *cfg, uint32_t nservers, uint64_t room)
{
    uint32_t width = cfg->model == PS_MODEL_MLP && cfg->nhidden ? cfg->hidden[0] : 2;
    return room ? ps_budget_max_rows(room, nservers, width, nstate_of(cfg),
                                     cfg->temporal_averaging > 0, cfg->sparse_lazy)
                : 0;
}
