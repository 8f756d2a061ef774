/* Inverted dropout masks from a counter-based RNG. A unit is kept with
 * probability 1 - p and then scaled by 1 / (1 - p), so the expected
 * activation is unchanged and evaluation needs no rescaling. The decision
 * for a unit is a pure function of (seed, worker, step, unit): the same step
 * replays the same mask (gradient checks, resumed runs) with no state to
 * checkpoint. Per (seed, worker, step) a key is drawn once with ps_rng_hash;
 * units then come four to a 64-bit splitmix64 output (16 bits each), so a
 * mask costs about one multiply-mix per four units and p is resolved to
 * 2^-16. Pure functions, thread-safe. */
#ifndef PS_DROPOUT_H
#define PS_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

/* The mask of one (seed, worker, step) for drop probability p; a value type
 * the caller fills with ps_dropout_init. */
typedef struct {
    uint64_t key;
    uint32_t threshold; /* keep iff the unit's 16 bits < threshold */
    float scale;        /* 1 / (1 - p), or 1 when p <= 0 */
} ps_dropout;

/* Prepares the mask of (seed, worker, step) with drop probability p in
 * [0, 1); p <= 0 keeps every unit. */
void ps_dropout_init(ps_dropout *d, uint64_t seed, uint32_t worker, uint64_t step, float p);
/* 0 (dropped) or d->scale (kept) for one unit. */
float ps_dropout_unit(const ps_dropout *d, uint64_t unit);
/* mask[i] = ps_dropout_unit(d, first_unit + i) for i < n. */
void ps_dropout_fill(const ps_dropout *d, uint64_t first_unit, float *mask, size_t n);

/* Returns 0 or 1 / (1 - p) for one unit: ps_dropout_init + ps_dropout_unit
 * in one call (slow in loops; for tests and one-off use). */
float ps_dropout_scale(uint64_t seed, uint32_t worker, uint64_t step, uint64_t unit, float p);

#endif
