/* libFuzzer target for the libsvm reader (data/libsvm.c). The first 4
 * bytes pick the options (zero-based, hashing, dim, classes, max_dim), the
 * chunk size and a cut point; the rest is the file. The reader must either
 * fail with PS_EFORMAT at a line >= 1 or return rows that keep every
 * promise of libsvm.h (ascending ids below dim, finite values, labels
 * below nclasses, chunks of at most max_rows), and any two byte ranges
 * split at the cut must give exactly the rows of the whole file, as must
 * the range ending at ps_libsvm_offset after some rows, and the two line
 * parts (gzip's split) of the whole range. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "data/dataset.h"
#include "data/libsvm.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ROWS 4096

/* What a read saw: labels and row lengths in order. */
typedef struct {
    size_t n;
    int32_t y[MAX_ROWS];
    uint64_t len[MAX_ROWS];
} rows_seen;

/* Reads [begin, end) in chunks of max_rows, checking every row, appending
 * to seen. Returns the reader's final rc (0 at a clean end). */
static int read_range(const char *path, const ps_libsvm_opts *o, uint64_t begin, uint64_t end,
                      size_t max_rows, rows_seen *seen, uint64_t stop_after, uint64_t *offset)
{
    ps_libsvm *r = NULL;
    ps_dataset chunk = {0};
    int rc = ps_libsvm_open(&r, path, o, begin, end);
    if (rc) {
        CHECK(rc == PS_ENOMEM);
        return rc;
    }
    uint64_t got = 0;
    while ((rc = ps_libsvm_next(r, max_rows, &chunk)) == 0) {
        CHECK(chunk.n >= 1 && chunk.n <= max_rows && chunk.n_cap <= max_rows);
        /* Discovery: the labels seen so far, at least this chunk's one. */
        CHECK(chunk.nclasses >= 1 && (!o->nclasses || chunk.nclasses == o->nclasses));
        for (size_t i = 0; i < chunk.n; i++) {
            CHECK(chunk.y[i] >= 0 && (uint32_t)chunk.y[i] < chunk.nclasses);
            for (uint64_t k = chunk.indptr[i]; k < chunk.indptr[i + 1]; k++) {
                CHECK(chunk.idx[k] < chunk.dim);
                CHECK(k == chunk.indptr[i] || chunk.idx[k] > chunk.idx[k - 1]);
                CHECK(isfinite(chunk.val[k]));
            }
            if (seen->n < MAX_ROWS) {
                seen->y[seen->n] = chunk.y[i];
                seen->len[seen->n] = chunk.indptr[i + 1] - chunk.indptr[i];
            }
            seen->n++;
        }
        got += chunk.n;
        if (stop_after && got >= stop_after) {
            *offset = ps_libsvm_offset(r);
            break;
        }
    }
    if (rc == PS_EFORMAT) {
        CHECK(ps_libsvm_error_line(r) >= 1);
    }
    CHECK(rc == 0 || rc == PS_EEOF || rc == PS_EFORMAT || rc == PS_ENOMEM);
    ps_libsvm_close(&r);
    ps_dataset_fini(&chunk);
    return rc == PS_EEOF ? 0 : rc;
}

static void same_rows(const rows_seen *a, const rows_seen *b)
{
    CHECK(a->n == b->n);
    for (size_t i = 0; i < a->n && i < MAX_ROWS; i++) {
        CHECK(a->y[i] == b->y[i] && a->len[i] == b->len[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rows_seen whole, parts, prefix;
    if (size < 4) {
        return 0;
    }
    uint8_t f = data[0];
    ps_libsvm_opts o = {.zero_based = f & 1,
                        .hash_bits = (f & 2) ? 1u + data[1] % 20 : 0,
                        .dim = (f & 4) ? 1u + data[1] : 0,
                        .nclasses = (f & 8) ? 2u + data[2] % 6 : 0,
                        .max_dim = (f & 16) ? 1u + data[2] : 0};
    size_t max_rows = 1 + data[3] % 7;
    char path[300];
    fuzz_write("in.svm", data + 4, size - 4, path, sizeof path);
    uint64_t len = size - 4, cut = len ? data[1] % (len + 1) : 0;

    memset(&whole, 0, sizeof whole);
    int rc = read_range(path, &o, 0, UINT64_MAX, max_rows, &whole, 0, NULL);
    if (rc || whole.n > MAX_ROWS) {
        return 0;
    }
    /* Any cut: each line goes to exactly one side. With nclasses inferred a
     * side alone may see -1 labels the whole file would refuse, or the
     * reverse, so only a given class count makes the sides comparable. */
    memset(&parts, 0, sizeof parts);
    if (o.nclasses && read_range(path, &o, 0, cut, max_rows, &parts, 0, NULL) == 0 &&
        read_range(path, &o, cut, UINT64_MAX, max_rows, &parts, 0, NULL) == 0) {
        same_rows(&whole, &parts);
    }
    /* Line parts: every row in exactly one of two parts, in order. */
    if (o.nclasses) {
        memset(&parts, 0, sizeof parts);
        ps_libsvm_opts half = o;
        half.nparts = 2;
        size_t n0 = 0;
        int ok = read_range(path, &half, 0, UINT64_MAX, max_rows, &parts, 0, NULL) == 0;
        n0 = parts.n;
        half.part = 1;
        ok = ok && read_range(path, &half, 0, UINT64_MAX, max_rows, &parts, 0, NULL) == 0;
        CHECK(!ok || (parts.n == whole.n && n0 <= whole.n));
    }
    /* The first k rows end at ps_libsvm_offset: that prefix holds them. */
    if (whole.n >= 1) {
        uint64_t k = 1 + data[2] % whole.n, off = 0;
        memset(&prefix, 0, sizeof prefix);
        CHECK(read_range(path, &o, 0, UINT64_MAX, 1, &prefix, k, &off) == 0);
        memset(&prefix, 0, sizeof prefix);
        CHECK(read_range(path, &o, 0, off, max_rows, &prefix, 0, NULL) == 0);
        CHECK(prefix.n == k);
        for (size_t i = 0; i < k; i++) {
            CHECK(prefix.len[i] == whole.len[i]);
        }
    }
    return 0;
}
