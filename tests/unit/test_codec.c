/* Tests for common/codec.c: round trips of every message kind, every
 * rejection the decoders promise (built as raw protobuf bytes by a tiny
 * writer here, independent of the code under test), truncated and garbage
 * input, allocation failure and steady-state reuse. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/ps_test.h"

#include "common/codec.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/rng.h"

/* ------------------------------------------------------------ helpers */

static const ps_msg_table test_tables[4] = {
    {.width = 1, .slots = 1000},
    {.width = 4, .slots = 50},
    {.width = 10, .slots = (uint64_t)1 << 41},
    {.width = 3, .slots = 7},
};
static const ps_msg_limits test_lim = {.tables = test_tables, .ntables = 4, .nworkers = 5};

/* Rejection tests log on purpose; keep their output quiet. */
static void quiet(int on)
{
    ps_log_set_level(on ? (ps_log_level)(PS_LOG_ERROR + 1) : PS_LOG_INFO);
}

/* A minimal protobuf writer, so bad messages can be built that our encoder
 * refuses to produce. */
typedef struct {
    uint8_t b[8192];
    size_t n;
} wbuf;

static void put_varint(wbuf *w, uint64_t v)
{
    while (v >= 0x80) {
        w->b[w->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    w->b[w->n++] = (uint8_t)v;
}

static void put_field_varint(wbuf *w, unsigned field, uint64_t v)
{
    put_varint(w, (uint64_t)field << 3 | 0);
    put_varint(w, v);
}

static void put_field_bytes(wbuf *w, unsigned field, const void *p, size_t n)
{
    put_varint(w, (uint64_t)field << 3 | 2);
    put_varint(w, n);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

/* Segment: table, packed slot deltas, packed floats. */
/* A segment as field `field`; with run_count > 0 also a run (fields 4, 5). */
static void put_seg_run(wbuf *w, unsigned field, uint32_t table, const uint64_t *delta, size_t nd,
                        const float *val, size_t nv, uint64_t run_first, uint64_t run_count)
{
    wbuf s = {.n = 0}, packed = {.n = 0};
    if (table) {
        put_field_varint(&s, 1, table);
    }
    for (size_t i = 0; i < nd; i++) {
        put_varint(&packed, delta[i]);
    }
    if (nd) {
        put_field_bytes(&s, 2, packed.b, packed.n);
    }
    if (nv) {
        put_field_bytes(&s, 3, val, nv * sizeof(float)); /* little-endian host */
    }
    if (run_count) {
        put_field_varint(&s, 4, run_first);
        put_field_varint(&s, 5, run_count);
    }
    put_field_bytes(w, field, s.b, s.n);
}

static void put_seg(wbuf *w, unsigned field, uint32_t table, const uint64_t *delta, size_t nd,
                    const float *val, size_t nv)
{
    put_seg_run(w, field, table, delta, nd, val, nv, 0, 0);
}

/* What every successfully decoded message must satisfy; reads every value
 * so the sanitizers see any bad pointer. */
static void check_segs_valid(const ps_msg_limits *lim, const ps_seg *segs, size_t nsegs,
                             int with_slots, int with_values)
{
    for (size_t i = 0; i < nsegs; i++) {
        const ps_seg *s = &segs[i];
        assert_true(s->table < lim->ntables);
        for (size_t j = 0; j < i; j++) {
            assert_true(segs[j].table != s->table);
        }
        const ps_msg_table *t = &lim->tables[s->table];
        if (with_slots) {
            for (size_t k = 0; k < s->nkeys; k++) {
                assert_true(s->slots[k] < t->slots);
                if (k) {
                    assert_true(s->slots[k] > s->slots[k - 1]);
                }
            }
        } else {
            assert_null(s->slots);
        }
        if (with_values) {
            assert_int_equal(s->nvalues, s->nkeys * t->width);
            volatile float sink = 0;
            for (size_t k = 0; k < s->nvalues; k++) {
                sink += s->values[k];
            }
            (void)sink;
        } else {
            assert_int_equal(s->nvalues, 0);
        }
    }
}

static void assert_segs_equal(const ps_seg *a, const ps_seg *b, size_t nsegs, int with_slots,
                              int with_values)
{
    for (size_t i = 0; i < nsegs; i++) {
        assert_int_equal(a[i].table, b[i].table);
        assert_int_equal(a[i].nkeys, b[i].nkeys);
        if (with_slots && a[i].nkeys) {
            assert_memory_equal(a[i].slots, b[i].slots, a[i].nkeys * sizeof(uint64_t));
        }
        if (with_values) {
            assert_int_equal(a[i].nvalues, b[i].nvalues);
            if (a[i].nvalues) {
                assert_memory_equal(a[i].values, b[i].values, a[i].nvalues * sizeof(float));
            }
        }
    }
}

/* A push over tables 2, 0 and 1 (deliberately not in table order), one of
 * them empty, with slots near 2^40 and widths 10, 1 and 4. */
static uint64_t big_slots[5];
static float big_vals[50];
static uint64_t small_slots[3] = {0, 1, 999};
static float small_vals[3] = {0.5f, -1.25f, 3e38f};
static ps_seg push_segs[3];

static void make_push(ps_push *p)
{
    uint64_t base = (uint64_t)1 << 40;
    uint64_t gaps[5] = {0, 1, 127, 128, ((uint64_t)1 << 40) - 300};
    for (int k = 0; k < 5; k++) {
        base += gaps[k];
        big_slots[k] = base;
    }
    for (int k = 0; k < 50; k++) {
        big_vals[k] = (float)k * 0.25f - 3.0f;
    }
    push_segs[0] =
        (ps_seg){.table = 2, .nkeys = 5, .slots = big_slots, .values = big_vals, .nvalues = 50};
    push_segs[1] =
        (ps_seg){.table = 0, .nkeys = 3, .slots = small_slots, .values = small_vals, .nvalues = 3};
    push_segs[2] = (ps_seg){.table = 1, .nkeys = 0, .slots = NULL, .values = NULL, .nvalues = 0};
    *p = (ps_push){.clock = 123456789012LL,
                   .worker = 4,
                   .samples = 4000000000u,
                   .nsegs = 3,
                   .segs = push_segs};
}

/* ------------------------------------------------------------ round trips */

static void test_codec_destroy_accepts_null(void **state)
{
    (void)state;
    ps_codec_destroy(NULL);
    ps_codec *c = NULL;
    ps_codec_destroy(&c);
    assert_int_equal(ps_codec_create(&c), 0);
    assert_non_null(c);
    ps_codec_destroy(&c);
    assert_null(c);
}

static void test_codec_push_round_trips_several_tables(void **state)
{
    (void)state;
    ps_codec *c = NULL;
    ps_bytes b = {0};
    ps_push in, out;
    make_push(&in);
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_encode_push(c, &in, &b), 0);
    assert_true(b.len > 0 && b.len <= b.cap);
    assert_int_equal(ps_codec_decode_push(c, &test_lim, 1, b.data, b.len, &out), 0);
    assert_int_equal(out.clock, in.clock);
    assert_int_equal(out.worker, in.worker);
    assert_int_equal(out.samples, in.samples); /* BSP weights the push by it */
    assert_int_equal(out.nsegs, 3);
    assert_segs_equal(in.segs, out.segs, 3, 1, 1);
    check_segs_valid(&test_lim, out.segs, out.nsegs, 1, 1);
    ps_free(b.data);
    ps_codec_destroy(&c);
}

/* A push whose values travel as a payload: the header announces the
 * count, decodes with values NULL and that count, and is checked against
 * nkeys * width like inline values; a header with both, or a count that
 * does not match, is PS_EMSG. A reply's payload is bounded by its table.
 * A segment marked run encodes as (first, count) without its slots read
 * past the first, and decodes to the same slots. */
static void test_codec_payload_headers_and_run_hints(void **state)
{
    (void)state;
    ps_codec *c = NULL;
    ps_bytes b = {0};
    assert_int_equal(ps_codec_create(&c), 0);
    /* Only slots[0] is read: the rest would fail the ascending check. */
    uint64_t slots[3] = {4, 0, 0};
    ps_seg seg = {.table = 0,
                  .nkeys = 3,
                  .slots = slots,
                  .values = NULL,
                  .nvalues = 3 * test_tables[0].width,
                  .run = 1};
    ps_push in = {.clock = 2, .worker = 1, .samples = 8, .nsegs = 1, .segs = &seg}, out;
    assert_int_equal(ps_codec_encode_push(c, &in, &b), 0);
    assert_true(b.len < 16); /* a header: no values, no slots */
    assert_int_equal(ps_codec_decode_push(c, &test_lim, 1, b.data, b.len, &out), 0);
    assert_int_equal(out.nsegs, 1);
    assert_null(out.segs[0].values);
    assert_int_equal(out.segs[0].run, 0); /* a hint for encoders only */
    assert_int_equal(out.segs[0].nvalues, seg.nvalues);
    assert_int_equal(out.segs[0].nkeys, 3);
    assert_int_equal(out.segs[0].slots[0], 4);
    assert_int_equal(out.segs[0].slots[2], 6);
    /* The run's slots are kept per table: the same run again, then another
     * one, each decodes to its own slots. */
    assert_int_equal(ps_codec_decode_push(c, &test_lim, 1, b.data, b.len, &out), 0);
    assert_int_equal(out.segs[0].slots[2], 6);
    slots[0] = 9;
    assert_int_equal(ps_codec_encode_push(c, &in, &b), 0);
    assert_int_equal(ps_codec_decode_push(c, &test_lim, 1, b.data, b.len, &out), 0);
    assert_int_equal(out.segs[0].slots[0], 9);
    assert_int_equal(out.segs[0].slots[2], 11);
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    seg.nvalues += 1; /* not nkeys * width */
    assert_int_equal(ps_codec_encode_push(c, &in, &b), 0);
    assert_int_equal(ps_codec_decode_push(c, &test_lim, 3, b.data, b.len, &out), PS_EMSG);
    ps_seg rs = {.table = 0,
                 .nkeys = 0,
                 .values = NULL,
                 .nvalues = (test_tables[0].slots + 1) * test_tables[0].width};
    ps_reply r = {.request_id = 1, .nsegs = 1, .segs = &rs}, rout;
    assert_int_equal(ps_codec_encode_reply(c, &r, &b), 0);
    assert_int_equal(ps_codec_decode_reply(c, &test_lim, 2, b.data, b.len, &rout), PS_EMSG);
    char *log = ps_test_capture_end(&cap);
    assert_non_null(strstr(log, "push from rank 3"));
    assert_non_null(strstr(log, "reply from rank 2"));
    test_free(log);
    rs.nvalues = test_tables[0].width * 2;
    assert_int_equal(ps_codec_encode_reply(c, &r, &b), 0);
    assert_int_equal(ps_codec_decode_reply(c, &test_lim, 2, b.data, b.len, &rout), 0);
    assert_null(rout.segs[0].values);
    assert_int_equal(rout.segs[0].nkeys, 2);
    ps_free(b.data);
    ps_codec_destroy(&c);
}

static void test_codec_push_round_trips_empty(void **state)
{
    (void)state;
    ps_codec *c = NULL;
    ps_bytes b = {0};
    ps_push in = {.clock = 0, .worker = 0, .nsegs = 0, .segs = NULL}, out;
    memset(&out, 0xab, sizeof out);
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_encode_push(c, &in, &b), 0);
    /* All fields default: proto3 sends nothing at all. */
    assert_int_equal(b.len, 0);
    assert_int_equal(ps_codec_decode_push(c, &test_lim, 0, b.data, b.len, &out), 0);
    assert_int_equal(out.clock, 0);
    assert_int_equal(out.worker, 0);
    assert_int_equal(out.samples, 0);
    assert_int_equal(out.nsegs, 0);
    /* A NULL buffer of length 0 is the same empty message. */
    in.clock = 7;
    assert_int_equal(ps_codec_encode_push(c, &in, &b), 0);
    assert_true(b.len > 0);
    assert_int_equal(ps_codec_decode_push(c, &test_lim, 0, NULL, 0, &out), 0);
    assert_int_equal(out.clock, 0);
    ps_free(b.data);
    ps_codec_destroy(&c);
}

static void test_codec_pull_round_trips(void **state)
{
    (void)state;
    ps_codec *c = NULL;
    ps_bytes b = {0};
    uint64_t s0[4] = {3, 4, 5, 999}, s3[2] = {0, 6};
    float ignored[4] = {1, 2, 3, 4};
    ps_seg segs[2] = {
        {.table = 3, .nkeys = 2, .slots = s3},
        /* Pulls carry keys only: values given here are not sent. */
        {.table = 0, .nkeys = 4, .slots = s0, .values = ignored, .nvalues = 4},
    };
    ps_pull in = {.request_id = UINT64_MAX - 1,
                  .min_version = -3,
                  .worker = 2,
                  .averaged = 1,
                  .nsegs = 2,
                  .segs = segs},
            out;
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_encode_pull(c, &in, &b), 0);
    assert_int_equal(ps_codec_decode_pull(c, &test_lim, 2, b.data, b.len, &out), 0);
    assert_true(out.request_id == in.request_id);
    assert_int_equal(out.min_version, -3);
    assert_int_equal(out.worker, 2);
    assert_int_equal(out.averaged, 1);
    assert_int_equal(out.nsegs, 2);
    assert_segs_equal(segs, out.segs, 2, 1, 0);
    check_segs_valid(&test_lim, out.segs, out.nsegs, 1, 0);
    ps_free(b.data);
    ps_codec_destroy(&c);
}

/* Segments without keys, on a codec that has never held a slot. */
static void test_codec_pull_round_trips_empty_segments(void **state)
{
    (void)state;
    ps_codec *c = NULL;
    ps_bytes b = {0};
    ps_seg segs[2] = {{.table = 1, .nkeys = 0}, {.table = 0, .nkeys = 0}};
    ps_pull in = {.request_id = 5, .worker = 1, .nsegs = 2, .segs = segs}, out;
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_encode_pull(c, &in, &b), 0);
    assert_int_equal(ps_codec_decode_pull(c, &test_lim, 0, b.data, b.len, &out), 0);
    assert_int_equal(out.nsegs, 2);
    assert_segs_equal(segs, out.segs, 2, 1, 0);
    assert_null(out.segs[0].slots);
    ps_free(b.data);
    ps_codec_destroy(&c);
}

static void test_codec_reply_round_trips_with_width(void **state)
{
    (void)state;
    ps_codec *c = NULL;
    ps_bytes b = {0};
    float v1[12], v2[20];
    for (int i = 0; i < 12; i++) {
        v1[i] = (float)i / 7.0f;
    }
    for (int i = 0; i < 20; i++) {
        v2[i] = -(float)i * 1e-30f;
    }
    ps_seg segs[2] = {
        {.table = 1, .nkeys = 3, .values = v1, .nvalues = 12},
        {.table = 2, .nkeys = 2, .values = v2, .nvalues = 20},
    };
    ps_reply in = {.request_id = 42, .version = 9, .stop_clock = 12, .nsegs = 2, .segs = segs}, out;
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_encode_reply(c, &in, &b), 0);
    assert_int_equal(ps_codec_decode_reply(c, &test_lim, 0, b.data, b.len, &out), 0);
    assert_int_equal(out.request_id, 42);
    assert_int_equal(out.version, 9);
    assert_int_equal(out.stop_clock, 12);
    assert_int_equal(out.chunk, 0); /* absent: each payload one message */
    assert_int_equal(out.nsegs, 2);
    /* nkeys comes back as nvalues / width. */
    assert_segs_equal(segs, out.segs, 2, 0, 1);
    check_segs_valid(&test_lim, out.segs, out.nsegs, 0, 1);
    /* The piece size travels as it is, with payloads announced. */
    segs[0].values = segs[1].values = NULL;
    in.chunk = 65536;
    assert_int_equal(ps_codec_encode_reply(c, &in, &b), 0);
    assert_int_equal(ps_codec_decode_reply(c, &test_lim, 0, b.data, b.len, &out), 0);
    assert_int_equal(out.chunk, 65536);
    assert_null(out.segs[0].values);
    assert_int_equal(out.segs[1].nvalues, 20);
    ps_free(b.data);
    ps_codec_destroy(&c);
}

static void test_codec_ctrl_round_trips_every_kind(void **state)
{
    (void)state;
    ps_codec *c = NULL;
    ps_bytes b = {0};
    assert_int_equal(ps_codec_create(&c), 0);
    for (int k = PS_CTRL_HELLO; k <= PS_CTRL_LAST; k++) {
        ps_ctrl in = {.kind = (ps_ctrl_kind)k,
                      .worker = (uint32_t)k % 5,
                      .clock = 1000 + k,
                      .value = UINT64_MAX - (uint64_t)k,
                      .text = k % 2 ? "ckpt/dir é" : NULL};
        ps_ctrl out;
        assert_int_equal(ps_codec_encode_ctrl(c, &in, &b), 0);
        /* Limits are optional for control messages. */
        const ps_msg_limits *lim = k % 2 ? NULL : &test_lim;
        assert_int_equal(ps_codec_decode_ctrl(c, lim, 1, b.data, b.len, &out), 0);
        assert_int_equal(out.kind, k);
        assert_int_equal(out.worker, k % 5);
        assert_int_equal(out.clock, 1000 + k);
        assert_true(out.value == in.value);
        assert_string_equal(out.text, in.text ? in.text : "");
    }
    ps_free(b.data);
    ps_codec_destroy(&c);
}

/* Pins the wire format to proto/adamps.proto: our encoder's bytes equal the
 * hand-built protobuf encoding, deltas and all. */
static void test_codec_push_bytes_match_proto_wire_format(void **state)
{
    (void)state;
    ps_codec *c = NULL;
    ps_bytes b = {0};
    uint64_t slots[3] = {5, 6, 300};
    float vals[3] = {1.0f, 2.0f, 3.0f};
    ps_seg seg = {.table = 3, .nkeys = 3, .slots = slots, .values = vals, .nvalues = 3};
    ps_push in = {.clock = 2, .worker = 1, .nsegs = 1, .segs = &seg};
    wbuf w = {.n = 0};
    uint64_t deltas[3] = {5, 1, 294};
    put_field_varint(&w, 1, 2);
    put_field_varint(&w, 2, 1);
    put_seg(&w, 3, 3, deltas, 3, vals, 3);
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_encode_push(c, &in, &b), 0);
    assert_int_equal(b.len, w.n);
    assert_memory_equal(b.data, w.b, w.n);
    ps_free(b.data);
    ps_codec_destroy(&c);
}

/* ------------------------------------------------------------ rejections */

/* Decodes w as a push and expects PS_EMSG with exactly one log line that
 * contains every string in want (NULL-terminated). */
static void expect_push_rejected(const wbuf *w, int sender, const char *const *want)
{
    ps_codec *c = NULL;
    ps_push out;
    ps_test_capture cap;
    assert_int_equal(ps_codec_create(&c), 0);
    ps_test_capture_begin(&cap);
    int rc = ps_codec_decode_push(c, &test_lim, sender, w->b, w->n, &out);
    char *log = ps_test_capture_end(&cap);
    assert_int_equal(rc, PS_EMSG);
    assert_int_equal(ps_test_count_lines(log), 1);
    for (; *want; want++) {
        if (!strstr(log, *want)) {
            fail_msg("log line \"%s\" lacks \"%s\"", log, *want);
        }
    }
    test_free(log);
    ps_codec_destroy(&c);
}

/* A valid push header for worker 1 at clock 3. */
static void push_header(wbuf *w)
{
    w->n = 0;
    put_field_varint(w, 1, 3);
    put_field_varint(w, 2, 1);
}

static void test_codec_accepts_hand_built_push(void **state)
{
    (void)state;
    wbuf w;
    uint64_t d[3] = {2, 1, 996}; /* slots 2, 3, 999 */
    float v[3] = {1, 2, 3};
    push_header(&w);
    put_seg(&w, 3, 0, d, 3, v, 3);
    ps_codec *c = NULL;
    ps_push out;
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_decode_push(c, &test_lim, 0, w.b, w.n, &out), 0);
    assert_int_equal(out.nsegs, 1);
    assert_int_equal(out.segs[0].nkeys, 3);
    assert_int_equal(out.segs[0].slots[0], 2);
    assert_int_equal(out.segs[0].slots[1], 3);
    assert_int_equal(out.segs[0].slots[2], 999);
    assert_memory_equal(out.segs[0].values, v, sizeof v);
    ps_codec_destroy(&c);
}

/* A push segment sent as a run instead of (or, wrongly, with) deltas. */
static void put_run_seg(wbuf *w, uint32_t table, uint64_t first, uint64_t count,
                        const uint64_t *delta, size_t nd, const float *val, size_t nv)
{
    put_seg_run(w, 3, table, delta, nd, val, nv, first, count);
}

static void test_codec_gapless_slots_travel_as_a_run(void **state)
{
    (void)state;
    /* 900 consecutive slots of table 0: a run costs a few bytes, where
     * deltas would cost one byte per key. */
    enum { N = 900 };
    static uint64_t slots[N];
    static float vals[N];
    for (size_t i = 0; i < N; i++) {
        slots[i] = 50 + i;
        vals[i] = (float)i;
    }
    ps_seg seg = {.table = 0, .nkeys = N, .slots = slots, .values = vals, .nvalues = N};
    ps_push p = {.clock = 1, .worker = 0, .nsegs = 1, .segs = &seg};
    ps_codec *c = NULL;
    ps_bytes b = {0};
    ps_push out;
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_encode_push(c, &p, &b), 0);
    assert_true(b.len < N * sizeof(float) + 32);
    assert_int_equal(ps_codec_decode_push(c, &test_lim, 0, b.data, b.len, &out), 0);
    assert_int_equal(out.segs[0].nkeys, N);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(out.segs[0].slots[i], 50 + i);
    }
    assert_memory_equal(out.segs[0].values, vals, sizeof vals);
    ps_free(b.data);
    ps_codec_destroy(&c);
}

static void test_codec_rejects_bad_runs(void **state)
{
    (void)state;
    wbuf w;
    float v[8] = {0};
    uint64_t d[1] = {3};
    /* Last slot of the run 996..999 is the limit - 1: fine; 997..1000 is not. */
    push_header(&w);
    put_run_seg(&w, 0, 996, 4, NULL, 0, v, 4);
    ps_codec *c = NULL;
    ps_push out;
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_decode_push(c, &test_lim, 0, w.b, w.n, &out), 0);
    assert_int_equal(out.segs[0].slots[3], 999);
    ps_codec_destroy(&c);
    push_header(&w);
    put_run_seg(&w, 0, 997, 4, NULL, 0, v, 4);
    expect_push_rejected(&w, 2,
                         (const char *const[]){"rank 2", "run of 4", "passes the table", NULL});
    /* A count far past the table must be refused before anything is sized
     * by it (no 2^60-slot allocation). */
    push_header(&w);
    put_run_seg(&w, 0, 0, (uint64_t)1 << 60, NULL, 0, v, 4);
    expect_push_rejected(&w, 2, (const char *const[]){"run of", NULL});
    push_header(&w);
    put_run_seg(&w, 0, UINT64_MAX - 1, 4, NULL, 0, v, 4);
    expect_push_rejected(&w, 2, (const char *const[]){"passes the table", NULL});
    /* Within table 2 (2^41 slots) but past what a run may ask for, and a
     * push whose values do not pay for its run. */
    push_header(&w);
    put_run_seg(&w, 2, 0, PS_CODEC_MAX_RUN + 1, NULL, 0, v, 0);
    expect_push_rejected(&w, 2, (const char *const[]){"longer than a message", NULL});
    push_header(&w);
    put_run_seg(&w, 2, 0, 1000, NULL, 0, v, 8);
    expect_push_rejected(&w, 2, (const char *const[]){"count * width", NULL});
    /* A run and deltas together are ambiguous. */
    push_header(&w);
    put_run_seg(&w, 0, 10, 2, d, 1, v, 3);
    expect_push_rejected(&w, 4, (const char *const[]){"both a run and 1 slot deltas", NULL});
}

static void test_codec_rejects_duplicate_slot(void **state)
{
    (void)state;
    wbuf w;
    uint64_t d[3] = {2, 1, 0};
    float v[3] = {0};
    push_header(&w);
    put_seg(&w, 3, 0, d, 3, v, 3);
    expect_push_rejected(&w, 3, (const char *const[]){"push from rank 3", "key 2", "slot 3", NULL});
}

/* Deltas are unsigned, so an unsorted slot arrives as a delta that wraps. */
static void test_codec_rejects_unsorted_slots(void **state)
{
    (void)state;
    wbuf w;
    uint64_t d[2] = {5, UINT64_MAX - 1}; /* 5 + (2^64 - 2) wraps to 3 */
    float v[2] = {0};
    push_header(&w);
    put_seg(&w, 3, 0, d, 2, v, 2);
    expect_push_rejected(&w, 2, (const char *const[]){"rank 2", "overflow", NULL});
    /* Also when the limit is 2^41: the wrapped sum would pass a naive check. */
    uint64_t d2[2] = {((uint64_t)1 << 41) - 1, UINT64_MAX};
    float v2[20] = {0};
    push_header(&w);
    put_seg(&w, 3, 2, d2, 2, v2, 20);
    expect_push_rejected(&w, 2, (const char *const[]){"table 2", "key 1", NULL});
}

static void test_codec_rejects_slot_past_shard(void **state)
{
    (void)state;
    wbuf w;
    uint64_t ok[2] = {998, 1}, bad[2] = {998, 2}, first[1] = {1000};
    float v[2] = {0};
    ps_codec *c = NULL;
    ps_push out;
    push_header(&w);
    put_seg(&w, 3, 0, ok, 2, v, 2); /* last slot 999 = limit - 1 */
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_decode_push(c, &test_lim, 0, w.b, w.n, &out), 0);
    ps_codec_destroy(&c);
    push_header(&w);
    put_seg(&w, 3, 0, bad, 2, v, 2);
    expect_push_rejected(&w, 1, (const char *const[]){"slot 1000 >= 1000 slots", NULL});
    push_header(&w);
    put_seg(&w, 3, 0, first, 1, v, 1);
    expect_push_rejected(&w, 1, (const char *const[]){"key 0 slot 1000", NULL});
}

static void test_codec_rejects_table_past_ntables(void **state)
{
    (void)state;
    wbuf w;
    uint64_t d[1] = {0};
    float v[1] = {0};
    push_header(&w);
    put_seg(&w, 3, 0, d, 1, v, 1);
    put_seg(&w, 3, 7, d, 1, v, 1);
    expect_push_rejected(
        &w, 3, (const char *const[]){"push from rank 3: segment 1 table 7 >= 4 tables", NULL});
    /* The first id past the end, and the last valid one. */
    push_header(&w);
    put_seg(&w, 3, 4, d, 1, v, 0);
    expect_push_rejected(&w, 1, (const char *const[]){"segment 0 table 4 >= 4 tables", NULL});
    ps_codec *c = NULL;
    ps_push out;
    float v3[3] = {0};
    push_header(&w);
    put_seg(&w, 3, 3, d, 1, v3, 3);
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_decode_push(c, &test_lim, 0, w.b, w.n, &out), 0);
    assert_int_equal(out.segs[0].table, 3);
    ps_codec_destroy(&c);
}

static void test_codec_rejects_duplicate_table(void **state)
{
    (void)state;
    wbuf w;
    uint64_t d[1] = {4};
    float v[1] = {0};
    push_header(&w);
    put_seg(&w, 3, 0, d, 1, v, 1);
    put_seg(&w, 3, 0, d, 1, v, 1);
    expect_push_rejected(&w, 0, (const char *const[]){"segment 1 table 0", "twice", NULL});
}

static void test_codec_rejects_value_count_mismatch(void **state)
{
    (void)state;
    wbuf w;
    uint64_t d[2] = {1, 1};
    float v[9] = {0};
    for (size_t nv = 0; nv <= 9; nv++) {
        if (nv == 8) {
            continue; /* 2 keys * width 4 is right */
        }
        push_header(&w);
        put_seg(&w, 3, 1, d, 2, v, nv);
        expect_push_rejected(&w, 1, (const char *const[]){"table 1", "values", NULL});
    }

    ps_codec *c = NULL;
    assert_int_equal(ps_codec_create(&c), 0);
    quiet(1);
    /* A pull carries no values. */
    ps_pull pl;
    w.n = 0;
    put_field_varint(&w, 3, 1);
    put_seg(&w, 5, 0, d, 2, v, 2);
    assert_int_equal(ps_codec_decode_pull(c, &test_lim, 0, w.b, w.n, &pl), PS_EMSG);
    /* A reply's values are a whole number of rows, and carry no slots. */
    ps_reply r;
    w.n = 0;
    put_seg(&w, 3, 3, NULL, 0, v, 7); /* width 3 */
    assert_int_equal(ps_codec_decode_reply(c, &test_lim, 0, w.b, w.n, &r), PS_EMSG);
    w.n = 0;
    put_seg(&w, 3, 3, NULL, 0, v, 6);
    assert_int_equal(ps_codec_decode_reply(c, &test_lim, 0, w.b, w.n, &r), 0);
    assert_int_equal(r.segs[0].nkeys, 2);
    w.n = 0;
    put_seg(&w, 3, 3, d, 2, v, 6);
    assert_int_equal(ps_codec_decode_reply(c, &test_lim, 0, w.b, w.n, &r), PS_EMSG);
    quiet(0);
    ps_codec_destroy(&c);
}

/* The widest table: nkeys * width is computed in 64 bits, so missing values
 * are seen as missing. */
static void test_codec_rejects_missing_values_for_wide_table(void **state)
{
    (void)state;
    static const ps_msg_table wide[1] = {{.width = UINT32_MAX, .slots = UINT64_MAX}};
    const ps_msg_limits lim = {.tables = wide, .ntables = 1, .nworkers = 1};
    wbuf w = {.n = 0};
    uint64_t d[3] = {0, 1, 1};
    ps_codec *c = NULL;
    ps_push out;
    put_seg(&w, 3, 0, d, 3, NULL, 0);
    assert_int_equal(ps_codec_create(&c), 0);
    quiet(1);
    assert_int_equal(ps_codec_decode_push(c, &lim, 0, w.b, w.n, &out), PS_EMSG);
    quiet(0);
    ps_codec_destroy(&c);
}

static void test_codec_rejects_worker_past_nworkers(void **state)
{
    (void)state;
    wbuf w = {.n = 0};
    put_field_varint(&w, 2, 5);
    expect_push_rejected(&w, 4, (const char *const[]){"rank 4", "worker 5 >= 5 workers", NULL});

    ps_codec *c = NULL;
    assert_int_equal(ps_codec_create(&c), 0);
    quiet(1);
    ps_pull pl;
    w.n = 0;
    put_field_varint(&w, 3, 5);
    assert_int_equal(ps_codec_decode_pull(c, &test_lim, 0, w.b, w.n, &pl), PS_EMSG);
    w.n = 0;
    put_field_varint(&w, 3, 4);
    assert_int_equal(ps_codec_decode_pull(c, &test_lim, 0, w.b, w.n, &pl), 0);
    ps_ctrl ct;
    w.n = 0;
    put_field_varint(&w, 2, 5);
    assert_int_equal(ps_codec_decode_ctrl(c, &test_lim, 0, w.b, w.n, &ct), PS_EMSG);
    /* Without limits, the caller checks the worker itself. */
    assert_int_equal(ps_codec_decode_ctrl(c, NULL, 0, w.b, w.n, &ct), 0);
    assert_int_equal(ct.worker, 5);
    quiet(0);
    ps_codec_destroy(&c);
}

static void test_codec_rejects_negative_clock(void **state)
{
    (void)state;
    wbuf w = {.n = 0};
    put_field_varint(&w, 1, (uint64_t)-1); /* int64 -1 */
    expect_push_rejected(&w, 2, (const char *const[]){"rank 2", "clock -1 < 0", NULL});

    ps_codec *c = NULL;
    assert_int_equal(ps_codec_create(&c), 0);
    quiet(1);
    ps_ctrl ct;
    w.n = 0;
    put_field_varint(&w, 3, (uint64_t)INT64_MIN);
    assert_int_equal(ps_codec_decode_ctrl(c, NULL, 0, w.b, w.n, &ct), PS_EMSG);
    ps_reply r;
    w.n = 0;
    put_field_varint(&w, 2, (uint64_t)-5);
    assert_int_equal(ps_codec_decode_reply(c, &test_lim, 0, w.b, w.n, &r), PS_EMSG);
    quiet(0);
    ps_codec_destroy(&c);
}

static void test_codec_rejects_unknown_ctrl_kind(void **state)
{
    (void)state;
    wbuf w = {.n = 0};
    ps_codec *c = NULL;
    ps_ctrl ct;
    put_field_varint(&w, 1, PS_CTRL_LAST + 1);
    assert_int_equal(ps_codec_create(&c), 0);
    quiet(1);
    assert_int_equal(ps_codec_decode_ctrl(c, NULL, 0, w.b, w.n, &ct), PS_EMSG);
    w.n = 0;
    put_field_varint(&w, 1, (uint64_t)-1);
    assert_int_equal(ps_codec_decode_ctrl(c, NULL, 0, w.b, w.n, &ct), PS_EMSG);
    quiet(0);
    w.n = 0;
    put_field_varint(&w, 1, PS_CTRL_ERROR);
    assert_int_equal(ps_codec_decode_ctrl(c, NULL, 0, w.b, w.n, &ct), 0);
    assert_int_equal(ct.kind, PS_CTRL_ERROR);
    /* The encoder refuses to send one. */
    ps_bytes b = {0};
    ps_ctrl bad = {.kind = (ps_ctrl_kind)9};
    quiet(1);
    assert_int_equal(ps_codec_encode_ctrl(c, &bad, &b), PS_EINVAL);
    quiet(0);
    ps_free(b.data);
    ps_codec_destroy(&c);
}

static void test_codec_rejects_missing_limits(void **state)
{
    (void)state;
    ps_codec *c = NULL;
    ps_push p;
    ps_pull pl;
    ps_reply r;
    uint8_t byte = 0x08;
    assert_int_equal(ps_codec_create(&c), 0);
    quiet(1);
    assert_int_equal(ps_codec_decode_push(c, NULL, 0, &byte, 1, &p), PS_EINVAL);
    assert_int_equal(ps_codec_decode_pull(c, NULL, 0, &byte, 1, &pl), PS_EINVAL);
    assert_int_equal(ps_codec_decode_reply(c, NULL, 0, &byte, 1, &r), PS_EINVAL);
    assert_int_equal(ps_codec_decode_push(c, &test_lim, 0, NULL, 3, &p), PS_EINVAL);
    quiet(0);
    ps_codec_destroy(&c);
}

static void test_codec_encoder_rejects_unsorted_slots(void **state)
{
    (void)state;
    ps_codec *c = NULL;
    ps_bytes b = {0};
    uint64_t unsorted[3] = {1, 5, 4}, dup[3] = {1, 5, 5};
    float v[3] = {0};
    ps_seg seg = {.table = 0, .nkeys = 3, .slots = unsorted, .values = v, .nvalues = 3};
    ps_push p = {.clock = 1, .worker = 0, .nsegs = 1, .segs = &seg};
    ps_pull pl = {.worker = 0, .nsegs = 1, .segs = &seg};
    assert_int_equal(ps_codec_create(&c), 0);
    quiet(1);
    assert_int_equal(ps_codec_encode_push(c, &p, &b), PS_EINVAL);
    assert_int_equal(ps_codec_encode_pull(c, &pl, &b), PS_EINVAL);
    seg.slots = dup;
    assert_int_equal(ps_codec_encode_push(c, &p, &b), PS_EINVAL);
    seg.slots = NULL;
    assert_int_equal(ps_codec_encode_push(c, &p, &b), PS_EINVAL);
    quiet(0);
    /* The codec is still usable afterwards. */
    seg.slots = unsorted;
    seg.nkeys = 2;
    seg.nvalues = 2;
    assert_int_equal(ps_codec_encode_push(c, &p, &b), 0);
    ps_free(b.data);
    ps_codec_destroy(&c);
}

/* ------------------------------------------------------------ hostile bytes */

static void decode_all_kinds(ps_codec *c, const uint8_t *buf, size_t len)
{
    ps_push p;
    ps_pull pl;
    ps_reply r;
    ps_ctrl ct;
    int rc = ps_codec_decode_push(c, &test_lim, 0, buf, len, &p);
    assert_true(rc == 0 || rc == PS_EMSG);
    if (rc == 0) {
        assert_true(p.clock >= 0 && p.worker < test_lim.nworkers);
        check_segs_valid(&test_lim, p.segs, p.nsegs, 1, 1);
    }
    rc = ps_codec_decode_pull(c, &test_lim, 0, buf, len, &pl);
    assert_true(rc == 0 || rc == PS_EMSG);
    if (rc == 0) {
        assert_true(pl.worker < test_lim.nworkers);
        check_segs_valid(&test_lim, pl.segs, pl.nsegs, 1, 0);
    }
    rc = ps_codec_decode_reply(c, &test_lim, 0, buf, len, &r);
    assert_true(rc == 0 || rc == PS_EMSG);
    if (rc == 0) {
        assert_true(r.version >= 0);
        check_segs_valid(&test_lim, r.segs, r.nsegs, 0, 1);
    }
    rc = ps_codec_decode_ctrl(c, &test_lim, 0, buf, len, &ct);
    assert_true(rc == 0 || rc == PS_EMSG);
    if (rc == 0) {
        assert_true(ct.kind <= PS_CTRL_LAST && ct.clock >= 0 && ct.worker < test_lim.nworkers);
        assert_non_null(ct.text);
        (void)strlen(ct.text);
    }
}

/* Each prefix is copied to its own exact-size heap block, so a read past
 * the end is caught by the checked allocator and the sanitizers. */
static void test_codec_truncated_bytes_never_crash(void **state)
{
    (void)state;
    ps_codec *c = NULL, *enc = NULL;
    ps_bytes b[4] = {{0}};
    ps_push p;
    make_push(&p);
    uint64_t s[2] = {1, 6};
    ps_seg pseg = {.table = 3, .nkeys = 2, .slots = s};
    ps_pull pl = {
        .request_id = 300, .min_version = 2, .worker = 1, .averaged = 1, .nsegs = 1, .segs = &pseg};
    float rv[6] = {1, 2, 3, 4, 5, 6};
    ps_seg rseg = {.table = 3, .nkeys = 2, .values = rv, .nvalues = 6};
    ps_reply r = {.request_id = 300, .version = 4, .nsegs = 1, .segs = &rseg};
    ps_ctrl ct = {
        .kind = PS_CTRL_CHECKPOINT, .worker = 1, .clock = 5, .value = 9, .text = "/tmp/ckpt"};
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_create(&enc), 0);
    assert_int_equal(ps_codec_encode_push(enc, &p, &b[0]), 0);
    assert_int_equal(ps_codec_encode_pull(enc, &pl, &b[1]), 0);
    assert_int_equal(ps_codec_encode_reply(enc, &r, &b[2]), 0);
    assert_int_equal(ps_codec_encode_ctrl(enc, &ct, &b[3]), 0);
    quiet(1);
    size_t rejected = 0;
    for (int m = 0; m < 4; m++) {
        for (size_t n = 0; n < b[m].len; n++) {
            uint8_t *copy = ps_malloc(n);
            assert_non_null(copy);
            memcpy(copy, b[m].data, n);
            decode_all_kinds(c, copy, n);
            ps_push pp;
            rejected += ps_codec_decode_push(c, &test_lim, 0, copy, n, &pp) != 0;
            ps_free(copy);
        }
    }
    quiet(0);
    /* Most prefixes cut a field or a length-delimited block in half. */
    assert_true(rejected > b[0].len / 2);
    for (int m = 0; m < 4; m++) {
        ps_free(b[m].data);
    }
    ps_codec_destroy(&enc);
    ps_codec_destroy(&c);
}

static void test_codec_random_garbage_never_crashes(void **state)
{
    (void)state;
    ps_codec *c = NULL;
    ps_bytes b = {0};
    ps_push p;
    ps_rng rng;
    ps_rng_seed(&rng, 20150101);
    make_push(&p);
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_encode_push(c, &p, &b), 0);
    quiet(1);
    for (int iter = 0; iter < 3000; iter++) {
        size_t n;
        uint8_t *buf;
        if (iter % 2) {
            /* Pure noise, mostly short. */
            n = (size_t)ps_rng_below(&rng, 64);
            buf = ps_malloc(n);
            assert_non_null(buf);
            for (size_t i = 0; i < n; i++) {
                buf[i] = (uint8_t)ps_rng_next(&rng);
            }
        } else {
            /* A valid message with a few bytes flipped reaches deeper. */
            n = b.len;
            buf = ps_malloc(n);
            assert_non_null(buf);
            memcpy(buf, b.data, n);
            for (int f = 0; f < 3; f++) {
                buf[ps_rng_below(&rng, n)] ^= (uint8_t)(1u << ps_rng_below(&rng, 8));
            }
        }
        decode_all_kinds(c, buf, n);
        ps_free(buf);
    }
    quiet(0);
    ps_free(b.data);
    ps_codec_destroy(&c);
}

/* ------------------------------------------------------------ size, memory */

static void test_codec_delta_encoding_costs_at_most_two_bytes_per_key(void **state)
{
    (void)state;
    enum { RANGE = 1000000 };
    static const ps_msg_table t[1] = {{.width = 1, .slots = RANGE}};
    const ps_msg_limits lim = {.tables = t, .ntables = 1, .nworkers = 1};
    ps_rng rng;
    ps_rng_seed(&rng, 7);
    uint64_t *slots = ps_malloc(RANGE / 5 * sizeof *slots);
    assert_non_null(slots);
    size_t n = 0;
    for (uint64_t k = 0; k < RANGE; k++) {
        if (ps_rng_below(&rng, 10) == 0) {
            slots[n++] = k;
        }
    }
    assert_true(n > RANGE / 12 && n < RANGE / 8);
    ps_seg seg = {.table = 0, .nkeys = n, .slots = slots};
    ps_pull pl = {.request_id = 1, .worker = 0, .nsegs = 1, .segs = &seg}, out;
    ps_codec *c = NULL;
    ps_bytes b = {0};
    assert_int_equal(ps_codec_create(&c), 0);
    assert_int_equal(ps_codec_encode_pull(c, &pl, &b), 0);
    double per_key = (double)b.len / (double)n;
    print_message("pull, 10%% dense: %.3f bytes/key (%zu keys, %zu bytes)\n", per_key, n, b.len);
    assert_true(per_key <= 2.0);
    /* The absolute slots would need 3 bytes each as varints. */
    assert_true(per_key < 1.5);
    assert_int_equal(ps_codec_decode_pull(c, &lim, 0, b.data, b.len, &out), 0);
    assert_int_equal(out.segs[0].nkeys, n);
    assert_memory_equal(out.segs[0].slots, slots, n * sizeof *slots);
    ps_free(b.data);
    ps_free(slots);
    ps_codec_destroy(&c);
}

/* Once the codec has seen a message, encoding and decoding another like it
 * allocate nothing. */
static void test_codec_steady_state_allocates_nothing(void **state)
{
    (void)state;
    enum { N = 3000 };
    static const ps_msg_table t[1] = {{.width = 4, .slots = 100000}};
    const ps_msg_limits lim = {.tables = t, .ntables = 1, .nworkers = 1};
    uint64_t *slots = ps_malloc(N * sizeof *slots);
    float *vals = ps_malloc(4 * N * sizeof *vals);
    assert_non_null(slots);
    assert_non_null(vals);
    for (size_t k = 0; k < N; k++) {
        slots[k] = 3 * k + 1;
        for (int j = 0; j < 4; j++) {
            vals[4 * k + j] = (float)k + (float)j / 8.0f;
        }
    }
    ps_seg seg = {.table = 0, .nkeys = N, .slots = slots, .values = vals, .nvalues = 4 * N};
    ps_push p = {.clock = 1, .worker = 0, .nsegs = 1, .segs = &seg}, out;
    ps_codec *c = NULL;
    ps_bytes b = {0};
    assert_int_equal(ps_codec_create(&c), 0);
    long counts[3];
    for (int round = 0; round < 3; round++) {
        ps_test_fail_alloc(LONG_MAX); /* count only */
        assert_int_equal(ps_codec_encode_push(c, &p, &b), 0);
        assert_int_equal(ps_codec_decode_push(c, &lim, 0, b.data, b.len, &out), 0);
        counts[round] = ps_test_nalloc;
        ps_test_fail_alloc(-1);
        assert_memory_equal(out.segs[0].slots, slots, N * sizeof *slots);
        assert_memory_equal(out.segs[0].values, vals, 4 * N * sizeof *vals);
    }
    /* The first decode spills over several arena chunks; the next reset
     * trades them for one big chunk, after which nothing is allocated. */
    assert_true(counts[0] > 2);
    assert_true(counts[1] <= 1);
    assert_int_equal(counts[2], 0);
    ps_free(b.data);
    ps_free(slots);
    ps_free(vals);
    ps_codec_destroy(&c);
}

static void test_codec_create_survives_oom(void **state)
{
    (void)state;
    for (long n = 0;; n++) {
        ps_codec *c = (ps_codec *)&n; /* must be reset on failure */
        ps_test_fail_alloc(n);
        int rc = ps_codec_create(&c);
        ps_test_fail_alloc(-1);
        if (rc == 0) {
            assert_non_null(c);
            ps_codec_destroy(&c);
            break;
        }
        assert_int_equal(rc, PS_ENOMEM);
        assert_null(c);
    }
}

static void test_codec_encode_survives_oom(void **state)
{
    (void)state;
    ps_push p;
    make_push(&p);
    long n;
    for (n = 0;; n++) {
        ps_codec *c = NULL;
        ps_bytes b = {0};
        assert_int_equal(ps_codec_create(&c), 0);
        ps_test_fail_alloc(n);
        int rc = ps_codec_encode_push(c, &p, &b);
        ps_test_fail_alloc(-1);
        ps_free(b.data);
        ps_codec_destroy(&c);
        if (rc == 0) {
            break;
        }
        assert_int_equal(rc, PS_ENOMEM);
    }
    assert_true(n >= 3); /* segments, pointers, deltas and the output grew */
}

static void test_codec_decode_survives_oom(void **state)
{
    (void)state;
    enum { N = 1500 };
    static const ps_msg_table t[2] = {{.width = 2, .slots = 10000}, {.width = 1, .slots = 10}};
    const ps_msg_limits lim = {.tables = t, .ntables = 2, .nworkers = 1};
    uint64_t slots[N], few[2] = {3, 4};
    float vals[2 * N];
    for (size_t k = 0; k < N; k++) {
        slots[k] = 2 * k;
        vals[2 * k] = vals[2 * k + 1] = (float)k;
    }
    ps_seg segs[2] = {{.table = 0, .nkeys = N, .slots = slots, .values = vals, .nvalues = 2 * N},
                      {.table = 1, .nkeys = 2, .slots = few, .values = vals, .nvalues = 2}};
    ps_push p = {.clock = 1, .worker = 0, .nsegs = 2, .segs = segs}, out;
    ps_codec *enc = NULL;
    ps_bytes b = {0};
    assert_int_equal(ps_codec_create(&enc), 0);
    assert_int_equal(ps_codec_encode_push(enc, &p, &b), 0);
    ps_codec_destroy(&enc);
    long n;
    quiet(1);
    for (n = 0;; n++) {
        ps_codec *c = NULL;
        assert_int_equal(ps_codec_create(&c), 0);
        ps_test_fail_alloc(n);
        int rc = ps_codec_decode_push(c, &lim, 0, b.data, b.len, &out);
        ps_test_fail_alloc(-1);
        if (rc == 0) {
            assert_int_equal(out.nsegs, 2);
            assert_memory_equal(out.segs[0].slots, slots, sizeof slots);
            ps_codec_destroy(&c);
            break;
        }
        assert_int_equal(rc, PS_ENOMEM);
        /* The codec recovers: the same message decodes once memory is back. */
        assert_int_equal(ps_codec_decode_push(c, &lim, 0, b.data, b.len, &out), 0);
        assert_memory_equal(out.segs[1].slots, few, sizeof few);
        ps_codec_destroy(&c);
    }
    quiet(0);
    assert_true(n >= 4);
    ps_free(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_destroy_accepts_null),
        cmocka_unit_test(test_codec_push_round_trips_several_tables),
        cmocka_unit_test(test_codec_payload_headers_and_run_hints),
        cmocka_unit_test(test_codec_push_round_trips_empty),
        cmocka_unit_test(test_codec_pull_round_trips),
        cmocka_unit_test(test_codec_pull_round_trips_empty_segments),
        cmocka_unit_test(test_codec_reply_round_trips_with_width),
        cmocka_unit_test(test_codec_ctrl_round_trips_every_kind),
        cmocka_unit_test(test_codec_push_bytes_match_proto_wire_format),
        cmocka_unit_test(test_codec_accepts_hand_built_push),
        cmocka_unit_test(test_codec_gapless_slots_travel_as_a_run),
        cmocka_unit_test(test_codec_rejects_bad_runs),
        cmocka_unit_test(test_codec_rejects_duplicate_slot),
        cmocka_unit_test(test_codec_rejects_unsorted_slots),
        cmocka_unit_test(test_codec_rejects_slot_past_shard),
        cmocka_unit_test(test_codec_rejects_table_past_ntables),
        cmocka_unit_test(test_codec_rejects_duplicate_table),
        cmocka_unit_test(test_codec_rejects_value_count_mismatch),
        cmocka_unit_test(test_codec_rejects_missing_values_for_wide_table),
        cmocka_unit_test(test_codec_rejects_worker_past_nworkers),
        cmocka_unit_test(test_codec_rejects_negative_clock),
        cmocka_unit_test(test_codec_rejects_unknown_ctrl_kind),
        cmocka_unit_test(test_codec_rejects_missing_limits),
        cmocka_unit_test(test_codec_encoder_rejects_unsorted_slots),
        cmocka_unit_test(test_codec_truncated_bytes_never_crash),
        cmocka_unit_test(test_codec_random_garbage_never_crashes),
        cmocka_unit_test(test_codec_delta_encoding_costs_at_most_two_bytes_per_key),
        cmocka_unit_test(test_codec_steady_state_allocates_nothing),
        cmocka_unit_test(test_codec_create_survives_oom),
        cmocka_unit_test(test_codec_encode_survives_oom),
        cmocka_unit_test(test_codec_decode_survives_oom),
    };
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
