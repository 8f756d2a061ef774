/* Shared by the tests that run roles on the loop comm backend: n ranks as
 * threads of this process, each logging under its rank. A rank whose
 * function returns an error marks the world failed (what cli/ does with
 * ps_comm_abort under MPI), so the other ranks get PS_EPEER instead of
 * waiting for ever. Rank functions must not use cmocka's assertions (they
 * jump to the main thread's stack): they return an rc and leave what they
 * saw in their argument, and the test checks it after the join. Include
 * after ps_test.h and use ps_test_setup_mt. */
#ifndef PS_TEST_LOOP_H
#define PS_TEST_LOOP_H

#include <pthread.h>

#include "common/comm.h"
#include "common/log.h"

#define PS_TEST_MAX_RANKS 16

typedef int (*ps_test_rank_fn)(ps_comm *comm, void *arg);

typedef struct {
    ps_comm *comm;
    ps_test_rank_fn fn;
    void *arg;
    int rc;
    pthread_t tid;
} ps_test_rank;

static void *ps_test_rank_main(void *p)
{
    ps_test_rank *r = p;
    ps_log_set_rank(ps_comm_rank(r->comm));
    r->rc = r->fn(r->comm, r->arg);
    if (r->rc) {
        ps_comm_loop_fail(r->comm);
    }
    return NULL;
}

/* Runs fns[i](rank i's comm, args[i]) for i < n (n <= PS_TEST_MAX_RANKS)
 * in n threads over a new loop world, joins them, destroys the world and
 * returns each rank's rc in rcs[i]. Fails the test if the world or a
 * thread cannot be made. Call from the main thread. */
static inline void ps_test_run_ranks(int n, const ps_test_rank_fn *fns, void *const *args, int *rcs)
{
    ps_comm *comms[PS_TEST_MAX_RANKS];
    ps_test_rank ranks[PS_TEST_MAX_RANKS];
    assert_true(n >= 1 && n <= PS_TEST_MAX_RANKS);
    assert_int_equal(ps_comm_loop_create(comms, n), 0);
    for (int i = 0; i < n; i++) {
        ranks[i] = (ps_test_rank){.comm = comms[i], .fn = fns[i], .arg = args ? args[i] : NULL};
        assert_int_equal(pthread_create(&ranks[i].tid, NULL, ps_test_rank_main, &ranks[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(ranks[i].tid, NULL);
        rcs[i] = ranks[i].rc;
        ps_comm_destroy(&comms[i]);
    }
}

/* The same function on every rank; rank i's argument is element i of the
 * array at base (elements of size bytes), or NULL when base is NULL. */
static inline void ps_test_run_same(int n, ps_test_rank_fn fn, void *base, size_t size, int *rcs)
{
    ps_test_rank_fn fns[PS_TEST_MAX_RANKS];
    void *args[PS_TEST_MAX_RANKS];
    assert_true(n >= 1 && n <= PS_TEST_MAX_RANKS);
    for (int i = 0; i < n; i++) {
        fns[i] = fn;
        args[i] = base ? (char *)base + (size_t)i * size : NULL;
    }
    ps_test_run_ranks(n, fns, args, rcs);
}

#endif
