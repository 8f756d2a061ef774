/* Tests for worker/dropout: keep rate, scale, determinism, and that masks
 * change with step and worker. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "worker/dropout.h"
#include "tests/unit/ps_test.h"

#define NUNITS 1000000

/* Over 10^6 units the kept fraction is within 1% (absolute) of 1 - p, and
 * every kept value is exactly 1 / (1 - p). */
static void check_keep_rate(float p)
{
    float *mask = malloc(NUNITS * sizeof *mask);
    assert_non_null(mask);
    ps_dropout d;
    ps_dropout_init(&d, 12345, 3, 77, p);
    ps_dropout_fill(&d, 0, mask, NUNITS);
    float s = 1.0f / (1.0f - p);
    long kept = 0;
    for (long i = 0; i < NUNITS; i++) {
        assert_true(mask[i] == 0.0f || mask[i] == s);
        kept += mask[i] != 0.0f;
    }
    assert_true(fabs((double)kept / NUNITS - (1.0 - p)) < 0.01);
    /* Each of the four 16-bit lanes of a draw keeps at the same rate. */
    for (int lane = 0; lane < 4; lane++) {
        long k = 0;
        for (long i = lane; i < NUNITS; i += 4) {
            k += mask[i] != 0.0f;
        }
        assert_true(fabs((double)k / (NUNITS / 4) - (1.0 - p)) < 0.01);
    }
    free(mask);
}

static void test_dropout_keeps_one_minus_p(void **state)
{
    (void)state;
    check_keep_rate(0.2f);
    check_keep_rate(0.5f);
}

/* The vectorised fill equals the per-unit function, for odd and even
 * starting units and lengths. */
static void test_dropout_fill_matches_scale(void **state)
{
    (void)state;
    float mask[101];
    uint64_t starts[] = {0, 1, 6, 999, UINT64_C(1) << 56};
    size_t lens[] = {101, 100, 1, 0};
    for (size_t s = 0; s < 5; s++) {
        for (size_t l = 0; l < 4; l++) {
            ps_dropout d;
            ps_dropout_init(&d, 9, 1, 4, 0.3f);
            ps_dropout_fill(&d, starts[s], mask, lens[l]);
            for (size_t i = 0; i < lens[l]; i++) {
                assert_true(mask[i] == ps_dropout_scale(9, 1, 4, starts[s] + i, 0.3f));
            }
        }
    }
}

/* Same (seed, worker, step, unit): same mask. Another step, worker or seed:
 * a fresh mask, so about 2 p (1 - p) of the decisions differ. */
static void test_dropout_mask_is_keyed_by_seed_worker_step(void **state)
{
    (void)state;
    enum { N = 20000 };
    const float p = 0.5f;
    long diff_step = 0, diff_worker = 0, diff_seed = 0;
    for (uint64_t u = 0; u < N; u++) {
        float a = ps_dropout_scale(5, 2, 10, u, p);
        assert_true(a == ps_dropout_scale(5, 2, 10, u, p));
        diff_step += a != ps_dropout_scale(5, 2, 11, u, p);
        diff_worker += a != ps_dropout_scale(5, 3, 10, u, p);
        diff_seed += a != ps_dropout_scale(6, 2, 10, u, p);
    }
    assert_true(fabs((double)diff_step / N - 0.5) < 0.03);
    assert_true(fabs((double)diff_worker / N - 0.5) < 0.03);
    assert_true(fabs((double)diff_seed / N - 0.5) < 0.03);
}

static void test_dropout_zero_p_keeps_everything(void **state)
{
    (void)state;
    float mask[33];
    ps_dropout d;
    ps_dropout_init(&d, 1, 0, 0, 0.0f);
    ps_dropout_fill(&d, 3, mask, 33);
    for (int i = 0; i < 33; i++) {
        assert_true(mask[i] == 1.0f);
        assert_true(ps_dropout_scale(1, 0, 0, (uint64_t)i, 0.0f) == 1.0f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dropout_keeps_one_minus_p),
        cmocka_unit_test(test_dropout_fill_matches_scale),
        cmocka_unit_test(test_dropout_mask_is_keyed_by_seed_worker_step),
        cmocka_unit_test(test_dropout_zero_p_keeps_everything),
    };
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
