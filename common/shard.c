#include "common/shard.h"

#include <string.h>

#include "common/err.h"

/* A 4-round Feistel network over 2*half bits: a keyed bijection, so the
 * hashed layout needs no lookup table. Cycle-walking keeps it inside
 * [0, rows): at most ~4 rounds on average because 2^bits < 4 * rows. */
static uint64_t round_fn(uint64_t x, uint32_t r)
{
    x ^= (uint64_t)r * 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 29)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 32);
}

static uint64_t feistel(uint64_t x, uint32_t bits, int inverse)
{
    uint32_t half = bits / 2;
    uint64_t mask = half ? (((uint64_t)1 << half) - 1) : 0;
    uint64_t l = (x >> half) & mask, r = x & mask;
    for (uint32_t i = 0; i < 4; i++) {
        uint32_t k = inverse ? 3 - i : i;
        if (!inverse) {
            uint64_t t = r;
            r = l ^ (round_fn(r, k) & mask);
            l = t;
        } else {
            uint64_t t = l;
            l = r ^ (round_fn(l, k) & mask);
            r = t;
        }
    }
    return (l << half) | r;
}

static uint64_t permute(const ps_shard *s, uint64_t key, int inverse)
{
    uint64_t x = key;
    do {
        x = feistel(x, s->bits, inverse);
    } while (x >= s->rows);
    return x;
}

int ps_shard_init(ps_shard *s, uint64_t rows, uint32_t nservers, ps_shard_mode mode)
{
    if (rows == 0 || nservers == 0 || (mode != PS_SHARD_RANGE && mode != PS_SHARD_HASH)) {
        return PS_EINVAL;
    }
    memset(s, 0, sizeof *s);
    s->rows = rows;
    s->nservers = nservers;
    s->mode = mode;
    uint32_t bits = 2;
    while (bits < 64 && ((uint64_t)1 << bits) < rows) {
        bits += 2;
    }
    s->bits = bits;
    return 0;
}

/* Range layout: the first rows % n servers hold one extra row. */
static void range_locate(const ps_shard *s, uint64_t key, uint32_t *server, uint64_t *slot)
{
    uint64_t base = s->rows / s->nservers, extra = s->rows % s->nservers;
    uint64_t cut = extra * (base + 1);
    if (key < cut) {
        *server = (uint32_t)(key / (base + 1));
        *slot = key % (base + 1);
    } else {
        *server = (uint32_t)(extra + (key - cut) / base);
        *slot = (key - cut) % base;
    }
}

void ps_shard_locate(const ps_shard *s, uint64_t key, uint32_t *server, uint64_t *slot)
{
    /* One server holds every row at its key: no 64-bit division per key
     * (a worker plans every key of every batch through here). */
    if (s->mode == PS_SHARD_RANGE && s->nservers == 1) {
        *server = 0;
        *slot = key;
        return;
    }
    if (s->mode == PS_SHARD_RANGE) {
        range_locate(s, key, server, slot);
        return;
    }
    uint64_t p = permute(s, key, 0);
    *server = (uint32_t)(p % s->nservers);
    *slot = p / s->nservers;
}

uint32_t ps_shard_server(const ps_shard *s, uint64_t key)
{
    uint32_t server;
    uint64_t slot;
    ps_shard_locate(s, key, &server, &slot);
    return server;
}

uint64_t ps_shard_slot(const ps_shard *s, uint64_t key)
{
    uint32_t server;
    uint64_t slot;
    ps_shard_locate(s, key, &server, &slot);
    return slot;
}

uint64_t ps_shard_count(const ps_shard *s, uint32_t server)
{
    uint64_t base = s->rows / s->nservers, extra = s->rows % s->nservers;
    return base + (server < extra ? 1 : 0);
}

uint64_t ps_shard_key(const ps_shard *s, uint32_t server, uint64_t slot)
{
    if (s->mode == PS_SHARD_RANGE) {
        uint64_t base = s->rows / s->nservers, extra = s->rows % s->nservers;
        if (server < extra) {
            return (uint64_t)server * (base + 1) + slot;
        }
        return extra * (base + 1) + (uint64_t)(server - extra) * base + slot;
    }
    return permute(s, slot * s->nservers + server, 1);
}

int ps_shard_parse_mode(const char *text, ps_shard_mode *out)
{
    if (strcmp(text, "range") == 0) {
        *out = PS_SHARD_RANGE;
    } else if (strcmp(text, "hash") == 0) {
        *out = PS_SHARD_HASH;
    } else {
        return PS_EINVAL;
    }
    return 0;
}

const char *ps_shard_mode_name(ps_shard_mode mode)
{
    static const char *const names[] = {[PS_SHARD_RANGE] = "range", [PS_SHARD_HASH] = "hash"};
    return (unsigned)mode < sizeof names / sizeof names[0] ? names[mode] : "?";
}
