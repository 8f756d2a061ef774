/* Progress: the coordinator's progress lines and final line, kept apart
 * from the loop so they can be tested: how long the run has left, counting
 * the evaluations still to come at the time one has taken so far (an
 * evaluation of a large test set can cost as much as many steps), that time
 * as h:mm:ss, and the lines as text or, under --log-format json, as JSON
 * with every number a field of its own. The arithmetic is pure; the lines
 * go to the log (stderr) and stdout. Thread-safe. */
#ifndef PS_PROGRESS_H
#define PS_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    uint64_t steps_done; /* clocks this run has trained */
    uint64_t steps_left; /* clocks still to train */
    double elapsed_s;    /* wall time of this run so far, evaluations included */
    double eval_s;       /* of which evaluating */
    uint64_t evals_done; /* evaluations timed (eval_s is their total) */
    uint64_t evals_left; /* evaluations still to come, the final one included */
} ps_progress;

/* Seconds left: steps_left at this run's time per step (its elapsed time
 * less the evaluations', per step done) plus evals_left at the mean time of
 * an evaluation so far (none timed yet: counted as 0). -1 when nothing is
 * done yet to measure by. */
double ps_progress_eta(const ps_progress *p);

/* Evaluations still to come when `next` is the next clock to train, of a
 * run of `total` clocks evaluating at every clock k > 0 with k % every == 0
 * (k < total) and once more at the end. every 0 counts only the end. */
uint64_t ps_progress_evals_left(uint64_t next, uint64_t total, uint64_t every);

/* secs as "h:mm:ss" ("0:04:05", "27:46:40"; rounded to the second) into
 * buf (len bytes); "-:--:--" for a negative or non-finite time. */
void ps_progress_hms(double secs, char *buf, size_t len);

/* One progress line's numbers. */
typedef struct {
    uint64_t step, steps_total;
    double epoch;
    double samples_per_sec;
    double train_loss_ma; /* NaN: none yet (null in JSON) */
    double push_bytes_per_sec, pull_bytes_per_sec;
    double eta_s; /* < 0: unknown */
} ps_progress_line;

/* Logs l at INFO: "epoch E step S/T  R samples/s  train_loss_ma L  push P
 * MB/s pull Q MB/s  eta h:mm:ss", and with json also the fields event
 * ("progress"), step, steps_total, epoch, samples_per_sec, train_loss_ma,
 * push_bytes_per_sec, pull_bytes_per_sec, eta_s and eta (h:mm:ss). */
void ps_progress_log(const ps_progress_line *l, int json);

/* The run's last line, for scripts. Strings borrowed for the call. */
typedef struct {
    uint64_t step;
    double test_loss, test_acc; /* test_acc NaN: none (a vae) */
    double time_s, samples_per_sec;
    const char *run_id;
} ps_progress_final;

/* Writes f to out as "final step=... test_loss=... test_acc=... time_s=...
 * samples_per_sec=..." or, with json, one object with event "final" and
 * those keys and run_id; then flushes out. */
void ps_progress_print_final(const ps_progress_final *f, int json, FILE *out);

#endif
