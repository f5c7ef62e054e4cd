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

size_t text_utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], lo = 0x80, hi = 0xbf;
    size_t n;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

int text_printable(const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    if ((size_t)(end - p) > max)
        return 0;
    while (p < end) {
        if (*p < 0x80) {
            if (*p < 0x20 || *p == 0x7f)
                return 0;
            p++;
            continue;
        }
        size_t n = text_utf8_len(p, end);
        if (!n || (p[0] == 0xc2 && p[1] < 0xa0))   /* U+0080..U+009F */
            return 0;
        p += n;
    }
    return 1;
}
