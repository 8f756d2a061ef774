/* Feature hashing: deterministic, in range, uniform over buckets, and a row
 * with colliding ids comes out sorted with their values summed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/err.h"
#include "data/fhash.h"
#include "common/mem.h"
#include "common/rng.h"
#include "tests/unit/ps_test.h"

static void test_fhash_is_deterministic_and_in_range(void **state)
{
    (void)state;
    for (unsigned bits = 1; bits <= 40; bits++) {
        for (uint64_t id = 0; id < 2000; id += 7) {
            uint64_t h = ps_fhash(id, bits);
            assert_true(h < ((uint64_t)1 << bits));
            assert_true(h == ps_fhash(id, bits));
        }
    }
    /* Large ids too, and bits == 0 is the identity. */
    assert_true(ps_fhash(UINT64_MAX, 40) < ((uint64_t)1 << 40));
    assert_true(ps_fhash(123456789, 0) == 123456789);
}

static void test_fhash_differs_from_identity(void **state)
{
    (void)state;
    /* A hash that kept low bits would map 0..1023 to themselves. */
    int same = 0;
    for (uint64_t id = 0; id < 1024; id++) {
        same += ps_fhash(id, 10) == id;
    }
    assert_true(same < 10); /* ~1 expected */
}

/* Chi-square over 2^10 buckets: 1023 dof, mean 1023, sd ~45; 1400 is more
 * than 8 sd out. Three id patterns a weak hash fails: consecutive, strided
 * by the bucket count, and high bits only. */
static double chi2_buckets(uint64_t start, uint64_t stride)
{
    enum { B = 1024, N = 1 << 20 };
    static long cnt[B];
    for (int i = 0; i < B; i++) {
        cnt[i] = 0;
    }
    for (uint64_t i = 0; i < N; i++) {
        cnt[ps_fhash(start + i * stride, 10)]++;
    }
    double exp = (double)N / B, chi2 = 0;
    for (int i = 0; i < B; i++) {
        chi2 += ((double)cnt[i] - exp) * ((double)cnt[i] - exp) / exp;
    }
    return chi2;
}

static void test_fhash_spreads_ids_uniformly(void **state)
{
    (void)state;
    assert_true(chi2_buckets(0, 1) < 1400);
    assert_true(chi2_buckets(5, 1024) < 1400);
    assert_true(chi2_buckets(0, (uint64_t)1 << 32) < 1400);
}

static void test_fhash_row_merges_collisions(void **state)
{
    (void)state;
    /* With 1 bit everything lands in rows 0 and 1. */
    uint64_t idx[6] = {3, 10, 11, 500, 9000, 77777};
    float val[6] = {1, 2, 4, 8, 16, 32};
    float want[2] = {0, 0};
    for (int i = 0; i < 6; i++) {
        want[ps_fhash(idx[i], 1)] += val[i];
    }
    size_t n = ps_fhash_row(idx, val, 6, 1);
    assert_true(n >= 1 && n <= 2);
    float got[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        assert_true(idx[i] < 2);
        if (i > 0) {
            assert_true(idx[i] > idx[i - 1]);
        }
        got[idx[i]] = val[i];
    }
    assert_true(got[0] == want[0] && got[1] == want[1]);
    assert_int_equal(ps_fhash_row(idx, val, 0, 1), 0);
}

/* A long row (heapsort path): ascending, in range, values conserved per
 * bucket. */
static void test_fhash_row_sorts_long_rows(void **state)
{
    (void)state;
    enum { N = 1000, BITS = 6 };
    uint64_t *idx = ps_malloc(N * sizeof *idx);
    float *val = ps_malloc(N * sizeof *val);
    assert_true(idx && val);
    double want[1 << BITS] = {0};
    ps_rng r;
    ps_rng_seed(&r, 5);
    for (int i = 0; i < N; i++) {
        idx[i] = ps_rng_next(&r);
        val[i] = (float)(i % 7);
        want[ps_fhash(idx[i], BITS)] += val[i];
    }
    size_t n = ps_fhash_row(idx, val, N, BITS);
    assert_true(n > 32 && n <= (1 << BITS));
    for (size_t i = 0; i < n; i++) {
        assert_true(idx[i] < (1 << BITS));
        if (i > 0) {
            assert_true(idx[i] > idx[i - 1]);
        }
        assert_true((double)val[i] == want[idx[i]]);
    }
    ps_free(idx);
    ps_free(val);
}

static void test_fhash_check_bits_rejects_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(ps_fhash_check_bits(0), PS_ECONFIG);
    assert_int_equal(ps_fhash_check_bits(41), PS_ECONFIG);
    assert_int_equal(ps_fhash_check_bits(1), 0);
    assert_int_equal(ps_fhash_check_bits(40), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fhash_is_deterministic_and_in_range),
        cmocka_unit_test(test_fhash_differs_from_identity),
        cmocka_unit_test(test_fhash_spreads_ids_uniformly),
        cmocka_unit_test(test_fhash_row_merges_collisions),
        cmocka_unit_test(test_fhash_row_sorts_long_rows),
        cmocka_unit_test(test_fhash_check_bits_rejects_out_of_range),
    };
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
