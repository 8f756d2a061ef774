/* Datasets: views point at the right rows (dense and CSR), gather copies
 * rows in the given order and reuses or replaces its arrays, reserve grows
 * exactly, and an allocation failure leaves a valid dataset behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "data/dataset.h"
#include "common/err.h"
#include "common/mem.h"
#include "tests/unit/ps_test.h"

/* 4 dense rows of width 3: x[i][j] = 10 i + j, y = i. */
static void make_dense(ps_dataset *d)
{
    memset(d, 0, sizeof *d);
    d->dim = 3;
    d->nclasses = 4;
    assert_int_equal(ps_dataset_reserve(d, 4, 0), 0);
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 3; j++) {
            d->x[i * 3 + j] = (float)(10 * i + j);
        }
        d->y[i] = i;
    }
    d->n = 4;
}

/* 4 CSR rows: row i holds ids 0..i-1 with value 10 i + id (row 0 empty). */
static void make_sparse(ps_dataset *d)
{
    memset(d, 0, sizeof *d);
    d->sparse = 1;
    d->dim = 8;
    d->nclasses = 4;
    assert_int_equal(ps_dataset_reserve(d, 4, 6), 0);
    uint64_t o = 0;
    d->indptr[0] = 0;
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < i; k++) {
            d->idx[o] = (uint64_t)k;
            d->val[o] = (float)(10 * i + k);
            o++;
        }
        d->indptr[i + 1] = o;
        d->y[i] = i;
    }
    d->n = 4;
}

static void test_data_view_dense_rows(void **state)
{
    (void)state;
    ps_dataset d;
    make_dense(&d);
    ps_batch b = ps_dataset_view(&d, 1, 2);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.dim, 3);
    assert_int_equal(b.nclasses, 4);
    assert_int_equal(b.sparse, 0);
    assert_true(b.x[0] == 10.0f && b.x[5] == 22.0f);
    assert_int_equal(b.y[0], 1);
    assert_int_equal(b.y[1], 2);
    ps_dataset_fini(&d);
    assert_null(d.x);
    assert_int_equal(d.n, 0);
    ps_dataset_fini(NULL);
}

static void test_data_view_sparse_rows_share_base(void **state)
{
    (void)state;
    ps_dataset d;
    make_sparse(&d);
    ps_batch b = ps_dataset_view(&d, 2, 2);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.sparse, 1);
    /* Offsets stay absolute into the parent's idx/val. */
    assert_int_equal(b.indptr[0], 1);
    assert_int_equal(b.indptr[2], 6);
    assert_int_equal(b.idx[b.indptr[1]], 0);
    assert_true(b.val[b.indptr[1] + 2] == 32.0f);
    assert_int_equal(b.y[1], 3);
    ps_dataset_fini(&d);
}

static void test_data_gather_dense_in_order(void **state)
{
    (void)state;
    ps_dataset d, out = {0};
    make_dense(&d);
    const size_t order[5] = {3, 0, 0, 2, 1};
    assert_int_equal(ps_dataset_gather(&d, order, 5, &out), 0);
    assert_int_equal(out.n, 5);
    assert_int_equal(out.dim, 3);
    assert_int_equal(out.nclasses, 4);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(out.y[i], (int)order[i]);
        for (int j = 0; j < 3; j++) {
            assert_true(out.x[i * 3 + j] == (float)(10 * order[i] + (size_t)j));
        }
    }
    /* A smaller gather reuses the arrays. */
    float *x = out.x;
    assert_int_equal(ps_dataset_gather(&d, order + 3, 2, &out), 0);
    assert_ptr_equal(out.x, x);
    assert_int_equal(out.y[0], 2);
    assert_int_equal(out.n, 2);
    ps_dataset_fini(&out);
    ps_dataset_fini(&d);
}

static void test_data_gather_sparse_rebuilds_indptr(void **state)
{
    (void)state;
    ps_dataset d, out = {0};
    make_sparse(&d);
    const size_t order[4] = {3, 0, 2, 3};
    assert_int_equal(ps_dataset_gather(&d, order, 4, &out), 0);
    assert_int_equal(out.sparse, 1);
    const uint64_t want_ptr[5] = {0, 3, 3, 5, 8};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(out.indptr[i], want_ptr[i]);
    }
    assert_true(out.val[0] == 30.0f && out.val[4] == 21.0f && out.val[7] == 32.0f);
    assert_int_equal(out.idx[4], 1);
    assert_int_equal(out.y[2], 2);
    /* Gathering dense rows into a sparse out replaces its arrays. */
    ps_dataset dense;
    make_dense(&dense);
    assert_int_equal(ps_dataset_gather(&dense, order, 2, &out), 0);
    assert_int_equal(out.sparse, 0);
    assert_null(out.idx);
    assert_true(out.x[3] == 0.0f && out.x[2] == 32.0f);
    ps_dataset_fini(&dense);
    ps_dataset_fini(&out);
    ps_dataset_fini(&d);
}

static void test_data_reserve_grows_exactly(void **state)
{
    (void)state;
    ps_dataset d = {0};
    d.sparse = 1;
    assert_int_equal(ps_dataset_reserve(&d, 10, 100), 0);
    assert_int_equal(d.n_cap, 10);
    assert_int_equal(d.nnz_cap, 100);
    assert_int_equal(d.indptr[0], 0);
    d.indptr[10] = 7; /* n_cap + 1 entries are there (ASan would catch it) */
    assert_int_equal(ps_dataset_reserve(&d, 5, 50), 0); /* never shrinks */
    assert_int_equal(d.n_cap, 10);
    assert_int_equal(d.nnz_cap, 100);
    ps_dataset_fini(&d);
}

/* Every allocation of a gather fails in turn: PS_ENOMEM, out still valid
 * (finalisable, nothing leaked), until it succeeds. */
static void test_data_gather_survives_oom(void **state)
{
    (void)state;
    ps_dataset d;
    make_sparse(&d);
    const size_t order[3] = {3, 1, 2};
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; rc == PS_ENOMEM && n < 20; n++) {
        ps_dataset out = {0};
        ps_test_fail_alloc(n);
        rc = ps_dataset_gather(&d, order, 3, &out);
        ps_test_fail_alloc(-1);
        if (rc) {
            assert_int_equal(rc, PS_ENOMEM);
            assert_int_equal(out.n, 0);
        } else {
            assert_int_equal(out.indptr[3], 6);
        }
        ps_dataset_fini(&out);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 2);
    ps_dataset_fini(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_view_dense_rows),
        cmocka_unit_test(test_data_view_sparse_rows_share_base),
        cmocka_unit_test(test_data_gather_dense_in_order),
        cmocka_unit_test(test_data_gather_sparse_rebuilds_indptr),
        cmocka_unit_test(test_data_reserve_grows_exactly),
        cmocka_unit_test(test_data_gather_survives_oom),
    };
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
