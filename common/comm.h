/* Comm: every message and collective adamps uses, behind one ops table
 * (common/comm_internal.h) with two backends. `mpi` (common/comm.c, the only
 * file that includes <mpi.h>) wraps a dup of MPI_COMM_WORLD with
 * MPI_ERRORS_RETURN, so a failed call becomes PS_EMPI (logged with
 * MPI_Error_string, our rank and the peer) instead of a silent abort. `loop`
 * (common/comm_loop.c) connects n threads of one process, so server and
 * worker logic run in cmocka tests without mpirun.
 *
 * Point-to-point is message based: ps_comm_send hands a whole encoded
 * message to a nonblocking send and gives the caller an empty pooled buffer
 * back in exchange, so nothing is copied or allocated per message once the
 * pool has warmed up. ps_comm_recv matches by source and tag; messages from
 * one sender that match are received in the order they were sent (MPI's
 * non-overtaking rule), on both backends.
 *
 * Functions marked "collective" must be called by every rank of the
 * communicator in the same order; they return the same rc on every rank.
 * Not thread-safe: one thread at a time uses a ps_comm (on the loop
 * backend, each rank's handle may sit in a thread of its own). */
#ifndef PS_COMM_H
#define PS_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "common/mem.h"

typedef struct ps_comm ps_comm;

enum { PS_TAG_PUSH = 1, PS_TAG_PULL = 2, PS_TAG_REPLY = 3, PS_TAG_CTRL = 4 };
#define PS_ANY (-1)
/* The tag of the raw payloads that follow a header sent with tag t (a
 * push's or reply's values, common/msg.h). Counted under t by the job's
 * counters (common/stats.h). A receiver takes each payload with
 * ps_comm_recv_into right after its header, so a wait on any tag never
 * meets one. */
#define PS_TAG_DATA_OFFSET 10
#define PS_TAG_DATA(t) ((t) + PS_TAG_DATA_OFFSET)

typedef struct {
    int src;
    int tag;
    const uint8_t *data; /* valid until the next ps_comm_recv on this comm */
    size_t len;
} ps_comm_msg;

/* Initialises MPI (once per process) and returns the world communicator.
 * Collective over MPI_COMM_WORLD. Destroy with ps_comm_destroy. */
int ps_comm_init(ps_comm **out, int *argc, char ***argv);
/* Waits for sends still in flight, frees the communicator and sets *c =
 * NULL; the world comm also finalises MPI. Collective on mpi; on loop each
 * handle goes on its own (the shared state goes with the last one).
 * Accepts NULL and *c == NULL. */
void ps_comm_destroy(ps_comm **c);

int ps_comm_rank(const ps_comm *c);
int ps_comm_size(const ps_comm *c);
/* Seconds since an arbitrary point: CLOCK_MONOTONIC, the clock MPI_Wtime
 * reads on Linux, the same for every rank of a node and both backends.
 * Thread-safe. */
double ps_comm_time(void);
/* Ends every rank of the job with exit code `code`. Does not return. Only
 * cli/ calls it: role functions return an rc instead. On loop every rank is
 * this process, so it exits the process. */
void ps_comm_abort(ps_comm *c, int code) __attribute__((noreturn));

/* Sends msg->data[0..len) to rank dst with tag (>= 0). Takes the buffer: on
 * return *msg holds another (empty, pooled) buffer for the caller to reuse.
 * The send completes in the background; an error is reported now, never
 * later, and then the caller still owns its buffer. Returns 0, PS_EINVAL
 * (dst outside the communicator, negative tag, over 2 GiB on mpi),
 * PS_ENOMEM, PS_EMPI, or PS_EPEER (loop, after a rank failed). */
int ps_comm_send(ps_comm *c, int dst, int tag, ps_bytes *msg);
/* Sends len bytes at data to rank dst with tag, without a copy: data is
 * borrowed, and must stay unchanged, until ps_comm_flush returns (the loop
 * backend copies at once). Returns as ps_comm_send. */
int ps_comm_send_ref(ps_comm *c, int dst, int tag, const void *data, size_t len);
/* Waits until every ps_comm_send_ref of c has completed, so their buffers
 * are the caller's again; waits as ps_comm_wait does (PS_ETIMEDOUT naming
 * a silent peer, `what` saying what for). Cheap when none is in flight. */
int ps_comm_flush(ps_comm *c, const char *what);
/* Waits, as ps_comm_wait does, for the next message from rank src (not
 * PS_ANY) with tag and receives it straight into buf, which it must fill
 * exactly: a message of any other length is received and dropped, and is
 * PS_EMSG, logged naming src, the tag and both lengths. Other returns as
 * ps_comm_wait. */
int ps_comm_recv_into(ps_comm *c, int src, int tag, void *buf, size_t len, const char *what);
/* Receives the next message matching src/tag (PS_ANY for either). With
 * wait = 0 returns PS_EEOF at once when none is ready; with wait = 1 waits
 * as ps_comm_wait does. Returns 0, PS_EEOF, PS_EINVAL (src outside the
 * communicator), PS_ENOMEM, PS_EMPI, PS_ETIMEDOUT, or PS_EPEER (loop: a
 * rank of this world failed, see ps_comm_loop_fail). */
int ps_comm_recv(ps_comm *c, int src, int tag, int wait, ps_comm_msg *out);
/* Waits for the next message matching src/tag, sending heartbeats while it
 * waits. Gives up with PS_ETIMEDOUT (logged: the silent rank, how long,
 * and `what` this rank waited for, e.g. "pull replies") once an awaited
 * peer (src, or for PS_ANY every peer in c) has sent nothing, not even a
 * heartbeat, for the peer timeout. Other returns as ps_comm_recv. */
int ps_comm_wait(ps_comm *c, int src, int tag, const char *what, ps_comm_msg *out);
/* Advances sends in flight and recycles their buffers. */
int ps_comm_progress(ps_comm *c);
/* Bytes sent and received so far by this rank (point-to-point). */
void ps_comm_bytes(const ps_comm *c, uint64_t *sent, uint64_t *received);

/* Collectives wait as ps_comm_wait does (nonblocking MPI collectives and a
 * test loop, so a silent peer gives PS_ETIMEDOUT, never a hang; split and
 * nodes start with such a barrier). They return 0 (agree: the agreed rc),
 * PS_EMPI (mpi), PS_ENOMEM (split), PS_ETIMEDOUT, PS_EPEER (loop: a rank
 * of the world failed) or PS_EINVAL (loop: the ranks called different
 * collectives, or with different sizes). */

/* Collective: every rank passes its rc; all get the smallest (an error, if
 * any rank had one), so all ranks take the same branch afterwards. */
int ps_comm_agree(ps_comm *c, int rc);
/* Collective. */
int ps_comm_barrier(ps_comm *c);
/* Collective: root's len bytes at buf go to every rank's buf. */
int ps_comm_bcast(ps_comm *c, int root, void *buf, size_t len);
/* Collective: element-wise sum (double) or max (uint64) in place, n >= 0
 * elements on every rank. loop sums in rank order. */
int ps_comm_allreduce_sum(ps_comm *c, double *vals, int n);
int ps_comm_allreduce_max_u64(ps_comm *c, uint64_t *vals, int n);
/* Collective: each rank contributes one int; out (size entries) gets all. */
int ps_comm_allgather_int(ps_comm *c, int val, int *out);
/* Collective: ranks with the same color form a new communicator, ordered by
 * rank. color < 0 yields *out == NULL. Destroy the result with
 * ps_comm_destroy (it does not finalise MPI). */
int ps_comm_split(ps_comm *c, int color, ps_comm **out);
/* Collective: node_of_rank[r] (size entries) is the index of the shared-
 * memory node rank r runs on (MPI_Comm_split_type SHARED); *nnodes their
 * count. loop: every rank is on node 0. */
int ps_comm_nodes(ps_comm *c, int *node_of_rank, int *nnodes);

/* ---- liveness (docs/design.md, "No silent hang") --------------------------
 *
 * A rank waiting (ps_comm_wait, a blocking ps_comm_recv, any collective)
 * gives up with PS_ETIMEDOUT when a peer it awaits has been silent for the
 * timeout. Silence is judged only for peers, the world ranks named with
 * ps_comm_set_peers: they are the ranks that send this one heartbeats,
 * an empty message whenever a quarter of the timeout (at most 10 s) went
 * by without anything else sent to that peer. Heartbeats go out from every
 * wait, and from long local work through ps_comm_alive(); they never reach
 * callers. ps_comm_init starts with every rank a peer and
 * PS_COMM_TIMEOUT_DEFAULT; a loop world starts with no deadline. All
 * communicators split from a world share its liveness state. */

#define PS_COMM_TIMEOUT_DEFAULT 60.0

/* Sets the peer timeout of c's world, in seconds; 0 (or less) turns
 * deadlines and heartbeats off. Restarts every peer's clock. */
void ps_comm_set_timeout(ps_comm *c, double seconds);
/* The peer timeout in force (0: none). */
double ps_comm_timeout(const ps_comm *c);
/* Makes ranks[0..n) (world ranks; this rank itself is ignored) the peers
 * of c's world, replacing the earlier set, and c the communicator that
 * ps_comm_alive() serves on this thread. Returns 0 or PS_EINVAL (a rank
 * outside the world, logged). */
int ps_comm_set_peers(ps_comm *c, const int *ranks, int n);
/* Names for the world's ranks in timeout messages ("worker 1"), indexed by
 * world rank; borrowed until the world is destroyed. NULL: ranks only. */
void ps_comm_set_labels(ps_comm *c, const char *const *labels);
/* Sends the heartbeats now due and takes those waiting. Call it from any
 * loop that can run for longer than a few seconds without waiting.
 * Returns 0 or the send's error. Cheap when nothing is due. */
int ps_comm_tick(ps_comm *c);
/* ps_comm_tick on the communicator last given to ps_comm_set_peers on this
 * thread (ps_comm_init's world on the main thread); nothing if none. For
 * long work in modules that hold no communicator (file writes, data
 * loading). Errors are left for the next wait to find. */
void ps_comm_alive(void);
/* The rank of c whose silence ended the last wait with PS_ETIMEDOUT, or -1. */
int ps_comm_silent_rank(const ps_comm *c);

/* Benchmark baseline only (bench/bench_pushpull.c), never used by training:
 * times `iters` raw blocking MPI_Send/MPI_Recv round trips with rank peer
 * on a tag of its own, the bound a push/pull of the same bytes is measured
 * against. Both ranks call it with the same sizes and iters; the rank with
 * lead = 1 sends req_bytes and then receives reply_bytes, the other
 * receives req_bytes and then sends reply_bytes. Buffers are allocated and
 * touched before the clock starts and freed after it stops; the byte
 * counters of ps_comm_bytes are left alone. No other message may be in
 * flight between the two ranks. OUT *seconds: this rank's wall time for the
 * iters round trips. Returns 0, PS_EINVAL (iters < 1, a size over the
 * 2 GiB count limit, the loop backend), PS_ENOMEM or PS_EMPI. */
int ps_comm_raw_pingpong(ps_comm *c, int peer, int lead, size_t req_bytes, size_t reply_bytes,
                         int iters, double *seconds);

/* In-process backend: returns n >= 1 connected communicators, comms[i] of
 * rank i, for n threads of this process (one handle per thread; different
 * handles may be used concurrently). Each rank has a mailbox, and a send
 * moves the caller's buffer into it (no copy); the pool of idle buffers is
 * shared by the world. The caller destroys every handle with
 * ps_comm_destroy. Returns 0, PS_EINVAL (n < 1) or PS_ENOMEM (then every
 * comms[i] is NULL). Thread-safe. */
int ps_comm_loop_create(ps_comm **comms, int n);
/* Loop only: marks rank c failed, as an abort would. Every recv and
 * collective blocked on any communicator of c's world (including those
 * split from it) returns PS_EPEER, naming the failed rank, and so does
 * every later send, recv or collective there; only ps_comm_destroy still
 * works. A test's rank thread calls it when its role function returns an
 * error (what cli/ does with ps_comm_abort). Idempotent; thread-safe.
 * Ignored on mpi. */
void ps_comm_loop_fail(ps_comm *c);

#endif
