/* Tests for worker/model (the generic part) and worker/mlp: configuration
 * and tables, batch keys, gradients against central finite differences of
 * an independent double-precision reference (logreg and MLP, dense and
 * sparse, L2, dropout, every activation), dense/sparse
 * agreement, evaluation on a hand-made problem, and OOM sweeps. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/rng.h"
#include "worker/dropout.h"
#include "worker/model.h"
#include "tests/unit/ps_test.h"
#include "tests/unit/ps_test_model.h"

#define MAXN 8
#define MAXD 16
#define MAXT PS_TEST_MAXT

/* One batch held both ways: dense x and the same values as CSR. */
typedef struct {
    float x[MAXN * MAXD];
    uint64_t indptr[MAXN + 1];
    uint64_t idx[MAXN * MAXD];
    float val[MAXN * MAXD];
    int32_t y[MAXN];
    ps_batch dense, sparse;
} tbatch;

static void make_batch(tbatch *t, uint64_t seed, size_t n, uint32_t dim, uint32_t nclasses,
                       double density)
{
    ps_rng r;
    ps_rng_seed(&r, seed);
    memset(t, 0, sizeof *t);
    size_t nnz = 0;
    for (size_t i = 0; i < n; i++) {
        t->indptr[i] = nnz;
        /* Sample 1 is left empty: rows without features must work too. */
        for (uint32_t f = 0; f < dim && i != 1; f++) {
            if (ps_rng_uniform(&r) < density) {
                float v = (float)(ps_rng_uniform(&r) * 2.0 - 0.5);
                t->x[i * dim + f] = v;
                t->idx[nnz] = f;
                t->val[nnz++] = v;
            }
        }
        t->y[i] = (int32_t)ps_rng_below(&r, nclasses);
    }
    t->indptr[n] = nnz;
    t->dense = (ps_batch){n, dim, nclasses, 0, t->x, NULL, NULL, NULL, t->y};
    t->sparse = (ps_batch){n, dim, nclasses, 1, NULL, t->indptr, t->idx, t->val, t->y};
}

static ps_model_cfg mlp_cfg(uint32_t dim, uint32_t nclasses, int sparse, uint32_t nhidden,
                            float pin, float ph)
{
    ps_model_cfg c = {0};
    c.kind = PS_MODEL_MLP;
    c.in_dim = dim;
    c.nclasses = nclasses;
    c.sparse_input = sparse;
    c.nhidden = nhidden;
    c.hidden[0] = 5;
    c.hidden[1] = 4;
    c.hidden[2] = 3;
    c.dropout_input = pin;
    c.dropout_hidden = ph;
    c.init_override = -1;
    c.seed = 99;
    c.worker = 1;
    c.max_batch = MAXN;
    return c;
}

static ps_model_cfg logreg_cfg(uint32_t dim, uint32_t nclasses, int sparse, float l2)
{
    ps_model_cfg c = mlp_cfg(dim, nclasses, sparse, 0, 0.0f, 0.0f);
    c.kind = PS_MODEL_LOGREG;
    c.l2 = l2;
    return c;
}

/* ---- double-precision reference, written from the definitions ---- */

static long find_key(const ps_keylist *k, uint64_t key)
{
    for (size_t i = 0; i < k->n; i++) {
        if (k->keys[i] == key) {
            return (long)i;
        }
    }
    return -1;
}

static double ref_loss(const ps_model_cfg *c, const ps_batch *b, const ps_keylist *keys,
                       double *const *p, uint64_t step)
{
    uint32_t L = (c->kind == PS_MODEL_MLP ? c->nhidden : 0) + 1;
    uint32_t width[MAXT];
    for (uint32_t l = 1; l < L; l++) {
        width[l] = c->hidden[l - 1];
    }
    width[L] = c->nclasses;
    double total = 0.0;
    for (size_t i = 0; i < b->n; i++) {
        double a[MAXD] = {0}, z[MAXD] = {0};
        uint32_t d0 = width[1];
        for (uint32_t j = 0; j < d0; j++) {
            z[j] = p[1][j];
        }
        for (uint64_t f = 0; f < c->in_dim; f++) {
            double v = 0.0;
            if (b->sparse) {
                for (uint64_t k = b->indptr[i]; k < b->indptr[i + 1]; k++) {
                    v = b->idx[k] == f ? b->val[k] : v;
                }
            } else {
                v = b->x[i * c->in_dim + f];
            }
            if (v == 0.0) {
                continue;
            }
            v *= ps_dropout_scale(c->seed, c->worker, step, i * c->in_dim + f, c->dropout_input);
            long r = find_key(&keys[0], f);
            assert_true(r >= 0);
            for (uint32_t j = 0; j < d0; j++) {
                z[j] += v * p[0][(size_t)r * d0 + j];
            }
        }
        for (uint32_t l = 1;; l++) {
            uint32_t d = width[l];
            if (l == L) {
                double mx = z[0], s = 0.0;
                for (uint32_t j = 1; j < d; j++) {
                    mx = z[j] > mx ? z[j] : mx;
                }
                for (uint32_t j = 0; j < d; j++) {
                    s += exp(z[j] - mx);
                }
                total += mx + log(s) - z[b->y[i]];
                break;
            }
            for (uint32_t j = 0; j < d; j++) {
                uint64_t unit = ((uint64_t)l << 56) + i * d + j;
                a[j] = ps_test_act(c->activation, z[j]) *
                       ps_dropout_scale(c->seed, c->worker, step, unit, c->dropout_hidden);
            }
            uint32_t dn = width[l + 1];
            const double *w = p[2 * l], *bias = p[2 * l + 1];
            for (uint32_t k = 0; k < dn; k++) {
                z[k] = bias[k];
                for (uint32_t j = 0; j < d; j++) {
                    z[k] += a[j] * w[j * dn + k];
                }
            }
        }
    }
    total /= (double)b->n;
    double reg = 0.0;
    for (uint32_t l = 1; l <= L; l++) {
        size_t len = keys[2 * (l - 1)].n * width[l];
        for (size_t e = 0; e < len; e++) {
            reg += p[2 * (l - 1)][e] * p[2 * (l - 1)][e];
        }
    }
    return total + 0.5 * c->l2 * reg;
}

/* ---- tests ---- */

static void test_model_rejects_bad_config(void **state)
{
    (void)state;
    ps_model *m = NULL;
    ps_model_cfg c = mlp_cfg(6, 3, 0, 1, 0.0f, 0.0f);
    c.nclasses = 1;
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = mlp_cfg(6, 3, 0, 1, 1.0f, 0.0f);
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = mlp_cfg(6, 3, 0, 0, 0.0f, 0.0f);
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = mlp_cfg(6, 3, 0, 1, 0.0f, 0.0f);
    c.max_batch = 0;
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = mlp_cfg(6, 3, 0, 1, 0.0f, 0.0f);
    c.hidden[0] = 0;
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = logreg_cfg(6, 3, 0, -1.0f);
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = logreg_cfg(6, 3, 0, 0.0f);
    c.init_override = 7;
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    assert_null(m);
    ps_model_destroy(&m);
    ps_model_destroy(NULL);
}

static void test_model_tables_have_names_shapes_and_inits(void **state)
{
    (void)state;
    ps_model *m = NULL;
    ps_model_cfg c = logreg_cfg(1000, 4, 1, 0.0f);
    assert_int_equal(ps_model_create(&m, &c), 0);
    assert_int_equal(ps_model_ntables(m), 2);
    const ps_table_desc *w = ps_model_table(m, 0), *b = ps_model_table(m, 1);
    assert_string_equal(w->name, "w");
    assert_int_equal(w->rows, 1000);
    assert_int_equal(w->width, 4);
    assert_int_equal(w->init, PS_INIT_ZEROS);
    assert_string_equal(b->name, "b");
    assert_int_equal(b->rows, 1);
    assert_null(ps_model_table(m, 2));
    ps_model_destroy(&m);

    c = mlp_cfg(784, 10, 0, 2, 0.2f, 0.5f);
    c.hidden[0] = 100;
    c.hidden[1] = 50;
    assert_int_equal(ps_model_create(&m, &c), 0);
    assert_int_equal(ps_model_ntables(m), 6);
    const char *names[] = {"w1", "b1", "w2", "b2", "w3", "b3"};
    uint64_t rows[] = {784, 1, 100, 1, 50, 1};
    uint32_t widths[] = {100, 100, 50, 50, 10, 10};
    for (uint32_t t = 0; t < 6; t++) {
        const ps_table_desc *d = ps_model_table(m, t);
        assert_string_equal(d->name, names[t]);
        assert_int_equal(d->rows, rows[t]);
        assert_int_equal(d->width, widths[t]);
        assert_int_equal(d->init, t % 2 ? PS_INIT_ZEROS : PS_INIT_GLOROT);
    }
    assert_float_equal(ps_model_table(m, 2)->scale, sqrt(6.0 / 150.0), 1e-6);
    ps_model_destroy(&m);

    c.init_override = PS_INIT_NORMAL;
    assert_int_equal(ps_model_create(&m, &c), 0);
    assert_int_equal(ps_model_table(m, 0)->init, PS_INIT_NORMAL);
    assert_float_equal(ps_model_table(m, 0)->scale, 0.01, 1e-9);
    assert_int_equal(ps_model_table(m, 1)->init, PS_INIT_ZEROS);
    ps_model_destroy(&m);
}

/* ps_model_tables gives exactly the tables of a created model (logreg and
 * MLP, dense and sparse, default and overridden init), allocates nothing,
 * ignores the training-only fields,
 * and refuses a bad shape or too small an array. */
static void test_model_tables_equal_created_models(void **state)
{
    (void)state;
    ps_model_cfg cfgs[6] = {
        logreg_cfg(1000, 4, 0, 0.0f),       logreg_cfg(1u << 20, 2, 1, 0.1f),
        mlp_cfg(784, 10, 0, 3, 0.2f, 0.5f), mlp_cfg(1u << 24, 7, 1, 2, 0, 0),
        mlp_cfg(30, 3, 0, 1, 0, 0),         logreg_cfg(6, 3, 1, 0),
    };
    cfgs[4].init_override = PS_INIT_NORMAL;
    cfgs[5].init_override = PS_INIT_GLOROT;
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        ps_table_desc got[PS_MODEL_MAX_TABLES];
        uint32_t n = 99;
        memset(got, 0xa5, sizeof got);
        ps_test_fail_alloc(1000); /* counts allocations from here */
        int rc = ps_model_tables(&cfgs[i], got, PS_MODEL_MAX_TABLES, &n);
        long nalloc = ps_test_nalloc;
        ps_test_fail_alloc(-1);
        assert_int_equal(rc, 0);
        assert_int_equal(nalloc, 0);
        ps_model *m = NULL;
        assert_int_equal(ps_model_create(&m, &cfgs[i]), 0);
        assert_int_equal(n, ps_model_ntables(m));
        for (uint32_t t = 0; t < n; t++) {
            const ps_table_desc *d = ps_model_table(m, t);
            assert_string_equal(got[t].name, d->name);
            assert_int_equal(got[t].rows, d->rows);
            assert_int_equal(got[t].width, d->width);
            assert_int_equal(got[t].init, d->init);
            assert_true(got[t].scale == d->scale);
        }
        ps_model_destroy(&m);
    }
    /* max_batch, dropout and l2 shape no table: they are not checked. */
    ps_model_cfg c = mlp_cfg(6, 3, 0, 1, 1.5f, 0.0f);
    c.max_batch = 0;
    c.l2 = -1.0f;
    ps_table_desc got[PS_MODEL_MAX_TABLES];
    uint32_t n;
    assert_int_equal(ps_model_tables(&c, got, PS_MODEL_MAX_TABLES, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(got[3].name, "b2");
    /* A shape that is wrong, and room for fewer tables than the model has. */
    c.nclasses = 1;
    assert_int_equal(ps_model_tables(&c, got, PS_MODEL_MAX_TABLES, &n), PS_ECONFIG);
    assert_int_equal(n, 0);
    c = mlp_cfg(6, 3, 0, 1, 0, 0);
    assert_int_equal(ps_model_tables(&c, got, 3, &n), PS_EINVAL);
    assert_int_equal(ps_model_tables(&c, got, 4, &n), 0);
}

/* Dense: all rows of every table, bias key 0. Sparse: the first table's
 * keys are strictly ascending, exactly the union of the batch's ids, and
 * pos points each non-zero at its own id. */
static void test_model_batch_keys_are_sorted_union_or_all_rows(void **state)
{
    (void)state;
    tbatch tb;
    make_batch(&tb, 5, 7, 12, 3, 0.3);
    ps_model *m = NULL;
    ps_keylist keys[MAXT] = {{0}};
    ps_model_cfg c = mlp_cfg(12, 3, 0, 2, 0.0f, 0.0f);
    assert_int_equal(ps_model_create(&m, &c), 0);
    assert_int_equal(ps_model_batch_keys(m, &tb.dense, keys), 0);
    for (uint32_t t = 0; t < 6; t++) {
        assert_int_equal(keys[t].n, ps_model_table(m, t)->rows);
        for (size_t i = 0; i < keys[t].n; i++) {
            assert_int_equal(keys[t].keys[i], i);
        }
    }
    ps_model_keys_fini(keys, 6);
    ps_model_destroy(&m);

    /* A 2^40-row key space: ids scattered over it, no per-row work. */
    const uint64_t big = UINT64_C(1) << 40;
    for (size_t k = 0; k < tb.indptr[7]; k++) {
        tb.idx[k] = (tb.idx[k] * UINT64_C(0x9e3779b97f4a7c15)) % big;
    }
    for (size_t i = 0; i < 7; i++) { /* keep ids ascending within a row */
        for (uint64_t a = tb.indptr[i]; a < tb.indptr[i + 1]; a++) {
            for (uint64_t bb = a + 1; bb < tb.indptr[i + 1]; bb++) {
                if (tb.idx[bb] < tb.idx[a]) {
                    uint64_t s = tb.idx[a];
                    tb.idx[a] = tb.idx[bb];
                    tb.idx[bb] = s;
                }
            }
        }
    }
    tb.idx[tb.indptr[0]] = 17; /* and one id repeated across rows */
    tb.idx[tb.indptr[2]] = 17;
    tb.sparse.dim = big;
    c = mlp_cfg(12, 3, 1, 1, 0.0f, 0.0f);
    c.in_dim = big;
    assert_int_equal(ps_model_create(&m, &c), 0);
    assert_int_equal(ps_model_batch_keys(m, &tb.sparse, keys), 0);
    size_t nnz = tb.indptr[7];
    assert_int_equal(keys[0].nnz, nnz);
    for (size_t i = 1; i < keys[0].n; i++) {
        assert_true(keys[0].keys[i - 1] < keys[0].keys[i]);
    }
    for (size_t k = 0; k < nnz; k++) {
        assert_true(keys[0].pos[k] < keys[0].n);
        assert_int_equal(keys[0].keys[keys[0].pos[k]], tb.idx[k]);
    }
    for (size_t i = 0; i < keys[0].n; i++) { /* nothing that is not in the batch */
        int seen = 0;
        for (size_t k = 0; k < nnz; k++) {
            seen |= tb.idx[k] == keys[0].keys[i];
        }
        assert_true(seen);
    }
    assert_int_equal(keys[1].n, 1);
    assert_int_equal(keys[1].keys[0], 0);
    assert_int_equal(keys[2].n, 5);

    /* Reused keylists shrink for a smaller batch; ids past in_dim fail. */
    tbatch small;
    make_batch(&small, 6, 2, 12, 3, 0.5);
    assert_int_equal(ps_model_batch_keys(m, &small.sparse, keys), 0);
    assert_int_equal(keys[0].nnz, small.indptr[2]);
    c.in_dim = 10;
    ps_model_destroy(&m);
    assert_int_equal(ps_model_create(&m, &c), 0);
    small.sparse.dim = 10;
    small.idx[small.indptr[1] - 1] = 10;
    assert_int_equal(ps_model_batch_keys(m, &small.sparse, keys), PS_EINVAL);
    ps_model_keys_fini(keys, 4);
    ps_model_destroy(&m);
}

static void test_logreg_gradient_matches_finite_differences(void **state)
{
    (void)state;
    tbatch tb;
    make_batch(&tb, 11, 7, 9, 5, 0.4);
    ps_model_cfg c = logreg_cfg(9, 5, 0, 0.1f);
    ps_test_gradcheck(&c, &tb.dense, 1, ref_loss);
    c.sparse_input = 1;
    ps_test_gradcheck(&c, &tb.sparse, 1, ref_loss);
    make_batch(&tb, 12, 1, 9, 2, 0.5);
    c = logreg_cfg(9, 2, 1, 0.05f);
    c.dropout_input = 0.3f;
    ps_test_gradcheck(&c, &tb.sparse, 3, ref_loss);
}

static void test_mlp_gradient_matches_finite_differences_dense(void **state)
{
    (void)state;
    tbatch tb;
    make_batch(&tb, 21, 1, 6, 2, 0.7);
    ps_model_cfg c = mlp_cfg(6, 2, 0, 1, 0.2f, 0.3f);
    ps_test_gradcheck(&c, &tb.dense, 4, ref_loss);
    make_batch(&tb, 22, 7, 6, 5, 0.7);
    c = mlp_cfg(6, 5, 0, 2, 0.2f, 0.3f);
    c.l2 = 0.01f;
    ps_test_gradcheck(&c, &tb.dense, 5, ref_loss);
    c = mlp_cfg(6, 5, 0, 3, 0.0f, 0.0f);
    ps_test_gradcheck(&c, &tb.dense, 6, ref_loss);
}

static void test_mlp_gradient_matches_finite_differences_sparse(void **state)
{
    (void)state;
    tbatch tb;
    make_batch(&tb, 31, 7, 10, 5, 0.3);
    ps_model_cfg c = mlp_cfg(10, 5, 1, 1, 0.25f, 0.4f);
    ps_test_gradcheck(&c, &tb.sparse, 8, ref_loss);
    c = mlp_cfg(10, 5, 1, 2, 0.25f, 0.4f);
    c.l2 = 0.02f;
    ps_test_gradcheck(&c, &tb.sparse, 9, ref_loss);
    make_batch(&tb, 32, 1, 10, 2, 0.5);
    c = mlp_cfg(10, 2, 1, 2, 0.1f, 0.5f);
    ps_test_gradcheck(&c, &tb.sparse, 10, ref_loss);
}

/* Sigmoid, softplus and tanh hidden units, dense and sparse input, with
 * and without dropout (whose backward pass rebuilds each layer's mask),
 * one to three hidden layers, with L2. */
static void test_mlp_activations_match_finite_differences(void **state)
{
    (void)state;
    const ps_act_kind acts[] = {PS_ACT_SIGMOID, PS_ACT_SOFTPLUS, PS_ACT_TANH};
    tbatch tb;
    make_batch(&tb, 81, 6, 7, 4, 0.5);
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        for (uint32_t nh = 1; nh <= 3; nh++) {
            ps_model_cfg c = mlp_cfg(7, 4, 0, nh, 0.2f, 0.4f);
            c.activation = acts[a];
            c.l2 = 0.01f;
            ps_test_gradcheck(&c, &tb.dense, 11 + nh, ref_loss);
            c.sparse_input = 1;
            ps_test_gradcheck(&c, &tb.sparse, 11 + nh, ref_loss);
            c = mlp_cfg(7, 4, 0, nh, 0.0f, 0.0f);
            c.activation = acts[a];
            ps_test_gradcheck(&c, &tb.dense, 1, ref_loss);
        }
    }
}

/* The same batch as dense and as CSR, same step, dropout on: same loss
 * (1e-6) and the same gradient on the rows both hold (1e-6); dense rows of
 * absent features get zero gradient. A repeated step is bit-identical;
 * another step draws another mask and another loss. */
static void test_mlp_dense_and_sparse_layouts_agree(void **state)
{
    (void)state;
    tbatch tb;
    make_batch(&tb, 41, 7, 12, 3, 0.3);
    ps_model_cfg cd = mlp_cfg(12, 3, 0, 2, 0.3f, 0.3f), cs = cd;
    cs.sparse_input = 1;
    ps_model *md = NULL, *ms = NULL;
    assert_int_equal(ps_model_create(&md, &cd), 0);
    assert_int_equal(ps_model_create(&ms, &cs), 0);
    ps_keylist kd[MAXT] = {{0}}, ks[MAXT] = {{0}};
    assert_int_equal(ps_model_batch_keys(md, &tb.dense, kd), 0);
    assert_int_equal(ps_model_batch_keys(ms, &tb.sparse, ks), 0);
    float *pd[MAXT] = {0}, *ps[MAXT] = {0}, *gd[MAXT] = {0}, *gs[MAXT] = {0}, *g2[MAXT] = {0};
    ps_test_fill_params(md, kd, pd);
    ps_test_fill_params(ms, ks, ps);
    ps_test_alloc_like(md, kd, gd);
    ps_test_alloc_like(ms, ks, gs);
    ps_test_alloc_like(ms, ks, g2);
    double ld, ls, l2;
    assert_int_equal(
        ps_model_forward_backward(md, &tb.dense, kd, (const float *const *)pd, gd, 7, &ld), 0);
    assert_int_equal(
        ps_model_forward_backward(ms, &tb.sparse, ks, (const float *const *)ps, gs, 7, &ls), 0);
    assert_true(fabs(ld - ls) < 1e-6);
    uint32_t w = ps_model_table(md, 0)->width;
    size_t hit = 0;
    for (size_t r = 0; r < kd[0].n; r++) {
        long at = find_key(&ks[0], r);
        for (uint32_t j = 0; j < w; j++) {
            float want = at >= 0 ? gs[0][(size_t)at * w + j] : 0.0f;
            assert_true(fabsf(gd[0][r * w + j] - want) < 1e-6f);
        }
        hit += at >= 0;
    }
    assert_int_equal(hit, ks[0].n);
    for (uint32_t t = 1; t < 6; t++) {
        size_t len = kd[t].n * ps_model_table(md, t)->width;
        for (size_t e = 0; e < len; e++) {
            assert_true(fabsf(gd[t][e] - gs[t][e]) < 1e-6f);
        }
    }
    assert_int_equal(
        ps_model_forward_backward(ms, &tb.sparse, ks, (const float *const *)ps, g2, 7, &l2), 0);
    assert_true(l2 == ls);
    for (uint32_t t = 0; t < 6; t++) {
        assert_memory_equal(g2[t], gs[t], ks[t].n * ps_model_table(ms, t)->width * sizeof(float));
    }
    assert_int_equal(
        ps_model_forward_backward(ms, &tb.sparse, ks, (const float *const *)ps, g2, 8, &l2), 0);
    assert_true(l2 != ls);
    ps_test_free_arrays(pd, 6);
    ps_test_free_arrays(ps, 6);
    ps_test_free_arrays(gd, 6);
    ps_test_free_arrays(gs, 6);
    ps_test_free_arrays(g2, 6);
    ps_model_keys_fini(kd, 6);
    ps_model_keys_fini(ks, 6);
    ps_model_destroy(&md);
    ps_model_destroy(&ms);
}

/* Two features, two classes, w = [[2, 0], [0, 1]], b = [0, 0.5]:
 * x = (1, 0) y=0: logits (2, 0.5)  correct, loss log(1 + e^-1.5)
 * x = (0, 1) y=1: logits (0, 1.5)  correct, loss log(1 + e^-1.5)
 * x = (1, 1) y=1: logits (2, 1.5)  wrong,   loss log(1 + e^0.5)
 * x = (0, 0) y=0: logits (0, 0.5)  wrong,   loss log(1 + e^0.5)
 * x = (3, 0) y=0: logits (6, 0.5)  correct, loss log(1 + e^-5.5)
 * Accuracy 3/5. Evaluated with max_batch 2, so in three chunks, and
 * dropout configured (evaluation must ignore it). */
static void test_model_evaluate_counts_known_accuracy(void **state)
{
    (void)state;
    float x[] = {1, 0, 0, 1, 1, 1, 0, 0, 3, 0};
    int32_t y[] = {0, 1, 1, 0, 0};
    ps_batch b = {5, 2, 2, 0, x, NULL, NULL, NULL, y};
    ps_model_cfg c = logreg_cfg(2, 2, 0, 0.0f);
    c.max_batch = 2;
    c.dropout_input = 0.5f;
    ps_model *m = NULL;
    assert_int_equal(ps_model_create(&m, &c), 0);
    ps_keylist keys[2] = {{0}};
    assert_int_equal(ps_model_batch_keys(m, &b, keys), 0);
    float w[] = {2, 0, 0, 1}, bias[] = {0, 0.5f};
    const float *p[] = {w, bias};
    double loss;
    size_t good;
    assert_int_equal(ps_model_evaluate(m, &b, keys, p, &loss, &good), 0);
    assert_int_equal(good, 3);
    double want = 2 * log1p(exp(-1.5)) + 2 * log1p(exp(0.5)) + log1p(exp(-5.5));
    assert_true(fabs(loss - want) < 1e-5);
    /* forward_backward refuses more than max_batch samples. */
    float gw[4], gb[2];
    float *g[] = {gw, gb};
    assert_int_equal(ps_model_forward_backward(m, &b, keys, p, g, 1, &loss), PS_EINVAL);
    ps_model_keys_fini(keys, 2);
    ps_model_destroy(&m);
}

/* Mismatched batches and keys are errors, not memory accesses. */
static void test_model_rejects_mismatched_batch_and_keys(void **state)
{
    (void)state;
    tbatch tb, other;
    make_batch(&tb, 51, 4, 8, 3, 0.5);
    make_batch(&other, 52, 3, 8, 3, 0.9);
    ps_model_cfg c = mlp_cfg(8, 3, 1, 1, 0.0f, 0.0f);
    ps_model *m = NULL;
    assert_int_equal(ps_model_create(&m, &c), 0);
    ps_keylist keys[4] = {{0}};
    assert_int_equal(ps_model_batch_keys(m, &tb.sparse, keys), 0);
    float *p[MAXT] = {0}, *g[MAXT] = {0};
    ps_test_fill_params(m, keys, p);
    ps_test_alloc_like(m, keys, g);
    double loss;
    const float *const *cp = (const float *const *)p;
    assert_int_equal(ps_model_forward_backward(m, &other.sparse, keys, cp, g, 1, &loss), PS_EINVAL);
    assert_int_equal(ps_model_forward_backward(m, &tb.dense, keys, cp, g, 1, &loss), PS_EINVAL);
    tb.y[2] = 3;
    assert_int_equal(ps_model_forward_backward(m, &tb.sparse, keys, cp, g, 1, &loss), PS_EINVAL);
    tb.y[2] = -1;
    assert_int_equal(ps_model_batch_keys(m, &tb.sparse, keys), PS_EINVAL);
    tb.y[2] = 0;
    assert_int_equal(ps_model_forward_backward(m, &tb.sparse, keys, cp, g, 1, &loss), 0);
    assert_true(isfinite(loss) && loss > 0.0);
    ps_test_free_arrays(p, 4);
    ps_test_free_arrays(g, 4);
    ps_model_keys_fini(keys, 4);
    ps_model_destroy(&m);
}

/* A sparse batch with no features at all: no keys for the first table,
 * which then needs no buffers; the gradient of everything else still
 * checks out against the reference. */
static void test_model_sparse_batch_without_features_needs_no_rows(void **state)
{
    (void)state;
    tbatch tb;
    make_batch(&tb, 71, 3, 8, 3, 0.0);
    assert_int_equal(tb.indptr[3], 0);
    ps_model_cfg c = mlp_cfg(8, 3, 1, 1, 0.2f, 0.3f);
    c.l2 = 0.1f;
    ps_test_gradcheck(&c, &tb.sparse, 2, ref_loss);
    ps_model *m = NULL;
    assert_int_equal(ps_model_create(&m, &c), 0);
    ps_keylist keys[4] = {{0}};
    assert_int_equal(ps_model_batch_keys(m, &tb.sparse, keys), 0);
    assert_int_equal(keys[0].n, 0);
    float *p[4] = {0}, *g[4] = {0};
    ps_test_fill_params(m, keys, p);
    ps_test_alloc_like(m, keys, g);
    free(p[0]);
    free(g[0]);
    p[0] = g[0] = NULL;
    double loss;
    assert_int_equal(
        ps_model_forward_backward(m, &tb.sparse, keys, (const float *const *)p, g, 2, &loss), 0);
    assert_true(isfinite(loss) && loss > 0.0);
    ps_test_free_arrays(p, 4);
    ps_test_free_arrays(g, 4);
    ps_model_keys_fini(keys, 4);
    ps_model_destroy(&m);
}

/* Fail allocation 0, 1, 2, ... until create succeeds: every failure is
 * PS_ENOMEM with *out untouched, and cmocka sees no leak. The same for the
 * sparse keys and the sparse dropout buffer grown on first use. */
static void test_model_create_survives_every_failed_allocation(void **state)
{
    (void)state;
    ps_model_cfg cfgs[] = {mlp_cfg(8, 3, 0, 3, 0.2f, 0.5f), mlp_cfg(8, 3, 1, 2, 0.2f, 0.5f),
                           logreg_cfg(8, 2, 1, 0.0f)};
    for (size_t i = 0; i < 3; i++) {
        ps_test_model_create_oom_sweep(&cfgs[i], 2);
    }
    tbatch tb;
    make_batch(&tb, 61, 5, 8, 3, 0.5);
    ps_model *m = NULL;
    assert_int_equal(ps_model_create(&m, &cfgs[1]), 0);
    uint32_t nt = ps_model_ntables(m);
    float *p[MAXT] = {0}, *g[MAXT] = {0};
    for (long n = 0;; n++) {
        ps_keylist keys[MAXT] = {{0}};
        ps_test_fail_alloc(n);
        int rc = ps_model_batch_keys(m, &tb.sparse, keys);
        double loss;
        if (rc == 0) {
            ps_test_fail_alloc(-1);
            ps_test_fill_params(m, keys, p);
            ps_test_alloc_like(m, keys, g);
            ps_test_fail_alloc(n);
            rc = ps_model_forward_backward(m, &tb.sparse, keys, (const float *const *)p, g, 1,
                                           &loss);
            ps_test_fail_alloc(-1);
            ps_test_free_arrays(p, nt);
            ps_test_free_arrays(g, nt);
        }
        ps_test_fail_alloc(-1);
        ps_model_keys_fini(keys, nt);
        if (rc == 0) {
            break;
        }
        assert_int_equal(rc, PS_ENOMEM);
        /* A fresh model each round, so its scratch is grown from nothing. */
        ps_model_destroy(&m);
        assert_int_equal(ps_model_create(&m, &cfgs[1]), 0);
    }
    ps_model_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_rejects_bad_config),
        cmocka_unit_test(test_model_tables_have_names_shapes_and_inits),
        cmocka_unit_test(test_model_tables_equal_created_models),
        cmocka_unit_test(test_model_batch_keys_are_sorted_union_or_all_rows),
        cmocka_unit_test(test_logreg_gradient_matches_finite_differences),
        cmocka_unit_test(test_mlp_gradient_matches_finite_differences_dense),
        cmocka_unit_test(test_mlp_gradient_matches_finite_differences_sparse),
        cmocka_unit_test(test_mlp_activations_match_finite_differences),
        cmocka_unit_test(test_mlp_dense_and_sparse_layouts_agree),
        cmocka_unit_test(test_model_evaluate_counts_known_accuracy),
        cmocka_unit_test(test_model_rejects_mismatched_batch_and_keys),
        cmocka_unit_test(test_model_sparse_batch_without_features_needs_no_rows),
        cmocka_unit_test(test_model_create_survives_every_failed_allocation),
    };
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
