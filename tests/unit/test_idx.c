/* IDX reader: Fashion-MNIST loads with the sizes and pixel values numpy
 * reads, row ranges equal the same rows of a full load, plain and gzipped
 * files read alike, and every kind of bad header or short file is rejected
 * with an error code instead of garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "data/dataset.h"
#include "common/err.h"
#include "data/idx.h"
#include "common/mem.h"
#include "tests/unit/ps_test.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"

#if defined(__SANITIZE_ADDRESS__)
#define SLOWDOWN 10.0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLOWDOWN 10.0
#endif
#endif
#ifndef SLOWDOWN
#define SLOWDOWN 1.0
#endif

static char tmpdir[64];

static int group_setup(void **state)
{
    if (ps_test_tmpdir_create(tmpdir, sizeof tmpdir, "idx") != 0) {
        return -1;
    }
    return ps_test_setup(state);
}

static int group_teardown(void **state)
{
    ps_test_rmtree(tmpdir);
    return ps_test_teardown(state);
}

/* Skips the calling test (cmocka's skip() jumps out of it) when the
 * Fashion-MNIST files are not installed. */
static void skip_without_fmnist(void)
{
    if (access(FMNIST "train-images-idx3-ubyte.gz", R_OK) != 0 ||
        access(FMNIST "train-labels-idx1-ubyte.gz", R_OK) != 0 ||
        access(FMNIST "t10k-images-idx3-ubyte.gz", R_OK) != 0 ||
        access(FMNIST "t10k-labels-idx1-ubyte.gz", R_OK) != 0) {
        print_message("Fashion-MNIST not found under " FMNIST ", skipping\n");
        skip();
    }
}

/* CPU time: the bound is on our work, not on how busy the shared CI
 * machine is. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Pixel (row, col) as a byte: the loader stores byte / 255. */
static int pixel(const ps_dataset *d, size_t row, size_t col)
{
    return (int)(d->x[row * d->dim + col] * 255.0f + 0.5f);
}

/* Expected values were computed once with numpy from the same gz files:
 *   b = gzip.open(path).read()
 *   X = np.frombuffer(b, np.uint8, offset=16).reshape(-1, 784)
 *   Y = np.frombuffer(gzip.open(lbl).read(), np.uint8, offset=8)
 * giving Y[:10] = 9 0 0 3 0 2 7 2 5 5, Y[12345] = 8, Y[59999] = 5,
 * X[0,400] = 0, X[0,500] = 220, X[1,300] = 201, X[12345,406] = 193,
 * X[59999,400] = 129, X[59999,783] = 0, X[0].sum() = 76247, 6000 per class;
 * test set: TY[:5] = 9 2 1 1 6, T[0,400] = 1, T[9999,350] = 86. */
static void test_idx_loads_fashion_mnist_train(void **state)
{
    (void)state;
    skip_without_fmnist();
    ps_dataset d = {0};
    double t0 = cpu_s();
    assert_int_equal(ps_idx_load(FMNIST "train-images-idx3-ubyte.gz",
                                 FMNIST "train-labels-idx1-ubyte.gz", 0, SIZE_MAX, &d),
                     0);
    double dt = cpu_s() - t0;
    print_message("loaded 60000 x 784 in %.3f s of CPU\n", dt);
    assert_true(dt < 1.0 * SLOWDOWN);
    assert_int_equal(d.n, 60000);
    assert_int_equal(d.dim, 784);
    assert_int_equal(d.nclasses, 10);
    assert_int_equal(d.sparse, 0);
    const int y10[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(d.y[i], y10[i]);
    }
    assert_int_equal(d.y[12345], 8);
    assert_int_equal(d.y[59999], 5);
    assert_int_equal(pixel(&d, 0, 400), 0);
    assert_int_equal(pixel(&d, 0, 500), 220);
    assert_int_equal(pixel(&d, 1, 300), 201);
    assert_int_equal(pixel(&d, 12345, 406), 193);
    assert_int_equal(pixel(&d, 59999, 400), 129);
    assert_int_equal(pixel(&d, 59999, 783), 0);
    long sum = 0;
    for (size_t j = 0; j < 784; j++) {
        sum += pixel(&d, 0, j);
    }
    assert_int_equal(sum, 76247);
    long per_class[10] = {0};
    for (size_t i = 0; i < d.n; i++) {
        per_class[d.y[i]]++;
    }
    for (int c = 0; c < 10; c++) {
        assert_int_equal(per_class[c], 6000);
    }
    /* Exactly x / 255, in [0, 1]. */
    assert_true(d.x[1 * 784 + 300] == 201.0f / 255.0f);
    for (size_t i = 0; i < d.n * d.dim; i += 997) {
        assert_true(d.x[i] >= 0.0f && d.x[i] <= 1.0f);
    }
    ps_dataset_fini(&d);
}

static void test_idx_loads_fashion_mnist_test_and_probe(void **state)
{
    (void)state;
    skip_without_fmnist();
    size_t n = 0, dim = 0;
    assert_int_equal(ps_idx_probe(FMNIST "train-images-idx3-ubyte.gz", &n, &dim), 0);
    assert_int_equal(n, 60000);
    assert_int_equal(dim, 784);
    assert_int_equal(ps_idx_probe(FMNIST "t10k-labels-idx1-ubyte.gz", &n, &dim), 0);
    assert_int_equal(n, 10000);
    assert_int_equal(dim, 1);

    ps_dataset d = {0};
    assert_int_equal(ps_idx_load(FMNIST "t10k-images-idx3-ubyte.gz",
                                 FMNIST "t10k-labels-idx1-ubyte.gz", 0, SIZE_MAX, &d),
                     0);
    assert_int_equal(d.n, 10000);
    assert_int_equal(d.dim, 784);
    const int y5[5] = {9, 2, 1, 1, 6};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(d.y[i], y5[i]);
    }
    assert_int_equal(pixel(&d, 0, 400), 1);
    assert_int_equal(pixel(&d, 9999, 350), 86);
    ps_dataset_fini(&d);
}

/* A worker's range: rows [12344, 12347) hold the same values as in the full
 * load (numpy values above), and "to the end" stops at 60000. */
static void test_idx_loads_a_row_range(void **state)
{
    (void)state;
    skip_without_fmnist();
    ps_dataset d = {0};
    assert_int_equal(ps_idx_load(FMNIST "train-images-idx3-ubyte.gz",
                                 FMNIST "train-labels-idx1-ubyte.gz", 12344, 3, &d),
                     0);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.y[1], 8);
    assert_int_equal(pixel(&d, 1, 406), 193);
    assert_int_equal(ps_idx_load(FMNIST "train-images-idx3-ubyte.gz",
                                 FMNIST "train-labels-idx1-ubyte.gz", 59998, SIZE_MAX, &d),
                     0);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.y[1], 5);
    assert_int_equal(pixel(&d, 1, 400), 129);
    ps_dataset_fini(&d);
}

/* Writes an IDX file: header bytes then body, gzipped if gz. */
static void write_file(const char *name, int gz, const unsigned char *data, size_t len,
                       char *path_out)
{
    snprintf(path_out, 256, "%s/%s", tmpdir, name);
    if (gz) {
        gzFile f = gzopen(path_out, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, data, (unsigned)len), (int)len);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        ps_test_write_file(path_out, data, len);
    }
}

/* An images header: n samples of rows x cols, 16 bytes into buf. */
static void images_header(unsigned char *buf, uint32_t n, unsigned char rows, unsigned char cols)
{
    unsigned char h[16] = {0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, rows, 0, 0, 0, cols};
    h[4] = (unsigned char)(n >> 24);
    h[5] = (unsigned char)(n >> 16);
    h[6] = (unsigned char)(n >> 8);
    h[7] = (unsigned char)n;
    memcpy(buf, h, 16);
}

/* nimg images of 2x3 pixels, pixel (i, j) = 10 * i + j; labels i % 3. */
static size_t make_images(unsigned char *buf, uint32_t n_header, size_t nimg)
{
    images_header(buf, n_header, 2, 3);
    for (size_t i = 0; i < nimg; i++) {
        for (size_t j = 0; j < 6; j++) {
            buf[16 + 6 * i + j] = (unsigned char)(10 * i + j);
        }
    }
    return 16 + 6 * nimg;
}

static size_t make_labels(unsigned char *buf, uint32_t n_header, size_t nlab)
{
    unsigned char h[8] = {0, 0, 8, 1, 0, 0, 0, (unsigned char)n_header};
    memcpy(buf, h, 8);
    for (size_t i = 0; i < nlab; i++) {
        buf[8 + i] = (unsigned char)(i % 3);
    }
    return 8 + nlab;
}

static void test_idx_reads_plain_and_gzip_alike(void **state)
{
    (void)state;
    unsigned char img[256], lab[64];
    char pi[256], pl[256], gi[256], gl[256];
    size_t li = make_images(img, 5, 5), ll = make_labels(lab, 5, 5);
    write_file("a-images", 0, img, li, pi);
    write_file("a-labels", 0, lab, ll, pl);
    write_file("a-images.gz", 1, img, li, gi);
    write_file("a-labels.gz", 1, lab, ll, gl);
    ps_dataset a = {0}, b = {0};
    assert_int_equal(ps_idx_load(pi, pl, 1, 3, &a), 0);
    assert_int_equal(ps_idx_load(gi, gl, 1, 3, &b), 0);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.dim, 6);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(a.y[i], (int)((i + 1) % 3));
        for (size_t j = 0; j < 6; j++) {
            assert_true(a.x[i * 6 + j] == (float)(10 * (i + 1) + j) / 255.0f);
        }
    }
    assert_memory_equal(a.x, b.x, 3 * 6 * sizeof(float));
    assert_memory_equal(a.y, b.y, 3 * sizeof(int32_t));
    /* Images alone: no labels, y zeroed. */
    assert_int_equal(ps_idx_load_images(gi, 4, SIZE_MAX, &a), 0);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.nclasses, 0);
    assert_int_equal(a.y[0], 0);
    assert_true(a.x[5] == 45.0f / 255.0f);
    /* Empty range at the end is fine. */
    assert_int_equal(ps_idx_load(pi, pl, 5, SIZE_MAX, &a), 0);
    assert_int_equal(a.n, 0);
    ps_dataset_fini(&a);
    ps_dataset_fini(&b);
}

static void test_idx_rejects_range_past_end(void **state)
{
    (void)state;
    unsigned char img[256], lab[64];
    char pi[256], pl[256];
    write_file("r-images", 0, img, make_images(img, 5, 5), pi);
    write_file("r-labels", 0, lab, make_labels(lab, 5, 5), pl);
    ps_dataset d = {0};
    assert_int_equal(ps_idx_load(pi, pl, 3, 3, &d), PS_ERANGE);
    assert_int_equal(ps_idx_load(pi, pl, 6, SIZE_MAX, &d), PS_ERANGE);
    assert_null(d.x);
}

/* Loads a bad images file (with good labels) and expects rc; out must stay
 * untouched. */
static void expect_bad_images(const char *name, int gz, const unsigned char *img, size_t len,
                              size_t first, size_t count, int rc)
{
    unsigned char lab[64];
    char pi[256], pl[256];
    write_file(name, gz, img, len, pi);
    write_file("good-labels", 0, lab, make_labels(lab, 5, 5), pl);
    ps_dataset d = {0};
    assert_int_equal(ps_idx_load(pi, pl, first, count, &d), rc);
    assert_null(d.x);
    assert_int_equal(d.n, 0);
}

static void test_idx_rejects_wrong_magic(void **state)
{
    (void)state;
    unsigned char img[256];
    size_t len = make_images(img, 5, 5);
    img[0] = 0x1f; /* e.g. a doubly gzipped file */
    expect_bad_images("magic", 0, img, len, 0, SIZE_MAX, PS_EFORMAT);
    img[0] = 0;
    img[3] = 0; /* zero dimensions */
    expect_bad_images("ndims0", 0, img, len, 0, SIZE_MAX, PS_EFORMAT);
    /* A labels file passed as images. */
    unsigned char lab[64];
    expect_bad_images("swapped", 0, lab, make_labels(lab, 5, 5), 0, SIZE_MAX, PS_EFORMAT);
}

static void test_idx_rejects_wrong_type_code(void **state)
{
    (void)state;
    unsigned char img[256];
    size_t len = make_images(img, 5, 5);
    img[2] = 0x0D; /* float */
    expect_bad_images("type", 1, img, len, 0, SIZE_MAX, PS_EFORMAT);
}

static void test_idx_rejects_overflowing_dims(void **state)
{
    (void)state;
    unsigned char img[256];
    size_t len = make_images(img, 5, 5);
    /* 2 x 0xffffffff x 0xffffffff per sample cannot be allocated or even
     * multiplied in 64 bits; it must not wrap to a small size. */
    unsigned char h[20] = {0, 0, 8,    4,    0,    0,    0,    5,    0,    0,
                           0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    memcpy(img, h, sizeof h);
    expect_bad_images("overflow", 0, img, len, 0, SIZE_MAX, PS_EFORMAT);
    /* A zero-sized image dimension. */
    len = make_images(img, 5, 5);
    img[11] = 0;
    expect_bad_images("zerodim", 0, img, len, 0, SIZE_MAX, PS_EFORMAT);
}

static void test_idx_rejects_truncated_file(void **state)
{
    (void)state;
    unsigned char img[256];
    /* Header says 5 images, body holds 3 and a half. */
    size_t len = make_images(img, 5, 3) + 3;
    expect_bad_images("trunc", 0, img, len, 0, SIZE_MAX, PS_EFORMAT);
    expect_bad_images("trunc.gz", 1, img, len, 2, 2, PS_EFORMAT);
    /* A plain file's size is checked against its header before any read,
     * so even its intact rows are refused; a gzip file's length is only
     * known by inflating it, so a range inside its intact part loads. */
    unsigned char lab[64];
    char pi[256], pl[256];
    write_file("trunc2", 0, img, len, pi);
    write_file("lab5", 0, lab, make_labels(lab, 5, 5), pl);
    ps_dataset d = {0};
    assert_int_equal(ps_idx_load(pi, pl, 1, 2, &d), PS_EFORMAT);
    write_file("trunc2.gz", 1, img, len, pi);
    assert_int_equal(ps_idx_load(pi, pl, 1, 2, &d), 0);
    assert_int_equal(d.n, 2);
    ps_dataset_fini(&d);
    /* A gzip stream cut short (no trailer, last block partial). */
    unsigned char big[16 + 6 * 40];
    for (size_t i = 0; i < sizeof big; i++) {
        big[i] = (unsigned char)(i * 2654435761u >> 13);
    }
    memcpy(big, (unsigned char[16]){0, 0, 8, 3, 0, 0, 0, 40, 0, 0, 0, 2, 0, 0, 0, 3}, 16);
    write_file("cut.gz", 1, big, sizeof big, pi);
    unsigned char gzb[1024];
    size_t gzlen = ps_test_read_file(pi, gzb, sizeof gzb);
    assert_true(gzlen > 40);
    ps_test_write_file(pi, gzb, gzlen - 30);
    assert_int_equal(ps_idx_load_images(pi, 0, SIZE_MAX, &d), PS_EFORMAT);
    /* Header cut inside the dimensions. */
    expect_bad_images("shorthdr", 0, img, 10, 0, SIZE_MAX, PS_EFORMAT);
    expect_bad_images("empty", 0, img, 0, 0, SIZE_MAX, PS_EFORMAT);
}

static void test_idx_rejects_count_mismatch(void **state)
{
    (void)state;
    unsigned char img[256], lab[64];
    char pi[256], pl[256];
    write_file("m-images", 0, img, make_images(img, 5, 5), pi);
    write_file("m-labels", 0, lab, make_labels(lab, 4, 4), pl);
    ps_dataset d = {0};
    assert_int_equal(ps_idx_load(pi, pl, 0, 2, &d), PS_EFORMAT);
    assert_null(d.x);
}

static void test_idx_rejects_label_out_of_range(void **state)
{
    (void)state;
    unsigned char img[256], lab[64];
    char pi[256], pl[256];
    write_file("l-images", 0, img, make_images(img, 5, 5), pi);
    size_t ll = make_labels(lab, 5, 5);
    lab[8 + 3] = 10;
    write_file("l-labels", 0, lab, ll, pl);
    ps_dataset d = {0};
    assert_int_equal(ps_idx_load(pi, pl, 0, SIZE_MAX, &d), PS_EFORMAT);
    /* Rows before the bad label load, and 10 is fine with 11 classes. */
    assert_int_equal(ps_idx_load(pi, pl, 0, 3, &d), 0);
    assert_int_equal(ps_idx_load_classes(pi, pl, 0, SIZE_MAX, 11, &d), 0);
    assert_int_equal(d.y[3], 10);
    assert_int_equal(d.nclasses, 11);
    ps_dataset_fini(&d);
}

static void test_idx_reports_missing_file(void **state)
{
    (void)state;
    size_t n, dim;
    char p[256];
    snprintf(p, sizeof p, "%s/does-not-exist", tmpdir);
    assert_int_equal(ps_idx_probe(p, &n, &dim), PS_EIO);
    ps_dataset d = {0};
    assert_int_equal(ps_idx_load_images(p, 0, SIZE_MAX, &d), PS_EIO);
}

/* The largest single allocation since the last reset, through hooks that
 * wrap the checked allocator (a header must never size a big one). */
static size_t max_request;

static void *track_malloc(size_t n)
{
    max_request = n > max_request ? n : max_request;
    return test_malloc(n);
}

static void *track_realloc(void *p, size_t n)
{
    max_request = n > max_request ? n : max_request;
    return test_realloc(p, n);
}

static const ps_mem_hooks track_hooks = {track_malloc, track_realloc, ps_test_free};

/* Writes an images header promising n samples of 28x28, then body bytes of
 * pseudo-random data (incompressible, so gzip keeps its size). */
static void write_promise(const char *name, int gz, uint32_t n, size_t body, char *path)
{
    unsigned char *buf = test_malloc(16 + body);
    images_header(buf, n, 28, 28);
    uint32_t x = 12345;
    for (size_t i = 0; i < body; i++) {
        x = x * 1664525u + 1013904223u;
        buf[16 + i] = (unsigned char)(x >> 24);
    }
    write_file(name, gz, buf, 16 + body, path);
    test_free(buf);
}

/* Loads path's images with the tracking allocator; returns the rc and
 * checks the captured log names the file. */
static int load_tracked(const char *path, const char *want_in_log)
{
    ps_test_capture cap;
    ps_dataset d = {0};
    max_request = 0;
    ps_mem_set_hooks(&track_hooks);
    ps_test_capture_begin(&cap);
    int rc = ps_idx_load_images(path, 0, SIZE_MAX, &d);
    char *log = ps_test_capture_end(&cap);
    ps_test_setup(NULL);
    if (rc) {
        assert_non_null(strstr(log, path));
        if (want_in_log && !strstr(log, want_in_log)) {
            fail_msg("log '%s' lacks '%s'", log, want_in_log);
        }
    }
    test_free(log);
    ps_dataset_fini(&d);
    return rc;
}

/* Issue 10: a header promising 1.6 TiB (2^31 - 1 samples of 784 bytes) in
 * an 800-byte file was allocated first. Now the plain file's size, and the
 * gzip file's most it could inflate to, refuse it before any allocation
 * larger than the reader's buffers. */
static void test_idx_refuses_header_larger_than_file_before_allocating(void **state)
{
    (void)state;
    char p[256];
    write_promise("huge-images", 0, 0x7fffffff, 784, p);
    assert_int_equal(load_tracked(p, "but the file has 800"), PS_EFORMAT);
    assert_true(max_request <= ((size_t)2 << 20));
    size_t n, dim;
    assert_int_equal(ps_idx_probe(p, &n, &dim), PS_EFORMAT);
    write_promise("huge-images.gz", 1, 0x7fffffff, 784, p);
    assert_int_equal(load_tracked(p, "inflates to at most"), PS_EFORMAT);
    assert_true(max_request <= ((size_t)2 << 20));
    assert_int_equal(ps_idx_probe(p, &n, &dim), PS_EFORMAT);
}

/* A gzip file whose header promises what it could plausibly hold (1 MB of
 * incompressible data may inflate to a GB) but is short: rows are
 * allocated as they arrive, so the load fails at the short read having
 * asked for tens of MB at most, not the 3 GB of floats promised. */
static void test_idx_gzip_allocates_as_rows_arrive(void **state)
{
    (void)state;
    char p[256];
    write_promise("short-images.gz", 1, 1000000, (size_t)1 << 20, p);
    size_t n, dim;
    assert_int_equal(ps_idx_probe(p, &n, &dim), 0); /* plausible: 784 MB <= 1032 x 1 MB */
    assert_int_equal(load_tracked(p, "truncated file"), PS_EFORMAT);
    assert_true(max_request <= ((size_t)64 << 20));
    /* The same bytes with an honest header load, growing past the first
     * allocation (16 MiB of floats is 5349 rows; here 1337). */
    write_promise("fit-images.gz", 1, ((uint32_t)1 << 20) / 784, ((size_t)1 << 20) / 784 * 784, p);
    assert_int_equal(load_tracked(p, NULL), 0);
}

static void test_idx_refuses_trailing_bytes(void **state)
{
    (void)state;
    unsigned char img[256], lab[64];
    char pi[256], pl[256];
    /* Header says 4 images, the body holds 5. */
    size_t len = make_images(img, 4, 5);
    write_file("long-images", 0, img, len, pi);
    assert_int_equal(load_tracked(pi, "6 bytes after the 4 samples"), PS_EFORMAT);
    /* gzip: only known when the read reaches the end, so a range short of
     * it loads and one reaching it is refused. */
    write_file("long-images.gz", 1, img, len, pi);
    write_file("long-labels", 0, lab, make_labels(lab, 4, 4), pl);
    ps_dataset d = {0};
    assert_int_equal(ps_idx_load(pi, pl, 0, 2, &d), 0);
    ps_dataset_fini(&d);
    assert_int_equal(load_tracked(pi, "bytes after the 4 samples"), PS_EFORMAT);
    /* A labels file with a byte too many. */
    write_file("ok-images", 0, img, make_images(img, 4, 4), pi);
    write_file("long-labels", 0, lab, make_labels(lab, 4, 5), pl);
    assert_int_equal(ps_idx_load(pi, pl, 0, SIZE_MAX, &d), PS_EFORMAT);
    size_t n;
    uint32_t c;
    assert_int_equal(ps_idx_scan_labels(pl, &n, &c), PS_EFORMAT);
}

/* Garbage after a gzip member is refused where zlib's gzread would skip it;
 * a second member is data; a plain file named .gz is read as it is. */
static void test_idx_gzip_members_garbage_and_misnamed_files(void **state)
{
    (void)state;
    unsigned char img[256];
    char p[256], q[256];
    size_t len = make_images(img, 5, 5);
    write_file("member.gz", 1, img, len, p);
    unsigned char gz[1024];
    size_t gzlen = ps_test_read_file(p, gz, sizeof gz);
    memcpy(gz + gzlen, "garbage!", 8);
    snprintf(q, sizeof q, "%s/garbage.gz", tmpdir);
    ps_test_write_file(q, gz, gzlen + 8);
    assert_int_equal(load_tracked(q, "trailing garbage"), PS_EFORMAT);
    /* Two members: the header and 2 images, then 3 images. */
    write_file("m1.gz", 1, img, 16 + 12, p);
    size_t l1 = ps_test_read_file(p, gz, sizeof gz);
    write_file("m2.gz", 1, img + 28, len - 28, p);
    size_t l2 = ps_test_read_file(p, gz + l1, sizeof gz - l1);
    snprintf(q, sizeof q, "%s/two-members.gz", tmpdir);
    ps_test_write_file(q, gz, l1 + l2);
    ps_dataset a = {0}, b = {0};
    assert_int_equal(ps_idx_load_images(q, 0, SIZE_MAX, &a), 0);
    write_file("plain-named.gz", 0, img, len, p);
    assert_int_equal(ps_idx_load_images(p, 0, SIZE_MAX, &b), 0);
    assert_int_equal(a.n, 5);
    assert_int_equal(b.n, 5);
    assert_memory_equal(a.x, b.x, 5 * 6 * sizeof(float));
    ps_dataset_fini(&a);
    ps_dataset_fini(&b);
}

/* Classes come from the labels, not a fixed 10. */
static void test_idx_scan_labels_counts_classes(void **state)
{
    (void)state;
    unsigned char lab[64];
    char p[256];
    size_t ll = make_labels(lab, 6, 6);
    lab[8 + 2] = 4; /* labels 0 1 4 0 1 2: max 4 */
    for (int gz = 0; gz <= 1; gz++) {
        write_file(gz ? "five.gz" : "five", gz, lab, ll, p);
        size_t n = 0;
        uint32_t c = 0;
        assert_int_equal(ps_idx_scan_labels(p, &n, &c), 0);
        assert_int_equal(n, 6);
        assert_int_equal(c, 5);
        /* Cut short: refused. */
        write_file(gz ? "cut-labels.gz" : "cut-labels", gz, lab, ll - 1, p);
        assert_int_equal(ps_idx_scan_labels(p, &n, &c), PS_EFORMAT);
    }
    unsigned char img[256];
    write_file("not-labels", 0, img, make_images(img, 5, 5), p);
    size_t n;
    uint32_t c;
    assert_int_equal(ps_idx_scan_labels(p, &n, &c), PS_EFORMAT);
}

/* Fails each allocation in turn: every path returns PS_ENOMEM and leaks
 * nothing (cmocka's allocator checks), until the load succeeds. */
static void test_idx_load_survives_oom(void **state)
{
    (void)state;
    unsigned char img[256], lab[64];
    char pi[256], pl[256];
    write_file("o-images.gz", 1, img, make_images(img, 5, 5), pi);
    write_file("o-labels", 0, lab, make_labels(lab, 5, 5), pl);
    ps_dataset d = {0};
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; rc == PS_ENOMEM && n < 100; n++) {
        ps_test_fail_alloc(n);
        rc = ps_idx_load(pi, pl, 1, 4, &d);
        if (rc) {
            assert_int_equal(rc, PS_ENOMEM);
            assert_null(d.x);
        }
    }
    ps_test_fail_alloc(-1);
    assert_int_equal(rc, 0);
    assert_true(n > 1);
    assert_int_equal(d.n, 4);
    ps_dataset_fini(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_loads_fashion_mnist_train),
        cmocka_unit_test(test_idx_loads_fashion_mnist_test_and_probe),
        cmocka_unit_test(test_idx_loads_a_row_range),
        cmocka_unit_test(test_idx_reads_plain_and_gzip_alike),
        cmocka_unit_test(test_idx_rejects_range_past_end),
        cmocka_unit_test(test_idx_rejects_wrong_magic),
        cmocka_unit_test(test_idx_rejects_wrong_type_code),
        cmocka_unit_test(test_idx_rejects_overflowing_dims),
        cmocka_unit_test(test_idx_rejects_truncated_file),
        cmocka_unit_test(test_idx_rejects_count_mismatch),
        cmocka_unit_test(test_idx_rejects_label_out_of_range),
        cmocka_unit_test(test_idx_reports_missing_file),
        cmocka_unit_test(test_idx_refuses_header_larger_than_file_before_allocating),
        cmocka_unit_test(test_idx_gzip_allocates_as_rows_arrive),
        cmocka_unit_test(test_idx_refuses_trailing_bytes),
        cmocka_unit_test(test_idx_gzip_members_garbage_and_misnamed_files),
        cmocka_unit_test(test_idx_scan_labels_counts_classes),
        cmocka_unit_test(test_idx_load_survives_oom),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
