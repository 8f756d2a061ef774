/* Tests for worker/train: whole small jobs in one process, servers and
 * workers as threads on the loop comm backend (ps_worker_run against the
 * servers' request loop), configured from a flag list through cli/ as
 * `adamps train` does. The servers' final arrays are copied out and
 * compared:
 *   - evaluating every step trains bit for bit what evaluating never does
 *     (sparse logreg, the dense MLP, temporal averaging);
 *   - W workers with batch B compute what one worker with batch W * B does
 *     on the same samples, with --l2 and with parts of different sizes (a
 *     short last batch and an empty push at the end of the epoch);
 *   - the metrics carry train_loss_ma and, with --eval-train, train_nll,
 *     the NLL of the first N training samples at the final parameters;
 *   - the comm counters are the job's: what the workers sent each server,
 *     push by push and pull by pull, is what that server received, and the
 *     gathered summary adds up to it.
 * Data are tiny: the synthetic generator, and libsvm and IDX files written
 * here. OpenBLAS runs one thread, as the jobs do. */
#include <cblas.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cfg.h"
#include "cli/job.h"
#include "cli/summary.h"
#include "common/comm.h"
#include "common/err.h"
#include "common/mem.h"
#include "common/rng.h"
#include "common/shard.h"
#include "common/stats.h"
#include "data/source.h"
#include "data/synth.h"
#include "server/server.h"
#include "tests/unit/ps_test.h"
#include "tests/unit/ps_test_loop.h"
#include "worker/model.h"
#include "worker/train.h"

#define MAXR 6
#define MAXARGS 40
#define EVAL_BATCH 1000 /* cli/train.c's */

/* One server's copy of one table at the end of a job. */
typedef struct {
    uint64_t nslots;
    uint32_t width;
    float *w;
    double *avg; /* NULL without averaging */
} table_copy;

typedef struct {
    ps_cfg cfg;
    ps_source_spec spec;
    ps_table_desc tables[PS_MODEL_MAX_TABLES];
    uint32_t ntables, nservers, nworkers;
    int server_ranks[MAXR], worker_ranks[MAXR];
    table_copy out[MAXR][PS_MODEL_MAX_TABLES]; /* [server][table] */
    /* Each rank's counters at the end: [rank][peer][tag] sent, received;
     * and rank 0's copy of the gathered records. */
    ps_stats_count sent[MAXR][MAXR][PS_STATS_NTAGS], recvd[MAXR][MAXR][PS_STATS_NTAGS];
    double gathered[MAXR * PS_STATS_NVALS];
} job;

typedef struct {
    job *j;
    int rank;
} rank_arg;

/* Workers are ranks 0..W-1 (worker 0 the coordinator), servers the rest. */
static void job_init(job *j, uint32_t nworkers, uint32_t nservers, const char *const *flags)
{
    const char *argv[MAXARGS] = {"adamps", "train", "--quiet"};
    int argc = 3;
    for (; flags[argc - 3]; argc++) {
        assert_true(argc < MAXARGS);
        argv[argc] = flags[argc - 3];
    }
    memset(j, 0, sizeof *j);
    char err[256];
    int rc = ps_cfg_parse(&j->cfg, argc, (char **)argv, err, sizeof err);
    if (rc) {
        print_error("flags: %s\n", err);
    }
    assert_int_equal(rc, 0);
    ps_source_cfg src;
    ps_job_source_cfg(&j->cfg, &src);
    assert_int_equal(ps_source_probe(&src, &j->spec), 0);
    ps_model_cfg mc;
    ps_job_model_cfg(&j->cfg, &j->spec, 0, EVAL_BATCH, &mc);
    assert_int_equal(ps_model_tables(&mc, j->tables, PS_MODEL_MAX_TABLES, &j->ntables), 0);
    j->nworkers = nworkers;
    j->nservers = nservers;
    assert_true(nworkers + nservers <= MAXR);
    for (uint32_t r = 0; r < nworkers + nservers; r++) {
        if (r < nworkers) {
            j->worker_ranks[r] = (int)r;
        } else {
            j->server_ranks[r - nworkers] = (int)r;
        }
    }
}

static void job_fini(job *j)
{
    for (uint32_t s = 0; s < j->nservers; s++) {
        for (uint32_t t = 0; t < j->ntables; t++) {
            ps_free(j->out[s][t].w);
            ps_free(j->out[s][t].avg);
        }
    }
}

static int copy_out(job *j, uint32_t server, ps_store *st)
{
    for (uint32_t t = 0; t < j->ntables; t++) {
        ps_store_arrays a;
        ps_store_arrays_get(st, t, &a);
        table_copy *c = &j->out[server][t];
        size_t n = (size_t)a.nslots * a.width;
        c->nslots = a.nslots;
        c->width = a.width;
        if (!(c->w = ps_malloc(n * sizeof(float) + 1)) ||
            (a.avg && !(c->avg = ps_malloc(n * sizeof(double) + 1)))) {
            return PS_ENOMEM;
        }
        memcpy(c->w, a.w, n * sizeof(float));
        if (a.avg) {
            memcpy(c->avg, a.avg, n * sizeof(double));
        }
    }
    return 0;
}

/* ps_server_run's loop, keeping the store to copy it out at the end. */
static int run_server(job *j, ps_comm *world, uint32_t server)
{
    ps_server_cfg sc;
    ps_job_server_cfg(&j->cfg, &sc);
    sc.nworkers = j->nworkers;
    sc.worker_ranks = j->worker_ranks;
    sc.config_text = "test_train";
    sc.store.tables = j->tables;
    sc.store.ntables = j->ntables;
    sc.store.server = server;
    sc.store.nservers = j->nservers;
    ps_server *srv = NULL;
    int rc = ps_comm_agree(world, ps_server_create(&srv, &sc, world));
    while (rc == 0 && !ps_server_is_done(srv)) {
        ps_comm_msg m;
        if ((rc = ps_comm_recv(world, PS_ANY, PS_ANY, 1, &m)) == 0) {
            rc = ps_server_handle(srv, &m);
        }
    }
    if (rc == 0) {
        rc = copy_out(j, server, ps_server_store(srv));
    }
    ps_server_destroy(&srv);
    return rc;
}

/* What cli/train.c builds for a worker. */
static int run_worker(job *j, ps_comm *world, ps_comm *workers, uint32_t worker)
{
    ps_worker_cfg wc;
    ps_job_worker_cfg(&j->cfg, &wc);
    ps_job_model_cfg(&j->cfg, &j->spec, worker, EVAL_BATCH, &wc.model);
    wc.spec = j->spec;
    wc.config_text = "test_train";
    wc.nservers_running = j->nservers;
    wc.client = (ps_client_cfg){.tables = j->tables,
                                .ntables = j->ntables,
                                .nservers = j->nservers,
                                .server_ranks = j->server_ranks,
                                .shard = j->cfg.shard,
                                .worker = worker,
                                .nworkers = j->nworkers};
    return ps_worker_run(&wc, world, workers);
}

static int rank_main(ps_comm *world, void *arg)
{
    rank_arg *a = arg;
    job *j = a->j;
    int server = a->rank >= (int)j->nworkers;
    ps_comm *workers = NULL;
    int rc = ps_comm_split(world, server ? -1 : 0, &workers);
    if (rc == 0) {
        rc = server ? run_server(j, world, (uint32_t)a->rank - j->nworkers)
                    : run_worker(j, world, workers, (uint32_t)a->rank);
    }
    ps_stats *st = ps_comm_stats(world);
    for (int p = 0; p < ps_comm_size(world); p++) {
        for (int t = 0; t < PS_STATS_NTAGS; t++) {
            j->sent[a->rank][p][t] = ps_stats_sent(st, p, t);
            j->recvd[a->rank][p][t] = ps_stats_received(st, p, t);
        }
    }
    static _Thread_local double table[MAXR * PS_STATS_NVALS];
    if (rc == 0 && (rc = ps_stats_gather(world, st, table)) == 0 && a->rank == 0) {
        memcpy(j->gathered, table, sizeof j->gathered);
    }
    ps_comm_destroy(&workers);
    return rc;
}

static void job_run(job *j)
{
    rank_arg args[MAXR];
    int rcs[MAXR];
    int n = (int)(j->nworkers + j->nservers);
    for (int r = 0; r < n; r++) {
        args[r] = (rank_arg){.j = j, .rank = r};
    }
    ps_test_run_same(n, rank_main, args, sizeof args[0], rcs);
    for (int r = 0; r < n; r++) {
        assert_int_equal(rcs[r], 0);
    }
}

/* Runs a job of W workers and S servers with the given flags. */
static void run(job *j, uint32_t nworkers, uint32_t nservers, const char *const *flags)
{
    job_init(j, nworkers, nservers, flags);
    job_run(j);
}

/* Whether two jobs of the same layout ended with the same bits in every
 * table's w (and temporal average). */
static int same_bits(const job *a, const job *b)
{
    for (uint32_t s = 0; s < a->nservers; s++) {
        for (uint32_t t = 0; t < a->ntables; t++) {
            const table_copy *x = &a->out[s][t], *y = &b->out[s][t];
            size_t n = (size_t)x->nslots * x->width;
            if (x->nslots != y->nslots || memcmp(x->w, y->w, n * sizeof(float)) != 0 ||
                (x->avg == NULL) != (y->avg == NULL) ||
                (x->avg && memcmp(x->avg, y->avg, n * sizeof(double)) != 0)) {
                return 0;
            }
        }
    }
    return 1;
}

/* Largest |w_a - w_b| over every table of every server of two jobs of the
 * same layout. */
static double max_diff_all(const job *a, const job *b)
{
    double d = 0;
    for (uint32_t s = 0; s < a->nservers; s++) {
        for (uint32_t t = 0; t < a->ntables; t++) {
            const table_copy *x = &a->out[s][t], *y = &b->out[s][t];
            for (size_t i = 0; i < (size_t)x->nslots * x->width; i++) {
                d = fmax(d, fabs((double)x->w[i] - (double)y->w[i]));
            }
        }
    }
    return d;
}

/* Largest |w_a - w_b| over table t of two one-server jobs, and the largest
 * |w_a| there. */
static double max_diff(const job *a, const job *b, uint32_t t, double *max_w)
{
    const table_copy *x = &a->out[0][t], *y = &b->out[0][t];
    assert_int_equal(x->nslots, y->nslots);
    double d = 0, m = 0;
    for (size_t i = 0; i < (size_t)x->nslots * x->width; i++) {
        d = fmax(d, fabs((double)x->w[i] - (double)y->w[i]));
        m = fmax(m, fabs((double)x->w[i]));
    }
    *max_w = m;
    return d;
}

/* ---- data ----------------------------------------------------------------- */

/* Sample i of a small sparse problem: 5 distinct features in 1..200 (small
 * ids more frequent, so workers share rows of w and also touch rows of
 * their own), values in (0, 1), a label in 0..2 that depends on them. */
typedef struct {
    int label;
    uint32_t f[5];
    float v[5];
} svm_row;

static svm_row svm_sample(uint64_t i)
{
    svm_row r;
    for (int k = 0, draw = 0; k < 5; draw++) {
        double u = ps_rng_unit_double(ps_rng_hash(99, i, (uint64_t)draw, 7));
        uint32_t f = 1 + (uint32_t)(200.0 * u * u);
        int dup = 0;
        for (int q = 0; q < k; q++) {
            dup |= r.f[q] == f;
        }
        if (!dup) {
            r.f[k] = f;
            r.v[k] = 0.05f + 0.9f * ps_rng_unit_float(ps_rng_hash(99, i, (uint64_t)draw, 3));
            k++;
        }
    }
    /* ascending ids, values alongside */
    for (int a = 1; a < 5; a++) {
        for (int b = a; b > 0 && r.f[b - 1] > r.f[b]; b--) {
            uint32_t tf = r.f[b];
            float tv = r.v[b];
            r.f[b] = r.f[b - 1];
            r.v[b] = r.v[b - 1];
            r.f[b - 1] = tf;
            r.v[b - 1] = tv;
        }
    }
    r.label = (int)((r.f[0] + r.f[4]) % 3);
    return r;
}

/* One libsvm line of exactly len bytes: the sample, then a comment as
 * padding, so byte ranges can be made to split between chosen rows. */
static void svm_line(FILE *f, const svm_row *r, int len)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%d", r->label);
    for (int k = 0; k < 5; k++) {
        n += snprintf(buf + n, sizeof buf - (size_t)n, " %03u:%.4f", r->f[k], (double)r->v[k]);
    }
    assert_true(n + 3 <= len && len < (int)sizeof buf);
    buf[n++] = ' ';
    while (n < len - 1) {
        buf[n++] = '#';
    }
    buf[n++] = '\n';
    assert_int_equal(fwrite(buf, 1, (size_t)n, f), (size_t)n);
}

/* The files of a W x B against 1 x (W B) comparison. Part 0 holds samples
 * [0, n0) in lines of len0 bytes, part 1 samples [n0, n0 + n1) in lines of
 * len1, with n0 len0 = n1 len1, so two workers split the file between the
 * parts. The second file interleaves them, batch by batch, so that one
 * worker's batch of 2B is clock for clock the union of the two workers'
 * batches of B (shuffle off). */
static void write_split_files(const char *two, const char *one, uint32_t n0, int len0, uint32_t n1,
                              int len1, uint32_t batch)
{
    assert_int_equal((long)n0 * len0, (long)n1 * len1);
    FILE *a = fopen(two, "w"), *b = fopen(one, "w");
    assert_non_null(a);
    assert_non_null(b);
    for (uint32_t i = 0; i < n0 + n1; i++) {
        svm_row r = svm_sample(i);
        svm_line(a, &r, i < n0 ? len0 : len1);
    }
    for (uint32_t c = 0; c * batch < (n0 > n1 ? n0 : n1); c++) {
        for (uint32_t p = 0; p < 2; p++) {
            uint32_t first = p ? n0 : 0, n = p ? n1 : n0;
            for (uint32_t i = c * batch; i < (c + 1) * batch && i < n; i++) {
                svm_row r = svm_sample(first + i);
                svm_line(b, &r, 64);
            }
        }
    }
    assert_int_equal(fclose(a), 0);
    assert_int_equal(fclose(b), 0);
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* n 8x8 IDX images and their labels (0..9) under dir, MNIST names. */
static void write_idx(const char *dir, uint32_t n)
{
    char path[256];
    size_t len = 16 + (size_t)n * 64;
    uint8_t *img = test_malloc(len), *lbl = test_malloc(8 + n);
    be32(img, 0x803);
    be32(img + 4, n);
    be32(img + 8, 8);
    be32(img + 12, 8);
    be32(lbl, 0x801);
    be32(lbl + 4, n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t y = (uint32_t)(ps_rng_hash(5, i, 0, 0) % 10);
        lbl[8 + i] = (uint8_t)y;
        for (uint32_t k = 0; k < 64; k++) {
            /* a class-dependent blob plus noise */
            uint32_t on = (k % 10) == y || (k / 8) == y % 8;
            img[16 + i * 64 + k] = (uint8_t)(on * 160 + ps_rng_hash(5, i, k, 1) % 90);
        }
    }
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    ps_test_write_file(path, img, len);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    ps_test_write_file(path, lbl, 8 + n);
    test_free(img);
    test_free(lbl);
}

/* ---- 1: evaluating changes nothing --------------------------------------- */

/* Flags of a job, with or without --eval-every 1 (the job runs fewer steps
 * than an epoch, so without it only the final evaluation runs). */
static void with_eval(const char *const *base, int every_step, const char **out)
{
    int n = 0;
    for (; base[n]; n++) {
        out[n] = base[n];
    }
    if (every_step) {
        out[n++] = "--eval-every";
        out[n++] = "1";
    }
    out[n] = NULL;
}

static void expect_eval_changes_nothing(const char *what, uint32_t nw, uint32_t ns,
                                        const char *const *base)
{
    const char *flags[MAXARGS];
    job *a = test_calloc(1, sizeof *a), *b = test_calloc(1, sizeof *b);
    with_eval(base, 0, flags);
    run(a, nw, ns, flags);
    with_eval(base, 1, flags);
    run(b, nw, ns, flags);
    int same = same_bits(a, b);
    double d = max_diff_all(a, b);
    job_fini(a);
    job_fini(b);
    test_free(a);
    test_free(b);
    if (!same) {
        print_error("%s: evaluating every step changed the trained parameters (max |dw| %.3g)\n",
                    what, d);
        fail();
    }
}

static const char *const synth_logreg[] = {
    "--model", "logreg", "--synthetic", "rows=1200,features=500,nnz=8,classes=3,test=300",
    "--batch", "50",     "--steps",     "8",
    "--lr",    "0.05",   "--shard",     "hash",
    NULL};

static void test_train_eval_every_step_changes_nothing_sparse_logreg(void **state)
{
    (void)state;
    expect_eval_changes_nothing("sparse logreg", 2, 2, synth_logreg);
    const char *avg[MAXARGS];
    int n = 0;
    for (; synth_logreg[n]; n++) {
        avg[n] = synth_logreg[n];
    }
    avg[n++] = "--temporal-averaging";
    avg[n++] = "0.99";
    avg[n] = NULL;
    expect_eval_changes_nothing("sparse logreg, averaged", 2, 2, avg);
}

static void test_train_eval_every_step_changes_nothing_dense_mlp(void **state)
{
    (void)state;
    char dir[128], train[256];
    assert_int_equal(ps_test_tmpdir_create(dir, sizeof dir, "train_idx"), 0);
    write_idx(dir, 256);
    snprintf(train, sizeof train, "%s/train-images-idx3-ubyte", dir);
    const char *mlp[] = {"--model", "mlp",     "--hidden", "16",      "--train", train, "--test",
                         train,     "--batch", "32",       "--steps", "6",       NULL};
    expect_eval_changes_nothing("dense MLP", 2, 1, mlp);
    const char *avg[] = {"--model",
                         "mlp",
                         "--hidden",
                         "16",
                         "--train",
                         train,
                         "--test",
                         train,
                         "--batch",
                         "32",
                         "--steps",
                         "6",
                         "--temporal-averaging",
                         "0.99",
                         NULL};
    expect_eval_changes_nothing("dense MLP, averaged (make run's setup)", 2, 1, avg);
    assert_int_equal(ps_test_rmtree(dir), 0);
}

/* ---- 2 and 4: W workers x B = 1 worker x W B ------------------------------ */

/* A one-server logreg job of nw workers on a libsvm file, shuffle off,
 * lazy Adam. */
static void run_on_file(job *j, uint32_t nw, const char *file, uint32_t batch, const char *l2)
{
    char b[16];
    snprintf(b, sizeof b, "%u", batch);
    const char *flags[] = {"--model",  "logreg", "--train",    file,  "--test",  file,
                           "--format", "libsvm", "--features", "200", "--batch", b,
                           "--steps",  "4",      "--shuffle",  "off", "--lr",    "0.05",
                           "--l2",     l2,       NULL};
    run(j, nw, 1, flags);
}

/* 2 workers with batch 128 on `two` against 1 worker with batch 256 on
 * `one`, 4 clocks: the largest difference of w and b, and the largest
 * |w|. */
static double two_vs_one(const char *two, const char *one, const char *l2, double *max_w)
{
    job *a = test_calloc(1, sizeof *a), *b = test_calloc(1, sizeof *b);
    run_on_file(a, 2, two, 128, l2);
    run_on_file(b, 1, one, 256, l2);
    double mw, d = fmax(max_diff(a, b, 0, max_w), max_diff(a, b, 1, &mw));
    job_fini(a);
    job_fini(b);
    test_free(a);
    test_free(b);
    return d;
}

/* Parts of n0 and n1 samples (lines of len0 and len1 bytes): 2 x 128 must
 * match 1 x 256 on the same samples to 2e-6, without L2 and with --l2 0.1,
 * on weights up to about 0.2 (|w| > 0.05 shows the runs learnt something). */
static void expect_two_match_one(const char *name, uint32_t n0, int len0, uint32_t n1, int len1)
{
    char dir[128], two[256], one[256];
    assert_int_equal(ps_test_tmpdir_create(dir, sizeof dir, name), 0);
    snprintf(two, sizeof two, "%s/two.svm", dir);
    snprintf(one, sizeof one, "%s/one.svm", dir);
    write_split_files(two, one, n0, len0, n1, len1, 128);
    double w0, w1, d0 = two_vs_one(two, one, "0", &w0), d1 = two_vs_one(two, one, "0.1", &w1);
    print_message("%u + %u samples, 2 x 128 vs 1 x 256: max |dw| %.3g (max |w| %.3g), with "
                  "--l2 0.1: %.3g (max |w| %.3g)\n",
                  n0, n1, d0, w0, d1, w1);
    assert_int_equal(ps_test_rmtree(dir), 0);
    assert_true(w0 > 0.05 && w1 > 0.05);
    assert_true(d0 <= 2e-6);
    assert_true(d1 <= 2e-6);
}

/* --l2 0.1 on sparse input: a row of w that only one of the two workers
 * touched used to get half the penalty (each worker added l2 w to its own
 * rows, the server averaged them): 0.078 apart at a largest |w| of 0.079.
 * Now it is the servers', once per row per step, and the runs agree to
 * float rounding. */
static void test_train_two_workers_match_one_with_l2(void **state)
{
    (void)state;
    expect_two_match_one("train_l2", 512, 64, 512, 64);
}

/* Parts of different sizes, split by bytes: worker 0 holds 448 samples,
 * worker 1 384 (its lines are longer), so with batch 128 the last clock of
 * the epoch has 64 samples from worker 0 and an empty push from worker 1.
 * BSP weights pushes by their samples, so 2 x 128 still matches 1 x 256 on
 * the same samples (whose last batch is those 64); weighting by 1/W halved
 * that clock's gradient (0.017 apart). */
static void test_train_two_workers_match_one_with_unequal_parts(void **state)
{
    (void)state;
    expect_two_match_one("train_parts", 448, 60, 384, 70);
}

/* ---- 8: train_loss_ma and train_nll ---------------------------------------- */

/* The value of "key": in a JSON line, or NAN when absent or null. */
static double json_number(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p || strncmp(p + strlen(pat), "null", 4) == 0) {
        return NAN;
    }
    return strtod(p + strlen(pat), NULL);
}

/* The NLL without dropout of rows [0, n) of the synthetic training set at
 * the parameters the servers of j hold, computed here from the servers'
 * arrays. */
static double nll_at_end(job *j, size_t n)
{
    ps_dataset d = {0};
    ps_synth_cfg sc;
    ps_job_synth_cfg(&j->cfg, &sc);
    assert_int_equal(ps_synth_generate(&sc, 0, n, &d), 0);
    ps_model_cfg mc;
    ps_job_model_cfg(&j->cfg, &j->spec, 0, EVAL_BATCH, &mc);
    ps_model *m = NULL;
    assert_int_equal(ps_model_create(&m, &mc), 0);
    ps_keylist keys[PS_MODEL_MAX_TABLES];
    memset(keys, 0, sizeof keys);
    ps_batch b = ps_dataset_view(&d, 0, d.n);
    assert_int_equal(ps_model_batch_keys(m, &b, keys), 0);
    float *params[PS_MODEL_MAX_TABLES];
    for (uint32_t t = 0; t < j->ntables; t++) {
        ps_shard sh;
        assert_int_equal(ps_shard_init(&sh, j->tables[t].rows, j->nservers, j->cfg.shard), 0);
        uint32_t w = j->tables[t].width;
        params[t] = test_malloc(keys[t].n * w * sizeof(float) + 1);
        for (size_t i = 0; i < keys[t].n; i++) {
            uint32_t s;
            uint64_t slot;
            ps_shard_locate(&sh, keys[t].keys[i], &s, &slot);
            memcpy(params[t] + i * w, j->out[s][t].w + slot * w, w * sizeof(float));
        }
    }
    double loss = 0;
    size_t correct = 0;
    assert_int_equal(ps_model_evaluate(m, &b, keys, (const float *const *)params, &loss, &correct),
                     0);
    for (uint32_t t = 0; t < j->ntables; t++) {
        test_free(params[t]);
    }
    ps_model_keys_fini(keys, j->ntables);
    ps_model_destroy(&m);
    ps_dataset_fini(&d);
    return loss / (double)n;
}

/* Every metrics line has train_loss_ma (the old train_loss key is gone)
 * and, with --eval-train 300, train_nll; the last line's train_nll is the
 * NLL of the first 300 training samples (worker 0's part starts there) at
 * the final parameters, to 1e-12. Without --eval-train it is null. */
static void test_train_metrics_have_train_loss_ma_and_train_nll(void **state)
{
    (void)state;
    char dir[128], metrics[256];
    assert_int_equal(ps_test_tmpdir_create(dir, sizeof dir, "train_metrics"), 0);
    snprintf(metrics, sizeof metrics, "%s/m.jsonl", dir);
    for (int on = 0; on < 2; on++) {
        const char *flags[MAXARGS];
        int n = 0;
        for (; synth_logreg[n]; n++) {
            flags[n] = synth_logreg[n];
        }
        const char *more[] = {"--metrics", metrics, "--eval-every", "4", "--eval-train", "300"};
        for (int k = 0; k < (on ? 6 : 4); k++) {
            flags[n++] = more[k];
        }
        flags[n] = NULL;
        job *j = test_calloc(1, sizeof *j);
        run(j, 2, 2, flags);
        char text[8192];
        size_t len = ps_test_read_file(metrics, text, sizeof text - 1);
        text[len] = '\0';
        /* The header record, then steps 4 and 8. */
        assert_int_equal(ps_test_count_lines(text), 3);
        assert_true(strncmp(text, "{\"event\":\"header\"", 17) == 0);
        assert_null(strstr(text, "\"train_loss\":"));
        char *first = strchr(text, '\n') + 1, *last = strchr(first, '\n') + 1;
        for (char *line = first; line <= last; line = strchr(line, '\n') + 1) {
            assert_false(isnan(json_number(line, "train_loss_ma")));
            assert_true(isnan(json_number(line, "train_nll")) == !on);
            assert_false(isnan(json_number(line, "time_unix")));
        }
        if (on) {
            double want = nll_at_end(j, 300), got = json_number(last, "train_nll");
            print_message("train_nll %.9f, computed here %.9f, train_loss_ma %.6f\n", got, want,
                          json_number(last, "train_loss_ma"));
            assert_true(fabs(got - want) <= 1e-12 * fabs(want));
        }
        job_fini(j);
        test_free(j);
    }
    assert_int_equal(ps_test_rmtree(dir), 0);
}

/* Pushes, pulls and replies, each way: worker w -> server s as counted by
 * w equals s's count of what came from w; the summary's totals are the
 * sums; every push is in one server's staleness histogram, within the
 * staleness bound. */
static void expect_counters_match(const char *sync, int64_t bound)
{
    const char *flags[MAXARGS];
    int n = 0;
    for (; synth_logreg[n]; n++) {
        flags[n] = synth_logreg[n];
    }
    flags[n++] = "--consistency";
    flags[n++] = sync;
    flags[n] = NULL;
    job *j = test_calloc(1, sizeof *j);
    run(j, 2, 2, flags);
    const int tags[] = {PS_TAG_PUSH, PS_TAG_PULL, PS_TAG_REPLY};
    uint64_t pushed = 0, pushes = 0, received = 0;
    for (uint32_t w = 0; w < j->nworkers; w++) {
        for (uint32_t s = 0; s < j->nservers; s++) {
            int sr = j->server_ranks[s];
            for (int k = 0; k < 3; k++) {
                int t = tags[k], to_server = t != PS_TAG_REPLY;
                ps_stats_count out = to_server ? j->sent[w][sr][t] : j->sent[sr][w][t];
                ps_stats_count in = to_server ? j->recvd[sr][w][t] : j->recvd[w][sr][t];
                assert_true(out.msgs > 0);
                assert_int_equal(out.msgs, in.msgs);
                assert_int_equal(out.bytes, in.bytes);
            }
            pushed += j->sent[w][sr][PS_TAG_PUSH].bytes;
            pushes += j->sent[w][sr][PS_TAG_PUSH].msgs;
            received += j->recvd[sr][w][PS_TAG_PUSH].bytes;
        }
    }
    assert_int_equal(pushed, received);
    int is_server[MAXR] = {0};
    double stale = 0, beyond = 0;
    for (uint32_t s = 0; s < j->nservers; s++) {
        is_server[j->server_ranks[s]] = 1;
        const double *v = &j->gathered[(size_t)j->server_ranks[s] * PS_STATS_NVALS];
        assert_int_equal((uint64_t)v[PS_SV_RECV_MSGS(PS_TAG_PUSH)],
                         j->recvd[j->server_ranks[s]][0][PS_TAG_PUSH].msgs +
                             j->recvd[j->server_ranks[s]][1][PS_TAG_PUSH].msgs);
        for (int b = 0; b < PS_STATS_NSTALE; b++) {
            stale += v[PS_SV_STALE + b];
            beyond += b > bound ? v[PS_SV_STALE + b] : 0;
        }
    }
    assert_int_equal((uint64_t)stale, pushes);
    assert_int_equal((uint64_t)beyond, 0);
    ps_summary_figures f;
    ps_json *o = ps_summary_build(j->gathered, (int)(j->nworkers + j->nservers), is_server, 0, &f);
    assert_non_null(o);
    ps_json_free(&o);
    assert_int_equal((uint64_t)f.push_bytes, pushed);
    assert_int_equal((uint64_t)f.push_msgs, pushes);
    job_fini(j);
    test_free(j);
}

static void test_train_counters_are_the_jobs(void **state)
{
    (void)state;
    expect_counters_match("bsp", 0);
    expect_counters_match("ssp:1", 1);
}

int main(void)
{
    openblas_set_num_threads(1);
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup_mt, ps_test_teardown_mt)
        T(test_train_eval_every_step_changes_nothing_sparse_logreg),
        T(test_train_eval_every_step_changes_nothing_dense_mlp),
        T(test_train_two_workers_match_one_with_l2),
        T(test_train_two_workers_match_one_with_unequal_parts),
        T(test_train_metrics_have_train_loss_ma_and_train_nll),
        T(test_train_counters_are_the_jobs),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
