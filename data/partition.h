/* Partitioning the training set over workers: each of W workers gets a
 * disjoint block, and the blocks cover the data exactly once per epoch
 * (block distribution: sizes differ by at most one). Indexed data (IDX,
 * synthetic) is split by row, text files (libsvm) by byte, the reader then
 * aligning ranges to line starts. A seeded Fisher-Yates shuffle orders a
 * worker's rows per epoch. Pure functions, thread-safe. */
#ifndef PS_PARTITION_H
#define PS_PARTITION_H

#include <stddef.h>
#include <stdint.h>

/* Rows [*first, *first + *count) of n for worker in [0, nworkers). The first
 * n % nworkers workers get one row more. Returns 0, or PS_EINVAL (logged) for
 * nworkers == 0 or worker >= nworkers. */
int ps_partition_range(size_t n, uint32_t nworkers, uint32_t worker, size_t *first, size_t *count);

/* Bytes [*begin, *end) of a file of file_size bytes for worker, split as
 * ps_partition_range splits rows. Returns 0 or PS_EINVAL (logged). */
int ps_partition_bytes(uint64_t file_size, uint32_t nworkers, uint32_t worker, uint64_t *begin,
                       uint64_t *end);

/* Fills order[0..n) with a permutation of 0..n-1 that depends only on
 * (seed, epoch): Fisher-Yates driven by ps_rng, seeded from both. */
void ps_partition_shuffle(size_t *order, size_t n, uint64_t seed, uint64_t epoch);

#endif
