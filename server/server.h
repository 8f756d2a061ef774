/* Server: the request loop of one server rank. Receives pushes, pulls and
 * control messages from the workers, validates each one (codec) before it
 * touches the store, applies updates under the chosen consistency model and
 * answers pulls as soon as the version they ask for exists.
 *
 * Version = the number of clocks every worker has pushed (the slowest
 * worker's clock). BSP: a clock's pushes are held until all workers sent
 * theirs, then summed in worker order (bit-reproducible) and applied as one
 * step. SSP:K and ASP: each push is applied on arrival as its own step; the
 * staleness bound lives in the version a worker's pull asks for. */
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

/* Creates the shard (loading a checkpoint when resuming), agrees with every
 * other rank that start-up worked (collective over comm: the workers call
 * ps_comm_agree after their own start-up), then serves until every worker
 * has sent DONE. Returns 0, or the rc of the first
 * fatal error (a bad message: PS_EMSG naming the sender; a non-finite
 * gradient under abort; PS_EMPI; PS_ENOMEM), after logging it. Not
 * collective by itself; the caller agrees on the outcome afterwards. */
int ps_server_run(const ps_server_cfg *cfg, ps_comm *comm);

#endif
