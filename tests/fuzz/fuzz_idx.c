/* libFuzzer target for the IDX reader (data/idx.c over data/zread.c). The
 * first byte picks how the rest is stored (plain or gzipped, with bytes
 * appended after the gzip stream or a stream cut short) and where it is
 * split into an images and a labels file; the rest is the two files. Run
 * with -malloc_limit_mb so that an allocation sized by a header rather
 * than by the data is a crash: a header must never buy memory the file
 * does not back. Whatever the bytes, every call returns 0 or a logged
 * error, and a load that succeeds holds pixels in [0, 1] and labels below
 * the classes asked for. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "common/err.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data to name, gzipped when mode says so. */
static void store(const char *name, const uint8_t *data, size_t size, uint8_t mode, char *path,
                  size_t cap)
{
    static uint8_t z[1 << 14];
    if (!(mode & 1) || size > sizeof z / 2) {
        fuzz_write(name, data, size, path, cap);
        return;
    }
    uLongf zlen = sizeof z;
    if (compress2(z, &zlen, data, size, 6) != Z_OK) {
        abort();
    }
    /* compress2 writes zlib framing; rewrap it as one gzip member. */
    static uint8_t g[(1 << 14) + 32];
    static const uint8_t head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    size_t n = 0;
    memcpy(g, head, sizeof head);
    n += sizeof head;
    memcpy(g + n, z + 2, zlen - 6); /* the raw deflate data */
    n += zlen - 6;
    uint32_t crc = (uint32_t)crc32(0, data, (uInt)size), isize = (uint32_t)size;
    for (int i = 0; i < 4; i++) {
        g[n++] = (uint8_t)(crc >> (8 * i));
    }
    for (int i = 0; i < 4; i++) {
        g[n++] = (uint8_t)(isize >> (8 * i));
    }
    if (mode & 2) {
        memcpy(g + n, "tail", 4); /* garbage after the member */
        n += 4;
    }
    if ((mode & 4) && n > 12) {
        n -= 1 + mode % 8; /* cut inside the member */
    }
    fuzz_write(name, g, n, path, cap);
}

static void check_loaded(const ps_dataset *d, uint32_t nclasses)
{
    CHECK(!d->sparse && d->dim >= 1);
    for (size_t i = 0; i < d->n * d->dim; i++) {
        CHECK(d->x[i] >= 0.0f && d->x[i] <= 1.0f);
    }
    for (size_t i = 0; i < d->n; i++) {
        CHECK(d->y[i] >= 0 && (nclasses == 0 || (uint32_t)d->y[i] < nclasses));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    uint8_t mode = data[0];
    size_t split = 1 + (size - 1) * data[1] / 256;
    char img[300], lbl[300];
    store("images", data + 2, split > 2 ? split - 2 : 0, mode, img, sizeof img);
    store("labels", data + split, size - split, mode >> 3, lbl, sizeof lbl);

    size_t n = 0, dim = 0, nl = 0;
    uint32_t nclasses = 0;
    int rc = ps_idx_probe(img, &n, &dim);
    CHECK(rc == 0 || rc == PS_EFORMAT || rc == PS_EIO);
    rc = ps_idx_scan_labels(lbl, &nl, &nclasses);
    CHECK(rc == 0 || rc == PS_EFORMAT || rc == PS_EIO || rc == PS_ENOMEM);
    CHECK(rc || nclasses <= 256);

    ps_dataset d = {0};
    rc = ps_idx_load_images(img, 0, SIZE_MAX, &d);
    CHECK(rc == 0 || rc == PS_EFORMAT || rc == PS_EIO || rc == PS_ENOMEM || rc == PS_ERANGE);
    if (rc == 0) {
        check_loaded(&d, 0);
    }
    uint32_t want = nclasses >= 2 ? nclasses : 2;
    size_t first = (size_t)(mode % 4);
    rc = ps_idx_load_classes(img, lbl, first, SIZE_MAX, want, &d);
    CHECK(rc == 0 || rc == PS_EFORMAT || rc == PS_EIO || rc == PS_ENOMEM || rc == PS_ERANGE);
    if (rc == 0) {
        check_loaded(&d, want);
    }
    ps_dataset_fini(&d);
    return 0;
}
