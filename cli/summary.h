/* Summary: the job's figures at the end of `adamps train`, from every
 * rank's counters (common/stats.h) gathered over the world: training-only
 * samples/s (start-up, evaluation and checkpoints apart), push and pull
 * traffic summed over the workers and what each server received, each
 * worker's fraction of training time blocked on pulls, each server's busy
 * fraction, the staleness histogram of applied pushes, bytes per sample.
 * The coordinator appends it to --metrics as {"event":"summary", ...} and
 * logs one line. docs/scaling.md says what each key means. */
#ifndef PS_SUMMARY_H
#define PS_SUMMARY_H

#include "common/comm.h"
#include "common/json.h"

typedef struct {
    const int *is_server; /* per rank of the world */
    int coordinator;      /* rank of worker 0 */
    const char *metrics;  /* "" : no file */
    const char *run_id;
    int quiet;
} ps_summary_cfg;

/* The headline figures, for the log line. */
typedef struct {
    double samples_per_sec, train_s, load_s, eval_s, ckpt_s;
    double push_bytes, push_msgs, pull_bytes, pull_wait, server_busy;
} ps_summary_figures;

/* The summary object of a gathered table (ps_stats_gather: nranks records
 * of PS_STATS_NVALS), and its headline figures in *f (may be NULL).
 * Returns a new value (ps_json_free) or NULL when out of memory. Pure: no
 * I/O. */
ps_json *ps_summary_build(const double *table, int nranks, const int *is_server, int coordinator,
                          ps_summary_figures *f);

/* Collective over world: ends this rank's training phase, gathers every
 * rank's counters; the coordinator appends the summary record to
 * cfg->metrics and logs it. Returns 0 or the collective's rc; a failed
 * metrics write is a warning (the training is done). */
int ps_summary_run(ps_comm *world, const ps_summary_cfg *cfg);

#endif
