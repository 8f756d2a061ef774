/* Keyset: the distinct feature ids of a sparse batch, ascending, and where
 * each non-zero's id landed among them, the keys a worker pulls and pushes
 * (worker/model.c, ps_model_batch_keys). Two methods behind one call: a
 * bitmap of the id space (one bit set per non-zero, one scan of the words
 * emits the ids already sorted, a prefix popcount gives each position) when
 * the id space is small beside the batch, as 2^20 features for 10^5
 * non-zeros are; an LSD radix sort of (id, index) pairs otherwise. Buffers
 * are sized on first use and reused by every later batch. Not thread-safe:
 * one keyset per model. */
#ifndef PS_KEYSET_H
#define PS_KEYSET_H

#include <stddef.h>
#include <stdint.h>

typedef struct ps_keyset ps_keyset;

typedef enum {
    PS_KEYSET_AUTO = 0, /* bitmap when the id space is small beside the batch */
    PS_KEYSET_BITMAP,
    PS_KEYSET_RADIX,
} ps_keyset_method;

/* Returns 0 and a new keyset in *out (no buffers yet), or PS_ENOMEM; the
 * caller destroys it with ps_keyset_destroy(). */
int ps_keyset_create(ps_keyset **out);
/* Frees s and its buffers; accepts NULL and sets *s = NULL. */
void ps_keyset_destroy(ps_keyset **s);
/* Which method ps_keyset_extract uses (tests; default PS_KEYSET_AUTO). */
void ps_keyset_set_method(ps_keyset *s, ps_keyset_method method);
/* generic = 1: the bitmap runs its generic copy, not the one built for
 * this CPU's popcnt (tests: both give the same result). */
void ps_keyset_set_generic(ps_keyset *s, int generic);

/* The distinct values of ids[0..n-1] (each < dim; the caller checks;
 * n <= UINT32_MAX), ascending, into keys (room for n), their count in
 * *nkeys, and pos[i] = the index in keys of ids[i]. Borrows ids until
 * return. Returns 0 or PS_ENOMEM (logged; keys, pos and *nkeys then hold
 * nothing useful). */
int ps_keyset_extract(ps_keyset *s, const uint64_t *ids, size_t n, uint64_t dim, uint64_t *keys,
                      uint32_t *pos, size_t *nkeys);

#endif
