/* Holdout: which training samples `--holdout FRACTION` sets aside for
 * evaluation. Each sample is held out on its own, by a seeded hash of a key
 * that names it whatever the number of workers: its row number for indexed
 * data (IDX, synthetic), the byte offset of its line for libsvm text (in
 * the decompressed stream for a gzip file). So the split is deterministic
 * for a seed, the same on every rank, needs no list, and the held-out count
 * is about FRACTION of the samples (a binomial draw, not an exact count).
 * The training side skips held-out samples and the evaluation side keeps
 * only them, so the two are disjoint and cover the data. Pure functions
 * and in-place filters; thread-safe on distinct data sets. */
#ifndef PS_HOLDOUT_H
#define PS_HOLDOUT_H

#include <stdint.h>

#include "data/dataset.h"

typedef struct {
    double fraction; /* in [0, 1); 0: nothing is held out */
    uint64_t seed;
} ps_holdout;

/* 1 if the sample named key is held out under h, else 0. */
int ps_holdout_is_held(const ps_holdout *h, uint64_t key);

/* Keeps, in place and in order, the rows i of d for which
 * ps_holdout_is_held(h, first_key + i) equals keep_held (1: the held-out
 * rows, for evaluation; 0: the others, for training). d's arrays are not
 * reallocated; d->n shrinks. A sparse d is compacted so that indptr[0] is
 * where it was. No allocation, no failure. */
void ps_holdout_filter(const ps_holdout *h, ps_dataset *d, uint64_t first_key, int keep_held);

/* Appends the rows of src to dst (same sparse flag and, dense, the same
 * dim; dst may be empty and zeroed: it takes src's shape), growing dst's
 * arrays. Returns 0 or PS_ENOMEM (dst then holds what it held before). */
int ps_holdout_append(ps_dataset *dst, const ps_dataset *src);

#endif
