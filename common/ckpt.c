#include "common/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/afile.h"
#include "common/comm.h"
#include "common/err.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"

#define PATH_BYTES 4096

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

/* DIR/MANIFEST (clock < 0) or DIR/ckpt-<clock>/MANIFEST. */
static int manifest_path(char *out, size_t len, const char *dir, int64_t clock)
{
    return clock < 0 ? fit(snprintf(out, len, "%s/MANIFEST", dir), len)
                     : fit(snprintf(out, len, "%s/ckpt-%lld/MANIFEST", dir, (long long)clock), len);
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
    char path[PATH_BYTES];
    int rc = mkdir_ok(dir);
    if (rc || (rc = ps_ckpt_dir_path(path, sizeof path, dir, clock))) {
        return rc;
    }
    return mkdir_ok(path);
}

static int write_manifest(const char *path, const ps_ckpt_manifest *m, const char *config)
{
    char body[64];
    /* The payload names the directory too, for people reading the file. */
    int n = snprintf(body, sizeof body, "ckpt-%lld\n", (long long)m->clock);
    ps_file_header h = {.clock = m->clock,
                        .nservers = m->nservers,
                        .nworkers = m->nworkers,
                        .config = (char *)config};
    snprintf(h.kind, sizeof h.kind, "manifest");
    const void *parts[1] = {body};
    size_t lens[1] = {(size_t)n};
    return ps_file_write_atomic(path, &h, parts, lens, 1);
}

int ps_ckpt_commit(const char *dir, const ps_ckpt_manifest *m, const char *config)
{
    char path[PATH_BYTES];
    int rc = manifest_path(path, sizeof path, dir, m->clock);
    if (rc || (rc = write_manifest(path, m, config)) ||
        (rc = manifest_path(path, sizeof path, dir, -1))) {
        return rc;
    }
    return write_manifest(path, m, config);
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

int ps_ckpt_read_manifest(const char *dir, int64_t clock, ps_ckpt_manifest *m, char **config)
{
    char path[PATH_BYTES];
    if (config) {
        *config = NULL;
    }
    if (manifest_path(path, sizeof path, dir, clock)) {
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
    if (m->clock < 0 || m->nservers == 0 || m->nworkers == 0 || (clock >= 0 && m->clock != clock)) {
        PS_LOG(ERROR, "%s: clock %lld with %u servers and %u workers is not this checkpoint", path,
               (long long)m->clock, m->nservers, m->nworkers);
        rc = PS_ECKPT;
    } else if (config) {
        *config = h.config; /* the header gives it up */
        h.config = NULL;
    }
    ps_free(payload);
    ps_file_header_fini(&h);
    return rc;
}

/* The clock of a DIR entry named ckpt-<digits>, or -1. */
static int64_t entry_clock(const char *name)
{
    if (strncmp(name, "ckpt-", 5) != 0 || name[5] < '0' || name[5] > '9') {
        return -1;
    }
    char *end;
    errno = 0;
    long long v = strtoll(name + 5, &end, 10);
    return *end || errno ? -1 : (int64_t)v;
}

/* Every ckpt-<N> in dir, by clock descending; *out is ps_malloc'ed. */
static int scan(const char *dir, int64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        PS_LOG(ERROR, "cannot read checkpoint directory %s: %s", dir, strerror(errno));
        return PS_EIO;
    }
    size_t cap = 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        int64_t c = entry_clock(e->d_name);
        if (c >= 0 && (rc = PS_GROW(*out, cap, *n + 1)) == 0) {
            (*out)[(*n)++] = c;
        }
    }
    closedir(d);
    /* Newest first; a handful of entries. */
    for (size_t i = 1; rc == 0 && i < *n; i++) {
        for (size_t j = i; j > 0 && (*out)[j - 1] < (*out)[j]; j--) {
            int64_t t = (*out)[j];
            (*out)[j] = (*out)[j - 1];
            (*out)[j - 1] = t;
        }
    }
    if (rc) {
        ps_free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int ps_ckpt_list(const char *dir, ps_ckpt_manifest *out, uint32_t max, uint32_t *n)
{
    int64_t *clocks;
    size_t nc;
    *n = 0;
    int rc = scan(dir, &clocks, &nc);
    for (size_t i = 0; rc == 0 && i < nc && *n < max; i++) {
        char path[PATH_BYTES];
        if (manifest_path(path, sizeof path, dir, clocks[i]) || access(path, F_OK) != 0) {
            continue; /* incomplete: its manifest was never written */
        }
        int mrc = ps_ckpt_read_manifest(dir, clocks[i], &out[*n], NULL);
        if (mrc == PS_ENOMEM) {
            rc = mrc;
        } else if (mrc) {
            PS_LOG(WARN, "%s/ckpt-%lld: its manifest does not read (above); skipped", dir,
                   (long long)clocks[i]);
        } else {
            (*n)++;
        }
    }
    ps_free(clocks);
    return rc;
}

void ps_ckpt_remove(const char *dir, int64_t clock)
{
    char path[PATH_BYTES], file[PATH_BYTES + 300];
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

void ps_ckpt_prune(const char *dir, int64_t newest, uint32_t keep)
{
    int64_t *clocks;
    size_t n;
    if (scan(dir, &clocks, &n)) {
        return;
    }
    uint32_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_BYTES];
        int complete =
            manifest_path(path, sizeof path, dir, clocks[i]) == 0 && access(path, F_OK) == 0;
        if (clocks[i] <= newest && complete && kept < keep) {
            kept++;
            continue;
        }
        if (clocks[i] > newest) {
            PS_LOG(INFO,
                   "removing %s/ckpt-%lld: newer than ckpt-%lld, from a run that did not go on",
                   dir, (long long)clocks[i], (long long)newest);
        }
        ps_ckpt_remove(dir, clocks[i]);
    }
    ps_free(clocks);
}

/* loss_ema, have_ema, time_s, blas_threads, blas_core (zero-padded). */
#define WORKER_STATE_BYTES                                                                         \
    (sizeof(double) + sizeof(int32_t) + sizeof(double) + sizeof(int32_t) + PS_CKPT_BLAS_CORE)

int ps_ckpt_write_worker(const char *dir, int64_t clock, uint32_t worker, uint32_t nworkers,
                         const ps_ckpt_worker_state *st, const char *config)
{
    char path[PATH_BYTES];
    int rc = ps_ckpt_worker_path(path, sizeof path, dir, clock, worker);
    if (rc) {
        return rc;
    }
    ps_file_header h = {
        .clock = clock, .rank = worker, .nworkers = nworkers, .config = (char *)config};
    snprintf(h.kind, sizeof h.kind, "worker");
    char core[PS_CKPT_BLAS_CORE] = {0}; /* zero-padded: the file's bytes are defined */
    snprintf(core, sizeof core, "%s", st->blas_core);
    const void *parts[5] = {&st->loss_ema, &st->have_ema, &st->time_s, &st->blas_threads, core};
    size_t lens[5] = {sizeof st->loss_ema, sizeof st->have_ema, sizeof st->time_s,
                      sizeof st->blas_threads, sizeof core};
    return ps_file_write_atomic(path, &h, parts, lens, 5);
}

int ps_ckpt_read_worker(const char *dir, int64_t clock, uint32_t worker, uint32_t nworkers,
                        ps_ckpt_worker_state *st)
{
    char path[PATH_BYTES];
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
        len != WORKER_STATE_BYTES) {
        PS_LOG(ERROR,
               "%s: written by worker %u of %u at clock %lld with %zu bytes of state; this job "
               "resumes worker %u of %u at clock %lld (resuming needs the same worker count)",
               path, h.rank, h.nworkers, (long long)h.clock, len, worker, nworkers,
               (long long)clock);
        rc = PS_ECKPT;
    } else {
        const char *p = payload;
        size_t at = 0;
        memset(st, 0, sizeof *st);
        memcpy(&st->loss_ema, p + at, sizeof st->loss_ema);
        at += sizeof st->loss_ema;
        memcpy(&st->have_ema, p + at, sizeof st->have_ema);
        at += sizeof st->have_ema;
        memcpy(&st->time_s, p + at, sizeof st->time_s);
        at += sizeof st->time_s;
        memcpy(&st->blas_threads, p + at, sizeof st->blas_threads);
        at += sizeof st->blas_threads;
        memcpy(st->blas_core, p + at, PS_CKPT_BLAS_CORE - 1);
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

/* ---- the directory at start-up ---------------------------------------- */

/* "1.5 GiB" and the like, for messages. */
static void human(char *buf, size_t n, uint64_t bytes)
{
    const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

int ps_ckpt_prepare_dir(const char *dir, uint64_t need_bytes)
{
    if (ps_afile_mkdirs(dir, 0)) {
        PS_LOG(ERROR, "--checkpoint-dir %s cannot be created", dir);
        return PS_ECONFIG;
    }
    char probe[PATH_BYTES];
    if (fit(snprintf(probe, sizeof probe, "%s/.probe.%ld", dir, (long)getpid()), sizeof probe)) {
        return PS_ECONFIG;
    }
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        PS_LOG(ERROR, "--checkpoint-dir %s is not writable: %s", dir, strerror(errno));
        return PS_ECONFIG;
    }
    close(fd);
    unlink(probe);
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0) {
        PS_LOG(WARN, "--checkpoint-dir %s: cannot tell its free space: %s", dir, strerror(errno));
        return 0;
    }
    uint64_t avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    if (avail < need_bytes) {
        char have[32], need[32];
        human(have, sizeof have, avail);
        human(need, sizeof need, need_bytes);
        PS_LOG(ERROR, "--checkpoint-dir %s has %s free; one checkpoint of this model needs %s", dir,
               have, need);
        return PS_ECONFIG;
    }
    return 0;
}

int ps_ckpt_lock(const char *dir, double wait_secs, int *fdp)
{
    char path[PATH_BYTES];
    *fdp = -1;
    if (fit(snprintf(path, sizeof path, "%s/LOCK", dir), sizeof path)) {
        return PS_ECONFIG;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        PS_LOG(ERROR, "%s: cannot open the lock file: %s", path, strerror(errno));
        return PS_EIO;
    }
    double t0 = ps_comm_time();
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR) {
            continue;
        }
        if (errno != EWOULDBLOCK) {
            PS_LOG(WARN,
                   "%s: cannot lock (%s): this file system has no locks, so a second job on "
                   "the same directory would go unnoticed",
                   path, strerror(errno));
            *fdp = fd;
            return 0;
        }
        if (ps_comm_time() - t0 >= wait_secs) {
            char holder[256] = "";
            ssize_t got = pread(fd, holder, sizeof holder - 1, 0);
            holder[got > 0 ? got : 0] = '\0';
            holder[strcspn(holder, "\n")] = '\0';
            PS_LOG(ERROR,
                   "--checkpoint-dir %s is in use by another adamps job (%s): two jobs in one "
                   "directory would mix their checkpoints; give this one its own directory",
                   dir, holder[0] ? holder : "its LOCK names no process");
            close(fd);
            return PS_ECONFIG;
        }
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
        ps_comm_alive();
    }
    char host[256] = "?", text[400];
    gethostname(host, sizeof host - 1);
    int n = snprintf(text, sizeof text, "pid %ld on host %s\n", (long)getpid(), host);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
        PS_LOG(WARN, "%s: cannot record this job in the lock file: %s", path, strerror(errno));
    }
    *fdp = fd;
    return 0;
}

void ps_ckpt_unlock(int *fd)
{
    if (*fd >= 0) {
        close(*fd); /* releases the flock */
    }
    *fd = -1;
}

/* Removes path if it is an orphan temp file ("NAME.tmp.<pid>"). */
static void sweep_file(const char *path, const char *name, time_t job_start)
{
    const char *t = strstr(name, ".tmp.");
    if (!t) {
        return;
    }
    char *end;
    long pid = strtol(t + 5, &end, 10);
    struct stat sb;
    if (*end || pid <= 0 || lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        return;
    }
    int dead = kill((pid_t)pid, 0) != 0 && errno == ESRCH;
    if (!dead && sb.st_mtime >= job_start) {
        return;
    }
    if (unlink(path) == 0) {
        PS_LOG(INFO, "removed %s (%lld bytes), a temp file left by process %ld (%s)", path,
               (long long)sb.st_size, pid, dead ? "no longer running" : "older than this job");
    } else {
        PS_LOG(WARN, "cannot remove the orphan temp file %s: %s", path, strerror(errno));
    }
}

static void sweep_dir(const char *dir, time_t job_start, int depth)
{
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    struct dirent *e;
    char path[PATH_BYTES + 300];
    while ((e = readdir(d))) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (entry_clock(e->d_name) >= 0 && depth == 0) {
            sweep_dir(path, job_start, 1);
        } else {
            sweep_file(path, e->d_name, job_start);
        }
    }
    closedir(d);
}

void ps_ckpt_sweep(const char *dir, time_t job_start)
{
    sweep_dir(dir, job_start, 0);
}
