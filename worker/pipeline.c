/* Pipeline (worker/pipeline.h): clocks prepared, started and waited for in
 * order, each in slot clock % PS_PIPE_SLOTS. */
#include "worker/pipeline.h"

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

typedef struct {
    ps_dataset batch;
    ps_keylist *keys; /* ntables */
    ps_plan *plan;
} slot;

struct ps_pipe {
    ps_pipe_cfg cfg;
    uint32_t ntables;
    slot slots[PS_PIPE_SLOTS];
    /* Clocks below each are prepared, started, waited for:
     * waited <= started <= prepared <= waited + PS_PIPE_SLOTS - 1. */
    uint64_t prepared, started, waited;
    float **params; /* ntables buffers, grown to each batch */
    size_t *cap;
};

int ps_pipe_create(ps_pipe **out, const ps_pipe_cfg *cfg)
{
    ps_pipe *p = ps_calloc(1, sizeof *p);
    if (!p) {
        return PS_ENOMEM;
    }
    p->cfg = *cfg;
    p->ntables = ps_model_ntables(cfg->model);
    p->prepared = p->started = p->waited = cfg->first;
    int rc = 0;
    if (!(p->params = ps_calloc(p->ntables, sizeof *p->params)) ||
        !(p->cap = ps_calloc(p->ntables, sizeof *p->cap))) {
        rc = PS_ENOMEM;
    }
    for (int i = 0; i < PS_PIPE_SLOTS && rc == 0; i++) {
        slot *s = &p->slots[i];
        if (!(s->keys = ps_calloc(p->ntables, sizeof *s->keys))) {
            rc = PS_ENOMEM;
        } else {
            rc = ps_plan_create(&s->plan, cfg->client);
        }
    }
    if (rc) {
        ps_pipe_destroy(&p);
    }
    *out = p;
    return rc;
}

void ps_pipe_destroy(ps_pipe **pp)
{
    if (!pp || !*pp) {
        return;
    }
    ps_pipe *p = *pp;
    for (int i = 0; i < PS_PIPE_SLOTS; i++) {
        slot *s = &p->slots[i];
        ps_dataset_fini(&s->batch);
        if (s->keys) {
            ps_model_keys_fini(s->keys, p->ntables);
        }
        ps_free(s->keys);
        ps_plan_destroy(&s->plan);
    }
    for (uint32_t t = 0; p->params && t < p->ntables; t++) {
        ps_free(p->params[t]);
    }
    ps_free(p->params);
    ps_free(p->cap);
    ps_free(p);
    *pp = NULL;
}

static slot *slot_of(ps_pipe *p, uint64_t clock)
{
    return &p->slots[clock % PS_PIPE_SLOTS];
}

/* Batch, keys and plan of clock p->prepared. */
static int prepare_next(ps_pipe *p)
{
    uint64_t clock = p->prepared;
    slot *s = slot_of(p, clock);
    int rc = ps_batcher_get(p->cfg.batcher, clock, p->cfg.steps_per_epoch, &s->batch);
    if (rc) {
        return rc;
    }
    ps_batch b = ps_dataset_view(&s->batch, 0, s->batch.n);
    if (b.n == 0) {
        for (uint32_t t = 0; t < p->ntables; t++) {
            s->keys[t].n = 0;
        }
    } else if ((rc = ps_model_batch_keys(p->cfg.model, &b, s->keys))) {
        return rc;
    }
    if ((rc = ps_client_plan(p->cfg.client, s->plan, s->keys)) == 0) {
        p->prepared++;
    }
    return rc;
}

int ps_pipe_prepare(ps_pipe *p, uint64_t clock)
{
    /* The slot of clock - PS_PIPE_SLOTS is the computing clock's until the
     * next wait. */
    PS_ASSERT(clock < p->waited + PS_PIPE_SLOTS - 1);
    int rc = 0;
    while (rc == 0 && p->prepared <= clock) {
        rc = prepare_next(p);
    }
    return rc;
}

static int64_t min_version(const ps_pipe *p, uint64_t clock)
{
    if (p->cfg.max_staleness < 0) {
        return 0;
    }
    uint64_t k = (uint64_t)p->cfg.max_staleness;
    return clock > k ? (int64_t)(clock - k) : 0;
}

int ps_pipe_start(ps_pipe *p, uint64_t clock)
{
    int rc = ps_pipe_prepare(p, clock);
    while (rc == 0 && p->started <= clock) {
        slot *s = slot_of(p, p->started);
        rc = ps_client_pull_start(p->cfg.client, s->plan, min_version(p, p->started), 0);
        p->started += rc == 0;
    }
    return rc;
}

int ps_pipe_ahead(ps_pipe *p, uint64_t clock, int64_t last)
{
    if (p->cfg.max_staleness == 0 && (int64_t)clock <= last) {
        return ps_pipe_start(p, clock);
    }
    return ps_pipe_prepare(p, clock);
}

/* Takes the replies of the oldest pull in flight. */
static int wait_next(ps_pipe *p)
{
    slot *s = slot_of(p, p->waited);
    int rc = ps_model_grow_rows(p->cfg.model, s->keys, p->params, p->cap);
    if (rc || (rc = ps_client_pull_wait(p->cfg.client, s->plan, p->params))) {
        return rc;
    }
    p->waited++;
    return 0;
}

int ps_pipe_wait(ps_pipe *p, uint64_t clock, ps_pipe_step *out)
{
    PS_ASSERT(clock == p->waited);
    int rc = ps_pipe_start(p, clock);
    if (rc || (rc = wait_next(p))) {
        return rc;
    }
    slot *s = slot_of(p, clock);
    *out = (ps_pipe_step){.batch = ps_dataset_view(&s->batch, 0, s->batch.n),
                          .keys = s->keys,
                          .plan = s->plan,
                          .params = p->params};
    return 0;
}

int ps_pipe_drain(ps_pipe *p)
{
    int rc = 0;
    while (rc == 0 && p->waited < p->started) {
        rc = wait_next(p);
    }
    return rc;
}
