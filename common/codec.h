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

#include "common/mem.h"
#include "common/msg.h"

typedef struct ps_codec ps_codec;

/* The most slots one segment sends as a run (first, count); longer gapless
 * ranges go as deltas (one byte per key, paid for in message bytes). Above
 * an export block (2^22 floats), low enough that a ten-byte message cannot
 * make the receiver write more than 32 MiB of slots. */
#define PS_CODEC_MAX_RUN ((uint64_t)1 << 22)

/* Returns a new codec in *out; the caller destroys it with ps_codec_destroy. */
int ps_codec_create(ps_codec **out);
/* Accepts NULL and *c == NULL; sets *c = NULL. */
void ps_codec_destroy(ps_codec **c);

/* Encoders overwrite out (growing it with ps_grow) and set out->len. A push
 * or reply segment with values NULL and nvalues > 0 is encoded as a header
 * announcing a payload of nvalues floats, which the caller sends itself
 * (common/msg.h); decoders give such a segment back with values NULL. They
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
int ps_codec_decode_push(ps_codec *c, const ps_msg_limits *lim, int sender, const void *buf,
                         size_t len, ps_push *out);
int ps_codec_decode_pull(ps_codec *c, const ps_msg_limits *lim, int sender, const void *buf,
                         size_t len, ps_pull *out);
/* Replies carry no slots: a segment's nvalues must be a multiple of the
 * table's width; the client checks counts against its request. */
int ps_codec_decode_reply(ps_codec *c, const ps_msg_limits *lim, int sender, const void *buf,
                          size_t len, ps_reply *out);
int ps_codec_decode_ctrl(ps_codec *c, const ps_msg_limits *lim, int sender, const void *buf,
                         size_t len, ps_ctrl *out);

#endif
