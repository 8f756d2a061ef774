/* Allocation for every adamps module. All heap memory goes through these so
 * tests can swap in cmocka's checked allocator or fail the Nth allocation.
 * They return NULL on failure; callers turn that into PS_ENOMEM. */
#ifndef PS_MEM_H
#define PS_MEM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    void *(*malloc_fn)(size_t size);
    void *(*realloc_fn)(void *ptr, size_t size);
    void (*free_fn)(void *ptr);
} ps_mem_hooks;

/* Replaces the allocator; NULL restores the C library's. Not thread-safe:
 * call before any allocation, or between tests. */
void ps_mem_set_hooks(const ps_mem_hooks *hooks);

void *ps_malloc(size_t size);
/* Checks n * size for overflow; memory is zeroed. */
void *ps_calloc(size_t n, size_t size);
void *ps_realloc(void *ptr, size_t size);
/* Grows an array: *cap doubles until it holds need elements. Returns 0 or
 * PS_ENOMEM (then *arr is unchanged). */
int ps_grow(void **arr, size_t *cap, size_t need, size_t elem_size);
/* ps_grow, and the elements it adds past the old capacity start zeroed
 * (held-message slots, bitmaps: arrays whose slots are read before they
 * are written). On failure nothing changes. */
int ps_grow_zeroed(void **arr, size_t *cap, size_t need, size_t elem_size);
void ps_free(void *ptr);
/* Returns a new copy of the NUL-terminated s, or NULL when out of memory;
 * the caller frees it with ps_free(). */
char *ps_strdup(const char *s);
/* align is a power of two >= sizeof(void *); free with ps_aligned_free. */
void *ps_aligned_alloc(size_t align, size_t size);
void ps_aligned_free(void *ptr);

/* A growable byte buffer owned by the caller (data freed with ps_free). */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} ps_bytes;

/* Grows array lvalue arr (capacity lvalue cap) to hold need elements:
 * ps_grow with the element size taken from the array. The capacity check
 * is inline, so growing by one per element (a plan's slots) costs no call
 * while it fits. need is evaluated twice: no side effects. */
#define PS_GROW(arr, cap, need)                                                                    \
    ((size_t)(need) <= (cap) ? 0 : ps_grow((void **)&(arr), &(cap), (need), sizeof *(arr)))
/* PS_GROW with ps_grow_zeroed. */
#define PS_GROW_ZEROED(arr, cap, need)                                                             \
    ((size_t)(need) <= (cap) ? 0 : ps_grow_zeroed((void **)&(arr), &(cap), (need), sizeof *(arr)))

/* Runs stmt for j in [0, n) in blocks of the constant vb, then a scalar
 * tail: -O2's cheap vectoriser only vectorises loops whose trip count it
 * knows (the optimizer kernels and the workers' element-wise passes). */
#define PS_FOR_BLOCKED(j, n, vb, stmt)                                                             \
    do {                                                                                           \
        size_t blk_ = 0;                                                                           \
        for (; blk_ + (vb) <= (n); blk_ += (vb)) {                                                 \
            for (size_t j = blk_; j < blk_ + (vb); j++) {                                          \
                stmt;                                                                              \
            }                                                                                      \
        }                                                                                          \
        for (size_t j = blk_; j < (n); j++) {                                                      \
            stmt;                                                                                  \
        }                                                                                          \
    } while (0)

#endif
