/* jv — a JSON document (RFC 8259) parsed into an arena, for request bodies.
 *
 * A request body is parsed once, read a few times and dropped with its
 * request. jansson spent some 14,000 instructions on a 70-byte top-up body
 * (a stream reader per character, a malloc per value, a hash table per
 * object); this parser takes the bytes as they are, allocates from the
 * request's arena and keeps an object's members in a list.
 *
 * Contract
 *  J1. jv_parse accepts exactly the JSON texts that jansson's json_loadb
 *      accepts with JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, nested at most
 *      JV_MAX_DEPTH deep (jansson: 2048), and reads the same values from them:
 *      one value with optional whitespace around it; strings of valid UTF-8
 *      without U+0000 (raw or escaped) or raw control characters, escapes
 *      paired where they are surrogates; integers that fit int64_t; reals that
 *      do not overflow; no object with the same member name twice.
 *      Anything else is ERR_INVALID_JSON, and *out is left NULL. One
 *      difference: jansson takes a NUL byte for the end of its input and
 *      ignores what follows; jv refuses a NUL byte anywhere.
 *  J2. Strings are decoded, NUL-terminated and contain no NUL, so len ==
 *      strlen(s). A number without fraction or exponent is JV_INT.
 *  J3. The work is linear in the input (duplicate names are found by sorting
 *      when an object is large) and the recursion is bounded by JV_MAX_DEPTH.
 *  J4. Everything lives in the arena passed in; nothing is freed by hand.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct arena;

#define JV_MAX_DEPTH 64

enum jv_kind { JV_NULL, JV_BOOL, JV_INT, JV_REAL, JV_STRING, JV_ARRAY, JV_OBJECT };

struct jv {
    enum jv_kind kind;
    const char *key;      /* the member's name when in an object, else NULL */
    size_t key_len;
    size_t len;           /* bytes of a string; items of an array or members of an object */
    struct jv *next;      /* the next item or member */
    union {
        int b;
        int64_t i;
        double d;
        const char *s;
        struct jv *first; /* the first item or member */
    };
};

int jv_parse(struct arena *a, const char *text, size_t len, struct jv **out);

/* The member named key, or NULL (also when o is NULL or not an object). */
const struct jv *jv_get(const struct jv *o, const char *key);

/* The items or members of an array or object (check its kind first). */
#define jv_foreach(v, container) for (const struct jv *v = (container)->first; v; v = v->next)
