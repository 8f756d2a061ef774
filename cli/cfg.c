#include "cli/cfg.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli/budget.h"
#include "cli/cfg_internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/table.h"
#include "data/labels.h"

/* One row per flag (cli/cfg_internal.h): its field in ps_cfg, how its text
 * becomes the value and back, its default as text and its help. Defaults
 * go through the row's own parser, so the parser, --help, the run header
 * and the (key, value) pairs cannot disagree about a flag. */
#define CMD(c) (1u << (c))
#define AT(m) .off = offsetof(ps_cfg, m), .size = sizeof(((ps_cfg *)0)->m)
#define FLAG(n, k, g, m) .name = n, .key = k, .group = PS_CFG_G_##g, AT(m)
#define BOOL .type = PS_CFG_BOOL
#define TEXT .type = PS_CFG_TEXT
#define UINT(l, h) .type = PS_CFG_UINT, .lo = (l), .hi = (h)
#define REAL(r) .type = PS_CFG_REAL, .range = &ps_cfg_##r
#define CHOICE(c) .type = PS_CFG_CHOICE, .choices = &(c)
#define CUSTOM(o) .type = PS_CFG_CUSTOM, .ops = &(o)
#define PER_RULE(bit) .dep = PS_CFG_PER_RULE, .reads = (bit)
#define PER_MODEL(logreg, mlp, cnn, vae)                                                           \
    .dep = PS_CFG_PER_MODEL, .by_model = (const char *const[PS_MODEL_NKINDS])                      \
    {                                                                                              \
        [PS_MODEL_LOGREG] = (logreg), [PS_MODEL_MLP] = (mlp), [PS_MODEL_CNN] = (cnn),              \
        [PS_MODEL_VAE] = (vae)                                                                     \
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
    static const ps_cfg_choice id##_choice = {NULL, (count), id##_parse, id##_name}

/* The counts are each owner's last value + 1. */
OWNER_CHOICE(opt, ps_opt_kind, ps_opt_parse, ps_opt_name, PS_OPT_COUNT_);
OWNER_CHOICE(model, ps_model_kind, ps_model_parse_kind, ps_model_kind_name, PS_MODEL_NKINDS);
OWNER_CHOICE(shard, ps_shard_mode, ps_shard_parse_mode, ps_shard_mode_name, PS_SHARD_HASH + 1);
OWNER_CHOICE(init, ps_init_kind, ps_init_parse, ps_init_name, PS_INIT_GLOROT + 1);
OWNER_CHOICE(act, ps_act_kind, ps_model_parse_activation, ps_model_activation_name, PS_ACT_COUNT);

/* --max-memory: bytes with a binary suffix (cli/budget.h), or auto (0). */
static int parse_max_memory(ps_cfg *cfg, const char *text, char *err, size_t errlen)
{
    if (strcmp(text, "auto") == 0) {
        cfg->max_memory = 0;
        return 0;
    }
    if (ps_budget_parse_bytes(text, &cfg->max_memory) != 0) {
        return ps_cfg_err(err, errlen,
                          "--max-memory: '%s' is not a byte count (e.g. 4G, 512M, 1048576) or "
                          "auto",
                          text);
    }
    return 0;
}

static void format_max_memory(const ps_cfg *cfg, char *buf, size_t n)
{
    if (cfg->max_memory) {
        ps_budget_format_bytes(cfg->max_memory, buf, n);
    } else {
        snprintf(buf, n, "auto");
    }
}

static const ps_cfg_custom max_memory_ops = {parse_max_memory, format_max_memory};

/* --labels: a list of distinct integers, checked here and kept as text
 * (data/source.c reads it); "" clears it. */
static int parse_labels(ps_cfg *cfg, const char *text, char *err, size_t errlen)
{
    char why[200];
    if (text[0] && ps_labels_parse(text, NULL, why, sizeof why) != 0) {
        return ps_cfg_err(err, errlen, "--labels: %s", why[0] ? why : "too many labels");
    }
    if (strlen(text) >= sizeof cfg->labels) {
        return ps_cfg_err(err, errlen, "--labels: longer than %zu bytes", sizeof cfg->labels - 1);
    }
    memset(cfg->labels, 0, sizeof cfg->labels);
    memcpy(cfg->labels, text, strlen(text));
    return 0;
}

static void format_labels(const ps_cfg *cfg, char *buf, size_t n)
{
    snprintf(buf, n, "%s", cfg->labels);
}

static const ps_cfg_custom labels_ops = {parse_labels, format_labels};

static const char *const cmd_names[] = {[PS_CMD_TRAIN] = "train",
                                        [PS_CMD_PREDICT] = "predict",
                                        [PS_CMD_SYNTH] = "synth",
                                        [PS_CMD_HELP] = "help",
                                        [PS_CMD_VERSION] = "version"};
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
static const ps_cfg_choice cmd_choice = LIST(cmd_names), dataset_choice = LIST(dataset_names),
                           format_choice = LIST(format_names), stream_choice = LIST(stream_names),
                           schedule_choice = LIST(schedule_names),
                           sparse_choice = LIST(sparse_names), onoff_choice = LIST(onoff_names),
                           nonfinite_choice = LIST(nonfinite_names), log_choice = LIST(log_names);

static const ps_cfg_row flags[] = {
    {.key = "cmd", AT(cmd), CHOICE(cmd_choice), .def = "train"},

    {FLAG("model", "model", MODEL, model), CHOICE(model_choice), .def = "mlp",
     .cmds = CMD(PS_CMD_TRAIN) | CMD(PS_CMD_SYNTH),
     .help = "model kind; for predict: the DIR written by --save-model"},
    {FLAG("hidden", "hidden", MODEL, hidden), CUSTOM(ps_cfg_hidden), .metavar = "N,N,..",
     PER_MODEL("1000,1000", "1000,1000", "", "500"), .help = "hidden widths (vae: one)"},
    {FLAG("activation", "activation", MODEL, activation), CHOICE(act_choice),
     PER_MODEL("relu", "relu", "relu", "softplus"), .help = "mlp and vae hidden units"},
    {FLAG("conv", "conv", MODEL, nconv), CUSTOM(ps_cfg_conv), .metavar = "cN-..-N",
     .def = "c32-c64-1000", .help = "cnn: conv channels, then FC width"},
    {FLAG("latent", "latent", MODEL, latent), UINT(1, INT_MAX / 2), .metavar = "N", .def = "50",
     .help = "vae: latent dimensions"},
    {FLAG("dropout-input", "dropout_input", MODEL, dropout_input), REAL(unit), .metavar = "P",
     PER_MODEL("0", "0.2", "0.2", "0"), .help = "input dropout, in [0, 1)"},
    {FLAG("dropout", "dropout", MODEL, dropout), REAL(unit), .metavar = "P",
     PER_MODEL("0", "0.5", "0.5", "0"), .help = "hidden (cnn: FC) dropout, in [0, 1)"},
    {FLAG("l2", "l2", MODEL, l2), REAL(nonneg), .metavar = "LAMBDA", .def = "0",
     .help = "L2 penalty in the loss, >= 0"},
    {FLAG("init", "init", MODEL, init), CHOICE(init_choice), .word = "auto", .def = "auto",
     .help = "weight initialisation; auto = the model's own"},

    {FLAG("dataset", "dataset", DATA, dataset), TEXT, .choices = &dataset_choice, .def = "",
     .help = "named IDX data set under --data-dir"},
    {FLAG("data-dir", "data_dir", DATA, data_dir), TEXT, .metavar = "DIR",
     .def = "/usr/share/datasets/fashion-mnist", .help = "where --dataset files live"},
    {FLAG("train", "train", DATA, train), TEXT, .metavar = "FILE", .def = "",
     .help = "training file (needs --test)"},
    {FLAG("test", "test", DATA, test), TEXT, .metavar = "FILE", .def = "",
     .help = "evaluation file (train), input file (predict)"},
    {FLAG("format", "format", DATA, format), CHOICE(format_choice), .def = "auto",
     .help = "file format; auto = from the name"},
    {FLAG("zero-based", "zero_based", DATA, zero_based), BOOL, .def = "0",
     .help = "libsvm feature ids start at 0"},
    {FLAG("synthetic", "synthetic", DATA, synthetic), CUSTOM(ps_cfg_synthetic),
     .metavar = "rows=N,features=N,nnz=N,classes=N[,zipf=X,noise=X,test=N]", .def = "off",
     .help = "planted sparse model instead of files"},
    {FLAG("hash-bits", "hash_bits", DATA, hash_bits), UINT(1, 40), .word = "off", .metavar = "B",
     .def = "off", .help = "hash features to 2^B rows, 1..40"},
    {FLAG("features", "features", DATA, features), UINT(0, UINT64_MAX), .metavar = "N", .def = "0",
     .help = "libsvm feature count; 0 = scan the file"},
    {FLAG("train-limit", "train_limit", DATA, train_limit), UINT(0, UINT64_MAX), .metavar = "N",
     .def = "0", .help = "first N training samples; 0 = all"},
    {FLAG("test-limit", "test_limit", DATA, test_limit), UINT(0, UINT64_MAX), .metavar = "N",
     .def = "0", .help = "first N test samples; 0 = all"},
    {FLAG("stream", "stream", DATA, stream), CHOICE(stream_choice), .def = "auto",
     .help = "read libsvm training data in chunks (auto: parts over 1 GiB)"},
    {FLAG("holdout", "holdout", DATA, holdout), REAL(unit), .metavar = "FRACTION", .def = "0",
     .cmds = CMD(PS_CMD_TRAIN),
     .help = "evaluate on a seeded fraction of the training data, not --test"},
    {FLAG("labels", "labels", DATA, labels), CUSTOM(labels_ops), .metavar = "L1,L2,..", .def = "",
     .cmds = CMD(PS_CMD_TRAIN), .help = "libsvm: all class labels; none = those the data shows"},

    {FLAG("optimizer", "optimizer", OPTIM, opt.kind), CHOICE(opt_choice), .def = "adam",
     .help = "update rule"},
    {FLAG("lr", "lr", OPTIM, opt.lr), REAL(pos), .metavar = "ALPHA", PER_RULE(PS_OPT_READS_LR),
     .help = "step size, > 0"},
    {FLAG("beta1", "beta1", OPTIM, opt.beta1), REAL(unit), .metavar = "B",
     PER_RULE(PS_OPT_READS_BETA1), .help = "first moment decay, in [0, 1)"},
    {FLAG("beta2", "beta2", OPTIM, opt.beta2), REAL(unit), .metavar = "B",
     PER_RULE(PS_OPT_READS_BETA2), .help = "second moment decay, in [0, 1)"},
    {FLAG("eps", "eps", OPTIM, opt.eps), REAL(nonneg), .metavar = "E", PER_RULE(PS_OPT_READS_EPS),
     .help = "denominator guard, > 0"},
    {FLAG("no-bias-correction", "bias_correction", OPTIM, opt.bias_correction), BOOL, .def = "1",
     .help = "use raw m and v (paper section 6.4)"},
    {FLAG("lr-schedule", "lr_schedule", OPTIM, opt.schedule), CHOICE(schedule_choice),
     .def = "const", .help = "invsqrt: alpha / sqrt(t)"},
    {FLAG("momentum", "momentum", OPTIM, opt.momentum), REAL(unit), .metavar = "MU",
     PER_RULE(PS_OPT_READS_MOMENTUM), .help = "nesterov momentum, in [0, 1)"},
    {FLAG("weight-decay", "weight_decay", OPTIM, opt.weight_decay), REAL(nonneg), .metavar = "WD",
     PER_RULE(PS_OPT_READS_WEIGHT_DECAY), .help = "adamw decoupled decay, >= 0"},
    {FLAG("temporal-averaging", "temporal_averaging", OPTIM, temporal_averaging), REAL(unit),
     .metavar = "BETA", .def = "0", .help = "average parameters (section 7.2), in [0, 1); 0 = off"},
    {FLAG("sparse-update", "sparse_update", OPTIM, sparse_lazy), CHOICE(sparse_choice),
     .def = "lazy", .help = "lazy: only pushed rows step; dense: exact Adam"},

    {FLAG("batch", "batch", SCHEDULE, batch), UINT(1, UINT32_MAX), .metavar = "N", .def = "128",
     .help = "minibatch per worker, >= 1"},
    {FLAG("epochs", "epochs", SCHEDULE, epochs), REAL(pos), .metavar = "E", .def = "3",
     .help = "passes over the data, > 0"},
    {FLAG("steps", "steps", SCHEDULE, steps), UINT(1, UINT64_MAX), .word = "auto", .metavar = "N",
     .def = "auto", .help = "clocks to run instead of --epochs; auto = from epochs"},
    {FLAG("seed", "seed", SCHEDULE, seed), UINT(0, UINT64_MAX), .metavar = "N", .def = "1",
     .help = "seed for init, shuffle and dropout"},
    {FLAG("shuffle", "shuffle", SCHEDULE, shuffle), CHOICE(onoff_choice), .def = "on",
     .help = "reshuffle every epoch"},

    {FLAG("servers", "servers", CLUSTER, servers), UINT(1, INT_MAX), .word = "auto", .metavar = "S",
     .def = "auto", .help = "server ranks, >= 1; auto = one per node"},
    {FLAG("shard", "shard", CLUSTER, shard), CHOICE(shard_choice), .def = "range",
     .help = "how rows map to servers"},
    {FLAG("consistency", "consistency", CLUSTER, sync), CUSTOM(ps_cfg_consistency),
     .metavar = "bsp|ssp:K|asp", .def = "bsp",
     .help = "synchronisation; K >= 0 is the staleness bound"},
    {FLAG("nonfinite", "nonfinite", CLUSTER, nonfinite_skip), CHOICE(nonfinite_choice),
     .def = "abort", .help = "what a NaN/inf gradient does"},
    {FLAG("peer-timeout", "peer_timeout", CLUSTER, peer_timeout), REAL(nonneg),
     .metavar = "SECONDS", .def = "60",
     .help = "end the job once a rank is silent this long; 0 = never"},
    {FLAG("reply-chunk", "reply_chunk", CLUSTER, reply_chunk), UINT(1024, (uint64_t)1 << 28),
     .word = "auto", .metavar = "FLOATS", .def = "auto",
     .help = "floats per pull-reply piece, 1024..2^28; auto = 65536 (256 KiB)"},
    {FLAG("inject-delay-ms", "inject_delay_ms", CLUSTER, delay_ms), REAL(nonneg), .metavar = "X",
     .def = "0", .help = "testing: random sleep up to X ms per step"},
    {FLAG("max-memory", "max_memory", CLUSTER, max_memory), CUSTOM(max_memory_ops),
     .metavar = "BYTES", .def = "auto",
     .help = "memory budget per rank (512M, 4G); auto = the node's available memory, shared"},

    {FLAG("eval-every", "eval_every", OUTPUT, eval_every), UINT(0, UINT64_MAX), .metavar = "N",
     .def = "0", .help = "evaluate every N steps; 0 = per epoch"},
    {FLAG("eval-samples", "eval_samples", OUTPUT, eval_samples), UINT(1, UINT64_MAX), .word = "all",
     .metavar = "N", .def = "all",
     .help = "periodic evaluations on the first N test samples; the final one on all"},
    {FLAG("eval-train", "eval_train", OUTPUT, eval_train), UINT(1, UINT64_MAX), .word = "off",
     .metavar = "N", .def = "off",
     .help = "train_nll: NLL (no dropout) of the coordinator's first N training samples"},
    {FLAG("metrics", "metrics", OUTPUT, metrics), TEXT, .metavar = "FILE", .def = "",
     .help = "JSON lines, one per evaluation"},
    {FLAG("save-model", "save_model", OUTPUT, save_model), TEXT, .metavar = "DIR", .def = "",
     .help = "write the model as .npy files"},
    {FLAG("checkpoint-dir", "checkpoint_dir", OUTPUT, ckpt_dir), TEXT, .metavar = "D", .def = "",
     .help = "checkpoint directory"},
    {FLAG("checkpoint-every", "checkpoint_every", OUTPUT, ckpt_every), UINT(0, UINT64_MAX),
     .metavar = "K", .def = "0",
     .help = "checkpoint every K clocks (needs --checkpoint-dir); 0 = off"},
    {FLAG("keep-checkpoints", "keep_checkpoints", OUTPUT, keep_ckpts), UINT(1, 1000),
     .metavar = "K", .def = "2", .help = "complete checkpoints kept, newest first, 1..1000"},
    {FLAG("resume", "resume", OUTPUT, resume), BOOL, .def = "0",
     .help = "continue from the newest checkpoint that verifies (needs --checkpoint-dir)"},
    {FLAG("resume-allow", "resume_allow", OUTPUT, resume_allow), TEXT, .metavar = "FLAG,FLAG",
     .def = "", .help = "changes --resume accepts beyond the safe ones"},
    {FLAG("quiet", "quiet", OUTPUT, quiet), BOOL, .def = "0", .help = "warnings and errors only"},
    {FLAG("log-format", "log_format", OUTPUT, log_json), CHOICE(log_choice), .def = "text",
     .help = "log line format"},
    {FLAG("progress-every", "progress_every", OUTPUT, progress_secs), REAL(nonneg),
     .metavar = "SECONDS", .def = "5", .help = "progress line interval, >= 0; 0 = none"},
    {FLAG("log-every", "log_every", OUTPUT, log_every), UINT(1, UINT64_MAX), .word = "off",
     .metavar = "N", .def = "off", .cmds = CMD(PS_CMD_TRAIN),
     .help = "a train_loss_ma metrics record every N steps"},
    {FLAG("clock-log", "clock_log", OUTPUT, clock_log), TEXT, .metavar = "FILE", .def = "",
     .help = "testing: workers append 'worker clock' lines"},
    {FLAG("out", "out", OUTPUT, out), TEXT, .metavar = "FILE", .def = "",
     .help = "predict: label per line; synth: libsvm file"},
    {FLAG("proba", "proba", OUTPUT, proba), BOOL, .def = "0", .cmds = CMD(PS_CMD_PREDICT),
     .help = "predict --out: 'labels ..', then label and probabilities"},
    /* predict's --model: listed under the train row's help. */
    {FLAG("model", "model_dir", OUTPUT, model_dir), TEXT, .metavar = "DIR", .def = "",
     .cmds = CMD(PS_CMD_PREDICT)},
};

#define NFLAGS (sizeof flags / sizeof flags[0])

/* --synthetic's keys, rows of their own (the name is the label in messages). */
const ps_cfg_row ps_cfg_synth_keys[] = {
    {FLAG("synthetic rows", "rows", DATA, synth.n), UINT(1, UINT64_MAX), .def = "100000"},
    {FLAG("synthetic features", "features", DATA, synth.nfeatures), UINT(1, UINT64_MAX),
     .def = "1048576"},
    {FLAG("synthetic nnz", "nnz", DATA, synth.nnz), UINT(1, UINT32_MAX), .def = "20"},
    {FLAG("synthetic classes", "classes", DATA, synth.nclasses), UINT(2, UINT32_MAX), .def = "2"},
    {FLAG("synthetic zipf", "zipf", DATA, synth.zipf_s), REAL(nonneg), .def = "1.1"},
    {FLAG("synthetic noise", "noise", DATA, synth.noise), REAL(nonneg), .def = "0.1"},
    /* Last: its default, rows / 10, follows the rows given. */
    {FLAG("synthetic test", "test", DATA, synth_test), UINT(0, UINT64_MAX)},
};

_Static_assert(sizeof ps_cfg_synth_keys / sizeof ps_cfg_synth_keys[0] == PS_CFG_NSYNTH,
               "PS_CFG_NSYNTH counts the rows");

static uint64_t load_uint_field(const ps_cfg *cfg, const ps_cfg_row *f)
{
    const void *p = (const char *)cfg + f->off;
    return f->size == sizeof(uint32_t) ? *(const uint32_t *)p : *(const uint64_t *)p;
}

static const ps_cfg_row *find_key(const char *key)
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
    const ps_cfg_row *f = find_key(key);
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
        const ps_cfg_row *f = &flags[i];
        if (seen && seen[i]) {
            continue;
        }
        if (f->dep == PS_CFG_PER_RULE) {
            /* The field sits in cfg->opt at the offset it has in hp. */
            size_t at = f->off - offsetof(ps_cfg, opt);
            PS_ASSERT(f->off >= offsetof(ps_cfg, opt) && at + f->size <= sizeof hp);
            memcpy((char *)cfg + f->off, (const char *)&hp + at, f->size);
        } else if (f->dep == PS_CFG_PER_MODEL) {
            int rc = ps_cfg_parse_value(cfg, f, f->by_model[cfg->model], NULL, 0);
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
        if (flags[i].dep == PS_CFG_FIXED && flags[i].def && flags[i].def[0] != '\0') {
            int rc = ps_cfg_parse_value(cfg, &flags[i], flags[i].def, NULL, 0);
            PS_ASSERT(rc == 0);
        }
    }
    resolve_defaults(cfg, NULL);
}

/* "Given a, b must (need 1) or must not (need 0) be given too", for the
 * commands in cmds (0: all); a NULL: always. The first broken rule is the
 * message. */
static const struct {
    unsigned cmds;
    const char *a, *b;
    int need;
    const char *why;
} rules[] = {
    {0, "epochs", "steps", 0, "--epochs and --steps are exclusive: give one"},
    {0, "resume", "checkpoint_dir", 1, "--resume needs --checkpoint-dir"},
    {0, "synthetic", "format", 0, "--format does not apply to --synthetic"},
    {CMD(PS_CMD_TRAIN), "test", "train", 1,
     "--test goes with --train (--dataset and --synthetic bring their own test data)"},
    {CMD(PS_CMD_TRAIN), "holdout", "test", 0,
     "--holdout and --test are exclusive: evaluate on held-out training samples or on a file"},
    {CMD(PS_CMD_PREDICT), NULL, "model_dir", 1,
     "predict needs --model DIR (a directory from --save-model)"},
    {CMD(PS_CMD_PREDICT), "test", "dataset", 0,
     "--test and --dataset are exclusive: give one data source"},
    {CMD(PS_CMD_SYNTH), NULL, "out", 1, "synth needs --out FILE"},
};

/* The first rule cfg breaks, or NULL. */
static const char *broken_rule(const ps_cfg *cfg, const unsigned char *seen)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if ((rules[i].cmds == 0 || (rules[i].cmds & CMD(cfg->cmd))) &&
            (!rules[i].a || given(seen, rules[i].a)) && given(seen, rules[i].b) != rules[i].need) {
            return rules[i].why;
        }
    }
    return NULL;
}

/* Combinations no single flag can judge. seen[] marks the rows given. */
static int check_combinations(ps_cfg *cfg, const unsigned char *seen, char *err, size_t errlen)
{
    int rc = 0;
    const char *why = broken_rule(cfg, seen);
    const char *sources[3];
    int nsources = 0;
    int train = cfg->cmd == PS_CMD_TRAIN, predict = cfg->cmd == PS_CMD_PREDICT;
    char eps[32];
    ps_cfg_format_real(eps, sizeof eps, cfg->opt.eps, 1);
    if (given(seen, "dataset")) {
        sources[nsources++] = "--dataset";
    }
    if (given(seen, "train")) {
        sources[nsources++] = "--train";
    }
    if (given(seen, "synthetic") && cfg->synthetic) {
        sources[nsources++] = "--synthetic";
    }
    if (why) {
        rc = ps_cfg_err(err, errlen, "%s", why);
    } else if (train && given(seen, "train") && !given(seen, "test") && !(cfg->holdout > 0)) {
        rc = ps_cfg_err(err, errlen,
                        "--train needs --test FILE too, or --holdout FRACTION: evaluation needs "
                        "held-out data (only --dataset and --synthetic bring their own)");
    } else if (predict && cfg->proba && !given(seen, "out")) {
        rc = ps_cfg_err(err, errlen, "--proba needs --out FILE: the probabilities go there");
    } else if (given(seen, "checkpoint_every") && cfg->ckpt_every > 0 &&
               !given(seen, "checkpoint_dir")) {
        rc = ps_cfg_err(err, errlen, "--checkpoint-every needs --checkpoint-dir");
    } else if (cfg->model == PS_MODEL_MLP && cfg->nhidden == 0 && !predict) {
        rc = ps_cfg_err(
            err, errlen,
            "--hidden: an mlp needs at least one hidden layer (--model logreg has none)");
    } else if (cfg->model == PS_MODEL_VAE && cfg->nhidden != 1 && !predict) {
        rc = ps_cfg_err(err, errlen,
                        "--hidden: the vae has one hidden width (encoder and decoder), e.g. "
                        "--hidden 500");
    } else if (cfg->model == PS_MODEL_CNN && given(seen, "hidden")) {
        rc = ps_cfg_err(err, errlen,
                        "--hidden does not apply to --model cnn: the fully connected width is "
                        "the last number of --conv");
    } else if (cfg->model == PS_MODEL_CNN && given(seen, "activation") &&
               cfg->activation != PS_ACT_RELU) {
        rc = ps_cfg_err(err, errlen,
                        "--activation: the cnn's units are relu (section 6.3); --activation is "
                        "for the mlp and the vae");
    } else if (cfg->model == PS_MODEL_VAE && (cfg->dropout > 0 || cfg->dropout_input > 0)) {
        rc = ps_cfg_err(err, errlen, "--dropout/--dropout-input: the vae takes no dropout");
    } else if (nsources > 1) {
        rc = ps_cfg_err(err, errlen, "%s and %s are exclusive: give one data source", sources[0],
                        sources[1]);
    } else if (given(seen, "dataset") && given(seen, "format") && cfg->format == PS_FMT_LIBSVM) {
        rc = ps_cfg_err(err, errlen, "--format: fashion-mnist is an IDX data set, not libsvm");
    } else if (train && nsources == 0) {
        rc = ps_cfg_err(err, errlen,
                        "train needs a data source: --dataset NAME, --train FILE --test FILE or "
                        "--synthetic SPEC");
    } else if (predict && !given(seen, "test") && !given(seen, "dataset")) {
        rc = ps_cfg_err(err, errlen, "predict needs --test FILE or --dataset NAME");
    } else if (train && (ps_opt_reads(cfg->opt.kind) & PS_OPT_READS_EPS) && !(cfg->opt.eps > 0)) {
        rc = ps_cfg_err(err, errlen,
                        "--eps %s: --optimizer %s divides by sqrt(v) + eps, so eps must be > 0 "
                        "(adamax has no eps)",
                        eps, ps_opt_name(cfg->opt.kind));
    } else if (train && cfg->opt.kind == PS_OPT_SGD && given(seen, "momentum")) {
        rc = ps_cfg_err(err, errlen,
                        "--momentum: --optimizer sgd is plain SGD and has no momentum; use "
                        "--optimizer nesterov");
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
    } else if (strcmp(word, "--version") == 0) {
        cfg->cmd = PS_CMD_VERSION;
    } else if (ps_cfg_choice_parse(&cmd_choice, word, &cmd) == 0) {
        cfg->cmd = (ps_cmd)cmd;
    } else if (strncmp(word, "--", 2) == 0) {
        rc = ps_cfg_err(err, errlen, "%s before the command: say adamps train|predict|synth %s ...",
                        word, word);
    } else {
        rc = ps_cfg_err(err, errlen,
                        "unknown command '%s' (expected train, predict, synth, help or version; "
                        "see adamps --help)",
                        word);
    }
    return rc;
}

/* The row flag `name` (len bytes) stands for under command cmd, or NULL. */
static const ps_cfg_row *find_flag(ps_cmd cmd, const char *name, size_t len)
{
    for (size_t i = 0; i < NFLAGS; i++) {
        const ps_cfg_row *f = &flags[i];
        if (f->name && strlen(f->name) == len && strncmp(f->name, name, len) == 0 &&
            (f->cmds == 0 || (f->cmds & CMD(cmd)))) {
            return f;
        }
    }
    return NULL;
}

/* Edit distance (insert, delete, substitute, swap of neighbours) between
 * a[0..la) and b, capped: a misspelt flag is a few edits from the real one. */
static size_t edits(const char *a, size_t la, const char *b)
{
    enum { MAXLEN = 48 };
    size_t lb = strlen(b);
    if (la >= MAXLEN || lb >= MAXLEN) {
        return SIZE_MAX;
    }
    size_t d[MAXLEN + 1][MAXLEN + 1];
    for (size_t i = 0; i <= la; i++) {
        for (size_t j = 0; j <= lb; j++) {
            if (i == 0 || j == 0) {
                d[i][j] = i + j;
                continue;
            }
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            best = d[i - 1][j] + 1 < best ? d[i - 1][j] + 1 : best;
            best = d[i][j - 1] + 1 < best ? d[i][j - 1] + 1 : best;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best) {
                best = d[i - 2][j - 2] + 1;
            }
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* The flag of cmd nearest to name[0..len), or NULL when none is close
 * (more than a third of the name would have to change). */
static const ps_cfg_row *nearest_flag(ps_cmd cmd, const char *name, size_t len)
{
    const ps_cfg_row *best = NULL;
    size_t best_d = len / 3 + 1;
    for (size_t i = 0; i < NFLAGS; i++) {
        const ps_cfg_row *f = &flags[i];
        if (!f->name || (f->cmds != 0 && !(f->cmds & CMD(cmd)))) {
            continue;
        }
        size_t d = edits(name, len, f->name);
        if (d < best_d) {
            best = f;
            best_d = d;
        }
    }
    return best;
}

static void metavar(const ps_cfg_row *f, char *buf, size_t n)
{
    if (f->metavar || !f->choices) {
        snprintf(buf, n, "%s", f->metavar ? f->metavar : "");
    } else {
        ps_cfg_choice_list(f, "|", buf, n);
    }
}

/* Messages quote the text they refuse; a control byte in it (a newline in
 * argv, found by tests/fuzz/fuzz_cfg.c) must not break the one line. */
static int one_line(int rc, char *err, size_t errlen)
{
    for (char *p = errlen ? err : NULL; p && *p; p++) {
        *p = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
    }
    return rc;
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
        rc = ps_cfg_err(err, errlen, "missing command: adamps train|predict|synth|help [--flags]");
        goto done;
    }
    rc = parse_command(cfg, argv[1], err, errlen);
    if (rc != 0 || cfg->cmd == PS_CMD_HELP || cfg->cmd == PS_CMD_VERSION) {
        goto done;
    }
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cfg->cmd = PS_CMD_HELP;
            goto done;
        }
        if (strncmp(arg, "--", 2) != 0) {
            rc = ps_cfg_err(err, errlen, "unexpected argument '%s' (flags are --name value)", arg);
            goto done;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const ps_cfg_row *f = find_flag(cfg->cmd, name, len);
        if (!f) {
            const ps_cfg_row *near = nearest_flag(cfg->cmd, name, len);
            if (near) {
                rc = ps_cfg_err(err, errlen,
                                "unknown flag --%.*s; did you mean --%s? (see adamps --help)",
                                (int)len, name, near->name);
            } else {
                rc = ps_cfg_err(err, errlen, "unknown flag --%.*s (see adamps --help)", (int)len,
                                name);
            }
            goto done;
        }
        /* A boolean flag given flips its default. */
        const char *val = strcmp(f->def ? f->def : "", "1") == 0 ? "0" : "1";
        char mv[256];
        metavar(f, mv, sizeof mv);
        if (f->type == PS_CFG_BOOL) {
            if (eq) {
                rc = ps_cfg_err(err, errlen, "--%s takes no value (got '%s')", f->name, eq + 1);
                goto done;
            }
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 >= argc) {
            rc = ps_cfg_err(err, errlen, "--%s needs a value: --%s %s", f->name, f->name, mv);
            goto done;
        } else {
            val = argv[++i];
            /* `--train --test x` would otherwise read "--test" as a path. */
            if (strncmp(val, "--", 2) == 0) {
                rc = ps_cfg_err(err, errlen, "--%s needs a value (got flag '%s')", f->name, val);
                goto done;
            }
        }
        if ((rc = ps_cfg_parse_value(cfg, f, val, err, errlen)) != 0) {
            goto done;
        }
        seen[f - flags] = 1;
    }
    resolve_defaults(cfg, seen);
    rc = check_combinations(cfg, seen, err, errlen);
done:
    return one_line(rc, err, errlen);
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
static void default_text(const ps_cfg_row *f, const ps_cfg *d, char *buf, size_t n)
{
    size_t used = 0;
    if (f->type == PS_CFG_BOOL) {
        snprintf(buf, n, "off"); /* off unless given */
    } else if (f->dep == PS_CFG_PER_RULE) {
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
            ps_cfg_format_real(v, sizeof v, x, 1);
            used +=
                (size_t)snprintf(buf + used, n - used, " %s %s,", ps_opt_name((ps_opt_kind)k), v);
        }
        buf[used < n ? used - 1 : n - 1] = '\0'; /* the last comma */
    } else if (f->dep == PS_CFG_PER_MODEL) {
        used = (size_t)snprintf(buf, n, "per model:");
        for (int k = 0; k < PS_MODEL_NKINDS && used < n; k++) {
            const char *v = f->by_model[k][0] ? f->by_model[k] : "none";
            used += (size_t)snprintf(buf + used, n - used, " %s %s,",
                                     ps_model_kind_name((ps_model_kind)k), v);
        }
        buf[used < n ? used - 1 : n - 1] = '\0'; /* the last comma */
    } else {
        ps_cfg_format_value(d, f, buf, n);
        if (buf[0] == '\0') {
            snprintf(buf, n, "none");
        }
    }
}

/* "  --flag METAVAR   help (default: text)", the text wrapped at 100
 * columns under the help column. */
static void print_flag(FILE *out, const ps_cfg_row *f, const ps_cfg *d)
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
    static const char *const group_names[PS_CFG_G_COUNT] = {"model",    "data",    "optimizer",
                                                            "schedule", "cluster", "output"};
    FILE *out = f;
    ps_cfg d;
    ps_cfg_defaults(&d);
    fprintf(out, "usage: adamps COMMAND [--flag value | --flag=value] ...\n"
                 "\n"
                 "Data-parallel training with Adam (Kingma & Ba 2015) on a parameter server.\n"
                 "--servers ranks hold the model (one per node unless given); the others are\n"
                 "workers. Run it under mpirun -np N (N >= 2) or srun.\n"
                 "\n"
                 "commands:\n"
                 "  train     train a model on --dataset, --train/--test or --synthetic\n"
                 "  predict   classify --test FILE with a saved model: --model DIR\n"
                 "  synth     write a synthetic libsvm data set to --out FILE\n"
                 "  help      print this text (also --help, -h)\n"
                 "  version   print the version (also --version)\n");
    for (int g = 0; g < PS_CFG_G_COUNT; g++) {
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
    ps_cfg_format_value(cfg, &flags[i], val, len);
    return flags[i].key;
}

ps_cfg_value_kind ps_cfg_pair_kind(const ps_cfg *cfg, size_t i)
{
    PS_ASSERT(i < NFLAGS);
    const ps_cfg_row *f = &flags[i];
    if (f->type == PS_CFG_BOOL) {
        return PS_CFG_VALUE_BOOL;
    }
    if (f->type == PS_CFG_REAL) {
        return PS_CFG_VALUE_REAL;
    }
    /* 0 is spelt as the row's word ("auto", "off"): text then. */
    return f->type == PS_CFG_UINT && (!f->word || load_uint_field(cfg, f) != 0)
               ? PS_CFG_VALUE_INTEGER
               : PS_CFG_VALUE_TEXT;
}

int ps_cfg_set(ps_cfg *cfg, const char *key, const char *text, char *err, size_t errlen)
{
    const ps_cfg_row *f = find_key(key);
    if (err && errlen > 0) {
        err[0] = '\0';
    }
    if (!f) {
        return one_line(ps_cfg_err(err, errlen, "unknown configuration key '%s'", key), err,
                        errlen);
    }
    if (text[0] == '\0' && f->def && f->def[0] == '\0') {
        memset((char *)cfg + f->off, 0, f->size);
        return 0;
    }
    return one_line(ps_cfg_parse_value(cfg, f, text, err, errlen), err, errlen);
}

/* snprintf-style: counts what it could not store, so the caller learns the
 * size it needs. */
static void put(char *buf, size_t len, size_t *pos, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, (*pos)++) {
        if (*pos + 1 < len) {
            buf[*pos] = s[i];
            buf[*pos + 1] = '\0';
        }
    }
}

int ps_cfg_format(const ps_cfg *cfg, char *buf, size_t len)
{
    size_t pos = 0;
    char val[PS_CFG_PATH + 64];
    if (buf && len > 0) {
        buf[0] = '\0';
    }
    for (size_t i = 0; i < NFLAGS; i++) {
        ps_cfg_format_value(cfg, &flags[i], val, sizeof val);
        /* Values with blanks, quotes or nothing at all are quoted, so the
         * header still splits on spaces. */
        int quote = val[0] == '\0' || strpbrk(val, " \"\\") != NULL;
        put(buf, len, &pos, " ", i ? 1 : 0);
        put(buf, len, &pos, flags[i].key, strlen(flags[i].key));
        put(buf, len, &pos, "=\"", quote ? 2 : 1);
        for (char *p = val; *p; p++) {
            put(buf, len, &pos, "\\", quote && (*p == '"' || *p == '\\'));
            *p = (unsigned char)*p < 0x20 ? '?' : *p;
            put(buf, len, &pos, p, 1);
        }
        put(buf, len, &pos, "\"", quote);
    }
    return pos > INT_MAX ? INT_MAX : (int)pos;
}
