/* Data sets and minibatches in memory. A ps_batch is a view (dense rows or
 * CSR sparse rows, plus labels) that the readers fill and the models read;
 * a ps_dataset owns the arrays behind one. Readers: common/idx.h (IDX,
 * gzipped or not), common/libsvm.h (streamed by byte range), common/synth.h
 * (planted sparse model). */
#ifndef PS_DATASET_H
#define PS_DATASET_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t n;     /* samples */
    uint64_t dim; /* features: dense width, or sparse key space */
    uint32_t nclasses;
    int sparse; /* 0: x is n*dim row-major; 1: CSR below */
    const float *x;
    const uint64_t *indptr; /* n + 1 offsets into idx/val; indptr[0] need not be 0
                             * (a view of rows [first, ...) keeps the parent's
                             * idx/val base) */
    const uint64_t *idx;    /* feature ids, ascending within a row, < dim */
    const float *val;
    const int32_t *y; /* labels in [0, nclasses) */
} ps_batch;

/* Owns its arrays (allocated with ps_malloc). */
typedef struct {
    size_t n;
    uint64_t dim;
    uint32_t nclasses;
    int sparse;
    float *x;
    uint64_t *indptr;
    uint64_t *idx;
    float *val;
    size_t nnz_cap; /* capacity of idx/val */
    size_t n_cap;   /* capacity of rows (x rows, indptr - 1, y) */
    int32_t *y;
} ps_dataset;

/* Frees the arrays; the struct is zeroed and can be reused. Accepts NULL. */
void ps_dataset_fini(ps_dataset *d);
/* A view of rows [first, first + n) of d (first + n <= d->n). Borrows d's
 * arrays: valid until d is changed or finalised. A sparse view shares d's
 * idx/val base, so its indptr[0] is d->indptr[first], not 0. */
ps_batch ps_dataset_view(const ps_dataset *d, size_t first, size_t n);
/* Copies rows order[0..n-1] of d into out (reusing out's arrays, growing
 * them as needed): the shuffled minibatch. Returns 0 or PS_ENOMEM. */
int ps_dataset_gather(const ps_dataset *d, const size_t *order, size_t n, ps_dataset *out);
/* Grows d's arrays to hold at least rows rows and (sparse) nnz non-zeros,
 * to exactly that size; never shrinks. Uses d->sparse and d->dim as they are
 * now (dense capacity is rows * dim floats), so set them first. y is always
 * allocated. Returns 0 or PS_ENOMEM (then d's rows, n_cap and nnz_cap are
 * unchanged and d stays valid to use or finalise). */
int ps_dataset_reserve(ps_dataset *d, size_t rows, size_t nnz);

#endif
