/* Tests for worker/vae: the table list, gradients of the negative ELBO
 * against central finite differences of a double-precision reference that
 * draws the same noise (softplus, tanh and sigmoid units, L2), the noise as
 * a pure function of (seed, worker, step), evaluation repeatable and
 * without classes, and the refusals (dropout, sparse input, predict). */
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
#include "worker/model.h"
#include "worker/model_internal.h"
#include "tests/unit/ps_test.h"
#include "tests/unit/ps_test_model.h"

#define MAXD 16
#define MAXH 8

static ps_model_cfg vae_cfg(uint64_t in_dim, uint32_t hidden, uint32_t latent, ps_act_kind act)
{
    ps_model_cfg c = {0};
    c.kind = PS_MODEL_VAE;
    c.in_dim = in_dim;
    c.nclasses = 10;
    c.nhidden = 1;
    c.hidden[0] = hidden;
    c.latent = latent;
    c.activation = act;
    c.init_override = -1;
    c.seed = 5;
    c.worker = 1;
    c.max_batch = 8;
    return c;
}

/* h = act(x_b W1 + b1); (mu, log s^2) = h W2 + b2; z = mu + e^(log s^2 / 2)
 * eps; h' = act(z W3 + b3); l = h' W4 + b4; loss = sum softplus(l) - x_b l
 * + 1/2 sum (mu^2 + s^2 - 1 - log s^2), averaged over the batch; x_b =
 * x > 0.5 and eps the float noise of (seed, worker, step). */
static double ref_vae(const ps_model_cfg *c, const ps_batch *b, const ps_keylist *keys,
                      double *const *p, uint64_t step)
{
    size_t D = c->in_dim, H = c->hidden[0], L = c->latent;
    uint64_t key = ps_rng_hash(c->seed, c->worker, step, PS_VAE_GAUSS_STREAM);
    double total = 0.0;
    for (size_t i = 0; i < b->n; i++) {
        double xb[MAXD], h[MAXH], enc[2 * MAXH], z[MAXH], h2[MAXH];
        for (size_t f = 0; f < D; f++) {
            xb[f] = b->x[i * D + f] > 0.5f ? 1.0 : 0.0;
        }
        for (size_t j = 0; j < H; j++) {
            double v = p[1][j];
            for (size_t f = 0; f < D; f++) {
                v += xb[f] * p[0][f * H + j];
            }
            h[j] = ps_test_act(c->activation, v);
        }
        for (size_t k = 0; k < 2 * L; k++) {
            enc[k] = p[3][k];
            for (size_t j = 0; j < H; j++) {
                enc[k] += h[j] * p[2][j * 2 * L + k];
            }
        }
        for (size_t k = 0; k < L; k++) {
            double eps = (float)ps_rng_gauss(key, i * L + k);
            z[k] = enc[k] + exp(0.5 * enc[L + k]) * eps;
            total += 0.5 * (enc[k] * enc[k] + exp(enc[L + k]) - 1.0 - enc[L + k]);
        }
        for (size_t j = 0; j < H; j++) {
            double v = p[5][j];
            for (size_t k = 0; k < L; k++) {
                v += z[k] * p[4][k * H + j];
            }
            h2[j] = ps_test_act(c->activation, v);
        }
        for (size_t f = 0; f < D; f++) {
            double l = p[7][f];
            for (size_t j = 0; j < H; j++) {
                l += h2[j] * p[6][j * D + f];
            }
            total += log1p(exp(l)) - xb[f] * l;
        }
    }
    return total / (double)b->n + ps_test_ref_l2(c, keys, p);
}

static void test_vae_tables_follow_kingma_welling(void **state)
{
    (void)state;
    ps_model_cfg c = vae_cfg(784, 500, 50, PS_ACT_SOFTPLUS);
    ps_table_desc t[PS_MODEL_MAX_TABLES];
    uint32_t n = 0;
    assert_int_equal(ps_model_tables(&c, t, PS_MODEL_MAX_TABLES, &n), 0);
    assert_int_equal(n, 8);
    const char *names[] = {"enc_w1", "enc_b1", "enc_w2", "enc_b2",
                           "dec_w1", "dec_b1", "dec_w2", "dec_b2"};
    const uint64_t rows[] = {784, 1, 500, 1, 50, 1, 500, 1};
    const uint32_t widths[] = {500, 500, 100, 100, 500, 500, 784, 784};
    for (uint32_t i = 0; i < n; i++) {
        assert_string_equal(t[i].name, names[i]);
        assert_int_equal(t[i].rows, rows[i]);
        assert_int_equal(t[i].width, widths[i]);
        assert_int_equal(t[i].init, i % 2 ? PS_INIT_ZEROS : PS_INIT_GLOROT);
    }
    assert_false(ps_model_has_accuracy(PS_MODEL_VAE));
    assert_true(ps_model_has_accuracy(PS_MODEL_CNN));
}

static void test_vae_gradient_matches_finite_differences(void **state)
{
    (void)state;
    float x[8 * 12];
    int32_t y[8];
    ps_batch b = ps_test_dense_batch(31, 5, 12, 10, x, y);
    const ps_act_kind acts[] = {PS_ACT_SOFTPLUS, PS_ACT_TANH, PS_ACT_SIGMOID, PS_ACT_RELU};
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        ps_model_cfg c = vae_cfg(12, 5, 3, acts[a]);
        c.l2 = a == 0 ? 0.01f : 0.0f;
        ps_test_gradcheck(&c, &b, 3 + a, ref_vae);
    }
    ps_model_cfg c = vae_cfg(12, 4, 1, PS_ACT_SOFTPLUS);
    b.n = 1;
    ps_test_gradcheck(&c, &b, 2, ref_vae);
}

/* The noise is keyed by the step: the same step gives the same loss and
 * gradient bit for bit, another step another loss. Evaluation uses a key
 * of its own: the same every time, and no correct count. */
static void test_vae_noise_is_keyed_and_evaluation_repeatable(void **state)
{
    (void)state;
    float x[8 * 12];
    int32_t y[8];
    ps_batch b = ps_test_dense_batch(41, 8, 12, 10, x, y);
    ps_model_cfg c = vae_cfg(12, 5, 3, PS_ACT_SOFTPLUS);
    c.max_batch = 3; /* evaluation in chunks of 3 */
    ps_model *m = NULL;
    assert_int_equal(ps_model_create(&m, &c), 0);
    ps_keylist keys[PS_TEST_MAXT] = {{0}};
    assert_int_equal(ps_model_batch_keys(m, &b, keys), 0);
    float *p[PS_TEST_MAXT] = {0}, *g[PS_TEST_MAXT] = {0}, *g2[PS_TEST_MAXT] = {0};
    ps_test_fill_params(m, keys, p);
    ps_test_alloc_like(m, keys, g);
    ps_test_alloc_like(m, keys, g2);
    const float *const *cp = (const float *const *)p;
    ps_batch three = b;
    three.n = 3;
    double l1, l2, l3;
    assert_int_equal(ps_model_forward_backward(m, &three, keys, cp, g, 4, &l1), 0);
    assert_int_equal(ps_model_forward_backward(m, &three, keys, cp, g2, 4, &l2), 0);
    assert_true(l1 == l2 && isfinite(l1) && l1 > 0);
    for (uint32_t t = 0; t < 8; t++) {
        assert_memory_equal(g[t], g2[t], keys[t].n * ps_model_table(m, t)->width * sizeof(float));
    }
    assert_int_equal(ps_model_forward_backward(m, &three, keys, cp, g, 5, &l3), 0);
    assert_true(l3 != l1);
    double e1, e2;
    size_t n1 = 99, n2 = 99;
    assert_int_equal(ps_model_evaluate(m, &b, keys, cp, &e1, &n1), 0);
    assert_int_equal(ps_model_evaluate(m, &b, keys, cp, &e2, &n2), 0);
    assert_true(e1 == e2 && isfinite(e1) && e1 > 0);
    assert_int_equal(n1, 0);
    int32_t classes[8];
    assert_int_equal(ps_model_predict(m, &b, keys, cp, classes), PS_EINVAL);
    ps_test_free_arrays(p, 8);
    ps_test_free_arrays(g, 8);
    ps_test_free_arrays(g2, 8);
    ps_model_keys_fini(keys, 8);
    ps_model_destroy(&m);
}

static void test_vae_rejects_dropout_sparse_input_and_bad_shapes(void **state)
{
    (void)state;
    ps_model *m = NULL;
    ps_model_cfg c = vae_cfg(12, 5, 3, PS_ACT_SOFTPLUS);
    c.dropout_hidden = 0.5f;
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = vae_cfg(12, 5, 3, PS_ACT_SOFTPLUS);
    c.sparse_input = 1;
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = vae_cfg(12, 5, 0, PS_ACT_SOFTPLUS);
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = vae_cfg(12, 5, 3, PS_ACT_SOFTPLUS);
    c.nhidden = 2;
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = vae_cfg(12, 5, 3, (ps_act_kind)7);
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    assert_null(m);
    c = vae_cfg(12, 5, 3, PS_ACT_SOFTPLUS);
    ps_test_model_create_oom_sweep(&c, 5);
}

/* A model file's description round-trips through ps_model_info_write and
 * ps_model_info_read for every kind, and a bad one is named. */
static void test_model_info_round_trips_every_kind(void **state)
{
    (void)state;
    const uint32_t conv[] = {8, 16};
    ps_model_cfg cfgs[4] = {vae_cfg(784, 500, 50, PS_ACT_TANH), vae_cfg(784, 500, 50, 0),
                            vae_cfg(784, 500, 50, 0), vae_cfg(784, 500, 50, 0)};
    cfgs[1].kind = PS_MODEL_CNN;
    cfgs[1].nconv = 2;
    memcpy(cfgs[1].conv, conv, sizeof conv);
    cfgs[1].latent = 0;
    cfgs[1].hidden[0] = 128;
    cfgs[2].kind = PS_MODEL_MLP;
    cfgs[2].nhidden = 2;
    cfgs[2].hidden[1] = 30;
    cfgs[2].activation = PS_ACT_SIGMOID;
    cfgs[2].latent = 0;
    cfgs[3].kind = PS_MODEL_LOGREG;
    cfgs[3].nhidden = 0;
    cfgs[3].latent = 0;
    for (int i = 0; i < 4; i++) {
        ps_file_model fm;
        ps_model_cfg back;
        char field[32], why[160];
        memset(&fm, 0xa5, sizeof fm);
        ps_model_info_write(&cfgs[i], &fm);
        assert_int_equal(ps_model_info_read(&fm, &back, field, sizeof field, why, sizeof why), 0);
        ps_table_desc a[PS_MODEL_MAX_TABLES], bt[PS_MODEL_MAX_TABLES];
        uint32_t na, nb;
        cfgs[i].max_batch = back.max_batch = 1;
        assert_int_equal(ps_model_tables(&cfgs[i], a, PS_MODEL_MAX_TABLES, &na), 0);
        assert_int_equal(ps_model_tables(&back, bt, PS_MODEL_MAX_TABLES, &nb), 0);
        assert_int_equal(na, nb);
        assert_memory_equal(a, bt, na * sizeof *a);
        assert_int_equal(back.kind, cfgs[i].kind);
        if (cfgs[i].kind == PS_MODEL_MLP || cfgs[i].kind == PS_MODEL_VAE) {
            assert_int_equal(back.activation, cfgs[i].activation);
        }
    }
    ps_file_model fm;
    ps_model_cfg back;
    char field[32], why[160];
    ps_model_info_write(&cfgs[2], &fm);
    snprintf(fm.activation, sizeof fm.activation, "gelu");
    assert_int_equal(ps_model_info_read(&fm, &back, field, sizeof field, why, sizeof why),
                     PS_EFORMAT);
    assert_string_equal(field, "model.activation");
    /* An older file without an activation is ReLU. */
    fm.activation[0] = '\0';
    assert_int_equal(ps_model_info_read(&fm, &back, field, sizeof field, why, sizeof why), 0);
    assert_int_equal(back.activation, PS_ACT_RELU);
    snprintf(fm.kind, sizeof fm.kind, "rnn");
    assert_int_equal(ps_model_info_read(&fm, &back, field, sizeof field, why, sizeof why),
                     PS_EFORMAT);
    assert_string_equal(field, "model.kind");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vae_tables_follow_kingma_welling),
        cmocka_unit_test(test_vae_gradient_matches_finite_differences),
        cmocka_unit_test(test_vae_noise_is_keyed_and_evaluation_repeatable),
        cmocka_unit_test(test_vae_rejects_dropout_sparse_input_and_bad_shapes),
        cmocka_unit_test(test_model_info_round_trips_every_kind),
    };
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
