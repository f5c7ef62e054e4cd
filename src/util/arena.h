/* arena — a bump allocator owned by one request (or one command).
 *
 * Everything allocated from an arena is freed at once by arena_free(). An
 * arena never frees single allocations. Allocation failure aborts the process
 * (topupd treats OOM as fatal; every input that could make an arena grow is
 * capped before it gets here). Not thread-safe: one owner at a time.
 */
#pragma once
#include <stdarg.h>
#include <stddef.h>

struct arena_chunk;
struct arena_defer;
struct arena {
    struct arena_chunk *head;
    struct arena_defer *defers;
    size_t total;                 /* bytes handed out, for tests and caps */
};

void arena_init(struct arena *a);
void arena_free(struct arena *a);            /* frees everything; the arena can be reused */
void *arena_alloc(struct arena *a, size_t n); /* zeroed, 16-byte aligned */
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
/* Calls fn(p) when the arena is freed (last registered, first called): for
 * what lives outside the arena, such as a growing array or a JSON value. */
void arena_defer(struct arena *a, void (*fn)(void *), void *p);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Text built piece by piece in the arena, for the bodies the writer prints
 * for every top-up: printf parses its format on each call, and that parsing
 * was most of a top-up's formatting. Pieces are copied as given (the caller
 * escapes what needs it). */
struct arena_text {
    struct arena *a;
    char *buf;
    size_t len, cap;
};
void arena_text_init(struct arena_text *t, struct arena *a, size_t cap);   /* cap: a first guess */
/* Appends each string up to the terminating NULL. */
void arena_text_cat(struct arena_text *t, ...) __attribute__((sentinel));
void arena_text_int(struct arena_text *t, long long v);
char *arena_text_end(struct arena_text *t, size_t *len);   /* NUL-terminated; len may be NULL */
