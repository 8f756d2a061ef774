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
/* Most labels a spec lists (when they are not the class ids 0..C-1). */
#define PS_SOURCE_MAX_LABELS 4096

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
    uint32_t hash_bits;   /* libsvm, synthetic: hash ids to 2^hash_bits rows; 0 = off */
    uint64_t features;    /* libsvm feature count; 0 = scan the file */
    uint64_t max_dim;     /* libsvm scan: ids must stay below this (0: 2^40) */
    uint64_t train_limit; /* use the first N training samples; 0 = all */
    uint64_t test_limit;  /* the first N test samples; 0 = all */
    ps_synth_cfg synth;   /* PS_FMT_SYNTH: the generator; its n rows include the test rows */
    uint64_t synth_test;  /* PS_FMT_SYNTH: the last synth_test rows are the test set */
    int quiet;            /* no INFO lines (the scan notice) */
    /* (0, 1): the test set is this fraction of the training samples, held
     * out of training by a hash keyed by seed (data/holdout.h), instead of
     * test (libsvm, IDX) or the generator's test rows; 0: off. */
    double holdout;
    uint64_t seed;
    /* libsvm: "L1,L2,..." (ps_labels_parse) fixes the label set instead of
     * the probe's finding it; "" = find it. */
    const char *labels;
    int ignore_past_dim; /* libsvm test set: ids past the spec's dim are dropped (predict) */
} ps_source_cfg;

/* Bytes of a libsvm training file the probe reads when the shape is known
 * (--hash-bits or --features): classes and row sizes come from this head. */
#define PS_SOURCE_HEAD_BYTES ((uint64_t)1 << 20)

/* The data's shape, which every rank needs, and what the probe saw of it
 * (for the memory plan). Plain bytes: broadcast as they are. */
typedef struct {
    uint64_t dim; /* features (sparse: the key space) */
    uint32_t nclasses;
    int32_t sparse;
    /* libsvm: the labels of the classes, ascending (class c is labels[c]);
     * nlabels 0: the labels are the class ids 0..nclasses-1 (IDX and
     * synthetic data always). */
    uint32_t nlabels;
    int32_t labels[PS_SOURCE_MAX_LABELS];
    int32_t train_gzip; /* libsvm: the training file is gzip (split by lines, not bytes) */
    /* Training samples used (libsvm: 0 when the file was not read whole;
     * IDX and synthetic: the rows split over the workers, held-out ones
     * included). */
    uint64_t ntrain;
    uint64_t ntest;       /* test samples used (--holdout on a libsvm file read in
                             part: estimated from its head) */
    uint64_t train_bytes; /* libsvm: training lines are bytes [0, train_bytes) of the file:
                             its size, or the end of the first train_limit samples (0 in a
                             spec made by hand: the whole file); gzip: of its decompressed
                             text, which the probe reads whole */
    /* Sparse data the probe read (the training file whole or its head, the
     * test set): rows, non-zeros and file bytes, and the largest row. */
    uint64_t sample_rows, sample_nnz, sample_bytes, max_nnz;
    uint64_t test_nnz; /* non-zeros of the test set (sparse) */
} ps_source_spec;

/* Finds the shape of cfg's data. IDX: the headers, checked against the
 * files' sizes, and both labels files read whole (classes = largest label
 * + 1). Synthetic: the generator's settings. libsvm: with hash_bits or
 * features only the head of the training file (PS_SOURCE_HEAD_BYTES) or, with
 * train_limit, its first train_limit samples are read, else the whole file
 * is scanned once for the largest id and the labels (logged with its
 * size); a gzip training file is always read whole (its decompressed size
 * is not in its header); the test set (its first test_limit samples) is
 * read whole either way. The classes are the distinct labels seen in both
 * (or cfg->labels). With holdout the held-out training samples stand for
 * the test set. Returns 0 or the reader's error (logged with the file name
 * and line); an empty training set, or a single label, is PS_EFORMAT naming
 * the file. */
int ps_source_probe(const ps_source_cfg *cfg, ps_source_spec *spec);
/* Loads worker's part of the training set (ps_partition: disjoint, all
 * workers together cover it once; libsvm: a byte range of
 * [0, spec->train_bytes), or for gzip every nworkers-th line), without
 * the held-out samples (cfg->holdout). */
int ps_source_load_train(const ps_source_cfg *cfg, const ps_source_spec *spec, uint32_t worker,
                         uint32_t nworkers, ps_dataset *out);
/* Loads the test set: its first test_limit samples (0: all), reading no
 * further; with cfg->holdout, the held-out training samples (a pass over
 * the whole training set). With cfg->ignore_past_dim, ids past spec->dim
 * are dropped and counted in one warning naming the file. */
int ps_source_load_test(const ps_source_cfg *cfg, const ps_source_spec *spec, ps_dataset *out);
/* Opens worker's part of the libsvm training file for streaming (the
 * reader then yields its rows in chunks, held-out samples skipped): its
 * byte range, or for gzip every nworkers-th line. Only for libsvm sources.
 * *bytes gets the part's size (gzip: its share of the decompressed text).
 * The caller closes r with ps_libsvm_close. */
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
