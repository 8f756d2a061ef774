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

int ps_payload_recv(ps_comm *c, int src, int tag, const ps_seg *segs, size_t n, float *buf,
                    ps_seg *out, const char *what)
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
        rc = ps_comm_recv_into(c, src, tag, buf + off, nv * sizeof(float), what);
        if (out) {
            out[i].values = buf + off;
        }
        off += nv;
    }
    return rc;
}
