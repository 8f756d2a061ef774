/* Tests for worker/pipeline on the loop comm backend, no mpirun: a worker
 * thread trains sparse logistic regression under BSP against a real server
 * thread (ps_server_run), through the pipe in the order train.c uses
 * (wait c, start c + 1, gradient, push c, ps_pipe_ahead c + 2: prepared
 * only, or under BSP also pulled, two pulls in flight) and once with no
 * pipe at all (batch, keys, plan, pull and wait of each clock in series).
 * The two runs must see the same batches, keys and parameters at every
 * clock, bit for bit, and a pull left in flight at the end must come back
 * through ps_pipe_drain, leaving nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/comm.h"
#include "common/err.h"
#include "common/mem.h"
#include "common/rng.h"
#include "data/source.h"
#include "server/optim.h"
#include "server/server.h"
#include "tests/unit/ps_test.h"
#include "tests/unit/ps_test_loop.h"
#include "worker/batcher.h"
#include "worker/client.h"
#include "worker/model.h"
#include "worker/pipeline.h"

#define STEPS 7
#define BATCH 16
#define ROWS 100 /* 6.25 batches: the epoch wraps, with a short batch */
#define MAXT 4

/* What one run saw: per clock a digest of the batch, its keys and the
 * rows pulled for it; clock STEPS is the pull after the last push. */
typedef struct {
    int pipelined;
    ps_source_cfg src;
    ps_model_cfg mc;
    ps_table_desc tables[MAXT];
    uint32_t ntables;
    uint64_t batch_digest[STEPS + 1], keys_digest[STEPS + 1], params_digest[STEPS + 1];
    uint64_t nparams[STEPS + 1];
} run;

static uint64_t digest(uint64_t h, const void *p, size_t bytes)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < bytes; i++) {
        h = (h ^ c[i]) * 0x100000001b3ULL;
    }
    return h;
}

static void record(run *r, uint64_t clock, const ps_batch *b, const ps_keylist *keys,
                   float *const *params)
{
    uint64_t hb = 0xcbf29ce484222325ULL, hk = hb, hp = hb, np = 0;
    if (b) {
        hb = digest(hb, b->indptr, (b->n + 1) * sizeof *b->indptr);
        hb = digest(hb, b->idx, b->indptr[b->n] * sizeof *b->idx);
        hb = digest(hb, b->y, b->n * sizeof *b->y);
    }
    for (uint32_t t = 0; t < r->ntables; t++) {
        hk = digest(hk, keys[t].keys, keys[t].n * sizeof *keys[t].keys);
        hp = digest(hp, params[t], keys[t].n * r->tables[t].width * sizeof(float));
        np += keys[t].n * r->tables[t].width;
    }
    r->batch_digest[clock] = hb;
    r->keys_digest[clock] = hk;
    r->params_digest[clock] = hp;
    r->nparams[clock] = np;
}

typedef struct {
    ps_client *client;
    ps_model *model;
    ps_batcher *batcher;
    float *grads[MAXT], *params[MAXT];
    size_t cap_g[MAXT], cap_p[MAXT];
    /* serial run: one batch, keys and plan */
    ps_dataset batch;
    ps_keylist keys[MAXT];
    ps_plan *plan;
} worker_state;

static int gradient_push(worker_state *w, const ps_batch *b, const ps_keylist *keys,
                         float *const *params, ps_plan *plan, uint64_t clock)
{
    double loss;
    int rc = ps_model_grow_rows(w->model, keys, w->grads, w->cap_g);
    if (rc == 0 && b->n) {
        rc = ps_model_forward_backward(w->model, b, keys, (const float *const *)params, w->grads,
                                       clock, &loss);
    }
    return rc ? rc
              : ps_client_push(w->client, plan, (const float *const *)w->grads, (int64_t)clock,
                               (uint32_t)b->n);
}

/* No pipe: clock c's batch, keys, plan, pull and wait in series into w's
 * own buffers, recorded; *b is its batch. */
static int serial_pull(run *r, worker_state *w, uint64_t c, uint64_t per_epoch, ps_batch *b)
{
    int rc = w->plan ? 0 : ps_plan_create(&w->plan, w->client);
    if (rc || (rc = ps_batcher_get(w->batcher, c, per_epoch, &w->batch))) {
        return rc;
    }
    *b = ps_dataset_view(&w->batch, 0, w->batch.n);
    if ((rc = ps_model_batch_keys(w->model, b, w->keys)) ||
        (rc = ps_client_plan(w->client, w->plan, w->keys)) ||
        (rc = ps_model_grow_rows(w->model, w->keys, w->params, w->cap_p)) ||
        (rc = ps_client_pull_start(w->client, w->plan, (int64_t)c, 0)) ||
        (rc = ps_client_pull_wait(w->client, w->plan, w->params))) {
        return rc;
    }
    record(r, c, b, w->keys, w->params);
    return 0;
}

/* The order of worker/train.c's step; the pull of clock STEPS is still in
 * flight after the last push: once the drain took it, a pull of the same
 * clock with another plan gets its own reply (a reply left behind would be
 * taken for it and fail its request id). */
static int pipelined(run *r, worker_state *w, uint64_t per_epoch)
{
    ps_pipe *p = NULL;
    ps_pipe_cfg pc = {.client = w->client,
                      .model = w->model,
                      .batcher = w->batcher,
                      .steps_per_epoch = per_epoch,
                      .max_staleness = 0,
                      .first = 0};
    int rc = ps_pipe_create(&p, &pc);
    if (rc == 0) {
        rc = ps_pipe_start(p, 0);
    }
    for (uint64_t c = 0; rc == 0 && c < STEPS; c++) {
        ps_pipe_step s;
        if ((rc = ps_pipe_wait(p, c, &s)) || (rc = ps_pipe_start(p, c + 1))) {
            break;
        }
        record(r, c, &s.batch, s.keys, s.params);
        /* pipelined == 2: the pull ahead goes out with it (BSP);
         * 1: it waits for the next ps_pipe_start. */
        if ((rc = gradient_push(w, &s.batch, s.keys, s.params, s.plan, c)) == 0 && c + 2 <= STEPS) {
            rc = ps_pipe_ahead(p, c + 2, r->pipelined == 2 ? STEPS : -1);
        }
    }
    ps_batch b;
    if (rc == 0 && (rc = ps_pipe_drain(p)) == 0) {
        rc = serial_pull(r, w, STEPS, per_epoch, &b);
    }
    ps_pipe_destroy(&p);
    return rc;
}

static int serial(run *r, worker_state *w, uint64_t per_epoch)
{
    int rc = 0;
    for (uint64_t c = 0; rc == 0 && c <= STEPS; c++) {
        ps_batch b;
        if ((rc = serial_pull(r, w, c, per_epoch, &b)) == 0 && c < STEPS) {
            rc = gradient_push(w, &b, w->keys, w->params, w->plan, c);
        }
    }
    return rc;
}

static int worker_rank(ps_comm *c, void *arg)
{
    run *r = arg;
    worker_state w;
    memset(&w, 0, sizeof w);
    int server_ranks[1] = {1};
    ps_client_cfg cc = {.tables = r->tables,
                        .ntables = r->ntables,
                        .nservers = 1,
                        .server_ranks = server_ranks,
                        .shard = PS_SHARD_RANGE,
                        .worker = 0,
                        .nworkers = 1,
                        .coordinator_rank = 0};
    ps_batcher_cfg bc = {.batch = BATCH, .shuffle = 1, .seed = 7, .stream = PS_STREAM_OFF};
    ps_source_spec spec;
    uint64_t per_epoch = (ROWS + BATCH - 1) / BATCH;
    int rc = ps_comm_agree(c, 0);
    if (rc == 0 && (rc = ps_source_probe(&r->src, &spec)) == 0 &&
        (rc = ps_batcher_create(&w.batcher, &bc, &r->src, &spec, 0, 1)) == 0 &&
        (rc = ps_model_create(&w.model, &r->mc)) == 0 &&
        (rc = ps_client_create(&w.client, &cc, c)) == 0) {
        rc = r->pipelined ? pipelined(r, &w, per_epoch) : serial(r, &w, per_epoch);
    }
    if (rc == 0) {
        rc = ps_client_done(w.client, 0);
    }
    for (uint32_t t = 0; t < MAXT; t++) {
        ps_free(w.grads[t]);
        ps_free(w.params[t]);
    }
    ps_model_keys_fini(w.keys, MAXT);
    ps_dataset_fini(&w.batch);
    ps_plan_destroy(&w.plan);
    ps_client_destroy(&w.client);
    ps_model_destroy(&w.model);
    ps_batcher_destroy(&w.batcher);
    return rc;
}

static int server_rank(ps_comm *c, void *arg)
{
    return ps_server_run(arg, c);
}

static void setup_run(run *r, int pipelined_run)
{
    memset(r, 0, sizeof *r);
    r->pipelined = pipelined_run;
    r->src = (ps_source_cfg){.dataset = "",
                             .data_dir = "",
                             .train = "",
                             .test = "",
                             .format = PS_FMT_SYNTH,
                             .synth_test = 10,
                             .quiet = 1};
    ps_synth_cfg_default(&r->src.synth);
    r->src.synth.n = ROWS + 10;
    r->src.synth.nfeatures = 5000;
    r->src.synth.nnz = 8;
    r->src.synth.nclasses = 2;
    r->mc = (ps_model_cfg){.kind = PS_MODEL_LOGREG,
                           .in_dim = 5000,
                           .nclasses = 2,
                           .sparse_input = 1,
                           .init_override = PS_INIT_NORMAL,
                           .seed = 3,
                           .max_batch = BATCH};
    assert_int_equal(ps_model_tables(&r->mc, r->tables, MAXT, &r->ntables), 0);
}

static void run_job(run *r)
{
    int worker_ranks[1] = {0};
    ps_server_cfg scfg = {.nworkers = 1,
                          .worker_ranks = worker_ranks,
                          .sync = PS_SYNC_BSP,
                          .ckpt_dir = "",
                          .config_text = "test_pipeline",
                          .opt_name = "adam"};
    scfg.store = (ps_store_cfg){.tables = r->tables,
                                .ntables = r->ntables,
                                .server = 0,
                                .nservers = 1,
                                .shard = PS_SHARD_RANGE,
                                .lazy = 1,
                                .seed = r->mc.seed};
    ps_opt_defaults(&scfg.store.hp, PS_OPT_ADAM);
    ps_test_rank_fn fns[2] = {worker_rank, server_rank};
    void *args[2] = {r, &scfg};
    int rcs[2];
    ps_test_run_ranks(2, fns, args, rcs);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[1], 0);
}

static void check_against_serial(int mode)
{
    run ra, rb, *a = &ra, *b = &rb;
    setup_run(a, mode);
    setup_run(b, 0);
    run_job(a);
    run_job(b);
    for (int c = 0; c <= STEPS; c++) {
        assert_true(b->nparams[c] > 0);
        assert_int_equal(a->batch_digest[c], b->batch_digest[c]);
        assert_int_equal(a->keys_digest[c], b->keys_digest[c]);
        assert_int_equal(a->nparams[c], b->nparams[c]);
        assert_int_equal(a->params_digest[c], b->params_digest[c]);
    }
    /* Training moved the rows: clock 1 does not pull what clock 0 did. */
    assert_true(b->params_digest[0] != b->params_digest[1]);
}

static void test_pipeline_bsp_sees_what_serial_steps_see(void **state)
{
    (void)state;
    check_against_serial(1);
}

/* With the pull ahead sent as soon as it is prepared (two in flight). */
static void test_pipeline_bsp_pull_ahead_sees_what_serial_steps_see(void **state)
{
    (void)state;
    check_against_serial(2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipeline_bsp_sees_what_serial_steps_see,
                                        ps_test_setup_mt, ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_pipeline_bsp_pull_ahead_sees_what_serial_steps_see,
                                        ps_test_setup_mt, ps_test_teardown_mt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
