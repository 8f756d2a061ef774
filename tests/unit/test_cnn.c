/* Tests for worker/cnn and worker/conv: the table list of the paper's
 * architecture, shapes that cannot work, gradients against central finite
 * differences of a direct double-precision convolution/pooling reference
 * (one and three channels, one and two stages, dropout on the input and
 * the fully connected layer, L2), im2col against its adjoint, and chunked
 * im2col (a batch larger than one column buffer) against whole chunks. */
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
#include "worker/model_internal.h"
#include "tests/unit/ps_test.h"
#include "tests/unit/ps_test_model.h"

#define MAXC 4  /* channels in the reference */
#define MAXS 8  /* image side in the reference */
#define MAXF 64 /* flattened pooled map */

static ps_model_cfg cnn_cfg(uint64_t in_dim, uint32_t nconv, const uint32_t *conv, uint32_t fc,
                            uint32_t nclasses, float pin, float ph)
{
    ps_model_cfg c = {0};
    c.kind = PS_MODEL_CNN;
    c.in_dim = in_dim;
    c.nclasses = nclasses;
    c.nconv = nconv;
    memcpy(c.conv, conv, nconv * sizeof *conv);
    c.nhidden = 1;
    c.hidden[0] = fc;
    c.dropout_input = pin;
    c.dropout_hidden = ph;
    c.init_override = -1;
    c.seed = 7;
    c.worker = 1;
    c.max_batch = 16;
    return c;
}

/* The network from the definitions: x is channel-major, a 5x5 kernel row
 * is (ci*5 + dy)*5 + dx, pooling takes 3x3 windows at stride 2 that fit,
 * the fully connected layer reads the last pooled map position-major
 * ((py*pw + px)*channels + ch), dropout units as worker/model.h says. */
static double ref_cnn(const ps_model_cfg *c, const ps_batch *b, const ps_keylist *keys,
                      double *const *p, uint64_t step)
{
    uint32_t ch = c->in_dim % 3 == 0 && c->in_dim != 9 ? 3 : 1;
    uint32_t side = (uint32_t)lround(sqrt((double)(c->in_dim / ch)));
    uint32_t F = c->hidden[0], C = c->nclasses, K = c->nconv;
    double total = 0.0;
    for (size_t i = 0; i < b->n; i++) {
        static double map[MAXC][MAXS][MAXS], conv[MAXC][MAXS][MAXS];
        uint32_t cin = ch, s = side;
        for (uint32_t q = 0; q < ch; q++) {
            for (uint32_t y = 0; y < side; y++) {
                for (uint32_t x = 0; x < side; x++) {
                    uint64_t f = ((uint64_t)q * side + y) * side + x;
                    map[q][y][x] = b->x[i * c->in_dim + f] *
                                   ps_dropout_scale(c->seed, c->worker, step, i * c->in_dim + f,
                                                    c->dropout_input);
                }
            }
        }
        for (uint32_t k = 0; k < K; k++) {
            uint32_t cout = c->conv[k];
            const double *w = p[2 * k], *bias = p[2 * k + 1];
            for (uint32_t co = 0; co < cout; co++) {
                for (int y = 0; y < (int)s; y++) {
                    for (int x = 0; x < (int)s; x++) {
                        double z = bias[co];
                        for (uint32_t ci = 0; ci < cin; ci++) {
                            for (int dy = 0; dy < 5; dy++) {
                                for (int dx = 0; dx < 5; dx++) {
                                    int yy = y + dy - 2, xx = x + dx - 2;
                                    if (yy >= 0 && yy < (int)s && xx >= 0 && xx < (int)s) {
                                        z += map[ci][yy][xx] *
                                             w[(size_t)((ci * 5 + dy) * 5 + dx) * cout + co];
                                    }
                                }
                            }
                        }
                        conv[co][y][x] = z > 0.0 ? z : 0.0;
                    }
                }
            }
            uint32_t ps = (s - 3) / 2 + 1;
            for (uint32_t co = 0; co < cout; co++) {
                for (uint32_t py = 0; py < ps; py++) {
                    for (uint32_t px = 0; px < ps; px++) {
                        double mx = -INFINITY;
                        for (uint32_t dy = 0; dy < 3; dy++) {
                            for (uint32_t dx = 0; dx < 3; dx++) {
                                double v = conv[co][2 * py + dy][2 * px + dx];
                                mx = v > mx ? v : mx;
                            }
                        }
                        map[co][py][px] = mx;
                    }
                }
            }
            cin = cout;
            s = ps;
        }
        double flat[MAXF], a[MAXF], z[MAXF];
        uint32_t nflat = s * s * cin;
        assert_true(nflat <= MAXF && F <= MAXF);
        for (uint32_t y = 0; y < s; y++) {
            for (uint32_t x = 0; x < s; x++) {
                for (uint32_t q = 0; q < cin; q++) {
                    flat[(y * s + x) * cin + q] = map[q][y][x];
                }
            }
        }
        for (uint32_t j = 0; j < F; j++) {
            double v = p[2 * K + 1][j];
            for (uint32_t e = 0; e < nflat; e++) {
                v += flat[e] * p[2 * K][(size_t)e * F + j];
            }
            uint64_t unit = (UINT64_C(1) << 56) + i * F + j;
            a[j] = (v > 0.0 ? v : 0.0) *
                   ps_dropout_scale(c->seed, c->worker, step, unit, c->dropout_hidden);
        }
        double mx = -INFINITY, sum = 0.0;
        for (uint32_t k = 0; k < C; k++) {
            z[k] = p[2 * K + 3][k];
            for (uint32_t j = 0; j < F; j++) {
                z[k] += a[j] * p[2 * K + 2][(size_t)j * C + k];
            }
            mx = z[k] > mx ? z[k] : mx;
        }
        for (uint32_t k = 0; k < C; k++) {
            sum += exp(z[k] - mx);
        }
        total += mx + log(sum) - z[b->y[i]];
    }
    return total / (double)b->n + ps_test_ref_l2(c, keys, p);
}

static void test_cnn_tables_follow_the_architecture(void **state)
{
    (void)state;
    const uint32_t conv[] = {32, 64};
    ps_model_cfg c = cnn_cfg(784, 2, conv, 1000, 10, 0.2f, 0.5f);
    ps_table_desc t[PS_MODEL_MAX_TABLES];
    uint32_t n = 0;
    assert_int_equal(ps_model_tables(&c, t, PS_MODEL_MAX_TABLES, &n), 0);
    assert_int_equal(n, 8);
    const char *names[] = {"conv1_w", "conv1_b", "conv2_w", "conv2_b",
                           "fc_w",    "fc_b",    "out_w",   "out_b"};
    /* 28 -> pooled 13 -> pooled 6: the FC layer sees 6 x 6 x 64. */
    const uint64_t rows[] = {25, 1, 32 * 25, 1, 6 * 6 * 64, 1, 1000, 1};
    const uint32_t widths[] = {32, 32, 64, 64, 1000, 1000, 10, 10};
    for (uint32_t i = 0; i < n; i++) {
        assert_string_equal(t[i].name, names[i]);
        assert_int_equal(t[i].rows, rows[i]);
        assert_int_equal(t[i].width, widths[i]);
        assert_int_equal(t[i].init, i % 2 ? PS_INIT_ZEROS : PS_INIT_GLOROT);
    }
    /* Glorot over the kernel's fan-in and fan-out. */
    assert_float_equal(t[2].scale, sqrt(6.0 / (25.0 * (32 + 64))), 1e-6);
    /* The paper's CIFAR-10 net on 32x32x3: 32 -> 15 -> 7 -> 3. */
    const uint32_t cifar[] = {64, 64, 128};
    c = cnn_cfg(3072, 3, cifar, 1000, 10, 0.2f, 0.5f);
    assert_int_equal(ps_model_tables(&c, t, PS_MODEL_MAX_TABLES, &n), 0);
    assert_int_equal(n, 10);
    assert_int_equal(t[0].rows, 3 * 25);
    assert_int_equal(t[6].rows, 3 * 3 * 128);
}

static void test_cnn_rejects_shapes_that_cannot_work(void **state)
{
    (void)state;
    const uint32_t conv[] = {4, 4, 4};
    ps_model *m = NULL;
    ps_model_cfg c = cnn_cfg(50, 1, conv, 8, 3, 0, 0); /* not a square image */
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = cnn_cfg(49, 3, conv, 8, 3, 0, 0); /* 7 -> 3 -> 1: the third stage cannot pool */
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = cnn_cfg(49, 0, conv, 8, 3, 0, 0);
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = cnn_cfg(49, 1, conv, 0, 3, 0, 0);
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    c = cnn_cfg(49, 1, conv, 8, 3, 0, 0);
    c.sparse_input = 1;
    assert_int_equal(ps_model_create(&m, &c), PS_ECONFIG);
    assert_null(m);
    c = cnn_cfg(49, 2, conv, 8, 3, 0, 0);
    assert_int_equal(ps_model_create(&m, &c), 0);
    ps_model_destroy(&m);
}

static void test_cnn_gradient_matches_finite_differences(void **state)
{
    (void)state;
    float x[16 * 75];
    int32_t y[16];
    const uint32_t two[] = {2, 3}, one[] = {2};
    /* 7x7x1, two stages (7 -> 3 -> 1), dropout on input and FC, L2. */
    ps_batch b = ps_test_dense_batch(3, 3, 49, 3, x, y);
    ps_model_cfg c = cnn_cfg(49, 2, two, 4, 3, 0.2f, 0.3f);
    c.l2 = 0.01f;
    ps_test_gradcheck(&c, &b, 5, ref_cnn);
    c = cnn_cfg(49, 2, two, 4, 3, 0.0f, 0.0f);
    ps_test_gradcheck(&c, &b, 1, ref_cnn);
    /* 5x5x3 channel-major input, one stage (5 -> 2). */
    b = ps_test_dense_batch(4, 4, 75, 4, x, y);
    c = cnn_cfg(75, 1, one, 3, 4, 0.1f, 0.2f);
    ps_test_gradcheck(&c, &b, 9, ref_cnn);
}

/* <im2col(x), g> = <x, col2im(g)> for position-major maps: col2im is the
 * adjoint, which is what the backward pass needs. */
static void test_conv_col2im_is_the_adjoint_of_im2col(void **state)
{
    (void)state;
    enum { N = 2, C = 3, H = 6, W = 5, ROW = C * 25 };
    static float x[N * H * W * C], col[N * H * W * ROW], g[N * H * W * ROW], dx[N * H * W * C];
    ps_rng r;
    ps_rng_seed(&r, 11);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) {
        x[i] = (float)ps_rng_uniform(&r) - 0.5f;
    }
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        g[i] = (float)ps_rng_uniform(&r) - 0.5f;
    }
    ps_conv_im2col(x, N, C, H, W, H * W * C, 1, C, col);
    ps_conv_col2im(g, N, C, H, W, dx);
    double lhs = 0.0, rhs = 0.0;
    for (size_t i = 0; i < sizeof col / sizeof col[0]; i++) {
        lhs += (double)col[i] * g[i];
    }
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) {
        rhs += (double)x[i] * dx[i];
    }
    assert_true(fabs(lhs - rhs) <= 1e-4 * fabs(lhs) + 1e-5);
    /* A corner position sees the padding: its first row of the kernel is
     * zero, its centre is the pixel itself. */
    assert_true(col[0] == 0.0f);
    assert_true(col[(size_t)(2 * 5 + 2)] == x[0]);
}

/* Max pooling picks the largest of each 3x3 window (the first on ties)
 * and its gradient goes to that position only. */
static void test_conv_pool_routes_gradient_to_the_maximum(void **state)
{
    (void)state;
    float in[5 * 5], out[4], din[25], dout[4] = {1, 2, 3, 4};
    uint32_t arg[4];
    for (int i = 0; i < 25; i++) {
        in[i] = (float)((i * 7) % 11);
    }
    ps_conv_pool(in, 1, 1, 5, 5, out, arg);
    assert_int_equal(ps_conv_pooled(5), 2);
    for (int py = 0; py < 2; py++) {
        for (int px = 0; px < 2; px++) {
            float mx = -1;
            for (int dy = 0; dy < 3; dy++) {
                for (int dx = 0; dx < 3; dx++) {
                    float v = in[(2 * py + dy) * 5 + 2 * px + dx];
                    mx = v > mx ? v : mx;
                }
            }
            assert_true(out[py * 2 + px] == mx);
            assert_true(in[arg[py * 2 + px]] == mx);
        }
    }
    ps_conv_pool_grad(dout, arg, 4, 25, din);
    double sum = 0;
    for (int i = 0; i < 25; i++) {
        sum += din[i];
    }
    assert_true(sum == 10.0);
    assert_true(din[arg[3]] >= 4.0f);
}

/* A 64x64x3 image fills 13 samples per column buffer: a batch of 16 runs
 * in two chunks, and its gradient is the mean of the gradients of its two
 * halves (each one chunk), to float rounding. */
static void test_cnn_chunked_batch_equals_its_halves(void **state)
{
    (void)state;
    enum { N = 16, D = 64 * 64 * 3 };
    float *x = malloc(N * D * sizeof(float));
    int32_t y[N];
    assert_non_null(x);
    const uint32_t conv[] = {2};
    ps_model_cfg c = cnn_cfg(D, 1, conv, 4, 3, 0.0f, 0.0f);
    ps_batch all = ps_test_dense_batch(21, N, D, 3, x, y);
    ps_batch half[2] = {all, all};
    half[0].n = half[1].n = N / 2;
    half[1].x = x + (N / 2) * D;
    half[1].y = y + N / 2;
    ps_model *m = NULL;
    assert_int_equal(ps_model_create(&m, &c), 0);
    uint32_t nt = ps_model_ntables(m);
    ps_keylist keys[PS_TEST_MAXT] = {{0}};
    assert_int_equal(ps_model_batch_keys(m, &all, keys), 0);
    float *p[PS_TEST_MAXT] = {0}, *g[PS_TEST_MAXT] = {0}, *g0[PS_TEST_MAXT] = {0},
          *g1[PS_TEST_MAXT] = {0};
    ps_test_fill_params_spread(m, keys, p, 0.2f);
    ps_test_alloc_like(m, keys, g);
    ps_test_alloc_like(m, keys, g0);
    ps_test_alloc_like(m, keys, g1);
    const float *const *cp = (const float *const *)p;
    double l, l0, l1;
    assert_int_equal(ps_model_forward_backward(m, &all, keys, cp, g, 1, &l), 0);
    assert_int_equal(ps_model_forward_backward(m, &half[0], keys, cp, g0, 1, &l0), 0);
    assert_int_equal(ps_model_forward_backward(m, &half[1], keys, cp, g1, 1, &l1), 0);
    assert_true(fabs(l - 0.5 * (l0 + l1)) <= 1e-5 * fabs(l));
    for (uint32_t t = 0; t < nt; t++) {
        size_t len = keys[t].n * ps_model_table(m, t)->width;
        for (size_t e = 0; e < len; e++) {
            double want = 0.5 * ((double)g0[t][e] + g1[t][e]);
            if (fabs(g[t][e] - want) > 1e-5 + 1e-4 * fabs(want)) {
                fail_msg("table %s entry %zu: batch %g, halves %g", ps_model_table(m, t)->name, e,
                         (double)g[t][e], want);
            }
        }
    }
    ps_test_free_arrays(p, nt);
    ps_test_free_arrays(g, nt);
    ps_test_free_arrays(g0, nt);
    ps_test_free_arrays(g1, nt);
    ps_model_keys_fini(keys, nt);
    ps_model_destroy(&m);
    free(x);
}

/* Fail allocation 0, 1, 2, ... until create succeeds: PS_ENOMEM each time,
 * nothing leaked (cmocka checks). */
static void test_cnn_create_survives_every_failed_allocation(void **state)
{
    (void)state;
    const uint32_t conv[] = {2, 3};
    ps_model_cfg c = cnn_cfg(49, 2, conv, 4, 3, 0.2f, 0.3f);
    ps_test_model_create_oom_sweep(&c, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cnn_tables_follow_the_architecture),
        cmocka_unit_test(test_cnn_rejects_shapes_that_cannot_work),
        cmocka_unit_test(test_cnn_gradient_matches_finite_differences),
        cmocka_unit_test(test_conv_col2im_is_the_adjoint_of_im2col),
        cmocka_unit_test(test_conv_pool_routes_gradient_to_the_maximum),
        cmocka_unit_test(test_cnn_chunked_batch_equals_its_halves),
        cmocka_unit_test(test_cnn_create_survives_every_failed_allocation),
    };
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
