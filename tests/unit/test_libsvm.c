/* libsvm reader: the accepted edge cases parse to the right rows, every
 * malformed line is rejected with its true line number (also when reading a
 * byte range), byte ranges from any number of workers give every line to
 * exactly one of them, chunks never exceed max_rows, and hashing maps and
 * merges ids. A gzipped file reads as its text does (line parts instead of
 * byte ranges); label sets become classes; ids past dim can be ignored and
 * counted; the holdout's two sides are disjoint and cover the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "data/dataset.h"
#include "common/err.h"
#include "data/fhash.h"
#include "data/libsvm.h"
#include "common/mem.h"
#include "data/partition.h"
#include "tests/unit/ps_test.h"

static char tmpdir[64];

static int group_setup(void **state)
{
    if (ps_test_tmpdir_create(tmpdir, sizeof tmpdir, "libsvm") != 0) {
        return -1;
    }
    return ps_test_setup(state);
}

static int group_teardown(void **state)
{
    ps_test_rmtree(tmpdir);
    return ps_test_teardown(state);
}

/* Writes text to tmpdir/name; the path goes to path (256 bytes). */
static void write_text(const char *name, const char *text, size_t len, char *path)
{
    snprintf(path, 256, "%s/%s", tmpdir, name);
    ps_test_write_file(path, text, len);
}

static const ps_libsvm_opts defaults = {0};

static void test_libsvm_accepts_edge_cases(void **state)
{
    (void)state;
    static const char text[] = "# header comment\n"
                               "\n"
                               "+1 qid:3 1:0.5 3:1e-2   \r\n" /* qid, sci, trailing, CRLF */
                               "   \t \n"                     /* blank */
                               "-1 2:-2.5E+1 # trailing comment\n"
                               "1\n"            /* no features */
                               "-1\t4:7 5:.25"; /* tabs, no final newline */
    char path[256];
    write_text("edge.svm", text, sizeof text - 1, path);
    ps_dataset d = {0};
    assert_int_equal(ps_libsvm_load(path, &defaults, 0, UINT64_MAX, &d), 0);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.sparse, 1);
    assert_int_equal(d.nclasses, 2);
    assert_int_equal(d.dim, 5); /* max one-based index 5 -> ids 0..4 */
    const int32_t y[4] = {1, 0, 1, 0};
    const uint64_t indptr[5] = {0, 2, 3, 3, 5};
    const uint64_t idx[5] = {0, 2, 1, 3, 4};
    const float val[5] = {0.5f, 0.01f, -25.0f, 7.0f, 0.25f};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(d.y[i], y[i]);
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(d.indptr[i], indptr[i]);
        assert_int_equal(d.idx[i], idx[i]);
        assert_true(d.val[i] == val[i]);
    }
    ps_dataset_fini(&d);
}

static void test_libsvm_reads_multiclass_and_zero_based(void **state)
{
    (void)state;
    static const char text[] = "0 0:1\n4 2:1 7:3\n2.0 1:1\n";
    char path[256];
    write_text("multi.svm", text, sizeof text - 1, path);
    ps_libsvm_opts o = {.zero_based = 1};
    ps_dataset d = {0};
    assert_int_equal(ps_libsvm_load(path, &o, 0, UINT64_MAX, &d), 0);
    assert_int_equal(d.n, 3);
    /* Discovery: the labels seen, {0, 2, 4}, are the classes; no unused
     * class for 1 or 3. */
    assert_int_equal(d.nclasses, 3);
    assert_int_equal(d.dim, 8);
    assert_int_equal(d.y[0], 0);
    assert_int_equal(d.y[1], 2);
    assert_int_equal(d.y[2], 1);
    assert_int_equal(d.idx[0], 0);
    assert_int_equal(d.idx[2], 7);
    /* Given class ids 0..5 and dim are kept: labels are the classes. */
    o.nclasses = 6;
    o.dim = 100;
    assert_int_equal(ps_libsvm_load(path, &o, 0, UINT64_MAX, &d), 0);
    assert_int_equal(d.nclasses, 6);
    assert_int_equal(d.dim, 100);
    assert_int_equal(d.y[1], 4);
    assert_int_equal(d.y[2], 2);
    /* A given list: each label's index in it. */
    static const int32_t list[] = {0, 2, 3, 4, 9};
    o = (ps_libsvm_opts){.zero_based = 1, .labels = list, .nlabels = 5};
    assert_int_equal(ps_libsvm_load(path, &o, 0, UINT64_MAX, &d), 0);
    assert_int_equal(d.nclasses, 5);
    assert_int_equal(d.y[0], 0);
    assert_int_equal(d.y[1], 3);
    assert_int_equal(d.y[2], 1);
    ps_dataset_fini(&d);
}

typedef struct {
    const char *bad; /* the offending line */
    ps_libsvm_opts opts;
} bad_case;

/* Every rejection: the bad line sits at line 6, after a comment, a blank
 * and good lines, and must come back as PS_EFORMAT at line 6, both from the
 * start and from a byte range that begins mid-way through line 3. */
static void test_libsvm_rejects_malformed_lines_with_line_number(void **state)
{
    (void)state;
    static const int32_t zero_one[] = {0, 1};
    const bad_case cases[] = {
        {"1 abc:1", {0}},                              /* non-numeric index */
        {"1 3:xyz", {0}},                              /* non-numeric value */
        {"1 3:", {0}},                                 /* empty value */
        {"1 -3:1", {0}},                               /* negative index */
        {"1 0:1", {0}},                                /* index 0, one-based */
        {"1 3:1 2:1", {0}},                            /* descending */
        {"1 3:1 3:2", {0}},                            /* repeated */
        {"1 3:1 5", {0}},                              /* missing colon */
        {"1 3:nan", {0}},                              /* not finite */
        {"1 3:inf", {0}},                              /* not finite */
        {"1 3:1e39", {0}},                             /* overflows float */
        {"abc 3:1", {0}},                              /* label not numeric */
        {"0.5 3:1", {0}},                              /* label not an integer */
        {"3 3:1", {.nclasses = 2}},                    /* class >= nclasses */
        {"-1 3:1", {.nclasses = 3}},                   /* not a class id */
        {"5 3:1", {.labels = zero_one, .nlabels = 2}}, /* not in the list */
        {"3000000000 3:1", {0}},                       /* past int32 */
        {"1e10 3:1", {0}},                             /* past int32, as a decimal */
        {"1 11:1", {.dim = 10}},                       /* index beyond dim */
        {"1 99999999999999999999999:1", {0}},          /* index overflows 64 bits */
        {"1 3:1x", {0}},                               /* junk after value */
        {"1 3:0x1p3", {0}},                            /* hex float: strtod reads 8 */
        {"1 3:0x10", {0}},                             /* hex integer */
        {"1 3:INF", {0}},                              /* inf, any case */
        {"1 3:-Infinity", {0}},                        /* infinity */
        {"1 3:NaN", {0}},                              /* nan, any case */
        {"1 3:nan(0x1)", {0}},                         /* nan with a payload */
        {"1 3:1e", {0}},                               /* exponent without digits */
        {"1 3:+", {0}},                                /* sign alone */
        {"1 3:.", {0}},                                /* point alone */
        {"1 3: 1", {0}},                               /* value after a blank: empty value */
        {"0x1 3:1", {0}},                              /* hex label */
        {"Inf 3:1", {0}},                              /* inf label */
        {"1 1099511627777:1", {0}},                    /* id 2^40 unhashed: no table holds it */
        /* Past what the memory budget holds. */
        {"1 1001:1", {.max_dim = 1000}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char text[512];
        int len = snprintf(text, sizeof text, "# comment\n1 1:1 2:1\n\n0 4:2.5\n1 2:1\n%s\n1 1:1\n",
                           cases[c].bad);
        char path[256];
        write_text("bad.svm", text, (size_t)len, path);
        ps_libsvm *r = NULL;
        ps_dataset chunk = {0};
        assert_int_equal(ps_libsvm_open(&r, path, &cases[c].opts, 0, UINT64_MAX), 0);
        int rc = ps_libsvm_next(r, 100, &chunk);
        if (rc != PS_EFORMAT) {
            print_error("case '%s': rc %d\n", cases[c].bad, rc);
        }
        assert_int_equal(rc, PS_EFORMAT);
        assert_int_equal(ps_libsvm_error_line(r), 6);
        assert_int_equal(chunk.n, 3); /* the good rows before it */
        /* Sticky: no silent skipping past the bad line. */
        assert_int_equal(ps_libsvm_next(r, 100, &chunk), PS_EFORMAT);
        ps_libsvm_close(&r);
        assert_null(r);

        /* Line 4 begins at byte 21; a range from byte 22 (mid-line 4)
         * starts reading at line 5 and still reports line 6. */
        assert_int_equal(ps_libsvm_open(&r, path, &cases[c].opts, 22, UINT64_MAX), 0);
        assert_int_equal(ps_libsvm_next(r, 100, &chunk), PS_EFORMAT);
        assert_int_equal(chunk.n, 1);
        assert_int_equal(ps_libsvm_error_line(r), 6);
        ps_libsvm_close(&r);
        ps_dataset_fini(&chunk);
    }
}

/* The line number is counted over the whole file, far past the first read
 * buffer, from a range that starts deep inside it. */
static void test_libsvm_error_line_counts_whole_file(void **state)
{
    (void)state;
    enum { LINES = 20000 };
    char *text = ps_malloc(LINES * 32);
    assert_non_null(text);
    size_t len = 0;
    for (int i = 1; i <= LINES; i++) {
        if (i == 17777) {
            len += (size_t)sprintf(text + len, "1 5:1 4:1\n");
        } else {
            len += (size_t)sprintf(text + len, "%d %d:1\n", i % 2, i % 50 + 1);
        }
    }
    char path[256];
    write_text("long.svm", text, len, path);
    ps_free(text);
    ps_libsvm *r = NULL;
    ps_dataset chunk = {0};
    assert_int_equal(ps_libsvm_open(&r, path, &defaults, len / 2 + 3, UINT64_MAX), 0);
    int rc;
    while ((rc = ps_libsvm_next(r, 1000, &chunk)) == 0) {
    }
    assert_int_equal(rc, PS_EFORMAT);
    assert_int_equal(ps_libsvm_error_line(r), 17777);
    /* Rewind clears the error and starts over (and fails again). */
    assert_int_equal(ps_libsvm_rewind(r), 0);
    assert_int_equal(ps_libsvm_error_line(r), 0);
    assert_int_equal(ps_libsvm_next(r, 10, &chunk), 0);
    ps_libsvm_close(&r);
    ps_dataset_fini(&chunk);
}

/* Reads [begin, end) and appends each row's line id (the value of its first
 * feature) to ids. */
static void read_range(const char *path, uint64_t begin, uint64_t end, size_t max_rows, int *ids,
                       size_t *nids)
{
    ps_libsvm *r = NULL;
    ps_dataset chunk = {0};
    assert_int_equal(ps_libsvm_open(&r, path, &defaults, begin, end), 0);
    int rc;
    while ((rc = ps_libsvm_next(r, max_rows, &chunk)) == 0) {
        assert_true(chunk.n >= 1 && chunk.n <= max_rows);
        for (size_t i = 0; i < chunk.n; i++) {
            ids[(*nids)++] = (int)chunk.val[chunk.indptr[i]];
        }
    }
    assert_int_equal(rc, PS_EEOF);
    assert_int_equal(chunk.n, 0);
    ps_libsvm_close(&r);
    ps_dataset_fini(&chunk);
}

/* Lines of varied length (some blank or comment-only, which hold no row):
 * line i has "i%3 1:i ..." so each row names its line. */
static size_t make_lines(char *text, int nlines, int trailing_newline)
{
    size_t len = 0;
    int rows = 0;
    for (int i = 0; i < nlines; i++) {
        if (i % 11 == 5) {
            len += (size_t)sprintf(text + len, "# note %d\n", i);
            continue;
        }
        len += (size_t)sprintf(text + len, "%d 1:%d", i % 3, rows++);
        for (int k = 0; k < i % 7; k++) {
            len += (size_t)sprintf(text + len, " %d:0.5", k + 2);
        }
        text[len++] = '\n';
    }
    if (!trailing_newline) {
        len--;
    }
    text[len] = '\0';
    return len;
}

static void check_cover(const char *path, uint64_t size, int nrows, uint32_t w, size_t max_rows)
{
    int *ids = ps_malloc((size_t)(nrows + 1) * sizeof *ids);
    assert_non_null(ids);
    size_t nids = 0;
    for (uint32_t k = 0; k < w; k++) {
        uint64_t b, e;
        assert_int_equal(ps_partition_bytes(size, w, k, &b, &e), 0);
        read_range(path, b, e, max_rows, ids, &nids);
    }
    /* Every row once, in file order. */
    assert_int_equal(nids, nrows);
    for (int i = 0; i < nrows; i++) {
        assert_int_equal(ids[i], i);
    }
    ps_free(ids);
}

static void test_libsvm_byte_ranges_cover_every_line_once(void **state)
{
    (void)state;
    char *text = ps_malloc(64 * 1024);
    assert_non_null(text);
    for (int nl = 0; nl <= 1; nl++) {
        size_t len = make_lines(text, 300, nl);
        int nrows = 300 - 27; /* i % 11 == 5 for 27 of 0..299 */
        char path[256];
        write_text(nl ? "cover.svm" : "cover-nonl.svm", text, len, path);
        uint64_t size;
        assert_int_equal(ps_libsvm_file_size(path, &size), 0);
        assert_int_equal(size, len);
        for (uint32_t w = 1; w <= 8; w++) {
            check_cover(path, size, nrows, w, 7);
        }
    }
    ps_free(text);
}

/* Two ranges split at every byte of a small file: whatever the cut (at a
 * line start, mid-line, on the newline, at either end), each row is read
 * exactly once. */
static void test_libsvm_every_cut_point_splits_cleanly(void **state)
{
    (void)state;
    char text[1024];
    for (int nl = 0; nl <= 1; nl++) {
        size_t len = make_lines(text, 14, nl);
        int nrows = 13;
        char path[256];
        write_text("cut.svm", text, len, path);
        for (uint64_t cut = 0; cut <= len + 1; cut++) {
            int ids[32];
            size_t nids = 0;
            read_range(path, 0, cut, 3, ids, &nids);
            read_range(path, cut, UINT64_MAX, 3, ids, &nids);
            assert_int_equal(nids, nrows);
            for (int i = 0; i < nrows; i++) {
                assert_int_equal(ids[i], i);
            }
        }
    }
}

/* Loading text as tmpdir/name with o fails with PS_EFORMAT, logging
 * "path:at" and also. */
static void expect_refusal(const char *name, const char *text, const ps_libsvm_opts *o,
                           const char *at, const char *also)
{
    char path[256], want[300];
    ps_dataset d = {0};
    ps_test_capture cap;
    write_text(name, text, strlen(text), path);
    ps_test_capture_begin(&cap);
    int rc = ps_libsvm_load(path, o, 0, UINT64_MAX, &d);
    char *log = ps_test_capture_end(&cap);
    assert_int_equal(rc, PS_EFORMAT);
    snprintf(want, sizeof want, "%s:%s", path, at);
    assert_non_null(strstr(log, want));
    assert_non_null(strstr(log, also));
    test_free(log);
}

/* Plain decimals in every form strtod and a data file share still parse,
 * and the rejections above name file:line and the fix. */
static void test_libsvm_accepts_decimals_and_names_the_fix(void **state)
{
    (void)state;
    static const char text[] = "+1 1:+.5 2:5. 3:-1E-3 4:1e+2 5:007\n-1 1099511627776:1\n";
    char path[256];
    write_text("decimals.svm", text, sizeof text - 1, path);
    ps_dataset d = {0};
    assert_int_equal(ps_libsvm_load(path, &defaults, 0, UINT64_MAX, &d), 0);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.dim, (uint64_t)1 << 40); /* one-based 2^40 is id 2^40 - 1 */
    const float want[5] = {0.5f, 5.0f, -0.001f, 100.0f, 7.0f};
    for (int i = 0; i < 5; i++) {
        assert_true(d.val[i] == want[i]);
    }
    ps_dataset_fini(&d);

    expect_refusal("hex.svm", "1 1:1\n0 3:0x1p3\n", &defaults, "2: value '0x1p3'", "hex");
    ps_libsvm_opts o = {.max_dim = (uint64_t)1 << 30};
    expect_refusal("huge.svm", "1 2147483648:1\n", &o, "1: feature index 2147483648",
                   "--hash-bits");
    /* With hashing any 64-bit id is a row. */
    static const char any[] = "1 18446744073709551614:1 18446744073709551615:2\n";
    write_text("any.svm", any, sizeof any - 1, path);
    o = (ps_libsvm_opts){.hash_bits = 10, .max_dim = 5};
    assert_int_equal(ps_libsvm_load(path, &o, 0, UINT64_MAX, &d), 0);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.dim, 1024);
    ps_dataset_fini(&d);
}

/* ps_libsvm_offset after n rows is where a range holding exactly those
 * rows ends: the first train_limit samples, as byte ranges. */
static void test_libsvm_offset_ends_the_rows_read(void **state)
{
    (void)state;
    char *text = ps_malloc(64 * 1024);
    assert_non_null(text);
    size_t len = make_lines(text, 120, 1);
    char path[256];
    write_text("offset.svm", text, len, path);
    ps_free(text);
    for (size_t n = 1; n <= 100; n += 33) {
        ps_libsvm *r = NULL;
        ps_dataset chunk = {0};
        assert_int_equal(ps_libsvm_open(&r, path, &defaults, 0, UINT64_MAX), 0);
        assert_int_equal(ps_libsvm_offset(r), 0);
        assert_int_equal(ps_libsvm_next(r, n, &chunk), 0);
        assert_int_equal(chunk.n, n);
        uint64_t end = ps_libsvm_offset(r);
        ps_libsvm_close(&r);
        /* Split [0, end) over 3 workers: exactly rows 0..n-1. */
        int ids[128];
        size_t nids = 0;
        for (uint32_t w = 0; w < 3; w++) {
            uint64_t b, e;
            assert_int_equal(ps_partition_bytes(end, 3, w, &b, &e), 0);
            read_range(path, b, e, 7, ids, &nids);
        }
        assert_int_equal(nids, n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(ids[i], (int)i);
        }
        ps_dataset_fini(&chunk);
    }
}

/* Chunks of max_rows: never more rows held, row capacity never above
 * max_rows, all rows seen, and a rewind replays the same rows. */
static void test_libsvm_chunks_are_bounded(void **state)
{
    (void)state;
    char *text = ps_malloc(64 * 1024);
    assert_non_null(text);
    size_t len = make_lines(text, 500, 1);
    int nrows = 500 - 45;
    char path[256];
    write_text("chunks.svm", text, len, path);
    ps_free(text);
    ps_libsvm *r = NULL;
    ps_dataset chunk = {0};
    assert_int_equal(ps_libsvm_open(&r, path, &defaults, 0, UINT64_MAX), 0);
    for (int epoch = 0; epoch < 2; epoch++) {
        int total = 0, rc;
        while ((rc = ps_libsvm_next(r, 10, &chunk)) == 0) {
            assert_true(chunk.n <= 10);
            assert_true(chunk.n_cap <= 10);
            assert_int_equal((int)chunk.val[chunk.indptr[0]], total);
            total += (int)chunk.n;
        }
        assert_int_equal(rc, PS_EEOF);
        assert_int_equal(total, nrows);
        assert_int_equal(ps_libsvm_rewind(r), 0);
    }
    ps_libsvm_close(&r);
    ps_dataset_fini(&chunk);
}

/* A line longer than the 64 KiB read buffer. */
static void test_libsvm_reads_very_long_lines(void **state)
{
    (void)state;
    enum { NF = 30000 };
    char *text = ps_malloc(NF * 16 + 64);
    assert_non_null(text);
    size_t len = (size_t)sprintf(text, "0 1:1\n1");
    for (int k = 1; k <= NF; k++) {
        len += (size_t)sprintf(text + len, " %d:%d", k, k % 5);
    }
    len += (size_t)sprintf(text + len, "\n0 2:1\n");
    char path[256];
    write_text("longline.svm", text, len, path);
    ps_free(text);
    ps_dataset d = {0};
    assert_int_equal(ps_libsvm_load(path, &defaults, 0, UINT64_MAX, &d), 0);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.indptr[2] - d.indptr[1], NF);
    assert_int_equal(d.idx[d.indptr[1] + NF - 1], NF - 1);
    assert_true(d.val[d.indptr[1] + 7] == 3.0f);
    ps_dataset_fini(&d);
}

static void test_libsvm_hashes_and_merges_features(void **state)
{
    (void)state;
    static const char text[] = "1 1:1 2:2 3:4 4:8 5:16\n0 100:1\n";
    char path[256];
    write_text("hash.svm", text, sizeof text - 1, path);
    ps_libsvm_opts o = {.hash_bits = 1};
    ps_dataset d = {0};
    assert_int_equal(ps_libsvm_load(path, &o, 0, UINT64_MAX, &d), 0);
    assert_int_equal(d.dim, 2);
    assert_int_equal(d.n, 2);
    float want[2] = {0, 0};
    for (uint64_t id = 0; id < 5; id++) { /* one-based 1..5 -> ids 0..4 */
        want[ps_fhash(id, 1)] += (float)(1u << id);
    }
    size_t n0 = (size_t)(d.indptr[1] - d.indptr[0]);
    assert_true(n0 >= 1 && n0 <= 2);
    float got[2] = {0, 0};
    for (size_t k = 0; k < n0; k++) {
        if (k) {
            assert_true(d.idx[k] > d.idx[k - 1]);
        }
        got[d.idx[k]] = d.val[k];
    }
    assert_true(got[0] == want[0] && got[1] == want[1]);
    assert_int_equal(d.idx[d.indptr[1]], ps_fhash(99, 1));
    /* With hashing, an id past any dim is mapped, not rejected. */
    o.hash_bits = 20;
    o.dim = 10;
    assert_int_equal(ps_libsvm_load(path, &o, 0, UINT64_MAX, &d), 0);
    assert_int_equal(d.dim, 1u << 20);
    assert_int_equal(d.idx[d.indptr[1]], ps_fhash(99, 20));
    ps_dataset_fini(&d);
    o.hash_bits = 41;
    ps_libsvm *r = NULL;
    assert_int_equal(ps_libsvm_open(&r, path, &o, 0, UINT64_MAX), PS_ECONFIG);
    assert_null(r);
}

/* path.gz: text gzipped (two members, so member boundaries are read
 * through too). */
static void write_gz(const char *name, const char *text, size_t len, char *path)
{
    snprintf(path, 256, "%s/%s", tmpdir, name);
    size_t half = len / 2;
    for (int member = 0; member < 2; member++) {
        gzFile g = gzopen(path, member ? "ab" : "wb");
        assert_non_null(g);
        size_t n = member ? len - half : half;
        assert_int_equal(gzwrite(g, text + (member ? half : 0), (unsigned)n), (int)n);
        assert_int_equal(gzclose(g), Z_OK);
    }
}

/* Every row once: the ids of rows read into ids. */
static void read_all(const char *path, const ps_libsvm_opts *o, uint64_t end, int *ids,
                     size_t *nids)
{
    ps_libsvm *r = NULL;
    ps_dataset chunk = {0};
    assert_int_equal(ps_libsvm_open(&r, path, o, 0, end), 0);
    int rc;
    while ((rc = ps_libsvm_next(r, 5, &chunk)) == 0) {
        for (size_t i = 0; i < chunk.n; i++) {
            ids[(*nids)++] = (int)chunk.val[chunk.indptr[i]];
        }
    }
    assert_int_equal(rc, PS_EEOF);
    ps_libsvm_close(&r);
    ps_dataset_fini(&chunk);
}

static void test_libsvm_reads_gzip_as_its_text(void **state)
{
    (void)state;
    char *text = ps_malloc(64 * 1024);
    assert_non_null(text);
    size_t len = make_lines(text, 300, 1);
    int nrows = 300 - 27;
    char plain[256], gz[256];
    write_text("gz.svm", text, len, plain);
    write_gz("gz.svm.gz", text, len, gz);
    int gzip = -1;
    assert_int_equal(ps_libsvm_is_gzip(gz, &gzip), 0);
    assert_int_equal(gzip, 1);
    assert_int_equal(ps_libsvm_is_gzip(plain, &gzip), 0);
    assert_int_equal(gzip, 0);
    ps_dataset a = {0}, b = {0};
    assert_int_equal(ps_libsvm_load(plain, &defaults, 0, UINT64_MAX, &a), 0);
    assert_int_equal(ps_libsvm_load(gz, &defaults, 0, UINT64_MAX, &b), 0);
    assert_int_equal(a.n, nrows);
    assert_int_equal(b.n, a.n);
    assert_int_equal(b.nclasses, 3);
    assert_memory_equal(a.indptr, b.indptr, (a.n + 1) * sizeof *a.indptr);
    assert_memory_equal(a.idx, b.idx, a.indptr[a.n] * sizeof *a.idx);
    assert_memory_equal(a.y, b.y, a.n * sizeof *a.y);
    /* Line parts: W readers of the whole stream, each every W-th line,
     * give every row once (in order within a part). */
    for (uint32_t w = 1; w <= 4; w++) {
        int seen[300] = {0};
        size_t total = 0;
        for (uint32_t k = 0; k < w; k++) {
            int ids[300];
            size_t n = 0;
            ps_libsvm_opts o = {.part = k, .nparts = w};
            read_all(gz, &o, UINT64_MAX, ids, &n);
            for (size_t i = 0; i < n; i++) {
                assert_true(i == 0 || ids[i] > ids[i - 1]);
                seen[ids[i]]++;
            }
            total += n;
        }
        assert_int_equal(total, nrows);
        for (int i = 0; i < nrows; i++) {
            assert_int_equal(seen[i], 1);
        }
    }
    /* Offsets are in the text: the end after 50 rows bounds a gzip range
     * as it bounds the plain file's (--train-limit). */
    ps_libsvm *r = NULL;
    assert_int_equal(ps_libsvm_open(&r, gz, &defaults, 0, UINT64_MAX), 0);
    assert_int_equal(ps_libsvm_next(r, 50, &b), 0);
    uint64_t end = ps_libsvm_offset(r);
    ps_libsvm_close(&r);
    assert_int_equal(ps_libsvm_open(&r, plain, &defaults, 0, UINT64_MAX), 0);
    assert_int_equal(ps_libsvm_next(r, 50, &a), 0);
    assert_int_equal(ps_libsvm_offset(r), end);
    ps_libsvm_close(&r);
    int ids[300];
    size_t n = 0;
    read_all(gz, &defaults, end, ids, &n);
    assert_int_equal(n, 50);
    /* A bad line in a gzip file is named by its line in the text. */
    len = (size_t)sprintf(text, "1 1:1\n0 2:1\n\n1 3:1 2:1\n");
    write_gz("bad.svm.gz", text, len, gz);
    assert_int_equal(ps_libsvm_open(&r, gz, &defaults, 0, UINT64_MAX), 0);
    assert_int_equal(ps_libsvm_next(r, 10, &a), PS_EFORMAT);
    assert_int_equal(ps_libsvm_error_line(r), 4);
    ps_libsvm_close(&r);
    ps_dataset_fini(&a);
    ps_dataset_fini(&b);
    ps_free(text);
}

/* +1/-1 labels are two classes (-1 first), not three with an unused 0;
 * 1..3 are three; the classes found so far are asked for. */
static void test_libsvm_finds_label_sets(void **state)
{
    (void)state;
    static const char pm[] = "+1 1:1\n-1 2:1\n1 3:1\n";
    static const char k3[] = "3 1:1\n1 2:1\n2 3:1\n3 1:2\n";
    char path[256];
    ps_dataset d = {0};
    write_text("pm.svm", pm, sizeof pm - 1, path);
    assert_int_equal(ps_libsvm_load(path, &defaults, 0, UINT64_MAX, &d), 0);
    assert_int_equal(d.nclasses, 2);
    assert_int_equal(d.y[0], 1);
    assert_int_equal(d.y[1], 0);
    assert_int_equal(d.y[2], 1);
    write_text("k3.svm", k3, sizeof k3 - 1, path);
    ps_libsvm *r = NULL;
    assert_int_equal(ps_libsvm_open(&r, path, &defaults, 0, UINT64_MAX), 0);
    assert_int_equal(ps_libsvm_next(r, 100, &d), 0);
    assert_int_equal(d.nclasses, 3);
    const int32_t want[4] = {2, 0, 1, 2};
    assert_memory_equal(d.y, want, sizeof want);
    size_t n = 0;
    const int32_t *labels = ps_libsvm_labels(r, &n);
    assert_int_equal(n, 3);
    assert_int_equal(labels[0], 1);
    assert_int_equal(labels[2], 3);
    ps_libsvm_close(&r);
    /* With a list, no discovery. */
    ps_libsvm_opts o = {.labels = labels, .nlabels = 0, .nclasses = 4};
    assert_int_equal(ps_libsvm_open(&r, path, &o, 0, UINT64_MAX), 0);
    assert_null(ps_libsvm_labels(r, &n));
    assert_int_equal(n, 0);
    ps_libsvm_close(&r);
    ps_dataset_fini(&d);
}

/* predict's reading: ids at or past dim are dropped and counted, the rest
 * of the row kept. */
static void test_libsvm_ignores_ids_past_dim_when_asked(void **state)
{
    (void)state;
    static const char text[] = "1 1:1 5:2 9:3\n0 2:1\n1 7:1 8:1\n";
    char path[256];
    write_text("past.svm", text, sizeof text - 1, path);
    ps_libsvm_opts o = {.dim = 5, .ignore_past_dim = 1, .nclasses = 2};
    ps_libsvm *r = NULL;
    ps_dataset d = {0};
    assert_int_equal(ps_libsvm_open(&r, path, &o, 0, UINT64_MAX), 0);
    assert_int_equal(ps_libsvm_next(r, 10, &d), 0);
    assert_int_equal(d.n, 3);
    const uint64_t indptr[4] = {0, 2, 3, 3};
    assert_memory_equal(d.indptr, indptr, sizeof indptr);
    assert_int_equal(d.idx[1], 4);
    uint64_t ids = 0, rows = 0;
    ps_libsvm_ignored(r, &ids, &rows);
    assert_int_equal(ids, 3);
    assert_int_equal(rows, 2);
    ps_libsvm_close(&r);
    /* Without the option the same file is refused. */
    o.ignore_past_dim = 0;
    assert_int_equal(ps_libsvm_load(path, &o, 0, UINT64_MAX, &d), PS_EFORMAT);
    ps_dataset_fini(&d);
}

/* The holdout: training and held-out sides are disjoint, cover every row,
 * do not depend on how the file is split, and hold about the fraction. */
static void test_libsvm_holdout_sides_are_disjoint_and_cover(void **state)
{
    (void)state;
    enum { LINES = 2000 };
    char *text = ps_malloc(LINES * 40);
    assert_non_null(text);
    size_t len = make_lines(text, LINES, 1);
    int nrows = LINES - 182; /* i % 11 == 5 */
    char path[256];
    write_text("hold.svm", text, len, path);
    ps_free(text);
    int *seen = ps_calloc(LINES, sizeof *seen);
    int *ids = ps_malloc(LINES * sizeof *ids);
    assert_non_null(seen);
    assert_non_null(ids);
    size_t held = 0, side = 0;
    for (int keep = 0; keep <= 1; keep++) {
        for (uint32_t w = 1; w <= 3; w++) {
            size_t n = 0;
            for (uint32_t k = 0; k < w; k++) {
                uint64_t b, e;
                assert_int_equal(ps_partition_bytes(len, w, k, &b, &e), 0);
                ps_libsvm *r = NULL;
                ps_dataset chunk = {0};
                ps_libsvm_opts o = {.holdout = {.fraction = 0.2, .seed = 7}, .holdout_keep = keep};
                assert_int_equal(ps_libsvm_open(&r, path, &o, b, e), 0);
                while (ps_libsvm_next(r, 64, &chunk) == 0) {
                    for (size_t i = 0; i < chunk.n; i++) {
                        ids[n++] = (int)chunk.val[chunk.indptr[i]];
                    }
                }
                ps_libsvm_close(&r);
                ps_dataset_fini(&chunk);
            }
            /* The same rows whatever the split. */
            for (size_t i = 0; i < n; i++) {
                seen[ids[i]] += w == 1 ? 1 + keep * 10 : 0;
                assert_true(seen[ids[i]] == 1 + keep * 10);
            }
            side = w == 1 ? n : side;
            assert_int_equal(n, side);
            held = keep ? n : held;
        }
    }
    for (int i = 0; i < nrows; i++) {
        assert_true(seen[i] == 1 || seen[i] == 11); /* exactly one side */
    }
    /* 20% of 1818 rows: 363.6 expected, sd 17. */
    assert_true(held > 290 && held < 440);
    ps_free(seen);
    ps_free(ids);
}

static void test_libsvm_rejects_bad_open(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/missing.svm", tmpdir);
    ps_libsvm *r = NULL;
    uint64_t size;
    assert_int_equal(ps_libsvm_open(&r, path, &defaults, 0, UINT64_MAX), PS_EIO);
    assert_int_equal(ps_libsvm_file_size(path, &size), PS_EIO);
    write_text("tiny.svm", "1 1:1\n", 6, path);
    assert_int_equal(ps_libsvm_open(&r, path, &defaults, 5, 4), PS_EINVAL);
    assert_null(r);
    ps_libsvm_close(&r); /* NULL is fine */
    /* An empty range loads as an empty dataset. */
    ps_dataset d = {0};
    assert_int_equal(ps_libsvm_load(path, NULL, 3, 6, &d), 0);
    assert_int_equal(d.n, 0);
    ps_dataset_fini(&d);
}

/* Fails each allocation of open + next in turn until both succeed. */
static void test_libsvm_survives_oom(void **state)
{
    (void)state;
    char *text = ps_malloc(16 * 1024);
    assert_non_null(text);
    size_t len = make_lines(text, 200, 1);
    char path[256];
    write_text("oom.svm", text, len, path);
    ps_free(text);
    ps_libsvm_opts o = {.hash_bits = 8};
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; rc == PS_ENOMEM && n < 200; n++) {
        ps_dataset d = {0};
        ps_test_fail_alloc(n);
        rc = ps_libsvm_load(path, &o, 0, UINT64_MAX, &d);
        ps_test_fail_alloc(-1);
        if (rc) {
            assert_int_equal(rc, PS_ENOMEM);
            assert_null(d.indptr);
        } else {
            assert_int_equal(d.n, 200 - 18);
        }
        ps_dataset_fini(&d);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libsvm_accepts_edge_cases),
        cmocka_unit_test(test_libsvm_reads_multiclass_and_zero_based),
        cmocka_unit_test(test_libsvm_rejects_malformed_lines_with_line_number),
        cmocka_unit_test(test_libsvm_error_line_counts_whole_file),
        cmocka_unit_test(test_libsvm_byte_ranges_cover_every_line_once),
        cmocka_unit_test(test_libsvm_every_cut_point_splits_cleanly),
        cmocka_unit_test(test_libsvm_accepts_decimals_and_names_the_fix),
        cmocka_unit_test(test_libsvm_offset_ends_the_rows_read),
        cmocka_unit_test(test_libsvm_chunks_are_bounded),
        cmocka_unit_test(test_libsvm_reads_very_long_lines),
        cmocka_unit_test(test_libsvm_hashes_and_merges_features),
        cmocka_unit_test(test_libsvm_reads_gzip_as_its_text),
        cmocka_unit_test(test_libsvm_finds_label_sets),
        cmocka_unit_test(test_libsvm_ignores_ids_past_dim_when_asked),
        cmocka_unit_test(test_libsvm_holdout_sides_are_disjoint_and_cover),
        cmocka_unit_test(test_libsvm_rejects_bad_open),
        cmocka_unit_test(test_libsvm_survives_oom),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
