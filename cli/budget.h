/* Budget: the memory plan of a job. From the model's tables, the flags and
 * the data's shape, what each rank will allocate: a server its shard of
 * every table (w, the pending gradient, the optimizer's state, the temporal
 * average, per-row step counters and lazy bookkeeping) and message buffers;
 * a worker its data part (or stream chunk), the coordinator the test set,
 * and batches, keys, pulled rows, gradients and model buffers. Checked
 * against a budget before anything is allocated: --max-memory per rank, or
 * the node's available memory (MemAvailable and the cgroup limit, the
 * smaller), which the ranks on the node must fit in together.
 *
 * Everything is pure arithmetic, the same on every rank; the node's memory
 * comes from cli/meminfo.h, and the collective step (every rank checks its
 * node, one prints) is cli/train.c's. Estimates of growable
 * buffers count their worst case (capacity doubling); the store's arrays are
 * exact. Thread-safe. */
#ifndef PS_BUDGET_H
#define PS_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "common/shard.h"
#include "common/table.h"
#include "data/source.h"
#include "worker/model.h"

/* What a rank costs beyond our allocations (MPI, OpenBLAS, code; a rank of
 * a tiny job peaks at about 20 MiB resident). */
#define PS_BUDGET_RUNTIME ((uint64_t)32 << 20)

/* The job as the plan sees it. ps_job_budget (cli/job.c) fills it. */
typedef struct {
    const ps_table_desc *tables; /* borrowed */
    uint32_t ntables;
    uint32_t nservers;
    ps_shard_mode shard;
    int nstate;   /* ps_opt_nstate of the update rule */
    int averaged; /* temporal averaging keeps one more copy */
    int lazy;     /* lazy updates keep a touched flag and a row list */
    uint32_t nworkers;
    uint32_t batch;      /* per worker */
    uint32_t eval_batch; /* the coordinator's evaluation chunk */
    ps_model_cfg model;  /* its buffers (max_batch, widths, dropout) */
    ps_source_spec spec; /* the shape and what the probe saw */
    int libsvm;          /* training data: byte ranges of a libsvm file */
    uint32_t hash_bits;  /* --hash-bits (0: off) */
    int stream;          /* ps_stream_mode of --stream */
    const char *train;   /* the training file, for messages ("" for none) */
} ps_budget_job;

/* What one rank will allocate, in bytes. */
typedef struct {
    uint64_t tables;  /* server: its shard of every table */
    uint64_t data;    /* worker: its training part or stream chunk; the test set */
    uint64_t buffers; /* messages, batches, keys, pulled rows, gradients, model */
    uint64_t total;   /* the three and PS_BUDGET_RUNTIME */
    uint32_t big;     /* server: the table taking most of tables */
    uint64_t big_bytes;
} ps_budget_rank;

/* Server `server`'s plan. Saturates at UINT64_MAX, never wraps. */
void ps_budget_server(const ps_budget_job *j, uint32_t server, ps_budget_rank *out);
/* Worker `worker`'s plan (worker 0, the coordinator, also holds the test
 * set). Saturates. */
void ps_budget_worker(const ps_budget_job *j, uint32_t worker, ps_budget_rank *out);

/* Bytes one row of a width-wide table costs a server. */
uint64_t ps_budget_row_bytes(uint32_t width, int nstate, int averaged, int lazy);

/* Where the ranks run. */
typedef struct {
    int size;
    const int *is_server;    /* per rank */
    const int *node_of_rank; /* per rank */
} ps_budget_world;

/* Checks the plan for rank `rank`: with per_rank > 0 (--max-memory) that
 * rank's plan must fit it; with per_rank == 0 the ranks on rank's node must
 * together fit node_avail (0: unknown, nothing to check). Returns 0, or
 * PS_ECONFIG with one line in msg (len bytes) naming what is too big (the
 * table, its rows and width and the bytes per server, or a worker's data),
 * the budget, and the ways out (--hash-bits B, more --servers, --features
 * N, --max-memory, ...), with numbers that would fit where they can be
 * computed. Pure. */
int ps_budget_check(const ps_budget_job *j, const ps_budget_world *w, int rank, uint64_t per_rank,
                    uint64_t node_avail, char *msg, size_t len);

/* One line for the run header: the largest server and worker plans and the
 * budget. */
void ps_budget_describe(const ps_budget_job *j, uint64_t per_rank, uint64_t node_avail,
                        int node_ranks, char *buf, size_t len);

/* Rows of a width-wide table that nservers servers of room bytes each
 * could hold (at least 1): the bound a libsvm scan gives feature ids. */
uint64_t ps_budget_max_rows(uint64_t room, uint32_t nservers, uint32_t width, int nstate,
                            int averaged, int lazy);

/* Parses a byte count: digits with an optional binary suffix K, M, G, T, P
 * (any case, optionally followed by "iB" or "B"): "512M", "4GiB", "1000".
 * Returns 0, or PS_EINVAL (overflow, 0, or junk). */
int ps_budget_parse_bytes(const char *text, uint64_t *out);
/* The shortest text ps_budget_parse_bytes reads back as bytes ("4G"). */
void ps_budget_format_bytes(uint64_t bytes, char *buf, size_t len);
/* Bytes for people: "512 B", "1.5 KiB", "64.0 GiB". */
void ps_budget_human(uint64_t bytes, char *buf, size_t len);

#endif
