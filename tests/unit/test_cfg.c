/* Tests for cli/cfg.c: defaults (per optimizer and per model too), every
 * flag in both spellings, every rejection naming its flag, the run-header
 * line and its round trip row by row, and --help. Parsing allocates
 * nothing, so there is no OOM sweep; the checked allocator still runs to
 * prove that. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cfg.h"
#include "common/log.h"
#include "common/err.h"
#include "tests/unit/ps_test.h"

#define MAX_ARGS 32

/* Parses {"adamps", args..., NULL}. */
static int parse_list(ps_cfg *c, char *err, size_t errlen, const char *const *args)
{
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)"adamps";
    for (int i = 0; args[i] && argc < MAX_ARGS; i++) {
        argv[argc++] = (char *)args[i];
    }
    argv[argc] = NULL;
    return ps_cfg_parse(c, argc, argv, err, errlen);
}

#define PARSE(c, err, ...)                                                                         \
    parse_list((c), (err), sizeof(err), (const char *const[]){__VA_ARGS__, NULL})

/* Value of key in a formatted header line, unquoted; "" when absent. */
static void header_value(const char *line, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *p = strstr(line, pat);
    if (!p && strncmp(line, pat + 1, strlen(pat + 1)) == 0) {
        p = line - 1; /* key is the first pair */
    }
    out[0] = '\0';
    if (!p) {
        return;
    }
    p += strlen(pat);
    size_t n = 0;
    if (*p == '"') {
        for (p++; *p && *p != '"' && n + 1 < cap; p++) {
            if (*p == '\\' && p[1]) {
                p++;
            }
            out[n++] = *p;
        }
    } else {
        for (; *p && *p != ' ' && n + 1 < cap; p++) {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

static void test_cfg_defaults_are_the_papers_and_the_headers(void **state)
{
    (void)state;
    ps_cfg c;
    ps_cfg_defaults(&c);
    /* Kingma & Ba 2015, Algorithm 1. */
    assert_true(c.opt.lr == 0.001f);
    assert_true(c.opt.beta1 == 0.9f);
    assert_true(c.opt.beta2 == 0.999f);
    assert_true(c.opt.eps == 1e-8f);
    assert_int_equal(c.opt.bias_correction, 1);
    assert_int_equal(c.opt.kind, PS_OPT_ADAM);
    assert_int_equal(c.opt.schedule, PS_LR_CONST);

    assert_int_equal(c.cmd, PS_CMD_TRAIN);
    assert_int_equal(c.model, PS_MODEL_MLP);
    assert_int_equal(c.nhidden, 2);
    assert_int_equal(c.hidden[0], 1000);
    assert_int_equal(c.hidden[1], 1000);
    assert_true(c.dropout_input == 0.2f); /* the MLP's, section 6.2 */
    assert_true(c.dropout == 0.5f);
    assert_true(c.l2 == 0.0f);
    assert_int_equal(c.init, -1);
    assert_string_equal(c.dataset, "");
    assert_string_equal(c.data_dir, "/usr/share/datasets/fashion-mnist");
    assert_string_equal(c.train, "");
    assert_int_equal(c.format, PS_FMT_AUTO);
    assert_int_equal(c.synthetic, 0);
    assert_int_equal(c.synth.n, 100000);
    assert_int_equal(c.synth.nfeatures, 1u << 20);
    assert_int_equal(c.synth.nnz, 20);
    assert_int_equal(c.synth.nclasses, 2);
    assert_true(c.synth.zipf_s == 1.1);
    assert_true(c.synth.noise == 0.1);
    assert_int_equal(c.synth_test, 10000);
    assert_int_equal(c.hash_bits, 0);
    assert_int_equal(c.stream, PS_STREAM_AUTO);
    /* Adam reads neither: the values in force are ps_opt_defaults' zeros. */
    assert_true(c.opt.momentum == 0.0f);
    assert_true(c.opt.weight_decay == 0.0f);
    assert_true(c.temporal_averaging == 0.0f);
    assert_int_equal(c.sparse_lazy, 1);
    assert_int_equal(c.batch, 128);
    assert_true(c.epochs == 3.0);
    assert_int_equal(c.steps, 0);
    assert_int_equal(c.seed, 1);
    assert_int_equal(c.shuffle, 1);
    assert_int_equal(c.servers, 0);
    assert_int_equal(c.shard, PS_SHARD_RANGE);
    assert_int_equal(c.sync, PS_SYNC_BSP);
    assert_int_equal(c.nonfinite_skip, 0);
    assert_true(c.delay_ms == 0.0);
    assert_int_equal(c.eval_every, 0);
    assert_int_equal(c.ckpt_every, 0);
    assert_int_equal(c.resume, 0);
    assert_int_equal(c.quiet, 0);
    assert_int_equal(c.log_json, 0);
    assert_true(c.progress_secs == 5.0);
}

/* One flag, its value, the arguments it needs around it, and what it must
 * change relative to parsing those arguments alone. */
typedef struct {
    const char *flag;
    const char *value; /* NULL: boolean */
    int base;          /* B_* bits: the arguments the flag needs around it */
    void (*expect)(ps_cfg *c);
} flag_case;

/* B_TRAIN: --train alone (--holdout stands for --test); B_PREDICT: the
 * predict command with --model, --test and --out. */
enum { B_NONE = 0, B_FILES = 1, B_CKPT = 2, B_TRAIN = 4, B_PREDICT = 8 };

#define EXPECT(name, body)                                                                         \
    static void name(ps_cfg *c)                                                                    \
    {                                                                                              \
        body;                                                                                      \
    }

/* A path field as the parser leaves it: the text, then zeros. */
#define SET(field, text) (memset((field), 0, sizeof(field)), strcpy((field), (text)))

EXPECT(x_model, c->model = PS_MODEL_LOGREG; c->dropout_input = 0.0f; c->dropout = 0.0f)
EXPECT(x_hidden, c->nhidden = 3; c->hidden[0] = 64; c->hidden[1] = 32; c->hidden[2] = 16)
EXPECT(x_dropout_input, c->dropout_input = 0.25f)
EXPECT(x_dropout, c->dropout = 0.125f)
EXPECT(x_activation, c->activation = PS_ACT_TANH)
EXPECT(x_conv, c->nconv = 3; c->conv[0] = 8; c->conv[1] = 16; c->conv[2] = 4; c->conv_fc = 64)
EXPECT(x_latent, c->latent = 7)
EXPECT(x_l2, c->l2 = 0.5f)
EXPECT(x_init, c->init = PS_INIT_GLOROT)
EXPECT(x_dataset, SET(c->dataset, "fashion-mnist"); c->format = PS_FMT_IDX)
EXPECT(x_data_dir, SET(c->data_dir, "/data/fm"))
EXPECT(x_train, SET(c->train, "other.svm"))
EXPECT(x_test, SET(c->test, "other.svm"))
EXPECT(x_format, c->format = PS_FMT_IDX)
EXPECT(x_zero_based, c->zero_based = 1)
EXPECT(x_synthetic, c->synthetic = 1; c->synth.n = 5000; c->synth.nfeatures = 4096;
       c->synth.nnz = 7; c->synth.nclasses = 3; c->synth_test = 500)
EXPECT(x_hash_bits, c->hash_bits = 18)
EXPECT(x_features, c->features = 123)
EXPECT(x_train_limit, c->train_limit = 1000)
EXPECT(x_test_limit, c->test_limit = 200)
EXPECT(x_stream, c->stream = PS_STREAM_ON)
EXPECT(x_holdout, c->holdout = 0.25)
EXPECT(x_labels, SET(c->labels, "-1,1,7"))
EXPECT(x_log_every, c->log_every = 25)
EXPECT(x_proba, c->proba = 1)
/* AMSGrad's defaults are Adam's, so only the kind changes. */
EXPECT(x_optimizer, c->opt.kind = PS_OPT_AMSGRAD)
EXPECT(x_lr, c->opt.lr = 0.25f)
EXPECT(x_beta1, c->opt.beta1 = 0.5f)
EXPECT(x_beta2, c->opt.beta2 = 0.75f)
EXPECT(x_eps, c->opt.eps = 1e-6f)
EXPECT(x_no_bias_correction, c->opt.bias_correction = 0)
EXPECT(x_lr_schedule, c->opt.schedule = PS_LR_INVSQRT)
EXPECT(x_momentum, c->opt.momentum = 0.5f)
EXPECT(x_weight_decay, c->opt.weight_decay = 0.25f)
EXPECT(x_temporal_averaging, c->temporal_averaging = 0.75f)
EXPECT(x_sparse_update, c->sparse_lazy = 0)
EXPECT(x_batch, c->batch = 32)
EXPECT(x_epochs, c->epochs = 2.5)
EXPECT(x_steps, c->steps = 100)
EXPECT(x_seed, c->seed = 18446744073709551615ULL)
EXPECT(x_shuffle, c->shuffle = 0)
EXPECT(x_servers, c->servers = 2)
EXPECT(x_shard, c->shard = PS_SHARD_HASH)
EXPECT(x_consistency, c->sync = PS_SYNC_SSP; c->staleness = 3)
EXPECT(x_nonfinite, c->nonfinite_skip = 1)
EXPECT(x_peer_timeout, c->peer_timeout = 2.5)
EXPECT(x_keep_ckpts, c->keep_ckpts = 5)
EXPECT(x_resume_allow, SET(c->resume_allow, "lr,eval-every"))
EXPECT(x_delay, c->delay_ms = 2.5)
EXPECT(x_reply_chunk, c->reply_chunk = 16384)
EXPECT(x_max_memory, c->max_memory = (uint64_t)3 << 29)
EXPECT(x_eval_every, c->eval_every = 50)
EXPECT(x_eval_train, c->eval_train = 500)
EXPECT(x_eval_samples, c->eval_samples = 200)
EXPECT(x_metrics, SET(c->metrics, "m.jsonl"))
EXPECT(x_save_model, SET(c->save_model, "model"))
EXPECT(x_ckpt_dir, SET(c->ckpt_dir, "ck"))
EXPECT(x_ckpt_every, c->ckpt_every = 10)
EXPECT(x_resume, c->resume = 1)
EXPECT(x_quiet, c->quiet = 1)
EXPECT(x_log_format, c->log_json = 1)
EXPECT(x_progress, c->progress_secs = 0.5)
EXPECT(x_clock_log, SET(c->clock_log, "clocks.txt"))
EXPECT(x_out, SET(c->out, "o.txt"))

static const flag_case flag_cases[] = {
    {"model", "logreg", B_FILES, x_model},
    {"hidden", "64,32,16", B_FILES, x_hidden},
    {"dropout-input", "0.25", B_FILES, x_dropout_input},
    {"dropout", "0.125", B_FILES, x_dropout},
    {"activation", "tanh", B_FILES, x_activation},
    {"conv", "c8-c16-c4-64", B_FILES, x_conv},
    {"latent", "7", B_FILES, x_latent},
    {"l2", "0.5", B_FILES, x_l2},
    {"init", "glorot", B_FILES, x_init},
    {"dataset", "fashion-mnist", B_NONE, x_dataset},
    {"data-dir", "/data/fm", B_FILES, x_data_dir},
    {"train", "other.svm", B_FILES, x_train},
    {"test", "other.svm", B_FILES, x_test},
    {"format", "idx", B_FILES, x_format},
    {"zero-based", NULL, B_FILES, x_zero_based},
    {"synthetic", "rows=5000,features=4096,nnz=7,classes=3", B_NONE, x_synthetic},
    {"hash-bits", "18", B_FILES, x_hash_bits},
    {"features", "123", B_FILES, x_features},
    {"train-limit", "1000", B_FILES, x_train_limit},
    {"test-limit", "200", B_FILES, x_test_limit},
    {"stream", "on", B_FILES, x_stream},
    {"holdout", "0.25", B_TRAIN, x_holdout},
    {"labels", "-1,1,7", B_FILES, x_labels},
    {"log-every", "25", B_FILES, x_log_every},
    {"proba", NULL, B_PREDICT, x_proba},
    {"optimizer", "amsgrad", B_FILES, x_optimizer},
    {"lr", "0.25", B_FILES, x_lr},
    {"beta1", "0.5", B_FILES, x_beta1},
    {"beta2", "0.75", B_FILES, x_beta2},
    {"eps", "1e-6", B_FILES, x_eps},
    {"no-bias-correction", NULL, B_FILES, x_no_bias_correction},
    {"lr-schedule", "invsqrt", B_FILES, x_lr_schedule},
    {"momentum", "0.5", B_FILES, x_momentum},
    {"weight-decay", "0.25", B_FILES, x_weight_decay},
    {"temporal-averaging", "0.75", B_FILES, x_temporal_averaging},
    {"sparse-update", "dense", B_FILES, x_sparse_update},
    {"batch", "32", B_FILES, x_batch},
    {"epochs", "2.5", B_FILES, x_epochs},
    {"steps", "100", B_FILES, x_steps},
    {"seed", "18446744073709551615", B_FILES, x_seed},
    {"shuffle", "off", B_FILES, x_shuffle},
    {"servers", "2", B_FILES, x_servers},
    {"shard", "hash", B_FILES, x_shard},
    {"consistency", "ssp:3", B_FILES, x_consistency},
    {"nonfinite", "skip", B_FILES, x_nonfinite},
    {"peer-timeout", "2.5", B_FILES, x_peer_timeout},
    {"inject-delay-ms", "2.5", B_FILES, x_delay},
    {"reply-chunk", "16384", B_FILES, x_reply_chunk},
    {"max-memory", "1536M", B_FILES, x_max_memory},
    {"eval-every", "50", B_FILES, x_eval_every},
    {"eval-train", "500", B_FILES, x_eval_train},
    {"eval-samples", "200", B_FILES, x_eval_samples},
    {"metrics", "m.jsonl", B_FILES, x_metrics},
    {"save-model", "model", B_FILES, x_save_model},
    {"checkpoint-dir", "ck", B_FILES, x_ckpt_dir},
    {"checkpoint-every", "10", B_FILES | B_CKPT, x_ckpt_every},
    {"keep-checkpoints", "5", B_FILES | B_CKPT, x_keep_ckpts},
    {"resume", NULL, B_FILES | B_CKPT, x_resume},
    {"resume-allow", "lr,eval-every", B_FILES, x_resume_allow},
    {"quiet", NULL, B_FILES, x_quiet},
    {"log-format", "json", B_FILES, x_log_format},
    {"progress-every", "0.5", B_FILES, x_progress},
    {"clock-log", "clocks.txt", B_FILES, x_clock_log},
    {"out", "o.txt", B_FILES, x_out},
};

/* Parses "train", base arguments and the flag in the given spelling
 * (joined: --flag=value). */
static int parse_case(const flag_case *fc, int joined, ps_cfg *c, char *err, size_t errlen)
{
    const char *args[MAX_ARGS];
    char eqform[128];
    char dashed[64];
    int n = 0;
    args[n++] = fc->base & B_PREDICT ? "predict" : "train";
    if (fc->base & B_TRAIN) {
        args[n++] = "--train";
        args[n++] = "a.svm";
    }
    if (fc->base & B_PREDICT) {
        args[n++] = "--model";
        args[n++] = "m";
        args[n++] = "--test";
        args[n++] = "b.svm";
        args[n++] = "--out";
        args[n++] = "o.txt";
    }
    if (fc->base & B_FILES) {
        args[n++] = "--train";
        args[n++] = "a.svm";
        args[n++] = "--test";
        args[n++] = "b.svm";
    }
    if (fc->base & B_CKPT) {
        args[n++] = "--checkpoint-dir";
        args[n++] = "ck";
    }
    snprintf(dashed, sizeof dashed, "--%s", fc->flag);
    if (!fc->value) {
        args[n++] = dashed;
    } else if (joined) {
        snprintf(eqform, sizeof eqform, "--%s=%s", fc->flag, fc->value);
        args[n++] = eqform;
    } else {
        args[n++] = dashed;
        args[n++] = fc->value;
    }
    args[n] = NULL;
    return parse_list(c, err, errlen, args);
}

/* The config the base arguments alone stand for, built by hand. */
static void base_config(const flag_case *fc, ps_cfg *c)
{
    ps_cfg_defaults(c);
    if (fc->base & (B_FILES | B_TRAIN)) {
        SET(c->train, "a.svm");
    }
    if (fc->base & (B_FILES | B_PREDICT)) {
        SET(c->test, "b.svm");
    }
    if (fc->base & B_PREDICT) {
        c->cmd = PS_CMD_PREDICT;
        SET(c->model_dir, "m");
        SET(c->out, "o.txt");
    }
    if (fc->base & B_CKPT) {
        SET(c->ckpt_dir, "ck");
    }
}

static void test_cfg_parses_every_flag_in_both_spellings(void **state)
{
    (void)state;
    char err[256];
    static char line_base[8192], line_flag[8192];
    for (size_t i = 0; i < sizeof flag_cases / sizeof flag_cases[0]; i++) {
        const flag_case *fc = &flag_cases[i];
        ps_cfg base, expect, got;
        base_config(fc, &base);
        base_config(fc, &expect);
        fc->expect(&expect);
        for (int joined = 0; joined < 2; joined++) {
            int rc = parse_case(fc, joined, &got, err, sizeof err);
            if (rc != 0) {
                print_error("--%s (%s): %s\n", fc->flag, joined ? "joined" : "split", err);
            }
            assert_int_equal(rc, 0);
            if (memcmp(&got, &expect, sizeof got) != 0) {
                print_error("--%s (%s) did not set what was expected\n", fc->flag,
                            joined ? "joined" : "split");
                fail();
            }
        }
        /* The run header must show every flag's effect. */
        ps_cfg_format(&base, line_base, sizeof line_base);
        ps_cfg_format(&got, line_flag, sizeof line_flag);
        if (strcmp(line_base, line_flag) == 0) {
            print_error("--%s does not show in ps_cfg_format\n", fc->flag);
            fail();
        }
    }
}

static void test_cfg_flag_table_covers_the_usage(void **state)
{
    (void)state;
    /* A tmpfile, not open_memstream: cmocka renames free() in tests, and
     * the stream's buffer comes from the C library. */
    static char text[32768];
    FILE *f = tmpfile();
    assert_non_null(f);
    ps_cfg_usage(f);
    rewind(f);
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    assert_true(len > 0 && len < sizeof text - 1);
    text[len] = '\0';
    for (size_t i = 0; i < sizeof flag_cases / sizeof flag_cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "--%s ", flag_cases[i].flag);
        if (!strstr(text, name)) {
            print_error("usage lacks %s\n", name);
            fail();
        }
    }
    const char *must[] = {
        "model:",
        "data:",
        "optimizer:",
        "schedule:",
        "cluster:",
        "output:",
        "train ",
        "predict ",
        "synth ",
        "mpirun -np 3 ./adamps train --dataset fashion-mnist --servers 1",
        "(default: per optimizer: adam 0.001, adamax 0.002,",
        "rmsprop 0.99,",
        "(default: per optimizer: adam 1e-08,",
        "adagrad 1e-10",
        "(default: per optimizer: nesterov 0.9)",
        "(default: per optimizer: adamw 0.01)",
        "(default: per model: logreg 0, mlp 0.2,",
        "mlp 0.5, cnn 0.5, vae 0)",
        "(default: 128)",
        "(default: bsp)",
        "(default: per model: logreg 1000,1000,",
        "cnn none, vae 500)",
        "(default: c32-c64-1000)",
        "(default: auto)",
        "(default: /usr/share/datasets/fashion-mnist)",
        "--optimizer adam|adamax|sgd|nesterov|adagrad|rmsprop|adamw|amsgrad|adadelta"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
        if (!strstr(text, must[i])) {
            print_error("usage lacks '%s'\n", must[i]);
            fail();
        }
    }
    /* Every flag shows a default: one "(default: " per flag, each on a
     * line under a flag (a long flag puts its help on the next line). */
    int flag_lines = 0;
    int after_flag = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, "(default: ")) {
            assert_true(strncmp(line, "  --", 4) == 0 || after_flag);
            flag_lines++;
            after_flag = 0;
        } else {
            after_flag = strncmp(line, "  --", 4) == 0;
        }
    }
    assert_int_equal(flag_lines, (int)(sizeof flag_cases / sizeof flag_cases[0]));
}

typedef struct {
    const char *args[MAX_ARGS];
    const char *needle; /* must appear in the message */
} reject_case;

static void expect_rejections(const reject_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ps_cfg c;
        char err[512];
        memset(err, 0, sizeof err);
        int rc = parse_list(&c, err, sizeof err, cases[i].args);
        if (rc != PS_ECONFIG || !strstr(err, cases[i].needle)) {
            print_error("case %zu (%s %s %s): rc %d, err '%s', wanted '%s'\n", i, cases[i].args[0],
                        cases[i].args[1] ? cases[i].args[1] : "",
                        cases[i].args[1] && cases[i].args[2] ? cases[i].args[2] : "", rc, err,
                        cases[i].needle);
            fail();
        }
    }
}

#define DS "train", "--dataset", "fashion-mnist"

static void test_cfg_rejects_bad_numbers_naming_flag_and_value(void **state)
{
    (void)state;
    static const reject_case cases[] = {
        {{DS, "--batch", "abc"}, "--batch: 'abc' is not a positive integer"},
        {{DS, "--batch", "0"}, "--batch: '0' is not a positive integer"},
        {{DS, "--batch", "-3"}, "--batch: '-3' is not a positive integer"},
        {{DS, "--batch", "+3"}, "--batch: '+3'"},
        {{DS, "--batch", " 3"}, "--batch: ' 3'"},
        {{DS, "--batch", "3x"}, "--batch: '3x'"},
        {{DS, "--batch", "1.5"}, "--batch: '1.5'"},
        {{DS, "--batch", "0x10"}, "--batch: '0x10'"},
        {{DS, "--batch", "4294967296"}, "--batch: '4294967296' is out of range"},
        {{DS, "--batch="}, "--batch: '' is not a positive integer"},
        {{DS, "--seed", "-1"}, "--seed: '-1' is not a non-negative integer"},
        {{DS, "--seed", "18446744073709551616"}, "--seed: '18446744073709551616' is out of range"},
        {{DS, "--steps", "0"}, "--steps: '0'"},
        {{DS, "--hash-bits", "0"}, "--hash-bits: '0'"},
        {{DS, "--hash-bits", "41"}, "--hash-bits: '41' is out of range [1, 40]"},
        {{DS, "--servers", "0"}, "--servers: '0'"},
        {{DS, "--servers", "-2"}, "--servers: '-2'"},
        {{DS, "--eval-every", "x"}, "--eval-every: 'x'"},
        {{DS, "--features", "-5"}, "--features: '-5'"},
        {{DS, "--train-limit", "1e3"}, "--train-limit: '1e3'"},
        {{DS, "--test-limit", ""}, "--test-limit: ''"},
        {{DS, "--checkpoint-dir", "ck", "--checkpoint-every", "x"}, "--checkpoint-every: 'x'"},
        {{DS, "--lr", "0"}, "--lr: '0' is not > 0"},
        {{DS, "--lr", "-0.1"}, "--lr: '-0.1'"},
        {{DS, "--lr", "nan"}, "--lr: 'nan' is not a finite number"},
        {{DS, "--lr", "inf"}, "--lr: 'inf' is not a finite number"},
        {{DS, "--lr", "1e999"}, "--lr: '1e999' is not a finite number"},
        {{DS, "--lr", "1e300"}, "--lr: '1e300' does not fit in a float"},
        {{DS, "--lr", "1e-300"}, "--lr: '1e-300' is not > 0"}, /* 0 as a float */
        {{DS, "--lr", "fast"}, "--lr: 'fast' is not a number"},
        {{DS, "--lr", " 0.1"}, "--lr: ' 0.1' is not a number"},
        {{DS, "--lr", "0.1 "}, "--lr: '0.1 ' is not a number"},
        {{DS, "--lr="}, "--lr: '' is not a number"},
        {{DS, "--beta1", "1"}, "--beta1: '1' is not in [0, 1)"},
        {{DS, "--beta1", "-0.1"}, "--beta1: '-0.1'"},
        {{DS, "--beta2", "1.5"}, "--beta2: '1.5'"},
        {{DS, "--beta2", "0.9999999999"}, "--beta2: '0.9999999999'"}, /* rounds to 1.0f */
        {{DS, "--eps", "-1e-8"}, "--eps: '-1e-8' is not >= 0"},
        {{DS, "--dropout", "1"}, "--dropout: '1'"},
        {{DS, "--dropout-input", "-0.2"}, "--dropout-input: '-0.2'"},
        {{DS, "--momentum", "1"}, "--momentum: '1'"},
        {{DS, "--weight-decay", "-1"}, "--weight-decay: '-1'"},
        {{DS, "--temporal-averaging", "1"}, "--temporal-averaging: '1'"},
        {{DS, "--temporal-averaging", "-0.5"}, "--temporal-averaging: '-0.5'"},
        {{DS, "--l2", "-1"}, "--l2: '-1'"},
        {{DS, "--epochs", "0"}, "--epochs: '0' is not > 0"},
        {{DS, "--epochs", "nan"}, "--epochs: 'nan'"},
        {{DS, "--inject-delay-ms", "-1"}, "--inject-delay-ms: '-1'"},
        {{DS, "--reply-chunk", "1000"}, "--reply-chunk: '1000'"},
        {{DS, "--max-memory", "4X"}, "--max-memory: '4X' is not a byte count"},
        {{DS, "--max-memory", "0"}, "--max-memory: '0'"},
        /* A control byte quoted back keeps the reason on one line. */
        {{DS, "--bo\ngus", "1"}, "unknown flag --bo?gus"},
        {{DS, "--progress-every", "-1"}, "--progress-every: '-1'"},
        {{DS, "--consistency", "ssp:-1"}, "--consistency ssp:K: '-1'"},
        {{DS, "--consistency", "ssp:x"}, "--consistency ssp:K: 'x'"},
        {{DS, "--consistency", "ssp:"}, "--consistency ssp:K: ''"},
        {{DS, "--consistency", "ssp"}, "--consistency: 'ssp' needs a staleness bound"},
        {{DS, "--hidden", "100,abc"}, "--hidden: 'abc' is not a positive integer"},
        {{DS, "--hidden", "100,0"}, "--hidden: '0'"},
        {{DS, "--hidden", "100,,10"}, "--hidden: '100,,10'"},
        {{DS, "--hidden", "100,"}, "--hidden: '100,' ends with a comma"},
        {{DS, "--hidden", "1,2,3,4,5,6,7,8,9"}, "--hidden: '1,2,3,4,5,6,7,8,9' has more than 8"},
        {{"train", "--synthetic", "rows=abc"}, "--synthetic rows: 'abc'"},
        {{"train", "--synthetic", "rows=10,bogus=3"}, "--synthetic: unknown key 'bogus'"},
        {{"train", "--synthetic", "rows"}, "--synthetic: 'rows' is not key=value"},
        {{"train", "--synthetic", "classes=1"}, "--synthetic classes: '1'"},
        {{"train", "--synthetic", "zipf=-1"}, "--synthetic zipf: '-1'"},
        {{"train", "--synthetic", "noise=nan"}, "--synthetic noise: 'nan'"},
        {{"train", "--synthetic", "rows=10,rows=20"}, "--synthetic: key 'rows' given twice"},
        {{"train", "--synthetic", "features=5,nnz=6"}, "--synthetic: nnz=6 exceeds features=5"},
        {{"train", "--synthetic", "rows=100,test=100"}, "--synthetic: test=100 leaves no"},
        {{"train", "--synthetic", "rows=100,"}, "--synthetic: 'rows=100,' ends with a comma"},
    };
    expect_rejections(cases, sizeof cases / sizeof cases[0]);
}

static void test_cfg_rejects_bad_words_flags_and_paths(void **state)
{
    (void)state;
    static char long_path[PS_CFG_PATH + 8];
    memset(long_path, 'a', PS_CFG_PATH);
    long_path[PS_CFG_PATH] = '\0'; /* one byte too long with its NUL */
    static const char *const choice_flags[] = {
        "--model",   "--init",  "--format",      "--optimizer", "--lr-schedule", "--sparse-update",
        "--shuffle", "--shard", "--consistency", "--nonfinite", "--log-format"};
    for (size_t i = 0; i < sizeof choice_flags / sizeof choice_flags[0]; i++) {
        ps_cfg c;
        char err[512];
        char needle[96];
        assert_int_equal(
            PARSE(&c, err, "train", "--train", "a", "--test", "b", choice_flags[i], "bogus"),
            PS_ECONFIG);
        snprintf(needle, sizeof needle, "%s: unknown value 'bogus'", choice_flags[i]);
        if (!strstr(err, needle)) {
            print_error("'%s' lacks '%s'\n", err, needle);
            fail();
        }
    }
    const reject_case cases[] = {
        {{"train", "--foo", "1"}, "unknown flag --foo (see adamps --help)"},
        {{"train", "--foo=1"}, "unknown flag --foo (see adamps --help)"},
        {{"train", "--lrx", "1"}, "unknown flag --lrx"},
        {{"train", "-lr", "1"}, "unexpected argument '-lr'"},
        {{"train", "stray"}, "unexpected argument 'stray'"},
        {{"frobnicate"}, "unknown command 'frobnicate'"},
        {{"--lr", "1"}, "--lr before the command"},
        {{DS, "--batch"}, "--batch needs a value"},
        {{"train", "--train", "--test", "b"}, "--train needs a value (got flag '--test')"},
        {{DS, "--quiet=yes"}, "--quiet takes no value"},
        {{DS, "--resume=1", "--checkpoint-dir", "ck"}, "--resume takes no value"},
        {{DS, "--no-bias-correction=1"}, "--no-bias-correction takes no value"},
        {{DS, "--zero-based=on"}, "--zero-based takes no value"},
        {{"train", "--dataset", "mnist"},
         "--dataset: unknown value 'mnist' (expected one of: fashion-mnist)"},
        {{"train", "--dataset", ""}, "--dataset: unknown value ''"},
        {{"train", "--optimizer", "Adam", "--dataset", "fashion-mnist"},
         "--optimizer: unknown value 'Adam'"},
        {{DS, "--train", long_path}, "--train: '"},
        {{DS, "--test", long_path}, "--test: '"},
        {{DS, "--data-dir", long_path}, "--data-dir: '"},
        {{DS, "--metrics", long_path}, "--metrics: '"},
        {{DS, "--save-model", long_path}, "--save-model: '"},
        {{DS, "--checkpoint-dir", long_path}, "--checkpoint-dir: '"},
        {{DS, "--clock-log", long_path}, "--clock-log: '"},
        {{DS, "--out", long_path}, "--out: '"},
        {{"predict", "--test", "t.svm", "--model", long_path}, "--model: '"},
        {{DS, "--train", long_path}, "longer than 1023 bytes"},
        {{DS, "--metrics", ""}, "--metrics: empty value"},
    };
    expect_rejections(cases, sizeof cases / sizeof cases[0]);
}

static void test_cfg_rejects_impossible_combinations(void **state)
{
    (void)state;
    static const reject_case cases[] = {
        {{"train"}, "train needs a data source: --dataset"},
        {{"train", "--lr", "0.01"}, "--synthetic"},
        {{"train", "--dataset", "fashion-mnist", "--train", "a", "--test", "b"},
         "--dataset and --train are exclusive"},
        {{"train", "--synthetic", "rows=100", "--dataset", "fashion-mnist"},
         "--dataset and --synthetic are exclusive"},
        {{"train", "--train", "a", "--test", "b", "--synthetic", "rows=100"},
         "--train and --synthetic are exclusive"},
        {{"train", "--train", "a.svm"}, "--train needs --test FILE too, or --holdout"},
        {{"train", "--train", "a.svm", "--holdout", "0"}, "--train needs --test FILE too"},
        {{"train", "--train", "a", "--test", "b", "--holdout", "0.1"},
         "--holdout and --test are exclusive"},
        {{"train", "--train", "a.svm", "--holdout", "1"}, "--holdout: '1' is not in [0, 1)"},
        {{"train", "--train", "a", "--test", "b", "--labels", "1"},
         "--labels: '1': a classifier needs at least two labels"},
        {{"train", "--train", "a", "--test", "b", "--labels", "1,x"},
         "--labels: '1,x' is not a list of integer labels"},
        {{"train", "--train", "a", "--test", "b", "--labels", "2,1,2"},
         "--labels: label 2 is listed twice"},
        {{"train", "--train", "a", "--test", "b", "--labels", "1,3000000000"},
         "--labels: label 3000000000 is out of the 32-bit"},
        {{"train", "--train", "a", "--test", "b", "--labels", "1,2,"},
         "--labels: '1,2,' is not a list"},
        {{"predict", "--model", "m", "--test", "b", "--proba"}, "--proba needs --out FILE"},
        {{"train", "--train", "a", "--test", "b", "--proba"}, "unknown flag --proba"},
        {{"train", "--test", "b.svm"}, "--test goes with --train"},
        {{"train", "--dataset", "fashion-mnist", "--test", "b.svm"}, "--test goes with --train"},
        {{DS, "--epochs", "2", "--steps", "10"}, "--epochs and --steps are exclusive"},
        {{DS, "--steps", "10", "--epochs", "2"}, "--epochs and --steps are exclusive"},
        {{DS, "--checkpoint-every", "5"}, "--checkpoint-every needs --checkpoint-dir"},
        {{DS, "--resume"}, "--resume needs --checkpoint-dir"},
        {{DS, "--hidden", ""}, "--hidden: an mlp needs at least one hidden layer"},
        {{DS, "--hidden=", "--model", "mlp"}, "--hidden"},
        {{DS, "--model", "vae", "--hidden", "500,500"}, "the vae has one hidden width"},
        {{DS, "--model", "vae", "--dropout", "0.5"}, "the vae takes no dropout"},
        {{DS, "--model", "cnn", "--hidden", "100"}, "--hidden does not apply to --model cnn"},
        {{DS, "--model", "cnn", "--activation", "tanh"}, "the cnn's units are relu"},
        {{DS, "--conv", "c32-c64"}, "--conv: 'c32-c64' needs at least one convolution"},
        {{DS, "--conv", "100"}, "--conv: '100' needs at least one convolution"},
        {{DS, "--conv", "c32-10-c5"}, "--conv: 'c32-10-c5' is not cN-..-N"},
        {{DS, "--conv", "c0-10"}, "--conv: '0'"},
        {{DS, "--conv", "c1-c1-c1-c1-c1-c1-c1-10"}, "more than 6 convolutions"},
        {{DS, "--activation", "gelu"}, "--activation"},
        {{DS, "--format", "libsvm"}, "--format"},
        {{"train", "--synthetic", "rows=100", "--format", "idx"}, "--format"},
        {{"synth"}, "synth needs --out"},
        {{"synth", "--synthetic", "rows=100"}, "synth needs --out"},
        {{"predict", "--test", "t.svm"}, "predict needs --model DIR"},
        {{"predict", "--model", "m"}, "predict needs --test FILE or --dataset"},
        {{"predict", "--model", "m", "--test", "t", "--dataset", "fashion-mnist"},
         "--test and --dataset are exclusive"},
        {{NULL}, "missing command"},
    };
    expect_rejections(cases, sizeof cases / sizeof cases[0]);
}

static void test_cfg_accepts_the_edge_values(void **state)
{
    (void)state;
    ps_cfg c;
    char err[256];
    /* AdaMax has no eps, so 0 is fine there. */
    assert_int_equal(PARSE(&c, err, DS, "--consistency", "ssp:0", "--hash-bits", "40",
                           "--optimizer", "adamax", "--eps", "0", "--beta1", "0", "--dropout", "0",
                           "--temporal-averaging", "0", "--batch", "4294967295", "--seed", "0",
                           "--checkpoint-every", "0"),
                     0);
    assert_true(c.opt.eps == 0.0f);
    assert_int_equal(c.sync, PS_SYNC_SSP); /* ssp:0 stays SSP */
    assert_int_equal(c.staleness, 0);
    assert_int_equal(c.hash_bits, 40);
    assert_int_equal(c.batch, 4294967295u);
    assert_int_equal(c.seed, 0);
    assert_int_equal(c.format, PS_FMT_IDX); /* --dataset is IDX */

    assert_int_equal(PARSE(&c, err, DS, "--consistency=asp"), 0);
    assert_int_equal(c.sync, PS_SYNC_ASP);
    assert_int_equal(PARSE(&c, err, DS, "--consistency", "bsp"), 0);
    assert_int_equal(c.sync, PS_SYNC_BSP);
    /* The words standing for 0 read back as the header prints them. */
    assert_int_equal(PARSE(&c, err, DS, "--servers", "auto", "--hash-bits", "off", "--steps",
                           "auto", "--init", "auto", "--synthetic", "off"),
                     0);
    assert_int_equal(c.servers, 0);
    assert_int_equal(c.hash_bits, 0);
    assert_int_equal(c.steps, 0);
    assert_int_equal(c.init, -1);
    assert_int_equal(c.synthetic, 0);
    assert_int_equal(PARSE(&c, err, DS, "--format", "idx"), 0);

    /* logreg may have no hidden layers; mlp takes up to 8. */
    assert_int_equal(PARSE(&c, err, DS, "--model", "logreg", "--hidden", ""), 0);
    assert_int_equal(c.nhidden, 0);
    assert_int_equal(PARSE(&c, err, DS, "--hidden", "1,2,3,4,5,6,7,8"), 0);
    assert_int_equal(c.nhidden, 8);
    assert_int_equal(c.hidden[7], 8);
    assert_int_equal(PARSE(&c, err, DS, "--hidden", "7"), 0);
    assert_int_equal(c.nhidden, 1);
    assert_int_equal(c.hidden[1], 0); /* the default's second layer is gone */

    /* The last of a repeated flag wins. */
    assert_int_equal(PARSE(&c, err, DS, "--lr", "0.5", "--lr=0.25"), 0);
    assert_true(c.opt.lr == 0.25f);

    /* Values may start with a single dash when split from the flag. */
    assert_int_equal(PARSE(&c, err, "train", "--train", "-", "--test", "b"), 0);
    assert_string_equal(c.train, "-");

    /* A path of exactly PS_CFG_PATH - 1 bytes fits. */
    static char path[PS_CFG_PATH];
    memset(path, 'p', PS_CFG_PATH - 1);
    path[PS_CFG_PATH - 1] = '\0';
    assert_int_equal(PARSE(&c, err, DS, "--metrics", path), 0);
    assert_int_equal(strlen(c.metrics), PS_CFG_PATH - 1);
}

static void test_cfg_synthetic_fills_spec_and_defaults_test_rows(void **state)
{
    (void)state;
    ps_cfg c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "train", "--synthetic",
                           "rows=2000,features=1000,nnz=5,classes=4,zipf=0.5,noise=0,test=300"),
                     0);
    assert_int_equal(c.synthetic, 1);
    assert_int_equal(c.format, PS_FMT_AUTO); /* cli/job.c makes it the generator */
    assert_int_equal(c.synth.n, 2000);
    assert_int_equal(c.synth.nfeatures, 1000);
    assert_int_equal(c.synth.nnz, 5);
    assert_int_equal(c.synth.nclasses, 4);
    assert_true(c.synth.zipf_s == 0.5);
    assert_true(c.synth.noise == 0.0);
    assert_int_equal(c.synth_test, 300);

    /* Omitted keys take their defaults; test follows rows. */
    assert_int_equal(PARSE(&c, err, "train", "--synthetic=rows=5000"), 0);
    assert_int_equal(c.synth.n, 5000);
    assert_int_equal(c.synth_test, 500);
    assert_int_equal(c.synth.nnz, 20);
    assert_true(c.synth.zipf_s == 1.1);

    /* A second --synthetic replaces the first whole: keys it omits are
     * back at their defaults. */
    assert_int_equal(
        PARSE(&c, err, "train", "--synthetic", "rows=300,nnz=3", "--synthetic", "rows=400"), 0);
    assert_int_equal(c.synth.n, 400);
    assert_int_equal(c.synth.nnz, 20);
    assert_int_equal(c.synth_test, 40);

    /* synth always uses the generator, with or without --synthetic. */
    assert_int_equal(PARSE(&c, err, "synth", "--out", "d.svm"), 0);
    assert_int_equal(c.cmd, PS_CMD_SYNTH);
    assert_int_equal(c.synthetic, 1);
    assert_string_equal(c.out, "d.svm");
    assert_int_equal(c.synth.n, 100000);
}

static void test_cfg_predict_reads_model_as_directory(void **state)
{
    (void)state;
    ps_cfg c;
    char err[256];
    assert_int_equal(
        PARSE(&c, err, "predict", "--model", "runs/m1", "--test", "t.svm", "--out", "p.txt"), 0);
    assert_int_equal(c.cmd, PS_CMD_PREDICT);
    assert_string_equal(c.model_dir, "runs/m1");
    assert_int_equal(c.model, PS_MODEL_MLP); /* the kind is untouched */
    assert_string_equal(c.test, "t.svm");
    assert_string_equal(c.out, "p.txt");
    assert_int_equal(c.format, PS_FMT_AUTO); /* guessed later from the name */

    assert_int_equal(PARSE(&c, err, "predict", "--model=m", "--dataset", "fashion-mnist"), 0);
    assert_string_equal(c.model_dir, "m");
    assert_int_equal(c.format, PS_FMT_IDX);

    /* For train, "runs/m1" is not a model kind. */
    assert_int_equal(PARSE(&c, err, DS, "--model", "runs/m1"), PS_ECONFIG);
    assert_non_null(strstr(err, "--model: unknown value 'runs/m1'"));
}

static void test_cfg_help_in_every_spelling(void **state)
{
    (void)state;
    ps_cfg c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "help"), 0);
    assert_int_equal(c.cmd, PS_CMD_HELP);
    assert_int_equal(PARSE(&c, err, "--help"), 0);
    assert_int_equal(c.cmd, PS_CMD_HELP);
    assert_int_equal(PARSE(&c, err, "-h"), 0);
    assert_int_equal(c.cmd, PS_CMD_HELP);
    /* Help wins over a missing data source, as users expect. */
    assert_int_equal(PARSE(&c, err, "train", "--help"), 0);
    assert_int_equal(c.cmd, PS_CMD_HELP);
    assert_int_equal(PARSE(&c, err, "predict", "--lr", "0.1", "-h"), 0);
    assert_int_equal(c.cmd, PS_CMD_HELP);
}

static void test_cfg_error_buffer_is_optional_and_truncated(void **state)
{
    (void)state;
    ps_cfg c;
    char *argv[] = {(char *)"adamps", (char *)"train", (char *)"--batch", (char *)"abc", NULL};
    assert_int_equal(ps_cfg_parse(&c, 4, argv, NULL, 0), PS_ECONFIG);
    char small[8];
    memset(small, 'x', sizeof small);
    assert_int_equal(ps_cfg_parse(&c, 4, argv, small, sizeof small), PS_ECONFIG);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, "--batch", 7);

    /* Success clears a stale message. */
    char err[64] = "stale";
    char *ok[] = {(char *)"adamps", (char *)"train", (char *)"--dataset", (char *)"fashion-mnist",
                  NULL};
    assert_int_equal(ps_cfg_parse(&c, 4, ok, err, sizeof err), 0);
    assert_string_equal(err, "");
}

static void test_cfg_format_echoes_every_key_and_round_trips(void **state)
{
    (void)state;
    ps_cfg c, back;
    char err[256];
    static char line[8192];
    ps_cfg_defaults(&c);
    int n = ps_cfg_format(&c, line, sizeof line);
    assert_int_equal(n, (int)strlen(line));
    assert_null(strchr(line, '\n'));
    const char *must[] = {"cmd=train",
                          "lr=0.001",
                          "beta1=0.9",
                          "beta2=0.999",
                          "eps=1e-08",
                          "batch=128",
                          "epochs=3",
                          "hidden=1000,1000",
                          "optimizer=adam",
                          "consistency=bsp",
                          "servers=auto",
                          "bias_correction=1",
                          "data_dir=/usr/share/datasets/fashion-mnist",
                          "train=\"\"",
                          "synthetic=off",
                          "model_dir=\"\"",
                          "progress_every=5"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
        if (!strstr(line, must[i])) {
            print_error("'%s' lacks '%s'\n", line, must[i]);
            fail();
        }
    }

    /* Round trip: key fields read back from the line into flags give the
     * same config. */
    assert_int_equal(PARSE(&c, err, "train", "--train", "my data/a b.svm", "--test", "q\"t.svm",
                           "--lr", "0.0003", "--batch", "64", "--hidden", "256,128",
                           "--consistency", "ssp:4", "--optimizer", "adamax", "--servers", "3",
                           "--epochs", "0.1", "--beta2", "0.98"),
                     0);
    n = ps_cfg_format(&c, line, sizeof line);
    assert_true(n > 0 && (size_t)n < sizeof line);
    static const char *const keys[] = {"train",       "test",      "lr",      "batch",  "hidden",
                                       "consistency", "optimizer", "servers", "epochs", "beta2"};
    char vals[10][256];
    const char *args[2 + 2 * 10 + 1];
    int a = 0;
    args[a++] = "train";
    for (int k = 0; k < 10; k++) {
        static char flag[10][32];
        header_value(line, keys[k], vals[k], sizeof vals[k]);
        snprintf(flag[k], sizeof flag[k], "--%s", keys[k]);
        args[a++] = flag[k];
        args[a++] = vals[k];
    }
    args[a] = NULL;
    assert_string_equal(vals[0], "my data/a b.svm");
    assert_string_equal(vals[1], "q\"t.svm");
    assert_string_equal(vals[2], "0.0003");
    assert_string_equal(vals[5], "ssp:4");
    assert_int_equal(parse_list(&back, err, sizeof err, args), 0);
    assert_memory_equal(&back, &c, sizeof c);

    /* snprintf contract: the length needed, a terminated prefix. */
    char small[16];
    assert_int_equal(ps_cfg_format(&c, small, sizeof small), n);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, line, sizeof small - 1);
    assert_int_equal(ps_cfg_format(&c, NULL, 0), n);
}

/* Every row parses the text it prints: setting each (key, value) pair of
 * a config onto a zeroed one rebuilds it byte for byte, and each value
 * prints back the same. Defaults, a train job with most flags off their
 * defaults, a synthetic one and a predict one. */
static void test_cfg_every_row_round_trips_through_the_header(void **state)
{
    (void)state;
    static ps_cfg c, back;
    char err[256], val[PS_CFG_PATH + 64], again[PS_CFG_PATH + 64];
    const char *jobs[][MAX_ARGS] = {
        {NULL},
        {"train",
         "--train",
         "my data/a b.svm",
         "--test",
         "q\"t.svm",
         "--model",
         "logreg",
         "--hidden",
         "",
         "--zero-based",
         "--hash-bits",
         "12",
         "--optimizer",
         "rmsprop",
         "--eps",
         "1e-7",
         "--no-bias-correction",
         "--lr-schedule",
         "invsqrt",
         "--shuffle",
         "off",
         "--servers",
         "2",
         "--shard",
         "hash",
         "--consistency",
         "ssp:2",
         "--nonfinite",
         "skip",
         "--quiet"},
        {"train", "--synthetic", "rows=700,features=64,nnz=3,classes=5,zipf=0,noise=2.5", "--steps",
         "9", "--stream", "on", "--init", "normal", "--log-format", "json", "--checkpoint-dir",
         "ck", "--resume", "--temporal-averaging", "0.99"},
        {"predict", "--model", "runs/m", "--dataset", "fashion-mnist", "--out", "o.txt"},
    };
    for (size_t j = 0; j < sizeof jobs / sizeof jobs[0]; j++) {
        if (jobs[j][0]) {
            assert_int_equal(parse_list(&c, err, sizeof err, jobs[j]), 0);
        } else {
            ps_cfg_defaults(&c);
        }
        memset(&back, 0, sizeof back);
        for (size_t i = 0; i < ps_cfg_count(); i++) {
            const char *flag = NULL;
            const char *key = ps_cfg_pair(&c, i, &flag, val, sizeof val);
            assert_non_null(key);
            assert_true(flag || strcmp(key, "cmd") == 0);
            if (ps_cfg_set(&back, key, val, err, sizeof err) != 0) {
                fail_msg("job %zu: %s=%s does not parse: %s", j, key, val, err);
            }
            ps_cfg_pair(&back, i, NULL, again, sizeof again);
            assert_string_equal(again, val);
        }
        if (memcmp(&back, &c, sizeof c) != 0) {
            fail_msg("job %zu: the pairs do not rebuild the config", j);
        }
    }
    assert_int_equal(ps_cfg_set(&back, "no_such_key", "1", err, sizeof err), PS_ECONFIG);
    assert_non_null(strstr(err, "no_such_key"));
    assert_int_equal(ps_cfg_set(&back, "lr", "0", err, sizeof err), PS_ECONFIG);
    assert_non_null(strstr(err, "--lr: '0'"));
    assert_int_equal(ps_cfg_set(&back, "resume", "yes", err, sizeof err), PS_ECONFIG);
}

/* Each rule runs at its own defaults unless a flag is given, in either
 * order, and the header says what is in force. */
static void test_cfg_optimizer_defaults_are_each_rules_own(void **state)
{
    (void)state;
    ps_cfg c;
    char err[256];
    static char line[8192];
    for (int k = 0; k < PS_OPT_COUNT_; k++) {
        ps_opt_hp want;
        ps_opt_defaults(&want, (ps_opt_kind)k);
        assert_int_equal(PARSE(&c, err, DS, "--optimizer", ps_opt_name((ps_opt_kind)k)), 0);
        assert_memory_equal(&c.opt, &want, sizeof want);
    }
    /* Section 7.1: AdaMax's alpha is 0.002, twice Adam's. */
    assert_int_equal(PARSE(&c, err, DS, "--optimizer", "adamax"), 0);
    assert_true(c.opt.lr == 0.002f);
    ps_cfg_format(&c, line, sizeof line);
    assert_non_null(strstr(line, " lr=0.002 "));
    assert_int_equal(PARSE(&c, err, DS, "--optimizer", "adamax", "--lr", "0.01"), 0);
    assert_true(c.opt.lr == 0.01f);
    assert_int_equal(PARSE(&c, err, DS, "--lr", "0.01", "--optimizer", "adamax"), 0);
    assert_true(c.opt.lr == 0.01f);
    assert_true(c.opt.beta2 == 0.999f);
    /* RMSProp: torch's alpha 0.99 and lr 0.01, not Adam's 0.999 and 0.001. */
    assert_int_equal(PARSE(&c, err, DS, "--optimizer", "rmsprop", "--beta1", "0.5"), 0);
    assert_true(c.opt.beta2 == 0.99f);
    assert_true(c.opt.lr == 0.01f);
    assert_true(c.opt.beta1 == 0.5f);
    assert_int_equal(PARSE(&c, err, DS, "--optimizer", "adagrad"), 0);
    assert_true(c.opt.eps == 1e-10f);
    assert_int_equal(PARSE(&c, err, DS, "--optimizer", "nesterov", "--momentum", "0.5"), 0);
    assert_true(c.opt.momentum == 0.5f);
    assert_int_equal(PARSE(&c, err, DS, "--optimizer", "adamw"), 0);
    assert_true(c.opt.weight_decay == 0.01f);
    ps_cfg_format(&c, line, sizeof line);
    assert_non_null(strstr(line, " weight_decay=0.01 "));
}

static void test_cfg_refuses_what_the_rule_cannot_take(void **state)
{
    (void)state;
    ps_cfg c;
    char err[512];
    /* The rules that divide by sqrt(.) + eps. */
    static const char *const divide[] = {"adam", "adamw", "amsgrad", "adagrad", "rmsprop"};
    for (size_t i = 0; i < sizeof divide / sizeof divide[0]; i++) {
        char needle[64];
        assert_int_equal(PARSE(&c, err, DS, "--optimizer", divide[i], "--eps", "0"), PS_ECONFIG);
        snprintf(needle, sizeof needle, "--optimizer %s", divide[i]);
        if (!strstr(err, "--eps 0") || !strstr(err, needle)) {
            fail_msg("'%s' lacks --eps 0 or %s", err, needle);
        }
    }
    assert_int_equal(PARSE(&c, err, DS, "--eps", "1e-50"), PS_ECONFIG); /* 0 as a float */
    static const char *const no_eps[] = {"adamax", "sgd", "nesterov"};
    for (size_t i = 0; i < sizeof no_eps / sizeof no_eps[0]; i++) {
        assert_int_equal(PARSE(&c, err, DS, "--optimizer", no_eps[i], "--eps", "0"), 0);
    }
    /* predict never steps: its --eps is nobody's business. */
    assert_int_equal(PARSE(&c, err, "predict", "--model", "m", "--test", "t", "--eps", "0"), 0);

    assert_int_equal(PARSE(&c, err, DS, "--optimizer", "sgd", "--momentum", "0.9"), PS_ECONFIG);
    assert_non_null(strstr(err, "--momentum"));
    assert_non_null(strstr(err, "use --optimizer nesterov"));
    assert_int_equal(PARSE(&c, err, DS, "--momentum", "0", "--optimizer", "sgd"), PS_ECONFIG);
    assert_int_equal(PARSE(&c, err, DS, "--optimizer", "sgd"), 0);
    assert_true(c.opt.momentum == 0.0f);
}

static void test_cfg_warns_of_invsqrt_on_adagrad(void **state)
{
    (void)state;
    ps_cfg c;
    char err[256], advice[256];
    assert_int_equal(PARSE(&c, err, DS, "--optimizer", "adagrad", "--lr-schedule", "invsqrt"), 0);
    assert_int_equal(ps_cfg_warning(&c, advice, sizeof advice), 1);
    assert_non_null(strstr(advice, "invsqrt"));
    assert_non_null(strstr(advice, "adagrad"));
    assert_int_equal(PARSE(&c, err, DS, "--lr-schedule", "invsqrt"), 0);
    assert_int_equal(ps_cfg_warning(&c, advice, sizeof advice), 0);
    assert_string_equal(advice, "");
    assert_int_equal(PARSE(&c, err, DS, "--optimizer", "adagrad"), 0);
    assert_int_equal(ps_cfg_warning(&c, advice, sizeof advice), 0);
}

/* Section 6.2's dropout is the MLP's; logistic regression gets none unless
 * asked, and the header says which is in force. */
static void test_cfg_dropout_defaults_are_each_models_own(void **state)
{
    (void)state;
    ps_cfg c;
    char err[256];
    static char line[8192];
    assert_int_equal(PARSE(&c, err, DS, "--model", "logreg"), 0);
    assert_true(c.dropout_input == 0.0f);
    assert_true(c.dropout == 0.0f);
    ps_cfg_format(&c, line, sizeof line);
    assert_non_null(strstr(line, " dropout_input=0 "));
    assert_int_equal(PARSE(&c, err, DS, "--model", "mlp"), 0);
    assert_true(c.dropout_input == 0.2f);
    assert_true(c.dropout == 0.5f);
    ps_cfg_format(&c, line, sizeof line);
    assert_non_null(strstr(line, " dropout_input=0.2 dropout=0.5 "));
    assert_int_equal(PARSE(&c, err, DS, "--dropout-input", "0.1", "--model", "logreg"), 0);
    assert_true(c.dropout_input == 0.1f);
    assert_true(c.dropout == 0.0f);
}

/* A misspelt flag names the nearest one of its command; a word far from
 * every flag gets no guess; --version and `version` are commands. */
static void test_cfg_suggests_the_nearest_flag_and_knows_version(void **state)
{
    (void)state;
    ps_cfg c;
    char err[256];
    static const struct {
        const char *arg, *want;
    } near[] = {
        {"--bacth", "did you mean --batch?"},
        {"--lr-shedule", "did you mean --lr-schedule?"},
        {"--checkpoint-evry", "did you mean --checkpoint-every?"},
        {"--optimiser", "did you mean --optimizer?"},
    };
    for (size_t i = 0; i < sizeof near / sizeof near[0]; i++) {
        assert_int_equal(PARSE(&c, err, "train", near[i].arg, "1"), PS_ECONFIG);
        if (!strstr(err, near[i].want)) {
            fail_msg("%s: got '%s', want '%s'", near[i].arg, err, near[i].want);
        }
    }
    assert_int_equal(PARSE(&c, err, "train", "--learning-rate-warmup", "1"), PS_ECONFIG);
    assert_null(strstr(err, "did you mean"));
    assert_int_equal(PARSE(&c, err, "--version"), 0);
    assert_int_equal(c.cmd, PS_CMD_VERSION);
    assert_int_equal(PARSE(&c, err, "version"), 0);
    assert_int_equal(c.cmd, PS_CMD_VERSION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_defaults_are_the_papers_and_the_headers),
        cmocka_unit_test(test_cfg_parses_every_flag_in_both_spellings),
        cmocka_unit_test(test_cfg_flag_table_covers_the_usage),
        cmocka_unit_test(test_cfg_rejects_bad_numbers_naming_flag_and_value),
        cmocka_unit_test(test_cfg_rejects_bad_words_flags_and_paths),
        cmocka_unit_test(test_cfg_rejects_impossible_combinations),
        cmocka_unit_test(test_cfg_accepts_the_edge_values),
        cmocka_unit_test(test_cfg_synthetic_fills_spec_and_defaults_test_rows),
        cmocka_unit_test(test_cfg_predict_reads_model_as_directory),
        cmocka_unit_test(test_cfg_help_in_every_spelling),
        cmocka_unit_test(test_cfg_error_buffer_is_optional_and_truncated),
        cmocka_unit_test(test_cfg_format_echoes_every_key_and_round_trips),
        cmocka_unit_test(test_cfg_every_row_round_trips_through_the_header),
        cmocka_unit_test(test_cfg_optimizer_defaults_are_each_rules_own),
        cmocka_unit_test(test_cfg_refuses_what_the_rule_cannot_take),
        cmocka_unit_test(test_cfg_warns_of_invsqrt_on_adagrad),
        cmocka_unit_test(test_cfg_dropout_defaults_are_each_models_own),
        cmocka_unit_test(test_cfg_suggests_the_nearest_flag_and_knows_version),
    };
    /* Group-wide checked allocator: any allocation cfg made would have to
     * be freed, and none is expected. */
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
