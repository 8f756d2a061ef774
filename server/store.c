#include "server/store.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

#define STORE_ALIGN 64
/* Floats per block of a dense step: the block's w, state and gradient stay
 * in cache while it is stepped, averaged and checked (a multiple of the
 * optimizer's vector block, so blocking changes no bit). */
#define DENSE_BLOCK 8192

typedef struct {
    ps_table_desc desc;
    ps_shard shard;
    uint64_t nslots;
    uint32_t width;
    size_t nfloats; /* nslots * width */
    float *w;
    float *state[3];
    double *avg; /* temporal average, in double (ps_opt_average) */
    float *grad; /* pending gradient, dense over the shard */
    /* The step each row last stepped at: the temporal average's
     * bookkeeping (avg_catch_up, ps_store_read), so kept only with
     * averaging; without it, all 0 (8 bytes a row a step is more than
     * a width-1 SGD step writes). */
    int64_t *last_step;
    uint8_t *touched; /* lazy: row has pending gradient */
    uint64_t *rows;   /* lazy: touched rows, in first-touch order */
    size_t nrows;
    float l2; /* this table's L2 strength (0: a bias, or none) */
} store_table;

/* The first weight a step made non-finite: checked where the step wrote,
 * reported once per step (report_bad). */
typedef struct {
    const store_table *t; /* NULL: none yet */
    size_t at;            /* float index into t->w */
} bad_weight;

struct ps_store {
    ps_store_cfg cfg;
    uint32_t ntables;
    store_table *t;
    ps_msg_table *limits;
    int nstate;
    int64_t step;
    float *compact; /* lazy: gathered gradients of touched rows */
    size_t compact_cap;
    /* A push applied part by part (ps_store_push_begin .. end). */
    int64_t part_step;
};

static void *alloc_zeroed(size_t n, size_t size)
{
    void *p = ps_aligned_alloc(STORE_ALIGN, n * size);
    if (p) {
        memset(p, 0, n * size);
    }
    return p;
}

static float *alloc_floats(size_t n)
{
    return alloc_zeroed(n, sizeof(float));
}

static void table_fini(store_table *t)
{
    ps_aligned_free(t->w);
    for (int i = 0; i < 3; i++) {
        ps_aligned_free(t->state[i]);
    }
    ps_aligned_free(t->avg);
    ps_aligned_free(t->grad);
    ps_free(t->last_step);
    ps_free(t->touched);
    ps_free(t->rows);
}

static int table_init(store_table *t, const ps_store_cfg *cfg, uint32_t id, int nstate)
{
    const ps_table_desc *d = &cfg->tables[id];
    if (d->rows == 0 || d->width == 0) {
        PS_LOG(ERROR, "table %u (%s) is empty: %llu x %u", id, d->name, (unsigned long long)d->rows,
               d->width);
        return PS_EINVAL;
    }
    t->desc = *d;
    int rc = ps_shard_init(&t->shard, d->rows, cfg->nservers, cfg->shard);
    if (rc) {
        return rc;
    }
    t->nslots = ps_shard_count(&t->shard, cfg->server);
    t->width = d->width;
    t->l2 = id < 64 && (cfg->l2_tables >> id & 1) ? cfg->l2 : 0.0f;
    if (t->nslots && t->nslots > SIZE_MAX / sizeof(double) / t->width) {
        return PS_ENOMEM;
    }
    t->nfloats = (size_t)t->nslots * t->width;
    if (!(t->w = alloc_floats(t->nfloats)) || !(t->grad = alloc_floats(t->nfloats)) ||
        !(t->last_step = ps_calloc(t->nslots, sizeof *t->last_step))) {
        return PS_ENOMEM;
    }
    for (int i = 0; i < nstate; i++) {
        if (!(t->state[i] = alloc_floats(t->nfloats))) {
            return PS_ENOMEM;
        }
    }
    if (cfg->avg_beta > 0 && !(t->avg = alloc_zeroed(t->nfloats, sizeof(double)))) {
        return PS_ENOMEM;
    }
    if (cfg->lazy && (!(t->touched = ps_calloc(t->nslots, 1)) ||
                      !(t->rows = ps_malloc(t->nslots * sizeof *t->rows)))) {
        return PS_ENOMEM;
    }
    for (uint64_t s = 0; s < t->nslots; s++) {
        uint64_t key = ps_shard_key(&t->shard, cfg->server, s);
        ps_table_init_row(d, cfg->seed, id, key, t->w + s * t->width);
    }
    return 0;
}

int ps_store_create(ps_store **out, const ps_store_cfg *cfg)
{
    int rc = PS_ENOMEM;
    ps_store *s = ps_calloc(1, sizeof *s);
    if (!s) {
        goto fail_store;
    }
    s->cfg = *cfg;
    s->cfg.tables = NULL; /* borrowed only during create */
    s->ntables = cfg->ntables;
    s->nstate = ps_opt_nstate(cfg->hp.kind);
    if (!(s->t = ps_calloc(cfg->ntables, sizeof *s->t)) ||
        !(s->limits = ps_calloc(cfg->ntables, sizeof *s->limits))) {
        goto fail_tables;
    }
    for (uint32_t i = 0; i < cfg->ntables; i++) {
        if ((rc = table_init(&s->t[i], cfg, i, s->nstate))) {
            goto fail_tables;
        }
        s->limits[i] = (ps_msg_table){.width = s->t[i].width, .slots = s->t[i].nslots};
    }
    *out = s;
    return 0;

fail_tables:
    if (s->t) {
        for (uint32_t i = 0; i < cfg->ntables; i++) {
            table_fini(&s->t[i]);
        }
    }
    ps_free(s->t);
    ps_free(s->limits);
    ps_free(s);
fail_store:
    return rc;
}

void ps_store_destroy(ps_store **sp)
{
    if (!sp || !*sp) {
        return;
    }
    ps_store *s = *sp;
    for (uint32_t i = 0; i < s->ntables; i++) {
        table_fini(&s->t[i]);
    }
    ps_free(s->t);
    ps_free(s->limits);
    ps_aligned_free(s->compact);
    ps_free(s);
    *sp = NULL;
}

const ps_msg_table *ps_store_limits(const ps_store *s)
{
    return s->limits;
}

uint32_t ps_store_ntables(const ps_store *s)
{
    return s->ntables;
}

const ps_shard *ps_store_shard(const ps_store *s, uint32_t table)
{
    return &s->t[table].shard;
}

const ps_table_desc *ps_store_table(const ps_store *s, uint32_t table)
{
    return &s->t[table].desc;
}

uint32_t ps_store_server(const ps_store *s)
{
    return s->cfg.server;
}

/* NaN and +-inf both fail |x| <= FLT_MAX. */
static inline int not_finite(float x)
{
    return !(fabsf(x) <= FLT_MAX);
}

/* 1 if some value is NaN or infinite. One accumulator per lane of a fixed
 * block of 8 lets gcc vectorise the scan at -O2 (1.5-2x faster than
 * testing the exponent bits); PS_FOR_BLOCKED's single accumulator does not
 * vectorise and measured 6x slower. */
static int any_nonfinite(const float *v, size_t n)
{
    int acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (size_t j = 0; j < 8; j++) {
            acc[j] |= not_finite(v[i + j]);
        }
    }
    for (; i < n; i++) {
        acc[0] |= not_finite(v[i]);
    }
    int all = 0;
    for (size_t j = 0; j < 8; j++) {
        all |= acc[j];
    }
    return all;
}

int ps_store_check_finite(const ps_store *s, const ps_push *p)
{
    for (size_t i = 0; i < p->nsegs; i++) {
        const ps_seg *g = &p->segs[i];
        const store_table *t = &s->t[g->table];
        if (!any_nonfinite(g->values, g->nvalues)) {
            continue;
        }
        for (size_t k = 0; k < g->nvalues; k++) {
            if (!isfinite(g->values[k])) {
                uint64_t slot = g->slots[k / t->width];
                PS_LOG(ERROR,
                       "non-finite gradient %g from worker %u: table %s, key %llu, column %zu, "
                       "clock %lld",
                       (double)g->values[k], p->worker, t->desc.name,
                       (unsigned long long)ps_shard_key(&t->shard, s->cfg.server, slot),
                       k % t->width, (long long)p->clock);
                return PS_ENONFINITE;
            }
        }
    }
    return 0;
}

void ps_store_accumulate(ps_store *s, const ps_push *p, float scale)
{
    for (size_t i = 0; i < p->nsegs; i++) {
        const ps_seg *g = &p->segs[i];
        store_table *t = &s->t[g->table];
        size_t w = t->width;
        for (size_t k = 0; k < g->nkeys; k++) {
            uint64_t slot = g->slots[k];
            float *dst = t->grad + slot * w;
            const float *src = g->values + k * w;
            for (size_t j = 0; j < w; j++) {
                dst[j] += scale * src[j];
            }
            if (t->touched && !t->touched[slot]) {
                t->touched[slot] = 1;
                t->rows[t->nrows++] = slot;
            }
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Lazy mode with averaging: a row's avg is kept as of its last update step
 * L, and its w has not changed since, so at step L + k the average is
 * section 7.2's update applied k times to a constant w:
 * beta^k avg + (1 - beta^k) w. */
static void avg_catch_up(double *avg, const float *w, size_t n, float beta, int64_t k)
{
    const double bk = pow((double)beta, (double)k), ombk = 1.0 - bk;
    for (size_t j = 0; j < n; j++) {
        avg[j] = bk * avg[j] + ombk * (double)w[j];
    }
}

/* The gradient a step applies, in place: scale * g (BSP's weighting,
 * server.c) plus l2 * w. With scale 1 this is g + l2 * w, the same float
 * operations a worker adding its own L2 term would do. */
static void prep_grad(float *restrict g, const float *restrict w, size_t n, float scale, float l2)
{
    if (l2 != 0.0f) {
        for (size_t j = 0; j < n; j++) {
            g[j] = scale * g[j] + l2 * w[j];
        }
    } else {
        for (size_t j = 0; j < n; j++) {
            g[j] = scale * g[j];
        }
    }
}

/* Notes the first non-finite value of t->w[off, off + n), if none is noted. */
static void check_span(const store_table *t, size_t off, size_t n, bad_weight *bad)
{
    if (bad->t || !any_nonfinite(t->w + off, n)) {
        return;
    }
    for (size_t k = off; k < off + n; k++) {
        if (!isfinite(t->w[k])) {
            *bad = (bad_weight){t, k};
            return;
        }
    }
}

/* Scattered rows are often 1 or 2 floats wide, where any_nonfinite's set-up
 * per row cost more than the test (16% of a sparse logreg server's time):
 * one flag over all rows first, the search only when it is set. */
static void check_rows(const store_table *t, const uint64_t *rows, size_t n, bad_weight *bad)
{
    size_t w = t->width;
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        const float *r = t->w + rows[i] * w;
        for (size_t j = 0; j < w; j++) {
            any |= not_finite(r[j]);
        }
    }
    for (size_t i = 0; any && i < n && !bad->t; i++) {
        check_span(t, rows[i] * w, w, bad);
    }
}

/* The step's gradients were finite (checked on arrival, or by
 * ps_store_push_part once a weight went bad), so a non-finite weight after
 * it is the update's own overflow: the error names this server, not a
 * worker. */
static int report_bad(const ps_store *s, const bad_weight *bad, int64_t step)
{
    if (!bad->t) {
        return 0;
    }
    const store_table *t = bad->t;
    PS_LOG(ERROR,
           "non-finite weight %g on server %u after step %lld: table %s, key %llu, column %zu; "
           "the step's gradients were finite, so the update overflowed (--lr too large?)",
           (double)t->w[bad->at], s->cfg.server, (long long)step, t->desc.name,
           (unsigned long long)ps_shard_key(&t->shard, s->cfg.server, bad->at / t->width),
           bad->at % t->width);
    return PS_ENONFINITE;
}

/* One step of t's floats [from, end), DENSE_BLOCK floats at a time so that
 * each block is stepped, averaged and checked while it is in cache. The
 * gradient is either `pending` (t->grad: scaled and given the L2 term in
 * place, then cleared) or `g` (g[0] is float `from`, read as it is). The
 * kernels work lane by lane (server/optim.h), so this is bit-identical to
 * one ps_opt_step call, and to ps_opt_step_rows over the same rows. */
static void span_pass(ps_store *s, store_table *t, size_t from, size_t end, float *pending,
                      const float *g, float scale, int64_t step, bad_weight *bad)
{
    int prep = pending && (scale != 1.0f || t->l2 != 0.0f);
    for (size_t a = from; a < end; a += DENSE_BLOCK) {
        size_t len = end - a < DENSE_BLOCK ? end - a : DENSE_BLOCK;
        float *st[3] = {NULL, NULL, NULL};
        for (int k = 0; k < s->nstate; k++) {
            st[k] = t->state[k] + a;
        }
        if (prep) {
            prep_grad(pending + a, t->w + a, len, scale, t->l2);
        }
        ps_opt_step(&s->cfg.hp, t->w + a, st, pending ? pending + a : g + (a - from), len, step);
        if (pending) {
            memset(pending + a, 0, len * sizeof(float));
        }
        if (t->avg) {
            ps_opt_average(t->avg + a, t->w + a, len, s->cfg.avg_beta);
        }
        check_span(t, a, len, bad);
    }
}

static void dense_pass(ps_store *s, store_table *t, float *pending, const float *g, float scale,
                       int64_t step, bad_weight *bad)
{
    span_pass(s, t, 0, t->nfloats, pending, g, scale, step, bad);
}

static void fill_last_step(store_table *t, int64_t step)
{
    for (uint64_t r = 0; r < t->nslots; r++) {
        t->last_step[r] = step;
    }
}

static void apply_dense(ps_store *s, store_table *t, int64_t step, float scale, bad_weight *bad)
{
    if (t->avg) {
        fill_last_step(t, step);
    }
    dense_pass(s, t, t->grad, NULL, scale, step, bad);
}

/* Lazy, with averaging: rows[0..n) are about to step at `step`, so their
 * averages first catch up over the steps they sat out. */
static void catch_up_rows(ps_store *s, store_table *t, const uint64_t *rows, size_t n, int64_t step)
{
    size_t w = t->width;
    if (!t->avg) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rows[i];
        if (step - 1 > t->last_step[r]) {
            avg_catch_up(t->avg + r * w, t->w + r * w, w, s->cfg.avg_beta,
                         step - 1 - t->last_step[r]);
        }
        t->last_step[r] = step;
    }
}

/* Lazy step of rows[0..n) (ascending, unique) with compact gradients g,
 * n * width floats, used as they are. Gapless rows (all of a dense table's)
 * are one pass over the arrays, which ps_opt_step_rows would match bit for
 * bit, row by row. */
static void step_rows(ps_store *s, store_table *t, const uint64_t *rows, size_t n, const float *g,
                      int64_t step, bad_weight *bad)
{
    size_t w = t->width;
    catch_up_rows(s, t, rows, n, step);
    if (n && rows[n - 1] - rows[0] == n - 1) {
        span_pass(s, t, rows[0] * w, (rows[0] + n) * w, NULL, g, 1.0f, step, bad);
        return;
    }
    ps_opt_step_rows(&s->cfg.hp, t->w, t->state, g, w, rows, n, step);
    for (size_t i = 0; t->avg && i < n; i++) {
        size_t off = rows[i] * w;
        ps_opt_average(t->avg + off, t->w + off, w, s->cfg.avg_beta);
    }
    check_rows(t, rows, n, bad);
}

/* Lazy: the touched rows' pending gradients, scaled and given the L2 term,
 * gathered into one compact block (grown by the caller) unless every row
 * was touched. */
static void apply_lazy(ps_store *s, store_table *t, int64_t step, float scale, bad_weight *bad)
{
    size_t w = t->width, n = t->nrows;
    if (n == 0) {
        return;
    }
    if (n == t->nslots) {
        catch_up_rows(s, t, t->rows, n, step);
        memset(t->touched, 0, t->nslots);
        t->nrows = 0;
        dense_pass(s, t, t->grad, NULL, scale, step, bad);
        return;
    }
    /* Ascending rows walk w, m, v forward, which the prefetcher likes;
     * pushes usually arrive sorted already. */
    int sorted = 1;
    for (size_t i = 1; i < n && sorted; i++) {
        sorted = t->rows[i - 1] < t->rows[i];
    }
    if (!sorted) {
        qsort(t->rows, n, sizeof *t->rows, cmp_u64);
    }
    int prep = scale != 1.0f || t->l2 != 0.0f;
    for (size_t i = 0; i < n; i++) {
        float *g = t->grad + t->rows[i] * w;
        if (prep) {
            prep_grad(g, t->w + t->rows[i] * w, w, scale, t->l2);
        }
        memcpy(s->compact + i * w, g, w * sizeof(float));
        memset(g, 0, w * sizeof(float));
        t->touched[t->rows[i]] = 0;
    }
    t->nrows = 0;
    step_rows(s, t, t->rows, n, s->compact, step, bad);
}

/* Makes the lazy scratch hold at least `need` floats. */
static int grow_compact(ps_store *s, size_t need)
{
    if (need <= s->compact_cap) {
        return 0;
    }
    float *c = ps_aligned_alloc(STORE_ALIGN, need * sizeof(float));
    if (!c) {
        return PS_ENOMEM;
    }
    ps_aligned_free(s->compact);
    s->compact = c;
    s->compact_cap = need;
    return 0;
}

int ps_store_push_begin(ps_store *s, const ps_push *p, int64_t t)
{
    size_t need = 0;
    for (uint32_t i = 0; i < s->ntables; i++) {
        PS_ASSERT(s->cfg.lazy && s->t[i].nrows == 0);
    }
    for (size_t i = 0; i < p->nsegs; i++) {
        if (s->t[p->segs[i].table].l2 != 0.0f && p->segs[i].nvalues > need) {
            need = p->segs[i].nvalues;
        }
    }
    s->part_step = t;
    return grow_compact(s, need);
}

/* Rows [r0, r1) of segment seg of p as a push of their own. */
static ps_push part_of(const ps_push *p, size_t seg, size_t r0, size_t r1, size_t w, ps_seg *g)
{
    *g = p->segs[seg];
    g->nkeys = r1 - r0;
    g->slots += r0;
    g->values += r0 * w;
    g->nvalues = g->nkeys * w;
    ps_push part = *p;
    part.nsegs = 1;
    part.segs = g;
    return part;
}

int ps_store_push_part(ps_store *s, const ps_push *p, size_t seg, size_t r0, size_t r1)
{
    const ps_seg *g = &p->segs[seg];
    store_table *tb = &s->t[g->table];
    size_t w = tb->width;
    const float *grad = g->values + r0 * w;
    if (tb->l2 != 0.0f) {
        /* The message is read-only: the L2 term goes into a copy. */
        for (size_t k = r0; k < r1; k++) {
            float *c = s->compact + (k - r0) * w;
            memcpy(c, g->values + k * w, w * sizeof(float));
            prep_grad(c, tb->w + g->slots[k] * w, w, 1.0f, tb->l2);
        }
        grad = s->compact;
    }
    bad_weight bad = {NULL, 0};
    step_rows(s, tb, g->slots + r0, r1 - r0, grad, s->part_step, &bad);
    if (!bad.t) {
        return 0;
    }
    /* Every rule turns a non-finite gradient into a non-finite weight in
     * its own lane (server/optim.h), so the weight check stands in for a
     * pass over the gradients; only now are they read, for the blame. */
    ps_seg one;
    ps_push part = part_of(p, seg, r0, r1, w, &one);
    int rc = ps_store_check_finite(s, &part);
    return rc ? rc : report_bad(s, &bad, s->part_step);
}

void ps_store_push_end(ps_store *s)
{
    s->step = s->part_step;
}

int ps_store_apply_push(ps_store *s, const ps_push *p, int64_t t)
{
    int rc = ps_store_push_begin(s, p, t);
    if (rc) {
        return rc;
    }
    for (size_t i = 0; i < p->nsegs && rc == 0; i++) {
        rc = ps_store_push_part(s, p, i, 0, p->segs[i].nkeys);
    }
    ps_store_push_end(s);
    return rc;
}

int ps_store_apply_scaled(ps_store *s, int64_t t, float scale)
{
    /* Grow the lazy scratch first, so a failure leaves nothing half-applied. */
    if (s->cfg.lazy) {
        size_t need = 0;
        for (uint32_t i = 0; i < s->ntables; i++) {
            size_t n = s->t[i].nrows * s->t[i].width;
            need = n > need ? n : need;
        }
        int rc = grow_compact(s, need);
        if (rc) {
            return rc;
        }
    }
    bad_weight bad = {NULL, 0};
    for (uint32_t i = 0; i < s->ntables; i++) {
        if (s->cfg.lazy) {
            apply_lazy(s, &s->t[i], t, scale, &bad);
        } else {
            apply_dense(s, &s->t[i], t, scale, &bad);
        }
    }
    s->step = t;
    return report_bad(s, &bad, t);
}

int ps_store_apply(ps_store *s, int64_t t)
{
    return ps_store_apply_scaled(s, t, 1.0f);
}

int64_t ps_store_step(const ps_store *s)
{
    return s->step;
}

void ps_store_set_step(ps_store *s, int64_t t)
{
    s->step = t;
}

void ps_store_read(const ps_store *s, uint32_t table, const uint64_t *slots, size_t n, int averaged,
                   float *out)
{
    const store_table *t = &s->t[table];
    size_t w = t->width;
    if (averaged && t->avg && s->step > 0) {
        const double beta = s->cfg.avg_beta;
        const double scale = 1.0 / (1.0 - pow(beta, (double)s->step));
        for (size_t i = 0; i < n; i++) {
            size_t off = slots[i] * w;
            int64_t k = s->step - t->last_step[slots[i]];
            if (k > 0) {
                /* A lazy row not updated since step L: its average caught up
                 * to now (avg_catch_up, not stored), then bias-corrected as
                 * ps_opt_average_read does. */
                const double bk = pow(beta, (double)k), ombk = 1.0 - bk;
                for (size_t j = 0; j < w; j++) {
                    out[i * w + j] =
                        (float)((bk * t->avg[off + j] + ombk * (double)t->w[off + j]) * scale);
                }
            } else {
                ps_opt_average_read(out + i * w, t->avg + off, w, s->cfg.avg_beta, s->step);
            }
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ps_table_copy_row(out + i * w, t->w + slots[i] * w, w);
    }
}

const float *ps_store_rows(const ps_store *s, uint32_t table, uint64_t slot)
{
    return s->t[table].w + slot * s->t[table].width;
}

void ps_store_arrays_get(ps_store *s, uint32_t table, ps_store_arrays *out)
{
    store_table *t = &s->t[table];
    memset(out, 0, sizeof *out);
    out->nslots = t->nslots;
    out->width = t->width;
    out->nstate = s->nstate;
    out->w = t->w;
    for (int i = 0; i < 3; i++) {
        out->state[i] = t->state[i];
    }
    out->avg = t->avg;
    out->last_step = t->last_step;
}
