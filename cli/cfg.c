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
#include "common/log.h"
#include "common/table.h"

/* One row per flag: its field in ps_cfg, how its text becomes the field's
 * value and back, its default as text and its help. Defaults are parsed
 * by the row's own parser, so the parser, --help, the run header and the
 * (key, value) pairs cannot disagree about a flag. */
typedef enum { G_MODEL, G_DATA, G_OPTIM, G_SCHEDULE, G_CLUSTER, G_OUTPUT, G_COUNT } flag_group;
typedef enum { T_BOOL, T_UINT, T_FLOAT, T_DOUBLE, T_TEXT, T_CHOICE, T_CUSTOM } flag_type;
/* Where a default comes from: the row, the optimizer (ps_opt_defaults) or
 * the model kind. */
typedef enum { DEP_NONE, DEP_RULE, DEP_MODEL } flag_dep;

typedef struct {
    double lo, hi; /* hi may be INFINITY */
    int lo_open, hi_open;
} real_range;

static const real_range R_NONNEG = {0.0, INFINITY, 0, 1};
static const real_range R_POS = {0.0, INFINITY, 1, 1};
static const real_range R_UNIT = {0.0, 1.0, 0, 1}; /* [0, 1) */

/* The words of a choice: a list indexed by value, or the owner's parser
 * and namer over values 0..count-1. */
typedef struct {
    const char *const *names;
    int count;
    int (*parse)(const char *text, int *out);
    const char *(*name)(int value);
} choice;

/* Values no type above describes: the whole cfg in, the text out. */
typedef struct {
    int (*parse)(ps_cfg *cfg, const char *text, char *err, size_t errlen);
    void (*format)(const ps_cfg *cfg, char *buf, size_t n);
} custom_ops;

typedef struct {
    const char *name; /* --name; NULL: no flag of its own */
    const char *key;  /* key in the run header */
    flag_group group;
    flag_type type;
    size_t off, size;    /* the field in ps_cfg */
    const char *metavar; /* NULL: the choices' words, or none (bool) */
    const char *def;     /* the default as flag text ("" = unset); NULL with dep */
    const char *help;    /* NULL: not listed by --help */
    unsigned cmds;       /* commands whose argv it is parsed for (CMD bits); 0 = all */
    uint64_t lo, hi;     /* T_UINT bounds */
    const real_range *range;
    const char *word; /* T_UINT: the word for 0; T_CHOICE: for -1 */
    const choice *choices;
    const custom_ops *ops;
    flag_dep dep;
    unsigned reads;              /* DEP_RULE: the PS_OPT_READS_* bit of the field */
    const char *const *by_model; /* DEP_MODEL: the default text per ps_model_kind */
} row;

#define CMD(c) (1u << (c))
#define AT(m) .off = offsetof(ps_cfg, m), .size = sizeof(((ps_cfg *)0)->m)
#define FLAG(n, k, g, m) .name = n, .key = k, .group = g, AT(m)
#define BOOL .type = T_BOOL
#define TEXT .type = T_TEXT
#define UINT(l, h) .type = T_UINT, .lo = (l), .hi = (h)
#define FLOAT(r) .type = T_FLOAT, .range = &(r)
#define DOUBLE(r) .type = T_DOUBLE, .range = &(r)
#define CHOICE(c) .type = T_CHOICE, .choices = &(c)
#define CUSTOM(o) .type = T_CUSTOM, .ops = &(o)
#define PER_RULE(bit) .dep = DEP_RULE, .reads = (bit)
#define PER_MODEL(logreg, mlp)                                                                     \
    .dep = DEP_MODEL, .by_model = (const char *const[PS_MODEL_NKINDS])                             \
    {                                                                                              \
        [PS_MODEL_LOGREG] = (logreg), [PS_MODEL_MLP] = (mlp)                                       \
    }
#define LIST(a)                                                                                    \
    {                                                                                              \
        (a), (int)(sizeof(a) / sizeof((a)[0])), NULL, NULL                                         \
    }

/* An owner's parser and namer as the int a choice row stores, so the words
 * live only with the owner (server/optim.c, worker/model.c, ...). */
#define OWNER_CHOICE(id, type, parse_fn, name_fn, count)                                           \
    static int id##_parse(const char *text, int *out)                                              \
    {                                                                                              \
        type v;                                                                                    \
        int rc = parse_fn(text, &v);                                                               \
        if (rc == 0) {                                                                             \
            *out = (int)v;                                                                         \
        }                                                                                          \
        return rc;                                                                                 \
    }                                                                                              \
    static const char *id##_name(int v)                                                            \
    {                                                                                              \
        return name_fn((type)v);                                                                   \
    }                                                                                              \
    static const choice id##_choice = {NULL, (count), id##_parse, id##_name}

OWNER_CHOICE(opt, ps_opt_kind, ps_opt_parse, ps_opt_name, PS_OPT_COUNT_);
OWNER_CHOICE(model, ps_model_kind, ps_model_parse_kind, ps_model_kind_name, PS_MODEL_NKINDS);
OWNER_CHOICE(shard, ps_shard_mode, ps_shard_parse_mode, ps_shard_mode_name, PS_SHARD_HASH + 1);
OWNER_CHOICE(init, ps_init_kind, ps_init_parse, ps_init_name, PS_INIT_GLOROT + 1);

static const char *const cmd_names[] = {[PS_CMD_TRAIN] = "train",
                                        [PS_CMD_PREDICT] = "predict",
                                        [PS_CMD_SYNTH] = "synth",
                                        [PS_CMD_HELP] = "help"};
static const char *const dataset_names[] = {"fashion-mnist"};
static const char *const format_names[] = {
    [PS_FMT_AUTO] = "auto", [PS_FMT_IDX] = "idx", [PS_FMT_LIBSVM] = "libsvm"};
static const char *const stream_names[] = {
    [PS_STREAM_OFF] = "off", [PS_STREAM_ON] = "on", [PS_STREAM_AUTO] = "auto"};
static const char *const schedule_names[] = {[PS_LR_CONST] = "const", [PS_LR_INVSQRT] = "invsqrt"};
static const char *const sparse_names[] = {"dense", "lazy"};
static const char *const onoff_names[] = {"off", "on"};
static const char *const nonfinite_names[] = {"abort", "skip"};
static const char *const log_names[] = {"text", "json"};
static const choice cmd_choice = LIST(cmd_names), dataset_choice = LIST(dataset_names),
                    format_choice = LIST(format_names), stream_choice = LIST(stream_names),
                    schedule_choice = LIST(schedule_names), sparse_choice = LIST(sparse_names),
                    onoff_choice = LIST(onoff_names), nonfinite_choice = LIST(nonfinite_names),
                    log_choice = LIST(log_names);

static int parse_hidden(ps_cfg *cfg, const char *text, char *err, size_t errlen);
static void format_hidden(const ps_cfg *cfg, char *buf, size_t n);
static int parse_synthetic(ps_cfg *cfg, const char *text, char *err, size_t errlen);
static void format_synthetic(const ps_cfg *cfg, char *buf, size_t n);
static int parse_consistency(ps_cfg *cfg, const char *text, char *err, size_t errlen);
static void format_consistency(const ps_cfg *cfg, char *buf, size_t n);
static const custom_ops hidden_ops = {parse_hidden, format_hidden};
static const custom_ops synthetic_ops = {parse_synthetic, format_synthetic};
static const custom_ops consistency_ops = {parse_consistency, format_consistency};

static const row flags[] = {
    {.key = "cmd", AT(cmd), CHOICE(cmd_choice), .def = "train"},

    {FLAG("model", "model", G_MODEL, model), CHOICE(model_choice), .def = "mlp",
     .cmds = CMD(PS_CMD_TRAIN) | CMD(PS_CMD_SYNTH),
     .help = "model kind; for predict: the DIR written by --save-model"},
    {FLAG("hidden", "hidden", G_MODEL, hidden), CUSTOM(hidden_ops), .metavar = "N,N,..",
     .def = "1000,1000", .help = "mlp hidden layer widths, at most 8"},
    {FLAG("dropout-input", "dropout_input", G_MODEL, dropout_input), FLOAT(R_UNIT), .metavar = "P",
     PER_MODEL("0", "0.2"), .help = "input dropout, in [0, 1)"},
    {FLAG("dropout", "dropout", G_MODEL, dropout), FLOAT(R_UNIT), .metavar = "P",
     PER_MODEL("0", "0.5"), .help = "hidden dropout, in [0, 1)"},
    {FLAG("l2", "l2", G_MODEL, l2), FLOAT(R_NONNEG), .metavar = "LAMBDA", .def = "0",
     .help = "L2 penalty in the loss, >= 0"},
    {FLAG("init", "init", G_MODEL, init), CHOICE(init_choice), .word = "auto", .def = "auto",
     .help = "weight initialisation; auto = the model's own"},

    {FLAG("dataset", "dataset", G_DATA, dataset), TEXT, .choices = &dataset_choice, .def = "",
     .help = "named IDX data set under --data-dir"},
    {FLAG("data-dir", "data_dir", G_DATA, data_dir), TEXT, .metavar = "DIR",
     .def = "/usr/share/datasets/fashion-mnist", .help = "where --dataset files live"},
    {FLAG("train", "train", G_DATA, train), TEXT, .metavar = "FILE", .def = "",
     .help = "training file (needs --test)"},
    {FLAG("test", "test", G_DATA, test), TEXT, .metavar = "FILE", .def = "",
     .help = "evaluation file (train), input file (predict)"},
    {FLAG("format", "format", G_DATA, format), CHOICE(format_choice), .def = "auto",
     .help = "file format; auto = from the name"},
    {FLAG("zero-based", "zero_based", G_DATA, zero_based), BOOL, .def = "0",
     .help = "libsvm feature ids start at 0"},
    {FLAG("synthetic", "synthetic", G_DATA, synthetic), CUSTOM(synthetic_ops),
     .metavar = "rows=N,features=N,nnz=N,classes=N[,zipf=X,noise=X,test=N]", .def = "off",
     .help = "planted sparse model instead of files"},
    {FLAG("hash-bits", "hash_bits", G_DATA, hash_bits), UINT(1, 40), .word = "off", .metavar = "B",
     .def = "off", .help = "hash features to 2^B rows, 1..40"},
    {FLAG("features", "features", G_DATA, features), UINT(0, UINT64_MAX), .metavar = "N",
     .def = "0", .help = "libsvm feature count; 0 = scan the file"},
    {FLAG("train-limit", "train_limit", G_DATA, train_limit), UINT(0, UINT64_MAX), .metavar = "N",
     .def = "0", .help = "first N training samples; 0 = all"},
    {FLAG("test-limit", "test_limit", G_DATA, test_limit), UINT(0, UINT64_MAX), .metavar = "N",
     .def = "0", .help = "first N test samples; 0 = all"},
    {FLAG("stream", "stream", G_DATA, stream), CHOICE(stream_choice), .def = "auto",
     .help = "read libsvm training data in chunks (auto: parts over 1 GiB)"},

    {FLAG("optimizer", "optimizer", G_OPTIM, opt.kind), CHOICE(opt_choice), .def = "adam",
     .help = "update rule"},
    {FLAG("lr", "lr", G_OPTIM, opt.lr), FLOAT(R_POS), .metavar = "ALPHA", PER_RULE(PS_OPT_READS_LR),
     .help = "step size, > 0"},
    {FLAG("beta1", "beta1", G_OPTIM, opt.beta1), FLOAT(R_UNIT), .metavar = "B",
     PER_RULE(PS_OPT_READS_BETA1), .help = "first moment decay, in [0, 1)"},
    {FLAG("beta2", "beta2", G_OPTIM, opt.beta2), FLOAT(R_UNIT), .metavar = "B",
     PER_RULE(PS_OPT_READS_BETA2), .help = "second moment decay, in [0, 1)"},
    {FLAG("eps", "eps", G_OPTIM, opt.eps), FLOAT(R_NONNEG), .metavar = "E",
     PER_RULE(PS_OPT_READS_EPS), .help = "denominator guard, > 0"},
    {FLAG("no-bias-correction", "bias_correction", G_OPTIM, opt.bias_correction), BOOL, .def = "1",
     .help = "use raw m and v (paper section 6.4)"},
    {FLAG("lr-schedule", "lr_schedule", G_OPTIM, opt.schedule), CHOICE(schedule_choice),
     .def = "const", .help = "invsqrt: alpha / sqrt(t)"},
    {FLAG("momentum", "momentum", G_OPTIM, opt.momentum), FLOAT(R_UNIT), .metavar = "MU",
     PER_RULE(PS_OPT_READS_MOMENTUM), .help = "nesterov momentum, in [0, 1)"},
    {FLAG("weight-decay", "weight_decay", G_OPTIM, opt.weight_decay), FLOAT(R_NONNEG),
     .metavar = "WD", PER_RULE(PS_OPT_READS_WEIGHT_DECAY), .help = "adamw decoupled decay, >= 0"},
    {FLAG("temporal-averaging", "temporal_averaging", G_OPTIM, temporal_averaging), FLOAT(R_UNIT),
     .metavar = "BETA", .def = "0", .help = "average parameters (section 7.2), in [0, 1); 0 = off"},
    {FLAG("sparse-update", "sparse_update", G_OPTIM, sparse_lazy), CHOICE(sparse_choice),
     .def = "lazy", .help = "lazy: only pushed rows step; dense: exact Adam"},

    {FLAG("batch", "batch", G_SCHEDULE, batch), UINT(1, UINT32_MAX), .metavar = "N", .def = "128",
     .help = "minibatch per worker, >= 1"},
    {FLAG("epochs", "epochs", G_SCHEDULE, epochs), DOUBLE(R_POS), .metavar = "E", .def = "3",
     .help = "passes over the data, > 0"},
    {FLAG("steps", "steps", G_SCHEDULE, steps), UINT(1, UINT64_MAX), .word = "auto", .metavar = "N",
     .def = "auto", .help = "clocks to run instead of --epochs; auto = from epochs"},
    {FLAG("seed", "seed", G_SCHEDULE, seed), UINT(0, UINT64_MAX), .metavar = "N", .def = "1",
     .help = "seed for init, shuffle and dropout"},
    {FLAG("shuffle", "shuffle", G_SCHEDULE, shuffle), CHOICE(onoff_choice), .def = "on",
     .help = "reshuffle every epoch"},

    {FLAG("servers", "servers", G_CLUSTER, servers), UINT(1, INT_MAX), .word = "auto",
     .metavar = "S", .def = "auto", .help = "server ranks, >= 1; auto = one per node"},
    {FLAG("shard", "shard", G_CLUSTER, shard), CHOICE(shard_choice), .def = "range",
     .help = "how rows map to servers"},
    {FLAG("consistency", "consistency", G_CLUSTER, sync), CUSTOM(consistency_ops),
     .metavar = "bsp|ssp:K|asp", .def = "bsp",
     .help = "synchronisation; K >= 0 is the staleness bound"},
    {FLAG("nonfinite", "nonfinite", G_CLUSTER, nonfinite_skip), CHOICE(nonfinite_choice),
     .def = "abort", .help = "what a NaN/inf gradient does"},
    {FLAG("inject-delay-ms", "inject_delay_ms", G_CLUSTER, delay_ms), DOUBLE(R_NONNEG),
     .metavar = "X", .def = "0", .help = "testing: random sleep up to X ms per step"},

    {FLAG("eval-every", "eval_every", G_OUTPUT, eval_every), UINT(0, UINT64_MAX), .metavar = "N",
     .def = "0", .help = "evaluate every N steps; 0 = per epoch"},
    {FLAG("metrics", "metrics", G_OUTPUT, metrics), TEXT, .metavar = "FILE", .def = "",
     .help = "JSON lines, one per evaluation"},
    {FLAG("save-model", "save_model", G_OUTPUT, save_model), TEXT, .metavar = "DIR", .def = "",
     .help = "write the model as .npy files"},
    {FLAG("checkpoint-dir", "checkpoint_dir", G_OUTPUT, ckpt_dir), TEXT, .metavar = "D", .def = "",
     .help = "checkpoint directory"},
    {FLAG("checkpoint-every", "checkpoint_every", G_OUTPUT, ckpt_every), UINT(0, UINT64_MAX),
     .metavar = "K", .def = "0",
     .help = "checkpoint every K clocks (needs --checkpoint-dir); 0 = off"},
    {FLAG("resume", "resume", G_OUTPUT, resume), BOOL, .def = "0",
     .help = "continue from the last checkpoint (needs --checkpoint-dir)"},
    {FLAG("quiet", "quiet", G_OUTPUT, quiet), BOOL, .def = "0", .help = "warnings and errors only"},
    {FLAG("log-format", "log_format", G_OUTPUT, log_json), CHOICE(log_choice), .def = "text",
     .help = "log line format"},
    {FLAG("progress-every", "progress_every", G_OUTPUT, progress_secs), DOUBLE(R_NONNEG),
     .metavar = "SECONDS", .def = "5", .help = "progress line interval, >= 0; 0 = none"},
    {FLAG("clock-log", "clock_log", G_OUTPUT, clock_log), TEXT, .metavar = "FILE", .def = "",
     .help = "testing: workers append 'worker clock' lines"},
    {FLAG("out", "out", G_OUTPUT, out), TEXT, .metavar = "FILE", .def = "",
     .help = "predict: class per line; synth: libsvm file"},
    /* predict's --model: listed under the train row's help. */
    {FLAG("model", "model_dir", G_OUTPUT, model_dir), TEXT, .metavar = "DIR", .def = "",
     .cmds = CMD(PS_CMD_PREDICT)},
};

#define NFLAGS (sizeof flags / sizeof flags[0])

/* --synthetic's keys, rows of their own (the name is the label in messages). */
static const row synth_keys[] = {
    {FLAG("synthetic rows", "rows", G_DATA, synth.n), UINT(1, UINT64_MAX), .def = "100000"},
    {FLAG("synthetic features", "features", G_DATA, synth.nfeatures), UINT(1, UINT64_MAX),
     .def = "1048576"},
    {FLAG("synthetic nnz", "nnz", G_DATA, synth.nnz), UINT(1, UINT32_MAX), .def = "20"},
    {FLAG("synthetic classes", "classes", G_DATA, synth.nclasses), UINT(2, UINT32_MAX), .def = "2"},
    {FLAG("synthetic zipf", "zipf", G_DATA, synth.zipf_s), DOUBLE(R_NONNEG), .def = "1.1"},
    {FLAG("synthetic noise", "noise", G_DATA, synth.noise), DOUBLE(R_NONNEG), .def = "0.1"},
    /* Last: its default, rows / 10, follows the rows given. */
    {FLAG("synthetic test", "test", G_DATA, synth_test), UINT(0, UINT64_MAX)},
};

#define NSYNTH (sizeof synth_keys / sizeof synth_keys[0])

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
static int parse_uint(const char *label, const char *text, uint64_t lo, uint64_t hi, uint64_t *out,
                      char *err, size_t errlen)
{
    int rc = 0;
    const char *kind = lo >= 1 ? "a positive integer" : "a non-negative integer";
    char *end = NULL;
    errno = 0;
    unsigned long long v = text[0] >= '0' && text[0] <= '9' ? strtoull(text, &end, 10) : 0;
    if (!end || *end != '\0' || (lo >= 1 && v == 0)) {
        rc = set_err(err, errlen, "%s: '%s' is not %s", label, text, kind);
    } else if (errno == ERANGE || v < lo || v > hi) {
        rc = set_err(err, errlen, "%s: '%s' is out of range [%llu, %llu]", label, text,
                     (unsigned long long)lo, (unsigned long long)hi);
    } else {
        *out = v;
    }
    return rc;
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
static int parse_real(const char *label, const char *text, const real_range *r, int as_float,
                      double *out, char *err, size_t errlen)
{
    int rc = 0;
    char *end = NULL;
    /* strtod skips leading blanks; a flag value with them is a typo. */
    double v = text[0] == '\0' || text[0] == ' ' || text[0] == '\t' ? 0 : strtod(text, &end);
    if (!end || *end != '\0') {
        rc = set_err(err, errlen, "%s: '%s' is not a number", label, text);
    } else if (!isfinite(v)) {
        rc = set_err(err, errlen, "%s: '%s' is not a finite number", label, text);
    } else if (as_float && fabs(v) > FLT_MAX) {
        rc = set_err(err, errlen, "%s: '%s' does not fit in a float", label, text);
    } else {
        v = as_float ? (double)(float)v : v;
        if (!in_range(r, v)) {
            char what[64];
            if (isinf(r->hi)) {
                snprintf(what, sizeof what, "%s %g", r->lo_open ? ">" : ">=", r->lo);
            } else {
                snprintf(what, sizeof what, "in %c%g, %g%c", r->lo_open ? '(' : '[', r->lo, r->hi,
                         r->hi_open ? ')' : ']');
            }
            rc = set_err(err, errlen, "%s: '%s' is not %s", label, text, what);
        } else {
            *out = v;
        }
    }
    return rc;
}

/* Shortest %g text that reads back to the same value, so the run header
 * says lr=0.001 and not lr=0.00100000005, yet loses nothing. */
static void fmt_real(char *buf, size_t n, double v, int as_float)
{
    for (int p = 6; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (as_float ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v) {
            break;
        }
    }
}

static int copy_text(const char *label, const char *text, char *dst, size_t cap, char *err,
                     size_t errlen)
{
    int rc = 0;
    size_t n = strlen(text);
    if (n == 0) {
        rc = set_err(err, errlen, "%s: empty value", label);
    } else if (n >= cap) {
        rc = set_err(err, errlen, "%s: '%.40s...' is longer than %zu bytes", label, text, cap - 1);
    } else {
        /* The tail is zeroed too, so configs compare with memcmp. */
        memset(dst, 0, cap);
        memcpy(dst, text, n);
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

static const char *choice_name(const choice *c, int v)
{
    if (v < 0 || v >= c->count) {
        return "?";
    }
    return c->names ? c->names[v] : c->name(v);
}

static int choice_parse(const choice *c, const char *text, int *out)
{
    if (!c->names) {
        return c->parse(text, out);
    }
    int i = find_name(text, c->names, (size_t)c->count);
    *out = i >= 0 ? i : *out;
    return i >= 0 ? 0 : PS_EINVAL;
}

/* f's words joined by sep (its `word` first), for --help and messages. */
static void choice_list(const row *f, const char *sep, char *buf, size_t n)
{
    size_t used = (size_t)snprintf(buf, n, "%s", f->word && f->type == T_CHOICE ? f->word : "");
    for (int v = 0; v < f->choices->count && used < n; v++) {
        used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? sep : "",
                                 choice_name(f->choices, v));
    }
}

static void store_uint(void *p, size_t size, uint64_t v)
{
    if (size == sizeof(uint32_t)) {
        *(uint32_t *)p = (uint32_t)v;
    } else {
        PS_ASSERT(size == sizeof(uint64_t));
        *(uint64_t *)p = v;
    }
}

static uint64_t load_uint(const void *p, size_t size)
{
    return size == sizeof(uint32_t) ? *(const uint32_t *)p : *(const uint64_t *)p;
}

/* Stores text, a value as the flag takes it, into f's field. */
static int parse_value(ps_cfg *cfg, const row *f, const char *text, char *err, size_t errlen)
{
    char lab[48];
    snprintf(lab, sizeof lab, "%s%s", f->name ? "--" : "", f->name ? f->name : f->key);
    void *p = (char *)cfg + f->off;
    int rc = 0;
    int v = 0;
    uint64_t u = 0;
    double d = 0.0;
    switch (f->type) {
    case T_BOOL:
        if (strcmp(text, "0") != 0 && strcmp(text, "1") != 0) {
            rc = set_err(err, errlen, "%s: '%s' is not 0 or 1", lab, text);
        } else {
            *(int *)p = text[0] == '1';
        }
        break;
    case T_UINT:
        if (!f->word || strcmp(text, f->word) != 0) {
            rc = parse_uint(lab, text, f->lo, f->hi, &u, err, errlen);
        }
        if (rc == 0) {
            store_uint(p, f->size, u);
        }
        break;
    case T_FLOAT:
    case T_DOUBLE:
        rc = parse_real(lab, text, f->range, f->type == T_FLOAT, &d, err, errlen);
        if (rc == 0 && f->type == T_FLOAT) {
            *(float *)p = (float)d;
        } else if (rc == 0) {
            *(double *)p = d;
        }
        break;
    case T_TEXT:
    case T_CHOICE:
        if (f->type == T_CHOICE && f->word && strcmp(text, f->word) == 0) {
            v = -1;
        } else if (f->choices && choice_parse(f->choices, text, &v) != 0) {
            char list[256];
            choice_list(f, ", ", list, sizeof list);
            rc = set_err(err, errlen, "%s: unknown value '%s' (expected one of: %s)", lab, text,
                         list);
        }
        if (rc == 0 && f->type == T_TEXT) {
            rc = copy_text(lab, text, p, f->size, err, errlen);
        } else if (rc == 0) {
            PS_ASSERT(f->size == sizeof(int)); /* an enum or an int */
            *(int *)p = v;
        }
        break;
    case T_CUSTOM:
        rc = f->ops->parse(cfg, text, err, errlen);
        break;
    }
    return rc;
}

/* f's value in cfg as the flag would spell it ("" for an unset path). */
static void format_value(const ps_cfg *cfg, const row *f, char *buf, size_t n)
{
    const void *p = (const char *)cfg + f->off;
    uint64_t u = 0;
    int v = 0;
    switch (f->type) {
    case T_BOOL:
        snprintf(buf, n, "%d", *(const int *)p);
        break;
    case T_UINT:
        u = load_uint(p, f->size);
        if (u == 0 && f->word) {
            snprintf(buf, n, "%s", f->word);
        } else {
            snprintf(buf, n, "%llu", (unsigned long long)u);
        }
        break;
    case T_FLOAT:
        fmt_real(buf, n, *(const float *)p, 1);
        break;
    case T_DOUBLE:
        fmt_real(buf, n, *(const double *)p, 0);
        break;
    case T_TEXT:
        snprintf(buf, n, "%s", (const char *)p);
        break;
    case T_CHOICE:
        v = *(const int *)p;
        snprintf(buf, n, "%s", v == -1 && f->word ? f->word : choice_name(f->choices, v));
        break;
    case T_CUSTOM:
        f->ops->format(cfg, buf, n);
        break;
    }
}

/* "1000,1000": 1..8 positive widths; "" means no hidden layer (logreg). */
static int parse_hidden(ps_cfg *cfg, const char *text, char *err, size_t errlen)
{
    int rc = 0;
    uint32_t n = 0;
    uint32_t widths[PS_MODEL_MAX_HIDDEN];
    const char *p = text;
    while (*p != '\0' && rc == 0) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[24];
        uint64_t w = 0;
        if (n == PS_MODEL_MAX_HIDDEN) {
            rc = set_err(err, errlen, "--hidden: '%s' has more than %d layers", text,
                         PS_MODEL_MAX_HIDDEN);
        } else if (len == 0 || len >= sizeof item) {
            rc = set_err(err, errlen, "--hidden: '%s' is not a list of positive integers", text);
        } else {
            memcpy(item, p, len);
            item[len] = '\0';
            rc = parse_uint("--hidden", item, 1, INT32_MAX, &w, err, errlen);
            widths[n++] = (uint32_t)w;
            /* A trailing comma leaves an empty last item: reject it too. */
            if (rc == 0 && comma && comma[1] == '\0') {
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

static void format_hidden(const ps_cfg *cfg, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < cfg->nhidden && i < PS_MODEL_MAX_HIDDEN && used < n; i++) {
        used += (size_t)snprintf(buf + used, n - used, "%s%u", i ? "," : "", cfg->hidden[i]);
    }
}

/* "rows=N,features=N,nnz=N,classes=N,zipf=X,noise=X,test=N": keys may be
 * omitted (they take their defaults; test defaults to rows/10); "off" is no
 * synthetic data, with the defaults kept for the synth command. */
static int parse_synthetic(ps_cfg *cfg, const char *text, char *err, size_t errlen)
{
    int rc = 0;
    unsigned char seen[NSYNTH] = {0};
    for (size_t k = 0; k + 1 < NSYNTH && rc == 0; k++) {
        rc = parse_value(cfg, &synth_keys[k], synth_keys[k].def, err, errlen);
    }
    int off = strcmp(text, "off") == 0;
    const char *p = off ? "" : text;
    while (*p != '\0' && rc == 0) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        char *eq = NULL;
        if (len == 0 || len >= sizeof item) {
            rc = set_err(err, errlen, "--synthetic: '%s' is not a list of key=value", text);
            break;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (!(eq = strchr(item, '='))) {
            rc = set_err(err, errlen, "--synthetic: '%s' is not key=value", item);
            break;
        }
        *eq = '\0';
        size_t k = 0;
        while (k < NSYNTH && strcmp(item, synth_keys[k].key) != 0) {
            k++;
        }
        if (k == NSYNTH) {
            rc = set_err(err, errlen,
                         "--synthetic: unknown key '%s' (known: rows, features, nnz, classes, "
                         "zipf, noise, test)",
                         item);
        } else if (seen[k]) {
            rc = set_err(err, errlen, "--synthetic: key '%s' given twice", item);
        } else if ((rc = parse_value(cfg, &synth_keys[k], eq + 1, err, errlen)) == 0 && comma &&
                   comma[1] == '\0') {
            rc = set_err(err, errlen, "--synthetic: '%s' ends with a comma", text);
        } else {
            seen[k] = 1;
        }
        p = comma ? comma + 1 : p + len;
    }
    if (!seen[NSYNTH - 1]) {
        cfg->synth_test = cfg->synth.n / 10;
    }
    if (rc == 0 && cfg->synth.nnz > cfg->synth.nfeatures) {
        rc = set_err(err, errlen, "--synthetic: nnz=%u exceeds features=%llu", cfg->synth.nnz,
                     (unsigned long long)cfg->synth.nfeatures);
    }
    /* Test rows are held out of rows, so some must be left to train on. */
    if (rc == 0 && cfg->synth_test >= cfg->synth.n) {
        rc = set_err(err, errlen, "--synthetic: test=%llu leaves no training rows of rows=%llu",
                     (unsigned long long)cfg->synth_test, (unsigned long long)cfg->synth.n);
    }
    cfg->synthetic = rc == 0 && !off;
    return rc;
}

static void format_synthetic(const ps_cfg *cfg, char *buf, size_t n)
{
    size_t used = (size_t)snprintf(buf, n, "%s", cfg->synthetic ? "" : "off");
    for (size_t k = 0; k < NSYNTH && cfg->synthetic && used < n; k++) {
        char val[32];
        format_value(cfg, &synth_keys[k], val, sizeof val);
        used +=
            (size_t)snprintf(buf + used, n - used, "%s%s=%s", k ? "," : "", synth_keys[k].key, val);
    }
}

static int parse_consistency(ps_cfg *cfg, const char *text, char *err, size_t errlen)
{
    int rc = 0;
    uint64_t k = 0;
    if (strcmp(text, "bsp") == 0 || strcmp(text, "asp") == 0) {
        cfg->sync = text[0] == 'b' ? PS_SYNC_BSP : PS_SYNC_ASP;
        cfg->staleness = 0;
    } else if (strncmp(text, "ssp:", 4) == 0) {
        rc = parse_uint("--consistency ssp:K", text + 4, 0, INT_MAX, &k, err, errlen);
        if (rc == 0) {
            /* ssp:0 behaves like bsp but stays SSP: the server's code path
             * and the run header say what the user asked for. */
            cfg->sync = PS_SYNC_SSP;
            cfg->staleness = (uint32_t)k;
        }
    } else if (strcmp(text, "ssp") == 0) {
        rc = set_err(err, errlen, "--consistency: 'ssp' needs a staleness bound, e.g. ssp:2");
    } else {
        rc = set_err(err, errlen,
                     "--consistency: unknown value '%s' (expected one of: bsp, ssp:K, asp)", text);
    }
    return rc;
}

static void format_consistency(const ps_cfg *cfg, char *buf, size_t n)
{
    if (cfg->sync == PS_SYNC_SSP) {
        snprintf(buf, n, "ssp:%u", cfg->staleness);
    } else {
        snprintf(buf, n, "%s", cfg->sync == PS_SYNC_ASP ? "asp" : "bsp");
    }
}

static const row *find_key(const char *key)
{
    for (size_t i = 0; i < NFLAGS; i++) {
        if (strcmp(flags[i].key, key) == 0) {
            return &flags[i];
        }
    }
    return NULL;
}

/* 1 if the flag with header key `key` was on the command line. */
static int given(const unsigned char *seen, const char *key)
{
    const row *f = find_key(key);
    PS_ASSERT(f != NULL);
    return seen[f - flags];
}

/* The per-model and per-optimizer defaults of the flags not given (seen
 * NULL: none given). */
static void resolve_defaults(ps_cfg *cfg, const unsigned char *seen)
{
    ps_opt_hp hp;
    ps_opt_defaults(&hp, cfg->opt.kind);
    for (size_t i = 0; i < NFLAGS; i++) {
        const row *f = &flags[i];
        if (seen && seen[i]) {
            continue;
        }
        if (f->dep == DEP_RULE) {
            /* The field sits in cfg->opt at the offset it has in hp. */
            size_t at = f->off - offsetof(ps_cfg, opt);
            PS_ASSERT(f->off >= offsetof(ps_cfg, opt) && at + f->size <= sizeof hp);
            memcpy((char *)cfg + f->off, (const char *)&hp + at, f->size);
        } else if (f->dep == DEP_MODEL) {
            int rc = parse_value(cfg, f, f->by_model[cfg->model], NULL, 0);
            PS_ASSERT(rc == 0);
        }
    }
}

void ps_cfg_defaults(ps_cfg *cfg)
{
    /* Zeroed first so unused path bytes and padding are deterministic:
     * tests compare whole configs. */
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NFLAGS; i++) {
        if (flags[i].dep == DEP_NONE && flags[i].def && flags[i].def[0] != '\0') {
            int rc = parse_value(cfg, &flags[i], flags[i].def, NULL, 0);
            PS_ASSERT(rc == 0);
        }
    }
    resolve_defaults(cfg, NULL);
}

/* Combinations no single flag can judge. seen[] marks the rows given. */
static int check_combinations(ps_cfg *cfg, const unsigned char *seen, char *err, size_t errlen)
{
    int rc = 0;
    const char *sources[3];
    int nsources = 0;
    int synthetic = given(seen, "synthetic") && cfg->synthetic;
    int train = cfg->cmd == PS_CMD_TRAIN, predict = cfg->cmd == PS_CMD_PREDICT;
    const char *rule = ps_opt_name(cfg->opt.kind);
    char eps[32];
    fmt_real(eps, sizeof eps, cfg->opt.eps, 1);
    if (given(seen, "dataset")) {
        sources[nsources++] = "--dataset";
    }
    if (given(seen, "train")) {
        sources[nsources++] = "--train";
    }
    if (synthetic) {
        sources[nsources++] = "--synthetic";
    }

    if (given(seen, "epochs") && given(seen, "steps")) {
        rc = set_err(err, errlen, "--epochs and --steps are exclusive: give one");
    } else if (given(seen, "checkpoint_every") && cfg->ckpt_every > 0 &&
               !given(seen, "checkpoint_dir")) {
        rc = set_err(err, errlen, "--checkpoint-every needs --checkpoint-dir");
    } else if (given(seen, "resume") && !given(seen, "checkpoint_dir")) {
        rc = set_err(err, errlen, "--resume needs --checkpoint-dir");
    } else if (cfg->model == PS_MODEL_MLP && cfg->nhidden == 0 && !predict) {
        rc = set_err(err, errlen,
                     "--hidden: an mlp needs at least one hidden layer (--model logreg has none)");
    } else if (nsources > 1) {
        rc = set_err(err, errlen, "%s and %s are exclusive: give one data source", sources[0],
                     sources[1]);
    } else if (given(seen, "dataset") && given(seen, "format") && cfg->format == PS_FMT_LIBSVM) {
        rc = set_err(err, errlen, "--format: fashion-mnist is an IDX data set, not libsvm");
    } else if (synthetic && given(seen, "format")) {
        rc = set_err(err, errlen, "--format does not apply to --synthetic");
    } else if (train && given(seen, "test") && !given(seen, "train")) {
        rc = set_err(err, errlen,
                     "--test goes with --train (--dataset and --synthetic bring their own test "
                     "data)");
    } else if (train && nsources == 0) {
        rc = set_err(err, errlen,
                     "train needs a data source: --dataset NAME, --train FILE --test FILE or "
                     "--synthetic SPEC");
    } else if (train && given(seen, "train") && !given(seen, "test")) {
        rc = set_err(err, errlen,
                     "--train needs --test FILE too: evaluation needs held-out data (only "
                     "--dataset and --synthetic bring their own)");
    } else if (train && (ps_opt_reads(cfg->opt.kind) & PS_OPT_READS_EPS) && !(cfg->opt.eps > 0)) {
        rc = set_err(err, errlen,
                     "--eps %s: --optimizer %s divides by sqrt(v) + eps, so eps must be > 0 "
                     "(adamax has no eps)",
                     eps, rule);
    } else if (train && cfg->opt.kind == PS_OPT_SGD && given(seen, "momentum")) {
        rc = set_err(err, errlen,
                     "--momentum: --optimizer sgd is plain SGD and has no momentum; use "
                     "--optimizer nesterov");
    } else if (predict && !given(seen, "model_dir")) {
        rc = set_err(err, errlen, "predict needs --model DIR (a directory from --save-model)");
    } else if (predict && !given(seen, "test") && !given(seen, "dataset")) {
        rc = set_err(err, errlen, "predict needs --test FILE or --dataset NAME");
    } else if (predict && given(seen, "test") && given(seen, "dataset")) {
        rc = set_err(err, errlen, "--test and --dataset are exclusive: give one data source");
    } else if (cfg->cmd == PS_CMD_SYNTH && !given(seen, "out")) {
        rc = set_err(err, errlen, "synth needs --out FILE");
    }

    if (rc == 0 && given(seen, "dataset")) {
        cfg->format = PS_FMT_IDX;
    }
    if (rc == 0 && cfg->cmd == PS_CMD_SYNTH) {
        cfg->synthetic = 1; /* synth writes the generator's data */
    }
    return rc;
}

static int parse_command(ps_cfg *cfg, const char *word, char *err, size_t errlen)
{
    int rc = 0;
    int cmd = 0;
    if (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0) {
        cfg->cmd = PS_CMD_HELP;
    } else if (choice_parse(&cmd_choice, word, &cmd) == 0) {
        cfg->cmd = (ps_cmd)cmd;
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

/* The row flag `name` (len bytes) stands for under command cmd, or NULL. */
static const row *find_flag(ps_cmd cmd, const char *name, size_t len)
{
    for (size_t i = 0; i < NFLAGS; i++) {
        const row *f = &flags[i];
        if (f->name && strlen(f->name) == len && strncmp(f->name, name, len) == 0 &&
            (f->cmds == 0 || (f->cmds & CMD(cmd)))) {
            return f;
        }
    }
    return NULL;
}

static void metavar(const row *f, char *buf, size_t n)
{
    if (f->metavar || !f->choices) {
        snprintf(buf, n, "%s", f->metavar ? f->metavar : "");
    } else {
        choice_list(f, "|", buf, n);
    }
}

int ps_cfg_parse(ps_cfg *cfg, int argc, char **argv, char *err, size_t errlen)
{
    int rc = 0;
    unsigned char seen[NFLAGS] = {0};
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
        const row *f = find_flag(cfg->cmd, name, len);
        if (!f) {
            rc = set_err(err, errlen, "unknown flag --%.*s (see adamps --help)", (int)len, name);
            goto done;
        }
        /* A boolean flag given flips its default. */
        const char *val = strcmp(f->def ? f->def : "", "1") == 0 ? "0" : "1";
        char mv[256];
        metavar(f, mv, sizeof mv);
        if (f->type == T_BOOL) {
            if (eq) {
                rc = set_err(err, errlen, "--%s takes no value (got '%s')", f->name, eq + 1);
                goto done;
            }
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 >= argc) {
            rc = set_err(err, errlen, "--%s needs a value: --%s %s", f->name, f->name, mv);
            goto done;
        } else {
            val = argv[++i];
            /* `--train --test x` would otherwise read "--test" as a path. */
            if (strncmp(val, "--", 2) == 0) {
                rc = set_err(err, errlen, "--%s needs a value (got flag '%s')", f->name, val);
                goto done;
            }
        }
        if ((rc = parse_value(cfg, f, val, err, errlen)) != 0) {
            goto done;
        }
        seen[f - flags] = 1;
    }
    resolve_defaults(cfg, seen);
    rc = check_combinations(cfg, seen, err, errlen);
done:
    return rc;
}

int ps_cfg_warning(const ps_cfg *cfg, char *buf, size_t len)
{
    int any = cfg->cmd == PS_CMD_TRAIN && cfg->opt.kind == PS_OPT_ADAGRAD &&
              cfg->opt.schedule == PS_LR_INVSQRT;
    snprintf(buf, len, "%s",
             any ? "--lr-schedule invsqrt with --optimizer adagrad: AdaGrad already shrinks its "
                   "steps as 1/sqrt(sum of g^2), so they shrink twice over"
                 : "");
    return any;
}

/* What --help says a flag defaults to: the value, or each optimizer's or
 * model's, from the same sources ps_cfg_defaults reads. */
static void default_text(const row *f, const ps_cfg *d, char *buf, size_t n)
{
    size_t used = 0;
    if (f->type == T_BOOL) {
        snprintf(buf, n, "off"); /* off unless given */
    } else if (f->dep == DEP_RULE) {
        used = (size_t)snprintf(buf, n, "per optimizer:");
        for (int k = 0; k < PS_OPT_COUNT_ && used < n; k++) {
            ps_opt_hp hp;
            char v[32];
            float x;
            if (!(ps_opt_reads((ps_opt_kind)k) & f->reads)) {
                continue;
            }
            ps_opt_defaults(&hp, (ps_opt_kind)k);
            memcpy(&x, (const char *)&hp + (f->off - offsetof(ps_cfg, opt)), sizeof x);
            fmt_real(v, sizeof v, x, 1);
            used +=
                (size_t)snprintf(buf + used, n - used, " %s %s,", ps_opt_name((ps_opt_kind)k), v);
        }
        buf[used < n ? used - 1 : n - 1] = '\0'; /* the last comma */
    } else if (f->dep == DEP_MODEL) {
        snprintf(buf, n, "per model: %s %s, %s %s", ps_model_kind_name(PS_MODEL_LOGREG),
                 f->by_model[PS_MODEL_LOGREG], ps_model_kind_name(PS_MODEL_MLP),
                 f->by_model[PS_MODEL_MLP]);
    } else {
        format_value(d, f, buf, n);
        if (buf[0] == '\0') {
            snprintf(buf, n, "none");
        }
    }
}

/* "  --flag METAVAR   help (default: text)", the text wrapped at 100
 * columns under the help column. */
static void print_flag(FILE *out, const row *f, const ps_cfg *d)
{
    char left[300], mv[256], def[512];
    metavar(f, mv, sizeof mv);
    default_text(f, d, def, sizeof def);
    snprintf(left, sizeof left, "--%s%s%s", f->name, mv[0] ? " " : "", mv);
    /* A long metavar gets its own line so the help column stays. */
    if (strlen(left) > 28) {
        fprintf(out, "  %s\n", left);
        left[0] = '\0';
    }
    /* Lists of per-optimizer values wrap between their items. */
    int col = fprintf(out, "  %-28s %s (default: ", left, f->help);
    for (char *item = def, *next; item; item = next) {
        if ((next = strstr(item, ", "))) {
            *next = '\0';
            next += 2;
        }
        if (item != def && col + 2 + (int)strlen(item) > 99) {
            col = fprintf(out, ",\n%31s", "") - 2;
        } else if (item != def) {
            col += fprintf(out, ", ");
        }
        col += fprintf(out, "%s", item);
    }
    fprintf(out, ")\n");
}

void ps_cfg_usage(void *f)
{
    static const char *const group_names[G_COUNT] = {"model",    "data",    "optimizer",
                                                     "schedule", "cluster", "output"};
    FILE *out = f;
    ps_cfg d;
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
        for (size_t i = 0; i < NFLAGS; i++) {
            if (flags[i].help && (int)flags[i].group == g) {
                print_flag(out, &flags[i], &d);
            }
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

size_t ps_cfg_count(void)
{
    return NFLAGS;
}

const char *ps_cfg_pair(const ps_cfg *cfg, size_t i, const char **flag, char *val, size_t len)
{
    PS_ASSERT(i < NFLAGS);
    if (flag) {
        *flag = flags[i].name;
    }
    format_value(cfg, &flags[i], val, len);
    return flags[i].key;
}

int ps_cfg_set(ps_cfg *cfg, const char *key, const char *text, char *err, size_t errlen)
{
    const row *f = find_key(key);
    if (err && errlen > 0) {
        err[0] = '\0';
    }
    if (!f) {
        return set_err(err, errlen, "unknown configuration key '%s'", key);
    }
    if (text[0] == '\0' && f->def && f->def[0] == '\0') {
        memset((char *)cfg + f->off, 0, f->size);
        return 0;
    }
    return parse_value(cfg, f, text, err, errlen);
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
    for (const char *p = key; *p; p++) {
        append_char(a, *p);
    }
    append_char(a, '=');
    if (quote) {
        append_char(a, '"');
    }
    for (const char *p = val; *p; p++) {
        if (quote && (*p == '"' || *p == '\\')) {
            append_char(a, '\\');
        }
        append_char(a, (unsigned char)*p < 0x20 ? '?' : *p);
    }
    if (quote) {
        append_char(a, '"');
    }
}

int ps_cfg_format(const ps_cfg *cfg, char *buf, size_t len)
{
    appender a = {buf, len, 0};
    char val[PS_CFG_PATH + 64];
    if (buf && len > 0) {
        buf[0] = '\0';
    }
    for (size_t i = 0; i < NFLAGS; i++) {
        format_value(cfg, &flags[i], val, sizeof val);
        append_pair(&a, flags[i].key, val);
    }
    return a.pos > INT_MAX ? INT_MAX : (int)a.pos;
}
