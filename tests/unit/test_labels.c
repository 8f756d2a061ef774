/* Tests for data/labels.c: a set stays sorted and distinct whatever the
 * insertion order, finds its labels, knows the identity 0..C-1, formats
 * long sets briefly, parses --labels strictly, caps its size, and survives
 * failed allocations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "data/labels.h"
#include "tests/unit/ps_test.h"

static void test_labels_keep_sorted_distinct_and_find(void **state)
{
    (void)state;
    ps_labels s = {0};
    const int32_t in[] = {7, -1, 7, 3, 1, -1, 100, 3};
    assert_int_equal(ps_labels_add_all(&s, in, sizeof in / sizeof in[0]), 0);
    const int32_t want[] = {-1, 1, 3, 7, 100};
    assert_int_equal(s.n, 5);
    assert_memory_equal(s.v, want, sizeof want);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(ps_labels_find(s.v, s.n, want[i]), (long)i);
    }
    assert_int_equal(ps_labels_find(s.v, s.n, 2), -1);
    assert_int_equal(ps_labels_find(s.v, s.n, 101), -1);
    assert_int_equal(ps_labels_find(s.v, 0, 1), -1);
    assert_false(ps_labels_is_identity(s.v, s.n));
    ps_labels_fini(&s);
    assert_null(s.v);
    const int32_t id[] = {0, 1, 2, 3};
    assert_true(ps_labels_is_identity(id, 4));
    assert_false(ps_labels_is_identity(id + 1, 3));
    assert_false(ps_labels_is_identity(id, 0));
}

static void test_labels_format_briefly(void **state)
{
    (void)state;
    char buf[160];
    const int32_t pm[] = {-1, 1};
    ps_labels_format(pm, 2, buf, sizeof buf);
    assert_string_equal(buf, "-1, 1");
    int32_t many[50];
    for (int i = 0; i < 50; i++) {
        many[i] = i * 2;
    }
    ps_labels_format(many, 50, buf, sizeof buf);
    assert_string_equal(buf, "0, 2, 4, 6, 8, ..., 98 (50 labels)");
    ps_labels_format(many, 7, buf, sizeof buf);
    assert_string_equal(buf, "0, 2, 4, 6, 8, 10, 12");
}

static void test_labels_parse_strictly(void **state)
{
    (void)state;
    ps_labels s = {0};
    char err[200];
    assert_int_equal(ps_labels_parse("3,-1,+7", &s, err, sizeof err), 0);
    const int32_t want[] = {-1, 3, 7};
    assert_int_equal(s.n, 3);
    assert_memory_equal(s.v, want, sizeof want);
    ps_labels_fini(&s);
    /* Checking only: no set, no allocation. */
    assert_int_equal(ps_labels_parse("0,1", NULL, NULL, 0), 0);
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"", "at least two"},      {"1", "at least two"},      {"1,", "not a list"},
        {",1,2", "not a list"},    {"1,,2", "not a list"},     {"1,a", "not a list"},
        {"1.5,2", "not a list"},   {"1 ,2", "not a list"},     {"-,1", "not a list"},
        {"1,2,1", "listed twice"}, {"1,2147483648", "32-bit"}, {"-2147483649,0", "32-bit"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ps_labels_parse(bad[i].text, NULL, err, sizeof err), PS_EINVAL);
        if (!strstr(err, bad[i].why)) {
            fail_msg("'%s': %s", bad[i].text, err);
        }
    }
}

static void test_labels_cap_the_set(void **state)
{
    (void)state;
    ps_labels s = {0};
    /* In descending order: every insertion shifts the whole set. */
    for (int32_t i = PS_LABELS_MAX; i > 0; i--) {
        assert_int_equal(ps_labels_add(&s, i), 0);
    }
    assert_int_equal(ps_labels_add(&s, 1), 0); /* present: fine */
    assert_int_equal(ps_labels_add(&s, -5), PS_ERANGE);
    assert_int_equal(s.n, PS_LABELS_MAX);
    assert_int_equal(s.v[0], 1);
    ps_labels_fini(&s);
}

static void test_labels_survive_failed_allocations(void **state)
{
    (void)state;
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; rc == PS_ENOMEM && n < 100; n++) {
        ps_labels s = {0};
        ps_test_fail_alloc(n);
        rc = 0;
        for (int32_t i = 0; i < 300 && rc == 0; i++) {
            rc = ps_labels_add(&s, (i * 7919) % 300);
        }
        ps_test_fail_alloc(-1);
        assert_true(rc == 0 || rc == PS_ENOMEM);
        assert_true(rc != 0 || (s.n == 300 && ps_labels_is_identity(s.v, s.n)));
        ps_labels_fini(&s);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_labels_keep_sorted_distinct_and_find),
        T(test_labels_format_briefly),
        T(test_labels_parse_strictly),
        T(test_labels_cap_the_set),
        T(test_labels_survive_failed_allocations),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
