/* Atomic file writer: bytes go to `path.tmp.<pid>` until ps_afile_commit
 * fsyncs them, renames them over path and fsyncs the directory, so a crash
 * leaves the old file or the new one, never half of one. Every file adamps
 * writes goes through it: framed files (common/file.h), .npy exports,
 * prediction output. Not collective; thread-safe on distinct writers. */
#ifndef PS_AFILE_H
#define PS_AFILE_H

#include <stddef.h>

typedef struct ps_afile ps_afile;

/* Creates `path.tmp.<pid>`. Returns 0 and a new writer in *out; PS_ENOMEM;
 * PS_EIO (logged with the path and strerror). */
int ps_afile_open(ps_afile **out, const char *path);
/* Appends len bytes, in pieces of 8 MiB with ps_comm_alive() between them,
 * pushing what was written to disk (fdatasync) every 256 MiB: however large
 * the file, no single call takes long, and the commit's fsync has little
 * left to do. Returns 0 or PS_EIO (logged). A failure is sticky: later
 * writes and the commit return PS_EIO without logging again. */
int ps_afile_write(ps_afile *f, const void *buf, size_t len);
/* fsyncs the temp file, renames it over path, fsyncs the directory, frees
 * the writer and sets *f = NULL. Returns 0 or PS_EIO (logged). If the
 * failure came before the rename, the temp file is removed and path keeps
 * its old content; if only the directory fsync failed, the new, complete
 * file is already at path but the rename may not survive a crash. */
int ps_afile_commit(ps_afile **f);
/* Removes the temp file and frees the writer. Accepts NULL and *f == NULL. */
void ps_afile_abort(ps_afile **f);

/* mkdir -p: creates dir and every missing parent (mode 0777 less the
 * umask). With parent_of = 1, path names a file and only its directory is
 * made. Returns 0, PS_EINVAL (path too long) or PS_EIO (logged with the
 * directory and strerror). */
int ps_afile_mkdirs(const char *path, int parent_of);

/* Writes all len bytes of buf to the open descriptor fd, retrying short
 * writes and EINTR. Returns 0, or PS_EIO with errno still set by write(2);
 * it does not log, since only the caller knows the path. Used by this
 * module and by common/metrics.c. Thread-safe on distinct descriptors. */
int ps_afile_write_all(int fd, const void *buf, size_t len);

#endif
