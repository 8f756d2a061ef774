/* Shared by the two halves of the cfg module, and by nothing else:
 * cli/cfg.c holds the table of rows (one per flag) and what walks it
 * (argv, defaults, combination checks, --help, the run header), and
 * cli/cfg_value.c turns one row's text into its field and back. */
#ifndef PS_CFG_INTERNAL_H
#define PS_CFG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cli/cfg.h"

typedef enum {
    PS_CFG_G_MODEL,
    PS_CFG_G_DATA,
    PS_CFG_G_OPTIM,
    PS_CFG_G_SCHEDULE,
    PS_CFG_G_CLUSTER,
    PS_CFG_G_OUTPUT,
    PS_CFG_G_COUNT
} ps_cfg_group;

/* How a row's text maps to its field: an int 0/1 (a flag without value),
 * a uint32_t or uint64_t in [lo, hi], a float or double in range, a path
 * (a char array), an int or enum from a choice, or a custom codec. */
typedef enum {
    PS_CFG_BOOL,
    PS_CFG_UINT,
    PS_CFG_REAL,
    PS_CFG_TEXT,
    PS_CFG_CHOICE,
    PS_CFG_CUSTOM
} ps_cfg_type;

/* Where a default comes from: the row's text, the optimizer
 * (ps_opt_defaults) or the model kind. */
typedef enum { PS_CFG_FIXED, PS_CFG_PER_RULE, PS_CFG_PER_MODEL } ps_cfg_dep;

typedef struct {
    double lo, hi; /* hi may be INFINITY */
    int lo_open, hi_open;
} ps_cfg_range;

/* The words of a choice: a list indexed by value, or the owner's parser
 * and namer over values 0..count-1. */
typedef struct {
    const char *const *names;
    int count;
    int (*parse)(const char *text, int *out);
    const char *(*name)(int value);
} ps_cfg_choice;

/* A value no type above describes: the whole cfg in, the text out. */
typedef struct {
    int (*parse)(ps_cfg *cfg, const char *text, char *err, size_t errlen);
    void (*format)(const ps_cfg *cfg, char *buf, size_t n);
} ps_cfg_custom;

typedef struct {
    const char *name; /* --name; NULL: no flag of its own */
    const char *key;  /* key in the run header */
    ps_cfg_group group;
    ps_cfg_type type;
    size_t off, size;             /* the field in ps_cfg */
    const char *metavar;          /* NULL: the choices' words, or none (bool) */
    const char *def;              /* the default as flag text ("" = unset); NULL unless FIXED */
    const char *help;             /* NULL: not listed by --help */
    unsigned cmds;                /* commands whose argv it is parsed for (1 << ps_cmd); 0 = all */
    uint64_t lo, hi;              /* UINT bounds */
    const ps_cfg_range *range;    /* REAL */
    const char *word;             /* UINT: the word for 0; CHOICE: for -1 */
    const ps_cfg_choice *choices; /* CHOICE, or TEXT restricted to these words */
    const ps_cfg_custom *ops;     /* CUSTOM */
    ps_cfg_dep dep;
    unsigned reads;              /* PER_RULE: the PS_OPT_READS_* bit of the field */
    const char *const *by_model; /* PER_MODEL: the default text per ps_model_kind */
} ps_cfg_row;

extern const ps_cfg_range ps_cfg_nonneg, ps_cfg_pos, ps_cfg_unit; /* [0,inf) (0,inf) [0,1) */
/* --hidden's list, --synthetic's key=value spec, --consistency bsp|ssp:K|asp,
 * --conv's cN-..-N. */
extern const ps_cfg_custom ps_cfg_hidden, ps_cfg_synthetic, ps_cfg_consistency, ps_cfg_conv;
/* --synthetic's keys, rows of their own (in cfg.c); the last is test=. */
#define PS_CFG_NSYNTH 7
extern const ps_cfg_row ps_cfg_synth_keys[PS_CFG_NSYNTH];

/* Writes the message into err (errlen bytes; err may be NULL) and returns
 * PS_ECONFIG, so callers can write `rc = ps_cfg_err(...)`. */
int ps_cfg_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Stores text, a value as the flag takes it, into f's field of cfg (strict:
 * the whole text, in range, after rounding to the field's type). Returns 0
 * or PS_ECONFIG with a reason naming the flag and the text. */
int ps_cfg_parse_value(ps_cfg *cfg, const ps_cfg_row *f, const char *text, char *err,
                       size_t errlen);
/* f's value in cfg as the flag would spell it ("" for an unset path). */
void ps_cfg_format_value(const ps_cfg *cfg, const ps_cfg_row *f, char *buf, size_t n);
/* The shortest %g text of v that reads back as the same float (as_float)
 * or double. */
void ps_cfg_format_real(char *buf, size_t n, double v, int as_float);
/* Picks text from c into *out; 0 or PS_EINVAL (*out untouched). */
int ps_cfg_choice_parse(const ps_cfg_choice *c, const char *text, int *out);
/* f's words joined by sep (its word first), for --help and messages. */
void ps_cfg_choice_list(const ps_cfg_row *f, const char *sep, char *buf, size_t n);

#endif
