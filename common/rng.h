/* Random numbers. Two flavours:
 * - counter-based: ps_rng_hash(seed, a, b, c) is a pure function of its
 *   inputs, so a dropout mask keyed by (seed, worker, step, unit) or an
 *   initial weight keyed by (seed, table, row, col) is the same on any rank
 *   and after a resume, with no state to save;
 * - a small sequential generator (splitmix64) for shuffles, whose whole state
 *   is one uint64 that checkpoints carry. */
#ifndef PS_RNG_H
#define PS_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s;
} ps_rng;

/* splitmix64's finaliser (Steele, Lea & Flood 2014): a bijection with full
 * avalanche. Shared by every counter stream here and in worker/dropout. */
static inline uint64_t ps_rng_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
/* Output i of the splitmix64 stream whose state starts at key:
 * mix(key + (i + 1) * gamma). Distinct i give independent draws, so a unit
 * of a mask or a noise vector is read directly, with no state to step. */
static inline uint64_t ps_rng_counter(uint64_t key, uint64_t i)
{
    return ps_rng_mix64(key + (i + 1) * 0x9e3779b97f4a7c15ULL);
}

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

/* Counter-based standard normals: number `unit` of the stream with key
 * `key` (a ps_rng_hash of, e.g., (seed, worker, step, stream tag), as
 * worker/dropout keys its masks). Units 2k and 2k + 1 are the cos and sin
 * halves of one Box-Muller pair drawn from counters 2k and 2k + 1, so a
 * unit is a pure function of (key, unit): the same step replays the same
 * noise (gradient checks, resumed runs) with nothing to checkpoint. */
double ps_rng_gauss(uint64_t key, uint64_t unit);
/* out[i] = ps_rng_gauss(key, first_unit + i) rounded to float, i < n; one
 * log, sqrt and sincos per two units. */
void ps_rng_gauss_fill(uint64_t key, uint64_t first_unit, float *out, size_t n);

void ps_rng_seed(ps_rng *r, uint64_t seed);
uint64_t ps_rng_next(ps_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t ps_rng_below(ps_rng *r, uint64_t n);
double ps_rng_uniform(ps_rng *r);
double ps_rng_normal(ps_rng *r);

#endif
