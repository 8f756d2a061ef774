/* Store: one server's shard of every table — parameters w, the optimizer's
 * state (Adam's m and v, ...), an optional temporal average, the gradient
 * being accumulated for the next step, and per row the last step that
 * updated it. Everything is allocated once at create time (aligned) except
 * the lazy-mode scratch, which grows to its high-water mark and stays.
 *
 * Steps: pushes are accumulated (ps_store_accumulate, any number, each with
 * a scale) and then applied as one optimizer step (ps_store_apply). In dense
 * mode every row steps (untouched rows with g = 0: exact Adam); in lazy mode
 * only rows some push touched (LazyAdam / SparseAdam semantics, bias
 * correction with the global step). The L2 penalty is added here, once per
 * row per step (l2 * w on every row the step updates), so it does not depend
 * on how many workers touched a row. After a step the weights it updated are
 * checked finite, so an overflow is reported where it happens. The temporal
 * average is kept in double. Not thread-safe. */
#ifndef PS_STORE_H
#define PS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/msg.h"
#include "common/shard.h"
#include "common/table.h"
#include "server/optim.h"

typedef struct ps_store ps_store;

typedef struct {
    const ps_table_desc *tables; /* borrowed until create returns */
    uint32_t ntables;
    uint32_t server; /* this shard's index in [0, nservers) */
    uint32_t nservers;
    ps_shard_mode shard;
    ps_opt_hp hp;
    int lazy;           /* 1 lazy, 0 dense */
    float avg_beta;     /* temporal averaging (section 7.2); 0 = off */
    uint64_t seed;      /* initial values: ps_table_init_row(seed, ...) */
    float l2;           /* >= 0: every step adds l2 * w to the gradient of each row of a table
                           in l2_tables that it updates (0.5 * l2 * ||w||^2 on those rows) */
    uint64_t l2_tables; /* bit t: table t (< 64) takes l2 (weights; not biases) */
} ps_store_cfg;

/* Returns a new store with every row initialised; the caller destroys it
 * with ps_store_destroy. PS_ENOMEM or PS_EINVAL (empty table, width 0). */
int ps_store_create(ps_store **out, const ps_store_cfg *cfg);
/* Accepts NULL and *s == NULL; sets *s = NULL. */
void ps_store_destroy(ps_store **s);

/* Per-table {width, slots on this server}, for validating messages. */
const ps_msg_table *ps_store_limits(const ps_store *s);
uint32_t ps_store_ntables(const ps_store *s);
const ps_shard *ps_store_shard(const ps_store *s, uint32_t table);
const ps_table_desc *ps_store_table(const ps_store *s, uint32_t table);
/* This shard's server index. */
uint32_t ps_store_server(const ps_store *s);

/* Returns 0 if every value in p is finite; otherwise logs the first bad one
 * (worker, table name, global key, clock) and returns PS_ENONFINITE. p must
 * have been decoded against ps_store_limits. */
int ps_store_check_finite(const ps_store *s, const ps_push *p);
/* Adds scale * values of p into the pending gradient. Summation order is the
 * call order, so BSP calls it in worker order for bit-identical runs. */
void ps_store_accumulate(ps_store *s, const ps_push *p, float scale);
/* Applies scale * (the pending gradient), plus the L2 term, as step t
 * (t >= 1) and clears it; scale 1 is exact (BSP's weights, server.c). Then
 * checks the weights the step updated. Returns 0; PS_ENOMEM (lazy scratch
 * could not grow; nothing was applied); PS_ENONFINITE when the step made a
 * weight NaN or infinite, logged with this server's index, the table, key,
 * column and step (the step is applied in full; the store is then only fit
 * to destroy). */
int ps_store_apply_scaled(ps_store *s, int64_t t, float scale);
/* ps_store_apply_scaled with scale 1. */
int ps_store_apply(ps_store *s, int64_t t);
/* Lazy mode with nothing accumulated: applies p alone as step t straight
 * from its arrays (no pending-gradient pass; a copy only for the L2 term).
 * Identical to accumulating p with scale 1 and applying; for ASP/SSP and
 * single-worker BSP. p's gradients need not be checked first: a step that
 * makes a weight non-finite stops after the segment that did and returns
 * PS_ENONFINITE, logged as ps_store_check_finite does when a gradient of
 * that segment is non-finite, else as the update's overflow (the store is
 * then only fit to destroy). */
int ps_store_apply_push(ps_store *s, const ps_push *p, int64_t t);
/* ps_store_apply_push in parts, so a caller can send rows as soon as they
 * are stepped (server/answer.h): begin (PS_ENOMEM, with nothing applied, or
 * 0), then part for every row range [r0, r1) of every segment seg of p,
 * each row exactly once, in any order, then end. A part returns 0 or
 * PS_ENONFINITE as ps_store_apply_push does, for its own rows; after that,
 * stop. The result is the same bit for bit however the rows are cut;
 * gapless rows of a part step in one pass over the arrays. p stays
 * borrowed from begin to end. */
int ps_store_push_begin(ps_store *s, const ps_push *p, int64_t t);
int ps_store_push_part(ps_store *s, const ps_push *p, size_t seg, size_t r0, size_t r1);
void ps_store_push_end(ps_store *s);
/* Last step applied (0 before the first). */
int64_t ps_store_step(const ps_store *s);

/* Copies rows slots[0..n) of table into out (n * width floats): w, or with
 * averaged the bias-corrected temporal average (w itself when averaging is
 * off or no step has run). */
void ps_store_read(const ps_store *s, uint32_t table, const uint64_t *slots, size_t n, int averaged,
                   float *out);

/* Rows [slot, slot + n) of table's w, in place: a pull of a contiguous run
 * is encoded straight from here with no copy. Valid until the next apply. */
const float *ps_store_rows(const ps_store *s, uint32_t table, uint64_t slot);

/* Raw arrays of one table for checkpoints: w, state[0..nstate), avg (in
 * double; NULL when off), last-update step per row (kept only with
 * averaging, its one reader; all 0 without). */
typedef struct {
    uint64_t nslots;
    uint32_t width;
    int nstate;
    float *w;
    float *state[3];
    double *avg;
    int64_t *last_step;
} ps_store_arrays;
void ps_store_arrays_get(ps_store *s, uint32_t table, ps_store_arrays *out);
/* Sets the step counter (resume). */
void ps_store_set_step(ps_store *s, int64_t t);

#endif
