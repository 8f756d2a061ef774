#include "worker/progress.h"

#include <math.h>
#include <stdio.h>

#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/metrics.h"

double ps_progress_eta(const ps_progress *p)
{
    if (p->steps_done == 0 && p->evals_done == 0) {
        return -1;
    }
    double train = p->elapsed_s - p->eval_s;
    double per_step = p->steps_done ? (train > 0 ? train : 0) / (double)p->steps_done : 0;
    double per_eval = p->evals_done ? p->eval_s / (double)p->evals_done : 0;
    return per_step * (double)p->steps_left + per_eval * (double)p->evals_left;
}

uint64_t ps_progress_evals_left(uint64_t next, uint64_t total, uint64_t every)
{
    if (next > total) {
        return 0;
    }
    /* Multiples of every in [max(next, 1), total - 1], then the final one. */
    uint64_t lo = next ? next : 1, mid = 0;
    if (every && total > lo) {
        mid = (total - 1) / every - (lo - 1) / every;
    }
    return mid + 1;
}

void ps_progress_hms(double secs, char *buf, size_t len)
{
    if (!isfinite(secs) || secs < 0 || secs > 9.0e15) {
        snprintf(buf, len, "-:--:--");
        return;
    }
    unsigned long long s = (unsigned long long)llround(secs);
    snprintf(buf, len, "%llu:%02llu:%02llu", s / 3600, s / 60 % 60, s % 60);
}

void ps_progress_log(const ps_progress_line *l, int json)
{
    char hms[32];
    ps_progress_hms(l->eta_s, hms, sizeof hms);
    ps_json *f = NULL;
    if (json) {
        ps_metric_kv kv[] = {
            PS_METRIC_S("event", "progress"),
            PS_METRIC_I("step", (int64_t)l->step),
            PS_METRIC_I("steps_total", (int64_t)l->steps_total),
            PS_METRIC_D("epoch", l->epoch),
            PS_METRIC_D("samples_per_sec", l->samples_per_sec),
            PS_METRIC_D("train_loss_ma", l->train_loss_ma),
            PS_METRIC_D("push_bytes_per_sec", l->push_bytes_per_sec),
            PS_METRIC_D("pull_bytes_per_sec", l->pull_bytes_per_sec),
            PS_METRIC_D("eta_s", l->eta_s >= 0 ? l->eta_s : NAN),
            PS_METRIC_S("eta", hms),
        };
        int rc;
        /* Out of memory: the line goes out without its fields. */
        f = ps_metrics_object(kv, sizeof kv / sizeof kv[0], &rc);
    }
    ps_log_fields(PS_LOG_INFO, f,
                  "epoch %.2f step %llu/%llu  %.0f samples/s  train_loss_ma %.4f  push %.1f MB/s "
                  "pull %.1f MB/s  eta %s",
                  l->epoch, (unsigned long long)l->step, (unsigned long long)l->steps_total,
                  l->samples_per_sec, l->train_loss_ma, l->push_bytes_per_sec / 1e6,
                  l->pull_bytes_per_sec / 1e6, hms);
}

void ps_progress_print_final(const ps_progress_final *f, int json, FILE *out)
{
    if (json) {
        ps_metric_kv kv[] = {
            PS_METRIC_S("event", "final"),
            PS_METRIC_I("step", (int64_t)f->step),
            PS_METRIC_D("test_loss", f->test_loss),
            PS_METRIC_D("test_acc", f->test_acc),
            PS_METRIC_D("time_s", f->time_s),
            PS_METRIC_D("samples_per_sec", f->samples_per_sec),
            PS_METRIC_S("run_id", f->run_id),
        };
        int rc;
        ps_json *o = ps_metrics_object(kv, sizeof kv / sizeof kv[0], &rc);
        ps_bytes text = {0};
        if (o && ps_json_dump(o, 0, &text) == 0) {
            fprintf(out, "%.*s\n", (int)text.len, (const char *)text.data);
        }
        ps_free(text.data);
        ps_json_free(&o);
    } else {
        char acc[32] = "null";
        if (!isnan(f->test_acc)) {
            snprintf(acc, sizeof acc, "%.4f", f->test_acc);
        }
        fprintf(out,
                "final step=%llu test_loss=%.6f test_acc=%s time_s=%.2f samples_per_sec=%.1f\n",
                (unsigned long long)f->step, f->test_loss, acc, f->time_s, f->samples_per_sec);
    }
    fflush(out);
}
