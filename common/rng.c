#include "common/rng.h"

#include <math.h>

#define TWO_PI 6.283185307179586

uint64_t ps_rng_hash(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    /* Each input is folded in after a full mix, so (a, b) and (b, a) differ. */
    uint64_t h = ps_rng_mix64(seed + 0x9e3779b97f4a7c15ULL);
    h = ps_rng_mix64(h ^ (a + 0x632be59bd9b4e019ULL));
    h = ps_rng_mix64(h ^ (b + 0x85157af5ULL * 0x9e3779b97f4a7c15ULL));
    return ps_rng_mix64(h ^ (c + 0xd6e8feb86659fd93ULL));
}

double ps_rng_normal_from(uint64_t x1, uint64_t x2)
{
    double u1 = ps_rng_unit_double(x1);
    double u2 = ps_rng_unit_double(x2);
    return sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
}

/* Box-Muller pair k of the stream: radius and angle from counters 2k, 2k+1
 * (u1 is never 0, so the log is finite). */
static void gauss_pair(uint64_t key, uint64_t k, double *r, double *theta)
{
    *r = sqrt(-2.0 * log(ps_rng_unit_double(ps_rng_counter(key, 2 * k))));
    *theta = TWO_PI * ps_rng_unit_double(ps_rng_counter(key, 2 * k + 1));
}

double ps_rng_gauss(uint64_t key, uint64_t unit)
{
    double r, th;
    gauss_pair(key, unit >> 1, &r, &th);
    return r * ((unit & 1) ? sin(th) : cos(th));
}

void ps_rng_gauss_fill(uint64_t key, uint64_t first_unit, float *out, size_t n)
{
    size_t i = 0;
    uint64_t u = first_unit;
    if (n && (u & 1)) {
        out[i++] = (float)ps_rng_gauss(key, u++);
    }
    for (; i + 2 <= n; i += 2, u += 2) {
        double r, th;
        gauss_pair(key, u >> 1, &r, &th);
        out[i] = (float)(r * cos(th));
        out[i + 1] = (float)(r * sin(th));
    }
    if (i < n) {
        out[i] = (float)ps_rng_gauss(key, u);
    }
}

void ps_rng_seed(ps_rng *r, uint64_t seed)
{
    r->s = ps_rng_mix64(seed ^ 0x5851f42d4c957f2dULL);
}

uint64_t ps_rng_next(ps_rng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return ps_rng_mix64(r->s);
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
