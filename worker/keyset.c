/* Keyset (worker/keyset.h): bitmap or radix sort, sized once, reused. */
#include "worker/keyset.h"

#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

/* Radix digit: 2^11 counters fit in L1. */
#define RADIX_BITS 11
#define RADIX_SIZE (1u << RADIX_BITS)
/* The bitmap's scan costs one step per 64 ids of the space, its set and
 * rank steps one per non-zero: worth it while the words are at most this
 * many per non-zero (plus a floor so small batches of a small space use
 * it too), and while the bitmap and its prefix counts stay this small. */
#define BITMAP_WORDS_PER_NNZ 4
#define BITMAP_MIN_WORDS 4096
#define BITMAP_MAX_BYTES (64u << 20)

struct ps_keyset {
    ps_keyset_method method;
    int generic;      /* tests: no CPU-specific copy */
    uint64_t *bits;   /* all zero between calls */
    uint32_t *prefix; /* set ids in the words before each word */
    size_t bits_cap, prefix_cap;
    uint64_t *sort_id[2]; /* radix: (id, index) pairs, ping-pong */
    uint32_t *sort_k[2];
    size_t id_cap[2], k_cap[2];
    uint32_t hist[RADIX_SIZE];
};

int ps_keyset_create(ps_keyset **out)
{
    *out = ps_calloc(1, sizeof **out);
    return *out ? 0 : PS_ENOMEM;
}

void ps_keyset_destroy(ps_keyset **ps)
{
    if (!ps || !*ps) {
        return;
    }
    ps_keyset *s = *ps;
    ps_free(s->bits);
    ps_free(s->prefix);
    for (int i = 0; i < 2; i++) {
        ps_free(s->sort_id[i]);
        ps_free(s->sort_k[i]);
    }
    ps_free(s);
    *ps = NULL;
}

void ps_keyset_set_method(ps_keyset *s, ps_keyset_method method)
{
    s->method = method;
}

void ps_keyset_set_generic(ps_keyset *s, int generic)
{
    s->generic = generic;
}

/* The bitmap's three passes over the batch: set a bit per non-zero; one
 * scan of the words emits the ids ascending and each word's prefix count;
 * each non-zero's position is its word's prefix plus the set bits below it.
 * Inlined into a copy built for the popcnt instruction and a generic one:
 * without -mpopcnt gcc makes __builtin_popcountll a libgcc call, a tenth
 * of the extraction. Both give the same numbers (integer math). */
static inline __attribute__((always_inline)) size_t
bitmap_passes(uint64_t *restrict bits, uint32_t *restrict prefix, size_t words,
              const uint64_t *restrict ids, size_t n, uint64_t *restrict keys,
              uint32_t *restrict pos)
{
    for (size_t i = 0; i < n; i++) {
        bits[ids[i] >> 6] |= UINT64_C(1) << (ids[i] & 63);
    }
    uint32_t count = 0;
    for (size_t w = 0; w < words; w++) {
        prefix[w] = count;
        for (uint64_t x = bits[w]; x; x &= x - 1) {
            keys[count++] = (uint64_t)w * 64 + (uint64_t)__builtin_ctzll(x);
        }
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t id = ids[i], below = (UINT64_C(1) << (id & 63)) - 1;
        pos[i] = prefix[id >> 6] + (uint32_t)__builtin_popcountll(bits[id >> 6] & below);
    }
    return count;
}

typedef size_t (*bitmap_fn)(uint64_t *restrict, uint32_t *restrict, size_t,
                            const uint64_t *restrict, size_t, uint64_t *restrict,
                            uint32_t *restrict);

static size_t bitmap_generic(uint64_t *restrict bits, uint32_t *restrict prefix, size_t words,
                             const uint64_t *restrict ids, size_t n, uint64_t *restrict keys,
                             uint32_t *restrict pos)
{
    return bitmap_passes(bits, prefix, words, ids, n, keys, pos);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_POPCNT_CLONE 1
__attribute__((target("popcnt"))) static size_t
bitmap_popcnt(uint64_t *restrict bits, uint32_t *restrict prefix, size_t words,
              const uint64_t *restrict ids, size_t n, uint64_t *restrict keys,
              uint32_t *restrict pos)
{
    return bitmap_passes(bits, prefix, words, ids, n, keys, pos);
}
#endif

/* The copy for this CPU, or the generic one when forced (tests). */
static bitmap_fn pick_bitmap(int generic)
{
#ifdef HAVE_POPCNT_CLONE
    if (!generic && __builtin_cpu_supports("popcnt")) {
        return bitmap_popcnt;
    }
#endif
    (void)generic;
    return bitmap_generic;
}

static int by_bitmap(ps_keyset *s, const uint64_t *ids, size_t n, uint64_t dim, uint64_t *keys,
                     uint32_t *pos, size_t *nkeys)
{
    size_t words = (size_t)((dim + 63) / 64);
    /* New words start clear; old ones were cleared by the last call. */
    if (PS_GROW_ZEROED(s->bits, s->bits_cap, words)) {
        return PS_ENOMEM;
    }
    if (PS_GROW(s->prefix, s->prefix_cap, words)) {
        return PS_ENOMEM;
    }
    uint64_t *bits = s->bits;
    *nkeys = pick_bitmap(s->generic)(bits, s->prefix, words, ids, n, keys, pos);
    /* Leave every word clear for the next batch, by whichever is fewer. */
    if (words <= n) {
        memset(bits, 0, words * sizeof *bits);
    } else {
        for (size_t i = 0; i < n; i++) {
            bits[ids[i] >> 6] = 0;
        }
    }
    return 0;
}

/* LSD radix sort of (id, index) pairs on the bits below 2^nbits,
 * RADIX_BITS per pass; passes where every id shares the digit are skipped.
 * Returns which buffer (0 or 1) holds the result. */
static int radix_sort(ps_keyset *s, size_t n, unsigned nbits)
{
    int cur = 0;
    uint32_t *h = s->hist;
    for (unsigned shift = 0; shift < nbits; shift += RADIX_BITS) {
        const uint64_t *id = s->sort_id[cur];
        const uint32_t *kk = s->sort_k[cur];
        uint64_t *id2 = s->sort_id[!cur];
        uint32_t *kk2 = s->sort_k[!cur];
        memset(h, 0, sizeof s->hist);
        for (size_t i = 0; i < n; i++) {
            h[(id[i] >> shift) & (RADIX_SIZE - 1)]++;
        }
        if (h[(id[0] >> shift) & (RADIX_SIZE - 1)] == n) {
            continue;
        }
        uint32_t sum = 0;
        for (uint32_t d = 0; d < RADIX_SIZE; d++) {
            uint32_t c = h[d];
            h[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            uint32_t at = h[(id[i] >> shift) & (RADIX_SIZE - 1)]++;
            id2[at] = id[i];
            kk2[at] = kk[i];
        }
        cur = !cur;
    }
    return cur;
}

static int by_radix(ps_keyset *s, const uint64_t *ids, size_t n, uint64_t *keys, uint32_t *pos,
                    size_t *nkeys)
{
    for (int i = 0; i < 2; i++) {
        if (PS_GROW(s->sort_id[i], s->id_cap[i], n) || PS_GROW(s->sort_k[i], s->k_cap[i], n)) {
            return PS_ENOMEM;
        }
    }
    uint64_t maxid = 0;
    for (size_t i = 0; i < n; i++) {
        s->sort_id[0][i] = ids[i];
        s->sort_k[0][i] = (uint32_t)i;
        maxid = ids[i] > maxid ? ids[i] : maxid;
    }
    unsigned nbits = 0;
    while (nbits < 64 && (maxid >> nbits)) {
        nbits++;
    }
    int cur = radix_sort(s, n, nbits);
    const uint64_t *id = s->sort_id[cur];
    const uint32_t *kk = s->sort_k[cur];
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || id[i] != id[i - 1]) {
            keys[count++] = id[i];
        }
        pos[kk[i]] = (uint32_t)(count - 1);
    }
    *nkeys = count;
    return 0;
}

int ps_keyset_extract(ps_keyset *s, const uint64_t *ids, size_t n, uint64_t dim, uint64_t *keys,
                      uint32_t *pos, size_t *nkeys)
{
    *nkeys = 0;
    if (n == 0) {
        return 0;
    }
    uint64_t words = (dim + 63) / 64;
    int bitmap = s->method == PS_KEYSET_BITMAP ||
                 (s->method == PS_KEYSET_AUTO && words * 12 <= BITMAP_MAX_BYTES &&
                  words <= (uint64_t)n * BITMAP_WORDS_PER_NNZ + BITMAP_MIN_WORDS);
    int rc = bitmap ? by_bitmap(s, ids, n, dim, keys, pos, nkeys)
                    : by_radix(s, ids, n, keys, pos, nkeys);
    if (rc) {
        PS_LOG(ERROR, "batch keys: out of memory for %zu non-zeros over %llu ids (%s)", n,
               (unsigned long long)dim, bitmap ? "bitmap" : "radix sort");
    }
    return rc;
}
