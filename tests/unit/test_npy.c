/* Tests for data/npy.c: the header checked byte by byte in C, the data
 * checked against numpy.load when /usr/bin/python3 has numpy. */
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
#include "data/npy.h"
#include "tests/unit/ps_test.h"

static char dir[64];
static int have_numpy;

static int group_setup(void **state)
{
    (void)state;
    have_numpy = system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
    if (!have_numpy) {
        fprintf(stderr, "note: /usr/bin/python3 with numpy not found; numpy checks skipped\n");
    }
    return ps_test_tmpdir_create(dir, sizeof dir, "npy");
}

static int group_teardown(void **state)
{
    (void)state;
    return ps_test_rmtree(dir);
}

/* Value at flat index i: exact in float, differs for every i. */
static float value_at(size_t i)
{
    return (float)i * 0.25f - 7.0f;
}

static float *make_data(size_t n)
{
    float *d = test_malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) {
        d[i] = value_at(i);
    }
    return d;
}

/* Reads the file and checks the header as the .npy 1.0 spec describes it;
 * returns the file contents (test_free them) and the data offset. */
static unsigned char *check_header(const char *path, const char *shape_text, size_t *data_off,
                                   size_t *file_len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 64);
    rewind(f);
    unsigned char *buf = test_malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';

    assert_memory_equal(buf, "\x93NUMPY", 6);
    assert_int_equal(buf[6], 1);
    assert_int_equal(buf[7], 0);
    size_t hlen = buf[8] | (size_t)buf[9] << 8;
    size_t off = 10 + hlen;
    assert_int_equal(off % 64, 0);
    assert_true(off <= (size_t)n);
    assert_int_equal(buf[off - 1], '\n');

    char dict[1024];
    assert_true(hlen < sizeof dict);
    memcpy(dict, buf + 10, hlen);
    dict[hlen] = '\0';
    assert_non_null(strstr(dict, "'descr': '<f4'"));
    assert_non_null(strstr(dict, "'fortran_order': False"));
    char want[128];
    snprintf(want, sizeof want, "'shape': %s", shape_text);
    assert_non_null(strstr(dict, want));
    assert_int_equal(dict[0], '{');
    /* Only spaces between the closing brace and the newline. */
    char *close = strrchr(dict, '}');
    assert_non_null(close);
    for (char *p = close + 1; p < dict + hlen - 1; p++) {
        assert_int_equal(*p, ' ');
    }
    *data_off = off;
    *file_len = (size_t)n;
    return buf;
}

static void check_data(const unsigned char *buf, size_t off, size_t len, size_t count)
{
    assert_int_equal(len - off, count * sizeof(float));
    for (size_t i = 0; i < count; i++) {
        float v;
        memcpy(&v, buf + off + i * sizeof v, sizeof v);
        assert_true(v == value_at(i));
    }
}

/* numpy.load must give the shape and values i * 0.25 - 7, and the header
 * must be byte for byte what numpy.save writes. */
static void check_with_numpy(const char *path, const char *shape_tuple)
{
    if (!have_numpy) {
        return;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import numpy as np, sys\n"
             "a = np.load(sys.argv[1])\n"
             "want = np.arange(a.size, dtype=np.float32) * np.float32(0.25) - np.float32(7)\n"
             "assert a.dtype == np.float32, a.dtype\n"
             "assert a.shape == %s, a.shape\n"
             "assert a.flags.c_contiguous\n"
             "assert np.array_equal(a.ravel(), want)\n"
             "import io\n"
             "b = io.BytesIO(); np.save(b, np.zeros(a.shape, np.float32)); b = b.getvalue()\n"
             "head = b[:len(b) - a.nbytes]\n"
             "assert open(sys.argv[1], \"rb\").read(len(head)) == head, \"header differs from "
             "numpy\"\n' "
             "'%s'",
             shape_tuple, path);
    assert_int_equal(system(cmd), 0);
}

static void test_npy_writes_2d_array(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/w.npy", dir);
    uint64_t shape[] = {3, 4};
    float *d = make_data(12);
    assert_int_equal(ps_npy_write(path, d, shape, 2), 0);
    size_t off, len;
    unsigned char *buf = check_header(path, "(3, 4)", &off, &len);
    check_data(buf, off, len, 12);
    test_free(buf);
    test_free(d);
    check_with_numpy(path, "(3, 4)");
}

static void test_npy_writes_1d_array_with_tuple_comma(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/b.npy", dir);
    uint64_t shape[] = {5};
    float *d = make_data(5);
    assert_int_equal(ps_npy_write(path, d, shape, 1), 0);
    size_t off, len;
    unsigned char *buf = check_header(path, "(5,)", &off, &len);
    check_data(buf, off, len, 5);
    test_free(buf);
    test_free(d);
    check_with_numpy(path, "(5,)");
}

static void test_npy_writes_scalar_and_empty(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/s.npy", dir);
    float *d = make_data(1);
    assert_int_equal(ps_npy_write(path, d, NULL, 0), 0);
    size_t off, len;
    unsigned char *buf = check_header(path, "()", &off, &len);
    check_data(buf, off, len, 1);
    test_free(buf);
    check_with_numpy(path, "()");

    snprintf(path, sizeof path, "%s/e.npy", dir);
    uint64_t shape[] = {0, 10};
    assert_int_equal(ps_npy_write(path, d, shape, 2), 0);
    buf = check_header(path, "(0, 10)", &off, &len);
    check_data(buf, off, len, 0);
    test_free(buf);
    test_free(d);
    check_with_numpy(path, "(0, 10)");
}

static void test_npy_header_pads_long_shapes_to_64(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/long.npy", dir);
    /* Enough dimensions that the header needs more than one 64-byte block. */
    uint64_t shape[12];
    for (int i = 0; i < 12; i++) {
        shape[i] = 1;
    }
    shape[3] = 3;
    float *d = make_data(3);
    assert_int_equal(ps_npy_write(path, d, shape, 12), 0);
    size_t off, len;
    unsigned char *buf = check_header(path, "(1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1)", &off, &len);
    assert_true(off > 64);
    check_data(buf, off, len, 3);
    test_free(buf);
    test_free(d);
    check_with_numpy(path, "(1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1)");
}

/* ps_npy_header_bytes is where the writer put the data, for short and long
 * headers, and 0 for a shape the writer refuses. */
static void test_npy_header_bytes_is_data_offset(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/off.npy", dir);
    uint64_t shapes[3][12] = {{3, 4}, {1ULL << 40, 7}, {1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1}};
    int ndims[3] = {2, 2, 12};
    float *d = make_data(3 * 4);
    for (int i = 0; i < 3; i++) {
        ps_npy_writer *w;
        assert_int_equal(ps_npy_open(&w, path, shapes[i], ndims[i]), 0);
        ps_npy_abort(&w);
        size_t off = ps_npy_header_bytes(shapes[i], ndims[i]);
        assert_int_equal(off % 64, 0);
        if (i != 1) { /* too big to write whole: the header alone is checked */
            assert_int_equal(ps_npy_write(path, d, shapes[i], ndims[i]), 0);
            size_t got, len;
            unsigned char *buf = check_header(
                path, i ? "(1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1)" : "(3, 4)", &got, &len);
            assert_int_equal(off, got);
            test_free(buf);
        }
    }
    assert_true(ps_npy_header_bytes(shapes[2], 12) > 64);
    uint64_t huge[] = {1ULL << 40, 1ULL << 40};
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    assert_int_equal(ps_npy_header_bytes(huge, 2), 0);
    assert_int_equal(ps_npy_header_bytes(huge, -1), 0);
    test_free(ps_test_capture_end(&cap));
    test_free(d);
}

static void test_npy_streams_table_in_pieces(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/stream.npy", dir);
    uint64_t shape[] = {1000, 7};
    size_t n = 7000;
    float *d = make_data(n);
    ps_npy_writer *w;
    assert_int_equal(ps_npy_open(&w, path, shape, 2), 0);
    /* Not visible under its name until closed. */
    assert_int_equal(access(path, F_OK), -1);
    size_t done = 0, piece = 1;
    while (done < n) {
        size_t k = n - done < piece ? n - done : piece;
        assert_int_equal(ps_npy_append(w, d + done, k), 0);
        done += k;
        piece = piece * 3 + 1;
    }
    assert_int_equal(ps_npy_append(w, d, 1), PS_EINVAL);
    assert_int_equal(ps_npy_close(&w), 0);
    assert_null(w);
    size_t off, len;
    unsigned char *buf = check_header(path, "(1000, 7)", &off, &len);
    check_data(buf, off, len, n);
    test_free(buf);
    test_free(d);
    check_with_numpy(path, "(1000, 7)");
}

static void test_npy_close_rejects_short_count(void **state)
{
    (void)state;
    char path[128], tmp[192];
    snprintf(path, sizeof path, "%s/short.npy", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    uint64_t shape[] = {2, 2};
    float d[3] = {1, 2, 3};
    ps_npy_writer *w;
    assert_int_equal(ps_npy_open(&w, path, shape, 2), 0);
    assert_int_equal(ps_npy_append(w, d, 3), 0);
    assert_int_equal(ps_npy_close(&w), PS_EINVAL);
    assert_null(w);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(access(tmp, F_OK), -1);

    assert_int_equal(ps_npy_open(&w, path, shape, 2), 0);
    ps_npy_abort(&w);
    assert_null(w);
    ps_npy_abort(&w);
    assert_int_equal(access(tmp, F_OK), -1);
}

static void test_npy_rejects_bad_shape_and_dir(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/bad.npy", dir);
    float d[1] = {0};
    uint64_t shape[PS_NPY_MAX_DIMS + 1] = {0};
    assert_int_equal(ps_npy_write(path, d, shape, -1), PS_EINVAL);
    assert_int_equal(ps_npy_write(path, d, shape, PS_NPY_MAX_DIMS + 1), PS_EINVAL);
    uint64_t huge[] = {1ULL << 40, 1ULL << 40};
    assert_int_equal(ps_npy_write(path, d, huge, 2), PS_EINVAL);
    assert_int_equal(access(path, F_OK), -1);

    snprintf(path, sizeof path, "%s/missing/dir/x.npy", dir);
    uint64_t one[] = {1};
    assert_int_equal(ps_npy_write(path, d, one, 1), PS_EIO);
}

static void test_npy_write_survives_oom_sweep(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/oom.npy", dir);
    uint64_t shape[] = {2, 3};
    float *d = make_data(6);
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; rc == PS_ENOMEM && n < 100; n++) {
        ps_test_fail_alloc(n);
        rc = ps_npy_write(path, d, shape, 2);
        ps_test_fail_alloc(-1);
        if (rc == PS_ENOMEM) {
            assert_int_equal(access(path, F_OK), -1);
        }
    }
    assert_int_equal(rc, 0);
    assert_true(n > 1);
    size_t off, len;
    unsigned char *buf = check_header(path, "(2, 3)", &off, &len);
    check_data(buf, off, len, 6);
    test_free(buf);
    test_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_npy_writes_2d_array),
        T(test_npy_writes_1d_array_with_tuple_comma),
        T(test_npy_writes_scalar_and_empty),
        T(test_npy_header_pads_long_shapes_to_64),
        T(test_npy_header_bytes_is_data_offset),
        T(test_npy_streams_table_in_pieces),
        T(test_npy_close_rejects_short_count),
        T(test_npy_rejects_bad_shape_and_dir),
        T(test_npy_write_survives_oom_sweep),
#undef T
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
