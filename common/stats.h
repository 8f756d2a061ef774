/* Stats: what one rank did, counted where it happens so that the figures
 * are the job's and not one rank's guess. Every world communicator owns one
 * (comm_live.c creates it with the world and counts there: per peer and
 * tag, the bytes and messages sent and received; the time blocked waiting
 * for a message). Roles add what only they know: which phase the rank is
 * in (training, evaluating, checkpointing), the samples trained on, and on
 * servers how many clocks old each applied push was (its staleness).
 *
 * Heartbeats are not counted. A rank starts in PS_PHASE_LOAD and enters
 * PS_PHASE_TRAIN by itself at its first push or pull message (sent or
 * received), so start-up is apart without the roles having to say so.
 *
 * Not thread-safe: one thread per rank, like its ps_comm. */
#ifndef PS_STATS_H
#define PS_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ps_stats ps_stats;
struct ps_comm;

typedef enum {
    PS_PHASE_LOAD = 0, /* start-up: reading data, building state */
    PS_PHASE_TRAIN,
    PS_PHASE_EVAL,
    PS_PHASE_CKPT,
    PS_PHASE_DONE, /* after the role returned: nothing counted as training */
    PS_NPHASES
} ps_phase;

/* Tags counted apart (PS_TAG_PUSH .. PS_TAG_CTRL of common/comm.h); any
 * other tag is counted under index 0. A payload (PS_TAG_DATA(t)) adds its
 * bytes to tag t and no message: a push is one message with all its
 * values, however many MPI messages carry it. */
#define PS_STATS_NTAGS 5
/* Staleness bins: 0..PS_STATS_NSTALE-2 clocks, and the last for more. */
#define PS_STATS_NSTALE 17

typedef struct {
    uint64_t bytes, msgs;
} ps_stats_count;

/* A new counter set for a world of n ranks, in PS_PHASE_LOAD from now.
 * Returns 0 or PS_ENOMEM. Destroy with ps_stats_destroy (accepts NULL and
 * *s == NULL; sets *s = NULL). */
int ps_stats_create(ps_stats **out, int n);
void ps_stats_destroy(ps_stats **s);

/* The counter set of c's world (shared by communicators split from it). */
ps_stats *ps_comm_stats(struct ps_comm *c);

/* Called by comm_live.c only: one message of len bytes to or from world
 * rank peer, at time now (ps_comm_time); and `secs` spent blocked waiting
 * for a message. */
void ps_stats_on_send(ps_stats *s, int peer, int tag, size_t len, double now);
void ps_stats_on_recv(ps_stats *s, int peer, int tag, size_t len, double now);
void ps_stats_on_wait(ps_stats *s, double secs);

/* From now on time (and waiting) counts for phase p. */
void ps_stats_phase(ps_stats *s, ps_phase p);
ps_phase ps_stats_current(const ps_stats *s);
/* n more samples trained on (a worker's batch). */
void ps_stats_samples(ps_stats *s, uint64_t n);
/* One push applied `clocks` clocks ahead of the slowest worker (a server:
 * the push's clock minus its version; 0 under BSP). Negative counts as 0. */
void ps_stats_staleness(ps_stats *s, int64_t clocks);

/* Counts with world rank peer (PS_ANY: every peer) on tag (PS_ANY: every
 * counted tag). */
ps_stats_count ps_stats_sent(const ps_stats *s, int peer, int tag);
ps_stats_count ps_stats_received(const ps_stats *s, int peer, int tag);

/* ---- the flat record of one rank, for the job-wide reduction ---------- */

/* Offsets into a rank's record of PS_STATS_NVALS doubles (exact below
 * 2^53). Tag t's four counters start at PS_SV_TAGS + 4 * t. */
enum {
    PS_SV_TAGS = 0, /* per tag: sent bytes, sent msgs, received bytes, received msgs */
    PS_SV_PHASE_S = PS_SV_TAGS + 4 * PS_STATS_NTAGS, /* seconds in each phase */
    PS_SV_WAIT_S = PS_SV_PHASE_S + PS_NPHASES,       /* seconds blocked, by phase */
    PS_SV_PHASE_BYTES = PS_SV_WAIT_S + PS_NPHASES,   /* bytes sent + received, by phase */
    PS_SV_SAMPLES = PS_SV_PHASE_BYTES + PS_NPHASES,
    PS_SV_STALE = PS_SV_SAMPLES + 1, /* PS_STATS_NSTALE bins */
    PS_STATS_NVALS = PS_SV_STALE + PS_STATS_NSTALE
};
#define PS_SV_SENT_BYTES(t) (PS_SV_TAGS + 4 * (t))
#define PS_SV_SENT_MSGS(t) (PS_SV_TAGS + 4 * (t) + 1)
#define PS_SV_RECV_BYTES(t) (PS_SV_TAGS + 4 * (t) + 2)
#define PS_SV_RECV_MSGS(t) (PS_SV_TAGS + 4 * (t) + 3)

/* This rank's record (the current phase's time counted up to now). */
void ps_stats_record(const ps_stats *s, double *vals);

/* Collective over c: every rank's record, rank r's at
 * table[r * PS_STATS_NVALS], on every rank. table holds size(c) *
 * PS_STATS_NVALS doubles. Returns 0 or the collective's error. */
int ps_stats_gather(struct ps_comm *c, const ps_stats *s, double *table);

#endif
