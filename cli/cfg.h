/* Configuration: every flag of `adamps train|predict|synth`, parsed from
 * argv into one plain struct that every rank builds identically (all ranks
 * see the same argv under mpirun). One table row per flag (cli/cfg.c) gives
 * its type, bounds, default and help; parsing, --help, the run header and
 * the (key, value) pairs all walk it. Values are stored as their owners'
 * types (ps_opt_hp, ps_model_kind, ps_shard_mode, ps_sync, ...); cli/job.c
 * turns a ps_cfg into each module's own small config, so nothing below cli/
 * includes this header. Parsing is pure: no MPI, no file access, no
 * logging. */
#ifndef PS_CFG_H
#define PS_CFG_H

#include <stddef.h>
#include <stdint.h>

#include "common/shard.h"
#include "data/source.h"
#include "data/synth.h"
#include "server/optim.h"
#include "server/server.h"
#include "worker/batcher.h"
#include "worker/model.h"

#define PS_CFG_PATH 1024

typedef enum { PS_CMD_TRAIN = 0, PS_CMD_PREDICT, PS_CMD_SYNTH, PS_CMD_HELP, PS_CMD_VERSION } ps_cmd;

typedef struct {
    ps_cmd cmd;

    /* model */
    ps_model_kind model; /* --model logreg|mlp|cnn|vae */
    uint32_t nhidden;    /* --hidden 1000,1000 (per model; the vae's one width) */
    uint32_t hidden[PS_MODEL_MAX_HIDDEN];
    ps_act_kind activation; /* --activation (per model) */
    uint32_t nconv;         /* --conv c32-c64-1000: convolution channels, */
    uint32_t conv[PS_MODEL_MAX_CONV];
    uint32_t conv_fc;    /* then the fully connected width */
    uint32_t latent;     /* --latent: vae latent dimensions */
    float dropout_input; /* --dropout-input (per model) */
    float dropout;       /* --dropout: hidden units (per model) */
    float l2;            /* --l2 */
    int init;            /* --init: -1 = the model's own, else a ps_init_kind */

    /* data */
    char dataset[64];           /* --dataset fashion-mnist ("" = none) */
    char data_dir[PS_CFG_PATH]; /* --data-dir */
    char train[PS_CFG_PATH];    /* --train FILE */
    char test[PS_CFG_PATH];     /* --test FILE */
    ps_format format;           /* --format: AUTO, IDX or LIBSVM (--dataset sets IDX) */
    int zero_based;             /* --zero-based */
    int synthetic;              /* --synthetic given (always for the synth command) */
    ps_synth_cfg synth;         /* --synthetic's keys; its seed is unused (--seed is) */
    uint64_t synth_test;        /* --synthetic test=N */
    uint32_t hash_bits;         /* --hash-bits B (0 = off) */
    uint64_t features;          /* --features N (0 = scan) */
    uint64_t train_limit;       /* --train-limit N (0 = all) */
    uint64_t test_limit;        /* --test-limit N (0 = all) */
    ps_stream_mode stream;      /* --stream on|off|auto */
    double holdout;             /* --holdout FRACTION of the training samples to evaluate on
                                   instead of --test (0 = off) */
    char labels[PS_CFG_PATH];   /* --labels L1,L2,...: the libsvm label set ("" = found) */

    /* optimizer */
    ps_opt_hp opt;            /* --optimizer, --lr, --beta1, --beta2, --eps, --momentum,
                                 --weight-decay (per optimizer unless given),
                                 --no-bias-correction, --lr-schedule */
    float temporal_averaging; /* --temporal-averaging BETA (0 = off) */
    int sparse_lazy;          /* --sparse-update lazy|dense */

    /* schedule */
    uint32_t batch; /* --batch: per worker */
    double epochs;  /* --epochs */
    uint64_t steps; /* --steps (0 = from epochs) */
    uint64_t seed;  /* --seed */
    int shuffle;    /* --shuffle on|off */

    /* cluster */
    uint32_t servers;     /* --servers S (0 = one per node) */
    ps_shard_mode shard;  /* --shard range|hash */
    ps_sync sync;         /* --consistency bsp|ssp:K|asp */
    uint32_t staleness;   /* K of ssp:K */
    int nonfinite_skip;   /* --nonfinite abort|skip */
    double peer_timeout;  /* --peer-timeout SECONDS (0 = wait for ever) */
    uint64_t reply_chunk; /* --reply-chunk FLOATS per pull-reply piece (0 = auto) */
    double delay_ms;      /* --inject-delay-ms X: testing */
    uint64_t max_memory;  /* --max-memory BYTES per rank (0 = auto: the node's available) */

    /* output */
    uint64_t eval_every;            /* --eval-every N steps (0 = once per epoch) */
    uint64_t eval_train;            /* --eval-train N samples for train_nll (0 = off) */
    uint64_t eval_samples;          /* --eval-samples N test samples between (0 = all) */
    char metrics[PS_CFG_PATH];      /* --metrics FILE */
    char save_model[PS_CFG_PATH];   /* --save-model DIR */
    char ckpt_dir[PS_CFG_PATH];     /* --checkpoint-dir D */
    uint64_t ckpt_every;            /* --checkpoint-every K clocks (0 = off) */
    uint32_t keep_ckpts;            /* --keep-checkpoints K */
    int resume;                     /* --resume */
    char resume_allow[PS_CFG_PATH]; /* --resume-allow FLAG,FLAG: changes accepted on resume */
    int quiet;                      /* --quiet */
    int log_json;                   /* --log-format text|json */
    double progress_secs;           /* --progress-every SECONDS */
    uint64_t log_every;             /* --log-every N steps: train_loss_ma records (0 = off) */
    char clock_log[PS_CFG_PATH];    /* --clock-log FILE: testing */

    /* predict */
    char model_dir[PS_CFG_PATH]; /* --model DIR (predict) */
    char out[PS_CFG_PATH];       /* --out FILE (predict: classes; synth: libsvm file) */
    int proba;                   /* --proba: predict writes class probabilities */
} ps_cfg;

/* Fills cfg with every default: each row's default text through its own
 * parser, and the per-model and per-optimizer values of the default model
 * and optimizer. The bytes after a string's NUL and the padding are zero,
 * so whole configs compare with memcmp. */
void ps_cfg_defaults(ps_cfg *cfg);

/* Parses argv (argv[0] is the program, argv[1] the command: train, predict,
 * synth, help). cfg starts from ps_cfg_defaults, so earlier contents are
 * overwritten; per-model and per-optimizer defaults follow the --model and
 * --optimizer given. On a bad flag, a missing value, a value out of range
 * or an impossible combination, writes a one-line reason naming the flag
 * into err (errlen bytes; err may be NULL) and returns PS_ECONFIG, with cfg
 * left partly filled; `--help` sets cmd = PS_CMD_HELP and `--version` (or
 * `adamps version`) cmd = PS_CMD_VERSION, and return 0. An unknown flag's
 * message suggests the nearest flag of the command. Pure:
 * no I/O, no logging (every rank parses; the caller prints err once), no
 * allocation. Thread-safe. */
int ps_cfg_parse(ps_cfg *cfg, int argc, char **argv, char *err, size_t errlen);

/* A one-line advice about a legal but doubtful combination (AdaGrad with
 * --lr-schedule invsqrt) into buf (len bytes). Returns 1 when there is one,
 * else 0 with buf = "". Pure. */
int ps_cfg_warning(const ps_cfg *cfg, char *buf, size_t len);

/* Writes the usage text, every flag with its default, to f (a FILE *). */
void ps_cfg_usage(void *f);

/* Writes the full configuration as one line of "key=value" pairs (the run
 * header, also stored in checkpoints and model.json); values with blanks or
 * quotes, and empty ones, are quoted. Returns bytes written or needed, like
 * snprintf. */
int ps_cfg_format(const ps_cfg *cfg, char *buf, size_t len);

/* The (key, value) pairs ps_cfg_format writes, one at a time: pair i <
 * ps_cfg_count() of cfg. Returns its key (static) and writes the value as
 * text (unquoted; "" for an unset path) into val (len bytes); *flag (may be
 * NULL) gets the flag that sets it without its "--" (static), or NULL for
 * the command. Pure, thread-safe. */
size_t ps_cfg_count(void);
const char *ps_cfg_pair(const ps_cfg *cfg, size_t i, const char **flag, char *val, size_t len);

/* What the text of pair i of cfg is, for a typed rendering (JSON): an
 * integer (unless the flag holds its word such as "auto" or "off"), a
 * real, a boolean ("0" or "1"), or text. Pure. */
typedef enum {
    PS_CFG_VALUE_TEXT = 0,
    PS_CFG_VALUE_INTEGER,
    PS_CFG_VALUE_REAL,
    PS_CFG_VALUE_BOOL
} ps_cfg_value_kind;
ps_cfg_value_kind ps_cfg_pair_kind(const ps_cfg *cfg, size_t i);

/* Sets the setting with header key `key` from its header text (a value
 * ps_cfg_pair gives; booleans are 0 or 1, and "" clears an unset-by-default
 * path), through the flag's own parser. No combination checks and no
 * per-model or per-optimizer defaults are applied: a header carries the
 * values in force. Returns 0, or PS_ECONFIG with a reason in err (may be
 * NULL). Pure, thread-safe. */
int ps_cfg_set(ps_cfg *cfg, const char *key, const char *text, char *err, size_t errlen);

#endif
