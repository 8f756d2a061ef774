/* Comm internals: the ops table behind ps_comm (IOR's ior_aiori_t) and the
 * part of a communicator every backend shares. Included only by
 * common/comm.c (the public ps_comm_* functions, which dispatch through the
 * table, and the `mpi` backend) and common/comm_loop.c (the in-process
 * `loop` backend). Not a public header. */
#ifndef PS_COMM_INTERNAL_H
#define PS_COMM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/comm.h"

/* One backend. The dispatchers in comm.c have already checked what every
 * backend would check the same way (dst and root in range, n >= 0) and keep
 * the byte counters, so an op does only its transport's part. Every op
 * except abort returns 0 or a PS_E* code and logs what failed. */
typedef struct {
    const char *name;
    /* Frees c (and, for the last handle of an MPI world, finalises MPI). */
    void (*destroy)(ps_comm *c);
    /* Ends the whole job with exit code `code`; must not return. */
    void (*abort)(ps_comm *c, int code);
    int (*send)(ps_comm *c, int dst, int tag, ps_bytes *msg);
    int (*recv)(ps_comm *c, int src, int tag, int wait, ps_comm_msg *out);
    int (*progress)(ps_comm *c);
    int (*agree)(ps_comm *c, int rc);
    int (*barrier)(ps_comm *c);
    int (*bcast)(ps_comm *c, int root, void *buf, size_t len);
    int (*allreduce_sum)(ps_comm *c, double *vals, int n);
    int (*allreduce_max_u64)(ps_comm *c, uint64_t *vals, int n);
    int (*allgather_int)(ps_comm *c, int val, int *out);
    int (*split)(ps_comm *c, int color, ps_comm **out);
    int (*nodes)(ps_comm *c, int *node_of_rank, int *nnodes);
    /* NULL when the backend has no raw transport to measure (loop). */
    int (*raw_pingpong)(ps_comm *c, int peer, int lead, size_t req_bytes, size_t reply_bytes,
                        int iters, double *seconds);
} ps_comm_ops;

/* The first member of every backend's communicator struct, so a ps_comm *
 * and the backend's own pointer convert both ways. */
struct ps_comm {
    const ps_comm_ops *ops;
    int rank;
    int size;
    uint64_t bytes_sent, bytes_received; /* point-to-point, kept by comm.c */
};

#endif
