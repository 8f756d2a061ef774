/* Synthetic data: deterministic for a seed, any row range equals the same
 * rows of a bigger range, feature frequencies follow Zipf, labels come from
 * the planted model (which classifies its own data far above chance), huge
 * feature spaces need no table, and the libsvm writer round-trips. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sys/stat.h>

#include "data/dataset.h"
#include "common/err.h"
#include "data/libsvm.h"
#include "common/mem.h"
#include "data/synth.h"
#include "tests/unit/ps_test.h"

static char tmpdir[64];

static int count_files(void)
{
    int n = 0;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        }
        closedir(d);
    }
    return n;
}

static int group_setup(void **state)
{
    if (ps_test_tmpdir_create(tmpdir, sizeof tmpdir, "synth") != 0) {
        return -1;
    }
    return ps_test_setup(state);
}

static int group_teardown(void **state)
{
    ps_test_rmtree(tmpdir);
    return ps_test_teardown(state);
}

static ps_synth_cfg small_cfg(void)
{
    ps_synth_cfg c;
    ps_synth_cfg_default(&c);
    c.n = 3000;
    c.nfeatures = 5000;
    c.nnz = 10;
    c.nclasses = 5;
    c.seed = 17;
    return c;
}

static void assert_same_rows(const ps_dataset *a, size_t ra, const ps_dataset *b, size_t rb,
                             size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a->y[ra + i], b->y[rb + i]);
        uint64_t la = a->indptr[ra + i + 1] - a->indptr[ra + i];
        assert_int_equal(la, b->indptr[rb + i + 1] - b->indptr[rb + i]);
        assert_memory_equal(a->idx + a->indptr[ra + i], b->idx + b->indptr[rb + i],
                            la * sizeof *a->idx);
        assert_memory_equal(a->val + a->indptr[ra + i], b->val + b->indptr[rb + i],
                            la * sizeof *a->val);
    }
}

static void test_synth_rows_are_well_formed(void **state)
{
    (void)state;
    ps_synth_cfg c = small_cfg();
    ps_dataset d = {0};
    assert_int_equal(ps_synth_generate(&c, 0, 1000, &d), 0);
    assert_int_equal(d.n, 1000);
    assert_int_equal(d.sparse, 1);
    assert_int_equal(d.dim, 5000);
    assert_int_equal(d.nclasses, 5);
    for (size_t i = 0; i < d.n; i++) {
        assert_int_equal(d.indptr[i + 1] - d.indptr[i], 10);
        assert_true(d.y[i] >= 0 && d.y[i] < 5);
        for (uint64_t k = d.indptr[i]; k < d.indptr[i + 1]; k++) {
            assert_true(d.idx[k] < 5000);
            assert_true(d.val[k] == 1.0f);
            if (k > d.indptr[i]) {
                assert_true(d.idx[k] > d.idx[k - 1]); /* distinct, ascending */
            }
        }
    }
    ps_dataset_fini(&d);
}

static void test_synth_is_deterministic_for_seed(void **state)
{
    (void)state;
    ps_synth_cfg c = small_cfg();
    ps_dataset a = {0}, b = {0};
    assert_int_equal(ps_synth_generate(&c, 0, 500, &a), 0);
    assert_int_equal(ps_synth_generate(&c, 0, 500, &b), 0);
    assert_same_rows(&a, 0, &b, 0, 500);
    c.seed = 18;
    assert_int_equal(ps_synth_generate(&c, 0, 500, &b), 0);
    assert_memory_not_equal(a.idx, b.idx, 500 * 10 * sizeof *a.idx);
    ps_dataset_fini(&a);
    ps_dataset_fini(&b);
}

/* What each worker generates for itself equals its slice of the whole. */
static void test_synth_range_equals_slice_of_bigger_range(void **state)
{
    (void)state;
    ps_synth_cfg c = small_cfg();
    ps_dataset all = {0}, part = {0};
    assert_int_equal(ps_synth_generate(&c, 0, c.n, &all), 0);
    const size_t starts[] = {0, 1, 777, 2999};
    for (size_t s = 0; s < 4; s++) {
        size_t cnt = c.n - starts[s] < 200 ? c.n - starts[s] : 200;
        assert_int_equal(ps_synth_generate(&c, starts[s], cnt, &part), 0);
        assert_int_equal(part.n, cnt);
        assert_same_rows(&all, starts[s], &part, 0, cnt);
    }
    assert_int_equal(ps_synth_generate(&c, 2990, 11, &part), PS_ERANGE);
    assert_int_equal(part.n, 1); /* unchanged on failure */
    ps_dataset_fini(&all);
    ps_dataset_fini(&part);
}

/* With one feature per row the ids are plain Zipf draws: P(id k-1) is
 * k^-s / H(F, s). Checks the top frequencies against that (5 sigma) and
 * that id 0 is far more frequent than the median feature. */
static void test_synth_feature_frequencies_follow_zipf(void **state)
{
    (void)state;
    ps_synth_cfg c = small_cfg();
    c.n = 40000;
    c.nfeatures = 1000;
    c.nnz = 1;
    c.zipf_s = 1.1;
    ps_dataset d = {0};
    assert_int_equal(ps_synth_generate(&c, 0, c.n, &d), 0);
    long *cnt = ps_calloc(c.nfeatures, sizeof *cnt);
    assert_non_null(cnt);
    for (size_t i = 0; i < d.n; i++) {
        cnt[d.idx[i]]++;
    }
    double h = 0;
    for (uint64_t k = 1; k <= c.nfeatures; k++) {
        h += pow((double)k, -c.zipf_s);
    }
    for (uint64_t k = 1; k <= 8; k++) {
        double p = pow((double)k, -c.zipf_s) / h;
        double mean = p * (double)c.n, sd = sqrt((double)c.n * p * (1 - p));
        assert_true(fabs((double)cnt[k - 1] - mean) < 5 * sd);
    }
    /* Median feature frequency: sort a copy of the counts. */
    long *sorted = ps_malloc(c.nfeatures * sizeof *sorted);
    assert_non_null(sorted);
    memcpy(sorted, cnt, c.nfeatures * sizeof *sorted);
    for (size_t i = 1; i < c.nfeatures; i++) {
        long v = sorted[i];
        size_t j = i;
        while (j > 0 && sorted[j - 1] > v) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = v;
    }
    long median = sorted[c.nfeatures / 2];
    assert_true(cnt[0] > 100 * (median + 1));
    ps_free(sorted);
    ps_free(cnt);
    ps_dataset_fini(&d);
}

/* F = 2^30: no table of that size is built (this would take seconds and
 * gigabytes), yet ids reach deep into the tail. */
static void test_synth_handles_huge_feature_space(void **state)
{
    (void)state;
    ps_synth_cfg c = small_cfg();
    c.nfeatures = (uint64_t)1 << 30;
    c.nnz = 20;
    c.n = 2000;
    ps_dataset d = {0};
    assert_int_equal(ps_synth_generate(&c, 0, c.n, &d), 0);
    uint64_t maxid = 0;
    for (size_t k = 0; k < d.indptr[d.n]; k++) {
        assert_true(d.idx[k] < c.nfeatures);
        maxid = d.idx[k] > maxid ? d.idx[k] : maxid;
    }
    assert_true(maxid > ((uint64_t)1 << 24));
    ps_dataset_fini(&d);
}

/* Scores of the planted model for row i. */
static int32_t planted_argmax(const ps_synth_cfg *c, const ps_dataset *d, size_t i)
{
    double best = -INFINITY;
    int32_t arg = 0;
    for (uint32_t cl = 0; cl < c->nclasses; cl++) {
        double s = 0;
        for (uint64_t k = d->indptr[i]; k < d->indptr[i + 1]; k++) {
            s += (float)ps_synth_weight(c, d->idx[k], cl) * d->val[k];
        }
        if (s > best) {
            best = s;
            arg = (int32_t)cl;
        }
    }
    return arg;
}

/* Noise 1 (labels sampled from the softmax of the planted scores): the
 * planted argmax still gets far above the 10% chance level. Noise 0: the
 * labels are exactly its argmax. */
static void test_synth_labels_are_learnable(void **state)
{
    (void)state;
    ps_synth_cfg c = small_cfg();
    c.nclasses = 10;
    c.nfeatures = (uint64_t)1 << 20; /* beyond the weight cache, too */
    c.nnz = 20;
    c.n = 2000;
    c.noise = 1.0;
    ps_dataset d = {0};
    assert_int_equal(ps_synth_generate(&c, 0, c.n, &d), 0);
    size_t hit = 0;
    long per_class[10] = {0};
    for (size_t i = 0; i < d.n; i++) {
        hit += planted_argmax(&c, &d, i) == d.y[i];
        per_class[d.y[i]]++;
    }
    double acc = (double)hit / (double)d.n;
    print_message("planted model accuracy with noise 1: %.3f\n", acc);
    assert_true(acc > 0.5 && acc < 1.0);
    int used = 0;
    for (int cl = 0; cl < 10; cl++) {
        used += per_class[cl] > 0;
    }
    assert_true(used >= 5); /* not a single dominant class */

    c.noise = 0;
    assert_int_equal(ps_synth_generate(&c, 0, c.n, &d), 0);
    for (size_t i = 0; i < d.n; i++) {
        assert_int_equal(planted_argmax(&c, &d, i), d.y[i]);
    }
    ps_dataset_fini(&d);
}

static void test_synth_check_rejects_bad_config(void **state)
{
    (void)state;
    ps_synth_cfg c = small_cfg();
    assert_int_equal(ps_synth_check(&c), 0);
    c.nnz = 5001;
    assert_int_equal(ps_synth_check(&c), PS_ECONFIG);
    c = small_cfg();
    c.nclasses = 1;
    assert_int_equal(ps_synth_check(&c), PS_ECONFIG);
    c = small_cfg();
    c.zipf_s = -1;
    assert_int_equal(ps_synth_check(&c), PS_ECONFIG);
    c = small_cfg();
    c.noise = NAN;
    assert_int_equal(ps_synth_check(&c), PS_ECONFIG);
    c = small_cfg();
    c.nfeatures = 0;
    assert_int_equal(ps_synth_check(&c), PS_ECONFIG);
    ps_dataset d = {0};
    assert_int_equal(ps_synth_generate(&c, 0, 1, &d), PS_ECONFIG);
}

/* K close to F under a steep Zipf still ends, with K distinct ids. */
static void test_synth_fills_dense_rows(void **state)
{
    (void)state;
    ps_synth_cfg c = small_cfg();
    c.nfeatures = 12;
    c.nnz = 12;
    c.zipf_s = 4;
    c.n = 50;
    ps_dataset d = {0};
    assert_int_equal(ps_synth_generate(&c, 0, c.n, &d), 0);
    for (size_t i = 0; i < d.n; i++) {
        for (uint64_t k = 0; k < 12; k++) {
            assert_int_equal(d.idx[d.indptr[i] + k], k);
        }
    }
    ps_dataset_fini(&d);
}

static void test_synth_writes_libsvm_atomically(void **state)
{
    (void)state;
    ps_synth_cfg c = small_cfg();
    c.n = 5000; /* more than one write chunk */
    char path[256];
    snprintf(path, sizeof path, "%s/synth.svm", tmpdir);
    int before = count_files();
    assert_int_equal(ps_synth_write_libsvm(&c, path), 0);
    assert_int_equal(count_files(), before + 1); /* no temporary left */
    ps_libsvm_opts o = {.dim = c.nfeatures, .nclasses = c.nclasses};
    ps_dataset got = {0}, want = {0};
    assert_int_equal(ps_libsvm_load(path, &o, 0, UINT64_MAX, &got), 0);
    assert_int_equal(ps_synth_generate(&c, 0, c.n, &want), 0);
    assert_int_equal(got.n, c.n);
    assert_same_rows(&got, 0, &want, 0, c.n);
    ps_dataset_fini(&got);
    ps_dataset_fini(&want);
    /* The umask decides the mode, as for any file the user makes (mkstemp
     * gave 0600). */
    static const mode_t masks[2] = {022, 027};
    for (int i = 0; i < 2; i++) {
        mode_t old = umask(masks[i]);
        c.n = 10;
        int rc = ps_synth_write_libsvm(&c, path);
        umask(old);
        assert_int_equal(rc, 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0666 & ~masks[i]);
    }
    /* A directory that does not exist: PS_EIO, and nothing created. */
    snprintf(path, sizeof path, "%s/no/such/dir/x.svm", tmpdir);
    assert_int_equal(ps_synth_write_libsvm(&c, path), PS_EIO);
}

static void test_synth_generate_survives_oom(void **state)
{
    (void)state;
    ps_synth_cfg c = small_cfg();
    int rc = PS_ENOMEM;
    long n;
    ps_dataset d = {0};
    for (n = 0; rc == PS_ENOMEM && n < 50; n++) {
        ps_test_fail_alloc(n);
        rc = ps_synth_generate(&c, 10, 100, &d);
        ps_test_fail_alloc(-1);
        if (rc) {
            assert_int_equal(rc, PS_ENOMEM);
            assert_null(d.idx);
        }
    }
    assert_int_equal(rc, 0);
    assert_true(n > 2);
    assert_int_equal(d.n, 100);
    ps_dataset_fini(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synth_rows_are_well_formed),
        cmocka_unit_test(test_synth_is_deterministic_for_seed),
        cmocka_unit_test(test_synth_range_equals_slice_of_bigger_range),
        cmocka_unit_test(test_synth_feature_frequencies_follow_zipf),
        cmocka_unit_test(test_synth_handles_huge_feature_space),
        cmocka_unit_test(test_synth_labels_are_learnable),
        cmocka_unit_test(test_synth_check_rejects_bad_config),
        cmocka_unit_test(test_synth_fills_dense_rows),
        cmocka_unit_test(test_synth_writes_libsvm_atomically),
        cmocka_unit_test(test_synth_generate_survives_oom),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
