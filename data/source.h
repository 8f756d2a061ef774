/* Source: where a job's training and test samples come from (Fashion-MNIST,
 * an IDX pair, a libsvm file, the synthetic generator), what shape they have
 * (the spec every rank needs to build the model's tables), and loading one
 * worker's disjoint part of the training set into memory. Configured by a
 * ps_source_cfg, which cli/job.c builds from the flags. */
#ifndef PS_SOURCE_H
#define PS_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "data/synth.h"

/* Room for any path ps_source_paths writes (a directory plus a file name). */
#define PS_SOURCE_PATH 4096

typedef enum { PS_FMT_AUTO = 0, PS_FMT_IDX, PS_FMT_LIBSVM, PS_FMT_SYNTH } ps_format;

/* Strings are borrowed (the caller keeps them alive while the config is in
 * use) and never NULL; "" means not given. */
typedef struct {
    const char *dataset; /* a named IDX set under data_dir ("fashion-mnist"), or "" */
    const char *data_dir;
    const char *train;    /* training file, without a dataset */
    const char *test;     /* test file, without a dataset */
    ps_format format;     /* AUTO: from train's name (ps_source_guess_format); a dataset is IDX */
    int zero_based;       /* libsvm feature ids start at 0 */
    uint32_t hash_bits;   /* libsvm: hash ids to 2^hash_bits rows; 0 = off */
    uint64_t features;    /* libsvm feature count; 0 = scan the file */
    uint64_t train_limit; /* use the first N training samples; 0 = all */
    uint64_t test_limit;  /* the first N test samples; 0 = all */
    ps_synth_cfg synth;   /* PS_FMT_SYNTH: the generator; its n rows include the test rows */
    uint64_t synth_test;  /* PS_FMT_SYNTH: the last synth_test rows are the test set */
} ps_source_cfg;

typedef struct {
    uint64_t dim; /* features (sparse: the key space) */
    uint32_t nclasses;
    int32_t sparse;
    uint64_t ntrain; /* training samples (libsvm: lines, 0 if unknown) */
    uint64_t ntest;
} ps_source_spec;

/* Finds the shape of cfg's data: reads IDX headers, or for libsvm without
 * hash_bits/features scans the training file once. Returns 0 or the
 * reader's error (logged with the file name). */
int ps_source_probe(const ps_source_cfg *cfg, ps_source_spec *spec);
/* Loads worker's part of the training set (ps_partition: disjoint, all
 * workers together cover it once). */
int ps_source_load_train(const ps_source_cfg *cfg, const ps_source_spec *spec, uint32_t worker,
                         uint32_t nworkers, ps_dataset *out);
/* Loads the whole test set (its first test_limit samples). */
int ps_source_load_test(const ps_source_cfg *cfg, const ps_source_spec *spec, ps_dataset *out);
/* Opens worker's byte range of the libsvm training file for streaming
 * (the reader then yields its rows in chunks). Only for libsvm sources.
 * *bytes gets the range's size. The caller closes r with ps_libsvm_close. */
struct ps_libsvm;
int ps_source_open_train_stream(const ps_source_cfg *cfg, const ps_source_spec *spec,
                                uint32_t worker, uint32_t nworkers, struct ps_libsvm **r,
                                uint64_t *bytes);
/* 1 if cfg's training data is a libsvm file (which can be streamed). */
int ps_source_is_libsvm(const ps_source_cfg *cfg);
/* Training and test file paths cfg implies (a dataset's four files under
 * data_dir; for IDX train/test, the labels beside the images), each
 * written into a buffer of len bytes (PS_SOURCE_PATH is enough). */
void ps_source_paths(const ps_source_cfg *cfg, char *train_img, char *train_lbl, char *test_img,
                     char *test_lbl, size_t len);
/* The format a data file name suggests, for format == PS_FMT_AUTO:
 * PS_FMT_IDX for *.idx* and *-ubyte[.gz], PS_FMT_LIBSVM for everything
 * else (*.svm, *.libsvm, *.txt, ...). Only the name is read, never the
 * file; path may be NULL. */
ps_format ps_source_guess_format(const char *path);

#endif
