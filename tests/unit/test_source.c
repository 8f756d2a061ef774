/* Tests for data/source.c: the format a file name suggests; the probe reads
 * no more of a libsvm file than the shape needs (the head with --hash-bits
 * or --features, the whole file without), counts IDX classes from the
 * labels, refuses an empty training set naming the file; --train-limit and
 * --test-limit load exactly their rows; --hash-bits hashes synthetic ids.
 * --holdout: for synthetic, IDX and libsvm (plain and gzip) data the
 * training parts of any number of workers and the held-out test set are
 * disjoint, cover the data and do not depend on the worker count. libsvm
 * labels become classes (+1/-1 two, 1..K K, 0..C-1 the identity); a gzip
 * training file is split by lines. (The readers have their own tests.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "common/err.h"
#include "data/dataset.h"
#include "data/fhash.h"
#include "data/holdout.h"
#include "data/libsvm.h"
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

/* The sample ids a data set holds: each row's first value (libsvm, IDX
 * pixel 0) names its sample. Appends to ids. */
static void collect_ids(const ps_dataset *d, int *ids, size_t *n)
{
    for (size_t i = 0; i < d->n; i++) {
        ids[(*n)++] =
            d->sparse ? (int)d->val[d->indptr[i]] : (int)(d->x[i * d->dim] * 255.0f + 0.5f);
    }
}

/* Loads the training parts of nworkers workers and the test set of c,
 * checks that the parts, whatever nworkers, and the test set are disjoint
 * and together hold ids 0..n-1 once each, and that the test set is the
 * held-out ids under (fraction, seed) when keyed by row (keyed_by_row).
 * Returns the test set's size. */
static size_t check_holdout(const ps_source_cfg *c, const ps_source_spec *spec, int n,
                            int keyed_by_row)
{
    int *ids = test_malloc((size_t)n * 2 * sizeof *ids),
        *seen = test_calloc((size_t)n, sizeof *seen);
    size_t ntest = 0;
    ps_dataset d = {0};
    assert_int_equal(ps_source_load_test(c, spec, &d), 0);
    collect_ids(&d, ids, &ntest);
    for (size_t i = 0; i < ntest; i++) {
        assert_true(ids[i] >= 0 && ids[i] < n);
        seen[ids[i]] = 100; /* test side */
    }
    for (uint32_t w = 1; w <= 3; w++) {
        size_t total = 0;
        for (uint32_t k = 0; k < w; k++) {
            size_t m = 0;
            assert_int_equal(ps_source_load_train(c, spec, k, w, &d), 0);
            collect_ids(&d, ids, &m);
            for (size_t i = 0; i < m; i++) {
                assert_true(ids[i] >= 0 && ids[i] < n);
                if (seen[ids[i]] != (int)w - 1) { /* once per split, never tested */
                    fail_msg("%s: id %d of worker %u/%u seen as %d", c->train, ids[i], k, w,
                             seen[ids[i]]);
                }
                seen[ids[i]] = (int)w;
            }
            total += m;
        }
        assert_int_equal(total + ntest, (size_t)n);
    }
    ps_holdout h = {.fraction = c->holdout, .seed = c->seed};
    for (int i = 0; i < n; i++) {
        assert_true(seen[i] == 100 || seen[i] == 3);
        if (keyed_by_row) {
            assert_int_equal(seen[i] == 100, ps_holdout_is_held(&h, (uint64_t)i));
        }
    }
    ps_dataset_fini(&d);
    test_free(ids);
    test_free(seen);
    return ntest;
}

static void write_gz(const char *path, const char *text, size_t len)
{
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, text, (unsigned)len), (int)len);
    assert_int_equal(gzclose(g), Z_OK);
}

/* --holdout on IDX (pixel 0 is the sample's number), synthetic and libsvm
 * (plain and gzip) data. */
static void test_source_holdout_is_disjoint_for_every_format(void **state)
{
    (void)state;
    enum { N = 200 };
    /* IDX: N images of 1x2, pixel 0 = index, labels i % 3. */
    unsigned char img[16 + 2 * N] = {0, 0, 8, 3, 0, 0, 0, N, 0, 0, 0, 1, 0, 0, 0, 2};
    unsigned char lab[8 + N] = {0, 0, 8, 1, 0, 0, 0, N};
    for (int i = 0; i < N; i++) {
        img[16 + 2 * i] = (unsigned char)i;
        lab[8 + i] = (unsigned char)(i % 3);
    }
    char ti[256], tl[256];
    path_of(ti, "h-images-idx3-ubyte");
    path_of(tl, "h-labels-idx1-ubyte");
    ps_test_write_file(ti, img, sizeof img);
    ps_test_write_file(tl, lab, sizeof lab);
    ps_source_cfg x = {.dataset = "",
                       .data_dir = "",
                       .train = ti,
                       .test = "",
                       .quiet = 1,
                       .holdout = 0.3,
                       .seed = 5};
    ps_source_spec spec;
    assert_int_equal(ps_source_probe(&x, &spec), 0);
    size_t held = check_holdout(&x, &spec, N, 1);
    assert_int_equal(spec.ntest, held);
    assert_true(held > 35 && held < 85); /* 30% of 200: 60, sd 6.5 */
    /* Another seed, another split. */
    x.seed = 6;
    assert_int_equal(ps_source_probe(&x, &spec), 0);
    assert_int_equal(check_holdout(&x, &spec, N, 1), spec.ntest);
    /* --test-limit: the first held-out samples. */
    x.test_limit = 7;
    assert_int_equal(ps_source_probe(&x, &spec), 0);
    assert_int_equal(spec.ntest, 7);
    ps_dataset d = {0};
    assert_int_equal(ps_source_load_test(&x, &spec, &d), 0);
    assert_int_equal(d.n, 7);
    ps_dataset_fini(&d);

    /* Synthetic: the held-out rows are the generator's rows, not its test
     * rows. */
    ps_source_cfg s = {.dataset = "",
                       .data_dir = "",
                       .train = "",
                       .test = "",
                       .format = PS_FMT_SYNTH,
                       .synth_test = 50,
                       .quiet = 1,
                       .holdout = 0.2,
                       .seed = 9};
    ps_synth_cfg_default(&s.synth);
    s.synth.n = 250;
    s.synth.nfeatures = 5000;
    assert_int_equal(ps_source_probe(&s, &spec), 0);
    ps_holdout h = {.fraction = 0.2, .seed = 9};
    size_t want = 0;
    for (uint64_t i = 0; i < 200; i++) {
        want += (size_t)ps_holdout_is_held(&h, i);
    }
    assert_int_equal(spec.ntest, want);
    ps_dataset t = {0}, all = {0}, part = {0};
    assert_int_equal(ps_source_load_test(&s, &spec, &t), 0);
    assert_int_equal(ps_synth_generate(&s.synth, 0, 200, &all), 0);
    assert_int_equal(t.n, want);
    size_t k = 0, trained = 0;
    for (uint64_t i = 0; i < 200; i++) {
        if (ps_holdout_is_held(&h, i)) {
            uint64_t len = all.indptr[i + 1] - all.indptr[i];
            assert_int_equal(t.indptr[k + 1] - t.indptr[k], len);
            assert_memory_equal(t.idx + t.indptr[k], all.idx + all.indptr[i],
                                len * sizeof(uint64_t));
            assert_int_equal(t.y[k], all.y[i]);
            k++;
        }
    }
    for (uint32_t w = 0; w < 2; w++) {
        assert_int_equal(ps_source_load_train(&s, &spec, w, 2, &part), 0);
        trained += part.n;
    }
    assert_int_equal(trained + t.n, 200);
    ps_dataset_fini(&t);
    ps_dataset_fini(&all);
    ps_dataset_fini(&part);

    /* libsvm, plain and gzip: line i is "c 1:i 2:1", keyed by offset. */
    char *text = test_malloc(N * 32);
    size_t len = 0;
    for (int i = 0; i < N; i++) {
        len += (size_t)sprintf(text + len, "%d 1:%d 2:1\n", i % 2 ? 1 : -1, i);
    }
    char svm[256], gz[256];
    path_of(svm, "hold.svm");
    path_of(gz, "hold.svm.gz");
    ps_test_write_file(svm, text, len);
    write_gz(gz, text, len);
    test_free(text);
    size_t held_plain = 0;
    for (int g = 0; g <= 1; g++) {
        ps_source_cfg c = svm_cfg(g ? gz : svm, "");
        c.holdout = 0.25;
        c.seed = 4;
        c.features = 4; /* the shape known (no hashing: val[0] is feature 1's) */
        assert_int_equal(ps_source_probe(&c, &spec), 0);
        assert_int_equal(spec.train_gzip, g);
        held = check_holdout(&c, &spec, N, 0);
        /* The whole file was read (small, or gzip): the count is exact. */
        assert_int_equal(spec.ntest, held);
        /* Offsets are in the text, so gzip holds out the same lines. */
        held_plain = g ? held_plain : held;
        assert_int_equal(held, held_plain);
        assert_true(held > 25 && held < 75);
    }
}

/* libsvm labels: +1/-1 are two classes (-1 first), 1..3 three, 0..2 the
 * identity (no list); a single label is refused; --labels names them. */
static void test_source_labels_become_classes(void **state)
{
    (void)state;
    char train[256], test[256];
    path_of(train, "lab.svm");
    path_of(test, "lab-test.svm");
    ps_source_spec spec;
    ps_dataset d = {0};

    ps_test_write_text(train, "+1 1:1\n-1 2:1\n+1 3:1\n");
    ps_test_write_text(test, "-1 1:1\n");
    ps_source_cfg c = svm_cfg(train, test);
    assert_int_equal(ps_source_probe(&c, &spec), 0);
    assert_int_equal(spec.nclasses, 2);
    assert_int_equal(spec.nlabels, 2);
    assert_int_equal(spec.labels[0], -1);
    assert_int_equal(spec.labels[1], 1);
    assert_int_equal(ps_source_load_train(&c, &spec, 0, 1, &d), 0);
    const int32_t pm[3] = {1, 0, 1};
    assert_memory_equal(d.y, pm, sizeof pm);

    ps_test_write_text(train, "3 1:1\n1 2:1\n");
    ps_test_write_text(test, "2 1:1\n");
    assert_int_equal(ps_source_probe(&c, &spec), 0);
    assert_int_equal(spec.nclasses, 3); /* no unused class 0 */
    assert_int_equal(spec.nlabels, 3);
    assert_int_equal(spec.labels[0], 1);
    assert_int_equal(ps_source_load_test(&c, &spec, &d), 0);
    assert_int_equal(d.y[0], 1);

    ps_test_write_text(train, "2 1:1\n0 2:1\n");
    ps_test_write_text(test, "1 1:1\n");
    assert_int_equal(ps_source_probe(&c, &spec), 0);
    assert_int_equal(spec.nclasses, 3);
    assert_int_equal(spec.nlabels, 0); /* 0..2: the class ids themselves */

    ps_test_write_text(train, "1 1:1\n1 2:1\n");
    ps_test_write_text(test, "1 1:1\n");
    PS_TEST_EXPECT_LOG(ps_source_probe(&c, &spec), PS_EFORMAT, "a single label (1)");
    c.labels = "1,5";
    assert_int_equal(ps_source_probe(&c, &spec), 0);
    assert_int_equal(spec.nclasses, 2);
    assert_int_equal(spec.labels[1], 5);
    ps_dataset_fini(&d);
}

/* With the shape known only the head is probed: a label first seen past
 * it is refused at its line, saying to list the labels; --labels does. */
static void test_source_late_label_names_the_fix(void **state)
{
    (void)state;
    size_t n = 100000; /* ~1.7 MB */
    char *text = test_malloc(n * 24 + 32);
    size_t len = svm_lines(text, n, 2, 0);
    len += (size_t)sprintf(text + len, "9 1:1\n");
    char train[256], test[256];
    path_of(train, "late.svm");
    path_of(test, "late-test.svm");
    ps_test_write_file(train, text, len);
    test_free(text);
    ps_test_write_text(test, "0 1:1\n1 1:1\n");
    ps_source_cfg c = svm_cfg(train, test);
    c.hash_bits = 10;
    ps_source_spec spec;
    assert_int_equal(ps_source_probe(&c, &spec), 0);
    assert_int_equal(spec.nclasses, 2);
    ps_dataset d = {0};
    char want[400];
    snprintf(want, sizeof want, "%s:%zu: label 9 is not a class id in [0, 2)", train, n + 1);
    PS_TEST_EXPECT_LOG(ps_source_load_train(&c, &spec, 0, 1, &d), PS_EFORMAT, want);
    c.labels = "0,1,9";
    assert_int_equal(ps_source_probe(&c, &spec), 0);
    assert_int_equal(spec.nclasses, 3);
    assert_int_equal(ps_source_load_train(&c, &spec, 0, 1, &d), 0);
    assert_int_equal(d.n, n + 1);
    assert_int_equal(d.y[n], 2);
    ps_dataset_fini(&d);
}

/* A gzip training file is read whole by the probe (its text's size),
 * split over the workers by lines, and streamed the same way. */
static void test_source_gzip_training_file_splits_by_lines(void **state)
{
    (void)state;
    enum { N = 301 };
    char *text = test_malloc(N * 32);
    size_t len = 0;
    for (int i = 0; i < N; i++) {
        len += (size_t)sprintf(text + len, "%d 1:%d 3:0.5\n", i % 3, i);
    }
    char gz[256], test[256];
    path_of(gz, "split.svm.gz");
    path_of(test, "split-test.svm");
    write_gz(gz, text, len);
    ps_test_write_text(test, "0 1:1\n1 2:1\n2 2:1\n");
    test_free(text);
    ps_source_cfg c = svm_cfg(gz, test);
    c.features = 4;
    ps_source_spec spec;
    assert_int_equal(ps_source_probe(&c, &spec), 0);
    assert_int_equal(spec.train_gzip, 1);
    assert_int_equal(spec.train_bytes, len); /* the text's size */
    assert_int_equal(spec.ntrain, N);        /* read whole */
    int seen[N] = {0};
    for (uint32_t w = 0; w < 3; w++) {
        ps_dataset d = {0};
        assert_int_equal(ps_source_load_train(&c, &spec, w, 3, &d), 0);
        assert_int_equal(d.n, N / 3 + (w < N % 3));
        for (size_t i = 0; i < d.n; i++) {
            seen[(int)d.val[d.indptr[i]]]++;
        }
        ps_dataset_fini(&d);
        struct ps_libsvm *r = NULL;
        uint64_t bytes = 0;
        assert_int_equal(ps_source_open_train_stream(&c, &spec, w, 3, &r, &bytes), 0);
        assert_int_equal(bytes, len / 3);
        ps_libsvm_close(&r);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(seen[i], 1);
    }
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
        cmocka_unit_test(test_source_holdout_is_disjoint_for_every_format),
        cmocka_unit_test(test_source_labels_become_classes),
        cmocka_unit_test(test_source_late_label_names_the_fix),
        cmocka_unit_test(test_source_gzip_training_file_splits_by_lines),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
