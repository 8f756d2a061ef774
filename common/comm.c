/* The public ps_comm_* functions, which check their arguments, keep the
 * byte counters and dispatch through the communicator's ops table
 * (common/comm_internal.h), followed by the `mpi` backend. The only file
 * that includes <mpi.h>; the in-process backend is common/comm_loop.c. */
#include "common/comm.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/comm_internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

/* ---- dispatch ---------------------------------------------------------- */

static int bad_rank(const ps_comm *c, int r, const char *what)
{
    PS_LOG(ERROR, "%s: rank %d is outside this communicator of %d ranks", what, r, c->size);
    return PS_EINVAL;
}

void ps_comm_destroy(ps_comm **cp)
{
    if (!cp || !*cp) {
        return;
    }
    ps_comm *c = *cp;
    *cp = NULL;
    c->ops->destroy(c);
}

int ps_comm_rank(const ps_comm *c)
{
    return c->rank;
}

int ps_comm_size(const ps_comm *c)
{
    return c->size;
}

double ps_comm_time(void)
{
    /* The clock MPI_Wtime reads on Linux, without needing MPI to be up, so
     * both backends (and a process that never starts MPI) share it. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ps_comm_abort(ps_comm *c, int code)
{
    fflush(stdout);
    fflush(stderr);
    if (c) {
        c->ops->abort(c, code);
    }
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited) {
        MPI_Abort(MPI_COMM_WORLD, code);
    }
    exit(code); /* neither returns; this keeps the compiler sure */
}

int ps_comm_send(ps_comm *c, int dst, int tag, ps_bytes *msg)
{
    if (tag < 0) {
        PS_LOG(ERROR, "send to rank %d: tag %d is negative", dst, tag);
        return PS_EINVAL;
    }
    if (dst < 0 || dst >= c->size) {
        return bad_rank(c, dst, "send");
    }
    size_t len = msg->len;
    int rc = c->ops->send(c, dst, tag, msg);
    if (rc == 0) {
        c->bytes_sent += len;
    }
    return rc;
}

int ps_comm_recv(ps_comm *c, int src, int tag, int wait, ps_comm_msg *out)
{
    if (src != PS_ANY && (src < 0 || src >= c->size)) {
        return bad_rank(c, src, "recv");
    }
    if (tag != PS_ANY && tag < 0) {
        PS_LOG(ERROR, "recv from rank %d: tag %d is negative", src, tag);
        return PS_EINVAL;
    }
    int rc = c->ops->recv(c, src, tag, wait, out);
    if (rc == 0) {
        c->bytes_received += out->len;
    }
    return rc;
}

int ps_comm_progress(ps_comm *c)
{
    return c->ops->progress(c);
}

void ps_comm_bytes(const ps_comm *c, uint64_t *sent, uint64_t *received)
{
    *sent = c->bytes_sent;
    *received = c->bytes_received;
}

int ps_comm_agree(ps_comm *c, int rc)
{
    return c->ops->agree(c, rc);
}

int ps_comm_barrier(ps_comm *c)
{
    return c->ops->barrier(c);
}

int ps_comm_bcast(ps_comm *c, int root, void *buf, size_t len)
{
    if (root < 0 || root >= c->size) {
        return bad_rank(c, root, "bcast root");
    }
    return c->ops->bcast(c, root, buf, len);
}

static int bad_count(int n, const char *what)
{
    PS_LOG(ERROR, "%s of %d elements", what, n);
    return PS_EINVAL;
}

int ps_comm_allreduce_sum(ps_comm *c, double *vals, int n)
{
    return n < 0 ? bad_count(n, "allreduce (sum)") : c->ops->allreduce_sum(c, vals, n);
}

int ps_comm_allreduce_max_u64(ps_comm *c, uint64_t *vals, int n)
{
    return n < 0 ? bad_count(n, "allreduce (max)") : c->ops->allreduce_max_u64(c, vals, n);
}

int ps_comm_allgather_int(ps_comm *c, int val, int *out)
{
    return c->ops->allgather_int(c, val, out);
}

int ps_comm_split(ps_comm *c, int color, ps_comm **out)
{
    *out = NULL;
    return c->ops->split(c, color, out);
}

int ps_comm_nodes(ps_comm *c, int *node_of_rank, int *nnodes)
{
    return c->ops->nodes(c, node_of_rank, nnodes);
}

int ps_comm_raw_pingpong(ps_comm *c, int peer, int lead, size_t req_bytes, size_t reply_bytes,
                         int iters, double *seconds)
{
    if (peer < 0 || peer >= c->size) {
        return bad_rank(c, peer, "raw ping-pong");
    }
    if (!c->ops->raw_pingpong) {
        PS_LOG(ERROR, "raw ping-pong: the %s backend has no raw transport", c->ops->name);
        return PS_EINVAL;
    }
    return c->ops->raw_pingpong(c, peer, lead, req_bytes, reply_bytes, iters, seconds);
}

/* ---- the mpi backend --------------------------------------------------- */

/* Idle waiting when the node is oversubscribed: poll this many times, then
 * sleep 2 us doubling to 200 us. With a core per rank, waiting just polls. */
#define SPIN_POLLS 200
#define MIN_NAP_NS 2000L
#define MAX_NAP_NS 200000L

/* A send in flight: MPI owns buf until the request completes. */
typedef struct {
    MPI_Request req;
    ps_bytes buf;
} send_slot;

typedef struct {
    ps_comm base;
    MPI_Comm mpi;
    int nap; /* 1: sleep while waiting (more ranks than cores on this node) */
    int is_world;
    send_slot *inflight;
    size_t ninflight, cap_inflight;
    ps_bytes *pool; /* idle buffers, handed out by send */
    size_t npool, cap_pool;
    ps_bytes rbuf;
} mpi_comm;

static const ps_comm_ops mpi_ops;
static mpi_comm *abort_comm;

static mpi_comm *as_mpi(ps_comm *c)
{
    return (mpi_comm *)c;
}

static int mpi_fail(int mpirc, const char *what, int peer)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(mpirc, text, &len);
    if (peer >= 0) {
        PS_LOG(ERROR, "%s with rank %d failed: %s", what, peer, text);
    } else {
        PS_LOG(ERROR, "%s failed: %s", what, text);
    }
    return PS_EMPI;
}

#define MPI_CHECK(call, what, peer)                                                                \
    do {                                                                                           \
        int mpirc_ = (call);                                                                       \
        if (mpirc_ != MPI_SUCCESS) {                                                               \
            return mpi_fail(mpirc_, (what), (peer));                                               \
        }                                                                                          \
    } while (0)

static void abort_hook(void)
{
    MPI_Abort(abort_comm ? abort_comm->mpi : MPI_COMM_WORLD, 70);
}

static int comm_wrap(ps_comm **out, MPI_Comm mpi, int is_world)
{
    mpi_comm *c = ps_calloc(1, sizeof *c);
    if (!c) {
        return PS_ENOMEM;
    }
    c->base.ops = &mpi_ops;
    c->mpi = mpi;
    c->is_world = is_world;
    MPI_Comm_rank(mpi, &c->base.rank);
    MPI_Comm_size(mpi, &c->base.size);
    MPI_Comm_set_errhandler(mpi, MPI_ERRORS_RETURN);
    *out = &c->base;
    return 0;
}

/* Whether waiting ranks should sleep: yes when this node runs more ranks
 * than it has cores (a spinning server would take a worker's core), no
 * otherwise (sleeping only adds latency). ADAMPS_WAIT=spin|sleep decides
 * instead. */
static int decide_nap(MPI_Comm world)
{
    const char *env = getenv("ADAMPS_WAIT");
    if (env && strcmp(env, "spin") == 0) {
        return 0;
    }
    if (env && strcmp(env, "sleep") == 0) {
        return 1;
    }
    MPI_Comm local;
    int local_size = 1;
    if (MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &local_size);
        MPI_Comm_free(&local);
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 && local_size > cores;
}

int ps_comm_init(ps_comm **out, int *argc, char ***argv)
{
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS) {
        PS_LOG(ERROR, "MPI_Init failed");
        return PS_EMPI;
    }
    /* Errors on the world comm (and in MPI_Comm_dup) return too. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm dup;
    int mpirc = MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    if (mpirc != MPI_SUCCESS) {
        return mpi_fail(mpirc, "MPI_Comm_dup", -1);
    }
    int rc = comm_wrap(out, dup, 1);
    if (rc) {
        MPI_Comm_free(&dup);
        return rc;
    }
    mpi_comm *c = as_mpi(*out);
    c->nap = decide_nap(dup);
    ps_log_set_rank(c->base.rank);
    abort_comm = c;
    ps_log_set_abort_hook(abort_hook);
    return 0;
}

static void mpi_destroy(ps_comm *base)
{
    mpi_comm *c = as_mpi(base);
    for (size_t i = 0; i < c->ninflight; i++) {
        MPI_Wait(&c->inflight[i].req, MPI_STATUS_IGNORE);
        ps_free(c->inflight[i].buf.data);
    }
    for (size_t i = 0; i < c->npool; i++) {
        ps_free(c->pool[i].data);
    }
    ps_free(c->pool);
    ps_free(c->inflight);
    ps_free(c->rbuf.data);
    int finalize = c->is_world;
    if (abort_comm == c) {
        abort_comm = NULL;
        ps_log_set_abort_hook(NULL);
    }
    MPI_Comm_free(&c->mpi);
    ps_free(c);
    if (finalize) {
        MPI_Finalize();
    }
}

static void mpi_abort(ps_comm *c, int code)
{
    MPI_Abort(as_mpi(c)->mpi, code);
}

static int mpi_progress(ps_comm *base)
{
    mpi_comm *c = as_mpi(base);
    size_t i = 0;
    while (i < c->ninflight) {
        int done = 0;
        send_slot *s = &c->inflight[i];
        MPI_CHECK(MPI_Test(&s->req, &done, MPI_STATUS_IGNORE), "MPI_Test (send)", -1);
        if (!done) {
            i++;
            continue;
        }
        /* Recycle the buffer; the pool can always hold it (see send). */
        s->buf.len = 0;
        c->pool[c->npool++] = s->buf;
        c->inflight[i] = c->inflight[--c->ninflight];
    }
    return 0;
}

static int mpi_send(ps_comm *base, int dst, int tag, ps_bytes *msg)
{
    mpi_comm *c = as_mpi(base);
    if (msg->len > (size_t)INT32_MAX) {
        PS_LOG(ERROR, "message of %zu bytes to rank %d exceeds the 2 GiB MPI count limit", msg->len,
               dst);
        return PS_EINVAL;
    }
    int rc = mpi_progress(base);
    if (rc) {
        return rc;
    }
    /* Reserve room first so that failing later cannot lose the buffer: the
     * pool must be able to take back every buffer in flight. */
    size_t total = c->ninflight + c->npool + 1;
    if ((rc = PS_GROW(c->inflight, c->cap_inflight, c->ninflight + 1)) ||
        (rc = PS_GROW(c->pool, c->cap_pool, total))) {
        return rc;
    }
    send_slot *s = &c->inflight[c->ninflight];
    s->buf = *msg;
    int mpirc = MPI_Isend(s->buf.data, (int)s->buf.len, MPI_BYTE, dst, tag, c->mpi, &s->req);
    if (mpirc != MPI_SUCCESS) {
        return mpi_fail(mpirc, "MPI_Isend", dst);
    }
    c->ninflight++;
    if (c->npool) {
        *msg = c->pool[--c->npool];
    } else {
        *msg = (ps_bytes){0};
    }
    msg->len = 0;
    return 0;
}

static int mpi_recv(ps_comm *base, int src, int tag, int wait, ps_comm_msg *out)
{
    mpi_comm *c = as_mpi(base);
    int rc = mpi_progress(base);
    if (rc) {
        return rc;
    }
    MPI_Message mh;
    MPI_Status st;
    long spins = 0;
    int msrc = src == PS_ANY ? MPI_ANY_SOURCE : src;
    int mtag = tag == PS_ANY ? MPI_ANY_TAG : tag;
    /* The one place this backend waits for a message. It polls with a
     * growing sleep instead of MPI_Mprobe, whose busy loop would take a core
     * from the compute ranks sharing the node (a server idles most of the
     * time). Latency cost: at most one sleep. */
    long nap_ns = 0;
    for (;;) {
        int found = 0;
        MPI_CHECK(MPI_Improbe(msrc, mtag, c->mpi, &found, &mh, &st), "MPI_Improbe", src);
        if (found) {
            break;
        }
        if (!wait) {
            return PS_EEOF;
        }
        if (c->nap && ++spins > SPIN_POLLS) {
            nap_ns = nap_ns ? (nap_ns * 2 > MAX_NAP_NS ? MAX_NAP_NS : nap_ns * 2) : MIN_NAP_NS;
            struct timespec ts = {0, nap_ns};
            nanosleep(&ts, NULL);
        }
    }
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    if ((rc = ps_grow((void **)&c->rbuf.data, &c->rbuf.cap, (size_t)count + 1, 1))) {
        /* The matched message must still be received, or it is lost. */
        MPI_Mrecv(NULL, 0, MPI_BYTE, &mh, MPI_STATUS_IGNORE);
        return rc;
    }
    MPI_CHECK(MPI_Mrecv(c->rbuf.data, count, MPI_BYTE, &mh, MPI_STATUS_IGNORE), "MPI_Mrecv",
              st.MPI_SOURCE);
    out->src = st.MPI_SOURCE;
    out->tag = st.MPI_TAG;
    out->data = c->rbuf.data;
    out->len = (size_t)count;
    return 0;
}

static int mpi_agree(ps_comm *c, int rc)
{
    int all = rc;
    MPI_CHECK(MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MIN, as_mpi(c)->mpi),
              "MPI_Allreduce (agree)", -1);
    return all;
}

static int mpi_barrier(ps_comm *c)
{
    MPI_CHECK(MPI_Barrier(as_mpi(c)->mpi), "MPI_Barrier", -1);
    return 0;
}

static int mpi_bcast(ps_comm *c, int root, void *buf, size_t len)
{
    /* Chunks keep each count inside int. */
    uint8_t *p = buf;
    while (len) {
        int n = len > (1u << 30) ? (1 << 30) : (int)len;
        MPI_CHECK(MPI_Bcast(p, n, MPI_BYTE, root, as_mpi(c)->mpi), "MPI_Bcast", root);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int mpi_allreduce_sum(ps_comm *c, double *vals, int n)
{
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, vals, n, MPI_DOUBLE, MPI_SUM, as_mpi(c)->mpi),
              "MPI_Allreduce (sum)", -1);
    return 0;
}

static int mpi_allreduce_max_u64(ps_comm *c, uint64_t *vals, int n)
{
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, vals, n, MPI_UINT64_T, MPI_MAX, as_mpi(c)->mpi),
              "MPI_Allreduce (max)", -1);
    return 0;
}

static int mpi_allgather_int(ps_comm *c, int val, int *out)
{
    MPI_CHECK(MPI_Allgather(&val, 1, MPI_INT, out, 1, MPI_INT, as_mpi(c)->mpi), "MPI_Allgather",
              -1);
    return 0;
}

static int mpi_split(ps_comm *c, int color, ps_comm **out)
{
    MPI_Comm sub;
    MPI_CHECK(MPI_Comm_split(as_mpi(c)->mpi, color < 0 ? MPI_UNDEFINED : color, c->rank, &sub),
              "MPI_Comm_split", -1);
    if (sub == MPI_COMM_NULL) {
        return 0;
    }
    int rc = comm_wrap(out, sub, 0);
    if (rc) {
        MPI_Comm_free(&sub);
    }
    return rc;
}

static int mpi_nodes(ps_comm *c, int *node_of_rank, int *nnodes)
{
    MPI_Comm local;
    MPI_CHECK(
        MPI_Comm_split_type(as_mpi(c)->mpi, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local),
        "MPI_Comm_split_type", -1);
    /* Each node is named by the world rank of its first member. */
    int leader = c->rank;
    int mpirc = MPI_Bcast(&leader, 1, MPI_INT, 0, local);
    MPI_Comm_free(&local);
    if (mpirc != MPI_SUCCESS) {
        return mpi_fail(mpirc, "MPI_Bcast (node leader)", -1);
    }
    int rc = mpi_allgather_int(c, leader, node_of_rank);
    if (rc) {
        return rc;
    }
    /* Leaders are the lowest rank of their node, so numbering them in rank
     * order gives node indices 0..n-1; index[] maps leader rank -> node. */
    int *index = ps_malloc(sizeof(int) * (size_t)c->size);
    if (!index) {
        return PS_ENOMEM;
    }
    int n = 0;
    for (int r = 0; r < c->size; r++) {
        index[r] = node_of_rank[r] == r ? n++ : -1;
    }
    for (int r = 0; r < c->size; r++) {
        node_of_rank[r] = index[node_of_rank[r]];
    }
    ps_free(index);
    *nnodes = n;
    return 0;
}

/* Outside the PS_TAG_* range, so a stray baseline message can never be
 * taken for a push or a pull. */
#define RAW_TAG 100

static int mpi_raw_pingpong(ps_comm *base, int peer, int lead, size_t req_bytes, size_t reply_bytes,
                            int iters, double *seconds)
{
    if (iters < 1 || req_bytes > (size_t)INT32_MAX || reply_bytes > (size_t)INT32_MAX) {
        PS_LOG(ERROR,
               "raw ping-pong with rank %d: %d iterations of %zu + %zu bytes is out of "
               "range (iterations >= 1, each size <= 2 GiB)",
               peer, iters, req_bytes, reply_bytes);
        return PS_EINVAL;
    }
    MPI_Comm comm = as_mpi(base)->mpi;
    int rc = PS_ENOMEM;
    size_t cap = (req_bytes > reply_bytes ? req_bytes : reply_bytes) + 1;
    uint8_t *sbuf = ps_malloc(cap);
    uint8_t *rbuf = ps_malloc(cap);
    if (!sbuf || !rbuf) {
        goto fail_alloc;
    }
    /* Page faults belong to neither side of the comparison. */
    memset(sbuf, 0x5a, cap);
    memset(rbuf, 0, cap);
    int out = (int)(lead ? req_bytes : reply_bytes), in = (int)(lead ? reply_bytes : req_bytes);
    const char *what = "MPI_Send (raw ping-pong)";
    int mpirc = MPI_SUCCESS;
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters && mpirc == MPI_SUCCESS; i++) {
        if (lead) {
            mpirc = MPI_Send(sbuf, out, MPI_BYTE, peer, RAW_TAG, comm);
            if (mpirc == MPI_SUCCESS) {
                what = "MPI_Recv (raw ping-pong)";
                mpirc = MPI_Recv(rbuf, in, MPI_BYTE, peer, RAW_TAG, comm, MPI_STATUS_IGNORE);
            }
        } else {
            what = "MPI_Recv (raw ping-pong)";
            mpirc = MPI_Recv(rbuf, in, MPI_BYTE, peer, RAW_TAG, comm, MPI_STATUS_IGNORE);
            if (mpirc == MPI_SUCCESS) {
                what = "MPI_Send (raw ping-pong)";
                mpirc = MPI_Send(sbuf, out, MPI_BYTE, peer, RAW_TAG, comm);
            }
        }
    }
    *seconds = MPI_Wtime() - t0;
    rc = mpirc == MPI_SUCCESS ? 0 : mpi_fail(mpirc, what, peer);
fail_alloc:
    ps_free(sbuf);
    ps_free(rbuf);
    return rc;
}

static const ps_comm_ops mpi_ops = {
    .name = "mpi",
    .destroy = mpi_destroy,
    .abort = mpi_abort,
    .send = mpi_send,
    .recv = mpi_recv,
    .progress = mpi_progress,
    .agree = mpi_agree,
    .barrier = mpi_barrier,
    .bcast = mpi_bcast,
    .allreduce_sum = mpi_allreduce_sum,
    .allreduce_max_u64 = mpi_allreduce_max_u64,
    .allgather_int = mpi_allgather_int,
    .split = mpi_split,
    .nodes = mpi_nodes,
    .raw_pingpong = mpi_raw_pingpong,
};
