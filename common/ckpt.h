/* Checkpoint layout: where each file of a checkpoint lives and the two small
 * files every rank can read — the manifest and a worker's state.
 *
 *   DIR/MANIFEST                 written last by the coordinator: names the
 *                                newest complete checkpoint
 *   DIR/ckpt-<clock>/shard-<s>.bin   server s's shard (server/snapshot.c)
 *   DIR/ckpt-<clock>/worker-<w>.bin  worker w's state
 *
 * Every file is written to a temporary name, fsynced and renamed, with a
 * header carrying its format version and a CRC (common/file.h). The previous
 * checkpoint is removed only after the new manifest is in place. */
#ifndef PS_CKPT_H
#define PS_CKPT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t clock;     /* clocks done: training resumes at this clock */
    uint32_t nservers; /* servers that wrote the shards */
    uint32_t nworkers;
} ps_ckpt_manifest;

/* Longest OpenBLAS kernel name a worker file records, NUL included. */
#define PS_CKPT_BLAS_CORE 32

typedef struct {
    double loss_ema; /* the coordinator's moving-average train loss */
    int32_t have_ema;
    /* The OpenBLAS kernel (openblas_get_corename) and thread count the
     * worker computed with: sgemm's summation order depends on both, so a
     * run resumed with others is not bit-identical to an uninterrupted one.
     * "" and 0 when the file predates them. */
    int32_t blas_threads;
    char blas_core[PS_CKPT_BLAS_CORE];
} ps_ckpt_worker_state;

/* "DIR/ckpt-<clock>" and the file paths inside it, into out (len bytes).
 * Returns 0, or PS_EINVAL when the path does not fit. */
int ps_ckpt_dir_path(char *out, size_t len, const char *dir, int64_t clock);
int ps_ckpt_shard_path(char *out, size_t len, const char *dir, int64_t clock, uint32_t server);
int ps_ckpt_worker_path(char *out, size_t len, const char *dir, int64_t clock, uint32_t worker);
/* Creates DIR/ckpt-<clock> (and DIR) if missing. Safe to race: every rank
 * writing the checkpoint calls it. Returns 0 or PS_EIO (logged). */
int ps_ckpt_make_dir(const char *dir, int64_t clock);

/* Writes DIR/MANIFEST atomically. */
int ps_ckpt_write_manifest(const char *dir, const ps_ckpt_manifest *m, const char *config);
/* Reads DIR/MANIFEST. PS_EIO when there is none (logged as "no checkpoint
 * to resume"), PS_ECKPT when it is corrupt (logged with the path). */
int ps_ckpt_read_manifest(const char *dir, ps_ckpt_manifest *m);
/* Removes DIR/ckpt-<clock> and the files in it; errors are logged as
 * warnings only (a stale old checkpoint is harmless). */
void ps_ckpt_remove(const char *dir, int64_t clock);

int ps_ckpt_write_worker(const char *dir, int64_t clock, uint32_t worker, uint32_t nworkers,
                         const ps_ckpt_worker_state *st, const char *config);
/* Checks the file's clock and worker count against the job's. A file
 * written before the BLAS fields existed reads with blas_core "" and
 * blas_threads 0. */
int ps_ckpt_read_worker(const char *dir, int64_t clock, uint32_t worker, uint32_t nworkers,
                        ps_ckpt_worker_state *st);
/* Resume: compares the BLAS kernel and thread count saved in st with the
 * ones this run uses (core, threads) and logs a warning naming both when
 * they differ (the resumed run computes the same model, but not bit for
 * bit). Returns 1 when it warned, 0 when they match or st records none.
 * Not collective; thread-safe. */
int ps_ckpt_warn_blas_change(const ps_ckpt_worker_state *st, uint32_t worker, const char *core,
                             int32_t threads);

#endif
