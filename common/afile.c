#include "common/afile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/comm.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

/* Writes go in pieces this big with a heartbeat between them, and what
 * was written is pushed to disk this often, so a rank writing a large file
 * to a slow file system never spends long in one call (its peers would
 * take it for hung: docs/design.md, "No silent hang"). */
#define WRITE_PIECE ((size_t)8 << 20)
#define FLUSH_EVERY ((size_t)256 << 20)

struct ps_afile {
    int fd;
    int failed; /* a write failed and was logged; commit must not rename */
    size_t unflushed;
    char *path;
    char *tmp;
    char *dir; /* for the directory fsync; kept so commit allocates nothing */
};

/* Directory of path, for fsync after rename: "a/b" -> "a", "b" -> ".",
 * "/b" -> "/". */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        return ps_strdup(".");
    }
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = ps_malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

int ps_afile_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return PS_EIO;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static void atomic_free(ps_afile *f)
{
    ps_free(f->dir);
    ps_free(f->tmp);
    ps_free(f->path);
    ps_free(f);
}

int ps_afile_open(ps_afile **out, const char *path)
{
    int rc = 0;
    *out = NULL;
    ps_afile *f = ps_calloc(1, sizeof *f);
    if (!f) {
        rc = PS_ENOMEM;
        goto fail_alloc;
    }
    f->fd = -1;
    size_t n = strlen(path) + 32;
    f->path = ps_strdup(path);
    f->tmp = ps_malloc(n);
    f->dir = dir_of(path);
    if (!f->path || !f->tmp || !f->dir) {
        rc = PS_ENOMEM;
        goto fail_open;
    }
    snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    /* 0666 less the umask, as any file the user creates. */
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (f->fd < 0) {
        PS_LOG(ERROR, "%s: cannot create temp file %s: %s", path, f->tmp, strerror(errno));
        rc = PS_EIO;
        goto fail_open;
    }
    *out = f;
    return 0;

fail_open:
    atomic_free(f);
fail_alloc:
    return rc;
}

static int flush(ps_afile *f)
{
    f->unflushed = 0;
    if (fdatasync(f->fd) != 0) {
        PS_LOG(ERROR, "%s: fdatasync of temp file %s failed: %s", f->path, f->tmp, strerror(errno));
        f->failed = 1;
        return PS_EIO;
    }
    return 0;
}

int ps_afile_write(ps_afile *f, const void *buf, size_t len)
{
    const char *p = buf;
    while (!f->failed && len) {
        size_t n = len < WRITE_PIECE ? len : WRITE_PIECE;
        if (ps_afile_write_all(f->fd, p, n) != 0) {
            PS_LOG(ERROR, "%s: write to temp file %s failed: %s", f->path, f->tmp, strerror(errno));
            f->failed = 1;
            break;
        }
        p += n;
        len -= n;
        if ((f->unflushed += n) >= FLUSH_EVERY && flush(f)) {
            break;
        }
        if (len) {
            ps_comm_alive();
        }
    }
    return f->failed ? PS_EIO : 0;
}

void ps_afile_abort(ps_afile **pf)
{
    ps_afile *f = pf ? *pf : NULL;
    if (!f) {
        return;
    }
    if (f->fd >= 0) {
        close(f->fd);
        unlink(f->tmp);
    }
    atomic_free(f);
    *pf = NULL;
}

int ps_afile_commit(ps_afile **pf)
{
    int rc = 0;
    ps_afile *f = *pf;
    if (f->failed) {
        rc = PS_EIO;
        goto fail_sync;
    }
    /* The data must be on disk before the rename makes it visible, or a
     * crash can leave an empty file under the final name. */
    if (fsync(f->fd) != 0) {
        PS_LOG(ERROR, "%s: fsync of temp file %s failed: %s", f->path, f->tmp, strerror(errno));
        rc = PS_EIO;
        goto fail_sync;
    }
    int fd = f->fd;
    f->fd = -1;
    if (close(fd) != 0) {
        PS_LOG(ERROR, "%s: close of temp file %s failed: %s", f->path, f->tmp, strerror(errno));
        rc = PS_EIO;
        goto fail_close;
    }
    if (rename(f->tmp, f->path) != 0) {
        PS_LOG(ERROR, "%s: rename from %s failed: %s", f->path, f->tmp, strerror(errno));
        rc = PS_EIO;
        goto fail_close;
    }
    /* Makes the rename itself durable. The new file is already in place, so
     * a failure here is reported but nothing is removed. */
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL)) {
        PS_LOG(ERROR, "%s: fsync of directory %s failed: %s", f->path, f->dir, strerror(errno));
        rc = PS_EIO;
    }
    if (dfd >= 0) {
        close(dfd);
    }
    goto done;

fail_close:
    unlink(f->tmp);
    goto done;
fail_sync:
    close(f->fd);
    unlink(f->tmp);
done:
    atomic_free(f);
    *pf = NULL;
    return rc;
}

int ps_afile_mkdirs(const char *path, int parent_of)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        PS_LOG(ERROR, "directory name is too long: %.64s...", path);
        return PS_EINVAL;
    }
    if (parent_of) {
        char *slash = strrchr(buf, '/');
        if (!slash) {
            return 0; /* the current directory */
        }
        *slash = '\0';
    }
    /* Each prefix ending at a '/' (and the whole) in turn. */
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') {
            continue;
        }
        char c = *p;
        *p = '\0';
        if (buf[0] && mkdir(buf, 0777) != 0 && errno != EEXIST) {
            PS_LOG(ERROR, "cannot create directory %s: %s", buf, strerror(errno));
            return PS_EIO;
        }
        *p = c;
        if (c == '\0') {
            return 0;
        }
    }
}
