/* libFuzzer target for the model reader (worker/predict.c): each input is
 * a model.bin. ps_predict_create must return 0 or a logged error code, and
 * a model it accepts must score a small batch shaped by its own config
 * (sparse ids below in_dim, or dense rows) without error, with a class
 * below nclasses per sample. Run with -malloc_limit_mb: a header must not
 * buy memory the file does not hold. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "data/dataset.h"
#include "tests/fuzz/fuzz_util.h"
#include "worker/predict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NB 3
#define MAX_DENSE 4096

static void score(ps_predictor *p, const uint8_t *data, size_t size)
{
    const ps_model_cfg *mc = ps_predict_model_cfg(p);
    static float x[NB * MAX_DENSE];
    uint64_t indptr[NB + 1] = {0}, idx[NB * 2];
    float val[NB * 2];
    int32_t y[NB], classes[NB];
    ps_batch b = {
        .n = NB, .dim = mc->in_dim, .nclasses = mc->nclasses, .sparse = mc->sparse_input, .y = y};
    if (!mc->sparse_input && mc->in_dim > MAX_DENSE) {
        return;
    }
    for (size_t i = 0; i < NB; i++) {
        y[i] = (int32_t)(i % mc->nclasses);
        uint64_t a = size ? data[i % size] % mc->in_dim : 0, c = (a * 7 + 3) % mc->in_dim;
        size_t k = indptr[i];
        idx[k++] = a < c ? a : c;
        if (a != c) {
            idx[k++] = a < c ? c : a;
        }
        for (size_t j = indptr[i]; j < k; j++) {
            val[j] = 1.0f;
        }
        indptr[i + 1] = k;
        for (uint64_t j = 0; !mc->sparse_input && j < mc->in_dim; j++) {
            x[i * mc->in_dim + j] = (float)((i + j) % 5) / 4.0f;
        }
    }
    if (mc->sparse_input) {
        b.indptr = indptr;
        b.idx = idx;
        b.val = val;
    } else {
        b.x = x;
    }
    double loss = 0;
    size_t correct = 0;
    int rc = ps_predict_score(p, &b, &loss, &correct, classes);
    CHECK(rc == 0 || rc == PS_ENOMEM);
    for (size_t i = 0; rc == 0 && i < NB; i++) {
        CHECK(classes[i] >= 0 && (uint32_t)classes[i] < mc->nclasses);
    }
    CHECK(correct <= NB);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/model", fuzz_tmpdir());
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/model.bin", dir);
    fuzz_write_path(path, data, size);
    ps_predictor *p = NULL;
    int rc = ps_predict_create(&p, dir);
    CHECK(rc == 0 || rc == PS_EFORMAT || rc == PS_EIO || rc == PS_ENOMEM || rc == PS_ECONFIG);
    CHECK(rc == 0 || p == NULL);
    if (rc == 0) {
        score(p, data, size);
        ps_predict_destroy(&p);
    }
    return 0;
}
