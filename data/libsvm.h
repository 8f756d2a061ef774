/* libsvm / svmlight text reader, streamed. Lines are
 *     label index:value index:value ...   # comment
 * with `qid:N` tokens ignored, blank and comment-only lines skipped, CRLF and
 * trailing blanks accepted. A worker reads only its byte range [begin, end)
 * of the file: a line belongs to the range holding its first byte, so ranges
 * from ps_partition_bytes give every line to exactly one worker. Rows come
 * back in chunks of at most max_rows, so memory is bounded by the chunk and
 * the longest line, never by the file. Any malformed line is an error
 * (PS_EFORMAT) logged with the file, its true line number and the reason.
 * Numbers are plain decimals: strtod's hex floats (0x1p3), inf, infinity
 * and nan are refused in labels and values. A reader is not thread-safe;
 * separate readers are. */
#ifndef PS_LIBSVM_H
#define PS_LIBSVM_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"

/* Largest unhashed feature space: an id at or past it is refused (suggesting
 * hashing) whatever dim or max_dim say. */
#define PS_LIBSVM_MAX_DIM ((uint64_t)1 << 40)

typedef struct {
    /* Feature space. dim > 0: an index >= dim (after zero-basing) is an
     * error. dim == 0: unknown, chunk->dim becomes max id + 1 seen so far.
     * Ignored when hash_bits > 0, where dim is 2^hash_bits. */
    uint64_t dim;
    /* dim == 0, no hashing: an id >= max_dim is an error, since no table
     * could hold it (0 or above PS_LIBSVM_MAX_DIM: PS_LIBSVM_MAX_DIM). The
     * caller derives it from its memory budget. */
    uint64_t max_dim;
    /* Classes. Labels are class ids 0..C-1, or binary +1/-1 (-1 -> 0, +1 ->
     * 1; 0/1 also work). 0 = infer: chunk->nclasses = max(2, max class + 1)
     * seen by this reader, so distributed jobs should pass it. */
    uint32_t nclasses;
    /* > 0: map feature ids through ps_fhash into 2^hash_bits rows, summing
     * collisions (1..40). */
    unsigned hash_bits;
    /* 0 (default): indices start at 1, as libsvm writes them. */
    int zero_based;
} ps_libsvm_opts;

typedef struct ps_libsvm ps_libsvm;

/* Size of path in bytes, for ps_partition_bytes. Returns 0 or PS_EIO. */
int ps_libsvm_file_size(const char *path, uint64_t *size);

/* Opens path for reading the lines that start in [begin, end) (end may be
 * UINT64_MAX or past the end of the file). Copies path and opts (NULL:
 * all defaults). Returns 0
 * and a new reader the caller closes with ps_libsvm_close(), or PS_EIO,
 * PS_EINVAL / PS_ECONFIG (bad range or opts, logged), PS_ENOMEM. */
int ps_libsvm_open(ps_libsvm **out, const char *path, const ps_libsvm_opts *opts, uint64_t begin,
                   uint64_t end);

/* Reads the next up to max_rows (>= 1) rows of the range into chunk, as a
 * sparse dataset (CSR, indices strictly ascending, labels mapped). chunk's
 * old rows are dropped and its arrays reused; its row capacity never grows
 * past max_rows. Returns 0 with chunk->n >= 1, PS_EEOF when the range is
 * exhausted (chunk->n == 0), PS_EFORMAT on a malformed line (chunk holds the
 * good rows before it; ps_libsvm_error_line() says which line), PS_EIO or
 * PS_ENOMEM. An error is sticky until ps_libsvm_rewind(). */
int ps_libsvm_next(ps_libsvm *r, size_t max_rows, ps_dataset *chunk);

/* Byte offset in the file just past the last row returned: where a range
 * holding exactly the rows read so far would end (the start of the range
 * before any read). */
uint64_t ps_libsvm_offset(const ps_libsvm *r);

/* Goes back to the first line of the range, for the next epoch. Returns 0 or
 * PS_EIO. */
int ps_libsvm_rewind(ps_libsvm *r);

/* 1-based line number in the whole file of the last malformed line, or 0 if
 * there was none. The count of lines before the range is taken only when an
 * error needs it (one streaming pass over the prefix). */
uint64_t ps_libsvm_error_line(const ps_libsvm *r);

/* Closes the file and frees r; accepts NULL and sets *r = NULL. */
void ps_libsvm_close(ps_libsvm **r);

/* Reads the whole range [begin, end) into out in one go (for test sets that
 * fit in memory). out's old arrays are released on success; on failure out
 * is unchanged. Same returns as ps_libsvm_open / ps_libsvm_next, except that
 * an empty range is 0 with out->n == 0. */
int ps_libsvm_load(const char *path, const ps_libsvm_opts *opts, uint64_t begin, uint64_t end,
                   ps_dataset *out);

#endif
