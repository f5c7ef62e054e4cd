/* smalloc — SQLite's small allocations from per-thread free lists (store.h S9).
 *
 * Debian's libsqlite3 is built with SQLITE_OMIT_LOOKASIDE, so every cursor a
 * statement opens, every record it builds and every text column it reads is
 * a malloc and a free of the system allocator, through SQLite's wrappers:
 * some 55 of each per top-up on the engine's writer, about 8% of its
 * instructions (callgrind, 100k SIMs, 64 connections). Most are the same
 * few sizes over and over, allocated and freed by one statement on one
 * thread (connections are never shared, S2). So blocks of up to
 * SMALL_MAX bytes come in classes, and a freed block goes on its class's
 * list on the thread that frees it, for the next allocation of that class
 * there; anything larger goes to malloc as before. The writer went from
 * 77.2k to 74.4k instructions a top-up (same measure).
 *
 * Bounds: a thread keeps at most CLASS_CACHE_BYTES of free blocks per class
 * (the rest goes back to free), and gives them all back when it exits. A
 * block freed on another thread than the one that allocated it simply joins
 * the freeing thread's lists. Under AddressSanitizer SQLite keeps the
 * system allocator, so that its blocks stay checked one by one.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SMALLOC_OFF 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SMALLOC_OFF 1
#endif

#ifdef SMALLOC_OFF
int store_malloc_install(void) { return 1; }
size_t store_malloc_cached(void) { return 0; }
#else
/* Every block has a header of 8 bytes before it (SQLite asks for 8-byte
 * alignment): its usable size, from which the class follows. */
#define HDR 8
#define GRAIN 16
#define SMALL_MAX 1024            /* SQLite's page buffers (2 KiB and more) are not small */
#define CLASS_CACHE_BYTES (128 << 10)

/* Usable sizes, about 1.25x apart so that a long-lived block (a prepared
 * statement's program) wastes little; the header rounds each to 16. */
static const int class_size[] = {8, 24, 40, 56, 72, 88, 120, 152, 184, 248, 312, 376, 504, 632, 760, 1016};
#define CLASSES ((int)(sizeof class_size / sizeof class_size[0]))
_Static_assert(SMALL_MAX - HDR == 1016, "the last class is SMALL_MAX with its header");

/* The class of a request of n bytes, by GRAIN-sized steps of n + HDR. */
static unsigned char class_of_grain[SMALL_MAX / GRAIN + 1];

struct block {
    struct block *next;
};

struct cache {
    struct block *head[CLASSES];
    int count[CLASSES];
    int registered;
};

static __thread struct cache tcache;
static pthread_key_t exit_key;

static int64_t *header(void *p) { return (int64_t *)((char *)p - HDR); }

static void *from_system(int usable)
{
    int64_t *h = malloc((size_t)usable + HDR);
    if (!h)
        return NULL;
    *h = usable;
    return h + 1;
}

static void drain(struct cache *c)
{
    for (int k = 0; k < CLASSES; k++) {
        while (c->head[k]) {
            struct block *b = c->head[k];
            c->head[k] = b->next;
            free(header(b));
        }
        c->count[k] = 0;
    }
}

static void on_thread_exit(void *arg)
{
    struct cache *c = arg;
    drain(c);
    c->registered = 0;   /* a later destructor's free registers again */
}

static int class_of(int n) { return n <= SMALL_MAX - HDR ? class_of_grain[(n + HDR + GRAIN - 1) / GRAIN] : -1; }

static void *xmalloc(int n)
{
    if (n <= 0)
        n = 1;
    int k = class_of(n);
    if (k < 0)
        return from_system((n + 7) & ~7);
    struct cache *c = &tcache;
    struct block *b = c->head[k];
    if (b) {
        c->head[k] = b->next;
        c->count[k]--;
        return b;
    }
    return from_system(class_size[k]);
}

static void xfree(void *p)
{
    if (!p)
        return;
    int k = class_of((int)*header(p));
    struct cache *c = &tcache;
    if (k < 0 || c->count[k] >= CLASS_CACHE_BYTES / (class_size[k] + HDR)) {
        free(header(p));
        return;
    }
    if (!c->registered) {   /* its blocks go back when the thread exits */
        c->registered = 1;
        pthread_setspecific(exit_key, c);
    }
    struct block *b = p;
    b->next = c->head[k];
    c->head[k] = b;
    c->count[k]++;
}

static int xsize(void *p) { return p ? (int)*header(p) : 0; }

static int xroundup(int n)
{
    int k = class_of(n);
    return k < 0 ? (n + 7) & ~7 : class_size[k];
}

static void *xrealloc(void *p, int n)
{
    int have = (int)*header(p);
    if (n <= have && xroundup(n) == have)
        return p;
    if (class_of(have) < 0 && class_of(n) < 0) {   /* large to large: the system's, which may grow in place */
        int usable = (n + 7) & ~7;
        int64_t *h = realloc(header(p), (size_t)usable + HDR);
        if (!h)
            return NULL;
        *h = usable;
        return h + 1;
    }
    void *q = xmalloc(n);
    if (q) {
        memcpy(q, p, (size_t)(have < n ? have : n));
        xfree(p);
    }
    return q;
}

static int xinit(void *arg)
{
    (void)arg;
    return 0;
}

static void xshutdown(void *arg) { (void)arg; }

int store_malloc_install(void)
{
    for (int g = 0, k = 0; g <= SMALL_MAX / GRAIN; g++) {
        while (class_size[k] + HDR < g * GRAIN)
            k++;
        class_of_grain[g] = (unsigned char)k;
    }
    if (pthread_key_create(&exit_key, on_thread_exit))
        return -1;
    static const sqlite3_mem_methods methods = {xmalloc, xfree, xrealloc, xsize, xroundup, xinit, xshutdown, NULL};
    return sqlite3_config(SQLITE_CONFIG_MALLOC, &methods) == SQLITE_OK ? 0 : -1;
}

size_t store_malloc_cached(void)
{
    size_t bytes = 0;
    for (int k = 0; k < CLASSES; k++)
        bytes += (size_t)tcache.count[k] * (size_t)(class_size[k] + HDR);
    return bytes;
}
#endif
