/* Tests for common/comm on the loop backend (no mpirun): matching by
 * source and tag, each sender's order under any-source receives, the
 * buffer exchange of send (zero copy, nothing allocated once warm), the
 * byte counters, every collective and split across threads, a failed rank
 * unblocking the others, mismatched collectives, out-of-memory paths,
 * per-thread log ranks, and liveness: a wait (receive or collective) on a
 * silent peer gives up within the timeout naming it, a peer busy for
 * longer with heartbeats (ps_comm_alive) does not trip it, heartbeats
 * never reach callers, and ranks that are not peers are not judged. Rank threads record what they
 * saw; the main thread asserts after the join (see ps_test_loop.h). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/comm.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/stats.h"
#include "tests/unit/ps_test.h"
#include "tests/unit/ps_test_loop.h"

static void nap_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Sends len bytes of data; the caller's buffer comes back empty and pooled. */
static int send_bytes(ps_comm *c, int dst, int tag, const void *data, size_t len)
{
    ps_bytes b = {0};
    int rc = ps_grow((void **)&b.data, &b.cap, len ? len : 1, 1);
    if (rc == 0) {
        memcpy(b.data, data, len);
        b.len = len;
        rc = ps_comm_send(c, dst, tag, &b);
    }
    ps_free(b.data);
    return rc;
}

static void send_text(ps_comm *c, int dst, int tag, const char *text)
{
    assert_int_equal(send_bytes(c, dst, tag, text, strlen(text)), 0);
}

static void expect_text(ps_comm *c, int src, int tag, int want_src, int want_tag, const char *text)
{
    ps_comm_msg m;
    assert_int_equal(ps_comm_recv(c, src, tag, 0, &m), 0);
    assert_int_equal(m.src, want_src);
    assert_int_equal(m.tag, want_tag);
    assert_int_equal(m.len, strlen(text));
    assert_memory_equal(m.data, text, m.len);
}

static void destroy_all(ps_comm **comms, int n)
{
    for (int i = 0; i < n; i++) {
        ps_comm_destroy(&comms[i]);
        assert_null(comms[i]);
    }
}

static void test_loop_create_rejects_no_ranks_and_survives_oom(void **state)
{
    (void)state;
    ps_comm *comms[3];
    PS_TEST_EXPECT_LOG(ps_comm_loop_create(comms, 0), PS_EINVAL, "loop comm: 0 ranks");
    long fail = 0;
    int rc;
    for (;; fail++) {
        ps_test_fail_alloc(fail);
        rc = ps_comm_loop_create(comms, 3);
        ps_test_fail_alloc(-1);
        if (rc == 0) {
            break;
        }
        assert_int_equal(rc, PS_ENOMEM);
        for (int i = 0; i < 3; i++) {
            assert_null(comms[i]);
        }
    }
    assert_true(fail > 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ps_comm_rank(comms[i]), i);
        assert_int_equal(ps_comm_size(comms[i]), 3);
    }
    destroy_all(comms, 3);
}

static void test_loop_matches_source_and_tag(void **state)
{
    (void)state;
    ps_comm *c[3];
    assert_int_equal(ps_comm_loop_create(c, 3), 0);
    send_text(c[0], 2, PS_TAG_PULL, "a");
    send_text(c[1], 2, PS_TAG_PUSH, "b");
    send_text(c[0], 2, PS_TAG_PUSH, "c");
    send_text(c[1], 2, PS_TAG_CTRL, "d");
    /* Each pick is the earliest message that matches, skipping others. */
    expect_text(c[2], 1, PS_ANY, 1, PS_TAG_PUSH, "b");
    expect_text(c[2], PS_ANY, PS_TAG_PUSH, 0, PS_TAG_PUSH, "c");
    expect_text(c[2], 1, PS_TAG_CTRL, 1, PS_TAG_CTRL, "d");
    ps_comm_msg m;
    assert_int_equal(ps_comm_recv(c[2], 1, PS_ANY, 0, &m), PS_EEOF);
    assert_int_equal(ps_comm_recv(c[2], PS_ANY, PS_TAG_REPLY, 0, &m), PS_EEOF);
    expect_text(c[2], PS_ANY, PS_ANY, 0, PS_TAG_PULL, "a");
    assert_int_equal(ps_comm_recv(c[2], PS_ANY, PS_ANY, 0, &m), PS_EEOF);
    /* Nothing went to the senders themselves. */
    assert_int_equal(ps_comm_recv(c[0], PS_ANY, PS_ANY, 0, &m), PS_EEOF);
    destroy_all(c, 3);
}

static void test_loop_keeps_each_senders_order(void **state)
{
    (void)state;
    enum { N = 40 };
    ps_comm *c[3];
    assert_int_equal(ps_comm_loop_create(c, 3), 0);
    for (int i = 0; i < N; i++) {
        for (int s = 0; s < 2; s++) {
            int v = s * 1000 + i;
            assert_int_equal(send_bytes(c[s], 2, i % 2 ? PS_TAG_PULL : PS_TAG_PUSH, &v, sizeof v),
                             0);
        }
    }
    /* Sender 1's pulls first, in the order sent ... */
    ps_comm_msg m;
    for (int i = 1; i < N; i += 2) {
        assert_int_equal(ps_comm_recv(c[2], 1, PS_TAG_PULL, 0, &m), 0);
        int v;
        memcpy(&v, m.data, sizeof v);
        assert_int_equal(v, 1000 + i);
    }
    /* ... then any source, any tag: each sender's rest still in order. */
    int next[2] = {0, 0}, got = 0;
    while (ps_comm_recv(c[2], PS_ANY, PS_ANY, 0, &m) == 0) {
        int v;
        memcpy(&v, m.data, sizeof v);
        assert_int_equal(v / 1000, m.src);
        if (m.src == 1) {
            assert_int_equal(m.tag, PS_TAG_PUSH);
        }
        assert_true(v % 1000 >= next[m.src]);
        next[m.src] = v % 1000 + (m.src == 1 ? 2 : 1);
        got++;
    }
    assert_int_equal(got, N + N / 2);
    destroy_all(c, 3);
}

static void test_loop_send_swaps_buffers_and_counts_bytes(void **state)
{
    (void)state;
    ps_comm *c[2];
    assert_int_equal(ps_comm_loop_create(c, 2), 0);
    ps_bytes b = {0};
    assert_int_equal(ps_grow((void **)&b.data, &b.cap, 100, 1), 0);
    memset(b.data, 7, 100);
    b.len = 100;
    const uint8_t *sent = b.data;
    assert_int_equal(ps_comm_send(c[0], 1, PS_TAG_PUSH, &b), 0);
    /* The caller gets another (here: empty) buffer; the message keeps its own. */
    assert_int_equal(b.len, 0);
    assert_true(b.data != sent);
    ps_comm_msg m;
    assert_int_equal(ps_comm_recv(c[1], 0, PS_TAG_PUSH, 0, &m), 0);
    assert_ptr_equal(m.data, sent); /* no copy */
    assert_int_equal(m.len, 100);
    /* Ping-pong: once warm, buffers only change hands. */
    uint64_t bytes = 100;
    long allocs[2] = {0, 0};
    for (int phase = 0; phase < 2; phase++) {
        if (phase == 1) {
            ps_test_fail_alloc(LONG_MAX); /* count only */
        }
        for (int i = 0; i < 20; i++) {
            size_t len = 50 + (size_t)i;
            for (int s = 0; s < 2; s++) {
                assert_int_equal(ps_grow((void **)&b.data, &b.cap, 200, 1), 0);
                memset(b.data, i, len);
                b.len = len;
                assert_int_equal(ps_comm_send(c[s], 1 - s, PS_TAG_REPLY, &b), 0);
                assert_int_equal(ps_comm_recv(c[1 - s], s, PS_TAG_REPLY, 1, &m), 0);
                assert_int_equal(m.len, len);
                assert_int_equal(m.data[len - 1], (uint8_t)i);
                bytes += len;
            }
        }
        allocs[phase] = ps_test_nalloc;
        ps_test_fail_alloc(-1);
    }
    assert_int_equal(allocs[1], 0);
    uint64_t s0, r0, s1, r1;
    ps_comm_bytes(c[0], &s0, &r0);
    ps_comm_bytes(c[1], &s1, &r1);
    assert_int_equal(s0 + s1, bytes);
    assert_int_equal(r0 + r1, bytes);
    assert_int_equal(s0, r1);
    assert_int_equal(r0, s1);
    ps_free(b.data);
    destroy_all(c, 2);
}

/* A payload goes from the sender's memory (copied at once on loop, so the
 * sender may reuse it after flush) straight into the receiver's buffer,
 * counted under its header's tag as bytes but not as a message; one of
 * the wrong length is PS_EMSG naming its sender, and the next still
 * arrives. */
static void test_loop_payloads_land_in_place_and_count_under_their_header(void **state)
{
    (void)state;
    ps_comm *c[2];
    assert_int_equal(ps_comm_loop_create(c, 2), 0);
    float vals[5] = {1, 2, 3, 4, 5}, got[5] = {0};
    send_text(c[0], 1, PS_TAG_PUSH, "hdr");
    assert_int_equal(ps_comm_send_ref(c[0], 1, PS_TAG_DATA(PS_TAG_PUSH), vals, sizeof vals), 0);
    assert_int_equal(ps_comm_flush(c[0], "test"), 0);
    vals[0] = 99; /* the sender's again */
    assert_int_equal(ps_comm_send_ref(c[0], 1, PS_TAG_DATA(PS_TAG_PUSH), vals, 3 * sizeof(float)),
                     0);
    assert_int_equal(ps_comm_send_ref(c[0], 1, PS_TAG_DATA(PS_TAG_PUSH), vals, 2 * sizeof(float)),
                     0);
    expect_text(c[1], PS_ANY, PS_ANY, 0, PS_TAG_PUSH, "hdr");
    assert_int_equal(ps_comm_recv_into(c[1], 0, PS_TAG_DATA(PS_TAG_PUSH), got, sizeof got, "vals"),
                     0);
    assert_true(got[0] == 1 && got[4] == 5);
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    assert_int_equal(ps_comm_recv_into(c[1], 0, PS_TAG_DATA(PS_TAG_PUSH), got, sizeof got, "vals"),
                     PS_EMSG);
    assert_int_equal(ps_comm_recv_into(c[1], PS_ANY, PS_TAG_DATA(PS_TAG_PUSH), got, 8, "vals"),
                     PS_EINVAL);
    char *log = ps_test_capture_end(&cap);
    assert_non_null(strstr(log, "rank 0 sent a payload of 12 bytes on tag 11 where its header "
                                "announced 20"));
    test_free(log);
    assert_int_equal(ps_comm_recv_into(c[1], 0, PS_TAG_DATA(PS_TAG_PUSH), got, 8, "vals"), 0);
    assert_true(got[0] == 99 && got[1] == 2);
    ps_stats_count out = ps_stats_sent(ps_comm_stats(c[0]), 1, PS_TAG_PUSH);
    ps_stats_count in = ps_stats_received(ps_comm_stats(c[1]), 0, PS_TAG_PUSH);
    assert_int_equal(out.bytes, 3 + sizeof vals + 5 * sizeof(float));
    assert_int_equal(out.msgs, 1);
    assert_int_equal(in.bytes, out.bytes);
    assert_int_equal(in.msgs, out.msgs);
    destroy_all(c, 2);
}

static void test_loop_checks_ranks_and_tags(void **state)
{
    (void)state;
    ps_comm *c[2];
    ps_comm_msg m;
    double secs;
    assert_int_equal(ps_comm_loop_create(c, 2), 0);
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    assert_int_equal(send_bytes(c[0], 2, PS_TAG_PUSH, "x", 1), PS_EINVAL);
    assert_int_equal(send_bytes(c[0], -1, PS_TAG_PUSH, "x", 1), PS_EINVAL);
    assert_int_equal(send_bytes(c[0], 1, -3, "x", 1), PS_EINVAL);
    assert_int_equal(ps_comm_recv(c[0], 5, PS_ANY, 0, &m), PS_EINVAL);
    assert_int_equal(ps_comm_recv(c[0], PS_ANY, -2, 0, &m), PS_EINVAL);
    assert_int_equal(ps_comm_allreduce_sum(c[0], NULL, -1), PS_EINVAL);
    assert_int_equal(ps_comm_raw_pingpong(c[0], 1, 1, 8, 8, 1, &secs), PS_EINVAL);
    char *log = ps_test_capture_end(&cap);
    assert_non_null(strstr(log, "rank 2 is outside this communicator of 2 ranks"));
    assert_non_null(strstr(log, "tag -3 is negative"));
    assert_non_null(strstr(log, "tag -2 is negative"));
    assert_non_null(strstr(log, "allreduce (sum) of -1 elements"));
    assert_non_null(strstr(log, "loop backend has no raw transport"));
    test_free(log);
    /* A zero-length message still arrives with a readable pointer. */
    assert_int_equal(send_bytes(c[0], 1, PS_TAG_CTRL, "", 0), 0);
    assert_int_equal(ps_comm_recv(c[1], 0, PS_TAG_CTRL, 0, &m), 0);
    assert_int_equal(m.len, 0);
    assert_non_null(m.data);
    assert_int_equal(ps_comm_progress(c[0]), 0);
    destroy_all(c, 2);
}

static void test_comm_time_advances(void **state)
{
    (void)state;
    double t0 = ps_comm_time();
    nap_ms(3);
    double t1 = ps_comm_time();
    assert_true(t1 - t0 >= 0.003);
    assert_true(t1 - t0 < 10.0);
}

/* ---- collectives (threads) ---------------------------------------------- */

enum { NCOLL = 4 };

typedef struct {
    int agree_err, agree_ok, barrier;
    uint8_t bcast[33];
    double sum[3];
    uint64_t max[2];
    int gather[NCOLL];
    int nodes[NCOLL], nnodes;
    int rc;
} coll_seen;

static void coll_inputs(int rank, double *sum, uint64_t *max)
{
    /* Magnitudes far apart: only a fixed order gives fixed bits. */
    sum[0] = rank == 1 ? 1e16 : 0.1 * (rank + 1);
    sum[1] = -0.5 * rank;
    sum[2] = rank == 3 ? -1e16 : 1.0 / 3.0;
    max[0] = (uint64_t)(rank * 7 % 5);
    max[1] = UINT64_MAX - (uint64_t)rank;
}

static int coll_rank(ps_comm *c, void *arg)
{
    coll_seen *s = arg;
    int r = ps_comm_rank(c);
    s->agree_err = ps_comm_agree(c, r == 2 ? PS_EIO : r == 3 ? PS_ECONFIG : 0);
    s->agree_ok = ps_comm_agree(c, 0);
    s->barrier = ps_comm_barrier(c);
    memset(s->bcast, r + 1, sizeof s->bcast);
    coll_inputs(r, s->sum, s->max);
    int rc = ps_comm_bcast(c, 2, s->bcast, sizeof s->bcast);
    if (rc || (rc = ps_comm_allreduce_sum(c, s->sum, 3)) ||
        (rc = ps_comm_allreduce_max_u64(c, s->max, 2)) ||
        (rc = ps_comm_allgather_int(c, r * r + 1, s->gather)) ||
        (rc = ps_comm_nodes(c, s->nodes, &s->nnodes))) {
        s->rc = rc;
    }
    return 0;
}

static void test_loop_collectives_agree_on_every_rank(void **state)
{
    (void)state;
    coll_seen seen[NCOLL];
    int rcs[NCOLL];
    memset(seen, 0xff, sizeof seen);
    for (int i = 0; i < NCOLL; i++) {
        seen[i].rc = 0;
    }
    ps_test_run_same(NCOLL, coll_rank, seen, sizeof *seen, rcs);
    double want_sum[3], in[3];
    uint64_t want_max[2] = {0, 0}, inm[2];
    coll_inputs(0, want_sum, want_max);
    for (int r = 1; r < NCOLL; r++) {
        coll_inputs(r, in, inm);
        for (int i = 0; i < 3; i++) {
            want_sum[i] += in[i];
        }
        for (int i = 0; i < 2; i++) {
            want_max[i] = inm[i] > want_max[i] ? inm[i] : want_max[i];
        }
    }
    uint8_t want_bcast[33];
    memset(want_bcast, 3, sizeof want_bcast);
    for (int r = 0; r < NCOLL; r++) {
        assert_int_equal(rcs[r], 0);
        assert_int_equal(seen[r].rc, 0);
        assert_true(PS_EIO < PS_ECONFIG);
        assert_int_equal(seen[r].agree_err, PS_EIO); /* the smallest */
        assert_int_equal(seen[r].agree_ok, 0);
        assert_int_equal(seen[r].barrier, 0);
        assert_memory_equal(seen[r].bcast, want_bcast, sizeof want_bcast);
        assert_memory_equal(seen[r].sum, want_sum, sizeof want_sum); /* bit for bit */
        assert_memory_equal(seen[r].max, want_max, sizeof want_max);
        for (int q = 0; q < NCOLL; q++) {
            assert_int_equal(seen[r].gather[q], q * q + 1);
            assert_int_equal(seen[r].nodes[q], 0);
        }
        assert_int_equal(seen[r].nnodes, 1);
    }
}

/* ---- split ---------------------------------------------------------------- */

enum { NSPLIT = 5 };

typedef struct {
    int rc, has_sub, sub_rank, sub_size;
    int members[NSPLIT];
    int parent_empty; /* a sub-comm message was not seen on the parent */
    int got_src;
    char got[8];
    int after;
} split_seen;

static int split_rank(ps_comm *c, void *arg)
{
    split_seen *s = arg;
    int r = ps_comm_rank(c);
    ps_comm *sub = NULL;
    int rc = ps_comm_split(c, r == 4 ? -1 : r % 2, &sub);
    s->has_sub = sub != NULL;
    if (rc == 0 && sub) {
        s->sub_rank = ps_comm_rank(sub);
        s->sub_size = ps_comm_size(sub);
        rc = ps_comm_allgather_int(sub, r, s->members);
        if (rc == 0 && s->sub_rank == 0) {
            rc = send_bytes(sub, 1, 5, "sub", 3);
        }
        if (rc == 0) {
            rc = ps_comm_barrier(sub);
        }
        ps_comm_msg m;
        if (rc == 0 && s->sub_rank == 1) {
            s->parent_empty = ps_comm_recv(c, PS_ANY, PS_ANY, 0, &m) == PS_EEOF;
            if ((rc = ps_comm_recv(sub, PS_ANY, 5, 1, &m)) == 0) {
                s->got_src = m.src;
                memcpy(s->got, m.data, m.len < 7 ? m.len : 7);
            }
        }
    }
    ps_comm_destroy(&sub);
    /* The parent still works after its children are gone. */
    s->after = ps_comm_agree(c, r == 4 ? PS_EIO : 0);
    s->rc = rc;
    return 0;
}

static void test_loop_split_groups_by_colour(void **state)
{
    (void)state;
    split_seen seen[NSPLIT];
    int rcs[NSPLIT];
    memset(seen, 0, sizeof seen);
    ps_test_run_same(NSPLIT, split_rank, seen, sizeof *seen, rcs);
    for (int r = 0; r < NSPLIT; r++) {
        assert_int_equal(rcs[r], 0);
        assert_int_equal(seen[r].rc, 0);
        assert_int_equal(seen[r].after, PS_EIO);
        if (r == 4) {
            assert_false(seen[r].has_sub); /* MPI_UNDEFINED */
            continue;
        }
        assert_true(seen[r].has_sub);
        /* Colour r % 2, ordered by parent rank: {0, 2} and {1, 3}. */
        assert_int_equal(seen[r].sub_size, 2);
        assert_int_equal(seen[r].sub_rank, r / 2);
        assert_int_equal(seen[r].members[0], r % 2);
        assert_int_equal(seen[r].members[1], r % 2 + 2);
        if (seen[r].sub_rank == 1) {
            assert_true(seen[r].parent_empty);
            assert_int_equal(seen[r].got_src, 0);
            assert_string_equal(seen[r].got, "sub");
        }
    }
}

enum { NOOM = 3 };

typedef struct {
    long fails; /* split attempts that ran out of memory */
    int rcs[64];
    int had_sub[64];
    int rc;
} oom_seen;

/* Rank 0 arms the failing allocation while the others wait in a barrier,
 * so the split's allocations (made by whichever rank completes it) meet
 * it; every rank must see the same rc, and no sub-comm on failure. */
static int split_oom_rank(ps_comm *c, void *arg)
{
    oom_seen *s = arg;
    int rc = 0;
    for (long i = 0; i < 64; i++) {
        if ((rc = ps_comm_barrier(c))) {
            break;
        }
        if (ps_comm_rank(c) == 0) {
            ps_test_fail_alloc(i);
        }
        ps_comm *sub = NULL;
        if ((rc = ps_comm_barrier(c))) {
            break;
        }
        s->rcs[i] = ps_comm_split(c, 0, &sub);
        s->had_sub[i] = sub != NULL;
        ps_comm_destroy(&sub);
        if ((rc = ps_comm_barrier(c))) {
            break;
        }
        if (ps_comm_rank(c) == 0) {
            ps_test_fail_alloc(-1);
        }
        if (s->rcs[i] == 0) {
            s->fails = i;
            break;
        }
    }
    s->rc = rc;
    return 0;
}

static void test_loop_split_out_of_memory_fails_every_rank(void **state)
{
    (void)state;
    oom_seen seen[NOOM];
    int rcs[NOOM];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < NOOM; i++) {
        seen[i].fails = -1;
    }
    ps_test_run_same(NOOM, split_oom_rank, seen, sizeof *seen, rcs);
    long n = seen[0].fails;
    assert_true(n > 3); /* scratch, group arrays, condvars, handles */
    for (int r = 0; r < NOOM; r++) {
        assert_int_equal(rcs[r], 0);
        assert_int_equal(seen[r].rc, 0);
        assert_int_equal(seen[r].fails, n);
        for (long i = 0; i < n; i++) {
            assert_int_equal(seen[r].rcs[i], PS_ENOMEM);
            assert_false(seen[r].had_sub[i]);
        }
        assert_true(seen[r].had_sub[n]);
    }
}

/* ---- failure -------------------------------------------------------------- */

enum { NFAIL = 4 };

typedef struct {
    int split, blocked, send_after, agree_after;
} fail_seen;

/* Rank 2 fails while the others wait: 0 in a world recv, 1 in a world
 * barrier, 3 in a recv on a comm split from the world. */
static int fail_rank(ps_comm *c, void *arg)
{
    fail_seen *s = arg;
    int r = ps_comm_rank(c);
    ps_comm *sub = NULL;
    s->split = ps_comm_split(c, r == 2 ? -1 : 0, &sub);
    ps_comm_msg m;
    switch (r) {
    case 0:
        s->blocked = ps_comm_recv(c, PS_ANY, PS_ANY, 1, &m);
        break;
    case 1:
        s->blocked = ps_comm_barrier(c);
        break;
    case 2:
        nap_ms(20); /* let the others block first (they fail anyway if not) */
        return PS_EIO;
    default:
        s->blocked = ps_comm_recv(sub, PS_ANY, PS_ANY, 1, &m);
        break;
    }
    /* A failed world stays failed. */
    s->send_after = send_bytes(c, 2, PS_TAG_PUSH, "x", 1);
    s->agree_after = ps_comm_agree(c, 0);
    ps_comm_destroy(&sub);
    return 0;
}

static void test_loop_failed_rank_unblocks_the_others(void **state)
{
    (void)state;
    fail_seen seen[NFAIL];
    int rcs[NFAIL];
    memset(seen, 0, sizeof seen);
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    ps_test_run_same(NFAIL, fail_rank, seen, sizeof *seen, rcs);
    char *log = ps_test_capture_end(&cap);
    assert_int_equal(rcs[2], PS_EIO);
    for (int r = 0; r < NFAIL; r++) {
        if (r == 2) {
            continue;
        }
        assert_int_equal(rcs[r], 0);
        assert_int_equal(seen[r].split, 0);
        assert_int_equal(seen[r].blocked, PS_EPEER);
        assert_int_equal(seen[r].send_after, PS_EPEER);
        assert_int_equal(seen[r].agree_after, PS_EPEER);
    }
    assert_non_null(strstr(log, "recv on rank 0 gives up: world rank 2 failed"));
    assert_non_null(strstr(log, "barrier on rank 1 gives up: world rank 2 failed"));
    test_free(log);
}

static int mismatch_rank(ps_comm *c, void *arg)
{
    int *rc = arg;
    *rc = ps_comm_rank(c) == 0 ? ps_comm_barrier(c) : ps_comm_agree(c, 0);
    return 0;
}

static void test_loop_mismatched_collectives_fail_on_every_rank(void **state)
{
    (void)state;
    int seen[2] = {1, 1}, rcs[2];
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    ps_test_run_same(2, mismatch_rank, seen, sizeof *seen, rcs);
    char *log = ps_test_capture_end(&cap);
    assert_int_equal(seen[0], PS_EINVAL);
    assert_int_equal(seen[1], PS_EINVAL);
    assert_non_null(strstr(log, "collective mismatch: rank 1 called agree"));
    test_free(log);
}

/* ---- log ranks --------------------------------------------------------------- */

static int log_rank_fn(ps_comm *c, void *arg)
{
    (void)arg;
    /* Rank 1 logs only after rank 0 has, and after rank 0 set its own rank. */
    int rc = 0;
    if (ps_comm_rank(c) == 1 && (rc = ps_comm_barrier(c)) == 0) {
        PS_LOG(WARN, "hello from the second thread");
    } else if (ps_comm_rank(c) == 0) {
        PS_LOG(WARN, "hello from the first thread");
        rc = ps_comm_barrier(c);
    }
    return rc;
}

static void test_log_rank_is_per_thread(void **state)
{
    (void)state;
    int rcs[2];
    ps_log_set_rank(9);
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    ps_test_run_same(2, log_rank_fn, NULL, 0, rcs);
    PS_LOG(WARN, "hello from main");
    char *log = ps_test_capture_end(&cap);
    ps_log_set_rank(-1);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[1], 0);
    assert_non_null(strstr(log, "[rank 0] WARN: hello from the first thread"));
    assert_non_null(strstr(log, "[rank 1] WARN: hello from the second thread"));
    assert_non_null(strstr(log, "[rank 9] WARN: hello from main"));
    test_free(log);
}

/* ---- liveness ---------------------------------------------------------------- */

#define LIVE_TIMEOUT 0.4

typedef struct {
    int rc;        /* of the wait under test */
    double waited; /* seconds it took */
    int silent;    /* ps_comm_silent_rank after it */
    int got_beat;  /* a heartbeat reached the caller */
    int finished;  /* the busy rank got to the end */
} live_seen;

typedef struct {
    int mode; /* how rank 1 behaves: LIVE_SILENT, LIVE_BUSY or LIVE_NOT_PEER */
    int coll; /* rank 0 waits in a barrier instead of a receive */
    live_seen seen[3];
} live_job;

enum { LIVE_SILENT, LIVE_BUSY, LIVE_NOT_PEER };

/* Every rank a peer of every other, except rank 1 in LIVE_NOT_PEER. */
static int live_setup(ps_comm *c, const live_job *j)
{
    int peers[3], n = 0;
    for (int r = 0; r < ps_comm_size(c); r++) {
        if (!(j->mode == LIVE_NOT_PEER && (r == 1 || ps_comm_rank(c) == 1))) {
            peers[n++] = r;
        }
    }
    ps_comm_set_timeout(c, LIVE_TIMEOUT);
    return ps_comm_set_peers(c, peers, n);
}

/* Rank 0 waits for a message (or a barrier) from rank 1, which is silent,
 * busy with heartbeats, or no peer of rank 0; so does rank 2, a third
 * party. Rank 1 is quiet for three timeouts, then sends both "done" (or
 * joins the barrier). */
static int live_rank(ps_comm *c, void *arg)
{
    live_job *j = arg;
    int r = ps_comm_rank(c);
    live_seen *s = &j->seen[r];
    int rc = live_setup(c, j);
    if (rc || (rc = ps_comm_barrier(c))) {
        return rc;
    }
    double t0 = ps_comm_time();
    ps_comm_msg m;
    if (r == 0) {
        s->rc = j->coll ? ps_comm_barrier(c) : ps_comm_wait(c, 1, PS_ANY, "the test message", &m);
        s->waited = ps_comm_time() - t0;
        s->silent = ps_comm_silent_rank(c);
        s->got_beat = s->rc == 0 && !j->coll && m.tag != 7;
        if (s->rc) {
            ps_comm_loop_fail(c); /* what cli/ does next: abort the job */
        }
        return 0;
    }
    if (r == 2) {
        s->rc = j->coll ? ps_comm_barrier(c) : ps_comm_wait(c, 1, PS_ANY, "the end", &m);
        return 0;
    }
    /* Rank 1: quiet for 3 timeouts, ticking or not. */
    while (ps_comm_time() - t0 < 3 * LIVE_TIMEOUT) {
        nap_ms(10);
        if (j->mode != LIVE_SILENT) {
            ps_comm_alive();
        }
    }
    s->finished = 1;
    if (j->coll) {
        s->rc = ps_comm_barrier(c);
    } else if ((s->rc = send_bytes(c, 0, 7, "done", 4)) == 0) {
        s->rc = send_bytes(c, 2, 7, "done", 4);
    }
    return 0;
}

/* Every rank gets the same job (ps_test_run_same hands out elements). */
static int live_rank_shared(ps_comm *c, void *arg)
{
    return live_rank(c, *(live_job **)arg);
}

static void run_live(live_job *j)
{
    live_job *ptrs[3] = {j, j, j};
    int rcs[3];
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    ps_test_run_same(3, live_rank_shared, ptrs, sizeof ptrs[0], rcs);
    char *log = ps_test_capture_end(&cap);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(rcs[r], 0);
    }
    if (j->seen[0].rc == PS_ETIMEDOUT) {
        assert_non_null(strstr(log, "rank 1 has sent nothing, not even a heartbeat"));
        assert_non_null(strstr(log, j->coll ? "while rank 0 waited for the barrier"
                                            : "while rank 0 waited for the test message"));
    }
    test_free(log);
}

static void test_live_silent_peer_times_out_naming_it(void **state)
{
    (void)state;
    for (int coll = 0; coll < 2; coll++) {
        live_job j = {.mode = LIVE_SILENT, .coll = coll};
        run_live(&j);
        assert_int_equal(j.seen[0].rc, PS_ETIMEDOUT);
        assert_int_equal(j.seen[0].silent, 1);
        /* Within the timeout of the last word (the barrier before), not much later. */
        assert_true(j.seen[0].waited >= LIVE_TIMEOUT * 0.9);
        assert_true(j.seen[0].waited < LIVE_TIMEOUT * 2.5);
    }
}

static void test_live_busy_peer_with_heartbeats_is_waited_for(void **state)
{
    (void)state;
    for (int coll = 0; coll < 2; coll++) {
        live_job j = {.mode = LIVE_BUSY, .coll = coll};
        run_live(&j);
        assert_int_equal(j.seen[0].rc, 0);
        assert_int_equal(j.seen[1].finished, 1);
        assert_int_equal(j.seen[0].got_beat, 0); /* the message, never a heartbeat */
        assert_true(j.seen[0].waited >= 3 * LIVE_TIMEOUT * 0.9);
        assert_int_equal(j.seen[2].rc, 0);
    }
}

static void test_live_ranks_that_are_no_peer_are_not_judged(void **state)
{
    (void)state;
    live_job j = {.mode = LIVE_NOT_PEER};
    run_live(&j);
    assert_int_equal(j.seen[0].rc, 0);
    assert_int_equal(j.seen[0].silent, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loop_create_rejects_no_ranks_and_survives_oom,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_loop_matches_source_and_tag, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_loop_keeps_each_senders_order, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_loop_send_swaps_buffers_and_counts_bytes,
                                        ps_test_setup, ps_test_teardown),
        cmocka_unit_test_setup_teardown(
            test_loop_payloads_land_in_place_and_count_under_their_header, ps_test_setup,
            ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_loop_checks_ranks_and_tags, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test(test_comm_time_advances),
        cmocka_unit_test_setup_teardown(test_loop_collectives_agree_on_every_rank, ps_test_setup_mt,
                                        ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_loop_split_groups_by_colour, ps_test_setup_mt,
                                        ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_loop_split_out_of_memory_fails_every_rank,
                                        ps_test_setup_mt, ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_loop_failed_rank_unblocks_the_others, ps_test_setup_mt,
                                        ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_loop_mismatched_collectives_fail_on_every_rank,
                                        ps_test_setup_mt, ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_log_rank_is_per_thread, ps_test_setup_mt,
                                        ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_live_silent_peer_times_out_naming_it, ps_test_setup_mt,
                                        ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_live_busy_peer_with_heartbeats_is_waited_for,
                                        ps_test_setup_mt, ps_test_teardown_mt),
        cmocka_unit_test_setup_teardown(test_live_ranks_that_are_no_peer_are_not_judged,
                                        ps_test_setup_mt, ps_test_teardown_mt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
