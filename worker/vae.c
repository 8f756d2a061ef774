/* The variational auto-encoder of the paper's section 6.4 (Kingma &
 * Welling 2014's architecture; worker/model.h): a Gaussian encoder, the
 * reparameterised sample z = mu + exp(log sigma^2 / 2) * eps with eps from
 * the counter-based Gaussian stream (common/rng.h) keyed by (seed, worker,
 * step), a Bernoulli decoder on pixels binarised at 0.5. The loss is the
 * negative ELBO per image in nats: sum_j softplus(l_j) - x_j l_j (the
 * decoder's cross-entropy) plus KL(q(z|x) || N(0, I)) = 1/2 sum (mu^2 +
 * sigma^2 - 1 - log sigma^2), estimated with one sample of z. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/rng.h"
#include "worker/model_internal.h"

/* Evaluation draws from the key of this (worker, step), which training
 * never uses, so every evaluation sees the same noise. */
#define EVAL_WORKER UINT32_MAX
#define EVAL_STEP UINT64_MAX
#define BINARY_THRESHOLD 0.5f

enum { ENC_W1, ENC_B1, ENC_W2, ENC_B2, DEC_W1, DEC_B1, DEC_W2, DEC_B2, NTABLES };

typedef struct {
    const ps_model_cfg *cfg;
    size_t D, H, L; /* pixels, hidden width, latent dimensions */
    float *xb, *h1, *enc, *eps, *z, *h2, *logits;
    float *dlog, *dh2, *dz, *denc, *dh1;
} vae;

static int vae_tables(const ps_model_cfg *c, ps_table_desc *out, uint32_t *n)
{
    if (c->nhidden != 1 || c->hidden[0] == 0 || c->hidden[0] > INT_MAX) {
        PS_LOG(ERROR, "model config: vae needs one hidden width >= 1 (got %u layers)", c->nhidden);
        return PS_ECONFIG;
    }
    if (c->latent == 0 || c->latent > INT_MAX / 2) {
        PS_LOG(ERROR, "model config: vae latent dimensions %u must be in [1, %d]", c->latent,
               INT_MAX / 2);
        return PS_ECONFIG;
    }
    static const char *const names[NTABLES] = {"enc_w1", "enc_b1", "enc_w2", "enc_b2",
                                               "dec_w1", "dec_b1", "dec_w2", "dec_b2"};
    uint64_t H = c->hidden[0], L = c->latent;
    const uint64_t rows[NTABLES / 2] = {c->in_dim, H, L, H};
    const uint64_t widths[NTABLES / 2] = {H, 2 * L, H, c->in_dim};
    ps_init_kind winit = c->init_override >= 0 ? (ps_init_kind)c->init_override : PS_INIT_GLOROT;
    memset(out, 0, NTABLES * sizeof *out);
    for (uint32_t t = 0; t < NTABLES; t++) {
        snprintf(out[t].name, sizeof out[t].name, "%s", names[t]);
        out[t].rows = t % 2 ? 1 : rows[t / 2];
        out[t].width = (uint32_t)widths[t / 2];
        out[t].init = t % 2 ? PS_INIT_ZEROS : winit;
        out[t].scale = t % 2 ? 0.0f
                       : winit == PS_INIT_GLOROT
                           ? ps_table_glorot_scale(rows[t / 2], (uint32_t)widths[t / 2])
                       : winit == PS_INIT_NORMAL ? 0.01f
                                                 : 0.0f;
    }
    *n = NTABLES;
    return 0;
}

static void vae_fini(void *impl)
{
    vae *m = impl;
    float *bufs[] = {m->xb,     m->h1,   m->enc, m->eps, m->z,    m->h2,
                     m->logits, m->dlog, m->dh2, m->dz,  m->denc, m->dh1};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        ps_aligned_free(bufs[i]);
    }
}

static int vae_init(void *impl)
{
    vae *m = impl;
    const ps_model_cfg *cfg = m->cfg;
    m->D = cfg->in_dim;
    m->H = cfg->hidden[0];
    m->L = cfg->latent;
    size_t nb = cfg->max_batch;
    if (!(m->xb = ps_layers_alloc(nb, m->D)) || !(m->h1 = ps_layers_alloc(nb, m->H)) ||
        !(m->enc = ps_layers_alloc(nb, 2 * m->L)) || !(m->eps = ps_layers_alloc(nb, m->L)) ||
        !(m->z = ps_layers_alloc(nb, m->L)) || !(m->h2 = ps_layers_alloc(nb, m->H)) ||
        !(m->logits = ps_layers_alloc(nb, m->D)) || !(m->dlog = ps_layers_alloc(nb, m->D)) ||
        !(m->dh2 = ps_layers_alloc(nb, m->H)) || !(m->dz = ps_layers_alloc(nb, m->L)) ||
        !(m->denc = ps_layers_alloc(nb, 2 * m->L)) || !(m->dh1 = ps_layers_alloc(nb, m->H))) {
        return PS_ENOMEM;
    }
    return 0;
}

/* log(1 + e^l) in double, without overflow. */
static double softplus_d(double l)
{
    return (l > 0 ? l : 0.0) + log1p(exp(-fabs(l)));
}

/* Encoder, sample, decoder for rows [r0, r0 + n) into the buffers, with
 * noise units r0 * L, ... of `key`; returns the summed negative ELBO. */
static double run(vae *m, const ps_batch *b, size_t r0, size_t n, const float *const *params,
                  uint64_t key)
{
    const ps_model_cfg *c = m->cfg;
    size_t D = m->D, H = m->H, L = m->L;
    const float *x = b->x + r0 * D;
    for (size_t k = 0; k < n * D; k++) {
        m->xb[k] = x[k] > BINARY_THRESHOLD ? 1.0f : 0.0f;
    }
    ps_layers_dense(n, D, H, m->xb, params[ENC_W1], m->h1);
    for (size_t i = 0; i < n; i++) {
        ps_layers_bias_act(c->activation, m->h1 + i * H, params[ENC_B1], NULL, H);
    }
    ps_layers_dense(n, H, 2 * L, m->h1, params[ENC_W2], m->enc);
    ps_rng_gauss_fill(key, (uint64_t)r0 * L, m->eps, n * L);
    double kl = 0.0;
    for (size_t i = 0; i < n; i++) {
        float *e = m->enc + i * 2 * L;
        ps_layers_add_bias(e, params[ENC_B2], 2 * L);
        for (size_t j = 0; j < L; j++) {
            float mu = e[j], lv = e[L + j];
            m->z[i * L + j] = mu + expf(0.5f * lv) * m->eps[i * L + j];
            kl += 0.5 * ((double)mu * mu + exp((double)lv) - 1.0 - (double)lv);
        }
    }
    ps_layers_dense(n, L, H, m->z, params[DEC_W1], m->h2);
    for (size_t i = 0; i < n; i++) {
        ps_layers_bias_act(c->activation, m->h2 + i * H, params[DEC_B1], NULL, H);
    }
    ps_layers_dense(n, H, D, m->h2, params[DEC_W2], m->logits);
    double rec = 0.0;
    for (size_t i = 0; i < n; i++) {
        float *l = m->logits + i * D;
        ps_layers_add_bias(l, params[DEC_B2], D);
        const float *xi = m->xb + i * D;
        for (size_t j = 0; j < D; j++) {
            rec += softplus_d(l[j]) - (double)xi[j] * l[j];
        }
    }
    return rec + kl;
}

static int vae_train(void *impl, const ps_batch *b, const ps_keylist *keys,
                     const float *const *params, float *const *grads, uint64_t step, double *loss)
{
    (void)keys;
    vae *m = impl;
    const ps_model_cfg *c = m->cfg;
    size_t n = b->n, D = m->D, H = m->H, L = m->L;
    float scale = 1.0f / (float)n;
    uint64_t key = ps_rng_hash(c->seed, c->worker, step, PS_VAE_GAUSS_STREAM);
    *loss = run(m, b, 0, n, params, key) / (double)n;

    /* Decoder: d(loss)/d(logit) = (sigmoid(l) - x) / n. */
    for (size_t k = 0; k < n * D; k++) {
        m->dlog[k] = (1.0f / (1.0f + expf(-m->logits[k])) - m->xb[k]) * scale;
    }
    ps_layers_colsum(m->dlog, n, D, grads[DEC_B2]);
    ps_layers_dense_grad(n, H, D, m->h2, m->dlog, params[DEC_W2], grads[DEC_W2], m->dh2, 0);
    memset(grads[DEC_B1], 0, H * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        ps_layers_act_grad(c->activation, m->dh2 + i * H, m->h2 + i * H, NULL, 1.0f, grads[DEC_B1],
                           H);
    }
    ps_layers_dense_grad(n, L, H, m->z, m->dh2, params[DEC_W1], grads[DEC_W1], m->dz, 0);

    /* Through z = mu + e^(lv/2) eps and the KL term. */
    for (size_t i = 0; i < n; i++) {
        const float *e = m->enc + i * 2 * L;
        float *de = m->denc + i * 2 * L;
        for (size_t j = 0; j < L; j++) {
            float mu = e[j], sd = expf(0.5f * e[L + j]), dz = m->dz[i * L + j];
            de[j] = dz + mu * scale;
            de[L + j] = 0.5f * dz * m->eps[i * L + j] * sd + 0.5f * (sd * sd - 1.0f) * scale;
        }
    }
    ps_layers_colsum(m->denc, n, 2 * L, grads[ENC_B2]);
    ps_layers_dense_grad(n, H, 2 * L, m->h1, m->denc, params[ENC_W2], grads[ENC_W2], m->dh1, 0);
    memset(grads[ENC_B1], 0, H * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        ps_layers_act_grad(c->activation, m->dh1 + i * H, m->h1 + i * H, NULL, 1.0f, grads[ENC_B1],
                           H);
    }
    ps_layers_dense_grad(n, D, H, m->xb, m->dh1, params[ENC_W1], grads[ENC_W1], NULL, 0);
    return 0;
}

static void vae_score(void *impl, const ps_batch *b, size_t r0, size_t n, const ps_keylist *keys,
                      const float *const *params, double *loss_sum, size_t *ncorrect,
                      int32_t *classes, float *proba)
{
    (void)keys;
    (void)ncorrect;
    (void)classes; /* ps_model_predict refuses a vae before it gets here */
    (void)proba;
    vae *m = impl;
    /* A fixed key: sample i of b gets the same noise at every evaluation. */
    uint64_t key = ps_rng_hash(m->cfg->seed, EVAL_WORKER, EVAL_STEP, PS_VAE_GAUSS_STREAM);
    double l = run(m, b, r0, n, params, key);
    if (loss_sum) {
        *loss_sum += l;
    }
}

const ps_model_ops ps_vae_ops = {sizeof(vae), vae_tables, vae_init, vae_fini, vae_train, vae_score};
