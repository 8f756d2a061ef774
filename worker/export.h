/* Export: writes the model a job trained into a directory:
 *   model.bin   every table in one framed file (common/file.h, kind "model",
 *               CRC-checked, the ModelInfo of proto/adamps.proto in its
 *               header, the class labels included): what `adamps predict`
 *               reads (worker/predict.h);
 *   NAME.npy    one float32 array per table (rows x width, numpy.load);
 *   model.npz   the same arrays in one file (numpy.load(...)["NAME"]),
 *               skipped with a warning past zip32's 4 GiB (data/npz.h);
 *   model.json  the architecture, the tables, the class labels, the
 *               preprocessing (for hashed features the hash's definition
 *               and seed), the adamps version and the training
 *               configuration as a typed object, for humans and numpy users.
 * The coordinator pulls each table from the servers in row blocks into its
 * .npy, so a table never has to fit in one message or in memory. model.bin's
 * header comes before its payload and holds the payload's CRC, so it is
 * written in a second pass that streams the .npy files just written (the
 * CRC was taken during the pull, and checked again at commit). Every file is
 * written atomically. Not collective; not thread-safe. */
#ifndef PS_EXPORT_H
#define PS_EXPORT_H

#include <stdint.h>

#include "worker/client.h"
#include "worker/metrics.h"
#include "worker/model.h"

/* What a saved model records besides its tables. Everything is borrowed
 * until the call returns. */
typedef struct {
    int64_t clock;           /* the version the parameters were taken at */
    int averaged;            /* 1: the temporal average */
    unsigned hash_bits;      /* feature hashing of sparse input ids; 0 = none */
    const char *config_text; /* the run header's configuration (model.bin); may be NULL */
    /* The configuration as typed pairs (model.json's "config"); may be 0. */
    const ps_metric_kv *config;
    size_t nconfig;
    /* The label of each class, ascending (nclasses of them); nlabels 0:
     * class c is label c. */
    const int32_t *labels;
    uint32_t nlabels;
} ps_export_info;

/* Saves every table of m, from parameters of at least info->clock (the
 * temporal average when info->averaged), into dir (created if missing).
 * Returns 0 or the first error (logged with the path). */
int ps_export_save(ps_client *c, const ps_model *m, const ps_export_info *info, const char *dir);

/* The same files from tables held in memory: tables[t] is table t of m,
 * rows x width floats, row-major (borrowed until return). Returns 0;
 * PS_EINVAL (a path too long; logged); PS_ENOMEM; PS_EIO (logged). */
int ps_export_save_tables(const ps_model *m, const float *const *tables, const ps_export_info *info,
                          const char *dir);

/* A fingerprint of the feature hash (data/fhash.h) under `bits` (0 gives
 * 0): model.bin records it and predict compares it, so a build whose hash
 * differs refuses a hashed model instead of scoring garbage. Pure. */
uint64_t ps_export_hash_fingerprint(unsigned bits);

#endif
