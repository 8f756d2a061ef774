/* NumPy .npy export: float32 arrays in .npy format version 1.0 ('<f4', C
 * order, header padded with spaces to a multiple of 64 bytes ending in a
 * newline), loadable with numpy.load. Files are written atomically through
 * common/afile (temp name, fsync, rename), so a reader never sees half an
 * array. Used to export model tables, one file per table, for numpy users;
 * adamps itself reads models from model.bin (worker/export.h). Not
 * collective; thread-safe on distinct writers. */
#ifndef PS_NPY_H
#define PS_NPY_H

#include <stddef.h>
#include <stdint.h>

/* numpy itself allows 32 dimensions in format 1.0 files. */
#define PS_NPY_MAX_DIMS 32

typedef struct ps_npy_writer ps_npy_writer;

/* Writes data (prod(shape) floats, row-major; borrowed) to path as one
 * .npy file with shape[0..ndim). ndim 0 writes a scalar (one float).
 * Returns 0; PS_EINVAL (logged) for ndim outside [0, PS_NPY_MAX_DIMS] or a
 * size that overflows; PS_ENOMEM; PS_EIO (logged with path and strerror;
 * path keeps its old content). */
int ps_npy_write(const char *path, const float *data, const uint64_t *shape, int ndim);

/* Streaming variant for a table written in pieces: opens the temp file and
 * writes the header. On success *out is a new writer that the caller ends
 * with ps_npy_close (publish) or ps_npy_abort (discard). Returns as
 * ps_npy_write. */
int ps_npy_open(ps_npy_writer **out, const char *path, const uint64_t *shape, int ndim);
/* Appends n floats (borrowed). Returns 0; PS_EINVAL (logged, nothing
 * written) when that would exceed prod(shape); PS_EIO (logged). */
int ps_npy_append(ps_npy_writer *w, const float *data, size_t n);
/* Checks that exactly prod(shape) floats were appended, then fsyncs and
 * renames the file into place. Frees the writer and sets *w = NULL whatever
 * happens. Returns 0; PS_EINVAL (logged: count mismatch, nothing published);
 * PS_EIO (logged). */
int ps_npy_close(ps_npy_writer **w);
/* Discards the temp file and frees the writer. Accepts NULL and *w == NULL;
 * sets *w = NULL. */
void ps_npy_abort(ps_npy_writer **w);

/* Bytes before the data in a file that ps_npy_write or ps_npy_open wrote
 * with shape[0..ndim): the header, a multiple of 64. So a reader of our own
 * files (worker/export.c's second pass) needs no dict parser. Returns 0
 * (logged) for a shape ps_npy_open rejects. */
size_t ps_npy_header_bytes(const uint64_t *shape, int ndim);

#endif
