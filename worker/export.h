/* Export: writes the model a job trained as one .npy per table (shape rows x
 * width, float32, loadable with numpy.load) plus model.json describing the
 * architecture, the preprocessing and the training configuration. The
 * coordinator pulls each table from the servers in row blocks, so a table
 * never has to fit in one message. */
#ifndef PS_EXPORT_H
#define PS_EXPORT_H

#include <stdint.h>

#include "worker/client.h"
#include "worker/model.h"

/* Saves every table of m, from parameters of at least `version` (averaged:
 * the temporal average), into dir (created if missing). Returns 0 or the
 * first error (logged with the path). */
int ps_export_save(ps_client *c, const ps_model *m, int64_t version, int averaged,
                   const char *dir, const char *config_text, unsigned hash_bits);

#endif
