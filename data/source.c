#include "data/source.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "data/fhash.h"
#include "data/idx.h"
#include "data/libsvm.h"
#include "common/log.h"
#include "data/partition.h"
#include "data/synth.h"

static size_t limit(uint64_t n, uint64_t lim)
{
    return (size_t)(lim && lim < n ? lim : n);
}

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
                        .max_dim = cfg->max_dim,
                        .nclasses = spec ? spec->nclasses : 0,
                        .hash_bits = cfg->hash_bits,
                        .zero_based = cfg->zero_based};
    return o;
}

/* What one streaming pass over part of a libsvm file saw. */
typedef struct {
    uint64_t rows, nnz, max_nnz;
    uint64_t end; /* byte offset just past the last row read */
    uint64_t dim;
    uint32_t nclasses;
} sample_stats;

/* Reads the rows of path that start in [0, end), at most max_rows of them
 * (0: no limit), a chunk at a time, keeping only counts. */
static int read_sample(const char *path, const ps_libsvm_opts *o, uint64_t end, uint64_t max_rows,
                       sample_stats *st)
{
    ps_libsvm *r = NULL;
    ps_dataset chunk = {0};
    memset(st, 0, sizeof *st);
    int rc = ps_libsvm_open(&r, path, o, 0, end);
    while (rc == 0 && (max_rows == 0 || st->rows < max_rows)) {
        uint64_t want = max_rows && max_rows - st->rows < 65536 ? max_rows - st->rows : 65536;
        if ((rc = ps_libsvm_next(r, (size_t)want, &chunk))) {
            break;
        }
        for (size_t i = 0; i < chunk.n; i++) {
            uint64_t k = chunk.indptr[i + 1] - chunk.indptr[i];
            st->max_nnz = k > st->max_nnz ? k : st->max_nnz;
        }
        st->rows += chunk.n;
        st->nnz += chunk.indptr[chunk.n] - chunk.indptr[0];
        st->dim = chunk.dim;
        st->nclasses = chunk.nclasses;
    }
    if (r && (rc == 0 || rc == PS_EEOF)) {
        st->end = ps_libsvm_offset(r);
        rc = 0;
    }
    ps_libsvm_close(&r);
    ps_dataset_fini(&chunk);
    return rc;
}

int ps_source_is_libsvm(const ps_source_cfg *cfg)
{
    return cfg->format != PS_FMT_SYNTH && !is_idx(cfg);
}

/* Worker's byte range of the training lines [0, spec->train_bytes). */
static int train_range(const ps_source_cfg *cfg, const ps_source_spec *spec, uint32_t worker,
                       uint32_t nworkers, uint64_t *begin, uint64_t *end)
{
    uint64_t size = spec->train_bytes;
    int rc = size ? 0 : ps_libsvm_file_size(cfg->train, &size);
    return rc ? rc : ps_partition_bytes(size, nworkers, worker, begin, end);
}

int ps_source_open_train_stream(const ps_source_cfg *cfg, const ps_source_spec *spec,
                                uint32_t worker, uint32_t nworkers, ps_libsvm **r, uint64_t *bytes)
{
    uint64_t begin, end;
    int rc = train_range(cfg, spec, worker, nworkers, &begin, &end);
    if (rc) {
        return rc;
    }
    *bytes = end - begin;
    ps_libsvm_opts o = svm_opts(cfg, spec);
    return ps_libsvm_open(r, cfg->train, &o, begin, end);
}

static int probe_idx(const ps_source_cfg *cfg, ps_source_spec *spec)
{
    char ti[PS_SOURCE_PATH], tl[PS_SOURCE_PATH], si[PS_SOURCE_PATH], sl[PS_SOURCE_PATH];
    ps_source_paths(cfg, ti, tl, si, sl, sizeof ti);
    size_t n, dim, nt, dimt, nl, nlt;
    uint32_t c, ct;
    int rc = ps_idx_probe(ti, &n, &dim);
    if (rc || (rc = ps_idx_probe(si, &nt, &dimt)) || (rc = ps_idx_scan_labels(tl, &nl, &c)) ||
        (rc = ps_idx_scan_labels(sl, &nlt, &ct))) {
        return rc;
    }
    if (dim != dimt) {
        PS_LOG(ERROR, "%s has %zu features per image but %s has %zu", ti, dim, si, dimt);
        return PS_EFORMAT;
    }
    if (nl != n || nlt != nt) {
        PS_LOG(ERROR, "%s has %zu labels but %s has %zu images", nl != n ? tl : sl,
               nl != n ? nl : nlt, nl != n ? ti : si, nl != n ? n : nt);
        return PS_EFORMAT;
    }
    if (n == 0) {
        PS_LOG(ERROR, "%s: no samples (its header says 0): the training set is empty", ti);
        return PS_EFORMAT;
    }
    spec->dim = dim;
    /* The classes the labels use, not a fixed 10: labels 0..4 make 5. */
    spec->nclasses = c > ct ? c : ct;
    spec->nclasses = spec->nclasses < 2 ? 2 : spec->nclasses;
    spec->ntrain = limit(n, cfg->train_limit);
    spec->ntest = limit(nt, cfg->test_limit);
    return 0;
}

static int probe_synth(const ps_source_cfg *cfg, ps_source_spec *spec)
{
    int rc = ps_synth_check(&cfg->synth);
    if (rc == 0 && cfg->synth_test >= cfg->synth.n) {
        PS_LOG(ERROR,
               "--synthetic: test=%llu leaves none of its rows=%llu for training: the training "
               "set is empty",
               (unsigned long long)cfg->synth_test, (unsigned long long)cfg->synth.n);
        rc = PS_ECONFIG;
    }
    if (rc == 0 && cfg->hash_bits) {
        rc = ps_fhash_check_bits(cfg->hash_bits);
    }
    if (rc) {
        return rc;
    }
    spec->dim = cfg->hash_bits ? (uint64_t)1 << cfg->hash_bits : cfg->synth.nfeatures;
    spec->nclasses = cfg->synth.nclasses;
    spec->ntest = limit(cfg->synth_test, cfg->test_limit);
    spec->ntrain = limit(cfg->synth.n - cfg->synth_test, cfg->train_limit);
    spec->sample_rows = 1;
    spec->sample_nnz = spec->max_nnz = cfg->synth.nnz;
    spec->test_nnz = spec->ntest * cfg->synth.nnz;
    return 0;
}

/* With --hash-bits or --features the table's shape is known, so only the
 * head of the training file is read (classes, row sizes, early syntax
 * errors); the line count is not needed, since workers split the file by
 * bytes and count their own rows. Without either, one pass over the whole
 * file finds the largest id. With train_limit, the first train_limit
 * samples are the training set and only they are read. */
static int probe_libsvm(const ps_source_cfg *cfg, ps_source_spec *spec)
{
    uint64_t size;
    sample_stats tr, te;
    int known = cfg->hash_bits || cfg->features;
    int rc = ps_libsvm_file_size(cfg->train, &size);
    if (rc) {
        return rc;
    }
    ps_libsvm_opts o = svm_opts(cfg, NULL);
    uint64_t end = known && !cfg->train_limit && size > PS_SOURCE_HEAD_BYTES ? PS_SOURCE_HEAD_BYTES
                                                                             : UINT64_MAX;
    if (!known && !cfg->quiet) {
        PS_LOG(INFO,
               "scanning %s (%llu bytes%s) for its largest feature id: give --hash-bits B or "
               "--features N to skip this",
               cfg->train, (unsigned long long)size,
               cfg->train_limit ? ", up to --train-limit samples" : "");
    }
    if ((rc = read_sample(cfg->train, &o, end, cfg->train_limit, &tr)) ||
        (rc = read_sample(cfg->test, &o, UINT64_MAX, cfg->test_limit, &te))) {
        return rc;
    }
    int whole = end == UINT64_MAX; /* every training row to be used was read */
    if (whole && tr.rows == 0) {
        PS_LOG(ERROR,
               "%s: no samples (%llu bytes of blank or comment lines): the training set "
               "is empty",
               cfg->train, (unsigned long long)size);
        return PS_EFORMAT;
    }
    spec->dim = cfg->hash_bits    ? (uint64_t)1 << cfg->hash_bits
                : cfg->features   ? cfg->features
                : tr.dim > te.dim ? tr.dim
                                  : te.dim;
    spec->dim = spec->dim ? spec->dim : 1; /* labels only: just the bias */
    spec->nclasses = tr.nclasses > te.nclasses ? tr.nclasses : te.nclasses;
    spec->nclasses = spec->nclasses < 2 ? 2 : spec->nclasses;
    spec->ntrain = whole ? tr.rows : 0;
    spec->ntest = te.rows;
    spec->train_bytes = cfg->train_limit && tr.rows == cfg->train_limit ? tr.end : size;
    spec->sample_rows = tr.rows + te.rows;
    spec->sample_nnz = tr.nnz + te.nnz;
    spec->sample_bytes = tr.end + te.end;
    spec->max_nnz = tr.max_nnz > te.max_nnz ? tr.max_nnz : te.max_nnz;
    spec->test_nnz = te.nnz;
    return 0;
}

int ps_source_probe(const ps_source_cfg *cfg, ps_source_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    if (is_idx(cfg)) {
        return probe_idx(cfg, spec);
    }
    spec->sparse = 1;
    return cfg->format == PS_FMT_SYNTH ? probe_synth(cfg, spec) : probe_libsvm(cfg, spec);
}

/* Hashes the ids of every row of the sparse d into 2^bits rows in place
 * (rows only shrink: colliding ids merge), as the libsvm reader does. */
static void hash_rows(ps_dataset *d, unsigned bits)
{
    uint64_t to = d->indptr[0];
    for (size_t i = 0; i < d->n; i++) {
        uint64_t from = d->indptr[i], n = d->indptr[i + 1] - from;
        memmove(d->idx + to, d->idx + from, n * sizeof *d->idx);
        memmove(d->val + to, d->val + from, n * sizeof *d->val);
        d->indptr[i] = to;
        to += ps_fhash_row(d->idx + to, d->val + to, (size_t)n, bits);
    }
    d->indptr[d->n] = to;
    d->dim = (uint64_t)1 << bits;
}

static int synth_rows(const ps_source_cfg *cfg, uint64_t first, size_t count, ps_dataset *out)
{
    int rc = ps_synth_generate(&cfg->synth, first, count, out);
    if (rc == 0 && cfg->hash_bits) {
        hash_rows(out, cfg->hash_bits);
    }
    return rc;
}

/* Reads up to max_rows (0: all) rows of path starting in [begin, end) into
 * out; out's old arrays go on success. */
static int load_rows(const char *path, const ps_libsvm_opts *o, uint64_t begin, uint64_t end,
                     uint64_t max_rows, ps_dataset *out)
{
    ps_libsvm *r = NULL;
    ps_dataset tmp = {0};
    int rc = ps_libsvm_open(&r, path, o, begin, end);
    if (rc == 0) {
        rc = ps_libsvm_next(r, max_rows && max_rows < SIZE_MAX ? (size_t)max_rows : SIZE_MAX, &tmp);
        rc = rc == PS_EEOF ? 0 : rc;
    }
    if (rc == 0) {
        ps_dataset_fini(out);
        *out = tmp;
        memset(&tmp, 0, sizeof tmp);
    }
    ps_dataset_fini(&tmp);
    ps_libsvm_close(&r);
    return rc;
}

int ps_source_load_train(const ps_source_cfg *cfg, const ps_source_spec *spec, uint32_t worker,
                         uint32_t nworkers, ps_dataset *out)
{
    if (is_idx(cfg) || cfg->format == PS_FMT_SYNTH) {
        size_t first, count;
        int rc = ps_partition_range(limit(spec->ntrain, cfg->train_limit), nworkers, worker, &first,
                                    &count);
        if (rc || cfg->format == PS_FMT_SYNTH) {
            return rc ? rc : synth_rows(cfg, first, count, out);
        }
        char ti[PS_SOURCE_PATH], tl[PS_SOURCE_PATH], si[PS_SOURCE_PATH], sl[PS_SOURCE_PATH];
        ps_source_paths(cfg, ti, tl, si, sl, sizeof ti);
        return ps_idx_load_classes(ti, tl, first, count, spec->nclasses, out);
    }
    uint64_t begin, end;
    int rc = train_range(cfg, spec, worker, nworkers, &begin, &end);
    ps_libsvm_opts o = svm_opts(cfg, spec);
    return rc ? rc : load_rows(cfg->train, &o, begin, end, 0, out);
}

int ps_source_load_test(const ps_source_cfg *cfg, const ps_source_spec *spec, ps_dataset *out)
{
    if (is_idx(cfg)) {
        char ti[PS_SOURCE_PATH], tl[PS_SOURCE_PATH], si[PS_SOURCE_PATH], sl[PS_SOURCE_PATH];
        ps_source_paths(cfg, ti, tl, si, sl, sizeof ti);
        return ps_idx_load_classes(si, sl, 0, limit(spec->ntest, cfg->test_limit), spec->nclasses,
                                   out);
    }
    if (cfg->format == PS_FMT_SYNTH) {
        return synth_rows(cfg, cfg->synth.n - cfg->synth_test, limit(spec->ntest, cfg->test_limit),
                          out);
    }
    ps_libsvm_opts o = svm_opts(cfg, spec);
    return load_rows(cfg->test, &o, 0, UINT64_MAX, cfg->test_limit, out);
}
