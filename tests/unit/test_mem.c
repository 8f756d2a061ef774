/* Tests for common/mem: overflow checks, ps_grow's doubling and its
 * failure contract, aligned blocks, and that the hooks really route every
 * allocation (so cmocka's leak and overrun checks, and the OOM sweeps of
 * every other test binary, see them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/mem.h"
#include "tests/unit/ps_test.h"

static void test_mem_calloc_overflow_returns_null(void **state)
{
    (void)state;
    ps_test_fail_alloc(-1);
    assert_null(ps_calloc(SIZE_MAX / 2 + 1, 2));
    assert_null(ps_calloc(SIZE_MAX, SIZE_MAX));
    assert_null(ps_calloc((SIZE_MAX >> 3) + 1, 8));
    /* The overflow is caught before the allocator is asked. */
    ps_test_fail_alloc(0);
    assert_null(ps_calloc(SIZE_MAX / 4 + 1, 4));
    assert_int_equal(ps_test_nalloc, 0);
    ps_test_fail_alloc(-1);
}

/* Memory handed out by this hook is dirty, so calloc must clear it. */
static void *dirty_malloc(size_t n)
{
    void *p = test_malloc(n);
    if (p) {
        memset(p, 0xa5, n);
    }
    return p;
}

static void test_mem_calloc_zeroes_and_zero_size_is_not_null(void **state)
{
    (void)state;
    static const ps_mem_hooks h = {dirty_malloc, ps_test_realloc, ps_test_free};
    ps_mem_set_hooks(&h);
    unsigned char *p = ps_calloc(37, 3);
    assert_non_null(p);
    for (size_t i = 0; i < 37 * 3; i++) {
        assert_int_equal(p[i], 0);
    }
    ps_free(p);
    /* Size 0 still gives a unique pointer that ps_free accepts. */
    void *z = ps_malloc(0), *z2 = ps_calloc(0, 8);
    assert_non_null(z);
    assert_non_null(z2);
    assert_ptr_not_equal(z, z2);
    ps_free(z);
    ps_free(z2);
    ps_free(NULL);
}

static void test_mem_grow_doubles_and_preserves_contents(void **state)
{
    (void)state;
    int *a = NULL;
    size_t cap = 0;
    assert_int_equal(PS_GROW(a, cap, 5), 0);
    assert_int_equal(cap, 16); /* first growth: 16 elements */
    for (int i = 0; i < 16; i++) {
        a[i] = i * 7;
    }
    assert_int_equal(PS_GROW(a, cap, 17), 0);
    assert_int_equal(cap, 32);
    assert_int_equal(PS_GROW(a, cap, 100), 0);
    assert_int_equal(cap, 128); /* 32 -> 64 -> 128 */
    for (int i = 0; i < 16; i++) {
        assert_int_equal(a[i], i * 7);
    }
    a[127] = 1; /* the whole capacity is usable (cmocka checks the guard) */
    /* Enough room already: no allocation at all. */
    int *before = a;
    ps_test_fail_alloc(0);
    assert_int_equal(PS_GROW(a, cap, 128), 0);
    assert_int_equal(ps_test_nalloc, 0);
    assert_ptr_equal(a, before);
    ps_test_fail_alloc(-1);
    ps_free(a);
    /* A non-zero start doubles from there. */
    double *d = NULL;
    size_t dcap = 3;
    d = ps_malloc(3 * sizeof *d);
    assert_non_null(d);
    assert_int_equal(PS_GROW(d, dcap, 4), 0);
    assert_int_equal(dcap, 6);
    ps_free(d);
}

static void test_mem_grow_failure_leaves_array_unchanged(void **state)
{
    (void)state;
    int *a = NULL;
    size_t cap = 0;
    assert_int_equal(PS_GROW(a, cap, 16), 0);
    for (int i = 0; i < 16; i++) {
        a[i] = 100 + i;
    }
    int *before = a;
    ps_test_fail_alloc(0);
    assert_int_equal(PS_GROW(a, cap, 17), PS_ENOMEM);
    assert_ptr_equal(a, before);
    assert_int_equal(cap, 16);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(a[i], 100 + i);
    }
    /* Sizes that overflow fail without asking the allocator. */
    ps_test_fail_alloc(0);
    assert_int_equal(PS_GROW(a, cap, SIZE_MAX), PS_ENOMEM);
    assert_int_equal(ps_grow((void **)&a, &cap, SIZE_MAX / 4, 64), PS_ENOMEM);
    assert_int_equal(ps_test_nalloc, 0);
    assert_ptr_equal(a, before);
    assert_int_equal(cap, 16);
    ps_test_fail_alloc(-1);
    ps_free(a);
}

/* A realloc whose new block is full of 0xa5 past what it copies, as a
 * reused block may be: what ps_grow_zeroed must clear. It moves one block
 * at a time; dirty_size is that block's size. */
static size_t dirty_size;

static void *dirty_realloc(void *p, size_t n)
{
    unsigned char *q = test_malloc(n);
    if (q) {
        memset(q, 0xa5, n);
        if (p) {
            memcpy(q, p, dirty_size < n ? dirty_size : n);
            test_free(p);
        }
        dirty_size = n;
    }
    return q;
}

/* The added tail is zero, what was there is kept, and a failed grow
 * changes nothing. */
static void test_mem_grow_zeroed_clears_only_the_new_tail(void **state)
{
    static const ps_mem_hooks dirty = {ps_test_malloc, dirty_realloc, ps_test_free};
    ps_mem_set_hooks(&dirty);
    dirty_size = 0;
    int *a = NULL;
    size_t cap = 0;
    assert_int_equal(PS_GROW_ZEROED(a, cap, 3), 0);
    for (size_t i = 0; i < cap; i++) {
        assert_int_equal(a[i], 0);
        a[i] = 7;
    }
    size_t old = cap;
    assert_int_equal(PS_GROW_ZEROED(a, cap, old + 1), 0);
    assert_true(cap > old);
    for (size_t i = 0; i < cap; i++) {
        assert_int_equal(a[i], i < old ? 7 : 0);
    }
    a[cap - 1] = 9;
    old = cap;
    ps_test_setup(state); /* the checked allocator, to fail the next grow */
    ps_test_fail_alloc(0);
    assert_int_equal(PS_GROW_ZEROED(a, cap, old + 1), PS_ENOMEM);
    ps_test_fail_alloc(-1);
    assert_int_equal(cap, old);
    assert_int_equal(a[cap - 1], 9);
    ps_free(a);
}

static void test_mem_strdup_copies_and_fails_cleanly(void **state)
{
    (void)state;
    const char *src[] = {"", "a", "path/to/some file.npy"};
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
        char *d = ps_strdup(src[i]);
        assert_non_null(d);
        assert_ptr_not_equal(d, src[i]);
        assert_string_equal(d, src[i]); /* cmocka's guard bytes catch a short copy */
        ps_free(d);
    }
    ps_test_fail_alloc(0);
    assert_null(ps_strdup("x"));
    assert_int_equal(ps_test_nalloc, 1);
    ps_test_fail_alloc(-1);
}

static void test_mem_aligned_alloc_aligns_16_to_4096(void **state)
{
    (void)state;
    for (size_t align = 16; align <= 4096; align *= 2) {
        for (size_t size = 1; size <= 1000; size += 333) {
            unsigned char *p = ps_aligned_alloc(align, size);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % align, 0);
            memset(p, 0x5a, size); /* cmocka's guard bytes catch an overrun */
            ps_aligned_free(p);
        }
    }
    ps_aligned_free(NULL);
}

static void test_mem_aligned_alloc_rejects_bad_alignment(void **state)
{
    (void)state;
    const size_t bad[] = {0, 1, 2, 4, 3, 24, 48, 100, 4095, 4097};
    ps_test_fail_alloc(0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i] >= sizeof(void *) && (bad[i] & (bad[i] - 1)) == 0) {
            continue; /* 8 on a 64-bit machine is legal */
        }
        assert_null(ps_aligned_alloc(bad[i], 64));
    }
    assert_null(ps_aligned_alloc(64, SIZE_MAX - 10)); /* size + padding overflows */
    assert_int_equal(ps_test_nalloc, 0);
    /* And a failing hook gives NULL, not a pointer near NULL. */
    ps_test_fail_alloc(0);
    assert_null(ps_aligned_alloc(64, 64));
    ps_test_fail_alloc(-1);
}

static long count_malloc, count_realloc, count_free;

static void *counting_malloc(size_t n)
{
    count_malloc++;
    return test_malloc(n);
}

static void *counting_realloc(void *p, size_t n)
{
    count_realloc++;
    return test_realloc(p, n);
}

static void counting_free(void *p)
{
    count_free++;
    test_free(p);
}

static void test_mem_hooks_route_every_call(void **state)
{
    (void)state;
    static const ps_mem_hooks h = {counting_malloc, counting_realloc, counting_free};
    count_malloc = count_realloc = count_free = 0;
    ps_mem_set_hooks(&h);
    void *a = ps_malloc(10), *b = ps_calloc(2, 5), *c = ps_aligned_alloc(64, 10);
    b = ps_realloc(b, 100);
    size_t cap = 0;
    void *g = NULL;
    assert_int_equal(ps_grow(&g, &cap, 3, 4), 0);
    assert_int_equal(count_malloc, 3);
    assert_int_equal(count_realloc, 2); /* ps_realloc and ps_grow */
    ps_free(a);
    ps_free(b);
    ps_aligned_free(c);
    ps_free(g);
    ps_free(NULL); /* does not reach the hook */
    assert_int_equal(count_free, 4);
    /* NULL restores the C library's allocator: the hooks see nothing more
     * (plain free() is cmocka's test_free in this file, so ps_free it). */
    ps_mem_set_hooks(NULL);
    void *p = ps_malloc(8);
    assert_non_null(p);
    ps_free(p);
    assert_int_equal(count_malloc, 3);
    assert_int_equal(count_free, 4);
}

/* A leaking test must fail under ps_test_setup: run one in a child with its
 * output discarded and check its exit status. */
static void leaky_test(void **state)
{
    (void)state;
    void *p = ps_malloc(24);
    (void)p;
}

static void test_mem_hooks_let_cmocka_catch_leaks(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *devnull = fopen("/dev/null", "w");
        if (devnull) {
            dup2(fileno(devnull), 1);
            dup2(fileno(devnull), 2);
        }
        const struct CMUnitTest leak[] = {
            cmocka_unit_test_setup_teardown(leaky_test, ps_test_setup, ps_test_teardown),
        };
        /* _exit: the leaked block must not reach LeakSanitizer too. */
        _exit(cmocka_run_group_tests(leak, NULL, NULL) == 0 ? 0 : 3);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_mem_calloc_overflow_returns_null),
        T(test_mem_calloc_zeroes_and_zero_size_is_not_null),
        T(test_mem_grow_doubles_and_preserves_contents),
        T(test_mem_grow_failure_leaves_array_unchanged),
        T(test_mem_grow_zeroed_clears_only_the_new_tail),
        T(test_mem_strdup_copies_and_fails_cleanly),
        T(test_mem_aligned_alloc_aligns_16_to_4096),
        T(test_mem_aligned_alloc_rejects_bad_alignment),
        T(test_mem_hooks_route_every_call),
        T(test_mem_hooks_let_cmocka_catch_leaks),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
