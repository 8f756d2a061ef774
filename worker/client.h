/* Client: a worker's view of the servers. A plan groups one batch's keys
 * (per table, sorted unique global rows) by owning server and local slot,
 * once; the same plan then serves the pull (rows in) and the push
 * (gradients out) of that batch, one message per server per call. Pulls are
 * nonblocking (start, then wait), so the next batch's pull overlaps this
 * batch's compute; the worker keeps three plans
 * (worker/pipeline.c: pushed, pulled, prepared).
 *
 * Every push goes to every server, empty where the batch touched none of
 * its rows: a push is also the worker's "clock done" signal. Not
 * thread-safe. */
#ifndef PS_CLIENT_H
#define PS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/comm.h"
#include "common/shard.h"
#include "common/table.h"
#include "worker/model.h"

typedef struct ps_client ps_client;
typedef struct ps_plan ps_plan;

typedef struct {
    const ps_table_desc *tables; /* borrowed for the client's life */
    uint32_t ntables;
    uint32_t nservers;
    const int *server_ranks; /* server index -> comm rank; borrowed */
    ps_shard_mode shard;
    uint32_t worker;
    uint32_t nworkers;
    int coordinator_rank; /* comm rank of worker 0: where stop requests go */
} ps_client_cfg;

/* Returns a new client in *out; destroy with ps_client_destroy. */
int ps_client_create(ps_client **out, const ps_client_cfg *cfg, ps_comm *comm);
void ps_client_destroy(ps_client **c);

/* A plan holds its own buffers, reused from batch to batch. */
int ps_plan_create(ps_plan **out, const ps_client *c);
void ps_plan_destroy(ps_plan **p);

/* Groups keys[t] (ntables lists, keys sorted unique, < rows) by server. */
int ps_client_plan(ps_client *c, ps_plan *p, const ps_keylist *keys);
/* Asks every server for the plan's rows from parameters of at least
 * min_version (averaged: the temporal average). Returns at once. */
int ps_client_pull_start(ps_client *c, ps_plan *p, int64_t min_version, int averaged);
/* Waits for the replies of p's pull (started before any later pull) and
 * scatters them: params[t] gets keys[t].n rows in key order. Checks every
 * reply against the request (PS_EMSG naming the server rank), and any
 * other message is PS_EMSG naming its sender and tag, except a stop
 * request at the coordinator (see ps_client_stop_requested). A reply's
 * stop stamp sets ps_client_stop_clock. Returns 0, PS_EMSG, the codec's
 * errors, or the comm's (PS_ETIMEDOUT when a server falls silent). */
int ps_client_pull_wait(ps_client *c, ps_plan *p, float *const *params);
/* Sends grads[t] (keys[t].n rows in key order) for clock to every server,
 * with `samples`, the number of samples they are the mean over (the batch;
 * 0 only for an empty batch, which has no rows): under BSP the servers
 * weight each worker's push by its share of the clock's samples. */
int ps_client_push(ps_client *c, ps_plan *p, const float *const *grads, int64_t clock,
                   uint32_t samples);
/* Coordinator: asks every server to write its shard once `clock` clocks are
 * applied, then waits for every server's confirmation. Pull replies that
 * come meanwhile (the next batch's pull is in flight) are kept for the next
 * ps_client_pull_wait. Returns 0, PS_EIO when a server could not write
 * (logged naming it), PS_EMSG for any other answer or message, or the
 * comm's errors. */
int ps_client_checkpoint(ps_client *c, int64_t clock);
/* Preemption (docs/design.md, "Stopping at a clock"). Coordinator: takes
 * the stop requests waiting, without waiting; PS_EMSG for any other
 * control message. */
int ps_client_poll(ps_client *c);
/* A rank that got a stop signal asks the coordinator to stop the job. */
int ps_client_request_stop(ps_client *c);
/* Coordinator: tells every server the job stops at `clock`; from then on
 * every pull reply carries it. Sets ps_client_stop_clock. */
int ps_client_stop(ps_client *c, int64_t clock);
/* The clock the job stops at, from a reply's stamp (or ps_client_stop);
 * 0: no stop announced. */
int64_t ps_client_stop_clock(const ps_client *c);
/* Coordinator: whether a stop request came (in any wait or poll). */
int ps_client_stop_requested(const ps_client *c);
/* Fault injection for the integration tests (ADAMPS_TEST_INJECT=bad-key):
 * moves the last key p sends to server 0 far past its shard, so the next
 * push or pull carries an out-of-range key. Returns 0, or PS_EINVAL if p
 * sends server 0 no keys. */
int ps_plan_inject_bad_key(ps_plan *p);
/* Tells every server this worker is done; stopped = 1: it stopped early at
 * a stop clock, after its checkpoint. */
int ps_client_done(ps_client *c, int stopped);

#endif
