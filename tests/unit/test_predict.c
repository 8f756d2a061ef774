/* Tests for worker/predict (and the pieces it adds elsewhere: ps_npy_read
 * in common/npy.c, ps_model_predict in worker/model.c): .npy read round
 * trips and rejections, per-sample prediction against evaluation, scoring
 * hand-made model directories with known weights (dense IDX and sparse
 * libsvm), model.json errors that must name the field, and OOM sweeps. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "data/npy.h"
#include "worker/model.h"
#include "worker/predict.h"
#include "tests/unit/ps_test.h"

static char dir[64];

static int group_setup(void **state)
{
    (void)state;
    return ps_test_tmpdir_create(dir, sizeof dir, "predict");
}

static int group_teardown(void **state)
{
    (void)state;
    return ps_test_rmtree(dir);
}

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

/* ---- .npy reader ---- */

/* Writes a .npy by hand: preamble of format major.0, dict text padded to 64
 * with spaces and a newline, then ndata floats (value i * 0.5 - 3). */
static void write_raw_npy(const char *path, const char *magic, int major, const char *dict,
                          size_t ndata)
{
    unsigned char buf[1024];
    size_t pre = major == 1 ? 10 : 12;
    size_t dlen = strlen(dict);
    size_t total = (pre + dlen + 1 + 63) / 64 * 64;
    size_t hlen = total - pre;
    memcpy(buf, magic, 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    if (major != 1) {
        buf[10] = 0;
        buf[11] = 0;
    }
    memcpy(buf + pre, dict, dlen);
    memset(buf + pre + dlen, ' ', total - pre - dlen - 1);
    buf[total - 1] = '\n';
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, total, f), total);
    for (size_t i = 0; i < ndata; i++) {
        float v = (float)i * 0.5f - 3.0f;
        assert_int_equal(fwrite(&v, sizeof v, 1, f), 1);
    }
    assert_int_equal(fclose(f), 0);
}

static void test_npy_read_round_trips_writer(void **state)
{
    (void)state;
    static const struct {
        int ndim;
        uint64_t shape[3];
    } cases[] = {{0, {0}}, {1, {5}}, {2, {3, 4}}, {2, {2, 0}}, {3, {2, 3, 4}}};
    char path[128];
    path_in(path, sizeof path, "rt.npy");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint64_t n = 1;
        for (int i = 0; i < cases[c].ndim; i++) {
            n *= cases[c].shape[i];
        }
        float src[24];
        for (uint64_t i = 0; i < n; i++) {
            src[i] = (float)i * -1.25f + 0.5f;
        }
        assert_int_equal(ps_npy_write(path, src, cases[c].shape, cases[c].ndim), 0);
        float *data = NULL;
        uint64_t shape[PS_NPY_MAX_DIMS];
        int ndim = -1;
        assert_int_equal(ps_npy_read(path, &data, shape, &ndim), 0);
        assert_non_null(data);
        assert_int_equal(ndim, cases[c].ndim);
        for (int i = 0; i < ndim; i++) {
            assert_int_equal(shape[i], cases[c].shape[i]);
        }
        assert_memory_equal(data, src, n * sizeof(float));
        ps_free(data);
    }
}

static void test_npy_read_accepts_version_2_and_any_key_order(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "v2.npy");
    write_raw_npy(path, "\x93NUMPY", 2,
                  "{\"shape\": (2, 3,), 'fortran_order': False, 'descr': '<f4'}", 6);
    float *data = NULL;
    uint64_t shape[PS_NPY_MAX_DIMS];
    int ndim = 0;
    assert_int_equal(ps_npy_read(path, &data, shape, &ndim), 0);
    assert_int_equal(ndim, 2);
    assert_int_equal(shape[0], 2);
    assert_int_equal(shape[1], 3);
    for (int i = 0; i < 6; i++) {
        assert_true(data[i] == (float)i * 0.5f - 3.0f);
    }
    ps_free(data);
}

/* A reader of numpy's own output, when /usr/bin/python3 has numpy. */
static void test_npy_read_reads_numpy_save(void **state)
{
    (void)state;
    char path[128], cmd[512];
    path_in(path, sizeof path, "np.npy");
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import numpy as np; "
             "np.save('%s', (np.arange(12, dtype='<f4') * 0.5 - 1).reshape(4, 3))\" "
             ">/dev/null 2>&1",
             path);
    if (system(cmd) != 0) {
        skip();
    }
    float *data = NULL;
    uint64_t shape[PS_NPY_MAX_DIMS];
    int ndim = 0;
    assert_int_equal(ps_npy_read(path, &data, shape, &ndim), 0);
    assert_int_equal(ndim, 2);
    assert_int_equal(shape[0], 4);
    assert_int_equal(shape[1], 3);
    for (int i = 0; i < 12; i++) {
        assert_true(data[i] == (float)i * 0.5f - 1.0f);
    }
    ps_free(data);
}

/* Each bad file is PS_EFORMAT with a message naming the file and `why`. */
static void expect_npy_rejected(const char *path, const char *why)
{
    float *data = (float *)1;
    uint64_t shape[PS_NPY_MAX_DIMS];
    int ndim = 0;
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    int rc = ps_npy_read(path, &data, shape, &ndim);
    char *err = ps_test_capture_end(&cap);
    assert_int_equal(rc, PS_EFORMAT);
    assert_null(data);
    if (!strstr(err, path) || !strstr(err, why)) {
        fail_msg("message for %s lacks '%s': %s", path, why, err);
    }
    test_free(err);
}

static void test_npy_read_rejects_bad_files(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "bad.npy");
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";

    write_raw_npy(path, "\x93NUMPX", 1, good, 4);
    expect_npy_rejected(path, "bad magic");
    write_raw_npy(path, "\x93NUMPY", 1,
                  "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", 4);
    expect_npy_rejected(path, "'>f4'");
    write_raw_npy(path, "\x93NUMPY", 1,
                  "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", 8);
    expect_npy_rejected(path, "'<f8'");
    write_raw_npy(path, "\x93NUMPY", 1,
                  "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 4);
    expect_npy_rejected(path, "fortran_order True");
    write_raw_npy(path, "\x93NUMPY", 1, good, 3);
    expect_npy_rejected(path, "truncated");
    write_raw_npy(path, "\x93NUMPY", 1, good, 5);
    expect_npy_rejected(path, "oversized");
    write_raw_npy(path, "\x93NUMPY", 3, good, 4);
    expect_npy_rejected(path, "version 3.0");
    write_raw_npy(path, "\x93NUMPY", 1, "{'descr': '<f4', 'fortran_order': False}", 4);
    expect_npy_rejected(path, "no 'shape'");
    write_raw_npy(path, "\x93NUMPY", 1,
                  "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'x': 1}", 4);
    expect_npy_rejected(path, "'x'");
    write_raw_npy(path, "\x93NUMPY", 1,
                  "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -2)}", 4);
    expect_npy_rejected(path, "shape");
    /* Cut inside the preamble, then inside the header. */
    ps_test_write_file(path, "\x93NUMPY\x01", 7);
    expect_npy_rejected(path, "preamble");
    ps_test_write_file(path, "\x93NUMPY\x01\x00\x40\x00{'descr'", 17);
    expect_npy_rejected(path, "header");
}

static void test_npy_read_missing_file_is_eio(void **state)
{
    (void)state;
    float *data = NULL;
    uint64_t shape[PS_NPY_MAX_DIMS];
    int ndim = 0;
    char path[128];
    path_in(path, sizeof path, "does-not-exist.npy");
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    int rc = ps_npy_read(path, &data, shape, &ndim);
    char *err = ps_test_capture_end(&cap);
    assert_int_equal(rc, PS_EIO);
    assert_null(data);
    assert_non_null(strstr(err, path));
    test_free(err);
}

static void test_npy_read_survives_oom_sweep(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "oom.npy");
    uint64_t wshape[2] = {3, 2};
    float src[6] = {1, 2, 3, 4, 5, 6};
    assert_int_equal(ps_npy_write(path, src, wshape, 2), 0);
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; rc == PS_ENOMEM && n < 100; n++) {
        float *data = NULL;
        uint64_t shape[PS_NPY_MAX_DIMS];
        int ndim = 0;
        ps_test_fail_alloc(n);
        ps_test_capture cap;
        ps_test_capture_begin(&cap);
        rc = ps_npy_read(path, &data, shape, &ndim);
        test_free(ps_test_capture_end(&cap));
        ps_test_fail_alloc(-1);
        if (rc == 0) {
            assert_memory_equal(data, src, sizeof src);
        } else {
            assert_null(data);
        }
        ps_free(data);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 1); /* at least one failure was exercised */
}

/* ---- ps_model_predict ---- */

/* Deterministic values in [-1, 1). */
static float lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 40) / (double)(1u << 23)) - 1.0f;
}

static void test_model_predict_agrees_with_evaluate(void **state)
{
    (void)state;
    enum { N = 7, D = 6, H = 5, C = 4 };
    ps_model_cfg mc = {.kind = PS_MODEL_MLP,
                       .in_dim = D,
                       .nclasses = C,
                       .nhidden = 1,
                       .hidden = {H},
                       .init_override = -1,
                       .max_batch = 3};
    ps_model *m = NULL;
    assert_int_equal(ps_model_create(&m, &mc), 0);
    uint64_t s = 42;
    float w1[D * H], b1[H], w2[H * C], b2[C], x[N * D];
    float *tabs[4] = {w1, b1, w2, b2};
    size_t lens[4] = {D * H, H, H * C, C};
    for (int t = 0; t < 4; t++) {
        for (size_t i = 0; i < lens[t]; i++) {
            tabs[t][i] = lcg(&s);
        }
    }
    for (size_t i = 0; i < N * D; i++) {
        x[i] = lcg(&s);
    }
    int32_t y[N] = {0}, classes[N];
    ps_batch b = {N, D, C, 0, x, NULL, NULL, NULL, NULL};
    ps_keylist keys[4];
    memset(keys, 0, sizeof keys);
    b.y = y;
    assert_int_equal(ps_model_batch_keys(m, &b, keys), 0);
    const float *params[4] = {w1, b1, w2, b2};
    b.y = NULL; /* predict needs no labels */
    for (size_t i = 0; i < N; i++) {
        classes[i] = -1;
    }
    assert_int_equal(ps_model_predict(m, &b, keys, params, classes), 0);

    /* Independent reference: relu(x W1 + b1) W2 + b2 in double, argmax. */
    for (size_t i = 0; i < N; i++) {
        double hid[H], best = -INFINITY;
        int arg = -1;
        for (int j = 0; j < H; j++) {
            hid[j] = b1[j];
            for (int f = 0; f < D; f++) {
                hid[j] += (double)x[i * D + f] * w1[f * H + j];
            }
            hid[j] = hid[j] > 0 ? hid[j] : 0;
        }
        for (int c = 0; c < C; c++) {
            double z = b2[c];
            for (int j = 0; j < H; j++) {
                z += hid[j] * w2[j * C + c];
            }
            if (z > best) {
                best = z;
                arg = c;
            }
        }
        assert_int_equal(classes[i], arg);
    }
    /* Labels equal to the predictions are all correct; shifted ones none. */
    double loss;
    size_t ncorrect;
    b.y = classes;
    assert_int_equal(ps_model_evaluate(m, &b, keys, params, &loss, &ncorrect), 0);
    assert_int_equal(ncorrect, N);
    for (size_t i = 0; i < N; i++) {
        y[i] = (classes[i] + 1) % C;
    }
    b.y = y;
    assert_int_equal(ps_model_evaluate(m, &b, keys, params, &loss, &ncorrect), 0);
    assert_int_equal(ncorrect, 0);

    /* A sparse batch on this dense model is refused. */
    uint64_t indptr[2] = {0, 0};
    ps_batch sb = {1, D, C, 1, NULL, indptr, indptr, x, NULL};
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    int rc = ps_model_predict(m, &sb, keys, params, classes);
    test_free(ps_test_capture_end(&cap));
    assert_int_equal(rc, PS_EINVAL);
    ps_model_keys_fini(keys, 4);
    ps_model_destroy(&m);
}

/* ---- hand-made model directories ---- */

enum { LD = 4, LC = 3, LN = 6 }; /* dense logreg: 2x2 images, 3 classes, 6 samples */

static const unsigned char pixels[LN][LD] = {{255, 0, 0, 10},    {0, 200, 30, 0}, {0, 0, 255, 0},
                                             {90, 100, 80, 255}, {0, 0, 0, 0},    {20, 250, 0, 40}};
static const unsigned char labels[LN] = {0, 1, 2, 0, 1, 2};

/* Every row differs from every other in a class-dependent way, so using a
 * wrong row changes the scores. */
static float w_at(int f, int c)
{
    return (f == c ? 2.0f : 0.0f) + 0.15f * (float)(f + 1) * (float)(c - 1) - 0.25f * (float)c;
}

static const float bias[LC] = {0.0f, 0.3f, -0.1f};

/* Writes model.json for a model dir; extra text goes before "tables". */
static void write_json(const char *mdir, const char *model, uint64_t in_dim, int sparse,
                       const char *tables_text, const char *extra)
{
    char path[256], text[2048];
    snprintf(path, sizeof path, "%s/model.json", mdir);
    snprintf(text, sizeof text,
             "{\n  \"format\": \"adamps-model\",\n  \"format_version\": 1,\n"
             "  \"model\": \"%s\",\n  \"in_dim\": %llu,\n  \"nclasses\": %d,\n"
             "  \"sparse_input\": %d,\n  \"hash_bits\": 0,\n  \"hidden\": [],\n%s"
             "  \"tables\": [\n%s  ],\n  \"config\": \"cmd=train \\\"quoted\\\" \\u00e9\"\n}\n",
             model, (unsigned long long)in_dim, LC, sparse, extra, tables_text);
    ps_test_write_text(path, text);
}

static const char *logreg_tables(uint64_t rows)
{
    static char t[256];
    snprintf(t, sizeof t,
             "    {\"name\": \"w\", \"file\": \"w.npy\", \"shape\": [%llu, %d]},\n"
             "    {\"name\": \"b\", \"file\": \"b.npy\", \"shape\": [1, %d]}\n",
             (unsigned long long)rows, LC, LC);
    return t;
}

/* A logreg model dir with in_dim rows of weights w_at and the bias. */
static void make_logreg_dir(const char *mdir, uint64_t in_dim, int sparse)
{
    char path[256];
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", mdir);
    assert_int_equal(system(cmd), 0);
    float w[16 * LC];
    for (uint64_t f = 0; f < in_dim; f++) {
        for (int c = 0; c < LC; c++) {
            w[f * LC + c] = w_at((int)f, c);
        }
    }
    uint64_t ws[2] = {in_dim, LC}, bs[2] = {1, LC};
    snprintf(path, sizeof path, "%s/w.npy", mdir);
    assert_int_equal(ps_npy_write(path, w, ws, 2), 0);
    snprintf(path, sizeof path, "%s/b.npy", mdir);
    assert_int_equal(ps_npy_write(path, bias, bs, 2), 0);
    write_json(mdir, "logreg", in_dim, sparse, logreg_tables(in_dim), "");
}

/* Uncompressed IDX files (gzread reads plain files too). */
static void write_idx(const char *images, const char *labels_path)
{
    unsigned char img[16 + LN * LD], lbl[8 + LN];
    const unsigned char ih[16] = {0, 0, 8, 3, 0, 0, 0, LN, 0, 0, 0, 2, 0, 0, 0, 2};
    const unsigned char lh[8] = {0, 0, 8, 1, 0, 0, 0, LN};
    memcpy(img, ih, 16);
    memcpy(lbl, lh, 8);
    memcpy(img + 16, pixels, LN * LD);
    memcpy(lbl + 8, labels, LN);
    ps_test_write_file(images, img, sizeof img);
    ps_test_write_file(labels_path, lbl, sizeof lbl);
}

/* Expected classes, accuracy and mean loss of rows [0, n) computed here in
 * double from sparse (feature, value) lists. */
typedef struct {
    int nnz;
    int feat[LD];
    double val[LD];
    int label;
} ref_row;

static void reference(const ref_row *rows, int n, int32_t *cls, double *acc, double *loss)
{
    int good = 0;
    double lsum = 0;
    for (int i = 0; i < n; i++) {
        double z[LC], mx = -INFINITY;
        for (int c = 0; c < LC; c++) {
            z[c] = bias[c];
            for (int k = 0; k < rows[i].nnz; k++) {
                z[c] += rows[i].val[k] * w_at(rows[i].feat[k], c);
            }
            mx = z[c] > mx ? z[c] : mx;
        }
        int arg = 0;
        double se = 0;
        for (int c = 0; c < LC; c++) {
            arg = z[c] > z[arg] ? c : arg;
            se += exp(z[c] - mx);
        }
        /* A near tie could go either way in float: the data must avoid them. */
        for (int c = 0; c < LC; c++) {
            if (c != arg && z[arg] - z[c] < 1e-4) {
                fail_msg("reference row %d: classes %d and %d tie", i, arg, c);
            }
        }
        cls[i] = arg;
        good += arg == rows[i].label;
        lsum += mx + log(se) - z[rows[i].label];
    }
    *acc = (double)good / n;
    *loss = lsum / n;
}

/* What `adamps predict --model mdir --test test [--out out] [--test-limit
 * limit] --quiet` hands ps_predict_run. */
static ps_predict_cfg predict_cfg(const char *mdir, const char *test, const char *out,
                                  uint64_t limit)
{
    ps_predict_cfg pc = {.model_dir = mdir, .out = out, .quiet = 1};
    pc.source = (ps_source_cfg){.dataset = "", .data_dir = "", .train = "", .test = test,
                                .format = PS_FMT_AUTO, .test_limit = limit};
    return pc;
}

static void check_out_file(const char *path, const int32_t *want, int n)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int v, i = 0;
    while (fscanf(f, "%d", &v) == 1) {
        assert_true(i < n);
        if (v != want[i]) {
            fclose(f);
            fail_msg("%s line %d: class %d, want %d", path, i + 1, v, want[i]);
        }
        i++;
    }
    fclose(f);
    assert_int_equal(i, n);
}

static void test_predict_scores_dense_logreg_on_idx(void **state)
{
    (void)state;
    char mdir[128], images[128], lbls[128], out[128];
    path_in(mdir, sizeof mdir, "dense");
    path_in(images, sizeof images, "t-images-idx3-ubyte");
    path_in(lbls, sizeof lbls, "t-labels-idx1-ubyte");
    path_in(out, sizeof out, "dense-pred.txt");
    make_logreg_dir(mdir, LD, 0);
    write_idx(images, lbls);

    ref_row rows[LN];
    for (int i = 0; i < LN; i++) {
        rows[i].nnz = LD;
        rows[i].label = labels[i];
        for (int f = 0; f < LD; f++) {
            rows[i].feat[f] = f;
            rows[i].val[f] = (float)pixels[i][f] / 255.0f;
        }
    }
    int32_t want[LN];
    double acc, loss;
    reference(rows, LN, want, &acc, &loss);
    /* The weights make the problem non-trivial: some right, some wrong. */
    assert_true(acc > 0.0 && acc < 1.0);

    ps_predict_cfg cfg = predict_cfg(mdir, images, out, 0);
    ps_predict_result res;
    assert_int_equal(ps_predict_run(&cfg, &res), 0);
    assert_int_equal(res.samples, LN);
    assert_true(fabs(res.accuracy - acc) < 1e-12);
    assert_true(fabs(res.loss - loss) < 1e-5);
    check_out_file(out, want, LN);
}

static void test_predict_scores_sparse_logreg_on_libsvm(void **state)
{
    (void)state;
    char mdir[128], svm[128], out[128];
    path_in(mdir, sizeof mdir, "sparse");
    path_in(svm, sizeof svm, "t.svm");
    path_in(out, sizeof out, "sparse-pred.txt");
    make_logreg_dir(mdir, 8, 1);
    /* One-based ids; the last line is past --test-limit 4. */
    ps_test_write_text(svm, "0 1:1.5 4:0.5\n"
                            "2 3:2\n"
                            "1 2:0.25 7:1.5 8:-0.5\n"
                            "1\n"
                            "0 3:9\n");
    const ref_row rows[4] = {{2, {0, 3}, {1.5, 0.5}, 0},
                             {1, {2}, {2.0}, 2},
                             {3, {1, 6, 7}, {0.25, 1.5, -0.5}, 1},
                             {0, {0}, {0}, 1}};
    int32_t want[4];
    double acc, loss;
    reference(rows, 4, want, &acc, &loss);

    ps_predict_cfg cfg = predict_cfg(mdir, svm, out, 4);
    ps_predict_result res;
    assert_int_equal(ps_predict_run(&cfg, &res), 0);
    assert_int_equal(res.samples, 4);
    assert_true(fabs(res.accuracy - acc) < 1e-12);
    assert_true(fabs(res.loss - loss) < 1e-5);
    check_out_file(out, want, 4);

    /* A model trained on dense input does not take libsvm. */
    char ddir[128];
    path_in(ddir, sizeof ddir, "dense-for-svm");
    make_logreg_dir(ddir, 8, 0);
    cfg = predict_cfg(ddir, svm, "", 0);
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    int rc = ps_predict_run(&cfg, &res);
    char *err = ps_test_capture_end(&cap);
    assert_int_equal(rc, PS_ECONFIG);
    assert_non_null(strstr(err, svm));
    test_free(err);
}

/* More samples than one chunk: classes must land at their own sample. */
static void test_predict_scores_across_chunks(void **state)
{
    (void)state;
    enum { NBIG = 2 * PS_PREDICT_CHUNK + 345 };
    char mdir[128], svm[128], out[128];
    path_in(mdir, sizeof mdir, "chunks");
    path_in(svm, sizeof svm, "big.svm");
    path_in(out, sizeof out, "big-pred.txt");
    make_logreg_dir(mdir, 8, 1);
    ref_row *rows = test_calloc(NBIG, sizeof *rows);
    int32_t *want = test_malloc(NBIG * sizeof *want);
    FILE *f = fopen(svm, "w");
    assert_non_null(f);
    uint64_t s = 7;
    for (int i = 0; i < NBIG; i++) {
        rows[i].label = (int)((lcg(&s) + 1.0f) * 1.5f) % LC;
        fprintf(f, "%d", rows[i].label);
        for (int k = 0, feat = (int)((lcg(&s) + 1.0f) * 2.0f); k < LD && feat < 8; k++) {
            float v = lcg(&s) * 2.0f;
            rows[i].feat[k] = feat;
            rows[i].val[k] = v;
            rows[i].nnz = k + 1;
            fprintf(f, " %d:%.9g", feat + 1, (double)v); /* round-trips the float */
            feat += 1 + (int)((lcg(&s) + 1.0f) * 1.5f);
        }
        fprintf(f, "\n");
    }
    assert_int_equal(fclose(f), 0);
    double acc, loss;
    reference(rows, NBIG, want, &acc, &loss);
    ps_predict_cfg cfg = predict_cfg(mdir, svm, out, 0);
    ps_predict_result res;
    assert_int_equal(ps_predict_run(&cfg, &res), 0);
    assert_int_equal(res.samples, NBIG);
    assert_true(fabs(res.accuracy - acc) < 1e-12);
    assert_true(fabs(res.loss - loss) < 1e-5);
    check_out_file(out, want, NBIG);
    test_free(want);
    test_free(rows);
}

/* Creating a predictor from mdir fails with PS_EFORMAT and a message that
 * names model.json (or npy_name) and the field. */
static void expect_create_fails(const char *mdir, int want_rc, const char *file, const char *needle)
{
    ps_predictor *p = (ps_predictor *)1;
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    int rc = ps_predict_create(&p, mdir);
    char *err = ps_test_capture_end(&cap);
    assert_int_equal(rc, want_rc);
    assert_null(p);
    if (!strstr(err, file) || !strstr(err, needle)) {
        fail_msg("message lacks '%s' / '%s': %s", file, needle, err);
    }
    test_free(err);
}

static void test_predict_rejects_bad_model_json(void **state)
{
    (void)state;
    char mdir[128], json[192], npy[192];
    path_in(mdir, sizeof mdir, "badjson");
    make_logreg_dir(mdir, LD, 0);
    snprintf(json, sizeof json, "%s/model.json", mdir);
    snprintf(npy, sizeof npy, "%s/w.npy", mdir);

    /* The directory as written loads: the failures below are the edits. */
    ps_predictor *p = NULL;
    assert_int_equal(ps_predict_create(&p, mdir), 0);
    assert_int_equal(ps_predict_model_cfg(p)->in_dim, LD);
    assert_int_equal(ps_predict_model_cfg(p)->nclasses, LC);
    assert_int_equal(ps_predict_hash_bits(p), 0);
    ps_predict_destroy(&p);
    assert_null(p);

    const char *tabs = logreg_tables(LD);
    static const struct {
        const char *model, *extra, *needle;
    } field_cases[] = {
        {"cnn", "", "\"model\""},
        {"logreg", "  \"hash_bits\": 3,\n", "\"hash_bits\": appears twice"},
    };
    for (size_t i = 0; i < sizeof field_cases / sizeof field_cases[0]; i++) {
        write_json(mdir, field_cases[i].model, LD, 0, tabs, field_cases[i].extra);
        expect_create_fails(mdir, PS_EFORMAT, json, field_cases[i].needle);
    }
    /* An mlp with a logreg's tables. */
    write_json(mdir, "mlp", LD, 0, tabs, "");
    expect_create_fails(mdir, PS_EFORMAT, json, "\"hidden\"");

    /* Hand-edited texts: missing field, fraction, truncation, bad file name,
     * shape disagreeing with the model, trailing garbage. */
    static const struct {
        const char *text, *needle;
    } text_cases[] = {
        {"{\"model\": \"logreg\", \"in_dim\": 4, \"sparse_input\": 0, \"hash_bits\": 0, "
         "\"hidden\": [], \"tables\": []}",
         "\"nclasses\" is missing"},
        {"{\"model\": \"logreg\", \"in_dim\": 4.5}", "\"in_dim\": expected an integer"},
        {"{\"model\": \"logreg\", \"in_dim\": 4, \"ncla", "unterminated string"},
        {"{\"model\": \"logreg\", \"in_dim\": 4, \"nclasses\": 3, \"sparse_input\": 0, "
         "\"hash_bits\": 0, \"hidden\": [], \"tables\": [{\"name\": \"w\", \"file\": "
         "\"../w.npy\", \"shape\": [4, 3]}, {\"name\": \"b\", \"file\": \"b.npy\", \"shape\": "
         "[1, 3]}]}",
         "\"tables[0].file\""},
        {"{\"model\": \"logreg\", \"in_dim\": 4, \"nclasses\": 3, \"sparse_input\": 0, "
         "\"hash_bits\": 0, \"hidden\": [], \"tables\": [{\"name\": \"w\", \"file\": "
         "\"w.npy\", \"shape\": [5, 3]}, {\"name\": \"b\", \"file\": \"b.npy\", \"shape\": "
         "[1, 3]}]}",
         "\"tables[0]\""},
        {"{\"model\": \"logreg\", \"in_dim\": 4, \"nclasses\": 3, \"sparse_input\": 0, "
         "\"hash_bits\": 0, \"hidden\": [], \"tables\": [{\"name\": \"w\", \"file\": "
         "\"w.npy\"}]}",
         "\"tables[0].shape\" is missing"},
        {"{\"model\": \"logreg\", \"in_dim\": 4, \"nclasses\": 3, \"sparse_input\": 2}",
         "\"sparse_input\""},
        {"{\"model\": \"logreg\"} x", "after the closing"},
        {"{\"format_version\": 2}", "\"format_version\": format version is not 1"},
        {"{\"model\": \"mlp\", \"hidden\": [1, 2, 3, 4, 5, 6, 7, 8, 9]}",
         "\"hidden\": more hidden layers"},
        {"{\"model\": \"logreg\", \"model\": \"mlp\"}", "\"model\": appears twice"},
        {"", "expected a JSON object"},
    };
    for (size_t i = 0; i < sizeof text_cases / sizeof text_cases[0]; i++) {
        ps_test_write_text(json, text_cases[i].text);
        expect_create_fails(mdir, PS_EFORMAT, json, text_cases[i].needle);
    }

    /* model.json fine, but the .npy holds another shape, or is missing. */
    write_json(mdir, "logreg", LD, 0, tabs, "");
    float w[2 * LC] = {0};
    uint64_t ws[2] = {2, LC};
    assert_int_equal(ps_npy_write(npy, w, ws, 2), 0);
    expect_create_fails(mdir, PS_EFORMAT, npy, "model.json says table 'w' is 4 x 3");
    assert_int_equal(unlink(npy), 0);
    expect_create_fails(mdir, PS_EIO, npy, "cannot open");
    /* A directory without model.json. */
    char empty[128];
    path_in(empty, sizeof empty, "no-such-model");
    expect_create_fails(empty, PS_EIO, "no-such-model/model.json", "cannot open");
}

static void test_predict_survives_oom_sweep(void **state)
{
    (void)state;
    char mdir[128], svm[128], out[128];
    path_in(mdir, sizeof mdir, "oom");
    path_in(svm, sizeof svm, "oom.svm");
    path_in(out, sizeof out, "oom-pred.txt");
    make_logreg_dir(mdir, 8, 1);
    ps_test_write_text(svm, "0 1:1.5 4:0.5\n2 3:2\n1 2:0.25 7:1 8:-1\n");
    ps_predict_cfg cfg = predict_cfg(mdir, svm, out, 0);
    ps_predict_result res;
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; rc == PS_ENOMEM && n < 1000; n++) {
        ps_test_fail_alloc(n);
        ps_test_capture cap;
        ps_test_capture_begin(&cap);
        rc = ps_predict_run(&cfg, &res);
        test_free(ps_test_capture_end(&cap));
        ps_test_fail_alloc(-1);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 5);
    assert_int_equal(res.samples, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_npy_read_round_trips_writer),
        T(test_npy_read_accepts_version_2_and_any_key_order),
        T(test_npy_read_reads_numpy_save),
        T(test_npy_read_rejects_bad_files),
        T(test_npy_read_missing_file_is_eio),
        T(test_npy_read_survives_oom_sweep),
        T(test_model_predict_agrees_with_evaluate),
        T(test_predict_scores_dense_logreg_on_idx),
        T(test_predict_scores_sparse_logreg_on_libsvm),
        T(test_predict_scores_across_chunks),
        T(test_predict_rejects_bad_model_json),
        T(test_predict_survives_oom_sweep),
#undef T
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
