/* Tests for cli/fpu: a product below FLT_MIN stays subnormal until
 * ps_fpu_flush_denormals, then becomes 0 (FTZ), a stored subnormal reads as
 * 0 (DAZ), and ps_fpu_restore brings gradual underflow back. Operands are
 * volatile so the compiler cannot fold the products at build time. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "cli/fpu.h"

static volatile float tiny_a = 1e-20f;
static volatile float tiny_b = 1e-20f;
static volatile float one = 1.0f;

static float product(void)
{
    return tiny_a * tiny_b; /* 1e-40: below FLT_MIN (1.18e-38) */
}

static void test_fpu_subnormal_product_flushes_after_call_not_before(void **state)
{
    (void)state;
    assert_false(ps_fpu_denormals_flushed());
    float before = product();
    assert_int_equal(fpclassify(before), FP_SUBNORMAL);

    ps_fpu_mode old = ps_fpu_flush_denormals();
    assert_true(ps_fpu_denormals_flushed());
    float after = product();
    assert_true(after == 0.0f);

    ps_fpu_restore(old);
    assert_false(ps_fpu_denormals_flushed());
    assert_int_equal(fpclassify(product()), FP_SUBNORMAL);
}

static void test_fpu_subnormal_input_reads_as_zero(void **state)
{
    (void)state;
    volatile float sub = product(); /* stored while gradual underflow is on */
    assert_int_equal(fpclassify(sub), FP_SUBNORMAL);
    assert_true(sub * one > 0.0f);
    ps_fpu_mode old = ps_fpu_flush_denormals();
    /* DAZ: the input is 0 before the multiply, so even 2^100 x gives 0. */
    assert_true(sub * 0x1p100f == 0.0f);
    ps_fpu_restore(old);
    assert_true(sub * 0x1p100f > 1e-10f);
}

static void test_fpu_normal_math_unchanged(void **state)
{
    (void)state;
    volatile float x = 3.0f, y = FLT_MIN;
    float a = x * y, b = sqrtf(x) / 7.0f;
    ps_fpu_mode old = ps_fpu_flush_denormals();
    assert_true(x * y == a);
    assert_true(sqrtf(x) / 7.0f == b);
    ps_fpu_restore(old);
}

int main(void)
{
#if defined(__SSE2__) && (defined(__x86_64__) || defined(__i386__))
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fpu_subnormal_product_flushes_after_call_not_before),
        cmocka_unit_test(test_fpu_subnormal_input_reads_as_zero),
        cmocka_unit_test(test_fpu_normal_math_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#else
    printf("skip test_fpu: no FTZ/DAZ mode on this CPU\n");
    return 0;
#endif
}
