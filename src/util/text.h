/* text — bounded string building on the writer's hot path, where snprintf
 * parsed its format for every SIM loaded and every top-up's transfer names:
 * some 700 instructions a call, 5k of the writer's ~95k per top-up. */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* Copies src into dst (cap bytes, NUL-terminated, truncated to fit); returns
 * the length written. */
size_t text_copy(char *dst, size_t cap, const char *src);
/* Appends src to the NUL-terminated dst the same way; returns the new length. */
size_t text_cat(char *dst, size_t cap, const char *src);
/* Appends v in decimal. */
size_t text_cat_int(char *dst, size_t cap, int64_t v);
/* v in decimal, NUL-terminated, at the end of buf; returns where it starts
 * (the one digit loop that text_cat_int, arena_text_int, receipt numbers and
 * HTTP heads share). */
#define TEXT_INT_MAX 21   /* a sign, 19 digits and the NUL */
char *text_int(char buf[TEXT_INT_MAX], int64_t v);

/* Length of the valid UTF-8 sequence at p (a byte >= 0x80), or 0: no
 * overlong forms, no surrogates, nothing past U+10FFFF. */
size_t text_utf8_len(const unsigned char *p, const unsigned char *end);
/* 1 when s is at most max bytes of valid UTF-8 without a control character
 * (C0, DEL, C1): a name a person gave, safe in JSON and in a line of text. */
int text_printable(const char *s, size_t max);
