/* Synthetic sparse classification data for scaling studies: N rows over F
 * features whose frequencies follow Zipf's law (feature id k - 1 has
 * probability ~ k^-s, so id 0 is the most frequent), K distinct non-zeros
 * per row (value 1), and C classes drawn from a planted linear model:
 * y = argmax_c (sum_f w[f][c] + noise * Gumbel_c), w ~ N(0, 1) keyed by
 * (seed, f, c). With noise = 1 this samples y from softmax(W^T x), the
 * multinomial logistic model itself. Everything is counter-based on the
 * seed and row number, so any row range [first, first + count) is generated
 * directly, identical to the same rows of a bigger range: each worker makes
 * its own part. Zipf draws use rejection-inversion (Hormann & Derflinger
 * 1996): O(1) per draw, no table, so F up to 2^40 works. Thread-safe. */
#ifndef PS_SYNTH_H
#define PS_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"

typedef struct {
    uint64_t n;         /* rows */
    uint64_t nfeatures; /* F, 1..2^40 */
    uint32_t nnz;       /* K distinct features per row, 1..min(F, 2^20) */
    uint32_t nclasses;  /* C, 2..2^16 */
    double zipf_s;      /* Zipf exponent s in [0, 10]; 0 is uniform */
    double noise;       /* Gumbel noise scale >= 0; 0: labels are the argmax */
    uint64_t seed;
} ps_synth_cfg;

/* Defaults: n 100000, F 2^20, K 20, C 10, s 1.1, noise 1, seed 1. */
void ps_synth_cfg_default(ps_synth_cfg *cfg);

/* Returns 0 if cfg is usable, else logs the bad field and returns
 * PS_ECONFIG. */
int ps_synth_check(const ps_synth_cfg *cfg);

/* Generates rows [first, first + count) (first + count <= cfg->n) into out
 * as a sparse dataset: dim F, nclasses C, ascending ids, values 1. out's old
 * arrays are released on success; on failure out is unchanged. Returns 0,
 * PS_ECONFIG, PS_ERANGE or PS_ENOMEM. */
int ps_synth_generate(const ps_synth_cfg *cfg, uint64_t first, size_t count, ps_dataset *out);

/* The planted weight w[feature][cls], a pure function of the seed. */
double ps_synth_weight(const ps_synth_cfg *cfg, uint64_t feature, uint32_t cls);

/* Writes all cfg->n rows to path as one-based libsvm text (`label id:1 ...`),
 * streaming in chunks. The file appears atomically: it is written to a
 * temporary name beside path, fsynced and renamed, so a crash never leaves
 * a half file under path. Returns 0, PS_ECONFIG, PS_EIO (logged with the
 * path) or PS_ENOMEM. */
int ps_synth_write_libsvm(const ps_synth_cfg *cfg, const char *path);

#endif
