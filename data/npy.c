#include "data/npy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/afile.h"
#include "common/err.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"

/* '<f4' promises little-endian floats and the data is written and read as
 * it lies in memory. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "common/npy.c moves floats as they are in memory and assumes little-endian"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_PREAMBLE 10 /* magic, 2 version bytes, 2-byte header length */
#define NPY_ALIGN 64
/* A header is a short dict; anything longer is a corrupt length field. */
#define NPY_MAX_HEADER (1u << 20)

struct ps_npy_writer {
    ps_afile *f;
    char *path;
    uint64_t want; /* floats the shape promises */
    uint64_t have;
};

/* Builds the whole header (preamble, dict, padding, newline) in buf.
 * Returns its length, or 0 (logged) when the shape is invalid. */
static size_t build_header(const char *path, char *buf, size_t cap, const uint64_t *shape,
                           int ndim, uint64_t *count)
{
    if (ndim < 0 || ndim > PS_NPY_MAX_DIMS) {
        PS_LOG(ERROR, "%s: .npy with %d dimensions, expected 0 to %d", path, ndim,
               PS_NPY_MAX_DIMS);
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

    char dict[PS_NPY_MAX_DIMS * 24 + 96];
    size_t o = (size_t)snprintf(dict, sizeof dict,
                                "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim; i++) {
        o += (size_t)snprintf(dict + o, sizeof dict - o, i ? ", %" PRIu64 : "%" PRIu64,
                              shape[i]);
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
    char header[PS_NPY_MAX_DIMS * 24 + 96 + NPY_PREAMBLE + NPY_ALIGN];
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
        PS_LOG(ERROR, "%s: closed after %" PRIu64 " floats, the shape needs %" PRIu64
                      "; not written",
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

/* ---- reader ---- */

/* Cursor over the header dict, a Python literal such as
 * {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } */
typedef struct {
    const char *path;
    const char *p, *end;
} hdr_cursor;

static void hdr_skip_ws(hdr_cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
    }
}

static int hdr_bad(const hdr_cursor *c, const char *why)
{
    PS_LOG(ERROR, "%s: garbled .npy header: %s", c->path, why);
    return PS_EFORMAT;
}

/* A quoted string without escapes (numpy writes none in these fields). */
static int hdr_string(hdr_cursor *c, char *buf, size_t cap)
{
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) {
        return hdr_bad(c, "expected a quoted string");
    }
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (n + 1 >= cap) {
            return hdr_bad(c, "string too long");
        }
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end) {
        return hdr_bad(c, "unterminated string");
    }
    c->p++;
    buf[n] = '\0';
    return 0;
}

static int hdr_shape(hdr_cursor *c, uint64_t *shape, int *ndim)
{
    if (c->p >= c->end || *c->p != '(') {
        return hdr_bad(c, "'shape' is not a tuple");
    }
    c->p++;
    int nd = 0;
    for (;;) {
        hdr_skip_ws(c);
        if (c->p < c->end && *c->p == ')') {
            c->p++;
            break;
        }
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') {
            return hdr_bad(c, "'shape' holds something other than non-negative integers");
        }
        if (nd == PS_NPY_MAX_DIMS) {
            return hdr_bad(c, "'shape' has more than 32 dimensions");
        }
        uint64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            unsigned d = (unsigned)(*c->p++ - '0');
            if (v > (UINT64_MAX - d) / 10) {
                return hdr_bad(c, "'shape' dimension overflows 64 bits");
            }
            v = v * 10 + d;
        }
        if (c->p < c->end && *c->p == 'L') {
            c->p++; /* Python 2 long, as old numpy wrote them */
        }
        shape[nd++] = v;
        hdr_skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
        } else if (c->p >= c->end || *c->p != ')') {
            return hdr_bad(c, "'shape' tuple is not closed");
        }
    }
    *ndim = nd;
    return 0;
}

/* Parses the dict: exactly the keys descr, fortran_order and shape, as
 * numpy.load demands. */
static int parse_header(const char *path, const char *text, size_t len, uint64_t *shape, int *ndim)
{
    hdr_cursor c = {path, text, text + len};
    int seen_descr = 0, seen_order = 0, seen_shape = 0;
    hdr_skip_ws(&c);
    if (c.p >= c.end || *c.p != '{') {
        return hdr_bad(&c, "does not start with '{'");
    }
    c.p++;
    for (;;) {
        hdr_skip_ws(&c);
        if (c.p < c.end && *c.p == '}') {
            c.p++;
            break;
        }
        char key[32], val[32];
        int rc = hdr_string(&c, key, sizeof key);
        if (rc) {
            return rc;
        }
        hdr_skip_ws(&c);
        if (c.p >= c.end || *c.p != ':') {
            return hdr_bad(&c, "expected ':' after a key");
        }
        c.p++;
        hdr_skip_ws(&c);
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            seen_descr = 1;
            if ((rc = hdr_string(&c, val, sizeof val))) {
                return rc;
            }
            if (strcmp(val, "<f4") != 0) {
                PS_LOG(ERROR,
                       "%s: dtype '%s' is not '<f4' (little-endian float32), the only "
                       "one read",
                       path, val);
                return PS_EFORMAT;
            }
        } else if (strcmp(key, "fortran_order") == 0 && !seen_order) {
            seen_order = 1;
            if ((size_t)(c.end - c.p) >= 5 && memcmp(c.p, "False", 5) == 0) {
                c.p += 5;
            } else if ((size_t)(c.end - c.p) >= 4 && memcmp(c.p, "True", 4) == 0) {
                PS_LOG(ERROR,
                       "%s: fortran_order True (column-major) is not supported; save a "
                       "C-order array",
                       path);
                return PS_EFORMAT;
            } else {
                return hdr_bad(&c, "'fortran_order' is neither True nor False");
            }
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            seen_shape = 1;
            if ((rc = hdr_shape(&c, shape, ndim))) {
                return rc;
            }
        } else {
            PS_LOG(ERROR, "%s: garbled .npy header: unexpected or repeated key '%s'", path, key);
            return PS_EFORMAT;
        }
        hdr_skip_ws(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
        } else if (c.p >= c.end || *c.p != '}') {
            return hdr_bad(&c, "expected ',' or '}' after a value");
        }
    }
    hdr_skip_ws(&c);
    if (c.p != c.end) {
        return hdr_bad(&c, "text after the closing '}'");
    }
    if (!seen_descr || !seen_order || !seen_shape) {
        return hdr_bad(&c, !seen_descr   ? "no 'descr'"
                           : !seen_order ? "no 'fortran_order'"
                                         : "no 'shape'");
    }
    return 0;
}

/* Reads exactly len bytes; a short read is a truncated file (PS_EFORMAT) or
 * an I/O error (PS_EIO), logged with what was being read. */
static int read_exact(FILE *f, const char *path, void *buf, size_t len, const char *what)
{
    if (fread(buf, 1, len, f) == len) {
        return 0;
    }
    if (ferror(f)) {
        PS_LOG(ERROR, "%s: cannot read the %s: %s", path, what, strerror(errno));
        return PS_EIO;
    }
    PS_LOG(ERROR, "%s: truncated .npy file: it ends inside the %s", path, what);
    return PS_EFORMAT;
}

int ps_npy_read(const char *path, float **data, uint64_t *shape, int *ndim)
{
    int rc = 0;
    char *header = NULL;
    float *buf = NULL;
    *data = NULL;
    *ndim = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        PS_LOG(ERROR, "cannot open %s: %s", path, strerror(errno));
        rc = PS_EIO;
        goto done;
    }
    unsigned char pre[NPY_PREAMBLE + 2];
    if ((rc = read_exact(f, path, pre, NPY_PREAMBLE, "preamble"))) {
        goto done;
    }
    if (memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
        PS_LOG(ERROR, "%s: not a .npy file (bad magic)", path);
        rc = PS_EFORMAT;
        goto done;
    }
    /* 1.0: 2-byte header length; 2.0: 4-byte (3.0 only changes the header's
     * encoding to UTF-8, which these numeric headers never need). */
    size_t off = NPY_PREAMBLE;
    uint32_t hlen = pre[8] | (uint32_t)pre[9] << 8;
    if (pre[6] == 2 && pre[7] == 0) {
        if ((rc = read_exact(f, path, pre + NPY_PREAMBLE, 2, "preamble"))) {
            goto done;
        }
        hlen |= (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
        off += 2;
    } else if (pre[6] != 1 || pre[7] != 0) {
        PS_LOG(ERROR, "%s: .npy format version %u.%u; only 1.0 and 2.0 are read", path, pre[6],
               pre[7]);
        rc = PS_EFORMAT;
        goto done;
    }
    if (hlen > NPY_MAX_HEADER) {
        PS_LOG(ERROR, "%s: .npy header length %" PRIu32 " is not plausible", path, hlen);
        rc = PS_EFORMAT;
        goto done;
    }
    if (!(header = ps_malloc(hlen + 1))) {
        rc = PS_ENOMEM;
        goto done;
    }
    if ((rc = read_exact(f, path, header, hlen, "header")) ||
        (rc = parse_header(path, header, hlen, shape, ndim))) {
        goto done;
    }
    uint64_t count = 1;
    for (int i = 0; i < *ndim; i++) {
        if (shape[i] && count > UINT64_MAX / sizeof(float) / shape[i]) {
            PS_LOG(ERROR, "%s: .npy shape overflows 64-bit size at dimension %d", path, i);
            rc = PS_EFORMAT;
            goto done;
        }
        count *= shape[i];
    }
    uint64_t bytes = count * sizeof(float);
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        PS_LOG(ERROR, "cannot stat %s: %s", path, strerror(errno));
        rc = PS_EIO;
        goto done;
    }
    uint64_t have = (uint64_t)st.st_size - off - hlen;
    if (have != bytes) {
        PS_LOG(ERROR, "%s: %s .npy file: %" PRIu64 " data bytes, its shape needs %" PRIu64, path,
               have < bytes ? "truncated" : "oversized", have, bytes);
        rc = PS_EFORMAT;
        goto done;
    }
    if (bytes > SIZE_MAX) {
        PS_LOG(ERROR, "%s: %" PRIu64 " bytes of data do not fit in memory", path, bytes);
        rc = PS_ENOMEM;
        goto done;
    }
    if (!(buf = ps_malloc(bytes ? (size_t)bytes : sizeof(float)))) {
        PS_LOG(ERROR, "%s: out of memory for %" PRIu64 " bytes of data", path, bytes);
        rc = PS_ENOMEM;
        goto done;
    }
    if ((rc = read_exact(f, path, buf, (size_t)bytes, "data"))) {
        goto done;
    }
    *data = buf;
    buf = NULL;
done:
    if (rc) {
        *ndim = 0;
    }
    ps_free(buf);
    ps_free(header);
    if (f) {
        fclose(f);
    }
    return rc;
}
