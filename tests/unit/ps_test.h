/* Shared by the cmocka unit tests: routes ps_malloc through cmocka's checked
 * allocator (leaks and overruns fail the test) and can fail the Nth
 * allocation, for sweeps that prove every cleanup path (libuv's
 * test-loop-oom.c). Also the file chores several tests share: a mkdtemp
 * directory removed recursively, writing and reading back small files, and
 * capturing stderr to check log lines. Include after <cmocka.h>, and put
 * <stdlib.h> before <cmocka.h> (cmocka's malloc macros break it if it comes
 * later; mkdtemp needs it). Every helper is static inline so a test that
 * uses none gets no warning. */
#ifndef PS_TEST_H
#define PS_TEST_H

#include <dirent.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Installs h with no injected failures. */
static inline int ps_test_use_hooks(const ps_mem_hooks *h)
{
    ps_test_fail_at = -1;
    ps_test_nalloc = 0;
    ps_mem_set_hooks(h);
    return 0;
}

/* Use as cmocka setup: checked allocator, no injected failures. */
static inline int ps_test_setup(void **state)
{
    (void)state;
    static const ps_mem_hooks h = {ps_test_malloc, ps_test_realloc, ps_test_free};
    return ps_test_use_hooks(&h);
}

static inline int ps_test_teardown(void **state)
{
    (void)state;
    ps_mem_set_hooks(NULL);
    return 0;
}

/* Tests whose threads allocate (loop comm ranks) cannot use cmocka's
 * allocator: cmocka 1.1 keeps its block list in thread-local storage, so a
 * block allocated in one thread and freed in another (every message buffer
 * of the loop backend) corrupts it, and a thread's leaks are never checked.
 * So these tests get a small checked allocator of their own behind one
 * mutex: a list of live blocks with a guard after each, checked on free and
 * by ps_test_teardown_mt (leaks and overruns fail the test), and the same
 * Nth-allocation failure and counting as ps_test_setup, over every thread.
 * Call ps_test_fail_alloc only while no other thread allocates. */
typedef union ps_test_block {
    struct {
        union ps_test_block *prev, *next;
        size_t size;
        uint64_t magic;
    } h;
    max_align_t align; /* payload alignment, as malloc's */
} ps_test_block;

/* The C library's own malloc and free: cmocka.h redefines both names. */
#pragma push_macro("malloc")
#pragma push_macro("free")
#undef malloc
#undef free

#define PS_TEST_MAGIC 0x70735f746573745full
#define PS_TEST_GUARD 16

static pthread_mutex_t ps_test_mem_lock = PTHREAD_MUTEX_INITIALIZER;
static ps_test_block ps_test_live = {.h = {&ps_test_live, &ps_test_live, 0, 0}};

static void ps_test_block_check(const ps_test_block *b)
{
    const unsigned char *guard = (const unsigned char *)(b + 1) + b->h.size;
    int ok = b->h.magic == PS_TEST_MAGIC;
    for (int i = 0; ok && i < PS_TEST_GUARD; i++) {
        ok = guard[i] == 0xab;
    }
    if (!ok) {
        fprintf(stderr, "ps_test: block %p (%zu bytes) overrun or not ours\n", (void *)(b + 1),
                b->h.magic == PS_TEST_MAGIC ? b->h.size : 0);
        abort();
    }
}

static void *ps_test_malloc_mt(size_t n)
{
    ps_test_block *b = NULL;
    pthread_mutex_lock(&ps_test_mem_lock);
    if (!(ps_test_fail_at >= 0 && ps_test_nalloc++ == ps_test_fail_at) &&
        (b = malloc(sizeof *b + n + PS_TEST_GUARD))) {
        b->h.size = n;
        b->h.magic = PS_TEST_MAGIC;
        memset((unsigned char *)(b + 1) + n, 0xab, PS_TEST_GUARD);
        b->h.next = &ps_test_live;
        b->h.prev = ps_test_live.h.prev;
        ps_test_live.h.prev->h.next = b;
        ps_test_live.h.prev = b;
    }
    pthread_mutex_unlock(&ps_test_mem_lock);
    return b ? b + 1 : NULL;
}

static void ps_test_free_mt(void *p)
{
    if (!p) {
        return;
    }
    ps_test_block *b = (ps_test_block *)p - 1;
    pthread_mutex_lock(&ps_test_mem_lock);
    ps_test_block_check(b);
    b->h.prev->h.next = b->h.next;
    b->h.next->h.prev = b->h.prev;
    b->h.magic = 0;
    pthread_mutex_unlock(&ps_test_mem_lock);
    free(b);
}

static void *ps_test_realloc_mt(void *p, size_t n)
{
    void *q = ps_test_malloc_mt(n);
    if (q && p) {
        size_t old = ((ps_test_block *)p - 1)->h.size;
        memcpy(q, p, old < n ? old : n);
        ps_test_free_mt(p);
    }
    return q;
}

/* Use as cmocka setup when the test starts threads that allocate. */
static inline int ps_test_setup_mt(void **state)
{
    (void)state;
    static const ps_mem_hooks h = {ps_test_malloc_mt, ps_test_realloc_mt, ps_test_free_mt};
    return ps_test_use_hooks(&h);
}

/* Use as cmocka teardown with ps_test_setup_mt (every thread joined):
 * fails the test if a block is still live, listing the sizes, or if a
 * guard was overwritten. */
static inline int ps_test_teardown_mt(void **state)
{
    (void)state;
    ps_mem_set_hooks(NULL);
    int leaks = 0;
    pthread_mutex_lock(&ps_test_mem_lock);
    while (ps_test_live.h.next != &ps_test_live) {
        ps_test_block *b = ps_test_live.h.next;
        ps_test_block_check(b);
        fprintf(stderr, "ps_test: leaked a block of %zu bytes\n", b->h.size);
        ps_test_live.h.next = b->h.next;
        b->h.next->h.prev = &ps_test_live;
        free(b);
        leaks++;
    }
    pthread_mutex_unlock(&ps_test_mem_lock);
    return leaks ? -1 : 0;
}

#pragma pop_macro("free")
#pragma pop_macro("malloc")

/* Fails allocation number n (0-based) from now on; -1 turns it off. */
static inline void ps_test_fail_alloc(long n)
{
    ps_test_fail_at = n;
    ps_test_nalloc = 0;
}

/* Creates a fresh directory /tmp/adamps_test_<name>.XXXXXX; its path goes to
 * dir (cap bytes). Returns 0, or -1 when the name does not fit or mkdtemp
 * fails, so it can end a cmocka group setup. */
static inline int ps_test_tmpdir_create(char *dir, size_t cap, const char *name)
{
    int n = snprintf(dir, cap, "/tmp/adamps_test_%s.XXXXXX", name);
    if (n < 0 || (size_t)n >= cap) {
        return -1;
    }
    return mkdtemp(dir) ? 0 : -1;
}

/* Removes path and, if it is a directory, everything under it (without
 * following symlinks). Returns 0, or -1 if anything could not be removed. */
static inline int ps_test_rmtree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        return unlink(path);
    }
    int rc = 0;
    DIR *d = opendir(path);
    if (!d) {
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char sub[1024];
        int n = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (n < 0 || (size_t)n >= sizeof sub || ps_test_rmtree(sub) != 0) {
            rc = -1;
        }
    }
    closedir(d);
    if (rmdir(path) != 0) {
        rc = -1;
    }
    return rc;
}

/* Writes len bytes of data to path (created or truncated); fails the test if
 * anything goes wrong. */
static inline void ps_test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Writes the NUL-terminated text (without the NUL) to path. */
static inline void ps_test_write_text(const char *path, const char *text)
{
    ps_test_write_file(path, text, strlen(text));
}

/* Reads up to cap - 1 bytes of path into buf and NUL-terminates them, so
 * text files can be compared as strings. Returns the number of bytes read;
 * fails the test if path cannot be opened. */
static inline size_t ps_test_read_file(const char *path, void *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    ((char *)buf)[n] = '\0';
    return n;
}

/* Redirects fd 2 to a temporary file between begin and end, to check what
 * PS_LOG wrote. Not nestable. */
typedef struct {
    int saved_fd;
    FILE *tmp;
} ps_test_capture;

static inline void ps_test_capture_begin(ps_test_capture *c)
{
    fflush(stderr);
    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved_fd = dup(2);
    assert_true(c->saved_fd >= 0);
    assert_int_equal(dup2(fileno(c->tmp), 2), 2);
}

/* Restores stderr and returns everything written since begin, NUL-ended;
 * the caller test_free()s it. */
static inline char *ps_test_capture_end(ps_test_capture *c)
{
    fflush(stderr);
    assert_int_equal(dup2(c->saved_fd, 2), 2);
    close(c->saved_fd);
    /* stderr wrote through fd 2, so the FILE's own offset knows nothing. */
    assert_int_equal(fseek(c->tmp, 0, SEEK_END), 0);
    long n = ftell(c->tmp);
    assert_true(n >= 0);
    rewind(c->tmp);
    char *buf = test_malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, c->tmp);
    buf[got] = '\0';
    fclose(c->tmp);
    return buf;
}

/* Number of newlines in s: one per complete log line. */
static inline size_t ps_test_count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += *s == '\n';
    }
    return n;
}

/* Runs `call` (an int expression) with stderr captured; fails the test
 * unless it returns want and logged a line containing text (the log is
 * printed when the text is missing). */
#define PS_TEST_EXPECT_LOG(call, want, text)                                                       \
    do {                                                                                           \
        ps_test_capture cap_;                                                                      \
        ps_test_capture_begin(&cap_);                                                              \
        int rc_ = (call);                                                                          \
        char *log_ = ps_test_capture_end(&cap_);                                                   \
        if (!strstr(log_, (text))) {                                                               \
            fprintf(stderr, "log was: %s\n", log_);                                                \
        }                                                                                          \
        assert_int_equal(rc_, (want));                                                             \
        assert_non_null(strstr(log_, (text)));                                                     \
        test_free(log_);                                                                           \
    } while (0)

#endif
