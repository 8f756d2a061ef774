#include "worker/client.h"

#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/payload.h"

/* One server's share of a plan: for each table a run of (slot, position in
 * the table's key list), slots ascending. */
typedef struct {
    uint64_t *slots;
    size_t *pos;
    size_t n, cap_slots, cap_pos;
    size_t *seg_start; /* per table: first index; seg_start[ntables] = n */
    uint8_t *run;      /* per table: RUN_POS and RUN_SLOTS, found once per plan */
    uint64_t request_id;
} plan_part;

typedef struct {
    uint64_t slot;
    size_t pos;
} slot_pos;

/* A segment's positions are p, p+1, ...: its rows sit together in the
 * caller's buffers, so they travel from and to them in place. */
#define RUN_POS 1u
/* Its slots are s, s+1, ...: the encoder sends (first, count). */
#define RUN_SLOTS 2u

struct ps_plan {
    plan_part *parts; /* nservers */
    uint32_t nservers, ntables;
};

/* A message that came while the client waited for something else and must
 * wait its turn (a pull reply during a checkpoint), copied out of the comm's
 * buffer. */
typedef struct {
    int src, tag;
    ps_bytes b;
    size_t hdr_len; /* the header's bytes at the front of b */
    size_t pay_off; /* a reply's payloads follow the header in b from here; 0: none */
} held_msg;

struct ps_client {
    ps_client_cfg cfg;
    ps_comm *comm;
    ps_codec *codec;
    ps_shard *shards; /* per table */
    ps_msg_table *limits;
    ps_msg_limits lim;
    int *server_of_rank; /* comm rank -> server index or -1 */
    ps_seg *segs;
    const float **pay; /* per segment of a push: where its payload is sent from */
    float *vals;
    size_t cap_vals;
    ps_bytes out;
    uint64_t next_id;
    /* hash sharding: (slot, pos) pairs sorted per server */
    slot_pos *pairs;
    size_t cap_pairs;
    held_msg *held; /* arrival order; slots past nheld keep their buffers */
    size_t nheld, cap_held;
    const uint8_t *held_pay; /* the message next_msg gave was held: its payloads, in order */
    int64_t stop_clock; /* the job stops at this clock (from a reply or ps_client_stop); 0: no */
    int stop_requested; /* coordinator: some rank asked for a stop */
};

int ps_client_create(ps_client **out, const ps_client_cfg *cfg, ps_comm *comm)
{
    int rc = PS_ENOMEM;
    ps_client *c = ps_calloc(1, sizeof *c);
    if (!c) {
        return PS_ENOMEM;
    }
    c->cfg = *cfg;
    c->comm = comm;
    int size = ps_comm_size(comm);
    if (ps_codec_create(&c->codec) || !(c->shards = ps_calloc(cfg->ntables, sizeof *c->shards)) ||
        !(c->limits = ps_calloc(cfg->ntables, sizeof *c->limits)) ||
        !(c->segs = ps_calloc(cfg->ntables, sizeof *c->segs)) ||
        !(c->pay = ps_calloc(cfg->ntables ? cfg->ntables : 1, sizeof *c->pay)) ||
        !(c->server_of_rank = ps_malloc(sizeof(int) * (size_t)size))) {
        goto fail;
    }
    for (uint32_t t = 0; t < cfg->ntables; t++) {
        if ((rc = ps_shard_init(&c->shards[t], cfg->tables[t].rows, cfg->nservers, cfg->shard))) {
            goto fail;
        }
        /* Replies carry values only; slots bound the row count of a segment. */
        c->limits[t] = (ps_msg_table){.width = cfg->tables[t].width, .slots = cfg->tables[t].rows};
    }
    c->lim =
        (ps_msg_limits){.tables = c->limits, .ntables = cfg->ntables, .nworkers = cfg->nworkers};
    for (int r = 0; r < size; r++) {
        c->server_of_rank[r] = -1;
    }
    for (uint32_t s = 0; s < cfg->nservers; s++) {
        c->server_of_rank[cfg->server_ranks[s]] = (int)s;
    }
    *out = c;
    return 0;
fail:
    ps_client_destroy(&c);
    return rc;
}

void ps_client_destroy(ps_client **cp)
{
    if (!cp || !*cp) {
        return;
    }
    ps_client *c = *cp;
    ps_codec_destroy(&c->codec);
    ps_free(c->shards);
    ps_free(c->limits);
    ps_free(c->segs);
    ps_free(c->pay);
    ps_free(c->server_of_rank);
    ps_free(c->vals);
    ps_free(c->out.data);
    ps_free(c->pairs);
    for (size_t i = 0; i < c->cap_held; i++) {
        ps_free(c->held[i].b.data);
    }
    ps_free(c->held);
    ps_free(c);
    *cp = NULL;
}

int ps_plan_create(ps_plan **out, const ps_client *c)
{
    ps_plan *p = ps_calloc(1, sizeof *p);
    if (!p) {
        return PS_ENOMEM;
    }
    p->nservers = c->cfg.nservers;
    p->ntables = c->cfg.ntables;
    if (!(p->parts = ps_calloc(p->nservers, sizeof *p->parts))) {
        goto fail;
    }
    for (uint32_t s = 0; s < p->nservers; s++) {
        if (!(p->parts[s].seg_start = ps_calloc(p->ntables + 1, sizeof(size_t))) ||
            !(p->parts[s].run = ps_calloc(p->ntables ? p->ntables : 1, 1))) {
            goto fail;
        }
    }
    *out = p;
    return 0;
fail:
    ps_plan_destroy(&p);
    return PS_ENOMEM;
}

void ps_plan_destroy(ps_plan **pp)
{
    if (!pp || !*pp) {
        return;
    }
    ps_plan *p = *pp;
    for (uint32_t s = 0; p->parts && s < p->nservers; s++) {
        ps_free(p->parts[s].slots);
        ps_free(p->parts[s].pos);
        ps_free(p->parts[s].seg_start);
        ps_free(p->parts[s].run);
    }
    ps_free(p->parts);
    ps_free(p);
    *pp = NULL;
}

static int part_append(plan_part *pt, uint64_t slot, size_t pos)
{
    int rc = PS_GROW(pt->slots, pt->cap_slots, pt->n + 1);
    if (rc || (rc = PS_GROW(pt->pos, pt->cap_pos, pt->n + 1))) {
        return rc;
    }
    pt->slots[pt->n] = slot;
    pt->pos[pt->n++] = pos;
    return 0;
}

static int cmp_slot(const void *a, const void *b)
{
    uint64_t x = ((const slot_pos *)a)->slot, y = ((const slot_pos *)b)->slot;
    return (x > y) - (x < y);
}

/* Sorts the run [from, n) of pt by slot, carrying positions along. Only
 * hash sharding needs it: range sharding keeps ascending keys ascending. */
static int sort_run(ps_client *c, plan_part *pt, size_t from)
{
    size_t n = pt->n - from;
    if (n < 2) {
        return 0;
    }
    int rc = PS_GROW(c->pairs, c->cap_pairs, n);
    if (rc) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        c->pairs[i] = (slot_pos){pt->slots[from + i], pt->pos[from + i]};
    }
    qsort(c->pairs, n, sizeof *c->pairs, cmp_slot);
    for (size_t i = 0; i < n; i++) {
        pt->slots[from + i] = c->pairs[i].slot;
        pt->pos[from + i] = c->pairs[i].pos;
    }
    return 0;
}

/* Positions p, p+1, ...: the rows sit together in the caller's buffer, so
 * they move with one memcpy (or none). Dense tables under range sharding. */
static int is_run(const size_t *pos, size_t n)
{
    /* Hash sharding reorders positions, so every one is checked. */
    for (size_t k = 1; k < n; k++) {
        if (pos[k] != pos[0] + k) {
            return 0;
        }
    }
    return n > 0;
}

/* Slots s, s+1, ...: checked once here, so no push or pull looks again. */
static int slots_run(const uint64_t *slots, size_t n)
{
    return n > 0 && slots[n - 1] - slots[0] == n - 1;
}

static void find_runs(plan_part *pt, uint32_t ntables)
{
    for (uint32_t t = 0; t < ntables; t++) {
        size_t a = pt->seg_start[t], n = pt->seg_start[t + 1] - a;
        /* Slots are strictly ascending, so first and last tell a run. */
        pt->run[t] = (uint8_t)((is_run(pt->pos + a, n) ? RUN_POS : 0) |
                               (slots_run(pt->slots + a, n) ? RUN_SLOTS : 0));
    }
}

int ps_client_plan(ps_client *c, ps_plan *p, const ps_keylist *keys)
{
    for (uint32_t s = 0; s < p->nservers; s++) {
        p->parts[s].n = 0;
    }
    for (uint32_t t = 0; t < p->ntables; t++) {
        for (uint32_t s = 0; s < p->nservers; s++) {
            p->parts[s].seg_start[t] = p->parts[s].n;
        }
        const ps_shard *sh = &c->shards[t];
        for (size_t i = 0; i < keys[t].n; i++) {
            uint64_t key = keys[t].keys[i];
            if (key >= sh->rows) {
                PS_LOG(ERROR, "key %llu of table %s is past its %llu rows", (unsigned long long)key,
                       c->cfg.tables[t].name, (unsigned long long)sh->rows);
                return PS_ERANGE;
            }
            uint32_t server;
            uint64_t slot;
            ps_shard_locate(sh, key, &server, &slot);
            int rc = part_append(&p->parts[server], slot, i);
            if (rc) {
                return rc;
            }
        }
        if (sh->mode == PS_SHARD_HASH) {
            for (uint32_t s = 0; s < p->nservers; s++) {
                int rc = sort_run(c, &p->parts[s], p->parts[s].seg_start[t]);
                if (rc) {
                    return rc;
                }
            }
        }
    }
    for (uint32_t s = 0; s < p->nservers; s++) {
        p->parts[s].seg_start[p->ntables] = p->parts[s].n;
        find_runs(&p->parts[s], p->ntables);
    }
    return 0;
}

/* Fills c->segs with the non-empty key segments of part pt (no values: a
 * pull, or what a reply must answer); returns how many. */
static size_t part_segs(ps_client *c, const plan_part *pt, uint32_t ntables)
{
    size_t nsegs = 0;
    for (uint32_t t = 0; t < ntables; t++) {
        size_t a = pt->seg_start[t], n = pt->seg_start[t + 1] - a;
        if (n) {
            c->segs[nsegs++] = (ps_seg){.table = t,
                                        .nkeys = n,
                                        .slots = pt->slots + a,
                                        .run = (pt->run[t] & RUN_SLOTS) != 0};
        }
    }
    return nsegs;
}

int ps_client_pull_start(ps_client *c, ps_plan *p, int64_t min_version, int averaged)
{
    for (uint32_t s = 0; s < p->nservers; s++) {
        plan_part *pt = &p->parts[s];
        pt->request_id = ++c->next_id;
        ps_pull m = {.request_id = pt->request_id,
                     .min_version = min_version,
                     .worker = c->cfg.worker,
                     .averaged = averaged,
                     .nsegs = part_segs(c, pt, p->ntables),
                     .segs = c->segs};
        int rc = ps_codec_encode_pull(c->codec, &m, &c->out);
        if (rc || (rc = ps_comm_send(c->comm, c->cfg.server_ranks[s], PS_TAG_PULL, &c->out))) {
            return rc;
        }
    }
    return 0;
}

/* The next payload (n floats) of reply r from rank src that next_msg gave:
 * from the comm piece by piece straight into dst, or from where hold kept
 * it. */
static int take_payload(ps_client *c, int src, const ps_reply *r, float *dst, size_t n)
{
    if (c->held_pay) {
        memcpy(dst, c->held_pay, n * sizeof(float));
        c->held_pay += n * sizeof(float);
        return 0;
    }
    return ps_payload_recv_one(c->comm, src, PS_TAG_DATA(PS_TAG_REPLY), dst, n, r->chunk,
                               "a pull reply's values");
}

/* Checks reply r from server s against what pt asked for, then scatters. */
static int scatter_reply(ps_client *c, const ps_plan *p, uint32_t s, int src, const ps_reply *r,
                         float *const *params)
{
    const plan_part *pt = &p->parts[s];
    size_t want = part_segs(c, pt, p->ntables);
    if (r->request_id != pt->request_id || r->nsegs != want) {
        PS_LOG(ERROR,
               "reply from server rank %d answers request %llu with %zu segments; "
               "expected request %llu with %zu",
               src, (unsigned long long)r->request_id, r->nsegs, (unsigned long long)pt->request_id,
               want);
        return PS_EMSG;
    }
    for (size_t i = 0; i < r->nsegs; i++) {
        const ps_seg *want_seg = &c->segs[i], *got = &r->segs[i];
        size_t width = c->cfg.tables[want_seg->table].width;
        if (got->table != want_seg->table || got->nvalues != want_seg->nkeys * width) {
            PS_LOG(ERROR,
                   "reply from server rank %d: segment %zu has table %u with %zu values; "
                   "expected table %u with %zu",
                   src, i, got->table, got->nvalues, want_seg->table, want_seg->nkeys * width);
            return PS_EMSG;
        }
        const size_t *pos = pt->pos + (want_seg->slots - pt->slots);
        float *dst = params[want_seg->table];
        int run = (pt->run[want_seg->table] & RUN_POS) != 0;
        const float *vals = got->values;
        int rc = 0;
        if (!vals && run) {
            /* Straight into the parameters: no copy of ours at all. */
            rc = take_payload(c, src, r, dst + pos[0] * width, got->nvalues);
            if (rc) {
                return rc;
            }
            continue;
        }
        if (!vals) {
            if ((rc = ps_grow((void **)&c->vals, &c->cap_vals, got->nvalues, sizeof(float))) ||
                (rc = take_payload(c, src, r, c->vals, got->nvalues))) {
                return rc;
            }
            vals = c->vals;
        }
        if (run) {
            memcpy(dst + pos[0] * width, vals, got->nvalues * sizeof(float));
            continue;
        }
        for (size_t k = 0; k < want_seg->nkeys; k++) {
            ps_table_copy_row(dst + pos[k] * width, vals + k * width, width);
        }
    }
    return 0;
}

static const char *tag_name(int tag)
{
    switch (tag) {
    case PS_TAG_PUSH:
        return "push";
    case PS_TAG_PULL:
        return "pull";
    case PS_TAG_REPLY:
        return "pull reply";
    case PS_TAG_CTRL:
        return "control";
    default:
        return "unknown tag";
    }
}

/* A message that no wait of a worker expects: never something to wait
 * past, since what was expected may never come. */
static int unexpected(const ps_comm_msg *m, const char *waiting)
{
    PS_LOG(ERROR, "unexpected message with tag %d (%s) from rank %d while waiting for %s", m->tag,
           tag_name(m->tag), m->src, waiting);
    return PS_EMSG;
}

/* The next message for this worker: one held back earlier, else the next
 * from any rank, with the peer deadline. m's data is valid until the next
 * call. */
static int next_msg(ps_client *c, const char *what, ps_comm_msg *m)
{
    c->held_pay = NULL;
    if (c->nheld == 0) {
        return ps_comm_wait(c->comm, PS_ANY, PS_ANY, what, m);
    }
    held_msg first = c->held[0];
    memmove(c->held, c->held + 1, (c->nheld - 1) * sizeof *c->held);
    /* The slot goes past the end with its buffer: m points into it until
     * a later hold reuses it. */
    c->held[--c->nheld] = first;
    *m = (ps_comm_msg){
        .src = first.src, .tag = first.tag, .data = first.b.data, .len = first.hdr_len};
    c->held_pay = first.pay_off ? first.b.data + first.pay_off : NULL;
    return 0;
}

/* Keeps a copy of reply m for next_msg, with the payloads its header
 * announces (they come next from its sender and cannot wait in the comm:
 * the wait that holds m takes any message). */
static int hold(ps_client *c, const ps_comm_msg *m)
{
    int rc = PS_GROW_ZEROED(c->held, c->cap_held, c->nheld + 1);
    if (rc) {
        return rc;
    }
    held_msg *h = &c->held[c->nheld];
    ps_reply r;
    if ((rc = ps_codec_decode_reply(c->codec, &c->lim, m->src, m->data, m->len, &r))) {
        return rc;
    }
    size_t pay = ps_payload_floats(r.segs, r.nsegs) * sizeof(float);
    /* Payloads start aligned for floats. */
    size_t off = (m->len + 15) & ~(size_t)15;
    if ((rc = ps_grow((void **)&h->b.data, &h->b.cap, off + pay + 1, 1))) {
        return rc;
    }
    memcpy(h->b.data, m->data, m->len);
    h->pay_off = pay ? off : 0;
    rc = ps_payload_recv(c->comm, m->src, PS_TAG_DATA(PS_TAG_REPLY), r.segs, r.nsegs, r.chunk,
                         (float *)(void *)(h->b.data + off), NULL, "a pull reply's values");
    h->b.len = off + pay;
    h->hdr_len = m->len;
    h->src = m->src;
    h->tag = m->tag;
    c->nheld += rc == 0;
    return rc;
}

/* A control message that may come during any wait: a rank asking the
 * coordinator to stop (SIGTERM or SIGUSR1 reached it). Anything else is
 * unexpected there. */
static int on_side_ctrl(ps_client *c, const ps_comm_msg *m, const char *waiting)
{
    ps_ctrl r;
    int rc = ps_codec_decode_ctrl(c->codec, &c->lim, m->src, m->data, m->len, &r);
    if (rc) {
        return rc;
    }
    if (r.kind != PS_CTRL_STOP_REQUEST || c->cfg.worker != 0) {
        PS_LOG(ERROR, "unexpected control message of kind %d from rank %d while waiting for %s",
               r.kind, m->src, waiting);
        return PS_EMSG;
    }
    if (!c->stop_requested) {
        PS_LOG(INFO, "rank %d asks to stop (it got a stop signal)", m->src);
    }
    c->stop_requested = 1;
    return 0;
}

int ps_client_pull_wait(ps_client *c, ps_plan *p, float *const *params)
{
    static const char what[] = "pull replies from the servers";
    /* Replies from one server arrive in request order (MPI does not let
     * messages between two ranks overtake), so the next reply from each
     * server belongs to the oldest pull in flight: this one. */
    for (uint32_t got = 0; got < p->nservers;) {
        ps_comm_msg m;
        ps_reply r;
        int rc = next_msg(c, what, &m);
        if (rc) {
            return rc;
        }
        if (m.tag == PS_TAG_CTRL) {
            if ((rc = on_side_ctrl(c, &m, what))) {
                return rc;
            }
            continue;
        }
        if (m.tag != PS_TAG_REPLY) {
            return unexpected(&m, what);
        }
        int s = c->server_of_rank[m.src];
        if (s < 0) {
            PS_LOG(ERROR, "pull reply from rank %d, which is not a server", m.src);
            return PS_EMSG;
        }
        if ((rc = ps_codec_decode_reply(c->codec, &c->lim, m.src, m.data, m.len, &r)) ||
            (rc = scatter_reply(c, p, (uint32_t)s, m.src, &r, params))) {
            return rc;
        }
        if (r.stop_clock > 0 && c->stop_clock == 0) {
            c->stop_clock = r.stop_clock;
        }
        got++;
    }
    return 0;
}

/* The floats of grads that p sends scattered (not as a run), over every
 * server: what the gather buffer must hold while the sends are in flight. */
static size_t gathered_total(const ps_client *c, const ps_plan *p)
{
    size_t total = 0;
    for (uint32_t s = 0; s < p->nservers; s++) {
        const plan_part *pt = &p->parts[s];
        for (uint32_t t = 0; t < p->ntables; t++) {
            size_t a = pt->seg_start[t], n = pt->seg_start[t + 1] - a;
            if (n && !(pt->run[t] & RUN_POS)) {
                total += n * c->cfg.tables[t].width;
            }
        }
    }
    return total;
}

int ps_client_push(ps_client *c, ps_plan *p, const float *const *grads, int64_t clock,
                   uint32_t samples)
{
    size_t gathered = gathered_total(c, p);
    int rc = ps_grow((void **)&c->vals, &c->cap_vals, gathered ? gathered : 1, sizeof(float));
    if (rc) {
        return rc;
    }
    size_t off = 0;
    for (uint32_t s = 0; s < p->nservers; s++) {
        plan_part *pt = &p->parts[s];
        /* This server's rows in slot order: a run of consecutive rows is
         * sent from grads in place, scattered rows are gathered, and each
         * goes as a payload after the header (values NULL below). */
        size_t nsegs = 0;
        const float **pay = c->pay;
        for (uint32_t t = 0; t < p->ntables; t++) {
            size_t a = pt->seg_start[t], n = pt->seg_start[t + 1] - a;
            size_t width = c->cfg.tables[t].width;
            if (n == 0) {
                continue;
            }
            const float *vals = c->vals + off;
            if (pt->run[t] & RUN_POS) {
                vals = grads[t] + pt->pos[a] * width;
            } else {
                for (size_t k = a; k < a + n; k++) {
                    ps_table_copy_row(c->vals + off, grads[t] + pt->pos[k] * width, width);
                    off += width;
                }
            }
            pay[nsegs] = vals;
            c->segs[nsegs++] = (ps_seg){.table = t,
                                        .nkeys = n,
                                        .slots = pt->slots + a,
                                        .values = NULL,
                                        .nvalues = n * width,
                                        .run = (pt->run[t] & RUN_SLOTS) != 0};
        }
        ps_push m = {.clock = clock,
                     .worker = c->cfg.worker,
                     .samples = samples,
                     .nsegs = nsegs,
                     .segs = c->segs};
        int dst = c->cfg.server_ranks[s];
        if ((rc = ps_codec_encode_push(c->codec, &m, &c->out)) ||
            (rc = ps_comm_send(c->comm, dst, PS_TAG_PUSH, &c->out))) {
            return rc;
        }
        for (size_t i = 0; i < nsegs && rc == 0; i++) {
            rc = ps_comm_send_ref(c->comm, dst, PS_TAG_DATA(PS_TAG_PUSH), pay[i],
                                  c->segs[i].nvalues * sizeof(float));
        }
        if (rc) {
            return rc;
        }
    }
    /* grads and the gather buffer are the caller's and ours again once the
     * servers have them; servers never wait on a worker to receive, so
     * this completes while they run. */
    return ps_comm_flush(c->comm, "the servers to take a push's values");
}

static int send_ctrl(ps_client *c, int dst, ps_ctrl_kind kind, int64_t clock, uint64_t value)
{
    ps_ctrl m = {.kind = kind, .worker = c->cfg.worker, .clock = clock, .value = value, .text = ""};
    int rc = ps_codec_encode_ctrl(c->codec, &m, &c->out);
    return rc ? rc : ps_comm_send(c->comm, dst, PS_TAG_CTRL, &c->out);
}

static int send_ctrl_all(ps_client *c, ps_ctrl_kind kind, int64_t clock, uint64_t value)
{
    int rc = 0;
    for (uint32_t s = 0; rc == 0 && s < c->cfg.nservers; s++) {
        rc = send_ctrl(c, c->cfg.server_ranks[s], kind, clock, value);
    }
    return rc;
}

int ps_client_done(ps_client *c, int stopped)
{
    return send_ctrl_all(c, PS_CTRL_DONE, 0, stopped ? 1 : 0);
}

int ps_client_checkpoint(ps_client *c, int64_t clock)
{
    static const char what[] = "checkpoint confirmations from the servers";
    int rc = send_ctrl_all(c, PS_CTRL_CHECKPOINT, clock, 0);
    for (uint32_t got = 0; rc == 0 && got < c->cfg.nservers;) {
        ps_comm_msg m;
        ps_ctrl r;
        if ((rc = ps_comm_wait(c->comm, PS_ANY, PS_ANY, what, &m))) {
            break;
        }
        int s = c->server_of_rank[m.src];
        if (m.tag == PS_TAG_REPLY && s >= 0) {
            /* The next batch's pull is in flight: its replies wait. */
            rc = hold(c, &m);
            continue;
        }
        if (m.tag != PS_TAG_CTRL) {
            rc = unexpected(&m, what);
            break;
        }
        if ((rc = ps_codec_decode_ctrl(c->codec, &c->lim, m.src, m.data, m.len, &r))) {
            break;
        }
        if (r.kind == PS_CTRL_STOP_REQUEST) {
            rc = on_side_ctrl(c, &m, what);
            continue;
        }
        if (r.kind != PS_CTRL_CHECKPOINT_DONE || s < 0 || r.clock != clock) {
            PS_LOG(ERROR, "rank %d answered checkpoint %lld with kind %d clock %lld", m.src,
                   (long long)clock, r.kind, (long long)r.clock);
            rc = PS_EMSG;
        } else if (r.value != 0) {
            PS_LOG(ERROR,
                   "server %d (rank %d) could not write its shard of checkpoint %lld: %s "
                   "(its own error line says which file and why)",
                   s, m.src, (long long)clock, r.text);
            rc = PS_EIO;
        }
        got++;
    }
    return rc;
}

int ps_client_poll(ps_client *c)
{
    static const char what[] = "nothing (between clocks)";
    for (;;) {
        ps_comm_msg m;
        int rc = ps_comm_recv(c->comm, PS_ANY, PS_TAG_CTRL, 0, &m);
        if (rc) {
            return rc == PS_EEOF ? 0 : rc;
        }
        if ((rc = on_side_ctrl(c, &m, what))) {
            return rc;
        }
    }
}

int ps_client_request_stop(ps_client *c)
{
    return send_ctrl(c, c->cfg.coordinator_rank, PS_CTRL_STOP_REQUEST, 0, 0);
}

int ps_client_stop(ps_client *c, int64_t clock)
{
    int rc = send_ctrl_all(c, PS_CTRL_STOP, clock, 0);
    if (rc == 0) {
        c->stop_clock = clock;
    }
    return rc;
}

int64_t ps_client_stop_clock(const ps_client *c)
{
    return c->stop_clock;
}

int ps_client_stop_requested(const ps_client *c)
{
    return c->stop_requested;
}

int ps_plan_inject_bad_key(ps_plan *p)
{
    plan_part *pt = &p->parts[0];
    if (pt->n == 0) {
        return PS_EINVAL;
    }
    pt->slots[pt->n - 1] = (uint64_t)1 << 40;
    find_runs(pt, p->ntables);
    return 0;
}
