/* Tests for worker/keyset: both methods (bitmap, in its popcnt copy and
 * its generic one; radix sort) and the
 * automatic choice give the same keys and positions as a simple reference
 * (qsort, drop repeats, binary search for each position), over random
 * batches of several id spaces and sizes, ids on word edges, one repeated
 * id, and a keyset reused for batch after batch (the bitmap must come back
 * clear); a failed allocation returns PS_ENOMEM at every point, and a
 * retry succeeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/rng.h"
#include "tests/unit/ps_test.h"
#include "worker/keyset.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorted distinct ids, and each id's index among them. */
static size_t reference(const uint64_t *ids, size_t n, uint64_t *keys, uint32_t *pos)
{
    memcpy(keys, ids, n * sizeof *ids);
    qsort(keys, n, sizeof *keys, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || keys[i] != keys[u - 1]) {
            keys[u++] = keys[i];
        }
    }
    for (size_t i = 0; i < n; i++) {
        const uint64_t *at = bsearch(&ids[i], keys, u, sizeof *keys, cmp_u64);
        pos[i] = (uint32_t)(at - keys);
    }
    return u;
}

/* Extracts ids with method and checks the result against the reference. */
static void check_method(ps_keyset *s, ps_keyset_method method, const uint64_t *ids, size_t n,
                         uint64_t dim)
{
    uint64_t *want = test_malloc((n + 1) * sizeof *want), *got = test_malloc((n + 1) * sizeof *got);
    uint32_t *wpos = test_malloc((n + 1) * sizeof *wpos),
             *gpos = test_malloc((n + 1) * sizeof *gpos);
    size_t nwant = reference(ids, n, want, wpos), ngot = SIZE_MAX;
    ps_keyset_set_method(s, method);
    assert_int_equal(ps_keyset_extract(s, ids, n, dim, got, gpos, &ngot), 0);
    assert_int_equal(ngot, nwant);
    assert_memory_equal(got, want, nwant * sizeof *want);
    if (n) {
        assert_memory_equal(gpos, wpos, n * sizeof *wpos);
    }
    test_free(want);
    test_free(got);
    test_free(wpos);
    test_free(gpos);
}

/* Every method, the bitmap both in the copy for this CPU and the generic one. */
static void check_all(ps_keyset *s, const uint64_t *ids, size_t n, uint64_t dim)
{
    for (int generic = 0; generic < 2; generic++) {
        ps_keyset_set_generic(s, generic);
        check_method(s, PS_KEYSET_BITMAP, ids, n, dim);
        check_method(s, PS_KEYSET_RADIX, ids, n, dim);
        check_method(s, PS_KEYSET_AUTO, ids, n, dim);
    }
    ps_keyset_set_generic(s, 0);
}

static void test_keyset_random_batches_match_reference(void **state)
{
    (void)state;
    static const uint64_t dims[] = {1, 63, 64, 65, 1000, 1u << 20, UINT64_C(1) << 24};
    static const size_t sizes[] = {1, 2, 100, 5000};
    ps_keyset *s = NULL;
    assert_int_equal(ps_keyset_create(&s), 0);
    ps_rng r;
    ps_rng_seed(&r, 11);
    uint64_t *ids = test_malloc(5000 * sizeof *ids);
    /* One keyset for every batch, largest space in the middle: a bitmap
     * left dirty by one batch would show in the next. */
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            for (size_t i = 0; i < sizes[k]; i++) {
                ids[i] = ps_rng_below(&r, dims[d]);
            }
            check_all(s, ids, sizes[k], dims[d]);
        }
    }
    ps_keyset_destroy(&s);
    assert_null(s);
    ps_keyset_destroy(&s); /* NULL is fine */
    test_free(ids);
}

static void test_keyset_word_edges_and_repeats(void **state)
{
    (void)state;
    ps_keyset *s = NULL;
    assert_int_equal(ps_keyset_create(&s), 0);
    const uint64_t edges[] = {127, 0, 63, 64, 128, 0, 191, 63, 65, 127, 192};
    check_all(s, edges, sizeof edges / sizeof edges[0], 193);
    uint64_t same[300];
    for (size_t i = 0; i < 300; i++) {
        same[i] = 4095;
    }
    check_all(s, same, 300, 4096);
    /* Ids far apart: the radix sort needs every digit. */
    const uint64_t wide[] = {UINT64_C(1) << 40, 5, (UINT64_C(1) << 40) + 1, 5, 1u << 22};
    check_method(s, PS_KEYSET_RADIX, wide, 5, (UINT64_C(1) << 40) + 2);
    check_method(s, PS_KEYSET_AUTO, wide, 5, (UINT64_C(1) << 40) + 2);
    size_t n = 7;
    assert_int_equal(ps_keyset_extract(s, wide, 0, 10, NULL, NULL, &n), 0);
    assert_int_equal(n, 0);
    ps_keyset_destroy(&s);
}

static void test_keyset_oom_then_retry(void **state)
{
    (void)state;
    uint64_t ids[64], keys[64];
    uint32_t pos[64];
    for (size_t i = 0; i < 64; i++) {
        ids[i] = (i * 7919) % 3000;
    }
    for (int method = PS_KEYSET_BITMAP; method <= PS_KEYSET_RADIX; method++) {
        int failed = 0;
        for (long at = 0; at < 20; at++) {
            ps_keyset *s = NULL;
            ps_test_fail_alloc(at);
            int rc = ps_keyset_create(&s);
            if (rc == 0) {
                ps_keyset_set_method(s, (ps_keyset_method)method);
                size_t n = 0;
                rc = ps_keyset_extract(s, ids, 64, 3000, keys, pos, &n);
            }
            ps_test_fail_alloc(-1);
            if (rc == 0) {
                ps_keyset_destroy(&s);
                break;
            }
            assert_int_equal(rc, PS_ENOMEM);
            failed++;
            if (s) {
                /* The same keyset works once memory is back. */
                check_method(s, (ps_keyset_method)method, ids, 64, 3000);
                ps_keyset_destroy(&s);
            }
        }
        assert_true(failed >= 2); /* the create and at least one buffer */
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
    const struct CMUnitTest tests[] = {
        T(test_keyset_random_batches_match_reference),
        T(test_keyset_word_edges_and_repeats),
        T(test_keyset_oom_then_retry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
