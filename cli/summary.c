#include "cli/summary.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/afile.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/stats.h"

static const double *rec(const double *table, int r)
{
    return table + (size_t)r * PS_STATS_NVALS;
}

static int set_i(ps_json *o, const char *k, double v)
{
    return ps_json_set(o, k, ps_json_int((int64_t)v));
}

static int set_d(ps_json *o, const char *k, double v)
{
    return ps_json_set(o, k, ps_json_real(v));
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

/* Sum over the ranks of one role (servers = 1, workers = 0) of value i. */
static double role_sum(const double *table, int n, const int *is_server, int server, int i)
{
    double s = 0;
    for (int r = 0; r < n; r++) {
        if (!is_server[r] == !server) {
            s += rec(table, r)[i];
        }
    }
    return s;
}

/* One array entry per rank of a role: f(record). */
typedef double (*per_rank_fn)(const double *v);

static int role_array(ps_json *o, const char *k, const double *table, int n, const int *is_server,
                      int server, per_rank_fn f, int integer)
{
    ps_json *a = ps_json_array();
    for (int r = 0; a && r < n; r++) {
        if (!is_server[r] == !server) {
            double x = f(rec(table, r));
            if (ps_json_append(a, integer ? ps_json_int((int64_t)x) : ps_json_real(x))) {
                ps_json_free(&a);
            }
        }
    }
    return ps_json_set(o, k, a);
}

static double wait_frac(const double *v)
{
    return ratio(v[PS_SV_WAIT_S + PS_PHASE_TRAIN], v[PS_SV_PHASE_S + PS_PHASE_TRAIN]);
}

static double busy_frac(const double *v)
{
    return 1 - wait_frac(v);
}

static double push_recv_bytes(const double *v)
{
    return v[PS_SV_RECV_BYTES(PS_TAG_PUSH)];
}

static double push_recv_msgs(const double *v)
{
    return v[PS_SV_RECV_MSGS(PS_TAG_PUSH)];
}

static double reply_sent_bytes(const double *v)
{
    return v[PS_SV_SENT_BYTES(PS_TAG_REPLY)];
}

static double samples_of(const double *v)
{
    return v[PS_SV_SAMPLES];
}

ps_json *ps_summary_build(const double *table, int n, const int *is_server, int coordinator,
                          ps_summary_figures *f)
{
    ps_json *o = ps_json_object();
    const double *c = rec(table, coordinator);
    int nw = 0, ns = 0;
    double load_s = 0, wall_s = 0, wait_sum = 0, busy_sum = 0, train_bytes = 0;
    for (int r = 0; r < n; r++) {
        const double *v = rec(table, r);
        double total = 0;
        for (int p = 0; p < PS_NPHASES; p++) {
            total += v[PS_SV_PHASE_S + p];
        }
        wall_s = total > wall_s ? total : wall_s;
        load_s =
            v[PS_SV_PHASE_S + PS_PHASE_LOAD] > load_s ? v[PS_SV_PHASE_S + PS_PHASE_LOAD] : load_s;
        if (is_server[r]) {
            ns++;
            busy_sum += busy_frac(v);
        } else {
            nw++;
            wait_sum += wait_frac(v);
            train_bytes += v[PS_SV_PHASE_BYTES + PS_PHASE_TRAIN];
        }
    }
    double samples = role_sum(table, n, is_server, 0, PS_SV_SAMPLES);
    double train_s = c[PS_SV_PHASE_S + PS_PHASE_TRAIN];
    double push_b = role_sum(table, n, is_server, 0, PS_SV_SENT_BYTES(PS_TAG_PUSH));
    double req_b = role_sum(table, n, is_server, 0, PS_SV_SENT_BYTES(PS_TAG_PULL));
    double reply_b = role_sum(table, n, is_server, 0, PS_SV_RECV_BYTES(PS_TAG_REPLY));
    double stale_n = 0, stale_sum = 0;
    ps_json *hist = ps_json_array();
    for (int b = 0; b < PS_STATS_NSTALE; b++) {
        double k = role_sum(table, n, is_server, 1, PS_SV_STALE + b);
        stale_n += k;
        stale_sum += k * b;
        if (hist && ps_json_append(hist, ps_json_int((int64_t)k))) {
            ps_json_free(&hist);
        }
    }
    double push_m = role_sum(table, n, is_server, 0, PS_SV_SENT_MSGS(PS_TAG_PUSH));
    if (f) {
        *f = (ps_summary_figures){.samples_per_sec = ratio(samples, train_s),
                                  .train_s = train_s,
                                  .load_s = load_s,
                                  .eval_s = c[PS_SV_PHASE_S + PS_PHASE_EVAL],
                                  .ckpt_s = c[PS_SV_PHASE_S + PS_PHASE_CKPT],
                                  .push_bytes = push_b,
                                  .push_msgs = push_m,
                                  .pull_bytes = req_b + reply_b,
                                  .pull_wait = ratio(wait_sum, nw),
                                  .server_busy = ratio(busy_sum, ns)};
    }
    int rc = !o || ps_json_set(o, "event", ps_json_string("summary")) ||
             set_d(o, "samples_per_sec", ratio(samples, train_s)) ||
             set_i(o, "samples_total", samples) || set_d(o, "train_time_s", train_s) ||
             set_d(o, "load_time_s", load_s) ||
             set_d(o, "eval_time_s", c[PS_SV_PHASE_S + PS_PHASE_EVAL]) ||
             set_d(o, "ckpt_time_s", c[PS_SV_PHASE_S + PS_PHASE_CKPT]) ||
             set_d(o, "wall_time_s", wall_s) || set_i(o, "workers", nw) ||
             set_i(o, "servers", ns) || set_i(o, "push_bytes_total", push_b) ||
             set_i(o, "push_msgs_total", push_m) ||
             set_i(o, "push_bytes_received_total",
                   role_sum(table, n, is_server, 1, PS_SV_RECV_BYTES(PS_TAG_PUSH))) ||
             set_i(o, "push_msgs_received_total",
                   role_sum(table, n, is_server, 1, PS_SV_RECV_MSGS(PS_TAG_PUSH))) ||
             set_i(o, "pull_bytes_total", req_b + reply_b) ||
             set_i(o, "pull_request_bytes_total", req_b) ||
             set_i(o, "pull_reply_bytes_total", reply_b) ||
             set_i(o, "pull_msgs_total",
                   role_sum(table, n, is_server, 0, PS_SV_SENT_MSGS(PS_TAG_PULL))) ||
             set_i(o, "pull_requests_received_total",
                   role_sum(table, n, is_server, 1, PS_SV_RECV_MSGS(PS_TAG_PULL))) ||
             set_d(o, "bytes_per_sample", ratio(train_bytes, samples)) ||
             set_d(o, "pull_wait_fraction", ratio(wait_sum, nw)) ||
             set_d(o, "server_busy_fraction", ratio(busy_sum, ns)) ||
             role_array(o, "worker_pull_wait_fraction", table, n, is_server, 0, wait_frac, 0) ||
             role_array(o, "worker_samples", table, n, is_server, 0, samples_of, 1) ||
             role_array(o, "server_busy_fractions", table, n, is_server, 1, busy_frac, 0) ||
             role_array(o, "server_push_bytes", table, n, is_server, 1, push_recv_bytes, 1) ||
             role_array(o, "server_push_msgs", table, n, is_server, 1, push_recv_msgs, 1) ||
             role_array(o, "server_reply_bytes", table, n, is_server, 1, reply_sent_bytes, 1) ||
             set_d(o, "staleness_mean", ratio(stale_sum, stale_n)) ||
             ps_json_set(o, "staleness_hist", hist);
    if (rc) {
        ps_json_free(&o);
    }
    return o;
}

/* Appends one line to the metrics file (closed by the trainer by now). */
static int append_line(const char *path, const ps_bytes *line)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0 || ps_afile_write_all(fd, line->data, line->len) != 0) {
        PS_LOG(WARN, "%s: the summary record was not written: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return PS_EIO;
    }
    return close(fd) == 0 ? 0 : PS_EIO;
}

static void report(const ps_summary_cfg *cfg, ps_json *o, const ps_summary_figures *f)
{
    ps_bytes line = {0};
    /* Every metrics line carries the wall clock (worker/metrics.h). */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec + (double)(ts.tv_nsec / 1000) * 1e-6;
    if (ps_json_set(o, "run_id", ps_json_string(cfg->run_id)) ||
        ps_json_set(o, "time_unix", ps_json_real(now)) || ps_json_dump(o, 0, &line) ||
        PS_GROW(line.data, line.cap, line.len + 1)) {
        PS_LOG(WARN, "no summary record: out of memory");
        ps_free(line.data);
        return;
    }
    line.data[line.len++] = '\n';
    if (cfg->metrics[0]) {
        (void)append_line(cfg->metrics, &line);
    }
    if (!cfg->quiet) {
        PS_LOG(INFO,
               "summary: %.0f samples/s over %.2f s of training (start-up %.2f s, evaluation "
               "%.2f s, checkpoints %.2f s apart); workers pushed %.1f MB in %.0f messages and "
               "pulled %.1f MB; pull wait %.0f%%, servers busy %.0f%%%s",
               f->samples_per_sec, f->train_s, f->load_s, f->eval_s, f->ckpt_s, f->push_bytes / 1e6,
               f->push_msgs, f->pull_bytes / 1e6, 100 * f->pull_wait, 100 * f->server_busy,
               cfg->metrics[0] ? " (the summary record of --metrics)" : "");
    }
    ps_free(line.data);
}

int ps_summary_run(ps_comm *world, const ps_summary_cfg *cfg)
{
    ps_stats *st = ps_comm_stats(world);
    ps_stats_phase(st, PS_PHASE_DONE);
    int n = ps_comm_size(world);
    double *table = ps_malloc(sizeof(double) * (size_t)n * PS_STATS_NVALS);
    int rc = ps_comm_agree(world, table ? 0 : PS_ENOMEM);
    if (rc == 0 && (rc = ps_stats_gather(world, st, table)) == 0 &&
        ps_comm_rank(world) == cfg->coordinator) {
        ps_summary_figures f;
        ps_json *o = ps_summary_build(table, n, cfg->is_server, cfg->coordinator, &f);
        if (o) {
            report(cfg, o, &f);
        } else {
            PS_LOG(WARN, "no summary record: out of memory");
        }
        ps_json_free(&o);
    }
    ps_free(table);
    return rc;
}
