#include "worker/export.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/afile.h"
#include "common/err.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"
#include "data/npy.h"

#define BLOCK_FLOATS (1u << 22) /* 16 MiB of values per pull */

static int make_dir(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        PS_LOG(ERROR, "model directory name is too long: %s", dir);
        return PS_EINVAL;
    }
    /* mkdir -p: create each missing parent in turn. */
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(path, 0777) != 0 && errno != EEXIST) {
                PS_LOG(ERROR, "cannot create directory %s: %s", path, strerror(errno));
                return PS_EIO;
            }
            *p = c;
            if (c == '\0') {
                return 0;
            }
        }
    }
}

static int save_table(ps_client *c, const ps_model *m, uint32_t t, int64_t version, int averaged,
                      const char *dir)
{
    const ps_table_desc *d = ps_model_table(m, t);
    uint32_t nt = ps_model_ntables(m);
    uint64_t block = BLOCK_FLOATS / d->width ? BLOCK_FLOATS / d->width : 1;
    block = block < d->rows ? block : d->rows;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.npy", dir, d->name);
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
    if ((rc = ps_npy_open(&w, path, shape, 2))) {
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
            (rc = ps_client_pull_start(c, plan, version, averaged)) == 0 &&
            (rc = ps_client_pull_wait(c, plan, params)) == 0) {
            rc = ps_npy_append(w, vals, n * d->width);
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

/* JSON string body: the config line holds quotes and backslashes. */
static void put_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            fputc('\\', f);
        }
        fputc((unsigned char)*s < 0x20 ? ' ' : *s, f);
    }
    fputc('"', f);
}

static int write_json(const ps_model *m, const char *dir, const char *config_text,
                      unsigned hash_bits)
{
    const ps_model_cfg *mc = ps_model_config(m);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.json", dir);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        return PS_ENOMEM;
    }
    fprintf(f, "{\n  \"format\": \"adamps-model\",\n  \"format_version\": 1,\n");
    fprintf(f, "  \"model\": \"%s\",\n", mc->kind == PS_MODEL_MLP ? "mlp" : "logreg");
    fprintf(f, "  \"in_dim\": %llu,\n  \"nclasses\": %u,\n  \"sparse_input\": %d,\n",
            (unsigned long long)mc->in_dim, mc->nclasses, mc->sparse_input);
    fprintf(f, "  \"hash_bits\": %u,\n  \"hidden\": [", hash_bits);
    for (uint32_t i = 0; mc->kind == PS_MODEL_MLP && i < mc->nhidden; i++) {
        fprintf(f, "%s%u", i ? ", " : "", mc->hidden[i]);
    }
    fprintf(f, "],\n  \"activation\": \"relu\",\n  \"output\": \"softmax\",\n");
    fprintf(f, "  \"layout\": \"logits = x @ w + b per layer; a table is rows x width, "
               "rows = inputs, width = outputs\",\n");
    fprintf(f, "  \"preprocessing\": \"%s\",\n",
            mc->sparse_input ? "libsvm values as given; feature ids hashed when hash_bits > 0"
                             : "IDX pixels scaled to [0,1] by x/255");
    fprintf(f, "  \"tables\": [\n");
    uint32_t nt = ps_model_ntables(m);
    for (uint32_t t = 0; t < nt; t++) {
        const ps_table_desc *d = ps_model_table(m, t);
        fprintf(f, "    {\"name\": \"%s\", \"file\": \"%s.npy\", \"shape\": [%llu, %u]}%s\n",
                d->name, d->name, (unsigned long long)d->rows, d->width, t + 1 < nt ? "," : "");
    }
    fprintf(f, "  ],\n  \"config\": ");
    put_json_string(f, config_text);
    fprintf(f, "\n}\n");
    fclose(f);
    ps_afile *af = NULL;
    int rc = ps_afile_open(&af, path);
    if (rc == 0 && (rc = ps_afile_write(af, text, len)) == 0) {
        rc = ps_afile_commit(&af);
    }
    ps_afile_abort(&af);
    free(text); /* open_memstream allocates with malloc, not ps_malloc */
    return rc;
}

int ps_export_save(ps_client *c, const ps_model *m, int64_t version, int averaged,
                   const char *dir, const char *config_text, unsigned hash_bits)
{
    int rc = make_dir(dir);
    for (uint32_t t = 0; rc == 0 && t < ps_model_ntables(m); t++) {
        rc = save_table(c, m, t, version, averaged, dir);
    }
    return rc ? rc : write_json(m, dir, config_text, hash_bits);
}
