/* Tests for worker/predict (and the pieces it uses elsewhere: model.bin as
 * worker/export.c writes it, ps_model_predict in worker/model.c): a saved
 * model reloads bit for bit and scores exactly as the model in memory,
 * per-sample prediction against evaluation, scoring saved models with
 * known weights (dense IDX and sparse libsvm) against a reference computed
 * here, every rejection of a bad model.bin naming the file and the field or
 * check, and OOM sweeps over export and predict. The LIBLINEAR conventions:
 * the data's own labels travel with the model and come back in --out, ids
 * past the model are ignored with one warning, --proba's probabilities;
 * model.json's typed configuration and model.npz read back in Python. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/file.h"
#include "worker/export.h"
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

/* The configuration a saved model records, one pair of each type. */
static const ps_metric_kv config_pairs[] = {
    PS_METRIC_S("cmd", "train"), PS_METRIC_S("note", "\"quoted\" caf\xc3\xa9"),
    PS_METRIC_I("batch", 32),    PS_METRIC_D("lr", 0.25),
    PS_METRIC_B("quiet", 0),
};

/* Saves model m with tables tabs into mdir the way training does (through
 * ps_export_save_tables: the .npy files, model.bin, model.npz, model.json),
 * with class labels (NULL: class c is label c). */
static void save_model_labels(const char *mdir, const ps_model *m, const float *const *tabs,
                              unsigned hash_bits, const int32_t *labs, uint32_t nlabels)
{
    ps_export_info info = {.clock = 60,
                           .averaged = 1,
                           .hash_bits = hash_bits,
                           .config_text = "cmd=train \"quoted\" caf\xc3\xa9",
                           .config = config_pairs,
                           .nconfig = sizeof config_pairs / sizeof config_pairs[0],
                           .labels = labs,
                           .nlabels = nlabels};
    assert_int_equal(ps_export_save_tables(m, tabs, &info, mdir), 0);
}

static void save_model(const char *mdir, const ps_model *m, const float *const *tabs,
                       unsigned hash_bits)
{
    save_model_labels(mdir, m, tabs, hash_bits, NULL, 0);
}

/* A logreg model dir with in_dim rows of weights w_at and the bias, its
 * classes labelled labels[0..LC) (NULL: 0..LC-1). */
static void make_logreg_dir_labels(const char *mdir, uint64_t in_dim, int sparse,
                                   const int32_t *labs)
{
    float w[16 * LC];
    for (uint64_t f = 0; f < in_dim; f++) {
        for (int c = 0; c < LC; c++) {
            w[f * LC + c] = w_at((int)f, c);
        }
    }
    ps_model_cfg mc = {.kind = PS_MODEL_LOGREG,
                       .in_dim = in_dim,
                       .nclasses = LC,
                       .sparse_input = sparse,
                       .init_override = -1,
                       .max_batch = 1};
    ps_model *m = NULL;
    assert_int_equal(ps_model_create(&m, &mc), 0);
    const float *tabs[2] = {w, bias};
    save_model_labels(mdir, m, tabs, 0, labs, labs ? LC : 0);
    ps_model_destroy(&m);
}

static void make_logreg_dir(const char *mdir, uint64_t in_dim, int sparse)
{
    make_logreg_dir_labels(mdir, in_dim, sparse, NULL);
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

static void reference_proba(const ref_row *rows, int n, int32_t *cls, double *acc, double *loss,
                            double *proba)
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
        for (int c = 0; proba && c < LC; c++) {
            proba[i * LC + c] = exp(z[c] - mx) / se;
        }
    }
    *acc = (double)good / n;
    *loss = lsum / n;
}

static void reference(const ref_row *rows, int n, int32_t *cls, double *acc, double *loss)
{
    reference_proba(rows, n, cls, acc, loss, NULL);
}

/* What `adamps predict --model mdir --test test [--out out] [--test-limit
 * limit] --quiet` hands ps_predict_run. */
static ps_predict_cfg predict_cfg(const char *mdir, const char *test, const char *out,
                                  uint64_t limit)
{
    ps_predict_cfg pc = {.model_dir = mdir, .out = out, .quiet = 1};
    pc.source = (ps_source_cfg){.dataset = "",
                                .data_dir = "",
                                .train = "",
                                .test = test,
                                .format = PS_FMT_AUTO,
                                .test_limit = limit};
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

/* The first four lines of the libsvm test files below, 0-based ids, and
 * their classes. */
static const ref_row sparse_rows[4] = {{2, {0, 3}, {1.5, 0.5}, 0},
                                       {1, {2}, {2.0}, 2},
                                       {3, {1, 6, 7}, {0.25, 1.5, -0.5}, 1},
                                       {0, {0}, {0}, 1}};

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
    int32_t want[4];
    double acc, loss;
    reference(sparse_rows, 4, want, &acc, &loss);

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

/* Creating a predictor from mdir fails with want_rc and a message that
 * names file and needle (the field or the check). */
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

/* The model.bin of a saved model, whole: header and payload (both freed by
 * bin_fini). */
typedef struct {
    char path[192];
    ps_file_header h;
    void *payload;
    size_t len;
} saved_bin;

static void bin_read(saved_bin *b, const char *mdir)
{
    snprintf(b->path, sizeof b->path, "%s/model.bin", mdir);
    assert_int_equal(ps_file_read(b->path, &b->h, &b->payload, &b->len), 0);
}

static void bin_fini(saved_bin *b)
{
    ps_free(b->payload);
    ps_file_header_fini(&b->h);
}

/* Rewrites model.bin (validly framed: right size, right CRC) with header h
 * and payload len bytes at payload. */
static void bin_write(const saved_bin *b, const ps_file_header *h, const void *payload, size_t len)
{
    const void *parts[] = {payload};
    assert_int_equal(ps_file_write_atomic(b->path, h, parts, &len, 1), 0);
}

/* Each edit of a well-framed header must be refused as PS_EFORMAT naming
 * model.bin and the field. */
static void test_predict_rejects_header_not_matching_tables(void **state)
{
    (void)state;
    char mdir[128];
    path_in(mdir, sizeof mdir, "badhdr");
    make_logreg_dir(mdir, LD, 0);
    saved_bin b;
    bin_read(&b, mdir);

    /* The file as written loads: the failures below are the edits. */
    ps_predictor *p = NULL;
    assert_int_equal(ps_predict_create(&p, mdir), 0);
    assert_int_equal(ps_predict_model_cfg(p)->in_dim, LD);
    assert_int_equal(ps_predict_model_cfg(p)->nclasses, LC);
    assert_int_equal(ps_predict_hash_bits(p), 0);
    ps_predict_destroy(&p);
    assert_null(p);

    enum {
        E_KIND,
        E_NOMODEL,
        E_MKIND,
        E_HIDDEN,
        E_INDIM,
        E_NCLASS1,
        E_NCLASS,
        E_NTABLES,
        E_NAME,
        E_NSTATE,
        E_HASH,
        E_FP,
        E_SHORT,
        E_NAN,
        E_NLABELS,
        E_LABEL_ORDER,
        E_COUNT
    };
    static const char *const needles[E_COUNT] = {
        "field \"kind\"",
        "field \"model\": missing",
        "field \"model.kind\": \"rnn\"",
        "field \"model.hidden\"",
        "field \"tables[0]\": table 'w' 4 x 3, but the model needs 'w' 5 x 3",
        "field \"model\": describes a model adamps cannot build",
        "field \"tables[0]\": table 'w' 4 x 3, but the model needs 'w' 4 x 4",
        "field \"tables\": 1 tables, but this logreg model has 2",
        "field \"tables[1]\": table 'bias'",
        "field \"tables[0]\": slots",
        "field \"model.hash_bits\"",
        "field \"model.hash_fingerprint\"",
        "field \"payload_bytes\"",
        "field \"tables[0] (w)\": non-finite weight nan at row 2, column 1",
        "field \"model.labels\": 2 labels for 3 classes",
        "field \"model.labels\": not ascending at 2 (1 after 5)",
    };
    for (int e = 0; e < E_COUNT; e++) {
        ps_file_header h = b.h;
        ps_file_table tables[2] = {b.h.tables[0], b.h.tables[1]};
        h.tables = tables;
        size_t len = b.len;
        float *payload = test_malloc(b.len);
        memcpy(payload, b.payload, b.len);
        switch (e) {
        case E_KIND:
            strcpy(h.kind, "shard");
            break;
        case E_NOMODEL:
            h.has_model = 0;
            break;
        case E_MKIND:
            strcpy(h.model.kind, "rnn"); /* a kind adamps does not have */
            break;
        case E_HIDDEN:
            h.model.nhidden = 1;
            h.model.hidden[0] = 5;
            break;
        case E_INDIM:
            h.model.in_dim = LD + 1;
            break;
        case E_NCLASS1:
            h.model.nclasses = 1;
            break;
        case E_NCLASS:
            h.model.nclasses = LC + 1;
            break;
        case E_NTABLES:
            h.ntables = 1;
            break;
        case E_NAME:
            strcpy(tables[1].name, "bias");
            break;
        case E_NSTATE:
            tables[0].nstate = 3;
            break;
        case E_HASH:
            h.model.hash_bits = 2; /* 2^2 = in_dim, but the input is dense */
            h.model.hash_fingerprint = ps_export_hash_fingerprint(2);
            break;
        case E_FP:
            h.model.hash_fingerprint = 1;
            break;
        case E_SHORT:
            len -= sizeof(float);
            break;
        case E_NAN:
            payload[2 * LC + 1] = NAN;
            break;
        case E_NLABELS:
            h.model.nlabels = 2;
            break;
        case E_LABEL_ORDER:
            h.model.nlabels = 3;
            h.model.labels[0] = -1;
            h.model.labels[1] = 5;
            h.model.labels[2] = 1;
            break;
        }
        bin_write(&b, &h, payload, len);
        expect_create_fails(mdir, PS_EFORMAT, b.path, needles[e]);
        test_free(payload);
    }
    bin_fini(&b);
}

/* Damage to the framing: a flipped payload byte (CRC), a truncated file, a
 * wrong magic; and a missing file. All name model.bin; the bad ones are
 * PS_EFORMAT (exit 2), the missing one PS_EIO. */
static void test_predict_rejects_corrupt_model_bin(void **state)
{
    (void)state;
    char mdir[128], path[192];
    path_in(mdir, sizeof mdir, "corrupt");
    make_logreg_dir(mdir, LD, 0);
    snprintf(path, sizeof path, "%s/model.bin", mdir);
    unsigned char raw[4096];
    size_t n = ps_test_read_file(path, raw, sizeof raw);
    assert_true(n > 64 && n < sizeof raw - 1);

    raw[n - 5] ^= 0x01; /* inside the bias */
    ps_test_write_file(path, raw, n);
    expect_create_fails(mdir, PS_EFORMAT, path, "CRC check failed");
    raw[n - 5] ^= 0x01;

    ps_test_write_file(path, raw, n - 4);
    expect_create_fails(mdir, PS_EFORMAT, path, "truncated");
    ps_test_write_file(path, raw, 6);
    expect_create_fails(mdir, PS_EFORMAT, path, "truncated inside the 8-byte prefix");

    raw[0] = 'X';
    ps_test_write_file(path, raw, n);
    expect_create_fails(mdir, PS_EFORMAT, path, "magic check failed");
    raw[0] = 'A';
    ps_test_write_file(path, raw, n);
    ps_predictor *p = NULL;
    assert_int_equal(ps_predict_create(&p, mdir), 0);
    ps_predict_destroy(&p);

    assert_int_equal(unlink(path), 0);
    expect_create_fails(mdir, PS_EIO, path, "cannot open");
    char empty[128];
    path_in(empty, sizeof empty, "no-such-model");
    expect_create_fails(empty, PS_EIO, "no-such-model/model.bin", "cannot open");
}

/* A model trained on labels -1, 4, 7 (classes 0, 1, 2) predicts those
 * labels; a feature id past the model's 8 is ignored (and counted in one
 * warning), as LIBLINEAR does; --proba writes "labels -1 4 7" and each
 * sample's label and probabilities in that order; a label the model does
 * not know is refused at its line. */
static void test_predict_speaks_the_data_labels(void **state)
{
    (void)state;
    static const int32_t labs[LC] = {-1, 4, 7};
    char mdir[128], svm[128], out[128];
    path_in(mdir, sizeof mdir, "labels");
    path_in(svm, sizeof svm, "labels.svm");
    path_in(out, sizeof out, "labels-pred.txt");
    make_logreg_dir_labels(mdir, 8, 1, labs);
    ps_test_write_text(svm, "-1 1:1.5 4:0.5 20:3\n"
                            "7 3:2\n"
                            "4 2:0.25 7:1.5 8:-0.5 9:1 30:2\n"
                            "4\n");
    int32_t want[4];
    double acc, loss, proba[4 * LC];
    /* Ids 20, 9 and 30 are past the model: the rows are the same. */
    reference_proba(sparse_rows, 4, want, &acc, &loss, proba);

    /* model.bin carries the labels. */
    saved_bin b;
    bin_read(&b, mdir);
    assert_int_equal(b.h.model.nlabels, LC);
    assert_memory_equal(b.h.model.labels, labs, sizeof labs);
    bin_fini(&b);
    ps_predictor *p = NULL;
    assert_int_equal(ps_predict_create(&p, mdir), 0);
    assert_int_equal(ps_predict_label(p, 0), -1);
    assert_int_equal(ps_predict_label(p, 2), 7);
    ps_predict_destroy(&p);

    ps_predict_cfg cfg = predict_cfg(mdir, svm, out, 0);
    ps_predict_result res;
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    assert_int_equal(ps_predict_run(&cfg, &res), 0);
    char *log = ps_test_capture_end(&cap);
    if (!strstr(log, "ignored 3 feature ids in 2 samples that are past the model's 8 features")) {
        fail_msg("no warning counting the ignored ids: %s", log);
    }
    assert_int_equal(ps_test_count_lines(log), 1);
    test_free(log);
    assert_int_equal(res.samples, 4);
    assert_true(fabs(res.accuracy - acc) < 1e-12);
    assert_true(fabs(res.loss - loss) < 1e-5);
    int32_t want_labels[4];
    for (int i = 0; i < 4; i++) {
        want_labels[i] = labs[want[i]];
    }
    check_out_file(out, want_labels, 4);

    cfg.proba = 1;
    ps_test_capture_begin(&cap);
    assert_int_equal(ps_predict_run(&cfg, &res), 0);
    test_free(ps_test_capture_end(&cap));
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char head[64];
    assert_non_null(fgets(head, sizeof head, f));
    assert_string_equal(head, "labels -1 4 7\n");
    for (int i = 0; i < 4; i++) {
        int lab;
        double pr[LC], sum = 0;
        assert_int_equal(fscanf(f, "%d %lf %lf %lf", &lab, &pr[0], &pr[1], &pr[2]), 4);
        assert_int_equal(lab, want_labels[i]);
        for (int c = 0; c < LC; c++) {
            assert_true(fabs(pr[c] - proba[i * LC + c]) < 1e-5);
            sum += pr[c];
        }
        assert_true(fabs(sum - 1) < 1e-5);
    }
    int extra;
    assert_int_equal(fscanf(f, "%d", &extra), EOF);
    fclose(f);

    /* A label outside the model's: refused at its line. */
    ps_test_write_text(svm, "-1 1:1\n5 2:1\n");
    cfg.proba = 0;
    PS_TEST_EXPECT_LOG(ps_predict_run(&cfg, &res), PS_EFORMAT,
                       "labels.svm:2: label 5 is not one of the 3 labels (-1, 4, 7)");
}

/* ---- round trips ---- */

/* Scores b on the in-memory model m with tables tabs the way predict does
 * (the rows each chunk needs, gathered by key) but without predict's code:
 * the reference that a reloaded model must match exactly. */
static void score_in_memory(ps_model *m, const float *const *tabs, const ps_batch *b, double *loss,
                            size_t *good, int32_t *classes)
{
    uint32_t nt = ps_model_ntables(m);
    ps_keylist keys[PS_MODEL_MAX_TABLES];
    memset(keys, 0, sizeof keys);
    assert_int_equal(ps_model_batch_keys(m, b, keys), 0);
    float *rows[PS_MODEL_MAX_TABLES];
    const float *params[PS_MODEL_MAX_TABLES];
    for (uint32_t t = 0; t < nt; t++) {
        uint32_t w = ps_model_table(m, t)->width;
        rows[t] = test_malloc((keys[t].n ? keys[t].n : 1) * w * sizeof(float));
        for (size_t i = 0; i < keys[t].n; i++) {
            memcpy(rows[t] + i * w, tabs[t] + keys[t].keys[i] * w, w * sizeof(float));
        }
        params[t] = rows[t];
    }
    assert_int_equal(ps_model_evaluate(m, b, keys, params, loss, good), 0);
    assert_int_equal(ps_model_predict(m, b, keys, params, classes), 0);
    for (uint32_t t = 0; t < nt; t++) {
        test_free(rows[t]);
    }
    ps_model_keys_fini(keys, nt);
}

/* An MLP with random weights, saved and reloaded: model.bin's payload is
 * the tables bit for bit, its header says what was saved, the .npy files
 * and model.json are beside it, and the reloaded model's loss, accuracy
 * and classes equal the in-memory model's exactly (dense input, and sparse
 * input with hashed features). */
static void round_trip(int sparse)
{
    enum { N = 300, H1 = 7, H2 = 5, C = 4 };
    const unsigned hash_bits = sparse ? 6 : 0;
    const uint64_t D = sparse ? 1u << hash_bits : 12;
    ps_model_cfg mc = {.kind = PS_MODEL_MLP,
                       .in_dim = D,
                       .nclasses = C,
                       .sparse_input = sparse,
                       .nhidden = 2,
                       .hidden = {H1, H2},
                       .init_override = -1,
                       .max_batch = PS_PREDICT_CHUNK};
    ps_model *m = NULL;
    assert_int_equal(ps_model_create(&m, &mc), 0);
    uint32_t nt = ps_model_ntables(m);
    float *tabs[PS_MODEL_MAX_TABLES];
    size_t bytes = 0;
    uint64_t s = 1234 + (uint64_t)sparse;
    for (uint32_t t = 0; t < nt; t++) {
        const ps_table_desc *d = ps_model_table(m, t);
        tabs[t] = test_malloc(d->rows * d->width * sizeof(float));
        for (size_t i = 0; i < d->rows * d->width; i++) {
            tabs[t][i] = lcg(&s) * 1.5f;
        }
        bytes += d->rows * d->width * sizeof(float);
    }
    char mdir[128], path[192];
    path_in(mdir, sizeof mdir, sparse ? "rt-sparse" : "rt-dense");
    save_model(mdir, m, (const float *const *)tabs, hash_bits);

    saved_bin b;
    bin_read(&b, mdir);
    assert_string_equal(b.h.kind, "model");
    assert_int_equal(b.h.clock, 60);
    assert_string_equal(b.h.config, "cmd=train \"quoted\" caf\xc3\xa9");
    assert_int_equal(b.h.has_model, 1);
    assert_string_equal(b.h.model.kind, "mlp");
    assert_int_equal(b.h.model.in_dim, D);
    assert_int_equal(b.h.model.nclasses, C);
    assert_int_equal(b.h.model.sparse_input, sparse);
    assert_int_equal(b.h.model.hash_bits, hash_bits);
    assert_int_equal(b.h.model.hash_fingerprint, ps_export_hash_fingerprint(hash_bits));
    assert_true(hash_bits == 0 || b.h.model.hash_fingerprint != 0);
    assert_int_equal(b.h.model.nhidden, 2);
    assert_int_equal(b.h.model.hidden[1], H2);
    assert_int_equal(b.h.model.averaged, 1);
    assert_int_equal(b.h.ntables, nt);
    assert_int_equal(b.len, bytes);
    size_t off = 0;
    for (uint32_t t = 0; t < nt; t++) {
        const ps_table_desc *d = ps_model_table(m, t);
        assert_string_equal(b.h.tables[t].name, d->name);
        assert_memory_equal((char *)b.payload + off, tabs[t], d->rows * d->width * sizeof(float));
        off += d->rows * d->width * sizeof(float);
        struct stat st;
        snprintf(path, sizeof path, "%s/%s.npy", mdir, d->name);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size % 64, (d->rows * d->width * 4) % 64);
    }
    bin_fini(&b);
    snprintf(path, sizeof path, "%s/model.json", mdir);
    assert_int_equal(access(path, R_OK), 0);

    /* A batch with every class and, for sparse input, some features absent. */
    float x[N * 12];
    int32_t y[N];
    uint64_t indptr[N + 1], idx[N * 3];
    float val[N * 3];
    ps_batch bt = {.n = N, .dim = D, .nclasses = C, .sparse = sparse, .y = y};
    indptr[0] = 0;
    for (size_t i = 0; i < N; i++) {
        y[i] = (int32_t)(i % C);
        if (sparse) {
            size_t k = indptr[i];
            for (uint64_t f = i % 5; f < D && k - indptr[i] < 3; f += 7 + i % 11) {
                idx[k] = f;
                val[k++] = lcg(&s);
            }
            indptr[i + 1] = k;
        } else {
            for (size_t f = 0; f < D; f++) {
                x[i * D + f] = lcg(&s);
            }
        }
    }
    if (sparse) {
        bt.indptr = indptr;
        bt.idx = idx;
        bt.val = val;
    } else {
        bt.x = x;
    }
    double want_loss, got_loss;
    size_t want_good, got_good;
    int32_t want_cls[N], got_cls[N];
    score_in_memory(m, (const float *const *)tabs, &bt, &want_loss, &want_good, want_cls);
    ps_predictor *p = NULL;
    assert_int_equal(ps_predict_create(&p, mdir), 0);
    assert_int_equal(ps_predict_hash_bits(p), hash_bits);
    assert_int_equal(ps_predict_model_cfg(p)->nhidden, 2);
    assert_int_equal(ps_predict_score(p, &bt, &got_loss, &got_good, got_cls), 0);
    assert_true(got_loss == want_loss);
    assert_int_equal(got_good, want_good);
    assert_memory_equal(got_cls, want_cls, sizeof got_cls);
    assert_true(want_good > 0 && want_good < N); /* not a degenerate model */
    ps_predict_destroy(&p);
    for (uint32_t t = 0; t < nt; t++) {
        test_free(tabs[t]);
    }
    ps_model_destroy(&m);
}

static void test_predict_round_trips_dense_mlp(void **state)
{
    (void)state;
    round_trip(0);
}

static void test_predict_round_trips_sparse_hashed_mlp(void **state)
{
    (void)state;
    round_trip(1);
}

/* model.json, for humans and numpy: valid JSON (the config text with its
 * quotes and UTF-8 intact), the architecture, and the tables with their
 * .npy files and shapes, which numpy loads. */
static void test_export_model_json_describes_the_tables(void **state)
{
    (void)state;
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        skip();
    }
    char mdir[128], cmd[2048];
    path_in(mdir, sizeof mdir, "json");
    make_logreg_dir(mdir, 8, 1);
    snprintf(
        cmd, sizeof cmd,
        "/usr/bin/python3 -c 'import json, os, sys\n"
        "import numpy as np\n"
        "d = sys.argv[1]\n"
        "m = json.load(open(os.path.join(d, \"model.json\"), encoding=\"utf-8\"))\n"
        "assert m[\"model\"] == \"logreg\" and m[\"in_dim\"] == 8, m\n"
        "assert m[\"nclasses\"] == 3 and m[\"sparse_input\"] is True, m\n"
        "assert m[\"labels\"] == [0, 1, 2], m\n"
        "assert m[\"adamps_version\"] == sys.argv[2], m\n"
        "assert m[\"hidden\"] == [] and m[\"averaged\"] is True and m[\"clock\"] == 60, m\n"
        "assert m[\"model_file\"] == \"model.bin\" and m[\"npz_file\"] == \"model.npz\", m\n"
        "assert m[\"config\"] == {\"cmd\": \"train\", \"note\": \"\\\"quoted\\\" caf\\u00e9\",\n"
        "    \"batch\": 32, \"lr\": 0.25, \"quiet\": False}, m[\"config\"]\n"
        "assert \"feature_hash\" not in m, m\n"
        "assert [t[\"name\"] for t in m[\"tables\"]] == [\"w\", \"b\"], m\n"
        "z = np.load(os.path.join(d, \"model.npz\"))\n"
        "assert sorted(z.files) == [\"b\", \"w\"], z.files\n"
        "for t in m[\"tables\"]:\n"
        "    a = np.load(os.path.join(d, t[\"file\"]))\n"
        "    assert a.dtype == np.float32 and list(a.shape) == t[\"shape\"], t\n"
        "    assert z[t[\"name\"]].dtype == np.float32 and (z[t[\"name\"]] == a).all(), t\n"
        "assert np.load(os.path.join(d, \"b.npy\"))[0, 1] == np.float32(0.3)\n' '%s' '%s'",
        mdir, PS_VERSION);
    assert_int_equal(system(cmd), 0);
}

/* Calls fn(arg) failing allocation 0, 1, 2, ... (log lines swallowed)
 * until it stops returning PS_ENOMEM; it must then succeed (cmocka checks
 * every try for leaks). Returns the number of tries. */
static long oom_sweep(int (*fn)(void *), void *arg)
{
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; rc == PS_ENOMEM && n < 1000; n++) {
        ps_test_fail_alloc(n);
        ps_test_capture cap;
        ps_test_capture_begin(&cap);
        rc = fn(arg);
        test_free(ps_test_capture_end(&cap));
        ps_test_fail_alloc(-1);
    }
    assert_int_equal(rc, 0);
    return n;
}

typedef struct {
    const ps_model *m;
    const float *const *tabs;
    ps_export_info info;
    const char *dir;
} export_args;

static int run_export(void *arg)
{
    export_args *a = arg;
    return ps_export_save_tables(a->m, a->tabs, &a->info, a->dir);
}

typedef struct {
    const ps_predict_cfg *cfg;
    ps_predict_result res;
} run_args;

static int run_predict(void *arg)
{
    run_args *a = arg;
    return ps_predict_run(a->cfg, &a->res);
}

/* Export cleans up after every failed allocation, and what it finally
 * writes loads. */
static void test_export_survives_oom_sweep(void **state)
{
    (void)state;
    char mdir[128];
    path_in(mdir, sizeof mdir, "export-oom");
    ps_model_cfg mc = {.kind = PS_MODEL_MLP,
                       .in_dim = 3,
                       .nclasses = 2,
                       .nhidden = 1,
                       .hidden = {2},
                       .init_override = -1,
                       .max_batch = 1};
    ps_model *m = NULL;
    assert_int_equal(ps_model_create(&m, &mc), 0);
    float w1[6] = {1, 2, 3, 4, 5, 6}, b1[2] = {0.5f, -0.5f}, w2[4] = {1, -1, 2, -2}, b2[2] = {0};
    const float *tabs[4] = {w1, b1, w2, b2};
    export_args a = {m, tabs, {.clock = 1, .config_text = "x"}, mdir};
    /* The .npy, model.bin and model.json writers all fail once on the way. */
    assert_true(oom_sweep(run_export, &a) > 10);
    ps_model_destroy(&m);
    ps_predictor *p = NULL;
    assert_int_equal(ps_predict_create(&p, mdir), 0);
    ps_predict_destroy(&p);
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
    run_args a = {.cfg = &cfg};
    assert_true(oom_sweep(run_predict, &a) > 5);
    assert_int_equal(a.res.samples, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_model_predict_agrees_with_evaluate),
        T(test_predict_scores_dense_logreg_on_idx),
        T(test_predict_scores_sparse_logreg_on_libsvm),
        T(test_predict_scores_across_chunks),
        T(test_predict_speaks_the_data_labels),
        T(test_predict_rejects_header_not_matching_tables),
        T(test_predict_rejects_corrupt_model_bin),
        T(test_predict_round_trips_dense_mlp),
        T(test_predict_round_trips_sparse_hashed_mlp),
        T(test_export_model_json_describes_the_tables),
        T(test_export_survives_oom_sweep),
        T(test_predict_survives_oom_sweep),
#undef T
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
