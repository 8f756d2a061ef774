/* IDX reader (the MNIST / Fashion-MNIST format), gzipped or plain (the
 * first bytes decide, data/zread.h). A rank loads only its row range
 * [first, first + count): earlier rows are skipped, later ones never read.
 * Images become dense float rows scaled x / 255 into [0, 1]; a paired labels
 * file fills y. Only the unsigned-byte type (0x08) is supported, which is
 * what MNIST-style sets use.
 *
 * A header is never trusted with memory: a plain file must hold exactly the
 * bytes its header promises (fewer: truncated; more: trailing bytes), checked
 * against the file's size before anything is allocated; a gzip file's length
 * is unknown until it is inflated, so its rows are allocated as they arrive
 * and a short stream fails at the read, and a load that reaches the last
 * sample also checks that nothing follows it. Every error names the file.
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

/* Deflate expands at most 1032:1, so a gzip file of C bytes holds at most
 * about 1032 * C data bytes: a header promising more is refused unread. */
#define PS_IDX_GZ_MAX_RATIO 1032u

/* Reads the header of path: *n samples, *dim elements per sample (product of
 * the dimensions after the first; 1 for a labels file), and checks the size
 * it promises against the file: exactly, for a plain file; for a gzip file,
 * within PS_IDX_GZ_MAX_RATIO times its size (its true length is checked as
 * it is read). Reads nothing past the header. Returns 0, PS_EIO (cannot
 * open/read) or PS_EFORMAT (bad header, size mismatch), logged with the
 * path. */
int ps_idx_probe(const char *path, size_t *n, size_t *dim);

/* Reads the labels file path (one dimension) whole, a chunk at a time, and
 * checks it ends exactly where its header says (gzip too). OUT *n labels,
 * OUT *nclasses = largest label + 1 (0 when n == 0). Allocates one chunk.
 * Returns 0, PS_EIO, PS_EFORMAT (logged with the path) or PS_ENOMEM. */
int ps_idx_scan_labels(const char *path, size_t *n, uint32_t *nclasses);

/* Loads images [first, first + count) of path into out as dense rows in
 * [0, 1]; count == SIZE_MAX means "to the end". y is allocated and zeroed,
 * nclasses is 0 (no labels). out's previous arrays are released on success;
 * on failure out is unchanged. Returns 0, PS_EIO, PS_EFORMAT (bad header,
 * truncated file, trailing bytes), PS_ERANGE (range past the end) or
 * PS_ENOMEM. */
int ps_idx_load_images(const char *path, size_t first, size_t count, ps_dataset *out);

/* ps_idx_load_images plus labels [first, first + count) from labels into
 * out->y, with nclasses = PS_IDX_NCLASSES (10). The two files must agree on
 * the sample count, and every label read must be < 10. Same returns. */
int ps_idx_load(const char *images, const char *labels, size_t first, size_t count,
                ps_dataset *out);

/* As ps_idx_load with a given number of classes (2..256; labels are bytes)
 * for other IDX sets (e.g. EMNIST letters, or as ps_idx_scan_labels counts
 * them). */
int ps_idx_load_classes(const char *images, const char *labels, size_t first, size_t count,
                        uint32_t nclasses, ps_dataset *out);

#endif
