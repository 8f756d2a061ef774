#include "worker/dropout.h"

#include "common/rng.h"

/* Four units per output of the key's splitmix64 counter stream, so
 * four-unit groups are independent draws. */
static inline uint64_t group_bits(uint64_t key, uint64_t group)
{
    return ps_rng_counter(key, group);
}

void ps_dropout_init(ps_dropout *d, uint64_t seed, uint32_t worker, uint64_t step, float p)
{
    /* The trailing constant names the dropout stream of the hash. */
    d->key = ps_rng_hash(seed, worker, step, 0x64726f706f7574ULL);
    if (p <= 0.0f) {
        d->threshold = 1u << 16; /* every 16-bit value is below */
        d->scale = 1.0f;
        return;
    }
    d->threshold = (uint32_t)((1.0 - (double)p) * 65536.0 + 0.5);
    d->scale = 1.0f / (1.0f - p);
}

float ps_dropout_unit(const ps_dropout *d, uint64_t unit)
{
    uint32_t bits = (uint32_t)(group_bits(d->key, unit >> 2) >> (16 * (unit & 3))) & 0xffffu;
    return bits < d->threshold ? d->scale : 0.0f;
}

void ps_dropout_fill(const ps_dropout *d, uint64_t first_unit, float *mask, size_t n)
{
    size_t i = 0;
    uint64_t u = first_unit;
    for (; i < n && (u & 3); i++, u++) {
        mask[i] = ps_dropout_unit(d, u);
    }
    const uint32_t thr = d->threshold;
    const float s = d->scale;
    for (; i + 4 <= n; i += 4, u += 4) {
        uint64_t h = group_bits(d->key, u >> 2);
        mask[i] = (uint32_t)(h & 0xffffu) < thr ? s : 0.0f;
        mask[i + 1] = (uint32_t)((h >> 16) & 0xffffu) < thr ? s : 0.0f;
        mask[i + 2] = (uint32_t)((h >> 32) & 0xffffu) < thr ? s : 0.0f;
        mask[i + 3] = (uint32_t)(h >> 48) < thr ? s : 0.0f;
    }
    for (; i < n; i++, u++) {
        mask[i] = ps_dropout_unit(d, u);
    }
}

float ps_dropout_scale(uint64_t seed, uint32_t worker, uint64_t step, uint64_t unit, float p)
{
    ps_dropout d;
    ps_dropout_init(&d, seed, worker, step, p);
    return ps_dropout_unit(&d, unit);
}
