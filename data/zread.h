/* Zread: a forward byte stream over a plain or gzipped file, for the IDX
 * reader. The first two bytes decide, not the name: 1f 8b is gzip (inflated
 * member by member, concatenated members allowed), anything else is read as
 * it is, so a plain file named .gz still loads. Unlike zlib's gzread, which
 * skips whatever follows the last member, bytes after a member that do not
 * start another member are an error (trailing garbage), and a stream that
 * ends inside a member is an error (truncated): a caller that reads to the
 * end knows the file held exactly what it read. Memory: one 64 KiB input
 * buffer and inflate's window, both through ps_malloc. Not thread-safe;
 * separate streams are. */
#ifndef PS_ZREAD_H
#define PS_ZREAD_H

#include <stddef.h>
#include <stdint.h>

typedef struct ps_zread ps_zread;

/* Opens path. Returns 0 and a new stream the caller closes with
 * ps_zread_close; PS_EIO (cannot open or read, logged with the path) or
 * PS_ENOMEM. Copies nothing from path: it must outlive the stream (it
 * names the file in messages). */
int ps_zread_open(ps_zread **out, const char *path);

/* Reads up to len bytes into buf; OUT *got is how many. *got == 0 with 0
 * returned means the data has ended cleanly. Returns 0; PS_EFORMAT (corrupt
 * deflate data, a member cut short, or garbage after a member; logged with
 * the path and the byte offset in the file); PS_EIO (logged); PS_ENOMEM.
 * An error is sticky. */
int ps_zread_read(ps_zread *z, void *buf, size_t len, size_t *got);

/* Skips n data bytes (a seek for a plain file, inflating into a scratch
 * buffer for gzip). OUT *skipped < n only at the end of the data. Same
 * returns as ps_zread_read. */
int ps_zread_skip(ps_zread *z, uint64_t n, uint64_t *skipped);

/* 1 if the file is gzip (by its first bytes). */
int ps_zread_is_gzip(const ps_zread *z);

/* Size of the file on disk in bytes (compressed, for gzip). */
uint64_t ps_zread_file_size(const ps_zread *z);

/* Closes the file and frees z; accepts NULL and *z == NULL, sets *z = NULL. */
void ps_zread_close(ps_zread **z);

#endif
