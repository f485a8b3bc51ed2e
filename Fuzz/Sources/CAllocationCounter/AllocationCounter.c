#define _GNU_SOURCE
#include "AllocationCounter.h"
#include <errno.h>
#include <malloc.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static uint64_t calls;
static int64_t live;
static int64_t peak;

static void *counted(void *p) {
    if (p) {
        __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
        int64_t now = __atomic_add_fetch(&live, (int64_t)malloc_usable_size(p), __ATOMIC_RELAXED);
        int64_t seen = __atomic_load_n(&peak, __ATOMIC_RELAXED);
        while (now > seen && !__atomic_compare_exchange_n(&peak, &seen, now, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        }
    }
    return p;
}

static void released(void *p) {
    if (p) __atomic_sub_fetch(&live, (int64_t)malloc_usable_size(p), __ATOMIC_RELAXED);
}

void *malloc(size_t n) { return counted(__libc_malloc(n)); }
void *calloc(size_t k, size_t n) { return counted(__libc_calloc(k, n)); }
void free(void *p) {
    released(p);
    __libc_free(p);
}
void *realloc(void *p, size_t n) {
    released(p);
    return counted(__libc_realloc(p, n));
}
void *memalign(size_t a, size_t n) { return counted(__libc_memalign(a, n)); }
void *aligned_alloc(size_t a, size_t n) { return counted(__libc_memalign(a, n)); }
int posix_memalign(void **out, size_t a, size_t n) {
    void *p = counted(__libc_memalign(a, n));
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

uint64_t tripline_alloc_calls(void) { return __atomic_load_n(&calls, __ATOMIC_RELAXED); }
int64_t tripline_alloc_live(void) { return __atomic_load_n(&live, __ATOMIC_RELAXED); }
int64_t tripline_alloc_peak(void) { return __atomic_load_n(&peak, __ATOMIC_RELAXED); }
void tripline_alloc_reset_peak(void) { __atomic_store_n(&peak, __atomic_load_n(&live, __ATOMIC_RELAXED), __ATOMIC_RELAXED); }
