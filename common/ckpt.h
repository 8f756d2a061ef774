/* Checkpoint layout: where each file of a checkpoint lives, the small
 * files every rank can read (manifests, a worker's state), and the
 * directory's housekeeping (lock, start-up checks, orphan sweep, keeping
 * the newest K).
 *
 *   DIR/LOCK                         flock'ed by the coordinator for the
 *                                    job's life; says which pid on which host
 *   DIR/MANIFEST                     names the newest complete checkpoint
 *   DIR/ckpt-<clock>/MANIFEST        written last: the checkpoint is complete
 *   DIR/ckpt-<clock>/shard-<s>.bin   server s's shard (server/snapshot.c)
 *   DIR/ckpt-<clock>/worker-<w>.bin  worker w's state
 *
 * Every file is written to a temporary name, fsynced and renamed, with a
 * header carrying its format version and CRCs over the whole file
 * (common/file.h). A resume tries the complete checkpoints newest first and
 * takes the first whose every file verifies. Not collective; the directory
 * functions are the coordinator's. */
#ifndef PS_CKPT_H
#define PS_CKPT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The most checkpoints a resume considers (--keep-checkpoints may keep more). */
#define PS_CKPT_MAX_LIST 32

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
    double time_s; /* the coordinator's training time so far (metrics' time_s) */
} ps_ckpt_worker_state;

/* "DIR/ckpt-<clock>" and the file paths inside it, into out (len bytes).
 * Returns 0, or PS_EINVAL when the path does not fit. */
int ps_ckpt_dir_path(char *out, size_t len, const char *dir, int64_t clock);
int ps_ckpt_shard_path(char *out, size_t len, const char *dir, int64_t clock, uint32_t server);
int ps_ckpt_worker_path(char *out, size_t len, const char *dir, int64_t clock, uint32_t worker);
/* Creates DIR/ckpt-<clock> (and DIR) if missing. Safe to race: every rank
 * writing the checkpoint calls it. Returns 0 or PS_EIO (logged). */
int ps_ckpt_make_dir(const char *dir, int64_t clock);

/* Completes checkpoint m->clock once all its shard and worker files are in
 * place: writes DIR/ckpt-<clock>/MANIFEST, then DIR/MANIFEST (for people
 * and scripts: the newest), each atomically. config is the run header.
 * Returns 0, PS_EIO or PS_ENOMEM (logged). */
int ps_ckpt_commit(const char *dir, const ps_ckpt_manifest *m, const char *config);
/* Reads the manifest of checkpoint `clock`, or DIR/MANIFEST when clock < 0.
 * *config (config may be NULL) gets the run header the checkpoint was
 * written with; the caller ps_free()s it. Returns 0; PS_EIO when there is
 * none (logged as "no checkpoint to resume"); PS_ECKPT when it is corrupt
 * or names no checkpoint (logged with the path); PS_ENOMEM. */
int ps_ckpt_read_manifest(const char *dir, int64_t clock, ps_ckpt_manifest *m, char **config);
/* The complete checkpoints in dir, newest first: up to max whose own
 * manifest reads (one that does not is skipped with a warning naming it).
 * *n = 0 when there is none. Returns 0, or PS_EIO when dir cannot be read
 * (logged). */
int ps_ckpt_list(const char *dir, ps_ckpt_manifest *out, uint32_t max, uint32_t *n);
/* After checkpoint `newest` is complete: keeps it and the keep - 1
 * complete checkpoints before it and removes every other DIR/ckpt-<N>
 * (older ones, incomplete ones, and newer ones: an abandoned run's, after
 * a resume from an older checkpoint). Failures are warnings only. */
void ps_ckpt_prune(const char *dir, int64_t newest, uint32_t keep);
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

/* Start-up: creates dir with its parents, checks that a file can be
 * created in it and that its file system has need_bytes free (one
 * checkpoint). Returns 0, or PS_ECONFIG naming dir and what is wrong. */
int ps_ckpt_prepare_dir(const char *dir, uint64_t need_bytes);
/* Takes an exclusive flock on DIR/LOCK and writes this process's pid and
 * host into it; keeps trying for wait_secs (a job that just died may still
 * be going). *fd holds the lock until ps_ckpt_unlock or exit. Returns 0;
 * PS_ECONFIG when another job holds it (logged naming its host and pid);
 * PS_EIO. A file system without locks is a warning, then 0. */
int ps_ckpt_lock(const char *dir, double wait_secs, int *fd);
/* Releases the lock; accepts *fd < 0 and sets it to -1. */
void ps_ckpt_unlock(int *fd);
/* Removes the temp files (`NAME.tmp.<pid>`) that writers killed mid-write
 * left in dir and its checkpoints: those whose pid is not alive on this
 * host or that are older than job_start. Call with the lock held, before
 * this job writes. Each removal is logged. */
void ps_ckpt_sweep(const char *dir, time_t job_start);

#endif
