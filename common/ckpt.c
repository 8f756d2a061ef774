#include "common/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"

static int fit(int n, size_t len)
{
    return n < 0 || (size_t)n >= len ? PS_EINVAL : 0;
}

int ps_ckpt_dir_path(char *out, size_t len, const char *dir, int64_t clock)
{
    return fit(snprintf(out, len, "%s/ckpt-%lld", dir, (long long)clock), len);
}

int ps_ckpt_shard_path(char *out, size_t len, const char *dir, int64_t clock, uint32_t server)
{
    return fit(snprintf(out, len, "%s/ckpt-%lld/shard-%u.bin", dir, (long long)clock, server), len);
}

int ps_ckpt_worker_path(char *out, size_t len, const char *dir, int64_t clock, uint32_t worker)
{
    return fit(snprintf(out, len, "%s/ckpt-%lld/worker-%u.bin", dir, (long long)clock, worker),
               len);
}

static int mkdir_ok(const char *path)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        PS_LOG(ERROR, "cannot create checkpoint directory %s: %s", path, strerror(errno));
        return PS_EIO;
    }
    return 0;
}

int ps_ckpt_make_dir(const char *dir, int64_t clock)
{
    char path[4096];
    int rc = mkdir_ok(dir);
    if (rc || (rc = ps_ckpt_dir_path(path, sizeof path, dir, clock))) {
        return rc;
    }
    return mkdir_ok(path);
}

int ps_ckpt_write_manifest(const char *dir, const ps_ckpt_manifest *m, const char *config)
{
    char path[4096], body[64];
    if (fit(snprintf(path, sizeof path, "%s/MANIFEST", dir), sizeof path)) {
        return PS_EINVAL;
    }
    /* The payload names the directory too, for people reading the file. */
    int n = snprintf(body, sizeof body, "ckpt-%lld\n", (long long)m->clock);
    ps_file_header h = {.clock = m->clock, .nservers = m->nservers, .nworkers = m->nworkers,
                        .config = (char *)config};
    snprintf(h.kind, sizeof h.kind, "manifest");
    const void *parts[1] = {body};
    size_t lens[1] = {(size_t)n};
    return ps_file_write_atomic(path, &h, parts, lens, 1);
}

/* Reads a small file of the given kind whole; checks kind. */
static int read_small(const char *path, const char *kind, ps_file_header *h, void **payload,
                      size_t *len)
{
    int rc = ps_file_read(path, h, payload, len);
    if (rc) {
        return rc;
    }
    if (strcmp(h->kind, kind) != 0) {
        PS_LOG(ERROR, "%s: is a %s file, expected a %s file", path, h->kind, kind);
        ps_free(*payload);
        *payload = NULL;
        ps_file_header_fini(h);
        return PS_ECKPT;
    }
    return 0;
}

int ps_ckpt_read_manifest(const char *dir, ps_ckpt_manifest *m)
{
    char path[4096];
    if (fit(snprintf(path, sizeof path, "%s/MANIFEST", dir), sizeof path)) {
        return PS_EINVAL;
    }
    if (access(path, F_OK) != 0) {
        PS_LOG(ERROR, "--resume: no checkpoint to resume in %s (%s is missing)", dir, path);
        return PS_EIO;
    }
    ps_file_header h;
    void *payload = NULL;
    size_t len = 0;
    int rc = read_small(path, "manifest", &h, &payload, &len);
    if (rc) {
        return rc;
    }
    m->clock = h.clock;
    m->nservers = h.nservers;
    m->nworkers = h.nworkers;
    ps_free(payload);
    ps_file_header_fini(&h);
    if (m->clock < 0 || m->nservers == 0 || m->nworkers == 0) {
        PS_LOG(ERROR, "%s: clock %lld with %u servers and %u workers is not a checkpoint", path,
               (long long)m->clock, m->nservers, m->nworkers);
        return PS_ECKPT;
    }
    return 0;
}

void ps_ckpt_remove(const char *dir, int64_t clock)
{
    char path[4096], file[4400];
    if (ps_ckpt_dir_path(path, sizeof path, dir, clock)) {
        return;
    }
    DIR *d = opendir(path);
    if (!d) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(file, sizeof file, "%s/%s", path, e->d_name);
            if (unlink(file) != 0) {
                PS_LOG(WARN, "cannot remove old checkpoint file %s: %s", file, strerror(errno));
            }
        }
    }
    closedir(d);
    if (rmdir(path) != 0) {
        PS_LOG(WARN, "cannot remove old checkpoint %s: %s", path, strerror(errno));
    }
}

int ps_ckpt_write_worker(const char *dir, int64_t clock, uint32_t worker, uint32_t nworkers,
                         const ps_ckpt_worker_state *st, const char *config)
{
    char path[4096];
    int rc = ps_ckpt_worker_path(path, sizeof path, dir, clock, worker);
    if (rc) {
        return rc;
    }
    ps_file_header h = {.clock = clock, .rank = worker, .nworkers = nworkers,
                        .config = (char *)config};
    snprintf(h.kind, sizeof h.kind, "worker");
    char core[PS_CKPT_BLAS_CORE] = {0}; /* zero-padded: the file's bytes are defined */
    snprintf(core, sizeof core, "%s", st->blas_core);
    const void *parts[4] = {&st->loss_ema, &st->have_ema, &st->blas_threads, core};
    size_t lens[4] = {sizeof st->loss_ema, sizeof st->have_ema, sizeof st->blas_threads,
                      sizeof core};
    return ps_file_write_atomic(path, &h, parts, lens, 4);
}

/* Payload sizes: before the BLAS fields, and now. */
#define WORKER_STATE_V1 (sizeof(double) + sizeof(int32_t))
#define WORKER_STATE_V2 (WORKER_STATE_V1 + sizeof(int32_t) + PS_CKPT_BLAS_CORE)

int ps_ckpt_read_worker(const char *dir, int64_t clock, uint32_t worker, uint32_t nworkers,
                        ps_ckpt_worker_state *st)
{
    char path[4096];
    int rc = ps_ckpt_worker_path(path, sizeof path, dir, clock, worker);
    if (rc) {
        return rc;
    }
    ps_file_header h;
    void *payload = NULL;
    size_t len = 0;
    if ((rc = read_small(path, "worker", &h, &payload, &len))) {
        return rc;
    }
    if (h.clock != clock || h.rank != worker || h.nworkers != nworkers ||
        (len != WORKER_STATE_V1 && len != WORKER_STATE_V2)) {
        PS_LOG(ERROR,
               "%s: written by worker %u of %u at clock %lld with %zu bytes of state; this job "
               "resumes worker %u of %u at clock %lld (resuming needs the same worker count)",
               path, h.rank, h.nworkers, (long long)h.clock, len, worker, nworkers,
               (long long)clock);
        rc = PS_ECKPT;
    } else {
        const char *b = payload;
        memset(st, 0, sizeof *st);
        memcpy(&st->loss_ema, b, sizeof st->loss_ema);
        memcpy(&st->have_ema, b + sizeof st->loss_ema, sizeof st->have_ema);
        if (len == WORKER_STATE_V2) {
            memcpy(&st->blas_threads, b + WORKER_STATE_V1, sizeof st->blas_threads);
            memcpy(st->blas_core, b + WORKER_STATE_V1 + sizeof st->blas_threads,
                   PS_CKPT_BLAS_CORE - 1);
        }
    }
    ps_free(payload);
    ps_file_header_fini(&h);
    return rc;
}

int ps_ckpt_warn_blas_change(const ps_ckpt_worker_state *st, uint32_t worker, const char *core,
                             int32_t threads)
{
    if (!st->blas_core[0] || (strcmp(st->blas_core, core) == 0 && st->blas_threads == threads)) {
        return 0;
    }
    PS_LOG(WARN,
           "worker %u: the checkpoint was computed with OpenBLAS %s kernel, %d thread(s), this run "
           "uses %s, %d thread(s): the resumed run is not bit-identical to an uninterrupted one "
           "(set OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS as before to keep it so)",
           worker, st->blas_core, (int)st->blas_threads, core, (int)threads);
    return 1;
}
