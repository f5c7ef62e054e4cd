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

enum lang i18n_pick(const char *h)
{
    enum lang best = LANG_EN;
    double best_q = 0;
    while (h && *h) {
        while (*h == ' ' || *h == ',')
            h++;
        const char *tag = h;
        size_t taglen = strcspn(h, ";,");
        double q = 1;
        h += taglen;
        if (*h == ';') {
            const char *p = strstr(h, "q=");
            const char *comma = strchr(h, ',');
            if (p && (!comma || p < comma))
                q = strtod(p + 2, NULL);
            h = comma ? comma : h + strlen(h);
        }
        for (int l = 0; l < LANG__COUNT; l++) {
            size_t cl = strlen(codes[l]);
            if (taglen >= cl && !strncasecmp(tag, codes[l], cl) && (taglen == cl || tag[cl] == '-') && q > best_q) {
                best = (enum lang)l;
                best_q = q;
            }
        }
    }
    return best;
}
