#include "server/server.h"

#include <string.h>

#include "common/codec.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "server/snapshot.h"

/* A message kept for later: a BSP push waiting for its clock's other pushes,
 * or a pull waiting for its version. Buffers are reused, never freed early. */
typedef struct {
    ps_bytes bytes;
    int src;
    int used;
} held_msg;

typedef struct {
    const ps_server_cfg *cfg;
    ps_comm *comm;
    ps_store *store;
    ps_codec *codec;
    ps_msg_limits lim;
    int64_t version;   /* clocks pushed by every worker */
    int64_t *pushed;   /* per worker: pushes received */
    held_msg *held;    /* BSP: per worker, its push for clock `version` if early */
    uint32_t next_w;   /* BSP: the next worker whose push is added */
    held_msg *pulls;   /* pulls waiting for a newer version */
    size_t npulls, cap_pulls;
    uint32_t ndone;
    int64_t ckpt_clock; /* a CHECKPOINT waiting for its version, or -1 */
    int ckpt_src;
    ps_bytes out;
    float *vals;       /* reply values scratch */
    size_t cap_vals;
    ps_seg *segs;      /* reply segments scratch, one per table */
} server;

static int copy_msg(held_msg *h, const ps_comm_msg *m)
{
    int rc = ps_grow((void **)&h->bytes.data, &h->bytes.cap, m->len ? m->len : 1, 1);
    if (rc) {
        return rc;
    }
    memcpy(h->bytes.data, m->data, m->len);
    h->bytes.len = m->len;
    h->src = m->src;
    h->used = 1;
    return 0;
}

/* The sender must be the rank the push or pull claims to come from. */
static int check_worker(server *s, int src, uint32_t worker, const char *kind)
{
    if (s->cfg->worker_ranks[worker] != src) {
        PS_LOG(ERROR, "%s from rank %d claims to be worker %u (rank %d)", kind, src, worker,
               s->cfg->worker_ranks[worker]);
        return PS_EMSG;
    }
    return 0;
}

/* A run of slots with no gaps: sent straight from the store, no copy. */
static int is_contiguous(const ps_seg *g)
{
    return g->nkeys == 0 || g->slots[g->nkeys - 1] - g->slots[0] == g->nkeys - 1;
}

static int answer_pull(server *s, const ps_pull *p, int src)
{
    size_t total = 0;
    for (size_t i = 0; i < p->nsegs; i++) {
        total += p->segs[i].nkeys * s->lim.tables[p->segs[i].table].width;
    }
    int rc = ps_grow((void **)&s->vals, &s->cap_vals, total, sizeof(float));
    if (rc) {
        return rc;
    }
    size_t off = 0;
    for (size_t i = 0; i < p->nsegs; i++) {
        const ps_seg *g = &p->segs[i];
        size_t n = g->nkeys * s->lim.tables[g->table].width;
        const float *vals = s->vals + off;
        if (!p->averaged && g->nkeys && is_contiguous(g)) {
            vals = ps_store_rows(s->store, g->table, g->slots[0]);
        } else {
            ps_store_read(s->store, g->table, g->slots, g->nkeys, p->averaged, s->vals + off);
            off += n;
        }
        s->segs[i] = (ps_seg){.table = g->table, .nkeys = g->nkeys, .values = vals, .nvalues = n};
    }
    ps_reply r = {.request_id = p->request_id, .version = s->version, .nsegs = p->nsegs,
                  .segs = s->segs};
    if ((rc = ps_codec_encode_reply(s->codec, &r, &s->out))) {
        return rc;
    }
    return ps_comm_send(s->comm, src, PS_TAG_REPLY, &s->out);
}

/* Answers every held pull whose version now exists. */
static int answer_waiting(server *s)
{
    for (size_t i = 0; i < s->npulls; i++) {
        held_msg *h = &s->pulls[i];
        ps_pull p;
        int rc = ps_codec_decode_pull(s->codec, &s->lim, h->src, h->bytes.data, h->bytes.len, &p);
        if (rc) {
            return rc;
        }
        if (p.min_version > s->version) {
            continue;
        }
        if ((rc = answer_pull(s, &p, h->src))) {
            return rc;
        }
        /* Swap the answered slot with the last; keep its buffer for reuse. */
        held_msg done = *h;
        *h = s->pulls[--s->npulls];
        s->pulls[s->npulls] = done;
        s->pulls[s->npulls].used = 0;
        i--;
    }
    return 0;
}

/* Writes the shard once the requested clock is reached. Under BSP the
 * coordinator's next push comes after its request, so the version is then
 * exactly the requested clock: a consistent snapshot. Under SSP/ASP updates
 * of later clocks may already be in. */
static int maybe_checkpoint(server *s)
{
    if (s->ckpt_clock < 0 || s->version < s->ckpt_clock) {
        return 0;
    }
    int rc = ps_snapshot_save(s->store, s->cfg->ckpt_dir, s->ckpt_clock, s->cfg->opt_name,
                              s->cfg->nworkers, s->cfg->config_text);
    ps_ctrl done = {.kind = PS_CTRL_CHECKPOINT_DONE, .clock = s->ckpt_clock, .text = ""};
    s->ckpt_clock = -1;
    if (rc == 0 && (rc = ps_codec_encode_ctrl(s->codec, &done, &s->out)) == 0) {
        rc = ps_comm_send(s->comm, s->ckpt_src, PS_TAG_CTRL, &s->out);
    }
    return rc;
}

static int64_t min_pushed(const server *s)
{
    int64_t v = s->pushed[0];
    for (uint32_t w = 1; w < s->cfg->nworkers; w++) {
        v = s->pushed[w] < v ? s->pushed[w] : v;
    }
    return v;
}

/* BSP: adds the pushes of clock `version` in worker order, never arrival
 * order, so runs are bit-identical. The push of the next worker in order is
 * added as it arrives (with one worker, nothing is ever held); one that
 * comes early waits in held[] until its turn. After the last worker's, the
 * clock is applied as one step. p is worker next_w's push, or NULL. */
static int bsp_advance(server *s, const ps_push *p)
{
    float scale = 1.0f / (float)s->cfg->nworkers;
    if (p && s->cfg->nworkers == 1 && s->cfg->store.lazy) {
        /* One worker: its push is the whole clock (scale 1). */
        s->next_w = 0;
        s->version++;
        return ps_store_apply_push(s->store, p, s->version);
    }
    if (p) {
        ps_store_accumulate(s->store, p, scale);
        s->next_w++;
    }
    while (s->next_w < s->cfg->nworkers && s->held[s->next_w].used) {
        held_msg *h = &s->held[s->next_w];
        if (h->bytes.len) {
            ps_push q;
            int rc = ps_codec_decode_push(s->codec, &s->lim, h->src, h->bytes.data, h->bytes.len,
                                          &q);
            if (rc) {
                return rc;
            }
            ps_store_accumulate(s->store, &q, scale);
        }
        h->used = 0;
        s->next_w++;
    }
    if (s->next_w < s->cfg->nworkers) {
        return 0;
    }
    int rc = ps_store_apply(s->store, s->version + 1);
    if (rc) {
        return rc;
    }
    s->next_w = 0;
    s->version++;
    return 0;
}

static int on_push(server *s, const ps_comm_msg *m)
{
    ps_push p;
    int rc = ps_codec_decode_push(s->codec, &s->lim, m->src, m->data, m->len, &p);
    if (rc || (rc = check_worker(s, m->src, p.worker, "push"))) {
        return rc;
    }
    if (p.clock != s->pushed[p.worker]) {
        PS_LOG(ERROR, "push from rank %d (worker %u) is for clock %lld, expected clock %lld",
               m->src, p.worker, (long long)p.clock, (long long)s->pushed[p.worker]);
        return PS_EMSG;
    }
    int drop = 0;
    if ((rc = ps_store_check_finite(s->store, &p))) {
        if (!s->cfg->nonfinite_skip) {
            return rc;
        }
        PS_LOG(WARN, "dropping the gradients of worker %u for clock %lld (--nonfinite skip)",
               p.worker, (long long)p.clock);
        drop = 1;
    }
    s->pushed[p.worker]++;
    if (s->cfg->sync == PS_SYNC_BSP) {
        if (p.clock != s->version) {
            PS_LOG(ERROR, "push from rank %d (worker %u) for clock %lld runs ahead of clock %lld "
                          "under BSP",
                   m->src, p.worker, (long long)p.clock, (long long)s->version);
            return PS_EMSG;
        }
        if (p.worker == s->next_w) {
            if (drop) {
                s->next_w++;
            }
            rc = bsp_advance(s, drop ? NULL : &p);
        } else if ((rc = copy_msg(&s->held[p.worker], m)) == 0 && drop) {
            s->held[p.worker].bytes.len = 0; /* its turn adds nothing */
        }
        if (rc) {
            return rc;
        }
    } else {
        if (!drop) {
            int64_t t = ps_store_step(s->store) + 1;
            if (s->cfg->store.lazy) {
                rc = ps_store_apply_push(s->store, &p, t);
            } else {
                ps_store_accumulate(s->store, &p, 1.0f);
                rc = ps_store_apply(s->store, t);
            }
            if (rc) {
                return rc;
            }
        }
        s->version = min_pushed(s);
    }
    if ((rc = maybe_checkpoint(s))) {
        return rc;
    }
    return answer_waiting(s);
}

static int on_pull(server *s, const ps_comm_msg *m)
{
    ps_pull p;
    int rc = ps_codec_decode_pull(s->codec, &s->lim, m->src, m->data, m->len, &p);
    if (rc || (rc = check_worker(s, m->src, p.worker, "pull"))) {
        return rc;
    }
    if (p.min_version <= s->version) {
        return answer_pull(s, &p, m->src);
    }
    size_t old_cap = s->cap_pulls;
    if ((rc = PS_GROW(s->pulls, s->cap_pulls, s->npulls + 1))) {
        return rc;
    }
    /* New slots start empty; slots past npulls keep recycled buffers. */
    memset(s->pulls + old_cap, 0, (s->cap_pulls - old_cap) * sizeof *s->pulls);
    held_msg *h = &s->pulls[s->npulls];
    if ((rc = copy_msg(h, m))) {
        return rc;
    }
    s->npulls++;
    return 0;
}

static int on_ctrl(server *s, const ps_comm_msg *m)
{
    ps_ctrl c;
    int rc = ps_codec_decode_ctrl(s->codec, &s->lim, m->src, m->data, m->len, &c);
    if (rc || (rc = check_worker(s, m->src, c.worker, "control"))) {
        return rc;
    }
    switch (c.kind) {
    case PS_CTRL_DONE:
        s->ndone++;
        return 0;
    case PS_CTRL_CHECKPOINT:
        if (!s->cfg->ckpt_dir || !s->cfg->ckpt_dir[0]) {
            PS_LOG(ERROR, "checkpoint request from rank %d, but no --checkpoint-dir", m->src);
            return PS_EMSG;
        }
        s->ckpt_clock = c.clock;
        s->ckpt_src = m->src;
        return maybe_checkpoint(s);
    case PS_CTRL_ERROR:
        PS_LOG(ERROR, "worker %u (rank %d) failed: %s", c.worker, m->src, c.text);
        return PS_EPEER;
    default:
        PS_LOG(ERROR, "control message of kind %d from rank %d is not for a server", c.kind,
               m->src);
        return PS_EMSG;
    }
}

static void server_fini(server *s)
{
    for (uint32_t w = 0; s->held && w < s->cfg->nworkers; w++) {
        ps_free(s->held[w].bytes.data);
    }
    for (size_t i = 0; s->pulls && i < s->cap_pulls; i++) {
        ps_free(s->pulls[i].bytes.data);
    }
    ps_free(s->held);
    ps_free(s->pulls);
    ps_free(s->pushed);
    ps_free(s->out.data);
    ps_free(s->vals);
    ps_free(s->segs);
    ps_codec_destroy(&s->codec);
    ps_store_destroy(&s->store);
}

int ps_server_run(const ps_server_cfg *cfg, ps_comm *comm)
{
    server s = {.cfg = cfg, .comm = comm, .ckpt_clock = -1};
    int rc = ps_store_create(&s.store, &cfg->store);
    if (rc == 0 && (ps_codec_create(&s.codec) ||
                    !(s.pushed = ps_calloc(cfg->nworkers, sizeof *s.pushed)) ||
                    !(s.held = ps_calloc(cfg->nworkers, sizeof *s.held)) ||
                    !(s.segs = ps_calloc(cfg->store.ntables, sizeof *s.segs)))) {
        rc = PS_ENOMEM;
    }
    if (rc == 0 && cfg->resume_clock >= 0) {
        rc = ps_snapshot_load(s.store, cfg->ckpt_dir, cfg->resume_clock, cfg->resume_nservers,
                              cfg->opt_name);
        s.version = cfg->resume_clock;
        for (uint32_t w = 0; s.pushed && w < cfg->nworkers; w++) {
            s.pushed[w] = cfg->resume_clock;
        }
    }
    /* Start-up handshake: nobody sends before every rank is ready. */
    if ((rc = ps_comm_agree(comm, rc))) {
        goto done;
    }
    s.lim = (ps_msg_limits){.tables = ps_store_limits(s.store),
                              .ntables = cfg->store.ntables,
                              .nworkers = cfg->nworkers};
    rc = 0;
    while (rc == 0 && s.ndone < cfg->nworkers) {
        ps_comm_msg m;
        if ((rc = ps_comm_recv(comm, PS_ANY, PS_ANY, 1, &m))) {
            break;
        }
        switch (m.tag) {
        case PS_TAG_PUSH:
            rc = on_push(&s, &m);
            break;
        case PS_TAG_PULL:
            rc = on_pull(&s, &m);
            break;
        case PS_TAG_CTRL:
            rc = on_ctrl(&s, &m);
            break;
        default:
            PS_LOG(ERROR, "message with unknown tag %d from rank %d", m.tag, m.src);
            rc = PS_EMSG;
        }
    }
    if (rc == 0 && s.npulls) {
        PS_LOG(ERROR, "all workers are done but %zu pulls still wait for a newer version",
               s.npulls);
        rc = PS_EMSG;
    }
done:
    server_fini(&s);
    return rc;
}
