/* Tests for data/holdout.c: the held-out set is a pure function of (seed,
 * key) holding about the fraction, 0 holds nothing; filtering dense and
 * sparse rows keeps their order and contents, the two sides partition the
 * rows; appending grows a set piece by piece, and survives failed
 * allocations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "data/dataset.h"
#include "data/holdout.h"
#include "tests/unit/ps_test.h"

static void test_holdout_is_a_seeded_fraction(void **state)
{
    (void)state;
    ps_holdout h = {.fraction = 0.1, .seed = 42}, other = {.fraction = 0.1, .seed = 43};
    ps_holdout none = {.fraction = 0, .seed = 42};
    int held = 0, differ = 0;
    for (uint64_t k = 0; k < 100000; k++) {
        int a = ps_holdout_is_held(&h, k);
        assert_int_equal(a, ps_holdout_is_held(&h, k));
        assert_int_equal(ps_holdout_is_held(&none, k), 0);
        held += a;
        differ += a != ps_holdout_is_held(&other, k);
    }
    /* 10% of 1e5: 10000, sd 95. */
    assert_true(held > 9600 && held < 10400);
    /* Another seed holds out other samples: ~18% of keys differ. */
    assert_true(differ > 15000);
    /* A larger fraction holds out a superset (one threshold, one hash). */
    ps_holdout more = {.fraction = 0.3, .seed = 42};
    for (uint64_t k = 0; k < 10000; k++) {
        assert_true(!ps_holdout_is_held(&h, k) || ps_holdout_is_held(&more, k));
    }
}

/* A sparse set of n rows: row i has i % 3 + 1 entries valued i, ids i..;
 * built through append, so append is exercised too. */
static void make_sparse(ps_dataset *d, size_t n, size_t first)
{
    ps_dataset one = {0};
    one.sparse = 1;
    one.dim = 1000;
    one.nclasses = 2;
    for (size_t i = first; i < first + n; i++) {
        uint64_t indptr[2] = {0, i % 3 + 1}, idx[3] = {i, i + 1, i + 2};
        float val[3] = {(float)i, (float)i, (float)i};
        int32_t y = (int32_t)(i % 2);
        one.n = 1;
        one.indptr = indptr;
        one.idx = idx;
        one.val = val;
        one.y = &y;
        assert_int_equal(ps_holdout_append(d, &one), 0);
    }
}

static void test_holdout_filters_sparse_rows_into_two_sides(void **state)
{
    (void)state;
    enum { N = 500 };
    ps_holdout h = {.fraction = 0.4, .seed = 7};
    ps_dataset train = {0}, test = {0};
    make_sparse(&train, N, 0);
    make_sparse(&test, N, 0);
    assert_int_equal(train.n, N);
    ps_holdout_filter(&h, &train, 0, 0);
    ps_holdout_filter(&h, &test, 0, 1);
    assert_int_equal(train.n + test.n, N);
    size_t a = 0, b = 0;
    for (size_t i = 0; i < N; i++) {
        ps_dataset *d = ps_holdout_is_held(&h, i) ? &test : &train;
        size_t *k = d == &test ? &b : &a;
        uint64_t len = d->indptr[*k + 1] - d->indptr[*k];
        assert_int_equal(len, i % 3 + 1);
        assert_int_equal(d->idx[d->indptr[*k]], i);
        assert_true(d->val[d->indptr[*k] + len - 1] == (float)i);
        assert_int_equal(d->y[*k], (int32_t)(i % 2));
        (*k)++;
    }
    assert_int_equal(a, train.n);
    assert_int_equal(b, test.n);
    ps_dataset_fini(&train);
    ps_dataset_fini(&test);
}

/* Dense rows keyed from first_key: a worker's part of a larger set. */
static void test_holdout_filters_dense_rows_by_their_global_key(void **state)
{
    (void)state;
    enum { N = 64, D = 3, FIRST = 1000 };
    ps_holdout h = {.fraction = 0.5, .seed = 1};
    ps_dataset d = {0};
    d.dim = D;
    assert_int_equal(ps_dataset_reserve(&d, N, 0), 0);
    for (size_t i = 0; i < N; i++) {
        for (size_t f = 0; f < D; f++) {
            d.x[i * D + f] = (float)(i * 10 + f);
        }
        d.y[i] = (int32_t)i;
    }
    d.n = N;
    ps_holdout_filter(&h, &d, FIRST, 1);
    size_t k = 0;
    for (size_t i = 0; i < N; i++) {
        if (ps_holdout_is_held(&h, FIRST + i)) {
            assert_int_equal(d.y[k], (int32_t)i);
            assert_true(d.x[k * D + 2] == (float)(i * 10 + 2));
            k++;
        }
    }
    assert_int_equal(d.n, k);
    assert_true(k > 10 && k < 54);
    ps_dataset_fini(&d);
}

static int append_some(void)
{
    ps_dataset d = {0};
    ps_dataset one = {0};
    int rc = 0;
    one.sparse = 1;
    one.dim = 10;
    uint64_t indptr[3] = {5, 6, 8}, idx[8] = {0, 0, 0, 0, 0, 1, 2, 3};
    float val[8] = {0};
    int32_t y[2] = {1, 0};
    one.n = 2;
    one.indptr = indptr;
    one.idx = idx;
    one.val = val;
    one.y = y;
    for (int i = 0; i < 40 && rc == 0; i++) {
        rc = ps_holdout_append(&d, &one);
        assert_true(rc == 0 || d.n == (size_t)i * 2);
    }
    if (rc == 0) {
        /* A view's rows (indptr[0] != 0) land at the right place. */
        assert_int_equal(d.n, 80);
        assert_int_equal(d.indptr[80], 120);
        assert_int_equal(d.idx[d.indptr[79] + 1], 3);
    }
    ps_dataset_fini(&d);
    return rc;
}

static void test_holdout_append_survives_failed_allocations(void **state)
{
    (void)state;
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; rc == PS_ENOMEM && n < 200; n++) {
        ps_test_fail_alloc(n);
        rc = append_some();
        ps_test_fail_alloc(-1);
        assert_true(rc == 0 || rc == PS_ENOMEM);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_holdout_is_a_seeded_fraction),
        T(test_holdout_filters_sparse_rows_into_two_sides),
        T(test_holdout_filters_dense_rows_by_their_global_key),
        T(test_holdout_append_survives_failed_allocations),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
