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
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        size_t len = strlen(text);
        text[len] = '\n';
        if (fd < 0 || write(fd, text, len + 1) != (ssize_t)(len + 1) || fsync(fd)) {
            log_error("cannot create receipt key %s: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            return ERR_INTERNAL;
        }
        close(fd);
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

char *receipt_signed(struct arena *a, const struct receipt_keys *k, const char *payload, size_t len)
{
    unsigned char sig[crypto_sign_BYTES];
    char sig64[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    crypto_sign_detached(sig, NULL, (const unsigned char *)payload, len, k->sk);
    sodium_bin2base64(sig64, sizeof sig64, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
    return arena_printf(a, "%.*s,\"key_id\":\"%s\",\"signature\":\"%s\"}", (int)(len - 1), payload, k->key_id,
                        sig64);
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
