/* Tests for common/stats: counters by peer and tag, the phase switch at the
 * first push or pull, the staleness bins, and the counting done by the comm
 * dispatchers on a loop world (what was sent is what was received; a
 * blocking wait is timed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/comm.h"
#include "common/stats.h"
#include "tests/unit/ps_test.h"

static void test_stats_counts_by_peer_and_tag(void **state)
{
    (void)state;
    ps_stats *s = NULL;
    assert_int_equal(ps_stats_create(&s, 3), 0);
    ps_stats_on_send(s, 1, PS_TAG_CTRL, 10, 0);
    ps_stats_on_send(s, 2, PS_TAG_CTRL, 5, 0);
    ps_stats_on_recv(s, 2, 77, 4, 0);            /* an uncounted tag goes to bin 0 */
    ps_stats_on_send(s, 7, PS_TAG_CTRL, 100, 0); /* outside the world: ignored */
    assert_int_equal(ps_stats_sent(s, 1, PS_TAG_CTRL).bytes, 10);
    assert_int_equal(ps_stats_sent(s, PS_ANY, PS_TAG_CTRL).bytes, 15);
    assert_int_equal(ps_stats_sent(s, PS_ANY, PS_ANY).msgs, 2);
    assert_int_equal(ps_stats_received(s, 2, 0).bytes, 4);
    assert_int_equal(ps_stats_received(s, PS_ANY, PS_TAG_PUSH).msgs, 0);
    /* Control messages do not end start-up; a pull does. */
    assert_int_equal(ps_stats_current(s), PS_PHASE_LOAD);
    ps_stats_on_send(s, 1, PS_TAG_PULL, 8, ps_comm_time());
    assert_int_equal(ps_stats_current(s), PS_PHASE_TRAIN);
    ps_stats_samples(s, 32);
    ps_stats_staleness(s, -3);
    ps_stats_staleness(s, 2);
    ps_stats_staleness(s, 1000);
    double v[PS_STATS_NVALS];
    ps_stats_record(s, v);
    assert_true(v[PS_SV_SAMPLES] == 32);
    assert_true(v[PS_SV_STALE + 0] == 1);
    assert_true(v[PS_SV_STALE + 2] == 1);
    assert_true(v[PS_SV_STALE + PS_STATS_NSTALE - 1] == 1);
    assert_true(v[PS_SV_SENT_BYTES(PS_TAG_PULL)] == 8);
    assert_true(v[PS_SV_PHASE_BYTES + PS_PHASE_TRAIN] == 8);
    assert_true(v[PS_SV_PHASE_BYTES + PS_PHASE_LOAD] == 19);
    ps_stats_destroy(&s);
    assert_null(s);
    ps_stats_destroy(&s);
}

static void test_stats_comm_counts_both_ends(void **state)
{
    (void)state;
    ps_comm *c[2];
    assert_int_equal(ps_comm_loop_create(c, 2), 0);
    ps_bytes b = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ps_grow((void **)&b.data, &b.cap, 100, 1), 0);
        b.len = 10 + (size_t)i;
        assert_int_equal(ps_comm_send(c[0], 1, PS_TAG_PUSH, &b), 0);
    }
    ps_free(b.data);
    ps_comm_msg m;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ps_comm_wait(c[1], 0, PS_TAG_PUSH, "test", &m), 0);
    }
    ps_stats *s0 = ps_comm_stats(c[0]), *s1 = ps_comm_stats(c[1]);
    assert_int_equal(ps_stats_sent(s0, 1, PS_TAG_PUSH).bytes, 33);
    assert_int_equal(ps_stats_received(s1, 0, PS_TAG_PUSH).bytes, 33);
    assert_int_equal(ps_stats_received(s1, 0, PS_TAG_PUSH).msgs, 3);
    assert_int_equal(ps_stats_sent(s1, PS_ANY, PS_ANY).msgs, 0);
    ps_comm_destroy(&c[0]);
    ps_comm_destroy(&c[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stats_counts_by_peer_and_tag, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_stats_comm_counts_both_ends, ps_test_setup_mt,
                                        ps_test_teardown_mt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
