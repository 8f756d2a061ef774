#include "data/fhash.h"

#include "common/err.h"
#include "common/log.h"

/* Fixed, so a model trained with --hash-bits B can be served elsewhere. */
#define FHASH_SEED PS_FHASH_SEED

const char *ps_fhash_definition(void)
{
    return "row = fmix64((fmix64(id ^ seed) + seed) mod 2^64) >> (64 - bits), where fmix64(k) is "
           "MurmurHash3's 64-bit finaliser (k ^= k >> 33; k *= 0xff51afd7ed558ccd; k ^= k >> 33; "
           "k *= 0xc4ceb9fe1a85ec53; k ^= k >> 33; all modulo 2^64) and id is the 0-based "
           "feature id (a libsvm index minus 1, or the index itself with zero_based); the "
           "values of ids that share a row are summed";
}

/* Murmur3's 64-bit finaliser: full avalanche, a bijection on 64 bits. */
static inline uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

uint64_t ps_fhash(uint64_t id, unsigned bits)
{
    if (bits == 0) {
        return id;
    }
    /* Two rounds with the seed folded in between: one round of a bijection
     * would map consecutive ids to a fixed lattice of high bits. The top
     * bits are the best mixed, so they index the table. */
    uint64_t h = fmix64(fmix64(id ^ FHASH_SEED) + FHASH_SEED);
    return h >> (64u - bits);
}

int ps_fhash_check_bits(unsigned bits)
{
    if (bits < PS_FHASH_MIN_BITS || bits > PS_FHASH_MAX_BITS) {
        PS_LOG(ERROR, "hash bits %u out of range [%u, %u]", bits, PS_FHASH_MIN_BITS,
               PS_FHASH_MAX_BITS);
        return PS_ECONFIG;
    }
    return 0;
}

static inline void swap_pair(uint64_t *idx, float *val, size_t a, size_t b)
{
    uint64_t t = idx[a];
    idx[a] = idx[b];
    idx[b] = t;
    float v = val[a];
    val[a] = val[b];
    val[b] = v;
}

static void sift_down(uint64_t *idx, float *val, size_t root, size_t n)
{
    for (;;) {
        size_t c = 2 * root + 1;
        if (c >= n) {
            return;
        }
        if (c + 1 < n && idx[c + 1] > idx[c]) {
            c++;
        }
        if (idx[root] >= idx[c]) {
            return;
        }
        swap_pair(idx, val, root, c);
        root = c;
    }
}

/* Rows are short, so insertion sort; heapsort bounds long rows at n log n
 * without allocating. */
static void sort_pairs(uint64_t *idx, float *val, size_t n)
{
    if (n <= 32) {
        for (size_t i = 1; i < n; i++) {
            uint64_t k = idx[i];
            float v = val[i];
            size_t j = i;
            while (j > 0 && idx[j - 1] > k) {
                idx[j] = idx[j - 1];
                val[j] = val[j - 1];
                j--;
            }
            idx[j] = k;
            val[j] = v;
        }
        return;
    }
    for (size_t i = n / 2; i-- > 0;) {
        sift_down(idx, val, i, n);
    }
    for (size_t end = n - 1; end > 0; end--) {
        swap_pair(idx, val, 0, end);
        sift_down(idx, val, 0, end);
    }
}

size_t ps_fhash_row(uint64_t *idx, float *val, size_t n, unsigned bits)
{
    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        idx[i] = ps_fhash(idx[i], bits);
    }
    sort_pairs(idx, val, n);
    size_t o = 0;
    for (size_t i = 1; i < n; i++) {
        if (idx[i] == idx[o]) {
            val[o] += val[i];
        } else {
            o++;
            idx[o] = idx[i];
            val[o] = val[i];
        }
    }
    return o + 1;
}
