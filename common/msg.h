/* Messages: the plain C structs a push, a pull, a pull reply and a control
 * message decode into (common/codec.c turns them into protobuf bytes and
 * back), and the limits a receiver validates them against. Both roles speak
 * these; neither sees protobuf. Value types only, no functions. */
#ifndef PS_MSG_H
#define PS_MSG_H

#include <stddef.h>
#include <stdint.h>

/* What the receiver knows, to validate against. tables[i].slots is the
 * number of rows of table i held by the receiving server (for a worker
 * decoding replies, the table's total rows). */
typedef struct {
    uint32_t width;
    uint64_t slots;
} ps_msg_table;

typedef struct {
    const ps_msg_table *tables;
    uint32_t ntables;
    uint32_t nworkers;
} ps_msg_limits;

/* One table's part of a message. slots strictly ascending; values holds
 * nkeys * width floats (push, reply) or is NULL with nkeys keys (pull); a
 * reply's segment has slots == NULL. A push or reply segment with values
 * NULL and nvalues > 0 has its values in a payload: a raw message of
 * nvalues floats that travels right after the header (common/comm.h,
 * PS_TAG_DATA). */
typedef struct {
    uint32_t table;
    size_t nkeys;
    const uint64_t *slots;
    const float *values;
    size_t nvalues;
    /* Push, pull: the sender knows slots[k] == slots[0] + k for every k (a
     * plan found it once), so the encoder sends the run without reading
     * them. Decoders leave it 0. */
    int run;
} ps_seg;

typedef struct {
    int64_t clock;
    uint32_t worker;
    uint32_t samples; /* the batch the gradients are the mean over; 0: an empty batch */
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
    int64_t stop_clock; /* > 0: the job stops at this clock (preemption); 0: no stop */
    size_t chunk;       /* payloads travel in pieces of this many floats; 0: whole */
    size_t nsegs;
    const ps_seg *segs;
} ps_reply;

typedef enum {
    PS_CTRL_HELLO = 0,
    PS_CTRL_DONE = 1,
    PS_CTRL_CHECKPOINT = 2,
    PS_CTRL_CHECKPOINT_DONE = 3,
    PS_CTRL_ERROR = 4,
    PS_CTRL_STOP = 5,         /* coordinator -> server: the job stops at `clock` */
    PS_CTRL_STOP_REQUEST = 6, /* any rank -> coordinator: a stop signal came here */
} ps_ctrl_kind;

#define PS_CTRL_LAST PS_CTRL_STOP_REQUEST

typedef struct {
    ps_ctrl_kind kind;
    uint32_t worker;
    int64_t clock;
    uint64_t value;
    const char *text; /* NUL-terminated; "" when absent */
} ps_ctrl;

#endif
