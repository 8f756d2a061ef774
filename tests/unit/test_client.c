/* Tests for worker/client on the loop comm backend, no mpirun. A worker
 * thread plans, pulls, pushes and pulls again against 1-3 real server
 * threads (ps_server_run) under range and hash sharding, lazy and dense;
 * the main thread then checks that the gathered rows are the servers'
 * initial rows (ps_table_init_row) in key order, and that after the push
 * they are one Adam step (ps_opt_step on the same numbers, bit for bit),
 * also with replies in pieces of one and two rows.
 * A fake server played from the main thread sends replies with the wrong
 * request id, segment count, segment shape or sender, or with a wrong tag,
 * or control messages no wait expects: each is PS_EMSG naming the rank,
 * never a wait for ever; so is a reply piece of the wrong size, and one
 * that never comes is PS_ETIMEDOUT. It also stamps a stop clock, sends a pull reply
 * into a checkpoint's wait (kept for the pull, whole and in pieces), reports a failed shard
 * write, and passes on a stop request. */
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
#include "common/shard.h"
#include "common/table.h"
#include "server/optim.h"
#include "server/server.h"
#include "tests/unit/ps_test.h"
#include "tests/unit/ps_test_loop.h"
#include "worker/client.h"

#define SEED 4242
#define NT 2
#define MAXS 3
#define WROWS 20

static const ps_table_desc tables[NT] = {
    {"w", WROWS, 3, PS_INIT_GLOROT, 0.5f},
    {"b", 1, 2, PS_INIT_NORMAL, 0.1f},
};

/* Runs of neighbours and gaps, both ends of the table. */
static uint64_t keys_w[] = {0, 1, 2, 5, 9, 10, 11, 17, 19};
static uint64_t keys_b[] = {0};
#define NKW (sizeof keys_w / sizeof keys_w[0])

typedef struct {
    ps_client_cfg ccfg;
    ps_keylist keys[NT];
    float init_w[NKW * 3], init_b[2];   /* first pull */
    float after_w[NKW * 3], after_b[2]; /* pull after the push */
    float grad_w[NKW * 3], grad_b[2];
    int checkpoint;
} worker_job;

static void keylists(ps_keylist *k)
{
    memset(k, 0, NT * sizeof *k);
    k[0].keys = keys_w;
    k[0].n = NKW;
    k[1].keys = keys_b;
    k[1].n = 1;
}

/* The worker: handshake, plan, pull, push clock 0, pull version 1, (a
 * checkpoint of clock 1,) DONE. */
static int worker_rank(ps_comm *c, void *arg)
{
    worker_job *j = arg;
    ps_client *cl = NULL;
    ps_plan *p = NULL;
    float *init[NT] = {j->init_w, j->init_b}, *after[NT] = {j->after_w, j->after_b};
    const float *grads[NT] = {j->grad_w, j->grad_b};
    int rc = ps_comm_agree(c, 0);
    if (rc == 0 && (rc = ps_client_create(&cl, &j->ccfg, c)) == 0 &&
        (rc = ps_plan_create(&p, cl)) == 0 && (rc = ps_client_plan(cl, p, j->keys)) == 0 &&
        (rc = ps_client_pull_start(cl, p, 0, 0)) == 0 &&
        (rc = ps_client_pull_wait(cl, p, init)) == 0 &&
        (rc = ps_client_push(cl, p, grads, 0, 1)) == 0 &&
        (rc = ps_client_pull_start(cl, p, 1, 0)) == 0 &&
        (rc = ps_client_pull_wait(cl, p, after)) == 0 &&
        (!j->checkpoint || (rc = ps_client_checkpoint(cl, 1)) == 0)) {
        rc = ps_client_done(cl, 0);
    }
    ps_plan_destroy(&p);
    ps_client_destroy(&cl);
    return rc;
}

static int server_rank(ps_comm *c, void *arg)
{
    return ps_server_run(arg, c);
}

/* Row i of want_t: one Adam step (t = 1, fresh m and v) from the initial
 * row with gradient g, as the servers take it. */
static void adam_rows(const ps_table_desc *d, uint32_t t, const uint64_t *keys, size_t n,
                      const float *g, float *init, float *out)
{
    ps_opt_hp hp;
    ps_opt_defaults(&hp, PS_OPT_ADAM);
    for (size_t i = 0; i < n; i++) {
        float m[3] = {0}, v[3] = {0};
        float *state[2] = {m, v};
        ps_table_init_row(d, SEED, t, keys[i], init + i * d->width);
        memcpy(out + i * d->width, init + i * d->width, d->width * sizeof(float));
        ps_opt_step(&hp, out + i * d->width, state, g + i * d->width, d->width, 1);
    }
}

static void run_case(ps_shard_mode shard, uint32_t nservers, int lazy, const char *ckpt_dir,
                     size_t chunk)
{
    ps_server_cfg scfg[MAXS];
    int server_ranks[MAXS], worker_ranks[1] = {0};
    worker_job job;
    memset(&job, 0, sizeof job);
    for (uint32_t s = 0; s < nservers; s++) {
        server_ranks[s] = (int)s + 1;
        scfg[s] = (ps_server_cfg){.nworkers = 1,
                                  .worker_ranks = worker_ranks,
                                  .sync = PS_SYNC_BSP,
                                  .ckpt_dir = ckpt_dir,
                                  .reply_chunk = chunk,
                                  .config_text = "test_client",
                                  .opt_name = "adam"};
        scfg[s].store = (ps_store_cfg){.tables = tables,
                                       .ntables = NT,
                                       .server = s,
                                       .nservers = nservers,
                                       .shard = shard,
                                       .lazy = lazy,
                                       .seed = SEED};
        ps_opt_defaults(&scfg[s].store.hp, PS_OPT_ADAM);
    }
    job.ccfg = (ps_client_cfg){.tables = tables,
                               .ntables = NT,
                               .nservers = nservers,
                               .server_ranks = server_ranks,
                               .shard = shard,
                               .worker = 0,
                               .nworkers = 1};
    job.checkpoint = ckpt_dir != NULL;
    keylists(job.keys);
    for (size_t i = 0; i < NKW * 3; i++) {
        job.grad_w[i] = 0.25f * (float)i - 2.0f;
    }
    job.grad_b[0] = 0.5f;
    job.grad_b[1] = -3.0f;
    memset(job.init_w, 0xff, sizeof job.init_w); /* NaN: a row never written shows */
    memset(job.after_w, 0xff, sizeof job.after_w);

    ps_test_rank_fn fns[1 + MAXS] = {worker_rank};
    void *args[1 + MAXS] = {&job};
    int rcs[1 + MAXS];
    for (uint32_t s = 0; s < nservers; s++) {
        fns[s + 1] = server_rank;
        args[s + 1] = &scfg[s];
    }
    ps_test_run_ranks(1 + (int)nservers, fns, args, rcs);
    for (uint32_t r = 0; r <= nservers; r++) {
        assert_int_equal(rcs[r], 0);
    }
    float init_w[NKW * 3], init_b[2], want_w[NKW * 3], want_b[2];
    adam_rows(&tables[0], 0, keys_w, NKW, job.grad_w, init_w, want_w);
    adam_rows(&tables[1], 1, keys_b, 1, job.grad_b, init_b, want_b);
    assert_memory_equal(job.init_w, init_w, sizeof init_w);
    assert_memory_equal(job.init_b, init_b, sizeof init_b);
    assert_memory_equal(job.after_w, want_w, sizeof want_w);
    assert_memory_equal(job.after_b, want_b, sizeof want_b);
}

static void test_client_pull_push_pull_over_range_and_hash_shards(void **state)
{
    (void)state;
    for (int shard = 0; shard < 2; shard++) {
        for (uint32_t ns = 1; ns <= MAXS; ns++) {
            for (int lazy = 0; lazy < 2; lazy++) {
                run_case(shard ? PS_SHARD_HASH : PS_SHARD_RANGE, ns, lazy, NULL, 0);
            }
        }
    }
}

/* Replies in pieces of one and of two rows of w (3 floats wide; b's rows
 * are 2 wide, so its pieces cut nothing or hold a row and a third): the
 * same rows, bit for bit, received piece by piece. */
static void test_client_takes_replies_in_pieces_of_one_or_two_rows(void **state)
{
    (void)state;
    for (size_t chunk = 3; chunk <= 6; chunk += 3) {
        for (uint32_t ns = 1; ns <= MAXS; ns += 2) {
            for (int lazy = 0; lazy < 2; lazy++) {
                run_case(PS_SHARD_RANGE, ns, lazy, NULL, chunk);
                run_case(PS_SHARD_HASH, ns, lazy, NULL, chunk);
            }
        }
    }
}

static void test_client_checkpoint_reaches_every_server(void **state)
{
    (void)state;
    char dir[128], path[256];
    assert_int_equal(ps_test_tmpdir_create(dir, sizeof dir, "client"), 0);
    run_case(PS_SHARD_HASH, 3, 1, dir, 0);
    for (int s = 0; s < 3; s++) {
        snprintf(path, sizeof path, "%s/ckpt-1/shard-%d.bin", dir, s);
        assert_int_equal(access(path, F_OK), 0);
    }
    assert_int_equal(ps_test_rmtree(dir), 0);
}

/* ---- a fake server ---------------------------------------------------------- */

typedef struct {
    ps_comm *c[3]; /* worker 0, server rank 1, rank 2 (no server) */
    int server_rank;
    ps_client *cl;
    ps_plan *plan;
    ps_codec *codec;
    ps_bytes buf;
    ps_keylist keys[NT];
    float params_w[NKW * 3], params_b[2];
    ps_pull pull; /* what the fake server received */
    float vals[NKW * 3 + 2];
    ps_seg segs[NT];
    int payload;  /* replies send their values as payloads after the header */
    size_t chunk; /* ... in pieces of this many floats (0: whole) */
    int cut;      /* 1: segment 0's payload goes whole despite chunk; 2: the last
                     segment's last piece never goes */
} fake;

static void fake_open(fake *f)
{
    memset(f, 0, sizeof *f);
    f->server_rank = 1;
    assert_int_equal(ps_comm_loop_create(f->c, 3), 0);
    ps_client_cfg cc = {.tables = tables,
                        .ntables = NT,
                        .nservers = 1,
                        .server_ranks = &f->server_rank,
                        .shard = PS_SHARD_RANGE,
                        .worker = 0,
                        .nworkers = 1};
    assert_int_equal(ps_client_create(&f->cl, &cc, f->c[0]), 0);
    assert_int_equal(ps_plan_create(&f->plan, f->cl), 0);
    assert_int_equal(ps_codec_create(&f->codec), 0);
    keylists(f->keys);
    assert_int_equal(ps_client_plan(f->cl, f->plan, f->keys), 0);
}

static void fake_close(fake *f)
{
    ps_plan_destroy(&f->plan);
    ps_client_destroy(&f->cl);
    ps_codec_destroy(&f->codec);
    ps_free(f->buf.data);
    for (int r = 0; r < 3; r++) {
        ps_comm_destroy(&f->c[r]);
    }
}

/* Starts a pull and takes it off the fake server's mailbox. */
static void fake_pull(fake *f)
{
    static const ps_msg_table lt[NT] = {{3, WROWS}, {2, 1}};
    const ps_msg_limits lim = {.tables = lt, .ntables = NT, .nworkers = 1};
    ps_comm_msg m;
    assert_int_equal(ps_client_pull_start(f->cl, f->plan, 0, 0), 0);
    assert_int_equal(ps_comm_recv(f->c[1], 0, PS_TAG_PULL, 0, &m), 0);
    assert_int_equal(ps_codec_decode_pull(f->codec, &lim, 0, m.data, m.len, &f->pull), 0);
}

/* Sends (without waiting) the reply from rank `from` to the pull taken,
 * with request id + id_off, nsegs segments, segment 0 cut by `short_by`
 * values, stamped with stop clock `stop`, on tag `tag`. */
static void fake_send_reply(fake *f, int from, int tag, uint64_t id_off, size_t nsegs,
                            size_t short_by, int64_t stop)
{
    size_t off = 0;
    for (size_t i = 0; i < f->pull.nsegs; i++) {
        const ps_seg *g = &f->pull.segs[i];
        size_t n = g->nkeys * tables[g->table].width - (i == 0 ? short_by : 0);
        for (size_t k = 0; k < n; k++) {
            f->vals[off + k] = (float)(100 * g->table + off + k);
        }
        f->segs[i] =
            (ps_seg){.table = g->table, .values = f->payload ? NULL : f->vals + off, .nvalues = n};
        off += n;
    }
    ps_reply r = {.request_id = f->pull.request_id + id_off,
                  .version = 0,
                  .stop_clock = stop,
                  .chunk = f->chunk,
                  .nsegs = nsegs,
                  .segs = f->segs};
    assert_int_equal(ps_codec_encode_reply(f->codec, &r, &f->buf), 0);
    assert_int_equal(ps_comm_send(f->c[from], 0, tag, &f->buf), 0);
    for (size_t i = 0, at = 0; f->payload && i < nsegs; at += f->segs[i++].nvalues) {
        size_t n = f->segs[i].nvalues, chunk = i == 0 && f->cut == 1 ? 0 : f->chunk;
        size_t np = ps_payload_npieces(n, chunk) - (i == nsegs - 1 && f->cut == 2);
        for (size_t k = 0; k < np; k++) {
            assert_int_equal(ps_comm_send_ref(f->c[from], 0, PS_TAG_DATA(tag),
                                              f->vals + at + k * chunk,
                                              ps_payload_piece(n, chunk, k) * sizeof(float)),
                             0);
        }
    }
}

static int fake_wait(fake *f)
{
    float *params[NT] = {f->params_w, f->params_b};
    return ps_client_pull_wait(f->cl, f->plan, params);
}

/* The reply, then the client's wait for it. */
static int fake_reply(fake *f, int from, uint64_t id_off, size_t nsegs, size_t short_by)
{
    fake_send_reply(f, from, PS_TAG_REPLY, id_off, nsegs, short_by, 0);
    return fake_wait(f);
}

/* A control message from rank `from` to the client (rank 0). */
static void fake_ctrl(fake *f, int from, ps_ctrl_kind kind, int64_t clock, uint64_t value,
                      const char *text)
{
    ps_ctrl m = {.kind = kind, .worker = 0, .clock = clock, .value = value, .text = text};
    assert_int_equal(ps_codec_encode_ctrl(f->codec, &m, &f->buf), 0);
    assert_int_equal(ps_comm_send(f->c[from], 0, PS_TAG_CTRL, &f->buf), 0);
}

/* The control message the client sent the fake server: its kind. */
static int fake_got_ctrl(fake *f)
{
    ps_comm_msg m;
    ps_ctrl r;
    assert_int_equal(ps_comm_recv(f->c[1], 0, PS_TAG_CTRL, 0, &m), 0);
    assert_int_equal(ps_codec_decode_ctrl(f->codec, NULL, 0, m.data, m.len, &r), 0);
    return r.kind;
}

/* A reply on the wrong tag is not waited past: it is an error naming the
 * sender and the tag, and so is any message no wait of a worker expects. */
static void test_client_wrong_tag_or_unexpected_message_is_an_error_naming_the_sender(void **state)
{
    (void)state;
    fake f;
    fake_open(&f);
    fake_pull(&f);
    fake_send_reply(&f, 1, PS_TAG_PUSH, 0, NT, 0, 0);
    PS_TEST_EXPECT_LOG(fake_wait(&f), PS_EMSG,
                       "unexpected message with tag 1 (push) from rank 1 while waiting for pull "
                       "replies from the servers");
    fake_pull(&f);
    fake_send_reply(&f, 1, 7, 0, NT, 0, 0);
    PS_TEST_EXPECT_LOG(fake_wait(&f), PS_EMSG,
                       "unexpected message with tag 7 (unknown tag) from rank 1");
    fake_pull(&f);
    fake_ctrl(&f, 1, PS_CTRL_CHECKPOINT_DONE, 3, 0, "");
    PS_TEST_EXPECT_LOG(fake_wait(&f), PS_EMSG,
                       "unexpected control message of kind 3 from rank 1 while waiting for pull "
                       "replies");
    /* Between clocks, too. */
    fake_ctrl(&f, 1, PS_CTRL_CHECKPOINT_DONE, 3, 0, "");
    PS_TEST_EXPECT_LOG(ps_client_poll(f.cl), PS_EMSG, "unexpected control message of kind 3");
    fake_close(&f);
}

/* A stamped reply sets the stop clock; a stop request from another rank
 * reaches the coordinator in a wait or between clocks; its own
 * announcement goes to every server. */
static void test_client_learns_of_stops_from_replies_and_requests(void **state)
{
    (void)state;
    fake f;
    fake_open(&f);
    assert_int_equal(ps_client_stop_clock(f.cl), 0);
    fake_pull(&f);
    fake_ctrl(&f, 2, PS_CTRL_STOP_REQUEST, 0, 0, ""); /* rank 2 got the signal */
    fake_send_reply(&f, 1, PS_TAG_REPLY, 0, NT, 0, 12);
    assert_int_equal(fake_wait(&f), 0);
    assert_int_equal(ps_client_stop_clock(f.cl), 12);
    assert_true(ps_client_stop_requested(f.cl));
    fake_ctrl(&f, 2, PS_CTRL_STOP_REQUEST, 0, 0, "");
    assert_int_equal(ps_client_poll(f.cl), 0);
    assert_int_equal(ps_client_poll(f.cl), 0);         /* nothing waiting: no wait */
    assert_int_equal(ps_client_request_stop(f.cl), 0); /* to the coordinator: itself here */
    ps_comm_msg m;
    assert_int_equal(ps_comm_recv(f.c[0], 0, PS_TAG_CTRL, 0, &m), 0);
    assert_int_equal(ps_client_stop(f.cl, 20), 0);
    assert_int_equal(fake_got_ctrl(&f), PS_CTRL_STOP);
    assert_int_equal(ps_client_stop_clock(f.cl), 20);
    fake_close(&f);
}

/* A checkpoint's wait keeps the reply of the pull in flight for the pull's
 * own wait, with its values inline and then as payloads (hold takes those
 * off the comm with the header, ps_payload_recv), and a shard the server
 * could not write is PS_EIO naming it. */
static void test_client_checkpoint_keeps_replies_and_reports_failed_writes(void **state)
{
    (void)state;
    fake f;
    fake_open(&f);
    for (int pay = 0; pay < 3; pay++) {
        f.payload = pay > 0;
        f.chunk = pay == 2 ? 4 : 0; /* pieces that cut rows */
        fake_pull(&f);
        fake_send_reply(&f, 1, PS_TAG_REPLY, 0, NT, 0, 0);
        fake_ctrl(&f, 1, PS_CTRL_CHECKPOINT_DONE, 1 + pay, 0, "");
        assert_int_equal(ps_client_checkpoint(f.cl, 1 + pay), 0);
        assert_int_equal(fake_got_ctrl(&f), PS_CTRL_CHECKPOINT);
        memset(f.params_w, 0, sizeof f.params_w);
        memset(f.params_b, 0, sizeof f.params_b);
        assert_int_equal(fake_wait(&f), 0); /* the reply held back */
        for (size_t i = 0; i < NKW * 3; i++) {
            assert_true(f.params_w[i] == (float)i);
        }
        for (size_t i = 0; i < 2; i++) {
            assert_true(f.params_b[i] == (float)(100 + NKW * 3 + i));
        }
    }
    fake_ctrl(&f, 1, PS_CTRL_CHECKPOINT_DONE, 4, 1, "input/output error");
    PS_TEST_EXPECT_LOG(ps_client_checkpoint(f.cl, 4), PS_EIO,
                       "server 0 (rank 1) could not write its shard of checkpoint 4: "
                       "input/output error");
    fake_close(&f);
}

/* A reply in pieces lands in key order; a piece of the wrong size is
 * PS_EMSG naming the server's rank, and a piece that never comes is
 * PS_ETIMEDOUT naming it once the peer deadline passes, never a hang. */
static void test_client_rejects_a_wrong_or_missing_piece(void **state)
{
    (void)state;
    fake f;
    fake_open(&f);
    f.payload = 1;
    f.chunk = 6; /* two rows of w */
    fake_pull(&f);
    assert_int_equal(fake_reply(&f, 1, 0, NT, 0), 0);
    for (size_t i = 0; i < NKW * 3; i++) {
        assert_true(f.params_w[i] == (float)i);
    }
    assert_true(f.params_b[1] == (float)(100 + NKW * 3 + 1));
    f.cut = 1;
    fake_pull(&f);
    PS_TEST_EXPECT_LOG(fake_reply(&f, 1, 0, NT, 0), PS_EMSG,
                       "rank 1 sent a payload of 108 bytes on tag 13 where its header announced "
                       "24");
    fake_close(&f);
    fake_open(&f);
    f.payload = 1;
    f.chunk = 1; /* b's 2 floats in 2 pieces: the first comes, the second not */
    f.cut = 2;
    const int peer = 1;
    assert_int_equal(ps_comm_set_peers(f.c[0], &peer, 1), 0);
    ps_comm_set_timeout(f.c[0], 0.3);
    fake_pull(&f);
    PS_TEST_EXPECT_LOG(fake_reply(&f, 1, 0, NT, 0), PS_ETIMEDOUT,
                       "rank 1 has sent nothing, not even a heartbeat");
    assert_int_equal(ps_comm_silent_rank(f.c[0]), 1);
    fake_close(&f);
}

static void test_client_rejects_replies_that_do_not_answer_the_pull(void **state)
{
    (void)state;
    fake f;
    fake_open(&f);
    /* A right reply first: values land in key order. */
    fake_pull(&f);
    assert_int_equal(f.pull.nsegs, NT);
    assert_int_equal(fake_reply(&f, 1, 0, NT, 0), 0);
    for (size_t i = 0; i < NKW * 3; i++) {
        assert_true(f.params_w[i] == (float)i);
    }
    assert_true(f.params_b[1] == (float)(100 + NKW * 3 + 1));
    fake_pull(&f);
    PS_TEST_EXPECT_LOG(
        fake_reply(&f, 1, 1, NT, 0), PS_EMSG,
        "reply from server rank 1 answers request 3 with 2 segments; expected request 2");
    fake_pull(&f);
    PS_TEST_EXPECT_LOG(
        fake_reply(&f, 1, 0, 1, 0), PS_EMSG,
        "reply from server rank 1 answers request 3 with 1 segments; expected request 3 "
        "with 2");
    fake_pull(&f);
    PS_TEST_EXPECT_LOG(
        fake_reply(&f, 1, 0, NT, 3), PS_EMSG,
        "reply from server rank 1: segment 0 has table 0 with 24 values; expected table "
        "0 with 27");
    fake_pull(&f);
    PS_TEST_EXPECT_LOG(fake_reply(&f, 2, 0, NT, 0), PS_EMSG,
                       "pull reply from rank 2, which is not a server");
    fake_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_pull_push_pull_over_range_and_hash_shards,
                                        ps_test_setup_mt, ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_client_checkpoint_reaches_every_server,
                                        ps_test_setup_mt, ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_client_takes_replies_in_pieces_of_one_or_two_rows,
                                        ps_test_setup_mt, ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_client_rejects_a_wrong_or_missing_piece, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_client_rejects_replies_that_do_not_answer_the_pull,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(
            test_client_wrong_tag_or_unexpected_message_is_an_error_naming_the_sender,
            ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_client_learns_of_stops_from_replies_and_requests,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(
            test_client_checkpoint_keeps_replies_and_reports_failed_writes, ps_test_setup,
            ps_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
