/* tests/alloc_count.c — an LD_PRELOAD interposer that counts heap allocations.
 *
 * Built as a shared library (liblethe_alloc_count.so) and preloaded into
 * tests/test_noalloc.c. It forwards malloc, calloc, realloc, posix_memalign,
 * aligned_alloc and memalign to the C library and, while counting is switched on
 * (alloc_count_switch, which the test finds with dlsym), counts every call and keeps
 * the first ALLOC_COUNT_CALLERS return addresses, so the test can name the library
 * that allocated (dladdr). A test tool, not part of lethe: its counters are the only
 * writable file-scope state, and they have to be (an allocator has no caller to hold
 * them). dlsym itself may allocate before the real functions are known: those calls
 * are served from a small static arena that free and realloc recognise. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ALLOC_COUNT_CALLERS 4096

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);

static int counting, resolving;
static unsigned long count;
static void *callers[ALLOC_COUNT_CALLERS];
static _Alignas(64) char arena[16384];
static size_t arena_used;

static int in_arena(const void *p)
{
    return (const char *)p >= arena && (const char *)p < arena + sizeof arena;
}

static void *arena_alloc(size_t n)
{
    size_t at = (arena_used + 63) & ~(size_t)63;
    if (at + n > sizeof arena) return NULL;
    arena_used = at + n;
    return arena + at; /* zero: static storage, never reused */
}

static void resolve(void)
{
    if (real_malloc || resolving) return;
    resolving = 1;
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    real_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    resolving = 0;
}

static void note(void *caller)
{
    if (!__atomic_load_n(&counting, __ATOMIC_RELAXED)) return;
    unsigned long k = __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED);
    if (k < ALLOC_COUNT_CALLERS) callers[k] = caller;
}

/* on != 0: reset and start counting; 0: stop. Returns the count so far. */
unsigned long alloc_count_switch(int on)
{
    if (on) {
        __atomic_store_n(&count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&counting, 1, __ATOMIC_SEQ_CST);
    } else {
        __atomic_store_n(&counting, 0, __ATOMIC_SEQ_CST);
    }
    return __atomic_load_n(&count, __ATOMIC_RELAXED);
}

/* The return address of allocation k (< the count and < ALLOC_COUNT_CALLERS), or NULL. */
void *alloc_count_caller(unsigned long k)
{
    return k < ALLOC_COUNT_CALLERS && k < count ? callers[k] : NULL;
}

void *malloc(size_t n)
{
    resolve();
    if (!real_malloc) return arena_alloc(n);
    note(__builtin_return_address(0));
    return real_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    resolve();
    if (!real_calloc || resolving) return b && a > SIZE_MAX / b ? NULL : arena_alloc(a * b);
    note(__builtin_return_address(0));
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    resolve();
    note(__builtin_return_address(0));
    if (in_arena(p)) {
        size_t avail = (size_t)(arena + sizeof arena - (char *)p);
        void *q = real_malloc ? real_malloc(n) : arena_alloc(n);
        if (q) memcpy(q, p, n < avail ? n : avail);
        return q;
    }
    return real_realloc(p, n);
}

void free(void *p)
{
    if (!p || in_arena(p)) return;
    resolve();
    real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    resolve();
    note(__builtin_return_address(0));
    return real_posix_memalign ? real_posix_memalign(out, align, n) : ENOMEM;
}

void *aligned_alloc(size_t align, size_t n)
{
    resolve();
    note(__builtin_return_address(0));
    return real_aligned_alloc ? real_aligned_alloc(align, n) : NULL;
}

void *memalign(size_t align, size_t n)
{
    resolve();
    note(__builtin_return_address(0));
    return real_memalign ? real_memalign(align, n) : NULL;
}
