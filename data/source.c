#include "data/source.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "data/idx.h"
#include "data/libsvm.h"
#include "common/log.h"
#include "data/partition.h"
#include "data/synth.h"

static int has_suffix(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && strncmp(s + n - k, suffix, k) == 0;
}

ps_format ps_source_guess_format(const char *path)
{
    ps_format f = PS_FMT_LIBSVM;
    if (path) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t n = strlen(base);
        if (has_suffix(base, n, ".gz")) {
            n -= 3;
        }
        if (strstr(base, ".idx") || has_suffix(base, n, "-ubyte") ||
            has_suffix(base, n, ".ubyte")) {
            f = PS_FMT_IDX;
        }
    }
    return f;
}

void ps_source_paths(const ps_source_cfg *cfg, char *train_img, char *train_lbl, char *test_img,
                     char *test_lbl, size_t len)
{
    if (cfg->dataset[0]) {
        snprintf(train_img, len, "%s/train-images-idx3-ubyte.gz", cfg->data_dir);
        snprintf(train_lbl, len, "%s/train-labels-idx1-ubyte.gz", cfg->data_dir);
        snprintf(test_img, len, "%s/t10k-images-idx3-ubyte.gz", cfg->data_dir);
        snprintf(test_lbl, len, "%s/t10k-labels-idx1-ubyte.gz", cfg->data_dir);
        return;
    }
    /* --train/--test in IDX form name the images; labels sit beside them
     * with "images" replaced by "labels" and idx3 by idx1 (MNIST naming). */
    const char *src[2] = {cfg->train, cfg->test};
    char *img[2] = {train_img, test_img}, *lbl[2] = {train_lbl, test_lbl};
    for (int i = 0; i < 2; i++) {
        snprintf(img[i], len, "%s", src[i]);
        snprintf(lbl[i], len, "%s", src[i]);
        char *p = strstr(lbl[i], "images");
        if (p) {
            memcpy(p, "labels", 6);
        }
        if ((p = strstr(lbl[i], "idx3"))) {
            p[3] = '1';
        }
    }
}

static int is_idx(const ps_source_cfg *cfg)
{
    if (cfg->dataset[0] || cfg->format == PS_FMT_IDX) {
        return 1;
    }
    return cfg->format == PS_FMT_AUTO && ps_source_guess_format(cfg->train) == PS_FMT_IDX;
}

static ps_libsvm_opts svm_opts(const ps_source_cfg *cfg, const ps_source_spec *spec)
{
    ps_libsvm_opts o = {.dim = spec ? spec->dim : cfg->features,
                        .nclasses = spec ? spec->nclasses : 0,
                        .hash_bits = cfg->hash_bits,
                        .zero_based = cfg->zero_based};
    return o;
}

/* One streaming pass: the largest feature id and class, and the line count. */
static int scan_libsvm(const ps_source_cfg *cfg, const char *path, ps_source_spec *spec,
                       uint64_t *n)
{
    ps_libsvm_opts o = svm_opts(cfg, NULL);
    ps_libsvm *r = NULL;
    ps_dataset chunk = {0};
    int rc = ps_libsvm_open(&r, path, &o, 0, UINT64_MAX);
    *n = 0;
    while (rc == 0 && (rc = ps_libsvm_next(r, 65536, &chunk)) == 0) {
        *n += chunk.n;
        spec->dim = chunk.dim > spec->dim ? chunk.dim : spec->dim;
        spec->nclasses = chunk.nclasses > spec->nclasses ? chunk.nclasses : spec->nclasses;
    }
    ps_libsvm_close(&r);
    ps_dataset_fini(&chunk);
    return rc == PS_EEOF ? 0 : rc;
}

int ps_source_is_libsvm(const ps_source_cfg *cfg)
{
    return cfg->format != PS_FMT_SYNTH && !is_idx(cfg);
}

int ps_source_open_train_stream(const ps_source_cfg *cfg, const ps_source_spec *spec,
                                uint32_t worker, uint32_t nworkers, ps_libsvm **r, uint64_t *bytes)
{
    uint64_t size, begin, end;
    int rc = ps_libsvm_file_size(cfg->train, &size);
    if (rc || (rc = ps_partition_bytes(size, nworkers, worker, &begin, &end))) {
        return rc;
    }
    *bytes = end - begin;
    ps_libsvm_opts o = svm_opts(cfg, spec);
    return ps_libsvm_open(r, cfg->train, &o, begin, end);
}

int ps_source_probe(const ps_source_cfg *cfg, ps_source_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    if (is_idx(cfg)) {
        char ti[PS_SOURCE_PATH], tl[PS_SOURCE_PATH], si[PS_SOURCE_PATH], sl[PS_SOURCE_PATH];
        ps_source_paths(cfg, ti, tl, si, sl, sizeof ti);
        size_t n, dim, nt, dimt;
        int rc = ps_idx_probe(ti, &n, &dim);
        if (rc || (rc = ps_idx_probe(si, &nt, &dimt))) {
            return rc;
        }
        if (dim != dimt) {
            PS_LOG(ERROR, "%s has %zu features per image but %s has %zu", ti, dim, si, dimt);
            return PS_EFORMAT;
        }
        spec->dim = dim;
        spec->nclasses = 10;
        spec->ntrain = n;
        spec->ntest = nt;
        return 0;
    }
    spec->sparse = 1;
    if (cfg->format == PS_FMT_SYNTH) {
        spec->dim = cfg->synth.nfeatures;
        spec->nclasses = cfg->synth.nclasses;
        spec->ntest = cfg->synth_test;
        spec->ntrain = cfg->synth.n - spec->ntest;
        return ps_synth_check(&cfg->synth);
    }
    if (cfg->hash_bits) {
        spec->dim = (uint64_t)1 << cfg->hash_bits;
    } else if (cfg->features) {
        spec->dim = cfg->features;
    }
    int rc = scan_libsvm(cfg, cfg->train, spec, &spec->ntrain);
    if (rc == 0 && cfg->test[0]) {
        rc = scan_libsvm(cfg, cfg->test, spec, &spec->ntest);
    }
    spec->nclasses = spec->nclasses < 2 ? 2 : spec->nclasses;
    return rc;
}

static size_t limit(size_t n, uint64_t lim)
{
    return lim && lim < n ? (size_t)lim : n;
}

int ps_source_load_train(const ps_source_cfg *cfg, const ps_source_spec *spec, uint32_t worker,
                         uint32_t nworkers, ps_dataset *out)
{
    if (is_idx(cfg)) {
        char ti[PS_SOURCE_PATH], tl[PS_SOURCE_PATH], si[PS_SOURCE_PATH], sl[PS_SOURCE_PATH];
        ps_source_paths(cfg, ti, tl, si, sl, sizeof ti);
        size_t first, count;
        int rc = ps_partition_range(limit(spec->ntrain, cfg->train_limit), nworkers, worker,
                                    &first, &count);
        return rc ? rc : ps_idx_load(ti, tl, first, count, out);
    }
    if (cfg->format == PS_FMT_SYNTH) {
        size_t first, count;
        int rc = ps_partition_range(limit(spec->ntrain, cfg->train_limit), nworkers, worker,
                                    &first, &count);
        return rc ? rc : ps_synth_generate(&cfg->synth, first, count, out);
    }
    uint64_t size, begin, end;
    int rc = ps_libsvm_file_size(cfg->train, &size);
    if (rc || (rc = ps_partition_bytes(size, nworkers, worker, &begin, &end))) {
        return rc;
    }
    ps_libsvm_opts o = svm_opts(cfg, spec);
    return ps_libsvm_load(cfg->train, &o, begin, end, out);
}

int ps_source_load_test(const ps_source_cfg *cfg, const ps_source_spec *spec, ps_dataset *out)
{
    if (is_idx(cfg)) {
        char ti[PS_SOURCE_PATH], tl[PS_SOURCE_PATH], si[PS_SOURCE_PATH], sl[PS_SOURCE_PATH];
        ps_source_paths(cfg, ti, tl, si, sl, sizeof ti);
        return ps_idx_load(si, sl, 0, limit(spec->ntest, cfg->test_limit), out);
    }
    if (cfg->format == PS_FMT_SYNTH) {
        return ps_synth_generate(&cfg->synth, spec->ntrain, limit(spec->ntest, cfg->test_limit),
                                 out);
    }
    ps_libsvm_opts o = svm_opts(cfg, spec);
    int rc = ps_libsvm_load(cfg->test, &o, 0, UINT64_MAX, out);
    if (rc == 0) {
        out->n = limit(out->n, cfg->test_limit); /* rows past the limit stay allocated, unused */
    }
    return rc;
}
