/* Evaluator: a model's mean loss and accuracy on a data set, from the
 * servers' parameters, pulled chunk by chunk (PS_EVAL_CHUNK samples) into
 * keys, a plan and parameter buffers of its own: the rows a training batch
 * pulled for its step survive an evaluation between its pull and its
 * compute (docs/design.md, "Evaluation pulls into buffers of its own").
 * Only the rows each chunk needs are pulled, so a 2^30-row sparse model is
 * never pulled whole. Not thread-safe. */
#ifndef PS_EVALUATOR_H
#define PS_EVALUATOR_H

#include <stdint.h>

#include "data/dataset.h"
#include "worker/client.h"
#include "worker/model.h"

#define PS_EVAL_CHUNK 1000

typedef struct ps_evaluator ps_evaluator;

/* Returns 0 and a new evaluator in *out, or PS_ENOMEM. Borrows client and
 * model for its life; the caller destroys it with ps_evaluator_destroy. */
int ps_evaluator_create(ps_evaluator **out, ps_client *client, ps_model *model);
/* Accepts NULL and *e == NULL; sets *e = NULL. */
void ps_evaluator_destroy(ps_evaluator **e);
/* OUT *loss: mean NLL (no dropout, no L2) over set, OUT *acc: accuracy
 * (NaN for a model without classes, and both NaN for an empty set), from
 * parameters of at least `version` (averaged: the temporal average).
 * Borrows set until return. Returns 0, or the model's or client's error. */
int ps_evaluator_run(ps_evaluator *e, const ps_dataset *set, int64_t version, int averaged,
                     double *loss, double *acc);

#endif
