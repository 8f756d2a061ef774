/* Server: the request loop of one server rank. Receives pushes, pulls and
 * control messages from the workers, validates each one (codec) before it
 * touches the store, applies updates under the chosen consistency model and
 * answers pulls as soon as the version they ask for exists.
 *
 * Version = the number of clocks every worker has pushed (the slowest
 * worker's clock). BSP: a clock's pushes are held until all workers sent
 * theirs, then summed in worker order (bit-reproducible), each weighted by
 * its share of the clock's samples (the mean over every sample of the
 * clock), and applied as one step. SSP:K and ASP: each push is applied on
 * arrival as its own step, and t counts the pushes received (dropped ones
 * too, so no server's t falls behind); the staleness bound lives in the
 * version a worker's pull asks for. */
#ifndef PS_SERVER_H
#define PS_SERVER_H

#include <signal.h>
#include <stdint.h>

#include "common/ckpt.h"
#include "common/comm.h"
#include "server/store.h"

typedef enum { PS_SYNC_BSP = 0, PS_SYNC_SSP, PS_SYNC_ASP } ps_sync;

typedef struct {
    ps_store_cfg store;
    uint32_t nworkers;
    const int *worker_ranks; /* worker id -> rank in comm; borrowed */
    ps_sync sync;
    int nonfinite_skip;      /* 1: drop a push with a non-finite value, 0: fail */
    size_t reply_chunk;      /* floats per reply piece (server/answer.h); 0: the default */
    const char *ckpt_dir;    /* where CHECKPOINT requests write the shard */
    const char *config_text; /* the run header, stored in checkpoint files */
    const char *opt_name;    /* the update rule's name, checked on resume */
    /* Checkpoints to resume from, newest first: ps_server_run loads the
     * first one every rank can read (nresume 0: a fresh start). */
    const ps_ckpt_manifest *resume;
    uint32_t nresume;
    /* Set (by a signal handler) when this rank got a stop signal; NULL: none. */
    const volatile sig_atomic_t *stop_flag;
} ps_server_cfg;

typedef struct ps_server ps_server;

/* Returns a new server in *out: the shard (initial rows), a codec and reply
 * buffers. Not collective; sends nothing. Borrows cfg (and everything it
 * points to) and comm for the server's life; the caller destroys it with
 * ps_server_destroy. Returns 0, PS_EINVAL (no workers, a worker rank
 * outside comm, a bad table) or PS_ENOMEM, after logging it; then *out is
 * NULL. */
int ps_server_create(ps_server **out, const ps_server_cfg *cfg, ps_comm *comm);
/* Loads the shard of checkpoint m (written by m->nservers servers:
 * re-shards when that or the shard mode differs) and starts from its
 * clock. Before any message is handled. Returns 0, or the snapshot's
 * PS_ECKPT / PS_EIO / PS_ENOMEM (logged naming the file); the shard may
 * then be partly overwritten, so load another checkpoint or destroy it. */
int ps_server_resume(ps_server *s, const ps_ckpt_manifest *m);
/* Accepts NULL and *s == NULL; sets *s = NULL. */
void ps_server_destroy(ps_server **s);

/* Handles one message received on the server's comm (borrowed until
 * return): validates it (codec, then sender = claimed worker, clock),
 * applies it under the consistency model and sends whatever it made ready:
 * replies to pulls whose version now exists (in arrival order, stamped
 * with the stop clock once the coordinator announced one), a
 * CHECKPOINT_DONE once the requested clock is reached (value 1 and the
 * reason when the shard could not be written: the coordinator reports it).
 * A lazy push that is a step of its own (SSP/ASP, BSP with one worker)
 * streams its worker's pull reply as its rows are stepped, taking that
 * pull from the comm if it is already there (server/answer.h). What must
 * wait (an early BSP push, a pull for a future version) is kept
 * decoded, in storage the server reuses. Returns 0, or after logging the
 * error with the sender rank: PS_EMSG (a bad or unexpected message, a
 * second DONE from one worker, the last DONE while pulls still wait, a
 * STOP not from the coordinator), PS_EPEER (a worker's ERROR),
 * PS_ENONFINITE (a non-finite gradient, unless cfg->nonfinite_skip; or a
 * step that made a weight non-finite, always), PS_ENOMEM, or what a send
 * returned. After an error, only destroy it. */
int ps_server_handle(ps_server *s, const ps_comm_msg *m);
/* Whether every worker has sent DONE. */
int ps_server_is_done(const ps_server *s);
/* Whether a worker's DONE said it stopped early at the stop clock. */
int ps_server_is_stopped(const ps_server *s);
/* The number of clocks every worker has pushed (resume: starts at its
 * clock). */
int64_t ps_server_version(const ps_server *s);
/* The server's shard, borrowed until destroy (for inspection and tests). */
ps_store *ps_server_store(ps_server *s);

/* Creates the server, agrees with every other rank that start-up worked
 * (collective over comm: the workers call ps_comm_agree after their own
 * start-up), resumes (one more agree per checkpoint tried: the first of
 * cfg->resume that every rank could read wins), then receives and handles
 * messages until every worker has sent DONE, and destroys it. When this
 * rank's stop flag goes up, it asks the coordinator for a stop once.
 * Returns 0, PS_ESTOPPED (the workers stopped at a stop clock after their
 * checkpoint), or the rc of the first fatal error (that of
 * ps_server_create or ps_server_handle, another rank's start-up failure,
 * no checkpoint readable, the comm's PS_EMPI / PS_EPEER / PS_ETIMEDOUT),
 * after logging it. Not collective by itself. */
int ps_server_run(const ps_server_cfg *cfg, ps_comm *comm);

#endif
