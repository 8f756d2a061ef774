#include "data/holdout.h"

#include <string.h>

#include "common/err.h"
#include "common/rng.h"

/* Tags the holdout's stream so it never equals another use of the seed
 * (shuffles, dropout, initial weights). */
#define HOLDOUT_TAG 0x484f4c444f5554ULL /* "HOLDOUT" */

int ps_holdout_is_held(const ps_holdout *h, uint64_t key)
{
    if (!(h->fraction > 0)) {
        return 0;
    }
    /* u in (0, 1) from 53 bits: held with probability fraction. */
    return ps_rng_unit_double(ps_rng_hash(h->seed, HOLDOUT_TAG, key, 0)) < h->fraction;
}

void ps_holdout_filter(const ps_holdout *h, ps_dataset *d, uint64_t first_key, int keep_held)
{
    size_t o = 0;
    uint64_t to = d->sparse && d->indptr ? d->indptr[0] : 0;
    size_t w = d->sparse ? 0 : (size_t)d->dim;
    for (size_t i = 0; i < d->n; i++) {
        if (ps_holdout_is_held(h, first_key + i) != (keep_held != 0)) {
            continue;
        }
        if (d->sparse) {
            uint64_t from = d->indptr[i], len = d->indptr[i + 1] - from;
            memmove(d->idx + to, d->idx + from, (size_t)len * sizeof *d->idx);
            memmove(d->val + to, d->val + from, (size_t)len * sizeof *d->val);
            /* indptr[o] is already `to`: row o starts where row o-1 ended. */
            d->indptr[o] = to;
            to += len;
        } else if (o != i) {
            memmove(d->x + o * w, d->x + i * w, w * sizeof *d->x);
        }
        d->y[o] = d->y[i];
        o++;
    }
    if (d->sparse && d->indptr) {
        d->indptr[o] = to;
    }
    d->n = o;
}

int ps_holdout_append(ps_dataset *dst, const ps_dataset *src)
{
    if (dst->n == 0 && dst->n_cap == 0) {
        dst->sparse = src->sparse;
        dst->dim = src->dim;
    }
    dst->nclasses = src->nclasses > dst->nclasses ? src->nclasses : dst->nclasses;
    if (src->n == 0) {
        return 0;
    }
    uint64_t base = dst->sparse && dst->indptr ? dst->indptr[dst->n] : 0;
    uint64_t nnz = src->sparse ? src->indptr[src->n] - src->indptr[0] : 0;
    if (dst->n > SIZE_MAX - src->n) {
        return PS_ENOMEM;
    }
    size_t rows = dst->n + src->n;
    /* Doubling, so appending chunk after chunk stays linear. */
    size_t rcap = rows > dst->n_cap ? (rows > 2 * dst->n_cap ? rows : 2 * dst->n_cap) : dst->n_cap;
    size_t ncap = dst->nnz_cap;
    if (dst->sparse && base + nnz > ncap) {
        ncap = base + nnz > 2 * ncap ? (size_t)(base + nnz) : 2 * ncap;
    }
    int rc = ps_dataset_reserve(dst, rcap, ncap);
    if (rc) {
        return rc;
    }
    if (dst->sparse) {
        uint64_t a = src->indptr[0];
        memcpy(dst->idx + base, src->idx + a, (size_t)nnz * sizeof *dst->idx);
        memcpy(dst->val + base, src->val + a, (size_t)nnz * sizeof *dst->val);
        for (size_t i = 0; i < src->n; i++) {
            dst->indptr[dst->n + i + 1] = base + (src->indptr[i + 1] - a);
        }
    } else {
        size_t w = (size_t)dst->dim;
        memcpy(dst->x + dst->n * w, src->x, src->n * w * sizeof *dst->x);
    }
    memcpy(dst->y + dst->n, src->y, src->n * sizeof *dst->y);
    dst->n = rows;
    return 0;
}
