#include "data/labels.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"

/* Lowest index whose label is >= label (n when none). */
static size_t lower_bound(const int32_t *v, size_t n, int32_t label)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < label) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

long ps_labels_find(const int32_t *v, size_t n, int32_t label)
{
    size_t i = lower_bound(v, n, label);
    return i < n && v[i] == label ? (long)i : -1;
}

int ps_labels_add(ps_labels *s, int32_t label)
{
    size_t i = lower_bound(s->v, s->n, label);
    if (i < s->n && s->v[i] == label) {
        return 0;
    }
    if (s->n >= PS_LABELS_MAX) {
        return PS_ERANGE;
    }
    if (s->n == s->cap) {
        void *p = s->v;
        int rc = ps_grow(&p, &s->cap, s->n + 1, sizeof *s->v);
        s->v = p;
        if (rc) {
            return rc;
        }
    }
    /* New labels are rare (at most one per class), so shifting is fine. */
    memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof *s->v);
    s->v[i] = label;
    s->n++;
    return 0;
}

int ps_labels_add_all(ps_labels *s, const int32_t *v, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = ps_labels_add(s, v[i]);
    }
    return rc;
}

void ps_labels_fini(ps_labels *s)
{
    if (s) {
        ps_free(s->v);
        memset(s, 0, sizeof *s);
    }
}

int ps_labels_is_identity(const int32_t *v, size_t n)
{
    /* Ascending and distinct: the identity iff it starts at 0 and ends at
     * n - 1. */
    return n > 0 && v[0] == 0 && v[n - 1] == (int32_t)(n - 1);
}

void ps_labels_format(const int32_t *v, size_t n, char *buf, size_t len)
{
    enum { SHOWN = 6 };
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        if (n > SHOWN + 1 && i == SHOWN - 1) {
            used += (size_t)snprintf(buf + used, len - used, ", ..., %d (%zu labels)", v[n - 1], n);
            break;
        }
        used += (size_t)snprintf(buf + used, len - used, "%s%d", i ? ", " : "", v[i]);
    }
}

int ps_labels_parse(const char *text, ps_labels *out, char *err, size_t errlen)
{
    int rc = 0;
    size_t count = 0;
    const char *p = text;
    if (err && errlen) {
        err[0] = '\0';
    }
    while (rc == 0 && *p) {
        char *end = NULL;
        errno = 0;
        long v = (*p == '-' || *p == '+' || (*p >= '0' && *p <= '9')) ? strtol(p, &end, 10) : 0;
        if (!end || end == p || (*end != ',' && *end != '\0') || (end[0] == ',' && !end[1]) ||
            end[-1] == '+' || end[-1] == '-') {
            rc = PS_EINVAL;
            if (err && errlen) {
                snprintf(err, errlen, "'%s' is not a list of integer labels (e.g. -1,1 or 1,2,3)",
                         text);
            }
        } else if (errno == ERANGE || v < INT32_MIN || v > INT32_MAX) {
            rc = PS_EINVAL;
            if (err && errlen) {
                snprintf(err, errlen, "label %.*s is out of the 32-bit integer range",
                         (int)(end - p), p);
            }
        } else {
            /* Duplicates are found against what came before (no set to
             * ask when only checking). */
            for (const char *q = text; q < p && rc == 0;) {
                char *qe;
                long w = strtol(q, &qe, 10);
                rc = w == v ? PS_EINVAL : 0;
                q = qe + (*qe == ',');
            }
            if (rc && err && errlen) {
                snprintf(err, errlen, "label %ld is listed twice", v);
            }
            if (rc == 0 && out) {
                rc = ps_labels_add(out, (int32_t)v);
            }
            count++;
            p = end + (*end == ',');
        }
    }
    if (rc == 0 && count < 2) {
        rc = PS_EINVAL;
        if (err && errlen) {
            snprintf(err, errlen, "'%s': a classifier needs at least two labels", text);
        }
    }
    if (rc == 0 && count > PS_LABELS_MAX) {
        rc = PS_ERANGE;
    }
    return rc;
}
