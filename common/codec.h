/* Codec: the wire format. Turns plain ps_ message structs into protobuf bytes
 * (proto/adamps.proto) and back, and validates everything a decoded message
 * says (table id, slot order and range, value counts, worker id, clock)
 * before any caller touches memory with it. The only module that includes
 * the protobuf-c generated code.
 *
 * A ps_codec is a reusable arena: decoding allocates nothing per message once
 * the arena has grown to the largest message seen. Decoded arrays belong to
 * the codec and stay valid until the next decode call on the same codec.
 * One codec per thread. */
#ifndef PS_CODEC_H
#define PS_CODEC_H

#include <stddef.h>
#include <stdint.h>

typedef struct ps_codec ps_codec;

/* The most slots one segment sends as a run (first, count); longer gapless
 * ranges go as deltas (one byte per key, paid for in message bytes). Above
 * an export block (2^22 floats), low enough that a ten-byte message cannot
 * make the receiver write more than 32 MiB of slots. */
#define PS_CODEC_MAX_RUN ((uint64_t)1 << 22)

/* A growable byte buffer owned by the caller (data freed with ps_free). */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} ps_bytes;

/* What the receiver knows, to validate against. tables[i].slots is the
 * number of rows of table i held by the receiving server (for a worker
 * decoding replies, the table's total rows). */
typedef struct {
    uint32_t width;
    uint64_t slots;
} ps_codec_table;

typedef struct {
    const ps_codec_table *tables;
    uint32_t ntables;
    uint32_t nworkers;
} ps_codec_limits;

/* One table's part of a message. slots strictly ascending; values holds
 * nkeys * width floats (push, reply) or is NULL with nkeys keys (pull); a
 * reply's segment has slots == NULL. */
typedef struct {
    uint32_t table;
    size_t nkeys;
    const uint64_t *slots;
    const float *values;
    size_t nvalues;
} ps_seg;

typedef struct {
    int64_t clock;
    uint32_t worker;
    size_t nsegs;
    const ps_seg *segs;
} ps_push;

typedef struct {
    uint64_t request_id;
    int64_t min_version;
    uint32_t worker;
    int averaged;
    size_t nsegs;
    const ps_seg *segs;
} ps_pull;

typedef struct {
    uint64_t request_id;
    int64_t version;
    size_t nsegs;
    const ps_seg *segs;
} ps_reply;

typedef enum {
    PS_CTRL_HELLO = 0,
    PS_CTRL_DONE = 1,
    PS_CTRL_CHECKPOINT = 2,
    PS_CTRL_CHECKPOINT_DONE = 3,
    PS_CTRL_ERROR = 4,
} ps_ctrl_kind;

typedef struct {
    ps_ctrl_kind kind;
    uint32_t worker;
    int64_t clock;
    uint64_t value;
    const char *text; /* NUL-terminated; "" when absent */
} ps_ctrl;

/* Returns a new codec in *out; the caller destroys it with ps_codec_destroy. */
int ps_codec_create(ps_codec **out);
/* Accepts NULL and *c == NULL; sets *c = NULL. */
void ps_codec_destroy(ps_codec **c);

/* Encoders overwrite out (growing it with ps_grow) and set out->len. They
 * check only that slots are strictly ascending (PS_EINVAL otherwise); that
 * each segment's value count is nkeys * width is the caller's job, since
 * encoders do not know widths. Returns 0, PS_EINVAL or PS_ENOMEM. */
int ps_codec_encode_push(ps_codec *c, const ps_push *m, ps_bytes *out);
int ps_codec_encode_pull(ps_codec *c, const ps_pull *m, ps_bytes *out);
int ps_codec_encode_reply(ps_codec *c, const ps_reply *m, ps_bytes *out);
int ps_codec_encode_ctrl(ps_codec *c, const ps_ctrl *m, ps_bytes *out);

/* Decoders validate against lim and log one error naming `sender` (an MPI
 * rank) and the field that was wrong, then return PS_EMSG. On success the
 * out struct points into codec-owned memory valid until the next decode.
 * Checks: bytes parse; table < ntables and each table at most once per
 * message; slots strictly ascending (no zero delta after the first, no
 * overflow) and < tables[t].slots; nvalues == nkeys * width (push, reply)
 * or 0 (pull); worker < nworkers (push, pull, ctrl); clock >= 0 (a pull's
 * min_version may be negative: SSP below clock K accepts any version).
 * Also PS_ENOMEM when the arena cannot grow, and PS_EINVAL for NULL limits
 * on push/pull/reply. */
int ps_codec_decode_push(ps_codec *c, const ps_codec_limits *lim, int sender, const void *buf,
                         size_t len, ps_push *out);
int ps_codec_decode_pull(ps_codec *c, const ps_codec_limits *lim, int sender, const void *buf,
                         size_t len, ps_pull *out);
/* Replies carry no slots: a segment's nvalues must be a multiple of the
 * table's width; the client checks counts against its request. */
int ps_codec_decode_reply(ps_codec *c, const ps_codec_limits *lim, int sender, const void *buf,
                          size_t len, ps_reply *out);
int ps_codec_decode_ctrl(ps_codec *c, const ps_codec_limits *lim, int sender, const void *buf,
                         size_t len, ps_ctrl *out);

#endif
