/* Configuration: every flag of `adamps train|predict|synth`, parsed from
 * argv into one plain struct that every rank builds identically (all ranks
 * see the same argv under mpirun). Parsing is pure: no MPI, no file access;
 * checks that need the world size (servers < ranks) live in
 * ps_cfg_check_world. Flags are kebab-case long options; `--help` lists each
 * with its default. */
#ifndef PS_CFG_H
#define PS_CFG_H

#include <stddef.h>
#include <stdint.h>

#define PS_CFG_MAX_HIDDEN 8
#define PS_CFG_PATH 1024

typedef enum { PS_CMD_TRAIN = 0, PS_CMD_PREDICT, PS_CMD_SYNTH, PS_CMD_HELP } ps_cmd;
typedef enum { PS_FMT_AUTO = 0, PS_FMT_IDX, PS_FMT_LIBSVM, PS_FMT_SYNTH } ps_format;
typedef enum { PS_CONS_BSP = 0, PS_CONS_SSP, PS_CONS_ASP } ps_consistency;
typedef enum { PS_NONFINITE_ABORT = 0, PS_NONFINITE_SKIP } ps_nonfinite;
typedef enum { PS_STREAM_OFF = 0, PS_STREAM_ON = 1, PS_STREAM_AUTO = 2 } ps_stream_mode;

typedef struct {
    uint64_t rows;      /* rows=  (default 100000) */
    uint64_t features;  /* features= (default 2^20) */
    uint32_t nnz;       /* nnz= non-zeros per row (default 20) */
    uint32_t classes;   /* classes= (default 2) */
    double zipf;        /* zipf= exponent (default 1.1) */
    double noise;       /* noise= label noise scale (default 0.1) */
    uint64_t test_rows; /* test= rows held out for evaluation (default rows/10) */
} ps_synth_opts;

typedef struct {
    ps_cmd cmd;

    /* model */
    int model;                 /* 0 logreg, 1 mlp (--model logreg|mlp, default mlp) */
    uint32_t nhidden;          /* --hidden 1000,1000 (default 1000,1000) */
    uint32_t hidden[PS_CFG_MAX_HIDDEN];
    float dropout_input;       /* --dropout-input (default 0.2) */
    float dropout;             /* --dropout (default 0.5) */
    float l2;                  /* --l2 (default 0) */
    int init;                  /* --init zeros|normal|glorot; -1 = per-model default */

    /* data */
    char dataset[64];          /* --dataset fashion-mnist (default "" = none) */
    char data_dir[PS_CFG_PATH];/* --data-dir (default /usr/share/datasets/fashion-mnist) */
    char train[PS_CFG_PATH];   /* --train FILE */
    char test[PS_CFG_PATH];    /* --test FILE */
    ps_format format;          /* --format idx|libsvm (default: guessed from name) */
    int zero_based;            /* --zero-based */
    int synthetic;             /* --synthetic rows=..,features=..,nnz=..,classes=.. */
    ps_synth_opts synth;
    uint32_t hash_bits;        /* --hash-bits B (0 = off) */
    uint64_t features;         /* --features N: libsvm feature count (0 = scan) */
    uint64_t train_limit;      /* --train-limit N: use the first N training samples (0 = all) */
    uint64_t test_limit;       /* --test-limit N (0 = all) */
    int stream;                /* --stream on|off|auto: libsvm training data read in chunks
                                  instead of loaded (auto: when a worker's part > 1 GiB) */

    /* optimizer: names match server/optim.h; kept as text/numbers here
     * because common/ cannot include server/ */
    char optimizer[16];        /* --optimizer adam|adamax|sgd|nesterov|adagrad|rmsprop|adamw|amsgrad */
    float lr;                  /* --lr (default 0.001) */
    float beta1;               /* --beta1 (0.9) */
    float beta2;               /* --beta2 (0.999) */
    float eps;                 /* --eps (1e-8) */
    int bias_correction;       /* --no-bias-correction sets 0 */
    char lr_schedule[16];      /* --lr-schedule const|invsqrt */
    float momentum;            /* --momentum (0.9, nesterov) */
    float weight_decay;        /* --weight-decay (0.01, adamw) */
    float temporal_averaging;  /* --temporal-averaging BETA (0 = off) */
    int sparse_lazy;           /* --sparse-update lazy|dense (default lazy) */

    /* schedule */
    uint32_t batch;            /* --batch (default 128): per worker */
    double epochs;             /* --epochs (default 3) */
    uint64_t steps;            /* --steps (0 = from epochs) */
    uint64_t seed;             /* --seed (default 1) */
    int shuffle;               /* --shuffle on|off (default on) */

    /* cluster */
    int servers;               /* --servers S (0 = one per node) */
    int shard_hash;            /* --shard range|hash (default range) */
    ps_consistency consistency;/* --consistency bsp|ssp:K|asp (default bsp) */
    int staleness;             /* K of ssp:K */
    ps_nonfinite nonfinite;    /* --nonfinite abort|skip */
    double delay_ms;           /* --inject-delay-ms X: testing, random sleep up to X per step */

    /* output */
    uint64_t eval_every;       /* --eval-every N steps (0 = once per epoch) */
    char metrics[PS_CFG_PATH]; /* --metrics FILE */
    char save_model[PS_CFG_PATH]; /* --save-model DIR */
    char ckpt_dir[PS_CFG_PATH];   /* --checkpoint-dir D */
    uint64_t ckpt_every;       /* --checkpoint-every K clocks (0 = off) */
    int resume;                /* --resume */
    int quiet;                 /* --quiet */
    int log_json;              /* --log-format text|json */
    double progress_secs;      /* --progress-every SECONDS (default 5) */
    char clock_log[PS_CFG_PATH]; /* --clock-log FILE: testing, each worker appends "worker clock" lines */

    /* predict */
    char model_dir[PS_CFG_PATH]; /* --model DIR (predict) */
    char out[PS_CFG_PATH];       /* --out FILE (predict: classes; synth: libsvm file) */
} ps_cfg;

/* Fills cfg with every default. */
void ps_cfg_defaults(ps_cfg *cfg);

/* Parses argv (argv[0] is the program, argv[1] the command: train, predict,
 * synth, help). cfg starts from ps_cfg_defaults, so earlier contents are
 * overwritten. On a bad flag, a missing value, a value out of range or an
 * impossible combination, writes a one-line reason naming the flag into err
 * (errlen bytes; err may be NULL) and returns PS_ECONFIG, with cfg left
 * partly filled; `--help` sets cmd = PS_CMD_HELP and returns 0. Pure: no
 * I/O, no logging (every rank parses; the caller prints err once), no
 * allocation. Thread-safe. */
int ps_cfg_parse(ps_cfg *cfg, int argc, char **argv, char *err, size_t errlen);

/* The format a data file name suggests, for format == PS_FMT_AUTO:
 * PS_FMT_IDX for *.idx* and *-ubyte[.gz], PS_FMT_LIBSVM for everything
 * else (*.svm, *.libsvm, *.txt, ...). Only the name is read, never the file. */
ps_format ps_cfg_guess_format(const char *path);

/* Checks what needs the world size: servers >= 1 and at least one worker
 * left. The count checked is cfg->servers, or nservers (the caller's
 * one-per-node choice) when cfg->servers is 0. Returns 0 or PS_ECONFIG with
 * a reason in err (may be NULL). Pure, thread-safe. */
int ps_cfg_check_world(const ps_cfg *cfg, int world_size, int nservers, char *err, size_t errlen);

/* Writes the usage text, every flag with its default, to f (a FILE *). */
void ps_cfg_usage(void *f);

/* Writes the full configuration as one line of "key=value" pairs (the run
 * header); returns bytes written or needed, like snprintf. */
int ps_cfg_format(const ps_cfg *cfg, char *buf, size_t len);

#endif
