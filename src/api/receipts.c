/* /v1/receipts — fetch, verify, and the public key to verify with. */
#include <string.h>

#include "api/api.h"
#include "core/receipt.h"
#include "core/topup.h"
#include "util/err.h"
#include "util/i18n.h"

int api_receipts_get(struct req *r)
{
    const char *number = r->params[0], *payload;
    if (strlen(number) >= RECEIPT_NUMBER_MAX)
        return req_error(r, ERR_RECEIPT_NOT_FOUND, NULL);
    struct tx tx;
    if (req_read_begin(r, &tx))
        return 0;
    int rc = topup_receipt_get(&tx, number, &payload, NULL);
    rc = req_read_end(r, &tx, rc);
    if (rc)
        return req_error(r, rc, NULL);
    return req_raw(r, 200, receipt_signed(&r->a, req_keys(r), payload, strlen(payload)));
}

/* The receipt to print, in its SIM's language or ?language= (receipt.h
 * receipt_printable). */
int api_receipts_print(struct req *r)
{
    const char *number = r->params[0], *payload, *sim_lang = NULL, *asked = req_query(r, "language");
    int lang = asked ? i18n_parse(asked) : 0;
    if (lang < 0)
        return req_error(r, ERR_INVALID_PARAMETER, "language");
    if (strlen(number) >= RECEIPT_NUMBER_MAX)
        return req_error(r, ERR_RECEIPT_NOT_FOUND, NULL);
    struct tx tx;
    if (req_read_begin(r, &tx))
        return 0;
    int rc = topup_receipt_get(&tx, number, &payload, &sim_lang);
    rc = req_read_end(r, &tx, rc);
    if (rc)
        return req_error(r, rc, NULL);
    if (!asked && (lang = sim_lang ? i18n_parse(sim_lang) : -1) < 0)
        lang = LANG_EN;
    const char *text = receipt_printable(&r->a, req_keys(r), payload, strlen(payload), lang,
                                         (int)req_conf(r)->tz_offset_minutes);
    return text ? req_text(r, 200, text) : req_error(r, ERR_INTERNAL, NULL);
}

int api_receipts_verify(struct req *r)
{
    const struct jv *b;
    if (req_body_object(r, &b))
        return 0;
    return req_json(r, 200, json_pack("{s:b}", "valid", receipt_verify(req_keys(r), r->body, r->body_len)));
}

int api_receipts_public_key(struct req *r)
{
    const struct receipt_keys *k = req_keys(r);
    return req_json(r, 200, json_pack("{s:s, s:s, s:s}", "key_id", k->key_id, "algorithm", "Ed25519",
                                      "public_key", k->pk_b64));
}
