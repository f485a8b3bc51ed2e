// Counts malloc, calloc, realloc and the aligned allocators of a whole process (issue 17, item 5), loaded with
// LD_PRELOAD; at exit it writes the count to the file named by MALLOC_COUNT_OUT. bench_match.py subtracts the
// count of a run on an empty input (list loading) from a run on a stream: what is left is allocations per selector.
// Build: cc -O2 -shared -fPIC -o libmalloc_count.so malloc_count.c
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static uint64_t calls;

static void *counted(void *p) {
    if (p) __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    return p;
}

void *malloc(size_t n) { return counted(__libc_malloc(n)); }
void *calloc(size_t k, size_t n) { return counted(__libc_calloc(k, n)); }
void *realloc(void *p, size_t n) { return counted(__libc_realloc(p, n)); }
void *memalign(size_t a, size_t n) { return counted(__libc_memalign(a, n)); }
void *aligned_alloc(size_t a, size_t n) { return counted(__libc_memalign(a, n)); }
int posix_memalign(void **out, size_t a, size_t n) {
    void *p = counted(__libc_memalign(a, n));
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("MALLOC_COUNT_OUT");
    if (!path) return;
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "%llu\n", (unsigned long long)__atomic_load_n(&calls, __ATOMIC_RELAXED));
    fclose(f);
}
