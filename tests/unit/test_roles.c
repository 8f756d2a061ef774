#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/err.h"
#include "cli/roles.h"

static int count(const int *v, int n)
{
    int c = 0;
    for (int i = 0; i < n; i++) {
        c += v[i];
    }
    return c;
}

static void test_roles_one_node_keeps_rank0_worker(void **state)
{
    (void)state;
    int nodes[5] = {0, 0, 0, 0, 0}, s[5];
    for (int n = 1; n < 5; n++) {
        assert_int_equal(ps_roles_assign(5, n, nodes, 1, s), 0);
        assert_int_equal(count(s, 5), n);
        assert_int_equal(s[0], 0);
    }
}

static void test_roles_spread_over_nodes(void **state)
{
    (void)state;
    /* Two nodes of four ranks: two servers land one per node. */
    int nodes[8] = {0, 0, 0, 0, 1, 1, 1, 1}, s[8];
    assert_int_equal(ps_roles_assign(8, 2, nodes, 2, s), 0);
    assert_int_equal(s[0] + s[1] + s[2] + s[3], 1);
    assert_int_equal(s[4] + s[5] + s[6] + s[7], 1);
    assert_int_equal(s[0], 0);
    /* Three servers: 2 + 1, never 3 + 0. */
    assert_int_equal(ps_roles_assign(8, 3, nodes, 2, s), 0);
    int a = s[0] + s[1] + s[2] + s[3], b = s[4] + s[5] + s[6] + s[7];
    assert_true((a == 2 && b == 1) || (a == 1 && b == 2));
}

static void test_roles_rejects_no_worker_left(void **state)
{
    (void)state;
    int nodes[3] = {0, 0, 0}, s[3];
    assert_int_equal(ps_roles_assign(3, 3, nodes, 1, s), PS_EINVAL);
    assert_int_equal(ps_roles_assign(3, 0, nodes, 1, s), PS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles_one_node_keeps_rank0_worker),
        cmocka_unit_test(test_roles_spread_over_nodes),
        cmocka_unit_test(test_roles_rejects_no_worker_left),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
