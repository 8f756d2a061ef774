#include "data/dataset.h"

#include <string.h>

#include "common/err.h"
#include "common/mem.h"

void ps_dataset_fini(ps_dataset *d)
{
    if (!d) {
        return;
    }
    ps_free(d->x);
    ps_free(d->indptr);
    ps_free(d->idx);
    ps_free(d->val);
    ps_free(d->y);
    memset(d, 0, sizeof *d);
}

ps_batch ps_dataset_view(const ps_dataset *d, size_t first, size_t n)
{
    ps_batch b;
    memset(&b, 0, sizeof b);
    b.n = n;
    b.dim = d->dim;
    b.nclasses = d->nclasses;
    b.sparse = d->sparse;
    if (d->sparse) {
        b.indptr = d->indptr ? d->indptr + first : NULL;
        b.idx = d->idx;
        b.val = d->val;
    } else {
        b.x = d->x ? d->x + first * (size_t)d->dim : NULL;
    }
    b.y = d->y ? d->y + first : NULL;
    return b;
}

/* Reallocates *p to n elements; on failure *p is untouched. */
static int realloc_array(void **p, size_t n, size_t elem)
{
    if (elem && n > SIZE_MAX / elem) {
        return PS_ENOMEM;
    }
    void *q = ps_realloc(*p, n * elem);
    if (!q) {
        return PS_ENOMEM;
    }
    *p = q;
    return 0;
}

int ps_dataset_reserve(ps_dataset *d, size_t rows, size_t nnz)
{
    int rc = 0;
    if (rows > d->n_cap || !d->y) {
        size_t cap = rows > d->n_cap ? rows : d->n_cap;
        /* Each array is grown before n_cap moves, so a failure part-way
         * leaves some arrays larger than n_cap says, which is harmless. */
        if (cap == SIZE_MAX) {
            rc = PS_ENOMEM;
            goto out;
        }
        if (d->sparse) {
            rc = realloc_array((void **)&d->indptr, cap + 1, sizeof *d->indptr);
            if (rc) {
                goto out;
            }
            if (d->n_cap == 0 && d->n == 0) {
                d->indptr[0] = 0;
            }
        } else {
            if (d->dim > SIZE_MAX / (cap ? cap : 1)) {
                rc = PS_ENOMEM;
                goto out;
            }
            rc = realloc_array((void **)&d->x, cap * (size_t)d->dim, sizeof *d->x);
            if (rc) {
                goto out;
            }
        }
        rc = realloc_array((void **)&d->y, cap, sizeof *d->y);
        if (rc) {
            goto out;
        }
        d->n_cap = cap;
    }
    if (d->sparse && (nnz > d->nnz_cap || !d->idx || !d->val)) {
        size_t cap = nnz > d->nnz_cap ? nnz : d->nnz_cap;
        rc = realloc_array((void **)&d->idx, cap, sizeof *d->idx);
        if (rc) {
            goto out;
        }
        rc = realloc_array((void **)&d->val, cap, sizeof *d->val);
        if (rc) {
            goto out;
        }
        d->nnz_cap = cap;
    }
out:
    return rc;
}

int ps_dataset_gather(const ps_dataset *d, const size_t *order, size_t n, ps_dataset *out)
{
    int rc = 0;
    /* Arrays sized for another shape cannot be reused in place. */
    if (out->sparse != d->sparse || (!d->sparse && out->dim != d->dim)) {
        ps_dataset_fini(out);
    }
    out->n = 0;
    out->sparse = d->sparse;
    out->dim = d->dim;
    out->nclasses = d->nclasses;

    size_t nnz = 0;
    if (d->sparse) {
        for (size_t i = 0; i < n; i++) {
            nnz += (size_t)(d->indptr[order[i] + 1] - d->indptr[order[i]]);
        }
    }
    rc = ps_dataset_reserve(out, n, nnz);
    if (rc) {
        goto out;
    }
    if (d->sparse) {
        uint64_t o = 0;
        out->indptr[0] = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t a = d->indptr[order[i]];
            size_t len = (size_t)(d->indptr[order[i] + 1] - a);
            memcpy(out->idx + o, d->idx + a, len * sizeof *out->idx);
            memcpy(out->val + o, d->val + a, len * sizeof *out->val);
            o += len;
            out->indptr[i + 1] = o;
        }
    } else {
        size_t w = (size_t)d->dim;
        for (size_t i = 0; i < n; i++) {
            memcpy(out->x + i * w, d->x + order[i] * w, w * sizeof *out->x);
        }
    }
    for (size_t i = 0; i < n; i++) {
        out->y[i] = d->y ? d->y[order[i]] : 0;
    }
    out->n = n;
out:
    return rc;
}
