/* Unit tests for server/optim.c: golden vectors from tests/gen_golden.py
 * (torch.optim where torch implements the rule as the paper does, numpy
 * float32 where it departs from it: Adam without bias correction, AdaMax),
 * plus properties from Kingma & Ba 2015 that need no files. The golden files
 * live in tests/data/golden relative to the repo root (tests run from
 * there); PS_TEST_DATA overrides the tests/data part. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/mem.h"
#include "common/rng.h"
#include "server/optim.h"
#include "tests/unit/ps_test.h"

#define MAX_CHECKS 32

/* Inputs shared by several cases: a dense gradient sequence (rows = n,
 * width = 1) or a lazy one (rows x width, a row list per step). */
typedef struct {
    int lazy;
    size_t rows, width, n, steps;
    float *w0;       /* n */
    float *g;        /* dense: steps * n; lazy: all pushed values in order */
    size_t *g_off;   /* per step: offset into g */
    uint64_t *ids;   /* lazy: all row ids in order */
    size_t *ids_off; /* lazy: per step offset into ids */
    size_t *nrows;   /* lazy: per step row count */
} golden_inputs;

typedef struct {
    ps_opt_hp hp;
    golden_inputs in;
    double tol_rel, tol_abs;
    size_t nchecks;
    int64_t check_t[MAX_CHECKS];
    float *check_w[MAX_CHECKS];
} golden_case;

static void golden_path(char *buf, size_t cap, const char *file)
{
    const char *root = getenv("PS_TEST_DATA");
    snprintf(buf, cap, "%s/golden/%s", root && *root ? root : "tests/data", file);
}

static FILE *golden_open(const char *file)
{
    char path[1024];
    golden_path(path, sizeof path, file);
    FILE *f = fopen(path, "r");
    if (!f) {
        print_error("cannot open %s (run from the repo root or set PS_TEST_DATA)\n", path);
    }
    return f;
}

/* Next token, skipping '#' comment lines; 0 at end of file. */
static int next_token(FILE *f, char *tok, size_t cap)
{
    char fmt[16];
    snprintf(fmt, sizeof fmt, "%%%zus", cap - 1);
    for (;;) {
        if (fscanf(f, fmt, tok) != 1) {
            return 0;
        }
        if (tok[0] != '#') {
            return 1;
        }
        int ch;
        while ((ch = fgetc(f)) != EOF && ch != '\n') {
        }
    }
}

static void read_floats(FILE *f, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(fscanf(f, "%f", &out[i]), 1);
    }
}

static size_t read_size(FILE *f)
{
    unsigned long long v;
    assert_int_equal(fscanf(f, "%llu", &v), 1);
    return (size_t)v;
}

static void inputs_free(golden_inputs *in)
{
    ps_free(in->w0);
    ps_free(in->g);
    ps_free(in->g_off);
    ps_free(in->ids);
    ps_free(in->ids_off);
    ps_free(in->nrows);
    memset(in, 0, sizeof *in);
}

static void inputs_load(golden_inputs *in, const char *file)
{
    char tok[64];
    FILE *f = golden_open(file);
    assert_non_null(f);
    memset(in, 0, sizeof *in);
    assert_true(next_token(f, tok, sizeof tok));
    assert_string_equal(tok, "inputs");
    assert_true(next_token(f, tok, sizeof tok));
    in->lazy = strcmp(tok, "sparse") == 0;
    if (in->lazy) {
        in->rows = read_size(f);
        in->width = read_size(f);
    } else {
        assert_string_equal(tok, "dense");
        in->rows = read_size(f);
        in->width = 1;
    }
    in->steps = read_size(f);
    in->n = in->rows * in->width;
    in->w0 = ps_calloc(in->n, sizeof(float));
    /* Every step pushes at most every row. */
    in->g = ps_calloc(in->steps * in->n, sizeof(float));
    in->g_off = ps_calloc(in->steps, sizeof(size_t));
    in->ids = ps_calloc(in->steps * in->rows, sizeof(uint64_t));
    in->ids_off = ps_calloc(in->steps, sizeof(size_t));
    in->nrows = ps_calloc(in->steps, sizeof(size_t));
    assert_true(in->w0 && in->g && in->g_off && in->ids && in->ids_off && in->nrows);
    assert_true(next_token(f, tok, sizeof tok));
    assert_string_equal(tok, "w0");
    read_floats(f, in->w0, in->n);
    size_t goff = 0, ioff = 0;
    for (size_t s = 0; s < in->steps; s++) {
        assert_true(next_token(f, tok, sizeof tok));
        assert_string_equal(tok, "g");
        assert_int_equal(read_size(f), s + 1);
        size_t k = in->lazy ? read_size(f) : in->rows;
        assert_true(k <= in->rows);
        in->g_off[s] = goff;
        in->ids_off[s] = ioff;
        in->nrows[s] = k;
        for (size_t i = 0; in->lazy && i < k; i++) {
            in->ids[ioff + i] = read_size(f);
            assert_true(in->ids[ioff + i] < in->rows);
        }
        read_floats(f, in->g + goff, k * in->width);
        goff += k * in->width;
        ioff += k;
    }
    fclose(f);
}

static void case_free(golden_case *c)
{
    inputs_free(&c->in);
    for (size_t i = 0; i < c->nchecks; i++) {
        ps_free(c->check_w[i]);
    }
}

static void case_load(golden_case *c, const char *name)
{
    char file[128], tok[64];
    memset(c, 0, sizeof *c);
    snprintf(file, sizeof file, "%s.txt", name);
    FILE *f = golden_open(file);
    assert_non_null(f);
    ps_opt_defaults(&c->hp, PS_OPT_ADAM);
    int lazy = -1;
    while (next_token(f, tok, sizeof tok)) {
        if (strcmp(tok, "inputs") == 0) {
            assert_true(next_token(f, tok, sizeof tok));
            inputs_load(&c->in, tok);
        } else if (strcmp(tok, "kind") == 0) {
            assert_true(next_token(f, tok, sizeof tok));
            assert_int_equal(ps_opt_parse(tok, &c->hp.kind), 0);
        } else if (strcmp(tok, "lr") == 0) {
            assert_int_equal(fscanf(f, "%f", &c->hp.lr), 1);
        } else if (strcmp(tok, "beta1") == 0) {
            assert_int_equal(fscanf(f, "%f", &c->hp.beta1), 1);
        } else if (strcmp(tok, "beta2") == 0) {
            assert_int_equal(fscanf(f, "%f", &c->hp.beta2), 1);
        } else if (strcmp(tok, "eps") == 0) {
            assert_int_equal(fscanf(f, "%f", &c->hp.eps), 1);
        } else if (strcmp(tok, "momentum") == 0) {
            assert_int_equal(fscanf(f, "%f", &c->hp.momentum), 1);
        } else if (strcmp(tok, "weight_decay") == 0) {
            assert_int_equal(fscanf(f, "%f", &c->hp.weight_decay), 1);
        } else if (strcmp(tok, "bias_correction") == 0) {
            assert_int_equal(fscanf(f, "%d", &c->hp.bias_correction), 1);
        } else if (strcmp(tok, "schedule") == 0) {
            assert_true(next_token(f, tok, sizeof tok));
            c->hp.schedule = strcmp(tok, "invsqrt") == 0 ? PS_LR_INVSQRT : PS_LR_CONST;
        } else if (strcmp(tok, "lazy") == 0) {
            assert_int_equal(fscanf(f, "%d", &lazy), 1);
        } else if (strcmp(tok, "tol_rel") == 0) {
            assert_int_equal(fscanf(f, "%lf", &c->tol_rel), 1);
        } else if (strcmp(tok, "tol_abs") == 0) {
            assert_int_equal(fscanf(f, "%lf", &c->tol_abs), 1);
        } else if (strcmp(tok, "check") == 0) {
            assert_true(c->in.n > 0 && c->nchecks < MAX_CHECKS);
            c->check_t[c->nchecks] = (int64_t)read_size(f);
            c->check_w[c->nchecks] = ps_calloc(c->in.n, sizeof(float));
            assert_non_null(c->check_w[c->nchecks]);
            read_floats(f, c->check_w[c->nchecks], c->in.n);
            c->nchecks++;
        } else {
            fail_msg("%s: unknown key '%s'", name, tok);
        }
    }
    fclose(f);
    assert_int_equal(lazy, c->in.lazy);
    assert_true(c->nchecks > 0 && c->tol_rel > 0 && c->tol_abs > 0);
}

/* Replays the case through ps_opt_step (dense) or ps_opt_step_rows (lazy)
 * and compares w at each check step: |ours - expected| <= tol_abs +
 * tol_rel |expected| (tolerances stated in the case file; 1e-6 relative,
 * 1e-7 absolute for every case gen_golden.py writes). */
static void test_optim_matches_golden(void **state)
{
    const char *name = *state;
    golden_case c;
    case_load(&c, name);
    const golden_inputs *in = &c.in;
    float *w = ps_calloc(in->n, sizeof(float));
    float *st[3] = {NULL, NULL, NULL};
    assert_non_null(w);
    memcpy(w, in->w0, in->n * sizeof(float));
    for (int k = 0; k < ps_opt_nstate(c.hp.kind); k++) {
        st[k] = ps_calloc(in->n, sizeof(float));
        assert_non_null(st[k]);
    }
    double worst = 0.0, maxabs = 0.0; /* worst: fraction of the tolerance used */
    size_t next = 0;
    for (size_t s = 0; s < in->steps && next < c.nchecks; s++) {
        int64_t t = (int64_t)s + 1;
        const float *g = in->g + in->g_off[s];
        if (in->lazy) {
            ps_opt_step_rows(&c.hp, w, st, g, in->width, in->ids + in->ids_off[s], in->nrows[s], t);
        } else {
            ps_opt_step(&c.hp, w, st, g, in->n, t);
        }
        if (t != c.check_t[next]) {
            continue;
        }
        for (size_t i = 0; i < in->n; i++) {
            double e = c.check_w[next][i], d = fabs((double)w[i] - e);
            if (!(d <= c.tol_abs + c.tol_rel * fabs(e))) {
                fail_msg("%s: step %lld w[%zu] = %.9g, expected %.9g (|diff| %.3g)", name,
                         (long long)t, i, (double)w[i], e, d);
            }
            worst = fmax(worst, d / (c.tol_abs + c.tol_rel * fabs(e)));
            maxabs = fmax(maxabs, d);
        }
        next++;
    }
    assert_int_equal(next, c.nchecks);
    print_message("  %-13s %zu checks: max |diff| %.2e, %.0f%% of tolerance\n", name, c.nchecks,
                  maxabs, 100.0 * worst);
    for (int k = 0; k < 3; k++) {
        ps_free(st[k]);
    }
    ps_free(w);
    case_free(&c);
}

/* Section 2.1: at t = 1 with bias correction, m_hat = g and v_hat = g^2, so
 * the step is alpha g / (|g| + eps): ~alpha in magnitude against sign(g),
 * whatever the gradient's scale. */
static void test_adam_first_step_is_alpha_times_sign(void **state)
{
    (void)state;
    ps_opt_hp hp;
    ps_opt_defaults(&hp, PS_OPT_ADAM);
    float g[6] = {1e-3f, -1e-3f, 1.0f, -7.5f, 1e3f, -2e4f};
    float w[6] = {0}, m[6] = {0}, v[6] = {0};
    float *st[2] = {m, v};
    ps_opt_step(&hp, w, st, g, 6, 1);
    for (int i = 0; i < 6; i++) {
        float want = g[i] > 0 ? -hp.lr : hp.lr;
        /* |g| >= 1e-3 and eps = 1e-8: within 1e-5 relative, plus rounding. */
        assert_true(fabsf(w[i] - want) <= 2e-5f * hp.lr);
    }
}

/* Section 3 / 6.4: without bias correction the first step is
 * alpha (1 - beta1) / sqrt(1 - beta2) = 3.16 alpha for the defaults: v is
 * underestimated more than m, so the step is much LARGER than alpha, not
 * smaller. With beta1 = beta2 = 0.999 it is 0.0316 alpha. */
static void test_adam_without_bias_correction_scales_first_step(void **state)
{
    (void)state;
    const float b1s[2] = {0.9f, 0.999f};
    for (int k = 0; k < 2; k++) {
        ps_opt_hp hp;
        ps_opt_defaults(&hp, PS_OPT_ADAM);
        hp.beta1 = b1s[k];
        hp.bias_correction = 0;
        float g[2] = {0.5f, -3.0f};
        float w[2] = {0}, m[2] = {0}, v[2] = {0};
        float *st[2] = {m, v};
        ps_opt_step(&hp, w, st, g, 2, 1);
        double ratio = (1.0 - b1s[k]) / sqrt(1.0 - (double)hp.beta2);
        for (int i = 0; i < 2; i++) {
            double want = (g[i] > 0 ? -1.0 : 1.0) * hp.lr * ratio;
            assert_true(fabs(w[i] - want) <= 1e-5 * fabs(want));
        }
        if (k == 0) {
            assert_true(fabsf(w[0]) > 3.0f * hp.lr);
        } else {
            assert_true(fabsf(w[0]) < 0.05f * hp.lr);
        }
    }
}

static void fill(float *x, size_t n, uint32_t seed, float scale)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = scale * ((float)(seed >> 8) / 16777216.0f - 0.5f);
    }
}

/* Lazy mode: only the listed rows change; every float of every other row,
 * in w and in each state array, is bit-identical afterwards. */
static void test_step_rows_leaves_other_rows_untouched(void **state)
{
    (void)state;
    enum { R = 10, W = 5, N = R * W };
    const uint64_t rows[2] = {7, 2};
    for (int kind = 0; kind < PS_OPT_COUNT_; kind++) {
        ps_opt_hp hp;
        ps_opt_defaults(&hp, (ps_opt_kind)kind);
        float w[N], before[4][N], st_mem[3][N], g[2 * W];
        float *st[3] = {st_mem[0], st_mem[1], st_mem[2]};
        fill(w, N, 1, 2.0f);
        for (int k = 0; k < 3; k++) {
            fill(st_mem[k], N, 10 + k, 1.0f);
            for (size_t i = 0; i < N; i++) {
                st_mem[k][i] = fabsf(st_mem[k][i]); /* v, u, sums are >= 0 */
            }
        }
        fill(g, 2 * W, 3, 1.0f);
        memcpy(before[0], w, sizeof w);
        for (int k = 0; k < 3; k++) {
            memcpy(before[1 + k], st_mem[k], sizeof st_mem[k]);
        }
        ps_opt_step_rows(&hp, w, st, g, W, rows, 2, 5);
        for (size_t r = 0; r < R; r++) {
            int touched = r == 2 || r == 7;
            int same = memcmp(w + r * W, before[0] + r * W, W * sizeof(float)) == 0;
            assert_int_equal(same, !touched);
            for (int k = 0; k < 3; k++) {
                same = memcmp(st_mem[k] + r * W, before[1 + k] + r * W, W * sizeof(float)) == 0;
                if (!touched || k >= ps_opt_nstate((ps_opt_kind)kind)) {
                    assert_true(same);
                }
            }
        }
    }
}

/* Section 7.1: a parameter whose gradient has always been 0 has u = 0 and
 * m = 0; AdaMax leaves it unchanged (no 0/0) and nothing becomes NaN, also
 * after a non-zero gradient once u has decayed to denormals. */
static void test_adamax_zero_u_leaves_w_unchanged(void **state)
{
    (void)state;
    ps_opt_hp hp;
    ps_opt_defaults(&hp, PS_OPT_ADAMAX);
    float w[4] = {0.25f, -1.5f, 3.0f, 0.0f}, m[4] = {0}, u[4] = {0};
    float *st[2] = {m, u};
    const float w0[4] = {0.25f, -1.5f, 3.0f, 0.0f};
    float g[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t t = 1; t <= 20; t++) {
        g[3] = t == 3 ? 1e-38f : 0.0f; /* one tiny gradient on the last */
        ps_opt_step(&hp, w, st, g, 4, t);
    }
    for (int i = 0; i < 3; i++) {
        assert_memory_equal(&w[i], &w0[i], sizeof(float));
        assert_true(u[i] == 0.0f && m[i] == 0.0f);
    }
    for (int i = 0; i < 4; i++) {
        assert_false(isnan(w[i]) || isnan(m[i]) || isnan(u[i]));
    }
    assert_true(w[3] < 0.0f); /* the tiny gradient still moved it, by ~alpha */
    /* Lazy form too: a pushed row with all-zero gradient and u = 0. */
    const uint64_t row = 1;
    ps_opt_step_rows(&hp, w, st, g, 2, &row, 1, 21);
    assert_memory_equal(&w[2], &w0[2], sizeof(float));
}

/* Lazy and dense share the per-element kernels: with every row present (in
 * any order) ps_opt_step_rows gives bit-identical w and state to
 * ps_opt_step, for every rule, for widths below and above the vector
 * block. */
static void test_step_rows_equals_step_with_all_rows(void **state)
{
    (void)state;
    enum { R = 6, WMAX = 19 };
    /* Below the block (1, 2: sparse logreg rows, 7) and above it. */
    const size_t widths[4] = {1, 2, 7, 19};
    uint64_t rows[R] = {3, 0, 5, 1, 4, 2};
    for (int kind = 0; kind < PS_OPT_COUNT_; kind++) {
        for (int wi = 0; wi < 4; wi++) {
            size_t W = widths[wi], n = R * W;
            ps_opt_hp hp;
            ps_opt_defaults(&hp, (ps_opt_kind)kind);
            float wd[R * WMAX], wl[R * WMAX], g[R * WMAX], gl[R * WMAX];
            float sd[3][R * WMAX], sl[3][R * WMAX];
            float *std_[3] = {sd[0], sd[1], sd[2]}, *stl[3] = {sl[0], sl[1], sl[2]};
            fill(wd, n, 7, 2.0f);
            memcpy(wl, wd, sizeof wd);
            memset(sd, 0, sizeof sd);
            memset(sl, 0, sizeof sl);
            for (int64_t t = 1; t <= 5; t++) {
                fill(g, n, (uint32_t)(100 + t), 1.0f);
                g[0] = 0.0f;
                for (size_t i = 0; i < R; i++) {
                    memcpy(gl + i * W, g + rows[i] * W, W * sizeof(float));
                }
                ps_opt_step(&hp, wd, std_, g, n, t);
                ps_opt_step_rows(&hp, wl, stl, gl, W, rows, R, t);
            }
            assert_memory_equal(wd, wl, n * sizeof(float));
            for (int k = 0; k < ps_opt_nstate((ps_opt_kind)kind); k++) {
                assert_memory_equal(sd[k], sl[k], n * sizeof(float));
            }
        }
    }
}

/* Section 6.1: alpha_t = alpha / sqrt(t), for every rule's lr. SGD with
 * g = 1 moves w by exactly alpha_t at step t; Adam's first bias-corrected
 * step at t = 4 (fresh state) is alpha / 2. */
static void test_invsqrt_schedule_divides_lr_by_sqrt_t(void **state)
{
    (void)state;
    ps_opt_hp hp;
    ps_opt_defaults(&hp, PS_OPT_SGD);
    hp.lr = 0.5f;
    hp.schedule = PS_LR_INVSQRT;
    const int64_t ts[3] = {1, 4, 100};
    const float want[3] = {0.5f, 0.25f, 0.05f};
    for (int i = 0; i < 3; i++) {
        float w = 1.0f, g = 1.0f;
        ps_opt_step(&hp, &w, NULL, &g, 1, ts[i]);
        assert_true(fabsf((1.0f - w) - want[i]) <= 1e-6f);
    }
    ps_opt_defaults(&hp, PS_OPT_ADAM);
    hp.schedule = PS_LR_INVSQRT;
    hp.beta1 = 0.0f; /* m_hat = g at any t */
    hp.beta2 = 0.0f; /* v_hat = g^2 at any t */
    float w = 0.0f, g = 2.0f, m = 0.0f, v = 0.0f;
    float *st[2] = {&m, &v};
    ps_opt_step(&hp, &w, st, &g, 1, 4);
    assert_true(fabsf(w + hp.lr / 2.0f) <= 1e-6f * hp.lr);
}

/* Section 7.2: the bias-corrected average of a constant w is w at every t,
 * and the average moves toward w by (1 - beta). */
static void test_average_read_is_bias_corrected(void **state)
{
    (void)state;
    double avg[3] = {0};
    float out[3];
    const float w[3] = {1.0f, -2.0f, 1e-3f};
    for (int64_t t = 1; t <= 50; t++) {
        ps_opt_average(avg, w, 3, 0.999f);
        ps_opt_average_read(out, avg, 3, 0.999f, t);
        for (int i = 0; i < 3; i++) {
            assert_true(fabsf(out[i] - w[i]) <= 1e-5f * fabsf(w[i]));
        }
    }
    assert_true(fabs(avg[0] - (1.0 - pow(0.999f, 50.0))) <= 1e-12);
}

/* Section 7.2 at beta = 0.9999 over 1e5 steps, against a long double EMA
 * fed the same float iterates: w drifts by 1e-4 (relative) over the run,
 * and the bias-corrected average read at the end must track that drift to
 * within one float ulp of the result (2e-7 absolute, 0.2% of the drift).
 * A float32 average cannot: its update (1 - beta)(w - avg) is ~1e-8, below
 * half an ulp of avg, so it stalls; computed here the same way, its error
 * is over 1e-5, ten percent of the drift and more. */
static void test_average_tracks_a_slow_drift_at_beta_0_9999(void **state)
{
    (void)state;
    const float beta = 0.9999f;
    const int64_t T = 100000;
    double avg = 0.0;
    float avg32 = 0.0f;
    long double ref = 0.0L;
    const long double b = beta, omb = 1.0L - b;
    const float omb32 = (float)(1.0 - (double)beta);
    for (int64_t t = 1; t <= T; t++) {
        const float w = 1.0f + 1e-4f * (float)((double)t / (double)T);
        ps_opt_average(&avg, &w, 1, beta);
        avg32 = beta * avg32 + omb32 * w;
        ref = b * ref + omb * (long double)w;
    }
    float out;
    ps_opt_average_read(&out, &avg, 1, beta, T);
    long double want = ref / (1.0L - powl(b, (long double)T));
    double err = fabs((double)((long double)out - want));
    double err32 = fabs((double)((long double)avg32 / (1.0L - powl(b, (long double)T)) - want));
    print_message("beta 0.9999, 1e5 steps: error %.3g (float32 average: %.3g)\n", err, err32);
    assert_true(err <= 2e-7);
    assert_true(err32 > 1e-5); /* the test can tell the two apart */
}

static void test_opt_parse_and_name_round_trip(void **state)
{
    (void)state;
    for (int k = 0; k < PS_OPT_COUNT_; k++) {
        ps_opt_kind got = PS_OPT_COUNT_;
        const char *name = ps_opt_name((ps_opt_kind)k);
        assert_string_not_equal(name, "unknown");
        assert_int_equal(ps_opt_parse(name, &got), 0);
        assert_int_equal(got, k);
    }
    ps_opt_kind keep = PS_OPT_SGD;
    assert_int_equal(ps_opt_parse("adamx", &keep), PS_EINVAL);
    assert_int_equal(ps_opt_parse("Adam", &keep), PS_EINVAL);
    assert_int_equal(ps_opt_parse("", &keep), PS_EINVAL);
    assert_int_equal(ps_opt_parse(NULL, &keep), PS_EINVAL);
    assert_int_equal(keep, PS_OPT_SGD);
    assert_string_equal(ps_opt_name(PS_OPT_COUNT_), "unknown");
    assert_string_equal(ps_opt_name(PS_OPT_AMSGRAD), "amsgrad");
}

static void test_opt_nstate_and_defaults(void **state)
{
    (void)state;
    const int want[PS_OPT_COUNT_] = {
        [PS_OPT_ADAM] = 2,     [PS_OPT_ADAMAX] = 2,  [PS_OPT_SGD] = 0,
        [PS_OPT_NESTEROV] = 1, [PS_OPT_ADAGRAD] = 1, [PS_OPT_RMSPROP] = 1,
        [PS_OPT_ADAMW] = 2,    [PS_OPT_AMSGRAD] = 3, [PS_OPT_ADADELTA] = 2,
    };
    for (int k = 0; k < PS_OPT_COUNT_; k++) {
        assert_int_equal(ps_opt_nstate((ps_opt_kind)k), want[k]);
    }
    assert_int_equal(ps_opt_nstate(PS_OPT_COUNT_), PS_EINVAL);
    ps_opt_hp hp;
    ps_opt_defaults(&hp, PS_OPT_ADAM);
    assert_true(hp.kind == PS_OPT_ADAM && hp.lr == 0.001f && hp.beta1 == 0.9f);
    assert_true(hp.beta2 == 0.999f && hp.eps == 1e-8f && hp.bias_correction == 1);
    assert_true(hp.schedule == PS_LR_CONST);
    ps_opt_defaults(&hp, PS_OPT_ADAMAX);
    assert_true(hp.lr == 0.002f); /* section 7.1 */
    ps_opt_defaults(&hp, PS_OPT_ADAGRAD);
    assert_true(hp.eps == 1e-10f);
    ps_opt_defaults(&hp, PS_OPT_RMSPROP);
    assert_true(hp.beta2 == 0.99f);
    ps_opt_defaults(&hp, PS_OPT_NESTEROV);
    assert_true(hp.momentum == 0.9f);
    ps_opt_defaults(&hp, PS_OPT_ADAMW);
    assert_true(hp.weight_decay == 0.01f);
    ps_opt_defaults(&hp, PS_OPT_ADADELTA); /* torch.optim.Adadelta's */
    assert_true(hp.lr == 1.0f && hp.beta2 == 0.9f && hp.eps == 1e-6f);
}

/* Three dense steps of rule hp on 4 parameters. The gradients change
 * from step to step: with a constant one, Adam's bias-corrected moments
 * would not depend on the betas at all. */
static void run_three_steps(const ps_opt_hp *hp, float *w)
{
    float st[3][4] = {{0}};
    float *state[3] = {st[0], st[1], st[2]};
    for (int i = 0; i < 4; i++) {
        w[i] = 1.0f + (float)i;
    }
    for (int64_t t = 1; t <= 3; t++) {
        float g[4] = {0.5f * (float)t, -1.0f / (float)t, 2.0f, 0.25f * (float)(t * t)};
        ps_opt_step(hp, w, state, g, 4, t);
    }
}

/* ps_opt_reads tells the truth: changing a field a rule is said to read
 * changes its steps, and changing any other field changes nothing. */
static void test_opt_reads_names_the_fields_each_rule_uses(void **state)
{
    (void)state;
    for (int k = 0; k < PS_OPT_COUNT_; k++) {
        ps_opt_hp base;
        float w0[4], w1[4];
        ps_opt_defaults(&base, (ps_opt_kind)k);
        base.momentum = 0.9f;
        base.weight_decay = 0.1f;
        run_three_steps(&base, w0);
        for (unsigned bit = 1; bit <= PS_OPT_READS_LR; bit <<= 1) {
            ps_opt_hp hp = base;
            hp.beta1 = bit == PS_OPT_READS_BETA1 ? 0.5f : hp.beta1;
            hp.beta2 = bit == PS_OPT_READS_BETA2 ? 0.5f : hp.beta2;
            hp.eps = bit == PS_OPT_READS_EPS ? 0.5f : hp.eps;
            hp.momentum = bit == PS_OPT_READS_MOMENTUM ? 0.5f : hp.momentum;
            hp.weight_decay = bit == PS_OPT_READS_WEIGHT_DECAY ? 0.5f : hp.weight_decay;
            hp.bias_correction = bit == PS_OPT_READS_BIAS_CORRECTION ? 0 : hp.bias_correction;
            hp.lr = bit == PS_OPT_READS_LR ? 0.5f : hp.lr;
            run_three_steps(&hp, w1);
            int reads = (ps_opt_reads((ps_opt_kind)k) & bit) != 0;
            if (reads != (memcmp(w0, w1, sizeof w0) != 0)) {
                fail_msg("%s: field bit %u %s", ps_opt_name((ps_opt_kind)k), bit,
                         reads ? "is said to be read but changes nothing"
                               : "is said to be unread but changes the steps");
            }
        }
    }
    assert_int_equal(ps_opt_reads(PS_OPT_COUNT_), 0);
}

/* Arrays for the ISA comparison: n values of w, two states, g, with
 * magnitudes from 1e-6 to 1e2, some g exactly 0 (AdaMax's u = 0 lanes). */
enum { ISA_N = 1003 }; /* not a multiple of 8 or 16: the scalar tails run too */
typedef struct {
    float w[ISA_N], s0[ISA_N], s1[ISA_N], g[ISA_N];
} isa_arrays;

static void isa_fill(isa_arrays *a, uint64_t seed)
{
    for (size_t i = 0; i < ISA_N; i++) {
        uint64_t h = ps_rng_hash(seed, i, 0, 0);
        float scale = powf(10.0f, (float)(int)(h % 9) - 6.0f);
        a->w[i] = ps_rng_unit_float(h >> 8) - 0.5f;
        a->g[i] = i % 11 == 0 ? 0.0f : scale * (ps_rng_unit_float(h >> 4) - 0.5f);
        a->s0[i] = 0.0f;
        a->s1[i] = 0.0f;
    }
}

/* Five dense steps, then five lazy steps over every third row of width 7,
 * on the given ISA. */
static void isa_run(ps_opt_kind kind, ps_opt_isa isa, isa_arrays *a)
{
    assert_int_equal(ps_opt_isa_force(isa), 0);
    assert_int_equal(ps_opt_isa_current(), isa);
    ps_opt_hp hp;
    ps_opt_defaults(&hp, kind);
    float *st[2] = {a->s0, a->s1};
    for (int64_t t = 1; t <= 5; t++) {
        ps_opt_step(&hp, a->w, st, a->g, ISA_N, t);
    }
    uint64_t rows[ISA_N / 21 + 1];
    size_t nrows = 0;
    for (uint64_t r = 0; r < ISA_N / 7; r += 3) {
        rows[nrows++] = r;
    }
    for (int64_t t = 6; t <= 10; t++) {
        ps_opt_step_rows(&hp, a->w, st, a->g, 7, rows, nrows, t);
    }
    assert_int_equal(ps_opt_isa_force(PS_OPT_ISA_COUNT_), 0);
}

static void test_optim_every_isa_gives_the_scalar_bits(void **state)
{
    (void)state;
    static const ps_opt_kind kinds[] = {PS_OPT_ADAM, PS_OPT_ADAMW, PS_OPT_ADAMAX};
    static isa_arrays base, other;
    int compared = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        isa_fill(&base, 100 + k);
        isa_run(kinds[k], PS_OPT_ISA_BASE, &base);
        for (int isa = PS_OPT_ISA_AVX2; isa < PS_OPT_ISA_COUNT_; isa++) {
            if (ps_opt_isa_force((ps_opt_isa)isa) != 0) {
                printf("skip %s: this CPU lacks it\n", ps_opt_isa_name((ps_opt_isa)isa));
                continue;
            }
            isa_fill(&other, 100 + k);
            isa_run(kinds[k], (ps_opt_isa)isa, &other);
            assert_memory_equal(base.w, other.w, sizeof base.w);
            assert_memory_equal(base.s0, other.s0, sizeof base.s0);
            assert_memory_equal(base.s1, other.s1, sizeof base.s1);
            compared++;
        }
        /* The steps moved w: equal bits are not equal idleness. */
        isa_fill(&other, 100 + k);
        assert_memory_not_equal(base.w, other.w, sizeof base.w);
    }
    printf("compared %d (rule, ISA) pairs with sse2; running on %s\n", compared,
           ps_opt_isa_name(ps_opt_isa_current()));
    assert_int_equal(ps_opt_isa_force((ps_opt_isa)-1), PS_EINVAL);
    assert_int_equal(ps_opt_isa_force((ps_opt_isa)(PS_OPT_ISA_COUNT_ + 1)), PS_EINVAL);
    assert_string_equal(ps_opt_isa_name(PS_OPT_ISA_BASE), "sse2");
    assert_string_equal(ps_opt_isa_name(PS_OPT_ISA_COUNT_), "?");
}

#define GOLDEN(name)                                                                               \
    cmocka_unit_test_prestate_setup_teardown(test_optim_matches_golden, ps_test_setup,             \
                                             ps_test_teardown, (void *)(name))

int main(void)
{
    const struct CMUnitTest tests[] = {
        GOLDEN("adam"),
        GOLDEN("adam_invsqrt"),
        GOLDEN("adam_nobc"),
        GOLDEN("amsgrad"),
        GOLDEN("adamw"),
        GOLDEN("adamax"),
        GOLDEN("adagrad"),
        GOLDEN("rmsprop"),
        GOLDEN("adadelta"),
        GOLDEN("sgd"),
        GOLDEN("nesterov"),
        GOLDEN("lazy_adam"),
        cmocka_unit_test(test_adam_first_step_is_alpha_times_sign),
        cmocka_unit_test(test_adam_without_bias_correction_scales_first_step),
        cmocka_unit_test(test_step_rows_leaves_other_rows_untouched),
        cmocka_unit_test(test_adamax_zero_u_leaves_w_unchanged),
        cmocka_unit_test(test_step_rows_equals_step_with_all_rows),
        cmocka_unit_test(test_invsqrt_schedule_divides_lr_by_sqrt_t),
        cmocka_unit_test(test_average_read_is_bias_corrected),
        cmocka_unit_test(test_average_tracks_a_slow_drift_at_beta_0_9999),
        cmocka_unit_test(test_opt_parse_and_name_round_trip),
        cmocka_unit_test(test_opt_nstate_and_defaults),
        cmocka_unit_test(test_opt_reads_names_the_fields_each_rule_uses),
        cmocka_unit_test(test_optim_every_isa_gives_the_scalar_bits),
    };
    return cmocka_run_group_tests_name("optim", tests, NULL, NULL);
}
