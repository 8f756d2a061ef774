/* Held messages' storage (server/segcopy.h). */
#include "server/segcopy.h"

#include <string.h>

#include "common/mem.h"

int ps_segcopy_set(ps_segcopy *c, const ps_seg *segs, size_t n)
{
    size_t nslots = 0, nvalues = 0;
    for (size_t i = 0; i < n; i++) {
        nslots += segs[i].nkeys;
        nvalues += segs[i].nvalues;
    }
    int rc = PS_GROW(c->segs, c->cap_segs, n);
    if (rc || (rc = PS_GROW(c->slots, c->cap_slots, nslots)) ||
        (rc = PS_GROW(c->values, c->cap_values, nvalues))) {
        return rc;
    }
    size_t ks = 0, kv = 0;
    for (size_t i = 0; i < n; i++) {
        const ps_seg *g = &segs[i];
        c->segs[i] = *g;
        if (g->nkeys && g->slots) {
            memcpy(c->slots + ks, g->slots, g->nkeys * sizeof *g->slots);
            c->segs[i].slots = c->slots + ks;
            ks += g->nkeys;
        }
        if (g->nvalues) {
            memcpy(c->values + kv, g->values, g->nvalues * sizeof *g->values);
            c->segs[i].values = c->values + kv;
            kv += g->nvalues;
        }
    }
    return 0;
}

void ps_segcopy_fini(ps_segcopy *c)
{
    ps_free(c->segs);
    ps_free(c->slots);
    ps_free(c->values);
}
