/* i18n — the message catalogues (web/i18n/{en,zh,ru}.json, compiled in) and
 * the choice of language from an Accept-Language header. The same catalogues
 * serve the web apps, so a message is translated once. */
#pragma once

enum lang { LANG_EN, LANG_ZH, LANG_RU, LANG__COUNT };

/* Loads the embedded catalogues; returns -1 if one is missing or malformed. */
int i18n_init(void);
/* The message for key in lang, falling back to English, then to the key. */
const char *i18n_text(enum lang l, const char *key);
/* The first of zh, en, ru that the header accepts (q > 0), by quality; English if none. */
enum lang i18n_pick(const char *accept_language);
const char *i18n_code(enum lang l);       /* "en", "zh", "ru" */
int i18n_parse(const char *code);         /* -1 if not one of ours */
