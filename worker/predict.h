/* Predict: loads a model saved by `adamps train --save-model DIR` from
 * DIR/model.bin (one CRC-checked framed file, see worker/export.h; the .npy
 * files and model.json beside it are for other readers) and scores a
 * labelled data set with it in one process, without MPI: mean loss,
 * accuracy and the argmax class of every sample, written back as the
 * data's own label (+1/-1, 1..K: the labels the model was trained on), and
 * the class probabilities on request. As LIBLINEAR's predict does, feature
 * ids past the model's inputs are ignored (one warning counts them). Parameters for each chunk
 * of samples are gathered from the full tables by key, the layout
 * ps_model_evaluate and ps_model_predict take. The logic behind `adamps
 * predict`; cli/predict.c only maps the rc to an exit status. Not
 * collective; one predictor per thread. */
#ifndef PS_PREDICT_H
#define PS_PREDICT_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "data/source.h"
#include "worker/model.h"

/* Samples scored per forward pass (and per parameter gather). */
#define PS_PREDICT_CHUNK 1000

typedef struct ps_predictor ps_predictor;

typedef struct {
    double loss;     /* mean softmax cross-entropy over the samples */
    double accuracy; /* fraction whose argmax equals the label */
    size_t samples;
} ps_predict_result;

/* Reads dir/model.bin: checks its framing and CRC (common/file.h), that
 * its header describes a model (kind "model", ModelInfo) whose tables are
 * the header's tables with the payload's size, that the feature hash is
 * this build's, and that every weight is finite; then builds the model (no
 * dropout). Returns 0 and a new predictor in *out (the caller destroys it
 * with ps_predict_destroy); PS_EFORMAT for anything wrong with the file
 * (logged naming the file and the field or check that failed; framing and
 * CRC errors included); PS_EIO (cannot open or read; logged with
 * strerror); PS_ECONFIG (dir too long; logged); PS_ENOMEM. */
int ps_predict_create(ps_predictor **out, const char *dir);
/* Frees p and sets *p = NULL; accepts NULL and *p == NULL. */
void ps_predict_destroy(ps_predictor **p);

/* The model's configuration (kind, in_dim, nclasses, sparse_input,
 * hidden) and the hash_bits it was trained with (0 = none). Owned by p. */
const ps_model_cfg *ps_predict_model_cfg(const ps_predictor *p);
uint32_t ps_predict_hash_bits(const ps_predictor *p);
/* The label of class c < nclasses (c itself for a model without a label
 * list: IDX data, labels 0..C-1). */
int32_t ps_predict_label(const ps_predictor *p, uint32_t c);

/* Scores the labelled batch b (b->n >= 1, matching the model's input) in
 * chunks of PS_PREDICT_CHUNK. OUT *loss_sum = summed cross-entropy, OUT
 * *ncorrect = samples whose argmax equals the label, OUT classes[0..b->n)
 * = the argmax class of each sample (classes may be NULL: then that second
 * pass is skipped). Borrows b until return. Returns 0, PS_EINVAL (b does
 * not match the model; logged) or PS_ENOMEM. */
int ps_predict_score(ps_predictor *p, const ps_batch *b, double *loss_sum, size_t *ncorrect,
                     int32_t *classes);
/* ps_predict_score, and also OUT proba[i * nclasses + c] = the probability
 * of class c for sample i (proba may be NULL; needs classes). */
int ps_predict_score_proba(ps_predictor *p, const ps_batch *b, double *loss_sum, size_t *ncorrect,
                           int32_t *classes, float *proba);

/* What `adamps predict` reads and writes. Strings are borrowed and never
 * NULL; "" means not given. */
typedef struct {
    const char *model_dir; /* a directory written by `adamps train --save-model` */
    ps_source_cfg source;  /* the test set: dataset under data_dir, or test in format (auto:
                              from its name); zero_based; hash_bits 0 or the model's;
                              test_limit. Its training fields are not read. */
    const char *out;       /* one predicted label per line; "" = none */
    int proba;             /* out: a "labels L1 L2 .." line, then per sample its label and the
                              class probabilities in that order (LIBLINEAR's -b 1 output) */
    int quiet;             /* no summary log line */
} ps_predict_cfg;

/* The whole `adamps predict`: loads cfg->model_dir, reads the test set
 * (libsvm with the model's in_dim, hash_bits and labels; ids past in_dim
 * ignored), keeps its first source.test_limit samples (0 = all), scores
 * them and, when cfg->out is set, writes one predicted label per line (or
 * with cfg->proba the probabilities) to it atomically. OUT *res.
 * Returns 0; PS_EFORMAT / PS_EIO / PS_ECONFIG for bad input (a model or
 * data file, or flags that contradict the model; logged naming the file);
 * PS_ENOMEM; PS_EINVAL (a bug). */
int ps_predict_run(const ps_predict_cfg *cfg, ps_predict_result *res);

#endif
