/* text — see text.h. */
#include "util/text.h"

#include <string.h>

size_t text_copy(char *dst, size_t cap, const char *src)
{
    if (!cap)
        return 0;
    *dst = 0;
    return text_cat(dst, cap, src);
}

size_t text_cat(char *dst, size_t cap, const char *src)
{
    size_t at = strnlen(dst, cap), n = strlen(src);
    if (at >= cap)
        return at;
    if (n > cap - 1 - at)
        n = cap - 1 - at;
    memcpy(dst + at, src, n);
    dst[at + n] = 0;
    return at + n;
}

char *text_int(char buf[TEXT_INT_MAX], int64_t v)
{
    char *p = buf + TEXT_INT_MAX;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    *--p = 0;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    return p;
}

size_t text_cat_int(char *dst, size_t cap, int64_t v)
{
    char buf[TEXT_INT_MAX];
    return text_cat(dst, cap, text_int(buf, v));
}
