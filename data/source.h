/* Source: where a job's training and test samples come from (Fashion-MNIST,
 * an IDX pair, a libsvm file, the synthetic generator), what shape they have
 * (the spec every rank needs to build the model's tables), and loading one
 * worker's disjoint part of the training set into memory. */
#ifndef PS_SOURCE_H
#define PS_SOURCE_H

#include <stdint.h>

#include "cli/cfg.h"
#include "data/dataset.h"

typedef struct {
    uint64_t dim;      /* features (sparse: the key space) */
    uint32_t nclasses;
    int32_t sparse;
    uint64_t ntrain;   /* training samples (libsvm: lines, 0 if unknown) */
    uint64_t ntest;
} ps_source_spec;

/* Finds the shape of cfg's data: reads IDX headers, or for libsvm without
 * --hash-bits/--features scans the training file once. Returns 0 or the
 * reader's error (logged with the file name). */
int ps_source_probe(const ps_cfg *cfg, ps_source_spec *spec);
/* Loads worker's part of the training set (ps_partition: disjoint, all
 * workers together cover it once). */
int ps_source_load_train(const ps_cfg *cfg, const ps_source_spec *spec, uint32_t worker,
                         uint32_t nworkers, ps_dataset *out);
/* Loads the whole test set. */
int ps_source_load_test(const ps_cfg *cfg, const ps_source_spec *spec, ps_dataset *out);
/* Opens worker's byte range of the libsvm training file for streaming
 * (the reader then yields its rows in chunks). Only for libsvm sources.
 * *bytes gets the range's size. The caller closes r with ps_libsvm_close. */
struct ps_libsvm;
int ps_source_open_train_stream(const ps_cfg *cfg, const ps_source_spec *spec, uint32_t worker,
                                uint32_t nworkers, struct ps_libsvm **r, uint64_t *bytes);
/* 1 if cfg's training data is a libsvm file (which can be streamed). */
int ps_source_is_libsvm(const ps_cfg *cfg);
/* Writes the whole synthetic set cfg->synth describes as libsvm text to
 * path (adamps synth). Returns 0 or the generator's error (logged). */
int ps_source_write_synth(const ps_cfg *cfg, const char *path);
/* Training and test file paths cfg implies (Fashion-MNIST under data_dir). */
void ps_source_paths(const ps_cfg *cfg, char *train_img, char *train_lbl, char *test_img,
                     char *test_lbl, size_t len);

#endif
