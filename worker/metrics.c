#include "worker/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/afile.h"
#include "common/err.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"

struct ps_metrics {
    int fd;
    char *path;
    char *line; /* reused for every line: no allocation once it has grown */
    size_t len, cap;
};

static int put(ps_metrics *m, const void *s, size_t n)
{
    void *p = m->line;
    int rc = ps_grow(&p, &m->cap, m->len + n, 1);
    m->line = p;
    if (rc) {
        return rc;
    }
    memcpy(m->line + m->len, s, n);
    m->len += n;
    return 0;
}

static int put_str(ps_metrics *m, const char *s)
{
    return put(m, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one.
 * Rejects overlong forms, surrogates and code points past U+10FFFF, which
 * JSON parsers refuse. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

static int put_json_string(ps_metrics *m, const char *str)
{
    int rc = put(m, "\"", 1);
    const unsigned char *s = (const unsigned char *)str;
    while (!rc && *s) {
        unsigned char c = *s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            rc = put(m, esc, 2);
            s++;
        } else if (c < 0x20) {
            const char *short_form = c == '\n'   ? "\\n"
                                     : c == '\t' ? "\\t"
                                     : c == '\r' ? "\\r"
                                     : c == '\b' ? "\\b"
                                     : c == '\f' ? "\\f"
                                                 : NULL;
            if (short_form) {
                rc = put_str(m, short_form);
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                rc = put_str(m, esc);
            }
            s++;
        } else {
            /* The terminating NUL stops utf8_len at a truncated sequence. */
            size_t n = utf8_len(s);
            if (n) {
                rc = put(m, s, n);
                s += n;
            } else {
                rc = put_str(m, "\\ufffd");
                s++;
            }
        }
    }
    return rc ? rc : put(m, "\"", 1);
}

static int put_double(ps_metrics *m, double d)
{
    if (!isfinite(d)) {
        return put_str(m, "null"); /* JSON has no NaN or Infinity */
    }
    char num[40];
    snprintf(num, sizeof num, "%.17g", d);
    /* A locale with a decimal comma would make invalid JSON. */
    for (char *p = num; *p; p++) {
        if (*p == ',') {
            *p = '.';
        }
    }
    return put_str(m, num);
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
    /* O_APPEND: every line lands at the end even if another process (a
     * `tee`, a restarted job) has the file open too. */
    int flags = O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC;
    if (mode == PS_METRICS_TRUNCATE) {
        flags |= O_TRUNC;
    }
    m->fd = open(path, flags, 0644);
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
    m->len = 0;
    rc = put(m, "{", 1);
    for (size_t i = 0; !rc && i < n; i++) {
        const ps_metric_kv *kv = &kvs[i];
        if (!kv->key) {
            PS_LOG(ERROR, "%s: metric %zu has no key", m->path, i);
            rc = PS_EINVAL;
            break;
        }
        if (i) {
            rc = put(m, ",", 1);
        }
        if (!rc) {
            rc = put_json_string(m, kv->key);
        }
        if (!rc) {
            rc = put(m, ":", 1);
        }
        if (rc) {
            break;
        }
        char num[24];
        switch (kv->type) {
        case PS_METRIC_INT:
            snprintf(num, sizeof num, "%" PRId64, kv->v.i);
            rc = put_str(m, num);
            break;
        case PS_METRIC_DOUBLE:
            rc = put_double(m, kv->v.d);
            break;
        case PS_METRIC_STRING:
            rc = kv->v.s ? put_json_string(m, kv->v.s) : put_str(m, "null");
            break;
        default:
            PS_LOG(ERROR, "%s: metric \"%s\" has unknown type %d", m->path, kv->key,
                   (int)kv->type);
            rc = PS_EINVAL;
            break;
        }
    }
    if (!rc) {
        rc = put(m, "}\n", 2);
    }
    if (rc) {
        goto done;
    }
    if (ps_afile_write_all(m->fd, m->line, m->len) != 0) {
        PS_LOG(ERROR, "%s: metrics write failed: %s", m->path, strerror(errno));
        rc = PS_EIO;
    }
done:
    return rc;
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
        ps_free(m->line);
        ps_free(m->path);
        ps_free(m);
        *pm = NULL;
    }
    return rc;
}
