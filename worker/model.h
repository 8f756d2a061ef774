/* Models: what a worker computes on a minibatch. A model is a list of
 * tables (common/table.h); for each batch it names the rows it needs
 * (ps_model_batch_keys), the client pulls exactly those rows into compact
 * buffers (row i of buffer t = key keys[t].keys[i]), the model computes
 * loss and gradient for exactly those rows in the same layout
 * (ps_model_forward_backward) and the client pushes them.
 *
 * Four kinds (one file each behind this header: worker/mlp.c, cnn.c,
 * vae.c; dense layers and activations in worker/layers.c, im2col and
 * pooling in worker/conv.c):
 * - logreg: multinomial logistic regression, tables "w" in_dim x C, "b"
 *   1 x C, softmax cross-entropy (binary problems are C = 2);
 * - mlp: hidden layers ("w1","b1",...,"wL","bL") with ReLU, sigmoid,
 *   softplus or tanh units, softmax cross-entropy;
 * - cnn (paper section 6.3): 5x5 convolutions ("same" padding, stride 1),
 *   each followed by ReLU and 3x3 max pooling with stride 2, then one fully
 *   connected ReLU layer and softmax. Convolution is im2col + sgemm; layer k
 *   has tables "convK_w" (in_channels*5*5 rows, row (c*5 + dy)*5 + dx, width
 *   out_channels) and "convK_b", then "fc_w", "fc_b", "out_w", "out_b". The
 *   input is a square C x H x W image (channel-major), H = W and C = 1 or 3
 *   found from in_dim (784: 28x28x1, 3072: 32x32x3);
 * - vae (section 6.4, Kingma & Welling 2014): encoder in_dim-H-(mu, log
 *   sigma^2 of a latent Gaussian) with tables "enc_w1","enc_b1","enc_w2",
 *   "enc_b2" (enc_w2's first `latent` columns are mu, the rest log sigma^2),
 *   a reparameterised sample z = mu + sigma * eps, decoder latent-H-in_dim
 *   ("dec_w1","dec_b1","dec_w2","dec_b2") with a Bernoulli likelihood on the
 *   pixels binarised at a fixed threshold (x > 0.5), H units of the chosen
 *   activation (softplus by default). The loss is the negative ELBO in nats
 *   per image (reconstruction cross-entropy plus the analytic KL); labels
 *   are not used and there is no accuracy (ps_model_has_accuracy).
 * Dense inputs go through OpenBLAS sgemm; sparse (CSR) inputs (logreg and
 * mlp) use a kernel for the first layer that touches only the rows of the
 * batch's features. Inverted dropout on the input and on hidden activations
 * (worker/dropout.h); the dropout unit of input feature f of batch sample i
 * is i * in_dim + f (the same for dense and sparse layouts), of hidden unit
 * j of layer l (1-based; the cnn's fully connected layer is l = 1)
 * (l << 56) + i * width_l + j. The VAE's noise eps is unit i * latent + j
 * of the Gaussian stream keyed by (seed, worker, step), so a step replays
 * exactly; evaluation uses a fixed key, the same every time.
 *
 * A ps_model owns every buffer for max_batch samples, allocated at create;
 * one model per thread (not thread-safe). OpenBLAS's own thread count is the
 * caller's business. */
#ifndef PS_MODEL_H
#define PS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/file.h"
#include "common/table.h"
#include "data/dataset.h"

#define PS_MODEL_MAX_HIDDEN 8
/* Convolution stages of a cnn: conv, bias, then two dense layers, all
 * within PS_MODEL_MAX_TABLES. */
#define PS_MODEL_MAX_CONV 6
/* Tables of the largest model: weights and bias per layer. */
#define PS_MODEL_MAX_TABLES (2 * (PS_MODEL_MAX_HIDDEN + 1))

typedef enum { PS_MODEL_LOGREG = 0, PS_MODEL_MLP, PS_MODEL_CNN, PS_MODEL_VAE } ps_model_kind;
#define PS_MODEL_NKINDS 4

/* Hidden units: the mlp's layers and the vae's encoder and decoder. */
typedef enum { PS_ACT_RELU = 0, PS_ACT_SIGMOID, PS_ACT_SOFTPLUS, PS_ACT_TANH } ps_act_kind;
#define PS_ACT_COUNT 4

typedef struct {
    ps_model_kind kind;
    uint64_t in_dim;   /* features (sparse: the key space, may be 2^30 and more) */
    uint32_t nclasses; /* >= 2 */
    int sparse_input;  /* batches must match: 1 = CSR, 0 = dense */
    uint32_t nhidden;  /* mlp: hidden layers, 1..PS_MODEL_MAX_HIDDEN; cnn and vae: 1 (the
                          fully connected width; the encoder's and decoder's width) */
    uint32_t hidden[PS_MODEL_MAX_HIDDEN];
    ps_act_kind activation;           /* mlp and vae hidden units; cnn is ReLU, logreg has none */
    uint32_t nconv;                   /* cnn: convolution stages, 1..PS_MODEL_MAX_CONV */
    uint32_t conv[PS_MODEL_MAX_CONV]; /* cnn: output channels of each stage */
    uint32_t latent;                  /* vae: latent dimensions, >= 1 */
    float dropout_input;              /* drop probability of an input feature, [0, 1) */
    float dropout_hidden;             /* mlp, cnn (the fully connected layer): drop probability of a
                                         hidden unit, [0, 1); vae: must be 0 */
    float l2;           /* 0.5 * l2 * ||w||^2 on weight rows a batch touches (not biases) */
    int l2_on_server;   /* 1: the L2 term is in the loss only, its gradient l2 * w is
                           the servers' (server/store.h: once per row per step) */
    int init_override;  /* -1: default (logreg zeros, others glorot); else a ps_init_kind
                           for the weight tables (normal: stddev 0.01) */
    uint64_t seed;      /* dropout masks (and, on servers, table init) */
    uint32_t worker;    /* dropout masks differ across workers */
    uint32_t max_batch; /* largest batch passed to forward_backward, >= 1 */
} ps_model_cfg;

typedef struct ps_model ps_model;

/* Keys of one table for one batch: sorted unique global row ids. For the
 * first weight table of a sparse-input model, pos[k] is also filled: the
 * index in keys of the k-th non-zero of the batch (nnz entries), which the
 * CSR kernel uses to find its rows. Zero-initialise, reuse across batches,
 * free with ps_model_keys_fini. */
typedef struct {
    uint64_t *keys;
    size_t n, cap;
    uint32_t *pos;
    size_t nnz, pos_cap;
} ps_keylist;

/* Parses "logreg", "mlp", "cnn" or "vae"; returns 0, or PS_EINVAL with
 * *out untouched. Logs nothing: the caller knows which flag or file the name
 * came from. */
int ps_model_parse_kind(const char *text, ps_model_kind *out);
/* The name ps_model_parse_kind reads, or "?" for a kind out of range. */
const char *ps_model_kind_name(ps_model_kind kind);
/* Parses "relu", "sigmoid", "softplus" or "tanh" (as ps_model_parse_kind). */
int ps_model_parse_activation(const char *text, ps_act_kind *out);
/* The name ps_model_parse_activation reads, or "?". */
const char *ps_model_activation_name(ps_act_kind act);
/* 1 when ps_model_evaluate counts correct classes (logreg, mlp, cnn); 0 for
 * the vae, which has no classes (its test loss is the negative ELBO). */
int ps_model_has_accuracy(ps_model_kind kind);

/* Validates cfg (PS_ECONFIG, logged, naming the field) and builds a model
 * with its buffers for cfg->max_batch samples. Returns 0 or PS_ECONFIG /
 * PS_ENOMEM; on success *out is new and the caller destroys it with
 * ps_model_destroy. */
int ps_model_create(ps_model **out, const ps_model_cfg *cfg);
/* Frees m and sets *m = NULL; accepts NULL and *m == NULL. */
void ps_model_destroy(ps_model **m);

/* The tables a model of cfg has, the ones ps_model_create's model reports
 * through ps_model_table, without building it: no buffers, so a server or
 * predict can learn the table list for nothing. Checks only the fields that
 * shape the tables (kind, in_dim, nclasses, sparse_input, nhidden, hidden,
 * activation, nconv, conv, latent, init_override; PS_ECONFIG, logged naming
 * the field); max_batch, dropout, l2 and seeds are not read. OUT out[0..*n) (PS_MODEL_MAX_TABLES
 * entries always suffice), OUT *n. Returns 0, PS_ECONFIG, or PS_EINVAL (logged) when cap is too
 * small. Pure, thread-safe. */
int ps_model_tables(const ps_model_cfg *cfg, ps_table_desc *out, uint32_t cap, uint32_t *n);

/* The architecture of cfg as a model file describes it (proto ModelInfo):
 * kind, in_dim, nclasses, sparse_input, hidden, activation (mlp and vae;
 * "" otherwise), conv (cnn) and latent (vae) into out; hash_bits,
 * hash_fingerprint and averaged are the caller's and left as they are.
 * Pure. */
void ps_model_info_write(const ps_model_cfg *cfg, ps_file_model *out);
/* The inverse: the architecture fields of out from a model file's info,
 * the run fields zero but init_override = -1. An unknown kind or
 * activation, or lists that do not fit the kind, are PS_EFORMAT with the
 * field's name in field (fieldlen bytes) and the reason in why (whylen);
 * nothing is logged (the caller names the file). ps_model_tables then
 * checks the shape. Pure. */
int ps_model_info_read(const ps_file_model *in, ps_model_cfg *out, char *field, size_t fieldlen,
                       char *why, size_t whylen);

/* Number of tables: 2 for logreg, 2 * (nhidden + 1) for the mlp,
 * 2 * (nconv + 2) for the cnn, 8 for the vae. */
uint32_t ps_model_ntables(const ps_model *m);
/* Description of table t < ntables (weights, then bias, per layer); owned
 * by m, valid until it is destroyed. */
const ps_table_desc *ps_model_table(const ps_model *m, uint32_t t);
/* The configuration m was created with. */
const ps_model_cfg *ps_model_config(const ps_model *m);

/* Fills keys[0..ntables-1] with the rows batch b needs: every row of every
 * dense table, key 0 of biases, and for sparse input (logreg, mlp) the sorted unique
 * feature ids of b in the first weight table (a radix sort over the batch's
 * non-zeros: O(nnz), never O(rows)). Grows the keylists as needed.
 * Returns 0, PS_EINVAL (batch does not match the model, or a feature id is
 * >= in_dim; logged) or PS_ENOMEM. Borrows b until return. */
int ps_model_batch_keys(ps_model *m, const ps_batch *b, ps_keylist *keys);
/* Frees the arrays of keys[0..n-1]; they are zeroed and can be reused. */
void ps_model_keys_fini(ps_keylist *keys, uint32_t n);
/* Grows bufs[t] (capacity caps[t] floats, ps_grow) to keys[t].n rows of
 * table t, for every table: the layout of params and grads. Returns 0 or
 * PS_ENOMEM. */
int ps_model_grow_rows(const ps_model *m, const ps_keylist *keys, float **bufs, size_t *caps);

/* One training step on b (1 <= b->n <= max_batch) with keys from
 * ps_model_batch_keys(b): params[t] holds keys[t].n x width floats of table
 * t (row i = key keys[t].keys[i]); writes grads[t] in the same layout.
 * OUT *loss = mean softmax cross-entropy (vae: negative ELBO) over the batch plus
 * 0.5 * l2 * ||w||^2 over the weight rows present, and grads are its
 * gradient (mean over the batch, plus l2 * w on those rows unless
 * l2_on_server, when the servers add it). L2 on the rows a batch touches
 * is exact for dense input; for sparse input it decays a feature only when
 * it appears. Dropout masks are keyed by (seed, worker,
 * step, unit), so a step is a pure function of its inputs. Returns 0,
 * PS_EINVAL (batch or keys do not match; a label out of range; logged) or
 * PS_ENOMEM (growing the sparse dropout buffer on first use). */
int ps_model_forward_backward(ps_model *m, const ps_batch *b, const ps_keylist *keys,
                              const float *const *params, float *const *grads, uint64_t step,
                              double *loss);

/* Evaluation on b without dropout and without L2 (any b->n; larger batches
 * are done in chunks of max_batch): OUT *loss_sum is the summed
 * cross-entropy (vae: summed negative ELBO, one sample of z per image from
 * a fixed key) and OUT *ncorrect the number of samples whose argmax (lowest
 * index on ties) equals the label (vae: 0). keys and params as for
 * forward_backward. Returns 0 or PS_EINVAL (logged). */
int ps_model_evaluate(ps_model *m, const ps_batch *b, const ps_keylist *keys,
                      const float *const *params, double *loss_sum, size_t *ncorrect);

/* Prediction on b without dropout (any b->n, in chunks of max_batch, the
 * same forward pass as ps_model_evaluate): OUT classes[i] = the argmax
 * class (lowest index on ties) of sample i, b->n entries. Labels are not
 * read (b->y may be NULL). keys and params as for forward_backward.
 * Returns 0 or PS_EINVAL (batch or keys do not match the model, or the
 * model is a vae, which has no classes; logged). */
int ps_model_predict(ps_model *m, const ps_batch *b, const ps_keylist *keys,
                     const float *const *params, int32_t *classes);
/* ps_model_predict, and also OUT proba[i * nclasses + c] = the probability
 * (softmax) of class c for sample i, b->n * nclasses floats (proba may be
 * NULL). */
int ps_model_predict_proba(ps_model *m, const ps_batch *b, const ps_keylist *keys,
                           const float *const *params, int32_t *classes, float *proba);

#endif
