#include "common/codec.h"

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "adamps.pb-c.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

/* Decoding allocates from a bump arena: protobuf-c's many small allocations
 * (message, segment pointers, each segment, each repeated array) become
 * pointer bumps in one reused chunk, and "free" is a no-op. A decode that
 * needed more than one chunk makes the next reset replace them by one chunk
 * as large as everything that decode used, so a steady stream of messages
 * of similar size allocates nothing. */
#define ARENA_ALIGN 16u
#define ARENA_MIN_CHUNK 4096u

typedef struct arena_chunk {
    struct arena_chunk *next; /* older chunks of the same decode */
    size_t cap;               /* usable bytes from chunk_base() */
    size_t used;
} arena_chunk;

typedef struct {
    arena_chunk *head; /* chunk being filled */
    size_t total;      /* bytes handed out since the last reset */
    size_t want;       /* size of the one chunk to allocate after coalescing */
    int oom;           /* an allocation failed since the last reset */
} arena;

typedef struct {
    uint64_t *slots; /* first, first + 1, ..., first + count - 1 */
    size_t cap;
    uint64_t first, count;
} run_cache;

struct ps_codec {
    arena ar;
    ProtobufCAllocator pa;
    /* encode scratch, grown and reused */
    Adamps__Segment *eseg;
    size_t eseg_cap;
    Adamps__Segment **esegp;
    size_t esegp_cap;
    uint64_t *edelta;
    size_t edelta_cap;
    /* decode output, grown and reused */
    ps_seg *dseg;
    size_t dseg_cap;
    uint64_t *dslot;
    size_t dslot_cap;
    uint64_t *seen; /* seen[t] == gen: table t already had a segment */
    size_t seen_cap;
    uint64_t gen;
    /* Per table, the slots of the last run decoded: a plan sends the same
     * run every step, so it is written out once, not once per message. */
    run_cache *runs;
    size_t runs_cap;
};

typedef enum { MSG_PUSH, MSG_PULL, MSG_REPLY } msg_kind;

static const char *const kind_names[] = {"push", "pull", "reply"};

static uint8_t *chunk_base(arena_chunk *ch)
{
    uintptr_t p = (uintptr_t)(ch + 1);
    return (uint8_t *)((p + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1));
}

static void arena_free_chunks(arena *a)
{
    arena_chunk *ch = a->head;
    while (ch) {
        arena_chunk *next = ch->next;
        ps_free(ch);
        ch = next;
    }
    a->head = NULL;
}

static void arena_reset(arena *a)
{
    if (a->head && a->head->next) {
        a->want = a->total;
        arena_free_chunks(a);
    } else if (a->head) {
        a->head->used = 0;
    }
    a->total = 0;
    a->oom = 0;
}

static void *arena_alloc(void *data, size_t size)
{
    arena *a = data;
    if (size > SIZE_MAX - 2 * ARENA_ALIGN - sizeof(arena_chunk)) {
        a->oom = 1;
        return NULL;
    }
    size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (size == 0) {
        size = ARENA_ALIGN;
    }
    arena_chunk *ch = a->head;
    if (!ch || ch->cap - ch->used < size) {
        size_t cap = a->want > ARENA_MIN_CHUNK ? a->want : ARENA_MIN_CHUNK;
        if (ch && ch->cap <= (SIZE_MAX >> 2) && cap < 2 * ch->cap) {
            cap = 2 * ch->cap;
        }
        if (cap < size) {
            cap = size;
        }
        if (cap > SIZE_MAX - ARENA_ALIGN - sizeof(arena_chunk)) {
            a->oom = 1;
            return NULL;
        }
        arena_chunk *fresh = ps_malloc(sizeof(arena_chunk) + ARENA_ALIGN + cap);
        if (!fresh) {
            a->oom = 1;
            return NULL;
        }
        fresh->next = ch;
        fresh->cap = cap;
        fresh->used = 0;
        a->head = ch = fresh;
    }
    void *p = chunk_base(ch) + ch->used;
    ch->used += size;
    a->total += size;
    return p;
}

/* Memory lives until the next arena_reset; see the note on decoding. */
static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

int ps_codec_create(ps_codec **out)
{
    *out = NULL;
    ps_codec *c = ps_calloc(1, sizeof *c);
    if (!c) {
        return PS_ENOMEM;
    }
    c->pa.alloc = arena_alloc;
    c->pa.free = arena_free;
    c->pa.allocator_data = &c->ar;
    *out = c;
    return 0;
}

void ps_codec_destroy(ps_codec **pc)
{
    if (!pc || !*pc) {
        return;
    }
    ps_codec *c = *pc;
    arena_free_chunks(&c->ar);
    ps_free(c->eseg);
    ps_free(c->esegp);
    ps_free(c->edelta);
    ps_free(c->dseg);
    ps_free(c->dslot);
    ps_free(c->seen);
    for (size_t t = 0; t < c->runs_cap; t++) {
        ps_free(c->runs[t].slots);
    }
    ps_free(c->runs);
    ps_free(c);
    *pc = NULL;
}

/* ps_grow over a typed pointer without aliasing it through void **. */
static int grow(void *arrp, size_t *cap, size_t need, size_t elem)
{
    void *arr;
    memcpy(&arr, arrp, sizeof arr);
    int rc = ps_grow(&arr, cap, need, elem);
    if (rc == 0) {
        memcpy(arrp, &arr, sizeof arr);
    } else {
        PS_LOG(ERROR, "codec: out of memory growing a buffer to %zu x %zu bytes", need, elem);
    }
    return rc;
}

/* ---------------------------------------------------------------- encode */

/* Builds the protobuf segments of m's segs into codec scratch; slots are
 * delta-encoded (first slot, then gaps), values point at the caller's. */
static int encode_segs(ps_codec *c, msg_kind kind, size_t nsegs, const ps_seg *segs)
{
    int rc = 0;
    size_t nkeys = 0;
    if (nsegs && !segs) {
        PS_LOG(ERROR, "encode %s: %zu segments but segs is NULL", kind_names[kind], nsegs);
        rc = PS_EINVAL;
        goto done;
    }
    for (size_t i = 0; i < nsegs; i++) {
        const ps_seg *s = &segs[i];
        if (kind != MSG_REPLY) {
            if (s->nkeys && !s->slots) {
                PS_LOG(ERROR, "encode %s: segment %zu has %zu keys but slots is NULL",
                       kind_names[kind], i, s->nkeys);
                rc = PS_EINVAL;
                goto done;
            }
            if (s->nkeys > SIZE_MAX - nkeys) {
                PS_LOG(ERROR, "encode %s: key count overflows", kind_names[kind]);
                rc = PS_ENOMEM;
                goto done;
            }
            nkeys += s->nkeys;
        }
    }
    if ((rc = grow(&c->eseg, &c->eseg_cap, nsegs, sizeof *c->eseg)) != 0 ||
        (rc = grow(&c->esegp, &c->esegp_cap, nsegs, sizeof *c->esegp)) != 0 ||
        (rc = grow(&c->edelta, &c->edelta_cap, nkeys, sizeof *c->edelta)) != 0) {
        goto done;
    }
    uint64_t *d = c->edelta;
    for (size_t i = 0; i < nsegs; i++) {
        const ps_seg *s = &segs[i];
        Adamps__Segment *e = &c->eseg[i];
        adamps__segment__init(e);
        e->table = s->table;
        if (kind != MSG_REPLY && s->nkeys > 1 && s->run && s->nkeys <= PS_CODEC_MAX_RUN) {
            /* Known gapless: no per-key work at all. */
            e->run_first = s->slots[0];
            e->run_count = s->nkeys;
        } else if (kind != MSG_REPLY && s->nkeys) {
            d[0] = s->slots[0];
            for (size_t k = 1; k < s->nkeys; k++) {
                if (s->slots[k] <= s->slots[k - 1]) {
                    PS_LOG(ERROR,
                           "encode %s: segment %zu table %" PRIu32 " slot %" PRIu64
                           " at key %zu follows %" PRIu64 " (slots must be strictly ascending)",
                           kind_names[kind], i, s->table, s->slots[k], k, s->slots[k - 1]);
                    rc = PS_EINVAL;
                    goto done;
                }
                d[k] = s->slots[k] - s->slots[k - 1];
            }
            if (s->slots[s->nkeys - 1] - s->slots[0] == s->nkeys - 1 && s->nkeys > 1 &&
                s->nkeys <= PS_CODEC_MAX_RUN) {
                /* Ascending with no gaps: two numbers instead of n varints. */
                e->run_first = s->slots[0];
                e->run_count = s->nkeys;
            } else {
                e->n_slot_delta = s->nkeys;
                e->slot_delta = d;
                d += s->nkeys;
            }
        }
        if (kind != MSG_PULL && !s->values) {
            /* The values follow as a payload message (common/msg.h). */
            e->payload = s->nvalues;
        } else if (kind != MSG_PULL) {
            /* protobuf-c only reads values while packing. */
            e->n_values = s->nvalues;
            e->values = (float *)s->values;
        }
        c->esegp[i] = e;
    }
done:
    return rc;
}

static int pack_into(const ProtobufCMessage *msg, ps_bytes *out)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    int rc = grow(&out->data, &out->cap, n ? n : 1, 1);
    if (rc == 0) {
        size_t wrote = protobuf_c_message_pack(msg, out->data);
        PS_ASSERT(wrote == n);
        out->len = n;
    }
    return rc;
}

int ps_codec_encode_push(ps_codec *c, const ps_push *m, ps_bytes *out)
{
    Adamps__Push p = ADAMPS__PUSH__INIT;
    int rc = encode_segs(c, MSG_PUSH, m->nsegs, m->segs);
    if (rc == 0) {
        p.clock = m->clock;
        p.worker = m->worker;
        p.samples = m->samples;
        p.n_segs = m->nsegs;
        p.segs = m->nsegs ? c->esegp : NULL;
        rc = pack_into(&p.base, out);
    }
    return rc;
}

int ps_codec_encode_pull(ps_codec *c, const ps_pull *m, ps_bytes *out)
{
    Adamps__Pull p = ADAMPS__PULL__INIT;
    int rc = encode_segs(c, MSG_PULL, m->nsegs, m->segs);
    if (rc == 0) {
        p.request_id = m->request_id;
        p.min_version = m->min_version;
        p.worker = m->worker;
        p.averaged = m->averaged != 0;
        p.n_segs = m->nsegs;
        p.segs = m->nsegs ? c->esegp : NULL;
        rc = pack_into(&p.base, out);
    }
    return rc;
}

int ps_codec_encode_reply(ps_codec *c, const ps_reply *m, ps_bytes *out)
{
    Adamps__PullReply p = ADAMPS__PULL_REPLY__INIT;
    int rc = encode_segs(c, MSG_REPLY, m->nsegs, m->segs);
    if (rc == 0) {
        p.request_id = m->request_id;
        p.version = m->version;
        p.stop_clock = m->stop_clock;
        p.chunk = m->chunk;
        p.n_segs = m->nsegs;
        p.segs = m->nsegs ? c->esegp : NULL;
        rc = pack_into(&p.base, out);
    }
    return rc;
}

int ps_codec_encode_ctrl(ps_codec *c, const ps_ctrl *m, ps_bytes *out)
{
    (void)c;
    Adamps__Control p = ADAMPS__CONTROL__INIT;
    int rc = 0;
    if ((unsigned)m->kind > (unsigned)PS_CTRL_LAST) {
        PS_LOG(ERROR, "encode ctrl: unknown kind %d", (int)m->kind);
        rc = PS_EINVAL;
        goto done;
    }
    p.kind = (Adamps__Control__Kind)m->kind;
    p.worker = m->worker;
    p.clock = m->clock;
    p.value = m->value;
    p.text = (char *)(m->text ? m->text : "");
    rc = pack_into(&p.base, out);
done:
    return rc;
}

/* ---------------------------------------------------------------- decode */

/* Decoded messages stay in the arena after *__free_unpacked (a no-op with
 * the arena allocator): the out structs point at their values and text, so
 * they stay valid until the next decode resets the arena. */

static const uint8_t empty_buf[1];

/* Starts a decode: checks the arguments that are our callers' business, not
 * the peer's, and resets the arena. */
static int decode_begin(ps_codec *c, const char *what, const ps_msg_limits *lim, int need_lim,
                        const void *buf, size_t len)
{
    if ((need_lim && (!lim || (lim->ntables && !lim->tables))) || (len && !buf)) {
        PS_LOG(ERROR, "decode %s: invalid arguments (limits %p, buf %p, len %zu)", what,
               (const void *)lim, buf, len);
        return PS_EINVAL;
    }
    arena_reset(&c->ar);
    return 0;
}

/* NULL from *__unpack is either our OOM or bytes that do not parse. */
static int unpack_failed(ps_codec *c, const char *what, int sender, size_t len)
{
    if (c->ar.oom) {
        PS_LOG(ERROR, "%s from rank %d: out of memory decoding %zu bytes", what, sender, len);
        return PS_ENOMEM;
    }
    PS_LOG(ERROR, "%s from rank %d: %zu bytes do not parse as a %s message", what, sender, len,
           what);
    return PS_EMSG;
}

/* A peer-supplied worker id must name one of the job's workers. */
static int check_worker(const char *what, int sender, uint32_t worker, uint32_t nworkers)
{
    if (worker >= nworkers) {
        PS_LOG(ERROR, "%s from rank %d: worker %" PRIu32 " >= %" PRIu32 " workers", what, sender,
               worker, nworkers);
        return PS_EMSG;
    }
    return 0;
}

/* Clocks and versions count steps, so a negative one is corrupt. */
static int check_nonneg(const char *what, int sender, const char *field, int64_t v)
{
    if (v < 0) {
        PS_LOG(ERROR, "%s from rank %d: %s %" PRId64 " < 0", what, sender, field, v);
        return PS_EMSG;
    }
    return 0;
}

/* Validates the segments of a push, pull or reply and rebuilds absolute
 * slots into codec arrays; fills c->dseg[0..nsegs). */
/* Why a segment's run of slots cannot be accepted, or NULL. Checked before
 * anything is sized by the count, which the message states but does not
 * pay for in bytes: a push must carry count * width values, and no run may
 * pass its table or PS_CODEC_MAX_RUN (a ten-byte pull must not make the
 * server write gigabytes of slots). */
/* The values a segment states: inline, or announced as a payload. */
static uint64_t seg_values(const Adamps__Segment *e)
{
    return e->payload ? e->payload : e->n_values;
}

static const char *run_problem(const Adamps__Segment *e, const ps_msg_limits *lim, msg_kind kind)
{
    if (e->table >= lim->ntables) {
        return "no such table";
    }
    uint64_t limit = lim->tables[e->table].slots, width = lim->tables[e->table].width;
    if (e->run_count > limit || e->run_first > limit - e->run_count) {
        return "passes the table";
    }
    if (e->run_count > PS_CODEC_MAX_RUN) {
        return "longer than a message may ask for";
    }
    if (kind == MSG_PUSH && e->run_count * width != seg_values(e)) {
        return "value count is not count * width";
    }
    return NULL;
}

/* The slots of run (first, n) of table t, from the table's cache: written
 * only when the run differs from the last one (n <= the table's slots,
 * checked by run_problem, bounds the cache). */
static int run_slots(ps_codec *c, uint32_t t, uint64_t first, size_t n, const uint64_t **out)
{
    run_cache *r = &c->runs[t];
    if (r->first != first || r->count != n || !r->slots) {
        r->count = 0;
        int rc = grow(&r->slots, &r->cap, n, sizeof *r->slots);
        if (rc) {
            return rc;
        }
        for (size_t k = 0; k < n; k++) {
            r->slots[k] = first + k;
        }
        r->first = first;
        r->count = n;
    }
    *out = r->slots;
    return 0;
}

static int decode_segs(ps_codec *c, msg_kind kind, const ps_msg_limits *lim, int sender,
                       size_t nsegs, Adamps__Segment *const *segs)
{
    const char *what = kind_names[kind];
    int rc = 0;
    size_t nkeys = 0;
    for (size_t i = 0; i < nsegs; i++) {
        /* Bounded by the message length, so this cannot wrap in practice;
         * checked anyway because it sizes an allocation. A run's count is
         * not bounded by the length: it counts only when it fits its table
         * (the loop below rejects it otherwise, before any slot is read). */
        uint64_t n = segs[i]->n_slot_delta;
        if (n > SIZE_MAX - nkeys) {
            PS_LOG(ERROR, "%s from rank %d: key count overflows", what, sender);
            rc = PS_ENOMEM;
            goto done;
        }
        nkeys += n;
    }
    if (kind == MSG_REPLY) {
        nkeys = 0;
    }
    if ((rc = grow(&c->dseg, &c->dseg_cap, nsegs, sizeof *c->dseg)) != 0 ||
        (rc = grow(&c->dslot, &c->dslot_cap, nkeys, sizeof *c->dslot)) != 0) {
        goto done;
    }
    if (lim->ntables > c->seen_cap) {
        size_t old = c->seen_cap;
        if ((rc = grow(&c->seen, &c->seen_cap, lim->ntables, sizeof *c->seen)) != 0) {
            goto done;
        }
        memset(c->seen + old, 0, (c->seen_cap - old) * sizeof *c->seen);
    }
    if (lim->ntables > c->runs_cap) {
        size_t old = c->runs_cap;
        if ((rc = grow(&c->runs, &c->runs_cap, lim->ntables, sizeof *c->runs)) != 0) {
            goto done;
        }
        memset(c->runs + old, 0, (c->runs_cap - old) * sizeof *c->runs);
    }
    c->gen++;

    uint64_t *slot = c->dslot;
    for (size_t i = 0; i < nsegs; i++) {
        const Adamps__Segment *e = segs[i];
        ps_seg *s = &c->dseg[i];
        uint32_t t = e->table;
        if (t >= lim->ntables) {
            PS_LOG(ERROR, "%s from rank %d: segment %zu table %" PRIu32 " >= %" PRIu32 " tables",
                   what, sender, i, t, lim->ntables);
            rc = PS_EMSG;
            goto done;
        }
        if (c->seen[t] == c->gen) {
            PS_LOG(ERROR,
                   "%s from rank %d: segment %zu table %" PRIu32
                   " appears twice (at most one segment per table)",
                   what, sender, i, t);
            rc = PS_EMSG;
            goto done;
        }
        c->seen[t] = c->gen;
        uint64_t limit = lim->tables[t].slots;
        uint64_t width = lim->tables[t].width;
        size_t n = e->n_slot_delta;
        if (e->payload && e->n_values) {
            PS_LOG(ERROR,
                   "%s from rank %d: segment %zu table %" PRIu32
                   " has %zu values inline and a payload of %" PRIu64 " (never both)",
                   what, sender, i, t, e->n_values, e->payload);
            rc = PS_EMSG;
            goto done;
        }
        s->table = t;
        s->run = 0;
        s->slots = NULL;
        s->values = NULL;
        s->nvalues = 0;

        if (kind == MSG_REPLY) {
            if (n || e->run_count) {
                PS_LOG(ERROR,
                       "%s from rank %d: segment %zu table %" PRIu32
                       " carries %zu slots (replies carry values only)",
                       what, sender, i, t, n ? n : (size_t)e->run_count);
                rc = PS_EMSG;
                goto done;
            }
            uint64_t nv = seg_values(e);
            /* A zero-width table can only answer with no values; a payload
             * is bounded by the table, since it sizes the receive. */
            if (width ? nv % width != 0 || nv / width > limit : nv != 0) {
                PS_LOG(ERROR,
                       "%s from rank %d: segment %zu table %" PRIu32 " has %" PRIu64
                       " values, not a multiple of width %" PRIu64 " within %" PRIu64 " rows",
                       what, sender, i, t, nv, width, limit);
                rc = PS_EMSG;
                goto done;
            }
            s->nkeys = width ? (size_t)(nv / width) : 0;
            s->values = e->payload ? NULL : e->values;
            s->nvalues = (size_t)nv;
            continue;
        }

        if (e->run_count) {
            if (n) {
                PS_LOG(ERROR,
                       "%s from rank %d: segment %zu table %" PRIu32
                       " has both a run and %zu slot deltas",
                       what, sender, i, t, n);
                rc = PS_EMSG;
                goto done;
            }
            const char *why = run_problem(e, lim, kind);
            if (why) {
                PS_LOG(ERROR,
                       "%s from rank %d: segment %zu table %" PRIu32 " run of %" PRIu64
                       " slots from %" PRIu64 " (%" PRIu64 " slots, %zu values): %s",
                       what, sender, i, t, e->run_count, e->run_first, limit, e->n_values, why);
                rc = PS_EMSG;
                goto done;
            }
            n = (size_t)e->run_count;
            if ((rc = run_slots(c, t, e->run_first, n, &s->slots)) != 0) {
                goto done;
            }
        }
        /* Each slot is checked against the limit before the next delta is
         * added, so the running sum stays below limit and never wraps. */
        const uint64_t *d = e->slot_delta;
        uint64_t prev = 0;
        for (size_t k = 0; k < e->n_slot_delta; k++) {
            uint64_t dk = d[k];
            if (k && dk == 0) {
                PS_LOG(ERROR,
                       "%s from rank %d: segment %zu table %" PRIu32
                       " key %zu repeats slot %" PRIu64 " (slots must be strictly ascending)",
                       what, sender, i, t, k, prev);
                rc = PS_EMSG;
                goto done;
            }
            if (dk >= limit - prev) {
                if (dk > UINT64_MAX - prev) {
                    PS_LOG(ERROR,
                           "%s from rank %d: segment %zu table %" PRIu32
                           " key %zu slot overflows (%" PRIu64 " + delta %" PRIu64 ")",
                           what, sender, i, t, k, prev, dk);
                } else {
                    PS_LOG(ERROR,
                           "%s from rank %d: segment %zu table %" PRIu32 " key %zu slot %" PRIu64
                           " >= %" PRIu64 " slots",
                           what, sender, i, t, k, prev + dk, limit);
                }
                rc = PS_EMSG;
                goto done;
            }
            prev += dk;
            slot[k] = prev;
        }
        s->nkeys = n;
        if (e->n_slot_delta) {
            /* Guarded: slot is NULL while no segment has had keys. */
            s->slots = slot;
            slot += n;
        }

        if (kind == MSG_PULL) {
            if (seg_values(e)) {
                PS_LOG(ERROR,
                       "%s from rank %d: segment %zu table %" PRIu32 " carries %" PRIu64
                       " values (pulls carry keys only)",
                       what, sender, i, t, seg_values(e));
                rc = PS_EMSG;
                goto done;
            }
            continue;
        }
        /* n comes from the message; n * width may not fit in size_t. */
        if ((width && (uint64_t)n > UINT64_MAX / width) || (uint64_t)n * width != seg_values(e)) {
            PS_LOG(ERROR,
                   "%s from rank %d: segment %zu table %" PRIu32 " has %" PRIu64
                   " values for %zu keys of width %" PRIu64,
                   what, sender, i, t, seg_values(e), n, width);
            rc = PS_EMSG;
            goto done;
        }
        s->values = e->payload ? NULL : e->values;
        s->nvalues = (size_t)seg_values(e);
    }
done:
    return rc;
}

int ps_codec_decode_push(ps_codec *c, const ps_msg_limits *lim, int sender, const void *buf,
                         size_t len, ps_push *out)
{
    Adamps__Push *m = NULL;
    int rc = decode_begin(c, "push", lim, 1, buf, len);
    if (rc) {
        goto done;
    }
    m = adamps__push__unpack(&c->pa, len, len ? buf : empty_buf);
    if (!m) {
        rc = unpack_failed(c, "push", sender, len);
        goto done;
    }
    if ((rc = check_nonneg("push", sender, "clock", m->clock)) != 0 ||
        (rc = check_worker("push", sender, m->worker, lim->nworkers)) != 0 ||
        (rc = decode_segs(c, MSG_PUSH, lim, sender, m->n_segs, m->segs)) != 0) {
        goto fail_msg;
    }
    out->clock = m->clock;
    out->worker = m->worker;
    out->samples = m->samples;
    out->nsegs = m->n_segs;
    out->segs = c->dseg;
fail_msg:
    adamps__push__free_unpacked(m, &c->pa);
done:
    return rc;
}

int ps_codec_decode_pull(ps_codec *c, const ps_msg_limits *lim, int sender, const void *buf,
                         size_t len, ps_pull *out)
{
    Adamps__Pull *m = NULL;
    int rc = decode_begin(c, "pull", lim, 1, buf, len);
    if (rc) {
        goto done;
    }
    m = adamps__pull__unpack(&c->pa, len, len ? buf : empty_buf);
    if (!m) {
        rc = unpack_failed(c, "pull", sender, len);
        goto done;
    }
    /* min_version may be negative: SSP's clock - K before clock K means
     * "any version", so it is not checked like a clock. */
    if ((rc = check_worker("pull", sender, m->worker, lim->nworkers)) != 0 ||
        (rc = decode_segs(c, MSG_PULL, lim, sender, m->n_segs, m->segs)) != 0) {
        goto fail_msg;
    }
    out->request_id = m->request_id;
    out->min_version = m->min_version;
    out->worker = m->worker;
    out->averaged = m->averaged ? 1 : 0;
    out->nsegs = m->n_segs;
    out->segs = c->dseg;
fail_msg:
    adamps__pull__free_unpacked(m, &c->pa);
done:
    return rc;
}

int ps_codec_decode_reply(ps_codec *c, const ps_msg_limits *lim, int sender, const void *buf,
                          size_t len, ps_reply *out)
{
    Adamps__PullReply *m = NULL;
    int rc = decode_begin(c, "reply", lim, 1, buf, len);
    if (rc) {
        goto done;
    }
    m = adamps__pull_reply__unpack(&c->pa, len, len ? buf : empty_buf);
    if (!m) {
        rc = unpack_failed(c, "reply", sender, len);
        goto done;
    }
    if ((rc = check_nonneg("reply", sender, "version", m->version)) != 0 ||
        (rc = check_nonneg("reply", sender, "stop_clock", m->stop_clock)) != 0 ||
        (rc = decode_segs(c, MSG_REPLY, lim, sender, m->n_segs, m->segs)) != 0) {
        goto fail_msg;
    }
    out->request_id = m->request_id;
    out->version = m->version;
    out->stop_clock = m->stop_clock;
    out->chunk = (size_t)m->chunk;
    out->nsegs = m->n_segs;
    out->segs = c->dseg;
fail_msg:
    adamps__pull_reply__free_unpacked(m, &c->pa);
done:
    return rc;
}

int ps_codec_decode_ctrl(ps_codec *c, const ps_msg_limits *lim, int sender, const void *buf,
                         size_t len, ps_ctrl *out)
{
    Adamps__Control *m = NULL;
    int rc = decode_begin(c, "ctrl", lim, 0, buf, len);
    if (rc) {
        goto done;
    }
    m = adamps__control__unpack(&c->pa, len, len ? buf : empty_buf);
    if (!m) {
        rc = unpack_failed(c, "ctrl", sender, len);
        goto done;
    }
    /* protobuf-c keeps unknown enum numbers as they came (proto3 enums are
     * open), so the range check is ours. */
    if ((unsigned)m->kind > (unsigned)PS_CTRL_LAST) {
        PS_LOG(ERROR, "ctrl from rank %d: unknown kind %d", sender, (int)m->kind);
        rc = PS_EMSG;
        goto fail_msg;
    }
    if ((rc = check_nonneg("ctrl", sender, "clock", m->clock)) != 0 ||
        (lim && (rc = check_worker("ctrl", sender, m->worker, lim->nworkers)) != 0)) {
        goto fail_msg;
    }
    out->kind = (ps_ctrl_kind)m->kind;
    out->worker = m->worker;
    out->clock = m->clock;
    out->value = m->value;
    out->text = m->text ? m->text : "";
fail_msg:
    adamps__control__free_unpacked(m, &c->pa);
done:
    return rc;
}
