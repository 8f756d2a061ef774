/* Update rules (Kingma & Ba, "Adam: A Method for Stochastic Optimization",
 * ICLR 2015, and the torch.optim forms of the baselines). Each rule is one
 * per-element function run by one kernel over a contiguous span of floats;
 * ps_opt_step calls the kernel once for the whole array and
 * ps_opt_step_rows once per row, so dense and lazy share the math bit for
 * bit. Per-step scalars (bias corrections, schedule) are computed once per
 * call in double; the update loops are float only and vectorise (-O2
 * -fno-math-errno); the temporal average alone is kept in double (see
 * ps_opt_average). bias_correction = 0 applies to the Adam family (Adam,
 * AdamW, AMSGrad, AdaMax: step alpha instead of alpha / (1 - beta1^t)).
 * Hyper-parameters are not range-checked here: beta1 or beta2 = 1 with bias
 * correction divides by zero, so configuration must reject it. */
#include "server/optim.h"

#include <math.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

/* Per-call scalars, already rounded to float so every kernel sees the same
 * values whichever entry point called it. */
typedef struct {
    float b1, omb1; /* beta1, 1 - beta1 */
    float b2, omb2; /* beta2 (RMSProp: its alpha), 1 - beta2 */
    float eps;
    float lr;    /* alpha_t: lr after the schedule */
    float step;  /* lr / (1 - beta1^t), or lr without bias correction */
    float isb2;  /* 1 / sqrt(1 - beta2^t), or 1 */
    float mu;    /* Nesterov momentum */
    float decay; /* AdamW: 1 - lr * wd; 1 for the others */
} coef;

static const char *const opt_names[PS_OPT_COUNT_] = {
    [PS_OPT_ADAM] = "adam",         [PS_OPT_ADAMAX] = "adamax",   [PS_OPT_SGD] = "sgd",
    [PS_OPT_NESTEROV] = "nesterov", [PS_OPT_ADAGRAD] = "adagrad", [PS_OPT_RMSPROP] = "rmsprop",
    [PS_OPT_ADAMW] = "adamw",       [PS_OPT_AMSGRAD] = "amsgrad", [PS_OPT_ADADELTA] = "adadelta",
};

static const int opt_nstate[PS_OPT_COUNT_] = {
    [PS_OPT_ADAM] = 2,     [PS_OPT_ADAMAX] = 2,  [PS_OPT_SGD] = 0,
    [PS_OPT_NESTEROV] = 1, [PS_OPT_ADAGRAD] = 1, [PS_OPT_RMSPROP] = 1,
    [PS_OPT_ADAMW] = 2,    [PS_OPT_AMSGRAD] = 3, [PS_OPT_ADADELTA] = 2,
};

void ps_opt_defaults(ps_opt_hp *hp, ps_opt_kind kind)
{
    memset(hp, 0, sizeof *hp);
    hp->kind = kind;
    /* Alg. 1: "Good default settings ... are alpha = 0.001, beta1 = 0.9,
     * beta2 = 0.999 and epsilon = 10^-8". */
    hp->lr = 0.001f;
    hp->beta1 = 0.9f;
    hp->beta2 = 0.999f;
    hp->eps = 1e-8f;
    hp->bias_correction = 1;
    hp->schedule = PS_LR_CONST;
    switch (kind) {
    case PS_OPT_ADAMAX:
        hp->lr = 0.002f; /* section 7.1: alpha = 0.002 */
        break;
    case PS_OPT_SGD:
        hp->lr = 0.01f;
        break;
    case PS_OPT_NESTEROV:
        hp->lr = 0.01f;
        hp->momentum = 0.9f;
        break;
    case PS_OPT_ADAGRAD:
        hp->lr = 0.01f; /* torch.optim.Adagrad's defaults */
        hp->eps = 1e-10f;
        break;
    case PS_OPT_RMSPROP:
        hp->lr = 0.01f; /* torch.optim.RMSprop's defaults */
        hp->beta2 = 0.99f;
        break;
    case PS_OPT_ADAMW:
        hp->weight_decay = 0.01f;
        break;
    case PS_OPT_ADADELTA:
        hp->lr = 1.0f; /* torch.optim.Adadelta's defaults */
        hp->beta2 = 0.9f;
        hp->eps = 1e-6f;
        break;
    default:
        break;
    }
}

int ps_opt_parse(const char *name, ps_opt_kind *out)
{
    int rc = PS_EINVAL;
    for (int k = 0; name && k < PS_OPT_COUNT_; k++) {
        if (strcmp(name, opt_names[k]) == 0) {
            *out = (ps_opt_kind)k;
            rc = 0;
            break;
        }
    }
    return rc;
}

const char *ps_opt_name(ps_opt_kind kind)
{
    if ((int)kind < 0 || kind >= PS_OPT_COUNT_) {
        return "unknown";
    }
    return opt_names[kind];
}

unsigned ps_opt_reads(ps_opt_kind kind)
{
    /* From the kernels below: which coef fields each one touches. */
    enum { ADAM_FAMILY = PS_OPT_READS_BETA1 | PS_OPT_READS_BETA2 | PS_OPT_READS_BIAS_CORRECTION };
    static const unsigned reads[PS_OPT_COUNT_] = {
        [PS_OPT_ADAM] = ADAM_FAMILY | PS_OPT_READS_EPS,
        [PS_OPT_ADAMAX] = ADAM_FAMILY, /* section 7.1: no epsilon */
        [PS_OPT_SGD] = 0,
        [PS_OPT_NESTEROV] = PS_OPT_READS_MOMENTUM,
        [PS_OPT_ADAGRAD] = PS_OPT_READS_EPS,
        [PS_OPT_RMSPROP] = PS_OPT_READS_BETA2 | PS_OPT_READS_EPS,
        [PS_OPT_ADAMW] = ADAM_FAMILY | PS_OPT_READS_EPS | PS_OPT_READS_WEIGHT_DECAY,
        [PS_OPT_AMSGRAD] = ADAM_FAMILY | PS_OPT_READS_EPS,
        [PS_OPT_ADADELTA] = PS_OPT_READS_BETA2 | PS_OPT_READS_EPS,
    };
    if ((int)kind < 0 || kind >= PS_OPT_COUNT_) {
        return 0;
    }
    return reads[kind] | PS_OPT_READS_LR;
}

int ps_opt_nstate(ps_opt_kind kind)
{
    if ((int)kind < 0 || kind >= PS_OPT_COUNT_) {
        return PS_EINVAL;
    }
    return opt_nstate[kind];
}

static coef make_coef(const ps_opt_hp *hp, int64_t t)
{
    PS_ASSERT(t >= 1);
    PS_ASSERT((int)hp->kind >= 0 && hp->kind < PS_OPT_COUNT_);
    double td = (double)t;
    double lr = hp->lr;
    if (hp->schedule == PS_LR_INVSQRT) {
        lr /= sqrt(td); /* section 6.1: alpha_t = alpha / sqrt(t) */
    }
    double b1 = hp->beta1, b2 = hp->beta2;
    coef c;
    c.b1 = hp->beta1;
    c.omb1 = (float)(1.0 - b1);
    c.b2 = hp->beta2;
    c.omb2 = (float)(1.0 - b2);
    c.eps = hp->eps;
    c.lr = (float)lr;
    c.mu = hp->momentum;
    c.decay = hp->kind == PS_OPT_ADAMW ? (float)(1.0 - lr * (double)hp->weight_decay) : 1.0f;
    if (hp->bias_correction) {
        /* Alg. 1: m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t); folded
         * into the step size and the sqrt(v) scale, as torch.optim.Adam does. */
        c.step = (float)(lr / (1.0 - pow(b1, td)));
        c.isb2 = (float)(1.0 / sqrt(1.0 - pow(b2, td)));
    } else {
        /* Section 6.4: m and v used raw. */
        c.step = (float)lr;
        c.isb2 = 1.0f;
    }
    return c;
}

/* gcc -O2 uses the "very-cheap" vectorisation cost model, which only
 * vectorises a loop whose trip count is a known multiple of the vector
 * width. So each kernel walks blocks of PS_VB elements (an inner loop of
 * fixed count, which vectorises) and finishes with a scalar tail; both run
 * the same per-element function, so there is one copy of the math. */
#define PS_VB 8
#define PS_PREFETCH_ROWS 8
/* Forced inline: the early inliner must see the element function inside the
 * blocked loop, or the vectoriser meets an opaque call. */
#define PS_ELEM static inline __attribute__((always_inline))
/* Kept out of line: gcc honours restrict only on the parameters of the
 * function being compiled, and without it the very-cheap model refuses the
 * run-time alias checks. One call per row in lazy mode is noise. */
#define PS_KERNEL static __attribute__((noinline))
#define FOR_BLOCKED_VB PS_FOR_BLOCKED
#define FOR_BLOCKED(j, n, stmt) FOR_BLOCKED_VB(j, n, PS_VB, stmt)

/* Adam and AdamW. Alg. 1:
 *   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
 *   w -= alpha m_hat / (sqrt(v_hat) + eps)
 * computed as w -= (step * m) / (sqrt(v) * isb2 + eps), which is the same
 * expression with m_hat and v_hat expanded (torch.optim.Adam's order). AdamW
 * first decays w by (1 - lr wd) (torch form); for Adam decay is 1 and the
 * multiply is exact. One divide per element is kept: the loop is bound by
 * memory traffic, not by divps. */
PS_ELEM void adam_elem(const coef *restrict c, float *restrict w, float *restrict m,
                       float *restrict v, float g)
{
    float mi = c->b1 * *m + c->omb1 * g;
    float vi = c->b2 * *v + c->omb2 * (g * g);
    *m = mi;
    *v = vi;
    *w = *w * c->decay - (c->step * mi) / (sqrtf(vi) * c->isb2 + c->eps);
}

/* Adam and AdaMax (the MLP's and the paper's rules) also come built for
 * AVX2 and AVX-512, picked at run time by the CPU (ps_opt_isa). The math is
 * the same element function: every operation (mul, add, div, sqrt, max) is
 * IEEE-rounded lane by lane on every ISA, and -ffp-contract=off (Makefile)
 * keeps gcc from fusing a*b+c into an FMA, so each clone gives the same bits
 * as the SSE2 one (tests/unit/test_optim.c). AVX-512 walks blocks of 16. */
#define PS_VB512 16
#define FOR_BLOCKED16(j, n, stmt) FOR_BLOCKED_VB(j, n, PS_VB512, stmt)
#define PS_AVX2 __attribute__((target("avx2")))
#define PS_AVX512 __attribute__((target("avx512f")))
typedef void (*span3_fn)(const coef *restrict c, float *restrict w, float *restrict m,
                         float *restrict v, const float *restrict g, size_t n);

/* One Adam or AdaMax kernel per ISA: NAME_base, NAME_avx2, NAME_avx512. */
#define PS_KERNEL_ISA(fn, attr, loop, elem)                                                        \
    attr PS_KERNEL void fn(const coef *restrict c, float *restrict w, float *restrict m,           \
                           float *restrict v, const float *restrict g, size_t n)                   \
    {                                                                                              \
        loop(j, n, elem(c, w + j, m + j, v + j, g[j]));                                            \
    }
#define PS_NO_ATTR
#define PS_KERNEL3(name, elem)                                                                     \
    PS_KERNEL_ISA(name##_base, PS_NO_ATTR, FOR_BLOCKED, elem)                                      \
    PS_KERNEL_ISA(name##_avx2, PS_AVX2, FOR_BLOCKED, elem)                                         \
    PS_KERNEL_ISA(name##_avx512, PS_AVX512, FOR_BLOCKED16, elem)                                   \
    static const span3_fn name##_isa[PS_OPT_ISA_COUNT_] = {name##_base, name##_avx2, name##_avx512}

PS_KERNEL3(adam_run, adam_elem);

/* AMSGrad (Reddi et al. 2018, torch form): Adam with
 * v_max = max(v_max, v) in place of v in the denominator. */
PS_ELEM void amsgrad_elem(const coef *restrict c, float *restrict w, float *restrict m,
                          float *restrict v, float *restrict vmax, float g)
{
    float mi = c->b1 * *m + c->omb1 * g;
    float vi = c->b2 * *v + c->omb2 * (g * g);
    float vm = *vmax > vi ? *vmax : vi;
    *m = mi;
    *v = vi;
    *vmax = vm;
    *w -= (c->step * mi) / (sqrtf(vm) * c->isb2 + c->eps);
}

PS_KERNEL void amsgrad_run(const coef *restrict c, float *restrict w, float *restrict m,
                           float *restrict v, float *restrict vmax, const float *restrict g,
                           size_t n)
{
    FOR_BLOCKED(j, n, amsgrad_elem(c, w + j, m + j, v + j, vmax + j, g[j]));
}

/* AdaMax, section 7.1: m as Adam; u = max(beta2 u, |g|);
 * w -= (alpha / (1 - beta1^t)) m / u. No epsilon. u == 0 means the
 * parameter has never seen a non-zero gradient (an untouched row in dense
 * mode), so m is 0 too: w is left unchanged instead of computing 0/0. In
 * those lanes the step is swapped for 0 and the divisor for 1, so the loop
 * stays branch-free and vectorises. */
PS_ELEM void adamax_elem(const coef *restrict c, float *restrict w, float *restrict m,
                         float *restrict u, float g)
{
    float mi = c->b1 * *m + c->omb1 * g;
    float bu = c->b2 * *u;
    float ag = fabsf(g);
    float ui = bu > ag ? bu : ag;
    float step = c->step; /* loaded unconditionally so the select if-converts */
    float live = ui > 0.0f ? step : 0.0f;
    float d = ui > 0.0f ? ui : 1.0f;
    *m = mi;
    *u = ui;
    *w -= (live * mi) / d; /* w - 0 == w exactly where u == 0 */
}

PS_KERNEL3(adamax_run, adamax_elem);

/* Plain SGD: w -= lr g. */
PS_KERNEL void sgd_run(const coef *restrict c, float *restrict w, const float *restrict g, size_t n)
{
    FOR_BLOCKED(j, n, w[j] -= c->lr * g[j]);
}

/* torch.optim.SGD(momentum=mu, nesterov=True, dampening=0):
 * buf = mu buf + g (torch's first step sets buf = g, which is the same with
 * buf starting at 0); w -= lr (g + mu buf). */
PS_ELEM void nesterov_elem(const coef *restrict c, float *restrict w, float *restrict buf, float g)
{
    float bi = c->mu * *buf + g;
    *buf = bi;
    *w -= c->lr * (g + c->mu * bi);
}

PS_KERNEL void nesterov_run(const coef *restrict c, float *restrict w, float *restrict buf,
                            const float *restrict g, size_t n)
{
    FOR_BLOCKED(j, n, nesterov_elem(c, w + j, buf + j, g[j]));
}

/* torch.optim.Adagrad (initial accumulator 0, no lr decay):
 * sum += g^2; w -= lr g / (sqrt(sum) + eps). */
PS_ELEM void adagrad_elem(const coef *restrict c, float *restrict w, float *restrict sum, float g)
{
    float si = *sum + g * g;
    *sum = si;
    *w -= (c->lr * g) / (sqrtf(si) + c->eps);
}

PS_KERNEL void adagrad_run(const coef *restrict c, float *restrict w, float *restrict sum,
                           const float *restrict g, size_t n)
{
    FOR_BLOCKED(j, n, adagrad_elem(c, w + j, sum + j, g[j]));
}

/* torch.optim.RMSprop (no momentum, not centred), alpha = beta2:
 * v = a v + (1 - a) g^2; w -= lr g / (sqrt(v) + eps). */
PS_ELEM void rmsprop_elem(const coef *restrict c, float *restrict w, float *restrict v, float g)
{
    float vi = c->b2 * *v + c->omb2 * (g * g);
    *v = vi;
    *w -= (c->lr * g) / (sqrtf(vi) + c->eps);
}

PS_KERNEL void rmsprop_run(const coef *restrict c, float *restrict w, float *restrict v,
                           const float *restrict g, size_t n)
{
    FOR_BLOCKED(j, n, rmsprop_elem(c, w + j, v + j, g[j]));
}

/* torch.optim.Adadelta (Zeiler 2012, with torch's lr), rho = beta2:
 * sq = rho sq + (1 - rho) g^2; d = sqrt(acc + eps) / sqrt(sq + eps) g;
 * acc = rho acc + (1 - rho) d^2; w -= lr d. */
PS_ELEM void adadelta_elem(const coef *restrict c, float *restrict w, float *restrict sq,
                           float *restrict acc, float g)
{
    float si = c->b2 * *sq + c->omb2 * (g * g);
    float d = sqrtf(*acc + c->eps) / sqrtf(si + c->eps) * g;
    *sq = si;
    *acc = c->b2 * *acc + c->omb2 * (d * d);
    *w -= c->lr * d;
}

PS_KERNEL void adadelta_run(const coef *restrict c, float *restrict w, float *restrict sq,
                            float *restrict acc, const float *restrict g, size_t n)
{
    FOR_BLOCKED(j, n, adadelta_elem(c, w + j, sq + j, acc + j, g[j]));
}

/* PS_OPT_ISA_COUNT_ means "the best this CPU has" (the default). */
static ps_opt_isa forced_isa = PS_OPT_ISA_COUNT_;

static int cpu_has(ps_opt_isa isa)
{
    switch (isa) {
    case PS_OPT_ISA_AVX512:
        return __builtin_cpu_supports("avx512f");
    case PS_OPT_ISA_AVX2:
        return __builtin_cpu_supports("avx2");
    default:
        return 1;
    }
}

ps_opt_isa ps_opt_isa_current(void)
{
    if (forced_isa != PS_OPT_ISA_COUNT_) {
        return forced_isa;
    }
    return cpu_has(PS_OPT_ISA_AVX512) ? PS_OPT_ISA_AVX512
           : cpu_has(PS_OPT_ISA_AVX2) ? PS_OPT_ISA_AVX2
                                      : PS_OPT_ISA_BASE;
}

int ps_opt_isa_force(ps_opt_isa isa)
{
    if (isa == PS_OPT_ISA_COUNT_) {
        forced_isa = isa;
        return 0;
    }
    if ((int)isa < 0 || isa > PS_OPT_ISA_COUNT_ || !cpu_has(isa)) {
        return PS_EINVAL;
    }
    forced_isa = isa;
    return 0;
}

const char *ps_opt_isa_name(ps_opt_isa isa)
{
    static const char *const names[PS_OPT_ISA_COUNT_] = {"sse2", "avx2", "avx512"};
    return (int)isa >= 0 && isa < PS_OPT_ISA_COUNT_ ? names[isa] : "?";
}

/* One contiguous run [off, off + n) of w and every state array. The switch
 * is per call, not per element: dense calls it once, lazy once per row. */
static inline void run_span(ps_opt_kind kind, ps_opt_isa isa, const coef *c, float *w,
                            float *const *s, size_t off, const float *g, size_t n)
{
    switch (kind) {
    case PS_OPT_ADAM:
    case PS_OPT_ADAMW:
        adam_run_isa[isa](c, w + off, s[0] + off, s[1] + off, g, n);
        break;
    case PS_OPT_AMSGRAD:
        amsgrad_run(c, w + off, s[0] + off, s[1] + off, s[2] + off, g, n);
        break;
    case PS_OPT_ADAMAX:
        adamax_run_isa[isa](c, w + off, s[0] + off, s[1] + off, g, n);
        break;
    case PS_OPT_SGD:
        sgd_run(c, w + off, g, n);
        break;
    case PS_OPT_NESTEROV:
        nesterov_run(c, w + off, s[0] + off, g, n);
        break;
    case PS_OPT_ADAGRAD:
        adagrad_run(c, w + off, s[0] + off, g, n);
        break;
    case PS_OPT_RMSPROP:
        rmsprop_run(c, w + off, s[0] + off, g, n);
        break;
    case PS_OPT_ADADELTA:
        adadelta_run(c, w + off, s[0] + off, s[1] + off, g, n);
        break;
    default:
        PS_ASSERT(!"unknown optimizer kind");
    }
}

void ps_opt_step(const ps_opt_hp *hp, float *w, float *const *state, const float *g, size_t n,
                 int64_t t)
{
    coef c = make_coef(hp, t);
    run_span(hp->kind, ps_opt_isa_current(), &c, w, state, 0, g, n);
}

void ps_opt_step_rows(const ps_opt_hp *hp, float *w, float *const *state, const float *g,
                      size_t width, const uint64_t *rows, size_t nrows, int64_t t)
{
    /* Lazy (TensorFlow LazyAdam / torch SparseAdam): only the given rows
     * step, and the bias correction still uses the global t. */
    coef c = make_coef(hp, t);
    int ns = opt_nstate[hp->kind];
    ps_opt_isa isa = ps_opt_isa_current(); /* once per call, not per row */
    for (size_t i = 0; i < nrows; i++) {
        /* Pushed rows are scattered over the shard, so each is a cache (and
         * often TLB) miss the hardware prefetcher cannot guess: ask for the
         * first and last line of a row a few rows ahead (a wider row's
         * middle is sequential, which the hardware streams itself). */
        if (i + PS_PREFETCH_ROWS < nrows && width > 0) {
            size_t a = (size_t)rows[i + PS_PREFETCH_ROWS] * width, z = a + width - 1;
            __builtin_prefetch(w + a, 1);
            __builtin_prefetch(w + z, 1);
            for (int k = 0; k < ns; k++) {
                __builtin_prefetch(state[k] + a, 1);
                __builtin_prefetch(state[k] + z, 1);
            }
        }
        run_span(hp->kind, isa, &c, w, state, (size_t)rows[i] * width, g + i * width, width);
    }
}

void ps_opt_average(double *restrict avg, const float *restrict w, size_t n, float beta)
{
    /* Section 7.2: theta_bar = beta2 theta_bar + (1 - beta2) theta. */
    const double b = beta, omb = 1.0 - b;
    FOR_BLOCKED(j, n, avg[j] = b * avg[j] + omb * (double)w[j]);
}

void ps_opt_average_read(float *restrict out, const double *restrict avg, size_t n, float beta,
                         int64_t t)
{
    /* Section 7.2: theta_hat = theta_bar / (1 - beta2^t). */
    PS_ASSERT(t >= 1);
    const double scale = 1.0 / (1.0 - pow((double)beta, (double)t));
    FOR_BLOCKED(j, n, out[j] = (float)(avg[j] * scale));
}
