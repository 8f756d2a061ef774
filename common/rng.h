/* Random numbers. Two flavours:
 * - counter-based: ps_rng_hash(seed, a, b, c) is a pure function of its
 *   inputs, so a dropout mask keyed by (seed, worker, step, unit) or an
 *   initial weight keyed by (seed, table, row, col) is the same on any rank
 *   and after a resume, with no state to save;
 * - a small sequential generator (splitmix64) for shuffles, whose whole state
 *   is one uint64 that checkpoints carry. */
#ifndef PS_RNG_H
#define PS_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s;
} ps_rng;

/* A 64-bit value that depends on every bit of every input. */
uint64_t ps_rng_hash(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
/* Uniform in [0, 1) from a 64-bit value (24 random bits, exact in float). */
static inline float ps_rng_unit_float(uint64_t x)
{
    return (float)(x >> 40) * (1.0f / 16777216.0f);
}
/* Uniform in (0, 1) as double (53 bits, never 0, never 1). */
static inline double ps_rng_unit_double(uint64_t x)
{
    /* (2^53 - 1) + 0.5 rounds to 2^53, which would give exactly 1.0: clamp
     * that one input to the largest double below 1. */
    double u = ((double)(x >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    return u < 1.0 ? u : 1.0 - 1.0 / 9007199254740992.0;
}
/* Standard normal from two 64-bit values (Box-Muller). */
double ps_rng_normal_from(uint64_t x1, uint64_t x2);

void ps_rng_seed(ps_rng *r, uint64_t seed);
uint64_t ps_rng_next(ps_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t ps_rng_below(ps_rng *r, uint64_t n);
double ps_rng_uniform(ps_rng *r);
double ps_rng_normal(ps_rng *r);

#endif
