#include "data/npy.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/afile.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

/* '<f4' promises little-endian floats and the data is written and read as
 * it lies in memory. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "data/npy.c moves floats as they are in memory and assumes little-endian"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_PREAMBLE 10 /* magic, 2 version bytes, 2-byte header length */
#define NPY_ALIGN 64
#define NPY_DICT_CAP (PS_NPY_MAX_DIMS * 24 + 96)
#define NPY_HEADER_CAP (NPY_DICT_CAP + NPY_PREAMBLE + NPY_ALIGN)

struct ps_npy_writer {
    ps_afile *f;
    char *path;
    uint64_t want; /* floats the shape promises */
    uint64_t have;
};

/* Builds the whole header (preamble, dict, padding, newline) in buf.
 * Returns its length, or 0 (logged) when the shape is invalid. */
static size_t build_header(const char *path, char *buf, size_t cap, const uint64_t *shape, int ndim,
                           uint64_t *count)
{
    if (ndim < 0 || ndim > PS_NPY_MAX_DIMS) {
        PS_LOG(ERROR, "%s: .npy with %d dimensions, expected 0 to %d", path, ndim, PS_NPY_MAX_DIMS);
        return 0;
    }
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] && n > UINT64_MAX / 4 / shape[i]) {
            PS_LOG(ERROR, "%s: .npy shape overflows 64-bit size at dimension %d", path, i);
            return 0;
        }
        n *= shape[i];
    }
    *count = n;

    char dict[NPY_DICT_CAP];
    size_t o =
        (size_t)snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim; i++) {
        o += (size_t)snprintf(dict + o, sizeof dict - o, i ? ", %" PRIu64 : "%" PRIu64, shape[i]);
    }
    /* A 1-tuple needs its trailing comma in Python. */
    o += (size_t)snprintf(dict + o, sizeof dict - o, "%s), }", ndim == 1 ? "," : "");

    size_t total = NPY_PREAMBLE + o + 1; /* + newline */
    total = (total + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    PS_DEBUG_ASSERT(total <= cap && total - NPY_PREAMBLE <= 0xffff);
    size_t hlen = total - NPY_PREAMBLE;
    memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
    buf[6] = 1; /* format version 1.0 */
    buf[7] = 0;
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memcpy(buf + NPY_PREAMBLE, dict, o);
    memset(buf + NPY_PREAMBLE + o, ' ', total - NPY_PREAMBLE - o - 1);
    buf[total - 1] = '\n';
    (void)cap;
    return total;
}

static void writer_free(ps_npy_writer *w)
{
    ps_free(w->path);
    ps_free(w);
}

int ps_npy_open(ps_npy_writer **out, const char *path, const uint64_t *shape, int ndim)
{
    int rc = 0;
    *out = NULL;
    char header[NPY_HEADER_CAP];
    uint64_t count = 0;
    size_t hlen = build_header(path, header, sizeof header, shape, ndim, &count);
    if (!hlen) {
        rc = PS_EINVAL;
        goto fail_alloc;
    }
    ps_npy_writer *w = ps_calloc(1, sizeof *w);
    if (!w) {
        rc = PS_ENOMEM;
        goto fail_alloc;
    }
    w->path = ps_strdup(path);
    if (!w->path) {
        rc = PS_ENOMEM;
        goto fail_path;
    }
    w->want = count;
    rc = ps_afile_open(&w->f, path);
    if (rc) {
        goto fail_path;
    }
    rc = ps_afile_write(w->f, header, hlen);
    if (rc) {
        goto fail_write;
    }
    *out = w;
    return 0;

fail_write:
    ps_afile_abort(&w->f);
fail_path:
    writer_free(w);
fail_alloc:
    return rc;
}

int ps_npy_append(ps_npy_writer *w, const float *data, size_t n)
{
    if (n > w->want - w->have) {
        PS_LOG(ERROR, "%s: appending %zu floats to %" PRIu64 " of %" PRIu64 " overruns the shape",
               w->path, n, w->have, w->want);
        return PS_EINVAL;
    }
    int rc = ps_afile_write(w->f, data, n * sizeof *data);
    if (!rc) {
        w->have += n;
    }
    return rc;
}

void ps_npy_abort(ps_npy_writer **pw)
{
    if (pw && *pw) {
        ps_afile_abort(&(*pw)->f);
        writer_free(*pw);
        *pw = NULL;
    }
}

int ps_npy_close(ps_npy_writer **pw)
{
    int rc = 0;
    ps_npy_writer *w = *pw;
    if (w->have != w->want) {
        PS_LOG(ERROR,
               "%s: closed after %" PRIu64 " floats, the shape needs %" PRIu64 "; not written",
               w->path, w->have, w->want);
        ps_afile_abort(&w->f);
        rc = PS_EINVAL;
    } else {
        rc = ps_afile_commit(&w->f);
    }
    writer_free(w);
    *pw = NULL;
    return rc;
}

int ps_npy_write(const char *path, const float *data, const uint64_t *shape, int ndim)
{
    ps_npy_writer *w = NULL;
    int rc = ps_npy_open(&w, path, shape, ndim);
    if (rc) {
        goto done;
    }
    /* open checked that prod(shape) * 4 fits in 64 bits. */
    if (w->want > SIZE_MAX / sizeof *data) {
        PS_LOG(ERROR, "%s: %" PRIu64 " floats do not fit in memory", path, w->want);
        ps_npy_abort(&w);
        rc = PS_EINVAL;
        goto done;
    }
    rc = ps_npy_append(w, data, (size_t)w->want);
    if (rc) {
        ps_npy_abort(&w);
        goto done;
    }
    rc = ps_npy_close(&w);
done:
    return rc;
}

size_t ps_npy_header_bytes(const uint64_t *shape, int ndim)
{
    char header[NPY_HEADER_CAP];
    uint64_t count = 0;
    return build_header("(.npy header size)", header, sizeof header, shape, ndim, &count);
}
