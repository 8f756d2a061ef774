/* libsvm / svmlight text reader, streamed. Lines are
 *     label index:value index:value ...   # comment
 * with `qid:N` tokens ignored, blank and comment-only lines skipped, CRLF and
 * trailing blanks accepted. A plain or gzipped file (data/zread.h: by its
 * first bytes, not its name; offsets are then in the decompressed text). A
 * worker reads only its byte range [begin, end) of the file: a line belongs
 * to the range holding its first byte, so ranges from ps_partition_bytes
 * give every line to exactly one worker. A gzip file cannot be entered at a
 * byte offset without inflating everything before it, so its workers each
 * read the whole stream and keep every nparts-th line instead (opts.part).
 * Rows come back in chunks of at most max_rows, so memory is bounded by the
 * chunk and the longest line, never by the file. Any malformed line is an
 * error (PS_EFORMAT) logged with the file, its true line number and the
 * reason. Numbers are plain decimals: strtod's hex floats (0x1p3), inf,
 * infinity and nan are refused in labels and values. Labels are integers
 * (in int32 range): any set of them, mapped to classes 0..C-1 in ascending
 * order (data/labels.h). A reader is not thread-safe; separate readers
 * are. */
#ifndef PS_LIBSVM_H
#define PS_LIBSVM_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "data/holdout.h"

/* Largest unhashed feature space: an id at or past it is refused (suggesting
 * hashing) whatever dim or max_dim say. */
#define PS_LIBSVM_MAX_DIM ((uint64_t)1 << 40)

typedef struct {
    /* Feature space. dim > 0: an index >= dim (after zero-basing) is an
     * error, or with ignore_past_dim dropped and counted. dim == 0:
     * unknown, chunk->dim becomes max id + 1 seen so far. Ignored when
     * hash_bits > 0, where dim is 2^hash_bits. */
    uint64_t dim;
    /* dim == 0, no hashing: an id >= max_dim is an error, since no table
     * could hold it (0 or above PS_LIBSVM_MAX_DIM: PS_LIBSVM_MAX_DIM). The
     * caller derives it from its memory budget. */
    uint64_t max_dim;
    /* Classes, one of three ways:
     * - labels (nlabels of them, ascending, distinct; copied at open): a
     *   label must be one of them and its class is its index;
     * - labels NULL, nclasses > 0: labels are the class ids 0..nclasses-1;
     * - labels NULL, nclasses 0 (discovery, for probing): every integer
     *   label is taken, its class is its index among the labels this reader
     *   has seen so far (ps_libsvm_labels), so the classes of one call's
     *   rows are consistent with each other but a later call that meets a
     *   new, smaller label shifts them: distributed jobs pass the list. */
    const int32_t *labels;
    uint32_t nlabels;
    uint32_t nclasses;
    /* Appended to the message of a label outside the list (labels given):
     * where the list came from and what to do. Copied at open; may be NULL. */
    const char *labels_hint;
    /* > 0: map feature ids through ps_fhash into 2^hash_bits rows, summing
     * collisions (1..40). */
    unsigned hash_bits;
    /* 0 (default): indices start at 1, as libsvm writes them. */
    int zero_based;
    /* dim > 0, no hashing: an id >= dim is dropped (and counted:
     * ps_libsvm_ignored) instead of refused, as LIBLINEAR's predict does
     * for features the model has never seen. */
    int ignore_past_dim;
    /* nparts >= 2: only the lines whose number within the range (0-based,
     * blank and comment lines counted) is part modulo nparts are parsed;
     * the others are skipped unread. 0 or 1: every line. */
    uint32_t part, nparts;
    /* holdout.fraction > 0: the line starting at byte offset o is held out
     * when ps_holdout_is_held(&holdout, o); holdout_keep 0 skips held-out
     * lines (training), 1 keeps only them (evaluation). */
    ps_holdout holdout;
    int holdout_keep;
} ps_libsvm_opts;

typedef struct ps_libsvm ps_libsvm;

/* Size of path in bytes on disk (compressed, for gzip), for
 * ps_partition_bytes. Returns 0 or PS_EIO. */
int ps_libsvm_file_size(const char *path, uint64_t *size);

/* Opens path for reading the lines that start in [begin, end) (end may be
 * UINT64_MAX or past the end of the file). Copies path and opts (NULL:
 * all defaults). Returns 0
 * and a new reader the caller closes with ps_libsvm_close(), or PS_EIO,
 * PS_EINVAL / PS_ECONFIG (bad range or opts, logged), PS_ENOMEM. */
int ps_libsvm_open(ps_libsvm **out, const char *path, const ps_libsvm_opts *opts, uint64_t begin,
                   uint64_t end);

/* Reads the next up to max_rows (>= 1) rows of the range into chunk, as a
 * sparse dataset (CSR, indices strictly ascending, labels mapped to
 * classes as opts says; chunk->nclasses is the class count). chunk's
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

/* Discovery mode (no labels, no nclasses): the labels seen so far,
 * ascending, in *n (owned by r, valid until the next call on it). Other
 * modes: NULL and 0. */
const int32_t *ps_libsvm_labels(const ps_libsvm *r, size_t *n);

/* With ignore_past_dim: the feature ids dropped so far (OUT *ids) and the
 * rows that lost at least one (OUT *rows). */
void ps_libsvm_ignored(const ps_libsvm *r, uint64_t *ids, uint64_t *rows);

/* 1 if path is gzip (by its first two bytes), 0 if not, in *gz. Returns 0,
 * or PS_EIO (logged) when it cannot be opened or read. */
int ps_libsvm_is_gzip(const char *path, int *gz);

/* Closes the file and frees r; accepts NULL and sets *r = NULL. */
void ps_libsvm_close(ps_libsvm **r);

/* Reads the whole range [begin, end) into out in one go (for test sets that
 * fit in memory). out's old arrays are released on success; on failure out
 * is unchanged. Same returns as ps_libsvm_open / ps_libsvm_next, except that
 * an empty range is 0 with out->n == 0. */
int ps_libsvm_load(const char *path, const ps_libsvm_opts *opts, uint64_t begin, uint64_t end,
                   ps_dataset *out);

#endif
