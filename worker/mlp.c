/* Logistic regression and the MLP (worker/model.h): dense layers on sgemm,
 * a CSR kernel for a sparse first layer that touches only the rows of the
 * batch's features, hidden units of any ps_act_kind, inverted dropout,
 * softmax cross-entropy. Logistic regression is the MLP without hidden
 * layers. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/dropout.h"
#include "worker/model_internal.h"

#define MAX_LAYERS (PS_MODEL_MAX_HIDDEN + 1)

typedef struct {
    const ps_model_cfg *cfg;
    uint32_t nlayers;               /* L: hidden layers + output */
    uint32_t width[MAX_LAYERS + 1]; /* width[l], l = 1..L: outputs of layer l */
    float *act[MAX_LAYERS + 1];     /* act[l]: max_batch x width[l]; hidden after the
                                       activation and dropout, output logits */
    float *xin;                     /* dense input after dropout (dense, dropout_input > 0) */
    float *mask;                    /* dropout mask of one layer, max_batch x max hidden width */
    float *dbuf[2];                 /* gradients w.r.t. pre-activations, ping-pong */
    float *xval;                    /* sparse input values after dropout, one per non-zero */
    size_t xval_cap;
} mlp;

static int mlp_tables(const ps_model_cfg *c, ps_table_desc *out, uint32_t *n)
{
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
    uint32_t nlayers = (c->kind == PS_MODEL_MLP ? c->nhidden : 0) + 1;
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

static void mlp_fini(void *impl)
{
    mlp *m = impl;
    for (uint32_t l = 0; l <= MAX_LAYERS; l++) {
        ps_aligned_free(m->act[l]);
    }
    ps_aligned_free(m->dbuf[0]);
    ps_aligned_free(m->dbuf[1]);
    ps_aligned_free(m->mask);
    ps_aligned_free(m->xin);
    ps_free(m->xval);
}

static int mlp_init(void *impl)
{
    mlp *m = impl;
    const ps_model_cfg *cfg = m->cfg;
    uint32_t nh = cfg->kind == PS_MODEL_MLP ? cfg->nhidden : 0;
    m->nlayers = nh + 1;
    uint32_t maxh = 0;
    for (uint32_t l = 1; l <= nh; l++) {
        m->width[l] = cfg->hidden[l - 1];
        maxh = m->width[l] > maxh ? m->width[l] : maxh;
    }
    m->width[m->nlayers] = cfg->nclasses;
    uint32_t maxw = maxh > cfg->nclasses ? maxh : cfg->nclasses;

    size_t nb = cfg->max_batch;
    int ok = 1;
    for (uint32_t l = 1; l <= m->nlayers; l++) {
        ok = ok && (m->act[l] = ps_layers_alloc(nb, m->width[l]));
    }
    ok = ok && (m->dbuf[0] = ps_layers_alloc(nb, maxw)) && (m->dbuf[1] = ps_layers_alloc(nb, maxw));
    if (ok && maxh && cfg->dropout_hidden > 0.0f) {
        ok = (m->mask = ps_layers_alloc(nb, maxh)) != NULL;
    }
    if (ok && !cfg->sparse_input && cfg->dropout_input > 0.0f) {
        ok = (m->xin = ps_layers_alloc(nb, cfg->in_dim)) != NULL;
    }
    return ok ? 0 : PS_ENOMEM;
}

/* Sparse input values after dropout, one per non-zero of the batch. */
static int sparse_dropout_values(mlp *m, const ps_batch *b, uint64_t step)
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
    const ps_model_cfg *c = m->cfg;
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
            ps_layers_axpy(o, vals[k - base], w + (size_t)pos[k - base] * d, d);
        }
    }
}

/* gw[pos][:] += v * dz[i][:] over the batch's non-zeros; gw is zeroed first. */
static void sparse_backward(const ps_batch *b, const uint32_t *pos, size_t nrows, const float *vals,
                            const float *dz, uint32_t d, float *gw)
{
    uint64_t base = b->indptr[0];
    if (nrows == 0) {
        return; /* no features in the batch, and gw may be NULL */
    }
    memset(gw, 0, nrows * d * sizeof *gw);
    for (size_t i = 0; i < b->n; i++) {
        const float *g = dz + i * d;
        for (uint64_t k = b->indptr[i]; k < b->indptr[i + 1]; k++) {
            ps_layers_axpy(gw + (size_t)pos[k - base] * d, vals[k - base], g, d);
        }
    }
}

/* Runs rows [r0, r0 + n) of b forward; act[L] ends with the logits.
 * train turns dropout on. xvals: the sparse values to use. */
static void forward(mlp *m, const ps_batch *b, size_t r0, size_t n, const ps_keylist *keys,
                    const float *const *params, const float *xvals, int train, uint64_t step)
{
    const ps_model_cfg *c = m->cfg;
    uint32_t d1 = m->width[1];
    if (c->sparse_input) {
        sparse_forward(b, r0, n, keys[0].pos, xvals, params[0], d1, m->act[1]);
    } else {
        const float *x = ps_layers_drop_input(c, b->x + r0 * c->in_dim, n, train, step, m->xin);
        ps_layers_dense(n, c->in_dim, d1, x, params[0], m->act[1]);
    }
    for (uint32_t l = 1; l <= m->nlayers; l++) {
        uint32_t d = m->width[l];
        const float *bias = params[2 * (l - 1) + 1];
        float *z = m->act[l];
        if (l > 1) {
            ps_layers_dense(n, m->width[l - 1], d, m->act[l - 1], params[2 * (l - 1)], z);
        }
        const float *mk = NULL;
        if (l < m->nlayers && train && c->dropout_hidden > 0.0f) {
            ps_layers_hidden_mask(c, l, step, m->mask, n * d);
            mk = m->mask;
        }
        for (size_t i = 0; i < n; i++) {
            if (l == m->nlayers) {
                ps_layers_add_bias(z + i * d, bias, d);
            } else {
                ps_layers_bias_act(c->activation, z + i * d, bias, mk ? mk + i * d : NULL, d);
            }
        }
    }
}

static int mlp_train(void *impl, const ps_batch *b, const ps_keylist *keys,
                     const float *const *params, float *const *grads, uint64_t step, double *loss)
{
    mlp *m = impl;
    const ps_model_cfg *c = m->cfg;
    size_t n = b->n;
    const float *xvals = NULL;
    int rc;
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
    *loss = ps_layers_softmax_xent(m->act[L], n, C, b->y, dz, 1.0f / (float)n) / (double)n;

    /* Output bias gradient: column sums of dZ_L. */
    ps_layers_colsum(dz, n, C, grads[2 * (L - 1) + 1]);
    int dropping = c->dropout_hidden > 0.0f;
    float hscale = dropping ? 1.0f / (1.0f - c->dropout_hidden) : 1.0f;
    for (uint32_t l = L; l >= 1; l--) {
        uint32_t d = m->width[l];
        float *gw = grads[2 * (l - 1)];
        if (l == 1 && c->sparse_input) {
            sparse_backward(b, keys[0].pos, keys[0].n, xvals, dz, d, gw);
            break;
        }
        const float *a_prev;
        size_t dp;
        if (l == 1) {
            a_prev = (c->dropout_input > 0.0f) ? m->xin : b->x;
            dp = c->in_dim;
        } else {
            a_prev = m->act[l - 1];
            dp = m->width[l - 1];
        }
        /* dA_{l-1} = dZ_l W_l^T, then back through dropout and the
         * activation (ReLU reads its own output; the others the mask). */
        float *da = l > 1 ? m->dbuf[dz == m->dbuf[0]] : NULL;
        ps_layers_dense_grad(n, dp, d, a_prev, dz, params[2 * (l - 1)], gw, da, 0);
        if (l == 1) {
            break;
        }
        const float *mk = NULL;
        if (dropping && c->activation != PS_ACT_RELU) {
            ps_layers_hidden_mask(c, l - 1, step, m->mask, n * dp);
            mk = m->mask;
        }
        float *gbp = grads[2 * (l - 2) + 1];
        memset(gbp, 0, dp * sizeof *gbp);
        for (size_t i = 0; i < n; i++) {
            ps_layers_act_grad(c->activation, da + i * dp, a_prev + i * dp, mk ? mk + i * dp : NULL,
                               hscale, gbp, dp);
        }
        dz = da;
    }
    return 0;
}

static void mlp_score(void *impl, const ps_batch *b, size_t r0, size_t n, const ps_keylist *keys,
                      const float *const *params, double *loss_sum, size_t *ncorrect,
                      int32_t *classes, float *proba)
{
    mlp *m = impl;
    const float *xvals = m->cfg->sparse_input ? b->val + b->indptr[0] : NULL;
    uint32_t C = m->width[m->nlayers];
    forward(m, b, r0, n, keys, params, xvals, 0, 0);
    ps_layers_score_rows(m->act[m->nlayers], n, C, b->y ? b->y + r0 : NULL, loss_sum, ncorrect,
                         classes ? classes + r0 : NULL, proba ? proba + r0 * C : NULL);
}

const ps_model_ops ps_mlp_ops = {sizeof(mlp), mlp_tables, mlp_init, mlp_fini, mlp_train, mlp_score};
