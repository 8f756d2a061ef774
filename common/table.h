/* Tables: what a model's parameters look like to the rest of the system.
 * A table is `rows x width` floats and a key is a row id; a dense layer
 * W[in][out] is a table with rows = in, width = out, a bias one row. The
 * worker's model describes its tables with ps_table_desc; the server
 * allocates its shard of each and fills it with ps_table_init_row, which is
 * a pure function of (seed, table id, row, column) so initial values do not
 * depend on how rows are sharded. Pure functions, thread-safe. */
#ifndef PS_TABLE_H
#define PS_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
    PS_INIT_ZEROS = 0,
    PS_INIT_NORMAL, /* N(0, scale^2) */
    PS_INIT_GLOROT  /* uniform(-scale, scale), scale = sqrt(6 / (fan_in + fan_out)) */
} ps_init_kind;

typedef struct {
    char name[32]; /* "w", "b", "w1", "b1", ...; NUL-terminated */
    uint64_t rows;
    uint32_t width;
    ps_init_kind init;
    float scale; /* stddev (normal) or limit (glorot); unused for zeros */
} ps_table_desc;

/* Parses "zeros", "normal" or "glorot"; returns 0 or PS_EINVAL. */
int ps_init_parse(const char *text, ps_init_kind *out);
/* "zeros", "normal", "glorot" (or "?" for an unknown value). */
const char *ps_init_name(ps_init_kind kind);
/* Glorot's limit sqrt(6 / (fan_in + fan_out)) for a rows x width table. */
float ps_table_glorot_scale(uint64_t rows, uint32_t width);

/* Fills out[0..t->width-1] with the initial values of row `row` of table
 * `table_id` (row < t->rows). Value (row, col) depends only on (seed,
 * table_id, row, col) through the counter-based ps_rng_hash, never on which
 * other rows are initialised, so any sharding gives the same model. */
void ps_table_init_row(const ps_table_desc *t, uint64_t seed, uint32_t table_id, uint64_t row,
                       float *out);

/* One row of `width` floats from src to dst. Sparse tables are often 1 or 2
 * wide (a logistic regression's), where a memcpy call per row costs more
 * than the copy: gathering and scattering rows that way was 10-14% of a
 * sparse logreg step on the worker and on the server. */
static inline void ps_table_copy_row(float *restrict dst, const float *restrict src, size_t width)
{
    if (width == 1) {
        dst[0] = src[0];
    } else if (width == 2) {
        dst[0] = src[0];
        dst[1] = src[1];
    } else {
        memcpy(dst, src, width * sizeof(float));
    }
}

#endif
