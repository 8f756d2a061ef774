#include "worker/predict.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/afile.h"
#include "common/err.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"
#include "data/fhash.h"
#include "data/labels.h"
#include "data/source.h"
#include "worker/export.h"

/* model.bin's payload is little-endian float32, read as it lies in memory. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "worker/predict.c reads model.bin's floats as they are in memory and assumes little-endian"
#endif

#define MAX_TABLES PS_MODEL_MAX_TABLES
#define PATH_LEN (PS_SOURCE_PATH + 320)

struct ps_predictor {
    ps_model *model;
    uint32_t hash_bits;
    uint32_t nlabels; /* 0: class c is label c */
    int32_t labels[PS_FILE_MAX_LABELS];
    uint32_t ntables;
    float *table[MAX_TABLES];  /* whole tables, rows x width, from model.bin */
    float *gather[MAX_TABLES]; /* one chunk's rows of a table the chunk needs only part of */
    size_t gather_cap[MAX_TABLES];
    const float *params[MAX_TABLES];
    ps_keylist keys[MAX_TABLES];
};

/* ---- loading ---- */

/* Logs "path: field "field": why" and returns PS_EFORMAT. */
static int bad_field(const char *path, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad_field(const char *path, const char *field, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    PS_LOG(ERROR, "%s: field \"%s\": %s", path, field, why);
    return PS_EFORMAT;
}

/* The model config in model.bin's ModelInfo (no dropout, batches of one
 * chunk) and the tables it implies (want[0..*nt)), checked against the
 * header's tables and payload size. */
static int check_header(const char *path, const ps_file_header *h, ps_model_cfg *mc,
                        ps_table_desc *want, uint32_t *nt)
{
    const ps_file_model *fm = &h->model;
    if (strcmp(h->kind, "model") != 0) {
        return bad_field(path, "kind", "\"%s\": not a saved model (expected \"model\")", h->kind);
    }
    if (!h->has_model) {
        return bad_field(path, "model", "missing: the header does not describe a model");
    }
    char bad[32], why[160];
    if (ps_model_info_read(fm, mc, bad, sizeof bad, why, sizeof why)) {
        return bad_field(path, bad, "%s", why);
    }
    if (!ps_model_has_accuracy(mc->kind)) {
        return bad_field(path, "model.kind",
                         "\"%s\": a vae has no classes to predict (its test ELBO is the "
                         "training run's test_loss)",
                         fm->kind);
    }
    if (fm->hash_bits > PS_FHASH_MAX_BITS ||
        (fm->hash_bits && (!fm->sparse_input || fm->in_dim != UINT64_C(1) << fm->hash_bits))) {
        return bad_field(path, "model.hash_bits",
                         "%u does not fit in_dim %" PRIu64 " (want 2^hash_bits <= 2^%u, sparse "
                         "input)",
                         fm->hash_bits, fm->in_dim, PS_FHASH_MAX_BITS);
    }
    if (fm->hash_fingerprint != ps_export_hash_fingerprint(fm->hash_bits)) {
        return bad_field(path, "model.hash_fingerprint",
                         "%016" PRIx64 ", but this build's feature hash gives %016" PRIx64
                         ": the model was trained with another hash",
                         fm->hash_fingerprint, ps_export_hash_fingerprint(fm->hash_bits));
    }
    if (fm->nlabels && fm->nlabels != fm->nclasses) {
        return bad_field(path, "model.labels", "%u labels for %u classes", fm->nlabels,
                         fm->nclasses);
    }
    for (uint32_t i = 1; i < fm->nlabels; i++) {
        if (fm->labels[i] <= fm->labels[i - 1]) {
            return bad_field(path, "model.labels", "not ascending at %u (%d after %d)", i,
                             fm->labels[i], fm->labels[i - 1]);
        }
    }
    mc->max_batch = PS_PREDICT_CHUNK;
    if (ps_model_tables(mc, want, MAX_TABLES, nt)) {
        return bad_field(path, "model", "describes a model adamps cannot build (reason above)");
    }
    if (h->ntables != *nt) {
        return bad_field(path, "tables", "%zu tables, but this %s model has %u", h->ntables,
                         fm->kind, *nt);
    }
    uint64_t bytes = 0;
    for (uint32_t t = 0; t < *nt; t++) {
        const ps_file_table *s = &h->tables[t];
        const ps_table_desc *d = &want[t];
        char field[32];
        snprintf(field, sizeof field, "tables[%u]", t);
        if (strcmp(s->name, d->name) != 0 || s->rows != d->rows || s->width != d->width) {
            return bad_field(path, field,
                             "table '%s' %" PRIu64 " x %u, but the model needs '%s' %" PRIu64
                             " x %u here",
                             s->name, s->rows, s->width, d->name, d->rows, d->width);
        }
        if (s->first_slot != 0 || s->nslots != s->rows || s->nstate != 1) {
            return bad_field(path, field,
                             "slots [%" PRIu64 ", +%" PRIu64 ") with %u state arrays, but a "
                             "model holds every row once",
                             s->first_slot, s->nslots, s->nstate);
        }
        /* ps_model_tables bounds rows (in_dim <= 2^56) and width (< 2^31),
         * but not their product. */
        if (d->rows > (UINT64_MAX - bytes) / sizeof(float) / d->width) {
            return bad_field(path, field, "%" PRIu64 " x %u floats overflow 64 bits", d->rows,
                             d->width);
        }
        bytes += d->rows * d->width * sizeof(float);
    }
    if (h->payload_bytes != bytes) {
        return bad_field(path, "payload_bytes",
                         "%" PRIu64 ", but the tables hold %" PRIu64 " bytes of float32",
                         h->payload_bytes, bytes);
    }
    return 0;
}

/* Reads the tables want[0..nt) from r, then checks every weight: after the
 * last read, so a corrupt byte is reported as a CRC error, not as whatever
 * value it happened to make. */
static int load_tables(ps_predictor *p, ps_file_reader *r, const char *path,
                       const ps_table_desc *want, uint32_t nt)
{
    for (uint32_t t = 0; t < nt; t++) {
        uint64_t n = want[t].rows * want[t].width;
        if (n > SIZE_MAX / sizeof(float) || !(p->table[t] = ps_malloc((size_t)n * sizeof(float)))) {
            PS_LOG(ERROR, "%s: out of memory for table %s (%" PRIu64 " floats)", path, want[t].name,
                   n);
            return PS_ENOMEM;
        }
        p->ntables = t + 1;
        int rc = ps_file_read_payload(r, p->table[t], (size_t)n * sizeof(float));
        if (rc) {
            return rc;
        }
    }
    for (uint32_t t = 0; t < nt; t++) {
        size_t n = (size_t)(want[t].rows * want[t].width);
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(p->table[t][i])) {
                char field[64];
                snprintf(field, sizeof field, "tables[%u] (%s)", t, want[t].name);
                return bad_field(path, field, "non-finite weight %g at row %zu, column %zu",
                                 (double)p->table[t][i], i / want[t].width, i % want[t].width);
            }
        }
    }
    return 0;
}

int ps_predict_create(ps_predictor **out, const char *dir)
{
    int rc = 0;
    char path[PATH_LEN];
    ps_file_header h = {0};
    ps_file_reader *r = NULL;
    ps_predictor *p = NULL;
    ps_model_cfg mc;
    ps_table_desc want[MAX_TABLES];
    uint32_t nt = 0;
    *out = NULL;
    if (snprintf(path, sizeof path, "%s/model.bin", dir) >= (int)sizeof path) {
        PS_LOG(ERROR, "model directory name is too long: %s", dir);
        rc = PS_ECONFIG;
        goto done;
    }
    if (!(p = ps_calloc(1, sizeof *p))) {
        rc = PS_ENOMEM;
        goto done;
    }
    if ((rc = ps_file_open(&r, path, &h)) || (rc = check_header(path, &h, &mc, want, &nt)) ||
        (rc = load_tables(p, r, path, want, nt)) || (rc = ps_model_create(&p->model, &mc))) {
        goto done;
    }
    p->hash_bits = h.model.hash_bits;
    p->nlabels = h.model.nlabels;
    memcpy(p->labels, h.model.labels, sizeof p->labels);
    *out = p;
    p = NULL;
done:
    /* A framing error (magic, sizes, CRC) is bad input like any other:
     * logged by common/file.c naming the file and the check. */
    rc = rc == PS_ECKPT ? PS_EFORMAT : rc;
    ps_file_close(&r);
    ps_file_header_fini(&h);
    ps_predict_destroy(&p);
    return rc;
}

void ps_predict_destroy(ps_predictor **pp)
{
    if (!pp || !*pp) {
        return;
    }
    ps_predictor *p = *pp;
    for (uint32_t t = 0; t < MAX_TABLES; t++) {
        ps_free(p->table[t]);
        ps_free(p->gather[t]);
    }
    if (p->model) {
        ps_model_keys_fini(p->keys, ps_model_ntables(p->model));
    }
    ps_model_destroy(&p->model);
    ps_free(p);
    *pp = NULL;
}

const ps_model_cfg *ps_predict_model_cfg(const ps_predictor *p)
{
    return ps_model_config(p->model);
}

uint32_t ps_predict_hash_bits(const ps_predictor *p)
{
    return p->hash_bits;
}

int32_t ps_predict_label(const ps_predictor *p, uint32_t c)
{
    return p->nlabels ? p->labels[c] : (int32_t)c;
}

/* ---- scoring ---- */

/* params[t] for the keys of one chunk: row i = table row keys[t].keys[i]. */
static int gather(ps_predictor *p)
{
    for (uint32_t t = 0; t < p->ntables; t++) {
        const ps_table_desc *d = ps_model_table(p->model, t);
        const ps_keylist *k = &p->keys[t];
        /* Sorted unique keys below rows, as many as rows: every row in
         * order, so the table itself is the buffer. */
        if (k->n == d->rows) {
            p->params[t] = p->table[t];
            continue;
        }
        if (k->n > SIZE_MAX / sizeof(float) / d->width) {
            return PS_ENOMEM;
        }
        if (k->n) {
            void *buf = p->gather[t];
            int rc = ps_grow(&buf, &p->gather_cap[t], k->n * d->width, sizeof(float));
            p->gather[t] = buf;
            if (rc) {
                PS_LOG(ERROR, "predict: out of memory gathering %zu rows of table %s", k->n,
                       d->name);
                return rc;
            }
        }
        for (size_t i = 0; i < k->n; i++) {
            memcpy(p->gather[t] + i * d->width, p->table[t] + k->keys[i] * d->width,
                   d->width * sizeof(float));
        }
        p->params[t] = p->gather[t];
    }
    return 0;
}

int ps_predict_score(ps_predictor *p, const ps_batch *b, double *loss_sum, size_t *ncorrect,
                     int32_t *classes)
{
    return ps_predict_score_proba(p, b, loss_sum, ncorrect, classes, NULL);
}

int ps_predict_score_proba(ps_predictor *p, const ps_batch *b, double *loss_sum, size_t *ncorrect,
                           int32_t *classes, float *proba)
{
    uint32_t C = ps_model_config(p->model)->nclasses;
    int rc = 0;
    double lsum = 0.0;
    size_t good = 0;
    for (size_t first = 0; first < b->n && rc == 0; first += PS_PREDICT_CHUNK) {
        ps_batch c = *b;
        c.n = b->n - first < PS_PREDICT_CHUNK ? b->n - first : PS_PREDICT_CHUNK;
        if (b->sparse) {
            c.indptr = b->indptr + first;
        } else {
            c.x = b->x + first * b->dim;
        }
        c.y = b->y + first;
        double ls = 0.0;
        size_t nc = 0;
        if ((rc = ps_model_batch_keys(p->model, &c, p->keys)) || (rc = gather(p)) ||
            (rc = ps_model_evaluate(p->model, &c, p->keys, p->params, &ls, &nc))) {
            break;
        }
        if (classes) {
            rc = ps_model_predict_proba(p->model, &c, p->keys, p->params, classes + first,
                                        proba ? proba + first * C : NULL);
        }
        lsum += ls;
        good += nc;
    }
    *loss_sum = lsum;
    *ncorrect = good;
    return rc;
}

/* ---- the command ---- */

/* Loads the test set cfg names into ds, shaped for p's model; name gets the
 * file to blame in messages (the images, or the libsvm file). */
static int load_test(const ps_predictor *p, const ps_predict_cfg *cfg, ps_dataset *ds, char *name,
                     size_t namelen)
{
    const ps_model_cfg *mc = ps_model_config(p->model);
    const ps_source_cfg *src = &cfg->source;
    ps_source_spec spec;
    memset(&spec, 0, sizeof spec);
    ps_source_cfg sc = *src;
    ps_format fmt = src->dataset[0]              ? PS_FMT_IDX
                    : src->format != PS_FMT_AUTO ? src->format
                                                 : ps_source_guess_format(src->test);
    int rc = 0;
    char ti[PS_SOURCE_PATH], tl[PS_SOURCE_PATH], si[PS_SOURCE_PATH], sl[PS_SOURCE_PATH];
    if (fmt == PS_FMT_IDX) {
        ps_source_paths(src, ti, tl, si, sl, sizeof ti);
        snprintf(name, namelen, "%s", si);
        if (mc->sparse_input) {
            PS_LOG(ERROR,
                   "%s is IDX (dense) data, but the model in %s was trained on sparse "
                   "(libsvm) input",
                   si, cfg->model_dir);
            return PS_ECONFIG;
        }
        /* Probe only the test files: the training set need not be here. */
        sc.dataset = "";
        sc.format = PS_FMT_IDX;
        sc.train = si;
        sc.test = si;
        if ((rc = ps_source_probe(&sc, &spec))) {
            return rc;
        }
        if (spec.dim != mc->in_dim) {
            PS_LOG(ERROR, "%s: %" PRIu64 " values per image, but the model in %s takes %" PRIu64,
                   si, spec.dim, cfg->model_dir, mc->in_dim);
            return PS_EFORMAT;
        }
    } else if (fmt == PS_FMT_LIBSVM) {
        snprintf(name, namelen, "%s", src->test);
        if (!mc->sparse_input) {
            PS_LOG(ERROR,
                   "%s is libsvm (sparse) data, but the model in %s was trained on dense "
                   "(IDX) input",
                   src->test, cfg->model_dir);
            return PS_ECONFIG;
        }
        if (src->hash_bits && src->hash_bits != p->hash_bits) {
            PS_LOG(ERROR, "--hash-bits %u differs from the model's hash_bits %u (%s/model.bin)",
                   src->hash_bits, p->hash_bits, cfg->model_dir);
            return PS_ECONFIG;
        }
        sc.format = PS_FMT_LIBSVM;
        sc.features = mc->in_dim;
        sc.hash_bits = p->hash_bits;
        sc.holdout = 0;
        /* Ids past in_dim are features the model never saw. */
        sc.ignore_past_dim = 1;
        /* The model fixes the shape, so no probe pass over the file: with
         * dim and labels given, the reader itself refuses a label the
         * model has no class for. */
        spec.dim = mc->in_dim;
        spec.nclasses = mc->nclasses;
        spec.nlabels = p->nlabels;
        memcpy(spec.labels, p->labels, p->nlabels * sizeof *spec.labels);
        spec.sparse = 1;
    } else {
        PS_LOG(ERROR, "predict reads IDX or libsvm test files only");
        return PS_ECONFIG;
    }
    if ((rc = ps_source_load_test(&sc, &spec, ds))) {
        return rc;
    }
    for (size_t i = 0; i < ds->n; i++) {
        if (ds->y[i] < 0 || (uint32_t)ds->y[i] >= mc->nclasses) {
            PS_LOG(ERROR, "%s: sample %zu has label %d, but the model has %u classes", name, i,
                   ds->y[i], mc->nclasses);
            return PS_EFORMAT;
        }
    }
    return 0;
}

/* One line per sample: its predicted label, and with proba (C per
 * sample) its class probabilities after a "labels ..." line. */
static int write_predictions(const ps_predictor *p, const char *path, const int32_t *classes,
                             const float *proba, size_t n)
{
    uint32_t C = ps_model_config(p->model)->nclasses;
    ps_afile *f = NULL;
    ps_bytes line = {0};
    int rc = ps_afile_open(&f, path);
    /* The longest line: a label and C probabilities of at most 16 bytes. */
    size_t room = 16 + (size_t)C * 16;
    if (rc == 0 && (rc = PS_GROW(line.data, line.cap, room + 8192)) == 0 && proba) {
        size_t o = (size_t)snprintf((char *)line.data, line.cap, "labels");
        for (uint32_t c = 0; c < C; c++) {
            o += (size_t)snprintf((char *)line.data + o, line.cap - o, " %d",
                                  ps_predict_label(p, c));
        }
        line.data[o++] = '\n';
        rc = ps_afile_write(f, line.data, o);
    }
    for (size_t i = 0, o = 0; rc == 0 && i < n; i++) {
        char *buf = (char *)line.data;
        o += (size_t)snprintf(buf + o, line.cap - o, "%d",
                              ps_predict_label(p, (uint32_t)classes[i]));
        for (uint32_t c = 0; proba && c < C; c++) {
            o += (size_t)snprintf(buf + o, line.cap - o, " %.6g", (double)proba[i * C + c]);
        }
        buf[o++] = '\n';
        if (line.cap - o < room || i + 1 == n) {
            rc = ps_afile_write(f, buf, o);
            o = 0;
        }
    }
    if (rc == 0) {
        rc = ps_afile_commit(&f);
    }
    ps_afile_abort(&f);
    ps_free(line.data);
    return rc;
}

int ps_predict_run(const ps_predict_cfg *cfg, ps_predict_result *res)
{
    ps_predictor *p = NULL;
    ps_dataset ds = {0};
    int32_t *classes = NULL;
    float *proba = NULL;
    char name[PS_SOURCE_PATH];
    memset(res, 0, sizeof *res);
    int rc = ps_predict_create(&p, cfg->model_dir);
    if (rc || (rc = load_test(p, cfg, &ds, name, sizeof name))) {
        goto done;
    }
    uint64_t lim = cfg->source.test_limit;
    size_t n = lim && lim < ds.n ? (size_t)lim : ds.n;
    if (n == 0) {
        PS_LOG(ERROR, "%s: no samples to score", name);
        rc = PS_EFORMAT;
        goto done;
    }
    if (!cfg->quiet) {
        const ps_model_cfg *mc = ps_model_config(p->model);
        char labels[160] = "";
        if (p->nlabels) {
            size_t o = (size_t)snprintf(labels, sizeof labels, ": labels ");
            ps_labels_format(p->labels, p->nlabels, labels + o, sizeof labels - o);
        }
        PS_LOG(INFO,
               "adamps predict: %s model from %s (%" PRIu64 " inputs, %u classes%s); %zu "
               "samples from %s",
               ps_model_kind_name(mc->kind), cfg->model_dir, mc->in_dim, mc->nclasses, labels, n,
               name);
    }
    uint32_t C = ps_model_config(p->model)->nclasses;
    if (!(classes = ps_malloc(n * sizeof *classes)) ||
        (cfg->proba &&
         (n > SIZE_MAX / sizeof(float) / C || !(proba = ps_malloc(n * C * sizeof(float)))))) {
        rc = PS_ENOMEM;
        goto done;
    }
    ps_batch b = ps_dataset_view(&ds, 0, n);
    double loss_sum = 0.0;
    size_t correct = 0;
    if ((rc = ps_predict_score_proba(p, &b, &loss_sum, &correct, classes, proba))) {
        goto done;
    }
    if (cfg->out[0] && (rc = write_predictions(p, cfg->out, classes, proba, n))) {
        goto done;
    }
    res->loss = loss_sum / (double)n;
    res->accuracy = (double)correct / (double)n;
    res->samples = n;
done:
    ps_free(proba);
    ps_free(classes);
    ps_dataset_fini(&ds);
    ps_predict_destroy(&p);
    return rc;
}
