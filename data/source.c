#include "data/source.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "data/fhash.h"
#include "data/holdout.h"
#include "data/idx.h"
#include "data/labels.h"
#include "data/libsvm.h"
#include "data/partition.h"
#include "data/synth.h"

/* Rows per piece when the held-out samples of indexed data are gathered
 * for evaluation: the pass never holds more of the training set. */
#define HOLDOUT_PIECE 16384

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

/* --labels given (a NULL string, from a config built by hand, is not). */
static int has_labels(const ps_source_cfg *cfg)
{
    return cfg->labels && cfg->labels[0];
}

static ps_holdout holdout_of(const ps_source_cfg *cfg)
{
    ps_holdout h = {.fraction = cfg->holdout, .seed = cfg->seed};
    return h;
}

/* The reader options for cfg's data of shape spec (NULL: the probe, which
 * finds the labels unless cfg lists them in `given`), on the training side
 * of the holdout unless keep_held. */
static ps_libsvm_opts svm_opts(const ps_source_cfg *cfg, const ps_source_spec *spec,
                               const ps_labels *given, int keep_held)
{
    ps_libsvm_opts o = {.dim = spec ? spec->dim : cfg->features,
                        .max_dim = cfg->max_dim,
                        .hash_bits = cfg->hash_bits,
                        .zero_based = cfg->zero_based,
                        .holdout = holdout_of(cfg),
                        .holdout_keep = keep_held};
    if (spec && spec->nlabels) {
        o.labels = spec->labels;
        o.nlabels = spec->nlabels;
    } else if (spec) {
        o.nclasses = spec->nclasses;
    } else if (given && given->n) {
        o.labels = given->v;
        o.nlabels = (uint32_t)given->n;
    }
    /* A label the probe did not see can only come from the part of the
     * training file it did not read. */
    if (spec && !spec->ntrain && spec->train_bytes && !has_labels(cfg)) {
        o.labels_hint = "the start-up probe read only the head of the training file (with "
                        "--hash-bits or --features): list every label with --labels L1,L2,...";
    }
    return o;
}

/* What one streaming pass over part of a libsvm file saw. */
typedef struct {
    uint64_t rows, nnz, max_nnz;
    uint64_t end; /* byte offset just past the last row read */
    uint64_t dim;
} sample_stats;

/* Reads the rows of path that start in [0, end), at most max_rows of them
 * (0: no limit), a chunk at a time, keeping only counts, and the labels
 * found (discovery) in labels. */
static int read_sample(const char *path, const ps_libsvm_opts *o, uint64_t end, uint64_t max_rows,
                       sample_stats *st, ps_labels *labels)
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
    }
    if (r && (rc == 0 || rc == PS_EEOF)) {
        size_t n = 0;
        const int32_t *seen = ps_libsvm_labels(r, &n);
        st->end = ps_libsvm_offset(r);
        rc = ps_labels_add_all(labels, seen, n);
    }
    ps_libsvm_close(&r);
    ps_dataset_fini(&chunk);
    return rc;
}

int ps_source_is_libsvm(const ps_source_cfg *cfg)
{
    return cfg->format != PS_FMT_SYNTH && !is_idx(cfg);
}

/* Worker's part of the training lines [0, spec->train_bytes): a byte range,
 * or for gzip the whole text, of which it keeps every nworkers-th line
 * (*nparts = nworkers). */
static int train_range(const ps_source_cfg *cfg, const ps_source_spec *spec, uint32_t worker,
                       uint32_t nworkers, uint64_t *begin, uint64_t *end, uint32_t *nparts)
{
    uint64_t size = spec->train_bytes;
    *nparts = 1;
    if (spec->train_gzip) {
        if (nworkers == 0 || worker >= nworkers) {
            PS_LOG(ERROR, "%s: worker %u not in [0, %u)", cfg->train, worker, nworkers);
            return PS_EINVAL;
        }
        *begin = 0;
        *end = size ? size : UINT64_MAX;
        *nparts = nworkers;
        return 0;
    }
    int rc = size ? 0 : ps_libsvm_file_size(cfg->train, &size);
    return rc ? rc : ps_partition_bytes(size, nworkers, worker, begin, end);
}

/* Opens worker's part of the training file (held-out lines skipped). */
static int open_train(const ps_source_cfg *cfg, const ps_source_spec *spec, uint32_t worker,
                      uint32_t nworkers, ps_libsvm **r, uint64_t *bytes)
{
    uint64_t begin, end;
    uint32_t nparts;
    int rc = train_range(cfg, spec, worker, nworkers, &begin, &end, &nparts);
    if (rc) {
        return rc;
    }
    *bytes = nparts > 1 ? spec->train_bytes / nparts : end - begin;
    ps_libsvm_opts o = svm_opts(cfg, spec, NULL, 0);
    o.part = nparts > 1 ? worker : 0;
    o.nparts = nparts;
    return ps_libsvm_open(r, cfg->train, &o, begin, end);
}

int ps_source_open_train_stream(const ps_source_cfg *cfg, const ps_source_spec *spec,
                                uint32_t worker, uint32_t nworkers, ps_libsvm **r, uint64_t *bytes)
{
    return open_train(cfg, spec, worker, nworkers, r, bytes);
}

static int probe_idx(const ps_source_cfg *cfg, ps_source_spec *spec)
{
    char ti[PS_SOURCE_PATH], tl[PS_SOURCE_PATH], si[PS_SOURCE_PATH], sl[PS_SOURCE_PATH];
    ps_source_paths(cfg, ti, tl, si, sl, sizeof ti);
    if (cfg->holdout > 0) {
        /* The held-out training images stand for the test files. */
        memcpy(si, ti, sizeof si);
        memcpy(sl, tl, sizeof sl);
    }
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

/* Rows [0, n) of indexed data held out under cfg's holdout. */
static uint64_t count_held(const ps_source_cfg *cfg, uint64_t n)
{
    ps_holdout h = holdout_of(cfg);
    uint64_t held = 0;
    for (uint64_t i = 0; h.fraction > 0 && i < n; i++) {
        held += (uint64_t)ps_holdout_is_held(&h, i);
    }
    return held;
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
    spec->ntrain = limit(cfg->synth.n - cfg->synth_test, cfg->train_limit);
    spec->ntest =
        limit(cfg->holdout > 0 ? count_held(cfg, spec->ntrain) : cfg->synth_test, cfg->test_limit);
    spec->sample_rows = 1;
    spec->sample_nnz = spec->max_nnz = cfg->synth.nnz;
    spec->test_nnz = spec->ntest * cfg->synth.nnz;
    return 0;
}

/* The classes of a libsvm job from the labels found (or given): the class
 * ids themselves when they are 0..C-1, else the list. */
static int set_classes(const ps_source_cfg *cfg, const ps_labels *found, ps_source_spec *spec)
{
    char list[160];
    ps_labels_format(found->v, found->n, list, sizeof list);
    if (found->n < 2) {
        PS_LOG(ERROR,
               "%s%s%s: %s label%s (%s): a classifier needs at least two (give --labels to name "
               "them all when the probe did not see them)",
               cfg->train, cfg->holdout > 0 ? "" : " and ", cfg->holdout > 0 ? "" : cfg->test,
               found->n ? "a single" : "no", found->n ? "" : "s", list);
        return PS_EFORMAT;
    }
    spec->nclasses = (uint32_t)found->n;
    if (ps_labels_is_identity(found->v, found->n)) {
        spec->nlabels = 0;
        return 0;
    }
    if (found->n > PS_SOURCE_MAX_LABELS) {
        PS_LOG(ERROR,
               "%s: %zu distinct labels (%s): at most %d unless they are 0..C-1; renumber them",
               cfg->train, found->n, list, PS_SOURCE_MAX_LABELS);
        return PS_EFORMAT;
    }
    spec->nlabels = (uint32_t)found->n;
    memcpy(spec->labels, found->v, found->n * sizeof *found->v);
    return 0;
}

/* Scales a count seen in the first `seen` bytes to `total` bytes. */
static uint64_t scale_to(uint64_t count, uint64_t seen, uint64_t total)
{
    return seen ? (uint64_t)((double)count * (double)total / (double)seen) : count;
}

/* With --hash-bits or --features the table's shape is known, so only the
 * head of the training file is read (labels, row sizes, early syntax
 * errors); the line count is not needed, since workers split the file by
 * bytes and count their own rows. Without either, one pass over the whole
 * file finds the largest id. With train_limit, the first train_limit
 * samples are the training set and only they are read. A gzip file is read
 * whole (its decompressed size splits it). With holdout, the held-out
 * samples of the same part are the test sample (scaled up when only the
 * head was read). */
static int probe_libsvm(const ps_source_cfg *cfg, ps_source_spec *spec, ps_labels *found)
{
    uint64_t size;
    sample_stats tr, te;
    int known = cfg->hash_bits || cfg->features, gz = 0;
    int rc = ps_libsvm_file_size(cfg->train, &size);
    if (rc || (rc = ps_libsvm_is_gzip(cfg->train, &gz))) {
        return rc;
    }
    if (has_labels(cfg) && (rc = ps_labels_parse(cfg->labels, found, NULL, 0))) {
        PS_LOG(ERROR, "--labels '%s' is not a list of distinct integer labels", cfg->labels);
        return rc == PS_ENOMEM ? rc : PS_ECONFIG;
    }
    ps_libsvm_opts o = svm_opts(cfg, NULL, found, 0);
    uint64_t end = known && !cfg->train_limit && !gz && size > PS_SOURCE_HEAD_BYTES
                       ? PS_SOURCE_HEAD_BYTES
                       : UINT64_MAX;
    if ((!known || gz) && !cfg->quiet) {
        PS_LOG(INFO, "scanning %s (%llu bytes%s%s)%s", cfg->train, (unsigned long long)size,
               gz ? " of gzip" : "", cfg->train_limit ? ", up to --train-limit samples" : "",
               known ? ": its decompressed size splits it over the workers"
                     : " for its largest feature id: give --hash-bits B or --features N to skip "
                       "this");
    }
    if ((rc = read_sample(cfg->train, &o, end, cfg->train_limit, &tr, found))) {
        return rc;
    }
    int whole = end == UINT64_MAX; /* every training row to be used was read */
    if (cfg->holdout > 0) {
        /* The held-out samples among the rows just read: the same bytes. */
        o.holdout_keep = 1;
        rc = read_sample(cfg->train, &o, whole ? tr.end : end, cfg->test_limit, &te, found);
        if (rc == 0 && !whole) {
            te.rows = scale_to(te.rows, tr.end, size);
            te.nnz = scale_to(te.nnz, tr.end, size);
            te.rows = cfg->test_limit && te.rows > cfg->test_limit ? cfg->test_limit : te.rows;
        }
        te.end = 0; /* its bytes are the training sample's */
    } else {
        rc = read_sample(cfg->test, &o, UINT64_MAX, cfg->test_limit, &te, found);
    }
    if (rc) {
        return rc;
    }
    if (whole && tr.rows == 0) {
        PS_LOG(ERROR,
               "%s: no samples (%llu bytes of blank or comment lines%s): the training set "
               "is empty",
               cfg->train, (unsigned long long)size, cfg->holdout > 0 ? ", or held out" : "");
        return PS_EFORMAT;
    }
    spec->dim = cfg->hash_bits    ? (uint64_t)1 << cfg->hash_bits
                : cfg->features   ? cfg->features
                : tr.dim > te.dim ? tr.dim
                                  : te.dim;
    spec->dim = spec->dim ? spec->dim : 1; /* labels only: just the bias */
    if ((rc = set_classes(cfg, found, spec))) {
        return rc;
    }
    spec->train_gzip = gz;
    spec->ntrain = whole ? tr.rows : 0;
    spec->ntest = te.rows;
    /* gzip: the decompressed end; plain: the file, or its first samples. */
    spec->train_bytes = gz || (cfg->train_limit && tr.rows == cfg->train_limit) ? tr.end : size;
    spec->sample_rows = tr.rows + te.rows;
    spec->sample_nnz = tr.nnz + te.nnz;
    spec->sample_bytes = tr.end + te.end;
    spec->max_nnz = tr.max_nnz > te.max_nnz ? tr.max_nnz : te.max_nnz;
    spec->test_nnz = te.nnz;
    return 0;
}

int ps_source_probe(const ps_source_cfg *cfg, ps_source_spec *spec)
{
    int rc = 0;
    memset(spec, 0, sizeof *spec);
    if (is_idx(cfg)) {
        rc = probe_idx(cfg, spec);
        /* Held-out training rows stand for the test files. */
        if (rc == 0 && cfg->holdout > 0) {
            spec->ntest = limit(count_held(cfg, spec->ntrain), cfg->test_limit);
        }
        return rc;
    }
    spec->sparse = 1;
    if (cfg->format == PS_FMT_SYNTH) {
        return probe_synth(cfg, spec);
    }
    ps_labels found = {0};
    rc = probe_libsvm(cfg, spec, &found);
    ps_labels_fini(&found);
    return rc;
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

/* Rows [first, first + count) of cfg's indexed data (IDX, synthetic). */
static int indexed_rows(const ps_source_cfg *cfg, const ps_source_spec *spec, int test,
                        uint64_t first, size_t count, ps_dataset *out)
{
    if (cfg->format == PS_FMT_SYNTH) {
        int rc = ps_synth_generate(&cfg->synth, first, count, out);
        if (rc == 0 && cfg->hash_bits) {
            hash_rows(out, cfg->hash_bits);
        }
        return rc;
    }
    char ti[PS_SOURCE_PATH], tl[PS_SOURCE_PATH], si[PS_SOURCE_PATH], sl[PS_SOURCE_PATH];
    ps_source_paths(cfg, ti, tl, si, sl, sizeof ti);
    return ps_idx_load_classes(test ? si : ti, test ? sl : tl, first, count, spec->nclasses, out);
}

/* The held-out rows of indexed training rows [0, spec->ntrain), at most
 * max (0: all), gathered piece by piece into out (its old arrays go on
 * success). */
static int indexed_held(const ps_source_cfg *cfg, const ps_source_spec *spec, uint64_t max,
                        ps_dataset *out)
{
    ps_dataset all = {0}, piece = {0};
    ps_holdout h = holdout_of(cfg);
    int rc = 0;
    for (uint64_t first = 0; rc == 0 && first < spec->ntrain && (!max || all.n < max);
         first += HOLDOUT_PIECE) {
        size_t n =
            (size_t)(spec->ntrain - first < HOLDOUT_PIECE ? spec->ntrain - first : HOLDOUT_PIECE);
        if ((rc = indexed_rows(cfg, spec, 0, first, n, &piece)) == 0) {
            ps_holdout_filter(&h, &piece, first, 1);
            piece.n = max && piece.n > max - all.n ? (size_t)(max - all.n) : piece.n;
            rc = ps_holdout_append(&all, &piece);
        }
    }
    if (rc == 0) {
        all.nclasses = spec->nclasses;
        all.dim = spec->dim;
        ps_dataset_fini(out);
        *out = all;
        memset(&all, 0, sizeof all);
    }
    ps_dataset_fini(&all);
    ps_dataset_fini(&piece);
    return rc;
}

/* Reads up to max_rows (0: all) rows from r into out; out's old arrays go
 * on success. With ignore_past_dim, the ids dropped are one warning. */
static int load_rows(ps_libsvm *r, const char *path, const ps_source_spec *spec, uint64_t max_rows,
                     ps_dataset *out)
{
    ps_dataset tmp = {0};
    int rc = ps_libsvm_next(r, max_rows && max_rows < SIZE_MAX ? (size_t)max_rows : SIZE_MAX, &tmp);
    rc = rc == PS_EEOF ? 0 : rc;
    uint64_t ids = 0, rows = 0;
    ps_libsvm_ignored(r, &ids, &rows);
    if (rc == 0 && ids) {
        PS_LOG(WARN,
               "%s: ignored %llu feature ids in %llu samples that are past the model's %llu "
               "features (as LIBLINEAR does)",
               path, (unsigned long long)ids, (unsigned long long)rows,
               (unsigned long long)spec->dim);
    }
    if (rc == 0) {
        ps_dataset_fini(out);
        *out = tmp;
        memset(&tmp, 0, sizeof tmp);
    }
    ps_dataset_fini(&tmp);
    return rc;
}

int ps_source_load_train(const ps_source_cfg *cfg, const ps_source_spec *spec, uint32_t worker,
                         uint32_t nworkers, ps_dataset *out)
{
    int rc = 0;
    if (is_idx(cfg) || cfg->format == PS_FMT_SYNTH) {
        size_t first, count;
        rc = ps_partition_range(limit(spec->ntrain, cfg->train_limit), nworkers, worker, &first,
                                &count);
        if (rc == 0 && (rc = indexed_rows(cfg, spec, 0, first, count, out)) == 0) {
            ps_holdout h = holdout_of(cfg);
            ps_holdout_filter(&h, out, first, 0);
        }
        return rc;
    }
    ps_libsvm *r = NULL;
    uint64_t bytes;
    if ((rc = open_train(cfg, spec, worker, nworkers, &r, &bytes)) == 0) {
        rc = load_rows(r, cfg->train, spec, 0, out);
    }
    ps_libsvm_close(&r);
    return rc;
}

int ps_source_load_test(const ps_source_cfg *cfg, const ps_source_spec *spec, ps_dataset *out)
{
    int rc = 0;
    int held = cfg->holdout > 0;
    if (is_idx(cfg) || cfg->format == PS_FMT_SYNTH) {
        if (held) {
            return indexed_held(cfg, spec, cfg->test_limit, out);
        }
        uint64_t first = cfg->format == PS_FMT_SYNTH ? cfg->synth.n - cfg->synth_test : 0;
        return indexed_rows(cfg, spec, 1, first, limit(spec->ntest, cfg->test_limit), out);
    }
    /* The held-out lines of the training text, every one of them (no
     * line parts: one reader), or the test file. */
    ps_libsvm_opts o = svm_opts(cfg, spec, NULL, held);
    o.ignore_past_dim = cfg->ignore_past_dim;
    ps_libsvm *r = NULL;
    const char *path = held ? cfg->train : cfg->test;
    uint64_t end = held && spec->train_bytes ? spec->train_bytes : UINT64_MAX;
    if ((rc = ps_libsvm_open(&r, path, &o, 0, end)) == 0) {
        rc = load_rows(r, path, spec, cfg->test_limit, out);
    }
    ps_libsvm_close(&r);
    return rc;
}
