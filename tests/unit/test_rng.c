/* Tests for common/rng: the counter-based hash depends on every input and
 * is a pure function; the float/normal/below helpers have the documented
 * ranges and moments; the sequential stream is reproducible from its seed
 * and from its one-word state (which checkpoints carry). Statistical
 * tolerances are stated per test, each several standard errors wide. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "tests/unit/ps_test.h"

#define NDRAWS 1000000

static void test_rng_hash_is_deterministic(void **state)
{
    (void)state;
    uint64_t a = ps_rng_hash(42, 1, 2, 3);
    (void)ps_rng_hash(7, 8, 9, 10); /* unrelated call in between: no hidden state */
    assert_true(ps_rng_hash(42, 1, 2, 3) == a);
    assert_true(ps_rng_hash(0, 0, 0, 0) == ps_rng_hash(0, 0, 0, 0));
}

/* Flipping any single bit of any one argument changes the output, and the
 * output bits flip about half the time (avalanche: 32 +- 10 of 64). */
static void test_rng_hash_depends_on_every_argument(void **state)
{
    (void)state;
    const uint64_t base[4] = {0x1234, 5, 6, 7};
    uint64_t h0 = ps_rng_hash(base[0], base[1], base[2], base[3]);
    long flips = 0, trials = 0;
    for (int arg = 0; arg < 4; arg++) {
        for (int bit = 0; bit < 64; bit++) {
            uint64_t v[4];
            memcpy(v, base, sizeof v);
            v[arg] ^= (uint64_t)1 << bit;
            uint64_t h = ps_rng_hash(v[0], v[1], v[2], v[3]);
            assert_true(h != h0);
            flips += __builtin_popcountll(h ^ h0);
            trials++;
        }
    }
    double mean = (double)flips / (double)trials;
    assert_true(mean > 30.0 && mean < 34.0);
    /* Argument positions are not interchangeable. */
    assert_true(ps_rng_hash(1, 2, 3, 4) != ps_rng_hash(1, 3, 2, 4));
    assert_true(ps_rng_hash(1, 2, 3, 4) != ps_rng_hash(2, 1, 3, 4));
    assert_true(ps_rng_hash(1, 2, 3, 4) != ps_rng_hash(1, 2, 4, 3));
}

/* Edge values are exact: 0 maps to 0, the largest input to 1 - 2^-24. */
static void test_rng_unit_float_range_and_mean(void **state)
{
    (void)state;
    assert_true(ps_rng_unit_float(0) == 0.0f);
    assert_true(ps_rng_unit_float(UINT64_MAX) == 1.0f - 1.0f / 16777216.0f);
    assert_true(ps_rng_unit_float(UINT64_MAX) < 1.0f);
    double sum = 0;
    for (uint64_t i = 0; i < NDRAWS; i++) {
        float u = ps_rng_unit_float(ps_rng_hash(3, i, 0, 0));
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
    }
    /* Standard error of the mean: sqrt(1/12 / 1e6) = 2.9e-4; allow 0.002. */
    assert_true(fabs(sum / NDRAWS - 0.5) < 0.002);
}

static void test_rng_unit_double_is_open_interval(void **state)
{
    (void)state;
    assert_true(ps_rng_unit_double(0) > 0.0);
    assert_true(ps_rng_unit_double(UINT64_MAX) < 1.0);
}

static void test_rng_normal_from_has_mean_0_variance_1(void **state)
{
    (void)state;
    double sum = 0, sum2 = 0;
    for (uint64_t i = 0; i < NDRAWS; i++) {
        double z = ps_rng_normal_from(ps_rng_hash(5, i, 0, 0), ps_rng_hash(5, i, 1, 0));
        assert_true(isfinite(z));
        sum += z;
        sum2 += z * z;
    }
    double mean = sum / NDRAWS, var = sum2 / NDRAWS - mean * mean;
    /* Standard errors: 1e-3 for the mean, sqrt(2/1e6) = 1.4e-3 for the
     * variance; allow 0.005 and 0.01. */
    assert_true(fabs(mean) < 0.005);
    assert_true(fabs(var - 1.0) < 0.01);
}

/* Counts per value for n = 3 and 10 over 300000 draws: each within 2% of
 * the expected count (about 6 standard deviations for n = 10). */
static void test_rng_below_is_in_range_and_uniform(void **state)
{
    (void)state;
    const uint64_t ns[] = {3, 10};
    const long draws = 300000;
    for (size_t k = 0; k < 2; k++) {
        uint64_t n = ns[k];
        long count[10] = {0};
        ps_rng r;
        ps_rng_seed(&r, 11 + k);
        for (long i = 0; i < draws; i++) {
            uint64_t x = ps_rng_below(&r, n);
            assert_true(x < n);
            count[x]++;
        }
        double expect = (double)draws / (double)n;
        for (uint64_t v = 0; v < n; v++) {
            assert_true(fabs((double)count[v] - expect) < 0.02 * expect);
        }
    }
    /* n = 1 is always 0; an n just above 2^63 rejects about half the raw
     * draws and must still stay below n. */
    ps_rng r;
    ps_rng_seed(&r, 1);
    uint64_t big = ((uint64_t)1 << 63) + 1;
    int high = 0;
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(ps_rng_below(&r, 1), 0);
        uint64_t x = ps_rng_below(&r, big);
        assert_true(x < big);
        high += x >= ((uint64_t)1 << 62);
    }
    assert_true(high > 4700 && high < 5300); /* half of [0, 2^63] lies above 2^62; sd 50 */
}

static void test_rng_stream_repeats_for_same_seed(void **state)
{
    (void)state;
    ps_rng a, b, c;
    ps_rng_seed(&a, 2024);
    ps_rng_seed(&b, 2024);
    ps_rng_seed(&c, 2025);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = ps_rng_next(&a);
        assert_true(x == ps_rng_next(&b));
        differ += x != ps_rng_next(&c);
    }
    assert_int_equal(differ, 1000);
    /* The whole state is one word: a copy continues the same stream, as a
     * checkpointed shuffle must after a resume. */
    ps_rng saved = a;
    double u = ps_rng_uniform(&a), z = ps_rng_normal(&a);
    uint64_t k = ps_rng_below(&a, 77);
    assert_true(u > 0.0 && u < 1.0);
    assert_true(ps_rng_uniform(&saved) == u);
    assert_true(ps_rng_normal(&saved) == z);
    assert_true(ps_rng_below(&saved, 77) == k);
    assert_true(saved.s == a.s);
}

static void test_rng_uniform_and_normal_moments(void **state)
{
    (void)state;
    ps_rng r;
    ps_rng_seed(&r, 99);
    double su = 0, sz = 0, sz2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double u = ps_rng_uniform(&r);
        assert_true(u > 0.0 && u < 1.0);
        su += u;
        double z = ps_rng_normal(&r);
        sz += z;
        sz2 += z * z;
    }
    /* Standard errors 6.5e-4, 2.2e-3 and 3.2e-3; allow about 5x. */
    assert_true(fabs(su / n - 0.5) < 0.003);
    assert_true(fabs(sz / n) < 0.011);
    assert_true(fabs(sz2 / n - 1.0) < 0.016);
}

/* The counter-based Gaussian: a pure function of (key, unit), the fill
 * equals unit-by-unit draws whatever the start (odd or even) and length,
 * and 10^6 draws have mean 0 +- 0.005, variance 1 +- 0.01 and 4.55% +- 0.1%
 * beyond two standard deviations (each about 5 standard errors). */
static void test_rng_gauss_is_a_counter_normal(void **state)
{
    (void)state;
    uint64_t key = ps_rng_hash(9, 1, 2, 3);
    assert_true(ps_rng_gauss(key, 17) == ps_rng_gauss(key, 17));
    assert_true(ps_rng_gauss(key, 17) != ps_rng_gauss(key, 18));
    assert_true(ps_rng_gauss(key, 17) != ps_rng_gauss(key ^ 1, 17));
    float buf[37];
    for (uint64_t first = 0; first < 4; first++) {
        for (size_t n = 0; n <= 37; n += 9) {
            ps_rng_gauss_fill(key, first, buf, n);
            for (size_t i = 0; i < n; i++) {
                assert_true(buf[i] == (float)ps_rng_gauss(key, first + i));
            }
        }
    }
    double sum = 0, sq = 0;
    long tail = 0;
    static float many[NDRAWS];
    ps_rng_gauss_fill(key, 0, many, NDRAWS);
    for (long i = 0; i < NDRAWS; i++) {
        sum += many[i];
        sq += (double)many[i] * many[i];
        tail += fabs(many[i]) > 2.0;
    }
    double mean = sum / NDRAWS, var = sq / NDRAWS - mean * mean;
    assert_true(fabs(mean) < 0.005);
    assert_true(fabs(var - 1.0) < 0.01);
    assert_true(fabs((double)tail / NDRAWS - 0.0455) < 0.001);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_gauss_is_a_counter_normal),
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_rng_hash_is_deterministic),
        T(test_rng_hash_depends_on_every_argument),
        T(test_rng_unit_float_range_and_mean),
        T(test_rng_unit_double_is_open_interval),
        T(test_rng_normal_from_has_mean_0_variance_1),
        T(test_rng_below_is_in_range_and_uniform),
        T(test_rng_stream_repeats_for_same_seed),
        T(test_rng_uniform_and_normal_moments),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
