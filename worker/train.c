#include "worker/train.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/ckpt.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/metrics.h"
#include "common/stats.h"
#include "worker/batcher.h"
#include "worker/evaluator.h"
#include "worker/export.h"
#include "worker/inject.h"
#include "worker/pipeline.h"
#include "worker/progress.h"

typedef struct {
    const ps_worker_cfg *wc;
    ps_comm *world;
    ps_client *client;
    ps_model *model;
    uint32_t ntables;
    ps_batcher *batcher; /* this worker's training batches */
    ps_pipe *pipe;       /* their keys, plans and pulls, ahead of the loop */
    ps_dataset test;
    ps_dataset train_head;   /* --eval-train: the samples train_nll is taken on */
    ps_evaluator *evaluator; /* coordinator: pulls into buffers of its own */
    float **grads;
    size_t *cap_grads;
    uint64_t steps_per_epoch, total_steps;
    uint64_t start_clock; /* first clock of this run (after a resume, not 0) */
    int coordinator;
    /* progress */
    double t0, last_print;
    double loss_ema;
    int have_ema;
    double eval_s;        /* time spent in this run's evaluations, for the ETA */
    double ckpt_s;        /* and in its checkpoints: neither counts as training */
    uint64_t evals_timed; /* how many */
    ps_metrics *metrics;
    uint64_t metrics_lost; /* lines that could not be written */
    FILE *clock_log;
    const char *inject; /* test builds: ADAMPS_TEST_INJECT, read once; NULL when unset */
    /* checkpoints and stops */
    ps_comm *workers;
    int64_t last_ckpt;  /* the newest complete checkpoint, or -1 */
    double time_before; /* coordinator: training time of the runs before a resume */
    int stop_sent;      /* this worker's stop signal went to the coordinator */
    int64_t stop_at;    /* the clock every worker stops at, once agreed; else -1 */
} trainer;

static void log_clock(trainer *tr, const char *what, uint64_t clock)
{
    if (tr->clock_log) {
        fprintf(tr->clock_log, "%s %u %llu\n", what, tr->wc->client.worker,
                (unsigned long long)clock);
        fflush(tr->clock_log);
    }
}

/* A metrics line that cannot be written (a full disk) costs that line, not
 * the run: the first failure is a warning, the count is told at the end. */
static void count_lost(trainer *tr, int rc)
{
    if (rc != 0 && tr->metrics_lost++ == 0) {
        PS_LOG(WARN, "%s: a metrics line was not written (see above); training goes on",
               tr->wc->metrics);
    }
}

static void write_metrics(trainer *tr, const ps_metric_kv *kv, size_t n)
{
    if (tr->metrics) {
        count_lost(tr, ps_metrics_write(tr->metrics, kv, n));
    }
}

/* The clocks between evaluations. */
static uint64_t eval_interval(const trainer *tr)
{
    return tr->wc->eval_every ? tr->wc->eval_every : tr->steps_per_epoch;
}

/* Seconds this run has trained by `now`: evaluations and checkpoints are
 * not training, so samples_per_sec leaves them out. */
static double train_secs(const trainer *tr, double now)
{
    double t = now - tr->t0 - tr->eval_s - tr->ckpt_s;
    return t > 0 ? t : 0;
}

/* Coordinator, every --progress-every seconds: the progress line, with the
 * time left (evaluations to come included). */
static void progress(trainer *tr, uint64_t clock, int force)
{
    double now = ps_comm_time();
    if (tr->wc->quiet || (!force && now - tr->last_print < tr->wc->progress_secs)) {
        return;
    }
    double el = now - tr->t0, tt = train_secs(tr, now);
    double samples =
        (double)(clock - tr->start_clock) * tr->wc->batcher.batch * tr->wc->client.nworkers;
    uint64_t sent, recv;
    ps_comm_bytes(tr->world, &sent, &recv);
    ps_progress pr = {.steps_done = clock - tr->start_clock,
                      .steps_left = tr->total_steps - clock,
                      .elapsed_s = el,
                      .eval_s = tr->eval_s,
                      .evals_done = tr->evals_timed,
                      .evals_left =
                          ps_progress_evals_left(clock, tr->total_steps, eval_interval(tr))};
    ps_progress_line l = {.step = clock,
                          .steps_total = tr->total_steps,
                          .epoch = (double)clock / (double)tr->steps_per_epoch,
                          .samples_per_sec = tt > 0 ? samples / tt : 0,
                          .train_loss_ma = tr->have_ema ? tr->loss_ema : NAN,
                          .push_bytes_per_sec = el > 0 ? sent / el : 0,
                          .pull_bytes_per_sec = el > 0 ? recv / el : 0,
                          .eta_s = ps_progress_eta(&pr)};
    ps_progress_log(&l, tr->wc->log_json);
    tr->last_print = now;
}

/* Coordinator, every --log-every clocks: the moving average of the
 * training loss as a metrics record of its own, between evaluations. At
 * the top of clock `clock`'s step, like an evaluation, so a resumed run
 * writes again exactly the records its resume cut. */
static void record_train_loss(trainer *tr, uint64_t clock)
{
    uint64_t every = tr->wc->log_every;
    if (!tr->metrics || !every || clock == 0 || clock % every || !tr->have_ema) {
        return;
    }
    double now = ps_comm_time(), el = now - tr->t0, tt = train_secs(tr, now);
    double rate = (double)(clock - tr->start_clock) * tr->wc->batcher.batch *
                  tr->wc->client.nworkers / (tt > 0 ? tt : 1);
    ps_metric_kv kv[] = {
        PS_METRIC_S("event", "train_loss_ma"),
        PS_METRIC_I("step", (int64_t)clock),
        PS_METRIC_D("epoch", (double)clock / (double)tr->steps_per_epoch),
        PS_METRIC_D("time_s", tr->time_before + el),
        PS_METRIC_D("train_loss_ma", tr->loss_ema),
        PS_METRIC_D("samples_per_sec", rate),
    };
    write_metrics(tr, kv, sizeof kv / sizeof kv[0]);
}

static int eval_and_record(trainer *tr, uint64_t clock, int final)
{
    /* The rate is taken before this evaluation, which is not training. */
    double tt = train_secs(tr, ps_comm_time());
    double loss, acc, train_nll = NAN, train_acc;
    /* --eval-samples: a prefix of the test set (a shallow view: evaluate
     * reads rows through ps_dataset_view) until the final evaluation. */
    ps_dataset test = tr->test;
    if (!final && tr->wc->eval_samples && tr->wc->eval_samples < test.n) {
        test.n = (size_t)tr->wc->eval_samples;
    }
    int rc = ps_evaluator_run(tr->evaluator, &test, (int64_t)clock, tr->wc->averaged, &loss, &acc);
    if (rc == 0 && tr->train_head.n) {
        rc = ps_evaluator_run(tr->evaluator, &tr->train_head, (int64_t)clock, tr->wc->averaged,
                              &train_nll, &train_acc);
    }
    if (rc) {
        return rc;
    }
    double el = ps_comm_time() - tr->t0;
    double samples = (double)clock * tr->wc->batcher.batch * tr->wc->client.nworkers;
    double rate = (double)(clock - tr->start_clock) * tr->wc->batcher.batch *
                  tr->wc->client.nworkers / (tt > 0 ? tt : 1);
    uint64_t sent, recv;
    ps_comm_bytes(tr->world, &sent, &recv);
    if (!tr->wc->quiet) {
        char nll[48] = "";
        if (tr->train_head.n) {
            snprintf(nll, sizeof nll, " train_nll %.4f", train_nll);
        }
        PS_LOG(INFO, "eval at step %llu (epoch %.2f): test_loss %.4f test_acc %.4f%s",
               (unsigned long long)clock, (double)clock / (double)tr->steps_per_epoch, loss, acc,
               nll);
    }
    if (tr->metrics) {
        /* samples_per_sec: over training time only (train_time_s; no
         * evaluation or checkpoint). Byte counters are the coordinator's;
         * the job's are in the summary record at the end (cli/summary.c).
         * train_loss_ma: the moving average of the coordinator's minibatch
         * loss (with dropout and L2) while training; train_nll: the NLL
         * without dropout, evaluated now (--eval-train; null without). */
        ps_metric_kv kv[] = {
            {"step", PS_METRIC_INT, {.i = (int64_t)clock}},
            {"epoch", PS_METRIC_DOUBLE, {.d = (double)clock / (double)tr->steps_per_epoch}},
            {"time_s", PS_METRIC_DOUBLE, {.d = tr->time_before + el}},
            {"train_time_s", PS_METRIC_DOUBLE, {.d = tt}},
            {"samples_total", PS_METRIC_INT, {.i = (int64_t)samples}},
            {"train_loss_ma", PS_METRIC_DOUBLE, {.d = tr->have_ema ? tr->loss_ema : NAN}},
            {"train_nll", PS_METRIC_DOUBLE, {.d = train_nll}},
            {"test_loss", PS_METRIC_DOUBLE, {.d = loss}},
            {"test_acc", PS_METRIC_DOUBLE, {.d = acc}},
            {"test_samples", PS_METRIC_INT, {.i = (int64_t)test.n}},
            {"samples_per_sec", PS_METRIC_DOUBLE, {.d = rate}},
            {"push_bytes_total", PS_METRIC_INT, {.i = (int64_t)sent}},
            {"pull_bytes_total", PS_METRIC_INT, {.i = (int64_t)recv}},
            {"workers", PS_METRIC_INT, {.i = tr->wc->client.nworkers}},
            {"servers", PS_METRIC_INT, {.i = tr->wc->client.nservers}},
        };
        write_metrics(tr, kv, sizeof kv / sizeof kv[0]);
    }
    /* Machine-readable final line for scripts and tests. */
    if (clock == tr->total_steps) {
        ps_progress_final f = {.step = clock,
                               .test_loss = loss,
                               .test_acc = acc,
                               .time_s = el,
                               .samples_per_sec = rate,
                               .run_id = tr->wc->run_id};
        ps_progress_print_final(&f, tr->wc->log_json, stdout);
    }
    return rc;
}

static int agree_schedule(trainer *tr, ps_comm *workers)
{
    uint64_t n = ps_batcher_rows(tr->batcher);
    int rc = ps_comm_allreduce_max_u64(workers, &n, 1);
    if (rc) {
        return rc;
    }
    if (n == 0) {
        const ps_source_cfg *src = &tr->wc->source;
        if (tr->coordinator) {
            PS_LOG(ERROR, "%s: no samples in any worker's part: the training set is empty",
                   src->train[0] ? src->train : src->dataset);
        }
        return PS_EFORMAT;
    }
    tr->steps_per_epoch = (n + tr->wc->batcher.batch - 1) / tr->wc->batcher.batch;
    tr->total_steps = tr->wc->steps ? tr->wc->steps
                                    : (uint64_t)ceil(tr->wc->epochs * (double)tr->steps_per_epoch);
    return 0;
}

static int setup(trainer *tr)
{
    const ps_worker_cfg *wc = tr->wc;
    int rc = ps_model_create(&tr->model, &wc->model);
    if (rc || (rc = ps_client_create(&tr->client, &wc->client, tr->world))) {
        return rc;
    }
    tr->ntables = ps_model_ntables(tr->model);
    tr->inject = ps_inject_read();
    /* Counting the rows of a large libsvm part takes a while: say so. */
    if (tr->coordinator && !wc->quiet && ps_source_is_libsvm(&wc->source)) {
        PS_LOG(INFO, "each of the %u workers reads and counts its part of %s", wc->client.nworkers,
               wc->source.train);
    }
    if ((rc = ps_batcher_create(&tr->batcher, &wc->batcher, &wc->source, &wc->spec,
                                wc->client.worker, wc->client.nworkers))) {
        return rc;
    }
    if (tr->coordinator &&
        ((rc = ps_source_load_test(&wc->source, &wc->spec, &tr->test)) ||
         (wc->eval_train && (rc = ps_batcher_head(tr->batcher, &wc->spec, wc->client.nworkers,
                                                  wc->eval_train, &tr->train_head))))) {
        return rc;
    }
    if (ps_batcher_streamed(tr->batcher) && !tr->wc->quiet) {
        PS_LOG(INFO, "worker %u streams its %llu rows of %s in chunks", wc->client.worker,
               (unsigned long long)ps_batcher_rows(tr->batcher), wc->source.train);
    }
    if (!(tr->grads = ps_calloc(tr->ntables, sizeof(float *))) ||
        !(tr->cap_grads = ps_calloc(tr->ntables, sizeof(size_t))) ||
        (tr->coordinator && ps_evaluator_create(&tr->evaluator, tr->client, tr->model))) {
        return PS_ENOMEM;
    }
    if (tr->coordinator && wc->metrics[0]) {
        if ((rc = ps_metrics_open(&tr->metrics, wc->metrics,
                                  wc->nresume ? PS_METRICS_APPEND : PS_METRICS_TRUNCATE))) {
            return rc;
        }
        ps_metrics_stamp(tr->metrics, 1);
    }
    if (wc->clock_log[0] && !(tr->clock_log = fopen(wc->clock_log, "a"))) {
        PS_LOG(ERROR, "cannot open the clock log %s", wc->clock_log);
        return PS_EIO;
    }
    return 0;
}

/* Collective over the world, matching the servers' resume: tries the
 * checkpoints of wc->resume newest first and takes the first that every
 * rank could read (each file's CRCs checked by whoever reads it). */
static int resume_any(trainer *tr)
{
    const ps_worker_cfg *wc = tr->wc;
    int rc = 0;
    for (uint32_t i = 0; i < wc->nresume; i++) {
        const ps_ckpt_manifest *m = &wc->resume[i];
        ps_ckpt_worker_state st;
        rc = ps_comm_agree(tr->world, ps_ckpt_read_worker(wc->ckpt_dir, m->clock, wc->client.worker,
                                                          wc->client.nworkers, &st));
        if (rc == 0) {
            tr->loss_ema = st.loss_ema;
            tr->have_ema = st.have_ema;
            tr->time_before = st.time_s;
            tr->start_clock = (uint64_t)m->clock;
            ps_ckpt_warn_blas_change(&st, wc->client.worker, openblas_get_corename(),
                                     openblas_get_num_threads());
            tr->last_ckpt = m->clock;
            if (tr->coordinator) {
                PS_LOG(INFO, "resuming from %s/ckpt-%lld at step %lld%s", wc->ckpt_dir,
                       (long long)m->clock, (long long)m->clock,
                       i ? " (the newer checkpoints did not verify: see above)" : "");
            }
            return 0;
        }
        if (rc != PS_ECKPT && rc != PS_EIO) {
            return rc;
        }
        if (tr->coordinator) {
            PS_LOG(WARN, "%s/ckpt-%lld does not verify (a file of it failed its checks, above)%s",
                   wc->ckpt_dir, (long long)m->clock,
                   i + 1 < wc->nresume ? "; trying the one before it" : "");
        }
    }
    if (wc->nresume && tr->coordinator) {
        PS_LOG(ERROR, "--resume: none of the %u checkpoints in %s verifies", wc->nresume,
               wc->ckpt_dir);
    }
    return rc;
}

/* After a resume: the metrics rows the crashed run wrote after the
 * checkpoint (from its step on: the evaluation at a checkpoint's step comes
 * after the checkpoint) go, since this run writes them again, and a record
 * says where the run picked up. */
static int metrics_resumed(trainer *tr)
{
    if (!tr->metrics) {
        return 0;
    }
    if (tr->wc->nresume == 0) {
        /* A fresh file starts with what run it is. */
        ps_metrics_header h = {.run_id = tr->wc->run_id,
                               .version = PS_VERSION,
                               .config = tr->wc->config,
                               .nconfig = tr->wc->nconfig};
        count_lost(tr, ps_metrics_write_header(tr->metrics, &h));
        return 0;
    }
    size_t dropped = 0;
    int rc = ps_metrics_truncate_from(tr->metrics, (int64_t)tr->start_clock, &dropped);
    if (rc) {
        return rc;
    }
    if (dropped) {
        PS_LOG(INFO, "%s: dropped %zu lines from step %llu on, which this run writes again",
               tr->wc->metrics, dropped, (unsigned long long)tr->start_clock);
    }
    char name[32];
    snprintf(name, sizeof name, "ckpt-%llu", (unsigned long long)tr->start_clock);
    ps_metric_kv kv[] = {
        PS_METRIC_S("event", "resumed"),
        PS_METRIC_S("checkpoint", name),
        PS_METRIC_I("resume_step", (int64_t)tr->start_clock),
        PS_METRIC_S("run_id", tr->wc->run_id),
        PS_METRIC_S("adamps_version", PS_VERSION),
    };
    write_metrics(tr, kv, sizeof kv / sizeof kv[0]);
    return 0;
}

/* After pushing clock `done - 1`: every worker saves its state, the servers
 * their shards, and the coordinator the manifests, last; then the
 * checkpoints past the newest K go. Collective over the workers. */
static int write_checkpoint(trainer *tr, int64_t done)
{
    const ps_worker_cfg *cfg = tr->wc;
    ps_ckpt_worker_state st = {.loss_ema = tr->loss_ema,
                               .have_ema = tr->have_ema,
                               .time_s = tr->time_before + ps_comm_time() - tr->t0,
                               .blas_threads = openblas_get_num_threads()};
    snprintf(st.blas_core, sizeof st.blas_core, "%s", openblas_get_corename());
    int rc = 0;
    if (tr->coordinator) {
        rc = ps_ckpt_make_dir(cfg->ckpt_dir, done);
    }
    /* Every worker's file exists before the manifest can name it. */
    rc = ps_comm_agree(tr->workers, rc);
    if (rc == 0) {
        rc = ps_ckpt_write_worker(cfg->ckpt_dir, done, tr->wc->client.worker,
                                  tr->wc->client.nworkers, &st, tr->wc->config_text);
    }
    if ((rc = ps_comm_agree(tr->workers, rc)) || !tr->coordinator) {
        tr->last_ckpt = rc ? tr->last_ckpt : done;
        return rc;
    }
    ps_ckpt_manifest m = {
        .clock = done, .nservers = tr->wc->nservers_running, .nworkers = tr->wc->client.nworkers};
    if ((rc = ps_client_checkpoint(tr->client, done)) == 0) {
        rc = ps_ckpt_commit(cfg->ckpt_dir, &m, tr->wc->config_text);
    }
    if (rc) {
        char prev[128] = "there is no earlier one";
        if (tr->last_ckpt >= 0) {
            snprintf(prev, sizeof prev, "ckpt-%lld is intact and --resume continues from it",
                     (long long)tr->last_ckpt);
        }
        PS_LOG(ERROR, "checkpoint %lld in %s could not be written; %s", (long long)done,
               cfg->ckpt_dir, prev);
        return rc;
    }
    ps_ckpt_prune(cfg->ckpt_dir, done, cfg->keep_ckpts);
    tr->last_ckpt = done;
    if (!cfg->quiet) {
        PS_LOG(INFO, "checkpoint at step %lld written to %s", (long long)done, cfg->ckpt_dir);
    }
    return 0;
}

/* write_checkpoint, timed apart from training. */
static int checkpoint(trainer *tr, int64_t done)
{
    ps_stats *st = ps_comm_stats(tr->world);
    ps_phase was = ps_stats_current(st);
    double t = ps_comm_time();
    ps_stats_phase(st, PS_PHASE_CKPT);
    int rc = write_checkpoint(tr, done);
    ps_stats_phase(st, was);
    tr->ckpt_s += ps_comm_time() - t;
    return rc;
}

/* Before the push of clock b. A stop signal on a worker goes to the
 * coordinator, which (on its own signal or such a request) tells the
 * servers the clock everyone stops at: b + K + 2 for staleness K (0 under
 * BSP and ASP), so that every reply a worker can still need before it is
 * answered after the announcement and carries it (docs/design.md). */
static int stop_signals(trainer *tr, uint64_t b)
{
    const ps_worker_cfg *wc = tr->wc;
    int flag = wc->stop_flag && *wc->stop_flag;
    if (!tr->coordinator) {
        if (!flag || tr->stop_sent) {
            return 0;
        }
        tr->stop_sent = 1;
        PS_LOG(INFO, "got a stop signal; asking the coordinator to stop the job at a clock");
        return ps_client_request_stop(tr->client);
    }
    int rc = ps_client_poll(tr->client);
    if (rc || ps_client_stop_clock(tr->client) > 0 ||
        (!flag && !ps_client_stop_requested(tr->client))) {
        return rc;
    }
    int64_t stop = (int64_t)b + (wc->max_staleness > 0 ? wc->max_staleness : 0) + 2;
    PS_LOG(INFO,
           "stop signal at clock %llu: every worker stops at clock %lld, checkpoints there "
           "and the job exits 75",
           (unsigned long long)b, (long long)stop);
    return ps_client_stop(tr->client, stop);
}

/* At boundary b (clocks 0..b-1 pushed): the periodic checkpoint, the final
 * one (b = total), or the stop. Each worker agrees with the others
 * whenever it is at one of those, with the same collective, so they match
 * even when workers are at different clocks (SSP, ASP): the result says
 * whether anyone is stopping and the largest clock among them, where every
 * worker then checkpoints and stops. *stopped = 1: the run ends here. */
static int at_boundary(trainer *tr, uint64_t b, int *stopped)
{
    const ps_worker_cfg *wc = tr->wc;
    int end = b == tr->total_steps;
    *stopped = 0;
    if (!wc->ckpt_dir[0] || (b == tr->start_clock && (!end || (int64_t)b == tr->last_ckpt))) {
        return 0; /* nothing new since the start or the checkpoint resumed from */
    }
    int64_t sc = ps_client_stop_clock(tr->client);
    int stopping = sc > 0 && (int64_t)b >= sc;
    int periodic = wc->ckpt_every && b % wc->ckpt_every == 0 && !end;
    if (tr->stop_at < 0 && (end || periodic || stopping)) {
        uint64_t v[2] = {(uint64_t)stopping, b};
        int rc = ps_comm_allreduce_max_u64(tr->workers, v, 2);
        if (rc) {
            return rc;
        }
        if (!v[0]) {
            return checkpoint(tr, (int64_t)b);
        }
        tr->stop_at = (int64_t)v[1];
    }
    if (tr->stop_at != (int64_t)b) {
        return 0; /* on to the stop clock, without the periodic checkpoints */
    }
    *stopped = !end;
    return checkpoint(tr, (int64_t)b);
}

static void teardown(trainer *tr)
{
    ps_evaluator_destroy(&tr->evaluator);
    ps_pipe_destroy(&tr->pipe);
    for (uint32_t t = 0; tr->grads && t < tr->ntables; t++) {
        ps_free(tr->grads[t]);
    }
    ps_free(tr->grads);
    ps_free(tr->cap_grads);
    ps_batcher_destroy(&tr->batcher);
    ps_dataset_fini(&tr->test);
    ps_dataset_fini(&tr->train_head);
    ps_metrics_close(&tr->metrics);
    if (tr->clock_log) {
        fclose(tr->clock_log);
    }
    ps_client_destroy(&tr->client);
    ps_model_destroy(&tr->model);
}

/* The last clock a server will answer a pull for: the final one, or
 * where the job stops once that is known (the reply before carries it). */
static int64_t last_pull(const trainer *tr)
{
    int64_t last = (int64_t)tr->total_steps - 1, sc = ps_client_stop_clock(tr->client);
    int64_t stop = tr->stop_at >= 0 ? tr->stop_at : sc > 0 ? sc : last;
    return stop < last ? stop : last;
}

static int step(trainer *tr, uint64_t clock)
{
    ps_pipe_step s;
    int rc = ps_pipe_wait(tr->pipe, clock, &s);
    if (rc || (rc = ps_model_grow_rows(tr->model, s.keys, tr->grads, tr->cap_grads))) {
        return rc;
    }
    log_clock(tr, "start", clock);
    if (tr->coordinator && clock > 0) {
        record_train_loss(tr, clock);
        if (clock % eval_interval(tr) == 0) {
            double t = ps_comm_time();
            ps_stats_phase(ps_comm_stats(tr->world), PS_PHASE_EVAL);
            if ((rc = eval_and_record(tr, clock, 0))) {
                return rc;
            }
            ps_stats_phase(ps_comm_stats(tr->world), PS_PHASE_TRAIN);
            tr->eval_s += ps_comm_time() - t;
            tr->evals_timed++;
        }
    }
    /* Start the next batch's pull (prepared during the last wait) before
     * computing this one: the servers answer it once this push is in. */
    if (clock + 1 < tr->total_steps && (rc = ps_pipe_start(tr->pipe, clock + 1))) {
        return rc;
    }
    ps_inject_delay(tr->wc->delay_ms, tr->wc->client.worker, clock);
    ps_batch b = s.batch;
    if (b.n > 0) {
        double loss = 0;
        if ((rc = ps_model_forward_backward(tr->model, &b, s.keys, (const float *const *)s.params,
                                            tr->grads, clock, &loss))) {
            return rc;
        }
        tr->loss_ema = tr->have_ema ? 0.98 * tr->loss_ema + 0.02 * loss : loss;
        tr->have_ema = 1;
    }
    ps_stats_samples(ps_comm_stats(tr->world), b.n);
    ps_inject_fault(tr->inject, tr->wc->client.worker + 1 == tr->wc->client.nworkers, clock, s.plan,
                    tr->grads[0], s.keys[0].n);
    log_clock(tr, "push", clock);
    if ((rc = ps_client_push(tr->client, s.plan, (const float *const *)tr->grads, (int64_t)clock,
                             (uint32_t)b.n))) {
        return rc;
    }
    /* The batch after next, while the servers apply this push: its keys
     * and plan leave the critical path (worker/pipeline.h). */
    if (clock + 2 < tr->total_steps && (rc = ps_pipe_ahead(tr->pipe, clock + 2, last_pull(tr)))) {
        return rc;
    }
    if (tr->coordinator) {
        progress(tr, clock + 1, 0);
    }
    return 0;
}

int ps_worker_run(const ps_worker_cfg *wc, ps_comm *world, ps_comm *workers)
{
    trainer tr = {.wc = wc,
                  .world = world,
                  .workers = workers,
                  .coordinator = wc->client.worker == 0,
                  .last_ckpt = -1,
                  .stop_at = -1};
    int rc = setup(&tr);
    int stopped = 0;
    /* Start-up handshake with the servers: nobody sends before all are
     * ready; then the checkpoint to resume from, agreed with them. */
    if ((rc = ps_comm_agree(world, rc)) || (rc = resume_any(&tr)) ||
        (rc = agree_schedule(&tr, workers)) || (rc = metrics_resumed(&tr))) {
        goto done;
    }
    uint64_t b = tr.start_clock;
    if (b > tr.total_steps) {
        if (tr.coordinator) {
            PS_LOG(ERROR,
                   "--resume: the checkpoint is at step %llu, past the %llu steps of this "
                   "run (--steps, --epochs): nothing is left to train",
                   (unsigned long long)b, (unsigned long long)tr.total_steps);
        }
        rc = PS_ECONFIG;
        goto done;
    }
    if (tr.coordinator && !wc->quiet) {
        PS_LOG(INFO, "training %llu steps (%llu per epoch) on %u workers, %u servers",
               (unsigned long long)tr.total_steps, (unsigned long long)tr.steps_per_epoch,
               wc->client.nworkers, wc->client.nservers);
    }
    ps_pipe_cfg pc = {.client = tr.client,
                      .model = tr.model,
                      .batcher = tr.batcher,
                      .steps_per_epoch = tr.steps_per_epoch,
                      .max_staleness = wc->max_staleness,
                      .first = b};
    if ((rc = ps_pipe_create(&tr.pipe, &pc))) {
        goto done;
    }
    tr.t0 = tr.last_print = ps_comm_time();
    if (b < tr.total_steps && (rc = ps_pipe_start(tr.pipe, b))) {
        goto done;
    }
    /* Boundary b: clocks 0..b-1 are pushed, the pull for b is in flight. */
    while ((rc = at_boundary(&tr, b, &stopped)) == 0 && !stopped && b < tr.total_steps) {
        if ((rc = stop_signals(&tr, b))) {
            goto done;
        }
        ps_inject_pause(tr.inject, tr.coordinator, b);
        if ((rc = step(&tr, b))) {
            goto done;
        }
        b++;
    }
    if (rc) {
        goto done;
    }
    if (stopped) {
        /* The reply to the pull in flight is taken: no message is left. */
        if ((rc = ps_pipe_drain(tr.pipe)) == 0 && tr.coordinator) {
            PS_LOG(INFO,
                   "stopped at step %llu after a stop signal; %s/ckpt-%llu holds it: rerun "
                   "with --resume to go on (exit 75)",
                   (unsigned long long)b, wc->ckpt_dir, (unsigned long long)b);
        }
    } else if (tr.coordinator) {
        progress(&tr, tr.total_steps, 1);
        ps_stats_phase(ps_comm_stats(world), PS_PHASE_EVAL);
        rc = eval_and_record(&tr, tr.total_steps, 1);
        ps_stats_phase(ps_comm_stats(world), PS_PHASE_DONE);
        if (rc == 0 && wc->save_model[0]) {
            ps_export_info info = {.clock = (int64_t)tr.total_steps,
                                   .averaged = wc->averaged,
                                   .hash_bits = wc->hash_bits,
                                   .config_text = wc->config_text,
                                   .config = wc->config,
                                   .nconfig = wc->nconfig,
                                   .labels = wc->spec.labels,
                                   .nlabels = wc->spec.nlabels};
            rc = ps_export_save(tr.client, tr.model, &info, wc->save_model);
        }
    }
done:
    ps_stats_phase(ps_comm_stats(world), PS_PHASE_DONE);
    if (rc == 0) {
        rc = ps_client_done(tr.client, stopped);
    }
    if (tr.metrics_lost) {
        PS_LOG(WARN, "%s: %llu metrics lines could not be written", wc->metrics,
               (unsigned long long)tr.metrics_lost);
    }
    teardown(&tr);
    return rc == 0 && stopped ? PS_ESTOPPED : rc;
}
