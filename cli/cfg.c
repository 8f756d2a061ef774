#include "cli/cfg.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/shard.h"

/* One table describes every flag: the parser uses it to know whether a flag
 * takes a value, --help prints it, and ps_cfg_format walks it, so a flag
 * cannot be parsed without being documented and echoed. */
typedef enum { G_MODEL, G_DATA, G_OPTIM, G_SCHEDULE, G_CLUSTER, G_OUTPUT, G_COUNT } flag_group;

typedef enum {
    F_MODEL,
    F_HIDDEN,
    F_DROPOUT_INPUT,
    F_DROPOUT,
    F_L2,
    F_INIT,
    F_DATASET,
    F_DATA_DIR,
    F_TRAIN,
    F_TEST,
    F_FORMAT,
    F_ZERO_BASED,
    F_SYNTHETIC,
    F_HASH_BITS,
    F_FEATURES,
    F_TRAIN_LIMIT,
    F_TEST_LIMIT,
    F_STREAM,
    F_OPTIMIZER,
    F_LR,
    F_BETA1,
    F_BETA2,
    F_EPS,
    F_NO_BIAS_CORRECTION,
    F_LR_SCHEDULE,
    F_MOMENTUM,
    F_WEIGHT_DECAY,
    F_TEMPORAL_AVERAGING,
    F_SPARSE_UPDATE,
    F_BATCH,
    F_EPOCHS,
    F_STEPS,
    F_SEED,
    F_SHUFFLE,
    F_SERVERS,
    F_SHARD,
    F_CONSISTENCY,
    F_NONFINITE,
    F_INJECT_DELAY_MS,
    F_EVAL_EVERY,
    F_METRICS,
    F_SAVE_MODEL,
    F_CHECKPOINT_DIR,
    F_CHECKPOINT_EVERY,
    F_RESUME,
    F_QUIET,
    F_LOG_FORMAT,
    F_PROGRESS_EVERY,
    F_CLOCK_LOG,
    F_OUT,
    F_COUNT
} flag_id;

typedef struct {
    flag_id id;
    flag_group group;
    const char *name;    /* without the leading -- */
    const char *metavar; /* NULL: a boolean flag, takes no value */
    const char *key;     /* key in ps_cfg_format */
    const char *help;
} flag_spec;

static const char *const group_names[G_COUNT] = {"model", "data", "optimizer",
                                                 "schedule", "cluster", "output"};

static const flag_spec flags[F_COUNT] = {
    {F_MODEL, G_MODEL, "model", "logreg|mlp", "model",
     "model kind; for predict: the DIR written by --save-model"},
    {F_HIDDEN, G_MODEL, "hidden", "N,N,..", "hidden", "mlp hidden layer widths, at most 8"},
    {F_DROPOUT_INPUT, G_MODEL, "dropout-input", "P", "dropout_input", "input dropout, in [0, 1)"},
    {F_DROPOUT, G_MODEL, "dropout", "P", "dropout", "hidden dropout, in [0, 1)"},
    {F_L2, G_MODEL, "l2", "LAMBDA", "l2", "L2 penalty in the loss, >= 0"},
    {F_INIT, G_MODEL, "init", "zeros|normal|glorot", "init",
     "weight initialisation; auto = the model's own"},
    {F_DATASET, G_DATA, "dataset", "fashion-mnist", "dataset",
     "named IDX data set under --data-dir"},
    {F_DATA_DIR, G_DATA, "data-dir", "DIR", "data_dir", "where --dataset files live"},
    {F_TRAIN, G_DATA, "train", "FILE", "train", "training file (needs --test)"},
    {F_TEST, G_DATA, "test", "FILE", "test", "evaluation file (train), input file (predict)"},
    {F_FORMAT, G_DATA, "format", "idx|libsvm", "format", "file format; auto = from the name"},
    {F_ZERO_BASED, G_DATA, "zero-based", NULL, "zero_based", "libsvm feature ids start at 0"},
    {F_SYNTHETIC, G_DATA, "synthetic", "rows=N,features=N,nnz=N,classes=N[,zipf=X,noise=X,test=N]",
     "synthetic", "planted sparse model instead of files"},
    {F_HASH_BITS, G_DATA, "hash-bits", "B", "hash_bits", "hash features to 2^B rows, 1..40; 0 = off"},
    {F_FEATURES, G_DATA, "features", "N", "features", "libsvm feature count; 0 = scan the file"},
    {F_TRAIN_LIMIT, G_DATA, "train-limit", "N", "train_limit", "first N training samples; 0 = all"},
    {F_TEST_LIMIT, G_DATA, "test-limit", "N", "test_limit", "first N test samples; 0 = all"},
    {F_STREAM, G_DATA, "stream", "on|off|auto", "stream",
     "read libsvm training data in chunks (auto: parts over 1 GiB)"},
    {F_OPTIMIZER, G_OPTIM, "optimizer", "adam|adamax|sgd|nesterov|adagrad|rmsprop|adamw|amsgrad",
     "optimizer", "update rule"},
    {F_LR, G_OPTIM, "lr", "ALPHA", "lr", "step size, > 0"},
    {F_BETA1, G_OPTIM, "beta1", "B", "beta1", "first moment decay, in [0, 1)"},
    {F_BETA2, G_OPTIM, "beta2", "B", "beta2", "second moment decay, in [0, 1)"},
    {F_EPS, G_OPTIM, "eps", "E", "eps", "denominator guard, >= 0"},
    {F_NO_BIAS_CORRECTION, G_OPTIM, "no-bias-correction", NULL, "bias_correction",
     "use raw m and v (paper section 6.4)"},
    {F_LR_SCHEDULE, G_OPTIM, "lr-schedule", "const|invsqrt", "lr_schedule",
     "invsqrt: alpha / sqrt(t)"},
    {F_MOMENTUM, G_OPTIM, "momentum", "MU", "momentum", "nesterov momentum, in [0, 1)"},
    {F_WEIGHT_DECAY, G_OPTIM, "weight-decay", "WD", "weight_decay", "adamw decoupled decay, >= 0"},
    {F_TEMPORAL_AVERAGING, G_OPTIM, "temporal-averaging", "BETA", "temporal_averaging",
     "average parameters (section 7.2), in [0, 1); 0 = off"},
    {F_SPARSE_UPDATE, G_OPTIM, "sparse-update", "lazy|dense", "sparse_update",
     "lazy: only pushed rows step; dense: exact Adam"},
    {F_BATCH, G_SCHEDULE, "batch", "N", "batch", "minibatch per worker, >= 1"},
    {F_EPOCHS, G_SCHEDULE, "epochs", "E", "epochs", "passes over the data, > 0"},
    {F_STEPS, G_SCHEDULE, "steps", "N", "steps", "clocks to run instead of --epochs; 0 = from epochs"},
    {F_SEED, G_SCHEDULE, "seed", "N", "seed", "seed for init, shuffle and dropout"},
    {F_SHUFFLE, G_SCHEDULE, "shuffle", "on|off", "shuffle", "reshuffle every epoch"},
    {F_SERVERS, G_CLUSTER, "servers", "S", "servers", "server ranks, >= 1; auto = one per node"},
    {F_SHARD, G_CLUSTER, "shard", "range|hash", "shard", "how rows map to servers"},
    {F_CONSISTENCY, G_CLUSTER, "consistency", "bsp|ssp:K|asp", "consistency",
     "synchronisation; K >= 0 is the staleness bound"},
    {F_NONFINITE, G_CLUSTER, "nonfinite", "abort|skip", "nonfinite",
     "what a NaN/inf gradient does"},
    {F_INJECT_DELAY_MS, G_CLUSTER, "inject-delay-ms", "X", "inject_delay_ms",
     "testing: random sleep up to X ms per step"},
    {F_EVAL_EVERY, G_OUTPUT, "eval-every", "N", "eval_every", "evaluate every N steps; 0 = per epoch"},
    {F_METRICS, G_OUTPUT, "metrics", "FILE", "metrics", "JSON lines, one per evaluation"},
    {F_SAVE_MODEL, G_OUTPUT, "save-model", "DIR", "save_model", "write the model as .npy files"},
    {F_CHECKPOINT_DIR, G_OUTPUT, "checkpoint-dir", "D", "checkpoint_dir", "checkpoint directory"},
    {F_CHECKPOINT_EVERY, G_OUTPUT, "checkpoint-every", "K", "checkpoint_every",
     "checkpoint every K clocks (needs --checkpoint-dir); 0 = off"},
    {F_RESUME, G_OUTPUT, "resume", NULL, "resume",
     "continue from the last checkpoint (needs --checkpoint-dir)"},
    {F_QUIET, G_OUTPUT, "quiet", NULL, "quiet", "warnings and errors only"},
    {F_LOG_FORMAT, G_OUTPUT, "log-format", "text|json", "log_format", "log line format"},
    {F_PROGRESS_EVERY, G_OUTPUT, "progress-every", "SECONDS", "progress_every",
     "progress line interval, >= 0; 0 = none"},
    {F_CLOCK_LOG, G_OUTPUT, "clock-log", "FILE", "clock_log",
     "testing: workers append 'worker clock' lines"},
    {F_OUT, G_OUTPUT, "out", "FILE", "out", "predict: class per line; synth: libsvm file"},
};

static const char *const optimizer_names[] = {"adam",    "adamax",  "sgd",   "nesterov",
                                              "adagrad", "rmsprop", "adamw", "amsgrad"};
static const char *const init_names[] = {"zeros", "normal", "glorot"};
static const char *const dataset_names[] = {"fashion-mnist"};
static const char *const stream_names[] = {"off", "on", "auto"};

void ps_cfg_defaults(ps_cfg *cfg)
{
    /* Zeroed first so unused path bytes and padding are deterministic:
     * tests compare whole configs. */
    memset(cfg, 0, sizeof *cfg);
    cfg->cmd = PS_CMD_TRAIN;

    cfg->model = 1;
    cfg->nhidden = 2;
    cfg->hidden[0] = 1000;
    cfg->hidden[1] = 1000;
    cfg->dropout_input = 0.2f;
    cfg->dropout = 0.5f;
    cfg->l2 = 0.0f;
    cfg->init = -1;

    strcpy(cfg->data_dir, "/usr/share/datasets/fashion-mnist");
    cfg->format = PS_FMT_AUTO;
    cfg->synth.rows = 100000;
    cfg->synth.features = (uint64_t)1 << 20;
    cfg->synth.nnz = 20;
    cfg->synth.classes = 2;
    cfg->synth.zipf = 1.1;
    cfg->synth.noise = 0.1;
    cfg->synth.test_rows = cfg->synth.rows / 10;

    strcpy(cfg->optimizer, "adam");
    cfg->lr = 0.001f;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->eps = 1e-8f;
    cfg->bias_correction = 1;
    strcpy(cfg->lr_schedule, "const");
    cfg->momentum = 0.9f;
    cfg->weight_decay = 0.01f;
    cfg->temporal_averaging = 0.0f;
    cfg->sparse_lazy = 1;

    cfg->batch = 128;
    cfg->epochs = 3.0;
    cfg->steps = 0;
    cfg->seed = 1;
    cfg->shuffle = 1;
    cfg->stream = PS_STREAM_AUTO;

    cfg->servers = 0;
    cfg->shard_hash = 0;
    cfg->consistency = PS_CONS_BSP;
    cfg->staleness = 0;
    cfg->nonfinite = PS_NONFINITE_ABORT;
    cfg->delay_ms = 0.0;

    cfg->eval_every = 0;
    cfg->progress_secs = 5.0;
}

static int set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Always returns PS_ECONFIG so callers can write `rc = set_err(...)`. */
static int set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return PS_ECONFIG;
}

/* Strict unsigned integer: decimal digits only (no sign, no blanks, no
 * 0x), the whole text consumed, within [lo, hi]. */
static int parse_uint(const char *flag, const char *text, uint64_t lo, uint64_t hi, uint64_t *out,
                      char *err, size_t errlen)
{
    int rc = 0;
    const char *kind = lo >= 1 ? "a positive integer" : "a non-negative integer";
    if (text[0] < '0' || text[0] > '9') {
        rc = set_err(err, errlen, "%s: '%s' is not %s", flag, text, kind);
        goto done;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0') {
        rc = set_err(err, errlen, "%s: '%s' is not %s", flag, text, kind);
    } else if (lo >= 1 && v == 0) {
        rc = set_err(err, errlen, "%s: '%s' is not %s", flag, text, kind);
    } else if (errno == ERANGE || v < lo || v > hi) {
        rc = set_err(err, errlen, "%s: '%s' is out of range [%llu, %llu]", flag, text,
                     (unsigned long long)lo, (unsigned long long)hi);
    } else {
        *out = v;
    }
done:
    return rc;
}

/* Range of a real-valued flag: lo and hi may be -INFINITY/INFINITY. */
typedef struct {
    double lo, hi;
    int lo_open, hi_open;
} real_range;

static const real_range R_NONNEG = {0.0, INFINITY, 0, 1};
static const real_range R_POS = {0.0, INFINITY, 1, 1};
static const real_range R_UNIT = {0.0, 1.0, 0, 1}; /* [0, 1) */

static void describe_range(const real_range *r, char *buf, size_t n)
{
    if (isinf(r->hi)) {
        snprintf(buf, n, "%s %g", r->lo_open ? ">" : ">=", r->lo);
    } else {
        snprintf(buf, n, "in %c%g, %g%c", r->lo_open ? '(' : '[', r->lo, r->hi,
                 r->hi_open ? ')' : ']');
    }
}

static int in_range(const real_range *r, double v)
{
    int ok_lo = r->lo_open ? v > r->lo : v >= r->lo;
    int ok_hi = r->hi_open ? v < r->hi : v <= r->hi;
    return ok_lo && ok_hi;
}

/* Strict real: strtod over the whole text, finite, inside r. With as_float
 * the value is checked after rounding to float, so what is stored (a float
 * field) is what was checked: --beta2 0.999999999 rounds to 1 and is
 * rejected rather than silently breaking Adam. */
static int parse_real(const char *flag, const char *text, const real_range *r, int as_float,
                      double *out, char *err, size_t errlen)
{
    int rc = 0;
    char *end = NULL;
    char what[64];
    describe_range(r, what, sizeof what);
    /* strtod skips leading blanks; a flag value with them is a typo. */
    if (text[0] == '\0' || text[0] == ' ' || text[0] == '\t') {
        rc = set_err(err, errlen, "%s: '%s' is not a number", flag, text);
        goto done;
    }
    errno = 0;
    double v = strtod(text, &end);
    if (*end != '\0') {
        rc = set_err(err, errlen, "%s: '%s' is not a number", flag, text);
        goto done;
    }
    if (!isfinite(v)) {
        rc = set_err(err, errlen, "%s: '%s' is not a finite number", flag, text);
        goto done;
    }
    if (as_float) {
        if (fabs(v) > FLT_MAX) {
            rc = set_err(err, errlen, "%s: '%s' does not fit in a float", flag, text);
            goto done;
        }
        v = (double)(float)v;
    }
    if (!in_range(r, v)) {
        rc = set_err(err, errlen, "%s: '%s' is not %s", flag, text, what);
        goto done;
    }
    *out = v;
done:
    return rc;
}

static int parse_float(const char *flag, const char *text, const real_range *r, float *out,
                       char *err, size_t errlen)
{
    double v = 0.0;
    int rc = parse_real(flag, text, r, 1, &v, err, errlen);
    if (rc == 0) {
        *out = (float)v;
    }
    return rc;
}

/* Index of text in names, or -1. */
static int find_name(const char *text, const char *const *names, size_t n)
{
    int found = -1;
    for (size_t i = 0; i < n && found < 0; i++) {
        if (strcmp(text, names[i]) == 0) {
            found = (int)i;
        }
    }
    return found;
}

/* Picks one of names; on failure the message lists the choices. */
static int parse_choice(const char *flag, const char *text, const char *const *names, size_t n,
                        int *out, char *err, size_t errlen)
{
    int rc = 0;
    int i = find_name(text, names, n);
    if (i < 0) {
        char list[256] = "";
        size_t used = 0;
        for (size_t k = 0; k < n && used < sizeof list; k++) {
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "",
                                     names[k]);
        }
        rc = set_err(err, errlen, "%s: unknown value '%s' (expected one of: %s)", flag, text, list);
    } else {
        *out = i;
    }
    return rc;
}

static int copy_text(const char *flag, const char *text, char *dst, size_t cap, char *err,
                     size_t errlen)
{
    int rc = 0;
    size_t n = strlen(text);
    if (n == 0) {
        rc = set_err(err, errlen, "%s: empty value", flag);
    } else if (n >= cap) {
        rc = set_err(err, errlen, "%s: '%.40s...' is longer than %zu bytes", flag, text, cap - 1);
    } else {
        memcpy(dst, text, n + 1);
    }
    return rc;
}

/* "1000,1000": 1..8 positive widths; "" means no hidden layer (logreg). */
static int parse_hidden(const char *text, ps_cfg *cfg, char *err, size_t errlen)
{
    int rc = 0;
    uint32_t n = 0;
    uint32_t widths[PS_CFG_MAX_HIDDEN];
    const char *p = text;
    while (*p != '\0' && rc == 0) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[24];
        uint64_t w = 0;
        if (n == PS_CFG_MAX_HIDDEN) {
            rc = set_err(err, errlen, "--hidden: '%s' has more than %d layers", text,
                         PS_CFG_MAX_HIDDEN);
            break;
        }
        if (len == 0 || len >= sizeof item) {
            rc = set_err(err, errlen, "--hidden: '%s' is not a list of positive integers", text);
            break;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        rc = parse_uint("--hidden", item, 1, INT32_MAX, &w, err, errlen);
        if (rc == 0) {
            widths[n++] = (uint32_t)w;
            /* A trailing comma leaves an empty last item: reject it too. */
            if (comma && comma[1] == '\0') {
                rc = set_err(err, errlen, "--hidden: '%s' ends with a comma", text);
            }
            p = comma ? comma + 1 : p + len;
        }
    }
    if (rc == 0) {
        cfg->nhidden = n;
        memset(cfg->hidden, 0, sizeof cfg->hidden);
        memcpy(cfg->hidden, widths, n * sizeof widths[0]);
    }
    return rc;
}

/* "rows=N,features=N,nnz=N,classes=N,zipf=X,noise=X,test=N": keys may be
 * omitted (their defaults stay); test defaults to rows/10. */
static int parse_synthetic(const char *text, ps_cfg *cfg, char *err, size_t errlen)
{
    static const char *const keys[] = {"rows", "features", "nnz", "classes",
                                       "zipf", "noise",    "test"};
    enum { K_ROWS, K_FEATURES, K_NNZ, K_CLASSES, K_ZIPF, K_NOISE, K_TEST, K_COUNT };
    int rc = 0;
    int seen[K_COUNT] = {0};
    ps_synth_opts s = cfg->synth;
    const char *p = text;
    while (*p != '\0' && rc == 0) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item) {
            rc = set_err(err, errlen, "--synthetic: '%s' is not a list of key=value", text);
            break;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        char *eq = strchr(item, '=');
        if (!eq) {
            rc = set_err(err, errlen, "--synthetic: '%s' is not key=value", item);
            break;
        }
        *eq = '\0';
        const char *val = eq + 1;
        int k = find_name(item, keys, K_COUNT);
        if (k < 0) {
            rc = set_err(err, errlen,
                         "--synthetic: unknown key '%s' (known: rows, features, nnz, classes, "
                         "zipf, noise, test)",
                         item);
            break;
        }
        if (seen[k]) {
            rc = set_err(err, errlen, "--synthetic: key '%s' given twice", item);
            break;
        }
        seen[k] = 1;
        char label[40];
        snprintf(label, sizeof label, "--synthetic %s", keys[k]);
        uint64_t u = 0;
        double d = 0.0;
        switch (k) {
        case K_ROWS:
            rc = parse_uint(label, val, 1, UINT64_MAX, &s.rows, err, errlen);
            break;
        case K_FEATURES:
            rc = parse_uint(label, val, 1, UINT64_MAX, &s.features, err, errlen);
            break;
        case K_NNZ:
            rc = parse_uint(label, val, 1, UINT32_MAX, &u, err, errlen);
            s.nnz = (uint32_t)u;
            break;
        case K_CLASSES:
            rc = parse_uint(label, val, 2, UINT32_MAX, &u, err, errlen);
            s.classes = (uint32_t)u;
            break;
        case K_ZIPF:
            rc = parse_real(label, val, &R_NONNEG, 0, &d, err, errlen);
            s.zipf = d;
            break;
        case K_NOISE:
            rc = parse_real(label, val, &R_NONNEG, 0, &d, err, errlen);
            s.noise = d;
            break;
        default:
            rc = parse_uint(label, val, 0, UINT64_MAX, &s.test_rows, err, errlen);
            break;
        }
        if (rc == 0 && comma && comma[1] == '\0') {
            rc = set_err(err, errlen, "--synthetic: '%s' ends with a comma", text);
        }
        p = comma ? comma + 1 : p + len;
    }
    if (rc == 0 && !seen[K_TEST]) {
        s.test_rows = s.rows / 10;
    }
    if (rc == 0 && s.nnz > s.features) {
        rc = set_err(err, errlen, "--synthetic: nnz=%u exceeds features=%llu", s.nnz,
                     (unsigned long long)s.features);
    }
    /* Test rows are held out of rows, so some must be left to train on. */
    if (rc == 0 && s.test_rows >= s.rows) {
        rc = set_err(err, errlen, "--synthetic: test=%llu leaves no training rows of rows=%llu",
                     (unsigned long long)s.test_rows, (unsigned long long)s.rows);
    }
    if (rc == 0) {
        cfg->synth = s;
        cfg->synthetic = 1;
        cfg->format = PS_FMT_SYNTH;
    }
    return rc;
}

static int parse_consistency(const char *text, ps_cfg *cfg, char *err, size_t errlen)
{
    int rc = 0;
    uint64_t k = 0;
    if (strcmp(text, "bsp") == 0) {
        cfg->consistency = PS_CONS_BSP;
        cfg->staleness = 0;
    } else if (strcmp(text, "asp") == 0) {
        cfg->consistency = PS_CONS_ASP;
        cfg->staleness = 0;
    } else if (strncmp(text, "ssp:", 4) == 0) {
        rc = parse_uint("--consistency ssp:K", text + 4, 0, INT_MAX, &k, err, errlen);
        if (rc == 0) {
            /* ssp:0 behaves like bsp but stays SSP: the server's code path
             * and the run header say what the user asked for. */
            cfg->consistency = PS_CONS_SSP;
            cfg->staleness = (int)k;
        }
    } else if (strcmp(text, "ssp") == 0) {
        rc = set_err(err, errlen, "--consistency: 'ssp' needs a staleness bound, e.g. ssp:2");
    } else {
        rc = set_err(err, errlen,
                     "--consistency: unknown value '%s' (expected one of: bsp, ssp:K, asp)", text);
    }
    return rc;
}

/* Stores one flag's value. val is NULL for boolean flags. */
static int apply_flag(ps_cfg *cfg, const flag_spec *f, const char *val, char *err, size_t errlen)
{
    static const char *const model_names[] = {"logreg", "mlp"};
    static const char *const format_names[] = {"idx", "libsvm"};
    static const char *const schedule_names[] = {"const", "invsqrt"};
    static const char *const sparse_names[] = {"dense", "lazy"};
    static const char *const onoff_names[] = {"off", "on"};
    static const char *const nonfinite_names[] = {"abort", "skip"};
    static const char *const log_names[] = {"text", "json"};
    char flag[48];
    snprintf(flag, sizeof flag, "--%s", f->name);
    int rc = 0;
    int i = 0;
    uint64_t u = 0;
    double d = 0.0;
    ps_shard_mode mode = PS_SHARD_RANGE;

    switch (f->id) {
    case F_MODEL:
        if (cfg->cmd == PS_CMD_PREDICT) {
            rc = copy_text(flag, val, cfg->model_dir, sizeof cfg->model_dir, err, errlen);
        } else {
            rc = parse_choice(flag, val, model_names, 2, &cfg->model, err, errlen);
        }
        break;
    case F_HIDDEN:
        rc = parse_hidden(val, cfg, err, errlen);
        break;
    case F_DROPOUT_INPUT:
        rc = parse_float(flag, val, &R_UNIT, &cfg->dropout_input, err, errlen);
        break;
    case F_DROPOUT:
        rc = parse_float(flag, val, &R_UNIT, &cfg->dropout, err, errlen);
        break;
    case F_L2:
        rc = parse_float(flag, val, &R_NONNEG, &cfg->l2, err, errlen);
        break;
    case F_INIT:
        if (strcmp(val, "auto") == 0) {
            cfg->init = -1;
        } else {
            rc = parse_choice(flag, val, init_names, 3, &cfg->init, err, errlen);
        }
        break;
    case F_DATASET:
        if (find_name(val, dataset_names, 1) < 0) {
            rc = set_err(err, errlen, "--dataset: unknown data set '%s' (known: fashion-mnist)",
                         val);
        } else {
            rc = copy_text(flag, val, cfg->dataset, sizeof cfg->dataset, err, errlen);
        }
        break;
    case F_DATA_DIR:
        rc = copy_text(flag, val, cfg->data_dir, sizeof cfg->data_dir, err, errlen);
        break;
    case F_TRAIN:
        rc = copy_text(flag, val, cfg->train, sizeof cfg->train, err, errlen);
        break;
    case F_TEST:
        rc = copy_text(flag, val, cfg->test, sizeof cfg->test, err, errlen);
        break;
    case F_FORMAT:
        rc = parse_choice(flag, val, format_names, 2, &i, err, errlen);
        cfg->format = i == 0 ? PS_FMT_IDX : PS_FMT_LIBSVM;
        break;
    case F_ZERO_BASED:
        cfg->zero_based = 1;
        break;
    case F_SYNTHETIC:
        rc = parse_synthetic(val, cfg, err, errlen);
        break;
    case F_HASH_BITS:
        rc = parse_uint(flag, val, 1, 40, &u, err, errlen);
        cfg->hash_bits = (uint32_t)u;
        break;
    case F_FEATURES:
        rc = parse_uint(flag, val, 0, UINT64_MAX, &cfg->features, err, errlen);
        break;
    case F_TRAIN_LIMIT:
        rc = parse_uint(flag, val, 0, UINT64_MAX, &cfg->train_limit, err, errlen);
        break;
    case F_TEST_LIMIT:
        rc = parse_uint(flag, val, 0, UINT64_MAX, &cfg->test_limit, err, errlen);
        break;
    case F_STREAM:
        rc = parse_choice(flag, val, stream_names, 3, &cfg->stream, err, errlen);
        break;
    case F_OPTIMIZER:
        /* The list mirrors server/optim.h's ps_opt_parse, which common/
         * cannot call; the server parses the name again. */
        rc = parse_choice(flag, val, optimizer_names, 8, &i, err, errlen);
        if (rc == 0) {
            strcpy(cfg->optimizer, optimizer_names[i]);
        }
        break;
    case F_LR:
        rc = parse_float(flag, val, &R_POS, &cfg->lr, err, errlen);
        break;
    case F_BETA1:
        rc = parse_float(flag, val, &R_UNIT, &cfg->beta1, err, errlen);
        break;
    case F_BETA2:
        rc = parse_float(flag, val, &R_UNIT, &cfg->beta2, err, errlen);
        break;
    case F_EPS:
        rc = parse_float(flag, val, &R_NONNEG, &cfg->eps, err, errlen);
        break;
    case F_NO_BIAS_CORRECTION:
        cfg->bias_correction = 0;
        break;
    case F_LR_SCHEDULE:
        rc = parse_choice(flag, val, schedule_names, 2, &i, err, errlen);
        if (rc == 0) {
            strcpy(cfg->lr_schedule, schedule_names[i]);
        }
        break;
    case F_MOMENTUM:
        rc = parse_float(flag, val, &R_UNIT, &cfg->momentum, err, errlen);
        break;
    case F_WEIGHT_DECAY:
        rc = parse_float(flag, val, &R_NONNEG, &cfg->weight_decay, err, errlen);
        break;
    case F_TEMPORAL_AVERAGING:
        rc = parse_float(flag, val, &R_UNIT, &cfg->temporal_averaging, err, errlen);
        break;
    case F_SPARSE_UPDATE:
        rc = parse_choice(flag, val, sparse_names, 2, &cfg->sparse_lazy, err, errlen);
        break;
    case F_BATCH:
        rc = parse_uint(flag, val, 1, UINT32_MAX, &u, err, errlen);
        cfg->batch = (uint32_t)u;
        break;
    case F_EPOCHS:
        rc = parse_real(flag, val, &R_POS, 0, &cfg->epochs, err, errlen);
        break;
    case F_STEPS:
        rc = parse_uint(flag, val, 1, UINT64_MAX, &cfg->steps, err, errlen);
        break;
    case F_SEED:
        rc = parse_uint(flag, val, 0, UINT64_MAX, &cfg->seed, err, errlen);
        break;
    case F_SHUFFLE:
        rc = parse_choice(flag, val, onoff_names, 2, &cfg->shuffle, err, errlen);
        break;
    case F_SERVERS:
        rc = parse_uint(flag, val, 1, INT_MAX, &u, err, errlen);
        cfg->servers = (int)u;
        break;
    case F_SHARD:
        if (ps_shard_parse_mode(val, &mode) != 0) {
            rc = set_err(err, errlen, "--shard: unknown value '%s' (expected one of: range, hash)",
                         val);
        } else {
            cfg->shard_hash = mode == PS_SHARD_HASH;
        }
        break;
    case F_CONSISTENCY:
        rc = parse_consistency(val, cfg, err, errlen);
        break;
    case F_NONFINITE:
        rc = parse_choice(flag, val, nonfinite_names, 2, &i, err, errlen);
        cfg->nonfinite = i == 0 ? PS_NONFINITE_ABORT : PS_NONFINITE_SKIP;
        break;
    case F_INJECT_DELAY_MS:
        rc = parse_real(flag, val, &R_NONNEG, 0, &cfg->delay_ms, err, errlen);
        break;
    case F_EVAL_EVERY:
        rc = parse_uint(flag, val, 0, UINT64_MAX, &cfg->eval_every, err, errlen);
        break;
    case F_METRICS:
        rc = copy_text(flag, val, cfg->metrics, sizeof cfg->metrics, err, errlen);
        break;
    case F_SAVE_MODEL:
        rc = copy_text(flag, val, cfg->save_model, sizeof cfg->save_model, err, errlen);
        break;
    case F_CHECKPOINT_DIR:
        rc = copy_text(flag, val, cfg->ckpt_dir, sizeof cfg->ckpt_dir, err, errlen);
        break;
    case F_CHECKPOINT_EVERY:
        rc = parse_uint(flag, val, 0, UINT64_MAX, &cfg->ckpt_every, err, errlen);
        break;
    case F_RESUME:
        cfg->resume = 1;
        break;
    case F_QUIET:
        cfg->quiet = 1;
        break;
    case F_LOG_FORMAT:
        rc = parse_choice(flag, val, log_names, 2, &cfg->log_json, err, errlen);
        break;
    case F_PROGRESS_EVERY:
        rc = parse_real(flag, val, &R_NONNEG, 0, &d, err, errlen);
        if (rc == 0) {
            cfg->progress_secs = d;
        }
        break;
    case F_CLOCK_LOG:
        rc = copy_text(flag, val, cfg->clock_log, sizeof cfg->clock_log, err, errlen);
        break;
    case F_OUT:
        rc = copy_text(flag, val, cfg->out, sizeof cfg->out, err, errlen);
        break;
    default:
        rc = set_err(err, errlen, "--%s: not handled (bug)", f->name);
        break;
    }
    return rc;
}

static const flag_spec *find_flag(const char *name, size_t len)
{
    const flag_spec *found = NULL;
    for (size_t i = 0; i < F_COUNT && !found; i++) {
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0) {
            found = &flags[i];
        }
    }
    return found;
}

/* Combinations no single flag can judge. seen[] marks flags given. */
static int check_combinations(ps_cfg *cfg, const unsigned char *seen, char *err, size_t errlen)
{
    int rc = 0;
    const char *sources[3];
    int nsources = 0;
    if (seen[F_DATASET]) {
        sources[nsources++] = "--dataset";
    }
    if (seen[F_TRAIN]) {
        sources[nsources++] = "--train";
    }
    if (seen[F_SYNTHETIC]) {
        sources[nsources++] = "--synthetic";
    }

    if (seen[F_EPOCHS] && seen[F_STEPS]) {
        rc = set_err(err, errlen, "--epochs and --steps are exclusive: give one");
    } else if (seen[F_CHECKPOINT_EVERY] && cfg->ckpt_every > 0 && !seen[F_CHECKPOINT_DIR]) {
        rc = set_err(err, errlen, "--checkpoint-every needs --checkpoint-dir");
    } else if (seen[F_RESUME] && !seen[F_CHECKPOINT_DIR]) {
        rc = set_err(err, errlen, "--resume needs --checkpoint-dir");
    } else if (cfg->model == 1 && cfg->nhidden == 0 && cfg->cmd != PS_CMD_PREDICT) {
        rc = set_err(err, errlen,
                     "--hidden: an mlp needs at least one hidden layer (--model logreg has none)");
    } else if (nsources > 1) {
        rc = set_err(err, errlen, "%s and %s are exclusive: give one data source", sources[0],
                     sources[1]);
    } else if (seen[F_DATASET] && seen[F_FORMAT] && cfg->format != PS_FMT_IDX) {
        rc = set_err(err, errlen, "--format: fashion-mnist is an IDX data set, not libsvm");
    } else if (seen[F_SYNTHETIC] && seen[F_FORMAT]) {
        rc = set_err(err, errlen, "--format does not apply to --synthetic");
    } else if (cfg->cmd == PS_CMD_TRAIN && seen[F_TEST] && !seen[F_TRAIN]) {
        rc = set_err(err, errlen,
                     "--test goes with --train (--dataset and --synthetic bring their own test "
                     "data)");
    } else if (cfg->cmd == PS_CMD_TRAIN && nsources == 0) {
        rc = set_err(err, errlen,
                     "train needs a data source: --dataset NAME, --train FILE --test FILE or "
                     "--synthetic SPEC");
    } else if (cfg->cmd == PS_CMD_TRAIN && seen[F_TRAIN] && !seen[F_TEST]) {
        rc = set_err(err, errlen,
                     "--train needs --test FILE too: evaluation needs held-out data (only "
                     "--dataset and --synthetic bring their own)");
    } else if (cfg->cmd == PS_CMD_PREDICT && !seen[F_MODEL]) {
        rc = set_err(err, errlen, "predict needs --model DIR (a directory from --save-model)");
    } else if (cfg->cmd == PS_CMD_PREDICT && !seen[F_TEST] && !seen[F_DATASET]) {
        rc = set_err(err, errlen, "predict needs --test FILE or --dataset NAME");
    } else if (cfg->cmd == PS_CMD_PREDICT && seen[F_TEST] && seen[F_DATASET]) {
        rc = set_err(err, errlen, "--test and --dataset are exclusive: give one data source");
    } else if (cfg->cmd == PS_CMD_SYNTH && !seen[F_OUT]) {
        rc = set_err(err, errlen, "synth needs --out FILE");
    }

    if (rc == 0 && seen[F_DATASET]) {
        cfg->format = PS_FMT_IDX;
    }
    if (rc == 0 && cfg->cmd == PS_CMD_SYNTH) {
        /* synth writes the generator's data, so the spec always applies. */
        cfg->synthetic = 1;
        cfg->format = PS_FMT_SYNTH;
    }
    return rc;
}

static int parse_command(ps_cfg *cfg, const char *word, char *err, size_t errlen)
{
    int rc = 0;
    if (strcmp(word, "train") == 0) {
        cfg->cmd = PS_CMD_TRAIN;
    } else if (strcmp(word, "predict") == 0) {
        cfg->cmd = PS_CMD_PREDICT;
    } else if (strcmp(word, "synth") == 0) {
        cfg->cmd = PS_CMD_SYNTH;
    } else if (strcmp(word, "help") == 0 || strcmp(word, "--help") == 0 ||
               strcmp(word, "-h") == 0) {
        cfg->cmd = PS_CMD_HELP;
    } else if (strncmp(word, "--", 2) == 0) {
        rc = set_err(err, errlen, "%s before the command: say adamps train|predict|synth %s ...",
                     word, word);
    } else {
        rc = set_err(err, errlen,
                     "unknown command '%s' (expected train, predict, synth or help; see adamps "
                     "--help)",
                     word);
    }
    return rc;
}

int ps_cfg_parse(ps_cfg *cfg, int argc, char **argv, char *err, size_t errlen)
{
    int rc = 0;
    unsigned char seen[F_COUNT] = {0};
    ps_cfg_defaults(cfg);
    if (err && errlen > 0) {
        err[0] = '\0';
    }
    if (argc < 2 || !argv || !argv[1]) {
        rc = set_err(err, errlen, "missing command: adamps train|predict|synth|help [--flags]");
        goto done;
    }
    rc = parse_command(cfg, argv[1], err, errlen);
    if (rc != 0 || cfg->cmd == PS_CMD_HELP) {
        goto done;
    }
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cfg->cmd = PS_CMD_HELP;
            goto done;
        }
        if (strncmp(arg, "--", 2) != 0) {
            rc = set_err(err, errlen, "unexpected argument '%s' (flags are --name value)", arg);
            goto done;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const flag_spec *f = find_flag(name, len);
        if (!f) {
            rc = set_err(err, errlen, "unknown flag --%.*s (see adamps --help)", (int)len, name);
            goto done;
        }
        const char *val = NULL;
        if (!f->metavar) {
            if (eq) {
                rc = set_err(err, errlen, "--%s takes no value (got '%s')", f->name, eq + 1);
                goto done;
            }
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 >= argc) {
            rc = set_err(err, errlen, "--%s needs a value: --%s %s", f->name, f->name, f->metavar);
            goto done;
        } else {
            val = argv[++i];
            /* `--train --test x` would otherwise read "--test" as a path. */
            if (strncmp(val, "--", 2) == 0) {
                rc = set_err(err, errlen, "--%s needs a value (got flag '%s')", f->name, val);
                goto done;
            }
        }
        rc = apply_flag(cfg, f, val, err, errlen);
        if (rc != 0) {
            goto done;
        }
        seen[f->id] = 1;
    }
    rc = check_combinations(cfg, seen, err, errlen);
done:
    return rc;
}

int ps_cfg_check_world(const ps_cfg *cfg, int world_size, int nservers, char *err, size_t errlen)
{
    int rc = 0;
    int n = cfg->servers > 0 ? cfg->servers : nservers;
    if (n < 1) {
        rc = set_err(err, errlen, "--servers: %d servers; need at least 1", n);
    } else if (n >= world_size) {
        if (cfg->servers > 0) {
            rc = set_err(err, errlen,
                         "--servers %d leaves no worker: the job has %d ranks (need at least "
                         "servers + 1)",
                         n, world_size);
        } else {
            rc = set_err(err, errlen,
                         "--servers (one per node: %d) leaves no worker: the job has %d ranks "
                         "(need at least servers + 1; give --servers)",
                         n, world_size);
        }
    }
    return rc;
}

static int has_suffix(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && strncmp(s + n - k, suffix, k) == 0;
}

ps_format ps_cfg_guess_format(const char *path)
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

/* Shortest %g text that reads back to the same value, so the run header
 * says lr=0.001 and not lr=0.00100000005, yet loses nothing. */
static void fmt_float(char *buf, size_t n, float v)
{
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, n, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v) {
            break;
        }
    }
}

static void fmt_double(char *buf, size_t n, double v)
{
    for (int p = 6; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
}

static void fmt_synth(char *buf, size_t n, const ps_synth_opts *s)
{
    char zipf[32], noise[32];
    fmt_double(zipf, sizeof zipf, s->zipf);
    fmt_double(noise, sizeof noise, s->noise);
    snprintf(buf, n, "rows=%llu,features=%llu,nnz=%u,classes=%u,zipf=%s,noise=%s,test=%llu",
             (unsigned long long)s->rows, (unsigned long long)s->features, s->nnz, s->classes,
             zipf, noise, (unsigned long long)s->test_rows);
}

/* The value of flag id's field(s) in c, as the flag would spell it (paths
 * may be empty). Used for the --help defaults and for ps_cfg_format. */
static void value_text(flag_id id, const ps_cfg *c, char *buf, size_t n)
{
    static const char *const format_text[] = {"auto", "idx", "libsvm", "synth"};
    switch (id) {
    case F_MODEL:
        snprintf(buf, n, "%s", c->model == 0 ? "logreg" : "mlp");
        break;
    case F_HIDDEN: {
        size_t used = 0;
        buf[0] = '\0';
        for (uint32_t i = 0; i < c->nhidden && i < PS_CFG_MAX_HIDDEN && used < n; i++) {
            used += (size_t)snprintf(buf + used, n - used, "%s%u", i ? "," : "", c->hidden[i]);
        }
        break;
    }
    case F_DROPOUT_INPUT:
        fmt_float(buf, n, c->dropout_input);
        break;
    case F_DROPOUT:
        fmt_float(buf, n, c->dropout);
        break;
    case F_L2:
        fmt_float(buf, n, c->l2);
        break;
    case F_INIT:
        snprintf(buf, n, "%s", c->init >= 0 && c->init < 3 ? init_names[c->init] : "auto");
        break;
    case F_DATASET:
        snprintf(buf, n, "%s", c->dataset);
        break;
    case F_DATA_DIR:
        snprintf(buf, n, "%s", c->data_dir);
        break;
    case F_TRAIN:
        snprintf(buf, n, "%s", c->train);
        break;
    case F_TEST:
        snprintf(buf, n, "%s", c->test);
        break;
    case F_FORMAT:
        snprintf(buf, n, "%s", (unsigned)c->format < 4 ? format_text[c->format] : "?");
        break;
    case F_ZERO_BASED:
        snprintf(buf, n, "%d", c->zero_based);
        break;
    case F_SYNTHETIC:
        if (c->synthetic) {
            fmt_synth(buf, n, &c->synth);
        } else {
            snprintf(buf, n, "off");
        }
        break;
    case F_HASH_BITS:
        snprintf(buf, n, "%u", c->hash_bits);
        break;
    case F_FEATURES:
        snprintf(buf, n, "%llu", (unsigned long long)c->features);
        break;
    case F_TRAIN_LIMIT:
        snprintf(buf, n, "%llu", (unsigned long long)c->train_limit);
        break;
    case F_TEST_LIMIT:
        snprintf(buf, n, "%llu", (unsigned long long)c->test_limit);
        break;
    case F_STREAM:
        snprintf(buf, n, "%s", stream_names[c->stream]);
        break;
    case F_OPTIMIZER:
        snprintf(buf, n, "%s", c->optimizer);
        break;
    case F_LR:
        fmt_float(buf, n, c->lr);
        break;
    case F_BETA1:
        fmt_float(buf, n, c->beta1);
        break;
    case F_BETA2:
        fmt_float(buf, n, c->beta2);
        break;
    case F_EPS:
        fmt_float(buf, n, c->eps);
        break;
    case F_NO_BIAS_CORRECTION:
        snprintf(buf, n, "%d", c->bias_correction);
        break;
    case F_LR_SCHEDULE:
        snprintf(buf, n, "%s", c->lr_schedule);
        break;
    case F_MOMENTUM:
        fmt_float(buf, n, c->momentum);
        break;
    case F_WEIGHT_DECAY:
        fmt_float(buf, n, c->weight_decay);
        break;
    case F_TEMPORAL_AVERAGING:
        fmt_float(buf, n, c->temporal_averaging);
        break;
    case F_SPARSE_UPDATE:
        snprintf(buf, n, "%s", c->sparse_lazy ? "lazy" : "dense");
        break;
    case F_BATCH:
        snprintf(buf, n, "%u", c->batch);
        break;
    case F_EPOCHS:
        fmt_double(buf, n, c->epochs);
        break;
    case F_STEPS:
        snprintf(buf, n, "%llu", (unsigned long long)c->steps);
        break;
    case F_SEED:
        snprintf(buf, n, "%llu", (unsigned long long)c->seed);
        break;
    case F_SHUFFLE:
        snprintf(buf, n, "%s", c->shuffle ? "on" : "off");
        break;
    case F_SERVERS:
        if (c->servers > 0) {
            snprintf(buf, n, "%d", c->servers);
        } else {
            snprintf(buf, n, "auto");
        }
        break;
    case F_SHARD:
        snprintf(buf, n, "%s", c->shard_hash ? "hash" : "range");
        break;
    case F_CONSISTENCY:
        if (c->consistency == PS_CONS_SSP) {
            snprintf(buf, n, "ssp:%d", c->staleness);
        } else {
            snprintf(buf, n, "%s", c->consistency == PS_CONS_ASP ? "asp" : "bsp");
        }
        break;
    case F_NONFINITE:
        snprintf(buf, n, "%s", c->nonfinite == PS_NONFINITE_SKIP ? "skip" : "abort");
        break;
    case F_INJECT_DELAY_MS:
        fmt_double(buf, n, c->delay_ms);
        break;
    case F_EVAL_EVERY:
        snprintf(buf, n, "%llu", (unsigned long long)c->eval_every);
        break;
    case F_METRICS:
        snprintf(buf, n, "%s", c->metrics);
        break;
    case F_SAVE_MODEL:
        snprintf(buf, n, "%s", c->save_model);
        break;
    case F_CHECKPOINT_DIR:
        snprintf(buf, n, "%s", c->ckpt_dir);
        break;
    case F_CHECKPOINT_EVERY:
        snprintf(buf, n, "%llu", (unsigned long long)c->ckpt_every);
        break;
    case F_RESUME:
        snprintf(buf, n, "%d", c->resume);
        break;
    case F_QUIET:
        snprintf(buf, n, "%d", c->quiet);
        break;
    case F_LOG_FORMAT:
        snprintf(buf, n, "%s", c->log_json ? "json" : "text");
        break;
    case F_PROGRESS_EVERY:
        fmt_double(buf, n, c->progress_secs);
        break;
    case F_CLOCK_LOG:
        snprintf(buf, n, "%s", c->clock_log);
        break;
    case F_OUT:
        snprintf(buf, n, "%s", c->out);
        break;
    default:
        snprintf(buf, n, "?");
        break;
    }
}

void ps_cfg_usage(void *f)
{
    FILE *out = f;
    ps_cfg d;
    char val[PS_CFG_PATH + 64];
    ps_cfg_defaults(&d);
    fprintf(out, "usage: adamps COMMAND [--flag value | --flag=value] ...\n"
                 "\n"
                 "Data-parallel training with Adam (Kingma & Ba 2015) on a parameter server.\n"
                 "The first --servers ranks hold the model; the other ranks are workers.\n"
                 "\n"
                 "commands:\n"
                 "  train     train a model on --dataset, --train/--test or --synthetic\n"
                 "  predict   classify --test FILE with a saved model: --model DIR\n"
                 "  synth     write a synthetic libsvm data set to --out FILE\n"
                 "  help      print this text (also --help, -h)\n");
    for (int g = 0; g < G_COUNT; g++) {
        fprintf(out, "\n%s:\n", group_names[g]);
        for (int i = 0; i < F_COUNT; i++) {
            const flag_spec *s = &flags[i];
            if ((int)s->group != g) {
                continue;
            }
            char left[96];
            snprintf(left, sizeof left, "--%s%s%s", s->name, s->metavar ? " " : "",
                     s->metavar ? s->metavar : "");
            /* A long metavar gets its own line so the help column stays. */
            if (strlen(left) > 28) {
                fprintf(out, "  %s\n", left);
                left[0] = '\0';
            }
            if (!s->metavar) {
                /* Boolean flags are off unless given. */
                fprintf(out, "  %-28s %s (default: off)\n", left, s->help);
                continue;
            }
            value_text(s->id, &d, val, sizeof val);
            fprintf(out, "  %-28s %s (default: %s)\n", left, s->help, val[0] ? val : "none");
        }
    }
    fprintf(out, "\nexamples:\n"
                 "  mpirun -np 3 ./adamps train --dataset fashion-mnist --servers 1\n"
                 "  mpirun -np 8 ./adamps train --model logreg --synthetic "
                 "rows=1000000,features=1048576,nnz=20,classes=2 --servers 2 --consistency "
                 "ssp:2\n"
                 "  mpirun -np 3 ./adamps train --dataset fashion-mnist --save-model model\n"
                 "  ./adamps predict --model model --dataset fashion-mnist --out classes.txt\n"
                 "  ./adamps synth --synthetic rows=10000,features=65536,nnz=10,classes=2 "
                 "--out data.svm\n");
}

/* snprintf-style appender: counts what it could not store, so the caller
 * learns the size it needs. */
typedef struct {
    char *buf;
    size_t len;
    size_t pos;
} appender;

static void append_char(appender *a, char ch)
{
    if (a->pos + 1 < a->len) {
        a->buf[a->pos] = ch;
        a->buf[a->pos + 1] = '\0';
    }
    a->pos++;
}

static void append_str(appender *a, const char *s)
{
    for (; *s; s++) {
        append_char(a, *s);
    }
}

/* Values with blanks, quotes or nothing at all are quoted, so the header
 * still splits on spaces. */
static void append_pair(appender *a, const char *key, const char *val)
{
    int quote = val[0] == '\0';
    for (const char *p = val; *p && !quote; p++) {
        quote = *p == ' ' || *p == '"' || *p == '\\' || (unsigned char)*p < 0x20;
    }
    if (a->pos > 0) {
        append_char(a, ' ');
    }
    append_str(a, key);
    append_char(a, '=');
    if (!quote) {
        append_str(a, val);
    } else {
        append_char(a, '"');
        for (const char *p = val; *p; p++) {
            if (*p == '"' || *p == '\\') {
                append_char(a, '\\');
            }
            append_char(a, (unsigned char)*p < 0x20 ? '?' : *p);
        }
        append_char(a, '"');
    }
}

int ps_cfg_format(const ps_cfg *cfg, char *buf, size_t len)
{
    static const char *const cmd_names[] = {"train", "predict", "synth", "help"};
    appender a = {buf, len, 0};
    char val[PS_CFG_PATH + 64];
    if (buf && len > 0) {
        buf[0] = '\0';
    }
    append_pair(&a, "cmd", (unsigned)cfg->cmd < 4 ? cmd_names[cfg->cmd] : "?");
    for (int i = 0; i < F_COUNT; i++) {
        value_text(flags[i].id, cfg, val, sizeof val);
        append_pair(&a, flags[i].key, val);
    }
    /* Not a flag of its own: predict's --model DIR. */
    append_pair(&a, "model_dir", cfg->model_dir);
    return a.pos > INT_MAX ? INT_MAX : (int)a.pos;
}
