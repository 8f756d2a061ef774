/* The generic part of the model module (worker/model.h): kinds and their
 * names, configuration checks, the table list, batch keys (a sparse batch's
 * distinct feature ids, worker/keyset.h), L2, and dispatch to each kind's
 * implementation (worker/model_internal.h: mlp.c, cnn.c, vae.c). */
#include "worker/model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/keyset.h"
#include "worker/model_internal.h"

struct ps_model {
    ps_model_cfg cfg;
    const ps_model_ops *ops;
    void *impl; /* the kind's state */
    uint32_t ntables;
    ps_table_desc tables[PS_MODEL_MAX_TABLES];
    ps_keyset *keyset; /* sparse input only */
};

static const char *const kind_names[PS_MODEL_NKINDS] = {[PS_MODEL_LOGREG] = "logreg",
                                                        [PS_MODEL_MLP] = "mlp",
                                                        [PS_MODEL_CNN] = "cnn",
                                                        [PS_MODEL_VAE] = "vae"};

static const ps_model_ops *const kind_ops[PS_MODEL_NKINDS] = {[PS_MODEL_LOGREG] = &ps_mlp_ops,
                                                              [PS_MODEL_MLP] = &ps_mlp_ops,
                                                              [PS_MODEL_CNN] = &ps_cnn_ops,
                                                              [PS_MODEL_VAE] = &ps_vae_ops};

static const char *const act_names[PS_ACT_COUNT] = {[PS_ACT_RELU] = "relu",
                                                    [PS_ACT_SIGMOID] = "sigmoid",
                                                    [PS_ACT_SOFTPLUS] = "softplus",
                                                    [PS_ACT_TANH] = "tanh"};

static int parse_name(const char *const *names, int count, const char *text, int *out)
{
    for (int k = 0; text && k < count; k++) {
        if (strcmp(text, names[k]) == 0) {
            *out = k;
            return 0;
        }
    }
    return PS_EINVAL;
}

int ps_model_parse_kind(const char *text, ps_model_kind *out)
{
    int k;
    int rc = parse_name(kind_names, PS_MODEL_NKINDS, text, &k);
    if (rc == 0) {
        *out = (ps_model_kind)k;
    }
    return rc;
}

const char *ps_model_kind_name(ps_model_kind kind)
{
    return (unsigned)kind < PS_MODEL_NKINDS ? kind_names[kind] : "?";
}

int ps_model_parse_activation(const char *text, ps_act_kind *out)
{
    int k;
    int rc = parse_name(act_names, PS_ACT_COUNT, text, &k);
    if (rc == 0) {
        *out = (ps_act_kind)k;
    }
    return rc;
}

const char *ps_model_activation_name(ps_act_kind act)
{
    return (unsigned)act < PS_ACT_COUNT ? act_names[act] : "?";
}

int ps_model_has_accuracy(ps_model_kind kind)
{
    return kind != PS_MODEL_VAE;
}

void ps_model_info_write(const ps_model_cfg *cfg, ps_file_model *out)
{
    _Static_assert(PS_FILE_MAX_HIDDEN >= PS_MODEL_MAX_HIDDEN, "a file holds every hidden layer");
    _Static_assert(PS_FILE_MAX_HIDDEN >= PS_MODEL_MAX_CONV, "a file holds every convolution");
    snprintf(out->kind, sizeof out->kind, "%s", ps_model_kind_name(cfg->kind));
    out->in_dim = cfg->in_dim;
    out->nclasses = cfg->nclasses;
    out->sparse_input = cfg->sparse_input != 0;
    out->nhidden = cfg->kind == PS_MODEL_LOGREG ? 0 : cfg->nhidden;
    memset(out->hidden, 0, sizeof out->hidden);
    memcpy(out->hidden, cfg->hidden, out->nhidden * sizeof *out->hidden);
    int acts = cfg->kind == PS_MODEL_MLP || cfg->kind == PS_MODEL_VAE;
    snprintf(out->activation, sizeof out->activation, "%s",
             acts ? ps_model_activation_name(cfg->activation) : "");
    out->nconv = cfg->kind == PS_MODEL_CNN ? cfg->nconv : 0;
    memset(out->conv, 0, sizeof out->conv);
    memcpy(out->conv, cfg->conv, out->nconv * sizeof *out->conv);
    out->latent = cfg->kind == PS_MODEL_VAE ? cfg->latent : 0;
}

int ps_model_info_read(const ps_file_model *in, ps_model_cfg *out, char *field, size_t fieldlen,
                       char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    out->init_override = -1;
    const char *bad = NULL;
    ps_model_kind kind = PS_MODEL_LOGREG;
    ps_act_kind act = PS_ACT_RELU;
    if (ps_model_parse_kind(in->kind, &kind)) {
        bad = "model.kind";
        snprintf(why, whylen, "\"%s\" is not logreg, mlp, cnn or vae", in->kind);
    } else if (in->activation[0] && ps_model_parse_activation(in->activation, &act)) {
        bad = "model.activation";
        snprintf(why, whylen, "\"%s\" is not relu, sigmoid, softplus or tanh", in->activation);
    } else if (kind == PS_MODEL_LOGREG && in->nhidden) {
        bad = "model.hidden";
        snprintf(why, whylen, "%u hidden layers for a logreg model", in->nhidden);
    } else if (in->nhidden > PS_MODEL_MAX_HIDDEN || in->nconv > PS_MODEL_MAX_CONV ||
               (kind != PS_MODEL_CNN && in->nconv)) {
        bad = "model.conv";
        snprintf(why, whylen, "%u convolutions and %u hidden layers for a %s model", in->nconv,
                 in->nhidden, kind_names[kind]);
    }
    if (bad) {
        snprintf(field, fieldlen, "%s", bad);
        return PS_EFORMAT;
    }
    out->kind = kind;
    out->in_dim = in->in_dim;
    out->nclasses = in->nclasses;
    out->sparse_input = in->sparse_input;
    out->nhidden = in->nhidden;
    memcpy(out->hidden, in->hidden, in->nhidden * sizeof *out->hidden);
    out->activation = act;
    out->nconv = in->nconv;
    memcpy(out->conv, in->conv, in->nconv * sizeof *out->conv);
    out->latent = in->latent;
    return 0;
}

/* The fields that shape the tables, common to every kind; the kind's own
 * go to its ops->tables. */
static int check_shape(const ps_model_cfg *c)
{
    if ((unsigned)c->kind >= PS_MODEL_NKINDS) {
        PS_LOG(ERROR, "model config: kind %d is not logreg, mlp, cnn or vae", (int)c->kind);
        return PS_ECONFIG;
    }
    if (c->in_dim == 0 || (!c->sparse_input && c->in_dim > INT_MAX)) {
        PS_LOG(ERROR, "model config: in_dim %llu must be >= 1 (and <= %d for dense input)",
               (unsigned long long)c->in_dim, INT_MAX);
        return PS_ECONFIG;
    }
    if (c->sparse_input && c->in_dim > (UINT64_C(1) << PS_LAYER_UNIT_SHIFT)) {
        PS_LOG(ERROR, "model config: sparse in_dim %llu exceeds 2^%d",
               (unsigned long long)c->in_dim, PS_LAYER_UNIT_SHIFT);
        return PS_ECONFIG;
    }
    if (c->sparse_input && (c->kind == PS_MODEL_CNN || c->kind == PS_MODEL_VAE)) {
        PS_LOG(ERROR, "model config: a %s takes dense input (images), not sparse features",
               kind_names[c->kind]);
        return PS_ECONFIG;
    }
    if (c->nclasses < 2 || c->nclasses > INT_MAX) {
        PS_LOG(ERROR, "model config: nclasses %u must be >= 2", c->nclasses);
        return PS_ECONFIG;
    }
    if (c->init_override != -1 &&
        (c->init_override < PS_INIT_ZEROS || c->init_override > PS_INIT_GLOROT)) {
        PS_LOG(ERROR, "model config: init_override %d is not -1 or a ps_init_kind",
               c->init_override);
        return PS_ECONFIG;
    }
    if ((unsigned)c->activation >= PS_ACT_COUNT) {
        PS_LOG(ERROR, "model config: activation %d is not relu, sigmoid, softplus or tanh",
               (int)c->activation);
        return PS_ECONFIG;
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
    if (c->kind == PS_MODEL_VAE && (c->dropout_input > 0.0f || c->dropout_hidden > 0.0f)) {
        PS_LOG(ERROR, "model config: the vae takes no dropout (input %g, hidden %g)",
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
    ps_table_desc all[PS_MODEL_MAX_TABLES];
    uint32_t count = 0;
    *n = 0;
    int rc = check_shape(c);
    if (rc || (rc = kind_ops[c->kind]->tables(c, all, &count))) {
        return rc;
    }
    PS_ASSERT(count <= PS_MODEL_MAX_TABLES);
    if (cap < count) {
        PS_LOG(ERROR, "model tables: room for %u tables, the model has %u", cap, count);
        return PS_EINVAL;
    }
    memcpy(out, all, count * sizeof *all);
    *n = count;
    return 0;
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
    m->ops = kind_ops[cfg->kind];
    m->ntables = ntables;
    memcpy(m->tables, tables, ntables * sizeof *tables);
    /* The kind's state starts with its cfg pointer (model_internal.h). */
    if (!(m->impl = ps_calloc(1, m->ops->size))) {
        rc = PS_ENOMEM;
    } else {
        *(const ps_model_cfg **)m->impl = &m->cfg;
        rc = m->ops->init(m->impl);
    }
    if (rc == 0 && cfg->sparse_input) {
        rc = ps_keyset_create(&m->keyset);
    }
    if (rc) {
        if (rc == PS_ENOMEM) {
            PS_LOG(ERROR, "model: out of memory allocating buffers for batch %u", cfg->max_batch);
        }
        ps_model_destroy(&m);
        return rc;
    }
    *out = m;
    return 0;
}

void ps_model_destroy(ps_model **pm)
{
    if (!pm || !*pm) {
        return;
    }
    ps_model *m = *pm;
    if (m->impl) {
        m->ops->fini(m->impl);
        ps_free(m->impl);
    }
    ps_keyset_destroy(&m->keyset);
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
    /* At most nnz distinct ids: grow once, then write in place. */
    int rc;
    if ((rc = grow_u64(&k->keys, &k->cap, nnz)) || (rc = grow_u32(&k->pos, &k->pos_cap, nnz))) {
        PS_LOG(ERROR, "batch keys: out of memory for %zu non-zeros", nnz);
        return rc;
    }
    const uint64_t *idx = b->idx + base;
    uint64_t maxid = 0;
    for (size_t i = 0; i < nnz; i++) {
        maxid = idx[i] > maxid ? idx[i] : maxid;
    }
    if (nnz && maxid >= m->cfg.in_dim) {
        PS_LOG(ERROR, "batch keys: feature id %llu >= in_dim %llu", (unsigned long long)maxid,
               (unsigned long long)m->cfg.in_dim);
        return PS_EINVAL;
    }
    size_t nuniq = 0;
    if ((rc = ps_keyset_extract(m->keyset, idx, nnz, maxid + 1, k->keys, k->pos, &nuniq))) {
        return rc;
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

int ps_model_grow_rows(const ps_model *m, const ps_keylist *keys, float **bufs, size_t *caps)
{
    for (uint32_t t = 0; t < m->ntables; t++) {
        size_t need = keys[t].n * m->tables[t].width;
        int rc = ps_grow((void **)&bufs[t], &caps[t], need ? need : 1, sizeof(float));
        if (rc) {
            return rc;
        }
    }
    return 0;
}

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
            PS_LOG(ERROR, "%s: table %s has %zu keys, needs all %llu rows", who, m->tables[t].name,
                   keys[t].n, (unsigned long long)m->tables[t].rows);
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

/* ---- compute ---- */

int ps_model_forward_backward(ps_model *m, const ps_batch *b, const ps_keylist *keys,
                              const float *const *params, float *const *grads, uint64_t step,
                              double *loss)
{
    const ps_model_cfg *c = &m->cfg;
    int rc = check_batch(m, b, c->max_batch, "forward_backward", 1);
    if (rc || (rc = check_keys(m, b, keys, params, grads, "forward_backward"))) {
        return rc;
    }
    double total = 0.0;
    if ((rc = m->ops->train(m->impl, b, keys, params, grads, step, &total))) {
        return rc;
    }
    /* L2 on the weight tables (even indices in every kind's list) over the
     * rows present. */
    if (c->l2 > 0.0f) {
        double reg = 0.0;
        for (uint32_t t = 0; t < m->ntables; t += 2) {
            size_t len = keys[t].n * (size_t)m->tables[t].width;
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

/* Runs all of b through the kind's score, max_batch rows at a time. */
static void score(ps_model *m, const ps_batch *b, const ps_keylist *keys,
                  const float *const *params, double *loss_sum, size_t *ncorrect, int32_t *classes,
                  float *proba)
{
    double lsum = 0.0;
    size_t good = 0;
    for (size_t r0 = 0; r0 < b->n; r0 += m->cfg.max_batch) {
        size_t n = b->n - r0 < m->cfg.max_batch ? b->n - r0 : m->cfg.max_batch;
        m->ops->score(m->impl, b, r0, n, keys, params, loss_sum ? &lsum : NULL,
                      loss_sum ? &good : NULL, classes, proba);
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
    score(m, b, keys, params, loss_sum, ncorrect, NULL, NULL);
    return 0;
}

int ps_model_predict(ps_model *m, const ps_batch *b, const ps_keylist *keys,
                     const float *const *params, int32_t *classes)
{
    return ps_model_predict_proba(m, b, keys, params, classes, NULL);
}

int ps_model_predict_proba(ps_model *m, const ps_batch *b, const ps_keylist *keys,
                           const float *const *params, int32_t *classes, float *proba)
{
    if (!ps_model_has_accuracy(m->cfg.kind)) {
        PS_LOG(ERROR, "predict: a %s has no classes to predict", kind_names[m->cfg.kind]);
        return PS_EINVAL;
    }
    int rc = check_batch(m, b, SIZE_MAX, "predict", 0);
    if (rc || (rc = check_keys(m, b, keys, params, NULL, "predict"))) {
        return rc;
    }
    score(m, b, keys, params, NULL, NULL, classes, proba);
    return 0;
}
