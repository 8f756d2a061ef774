/* Shared by the model tests (test_model.c, test_cnn.c, test_vae.c):
 * parameters that are a fixed function of (table, key, column), gradient
 * buffers, and the finite-difference gradient check of a model against an
 * independent double-precision reference of its loss, and the allocation
 * failure sweep of ps_model_create. Include after cmocka.h and
 * tests/unit/ps_test.h; every helper is static inline. */
#ifndef PS_TEST_MODEL_H
#define PS_TEST_MODEL_H

#include <math.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/rng.h"
#include "worker/model.h"

#define PS_TEST_MAXT PS_MODEL_MAX_TABLES

/* The reference loss: the model's data loss plus 0.5 * l2 * ||w||^2 over
 * the weight rows present, computed from the definitions in double on
 * parameters p (the compact layout of keys). */
typedef double (*ps_test_ref_fn)(const ps_model_cfg *c, const ps_batch *b, const ps_keylist *keys,
                                 double *const *p, uint64_t step);

/* Parameters for the rows in keys: value (t, key, col) is a fixed function
 * of those, so two layouts of the same rows hold the same numbers; uniform
 * in [-0.6, 0.6) times spread. */
static inline void ps_test_fill_params_spread(const ps_model *m, const ps_keylist *keys, float **p,
                                              float spread)
{
    for (uint32_t t = 0; t < ps_model_ntables(m); t++) {
        uint32_t w = ps_model_table(m, t)->width;
        p[t] = malloc((keys[t].n ? keys[t].n : 1) * w * sizeof(float));
        assert_non_null(p[t]);
        for (size_t i = 0; i < keys[t].n; i++) {
            for (uint32_t j = 0; j < w; j++) {
                uint64_t h = ps_rng_hash(2024, t, keys[t].keys[i], j);
                p[t][i * w + j] = (ps_rng_unit_float(h) - 0.5f) * 1.2f * spread;
            }
        }
    }
}

static inline void ps_test_fill_params(const ps_model *m, const ps_keylist *keys, float **p)
{
    ps_test_fill_params_spread(m, keys, p, 1.0f);
}

static inline void ps_test_alloc_like(const ps_model *m, const ps_keylist *keys, float **g)
{
    for (uint32_t t = 0; t < ps_model_ntables(m); t++) {
        uint32_t w = ps_model_table(m, t)->width;
        g[t] = calloc((keys[t].n ? keys[t].n : 1) * w, sizeof(float));
        assert_non_null(g[t]);
    }
}

static inline void ps_test_free_arrays(float **a, uint32_t n)
{
    for (uint32_t t = 0; t < n; t++) {
        free(a[t]);
        a[t] = NULL;
    }
}

/* The model's loss matches ref within 1e-5 (relative), and every gradient
 * entry matches ref's central difference (h = 1e-6 in double) within
 * 2e-4 + 1e-3 |g|: float forward/backward against exact math. Parameters
 * from ps_test_fill_params_spread(spread). */
static inline void ps_test_gradcheck_spread(const ps_model_cfg *cfg, const ps_batch *b,
                                            uint64_t step, ps_test_ref_fn ref, float spread)
{
    ps_model *m = NULL;
    assert_int_equal(ps_model_create(&m, cfg), 0);
    uint32_t nt = ps_model_ntables(m);
    ps_keylist keys[PS_TEST_MAXT] = {{0}};
    assert_int_equal(ps_model_batch_keys(m, b, keys), 0);
    float *p[PS_TEST_MAXT] = {0}, *g[PS_TEST_MAXT] = {0};
    double *pd[PS_TEST_MAXT] = {0};
    ps_test_fill_params_spread(m, keys, p, spread);
    ps_test_alloc_like(m, keys, g);
    double loss;
    assert_int_equal(ps_model_forward_backward(m, b, keys, (const float *const *)p, g, step, &loss),
                     0);
    for (uint32_t t = 0; t < nt; t++) {
        size_t len = keys[t].n * ps_model_table(m, t)->width;
        pd[t] = malloc((len ? len : 1) * sizeof(double));
        assert_non_null(pd[t]);
        for (size_t e = 0; e < len; e++) {
            pd[t][e] = p[t][e];
        }
    }
    double want = ref(cfg, b, keys, pd, step);
    if (!(fabs(loss - want) <= 1e-5 * fabs(want) + 1e-6)) {
        fail_msg("loss: model %.9g, reference %.9g", loss, want);
    }
    const double h = 1e-6;
    for (uint32_t t = 0; t < nt; t++) {
        size_t len = keys[t].n * ps_model_table(m, t)->width;
        for (size_t e = 0; e < len; e++) {
            double keep = pd[t][e];
            pd[t][e] = keep + h;
            double up = ref(cfg, b, keys, pd, step);
            pd[t][e] = keep - h;
            double down = ref(cfg, b, keys, pd, step);
            pd[t][e] = keep;
            double fd = (up - down) / (2.0 * h);
            if (fabs(g[t][e] - fd) > 2e-4 + 1e-3 * fabs(fd)) {
                fail_msg("table %s entry %zu: model %g, finite difference %g",
                         ps_model_table(m, t)->name, e, (double)g[t][e], fd);
            }
        }
    }
    for (uint32_t t = 0; t < nt; t++) {
        free(pd[t]);
    }
    ps_test_free_arrays(p, nt);
    ps_test_free_arrays(g, nt);
    ps_model_keys_fini(keys, nt);
    ps_model_destroy(&m);
    assert_null(m);
}

static inline void ps_test_gradcheck(const ps_model_cfg *cfg, const ps_batch *b, uint64_t step,
                                     ps_test_ref_fn ref)
{
    ps_test_gradcheck_spread(cfg, b, step, ref, 1.0f);
}

/* The L2 term of every reference: 0.5 * l2 * sum of squares of the weight
 * tables (even indices) over the rows present. */
static inline double ps_test_ref_l2(const ps_model_cfg *c, const ps_keylist *keys, double *const *p)
{
    ps_table_desc tabs[PS_TEST_MAXT];
    uint32_t nt = 0;
    assert_int_equal(ps_model_tables(c, tabs, PS_TEST_MAXT, &nt), 0);
    double reg = 0.0;
    for (uint32_t t = 0; t < nt; t += 2) {
        size_t len = keys[t].n * tabs[t].width;
        for (size_t e = 0; e < len; e++) {
            reg += p[t][e] * p[t][e];
        }
    }
    return 0.5 * c->l2 * reg;
}

/* A dense batch of n samples: x[i*dim + f] uniform in [-0.5, 1.5) (so
 * about half the values are above the vae's 0.5 threshold), labels in
 * [0, nclasses). x and y are the caller's (n*dim and n entries). */
static inline ps_batch ps_test_dense_batch(uint64_t seed, size_t n, uint32_t dim, uint32_t nclasses,
                                           float *x, int32_t *y)
{
    ps_rng r;
    ps_rng_seed(&r, seed);
    for (size_t k = 0; k < n * dim; k++) {
        x[k] = (float)(ps_rng_uniform(&r) * 2.0 - 0.5);
    }
    for (size_t i = 0; i < n; i++) {
        y[i] = (int32_t)ps_rng_below(&r, nclasses);
    }
    return (ps_batch){n, dim, nclasses, 0, x, NULL, NULL, NULL, y};
}

/* Fails allocation 0, 1, 2, ... until ps_model_create(cfg) succeeds: each
 * failure is PS_ENOMEM with the model pointer untouched (cmocka checks
 * for leaks); success needs more than min_allocs allocations. */
static inline void ps_test_model_create_oom_sweep(const ps_model_cfg *cfg, long min_allocs)
{
    for (long n = 0;; n++) {
        ps_model *m = NULL;
        ps_test_fail_alloc(n);
        int rc = ps_model_create(&m, cfg);
        ps_test_fail_alloc(-1);
        if (rc == 0) {
            assert_true(n > min_allocs);
            ps_model_destroy(&m);
            return;
        }
        assert_int_equal(rc, PS_ENOMEM);
        assert_null(m);
    }
}

/* A double activation, as the model defines them. */
static inline double ps_test_act(ps_act_kind act, double v)
{
    switch (act) {
    case PS_ACT_SIGMOID:
        return 1.0 / (1.0 + exp(-v));
    case PS_ACT_SOFTPLUS:
        return log1p(exp(v));
    case PS_ACT_TANH:
        return tanh(v);
    default:
        return v > 0.0 ? v : 0.0;
    }
}

#endif
