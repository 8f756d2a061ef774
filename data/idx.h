/* IDX reader (the MNIST / Fashion-MNIST format), gzipped or plain: zlib's
 * gzread reads both. A rank loads only its row range [first, first + count):
 * earlier rows are skipped, later ones never read. Images become dense float
 * rows scaled x / 255 into [0, 1]; a paired labels file fills y. Only the
 * unsigned-byte type (0x08) is supported, which is what MNIST-style sets use.
 * Not thread-safe on the same dataset; independent calls are. */
#ifndef PS_IDX_H
#define PS_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"

/* Classes of MNIST and Fashion-MNIST; ps_idx_load's default. */
#define PS_IDX_NCLASSES 10u
/* Largest accepted row width (elements per sample): anything bigger is a
 * corrupt header, not a real image. */
#define PS_IDX_MAX_DIM ((size_t)1 << 28)

/* Reads only the header of path: *n samples, *dim elements per sample
 * (product of the dimensions after the first; 1 for a labels file).
 * Returns 0, PS_EIO (cannot open/read) or PS_EFORMAT (bad header), logged
 * with the path. */
int ps_idx_probe(const char *path, size_t *n, size_t *dim);

/* Loads images [first, first + count) of path into out as dense rows in
 * [0, 1]; count == SIZE_MAX means "to the end". y is allocated and zeroed,
 * nclasses is 0 (no labels). out's previous arrays are released on success;
 * on failure out is unchanged. Returns 0, PS_EIO, PS_EFORMAT (bad header or
 * truncated file), PS_ERANGE (range past the end) or PS_ENOMEM. */
int ps_idx_load_images(const char *path, size_t first, size_t count, ps_dataset *out);

/* ps_idx_load_images plus labels [first, first + count) from labels into
 * out->y, with nclasses = PS_IDX_NCLASSES (10). The two files must agree on
 * the sample count, and every label read must be < 10. Same returns. */
int ps_idx_load(const char *images, const char *labels, size_t first, size_t count,
                ps_dataset *out);

/* As ps_idx_load with a given number of classes (>= 2) for other IDX sets
 * (e.g. EMNIST letters). */
int ps_idx_load_classes(const char *images, const char *labels, size_t first, size_t count,
                        uint32_t nclasses, ps_dataset *out);

#endif
