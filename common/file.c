#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/afile.h"
#include "common/comm.h"
#include "common/fileheader.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

#define PREFIX_BYTES 8
#define HCRC_BYTES 4
/* Payloads are read in pieces this big, with a heartbeat between pieces
 * (writes: common/afile.c). */
#define IO_PIECE ((size_t)8 << 20)

struct ps_file_writer {
    ps_afile *f;
    char *path;
    uint64_t left; /* declared payload bytes not yet written */
    uint32_t want_crc;
    uLong crc;
};

struct ps_file_reader {
    int fd;
    int checked; /* CRC verified (or reported) */
    char *path;
    uint64_t left;
    uint32_t want_crc;
    uLong crc;
};

void ps_file_header_fini(ps_file_header *h)
{
    ps_free(h->config);
    ps_free(h->tables);
    memset(h, 0, sizeof *h);
}

/* zlib takes uInt lengths; feed it in 1 GiB pieces. */
static uLong crc_update(uLong crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = crc32(crc, p, n);
        p += n;
        len -= n;
    }
    return crc;
}

/* Returns the bytes read (short only at end of file), or -1 with errno. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, p + got, len - got);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

uint32_t ps_file_crc32(uint32_t crc, const void *buf, size_t len)
{
    return (uint32_t)crc_update(crc, buf, len);
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static uint32_t get_le32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)p[i] << (8 * i);
    }
    return v;
}

static void writer_free(ps_file_writer *w)
{
    ps_free(w->path);
    ps_free(w);
}

int ps_file_create(ps_file_writer **out, const char *path, const ps_file_header *h)
{
    int rc = 0;
    ps_bytes hb = {0};
    ps_file_writer *w = NULL;
    *out = NULL;

    ps_file_header hh = *h;
    hh.format_version = PS_FILE_FORMAT_VERSION;
    rc = ps_fileheader_encode(&hh, &hb);
    if (rc) {
        goto fail_encode;
    }
    if (hb.len > PS_FILE_MAX_HEADER) {
        PS_LOG(ERROR, "%s: file header is %zu bytes, more than the %u allowed", path, hb.len,
               (unsigned)PS_FILE_MAX_HEADER);
        rc = PS_EINVAL;
        goto fail_encode;
    }
    unsigned char prefix[PREFIX_BYTES], hcrc[HCRC_BYTES];
    memcpy(prefix, PS_FILE_MAGIC, 4);
    put_le32(prefix + 4, (uint32_t)hb.len);
    put_le32(hcrc, (uint32_t)crc_update(crc_update(0, prefix, sizeof prefix), hb.data, hb.len));
    if (!(w = ps_calloc(1, sizeof *w)) || !(w->path = ps_strdup(path))) {
        rc = PS_ENOMEM;
        goto fail_alloc;
    }
    w->left = h->payload_bytes;
    w->want_crc = h->crc32;
    w->crc = crc32(0L, Z_NULL, 0);
    rc = ps_afile_open(&w->f, path);
    if (rc) {
        goto fail_alloc;
    }
    rc = ps_afile_write(w->f, prefix, sizeof prefix);
    if (!rc) {
        rc = ps_afile_write(w->f, hb.data, hb.len);
    }
    if (!rc) {
        rc = ps_afile_write(w->f, hcrc, sizeof hcrc);
    }
    if (rc) {
        goto fail_write;
    }
    *out = w;
    ps_free(hb.data);
    return 0;

fail_write:
    ps_afile_abort(&w->f);
fail_alloc:
    if (w) {
        writer_free(w);
    }
fail_encode:
    ps_free(hb.data);
    return rc;
}

int ps_file_write_payload(ps_file_writer *w, const void *buf, size_t len)
{
    if (len > w->left) {
        PS_LOG(ERROR, "%s: writing %zu payload bytes, only %llu of the declared size remain",
               w->path, len, (unsigned long long)w->left);
        return PS_EINVAL;
    }
    int rc = ps_afile_write(w->f, buf, len);
    if (!rc) {
        w->crc = crc_update(w->crc, buf, len);
        w->left -= len;
    }
    return rc;
}

void ps_file_abort(ps_file_writer **pw)
{
    if (pw && *pw) {
        ps_afile_abort(&(*pw)->f);
        writer_free(*pw);
        *pw = NULL;
    }
}

int ps_file_commit(ps_file_writer **pw)
{
    int rc = 0;
    ps_file_writer *w = *pw;
    if (w->left) {
        PS_LOG(ERROR, "%s: committed with %llu of the declared payload bytes unwritten", w->path,
               (unsigned long long)w->left);
        rc = PS_EINVAL;
    } else if ((uint32_t)w->crc != w->want_crc) {
        PS_LOG(ERROR,
               "%s: payload CRC %08x differs from the %08x declared in the header (its source "
               "changed while it was written); not written",
               w->path, (unsigned)w->crc, w->want_crc);
        rc = PS_EIO;
    }
    if (rc) {
        ps_file_abort(pw);
        return rc;
    }
    rc = ps_afile_commit(&w->f);
    writer_free(w);
    *pw = NULL;
    return rc;
}

int ps_file_write_atomic(const char *path, const ps_file_header *h, const void *const *parts,
                         const size_t *part_len, size_t nparts)
{
    ps_file_writer *w = NULL;
    ps_file_header hh = *h;
    hh.payload_bytes = 0;
    hh.crc32 = 0;
    for (size_t i = 0; i < nparts; i++) {
        hh.payload_bytes += part_len[i];
        hh.crc32 = ps_file_crc32(hh.crc32, parts[i], part_len[i]);
    }
    int rc = ps_file_create(&w, path, &hh);
    for (size_t i = 0; !rc && i < nparts; i++) {
        rc = ps_file_write_payload(w, parts[i], part_len[i]);
    }
    if (!rc) {
        rc = ps_file_commit(&w);
    }
    ps_file_abort(&w);
    return rc;
}

static void reader_free(ps_file_reader *r)
{
    if (r->fd >= 0) {
        close(r->fd);
    }
    ps_free(r->path);
    ps_free(r);
}

void ps_file_close(ps_file_reader **pr)
{
    if (pr && *pr) {
        reader_free(*pr);
        *pr = NULL;
    }
}

int ps_file_open(ps_file_reader **out, const char *path, ps_file_header *h)
{
    int rc = 0;
    void *hbuf = NULL;
    *out = NULL;
    memset(h, 0, sizeof *h);

    ps_file_reader *r = ps_calloc(1, sizeof *r);
    if (!r) {
        rc = PS_ENOMEM;
        goto fail_alloc;
    }
    r->fd = -1;
    r->path = ps_strdup(path);
    if (!r->path) {
        rc = PS_ENOMEM;
        goto fail_open;
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        PS_LOG(ERROR, "%s: cannot open: %s", path, strerror(errno));
        rc = PS_EIO;
        goto fail_open;
    }
    struct stat sb;
    if (fstat(r->fd, &sb) != 0) {
        PS_LOG(ERROR, "%s: cannot stat: %s", path, strerror(errno));
        rc = PS_EIO;
        goto fail_open;
    }
    if (!S_ISREG(sb.st_mode)) {
        PS_LOG(ERROR, "%s: not a regular file", path);
        rc = PS_EIO;
        goto fail_open;
    }
    uint64_t size = (uint64_t)sb.st_size;

    unsigned char prefix[PREFIX_BYTES];
    ssize_t got = read_full(r->fd, prefix, sizeof prefix);
    if (got < 0) {
        PS_LOG(ERROR, "%s: read failed: %s", path, strerror(errno));
        rc = PS_EIO;
        goto fail_open;
    }
    if (got < 4 || memcmp(prefix, PS_FILE_MAGIC, 4) != 0) {
        PS_LOG(ERROR, "%s: bad file: magic check failed (not an adamps file, expected \"%s\")",
               path, PS_FILE_MAGIC);
        rc = PS_ECKPT;
        goto fail_open;
    }
    if (got < PREFIX_BYTES) {
        PS_LOG(ERROR, "%s: bad file: truncated inside the %d-byte prefix", path, PREFIX_BYTES);
        rc = PS_ECKPT;
        goto fail_open;
    }
    uint32_t hlen = get_le32(prefix + 4);
    if (hlen > PS_FILE_MAX_HEADER || hlen > size - PREFIX_BYTES) {
        PS_LOG(ERROR,
               "%s: bad file: header length check failed (%u bytes, file holds %llu after the "
               "prefix, limit %u)",
               path, hlen, (unsigned long long)(size - PREFIX_BYTES), (unsigned)PS_FILE_MAX_HEADER);
        rc = PS_ECKPT;
        goto fail_open;
    }
    hbuf = ps_malloc(hlen + HCRC_BYTES);
    if (!hbuf) {
        rc = PS_ENOMEM;
        goto fail_open;
    }
    /* The header's CRC follows it, unless the file is cut short there. */
    size_t want = hlen + (size - PREFIX_BYTES - hlen >= HCRC_BYTES ? HCRC_BYTES : 0);
    got = read_full(r->fd, hbuf, want);
    if (got != (ssize_t)want) {
        PS_LOG(ERROR, "%s: reading the %u-byte header failed: %s", path, hlen,
               got < 0 ? strerror(errno) : "file shrank while reading");
        rc = PS_EIO;
        goto fail_open;
    }
    int crc_ok =
        want > hlen && get_le32((unsigned char *)hbuf + hlen) ==
                           (uint32_t)crc_update(crc_update(0, prefix, sizeof prefix), hbuf, hlen);
    /* A damaged header is never decoded for use; decoding one only tells
     * an older format (which had no header CRC) from a corrupt file. */
    rc = ps_fileheader_decode(crc_ok ? path : NULL, hbuf, hlen, h);
    if (rc == PS_ENOMEM) {
        goto fail_open;
    }
    if (rc == 0 && h->format_version != PS_FILE_FORMAT_VERSION) {
        PS_LOG(ERROR,
               "%s: bad file: format version check failed (file has version %u, this build "
               "reads version %u%s)",
               path, h->format_version, PS_FILE_FORMAT_VERSION,
               h->format_version < PS_FILE_FORMAT_VERSION
                   ? ": written by an older adamps, whose files had no header CRC; start a "
                     "new run, or use the build that wrote it"
                   : "");
        rc = PS_ECKPT;
        goto fail_header;
    }
    if (!crc_ok) {
        PS_LOG(ERROR, "%s: bad file: header CRC check failed (%s)", path,
               want > hlen ? "the header or its CRC was changed" : "truncated after the header");
        rc = PS_ECKPT;
        goto fail_header;
    }
    if (rc) {
        goto fail_open;
    }
    uint64_t have = size - PREFIX_BYTES - hlen - HCRC_BYTES;
    if (h->payload_bytes != have) {
        PS_LOG(ERROR,
               "%s: bad file: payload size check failed (header says %llu bytes, file holds "
               "%llu: %s)",
               path, (unsigned long long)h->payload_bytes, (unsigned long long)have,
               have < h->payload_bytes ? "truncated" : "trailing bytes");
        rc = PS_ECKPT;
        goto fail_header;
    }
    r->left = h->payload_bytes;
    r->want_crc = h->crc32;
    r->crc = crc32(0L, Z_NULL, 0);
    *out = r;
    ps_free(hbuf);
    return 0;

fail_header:
    ps_file_header_fini(h);
fail_open:
    ps_free(hbuf);
    reader_free(r);
fail_alloc:
    return rc;
}

int ps_file_read_payload(ps_file_reader *r, void *buf, size_t len)
{
    if (len > r->left) {
        PS_LOG(ERROR, "%s: asked for %zu payload bytes, only %llu remain", r->path, len,
               (unsigned long long)r->left);
        return PS_EINVAL;
    }
    for (size_t off = 0; off < len;) {
        size_t n = len - off < IO_PIECE ? len - off : IO_PIECE;
        ssize_t got = read_full(r->fd, (char *)buf + off, n);
        if (got != (ssize_t)n) {
            PS_LOG(ERROR, "%s: payload read failed: %s", r->path,
                   got < 0 ? strerror(errno) : "file shrank while reading");
            return PS_EIO;
        }
        r->crc = crc_update(r->crc, (char *)buf + off, n);
        off += n;
        ps_comm_alive();
    }
    r->left -= len;
    if (r->left == 0 && !r->checked) {
        r->checked = 1;
        if ((uint32_t)r->crc != r->want_crc) {
            PS_LOG(ERROR, "%s: bad file: CRC check failed (header says %08x, payload has %08x)",
                   r->path, r->want_crc, (unsigned)r->crc);
            return PS_ECKPT;
        }
    }
    return 0;
}

int ps_file_read(const char *path, ps_file_header *h, void **payload, size_t *len)
{
    int rc = 0;
    ps_file_reader *r = NULL;
    *payload = NULL;
    *len = 0;

    rc = ps_file_open(&r, path, h);
    if (rc) {
        goto fail_open;
    }
    if (h->payload_bytes > SIZE_MAX) {
        PS_LOG(ERROR, "%s: payload of %llu bytes does not fit in memory", path,
               (unsigned long long)h->payload_bytes);
        rc = PS_ENOMEM;
        goto fail_read;
    }
    void *p = ps_malloc((size_t)h->payload_bytes);
    if (!p) {
        rc = PS_ENOMEM;
        goto fail_read;
    }
    rc = ps_file_read_payload(r, p, (size_t)h->payload_bytes);
    if (rc) {
        ps_free(p);
        goto fail_read;
    }
    *payload = p;
    *len = (size_t)h->payload_bytes;
    ps_file_close(&r);
    return 0;

fail_read:
    ps_file_close(&r);
    ps_file_header_fini(h);
fail_open:
    return rc;
}
