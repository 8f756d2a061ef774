/* The public ps_comm_* functions over any backend (common/comm_internal.h):
 * argument checks, byte counters, and every wait, with a deadline and
 * heartbeats (docs/design.md, "No silent hang").
 *
 * The rule: a rank that waits gives up with PS_ETIMEDOUT when one of the
 * peers it awaits has sent nothing, not even a heartbeat, for the peer
 * timeout. Every rank sends each peer a heartbeat (an empty message on
 * PS_TAG_BEAT) whenever it has sent that peer nothing for a quarter of the
 * timeout (at most 10 s): from every wait loop here, and from long local
 * work through ps_comm_alive(). So a rank that is alive, even busy for an
 * hour writing a checkpoint, keeps its peers waiting; one that is stopped
 * or hung falls silent and is named within the timeout.
 *
 * The counters of common/stats.h are kept here too, in the dispatchers, so
 * they see every message whatever its encoding: bytes and messages per peer
 * and tag, and the time blocked in a wait. */
#include "common/comm.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "common/comm_internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

/* The longest pause between heartbeats, whatever the timeout. */
#define MAX_BEAT_SECS 10.0
/* How often a waiting rank looks at its peers' deadlines. */
#define CHECK_SECS 0.01
/* The longest a backend idles before the wait loop looks around again. */
#define MAX_IDLE_SECS 0.05

struct ps_live {
    double timeout;  /* seconds; 0: waits have no deadline */
    double interval; /* between heartbeats to a quiet peer */
    int n;           /* world ranks */
    int self;        /* this rank in the world */
    double *heard;   /* per world rank: when its last message or heartbeat came */
    double *sent;    /* per world rank: when we last sent it anything */
    unsigned char *peer;
    double next_beat; /* the earliest sent[p] + interval over peers */
    double next_check;
    double last_drain;
    int silent;                /* world rank of the last peer that timed out, or -1 */
    const char *const *labels; /* per world rank, for messages; borrowed; may be NULL */
    ps_comm *world;
    ps_bytes beat; /* empty; its pooled buffer circulates through send */
};

/* The comm ps_comm_alive() keeps alive on this thread. */
static _Thread_local ps_comm *alive_comm;

static int world_of(const ps_comm *c, int r)
{
    return c->owns_live ? r : c->ops->world_rank(c, r);
}

double ps_comm_time(void)
{
    /* The clock MPI_Wtime reads on Linux, without needing MPI to be up, so
     * both backends (and a process that never starts MPI) share it. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void live_free(ps_live *L)
{
    ps_free(L->heard);
    ps_free(L->sent);
    ps_free(L->peer);
    ps_free(L->beat.data);
    ps_free(L);
}

int ps_live_attach(ps_comm *c)
{
    ps_live *L = ps_calloc(1, sizeof *L);
    if (!L) {
        return PS_ENOMEM;
    }
    size_t n = (size_t)c->size;
    if (!(L->heard = ps_calloc(n, sizeof *L->heard)) ||
        !(L->sent = ps_calloc(n, sizeof *L->sent)) || !(L->peer = ps_calloc(n, sizeof *L->peer))) {
        ps_free(L->heard);
        ps_free(L->sent);
        ps_free(L);
        return PS_ENOMEM;
    }
    double now = ps_comm_time();
    for (size_t i = 0; i < n; i++) {
        L->heard[i] = L->sent[i] = now;
    }
    L->n = c->size;
    L->self = c->rank;
    L->silent = -1;
    L->world = c;
    L->next_beat = L->next_check = INFINITY;
    if (ps_stats_create(&c->stats, c->size)) {
        live_free(L);
        return PS_ENOMEM;
    }
    c->live = L;
    c->owns_live = 1;
    return 0;
}

void ps_comm_destroy(ps_comm **cp)
{
    if (!cp || !*cp) {
        return;
    }
    ps_comm *c = *cp;
    *cp = NULL;
    ps_live *L = c->owns_live ? c->live : NULL;
    ps_stats *st = c->owns_live ? c->stats : NULL;
    if (alive_comm == c || (L && alive_comm && alive_comm->live == L)) {
        alive_comm = NULL;
    }
    ps_free(c->ref_copy.data);
    c->ops->destroy(c);
    if (L) {
        live_free(L);
    }
    ps_stats_destroy(&st);
}

ps_stats *ps_comm_stats(ps_comm *c)
{
    return c->stats;
}

int ps_comm_rank(const ps_comm *c)
{
    return c->rank;
}

int ps_comm_size(const ps_comm *c)
{
    return c->size;
}

/* ---- liveness --------------------------------------------------------- */

void ps_comm_set_timeout(ps_comm *c, double seconds)
{
    ps_live *L = c->live;
    if (!L) {
        return;
    }
    L->timeout = seconds > 0 ? seconds : 0;
    L->interval = fmin(L->timeout / 4, MAX_BEAT_SECS);
    double now = ps_comm_time();
    for (int p = 0; p < L->n; p++) {
        L->heard[p] = now; /* the clock starts now for everyone */
    }
    L->next_beat = L->next_check = L->timeout > 0 ? now : INFINITY;
}

double ps_comm_timeout(const ps_comm *c)
{
    return c->live ? c->live->timeout : 0;
}

int ps_comm_set_peers(ps_comm *c, const int *ranks, int n)
{
    ps_live *L = c->live;
    if (!L) {
        return PS_EINVAL;
    }
    for (int i = 0; i < n; i++) {
        if (ranks[i] < 0 || ranks[i] >= L->n) {
            PS_LOG(ERROR, "peers: rank %d is outside the world of %d ranks", ranks[i], L->n);
            return PS_EINVAL;
        }
    }
    memset(L->peer, 0, (size_t)L->n);
    double now = ps_comm_time();
    for (int i = 0; i < n; i++) {
        if (ranks[i] != L->self) {
            L->peer[ranks[i]] = 1;
            L->heard[ranks[i]] = now;
        }
    }
    L->next_beat = L->timeout > 0 ? now : INFINITY;
    alive_comm = c;
    return 0;
}

void ps_comm_set_labels(ps_comm *c, const char *const *labels)
{
    if (c->live) {
        c->live->labels = labels;
    }
}

int ps_comm_silent_rank(const ps_comm *c)
{
    if (!c->live || c->live->silent < 0) {
        return -1;
    }
    /* Back from the world's numbering into c's. */
    for (int r = 0; r < c->size; r++) {
        if (world_of(c, r) == c->live->silent) {
            return r;
        }
    }
    return -1;
}

/* Takes every heartbeat waiting on the world communicator. A heartbeat
 * only says "alive": it does not disturb the last message a recv gave. */
static void drain_beats(ps_live *L, double now)
{
    int src;
    while (L->world->ops->drain(L->world, &src) == 0) {
        L->heard[src] = now;
    }
    L->last_drain = now;
}

/* Sends a heartbeat to every peer that has heard nothing from us for an
 * interval, and takes the heartbeats waiting here. */
static int live_service(ps_comm *c, double now)
{
    ps_live *L = c->live;
    if (!L || L->timeout <= 0) {
        return 0;
    }
    if (now - L->last_drain >= L->interval / 4) {
        drain_beats(L, now);
    }
    if (now < L->next_beat) {
        return 0;
    }
    double next = INFINITY;
    for (int p = 0; p < L->n; p++) {
        if (!L->peer[p]) {
            continue;
        }
        if (now - L->sent[p] >= L->interval) {
            L->beat.len = 0;
            int rc = L->world->ops->send(L->world, p, PS_TAG_BEAT, &L->beat);
            if (rc) {
                return rc;
            }
            L->sent[p] = now;
        }
        next = fmin(next, L->sent[p] + L->interval);
    }
    L->next_beat = next;
    return 0;
}

int ps_comm_tick(ps_comm *c)
{
    return live_service(c, ps_comm_time());
}

void ps_comm_alive(void)
{
    if (alive_comm) {
        /* A failed send shows up again at the next wait, which reports it. */
        (void)ps_comm_tick(alive_comm);
    }
}

/* PS_ETIMEDOUT, logged, when a peer that c's wait awaits (src, or every
 * member of c for PS_ANY) has been silent for the timeout. */
static int overdue(ps_comm *c, int src, double now, const char *what)
{
    ps_live *L = c->live;
    if (!L || L->timeout <= 0 || now < L->next_check) {
        return 0;
    }
    L->next_check = now + CHECK_SECS;
    int worst = -1;
    double age = 0;
    for (int r = src == PS_ANY ? 0 : src; r < (src == PS_ANY ? c->size : src + 1); r++) {
        int p = world_of(c, r);
        if (L->peer[p] && now - L->heard[p] > age) {
            age = now - L->heard[p];
            worst = r;
        }
    }
    if (worst < 0 || age <= L->timeout) {
        return 0;
    }
    L->silent = world_of(c, worst);
    const char *who = L->labels ? L->labels[L->silent] : "";
    const char *me = L->labels ? L->labels[L->self] : "";
    PS_LOG(ERROR,
           "rank %d%s%s%s has sent nothing, not even a heartbeat, for %.1f s (--peer-timeout %g) "
           "while rank %d%s%s%s waited for %s: it is stopped, hung or unreachable",
           L->silent, who[0] ? " (" : "", who, who[0] ? ")" : "", age, L->timeout, L->self,
           me[0] ? " (" : "", me, me[0] ? ")" : "", what);
    return PS_ETIMEDOUT;
}

static double idle_max(const ps_comm *c, double now)
{
    const ps_live *L = c->live;
    double t = MAX_IDLE_SECS;
    if (L && L->timeout > 0) {
        t = fmin(t, fmax(0, L->next_beat - now));
        t = fmin(t, fmax(0, L->next_check - now));
    }
    return t;
}

/* ---- point to point ---------------------------------------------------- */

static int bad_rank(const ps_comm *c, int r, const char *what)
{
    PS_LOG(ERROR, "%s: rank %d is outside this communicator of %d ranks", what, r, c->size);
    return PS_EINVAL;
}

/* The counters and liveness of a send of len bytes that went out. */
static void on_sent(ps_comm *c, int dst, int tag, size_t len)
{
    double now = ps_comm_time();
    c->bytes_sent += len;
    if (c->live) {
        c->live->sent[world_of(c, dst)] = now;
    }
    if (c->stats) {
        ps_stats_on_send(c->stats, world_of(c, dst), tag, len, now);
    }
}

static int check_send(const ps_comm *c, int dst, int tag)
{
    if (tag < 0 || tag == PS_TAG_BEAT) {
        PS_LOG(ERROR, "send to rank %d: tag %d is %s", dst, tag,
               tag < 0 ? "negative" : "reserved for heartbeats");
        return PS_EINVAL;
    }
    if (dst < 0 || dst >= c->size) {
        return bad_rank(c, dst, "send");
    }
    return 0;
}

int ps_comm_send_ref(ps_comm *c, int dst, int tag, const void *data, size_t len)
{
    int rc = check_send(c, dst, tag);
    if (rc) {
        return rc;
    }
    if (c->ops->send_ref) {
        rc = c->ops->send_ref(c, dst, tag, data, len);
    } else if ((rc = ps_grow((void **)&c->ref_copy.data, &c->ref_copy.cap, len ? len : 1, 1)) ==
               0) {
        /* A backend without borrowed sends gets a copy: done at once. */
        memcpy(c->ref_copy.data, data, len);
        c->ref_copy.len = len;
        rc = c->ops->send(c, dst, tag, &c->ref_copy);
    }
    if (rc == 0) {
        on_sent(c, dst, tag, len);
    }
    return rc;
}

int ps_comm_flush(ps_comm *c, const char *what)
{
    long nap = 0;
    int rc = 0;
    while (c->ops->flush_test) {
        int done = 0;
        if ((rc = c->ops->flush_test(c, &done)) || done) {
            break;
        }
        double now = ps_comm_time();
        if ((rc = live_service(c, now)) || (rc = overdue(c, PS_ANY, now, what))) {
            break;
        }
        c->ops->idle(c, idle_max(c, now), &nap);
    }
    return rc;
}

int ps_comm_send(ps_comm *c, int dst, int tag, ps_bytes *msg)
{
    size_t len = msg->len;
    int rc = check_send(c, dst, tag);
    if (rc == 0 && (rc = c->ops->send(c, dst, tag, msg)) == 0) {
        on_sent(c, dst, tag, len);
    }
    return rc;
}

/* Polls for src/tag once: into buf (cap bytes) when buf is given, through
 * the backend's poll_into or else a poll and a copy. */
static int poll_once(ps_comm *c, int src, int tag, void *buf, size_t cap, ps_comm_msg *out)
{
    if (!buf) {
        return c->ops->poll(c, src, tag, out);
    }
    if (c->ops->poll_into) {
        return c->ops->poll_into(c, src, tag, buf, cap, out);
    }
    int rc = c->ops->poll(c, src, tag, out);
    if (rc == 0 && out->len == cap) {
        memcpy(buf, out->data, cap);
    }
    return rc;
}

static int recv_loop(ps_comm *c, int src, int tag, int wait, const char *what, void *buf,
                     size_t cap, ps_comm_msg *out)
{
    if (src != PS_ANY && (src < 0 || src >= c->size)) {
        return bad_rank(c, src, "recv");
    }
    if (tag != PS_ANY && tag < 0) {
        PS_LOG(ERROR, "recv from rank %d: tag %d is negative", src, tag);
        return PS_EINVAL;
    }
    ps_live *L = c->live;
    long nap = 0;
    double waited_from = -1; /* when this call first found nothing, if it did */
    for (;;) {
        int rc = poll_once(c, src, tag, buf, cap, out);
        double now = rc == PS_EEOF || (rc == 0 && (L || c->stats)) ? ps_comm_time() : 0;
        if (rc == 0 && out->tag == PS_TAG_BEAT) {
            L->heard[world_of(c, out->src)] = now;
            continue;
        }
        if (rc == 0) {
            c->bytes_received += out->len;
            if (c->stats) {
                if (waited_from >= 0) {
                    ps_stats_on_wait(c->stats, now - waited_from);
                }
                ps_stats_on_recv(c->stats, world_of(c, out->src), out->tag, out->len, now);
            }
            if (L) {
                L->heard[world_of(c, out->src)] = now;
                /* A rank that always finds a message waiting still takes
                 * its heartbeats now and then. */
                if (L->timeout > 0 && now - L->last_drain >= L->interval) {
                    drain_beats(L, now);
                }
            }
            return 0;
        }
        if (rc != PS_EEOF || (rc = live_service(c, now))) {
            return rc;
        }
        if (!wait) {
            return PS_EEOF;
        }
        if (waited_from < 0) {
            waited_from = now;
        }
        if ((rc = overdue(c, src, now, what))) {
            return rc;
        }
        c->ops->idle(c, idle_max(c, now), &nap);
    }
}

int ps_comm_recv(ps_comm *c, int src, int tag, int wait, ps_comm_msg *out)
{
    return recv_loop(c, src, tag, wait, "a message", NULL, 0, out);
}

int ps_comm_wait(ps_comm *c, int src, int tag, const char *what, ps_comm_msg *out)
{
    return recv_loop(c, src, tag, 1, what ? what : "a message", NULL, 0, out);
}

int ps_comm_recv_into(ps_comm *c, int src, int tag, void *buf, size_t len, const char *what)
{
    static uint8_t none[1];
    if (src == PS_ANY || tag == PS_ANY) {
        PS_LOG(ERROR, "recv into a buffer: source %d and tag %d must be named", src, tag);
        return PS_EINVAL;
    }
    ps_comm_msg m;
    int rc = recv_loop(c, src, tag, 1, what ? what : "a payload", buf ? buf : none, len, &m);
    if (rc == 0 && m.len != len) {
        PS_LOG(ERROR,
               "rank %d sent a payload of %zu bytes on tag %d where its header announced "
               "%zu",
               src, m.len, tag, len);
        rc = PS_EMSG;
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

/* ---- collectives ------------------------------------------------------- */

static const char *const coll_names[] = {
    [PS_COLL_AGREE] = "the agree collective",
    [PS_COLL_BARRIER] = "the barrier",
    [PS_COLL_BCAST] = "the bcast collective",
    [PS_COLL_SUM] = "the allreduce (sum) collective",
    [PS_COLL_MAX] = "the allreduce (max) collective",
    [PS_COLL_GATHER] = "the allgather collective",
    [PS_COLL_SPLIT] = "the split collective",
};

/* Starts collective k and waits for it like any other wait: heartbeats go
 * out, and the members that are this rank's peers get the deadline. */
static int coll_run(ps_comm *c, ps_coll *k)
{
    int rc = c->ops->coll_start(c, k);
    long nap = 0;
    while (rc == 0) {
        int done = 0;
        if ((rc = c->ops->coll_test(c, k, &done)) || done) {
            break;
        }
        double now = ps_comm_time();
        if ((rc = live_service(c, now)) || (rc = c->ops->progress(c)) ||
            (rc = overdue(c, PS_ANY, now, coll_names[k->kind]))) {
            c->ops->coll_cancel(c, k);
            break;
        }
        c->ops->idle(c, idle_max(c, now), &nap);
    }
    return rc;
}

int ps_comm_agree(ps_comm *c, int rc)
{
    ps_coll k = {.kind = PS_COLL_AGREE, .ival = rc};
    int crc = coll_run(c, &k);
    return crc ? crc : k.out;
}

int ps_comm_barrier(ps_comm *c)
{
    ps_coll k = {.kind = PS_COLL_BARRIER};
    return coll_run(c, &k);
}

int ps_comm_bcast(ps_comm *c, int root, void *buf, size_t len)
{
    if (root < 0 || root >= c->size) {
        return bad_rank(c, root, "bcast root");
    }
    ps_coll k = {.kind = PS_COLL_BCAST, .root = root, .n = len, .buf = buf};
    return coll_run(c, &k);
}

static int bad_count(int n, const char *what)
{
    PS_LOG(ERROR, "%s of %d elements", what, n);
    return PS_EINVAL;
}

int ps_comm_allreduce_sum(ps_comm *c, double *vals, int n)
{
    if (n < 0) {
        return bad_count(n, "allreduce (sum)");
    }
    ps_coll k = {.kind = PS_COLL_SUM, .n = (size_t)n, .buf = vals};
    return coll_run(c, &k);
}

int ps_comm_allreduce_max_u64(ps_comm *c, uint64_t *vals, int n)
{
    if (n < 0) {
        return bad_count(n, "allreduce (max)");
    }
    ps_coll k = {.kind = PS_COLL_MAX, .n = (size_t)n, .buf = vals};
    return coll_run(c, &k);
}

int ps_comm_allgather_int(ps_comm *c, int val, int *out)
{
    ps_coll k = {.kind = PS_COLL_GATHER, .ival = val, .buf = out};
    return coll_run(c, &k);
}

int ps_comm_split(ps_comm *c, int color, ps_comm **out)
{
    *out = NULL;
    /* MPI_Comm_split has no nonblocking form: a barrier with a deadline
     * first, so it starts only once every rank is there. */
    int rc = ps_comm_barrier(c);
    if (rc == 0 && (rc = c->ops->split(c, color, out)) == 0 && *out) {
        (*out)->live = c->live;
        (*out)->stats = c->stats;
        (*out)->owns_live = 0;
    }
    return rc;
}

int ps_comm_nodes(ps_comm *c, int *node_of_rank, int *nnodes)
{
    int rc = ps_comm_barrier(c);
    return rc ? rc : c->ops->nodes(c, node_of_rank, nnodes);
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
