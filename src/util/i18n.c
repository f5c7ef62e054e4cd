#include "util/i18n.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "embedded.h"
#include "util/log.h"

static const char *const codes[LANG__COUNT] = {"en", "zh", "ru"};
static json_t *catalog[LANG__COUNT];

int i18n_init(void)
{
    for (int l = 0; l < LANG__COUNT; l++) {
        if (catalog[l])
            continue;
        char name[64];
        snprintf(name, sizeof name, "web/i18n/%s.json", codes[l]);
        for (size_t i = 0; i < embedded_count; i++)
            if (!strcmp(embedded_files[i].name, name))
                catalog[l] = json_loadb(embedded_files[i].data, embedded_files[i].len, 0, NULL);
        if (!json_is_object(catalog[l])) {
            log_error("message catalogue %s missing or malformed", name);
            return -1;
        }
    }
    return 0;
}

const char *i18n_text(enum lang l, const char *key)
{
    if (l < 0 || l >= LANG__COUNT)
        l = LANG_EN;
    const char *s = json_string_value(json_object_get(catalog[l], key));
    if (!s)
        s = json_string_value(json_object_get(catalog[LANG_EN], key));
    return s ? s : key;
}

const char *i18n_code(enum lang l) { return l >= 0 && l < LANG__COUNT ? codes[l] : "en"; }

int i18n_parse(const char *code)
{
    for (int l = 0; code && l < LANG__COUNT; l++)
        if (!strcmp(code, codes[l]))
            return l;
    return -1;
}

/* A qvalue (RFC 9110 12.4.2): "0" or "1", up to three decimals, at most 1;
 * in thousandths, or -1. */
static int qvalue(const char *s, size_t n)
{
    if (!n || (s[0] != '0' && s[0] != '1') || (n > 1 && (s[1] != '.' || n > 5)))
        return -1;
    int v = (s[0] - '0') * 1000, scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v += (s[i] - '0') * scale;
    }
    return v <= 1000 ? v : -1;
}

static int ows(char c) { return c == ' ' || c == '\t'; }

/* RFC 9110 12.5.4: ranges with optional whitespace and a q parameter; one
 * whose q is malformed or past 1 is ignored. A range names a language of
 * ours when its primary tag is that language (zh-CN: zh). Each language
 * takes the highest q of the ranges naming it; "*" gives its q to those no
 * range names; q=0 refuses. The highest q wins, and of equal ones the
 * range first in the header. */
enum lang i18n_pick(const char *h)
{
    int q[LANG__COUNT], at[LANG__COUNT], star_q = -1, star_at = 0;
    for (int l = 0; l < LANG__COUNT; l++)
        q[l] = -1, at[l] = 0;
    for (int pos = 0; h && *h; pos++) {
        size_t len = strcspn(h, ",");
        const char *e = h + len, *p = h;
        h = *e ? e + 1 : e;
        while (p < e && ows(*p))
            p++;
        const char *tag = p;
        while (p < e && *p != ';' && !ows(*p))
            p++;
        size_t taglen = (size_t)(p - tag);
        int v = 1000;
        while (p < e) {   /* parameters: only q counts */
            while (p < e && (ows(*p) || *p == ';'))
                p++;
            const char *param = p;
            while (p < e && *p != ';')
                p++;
            const char *end = p;
            while (end > param && ows(end[-1]))
                end--;
            if (end - param >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=')
                v = qvalue(param + 2, (size_t)(end - param - 2));
        }
        if (!taglen || v < 0)
            continue;
        if (taglen == 1 && tag[0] == '*') {
            if (v > star_q)
                star_q = v, star_at = pos;
            continue;
        }
        for (int l = 0; l < LANG__COUNT; l++) {
            size_t cl = strlen(codes[l]);
            if (taglen >= cl && !strncasecmp(tag, codes[l], cl) && (taglen == cl || tag[cl] == '-') && v > q[l])
                q[l] = v, at[l] = pos;
        }
    }
    enum lang best = LANG_EN;
    int best_q = 0, best_at = 0;
    for (int l = 0; l < LANG__COUNT; l++) {
        int lq = q[l] >= 0 ? q[l] : star_q, lat = q[l] >= 0 ? at[l] : star_at;
        if (lq > best_q || (lq == best_q && lq > 0 && lat < best_at))
            best = (enum lang)l, best_q = lq, best_at = lat;
    }
    return best;
}
