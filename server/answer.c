/* Pull replies in pieces, and a push's apply that streams one
 * (server/answer.h). */
#include "server/answer.h"

#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "common/payload.h"

int ps_answer_init(ps_answer *a, ps_comm *comm, ps_codec *codec, ps_store *store, size_t chunk)
{
    uint32_t nt = ps_store_ntables(store);
    const ps_msg_table *lim = ps_store_limits(store);
    uint32_t wmax = 1;
    for (uint32_t t = 0; t < nt; t++) {
        wmax = lim[t].width > wmax ? lim[t].width : wmax;
    }
    *a = (ps_answer){.comm = comm,
                     .codec = codec,
                     .store = store,
                     .chunk = chunk ? chunk : PS_ANSWER_CHUNK_DEFAULT};
    if (!(a->segs = ps_calloc(nt ? nt : 1, sizeof *a->segs)) ||
        !(a->push_seg = ps_calloc(nt ? nt : 1, sizeof *a->push_seg)) ||
        !(a->row = ps_malloc(wmax * sizeof *a->row))) {
        return PS_ENOMEM;
    }
    return 0;
}

void ps_answer_fini(ps_answer *a)
{
    ps_free(a->out.data);
    ps_free(a->pay.data);
    ps_free(a->segs);
    ps_free(a->push_seg);
    ps_free(a->row);
    for (size_t i = 0; i < a->cap_held; i++) {
        ps_segcopy_fini(&a->held[i].st);
    }
    ps_free(a->held);
    memset(a, 0, sizeof *a);
}

static size_t width_of(const ps_answer *a, uint32_t table)
{
    return ps_store_limits(a->store)[table].width;
}

/* The header: each segment's values announced as a payload in pieces. */
static int send_header(ps_answer *a, const ps_pull *p, int src, int64_t version, int64_t stop_clock)
{
    for (size_t i = 0; i < p->nsegs; i++) {
        const ps_seg *g = &p->segs[i];
        a->segs[i] = (ps_seg){.table = g->table,
                              .nkeys = g->nkeys,
                              .values = NULL,
                              .nvalues = g->nkeys * width_of(a, g->table)};
    }
    ps_reply r = {.request_id = p->request_id,
                  .version = version,
                  .stop_clock = stop_clock,
                  .chunk = a->chunk,
                  .nsegs = p->nsegs,
                  .segs = a->segs};
    int rc = ps_codec_encode_reply(a->codec, &r, &a->out);
    return rc ? rc : ps_comm_send(a->comm, src, PS_TAG_REPLY, &a->out);
}

/* A run of slots with no gaps: its rows are read in place. */
static int is_contiguous(const ps_seg *g)
{
    return g->nkeys == 0 || g->slots[g->nkeys - 1] - g->slots[0] == g->nkeys - 1;
}

/* Floats [from, from + n) of the values segment g of a pull asks for
 * (width w) into dst. A piece may start or end inside a row. */
static void gather(ps_answer *a, const ps_seg *g, size_t w, int averaged, size_t from, size_t n,
                   float *dst)
{
    if (!averaged && is_contiguous(g)) {
        memcpy(dst, ps_store_rows(a->store, g->table, g->slots[0]) + from, n * sizeof(float));
        return;
    }
    for (size_t end = from + n; from < end;) {
        size_t r = from / w, in = from - r * w, nr = (end - from) / w;
        if (in == 0 && nr > 0) {
            ps_store_read(a->store, g->table, g->slots + r, nr, averaged, dst);
            dst += nr * w;
            from += nr * w;
            continue;
        }
        size_t take = w - in < end - from ? w - in : end - from;
        ps_store_read(a->store, g->table, g->slots + r, 1, averaged, a->row);
        memcpy(dst, a->row + in, take * sizeof(float));
        dst += take;
        from += take;
    }
}

/* How far a push's apply has come: segments before seg are applied, and
 * rows [0, row) of seg; done: all of it. */
typedef struct {
    const ps_push *p;
    size_t seg, row;
    int done;
} frontier;

/* Whether a piece whose last row is `slot` of table is final: no part of
 * the push still to come writes a row of it. Rows of a segment go in slot
 * order, so a piece of the segment being applied is final once the rows
 * below the next one to apply cover it. */
static int is_final(const ps_answer *a, const frontier *f, uint32_t table, uint64_t slot)
{
    int ps = f->done ? -1 : a->push_seg[table];
    if (ps < 0 || (size_t)ps < f->seg) {
        return 1;
    }
    if ((size_t)ps > f->seg) {
        return 0;
    }
    const ps_seg *g = &f->p->segs[ps];
    return f->row >= g->nkeys || slot < g->slots[f->row];
}

/* A reply on its way: the next piece to send is piece `piece` of segment
 * `seg` of the pull. */
typedef struct {
    const ps_pull *pull; /* NULL: none yet */
    int src;
    size_t seg, piece;
} stream;

/* Sends the pieces of s, in order, up to the first that is not final. */
static int send_final(ps_answer *a, stream *s, const frontier *f)
{
    const ps_pull *p = s->pull;
    while (s->seg < p->nsegs) {
        const ps_seg *g = &p->segs[s->seg];
        size_t w = width_of(a, g->table), total = g->nkeys * w;
        if (s->piece >= ps_payload_npieces(total, a->chunk)) {
            s->seg++;
            s->piece = 0;
            continue;
        }
        size_t from = s->piece * a->chunk, n = ps_payload_piece(total, a->chunk, s->piece);
        if (!is_final(a, f, g->table, g->slots[(from + n - 1) / w])) {
            return 0;
        }
        int rc = ps_grow((void **)&a->pay.data, &a->pay.cap, n * sizeof(float), 1);
        if (rc) {
            return rc;
        }
        gather(a, g, w, p->averaged, from, n, (float *)(void *)a->pay.data);
        a->pay.len = n * sizeof(float);
        if ((rc = ps_comm_send(a->comm, s->src, PS_TAG_DATA(PS_TAG_REPLY), &a->pay))) {
            return rc;
        }
        s->piece++;
    }
    return 0;
}

int ps_answer_send(ps_answer *a, const ps_pull *p, int src, int64_t version, int64_t stop_clock)
{
    stream s = {.pull = p, .src = src};
    frontier f = {.done = 1};
    int rc = send_header(a, p, src, version, stop_clock);
    return rc ? rc : send_final(a, &s, &f);
}

int ps_answer_hold(ps_answer *a, const ps_pull *p, int src)
{
    /* New slots start empty; slots past nheld keep recycled storage. */
    int rc = PS_GROW_ZEROED(a->held, a->cap_held, a->nheld + 1);
    if (rc) {
        return rc;
    }
    ps_answer_held *h = &a->held[a->nheld];
    if ((rc = ps_segcopy_set(&h->st, p->segs, p->nsegs))) {
        return rc;
    }
    h->pull = *p;
    h->pull.segs = h->st.segs;
    h->src = src;
    a->nheld++;
    return 0;
}

size_t ps_answer_nheld(const ps_answer *a)
{
    return a->nheld;
}

/* Held pull i is answered: the rest keep their order, its slot goes past
 * nheld with its storage. */
static void drop_held(ps_answer *a, size_t i)
{
    ps_answer_held h = a->held[i];
    memmove(a->held + i, a->held + i + 1, (a->nheld - i - 1) * sizeof *a->held);
    a->held[--a->nheld] = h;
}

int ps_answer_waiting(ps_answer *a, int64_t version, int64_t stop_clock)
{
    int rc = 0;
    for (size_t i = 0; i < a->nheld && rc == 0;) {
        ps_answer_held *h = &a->held[i];
        if (h->pull.min_version > version) {
            i++;
        } else if ((rc = ps_answer_send(a, &h->pull, h->src, version, stop_clock)) == 0) {
            drop_held(a, i);
        }
    }
    return rc;
}

/* The oldest held pull of rank src, or SIZE_MAX. */
static size_t held_of(const ps_answer *a, int src)
{
    for (size_t i = 0; i < a->nheld; i++) {
        if (a->held[i].src == src) {
            return i;
        }
    }
    return SIZE_MAX;
}

/* The pull to stream, looked for until one is found: src's oldest held
 * one, else the one find gives, held instead if this step does not answer
 * it. *out stays NULL when there is none (yet); *held: the held one's slot. */
static int pick_pull(ps_answer *a, const ps_answer_step *st, const ps_pull **out, size_t *held)
{
    const ps_pull *p = NULL;
    size_t h = held_of(a, st->src);
    int rc = 0;
    if (h != SIZE_MAX) {
        p = &a->held[h].pull;
    } else if (st->find && (rc = st->find(st->arg, &p)) == 0 && p && p->min_version > st->version) {
        return ps_answer_hold(a, p, st->src); /* src's later pulls wait behind it */
    }
    if (rc == 0 && p && p->min_version <= st->version) {
        *out = p;
        *held = h;
    }
    return rc;
}

/* After a part: the pull to stream, if none yet, and its header once found;
 * then every piece now final. */
static int after_part(ps_answer *a, stream *s, const ps_answer_step *st, const frontier *f,
                      size_t *held)
{
    if (!s->pull) {
        int rc = pick_pull(a, st, &s->pull, held);
        if (rc || !s->pull) {
            return rc;
        }
        s->src = st->src;
        if ((rc = send_header(a, s->pull, s->src, st->version, st->stop_clock))) {
            return rc;
        }
    }
    return send_final(a, s, f);
}

int ps_answer_apply_push(ps_answer *a, const ps_push *p, int64_t t, const ps_answer_step *st,
                         int *answered)
{
    stream s = {0};
    frontier f = {.p = p};
    size_t held = SIZE_MAX;
    *answered = 0;
    for (uint32_t k = 0; k < ps_store_ntables(a->store); k++) {
        a->push_seg[k] = -1;
    }
    for (size_t i = 0; i < p->nsegs; i++) {
        a->push_seg[p->segs[i].table] = (int)i;
    }
    int rc = ps_store_push_begin(a->store, p, t);
    for (size_t i = 0; i < p->nsegs && rc == 0; i++) {
        const ps_seg *g = &p->segs[i];
        size_t w = width_of(a, g->table), rows = (a->chunk + w - 1) / w;
        /* Parts of whole rows that cover a piece each (the same table,
         * same rows asked for), so piece k goes right after part k. */
        for (size_t r0 = 0; r0 < g->nkeys && rc == 0; r0 += rows) {
            size_t r1 = g->nkeys - r0 < rows ? g->nkeys : r0 + rows;
            if ((rc = ps_store_push_part(a->store, p, i, r0, r1))) {
                break; /* before the bad part's pieces go out */
            }
            f.seg = i;
            f.row = r1;
            rc = after_part(a, &s, st, &f, &held);
        }
    }
    if (rc == 0) {
        ps_store_push_end(a->store);
    }
    if (rc == 0 && s.pull) {
        f.done = 1;
        rc = send_final(a, &s, &f);
        *answered = rc == 0;
    }
    if (*answered && held != SIZE_MAX) {
        drop_held(a, held);
    }
    return rc;
}
