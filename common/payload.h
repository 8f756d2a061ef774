/* The payloads a decoded push or reply announces (segments with values
 * NULL and nvalues > 0, common/msg.h): how many floats, and receiving them
 * from their sender back to back into one buffer. The server takes a
 * push's this way, the worker a reply it must hold for later. */
#ifndef PS_PAYLOAD_H
#define PS_PAYLOAD_H

#include <stddef.h>

#include "common/comm.h"
#include "common/msg.h"

/* The floats segs[0..n) announce as payloads. */
size_t ps_payload_floats(const ps_seg *segs, size_t n);

/* Receives from src on tag, in segment order, each payload segs announce,
 * into buf (room for ps_payload_floats) one after the other. With out
 * (room for n), out[i] is segs[i] with its values pointing into buf. A
 * payload of the wrong size is PS_EMSG naming src (ps_comm_recv_into). */
int ps_payload_recv(ps_comm *c, int src, int tag, const ps_seg *segs, size_t n, float *buf,
                    ps_seg *out, const char *what);

#endif
