#include "common/rng.h"

#include <math.h>

/* splitmix64's finaliser: a bijection with full avalanche. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t ps_rng_hash(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    /* Each input is folded in after a full mix, so (a, b) and (b, a) differ. */
    uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ULL);
    h = mix64(h ^ (a + 0x632be59bd9b4e019ULL));
    h = mix64(h ^ (b + 0x85157af5ULL * 0x9e3779b97f4a7c15ULL));
    return mix64(h ^ (c + 0xd6e8feb86659fd93ULL));
}

double ps_rng_normal_from(uint64_t x1, uint64_t x2)
{
    double u1 = ps_rng_unit_double(x1);
    double u2 = ps_rng_unit_double(x2);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void ps_rng_seed(ps_rng *r, uint64_t seed)
{
    r->s = mix64(seed ^ 0x5851f42d4c957f2dULL);
}

uint64_t ps_rng_next(ps_rng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return mix64(r->s);
}

uint64_t ps_rng_below(ps_rng *r, uint64_t n)
{
    /* Rejection keeps the result exactly uniform. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = ps_rng_next(r);
    } while (x >= limit);
    return x % n;
}

double ps_rng_uniform(ps_rng *r)
{
    return ps_rng_unit_double(ps_rng_next(r));
}

double ps_rng_normal(ps_rng *r)
{
    uint64_t a = ps_rng_next(r);
    return ps_rng_normal_from(a, ps_rng_next(r));
}
