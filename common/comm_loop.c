/* The `loop` comm backend: n ranks that are threads of one process, so the
 * server and the client run in cmocka tests without mpirun (IOR's DUMMY
 * backend plays the same part). A world is the state every communicator
 * made from one ps_comm_loop_create shares: one mutex, the idle message
 * list, and whether a rank failed. Each communicator (the world's first
 * one, and every one split from it) is a group: a mailbox per rank and the
 * collective in progress.
 *
 * One mutex per world rather than one per mailbox: collectives, split and
 * failure touch every mailbox at once, and a test backend gains nothing
 * from finer locks. Each rank's mailbox has its own condition variable, so
 * a send wakes only the receiver.
 *
 * Nothing here waits for long: receives and collectives are tested, and
 * idle waits on the rank's condition variable for a bounded time. The
 * waiting loops, with their deadlines and heartbeats, are common/comm_live.c's,
 * the same as for MPI. */
#include "common/comm.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/comm_internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

/* A message in a mailbox, or idle on the world's list. An idle node keeps
 * the buffer of the last message it carried: a send hands the caller that
 * buffer in exchange for its own, so nothing is allocated or copied once
 * the list has grown to the most messages ever in flight. */
typedef struct loop_msg {
    struct loop_msg *next;
    int src;
    int tag;
    ps_bytes buf;
} loop_msg;

typedef struct {
    loop_msg *head, *tail; /* arrival order */
    /* Signalled on an arrival, a completed collective and a failure, each
     * of which also counts in events; only the rank's own thread waits on
     * it. */
    pthread_cond_t cv;
    uint64_t events;
} mailbox;

static const char *const coll_names[] = {
    [PS_COLL_AGREE] = "agree",         [PS_COLL_BARRIER] = "barrier",
    [PS_COLL_BCAST] = "bcast",         [PS_COLL_SUM] = "allreduce (sum)",
    [PS_COLL_MAX] = "allreduce (max)", [PS_COLL_GATHER] = "allgather",
    [PS_COLL_SPLIT] = "split",
};

/* A rank's part in a collective is its ps_coll, on that rank's stack from
 * start to done or cancel. The rank that arrives last carries out the
 * whole collective over every rank's part, writing each rank's results
 * (and rc) into its part, so no shared result is read after the round
 * ends and the next round can start at once. */

typedef struct loop_world loop_world;
typedef struct loop_group loop_group;

struct loop_group {
    loop_world *world;
    loop_group *next; /* the world's list */
    int size;
    int nhandles;    /* live handles; the last one's destroy frees the group */
    int *world_rank; /* rank here -> rank in the world */
    mailbox *box;    /* by rank */
    ps_coll **parts; /* this round's parts, by rank */
    int arrived;     /* ranks in the current round */
    uint64_t round;  /* rounds completed */
};

struct loop_world {
    pthread_mutex_t lock;
    loop_group *groups; /* alive; the world goes with the last */
    loop_msg *idle;
    int failed; /* world rank that failed, or -1 */
};

typedef struct {
    ps_comm base;
    loop_group *g;
    loop_msg *cur; /* carries the message the last recv returned */
    uint64_t seen; /* the mailbox's events when it was last found empty */
} loop_comm;

static const ps_comm_ops loop_ops;

static loop_comm *as_loop(ps_comm *c)
{
    return (loop_comm *)c;
}

static void msgs_free(loop_msg *m)
{
    while (m) {
        loop_msg *next = m->next;
        ps_free(m->buf.data);
        ps_free(m);
        m = next;
    }
}

static void group_free(loop_group *g, int ncv)
{
    for (int r = 0; g->box && r < g->size; r++) {
        msgs_free(g->box[r].head);
        if (r < ncv) {
            pthread_cond_destroy(&g->box[r].cv);
        }
    }
    ps_free(g->world_rank);
    ps_free(g->box);
    ps_free(g->parts);
    ps_free(g);
}

static void world_free(loop_world *w)
{
    msgs_free(w->idle);
    pthread_mutex_destroy(&w->lock);
    ps_free(w);
}

/* Opens a group of n ranks in w (world_rank[i] for rank i; NULL: i) with a
 * handle for each, out[i] for rank i. Called with w's lock held, or before
 * any other thread knows w. Returns 0 or PS_ENOMEM, leaving nothing behind. */
static int group_open(loop_world *w, int n, const int *world_rank, ps_comm **out)
{
    loop_group *g = ps_calloc(1, sizeof *g);
    if (!g) {
        return PS_ENOMEM;
    }
    g->world = w;
    g->size = n;
    int ncv = 0, nh = 0;
    if (!(g->world_rank = ps_calloc((size_t)n, sizeof *g->world_rank)) ||
        !(g->box = ps_calloc((size_t)n, sizeof *g->box)) ||
        !(g->parts = ps_calloc((size_t)n, sizeof *g->parts))) {
        goto fail;
    }
    for (; ncv < n; ncv++) {
        if (pthread_cond_init(&g->box[ncv].cv, NULL)) {
            goto fail;
        }
    }
    for (; nh < n; nh++) {
        loop_comm *h = ps_calloc(1, sizeof *h);
        if (!h) {
            goto fail;
        }
        *h = (loop_comm){.base = {.ops = &loop_ops, .rank = nh, .size = n}, .g = g};
        out[nh] = &h->base;
        g->world_rank[nh] = world_rank ? world_rank[nh] : nh;
    }
    g->nhandles = n;
    g->next = w->groups;
    w->groups = g;
    return 0;
fail:
    while (nh--) {
        ps_free(out[nh]);
        out[nh] = NULL;
    }
    group_free(g, ncv);
    return PS_ENOMEM;
}

/* Frees handle c; the last handle of its group takes the group along.
 * Called with the world lock held. */
static void handle_release(loop_comm *c)
{
    loop_group *g = c->g;
    loop_world *w = g->world;
    if (c->cur) {
        c->cur->next = w->idle;
        w->idle = c->cur;
    }
    ps_free(c);
    if (--g->nhandles > 0) {
        return;
    }
    loop_group **pp = &w->groups;
    while (*pp != g) {
        pp = &(*pp)->next;
    }
    *pp = g->next;
    group_free(g, g->size);
}

int ps_comm_loop_create(ps_comm **comms, int n)
{
    if (n < 1) {
        PS_LOG(ERROR, "loop comm: %d ranks (need at least 1)", n);
        return PS_EINVAL;
    }
    for (int i = 0; i < n; i++) {
        comms[i] = NULL;
    }
    loop_world *w = ps_calloc(1, sizeof *w);
    if (!w) {
        return PS_ENOMEM;
    }
    w->failed = -1;
    if (pthread_mutex_init(&w->lock, NULL)) {
        ps_free(w);
        return PS_ENOMEM;
    }
    int rc = group_open(w, n, NULL, comms);
    if (rc) {
        world_free(w);
        return rc;
    }
    for (int i = 0; rc == 0 && i < n; i++) {
        rc = ps_live_attach(comms[i]);
    }
    if (rc) {
        /* The last handle takes the world with it. */
        for (int i = 0; i < n; i++) {
            ps_comm_destroy(&comms[i]);
        }
    }
    return rc;
}

static void loop_destroy(ps_comm *base)
{
    loop_world *w = as_loop(base)->g->world;
    pthread_mutex_lock(&w->lock);
    handle_release(as_loop(base));
    int last = w->groups == NULL;
    pthread_mutex_unlock(&w->lock);
    /* No handle is left, so no other thread can reach w. */
    if (last) {
        world_free(w);
    }
}

/* Wakes rank r of g's waiting thread. World lock held. */
static void box_signal(loop_group *g, int r)
{
    g->box[r].events++;
    pthread_cond_signal(&g->box[r].cv);
}

void ps_comm_loop_fail(ps_comm *c)
{
    if (!c || c->ops != &loop_ops) {
        return;
    }
    loop_group *g = as_loop(c)->g;
    loop_world *w = g->world;
    pthread_mutex_lock(&w->lock);
    if (w->failed < 0) {
        w->failed = g->world_rank[c->rank];
        for (loop_group *q = w->groups; q; q = q->next) {
            for (int r = 0; r < q->size; r++) {
                box_signal(q, r);
            }
        }
    }
    pthread_mutex_unlock(&w->lock);
}

static void loop_abort(ps_comm *c, int code)
{
    ps_comm_loop_fail(c);
    exit(code);
}

/* PS_EPEER, logged, once a rank of c's world has failed. World lock held. */
static int world_check(const loop_comm *c, const char *what)
{
    int failed = c->g->world->failed;
    if (failed < 0) {
        return 0;
    }
    PS_LOG(ERROR, "%s on rank %d gives up: world rank %d failed", what, c->base.rank, failed);
    return PS_EPEER;
}

/* Waits, world lock held, until the next event on c's mailbox since it was
 * last looked at (an arrival, a completed collective, a failure) or until
 * max_secs have passed. */
static void box_wait(loop_comm *c, double max_secs)
{
    mailbox *b = &c->g->box[c->base.rank];
    if (b->events != c->seen || max_secs <= 0) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)(max_secs * 1e9);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    int rc = 0;
    while (b->events == c->seen && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&b->cv, &c->g->world->lock, &ts);
    }
}

static void loop_idle(ps_comm *base, double max_secs, long *nap)
{
    (void)nap;
    loop_comm *c = as_loop(base);
    pthread_mutex_lock(&c->g->world->lock);
    box_wait(c, max_secs);
    pthread_mutex_unlock(&c->g->world->lock);
}

static int loop_send(ps_comm *base, int dst, int tag, ps_bytes *msg)
{
    loop_comm *c = as_loop(base);
    loop_world *w = c->g->world;
    pthread_mutex_lock(&w->lock);
    int rc = world_check(c, "send");
    loop_msg *m = NULL;
    if (rc == 0 && (m = w->idle)) {
        w->idle = m->next;
    } else if (rc == 0 && !(m = ps_calloc(1, sizeof *m))) {
        rc = PS_ENOMEM;
    }
    if (rc == 0) {
        ps_bytes spare = m->buf;
        *m = (loop_msg){.src = base->rank, .tag = tag, .buf = *msg};
        mailbox *b = &c->g->box[dst];
        if (b->tail) {
            b->tail->next = m;
        } else {
            b->head = m;
        }
        b->tail = m;
        box_signal(c->g, dst);
        spare.len = 0;
        *msg = spare;
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

/* Unlinks and returns the earliest message in b matching src and tag, or
 * NULL. Taking the earliest match keeps each sender's order. */
static loop_msg *box_take(mailbox *b, int src, int tag)
{
    loop_msg *prev = NULL;
    for (loop_msg *m = b->head; m; prev = m, m = m->next) {
        if ((src != PS_ANY && m->src != src) || (tag != PS_ANY && m->tag != tag)) {
            continue;
        }
        if (prev) {
            prev->next = m->next;
        } else {
            b->head = m->next;
        }
        if (b->tail == m) {
            b->tail = prev;
        }
        m->next = NULL;
        return m;
    }
    return NULL;
}

static int loop_poll(ps_comm *base, int src, int tag, ps_comm_msg *out)
{
    /* A zero-length message may carry no buffer at all. */
    static const uint8_t empty[1];
    loop_comm *c = as_loop(base);
    loop_world *w = c->g->world;
    mailbox *b = &c->g->box[base->rank];
    pthread_mutex_lock(&w->lock);
    /* What has come counts even once a rank has failed. */
    loop_msg *m = box_take(b, src, tag);
    int rc = m ? 0 : world_check(c, "recv");
    if (m) {
        /* The previous message's buffer goes idle: its data was valid only
         * until this call. */
        if (c->cur) {
            c->cur->next = w->idle;
            w->idle = c->cur;
        }
        c->cur = m;
        *out = (ps_comm_msg){.src = m->src,
                             .tag = m->tag,
                             .data = m->buf.data ? m->buf.data : empty,
                             .len = m->buf.len};
    } else if (rc == 0) {
        c->seen = b->events;
        rc = PS_EEOF;
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

static int loop_drain(ps_comm *base, int *src)
{
    loop_comm *c = as_loop(base);
    loop_world *w = c->g->world;
    pthread_mutex_lock(&w->lock);
    loop_msg *m = box_take(&c->g->box[base->rank], PS_ANY, PS_TAG_BEAT);
    if (m) {
        *src = m->src;
        m->next = w->idle;
        w->idle = m;
    }
    pthread_mutex_unlock(&w->lock);
    return m ? 0 : PS_EEOF;
}

static int loop_progress(ps_comm *c)
{
    (void)c;
    return 0;
}

/* Split, by the rank completing the round: one new group per colour >= 0,
 * members in parent rank order. On failure every rank gets PS_ENOMEM and
 * no new communicator survives. */
static int split_complete(loop_group *g)
{
    int rc = PS_ENOMEM;
    int *members = ps_malloc(sizeof(int) * (size_t)g->size);
    int *wr = ps_malloc(sizeof(int) * (size_t)g->size);
    ps_comm **hs = ps_malloc(sizeof *hs * (size_t)g->size);
    if (!members || !wr || !hs) {
        goto done;
    }
    rc = 0;
    for (int r = 0; r < g->size && rc == 0; r++) {
        int colour = g->parts[r]->ival;
        /* A member of a group opened earlier has its handle already. */
        if (colour < 0 || *g->parts[r]->split_out) {
            continue;
        }
        int n = 0;
        for (int q = r; q < g->size; q++) {
            if (g->parts[q]->ival == colour) {
                members[n] = q;
                wr[n++] = g->world_rank[q];
            }
        }
        if ((rc = group_open(g->world, n, wr, hs)) == 0) {
            for (int i = 0; i < n; i++) {
                *g->parts[members[i]]->split_out = hs[i];
            }
        }
    }
    for (int r = 0; rc && r < g->size; r++) {
        if (*g->parts[r]->split_out) {
            handle_release(as_loop(*g->parts[r]->split_out));
            *g->parts[r]->split_out = NULL;
        }
    }
done:
    ps_free(members);
    ps_free(wr);
    ps_free(hs);
    return rc;
}

/* Carries out the round's collective over every rank's part; returns the rc
 * every rank gets. Called by the last rank to arrive, world lock held. */
static int coll_complete(loop_group *g)
{
    ps_coll *const *p = g->parts;
    for (int r = 1; r < g->size; r++) {
        if (p[r]->kind != p[0]->kind || p[r]->n != p[0]->n || p[r]->root != p[0]->root) {
            PS_LOG(ERROR,
                   "collective mismatch: rank %d called %s (%zu, root %d), rank 0 %s "
                   "(%zu, root %d)",
                   r, coll_names[p[r]->kind], p[r]->n, p[r]->root, coll_names[p[0]->kind], p[0]->n,
                   p[0]->root);
            return PS_EINVAL;
        }
    }
    int rc = 0;
    switch (p[0]->kind) {
    case PS_COLL_AGREE: {
        int min = p[0]->ival;
        for (int r = 1; r < g->size; r++) {
            min = p[r]->ival < min ? p[r]->ival : min;
        }
        for (int r = 0; r < g->size; r++) {
            p[r]->out = min;
        }
        break;
    }
    case PS_COLL_BCAST:
        for (int r = 0; r < g->size; r++) {
            if (r != p[0]->root && p[0]->n) {
                memcpy(p[r]->buf, p[p[0]->root]->buf, p[0]->n);
            }
        }
        break;
    case PS_COLL_SUM:
        for (size_t i = 0; i < p[0]->n; i++) {
            /* In rank order, so a sum is the same bits every run. */
            double sum = ((double *)p[0]->buf)[i];
            for (int r = 1; r < g->size; r++) {
                sum += ((double *)p[r]->buf)[i];
            }
            for (int r = 0; r < g->size; r++) {
                ((double *)p[r]->buf)[i] = sum;
            }
        }
        break;
    case PS_COLL_MAX:
        for (size_t i = 0; i < p[0]->n; i++) {
            uint64_t max = ((uint64_t *)p[0]->buf)[i];
            for (int r = 1; r < g->size; r++) {
                uint64_t v = ((uint64_t *)p[r]->buf)[i];
                max = v > max ? v : max;
            }
            for (int r = 0; r < g->size; r++) {
                ((uint64_t *)p[r]->buf)[i] = max;
            }
        }
        break;
    case PS_COLL_GATHER:
        for (int r = 0; r < g->size; r++) {
            for (int q = 0; q < g->size; q++) {
                ((int *)p[r]->buf)[q] = p[q]->ival;
            }
        }
        break;
    case PS_COLL_SPLIT:
        rc = split_complete(g);
        break;
    case PS_COLL_BARRIER:
        break;
    }
    return rc;
}

/* Posts this rank's part; the last rank to arrive completes the round and
 * wakes the others. */
static int loop_coll_start(ps_comm *base, ps_coll *k)
{
    loop_comm *c = as_loop(base);
    loop_group *g = c->g;
    pthread_mutex_lock(&g->world->lock);
    int rc = world_check(c, coll_names[k->kind]);
    if (rc == 0) {
        k->round = g->round;
        g->parts[c->base.rank] = k;
        if (++g->arrived == g->size) {
            int all = coll_complete(g);
            for (int r = 0; r < g->size; r++) {
                g->parts[r]->rc = all;
                g->parts[r] = NULL;
                box_signal(g, r);
            }
            g->arrived = 0;
            g->round++;
        }
    }
    pthread_mutex_unlock(&g->world->lock);
    return rc;
}

/* Withdraws k if its round has not completed. World lock held. */
static void coll_withdraw(loop_comm *c, ps_coll *k)
{
    loop_group *g = c->g;
    if (k->round == g->round && g->parts[c->base.rank] == k) {
        g->parts[c->base.rank] = NULL;
        g->arrived--;
    }
}

static int loop_coll_test(ps_comm *base, ps_coll *k, int *done)
{
    loop_comm *c = as_loop(base);
    loop_group *g = c->g;
    pthread_mutex_lock(&g->world->lock);
    int rc = 0;
    /* A round completed while a failure was marked still counts, so every
     * rank of a collective that completed gets its result. */
    *done = k->round != g->round;
    if (*done) {
        rc = k->rc;
    } else if ((rc = world_check(c, coll_names[k->kind])) == 0) {
        c->seen = g->box[c->base.rank].events;
    } else {
        coll_withdraw(c, k);
    }
    pthread_mutex_unlock(&g->world->lock);
    return rc;
}

static void loop_coll_cancel(ps_comm *base, ps_coll *k)
{
    loop_comm *c = as_loop(base);
    pthread_mutex_lock(&c->g->world->lock);
    coll_withdraw(c, k);
    pthread_mutex_unlock(&c->g->world->lock);
}

/* Split is a round of its own. It runs after a barrier every rank passed,
 * so it waits only for ranks that are on their way; a failure still ends
 * it. */
static int loop_split(ps_comm *base, int color, ps_comm **out)
{
    ps_coll k = {.kind = PS_COLL_SPLIT, .ival = color < 0 ? -1 : color, .split_out = out};
    int done = 0;
    int rc = loop_coll_start(base, &k);
    while (rc == 0 && (rc = loop_coll_test(base, &k, &done)) == 0 && !done) {
        loop_idle(base, 0.05, NULL);
    }
    return rc;
}

static int loop_nodes(ps_comm *c, int *node_of_rank, int *nnodes)
{
    memset(node_of_rank, 0, sizeof(int) * (size_t)c->size);
    *nnodes = 1;
    return 0;
}

static int loop_world_rank(const ps_comm *c, int r)
{
    return ((const loop_comm *)c)->g->world_rank[r];
}

static const ps_comm_ops loop_ops = {
    .name = "loop",
    .destroy = loop_destroy,
    .abort = loop_abort,
    .send = loop_send,
    .poll = loop_poll,
    .drain = loop_drain,
    .idle = loop_idle,
    .progress = loop_progress,
    .coll_start = loop_coll_start,
    .coll_test = loop_coll_test,
    .coll_cancel = loop_coll_cancel,
    .split = loop_split,
    .nodes = loop_nodes,
    .world_rank = loop_world_rank,
    .raw_pingpong = NULL,
};
