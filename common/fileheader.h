/* File header: encodes and decodes the FileHeader message that
 * starts every file adamps writes (proto/adamps.proto), to and from the plain
 * ps_file_header struct of common/file.h. Like common/codec.c, it is one of
 * the only files that include the protobuf-c generated code; common/file.c
 * frames the bytes (magic, length, payload, CRC) and knows no protobuf.
 * Pure functions, thread-safe. */
#ifndef PS_FILEHEADER_H
#define PS_FILEHEADER_H

#include <stddef.h>

#include "common/mem.h"
#include "common/file.h"

/* Overwrites out (growing out->data with ps_grow) with the encoding of h and
 * sets out->len. All of h is written as is, format_version, payload_bytes
 * and crc32 included; the model field only when h->has_model. Returns 0;
 * PS_EINVAL (logged) when kind, a table name or the model kind is not
 * NUL-terminated inside its array, or the model has more than
 * PS_FILE_MAX_HIDDEN hidden layers or PS_FILE_MAX_LABELS labels; PS_ENOMEM. */
int ps_fileheader_encode(const ps_file_header *h, ps_bytes *out);

/* Decodes len bytes at buf into out, which must be zeroed or finalised; on
 * success the caller releases it with ps_file_header_fini. `what` names the
 * source (a file path) in the error log; NULL: no log (the caller only
 * probes bytes it already knows to be damaged). Checks that the bytes parse, that
 * kind and the model kind fit in 16 and each table name in 32 bytes with
 * their NUL, and that the model has at most PS_FILE_MAX_HIDDEN hidden
 * layers and PS_FILE_MAX_LABELS labels (their order is the reader's to
 * check). Returns 0; PS_ECKPT (logged, out left zeroed); PS_ENOMEM. Does not check the format
 * version: the caller does, so it can name the versions it knows. */
int ps_fileheader_decode(const char *what, const void *buf, size_t len, ps_file_header *out);

#endif
