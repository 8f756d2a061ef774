/* Files: every framed file adamps writes (checkpoint shards, worker state,
 * the manifest, a saved model's model.bin) is the 4-byte magic "APS1", a
 * 4-byte little-endian length L, L bytes of a protobuf FileHeader (format
 * version, kind, payload size, CRC-32 of the payload, config, clock, rank,
 * tables, model info), a 4-byte little-endian CRC-32 of the 8 + L bytes
 * before it, then the payload. So every byte of the file is covered: the
 * header by its own CRC (checked before any field is used), the payload by
 * the CRC the header holds. Format 1 (before the header CRC) is refused
 * with a message saying so. Files are written to `path.tmp.<pid>`,
 * fsynced and renamed over `path`, and the directory is fsynced, so a
 * crash leaves the old file or the new one, never half of one. Large
 * payloads are written and read in pieces, each followed by
 * ps_comm_alive(), so a rank busy with a slow file system keeps its peers
 * waiting instead of timing out. The protobuf part lives in
 * common/fileheader.c; this module holds no protobuf. Not collective;
 * thread-safe on distinct objects. */
#ifndef PS_FILE_H
#define PS_FILE_H

#include <stddef.h>
#include <stdint.h>

#define PS_FILE_MAGIC "APS1"
#define PS_FILE_FORMAT_VERSION 2u
/* A header longer than this is garbage, whatever the file size says. */
#define PS_FILE_MAX_HEADER ((uint32_t)64 << 20)

/* One table's part of a file (a shard holds slots [first_slot,
 * first_slot + nslots) of the table, nstate arrays per row: w, m, v, ...). */
typedef struct {
    char name[32]; /* NUL-terminated */
    uint64_t rows;
    uint32_t width;
    uint64_t first_slot, nslots;
    uint32_t nstate;
} ps_file_table;

/* Hidden layers a model file can describe (worker/model.h's limit). */
#define PS_FILE_MAX_HIDDEN 8
/* Class labels a model file can list (data/source.h's limit). */
#define PS_FILE_MAX_LABELS 4096

/* The ModelInfo message: what a kind "model" file's tables make up. */
typedef struct {
    char kind[16]; /* "logreg", "mlp", "cnn", "vae"; NUL-terminated */
    uint64_t in_dim;
    uint32_t nclasses;
    int sparse_input; /* 1: CSR input */
    uint32_t hash_bits;
    uint64_t hash_fingerprint;
    uint32_t nhidden;
    uint32_t hidden[PS_FILE_MAX_HIDDEN];
    int averaged;        /* 1: the temporal average */
    char activation[16]; /* "" (older files: relu) or the hidden units' name */
    uint32_t nconv;      /* cnn: convolution stages, at most PS_FILE_MAX_HIDDEN */
    uint32_t conv[PS_FILE_MAX_HIDDEN];
    uint32_t latent; /* vae */
    /* The label of each class, ascending; nlabels 0: class c is label c. */
    uint32_t nlabels;
    int32_t labels[PS_FILE_MAX_LABELS];
} ps_file_model;

/* Plain-C view of the FileHeader message. For writing, every pointer is
 * borrowed; payload_bytes, crc32 and format_version are filled in by the
 * writer. After reading, config and tables are owned by the struct and
 * released with ps_file_header_fini(). */
typedef struct {
    uint32_t format_version;
    char kind[16]; /* "shard", "worker", "manifest"; NUL-terminated */
    uint64_t payload_bytes;
    uint32_t crc32; /* CRC-32 (IEEE, as zlib's crc32()) of the payload */
    char *config;   /* NUL-terminated; NULL is written as "" */
    int64_t clock;
    uint32_t rank, nservers, nworkers;
    size_t ntables;
    ps_file_table *tables;
    uint32_t shard_mode;   /* shards: 0 range, 1 hash */
    int64_t step;          /* shards: optimizer steps applied */
    char optimizer[16];    /* shards: the update rule; NUL-terminated */
    uint32_t shard_format; /* shards: payload layout (server/snapshot.c) */
    int has_model;         /* the model field is present (kind "model") */
    ps_file_model model;
} ps_file_header;

typedef struct ps_file_writer ps_file_writer;

/* Frees what a read put in h (config, tables) and zeroes it. Accepts a
 * zeroed or already finalised header. */
void ps_file_header_fini(ps_file_header *h);

/* Writes header h and the payload parts[0..nparts) (concatenated, part_len[i]
 * bytes each; parts are borrowed) to path atomically. h is not modified: the
 * file gets format version PS_FILE_FORMAT_VERSION and the payload size and
 * CRC computed here. Returns 0; PS_EINVAL for a kind or table name that is
 * not NUL-terminated; PS_ENOMEM; or PS_EIO after logging the path and
 * strerror(errno). On any error the temp file is removed and whatever was at
 * path before is untouched. */
int ps_file_write_atomic(const char *path, const ps_file_header *h, const void *const *parts,
                         const size_t *part_len, size_t nparts);

/* Streaming writes, for payloads too big to hold in memory. The header
 * comes first in the file and a protobuf varint's length depends on its
 * value, so no room can be left for a CRC found later: the caller declares
 * h->payload_bytes and h->crc32 up front (from a first pass over the data,
 * with ps_file_crc32) and ps_file_commit checks the payload against both.
 * The rest of h is written as ps_file_write_atomic writes it.
 * Creates `path.tmp.<pid>` and writes the prefix and the header. Returns 0
 * and a new writer in *out, which the caller ends with ps_file_commit or
 * ps_file_abort; PS_EINVAL (as ps_file_write_atomic); PS_ENOMEM; PS_EIO
 * (logged). */
int ps_file_create(ps_file_writer **out, const char *path, const ps_file_header *h);
/* Appends len payload bytes (borrowed). Returns 0; PS_EINVAL (logged,
 * nothing written) when that would pass the declared payload size; PS_EIO
 * (logged; sticky). */
int ps_file_write_payload(ps_file_writer *w, const void *buf, size_t len);
/* Checks that the payload written has the declared size (else PS_EINVAL,
 * logged: a bug) and CRC (else PS_EIO, logged: the data changed between the
 * caller's passes), then publishes the file as ps_file_write_atomic does.
 * On any error the temp file is removed and path is untouched. Frees the
 * writer and sets *w = NULL whatever happens. */
int ps_file_commit(ps_file_writer **w);
/* Removes the temp file and frees the writer. Accepts NULL and *w == NULL;
 * sets *w = NULL. */
void ps_file_abort(ps_file_writer **w);

/* CRC-32 (IEEE, as the header's crc32) of len bytes at buf, continuing from
 * crc: 0 starts, and ps_file_crc32(ps_file_crc32(0, a, n), b, m) is the CRC
 * of a then b. Pure. */
uint32_t ps_file_crc32(uint32_t crc, const void *buf, size_t len);

/* Reads path whole: fills h (the caller finalises it with
 * ps_file_header_fini) and returns the payload in *payload (allocated with
 * ps_malloc, the caller ps_free()s it) and its size in *len. Returns 0;
 * PS_ECKPT, after logging the path and which check failed (magic, header
 * length, header CRC, header parse, format version, payload size against
 * the file size, payload CRC); PS_EIO (logged with strerror); PS_ENOMEM.
 * On error h is zeroed and *payload is NULL. */
int ps_file_read(const char *path, ps_file_header *h, void **payload, size_t *len);

/* Streaming reads, for shards too big to hold twice. */
typedef struct ps_file_reader ps_file_reader;

/* Opens path and checks everything but the CRC (as ps_file_read). On
 * success *out is a new reader positioned at the payload, which the caller
 * closes with ps_file_close, and h is filled (finalise it as above). On
 * error *out is NULL and h is zeroed. */
int ps_file_open(ps_file_reader **out, const char *path, ps_file_header *h);
/* Reads the next len bytes of the payload into buf. Reading the last payload
 * byte verifies the CRC: a mismatch returns PS_ECKPT (logged), so a caller
 * that reads the whole payload in pieces has checked it. Returns 0;
 * PS_EINVAL when len runs past the payload; PS_ECKPT; PS_EIO. */
int ps_file_read_payload(ps_file_reader *r, void *buf, size_t len);
/* Closes and frees the reader. Accepts NULL and *r == NULL; sets *r = NULL. */
void ps_file_close(ps_file_reader **r);

#endif
