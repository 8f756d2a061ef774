/* Tests for server/store: initial values independent of the layout, dense
 * versus lazy steps against server/optim's functions (and, for the one case
 * the paper spells out, against Adam's formula in double), accumulation in
 * call order, temporal-average reads, the finite check, and the OOM paths.
 * Pushes are built by hand (codec-free). Comparisons with ps_opt_step* are
 * bit-exact (same float operations in the same order); comparisons with
 * formulas evaluated in double state their tolerance. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/mem.h"
#include "server/store.h"
#include "tests/unit/ps_test.h"

#define SEED 1234

/* A weight table with more rows than servers and a 1-row bias table, so a
 * 3-server layout has servers that hold no row of the bias. */
static const ps_table_desc two_tables[2] = {
    {"w", 10, 3, PS_INIT_GLOROT, 0.5f},
    {"b", 1, 4, PS_INIT_NORMAL, 0.1f},
};
static const ps_table_desc small_table[1] = {{"w", 6, 2, PS_INIT_GLOROT, 0.5f}};

static ps_store_cfg make_cfg(const ps_table_desc *t, uint32_t nt, uint32_t server,
                             uint32_t nservers, ps_shard_mode mode, ps_opt_kind kind, int lazy,
                             float avg_beta)
{
    ps_store_cfg c;
    memset(&c, 0, sizeof c);
    c.tables = t;
    c.ntables = nt;
    c.server = server;
    c.nservers = nservers;
    c.shard = mode;
    ps_opt_defaults(&c.hp, kind);
    c.lazy = lazy;
    c.avg_beta = avg_beta;
    c.seed = SEED;
    return c;
}

static ps_store *make_store(const ps_store_cfg *c)
{
    ps_store *s = NULL;
    assert_int_equal(ps_store_create(&s, c), 0);
    assert_non_null(s);
    return s;
}

/* Copies of one table's arrays, to compare before and after. */
typedef struct {
    size_t n, nslots;
    float *w, *st[3];
    double *avg;
    int64_t *last;
    int nstate;
} snap;

static void snap_take(ps_store *s, uint32_t table, snap *out)
{
    ps_store_arrays a;
    ps_store_arrays_get(s, table, &a);
    memset(out, 0, sizeof *out);
    out->nslots = a.nslots;
    out->n = (size_t)a.nslots * a.width;
    out->nstate = a.nstate;
    out->w = test_malloc(out->n * sizeof(float) + 1);
    memcpy(out->w, a.w, out->n * sizeof(float));
    for (int k = 0; k < a.nstate; k++) {
        out->st[k] = test_malloc(out->n * sizeof(float) + 1);
        memcpy(out->st[k], a.state[k], out->n * sizeof(float));
    }
    if (a.avg) {
        out->avg = test_malloc(out->n * sizeof(double) + 1);
        memcpy(out->avg, a.avg, out->n * sizeof(double));
    }
    out->last = test_malloc(a.nslots * sizeof(int64_t) + 1);
    memcpy(out->last, a.last_step, a.nslots * sizeof(int64_t));
}

static void snap_free(snap *sn)
{
    test_free(sn->w);
    for (int k = 0; k < sn->nstate; k++) {
        test_free(sn->st[k]);
    }
    if (sn->avg) {
        test_free(sn->avg);
    }
    test_free(sn->last);
}

/* Bit-for-bit equality of the store's table with a snapshot. */
static void assert_same_as_snap(ps_store *s, uint32_t table, const snap *sn)
{
    ps_store_arrays a;
    ps_store_arrays_get(s, table, &a);
    assert_memory_equal(a.w, sn->w, sn->n * sizeof(float));
    for (int k = 0; k < sn->nstate; k++) {
        assert_memory_equal(a.state[k], sn->st[k], sn->n * sizeof(float));
    }
    if (sn->avg) {
        assert_memory_equal(a.avg, sn->avg, sn->n * sizeof(double));
    }
    assert_memory_equal(a.last_step, sn->last, sn->nslots * sizeof(int64_t));
}

static void push1(ps_store *s, uint32_t table, const uint64_t *slots, size_t nkeys,
                  const float *values, size_t width, float scale)
{
    ps_seg g = {
        .table = table, .nkeys = nkeys, .slots = slots, .values = values, .nvalues = nkeys * width};
    ps_push p = {.clock = 0, .worker = 0, .nsegs = 1, .segs = &g};
    assert_int_equal(ps_store_check_finite(s, &p), 0);
    ps_store_accumulate(s, &p, scale);
}

/* --- create --------------------------------------------------------------- */

/* Every row of a 1-server store equals ps_table_init_row for its key, and
 * the 3 shards of a 3-server store together hold each key exactly once with
 * the same values. State, last step and the step counter start at zero. */
static void test_store_create_init_is_independent_of_layout(void **state)
{
    (void)state;
    for (int mode = PS_SHARD_RANGE; mode <= PS_SHARD_HASH; mode++) {
        ps_store_cfg c1 = make_cfg(two_tables, 2, 0, 1, (ps_shard_mode)mode, PS_OPT_ADAM, 0, 0);
        ps_store *one = make_store(&c1);
        assert_int_equal(ps_store_ntables(one), 2);
        assert_int_equal(ps_store_step(one), 0);
        for (uint32_t t = 0; t < 2; t++) {
            ps_store_arrays a;
            ps_store_arrays_get(one, t, &a);
            assert_int_equal(a.nslots, two_tables[t].rows);
            assert_int_equal(a.width, two_tables[t].width);
            assert_int_equal(ps_store_limits(one)[t].width, two_tables[t].width);
            assert_int_equal(ps_store_limits(one)[t].slots, two_tables[t].rows);
            float expect[4];
            int nonzero = 0;
            for (uint64_t key = 0; key < two_tables[t].rows; key++) {
                uint64_t slot = ps_shard_slot(ps_store_shard(one, t), key);
                ps_table_init_row(&two_tables[t], SEED, t, key, expect);
                assert_memory_equal(a.w + slot * a.width, expect, a.width * sizeof(float));
                for (uint32_t j = 0; j < a.width; j++) {
                    nonzero += expect[j] != 0.0f;
                    assert_true(a.state[0][slot * a.width + j] == 0.0f);
                    assert_true(a.state[1][slot * a.width + j] == 0.0f);
                }
                assert_int_equal(a.last_step[slot], 0);
            }
            assert_true(nonzero > 0); /* the init is not trivially zero */
        }
        unsigned char seen[2][10];
        memset(seen, 0, sizeof seen);
        for (uint32_t server = 0; server < 3; server++) {
            ps_store_cfg c3 =
                make_cfg(two_tables, 2, server, 3, (ps_shard_mode)mode, PS_OPT_ADAM, 1, 0.9f);
            ps_store *s3 = make_store(&c3);
            assert_int_equal(ps_store_server(s3), server);
            for (uint32_t t = 0; t < 2; t++) {
                ps_store_arrays a3, a1;
                ps_store_arrays_get(s3, t, &a3);
                ps_store_arrays_get(one, t, &a1);
                assert_int_equal(ps_store_limits(s3)[t].slots, a3.nslots);
                for (uint64_t slot = 0; slot < a3.nslots; slot++) {
                    uint64_t key = ps_shard_key(ps_store_shard(s3, t), server, slot);
                    assert_true(key < two_tables[t].rows);
                    seen[t][key]++;
                    uint64_t s1 = ps_shard_slot(ps_store_shard(one, t), key);
                    assert_memory_equal(a3.w + slot * a3.width, a1.w + s1 * a1.width,
                                        a3.width * sizeof(float));
                }
            }
            ps_store_destroy(&s3);
            assert_null(s3);
        }
        for (uint32_t t = 0; t < 2; t++) {
            for (uint64_t key = 0; key < two_tables[t].rows; key++) {
                assert_int_equal(seen[t][key], 1);
            }
        }
        ps_store_destroy(&one);
    }
    ps_store_destroy(NULL);
}

static void test_store_create_rejects_empty_table(void **state)
{
    (void)state;
    ps_table_desc bad[2] = {two_tables[0], {"e", 0, 3, PS_INIT_ZEROS, 0}};
    ps_store_cfg c = make_cfg(bad, 2, 0, 1, PS_SHARD_RANGE, PS_OPT_ADAM, 1, 0.9f);
    ps_store *s = NULL;
    assert_int_equal(ps_store_create(&s, &c), PS_EINVAL);
    assert_null(s);
    bad[1].rows = 5;
    bad[1].width = 0;
    assert_int_equal(ps_store_create(&s, &c), PS_EINVAL);
    assert_null(s);
}

/* Fails each allocation of the biggest configuration in turn (lazy scratch,
 * averaging, two state arrays, two tables): PS_ENOMEM, no store, no leak. */
static void test_store_create_survives_oom_sweep(void **state)
{
    (void)state;
    ps_store_cfg c = make_cfg(two_tables, 2, 1, 3, PS_SHARD_HASH, PS_OPT_AMSGRAD, 1, 0.9f);
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; n < 1000; n++) {
        ps_store *s = NULL;
        ps_test_fail_alloc(n);
        rc = ps_store_create(&s, &c);
        ps_test_fail_alloc(-1);
        if (rc == 0) {
            assert_non_null(s);
            ps_store_destroy(&s);
            break;
        }
        assert_int_equal(rc, PS_ENOMEM);
        assert_null(s);
    }
    assert_int_equal(rc, 0);
    assert_true(n >= 10); /* store, tables, limits, then per table w, grad, ... */
}

/* --- apply: dense and lazy ------------------------------------------------ */

static const uint64_t rows14[2] = {1, 4};
static const float g14[4] = {0.5f, -1.0f, 2.0f, 0.25f}; /* rows 1 and 4, width 2 */
static const uint64_t rows1[1] = {1};
static const float g1b[2] = {-0.3f, 0.7f};

/* Dense Adam: every row steps. Row 4 is pushed at step 1 only; at step 2 its
 * g is 0 but m != 0, so it still moves, by exactly ps_opt_step and, in
 * double, by Alg. 1: m = b1 m1, v = b2 v1, w -= a m^ / (sqrt(v^) + eps)
 * (tolerance 1e-6 absolute on w of magnitude < 1). */
static void test_store_dense_steps_every_row(void **state)
{
    (void)state;
    ps_store_cfg c = make_cfg(small_table, 1, 0, 1, PS_SHARD_RANGE, PS_OPT_ADAM, 0, 0);
    c.hp.lr = 0.1f;
    ps_store *s = make_store(&c);
    snap s0;
    snap_take(s, 0, &s0);
    float rw[12], rm[12] = {0}, rv[12] = {0}, g[12] = {0};
    float *rst[3] = {rm, rv, NULL};
    memcpy(rw, s0.w, sizeof rw);

    push1(s, 0, rows14, 2, g14, 2, 1.0f);
    assert_int_equal(ps_store_apply(s, 1), 0);
    memcpy(g + 2, g14, 2 * sizeof(float));
    memcpy(g + 8, g14 + 2, 2 * sizeof(float));
    ps_opt_step(&c.hp, rw, rst, g, 12, 1);
    ps_store_arrays a;
    ps_store_arrays_get(s, 0, &a);
    assert_memory_equal(a.w, rw, sizeof rw);
    assert_memory_equal(a.state[0], rm, sizeof rm);
    assert_memory_equal(a.state[1], rv, sizeof rv);
    float w1[12];
    memcpy(w1, a.w, sizeof w1);

    push1(s, 0, rows1, 1, g1b, 2, 1.0f);
    assert_int_equal(ps_store_apply(s, 2), 0);
    assert_int_equal(ps_store_step(s), 2);
    memset(g, 0, sizeof g);
    memcpy(g + 2, g1b, 2 * sizeof(float));
    ps_opt_step(&c.hp, rw, rst, g, 12, 2);
    assert_memory_equal(a.w, rw, sizeof rw);
    assert_memory_equal(a.state[0], rm, sizeof rm);
    assert_memory_equal(a.state[1], rv, sizeof rv);
    for (int j = 0; j < 2; j++) {
        double b1 = c.hp.beta1, b2 = c.hp.beta2, g0 = g14[2 + j];
        double m = b1 * (1 - b1) * g0, v = b2 * (1 - b2) * g0 * g0;
        double expect =
            w1[8 + j] - c.hp.lr * (m / (1 - b1 * b1)) / (sqrt(v / (1 - b2 * b2)) + c.hp.eps);
        assert_true(a.w[8 + j] != w1[8 + j]);
        assert_true(fabs(a.w[8 + j] - expect) < 1e-6);
    }
    /* Rows never pushed have m = v = 0, so Adam leaves them exactly put. */
    const int never[4] = {0, 2, 3, 5};
    for (int i = 0; i < 4; i++) {
        assert_memory_equal(a.w + never[i] * 2, s0.w + never[i] * 2, 2 * sizeof(float));
    }
    /* Without averaging, its one reader, last_step is not kept. */
    ps_store_arrays_get(s, 0, &a);
    for (int r = 0; r < 6; r++) {
        assert_int_equal(a.last_step[r], 0);
    }
    snap_free(&s0);
    ps_store_destroy(&s);
}

/* last_step is the temporal average's bookkeeping: the rows' last steps
 * with averaging, all 0 without. */
static void assert_last_steps(const int64_t *got, const int64_t *expect, size_t n, int averaging)
{
    for (size_t r = 0; r < n; r++) {
        assert_int_equal(got[r], averaging ? expect[r] : 0);
    }
}

/* Lazy Adam, with averaging off and on: untouched rows (w, m, v, last
 * step) stay bit-identical; touched rows equal ps_opt_step_rows on them with
 * the global step. Step 3 touches
 * row 5 before row 0 and row 5 twice: rows step once, in any order. */
static void lazy_steps_only_touched_rows(float avg_beta)
{
    ps_store_cfg c = make_cfg(small_table, 1, 0, 1, PS_SHARD_RANGE, PS_OPT_ADAM, 1, avg_beta);
    c.hp.lr = 0.1f;
    ps_store *s = make_store(&c);
    float rw[12], rm[12] = {0}, rv[12] = {0};
    float *rst[3] = {rm, rv, NULL};
    ps_store_arrays a;
    ps_store_arrays_get(s, 0, &a);
    memcpy(rw, a.w, sizeof rw);

    push1(s, 0, rows14, 2, g14, 2, 1.0f);
    assert_int_equal(ps_store_apply(s, 1), 0);
    ps_opt_step_rows(&c.hp, rw, rst, g14, 2, rows14, 2, 1);
    assert_memory_equal(a.w, rw, sizeof rw);
    assert_memory_equal(a.state[0], rm, sizeof rm);
    assert_memory_equal(a.state[1], rv, sizeof rv);
    const int64_t last1[6] = {0, 1, 0, 0, 1, 0};
    assert_last_steps(a.last_step, last1, 6, avg_beta > 0);

    snap s1;
    snap_take(s, 0, &s1);
    push1(s, 0, rows1, 1, g1b, 2, 1.0f);
    assert_int_equal(ps_store_apply(s, 2), 0);
    ps_opt_step_rows(&c.hp, rw, rst, g1b, 2, rows1, 1, 2);
    assert_memory_equal(a.w, rw, sizeof rw);
    assert_memory_equal(a.state[0], rm, sizeof rm);
    assert_memory_equal(a.state[1], rv, sizeof rv);
    /* Row 4 kept its w, m and v from step 1, unlike in dense mode. */
    assert_memory_equal(a.w + 8, s1.w + 8, 2 * sizeof(float));
    assert_memory_equal(a.state[0] + 8, s1.st[0] + 8, 2 * sizeof(float));
    const int64_t last2[6] = {0, 2, 0, 0, 1, 0};
    assert_last_steps(a.last_step, last2, 6, avg_beta > 0);

    const uint64_t r5[1] = {5}, r05[2] = {0, 5};
    const float ga[2] = {1.0f, -2.0f}, gb[4] = {0.25f, 0.5f, 3.0f, 4.0f};
    push1(s, 0, r5, 1, ga, 2, 0.5f);
    push1(s, 0, r05, 2, gb, 2, 0.5f);
    assert_int_equal(ps_store_apply(s, 3), 0);
    float gsum[4];
    for (int j = 0; j < 2; j++) {
        gsum[j] = 0.0f + 0.5f * gb[j];
        gsum[2 + j] = (0.0f + 0.5f * ga[j]) + 0.5f * gb[2 + j];
    }
    ps_opt_step_rows(&c.hp, rw, rst, gsum, 2, r05, 2, 3);
    assert_memory_equal(a.w, rw, sizeof rw);
    assert_memory_equal(a.state[0], rm, sizeof rm);
    assert_memory_equal(a.state[1], rv, sizeof rv);
    const int64_t last3[6] = {3, 2, 0, 0, 1, 3};
    assert_last_steps(a.last_step, last3, 6, avg_beta > 0);
    snap_free(&s1);
    ps_store_destroy(&s);
}

static void test_store_lazy_steps_only_touched_rows(void **state)
{
    (void)state;
    lazy_steps_only_touched_rows(0.0f);
    lazy_steps_only_touched_rows(0.9f);
}

/* --- accumulate ----------------------------------------------------------- */

/* SGD with lr 1 from zeros makes w = -g exactly, so w shows the gradient.
 * 1e8, -1e8 and 1 scaled by 1/3 sum to 1/3 in this order and to 0 with the 1
 * first: the store must add in call order. */
static void test_store_accumulate_sums_in_call_order_with_scale(void **state)
{
    (void)state;
    static const ps_table_desc z[1] = {{"z", 3, 1, PS_INIT_ZEROS, 0}};
    const float vals[3] = {1e8f, -1e8f, 1.0f};
    const float scale = 1.0f / 3.0f;
    volatile float fwd = 0.0f, rev = 0.0f;
    for (int i = 0; i < 3; i++) {
        fwd += scale * vals[i];
    }
    rev += scale * vals[2];
    rev += scale * vals[0];
    rev += scale * vals[1];
    assert_true(fwd != rev); /* the order is observable */
    assert_true(fwd == scale);

    const int order[2][3] = {{0, 1, 2}, {2, 0, 1}};
    const float expect[2] = {-fwd, -rev};
    for (int o = 0; o < 2; o++) {
        for (int lazy = 0; lazy <= 1; lazy++) {
            ps_store_cfg c = make_cfg(z, 1, 0, 1, PS_SHARD_RANGE, PS_OPT_SGD, lazy, 0);
            c.hp.lr = 1.0f;
            ps_store *s = make_store(&c);
            const uint64_t slot1[1] = {1}, slot2[1] = {2};
            for (int i = 0; i < 3; i++) {
                push1(s, 0, slot1, 1, &vals[order[o][i]], 1, scale);
            }
            const float four = 4.0f;
            push1(s, 0, slot2, 1, &four, 1, 0.25f);
            assert_int_equal(ps_store_apply(s, 1), 0);
            ps_store_arrays a;
            ps_store_arrays_get(s, 0, &a);
            assert_true(a.w[0] == 0.0f);
            assert_true(a.w[1] == expect[o]);
            assert_true(a.w[2] == -1.0f);
            ps_store_destroy(&s);
        }
    }
}

/* The pending gradient is cleared by apply: a second apply with no push
 * leaves SGD's w (dense) and every lazy array unchanged. */
static void test_store_apply_clears_pending_gradient(void **state)
{
    (void)state;
    ps_store_cfg c = make_cfg(small_table, 1, 0, 1, PS_SHARD_RANGE, PS_OPT_SGD, 0, 0);
    ps_store *s = make_store(&c);
    push1(s, 0, rows14, 2, g14, 2, 1.0f);
    assert_int_equal(ps_store_apply(s, 1), 0);
    snap sn;
    snap_take(s, 0, &sn);
    assert_int_equal(ps_store_apply(s, 2), 0);
    ps_store_arrays a;
    ps_store_arrays_get(s, 0, &a);
    assert_memory_equal(a.w, sn.w, sn.n * sizeof(float));
    snap_free(&sn);
    ps_store_destroy(&s);

    c = make_cfg(two_tables, 2, 0, 1, PS_SHARD_HASH, PS_OPT_ADAM, 1, 0.9f);
    s = make_store(&c);
    const uint64_t r3[1] = {3};
    const float g3[3] = {1, 2, 3};
    push1(s, 0, r3, 1, g3, 3, 1.0f);
    assert_int_equal(ps_store_apply(s, 1), 0);
    snap t0, t1;
    snap_take(s, 0, &t0);
    snap_take(s, 1, &t1);
    assert_int_equal(ps_store_apply(s, 2), 0);
    assert_int_equal(ps_store_step(s), 2);
    assert_same_as_snap(s, 0, &t0);
    assert_same_as_snap(s, 1, &t1);
    snap_free(&t0);
    snap_free(&t1);
    ps_store_destroy(&s);
}

/* The lazy scratch grows inside apply; when that fails nothing is applied
 * (arrays and step unchanged, gradient still pending), and the retry gives
 * what one clean apply gives. Afterwards the scratch is big enough. */
static void test_store_lazy_apply_oom_applies_nothing(void **state)
{
    (void)state;
    ps_store_cfg c = make_cfg(two_tables, 2, 0, 1, PS_SHARD_RANGE, PS_OPT_ADAM, 1, 0.9f);
    ps_store *s = make_store(&c);
    const uint64_t r[3] = {2, 7, 9}, r0[1] = {0};
    const float gw[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, gbias[4] = {-1, -2, 0.5f, 0};
    push1(s, 0, r, 3, gw, 3, 1.0f);
    push1(s, 1, r0, 1, gbias, 4, 1.0f);
    snap t0, t1;
    snap_take(s, 0, &t0);
    snap_take(s, 1, &t1);
    ps_test_fail_alloc(0);
    assert_int_equal(ps_store_apply(s, 1), PS_ENOMEM);
    ps_test_fail_alloc(-1);
    assert_int_equal(ps_store_step(s), 0);
    assert_same_as_snap(s, 0, &t0);
    assert_same_as_snap(s, 1, &t1);

    assert_int_equal(ps_store_apply(s, 1), 0);
    float *st0[3] = {t0.st[0], t0.st[1], NULL}, *st1[3] = {t1.st[0], t1.st[1], NULL};
    ps_opt_step_rows(&c.hp, t0.w, st0, gw, 3, r, 3, 1);
    ps_opt_step_rows(&c.hp, t1.w, st1, gbias, 4, r0, 1, 1);
    ps_store_arrays a;
    ps_store_arrays_get(s, 0, &a);
    assert_memory_equal(a.w, t0.w, t0.n * sizeof(float));
    assert_memory_equal(a.state[1], t0.st[1], t0.n * sizeof(float));
    ps_store_arrays_get(s, 1, &a);
    assert_memory_equal(a.w, t1.w, t1.n * sizeof(float));

    /* Fewer rows than the high-water mark: no allocation needed. */
    push1(s, 0, r0, 1, gw, 3, 1.0f);
    ps_test_fail_alloc(0);
    assert_int_equal(ps_store_apply(s, 2), 0);
    ps_test_fail_alloc(-1);
    snap_free(&t0);
    snap_free(&t1);
    ps_store_destroy(&s);
}

/* --- read ----------------------------------------------------------------- */

static void test_store_read_copies_rows(void **state)
{
    (void)state;
    ps_store_cfg c = make_cfg(two_tables, 2, 0, 1, PS_SHARD_RANGE, PS_OPT_ADAM, 0, 0);
    ps_store *s = make_store(&c);
    const uint64_t slots[3] = {9, 0, 4};
    float out[9], expect[3];
    for (int averaged = 0; averaged <= 1; averaged++) { /* averaging off: w */
        memset(out, 0, sizeof out);
        ps_store_read(s, 0, slots, 3, averaged, out);
        for (int i = 0; i < 3; i++) {
            ps_table_init_row(&two_tables[0], SEED, 0, slots[i], expect);
            assert_memory_equal(out + 3 * i, expect, sizeof expect);
        }
    }
    ps_store_destroy(&s);
}

/* Temporal averaging with beta 0.9 under SGD (lr 1): before any step the
 * averaged read is w itself; after two steps it is
 * (0.9 * 0.1 w1 + 0.1 w2) / (1 - 0.9^2), evaluated here in double
 * (tolerance 1e-6 relative). */
static void test_store_read_averaged_is_bias_corrected(void **state)
{
    (void)state;
    ps_store_cfg c = make_cfg(small_table, 1, 0, 1, PS_SHARD_RANGE, PS_OPT_SGD, 0, 0.9f);
    c.hp.lr = 1.0f;
    ps_store *s = make_store(&c);
    const uint64_t all[6] = {0, 1, 2, 3, 4, 5};
    float w0[12], out[12], w1[12], w2[12], ga[12], gb[12];
    ps_store_read(s, 0, all, 6, 0, w0);
    ps_store_read(s, 0, all, 6, 1, out);
    assert_memory_equal(out, w0, sizeof w0);
    for (int i = 0; i < 12; i++) {
        ga[i] = 0.05f * (float)(i - 6);
        gb[i] = 0.1f * (float)(i % 5) - 0.2f;
        w1[i] = w0[i] - ga[i];
        w2[i] = w1[i] - gb[i];
    }
    push1(s, 0, all, 6, ga, 2, 1.0f);
    assert_int_equal(ps_store_apply(s, 1), 0);
    push1(s, 0, all, 6, gb, 2, 1.0f);
    assert_int_equal(ps_store_apply(s, 2), 0);
    ps_store_read(s, 0, all, 6, 0, out);
    assert_memory_equal(out, w2, sizeof w2);
    ps_store_read(s, 0, all, 6, 1, out);
    for (int i = 0; i < 12; i++) {
        double avg = 0.9 * (0.1 * (double)w1[i]) + 0.1 * (double)w2[i];
        double expect = avg / (1.0 - 0.81);
        assert_true(fabs(out[i] - expect) <= 1e-6 * fabs(expect) + 1e-7);
    }
    /* Only the rows asked for, in the order asked. */
    const uint64_t two[2] = {5, 2};
    float part[4];
    ps_store_read(s, 0, two, 2, 1, part);
    assert_memory_equal(part, out + 10, 2 * sizeof(float));
    assert_memory_equal(part + 2, out + 4, 2 * sizeof(float));
    ps_store_destroy(&s);
}

/* SGD moves only pushed rows in either mode, so dense and lazy stores hold
 * the same w after the same pushes, and their averaged reads must agree:
 * a parameter that did not change since step L averages as if it had been
 * averaged (unchanged) at every step. In particular a row never pushed
 * reads as its initial value. Tolerance 1e-5 relative. */
static void test_store_lazy_average_matches_dense(void **state)
{
    (void)state;
    ps_store *st[2];
    for (int lazy = 0; lazy <= 1; lazy++) {
        ps_store_cfg c = make_cfg(small_table, 1, 0, 1, PS_SHARD_RANGE, PS_OPT_SGD, lazy, 0.9f);
        c.hp.lr = 1.0f;
        st[lazy] = make_store(&c);
    }
    const uint64_t r0[1] = {0}, r1[1] = {1}, r3[1] = {3};
    const float g[2] = {0.5f, -0.25f};
    for (int t = 1; t <= 5; t++) {
        for (int k = 0; k < 2; k++) {
            push1(st[k], 0, t <= 2 ? r0 : (t == 3 ? r1 : r3), 1, g, 2, 1.0f);
            assert_int_equal(ps_store_apply(st[k], t), 0);
        }
        const uint64_t all[6] = {0, 1, 2, 3, 4, 5};
        float d[12], l[12], w[12];
        ps_store_read(st[0], 0, all, 6, 0, w);
        ps_store_read(st[1], 0, all, 6, 0, l);
        assert_memory_equal(w, l, sizeof w);
        ps_store_read(st[0], 0, all, 6, 1, d);
        ps_store_read(st[1], 0, all, 6, 1, l);
        for (int i = 0; i < 12; i++) {
            assert_true(fabs(d[i] - l[i]) <= 1e-5 * fabs(d[i]) + 1e-7);
        }
        /* Row 5 is never pushed: its average is its initial value. */
        assert_true(fabs(l[10] - w[10]) <= 1e-5 * fabs(w[10]));
    }
    ps_store_destroy(&st[0]);
    ps_store_destroy(&st[1]);
}

/* --- check_finite --------------------------------------------------------- */

static void test_store_check_finite_rejects_nan_and_inf(void **state)
{
    (void)state;
    ps_store_cfg c = make_cfg(two_tables, 2, 0, 1, PS_SHARD_RANGE, PS_OPT_ADAM, 0, 0);
    ps_store *s = make_store(&c);
    const uint64_t r[2] = {1, 8}, r0[1] = {0};
    float vw[6] = {FLT_MAX, -FLT_MAX, -0.0f, 1e-45f, FLT_MIN, 3.0f};
    float vb[4] = {0, 1, 2, 3};
    ps_seg segs[2] = {{.table = 0, .nkeys = 2, .slots = r, .values = vw, .nvalues = 6},
                      {.table = 1, .nkeys = 1, .slots = r0, .values = vb, .nvalues = 4}};
    ps_push p = {.clock = 5, .worker = 2, .nsegs = 2, .segs = segs};
    assert_int_equal(ps_store_check_finite(s, &p), 0);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++) {
        vw[4] = bad[b];
        assert_int_equal(ps_store_check_finite(s, &p), PS_ENONFINITE);
        vw[4] = 1.0f;
        vb[3] = bad[b]; /* last value of the second segment */
        assert_int_equal(ps_store_check_finite(s, &p), PS_ENONFINITE);
        vb[3] = 3.0f;
        assert_int_equal(ps_store_check_finite(s, &p), 0);
    }
    /* A whole table, 30 floats: the scan's blocks of 8 and its tail, a bad
     * value at every position, -NaN (sign bit set) too. */
    uint64_t all[10];
    float v[30];
    for (int k = 0; k < 10; k++) {
        all[k] = (uint64_t)k;
    }
    for (int k = 0; k < 30; k++) {
        v[k] = k % 2 ? FLT_MAX : -1e-40f;
    }
    ps_seg whole = {.table = 0, .nkeys = 10, .slots = all, .values = v, .nvalues = 30};
    ps_push pw = {.clock = 5, .worker = 2, .nsegs = 1, .segs = &whole};
    assert_int_equal(ps_store_check_finite(s, &pw), 0);
    const float worse[4] = {NAN, -NAN, INFINITY, -INFINITY};
    for (int at = 0; at < 30; at++) {
        for (int b = 0; b < 4; b++) {
            float keep = v[at];
            v[at] = worse[b];
            assert_int_equal(ps_store_check_finite(s, &pw), PS_ENONFINITE);
            v[at] = keep;
        }
    }
    assert_int_equal(ps_store_check_finite(s, &pw), 0);
    ps_store_destroy(&s);
}

/* --- L2 and the step's scale ---------------------------------------------- */

/* The L2 term is the store's, once per row per step: with SGD at lr 1, a
 * row that two pushes (each scaled 1/2) touched steps by
 * scale * (g_a/2 + g_b/2) + l2 * w, the same as a row one push touched,
 * never twice the penalty. Lazy: only touched rows decay; dense: every row
 * of the weight table does (g = 0 plus l2 * w). The bias table is not in
 * l2_tables and never decays. Expected values use the same float
 * operations, so the comparison is exact. */
static void test_store_l2_once_per_row_per_step(void **state)
{
    (void)state;
    for (int lazy = 0; lazy <= 1; lazy++) {
        ps_store_cfg c = make_cfg(two_tables, 2, 0, 1, PS_SHARD_RANGE, PS_OPT_SGD, lazy, 0);
        c.hp.lr = 1.0f;
        c.l2 = 0.5f;
        c.l2_tables = 1; /* w, not b */
        ps_store *s = make_store(&c);
        snap w0, b0;
        snap_take(s, 0, &w0);
        snap_take(s, 1, &b0);
        const uint64_t ra[2] = {1, 4}, rb[1] = {1}, r0[1] = {0};
        const float ga[6] = {0.5f, -1.0f, 2.0f, 0.25f, 3.0f, -0.75f}, gb[3] = {4.0f, 1.5f, -2.0f};
        const float gbias[4] = {1, 2, 3, 4};
        push1(s, 0, ra, 2, ga, 3, 0.5f);
        push1(s, 0, rb, 1, gb, 3, 0.5f);
        push1(s, 1, r0, 1, gbias, 4, 1.0f);
        const float scale = 0.75f;
        assert_int_equal(ps_store_apply_scaled(s, 1, scale), 0);
        ps_store_arrays a;
        ps_store_arrays_get(s, 0, &a);
        for (uint64_t r = 0; r < 10; r++) {
            for (int j = 0; j < 3; j++) {
                float g = 0.0f;
                if (r == 1) {
                    g = (0.0f + 0.5f * ga[j]) + 0.5f * gb[j];
                } else if (r == 4) {
                    g = 0.0f + 0.5f * ga[3 + j];
                }
                float w = w0.w[r * 3 + j];
                float want = lazy && r != 1 && r != 4 ? w : w - 1.0f * (scale * g + 0.5f * w);
                assert_true(a.w[r * 3 + j] == want);
            }
        }
        ps_store_arrays_get(s, 1, &a);
        for (int j = 0; j < 4; j++) {
            assert_true(a.w[j] == b0.w[j] - 1.0f * (scale * gbias[j]));
        }
        snap_free(&w0);
        snap_free(&b0);
        ps_store_destroy(&s);
    }
}

/* A step that makes a weight infinite from finite gradients (SGD at lr
 * 3e38) is PS_ENONFINITE after the step, naming the table, key, column
 * and step, through every apply path: lazy (a few rows, every row, one
 * push straight) and dense. */
static void test_store_apply_reports_non_finite_weights(void **state)
{
    (void)state;
    const uint64_t r7[1] = {7}, all[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    float g[30];
    for (int i = 0; i < 30; i++) {
        g[i] = i == 22 ? 10.0f : 0.0f; /* key 7, column 1 */
    }
    for (int path = 0; path < 4; path++) {
        ps_store_cfg c = make_cfg(two_tables, 2, 0, 1, PS_SHARD_RANGE, PS_OPT_SGD, path != 3, 0);
        c.hp.lr = 3e38f;
        ps_store *s = make_store(&c);
        int rc;
        ps_test_capture cap;
        ps_test_capture_begin(&cap);
        if (path == 0) {
            push1(s, 0, r7, 1, g + 21, 3, 1.0f);
            rc = ps_store_apply(s, 1);
        } else if (path == 2) {
            ps_seg seg = {.table = 0, .nkeys = 1, .slots = r7, .values = g + 21, .nvalues = 3};
            ps_push p = {.nsegs = 1, .segs = &seg};
            rc = ps_store_apply_push(s, &p, 1);
        } else {
            push1(s, 0, all, 10, g, 3, 1.0f);
            rc = ps_store_apply(s, 1);
        }
        char *log = ps_test_capture_end(&cap);
        assert_int_equal(rc, PS_ENONFINITE);
        assert_non_null(strstr(
            log, "non-finite weight -inf on server 0 after step 1: table w, key 7, column 1"));
        test_free(log);
        assert_int_equal(ps_store_step(s), 1);
        ps_store_destroy(&s);
    }
}

/* p as step t through ps_store_push_begin/part/end, in parts of `rows`
 * rows, the segments last first (parts may come in any order). */
static int apply_in_parts(ps_store *s, const ps_push *p, int64_t t, size_t rows)
{
    int rc = ps_store_push_begin(s, p, t);
    for (size_t i = p->nsegs; rc == 0 && i-- > 0;) {
        for (size_t r0 = 0; rc == 0 && r0 < p->segs[i].nkeys; r0 += rows) {
            size_t r1 = r0 + rows < p->segs[i].nkeys ? r0 + rows : p->segs[i].nkeys;
            rc = ps_store_push_part(s, p, i, r0, r1);
        }
    }
    if (rc == 0) {
        ps_store_push_end(s);
    }
    return rc;
}

/* A push applied straight (ps_store_apply_push, and in parts) is not
 * checked first: the weight check after the step blames the gradient,
 * which holds only because every rule turns a non-finite gradient into a
 * non-finite weight in its own lane. So, for every rule, NaN, -NaN, +inf
 * and -inf at every position of a gapless push (the span pass) and of a
 * scattered one (row by row), with the L2 term on and off: PS_ENONFINITE
 * with the gradient's blame, naming its key and column, and the rows of
 * later parts untouched. */
static void test_store_apply_push_blames_a_nonfinite_gradient_for_every_rule(void **state)
{
    (void)state;
    const float bad[4] = {NAN, -NAN, INFINITY, -INFINITY};
    const uint64_t gapless[4] = {2, 3, 4, 5}, scattered[4] = {0, 3, 6, 9};
    for (int kind = 0; kind < PS_OPT_COUNT_; kind++) {
        for (int shape = 0; shape < 4; shape++) {
            ps_store_cfg c = make_cfg(two_tables, 2, 0, 1, PS_SHARD_RANGE, (ps_opt_kind)kind, 1, 0);
            if (shape & 2) {
                c.l2 = 0.01f;
                c.l2_tables = 1;
            }
            const uint64_t *rows = shape & 1 ? scattered : gapless;
            for (int at = 0; at < 12; at++) {
                for (int b = 0; b < 4; b++) {
                    ps_store *s = make_store(&c);
                    snap before;
                    snap_take(s, 0, &before);
                    float g[12];
                    for (int k = 0; k < 12; k++) {
                        g[k] = 0.5f - 0.125f * (float)k;
                    }
                    g[at] = bad[b];
                    ps_seg seg = {
                        .table = 0, .nkeys = 4, .slots = rows, .values = g, .nvalues = 12};
                    ps_push p = {.clock = 3, .worker = 1, .nsegs = 1, .segs = &seg};
                    char want[128];
                    snprintf(want, sizeof want,
                             "from worker 1: table w, key %llu, column %d, clock 3",
                             (unsigned long long)rows[at / 3], at % 3);
                    ps_test_capture cap;
                    ps_test_capture_begin(&cap);
                    int rc = apply_in_parts(s, &p, 1, 1);
                    char *log = ps_test_capture_end(&cap);
                    assert_int_equal(rc, PS_ENONFINITE);
                    assert_non_null(strstr(log, "non-finite gradient"));
                    assert_non_null(strstr(log, want));
                    test_free(log);
                    /* Parts of one row, in order: the apply stops at the
                     * bad row's part, so the rows after it are untouched. */
                    ps_store_arrays a;
                    ps_store_arrays_get(s, 0, &a);
                    for (int r = at / 3 + 1; r < 4; r++) {
                        assert_memory_equal(a.w + rows[r] * 3, before.w + rows[r] * 3,
                                            3 * sizeof(float));
                    }
                    snap_free(&before);
                    ps_store_destroy(&s);
                    if (b == 0) {
                        s = make_store(&c);
                        ps_test_capture_begin(&cap);
                        rc = ps_store_apply_push(s, &p, 1);
                        log = ps_test_capture_end(&cap);
                        assert_int_equal(rc, PS_ENONFINITE);
                        assert_non_null(strstr(log, want));
                        test_free(log);
                        ps_store_destroy(&s);
                    }
                }
            }
        }
    }
}

/* ps_store_apply_push must equal accumulate(scale 1) + apply bit for bit,
 * for partial pushes (lazy rows), a push of every row (the dense fast path)
 * and with temporal averaging and the L2 term, over several steps; and so
 * must the same push applied in parts of 1 and 4 rows. */
static void test_store_apply_push_equals_accumulate_apply(void **state)
{
    (void)state;
    static const ps_opt_kind kinds[3] = {PS_OPT_ADAM, PS_OPT_AMSGRAD, PS_OPT_ADAGRAD};
    for (int k = 0; k < 3; k++) {
        ps_store_cfg c = make_cfg(two_tables, 2, 0, 1, PS_SHARD_RANGE, kinds[k], 1, 0.9f);
        if (k != 1) { /* the L2 term too: apply_push adds it to a copy */
            c.l2 = 0.01f;
            c.l2_tables = 1;
        }
        ps_store *a = make_store(&c), *b = make_store(&c);
        ps_store *parts[2] = {make_store(&c), make_store(&c)};
        uint64_t some[3] = {1, 4, 9}, all[10], bias[1] = {0};
        float g[30], gb[4];
        for (int i = 0; i < 10; i++) {
            all[i] = (uint64_t)i;
        }
        for (int step = 1; step <= 5; step++) {
            for (int i = 0; i < 30; i++) {
                g[i] = (float)((i * 7 + step * 3) % 11) - 5.0f;
            }
            for (int i = 0; i < 4; i++) {
                gb[i] = 0.25f * (float)(i - step);
            }
            /* Odd steps push three rows, even steps every row; the bias
             * table only on steps 2 and 5. */
            int full = step % 2 == 0;
            ps_seg segs[2] = {
                {.table = 0,
                 .nkeys = full ? 10 : 3,
                 .slots = full ? all : some,
                 .values = g,
                 .nvalues = full ? 30 : 9},
                {.table = 1, .nkeys = 1, .slots = bias, .values = gb, .nvalues = 4},
            };
            ps_push p = {
                .clock = step - 1, .nsegs = (step == 2 || step == 5) ? 2 : 1, .segs = segs};
            ps_store_accumulate(a, &p, 1.0f);
            assert_int_equal(ps_store_apply(a, step), 0);
            assert_int_equal(ps_store_apply_push(b, &p, step), 0);
            assert_int_equal(ps_store_step(b), step);
            for (int j = 0; j < 2; j++) {
                assert_int_equal(apply_in_parts(parts[j], &p, step, j ? 4 : 1), 0);
                assert_int_equal(ps_store_step(parts[j]), step);
            }
        }
        for (uint32_t t = 0; t < 2; t++) {
            snap sn;
            snap_take(a, t, &sn);
            assert_same_as_snap(b, t, &sn);
            assert_same_as_snap(parts[0], t, &sn);
            assert_same_as_snap(parts[1], t, &sn);
            snap_free(&sn);
        }
        ps_store_destroy(&a);
        ps_store_destroy(&b);
        ps_store_destroy(&parts[0]);
        ps_store_destroy(&parts[1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_store_create_init_is_independent_of_layout),
        T(test_store_create_rejects_empty_table),
        T(test_store_create_survives_oom_sweep),
        T(test_store_dense_steps_every_row),
        T(test_store_lazy_steps_only_touched_rows),
        T(test_store_accumulate_sums_in_call_order_with_scale),
        T(test_store_apply_clears_pending_gradient),
        T(test_store_lazy_apply_oom_applies_nothing),
        T(test_store_read_copies_rows),
        T(test_store_read_averaged_is_bias_corrected),
        T(test_store_lazy_average_matches_dense),
        T(test_store_check_finite_rejects_nan_and_inf),
        T(test_store_l2_once_per_row_per_step),
        T(test_store_apply_reports_non_finite_weights),
        T(test_store_apply_push_equals_accumulate_apply),
        T(test_store_apply_push_blames_a_nonfinite_gradient_for_every_rule),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
