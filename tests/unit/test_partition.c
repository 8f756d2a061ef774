/* Partitioning: blocks cover every row/byte exactly once for any worker
 * count; the shuffle is a permutation fixed by (seed, epoch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/mem.h"
#include "data/partition.h"
#include "tests/unit/ps_test.h"

static const size_t sizes[] = {0, 1, 2, 7, 8, 9, 100, 1001, 60000};

static void test_partition_range_covers_exactly_once(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        for (uint32_t w = 1; w <= 8; w++) {
            unsigned char *seen = test_calloc(n + 1, 1);
            size_t next = 0, minc = SIZE_MAX, maxc = 0;
            for (uint32_t k = 0; k < w; k++) {
                size_t first, count;
                assert_int_equal(ps_partition_range(n, w, k, &first, &count), 0);
                /* Blocks are contiguous and in worker order. */
                assert_int_equal(first, next);
                next = first + count;
                for (size_t i = first; i < first + count; i++) {
                    assert_true(i < n);
                    seen[i]++;
                }
                minc = count < minc ? count : minc;
                maxc = count > maxc ? count : maxc;
            }
            assert_int_equal(next, n);
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(seen[i], 1);
            }
            /* Balanced: sizes differ by at most one. */
            assert_true(maxc - minc <= 1);
            test_free(seen);
        }
    }
}

static void test_partition_bytes_covers_exactly_once(void **state)
{
    (void)state;
    const uint64_t fsizes[] = {0, 1, 5, 4096, 1000003, (uint64_t)1 << 40};
    for (size_t s = 0; s < sizeof fsizes / sizeof fsizes[0]; s++) {
        for (uint32_t w = 1; w <= 8; w++) {
            uint64_t next = 0;
            for (uint32_t k = 0; k < w; k++) {
                uint64_t b, e;
                assert_int_equal(ps_partition_bytes(fsizes[s], w, k, &b, &e), 0);
                assert_true(b == next && e >= b);
                assert_true(e - b <= fsizes[s] / w + 1);
                next = e;
            }
            assert_true(next == fsizes[s]);
        }
    }
}

static void test_partition_rejects_bad_worker(void **state)
{
    (void)state;
    size_t f, c;
    uint64_t b, e;
    assert_int_equal(ps_partition_range(10, 0, 0, &f, &c), PS_EINVAL);
    assert_int_equal(ps_partition_range(10, 4, 4, &f, &c), PS_EINVAL);
    assert_int_equal(ps_partition_bytes(10, 0, 0, &b, &e), PS_EINVAL);
    assert_int_equal(ps_partition_bytes(10, 2, 7, &b, &e), PS_EINVAL);
}

static void assert_permutation(const size_t *order, size_t n)
{
    unsigned char *seen = test_calloc(n + 1, 1);
    for (size_t i = 0; i < n; i++) {
        assert_true(order[i] < n);
        assert_int_equal(seen[order[i]], 0);
        seen[order[i]] = 1;
    }
    test_free(seen);
}

static void test_partition_shuffle_is_permutation(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        size_t *o = test_malloc((n + 1) * sizeof *o);
        ps_partition_shuffle(o, n, 42, 3);
        assert_permutation(o, n);
        test_free(o);
    }
}

static void test_partition_shuffle_depends_on_seed_and_epoch(void **state)
{
    (void)state;
    enum { N = 1000 };
    static size_t a[N], b[N], c[N], d[N];
    ps_partition_shuffle(a, N, 7, 0);
    ps_partition_shuffle(b, N, 7, 0);
    ps_partition_shuffle(c, N, 7, 1);
    ps_partition_shuffle(d, N, 8, 0);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    assert_memory_not_equal(a, d, sizeof a);
    /* Not the identity either. */
    size_t fixed = 0;
    for (size_t i = 0; i < N; i++) {
        fixed += a[i] == i;
    }
    assert_true(fixed < 20); /* expected 1 for a random permutation */
}

/* All 24 orders of 4 items are equally likely: 48000 epochs, ~2000 each;
 * chi-square with 23 dof has mean 23, and 80 is beyond p = 1e-7. */
static void test_partition_shuffle_is_uniform(void **state)
{
    (void)state;
    long count[24] = {0};
    for (uint64_t ep = 0; ep < 48000; ep++) {
        size_t o[4];
        ps_partition_shuffle(o, 4, 99, ep);
        /* Lehmer code of the permutation. */
        int code = 0;
        for (int i = 0; i < 4; i++) {
            int smaller = 0;
            for (int j = i + 1; j < 4; j++) {
                smaller += o[j] < o[i];
            }
            code = code * (4 - i) + smaller;
        }
        count[code]++;
    }
    double chi2 = 0;
    for (int i = 0; i < 24; i++) {
        double dlt = (double)count[i] - 2000.0;
        chi2 += dlt * dlt / 2000.0;
    }
    assert_true(chi2 < 80.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition_range_covers_exactly_once),
        cmocka_unit_test(test_partition_bytes_covers_exactly_once),
        cmocka_unit_test(test_partition_rejects_bad_worker),
        cmocka_unit_test(test_partition_shuffle_is_permutation),
        cmocka_unit_test(test_partition_shuffle_depends_on_seed_and_epoch),
        cmocka_unit_test(test_partition_shuffle_is_uniform),
    };
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
