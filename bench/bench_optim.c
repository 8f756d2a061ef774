/* Optimizer kernel benchmark (standalone, one thread, no MPI).
 *
 * For Adam, AdaMax and AdaGrad, dense (ps_opt_step over every parameter)
 * and lazy (ps_opt_step_rows over 1% of the rows, width 1 and 10), it
 * reports updated parameters per second and the bytes the rule must move
 * (Adam/AdaMax: w, m, v, g read = 16 B, w, m, v written = 12 B, so 28 B per
 * parameter; AdaGrad: 20 B), side by side with a STREAM-style
 * read-modify-write of the same arrays and rows in the same process
 * (w += s g; m += s g; ... touching the same bytes), whose GB/s is the bound
 * the kernel can reach. Lazy rows are bounded with the kernel's own prefetch
 * (8 rows ahead): Adam's by a plain C lazy Adam loop over the same rows,
 * the others' by the read-modify-write of those rows. Each figure is the
 * median of --reps runs.
 *
 *   bench_optim [--params N[,N...]] [--reps R] [--isa sse2|avx2|avx512]
 *       default --params 10000000,100000000 (10^8 needs 1.6 GB) --reps 5
 *
 * If BENCH_JSON names a file, one JSON object per row is appended to it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "common/err.h"
#include "common/mem.h"
#include "common/rng.h"
#include "server/optim.h"

#define MAX_SIZES 8
#define MAX_REPS 101
#define BLK 8

typedef struct {
    size_t n;
    float *w, *s0, *s1, *g; /* n floats each, 64-byte aligned */
    float *gl;              /* lazy gradients: up to n / 100 + 1 rows of width 10 */
    uint64_t *rows;         /* lazy row ids, sorted */
} arena;

static volatile float bench_scale = 1e-30f; /* opaque to the compiler */

/* The read-modify-write bound: the same arrays and bytes as the rule
 * (nstate state arrays), one multiply-add each, no divide or sqrt. Blocked
 * like the kernels so gcc -O2 vectorises it too. */
static void rmw_span(float *restrict w, float *restrict a, float *restrict b,
                     const float *restrict g, size_t n, int nstate, float s)
{
    size_t i = 0;
    if (nstate == 2) {
        for (; i + BLK <= n; i += BLK) {
            for (size_t j = i; j < i + BLK; j++) {
                float x = s * g[j];
                w[j] += x;
                a[j] += x;
                b[j] += x;
            }
        }
        for (; i < n; i++) {
            float x = s * g[i];
            w[i] += x;
            a[i] += x;
            b[i] += x;
        }
    } else {
        for (; i + BLK <= n; i += BLK) {
            for (size_t j = i; j < i + BLK; j++) {
                float x = s * g[j];
                w[j] += x;
                a[j] += x;
            }
        }
        for (; i < n; i++) {
            float x = s * g[i];
            w[i] += x;
            a[i] += x;
        }
    }
}

/* The same prefetch as ps_opt_step_rows: first and last line of w and of
 * each state array, PREFETCH_ROWS rows ahead. */
#define PREFETCH_ROWS 8
static inline void prefetch_row(const arena *A, int nstate, size_t width, size_t r, size_t nrows)
{
    if (r + PREFETCH_ROWS < nrows) {
        size_t a = (size_t)A->rows[r + PREFETCH_ROWS] * width, z = a + width - 1;
        __builtin_prefetch(A->w + a, 1);
        __builtin_prefetch(A->w + z, 1);
        __builtin_prefetch(A->s0 + a, 1);
        __builtin_prefetch(A->s0 + z, 1);
        if (nstate == 2) {
            __builtin_prefetch(A->s1 + a, 1);
            __builtin_prefetch(A->s1 + z, 1);
        }
    }
}

static void rmw_rows(arena *A, int nstate, size_t width, size_t nrows, float s)
{
    for (size_t r = 0; r < nrows; r++) {
        size_t off = (size_t)A->rows[r] * width;
        prefetch_row(A, nstate, width, r, nrows);
        rmw_span(A->w + off, A->s0 + off, A->s1 + off, A->gl + r * width, width, nstate, s);
    }
}

/* The lazy Adam bound: Alg. 1 written as a plain C loop over the same rows
 * with the same prefetch, bias correction folded into lr and isb2 as the
 * kernel does; what a straightforward lazy Adam costs here. */
static void plain_lazy_adam(arena *A, const ps_opt_hp *hp, size_t width, size_t nrows, int64_t t)
{
    float b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;
    float step = (float)(hp->lr / (1.0 - pow(hp->beta1, (double)t)));
    float isb2 = (float)(1.0 / sqrt(1.0 - pow(hp->beta2, (double)t)));
    for (size_t r = 0; r < nrows; r++) {
        size_t off = (size_t)A->rows[r] * width;
        prefetch_row(A, 2, width, r, nrows);
        float *restrict w = A->w + off, *restrict m = A->s0 + off, *restrict v = A->s1 + off;
        const float *restrict g = A->gl + r * width;
        for (size_t j = 0; j < width; j++) {
            m[j] = b1 * m[j] + (1.0f - b1) * g[j];
            v[j] = b2 * v[j] + (1.0f - b2) * g[j] * g[j];
            w[j] -= step * m[j] / (sqrtf(v[j]) * isb2 + eps);
        }
    }
}

static int arena_init(arena *A, size_t n)
{
    int rc = PS_ENOMEM;
    memset(A, 0, sizeof *A);
    A->n = n;
    size_t bytes = n * sizeof(float);
    size_t nl = n / 100 + 16;
    A->w = ps_aligned_alloc(64, bytes);
    A->s0 = ps_aligned_alloc(64, bytes);
    A->s1 = ps_aligned_alloc(64, bytes);
    A->g = ps_aligned_alloc(64, bytes);
    A->gl = ps_aligned_alloc(64, nl * 10 * sizeof(float));
    A->rows = ps_malloc(nl * sizeof(uint64_t));
    if (!A->w || !A->s0 || !A->s1 || !A->g || !A->gl || !A->rows) {
        fprintf(stderr, "bench_optim: cannot allocate 4 x %zu bytes\n", bytes);
        goto cleanup;
    }
    /* First touch here, so page faults stay out of the timings. */
    for (size_t i = 0; i < n; i++) {
        uint64_t h = ps_rng_hash(42, i, 0, 0);
        A->g[i] = ps_rng_unit_float(h) - 0.5f;
        A->w[i] = 0.01f * (ps_rng_unit_float(h << 24) - 0.5f);
        A->s0[i] = 0.0f;
        A->s1[i] = 0.0f;
    }
    for (size_t i = 0; i < nl * 10; i++) {
        A->gl[i] = ps_rng_unit_float(ps_rng_hash(43, i, 0, 0)) - 0.5f;
    }
    rc = 0;
cleanup:
    return rc;
}

static void arena_fini(arena *A)
{
    ps_aligned_free(A->w);
    ps_aligned_free(A->s0);
    ps_aligned_free(A->s1);
    ps_aligned_free(A->g);
    ps_aligned_free(A->gl);
    ps_free(A->rows);
    memset(A, 0, sizeof *A);
}

/* 1% of the rows, sorted (pushes arrive with sorted keys): one row picked
 * at random in each run of 100. A new pick for every timed run, so neither
 * the kernel nor the bound finds the other's rows still in cache. */
static size_t pick_rows(arena *A, size_t width, uint64_t seed)
{
    size_t nrows_total = A->n / width, k = 0;
    ps_rng r;
    ps_rng_seed(&r, ps_rng_hash(7, width, seed, 0));
    for (size_t base = 0; base + 100 <= nrows_total; base += 100) {
        A->rows[k++] = base + ps_rng_below(&r, 100);
    }
    return k;
}

typedef struct {
    const char *rule, *mode, *bound; /* bound: which loop bounded the kernel */
    size_t width, params, updated;
    double kernel_s, bound_s, bytes_per_param;
} result;

static void report(const result *r, FILE *json)
{
    double pps = (double)r->updated / r->kernel_s;
    double gbs = pps * r->bytes_per_param * 1e-9;
    double bgbs = (double)r->updated * r->bytes_per_param * 1e-9 / r->bound_s;
    printf("%-8s %-6s %5zu %11zu %11zu %9.1f %8.2f %8.2f %6.2f\n", r->rule, r->mode, r->width,
           r->params, r->updated, pps * 1e-6, gbs, bgbs, gbs / bgbs);
    if (json) {
        fprintf(json,
                "{\"bench\": \"optim\", \"rule\": \"%s\", \"mode\": \"%s\", \"width\": %zu, "
                "\"params\": %zu, \"updated_params\": %zu, \"bytes_per_param\": %.0f, "
                "\"kernel_s_median\": %.6g, \"bound_s_median\": %.6g, \"params_per_sec\": %.6g, "
                "\"gb_per_s\": %.4g, \"bound_gb_per_s\": %.4g, \"ratio_vs_bound\": %.4g, "
                "\"bound_loop\": \"%s\", \"isa\": \"%s\", \"threads\": 1, \"compiler\": \"%s\"}\n",
                r->rule, r->mode, r->width, r->params, r->updated, r->bytes_per_param, r->kernel_s,
                r->bound_s, pps, gbs, bgbs, gbs / bgbs, r->bound,
                ps_opt_isa_name(ps_opt_isa_current()), __VERSION__);
        fflush(json);
    }
}

/* Times reps kernel runs and reps bound runs, interleaved so both see the
 * same machine state; one untimed warm-up of each first. */
static void run_case(arena *A, ps_opt_kind kind, size_t width, int reps, FILE *json)
{
    ps_opt_hp hp;
    ps_opt_defaults(&hp, kind);
    float *st[3] = {A->s0, A->s1, NULL};
    int nstate = ps_opt_nstate(kind);
    size_t nrows = 0;
    /* Fresh state per case, as a new shard would have (untimed). */
    memset(A->s0, 0, A->n * sizeof(float));
    memset(A->s1, 0, A->n * sizeof(float));
    double tk[MAX_REPS], tb[MAX_REPS];
    int64_t t = 1;
    for (int rep = -1; rep < reps; rep++) {
        float s = bench_scale;
        if (width) {
            nrows = pick_rows(A, width, 2 * (uint64_t)(rep + 1));
        }
        double t0 = bench_now_s();
        if (width == 0) {
            ps_opt_step(&hp, A->w, st, A->g, A->n, t++);
        } else {
            ps_opt_step_rows(&hp, A->w, st, A->gl, width, A->rows, nrows, t++);
        }
        double t1 = bench_now_s();
        if (width) {
            nrows = pick_rows(A, width, 2 * (uint64_t)(rep + 1) + 1);
        }
        double t2 = bench_now_s();
        if (width == 0) {
            rmw_span(A->w, A->s0, A->s1, A->g, A->n, nstate, s);
        } else if (kind == PS_OPT_ADAM) {
            plain_lazy_adam(A, &hp, width, nrows, t - 1);
        } else {
            rmw_rows(A, nstate, width, nrows, s);
        }
        double t3 = bench_now_s();
        if (rep >= 0) {
            tk[rep] = t1 - t0;
            tb[rep] = t3 - t2;
        }
    }
    result r = {
        .rule = ps_opt_name(kind),
        .mode = width ? "lazy" : "dense",
        .bound = width == 0            ? "rmw"
                 : kind == PS_OPT_ADAM ? "plain_lazy_adam"
                                       : "rmw_prefetch",
        .width = width,
        .params = A->n,
        .updated = width ? nrows * width : A->n,
        .kernel_s = bench_median(tk, reps),
        .bound_s = bench_median(tb, reps),
        /* w and each state read and written, g read */
        .bytes_per_param = (double)(4 * (1 + nstate) * 2 + 4),
    };
    report(&r, json);
}

static int parse_sizes(const char *arg, size_t *sizes, int *nsizes)
{
    char *end;
    *nsizes = 0;
    while (*arg && *nsizes < MAX_SIZES) {
        double v = strtod(arg, &end); /* accepts 1e8 */
        if (end == arg || v < 1000 || v > 4e9) {
            return PS_EINVAL;
        }
        sizes[(*nsizes)++] = (size_t)v;
        arg = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            return PS_EINVAL;
        }
    }
    return *nsizes ? 0 : PS_EINVAL;
}

int main(int argc, char **argv)
{
    size_t sizes[MAX_SIZES] = {10000000, 100000000};
    int nsizes = 2, reps = 5, rc = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--params") == 0 && i + 1 < argc) {
            if (parse_sizes(argv[++i], sizes, &nsizes) != 0) {
                fprintf(stderr, "bench_optim: --params wants N[,N...] with 1000 <= N <= 4e9\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
            if (reps < 1 || reps > MAX_REPS) {
                fprintf(stderr, "bench_optim: --reps wants 1..%d\n", MAX_REPS);
                return 2;
            }
        } else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            const char *name = argv[++i];
            int isa = PS_OPT_ISA_BASE;
            while (isa < PS_OPT_ISA_COUNT_ && strcmp(ps_opt_isa_name((ps_opt_isa)isa), name)) {
                isa++;
            }
            if (ps_opt_isa_force((ps_opt_isa)isa) != 0 || isa == PS_OPT_ISA_COUNT_) {
                fprintf(stderr,
                        "bench_optim: --isa wants sse2, avx2 or avx512 (one this CPU has)\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: bench_optim [--params N[,N...]] [--reps R] [--isa NAME]\n"
                            "  defaults: --params 10000000,100000000 --reps 5, the best ISA\n");
            return 2;
        }
    }
    const char *jpath = getenv("BENCH_JSON");
    FILE *json = NULL;
    if (jpath && *jpath) {
        json = fopen(jpath, "a");
        if (!json) {
            fprintf(stderr, "bench_optim: cannot open BENCH_JSON=%s\n", jpath);
            return 1;
        }
    }
    printf("# optimizer kernels vs read-modify-write bound, 1 thread, median of %d; %s; "
           "Adam/AdaMax kernels for %s\n",
           reps, __VERSION__, ps_opt_isa_name(ps_opt_isa_current()));
    printf("# lazy: 1%% of rows; GB/s counts the bytes the rule must move (28 B/param Adam, "
           "AdaMax; 20 B AdaGrad)\n");
    printf("%-8s %-6s %5s %11s %11s %9s %8s %8s %6s\n", "rule", "mode", "width", "params",
           "updated", "Mparam/s", "GB/s", "bound", "ratio");
    const ps_opt_kind kinds[3] = {PS_OPT_ADAM, PS_OPT_ADAMAX, PS_OPT_ADAGRAD};
    const size_t widths[3] = {0, 1, 10};
    for (int si = 0; si < nsizes && rc == 0; si++) {
        arena A;
        rc = arena_init(&A, sizes[si]);
        for (int k = 0; k < 3 && rc == 0; k++) {
            for (int wi = 0; wi < 3; wi++) {
                run_case(&A, kinds[k], widths[wi], reps, json);
            }
        }
        arena_fini(&A);
    }
    if (json) {
        fclose(json);
    }
    return rc == 0 ? 0 : 1;
}
