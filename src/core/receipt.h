/* receipt — numbered, Ed25519-signed receipts anyone can verify.
 *
 * The signed message is the receipt's payload: a JSON object serialised
 * compactly with sorted keys (canonical form), stored as issued in the row of
 * the top-up it is numbered by. It is signed when it is fetched
 * (GET /v1/receipts/{number}), not when it is issued: Ed25519 is
 * deterministic, so the same payload always yields the same signature, and a
 * top-up spends nothing on a signature nobody asked for (its answer carries
 * the payload unsigned). Verification takes
 * any JSON object, drops "signature" and "key_id", re-serialises canonically
 * and checks the signature with the deployment's public key; a receipt whose
 * key_id names another key is not valid, whatever its signature.
 *
 * The signing key lives in a file of its own (mode 0600), not in the database:
 * a copy of the database is not enough to forge receipts.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct arena;

#define RECEIPT_NUMBER_MAX 16

struct receipt_keys {
    unsigned char pk[32];
    unsigned char sk[64];
    char key_id[17];         /* hex of the first 8 bytes of BLAKE2b(pk) */
    char pk_b64[48];
};

/* Loads the key from `path`; if there is no such file, creates it (0600) when
 * create is set (whole or not at all, through `path`.new), else ERR_NOT_FOUND. Which key a database's receipts need is
 * the caller's to check (server_prepare_db). */
int receipt_keys_load(struct receipt_keys *k, const char *path, int create);
/* Derives a key from a seed (tests). */
void receipt_keys_from_seed(struct receipt_keys *k, const unsigned char seed[32]);

struct receipt_fields {
    const char *iccid, *msisdn, *channel, *method, *currency;
    const char *served_by;   /* the principal; NULL or "": "system" */
    int64_t topup_id, amount, fee, balance_after, active_until, issued_at;
};

/* Composes the receipt of top-up f->topup_id, numbered by it (the receipt
 * number is "R" and the top-up id on ten digits). Writes nothing. The
 * canonical payload is allocated from a.
 *
 * R1. A receipt is a function of its top-up's row (and of the SIM's iccid
 *     and the number it had: msisdn, or released_msisdn once termination
 *     gave it back, after which no top-up comes): a top-up stores no payload
 *     (topups.receipt is NULL), and topup_receipt_get composes it again, byte for
 *     byte, whenever it is fetched. A feature that lets a SIM change its
 *     number must first keep the number each top-up's receipt names.
 *     Top-ups written before that keep the payload they stored, which is
 *     served as stored. Storing it cost the writer 3k instructions a top-up
 *     (82.5k -> 79.5k) and 0.9 KB of writes (4.4 -> 3.5 KB at 100k SIMs):
 *     a 300-byte payload in a 2 KiB page filled one every four top-ups. */
void receipt_issue(struct arena *a, const struct receipt_fields *f, char number[RECEIPT_NUMBER_MAX],
                   const char **payload);
void receipt_number(int64_t topup_id, char number[RECEIPT_NUMBER_MAX]);
/* The top-up id in a receipt number, or 0 unless the number is exactly what
 * receipt_number prints for it: "R" and the id zero-padded to ten digits. */
int64_t receipt_number_topup(const char *number);
/* 1 when the JSON object json_text carries a valid "signature" of its
 * canonical form, and a "key_id", if any, that is this key's. */
int receipt_verify(const struct receipt_keys *k, const char *json_text, size_t len);
/* The receipt as served: the payload (len bytes of a JSON object) with
 * "key_id" and "signature" spliced in before its closing brace; from a. */
char *receipt_signed(struct arena *a, const struct receipt_keys *k, const char *payload, size_t len);
/* The receipt as a person reads it, to print (UTF-8 text, a "label: value"
 * line a field, for a till's or kiosk's printer): labels, channel and method
 * in lang (util/i18n.h, loaded), amounts in major units of the currency
 * (50.00 CNY), times at tz_offset_minutes from UTC, and the key and the
 * signature, so that the slip can be checked against the receipt. From a;
 * NULL when the payload is not a receipt. */
char *receipt_printable(struct arena *a, const struct receipt_keys *k, const char *payload, size_t len, int lang,
                        int tz_offset_minutes);
