#include "worker/model.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/dropout.h"

#define MAX_LAYERS (PS_MODEL_MAX_HIDDEN + 1)
#define ALIGN 64
/* Radix digit for sorting a batch's feature ids: 2^11 counters fit in L1. */
#define RADIX_BITS 11
#define RADIX_SIZE (1u << RADIX_BITS)
/* Hidden layer l's dropout units start at l << 56, the input's at 0, so the
 * layers draw from disjoint parts of the (seed, worker, step, unit) space
 * (as long as batch * in_dim < 2^56). */
#define LAYER_UNIT_SHIFT 56
/* Element-wise kernels work in fixed-size chunks: -O2's cheap vectoriser
 * only vectorises loops whose trip count it knows, and these passes are the
 * step's main cost outside BLAS. */
#define CHUNK 16

struct ps_model {
    ps_model_cfg cfg;
    uint32_t nlayers;               /* L: hidden layers + output */
    uint32_t width[MAX_LAYERS + 1]; /* width[l], l = 1..L: outputs of layer l */
    uint32_t maxw;                  /* max width[l] */
    uint32_t ntables;
    ps_table_desc tables[PS_MODEL_MAX_TABLES];
    float *act[MAX_LAYERS + 1]; /* act[l]: max_batch x width[l]; hidden after ReLU+dropout,
                                   output logits, then probabilities */
    float *xin;                 /* dense input after dropout (dense, dropout_input > 0) */
    float *mask;                /* dropout mask of one layer, max_batch x max hidden width */
    float *dbuf[2];             /* gradients w.r.t. pre-activations, ping-pong */
    float *xval;                /* sparse input values after dropout, one per non-zero */
    size_t xval_cap;
    uint64_t *sort_id[2]; /* radix sort of (feature id, non-zero index) pairs */
    uint32_t *sort_k[2];
    size_t sort_cap[4];
    uint32_t *hist; /* RADIX_SIZE counters */
};

static const char *const kind_names[PS_MODEL_NKINDS] = {
    [PS_MODEL_LOGREG] = "logreg", [PS_MODEL_MLP] = "mlp"};

int ps_model_parse_kind(const char *text, ps_model_kind *out)
{
    int rc = PS_EINVAL;
    for (int k = 0; text && k < PS_MODEL_NKINDS && rc != 0; k++) {
        if (strcmp(text, kind_names[k]) == 0) {
            *out = (ps_model_kind)k;
            rc = 0;
        }
    }
    return rc;
}

const char *ps_model_kind_name(ps_model_kind kind)
{
    return (unsigned)kind < PS_MODEL_NKINDS ? kind_names[kind] : "?";
}

/* The fields that shape the tables (ps_model_tables). */
static int check_shape(const ps_model_cfg *c)
{
    if (c->kind != PS_MODEL_LOGREG && c->kind != PS_MODEL_MLP) {
        PS_LOG(ERROR, "model config: kind %d is neither logreg nor mlp", (int)c->kind);
        return PS_ECONFIG;
    }
    if (c->in_dim == 0 || (!c->sparse_input && c->in_dim > INT_MAX)) {
        PS_LOG(ERROR, "model config: in_dim %llu must be >= 1 (and <= %d for dense input)",
               (unsigned long long)c->in_dim, INT_MAX);
        return PS_ECONFIG;
    }
    if (c->sparse_input && c->in_dim > (UINT64_C(1) << LAYER_UNIT_SHIFT)) {
        PS_LOG(ERROR, "model config: sparse in_dim %llu exceeds 2^%d",
               (unsigned long long)c->in_dim, LAYER_UNIT_SHIFT);
        return PS_ECONFIG;
    }
    if (c->nclasses < 2 || c->nclasses > INT_MAX) {
        PS_LOG(ERROR, "model config: nclasses %u must be >= 2", c->nclasses);
        return PS_ECONFIG;
    }
    if (c->init_override != -1 && (c->init_override < PS_INIT_ZEROS ||
                                   c->init_override > PS_INIT_GLOROT)) {
        PS_LOG(ERROR, "model config: init_override %d is not -1 or a ps_init_kind",
               c->init_override);
        return PS_ECONFIG;
    }
    if (c->kind == PS_MODEL_MLP) {
        if (c->nhidden < 1 || c->nhidden > PS_MODEL_MAX_HIDDEN) {
            PS_LOG(ERROR, "model config: mlp needs 1..%d hidden layers, got %u",
                   PS_MODEL_MAX_HIDDEN, c->nhidden);
            return PS_ECONFIG;
        }
        for (uint32_t i = 0; i < c->nhidden; i++) {
            if (c->hidden[i] == 0 || c->hidden[i] > INT_MAX) {
                PS_LOG(ERROR, "model config: hidden layer %u has width %u", i + 1, c->hidden[i]);
                return PS_ECONFIG;
            }
        }
    }
    return 0;
}

/* The fields that only training and evaluation use. */
static int check_run(const ps_model_cfg *c)
{
    if (c->max_batch == 0 || c->max_batch > INT_MAX) {
        PS_LOG(ERROR, "model config: max_batch %u must be in [1, %d]", c->max_batch, INT_MAX);
        return PS_ECONFIG;
    }
    if (!(c->dropout_input >= 0.0f && c->dropout_input < 1.0f) ||
        !(c->dropout_hidden >= 0.0f && c->dropout_hidden < 1.0f)) {
        PS_LOG(ERROR, "model config: dropout input %g / hidden %g must be in [0, 1)",
               (double)c->dropout_input, (double)c->dropout_hidden);
        return PS_ECONFIG;
    }
    if (!(c->l2 >= 0.0f) || !isfinite(c->l2)) {
        PS_LOG(ERROR, "model config: l2 %g must be finite and >= 0", (double)c->l2);
        return PS_ECONFIG;
    }
    return 0;
}

int ps_model_tables(const ps_model_cfg *c, ps_table_desc *out, uint32_t cap, uint32_t *n)
{
    *n = 0;
    int rc = check_shape(c);
    if (rc) {
        return rc;
    }
    uint32_t nlayers = (c->kind == PS_MODEL_MLP ? c->nhidden : 0) + 1;
    if (cap < 2 * nlayers) {
        PS_LOG(ERROR, "model tables: room for %u tables, the model has %u", cap, 2 * nlayers);
        return PS_EINVAL;
    }
    ps_init_kind wdef = c->kind == PS_MODEL_LOGREG ? PS_INIT_ZEROS : PS_INIT_GLOROT;
    ps_init_kind winit = c->init_override >= 0 ? (ps_init_kind)c->init_override : wdef;
    uint64_t fan_in = c->in_dim;
    for (uint32_t l = 1; l <= nlayers; l++) {
        ps_table_desc *w = &out[2 * (l - 1)];
        ps_table_desc *b = w + 1;
        uint32_t width = l < nlayers ? c->hidden[l - 1] : c->nclasses;
        memset(w, 0, 2 * sizeof *w);
        if (c->kind == PS_MODEL_LOGREG) {
            snprintf(w->name, sizeof w->name, "w");
            snprintf(b->name, sizeof b->name, "b");
        } else {
            snprintf(w->name, sizeof w->name, "w%u", l);
            snprintf(b->name, sizeof b->name, "b%u", l);
        }
        w->rows = fan_in;
        w->width = width;
        w->init = winit;
        w->scale = winit == PS_INIT_GLOROT   ? ps_table_glorot_scale(fan_in, width)
                   : winit == PS_INIT_NORMAL ? 0.01f
                                             : 0.0f;
        b->rows = 1;
        b->width = width;
        b->init = PS_INIT_ZEROS;
        b->scale = 0.0f;
        fan_in = width;
    }
    *n = 2 * nlayers;
    return 0;
}

static float *alloc_floats(size_t rows, size_t cols)
{
    if (cols && rows > SIZE_MAX / sizeof(float) / cols) {
        return NULL;
    }
    return ps_aligned_alloc(ALIGN, rows * cols * sizeof(float));
}

int ps_model_create(ps_model **out, const ps_model_cfg *cfg)
{
    ps_table_desc tables[PS_MODEL_MAX_TABLES];
    uint32_t ntables;
    int rc = ps_model_tables(cfg, tables, PS_MODEL_MAX_TABLES, &ntables);
    if (rc || (rc = check_run(cfg))) {
        return rc;
    }
    ps_model *m = ps_calloc(1, sizeof *m);
    if (!m) {
        return PS_ENOMEM;
    }
    m->cfg = *cfg;
    m->ntables = ntables;
    memcpy(m->tables, tables, ntables * sizeof *tables);
    uint32_t nh = cfg->kind == PS_MODEL_MLP ? cfg->nhidden : 0;
    m->nlayers = nh + 1;
    uint32_t maxh = 0;
    for (uint32_t l = 1; l <= nh; l++) {
        m->width[l] = cfg->hidden[l - 1];
        maxh = m->width[l] > maxh ? m->width[l] : maxh;
    }
    m->width[m->nlayers] = cfg->nclasses;
    m->maxw = maxh > cfg->nclasses ? maxh : cfg->nclasses;

    size_t nb = cfg->max_batch;
    rc = PS_ENOMEM;
    for (uint32_t l = 1; l <= m->nlayers; l++) {
        if (!(m->act[l] = alloc_floats(nb, m->width[l]))) {
            goto fail;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (!(m->dbuf[i] = alloc_floats(nb, m->maxw))) {
            goto fail;
        }
    }
    if (maxh && cfg->dropout_hidden > 0.0f && !(m->mask = alloc_floats(nb, maxh))) {
        goto fail;
    }
    if (!cfg->sparse_input && cfg->dropout_input > 0.0f &&
        !(m->xin = alloc_floats(nb, cfg->in_dim))) {
        goto fail;
    }
    if (cfg->sparse_input && !(m->hist = ps_malloc(RADIX_SIZE * sizeof *m->hist))) {
        goto fail;
    }
    *out = m;
    return 0;

fail:
    PS_LOG(ERROR, "model: out of memory allocating buffers for batch %u", cfg->max_batch);
    ps_model_destroy(&m);
    return rc;
}

void ps_model_destroy(ps_model **pm)
{
    if (!pm || !*pm) {
        return;
    }
    ps_model *m = *pm;
    for (uint32_t l = 0; l <= MAX_LAYERS; l++) {
        ps_aligned_free(m->act[l]);
    }
    ps_aligned_free(m->dbuf[0]);
    ps_aligned_free(m->dbuf[1]);
    ps_aligned_free(m->mask);
    ps_aligned_free(m->xin);
    ps_free(m->xval);
    for (int i = 0; i < 2; i++) {
        ps_free(m->sort_id[i]);
        ps_free(m->sort_k[i]);
    }
    ps_free(m->hist);
    ps_free(m);
    *pm = NULL;
}

uint32_t ps_model_ntables(const ps_model *m)
{
    return m->ntables;
}

const ps_table_desc *ps_model_table(const ps_model *m, uint32_t t)
{
    return t < m->ntables ? &m->tables[t] : NULL;
}

const ps_model_cfg *ps_model_config(const ps_model *m)
{
    return &m->cfg;
}

/* ---- batch keys ---- */

static int grow_u64(uint64_t **arr, size_t *cap, size_t need)
{
    void *p = *arr;
    int rc = ps_grow(&p, cap, need, sizeof **arr);
    *arr = p;
    return rc;
}

static int grow_u32(uint32_t **arr, size_t *cap, size_t need)
{
    void *p = *arr;
    int rc = ps_grow(&p, cap, need, sizeof **arr);
    *arr = p;
    return rc;
}

/* need_labels 0: b->y may be NULL and is not read (prediction). */
static int check_batch(const ps_model *m, const ps_batch *b, size_t max_n, const char *who,
                       int need_labels)
{
    const ps_model_cfg *c = &m->cfg;
    if (b->n == 0 || b->n > max_n) {
        PS_LOG(ERROR, "%s: batch of %zu samples, model takes 1..%zu", who, b->n, max_n);
        return PS_EINVAL;
    }
    if ((b->sparse != 0) != (c->sparse_input != 0)) {
        PS_LOG(ERROR, "%s: batch is %s but the model was built for %s input", who,
               b->sparse ? "sparse" : "dense", c->sparse_input ? "sparse" : "dense");
        return PS_EINVAL;
    }
    if (b->sparse ? (b->dim > c->in_dim || !b->indptr || !b->idx || !b->val)
                  : (b->dim != c->in_dim || !b->x)) {
        PS_LOG(ERROR, "%s: batch dim %llu (or its arrays) does not match model in_dim %llu", who,
               (unsigned long long)b->dim, (unsigned long long)c->in_dim);
        return PS_EINVAL;
    }
    if (!need_labels) {
        return 0;
    }
    if (!b->y) {
        PS_LOG(ERROR, "%s: batch has no labels", who);
        return PS_EINVAL;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (b->y[i] < 0 || (uint32_t)b->y[i] >= c->nclasses) {
            PS_LOG(ERROR, "%s: sample %zu has label %d, model has %u classes", who, i, b->y[i],
                   c->nclasses);
            return PS_EINVAL;
        }
    }
    return 0;
}

static int fill_all_rows(ps_keylist *k, uint64_t rows)
{
    if (rows > SIZE_MAX / sizeof(uint64_t)) {
        return PS_ENOMEM;
    }
    int rc = grow_u64(&k->keys, &k->cap, (size_t)rows);
    if (rc) {
        return rc;
    }
    for (uint64_t r = 0; r < rows; r++) {
        k->keys[r] = r;
    }
    k->n = (size_t)rows;
    k->nnz = 0;
    return 0;
}

/* LSD radix sort of (id, k) pairs on the bits below 2^bits, RADIX_BITS per
 * pass; passes where every id shares the digit are skipped. Returns which
 * buffer (0 or 1) holds the result. */
static int radix_sort(ps_model *m, size_t nnz, unsigned bits)
{
    int cur = 0;
    for (unsigned shift = 0; shift < bits; shift += RADIX_BITS) {
        const uint64_t *id = m->sort_id[cur];
        const uint32_t *kk = m->sort_k[cur];
        uint64_t *id2 = m->sort_id[!cur];
        uint32_t *kk2 = m->sort_k[!cur];
        uint32_t *h = m->hist;
        memset(h, 0, RADIX_SIZE * sizeof *h);
        for (size_t i = 0; i < nnz; i++) {
            h[(id[i] >> shift) & (RADIX_SIZE - 1)]++;
        }
        if (h[(id[0] >> shift) & (RADIX_SIZE - 1)] == nnz) {
            continue;
        }
        uint32_t sum = 0;
        for (uint32_t d = 0; d < RADIX_SIZE; d++) {
            uint32_t c = h[d];
            h[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < nnz; i++) {
            uint32_t at = h[(id[i] >> shift) & (RADIX_SIZE - 1)]++;
            id2[at] = id[i];
            kk2[at] = kk[i];
        }
        cur = !cur;
    }
    return cur;
}

static int sparse_keys(ps_model *m, const ps_batch *b, ps_keylist *k)
{
    uint64_t base = b->indptr[0], end = b->indptr[b->n];
    if (end < base || end - base > UINT32_MAX) {
        PS_LOG(ERROR, "batch keys: indptr runs from %llu to %llu", (unsigned long long)base,
               (unsigned long long)end);
        return PS_EINVAL;
    }
    size_t nnz = (size_t)(end - base);
    for (size_t i = 0; i < b->n; i++) {
        if (b->indptr[i + 1] < b->indptr[i]) {
            PS_LOG(ERROR, "batch keys: indptr decreases at sample %zu", i);
            return PS_EINVAL;
        }
    }
    int rc;
    if ((rc = grow_u64(&m->sort_id[0], &m->sort_cap[0], nnz)) ||
        (rc = grow_u64(&m->sort_id[1], &m->sort_cap[1], nnz)) ||
        (rc = grow_u32(&m->sort_k[0], &m->sort_cap[2], nnz)) ||
        (rc = grow_u32(&m->sort_k[1], &m->sort_cap[3], nnz)) ||
        (rc = grow_u32(&k->pos, &k->pos_cap, nnz))) {
        PS_LOG(ERROR, "batch keys: out of memory for %zu non-zeros", nnz);
        return rc;
    }
    const uint64_t *idx = b->idx + base;
    uint64_t maxid = 0;
    for (size_t i = 0; i < nnz; i++) {
        m->sort_id[0][i] = idx[i];
        m->sort_k[0][i] = (uint32_t)i;
        maxid = idx[i] > maxid ? idx[i] : maxid;
    }
    if (nnz && maxid >= m->cfg.in_dim) {
        PS_LOG(ERROR, "batch keys: feature id %llu >= in_dim %llu", (unsigned long long)maxid,
               (unsigned long long)m->cfg.in_dim);
        return PS_EINVAL;
    }
    size_t nuniq = 0;
    if (nnz) {
        unsigned bits = 0;
        while (bits < 64 && (maxid >> bits)) {
            bits++;
        }
        int cur = radix_sort(m, nnz, bits);
        const uint64_t *id = m->sort_id[cur];
        const uint32_t *kk = m->sort_k[cur];
        /* At most nnz unique ids: grow once, then write in place. */
        if ((rc = grow_u64(&k->keys, &k->cap, nnz))) {
            PS_LOG(ERROR, "batch keys: out of memory for %zu keys", nnz);
            return rc;
        }
        for (size_t i = 0; i < nnz; i++) {
            if (i == 0 || id[i] != id[i - 1]) {
                k->keys[nuniq++] = id[i];
            }
            k->pos[kk[i]] = (uint32_t)(nuniq - 1);
        }
    }
    k->n = nuniq;
    k->nnz = nnz;
    return 0;
}

int ps_model_batch_keys(ps_model *m, const ps_batch *b, ps_keylist *keys)
{
    int rc = check_batch(m, b, SIZE_MAX, "batch keys", 1);
    if (rc) {
        return rc;
    }
    for (uint32_t t = 0; t < m->ntables; t++) {
        if (t == 0 && m->cfg.sparse_input) {
            rc = sparse_keys(m, b, &keys[t]);
        } else {
            rc = fill_all_rows(&keys[t], m->tables[t].rows);
            if (rc) {
                PS_LOG(ERROR, "batch keys: out of memory for table %s", m->tables[t].name);
            }
        }
        if (rc) {
            break;
        }
    }
    return rc;
}

void ps_model_keys_fini(ps_keylist *keys, uint32_t n)
{
    if (!keys) {
        return;
    }
    for (uint32_t t = 0; t < n; t++) {
        ps_free(keys[t].keys);
        ps_free(keys[t].pos);
        memset(&keys[t], 0, sizeof keys[t]);
    }
}


/* ---- element-wise kernels ---- */

/* y[i] = a * x[i] + y[i] */
static void axpy(float *restrict y, float a, const float *restrict x, size_t n)
{
    size_t j = 0;
    for (; j + CHUNK <= n; j += CHUNK) {
        for (size_t k = 0; k < CHUNK; k++) {
            y[j + k] += a * x[j + k];
        }
    }
    for (; j < n; j++) {
        y[j] += a * x[j];
    }
}

/* y[i] *= x[i] */
static void mul_inplace(float *restrict y, const float *restrict x, size_t n)
{
    size_t j = 0;
    for (; j + CHUNK <= n; j += CHUNK) {
        for (size_t k = 0; k < CHUNK; k++) {
            y[j + k] *= x[j + k];
        }
    }
    for (; j < n; j++) {
        y[j] *= x[j];
    }
}

/* z[j] = z[j] + b[j] */
static void add_bias(float *restrict z, const float *restrict b, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        z[j] += b[j];
    }
}

/* z[j] = max(z[j] + b[j], 0) * mk[j]; mk == NULL: no dropout. */
static void bias_relu_mask(float *restrict z, const float *restrict b, const float *restrict mk,
                           size_t n)
{
    size_t j = 0;
    if (mk) {
        for (; j + CHUNK <= n; j += CHUNK) {
            for (size_t k = 0; k < CHUNK; k++) {
                float v = z[j + k] + b[j + k];
                z[j + k] = (v > 0.0f ? v : 0.0f) * mk[j + k];
            }
        }
        for (; j < n; j++) {
            float v = z[j] + b[j];
            z[j] = (v > 0.0f ? v : 0.0f) * mk[j];
        }
        return;
    }
    for (; j + CHUNK <= n; j += CHUNK) {
        for (size_t k = 0; k < CHUNK; k++) {
            float v = z[j + k] + b[j + k];
            z[j + k] = v > 0.0f ? v : 0.0f;
        }
    }
    for (; j < n; j++) {
        float v = z[j] + b[j];
        z[j] = v > 0.0f ? v : 0.0f;
    }
}

/* Back through dropout and ReLU: a > 0 exactly where the unit was kept and
 * active, and there its mask value is s. da becomes dZ; gb += dZ. */
static void relu_mask_grad(float *restrict da, const float *restrict a, float s,
                           float *restrict gb, size_t n)
{
    size_t j = 0;
    for (; j + CHUNK <= n; j += CHUNK) {
        for (size_t k = 0; k < CHUNK; k++) {
            float g = da[j + k] * (a[j + k] > 0.0f ? s : 0.0f);
            da[j + k] = g;
            gb[j + k] += g;
        }
    }
    for (; j < n; j++) {
        float g = da[j] * (a[j] > 0.0f ? s : 0.0f);
        da[j] = g;
        gb[j] += g;
    }
}

/* ---- compute ---- */

static int check_keys(const ps_model *m, const ps_batch *b, const ps_keylist *keys,
                      const float *const *params, float *const *grads, const char *who)
{
    for (uint32_t t = 0; t < m->ntables; t++) {
        if (t == 0 && m->cfg.sparse_input) {
            uint64_t nnz = b->indptr[b->n] - b->indptr[0];
            if (keys[0].nnz != nnz || (nnz && (!keys[0].pos || !keys[0].n))) {
                PS_LOG(ERROR, "%s: keys of table %s were made for %zu non-zeros, batch has %llu",
                       who, m->tables[0].name, keys[0].nnz, (unsigned long long)nnz);
                return PS_EINVAL;
            }
        } else if (keys[t].n != m->tables[t].rows) {
            PS_LOG(ERROR, "%s: table %s has %zu keys, needs all %llu rows", who,
                   m->tables[t].name, keys[t].n, (unsigned long long)m->tables[t].rows);
            return PS_EINVAL;
        }
        /* An empty key set (a batch without features) needs no buffer. */
        if (keys[t].n && (!params[t] || (grads && !grads[t]))) {
            PS_LOG(ERROR, "%s: no parameter or gradient buffer for table %s", who,
                   m->tables[t].name);
            return PS_EINVAL;
        }
    }
    return 0;
}

/* Sparse input values after dropout, one per non-zero of the batch. */
static int sparse_dropout_values(ps_model *m, const ps_batch *b, uint64_t step)
{
    uint64_t base = b->indptr[0];
    size_t nnz = (size_t)(b->indptr[b->n] - base);
    void *p = m->xval;
    int rc = ps_grow(&p, &m->xval_cap, nnz, sizeof(float));
    m->xval = p;
    if (rc) {
        PS_LOG(ERROR, "model: out of memory for %zu dropout values", nnz);
        return rc;
    }
    const ps_model_cfg *c = &m->cfg;
    ps_dropout d;
    ps_dropout_init(&d, c->seed, c->worker, step, c->dropout_input);
    for (size_t i = 0; i < b->n; i++) {
        /* Same unit numbering as dense input, so the two layouts of one batch
         * draw the same mask. */
        for (uint64_t k = b->indptr[i]; k < b->indptr[i + 1]; k++) {
            uint64_t unit = (uint64_t)i * c->in_dim + b->idx[k];
            m->xval[k - base] = b->val[k] * ps_dropout_unit(&d, unit);
        }
    }
    return 0;
}

/* out[i][:] = sum over the row's non-zeros of v * W[pos]; rows of W are
 * the compact rows of the batch's keys. */
static void sparse_forward(const ps_batch *b, size_t r0, size_t n, const uint32_t *pos,
                           const float *vals, const float *w, uint32_t d, float *out)
{
    uint64_t base = b->indptr[0];
    for (size_t i = 0; i < n; i++) {
        float *o = out + i * d;
        memset(o, 0, d * sizeof *o);
        for (uint64_t k = b->indptr[r0 + i]; k < b->indptr[r0 + i + 1]; k++) {
            axpy(o, vals[k - base], w + (size_t)pos[k - base] * d, d);
        }
    }
}

/* gw[pos][:] += v * dz[i][:] over the batch's non-zeros; gw is zeroed first. */
static void sparse_backward(const ps_batch *b, const uint32_t *pos, size_t nrows,
                            const float *vals, const float *dz, uint32_t d, float *gw)
{
    uint64_t base = b->indptr[0];
    if (nrows == 0) {
        return; /* no features in the batch, and gw may be NULL */
    }
    memset(gw, 0, nrows * d * sizeof *gw);
    for (size_t i = 0; i < b->n; i++) {
        const float *g = dz + i * d;
        for (uint64_t k = b->indptr[i]; k < b->indptr[i + 1]; k++) {
            axpy(gw + (size_t)pos[k - base] * d, vals[k - base], g, d);
        }
    }
}

/* Runs rows [r0, r0 + n) of b forward; act[L] ends with the logits.
 * train turns dropout on. xvals: the sparse values to use. */
static void forward(ps_model *m, const ps_batch *b, size_t r0, size_t n, const ps_keylist *keys,
                    const float *const *params, const float *xvals, int train, uint64_t step)
{
    const ps_model_cfg *c = &m->cfg;
    uint32_t d1 = m->width[1];
    if (c->sparse_input) {
        sparse_forward(b, r0, n, keys[0].pos, xvals, params[0], d1, m->act[1]);
    } else {
        const float *x = b->x + r0 * c->in_dim;
        if (train && c->dropout_input > 0.0f) {
            ps_dropout d;
            ps_dropout_init(&d, c->seed, c->worker, step, c->dropout_input);
            ps_dropout_fill(&d, 0, m->xin, n * c->in_dim);
            mul_inplace(m->xin, x, n * c->in_dim);
            x = m->xin;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d1, (int)c->in_dim,
                    1.0f, x, (int)c->in_dim, params[0], (int)d1, 0.0f, m->act[1], (int)d1);
    }
    for (uint32_t l = 1; l <= m->nlayers; l++) {
        uint32_t d = m->width[l];
        const float *bias = params[2 * (l - 1) + 1];
        float *z = m->act[l];
        if (l > 1) {
            uint32_t dp = m->width[l - 1];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d, (int)dp, 1.0f,
                        m->act[l - 1], (int)dp, params[2 * (l - 1)], (int)d, 0.0f, z, (int)d);
        }
        const float *mk = NULL;
        if (l < m->nlayers && train && c->dropout_hidden > 0.0f) {
            ps_dropout drop;
            ps_dropout_init(&drop, c->seed, c->worker, step, c->dropout_hidden);
            ps_dropout_fill(&drop, (uint64_t)l << LAYER_UNIT_SHIFT, m->mask, n * d);
            mk = m->mask;
        }
        for (size_t i = 0; i < n; i++) {
            if (l == m->nlayers) {
                add_bias(z + i * d, bias, d);
            } else {
                bias_relu_mask(z + i * d, bias, mk ? mk + i * d : NULL, d);
            }
        }
    }
}

/* Log-sum-exp of one row of logits. */
static double row_lse(const float *z, uint32_t d, float *zmax)
{
    float mx = z[0];
    for (uint32_t j = 1; j < d; j++) {
        mx = z[j] > mx ? z[j] : mx;
    }
    double s = 0.0;
    for (uint32_t j = 0; j < d; j++) {
        s += exp((double)(z[j] - mx));
    }
    *zmax = mx;
    return (double)mx + log(s);
}

int ps_model_forward_backward(ps_model *m, const ps_batch *b, const ps_keylist *keys,
                              const float *const *params, float *const *grads, uint64_t step,
                              double *loss)
{
    const ps_model_cfg *c = &m->cfg;
    int rc = check_batch(m, b, c->max_batch, "forward_backward", 1);
    if (rc || (rc = check_keys(m, b, keys, params, grads, "forward_backward"))) {
        return rc;
    }
    size_t n = b->n;
    const float *xvals = NULL;
    if (c->sparse_input) {
        xvals = b->val + b->indptr[0];
        if (c->dropout_input > 0.0f) {
            if ((rc = sparse_dropout_values(m, b, step))) {
                return rc;
            }
            xvals = m->xval;
        }
    }
    forward(m, b, 0, n, keys, params, xvals, 1, step);

    /* Softmax cross-entropy; dZ_L = (p - onehot) / n. */
    uint32_t L = m->nlayers, C = m->width[L];
    float *dz = m->dbuf[0];
    double lsum = 0.0;
    float inv_n = 1.0f / (float)n;
    for (size_t i = 0; i < n; i++) {
        const float *z = m->act[L] + i * C;
        float mx;
        double lse = row_lse(z, C, &mx);
        lsum += lse - (double)z[b->y[i]];
        for (uint32_t j = 0; j < C; j++) {
            dz[i * C + j] = (float)exp((double)z[j] - lse) * inv_n;
        }
        dz[i * C + (uint32_t)b->y[i]] -= inv_n;
    }
    double total = lsum / (double)n;

    /* Output bias gradient: column sums of dZ_L. */
    float *gb = grads[2 * (L - 1) + 1];
    memset(gb, 0, C * sizeof *gb);
    for (size_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < C; j++) {
            gb[j] += dz[i * C + j];
        }
    }
    float hscale = c->dropout_hidden > 0.0f ? 1.0f / (1.0f - c->dropout_hidden) : 1.0f;
    for (uint32_t l = L; l >= 1; l--) {
        uint32_t d = m->width[l];
        float *gw = grads[2 * (l - 1)];
        if (l == 1 && c->sparse_input) {
            sparse_backward(b, keys[0].pos, keys[0].n, xvals, dz, d, gw);
            break;
        }
        const float *a_prev;
        int dp;
        if (l == 1) {
            a_prev = (c->dropout_input > 0.0f) ? m->xin : b->x;
            dp = (int)c->in_dim;
        } else {
            a_prev = m->act[l - 1];
            dp = (int)m->width[l - 1];
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dp, (int)d, (int)n, 1.0f, a_prev, dp,
                    dz, (int)d, 0.0f, gw, (int)d);
        if (l == 1) {
            break;
        }
        /* dA_{l-1} = dZ_l W_l^T, then through dropout and ReLU: A > 0 exactly
         * where the unit was kept and active, and its mask value is hscale. */
        float *da = m->dbuf[dz == m->dbuf[0]];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, dp, (int)d, 1.0f, dz, (int)d,
                    params[2 * (l - 1)], (int)d, 0.0f, da, dp);
        float *gbp = grads[2 * (l - 2) + 1];
        memset(gbp, 0, (size_t)dp * sizeof *gbp);
        for (size_t i = 0; i < n; i++) {
            relu_mask_grad(da + i * dp, a_prev + i * dp, hscale, gbp, (size_t)dp);
        }
        dz = da;
    }

    if (c->l2 > 0.0f) {
        double reg = 0.0;
        for (uint32_t l = 1; l <= L; l++) {
            uint32_t t = 2 * (l - 1);
            size_t len = keys[t].n * (size_t)m->width[l];
            if (len == 0) {
                continue;
            }
            const float *restrict w = params[t];
            float *restrict g = grads[t];
            for (size_t i = 0; i < len; i++) {
                reg += (double)w[i] * w[i];
            }
            for (size_t i = 0; !c->l2_on_server && i < len; i++) {
                g[i] += c->l2 * w[i];
            }
        }
        total += 0.5 * c->l2 * reg;
    }
    *loss = total;
    return 0;
}

/* Index of the largest logit, the lowest on ties. */
static uint32_t row_argmax(const float *z, uint32_t d)
{
    uint32_t best = 0;
    for (uint32_t j = 1; j < d; j++) {
        best = z[j] > z[best] ? j : best;
    }
    return best;
}

/* Runs all of b forward without dropout, max_batch rows at a time, and
 * collects what the caller asks for: loss_sum and ncorrect (both or
 * neither; needs labels) and classes (b->n entries). */
static void score(ps_model *m, const ps_batch *b, const ps_keylist *keys,
                  const float *const *params, double *loss_sum, size_t *ncorrect, int32_t *classes)
{
    const float *xvals = m->cfg.sparse_input ? b->val + b->indptr[0] : NULL;
    uint32_t L = m->nlayers, C = m->width[L];
    double lsum = 0.0;
    size_t good = 0;
    for (size_t r0 = 0; r0 < b->n; r0 += m->cfg.max_batch) {
        size_t n = b->n - r0 < m->cfg.max_batch ? b->n - r0 : m->cfg.max_batch;
        forward(m, b, r0, n, keys, params, xvals, 0, 0);
        for (size_t i = 0; i < n; i++) {
            const float *z = m->act[L] + i * C;
            uint32_t best = row_argmax(z, C);
            if (classes) {
                classes[r0 + i] = (int32_t)best;
            }
            if (loss_sum) {
                float mx;
                lsum += row_lse(z, C, &mx) - (double)z[b->y[r0 + i]];
                good += best == (uint32_t)b->y[r0 + i];
            }
        }
    }
    if (loss_sum) {
        *loss_sum = lsum;
        *ncorrect = good;
    }
}

int ps_model_evaluate(ps_model *m, const ps_batch *b, const ps_keylist *keys,
                      const float *const *params, double *loss_sum, size_t *ncorrect)
{
    int rc = check_batch(m, b, SIZE_MAX, "evaluate", 1);
    if (rc || (rc = check_keys(m, b, keys, params, NULL, "evaluate"))) {
        return rc;
    }
    score(m, b, keys, params, loss_sum, ncorrect, NULL);
    return 0;
}

int ps_model_predict(ps_model *m, const ps_batch *b, const ps_keylist *keys,
                     const float *const *params, int32_t *classes)
{
    int rc = check_batch(m, b, SIZE_MAX, "predict", 0);
    if (rc || (rc = check_keys(m, b, keys, params, NULL, "predict"))) {
        return rc;
    }
    score(m, b, keys, params, NULL, NULL, classes);
    return 0;
}
