/* Update rules: pure functions over float arrays, no MPI, no I/O, no
 * allocation. The server's store calls them on a shard (dense) or on the
 * rows a push touched (lazy). Hyper-parameters default to the paper's
 * (Kingma & Ba 2015, Algorithm 1): alpha 0.001, beta1 0.9, beta2 0.999,
 * eps 1e-8. Thread-safe (no shared state but the test-only
 * ps_opt_isa_force). */
#ifndef PS_OPTIM_H
#define PS_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PS_OPT_ADAM = 0, /* Alg. 1, bias correction switchable (section 6.4) */
    PS_OPT_ADAMAX,   /* section 7.1: u = max(b2 u, |g|), step alpha/(1-b1^t) */
    PS_OPT_SGD,
    PS_OPT_NESTEROV, /* momentum buffer, torch.optim.SGD(nesterov=True) form */
    PS_OPT_ADAGRAD,
    PS_OPT_RMSPROP,
    PS_OPT_ADAMW,    /* decoupled weight decay (Loshchilov & Hutter) */
    PS_OPT_AMSGRAD,  /* Reddi et al.: v_max = max(v_max, v) */
    PS_OPT_ADADELTA, /* Zeiler 2012 (section 6.2's baseline), torch.optim.Adadelta form */
    PS_OPT_COUNT_
} ps_opt_kind;

typedef enum { PS_LR_CONST = 0, PS_LR_INVSQRT = 1 } ps_lr_schedule;

/* Instruction sets the Adam and AdaMax kernels are built for; every one
 * gives the same bits (no FMA contraction, IEEE ops lane by lane). */
typedef enum {
    PS_OPT_ISA_BASE = 0, /* the build's baseline (x86-64: SSE2) */
    PS_OPT_ISA_AVX2,
    PS_OPT_ISA_AVX512,
    PS_OPT_ISA_COUNT_
} ps_opt_isa;

typedef struct {
    ps_opt_kind kind;
    float lr;                /* alpha */
    float beta1;             /* Adam family: first moment decay */
    float beta2;             /* Adam family: second moment decay; RMSProp, AdaDelta: their
                                decay (AdaDelta's rho) */
    float eps;               /* not used by AdaMax (the paper has none) */
    int bias_correction;     /* 1 = Alg. 1; 0 = m, v used raw (section 6.4 study) */
    float momentum;          /* Nesterov */
    float weight_decay;      /* AdamW, decoupled: w -= lr * wd * w */
    ps_lr_schedule schedule; /* invsqrt: alpha_t = alpha / sqrt(t) (section 6.1) */
} ps_opt_hp;

/* Fills hp with kind's own defaults: the paper's for the Adam family
 * (AdaMax alpha 0.002, section 7.1), torch.optim's for the baselines (lr
 * 0.01 for SGD, Nesterov, AdaGrad and RMSProp; eps 1e-10 for AdaGrad,
 * beta2 0.99 for RMSProp, momentum 0.9 for Nesterov, wd 0.01 for AdamW;
 * AdaDelta lr 1.0, rho (beta2) 0.9, eps 1e-6).
 * Fields kind does not read (ps_opt_reads) are 0, except beta1, beta2 and
 * eps, which keep Adam's values. */
void ps_opt_defaults(ps_opt_hp *hp, ps_opt_kind kind);
/* Parses "adam", "adamax", "sgd", "nesterov", "adagrad", "rmsprop", "adamw",
 * "amsgrad", "adadelta"; returns 0, or PS_EINVAL with *out untouched. Logs nothing: the
 * caller knows which flag or file the name came from. */
int ps_opt_parse(const char *name, ps_opt_kind *out);
/* The name ps_opt_parse reads, or "unknown" for a kind out of range. */
const char *ps_opt_name(ps_opt_kind kind);

/* The hyper-parameters of ps_opt_hp that rule kind reads, as PS_OPT_READS_*
 * bits (every rule reads lr and the schedule). Configuration uses it to
 * refuse what a rule cannot take (eps 0 where it divides by eps) and to
 * list each rule's defaults. 0 for a kind out of range. */
#define PS_OPT_READS_BETA1 (1u << 0)
#define PS_OPT_READS_BETA2 (1u << 1)
#define PS_OPT_READS_EPS (1u << 2)
#define PS_OPT_READS_MOMENTUM (1u << 3)
#define PS_OPT_READS_WEIGHT_DECAY (1u << 4)
#define PS_OPT_READS_BIAS_CORRECTION (1u << 5)
#define PS_OPT_READS_LR (1u << 6)
unsigned ps_opt_reads(ps_opt_kind kind);
/* Per-parameter state arrays the rule needs (0..3): Adam m, v; AMSGrad
 * m, v, v_max; AdaMax m, u; Nesterov buf; AdaGrad sum; RMSProp v; AdaDelta
 * the averages of g^2 and of the squared updates; SGD none.
 * State starts at zero. */
int ps_opt_nstate(ps_opt_kind kind);

/* Dense step t (t >= 1, the number of this step) over n parameters:
 * w, state[0..nstate-1] and g all have n floats. */
void ps_opt_step(const ps_opt_hp *hp, float *w, float *const *state, const float *g, size_t n,
                 int64_t t);

/* Lazy step t over selected rows: row rows[i] (a row index into w and each
 * state array, width floats per row) takes gradient g[i*width .. +width].
 * Bias correction uses the global t, as TensorFlow's LazyAdam does. */
void ps_opt_step_rows(const ps_opt_hp *hp, float *w, float *const *state, const float *g,
                      size_t width, const uint64_t *rows, size_t nrows, int64_t t);

/* The ISA the Adam and AdaMax kernels run with now: the best this CPU has,
 * unless forced. */
ps_opt_isa ps_opt_isa_current(void);
/* Tests and benchmarks: forces isa (PS_OPT_ISA_COUNT_: back to the best),
 * returns 0, or PS_EINVAL when this CPU lacks it. Not thread-safe: call
 * while no thread steps. */
int ps_opt_isa_force(ps_opt_isa isa);
/* "sse2", "avx2", "avx512", or "?". */
const char *ps_opt_isa_name(ps_opt_isa isa);

/* Temporal averaging (section 7.2): avg = beta * avg + (1 - beta) * w, in
 * double. The average moves by (1 - beta) (w - avg) per step; in float32
 * that falls below half an ulp of avg long before beta = 0.9999 has
 * averaged anything (after 1e5 steps a 1e-4 relative drift of w read back
 * with an error of 1.1e-3), so avg is kept in double. */
void ps_opt_average(double *avg, const float *w, size_t n, float beta);
/* The bias-corrected average avg / (1 - beta^t) into out (n floats), t >= 1. */
void ps_opt_average_read(float *out, const double *avg, size_t n, float beta, int64_t t);

#endif
