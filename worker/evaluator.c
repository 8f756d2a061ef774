/* Evaluator (worker/evaluator.h). */
#include "worker/evaluator.h"

#include <math.h>

#include "common/err.h"
#include "common/mem.h"

struct ps_evaluator {
    ps_client *client;
    ps_model *model;
    uint32_t ntables;
    ps_keylist *keys;
    ps_plan *plan;
    float **params;
    size_t *cap;
};

int ps_evaluator_create(ps_evaluator **out, ps_client *client, ps_model *model)
{
    ps_evaluator *e = ps_calloc(1, sizeof *e);
    int rc = e ? 0 : PS_ENOMEM;
    if (e) {
        e->client = client;
        e->model = model;
        e->ntables = ps_model_ntables(model);
        if (!(e->keys = ps_calloc(e->ntables, sizeof *e->keys)) ||
            !(e->params = ps_calloc(e->ntables, sizeof *e->params)) ||
            !(e->cap = ps_calloc(e->ntables, sizeof *e->cap)) || ps_plan_create(&e->plan, client)) {
            rc = PS_ENOMEM;
            ps_evaluator_destroy(&e);
        }
    }
    *out = e;
    return rc;
}

void ps_evaluator_destroy(ps_evaluator **ep)
{
    if (!ep || !*ep) {
        return;
    }
    ps_evaluator *e = *ep;
    if (e->keys) {
        ps_model_keys_fini(e->keys, e->ntables);
    }
    for (uint32_t t = 0; e->params && t < e->ntables; t++) {
        ps_free(e->params[t]);
    }
    ps_free(e->keys);
    ps_free(e->params);
    ps_free(e->cap);
    ps_plan_destroy(&e->plan);
    ps_free(e);
    *ep = NULL;
}

int ps_evaluator_run(ps_evaluator *e, const ps_dataset *set, int64_t version, int averaged,
                     double *loss, double *acc)
{
    double loss_sum = 0;
    size_t correct = 0;
    for (size_t first = 0; first < set->n; first += PS_EVAL_CHUNK) {
        size_t n = set->n - first < PS_EVAL_CHUNK ? set->n - first : PS_EVAL_CHUNK;
        ps_batch b = ps_dataset_view(set, first, n);
        int rc = ps_model_batch_keys(e->model, &b, e->keys);
        if (rc || (rc = ps_client_plan(e->client, e->plan, e->keys)) ||
            (rc = ps_model_grow_rows(e->model, e->keys, e->params, e->cap)) ||
            (rc = ps_client_pull_start(e->client, e->plan, version, averaged)) ||
            (rc = ps_client_pull_wait(e->client, e->plan, e->params))) {
            return rc;
        }
        double ls = 0;
        size_t nc = 0;
        if ((rc = ps_model_evaluate(e->model, &b, e->keys, (const float *const *)e->params, &ls,
                                    &nc))) {
            return rc;
        }
        loss_sum += ls;
        correct += nc;
    }
    *loss = set->n ? loss_sum / (double)set->n : NAN;
    /* A vae has no classes: no accuracy (null in the metrics). */
    int classes = ps_model_has_accuracy(ps_model_config(e->model)->kind);
    *acc = set->n && classes ? (double)correct / (double)set->n : NAN;
    return 0;
}
