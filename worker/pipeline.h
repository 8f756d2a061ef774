/* Pipeline: a worker's batches ahead of its training loop (worker/train.c).
 * For clock c: load the batch, extract its keys and build its plan
 * (prepare), ask the servers for its rows (start), take their replies
 * (wait). The loop prepares c + 2 right after pushing c, while the
 * servers apply that push and it would otherwise wait for the reply of
 * c + 1 (ps_pipe_ahead); only the gradient and the round trip are left on
 * the critical path. Under BSP that pull also goes out then (no server can
 * answer it sooner); otherwise after the reply of c + 1, as before. Either
 * way each pull is answered with what it was before: BSP runs stay
 * bit-identical.
 * Three clocks are held at once (PS_PIPE_SLOTS): the one being computed
 * and pushed, the one whose pull is in flight, the one prepared. Not
 * thread-safe. */
#ifndef PS_PIPELINE_H
#define PS_PIPELINE_H

#include <stdint.h>

#include "data/dataset.h"
#include "worker/batcher.h"
#include "worker/client.h"
#include "worker/model.h"

#define PS_PIPE_SLOTS 3

typedef struct ps_pipe ps_pipe;

typedef struct {
    ps_client *client;        /* borrowed for the pipe's life, as the others */
    ps_model *model;          /* its keyset extracts the keys */
    ps_batcher *batcher;      /* the batch of each clock */
    uint64_t steps_per_epoch; /* ps_batcher_get's batches per epoch */
    int64_t max_staleness;    /* pull c asks for version c - K (0: BSP; < 0: any) */
    uint64_t first;           /* the first clock the pipe will see */
} ps_pipe_cfg;

/* What ps_pipe_wait gives for a clock: its batch (a view), keys, plan and
 * pulled rows (params[t]: keys[t].n rows in key order). Valid until the
 * pipe prepares clock + PS_PIPE_SLOTS, which it only does after the next
 * wait: long enough to compute and push the clock. */
typedef struct {
    ps_batch batch;
    const ps_keylist *keys;
    ps_plan *plan;
    float *const *params;
} ps_pipe_step;

/* Returns 0 and a new pipe in *out (slots, no batch yet), or PS_ENOMEM.
 * Borrows cfg's objects; the caller destroys it with ps_pipe_destroy. */
int ps_pipe_create(ps_pipe **out, const ps_pipe_cfg *cfg);
/* Accepts NULL and *p == NULL; sets *p = NULL. */
void ps_pipe_destroy(ps_pipe **p);

/* Prepares every clock up to `clock` not prepared yet (batch, keys,
 * plan; no message). Clock may be at most one past the oldest clock not
 * waited for (PS_ASSERT: a slot still in use would be overwritten).
 * Returns 0, or the batcher's, the model's or the client's error. */
int ps_pipe_prepare(ps_pipe *p, uint64_t clock);
/* Starts the pulls of every clock up to `clock` not started yet,
 * preparing them first where needed (as ps_pipe_prepare). */
int ps_pipe_start(ps_pipe *p, uint64_t clock);
/* Prepares clock (as ps_pipe_prepare), to be done while the servers apply
 * the push two clocks back; under BSP (max_staleness 0) also starts its
 * pull when clock <= last, the last clock any server will answer (the
 * final one, or the stop clock once known): no server can answer it
 * before this worker's next push, so it goes out now and its encoding
 * leaves the critical path, with the same answer. SSP and ASP pulls may be
 * answered at once, so theirs waits for ps_pipe_start after the previous
 * reply, as before, and what they are answered with does not change. */
int ps_pipe_ahead(ps_pipe *p, uint64_t clock, int64_t last);
/* Starts clock's pull if needed and takes its replies into the pipe's
 * parameter buffers. Clock must be the oldest not waited for (PS_ASSERT).
 * Returns 0 and *out, or the errors of ps_pipe_start and
 * ps_client_pull_wait. */
int ps_pipe_wait(ps_pipe *p, uint64_t clock, ps_pipe_step *out);
/* Takes the replies of every pull started and not waited for (a stop:
 * nothing may be left in the comm). Returns 0 or ps_client_pull_wait's
 * error. */
int ps_pipe_drain(ps_pipe *p);

#endif
