/* The `mpi` backend of ps_comm (common/comm_internal.h), ps_comm_init and
 * ps_comm_abort. The only file that includes <mpi.h>. The public ps_comm_*
 * functions, which check arguments, keep the byte counters and run every
 * wait (deadlines, heartbeats), are in common/comm_live.c; the in-process
 * backend is common/comm_loop.c. */
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
    int *to_world; /* rank here -> rank in the world; NULL on the world */
    send_slot *inflight;
    size_t ninflight, cap_inflight;
    ps_bytes *pool; /* idle buffers, handed out by send */
    size_t npool, cap_pool;
    ps_bytes rbuf;
    MPI_Request *refs; /* borrowed sends in flight (ps_comm_send_ref) */
    size_t nrefs, cap_refs;
} mpi_comm;

_Static_assert(sizeof(MPI_Request) <= sizeof(((ps_coll *)0)->req),
               "ps_coll has room for an MPI_Request");

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

/* Ranks of mpi in MPI_COMM_WORLD (whose numbering our world dup shares). */
static int translate_ranks(mpi_comm *c)
{
    int n = c->base.size;
    int *mine = ps_malloc(sizeof(int) * (size_t)n);
    c->to_world = ps_malloc(sizeof(int) * (size_t)n);
    if (!mine || !c->to_world) {
        ps_free(mine);
        return PS_ENOMEM;
    }
    for (int r = 0; r < n; r++) {
        mine[r] = r;
    }
    MPI_Group g = MPI_GROUP_NULL, w = MPI_GROUP_NULL;
    int mpirc = MPI_Comm_group(c->mpi, &g);
    if (mpirc == MPI_SUCCESS) {
        mpirc = MPI_Comm_group(MPI_COMM_WORLD, &w);
    }
    if (mpirc == MPI_SUCCESS) {
        mpirc = MPI_Group_translate_ranks(g, n, mine, w, c->to_world);
    }
    if (g != MPI_GROUP_NULL) {
        MPI_Group_free(&g);
    }
    if (w != MPI_GROUP_NULL) {
        MPI_Group_free(&w);
    }
    ps_free(mine);
    return mpirc == MPI_SUCCESS ? 0 : mpi_fail(mpirc, "MPI_Group_translate_ranks", -1);
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
    int rc = is_world ? ps_live_attach(&c->base) : translate_ranks(c);
    if (rc) {
        ps_free(c->to_world);
        ps_free(c);
        return rc;
    }
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
    /* Every rank a peer until the caller knows better: nothing waits
     * without a deadline, not even before the roles are known. */
    int *all = ps_malloc(sizeof(int) * (size_t)c->base.size);
    if (!all) {
        ps_comm_destroy(out);
        return PS_ENOMEM;
    }
    for (int r = 0; r < c->base.size; r++) {
        all[r] = r;
    }
    ps_comm_set_timeout(*out, PS_COMM_TIMEOUT_DEFAULT);
    rc = ps_comm_set_peers(*out, all, c->base.size);
    ps_free(all);
    return rc;
}

static void mpi_destroy(ps_comm *base)
{
    mpi_comm *c = as_mpi(base);
    for (size_t i = 0; i < c->ninflight; i++) {
        MPI_Wait(&c->inflight[i].req, MPI_STATUS_IGNORE);
        ps_free(c->inflight[i].buf.data);
    }
    if (c->nrefs) {
        MPI_Waitall((int)c->nrefs, c->refs, MPI_STATUSES_IGNORE);
    }
    ps_free(c->refs);
    for (size_t i = 0; i < c->npool; i++) {
        ps_free(c->pool[i].data);
    }
    ps_free(c->pool);
    ps_free(c->inflight);
    ps_free(c->rbuf.data);
    ps_free(c->to_world);
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

static int check_count(size_t len, int dst)
{
    if (len > (size_t)INT32_MAX) {
        PS_LOG(ERROR, "message of %zu bytes to rank %d exceeds the 2 GiB MPI count limit", len,
               dst);
        return PS_EINVAL;
    }
    return 0;
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
    int rc = check_count(msg->len, dst);
    if (rc) {
        return rc;
    }
    rc = mpi_progress(base);
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

/* Straight from the caller's memory: MPI reads data until flush_test
 * finds the request complete. */
static int mpi_send_ref(ps_comm *base, int dst, int tag, const void *data, size_t len)
{
    mpi_comm *c = as_mpi(base);
    int rc = check_count(len, dst);
    if (rc || (rc = PS_GROW(c->refs, c->cap_refs, c->nrefs + 1))) {
        return rc;
    }
    MPI_CHECK(MPI_Isend(data, (int)len, MPI_BYTE, dst, tag, c->mpi, &c->refs[c->nrefs]),
              "MPI_Isend (payload)", dst);
    c->nrefs++;
    return 0;
}

static int mpi_flush_test(ps_comm *base, int *done)
{
    mpi_comm *c = as_mpi(base);
    int flag = 1;
    if (c->nrefs) {
        MPI_CHECK(MPI_Testall((int)c->nrefs, c->refs, &flag, MPI_STATUSES_IGNORE),
                  "MPI_Testall (payloads)", -1);
    }
    if (flag) {
        c->nrefs = 0;
    }
    *done = flag;
    return mpi_progress(base);
}

/* Receives without waiting: MPI_Improbe + MPI_Mrecv, straight into buf
 * when one is given and the message is exactly cap bytes, else into one
 * buffer that grows to the largest message and is reused (a payload of the
 * wrong length still has to be received, or it blocks the next; the
 * caller reports it). */
static int mpi_poll_into(ps_comm *base, int src, int tag, void *buf, size_t cap, ps_comm_msg *out)
{
    mpi_comm *c = as_mpi(base);
    int rc = mpi_progress(base);
    if (rc) {
        return rc;
    }
    MPI_Message mh;
    MPI_Status st;
    int found = 0;
    MPI_CHECK(MPI_Improbe(src == PS_ANY ? MPI_ANY_SOURCE : src, tag == PS_ANY ? MPI_ANY_TAG : tag,
                          c->mpi, &found, &mh, &st),
              "MPI_Improbe", src);
    if (!found) {
        return PS_EEOF;
    }
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    void *into = buf;
    if (!buf || (size_t)count != cap) {
        if ((rc = ps_grow((void **)&c->rbuf.data, &c->rbuf.cap, (size_t)count + 1, 1))) {
            /* The matched message must still be received, or it is lost. */
            MPI_Mrecv(NULL, 0, MPI_BYTE, &mh, MPI_STATUS_IGNORE);
            return rc;
        }
        into = c->rbuf.data;
    }
    MPI_CHECK(MPI_Mrecv(into, count, MPI_BYTE, &mh, MPI_STATUS_IGNORE), "MPI_Mrecv", st.MPI_SOURCE);
    *out =
        (ps_comm_msg){.src = st.MPI_SOURCE, .tag = st.MPI_TAG, .data = into, .len = (size_t)count};
    return 0;
}

static int mpi_poll(ps_comm *base, int src, int tag, ps_comm_msg *out)
{
    return mpi_poll_into(base, src, tag, NULL, 0, out);
}

static int mpi_drain(ps_comm *base, int *src)
{
    MPI_Message mh;
    MPI_Status st;
    int found = 0;
    MPI_CHECK(MPI_Improbe(MPI_ANY_SOURCE, PS_TAG_BEAT, as_mpi(base)->mpi, &found, &mh, &st),
              "MPI_Improbe (heartbeat)", -1);
    if (!found) {
        return PS_EEOF;
    }
    /* Empty: nothing lands in the receive buffer. */
    MPI_CHECK(MPI_Mrecv(NULL, 0, MPI_BYTE, &mh, MPI_STATUS_IGNORE), "MPI_Mrecv (heartbeat)",
              st.MPI_SOURCE);
    *src = st.MPI_SOURCE;
    return 0;
}

/* Idle waiting when the node is oversubscribed: poll this many times, then
 * sleep 2 us doubling to 200 us. With a core per rank, waiting just polls,
 * as MPI_Mprobe would, whose busy loop would take a core from the compute
 * ranks sharing the node (a server idles most of the time). */
static void mpi_idle(ps_comm *base, double max_secs, long *nap)
{
    long n = (*nap)++;
    if (!as_mpi(base)->nap || n < SPIN_POLLS) {
        return;
    }
    long shift = n - SPIN_POLLS < 7 ? n - SPIN_POLLS : 7;
    long ns = MIN_NAP_NS << shift;
    ns = ns > MAX_NAP_NS ? MAX_NAP_NS : ns;
    if ((double)ns > max_secs * 1e9) {
        ns = (long)(max_secs * 1e9);
    }
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

/* Broadcasts go in chunks that keep each count inside int. */
#define BCAST_CHUNK ((size_t)1 << 30)

static int bcast_next(mpi_comm *c, ps_coll *k, MPI_Request *req)
{
    size_t n = k->n - k->done_bytes < BCAST_CHUNK ? k->n - k->done_bytes : BCAST_CHUNK;
    MPI_CHECK(MPI_Ibcast((uint8_t *)k->buf + k->done_bytes, (int)n, MPI_BYTE, k->root, c->mpi, req),
              "MPI_Ibcast", k->root);
    return 0;
}

static int mpi_coll_start(ps_comm *base, ps_coll *k)
{
    mpi_comm *c = as_mpi(base);
    MPI_Request *req = (MPI_Request *)&k->req;
    int n = (int)k->n;
    switch (k->kind) {
    case PS_COLL_AGREE:
        MPI_CHECK(MPI_Iallreduce(&k->ival, &k->out, 1, MPI_INT, MPI_MIN, c->mpi, req),
                  "MPI_Iallreduce (agree)", -1);
        break;
    case PS_COLL_BARRIER:
        MPI_CHECK(MPI_Ibarrier(c->mpi, req), "MPI_Ibarrier", -1);
        break;
    case PS_COLL_BCAST:
        k->done_bytes = 0;
        return bcast_next(c, k, req);
    case PS_COLL_SUM:
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, k->buf, n, MPI_DOUBLE, MPI_SUM, c->mpi, req),
                  "MPI_Iallreduce (sum)", -1);
        break;
    case PS_COLL_MAX:
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, k->buf, n, MPI_UINT64_T, MPI_MAX, c->mpi, req),
                  "MPI_Iallreduce (max)", -1);
        break;
    case PS_COLL_GATHER:
        MPI_CHECK(MPI_Iallgather(&k->ival, 1, MPI_INT, k->buf, 1, MPI_INT, c->mpi, req),
                  "MPI_Iallgather", -1);
        break;
    case PS_COLL_SPLIT:
        PS_ASSERT(!"mpi splits with MPI_Comm_split");
        break;
    }
    return 0;
}

static int mpi_coll_test(ps_comm *base, ps_coll *k, int *done)
{
    MPI_Request *req = (MPI_Request *)&k->req;
    MPI_CHECK(MPI_Test(req, done, MPI_STATUS_IGNORE), "MPI_Test (collective)", -1);
    if (*done && k->kind == PS_COLL_BCAST) {
        k->done_bytes += k->n - k->done_bytes < BCAST_CHUNK ? k->n - k->done_bytes : BCAST_CHUNK;
        if (k->done_bytes < k->n) {
            *done = 0;
            return bcast_next(as_mpi(base), k, req);
        }
    }
    return 0;
}

static void mpi_coll_cancel(ps_comm *base, ps_coll *k)
{
    /* A collective cannot be cancelled in MPI; the caller is giving up on
     * the job and aborts it, so the request is simply left. */
    (void)base;
    (void)k;
}

static int mpi_world_rank(const ps_comm *base, int r)
{
    const mpi_comm *c = (const mpi_comm *)base;
    return c->to_world ? c->to_world[r] : r;
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
    MPI_CHECK(MPI_Allgather(&leader, 1, MPI_INT, node_of_rank, 1, MPI_INT, as_mpi(c)->mpi),
              "MPI_Allgather (node leaders)", -1);
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
    .poll = mpi_poll,
    .drain = mpi_drain,
    .idle = mpi_idle,
    .progress = mpi_progress,
    .coll_start = mpi_coll_start,
    .coll_test = mpi_coll_test,
    .coll_cancel = mpi_coll_cancel,
    .split = mpi_split,
    .nodes = mpi_nodes,
    .world_rank = mpi_world_rank,
    .raw_pingpong = mpi_raw_pingpong,
    .send_ref = mpi_send_ref,
    .flush_test = mpi_flush_test,
    .poll_into = mpi_poll_into,
};
