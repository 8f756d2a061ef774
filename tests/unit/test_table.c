/* Tests for common/table: init kinds, deterministic and shard-independent
 * row initialisation, and the distributions' shapes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/table.h"
#include "tests/unit/ps_test.h"

static void test_init_parse_accepts_names_rejects_others(void **state)
{
    (void)state;
    ps_init_kind k;
    assert_int_equal(ps_init_parse("zeros", &k), 0);
    assert_int_equal(k, PS_INIT_ZEROS);
    assert_int_equal(ps_init_parse("normal", &k), 0);
    assert_int_equal(k, PS_INIT_NORMAL);
    assert_int_equal(ps_init_parse("glorot", &k), 0);
    assert_int_equal(k, PS_INIT_GLOROT);
    assert_int_equal(ps_init_parse("Glorot", &k), PS_EINVAL);
    assert_int_equal(ps_init_parse("", &k), PS_EINVAL);
    assert_int_equal(ps_init_parse(NULL, &k), PS_EINVAL);
    assert_string_equal(ps_init_name(PS_INIT_NORMAL), "normal");
}

static void test_table_zeros_fills_zeros(void **state)
{
    (void)state;
    ps_table_desc t = {"b", 1, 7, PS_INIT_ZEROS, 0.0f};
    float row[7];
    memset(row, 0xff, sizeof row);
    ps_table_init_row(&t, 1, 0, 0, row);
    for (int i = 0; i < 7; i++) {
        assert_true(row[i] == 0.0f);
    }
}

/* A server holding rows {5, 9} alone must see the values a single server
 * holding every row sees, and the same call twice gives the same bits. */
static void test_table_init_row_is_independent_of_sharding(void **state)
{
    (void)state;
    ps_table_desc t = {"w1", 16, 5, PS_INIT_GLOROT, ps_table_glorot_scale(16, 5)};
    float all[16][5], one[5];
    for (uint64_t r = 0; r < 16; r++) {
        ps_table_init_row(&t, 42, 3, r, all[r]);
    }
    ps_table_init_row(&t, 42, 9, 1, one); /* other work in between */
    uint64_t mine[] = {9, 5};
    for (int i = 0; i < 2; i++) {
        ps_table_init_row(&t, 42, 3, mine[i], one);
        assert_memory_equal(one, all[mine[i]], sizeof one);
    }
    /* Rows, tables and seeds each change the values. */
    assert_memory_not_equal(all[0], all[1], sizeof one);
    ps_table_init_row(&t, 42, 4, 0, one);
    assert_memory_not_equal(one, all[0], sizeof one);
    ps_table_init_row(&t, 43, 3, 0, one);
    assert_memory_not_equal(one, all[0], sizeof one);
    /* Rows far apart in a 2^30-row key space work the same way. */
    t.rows = UINT64_C(1) << 30;
    float a[5], b[5];
    ps_table_init_row(&t, 42, 0, t.rows - 1, a);
    ps_table_init_row(&t, 42, 0, t.rows - 1, b);
    assert_memory_equal(a, b, sizeof a);
}

/* Glorot: every value within (-limit, limit); 10 equal bins each hold
 * 10% +- 1% of 200k values; mean within 0.01 limit, variance limit^2/3
 * within 2%. */
static void test_table_glorot_is_uniform_within_limit(void **state)
{
    (void)state;
    const uint64_t rows = 20000;
    const uint32_t w = 10;
    ps_table_desc t = {"w", rows, w, PS_INIT_GLOROT, ps_table_glorot_scale(784, 1000)};
    assert_float_equal(t.scale, sqrt(6.0 / 1784.0), 1e-7);
    long bins[10] = {0};
    double sum = 0.0, sq = 0.0;
    float row[10];
    for (uint64_t r = 0; r < rows; r++) {
        ps_table_init_row(&t, 7, 1, r, row);
        for (uint32_t c = 0; c < w; c++) {
            assert_true(fabsf(row[c]) <= t.scale);
            int bin = (int)((row[c] / t.scale + 1.0f) * 5.0f);
            bins[bin > 9 ? 9 : bin]++;
            sum += row[c];
            sq += (double)row[c] * row[c];
        }
    }
    double n = (double)rows * w;
    for (int i = 0; i < 10; i++) {
        assert_true(fabs(bins[i] / n - 0.1) < 0.01);
    }
    assert_true(fabs(sum / n) < 0.01 * t.scale);
    double var = sq / n, want = (double)t.scale * t.scale / 3.0;
    assert_true(fabs(var - want) < 0.02 * want);
}

/* Normal: mean 0 and stddev = scale within 2% over 100k values; about 68%
 * within one stddev. */
static void test_table_normal_has_requested_stddev(void **state)
{
    (void)state;
    ps_table_desc t = {"w", 10000, 10, PS_INIT_NORMAL, 0.01f};
    double sum = 0.0, sq = 0.0;
    long inside = 0;
    float row[10];
    for (uint64_t r = 0; r < t.rows; r++) {
        ps_table_init_row(&t, 11, 0, r, row);
        for (int c = 0; c < 10; c++) {
            sum += row[c];
            sq += (double)row[c] * row[c];
            inside += fabsf(row[c]) < 0.01f;
        }
    }
    double n = 1e5, mean = sum / n, sd = sqrt(sq / n - mean * mean);
    assert_true(fabs(mean) < 0.02 * 0.01);
    assert_true(fabs(sd - 0.01) < 0.02 * 0.01);
    assert_true(fabs(inside / n - 0.6827) < 0.01);
}

/* Every width copies exactly its floats, the short ones (1, 2) included,
 * and nothing beside them. */
static void test_table_copy_row_copies_width_floats(void **state)
{
    (void)state;
    float src[40], dst[42];
    for (int k = 0; k < 40; k++) {
        src[k] = (float)k + 0.5f;
    }
    static const size_t widths[] = {0, 1, 2, 3, 8, 17, 40};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        size_t w = widths[i];
        for (int k = 0; k < 42; k++) {
            dst[k] = -1.0f;
        }
        ps_table_copy_row(dst + 1, src, w);
        assert_true(dst[0] == -1.0f);
        assert_memory_equal(dst + 1, src, w * sizeof(float));
        assert_true(dst[1 + w] == -1.0f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_parse_accepts_names_rejects_others),
        cmocka_unit_test(test_table_zeros_fills_zeros),
        cmocka_unit_test(test_table_init_row_is_independent_of_sharding),
        cmocka_unit_test(test_table_glorot_is_uniform_within_limit),
        cmocka_unit_test(test_table_normal_has_requested_stddev),
        cmocka_unit_test(test_table_copy_row_copies_width_floats),
    };
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
