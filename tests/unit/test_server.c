/* Tests for server/server on the loop comm backend, no mpirun. Most drive
 * ps_server_handle directly with messages built by common/codec, playing
 * the workers from the main thread: a server's replies land in the
 * workers' loop mailboxes and are read back with wait = 0. They check BSP's
 * worker-order sums (bit-identical under every arrival order) and its
 * weighting of each push by its samples (empty and dropped pushes
 * included), holding of early pushes and of pulls (SSP, BSP) until their
 * version, ASP's at-once answers, a pusher's pull answered from its step
 * (ASP: taken from the comm during the apply; 1-worker BSP: the held one)
 * and a streamed step stopped at a non-finite part, one step count across servers when one
 * drops part of a push, checkpoints and resume, a step that overflows
 * reported by the server, and that every bad message is an error naming
 * the sender rank. The last tests run ps_server_run in a thread
 * with worker threads: the full loop, and a failed worker unblocking it. */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/codec.h"
#include "common/comm.h"
#include "common/err.h"
#include "common/mem.h"
#include "common/payload.h"
#include "server/server.h"
#include "server/snapshot.h"
#include "server/store.h"
#include "tests/unit/ps_test.h"
#include "tests/unit/ps_test_loop.h"

#define SEED 77
#define MAXW 4
#define NT 2
#define SAMPLES 4 /* every worker's batch in make_push */

static const ps_table_desc tables[NT] = {
    {"w", 8, 3, PS_INIT_GLOROT, 0.5f},
    {"b", 1, 2, PS_INIT_NORMAL, 0.1f},
};

/* One server (rank 0) and nw workers (rank w + 1) on a loop world. */
typedef struct {
    ps_comm *c[1 + MAXW];
    int worker_ranks[MAXW];
    uint32_t nw;
    ps_server_cfg cfg;
    ps_server *srv;
    ps_codec *codec;
    ps_bytes buf;
    /* push scratch: per table, keys and values */
    uint64_t keys[NT][8];
    float vals[NT][8 * 3];
    ps_seg segs[NT];
    char dir[128];
} fx;

static void fx_cfg(fx *f, ps_sync sync, uint32_t nw, int lazy)
{
    memset(&f->cfg, 0, sizeof f->cfg);
    f->cfg.store = (ps_store_cfg){.tables = tables,
                                  .ntables = NT,
                                  .server = 0,
                                  .nservers = 1,
                                  .shard = PS_SHARD_RANGE,
                                  .lazy = lazy,
                                  .seed = SEED};
    ps_opt_defaults(&f->cfg.store.hp, PS_OPT_ADAM);
    f->cfg.nworkers = nw;
    f->cfg.worker_ranks = f->worker_ranks;
    f->cfg.sync = sync;
    f->cfg.config_text = "test_server";
    f->cfg.opt_name = "adam";
}

/* Server `server` of nservers; the tests change f->cfg before creating. */
static void fx_prepare(fx *f, ps_sync sync, uint32_t nw, int lazy, uint32_t server,
                       uint32_t nservers)
{
    memset(f, 0, sizeof *f);
    f->nw = nw;
    for (uint32_t w = 0; w < nw; w++) {
        f->worker_ranks[w] = (int)w + 1;
    }
    fx_cfg(f, sync, nw, lazy);
    f->cfg.store.server = server;
    f->cfg.store.nservers = nservers;
}

static void fx_start(fx *f)
{
    assert_int_equal(ps_comm_loop_create(f->c, 1 + (int)f->nw), 0);
    assert_int_equal(ps_codec_create(&f->codec), 0);
    assert_int_equal(ps_server_create(&f->srv, &f->cfg, f->c[0]), 0);
}

static void fx_open(fx *f, ps_sync sync, uint32_t nw, int lazy)
{
    fx_prepare(f, sync, nw, lazy, 0, 1);
    fx_start(f);
}

static void fx_close(fx *f)
{
    ps_server_destroy(&f->srv);
    assert_null(f->srv);
    ps_codec_destroy(&f->codec);
    for (uint32_t r = 0; r <= f->nw; r++) {
        ps_comm_destroy(&f->c[r]);
    }
    ps_free(f->buf.data);
    if (f->dir[0]) {
        assert_int_equal(ps_test_rmtree(f->dir), 0);
    }
}

/* Gradients of very different magnitudes, so that summing them in another
 * order gives other bits. */
static float grad(uint32_t w, int64_t clock, uint32_t t, uint64_t key, uint32_t j)
{
    static const float mag[3] = {1e7f, 1.0f, 0.3f};
    float base = (float)((key * 7 + j * 3 + w * 5 + (uint64_t)clock + t) % 11) - 5.37f;
    return base * mag[(w + key + j) % 3];
}

/* Worker w's push for clock: every row of both tables, except that worker
 * 1 leaves out row 5 of w (segments of different shapes). nan_at >= 0
 * puts a NaN at that value of table w. */
static ps_push make_push(fx *f, uint32_t w, int64_t clock, int nan_at)
{
    for (uint32_t t = 0; t < NT; t++) {
        size_t n = 0;
        for (uint64_t k = 0; k < tables[t].rows; k++) {
            if (t == 0 && w == 1 && k == 5) {
                continue;
            }
            for (uint32_t j = 0; j < tables[t].width; j++) {
                f->vals[t][n * tables[t].width + j] = grad(w, clock, t, k, j);
            }
            f->keys[t][n++] = k;
        }
        f->segs[t] = (ps_seg){.table = t,
                              .nkeys = n,
                              .slots = f->keys[t],
                              .values = f->vals[t],
                              .nvalues = n * tables[t].width};
    }
    if (nan_at >= 0) {
        f->vals[0][nan_at] = NAN;
    }
    return (ps_push){.clock = clock, .worker = w, .samples = SAMPLES, .nsegs = NT, .segs = f->segs};
}

static int handle(fx *f, int src, int tag)
{
    ps_comm_msg m = {.src = src, .tag = tag, .data = f->buf.data, .len = f->buf.len};
    return ps_server_handle(f->srv, &m);
}

/* Sends worker `as`'s push for clock from the rank of worker `from`. */
static int push_from(fx *f, uint32_t from, uint32_t as, int64_t clock, int nan_at)
{
    ps_push p = make_push(f, as, clock, nan_at);
    assert_int_equal(ps_codec_encode_push(f->codec, &p, &f->buf), 0);
    return handle(f, f->worker_ranks[from], PS_TAG_PUSH);
}

/* Worker w's push for clock with its values as payloads after the header,
 * sent from f->vals in place; short_by > 0 sends table 0's that many
 * floats short. */
static int push_payloads(fx *f, uint32_t w, int64_t clock, size_t short_by)
{
    ps_push p = make_push(f, w, clock, -1);
    ps_comm *wc = f->c[w + 1];
    for (uint32_t t = 0; t < NT; t++) {
        size_t n = f->segs[t].nvalues - (t == 0 ? short_by : 0);
        assert_int_equal(
            ps_comm_send_ref(wc, 0, PS_TAG_DATA(PS_TAG_PUSH), f->vals[t], n * sizeof(float)), 0);
        f->segs[t].values = NULL;
    }
    assert_int_equal(ps_comm_flush(wc, "test"), 0);
    assert_int_equal(ps_codec_encode_push(f->codec, &p, &f->buf), 0);
    return handle(f, f->worker_ranks[w], PS_TAG_PUSH);
}

static int push(fx *f, uint32_t w, int64_t clock)
{
    return push_from(f, w, w, clock, -1);
}

/* The pull every test sends: rows 1, 3, 4 of w and row 0 of b. */
static const uint64_t pull_keys_w[3] = {1, 3, 4}, pull_keys_b[1] = {0};

static int pull_from(fx *f, uint32_t from, uint32_t as, uint64_t id, int64_t min_version)
{
    ps_seg segs[NT] = {{.table = 0, .nkeys = 3, .slots = pull_keys_w},
                       {.table = 1, .nkeys = 1, .slots = pull_keys_b}};
    ps_pull p = {
        .request_id = id, .min_version = min_version, .worker = as, .nsegs = NT, .segs = segs};
    assert_int_equal(ps_codec_encode_pull(f->codec, &p, &f->buf), 0);
    return handle(f, f->worker_ranks[from], PS_TAG_PULL);
}

static int pull(fx *f, uint32_t w, uint64_t id, int64_t min_version)
{
    return pull_from(f, w, w, id, min_version);
}

static int ctrl_value(fx *f, uint32_t w, ps_ctrl_kind kind, int64_t clock, uint64_t value,
                      const char *text)
{
    ps_ctrl m = {.kind = kind, .worker = w, .clock = clock, .value = value, .text = text};
    assert_int_equal(ps_codec_encode_ctrl(f->codec, &m, &f->buf), 0);
    return handle(f, f->worker_ranks[w], PS_TAG_CTRL);
}

static int ctrl(fx *f, uint32_t w, ps_ctrl_kind kind, int64_t clock, const char *text)
{
    return ctrl_value(f, w, kind, clock, 0, text);
}

/* Nothing waits in worker w's mailbox. */
static void expect_no_reply(fx *f, uint32_t w)
{
    ps_comm_msg m;
    assert_int_equal(ps_comm_recv(f->c[w + 1], PS_ANY, PS_ANY, 0, &m), PS_EEOF);
}

/* Worker w's next reply answers request id with version, and carries the
 * pulled rows as the store holds them now, and stop clock `stop`. */
static void expect_reply_stop(fx *f, uint32_t w, uint64_t id, int64_t version, int64_t stop);

static void expect_reply(fx *f, uint32_t w, uint64_t id, int64_t version)
{
    expect_reply_stop(f, w, id, version, 0);
}

static void expect_reply_stop(fx *f, uint32_t w, uint64_t id, int64_t version, int64_t stop)
{
    static const ps_msg_table lt[NT] = {{3, 8}, {2, 1}};
    const ps_msg_limits lim = {.tables = lt, .ntables = NT, .nworkers = f->nw};
    ps_comm_msg m;
    ps_reply r;
    assert_int_equal(ps_comm_recv(f->c[w + 1], 0, PS_TAG_REPLY, 0, &m), 0);
    assert_int_equal(ps_codec_decode_reply(f->codec, &lim, 0, m.data, m.len, &r), 0);
    assert_int_equal(r.request_id, id);
    assert_int_equal(r.version, version);
    assert_int_equal(r.stop_clock, stop);
    assert_int_equal(r.nsegs, NT);
    /* The values come as payloads after the header, one per segment, in
     * pieces of the configured size. */
    assert_int_equal(r.chunk, f->cfg.reply_chunk ? f->cfg.reply_chunk : 65536);
    float want[3 * 3], got[3 * 3];
    ps_store_read(ps_server_store(f->srv), 0, pull_keys_w, 3, 0, want);
    assert_int_equal(r.segs[0].nvalues, 9);
    assert_null(r.segs[0].values);
    assert_int_equal(
        ps_payload_recv_one(f->c[w + 1], 0, PS_TAG_DATA(PS_TAG_REPLY), got, 9, r.chunk, "reply"),
        0);
    assert_memory_equal(got, want, 9 * sizeof(float));
    ps_store_read(ps_server_store(f->srv), 1, pull_keys_b, 1, 0, want);
    assert_int_equal(r.segs[1].nvalues, 2);
    assert_int_equal(
        ps_payload_recv_one(f->c[w + 1], 0, PS_TAG_DATA(PS_TAG_REPLY), got, 2, r.chunk, "reply"),
        0);
    assert_memory_equal(got, want, 2 * sizeof(float));
}

/* Worker w's pull, sent into the server's mailbox without handling it. */
static void pull_pending(fx *f, uint32_t w, uint64_t id, int64_t min_version)
{
    ps_seg segs[NT] = {{.table = 0, .nkeys = 3, .slots = pull_keys_w},
                       {.table = 1, .nkeys = 1, .slots = pull_keys_b}};
    ps_pull p = {
        .request_id = id, .min_version = min_version, .worker = w, .nsegs = NT, .segs = segs};
    assert_int_equal(ps_codec_encode_pull(f->codec, &p, &f->buf), 0);
    assert_int_equal(ps_comm_send(f->c[w + 1], 0, PS_TAG_PULL, &f->buf), 0);
}

/* Whether a pull from worker w still waits in the server's mailbox. */
static int pull_in_comm(fx *f, uint32_t w)
{
    ps_comm_msg m;
    return ps_comm_recv(f->c[0], f->worker_ranks[w], PS_TAG_PULL, 0, &m) == 0;
}

/* Whether every array of every table is bit-identical in a and b. */
static int stores_equal(ps_store *a, ps_store *b)
{
    for (uint32_t t = 0; t < NT; t++) {
        ps_store_arrays x, y;
        ps_store_arrays_get(a, t, &x);
        ps_store_arrays_get(b, t, &y);
        size_t n = (size_t)x.nslots * x.width * sizeof(float);
        if (x.nstate != y.nstate || memcmp(x.w, y.w, n) != 0) {
            return 0;
        }
        for (int k = 0; k < x.nstate; k++) {
            if (memcmp(x.state[k], y.state[k], n) != 0) {
                return 0;
            }
        }
    }
    return 1;
}

/* The reference: clocks [0, nclocks) summed in the given worker order,
 * straight on a store, the way BSP must do it: every push has SAMPLES
 * samples, so each adds with weight 1 and the sum is applied divided by the
 * pushes that count (skip_w's does not). */
static ps_store *reference(fx *f, const uint32_t *order, int nclocks, int skip_w)
{
    ps_store *s = NULL;
    assert_int_equal(ps_store_create(&s, &f->cfg.store), 0);
    uint32_t n = skip_w >= 0 ? f->nw - 1 : f->nw;
    for (int64_t c = 0; c < nclocks; c++) {
        for (uint32_t i = 0; i < f->nw; i++) {
            if ((int)order[i] == skip_w) {
                continue;
            }
            ps_push p = make_push(f, order[i], c, -1);
            ps_store_accumulate(s, &p, 1.0f);
        }
        assert_int_equal(ps_store_apply_scaled(s, c + 1, 1.0f / (float)n), 0);
    }
    return s;
}

static void test_server_bsp_sums_in_worker_order_under_every_arrival(void **state)
{
    (void)state;
    static const uint32_t perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                         {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    static const uint32_t in_order[3] = {0, 1, 2}, reversed[3] = {2, 1, 0};
    for (int lazy = 0; lazy < 2; lazy++) {
        fx f;
        fx_open(&f, PS_SYNC_BSP, 3, lazy);
        ps_store *want = reference(&f, in_order, 2, -1);
        ps_store *other = reference(&f, reversed, 2, -1);
        /* The test can fail: arrival order would change the bits. */
        assert_false(stores_equal(want, other));
        ps_store_destroy(&other);
        fx_close(&f);
        for (int p = 0; p < 6; p++) {
            fx_open(&f, PS_SYNC_BSP, 3, lazy);
            for (int64_t c = 0; c < 2; c++) {
                for (int i = 0; i < 3; i++) {
                    /* Clock 1 arrives in the opposite order of clock 0. */
                    uint32_t w = perms[p][c == 0 ? i : 2 - i];
                    assert_int_equal(push(&f, w, c), 0);
                    /* Early pushes wait: the clock steps with its last push. */
                    assert_int_equal(ps_server_version(f.srv), c + (i == 2));
                    assert_int_equal(ps_store_step(ps_server_store(f.srv)), c + (i == 2));
                }
            }
            assert_true(stores_equal(ps_server_store(f.srv), want));
            fx_close(&f);
        }
        ps_store_destroy(&want);
    }
}

static void test_server_bsp_answers_waiting_pulls_after_the_last_push(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, PS_SYNC_BSP, 2, 1);
    assert_int_equal(pull(&f, 1, 10, 0), 0); /* version 0 exists: at once */
    expect_reply(&f, 1, 10, 0);
    assert_int_equal(push(&f, 1, 0), 0); /* early: held */
    assert_int_equal(pull(&f, 1, 11, 1), 0);
    assert_int_equal(pull(&f, 0, 12, 1), 0);
    assert_int_equal(pull(&f, 1, 13, 1), 0);
    expect_no_reply(&f, 0);
    expect_no_reply(&f, 1);
    assert_int_equal(push(&f, 0, 0), 0); /* completes clock 0 */
    assert_int_equal(ps_server_version(f.srv), 1);
    /* Answered from the updated rows, each worker's in request order. */
    expect_reply(&f, 1, 11, 1);
    expect_reply(&f, 1, 13, 1);
    expect_reply(&f, 0, 12, 1);
    expect_no_reply(&f, 1);
    /* Steady state: held pushes and pulls reuse their storage (once the
     * comm pool, shared by headers and payloads, has grown to both). */
    long allocs = -1;
    for (int64_t c = 1; c < 9; c++) {
        if (c == 6) {
            ps_test_fail_alloc(LONG_MAX); /* count only */
        }
        assert_int_equal(push(&f, 1, c), 0);
        assert_int_equal(pull(&f, 1, 100 + (uint64_t)c, c + 1), 0);
        assert_int_equal(push(&f, 0, c), 0);
        expect_reply(&f, 1, 100 + (uint64_t)c, c + 1);
    }
    allocs = ps_test_nalloc;
    ps_test_fail_alloc(-1);
    assert_int_equal(allocs, 0);
    fx_close(&f);
}

static void test_server_ssp_holds_pull_until_its_version(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, PS_SYNC_SSP, 2, 1);
    for (int64_t c = 0; c < 3; c++) {
        assert_int_equal(push(&f, 0, c), 0);
    }
    /* Applied on arrival, but the version is the slowest worker's clock. */
    assert_int_equal(ps_store_step(ps_server_store(f.srv)), 3);
    assert_int_equal(ps_server_version(f.srv), 0);
    /* Worker 0 at clock 3 with K = 2 asks for version 1. */
    assert_int_equal(pull(&f, 0, 7, 1), 0);
    expect_no_reply(&f, 0);
    assert_int_equal(push(&f, 1, 0), 0);
    assert_int_equal(ps_server_version(f.srv), 1);
    expect_reply(&f, 0, 7, 1);
    assert_int_equal(pull(&f, 0, 8, 2), 0);
    expect_no_reply(&f, 0);
    assert_int_equal(push(&f, 1, 1), 0);
    expect_reply(&f, 0, 8, 2);
    fx_close(&f);
}

/* Pushes whose values come as payloads step the store exactly as inline
 * ones do; a payload shorter than its header said is PS_EMSG naming the
 * worker's rank. */
static void test_server_takes_payload_pushes_and_rejects_a_short_one(void **state)
{
    (void)state;
    fx a, b;
    fx_open(&a, PS_SYNC_ASP, 1, 0);
    fx_open(&b, PS_SYNC_ASP, 1, 0);
    for (int64_t c = 0; c < 3; c++) {
        assert_int_equal(push(&a, 0, c), 0);
        assert_int_equal(push_payloads(&b, 0, c, 0), 0);
    }
    assert_int_equal(ps_store_step(ps_server_store(b.srv)), 3);
    assert_true(stores_equal(ps_server_store(a.srv), ps_server_store(b.srv)));
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    assert_int_equal(push_payloads(&b, 0, 3, 2), PS_EMSG);
    char *log = ps_test_capture_end(&cap);
    assert_non_null(strstr(log, "rank 1 sent a payload of"));
    test_free(log);
    fx_close(&a);
    fx_close(&b);
}

static void test_server_asp_answers_at_once(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, PS_SYNC_ASP, 2, 0);
    float init[3];
    ps_store_read(ps_server_store(f.srv), 0, pull_keys_w, 1, 0, init);
    for (int64_t c = 0; c < 4; c++) {
        assert_int_equal(push(&f, 0, c), 0);
    }
    assert_int_equal(pull(&f, 0, 1, 0), 0);
    expect_reply(&f, 0, 1, 0); /* worker 1 never pushed: version 0 */
    float now[3];
    ps_store_read(ps_server_store(f.srv), 0, pull_keys_w, 1, 0, now);
    assert_int_equal(ps_store_step(ps_server_store(f.srv)), 4);
    assert_memory_not_equal(init, now, sizeof init);
    fx_close(&f);
}

/* A push that is a step of its own answers its worker's pull from the
 * step: under ASP one already in the comm is taken during the apply,
 * under 1-worker BSP the held one; the reply (in pieces that cut rows)
 * has the stepped rows, and the store is the whole push's step bit for
 * bit. A pull for a later version is held, and with temporal averaging
 * the pull is left in the comm for the loop. */
static void test_server_answers_the_pushers_pull_from_the_step(void **state)
{
    (void)state;
    static const uint32_t order[1] = {0};
    for (int bsp = 0; bsp < 2; bsp++) {
        fx f;
        fx_prepare(&f, bsp ? PS_SYNC_BSP : PS_SYNC_ASP, 1, 1, 0, 1);
        f.cfg.reply_chunk = 4; /* rows of w are 3 wide */
        fx_start(&f);
        if (bsp) {
            assert_int_equal(pull(&f, 0, 7, 1), 0);
            expect_no_reply(&f, 0); /* held for version 1 */
        } else {
            pull_pending(&f, 0, 7, 1);
        }
        assert_int_equal(push(&f, 0, 0), 0);
        assert_false(pull_in_comm(&f, 0));
        expect_reply(&f, 0, 7, 1);
        expect_no_reply(&f, 0);
        ps_store *want = reference(&f, order, 1, -1);
        assert_true(stores_equal(ps_server_store(f.srv), want));
        ps_store_destroy(&want);
        /* Asked for a version this step does not make: held, not sent. */
        pull_pending(&f, 0, 8, 3);
        assert_int_equal(push(&f, 0, 1), 0);
        assert_false(pull_in_comm(&f, 0));
        expect_no_reply(&f, 0);
        assert_int_equal(push(&f, 0, 2), 0);
        expect_reply(&f, 0, 8, 3);
        fx_close(&f);
    }
    fx f;
    fx_prepare(&f, PS_SYNC_ASP, 1, 1, 0, 1);
    f.cfg.store.avg_beta = 0.9f;
    fx_start(&f);
    pull_pending(&f, 0, 9, 1);
    assert_int_equal(push(&f, 0, 0), 0);
    expect_no_reply(&f, 0);
    assert_true(pull_in_comm(&f, 0));
    fx_close(&f);
}

/* --nonfinite abort on a step of its own makes no pass over the gradients:
 * the weight check after each part finds what a bad one did and stops the
 * apply and the reply there, with the usual gradient blame; the rows
 * before it are stepped and their piece sent, the bad row's piece is not,
 * and the rows after it are untouched. */
static void test_server_stops_a_streamed_step_at_a_nonfinite_part(void **state)
{
    (void)state;
    fx f;
    fx_prepare(&f, PS_SYNC_ASP, 1, 1, 0, 1);
    f.cfg.reply_chunk = 3; /* one row of w per part */
    fx_start(&f);
    float before[8 * 3], after[8 * 3];
    const uint64_t all[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    ps_store_read(ps_server_store(f.srv), 0, all, 8, 0, before);
    pull_pending(&f, 0, 5, 1);
    PS_TEST_EXPECT_LOG(push_from(&f, 0, 0, 0, 7), PS_ENONFINITE,
                       "non-finite gradient nan from worker 0: table w, key 2, column 1, clock 0");
    ps_store_read(ps_server_store(f.srv), 0, all, 8, 0, after);
    assert_memory_not_equal(before, after, 2 * 3 * sizeof(float));
    assert_false(isfinite(after[2 * 3 + 1]));
    assert_memory_equal(before + 3 * 3, after + 3 * 3, 5 * 3 * sizeof(float));
    /* The header and the piece of row 1 (the pull's first row), no more. */
    ps_comm_msg m;
    float got[3];
    assert_int_equal(ps_comm_recv(f.c[1], 0, PS_TAG_REPLY, 0, &m), 0);
    assert_int_equal(ps_comm_recv_into(f.c[1], 0, PS_TAG_DATA(PS_TAG_REPLY), got, sizeof got, "r"),
                     0);
    assert_memory_equal(got, after + 3, sizeof got);
    expect_no_reply(&f, 0);
    fx_close(&f);
}

static void test_server_checkpoint_done_at_its_clock_and_resumes(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, PS_SYNC_BSP, 2, 1);
    assert_int_equal(ps_test_tmpdir_create(f.dir, sizeof f.dir, "server"), 0);
    f.cfg.ckpt_dir = f.dir;
    char path[256];
    snprintf(path, sizeof path, "%s/ckpt-1/shard-0.bin", f.dir);
    assert_int_equal(ctrl(&f, 0, PS_CTRL_CHECKPOINT, 1, ""), 0);
    expect_no_reply(&f, 0); /* clock 1 is not reached yet */
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(push(&f, 0, 0), 0);
    expect_no_reply(&f, 0);
    assert_int_equal(push(&f, 1, 0), 0);
    ps_comm_msg m;
    ps_ctrl done;
    const ps_msg_limits lim = {.nworkers = 2};
    assert_int_equal(ps_comm_recv(f.c[1], 0, PS_TAG_CTRL, 0, &m), 0);
    assert_int_equal(ps_codec_decode_ctrl(f.codec, &lim, 0, m.data, m.len, &done), 0);
    assert_int_equal(done.kind, PS_CTRL_CHECKPOINT_DONE);
    assert_int_equal(done.clock, 1);
    assert_int_equal(done.value, 0);
    expect_no_reply(&f, 1);
    assert_int_equal(access(path, F_OK), 0);
    /* A server resuming from it starts at version 1 with the same shard. */
    ps_ckpt_manifest m1 = {.clock = 1, .nservers = 1, .nworkers = 2};
    ps_server *again = NULL;
    assert_int_equal(ps_server_create(&again, &f.cfg, f.c[0]), 0);
    assert_int_equal(ps_server_resume(again, &m1), 0);
    assert_int_equal(ps_server_version(again), 1);
    assert_true(stores_equal(ps_server_store(again), ps_server_store(f.srv)));
    ps_server_destroy(&again);
    fx_close(&f);
}

static void test_server_rejects_bad_messages_naming_the_sender(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, PS_SYNC_BSP, 3, 1);
    PS_TEST_EXPECT_LOG(push_from(&f, 1, 0, 0, -1), PS_EMSG,
                       "push from rank 2 claims to be worker 0");
    fx_close(&f);
    fx_open(&f, PS_SYNC_BSP, 3, 1);
    PS_TEST_EXPECT_LOG(pull_from(&f, 2, 1, 1, 0), PS_EMSG,
                       "pull from rank 3 claims to be worker 1");
    fx_close(&f);
    fx_open(&f, PS_SYNC_BSP, 3, 1);
    PS_TEST_EXPECT_LOG(push(&f, 0, 1), PS_EMSG,
                       "push from rank 1 (worker 0) is for clock 1, expected clock 0");
    fx_close(&f);
    fx_open(&f, PS_SYNC_BSP, 3, 1);
    assert_int_equal(push(&f, 2, 0), 0);
    PS_TEST_EXPECT_LOG(push(&f, 2, 1), PS_EMSG,
                       "push from rank 3 (worker 2) for clock 1 runs ahead");
    fx_close(&f);
    /* A slot past the shard's 8 rows. */
    fx_open(&f, PS_SYNC_BSP, 3, 1);
    ps_push p = make_push(&f, 1, 0, -1);
    f.keys[0][f.segs[0].nkeys - 1] = 8;
    assert_int_equal(ps_codec_encode_push(f.codec, &p, &f.buf), 0);
    PS_TEST_EXPECT_LOG(handle(&f, 2, PS_TAG_PUSH), PS_EMSG, "push from rank 2: segment 0");
    fx_close(&f);
    fx_open(&f, PS_SYNC_BSP, 3, 1);
    PS_TEST_EXPECT_LOG(handle(&f, 3, 42), PS_EMSG, "message with unknown tag 42 from rank 3");
    fx_close(&f);
    fx_open(&f, PS_SYNC_BSP, 3, 1);
    PS_TEST_EXPECT_LOG(ctrl(&f, 1, PS_CTRL_ERROR, 0, "disk full"), PS_EPEER,
                       "worker 1 (rank 2) failed: disk full");
    fx_close(&f);
    fx_open(&f, PS_SYNC_BSP, 3, 1);
    PS_TEST_EXPECT_LOG(ctrl(&f, 1, PS_CTRL_CHECKPOINT, 1, ""), PS_EMSG,
                       "checkpoint request from rank 2, but no --checkpoint-dir");
    fx_close(&f);
    fx_open(&f, PS_SYNC_BSP, 3, 1);
    PS_TEST_EXPECT_LOG(push_from(&f, 0, 0, 0, 4), PS_ENONFINITE, "from worker 0");
    fx_close(&f);
    /* Gradients that are the mean over no samples. */
    fx_open(&f, PS_SYNC_BSP, 3, 1);
    p = make_push(&f, 2, 0, -1);
    p.samples = 0;
    assert_int_equal(ps_codec_encode_push(f.codec, &p, &f.buf), 0);
    PS_TEST_EXPECT_LOG(handle(&f, 3, PS_TAG_PUSH), PS_EMSG,
                       "push from rank 3 (worker 2) for clock 0 carries gradients of 0 samples");
    fx_close(&f);
}

static void test_server_refuses_a_second_done(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, PS_SYNC_ASP, 2, 1);
    assert_int_equal(ctrl(&f, 1, PS_CTRL_DONE, 0, ""), 0);
    assert_false(ps_server_is_done(f.srv));
    PS_TEST_EXPECT_LOG(ctrl(&f, 1, PS_CTRL_DONE, 0, ""), PS_EMSG,
                       "second DONE from rank 2 (worker 1)");
    assert_false(ps_server_is_done(f.srv));
    fx_close(&f);
    /* The last DONE with a pull still waiting: nobody could answer it. */
    fx_open(&f, PS_SYNC_BSP, 2, 1);
    assert_int_equal(pull(&f, 0, 1, 1), 0);
    assert_int_equal(ctrl(&f, 0, PS_CTRL_DONE, 0, ""), 0);
    PS_TEST_EXPECT_LOG(ctrl(&f, 1, PS_CTRL_DONE, 0, ""), PS_EMSG,
                       "all workers are done but 1 pulls still wait");
    fx_close(&f);
}

static void test_server_skips_a_held_nonfinite_push(void **state)
{
    (void)state;
    static const uint32_t order[3] = {0, 1, 2};
    fx f;
    fx_open(&f, PS_SYNC_BSP, 3, 0);
    f.cfg.nonfinite_skip = 1;
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    int rc1 = push_from(&f, 1, 1, 0, 2); /* early and bad: held empty */
    char *log = ps_test_capture_end(&cap);
    assert_int_equal(rc1, 0);
    assert_non_null(strstr(log, "dropping the gradients of worker 1 for clock 0"));
    test_free(log);
    assert_int_equal(push(&f, 2, 0), 0);
    assert_int_equal(push(&f, 0, 0), 0);
    assert_int_equal(ps_server_version(f.srv), 1);
    ps_store *want = reference(&f, order, 1, 1);
    assert_true(stores_equal(ps_server_store(f.srv), want));
    ps_store_destroy(&want);
    fx_close(&f);
}

/* A push of every row this server holds (every slot of its shard of each
 * table) from worker w, value v(w, slot, j) = ((7 slot + 3 j + 5 w + clock)
 * % 9 - 4) / 4: small multiples of 1/4, so sums and the weights below are
 * exact in float. nan puts a NaN in the first value. */
static ps_push shard_push(fx *f, uint32_t w, int64_t clock, uint32_t samples, int nan)
{
    const ps_msg_table *lim = ps_store_limits(ps_server_store(f->srv));
    size_t ns = 0;
    for (uint32_t t = 0; t < NT; t++) {
        for (uint64_t k = 0; k < lim[t].slots; k++) {
            for (uint32_t j = 0; j < lim[t].width; j++) {
                f->vals[t][k * lim[t].width + j] =
                    (float)((long)((7 * k + 3 * j + 5 * w + (uint64_t)clock) % 9) - 4) * 0.25f;
            }
            f->keys[t][k] = k;
        }
        if (lim[t].slots) {
            f->segs[ns++] = (ps_seg){.table = t,
                                     .nkeys = lim[t].slots,
                                     .slots = f->keys[t],
                                     .values = f->vals[t],
                                     .nvalues = lim[t].slots * lim[t].width};
        }
    }
    if (nan) {
        f->vals[0][0] = NAN;
    }
    return (ps_push){.clock = clock,
                     .worker = w,
                     .samples = samples,
                     .nsegs = samples ? ns : 0,
                     .segs = f->segs};
}

static int send_push(fx *f, const ps_push *p)
{
    assert_int_equal(ps_codec_encode_push(f->codec, p, &f->buf), 0);
    return handle(f, f->worker_ranks[p->worker], PS_TAG_PUSH);
}

/* BSP's step is the mean over every sample of the clock: worker 0's batch
 * of 2 and worker 1's of 6 weigh 1/4 and 3/4; worker 2's empty push (the
 * end of its part of the epoch) and worker 3's dropped one (a NaN, with
 * --nonfinite skip) weigh nothing. With SGD at lr 1 the step moves w by
 * exactly the mean, which these values make exact in float: the store must
 * equal one fed the mean itself, bit for bit, whatever the arrival order
 * (early pushes are held). Counts of 3 and 1 (weights not exact in float)
 * are checked against the mean in double, to 1e-6. */
static void test_server_bsp_weights_pushes_by_their_samples(void **state)
{
    (void)state;
    static const uint32_t counts[2][4] = {{2, 6, 0, 8}, {3, 1, 0, 8}};
    for (int lazy = 0; lazy < 2; lazy++) {
        for (int c = 0; c < 2; c++) {
            for (int reversed = 0; reversed < 2; reversed++) {
                fx f;
                fx_prepare(&f, PS_SYNC_BSP, 4, lazy, 0, 1);
                ps_opt_defaults(&f.cfg.store.hp, PS_OPT_SGD);
                f.cfg.store.hp.lr = 1.0f;
                f.cfg.nonfinite_skip = 1;
                fx_start(&f);
                ps_store *want = NULL;
                assert_int_equal(ps_store_create(&want, &f.cfg.store), 0);
                /* The mean over the 8 (or 4) samples that count. */
                float g0[8 * 3 + 2], g1[8 * 3 + 2], mean[8 * 3 + 2];
                double mean_d[8 * 3 + 2];
                ps_push p = shard_push(&f, 0, 0, 1, 0);
                memcpy(g0, f.vals[0], 24 * sizeof(float));
                memcpy(g0 + 24, f.vals[1], 2 * sizeof(float));
                p = shard_push(&f, 1, 0, 1, 0);
                memcpy(g1, f.vals[0], 24 * sizeof(float));
                memcpy(g1 + 24, f.vals[1], 2 * sizeof(float));
                double n0 = counts[c][0], n1 = counts[c][1];
                for (int i = 0; i < 26; i++) {
                    mean_d[i] = (n0 * g0[i] + n1 * g1[i]) / (n0 + n1);
                    mean[i] = (float)mean_d[i];
                }
                memcpy(f.vals[0], mean, 24 * sizeof(float));
                memcpy(f.vals[1], mean + 24, 2 * sizeof(float));
                ps_store_accumulate(want, &p, 1.0f);
                assert_int_equal(ps_store_apply(want, 1), 0);

                ps_test_capture cap;
                ps_test_capture_begin(&cap);
                for (int i = 0; i < 4; i++) {
                    uint32_t w = reversed ? 3 - (uint32_t)i : (uint32_t)i;
                    p = shard_push(&f, w, 0, counts[c][w], w == 3);
                    assert_int_equal(send_push(&f, &p), 0);
                }
                char *log = ps_test_capture_end(&cap);
                assert_non_null(strstr(log, "dropping the gradients of worker 3 for clock 0"));
                test_free(log);
                assert_int_equal(ps_server_version(f.srv), 1);
                if (c == 0) {
                    assert_true(stores_equal(ps_server_store(f.srv), want));
                } else {
                    ps_store_arrays a, w0;
                    ps_store_arrays_get(ps_server_store(f.srv), 0, &a);
                    ps_store_arrays_get(want, 0, &w0);
                    for (int i = 0; i < 24; i++) {
                        /* SGD at lr 1 from the same w: the difference is the
                         * gradient's error. */
                        assert_true(fabs((double)a.w[i] - (double)w0.w[i]) <= 1e-6);
                    }
                }
                ps_store_destroy(&want);
                fx_close(&f);
            }
        }
    }
}

/* A step that overflows from finite gradients (SGD at lr 3e38, g = 10) is
 * the server's error, not the workers': PS_ENONFINITE naming the server's
 * index, the table, the key (server 1 of 2 holds keys 4..7, so slot 0 is
 * key 4), the column and the step. Lazy (one push straight, or two summed)
 * and dense. */
static void test_server_reports_a_step_that_overflows(void **state)
{
    (void)state;
    for (int lazy = 0; lazy < 2; lazy++) {
        for (uint32_t nw = 1; nw <= 2; nw++) {
            fx f;
            fx_prepare(&f, PS_SYNC_BSP, nw, lazy, 1, 2);
            ps_opt_defaults(&f.cfg.store.hp, PS_OPT_SGD);
            f.cfg.store.hp.lr = 3e38f;
            fx_start(&f);
            uint64_t slots[2] = {0, 2};
            float v[6] = {10, 10, 10, 10, 10, 10};
            ps_seg seg = {.table = 0, .nkeys = 2, .slots = slots, .values = v, .nvalues = 6};
            for (uint32_t w = 0; w + 1 < nw; w++) {
                ps_push p = {.clock = 0, .worker = w, .samples = 1, .nsegs = 1, .segs = &seg};
                assert_int_equal(send_push(&f, &p), 0);
            }
            ps_push p = {.clock = 0, .worker = nw - 1, .samples = 1, .nsegs = 1, .segs = &seg};
            PS_TEST_EXPECT_LOG(send_push(&f, &p), PS_ENONFINITE,
                               "non-finite weight -inf on server 1 after step 1: table w, key 4, "
                               "column 0");
            fx_close(&f);
        }
    }
}

/* SSP and ASP with --nonfinite skip on two servers: worker 0's clock-0
 * push has a NaN in server 0's part only. Server 0 drops its part (its
 * weights stay), server 1 applies its own, and both count the push as step
 * 1, so bias correction and schedule stay the same on every shard. */
static void test_server_servers_agree_on_t_when_one_drops_part_of_a_push(void **state)
{
    (void)state;
    const ps_sync syncs[2] = {PS_SYNC_SSP, PS_SYNC_ASP};
    for (int y = 0; y < 2; y++) {
        for (int lazy = 0; lazy < 2; lazy++) {
            fx f[2];
            for (uint32_t s = 0; s < 2; s++) {
                fx_prepare(&f[s], syncs[y], 2, lazy, s, 2);
                f[s].cfg.nonfinite_skip = 1;
                fx_start(&f[s]);
            }
            float w0[12];
            ps_store_arrays a;
            ps_store_arrays_get(ps_server_store(f[0].srv), 0, &a);
            memcpy(w0, a.w, sizeof w0);
            ps_test_capture cap;
            ps_test_capture_begin(&cap);
            for (uint32_t s = 0; s < 2; s++) {
                ps_push p = shard_push(&f[s], 0, 0, 4, s == 0);
                assert_int_equal(send_push(&f[s], &p), 0);
            }
            char *log = ps_test_capture_end(&cap);
            assert_non_null(strstr(log, "dropping the gradients of worker 0 for clock 0"));
            test_free(log);
            assert_int_equal(ps_store_step(ps_server_store(f[0].srv)), 1);
            assert_int_equal(ps_store_step(ps_server_store(f[1].srv)), 1);
            assert_memory_equal(a.w, w0, sizeof w0); /* the dropped part changed nothing */
            for (int64_t c = 0; c < 2; c++) {
                for (uint32_t s = 0; s < 2; s++) {
                    ps_push p = shard_push(&f[s], 1, c, 4, 0);
                    assert_int_equal(send_push(&f[s], &p), 0);
                }
            }
            assert_int_equal(ps_store_step(ps_server_store(f[0].srv)), 3);
            assert_int_equal(ps_store_step(ps_server_store(f[1].srv)), 3);
            fx_close(&f[0]);
            fx_close(&f[1]);
        }
    }
}

static void test_server_create_checks_cfg_and_survives_oom(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, PS_SYNC_BSP, 2, 1);
    ps_server *s = NULL;
    ps_server_cfg bad = f.cfg;
    int ranks[2] = {1, 5};
    bad.worker_ranks = ranks;
    PS_TEST_EXPECT_LOG(ps_server_create(&s, &bad, f.c[0]), PS_EINVAL,
                       "worker 1 is rank 5, outside");
    bad.nworkers = 0;
    PS_TEST_EXPECT_LOG(ps_server_create(&s, &bad, f.c[0]), PS_EINVAL, "no workers");
    assert_null(s);
    long fail = 0;
    for (;; fail++) {
        ps_test_fail_alloc(fail);
        int rc = ps_server_create(&s, &f.cfg, f.c[0]);
        ps_test_fail_alloc(-1);
        if (rc == 0) {
            break;
        }
        assert_int_equal(rc, PS_ENOMEM);
        assert_null(s);
    }
    assert_true(fail > 4);
    ps_server_destroy(&s);
    fx_close(&f);
}

/* The coordinator's STOP stamps every later reply (waiting pulls too);
 * a STOP from another worker is refused; a DONE that says "stopped" makes
 * the server stopped. */
static void test_server_stamps_replies_after_a_stop(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, PS_SYNC_BSP, 2, 1);
    assert_int_equal(pull(&f, 0, 1, 0), 0);
    expect_reply(&f, 0, 1, 0);              /* before: no stamp */
    assert_int_equal(pull(&f, 1, 2, 1), 0); /* waits for clock 0 */
    assert_int_equal(ctrl(&f, 0, PS_CTRL_STOP, 3, ""), 0);
    assert_int_equal(push(&f, 0, 0), 0);
    assert_int_equal(push(&f, 1, 0), 0);
    expect_reply_stop(&f, 1, 2, 1, 3);
    assert_int_equal(pull(&f, 0, 3, 1), 0);
    expect_reply_stop(&f, 0, 3, 1, 3);
    PS_TEST_EXPECT_LOG(ctrl(&f, 1, PS_CTRL_STOP, 4, ""), PS_EMSG,
                       "only the coordinator (worker 0) stops the job");
    fx_close(&f);
    fx_open(&f, PS_SYNC_ASP, 2, 1);
    assert_int_equal(ctrl_value(&f, 0, PS_CTRL_DONE, 0, 1, ""), 0);
    assert_int_equal(ctrl_value(&f, 1, PS_CTRL_DONE, 0, 1, ""), 0);
    assert_true(ps_server_is_done(f.srv));
    assert_true(ps_server_is_stopped(f.srv));
    fx_close(&f);
}

/* A shard that cannot be written (a full disk, here a directory that
 * cannot be made) goes back to the coordinator as a failed
 * CHECKPOINT_DONE; the server itself carries on. */
static void test_server_reports_a_failed_checkpoint_and_carries_on(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, PS_SYNC_BSP, 1, 1);
    char file[300];
    assert_int_equal(ps_test_tmpdir_create(f.dir, sizeof f.dir, "server_full"), 0);
    snprintf(file, sizeof file, "%s/plain", f.dir);
    ps_test_write_text(file, "not a directory");
    f.cfg.ckpt_dir = file;
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    assert_int_equal(push(&f, 0, 0), 0);
    assert_int_equal(ctrl(&f, 0, PS_CTRL_CHECKPOINT, 1, ""), 0);
    test_free(ps_test_capture_end(&cap));
    ps_comm_msg m;
    ps_ctrl done;
    const ps_msg_limits lim = {.nworkers = 1};
    assert_int_equal(ps_comm_recv(f.c[1], 0, PS_TAG_CTRL, 0, &m), 0);
    assert_int_equal(ps_codec_decode_ctrl(f.codec, &lim, 0, m.data, m.len, &done), 0);
    assert_int_equal(done.kind, PS_CTRL_CHECKPOINT_DONE);
    assert_int_equal(done.clock, 1);
    assert_int_equal(done.value, 1);
    assert_string_equal(done.text, "input/output error");
    assert_int_equal(push(&f, 0, 1), 0); /* still serving */
    assert_int_equal(pull(&f, 0, 9, 2), 0);
    expect_reply(&f, 0, 9, 2);
    fx_close(&f);
}

/* ---- ps_server_run in a thread -------------------------------------------- */

typedef struct {
    const ps_server_cfg *cfg;
    int fail_before_push; /* this worker returns PS_EIO after start-up */
    double timeout;       /* > 0: the peer timeout of every rank */
    double pause;         /* seconds this worker is quiet before its first push */
    int pause_beats;      /* ... sending heartbeats meanwhile */
    int agreed;
    int64_t reply_version;
    int rc_after;
    double took; /* the server: seconds ps_server_run ran */
} run_arg;

/* Liveness as cli/ sets it up: the server and every worker are peers. */
static int run_liveness(ps_comm *c, const run_arg *a)
{
    int peers[1 + MAXW], n = 0;
    if (a->timeout <= 0) {
        return 0;
    }
    for (int r = 0; r < ps_comm_size(c); r++) {
        if (r == 0 || ps_comm_rank(c) == 0) {
            peers[n++] = r;
        }
    }
    ps_comm_set_timeout(c, a->timeout);
    return ps_comm_set_peers(c, peers, n);
}

static int run_server(ps_comm *c, void *arg)
{
    run_arg *a = arg;
    int rc = run_liveness(c, a);
    double t0 = ps_comm_time();
    rc = rc ? rc : ps_server_run(a->cfg, c);
    a->took = ps_comm_time() - t0;
    return rc;
}

/* A worker: start-up handshake, two clocks of push + pull, DONE. */
static int run_worker(ps_comm *c, void *arg)
{
    run_arg *a = arg;
    uint32_t w = (uint32_t)ps_comm_rank(c) - 1;
    ps_codec *codec = NULL;
    ps_bytes b = {0};
    int rc = run_liveness(c, a);
    if (rc == 0) {
        rc = ps_codec_create(&codec);
    }
    a->agreed = ps_comm_agree(c, rc);
    /* The server tries its checkpoints in turn, one agree each. */
    for (uint32_t i = 0, go = a->agreed == 0; go && i < a->cfg->nresume; i++) {
        a->agreed = ps_comm_agree(c, 0);
        go = a->agreed == PS_ECKPT || a->agreed == PS_EIO;
    }
    if ((rc = a->agreed)) {
        goto done;
    }
    if (a->fail_before_push) {
        rc = PS_EIO;
        goto done;
    }
    for (double t = 0; t < a->pause; t += 0.01) {
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
        if (a->pause_beats) {
            ps_comm_alive();
        }
    }
    static const ps_msg_table lt[NT] = {{3, 8}, {2, 1}};
    const ps_msg_limits lim = {.tables = lt, .ntables = NT, .nworkers = a->cfg->nworkers};
    int64_t first = a->cfg->nresume ? a->reply_version : 0;
    for (int64_t clock = first; rc == 0 && clock < first + 2; clock++) {
        float v[3] = {0.5f * (float)(w + 1), -1.0f, 2.0f};
        uint64_t key = w;
        ps_seg seg = {.table = 0, .nkeys = 1, .slots = &key, .values = v, .nvalues = 3};
        ps_push p = {.clock = clock, .worker = w, .samples = 1, .nsegs = 1, .segs = &seg};
        ps_seg pseg = {.table = 0, .nkeys = 1, .slots = &key};
        ps_pull q = {.request_id = (uint64_t)clock,
                     .min_version = clock + 1,
                     .worker = w,
                     .nsegs = 1,
                     .segs = &pseg};
        ps_comm_msg m;
        ps_reply r;
        if ((rc = ps_codec_encode_push(codec, &p, &b)) ||
            (rc = ps_comm_send(c, 0, PS_TAG_PUSH, &b)) ||
            (rc = ps_codec_encode_pull(codec, &q, &b)) ||
            (rc = ps_comm_send(c, 0, PS_TAG_PULL, &b)) ||
            (rc = ps_comm_recv(c, 0, PS_TAG_REPLY, 1, &m)) ||
            (rc = ps_codec_decode_reply(codec, &lim, 0, m.data, m.len, &r))) {
            break;
        }
        a->reply_version = r.version;
    }
    ps_ctrl d = {.kind = PS_CTRL_DONE, .worker = w, .text = ""};
    if (rc == 0 && (rc = ps_codec_encode_ctrl(codec, &d, &b)) == 0) {
        rc = ps_comm_send(c, 0, PS_TAG_CTRL, &b);
    }
done:
    a->rc_after = rc;
    ps_free(b.data);
    ps_codec_destroy(&codec);
    return rc;
}

/* Runs the server and nw workers; args[r] may be preset (fields other
 * than cfg and fail_before_push are kept). */
static void run_job(ps_server_cfg *cfg, int *worker_ranks, uint32_t nw, int failing, run_arg *args,
                    int *rcs)
{
    ps_test_rank_fn fns[1 + MAXW] = {run_server};
    void *argp[1 + MAXW];
    for (uint32_t w = 0; w < nw; w++) {
        worker_ranks[w] = (int)w + 1;
    }
    for (uint32_t r = 0; r <= nw; r++) {
        args[r].cfg = cfg;
        args[r].fail_before_push = (int)r == failing;
        argp[r] = &args[r];
        fns[r] = r ? run_worker : run_server;
    }
    ps_test_run_ranks(1 + (int)nw, fns, argp, rcs);
}

static void test_server_run_serves_workers_until_done(void **state)
{
    (void)state;
    fx f;
    memset(&f, 0, sizeof f);
    fx_cfg(&f, PS_SYNC_BSP, 2, 1);
    run_arg args[3];
    int rcs[3];
    memset(args, 0, sizeof args);
    run_job(&f.cfg, f.worker_ranks, 2, -1, args, rcs);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(rcs[r], 0);
    }
    assert_int_equal(args[1].reply_version, 2);
    assert_int_equal(args[2].reply_version, 2);
}

static void test_server_run_returns_when_a_worker_fails(void **state)
{
    (void)state;
    fx f;
    memset(&f, 0, sizeof f);
    fx_cfg(&f, PS_SYNC_BSP, 2, 1);
    run_arg args[3];
    int rcs[3];
    memset(args, 0, sizeof args);
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    run_job(&f.cfg, f.worker_ranks, 2, 2, args, rcs);
    char *log = ps_test_capture_end(&cap);
    /* Worker 0 pushed and waits for a reply that needs worker 1's push. */
    assert_int_equal(rcs[2], PS_EIO);
    assert_int_equal(rcs[0], PS_EPEER);
    assert_int_equal(rcs[1], PS_EPEER);
    assert_non_null(strstr(log, "world rank 2 failed"));
    test_free(log);
    /* A start-up failure on the server is agreed by every rank. */
    f.cfg.nworkers = 0;
    ps_test_capture_begin(&cap);
    run_job(&f.cfg, f.worker_ranks, 2, -1, args, rcs);
    log = ps_test_capture_end(&cap);
    test_free(log);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(rcs[r], PS_EINVAL);
    }
    assert_int_equal(args[1].agreed, PS_EINVAL);
}

/* A worker quiet for 3x the timeout: silent, the server gives up naming
 * it and what it waits for; with heartbeats, the job just takes longer. */
static void test_server_run_names_a_silent_worker_and_waits_for_a_busy_one(void **state)
{
    (void)state;
    fx f;
    memset(&f, 0, sizeof f);
    fx_cfg(&f, PS_SYNC_BSP, 2, 1);
    for (int beats = 0; beats < 2; beats++) {
        run_arg args[3];
        int rcs[3];
        memset(args, 0, sizeof args);
        for (int r = 0; r < 3; r++) {
            args[r].timeout = 0.3;
        }
        args[2].pause = 0.9;
        args[2].pause_beats = beats;
        ps_test_capture cap;
        ps_test_capture_begin(&cap);
        run_job(&f.cfg, f.worker_ranks, 2, -1, args, rcs);
        double took = args[0].took;
        char *log = ps_test_capture_end(&cap);
        if (beats) {
            for (int r = 0; r < 3; r++) {
                assert_int_equal(rcs[r], 0);
            }
            assert_int_equal(args[1].reply_version, 2);
            assert_true(took >= 0.9);
        } else {
            assert_int_equal(rcs[0], PS_ETIMEDOUT);
            assert_non_null(strstr(log, "rank 2 has sent nothing, not even a heartbeat"));
            assert_non_null(strstr(log, "waited for pushes and pulls from the workers"));
            assert_non_null(strstr(log, "server 0: worker 1 (rank 2) fell silent after 0 pushes"));
            assert_true(took < 0.9); /* before the worker would have spoken */
        }
        test_free(log);
    }
}

/* Resuming tries the checkpoints newest first: a missing one is skipped,
 * the next one is loaded on every rank. */
static void test_server_run_resumes_from_the_newest_checkpoint_it_can_read(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, PS_SYNC_BSP, 2, 1);
    assert_int_equal(ps_test_tmpdir_create(f.dir, sizeof f.dir, "server_resume"), 0);
    f.cfg.ckpt_dir = f.dir;
    assert_int_equal(push(&f, 0, 0), 0);
    assert_int_equal(push(&f, 1, 0), 0);
    assert_int_equal(ctrl(&f, 0, PS_CTRL_CHECKPOINT, 1, ""), 0);
    ps_comm_msg m;
    assert_int_equal(ps_comm_recv(f.c[1], 0, PS_TAG_CTRL, 0, &m), 0);
    ps_server_destroy(&f.srv);
    ps_ckpt_manifest cands[2] = {{.clock = 7, .nservers = 1, .nworkers = 2},
                                 {.clock = 1, .nservers = 1, .nworkers = 2}};
    f.cfg.resume = cands;
    f.cfg.nresume = 2;
    run_arg args[3];
    int rcs[3];
    memset(args, 0, sizeof args);
    args[1].reply_version = args[2].reply_version = 1; /* the clock they resume at */
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    run_job(&f.cfg, f.worker_ranks, 2, -1, args, rcs);
    char *log = ps_test_capture_end(&cap);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(rcs[r], 0);
    }
    assert_non_null(strstr(log, "ckpt-7/shard-0.bin: cannot open"));
    assert_int_equal(args[1].reply_version, 3); /* clocks 1 and 2 on top of ckpt-1 */
    test_free(log);
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_bsp_sums_in_worker_order_under_every_arrival,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_bsp_answers_waiting_pulls_after_the_last_push,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_ssp_holds_pull_until_its_version, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_takes_payload_pushes_and_rejects_a_short_one,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_asp_answers_at_once, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_answers_the_pushers_pull_from_the_step,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_stops_a_streamed_step_at_a_nonfinite_part,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_checkpoint_done_at_its_clock_and_resumes,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_rejects_bad_messages_naming_the_sender,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_refuses_a_second_done, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_skips_a_held_nonfinite_push, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_bsp_weights_pushes_by_their_samples,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_reports_a_step_that_overflows, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(
            test_server_servers_agree_on_t_when_one_drops_part_of_a_push, ps_test_setup,
            ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_create_checks_cfg_and_survives_oom,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_run_serves_workers_until_done, ps_test_setup_mt,
                                        ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_server_stamps_replies_after_a_stop, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_server_reports_a_failed_checkpoint_and_carries_on,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(
            test_server_run_names_a_silent_worker_and_waits_for_a_busy_one, ps_test_setup_mt,
            ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(
            test_server_run_resumes_from_the_newest_checkpoint_it_can_read, ps_test_setup_mt,
            ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_server_run_returns_when_a_worker_fails,
                                        ps_test_setup_mt, ps_test_teardown_mt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
