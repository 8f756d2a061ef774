/* Shared by the cmocka unit tests: routes ps_malloc through cmocka's checked
 * allocator (leaks and overruns fail the test) and can fail the Nth
 * allocation, for sweeps that prove every cleanup path (libuv's
 * test-loop-oom.c). Include after <cmocka.h>. */
#ifndef PS_TEST_H
#define PS_TEST_H

#include <stddef.h>
#include <string.h>

#include "common/mem.h"

static long ps_test_fail_at = -1; /* fail the allocation with this index */
static long ps_test_nalloc;

static void *ps_test_malloc(size_t n)
{
    if (ps_test_fail_at >= 0 && ps_test_nalloc++ == ps_test_fail_at) {
        return NULL;
    }
    return test_malloc(n);
}

static void *ps_test_realloc(void *p, size_t n)
{
    if (ps_test_fail_at >= 0 && ps_test_nalloc++ == ps_test_fail_at) {
        return NULL;
    }
    return test_realloc(p, n);
}

static void ps_test_free(void *p)
{
    test_free(p);
}

/* Use as cmocka setup: checked allocator, no injected failures. */
static inline int ps_test_setup(void **state)
{
    (void)state;
    static const ps_mem_hooks h = {ps_test_malloc, ps_test_realloc, ps_test_free};
    ps_test_fail_at = -1;
    ps_test_nalloc = 0;
    ps_mem_set_hooks(&h);
    return 0;
}

static inline int ps_test_teardown(void **state)
{
    (void)state;
    ps_mem_set_hooks(NULL);
    return 0;
}

/* Fails allocation number n (0-based) from now on; -1 turns it off. */
static inline void ps_test_fail_alloc(long n)
{
    ps_test_fail_at = n;
    ps_test_nalloc = 0;
}

#endif
