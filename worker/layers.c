/* Dense layers, activations and softmax for every model kind
 * (worker/model_internal.h). Matrix products go to OpenBLAS sgemm; the
 * element-wise passes around them are the step's main cost outside BLAS,
 * so they are written to vectorise (see CHUNK). */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "common/mem.h"
#include "worker/dropout.h"
#include "worker/model_internal.h"

#define ALIGN 64
/* Element-wise kernels work in fixed-size chunks: -O2's cheap vectoriser
 * only vectorises loops whose trip count it knows. */
#define CHUNK 16
#define FOR_CHUNKED(j, n, stmt) PS_FOR_BLOCKED(j, n, CHUNK, stmt)

float *ps_layers_alloc(size_t rows, size_t cols)
{
    if (cols && rows > SIZE_MAX / sizeof(float) / cols) {
        return NULL;
    }
    return ps_aligned_alloc(ALIGN, rows * cols * sizeof(float));
}

void ps_layers_axpy(float *restrict y, float a, const float *restrict x, size_t n)
{
    FOR_CHUNKED(j, n, y[j] += a * x[j]);
}

void ps_layers_mul(float *restrict y, const float *restrict x, size_t n)
{
    FOR_CHUNKED(j, n, y[j] *= x[j]);
}

const float *ps_layers_drop_input(const ps_model_cfg *c, const float *x, size_t n, int train,
                                  uint64_t step, float *xin)
{
    if (!train || c->dropout_input <= 0.0f) {
        return x;
    }
    ps_dropout d;
    ps_dropout_init(&d, c->seed, c->worker, step, c->dropout_input);
    ps_dropout_fill(&d, 0, xin, n * c->in_dim);
    ps_layers_mul(xin, x, n * c->in_dim);
    return xin;
}

void ps_layers_hidden_mask(const ps_model_cfg *c, uint32_t l, uint64_t step, float *mask, size_t n)
{
    ps_dropout d;
    ps_dropout_init(&d, c->seed, c->worker, step, c->dropout_hidden);
    ps_dropout_fill(&d, (uint64_t)l << PS_LAYER_UNIT_SHIFT, mask, n);
}

void ps_layers_dense(size_t n, size_t din, size_t dout, const float *x, const float *w, float *z)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)dout, (int)din, 1.0f, x,
                (int)din, w, (int)dout, 0.0f, z, (int)dout);
}

void ps_layers_dense_grad(size_t n, size_t din, size_t dout, const float *x, const float *dz,
                          const float *w, float *gw, float *dx, int accumulate)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)din, (int)dout, (int)n, 1.0f, x,
                (int)din, dz, (int)dout, accumulate ? 1.0f : 0.0f, gw, (int)dout);
    if (dx) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)din, (int)dout, 1.0f, dz,
                    (int)dout, w, (int)dout, 0.0f, dx, (int)din);
    }
}

void ps_layers_colsum(const float *dz, size_t n, size_t d, float *gb)
{
    memset(gb, 0, d * sizeof *gb);
    for (size_t i = 0; i < n; i++) {
        ps_layers_axpy(gb, 1.0f, dz + i * d, d);
    }
}

void ps_layers_add_bias(float *restrict z, const float *restrict b, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        z[j] += b[j];
    }
}

static inline float relu(float v)
{
    return v > 0.0f ? v : 0.0f;
}

static inline float sigmoid(float v)
{
    return 1.0f / (1.0f + expf(-v));
}

/* log(1 + e^v) without overflow: max(v, 0) + log1p(e^-|v|). */
static inline float softplus(float v)
{
    return relu(v) + log1pf(expf(-fabsf(v)));
}

/* z[j] = max(z[j] + b[j], 0) * mk[j]; mk == NULL: no dropout. The hot path
 * of the paper's MLP, kept apart from the general activations. */
static void bias_relu_mask(float *restrict z, const float *restrict b, const float *restrict mk,
                           size_t n)
{
    if (mk) {
        FOR_CHUNKED(j, n, z[j] = relu(z[j] + b[j]) * mk[j]);
    } else {
        FOR_CHUNKED(j, n, z[j] = relu(z[j] + b[j]));
    }
}

void ps_layers_bias_act(ps_act_kind act, float *restrict z, const float *restrict b,
                        const float *restrict mk, size_t n)
{
    switch (act) {
    case PS_ACT_SIGMOID:
        FOR_CHUNKED(j, n, z[j] = sigmoid(z[j] + b[j]));
        break;
    case PS_ACT_SOFTPLUS:
        FOR_CHUNKED(j, n, z[j] = softplus(z[j] + b[j]));
        break;
    case PS_ACT_TANH:
        FOR_CHUNKED(j, n, z[j] = tanhf(z[j] + b[j]));
        break;
    default:
        bias_relu_mask(z, b, mk, n);
        return;
    }
    if (mk) {
        ps_layers_mul(z, mk, n);
    }
}

/* The activation's derivative from its output a (before dropout):
 * sigmoid a(1 - a); softplus sigmoid(v) = 1 - e^-a; tanh 1 - a^2. */
static inline float act_slope(ps_act_kind act, float a)
{
    switch (act) {
    case PS_ACT_SIGMOID:
        return a * (1.0f - a);
    case PS_ACT_SOFTPLUS:
        return -expm1f(-a);
    case PS_ACT_TANH:
        return 1.0f - a * a;
    default:
        return a > 0.0f ? 1.0f : 0.0f;
    }
}

void ps_layers_act_grad(ps_act_kind act, float *restrict da, const float *restrict a,
                        const float *restrict mk, float s, float *restrict gb, size_t n)
{
    if (act == PS_ACT_RELU) {
        /* a > 0 exactly where the unit was kept and active, and there its
         * mask value is s. */
        FOR_CHUNKED(j, n, {
            float g = da[j] * (a[j] > 0.0f ? s : 0.0f);
            da[j] = g;
            gb[j] += g;
        });
        return;
    }
    if (mk) {
        /* A kept unit's output is s * f(v): undo the scale to read f. */
        const float inv = 1.0f / s;
        for (size_t j = 0; j < n; j++) {
            float g = da[j] * mk[j] * act_slope(act, a[j] * inv);
            da[j] = g;
            gb[j] += g;
        }
        return;
    }
    for (size_t j = 0; j < n; j++) {
        float g = da[j] * act_slope(act, a[j]);
        da[j] = g;
        gb[j] += g;
    }
}

double ps_layers_row_lse(const float *z, uint32_t d)
{
    float mx = z[0];
    for (uint32_t j = 1; j < d; j++) {
        mx = z[j] > mx ? z[j] : mx;
    }
    double s = 0.0;
    for (uint32_t j = 0; j < d; j++) {
        s += exp((double)(z[j] - mx));
    }
    return (double)mx + log(s);
}

uint32_t ps_layers_row_argmax(const float *z, uint32_t d)
{
    uint32_t best = 0;
    for (uint32_t j = 1; j < d; j++) {
        best = z[j] > z[best] ? j : best;
    }
    return best;
}

double ps_layers_softmax_xent(const float *z, size_t n, uint32_t C, const int32_t *y, float *dz,
                              float scale)
{
    double lsum = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float *zi = z + i * C;
        double lse = ps_layers_row_lse(zi, C);
        lsum += lse - (double)zi[y[i]];
        if (dz) {
            for (uint32_t j = 0; j < C; j++) {
                dz[i * C + j] = (float)exp((double)zi[j] - lse) * scale;
            }
            dz[i * C + (uint32_t)y[i]] -= scale;
        }
    }
    return lsum;
}

void ps_layers_score_rows(const float *z, size_t n, uint32_t C, const int32_t *y, double *loss_sum,
                          size_t *ncorrect, int32_t *classes, float *proba)
{
    for (size_t i = 0; i < n; i++) {
        const float *zi = z + i * C;
        uint32_t best = ps_layers_row_argmax(zi, C);
        if (classes) {
            classes[i] = (int32_t)best;
        }
        if (proba) {
            double lse = ps_layers_row_lse(zi, C);
            for (uint32_t j = 0; j < C; j++) {
                proba[i * C + j] = (float)exp((double)zi[j] - lse);
            }
        }
        if (loss_sum) {
            *loss_sum += ps_layers_row_lse(zi, C) - (double)zi[y[i]];
            *ncorrect += best == (uint32_t)y[i];
        }
    }
}
