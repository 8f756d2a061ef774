/* The convolutional network of the paper's section 6.3 (worker/model.h):
 * stages of 5x5 "same" convolution, ReLU and 3x3 / 2 max pooling, then a
 * fully connected ReLU layer with dropout and a softmax output; dropout on
 * the input too. Each convolution is im2col (worker/conv.c) and one sgemm
 * per chunk of samples, so the column buffer stays a few MB whatever the
 * batch; the backward pass rebuilds the columns instead of keeping them. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/model_internal.h"

#define K PS_MODEL_MAX_CONV
/* Column buffer budget: 4M floats (16 MB), at least one sample. */
#define COL_FLOATS (UINT64_C(1) << 22)

typedef struct {
    const ps_model_cfg *cfg;
    uint32_t nconv;
    uint32_t c[K + 1];  /* c[0] input channels, c[k] stage k's output channels */
    uint32_t h[K + 1];  /* h[0] input side, h[k] side after stage k's pooling */
    uint32_t fc_in, fc; /* flattened pooled map, fully connected width */
    size_t chunk;       /* samples per im2col chunk */
    float *xin;         /* input after dropout */
    float *relu[K + 1]; /* stage k's convolution after ReLU: n x h[k-1]^2 x c[k] */
    uint32_t *arg[K + 1];
    float *pool[K + 1]; /* stage k's pooled map: n x h[k]^2 x c[k] */
    float *col;
    float *fcact, *logits, *mask, *dfc, *dlog;
    float *dbuf[2]; /* pooled-map and ReLU-map gradients */
} cnn;

/* The square image in_dim holds: 1 or 3 channels of side x side. */
static int image_shape(uint64_t in_dim, uint32_t *channels, uint32_t *side)
{
    static const uint32_t tries[] = {1, 3};
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        uint64_t plane = in_dim / tries[i];
        uint64_t s = (uint64_t)sqrt((double)plane);
        while (s * s > plane) {
            s--;
        }
        while ((s + 1) * (s + 1) <= plane) {
            s++;
        }
        if (plane * tries[i] == in_dim && s * s == plane) {
            *channels = tries[i];
            *side = (uint32_t)s;
            return 0;
        }
    }
    return PS_ECONFIG;
}

/* Channels and sides of every stage from c; logs and returns PS_ECONFIG
 * when the shape does not work. */
static int shape(const ps_model_cfg *c, uint32_t *ch, uint32_t *side)
{
    if (c->nconv < 1 || c->nconv > K) {
        PS_LOG(ERROR, "model config: cnn needs 1..%d convolution stages, got %u", K, c->nconv);
        return PS_ECONFIG;
    }
    if (c->nhidden != 1 || c->hidden[0] == 0 || c->hidden[0] > INT_MAX) {
        PS_LOG(ERROR, "model config: cnn needs one fully connected width >= 1 (got %u layers)",
               c->nhidden);
        return PS_ECONFIG;
    }
    if (image_shape(c->in_dim, &ch[0], &side[0])) {
        PS_LOG(ERROR,
               "model config: cnn input of %llu values is not a square image of 1 or 3 "
               "channels",
               (unsigned long long)c->in_dim);
        return PS_ECONFIG;
    }
    for (uint32_t k = 1; k <= c->nconv; k++) {
        if (c->conv[k - 1] == 0 || c->conv[k - 1] > 65536) {
            PS_LOG(ERROR, "model config: convolution %u has %u channels (1..65536)", k,
                   c->conv[k - 1]);
            return PS_ECONFIG;
        }
        if (side[k - 1] < PS_POOL_K) {
            PS_LOG(ERROR, "model config: convolution %u sees a %ux%u map, too small to pool 3x3", k,
                   side[k - 1], side[k - 1]);
            return PS_ECONFIG;
        }
        ch[k] = c->conv[k - 1];
        side[k] = ps_conv_pooled(side[k - 1]);
    }
    return 0;
}

static void dense_table(ps_table_desc *w, const char *name, uint64_t rows, uint32_t width,
                        int init_override, float glorot)
{
    memset(w, 0, 2 * sizeof *w);
    snprintf(w->name, sizeof w->name, "%s_w", name);
    snprintf(w[1].name, sizeof w[1].name, "%s_b", name);
    w->rows = rows;
    w->width = width;
    w->init = init_override >= 0 ? (ps_init_kind)init_override : PS_INIT_GLOROT;
    w->scale = w->init == PS_INIT_GLOROT ? glorot : w->init == PS_INIT_NORMAL ? 0.01f : 0.0f;
    w[1].rows = 1;
    w[1].width = width;
    w[1].init = PS_INIT_ZEROS;
}

static int cnn_tables(const ps_model_cfg *c, ps_table_desc *out, uint32_t *n)
{
    uint32_t ch[K + 1], side[K + 1];
    int rc = shape(c, ch, side);
    if (rc) {
        return rc;
    }
    uint32_t t = 0;
    for (uint32_t k = 1; k <= c->nconv; k++, t += 2) {
        char name[16];
        snprintf(name, sizeof name, "conv%u", k);
        /* Glorot for a convolution: fan-in and fan-out count the kernel. */
        double fans = (double)(ch[k - 1] + ch[k]) * PS_CONV_K * PS_CONV_K;
        dense_table(&out[t], name, (uint64_t)ch[k - 1] * PS_CONV_K * PS_CONV_K, ch[k],
                    c->init_override, (float)sqrt(6.0 / fans));
    }
    uint64_t fc_in = (uint64_t)side[c->nconv] * side[c->nconv] * ch[c->nconv];
    dense_table(&out[t], "fc", fc_in, c->hidden[0], c->init_override,
                ps_table_glorot_scale(fc_in, c->hidden[0]));
    dense_table(&out[t + 2], "out", c->hidden[0], c->nclasses, c->init_override,
                ps_table_glorot_scale(c->hidden[0], c->nclasses));
    *n = t + 4;
    return 0;
}

static void cnn_fini(void *impl)
{
    cnn *m = impl;
    for (uint32_t k = 0; k <= K; k++) {
        ps_aligned_free(m->relu[k]);
        ps_aligned_free(m->pool[k]);
        ps_free(m->arg[k]);
    }
    float *bufs[] = {m->xin, m->col,  m->fcact,   m->logits, m->mask,
                     m->dfc, m->dlog, m->dbuf[0], m->dbuf[1]};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        ps_aligned_free(bufs[i]);
    }
}

static int cnn_init(void *impl)
{
    cnn *m = impl;
    const ps_model_cfg *cfg = m->cfg;
    m->nconv = cfg->nconv;
    int rc = shape(cfg, m->c, m->h);
    PS_ASSERT(rc == 0); /* ps_model_tables checked it */
    size_t nb = cfg->max_batch, maxmap = 0, maxcol = 0;
    for (uint32_t k = 1; k <= m->nconv; k++) {
        size_t conv_map = (size_t)m->h[k - 1] * m->h[k - 1] * m->c[k];
        size_t cols = (size_t)m->h[k - 1] * m->h[k - 1] * m->c[k - 1] * PS_CONV_K * PS_CONV_K;
        maxmap = conv_map > maxmap ? conv_map : maxmap;
        maxcol = cols > maxcol ? cols : maxcol;
    }
    if ((uint64_t)nb * maxmap > UINT32_MAX) {
        PS_LOG(ERROR, "model config: a batch of %zu maps of %zu values overflows pooling indices",
               nb, maxmap);
        return PS_ECONFIG;
    }
    m->fc_in = m->h[m->nconv] * m->h[m->nconv] * m->c[m->nconv];
    m->fc = cfg->hidden[0];
    m->chunk = COL_FLOATS / maxcol ? (size_t)(COL_FLOATS / maxcol) : 1;
    m->chunk = m->chunk < nb ? m->chunk : nb;
    int ok = (m->col = ps_layers_alloc(m->chunk, maxcol)) != NULL;
    for (uint32_t k = 1; ok && k <= m->nconv; k++) {
        size_t pooled = (size_t)m->h[k] * m->h[k] * m->c[k];
        ok = (m->relu[k] = ps_layers_alloc(nb, (size_t)m->h[k - 1] * m->h[k - 1] * m->c[k])) &&
             (m->pool[k] = ps_layers_alloc(nb, pooled)) &&
             (m->arg[k] = ps_calloc(nb * pooled, sizeof(uint32_t)));
    }
    size_t dmax = maxmap > m->fc_in ? maxmap : m->fc_in;
    ok = ok && (m->fcact = ps_layers_alloc(nb, m->fc)) && (m->dfc = ps_layers_alloc(nb, m->fc)) &&
         (m->logits = ps_layers_alloc(nb, cfg->nclasses)) &&
         (m->dlog = ps_layers_alloc(nb, cfg->nclasses)) &&
         (m->dbuf[0] = ps_layers_alloc(nb, dmax)) && (m->dbuf[1] = ps_layers_alloc(nb, dmax));
    if (ok && cfg->dropout_hidden > 0.0f) {
        ok = (m->mask = ps_layers_alloc(nb, m->fc)) != NULL;
    }
    if (ok && cfg->dropout_input > 0.0f) {
        ok = (m->xin = ps_layers_alloc(nb, cfg->in_dim)) != NULL;
    }
    return ok ? 0 : PS_ENOMEM;
}

/* The input of stage k for samples [s0, ...) and how to read it: stage 1
 * reads the channel-major image, later stages the position-major pooled
 * map of the stage before. */
static const float *stage_input(const cnn *m, uint32_t k, const float *x, size_t s0, size_t *si,
                                size_t *sc, size_t *sp)
{
    size_t plane = (size_t)m->h[k - 1] * m->h[k - 1];
    if (k == 1) {
        *si = plane * m->c[0];
        *sc = plane;
        *sp = 1;
        return x + s0 * *si;
    }
    *si = plane * m->c[k - 1];
    *sc = 1;
    *sp = m->c[k - 1];
    return m->pool[k - 1] + s0 * *si;
}

/* Rows [r0, r0 + n) of b forward into m->logits; train turns dropout on.
 * Returns the input actually used (after dropout). */
static const float *forward(cnn *m, const ps_batch *b, size_t r0, size_t n,
                            const float *const *params, int train, uint64_t step)
{
    const ps_model_cfg *c = m->cfg;
    const float *x = ps_layers_drop_input(c, b->x + r0 * c->in_dim, n, train, step, m->xin);
    for (uint32_t k = 1; k <= m->nconv; k++) {
        uint32_t side = m->h[k - 1], cin = m->c[k - 1], cout = m->c[k];
        size_t plane = (size_t)side * side, rowlen = (size_t)cin * PS_CONV_K * PS_CONV_K;
        for (size_t s0 = 0; s0 < n; s0 += m->chunk) {
            size_t cn = n - s0 < m->chunk ? n - s0 : m->chunk, si, sc, sp;
            const float *in = stage_input(m, k, x, s0, &si, &sc, &sp);
            ps_conv_im2col(in, cn, cin, side, side, si, sc, sp, m->col);
            ps_layers_dense(cn * plane, rowlen, cout, m->col, params[2 * (k - 1)],
                            m->relu[k] + s0 * plane * cout);
        }
        const float *bias = params[2 * (k - 1) + 1];
        for (size_t r = 0; r < n * plane; r++) {
            ps_layers_bias_act(PS_ACT_RELU, m->relu[k] + r * cout, bias, NULL, cout);
        }
        ps_conv_pool(m->relu[k], n, cout, side, side, m->pool[k], m->arg[k]);
    }
    uint32_t t = 2 * m->nconv, C = c->nclasses;
    const float *mk = NULL;
    if (train && c->dropout_hidden > 0.0f) {
        ps_layers_hidden_mask(c, 1, step, m->mask, n * m->fc);
        mk = m->mask;
    }
    ps_layers_dense(n, m->fc_in, m->fc, m->pool[m->nconv], params[t], m->fcact);
    for (size_t i = 0; i < n; i++) {
        ps_layers_bias_act(PS_ACT_RELU, m->fcact + i * m->fc, params[t + 1],
                           mk ? mk + i * m->fc : NULL, m->fc);
    }
    ps_layers_dense(n, m->fc, C, m->fcact, params[t + 2], m->logits);
    for (size_t i = 0; i < n; i++) {
        ps_layers_add_bias(m->logits + i * C, params[t + 3], C);
    }
    return x;
}

static int cnn_train(void *impl, const ps_batch *b, const ps_keylist *keys,
                     const float *const *params, float *const *grads, uint64_t step, double *loss)
{
    (void)keys;
    cnn *m = impl;
    const ps_model_cfg *c = m->cfg;
    size_t n = b->n;
    uint32_t C = c->nclasses, t = 2 * m->nconv;
    const float *x = forward(m, b, 0, n, params, 1, step);
    *loss = ps_layers_softmax_xent(m->logits, n, C, b->y, m->dlog, 1.0f / (float)n) / (double)n;

    /* Output layer, then the fully connected layer through dropout and
     * ReLU; its input gradient is the last pooled map's. */
    ps_layers_colsum(m->dlog, n, C, grads[t + 3]);
    ps_layers_dense_grad(n, m->fc, C, m->fcact, m->dlog, params[t + 2], grads[t + 2], m->dfc, 0);
    float s = c->dropout_hidden > 0.0f ? 1.0f / (1.0f - c->dropout_hidden) : 1.0f;
    memset(grads[t + 1], 0, m->fc * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        ps_layers_act_grad(PS_ACT_RELU, m->dfc + i * m->fc, m->fcact + i * m->fc, NULL, s,
                           grads[t + 1], m->fc);
    }
    float *dpool = m->dbuf[0], *drelu = m->dbuf[1];
    ps_layers_dense_grad(n, m->fc_in, m->fc, m->pool[m->nconv], m->dfc, params[t], grads[t], dpool,
                         0);

    for (uint32_t k = m->nconv; k >= 1; k--) {
        uint32_t side = m->h[k - 1], cin = m->c[k - 1], cout = m->c[k];
        size_t plane = (size_t)side * side, rowlen = (size_t)cin * PS_CONV_K * PS_CONV_K;
        size_t pooled = (size_t)m->h[k] * m->h[k] * cout;
        ps_conv_pool_grad(dpool, m->arg[k], n * pooled, n * plane * cout, drelu);
        float *gb = grads[2 * (k - 1) + 1];
        memset(gb, 0, cout * sizeof *gb);
        for (size_t r = 0; r < n * plane; r++) {
            ps_layers_act_grad(PS_ACT_RELU, drelu + r * cout, m->relu[k] + r * cout, NULL, 1.0f, gb,
                               cout);
        }
        /* dW = cols^T dZ summed over chunks; stage k > 1 also sends dZ W^T
         * back through col2im into the pooled map before it (dpool is free:
         * the pooling gradient above consumed it). */
        for (size_t s0 = 0; s0 < n; s0 += m->chunk) {
            size_t cn = n - s0 < m->chunk ? n - s0 : m->chunk, si, sc, sp;
            const float *in = stage_input(m, k, x, s0, &si, &sc, &sp);
            ps_conv_im2col(in, cn, cin, side, side, si, sc, sp, m->col);
            ps_layers_dense_grad(cn * plane, rowlen, cout, m->col, drelu + s0 * plane * cout,
                                 params[2 * (k - 1)], grads[2 * (k - 1)], k > 1 ? m->col : NULL,
                                 s0 > 0);
            if (k > 1) {
                ps_conv_col2im(m->col, cn, cin, side, side, dpool + s0 * plane * cin);
            }
        }
    }
    return 0;
}

static void cnn_score(void *impl, const ps_batch *b, size_t r0, size_t n, const ps_keylist *keys,
                      const float *const *params, double *loss_sum, size_t *ncorrect,
                      int32_t *classes, float *proba)
{
    (void)keys;
    cnn *m = impl;
    uint32_t C = m->cfg->nclasses;
    forward(m, b, r0, n, params, 0, 0);
    ps_layers_score_rows(m->logits, n, C, b->y ? b->y + r0 : NULL, loss_sum, ncorrect,
                         classes ? classes + r0 : NULL, proba ? proba + r0 * C : NULL);
}

const ps_model_ops ps_cnn_ops = {sizeof(cnn), cnn_tables, cnn_init, cnn_fini, cnn_train, cnn_score};
