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

#include <stdint.h>

#include "common/comm.h"
#include "server/store.h"

typedef enum { PS_SYNC_BSP = 0, PS_SYNC_SSP, PS_SYNC_ASP } ps_sync;

typedef struct {
    ps_store_cfg store;
    uint32_t nworkers;
    const int *worker_ranks; /* worker id -> rank in comm; borrowed */
    ps_sync sync;
    int nonfinite_skip;      /* 1: drop a push with a non-finite value, 0: fail */
    const char *ckpt_dir;    /* where CHECKPOINT requests write the shard */
    const char *config_text; /* the run header, stored in checkpoint files */
    const char *opt_name;    /* the update rule's name, checked on resume */
    int64_t resume_clock;    /* >= 0: load the checkpoint of this clock first */
    uint32_t resume_nservers;/* servers that wrote it (re-shards if different) */
} ps_server_cfg;

typedef struct ps_server ps_server;

/* Returns a new server in *out: the shard (loaded from the checkpoint of
 * cfg->resume_clock when that is >= 0), a codec and reply buffers. Not
 * collective; sends nothing. Borrows cfg (and everything it points to) and
 * comm for the server's life; the caller destroys it with
 * ps_server_destroy. Returns 0, PS_EINVAL (no workers, a worker rank
 * outside comm, a bad table), PS_ENOMEM, or the snapshot's PS_ECKPT /
 * PS_EIO, after logging it; then *out is NULL. */
int ps_server_create(ps_server **out, const ps_server_cfg *cfg, ps_comm *comm);
/* Accepts NULL and *s == NULL; sets *s = NULL. */
void ps_server_destroy(ps_server **s);

/* Handles one message received on the server's comm (borrowed until
 * return): validates it (codec, then sender = claimed worker, clock),
 * applies it under the consistency model and sends whatever it made ready:
 * replies to pulls whose version now exists (in arrival order), a
 * CHECKPOINT_DONE once the requested clock is reached. What must wait (an
 * early BSP push, a pull for a future version) is kept decoded, in storage
 * the server reuses. Returns 0, or after logging the error with the sender
 * rank: PS_EMSG (a bad or unexpected message, a second DONE from one
 * worker, the last DONE while pulls still wait), PS_EPEER (a worker's
 * ERROR), PS_ENONFINITE (a non-finite gradient, unless cfg->nonfinite_skip;
 * or a step that made a weight non-finite, always), PS_ENOMEM, or what a
 * checkpoint write or a send returned. After an error, only destroy it. */
int ps_server_handle(ps_server *s, const ps_comm_msg *m);
/* Whether every worker has sent DONE. */
int ps_server_is_done(const ps_server *s);
/* The number of clocks every worker has pushed (resume: starts at its
 * clock). */
int64_t ps_server_version(const ps_server *s);
/* The server's shard, borrowed until destroy (for inspection and tests). */
ps_store *ps_server_store(ps_server *s);

/* Creates the server, agrees with every other rank that start-up worked
 * (collective over comm: the workers call ps_comm_agree after their own
 * start-up), then receives and handles messages until every worker has
 * sent DONE, and destroys it. Returns 0, or the rc of the first fatal
 * error (that of ps_server_create or ps_server_handle, another rank's
 * start-up failure, or the comm's PS_EMPI / PS_EPEER), after logging it.
 * Not collective by itself; the caller agrees on the outcome afterwards. */
int ps_server_run(const ps_server_cfg *cfg, ps_comm *comm);

#endif
