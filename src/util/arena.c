#include "util/arena.h"

#include "util/text.h"

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

void arena_text_init(struct arena_text *t, struct arena *a, size_t cap)
{
    *t = (struct arena_text){.a = a, .cap = cap ? cap : 64};
    t->buf = arena_alloc(a, t->cap);
}

/* Appends n bytes, keeping room for the NUL. */
static void text_put(struct arena_text *t, const char *p, size_t n)
{
    if (t->len + n >= t->cap) {
        size_t cap = t->cap * 2 > t->len + n + 1 ? t->cap * 2 : t->len + n + 1;
        char *buf = arena_alloc(t->a, cap);
        memcpy(buf, t->buf, t->len);
        t->buf = buf, t->cap = cap;
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
}

void arena_text_cat(struct arena_text *t, ...)
{
    va_list ap;
    va_start(ap, t);
    for (const char *s; (s = va_arg(ap, const char *));)
        text_put(t, s, strlen(s));
    va_end(ap);
}

void arena_text_int(struct arena_text *t, long long v)
{
    char buf[TEXT_INT_MAX];
    const char *p = text_int(buf, v);
    text_put(t, p, (size_t)(buf + TEXT_INT_MAX - 1 - p));
}

char *arena_text_end(struct arena_text *t, size_t *len)
{
    t->buf[t->len] = 0;   /* text_put always leaves room for it */
    if (len)
        *len = t->len;
    return t->buf;
}
