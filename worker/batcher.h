/* Batcher: a worker's minibatch for each clock. Clock c of a run with E
 * batches per epoch is batch c % E of epoch c / E; a worker with fewer
 * rows than the largest part gets a short or empty last batch, so every
 * worker pushes every clock.
 *
 * In memory (IDX, synthetic, libsvm that fits): the worker's whole part is
 * loaded and reshuffled every epoch (seed, worker, epoch).
 * Streamed (libsvm, --stream on, or auto when a part exceeds 1 GiB): the
 * part is read in chunks of batch * 64 rows, each chunk shuffled on its
 * own (seed, worker, epoch, chunk), so memory stays bounded whatever the
 * file size; one pass at open counts the rows.
 * Either way a batch is a pure function of (seed, worker, clock), which is
 * what lets a resumed run replay the same batches. Not thread-safe. */
#ifndef PS_BATCHER_H
#define PS_BATCHER_H

#include <stdint.h>

#include "data/dataset.h"
#include "data/source.h"

typedef struct ps_batcher ps_batcher;

/* Streamed or in memory (see above). */
typedef enum { PS_STREAM_OFF = 0, PS_STREAM_ON = 1, PS_STREAM_AUTO = 2 } ps_stream_mode;

typedef struct {
    uint32_t batch; /* rows per batch, >= 1 */
    int shuffle;    /* 1: a new order every epoch; 0: file order */
    uint64_t seed;
    ps_stream_mode stream; /* only libsvm sources stream; the others are held */
} ps_batcher_cfg;

/* Opens worker's part of src's training data. Copies cfg and src, but
 * borrows src's strings until ps_batcher_destroy. Returns 0, or the
 * reader's error (logged with the file name and line). Destroy with
 * ps_batcher_destroy. */
int ps_batcher_create(ps_batcher **out, const ps_batcher_cfg *cfg, const ps_source_cfg *src,
                      const ps_source_spec *spec, uint32_t worker, uint32_t nworkers);
void ps_batcher_destroy(ps_batcher **b);

/* Rows in this worker's part. */
uint64_t ps_batcher_rows(const ps_batcher *b);
/* 1 if the part is streamed rather than held in memory. */
int ps_batcher_streamed(const ps_batcher *b);
/* Fills out with the batch of clock (batches_per_epoch per epoch), reusing
 * out's arrays. Clocks usually come in order; any other order rereads the
 * stream from the start of the epoch. Returns 0 or a reader error. */
int ps_batcher_get(ps_batcher *b, uint64_t clock, uint64_t batches_per_epoch, ps_dataset *out);
/* --eval-train: the first n samples (at most the part) of this worker's
 * part (of nworkers; spec as at create), in file order, no shuffle, into
 * out. The part is the first block of the training set for worker 0
 * (rows for IDX and synthetic data, bytes for libsvm), so for the former
 * these are the set's first n rows; a libsvm part is read from the start
 * of its byte range. Returns 0 or a reader error. */
int ps_batcher_head(const ps_batcher *b, const ps_source_spec *spec, uint32_t nworkers, uint64_t n,
                    ps_dataset *out);

#endif
