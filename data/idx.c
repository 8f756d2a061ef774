#include "data/idx.h"

#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "data/zread.h"

#define IDX_TYPE_UBYTE 0x08
#define IDX_MAX_NDIMS 8
/* Staging buffer for reads: large enough to amortise calls, small enough to
 * not matter next to the data. */
#define IDX_CHUNK ((size_t)1 << 20)
/* A gzip header promising at most this many times the file's size is
 * allocated at once (no more than a plain file that size would get: image
 * sets inflate 2-5x); beyond, rows are allocated as they arrive, from
 * IDX_GROW0_BYTES of floats, doubling. */
#define IDX_GZ_TRUST_RATIO 8u
#define IDX_GROW0_BYTES ((size_t)16 << 20)

typedef struct {
    const char *path;
    ps_zread *z;
    unsigned ndims;
    size_t n;      /* first dimension: samples */
    size_t dim;    /* product of the others */
    size_t header; /* bytes before the data */
} idx_file;

/* Reads exactly len bytes; the data ending first is a truncated file. */
static int read_exact(idx_file *h, void *buf, size_t len, const char *what)
{
    int rc = 0;
    size_t done = 0;
    while (done < len) {
        size_t got = 0;
        if ((rc = ps_zread_read(h->z, (unsigned char *)buf + done, len - done, &got))) {
            goto out;
        }
        if (got == 0) {
            PS_LOG(ERROR,
                   "%s: truncated file: %zu bytes of %s missing (the header promises %zu "
                   "samples of %zu bytes)",
                   h->path, len - done, what, h->n, h->dim);
            rc = PS_EFORMAT;
            goto out;
        }
        done += got;
    }
out:
    return rc;
}

/* After the last sample: the data must end here. */
static int expect_end(idx_file *h)
{
    unsigned char extra;
    size_t got = 0;
    int rc = ps_zread_read(h->z, &extra, 1, &got);
    if (rc == 0 && got) {
        PS_LOG(ERROR,
               "%s: bytes after the %zu samples of %zu bytes the header promises (trailing data: "
               "a wrong header, or files run together)",
               h->path, h->n, h->dim);
        rc = PS_EFORMAT;
    }
    return rc;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* The data size the header promises against what the file can hold. */
static int check_size(const idx_file *h)
{
    uint64_t want = (uint64_t)h->header + (uint64_t)h->n * h->dim;
    uint64_t size = ps_zread_file_size(h->z);
    if (ps_zread_is_gzip(h->z)) {
        if (want / PS_IDX_GZ_MAX_RATIO > size) {
            PS_LOG(ERROR,
                   "%s: the header promises %zu samples of %zu bytes (%llu bytes), but a "
                   "gzip file of %llu bytes inflates to at most %u times that: truncated, or "
                   "a wrong header",
                   h->path, h->n, h->dim, (unsigned long long)want, (unsigned long long)size,
                   PS_IDX_GZ_MAX_RATIO);
            return PS_EFORMAT;
        }
        return 0;
    }
    if (size < want) {
        PS_LOG(ERROR,
               "%s: the header promises %zu samples of %zu bytes (%llu bytes with the "
               "header), but the file has %llu: truncated, or a wrong header",
               h->path, h->n, h->dim, (unsigned long long)want, (unsigned long long)size);
        return PS_EFORMAT;
    }
    if (size > want) {
        PS_LOG(ERROR,
               "%s: %llu bytes after the %zu samples of %zu bytes the header promises "
               "(trailing data: a wrong header, or files run together)",
               h->path, (unsigned long long)(size - want), h->n, h->dim);
        return PS_EFORMAT;
    }
    return 0;
}

/* Opens path, validates its header and its size; on success h->z is open. */
static int idx_open(idx_file *h, const char *path)
{
    int rc = 0;
    unsigned char magic[4];
    unsigned char dims[4 * IDX_MAX_NDIMS];

    memset(h, 0, sizeof *h);
    h->path = path;
    rc = ps_zread_open(&h->z, path);
    if (rc) {
        goto fail_open;
    }
    rc = read_exact(h, magic, sizeof magic, "the magic number");
    if (rc) {
        goto fail_header;
    }
    if (magic[0] != 0 || magic[1] != 0) {
        PS_LOG(ERROR, "%s: bad magic %02x %02x %02x %02x: not an IDX file (want 00 00 08 <ndims>)",
               path, magic[0], magic[1], magic[2], magic[3]);
        rc = PS_EFORMAT;
        goto fail_header;
    }
    if (magic[2] != IDX_TYPE_UBYTE) {
        PS_LOG(ERROR, "%s: IDX type code 0x%02x not supported (want 0x08, unsigned byte)", path,
               magic[2]);
        rc = PS_EFORMAT;
        goto fail_header;
    }
    h->ndims = magic[3];
    if (h->ndims == 0 || h->ndims > IDX_MAX_NDIMS) {
        PS_LOG(ERROR, "%s: IDX header has %u dimensions (want 1..%d)", path, h->ndims,
               IDX_MAX_NDIMS);
        rc = PS_EFORMAT;
        goto fail_header;
    }
    rc = read_exact(h, dims, 4 * (size_t)h->ndims, "the dimension sizes");
    if (rc) {
        goto fail_header;
    }
    h->n = be32(dims);
    h->dim = 1;
    for (unsigned i = 1; i < h->ndims; i++) {
        size_t d = be32(dims + 4 * i);
        /* Checked per factor, so the product can never overflow. */
        if (d == 0 || d > PS_IDX_MAX_DIM || h->dim > PS_IDX_MAX_DIM / d) {
            PS_LOG(ERROR, "%s: dimension %u is %zu: sample size would be 0 or above %zu", path, i,
                   d, PS_IDX_MAX_DIM);
            rc = PS_EFORMAT;
            goto fail_header;
        }
        h->dim *= d;
    }
    h->header = 4 + 4 * (size_t)h->ndims;
    /* n < 2^32 and dim <= 2^28: the product fits in 64 bits. */
    rc = check_size(h);
    if (rc) {
        goto fail_header;
    }
    goto out;

fail_header:
    ps_zread_close(&h->z);
fail_open:
out:
    return rc;
}

/* Resolves count == SIZE_MAX and checks [first, first + count) lies in n. */
static int check_range(const idx_file *h, size_t first, size_t *count)
{
    if (first > h->n || (*count != SIZE_MAX && *count > h->n - first)) {
        if (*count == SIZE_MAX) {
            PS_LOG(ERROR, "%s: first row %zu past the %zu samples in the file", h->path, first,
                   h->n);
        } else {
            PS_LOG(ERROR, "%s: rows [%zu, %zu + %zu) past the %zu samples in the file", h->path,
                   first, first, *count, h->n);
        }
        return PS_ERANGE;
    }
    if (*count == SIZE_MAX) {
        *count = h->n - first;
    }
    return 0;
}

/* Positions h at sample first: a seek for plain files, inflating forward
 * for gzip, the only direction needed. */
static int seek_sample(idx_file *h, size_t first)
{
    uint64_t want = (uint64_t)first * h->dim, got = 0;
    int rc = ps_zread_skip(h->z, want, &got);
    if (rc == 0 && got < want) {
        PS_LOG(ERROR, "%s: truncated file: the data ends before sample %zu (byte %llu)", h->path,
               first, (unsigned long long)(h->header + want));
        rc = PS_EFORMAT;
    }
    return rc;
}

/* Reads count * dim bytes into out->x as floats x / 255. Rows not yet
 * allocated are, doubling, as the bytes for them arrive. */
static int read_pixels(idx_file *h, size_t count, ps_dataset *out, unsigned char *buf)
{
    int rc = 0;
    float lut[256];
    for (int i = 0; i < 256; i++) {
        lut[i] = (float)i / 255.0f;
    }
    size_t total = count * h->dim;
    for (size_t done = 0; done < total;) {
        size_t len = total - done < IDX_CHUNK ? total - done : IDX_CHUNK;
        rc = read_exact(h, buf, len, "image data");
        if (rc) {
            goto out;
        }
        size_t rows = (done + len + h->dim - 1) / h->dim;
        if (rows > out->n_cap) {
            size_t cap = out->n_cap * 2 > rows ? out->n_cap * 2 : rows;
            if ((rc = ps_dataset_reserve(out, cap < count ? cap : count, 0))) {
                goto out;
            }
        }
        for (size_t i = 0; i < len; i++) {
            out->x[done + i] = lut[buf[i]];
        }
        done += len;
    }
out:
    return rc;
}

static int read_labels(idx_file *h, size_t first, size_t count, uint32_t nclasses, int32_t *y,
                       unsigned char *buf)
{
    int rc = 0;
    for (size_t done = 0; done < count;) {
        size_t len = count - done < IDX_CHUNK ? count - done : IDX_CHUNK;
        rc = read_exact(h, buf, len, "labels");
        if (rc) {
            goto out;
        }
        for (size_t i = 0; i < len; i++) {
            if (buf[i] >= nclasses) {
                PS_LOG(ERROR, "%s: label %u of sample %zu out of range [0, %u)", h->path, buf[i],
                       first + done + i, nclasses);
                rc = PS_EFORMAT;
                goto out;
            }
            y[done + i] = buf[i];
        }
        done += len;
    }
out:
    return rc;
}

/* idx_open for a labels file: one dimension. */
static int open_labels(idx_file *h, const char *path)
{
    int rc = idx_open(h, path);
    if (rc == 0 && h->ndims != 1) {
        PS_LOG(ERROR, "%s: a labels file needs 1 dimension, this has %u", path, h->ndims);
        ps_zread_close(&h->z);
        rc = PS_EFORMAT;
    }
    return rc;
}

int ps_idx_probe(const char *path, size_t *n, size_t *dim)
{
    idx_file h;
    int rc = idx_open(&h, path);
    if (rc == 0) {
        *n = h.n;
        *dim = h.dim;
        ps_zread_close(&h.z);
    }
    return rc;
}

int ps_idx_scan_labels(const char *path, size_t *n, uint32_t *nclasses)
{
    idx_file h;
    unsigned char *buf = NULL;
    unsigned max = 0;
    int rc = open_labels(&h, path);
    if (rc) {
        goto fail_open;
    }
    if (!(buf = ps_malloc(IDX_CHUNK))) {
        rc = PS_ENOMEM;
        goto fail_read;
    }
    for (size_t done = 0; done < h.n;) {
        size_t len = h.n - done < IDX_CHUNK ? h.n - done : IDX_CHUNK;
        if ((rc = read_exact(&h, buf, len, "labels"))) {
            goto fail_read;
        }
        for (size_t i = 0; i < len; i++) {
            max = buf[i] > max ? buf[i] : max;
        }
        done += len;
    }
    if ((rc = expect_end(&h))) {
        goto fail_read;
    }
    *n = h.n;
    *nclasses = h.n ? max + 1 : 0;
fail_read:
    ps_free(buf);
    ps_zread_close(&h.z);
fail_open:
    return rc;
}

/* The shared loader: labels == NULL loads images only. */
static int load(const char *images, const char *labels, size_t first, size_t count,
                uint32_t nclasses, ps_dataset *out)
{
    int rc = 0;
    ps_dataset tmp;
    idx_file hi, hl;
    unsigned char *buf = NULL;

    memset(&tmp, 0, sizeof tmp);
    rc = idx_open(&hi, images);
    if (rc) {
        goto fail_open_images;
    }
    if (hi.ndims < 2) {
        PS_LOG(ERROR, "%s: an images file needs >= 2 dimensions, this has %u (a labels file?)",
               images, hi.ndims);
        rc = PS_EFORMAT;
        goto fail_open_labels;
    }
    if (labels) {
        rc = open_labels(&hl, labels);
        if (rc) {
            goto fail_open_labels;
        }
        if (hl.n != hi.n) {
            PS_LOG(ERROR, "%s has %zu labels but %s has %zu images", labels, hl.n, images, hi.n);
            rc = PS_EFORMAT;
            goto fail_check;
        }
    }
    rc = check_range(&hi, first, &count);
    if (rc) {
        goto fail_check;
    }
    tmp.dim = hi.dim;
    tmp.nclasses = labels ? nclasses : 0;
    /* A plain file's size was checked against its header; a gzip file's
     * rows are allocated as they arrive unless the promise is modest. */
    size_t rows0 = count;
    uint64_t promised = (uint64_t)hi.header + (uint64_t)hi.n * hi.dim;
    if (ps_zread_is_gzip(hi.z) && promised / IDX_GZ_TRUST_RATIO > ps_zread_file_size(hi.z)) {
        size_t grow0 = IDX_GROW0_BYTES / sizeof(float) / hi.dim;
        rows0 = count < grow0 ? count : (grow0 ? grow0 : 1);
    }
    rc = ps_dataset_reserve(&tmp, rows0, 0);
    if (rc) {
        goto fail_alloc;
    }
    buf = ps_malloc(IDX_CHUNK);
    if (!buf) {
        rc = PS_ENOMEM;
        goto fail_alloc;
    }
    int to_end = first + count == hi.n;
    if ((rc = seek_sample(&hi, first)) || (rc = read_pixels(&hi, count, &tmp, buf)) ||
        (to_end && (rc = expect_end(&hi)))) {
        goto fail_read;
    }
    if (labels) {
        if ((rc = seek_sample(&hl, first)) ||
            (rc = read_labels(&hl, first, count, nclasses, tmp.y, buf)) ||
            (to_end && (rc = expect_end(&hl)))) {
            goto fail_read;
        }
    } else if (count) {
        memset(tmp.y, 0, count * sizeof *tmp.y);
    }
    tmp.n = count;
    ps_dataset_fini(out);
    *out = tmp;
    memset(&tmp, 0, sizeof tmp);

fail_read:
    ps_free(buf);
fail_alloc:
    ps_dataset_fini(&tmp);
fail_check:
    if (labels) {
        ps_zread_close(&hl.z);
    }
fail_open_labels:
    ps_zread_close(&hi.z);
fail_open_images:
    return rc;
}

int ps_idx_load_images(const char *path, size_t first, size_t count, ps_dataset *out)
{
    return load(path, NULL, first, count, 0, out);
}

int ps_idx_load(const char *images, const char *labels, size_t first, size_t count, ps_dataset *out)
{
    return load(images, labels, first, count, PS_IDX_NCLASSES, out);
}

int ps_idx_load_classes(const char *images, const char *labels, size_t first, size_t count,
                        uint32_t nclasses, ps_dataset *out)
{
    if (nclasses < 2 || nclasses > 256) {
        PS_LOG(ERROR, "%s: nclasses %u not in [2, 256] (labels are bytes)", labels, nclasses);
        return PS_EINVAL;
    }
    return load(images, labels, first, count, nclasses, out);
}
