/* Payload reception for both roles (common/payload.h). */
#include "common/payload.h"

size_t ps_payload_floats(const ps_seg *segs, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += segs[i].values ? 0 : segs[i].nvalues;
    }
    return total;
}

size_t ps_payload_npieces(size_t total, size_t chunk)
{
    if (chunk == 0 || total == 0) {
        return total != 0;
    }
    return total / chunk + (total % chunk != 0);
}

size_t ps_payload_piece(size_t total, size_t chunk, size_t k)
{
    if (chunk == 0) {
        return total;
    }
    size_t at = k * chunk;
    return total - at < chunk ? total - at : chunk;
}

int ps_payload_recv_one(ps_comm *c, int src, int tag, float *dst, size_t n, size_t chunk,
                        const char *what)
{
    size_t np = ps_payload_npieces(n, chunk), at = 0;
    int rc = 0;
    for (size_t k = 0; k < np && rc == 0; k++) {
        size_t len = ps_payload_piece(n, chunk, k);
        rc = ps_comm_recv_into(c, src, tag, dst + at, len * sizeof(float), what);
        at += len;
    }
    return rc;
}

int ps_payload_recv(ps_comm *c, int src, int tag, const ps_seg *segs, size_t n, size_t chunk,
                    float *buf, ps_seg *out, const char *what)
{
    size_t off = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (out) {
            out[i] = segs[i];
        }
        size_t nv = segs[i].nvalues;
        if (segs[i].values || nv == 0) {
            continue;
        }
        rc = ps_payload_recv_one(c, src, tag, buf + off, nv, chunk, what);
        if (out) {
            out[i].values = buf + off;
        }
        off += nv;
    }
    return rc;
}
