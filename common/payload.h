/* The payloads a decoded push or reply announces (segments with values
 * NULL and nvalues > 0, common/msg.h): how many floats, how a payload is cut
 * into pieces, and receiving them from their sender in order into one
 * buffer. A reply's payloads travel in pieces of its `chunk` floats (the
 * server sends each as soon as it is written, server/answer.h); a push's
 * in one piece. The server takes a push's this way, the worker a reply's. */
#ifndef PS_PAYLOAD_H
#define PS_PAYLOAD_H

#include <stddef.h>

#include "common/comm.h"
#include "common/msg.h"

/* The floats segs[0..n) announce as payloads. */
size_t ps_payload_floats(const ps_seg *segs, size_t n);

/* Pieces of a payload of total floats sent chunk floats at a time (chunk 0:
 * one piece; total 0: none), and the floats of piece k (< that count):
 * chunk each, the last one what is left. */
size_t ps_payload_npieces(size_t total, size_t chunk);
size_t ps_payload_piece(size_t total, size_t chunk, size_t k);

/* Receives one payload of n floats from src on tag straight into dst, as
 * ps_payload_npieces(n, chunk) messages in order. A piece of the wrong size
 * is PS_EMSG naming src, a piece that does not come PS_ETIMEDOUT naming the
 * silent rank (ps_comm_recv_into: the peer deadline, never a hang). */
int ps_payload_recv_one(ps_comm *c, int src, int tag, float *dst, size_t n, size_t chunk,
                        const char *what);

/* Receives from src on tag, in segment order, each payload segs announce,
 * in pieces of chunk floats (ps_payload_recv_one), into buf (room for
 * ps_payload_floats) one after the other. With out (room for n), out[i] is
 * segs[i] with its values pointing into buf. */
int ps_payload_recv(ps_comm *c, int src, int tag, const ps_seg *segs, size_t n, size_t chunk,
                    float *buf, ps_seg *out, const char *what);

#endif
