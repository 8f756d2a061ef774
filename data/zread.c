#include "data/zread.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

/* Compressed bytes read per fread. */
#define ZREAD_IN ((size_t)64 << 10)
/* inflate's window for gzip framing only (15 bits + 16). */
#define ZREAD_WBITS (15 + 16)

struct ps_zread {
    const char *path;
    FILE *f;
    uint64_t size; /* bytes on disk */
    int gz;
    int zinit; /* zs holds inflate state */
    z_stream zs;
    unsigned char *in; /* file bytes [in_off, in_off + ZREAD_IN) at most */
    uint64_t in_off;   /* file offset of in[0] */
    int file_eof;
    int member_done; /* gzip: a member ended; what follows is not yet known */
    int ended;       /* the data has ended cleanly */
    int err;         /* sticky */
};

/* inflate allocates through ps_malloc, so the OOM sweeps reach it. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    if (size && items > SIZE_MAX / size) {
        return Z_NULL;
    }
    return ps_malloc((size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    ps_free(p);
}

/* Moves the unread input to the front of in and reads more behind it. */
static int refill(ps_zread *z)
{
    size_t used = (size_t)(z->zs.next_in - z->in);
    z->in_off += used;
    memmove(z->in, z->zs.next_in, z->zs.avail_in);
    z->zs.next_in = z->in;
    size_t got = fread(z->in + z->zs.avail_in, 1, ZREAD_IN - z->zs.avail_in, z->f);
    z->zs.avail_in += (uInt)got;
    if (got == 0) {
        if (ferror(z->f)) {
            PS_LOG(ERROR, "%s: read error: %s", z->path, strerror(errno));
            return PS_EIO;
        }
        z->file_eof = 1;
    }
    return 0;
}

/* Offset in the file of the next unread compressed byte. */
static uint64_t in_pos(const ps_zread *z)
{
    return z->in_off + (uint64_t)(z->zs.next_in - z->in);
}

int ps_zread_open(ps_zread **out, const char *path)
{
    int rc = 0;
    struct stat st;
    ps_zread *z = ps_calloc(1, sizeof *z);
    *out = NULL;
    if (!z) {
        rc = PS_ENOMEM;
        goto fail_alloc;
    }
    z->path = path;
    if (!(z->in = ps_malloc(ZREAD_IN))) {
        rc = PS_ENOMEM;
        goto fail_buf;
    }
    if (!(z->f = fopen(path, "rb"))) {
        PS_LOG(ERROR, "%s: cannot open: %s", path, strerror(errno));
        rc = PS_EIO;
        goto fail_open;
    }
    if (fstat(fileno(z->f), &st) != 0) {
        PS_LOG(ERROR, "%s: cannot stat: %s", path, strerror(errno));
        rc = PS_EIO;
        goto fail_read;
    }
    z->size = (uint64_t)st.st_size;
    z->zs.next_in = z->in;
    if ((rc = refill(z))) {
        goto fail_read;
    }
    z->gz = z->zs.avail_in >= 2 && z->in[0] == 0x1f && z->in[1] == 0x8b;
    if (z->gz) {
        z->zs.zalloc = z_alloc;
        z->zs.zfree = z_free;
        int zr = inflateInit2(&z->zs, ZREAD_WBITS);
        if (zr != Z_OK) {
            rc = zr == Z_MEM_ERROR ? PS_ENOMEM : PS_EIO;
            goto fail_read;
        }
        z->zinit = 1;
    }
    *out = z;
    goto out;

fail_read:
    fclose(z->f);
fail_open:
    ps_free(z->in);
fail_buf:
    ps_free(z);
fail_alloc:
out:
    return rc;
}

/* Plain file: the buffered bytes first, then straight from the file. */
static int read_plain(ps_zread *z, unsigned char *buf, size_t len, size_t *got)
{
    size_t n = len < z->zs.avail_in ? len : z->zs.avail_in;
    memcpy(buf, z->zs.next_in, n);
    z->zs.next_in += n;
    z->zs.avail_in -= (uInt)n;
    if (n < len && !z->file_eof) {
        size_t more = fread(buf + n, 1, len - n, z->f);
        if (more < len - n && ferror(z->f)) {
            PS_LOG(ERROR, "%s: read error: %s", z->path, strerror(errno));
            return PS_EIO;
        }
        n += more;
    }
    *got = n;
    return 0;
}

/* Between gzip members: another member, the clean end, or garbage. */
static int next_member(ps_zread *z)
{
    int rc = 0;
    while (z->zs.avail_in < 2 && !z->file_eof) {
        if ((rc = refill(z))) {
            return rc;
        }
    }
    if (z->zs.avail_in == 0) {
        z->ended = 1;
        return 0;
    }
    if (z->zs.avail_in >= 2 && z->zs.next_in[0] == 0x1f && z->zs.next_in[1] == 0x8b) {
        z->member_done = 0;
        return inflateReset(&z->zs) == Z_OK ? 0 : PS_EFORMAT;
    }
    uint64_t at = in_pos(z);
    PS_LOG(ERROR,
           "%s: %" PRIu64 " bytes after the end of the gzip data at byte %" PRIu64
           " are not another gzip member (trailing garbage)",
           z->path, z->size > at ? z->size - at : 1, at);
    return PS_EFORMAT;
}

static int read_gz(ps_zread *z, unsigned char *buf, size_t len, size_t *got)
{
    int rc = 0;
    size_t done = 0;
    while (done < len && !z->ended) {
        if (z->member_done) {
            if ((rc = next_member(z))) {
                break;
            }
            continue;
        }
        if (z->zs.avail_in == 0 && !z->file_eof && (rc = refill(z))) {
            break;
        }
        size_t want = len - done < UINT_MAX ? len - done : UINT_MAX;
        z->zs.next_out = buf + done;
        z->zs.avail_out = (uInt)want;
        int zr = inflate(&z->zs, Z_NO_FLUSH);
        done += want - z->zs.avail_out;
        if (zr == Z_STREAM_END) {
            z->member_done = 1;
        } else if (zr == Z_MEM_ERROR) {
            rc = PS_ENOMEM;
        } else if (zr == Z_BUF_ERROR && z->zs.avail_in == 0 && z->file_eof) {
            PS_LOG(ERROR,
                   "%s: the gzip data ends inside a member after %" PRIu64
                   " bytes of the file (truncated file)",
                   z->path, z->size);
            rc = PS_EFORMAT;
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            PS_LOG(ERROR, "%s: corrupt gzip data near byte %" PRIu64 ": %s", z->path, in_pos(z),
                   z->zs.msg ? z->zs.msg : "inflate failed");
            rc = PS_EFORMAT;
        }
        if (rc) {
            break;
        }
    }
    *got = done;
    return rc;
}

int ps_zread_read(ps_zread *z, void *buf, size_t len, size_t *got)
{
    *got = 0;
    if (z->err) {
        return z->err;
    }
    if (len == 0 || z->ended) {
        return 0;
    }
    int rc = z->gz ? read_gz(z, buf, len, got) : read_plain(z, buf, len, got);
    if (rc) {
        *got = 0;
        z->err = rc;
    } else if (*got == 0) {
        z->ended = 1;
    }
    return rc;
}

int ps_zread_skip(ps_zread *z, uint64_t n, uint64_t *skipped)
{
    int rc = 0;
    unsigned char tmp[16384];
    *skipped = 0;
    if (!z->gz && !z->err) {
        /* Drop the buffered bytes, then seek, never past the end. */
        off_t at = ftello(z->f);
        uint64_t pos = at > 0 ? (uint64_t)at : 0;
        size_t buffered = n < z->zs.avail_in ? (size_t)n : z->zs.avail_in;
        z->zs.next_in += buffered;
        z->zs.avail_in -= (uInt)buffered;
        uint64_t rest = n - buffered;
        uint64_t room = z->size > pos ? z->size - pos : 0;
        rest = rest < room ? rest : room;
        if (rest && fseeko(z->f, (off_t)rest, SEEK_CUR) != 0) {
            PS_LOG(ERROR, "%s: cannot seek: %s", z->path, strerror(errno));
            z->err = PS_EIO;
            return PS_EIO;
        }
        *skipped = buffered + rest;
        return 0;
    }
    while (*skipped < n) {
        size_t want = n - *skipped < sizeof tmp ? (size_t)(n - *skipped) : sizeof tmp;
        size_t got = 0;
        if ((rc = ps_zread_read(z, tmp, want, &got)) || got == 0) {
            break;
        }
        *skipped += got;
    }
    return rc;
}

int ps_zread_is_gzip(const ps_zread *z)
{
    return z->gz;
}

uint64_t ps_zread_file_size(const ps_zread *z)
{
    return z->size;
}

void ps_zread_close(ps_zread **pz)
{
    ps_zread *z = pz ? *pz : NULL;
    if (!z) {
        return;
    }
    if (z->zinit) {
        inflateEnd(&z->zs);
    }
    fclose(z->f);
    ps_free(z->in);
    ps_free(z);
    *pz = NULL;
}
