#include "common/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static ps_mem_hooks hooks = {malloc, realloc, free};

void ps_mem_set_hooks(const ps_mem_hooks *h)
{
    if (h) {
        hooks = *h;
    } else {
        hooks = (ps_mem_hooks){malloc, realloc, free};
    }
}

void *ps_malloc(size_t size)
{
    return hooks.malloc_fn(size ? size : 1);
}

void *ps_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        return NULL;
    }
    void *p = ps_malloc(n * size);
    if (p) {
        memset(p, 0, n * size);
    }
    return p;
}

void *ps_realloc(void *ptr, size_t size)
{
    return hooks.realloc_fn(ptr, size ? size : 1);
}

int ps_grow(void **arr, size_t *cap, size_t need, size_t elem_size)
{
    if (need <= *cap) {
        return 0;
    }
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2) {
            return PS_ENOMEM;
        }
        n *= 2;
    }
    if (n > SIZE_MAX / elem_size) {
        return PS_ENOMEM;
    }
    void *p = ps_realloc(*arr, n * elem_size);
    if (!p) {
        return PS_ENOMEM;
    }
    *arr = p;
    *cap = n;
    return 0;
}

int ps_grow_zeroed(void **arr, size_t *cap, size_t need, size_t elem_size)
{
    size_t old = *cap;
    int rc = ps_grow(arr, cap, need, elem_size);
    if (rc == 0 && *cap > old) {
        memset((char *)*arr + old * elem_size, 0, (*cap - old) * elem_size);
    }
    return rc;
}

void ps_free(void *ptr)
{
    if (ptr) {
        hooks.free_fn(ptr);
    }
}

char *ps_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ps_malloc(n);
    if (d) {
        memcpy(d, s, n);
    }
    return d;
}

/* Over-allocates through the hook and keeps the original pointer just below
 * the aligned block, so the failure-injection hooks cover aligned memory too. */
void *ps_aligned_alloc(size_t align, size_t size)
{
    if (align < sizeof(void *) || (align & (align - 1)) ||
        size > SIZE_MAX - align - sizeof(void *)) {
        return NULL;
    }
    void *raw = ps_malloc(size + align + sizeof(void *));
    if (!raw) {
        return NULL;
    }
    uintptr_t p = ((uintptr_t)raw + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1);
    ((void **)p)[-1] = raw;
    return (void *)p;
}

void ps_aligned_free(void *ptr)
{
    if (ptr) {
        ps_free(((void **)ptr)[-1]);
    }
}
