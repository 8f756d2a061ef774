/* Comm internals: the ops table behind ps_comm (IOR's ior_aiori_t) and the
 * part of a communicator every backend shares. Included only by
 * common/comm_live.c (the public ps_comm_* functions: argument checks, byte
 * counters, and the waiting itself, with deadlines and heartbeats),
 * common/comm.c (the `mpi` backend) and common/comm_loop.c (the in-process
 * `loop` backend). Not a public header.
 *
 * A backend never blocks for long: it receives without waiting, starts and
 * tests collectives, and idles for a bounded time. Every wait is a loop in
 * comm_live.c, which is where deadlines and heartbeats live, the same for
 * both backends. */
#ifndef PS_COMM_INTERNAL_H
#define PS_COMM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/comm.h"
#include "common/stats.h"

/* Heartbeats travel on their own tag, outside the PS_TAG_* range and below
 * the raw ping-pong's; comm_live.c swallows them, callers never see one. */
#define PS_TAG_BEAT 99

typedef enum {
    PS_COLL_AGREE,
    PS_COLL_BARRIER,
    PS_COLL_BCAST,
    PS_COLL_SUM,
    PS_COLL_MAX,
    PS_COLL_GATHER,
    PS_COLL_SPLIT, /* loop only: the round of a split (mpi has MPI_Comm_split) */
} ps_coll_kind;

/* One collective in progress, on the caller's stack from start to done (or
 * cancel). The backend keeps its own state in impl/req. */
typedef struct {
    ps_coll_kind kind;
    int root;            /* bcast */
    size_t n;            /* bytes (bcast) or elements (sum, max) */
    int ival;            /* agree: this rank's rc; gather: this rank's value */
    void *buf;           /* bcast, sum, max: in and out; gather: out */
    int out;             /* agree: the agreed rc */
    ps_comm **split_out; /* split (loop) */
    /* backend state */
    int rc;            /* loop: written by the rank completing the round */
    uint64_t round;    /* loop: the round this part joined */
    size_t done_bytes; /* mpi bcast: bytes of the chunks before this one */
    /* mpi: the MPI_Request, which this header cannot name (only comm*.c
     * include <mpi.h>); comm.c checks that it fits. */
    union {
        void *p;
        uint64_t u[4];
    } req;
} ps_coll;

/* What every rank knows about its peers' liveness (common/comm_live.c).
 * Owned by a world communicator and shared, by pointer, with every
 * communicator split from it: liveness is a property of processes. */
typedef struct ps_live ps_live;

/* One backend. The dispatchers in comm_live.c have already checked what
 * every backend would check the same way (dst and root in range, n >= 0)
 * and keep the byte counters, so an op does only its transport's part.
 * Every op except abort returns 0 or a PS_E* code and logs what failed. */
typedef struct {
    const char *name;
    /* Frees c (and, for the last handle of an MPI world, finalises MPI). */
    void (*destroy)(ps_comm *c);
    /* Ends the whole job with exit code `code`; must not return. */
    void (*abort)(ps_comm *c, int code);
    int (*send)(ps_comm *c, int dst, int tag, ps_bytes *msg);
    /* Receives the next message matching src/tag if one is there, else
     * PS_EEOF at once. */
    int (*poll)(ps_comm *c, int src, int tag, ps_comm_msg *out);
    /* Takes one heartbeat waiting for c, if there is one (*src: its
     * sender), else PS_EEOF; never disturbs what the last poll returned. */
    int (*drain)(ps_comm *c, int *src);
    /* Lets time pass while nothing is ready: returns after at most
     * max_secs, or sooner when something may have arrived. *nap is the
     * caller's wait state (0 at the start of each wait). */
    void (*idle)(ps_comm *c, double max_secs, long *nap);
    int (*progress)(ps_comm *c);
    /* Borrowed sends (ps_comm_send_ref): NULL when the backend copies,
     * through send, instead. flush_test sets *done once every one has
     * completed. poll_into receives the next message matching src/tag, if
     * one is there (else PS_EEOF), into buf when it is exactly cap bytes,
     * else drops it; out->len says its length either way. NULL: comm_live
     * polls and copies. */
    int (*send_ref)(ps_comm *c, int dst, int tag, const void *data, size_t len);
    int (*flush_test)(ps_comm *c, int *done);
    int (*poll_into)(ps_comm *c, int src, int tag, void *buf, size_t cap, ps_comm_msg *out);
    /* Nonblocking collectives: start posts this rank's part; test sets
     * *done once the collective completed on this rank (k->out and buf
     * hold the result); cancel withdraws a part that will never complete
     * (the caller gives up on the job). */
    int (*coll_start)(ps_comm *c, ps_coll *k);
    int (*coll_test)(ps_comm *c, ps_coll *k, int *done);
    void (*coll_cancel)(ps_comm *c, ps_coll *k);
    /* Blocking, but called only once every rank has passed a barrier. */
    int (*split)(ps_comm *c, int color, ps_comm **out);
    int (*nodes)(ps_comm *c, int *node_of_rank, int *nnodes);
    /* The rank in the world communicator of c's rank r. */
    int (*world_rank)(const ps_comm *c, int r);
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
    uint64_t bytes_sent, bytes_received; /* point-to-point, kept by comm_live.c */
    ps_live *live;                       /* the world's; NULL: no liveness yet */
    ps_stats *stats;                     /* the world's counters (common/stats.h) */
    int owns_live;                       /* 1 on a world communicator */
    ps_bytes ref_copy;                   /* send_ref on a backend that copies (comm_live.c) */
};

/* Gives a new world communicator c (n ranks) its liveness state (no
 * deadline, no peers) and its counters. Returns 0 or PS_ENOMEM. comm_live.c frees it in
 * ps_comm_destroy. */
int ps_live_attach(ps_comm *c);

#endif
