/* NumPy .npz export: one uncompressed ("stored") zip archive of .npy
 * members, what numpy.savez writes and numpy.load reads (as a dict of
 * arrays by member name without ".npy"). Members are streamed: each one's
 * CRC-32 and size go in a data descriptor after its bytes and in the
 * central directory at the end, so nothing is held in memory and the
 * archive is one pass through common/afile (temp name, fsync, rename: a
 * reader never sees half an archive). Only classic zip (zip32): every
 * member, every offset and the archive stay below 4 GiB and there are at
 * most 65535 members; ps_npz_fits says beforehand whether an archive does.
 * Timestamps are fixed (1980-01-01), so the same arrays give the same
 * bytes. Not collective; thread-safe on distinct writers. */
#ifndef PS_NPZ_H
#define PS_NPZ_H

#include <stddef.h>
#include <stdint.h>

/* Members per archive and bytes of a member's name, by the zip32 fields. */
#define PS_NPZ_MAX_MEMBERS 65535u
#define PS_NPZ_MAX_NAME 255u

typedef struct ps_npz ps_npz;

/* 1 if an archive of n members named names[i] with sizes[i] bytes each
 * stays within zip32, else 0. Pure. */
int ps_npz_fits(const char *const *names, const uint64_t *sizes, size_t n);

/* Starts the archive at path (its temp file). Returns 0 and a new writer
 * in *out, which the caller ends with ps_npz_close or ps_npz_abort;
 * PS_ENOMEM; PS_EIO (logged). */
int ps_npz_open(ps_npz **out, const char *path);
/* Starts member `name` (e.g. "w.npy", at most PS_NPZ_MAX_NAME bytes),
 * ending the one before. Returns 0; PS_EINVAL (logged) for a bad name or
 * one member too many; PS_ERANGE (logged) past zip32's offsets; PS_EIO. */
int ps_npz_begin(ps_npz *z, const char *name);
/* Appends len bytes (borrowed) to the current member. Returns 0; PS_EINVAL
 * (logged) with no member begun; PS_ERANGE (logged) when the member or the
 * archive would pass zip32's 4 GiB; PS_EIO (logged). Sticky errors. */
int ps_npz_write(ps_npz *z, const void *buf, size_t len);
/* Ends the last member, writes the central directory and publishes the
 * file (ps_afile_commit). Frees the writer and sets *z = NULL whatever
 * happens. Returns 0 or the first error (path untouched then). */
int ps_npz_close(ps_npz **z);
/* Discards the temp file and frees the writer. Accepts NULL and *z ==
 * NULL; sets *z = NULL. */
void ps_npz_abort(ps_npz **z);

#endif
