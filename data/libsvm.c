#include "data/libsvm.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/comm.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "data/fhash.h"
#include "data/labels.h"
#include "data/zread.h"

/* First read size; the buffer only grows past it for longer lines. */
#define LIBSVM_BUF0 ((size_t)64 << 10)

struct ps_libsvm {
    char *path;
    ps_zread *z; /* plain or gzip; offsets below are in its (decompressed) data */
    ps_libsvm_opts opts;
    int32_t *labels; /* opts.labels copied (opts.labels points here) */
    char *hint;      /* opts.labels_hint copied */
    uint64_t start;  /* first line start >= begin */
    uint64_t end;    /* lines starting at or after this belong to the next range */

    char *buf;  /* data bytes [buf_off, buf_off + len) */
    size_t cap; /* buf holds cap bytes; one is kept for a terminating NUL */
    size_t pos; /* next unread byte */
    size_t len;
    size_t scanned;   /* bytes after pos known to hold no newline */
    uint64_t buf_off; /* data offset of buf[0] */
    int eof;

    uint64_t rel_line;     /* lines of the range consumed so far */
    uint64_t lines_before; /* newlines before start, once counted */
    int lines_known;
    uint64_t err_line;
    int err; /* sticky until rewind */

    uint64_t id_end;  /* max feature id + 1 seen (dim == 0) */
    uint64_t max_dim; /* dim == 0: ids must stay below this */
    ps_labels seen;   /* discovery: the labels seen */
    uint64_t ignored_ids, ignored_rows;
};

int ps_libsvm_file_size(const char *path, uint64_t *size)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        PS_LOG(ERROR, "%s: cannot stat: %s", path, strerror(errno));
        return PS_EIO;
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

/* Counts the newlines before r->start on a second stream, leaving the
 * reader's alone. */
static void count_lines_before(ps_libsvm *r)
{
    char tmp[16384];
    uint64_t count = 0;
    ps_zread *z = NULL;
    if (ps_zread_open(&z, r->path) == 0) {
        for (uint64_t off = 0; off < r->start;) {
            size_t want = r->start - off < sizeof tmp ? (size_t)(r->start - off) : sizeof tmp;
            size_t got = 0;
            if (ps_zread_read(z, tmp, want, &got) != 0 || got == 0) {
                break; /* only used for a message: a short count beats none */
            }
            for (const char *p = tmp, *e = tmp + got; (p = memchr(p, '\n', (size_t)(e - p))); p++) {
                count++;
            }
            off += got;
        }
    }
    ps_zread_close(&z);
    r->lines_before = count;
    r->lines_known = 1;
}

/* Logs "path:line: why" for the line just read and returns PS_EFORMAT. */
__attribute__((format(printf, 2, 3))) static int bad_line(ps_libsvm *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!r->lines_known) {
        count_lines_before(r);
    }
    r->err_line = r->lines_before + r->rel_line;
    PS_LOG(ERROR, "%s:%" PRIu64 ": %s", r->path, r->err_line, msg);
    return PS_EFORMAT;
}

/* Next line of the range, NUL-terminated, without its '\n', and the data
 * offset of its first byte. Returns 0, PS_EEOF (no line starts before
 * end), PS_EIO, PS_EFORMAT (corrupt gzip data; logged by zread) or
 * PS_ENOMEM. */
static int next_line(ps_libsvm *r, char **line, size_t *len, uint64_t *at)
{
    for (;;) {
        *at = r->buf_off + r->pos;
        if (*at >= r->end) {
            return PS_EEOF;
        }
        char *from = r->buf + r->pos + r->scanned;
        char *nl = memchr(from, '\n', r->len - r->pos - r->scanned);
        if (nl) {
            *line = r->buf + r->pos;
            *len = (size_t)(nl - *line);
            *nl = '\0';
            r->pos = (size_t)(nl - r->buf) + 1;
            r->scanned = 0;
            r->rel_line++;
            return 0;
        }
        r->scanned = r->len - r->pos;
        if (r->eof) {
            if (r->pos == r->len) {
                return PS_EEOF;
            }
            /* The last line has no newline. */
            *line = r->buf + r->pos;
            *len = r->len - r->pos;
            r->buf[r->len] = '\0';
            r->pos = r->len;
            r->scanned = 0;
            r->rel_line++;
            return 0;
        }
        if (r->pos > 0) {
            memmove(r->buf, r->buf + r->pos, r->len - r->pos);
            r->buf_off += r->pos;
            r->len -= r->pos;
            r->pos = 0;
        }
        if (r->cap - r->len < LIBSVM_BUF0 / 2) {
            /* A long line: grow rather than read in slivers. */
            size_t ncap = r->cap * 2;
            char *nb = ps_realloc(r->buf, ncap);
            if (!nb) {
                return PS_ENOMEM;
            }
            r->buf = nb;
            r->cap = ncap;
        }
        /* A long scan or load keeps this rank's peers from timing out. */
        ps_comm_alive();
        size_t got = 0;
        int rc = ps_zread_read(r->z, r->buf + r->len, r->cap - 1 - r->len, &got);
        if (rc) {
            return rc;
        }
        r->eof = got == 0;
        r->len += got;
    }
}

/* Whitespace between tokens; '\r' too, so CRLF files parse. */
static inline int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Cuts the next token out of *p (NUL-terminating it in place); NULL at the
 * end of the line. */
static char *next_token(char **p)
{
    char *s = *p;
    while (is_blank(*s)) {
        s++;
    }
    if (*s == '\0') {
        *p = s;
        return NULL;
    }
    char *e = s;
    while (*e && !is_blank(*e)) {
        e++;
    }
    if (*e) {
        *e++ = '\0';
    }
    *p = e;
    return s;
}

/* 1 if s is a plain decimal number, [+-]digits[.digits][(e|E)[+-]digits]
 * with a digit on one side of the point at least. strtod also reads hex
 * floats (0x1p3 is 8), inf, infinity and nan in any case: none belongs in
 * a data file, and each would be taken silently. */
static int is_decimal(const char *s)
{
    size_t digits = 0;
    s += *s == '+' || *s == '-';
    for (; *s >= '0' && *s <= '9'; s++) {
        digits++;
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++) {
            digits++;
        }
    }
    if (digits && (*s == 'e' || *s == 'E')) {
        s += 1 + (s[1] == '+' || s[1] == '-');
        if (*s < '0' || *s > '9') {
            return 0;
        }
        while (*s >= '0' && *s <= '9') {
            s++;
        }
    }
    return digits > 0 && *s == '\0';
}

/* The class of label tok, by the three ways of ps_libsvm_opts. In
 * discovery the raw label goes into *cls and is mapped when the call ends
 * (map_discovered). */
static int parse_label(ps_libsvm *r, const char *tok, int32_t *cls)
{
    if (!is_decimal(tok)) {
        return bad_line(r, "label '%.40s' is not a decimal number", tok);
    }
    double v = strtod(tok, NULL);
    if (!isfinite(v) || v != floor(v)) {
        return bad_line(r, "label '%.40s' is not an integer (class labels like +1/-1 or 1..K)",
                        tok);
    }
    if (v < INT32_MIN || v > INT32_MAX) {
        return bad_line(r, "label '%.40s' is out of the 32-bit integer range of class labels", tok);
    }
    int32_t label = (int32_t)v;
    const ps_libsvm_opts *o = &r->opts;
    if (o->labels) {
        long c = ps_labels_find(o->labels, o->nlabels, label);
        if (c < 0) {
            char list[160];
            ps_labels_format(o->labels, o->nlabels, list, sizeof list);
            return bad_line(r, "label %d is not one of the %u labels (%s)%s%s", label, o->nlabels,
                            list, r->hint ? ": " : "", r->hint ? r->hint : "");
        }
        *cls = (int32_t)c;
        return 0;
    }
    if (o->nclasses) {
        if (label < 0 || (uint32_t)label >= o->nclasses) {
            return bad_line(r, "label %d is not a class id in [0, %u)", label, o->nclasses);
        }
        *cls = label;
        return 0;
    }
    int rc = ps_labels_add(&r->seen, label);
    if (rc == PS_ERANGE) {
        return bad_line(r, "label %d makes more than %d distinct labels", label, PS_LABELS_MAX);
    }
    *cls = label;
    return rc;
}

/* Discovery: the rows of this call carry raw labels; each becomes its
 * index among the labels seen so far. */
static void map_discovered(ps_libsvm *r, ps_dataset *chunk)
{
    for (size_t i = 0; !r->opts.labels && !r->opts.nclasses && i < chunk->n; i++) {
        chunk->y[i] = (int32_t)ps_labels_find(r->seen.v, r->seen.n, chunk->y[i]);
    }
}

/* Makes room for one more non-zero at offset at. */
static int room_for_nnz(ps_dataset *d, size_t at)
{
    if (at < d->nnz_cap) {
        return 0;
    }
    size_t want = d->nnz_cap * 2 > 1024 ? d->nnz_cap * 2 : 1024;
    return ps_dataset_reserve(d, d->n_cap, want);
}

/* Parses one line into row chunk->n of chunk. Returns 0 (row added), 1
 * (blank or comment-only line) or an error. */
static int parse_line(ps_libsvm *r, char *s, size_t len, size_t max_rows, ps_dataset *chunk)
{
    int rc = 0;
    if (memchr(s, '\0', len)) {
        return bad_line(r, "NUL byte in line (binary file?)");
    }
    char *hash = memchr(s, '#', len);
    if (hash) {
        *hash = '\0';
    }
    char *p = s;
    char *tok = next_token(&p);
    if (!tok) {
        return 1;
    }
    int32_t cls = 0;
    rc = parse_label(r, tok, &cls);
    if (rc) {
        return rc;
    }
    if (chunk->n + 1 > chunk->n_cap) {
        /* Doubling, capped at max_rows: the chunk never holds more. */
        size_t want = chunk->n_cap * 2 > 64 ? chunk->n_cap * 2 : 64;
        if (want > max_rows) {
            want = max_rows;
        }
        rc = ps_dataset_reserve(chunk, want, chunk->nnz_cap);
        if (rc) {
            return rc;
        }
    }
    size_t row0 = (size_t)chunk->indptr[chunk->n];
    size_t k = 0;
    uint64_t prev = 0;
    int dropped = 0, any = 0;
    while ((tok = next_token(&p))) {
        if (tok[0] == 'q' && strncmp(tok, "qid:", 4) == 0) {
            continue;
        }
        char *colon = strchr(tok, ':');
        if (!colon) {
            return bad_line(r, "feature '%.40s' has no ':' (want index:value)", tok);
        }
        *colon = '\0';
        char *e;
        errno = 0;
        unsigned long long raw = strtoull(tok, &e, 10);
        if (tok[0] < '0' || tok[0] > '9' || *e) {
            return bad_line(r, "feature index '%.40s' is not a non-negative integer", tok);
        }
        if (errno == ERANGE) {
            return bad_line(r, "feature index '%.40s' too large", tok);
        }
        const char *vs = colon + 1;
        if (!is_decimal(vs)) {
            return bad_line(r,
                            "value '%.40s' of feature %llu is not a decimal number (hex floats, "
                            "inf and nan are refused)",
                            vs, raw);
        }
        double v = strtod(vs, NULL);
        if (!isfinite(v) || fabs(v) > FLT_MAX) {
            return bad_line(r, "value '%.40s' of feature %llu is not finite (as float)", vs, raw);
        }
        if (any && raw <= prev) {
            return bad_line(r,
                            "feature index %llu after %" PRIu64 ": indices must be strictly "
                            "ascending",
                            raw, prev);
        }
        prev = raw;
        any = 1;
        uint64_t id = raw;
        if (!r->opts.zero_based) {
            if (raw == 0) {
                return bad_line(r, "feature index 0 in a one-based file (zero-based option?)");
            }
            id = raw - 1;
        }
        if (!r->opts.hash_bits && r->opts.dim && id >= r->opts.dim && r->opts.ignore_past_dim) {
            r->ignored_ids++;
            dropped = 1;
            continue;
        }
        if (!r->opts.hash_bits && r->opts.dim && id >= r->opts.dim) {
            return bad_line(r,
                            "feature index %llu is past the table's %" PRIu64
                            " rows: hash the ids with --hash-bits B, or give a larger "
                            "--features N",
                            raw, r->opts.dim);
        }
        if (!r->opts.hash_bits && !r->opts.dim && id >= r->max_dim) {
            return bad_line(r,
                            "feature index %llu needs a table of more than %" PRIu64
                            " rows (2^40, or what the memory budget holds): hash the ids "
                            "with --hash-bits B",
                            raw, r->max_dim);
        }
        rc = room_for_nnz(chunk, row0 + k);
        if (rc) {
            return rc;
        }
        chunk->idx[row0 + k] = id;
        chunk->val[row0 + k] = (float)v;
        k++;
    }
    if (r->opts.hash_bits) {
        k = ps_fhash_row(chunk->idx + row0, chunk->val + row0, k, r->opts.hash_bits);
    } else if (k > 0 && chunk->idx[row0 + k - 1] >= r->id_end) {
        r->id_end = chunk->idx[row0 + k - 1] + 1;
    }
    r->ignored_rows += dropped;
    chunk->y[chunk->n] = cls;
    chunk->indptr[chunk->n + 1] = row0 + k;
    chunk->n++;
    return 0;
}

static void reset_stream(ps_libsvm *r)
{
    r->pos = 0;
    r->len = 0;
    r->scanned = 0;
    r->buf_off = r->start;
    r->eof = 0;
    r->rel_line = 0;
    r->err = 0;
    r->err_line = 0;
}

/* (Re)opens the stream at data offset `at` (a seek for a plain file; for
 * gzip, inflating up to it). OUT *reached < at only at the end of the data. */
static int open_at(ps_libsvm *r, uint64_t at, uint64_t *reached)
{
    ps_zread_close(&r->z);
    int rc = ps_zread_open(&r->z, r->path);
    if (rc == 0) {
        rc = ps_zread_skip(r->z, at, reached);
    }
    return rc;
}

/* Finds the first line start >= begin: begin itself if the byte before it
 * is a newline, else just past the next newline (the end of the data when
 * there is none). */
static int align_start(ps_libsvm *r, uint64_t begin)
{
    uint64_t off = 0;
    int rc = begin == 0 ? 0 : open_at(r, begin - 1, &off);
    if (rc || begin == 0 || off < begin - 1) {
        r->start = off;
        return rc;
    }
    char tmp[4096];
    for (;;) {
        size_t got = 0;
        if ((rc = ps_zread_read(r->z, tmp, sizeof tmp, &got)) || got == 0) {
            break;
        }
        const char *nl = memchr(tmp, '\n', got);
        if (nl) {
            off += (uint64_t)(nl - tmp) + 1;
            break;
        }
        off += got;
    }
    r->start = off;
    return rc;
}

int ps_libsvm_rewind(ps_libsvm *r)
{
    uint64_t reached = 0;
    reset_stream(r);
    int rc = open_at(r, r->start, &reached);
    if (rc) {
        r->err = rc;
    }
    return rc;
}

int ps_libsvm_open(ps_libsvm **out, const char *path, const ps_libsvm_opts *opts, uint64_t begin,
                   uint64_t end)
{
    int rc = 0;
    ps_libsvm *r = NULL;
    static const ps_libsvm_opts defaults = {0};

    *out = NULL;
    if (!opts) {
        opts = &defaults;
    }
    if (opts->hash_bits) {
        rc = ps_fhash_check_bits(opts->hash_bits);
        if (rc) {
            goto fail_args;
        }
    }
    if (begin > end) {
        PS_LOG(ERROR, "%s: byte range [%" PRIu64 ", %" PRIu64 ") is reversed", path, begin, end);
        rc = PS_EINVAL;
        goto fail_args;
    }
    if (opts->nparts > 1 && opts->part >= opts->nparts) {
        PS_LOG(ERROR, "%s: line part %u of %u", path, opts->part, opts->nparts);
        rc = PS_EINVAL;
        goto fail_args;
    }
    r = ps_calloc(1, sizeof *r);
    if (!r) {
        rc = PS_ENOMEM;
        goto fail_args;
    }
    r->opts = *opts;
    r->max_dim =
        opts->max_dim && opts->max_dim < PS_LIBSVM_MAX_DIM ? opts->max_dim : PS_LIBSVM_MAX_DIM;
    r->path = ps_strdup(path);
    r->cap = LIBSVM_BUF0;
    r->buf = ps_malloc(r->cap);
    if (opts->labels && opts->nlabels) {
        r->labels = ps_calloc(opts->nlabels, sizeof *r->labels);
    }
    if (opts->labels_hint) {
        r->hint = ps_strdup(opts->labels_hint);
    }
    if (!r->path || !r->buf || (opts->labels && opts->nlabels && !r->labels) ||
        (opts->labels_hint && !r->hint)) {
        rc = PS_ENOMEM;
        goto fail_alloc;
    }
    if (r->labels) {
        memcpy(r->labels, opts->labels, opts->nlabels * sizeof *r->labels);
    }
    r->opts.labels = opts->nlabels ? r->labels : NULL;
    r->opts.labels_hint = r->hint;
    if ((rc = align_start(r, begin))) {
        goto fail_alloc;
    }
    r->end = end;
    if ((rc = ps_libsvm_rewind(r))) {
        goto fail_alloc;
    }
    *out = r;
    goto out;

fail_alloc:
    ps_libsvm_close(&r);
fail_args:
out:
    return rc;
}

/* 1 if the line numbered lineno (in the range) starting at data offset at
 * is one this reader keeps (its part, its side of the holdout). */
static int keeps(const ps_libsvm *r, uint64_t lineno, uint64_t at)
{
    const ps_libsvm_opts *o = &r->opts;
    if (o->nparts > 1 && lineno % o->nparts != o->part) {
        return 0;
    }
    return o->holdout.fraction > 0 ? ps_holdout_is_held(&o->holdout, at) == (o->holdout_keep != 0)
                                   : 1;
}

int ps_libsvm_next(ps_libsvm *r, size_t max_rows, ps_dataset *chunk)
{
    int rc = 0;
    if (r->err) {
        return r->err;
    }
    if (max_rows == 0) {
        PS_LOG(ERROR, "%s: max_rows must be >= 1", r->path);
        return PS_EINVAL;
    }
    if (!chunk->sparse) {
        ps_dataset_fini(chunk); /* dense arrays do not fit a CSR chunk */
        chunk->sparse = 1;
    }
    chunk->n = 0;
    if (!chunk->indptr) {
        rc = ps_dataset_reserve(chunk, max_rows < 64 ? max_rows : 64, 1024);
        if (rc) {
            goto out;
        }
    }
    chunk->indptr[0] = 0;
    while (chunk->n < max_rows) {
        char *line;
        size_t len;
        uint64_t at;
        rc = next_line(r, &line, &len, &at);
        if (rc == PS_EEOF) {
            rc = 0;
            break;
        }
        if (rc) {
            goto out;
        }
        if (!keeps(r, r->rel_line - 1, at)) {
            continue;
        }
        rc = parse_line(r, line, len, max_rows, chunk);
        if (rc < 0) {
            goto out;
        }
        rc = 0;
    }
    if (chunk->n == 0) {
        rc = PS_EEOF;
    }
out:
    map_discovered(r, chunk);
    if (r->opts.hash_bits) {
        chunk->dim = (uint64_t)1 << r->opts.hash_bits;
    } else {
        chunk->dim = r->opts.dim ? r->opts.dim : r->id_end;
    }
    chunk->nclasses = r->opts.labels     ? r->opts.nlabels
                      : r->opts.nclasses ? r->opts.nclasses
                                         : (uint32_t)r->seen.n;
    if (rc && rc != PS_EEOF) {
        r->err = rc;
    }
    return rc;
}

uint64_t ps_libsvm_offset(const ps_libsvm *r)
{
    return r->buf_off + r->pos;
}

uint64_t ps_libsvm_error_line(const ps_libsvm *r)
{
    return r->err_line;
}

const int32_t *ps_libsvm_labels(const ps_libsvm *r, size_t *n)
{
    int discovery = !r->opts.labels && !r->opts.nclasses;
    *n = discovery ? r->seen.n : 0;
    return discovery ? r->seen.v : NULL;
}

void ps_libsvm_ignored(const ps_libsvm *r, uint64_t *ids, uint64_t *rows)
{
    *ids = r->ignored_ids;
    *rows = r->ignored_rows;
}

int ps_libsvm_is_gzip(const char *path, int *gz)
{
    ps_zread *z = NULL;
    int rc = ps_zread_open(&z, path);
    *gz = rc == 0 && ps_zread_is_gzip(z);
    ps_zread_close(&z);
    return rc;
}

void ps_libsvm_close(ps_libsvm **pr)
{
    ps_libsvm *r = pr ? *pr : NULL;
    if (!r) {
        return;
    }
    ps_zread_close(&r->z);
    ps_labels_fini(&r->seen);
    ps_free(r->labels);
    ps_free(r->hint);
    ps_free(r->buf);
    ps_free(r->path);
    ps_free(r);
    *pr = NULL;
}

int ps_libsvm_load(const char *path, const ps_libsvm_opts *opts, uint64_t begin, uint64_t end,
                   ps_dataset *out)
{
    ps_libsvm *r = NULL;
    ps_dataset tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = ps_libsvm_open(&r, path, opts, begin, end);
    if (rc) {
        goto fail_open;
    }
    rc = ps_libsvm_next(r, SIZE_MAX, &tmp);
    if (rc == PS_EEOF) {
        rc = 0;
    }
    if (rc) {
        goto fail_read;
    }
    ps_dataset_fini(out);
    *out = tmp;
    memset(&tmp, 0, sizeof tmp);
fail_read:
    ps_dataset_fini(&tmp);
    ps_libsvm_close(&r);
fail_open:
    return rc;
}
