#include "util/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_MIN 4096

struct arena_chunk {
    struct arena_chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

struct arena_defer {
    struct arena_defer *next;
    void (*fn)(void *);
    void *p;
};

void arena_init(struct arena *a) { memset(a, 0, sizeof *a); }

void arena_defer(struct arena *a, void (*fn)(void *), void *p)
{
    struct arena_defer *d = arena_alloc(a, sizeof *d);
    d->fn = fn;
    d->p = p;
    d->next = a->defers;
    a->defers = d;
}

void arena_free(struct arena *a)
{
    for (struct arena_defer *d = a->defers; d; d = d->next)
        d->fn(d->p);
    a->defers = NULL;
    struct arena_chunk *c = a->head;
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
        if (a->head && a->head->cap * 2 > cap && a->head->cap < (1u << 20))
            cap = a->head->cap * 2;
        c = malloc(sizeof *c + cap);
        if (!c)
            abort();
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *arena_strdup(struct arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    /* One pass when it fits in what is left of the current chunk (the usual case). */
    struct arena_chunk *c = a->head;
    size_t room = c ? c->cap - c->used : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room ? (char *)c->data + c->used : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    if ((size_t)n < room) {
        char *p = (char *)c->data + c->used;
        size_t used = ((size_t)n + 1 + 15) & ~(size_t)15;
        c->used += used < room ? used : room;
        a->total += (size_t)n + 1;
        return p;
    }
    char *p = arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
