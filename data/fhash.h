/* Feature hashing ("the hashing trick"): maps arbitrary 64-bit feature ids
 * into 2^bits rows of a table with a seeded 64-bit mixer, so a sparse model's
 * size no longer depends on the raw id space. Colliding features in one row
 * are merged by summing their values. Pure functions, thread-safe.
 *
 * The definition, fixed for every build so that a hashed model can be
 * served outside adamps (model.json repeats it; README.md has a Python
 * reference that tests/unit/test_fhash.c checks against this code):
 *
 *     fmix64(k): k ^= k >> 33; k *= 0xff51afd7ed558ccd; k ^= k >> 33;
 *                k *= 0xc4ceb9fe1a85ec53; k ^= k >> 33   (MurmurHash3's
 *                64-bit finaliser; every operation modulo 2^64)
 *     row(id, bits) = fmix64(fmix64(id ^ SEED) + SEED) >> (64 - bits)
 *
 * with SEED = PS_FHASH_SEED and id the 0-based feature id (a libsvm index
 * minus 1, or the index itself with --zero-based). */
#ifndef PS_FHASH_H
#define PS_FHASH_H

#include <stddef.h>
#include <stdint.h>

#define PS_FHASH_MIN_BITS 1u
#define PS_FHASH_MAX_BITS 40u
/* The hash's seed, fixed (see above). */
#define PS_FHASH_SEED 0x2545f4914f6cdd1dULL

/* The definition above as one line of text, for model files. Static. */
const char *ps_fhash_definition(void);

/* Hashed row of feature id in [0, 2^bits), for bits in [1, 40]; the same on
 * every rank and build. bits == 0 returns id unchanged (no hashing). */
uint64_t ps_fhash(uint64_t id, unsigned bits);

/* Returns 0 if bits is a valid --hash-bits value (1..40), else logs why and
 * returns PS_ECONFIG. */
int ps_fhash_check_bits(unsigned bits);

/* Hashes the n ids of one row in place, sorts the row by hashed id and sums
 * the values of ids that collide, so the result is strictly ascending.
 * Returns the new length (<= n). No allocation. */
size_t ps_fhash_row(uint64_t *idx, float *val, size_t n, unsigned bits);

#endif
