/* Segcopy: a decoded message's segments in storage of their own. Decoded
 * messages point into the codec's arena, which the next decode resets, so
 * one that must wait (an early BSP push, a pull for a future version) is
 * copied here once, decoded; the arrays grow to their high-water mark and
 * are reused, so holding allocates nothing in steady state. */
#ifndef PS_SEGCOPY_H
#define PS_SEGCOPY_H

#include <stddef.h>
#include <stdint.h>

#include "common/msg.h"

/* Caller-owned; zeroed is empty. */
typedef struct {
    ps_seg *segs;
    uint64_t *slots;
    float *values;
    size_t cap_segs, cap_slots, cap_values;
} ps_segcopy;

/* Copies segs[0..n) (borrowed until return) into c; c->segs then describes
 * the same message. Returns 0 or PS_ENOMEM. */
int ps_segcopy_set(ps_segcopy *c, const ps_seg *segs, size_t n);
/* Frees c's arrays; safe on a zeroed c. */
void ps_segcopy_fini(ps_segcopy *c);

#endif
