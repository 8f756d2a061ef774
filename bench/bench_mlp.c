/* Worker compute throughput of worker/model.c, on one OpenBLAS thread.
 * 1. MLP 784-1000-1000-10, batch 128, dropout 0.2 input / 0.5 hidden:
 *    forward+backward samples/s, beside the time of the same 8 sgemm calls
 *    (same shapes, back to back, interleaved with the steps) in the same
 *    run, giving the share of the step spent outside BLAS; also with an
 *    Adam update of every parameter (server/optim.c), the figure to set
 *    beside bench/torch_mlp.py.
 * 2. Sparse logistic regression, 2^20 features, 2 classes, 100 non-zeros
 *    per row, batch 1000: batch keys and gradient, non-zeros/s.
 * 3. With --run-steps N: N steps of MLP fwd+bwd+adam in a row (state
 *    carried), mean samples/s: bench_e2e.sh's in-process bound.
 * Every rank of adamps flushes subnormals (cli/fpu.h); so does this.
 * MLP figures are medians over 140 interleaved steps, sparse ones over 7
 * repetitions of 20 calls. Prints a table; if BENCH_JSON names a file,
 * appends one JSON object per row. No MPI. */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "cli/fpu.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/rng.h"
#include "common/table.h"
#include "server/optim.h"
#include "worker/model.h"

enum { REPS = 7, MLP_STEPS = 20, BATCH = 128, SP_BATCH = 1000, SP_NNZ = 100, SP_STEPS = 20 };
#define MAXT 16

static void append_json(const char *path, const char *line)
{
    FILE *f = fopen(path, "a");
    if (!f) {
        PS_LOG(ERROR, "bench: cannot append to %s", path);
        return;
    }
    fprintf(f, "%s\n", line);
    fclose(f);
}

/* Parameters, gradients and Adam state for every table of m, initialised
 * as a server would. */
typedef struct {
    uint32_t nt;
    float *p[MAXT], *g[MAXT], *mom[MAXT], *var[MAXT];
    size_t len[MAXT];
} params;

static int params_init(params *ps, const ps_model *m, const ps_keylist *keys)
{
    memset(ps, 0, sizeof *ps);
    ps->nt = ps_model_ntables(m);
    for (uint32_t t = 0; t < ps->nt; t++) {
        const ps_table_desc *d = ps_model_table(m, t);
        ps->len[t] = keys[t].n * d->width;
        size_t bytes = (ps->len[t] ? ps->len[t] : 1) * sizeof(float);
        ps->p[t] = ps_aligned_alloc(64, bytes);
        ps->g[t] = ps_aligned_alloc(64, bytes);
        ps->mom[t] = ps_aligned_alloc(64, bytes);
        ps->var[t] = ps_aligned_alloc(64, bytes);
        if (!ps->p[t] || !ps->g[t] || !ps->mom[t] || !ps->var[t]) {
            return PS_ENOMEM;
        }
        for (size_t i = 0; i < keys[t].n; i++) {
            ps_table_init_row(d, 1, t, keys[t].keys[i], ps->p[t] + i * d->width);
        }
        memset(ps->mom[t], 0, bytes);
        memset(ps->var[t], 0, bytes);
    }
    return 0;
}

static void params_fini(params *ps)
{
    for (uint32_t t = 0; t < ps->nt; t++) {
        ps_aligned_free(ps->p[t]);
        ps_aligned_free(ps->g[t]);
        ps_aligned_free(ps->mom[t]);
        ps_aligned_free(ps->var[t]);
    }
}

/* The sgemm calls of one MLP step (3 forward, 3 weight gradients, 2 input
 * gradients) on buffers of the same shapes. */
static void sgemm_only(const int *dims, int nl, int n, float *const *a, float *const *w,
                       float *const *gw, float *d0, float *d1)
{
    for (int l = 1; l <= nl; l++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, dims[l], dims[l - 1], 1.0f,
                    a[l - 1], dims[l - 1], w[l], dims[l], 0.0f, a[l], dims[l]);
    }
    for (int l = nl; l >= 1; l--) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dims[l - 1], dims[l], n, 1.0f,
                    a[l - 1], dims[l - 1], d0, dims[l], 0.0f, gw[l], dims[l]);
        if (l > 1) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, dims[l - 1], dims[l], 1.0f, d0,
                        dims[l], w[l], dims[l], 0.0f, d1, dims[l - 1]);
        }
    }
}

static int bench_mlp(const char *json, int run_steps)
{
    ps_model_cfg c = {0};
    c.kind = PS_MODEL_MLP;
    c.in_dim = 784;
    c.nclasses = 10;
    c.nhidden = 2;
    c.hidden[0] = 1000;
    c.hidden[1] = 1000;
    c.dropout_input = 0.2f;
    c.dropout_hidden = 0.5f;
    c.init_override = -1;
    c.seed = 7;
    c.max_batch = BATCH;
    ps_model *m = NULL;
    ps_keylist keys[MAXT] = {{0}};
    params ps = {0};
    float *x = NULL;
    int32_t *y = NULL;
    float *sa[4] = {0}, *sw[4] = {0}, *sg[4] = {0}, *d0 = NULL, *d1 = NULL;
    int rc = ps_model_create(&m, &c);
    if (rc) {
        goto done;
    }
    rc = PS_ENOMEM;
    x = ps_aligned_alloc(64, (size_t)BATCH * 784 * sizeof *x);
    y = ps_malloc(BATCH * sizeof *y);
    if (!x || !y) {
        goto done;
    }
    ps_rng r;
    ps_rng_seed(&r, 3);
    for (size_t i = 0; i < (size_t)BATCH * 784; i++) { /* pixel-like: [0, 1), 40% zero */
        double u = ps_rng_uniform(&r);
        x[i] = u < 0.4 ? 0.0f : (float)u;
    }
    for (int i = 0; i < BATCH; i++) {
        y[i] = (int32_t)ps_rng_below(&r, 10);
    }
    ps_batch b = {BATCH, 784, 10, 0, x, NULL, NULL, NULL, y};
    if ((rc = ps_model_batch_keys(m, &b, keys)) || (rc = params_init(&ps, m, keys))) {
        goto done;
    }
    int dims[] = {784, 1000, 1000, 10};
    rc = PS_ENOMEM;
    for (int l = 0; l < 4; l++) {
        sa[l] = ps_aligned_alloc(64, (size_t)BATCH * dims[l] * sizeof(float));
        if (!sa[l] || (l && (!(sw[l] = ps_aligned_alloc(64, (size_t)dims[l - 1] * dims[l] * 4)) ||
                             !(sg[l] = ps_aligned_alloc(64, (size_t)dims[l - 1] * dims[l] * 4))))) {
            goto done;
        }
        memset(sa[l], 0, (size_t)BATCH * dims[l] * sizeof(float));
        if (l) {
            memcpy(sw[l], ps.p[2 * (l - 1)], (size_t)dims[l - 1] * dims[l] * 4);
        }
    }
    memcpy(sa[0], x, (size_t)BATCH * 784 * sizeof *x);
    d0 = ps_aligned_alloc(64, (size_t)BATCH * 1000 * sizeof(float));
    d1 = ps_aligned_alloc(64, (size_t)BATCH * 1000 * sizeof(float));
    if (!d0 || !d1) {
        goto done;
    }
    for (size_t i = 0; i < (size_t)BATCH * 1000; i++) {
        d0[i] = 1e-3f * (float)(i % 7);
    }
    ps_opt_hp hp;
    ps_opt_defaults(&hp, PS_OPT_ADAM);
    /* Step, sgemm calls and Adam interleaved one by one, so a burst of load
     * from other processes hits all three alike; medians over every call. */
    enum { NS = REPS * MLP_STEPS };
    double t_step[NS], t_gemm[NS], t_adam[NS], loss = 0.0;
    for (int s = -MLP_STEPS; s < NS; s++) { /* the first MLP_STEPS warm caches and OpenBLAS */
        uint64_t step = (uint64_t)(s + MLP_STEPS + 1);
        double t0 = bench_now_s();
        rc = ps_model_forward_backward(m, &b, keys, (const float *const *)ps.p, ps.g, step, &loss);
        if (rc) {
            goto done;
        }
        double t1 = bench_now_s();
        sgemm_only(dims, 3, BATCH, sa, sw, sg, d0, d1);
        double t2 = bench_now_s();
        for (uint32_t t = 0; t < ps.nt; t++) {
            float *st[2] = {ps.mom[t], ps.var[t]};
            ps_opt_step(&hp, ps.p[t], st, ps.g[t], ps.len[t], (int64_t)step);
        }
        double t3 = bench_now_s();
        if (s >= 0) {
            t_step[s] = t1 - t0;
            t_gemm[s] = t2 - t1;
            t_adam[s] = t3 - t2;
        }
    }
    /* The end-to-end bound: run_steps steps of fwd+bwd+adam back to back,
     * Adam's state carried from step to step as a server's is, so a slow-down
     * that builds up (subnormal m and v) shows here as it would in training. */
    double t_run = 0.0;
    if (run_steps > 0) {
        double r0 = bench_now_s();
        for (int s = 0; s < run_steps; s++) {
            uint64_t step = (uint64_t)(NS + MLP_STEPS + 1 + s);
            rc = ps_model_forward_backward(m, &b, keys, (const float *const *)ps.p, ps.g, step,
                                           &loss);
            if (rc) {
                goto done;
            }
            for (uint32_t t = 0; t < ps.nt; t++) {
                float *st[2] = {ps.mom[t], ps.var[t]};
                ps_opt_step(&hp, ps.p[t], st, ps.g[t], ps.len[t], (int64_t)step);
            }
        }
        t_run = (bench_now_s() - r0) / run_steps;
    }
    double ts = bench_median(t_step, NS), tg = bench_median(t_gemm, NS),
           ta = bench_median(t_adam, NS);
    double share = (ts - tg) / ts;
    printf("\nMLP 784-1000-1000-10, batch %d, dropout 0.2/0.5, median of %d steps\n", BATCH, NS);
    printf("%-22s %10s %12s %12s %12s %10s\n", "row", "step_ms", "samples/s", "sgemm_ms",
           "non_blas_ms", "non_blas");
    printf("%-22s %10.3f %12.0f %12.3f %12.3f %9.1f%%\n", "fwd+bwd", ts * 1e3, BATCH / ts, tg * 1e3,
           (ts - tg) * 1e3, 100.0 * share);
    printf("%-22s %10.3f %12.0f %12s %12.3f %10s\n", "fwd+bwd+adam", (ts + ta) * 1e3,
           BATCH / (ts + ta), "", ta * 1e3, "");
    if (run_steps > 0) {
        printf("%-22s %10.3f %12.0f   (mean over %d steps in a row)\n", "fwd+bwd+adam run",
               t_run * 1e3, BATCH / t_run, run_steps);
    }
    printf("(last loss %.4f)\n", loss);
    if (json && *json) {
        char line[512];
        snprintf(line, sizeof line,
                 "{\"bench\":\"mlp_step\",\"core\":\"%s\",\"threads\":%d,\"batch\":%d,"
                 "\"step_ms\":%.4f,\"samples_per_sec\":%.1f,\"sgemm_ms\":%.4f,"
                 "\"non_blas_share\":%.4f,\"adam_ms\":%.4f,\"samples_per_sec_with_adam\":%.1f}",
                 openblas_get_corename(), openblas_get_num_threads(), BATCH, ts * 1e3, BATCH / ts,
                 tg * 1e3, share, ta * 1e3, BATCH / (ts + ta));
        append_json(json, line);
        if (run_steps > 0) {
            snprintf(line, sizeof line,
                     "{\"bench\":\"mlp_run\",\"batch\":%d,\"steps\":%d,\"step_ms\":%.4f,"
                     "\"samples_per_sec\":%.1f,\"ftz\":%d}",
                     BATCH, run_steps, t_run * 1e3, BATCH / t_run, ps_fpu_denormals_flushed());
            append_json(json, line);
        }
    }
    rc = 0;
done:
    for (int l = 0; l < 4; l++) {
        ps_aligned_free(sa[l]);
        ps_aligned_free(sw[l]);
        ps_aligned_free(sg[l]);
    }
    ps_aligned_free(d0);
    ps_aligned_free(d1);
    params_fini(&ps);
    ps_model_keys_fini(keys, MAXT);
    ps_aligned_free(x);
    ps_free(y);
    ps_model_destroy(&m);
    return rc;
}

static int bench_sparse(const char *json)
{
    const uint64_t dim = UINT64_C(1) << 20;
    ps_model_cfg c = {0};
    c.kind = PS_MODEL_LOGREG;
    c.in_dim = dim;
    c.nclasses = 2;
    c.sparse_input = 1;
    c.init_override = PS_INIT_NORMAL;
    c.max_batch = SP_BATCH;
    ps_model *m = NULL;
    ps_keylist keys[2] = {{0}};
    params ps = {0};
    size_t nnz = (size_t)SP_BATCH * SP_NNZ;
    uint64_t *indptr = ps_malloc((SP_BATCH + 1) * sizeof *indptr);
    uint64_t *idx = ps_malloc(nnz * sizeof *idx);
    float *val = ps_malloc(nnz * sizeof *val);
    int32_t *y = ps_malloc(SP_BATCH * sizeof *y);
    int rc = PS_ENOMEM;
    if (!indptr || !idx || !val || !y || (rc = ps_model_create(&m, &c))) {
        goto done;
    }
    ps_rng r;
    ps_rng_seed(&r, 5);
    /* Ascending ids per row: 100 strata of dim / 100, one id in each. */
    for (size_t i = 0; i < SP_BATCH; i++) {
        indptr[i] = i * SP_NNZ;
        for (size_t k = 0; k < SP_NNZ; k++) {
            uint64_t stratum = dim / SP_NNZ;
            idx[i * SP_NNZ + k] = k * stratum + ps_rng_below(&r, stratum);
            val[i * SP_NNZ + k] = (float)ps_rng_uniform(&r);
        }
        y[i] = (int32_t)ps_rng_below(&r, 2);
    }
    indptr[SP_BATCH] = nnz;
    ps_batch b = {SP_BATCH, dim, 2, 1, NULL, indptr, idx, val, y};
    if ((rc = ps_model_batch_keys(m, &b, keys)) || (rc = params_init(&ps, m, keys))) {
        goto done;
    }
    double t_keys[REPS], t_grad[REPS], loss = 0.0;
    for (int rep = -1; rep < REPS; rep++) {
        double t0 = bench_now_s();
        for (int s = 0; s < SP_STEPS; s++) {
            if ((rc = ps_model_batch_keys(m, &b, keys))) {
                goto done;
            }
        }
        double t1 = bench_now_s();
        for (int s = 0; s < SP_STEPS; s++) {
            rc = ps_model_forward_backward(m, &b, keys, (const float *const *)ps.p, ps.g,
                                           (uint64_t)s + 1, &loss);
            if (rc) {
                goto done;
            }
        }
        double t2 = bench_now_s();
        if (rep >= 0) {
            t_keys[rep] = (t1 - t0) / SP_STEPS;
            t_grad[rep] = (t2 - t1) / SP_STEPS;
        }
    }
    double tk = bench_median(t_keys, REPS), tg = bench_median(t_grad, REPS);
    printf("\nsparse logreg, 2^20 features, 2 classes, %d nnz/row, batch %d (%zu unique keys), "
           "median of %d x %d\n",
           SP_NNZ, SP_BATCH, keys[0].n, REPS, SP_STEPS);
    printf("%-22s %10s %12s\n", "row", "ms", "Mnnz/s");
    printf("%-22s %10.3f %12.1f\n", "batch_keys", tk * 1e3, nnz / tk * 1e-6);
    printf("%-22s %10.3f %12.1f\n", "forward_backward", tg * 1e3, nnz / tg * 1e-6);
    printf("%-22s %10.3f %12.1f\n", "keys+gradient", (tk + tg) * 1e3, nnz / (tk + tg) * 1e-6);
    if (json && *json) {
        char line[512];
        snprintf(line, sizeof line,
                 "{\"bench\":\"sparse_logreg_grad\",\"features\":%llu,\"nnz\":%zu,"
                 "\"unique_keys\":%zu,\"keys_ms\":%.4f,\"grad_ms\":%.4f,"
                 "\"nnz_per_sec\":%.0f,\"nnz_per_sec_with_keys\":%.0f}",
                 (unsigned long long)dim, nnz, keys[0].n, tk * 1e3, tg * 1e3, nnz / tg,
                 nnz / (tk + tg));
        append_json(json, line);
    }
    rc = 0;
done:
    params_fini(&ps);
    ps_model_keys_fini(keys, 2);
    ps_model_destroy(&m);
    ps_free(indptr);
    ps_free(idx);
    ps_free(val);
    ps_free(y);
    return rc;
}

int main(int argc, char **argv)
{
    const char *json = getenv("BENCH_JSON");
    int run_steps = 0;
    if (argc == 3 && strcmp(argv[1], "--run-steps") == 0) {
        run_steps = atoi(argv[2]);
    }
    if (argc != 1 && (argc != 3 || run_steps < 1)) {
        fprintf(stderr, "usage: bench_mlp [--run-steps N]\n");
        return 2;
    }
    /* As every adamps rank does (cli/main.c), so the bound runs the same math. */
    (void)ps_fpu_flush_denormals();
    openblas_set_num_threads(1);
    printf("worker compute, OpenBLAS core %s, %d thread(s)\n", openblas_get_corename(),
           openblas_get_num_threads());
    int rc = bench_mlp(json, run_steps);
    if (!rc) {
        rc = bench_sparse(json);
    }
    if (rc) {
        fprintf(stderr, "bench_mlp: %s\n", ps_strerror(rc));
    }
    return rc ? 1 : 0;
}
