/* Answer: how a server sends pull replies. A reply is a header (common/
 * codec.h) and then each segment's values as payload pieces of `chunk`
 * floats (common/payload.h), each gathered from the store into a pooled
 * buffer and sent (nonblocking) at once, so the worker receives piece k
 * while piece k+1 is gathered. A push applied as a step of its own can
 * stream a reply the same way: it is applied in parts, and after each part
 * the reply's pieces that no later part changes go out, so the worker's
 * receive overlaps the rest of the apply. Pulls for a version that does
 * not exist yet wait here, copied, in arrival order. Not thread-safe. */
#ifndef PS_ANSWER_H
#define PS_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "common/codec.h"
#include "common/comm.h"
#include "common/mem.h"
#include "common/msg.h"
#include "server/segcopy.h"
#include "server/store.h"

/* Floats per reply piece by default: 256 KiB, measured against 16K with
 * bench_pushpull (server/README.md). */
#define PS_ANSWER_CHUNK_DEFAULT ((size_t)1 << 16)

/* A pull waiting for its version. */
typedef struct {
    ps_segcopy st;
    ps_pull pull;
    int src;
} ps_answer_held;

/* Caller-owned; fields are the module's (set up by ps_answer_init). */
typedef struct {
    ps_comm *comm;        /* borrowed */
    ps_codec *codec;      /* borrowed: encodes the headers */
    ps_store *store;      /* borrowed */
    size_t chunk;         /* floats per piece */
    ps_bytes out;         /* a header */
    ps_bytes pay;         /* a piece, pooled through the comm like out */
    ps_seg *segs;         /* a reply's segments, one per table */
    int *push_seg;        /* per table: which segment of the push being applied, or -1 */
    float *row;           /* one row of the widest table: a piece that cuts a row */
    ps_answer_held *held; /* arrival order; slots past nheld keep their storage */
    size_t nheld, cap_held;
} ps_answer;

/* Sets up a to reply from store over comm, encoding with codec (all
 * borrowed until ps_answer_fini), in pieces of chunk floats (0: the
 * default). Returns 0 or PS_ENOMEM (then a needs only ps_answer_fini). */
int ps_answer_init(ps_answer *a, ps_comm *comm, ps_codec *codec, ps_store *store, size_t chunk);
/* Frees what a holds; safe on a zeroed or failed a. */
void ps_answer_fini(ps_answer *a);

/* Sends rank src the reply to pull p (borrowed until return) from the
 * store as it is now, stamped with version and stop_clock. Returns 0,
 * PS_ENOMEM, or what the encoder or a send returned. */
int ps_answer_send(ps_answer *a, const ps_pull *p, int src, int64_t version, int64_t stop_clock);

/* Keeps pull p (borrowed until return) from rank src, copied, until
 * ps_answer_waiting answers it. Returns 0 or PS_ENOMEM. */
int ps_answer_hold(ps_answer *a, const ps_pull *p, int src);
/* Pulls held. */
size_t ps_answer_nheld(const ps_answer *a);
/* Answers every held pull whose min_version <= version, in arrival order
 * (ps_answer_send); the rest keep waiting in their order. Returns 0 or the
 * first send's error. */
int ps_answer_waiting(ps_answer *a, int64_t version, int64_t stop_clock);

/* Gives ps_answer_apply_push a pull of the pushing worker's that no held
 * one precedes (one from the comm, say): *pull (borrowed until the apply
 * returns), or NULL when there is none yet. The apply streams it when
 * this step answers it (min_version at most the step's version; not
 * averaged when the store averages: the caller's to ensure) and holds it
 * otherwise. Returns 0, or an error that ends the apply. */
typedef int (*ps_answer_find_fn)(void *arg, const ps_pull **pull);

typedef struct {
    int src;            /* the pushing worker's rank */
    int64_t version;    /* the version once the push is applied: the reply's */
    int64_t stop_clock; /* the reply's stop stamp */
    ps_answer_find_fn find;
    void *arg;
} ps_answer_step;

/* Applies push p alone as step t (ps_store_apply_push, lazy, nothing
 * accumulated: the same bits) in parts of about chunk floats, whole rows,
 * in segment order. The reply it streams is to rank st->src's oldest held
 * pull if this step answers it (none if a held one asks for a later
 * version: replies go in pull order), else to the pull st->find gives,
 * asked for after each part until it gives one (and while it holds none
 * of src's). Once it has a pull, it sends its header and then, after
 * each part, every piece that no later part of p writes; after the last
 * part the rest. *answered = 1 when the reply went out in full. A part
 * whose step makes a weight non-finite (a non-finite gradient, or the
 * update's overflow: ps_store_push_part's blame) stops the apply and the
 * reply before that part's pieces and returns PS_ENONFINITE (the store and
 * the worker's reply are then half done: only fit to be destroyed).
 * Returns 0, PS_ENOMEM, PS_ENONFINITE, or what find or a send returned. */
int ps_answer_apply_push(ps_answer *a, const ps_push *p, int64_t t, const ps_answer_step *st,
                         int *answered);

#endif
