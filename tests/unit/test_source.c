/* Tests for data/source.c: the format a file name suggests; the probe reads
 * no more of a libsvm file than the shape needs (the head with --hash-bits
 * or --features, the whole file without), counts IDX classes from the
 * labels, refuses an empty training set naming the file; --train-limit and
 * --test-limit load exactly their rows; --hash-bits hashes synthetic ids.
 * (The readers themselves have their own tests.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "data/dataset.h"
#include "data/fhash.h"
#include "data/source.h"
#include "tests/unit/ps_test.h"

static char tmpdir[64];

static int group_setup(void **state)
{
    if (ps_test_tmpdir_create(tmpdir, sizeof tmpdir, "source") != 0) {
        return -1;
    }
    return ps_test_setup(state);
}

static int group_teardown(void **state)
{
    ps_test_rmtree(tmpdir);
    return ps_test_teardown(state);
}

static void path_of(char *path, const char *name)
{
    snprintf(path, 256, "%s/%s", tmpdir, name);
}

/* A libsvm source over train and test files. */
static ps_source_cfg svm_cfg(const char *train, const char *test)
{
    return (ps_source_cfg){.dataset = "",
                           .data_dir = "",
                           .train = train,
                           .test = test,
                           .format = PS_FMT_LIBSVM,
                           .quiet = 1};
}

/* n lines "c k:1 (k+1):2", c = i % classes, k = i % 50 + 1; the line
 * bad_at (1-based; 0: none) has a hex value instead. */
static size_t svm_lines(char *buf, size_t n, unsigned classes, size_t bad_at)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        len += (size_t)sprintf(buf + len, i + 1 == bad_at ? "%u %zu:0x1p3\n" : "%u %zu:1 %zu:2\n",
                               (unsigned)(i % classes), i % 50 + 1, i % 50 + 2);
    }
    return len;
}

static void test_source_guess_format_from_names(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        ps_format want;
    } cases[] = {
        {"/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", PS_FMT_IDX},
        {"t10k-labels-idx1-ubyte", PS_FMT_IDX},
        {"data/x.idx", PS_FMT_IDX},
        {"x.idx3.gz", PS_FMT_IDX},
        {"x.ubyte", PS_FMT_IDX},
        {"a.svm", PS_FMT_LIBSVM},
        {"a.libsvm", PS_FMT_LIBSVM},
        {"a.txt", PS_FMT_LIBSVM},
        {"a.svm.gz", PS_FMT_LIBSVM},
        {"data", PS_FMT_LIBSVM},
        {"dir.idx/a.svm", PS_FMT_LIBSVM}, /* only the file name counts */
        {"ubyte-data.txt", PS_FMT_LIBSVM},
        {"", PS_FMT_LIBSVM},
        {NULL, PS_FMT_LIBSVM},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (ps_source_guess_format(cases[i].path) != cases[i].want) {
            fail_msg("guess '%s' wrong", cases[i].path ? cases[i].path : "(null)");
        }
    }
}

/* With --hash-bits (or --features) the probe reads only the head of the
 * training file: a bad line past it is not seen (the worker reading that
 * part will report it), ntrain is unknown, classes come from the head and
 * the test set. Without either, the whole file is scanned and the bad line
 * found there, with its line number. */
static void test_source_probe_reads_only_the_head_when_shape_is_known(void **state)
{
    (void)state;
    size_t n = 250000; /* ~3 MB, past the 1 MiB head */
    char *text = test_malloc(n * 24);
    size_t len = svm_lines(text, n, 3, n - 5);
    assert_true(len > 2 * PS_SOURCE_HEAD_BYTES);
    char train[256], test[256];
    path_of(train, "big.svm");
    path_of(test, "small.svm");
    ps_test_write_file(train, text, len);
    size_t train_len = len;
    len = svm_lines(text, 40, 2, 0);
    ps_test_write_file(test, text, len);
    test_free(text);

    ps_source_cfg c = svm_cfg(train, test);
    c.hash_bits = 12;
    ps_source_spec spec;
    assert_int_equal(ps_source_probe(&c, &spec), 0);
    assert_int_equal(spec.dim, 4096);
    assert_int_equal(spec.nclasses, 3);
    assert_int_equal(spec.ntrain, 0); /* not counted: workers count their parts */
    assert_int_equal(spec.ntest, 40);
    assert_int_equal(spec.train_bytes, train_len);
    assert_true(spec.sample_rows > 1000 && spec.sample_bytes <= PS_SOURCE_HEAD_BYTES + 4096);
    assert_int_equal(spec.max_nnz, 2);
    c.hash_bits = 0;
    c.features = 100;
    assert_int_equal(ps_source_probe(&c, &spec), 0);
    assert_int_equal(spec.dim, 100);

    c.features = 0;
    c.quiet = 0;
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    int rc = ps_source_probe(&c, &spec);
    char *log = ps_test_capture_end(&cap);
    assert_int_equal(rc, PS_EFORMAT);
    char want[300];
    snprintf(want, sizeof want, "scanning %s (", train);
    assert_non_null(strstr(log, want)); /* the scan is announced with the size */
    snprintf(want, sizeof want, "%s:%zu: value '0x1p3'", train, n - 5);
    assert_non_null(strstr(log, want));
    test_free(log);
}

/* An empty training set is refused naming the file: libsvm with only
 * comments, an IDX header of 0 samples. */
/* The probe of c fails with PS_EFORMAT, logging file and "empty". */
static void expect_empty(const ps_source_cfg *c, const char *file)
{
    ps_source_spec spec;
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    int rc = ps_source_probe(c, &spec);
    char *log = ps_test_capture_end(&cap);
    assert_int_equal(rc, PS_EFORMAT);
    assert_non_null(strstr(log, file));
    assert_non_null(strstr(log, "empty"));
    test_free(log);
}

static void test_source_refuses_empty_training_set_naming_the_file(void **state)
{
    (void)state;
    char train[256], test[256];
    path_of(train, "empty.svm");
    path_of(test, "t.svm");
    ps_test_write_text(train, "# nothing here\n\n");
    ps_test_write_text(test, "1 1:1\n");
    ps_source_cfg c = svm_cfg(train, test);
    for (int hashed = 0; hashed <= 1; hashed++) {
        c.hash_bits = hashed ? 8 : 0;
        expect_empty(&c, train);
    }
    /* IDX: 0 images of 2x2 and 0 labels. */
    unsigned char img[16] = {0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2};
    unsigned char lab[8] = {0, 0, 8, 1, 0, 0, 0, 0};
    char ti[256], tl[256];
    path_of(ti, "e-images-idx3-ubyte");
    path_of(tl, "e-labels-idx1-ubyte");
    ps_test_write_file(ti, img, sizeof img);
    ps_test_write_file(tl, lab, sizeof lab);
    ps_source_cfg x = {.dataset = "", .data_dir = "", .train = ti, .test = ti, .quiet = 1};
    expect_empty(&x, ti);
}

/* IDX classes are counted from both labels files: train labels up to 4,
 * test labels up to 2: 5 classes, and a load accepts label 4. */
static void test_source_counts_idx_classes_from_labels(void **state)
{
    (void)state;
    unsigned char img[16 + 6 * 4] = {0, 0, 8, 3, 0, 0, 0, 6, 0, 0, 0, 2, 0, 0, 0, 2};
    unsigned char lab[8 + 6] = {0, 0, 8, 1, 0, 0, 0, 6, 0, 1, 4, 3, 2, 1};
    char ti[256], tl[256], si[256], sl[256];
    path_of(ti, "c-images-idx3-ubyte");
    path_of(tl, "c-labels-idx1-ubyte");
    path_of(si, "d-images-idx3-ubyte");
    path_of(sl, "d-labels-idx1-ubyte");
    ps_test_write_file(ti, img, sizeof img);
    ps_test_write_file(tl, lab, sizeof lab);
    ps_test_write_file(si, img, sizeof img);
    lab[10] = 2;
    ps_test_write_file(sl, lab, sizeof lab);
    ps_source_cfg x = {.dataset = "", .data_dir = "", .train = ti, .test = si, .quiet = 1};
    ps_source_spec spec;
    assert_int_equal(ps_source_probe(&x, &spec), 0);
    assert_int_equal(spec.nclasses, 5);
    assert_int_equal(spec.dim, 4);
    assert_int_equal(spec.ntrain, 6);
    ps_dataset d = {0};
    assert_int_equal(ps_source_load_train(&x, &spec, 0, 1, &d), 0);
    assert_int_equal(d.nclasses, 5);
    assert_int_equal(d.y[2], 4);
    ps_dataset_fini(&d);
}

/* --train-limit N: the first N samples of the libsvm file, split by bytes
 * over the workers (every one of them once); --test-limit reads no more
 * than its rows. */
static void test_source_train_limit_is_the_first_samples(void **state)
{
    (void)state;
    char *text = test_malloc(500 * 24);
    char train[256], test[256];
    path_of(train, "lim.svm");
    path_of(test, "lim-test.svm");
    size_t len = svm_lines(text, 500, 2, 0);
    /* A comment and a blank line in the prefix are not samples. */
    ps_test_write_text(train, "# comment\n\n");
    FILE *f = fopen(train, "ab");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
    size_t train_len = 11 + len;
    len = svm_lines(text, 30, 2, 25); /* a bad line past the test limit */
    ps_test_write_file(test, text, len);
    test_free(text);
    ps_source_cfg c = svm_cfg(train, test);
    c.hash_bits = 10;
    c.train_limit = 123;
    c.test_limit = 20;
    ps_source_spec spec;
    assert_int_equal(ps_source_probe(&c, &spec), 0);
    assert_int_equal(spec.ntrain, 123);
    assert_int_equal(spec.ntest, 20);
    assert_true(spec.train_bytes > 0);
    size_t total = 0;
    for (uint32_t w = 0; w < 3; w++) {
        ps_dataset d = {0};
        assert_int_equal(ps_source_load_train(&c, &spec, w, 3, &d), 0);
        total += d.n;
        ps_dataset_fini(&d);
    }
    assert_int_equal(total, 123);
    ps_dataset t = {0};
    assert_int_equal(ps_source_load_test(&c, &spec, &t), 0);
    assert_int_equal(t.n, 20);
    ps_dataset_fini(&t);
    /* A limit past the file is the whole file. */
    c.train_limit = 100000;
    assert_int_equal(ps_source_probe(&c, &spec), 0);
    assert_int_equal(spec.ntrain, 500);
    assert_int_equal(spec.train_bytes, train_len);
}

/* --hash-bits applies to synthetic ids too: the key space is 2^B and every
 * row is hashed and sorted as a libsvm row would be. */
static void test_source_hashes_synthetic_ids(void **state)
{
    (void)state;
    ps_source_cfg c = {.dataset = "",
                       .data_dir = "",
                       .train = "",
                       .test = "",
                       .format = PS_FMT_SYNTH,
                       .hash_bits = 6,
                       .synth_test = 10,
                       .quiet = 1};
    ps_synth_cfg_default(&c.synth);
    c.synth.n = 60;
    c.synth.nfeatures = 1000;
    ps_source_spec spec;
    assert_int_equal(ps_source_probe(&c, &spec), 0);
    assert_int_equal(spec.dim, 64);
    assert_int_equal(spec.ntrain, 50);
    ps_dataset h = {0}, raw = {0};
    assert_int_equal(ps_source_load_train(&c, &spec, 0, 1, &h), 0);
    assert_int_equal(ps_synth_generate(&c.synth, 0, 50, &raw), 0);
    assert_int_equal(h.n, 50);
    assert_int_equal(h.dim, 64);
    for (size_t i = 0; i < h.n; i++) {
        float sum = 0, want = 0;
        for (uint64_t k = h.indptr[i]; k < h.indptr[i + 1]; k++) {
            assert_true(h.idx[k] < 64);
            assert_true(k == h.indptr[i] || h.idx[k] > h.idx[k - 1]);
            sum += h.val[k];
        }
        for (uint64_t k = raw.indptr[i]; k < raw.indptr[i + 1]; k++) {
            want += raw.val[k];
        }
        assert_true(sum == want); /* collisions merged by summing */
        assert_int_equal(h.y[i], raw.y[i]);
    }
    ps_dataset_fini(&h);
    ps_dataset_fini(&raw);
    /* test= taking every row leaves no training set. */
    c.synth_test = 60;
    assert_int_equal(ps_source_probe(&c, &spec), PS_ECONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_guess_format_from_names),
        cmocka_unit_test(test_source_probe_reads_only_the_head_when_shape_is_known),
        cmocka_unit_test(test_source_refuses_empty_training_set_naming_the_file),
        cmocka_unit_test(test_source_counts_idx_classes_from_labels),
        cmocka_unit_test(test_source_train_limit_is_the_first_samples),
        cmocka_unit_test(test_source_hashes_synthetic_ids),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
