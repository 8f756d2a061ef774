/* Shared by the files of the model module and by nothing else (tests
 * aside): worker/model.c holds the generic part (configuration, tables,
 * batch keys, L2, dispatch) and calls one kind's implementation through a
 * small ops table, as common/comm.c does its backends; worker/layers.c has
 * the dense-layer kernels, activations and softmax every kind uses;
 * worker/conv.c im2col, col2im and max pooling. */
#ifndef PS_MODEL_INTERNAL_H
#define PS_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "worker/model.h"

/* Hidden layer l's dropout units start at l << 56, the input's at 0, so the
 * layers draw from disjoint parts of the (seed, worker, step, unit) space
 * (as long as batch * in_dim < 2^56). */
#define PS_LAYER_UNIT_SHIFT 56

/* The vae's noise is unit i * latent + j of the Gaussian stream with key
 * ps_rng_hash(seed, worker, step, PS_VAE_GAUSS_STREAM) ("gauss"). */
#define PS_VAE_GAUSS_STREAM 0x6761757373ULL

/* One kind of model. The implementation state is private to its file: a
 * struct of `size` bytes whose first member is `const ps_model_cfg *cfg`;
 * worker/model.c allocates it zeroed, sets cfg (checked: shape and run
 * fields) and frees it. Batches and keys are checked before train and
 * score. */
typedef struct {
    size_t size;
    /* Checks the kind's own shape fields (PS_ECONFIG, logged naming the
     * field) and writes its tables into out[0..*n) (at most
     * PS_MODEL_MAX_TABLES). Pure. */
    int (*tables)(const ps_model_cfg *c, ps_table_desc *out, uint32_t *n);
    /* Allocates the kind's buffers for cfg->max_batch samples: 0,
     * PS_ENOMEM or PS_ECONFIG (logged). fini runs after init, also after
     * a failed one, and frees whatever init allocated. */
    int (*init)(void *impl);
    void (*fini)(void *impl);
    /* The data loss (mean over the batch, no L2) and its gradient. */
    int (*train)(void *impl, const ps_batch *b, const ps_keylist *keys, const float *const *params,
                 float *const *grads, uint64_t step, double *loss);
    /* Rows [r0, r0 + n) of b (n <= max_batch) without dropout: adds the
     * summed loss to *loss_sum and the correct count to *ncorrect (both
     * NULL or neither; labels needed), writes classes[r0 .. r0 + n) when
     * classes is not NULL and the class probabilities (softmax) of those
     * rows into proba[r0 * C ..] when proba is not NULL. */
    void (*score)(void *impl, const ps_batch *b, size_t r0, size_t n, const ps_keylist *keys,
                  const float *const *params, double *loss_sum, size_t *ncorrect, int32_t *classes,
                  float *proba);
} ps_model_ops;

extern const ps_model_ops ps_mlp_ops; /* logreg and mlp: worker/mlp.c */
extern const ps_model_ops ps_cnn_ops; /* worker/cnn.c */
extern const ps_model_ops ps_vae_ops; /* worker/vae.c */

/* ---- worker/layers.c: dense layers, activations, softmax ---- */

/* rows x cols floats aligned for OpenBLAS (ps_aligned_free), or NULL on
 * overflow or out of memory. */
float *ps_layers_alloc(size_t rows, size_t cols);
/* y[i] += a * x[i] */
void ps_layers_axpy(float *y, float a, const float *x, size_t n);
/* y[i] *= x[i] */
void ps_layers_mul(float *y, const float *x, size_t n);
/* The n dense input rows at x after inverted dropout when training with
 * c->dropout_input > 0 (unit i * in_dim + f of (seed, worker, step), into
 * xin, which is returned); otherwise x itself. */
const float *ps_layers_drop_input(const ps_model_cfg *c, const float *x, size_t n, int train,
                                  uint64_t step, float *xin);
/* The dropout mask of n units of hidden layer l (1-based), units
 * (l << PS_LAYER_UNIT_SHIFT) + k, with c->dropout_hidden. */
void ps_layers_hidden_mask(const ps_model_cfg *c, uint32_t l, uint64_t step, float *mask, size_t n);
/* z[i][:] = x[i][:] W for n rows: x is n x din, W din x dout, z n x dout
 * (row-major, sgemm). */
void ps_layers_dense(size_t n, size_t din, size_t dout, const float *x, const float *w, float *z);
/* Backward of ps_layers_dense: gw = x^T dz (overwritten, or added to when
 * accumulate), and dx = dz W^T when dx is not NULL. */
void ps_layers_dense_grad(size_t n, size_t din, size_t dout, const float *x, const float *dz,
                          const float *w, float *gw, float *dx, int accumulate);
/* gb[j] = sum over the n rows of dz[i][j] (overwritten). */
void ps_layers_colsum(const float *dz, size_t n, size_t d, float *gb);
/* z = act(z + b) * mk for one row of n units (mk NULL: no dropout). */
void ps_layers_bias_act(ps_act_kind act, float *z, const float *b, const float *mk, size_t n);
/* z += b for one row of n units. */
void ps_layers_add_bias(float *z, const float *b, size_t n);
/* Back through dropout and the activation for one row: a is the layer's
 * output after dropout, mk its mask (NULL: no dropout) whose kept value is
 * s. da (the gradient w.r.t. a) becomes the gradient w.r.t. the
 * pre-activation; gb += it. ReLU needs no mask (a > 0 exactly where the
 * unit was kept and active); the other activations read it. */
void ps_layers_act_grad(ps_act_kind act, float *da, const float *a, const float *mk, float s,
                        float *gb, size_t n);
/* Log-sum-exp of one row of d logits. */
double ps_layers_row_lse(const float *z, uint32_t d);
/* Index of the largest of d values, the lowest on ties. */
uint32_t ps_layers_row_argmax(const float *z, uint32_t d);
/* Softmax cross-entropy of n rows of C logits against labels y: returns
 * the summed loss; when dz is not NULL writes (p - onehot) * scale. */
double ps_layers_softmax_xent(const float *z, size_t n, uint32_t C, const int32_t *y, float *dz,
                              float scale);
/* Scores n rows of C logits for ops->score: summed cross-entropy and
 * correct count (when loss_sum), argmax classes (when classes), the
 * softmax of each row (when proba, n x C). */
void ps_layers_score_rows(const float *z, size_t n, uint32_t C, const int32_t *y, double *loss_sum,
                          size_t *ncorrect, int32_t *classes, float *proba);

/* ---- worker/conv.c: im2col convolution and max pooling ---- */

#define PS_CONV_K 5   /* kernel side */
#define PS_CONV_PAD 2 /* "same" padding for the 5x5 kernel */
#define PS_POOL_K 3   /* pooling window */
#define PS_POOL_S 2   /* pooling stride */

/* Side of the pooled map: windows that fit, (h - 3) / 2 + 1 (h >= 3). */
uint32_t ps_conv_pooled(uint32_t h);
/* im2col for n images of c channels, h x w, one row per output position:
 * col[(i*h + y)*w + x][(ch*5 + dy)*5 + dx] = in(i, ch, y + dy - 2,
 * x + dx - 2), 0 outside the image. Element (i, ch, y, x) of the input is
 * in[i*si + ch*sc + (y*w + x)*sp]: channel-major images have sc = h*w,
 * sp = 1; position-major maps (our activations) sc = 1, sp = c. */
void ps_conv_im2col(const float *in, size_t n, uint32_t c, uint32_t h, uint32_t w, size_t si,
                    size_t sc, size_t sp, float *col);
/* The adjoint of im2col into a position-major map (sc = 1, sp = c, si =
 * h*w*c): dx (n x h x w x c, overwritten) = the sum of each entry's
 * contributions from dcol. */
void ps_conv_col2im(const float *dcol, size_t n, uint32_t c, uint32_t h, uint32_t w, float *dx);
/* 3x3 / 2 max pooling of n position-major maps h x w x c into out (n x ph x
 * pw x c, ph = ps_conv_pooled(h)); arg[k] is the index into in of output
 * k's maximum (the first on ties). */
void ps_conv_pool(const float *in, size_t n, uint32_t c, uint32_t h, uint32_t w, float *out,
                  uint32_t *arg);
/* Backward of ps_conv_pool: din (n x h x w x c) is zeroed, then each output
 * gradient is added at its argmax. */
void ps_conv_pool_grad(const float *dout, const uint32_t *arg, size_t nout, size_t nin, float *din);

#endif
