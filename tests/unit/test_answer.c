/* Tests for server/answer on the loop comm backend, in one thread: the
 * server's comm (rank 0) sends, the worker's (rank 1) mailbox is read back
 * without waiting. They check how payloads are cut into pieces, that a
 * reply's pieces (cutting rows, over gapless and scattered rows, from w or
 * the temporal average) hold what ps_store_read gives, that a push applied
 * in parts is ps_store_apply_push bit for bit and the reply streamed with
 * it holds the stepped rows even when the pull comes late or asks for
 * rows in another table order, that a held pull of the pusher's decides
 * (streamed when the step answers it, nothing streamed when it does not),
 * and that held pulls are answered in arrival order once their version
 * exists. */
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
#include "server/answer.h"
#include "server/store.h"
#include "tests/unit/ps_test.h"

#define NT 2
#define ROWS 10

static const ps_table_desc tables[NT] = {
    {"w", ROWS, 3, PS_INIT_GLOROT, 0.5f},
    {"b", 4, 2, PS_INIT_NORMAL, 0.1f},
};
static const ps_msg_table lt[NT] = {{3, ROWS}, {2, 4}};
static const ps_msg_limits lim = {.tables = lt, .ntables = NT, .nworkers = 1};

typedef struct {
    ps_comm *c[2];
    ps_store *st;
    ps_codec *codec, *rcodec;
    ps_answer a;
    ps_store_cfg cfg;
} fx;

static void fx_open(fx *f, size_t chunk, float avg_beta)
{
    memset(f, 0, sizeof *f);
    f->cfg = (ps_store_cfg){.tables = tables,
                            .ntables = NT,
                            .nservers = 1,
                            .shard = PS_SHARD_RANGE,
                            .lazy = 1,
                            .avg_beta = avg_beta,
                            .seed = 9};
    ps_opt_defaults(&f->cfg.hp, PS_OPT_ADAM);
    assert_int_equal(ps_comm_loop_create(f->c, 2), 0);
    assert_int_equal(ps_store_create(&f->st, &f->cfg), 0);
    assert_int_equal(ps_codec_create(&f->codec), 0);
    assert_int_equal(ps_codec_create(&f->rcodec), 0);
    assert_int_equal(ps_answer_init(&f->a, f->c[0], f->codec, f->st, chunk), 0);
}

static void fx_close(fx *f)
{
    ps_answer_fini(&f->a);
    ps_codec_destroy(&f->codec);
    ps_codec_destroy(&f->rcodec);
    ps_store_destroy(&f->st);
    ps_comm_destroy(&f->c[0]);
    ps_comm_destroy(&f->c[1]);
}

/* Receives the next reply at the worker and checks it answers pull p
 * with version, in pieces of the answer's chunk, each of the size
 * ps_payload_piece says, holding what `from` reads for p's rows now. */
static void expect_reply(fx *f, const ps_pull *p, int64_t version, ps_store *from)
{
    ps_comm_msg m;
    ps_reply r;
    assert_int_equal(ps_comm_recv(f->c[1], 0, PS_TAG_REPLY, 0, &m), 0);
    assert_int_equal(ps_codec_decode_reply(f->rcodec, &lim, 0, m.data, m.len, &r), 0);
    assert_int_equal(r.request_id, p->request_id);
    assert_int_equal(r.version, version);
    assert_int_equal(r.chunk, f->a.chunk);
    assert_int_equal(r.nsegs, p->nsegs);
    for (size_t i = 0; i < p->nsegs; i++) {
        const ps_seg *g = &p->segs[i];
        size_t n = g->nkeys * lt[g->table].width;
        float want[ROWS * 3], got[ROWS * 3];
        assert_int_equal(r.segs[i].nvalues, n);
        ps_store_read(from, g->table, g->slots, g->nkeys, p->averaged, want);
        for (size_t k = 0, at = 0; k < ps_payload_npieces(n, r.chunk); k++) {
            size_t len = ps_payload_piece(n, r.chunk, k);
            assert_int_equal(ps_comm_recv_into(f->c[1], 0, PS_TAG_DATA(PS_TAG_REPLY), got + at,
                                               len * sizeof(float), "piece"),
                             0);
            at += len;
        }
        assert_memory_equal(got, want, n * sizeof(float));
    }
}

static void expect_nothing(fx *f)
{
    ps_comm_msg m;
    assert_int_equal(ps_comm_recv(f->c[1], PS_ANY, PS_ANY, 0, &m), PS_EEOF);
}

static void test_answer_cuts_payloads_into_pieces(void **state)
{
    (void)state;
    assert_int_equal(ps_payload_npieces(9, 4), 3);
    assert_int_equal(ps_payload_piece(9, 4, 0), 4);
    assert_int_equal(ps_payload_piece(9, 4, 2), 1);
    assert_int_equal(ps_payload_npieces(8, 4), 2);
    assert_int_equal(ps_payload_piece(8, 4, 1), 4);
    assert_int_equal(ps_payload_npieces(9, 0), 1); /* chunk 0: whole */
    assert_int_equal(ps_payload_piece(9, 0, 0), 9);
    assert_int_equal(ps_payload_npieces(0, 4), 0);
    assert_int_equal(ps_payload_npieces(3, 100), 1);
    assert_int_equal(ps_payload_piece(3, 100, 0), 3);
}

/* Gapless and scattered rows, w and the temporal average, pieces that cut
 * rows (4 floats of width-3 rows) or hold several (7 of width 2). */
static void test_answer_sends_replies_in_pieces_that_cut_rows(void **state)
{
    (void)state;
    static const uint64_t run[5] = {2, 3, 4, 5, 6}, gaps[4] = {0, 3, 8, 9}, bs[3] = {0, 2, 3};
    for (int avg = 0; avg < 2; avg++) {
        for (size_t chunk = 1; chunk <= 7; chunk += 3) {
            fx f;
            fx_open(&f, chunk, avg ? 0.5f : 0.0f);
            /* Steps, so the average differs from w. */
            float g[ROWS * 3];
            for (size_t k = 0; k < ROWS * 3; k++) {
                g[k] = (float)k * 0.1f - 1.0f;
            }
            static const uint64_t all[ROWS] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
            ps_seg ps = {.table = 0, .nkeys = ROWS, .slots = all, .values = g, .nvalues = 30};
            ps_push push = {.nsegs = 1, .segs = &ps, .samples = 1};
            assert_int_equal(ps_store_apply_push(f.st, &push, 1), 0);
            ps.nkeys = 3;
            ps.slots = gaps;
            ps.nvalues = 9;
            assert_int_equal(ps_store_apply_push(f.st, &push, 2), 0);
            const uint64_t *rows[2] = {run, gaps};
            size_t nrows[2] = {5, 4};
            for (int s = 0; s < 2; s++) {
                ps_seg segs[NT] = {{.table = 1, .nkeys = 3, .slots = bs},
                                   {.table = 0, .nkeys = nrows[s], .slots = rows[s]}};
                ps_pull p = {
                    .request_id = 40 + (uint64_t)s, .averaged = avg, .nsegs = NT, .segs = segs};
                assert_int_equal(ps_answer_send(&f.a, &p, 1, 2, 0), 0);
                expect_reply(&f, &p, 2, f.st);
            }
            expect_nothing(&f);
            fx_close(&f);
        }
    }
}

/* The push of make_push: every row of b, then rows `rows` of w (table
 * order reversed, so the frontier crosses tables), values that differ
 * per row. nan_at >= 0 makes that value of w NaN. */
typedef struct {
    ps_seg segs[NT];
    float vw[ROWS * 3], vb[4 * 2];
    ps_push push;
} push_buf;

static const uint64_t all_w[ROWS] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, all_b[4] = {0, 1, 2, 3};

static void make_push(push_buf *b, const uint64_t *rows, size_t n)
{
    for (size_t k = 0; k < ROWS * 3; k++) {
        b->vw[k] = (float)(k % 7) * 0.25f - 0.8f;
    }
    for (size_t k = 0; k < 8; k++) {
        b->vb[k] = 0.5f - (float)k * 0.125f;
    }
    b->segs[0] = (ps_seg){.table = 1, .nkeys = 4, .slots = all_b, .values = b->vb, .nvalues = 8};
    b->segs[1] = (ps_seg){.table = 0, .nkeys = n, .slots = rows, .values = b->vw, .nvalues = n * 3};
    b->push = (ps_push){.clock = 0, .worker = 0, .samples = 1, .nsegs = NT, .segs = b->segs};
}

/* A find that gives its pull on call number `at` (1-based). */
typedef struct {
    const ps_pull *pull;
    int at, calls;
} finder;

static int find_at(void *arg, const ps_pull **pull)
{
    finder *fd = arg;
    if (++fd->calls == fd->at) {
        *pull = fd->pull;
    }
    return 0;
}

/* Every push shape, every moment the pull comes, every piece size: the
 * store is ps_store_apply_push's bit for bit and the reply has the rows
 * as they are after the whole step. */
static void test_answer_streams_the_reply_of_a_step_applied_in_parts(void **state)
{
    (void)state;
    static const uint64_t gappy[5] = {0, 2, 3, 7, 9};
    static const uint64_t pw[6] = {1, 2, 3, 4, 8, 9}, pb[2] = {1, 3};
    const uint64_t *prows[2] = {all_w, gappy};
    size_t pn[2] = {ROWS, 5};
    for (int shape = 0; shape < 2; shape++) {
        for (size_t chunk = 2; chunk <= 8; chunk += 3) {
            for (int at = 1; at <= 4; at++) {
                fx f;
                fx_open(&f, chunk, 0.0f);
                ps_store *want = NULL;
                assert_int_equal(ps_store_create(&want, &f.cfg), 0);
                push_buf b;
                make_push(&b, prows[shape], pn[shape]);
                assert_int_equal(ps_store_apply_push(want, &b.push, 1), 0);
                ps_seg segs[NT] = {{.table = 0, .nkeys = 6, .slots = pw},
                                   {.table = 1, .nkeys = 2, .slots = pb}};
                ps_pull p = {.request_id = 3, .min_version = 1, .nsegs = NT, .segs = segs};
                finder fd = {.pull = &p, .at = at};
                ps_answer_step st = {.src = 1, .version = 1, .find = find_at, .arg = &fd};
                int answered = 0;
                assert_int_equal(ps_answer_apply_push(&f.a, &b.push, 1, &st, &answered), 0);
                int found = fd.calls >= at;
                assert_int_equal(answered, found);
                assert_true(fd.calls <= at); /* not asked again once given */
                assert_int_equal(ps_store_step(f.st), 1);
                ps_store_arrays x, y;
                for (uint32_t t = 0; t < NT; t++) {
                    ps_store_arrays_get(f.st, t, &x);
                    ps_store_arrays_get(want, t, &y);
                    size_t bytes = (size_t)x.nslots * x.width * sizeof(float);
                    assert_memory_equal(x.w, y.w, bytes);
                    assert_memory_equal(x.state[0], y.state[0], bytes);
                    assert_memory_equal(x.state[1], y.state[1], bytes);
                }
                if (found) {
                    expect_reply(&f, &p, 1, want);
                }
                expect_nothing(&f);
                ps_store_destroy(&want);
                fx_close(&f);
            }
        }
    }
}

/* The pusher's held pull comes first: streamed when the step answers it,
 * and dropped from the held ones; when it asks for a later version nothing
 * is streamed and find is not asked (replies go in pull order). */
static void test_answer_streams_a_held_pull_only_when_the_step_answers_it(void **state)
{
    (void)state;
    static const uint64_t pw[2] = {4, 5}, pb[1] = {2};
    ps_seg segs[NT] = {{.table = 0, .nkeys = 2, .slots = pw},
                       {.table = 1, .nkeys = 1, .slots = pb}};
    ps_pull p = {.request_id = 11, .min_version = 1, .nsegs = NT, .segs = segs};
    fx f;
    fx_open(&f, 2, 0.0f);
    push_buf b;
    make_push(&b, all_w, ROWS);
    ps_pull other = p;
    other.request_id = 99;
    finder fd = {.pull = &other, .at = 1};
    assert_int_equal(ps_answer_hold(&f.a, &p, 1), 0);
    assert_int_equal(ps_answer_nheld(&f.a), 1);
    ps_answer_step st = {.src = 1, .version = 1, .find = find_at, .arg = &fd};
    int answered = 0;
    assert_int_equal(ps_answer_apply_push(&f.a, &b.push, 1, &st, &answered), 0);
    assert_int_equal(answered, 1);
    assert_int_equal(fd.calls, 0);
    assert_int_equal(ps_answer_nheld(&f.a), 0);
    expect_reply(&f, &p, 1, f.st);
    expect_nothing(&f);
    /* Held for version 3: the step to version 2 streams nothing. */
    p.min_version = 3;
    assert_int_equal(ps_answer_hold(&f.a, &p, 1), 0);
    st.version = 2;
    assert_int_equal(ps_answer_apply_push(&f.a, &b.push, 2, &st, &answered), 0);
    assert_int_equal(answered, 0);
    assert_int_equal(fd.calls, 0);
    assert_int_equal(ps_answer_nheld(&f.a), 1);
    expect_nothing(&f);
    /* A pull find gives for a later version is held, not streamed. */
    fx_close(&f);
    fx_open(&f, 2, 0.0f);
    other.min_version = 5;
    fd = (finder){.pull = &other, .at = 1};
    assert_int_equal(ps_answer_apply_push(&f.a, &b.push, 1, &st, &answered), 0);
    assert_int_equal(answered, 0);
    assert_int_equal(fd.calls, 1);
    assert_int_equal(ps_answer_nheld(&f.a), 1);
    expect_nothing(&f);
    assert_int_equal(ps_answer_waiting(&f.a, 5, 0), 0);
    expect_reply(&f, &other, 5, f.st);
    fx_close(&f);
}

/* Held pulls are answered once their version exists, in arrival order;
 * the others keep waiting in theirs. */
static void test_answer_answers_held_pulls_in_arrival_order(void **state)
{
    (void)state;
    static const uint64_t pw[1] = {7};
    ps_seg seg = {.table = 0, .nkeys = 1, .slots = pw};
    ps_pull p[4];
    const int64_t mv[4] = {2, 1, 3, 1};
    fx f;
    fx_open(&f, 0, 0.0f);
    for (int i = 0; i < 4; i++) {
        p[i] = (ps_pull){.request_id = (uint64_t)i, .min_version = mv[i], .nsegs = 1, .segs = &seg};
        assert_int_equal(ps_answer_hold(&f.a, &p[i], 1), 0);
    }
    assert_int_equal(ps_answer_waiting(&f.a, 0, 0), 0);
    expect_nothing(&f);
    assert_int_equal(ps_answer_waiting(&f.a, 2, 0), 0);
    expect_reply(&f, &p[0], 2, f.st);
    expect_reply(&f, &p[1], 2, f.st);
    expect_reply(&f, &p[3], 2, f.st);
    expect_nothing(&f);
    assert_int_equal(ps_answer_nheld(&f.a), 1);
    assert_int_equal(ps_answer_waiting(&f.a, 3, 0), 0);
    expect_reply(&f, &p[2], 3, f.st);
    assert_int_equal(ps_answer_nheld(&f.a), 0);
    fx_close(&f);
}

/* Every allocation of init failing in turn leaves nothing behind. */
static void test_answer_init_survives_oom(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, 0, 0.0f);
    assert_int_equal(f.a.chunk, PS_ANSWER_CHUNK_DEFAULT);
    for (long n = 0;; n++) {
        ps_answer a;
        ps_test_fail_alloc(n);
        int rc = ps_answer_init(&a, f.c[0], f.codec, f.st, 5);
        ps_test_fail_alloc(-1);
        ps_answer_fini(&a);
        if (rc == 0) {
            assert_true(n > 0);
            break;
        }
        assert_int_equal(rc, PS_ENOMEM);
    }
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answer_cuts_payloads_into_pieces, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_answer_sends_replies_in_pieces_that_cut_rows,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_answer_streams_the_reply_of_a_step_applied_in_parts,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(
            test_answer_streams_a_held_pull_only_when_the_step_answers_it, ps_test_setup,
            ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_answer_answers_held_pulls_in_arrival_order,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_answer_init_survives_oom, ps_test_setup,
                                        ps_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
