#include "worker/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/afile.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"

struct ps_metrics {
    int fd;
    char *path;
    int stamp;     /* every line gets time_unix */
    ps_bytes line; /* reused for every line: no allocation once it has grown */
};

/* The JSON value of one pair, or NULL when out of memory or of an unknown
 * type (*rc says which; logged). */
static ps_json *kv_value(const ps_metric_kv *kv, size_t i, int *rc)
{
    switch (kv->type) {
    case PS_METRIC_INT:
        return ps_json_int(kv->v.i);
    case PS_METRIC_DOUBLE:
        return ps_json_real(kv->v.d);
    case PS_METRIC_STRING:
        return ps_json_string(kv->v.s);
    case PS_METRIC_BOOL:
        return ps_json_bool(kv->v.b);
    case PS_METRIC_OBJECT:
        return ps_metrics_object(kv->v.obj.kvs, kv->v.obj.n, rc);
    }
    PS_LOG(ERROR, "metric %zu \"%s\" has unknown type %d", i, kv->key, (int)kv->type);
    *rc = PS_EINVAL;
    return NULL;
}

ps_json *ps_metrics_object(const ps_metric_kv *kvs, size_t n, int *rc)
{
    ps_json *obj = ps_json_object();
    *rc = obj ? 0 : PS_ENOMEM;
    for (size_t i = 0; !*rc && i < n; i++) {
        if (!kvs[i].key) {
            PS_LOG(ERROR, "metric %zu has no key", i);
            *rc = PS_EINVAL;
            break;
        }
        int why = PS_ENOMEM;
        if (ps_json_set(obj, kvs[i].key, kv_value(&kvs[i], i, &why))) {
            *rc = why ? why : PS_ENOMEM;
        }
    }
    if (*rc) {
        ps_json_free(&obj);
    }
    return obj;
}

static double wall_now(struct timespec *ts)
{
    clock_gettime(CLOCK_REALTIME, ts);
    return (double)ts->tv_sec + (double)(ts->tv_nsec / 1000) * 1e-6;
}

void ps_metrics_stamp(ps_metrics *m, int on)
{
    m->stamp = on != 0;
}

/* Cuts the file back to just after its last newline: a crash during a
 * write can leave half a line, which would break every JSON reader. */
static int drop_partial_line(int fd, const char *path)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        PS_LOG(ERROR, "%s: cannot stat: %s", path, strerror(errno));
        return PS_EIO;
    }
    off_t end = sb.st_size, pos = end;
    char chunk[4096];
    while (pos > 0) {
        size_t n = pos < (off_t)sizeof chunk ? (size_t)pos : sizeof chunk;
        ssize_t r = pread(fd, chunk, n, pos - (off_t)n);
        if (r != (ssize_t)n) {
            PS_LOG(ERROR, "%s: read failed: %s", path, r < 0 ? strerror(errno) : "short read");
            return PS_EIO;
        }
        size_t i = n;
        while (i > 0 && chunk[i - 1] != '\n') {
            i--;
        }
        if (i > 0) {
            pos = pos - (off_t)n + (off_t)i;
            break;
        }
        pos -= (off_t)n;
    }
    if (pos == end) {
        return 0;
    }
    PS_LOG(WARN, "%s: dropping a partial last line of %lld bytes (interrupted write)", path,
           (long long)(end - pos));
    if (ftruncate(fd, pos) != 0) {
        PS_LOG(ERROR, "%s: cannot truncate the partial last line: %s", path, strerror(errno));
        return PS_EIO;
    }
    return 0;
}

int ps_metrics_open(ps_metrics **out, const char *path, ps_metrics_mode mode)
{
    int rc = 0;
    *out = NULL;
    if (mode != PS_METRICS_TRUNCATE && mode != PS_METRICS_APPEND) {
        PS_LOG(ERROR, "%s: unknown metrics open mode %d", path, (int)mode);
        rc = PS_EINVAL;
        goto fail_alloc;
    }
    ps_metrics *m = ps_calloc(1, sizeof *m);
    if (!m) {
        rc = PS_ENOMEM;
        goto fail_alloc;
    }
    m->fd = -1;
    m->path = ps_strdup(path);
    if (!m->path) {
        rc = PS_ENOMEM;
        goto fail_open;
    }
    /* --metrics runs/x.jsonl makes runs/, as --save-model makes its DIR. */
    if ((rc = ps_afile_mkdirs(path, 1))) {
        goto fail_open;
    }
    /* O_APPEND: every line lands at the end even if another process (a
     * `tee`, a restarted job) has the file open too. */
    int flags = O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC;
    if (mode == PS_METRICS_TRUNCATE) {
        flags |= O_TRUNC;
    }
    m->fd = open(path, flags, 0666);
    if (m->fd < 0) {
        PS_LOG(ERROR, "%s: cannot open metrics file: %s", path, strerror(errno));
        rc = PS_EIO;
        goto fail_open;
    }
    if (mode == PS_METRICS_APPEND) {
        rc = drop_partial_line(m->fd, path);
        if (rc) {
            goto fail_open;
        }
    }
    *out = m;
    return 0;

fail_open:
    if (m->fd >= 0) {
        close(m->fd);
    }
    ps_free(m->path);
    ps_free(m);
fail_alloc:
    return rc;
}

int ps_metrics_write(ps_metrics *m, const ps_metric_kv *kvs, size_t n)
{
    int rc = 0;
    ps_json *obj = ps_metrics_object(kvs, n, &rc);
    if (rc) {
        goto done;
    }
    int stamped = 0;
    for (size_t i = 0; i < n; i++) {
        stamped |= strcmp(kvs[i].key, "time_unix") == 0;
    }
    if (m->stamp && !stamped) {
        struct timespec ts;
        rc = ps_json_set(obj, "time_unix", ps_json_real(wall_now(&ts)));
    }
    m->line.len = 0;
    if (rc || (rc = ps_json_dump(obj, 0, &m->line)) ||
        (rc = PS_GROW(m->line.data, m->line.cap, m->line.len + 1))) {
        goto done;
    }
    m->line.data[m->line.len++] = '\n';
    /* One write(2) per line: a crash loses at most this line, and
     * `tail -f` never sees half of one. */
    if (ps_afile_write_all(m->fd, m->line.data, m->line.len) != 0) {
        PS_LOG(ERROR, "%s: metrics write failed: %s", m->path, strerror(errno));
        rc = PS_EIO;
    }
done:
    if (rc == PS_EINVAL) {
        PS_LOG(ERROR, "%s: a metrics line with a bad pair (above) was not written", m->path);
    }
    ps_json_free(&obj);
    return rc;
}

int ps_metrics_write_header(ps_metrics *m, const ps_metrics_header *h)
{
    struct timespec ts;
    double now = wall_now(&ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32], iso[64];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(iso, sizeof iso, "%s.%03ldZ", when, ts.tv_nsec / 1000000);
    ps_metric_kv kv[] = {
        PS_METRIC_S("event", "header"),
        PS_METRIC_S("time", iso),
        PS_METRIC_D("time_unix", now),
        PS_METRIC_S("run_id", h->run_id),
        PS_METRIC_S("adamps_version", h->version),
        PS_METRIC_O("config", h->config, h->nconfig),
    };
    return ps_metrics_write(m, kv, sizeof kv / sizeof kv[0]);
}

/* The "step" of one line (len bytes, no newline), or -1 when it has none. */
static int64_t line_step(const char *line, size_t len)
{
    static const char key[] = "\"step\":";
    for (size_t i = 0; i + sizeof key - 1 < len; i++) {
        if (memcmp(line + i, key, sizeof key - 1) == 0) {
            return strtoll(line + i + sizeof key - 1, NULL, 10);
        }
    }
    return -1;
}

int ps_metrics_truncate_from(ps_metrics *m, int64_t step, size_t *dropped)
{
    *dropped = 0;
    struct stat sb;
    if (fstat(m->fd, &sb) != 0) {
        PS_LOG(ERROR, "%s: cannot stat: %s", m->path, strerror(errno));
        return PS_EIO;
    }
    if (!S_ISREG(sb.st_mode)) {
        return 0;
    }
    /* Whole lines go through m->line, which grows to the longest. */
    off_t pos = 0, cut = -1, line_start = 0;
    m->line.len = 0;
    char chunk[65536];
    for (;;) {
        ssize_t r = pread(m->fd, chunk, sizeof chunk, pos);
        if (r < 0) {
            PS_LOG(ERROR, "%s: read failed: %s", m->path, strerror(errno));
            return PS_EIO;
        }
        for (ssize_t i = 0; i < r; i++) {
            if (chunk[i] != '\n') {
                if (PS_GROW(m->line.data, m->line.cap, m->line.len + 1)) {
                    return PS_ENOMEM;
                }
                m->line.data[m->line.len++] = (uint8_t)chunk[i];
                continue;
            }
            if (cut < 0 && line_step((const char *)m->line.data, m->line.len) >= step) {
                cut = line_start;
            }
            *dropped += cut >= 0;
            line_start = pos + i + 1;
            m->line.len = 0;
        }
        if (r == 0) {
            break;
        }
        pos += r;
    }
    if (cut >= 0 && ftruncate(m->fd, cut) != 0) {
        PS_LOG(ERROR, "%s: cannot drop the lines from step %lld on: %s", m->path, (long long)step,
               strerror(errno));
        return PS_EIO;
    }
    return 0;
}

int ps_metrics_close(ps_metrics **pm)
{
    int rc = 0;
    ps_metrics *m = pm ? *pm : NULL;
    if (m) {
        if (close(m->fd) != 0) {
            PS_LOG(ERROR, "%s: close of metrics file failed: %s", m->path, strerror(errno));
            rc = PS_EIO;
        }
        ps_free(m->line.data);
        ps_free(m->path);
        ps_free(m);
        *pm = NULL;
    }
    return rc;
}
