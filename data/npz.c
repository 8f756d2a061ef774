#include "data/npz.h"

#include <string.h>

#include "common/afile.h"
#include "common/err.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"

/* PKWARE APPNOTE 6.3: record signatures and fixed sizes. */
#define SIG_LOCAL 0x04034b50u
#define SIG_DESCRIPTOR 0x08074b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define LOCAL_BYTES 30u
#define DESCRIPTOR_BYTES 16u
#define CENTRAL_BYTES 46u
#define END_BYTES 22u
#define VERSION_NEEDED 20u /* 2.0: stored members with data descriptors */
#define FLAG_DESCRIPTOR 0x0008u
#define DOS_DATE ((0u << 9) | (1u << 5) | 1u) /* 1980-01-01: fixed, reproducible */
#define ZIP32_MAX 0xffffffffu

typedef struct {
    char name[PS_NPZ_MAX_NAME + 1];
    uint32_t crc;
    uint64_t size, offset;
} member;

struct ps_npz {
    ps_afile *f;
    char *path;
    member *members;
    size_t n, cap;
    int open_member; /* members[n - 1] is being written */
    uint64_t offset; /* bytes written so far */
    int err;         /* sticky */
};

static uint8_t *put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    p = put16(p, v & 0xffffu);
    return put16(p, v >> 16);
}

int ps_npz_fits(const char *const *names, const uint64_t *sizes, size_t n)
{
    uint64_t total = END_BYTES;
    if (n > PS_NPZ_MAX_MEMBERS) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t len = strlen(names[i]);
        if (len > PS_NPZ_MAX_NAME || sizes[i] > ZIP32_MAX) {
            return 0;
        }
        /* Local header, data, descriptor; its central entry. */
        total += LOCAL_BYTES + 2 * len + sizes[i] + DESCRIPTOR_BYTES + CENTRAL_BYTES;
        if (total > ZIP32_MAX) {
            return 0;
        }
    }
    return 1;
}

/* Writes len bytes of the archive's own records (not member data). */
static int emit(ps_npz *z, const void *buf, size_t len)
{
    if (!z->err && (z->err = ps_afile_write(z->f, buf, len)) == 0) {
        z->offset += len;
    }
    return z->err;
}

int ps_npz_open(ps_npz **out, const char *path)
{
    int rc = PS_ENOMEM;
    ps_npz *z = ps_calloc(1, sizeof *z);
    *out = NULL;
    if (!z || !(z->path = ps_strdup(path))) {
        goto fail;
    }
    if ((rc = ps_afile_open(&z->f, path))) {
        goto fail;
    }
    *out = z;
    return 0;
fail:
    ps_npz_abort(&z);
    return rc;
}

/* The data descriptor of the member being written. */
static int end_member(ps_npz *z)
{
    if (!z->open_member) {
        return z->err;
    }
    const member *m = &z->members[z->n - 1];
    uint8_t d[DESCRIPTOR_BYTES], *p = d;
    p = put32(p, SIG_DESCRIPTOR);
    p = put32(p, m->crc);
    p = put32(p, (uint32_t)m->size);
    put32(p, (uint32_t)m->size);
    z->open_member = 0;
    return emit(z, d, sizeof d);
}

int ps_npz_begin(ps_npz *z, const char *name)
{
    size_t len = strlen(name);
    int rc = end_member(z);
    if (rc) {
        return rc;
    }
    if (len == 0 || len > PS_NPZ_MAX_NAME || z->n >= PS_NPZ_MAX_MEMBERS) {
        PS_LOG(ERROR,
               "%s: zip member %zu name '%.40s' (%zu bytes; at most %u members of "
               "1..%u bytes)",
               z->path, z->n, name, len, PS_NPZ_MAX_MEMBERS, PS_NPZ_MAX_NAME);
        return z->err = PS_EINVAL;
    }
    if (z->offset + LOCAL_BYTES + len > ZIP32_MAX) {
        PS_LOG(ERROR, "%s: member %s would start past zip32's 4 GiB", z->path, name);
        return z->err = PS_ERANGE;
    }
    if ((rc = PS_GROW(z->members, z->cap, z->n + 1))) {
        return z->err = rc;
    }
    member *m = &z->members[z->n++];
    memset(m, 0, sizeof *m);
    memcpy(m->name, name, len);
    m->offset = z->offset;
    z->open_member = 1;
    uint8_t h[LOCAL_BYTES], *p = h;
    p = put32(p, SIG_LOCAL);
    p = put16(p, VERSION_NEEDED);
    p = put16(p, FLAG_DESCRIPTOR);
    p = put16(p, 0); /* stored */
    p = put16(p, 0); /* time 00:00 */
    p = put16(p, DOS_DATE);
    p = put32(p, 0); /* crc and sizes: in the descriptor */
    p = put32(p, 0);
    p = put32(p, 0);
    p = put16(p, (uint32_t)len);
    put16(p, 0); /* no extra field */
    if ((rc = emit(z, h, sizeof h)) == 0) {
        rc = emit(z, name, len);
    }
    return rc;
}

int ps_npz_write(ps_npz *z, const void *buf, size_t len)
{
    if (z->err) {
        return z->err;
    }
    if (!z->open_member) {
        PS_LOG(ERROR, "%s: zip data written before any member was begun", z->path);
        return z->err = PS_EINVAL;
    }
    member *m = &z->members[z->n - 1];
    if (m->size + len > ZIP32_MAX || z->offset + len > ZIP32_MAX) {
        PS_LOG(ERROR, "%s: member %s passes zip32's 4 GiB", z->path, m->name);
        return z->err = PS_ERANGE;
    }
    m->crc = ps_file_crc32(m->crc, buf, len);
    m->size += len;
    return emit(z, buf, len);
}

/* The central directory and its end record. */
static int finish(ps_npz *z)
{
    int rc = end_member(z);
    uint64_t start = z->offset;
    for (size_t i = 0; rc == 0 && i < z->n; i++) {
        const member *m = &z->members[i];
        size_t len = strlen(m->name);
        uint8_t c[CENTRAL_BYTES], *p = c;
        p = put32(p, SIG_CENTRAL);
        p = put16(p, VERSION_NEEDED); /* made by: MS-DOS, 2.0 */
        p = put16(p, VERSION_NEEDED);
        p = put16(p, FLAG_DESCRIPTOR);
        p = put16(p, 0);
        p = put16(p, 0);
        p = put16(p, DOS_DATE);
        p = put32(p, m->crc);
        p = put32(p, (uint32_t)m->size);
        p = put32(p, (uint32_t)m->size);
        p = put16(p, (uint32_t)len);
        p = put16(p, 0); /* extra */
        p = put16(p, 0); /* comment */
        p = put16(p, 0); /* disk */
        p = put16(p, 0); /* internal attributes */
        p = put32(p, 0); /* external attributes */
        put32(p, (uint32_t)m->offset);
        if ((rc = emit(z, c, sizeof c)) == 0) {
            rc = emit(z, m->name, len);
        }
    }
    uint64_t size = z->offset - start;
    if (rc == 0 && z->offset + END_BYTES > ZIP32_MAX) {
        PS_LOG(ERROR, "%s: the central directory ends past zip32's 4 GiB", z->path);
        rc = z->err = PS_ERANGE;
    }
    if (rc == 0) {
        uint8_t e[END_BYTES], *p = e;
        p = put32(p, SIG_END);
        p = put16(p, 0);
        p = put16(p, 0);
        p = put16(p, (uint32_t)z->n);
        p = put16(p, (uint32_t)z->n);
        p = put32(p, (uint32_t)size);
        p = put32(p, (uint32_t)start);
        put16(p, 0); /* comment */
        rc = emit(z, e, sizeof e);
    }
    return rc;
}

int ps_npz_close(ps_npz **pz)
{
    ps_npz *z = *pz;
    int rc = finish(z);
    if (rc == 0) {
        rc = ps_afile_commit(&z->f);
    }
    ps_npz_abort(pz);
    return rc;
}

void ps_npz_abort(ps_npz **pz)
{
    ps_npz *z = pz ? *pz : NULL;
    if (!z) {
        return;
    }
    ps_afile_abort(&z->f);
    ps_free(z->members);
    ps_free(z->path);
    ps_free(z);
    *pz = NULL;
}
