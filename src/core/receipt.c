#include "core/receipt.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/arena.h"
#include "util/err.h"
#include "util/files.h"
#include "util/i18n.h"
#include "util/log.h"
#include "util/text.h"
#include "util/timefmt.h"

void receipt_keys_from_seed(struct receipt_keys *k, const unsigned char seed[32])
{
    unsigned char h[8];
    crypto_sign_seed_keypair(k->pk, k->sk, seed);
    crypto_generichash(h, sizeof h, k->pk, sizeof k->pk, NULL, 0);
    sodium_bin2hex(k->key_id, sizeof k->key_id, h, sizeof h);
    sodium_bin2base64(k->pk_b64, sizeof k->pk_b64, k->pk, sizeof k->pk, sodium_base64_VARIANT_ORIGINAL);
}

/* The key is written whole to PATH.new and synced, and only then linked at
 * its name (a link, not a rename: never over a key that is there): a crash
 * leaves no key at the name, or the whole key. Created at its name, a crash
 * between the create and the write left an empty file there, which every
 * later start refused as malformed. */
static int create_key(const char *path, const char *text, size_t len)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.new", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    unlink(tmp);   /* what a crash here left */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return -1;
    int rc = write(fd, text, len) == (ssize_t)len && !fsync(fd) ? 0 : -1;
    close(fd);
    if (!rc)
        rc = link(tmp, path);
    int saved = errno;
    unlink(tmp);
    errno = saved;
    return rc;
}

int receipt_keys_load(struct receipt_keys *k, const char *path, int create)
{
    unsigned char seed[32];
    char text[64] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0 && errno == ENOENT && !create)
        return ERR_NOT_FOUND;
    if (fd < 0 && errno == ENOENT) {
        randombytes_buf(seed, sizeof seed);
        sodium_bin2base64(text, sizeof text, seed, sizeof seed, sodium_base64_VARIANT_ORIGINAL);
        size_t len = strlen(text);
        text[len] = '\n';
        if (create_key(path, text, len + 1)) {
            log_error("cannot create receipt key %s: %s", path, strerror(errno));
            return ERR_INTERNAL;
        }
        if (files_sync_dir_of(path)) {   /* the database will name this key: its name must survive a crash too */
            log_error("cannot make receipt key %s durable: %s", path, strerror(errno));
            return ERR_INTERNAL;
        }
        log_info("created receipt signing key %s", path);
        receipt_keys_from_seed(k, seed);
        sodium_memzero(seed, sizeof seed);
        return 0;
    }
    if (fd < 0) {
        log_error("cannot open receipt key %s: %s", path, strerror(errno));
        return ERR_INTERNAL;
    }
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    size_t binlen = 0;
    if (n <= 0 || sodium_base642bin(seed, sizeof seed, text, (size_t)n, "\n", &binlen, NULL,
                                    sodium_base64_VARIANT_ORIGINAL) || binlen != sizeof seed) {
        log_error("receipt key %s is malformed", path);
        return ERR_INTERNAL;
    }
    receipt_keys_from_seed(k, seed);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(text, sizeof text);
    return 0;
}

static char *canonical(json_t *obj) { return json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS); }

/* One receipt per top-up, numbered by it: no counter to read. Formatted as
 * "R%010lld" by hand: the writer numbers every top-up, and snprintf cost it
 * a thousand instructions. */
void receipt_number(int64_t topup_id, char number[RECEIPT_NUMBER_MAX])
{
    char buf[TEXT_INT_MAX];
    const char *digits = text_int(buf, topup_id > 0 ? topup_id : 0);   /* ids start at 1 */
    size_t n = strlen(digits), pad = n < 10 ? 10 - n : 0;
    number[0] = 'R';
    memset(number + 1, '0', pad);
    text_copy(number + 1 + pad, RECEIPT_NUMBER_MAX - 1 - pad, digits);   /* cut as snprintf would */
}

void receipt_issue(struct arena *a, const struct receipt_fields *f, char number[RECEIPT_NUMBER_MAX],
                   const char **payload)
{
    receipt_number(f->topup_id, number);

    /* Canonical by construction: keys in sorted order, compact, and every
     * value an integer or a string that needs no escaping (digits, '+', ASCII
     * names, RFC 3339 times). The unit tests hold this to jansson's canonical form. */
    char issued[TIMEFMT_LEN], until[TIMEFMT_LEN];
    timefmt_rfc3339(f->issued_at, issued);
    timefmt_rfc3339(f->active_until, until);
    struct arena_text t;
    arena_text_init(&t, a, 512);
    arena_text_cat(&t, "{\"active_until\":\"", until, "\",\"amount\":", NULL);
    arena_text_int(&t, f->amount);
    arena_text_cat(&t, ",\"balance_after\":", NULL);
    arena_text_int(&t, f->balance_after);
    arena_text_cat(&t, ",\"channel\":\"", f->channel, "\",\"currency\":\"", f->currency, "\",\"iccid\":\"",
                   f->iccid, "\",\"issued_at\":\"", issued, "\",\"method\":\"", f->method, "\",\"msisdn\":\"",
                   f->msisdn, "\",\"number\":\"", number, "\",\"reactivation_fee\":", NULL);
    arena_text_int(&t, f->fee);
    arena_text_cat(&t, ",\"served_by\":\"", f->served_by && *f->served_by ? f->served_by : "system",
                   "\",\"topup\":\"tu_", NULL);
    arena_text_int(&t, f->topup_id);
    arena_text_cat(&t, "\"}", NULL);
    *payload = arena_text_end(&t, NULL);
}

int64_t receipt_number_topup(const char *number)
{
    size_t len = strlen(number);
    if (number[0] != 'R' || len < 11 || len >= RECEIPT_NUMBER_MAX || (len > 11 && number[1] == '0'))
        return 0;   /* past ten digits, no padding: R00000000001 is not R0000000001 */
    int64_t id = 0;
    for (size_t i = 1; i < len; i++) {
        if (number[i] < '0' || number[i] > '9')
            return 0;
        id = id * 10 + (number[i] - '0');   /* at most 14 digits: no overflow */
    }
    return id;
}

#define SIG64_LEN sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)

static void sign64(const struct receipt_keys *k, const char *payload, size_t len, char out[SIG64_LEN])
{
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const unsigned char *)payload, len, k->sk);
    sodium_bin2base64(out, SIG64_LEN, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
}

char *receipt_signed(struct arena *a, const struct receipt_keys *k, const char *payload, size_t len)
{
    char sig64[SIG64_LEN];
    sign64(k, payload, len, sig64);
    return arena_printf(a, "%.*s,\"key_id\":\"%s\",\"signature\":\"%s\"}", (int)(len - 1), payload, k->key_id,
                        sig64);
}

/* Digits after the point in a currency's major unit (ISO 4217): 2 but for
 * the few that have none or three. */
static int minor_digits(const char *currency)
{
    static const char *const none = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF";
    static const char *const three = "BHD IQD JOD KWD LYD OMR TND";
    if (strlen(currency) != 3)
        return 2;
    return strstr(none, currency) ? 0 : strstr(three, currency) ? 3 : 2;
}

static void money(struct arena_text *t, int64_t minor, const char *currency)
{
    int digits = minor_digits(currency);
    int64_t scale = digits == 0 ? 1 : digits == 3 ? 1000 : 100;
    char frac[8];
    if (minor < 0) {   /* never on a receipt; shown whole all the same */
        arena_text_cat(t, "-", NULL);
        minor = minor == INT64_MIN ? INT64_MAX : -minor;
    }
    arena_text_int(t, minor / scale);
    if (digits) {
        snprintf(frac, sizeof frac, ".%0*lld", digits, (long long)(minor % scale));
        arena_text_cat(t, frac, NULL);
    }
    arena_text_cat(t, " ", currency, NULL);
}

/* An RFC 3339 UTC time at the deployment's offset: "2026-12-08 01:30 (UTC+08:00)". */
static void local_time(struct arena_text *t, const char *rfc3339, int offset_minutes)
{
    int64_t at;
    if (!rfc3339 || timefmt_parse(rfc3339, &at)) {
        arena_text_cat(t, rfc3339 ? rfc3339 : "", NULL);
        return;
    }
    char buf[TIMEFMT_LEN], tail[24];
    timefmt_rfc3339(at + (int64_t)offset_minutes * 60, buf);
    int off = offset_minutes < 0 ? -offset_minutes : offset_minutes;
    snprintf(tail, sizeof tail, " (UTC%c%02d:%02d)", offset_minutes < 0 ? '-' : '+', off / 60, off % 60);
    buf[10] = ' ';
    buf[16] = 0;   /* to the minute */
    arena_text_cat(t, buf, tail, NULL);
}

static void line(struct arena_text *t, int lang, const char *label_key, const char *value)
{
    arena_text_cat(t, i18n_text(lang, label_key), ": ", value, "\n", NULL);
}

char *receipt_printable(struct arena *a, const struct receipt_keys *k, const char *payload, size_t len, int lang,
                        int tz_offset_minutes)
{
    json_t *o = json_loadb(payload, len, 0, NULL);
    const char *number = json_string_value(json_object_get(o, "number"));
    const char *currency = json_string_value(json_object_get(o, "currency"));
    json_t *amount = json_object_get(o, "amount"), *fee = json_object_get(o, "reactivation_fee"),
           *balance = json_object_get(o, "balance_after");
    if (!number || !currency || !json_is_integer(amount) || !json_is_integer(balance)) {
        json_decref(o);
        return NULL;
    }
    const char *iccid = json_string_value(json_object_get(o, "iccid")),
               *msisdn = json_string_value(json_object_get(o, "msisdn")),
               *channel = json_string_value(json_object_get(o, "channel")),
               *method = json_string_value(json_object_get(o, "method")),
               *served = json_string_value(json_object_get(o, "served_by"));
    char key[48];
    struct arena_text t;
    arena_text_init(&t, a, 1024);
    arena_text_cat(&t, i18n_text(lang, "receipt.title"), "\n", NULL);
    line(&t, lang, "receipt.number", number);
    arena_text_cat(&t, i18n_text(lang, "receipt.issued_at"), ": ", NULL);
    local_time(&t, json_string_value(json_object_get(o, "issued_at")), tz_offset_minutes);
    arena_text_cat(&t, "\n", NULL);
    line(&t, lang, "receipt.iccid", iccid ? iccid : "");
    if (msisdn && *msisdn)
        line(&t, lang, "receipt.msisdn", msisdn);
    snprintf(key, sizeof key, "channel.%s", channel ? channel : "");
    line(&t, lang, "receipt.channel", i18n_text(lang, key));
    snprintf(key, sizeof key, "method.%s", method ? method : "");
    line(&t, lang, "receipt.method", i18n_text(lang, key));
    arena_text_cat(&t, i18n_text(lang, "receipt.amount"), ": ", NULL);
    money(&t, json_integer_value(amount), currency);
    if (json_integer_value(fee) > 0) {
        arena_text_cat(&t, "\n", i18n_text(lang, "receipt.reactivation_fee"), ": ", NULL);
        money(&t, json_integer_value(fee), currency);
    }
    arena_text_cat(&t, "\n", i18n_text(lang, "receipt.balance_after"), ": ", NULL);
    money(&t, json_integer_value(balance), currency);
    arena_text_cat(&t, "\n", i18n_text(lang, "receipt.active_until"), ": ", NULL);
    local_time(&t, json_string_value(json_object_get(o, "active_until")), tz_offset_minutes);
    arena_text_cat(&t, "\n", NULL);
    line(&t, lang, "receipt.served_by",
         !served || !strcmp(served, "system") ? i18n_text(lang, "receipt.system") : served);

    char sig64[SIG64_LEN];
    sign64(k, payload, len, sig64);
    size_t half = strlen(sig64) / 2;
    arena_text_cat(&t, "\n", NULL);
    line(&t, lang, "receipt.key", k->key_id);
    arena_text_cat(&t, i18n_text(lang, "receipt.signature"), ":\n", NULL);
    arena_text_cat(&t, arena_printf(a, "%.*s\n%s\n", (int)half, sig64, sig64 + half), NULL);
    arena_text_cat(&t, i18n_text(lang, "receipt.verify"), "\n", NULL);
    json_decref(o);
    return arena_text_end(&t, NULL);
}

int receipt_verify(const struct receipt_keys *k, const char *json_text, size_t len)
{
    json_t *o = json_loadb(json_text, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return 0;
    }
    const char *sig64 = json_string_value(json_object_get(o, "signature"));
    json_t *key_id = json_object_get(o, "key_id");
    unsigned char sig[crypto_sign_BYTES];
    size_t siglen = 0;
    int ok = 0;
    if (key_id && (!json_is_string(key_id) || strcmp(json_string_value(key_id), k->key_id)))
        sig64 = NULL;   /* names another key (or none we could have): not ours to vouch for */
    if (sig64 && !sodium_base642bin(sig, sizeof sig, sig64, strlen(sig64), NULL, &siglen, NULL,
                                    sodium_base64_VARIANT_ORIGINAL) && siglen == sizeof sig) {
        json_object_del(o, "signature");
        json_object_del(o, "key_id");
        char *text = canonical(o);
        ok = text && !crypto_sign_verify_detached(sig, (const unsigned char *)text, strlen(text), k->pk);
        free(text);
    }
    json_decref(o);
    return ok;
}
