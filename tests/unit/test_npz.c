/* Tests for data/npz.c: the archive's every record parsed back here (local
 * headers, data descriptors, central directory, end record; each CRC-32
 * against the data), read by Python's zipfile and numpy.load when
 * /usr/bin/python3 has numpy, the same bytes for the same members (fixed
 * dates), the zip32 limits foreseen by ps_npz_fits, misuse refused, and
 * failed allocations cleaned up. */
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
#include "common/file.h"
#include "data/npy.h"
#include "data/npz.h"
#include "tests/unit/ps_test.h"

static char dir[64];

static int group_setup(void **state)
{
    (void)state;
    return ps_test_tmpdir_create(dir, sizeof dir, "npz");
}

static int group_teardown(void **state)
{
    (void)state;
    return ps_test_rmtree(dir);
}

static uint32_t get16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t get32(const unsigned char *p)
{
    return get16(p) | get16(p + 2) << 16;
}

/* Writes members names[i] with data[i] (len[i] bytes, written in pieces
 * of 1000) to path. */
static int write_archive(const char *path, const char *const *names, const void *const *data,
                         const size_t *len, size_t n)
{
    ps_npz *z = NULL;
    int rc = ps_npz_open(&z, path);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = ps_npz_begin(z, names[i]);
        for (size_t o = 0; rc == 0 && o < len[i]; o += 1000) {
            size_t k = len[i] - o < 1000 ? len[i] - o : 1000;
            rc = ps_npz_write(z, (const char *)data[i] + o, k);
        }
    }
    if (rc == 0) {
        return ps_npz_close(&z);
    }
    ps_npz_abort(&z);
    return rc;
}

static void test_npz_records_parse_back(void **state)
{
    (void)state;
    enum { BIG = 100000 };
    char *big = test_malloc(BIG);
    for (size_t i = 0; i < BIG; i++) {
        big[i] = (char)(i * 31 + i / 7);
    }
    const char *names[2] = {"a.npy", "big.npy"};
    const void *data[2] = {"0123456789", big};
    const size_t len[2] = {10, BIG};
    char path[128];
    snprintf(path, sizeof path, "%s/t.npz", dir);
    assert_int_equal(write_archive(path, names, data, len, 2), 0);
    unsigned char *f = test_malloc(BIG + 1000);
    size_t n = ps_test_read_file(path, f, BIG + 1000);
    /* End record: 2 entries, the central directory just before it. */
    const unsigned char *e = f + n - 22;
    assert_int_equal(get32(e), 0x06054b50u);
    assert_int_equal(get16(e + 8), 2);
    assert_int_equal(get16(e + 10), 2);
    uint32_t cd_size = get32(e + 12), cd_off = get32(e + 16);
    assert_int_equal(cd_off + cd_size, n - 22);
    const unsigned char *c = f + cd_off;
    for (int m = 0; m < 2; m++) {
        size_t nl = strlen(names[m]);
        uint32_t crc = ps_file_crc32(0, data[m], len[m]);
        assert_int_equal(get32(c), 0x02014b50u);
        assert_int_equal(get16(c + 10), 0); /* stored */
        assert_int_equal(get32(c + 16), crc);
        assert_int_equal(get32(c + 20), len[m]);
        assert_int_equal(get32(c + 24), len[m]);
        assert_int_equal(get16(c + 28), nl);
        assert_memory_equal(c + 46, names[m], nl);
        const unsigned char *l = f + get32(c + 42);
        assert_int_equal(get32(l), 0x04034b50u);
        assert_int_equal(get16(l + 6), 0x0008); /* sizes in the descriptor */
        assert_int_equal(get16(l + 26), nl);
        assert_memory_equal(l + 30, names[m], nl);
        const unsigned char *d = l + 30 + nl;
        assert_memory_equal(d, data[m], len[m]);
        const unsigned char *dd = d + len[m];
        assert_int_equal(get32(dd), 0x08074b50u);
        assert_int_equal(get32(dd + 4), crc);
        assert_int_equal(get32(dd + 8), len[m]);
        c += 46 + nl;
    }
    assert_ptr_equal(c, f + cd_off + cd_size);
    /* The same members, the same bytes. */
    char again[128];
    snprintf(again, sizeof again, "%s/t2.npz", dir);
    assert_int_equal(write_archive(again, names, data, len, 2), 0);
    unsigned char *g = test_malloc(BIG + 1000);
    assert_int_equal(ps_test_read_file(again, g, BIG + 1000), n);
    assert_memory_equal(f, g, n);
    test_free(g);
    test_free(f);
    test_free(big);
}

/* numpy.load reads an archive of real .npy members as a dict of arrays. */
static void test_npz_loads_in_numpy(void **state)
{
    (void)state;
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        skip();
    }
    const float w[6] = {1.5f, -2, 3, 0.25f, 5, 6}, b[2] = {7, -8};
    const uint64_t ws[2] = {2, 3}, bs[2] = {1, 2};
    char wp[128], bp[128], zp[128], cmd[1024];
    snprintf(wp, sizeof wp, "%s/w.npy", dir);
    snprintf(bp, sizeof bp, "%s/b.npy", dir);
    snprintf(zp, sizeof zp, "%s/model.npz", dir);
    assert_int_equal(ps_npy_write(wp, w, ws, 2), 0);
    assert_int_equal(ps_npy_write(bp, b, bs, 2), 0);
    static unsigned char wb[4096], bb[4096];
    size_t wl = ps_test_read_file(wp, wb, sizeof wb), bl = ps_test_read_file(bp, bb, sizeof bb);
    const char *names[2] = {"w.npy", "b.npy"};
    const void *data[2] = {wb, bb};
    const size_t len[2] = {wl, bl};
    assert_int_equal(write_archive(zp, names, data, len, 2), 0);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import sys, zipfile\n"
             "import numpy as np\n"
             "assert zipfile.ZipFile(sys.argv[1]).testzip() is None\n"
             "z = np.load(sys.argv[1])\n"
             "assert sorted(z.files) == [\"b\", \"w\"], z.files\n"
             "assert z[\"w\"].dtype == np.float32 and z[\"w\"].shape == (2, 3)\n"
             "assert (z[\"w\"] == np.array([[1.5, -2, 3], [0.25, 5, 6]], np.float32)).all()\n"
             "assert (z[\"b\"] == np.array([[7, -8]], np.float32)).all()\n' '%s'",
             zp);
    assert_int_equal(system(cmd), 0);
}

static void test_npz_foresees_zip32_limits(void **state)
{
    (void)state;
    const char *names[3] = {"w.npy", "b.npy", "c.npy"};
    uint64_t sizes[3] = {1000, 1000, 1000};
    assert_true(ps_npz_fits(names, sizes, 3));
    sizes[0] = 0xffffffffull; /* one member of 4 GiB - 1: no room for headers */
    assert_false(ps_npz_fits(names, sizes, 1));
    sizes[0] = 0x7fffffffull;
    sizes[1] = 0x7fffffffull; /* two of 2 GiB: offsets pass 4 GiB */
    assert_false(ps_npz_fits(names, sizes, 2));
    sizes[1] = 0x7ffff000ull;
    assert_true(ps_npz_fits(names, sizes, 2));
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    const char *ln[1] = {longname};
    sizes[0] = 1;
    assert_false(ps_npz_fits(ln, sizes, 1));
    assert_true(ps_npz_fits(names, sizes, 0));
    assert_false(ps_npz_fits(names, sizes, PS_NPZ_MAX_MEMBERS + 1));
}

static void test_npz_refuses_misuse(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/bad.npz", dir);
    ps_npz *z = NULL;
    assert_int_equal(ps_npz_open(&z, path), 0);
    PS_TEST_EXPECT_LOG(ps_npz_write(z, "x", 1), PS_EINVAL, "before any member");
    ps_npz_abort(&z);
    assert_null(z);
    assert_int_equal(ps_npz_open(&z, path), 0);
    PS_TEST_EXPECT_LOG(ps_npz_begin(z, ""), PS_EINVAL, "name");
    /* Sticky: the archive is not published. */
    assert_int_equal(ps_npz_close(&z), PS_EINVAL);
    assert_null(z);
    assert_int_equal(access(path, F_OK), -1);
    ps_npz_abort(&z); /* NULL is fine */
}

static int write_small(void *arg)
{
    const char *path = arg;
    const char *names[3] = {"a.npy", "b.npy", "c.npy"};
    const void *data[3] = {"aaa", "bbbb", "c"};
    const size_t len[3] = {3, 4, 1};
    return write_archive(path, names, data, len, 3);
}

static void test_npz_survives_failed_allocations(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/oom.npz", dir);
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; rc == PS_ENOMEM && n < 100; n++) {
        ps_test_fail_alloc(n);
        rc = write_small(path);
        ps_test_fail_alloc(-1);
        assert_true(rc == 0 || (rc == PS_ENOMEM && access(path, F_OK) != 0));
    }
    assert_int_equal(rc, 0);
    assert_true(n > 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_npz_records_parse_back),          T(test_npz_loads_in_numpy),
        T(test_npz_foresees_zip32_limits),       T(test_npz_refuses_misuse),
        T(test_npz_survives_failed_allocations),
#undef T
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
