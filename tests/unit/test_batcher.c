/* worker/batcher: every row exactly once per epoch, in memory and
 * streamed; batches are a pure function of the clock (out-of-order calls
 * give the same batch), and reshuffled between epochs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "worker/batcher.h"
#include "tests/unit/ps_test.h"

#define NROWS 1000
#define BATCH 7

static char dir[256], path[300];

/* Row r has the single feature r + 1 (one-based), so a batch names its rows. */
static int group_setup(void **state)
{
    (void)state;
    if (ps_test_tmpdir_create(dir, sizeof dir, "batcher")) {
        return -1;
    }
    snprintf(path, sizeof path, "%s/rows.svm", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        return -1;
    }
    for (int r = 0; r < NROWS; r++) {
        fprintf(f, "%d %d:1\n", r % 2, r + 1);
    }
    return fclose(f);
}

static int group_teardown(void **state)
{
    (void)state;
    return ps_test_rmtree(dir);
}

typedef struct {
    ps_source_cfg src;
    ps_batcher_cfg bc;
} job;

static void make_cfg(job *j, ps_stream_mode stream)
{
    memset(j, 0, sizeof *j);
    j->src = (ps_source_cfg){
        .dataset = "", .data_dir = "", .train = path, .test = path, .format = PS_FMT_LIBSVM};
    j->bc = (ps_batcher_cfg){.batch = BATCH, .shuffle = 1, .seed = 99, .stream = stream};
}

static ps_batcher *open_batcher(const job *j, uint32_t worker, uint32_t nworkers)
{
    ps_source_spec spec;
    assert_int_equal(ps_source_probe(&j->src, &spec), 0);
    ps_batcher *b = NULL;
    assert_int_equal(ps_batcher_create(&b, &j->bc, &j->src, &spec, worker, nworkers), 0);
    return b;
}

/* Row ids of one batch (feature id - 1). */
static size_t batch_rows(const ps_dataset *d, uint64_t *ids)
{
    for (size_t i = 0; i < d->n; i++) {
        assert_int_equal(d->indptr[i + 1] - d->indptr[i], 1);
        ids[i] = d->idx[d->indptr[i]];
    }
    return d->n;
}

/* Over the workers' parts, every epoch yields every row exactly once. */
static void check_cover(ps_stream_mode stream, uint32_t nworkers)
{
    job cfg;
    make_cfg(&cfg, stream);
    static int seen[NROWS];
    ps_batcher *b[4];
    uint64_t maxrows = 0;
    for (uint32_t w = 0; w < nworkers; w++) {
        b[w] = open_batcher(&cfg, w, nworkers);
        assert_int_equal(ps_batcher_streamed(b[w]), stream == PS_STREAM_ON);
        uint64_t n = ps_batcher_rows(b[w]);
        maxrows = n > maxrows ? n : maxrows;
    }
    uint64_t per_epoch = (maxrows + BATCH - 1) / BATCH;
    ps_dataset d = {0};
    uint64_t ids[BATCH];
    for (uint64_t epoch = 0; epoch < 2; epoch++) {
        memset(seen, 0, sizeof seen);
        for (uint32_t w = 0; w < nworkers; w++) {
            for (uint64_t i = 0; i < per_epoch; i++) {
                assert_int_equal(ps_batcher_get(b[w], epoch * per_epoch + i, per_epoch, &d), 0);
                size_t n = batch_rows(&d, ids);
                for (size_t k = 0; k < n; k++) {
                    assert_true(ids[k] < NROWS);
                    seen[ids[k]]++;
                }
            }
        }
        for (int r = 0; r < NROWS; r++) {
            if (seen[r] != 1) {
                fail_msg("stream %d, %u workers, epoch %llu: row %d seen %d times", stream,
                         nworkers, (unsigned long long)epoch, r, seen[r]);
            }
        }
    }
    ps_dataset_fini(&d);
    for (uint32_t w = 0; w < nworkers; w++) {
        ps_batcher_destroy(&b[w]);
    }
}

static void test_batcher_covers_each_row_once_per_epoch(void **state)
{
    (void)state;
    for (uint32_t nw = 1; nw <= 3; nw++) {
        check_cover(PS_STREAM_OFF, nw);
        check_cover(PS_STREAM_ON, nw);
    }
}

/* The batch of a clock does not depend on which clocks were asked before:
 * a resumed run starts mid-epoch. Streamed, this crosses chunk boundaries
 * (64 batches per chunk) both ways. */
static void test_batcher_batch_is_a_function_of_the_clock(void **state)
{
    (void)state;
    for (int stream = PS_STREAM_OFF; stream <= PS_STREAM_ON; stream++) {
        job cfg;
        make_cfg(&cfg, (ps_stream_mode)stream);
        ps_batcher *seq = open_batcher(&cfg, 0, 1), *jump = open_batcher(&cfg, 0, 1);
        uint64_t per_epoch = (NROWS + BATCH - 1) / BATCH;
        uint64_t a[BATCH], bb[BATCH];
        ps_dataset d = {0};
        static const uint64_t probes[] = {300, 5, 143, 70, 200, 143, 0, 142};
        for (size_t p = 0; p < sizeof probes / sizeof probes[0]; p++) {
            uint64_t clock = probes[p];
            /* seq walks every clock up to this one from a fresh start. */
            ps_batcher_destroy(&seq);
            seq = open_batcher(&cfg, 0, 1);
            for (uint64_t c = 0; c <= clock; c++) {
                assert_int_equal(ps_batcher_get(seq, c, per_epoch, &d), 0);
            }
            size_t na = batch_rows(&d, a);
            assert_int_equal(ps_batcher_get(jump, clock, per_epoch, &d), 0);
            size_t nb = batch_rows(&d, bb);
            assert_int_equal(na, nb);
            assert_memory_equal(a, bb, na * sizeof a[0]);
        }
        /* Epochs are reshuffled: batch 0 of epoch 0 and of epoch 1 differ. */
        assert_int_equal(ps_batcher_get(jump, 0, per_epoch, &d), 0);
        batch_rows(&d, a);
        assert_int_equal(ps_batcher_get(jump, per_epoch, per_epoch, &d), 0);
        batch_rows(&d, bb);
        assert_memory_not_equal(a, bb, BATCH * sizeof a[0]);
        ps_dataset_fini(&d);
        ps_batcher_destroy(&seq);
        ps_batcher_destroy(&jump);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batcher_covers_each_row_once_per_epoch, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_batcher_batch_is_a_function_of_the_clock,
                                        ps_test_setup, ps_test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
