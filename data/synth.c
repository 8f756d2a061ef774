#include "data/synth.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/afile.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/rng.h"

/* Stream tags, so no two uses of the seed share random numbers. */
#define TAG_ROW 0x524f57ULL
#define TAG_W1 0x5731ULL
#define TAG_W2 0x5732ULL
#define TAG_NOISE 0x4e4f495345ULL

/* Weights of the most frequent features are precomputed: Zipf sends most
 * draws there, and a normal deviate costs two hashes, a log and a cos. */
#define WCACHE_MAX_FEATURES ((uint64_t)1 << 16)
/* Rows written per chunk by ps_synth_write_libsvm. */
#define WRITE_CHUNK 4096

/* Rejection-inversion sampler for Zipf on {1..n} (Hormann & Derflinger,
 * "Rejection-inversion to generate variates from monotone discrete
 * distributions", 1996; the form used by Apache Commons RNG). */
typedef struct {
    double s, n, h_x1, h_n, sq;
} zipf;

/* log1p(x)/x and expm1(x)/x, accurate near 0 (s close to 1). */
static double helper1(double x)
{
    return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3 - 0.25 * x));
}

static double helper2(double x)
{
    return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x * (1.0 / 3) * (1 + 0.25 * x));
}

static double zipf_hint(const zipf *z, double x)
{
    double lx = log(x);
    return helper2((1 - z->s) * lx) * lx;
}

static double zipf_h(const zipf *z, double x)
{
    return exp(-z->s * log(x));
}

static double zipf_hint_inv(const zipf *z, double x)
{
    double t = x * (1 - z->s);
    if (t < -1) {
        t = -1;
    }
    return exp(helper1(t) * x);
}

static void zipf_init(zipf *z, double s, uint64_t n)
{
    z->s = s;
    z->n = (double)n;
    z->h_x1 = zipf_hint(z, 1.5) - 1;
    z->h_n = zipf_hint(z, z->n + 0.5);
    z->sq = 2 - zipf_hint_inv(z, zipf_hint(z, 2.5) - zipf_h(z, 2));
}

/* A rank in [1, n]; expected draws per call are close to 1. */
static uint64_t zipf_draw(const zipf *z, ps_rng *r)
{
    for (;;) {
        double u = z->h_n + ps_rng_uniform(r) * (z->h_x1 - z->h_n);
        double x = zipf_hint_inv(z, u);
        double kd = floor(x + 0.5);
        if (kd < 1) {
            kd = 1;
        } else if (kd > z->n) {
            kd = z->n;
        }
        if (kd - x <= z->sq || u >= zipf_hint(z, kd + 0.5) - zipf_h(z, kd)) {
            return (uint64_t)kd;
        }
    }
}

void ps_synth_cfg_default(ps_synth_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->n = 100000;
    cfg->nfeatures = (uint64_t)1 << 20;
    cfg->nnz = 20;
    cfg->nclasses = 10;
    cfg->zipf_s = 1.1;
    cfg->noise = 1.0;
    cfg->seed = 1;
}

int ps_synth_check(const ps_synth_cfg *cfg)
{
    const char *why = NULL;
    if (cfg->n == 0) {
        why = "n (rows) must be >= 1";
    } else if (cfg->nfeatures == 0 || cfg->nfeatures > ((uint64_t)1 << 40)) {
        why = "nfeatures must be in [1, 2^40]";
    } else if (cfg->nnz == 0 || cfg->nnz > cfg->nfeatures || cfg->nnz > (1u << 20)) {
        why = "nnz per row must be in [1, min(nfeatures, 2^20)]";
    } else if (cfg->nclasses < 2 || cfg->nclasses > (1u << 16)) {
        why = "nclasses must be in [2, 65536]";
    } else if (!(cfg->zipf_s >= 0 && cfg->zipf_s <= 10)) {
        why = "zipf exponent must be in [0, 10]";
    } else if (!(cfg->noise >= 0 && isfinite(cfg->noise))) {
        why = "noise must be finite and >= 0";
    }
    if (why) {
        PS_LOG(ERROR,
               "synth config: %s (n %" PRIu64 ", nfeatures %" PRIu64
               ", nnz %u, nclasses %u, zipf %g, noise %g)",
               why, cfg->n, cfg->nfeatures, cfg->nnz, cfg->nclasses, cfg->zipf_s, cfg->noise);
        return PS_ECONFIG;
    }
    return 0;
}

double ps_synth_weight(const ps_synth_cfg *cfg, uint64_t feature, uint32_t cls)
{
    return ps_rng_normal_from(ps_rng_hash(cfg->seed, TAG_W1, feature, cls),
                              ps_rng_hash(cfg->seed, TAG_W2, feature, cls));
}

/* What a generator needs beyond cfg: the sampler, the weight cache and
 * per-row scratch. */
typedef struct {
    const ps_synth_cfg *cfg;
    zipf z;
    uint64_t ncached;
    float *wcache;  /* ncached x nclasses */
    double *scores; /* nclasses */
} gen;

/* rows: how many rows this generator will make, so a small range does not
 * pay for a cache it never uses. */
static int gen_init(gen *g, const ps_synth_cfg *cfg, uint64_t rows)
{
    int rc = 0;
    memset(g, 0, sizeof *g);
    g->cfg = cfg;
    zipf_init(&g->z, cfg->zipf_s, cfg->nfeatures);
    uint64_t draws = rows > UINT64_MAX / cfg->nnz ? UINT64_MAX : rows * cfg->nnz;
    g->ncached = cfg->nfeatures < WCACHE_MAX_FEATURES ? cfg->nfeatures : WCACHE_MAX_FEATURES;
    g->ncached = g->ncached < draws ? g->ncached : draws;
    g->scores = ps_calloc(cfg->nclasses, sizeof *g->scores);
    if (!g->scores) {
        rc = PS_ENOMEM;
        goto fail_scores;
    }
    g->wcache = ps_calloc((size_t)g->ncached * cfg->nclasses, sizeof *g->wcache);
    if (!g->wcache) {
        rc = PS_ENOMEM;
        goto fail_cache;
    }
    for (uint64_t f = 0; f < g->ncached; f++) {
        for (uint32_t c = 0; c < cfg->nclasses; c++) {
            g->wcache[f * cfg->nclasses + c] = (float)ps_synth_weight(cfg, f, c);
        }
    }
    goto out;

fail_cache:
    ps_free(g->scores);
    g->scores = NULL;
fail_scores:
out:
    return rc;
}

static void gen_fini(gen *g)
{
    ps_free(g->wcache);
    ps_free(g->scores);
}

/* Inserts f into the sorted ids[0..*k) unless present; returns 1 if added. */
static int insert_sorted(uint64_t *ids, size_t *k, uint64_t f)
{
    size_t lo = 0, hi = *k;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < f) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < *k && ids[lo] == f) {
        return 0;
    }
    memmove(ids + lo + 1, ids + lo, (*k - lo) * sizeof *ids);
    ids[lo] = f;
    (*k)++;
    return 1;
}

/* Row r: its K ascending feature ids into ids, and its label. */
static int32_t gen_row(gen *g, uint64_t r, uint64_t *ids)
{
    const ps_synth_cfg *cfg = g->cfg;
    ps_rng rng;
    ps_rng_seed(&rng, ps_rng_hash(cfg->seed, TAG_ROW, r, 0));
    size_t k = 0;
    /* Distinct features by rejection; the bound only matters when K is close
     * to F under a steep Zipf, where the rest is filled with the smallest
     * unused ids so generation always ends. */
    uint64_t tries = 64 * (uint64_t)cfg->nnz + 1024;
    while (k < cfg->nnz && tries-- > 0) {
        insert_sorted(ids, &k, zipf_draw(&g->z, &rng) - 1);
    }
    for (uint64_t f = 0; k < cfg->nnz; f++) {
        insert_sorted(ids, &k, f);
    }

    uint32_t nc = cfg->nclasses;
    for (uint32_t c = 0; c < nc; c++) {
        g->scores[c] = 0;
    }
    for (size_t j = 0; j < k; j++) {
        if (ids[j] < g->ncached) {
            const float *w = g->wcache + ids[j] * nc;
            for (uint32_t c = 0; c < nc; c++) {
                g->scores[c] += w[c];
            }
        } else {
            for (uint32_t c = 0; c < nc; c++) {
                g->scores[c] += (float)ps_synth_weight(cfg, ids[j], c);
            }
        }
    }
    int32_t best = 0;
    double best_s = -INFINITY;
    for (uint32_t c = 0; c < nc; c++) {
        double s = g->scores[c];
        if (cfg->noise > 0) {
            double u = ps_rng_unit_double(ps_rng_hash(cfg->seed, TAG_NOISE, r, c));
            s += cfg->noise * -log(-log(u));
        }
        if (s > best_s) {
            best_s = s;
            best = (int32_t)c;
        }
    }
    return best;
}

/* Fills rows [first, first + count) into d (sparse, reserved here). */
static int gen_rows(gen *g, uint64_t first, size_t count, ps_dataset *d)
{
    int rc = 0;
    const ps_synth_cfg *cfg = g->cfg;
    d->sparse = 1;
    d->dim = cfg->nfeatures;
    d->nclasses = cfg->nclasses;
    d->n = 0;
    if (count > SIZE_MAX / cfg->nnz) {
        rc = PS_ENOMEM;
        goto out;
    }
    rc = ps_dataset_reserve(d, count, count * cfg->nnz);
    if (rc) {
        goto out;
    }
    d->indptr[0] = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t *ids = d->idx + i * cfg->nnz;
        d->y[i] = gen_row(g, first + i, ids);
        for (size_t j = 0; j < cfg->nnz; j++) {
            d->val[i * cfg->nnz + j] = 1.0f;
        }
        d->indptr[i + 1] = (uint64_t)(i + 1) * cfg->nnz;
    }
    d->n = count;
out:
    return rc;
}

int ps_synth_generate(const ps_synth_cfg *cfg, uint64_t first, size_t count, ps_dataset *out)
{
    int rc = ps_synth_check(cfg);
    ps_dataset tmp;
    gen g;
    memset(&tmp, 0, sizeof tmp);
    if (rc) {
        goto fail_check;
    }
    if (first > cfg->n || count > cfg->n - first) {
        PS_LOG(ERROR, "synth: rows [%" PRIu64 ", +%zu) past n = %" PRIu64, first, count, cfg->n);
        rc = PS_ERANGE;
        goto fail_check;
    }
    rc = gen_init(&g, cfg, count);
    if (rc) {
        goto fail_check;
    }
    rc = gen_rows(&g, first, count, &tmp);
    if (rc) {
        goto fail_rows;
    }
    ps_dataset_fini(out);
    *out = tmp;
    memset(&tmp, 0, sizeof tmp);
fail_rows:
    ps_dataset_fini(&tmp);
    gen_fini(&g);
fail_check:
    return rc;
}

/* Decimal digits of v into p (no NUL); returns the end. */
static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) {
        *p++ = tmp[--n];
    }
    return p;
}

/* Formats d's rows as one-based libsvm lines into buf (cap bytes, room
 * for the longest line at least) and writes them to f as buf fills. */
static int write_rows(const ps_dataset *d, ps_afile *f, char *buf, size_t cap, size_t longest)
{
    size_t o = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < d->n; i++) {
        char *p = put_u64(buf + o, (uint64_t)d->y[i]);
        for (uint64_t j = d->indptr[i]; j < d->indptr[i + 1]; j++) {
            *p++ = ' ';
            p = put_u64(p, d->idx[j] + 1);
            *p++ = ':';
            *p++ = '1';
        }
        *p++ = '\n';
        o = (size_t)(p - buf);
        if (cap - o < longest || i + 1 == d->n) {
            rc = ps_afile_write(f, buf, o);
            o = 0;
        }
    }
    return rc;
}

int ps_synth_write_libsvm(const ps_synth_cfg *cfg, const char *path)
{
    int rc = ps_synth_check(cfg);
    gen g;
    ps_dataset chunk;
    char *buf = NULL;
    ps_afile *f = NULL;
    memset(&chunk, 0, sizeof chunk);
    if (rc) {
        goto fail_check;
    }
    rc = gen_init(&g, cfg, cfg->n);
    if (rc) {
        goto fail_check;
    }
    /* A label and K " id:1" tokens of at most 24 bytes each, per line;
     * lines are written 1 MiB at a time. */
    size_t longest = 32 + (size_t)cfg->nnz * 24, cap = longest + ((size_t)1 << 20);
    if (!(buf = ps_malloc(cap))) {
        rc = PS_ENOMEM;
        goto fail_write;
    }
    /* The temp file, fsync, rename: a crash never leaves half a file
     * under path, and the file gets the umask's mode like any other. */
    if ((rc = ps_afile_open(&f, path))) {
        goto fail_write;
    }
    for (uint64_t first = 0; rc == 0 && first < cfg->n; first += WRITE_CHUNK) {
        size_t count = cfg->n - first < WRITE_CHUNK ? (size_t)(cfg->n - first) : WRITE_CHUNK;
        if ((rc = gen_rows(&g, first, count, &chunk)) == 0) {
            rc = write_rows(&chunk, f, buf, cap, longest);
        }
    }
    if (rc == 0) {
        rc = ps_afile_commit(&f);
    }
fail_write:
    ps_afile_abort(&f);
    ps_free(buf);
    ps_dataset_fini(&chunk);
    gen_fini(&g);
fail_check:
    return rc;
}
