#include "common/table.h"

#include <math.h>
#include <string.h>

#include "common/err.h"
#include "common/rng.h"

int ps_init_parse(const char *text, ps_init_kind *out)
{
    static const struct {
        const char *name;
        ps_init_kind kind;
    } names[] = {{"zeros", PS_INIT_ZEROS}, {"normal", PS_INIT_NORMAL}, {"glorot", PS_INIT_GLOROT}};
    if (!text) {
        return PS_EINVAL;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(text, names[i].name) == 0) {
            *out = names[i].kind;
            return 0;
        }
    }
    return PS_EINVAL;
}

const char *ps_init_name(ps_init_kind kind)
{
    switch (kind) {
    case PS_INIT_ZEROS:
        return "zeros";
    case PS_INIT_NORMAL:
        return "normal";
    case PS_INIT_GLOROT:
        return "glorot";
    }
    return "?";
}

float ps_table_glorot_scale(uint64_t rows, uint32_t width)
{
    return (float)sqrt(6.0 / ((double)rows + (double)width));
}

/* The hash's `a` input carries the table id in its low 32 bits and a stream
 * number above, so Box-Muller's second uniform is independent of the first. */
#define STREAM2 ((uint64_t)1 << 32)

void ps_table_init_row(const ps_table_desc *t, uint64_t seed, uint32_t table_id, uint64_t row,
                       float *out)
{
    uint32_t w = t->width;
    switch (t->init) {
    case PS_INIT_NORMAL:
        for (uint32_t c = 0; c < w; c++) {
            uint64_t x1 = ps_rng_hash(seed, table_id, row, c);
            uint64_t x2 = ps_rng_hash(seed, table_id + STREAM2, row, c);
            out[c] = (float)(t->scale * ps_rng_normal_from(x1, x2));
        }
        break;
    case PS_INIT_GLOROT:
        for (uint32_t c = 0; c < w; c++) {
            double u = ps_rng_unit_double(ps_rng_hash(seed, table_id, row, c));
            out[c] = (float)((2.0 * u - 1.0) * t->scale);
        }
        break;
    case PS_INIT_ZEROS:
    default:
        memset(out, 0, (size_t)w * sizeof *out);
        break;
    }
}
