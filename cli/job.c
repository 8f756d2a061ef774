#include "cli/job.h"

#include <stdio.h>
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
    if (n < 1) {
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
    out->dropout_input = cfg->dropout_input;
    out->dropout_hidden = cfg->dropout;
    out->l2 = cfg->l2;
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
    out->progress_secs = cfg->progress_secs;
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
    out->sync = cfg->sync;
    out->nonfinite_skip = cfg->nonfinite_skip;
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
    out->quiet = cfg->quiet;
}
