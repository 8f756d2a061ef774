/* Tests for cli/job.c: which ranks serve, whether the world leaves a
 * worker, and the small config each module gets from the flags (the
 * server's update rule in force, the source's files, the worker's pull
 * bound); the configuration as typed pairs; when BLAS threads
 * oversubscribe a node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/job.h"
#include "common/err.h"
#include "tests/unit/ps_test.h"

#define MAX_ARGS 32

/* Parses {"adamps", args..., NULL}; the test fails on a parse error. */
static void parse_list(ps_cfg *c, const char *const *args)
{
    char *argv[MAX_ARGS + 2];
    char err[256];
    int argc = 0;
    argv[argc++] = (char *)"adamps";
    for (int i = 0; args[i] && argc < MAX_ARGS; i++) {
        argv[argc++] = (char *)args[i];
    }
    argv[argc] = NULL;
    if (ps_cfg_parse(c, argc, argv, err, sizeof err)) {
        fail_msg("ps_cfg_parse: %s", err);
    }
}

#define PARSE(c, ...) parse_list((c), (const char *const[]){__VA_ARGS__, NULL})
#define DS "train", "--dataset", "fashion-mnist"

static int count(const int *v, int n)
{
    int c = 0;
    for (int i = 0; i < n; i++) {
        c += v[i];
    }
    return c;
}

static void test_job_roles_one_node_keeps_rank0_worker(void **state)
{
    (void)state;
    int nodes[5] = {0, 0, 0, 0, 0}, s[5];
    for (int n = 1; n < 5; n++) {
        assert_int_equal(ps_job_assign_roles(5, n, nodes, 1, s), 0);
        assert_int_equal(count(s, 5), n);
        assert_int_equal(s[0], 0);
    }
}

static void test_job_roles_spread_over_nodes(void **state)
{
    (void)state;
    /* Two nodes of four ranks: two servers land one per node. */
    int nodes[8] = {0, 0, 0, 0, 1, 1, 1, 1}, s[8];
    assert_int_equal(ps_job_assign_roles(8, 2, nodes, 2, s), 0);
    assert_int_equal(s[0] + s[1] + s[2] + s[3], 1);
    assert_int_equal(s[4] + s[5] + s[6] + s[7], 1);
    assert_int_equal(s[0], 0);
    /* Three servers: 2 + 1, never 3 + 0. */
    assert_int_equal(ps_job_assign_roles(8, 3, nodes, 2, s), 0);
    int a = s[0] + s[1] + s[2] + s[3], b = s[4] + s[5] + s[6] + s[7];
    assert_true((a == 2 && b == 1) || (a == 1 && b == 2));
}

static void test_job_roles_rejects_no_worker_left(void **state)
{
    (void)state;
    int nodes[3] = {0, 0, 0}, s[3];
    assert_int_equal(ps_job_assign_roles(3, 3, nodes, 1, s), PS_EINVAL);
    assert_int_equal(ps_job_assign_roles(3, 0, nodes, 1, s), PS_EINVAL);
}

static void test_job_check_world_needs_a_worker(void **state)
{
    (void)state;
    ps_cfg c;
    char err[256];
    PARSE(&c, DS, "--servers", "4");
    assert_int_equal(ps_job_check_world(&c, 4, 4, err, sizeof err), PS_ECONFIG);
    assert_string_equal(err, "--servers 4 leaves no worker: the job has 4 ranks (need at least "
                             "servers + 1)");
    assert_int_equal(ps_job_check_world(&c, 3, 4, err, sizeof err), PS_ECONFIG);
    assert_non_null(strstr(err, "--servers 4"));
    assert_int_equal(ps_job_check_world(&c, 5, 4, err, sizeof err), 0);
    assert_string_equal(err, "");

    /* --servers 1 of 2 ranks: the smallest job. */
    PARSE(&c, DS, "--servers", "1");
    assert_int_equal(ps_job_check_world(&c, 2, 1, err, sizeof err), 0);
    assert_int_equal(ps_job_check_world(&c, 2, 2, err, sizeof err), 0);
    PARSE(&c, DS, "--servers", "2");
    assert_int_equal(ps_job_check_world(&c, 2, 2, err, sizeof err), PS_ECONFIG);
    assert_non_null(strstr(err, "--servers 2 leaves no worker: the job has 2 ranks"));
    /* One rank: not an MPI job at all; say how to start one. */
    assert_int_equal(ps_job_check_world(&c, 1, 1, err, sizeof err), PS_ECONFIG);
    assert_non_null(strstr(err, "run it under mpirun -np N (N >= 2)"));

    /* Default (one per node): the caller's count is what is checked. */
    PARSE(&c, DS);
    assert_int_equal(ps_job_check_world(&c, 3, 1, err, sizeof err), 0);
    assert_int_equal(ps_job_check_world(&c, 2, 2, err, sizeof err), PS_ECONFIG);
    assert_non_null(strstr(err, "--servers"));
    assert_non_null(strstr(err, "leaves no worker"));
    assert_int_equal(ps_job_check_world(&c, 4, 0, err, sizeof err), PS_ECONFIG);
    assert_non_null(strstr(err, "--servers: 0 servers"));
    assert_int_equal(ps_job_check_world(&c, 4, 0, NULL, 0), PS_ECONFIG);
}

/* The rule's own defaults reach the server, and the flags the rest. */
static void test_job_server_cfg_carries_the_rule_in_force(void **state)
{
    (void)state;
    ps_cfg c;
    ps_server_cfg sc;
    PARSE(&c, DS, "--optimizer", "adamax");
    ps_job_server_cfg(&c, &sc);
    assert_int_equal(sc.store.hp.kind, PS_OPT_ADAMAX);
    assert_true(sc.store.hp.lr == 0.002f);
    assert_string_equal(sc.opt_name, "adamax");
    assert_int_equal(sc.sync, PS_SYNC_BSP);
    assert_int_equal(sc.store.lazy, 1);
    assert_int_equal(sc.nresume, 0);
    assert_int_equal(sc.reply_chunk, 0); /* auto: the server's default */

    PARSE(&c, DS, "--optimizer", "rmsprop", "--consistency", "ssp:2", "--shard", "hash",
          "--nonfinite", "skip", "--sparse-update", "dense", "--temporal-averaging", "0.9",
          "--seed", "7", "--reply-chunk", "4096");
    ps_job_server_cfg(&c, &sc);
    assert_int_equal(sc.reply_chunk, 4096);
    assert_true(sc.store.hp.lr == 0.01f);
    assert_true(sc.store.hp.beta2 == 0.99f);
    assert_int_equal(sc.sync, PS_SYNC_SSP);
    assert_int_equal(sc.store.shard, PS_SHARD_HASH);
    assert_int_equal(sc.nonfinite_skip, 1);
    assert_int_equal(sc.store.lazy, 0);
    assert_true(sc.store.avg_beta == 0.9f);
    assert_int_equal(sc.store.seed, 7);
}

static void test_job_source_cfg_names_the_files(void **state)
{
    (void)state;
    ps_cfg c;
    ps_source_cfg src;
    char ti[PS_SOURCE_PATH], tl[PS_SOURCE_PATH], si[PS_SOURCE_PATH], sl[PS_SOURCE_PATH];
    PARSE(&c, DS, "--data-dir", "/data/fm", "--train-limit", "100");
    ps_job_source_cfg(&c, &src);
    assert_int_equal(src.format, PS_FMT_IDX);
    assert_int_equal(src.train_limit, 100);
    ps_source_paths(&src, ti, tl, si, sl, sizeof ti);
    assert_string_equal(ti, "/data/fm/train-images-idx3-ubyte.gz");
    assert_string_equal(tl, "/data/fm/train-labels-idx1-ubyte.gz");
    assert_string_equal(si, "/data/fm/t10k-images-idx3-ubyte.gz");
    assert_string_equal(sl, "/data/fm/t10k-labels-idx1-ubyte.gz");

    PARSE(&c, "train", "--synthetic", "rows=500,classes=3", "--seed", "9");
    ps_job_source_cfg(&c, &src);
    assert_int_equal(src.format, PS_FMT_SYNTH);
    assert_int_equal(src.synth.n, 500);
    assert_int_equal(src.synth.nclasses, 3);
    assert_int_equal(src.synth.seed, 9);
    assert_int_equal(src.synth_test, 50);

    PARSE(&c, "train", "--train", "a.svm", "--test", "b.svm", "--hash-bits", "10", "--zero-based");
    ps_job_source_cfg(&c, &src);
    assert_int_equal(src.format, PS_FMT_AUTO);
    assert_string_equal(src.train, "a.svm");
    assert_string_equal(src.test, "b.svm");
    assert_string_equal(src.dataset, "");
    assert_int_equal(src.hash_bits, 10);
    assert_int_equal(src.zero_based, 1);
}

static void test_job_worker_cfg_bounds_the_pull_and_copies_the_rest(void **state)
{
    (void)state;
    ps_cfg c;
    ps_worker_cfg wc;
    PARSE(&c, DS);
    ps_job_worker_cfg(&c, &wc);
    assert_int_equal(wc.max_staleness, 0);
    assert_int_equal(wc.averaged, 0);
    assert_int_equal(wc.batcher.batch, 128);
    assert_int_equal(wc.batcher.stream, PS_STREAM_AUTO);
    assert_int_equal(wc.steps, 0);
    assert_true(wc.epochs == 3.0);
    assert_string_equal(wc.metrics, "");
    assert_int_equal(wc.nresume, 0);
    PARSE(&c, DS, "--consistency", "ssp:3", "--batch", "32", "--steps", "40", "--metrics",
          "m.jsonl", "--temporal-averaging", "0.5", "--quiet");
    ps_job_worker_cfg(&c, &wc);
    assert_int_equal(wc.max_staleness, 3);
    assert_int_equal(wc.averaged, 1);
    assert_int_equal(wc.batcher.batch, 32);
    assert_int_equal(wc.steps, 40);
    assert_string_equal(wc.metrics, "m.jsonl");
    assert_int_equal(wc.quiet, 1);
    assert_string_equal(wc.source.dataset, "fashion-mnist");
    PARSE(&c, DS, "--consistency", "asp");
    ps_job_worker_cfg(&c, &wc);
    assert_int_equal(wc.max_staleness, -1);
}

static void test_job_model_and_predict_cfgs(void **state)
{
    (void)state;
    ps_cfg c;
    ps_model_cfg mc;
    ps_source_spec spec = {.dim = 784, .nclasses = 10, .sparse = 0};
    PARSE(&c, DS, "--model", "logreg", "--batch", "64", "--init", "normal");
    ps_job_model_cfg(&c, &spec, 3, 1000, &mc);
    assert_int_equal(mc.kind, PS_MODEL_LOGREG);
    assert_int_equal(mc.in_dim, 784);
    assert_int_equal(mc.worker, 3);
    assert_int_equal(mc.max_batch, 1000);
    assert_int_equal(mc.init_override, PS_INIT_NORMAL);
    assert_true(mc.dropout_input == 0.0f); /* logreg's own */
    PARSE(&c, DS, "--hidden", "64,32", "--batch", "2000");
    ps_job_model_cfg(&c, &spec, 0, 1000, &mc);
    assert_int_equal(mc.kind, PS_MODEL_MLP);
    assert_int_equal(mc.nhidden, 2);
    assert_int_equal(mc.hidden[1], 32);
    assert_int_equal(mc.max_batch, 2000);
    assert_true(mc.dropout_input == 0.2f);
    assert_true(mc.dropout_hidden == 0.5f);

    ps_predict_cfg pc;
    PARSE(&c, "predict", "--model", "runs/m", "--test", "t.svm", "--test-limit", "5");
    ps_job_predict_cfg(&c, &pc);
    assert_string_equal(pc.model_dir, "runs/m");
    assert_string_equal(pc.source.test, "t.svm");
    assert_int_equal(pc.source.test_limit, 5);
    assert_string_equal(pc.out, "");
}

/* The memory plan sees the flags in force: Adam's two state arrays,
 * averaging, lazy updates, the libsvm file; the scan bound follows the
 * narrowest first table and the room. */
static void test_job_budget_and_scan_limit(void **state)
{
    (void)state;
    ps_cfg c;
    ps_source_spec spec = {.dim = 1000, .nclasses = 2, .sparse = 1};
    ps_model_cfg mc;
    ps_table_desc t[2] = {{.name = "w", .rows = 1000, .width = 2},
                          {.name = "b", .rows = 1, .width = 2}};
    ps_budget_job j;
    PARSE(&c, "train", "--train", "a.svm", "--test", "b.svm", "--model", "logreg",
          "--temporal-averaging", "0.9", "--sparse-update", "dense", "--max-memory", "2G");
    assert_int_equal(c.max_memory, (uint64_t)2 << 30);
    ps_job_model_cfg(&c, &spec, 0, 1000, &mc);
    ps_job_budget(&c, &spec, &mc, t, 2, 3, 4, 1000, &j);
    assert_int_equal(j.nstate, 2);
    assert_int_equal(j.averaged, 1);
    assert_int_equal(j.lazy, 0);
    assert_int_equal(j.libsvm, 1);
    assert_int_equal(j.nservers, 3);
    assert_int_equal(j.nworkers, 4);
    assert_string_equal(j.train, "a.svm");
    assert_int_equal(ps_job_scan_limit(&c, 3, (uint64_t)1 << 30),
                     ps_budget_max_rows((uint64_t)1 << 30, 3, 2, 2, 1, 0));
    assert_int_equal(ps_job_scan_limit(&c, 3, 0), 0);
    PARSE(&c, DS, "--hidden", "64,32", "--optimizer", "sgd");
    assert_int_equal(c.max_memory, 0);
    assert_int_equal(ps_job_scan_limit(&c, 1, (uint64_t)1 << 30),
                     ps_budget_max_rows((uint64_t)1 << 30, 1, 64, 0, 0, 1));
}

/* Every flag is a pair, in the table's order, typed by its row: numbers
 * (integers and reals), booleans, and text for the rest and for a number
 * spelt as its word. */
static void test_job_config_pairs_are_typed(void **state)
{
    (void)state;
    static ps_job_pairs p;
    ps_cfg c;
    const char *args[] = {"train",     "--train",  "a b.svm",
                          "--holdout", "0.125",    "--batch",
                          "64",        "--seed",   "18446744073709551615",
                          "--quiet",   "--labels", "-1,1",
                          NULL};
    parse_list(&c, args);
    ps_job_config_pairs(&c, &p);
    assert_int_equal(p.n, ps_cfg_count());
    int found = 0;
    for (size_t i = 0; i < p.n; i++) {
        const ps_metric_kv *kv = &p.kv[i];
        char val[PS_CFG_PATH + 64];
        assert_string_equal(kv->key, ps_cfg_pair(&c, i, NULL, val, sizeof val));
        if (strcmp(kv->key, "batch") == 0) {
            assert_int_equal(kv->type, PS_METRIC_INT);
            assert_int_equal(kv->v.i, 64);
            found++;
        } else if (strcmp(kv->key, "holdout") == 0 || strcmp(kv->key, "l2") == 0) {
            /* Reals stay reals, 0 included. */
            assert_int_equal(kv->type, PS_METRIC_DOUBLE);
            assert_true(kv->key[0] != 'h' || kv->v.d == 0.125);
            found++;
        } else if (strcmp(kv->key, "quiet") == 0 || strcmp(kv->key, "resume") == 0) {
            assert_int_equal(kv->type, PS_METRIC_BOOL);
            assert_int_equal(kv->v.b, kv->key[0] == 'q');
            found++;
        } else if (strcmp(kv->key, "train") == 0 || strcmp(kv->key, "labels") == 0 ||
                   strcmp(kv->key, "model") == 0) {
            assert_int_equal(kv->type, PS_METRIC_STRING);
            assert_string_equal(kv->v.s, val);
            found++;
        } else if (strcmp(kv->key, "steps") == 0 || strcmp(kv->key, "hash_bits") == 0) {
            /* 0 shown as its word: "auto", "off". */
            assert_int_equal(kv->type, PS_METRIC_STRING);
            found++;
        } else if (strcmp(kv->key, "seed") == 0) {
            /* Past int64: kept exact, as text. */
            assert_int_equal(kv->type, PS_METRIC_STRING);
            assert_string_equal(kv->v.s, "18446744073709551615");
            found++;
        }
    }
    assert_int_equal(found, 11);
    /* The data source gets the holdout, its seed and the labels. */
    ps_source_cfg src;
    ps_job_source_cfg(&c, &src);
    assert_true(src.holdout == 0.125);
    assert_true(src.seed == UINT64_MAX);
    assert_string_equal(src.labels, "-1,1");
}

static void test_job_blas_oversubscription(void **state)
{
    (void)state;
    char msg[512];
    /* The case: 2 threads per rank, 3 ranks, 2 cores. */
    assert_int_equal(ps_job_blas_oversubscribed(2, 3, 2, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "3 ranks x 2 OpenBLAS threads = 6 threads on this node's 2 cores"));
    assert_non_null(strstr(msg, "OPENBLAS_NUM_THREADS=1"));
    /* 4 threads x 2 ranks on 16 cores fits; on 6 it does not, and 3 would. */
    assert_int_equal(ps_job_blas_oversubscribed(4, 2, 16, msg, sizeof msg), 0);
    assert_string_equal(msg, "");
    assert_int_equal(ps_job_blas_oversubscribed(4, 2, 6, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "OPENBLAS_NUM_THREADS=3"));
    /* One thread per rank is the launcher's oversubscription, not BLAS's. */
    assert_int_equal(ps_job_blas_oversubscribed(1, 8, 2, msg, sizeof msg), 0);
    /* Exactly full is fine; an unknown core count warns of nothing. */
    assert_int_equal(ps_job_blas_oversubscribed(2, 4, 8, msg, sizeof msg), 0);
    assert_int_equal(ps_job_blas_oversubscribed(2, 4, 0, msg, sizeof msg), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_roles_one_node_keeps_rank0_worker),
        cmocka_unit_test(test_job_roles_spread_over_nodes),
        cmocka_unit_test(test_job_roles_rejects_no_worker_left),
        cmocka_unit_test(test_job_check_world_needs_a_worker),
        cmocka_unit_test(test_job_server_cfg_carries_the_rule_in_force),
        cmocka_unit_test(test_job_source_cfg_names_the_files),
        cmocka_unit_test(test_job_worker_cfg_bounds_the_pull_and_copies_the_rest),
        cmocka_unit_test(test_job_model_and_predict_cfgs),
        cmocka_unit_test(test_job_budget_and_scan_limit),
        cmocka_unit_test(test_job_config_pairs_are_typed),
        cmocka_unit_test(test_job_blas_oversubscription),
    };
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
