#include "data/idx.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

#define IDX_TYPE_UBYTE 0x08
#define IDX_MAX_NDIMS 8
/* Staging buffer for gzread: large enough to amortise calls, small enough to
 * not matter next to the data. */
#define IDX_CHUNK ((size_t)1 << 20)

typedef struct {
    const char *path;
    gzFile f;
    unsigned ndims;
    size_t n;      /* first dimension: samples */
    size_t dim;    /* product of the others */
    size_t header; /* bytes before the data */
} idx_file;

/* Reads exactly len bytes; a short read is a truncated file. */
static int read_exact(idx_file *h, void *buf, size_t len, const char *what)
{
    int rc = 0;
    unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        size_t want = len - done;
        /* gzread takes an unsigned count. */
        if (want > ((size_t)1 << 30)) {
            want = (size_t)1 << 30;
        }
        int got = gzread(h->f, p + done, (unsigned)want);
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(h->f, &zerr);
            /* Z_BUF_ERROR is a compressed stream cut short. */
            PS_LOG(ERROR, "%s: reading %s: %s%s", h->path, what,
                   zerr == Z_ERRNO ? strerror(errno) : msg,
                   zerr == Z_BUF_ERROR ? " (truncated file)" : "");
            rc = zerr == Z_ERRNO || zerr == Z_MEM_ERROR ? PS_EIO : PS_EFORMAT;
            goto out;
        }
        if (got == 0) {
            PS_LOG(ERROR, "%s: truncated file: %zu bytes of %s missing", h->path, len - done,
                   what);
            rc = PS_EFORMAT;
            goto out;
        }
        done += (size_t)got;
    }
out:
    return rc;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Opens path and validates its header; on success h->f is open. */
static int idx_open(idx_file *h, const char *path)
{
    int rc = 0;
    unsigned char magic[4];
    unsigned char dims[4 * IDX_MAX_NDIMS];

    memset(h, 0, sizeof *h);
    h->path = path;
    errno = 0;
    h->f = gzopen(path, "rb");
    if (!h->f) {
        PS_LOG(ERROR, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        rc = PS_EIO;
        goto fail_open;
    }
    gzbuffer(h->f, 1u << 17);
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
    if (h->n > SIZE_MAX / h->dim) {
        PS_LOG(ERROR, "%s: %zu samples of %zu bytes overflow size_t", path, h->n, h->dim);
        rc = PS_EFORMAT;
        goto fail_header;
    }
    h->header = 4 + 4 * (size_t)h->ndims;
    goto out;

fail_header:
    gzclose(h->f);
    h->f = NULL;
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

/* Positions h at sample first. gz streams seek forward by decompressing,
 * which is the only direction we need. */
static int seek_sample(idx_file *h, size_t first)
{
    size_t off = h->header + first * h->dim;
    if (first == 0) {
        return 0;
    }
    if (gzseek(h->f, (z_off_t)off, SEEK_SET) != (z_off_t)off) {
        PS_LOG(ERROR, "%s: cannot skip to sample %zu (byte %zu): file truncated?", h->path, first,
               off);
        return PS_EFORMAT;
    }
    return 0;
}

/* Reads count * dim bytes into x as floats x / 255. */
static int read_pixels(idx_file *h, size_t count, float *x, unsigned char *buf)
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
        for (size_t i = 0; i < len; i++) {
            x[done + i] = lut[buf[i]];
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

int ps_idx_probe(const char *path, size_t *n, size_t *dim)
{
    idx_file h;
    int rc = idx_open(&h, path);
    if (rc == 0) {
        *n = h.n;
        *dim = h.dim;
        gzclose(h.f);
    }
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
        rc = idx_open(&hl, labels);
        if (rc) {
            goto fail_open_labels;
        }
        if (hl.ndims != 1) {
            PS_LOG(ERROR, "%s: a labels file needs 1 dimension, this has %u", labels, hl.ndims);
            rc = PS_EFORMAT;
            goto fail_check;
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
    rc = ps_dataset_reserve(&tmp, count, 0);
    if (rc) {
        goto fail_alloc;
    }
    memset(tmp.y, 0, count * sizeof *tmp.y);
    buf = ps_malloc(IDX_CHUNK);
    if (!buf) {
        rc = PS_ENOMEM;
        goto fail_alloc;
    }
    rc = seek_sample(&hi, first);
    if (rc) {
        goto fail_read;
    }
    rc = read_pixels(&hi, count, tmp.x, buf);
    if (rc) {
        goto fail_read;
    }
    if (labels) {
        rc = seek_sample(&hl, first);
        if (rc) {
            goto fail_read;
        }
        rc = read_labels(&hl, first, count, nclasses, tmp.y, buf);
        if (rc) {
            goto fail_read;
        }
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
        gzclose(hl.f);
    }
fail_open_labels:
    gzclose(hi.f);
fail_open_images:
    return rc;
}

int ps_idx_load_images(const char *path, size_t first, size_t count, ps_dataset *out)
{
    return load(path, NULL, first, count, 0, out);
}

int ps_idx_load(const char *images, const char *labels, size_t first, size_t count,
                ps_dataset *out)
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
