#include "worker/export.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/afile.h"
#include "common/err.h"
#include "common/file.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "data/fhash.h"
#include "data/source.h"
#include "data/npy.h"
#include "data/npz.h"

_Static_assert(PS_FILE_MAX_LABELS >= PS_SOURCE_MAX_LABELS, "model.bin holds every label list");

#define BLOCK_FLOATS (1u << 22) /* 16 MiB of values per pull and per copy */
#define PATH_CAP 4096
/* Ids whose hashes make the fingerprint: enough that even 1-bit hashes
 * give 16 bits of it. */
#define FINGERPRINT_IDS 16

/* dir/name into path (PATH_CAP bytes). */
static int path_in(char *path, const char *dir, const char *name)
{
    if (snprintf(path, PATH_CAP, "%s/%s", dir, name) >= PATH_CAP) {
        PS_LOG(ERROR, "model file name is too long: %s/%s", dir, name);
        return PS_EINVAL;
    }
    return 0;
}

static int npy_path(char *path, const char *dir, const ps_table_desc *d)
{
    char name[sizeof d->name + 4];
    snprintf(name, sizeof name, "%s.npy", d->name);
    return path_in(path, dir, name);
}

uint64_t ps_export_hash_fingerprint(unsigned bits)
{
    uint64_t fp = 0;
    for (uint64_t id = 0; bits && id < FINGERPRINT_IDS; id++) {
        fp = (fp ^ ps_fhash(id, bits)) * 0x100000001b3ULL; /* FNV-1a's prime */
    }
    return fp;
}

/* Pass 1, from the servers: table t into dir/NAME.npy in row blocks, its
 * bytes' CRC chained onto *crc. */
static int pull_table(ps_client *c, const ps_model *m, uint32_t t, const ps_export_info *info,
                      const char *dir, uint32_t *crc)
{
    const ps_table_desc *d = ps_model_table(m, t);
    uint32_t nt = ps_model_ntables(m);
    uint64_t block = BLOCK_FLOATS / d->width ? BLOCK_FLOATS / d->width : 1;
    block = block < d->rows ? block : d->rows;
    char path[PATH_CAP];
    ps_keylist *keys = ps_calloc(nt, sizeof *keys);
    float **params = ps_calloc(nt, sizeof *params);
    uint64_t *rows = ps_malloc(block * sizeof *rows);
    float *vals = ps_aligned_alloc(64, block * d->width * sizeof(float));
    ps_plan *plan = NULL;
    ps_npy_writer *w = NULL;
    int rc = PS_ENOMEM;
    if (!keys || !params || !rows || !vals || ps_plan_create(&plan, c)) {
        goto done;
    }
    uint64_t shape[2] = {d->rows, d->width};
    if ((rc = npy_path(path, dir, d)) || (rc = ps_npy_open(&w, path, shape, 2))) {
        goto done;
    }
    params[t] = vals;
    keys[t].keys = rows;
    for (uint64_t first = 0; first < d->rows && rc == 0; first += block) {
        uint64_t n = d->rows - first < block ? d->rows - first : block;
        for (uint64_t i = 0; i < n; i++) {
            rows[i] = first + i;
        }
        keys[t].n = n;
        if ((rc = ps_client_plan(c, plan, keys)) == 0 &&
            (rc = ps_client_pull_start(c, plan, info->clock, info->averaged)) == 0 &&
            (rc = ps_client_pull_wait(c, plan, params)) == 0 &&
            (rc = ps_npy_append(w, vals, n * d->width)) == 0) {
            *crc = ps_file_crc32(*crc, vals, n * d->width * sizeof(float));
        }
    }
    rc = rc ? rc : ps_npy_close(&w);
done:
    ps_npy_abort(&w);
    ps_plan_destroy(&plan);
    ps_aligned_free(vals);
    ps_free(rows);
    ps_free(params);
    ps_free(keys);
    return rc;
}

/* Pass 1, from memory: vals (the whole table) into dir/NAME.npy. */
static int write_table(const ps_table_desc *d, const float *vals, const char *dir, uint32_t *crc)
{
    char path[PATH_CAP];
    uint64_t shape[2] = {d->rows, d->width};
    int rc = npy_path(path, dir, d);
    if (rc == 0 && (rc = ps_npy_write(path, vals, shape, 2)) == 0) {
        *crc = ps_file_crc32(*crc, vals, (size_t)(d->rows * d->width) * sizeof(float));
    }
    return rc;
}

/* Pass 2: the data of dir/NAME.npy, just written, onto w in blocks. The
 * header size is known from the shape, so no .npy parsing; a file that
 * changed since is caught here (size) or at commit (CRC). */
static int copy_npy(ps_file_writer *w, const ps_table_desc *d, const char *dir, void *buf,
                    size_t cap)
{
    char path[PATH_CAP];
    uint64_t shape[2] = {d->rows, d->width};
    uint64_t off = ps_npy_header_bytes(shape, 2);
    uint64_t left = d->rows * d->width * sizeof(float);
    int rc = npy_path(path, dir, d);
    if (rc) {
        return rc;
    }
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || fseeko(f, (off_t)off, SEEK_SET) != 0) {
        PS_LOG(ERROR, "%s: cannot reopen to copy into model.bin: %s", path, strerror(errno));
        rc = PS_EIO;
        goto done;
    }
    if ((uint64_t)st.st_size != off + left) {
        PS_LOG(ERROR, "%s: %lld bytes, %llu when written: changed while exporting", path,
               (long long)st.st_size, (unsigned long long)(off + left));
        rc = PS_EIO;
        goto done;
    }
    while (rc == 0 && left) {
        size_t n = left < cap ? (size_t)left : cap;
        if (fread(buf, 1, n, f) != n) {
            PS_LOG(ERROR, "%s: read failed: %s", path, ferror(f) ? strerror(errno) : "file shrank");
            rc = PS_EIO;
            break;
        }
        rc = ps_file_write_payload(w, buf, n);
        left -= n;
    }
done:
    if (f) {
        fclose(f);
    }
    return rc;
}

/* dir/model.bin: the header describes the model and its tables, the
 * payload is the tables (crc: their CRC from pass 1). */
static int write_bin(const ps_model *m, const ps_export_info *info, const char *dir, uint32_t crc)
{
    const ps_model_cfg *mc = ps_model_config(m);
    uint32_t nt = ps_model_ntables(m);
    ps_file_table tables[PS_MODEL_MAX_TABLES];
    size_t cap = 0; /* copy buffer: the largest table, at most one block */
    ps_file_header h = {.config = (char *)info->config_text,
                        .clock = info->clock,
                        .ntables = nt,
                        .tables = tables,
                        .crc32 = crc,
                        .has_model = 1};
    snprintf(h.kind, sizeof h.kind, "model");
    ps_file_model *fm = &h.model;
    ps_model_info_write(mc, fm);
    fm->hash_bits = info->hash_bits;
    fm->hash_fingerprint = ps_export_hash_fingerprint(info->hash_bits);
    fm->averaged = info->averaged != 0;
    fm->nlabels = info->nlabels;
    if (info->nlabels) {
        memcpy(fm->labels, info->labels, info->nlabels * sizeof *fm->labels);
    }
    for (uint32_t t = 0; t < nt; t++) {
        const ps_table_desc *d = ps_model_table(m, t);
        tables[t] =
            (ps_file_table){.rows = d->rows, .width = d->width, .nslots = d->rows, .nstate = 1};
        snprintf(tables[t].name, sizeof tables[t].name, "%s", d->name);
        /* pass 1's .npy writers checked that rows * width * 4 fits. */
        uint64_t bytes = d->rows * d->width * sizeof(float);
        h.payload_bytes += bytes;
        cap = bytes > cap ? (size_t)bytes : cap;
    }

    char path[PATH_CAP];
    ps_file_writer *w = NULL;
    void *buf = NULL;
    int rc = path_in(path, dir, "model.bin");
    if (rc) {
        goto done;
    }
    cap = cap < BLOCK_FLOATS * sizeof(float) ? cap : BLOCK_FLOATS * sizeof(float);
    if (!(buf = ps_malloc(cap))) {
        rc = PS_ENOMEM;
        goto done;
    }
    if ((rc = ps_file_create(&w, path, &h))) {
        goto done;
    }
    for (uint32_t t = 0; rc == 0 && t < nt; t++) {
        rc = copy_npy(w, ps_model_table(m, t), dir, buf, cap);
    }
    rc = rc ? rc : ps_file_commit(&w);
done:
    ps_file_abort(&w);
    ps_free(buf);
    return rc;
}

/* dir/model.json. Every value goes into its parent as soon as it is made
 * (the parent then owns it, even when that fails), and a value is only made
 * once everything before it went in: one free at the end, whatever failed. */
static int write_json(const ps_model *m, const ps_export_info *info, const char *dir, int npz)
{
    const ps_model_cfg *mc = ps_model_config(m);
    ps_json *o = ps_json_object(), *arr = NULL;
    ps_bytes text = {0};
    int rc = o ? 0 : PS_ENOMEM;
#define SET(obj, key, value) (rc = rc ? rc : ps_json_set(obj, key, value))
#define ADD(a, value) (rc = rc ? rc : ps_json_append(a, value))
    SET(o, "format", ps_json_string("adamps-model"));
    SET(o, "format_version", ps_json_int(2));
    SET(o, "adamps_version", ps_json_string(PS_VERSION));
    SET(o, "model", ps_json_string(ps_model_kind_name(mc->kind)));
    SET(o, "in_dim", ps_json_int((int64_t)mc->in_dim));
    SET(o, "nclasses", ps_json_int(mc->nclasses));
    /* Class c predicts labels[c]: the data's own labels. */
    SET(o, "labels", arr = ps_json_array());
    for (uint32_t c = 0; ps_model_has_accuracy(mc->kind) && c < mc->nclasses; c++) {
        ADD(arr, ps_json_int(info->nlabels ? info->labels[c] : (int64_t)c));
    }
    SET(o, "sparse_input", ps_json_bool(mc->sparse_input != 0));
    SET(o, "hash_bits", ps_json_int(info->hash_bits));
    if (info->hash_bits) {
        char seed[24], fp[24];
        snprintf(seed, sizeof seed, "0x%016llx", (unsigned long long)PS_FHASH_SEED);
        snprintf(fp, sizeof fp, "0x%016llx",
                 (unsigned long long)ps_export_hash_fingerprint(info->hash_bits));
        ps_json *fh = NULL;
        SET(o, "feature_hash", fh = ps_json_object());
        SET(fh, "name", ps_json_string("adamps-fhash-1"));
        SET(fh, "bits", ps_json_int(info->hash_bits));
        SET(fh, "seed", ps_json_string(seed));
        SET(fh, "definition", ps_json_string(ps_fhash_definition()));
        SET(fh, "fingerprint", ps_json_string(fp));
    }
    SET(o, "hidden", arr = ps_json_array());
    for (uint32_t i = 0; mc->kind != PS_MODEL_LOGREG && i < mc->nhidden; i++) {
        ADD(arr, ps_json_int(mc->hidden[i]));
    }
    if (mc->kind == PS_MODEL_CNN) {
        SET(o, "conv", arr = ps_json_array());
        for (uint32_t i = 0; i < mc->nconv; i++) {
            ADD(arr, ps_json_int(mc->conv[i]));
        }
    }
    if (mc->kind == PS_MODEL_VAE) {
        SET(o, "latent", ps_json_int(mc->latent));
    }
    SET(o, "activation",
        ps_json_string(mc->kind == PS_MODEL_CNN ? "relu"
                                                : ps_model_activation_name(mc->activation)));
    SET(o, "output", ps_json_string(mc->kind == PS_MODEL_VAE ? "bernoulli" : "softmax"));
    SET(o, "layout",
        ps_json_string("logits = x @ w + b per layer; a table is rows x width, "
                       "rows = inputs, width = outputs"));
    SET(o, "preprocessing",
        ps_json_string(mc->sparse_input
                           ? "libsvm values as given; feature ids hashed when hash_bits > 0"
                           : "IDX pixels scaled to [0,1] by x/255"));
    SET(o, "averaged", ps_json_bool(info->averaged));
    SET(o, "clock", ps_json_int(info->clock));
    SET(o, "model_file", ps_json_string("model.bin"));
    if (npz) {
        SET(o, "npz_file", ps_json_string("model.npz"));
    }
    SET(o, "tables", arr = ps_json_array());
    for (uint32_t t = 0; t < ps_model_ntables(m); t++) {
        const ps_table_desc *d = ps_model_table(m, t);
        char file[sizeof d->name + 4];
        snprintf(file, sizeof file, "%s.npy", d->name);
        ps_json *tab = NULL, *shape = NULL;
        ADD(arr, tab = ps_json_object());
        SET(tab, "name", ps_json_string(d->name));
        SET(tab, "file", ps_json_string(file));
        SET(tab, "shape", shape = ps_json_array());
        ADD(shape, ps_json_int((int64_t)d->rows));
        ADD(shape, ps_json_int(d->width));
    }
    int why = 0;
    ps_json *config = rc ? NULL : ps_metrics_object(info->config, info->nconfig, &why);
    rc = rc ? rc : why;
    SET(o, "config", config);
#undef ADD
#undef SET
    rc = rc ? rc : ps_json_dump(o, 2, &text);
    rc = rc ? rc : PS_GROW(text.data, text.cap, text.len + 1);
    char path[PATH_CAP];
    ps_afile *f = NULL;
    if (rc == 0) {
        text.data[text.len++] = '\n';
        rc = path_in(path, dir, "model.json");
    }
    if (rc == 0 && (rc = ps_afile_open(&f, path)) == 0 &&
        (rc = ps_afile_write(f, text.data, text.len)) == 0) {
        rc = ps_afile_commit(&f);
    }
    ps_afile_abort(&f);
    ps_free(text.data);
    ps_json_free(&o);
    return rc;
}

/* Pass 3: dir/model.npz, each dir/NAME.npy whole as member NAME.npy.
 * Past zip32 it is a warning, not an error: the .npy files hold the same
 * arrays. *written says whether the file was made. */
static int write_npz(const ps_model *m, const char *dir, int *written)
{
    uint32_t nt = ps_model_ntables(m);
    char names[PS_MODEL_MAX_TABLES][sizeof(((ps_table_desc *)0)->name) + 4];
    const char *name_of[PS_MODEL_MAX_TABLES];
    uint64_t sizes[PS_MODEL_MAX_TABLES], total = 0;
    for (uint32_t t = 0; t < nt; t++) {
        const ps_table_desc *d = ps_model_table(m, t);
        uint64_t shape[2] = {d->rows, d->width};
        snprintf(names[t], sizeof names[t], "%s.npy", d->name);
        name_of[t] = names[t];
        sizes[t] = ps_npy_header_bytes(shape, 2) + d->rows * d->width * sizeof(float);
        total += sizes[t];
    }
    *written = 0;
    if (!ps_npz_fits(name_of, sizes, nt)) {
        PS_LOG(WARN,
               "%s/model.npz not written: its %llu bytes of arrays pass the 4 GiB of a zip32 "
               "archive; the %u .npy files beside it hold the same arrays",
               dir, (unsigned long long)total, nt);
        return 0;
    }
    char path[PATH_CAP];
    ps_npz *z = NULL;
    size_t cap = 1u << 20;
    void *buf = ps_malloc(cap);
    int rc = buf ? path_in(path, dir, "model.npz") : PS_ENOMEM;
    rc = rc ? rc : ps_npz_open(&z, path);
    for (uint32_t t = 0; rc == 0 && t < nt; t++) {
        char npy[PATH_CAP];
        FILE *f = NULL;
        if ((rc = path_in(npy, dir, names[t])) || (rc = ps_npz_begin(z, names[t]))) {
            break;
        }
        if (!(f = fopen(npy, "rb"))) {
            PS_LOG(ERROR, "%s: cannot reopen to copy into model.npz: %s", npy, strerror(errno));
            rc = PS_EIO;
            break;
        }
        uint64_t left = sizes[t];
        while (rc == 0 && left) {
            size_t n = left < cap ? (size_t)left : cap;
            if (fread(buf, 1, n, f) != n) {
                PS_LOG(ERROR, "%s: read failed: %s", npy,
                       ferror(f) ? strerror(errno) : "file shrank");
                rc = PS_EIO;
            } else {
                rc = ps_npz_write(z, buf, n);
                left -= n;
            }
        }
        fclose(f);
    }
    if (rc == 0 && (rc = ps_npz_close(&z)) == 0) {
        *written = 1;
    }
    ps_npz_abort(&z);
    ps_free(buf);
    return rc;
}

/* Pass 1 from the servers (c) or from memory (tables), then pass 2, the
 * npz and model.json. */
static int save(ps_client *c, const ps_model *m, const float *const *tables,
                const ps_export_info *info, const char *dir)
{
    uint32_t crc = 0;
    int npz = 0;
    const ps_model_cfg *mc = ps_model_config(m);
    if (info->nlabels && (info->nlabels != mc->nclasses || info->nlabels > PS_FILE_MAX_LABELS)) {
        PS_LOG(ERROR, "export: %u labels for a model of %u classes (at most %d)", info->nlabels,
               mc->nclasses, PS_FILE_MAX_LABELS);
        return PS_EINVAL;
    }
    int rc = ps_afile_mkdirs(dir, 0);
    for (uint32_t t = 0; rc == 0 && t < ps_model_ntables(m); t++) {
        rc = c ? pull_table(c, m, t, info, dir, &crc)
               : write_table(ps_model_table(m, t), tables[t], dir, &crc);
    }
    rc = rc ? rc : write_bin(m, info, dir, crc);
    rc = rc ? rc : write_npz(m, dir, &npz);
    return rc ? rc : write_json(m, info, dir, npz);
}

int ps_export_save(ps_client *c, const ps_model *m, const ps_export_info *info, const char *dir)
{
    return save(c, m, NULL, info, dir);
}

int ps_export_save_tables(const ps_model *m, const float *const *tables, const ps_export_info *info,
                          const char *dir)
{
    return save(NULL, m, tables, info, dir);
}
